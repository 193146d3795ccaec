import { strictEqual } from "node:assert/strict";
import { WalSyncPolicy } from "./wal_sync_policy.ts";

Deno.test("a lone member syncs inline while it only writes, on the pool while it also answers locally", () => {
  const policy = new WalSyncPolicy();
  strictEqual(policy.inlineFor(false), true);
  strictEqual(policy.inlineFor(false), true, "however big the save");

  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(false), false, "a read was answered since the last save");
  strictEqual(policy.inlineFor(false), true, "none since");

  policy.noteLocalAnswer();
  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(false), false);
  strictEqual(policy.inlineFor(false), true);
});

Deno.test("a lone member syncs on the pool while output waits to be sent, inline once it went out", () => {
  const policy = new WalSyncPolicy();
  strictEqual(policy.inlineFor(false, true), false, "watch events wait for the loop");
  strictEqual(policy.inlineFor(false, false), true, "they went out: nothing to hold back");
  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(false, false), false, "a read was answered since the last save");
  strictEqual(policy.inlineFor(true, false), false, "with peers, never inline");
});

Deno.test("with peers every save syncs on the pool, whatever is answered locally", () => {
  const policy = new WalSyncPolicy();
  strictEqual(policy.inlineFor(true), false);
  strictEqual(policy.inlineFor(true), false);
  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(true), false);
  // The answer was counted at that save: it does not carry over to a lone member's next one.
  strictEqual(policy.inlineFor(false), true);
});
