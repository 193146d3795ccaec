/**
 * Our HTTP/2 server connection (RFC 9113) with its HPACK codec (RFC 7541), serving the client
 * port's HTTP/2 connections: gRPC, and any other request sent over HTTP/2.
 *
 * @module
 */
export {
  connectionSpecificFields,
  H2Connection,
  type H2ConnectionOptions,
  type RequestHeaders,
  ServerStream,
} from "./connection.ts";
export { ErrorCode } from "./frames.ts";
export { type HeaderField, HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";
