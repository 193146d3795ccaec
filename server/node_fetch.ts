/**
 * Bridges node:http / node:http2 requests to a fetch-style handler (Hono's `app.fetch`), so one
 * Hono app serves every non-gRPC path on both HTTP/1.1 and HTTP/2 connections.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { Readable } from "node:stream";

/** A fetch-style handler. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

type NodeRequest = IncomingMessage;
type NodeResponse = ServerResponse;

/** Converts a node request to a fetch Request (the body streams; nothing is buffered here). */
export function toFetchRequest(req: NodeRequest, origin: string): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
    else headers.set(name, value);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const controller = new AbortController();
  req.once("close", () => controller.abort());
  return new Request(new URL(req.url ?? "/", origin), {
    method,
    headers,
    body: hasBody ? Readable.toWeb(req as Readable) as ReadableStream<Uint8Array> : null,
    signal: controller.signal,
    // @ts-ignore: `duplex` is required by fetch for streaming bodies but missing from lib types
    duplex: "half",
  });
}

/** Writes a fetch Response to a node response, streaming its body with back-pressure. */
export async function writeFetchResponse(response: Response, res: NodeResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    const existing = headers[name];
    if (existing === undefined) headers[name] = value;
    else headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
  });
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const closed = new Promise<void>((resolve) => res.once("close", resolve));
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), closed.then(() => null)]);
      if (next === null) {
        await reader.cancel().catch(() => {});
        return;
      }
      if (next.done) break;
      const ok = res.write(next.value);
      if (!ok) {
        await Promise.race([
          new Promise<void>((resolve) => res.once("drain", resolve)),
          closed,
        ]);
      }
    }
    res.end();
  } catch {
    res.destroy();
  }
}

/** A node request listener serving a fetch handler. */
export function nodeHandlerFor(
  handler: FetchHandler,
  origin: string,
): (req: NodeRequest, res: NodeResponse) => void {
  return (req, res) => {
    Promise.resolve()
      .then(() => handler(toFetchRequest(req, origin)))
      .then((response) => writeFetchResponse(response, res))
      .catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
  };
}

/** Serves one raw HTTP/2 stream with a fetch handler (non-gRPC requests on an h2 connection). */
export function serveFetchOnStream(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  handler: FetchHandler,
  origin: string,
): void {
  const method = String(headers[":method"] ?? "GET");
  const requestHeaders = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    requestHeaders.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const hasBody = method !== "GET" && method !== "HEAD";
  const controller = new AbortController();
  stream.once("close", () => controller.abort());
  const request = new Request(new URL(String(headers[":path"] ?? "/"), origin), {
    method,
    headers: requestHeaders,
    body: hasBody
      ? Readable.toWeb(stream as unknown as Readable) as ReadableStream<Uint8Array>
      : null,
    signal: controller.signal,
    // @ts-ignore: `duplex` is required by fetch for streaming bodies but missing from lib types
    duplex: "half",
  });
  Promise.resolve()
    .then(() => handler(request))
    .then(async (response) => {
      const out: Record<string, string> = { ":status": String(response.status) };
      response.headers.forEach((value, name) => (out[name] = value));
      stream.respond(out, { endStream: response.body === null });
      if (!response.body) return;
      const reader = response.body.getReader();
      for (;;) {
        const next = await reader.read();
        if (next.done || stream.destroyed) break;
        if (!stream.write(next.value)) {
          await new Promise((resolve) => stream.once("drain", resolve));
        }
      }
      stream.end();
    })
    .catch(() => {
      if (!stream.headersSent && !stream.destroyed) {
        stream.respond({ ":status": 500 }, { endStream: true });
      } else stream.destroy();
    });
}
