/**
 * Bridges node:http requests and our HTTP/2 streams to a fetch-style handler (Hono's
 * `app.fetch`), so one Hono app serves every non-gRPC path on HTTP/1.1 and HTTP/2 alike.
 * Clients may go away at any moment: nothing here lets that become an unhandled error.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { connectionSpecificFields, type HeaderField, type ServerStream } from "./h2/mod.ts";

/** A fetch-style handler. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * Where a request body comes from (a node:http request or one of our HTTP/2 streams): `start`
 * registers the callbacks for its chunks, its end, and its source going away before the end.
 */
interface BodySource {
  start(on: { data(chunk: Uint8Array): void; end(): void; closed(): void }): void;
  pause(): void;
  resume(): void;
}

/**
 * A request body as a web stream. Cancelling it (a handler that stopped reading at its bound)
 * discards the rest of the body instead of destroying the source, so the handler's answer
 * (for example 413 or 400) can still be sent.
 */
function bodyStream(source: BodySource): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      source.start({
        data(chunk) {
          if (done) return;
          controller.enqueue(chunk);
          if ((controller.desiredSize ?? 0) <= 0) source.pause();
        },
        end() {
          if (!done) controller.close();
          done = true;
        },
        closed() {
          if (!done) controller.error(new Error("request body closed before its end"));
          done = true;
        },
      });
    },
    pull() {
      source.resume();
    },
    cancel() {
      done = true;
      source.resume(); // drain and drop
    },
  }, { highWaterMark: 1 });
}

/** A node:http request as a body source. */
function readableSource(source: Readable): BodySource {
  return {
    start(on) {
      source.on("data", (chunk: Uint8Array) => {
        on.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      });
      source.once("end", on.end);
      source.once("close", on.closed);
      source.on("error", () => {});
      source.pause();
    },
    pause: () => source.pause(),
    resume: () => source.resume(),
  };
}

function webHeaders(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
    else headers.set(name, value);
  }
  return headers;
}

/** The Request a fetch handler sees; only methods other than GET and HEAD read `body`. */
function fetchRequest(
  url: string,
  method: string,
  headers: Headers,
  body: BodySource,
  signal: AbortSignal,
): Request {
  const hasBody = method !== "GET" && method !== "HEAD";
  return new Request(url, {
    method,
    headers,
    body: hasBody ? bodyStream(body) : null,
    signal,
    // @ts-ignore: `duplex` is required by fetch for streaming bodies but missing from lib types
    duplex: "half",
  });
}

/** Where a response body goes: a node:http response or one of our HTTP/2 streams. */
interface BodySink {
  /** Takes a chunk; false asks the caller to wait for `drained()`. */
  write(chunk: Uint8Array): boolean;
  drained(): Promise<void>;
  /** Resolves (with null) when the client is gone. */
  closed: Promise<null>;
  isClosed(): boolean;
  end(): void;
}

/**
 * Copies a response body to `sink` with back-pressure; stops early if the sink closes. Each
 * wait for room also ends on close, so a vanished client never leaves it hanging.
 */
async function pipeBody(body: ReadableStream<Uint8Array>, sink: BodySink): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), sink.closed]);
      if (next === null || next.done || sink.isClosed()) break;
      if (!sink.write(next.value)) await Promise.race([sink.drained(), sink.closed]);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (!sink.isClosed()) sink.end();
}

/** A node:http request listener serving a fetch handler. */
export function nodeHandlerFor(
  handler: FetchHandler,
  origin: string,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    res.on("error", () => {});
    const run = async () => {
      const url = new URL(req.url ?? "/", origin).href;
      const aborted = new AbortController();
      res.once("close", () => aborted.abort());
      const request = fetchRequest(
        url,
        req.method ?? "GET",
        webHeaders(req.headers),
        readableSource(req),
        aborted.signal,
      );
      const response = await handler(request);
      if (res.destroyed) return;
      const headers: Record<string, string | string[]> = {};
      response.headers.forEach((value, name) => {
        const existing = headers[name];
        if (existing === undefined) headers[name] = value;
        else headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
      });
      // Answered before the request body was read to its end (a body over its bound, say):
      // the rest is not wanted, so close the connection as Go's server does, rather than
      // draining what may be gigabytes to keep it alive.
      const unread = !req.complete;
      if (unread) {
        headers["connection"] = "close";
        res.once("finish", () => req.socket?.destroy());
      }
      res.writeHead(response.status, headers);
      if (!response.body) return void res.end();
      await pipeBody(response.body, {
        write: (chunk) => res.write(chunk),
        drained: () => new Promise((resolve) => res.once("drain", () => resolve())),
        closed: new Promise((resolve) => res.once("close", () => resolve(null))),
        isClosed: () => res.destroyed,
        end: () => res.end(),
      });
    };
    run().catch(() => {
      if (res.destroyed) return;
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  };
}

/** Serves one HTTP/2 stream with a fetch handler (non-gRPC requests on an h2 connection). */
export function serveFetchOnStream(
  stream: ServerStream,
  handler: FetchHandler,
  origin: string,
): void {
  const raw = stream.headers;
  const aborted = new AbortController();
  let bodyClosed: (() => void) | null = null;
  // A body nobody reads (GET, HEAD) is dropped as it comes.
  stream.ondata = () => {};
  const body: BodySource = {
    start(on) {
      stream.ondata = on.data;
      stream.onend = on.end;
      bodyClosed = on.closed;
    },
    pause: () => stream.pause(),
    resume: () => stream.resume(),
  };
  const closed = new Promise<null>((resolve) => {
    stream.onclose = () => {
      aborted.abort();
      bodyClosed?.();
      resolve(null);
    };
  });
  const run = async () => {
    const url = new URL(raw[":path"] ?? "/", origin).href;
    const method = raw[":method"] ?? "GET";
    const request = fetchRequest(url, method, webHeaders(raw), body, aborted.signal);
    const response = await handler(request);
    if (stream.closed) return;
    const fields: HeaderField[] = [[":status", String(response.status)]];
    response.headers.forEach((value, name) => {
      // HTTP/2 forbids them (RFC 9113 §8.2.2); a handler's answer may carry them.
      if (!connectionSpecificFields.has(name)) fields.push([name, value]);
    });
    stream.respond(fields, response.body === null);
    if (response.body === null) return;
    await pipeBody(response.body, {
      write: (chunk) => stream.write(chunk),
      drained: () => new Promise((resolve) => (stream.ondrain = resolve)),
      closed,
      isClosed: () => stream.closed,
      end: () => stream.end(),
    });
  };
  run().catch(() => {
    if (stream.closed) return;
    if (!stream.headersSent) stream.respond([[":status", "500"]], true);
    else stream.reset();
  });
}
