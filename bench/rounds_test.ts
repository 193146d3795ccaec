import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { leastDisturbed, mergeRounds, roundOrder } from "./rounds.ts";

interface Attempt {
  id: string;
  otherCpuPct?: number;
}
interface Run {
  target: string;
  clients: number;
  result: Attempt;
  attempts?: Attempt[];
}

Deno.test("the least disturbed attempt is chosen by other CPU alone", () => {
  strictEqual(
    leastDisturbed<Attempt>([{ id: "a", otherCpuPct: 9 }, { id: "b", otherCpuPct: 2 }]).id,
    "b",
  );
  // An attempt without the figure never wins over one with it.
  strictEqual(leastDisturbed<Attempt>([{ id: "a" }, { id: "b", otherCpuPct: 50 }]).id, "b");
});

Deno.test("rounds merge into one cell per key, attempts in run order", () => {
  const cell = (target: string, clients: number, id: string, otherCpuPct: number): Run => ({
    target,
    clients,
    result: { id, otherCpuPct },
  });
  const rounds: Run[] = [
    cell("etcd", 1, "e1-r1", 5),
    cell("etcd", 16, "e16-r1", 1),
    cell("ours", 1, "o1-r1", 3),
    cell("etcd", 1, "e1-r2", 2),
    cell("etcd", 16, "e16-r2", 4),
    cell("ours", 1, "o1-r2", 7),
  ];
  const merged = mergeRounds(rounds, (r) => `${r.target} ${r.clients}`);
  deepStrictEqual(merged.map((r) => `${r.target} ${r.clients} ${r.result.id}`), [
    "etcd 1 e1-r2",
    "etcd 16 e16-r1",
    "ours 1 o1-r1",
  ]);
  deepStrictEqual(merged[0].attempts?.map((a) => a.id), ["e1-r1", "e1-r2"]);
  // A single round leaves cells as they were: no attempts list.
  const single = mergeRounds([cell("ours", 1, "x", 0)], (r) => r.target);
  strictEqual(single[0].attempts, undefined);
  strictEqual(single[0].result.id, "x");
});

Deno.test("the servers' order alternates by round, so each goes first as often", () => {
  const targets = ["etcd", "ours"] as const;
  const orders = [0, 1, 2, 3].map((round) => roundOrder(targets, round).join(","));
  deepStrictEqual(orders, ["etcd,ours", "ours,etcd", "etcd,ours", "ours,etcd"]);
  deepStrictEqual(targets, ["etcd", "ours"], "the caller's list is left alone");
  deepStrictEqual(roundOrder(["ours"], 1), ["ours"]);
});
