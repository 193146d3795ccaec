/**
 * The load generator's own ceiling: the same generator against a trivial in-process gRPC server
 * (raw `node:http2`, h2c) that answers every call with an empty message. Generator and server
 * share one thread here, so the figure is a lower bound of what the generator alone can push; a
 * real server measured near it is limited by the generator, not by itself.
 *
 * @module
 */

import { type LoadOptions, type LoadResult, runLoad } from "./load.ts";
import { startTrivialServer } from "./trivial_server.ts";
import type { PreparedCase } from "./workload.ts";

/** Runs `testCase` against a fresh trivial server and returns the generator's figures. */
export async function measureGenerator(
  testCase: PreparedCase,
  options: LoadOptions,
): Promise<LoadResult> {
  const server = await startTrivialServer();
  try {
    return await runLoad(server.url, testCase, options);
  } finally {
    await server.close();
  }
}
