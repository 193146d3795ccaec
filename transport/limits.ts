/**
 * Every bound and interval of the peer transport, named with its unit. Defaults follow etcd's
 * rafthttp where etcd has a number (cited), and are tighter where etcd has none.
 *
 * @module
 */

const KiB = 1024;
const MiB = 1024 * KiB;

/** Size bounds of one peer link. */
export interface TransportLimits {
  /**
   * Largest encoded raft message accepted or sent: a pipeline body, a stream frame, or the
   * message that leads a snapshot body. Checked before anything of that size is allocated.
   */
  maxMessageBytes: number;
  /** Largest backend database a snapshot body may carry (etcd has no bound at all). */
  maxSnapshotBodyBytes: number;
  /** Messages waiting to be written to one peer, across its streams and its pipeline. */
  maxQueuedMessagesPerPeer: number;
  /** Encoded bytes waiting to be written to one peer, across its streams and its pipeline. */
  maxQueuedBytesPerPeer: number;
  /**
   * Messages waiting for the pipeline of one peer (etcd's pipelineBufSize): the pipeline posts
   * one message at a time, so a longer queue only adds latency to messages raft will resend.
   */
  maxPipelineQueuedMessages: number;
  /** Frames written to a stream as one chunk are coalesced up to this many bytes. */
  maxStreamChunkBytes: number;
  /** Largest error body read from a peer's answer (only logged). */
  maxErrorBodyBytes: number;
}

/**
 * Default size bounds. A raft message is bounded by the server's request limit (etcd defaults
 * to 1.5 MiB) times the entries batched into one MsgApp; 64 MiB leaves room for a large
 * `--max-request-bytes`, and 1 MiB more covers the envelope (ids, terms, entry headers).
 */
export const defaultTransportLimits: Readonly<TransportLimits> = Object.freeze({
  maxMessageBytes: 64 * MiB + 1 * MiB,
  maxSnapshotBodyBytes: 16 * 1024 * MiB,
  maxQueuedMessagesPerPeer: 4096, // etcd's streamBufSize
  maxQueuedBytesPerPeer: 128 * MiB,
  maxPipelineQueuedMessages: 64, // etcd's pipelineBufSize
  maxStreamChunkBytes: 1 * MiB,
  maxErrorBodyBytes: 64 * KiB,
});

/** Timing of one peer link. */
export interface TransportTiming {
  /** An idle stream carries a link heartbeat this often, so both ends notice a dead link. */
  linkHeartbeatIntervalMs: number;
  /** A stream that delivered nothing (not even a link heartbeat) for this long is redialled. */
  streamIdleTimeoutMs: number;
  /** First wait before redialling a broken stream; doubled after each failure. */
  dialBackoffInitialMs: number;
  /** Longest wait between two dials of a stream. */
  dialBackoffMaxMs: number;
  /** A pipeline post that has not been answered in this time has failed. */
  pipelineTimeoutMs: number;
  /**
   * A snapshot send fails when neither the database source nor the receiver made progress
   * for this long (the receiver's answer after the last byte gets as long again).
   */
  snapshotStallTimeoutMs: number;
  /** How often each peer's `/raft/probing` is fetched to measure round-trip time. */
  probeIntervalMs: number;
  /** A probe not answered in this time counts as a failure. */
  probeTimeoutMs: number;
}

/**
 * Default timing. etcd sends link heartbeats every ConnReadTimeout / 3 (5 s / 3) and probes
 * every ConnReadTimeout - 1 s (4 s); our heartbeats are more frequent so a half-open link is
 * found within one idle timeout (etcd's ConnReadTimeout, 5 s).
 */
export const defaultTransportTiming: Readonly<TransportTiming> = Object.freeze({
  linkHeartbeatIntervalMs: 500,
  streamIdleTimeoutMs: 5_000,
  dialBackoffInitialMs: 100,
  dialBackoffMaxMs: 2_000,
  pipelineTimeoutMs: 5_000,
  snapshotStallTimeoutMs: 30_000,
  probeIntervalMs: 4_000,
  probeTimeoutMs: 4_000,
});
