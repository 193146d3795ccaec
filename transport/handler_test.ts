import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Logger } from "../internal/logger.ts";
import { type Message, MessageType } from "../raft/types.ts";
import { ByteReader } from "./byte_reader.ts";
import { peerHandler, type StreamKind } from "./handler.ts";
import { PeerHeader, type PeerIdentity, peerRequestHeaders } from "./headers.ts";
import { encodeFrame, encodeMessage, isLinkHeartbeat, readFramedMessage } from "./message_codec.ts";

const localId = 0x2n;
const clusterId = 0xc1a5n;
const peerId = 0x1n;
const removedId = 0x9n;
const maxMessageBytes = 4096;
const maxSnapshotBodyBytes = 64 * 1024;

const sender: PeerIdentity = {
  localId: peerId,
  clusterId,
  localUrls: ["http://127.0.0.1:12380"],
  serverVersion: "3.4.23",
  minClusterVersion: "3.0.0",
};

function message(overrides: Partial<Message> = {}): Message {
  return {
    type: MessageType.heartbeat,
    to: localId,
    from: peerId,
    term: 2,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 1,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(),
    ...overrides,
  };
}

function snapMessage(overrides: Partial<Message> = {}): Message {
  return message({
    type: MessageType.snap,
    snapshot: {
      metadata: { index: 100, term: 2, confState: { voters: [1n, 2n], learners: [] } },
      data: new Uint8Array([7]),
    },
    ...overrides,
  });
}

function setup() {
  const delivered: Message[] = [];
  const snapshots: { message: Message; body: Uint8Array }[] = [];
  const announced: [bigint, string[]][] = [];
  const opened: [bigint, StreamKind][] = [];
  let failDelivery = false;
  const handler = peerHandler({
    localId,
    clusterId,
    logger: new Logger("error"),
    maxMessageBytes,
    maxSnapshotBodyBytes,
    onMessage(m) {
      if (failDelivery) throw new Error("raft stopped");
      delivered.push(m);
    },
    async onSnapshot(m, body) {
      snapshots.push({ message: m, body: new Uint8Array(await new Response(body).arrayBuffer()) });
    },
    isRemoved: (id) => id === removedId,
    onPeerUrls: (id, urls) => announced.push([id, urls]),
    streams: {
      hasPeer: (id) => id === peerId || id === removedId,
      acceptStream(from, kind) {
        opened.push([from, kind]);
        return new ReadableStream({
          start(controller) {
            controller.enqueue(encodeFrame(encodeMessage(message({ to: 0n, from: 0n }))));
            controller.close();
          },
        });
      },
    },
  });
  return {
    handler,
    delivered,
    snapshots,
    announced,
    opened,
    failDeliveries() {
      failDelivery = true;
    },
  };
}

function headers(overrides: Record<string, string | null> = {}, to?: bigint): Headers {
  const h = peerRequestHeaders(sender, to);
  for (const [name, value] of Object.entries(overrides)) {
    if (value === null) h.delete(name);
    else h.set(name, value);
  }
  return h;
}

function post(
  path: string,
  body: Uint8Array | ReadableStream<Uint8Array> | null,
  h: Headers = headers(),
): Request {
  return new Request(`http://peer${path}`, {
    method: "POST",
    headers: h,
    body: body as BodyInit | null,
  });
}

function get(path: string, h: Headers = headers({}, localId)): Request {
  return new Request(`http://peer${path}`, { headers: h });
}

async function answer(response: Response): Promise<[number, string]> {
  return [response.status, await response.text()];
}

/** A body of `chunks` chunks of `chunkBytes`, counting the bytes pulled from it. */
function endless(chunkBytes: number, chunks: number, pulled = { bytes: 0 }) {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ >= chunks) return controller.close();
      pulled.bytes += chunkBytes;
      controller.enqueue(new Uint8Array(chunkBytes).fill(0x0a));
    },
  }, { highWaterMark: 0 });
}

const bytes = (m: Message) => encodeMessage(m);

Deno.test("pipeline: a message is delivered and answered 204", async () => {
  const t = setup();
  const response = await t.handler(post("/raft", bytes(message())));
  strictEqual(response.status, 204);
  strictEqual(response.headers.get(PeerHeader.clusterId), "c1a5");
  deepStrictEqual(t.delivered, [message()]);
  deepStrictEqual(t.announced, [[peerId, ["http://127.0.0.1:12380"]]]);
});

Deno.test("pipeline: headers are checked as etcd checks them", async (t) => {
  await t.step("another cluster's ID is 412", async () => {
    const s = setup();
    const request = post("/raft", bytes(message()), headers({ [PeerHeader.clusterId]: "beef" }));
    deepStrictEqual(await answer(await s.handler(request)), [412, "cluster ID mismatch\n"]);
    strictEqual(s.delivered.length, 0);
  });
  await t.step("no version headers is 412 incompatible version", async () => {
    const s = setup();
    const request = post(
      "/raft",
      bytes(message()),
      headers({ [PeerHeader.serverVersion]: null, [PeerHeader.minClusterVersion]: null }),
    );
    deepStrictEqual(await answer(await s.handler(request)), [412, "incompatible version\n"]);
  });
  await t.step("a peer that needs a newer cluster is 412", async () => {
    const s = setup();
    const request = post(
      "/raft",
      bytes(message()),
      headers({ [PeerHeader.minClusterVersion]: "3.5.0" }),
    );
    strictEqual((await s.handler(request)).status, 412);
  });
  await t.step("another recipient in X-Raft-To is 412", async () => {
    const s = setup();
    const request = post("/raft", bytes(message()), headers({}, 0x3n));
    deepStrictEqual(await answer(await s.handler(request)), [412, "to field mismatch\n"]);
  });
  await t.step("a message for another member is 412", async () => {
    const s = setup();
    const response = await s.handler(post("/raft", bytes(message({ to: 0x3n }))));
    strictEqual(response.status, 412);
    await response.body?.cancel();
    strictEqual(s.delivered.length, 0);
  });
  await t.step("a removed member is 403 with etcd's body, its body unread", async () => {
    const s = setup();
    const pulled = { bytes: 0 };
    const request = post(
      "/raft",
      endless(1024, 100, pulled),
      headers({ [PeerHeader.serverFrom]: removedId.toString(16) }),
    );
    const response = await s.handler(request);
    strictEqual(response.status, 403);
    deepStrictEqual(await response.json(), {
      message: "cannot process message from removed member",
    });
    strictEqual(pulled.bytes, 0);
    const fromRemoved = await s.handler(post("/raft", bytes(message({ from: removedId }))));
    strictEqual(fromRemoved.status, 403);
    await fromRemoved.body?.cancel();
    strictEqual(s.delivered.length, 0);
  });
});

Deno.test("pipeline: bad bodies are 400, local message types too", async () => {
  const s = setup();
  const garbage = new Uint8Array([0xff, 0xff, 0xff, 0x01]);
  deepStrictEqual(
    await answer(await s.handler(post("/raft", garbage))),
    [400, "error unmarshalling raft message\n"],
  );
  const unknownType = new Uint8Array([0x08, 77, 0x10, 2]);
  strictEqual((await answer(await s.handler(post("/raft", unknownType))))[0], 400);
  const hup = bytes(message({ type: MessageType.hup }));
  strictEqual((await answer(await s.handler(post("/raft", hup))))[0], 400);
  strictEqual(s.delivered.length, 0);
});

Deno.test("pipeline: an oversized body is 413 without reading it all", async () => {
  const s = setup();
  const pulled = { bytes: 0 };
  const response = await s.handler(post("/raft", endless(1024, 10_000, pulled)));
  deepStrictEqual(await answer(response), [413, "request body too large\n"]);
  ok(pulled.bytes <= maxMessageBytes + 1024, `read ${pulled.bytes} bytes of a 10 MB body`);

  const declared = headers({ "Content-Length": String(maxMessageBytes + 1) });
  const untouched = { bytes: 0 };
  const early = await s.handler(post("/raft", endless(1024, 10, untouched), declared));
  strictEqual(early.status, 413);
  await early.body?.cancel();
  strictEqual(untouched.bytes, 0, "a declared length over the cap reads nothing");
});

Deno.test("pipeline: a failing raft is 500, not a thrown handler", async () => {
  const s = setup();
  s.failDeliveries();
  deepStrictEqual(
    await answer(await s.handler(post("/raft", bytes(message())))),
    [500, "error processing raft message\n"],
  );
});

Deno.test("routing: unknown paths 404, wrong methods 405", async () => {
  const s = setup();
  deepStrictEqual(await answer(await s.handler(get("/nope"))), [404, "404 page not found\n"]);
  deepStrictEqual(await answer(await s.handler(get("/raft/other"))), [404, "404 page not found\n"]);
  const getPipeline = await s.handler(get("/raft"));
  strictEqual(getPipeline.status, 405);
  strictEqual(getPipeline.headers.get("Allow"), "POST");
  await getPipeline.body?.cancel();
  const postStream = await s.handler(post("/raft/stream/message/1", null));
  strictEqual(postStream.status, 405);
  strictEqual(postStream.headers.get("Allow"), "GET");
  await postStream.body?.cancel();
  strictEqual((await answer(await s.handler(get("/raft/snapshot"))))[0], 405);
});

Deno.test("streams: checked like etcd, then attached", async (t) => {
  await t.step("a known peer gets a stream body of frames", async () => {
    const s = setup();
    const response = await s.handler(get("/raft/stream/msgapp/1"));
    strictEqual(response.status, 200);
    strictEqual(response.headers.get(PeerHeader.serverVersion), "3.4.23");
    deepStrictEqual(s.opened, [[peerId, "msgapp"]]);
    const reader = new ByteReader(response.body!);
    const first = await readFramedMessage(reader, maxMessageBytes);
    strictEqual(first !== null && isLinkHeartbeat(first), true);
    strictEqual(await readFramedMessage(reader, maxMessageBytes), null);
  });
  await t.step("a bad path, kind or ID is 404", async () => {
    const s = setup();
    deepStrictEqual(
      await answer(await s.handler(get("/raft/stream/bogus/1"))),
      [404, "invalid path\n"],
    );
    deepStrictEqual(
      await answer(await s.handler(get("/raft/stream/message/1/2"))),
      [404, "invalid path\n"],
    );
    deepStrictEqual(
      await answer(await s.handler(get("/raft/stream/message/xyz"))),
      [404, "invalid from\n"],
    );
  });
  await t.step("an unknown sender is 404 and its URLs are reported", async () => {
    const s = setup();
    deepStrictEqual(
      await answer(await s.handler(get("/raft/stream/message/5"))),
      [404, "error sender not found\n"],
    );
    deepStrictEqual(s.announced, [[0x5n, ["http://127.0.0.1:12380"]]]);
    strictEqual(s.opened.length, 0);
  });
  await t.step("a removed member is 410 Gone", async () => {
    const s = setup();
    deepStrictEqual(
      await answer(await s.handler(get(`/raft/stream/message/${removedId.toString(16)}`))),
      [410, "removed member\n"],
    );
  });
  await t.step("a wrong X-Raft-To or cluster is 412", async () => {
    const s = setup();
    deepStrictEqual(
      await answer(await s.handler(get("/raft/stream/message/1", headers({}, 0x7n)))),
      [412, "to field mismatch\n"],
    );
    const otherCluster = headers({ [PeerHeader.clusterId]: "1" }, localId);
    deepStrictEqual(
      await answer(await s.handler(get("/raft/stream/message/1", otherCluster))),
      [412, "cluster ID mismatch\n"],
    );
    strictEqual(s.opened.length, 0);
  });
});

Deno.test("snapshot: the message and the database arrive, then 204", async () => {
  const s = setup();
  const database = Uint8Array.from({ length: 50_000 }, (_, i) => (i * 7) % 256);
  const body = new Uint8Array([...encodeFrame(encodeMessage(snapMessage())), ...database]);
  const response = await s.handler(post("/raft/snapshot", body));
  strictEqual(response.status, 204);
  strictEqual(s.snapshots.length, 1);
  deepStrictEqual(s.snapshots[0].message, snapMessage());
  deepStrictEqual(s.snapshots[0].body, database);
  deepStrictEqual(s.delivered, [snapMessage()], "the MsgSnap goes to raft after the save");
});

Deno.test("snapshot: bad heads and bodies are refused", async (t) => {
  await t.step("not a MsgSnap is 400", async () => {
    const s = setup();
    const body = encodeFrame(encodeMessage(message()));
    deepStrictEqual(
      await answer(await s.handler(post("/raft/snapshot", body))),
      [400, "wrong raft message type\n"],
    );
  });
  await t.step("a garbage or truncated head is 400", async () => {
    const s = setup();
    const garbage = encodeFrame(new Uint8Array([0xff, 0xff]));
    strictEqual((await answer(await s.handler(post("/raft/snapshot", garbage))))[0], 400);
    const truncated = encodeFrame(encodeMessage(snapMessage())).subarray(0, 12);
    const [status, text] = await answer(await s.handler(post("/raft/snapshot", truncated)));
    strictEqual(status, 400);
    ok(text.startsWith("failed to decode raft message"), text);
    strictEqual((await answer(await s.handler(post("/raft/snapshot", null))))[0], 400);
  });
  await t.step("an oversized head is 413 before it is read", async () => {
    const s = setup();
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(maxMessageBytes + 1));
    const pulled = { bytes: 0 };
    let sentHeader = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sentHeader) {
          sentHeader = true;
          return controller.enqueue(header);
        }
        pulled.bytes += 1024;
        controller.enqueue(new Uint8Array(1024));
      },
    }, { highWaterMark: 0 });
    strictEqual((await answer(await s.handler(post("/raft/snapshot", body))))[0], 413);
    strictEqual(pulled.bytes, 0);
  });
  await t.step("a database over the cap is 413 and not delivered", async () => {
    const s = setup();
    const head = encodeFrame(encodeMessage(snapMessage()));
    let sentHead = false;
    const pulled = { bytes: 0 };
    const tail = endless(4096, 1000, pulled);
    const tailReader = tail.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (!sentHead) {
          sentHead = true;
          return controller.enqueue(head);
        }
        const { done, value } = await tailReader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
    }, { highWaterMark: 0 });
    strictEqual((await answer(await s.handler(post("/raft/snapshot", body))))[0], 413);
    ok(pulled.bytes <= maxSnapshotBodyBytes + 4096, `pulled ${pulled.bytes}`);
    strictEqual(s.delivered.length, 0);
  });
  await t.step("a snapshot from a removed member is 403", async () => {
    const s = setup();
    const body = encodeFrame(encodeMessage(snapMessage({ from: removedId })));
    strictEqual((await answer(await s.handler(post("/raft/snapshot", body))))[0], 403);
    strictEqual(s.snapshots.length, 0);
  });
});

Deno.test("probing answers etcd's prober format", async () => {
  const s = setup();
  const response = await s.handler(new Request("http://peer/raft/probing"));
  strictEqual(response.status, 200);
  const health = await response.json();
  strictEqual(health.OK, true);
  ok(Number.isFinite(Date.parse(health.Now)), health.Now);
});
