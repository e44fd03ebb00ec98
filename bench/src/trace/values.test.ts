import { describe, expect, test } from 'vitest';
import { parseJsonLine, type JsonNode, type Problem } from './json.js';
import { NameTable, names } from './names.js';
import { convertArg, evaluate, isExprProblem, type ArgKind, type Expr } from './values.js';

const scope = { names, handles: new Set(['h', 'fd', 'map']) };

function node(json: string): JsonNode {
  return parseJsonLine(json, 1) as JsonNode;
}

/** Converts and evaluates a JSON value, or gives the problem as "col: message". */
function conv(json: string, kind: ArgKind, bindings: Record<string, bigint> = {}): unknown {
  const e = convertArg(node(json), kind, scope);
  if (isExprProblem(e)) return `${e.pos.col}: ${e.message}`;
  return evaluate(e as Expr, kind, new Map(Object.entries(bindings)));
}

function problemOf(json: string, kind: ArgKind): string {
  const e = convertArg(node(json), kind, scope);
  return isExprProblem(e) ? (e as Problem).message : 'no problem';
}

describe('integers', () => {
  test('JSON numbers up to 2^53-1; beyond, a string is required', () => {
    expect(conv('9007199254740991', 'u64')).toBe(2 ** 53 - 1);
    expect(conv('-9007199254740991', 'int')).toBe(-(2 ** 53 - 1));
    expect(problemOf('9007199254740992', 'u64')).toBe(
      'integer 9007199254740992 is beyond 2^53-1, where JSON readers lose digits: write it as a string ("9007199254740992" or "0x20000000000000")',
    );
    expect(conv('"9007199254740992"', 'u64')).toBe(2n ** 53n);
    expect(conv('"0x20000000000000"', 'u64')).toBe(2n ** 53n);
  });

  test('"0xffffffffffffffff" is the largest u64; one more is out of range', () => {
    expect(conv('"0xffffffffffffffff"', 'u64')).toBe(0xffff_ffff_ffff_ffffn);
    expect(conv('"18446744073709551615"', 'int')).toBe(0xffff_ffff_ffff_ffffn);
    expect(problemOf('"0x10000000000000000"', 'u64')).toBe('"0x10000000000000000" is out of range for an unsigned 64-bit integer');
  });

  test('small values stay numbers, whatever the spelling', () => {
    expect(conv('"4096"', 'u64')).toBe(4096);
    expect(conv('"0x1000"', 'int')).toBe(4096);
    expect(conv('"-0x10"', 'int')).toBe(-16);
    expect(conv('1e3', 'int')).toBe(1000);
  });

  test('negative where the C type is signed: fd -1, an off_t; not for a u64', () => {
    expect(conv('-1', 'fd')).toBe(-1);
    expect(conv('"-1"', 'fd')).toBe(-1);
    expect(conv('-4096', 'int')).toBe(-4096);
    expect(problemOf('-1', 'u64')).toBe('-1 is out of range for an unsigned 64-bit integer');
    expect(problemOf('2147483648', 'fd')).toBe('2147483648 is out of range for an fd (a C int)');
    expect(conv('-2147483648', 'fd')).toBe(-(2 ** 31));
  });

  test('fractions, booleans and names are not integers', () => {
    expect(problemOf('1.5', 'int')).toBe('expected an integer, found 1.5');
    expect(problemOf('true', 'fd')).toBe('expected an integer (a JSON number, or a string in decimal or 0x hex), found true');
    expect(problemOf('"O_RDWR"', 'u64')).toBe('expected an integer (a JSON number, or a string in decimal or 0x hex), found "O_RDWR"');
    expect(problemOf('"0x"', 'int')).toBe('expected an integer (a JSON number, or a string in decimal or 0x hex), found "0x"');
  });
});

describe('flags', () => {
  test('a number, or names joined by |, with integers allowed among them', () => {
    expect(conv('2', 'flags')).toBe(2);
    expect(conv('"O_RDWR|O_CLOEXEC"', 'flags')).toBe(0o2000002);
    expect(conv('" O_RDWR | O_CLOEXEC "', 'flags')).toBe(0o2000002);
    expect(conv('"O_CLOEXEC|0x1"', 'flags')).toBe(0o2000001);
  });

  test('an unknown name is reported at its own column, with a suggestion', () => {
    expect(conv('"O_RDWR|O_CLOXEC"', 'flags')).toBe('9: unknown name "O_CLOXEC" (did you mean O_CLOEXEC?)');
    expect(conv('"NO_SUCH_THING_AT_ALL"', 'flags')).toBe('2: unknown name "NO_SUCH_THING_AT_ALL"');
    expect(problemOf('""', 'flags')).toBe('expected an integer or kernel names joined by \'|\', found an empty string');
    expect(problemOf('"O_RDWR|"', 'flags')).toBe('unknown name ""');
  });
});

describe('data', () => {
  test('hex, either case, or fill', () => {
    expect(conv('"deadBEEF"', 'data')).toEqual(Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    expect(conv('""', 'data')).toEqual(new Uint8Array(0));
    expect(conv('{"fill": 170, "len": 3}', 'data')).toEqual(Uint8Array.of(0xaa, 0xaa, 0xaa));
    expect(conv('{"fill": "0xff", "len": "0x2"}', 'data')).toEqual(Uint8Array.of(0xff, 0xff));
    expect(conv('{"fill": 0, "len": 0}', 'data')).toEqual(new Uint8Array(0));
  });

  test('each evaluation is a fresh buffer (a call may write into it)', () => {
    const e = convertArg(node('"00"'), 'data', scope) as Expr;
    const a = evaluate(e, 'data', new Map()) as Uint8Array;
    a[0] = 1;
    expect(evaluate(e, 'data', new Map())).toEqual(Uint8Array.of(0));
  });

  test('bad data', () => {
    expect(conv('"abc"', 'data')).toBe('1: expected data: a hex string ("deadbeef") or {"fill": BYTE, "len": N}: odd number of hex digits (3)');
    expect(conv('"00zz"', 'data')).toBe('4: expected data: a hex string ("deadbeef") or {"fill": BYTE, "len": N}: \'z\' is not a hex digit');
    expect(problemOf('"0xdead"', 'data')).toContain('data hex has no 0x prefix');
    expect(problemOf('{"fill": 256, "len": 1}', 'data')).toBe('"fill" must be a byte value, 0 to 255');
    expect(problemOf('{"fill": 1, "len": -1}', 'data')).toBe('"len" must be 0 to 1073741824');
    expect(problemOf('{"fill": 1}', 'data')).toContain('missing "len"');
    expect(problemOf('{"fill": 1, "len": 1, "x": 0}', 'data')).toBe('unknown data field "x" (expected "fill" and "len")');
    expect(problemOf('3', 'data')).toContain('found 3');
  });
});

describe('references', () => {
  test('"$h", "$h+4096" and "$h+0x1000" add to the bound value', () => {
    const b = { h: 0x7f00_0000_0000n };
    expect(conv('"$h"', 'u64', b)).toBe(0x7f00_0000_0000);
    expect(conv('"$h+4096"', 'u64', b)).toBe(0x7f00_0000_1000);
    expect(conv('"$h+0x1000"', 'u64', b)).toBe(0x7f00_0000_1000);
    expect(conv('"$h-4"', 'u64', b)).toBe(0x7f00_0000_0000 - 4);
    expect(conv('"$h-0x1000"', 'u64', b)).toBe(0x7eff_ffff_f000);
  });

  test('arithmetic is C\'s: an address wraps modulo 2^64, an fd is an int', () => {
    expect(conv('"$map+4096"', 'u64', { map: -1n })).toBe(4095);
    expect(conv('"$map"', 'u64', { map: -1n })).toBe(0xffff_ffff_ffff_ffffn);
    expect(conv('"$fd"', 'fd', { fd: -1n })).toBe(-1);
    expect(conv('"$fd+1"', 'int', { fd: 3n })).toBe(4);
  });

  test('bad references: syntax, and handles no earlier line bound', () => {
    expect(problemOf('"$h*2"', 'u64')).toBe('bad reference "$h*2": expected "$name", "$name+N" or "$name-N" (the offset of $h is +N or -N, N in decimal or 0x hex)');
    expect(problemOf('"$h+-4"', 'u64')).toContain('bad reference "$h+-4"');
    expect(problemOf('"$h+"', 'u64')).toContain('bad reference "$h+"');
    expect(problemOf('"$"', 'u64')).toBe('bad reference "$": expected "$name", "$name+N" or "$name-N"');
    expect(problemOf('"$nope"', 'fd')).toBe('unknown handle "$nope": no earlier line has "as": "nope" (bound so far: $h, $fd, $map)');
    const none = convertArg(node('"$x"'), 'fd', { names, handles: new Set() }) as Problem;
    expect(none.message).toBe('unknown handle "$x": no earlier line has "as": "x" (no earlier line binds a handle)');
  });
});

describe('strings and structs', () => {
  test('a string, or null for NULL', () => {
    expect(conv('"/dev/kvm"', 'string')).toBe('/dev/kvm');
    expect(conv('null', 'string')).toBe(null);
    expect(problemOf('3', 'string')).toBe('expected a string (or null for a NULL pointer), found 3');
  });

  test('a struct: kernel field names, values as integers, names or refs; nested and arrays', () => {
    const v = conv('{"slot": 0, "flags": "O_CLOEXEC", "userspace_addr": "$map+0x1000", "size": "0x100000000", "inner": {"a": [1, "2"]}}', 'struct', { map: 0x10000n });
    expect(v).toEqual({ slot: 0, flags: 0o2000000, userspace_addr: 0x11000, size: 0x1_0000_0000, inner: { a: [1, 2] } });
  });

  test('ioctl\'s arg may be a bare integer, a name, or null (0)', () => {
    expect(conv('7', 'struct')).toBe(7);
    expect(conv('"O_RDWR"', 'struct')).toBe(2);
    expect(conv('null', 'struct')).toBe(0);
    expect(problemOf('{"a": true}', 'struct')).toBe('expected an integer or kernel names joined by \'|\', found true');
  });

  test('a private name table resolves only its own names', () => {
    const t = new NameTable().define('KVM_CREATE_VM', 0xae01);
    const e = convertArg(node('"KVM_CREATE_VM"'), 'flags', { names: t, handles: new Set() });
    expect(evaluate(e as Expr, 'flags', new Map())).toBe(0xae01);
    expect(isExprProblem(convertArg(node('"O_RDWR"'), 'flags', { names: t, handles: new Set() }))).toBe(true);
  });
});
