/**
 * End-to-end test harness: starts real member processes (our server or etcd 3.4 itself, with
 * the same etcd flags) on loopback ports and runs etcdctl against them.
 *
 * Every member a test starts must be stopped in a `finally`; {@linkcode Member.stop} and
 * {@linkcode Member.kill9} wait for the process to exit and drain its output, so Deno's
 * resource sanitizer stays quiet.
 *
 * @module
 */

import { serverRunArgs } from "../../internal/server_command.ts";

/** Which server a member runs: this repository's `mod.ts` or the reference etcd binary. */
export type Impl = "ours" | "etcd";

/** Path of the reference etcd server (Debian `etcd-server`). */
export const ETCD_BIN = "/usr/bin/etcd";
/** Path of etcdctl 3.4 (Debian `etcd-client`). */
export const ETCDCTL_BIN = "/usr/bin/etcdctl";

/** The repository root (this file lives in `tests/e2e/`). */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname;

/** How long a member may take to answer `GET /health` with 200 after it is spawned. */
const readyTimeoutMs = 30_000;
/** How long {@linkcode Member.stop} waits after SIGTERM before it sends SIGKILL. */
const stopGraceMs = 10_000;
/** Output kept per member (the tail); older output is dropped. */
const maxCapturedBytes = 4 * 1024 * 1024;
/** Default limit for one etcdctl run (etcdctl's own timeouts are shorter). */
const etcdctlTimeoutMs = 30_000;
/** Interval between readiness probes. */
const readyPollMs = 50;

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A running member process. */
export interface Member {
  /** Which server runs. */
  impl: Impl;
  /** The member's `--name`. */
  name: string;
  /** `http://127.0.0.1:<port>`, served for clients. */
  clientUrl: string;
  /** `http://127.0.0.1:<port>`, served for peers. */
  peerUrl: string;
  /** The client port. */
  clientPort: number;
  /** The peer port. */
  peerPort: number;
  /** The member's `--data-dir`. */
  dataDir: string;
  /** The child process. */
  process: Deno.ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<Deno.CommandStatus>;
  /**
   * SIGTERM, then SIGKILL after a grace period; waits for the exit. Removes the data dir when
   * the harness created it. Safe to call more than once.
   */
  stop(): Promise<void>;
  /**
   * SIGKILL at once (a crash); waits for the exit. Keeps a data dir passed in by the caller
   * (for restart tests) and removes one the harness created.
   */
  kill9(): Promise<void>;
  /** Everything the process wrote to stdout and stderr so far (the last 4 MiB). */
  stderrText(): string;
}

/** Options of {@linkcode startMember}. */
export interface StartOptions {
  /** Which server to run. */
  impl: Impl;
  /** `--name`; a fresh one by default. */
  name?: string;
  /** More etcd flags, appended after the harness's own (they must not repeat them). */
  flags?: string[];
  /** `--data-dir`; kept after the member stops. By default a temp dir the harness removes. */
  dataDir?: string;
  /** Client port to reuse (for restarts); a free one by default. */
  clientPort?: number;
  /** Peer port to reuse (for restarts); a free one by default. */
  peerPort?: number;
  /** Extra environment variables for the process. */
  env?: Record<string, string>;
  /**
   * `--initial-cluster`; by default this member alone (`<name>=<peer url>`). Multi-member
   * clusters pass every member here.
   */
  initialCluster?: string;
  /** How long the member may take to become healthy; 30 s by default. */
  readyTimeoutMs?: number;
}

/** The command line that runs a member of `impl` with `flags`. */
export function memberCommand(impl: Impl, flags: string[]): { cmd: string; args: string[] } {
  if (impl === "etcd") return { cmd: ETCD_BIN, args: flags };
  return { cmd: Deno.execPath(), args: serverRunArgs(`${REPO_ROOT}mod.ts`, flags) };
}

/** The environment without variables that would change etcd's or etcdctl's behaviour. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("ETCD_") && !k.startsWith("ETCDCTL_")) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Reads a stream to its end into `sink`, keeping only the last `maxCapturedBytes`. */
async function pump(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    sink.text += decoder.decode(chunk, { stream: true });
    if (sink.text.length > maxCapturedBytes) sink.text = sink.text.slice(-maxCapturedBytes);
  }
  sink.text += decoder.decode();
}

/**
 * Spawns a single-member cluster of `impl` on fresh 127.0.0.1 ports and waits (at most 30 s)
 * until `GET /health` answers 200. Throws with the captured output when the process exits
 * first or never becomes healthy.
 */
export async function startMember(opts: StartOptions): Promise<Member> {
  const name = opts.name ?? `m${crypto.randomUUID().slice(0, 8)}`;
  const ownsDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? await Deno.makeTempDir({ prefix: `e2e-${opts.impl}-` });
  const clientPort = opts.clientPort ?? freePort();
  const peerPort = opts.peerPort ?? freePort();
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const flags = [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${opts.initialCluster ?? `${name}=${peerUrl}`}`,
    ...(opts.flags ?? []),
  ];
  const { cmd, args } = memberCommand(opts.impl, flags);
  const process = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: cleanEnv(opts.env ?? {}),
  }).spawn();
  const output = { text: "" };
  const drained = Promise.all([pump(process.stdout, output), pump(process.stderr, output)]);
  const exited = process.status;
  let exitStatus: Deno.CommandStatus | undefined;
  exited.then((s) => exitStatus = s);
  let removed = false;

  const removeOwnedDir = async () => {
    if (!ownsDataDir || removed) return;
    removed = true;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  };
  const waitExit = async () => {
    await exited;
    await drained;
  };
  const member: Member = {
    impl: opts.impl,
    name,
    clientUrl,
    peerUrl,
    clientPort,
    peerPort,
    dataDir,
    process,
    exited,
    stderrText: () => output.text,
    async stop() {
      if (exitStatus === undefined) {
        try {
          process.kill("SIGTERM");
        } catch { /* already gone */ }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const graceOver = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), stopGraceMs);
        });
        const first = await Promise.race([exited, graceOver]);
        clearTimeout(timer);
        if (first === "timeout") {
          try {
            process.kill("SIGKILL");
          } catch { /* exited meanwhile */ }
        }
      }
      await waitExit();
      await removeOwnedDir();
    },
    async kill9() {
      if (exitStatus === undefined) {
        try {
          process.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await waitExit();
      await removeOwnedDir();
    },
  };

  try {
    await waitHealthy(member, () => exitStatus, opts.readyTimeoutMs ?? readyTimeoutMs);
  } catch (e) {
    await member.kill9();
    throw e;
  }
  return member;
}

/** Polls `GET /health` until it answers 200, the process exits, or the deadline passes. */
async function waitHealthy(
  member: Member,
  exitStatus: () => Deno.CommandStatus | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = "no answer yet";
  while (Date.now() < deadline) {
    const status = exitStatus();
    if (status !== undefined) {
      throw new Error(
        `${member.impl} member ${member.name} exited early (code ${status.code}, signal ` +
          `${status.signal}) before it was healthy. Its output:\n${member.stderrText()}`,
      );
    }
    try {
      const res = await fetch(`${member.clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.status === 200) return;
      lastProblem = `HTTP ${res.status}: ${body}`;
    } catch (e) {
      lastProblem = String(e);
    }
    await Promise.race([member.exited, new Promise((r) => setTimeout(r, readyPollMs))]);
  }
  throw new Error(
    `${member.impl} member ${member.name} was not healthy within ${timeoutMs} ms ` +
      `(last probe: ${lastProblem}). Its output:\n${member.stderrText()}`,
  );
}

/** The outcome of one etcdctl run. */
export interface CommandResult {
  /** Exit code (or -1 when it was killed for taking too long). */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Options of {@linkcode runEtcdctl}. */
export interface EtcdctlOptions {
  /** A client URL such as `http://127.0.0.1:2379`. */
  endpoint: string;
  /** etcdctl arguments after the global flags. */
  args: string[];
  /** Text fed to standard input (for `txn`). */
  stdin?: string;
  /** Kill the run after this long; 30 s by default. */
  timeoutMs?: number;
}

/**
 * Runs etcdctl (API v3) against one endpoint, with short dial and command timeouts so a dead
 * server fails the step instead of hanging it.
 */
export async function runEtcdctl(opts: EtcdctlOptions): Promise<CommandResult> {
  const child = new Deno.Command(ETCDCTL_BIN, {
    args: [
      `--endpoints=${opts.endpoint}`,
      "--dial-timeout=3s",
      "--command-timeout=10s",
      ...opts.args,
    ],
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: cleanEnv({ ETCDCTL_API: "3" }),
    signal: AbortSignal.timeout(opts.timeoutMs ?? etcdctlTimeoutMs),
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.signal === null ? out.code : -1,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Runs `etcdctl --endpoints=<endpoint> ...args` (API v3, bounded in time). */
export function etcdctl(endpoint: string, ...args: string[]): Promise<CommandResult> {
  return runEtcdctl({ endpoint, args });
}

const missingReported = new Set<string>();

/**
 * Checks that the binaries e2e tests need exist. When one is missing, a CI run (`CI=true`)
 * gets a failing test naming it; elsewhere a loud warning is printed and the caller should
 * pass the returned `false` as `ignore: !available` to skip its tests.
 */
export function requireBinary(...paths: string[]): boolean {
  let available = true;
  for (const path of paths) {
    try {
      Deno.statSync(path);
      continue;
    } catch {
      available = false;
    }
    if (missingReported.has(path)) continue;
    missingReported.add(path);
    if (Deno.env.get("CI") === "true") {
      Deno.test(`required binary ${path} is installed`, () => {
        throw new Error(
          `${path} is missing: install Debian's etcd-server and etcd-client (.ci/run does)`,
        );
      });
    } else {
      console.warn(
        `\n!!!!!!!!!!\n!!! WARNING: ${path} is missing; e2e tests that need it are SKIPPED.\n` +
          `!!! Install Debian's etcd-server and etcd-client to run them.\n!!!!!!!!!!\n`,
      );
    }
  }
  return available;
}
