/**
 * The watch page in a real browser: headless Chromium (Debian's `chromium`, driven by
 * puppeteer-core over the DevTools protocol) loads `GET /` from an in-process member, and the
 * events the test writes must appear in its DOM.
 *
 * @module
 */
import { deepStrictEqual, match, strictEqual } from "node:assert/strict";
// The package's own types would replace Deno's node:http2 types for every test (see the file).
// @ts-types="./puppeteer_api.d.ts"
import { type Browser, launch, type Page } from "puppeteer-core";
import { type InProcessMember, startInProcess } from "../support/in_process.ts";

/** Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it). */
const CHROMIUM_BIN = "/usr/bin/chromium";
/** Longest wait for one thing the page must show. */
const pageTimeoutMs = 15_000;
/** Longest wait for Chromium to start and for its DevTools connection. */
const launchTimeoutMs = 30_000;
/** After this long a browser test's Chromium is killed, failing whatever still waits on it. */
const browserDeadlineMs = 60_000;
/** Longest wait for Chromium to close politely before it is killed. */
const closeTimeoutMs = 10_000;

/**
 * Whether Chromium is installed. When it is not, a CI run (`CI=true`) gets a failing test
 * that says so; elsewhere a loud warning is printed and the browser tests are skipped.
 */
function requireChromium(): boolean {
  try {
    Deno.statSync(CHROMIUM_BIN);
    return true;
  } catch {
    // Reported below.
  }
  const advice = `install Debian's chromium (apt-get install chromium; .ci/run does)`;
  if (Deno.env.get("CI") === "true") {
    Deno.test(`required binary ${CHROMIUM_BIN} is installed`, () => {
      throw new Error(`${CHROMIUM_BIN} is missing: ${advice}`);
    });
  } else {
    console.warn(
      `\n!!!!!!!!!!\n!!! WARNING: ${CHROMIUM_BIN} is missing; browser tests are SKIPPED.\n` +
        `!!! To run them, ${advice}.\n!!!!!!!!!!\n`,
    );
  }
  return false;
}

const chromiumInstalled = requireChromium();

async function kv(
  member: InProcessMember,
  op: "put" | "deleterange",
  body: Record<string, string>,
): Promise<bigint> {
  // The gateway takes bytes as base64 (of the UTF-8 text here).
  const base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const encoded = Object.fromEntries(Object.entries(body).map(([k, v]) => [k, base64(v)]));
  const res = await fetch(`${member.clientUrl}/v3/kv/${op}`, {
    method: "POST",
    body: JSON.stringify(encoded),
  });
  const json = await res.json();
  strictEqual(res.status, 200, JSON.stringify(json));
  return BigInt(json.header.revision);
}

const put = (member: InProcessMember, key: string, value: string) =>
  kv(member, "put", { key, value });
const del = (member: InProcessMember, key: string) => kv(member, "deleterange", { key });

/** What the page shows, read in the browser. */
interface PageState {
  /** `#status`'s `data-state` and text. */
  state: string;
  statusText: string;
  /** The prefix text box. */
  prefix: string;
  /** `location.search`. */
  search: string;
  /** Each listed event as `TYPE key modRevision | <the cells' text>`. */
  events: string[];
}

// Code run in the page is passed as source text: this file is type-checked without the DOM
// library (adding it would change the types of every test in the run).
const readPageState = `(() => {
  const status = document.getElementById("status");
  const events = [...document.querySelectorAll("#events li.event")].map((li) => {
    const cell = (name) => li.querySelector("." + name)?.textContent ?? "?";
    const { type, key, modRevision } = li.dataset;
    return type + " " + key + " " + modRevision + " | " +
      [cell("type"), cell("key"), cell("value"), cell("rev")].join(" ");
  });
  return {
    state: status.dataset.state,
    statusText: status.textContent,
    prefix: document.getElementById("prefix").value,
    search: location.search,
    events,
  };
})()`;

function pageState(page: Page): Promise<PageState> {
  return page.evaluate(readPageState) as Promise<PageState>;
}

/** Waits until the page watches `prefix` (its status says so, for this prefix). */
async function waitWatching(page: Page, prefix: string): Promise<void> {
  const quoted = JSON.stringify(prefix === "" ? "all keys" : `"${prefix}"`);
  await page.waitForFunction(
    `document.getElementById("status").dataset.state === "watching" &&
      document.getElementById("status").textContent.includes(${quoted})`,
    { timeout: pageTimeoutMs },
  );
}

/** Waits until the page lists at least `count` events. */
async function waitEvents(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    `document.querySelectorAll("#events li.event").length >= ${count}`,
    { timeout: pageTimeoutMs },
  );
}

/** Runs `body` with a fresh headless Chromium, which is closed (or killed) afterwards. */
async function withChromium(body: (browser: Browser) => Promise<void>): Promise<void> {
  const browser = await launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    timeout: launchTimeoutMs,
    // CI runs as root, where Chromium's sandbox cannot start; /dev/shm may be small there.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
  });
  const kill = () => browser.process()?.kill("SIGKILL");
  const watchdog = setTimeout(kill, browserDeadlineMs);
  try {
    await body(browser);
  } finally {
    clearTimeout(watchdog);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      browser.close().then(() => true, () => false),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), closeTimeoutMs)),
    ]);
    clearTimeout(timer);
    if (!closed) kill();
  }
}

Deno.test("GET / serves the watch page, its script and its style sheet, same-origin only", async () => {
  const member = await startInProcess();
  try {
    const page = await fetch(`${member.clientUrl}/`);
    const html = await page.text();
    strictEqual(page.status, 200);
    strictEqual(page.headers.get("content-type"), "text/html; charset=utf-8");
    // Nothing inline and nothing from elsewhere: the browser test shows the page works so.
    strictEqual(
      page.headers.get("content-security-policy"),
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    strictEqual(page.headers.get("x-content-type-options"), "nosniff");
    match(html, /<script type="module" src="\/web\/watch_page.js">/);

    const script = await fetch(`${member.clientUrl}/web/watch_page.js`);
    const js = new Uint8Array(await script.arrayBuffer());
    strictEqual(script.status, 200);
    strictEqual(script.headers.get("content-type"), "text/javascript; charset=utf-8");
    deepStrictEqual(
      js,
      await Deno.readFile(new URL("../../web/gen/watch_page.js", import.meta.url)),
    );

    for (
      const [path, type] of [
        ["/web/watch_page.css", "text/css; charset=utf-8"],
        ["/web/favicon.svg", "image/svg+xml"],
      ]
    ) {
      const res = await fetch(`${member.clientUrl}${path}`);
      await res.body?.cancel();
      strictEqual(res.status, 200, path);
      strictEqual(res.headers.get("content-type"), type, path);
    }

    // Other paths are still etcd's 404.
    const missing = await fetch(`${member.clientUrl}/web/nothing.js`);
    strictEqual(await missing.text(), "404 page not found\n");
    strictEqual(missing.status, 404);
  } finally {
    await member.stop();
  }
});

Deno.test({
  name: "Chromium shows puts and deletes under the watched prefix live, and follows a new prefix",
  ignore: !chromiumInstalled,
  async fn() {
    const member = await startInProcess();
    try {
      await withChromium(async (browser) => {
        const page = await browser.newPage();
        // Script errors and CSP violations both surface here; the page must cause none.
        const problems: string[] = [];
        page.on("pageerror", (err) => problems.push(`page error: ${err}`));
        page.on("console", (msg) => {
          if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
        });

        await page.goto(`${member.clientUrl}/?prefix=app/`, { timeout: pageTimeoutMs });
        await waitWatching(page, "app/");
        strictEqual((await pageState(page)).prefix, "app/");

        const r1 = await put(member, "app/a", "1");
        await put(member, "other/x", "outside the prefix");
        const r3 = await put(member, "app/b", "två");
        const r4 = await del(member, "app/a");
        await waitEvents(page, 3);
        deepStrictEqual((await pageState(page)).events, [
          `PUT app/a ${r1} | PUT app/a 1 rev ${r1}`,
          `PUT app/b ${r3} | PUT app/b två rev ${r3}`,
          `DELETE app/a ${r4} | DELETE app/a  rev ${r4}`,
        ]);

        // A new prefix from the text box: the list restarts and follows only that prefix.
        await page.evaluate(`document.getElementById("prefix").value = ""`);
        await page.type("#prefix", "other/");
        await page.click("#watch-form button[type=submit]");
        await waitWatching(page, "other/");
        await put(member, "app/c", "not shown");
        const r6 = await put(member, "other/y", "shown");
        await page.waitForSelector(`#events li.event[data-key="other/y"]`, {
          timeout: pageTimeoutMs,
        });
        const after = await pageState(page);
        strictEqual(after.search, "?prefix=other%2F");
        deepStrictEqual(after.events, [`PUT other/y ${r6} | PUT other/y shown rev ${r6}`]);
        deepStrictEqual(problems, []);
      });
    } finally {
      await member.stop();
    }
  },
});
