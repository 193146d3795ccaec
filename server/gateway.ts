/**
 * The JSON gateway (`POST /v3/...`), shaped like etcd 3.4's grpc-gateway: proto field names,
 * int64 as strings, base64 bytes, defaults omitted, errors as `{"error","message","code"}`
 * with the gateway's HTTP statuses. `/v3beta/...` is an alias, as in 3.4.
 *
 * @module
 */
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromJson,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  toJson,
} from "@bufbuild/protobuf";
import { Code, createHandlerContext } from "@connectrpc/connect";
import type { Hono } from "hono";
import { BodyTooLargeError, readBounded } from "../internal/bounded_reader.ts";
import { decodeOptions } from "./codec.ts";
import { Errors, httpStatusFor, toConnectError } from "./errors.ts";

/** One unary gateway route: a path, the RPC's schema, and the service method serving it. */
export interface GatewayRoute<
  I extends DescMessage = DescMessage,
  O extends DescMessage = DescMessage,
> {
  path: string;
  method: DescMethodUnary<I, O>;
  call(request: MessageShape<I>): Promise<MessageInitShape<O>> | MessageInitShape<O>;
}

/** Builds a typed gateway route (keeps request and response schemas tied together). */
export function route<I extends DescMessage, O extends DescMessage>(
  path: string,
  method: DescMethodUnary<I, O>,
  impl: (
    request: MessageShape<I>,
    context: ReturnType<typeof createHandlerContext>,
  ) => Promise<MessageInitShape<O>> | MessageInitShape<O>,
): GatewayRoute {
  return {
    path,
    method,
    call: (request: MessageShape<I>) =>
      impl(
        request,
        createHandlerContext({
          service: method.parent,
          method,
          protocolName: "gateway",
          requestMethod: "POST",
          url: path,
        }),
      ),
  } as unknown as GatewayRoute;
}

/** JSON syntax errors worded as Go's encoding/json words them, which etcd's gateway returns. */
class GoJsonSyntaxError extends Error {}

function parseJsonLikeGo(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/end of JSON input|Unterminated/i.test(message)) {
      throw new GoJsonSyntaxError("unexpected EOF");
    }
    const at = /position (\d+)/.exec(message);
    const token = /Unexpected token '(.)'/.exec(message);
    const ch = at ? text[Number(at[1])] : token ? token[1] : text.trim()[0];
    throw new GoJsonSyntaxError(`invalid character '${ch ?? ""}' looking for beginning of value`);
  }
}

/**
 * grpc-gateway v1 ignores fields it does not know but rejects bad values (an unknown enum
 * name, say); protobuf-es's lenient mode would accept both, so unknown keys alone get it.
 */
function decodeLikeGateway<I extends DescMessage>(schema: I, json: JsonValue): MessageShape<I> {
  try {
    return fromJson(schema, json, decodeOptions);
  } catch (err) {
    if (!(err instanceof Error) || !/key ".*" is unknown/.test(err.message)) throw err;
    return fromJson(schema, json, { ...decodeOptions, ignoreUnknownFields: true });
  }
}

/** The JSON body of a gateway error. */
export function gatewayError(message: string, code: Code): Response {
  return Response.json({ error: message, message, code }, { status: httpStatusFor(code) });
}

/** Mounts gateway routes on a Hono app, bounding each body at `maxBodyBytes`. */
export function mountGateway(app: Hono, routes: GatewayRoute[], maxBodyBytes: number): void {
  for (const r of routes) {
    const handler = async (request: Request): Promise<Response> => {
      let input;
      try {
        const body = await readBounded(request.body, maxBodyBytes);
        // An empty body is an empty message, as grpc-gateway treats EOF.
        const json = body.length === 0 ? {} : parseJsonLikeGo(new TextDecoder().decode(body));
        input = decodeLikeGateway(r.method.input, json as JsonValue);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          return gatewayError(Errors.requestTooLarge.message, Errors.requestTooLarge.code);
        }
        return gatewayError(err instanceof Error ? err.message : String(err), Code.InvalidArgument);
      }
      try {
        const output = create(r.method.output, await r.call(input));
        return Response.json(toJson(r.method.output, output, { useProtoFieldName: true }), {
          // grpc-gateway passes the gRPC response's content type on as metadata.
          headers: { "Grpc-Metadata-Content-Type": "application/grpc" },
        });
      } catch (err) {
        const ce = toConnectError(err);
        return gatewayError(ce.rawMessage, ce.code);
      }
    };
    for (const prefix of ["/v3/", "/v3beta/"]) {
      const path = r.path.replace(/^\/v3\//, prefix);
      app.post(path, (c) => handler(c.req.raw));
      app.on(
        ["GET", "PUT", "DELETE", "PATCH"],
        path,
        () => new Response("Method Not Allowed\n", { status: 405 }),
      );
    }
  }
}
