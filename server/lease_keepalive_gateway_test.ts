import { create } from "@bufbuild/protobuf";
import { Hono } from "hono";
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { Lessor } from "../lease/mod.ts";
import { ResponseHeaderSchema } from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { GoJsonError } from "./go_json.ts";
import {
  decodeKeepAliveRequest,
  leaseKeepAliveGatewayHandler,
  mountLeaseKeepAliveGateway,
} from "./lease_keepalive_gateway.ts";
import { leaseService, type LeaseServiceDeps } from "./lease_service.ts";

const header = '"header":{"cluster_id":"11","member_id":"22","revision":"7","raft_term":"3"}';

/** The real Lease service over a lessor (no raft: keep-alives need none), at revision 7. */
function setup() {
  const clock = { now: 1_000 };
  const lessor = new Lessor({
    clock: () => clock.now,
    minTtlSeconds: 2,
    persistence: { saveLease() {}, deleteLease() {} },
  });
  lessor.promote(0);
  lessor.grant(100n, 60);
  lessor.grant(200n, 5);
  const state = { reads: 0, renewed: [] as bigint[] };
  const newHeader = () =>
    create(ResponseHeaderSchema, { clusterId: 11n, memberId: 22n, revision: 7n, raftTerm: 3n });
  const deps: LeaseServiceDeps = {
    lessor,
    propose: () => Promise.reject(new Error("keep-alives do not propose")),
    header: newHeader,
    fillHeader: (h) => h ?? newHeader(),
    // deno-lint-ignore require-await
    async waitAppliedIndex() {
      state.reads++;
    },
    newLeaseId: () => 1n,
  };
  const handler = leaseKeepAliveGatewayHandler(leaseService(deps), 1024);
  const post = (body: BodyInit | null) =>
    handler(new Request("http://x/v3/lease/keepalive", { method: "POST", body }));
  return { clock, lessor, state, handler, post };
}

/** A request body the test writes into piece by piece. */
function pipeBody() {
  const pulls = { count: 0 };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    pull() {
      pulls.count++;
    },
  }, { highWaterMark: 0 });
  const write = (text: string) => controller.enqueue(new TextEncoder().encode(text));
  return { body, write, end: () => controller.close(), pulls };
}

Deno.test("keepalive gateway: one result line per request, the answer ends with the body", async () => {
  const s = setup();
  // Lease 200 (5 s) has expired by now; lease 100 (60 s) has 50 s left.
  s.clock.now += 10_000;
  const response = await s.post('{"ID":"100"} {"ID":"999"}\n{"ID":200} null {"ID":"-5"}');
  strictEqual(response.status, 200);
  strictEqual(response.headers.get("content-type"), "application/json");
  strictEqual(response.headers.get("grpc-metadata-content-type"), "application/grpc");
  strictEqual(
    await response.text(),
    [
      `{"result":{${header},"ID":"100","TTL":"60"}}`,
      // Unknown, expired, 0 and negative IDs renew nothing: TTL 0, which JSON leaves out.
      `{"result":{${header},"ID":"999"}}`,
      `{"result":{${header},"ID":"200"}}`,
      `{"result":{${header}}}`,
      `{"result":{${header},"ID":"-5"}}`,
      "",
    ].join("\n"),
  );
  strictEqual(s.lessor.timeToLive(100n)?.ttlSeconds, 60, "the renewal restarted the TTL");
  strictEqual(s.state.reads, 5, "each renewal waited for apply to catch up");
});

Deno.test("keepalive gateway: an empty body answers 200 with nothing", async () => {
  const s = setup();
  const response = await s.post(null);
  strictEqual(response.status, 200);
  strictEqual(response.headers.get("grpc-metadata-content-type"), null);
  strictEqual(await response.text(), "");
});

Deno.test("keepalive gateway: a first request that does not decode is a 500, code 2", async () => {
  const s = setup();
  const cases: [string, string][] = [
    ['{"ID":"100"', "unexpected EOF"],
    ["xyz", "invalid character 'x' looking for beginning of value"],
    ['{"ID":"abc"}', "invalid character 'a' looking for beginning of value"],
    ["[1]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"],
    ['{"ID":1.5}', "json: cannot unmarshal number 1.5 into Go value of type int64"],
  ];
  for (const [body, message] of cases) {
    const response = await s.post(body);
    strictEqual(response.status, 500, body);
    deepStrictEqual(await response.json(), { error: message, message, code: 2 }, body);
  }
  strictEqual(s.state.reads, 0, "nothing was renewed");
});

Deno.test("keepalive gateway: a bad later request ends the requests, not the answers", async () => {
  const s = setup();
  const response = await s.post('{"ID":"100"} {"ID":"abc"} {"ID":"200"}');
  strictEqual(response.status, 200);
  strictEqual(await response.text(), `{"result":{${header},"ID":"100","TTL":"60"}}\n`);
});

Deno.test("keepalive gateway: a request over the size bound is etcd's `request is too large`", async () => {
  const s = setup();
  const response = await s.post(`{"ID":"100","pad":"${"x".repeat(2000)}"}`);
  strictEqual(response.status, 400);
  strictEqual((await response.json()).message, "etcdserver: request is too large");
});

Deno.test("keepalive gateway: requests are read one at a time, as answers are taken", async () => {
  const s = setup();
  const pipe = pipeBody();
  pipe.write('{"ID":"100"}');
  const responsePromise = s.post(pipe.body);
  const response = await responsePromise;
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  strictEqual((await reader.read()).value, `{"result":{${header},"ID":"100","TTL":"60"}}\n`);
  strictEqual(s.state.reads, 1);
  // The client sends the next request only now; it is answered as it arrives.
  const next = reader.read();
  pipe.write('{"ID":"200"}');
  strictEqual((await next).value, `{"result":{${header},"ID":"200","TTL":"5"}}\n`);
  strictEqual(s.state.reads, 2);
  pipe.end();
  strictEqual((await reader.read()).done, true, "the end of the requests ends the answer");
});

Deno.test("keepalive gateway: a failure is the status at first, an error chunk later", async () => {
  const s = setup();
  s.lessor.demote();
  const atOnce = await s.post('{"ID":"100"}');
  strictEqual(atOnce.status, 503);
  strictEqual(
    await atOnce.text(),
    '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader",' +
      '"http_status":"Service Unavailable"}}',
  );

  const t = setup();
  const pipe = pipeBody();
  pipe.write('{"ID":"100"}');
  const response = await t.post(pipe.body);
  strictEqual(response.status, 200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  ok((await reader.read()).value?.includes('"TTL":"60"'));
  t.lessor.demote();
  pipe.write('{"ID":"100"}');
  strictEqual(
    (await reader.read()).value,
    '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader",' +
      '"http_status":"Service Unavailable"}}',
  );
  strictEqual((await reader.read()).done, true);
});

Deno.test("keepalive gateway: a client that goes away ends the call and its body", async () => {
  const s = setup();
  const pipe = pipeBody();
  pipe.write('{"ID":"100"}');
  const response = await s.post(pipe.body);
  const reader = response.body!.getReader();
  await reader.read();
  await reader.cancel();
  let canceled = false;
  try {
    pipe.write('{"ID":"100"}');
  } catch {
    canceled = true;
  }
  ok(canceled, "the request body was canceled");
  strictEqual(s.state.reads, 1, "nothing was renewed after the client left");
});

Deno.test("keepalive gateway: mounted at /v3 and /v3beta; other methods are 405", async () => {
  const s = setup();
  const app = new Hono();
  const { lessor } = s;
  ok(lessor.isPrimary);
  mountLeaseKeepAliveGateway(
    app,
    leaseService({
      lessor,
      propose: () => Promise.reject(new Error("unused")),
      header: () => create(ResponseHeaderSchema, { revision: 7n }),
      fillHeader: (h) => h ?? create(ResponseHeaderSchema),
      waitAppliedIndex: () => Promise.resolve(),
      newLeaseId: () => 1n,
    }),
    1024,
  );
  for (const path of ["/v3/lease/keepalive", "/v3beta/lease/keepalive"]) {
    const ok200 = await app.request(path, { method: "POST", body: '{"ID":"100"}' });
    strictEqual(
      await ok200.text(),
      '{"result":{"header":{"revision":"7"},"ID":"100","TTL":"60"}}\n',
    );
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      const refused = await app.request(path, { method });
      strictEqual(refused.status, 405, `${method} ${path}`);
      strictEqual(await refused.text(), "Method Not Allowed\n");
      strictEqual(refused.headers.get("content-type"), "text/plain; charset=utf-8");
    }
  }
});

Deno.test("decodeKeepAliveRequest reads ID as jsonpb does", () => {
  strictEqual(decodeKeepAliveRequest('{"ID":"123"}').ID, 123n);
  strictEqual(decodeKeepAliveRequest('{"ID":123}').ID, 123n);
  strictEqual(decodeKeepAliveRequest('{"ID":" 12 "}').ID, 12n);
  strictEqual(decodeKeepAliveRequest('{"ID":"-0"}').ID, 0n);
  strictEqual(decodeKeepAliveRequest('{"ID":null}').ID, 0n);
  strictEqual(decodeKeepAliveRequest("null").ID, 0n);
  strictEqual(decodeKeepAliveRequest('{"id":"5","x":{"ID":"6"}}').ID, 0n, "only ID, top level");
  strictEqual(decodeKeepAliveRequest('{"ID":"1","ID":"2"}').ID, 2n, "the last wins");
  const refused: [string, string][] = [
    ['{"ID":"0x10"}', "invalid character 'x' after top-level value"],
    ['{"ID":"+1"}', "invalid character '+' looking for beginning of value"],
    ['{"ID":""}', "unexpected end of JSON input"],
    ['{"ID":true}', "json: cannot unmarshal bool into Go value of type int64"],
    ['{"ID":{}}', "json: cannot unmarshal object into Go value of type int64"],
    [
      '{"ID":"9223372036854775808"}',
      "json: cannot unmarshal number 9223372036854775808 into Go value of type int64",
    ],
    ['"x"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"],
  ];
  for (const [json, message] of refused) {
    throws(() => decodeKeepAliveRequest(json), new GoJsonError(message), json);
  }
});
