import { strictEqual } from "node:assert/strict";
import { WalSyncPolicy } from "./wal_sync_policy.ts";

Deno.test("a lone member syncs inline while it only writes, on the pool while it also answers locally", () => {
  const policy = new WalSyncPolicy();
  strictEqual(policy.inlineFor(false, 1), true);
  strictEqual(policy.inlineFor(false, 500), true, "however big the save");

  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(false, 1), false, "a read was answered since the last save");
  strictEqual(policy.inlineFor(false, 1), true, "none since");

  policy.noteLocalAnswer();
  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(false, 3), false);
  strictEqual(policy.inlineFor(false, 3), true);
});

Deno.test("with peers only small saves sync inline, whatever is answered locally", () => {
  const policy = new WalSyncPolicy();
  strictEqual(policy.inlineFor(true, 1), true);
  strictEqual(policy.inlineFor(true, 2), true);
  strictEqual(policy.inlineFor(true, 3), false);
  policy.noteLocalAnswer();
  strictEqual(policy.inlineFor(true, 2), true);
  // The answer was counted at that save: it does not carry over to a lone member's next one.
  strictEqual(policy.inlineFor(false, 2), true);
});
