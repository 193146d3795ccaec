/**
 * Typed failures of the write-ahead log. Corruption and a locked directory are expected
 * conditions the server reports and refuses to start on; they are not program bugs.
 *
 * @module
 */

/** The log on disk cannot be trusted: the server must not start from it. */
export class WalCorruptError extends Error {
  /** Creates the error for `file` (a segment name, or the directory) at byte `offset`. */
  constructor(readonly file: string, readonly offset: number, reason: string) {
    super(`wal: corrupt log in ${file} at offset ${offset}: ${reason}`);
    this.name = "WalCorruptError";
  }
}

/** {@linkcode Wal.create} found segments already in the directory. */
export class WalExistsError extends Error {
  /** Creates the error for directory `dir`. */
  constructor(readonly dir: string) {
    super(`wal: a log already exists in ${dir}`);
    this.name = "WalExistsError";
  }
}

/** {@linkcode Wal.open} found no segment in the directory. */
export class WalNotFoundError extends Error {
  /** Creates the error for directory `dir`. */
  constructor(readonly dir: string) {
    super(`wal: no log in ${dir}`);
    this.name = "WalNotFoundError";
  }
}

/** Another open log (in this or another process) holds the segment's lock. */
export class WalLockedError extends Error {
  /** Creates the error for the locked segment `file`. */
  constructor(readonly file: string) {
    super(`wal: ${file} is locked by another process`);
    this.name = "WalLockedError";
  }
}

/** A record or a save is larger than the log accepts. */
export class WalRecordTooLargeError extends Error {
  /** Creates the error for a record (or batch) of `bytes` against the limit `maxBytes`. */
  constructor(readonly bytes: number, readonly maxBytes: number, what = "record") {
    super(`wal: ${what} of ${bytes} bytes exceeds the limit of ${maxBytes} bytes`);
    this.name = "WalRecordTooLargeError";
  }
}

/**
 * The log was closed, or an earlier write or sync failed. After a failed write the file's
 * tail is unknown, so the log refuses further work; reopening repairs or rejects the tail.
 */
export class WalClosedError extends Error {
  /** Creates the error; `cause` is the failure that stopped the log, if any. */
  constructor(message = "wal: the log is closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "WalClosedError";
  }
}
