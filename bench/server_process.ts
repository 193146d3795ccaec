/**
 * Starting and stopping the servers under test: ours (`deno run` with `serverRunArgs`) and real etcd, both
 * with the same etcd-style flags, a fresh temp data dir and free loopback ports.
 *
 * @module
 */

import { serverRunArgs } from "../internal/server_command.ts";

/** Which server a figure belongs to. */
export type Target = "ours" | "etcd";

/** Every target, in the order the benchmark runs them. */
export const allTargets: readonly Target[] = ["etcd", "ours"];

/** How to launch each target. */
export interface LaunchConfig {
  /** Path to the etcd binary. */
  etcdBinary: string;
  /** Path to our mod.ts. */
  oursEntry: string;
  /** Upper bound on the wait for `GET /health` to answer healthy. */
  readyTimeoutMs: number;
}

/** A running server under test. */
export interface ServerHandle {
  /** Which server this is. */
  target: Target;
  /** Process id (for CPU accounting through /proc). */
  pid: number;
  /** `http://127.0.0.1:<client port>`. */
  clientUrl: string;
  /** The temp data dir, removed by {@linkcode ServerHandle.stop}. */
  dataDir: string;
  /** The exact command line, for the report. */
  argv: string[];
  /** Last bytes the process wrote to stdout/stderr (bounded), for error messages. */
  outputTail(): string;
  /** Stops the process (SIGTERM, then SIGKILL after a grace period) and removes the data dir. */
  stop(): Promise<void>;
  /**
   * CPU seconds the server used so far, when it is more than the process `pid` (a cluster:
   * the sum over its members). Absent: read `pid` from /proc.
   */
  cpuSeconds?: () => Promise<number>;
}

/** Thrown when a server does not become healthy or exits early. */
export class ServerStartError extends Error {
  /** Creates the error; `tail` is the end of the process output. */
  constructor(message: string, readonly tail: string) {
    super(tail ? `${message}\n--- last output ---\n${tail}` : message);
    this.name = "ServerStartError";
  }
}

/** Output kept per server for error messages; the rest is read and dropped. */
const maxOutputTailBytes = 16 * 1024;
/** Grace period between SIGTERM and SIGKILL. */
const stopGraceMs = 5_000;
/** Pause between two `/health` polls. */
const healthPollIntervalMs = 50;
/** Upper bound on one `/health` request. */
const healthRequestTimeoutMs = 1_000;

/** Returns a currently free TCP port on 127.0.0.1 (the usual small race applies). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A member on 127.0.0.1, as the benchmarks and `deno task cluster` start them. */
export interface LoopbackMember {
  /** `--name`. */
  name: string;
  /** Client port on 127.0.0.1. */
  clientPort: number;
  /** Peer port on 127.0.0.1. */
  peerPort: number;
  /** `--data-dir`. */
  dataDir: string;
}

/** The etcd flags naming `member` and its loopback URLs; callers add the cluster flags. */
export function loopbackMemberFlags(member: LoopbackMember): string[] {
  const client = `http://127.0.0.1:${member.clientPort}`;
  const peer = `http://127.0.0.1:${member.peerPort}`;
  return [
    "--name",
    member.name,
    "--data-dir",
    member.dataDir,
    "--listen-client-urls",
    client,
    "--advertise-client-urls",
    client,
    "--listen-peer-urls",
    peer,
    "--initial-advertise-peer-urls",
    peer,
  ];
}

/** The etcd flags both targets get, as the benchmark brief fixes them. */
export function serverFlags(dataDir: string, clientPort: number, peerPort: number): string[] {
  return [
    ...loopbackMemberFlags({ name: "bench", dataDir, clientPort, peerPort }),
    "--initial-cluster",
    `bench=http://127.0.0.1:${peerPort}`,
  ];
}

/** Whether `target` can be started with `config` (etcd binary / our mod.ts present). */
export async function targetAvailable(target: Target, config: LaunchConfig): Promise<boolean> {
  const path = target === "etcd" ? config.etcdBinary : config.oursEntry;
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Bounded tail of a byte stream: reads everything, keeps the last `maxBytes`. */
class OutputTail {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, readonly maxBytes: number) {
    this.done = this.#drain(stream);
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream) {
        this.#chunks.push(chunk);
        this.#bytes += chunk.length;
        while (this.#chunks.length > 1 && this.#bytes - this.#chunks[0].length >= this.maxBytes) {
          this.#bytes -= this.#chunks.shift()!.length;
        }
      }
    } catch {
      // The stream errors when the process is killed; the tail so far is what we have.
    }
  }

  text(): string {
    const all = new Uint8Array(this.#bytes);
    let offset = 0;
    for (const c of this.#chunks) {
      all.set(c, offset);
      offset += c.length;
    }
    return new TextDecoder().decode(all.subarray(Math.max(0, all.length - this.maxBytes)));
  }
}

/** Polls `GET <clientUrl>/health` until it reports healthy, the process exits, or time is up. */
async function waitHealthy(
  clientUrl: string,
  exited: Promise<Deno.CommandStatus>,
  timeoutMs: number,
): Promise<"healthy" | "exited" | "timeout"> {
  let hasExited = false;
  exited.then(() => hasExited = true, () => hasExited = true);
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (hasExited) return "exited";
    try {
      const response = await fetch(`${clientUrl}/health`, {
        signal: AbortSignal.timeout(healthRequestTimeoutMs),
      });
      const body = await response.text();
      if (response.ok && /"health"\s*:\s*"?true"?/.test(body)) return "healthy";
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, healthPollIntervalMs));
  }
  return hasExited ? "exited" : "timeout";
}

/** Starts `target` on fresh ports and a fresh temp data dir, and waits until it is healthy. */
export async function startServer(target: Target, config: LaunchConfig): Promise<ServerHandle> {
  const dataDir = await Deno.makeTempDir({ prefix: `bench-${target}-` });
  const clientPort = freePort();
  let peerPort = freePort();
  while (peerPort === clientPort) peerPort = freePort();
  const flags = serverFlags(dataDir, clientPort, peerPort);
  return await launchServer(target, config, dataDir, `http://127.0.0.1:${clientPort}`, flags);
}

/**
 * Spawns `target` with exactly `flags` (which must serve clients at `clientUrl` and use
 * `dataDir`, a directory the handle removes when it stops) and waits until it is healthy.
 */
export async function launchServer(
  target: Target,
  config: LaunchConfig,
  dataDir: string,
  clientUrl: string,
  flags: string[],
): Promise<ServerHandle> {
  const [command, args] = target === "etcd"
    ? [config.etcdBinary, flags]
    : [Deno.execPath(), serverRunArgs(config.oursEntry, flags)];
  const argv = [command, ...args];
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }
  const stdout = new OutputTail(child.stdout, maxOutputTailBytes / 2);
  const stderr = new OutputTail(child.stderr, maxOutputTailBytes / 2);
  let stopped: Promise<void> | undefined;
  const handle: ServerHandle = {
    target,
    pid: child.pid,
    clientUrl,
    dataDir,
    argv,
    outputTail: () => [stdout.text(), stderr.text()].filter((s) => s).join("\n"),
    stop: () => {
      stopped ??= (async () => {
        const kill = setTimeout(() => signal(child, "SIGKILL"), stopGraceMs);
        signal(child, "SIGTERM");
        await child.status;
        clearTimeout(kill);
        await Promise.all([stdout.done, stderr.done]);
        await Deno.remove(dataDir, { recursive: true });
      })();
      return stopped;
    },
  };
  const state = await waitHealthy(clientUrl, child.status, config.readyTimeoutMs);
  if (state !== "healthy") {
    await handle.stop();
    const why = state === "exited"
      ? "exited before it was healthy"
      : `was not healthy within ${config.readyTimeoutMs} ms`;
    throw new ServerStartError(`${target} (${argv.join(" ")}) ${why}`, handle.outputTail());
  }
  return handle;
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // Already exited.
  }
}
