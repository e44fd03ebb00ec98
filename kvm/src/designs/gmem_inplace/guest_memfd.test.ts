/**
 * kvm_gmem_get_pfn()'s preparation with in-place conversion (guest_memfd.ts
 * kvm_gmem_inplace_prepare_folio()), on a sw_protected host whose kvm_x86_ops records
 * kvm_arch_gmem_prepare() and kvm_arch_gmem_invalidate(): a private fault prepares the page every
 * time (even one the VMM faulted in while shared, which is uptodate), a shared fault never does,
 * a conversion to shared gives the page back, and contents are left alone for a page already
 * uptodate. (SNP's RMP and TDX's S-EPT: test/designs/gmem_inplace_on_vendors.test.ts.)
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, Process, filemap_get_entry, folio_put, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import type { KvmX86Ops } from '../../kvm_x86_ops.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { KVM_EXIT_MEMORY_FAULT } from '../../uapi.js';
import { gmem_inplace, type GmemInplaceOptions } from './index.js';
import { gmem_inplace_vmm, gmem_inplace_vmm_state } from './vmm.js';

const PG = 4096n;

type Call = { op: 'prepare'; pfn: number; gfn: number; order: number } | { op: 'invalidate'; start: number; end: number };

interface Rig {
  readonly v: CvmVm;
  readonly calls: Call[];
  prepare_rc: number;
}

function rig(opts: GmemInplaceOptions = {}): Rig {
  const r = { calls: [] as Call[], prepare_rc: 0 } as { v: CvmVm; calls: Call[]; prepare_rc: number };
  const x86_ops: KvmX86Ops = {
    ...kvm_sw_protected_x86_ops,
    gmem_prepare: (_kvm, pfn, gfn, order) => {
      r.calls.push({ op: 'prepare', pfn, gfn, order });
      return r.prepare_rc;
    },
    gmem_invalidate: (_kvm, start, end) => {
      r.calls.push({ op: 'invalidate', start, end });
    },
  };
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops }), gmem_inplace.registrar(opts)).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, gmem_inplace_vmm, { size: 16n * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  r.v = v;
  return r;
}

/** The guest_memfd page of `gpa` (the lookup's reference dropped), or undefined for a hole. */
function gmem_page(v: CvmVm, gpa: bigint): number | undefined {
  const file = v.p.task.files.lookup(gmem_inplace_vmm_state(v).gmem_fd)!;
  const folio = filemap_get_entry(v.kvm.kernel, file.f_mapping, Number((gpa - v.base) / PG));
  if (folio === undefined) return undefined;
  folio_put(v.kvm.kernel.store, folio);
  return folio;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

describe('gmem_inplace: kvm_gmem_get_pfn() prepares private pages only, on every private fault', () => {
  test('VMM-faulted page: no preparation while shared, one per private fault, given back at to-shared; the bytes stay', () => {
    const { v, calls } = rig();
    const X = v.base + 4n * PG;
    const hva = gmem_inplace_vmm.hva(v, X)!;
    expect(v.p.store(hva, fill(0xaa))).toBe(0);
    const pfn = gmem_page(v, X)!;
    const gfn = Number(X / PG);
    const rec: Record<string, Uint8Array | undefined> = {};
    cvm_run(v, function* () {
      rec.shared = yield* guestLoad(X, 8);
      yield* v.vendor.guest_convert(v, X, 1n, true);
      rec.priv = yield* guestLoad(X, 8);
    });
    expect(rec.shared).toEqual(fill(0xaa));
    // An uptodate page is not zeroed: in place, the private page holds the VMM's bytes.
    expect(rec.priv).toEqual(fill(0xaa));
    expect(calls).toEqual([{ op: 'prepare', pfn, gfn, order: 0 }]);

    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, false);
      rec.shared2 = yield* guestLoad(X, 8);
      yield* v.vendor.guest_convert(v, X, 1n, true);
      rec.priv2 = yield* guestLoad(X, 8);
    });
    expect(rec.shared2).toEqual(fill(0xaa));
    expect(rec.priv2).toEqual(fill(0xaa));
    expect(calls.slice(1)).toEqual([{ op: 'invalidate', start: pfn, end: pfn + 1 }, { op: 'prepare', pfn, gfn, order: 0 }]);
    expect(gmem_page(v, X)).toBe(pfn);
  });

  test('a page first allocated by a private fault is zeroed, then prepared', () => {
    const { v, calls } = rig();
    const X = v.base + 9n * PG;
    let priv: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, true);
      priv = yield* guestLoad(X, 8);
    });
    expect(priv).toEqual(fill(0));
    expect(calls).toEqual([{ op: 'prepare', pfn: gmem_page(v, X)!, gfn: Number(X / PG), order: 0 }]);
  });

  test('a failed preparation fails the private fault with the vendor\'s errno; the next fault asks again', () => {
    const r = rig();
    const { v, calls } = r;
    const X = v.base + 2n * PG;
    r.prepare_rc = -Errno.ENOMEM;
    const run1 = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestStore(X, fill(0x5e));
    });
    expect(run1).toMatchObject({ ret: -1, errno: Errno.ENOMEM, exit_reason: KVM_EXIT_MEMORY_FAULT });
    r.prepare_rc = 0;
    let seen: Uint8Array | undefined;
    const run2 = cvm_run(v, function* () {
      yield* guestStore(X, fill(0x5e));
      seen = yield* guestLoad(X, 8);
    });
    expect(run2.errno).toBe(0);
    expect(seen).toEqual(fill(0x5e));
    expect(calls.map((c) => c.op)).toEqual(['prepare', 'prepare']);
  });

  test('gmem_in_place_conversion=0: the 6.18 base decides (prepared once, when the folio is not uptodate)', () => {
    const { v, calls } = rig({ vm_memory_attributes: true, gmem_in_place_conversion: false });
    const X = v.base + 4n * PG;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestLoad(X, 8);
      yield* v.vendor.guest_convert(v, X, 1n, false);
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestLoad(X, 8);
    });
    // The upstream VMM punches guest_memfd at to-shared: the second private fault is a new page.
    expect(calls.filter((c) => c.op === 'prepare')).toHaveLength(2);
    expect(calls.map((c) => c.op)).toEqual(['prepare', 'invalidate', 'prepare']);
  });
});
