/**
 * The files the watch page is made of, by the URL path they are served at. The script is
 * the committed bundle `web/gen/watch_page.js` (built by `deno task web`), since browsers
 * cannot load npm packages.
 *
 * @module
 */

/** One static file of the page. */
export interface WebAsset {
  /** The URL path it is served at. */
  path: string;
  /** Where the file is. */
  file: URL;
  /** Its `Content-Type`. */
  contentType: string;
}

/** The page (`/`), its script, its style sheet and its icon. */
export const webAssets: readonly WebAsset[] = [
  {
    path: "/",
    file: new URL("./index.html", import.meta.url),
    contentType: "text/html; charset=utf-8",
  },
  {
    path: "/web/watch_page.js",
    file: new URL("./gen/watch_page.js", import.meta.url),
    contentType: "text/javascript; charset=utf-8",
  },
  {
    path: "/web/watch_page.css",
    file: new URL("./watch_page.css", import.meta.url),
    contentType: "text/css; charset=utf-8",
  },
  {
    path: "/web/favicon.svg",
    file: new URL("./favicon.svg", import.meta.url),
    contentType: "image/svg+xml",
  },
];
