/**
 * JSON read the way etcd 3.4's grpc-gateway reads it, so that its answers to bad input carry
 * the same words: Go's encoding/json syntax errors (`invalid character 'x' looking for
 * beginning of value`, `unexpected EOF`), its decoder's split of a body into consecutive
 * top-level values (a streaming RPC's body), and golang/protobuf jsonpb's type errors for a
 * message that is not an object and for int64 fields (quoted or not).
 *
 * @module
 */
import { BodyTooLargeError } from "../internal/bounded_reader.ts";

/** A syntax or type error, worded as Go's encoding/json words it. */
export class GoJsonError extends Error {
  /** Creates the error with Go's message. */
  constructor(message: string) {
    super(message);
    this.name = "GoJsonError";
  }
}

/** Go's limit on nested objects and arrays (encoding/json's maxNestingDepth). */
export const maxNestingDepth = 10_000;

/** What the enclosing container expects next. */
type Container = "objectKey" | "objectValue" | "arrayValue";

type State =
  | "beginValue"
  | "beginValueOrEmptyArray"
  | "beginKeyOrEmptyObject"
  | "beginKey"
  | "inString"
  | "inStringEscape"
  | "inUnicodeEscape"
  | "afterMinus"
  | "afterZero"
  | "inInteger"
  | "afterDot"
  | "inFraction"
  | "afterExponentMark"
  | "afterExponentSign"
  | "inExponent"
  | "inLiteral"
  | "endValue"
  | "endTop";

function isSpace(c: string): boolean {
  return c === " " || c === "\t" || c === "\r" || c === "\n";
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

function isHex(c: string): boolean {
  return isDigit(c) || (c >= "a" && c <= "f") || (c >= "A" && c <= "F");
}

const asciiEscapes: Record<string, string> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
  "\\": "\\\\",
};

/**
 * A character as Go's error messages quote it: Go reports the first UTF-8 byte of the
 * offending character, shown as the Latin-1 character of that byte value.
 */
export function quoteGoChar(c: string): string {
  if (c === "'") return `'\\''`;
  const code = c.charCodeAt(0);
  if (code >= 0x80) {
    // A lead byte (0xc2..0xf4) is always a printable Latin-1 character.
    const lead = code < 0x800 ? 0xc0 | (code >> 6) : code >= 0xd800 && code <= 0xdbff
      ? 0xf0 // a surrogate pair is a four-byte sequence; its exact lead byte is not tracked
      : 0xe0 | (code >> 12);
    return `'${String.fromCharCode(lead)}'`;
  }
  const escape = asciiEscapes[c];
  if (escape) return `'${escape}'`;
  if (code < 0x20 || code === 0x7f) return `'\\x${code.toString(16).padStart(2, "0")}'`;
  return `'${c}'`;
}

/**
 * Go's JSON scanner, one character at a time: validates the grammar and finds where a
 * top-level value ends. Reusable after {@linkcode GoJsonScanner.reset}.
 */
export class GoJsonScanner {
  #state: State = "beginValue";
  readonly #stack: Container[] = [];
  #literal = "";
  #literalRest = "";
  #hexLeft = 0;
  /** The top-level value is complete (possibly only trailing space may follow). */
  endTop = false;

  /** Starts over for a new top-level value. */
  reset(): void {
    this.#state = "beginValue";
    this.#stack.length = 0;
    this.endTop = false;
  }

  /**
   * Feeds one character. Returns false when the character lies after a complete top-level
   * value (which a scalar only learns from the character after it); throws {@linkcode
   * GoJsonError} on a syntax error.
   */
  step(c: string): boolean {
    switch (this.#state) {
      case "beginValue":
        return this.#beginValue(c);
      case "beginValueOrEmptyArray":
        if (isSpace(c)) return true;
        if (c === "]") return this.#endValue(c);
        return this.#beginValue(c);
      case "beginKeyOrEmptyObject":
        if (isSpace(c)) return true;
        if (c === "}") {
          this.#stack[this.#stack.length - 1] = "objectValue";
          return this.#endValue(c);
        }
        return this.#beginKey(c);
      case "beginKey":
        return this.#beginKey(c);
      case "inString":
        if (c === '"') this.#state = "endValue";
        else if (c === "\\") this.#state = "inStringEscape";
        else if (c.charCodeAt(0) < 0x20) throw this.#error(c, "in string literal");
        return true;
      case "inStringEscape":
        if ('bfnrt\\/"'.includes(c)) {
          this.#state = "inString";
          return true;
        }
        if (c === "u") {
          this.#state = "inUnicodeEscape";
          this.#hexLeft = 4;
          return true;
        }
        throw this.#error(c, "in string escape code");
      case "inUnicodeEscape":
        if (!isHex(c)) throw this.#error(c, "in \\u hexadecimal character escape");
        if (--this.#hexLeft === 0) this.#state = "inString";
        return true;
      case "afterMinus":
        if (c === "0") this.#state = "afterZero";
        else if (c >= "1" && c <= "9") this.#state = "inInteger";
        else throw this.#error(c, "in numeric literal");
        return true;
      case "inInteger":
        if (isDigit(c)) return true;
        return this.#afterZero(c);
      case "afterZero":
        return this.#afterZero(c);
      case "afterDot":
        if (!isDigit(c)) throw this.#error(c, "after decimal point in numeric literal");
        this.#state = "inFraction";
        return true;
      case "inFraction":
        if (isDigit(c)) return true;
        if (c === "e" || c === "E") {
          this.#state = "afterExponentMark";
          return true;
        }
        return this.#endValue(c);
      case "afterExponentMark":
        if (c === "+" || c === "-") {
          this.#state = "afterExponentSign";
          return true;
        }
        return this.#exponentDigit(c);
      case "afterExponentSign":
        return this.#exponentDigit(c);
      case "inExponent":
        if (isDigit(c)) return true;
        return this.#endValue(c);
      case "inLiteral":
        if (c !== this.#literalRest[0]) {
          throw this.#error(
            c,
            `in literal ${this.#literal} (expecting ${quoteGoChar(this.#literalRest[0])})`,
          );
        }
        this.#literalRest = this.#literalRest.slice(1);
        if (this.#literalRest === "") this.#state = "endValue";
        return true;
      case "endValue":
        return this.#endValue(c);
      case "endTop":
        return false;
    }
  }

  /** Go's checkValid on a whole text; throws the error Go's json.Unmarshal would. */
  static check(text: string): void {
    const scanner = new GoJsonScanner();
    for (const c of text) {
      if (!scanner.step(c) && !isSpace(c)) throw scanner.#error(c, "after top-level value");
    }
    if (scanner.endTop) return;
    // Go feeds a space at the end, so a number there ends; an error that space raises wins.
    scanner.step(" ");
    if (!scanner.endTop) throw new GoJsonError("unexpected end of JSON input");
  }

  #beginValue(c: string): boolean {
    if (isSpace(c)) return true;
    switch (c) {
      case "{":
        this.#push(c, "objectKey");
        this.#state = "beginKeyOrEmptyObject";
        return true;
      case "[":
        this.#push(c, "arrayValue");
        this.#state = "beginValueOrEmptyArray";
        return true;
      case '"':
        this.#state = "inString";
        return true;
      case "-":
        this.#state = "afterMinus";
        return true;
      case "0":
        this.#state = "afterZero";
        return true;
      case "t":
        return this.#beginLiteral("true");
      case "f":
        return this.#beginLiteral("false");
      case "n":
        return this.#beginLiteral("null");
    }
    if (c >= "1" && c <= "9") {
      this.#state = "inInteger";
      return true;
    }
    throw this.#error(c, "looking for beginning of value");
  }

  #beginKey(c: string): boolean {
    if (isSpace(c)) return true;
    if (c !== '"') throw this.#error(c, "looking for beginning of object key string");
    this.#state = "inString";
    return true;
  }

  #beginLiteral(word: string): boolean {
    this.#literal = word;
    this.#literalRest = word.slice(1);
    this.#state = "inLiteral";
    return true;
  }

  #afterZero(c: string): boolean {
    if (c === ".") {
      this.#state = "afterDot";
      return true;
    }
    if (c === "e" || c === "E") {
      this.#state = "afterExponentMark";
      return true;
    }
    return this.#endValue(c);
  }

  #exponentDigit(c: string): boolean {
    if (!isDigit(c)) throw this.#error(c, "in exponent of numeric literal");
    this.#state = "inExponent";
    return true;
  }

  #endValue(c: string): boolean {
    const depth = this.#stack.length;
    if (depth === 0) {
      this.#state = "endTop";
      this.endTop = true;
      return false;
    }
    if (isSpace(c)) {
      this.#state = "endValue";
      return true;
    }
    switch (this.#stack[depth - 1]) {
      case "objectKey":
        if (c !== ":") throw this.#error(c, "after object key");
        this.#stack[depth - 1] = "objectValue";
        this.#state = "beginValue";
        return true;
      case "objectValue":
        if (c === ",") {
          this.#stack[depth - 1] = "objectKey";
          this.#state = "beginKey";
          return true;
        }
        if (c !== "}") throw this.#error(c, "after object key:value pair");
        return this.#pop();
      case "arrayValue":
        if (c === ",") {
          this.#state = "beginValue";
          return true;
        }
        if (c !== "]") throw this.#error(c, "after array element");
        return this.#pop();
    }
  }

  #push(c: string, container: Container): void {
    this.#stack.push(container);
    if (this.#stack.length > maxNestingDepth) throw this.#error(c, "exceeded max depth");
  }

  #pop(): boolean {
    this.#stack.pop();
    if (this.#stack.length === 0) {
      this.#state = "endTop";
      this.endTop = true;
    } else {
      this.#state = "endValue";
    }
    return true;
  }

  #error(c: string, context: string): GoJsonError {
    return new GoJsonError(`invalid character ${quoteGoChar(c)} ${context}`);
  }
}

/**
 * Splits a body into its top-level JSON values as they arrive, as Go's json.Decoder reads a
 * streaming RPC's body: each value is yielded once complete (a scalar once the character
 * after it, or the end, arrives), and a syntax error or a value cut off by the end of the
 * body throws {@linkcode GoJsonError}. A value longer than `maxValueChars` UTF-16 units
 * throws {@linkcode BodyTooLargeError} before more of it is buffered (a value never has more
 * units than UTF-8 bytes, so one within a byte bound always passes). Space between values is
 * not buffered. `signal` cancels the body, ending the values.
 */
export async function* goJsonValues(
  body: ReadableStream<Uint8Array> | null,
  maxValueChars: number,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  if (body === null) return;
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  if (signal?.aborted) cancel();
  signal?.addEventListener("abort", cancel, { once: true });
  const decoder = new TextDecoder();
  const scanner = new GoJsonScanner();
  /** The current value's text so far (leading space dropped). */
  let pending = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      let from = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (pending === "" && from === i && isSpace(c)) {
          from = i + 1;
          continue;
        }
        if (!scanner.step(c)) {
          // A scalar ended before `c`, which starts the next value.
          yield pending + text.slice(from, i);
          pending = "";
          from = i;
          scanner.reset();
          i--;
          continue;
        }
        if (pending.length + (i + 1 - from) > maxValueChars) {
          throw new BodyTooLargeError(maxValueChars);
        }
        if (scanner.endTop) {
          yield pending + text.slice(from, i + 1);
          pending = "";
          from = i + 1;
          scanner.reset();
        }
      }
      pending += text.slice(from);
    }
    if (pending === "") return;
    let ended = false;
    try {
      ended = !scanner.step(" ");
    } catch {
      // Go's decoder reports any value cut off by the end of the body the same way.
    }
    if (!ended) throw new GoJsonError("unexpected EOF");
    yield pending;
  } finally {
    signal?.removeEventListener("abort", cancel);
    cancel();
  }
}

/** Go's name for the kind of a JSON value, in `cannot unmarshal <kind>` errors. */
function kindOf(json: string): "object" | "array" | "string" | "bool" | "null" | "number" {
  switch (json.trimStart()[0]) {
    case "{":
      return "object";
    case "[":
      return "array";
    case '"':
      return "string";
    case "t":
    case "f":
      return "bool";
    case "n":
      return "null";
    default:
      return "number";
  }
}

/**
 * Checks that one complete JSON value (as {@linkcode goJsonValues} yields) can be a protobuf
 * message for jsonpb: `null` is an empty message (returns undefined), an object is returned
 * parsed, anything else throws Go's `json: cannot unmarshal ...` error.
 */
export function goJsonObject(json: string): Record<string, unknown> | undefined {
  const kind = kindOf(json);
  if (kind === "null") return undefined;
  if (kind !== "object") {
    throw new GoJsonError(
      `json: cannot unmarshal ${kind} into Go value of type map[string]json.RawMessage`,
    );
  }
  return JSON.parse(json);
}

/** Skips a valid JSON value starting at `at` (after any space); returns the index after it. */
function skipValue(text: string, at: number): number {
  let depth = 0;
  let inString = false;
  for (let i = at; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return i + 1;
      }
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      // Closing the enclosing object ends a scalar member value.
      if (depth === 0) return i;
      if (--depth === 0) return i + 1;
    } else if (depth === 0 && c === ",") return i;
  }
  return text.length;
}

/**
 * The raw text of each member of a valid JSON object text, by key (the last one wins, as in
 * Go's map), for decoding members the way jsonpb does from their raw JSON.
 */
export function goRawMembers(objectJson: string): Map<string, string> {
  const members = new Map<string, string>();
  let i = objectJson.indexOf("{") + 1;
  for (let guard = 0; guard <= objectJson.length; guard++) {
    const keyStart = objectJson.indexOf('"', i);
    if (keyStart < 0) break;
    const keyEnd = skipValue(objectJson, keyStart);
    const key = JSON.parse(objectJson.slice(keyStart, keyEnd)) as string;
    const colon = objectJson.indexOf(":", keyEnd);
    let valueStart = colon + 1;
    while (isSpace(objectJson[valueStart])) valueStart++;
    const valueEnd = skipValue(objectJson, valueStart);
    members.set(key, objectJson.slice(valueStart, valueEnd).trimEnd());
    let after = valueEnd;
    while (isSpace(objectJson[after])) after++;
    if (objectJson[after] !== ",") break;
    i = after + 1;
  }
  return members;
}

const int64Min = -(1n << 63n);
const int64Max = (1n << 63n) - 1n;

/**
 * An int64 field's raw JSON as jsonpb decodes it: quotes are dropped as they are, then Go's
 * json.Unmarshal parses the rest into an int64 (`null` leaves 0). Throws Go's errors.
 */
export function goInt64(raw: string): bigint {
  const text = raw.startsWith('"') ? raw.slice(1, -1) : raw;
  GoJsonScanner.check(text);
  const trimmed = text.trim();
  const kind = kindOf(trimmed);
  if (kind === "null") return 0n;
  if (kind !== "number") {
    throw new GoJsonError(`json: cannot unmarshal ${kind} into Go value of type int64`);
  }
  if (/^-?\d+$/.test(trimmed)) {
    const value = BigInt(trimmed);
    if (value >= int64Min && value <= int64Max) return value;
  }
  throw new GoJsonError(`json: cannot unmarshal number ${trimmed} into Go value of type int64`);
}
