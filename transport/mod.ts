/**
 * The peer transport: etcd's rafthttp wire over `fetch` and `ReadableStream`. The server mounts
 * {@linkcode peerHandler} (or {@linkcode PeerTransport.handler}) on its peer listener and sends
 * raft's messages with {@linkcode PeerTransport.send}.
 *
 * @module
 */
export {
  peerHandler,
  type PeerHandlerOptions,
  type PeerRequestHandler,
  RaftPath,
  type StreamAcceptor,
  type StreamKind,
  streamKinds,
} from "./handler.ts";
export {
  checkCompatibility,
  defaultMinClusterVersion,
  defaultServerVersion,
  formatId,
  parseId,
  PeerErrorText,
  PeerHeader,
  type PeerIdentity,
  peerRequestHeaders,
} from "./headers.ts";
export {
  defaultTransportLimits,
  defaultTransportTiming,
  type TransportLimits,
  type TransportTiming,
} from "./limits.ts";
export {
  decodeMessage,
  encodeFrame,
  encodeMessage,
  frameHeaderBytes,
  FrameTooLargeError,
  isLinkHeartbeat,
  isLocalMessageType,
  linkHeartbeatBytes,
  readFrame,
  readFramedMessage,
} from "./message_codec.ts";
export { ByteReader, TruncatedStreamError } from "./byte_reader.ts";
export {
  confStateFromProto,
  confStateToProto,
  decodeConfChange,
  encodeConfChange,
  entryFromProto,
  entryToProto,
  messageFromProto,
  messageToProto,
  RaftpbDecodeError,
  snapshotFromProto,
  snapshotToProto,
} from "./raftpb_codec.ts";
export type { PeerLinkStatus } from "./peer.ts";
export type { SnapshotBodySource } from "./pipeline.ts";
export { Prober, rttBucketUpperBoundsSeconds, type RttSummary } from "./prober.ts";
export {
  InvalidPeerUrlError,
  type PeerStatus,
  PeerTransport,
  type PeerTransportOptions,
} from "./peer_transport.ts";
