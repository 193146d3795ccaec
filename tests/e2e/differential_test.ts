/**
 * Differential test: the same etcdctl script against a fresh etcd 3.4 and a fresh member of
 * ours; every step's exit code, stdout and stderr must match once run-specific values
 * (cluster/member IDs, raft term, lease IDs, ports, timestamps) are masked.
 *
 * Set `DIFF_AGAINST=etcd` to run etcd against etcd, which checks the script and the
 * normaliser themselves.
 *
 * @module
 */
import {
  type CommandResult,
  ETCD_BIN,
  ETCDCTL_BIN,
  type Impl,
  type Member,
  requireBinary,
  runEtcdctl,
  startMember,
} from "./harness.ts";
import { lineDiff, Normalizer } from "./normalize.ts";

/** One etcdctl invocation; `{name}` in args is replaced by a value captured earlier. */
interface Step {
  args: string[];
  stdin?: string;
  /** Captures group 1 of `pattern` from stdout (a hex ID) under `name`. */
  capture?: { name: string; pattern: RegExp };
}

const SORT_TARGETS = ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"];
const ORDERS = ["ASCEND", "DESCEND"];

/** The script. Revisions are deterministic: a fresh member starts at revision 1. */
const SCRIPT: Step[] = [
  // put
  { args: ["put", "foo", "bar"] },
  { args: ["put", "foo", "bar2", "--prev-kv"] },
  { args: ["put", "foo1", "v1"] },
  { args: ["put", "foo2", "v2", "-w", "json"] },
  { args: ["put", "zoo", "z"] },
  { args: ["put", "a", "9"] },
  { args: ["put", "foo1", "v1b", "--prev-kv", "-w", "json"] },
  { args: ["put", "foo2", "--ignore-value", "--prev-kv"] },
  { args: ["put", "nokey", "--ignore-value"] },
  { args: ["put", "nokey", "v", "--ignore-lease"] },
  { args: ["put", "foo", "v3", "--ignore-lease"] },
  { args: ["put", "k", "v", "--lease=1234"] },
  { args: ["put", "", "x"] },
  { args: ["put", "sp ace", "multi word value"] },
  // get
  { args: ["get", "foo"] },
  { args: ["get", "foo", "-w", "json"] },
  { args: ["get", "foo", "-w", "fields"] },
  { args: ["get", "foo", "--print-value-only"] },
  { args: ["get", "foo", "--keys-only"] },
  { args: ["get", "foo", "foo3"] },
  { args: ["get", "foo", "--prefix"] },
  { args: ["get", "foo", "--prefix", "--limit", "2"] },
  { args: ["get", "foo", "--prefix", "--limit", "2", "-w", "json"] },
  { args: ["get", "foo1", "--from-key"] },
  { args: ["get", "", "--from-key"] },
  { args: ["get", "", "--prefix", "--keys-only"] },
  { args: ["get", "foo", "--rev", "1"] },
  { args: ["get", "foo", "--rev", "2"] },
  { args: ["get", "foo", "--rev", "3", "-w", "json"] },
  { args: ["get", "foo", "--consistency=s"] },
  { args: ["get", "nothing"] },
  { args: ["get", "nothing", "-w", "json"] },
  { args: ["get", ""] },
  ...SORT_TARGETS.flatMap((target) =>
    ORDERS.map((order) => ({
      args: ["get", "", "--from-key", `--sort-by=${target}`, `--order=${order}`],
    }))
  ),
  { args: ["get", "", "--from-key", "--order=DESCEND", "--keys-only"] },
  { args: ["get", "", "--from-key", "--sort-by=VALUE", "-w", "json"] },
  { args: ["get", "foo", "--prefix", "--limit", "1", "--sort-by=MODIFY", "--order=DESCEND"] },
  // txn
  {
    args: ["txn", "-i"],
    stdin: 'value("foo") = "v3"\n\nput foo v4\nget foo1\n\nget foo\n\n',
  },
  { args: ["txn"], stdin: 'version("foo1") > "1"\n\nget foo1\n\nget a\n\n' },
  { args: ["txn"], stdin: 'create("foo2") < "6"\n\nput foo2 v2b\n\ndel foo2\n\n' },
  { args: ["txn", "-i"], stdin: 'mod("zoo") != "6"\n\nput zoo z2\n\nget zoo\n\n' },
  { args: ["txn", "-w", "json"], stdin: 'version("missing") = "0"\n\nput missing m\n\n\n' },
  { args: ["txn"], stdin: 'value("missing2") != "x"\n\n\nget a --prefix\n\n' },
  {
    args: ["txn", "-w", "json"],
    stdin: 'value("a") = "9"\nmod("foo") > "100"\n\nput a 10\n\nget a\nget foo --prefix\n\n',
  },
  { args: ["txn"], stdin: "\nput t1 x\nput t1 y\n\n\n" },
  { args: ["txn"], stdin: "\nput t1 x\ndel t1\n\n\n" },
  { args: ["txn"], stdin: "\nput t2 x\nput t3 y\ndel t4\n\n\n" },
  // del
  { args: ["del", "foo3"] },
  { args: ["del", "foo", "--prev-kv"] },
  { args: ["del", "foo1", "foo3"] },
  { args: ["del", "z", "--prefix", "--prev-kv", "-w", "json"] },
  { args: ["del", ""] },
  // lease (put with a lease, then revoke deletes the key)
  {
    args: ["lease", "grant", "600"],
    capture: { name: "lease1", pattern: /lease ([0-9a-f]+) granted/ },
  },
  { args: ["put", "lk", "lv", "--lease={lease1}"] },
  { args: ["get", "lk", "-w", "json"] },
  { args: ["put", "lk", "lv2", "--ignore-lease"] },
  { args: ["lease", "revoke", "{lease1}"] },
  { args: ["get", "lk"] },
  // compaction
  { args: ["get", "", "--from-key", "-w", "json"] },
  { args: ["compaction", "5"] },
  { args: ["get", "foo", "--rev", "4"] },
  { args: ["get", "foo", "--rev", "5", "-w", "json"] },
  { args: ["get", "foo", "--rev", "1000"] },
  { args: ["compaction", "5"] },
  { args: ["compaction", "3"] },
  { args: ["compaction", "1000"] },
  { args: ["compaction", "1000", "--physical"] },
  { args: ["compaction", "12", "--physical"] },
  { args: ["get", "a", "--rev", "12"] },
  { args: ["get", "a", "--rev", "11"] },
  { args: ["get", "", "--from-key", "-w", "json"] },
  { args: ["del", "", "--from-key"] },
  { args: ["get", "", "--from-key"] },
  { args: ["put", "foo", "again", "-w", "json"] },
  { args: ["get", "foo", "-w", "json"] },
];

/** Runs the script against a fresh member of `impl`; returns normalised results. */
async function runScript(impl: Impl): Promise<CommandResult[]> {
  let member: Member | undefined;
  try {
    member = await startMember({ impl });
    const norm = new Normalizer([member.clientUrl]);
    const captured = new Map<string, string>();
    const results: CommandResult[] = [];
    for (const step of SCRIPT) {
      const args = step.args.map((a) =>
        a.replace(/\{(\w+)\}/g, (_, name: string) => captured.get(name) ?? `{${name}}`)
      );
      const r = await runEtcdctl({ endpoint: member.clientUrl, args, stdin: step.stdin });
      if (step.capture) {
        const m = step.capture.pattern.exec(r.stdout);
        if (m) {
          captured.set(step.capture.name, m[1]);
          norm.alias(BigInt(`0x${m[1]}`), step.capture.name);
        }
      }
      results.push({ code: r.code, stdout: norm.text(r.stdout), stderr: norm.text(r.stderr) });
    }
    return results;
  } finally {
    await member?.stop();
  }
}

function describe(step: Step): string {
  const stdin = step.stdin === undefined ? "" : ` <<< ${JSON.stringify(step.stdin)}`;
  return `etcdctl ${
    step.args.map((a) => (a === "" || /\s/.test(a) ? JSON.stringify(a) : a)).join(" ")
  }${stdin}`;
}

const available = requireBinary(ETCD_BIN, ETCDCTL_BIN);
const candidate: Impl = Deno.env.get("DIFF_AGAINST") === "etcd" ? "etcd" : "ours";

Deno.test({
  name: `differential: etcdctl KV script, etcd 3.4 vs ${candidate}`,
  ignore: !available,
  async fn(t) {
    const expected = await runScript("etcd");
    const actual = await runScript(candidate);
    for (const [i, step] of SCRIPT.entries()) {
      const name = `${String(i + 1).padStart(2, "0")}: ${describe(step)}`;
      await t.step(name, () => {
        const e = expected[i];
        const a = actual[i];
        const problems: string[] = [];
        if (e.code !== a.code) problems.push(`exit code: etcd ${e.code}, ${candidate} ${a.code}`);
        if (e.stdout !== a.stdout) {
          problems.push(`stdout (- etcd, + ${candidate}):\n${lineDiff(e.stdout, a.stdout)}`);
        }
        if (e.stderr !== a.stderr) {
          problems.push(`stderr (- etcd, + ${candidate}):\n${lineDiff(e.stderr, a.stderr)}`);
        }
        if (problems.length > 0) throw new Error(`step ${name} differs\n${problems.join("\n")}`);
      });
    }
  },
});
