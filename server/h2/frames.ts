/**
 * HTTP/2 wire constants (RFC 9113 §6, §7, §11) and the frame header.
 *
 * @module
 */

/** Frame types (RFC 9113 §6). */
export const FrameType = {
  data: 0x0,
  headers: 0x1,
  priority: 0x2,
  rstStream: 0x3,
  settings: 0x4,
  pushPromise: 0x5,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
  continuation: 0x9,
} as const;

/** Frame flags; ACK shares END_STREAM's bit on SETTINGS and PING. */
export const Flag = {
  endStream: 0x1,
  ack: 0x1,
  endHeaders: 0x4,
  padded: 0x8,
  priority: 0x20,
} as const;

/** Error codes of RST_STREAM and GOAWAY (RFC 9113 §7). */
export const ErrorCode = {
  noError: 0x0,
  protocolError: 0x1,
  internalError: 0x2,
  flowControlError: 0x3,
  settingsTimeout: 0x4,
  streamClosed: 0x5,
  frameSizeError: 0x6,
  refusedStream: 0x7,
  cancel: 0x8,
  compressionError: 0x9,
  connectError: 0xa,
  enhanceYourCalm: 0xb,
  inadequateSecurity: 0xc,
  http11Required: 0xd,
} as const;

/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const Setting = {
  headerTableSize: 0x1,
  enablePush: 0x2,
  maxConcurrentStreams: 0x3,
  initialWindowSize: 0x4,
  maxFrameSize: 0x5,
  maxHeaderListSize: 0x6,
} as const;

/** Every frame starts with 9 bytes: length (24), type (8), flags (8), stream id (31). */
export const frameHeaderBytes = 9;
/** The client's connection preface (RFC 9113 §3.4). */
export const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/** SETTINGS_MAX_FRAME_SIZE's initial value and lower bound (RFC 9113 §6.5.2). */
export const defaultMaxFrameBytes = 16_384;
/** SETTINGS_MAX_FRAME_SIZE's upper bound. */
export const maxAllowedFrameBytes = 16_777_215;
/** The initial flow-control window of streams and the connection (RFC 9113 §6.9.2). */
export const defaultWindowBytes = 65_535;
/** No flow-control window may exceed 2^31 - 1 (RFC 9113 §6.9.1). */
export const maxWindowBytes = 2_147_483_647;

/** Writes a frame header at `at`. */
export function writeFrameHeader(
  out: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out[at + 5] = (streamId >>> 24) & 0x7f;
  out[at + 6] = (streamId >>> 16) & 0xff;
  out[at + 7] = (streamId >>> 8) & 0xff;
  out[at + 8] = streamId & 0xff;
}
