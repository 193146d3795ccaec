import { strictEqual } from "node:assert/strict";
import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { KV } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { startInProcess } from "../tests/support/in_process.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

// Deno 2.9.4-2.9.6 abort the whole process in node:http2 when a client connection that
// carried a few hundred calls closes; this guards the pin to 2.9.3 (design section 7).
Deno.test("a fresh server survives 2,000 unary calls on one connection, then its close", async () => {
  const member = await startInProcess();
  try {
    const sessions = new Http2SessionManager(member.clientUrl);
    const kv = createClient(
      KV,
      createGrpcTransport({ baseUrl: member.clientUrl, sessionManager: sessions }),
    );
    await kv.put({ key: utf8("guard"), value: utf8("v") });
    for (let i = 0; i < 2000; i++) {
      const res = await kv.range({ key: utf8("guard"), serializable: i % 2 === 0 });
      strictEqual(res.count, 1n);
    }
    sessions.abort();
    // A new connection after the close still gets answers.
    const again = createClient(KV, createGrpcTransport({ baseUrl: member.clientUrl }));
    const res = await again.range({ key: utf8("guard") });
    strictEqual(new TextDecoder().decode(res.kvs[0].value), "v");
  } finally {
    await member.stop();
  }
});

Deno.test("one port serves gRPC over HTTP/2 and the gateway over HTTP/1.1 and HTTP/2", async () => {
  const member = await startInProcess();
  try {
    const h1 = await fetch(`${member.clientUrl}/v3/kv/put`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("k"), value: btoa("v") }),
    });
    strictEqual(h1.status, 200);
    strictEqual((await h1.json()).header.revision, "2");

    const session = http2.connect(member.clientUrl);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":method": "GET", ":path": "/version" });
        let text = "";
        req.setEncoding("utf8");
        req.on("data", (chunk: string) => (text += chunk));
        req.on("end", () => resolve(text));
        req.on("error", reject);
        req.end();
      });
      strictEqual(JSON.parse(body).etcdserver, "3.4.23");
    } finally {
      session.close();
    }
  } finally {
    await member.stop();
  }
});

Deno.test("a connection that never sends a byte does not hold up others", async () => {
  const member = await startInProcess();
  const { hostname, port } = new URL(member.clientUrl);
  const idle = await Deno.connect({ hostname, port: Number(port) });
  try {
    const res = await fetch(`${member.clientUrl}/health`);
    strictEqual(res.status, 200);
    strictEqual((await res.json()).health, "true");
  } finally {
    idle.close();
    await member.stop();
  }
});

Deno.test("Connect and gRPC-web clients over HTTP/1.1 reach the same services", async (t) => {
  const { createConnectTransport, createGrpcWebTransport } = await import(
    "@connectrpc/connect-node"
  );
  const member = await startInProcess();
  try {
    for (
      const [name, transport] of [
        ["connect", createConnectTransport({ baseUrl: member.clientUrl, httpVersion: "1.1" })],
        ["grpc-web", createGrpcWebTransport({ baseUrl: member.clientUrl, httpVersion: "1.1" })],
      ] as const
    ) {
      await t.step(name, async () => {
        const kv = createClient(KV, transport);
        const key = utf8(`via-${name}`);
        const put = await kv.put({ key, value: utf8("v1") });
        const txn = await kv.txn({
          compare: [{
            key,
            target: 2, /* MOD */
            result: 0,
            targetUnion: { case: "modRevision", value: put.header!.revision },
          }],
          success: [{
            request: { case: "requestPut", value: { key, value: utf8("v2"), prevKv: true } },
          }],
        });
        strictEqual(txn.succeeded, true);
        const got = await kv.range({ key });
        strictEqual(new TextDecoder().decode(got.kvs[0].value), "v2");
        strictEqual(got.kvs[0].version, 2n);
        // etcd's error text and code come through the Connect protocol too.
        const err = await kv.put({ key: new Uint8Array(), value: utf8("x") }).then(
          () => null,
          (e) => e,
        );
        strictEqual(err?.rawMessage, "etcdserver: key is not provided");
        strictEqual(err?.code, 3);
      });
    }
  } finally {
    await member.stop();
  }
});

Deno.test("deeply nested txns are applied or refused as etcd does, never crash the member", async () => {
  const { create } = await import("@bufbuild/protobuf");
  const { TxnRequestSchema } = await import("../proto/gen/etcd/etcdserverpb/rpc_pb.ts");
  const member = await startInProcess();
  try {
    const kv = createClient(KV, createGrpcTransport({ baseUrl: member.clientUrl }));
    const nested = (depth: number) => {
      let txn = create(TxnRequestSchema, {
        success: [{
          request: { case: "requestPut", value: { key: utf8("deep"), value: utf8("v") } },
        }],
      });
      for (let i = 0; i < depth; i++) {
        txn = create(TxnRequestSchema, {
          success: [{ request: { case: "requestTxn", value: txn } }],
        });
      }
      return txn;
    };
    // The client library cannot decode a response nested this deep; the member applies it.
    await kv.txn(nested(126)).catch(() => {});
    const refused = await kv.txn(nested(128)).then(() => null, (e) => e);
    strictEqual(refused?.rawMessage, "etcdserver: too many operations in txn request");
    const got = await kv.range({ key: utf8("deep") });
    strictEqual(got.count, 1n);
    strictEqual(got.header?.revision, 2n);
  } finally {
    await member.stop();
  }
});

Deno.test("an HTTP/1.1 connection stays open for the next request (keep-alive)", async () => {
  const member = await startInProcess();
  const { hostname, port } = new URL(member.clientUrl);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const reader = conn.readable.getReader();
    let pending = "";
    /** Reads one whole response (head and Content-Length body) off the connection. */
    const readResponse = async (): Promise<string> => {
      for (let reads = 0; reads < 100; reads++) {
        const headEnd = pending.indexOf("\r\n\r\n");
        if (headEnd >= 0) {
          const head = pending.slice(0, headEnd);
          const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
          const lastChunk = pending.indexOf("\r\n0\r\n\r\n", headEnd);
          const end = /transfer-encoding: chunked/i.test(head)
            ? (lastChunk < 0 ? Infinity : lastChunk + 7)
            : headEnd + 4 + length;
          if (pending.length >= end) {
            const response = pending.slice(0, end);
            pending = pending.slice(end);
            return response;
          }
        }
        const { done, value } = await reader.read();
        if (done) throw new Error(`connection closed; had ${JSON.stringify(pending)}`);
        pending += new TextDecoder().decode(value);
      }
      throw new Error("no whole response after 100 reads");
    };
    const request = utf8(`GET /version HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
    for (let i = 0; i < 3; i++) {
      await conn.write(request);
      const response = await readResponse();
      strictEqual(response.startsWith("HTTP/1.1 200"), true, response);
      strictEqual(/connection: close/i.test(response), false, `response ${i} closes: ${response}`);
    }
    await reader.cancel();
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed by cancelling its readable.
    }
    await member.stop();
  }
});
