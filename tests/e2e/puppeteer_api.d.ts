/**
 * The part of npm `puppeteer-core` (25.x) that the browser e2e test uses, typed by hand.
 *
 * Why not the package's own types: they reference Node's types, and once another test's
 * dependency (the `etcd3` client, through grpc-js) brings `@types/node` into the npm graph,
 * that reference loads its newer `node:http2` declarations in place of Deno's built-in ones
 * for the whole type-checked program, and this repository's HTTP/2 code stops compiling.
 * The test loads the package with `// @ts-types="./puppeteer_api.d.ts"` instead.
 *
 * @module
 */

/** The child process puppeteer started. */
export interface BrowserProcess {
  kill(signal?: string): boolean;
}

/** A running browser. */
export interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
  process(): BrowserProcess | null;
}

/** A console message from the page. */
export interface ConsoleMessage {
  type(): string;
  text(): string;
}

/** Options of the waiting calls. */
export interface WaitOptions {
  timeout?: number;
}

/** One tab. */
export interface Page {
  goto(url: string, options?: WaitOptions): Promise<unknown>;
  on(event: "pageerror", handler: (err: Error) => void): this;
  on(event: "console", handler: (message: ConsoleMessage) => void): this;
  /** Runs `expression` (JavaScript source) in the page; resolves with its JSON value. */
  evaluate(expression: string): Promise<unknown>;
  /** Resolves once `expression` (JavaScript source) is truthy in the page. */
  waitForFunction(expression: string, options?: WaitOptions): Promise<unknown>;
  waitForSelector(selector: string, options?: WaitOptions): Promise<unknown>;
  type(selector: string, text: string): Promise<void>;
  click(selector: string): Promise<void>;
}

/** Options of {@linkcode launch}. */
export interface LaunchOptions {
  executablePath: string;
  headless?: boolean;
  timeout?: number;
  args?: string[];
}

/** Starts a browser and connects to it over the DevTools protocol. */
export declare function launch(options: LaunchOptions): Promise<Browser>;
