import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Logger } from "../internal/logger.ts";
import { type Message, MessageType } from "../raft/types.ts";
import { ByteReader } from "./byte_reader.ts";
import { encodeMessage, isLinkHeartbeat, readFramedMessage } from "./message_codec.ts";
import { SendBudget } from "./send_budget.ts";
import { StreamWriter } from "./stream_writer.ts";

const quiet = new Logger("error");

function heartbeat(commit: number): Message {
  return {
    type: MessageType.heartbeat,
    to: 2n,
    from: 1n,
    term: 1,
    logTerm: 0,
    index: 0,
    entries: [],
    commit,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(),
  };
}

/** Reads `count` real messages (skipping link heartbeats) from a stream reader. */
async function readMessages(reader: ByteReader, count: number): Promise<number[]> {
  const commits: number[] = [];
  while (commits.length < count) {
    const message = await readFramedMessage(reader, 1 << 20);
    if (message === null) break;
    if (!isLinkHeartbeat(message)) commits.push(message.commit);
  }
  return commits;
}

function setup(maxMessages = 100, maxBytes = 1 << 20, maxChunkBytes = 256) {
  const budget = new SendBudget(maxMessages, maxBytes);
  const lost: number[] = [];
  const writer = new StreamWriter("message", budget, maxChunkBytes, quiet, (n) => lost.push(n));
  return { budget, lost, writer };
}

Deno.test("a stream writer writes queued messages as frames, in order", async () => {
  const { budget, writer } = setup();
  strictEqual(writer.enqueue(encodeMessage(heartbeat(0))), false, "nothing attached yet");
  const reader = new ByteReader(writer.attach());
  for (let i = 1; i <= 50; i++) strictEqual(writer.enqueue(encodeMessage(heartbeat(i))), true);
  deepStrictEqual(await readMessages(reader, 50), Array.from({ length: 50 }, (_, i) => i + 1));
  strictEqual(budget.messages, 0, "written messages give their room back");
  writer.close();
  strictEqual(await readFramedMessage(reader, 1 << 20), null, "close ends the body");
});

Deno.test("a stream writer refuses what the budget cannot hold", () => {
  const { budget, writer } = setup(3);
  const body = writer.attach();
  const accepted = Array.from({ length: 5 }, (_, i) => writer.enqueue(encodeMessage(heartbeat(i))));
  deepStrictEqual(accepted, [true, true, true, false, false]);
  strictEqual(budget.messages, 3);
  writer.close();
  strictEqual(budget.messages, 0);
  body.cancel().catch(() => {});
});

Deno.test("a new stream replaces the old one and carries what was queued", async () => {
  const { writer } = setup();
  const first = new ByteReader(writer.attach());
  writer.enqueue(encodeMessage(heartbeat(1)));
  deepStrictEqual(await readMessages(first, 1), [1]);
  writer.enqueue(encodeMessage(heartbeat(2)));
  const second = new ByteReader(writer.attach());
  writer.enqueue(encodeMessage(heartbeat(3)));
  // The first body ends (whatever it had already taken), the second carries the queue on.
  const rest = await readMessages(first, 2);
  strictEqual(await readFramedMessage(first, 1 << 20), null);
  deepStrictEqual([...rest, ...await readMessages(second, 2 - rest.length)], [2, 3]);
  writer.close();
  await second.cancel();
});

Deno.test("a peer going away drops its queue and reports it", async () => {
  const { budget, lost, writer } = setup();
  const body = writer.attach();
  const reader = body.getReader();
  await reader.read(); // the opening link heartbeat
  for (let i = 0; i < 10; i++) writer.enqueue(encodeMessage(heartbeat(i)));
  await reader.cancel();
  strictEqual(writer.attached, false);
  strictEqual(budget.messages, 0);
  deepStrictEqual(lost, [10]);
  writer.close();
});

Deno.test("link heartbeats go out only on an idle stream", async () => {
  const { writer } = setup();
  const reader = new ByteReader(writer.attach());
  const opening = await readFramedMessage(reader, 1 << 20);
  strictEqual(opening !== null && isLinkHeartbeat(opening), true);
  writer.enqueue(encodeMessage(heartbeat(7)));
  writer.heartbeat(); // not idle: a message is waiting
  writer.heartbeat();
  deepStrictEqual(await readMessages(reader, 1), [7]);
  writer.heartbeat(); // idle now
  const next = await readFramedMessage(reader, 1 << 20);
  strictEqual(next !== null && isLinkHeartbeat(next), true);
  writer.close();
  strictEqual(await readFramedMessage(reader, 1 << 20), null);
});
