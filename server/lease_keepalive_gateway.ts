/**
 * The JSON gateway's `POST /v3/lease/keepalive` (and `/v3beta/lease/keepalive`), answering
 * as etcd 3.4's grpc-gateway does: the body is a sequence of LeaseKeepAliveRequest objects
 * (`{"ID":"123"}`), each answered by one `{"result":{"header":{...},"ID":"123","TTL":"5"}}`
 * line once it is renewed (an unknown lease answers without `TTL`, which is 0), and the
 * answer ends with the requests. A request is read only after the previous one is answered.
 *
 * @module
 */
import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { createHandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Hono } from "hono";
import {
  Lease,
  type LeaseKeepAliveRequest,
  LeaseKeepAliveRequestSchema,
  type LeaseKeepAliveResponse,
  LeaseKeepAliveResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { gatewayStreamHandler, mountGatewayStream } from "./gateway_stream.ts";
import { goInt64, goJsonObject, goRawMembers } from "./go_json.ts";

/**
 * Decodes one keep-alive request as jsonpb does: `null` and `{}` are lease 0, unknown keys
 * are ignored, and `ID` is an int64 quoted or not. Throws Go's error for anything else.
 */
export function decodeKeepAliveRequest(json: string): LeaseKeepAliveRequest {
  const request = create(LeaseKeepAliveRequestSchema);
  if (goJsonObject(json) === undefined) return request;
  // jsonpb looks a field up by its proto name, then its JSON name: both are "ID".
  const id = goRawMembers(json).get("ID");
  if (id !== undefined) request.ID = goInt64(id);
  return request;
}

/** The streaming handler over a Lease service's `leaseKeepAlive`. */
export function leaseKeepAliveGatewayHandler(
  lease: ServiceImpl<typeof Lease>,
  maxBodyBytes: number,
): (request: Request) => Promise<Response> {
  return gatewayStreamHandler<LeaseKeepAliveRequest, LeaseKeepAliveResponse>({
    decode: decodeKeepAliveRequest,
    encode: (response) =>
      toJson(LeaseKeepAliveResponseSchema, response, { useProtoFieldName: true }),
    open(requests, signal, request) {
      const context = createHandlerContext({
        service: Lease,
        method: Lease.method.leaseKeepAlive,
        protocolName: "gateway",
        requestMethod: "POST",
        url: request.url,
        requestSignal: signal,
      });
      return responsesUntil(lease.leaseKeepAlive(requests, context), signal);
    },
  }, maxBodyBytes);
}

/** The call's responses as full messages, ending early once `signal` fires. */
async function* responsesUntil(
  responses: AsyncIterable<MessageInitShape<typeof LeaseKeepAliveResponseSchema>>,
  signal: AbortSignal,
): AsyncGenerator<LeaseKeepAliveResponse> {
  for await (const response of responses) {
    if (signal.aborted) return;
    yield create(LeaseKeepAliveResponseSchema, response);
  }
}

/** Mounts `POST /v3/lease/keepalive` and its `/v3beta/` alias over a Lease service. */
export function mountLeaseKeepAliveGateway(
  app: Hono,
  lease: ServiceImpl<typeof Lease>,
  maxBodyBytes: number,
): void {
  mountGatewayStream(
    app,
    "/v3/lease/keepalive",
    leaseKeepAliveGatewayHandler(lease, maxBodyBytes),
  );
}
