/**
 * Serves the browser watch page (`GET /`) and its script and style sheet from `web/`, with a
 * Content-Security-Policy that allows only same-origin scripts, styles and fetches: the page
 * talks to `etcdweb.v1.WebWatch` on the same port over the Connect protocol.
 *
 * @module
 */
import type { Hono } from "hono";
import { type WebAsset, webAssets } from "../web/mod.ts";

/** The page's Content-Security-Policy: nothing inline, nothing from another origin. */
export const webPageCsp: string = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

function headersFor(asset: WebAsset): Headers {
  return new Headers({
    "content-type": asset.contentType,
    "content-security-policy": webPageCsp,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    // The files change only with the server: revalidate, never serve a stale page.
    "cache-control": "no-cache",
  });
}

/**
 * Mounts `GET /` (the page) and its assets on `app`. Files are read on first request and
 * kept (they are small and fixed for the life of the process); a missing file is a 500 that
 * says how to build it.
 */
export function mountWebPage(app: Hono): void {
  for (const asset of webAssets) {
    let body: Promise<Uint8Array<ArrayBuffer>> | undefined;
    app.get(asset.path, async () => {
      body ??= Deno.readFile(asset.file);
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        bytes = await body;
      } catch (err) {
        // Retry the read next time: the file may be built meanwhile.
        body = undefined;
        const reason = err instanceof Error ? err.message : String(err);
        return new Response(`${asset.path} is unavailable (${reason}); run \`deno task web\`\n`, {
          status: 500,
          headers: { "content-type": "text/plain; charset=utf-8" },
        });
      }
      return new Response(bytes, { headers: headersFor(asset) });
    });
  }
}
