/**
 * The browser watch page served on the client port: its static assets and the DOM-free feed
 * its script runs (usable from Deno too).
 *
 * @module
 */
export { type WebAsset, webAssets } from "./assets.ts";
export {
  type FeedStatus,
  maxRetryDelayMs,
  minRetryDelayMs,
  prefixRange,
  retryDelayMs,
  runWatchFeed,
  type WatchFeedOptions,
  type WatchRow,
} from "./watch_feed.ts";
