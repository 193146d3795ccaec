/**
 * The load generator's own ceiling: the same generator against a trivial in-process Connect KV
 * server (node:http2, h2c) that answers every call with an empty response. Generator and server
 * share one thread here, so the figure is a lower bound of what the generator alone can push;
 * a real server measured near it is limited by the generator, not by itself.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  KV,
  PutResponseSchema,
  RangeResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { type LoadOptions, type LoadResult, runLoad } from "./load.ts";
import type { PreparedCase } from "./workload.ts";

/** A trivial KV server on 127.0.0.1. */
export interface TrivialServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Stops listening and drops open sessions. */
  close(): Promise<void>;
}

/** Starts a KV server whose Put and Range do no work. */
export async function startTrivialServer(): Promise<TrivialServer> {
  const putResponse = create(PutResponseSchema);
  const rangeResponse = create(RangeResponseSchema);
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(KV, {
        put: () => putResponse,
        range: () => rangeResponse,
      }),
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Runs `testCase` against a fresh trivial server and returns the generator's figures. */
export async function measureGenerator(
  testCase: PreparedCase,
  options: LoadOptions,
): Promise<LoadResult> {
  const server = await startTrivialServer();
  try {
    return await runLoad(server.url, testCase, options);
  } finally {
    await server.close();
  }
}
