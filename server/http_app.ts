/**
 * The Hono app behind every non-gRPC request on the client port: Connect and gRPC-web for the
 * services, the JSON gateway, `/version`, `/health`, `/livez`, `/readyz` and `/metrics`.
 *
 * @module
 */
import { createConnectRouter } from "@connectrpc/connect";
import { createFetchHandler } from "@connectrpc/connect/protocol";
import { Hono } from "hono";
import type { EtcdServer } from "./etcd_server.ts";
import { decodeOptions } from "./codec.ts";
import { mountGateway } from "./gateway.ts";
import { mountHealth, mountMetrics } from "./health.ts";
import { gatewayRoutes, interceptors, routes, watchDeps } from "./routes.ts";
import { watchGatewayHandler } from "./watch_service.ts";
import { mountWebPage } from "./web_page.ts";
import { versions } from "./version.ts";

import { grpcOverheadBytes } from "./limits.ts";

/** Builds the client-port app for `server`. */
export function clientApp(server: EtcdServer): Hono {
  const app = new Hono();
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
  // Streaming, so not a unary gateway route: NDJSON lines for as long as the client stays.
  const watchGateway = watchGatewayHandler(watchDeps(server), maxBodyBytes);
  for (const path of ["/v3/watch", "/v3beta/watch"]) {
    app.post(path, (c) => watchGateway(c.req.raw));
    app.on(
      ["GET", "PUT", "DELETE", "PATCH"],
      path,
      () => new Response("Method Not Allowed\n", { status: 405 }),
    );
  }

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
