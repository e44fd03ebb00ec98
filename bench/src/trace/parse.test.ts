import { describe, expect, test } from 'vitest';
import { parseJsonLine, type JsonNode, type Problem } from './json.js';
import { formatTraceError, parseTrace } from './parse.js';

/** The errors of a trace, as the CLI prints them. */
function errors(text: string): string[] {
  return parseTrace(text, 't.jsonl').errors.map(formatTraceError);
}

function problem(line: string): string {
  const r = parseJsonLine(line, 1) as Problem | JsonNode;
  if (!('message' in r)) throw new Error(`parsed: ${line}`);
  return `${r.pos.col}: ${r.message}`;
}

describe('JSON errors name line, column and what was expected', () => {
  test('a missing comma between properties', () => {
    expect(errors('{"trace": 1}\n{"op": "close"}\n{"op": "close" "fd": 3}\n')).toEqual([
      't.jsonl:3:16: expected \',\' or \'}\' after a property value, found \'"\'',
    ]);
  });

  test.each([
    ['{"op": "close", "fd": 3,}', '25: expected a property name in double quotes, found \'}\''],
    ['{"op": "close", "fd": [1, 2}', '28: expected \',\' or \']\' after an array element, found \'}\''],
    ['{"op": "close", "fd": 3', '24: expected \',\' or \'}\' after a property value, found the end of the line'],
    ['{"op" "close"}', '7: expected \':\' after a property name, found \'"\''],
    ['{op: "close"}', '2: expected a property name in double quotes or \'}\', found \'o\''],
    ['{"op": \'close\'}', '8: expected a property value, found a single quote (JSON strings use double quotes)'],
    ['{"op": "clo', '8: unterminated string: expected \'"\''],
    ['{"op": "a\\qb"}', '10: bad escape \'\\q\' in a string (JSON has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)'],
    ['{"op": "a\\u12x4"}', '10: bad \\u escape: expected four hex digits'],
    ['{"fd": 0x10}', '9: bad number: unexpected \'x\' (write hex numbers as strings: "0x...")'],
    ['{"fd": 010}', '9: bad number: unexpected \'1\' (JSON numbers have no leading zeros)'],
    ['{"fd": -}', '9: bad number: expected a digit after \'-\''],
    ['{"fd": True}', '8: expected a property value, found \'True\' (a string needs double quotes; the JSON words are true, false and null)'],
    ['{"fd": 1} {', '11: unexpected \'{\' after the JSON value'],
    ['{"fd": 1, "fd": 2}', '11: duplicate property "fd"'],
    ['{"op": "a\tb"}', '10: control character U+0009 in a string (write it as an escape such as \\n)'],
  ])('%s', (line, want) => {
    expect(problem(line)).toBe(want);
  });

  test('every bad line is reported, in order, and good lines still parse', () => {
    const r = parseTrace('{"op": "close", "fd": 3}\n{"op": \n{"op": "close", "fd": 4}\n{"op": 1}\n', 't.jsonl');
    expect(r.errors.map(formatTraceError)).toEqual([
      't.jsonl:2:8: expected a property value, found the end of the line',
      't.jsonl:4:8: expected the op name as a string, found 1',
    ]);
    expect(r.calls.map((c) => c.line)).toEqual([1, 3]);
  });
});

describe('lines of a trace', () => {
  test('blank and // lines are ignored, CRLF is accepted, calls are numbered from 0', () => {
    const r = parseTrace('// a comment\r\n\r\n   \n{"trace": 1}\n  // indented comment\n{"op": "close", "fd": 3}\r\n{"op": "open", "path": "/dev/null", "as": "n"}\n', 't');
    expect(r.errors).toEqual([]);
    expect(r.header?.line).toBe(4);
    expect(r.calls.map((c) => [c.i, c.line, c.op.value])).toEqual([[0, 6, 'close'], [1, 7, 'open']]);
    expect(r.calls[1].as?.value).toBe('n');
    expect(r.calls[1].args.map((a) => a.name)).toEqual(['path']);
  });

  test('the header is optional and gives vendor and design with their positions', () => {
    expect(parseTrace('{"op": "close", "fd": 3}\n').header).toBeUndefined();
    const h = parseTrace('{"trace": 1, "platform": {"vendor": "none", "design": "upstream"}}\n').header!;
    expect(h.vendor).toEqual({ value: 'none', pos: { line: 1, col: 37 } });
    expect(h.design?.value).toBe('upstream');
  });

  test('a header must be the first line, of version 1, with known fields', () => {
    expect(errors('{"op": "close", "fd": 3}\n{"trace": 1}\n')).toEqual([
      't.jsonl:2:1: a header {"trace": 1, ...} may only be the first line of a trace',
    ]);
    expect(errors('{"trace": 2}\n')).toEqual(['t.jsonl:1:11: unsupported trace version 2: this replayer reads version 1']);
    expect(errors('{"trace": 1, "platfrom": {}}\n')).toEqual([
      't.jsonl:1:14: unknown header field "platfrom" (expected "trace" and "platform")',
    ]);
    expect(errors('{"trace": 1, "platform": {"vendor": 3, "cpu": "x"}}\n')).toEqual([
      't.jsonl:1:37: expected the vendor name as a string, found 3',
      't.jsonl:1:40: unknown platform field "cpu" (expected "vendor" or "design")',
    ]);
  });

  test('a call needs an op; "as" is a handle name; "expect" an object', () => {
    expect(errors('{"fd": 3}\n{"op": "close", "as": "$x"}\n{"op": "close", "expect": 0}\n')).toEqual([
      't.jsonl:1:1: expected an "op" property naming the call',
      't.jsonl:2:23: expected "as" to be a handle name (letters, digits, _), found "$x"',
      't.jsonl:3:27: expected "expect" to be an object of result fields, found 0',
    ]);
  });

  test('"comment" and keys starting with _ are notes for readers, not arguments', () => {
    const r = parseTrace('{"trace": 1, "_recorded": "6.18"}\n{"op": "close", "fd": 3, "comment": "x", "_why": 1}\n', 't');
    expect(r.errors).toEqual([]);
    expect(r.calls[0].args.map((a) => a.name)).toEqual(['fd']);
  });

  test('a line that is not an object', () => {
    expect(errors('[1]\n"x"\n')).toEqual([
      't.jsonl:1:1: expected a JSON object on each line, found an array',
      't.jsonl:2:1: expected a JSON object on each line, found "x"',
    ]);
  });
});
