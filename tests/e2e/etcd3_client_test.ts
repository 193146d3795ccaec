/**
 * The npm `etcd3` client (grpc-js over HTTP/2) against our server, each scenario also run
 * against real etcd 3.4 so the expectations are etcd's own: KV, prefix reads, txns, watches
 * with previous values, leases kept alive, revoked and expired, locks and elections.
 *
 * @module
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
// The package's own types would replace Deno's node:http2 types for every test (see the file).
// @ts-types="./etcd3_api.d.ts"
import { Etcd3, EtcdLockFailedError, type IKeyValue } from "etcd3";
import { ETCD_BIN, type Impl, requireBinary, startMember } from "./harness.ts";
import { startInProcess } from "../support/in_process.ts";

/**
 * A short election timeout makes the smallest lease TTL the members allow 1 s (etcd: 1.5
 * election timeouts, rounded up to whole seconds), so lease tests wait little.
 */
const fastLeaseFlags = ["--heartbeat-interval=100", "--election-timeout=500"];
/** The smallest TTL both members grant with {@linkcode fastLeaseFlags}. */
const minLeaseTtlSeconds = 1;
/** Longest wait for any one expected change (a watch event, an election, an expiry). */
const waitTimeoutMs = 10_000;

/** A member to point the client at. */
interface Target {
  url: string;
  stop(): Promise<void>;
}

async function startTarget(impl: Impl): Promise<Target> {
  if (impl === "ours") {
    const member = await startInProcess(fastLeaseFlags);
    return { url: member.clientUrl, stop: () => member.stop() };
  }
  const member = await startMember({ impl, flags: fastLeaseFlags });
  return { url: member.clientUrl, stop: () => member.stop() };
}

const etcdInstalled = requireBinary(ETCD_BIN);
const impls: Impl[] = ["ours", "etcd"];

/** Registers `body` as one test per implementation, each with its own member and client. */
function clientTest(name: string, body: (client: Etcd3, target: Target) => Promise<void>): void {
  for (const impl of impls) {
    Deno.test({
      name: `etcd3 client against ${impl}: ${name}`,
      ignore: impl === "etcd" && !etcdInstalled,
      async fn() {
        const target = await startTarget(impl);
        const client = new Etcd3({ hosts: target.url });
        try {
          await body(client, target);
        } finally {
          client.close();
          await target.stop();
        }
      },
    });
  }
}

/** Resolves with `promise`, or fails naming `what` after {@linkcode waitTimeoutMs}. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), waitTimeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` (every 50 ms) until it holds; fails after {@linkcode waitTimeoutMs}. */
async function until(what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + waitTimeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

clientTest("put, get, delete and prefix reads", async (client) => {
  await client.put("fruit/apple").value("red");
  await client.put("fruit/banana").value("yellow");
  await client.put("fruity").value("not in the prefix");
  strictEqual(await client.get("fruit/apple").string(), "red");
  strictEqual(await client.get("fruit/missing").string(), null);

  deepStrictEqual(await client.getAll().prefix("fruit/").strings(), {
    "fruit/apple": "red",
    "fruit/banana": "yellow",
  });
  strictEqual(await client.getAll().prefix("fruit/").count(), 2);
  deepStrictEqual(await client.getAll().prefix("fruit").keys(), [
    "fruit/apple",
    "fruit/banana",
    "fruity",
  ]);

  const deleted = await client.delete().key("fruit/apple").getPrevious();
  deepStrictEqual(deleted.map((kv) => kv.value.toString()), ["red"]);
  const res = await client.delete().prefix("fruit");
  strictEqual(res.deleted, "2");
  strictEqual(await client.getAll().count(), 0);
});

clientTest(
  "txn: if(...).then(...).else(...) takes the branch the compare chooses",
  async (client) => {
    await client.put("config").value("v1");
    const first = await client
      .if("config", "Value", "==", "v1")
      .then(client.put("config").value("v2"), client.put("changed").value("yes"))
      .else(client.get("config"))
      .commit();
    strictEqual(first.succeeded, true);
    strictEqual(await client.get("config").string(), "v2");
    strictEqual(await client.get("changed").string(), "yes");

    // The compare fails now: the else branch reads, and nothing is written.
    const second = await client
      .if("config", "Value", "==", "v1")
      .then(client.put("config").value("v3"))
      .else(client.get("config"))
      .commit();
    strictEqual(second.succeeded, false);
    strictEqual(second.responses[0].response_range.kvs[0].value.toString(), "v2");
    strictEqual(second.header.revision, first.header.revision);

    const created = await client.if("config", "Create", ">", 0).then(client.delete().key("config"))
      .commit();
    strictEqual(created.succeeded, true);
    strictEqual(await client.get("config").string(), null);
  },
);

clientTest("watch with previous values sees puts and deletes in order", async (client) => {
  const watcher = await client.watch().prefix("watched/").withPreviousKV().create();
  try {
    type Seen = { type: string; key: string; value: string; prev: string | undefined };
    const seen: Seen[] = [];
    let wake: () => void = () => {};
    const record = (type: string) => (kv: IKeyValue, prev?: IKeyValue) => {
      seen.push({
        type,
        key: kv.key.toString(),
        value: kv.value.toString(),
        prev: prev?.value.toString(),
      });
      wake();
    };
    watcher.on("put", record("put"));
    watcher.on("delete", record("delete"));

    await client.put("watched/a").value("1");
    await client.put("unwatched").value("x");
    await client.put("watched/a").value("2");
    await client.delete().key("watched/a");
    await within(
      "three events",
      new Promise<void>((resolve) => {
        wake = () => seen.length >= 3 && resolve();
        wake();
      }),
    );
    deepStrictEqual(seen, [
      { type: "put", key: "watched/a", value: "1", prev: undefined },
      { type: "put", key: "watched/a", value: "2", prev: "1" },
      { type: "delete", key: "watched/a", value: "", prev: "2" },
    ]);
  } finally {
    await watcher.cancel();
  }
});

clientTest(
  "a lease kept alive outlives its TTL; revoke and expiry delete its keys",
  async (client) => {
    const kept = client.lease(minLeaseTtlSeconds);
    const lost: unknown[] = [];
    kept.on("lost", (err) => lost.push(err));
    try {
      await kept.put("leased/kept").value("alive");
      const grantedAt = Date.now();
      // The client renews every TTL/3: await renewals spanning more than twice the TTL.
      let renewals = 0;
      await within(
        "keep-alives spanning two TTLs",
        new Promise<void>((resolve) => {
          kept.on("keepaliveSucceeded", (res) => {
            strictEqual(Number(res.TTL), minLeaseTtlSeconds);
            renewals++;
            if (Date.now() - grantedAt > 2 * 1000 * minLeaseTtlSeconds) resolve();
          });
        }),
      );
      ok(renewals >= 3, `only ${renewals} keep-alives`);
      strictEqual(await client.get("leased/kept").string(), "alive");
      deepStrictEqual(lost, []);

      await kept.revoke();
      strictEqual(await client.get("leased/kept").string(), null);
    } finally {
      if (!kept.revoked()) await kept.revoke().catch(() => {});
    }

    // Without keep-alives the lease expires and takes its key along.
    const expiring = client.lease(minLeaseTtlSeconds, { autoKeepAlive: false });
    await expiring.put("leased/expiring").value("soon gone");
    const putAt = Date.now();
    await until("the lease to expire", async () => (await client.get("leased/expiring")) === null);
    const lived = Date.now() - putAt;
    // Not before its TTL (give a little for clocks and the put's own round trip).
    ok(lived >= 1000 * minLeaseTtlSeconds - 200, `the key lived only ${lived} ms`);
    // Its id is gone too: a keep-alive now fails.
    await rejects(expiring.keepaliveOnce());
  },
);

clientTest(
  "lock: one holder at a time; the next contender gets it after release",
  async (client, target) => {
    const contenders = Array.from({ length: 5 }, () => client.lock("jobs/lock").ttl(5));
    const outcomes = await Promise.allSettled(contenders.map((lock) => lock.acquire()));
    const holders = outcomes.filter((o) => o.status === "fulfilled");
    strictEqual(holders.length, 1, "exactly one concurrent contender gets the lock");
    for (const o of outcomes) {
      if (o.status === "rejected") ok(o.reason instanceof EtcdLockFailedError, String(o.reason));
    }
    const holder = contenders[outcomes.findIndex((o) => o.status === "fulfilled")];

    // While it is held, another client is refused; once released, that client gets it.
    const other = new Etcd3({ hosts: target.url });
    try {
      const second = other.lock("jobs/lock").ttl(5);
      await rejects(second.acquire(), EtcdLockFailedError);
      await holder.release();
      await second.acquire();
      const leaseId = await second.leaseId();
      strictEqual(
        (await client.get("jobs/lock").exec()).kvs[0].lease,
        leaseId,
        "the lock key belongs to the new holder's lease",
      );
      await second.release();
      strictEqual(await client.get("jobs/lock").string(), null);
    } finally {
      other.close();
    }
  },
);

clientTest("election: campaign, observe the leader, resign hands over", async (client) => {
  const election = client.election("leader-test", 5);
  const alice = election.campaign("alice");
  await within("alice to be elected", alice.wait());
  strictEqual(await election.leader(), "alice");

  const observer = await election.observe();
  try {
    strictEqual(observer.leader(), "alice");
    const bob = election.campaign("bob");
    let bobElected = false;
    bob.on("elected", () => bobElected = true);
    // Bob waits behind alice: his key exists, but he is not the leader.
    await until(
      "bob's campaign key",
      async () => (await client.getAll().prefix("election/leader-test/").count()) === 2,
    );
    strictEqual(bobElected, false);

    const changed = new Promise<string | undefined>((resolve) => observer.on("change", resolve));
    await alice.resign();
    await within("bob to be elected", bob.wait());
    strictEqual(await within("the observer to see bob", changed), "bob");
    strictEqual(await election.leader(), "bob");
    await bob.resign();
    strictEqual(await election.leader(), undefined);
  } finally {
    await observer.cancel();
  }
});
