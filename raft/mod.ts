/**
 * The consensus core: a pure raft state machine (no I/O, timers, clocks or randomness).
 *
 * @module
 */
export * from "./types.ts";
export { LogCompactedError, type LogMarker, RaftLog } from "./log.ts";
export { ProposalDroppedError, type RaftConfig, type RaftRestore, RawNode } from "./raw_node.ts";
