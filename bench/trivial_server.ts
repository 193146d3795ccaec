/**
 * A trivial gRPC server on raw `node:http2` (h2c, 127.0.0.1): it answers every unary call, on any
 * path, with an empty message, doing no work of its own. The generator-ceiling measurement drives
 * it, and the tests use it to check both clients (it can also answer with an error status).
 *
 * @module
 */

import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { assert } from "../internal/assert.ts";
import { grpcFrame } from "./grpc_raw.ts";

/** An error status the trivial server answers with (trailers-only, as gRPC servers do). */
export interface TrivialFailure {
  /** Non-zero gRPC status code. */
  code: number;
  /** grpc-message (the server percent-encodes it). */
  message: string;
  /** Fail every n-th call (1, the default: every call); the others are answered OK. */
  every?: number;
}

/** How the trivial server answers (tests vary it; the ceiling measurement uses the defaults). */
export interface TrivialServerOptions {
  /** Answer some or all calls with an error status instead of OK. */
  fail?: TrivialFailure;
  /** Never answer (a hung server). */
  hang?: boolean;
  /** Sees each request's path and body; without it the body is not kept. */
  onRequest?: (path: string, body: Uint8Array) => void;
}

/** A running trivial server. */
export interface TrivialServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Calls answered so far (OK or not). */
  answered(): number;
  /** Drops the open sessions (as a server restart would) but keeps listening. */
  dropSessions(): void;
  /** Stops listening and drops open sessions. */
  close(): Promise<void>;
}

/**
 * Upper bound on a request body the server keeps for `onRequest`. Test requests are tiny; a larger
 * one is a bug in the client under test.
 */
const maxKeptRequestBytes = 1024 * 1024;

const emptyAnswer = grpcFrame(new Uint8Array(0));
const okTrailers = { "grpc-status": "0" };

function answerOk(stream: http2.ServerHttp2Stream): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
    waitForTrailers: true,
  });
  stream.once("wantTrailers", () => stream.sendTrailers(okTrailers));
  stream.end(emptyAnswer);
}

/** Starts a trivial gRPC server on a free port of 127.0.0.1. */
export async function startTrivialServer(
  options: TrivialServerOptions = {},
): Promise<TrivialServer> {
  const fail = options.fail;
  assert(fail === undefined || fail.code !== 0, "a failure needs a non-zero code");
  const failEvery = fail?.every ?? 1;
  assert(Number.isSafeInteger(failEvery) && failEvery >= 1, "fail.every must be >= 1");
  const errorHeaders = {
    ":status": 200,
    "content-type": "application/grpc",
    "grpc-status": String(fail?.code),
    "grpc-message": encodeURIComponent(fail?.message ?? ""),
  };
  const onRequest = options.onRequest;
  const hang = options.hang ?? false;
  let answered = 0;
  const answer = (stream: http2.ServerHttp2Stream) => {
    if (hang) return;
    answered++;
    if (fail === undefined || answered % failEvery !== 0) answerOk(stream);
    else if (!stream.destroyed && !stream.closed) stream.respond(errorHeaders, { endStream: true });
  };
  const server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => {}); // A client going away mid-call is not the server's problem.
    if (onRequest === undefined) {
      // The body is not needed, but it must be read for "end" to come.
      stream.on("data", () => {});
      stream.on("end", () => answer(stream));
      return;
    }
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    stream.on("data", (chunk: Uint8Array) => {
      bytes += chunk.length;
      if (bytes <= maxKeptRequestBytes) chunks.push(chunk);
    });
    stream.on("end", () => {
      const body = new Uint8Array(Math.min(bytes, maxKeptRequestBytes));
      let at = 0;
      for (const c of chunks) {
        body.set(c, at);
        at += c.length;
      }
      onRequest(String(headers[":path"]), body);
      answer(stream);
    });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on("error", () => {});
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    answered: () => answered,
    dropSessions: () => {
      for (const s of sessions) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
