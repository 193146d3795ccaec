/**
 * The JSON gateway's streaming RPCs (`POST /v3/watch`, `POST /v3/lease/keepalive`), served
 * as etcd 3.4's grpc-gateway serves a bidirectional stream over one HTTP/1.1 exchange: the
 * body is a sequence of JSON requests, read one at a time as the call asks for them; the
 * answer streams one `{"result":{...}}` line per response.
 *
 * What grpc-gateway does, and this does too: a first request that does not decode is an HTTP
 * 500 with code 2 and Go's message; a later one only ends the requests (the call sees the end
 * of its input); an empty body starts the call with no requests; a call that fails before its
 * first response gets that error's HTTP status, and one that fails later ends the body with an
 * `{"error":{...}}` chunk; `Grpc-Metadata-Content-Type` is sent once a request was sent.
 *
 * @module
 */
import type { JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Hono } from "hono";
import { BodyTooLargeError } from "../internal/bounded_reader.ts";
import { Errors, httpStatusFor, toConnectError } from "./errors.ts";
import { gatewayError } from "./gateway.ts";
import { goJsonValues } from "./go_json.ts";

/** One bidirectional RPC as the gateway serves it. */
export interface GatewayStreamCall<I, O> {
  /** Decodes one request from a complete JSON value; throws with Go's message. */
  decode(json: string): I;
  /** One response as the `result` of its line (proto field names, int64 as strings). */
  encode(response: O): JsonValue;
  /**
   * Starts the call over `requests`. `signal` fires once the client is gone or the answer is
   * over; the call must then end its responses.
   */
  open(requests: AsyncIterable<I>, signal: AbortSignal, request: Request): AsyncIterator<O>;
}

const encoder = new TextEncoder();

/** Go's http.StatusText for the statuses a stream can end with. */
const statusText: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  408: "Request Timeout",
  412: "Precondition Failed",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** grpc-gateway 1.9's error chunk for a stream that failed: `{"error":{...}}`, no newline. */
export function streamErrorChunk(err: unknown): { body: string; status: number } {
  const ce = toConnectError(err);
  const status = httpStatusFor(ce.code);
  const error = {
    grpc_code: ce.code,
    http_code: status,
    message: ce.rawMessage,
    http_status: statusText[status] ?? "",
  };
  return { body: JSON.stringify({ error }), status };
}

async function nextOrError<T>(
  it: AsyncIterator<T>,
): Promise<IteratorResult<T> | { error: unknown }> {
  try {
    return await it.next();
  } catch (error) {
    return { error };
  }
}

/**
 * A fetch handler serving `call` over the gateway's streaming POST; each request in the body
 * may be at most `maxMessageBytes` long (a longer one is etcd's `request is too large`).
 * Requests are read from the body only as the call takes them, so a client cannot queue more
 * than one decoded request ahead of the call.
 */
export function gatewayStreamHandler<I, O>(
  call: GatewayStreamCall<I, O>,
  maxMessageBytes: number,
): (request: Request) => Promise<Response> {
  return async (request) => {
    // Deno.serve's request.signal also fires once a response completes, so the answer's own
    // end or cancel is what ends the call.
    const over = new AbortController();
    const values = goJsonValues(request.body, maxMessageBytes, over.signal);
    let first: { request: I } | undefined;
    try {
      const head = await values.next();
      if (!head.done) first = { request: call.decode(head.value) };
    } catch (err) {
      over.abort();
      await values.return(undefined).catch(() => {});
      if (err instanceof BodyTooLargeError) {
        return gatewayError(Errors.requestTooLarge.message, Errors.requestTooLarge.code);
      }
      return gatewayError(err instanceof Error ? err.message : String(err), Code.Unknown);
    }
    async function* requests(): AsyncGenerator<I> {
      if (first) yield first.request;
      try {
        for await (const text of values) yield call.decode(text);
      } catch {
        // As grpc-gateway: a bad later request only closes the sending side.
      }
    }
    const responses = call.open(requests(), over.signal, request);
    const finish = async () => {
      over.abort();
      await responses.return?.(undefined).catch(() => {});
    };
    // grpc-gateway writes the status with the first response, so a call that fails at once
    // (no leader) gets its error status.
    const onGone = () => over.abort();
    request.signal.addEventListener("abort", onGone, { once: true });
    const head = await nextOrError(responses);
    request.signal.removeEventListener("abort", onGone);
    if ("error" in head) {
      await finish();
      const { body, status } = streamErrorChunk(head.error);
      return new Response(body, { status, headers: { "content-type": "application/json" } });
    }
    const line = (response: O) =>
      encoder.encode(JSON.stringify({ result: call.encode(response) }) + "\n");
    let pending = head.done ? undefined : line(head.value);
    if (head.done) await finish();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pending) {
          controller.enqueue(pending);
          pending = undefined;
          return;
        }
        if (over.signal.aborted) return controller.close();
        const step = await nextOrError(responses);
        if ("error" in step) {
          controller.enqueue(encoder.encode(streamErrorChunk(step.error).body));
          controller.close();
          await finish();
        } else if (step.done) {
          controller.close();
          await finish();
        } else controller.enqueue(line(step.value));
      },
      async cancel() {
        await finish();
      },
    }, { highWaterMark: 0 });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (first) headers["grpc-metadata-content-type"] = "application/grpc";
    return new Response(stream, { status: 200, headers });
  };
}

/**
 * Mounts a streaming gateway handler at `path` and its `/v3beta/` alias; other methods get
 * grpc-gateway's 405.
 */
export function mountGatewayStream(
  app: Hono,
  path: string,
  handler: (request: Request) => Promise<Response>,
): void {
  for (const prefix of ["/v3/", "/v3beta/"]) {
    const at = path.replace(/^\/v3\//, prefix);
    app.post(at, (c) => handler(c.req.raw));
    app.on(
      ["GET", "PUT", "DELETE", "PATCH"],
      at,
      () =>
        new Response("Method Not Allowed\n", {
          status: 405,
          headers: {
            "content-type": "text/plain; charset=utf-8",
            "x-content-type-options": "nosniff",
          },
        }),
    );
  }
}
