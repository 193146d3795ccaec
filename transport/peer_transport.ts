/**
 * The client side of the peer transport: sends raft's messages to peers and receives theirs,
 * over etcd's rafthttp wire (see `handler.ts` for the endpoints).
 *
 * As in etcd, a member receives on the streams it dials and sends on the streams its peers
 * dialled: for each peer it GETs `/raft/stream/{msgapp,message}/<own id>` and reads the
 * peer's messages from the answers, while the peer's GETs to us attach to this transport
 * through {@linkcode PeerTransport.acceptStream} and carry our messages back. Messages go on
 * those streams when they are attached, else through the pipeline; snapshots always go to
 * `/raft/snapshot`. Every queue is bounded; a message that does not fit is dropped and raft is
 * told the peer is unreachable (it resends; Raft paper §5.3).
 *
 * Ordering: messages to one peer keep their order on each stream (MsgApp on msgapp, the rest
 * on message, as in etcd) and on the pipeline, which posts one at a time.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { Logger } from "../internal/logger.ts";
import type { Message } from "../raft/types.ts";
import {
  peerHandler,
  type PeerHandlerOptions,
  type PeerRequestHandler,
  type StreamAcceptor,
  type StreamKind,
} from "./handler.ts";
import {
  defaultMinClusterVersion,
  defaultServerVersion,
  formatId,
  type PeerIdentity,
} from "./headers.ts";
import {
  defaultTransportLimits,
  defaultTransportTiming,
  type TransportLimits,
  type TransportTiming,
} from "./limits.ts";
import { Peer, type PeerLinkStatus } from "./peer.ts";
import type { SnapshotBodySource } from "./pipeline.ts";
import { Prober, type RttSummary } from "./prober.ts";

/** Thrown when a peer URL is not an absolute http or https URL. */
export class InvalidPeerUrlError extends Error {
  /** Names the URL. */
  constructor(readonly url: string) {
    super(`invalid peer URL ${JSON.stringify(url)}`);
    this.name = "InvalidPeerUrlError";
  }
}

/** What the transport needs from the server. */
export interface PeerTransportOptions {
  /** The local member's ID. */
  localId: bigint;
  /** The cluster's ID; requests from another cluster are refused. */
  clusterId: bigint;
  /** The local member's advertised peer URLs (sent in `X-PeerURLs`). */
  localUrls?: string[];
  /** Gives a message received from a peer to raft (raft's Step). */
  onMessage(message: Message): void | Promise<void>;
  /** Raft's ReportUnreachable: messages to `id` were dropped. */
  onUnreachable?(id: bigint): void;
  /** Raft's ReportSnapshot: whether the snapshot sent to `id` arrived. */
  onSnapshotStatus?(id: bigint, ok: boolean): void;
  /** The backend database to send after a MsgSnap. Without it every MsgSnap fails. */
  snapshotBody?: SnapshotBodySource;
  /** A peer answered that the local member was removed from the cluster. */
  onRemoved?(): void;
  /** For {@linkcode PeerTransport.handler}: saves a received snapshot's database. */
  onSnapshot?(message: Message, body: ReadableStream<Uint8Array>): Promise<void>;
  /** For {@linkcode PeerTransport.handler}: true for a member removed from the cluster. */
  isRemoved?(id: bigint): boolean;
  /** For {@linkcode PeerTransport.handler}: told the URLs a sender announces. */
  onPeerUrls?(id: bigint, urls: string[]): void;
  /** Where the transport logs (defaults to a new info-level logger). */
  logger?: Logger;
  /** Overrides of {@linkcode defaultTransportLimits}. */
  limits?: Partial<TransportLimits>;
  /** Overrides of {@linkcode defaultTransportTiming}. */
  timing?: Partial<TransportTiming>;
  /** Announced in `X-Server-Version` (defaults to etcd 3.4.23). */
  serverVersion?: string;
  /** The oldest peer version accepted (defaults to 3.0.0). */
  minClusterVersion?: string;
}

/** A peer's link status with its round-trip times. */
export interface PeerStatus extends PeerLinkStatus {
  /** Round-trip times measured by the prober. */
  rtt: RttSummary | null;
}

function parseUrls(urls: readonly string[]): URL[] {
  if (urls.length === 0) throw new InvalidPeerUrlError("");
  return urls.map((text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new InvalidPeerUrlError(text);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new InvalidPeerUrlError(text);
    }
    return url;
  });
}

/** Sends and receives raft messages between members. */
export class PeerTransport implements StreamAcceptor {
  readonly #options: PeerTransportOptions;
  readonly #identity: PeerIdentity;
  readonly #limits: TransportLimits;
  readonly #timing: TransportTiming;
  readonly #log: Logger;
  readonly #peers = new Map<bigint, Peer>();
  readonly #stopping = new Set<Promise<void>>();
  readonly #prober: Prober;
  readonly #heartbeats: ReturnType<typeof setInterval>;
  #stopped = false;

  /** Creates a transport with no peers; add them with {@linkcode PeerTransport.addPeer}. */
  constructor(options: PeerTransportOptions) {
    this.#options = options;
    this.#limits = { ...defaultTransportLimits, ...options.limits };
    this.#timing = { ...defaultTransportTiming, ...options.timing };
    assert(
      this.#limits.maxQueuedBytesPerPeer >= this.#limits.maxMessageBytes,
      "transport: a peer's byte budget must hold the largest message",
    );
    this.#identity = {
      localId: options.localId,
      clusterId: options.clusterId,
      localUrls: options.localUrls ?? [],
      serverVersion: options.serverVersion ?? defaultServerVersion,
      minClusterVersion: options.minClusterVersion ?? defaultMinClusterVersion,
    };
    this.#log = (options.logger ?? new Logger("info")).with({
      "local-member-id": formatId(options.localId),
    });
    this.#prober = new Prober(this.#timing.probeIntervalMs, this.#timing.probeTimeoutMs, this.#log);
    this.#heartbeats = setInterval(() => {
      for (const peer of this.#peers.values()) peer.heartbeat();
    }, this.#timing.linkHeartbeatIntervalMs);
  }

  /**
   * Starts talking to member `id` at `urls`: dials its streams, probes it, and accepts its
   * stream dials. Adding a known peer updates its URLs. Throws {@linkcode InvalidPeerUrlError}.
   */
  addPeer(id: bigint, urls: readonly string[]): void {
    assert(!this.#stopped, "transport: addPeer after stop");
    assert(id !== this.#identity.localId, "transport: the local member is not a peer");
    assert(id !== 0n, "transport: member ID 0 is not a member");
    const parsed = parseUrls(urls);
    const known = this.#peers.get(id);
    if (known !== undefined) {
      known.update(parsed);
      return;
    }
    const peer = new Peer(id, parsed, {
      identity: this.#identity,
      limits: this.#limits,
      timing: this.#timing,
      log: this.#log,
      deliver: async (message) => await this.#options.onMessage(message),
      onUnreachable: (peerId) => this.#options.onUnreachable?.(peerId),
      onSnapshotStatus: (peerId, ok) => this.#options.onSnapshotStatus?.(peerId, ok),
      onRemoved: () => this.#options.onRemoved?.(),
      snapshotBody: this.#options.snapshotBody,
    });
    this.#peers.set(id, peer);
    this.#prober.add(id, () => peer.pickUrl());
    this.#log.info("added remote peer", { "remote-peer-id": formatId(id) });
  }

  /** Replaces the URLs of peer `id`. Throws {@linkcode InvalidPeerUrlError}. */
  updatePeer(id: bigint, urls: readonly string[]): void {
    const peer = this.#peers.get(id);
    assert(peer !== undefined, `transport: unknown peer ${formatId(id)}`);
    peer.update(parseUrls(urls));
  }

  /** Stops talking to peer `id`; resolves when its loops ended. */
  async removePeer(id: bigint): Promise<void> {
    const peer = this.#peers.get(id);
    if (peer === undefined) return;
    this.#peers.delete(id);
    const stopped = Promise.all([peer.stop(), this.#prober.remove(id)]).then(() => {});
    this.#stopping.add(stopped);
    await stopped;
    this.#stopping.delete(stopped);
    this.#log.info("removed remote peer", { "remote-peer-id": formatId(id) });
  }

  /** True when `id` is a peer. */
  hasPeer(id: bigint): boolean {
    return this.#peers.has(id);
  }

  /** Opens the body of a stream peer `from` dialled (for the handler). */
  acceptStream(from: bigint, kind: StreamKind): ReadableStream<Uint8Array> | null {
    if (this.#stopped) return null;
    return this.#peers.get(from)?.attach(kind) ?? null;
  }

  /**
   * Sends raft's messages, each to its `to`. Messages to unknown members (and to 0) are
   * dropped, as etcd does; a full or unreachable peer's are dropped and reported.
   */
  send(messages: readonly Message[]): void {
    if (this.#stopped) return;
    for (const message of messages) {
      if (message.to === 0n) continue;
      const peer = this.#peers.get(message.to);
      if (peer === undefined) {
        this.#log.debug("dropped message to unknown peer", {
          "remote-peer-id": formatId(message.to),
        });
        continue;
      }
      peer.send(message);
    }
  }

  /**
   * The Fetch-API handler of the raft endpoints, delivering to this transport's `onMessage`
   * and attaching peers' stream dials to it. Mount it on the peer listener.
   */
  handler(): PeerRequestHandler {
    const options = this.#options;
    const handlerOptions: PeerHandlerOptions = {
      localId: options.localId,
      clusterId: options.clusterId,
      onMessage: (message) => options.onMessage(message),
      onSnapshot: options.onSnapshot ??
        ((_message, body) => {
          body.cancel().catch(() => {});
          return Promise.reject(new Error("this member does not accept snapshots"));
        }),
      streams: this,
      isRemoved: options.isRemoved,
      onPeerUrls: options.onPeerUrls,
      logger: this.#log,
      maxMessageBytes: this.#limits.maxMessageBytes,
      maxSnapshotBodyBytes: this.#limits.maxSnapshotBodyBytes,
      serverVersion: this.#identity.serverVersion,
      minClusterVersion: this.#identity.minClusterVersion,
    };
    return peerHandler(handlerOptions);
  }

  /** The status of peer `id`, or undefined for an unknown peer. */
  peerStatus(id: bigint): PeerStatus | undefined {
    const peer = this.#peers.get(id);
    if (peer === undefined) return undefined;
    return { ...peer.status(), rtt: this.#prober.summary(id) ?? null };
  }

  /** The status of every peer. */
  status(): PeerStatus[] {
    return [...this.#peers.keys()].map((id) => this.peerStatus(id)!);
  }

  /** Stops everything: aborts every fetch, closes every stream; resolves when all ended. */
  async stop(): Promise<void> {
    if (this.#stopped) {
      await Promise.allSettled([...this.#stopping]);
      return;
    }
    this.#stopped = true;
    clearInterval(this.#heartbeats);
    const peers = [...this.#peers.values()];
    this.#peers.clear();
    const stopped = Promise.allSettled([
      ...peers.map((peer) => peer.stop()),
      this.#prober.stop(),
      ...this.#stopping,
    ]).then(() => {});
    this.#stopping.add(stopped);
    await stopped;
    this.#log.info("stopped peer transport");
  }
}
