/**
 * The consensus core: a pure raft state machine (no I/O, timers, clocks or randomness).
 *
 * {@linkcode RawNode} is the whole surface a server needs: feed it ticks, messages and
 * proposals, and handle its {@linkcode Ready} batches in the documented order.
 *
 * @module
 */
export * from "./types.ts";
export { LogCompactedError, type LogMarker, RaftLog } from "./log.ts";
export {
  campaignTransferContext,
  describeMessage,
  isCampaignTransfer,
  isLocalMessage,
  isResponseMessage,
  isSnapshotRequest,
  type MessageInit,
  messageTypeName,
  newMessage,
  snapshotRequestContext,
  voteResponseType,
} from "./message.ts";
export { Inflights, Progress, type ProgressState, ProgressTracker } from "./progress.ts";
export { type ReadIndexRequest, ReadOnly } from "./read_only.ts";
export {
  type ProgressStatus,
  ProposalDroppedError,
  type ProposalDropReason,
  type RaftConfig,
  type RaftRestore,
  type RaftStatus,
  RawNode,
} from "./raw_node.ts";
