/**
 * The peer `/members` endpoint and its client: a member started with
 * `--initial-cluster-state existing` asks the running members who is in the cluster, finds
 * itself by its peer URLs (it was added by `member add`, which chose its ID), and learns the
 * cluster ID, as etcd's joining members do.
 *
 * @module
 */
import { readBounded } from "../internal/bounded_reader.ts";
import { formatId } from "./ids.ts";
import type { Config } from "./config.ts";
import type { MemberInfo } from "./membership.ts";

/** Bound on a `/members` answer: a cluster's member list is a few KiB. */
const maxMembersBodyBytes = 1024 * 1024;
/** How long one peer may take to answer. */
const membersRequestTimeoutMs = 5_000;

/** etcd's JSON for the member list on the peer port (`id` is a JSON number there). */
export function membersJson(members: MemberInfo[]): string {
  const parts = members.map((m) => {
    const rest = JSON.stringify({
      peerURLs: m.peerUrls,
      ...(m.isLearner ? { isLearner: true } : {}),
      ...(m.name ? { name: m.name } : {}),
      ...(m.clientUrls.length > 0 ? { clientURLs: m.clientUrls } : {}),
    });
    // A uint64 ID does not fit a JS number: write its digits into the JSON by hand.
    return `{"id":${m.id.toString()},${rest.slice(1)}`;
  });
  return `[${parts.join(",")}]\n`;
}

/** Parses etcd's `/members` JSON, keeping 64-bit IDs exact. */
export function parseMembersJson(text: string): MemberInfo[] {
  const quoted = text.replace(/"id"\s*:\s*(\d+)/g, '"id":"$1"');
  const list = JSON.parse(quoted) as unknown;
  if (!Array.isArray(list)) throw new Error("members: not a list");
  return list.map((raw) => {
    const m = raw as Record<string, unknown>;
    if (typeof m.id !== "string" || !/^\d+$/.test(m.id)) throw new Error("members: bad id");
    const urls = (v: unknown) =>
      Array.isArray(v) && v.every((u) => typeof u === "string") ? v as string[] : [];
    return {
      id: BigInt(m.id),
      name: typeof m.name === "string" ? m.name : "",
      peerUrls: urls(m.peerURLs),
      clientUrls: urls(m.clientURLs),
      isLearner: m.isLearner === true,
    };
  });
}

/** What a joining member learns from the cluster. */
export interface JoinedCluster {
  clusterId: bigint;
  memberId: bigint;
  members: MemberInfo[];
}

/**
 * Asks the other members named in `--initial-cluster` for the member list; the first good
 * answer wins. Fails like etcd when none answers or this member was not added.
 */
export async function fetchClusterMembers(
  config: Config,
  selfPeerUrls: string[],
): Promise<JoinedCluster> {
  const self = new Set(selfPeerUrls);
  const urls = config.initialCluster
    .filter((m) => m.name !== config.name)
    .flatMap((m) => m.peerUrls);
  const errors: string[] = [];
  for (const url of urls) {
    try {
      const res = await fetch(new URL("/members", url), {
        signal: AbortSignal.timeout(membersRequestTimeoutMs),
      });
      const body = new TextDecoder().decode(await readBounded(res.body, maxMembersBodyBytes));
      if (!res.ok) throw new Error(`status ${res.status}`);
      const clusterHeader = res.headers.get("X-Etcd-Cluster-ID") ?? "";
      if (!/^[0-9a-f]{1,16}$/.test(clusterHeader)) throw new Error("no cluster ID");
      const members = parseMembersJson(body);
      const me = members.find((m) => m.peerUrls.some((u) => self.has(u)));
      if (!me) {
        throw new Error(
          `member with peer URLs ${selfPeerUrls.join(",")} is not in the cluster (run ` +
            "`etcdctl member add` first)",
        );
      }
      return { clusterId: BigInt(`0x${clusterHeader}`), memberId: me.id, members };
    } catch (err) {
      errors.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(
    `could not retrieve cluster information from the given URLs (${errors.join("; ")})`,
  );
}

/** Answers `GET /members` on the peer port as etcd does. */
export function membersResponse(clusterId: bigint, members: MemberInfo[]): Response {
  return new Response(membersJson(members), {
    headers: { "Content-Type": "application/json", "X-Etcd-Cluster-ID": formatId(clusterId) },
  });
}
