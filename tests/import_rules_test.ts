/**
 * The import rules of the design (a DAG): `internal` <- `proto` <- {`raft`, `wal`, `mvcc`,
 * `lease`, `transport`} <- `server` <- `mod.ts`. `raft/` is a pure state machine: it imports
 * only `internal/`, no package and no built-in, and never reads a clock or a random source.
 * `lease/` does not know `mvcc/` (apply is the one place that knows both). No module outside
 * `tests/` imports `tests/`, except test files importing shared test support.
 *
 * @module
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const repo = resolve(dirname(new URL(import.meta.url).pathname), "..");

/** What each part of the repository may import, besides itself (relative imports). */
const allowed: Record<string, readonly string[]> = {
  internal: [],
  proto: ["internal"],
  raft: ["internal"],
  wal: ["internal", "proto", "raft"],
  mvcc: ["internal", "proto"],
  lease: ["internal", "proto"],
  transport: ["internal", "proto", "raft"],
  web: ["internal", "proto"],
  server: ["internal", "proto", "raft", "wal", "mvcc", "lease", "transport", "web"],
  "mod.ts": ["internal", "proto", "raft", "wal", "mvcc", "lease", "transport", "server"],
  bench: ["internal", "proto"],
  scripts: ["internal", "proto", "bench"],
  tests: ["internal", "proto", "raft", "wal", "mvcc", "lease", "transport", "server", "web"],
};

/** Names whose use would make `raft/` depend on time, chance or the host. */
const impureInRaft = /\b(Date|Math\.random|setTimeout|setInterval|performance|Deno|crypto)\b/;

const specifier =
  /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s*["']([^"']+)["']/gm;

interface Source {
  /** Path relative to the repository, with `/`. */
  path: string;
  /** The top-level part it belongs to (a folder, or `mod.ts`). */
  part: string;
  isTest: boolean;
  text: string;
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      // Generated code and run output are not ours to arrange.
      if (path === join(repo, "proto", "gen") || path === join(repo, "bench", "out")) continue;
      yield* walk(path);
    } else if (entry.name.endsWith(".ts")) yield path;
  }
}

async function sources(): Promise<Source[]> {
  const out: Source[] = [];
  for await (const path of walk(repo)) {
    const rel = relative(repo, path);
    out.push({
      path: rel,
      part: rel.split("/")[0],
      isTest: rel.endsWith("_test.ts"),
      text: await Deno.readTextFile(path),
    });
  }
  return out;
}

function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(specifier)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** The part a relative import of `from` lands in, or null for a package or built-in. */
function targetPart(from: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  return relative(repo, resolve(repo, dirname(from), spec)).split("/")[0];
}

Deno.test("imports follow the design's DAG", async () => {
  const all = await sources();
  ok(all.length > 100, `only ${all.length} sources found under ${repo}`);
  const broken: string[] = [];
  for (const source of all) {
    // This file's own sample imports (the scanner test below) are text, not imports.
    if (source.path === "tests/import_rules_test.ts") continue;
    const may = allowed[source.part];
    if (may === undefined) {
      broken.push(`${source.path}: ${source.part} has no import rule`);
      continue;
    }
    for (const spec of importsOf(source.text)) {
      const target = targetPart(source.path, spec);
      if (source.part === "raft" && !source.isTest && target === null) {
        broken.push(`${source.path}: raft imports ${spec}`);
      }
      if (target === null || target === source.part || may.includes(target)) continue;
      if (source.isTest && target === "tests") continue; // shared test support
      broken.push(`${source.path}: ${source.part} imports ${target} (${spec})`);
    }
  }
  deepStrictEqual(broken, []);
});

Deno.test("raft reads no clock, random source or host API", async () => {
  const all = await sources();
  const impure = all
    .filter((s) => s.part === "raft" && !s.isTest)
    .filter((s) => impureInRaft.test(s.text.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "")))
    .map((s) => `${s.path}: ${s.text.match(impureInRaft)?.[0]}`);
  deepStrictEqual(impure, []);
});

Deno.test("the import scanner sees static, re-export, side-effect and dynamic imports", () => {
  const text = [
    `import { a } from "./a.ts";`,
    `import type { B } from "../b/mod.ts";`,
    `export { c } from "./c.ts";`,
    `import "./side.ts";`,
    `const m = await import("../../d.ts");`,
    `import {\n  e,\n  f,\n} from "npm:e";`,
  ].join("\n");
  deepStrictEqual(importsOf(text), [
    "./a.ts",
    "../b/mod.ts",
    "./c.ts",
    "./side.ts",
    "../../d.ts",
    "npm:e",
  ]);
  deepStrictEqual(targetPart("server/x.ts", "../mvcc/mod.ts"), "mvcc");
  deepStrictEqual(targetPart("mod.ts", "./server/server.ts"), "server");
  deepStrictEqual(targetPart("server/x.ts", "node:fs"), null);
});
