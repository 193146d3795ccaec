/**
 * The peer listener's raft endpoints as one Fetch-API handler (mount it on `Deno.serve` or in
 * a Hono app; test it by calling it with a `Request`):
 *
 * ```
 * POST /raft                          pipeline: one raftpb.Message, answered 204
 * GET  /raft/stream/{message|msgapp}/:from
 *                                     a long-lived body of frames for peer :from
 * POST /raft/snapshot                 a framed MsgSnap, then the backend database bytes
 * GET  /raft/probing                  {"OK":true,"Now":"..."} for the peer's prober
 * ```
 *
 * Status codes and error bodies follow etcd's rafthttp: 412 for a cluster, version or
 * recipient mismatch, 410 for a stream from a removed member, 403 for a message from one, 404
 * for an unknown sender or path, 405 for a wrong method, 400 for a body that is not a raft
 * message. Bodies are bounded (413 past the bound; etcd has no total bound). The handler
 * never throws: an unexpected failure is logged and answered 500.
 *
 * @module
 */
import { BodyTooLargeError, readBounded } from "../internal/bounded_reader.ts";
import { Logger } from "../internal/logger.ts";
import { type Message, MessageType } from "../raft/types.ts";
import { ByteReader, TruncatedStreamError } from "./byte_reader.ts";
import {
  announcedPeerUrls,
  checkCompatibility,
  defaultMinClusterVersion,
  defaultServerVersion,
  formatId,
  parseId,
  PeerErrorText,
  PeerHeader,
  type PeerIdentity,
} from "./headers.ts";
import { defaultTransportLimits } from "./limits.ts";
import {
  decodeMessage,
  FrameTooLargeError,
  isLocalMessageType,
  readFramedMessage,
} from "./message_codec.ts";
import { RaftpbDecodeError } from "./raftpb_codec.ts";

/** The two stream endpoints; both carry the same framing (see `message_codec.ts`). */
export type StreamKind = "message" | "msgapp";

/** Both stream kinds, in the order readers dial them. */
export const streamKinds: readonly StreamKind[] = ["msgapp", "message"];

/** Paths of the raft endpoints. */
export const RaftPath = {
  pipeline: "/raft",
  streamPrefix: "/raft/stream/",
  snapshot: "/raft/snapshot",
  probing: "/raft/probing",
} as const;

/** The outgoing side of streams, which the handler hands a stream request to. */
export interface StreamAcceptor {
  /** True when `id` is a peer the local member writes to. */
  hasPeer(id: bigint): boolean;
  /**
   * Opens the body of a stream to `from`: the frames of messages for that peer. A newer stream
   * of the same kind replaces an older one. Null when `from` is not (or no longer) a peer.
   */
  acceptStream(from: bigint, kind: StreamKind): ReadableStream<Uint8Array> | null;
}

/** What the peer handler needs from the server. */
export interface PeerHandlerOptions {
  /** The local member's ID. */
  localId: bigint;
  /** The cluster's ID; requests from another cluster are refused. */
  clusterId: bigint;
  /** Gives a received message to raft. A rejection is answered 500. */
  onMessage(message: Message): void | Promise<void>;
  /**
   * Saves a snapshot's backend database from `body` (bounded by `maxSnapshotBodyBytes`; it
   * errors with `BodyTooLargeError` past that). Once this resolves the MsgSnap is given to
   * `onMessage` and the sender gets 204.
   */
  onSnapshot(message: Message, body: ReadableStream<Uint8Array>): Promise<void>;
  /** Where stream requests go; without it every stream request is answered 404. */
  streams?: StreamAcceptor;
  /** True for a member removed from the cluster: its requests are refused. */
  isRemoved?(id: bigint): boolean;
  /** Told the peer URLs a sender announces (`X-PeerURLs`), on every request that has them. */
  onPeerUrls?(id: bigint, urls: string[]): void;
  /** Where the handler logs (defaults to a new warn-level logger). */
  logger?: Logger;
  /** Largest raft message accepted (defaults to `defaultTransportLimits.maxMessageBytes`). */
  maxMessageBytes?: number;
  /** Largest snapshot database accepted (defaults to `defaultTransportLimits`). */
  maxSnapshotBodyBytes?: number;
  /** Announced in `X-Server-Version` and checked against peers' minimum cluster versions. */
  serverVersion?: string;
  /** The oldest peer server version accepted. */
  minClusterVersion?: string;
}

/** A Fetch-API request handler. */
export type PeerRequestHandler = (request: Request) => Promise<Response>;

/** An error answer shaped like Go's http.Error: the text and a newline, as plain text. */
function textAnswer(status: number, text: string, headers?: HeadersInit): Response {
  const answer = new Headers(headers);
  answer.set("Content-Type", "text/plain; charset=utf-8");
  answer.set("X-Content-Type-Options", "nosniff");
  return new Response(`${text}\n`, { status, headers: answer });
}

/** An error answer shaped like etcd's httptypes.HTTPError: `{"message":...}`. */
function jsonAnswer(status: number, message: string, headers?: HeadersInit): Response {
  const answer = new Headers(headers);
  answer.set("Content-Type", "application/json");
  return new Response(JSON.stringify({ message }), { status, headers: answer });
}

/** Discards a request body that will not be read, without waiting for it. */
function discardBody(request: Request): void {
  if (request.body !== null && !request.bodyUsed && !request.body.locked) {
    request.body.cancel().catch(() => {});
  }
}

function declaredLength(request: Request): number | null {
  const value = request.headers.get("Content-Length");
  if (value === null || !/^\d+$/.test(value)) return null;
  return Number(value);
}

/** Creates the handler for the raft endpoints of the peer listener. */
export function peerHandler(options: PeerHandlerOptions): PeerRequestHandler {
  const identity: PeerIdentity = {
    localId: options.localId,
    clusterId: options.clusterId,
    localUrls: [],
    serverVersion: options.serverVersion ?? defaultServerVersion,
    minClusterVersion: options.minClusterVersion ?? defaultMinClusterVersion,
  };
  const log = options.logger ?? new Logger("warn");
  const maxMessageBytes = options.maxMessageBytes ?? defaultTransportLimits.maxMessageBytes;
  const maxSnapshotBodyBytes = options.maxSnapshotBodyBytes ??
    defaultTransportLimits.maxSnapshotBodyBytes;
  const localIdText = formatId(options.localId);
  const clusterHeader = { [PeerHeader.clusterId]: formatId(options.clusterId) };
  const isRemoved = (id: bigint) => options.isRemoved?.(id) ?? false;

  function reportPeerUrls(headers: Headers): void {
    if (options.onPeerUrls === undefined) return;
    const from = parseId(headers.get(PeerHeader.serverFrom));
    const urls = announcedPeerUrls(headers);
    if (from !== null && urls.length > 0) options.onPeerUrls(from, urls);
  }

  /** The checks shared by both POST endpoints, in etcd's order; null when all passed. */
  function checkPost(request: Request): Response | null {
    if (request.method !== "POST") {
      return textAnswer(405, PeerErrorText.methodNotAllowed, { Allow: "POST" });
    }
    const incompatible = checkCompatibility(request.headers, identity);
    if (incompatible !== null) {
      log.warn("rejected peer request", {
        reason: incompatible,
        "remote-cluster-id": request.headers.get(PeerHeader.clusterId),
      });
      return textAnswer(412, incompatible, clusterHeader);
    }
    reportPeerUrls(request.headers);
    const to = request.headers.get(PeerHeader.raftTo);
    if (to !== null && to !== localIdText) {
      return textAnswer(412, PeerErrorText.toMismatch, clusterHeader);
    }
    const from = parseId(request.headers.get(PeerHeader.serverFrom));
    if (from !== null && isRemoved(from)) {
      return jsonAnswer(403, PeerErrorText.removedSender, clusterHeader);
    }
    return null;
  }

  /** The checks of a decoded message's addressing; null when it may go to raft. */
  function checkMessage(message: Message): Response | null {
    if (message.to !== options.localId) {
      return textAnswer(412, PeerErrorText.toMismatch, clusterHeader);
    }
    if (isRemoved(message.from)) {
      return jsonAnswer(403, PeerErrorText.removedSender, clusterHeader);
    }
    return null;
  }

  async function deliver(message: Message): Promise<Response | null> {
    try {
      await options.onMessage(message);
      return null;
    } catch (err) {
      log.error("failed to process raft message", { error: String(err) });
      return textAnswer(500, PeerErrorText.processFailed, clusterHeader);
    }
  }

  async function pipeline(request: Request): Promise<Response> {
    const refused = checkPost(request);
    if (refused !== null) return refused;
    const length = declaredLength(request);
    if (length !== null && length > maxMessageBytes) {
      return textAnswer(413, PeerErrorText.bodyTooLarge, clusterHeader);
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBounded(request.body, maxMessageBytes);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        return textAnswer(413, PeerErrorText.bodyTooLarge, clusterHeader);
      }
      log.warn("failed to read raft message", { error: String(err) });
      return textAnswer(400, PeerErrorText.readFailed, clusterHeader);
    }
    let message: Message;
    try {
      message = decodeMessage(bytes);
    } catch (err) {
      log.warn("failed to unmarshal raft message", { error: String(err) });
      return textAnswer(400, PeerErrorText.unmarshalFailed, clusterHeader);
    }
    if (isLocalMessageType(message.type)) {
      return textAnswer(400, PeerErrorText.unmarshalFailed, clusterHeader);
    }
    const misaddressed = checkMessage(message);
    if (misaddressed !== null) return misaddressed;
    return await deliver(message) ?? new Response(null, { status: 204, headers: clusterHeader });
  }

  async function snapshot(request: Request): Promise<Response> {
    const refused = checkPost(request);
    if (refused !== null) return refused;
    const length = declaredLength(request);
    if (length !== null && length > maxMessageBytes + 8 + maxSnapshotBodyBytes) {
      return textAnswer(413, PeerErrorText.bodyTooLarge, clusterHeader);
    }
    if (request.body === null) {
      return textAnswer(400, "failed to decode raft message (EOF)", clusterHeader);
    }
    const reader = new ByteReader(request.body);
    let message: Message | null;
    try {
      message = await readFramedMessage(reader, maxMessageBytes);
    } catch (err) {
      await reader.cancel();
      if (err instanceof FrameTooLargeError) {
        return textAnswer(413, PeerErrorText.bodyTooLarge, clusterHeader);
      }
      if (err instanceof RaftpbDecodeError || err instanceof TruncatedStreamError) {
        return textAnswer(400, `failed to decode raft message (${err.message})`, clusterHeader);
      }
      throw err;
    }
    if (message === null) {
      return textAnswer(400, "failed to decode raft message (EOF)", clusterHeader);
    }
    if (message.type !== MessageType.snap || message.snapshot === null) {
      await reader.cancel();
      return textAnswer(400, PeerErrorText.wrongSnapshotType, clusterHeader);
    }
    const misaddressed = checkMessage(message);
    if (misaddressed !== null) {
      await reader.cancel();
      return misaddressed;
    }
    const from = formatId(message.from);
    log.info("receiving database snapshot", {
      "remote-peer-id": from,
      "incoming-snapshot-index": message.snapshot.metadata.index,
    });
    const body = reader.rest(maxSnapshotBodyBytes);
    try {
      await options.onSnapshot(message, body);
    } catch (err) {
      if (reader.overCap) return textAnswer(413, PeerErrorText.bodyTooLarge, clusterHeader);
      log.warn("failed to save incoming database snapshot", {
        "remote-peer-id": from,
        error: String(err),
      });
      return textAnswer(500, `failed to save KV snapshot (${err})`, clusterHeader);
    } finally {
      // Whatever the saver left unread is not wanted; a locked body is the saver's to close.
      if (!body.locked) body.cancel().catch(() => {});
    }
    return await deliver(message) ?? new Response(null, { status: 204, headers: clusterHeader });
  }

  function stream(request: Request, path: string): Response {
    if (request.method !== "GET") {
      return textAnswer(405, PeerErrorText.methodNotAllowed, { Allow: "GET" });
    }
    const headers = {
      [PeerHeader.serverVersion]: identity.serverVersion,
      ...clusterHeader,
    };
    const incompatible = checkCompatibility(request.headers, identity);
    if (incompatible !== null) {
      log.warn("rejected stream request", { reason: incompatible });
      return textAnswer(412, incompatible, headers);
    }
    const parts = path.slice(RaftPath.streamPrefix.length).split("/");
    const kind = parts[0];
    if (parts.length !== 2 || (kind !== "message" && kind !== "msgapp")) {
      return textAnswer(404, PeerErrorText.invalidPath, headers);
    }
    const from = parseId(parts[1]);
    if (from === null) return textAnswer(404, PeerErrorText.invalidFrom, headers);
    if (isRemoved(from)) {
      log.warn("rejected stream from removed member", { "remote-peer-id": formatId(from) });
      return textAnswer(410, PeerErrorText.removedMember, headers);
    }
    if (options.streams === undefined || !options.streams.hasPeer(from)) {
      const urls = announcedPeerUrls(request.headers);
      if (urls.length > 0) options.onPeerUrls?.(from, urls);
      return textAnswer(404, PeerErrorText.senderNotFound, headers);
    }
    if (request.headers.get(PeerHeader.raftTo) !== localIdText) {
      return textAnswer(412, PeerErrorText.toMismatch, headers);
    }
    const body = options.streams.acceptStream(from, kind);
    if (body === null) return textAnswer(404, PeerErrorText.senderNotFound, headers);
    return new Response(body, {
      status: 200,
      headers: { ...headers, "Content-Type": "application/octet-stream" },
    });
  }

  function probing(request: Request): Response {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return textAnswer(405, PeerErrorText.methodNotAllowed, { Allow: "GET" });
    }
    // xiang90/probing's Health{OK, Now}, which etcd's prober reads.
    const health = JSON.stringify({ OK: true, Now: new Date().toISOString() });
    return new Response(`${health}\n`, {
      status: 200,
      headers: { "Content-Type": "application/json" },
    });
  }

  async function route(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path === RaftPath.pipeline) return await pipeline(request);
    if (path === RaftPath.snapshot) return await snapshot(request);
    if (path.startsWith(RaftPath.streamPrefix)) return stream(request, path);
    if (path === RaftPath.probing) return probing(request);
    return textAnswer(404, PeerErrorText.notFound);
  }

  return async (request: Request): Promise<Response> => {
    try {
      const response = await route(request);
      discardBody(request);
      return response;
    } catch (err) {
      log.error("peer handler failed", { error: String(err), url: request.url });
      discardBody(request);
      return textAnswer(500, "internal error");
    }
  };
}
