/**
 * Helpers around {@linkcode Message}: construction with defaults, message kind predicates,
 * and the context that marks a leadership-transfer election.
 *
 * @module
 */
import { type Entry, type Message, MessageType } from "./types.ts";

/** The fields a message must name; everything else defaults to empty/zero. */
export type MessageInit = Partial<Message> & Pick<Message, "type" | "to" | "from">;

const empty = new Uint8Array();

/** A message with every unnamed field empty (term 0, no entries, no snapshot). */
export function newMessage(init: MessageInit): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: empty,
    ...init,
  };
}

/**
 * The context of a vote request sent because the leader handed over leadership (MsgTimeoutNow):
 * members that still hear from that leader grant it anyway (Raft thesis §3.10 and §4.2.3).
 * Same bytes as etcd's `campaignTransfer`.
 */
export const campaignTransferContext: Uint8Array = new TextEncoder().encode("CampaignTransfer");

/** True when `ctx` is {@linkcode campaignTransferContext}. */
export function isCampaignTransfer(ctx: Uint8Array): boolean {
  return sameBytes(ctx, campaignTransferContext);
}

/**
 * The context of an append rejection from a member that holds neither a configuration nor
 * a log (it is joining an existing cluster): replaying the log from index 1 cannot tell it
 * the configuration the cluster started with, so it asks the leader for a snapshot, which
 * carries the configuration. Our extension; the rest of the rejection is an ordinary one.
 */
export const snapshotRequestContext: Uint8Array = new TextEncoder().encode("SnapshotRequest");

/** True when `a` and `b` hold the same bytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `ctx` is {@linkcode snapshotRequestContext}. */
export function isSnapshotRequest(ctx: Uint8Array): boolean {
  return sameBytes(ctx, snapshotRequestContext);
}

/** The response kind of a (pre-)vote request. */
export function voteResponseType(type: MessageType): MessageType {
  return type === MessageType.preVote ? MessageType.preVoteResp : MessageType.voteResp;
}

/** True for kinds that never leave the member (they only drive its own state machine). */
export function isLocalMessage(type: MessageType): boolean {
  return type === MessageType.hup || type === MessageType.beat ||
    type === MessageType.unreachable || type === MessageType.snapStatus ||
    type === MessageType.checkQuorum;
}

/** True for the kinds that answer another member's request. */
export function isResponseMessage(type: MessageType): boolean {
  return type === MessageType.appResp || type === MessageType.voteResp ||
    type === MessageType.heartbeatResp || type === MessageType.unreachable ||
    type === MessageType.preVoteResp || type === MessageType.readIndexResp;
}

const typeNames = new Map<number, string>(
  Object.entries(MessageType).map(([name, value]) => [value, name]),
);

/** The name of a message kind ("app", "voteResp", ...), for logs and test failures. */
export function messageTypeName(type: number): string {
  return typeNames.get(type) ?? `unknown(${type})`;
}

/** A one-line description of `m`, for logs and test failures. */
export function describeMessage(m: Message): string {
  const parts = [`${messageTypeName(m.type)} ${m.from}->${m.to} term=${m.term}`];
  if (m.type === MessageType.app || m.type === MessageType.appResp) {
    parts.push(`index=${m.index} logTerm=${m.logTerm} commit=${m.commit}`);
  }
  if (m.entries.length > 0) parts.push(`entries=${describeEntries(m.entries)}`);
  if (m.reject) parts.push(`reject hint=${m.rejectHint}`);
  if (m.snapshot) parts.push(`snapshot=${m.snapshot.metadata.index}@${m.snapshot.metadata.term}`);
  return parts.join(" ");
}

function describeEntries(entries: Entry[]): string {
  const first = entries[0];
  const last = entries[entries.length - 1];
  return `[${first.index}@${first.term}..${last.index}@${last.term}]`;
}
