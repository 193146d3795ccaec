import { deepStrictEqual, strictEqual } from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  KV,
  PutRequestSchema,
  RangeResponseSchema,
  ResponseHeaderSchema,
  Watch,
  WatchResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors } from "./errors.ts";
import { GrpcServer } from "./grpc_server.ts";
import { H2Connection } from "./h2/mod.ts";

interface Reply {
  status: string | undefined;
  message: string | undefined;
  body: Uint8Array;
}

function frame(message: Uint8Array, lengthOverride?: number): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, lengthOverride ?? message.length);
  out.set(message, 5);
  return out;
}

async function withServer(
  fn: (
    call: (path: string, body: Uint8Array, headers?: Record<string, string>) => Promise<Reply>,
  ) => Promise<void>,
) {
  const grpc = new GrpcServer({ readMaxBytes: 1024 });
  grpc.service(KV, {
    range: () =>
      create(RangeResponseSchema, { header: create(ResponseHeaderSchema, { revision: 7n }) }),
    put: (req) => {
      if (req.key.length === 0) throw Errors.emptyKey;
      return { header: { revision: 8n } };
    },
    deleteRange: () => ({}),
    txn: () => ({}),
    compact: () => ({}),
  });
  grpc.service(Watch, {
    async *watch(requests) {
      let n = 0n;
      for await (const _ of requests) yield create(WatchResponseSchema, { watchId: n++ });
    },
  });
  const connections = new Set<H2Connection>();
  const server = net.createServer((socket) => {
    connections.add(
      new H2Connection(socket, { maxConcurrentStreams: 100, onStream: (s) => grpc.handle(s) }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const call = (path: string, body: Uint8Array, headers: Record<string, string> = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      const chunks: Uint8Array[] = [];
      let status: string | undefined;
      let message: string | undefined;
      req.on("response", (h) => {
        if (h["grpc-status"] !== undefined) {
          status = String(h["grpc-status"]);
          message = h["grpc-message"] as string | undefined;
        }
      });
      req.on("trailers", (t) => {
        status = String(t["grpc-status"]);
        message = t["grpc-message"] as string | undefined;
      });
      req.on("data", (c: Uint8Array) => chunks.push(c));
      req.on("end", () => {
        const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) (body.set(c, at), at += c.length);
        resolve({ status, message, body });
      });
      req.on("error", reject);
      req.end(body);
    });
  try {
    await fn(call);
  } finally {
    session.close();
    for (const conn of connections) conn.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const putBytes = (key: string) =>
  toBinary(PutRequestSchema, create(PutRequestSchema, { key: new TextEncoder().encode(key) }));

Deno.test("gRPC server: answers, errors and transport failures worded as grpc-go", async (t) => {
  await withServer(async (call) => {
    await t.step("unary success", async () => {
      const r = await call("/etcdserverpb.KV/Put", frame(putBytes("k")));
      strictEqual(r.status, "0");
      strictEqual(r.body.length > 5, true);
    });
    await t.step("service error keeps etcd's message and code", async () => {
      const r = await call("/etcdserverpb.KV/Put", frame(putBytes("")));
      deepStrictEqual([r.status, r.message], ["3", "etcdserver: key is not provided"]);
    });
    await t.step("a message over the limit is refused before it is read", async () => {
      const r = await call("/etcdserverpb.KV/Put", frame(new Uint8Array(3), 2 ** 32 - 1));
      deepStrictEqual([r.status, r.message], [
        "8",
        "grpc: received message larger than max (4294967295 vs. 1024)",
      ]);
    });
    await t.step("truncated message", async () => {
      const r = await call("/etcdserverpb.KV/Put", frame(new Uint8Array(3), 100));
      strictEqual(r.status, "13");
    });
    await t.step("malformed protobuf", async () => {
      const r = await call("/etcdserverpb.KV/Put", frame(new Uint8Array(64).fill(0xff)));
      strictEqual(r.status, "13");
      strictEqual(r.message?.startsWith("grpc: error unmarshalling request:"), true);
    });
    await t.step("compressed requests are refused", async () => {
      const r = await call("/etcdserverpb.KV/Put", frame(putBytes("k")), {
        "grpc-encoding": "gzip",
      });
      deepStrictEqual([r.status, r.message], [
        "12",
        `grpc: Decompressor is not installed for grpc-encoding "gzip"`,
      ]);
    });
    await t.step("unknown service and method", async () => {
      strictEqual(
        (await call("/nope.Svc/X", frame(new Uint8Array()))).message,
        "unknown service nope.Svc",
      );
      strictEqual(
        (await call("/etcdserverpb.KV/Nope", frame(new Uint8Array()))).message,
        "unknown method Nope for service etcdserverpb.KV",
      );
    });
    await t.step("bidi stream answers each request", async () => {
      const two = new Uint8Array([...frame(new Uint8Array()), ...frame(new Uint8Array())]);
      const r = await call("/etcdserverpb.Watch/Watch", two);
      strictEqual(r.status, "0");
      const first = fromBinary(WatchResponseSchema, r.body.subarray(5, 5 + r.body[4]));
      strictEqual(first.watchId, 0n);
    });
  });
});
