/**
 * Differential test of Watch and Lease: one scenario against a fresh etcd 3.4 and a fresh
 * member of ours, through etcdctl (`watch` with prefix, range, `--rev` replay, `--prev-kv`, a
 * compacted `--rev`, `watch -i` with `progress`; `lease grant/revoke/timetolive/list/
 * keep-alive --once`, `put --lease` with a missing lease) and through the JSON gateway
 * (`/v3/watch` create + events + cancel, `/v3/lease/{grant,timetolive,leases,revoke,
 * keepalive}`). Every observation (exit code and output, or HTTP status, content types and
 * body) must match once run-specific values are masked: cluster and member IDs, raft term,
 * lease IDs etcd chose, a remaining TTL a few seconds under its granted TTL, and the order of
 * a lease's keys (random in etcd).
 *
 * Watch commands stream forever, so each runs until the output it must reach (or a bounded
 * wait) and is then stopped; events are always replayed from an explicit `--rev`, so when a
 * watch is established does not change what it prints.
 *
 * Set `DIFF_AGAINST=etcd` to run etcd against etcd, which checks the scenario itself, and
 * `DIFF_PRINT=1` to print every observation before masking.
 *
 * @module
 */
import {
  ETCD_BIN,
  ETCDCTL_BIN,
  type Impl,
  type Member,
  requireBinary,
  runEtcdctl,
  startMember,
} from "./harness.ts";
import { lineDiff, Normalizer } from "./normalize.ts";

/** The longest a watch may take to print what it must before it is stopped. */
const watchWaitMs = 5_000;
/** The longest a gateway stream may take to send the lines it must. */
const streamWaitMs = 5_000;
/** Granted TTLs of the scenario's leases; a remaining TTL just under one is masked. */
const grantedTtls = [300, 600, 900];
/** How far under its granted TTL a remaining TTL may be and still be masked. */
const ttlSlackSeconds = 5;

/** One observation of the scenario, compared between the two members. */
interface Observation {
  label: string;
  text: string;
}

/** An etcdctl run that streams: stdout and stderr as they arrive, and its exit. */
class StreamingEtcdctl {
  stdout = "";
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #drained: Promise<unknown>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #status: Deno.CommandStatus | undefined;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(endpoint: string, args: string[], interactive: boolean) {
    this.#child = new Deno.Command(ETCDCTL_BIN, {
      args: [`--endpoints=${endpoint}`, "--dial-timeout=3s", "--command-timeout=10s", ...args],
      stdin: interactive ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: { ETCDCTL_API: "3", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    }).spawn();
    this.#stdin = interactive ? this.#child.stdin.getWriter() : undefined;
    this.#drained = Promise.all([
      this.#pump(this.#child.stdout, (t) => this.stdout += t),
      this.#pump(this.#child.stderr, (t) => this.stderr += t),
    ]);
    this.status = this.#child.status.then((s) => this.#status = s);
  }

  async #pump(stream: ReadableStream<Uint8Array>, sink: (text: string) => void): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) sink(text);
  }

  /** Types a line on standard input (interactive mode). */
  async type(line: string): Promise<void> {
    await this.#stdin!.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Waits (bounded) until `done(stdout)` holds or the process exits; true if it held. */
  async until(done: (stdout: string) => boolean): Promise<boolean> {
    const deadline = Date.now() + watchWaitMs;
    while (Date.now() < deadline && this.#status === undefined) {
      if (done(this.stdout)) return true;
      await Promise.race([this.status, new Promise((r) => setTimeout(r, 20))]);
    }
    return done(this.stdout);
  }

  /** Closes standard input, if piped, and waits (bounded) for the exit, then stops it. */
  async finish(): Promise<{ code: number | "stopped"; stdout: string; stderr: string }> {
    await this.#stdin?.close().catch(() => {});
    const graceOver = new Promise<"timeout">((r) => {
      const timer = setTimeout(() => r("timeout"), this.#stdin ? watchWaitMs : 0);
      this.status.finally(() => clearTimeout(timer));
    });
    const first = await Promise.race([this.status, graceOver]);
    if (first === "timeout") {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.status;
    await this.#drained;
    return {
      code: first === "timeout" ? "stopped" : this.#status!.code,
      stdout: this.stdout,
      stderr: this.stderr,
    };
  }

  /** Stops a watch that streams forever (SIGKILL: etcdctl has no clean stop). */
  async stop(): Promise<{ code: number | "stopped"; stdout: string; stderr: string }> {
    const exitedAlready = this.#status !== undefined;
    if (!exitedAlready) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.status;
    await this.#drained;
    return {
      code: exitedAlready ? this.#status!.code : "stopped",
      stdout: this.stdout,
      stderr: this.stderr,
    };
  }
}

/** Lines of a streaming gateway answer, read with a bounded wait. */
class GatewayStream {
  text = "";
  readonly #reader: ReadableStreamDefaultReader<string>;
  #pending: Promise<ReadableStreamReadResult<string>> | undefined;
  #done = false;

  constructor(response: Response) {
    this.#reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Reads until `n` complete lines arrived, the body ended, or the wait ran out. */
  async lines(n: number): Promise<string[]> {
    const deadline = Date.now() + streamWaitMs;
    while (!this.#done && this.text.split("\n").length <= n && Date.now() < deadline) {
      this.#pending ??= this.#reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), deadline - Date.now());
      });
      const step = await Promise.race([this.#pending, timeout]);
      clearTimeout(timer);
      if (step === "timeout") break;
      this.#pending = undefined;
      if (step.done) this.#done = true;
      else this.text += step.value;
    }
    return this.text.split("\n").slice(0, n);
  }

  /** Reads the rest of a body that ends by itself. */
  async rest(): Promise<string> {
    await this.lines(Number.MAX_SAFE_INTEGER);
    return this.text;
  }

  /** Drops the connection (the client goes away). */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** What a scenario step can do against one member, recording what it saw. */
class ScenarioContext {
  readonly observations: Observation[] = [];
  readonly #norm: Normalizer;
  readonly #captured = new Map<string, string>();

  constructor(readonly member: Member) {
    this.#norm = new Normalizer([member.clientUrl]);
  }

  /** `{name}` in an argument becomes the value captured under `name`. */
  #fill(arg: string): string {
    return arg.replace(/\{(\w+)\}/g, (_, name: string) => this.#captured.get(name) ?? "");
  }

  #record(label: string, text: string): void {
    this.observations.push({ label, text: maskUnstable(this.#norm.text(text)) });
    if (Deno.env.get("DIFF_PRINT")) console.log(`### ${label}\n${text}`);
  }

  /** Runs etcdctl to its end; records exit code, stdout and stderr. */
  async ctl(args: string[], capture?: string): Promise<string> {
    const filled = args.map((a) => this.#fill(a));
    const r = await runEtcdctl({ endpoint: this.member.clientUrl, args: filled });
    if (capture) {
      const id = /lease ([0-9a-f]+) granted/.exec(r.stdout)?.[1];
      if (id) {
        this.#captured.set(capture, id);
        this.#norm.alias(BigInt(`0x${id}`), capture);
      }
    }
    this.#record(
      `etcdctl ${args.join(" ")}`,
      `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`,
    );
    return r.stdout;
  }

  /**
   * Runs `etcdctl watch ...`, lets `during` act while it runs, waits until stdout holds
   * `lines` newlines (or it exits: `Infinity` waits for that), then stops it; records what it
   * printed.
   */
  async watch(args: string[], lines: number, during?: () => Promise<void>): Promise<void> {
    const run = new StreamingEtcdctl(this.member.clientUrl, args.map((a) => this.#fill(a)), false);
    try {
      await during?.();
      await run.until((out) => newlines(out) >= lines);
    } finally {
      const r = await run.stop();
      this.#record(
        `etcdctl ${args.join(" ")}`,
        `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`,
      );
    }
  }

  /**
   * Runs `etcdctl watch -i`, typing each line once stdout shows what the line before it
   * should have printed (`after`), then closes standard input.
   */
  async interactiveWatch(script: { line: string; after: (stdout: string) => boolean }[]) {
    const run = new StreamingEtcdctl(this.member.clientUrl, ["watch", "-i"], true);
    try {
      for (const { line, after } of script) {
        await run.type(line);
        await run.until(after);
      }
    } finally {
      const r = await run.finish();
      this.#record(
        `etcdctl watch -i <<< ${JSON.stringify(script.map((s) => s.line))}`,
        `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`,
      );
    }
  }

  /** POSTs (or sends `method`) a body to a gateway path; returns the answer unread. */
  async request(path: string, body: string, method = "POST"): Promise<Response> {
    return await fetch(`${this.member.clientUrl}${path}`, {
      method,
      body: method === "GET" || method === "HEAD" ? undefined : body,
      // Generous: it bounds the whole exchange, streams included; each wait has its own bound.
      signal: AbortSignal.timeout(3 * streamWaitMs),
    });
  }

  /** Records an answer's status, content types and (masked) body. */
  recordHttp(label: string, response: Response, body: string): void {
    const type = response.headers.get("content-type") ?? "-";
    // Unary answers are compared without Grpc-Metadata-Content-Type, which etcd sends and
    // this server's unary gateway does not (reported, outside this test's scope).
    const streaming = /\/(watch|keepalive)$/.test(new URL(response.url).pathname);
    const grpcType = streaming
      ? `grpc-metadata-content-type: ${response.headers.get("grpc-metadata-content-type") ?? "-"}\n`
      : "";
    this.#record(label, `HTTP ${response.status}\ncontent-type: ${type}\n${grpcType}${body}`);
  }

  /** A whole unary or self-ending gateway exchange. */
  async http(path: string, body: string, method = "POST"): Promise<void> {
    const response = await this.request(path, body, method);
    const text = await new GatewayStream(response).rest();
    this.recordHttp(`${method} ${path} ${body}`, response, text);
  }
}

function newlines(text: string): number {
  return text.match(/\n/g)?.length ?? 0;
}

/**
 * Masks what is not the same from one run to the next even on etcd: a remaining TTL at most
 * {@linkcode ttlSlackSeconds} under a granted TTL, and the order of a lease's keys (etcd
 * lists them from a Go map, in random order).
 */
function maskUnstable(text: string): string {
  const sortedList = (list: string, separator: string) =>
    list.split(separator).sort().join(separator);
  return text
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_, keys: string) => {
      return `attached keys([${sortedList(keys, " ")}])`;
    })
    .replace(/"keys":\[([^\]]*)\]/g, (_, keys: string) => `"keys":[${sortedList(keys, ",")}]`)
    .replace(
      /(remaining\(|"ttl":|"TTL":"?)(\d+)/g,
      (whole, prefix: string, digits: string) => {
        const ttl = Number(digits);
        const granted = grantedTtls.find((g) => ttl <= g && ttl >= g - ttlSlackSeconds);
        return granted === undefined ? whole : `${prefix}<about ${granted}>`;
      },
    );
}

const b64 = (s: string) => btoa(s);

/** The scenario. A fresh member starts at revision 1, so revisions are the same on both. */
async function scenario(ctx: ScenarioContext): Promise<void> {
  // History: foo@2, foo1@3, fop@4, foo@5, del foo1@6, zoo@7.
  await ctx.ctl(["put", "foo", "a"]);
  await ctx.ctl(["put", "foo1", "b"]);
  await ctx.ctl(["put", "fop", "c"]);
  await ctx.ctl(["put", "foo", "d"]);
  await ctx.ctl(["del", "foo1"]);
  await ctx.ctl(["put", "zoo", "z"]);

  // Replays from --rev: prefix, range, prev-kv, json.
  await ctx.watch(["watch", "foo", "--prefix", "--rev", "2"], 13);
  await ctx.watch(["watch", "foo", "foo1", "--rev", "2"], 6);
  await ctx.watch(["watch", "fo", "--prefix", "--rev", "4", "--prev-kv"], 13);
  await ctx.watch(["watch", "foo", "--prefix", "--rev", "5", "-w", "json"], 1);
  // Live events, at a revision the watch names so its start time does not matter.
  await ctx.watch(["watch", "zoo", "--rev", "8"], 6, async () => {
    await ctx.ctl(["put", "zoo", "z2"]);
    await ctx.ctl(["put", "other", "o"]);
    await ctx.ctl(["put", "zoo", "z3"]);
  });
  // History now runs to 10. A compacted --rev: etcdctl prints the compaction and exits.
  await ctx.ctl(["compaction", "5"]);
  await ctx.watch(["watch", "foo", "--rev", "3"], Infinity);
  await ctx.interactiveWatch([
    { line: "watch foo --prefix --rev 5", after: (out) => out.includes("DELETE\nfoo1\n") },
    { line: "progress", after: (out) => out.includes("progress notify:") },
  ]);

  // Leases through etcdctl.
  await ctx.ctl(["lease", "grant", "600"], "lease1");
  await ctx.ctl(["lease", "grant", "900"], "lease2");
  await ctx.ctl(["put", "lk1", "v1", "--lease={lease1}"]); // 11
  await ctx.ctl(["put", "lk2", "v2", "--lease={lease1}"]); // 12
  await ctx.ctl(["put", "lk3", "v3", "--lease={lease2}"]); // 13
  await ctx.ctl(["lease", "timetolive", "{lease1}"]);
  await ctx.ctl(["lease", "timetolive", "{lease1}", "--keys"]);
  await ctx.ctl(["lease", "timetolive", "{lease1}", "--keys", "-w", "json"]);
  await ctx.ctl(["lease", "list"]);
  await ctx.ctl(["lease", "list", "-w", "json"]);
  await ctx.ctl(["lease", "keep-alive", "--once", "{lease1}"]);
  await ctx.ctl(["lease", "keep-alive", "--once", "{lease2}", "-w", "json"]);
  await ctx.ctl(["lease", "keep-alive", "--once", "1234abcd"]);
  await ctx.ctl(["lease", "timetolive", "1234abcd"]);
  await ctx.ctl(["lease", "timetolive", "1234abcd", "-w", "json"]);
  await ctx.ctl(["put", "k", "v", "--lease=1234abcd"]);
  await ctx.ctl(["lease", "grant", "9999999999"]);
  await ctx.ctl(["lease", "revoke", "{lease1}"]); // 14: deletes lk1 and lk2 together
  await ctx.ctl(["lease", "revoke", "{lease1}"]);
  await ctx.ctl(["lease", "timetolive", "{lease1}"]);
  await ctx.ctl(["get", "lk", "--prefix"]);
  await ctx.watch(["watch", "lk", "--prefix", "--rev", "11"], 15);
  await ctx.watch(["watch", "lk", "--prefix", "--rev", "14", "-w", "json"], 1);

  // Leases through the JSON gateway (fixed IDs, so nothing needs masking).
  await ctx.http("/v3/lease/grant", '{"TTL":"300","ID":"7000"}');
  await ctx.http("/v3/lease/grant", '{"TTL":"300","ID":"7000"}');
  await ctx.http("/v3/lease/grant", '{"TTL":"9999999999"}');
  await ctx.http("/v3/kv/put", `{"key":"${b64("gk")}","value":"${b64("v")}","lease":"7000"}`);
  await ctx.http("/v3/lease/timetolive", '{"ID":"7000","keys":true}');
  await ctx.http("/v3/kv/lease/timetolive", '{"ID":"7000"}');
  await ctx.http("/v3/lease/timetolive", '{"ID":"7001"}');
  await ctx.http("/v3/lease/leases", "{}");
  await ctx.http("/v3/lease/keepalive", '{"ID":"7000"}');
  // (Not `null` last: etcd then drops the last answer about one time in ten.)
  await ctx.http("/v3/lease/keepalive", '{"ID":"7000"} null {"ID":"7001"}\n{"ID":7000}');
  await ctx.http("/v3beta/lease/keepalive", '{"ID":"7000"}');
  await ctx.http("/v3/lease/keepalive", "");
  await ctx.http("/v3/lease/keepalive", '{"ID":"7000"');
  await ctx.http("/v3/lease/keepalive", '{"ID":"abc"}');
  await ctx.http("/v3/lease/keepalive", "[1]");
  await ctx.http("/v3/lease/keepalive", '{"ID":"7000"} {"ID":1.5} {"ID":"7000"}');
  await ctx.http("/v3/lease/keepalive", "", "GET");
  await ctx.http("/v3/lease/revoke", '{"ID":"7000"}'); // 16: deletes gk
  await ctx.http("/v3/lease/revoke", '{"ID":"7000"}');
  await ctx.http("/v3/lease/timetolive", '{"ID":"7000"}');
  await ctx.http("/v3/lease/keepalive", '{"ID":"7000"}');

  // Watch through the gateway: two watches, the second canceled at once, then live events
  // for the first only (it starts at the next revision, so it misses none).
  const watchBody = [
    { create_request: { key: b64("gw/"), range_end: b64("gw0"), start_revision: "17" } },
    { create_request: { key: b64("gx"), prev_kv: true } },
    { cancel_request: { watch_id: "1" } },
  ].map((r) => JSON.stringify(r)).join("\n");
  const watching = await ctx.request("/v3/watch", watchBody);
  const stream = new GatewayStream(watching);
  try {
    await stream.lines(3);
    await ctx.ctl(["put", "gw/a", "1"]); // 17
    await ctx.ctl(["put", "gx", "2"]); // 18
    await ctx.ctl(["put", "gw/b", "3"]); // 19
    await ctx.ctl(["del", "gw/a"]); // 20
    await stream.lines(6);
  } finally {
    await stream.cancel();
  }
  ctx.recordHttp(`POST /v3/watch ${watchBody}`, watching, stream.text);
  // A compacted start revision: created, then canceled with the compact revision.
  const compactedBody = JSON.stringify({
    create_request: { key: b64("foo"), start_revision: "2" },
  });
  const compacted = await ctx.request("/v3/watch", compactedBody);
  const compactedStream = new GatewayStream(compacted);
  try {
    await compactedStream.lines(2);
  } finally {
    await compactedStream.cancel();
  }
  ctx.recordHttp(`POST /v3/watch ${compactedBody}`, compacted, compactedStream.text);
  await ctx.http("/v3/watch", "xyz");
  await ctx.http("/v3/watch", "", "PUT");
}

/** Runs the scenario against a fresh member of `impl`. */
async function observe(impl: Impl): Promise<Observation[]> {
  const member = await startMember({ impl });
  try {
    const ctx = new ScenarioContext(member);
    await scenario(ctx);
    return ctx.observations;
  } finally {
    await member.stop();
  }
}

const available = requireBinary(ETCD_BIN, ETCDCTL_BIN);
const candidate: Impl = Deno.env.get("DIFF_AGAINST") === "etcd" ? "etcd" : "ours";

Deno.test({
  name: `differential: watch and lease (etcdctl and JSON gateway), etcd 3.4 vs ${candidate}`,
  ignore: !available,
  async fn(t) {
    const expected = await observe("etcd");
    const actual = await observe(candidate);
    for (const [i, e] of expected.entries()) {
      const a = actual[i];
      await t.step(`${String(i + 1).padStart(2, "0")}: ${e.label.slice(0, 100)}`, () => {
        if (a === undefined) throw new Error(`${candidate} recorded no step ${i + 1}`);
        if (a.label !== e.label) throw new Error(`step labels differ: ${e.label} / ${a.label}`);
        if (a.text !== e.text) {
          throw new Error(`differs (- etcd, + ${candidate}):\n${lineDiff(e.text, a.text)}`);
        }
      });
    }
    if (actual.length !== expected.length) {
      throw new Error(`etcd recorded ${expected.length} steps, ${candidate} ${actual.length}`);
    }
  },
});
