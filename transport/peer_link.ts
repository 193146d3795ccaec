/**
 * What the parts of one peer's link (stream readers, pipeline, snapshot sender) share: where
 * the peer is, how to report on it, and the signal that stops them all.
 *
 * @module
 */
import { readBounded } from "../internal/bounded_reader.ts";
import { fromUtf8 } from "../internal/bytes.ts";
import type { Logger } from "../internal/logger.ts";
import type { Message } from "../raft/types.ts";
import type { PeerIdentity } from "./headers.ts";
import type { TransportLimits, TransportTiming } from "./limits.ts";
import type { SendBudget } from "./send_budget.ts";

/** The shared state and reports of one peer's link. */
export interface PeerLink {
  /** The peer's member ID. */
  readonly id: bigint;
  readonly identity: PeerIdentity;
  readonly limits: TransportLimits;
  readonly timing: TransportTiming;
  readonly log: Logger;
  /** Aborted when the peer is removed or the transport stops. */
  readonly signal: AbortSignal;
  readonly budget: SendBudget;
  /** The URL to try next. */
  pickUrl(): URL;
  /** Moves on to the peer's next URL if `url` is still the current one. */
  urlFailed(url: URL): void;
  /** Records that the peer answered. */
  activate(): void;
  /** Records that the peer could not be reached, and why. */
  deactivate(reason: string): void;
  /** Tells raft the peer missed messages (raft's ReportUnreachable). */
  reportUnreachable(): void;
  /** Counts `count` messages dropped on the way to the peer and reports it unreachable. */
  reportDropped(count: number): void;
  /** The peer says the local member was removed from the cluster. */
  reportRemoved(): void;
  /** Gives a message received from the peer to raft. */
  deliver(message: Message): Promise<void>;
}

/** Reads a small answer body (for logs), bounded; never rejects. */
export async function readAnswerText(response: Response, maxBytes: number): Promise<string> {
  try {
    return fromUtf8(await readBounded(response.body, maxBytes)).trimEnd();
  } catch {
    await response.body?.cancel().catch(() => {});
    return "";
  }
}
