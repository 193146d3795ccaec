import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  PutRequestSchema,
  WatchRequestSchema,
  WatchResponseSchema,
} from "../proto/gen/etcd/etcdserverpb/rpc_pb.ts";
import { Event_EventType } from "../proto/gen/etcd/mvccpb/kv_pb.ts";
import { fromUtf8, utf8 } from "../internal/bytes.ts";
import { grpcPrefixBytes } from "./grpc_raw.ts";
import {
  decodeTimestampValue,
  defaultPutRate,
  encodeTimestampValue,
  nextPutInMs,
  parseVmRssBytes,
  PutFrames,
  putsDue,
  scanWatchResponse,
  timestampValueBytes,
  watchCreateFrame,
  watchersPerStream,
  watchProgressFrame,
  watchTarget,
} from "./watch.ts";

function unframe(frame: Uint8Array): Uint8Array {
  strictEqual(frame[0], 0);
  strictEqual(new DataView(frame.buffer, frame.byteOffset).getUint32(1), frame.length - 5);
  return frame.subarray(grpcPrefixBytes);
}

Deno.test("a send time survives the put value round trip exactly", () => {
  for (const t of [0, 1.5, 123456.789012, performance.now()]) {
    const value = encodeTimestampValue(t);
    strictEqual(value.length, timestampValueBytes);
    strictEqual(decodeTimestampValue(value), t);
  }
});

Deno.test("scanWatchResponse reads ids, flags and the send time of each put event", async (t) => {
  const kv = (value: Uint8Array) => ({
    key: utf8("bench-watch/r1/key"),
    value,
    createRevision: 5n,
    modRevision: 9n,
    version: 3n,
  });
  const message = toBinary(
    WatchResponseSchema,
    create(WatchResponseSchema, {
      header: { clusterId: 14841639068965178418n, memberId: 10276657743932975437n, revision: 9n },
      watchId: 2n ** 40n,
      events: [
        { type: Event_EventType.PUT, kv: kv(encodeTimestampValue(10.25)) },
        { type: Event_EventType.DELETE, kv: kv(new Uint8Array()) },
        { type: Event_EventType.PUT, kv: kv(utf8("not a time")) },
        {
          type: Event_EventType.PUT,
          kv: kv(encodeTimestampValue(11.5)),
          prevKv: kv(encodeTimestampValue(10.25)),
        },
      ],
    }),
  );
  await t.step("events", () => {
    const seen: number[] = [];
    const scan = scanWatchResponse(message, (ms) => seen.push(ms));
    deepStrictEqual(seen, [10.25, 11.5], "the kv's value, not the prev_kv's");
    strictEqual(scan.events, 2);
    strictEqual(scan.foreignEvents, 2);
    strictEqual(scan.watchId, 2 ** 40);
    strictEqual(scan.created, false);
    strictEqual(scan.canceled, false);
  });
  await t.step("created and canceled", () => {
    const created = scanWatchResponse(
      toBinary(WatchResponseSchema, create(WatchResponseSchema, { watchId: 7n, created: true })),
      () => noEventExpected(),
    );
    strictEqual(created.created, true);
    strictEqual(created.watchId, 7);
    const canceled = scanWatchResponse(
      toBinary(
        WatchResponseSchema,
        create(WatchResponseSchema, { canceled: true, cancelReason: "mvcc: compacted" }),
      ),
      () => noEventExpected(),
    );
    strictEqual(canceled.canceled, true);
    strictEqual(canceled.cancelReason, "mvcc: compacted");
    strictEqual(canceled.events, 0);
  });
  await t.step("truncated bytes are a RangeError", () => {
    throws(() => scanWatchResponse(message.subarray(0, message.length - 3), () => {}), RangeError);
  });
});

function noEventExpected(): never {
  throw new Error("no event expected");
}

Deno.test("watch targets: one key, or a prefix with its range end; fresh per run", () => {
  const key = watchTarget("watch-key", "r1");
  strictEqual(fromUtf8(key.key), "bench-watch/r1/key");
  strictEqual(key.rangeEnd.length, 0);
  const prefix = watchTarget("watch-prefix", "r2");
  strictEqual(fromUtf8(prefix.key), "bench-watch/r2/p/");
  strictEqual(fromUtf8(prefix.rangeEnd), "bench-watch/r2/p0");
  notDeepStrictEqual(watchTarget("watch-key", "r3").key, key.key);

  const request = fromBinary(WatchRequestSchema, unframe(watchCreateFrame(prefix)));
  strictEqual(request.requestUnion.case, "createRequest");
  deepStrictEqual(request.requestUnion.value?.key, prefix.key);
  deepStrictEqual(request.requestUnion.value?.rangeEnd, prefix.rangeEnd);
  strictEqual(
    fromBinary(WatchRequestSchema, unframe(watchProgressFrame)).requestUnion.case,
    "progressRequest",
  );
});

Deno.test("PutFrames stamp each put with its send time, on the watched key(s)", async (t) => {
  await t.step("one key", () => {
    const target = watchTarget("watch-key", "r1");
    const frames = new PutFrames(target, 8, 100, 1);
    const a = frames.next(1.5);
    const b = frames.next(2.5);
    const put = fromBinary(PutRequestSchema, unframe(a));
    deepStrictEqual(put.key, target.key);
    strictEqual(decodeTimestampValue(put.value), 1.5);
    strictEqual(decodeTimestampValue(fromBinary(PutRequestSchema, unframe(b)).value), 2.5);
    strictEqual(decodeTimestampValue(put.value), 1.5, "each frame is a copy");
  });
  await t.step("random keys under the prefix, inside the keyspace", () => {
    const target = watchTarget("watch-prefix", "r2");
    const frames = new PutFrames(target, 4, 50, 7);
    const keys = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const put = fromBinary(PutRequestSchema, unframe(frames.next(i)));
      const key = fromUtf8(put.key);
      ok(key.startsWith("bench-watch/r2/p/"), key);
      const digits = key.slice("bench-watch/r2/p/".length);
      ok(/^\d{4}$/.test(digits) && Number(digits) < 50, key);
      strictEqual(decodeTimestampValue(put.value), i);
      keys.add(key);
    }
    ok(keys.size > 30, `spread over the keyspace (${keys.size} keys)`);
  });
});

Deno.test("putsDue keeps a steady rate and catches up after a late tick", () => {
  strictEqual(putsDue(0, 1000, 0), 0);
  strictEqual(putsDue(10, 1000, 0), 10);
  strictEqual(putsDue(10, 1000, 10), 0);
  strictEqual(putsDue(12.9, 1000, 10), 2);
  strictEqual(putsDue(100, 1000, 12), 88, "a late tick sends what fell due meanwhile");
  strictEqual(putsDue(5, 100, 3), 0, "never negative");
  strictEqual(putsDue(1000, 100, 0), 100);
});

Deno.test("nextPutInMs waits until the next put is due, not at all when one is due", () => {
  // 100 puts/s: put n+1 is due at (n + 1) * 10 ms.
  strictEqual(nextPutInMs(0, 100, 0), 10);
  strictEqual(nextPutInMs(4, 100, 0), 6);
  strictEqual(nextPutInMs(25, 100, 2), 5);
  strictEqual(nextPutInMs(35, 100, 2), 0, "late: due now");
  // Whatever the wait, putsDue finds exactly one put due once it has passed.
  for (const [elapsed, issued] of [[0, 0], [4, 0], [25, 2], [1234.5, 123]]) {
    const at = elapsed + nextPutInMs(elapsed, 100, issued);
    strictEqual(putsDue(at, 100, issued) >= 1, true, `due at ${at}`);
    strictEqual(putsDue(at - 0.5, 100, issued), 0, `not due before ${at}`);
  }
});

Deno.test("watchersPerStream spreads watchers evenly, never opening an empty stream", () => {
  for (const [watchers, streams] of [[100, 16], [1000, 16], [5, 16], [16, 16], [1, 1]]) {
    const counts = watchersPerStream(watchers, streams);
    strictEqual(counts.length, Math.min(watchers, streams));
    strictEqual(counts.reduce((a, b) => a + b, 0), watchers);
    ok(Math.max(...counts) - Math.min(...counts) <= 1 && Math.min(...counts) >= 1);
  }
});

Deno.test("parseVmRssBytes reads VmRSS in bytes", () => {
  const status = "Name:\tetcd\nVmPeak:\t  900000 kB\nVmRSS:\t   24584 kB\nRssAnon:\t 10000 kB\n";
  strictEqual(parseVmRssBytes(status), 24584 * 1024);
  strictEqual(parseVmRssBytes("Name:\tkthreadd\n"), undefined);
});

Deno.test("the default put rate offers 100k events/s whatever the watcher count", () => {
  strictEqual(defaultPutRate(100), 1000);
  strictEqual(defaultPutRate(1000), 100);
  strictEqual(defaultPutRate(1_000_000), 1, "at least one put per second");
});
