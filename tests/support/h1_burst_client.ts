/**
 * A separate-process HTTP/1.1 client: sends `count` large gateway puts, each on a fresh TCP
 * connection, and prints a JSON object counting the reply status lines. It runs in its own
 * process because a client in the server's process writes in lockstep with the server's event
 * loop and hides races in how the server reads a connection's first bytes.
 *
 * Usage: `deno run --allow-net=127.0.0.1 h1_burst_client.ts <port> <count> <valueBytes>`
 *
 * @module
 */
import { rawExchange } from "./raw_wire.ts";

/** Sends the burst and returns the count of each reply's status line. */
export async function burst(
  port: number,
  count: number,
  valueBytes: number,
): Promise<Record<string, number>> {
  const body = JSON.stringify({ key: btoa("burst"), value: btoa("x".repeat(valueBytes)) });
  const request = new TextEncoder().encode(
    "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  const counts: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const r = await rawExchange(port, request, { timeoutMs: 10_000 });
    const line = new TextDecoder().decode(r.reply.subarray(0, 64)).split("\r\n")[0] ||
      "(no reply)";
    counts[line] = (counts[line] ?? 0) + 1;
  }
  return counts;
}

if (import.meta.main) {
  const [port, count, valueBytes] = Deno.args.map(Number);
  console.log(JSON.stringify(await burst(port, count, valueBytes)));
}
