import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { O_CLOEXEC, O_RDWR } from '@cocosim/mm';
import {
  NameTable, errnoByName, errnoName, isSiCodeName, names, signalByName, signalName, siCodeName,
} from './names.js';

describe('the name table', () => {
  test('gathers a module\'s exported integer constants whose names match the pattern', () => {
    const mod = { MFD_CLOEXEC: 1, MFD_ALLOW_SEALING: 2, MFD_name: 'x', FOLL_WRITE: 1, MFD_BIG: 1n << 60n, MFD_FRAC: 0.5, mfd: () => 0 };
    const t = new NameTable().register(mod, /^MFD_/);
    expect(t.names()).toEqual(['MFD_ALLOW_SEALING', 'MFD_BIG', 'MFD_CLOEXEC']);
    expect(t.get('MFD_BIG')).toBe(1n << 60n);
    expect(t.get('FOLL_WRITE')).toBeUndefined();
  });

  test('today\'s mm uAPI constants are in the default table; kernel-internal ones are not', () => {
    expect(names.get('O_RDWR')).toBe(BigInt(O_RDWR));
    expect(names.get('O_CLOEXEC')).toBe(BigInt(O_CLOEXEC));
    expect(names.get('FIOCLEX')).toBe(0x5451n);
    expect(names.get('FOLL_WRITE')).toBeUndefined();
    expect(names.get('GFP_KERNEL')).toBeUndefined();
  });

  test('one name with two values is a simulator bug', () => {
    expect(() => new NameTable().define('X_A', 1).define('X_A', 2)).toThrow(/X_A registered as 1 and 2/);
    expect(() => new NameTable().define('X_A', 1).define('X_A', 1n)).not.toThrow();
  });

  test('resolve: names and integers ORed; an unknown name with its offset', () => {
    const t = new NameTable().define('A_X', 1).define('A_Y', 4);
    expect(t.resolve('A_X|A_Y')).toBe(5n);
    expect(t.resolve('A_X|0x10|8')).toBe(0x19n);
    expect(t.resolve('A_X | A_Z')).toEqual({ unknown: 'A_Z', offset: 6 });
  });

  test('spell: bit masks as names joined by |, enums as one name; undefined when names cannot', () => {
    const t = new NameTable()
      .define('M_A', 1).define('M_B', 2).define('M_AB', 3).define('M_MASK', 0xff)
      .define('E_ONE', 1).define('E_TWO', 2).define('M_ANON', 0x20).define('M_ANONYMOUS', 0x20);
    expect(t.spell(3n, 'M_', 'bits')).toBe('M_AB');
    expect(t.spell(0x21n, 'M_', 'bits')).toBe('M_A|M_ANONYMOUS');
    expect(t.spell(0x100n, 'M_', 'bits')).toBeUndefined();
    expect(t.spell(0n, 'M_', 'bits')).toBeUndefined();
    expect(t.spell(2n, 'E_', 'enum')).toBe('E_TWO');
    expect(t.spell(3n, 'E_', 'enum')).toBeUndefined();
    expect(names.spell(BigInt(O_RDWR | O_CLOEXEC), 'O_', 'bits')).toBe('O_RDWR|O_CLOEXEC');
    expect(names.spell(0n, 'O_', 'bits')).toBe('O_RDONLY');
  });

  test('suggest: the closest name when one is close', () => {
    expect(names.suggest('O_CLOXEC')).toBe('O_CLOEXEC');
    expect(names.suggest('ZZZZZZZZZZZZ')).toBeUndefined();
  });
});

describe('errno, signal and si_code names', () => {
  test('errnos by name and number', () => {
    expect(errnoName(9)).toBe('EBADF');
    expect(errnoName(25)).toBe('ENOTTY');
    expect(errnoName(4000)).toBeUndefined();
    expect(errnoByName('ENOSYS')).toBe(38);
    expect(errnoByName('toString')).toBeUndefined();
  });

  test('signals and their si_codes', () => {
    expect(signalName(7)).toBe('SIGBUS');
    expect(signalName(11)).toBe('SIGSEGV');
    expect(signalByName('SIGBUS')).toBe(7);
    expect(siCodeName(7, 2)).toBe('BUS_ADRERR');
    expect(siCodeName(7, 4)).toBe('BUS_MCEERR_AR');
    expect(siCodeName(11, 2)).toBe('SEGV_ACCERR');
    expect(siCodeName(11, 0x80)).toBe('SI_KERNEL');
    expect(siCodeName(7, 99)).toBe('99');
    expect(isSiCodeName('SEGV_MAPERR')).toBe(true);
    expect(isSiCodeName('SIGBUS')).toBe(false);
  });

  test('every KVM_CAP_*, KVM_EXIT_* and errno name the kernel oracle knows (test/oracle/tables.h) means the same here', () => {
    const tables = readFileSync(new URL('../../../test/oracle/tables.h', import.meta.url), 'utf8');
    const entries = [...tables.matchAll(/\{ "([A-Z0-9_]+)", (\d+) \}/g)].map((m) => [m[1], Number(m[2])] as const);
    expect(entries.length).toBeGreaterThan(400);
    const wrong = entries.filter(([name, value]) => (name.startsWith('KVM_') ? names.get(name) !== BigInt(value) : errnoByName(name) !== value));
    expect(wrong).toEqual([]);
  });

  test('every constant name the kernel oracle spells out in oracle.c resolves here too', () => {
    const source = readFileSync(new URL('../../../test/oracle/oracle.c', import.meta.url), 'utf8');
    const spelt = [...new Set([...source.matchAll(/\{ *"([A-Z][A-Z0-9_]*)", */g)].map((m) => m[1]))];
    expect(spelt.length).toBeGreaterThan(100);
    const unknown = spelt.filter((n) => typeof names.resolve(n) !== 'bigint' && errnoByName(n) === undefined && signalByName(n) === undefined && !isSiCodeName(n));
    expect(unknown).toEqual([]);
  });
});
