/**
 * Normalisation for differential tests: masks what legitimately differs between two
 * independent members (cluster and member IDs, raft term, lease IDs, ports, timestamps,
 * client UUIDs in etcdctl's retry warnings) so that the rest can be compared byte for byte.
 *
 * @module
 */

/** Masks run-specific values in etcdctl output and JSON bodies. */
export class Normalizer {
  readonly #aliases = new Map<string, string>();
  readonly #endpoints: string[];

  /** `endpoints` are `host:port` strings (or URLs) to mask as `<endpoint>`. */
  constructor(endpoints: string[] = []) {
    this.#endpoints = endpoints.map((e) => e.replace(/^https?:\/\//, ""));
  }

  /**
   * Masks every later occurrence of an ID as `<placeholder>`: in decimal, in hex, and in hex
   * padded to 16 digits (etcdctl prints all three forms).
   */
  alias(id: bigint, placeholder: string): void {
    const hex = id.toString(16);
    for (const form of [id.toString(), hex, hex.padStart(16, "0")]) {
      this.#aliases.set(form, `<${placeholder}>`);
    }
  }

  /** Learns the cluster and member IDs from a JSON or fields header in `text`. */
  learnIds(text: string): void {
    const patterns: [RegExp, string][] = [
      [/"cluster_id":"?(\d+)/g, "cluster_id"],
      [/"member_id":"?(\d+)/g, "member_id"],
      [/"ClusterID" : (\d+)/g, "cluster_id"],
      [/"MemberID" : (\d+)/g, "member_id"],
    ];
    for (const [re, name] of patterns) {
      for (const m of text.matchAll(re)) this.alias(BigInt(m[1]), name);
    }
  }

  /** Applies every mask to `text`. */
  text(text: string): string {
    this.learnIds(text);
    let out = text
      .replace(/"(cluster_id|member_id|raft_term)":"?\d+"?/g, `"$1":"<$1>"`)
      .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+/g, `"$1" : <$1>`)
      .replace(/"ts":"[^"]*"/g, `"ts":"<ts>"`)
      .replace(
        /client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
        "client-<uuid>",
      );
    for (const endpoint of this.#endpoints) out = out.replaceAll(endpoint, "<endpoint>");
    // Longest first, so that a decimal ID is not half-replaced by a shorter hex one.
    const keys = [...this.#aliases.keys()].sort((a, b) => b.length - a.length);
    for (const key of keys) {
      out = out.replace(new RegExp(`\\b${key}\\b`, "g"), this.#aliases.get(key)!);
    }
    return out;
  }

  /** Masks a parsed gateway JSON value: header IDs and term, and aliased IDs anywhere. */
  json(value: unknown): unknown {
    return JSON.parse(this.text(JSON.stringify(value)));
  }
}

/** Removes ANSI colour escapes. */
export function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** A unified-style line diff of two texts, for readable failure messages. */
export function lineDiff(expected: string, actual: string): string {
  const a = expected.split("\n");
  const b = actual.split("\n");
  const out: string[] = [];
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] === b[i]) {
      out.push(`  ${a[i]}`);
      continue;
    }
    if (a[i] !== undefined) out.push(`- ${a[i]}`);
    if (b[i] !== undefined) out.push(`+ ${b[i]}`);
  }
  return out.join("\n");
}
