import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { AssertionError } from "../internal/assert.ts";
import { utf8 } from "../internal/bytes.ts";
import {
  LeaseExistsError,
  LeaseNotFoundError,
  LeaseNotPrimaryError,
  LeaseTtlTooLargeError,
  maxLeaseTtlSeconds,
} from "./errors.ts";
import { type LeasePersistence, Lessor, type LessorOptions } from "./lessor.ts";

/** A lessor on a hand-ticked clock, with its persistence calls recorded. */
function setup(options: Partial<LessorOptions> = {}) {
  const clock = { now: 1_000_000 };
  const saved = new Map<bigint, number>();
  const calls: string[] = [];
  const persistence: LeasePersistence = {
    saveLease(id, ttlSeconds) {
      saved.set(id, ttlSeconds);
      calls.push(`save ${id} ${ttlSeconds}`);
    },
    deleteLease(id) {
      saved.delete(id);
      calls.push(`delete ${id}`);
    },
  };
  const lessor = new Lessor({ clock: () => clock.now, minTtlSeconds: 2, persistence, ...options });
  return { clock, lessor, saved, calls };
}

function primary(options: Partial<LessorOptions> = {}) {
  const s = setup(options);
  s.lessor.promote(0);
  return s;
}

Deno.test("grant", async (t) => {
  await t.step("returns and persists the lease", () => {
    const { lessor, calls } = setup();
    deepStrictEqual(lessor.grant(7n, 30), { id: 7n, ttlSeconds: 30 });
    strictEqual(lessor.exists(7n), true);
    deepStrictEqual(calls, ["save 7 30"]);
    deepStrictEqual(lessor.timeToLive(7n), { ttlSeconds: 30, grantedTtlSeconds: 30, keys: [] });
  });

  for (const ttl of [1, 0, -5, -9.2e18]) {
    await t.step(`raises TTL ${ttl} to the minimum, persisting the raised TTL`, () => {
      const { lessor, saved } = setup();
      strictEqual(lessor.grant(1n, ttl).ttlSeconds, 2);
      strictEqual(saved.get(1n), 2);
    });
  }

  await t.step("accepts the largest TTL and refuses one more", () => {
    const { lessor, calls } = setup();
    strictEqual(lessor.grant(1n, maxLeaseTtlSeconds).ttlSeconds, 9_000_000_000);
    throws(() => lessor.grant(2n, maxLeaseTtlSeconds + 1), LeaseTtlTooLargeError);
    strictEqual(lessor.exists(2n), false);
    deepStrictEqual(calls, ["save 1 9000000000"]);
  });

  await t.step("refuses an ID in use, without persisting", () => {
    const { lessor, calls } = setup();
    lessor.grant(5n, 10);
    throws(() => lessor.grant(5n, 20), LeaseExistsError);
    strictEqual(lessor.timeToLive(5n)?.grantedTtlSeconds, 10);
    deepStrictEqual(calls, ["save 5 10"]);
  });

  await t.step("checks the TTL before the ID, as etcd does", () => {
    const { lessor } = setup();
    lessor.grant(5n, 10);
    throws(() => lessor.grant(5n, maxLeaseTtlSeconds + 1), LeaseTtlTooLargeError);
  });

  await t.step("accepts negative and full-range IDs", () => {
    const { lessor } = setup();
    lessor.grant(-78n, 5);
    lessor.grant(0x7fff_ffff_ffff_ffffn, 5);
    deepStrictEqual(lessor.leases(), [-78n, 0x7fff_ffff_ffff_ffffn]);
  });

  await t.step("ID 0 is a programming error", () => {
    const { lessor } = setup();
    throws(() => lessor.grant(0n, 5), AssertionError);
  });
});

Deno.test("attach, detach and revoke", async (t) => {
  await t.step("revoke returns the attached keys in byte order and forgets the lease", () => {
    const { lessor, calls } = setup();
    lessor.grant(1n, 10);
    lessor.grant(2n, 10);
    for (const key of ["b", "a", "c"]) lessor.attach(1n, utf8(key));
    lessor.attach(1n, new Uint8Array([0xff, 0x00]));
    lessor.attach(1n, new Uint8Array([0x00]));
    lessor.attach(1n, utf8("a")); // again: still one key
    lessor.attach(2n, utf8("z"));
    deepStrictEqual(lessor.revoke(1n), [
      new Uint8Array([0x00]),
      utf8("a"),
      utf8("b"),
      utf8("c"),
      new Uint8Array([0xff, 0x00]),
    ]);
    strictEqual(lessor.exists(1n), false);
    strictEqual(lessor.timeToLive(1n), null);
    deepStrictEqual(lessor.leases(), [2n]);
    deepStrictEqual(calls, ["save 1 10", "save 2 10", "delete 1"]);
    deepStrictEqual(lessor.timeToLive(2n)?.keys, [utf8("z")]);
  });

  await t.step("detach removes the key from the lease", () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    lessor.attach(1n, utf8("a"));
    lessor.attach(1n, utf8("b"));
    lessor.detach(1n, utf8("a"));
    lessor.detach(1n, utf8("never attached"));
    deepStrictEqual(lessor.timeToLive(1n)?.keys, [utf8("b")]);
    deepStrictEqual(lessor.revoke(1n), [utf8("b")]);
  });

  await t.step("detach from a revoked or unknown lease is a no-op", () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    lessor.attach(1n, utf8("a"));
    lessor.revoke(1n);
    lessor.detach(1n, utf8("a"));
    lessor.detach(99n, utf8("a"));
  });

  await t.step("attach to or revoke an unknown lease fails", () => {
    const { lessor, calls } = setup();
    throws(() => lessor.attach(3n, utf8("a")), LeaseNotFoundError);
    throws(() => lessor.revoke(3n), LeaseNotFoundError);
    lessor.grant(3n, 10);
    lessor.revoke(3n);
    throws(() => lessor.revoke(3n), LeaseNotFoundError);
    deepStrictEqual(calls, ["save 3 10", "delete 3"]);
  });

  await t.step("a revoked ID can be granted again, without its old keys", () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    lessor.attach(1n, utf8("a"));
    lessor.revoke(1n);
    lessor.grant(1n, 20);
    deepStrictEqual(lessor.timeToLive(1n), { ttlSeconds: 20, grantedTtlSeconds: 20, keys: [] });
  });
});

Deno.test("renew", async (t) => {
  await t.step("restarts the full TTL", () => {
    const { clock, lessor } = primary();
    lessor.grant(1n, 10);
    clock.now += 6_000;
    strictEqual(lessor.timeToLive(1n)?.ttlSeconds, 4);
    strictEqual(lessor.renew(1n), 10);
    strictEqual(lessor.timeToLive(1n)?.ttlSeconds, 10);
    clock.now += 9_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [1n]);
  });

  await t.step("refuses unknown leases", () => {
    const { lessor } = primary();
    throws(() => lessor.renew(1n), LeaseNotFoundError);
  });

  await t.step("refuses a lease past its expiry whose revoke is pending", () => {
    const { clock, lessor } = primary();
    lessor.grant(1n, 2);
    clock.now += 2_000;
    throws(() => lessor.renew(1n), LeaseNotFoundError);
    strictEqual(lessor.exists(1n), true);
    deepStrictEqual(lessor.expired(10), [1n]);
  });

  await t.step("is refused by a non-primary", () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    throws(() => lessor.renew(1n), LeaseNotPrimaryError);
    throws(() => lessor.renew(2n), LeaseNotPrimaryError);
  });

  await t.step("many renewals of one lease keep expiry exact", () => {
    const { clock, lessor } = primary();
    lessor.grant(1n, 5);
    lessor.grant(2n, 5);
    for (let i = 0; i < 10_000; i++) {
      clock.now += 1;
      lessor.renew(1n);
    }
    // Lease 2 was granted 10 s ago and never renewed; lease 1 was renewed 0 ms ago.
    deepStrictEqual(lessor.expired(10), [2n]);
    lessor.revoke(2n);
    clock.now += 4_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [1n]);
  });
});

Deno.test("expired", async (t) => {
  await t.step("reports due leases, longest expired first, up to the limit", () => {
    const { clock, lessor } = primary();
    lessor.grant(10n, 5);
    lessor.grant(20n, 3);
    lessor.grant(30n, 4);
    lessor.grant(40n, 60);
    clock.now += 2_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 2_001;
    deepStrictEqual(lessor.expired(2), [20n, 30n]);
    deepStrictEqual(lessor.expired(2), [10n]);
    deepStrictEqual(lessor.expired(0), []);
  });

  await t.step("reports a lease again after the retry interval until it is revoked", () => {
    const { clock, lessor } = primary({ expiredRetryMs: 3_000 });
    lessor.grant(1n, 2);
    lessor.grant(2n, 2);
    clock.now += 2_000;
    deepStrictEqual(lessor.expired(10), [1n, 2n]);
    clock.now += 2_999;
    deepStrictEqual(lessor.expired(10), []);
    lessor.revoke(2n);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [1n]);
    lessor.revoke(1n);
    clock.now += 10_000;
    deepStrictEqual(lessor.expired(10), []);
  });

  await t.step("never reports on a non-primary", () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 2);
    clock.now += 1e9;
    deepStrictEqual(lessor.expired(10), []);
  });
});

Deno.test("timeToLive truncates the remaining time as etcd does", async (t) => {
  const { clock, lessor } = primary();
  const start = clock.now;
  lessor.grant(1n, 10);
  lessor.attach(1n, utf8("k2"));
  lessor.attach(1n, utf8("k1"));
  const table: [number, number][] = [
    [0, 10],
    [1, 9], // etcdctl: `lease grant 10` then `timetolive` shows remaining(9s)
    [9_000, 1],
    [9_999, 0],
    [10_000, 0], // expired, revoke pending
    [10_999, 0],
    [11_000, -1],
  ];
  for (const [elapsedMs, ttl] of table) {
    await t.step(`${elapsedMs} ms after the grant: ${ttl}`, () => {
      clock.now = start + elapsedMs;
      deepStrictEqual(lessor.timeToLive(1n), {
        ttlSeconds: ttl,
        grantedTtlSeconds: 10,
        keys: [utf8("k1"), utf8("k2")],
      });
    });
  }
  await t.step("unknown lease: null", () => {
    strictEqual(lessor.timeToLive(2n), null);
  });
});

Deno.test("leases lists soonest expiry first, ties by ID", () => {
  const { lessor } = primary();
  lessor.grant(77n, 9_000_000_000);
  lessor.grant(79n, 2);
  lessor.grant(-78n, 2);
  lessor.grant(5n, 60);
  deepStrictEqual(lessor.leases(), [-78n, 79n, 5n, 77n]);
  deepStrictEqual(setup().lessor.leases(), []);
});

Deno.test("promote and demote", async (t) => {
  await t.step("a follower holds leases forever and reports the granted TTL", () => {
    const { clock, lessor } = setup();
    strictEqual(lessor.isPrimary, false);
    lessor.grant(1n, 5);
    clock.now += 1e9;
    strictEqual(lessor.exists(1n), true);
    strictEqual(lessor.timeToLive(1n)?.ttlSeconds, 5);
    deepStrictEqual(lessor.expired(10), []);
  });

  await t.step("promotion restarts every full TTL plus the extension", () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 5);
    lessor.grant(2n, 3);
    clock.now += 100_000;
    lessor.promote(1_000);
    strictEqual(lessor.isPrimary, true);
    strictEqual(lessor.timeToLive(1n)?.ttlSeconds, 6);
    clock.now += 3_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [2n]);
    clock.now += 2_000;
    deepStrictEqual(lessor.expired(10), [1n]);
  });

  await t.step("a lease granted while primary expires after its TTL", () => {
    const { clock, lessor } = primary();
    lessor.grant(1n, 2);
    clock.now += 1_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [1n]);
  });

  await t.step("demotion stops expiry and renewal; re-promotion gives the full TTL again", () => {
    const { clock, lessor } = primary();
    lessor.grant(1n, 10);
    clock.now += 9_000;
    lessor.demote();
    strictEqual(lessor.isPrimary, false);
    throws(() => lessor.renew(1n), LeaseNotPrimaryError);
    clock.now += 60_000;
    deepStrictEqual(lessor.expired(10), []);
    strictEqual(lessor.timeToLive(1n)?.ttlSeconds, 10);
    lessor.promote(0);
    strictEqual(lessor.timeToLive(1n)?.ttlSeconds, 10);
    clock.now += 9_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [1n]);
  });

  await t.step("demotion also forgets expired leases awaiting revoke", () => {
    const { clock, lessor } = primary();
    lessor.grant(1n, 2);
    clock.now += 5_000;
    lessor.demote();
    lessor.promote(0);
    deepStrictEqual(lessor.expired(10), []);
    strictEqual(lessor.renew(1n), 2);
  });

  await t.step("promotion spreads a pile-up of expiries over later seconds", () => {
    const { clock, lessor } = setup({ maxExpiriesPerSecond: 3 });
    for (let id = 1n; id <= 7n; id++) lessor.grant(id, 10);
    // 11 s would land in the second window, which leases 4 to 6 fill: it moves a second on.
    lessor.grant(8n, 11);
    lessor.grant(9n, 30);
    const start = clock.now;
    lessor.promote(0);
    // As the server does: revoke what is reported (else it is reported again later).
    const due = (atMs: number) => {
      clock.now = start + atMs;
      const ids = lessor.expired(100);
      for (const id of ids) lessor.revoke(id);
      return ids;
    };
    deepStrictEqual(due(9_999), []);
    deepStrictEqual(due(10_000), [1n, 2n, 3n]);
    deepStrictEqual(due(10_999), []);
    deepStrictEqual(due(11_000), [4n, 5n, 6n]);
    deepStrictEqual(due(12_000), [7n, 8n]);
    deepStrictEqual(due(29_999), []);
    deepStrictEqual(due(30_000), [9n]);
  });

  await t.step("promotion with few leases moves nothing", () => {
    const { clock, lessor } = setup();
    for (let id = 1n; id <= 100n; id++) lessor.grant(id, 5);
    const start = clock.now;
    lessor.promote(0);
    clock.now = start + 5_000;
    strictEqual(lessor.expired(1000).length, 100);
  });
});

Deno.test("recover", async (t) => {
  await t.step("replaces state from the backend without persisting again", () => {
    const { lessor, calls } = setup();
    lessor.grant(99n, 10);
    calls.length = 0;
    const orphans = lessor.recover(
      [{ id: 1n, ttlSeconds: 10 }, { id: 2n, ttlSeconds: 1 }],
      [
        { key: utf8("b"), lease: 1n },
        { key: utf8("a"), lease: 1n },
        { key: utf8("c"), lease: 2n },
        { key: utf8("orphan"), lease: 3n },
      ],
    );
    strictEqual(orphans, 1);
    deepStrictEqual(calls, []);
    strictEqual(lessor.exists(99n), false);
    deepStrictEqual(lessor.timeToLive(1n), {
      ttlSeconds: 10,
      grantedTtlSeconds: 10,
      keys: [utf8("a"), utf8("b")],
    });
    // Stored TTLs below the minimum are raised, as at grant.
    strictEqual(lessor.timeToLive(2n)?.grantedTtlSeconds, 2);
    deepStrictEqual(lessor.revoke(2n), [utf8("c")]);
    throws(() => lessor.grant(1n, 5), LeaseExistsError);
  });

  await t.step("recovered leases expire once promoted", () => {
    const { clock, lessor } = setup();
    lessor.recover([{ id: 1n, ttlSeconds: 3 }], []);
    clock.now += 60_000;
    deepStrictEqual(lessor.expired(10), []);
    lessor.promote(0);
    clock.now += 3_000;
    deepStrictEqual(lessor.expired(10), [1n]);
  });

  await t.step("a primary that recovers restarts TTLs and forgets old expiries", () => {
    const { clock, lessor } = primary();
    lessor.grant(5n, 2);
    lessor.recover([{ id: 1n, ttlSeconds: 3 }], []);
    clock.now += 2_999;
    deepStrictEqual(lessor.expired(10), []);
    clock.now += 1;
    deepStrictEqual(lessor.expired(10), [1n]);
  });
});
