/**
 * The Hono app behind every non-gRPC request on the client port: Connect and gRPC-web for the
 * services, the JSON gateway, `/version`, `/health`, `/livez`, `/readyz` and `/metrics`.
 *
 * @module
 */
import { createConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { createFetchHandler } from "@connectrpc/connect/protocol";
import { Hono } from "hono";
import type { EtcdServer } from "./etcd_server.ts";
import { decodeOptions } from "./codec.ts";
import { mountGateway } from "./gateway.ts";
import { mountGatewayStream, streamErrorChunk } from "./gateway_stream.ts";
import { Errors } from "./errors.ts";
import { mountHealth, mountMetrics } from "./health.ts";
import {
  gatewayRoutes,
  interceptors,
  learnerCheck,
  leaseDeps,
  routes,
  watchDeps,
} from "./routes.ts";
import { guardLearner } from "./learner_guard.ts";
import { Lease } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { leaseService } from "./lease_service.ts";
import { mountLeaseKeepAliveGateway } from "./lease_keepalive_gateway.ts";
import { watchGatewayHandler } from "./watch_service.ts";
import { mountWebPage } from "./web_page.ts";
import { versions } from "./version.ts";

import { grpcOverheadBytes } from "./limits.ts";

/** The headers etcd's CORS handler adds to every client-port HTTP answer. */
const corsHeaders: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
  "Access-Control-Allow-Headers": "accept, content-type, authorization",
};

/** Builds the client-port app for `server`. */
export function clientApp(server: EtcdServer): Hono {
  const app = new Hono();
  // etcd's client port wraps every handler in its CORS handler (`--cors`, default "*"): every
  // answer carries these headers, and any OPTIONS request is answered 200 with no body.
  app.use("*", async (c, next) => {
    if (c.req.method === "OPTIONS") return new Response(null, { headers: corsHeaders });
    await next();
    try {
      for (const [name, value] of Object.entries(corsHeaders)) c.res.headers.set(name, value);
    } catch {
      // Immutable headers (a response passed through as is): copy it with ours added.
      const headers = new Headers(c.res.headers);
      for (const [name, value] of Object.entries(corsHeaders)) headers.set(name, value);
      c.res = new Response(c.res.body, { status: c.res.status, headers });
    }
    return undefined;
  });
  const maxBodyBytes = server.config.maxRequestBytes + grpcOverheadBytes;

  const router = createConnectRouter({
    interceptors,
    readMaxBytes: maxBodyBytes,
    binaryOptions: decodeOptions,
  });
  routes(server)(router);
  const connectHandlers = new Map<string, (req: Request) => Promise<Response>>();
  for (const handler of router.handlers) {
    connectHandlers.set(handler.requestPath, createFetchHandler(handler, { httpVersion: "1.1" }));
  }
  app.use("*", async (c, next) => {
    const handler = connectHandlers.get(c.req.path);
    if (handler) return await handler(c.req.raw);
    await next();
    return undefined;
  });

  mountGateway(app, gatewayRoutes(server), maxBodyBytes);
  // Streaming, so not unary gateway routes: NDJSON lines for as long as the call lasts.
  const watchGateway = watchGatewayHandler(watchDeps(server), maxBodyBytes);
  const isLearner = learnerCheck(server);
  mountGatewayStream(app, "/v3/watch", async (request) => {
    // A learner serves no streams (etcd's stream interceptor), through the gateway either.
    if (!isLearner()) return await watchGateway(request);
    await request.body?.cancel();
    const { body, status } = streamErrorChunk(Errors.learnerNotSupported);
    return new Response(body, { status, headers: { "Content-Type": "application/json" } });
  });
  mountLeaseKeepAliveGateway(
    app,
    guardLearner(Lease, leaseService(leaseDeps(server)), learnerCheck(server)) as ServiceImpl<
      typeof Lease
    >,
    maxBodyBytes,
  );

  app.get("/version", (c) => c.json(versions));
  mountHealth(app, server);
  mountMetrics(app, server);
  for (const path of ["/version"]) {
    app.on(
      ["POST", "PUT", "DELETE", "PATCH"],
      path,
      () => new Response("Method Not Allowed\n", { status: 405 }),
    );
  }
  mountWebPage(app);
  app.notFound(() => new Response("404 page not found\n", { status: 404 }));
  return app;
}
