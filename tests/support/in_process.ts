/**
 * Starts a member inside the test process on loopback port 0 with a temporary data dir, for
 * tests that need a real listener without spawning a process.
 *
 * @module
 */
import { parseConfig } from "../../server/config.ts";
import { Logger } from "../../internal/logger.ts";
import { type Server, startServer } from "../../server/server.ts";

/** A member running in this process. */
export interface InProcessMember {
  server: Server;
  /** e.g. `http://127.0.0.1:40123`. */
  clientUrl: string;
  dataDir: string;
  /** Stops the member and removes its data dir. */
  stop(): Promise<void>;
}

/** Starts a single member; pass extra etcd flags in `flags`. */
export async function startInProcess(flags: string[] = []): Promise<InProcessMember> {
  const dataDir = await Deno.makeTempDir({ prefix: "etcd-test-" });
  const peer = "http://127.0.0.1:0";
  const config = parseConfig([
    "--name",
    "t",
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    "http://127.0.0.1:0",
    "--advertise-client-urls",
    "http://127.0.0.1:0",
    "--listen-peer-urls",
    peer,
    "--initial-advertise-peer-urls",
    peer,
    "--initial-cluster",
    `t=${peer}`,
    ...flags,
  ], {});
  const server = await startServer(config, new Logger("error"));
  return {
    server,
    clientUrl: server.clientUrls[0],
    dataDir,
    async stop() {
      await server.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}
