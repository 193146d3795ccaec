import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  KV,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { checkUnaryResponse, GrpcCallError, grpcFrame, RawGrpcConnection } from "./grpc_raw.ts";
import { freePort } from "./server_process.ts";
import { startTrivialServer } from "./trivial_server.ts";
import { kvPaths } from "./workload.ts";

const utf8 = new TextEncoder();

/** A standard gRPC server (connect-node's adapter on node:http2): the interop reference. */
async function startConnectServer() {
  const seenKeys: string[] = [];
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(KV, {
        put: (request) => {
          seenKeys.push(new TextDecoder().decode(request.key));
          return create(PutResponseSchema, { header: { revision: 7n } });
        },
        range: () => {
          throw new ConnectError("no such key: ключ 100%", Code.NotFound);
        },
      }),
  });
  const server = http2.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => sessions.add(s));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seenKeys,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

Deno.test("checkUnaryResponse accepts exactly one uncompressed message and status 0", async (t) => {
  const message = new Uint8Array([1, 2, 3]);
  const body = grpcFrame(message);
  await t.step("ok", () => {
    deepStrictEqual(checkUnaryResponse(200, "0", undefined, body), message);
    deepStrictEqual(checkUnaryResponse(200, "0", undefined, grpcFrame(new Uint8Array())).length, 0);
  });
  await t.step("a non-zero grpc-status is an error with its code and decoded message", () => {
    throws(
      () => checkUnaryResponse(200, "5", "no%20such%20key%3A%20%D0%BA", new Uint8Array()),
      (e: unknown) =>
        e instanceof GrpcCallError && e.code === 5 &&
        e.message === "grpc-status 5: no such key: к",
    );
    // Even with a well-formed message: the status decides.
    throws(() => checkUnaryResponse(200, "14", undefined, body), GrpcCallError);
  });
  const bad: Array<[string, number | undefined, string | undefined, Uint8Array]> = [
    ["no grpc-status", 200, undefined, body],
    ["HTTP 503", 503, "0", body],
    ["no HTTP status", undefined, "0", body],
    ["no message", 200, "0", new Uint8Array()],
    ["short prefix", 200, "0", body.subarray(0, 4)],
    ["compressed flag", 200, "0", new Uint8Array([1, 0, 0, 0, 0])],
    ["truncated message", 200, "0", body.subarray(0, body.length - 1)],
    ["two messages", 200, "0", new Uint8Array([...body, ...body])],
  ];
  for (const [name, httpStatus, grpcStatus, b] of bad) {
    await t.step(name, () => {
      throws(
        () => checkUnaryResponse(httpStatus, grpcStatus, undefined, b),
        (e: unknown) => e instanceof GrpcCallError && e.code === undefined,
      );
    });
  }
});

Deno.test("unary calls work against a standard gRPC server, errors included", async () => {
  const server = await startConnectServer();
  const conn = new RawGrpcConnection(server.url);
  try {
    const request = create(PutRequestSchema, { key: utf8.encode("k1"), value: utf8.encode("v") });
    const answer = await conn.unary(kvPaths.put, grpcFrame(toBinary(PutRequestSchema, request)));
    strictEqual(fromBinary(PutResponseSchema, answer).header?.revision, 7n);
    deepStrictEqual(server.seenKeys, ["k1"]);
    const range = grpcFrame(toBinary(RangeRequestSchema, create(RangeRequestSchema)));
    await rejects(
      conn.unary(kvPaths.range, range),
      (e: unknown) =>
        e instanceof GrpcCallError && e.code === Code.NotFound &&
        e.message === "grpc-status 5: no such key: ключ 100%",
    );
    // The failed call left the connection usable.
    await conn.unary(kvPaths.put, grpcFrame(toBinary(PutRequestSchema, request)));
    strictEqual(server.seenKeys.length, 2);
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("the server receives exactly the frame sent, on the path given", async () => {
  const seen: Array<[string, Uint8Array]> = [];
  const server = await startTrivialServer({ onRequest: (path, body) => seen.push([path, body]) });
  const conn = new RawGrpcConnection(server.url);
  try {
    const frame = grpcFrame(new Uint8Array(70_000).fill(7)); // More than one DATA frame.
    const answer = await conn.unary("/pkg.Svc/Method", frame);
    strictEqual(answer.length, 0);
    strictEqual(seen.length, 1);
    strictEqual(seen[0][0], "/pkg.Svc/Method");
    deepStrictEqual(seen[0][1], frame);
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("a refused connection fails the call", async () => {
  const conn = new RawGrpcConnection(`http://127.0.0.1:${freePort()}`);
  try {
    await rejects(conn.unary(kvPaths.put, grpcFrame(new Uint8Array())));
    // And the next call too, on a new attempt, rather than hanging on the dead session.
    await rejects(conn.unary(kvPaths.put, grpcFrame(new Uint8Array())));
  } finally {
    conn.close();
  }
});

Deno.test("after the server drops the session, the next call opens a new one", async () => {
  const server = await startTrivialServer();
  const conn = new RawGrpcConnection(server.url);
  try {
    await conn.unary(kvPaths.put, grpcFrame(new Uint8Array()));
    server.dropSessions();
    // The drop may race with the next call, which may then fail; the one after must not.
    const deadline = performance.now() + 5_000;
    let answered = false;
    for (let i = 0; i < 100 && !answered && performance.now() < deadline; i++) {
      answered = await conn.unary(kvPaths.put, grpcFrame(new Uint8Array())).then(
        () => true,
        () => false,
      );
    }
    ok(answered, "no call succeeded after the drop");
    strictEqual(server.answered() >= 2, true);
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("close fails the calls in flight and refuses later ones", async () => {
  const server = await startTrivialServer({ hang: true });
  const conn = new RawGrpcConnection(server.url);
  try {
    const inFlight = conn.unary(kvPaths.put, grpcFrame(new Uint8Array()));
    // Let the request go out before cutting the connection.
    await new Promise((resolve) => setTimeout(resolve, 50));
    conn.close();
    await rejects(inFlight);
    await rejects(conn.unary(kvPaths.put, grpcFrame(new Uint8Array())), GrpcCallError);
  } finally {
    conn.close();
    await server.close();
  }
});
