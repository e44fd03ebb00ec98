/**
 * A JSON parser that keeps where every value came from. The trace format (docs/trace-format.md)
 * puts one JSON object on each line, and every complaint about a trace (a missing comma, an
 * unknown flag name, a reference to a handle never bound) must name the line and column of the
 * culprit. JSON.parse gives neither a column nor a message that says what was expected, and it
 * silently keeps the last of two equal keys, so the trace tools parse with this instead.
 *
 * Numbers keep their source text: the format allows only integers of at most 2^53-1 as JSON
 * numbers, and checking that needs the digits, not a rounded double.
 */

/** A 1-based line and column; columns count UTF-16 code units (bytes, for ASCII). */
export interface Pos {
  readonly line: number;
  readonly col: number;
}

export interface JsonMember {
  readonly name: string;
  readonly namePos: Pos;
  readonly value: JsonNode;
}

export type JsonNode =
  | { readonly kind: 'null'; readonly pos: Pos }
  | { readonly kind: 'bool'; readonly pos: Pos; readonly value: boolean }
  | { readonly kind: 'number'; readonly pos: Pos; readonly raw: string }
  /** `plain` is true when the source had no escapes, so columns inside the value are exact. */
  | { readonly kind: 'string'; readonly pos: Pos; readonly value: string; readonly plain: boolean }
  | { readonly kind: 'array'; readonly pos: Pos; readonly items: readonly JsonNode[] }
  | { readonly kind: 'object'; readonly pos: Pos; readonly members: readonly JsonMember[] };

export type JsonObject = Extract<JsonNode, { kind: 'object' }>;
export type JsonString = Extract<JsonNode, { kind: 'string' }>;

/** A problem with the input, at a position. Never thrown: returned or collected. */
export interface Problem {
  readonly pos: Pos;
  readonly message: string;
}

/** The member `name` of an object node, if present. */
export function member(obj: JsonObject, name: string): JsonMember | undefined {
  return obj.members.find((m) => m.name === name);
}

/** What a JSON node looks like in a message: its kind, or its text when short. */
export function describeNode(node: JsonNode): string {
  switch (node.kind) {
    case 'null': return 'null';
    case 'bool': return String(node.value);
    case 'number': return node.raw;
    case 'string': return node.value.length <= 40 ? JSON.stringify(node.value) : 'a string';
    case 'array': return 'an array';
    case 'object': return 'an object';
  }
}

/** A JSON node as a plain JS value (numbers as JS numbers), for messages and generic fields. */
export function plainValue(node: JsonNode): unknown {
  switch (node.kind) {
    case 'null': return null;
    case 'bool': return node.value;
    case 'number': return Number(node.raw);
    case 'string': return node.value;
    case 'array': return node.items.map(plainValue);
    case 'object': return Object.fromEntries(node.members.map((m) => [m.name, plainValue(m.value)]));
  }
}

class Fail {
  constructor(readonly problem: Problem) {}
}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t',
};

/** Parses the JSON text of one line (RFC 8259); `line` is its number in the file. */
class LineParser {
  private i = 0;

  constructor(private readonly s: string, private readonly line: number) {}

  private pos(at = this.i): Pos {
    return { line: this.line, col: at + 1 };
  }

  private fail(message: string, at = this.i): Fail {
    return new Fail({ pos: this.pos(at), message });
  }

  /** The next character for a message: quoted, or "the end of the line". */
  private found(at = this.i): string {
    if (at >= this.s.length) return 'the end of the line';
    const c = this.s.codePointAt(at)!;
    if (c < 0x20) return `control character U+${c.toString(16).padStart(4, '0')}`;
    return `'${String.fromCodePoint(c)}'`;
  }

  private ws(): void {
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') break;
      this.i++;
    }
  }

  document(): JsonNode | Fail {
    this.ws();
    const v = this.value('expected a JSON value');
    if (v instanceof Fail) return v;
    this.ws();
    if (this.i < this.s.length) return this.fail(`unexpected ${this.found()} after the JSON value`);
    return v;
  }

  private value(expected: string): JsonNode | Fail {
    const c = this.s[this.i];
    const pos = this.pos();
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i))?.[0];
    if (word === 'true' || word === 'false') {
      this.i += word.length;
      return { kind: 'bool', pos, value: word === 'true' };
    }
    if (word === 'null') {
      this.i += 4;
      return { kind: 'null', pos };
    }
    if (word !== undefined) {
      return this.fail(`${expected}, found '${word}' (a string needs double quotes; the JSON words are true, false and null)`);
    }
    if (c === "'") return this.fail(`${expected}, found a single quote (JSON strings use double quotes)`);
    return this.fail(`${expected}, found ${this.found()}`);
  }

  private object(): JsonNode | Fail {
    const pos = this.pos();
    this.i++;
    const members: JsonMember[] = [];
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return { kind: 'object', pos, members };
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') {
        const after = members.length === 0 ? " or '}'" : '';
        return this.fail(`expected a property name in double quotes${after}, found ${this.found()}`);
      }
      const namePos = this.pos();
      const name = this.string();
      if (name instanceof Fail) return name;
      if (name.kind !== 'string') return this.fail('expected a property name');
      if (members.some((m) => m.name === name.value)) {
        return new Fail({ pos: namePos, message: `duplicate property "${name.value}"` });
      }
      this.ws();
      if (this.s[this.i] !== ':') return this.fail(`expected ':' after a property name, found ${this.found()}`);
      this.i++;
      this.ws();
      const value = this.value('expected a property value');
      if (value instanceof Fail) return value;
      members.push({ name: name.value, namePos, value });
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === '}') {
        this.i++;
        return { kind: 'object', pos, members };
      }
      return this.fail(`expected ',' or '}' after a property value, found ${this.found()}`);
    }
  }

  private array(): JsonNode | Fail {
    const pos = this.pos();
    this.i++;
    const items: JsonNode[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return { kind: 'array', pos, items };
    }
    for (;;) {
      this.ws();
      const v = this.value(items.length === 0 ? "expected an array element or ']'" : 'expected an array element');
      if (v instanceof Fail) return v;
      items.push(v);
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === ']') {
        this.i++;
        return { kind: 'array', pos, items };
      }
      return this.fail(`expected ',' or ']' after an array element, found ${this.found()}`);
    }
  }

  private string(): JsonNode | Fail {
    const start = this.i;
    this.i++;
    let out = '';
    let plain = true;
    for (;;) {
      if (this.i >= this.s.length) return this.fail('unterminated string: expected \'"\'', start);
      const c = this.s[this.i];
      if (c === '"') {
        this.i++;
        return { kind: 'string', pos: this.pos(start), value: out, plain };
      }
      if (c < ' ') return this.fail(`${this.found()} in a string (write it as an escape such as \\n)`);
      if (c !== '\\') {
        out += c;
        this.i++;
        continue;
      }
      plain = false;
      const e = this.s[this.i + 1];
      if (e === 'u') {
        const hex = this.s.slice(this.i + 2, this.i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return this.fail('bad \\u escape: expected four hex digits');
        out += String.fromCharCode(parseInt(hex, 16));
        this.i += 6;
        continue;
      }
      const r = e === undefined ? undefined : ESCAPES[e];
      if (r === undefined) {
        return this.fail(`bad escape '\\${e ?? ''}' in a string (JSON has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`);
      }
      out += r;
      this.i += 2;
    }
  }

  private number(): JsonNode | Fail {
    const start = this.i;
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i));
    if (m === null) return this.fail("bad number: expected a digit after '-'", start + 1);
    this.i += m[0].length;
    const next = this.s[this.i];
    if (next !== undefined && /[0-9A-Za-z_.]/.test(next)) {
      const hint = m[0] === '0' && (next === 'x' || next === 'X')
        ? ' (write hex numbers as strings: "0x...")'
        : m[1] === '0' && /[0-9]/.test(next) ? ' (JSON numbers have no leading zeros)' : '';
      return this.fail(`bad number: unexpected ${this.found()}${hint}`);
    }
    return { kind: 'number', pos: this.pos(start), raw: m[0] };
  }
}

/** Parses one line of JSON; `line` is its 1-based line number, used in positions. */
export function parseJsonLine(text: string, line: number): JsonNode | Problem {
  const r = new LineParser(text, line).document();
  return r instanceof Fail ? r.problem : r;
}

export function isProblem(x: unknown): x is Problem {
  return typeof x === 'object' && x !== null && 'message' in x && 'pos' in x && !('kind' in x);
}

/** One meaningful line of a JSON Lines file. */
export interface JsonLine {
  readonly line: number;
  readonly node: JsonNode;
}

/**
 * Splits JSON Lines text, skipping blank lines and lines whose first non-blank characters are
 * `//`, and parses each of the others. Problems are collected, one per bad line.
 */
export function parseJsonLines(text: string): { lines: JsonLine[]; problems: Problem[] } {
  const lines: JsonLine[] = [];
  const problems: Problem[] = [];
  const raw = text.split('\n');
  // A final newline ends the last line rather than starting an empty one.
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  raw.forEach((src, k) => {
    const s = src.endsWith('\r') ? src.slice(0, -1) : src;
    const t = s.trimStart();
    if (t === '' || t.startsWith('//')) return;
    const r = parseJsonLine(s, k + 1);
    if (isProblem(r)) problems.push(r);
    else lines.push({ line: k + 1, node: r });
  });
  return { lines, problems };
}
