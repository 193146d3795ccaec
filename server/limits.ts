/**
 * Size limits shared by the listeners and services.
 *
 * @module
 */

/**
 * Extra bytes gRPC may receive beyond `--max-request-bytes` (etcd: 512 KiB), so that a request
 * just over the limit gets etcd's `request is too large` rather than a transport error.
 */
export const grpcOverheadBytes = 512 * 1024;
