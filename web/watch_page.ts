/// <reference no-default-lib="true" />
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * The watch page's browser entry (bundled into `web/gen/watch_page.js` by `deno task web`):
 * watches the prefix from the text box or `?prefix=` and lists each event as it arrives.
 *
 * The DOM it keeps, which tests rely on: `#status[data-state]` (a {@linkcode FeedStatus}
 * state) and one `li.event[data-type][data-key][data-mod-revision]` per event in `#events`,
 * oldest first, at most `maxShownEvents`.
 *
 * @module
 */
import { type FeedStatus, runWatchFeed, type WatchRow } from "./watch_feed.ts";

/** Events kept on screen; older ones are removed first. */
const maxShownEvents = 500;

function byId<T extends HTMLElement>(id: string, type: { new (): T }): T {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return element;
}

function statusText(status: FeedStatus, prefix: string): string {
  const what = prefix === "" ? "all keys" : `keys with prefix "${prefix}"`;
  switch (status.state) {
    case "connecting":
      return status.attempt === 0 ? `connecting to watch ${what}…` : `reconnecting…`;
    case "watching":
      return `watching ${what} (from revision ${status.revision + 1n})`;
    case "compacted":
      return `events before revision ${status.compactRevision} were compacted away`;
    case "retrying":
      return `stream broken (${status.error}); retrying in ${status.delayMs} ms`;
    case "stopped":
      return "stopped";
  }
}

function eventItem(row: WatchRow): HTMLLIElement {
  const item = document.createElement("li");
  item.className = `event ${row.type.toLowerCase()}`;
  item.dataset.type = row.type;
  item.dataset.key = row.key;
  item.dataset.modRevision = String(row.modRevision);
  const cells: [string, string][] = [
    ["type", row.type],
    ["key", row.key],
    ["value", row.type === "PUT" ? row.value : ""],
    ["rev", `rev ${row.modRevision}`],
  ];
  for (const [name, text] of cells) {
    const cell = document.createElement("span");
    cell.className = name;
    cell.textContent = text;
    item.append(cell);
  }
  return item;
}

function main(): void {
  const form = byId("watch-form", HTMLFormElement);
  const input = byId("prefix", HTMLInputElement);
  const status = byId("status", HTMLElement);
  const list = byId("events", HTMLOListElement);
  let current: AbortController | undefined;

  const start = (prefix: string) => {
    current?.abort();
    const controller = new AbortController();
    current = controller;
    list.replaceChildren();
    void runWatchFeed({
      baseUrl: location.origin,
      prefix,
      signal: controller.signal,
      onRows(rows) {
        if (current !== controller) return;
        // Only the newest rows can stay on screen: build no more elements than that.
        list.append(...rows.slice(-maxShownEvents).map(eventItem));
        while (list.childElementCount > maxShownEvents) list.firstElementChild?.remove();
      },
      onStatus(next) {
        // A feed that was replaced must not overwrite its successor's status.
        if (current !== controller) return;
        status.dataset.state = next.state;
        status.textContent = statusText(next, prefix);
      },
    });
  };

  input.value = new URLSearchParams(location.search).get("prefix") ?? "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    url.searchParams.set("prefix", input.value);
    history.replaceState(null, "", url);
    start(input.value);
  });
  start(input.value);
}

main();
