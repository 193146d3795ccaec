/**
 * The Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberList and MemberPromote,
 * with etcd 3.4's validation, its `--strict-reconfig-check` safety checks and its exact error
 * answers, over a narrow {@linkcode ClusterBackend} (the member's raft and membership table).
 *
 * Checks run in etcd's order: URL syntax, then the strict checks on the proposer's view, then
 * {@linkcode validateConfChange} (which etcd runs when the change is applied; we also run it
 * before proposing, so a change that cannot apply costs no log entry, and the backend runs it
 * again at apply time against the applied membership).
 *
 * Where etcd 3.4 is weaker we do better (the README lists these):
 * - MemberUpdate validates and normalizes peer URLs as MemberAdd does; 3.4 stores any strings,
 *   even none, and the member's peers then cannot reach it.
 * - MemberUpdate keeps a learner a learner; 3.4 drops the flag from the member table while raft
 *   still counts the member as a learner.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  Cluster,
  type Member,
  MemberSchema,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Errors } from "./errors.ts";
import { type GatewayRoute, route } from "./gateway.ts";
import type { MemberInfo } from "./membership.ts";

/** The kinds of membership change a Cluster RPC proposes. */
export type ConfChangeKind = "add" | "addLearner" | "remove" | "update" | "promote";

/**
 * One membership change. `member` is the member as the change leaves it: for an add, the new
 * member (no name or client URLs yet); for an update, the member with its new peer URLs; for a
 * promote, the member as a voter; for a remove, the member as it was (or only its ID when
 * this member does not know it).
 */
export interface MemberConfChange {
  type: ConfChangeKind;
  member: MemberInfo;
}

/** The replication state the leader keeps for each member (etcd's raft Status). */
export interface LeaderProgress {
  /** The leader's commit index. */
  committed: number;
  /** Highest log index known to be replicated on each member, the leader included. */
  match: Map<bigint, number>;
  /**
   * Members the leader heard from recently: stands in for etcd's transport "active since"
   * (a peer connected for at least 5 s) in the strict reconfiguration checks.
   */
  recentActive: Set<bigint>;
}

/** What the Cluster service needs from the member it runs on. */
export interface ClusterBackend {
  /** This member's ID. */
  readonly memberId: bigint;
  /** The cluster's ID. */
  readonly clusterId: bigint;
  /** A response header as the member fills it in (its revision is dropped here). */
  header(): ResponseHeader;
  /**
   * The current membership as this member has applied it. A member that has not started
   * (published its name) has `name: ""` and no client URLs.
   */
  members(): MemberInfo[];
  /** Whether `id` was a member and was removed (IDs are never reused). */
  isRemoved(id: bigint): boolean;
  /**
   * Proposes a raft conf change and resolves, once applied, with the membership after it.
   * On a follower, a `promote` is forwarded to the leader, which runs
   * {@linkcode promoteMemberOnLeader}; its errors come back unchanged.
   */
  proposeConfChange(change: MemberConfChange): Promise<MemberInfo[]>;
  /** The leader's view of every member's progress; null when this member does not lead. */
  progress(): LeaderProgress | null;
  /** A new member's ID from its (sorted) peer URLs and the time in ms, as etcd derives it. */
  newMemberId(peerUrls: string[], now: number): bigint;
  /** Waits until this member has applied everything committed before the call. */
  linearizableRead(): Promise<void>;
}

/** Settings of the Cluster service. */
export interface ClusterServiceOptions {
  /**
   * `--strict-reconfig-check` (etcd's default: true): refuse membership changes that would
   * leave fewer started, connected voters than a quorum.
   */
  strictReconfigCheck: boolean;
  /** The clock for new member IDs (ms since the epoch); `Date.now` by default. */
  now?: () => number;
}

/** At most this many learners at once (etcd 3.4's `maxLearners`). */
export const maxLearners = 1;

/**
 * A learner may be promoted once its log reaches this fraction of the leader's (etcd's
 * `readyPercent`): promoting a far-behind learner would add a voter that cannot help commit,
 * shrinking the cluster's fault tolerance until it catches up (Raft thesis §4.2.1).
 */
const learnerReadyFraction = 0.9;

// ---------------------------------------------------------------------------------------------
// Peer URLs, parsed the way etcd parses them (Go's net/url, then types.NewURLs).
// ---------------------------------------------------------------------------------------------

type EscapeMode = "host" | "userinfo" | "fragment";

const alphanumeric = /^[A-Za-z0-9]$/;

/** Go's url.shouldEscape for the modes peer URLs use. */
function shouldEscape(c: string, mode: EscapeMode): boolean {
  if (alphanumeric.test(c)) return false;
  if (mode === "host" && `!$&'()*+,;=:[]<>"`.includes(c)) return false;
  if ("-_.~".includes(c)) return false;
  if ("$&+,/:;=?@".includes(c)) return mode === "userinfo" && "@/?:".includes(c);
  if (mode === "fragment" && "!()*".includes(c)) return false;
  return true;
}

const hexDigit = /^[0-9A-Fa-f]$/;

/** Go's url.unescape: decodes %XX; null where Go fails. */
function unescapeUrlPart(s: string, mode: EscapeMode): string | null {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "%") {
      const hex = s.slice(i + 1, i + 3);
      if (hex.length !== 2 || !hexDigit.test(hex[0]) || !hexDigit.test(hex[1])) return null;
      // Go allows only %25 and non-ASCII escapes in a host name.
      if (mode === "host" && parseInt(hex[0], 16) < 8 && hex !== "25") return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
      continue;
    }
    if (mode === "host" && c.charCodeAt(0) < 0x80 && shouldEscape(c, "host")) return null;
    bytes.push(...encoder.encode(c));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Go's url.escape. */
function escapeUrlPart(s: string, mode: EscapeMode): string {
  let out = "";
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && !shouldEscape(c, mode)
      ? c
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Go's validEncoded for fragments: only characters a fragment may carry unescaped. */
function isValidEncodedFragment(s: string): boolean {
  for (const c of s) {
    if (`!$&'()*+,;=:@[]%`.includes(c)) continue;
    if (c.charCodeAt(0) >= 0x80 || shouldEscape(c, "fragment")) return false;
  }
  return true;
}

const userinfoChars = /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/;
const optionalPort = /^(:[0-9]*)?$/;

/** Go's parseHost: the authority's host part, unescaped; null where Go fails. */
function parseHost(host: string): string | null {
  if (host.startsWith("[")) {
    const close = host.lastIndexOf("]");
    if (close < 0 || !optionalPort.test(host.slice(close + 1))) return null;
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0 && !optionalPort.test(host.slice(colon))) return null;
  }
  return unescapeUrlPart(host, "host");
}

/** Go's net.SplitHostPort, reduced to whether it accepts `hostport`. */
function splitsHostPort(hostport: string): boolean {
  const colon = hostport.lastIndexOf(":");
  if (colon < 0) return false;
  let afterOpen = 0;
  let afterClose = 0;
  if (hostport.startsWith("[")) {
    const close = hostport.indexOf("]");
    if (close < 0 || close + 1 !== colon) return false;
    afterOpen = 1;
    afterClose = close + 1;
  } else if (hostport.slice(0, colon).includes(":")) {
    return false;
  }
  return !hostport.slice(afterOpen).includes("[") && !hostport.slice(afterClose).includes("]");
}

const schemePattern = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const peerUrlSchemes = new Set(["http", "https", "unix", "unixs"]);

/**
 * One peer URL as etcd accepts it (`types.NewURLs`): trimmed, parsed as Go's url.Parse parses
 * it, scheme http, https, unix or unixs, a `host:port` address, no path. Returns the URL as
 * Go prints it back (lower-case scheme, escapes normalized), or null when etcd rejects it.
 */
export function normalizePeerUrl(raw: string): string | null {
  const text = raw.trim();
  // Go refuses ASCII control characters anywhere in a URL.
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return null;
  }
  const hash = text.indexOf("#");
  const beforeFragment = hash < 0 ? text : text.slice(0, hash);
  const rawFragment = hash < 0 ? "" : text.slice(hash + 1);
  const fragment = unescapeUrlPart(rawFragment, "fragment");
  if (fragment === null) return null;

  const scheme = schemePattern.exec(beforeFragment);
  if (!scheme || !peerUrlSchemes.has(scheme[1].toLowerCase())) return null;
  let rest = beforeFragment.slice(scheme[0].length);
  const question = rest.indexOf("?");
  const query = question < 0 ? null : rest.slice(question + 1);
  if (question >= 0) rest = rest.slice(0, question);
  // Without "//" there is no host (an opaque URL or a bare path), so no host:port.
  if (!rest.startsWith("//")) return null;
  const slash = rest.indexOf("/", 2);
  const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
  if (slash >= 0) return null; // A path, even "/": etcd wants none.

  const at = authority.lastIndexOf("@");
  let userinfo: string | null = null;
  if (at >= 0) {
    const rawUserinfo = authority.slice(0, at);
    if (!userinfoChars.test(rawUserinfo)) return null;
    const colon = rawUserinfo.indexOf(":");
    const parts = colon < 0
      ? [rawUserinfo]
      : [rawUserinfo.slice(0, colon), rawUserinfo.slice(colon + 1)];
    const decoded = parts.map((p) => unescapeUrlPart(p, "userinfo"));
    if (decoded.some((p) => p === null)) return null;
    userinfo = decoded.map((p) => escapeUrlPart(p!, "userinfo")).join(":");
  }
  const host = parseHost(authority.slice(at + 1));
  if (host === null || !splitsHostPort(host)) return null;

  let out = `${scheme[1].toLowerCase()}://`;
  if (userinfo !== null) out += `${userinfo}@`;
  out += escapeUrlPart(host, "host");
  if (query !== null) out += `?${query}`;
  if (fragment !== "") {
    out += "#" +
      (isValidEncodedFragment(rawFragment) ? rawFragment : escapeUrlPart(fragment, "fragment"));
  }
  return out;
}

/**
 * A member's peer URLs as etcd stores them: each normalized by {@linkcode normalizePeerUrl},
 * sorted. Throws `given member URLs are invalid` for an empty list or any bad URL.
 */
export function parsePeerUrls(raw: readonly string[]): string[] {
  if (raw.length === 0) throw Errors.memberBadURLs;
  const urls: string[] = [];
  for (const u of raw) {
    const normalized = normalizePeerUrl(u);
    if (normalized === null) throw Errors.memberBadURLs;
    urls.push(normalized);
  }
  return urls.sort();
}

// ---------------------------------------------------------------------------------------------
// Validation (etcd's RaftCluster.ValidateConfigurationChange) and the strict checks.
// ---------------------------------------------------------------------------------------------

/**
 * Whether `change` can apply to `members` (etcd's ValidateConfigurationChange); throws the
 * Cluster RPC error if not. The backend calls this again when the change is applied: a change
 * valid when proposed may meet a membership that moved on (two adds racing for one URL).
 */
export function validateConfChange(
  members: readonly MemberInfo[],
  isRemoved: (id: bigint) => boolean,
  change: MemberConfChange,
): void {
  const id = change.member.id;
  // Raft thesis §4.1: a removed server never comes back under its old ID.
  if (isRemoved(id)) throw Errors.memberNotFound;
  const existing = members.find((m) => m.id === id);
  switch (change.type) {
    case "add":
    case "addLearner": {
      if (existing) throw Errors.memberExist;
      const taken = new Set(members.flatMap((m) => m.peerUrls));
      if (change.member.peerUrls.some((u) => taken.has(u))) throw Errors.peerURLExist;
      if (change.type === "addLearner") {
        if (members.filter((m) => m.isLearner).length + 1 > maxLearners) {
          throw Errors.tooManyLearners;
        }
      }
      return;
    }
    case "promote":
      if (!existing) throw Errors.memberNotFound;
      if (!existing.isLearner) throw Errors.memberNotLearner;
      return;
    case "remove":
      if (!existing) throw Errors.memberNotFound;
      return;
    case "update": {
      if (!existing) throw Errors.memberNotFound;
      const taken = new Set(members.filter((m) => m.id !== id).flatMap((m) => m.peerUrls));
      if (change.member.peerUrls.some((u) => taken.has(u))) throw Errors.peerURLExist;
      return;
    }
  }
}

/** A member has started once it published its name through the log. */
function isStarted(member: MemberInfo): boolean {
  return member.name !== "";
}

function voters(members: readonly MemberInfo[]): MemberInfo[] {
  return members.filter((m) => !m.isLearner);
}

function quorumOf(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * etcd's IsReadyToAddVotingMember: after the add, the started voters must still be a quorum
 * (Raft §6: a configuration without a live majority cannot commit anything, including the
 * change that would repair it). Adding a second member to a one-member cluster is allowed, as
 * in etcd, because that is how a cluster grows from a restored backup.
 */
function readyToAddVoter(members: readonly MemberInfo[]): boolean {
  const current = voters(members);
  const after = current.length + 1;
  const started = current.filter(isStarted).length;
  if (started === 1 && after === 2) return true;
  return started >= quorumOf(after);
}

/** etcd's IsReadyToRemoveVotingMember: the started voters left must be a quorum of those left. */
function readyToRemoveVoter(members: readonly MemberInfo[], id: bigint): boolean {
  const left = voters(members).filter((m) => m.id !== id);
  return left.filter(isStarted).length >= quorumOf(left.length);
}

/** etcd's IsReadyToPromoteMember: counts the learner as a started voter. */
function readyToPromote(members: readonly MemberInfo[]): boolean {
  const current = voters(members);
  return current.filter(isStarted).length + 1 >= quorumOf(current.length + 1);
}

function isConnected(backend: ClusterBackend, progress: LeaderProgress, id: bigint): boolean {
  return id === backend.memberId || progress.recentActive.has(id);
}

/**
 * etcd's mayAddMember. The connectivity half needs the leader's view of its peers: on a
 * follower (no progress) only the started-members half runs.
 */
function checkMayAdd(backend: ClusterBackend, members: MemberInfo[], isLearner: boolean): void {
  if (!isLearner && !readyToAddVoter(members)) throw Errors.memberNotEnoughStarted;
  const progress = backend.progress();
  if (progress && !voters(members).every((m) => isConnected(backend, progress, m.id))) {
    throw Errors.unhealthy;
  }
}

/** etcd's mayRemoveMember (connectivity checked on the leader only, as in checkMayAdd). */
function checkMayRemove(backend: ClusterBackend, members: MemberInfo[], id: bigint): void {
  // A learner holds no vote: removing it cannot cost a quorum.
  if (members.some((m) => m.id === id && m.isLearner)) return;
  if (!readyToRemoveVoter(members, id)) throw Errors.memberNotEnoughStarted;
  const progress = backend.progress();
  if (!progress) return;
  // A member that is down is not part of the active quorum, so removing it is safe.
  if (id !== backend.memberId && !progress.recentActive.has(id)) return;
  const current = voters(members);
  const active = current.filter((m) => isConnected(backend, progress, m.id)).length;
  if (active - 1 < 1 + Math.floor((current.length - 1) / 2)) throw Errors.unhealthy;
}

/**
 * etcd's isLearnerReady: a member the leader tracks must have replicated at least 90% of the
 * leader's log. Like etcd, this runs before the learner check, so it also refuses a voter
 * that is behind; an unknown member passes here and fails validation.
 */
function checkLearnerReady(backend: ClusterBackend, progress: LeaderProgress, id: bigint): void {
  const learnerMatch = progress.match.get(id);
  if (learnerMatch === undefined) return;
  const leaderMatch = progress.match.get(backend.memberId) ?? progress.committed;
  if (learnerMatch < leaderMatch * learnerReadyFraction) throw Errors.learnerNotReady;
}

function byId(a: MemberInfo, b: MemberInfo): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** An unknown member: the change names only its ID (validation then refuses it). */
function onlyId(id: bigint): MemberInfo {
  return { id, name: "", peerUrls: [], clientUrls: [], isLearner: false };
}

/**
 * The leader's side of MemberPromote (etcd's promoteMember): throws `not leader` on a
 * follower, so that the peer endpoint serving a forwarded promote answers with it; otherwise
 * checks that the learner is in sync and, when strict, that promoting keeps a quorum, then
 * proposes. Resolves with the membership after the promotion.
 */
export async function promoteMemberOnLeader(
  backend: ClusterBackend,
  id: bigint,
  options: ClusterServiceOptions,
): Promise<MemberInfo[]> {
  const progress = backend.progress();
  if (!progress) throw Errors.notLeader;
  checkLearnerReady(backend, progress, id);
  const members = backend.members();
  if (options.strictReconfigCheck && !readyToPromote(members)) {
    throw Errors.memberNotEnoughStarted;
  }
  return await backend.proposeConfChange(promoteChange(members, (x) => backend.isRemoved(x), id));
}

/**
 * The promote of `id`, validated against `members`. A follower sends it on to the leader,
 * which alone knows whether the learner is in sync (etcd forwards promotes over the peer
 * URL): checking here too answers a bad ID at once, from this member's applied view.
 */
function promoteChange(
  members: readonly MemberInfo[],
  isRemoved: (id: bigint) => boolean,
  id: bigint,
): MemberConfChange {
  const learner = members.find((m) => m.id === id) ?? onlyId(id);
  const change: MemberConfChange = { type: "promote", member: { ...learner, isLearner: false } };
  validateConfChange(members, isRemoved, change);
  return change;
}

// ---------------------------------------------------------------------------------------------
// The service.
// ---------------------------------------------------------------------------------------------

function toProto(member: MemberInfo): Member {
  return create(MemberSchema, {
    ID: member.id,
    name: member.name,
    peerURLs: member.peerUrls,
    clientURLs: member.clientUrls,
    isLearner: member.isLearner,
  });
}

/** Members as etcd lists them: sorted by ID. */
function toProtoMembers(members: readonly MemberInfo[]): Member[] {
  return [...members].sort(byId).map(toProto);
}

/** etcd's Cluster responses carry cluster, member and term, but no revision. */
function membershipHeader(backend: ClusterBackend): ResponseHeader {
  const header = backend.header();
  return create(ResponseHeaderSchema, {
    clusterId: header.clusterId,
    memberId: header.memberId,
    raftTerm: header.raftTerm,
  });
}

/** The Cluster service over `backend`. */
export function clusterService(
  backend: ClusterBackend,
  options: ClusterServiceOptions,
): ServiceImpl<typeof Cluster> {
  const now = options.now ?? Date.now;
  const isRemoved = (id: bigint) => backend.isRemoved(id);
  return {
    async memberAdd(req) {
      const peerUrls = parsePeerUrls(req.peerURLs);
      const member: MemberInfo = {
        id: backend.newMemberId(peerUrls, now()),
        name: "",
        peerUrls,
        clientUrls: [],
        isLearner: req.isLearner,
      };
      const before = backend.members();
      if (options.strictReconfigCheck) checkMayAdd(backend, before, member.isLearner);
      const change: MemberConfChange = { type: req.isLearner ? "addLearner" : "add", member };
      validateConfChange(before, isRemoved, change);
      const after = await backend.proposeConfChange(change);
      return {
        header: membershipHeader(backend),
        // The new member as requested: it has no name or client URLs until it starts.
        member: create(MemberSchema, {
          ID: member.id,
          peerURLs: peerUrls,
          isLearner: req.isLearner,
        }),
        members: toProtoMembers(after),
      };
    },

    async memberRemove(req) {
      const before = backend.members();
      if (options.strictReconfigCheck) checkMayRemove(backend, before, req.ID);
      const member = before.find((m) => m.id === req.ID) ?? onlyId(req.ID);
      const change: MemberConfChange = { type: "remove", member };
      validateConfChange(before, isRemoved, change);
      const after = await backend.proposeConfChange(change);
      return { header: membershipHeader(backend), members: toProtoMembers(after) };
    },

    async memberUpdate(req) {
      const peerUrls = parsePeerUrls(req.peerURLs);
      const before = backend.members();
      const existing = before.find((m) => m.id === req.ID) ?? onlyId(req.ID);
      const change: MemberConfChange = { type: "update", member: { ...existing, peerUrls } };
      validateConfChange(before, isRemoved, change);
      const after = await backend.proposeConfChange(change);
      return { header: membershipHeader(backend), members: toProtoMembers(after) };
    },

    memberList() {
      // etcd 3.4 answers from the member's own applied view (3.5 added `linearizable`).
      return { header: membershipHeader(backend), members: toProtoMembers(backend.members()) };
    },

    async memberPromote(req) {
      const after = backend.progress()
        ? await promoteMemberOnLeader(backend, req.ID, options)
        : await backend.proposeConfChange(promoteChange(backend.members(), isRemoved, req.ID));
      return { header: membershipHeader(backend), members: toProtoMembers(after) };
    },
  };
}

/** The JSON gateway's routes for the Cluster service (`/v3/cluster/member/...`). */
export function clusterGatewayRoutes(impl: ServiceImpl<typeof Cluster>): GatewayRoute[] {
  return [
    route("/v3/cluster/member/add", Cluster.method.memberAdd, impl.memberAdd),
    route("/v3/cluster/member/remove", Cluster.method.memberRemove, impl.memberRemove),
    route("/v3/cluster/member/update", Cluster.method.memberUpdate, impl.memberUpdate),
    route("/v3/cluster/member/list", Cluster.method.memberList, impl.memberList),
    route("/v3/cluster/member/promote", Cluster.method.memberPromote, impl.memberPromote),
  ];
}
