import { create } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Hono } from "hono";
import { deepStrictEqual, fail, rejects, strictEqual } from "node:assert/strict";
import {
  Cluster,
  type Member,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { ETCD_BIN, requireBinary, startMember } from "../tests/e2e/harness.ts";
import {
  type ClusterBackend,
  clusterGatewayRoutes,
  clusterService,
  type ClusterServiceOptions,
  type LeaderProgress,
  type MemberConfChange,
  normalizePeerUrl,
  promoteMemberOnLeader,
  validateConfChange,
} from "./cluster_service.ts";
import { toConnectError } from "./errors.ts";
import { mountGateway } from "./gateway.ts";
import { memberIdFor } from "./ids.ts";
import type { MemberInfo } from "./membership.ts";

const clusterId = 0xc1n;
const selfId = 0x50n;
const raftTerm = 7n;
/** The fake clock: new member IDs depend on it, as etcd's do. */
const fixedNowMs = 1_700_000_000_000;

/** etcd's answers, as etcd 3.4.23 gives them (code and message measured live). */
const etcd = {
  badURLs: { code: Code.InvalidArgument, message: "etcdserver: given member URLs are invalid" },
  peerURLExist: { code: Code.FailedPrecondition, message: "etcdserver: Peer URLs already exists" },
  memberExist: { code: Code.FailedPrecondition, message: "etcdserver: member ID already exist" },
  notFound: { code: Code.NotFound, message: "etcdserver: member not found" },
  notLearner: {
    code: Code.FailedPrecondition,
    message: "etcdserver: can only promote a learner member",
  },
  notInSync: {
    code: Code.FailedPrecondition,
    message: "etcdserver: can only promote a learner member which is in sync with leader",
  },
  tooManyLearners: {
    code: Code.FailedPrecondition,
    message: "etcdserver: too many learner members in cluster",
  },
  notEnoughStarted: {
    code: Code.Unknown,
    message: "etcdserver: re-configuration failed due to not enough started members",
  },
  unhealthy: { code: Code.Unavailable, message: "etcdserver: unhealthy cluster" },
  notLeader: { code: Code.FailedPrecondition, message: "etcdserver: not leader" },
} as const;

type Expected = { code: Code; message: string };

function member(id: bigint, init: Partial<MemberInfo> = {}): MemberInfo {
  const started = init.name !== "";
  return {
    id,
    name: init.name ?? `m${id.toString(16)}`,
    peerUrls: init.peerUrls ?? [`http://10.0.0.${id}:2380`],
    clientUrls: init.clientUrls ?? (started ? [`http://10.0.0.${id}:2379`] : []),
    isLearner: init.isLearner ?? false,
  };
}

const self = member(selfId);

/**
 * A member without raft: conf changes apply at once, validated against the applied table as
 * the real backend validates them; the leader's progress is whatever the test sets.
 */
class FakeBackend implements ClusterBackend {
  readonly memberId = selfId;
  readonly clusterId = clusterId;
  readonly table = new Map<bigint, MemberInfo>();
  readonly removed = new Set<bigint>();
  readonly proposals: MemberConfChange[] = [];
  /** null: this member follows. */
  leader: LeaderProgress | null;

  constructor(members: MemberInfo[], leader: Partial<LeaderProgress> | null = {}) {
    // Inserted in reverse ID order: the service must sort.
    for (const m of [...members].sort((a, b) => (a.id < b.id ? 1 : -1))) this.table.set(m.id, m);
    this.leader = leader && {
      committed: leader.committed ?? 100,
      match: leader.match ?? new Map(members.map((m) => [m.id, 100])),
      recentActive: leader.recentActive ?? new Set(members.map((m) => m.id)),
    };
  }

  header(): ResponseHeader {
    return create(ResponseHeaderSchema, { clusterId, memberId: selfId, revision: 42n, raftTerm });
  }

  members(): MemberInfo[] {
    return [...this.table.values()].map((m) => ({ ...m }));
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  // deno-lint-ignore require-await
  async proposeConfChange(change: MemberConfChange): Promise<MemberInfo[]> {
    this.proposals.push(change);
    validateConfChange(this.members(), (id) => this.isRemoved(id), change);
    const m = change.member;
    switch (change.type) {
      case "add":
      case "addLearner":
        this.table.set(m.id, { ...m });
        // The leader starts tracking it from nothing, as raft does.
        this.leader?.match.set(m.id, 0);
        break;
      case "remove":
        this.table.delete(m.id);
        this.removed.add(m.id);
        this.leader?.match.delete(m.id);
        this.leader?.recentActive.delete(m.id);
        break;
      case "update":
      case "promote":
        this.table.set(m.id, { ...m });
        break;
    }
    return this.members();
  }

  progress(): LeaderProgress | null {
    return this.leader;
  }

  newMemberId(peerUrls: string[], now: number): bigint {
    return memberIdFor(peerUrls, String(Math.floor(now / 1000)));
  }

  linearizableRead(): Promise<void> {
    return Promise.resolve();
  }
}

/** Turns EtcdErrors into wire errors, as the server's interceptor does. */
const etcdErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw toConnectError(err);
  }
};

function clientOf(
  backend: ClusterBackend,
  options: Partial<ClusterServiceOptions> = {},
): Client<typeof Cluster> {
  const service = clusterService(backend, {
    strictReconfigCheck: true,
    now: () => fixedNowMs,
    ...options,
  });
  const transport = createRouterTransport((router) => router.service(Cluster, service), {
    router: { interceptors: [etcdErrors] },
  });
  return createClient(Cluster, transport);
}

async function rejectsWith(call: Promise<unknown>, expected: Expected): Promise<void> {
  await rejects(call, (err) => {
    if (!(err instanceof ConnectError)) return false;
    deepStrictEqual({ code: err.code, message: err.rawMessage }, expected);
    return true;
  });
}

/** The fields a Member carries on the wire, without protobuf-es's type tag. */
function plain(m: Member) {
  return {
    ID: m.ID,
    name: m.name,
    peerURLs: m.peerURLs,
    clientURLs: m.clientURLs,
    isLearner: m.isLearner,
  };
}

function plainInfo(m: MemberInfo) {
  return {
    ID: m.id,
    name: m.name,
    peerURLs: m.peerUrls,
    clientURLs: m.clientUrls,
    isLearner: m.isLearner,
  };
}

const expectedHeader = { clusterId, memberId: selfId, revision: 0n, raftTerm };

function headerOf(h: ResponseHeader | undefined) {
  return h && {
    clusterId: h.clusterId,
    memberId: h.memberId,
    revision: h.revision,
    raftTerm: h.raftTerm,
  };
}

Deno.test("peer URLs are accepted, refused and printed back as etcd 3.4.23 does", () => {
  // Each case was sent to a real etcd 3.4.23 as a learner's peer URL; null means refused.
  const cases: [string, string | null][] = [
    ["http://127.0.0.1:2380", "http://127.0.0.1:2380"],
    [" HTTP://B:2 ", "http://B:2"],
    ["\thttp://h:1\n", "http://h:1"],
    ["Https://H:1", "https://H:1"],
    ["unixs://h:1", "unixs://h:1"],
    ["unix://a:1", "unix://a:1"],
    ["http://h:6#f", "http://h:6#f"],
    ["http://h:6#", "http://h:6"],
    ["http://h:1#a b", "http://h:1#a%20b"],
    ["http://h:1#a%20b", "http://h:1#a%20b"],
    ["http://u@h:5", "http://u@h:5"],
    ["http://u:p@h:5", "http://u:p@h:5"],
    ["http://@h:1", "http://@h:1"],
    ["http://u@@h:1", "http://u%40@h:1"],
    ["http://u%20x@h:1", "http://u%20x@h:1"],
    ["http://h:", "http://h:"],
    ["http://:1", "http://:1"],
    ["http://h:99999", "http://h:99999"],
    ["http://h:1?", "http://h:1?"],
    ["http://h:1??", "http://h:1??"],
    ["http://h:1?a=b#c", "http://h:1?a=b#c"],
    ["http://h:1?a b", "http://h:1?a b"],
    ["http://[::1]:1", "http://[::1]:1"],
    ["http://[::1]:", "http://[::1]:"],
    ["http://[h]:1", "http://[h]:1"],
    ["http://h_x:1", "http://h_x:1"],
    ["http://h<>:1", "http://h<>:1"],
    ["http://ü:1", "http://%C3%BC:1"],
    ["not a url", null],
    ["127.0.0.1:2380", null],
    ["ftp://127.0.0.1:2380", null],
    ["http://127.0.0.1:2380/path", null],
    ["http://h:7/", null],
    ["http://h:1/%20", null],
    ["http://h:x", null],
    ["http://h:+1", null],
    ["http://h", null],
    ["http://[::1]", null],
    ["unix://a", null],
    ["http://h:1:2", null],
    ["https://h:1:", null],
    ["http://h]:1", null],
    ["http://h%41:1", null],
    ["http://h%zz:1", null],
    ["http://h :1", null],
    ["http://h\t:1", null],
    ["http://h\x7f:1", null],
    ["http://u x@h:1", null],
    ["http://h:1#%zz", null],
    ["http://h/x:1", null],
    ["http://h:1\\", null],
    ["mailto:x@y:1", null],
    ["http:/h:1", null],
    ["http:h:1", null],
    ["1http://h:1", null],
    ["HTTP+x://h:1", null],
  ];
  for (const [input, want] of cases) {
    strictEqual(normalizePeerUrl(input), want, JSON.stringify(input));
  }
});

Deno.test("MemberList: every member sorted by ID, unstarted ones without name or client URLs", async () => {
  const learner = member(0x7n, { name: "", isLearner: true });
  const other = member(0x90n);
  const backend = new FakeBackend([self, other, learner]);
  const response = await clientOf(backend).memberList({});
  deepStrictEqual(headerOf(response.header), expectedHeader);
  deepStrictEqual(response.members.map(plain), [learner, self, other].map(plainInfo));
  deepStrictEqual(response.members[0].clientURLs, []);
  // A follower answers from its own view, with no round trip to the leader.
  backend.leader = null;
  strictEqual((await clientOf(backend).memberList({})).members.length, 3);
});

Deno.test("MemberAdd", async (t) => {
  await t.step("adds a learner: the new member alone, then everyone", async () => {
    const backend = new FakeBackend([self]);
    const response = await clientOf(backend).memberAdd({
      peerURLs: ["http://b:2380", " HTTP://a:2380"],
      isLearner: true,
    });
    const peerURLs = ["http://a:2380", "http://b:2380"];
    const id = memberIdFor(peerURLs, String(fixedNowMs / 1000));
    deepStrictEqual(headerOf(response.header), expectedHeader);
    deepStrictEqual(plain(response.member!), {
      ID: id,
      name: "",
      peerURLs,
      clientURLs: [],
      isLearner: true,
    });
    deepStrictEqual(
      response.members.map(plain),
      [self, { id, name: "", peerUrls: peerURLs, clientUrls: [], isLearner: true }]
        .sort((a, b) => (a.id < b.id ? -1 : 1)).map(plainInfo),
    );
    deepStrictEqual(backend.proposals.map((p) => p.type), ["addLearner"]);
  });

  await t.step("adds a voter to a one-member cluster (how a restored backup grows)", async () => {
    const backend = new FakeBackend([self]);
    const response = await clientOf(backend).memberAdd({ peerURLs: ["http://v:1"] });
    strictEqual(response.member!.isLearner, false);
    deepStrictEqual(backend.proposals.map((p) => p.type), ["add"]);
  });

  await t.step("refuses bad or missing peer URLs before proposing", async () => {
    const backend = new FakeBackend([self]);
    const client = clientOf(backend);
    for (const peerURLs of [[], ["not a url"], ["http://ok:1", "http://no-port"]]) {
      await rejectsWith(client.memberAdd({ peerURLs }), etcd.badURLs);
    }
    strictEqual(backend.proposals.length, 0);
  });

  await t.step("refuses a peer URL another member has", async () => {
    const backend = new FakeBackend([self]);
    const client = clientOf(backend);
    await rejectsWith(client.memberAdd({ peerURLs: self.peerUrls }), etcd.peerURLExist);
    // Normalized first: the same URL spelled differently is the same URL.
    await rejectsWith(
      client.memberAdd({ peerURLs: [` HTTP${self.peerUrls[0].slice(4)} `] }),
      etcd.peerURLExist,
    );
    strictEqual(backend.proposals.length, 0);
  });

  await t.step("allows one learner at most", async () => {
    const backend = new FakeBackend([self, member(0x60n, { name: "", isLearner: true })]);
    await rejectsWith(
      clientOf(backend).memberAdd({ peerURLs: ["http://l2:1"], isLearner: true }),
      etcd.tooManyLearners,
    );
  });

  await t.step("refuses an ID that exists or was removed", async () => {
    const urls = ["http://same:1"];
    const id = memberIdFor(urls, String(fixedNowMs / 1000));
    const backend = new FakeBackend([
      self,
      member(0x60n),
      member(id, { peerUrls: ["http://x:1"] }),
    ]);
    await rejectsWith(clientOf(backend).memberAdd({ peerURLs: urls }), etcd.memberExist);
    backend.table.delete(id);
    backend.removed.add(id);
    await rejectsWith(clientOf(backend).memberAdd({ peerURLs: urls }), etcd.notFound);
  });

  await t.step("strict: refuses a voter the started members could not outvote", async () => {
    // Two voters, one never started: a third voter would need two of three started.
    const backend = new FakeBackend([self, member(0x60n, { name: "" })]);
    await rejectsWith(
      clientOf(backend).memberAdd({ peerURLs: ["http://v:1"] }),
      etcd.notEnoughStarted,
    );
    // Without --strict-reconfig-check it is proposed.
    await clientOf(backend, { strictReconfigCheck: false }).memberAdd({
      peerURLs: ["http://v:1"],
    });
    deepStrictEqual(backend.proposals.map((p) => p.type), ["add"]);
  });

  await t.step("strict: the leader refuses while a voter is not connected", async () => {
    const peer = member(0x60n);
    const backend = new FakeBackend([self, peer], { recentActive: new Set([selfId]) });
    const client = clientOf(backend);
    await rejectsWith(
      client.memberAdd({ peerURLs: ["http://l:1"], isLearner: true }),
      etcd.unhealthy,
    );
    await rejectsWith(client.memberAdd({ peerURLs: ["http://v:1"] }), etcd.unhealthy);
    backend.leader!.recentActive.add(peer.id);
    await client.memberAdd({ peerURLs: ["http://v:1"] });
    // A follower cannot see the leader's connections: it checks only started members.
    const follower = new FakeBackend([self, peer], null);
    await clientOf(follower).memberAdd({ peerURLs: ["http://w:1"] });
    strictEqual(follower.proposals.length, 1);
  });
});

Deno.test("MemberRemove", async (t) => {
  await t.step("removes a member and answers with the rest", async () => {
    const gone = member(0x60n);
    const backend = new FakeBackend([self, gone, member(0x70n)]);
    const response = await clientOf(backend).memberRemove({ ID: gone.id });
    deepStrictEqual(headerOf(response.header), expectedHeader);
    deepStrictEqual(response.members.map((m) => m.ID), [selfId, 0x70n]);
    deepStrictEqual(backend.proposals, [{ type: "remove", member: gone }]);
  });

  await t.step("unknown or already removed: member not found", async () => {
    const backend = new FakeBackend([self, member(0x60n), member(0x70n)]);
    const client = clientOf(backend);
    await rejectsWith(client.memberRemove({ ID: 0x12345n }), etcd.notFound);
    await client.memberRemove({ ID: 0x60n });
    await rejectsWith(client.memberRemove({ ID: 0x60n }), etcd.notFound);
  });

  await t.step("strict: refuses when the started voters left are no quorum", async () => {
    // Removing the only started member of {self, unstarted}, or self alone.
    const backend = new FakeBackend([self, member(0x60n, { name: "" })]);
    await rejectsWith(clientOf(backend).memberRemove({ ID: selfId }), etcd.notEnoughStarted);
    // etcd checks the quorum before it looks the ID up.
    await rejectsWith(clientOf(backend).memberRemove({ ID: 0n }), etcd.notEnoughStarted);
    const alone = new FakeBackend([self]);
    await rejectsWith(clientOf(alone).memberRemove({ ID: selfId }), etcd.notEnoughStarted);
    await clientOf(alone, { strictReconfigCheck: false }).memberRemove({ ID: selfId });
  });

  await t.step("strict: a learner goes whatever the quorum", async () => {
    const learner = member(0x60n, { name: "", isLearner: true });
    const backend = new FakeBackend([self, member(0x70n, { name: "" }), learner]);
    await clientOf(backend).memberRemove({ ID: learner.id });
    strictEqual(backend.table.has(learner.id), false);
  });

  await t.step("strict: a down voter may go, an up one not if that breaks the quorum", async () => {
    const [a, b] = [member(0x60n), member(0x70n)];
    // self, a and b started; only self and a connected.
    const backend = new FakeBackend([self, a, b], { recentActive: new Set([selfId, a.id]) });
    // Removing a leaves self alone among the connected: one of two is no quorum.
    await rejectsWith(clientOf(backend).memberRemove({ ID: a.id }), etcd.unhealthy);
    // b is down already: removing it changes nothing for the live majority.
    await clientOf(backend).memberRemove({ ID: b.id });
    deepStrictEqual([...backend.table.keys()].sort(), [selfId, a.id].sort());
  });
});

Deno.test("MemberUpdate", async (t) => {
  await t.step("replaces a member's peer URLs and keeps the rest of it", async () => {
    const learner = member(0x60n, { name: "", isLearner: true });
    const backend = new FakeBackend([self, learner]);
    const response = await clientOf(backend).memberUpdate({
      ID: learner.id,
      peerURLs: ["http://z:1", " HTTP://a:1"],
    });
    deepStrictEqual(headerOf(response.header), expectedHeader);
    // Unlike etcd 3.4, the learner stays a learner (3.4 loses the flag here).
    deepStrictEqual(response.members.map(plain), [
      plainInfo(self),
      plainInfo({ ...learner, peerUrls: ["http://a:1", "http://z:1"] }),
    ]);
    deepStrictEqual(backend.proposals.map((p) => p.type), ["update"]);
  });

  await t.step("a member may keep its own URLs, not take another's", async () => {
    const other = member(0x60n);
    const backend = new FakeBackend([self, other]);
    const client = clientOf(backend);
    await client.memberUpdate({ ID: selfId, peerURLs: self.peerUrls });
    await rejectsWith(
      client.memberUpdate({ ID: selfId, peerURLs: [...self.peerUrls, ...other.peerUrls] }),
      etcd.peerURLExist,
    );
  });

  await t.step("unknown, removed, or bad URLs", async () => {
    const backend = new FakeBackend([self]);
    backend.removed.add(0x60n);
    const client = clientOf(backend);
    await rejectsWith(
      client.memberUpdate({ ID: 0x12345n, peerURLs: ["http://a:1"] }),
      etcd.notFound,
    );
    await rejectsWith(client.memberUpdate({ ID: 0x60n, peerURLs: ["http://a:1"] }), etcd.notFound);
    // etcd 3.4 stores these as given; we refuse them as MemberAdd does.
    await rejectsWith(client.memberUpdate({ ID: selfId, peerURLs: ["not a url"] }), etcd.badURLs);
    await rejectsWith(client.memberUpdate({ ID: selfId, peerURLs: [] }), etcd.badURLs);
    strictEqual(backend.proposals.length, 0);
  });
});

Deno.test("MemberPromote", async (t) => {
  const learner = member(0x60n, { isLearner: true });

  await t.step("promotes a learner that has 90% of the leader's log", async () => {
    const backend = new FakeBackend([self, learner], {
      committed: 95,
      match: new Map([[selfId, 100], [learner.id, 90]]),
    });
    const response = await clientOf(backend).memberPromote({ ID: learner.id });
    deepStrictEqual(headerOf(response.header), expectedHeader);
    deepStrictEqual(response.members.map((m) => [m.ID, m.isLearner]), [
      [selfId, false],
      [learner.id, false],
    ]);
    deepStrictEqual(backend.proposals, [
      { type: "promote", member: { ...learner, isLearner: false } },
    ]);
  });

  await t.step("refuses a learner below 90% of the leader's log", async () => {
    const backend = new FakeBackend([self, learner], {
      match: new Map([[selfId, 100], [learner.id, 89]]),
    });
    await rejectsWith(clientOf(backend).memberPromote({ ID: learner.id }), etcd.notInSync);
    strictEqual(backend.proposals.length, 0);
  });

  await t.step("voters, unknown and removed members", async () => {
    const backend = new FakeBackend([self, member(0x70n)]);
    backend.removed.add(learner.id);
    const client = clientOf(backend);
    await rejectsWith(client.memberPromote({ ID: selfId }), etcd.notLearner);
    await rejectsWith(client.memberPromote({ ID: 0x12345n }), etcd.notFound);
    await rejectsWith(client.memberPromote({ ID: learner.id }), etcd.notFound);
    // As in etcd, the in-sync check comes first, even for a voter.
    backend.leader!.match.set(0x70n, 1);
    await rejectsWith(client.memberPromote({ ID: 0x70n }), etcd.notInSync);
  });

  await t.step("strict: refuses when the started voters would be no quorum", async () => {
    // self started, two voters never started: four voters after, two started.
    const backend = new FakeBackend([
      self,
      member(0x70n, { name: "" }),
      member(0x80n, { name: "" }),
      learner,
    ]);
    await rejectsWith(clientOf(backend).memberPromote({ ID: learner.id }), etcd.notEnoughStarted);
    await clientOf(backend, { strictReconfigCheck: false }).memberPromote({ ID: learner.id });
  });

  await t.step("a follower hands the promote to the backend, which forwards it", async () => {
    const backend = new FakeBackend([self, learner], null);
    const response = await clientOf(backend).memberPromote({ ID: learner.id });
    deepStrictEqual(backend.proposals.map((p) => p.type), ["promote"]);
    strictEqual(response.members.every((m) => !m.isLearner), true);
    // What the leader runs for a forwarded promote refuses on a follower.
    await rejects(
      promoteMemberOnLeader(backend, learner.id, { strictReconfigCheck: true }),
      (err: Error) => err.message === etcd.notLeader.message,
    );
  });
});

Deno.test("gateway: /v3/cluster/member/* in grpc-gateway's JSON", async () => {
  const backend = new FakeBackend([self]);
  const app = new Hono();
  mountGateway(
    app,
    clusterGatewayRoutes(
      clusterService(backend, { strictReconfigCheck: true, now: () => fixedNowMs }),
    ),
    1 << 20,
  );
  const post = async (path: string, body: unknown) => {
    const res = await app.request(path, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  };
  const header = { cluster_id: "193", member_id: "80", raft_term: "7" };
  const selfJson = {
    ID: "80",
    name: self.name,
    peerURLs: self.peerUrls,
    clientURLs: self.clientUrls,
  };
  deepStrictEqual(await post("/v3/cluster/member/list", {}), {
    status: 200,
    json: { header, members: [selfJson] },
  });

  const added = await post("/v3/cluster/member/add", {
    peerURLs: ["http://l:1"],
    isLearner: true,
  });
  const id = memberIdFor(["http://l:1"], String(fixedNowMs / 1000)).toString();
  const learnerJson = { ID: id, peerURLs: ["http://l:1"], isLearner: true };
  const members = BigInt(id) < selfId ? [learnerJson, selfJson] : [selfJson, learnerJson];
  deepStrictEqual(added, { status: 200, json: { header, member: learnerJson, members } });

  deepStrictEqual(await post("/v3/cluster/member/promote", { ID: "80" }), {
    status: 412,
    json: { error: etcd.notLearner.message, message: etcd.notLearner.message, code: 9 },
  });
  deepStrictEqual(await post("/v3/cluster/member/remove", { ID: "1" }), {
    status: 404,
    json: { error: etcd.notFound.message, message: etcd.notFound.message, code: 5 },
  });
  deepStrictEqual(await post("/v3/cluster/member/update", { ID: "80", peerURLs: ["bad"] }), {
    status: 400,
    json: { error: etcd.badURLs.message, message: etcd.badURLs.message, code: 3 },
  });
  strictEqual(
    (await post("/v3/cluster/member/update", { ID: "80", peerURLs: ["http://s:1"] })).status,
    200,
  );
  strictEqual((await post("/v3/cluster/member/remove", { ID: id })).status, 200);
});

const etcdAvailable = requireBinary(ETCD_BIN);

Deno.test({
  name: "the same requests get the same answers from etcd 3.4.23 and from this service",
  ignore: !etcdAvailable,
  async fn() {
    const real = await startMember({ impl: "etcd" });
    try {
      const etcdClient = createClient(Cluster, createGrpcTransport({ baseUrl: real.clientUrl }));
      const [realSelf] = (await etcdClient.memberList({})).members;
      // Our side: one started member with etcd's own name and URLs, leading.
      const ours = new FakeBackend(
        [{
          id: selfId,
          name: realSelf.name,
          peerUrls: realSelf.peerURLs,
          clientUrls: realSelf.clientURLs,
          isLearner: false,
        }],
        { committed: 5, match: new Map([[selfId, 5]]) },
      );
      const ourClient = clientOf(ours, { now: Date.now });
      const app = new Hono();
      mountGateway(
        app,
        clusterGatewayRoutes(clusterService(ours, { strictReconfigCheck: true })),
        1 << 20,
      );

      /** IDs differ between the two; everything else must not. */
      const shape = (members: Member[]) =>
        members.map((m) => ({ ...plain(m), ID: 0n })).sort((a, b) =>
          a.peerURLs[0] < b.peerURLs[0] ? -1 : 1
        );
      type Outcome = { error: Expected } | { members: ReturnType<typeof shape> };
      const outcome = async (
        call: (c: Client<typeof Cluster>) => Promise<{ members: Member[] }>,
        client: Client<typeof Cluster>,
      ): Promise<Outcome> => {
        try {
          return { members: shape((await call(client)).members) };
        } catch (err) {
          if (!(err instanceof ConnectError)) throw err;
          return { error: { code: err.code, message: err.rawMessage } };
        }
      };
      const ids = { real: 0n, ours: 0n };
      const same = async (
        what: string,
        call: (c: Client<typeof Cluster>, id: bigint) => Promise<{ members: Member[] }>,
        idOf: (side: "real" | "ours") => bigint = () => 0n,
      ) => {
        const a = await outcome((c) => call(c, idOf("real")), etcdClient);
        const b = await outcome((c) => call(c, idOf("ours")), ourClient);
        deepStrictEqual(b, a, what);
        return a;
      };
      const gatewaySame = async (what: string, path: string, body: unknown) => {
        const a = await fetch(real.clientUrl + path, {
          method: "POST",
          body: JSON.stringify(body),
        });
        const b = await app.request(path, { method: "POST", body: JSON.stringify(body) });
        const normalize = async (res: Response) => {
          const json = await res.json();
          if (json.header) json.header = Object.keys(json.header).sort();
          for (const m of json.members ?? []) m.ID = "ID";
          json.members?.sort((x: { peerURLs: string[] }, y: { peerURLs: string[] }) =>
            x.peerURLs[0] < y.peerURLs[0] ? -1 : 1
          );
          if (json.member) json.member.ID = "ID";
          return { status: res.status, json };
        };
        deepStrictEqual(await normalize(b), await normalize(a), what);
      };
      const selfOf = (side: "real" | "ours") => side === "real" ? realSelf.ID : selfId;
      const learnerOf = (side: "real" | "ours") => ids[side];

      await gatewaySame("list one member", "/v3/cluster/member/list", {});
      await same("add: not a URL", (c) => c.memberAdd({ peerURLs: ["not a url"] }));
      await same("add: no URL", (c) => c.memberAdd({ peerURLs: [] }));
      await same("add: with a path", (c) => c.memberAdd({ peerURLs: ["http://h:1/p"] }));
      await same("add: a taken URL", (c) => c.memberAdd({ peerURLs: realSelf.peerURLs }));
      await same("remove: unknown", (c) => c.memberRemove({ ID: 0x12345n }));
      await same("promote: a voter", (c, id) => c.memberPromote({ ID: id }), selfOf);
      await same("promote: unknown", (c) => c.memberPromote({ ID: 0x12345n }));
      await same(
        "update: unknown",
        (c) => c.memberUpdate({ ID: 0x12345n, peerURLs: ["http://a:1"] }),
      );

      const learnerUrl = "http://127.0.0.1:1";
      for (const side of ["real", "ours"] as const) {
        const client = side === "real" ? etcdClient : ourClient;
        const added = await client.memberAdd({ peerURLs: [learnerUrl], isLearner: true });
        strictEqual(added.member!.isLearner, true);
        ids[side] = added.member!.ID;
      }
      await gatewaySame("list with an unstarted learner", "/v3/cluster/member/list", {});
      await same(
        "add: a second learner",
        (c) => c.memberAdd({ peerURLs: ["http://127.0.0.1:2"], isLearner: true }),
      );
      await same("promote: learner behind", (c, id) => c.memberPromote({ ID: id }), learnerOf);
      await same(
        "update: the learner onto the leader's URL",
        (c, id) => c.memberUpdate({ ID: id, peerURLs: realSelf.peerURLs }),
        learnerOf,
      );
      await same("remove: the learner", (c, id) => c.memberRemove({ ID: id }), learnerOf);
      await same("remove: the learner again", (c, id) => c.memberRemove({ ID: id }), learnerOf);
      await same("promote: a removed member", (c, id) => c.memberPromote({ ID: id }), learnerOf);
      await same(
        "add: a voter that never starts",
        (c) => c.memberAdd({ peerURLs: ["http://127.0.0.1:5"] }),
      );
      // Two voters, one started: from here etcd has no quorum, and these are refused at once.
      await gatewaySame("add: a third voter", "/v3/cluster/member/add", {
        peerURLs: ["http://127.0.0.1:3"],
      });
      await same(
        "add: a learner while a voter is unreachable",
        (c) => c.memberAdd({ peerURLs: ["http://127.0.0.1:4"], isLearner: true }),
      );
    } catch (err) {
      fail(`${err instanceof Error ? err.stack : err}\n--- etcd output:\n${real.stderrText()}`);
    } finally {
      await real.stop();
    }
  },
});
