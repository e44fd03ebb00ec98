/**
 * Helpers of the address-space tests: what /proc/self/maps and /proc/self/pagemap would show a C
 * test, and a snapshot of an mm's state for "a failed call changes nothing" checks.
 */
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  MAP_FAILED,
  VM_EXEC,
  VM_MAYSHARE,
  VM_READ,
  VM_WRITE,
  folio_ref_count,
  isSigInfo,
  page_folio,
  pte_present,
  type Process,
  type SigInfo,
} from '@cocosim/mm';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';

const PAGE = BigInt(PAGE_SIZE);

/** One /proc/self/maps line's essentials: [start, end) and the rwxp/s permissions. */
export interface MapsLine {
  start: bigint;
  end: bigint;
  perms: string;
  pgoff: bigint;
}

/** The process's VMAs as /proc/self/maps lists them. */
export function maps(p: Process): MapsLine[] {
  const out: MapsLine[] = [];
  for (const r of p.mm.mm_mt) {
    const v = r.entry;
    const f = v.vm_flags;
    out.push({
      start: v.vm_start,
      end: v.vm_end,
      perms: `${f & VM_READ ? 'r' : '-'}${f & VM_WRITE ? 'w' : '-'}${f & VM_EXEC ? 'x' : '-'}${f & VM_MAYSHARE ? 's' : 'p'}`,
      pgoff: BigInt(v.vm_pgoff) * PAGE,
    });
  }
  return out;
}

/** The maps lines within [lo, hi), as "start-end perms" strings (addresses relative to lo). */
export function maps_in(p: Process, lo: bigint, hi: bigint): string[] {
  return maps(p)
    .filter((m) => m.start >= lo && m.end <= hi)
    .map((m) => `${(m.start - lo).toString(16)}-${(m.end - lo).toString(16)} ${m.perms}`);
}

/** /proc/self/pagemap: the pfn mapped at addr (PTE or huge leaf), or undefined if not present. */
export function pagemap(p: Process, addr: bigint): Pfn | undefined {
  const vpn = Number(addr / PAGE);
  const pt = p.mm.pgd;
  const t = pt.ptes.get(Math.floor(vpn / 512));
  if (t !== undefined) {
    const f = t.flags[vpn % 512];
    return pte_present(f) ? (t.val[vpn % 512] as Pfn) : undefined;
  }
  const e = pt.pmds.get(Math.floor(vpn / 512));
  if (e !== undefined && pte_present(e.flags)) return (e.val + (vpn % 512)) as Pfn;
  return undefined;
}

/** A successful mmap: the address (fails the test on MAP_FAILED). */
export function mmap_ok(p: Process, addr: unknown, len: unknown, prot: unknown, flags: unknown, fd: unknown = -1, off: unknown = 0): bigint {
  const a = p.mmap(addr, len, prot, flags, fd, off);
  TEST_ASSERT(a !== MAP_FAILED, `mmap failed with errno ${p.errno}`);
  return a;
}

/** Assert mmap fails with `errno`. */
export function mmap_fails(p: Process, errno: number, addr: unknown, len: unknown, prot: unknown, flags: unknown, fd: unknown = -1, off: unknown = 0): void {
  const a = p.mmap(addr, len, prot, flags, fd, off);
  TEST_ASSERT(a === MAP_FAILED, `mmap should fail, got 0x${a.toString(16)}`);
  TEST_ASSERT_EQ(p.errno, errno, 'errno');
}

/** A load that must succeed: the bytes. */
export function load_ok(p: Process, addr: bigint, len: number): Uint8Array {
  const r = p.load(addr, len);
  TEST_ASSERT(!isSigInfo(r), `load at 0x${addr.toString(16)} raised ${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
  return r as Uint8Array;
}

/** A store that must succeed. */
export function store_ok(p: Process, addr: bigint, data: Uint8Array | number[]): void {
  const r = p.store(addr, data instanceof Uint8Array ? data : Uint8Array.from(data));
  TEST_ASSERT(r === 0, `store at 0x${addr.toString(16)} raised ${String((r as SigInfo).si_code)}`);
}

/** The signal an access must raise. */
export function expect_sig(r: unknown, signo: SigInfo['signo'], si_code: SigInfo['si_code'], si_addr: bigint): void {
  TEST_ASSERT(isSigInfo(r), `expected ${signo} ${si_code}, the access succeeded`);
  TEST_ASSERT_EQ({ signo: r.signo, si_code: r.si_code, si_addr: r.si_addr }, { signo, si_code, si_addr });
}

/**
 * Everything a failed call must leave alone: the VMAs, the mm counters, every page-table entry
 * and the refcount of every mapped folio.
 */
export function mm_snapshot(p: Process): string {
  const mm = p.mm;
  const store = p.kernel.store;
  const vmas = [...mm.mm_mt].map((r) => [r.first, r.last, r.entry.vm_flags, r.entry.vm_pgoff, r.entry.vm_file?.f_inode.i_ino ?? 0]);
  const ptes: number[][] = [];
  for (const [pmd, t] of [...mm.pgd.ptes].sort((a, b) => a[0] - b[0])) {
    for (let i = 0; i < 512; i++) {
      if (t.flags[i] === 0) continue;
      const ref = pte_present(t.flags[i]) && t.val[i] !== store.zero_pfn ? folio_ref_count(store, page_folio(store, t.val[i])) : -1;
      ptes.push([pmd * 512 + i, t.flags[i], t.val[i], ref]);
    }
  }
  return JSON.stringify({
    vmas,
    ptes,
    pmds: [...mm.pgd.pmds],
    counters: [mm.map_count, mm.total_vm, mm.locked_vm, mm.data_vm, mm.exec_vm, mm.stack_vm, ...mm.rss_stat],
  });
}
