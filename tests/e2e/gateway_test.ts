/**
 * The JSON gateway over HTTP/1.1 (`fetch`): request and response shapes of `/v3/kv/*`, error
 * bodies and statuses, routing errors, `/version` and `/health`.
 *
 * The differential test sends the same request sequence to a fresh etcd 3.4 and a fresh
 * member of ours and compares statuses and masked JSON bodies. The explicit test asserts the
 * shapes clients parse; `E2E_IMPL=etcd` runs it against etcd itself.
 *
 * @module
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { ETCD_BIN, type Impl, type Member, requireBinary, startMember } from "./harness.ts";
import { lineDiff, Normalizer } from "./normalize.ts";

const impl: Impl = Deno.env.get("E2E_IMPL") === "etcd" ? "etcd" : "ours";
const candidate: Impl = Deno.env.get("DIFF_AGAINST") === "etcd" ? "etcd" : "ours";
const etcdAvailable = requireBinary(ETCD_BIN);

const b64 = (s: string) => btoa(s);

/** How much of a response the differential test compares. */
type Compare =
  /** Status and the whole (masked) JSON body. */
  | "full"
  /** Status and the body's gRPC `code` (for Go-specific JSON parser messages). */
  | "code"
  /** Status only (plain-text bodies). */
  | "status";

interface Request {
  method?: string;
  path: string;
  /** A JSON value to send, or a raw string body. */
  body?: unknown;
  compare?: Compare;
}

interface Reply {
  status: number;
  /** The parsed JSON body, or the text when it is not JSON. */
  body: unknown;
}

async function send(base: string, req: Request): Promise<Reply> {
  const method = req.method ?? "POST";
  const body = req.body === undefined
    ? undefined
    : typeof req.body === "string"
    ? req.body
    : JSON.stringify(req.body);
  const res = await fetch(`${base}${req.path}`, {
    method,
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

const foo = b64("foo");

/** The request sequence; a fresh member starts at revision 1. */
const SEQUENCE: Request[] = [
  { path: "/v3/kv/put", body: { key: foo, value: b64("bar") } },
  { path: "/v3/kv/put", body: { key: foo, value: b64("baz"), prev_kv: true } },
  { path: "/v3/kv/put", body: { key: b64("foo1"), value: b64("1") } },
  { path: "/v3/kv/put", body: { key: b64("foo2"), value: "" } },
  { path: "/v3/kv/range", body: { key: foo } },
  { path: "/v3/kv/range", body: { key: foo, range_end: b64("fop"), limit: "1" } },
  { path: "/v3/kv/range", body: { key: foo, range_end: b64("fop"), keys_only: true } },
  { path: "/v3/kv/range", body: { key: foo, range_end: b64("fop"), count_only: true } },
  { path: "/v3/kv/range", body: { key: "AA==", range_end: "AA==", sort_order: "DESCEND" } },
  {
    path: "/v3/kv/range",
    body: { key: "AA==", range_end: "AA==", sort_order: "ASCEND", sort_target: "VALUE" },
  },
  { path: "/v3/kv/range", body: { key: foo, sortOrder: "DESCEND", keysOnly: true } },
  { path: "/v3/kv/range", body: { key: foo, revision: "2" } },
  { path: "/v3/kv/range", body: { key: foo, revision: 3, serializable: true } },
  { path: "/v3/kv/range", body: { key: b64("none") } },
  { path: "/v3beta/kv/range", body: { key: foo } },
  { path: "/v3/kv/put", body: { key: b64("foo1"), ignore_value: true, prev_kv: true } },
  { path: "/v3/kv/put", body: { key: b64("nokey"), ignore_value: true } },
  { path: "/v3/kv/put", body: { key: b64("z"), value: b64("1"), lease: "1234" } },
  { path: "/v3/kv/put", body: { key: "", value: b64("1") } },
  { path: "/v3/kv/range", body: {} },
  { path: "/v3/kv/range", body: "" },
  {
    path: "/v3/kv/txn",
    body: {
      compare: [{ key: foo, target: "VALUE", result: "EQUAL", value: b64("baz") }],
      success: [
        { request_put: { key: foo, value: b64("qux"), prev_kv: true } },
        { request_range: { key: b64("foo1") } },
      ],
      failure: [{ request_range: { key: foo } }],
    },
  },
  {
    path: "/v3/kv/txn",
    body: {
      compare: [
        { key: foo, target: "VERSION", result: "GREATER", version: "1" },
        { key: foo, target: "MOD", result: "LESS", mod_revision: "3" },
      ],
      success: [{ request_delete_range: { key: foo } }],
      failure: [{ request_range: { key: foo, keys_only: true } }],
    },
  },
  {
    path: "/v3/kv/txn",
    body: {
      compare: [{ key: b64("missing"), target: "CREATE", result: "EQUAL", create_revision: "0" }],
      success: [
        { request_put: { key: b64("missing"), value: b64("m") } },
        { request_txn: { success: [{ request_range: { key: b64("missing") } }] } },
      ],
    },
  },
  {
    path: "/v3/kv/txn",
    body: {
      compare: [{ key: foo, target: "LEASE", result: "NOT_EQUAL", lease: "0" }],
      failure: [{ request_delete_range: { key: b64("foo2"), prev_kv: true } }],
    },
  },
  {
    path: "/v3/kv/txn",
    body: {
      success: [
        { request_put: { key: b64("d"), value: "" } },
        { request_delete_range: { key: b64("d") } },
      ],
    },
  },
  { path: "/v3/kv/deleterange", body: { key: foo, prev_kv: true } },
  { path: "/v3/kv/deleterange", body: { key: b64("a"), range_end: b64("z") } },
  { path: "/v3/kv/deleterange", body: { key: b64("nothing") } },
  { path: "/v3/kv/compaction", body: { revision: "4" } },
  { path: "/v3/kv/range", body: { key: foo, revision: "3" } },
  { path: "/v3/kv/range", body: { key: foo, revision: "1000" } },
  { path: "/v3/kv/compaction", body: { revision: "4" } },
  { path: "/v3/kv/compaction", body: { revision: "1000", physical: true } },
  { path: "/v3/kv/compaction", body: { revision: "6", physical: true } },
  { path: "/v3/kv/range", body: { key: "AA==", range_end: "AA==" } },
  // malformed requests
  { path: "/v3/kv/range", body: '{"key":' },
  { path: "/v3/kv/range", body: "garbage", compare: "code" },
  { path: "/v3/kv/range", body: "[]", compare: "code" },
  { path: "/v3/kv/range", body: { key: "!!" }, compare: "code" },
  { path: "/v3/kv/range", body: { key: foo, sort_order: "BOGUS" }, compare: "code" },
  { path: "/v3/kv/range", body: { key: foo, limit: "abc" }, compare: "code" },
  { path: "/v3/kv/range", body: { key: foo, bogus: 1 } },
  // routing
  { method: "GET", path: "/v3/kv/range", compare: "status" },
  { method: "PUT", path: "/v3/kv/put", body: {}, compare: "status" },
  { path: "/v3/kv/nope", body: {}, compare: "status" },
  { path: "/nope", body: {}, compare: "status" },
  { method: "GET", path: "/version" },
  { method: "GET", path: "/health" },
  { path: "/health", compare: "status" },
];

async function runSequence(which: Impl): Promise<Reply[]> {
  let member: Member | undefined;
  try {
    member = await startMember({ impl: which });
    const norm = new Normalizer([member.clientUrl]);
    const replies: Reply[] = [];
    for (const req of SEQUENCE) {
      const reply = await send(member.clientUrl, req);
      replies.push({ status: reply.status, body: norm.json(reply.body) });
    }
    return replies;
  } finally {
    await member?.stop();
  }
}

function view(req: Request, reply: Reply): string {
  const mode = req.compare ?? "full";
  const body = reply.body as { code?: unknown } | string;
  if (mode === "status") return `HTTP ${reply.status}`;
  if (mode === "code") {
    return `HTTP ${reply.status} code=${typeof body === "object" ? String(body?.code) : "?"}`;
  }
  return `HTTP ${reply.status}\n${JSON.stringify(reply.body, null, 1)}`;
}

Deno.test({
  name: `differential: JSON gateway, etcd 3.4 vs ${candidate}`,
  ignore: !etcdAvailable,
  async fn(t) {
    const expected = await runSequence("etcd");
    const actual = await runSequence(candidate);
    for (const [i, req] of SEQUENCE.entries()) {
      const body = req.body === undefined
        ? ""
        : ` ${typeof req.body === "string" ? req.body : JSON.stringify(req.body)}`;
      const name = `${String(i + 1).padStart(2, "0")}: ${req.method ?? "POST"} ${req.path}${body}`;
      await t.step(name, () => {
        const e = view(req, expected[i]);
        const a = view(req, actual[i]);
        if (e !== a) {
          throw new Error(`step ${name} differs (- etcd, + ${candidate}):\n${lineDiff(e, a)}`);
        }
      });
    }
  },
});

/** A response header as the gateway writes it: every field a decimal string. */
interface Header {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

async function post(m: Member, path: string, body: unknown): Promise<Reply> {
  return await send(m.clientUrl, { path, body });
}

Deno.test({
  name: `JSON gateway (${impl}): shapes clients parse`,
  ignore: impl === "etcd" && !etcdAvailable,
  async fn() {
    const m = await startMember({ impl });
    try {
      let r = await post(m, "/v3/kv/put", { key: foo, value: b64("bar") });
      strictEqual(r.status, 200);
      const header = (r.body as { header: Header }).header;
      deepStrictEqual(Object.keys(r.body as object), ["header"]);
      for (const field of ["cluster_id", "member_id", "revision", "raft_term"] as const) {
        strictEqual(typeof header[field], "string", field);
        strictEqual(/^\d+$/.test(header[field]), true, field);
      }
      strictEqual(header.revision, "2");

      r = await post(m, "/v3/kv/range", { key: foo });
      deepStrictEqual((r.body as { kvs: unknown }).kvs, [{
        key: foo,
        create_revision: "2",
        mod_revision: "2",
        version: "1",
        value: b64("bar"),
      }]);
      strictEqual((r.body as { count: string }).count, "1");

      // Zero and false fields are omitted: no kvs, no count, no more.
      r = await post(m, "/v3/kv/range", { key: b64("none") });
      deepStrictEqual(Object.keys(r.body as object), ["header"]);

      r = await post(m, "/v3/kv/txn", {
        compare: [{ key: foo, target: "VERSION", result: "EQUAL", version: "5" }],
        success: [{ request_put: { key: foo, value: b64("x") } }],
        failure: [{ request_range: { key: foo } }],
      });
      const txn = r.body as {
        succeeded?: boolean;
        responses: { response_range: { header: object } }[];
      };
      strictEqual(txn.succeeded, undefined);
      deepStrictEqual(txn.responses[0].response_range.header, { revision: "2" });

      r = await post(m, "/v3/kv/range", {});
      strictEqual(r.status, 400);
      deepStrictEqual(r.body, {
        error: "etcdserver: key is not provided",
        message: "etcdserver: key is not provided",
        code: 3,
      });
      r = await post(m, "/v3/kv/put", { key: foo, value: "", lease: "1234" });
      strictEqual(r.status, 404);
      strictEqual((r.body as { code: number }).code, 5);
      r = await post(m, "/v3/kv/range", { key: foo, revision: "99" });
      strictEqual(r.status, 400);
      deepStrictEqual(r.body, {
        error: "etcdserver: mvcc: required revision is a future revision",
        message: "etcdserver: mvcc: required revision is a future revision",
        code: 11,
      });
      r = await send(m.clientUrl, { path: "/v3/kv/range", body: '{"key":' });
      strictEqual(r.status, 400);
      deepStrictEqual(r.body, { error: "unexpected EOF", message: "unexpected EOF", code: 3 });
      r = await send(m.clientUrl, { path: "/v3/kv/range", body: "garbage" });
      strictEqual(r.status, 400);
      strictEqual((r.body as { code: number }).code, 3);

      strictEqual((await send(m.clientUrl, { method: "GET", path: "/v3/kv/range" })).status, 405);
      strictEqual((await send(m.clientUrl, { path: "/v3/kv/nope", body: {} })).status, 404);
      strictEqual((await send(m.clientUrl, { path: "/nope", body: {} })).status, 404);
      r = await send(m.clientUrl, { method: "GET", path: "/version" });
      deepStrictEqual(r, { status: 200, body: { etcdserver: "3.4.23", etcdcluster: "3.4.0" } });
      r = await send(m.clientUrl, { method: "GET", path: "/health" });
      deepStrictEqual(r, { status: 200, body: { health: "true" } });
    } finally {
      await m.stop();
    }
  },
});

Deno.test({
  name: `HTTP answers (${impl}): etcd's CORS headers on every answer, OPTIONS answered 200`,
  ignore: impl === "etcd" && !etcdAvailable,
  async fn() {
    const m = await startMember({ impl });
    try {
      const cors = (res: Response) => [
        res.headers.get("access-control-allow-origin"),
        res.headers.get("access-control-allow-methods"),
        res.headers.get("access-control-allow-headers"),
      ];
      const etcdCors = [
        "*",
        "POST, GET, OPTIONS, PUT, DELETE",
        "accept, content-type, authorization",
      ];
      const range = await fetch(`${m.clientUrl}/v3/kv/range`, {
        method: "POST",
        body: JSON.stringify({ key: foo }),
      });
      await range.body?.cancel();
      deepStrictEqual(cors(range), etcdCors);
      strictEqual(range.headers.get("grpc-metadata-content-type"), "application/grpc");
      for (
        const [method, path] of [["GET", "/version"], ["GET", "/nope"], ["OPTIONS", "/v3/kv/put"]]
      ) {
        const res = await fetch(`${m.clientUrl}${path}`, { method });
        await res.body?.cancel();
        deepStrictEqual(cors(res), etcdCors, `${method} ${path}`);
        if (method === "OPTIONS") strictEqual(res.status, 200);
      }
    } finally {
      await m.stop();
    }
  },
});
