/**
 * An etcd v3 compatible server for Deno.
 *
 * As a library: `startServer(parseConfig(args, env))` starts a member. As a program,
 * `deno run -A mod.ts --name n1 --data-dir ... --listen-client-urls ...` takes etcd's flags.
 *
 * @module
 */
import { ConfigError, parseConfig, USAGE, versionText } from "./server/config.ts";
import { startServer } from "./server/server.ts";

export { type Config, ConfigError, parseConfig } from "./server/config.ts";
export { Errors, EtcdError } from "./server/errors.ts";
export { type Server, startServer } from "./server/server.ts";

/** Runs a member from command-line flags and environment until SIGINT or SIGTERM; the exit code. */
export async function main(args: string[]): Promise<number> {
  let server;
  try {
    const config = parseConfig(args, Deno.env.toObject());
    if (config.action === "help") {
      console.log(USAGE);
      return 0;
    }
    if (config.action === "version") {
      console.log(versionText());
      return 0;
    }
    for (const warning of config.warnings) console.error(`etcd: warning: ${warning}`);
    server = await startServer(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`etcd: ${err.message}`);
      return err.exitCode;
    }
    // A damaged WAL, a data dir in use, a port taken: say what, and refuse to start.
    console.error(`etcd: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  const stop = () => void server.stop();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
