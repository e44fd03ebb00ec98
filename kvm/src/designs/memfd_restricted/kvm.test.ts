/**
 * The vendor hooks on memfd_restricted's private pfn path (kvm.ts, after SNP RFC v8 03/56), on a
 * sw_protected host whose kvm_x86_ops records kvm_arch_gmem_prepare() and
 * kvm_arch_gmem_invalidate(): the private fault prepares the restrictedmem page, the discard's
 * punch (kvm_restrictedmem_invalidate_begin()) gives it back while the shmem file still holds it,
 * a VMM that never discards keeps it prepared, and unbinding the memslot gives back the rest.
 * (SNP's RMP and TDX's S-EPT: test/designs/memfd_restricted_on_vendors.test.ts.)
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, Process, filemap_get_entry, folio_put, folio_ref_count, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import type { KvmX86Ops } from '../../kvm_x86_ops.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { private_fd_vmm_state } from '../memfd_seal/vmm.js';
import { memfd_restricted_design, restrictedmem } from './index.js';
import { memfd_restricted_vmm } from './vmm.js';

const PG = 4096n;

type Call = { op: 'prepare'; pfn: number; gfn: number } | { op: 'invalidate'; start: number; end: number; live: boolean };

function rig(discard: boolean): { v: CvmVm; calls: Call[] } {
  const calls: Call[] = [];
  const x86_ops: KvmX86Ops = {
    ...kvm_sw_protected_x86_ops,
    gmem_prepare: (_kvm, pfn, gfn) => {
      calls.push({ op: 'prepare', pfn, gfn });
      return 0;
    },
    gmem_invalidate: (kvm, start, end) => {
      calls.push({ op: 'invalidate', start, end, live: folio_ref_count(kvm.kernel.store, start) > 0 });
    },
  };
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops }), memfd_restricted_design.registrar())
    .resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, memfd_restricted_vmm, { size: 16n * PG, policy: { discard } });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return { v, calls };
}

/** The restricted fd's page for `gpa` (the lookup's reference dropped), or undefined for a hole. */
function private_page(v: CvmVm, gpa: bigint): number | undefined {
  const file = v.p.task.files.lookup(private_fd_vmm_state(v, 'memfd_restricted').private_fd)!;
  const folio = filemap_get_entry(v.kvm.kernel, restrictedmem(file)!.memfd.f_mapping, Number((gpa - v.base) / PG));
  if (folio === undefined) return undefined;
  folio_put(v.kvm.kernel.store, folio);
  return folio;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

describe('memfd_restricted: the vendor hooks of the private pfn path', () => {
  test('prepare on the private fault; the discard\'s punch gives the page back before freeing it', () => {
    const { v, calls } = rig(true);
    const X = v.base + 5n * PG;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestStore(X, fill(0x42));
    });
    const pfn = private_page(v, X)!;
    expect(calls).toEqual([{ op: 'prepare', pfn, gfn: Number(X / PG) }]);
    const r = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, false);
      yield* guestLoad(X, 8);
    });
    expect(r.conversions.map((c) => c.ret)).toEqual([0]);
    // restrictedmem_punch_hole() notifies once per bound index of [start, end] (two here); the
    // vendor's invalidation is idempotent (SNP: the page is no longer assigned the second time).
    expect(calls.length).toBeGreaterThan(1);
    for (const c of calls.slice(1)) expect(c).toEqual({ op: 'invalidate', start: pfn, end: pfn + 1, live: true });
    expect(private_page(v, X)).toBeUndefined();
  });

  test('without discard the private copy stays prepared across to-shared; the VM\'s end gives it back', () => {
    const { v, calls } = rig(false);
    const X = v.base + 5n * PG;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestStore(X, fill(0x42));
      yield* v.vendor.guest_convert(v, X, 1n, false);
      yield* guestLoad(X, 8);
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestLoad(X, 8);
    });
    const pfn = private_page(v, X)!;
    // Each private fault asks the vendor (which knows the page is prepared already); nothing was given back.
    expect(calls).toEqual([{ op: 'prepare', pfn, gfn: Number(X / PG) }, { op: 'prepare', pfn, gfn: Number(X / PG) }]);
    v.p.task.files.close_all();
    expect(v.kvm.vm_dead).toBe(true);
    expect(calls.slice(2)).toEqual([{ op: 'invalidate', start: pfn, end: pfn + 1, live: true }]);
  });
});
