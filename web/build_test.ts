import { strictEqual } from "node:assert/strict";
import { bundleFile, bundleWatchPage } from "./build.ts";

Deno.test("the committed watch page bundle is what `deno task web` builds from its sources", async () => {
  const committed = await Deno.readTextFile(bundleFile);
  const fresh = await bundleWatchPage();
  // Compared by flag, not by value: a diff of two 140 KB minified lines helps nobody.
  strictEqual(committed === fresh, true, "web/gen/watch_page.js is stale: run `deno task web`");
});
