import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { semiSpaceMiB, serverRunArgs, serverV8Flags } from "./server_command.ts";

Deno.test("deno task start runs the member with the same arguments as the benchmarks and tests", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assertEquals(config.tasks.start, ["deno", ...serverRunArgs("mod.ts")].join(" "));
});

Deno.test("V8 accepts the member's flags and starts with the full young generation", async () => {
  // Deno refuses to start on a flag V8 does not know; the script reports the young generation.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `--v8-flags=${serverV8Flags.join(",")}`,
      "import v8 from 'node:v8'; console.log(JSON.stringify(v8.getHeapSpaceStatistics()))",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const spaces: {
    space_name: string;
    space_used_size: number;
    space_available_size: number;
  }[] = JSON.parse(
    new TextDecoder().decode(out.stdout),
  );
  const newSpace = spaces.find((s) => s.space_name === "new_space");
  assert(newSpace !== undefined, "V8 reports a new space");
  // Its full capacity from the start (V8 commits the pages as they are used); without the
  // flags V8 starts at about 1 MiB and grows it under load.
  const capacity = newSpace.space_used_size + newSpace.space_available_size;
  assert(capacity >= (semiSpaceMiB - 1) * 1024 * 1024, `new space holds ${capacity} bytes`);
});
