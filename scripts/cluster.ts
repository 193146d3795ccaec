/**
 * `deno task cluster`: a local 3-member cluster on loopback, laid out like etcd's Procfile
 * (members infra1..infra3, client ports 2379/22379/32379, peer ports 12380/22380/32380, data
 * dirs ./infra1.etcd ...). Each member's output is prefixed with its name; Ctrl-C stops all.
 *
 *     deno task cluster                 # our server
 *     deno task cluster --impl etcd     # etcd 3.4 (/usr/bin/etcd), same flags
 *     deno task cluster --fresh         # remove the data dirs first
 *
 * A second run reuses the data dirs: a member with a WAL ignores the `--initial-cluster*`
 * flags and rejoins the cluster it belongs to.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { serverRunArgs } from "../internal/server_command.ts";
import { type LoopbackMember, loopbackMemberFlags } from "../bench/server_process.ts";

/** Which server the members run. */
export type ClusterImpl = "ours" | "etcd";

/** One member of the local cluster: its name, ports and data dir. */
/** A member of the local cluster. */
export type LocalMember = LoopbackMember;

/** The members of the Procfile layout, with data dirs under `dataRoot`. */
export function procfileMembers(dataRoot: string): LocalMember[] {
  return [
    { name: "infra1", clientPort: 2379, peerPort: 12380 },
    { name: "infra2", clientPort: 22379, peerPort: 22380 },
    { name: "infra3", clientPort: 32379, peerPort: 32380 },
  ].map((m) => ({ ...m, dataDir: `${dataRoot}/${m.name}.etcd` }));
}

/** The `--initial-cluster-token` of the local cluster (etcd's Procfile uses the same one). */
export const localClusterToken = "etcd-cluster-1";

/** The etcd flags that start `member` as part of `members` (the same for both servers). */
export function memberFlags(member: LocalMember, members: readonly LocalMember[]): string[] {
  return [
    ...loopbackMemberFlags(member),
    "--initial-cluster-token",
    localClusterToken,
    "--initial-cluster",
    members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(","),
    "--initial-cluster-state",
    "new",
  ];
}

/** The command line that runs `member` with `impl`. */
export function memberCommandLine(
  impl: ClusterImpl,
  member: LocalMember,
  members: readonly LocalMember[],
  paths: { etcdBinary: string; oursEntry: string },
): { cmd: string; args: string[] } {
  const flags = memberFlags(member, members);
  return impl === "etcd"
    ? { cmd: paths.etcdBinary, args: flags }
    : { cmd: Deno.execPath(), args: serverRunArgs(paths.oursEntry, flags) };
}

/** How long members get to exit after SIGTERM before they are killed. */
const stopGraceMs = 10_000;
/** A line longer than this is written out in pieces (bounds the per-member line buffer). */
const maxLineChars = 64 * 1024;

const colors = ["\x1b[36m", "\x1b[33m", "\x1b[35m"];
const reset = "\x1b[0m";

/** Copies `stream` to `out` line by line, each line prefixed with `prefix`. */
async function prefixLines(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
  out: { writeSync(p: Uint8Array): number },
): Promise<void> {
  const encoder = new TextEncoder();
  const write = (line: string) => {
    const bytes = encoder.encode(`${prefix}${line}\n`);
    for (let off = 0; off < bytes.length;) off += out.writeSync(bytes.subarray(off));
  };
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) write(line);
    while (pending.length > maxLineChars) {
      write(pending.slice(0, maxLineChars));
      pending = pending.slice(maxLineChars);
    }
  }
  if (pending !== "") write(pending);
}

/** Runs the local cluster until Ctrl-C (or until every member exited); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      impl: { type: "string", default: "ours" },
      fresh: { type: "boolean", default: false },
      "data-root": { type: "string", default: "." },
      etcd: { type: "string", default: "/usr/bin/etcd" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task cluster [--impl ours|etcd] [--fresh] [--data-root DIR] [--etcd PATH]",
    );
    return 0;
  }
  if (values.impl !== "ours" && values.impl !== "etcd") {
    console.error(`--impl must be ours or etcd, not ${values.impl}`);
    return 2;
  }
  const impl: ClusterImpl = values.impl;
  const members = procfileMembers(values["data-root"]);
  if (values.fresh) {
    for (const m of members) await Deno.remove(m.dataDir, { recursive: true }).catch(() => {});
  }
  const paths = {
    etcdBinary: values.etcd,
    oursEntry: new URL("../mod.ts", import.meta.url).pathname,
  };
  const tty = Deno.stdout.isTerminal();
  const width = Math.max(...members.map((m) => m.name.length));
  const children = members.map((member, i) => {
    const { cmd, args } = memberCommandLine(impl, member, members, paths);
    const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
    const label = member.name.padEnd(width);
    const prefix = tty ? `${colors[i % colors.length]}${label} |${reset} ` : `${label} | `;
    const output = Promise.all([
      prefixLines(child.stdout, prefix, Deno.stdout),
      prefixLines(child.stderr, prefix, Deno.stderr),
    ]);
    const exited = child.status.then(async (status) => {
      await output.catch(() => {});
      console.error(
        `${label} | exited (code ${status.code}${status.signal ? `, ${status.signal}` : ""})`,
      );
      return status;
    });
    return { child, exited };
  });
  console.error(
    `${impl} cluster: endpoints ${members.map((m) => `127.0.0.1:${m.clientPort}`).join(",")}` +
      ` (Ctrl-C stops it)`,
  );

  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    for (const { child } of children) {
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
    }
    const timer = setTimeout(() => {
      for (const { child } of children) {
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
      }
    }, stopGraceMs);
    await Promise.all(children.map((c) => c.exited));
    clearTimeout(timer);
  };
  const onSignal = () => void stopAll();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const statuses = await Promise.all(children.map((c) => c.exited));
    return stopping || statuses.every((s) => s.success) ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
