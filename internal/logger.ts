/**
 * A small structured logger writing one JSON object per line to stderr, in the shape of
 * etcd's zap logger (`level`, `ts`, `msg`, then fields), so operators' tooling reads both.
 *
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const severity: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger with a minimum level. */
export class Logger {
  #min: number;
  readonly #fields: Record<string, unknown>;

  /** Creates a logger that drops entries below `level`. */
  constructor(level: LogLevel = "info", fields: Record<string, unknown> = {}) {
    this.#min = severity[level];
    this.#fields = fields;
  }

  /** A logger that adds `fields` to every entry. */
  with(fields: Record<string, unknown>): Logger {
    const child = new Logger("info", { ...this.#fields, ...fields });
    child.#min = this.#min;
    return child;
  }

  /** Logs at debug level. */
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.#write("debug", msg, fields);
  }

  /** Logs at info level. */
  info(msg: string, fields?: Record<string, unknown>): void {
    this.#write("info", msg, fields);
  }

  /** Logs at warn level. */
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#write("warn", msg, fields);
  }

  /** Logs at error level. */
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#write("error", msg, fields);
  }

  #write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (severity[level] < this.#min) return;
    const entry = { level, ts: new Date().toISOString(), msg, ...this.#fields, ...fields };
    const line = JSON.stringify(entry, (_k, v) => (typeof v === "bigint" ? v.toString(16) : v));
    console.error(line);
  }
}
