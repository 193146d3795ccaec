import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { concatBytes, readUint32, writeUint32 } from "../../internal/bytes.ts";
import { SeededRandom } from "../../internal/seeded_random.ts";
import { H2Connection, type H2ConnectionOptions, type ServerStream } from "./connection.ts";
import {
  clientPreface,
  ErrorCode,
  Flag,
  frameHeaderBytes,
  FrameType,
  writeFrameHeader,
} from "./frames.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "./hpack.ts";

const testTimeoutMs = 10_000;

/** Runs `fn` against a listener whose connections are ours, then stops everything. */
async function withServer(
  options: Partial<H2ConnectionOptions> & Pick<H2ConnectionOptions, "onStream">,
  fn: (port: number, connections: Set<H2Connection>) => Promise<void>,
  onSocket?: (socket: net.Socket) => void,
): Promise<void> {
  const connections = new Set<H2Connection>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    onSocket?.(socket);
    connections.add(new H2Connection(socket, { maxConcurrentStreams: 100, ...options }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await fn((server.address() as net.AddressInfo).port, connections);
  } finally {
    for (const c of connections) c.destroy();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A node:http2 request: status, headers, body and trailers. */
function request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Uint8Array,
): Promise<
  { headers: http2.IncomingHttpHeaders; body: Uint8Array; trailers: Record<string, unknown> }
> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Uint8Array[] = [];
    req.on("response", (h) => (responseHeaders = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => resolve({ headers: responseHeaders, body: concat(chunks), trailers }));
    req.on("error", reject);
    if (body !== undefined) req.end(body);
  });
}

const concat = (chunks: Uint8Array[]) => concatBytes(...chunks);

/** Echoes the request body back with a trailer carrying its length. */
function echo(stream: ServerStream): void {
  const chunks: Uint8Array[] = [];
  stream.ondata = (c) => chunks.push(c);
  stream.onend = () => {
    const body = concat(chunks);
    stream.respond([[":status", "200"], ["x-path", stream.headers[":path"]]]);
    stream.write(body);
    stream.end([["x-length", String(body.length)]]);
  };
}

function connect(port: number, options: http2.ClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, options);
  session.on("error", () => {});
  return session;
}

Deno.test("h2: requests with bodies, headers and trailers, many at once", async () => {
  await withServer({ onStream: echo }, async (port) => {
    const session = connect(port);
    try {
      const random = new SeededRandom(7);
      const bodies = Array.from({ length: 200 }, (_, i) => {
        const b = new Uint8Array(random.int(3001));
        for (let j = 0; j < b.length; j++) b[j] = (i + j) & 0xff;
        return b;
      });
      const answers = await Promise.all(
        bodies.map((b, i) => request(session, { ":method": "POST", ":path": `/echo/${i}` }, b)),
      );
      for (let i = 0; i < bodies.length; i++) {
        strictEqual(answers[i].headers[":status"], 200);
        strictEqual(answers[i].headers["x-path"], `/echo/${i}`);
        deepStrictEqual(answers[i].body, bodies[i]);
        strictEqual(answers[i].trailers["x-length"], String(bodies[i].length));
      }
    } finally {
      session.close();
    }
  });
});

Deno.test("h2: bodies larger than every window go through in order both ways", async () => {
  await withServer({ onStream: echo, streamWindowBytes: 100_000 }, async (port) => {
    // A small client window makes the server wait for WINDOW_UPDATEs while it sends.
    const session = connect(port, { settings: { initialWindowSize: 1000 } });
    try {
      const body = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
      const answer = await request(session, { ":method": "POST", ":path": "/big" }, body);
      strictEqual(answer.body.length, body.length);
      deepStrictEqual(answer.body, body);
    } finally {
      session.close();
    }
  });
});

Deno.test("h2: a response without trailers, and a headers-only answer", async () => {
  await withServer({
    onStream: (stream) => {
      if (stream.headers[":path"] === "/only") {
        stream.respond([[":status", "204"]], true);
        return;
      }
      stream.respond([[":status", "200"], ["content-type", "text/plain"]]);
      stream.write(new TextEncoder().encode("hello"));
      stream.end();
    },
  }, async (port) => {
    const session = connect(port);
    try {
      const a = await request(session, { ":path": "/text" });
      strictEqual(new TextDecoder().decode(a.body), "hello");
      strictEqual(a.headers["content-type"], "text/plain");
      const b = await request(session, { ":path": "/only" });
      strictEqual(b.headers[":status"], 204);
      strictEqual(b.body.length, 0);
    } finally {
      session.close();
    }
  });
});

Deno.test("h2: listen() sets the callbacks that get the body, its end and the close", async () => {
  const events: string[] = [];
  let closed!: () => void;
  const serverSawClose = new Promise<void>((resolve) => (closed = resolve));
  await withServer({
    onStream: (stream) => {
      const chunks: Uint8Array[] = [];
      stream.listen(
        (chunk) => chunks.push(chunk),
        () => {
          events.push(`end after ${concat(chunks).length} bytes`);
          stream.respond([[":status", "200"]]);
          stream.end();
        },
        () => {
          events.push("close");
          closed();
        },
      );
    },
  }, async (port) => {
    const session = connect(port);
    try {
      const answer = await request(
        session,
        { ":method": "POST", ":path": "/x" },
        new Uint8Array(300),
      );
      strictEqual(answer.headers[":status"], 200);
      await serverSawClose;
      deepStrictEqual(events, ["end after 300 bytes", "close"]);
    } finally {
      session.close();
    }
  });
});

Deno.test("h2: a client reset closes the server's stream", async () => {
  let closed!: () => void;
  const serverSawClose = new Promise<void>((resolve) => (closed = resolve));
  let opened!: () => void;
  const serverSawOpen = new Promise<void>((resolve) => (opened = resolve));
  await withServer({
    onStream: (stream) => {
      stream.onclose = closed;
      stream.ondata = () => {};
      opened();
    },
  }, async (port) => {
    const session = connect(port);
    try {
      const req = session.request({ ":method": "POST", ":path": "/hang" }, { endStream: false });
      req.on("error", () => {});
      req.write(new Uint8Array(10));
      await serverSawOpen;
      req.close(http2.constants.NGHTTP2_CANCEL);
      await serverSawClose;
    } finally {
      session.close();
    }
  });
});

/** A raw HTTP/2 client: writes frames as given and collects the server's frames. */
class RawClient {
  readonly socket: net.Socket;
  readonly frames: { type: number; flags: number; streamId: number; payload: Uint8Array }[] = [];
  readonly encoder = new HpackEncoder();
  readonly decoder = new HpackDecoder({ maxTableBytes: 4096, maxHeaderListBytes: 1 << 20 });
  #input = new Uint8Array(0);
  #changed: (() => void) | null = null;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      const joined = concat([this.#input, chunk]);
      let at = 0;
      while (joined.length - at >= frameHeaderBytes) {
        const length = (joined[at] << 16) | (joined[at + 1] << 8) | joined[at + 2];
        if (joined.length - at < frameHeaderBytes + length) break;
        this.frames.push({
          type: joined[at + 3],
          flags: joined[at + 4],
          streamId: readUint32(joined, at + 5) & 0x7fffffff,
          payload: joined.slice(at + frameHeaderBytes, at + frameHeaderBytes + length),
        });
        at += frameHeaderBytes + length;
      }
      this.#input = joined.slice(at);
      this.#changed?.();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.#changed?.();
    });
  }

  static async open(port: number, settings: [number, number][] = []): Promise<RawClient> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    const client = new RawClient(socket);
    socket.write(new TextEncoder().encode(clientPreface));
    const payload = new Uint8Array(settings.length * 6);
    settings.forEach(([id, value], i) => {
      payload[i * 6] = id >> 8;
      payload[i * 6 + 1] = id & 0xff;
      writeUint32(payload, i * 6 + 2, value);
    });
    client.send(FrameType.settings, 0, 0, payload);
    return client;
  }

  send(
    type: number,
    flags: number,
    streamId: number,
    payload: Uint8Array = new Uint8Array(0),
  ): void {
    const out = new Uint8Array(frameHeaderBytes + payload.length);
    writeFrameHeader(out, 0, payload.length, type, flags, streamId);
    out.set(payload, frameHeaderBytes);
    this.socket.write(out);
  }

  headers(streamId: number, fields: HeaderField[], endStream: boolean): void {
    const flags = Flag.endHeaders | (endStream ? Flag.endStream : 0);
    this.send(FrameType.headers, flags, streamId, this.encoder.encode(fields));
  }

  /** Waits until `predicate` holds over the frames received (or the socket closed). */
  async until(predicate: () => boolean): Promise<void> {
    const deadline = Date.now() + testTimeoutMs;
    while (!predicate()) {
      if (this.closed) throw new Error("connection closed while waiting");
      if (Date.now() > deadline) throw new Error("timed out waiting for frames");
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  async untilClosed(): Promise<void> {
    const deadline = Date.now() + testTimeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("timed out waiting for close");
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  goawayCode(): number | undefined {
    const g = this.frames.find((f) => f.type === FrameType.goaway);
    return g === undefined ? undefined : readUint32(g.payload, 4);
  }

  dataBytes(streamId: number): number {
    return this.frames.filter((f) => f.type === FrameType.data && f.streamId === streamId)
      .reduce((n, f) => n + f.payload.length, 0);
  }

  close(): void {
    this.socket.destroy();
  }
}

const get: HeaderField[] = [[":method", "GET"], [":scheme", "http"], [":path", "/"], [
  ":authority",
  "test",
]];

Deno.test("h2: PING is answered with the same payload", async () => {
  await withServer({ onStream: echo }, async (port) => {
    const client = await RawClient.open(port);
    try {
      client.send(FrameType.ping, 0, 0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
      await client.until(() => client.frames.some((f) => f.type === FrameType.ping));
      const pong = client.frames.find((f) => f.type === FrameType.ping)!;
      strictEqual(pong.flags & Flag.ack, Flag.ack);
      deepStrictEqual([...pong.payload], [1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      client.close();
    }
  });
});

Deno.test("h2: a slow reader gets back-pressure, then the rest once it opens its window", async () => {
  let wrote = 0;
  let drained!: () => void;
  const drain = new Promise<void>((resolve) => (drained = resolve));
  let refused!: () => void;
  const backPressure = new Promise<void>((resolve) => (refused = resolve));
  const total = 256 * 1024;
  await withServer({
    onStream: (stream) => {
      stream.respond([[":status", "200"]]);
      const writeSome = () => {
        while (wrote < total) {
          wrote += 16 * 1024;
          if (!stream.write(new Uint8Array(16 * 1024))) {
            refused();
            stream.ondrain = () => {
              drained();
              writeSome();
            };
            return;
          }
        }
        stream.end();
      };
      writeSome();
    },
    streamHighWaterBytes: 64 * 1024,
  }, async (port) => {
    // The client's window is 65 535 bytes and it never returns any of it until told to.
    const client = await RawClient.open(port);
    try {
      client.headers(1, get, true);
      await backPressure;
      await client.until(() => client.dataBytes(1) === 65_535);
      ok(wrote < total, "the server stopped writing");
      const more = new Uint8Array(4);
      writeUint32(more, 0, total);
      client.send(FrameType.windowUpdate, 0, 0, more);
      client.send(FrameType.windowUpdate, 0, 1, more);
      await drain;
      await client.until(() =>
        client.frames.some((f) => f.streamId === 1 && (f.flags & Flag.endStream) !== 0)
      );
      strictEqual(client.dataBytes(1), total);
    } finally {
      client.close();
    }
  });
});

/** An `onSocket` hook that calls `onWrite` before each write to the socket. */
function countWrites(onWrite: () => void): (socket: net.Socket) => void {
  return (socket) => {
    const write = socket.write.bind(socket) as (chunk: Uint8Array) => boolean;
    socket.write = ((chunk: Uint8Array) => {
      onWrite();
      return write(chunk);
    }) as typeof socket.write;
  };
}

Deno.test("h2: a turn's output goes out in one write, or in pieces once it is large", async () => {
  const earlyWriteBytes = 4096;
  const chunkBytes = 512;
  let socketWrites = 0;
  /** Socket writes made while each stream's handler ran, by path. */
  const writesInHandler = new Map<string, number>();
  const chunks = (path: string) => path === "/large" ? 32 : 4;
  await withServer({
    earlyWriteBytes,
    onStream: (stream) => {
      const path = stream.headers[":path"];
      const before = socketWrites;
      stream.respond([[":status", "200"]]);
      for (let i = 0; i < chunks(path); i++) stream.write(new Uint8Array(chunkBytes).fill(i));
      stream.end();
      writesInHandler.set(path, socketWrites - before);
    },
  }, async (port) => {
    const client = connect(port);
    try {
      for (const path of ["/small", "/large"]) {
        const answer = await request(client, { ":path": path });
        const expected = new Uint8Array(chunks(path) * chunkBytes);
        for (let i = 0; i < chunks(path); i++) {
          expected.fill(i, i * chunkBytes, (i + 1) * chunkBytes);
        }
        deepStrictEqual(answer.body, expected, `${path}: every byte, in order`);
      }
    } finally {
      client.close();
    }
    // 2 KiB waits for the end of the turn; 16 KiB leaves in pieces while it is produced.
    strictEqual(writesInHandler.get("/small"), 0);
    const large = writesInHandler.get("/large")!;
    ok(large >= (32 * chunkBytes) / earlyWriteBytes - 1, `${large} writes during the turn`);
  }, countWrites(() => socketWrites++));
});

Deno.test("h2: a streaming message written with flushNow leaves at once, the rest of its turn after", async () => {
  const chunkBytes = 100;
  const chunk = (i: number) => new Uint8Array(chunkBytes).fill(i);
  let socketWrites = 0;
  /** Socket writes made inside each of the handler's turns. */
  const writesInTurn: number[] = [];
  await withServer({
    // No early writes by size: every write below comes from flushNow or the end of a turn.
    earlyWriteBytes: 1 << 20,
    onStream: (stream) => {
      stream.respond([[":status", "200"]]);
      const turn = (first: number, flushNow: boolean) => {
        const before = socketWrites;
        // Three messages of one turn, as a watch stream writes what is ready.
        for (let i = first; i < first + 3; i++) stream.write(chunk(i), flushNow);
        writesInTurn.push(socketWrites - before);
      };
      // Later turns, as events arrive for a long-lived stream.
      setTimeout(() => {
        turn(0, true);
        setTimeout(() => {
          turn(3, false);
          setTimeout(() => stream.end(), 5);
        }, 5);
      }, 5);
    },
  }, async (port) => {
    const client = connect(port);
    try {
      const answer = await request(client, { ":path": "/stream" });
      deepStrictEqual(answer.body, concatBytes(...[0, 1, 2, 3, 4, 5].map(chunk)), "all, in order");
    } finally {
      client.close();
    }
    // With flushNow the first message went out at once and the other two waited for the
    // turn's end; without it, the whole turn waited.
    deepStrictEqual(writesInTurn, [1, 0]);
  }, countWrites(() => socketWrites++));
});

Deno.test("h2: small writes of one turn share DATA frames, cut at the frame size and windows", async () => {
  const messageBytes = 100;
  const messagesPerStream = 300;
  const streams: ServerStream[] = [];
  /** Stream `s`'s message `i`: every byte names both, so order and ownership show. */
  const message = (s: number, i: number) => new Uint8Array(messageBytes).fill((s * 7 + i) & 0xff);
  const expected = (s: number) =>
    concatBytes(...Array.from({ length: messagesPerStream }, (_, i) => message(s, i)));
  await withServer({
    // No early writes: every frame boundary below comes from the frame size or a window.
    earlyWriteBytes: 1 << 20,
    onStream: (stream) => {
      stream.respond([[":status", "200"]]);
      streams.push(stream);
      if (streams.length < 2) return;
      // One turn, the two streams' messages interleaved as a watch fan-out writes them.
      for (let i = 0; i < messagesPerStream; i++) {
        streams.forEach((st, s) => st.write(message(s, i)));
      }
      for (const st of streams) st.end();
    },
  }, async (port) => {
    const streamWindow = 20_000;
    const client = await RawClient.open(port, [[0x4, streamWindow]]);
    try {
      client.headers(1, get, true);
      client.headers(3, get, true);
      const total = messageBytes * messagesPerStream;
      await client.until(() => client.dataBytes(1) === streamWindow);
      await client.until(() => client.dataBytes(3) === streamWindow);
      const more = new Uint8Array(4);
      writeUint32(more, 0, total);
      for (const id of [1, 3]) client.send(FrameType.windowUpdate, 0, id, more);
      await client.until(() =>
        [1, 3].every((id) =>
          client.frames.some((f) => f.streamId === id && (f.flags & Flag.endStream) !== 0)
        )
      );
      for (const [s, id] of [[0, 1], [1, 3]]) {
        const data = client.frames.filter((f) => f.type === FrameType.data && f.streamId === id);
        deepStrictEqual(concatBytes(...data.map((f) => f.payload)), expected(s), `stream ${id}`);
        // 300 messages: the window's 20 000 bytes in a full frame and the rest of the window,
        // then the other 10 000 in one frame (the last frame may be an empty END_STREAM).
        deepStrictEqual(
          data.map((f) => f.payload.length).filter((n) => n > 0),
          [16_384, streamWindow - 16_384, total - streamWindow],
          `stream ${id}'s frame sizes`,
        );
      }
    } finally {
      client.close();
    }
  });
});

Deno.test("h2: streams past the concurrency limit are refused", async () => {
  await withServer({ onStream: () => {}, maxConcurrentStreams: 2 }, async (port) => {
    const client = await RawClient.open(port);
    try {
      for (const id of [1, 3, 5]) client.headers(id, get, false);
      await client.until(() => client.frames.some((f) => f.type === FrameType.rstStream));
      const rst = client.frames.find((f) => f.type === FrameType.rstStream)!;
      strictEqual(rst.streamId, 5);
      strictEqual(readUint32(rst.payload, 0), ErrorCode.refusedStream);
    } finally {
      client.close();
    }
  });
});

Deno.test("h2: a header list over the limit is answered 431, and the next request works", async () => {
  await withServer({ onStream: echo, maxHeaderListBytes: 1024 }, async (port) => {
    const client = await RawClient.open(port);
    try {
      client.headers(1, [...get, ["x-big", "x".repeat(900)], ["x-big2", "y".repeat(900)]], true);
      client.headers(3, [[":method", "POST"], [":scheme", "http"], [":path", "/ok"]], true);
      await client.until(() =>
        client.frames.filter((f) => f.type === FrameType.headers && f.flags & Flag.endStream)
          .length === 2
      );
      const blocks = client.frames.filter((f) => f.type === FrameType.headers);
      const status1 = client.decoder.decode(blocks[0].payload)!;
      deepStrictEqual(status1[0], [":status", "431"]);
      strictEqual(blocks[1].streamId, 3);
      deepStrictEqual(client.decoder.decode(blocks[1].payload)![0], [":status", "200"]);
    } finally {
      client.close();
    }
  });
});

Deno.test("h2: protocol violations end the connection with GOAWAY and the right code", async (t) => {
  const cases: [string, (c: RawClient) => void, number][] = [
    ["a frame over the max frame size", (c) => {
      c.send(FrameType.data, 0, 1, new Uint8Array(20_000));
    }, ErrorCode.frameSizeError],
    [
      "DATA on an idle stream",
      (c) => c.send(FrameType.data, 0, 9, new Uint8Array(1)),
      ErrorCode
        .protocolError,
    ],
    ["an undecodable header block", (c) => {
      c.send(
        FrameType.headers,
        Flag.endHeaders,
        1,
        new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      );
    }, ErrorCode.compressionError],
    ["a stream id that is even", (c) => c.headers(2, get, true), ErrorCode.protocolError],
    [
      "PING of the wrong length",
      (c) => c.send(FrameType.ping, 0, 0, new Uint8Array(3)),
      ErrorCode
        .frameSizeError,
    ],
    ["a zero connection window increment", (c) => {
      c.send(FrameType.windowUpdate, 0, 0, new Uint8Array(4));
    }, ErrorCode.protocolError],
    ["CONTINUATION without HEADERS", (c) => {
      c.send(FrameType.continuation, Flag.endHeaders, 1, new Uint8Array(0));
    }, ErrorCode.protocolError],
    ["more DATA than the connection window", (c) => {
      c.headers(1, [[":method", "POST"], [":scheme", "http"], [":path", "/"]], false);
      for (let i = 0; i < 70; i++) c.send(FrameType.data, 0, 1, new Uint8Array(16_384));
    }, ErrorCode.flowControlError],
  ];
  for (const [name, act, code] of cases) {
    await t.step(name, async () => {
      await withServer({
        onStream: (s) => {
          // Nothing is consumed, so no window comes back.
          s.ondata = () => {};
          s.pause();
        },
        streamWindowBytes: 2 * 1024 * 1024,
        connectionWindowBytes: 1024 * 1024,
      }, async (port) => {
        const client = await RawClient.open(port);
        try {
          act(client);
          await client.untilClosed();
          strictEqual(client.goawayCode(), code);
        } finally {
          client.close();
        }
      });
    });
  }
});

Deno.test("h2: a bad preface closes the connection", async () => {
  await withServer({ onStream: echo }, async (port) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.resume();
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await closed;
  });
});

Deno.test("h2: random frames after a valid start never crash the server", async () => {
  const random = new SeededRandom(2024);
  let served = 0;
  await withServer({
    onStream: (s) => {
      served++;
      echo(s);
    },
  }, async (port) => {
    for (let round = 0; round < 40; round++) {
      const client = await RawClient.open(port);
      try {
        for (let i = 0; i < 20; i++) {
          const payload = new Uint8Array(random.int(65));
          for (let j = 0; j < payload.length; j++) payload[j] = random.int(256);
          client.send(random.int(11), random.int(256), random.int(9), payload);
        }
        client.send(FrameType.ping, 0, 0, new Uint8Array(8));
        await client.until(() =>
          client.frames.some((f) => f.type === FrameType.ping || f.type === FrameType.goaway)
        ).catch(() => {}); // a GOAWAY may also just close it
      } finally {
        client.close();
      }
    }
    // The server still serves a well-behaved client.
    const session = connect(port);
    try {
      const answer = await request(
        session,
        { ":method": "POST", ":path": "/after" },
        new Uint8Array(5),
      );
      strictEqual(answer.headers[":status"], 200);
    } finally {
      session.close();
    }
    ok(served >= 1);
  });
});

Deno.test("h2: close() refuses new streams and lets open ones finish", async () => {
  let answer!: () => void;
  await withServer({
    onStream: (stream) => {
      stream.ondata = () => {};
      answer = () => {
        stream.respond([[":status", "200"]]);
        stream.end();
      };
    },
  }, async (port, connections) => {
    const client = await RawClient.open(port);
    try {
      client.headers(1, get, true);
      await client.until(() => connections.size === 1 && [...connections][0].streamCount === 1);
      [...connections][0].close();
      await client.until(() => client.goawayCode() !== undefined);
      strictEqual(client.goawayCode(), ErrorCode.noError);
      answer();
      await client.until(() =>
        client.frames.some((f) => f.streamId === 1 && (f.flags & Flag.endStream) !== 0)
      );
      await client.untilClosed();
    } finally {
      client.close();
    }
  });
});
