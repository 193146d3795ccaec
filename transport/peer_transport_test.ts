import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { Logger } from "../internal/logger.ts";
import { type Message, MessageType } from "../raft/types.ts";
import type { PeerRequestHandler } from "./handler.ts";
import type { TransportLimits, TransportTiming } from "./limits.ts";
import { encodeFrame, encodeMessage } from "./message_codec.ts";
import { InvalidPeerUrlError, PeerTransport } from "./peer_transport.ts";

const clusterId = 0xc1a5n;
const quiet = new Logger("error");
/** Short intervals so that links come up, break and heal within a test's deadline. */
const fastTiming: Partial<TransportTiming> = {
  linkHeartbeatIntervalMs: 50,
  streamIdleTimeoutMs: 1_000,
  dialBackoffInitialMs: 10,
  dialBackoffMaxMs: 100,
  pipelineTimeoutMs: 1_000,
  probeIntervalMs: 50,
  probeTimeoutMs: 500,
};

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function message(type: MessageType, from: bigint, to: bigint, n: number): Message {
  return {
    type,
    to,
    from,
    term: 1,
    logTerm: type === MessageType.app ? 1 : 0,
    index: type === MessageType.app ? n : 0,
    entries: type === MessageType.app
      ? [{ term: 1, index: n + 1, type: 0, data: new Uint8Array([n % 256]) }]
      : [],
    commit: n,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(),
  };
}

interface MemberOptions {
  port?: number;
  snapshotBody?: (m: Message) => ReadableStream<Uint8Array>;
  limits?: Partial<TransportLimits>;
  timing?: Partial<TransportTiming>;
}

function startMember(id: bigint, options: MemberOptions = {}) {
  const received: Message[] = [];
  const unreachable: bigint[] = [];
  const snapshotStatus: [bigint, boolean][] = [];
  const snapshots: { message: Message; bytes: Uint8Array }[] = [];
  const requests = { pipeline: 0, stream: 0, snapshot: 0 };
  let handle: PeerRequestHandler | null = null;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen() {} },
    (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/raft") requests.pipeline++;
      if (path === "/raft/snapshot") requests.snapshot++;
      if (path.startsWith("/raft/stream/")) requests.stream++;
      return handle!(request);
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const transport = new PeerTransport({
    localId: id,
    clusterId,
    localUrls: [url],
    logger: quiet,
    timing: { ...fastTiming, ...options.timing },
    limits: options.limits,
    onMessage: (m) => {
      received.push(m);
    },
    onUnreachable: (peer) => unreachable.push(peer),
    onSnapshotStatus: (peer, ok) => snapshotStatus.push([peer, ok]),
    snapshotBody: options.snapshotBody,
    async onSnapshot(m, body) {
      snapshots.push({ message: m, bytes: new Uint8Array(await new Response(body).arrayBuffer()) });
    },
  });
  handle = transport.handler();
  return {
    id,
    url,
    port: server.addr.port,
    transport,
    received,
    unreachable,
    snapshotStatus,
    snapshots,
    requests,
    async stop() {
      await transport.stop();
      await server.shutdown();
    },
  };
}

type Member = ReturnType<typeof startMember>;

function streamsUp(a: Member, b: Member): boolean {
  const s = a.transport.peerStatus(b.id);
  return s !== undefined && s.outgoingStreams.message && s.outgoingStreams.msgapp &&
    s.incomingStreams.message && s.incomingStreams.msgapp;
}

async function connect(a: Member, b: Member) {
  a.transport.addPeer(b.id, [b.url]);
  b.transport.addPeer(a.id, [a.url]);
  await waitFor("streams in both directions", () => streamsUp(a, b) && streamsUp(b, a));
}

/** Alternating MsgApp and MsgHeartbeat, numbered 1..count. */
function traffic(from: bigint, to: bigint, count: number): Message[] {
  return Array.from(
    { length: count },
    (_, i) => message(i % 2 === 0 ? MessageType.app : MessageType.heartbeat, from, to, i + 1),
  );
}

function numbersOf(received: Message[], type: MessageType): number[] {
  return received.filter((m) => m.type === type).map((m) => m.commit);
}

Deno.test("streams carry messages both ways, each stream in order", async () => {
  const a = startMember(1n);
  const b = startMember(2n);
  try {
    await connect(a, b);
    const toB = traffic(1n, 2n, 400);
    const toA = traffic(2n, 1n, 400);
    for (let i = 0; i < 400; i += 50) {
      a.transport.send(toB.slice(i, i + 50));
      b.transport.send(toA.slice(i, i + 50));
    }
    await waitFor("all messages", () => a.received.length === 400 && b.received.length === 400);
    const odd = Array.from({ length: 200 }, (_, i) => 2 * i + 1);
    const even = odd.map((n) => n + 1);
    deepStrictEqual(numbersOf(b.received, MessageType.app), odd);
    deepStrictEqual(numbersOf(b.received, MessageType.heartbeat), even);
    deepStrictEqual(numbersOf(a.received, MessageType.app), odd);
    deepStrictEqual(numbersOf(a.received, MessageType.heartbeat), even);
    deepStrictEqual(b.received.find((m) => m.commit === 7), toB[6], "delivered intact");
    strictEqual(a.requests.pipeline + b.requests.pipeline, 0, "nothing needed the pipeline");
    deepStrictEqual(a.unreachable, []);
    await waitFor("a round trip time", () => (a.transport.peerStatus(2n)?.rtt?.count ?? 0) > 0);
    strictEqual(a.transport.peerStatus(2n)?.rtt?.healthy, true);
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("without a stream from the peer, the pipeline carries messages in order", async () => {
  const a = startMember(1n);
  const b = startMember(2n); // b does not know a: it never dials a's streams
  try {
    a.transport.addPeer(2n, [b.url]);
    const toB = traffic(1n, 2n, 60);
    a.transport.send(toB);
    await waitFor("all messages", () => b.received.length === 60);
    deepStrictEqual(b.received, toB);
    strictEqual(b.requests.pipeline, 60);
    const status = a.transport.peerStatus(2n)!;
    deepStrictEqual(status.outgoingStreams, { msgapp: false, message: false });
    strictEqual(status.queuedMessages, 0);
  } finally {
    await a.stop();
    await b.stop();
  }
});

function databaseBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

function streamOf(bytes: Uint8Array, chunkBytes: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunkBytes));
      at += chunkBytes;
    },
  });
}

Deno.test("a snapshot with a multi-megabyte database arrives intact", async () => {
  const database = databaseBytes(6 * 1024 * 1024 + 123);
  const a = startMember(1n, { snapshotBody: () => streamOf(database, 64 * 1024) });
  const b = startMember(2n);
  try {
    await connect(a, b);
    const snap: Message = {
      ...message(MessageType.snap, 1n, 2n, 0),
      snapshot: {
        metadata: { index: 500, term: 3, confState: { voters: [1n, 2n], learners: [] } },
        data: new TextEncoder().encode("membership"),
      },
    };
    a.transport.send([snap]);
    await waitFor("the snapshot outcome", () => a.snapshotStatus.length === 1);
    deepStrictEqual(a.snapshotStatus, [[2n, true]]);
    strictEqual(b.snapshots.length, 1);
    deepStrictEqual(b.snapshots[0].message, snap);
    strictEqual(b.snapshots[0].bytes.length, database.length);
    deepStrictEqual(b.snapshots[0].bytes, database);
    deepStrictEqual(b.received, [snap], "the MsgSnap reaches raft after the database is saved");
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("a peer that goes down costs bounded memory, and is redialled when back", async () => {
  const limits = { maxQueuedMessagesPerPeer: 256 };
  const a = startMember(1n, {
    limits,
    snapshotBody: () => streamOf(new Uint8Array(1024), 256),
  });
  let b = startMember(2n);
  const port = b.port;
  try {
    await connect(a, b);
    await b.stop();
    await waitFor("a to notice b is gone", () => {
      const s = a.transport.peerStatus(2n)!;
      return !s.outgoingStreams.message && !s.outgoingStreams.msgapp &&
        !s.incomingStreams.message && !s.incomingStreams.msgapp;
    });

    let maxQueued = 0;
    for (let round = 0; round < 40; round++) {
      a.transport.send(traffic(1n, 2n, 250));
      maxQueued = Math.max(maxQueued, a.transport.peerStatus(2n)!.queuedMessages);
    }
    ok(maxQueued <= 64, `queued ${maxQueued} messages for a dead peer`);
    ok(a.unreachable.length > 0 && a.unreachable.every((id) => id === 2n));
    // Accepted at most: the pipeline's queue (64) and the one post in flight.
    ok(a.transport.peerStatus(2n)!.droppedMessages >= 10_000 - 65);
    await waitFor(
      "the pipeline to give up",
      () => a.transport.peerStatus(2n)!.queuedMessages === 0,
    );
    strictEqual(a.transport.peerStatus(2n)!.active, false);
    a.transport.send([{
      ...message(MessageType.snap, 1n, 2n, 0),
      snapshot: {
        metadata: { index: 9, term: 1, confState: { voters: [1n, 2n], learners: [] } },
        data: new Uint8Array(),
      },
    }]);
    await waitFor("the snapshot failure", () => a.snapshotStatus.length === 1);
    deepStrictEqual(a.snapshotStatus, [[2n, false]]);
    await waitFor("a failed probe", () => a.transport.peerStatus(2n)!.rtt?.healthy === false);

    b = startMember(2n, { port });
    b.transport.addPeer(1n, [a.url]);
    await waitFor("streams to come back", () => streamsUp(a, b) && streamsUp(b, a));
    const before = a.received.length;
    a.transport.send([message(MessageType.heartbeat, 1n, 2n, 1)]);
    b.transport.send([message(MessageType.heartbeatResp, 2n, 1n, 1)]);
    await waitFor("messages after the return", () => {
      return b.received.length === 1 && a.received.length === before + 1;
    });
    strictEqual(b.requests.pipeline, 0, "the healed link uses its streams");
    await waitFor("a healthy probe", () => a.transport.peerStatus(2n)!.rtt?.healthy === true);
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("a stream with a misaddressed or oversized frame is dropped and redialled", async () => {
  const maxMessageBytes = 1024;
  let dials = 0;
  const rogue = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/raft/probing") return Response.json({ OK: true, Now: new Date() });
    if (path !== "/raft/stream/message/1") return new Response("no", { status: 404 });
    dials++;
    const oversized = new Uint8Array(8 + 16);
    new DataView(oversized.buffer).setBigUint64(0, BigInt(maxMessageBytes + 1));
    return new Response(
      new ReadableStream({
        start(controller) {
          const stranger = message(MessageType.heartbeat, 5n, 1n, 99);
          controller.enqueue(encodeFrame(encodeMessage(stranger)));
          const hup = message(MessageType.hup, 2n, 1n, 98);
          controller.enqueue(encodeFrame(encodeMessage(hup)));
          controller.enqueue(
            encodeFrame(encodeMessage(message(MessageType.heartbeat, 2n, 1n, dials))),
          );
          controller.enqueue(oversized);
          controller.close();
        },
      }),
    );
  });
  const a = startMember(1n, { limits: { maxMessageBytes } });
  try {
    a.transport.addPeer(2n, [`http://127.0.0.1:${rogue.addr.port}`]);
    await waitFor("three dials", () => dials >= 3 && a.received.length >= 3);
    ok(a.received.every((m) => m.from === 2n && m.type === MessageType.heartbeat));
    deepStrictEqual(a.received.slice(0, 3).map((m) => m.commit), [1, 2, 3]);
  } finally {
    await a.stop();
    await rogue.shutdown();
  }
});

Deno.test("a snapshot the receiver stops reading fails after the stall timeout", async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const stuck = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (new URL(request.url).pathname !== "/raft/snapshot") {
      return new Response("no", { status: 404 });
    }
    await released; // never reads the body
    return new Response(null, { status: 204 });
  });
  let pulledChunks = 0;
  const endlessDatabase = () =>
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (++pulledChunks > 4096) return controller.close(); // 256 MiB at most
        controller.enqueue(new Uint8Array(64 * 1024));
      },
    }, { highWaterMark: 0 });
  const a = startMember(1n, {
    snapshotBody: endlessDatabase,
    timing: { snapshotStallTimeoutMs: 200 },
  });
  try {
    a.transport.addPeer(2n, [`http://127.0.0.1:${stuck.addr.port}`]);
    a.transport.send([{
      ...message(MessageType.snap, 1n, 2n, 0),
      snapshot: {
        metadata: { index: 9, term: 1, confState: { voters: [1n, 2n], learners: [] } },
        data: new Uint8Array(),
      },
    }]);
    await waitFor("the snapshot to fail", () => a.snapshotStatus.length === 1);
    deepStrictEqual(a.snapshotStatus, [[2n, false]]);
    deepStrictEqual(a.unreachable, [2n]);
    ok(pulledChunks < 4096, "the send stopped pulling the database");
  } finally {
    release();
    await a.stop();
    await stuck.shutdown();
  }
});

Deno.test("a peer's other URLs are tried, and new URLs are dialled at once", async () => {
  const a = startMember(1n);
  const b = startMember(2n);
  const c = startMember(3n, { timing: { dialBackoffInitialMs: 10_000, dialBackoffMaxMs: 10_000 } });
  try {
    const refused = "http://127.0.0.1:1";
    b.transport.addPeer(1n, [a.url]);
    a.transport.addPeer(2n, [refused, b.url]);
    await waitFor("a's streams through b's second URL", () => streamsUp(a, b) && streamsUp(b, a));
    a.transport.send([message(MessageType.heartbeat, 1n, 2n, 1)]);
    await waitFor("a message to b", () => b.received.length === 1);

    // c waits 10 s before redialling a refused URL; new URLs must not wait for that.
    c.transport.addPeer(1n, [refused]);
    a.transport.addPeer(3n, [c.url]);
    await waitFor("c's first dials to fail", () => c.transport.peerStatus(1n)!.lastError !== null);
    c.transport.updatePeer(1n, [a.url]);
    await waitFor("c's streams from a", () => {
      const s = c.transport.peerStatus(1n)!;
      return s.incomingStreams.message && s.incomingStreams.msgapp;
    }, 2_000);
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }
});

Deno.test("peer URLs are validated; unknown recipients are ignored", async () => {
  const a = startMember(1n);
  try {
    throws(() => a.transport.addPeer(2n, ["ftp://x"]), InvalidPeerUrlError);
    throws(() => a.transport.addPeer(2n, ["not a url"]), InvalidPeerUrlError);
    throws(() => a.transport.addPeer(2n, []), InvalidPeerUrlError);
    strictEqual(a.transport.hasPeer(2n), false);
    a.transport.send([message(MessageType.heartbeat, 1n, 9n, 1)]);
    deepStrictEqual(a.unreachable, []);
    a.transport.addPeer(2n, ["http://127.0.0.1:1"]);
    await a.transport.removePeer(2n);
    strictEqual(a.transport.peerStatus(2n), undefined);
  } finally {
    await a.stop();
  }
});
