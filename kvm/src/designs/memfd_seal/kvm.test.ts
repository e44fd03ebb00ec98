/**
 * The vendor hooks on memfd_seal's private pfn path (kvm.ts, shared by D5-D7), on a sw_protected
 * host whose kvm_x86_ops records kvm_arch_gmem_prepare() and kvm_arch_gmem_invalidate(): the
 * private fault prepares the sealed memfd's page, the punch of a conversion to shared gives it back
 * while it is still the file's, unbinding the memslot gives back what is left, and a failed
 * preparation fails the guest's fault. (The real vendors, SNP's RMP and TDX's S-EPT, are in
 * test/designs/memfd_seal_on_vendors.test.ts.)
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, Process, filemap_get_entry, folio_put, folio_ref_count, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import type { KvmX86Ops } from '../../kvm_x86_ops.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { KVM_EXIT_MEMORY_FAULT } from '../../uapi.js';
import { memfd_seal } from './index.js';
import { memfd_seal_vmm, private_fd_vmm_state } from './vmm.js';

const PG = 4096n;

/** One call of the recorded vendor hooks; `live`: the page still had a reference (not freed yet). */
type Call = { op: 'prepare'; pfn: number; gfn: number; order: number } | { op: 'invalidate'; start: number; end: number; live: boolean };

interface Rig {
  readonly v: CvmVm;
  readonly calls: Call[];
  /** What gmem_prepare returns. */
  prepare_rc: number;
}

function rig(): Rig {
  const calls: Call[] = [];
  const r = { calls, prepare_rc: 0 } as { calls: Call[]; prepare_rc: number; v: CvmVm };
  const x86_ops: KvmX86Ops = {
    ...kvm_sw_protected_x86_ops,
    gmem_prepare: (_kvm, pfn, gfn, order) => {
      calls.push({ op: 'prepare', pfn, gfn, order });
      return r.prepare_rc;
    },
    gmem_invalidate: (kvm, start, end) => {
      calls.push({ op: 'invalidate', start, end, live: folio_ref_count(kvm.kernel.store, start) > 0 });
    },
  };
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops }), memfd_seal.registrar()).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, memfd_seal_vmm, { size: 16n * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  r.v = v;
  return r;
}

/** The sealed memfd's page for `gpa` (the lookup's reference dropped), or undefined for a hole. */
function private_page(v: CvmVm, gpa: bigint): number | undefined {
  const file = v.p.task.files.lookup(private_fd_vmm_state(v, 'memfd_seal').private_fd)!;
  const folio = filemap_get_entry(v.kvm.kernel, file.f_mapping, Number((gpa - v.base) / PG));
  if (folio === undefined) return undefined;
  folio_put(v.kvm.kernel.store, folio);
  return folio;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

describe('memfd_seal: the vendor hooks of the private pfn path', () => {
  test('prepare on the private fault; invalidate on the punch (before the free) and on unbind; none for shared memory', () => {
    const r = rig();
    const { v, calls } = r;
    const X = v.base + 2n * PG;
    const Y = v.base + 7n * PG;
    const run1 = cvm_run(v, function* () {
      yield* guestLoad(v.base, 8);
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestStore(X, fill(0x5e));
      yield* guestLoad(X, 8);
    });
    expect(run1.conversions.map((c) => c.ret)).toEqual([0]);
    const pfn = private_page(v, X)!;
    // One private fault, one preparation of the memfd's page at its gfn; the shared load none.
    expect(calls).toEqual([{ op: 'prepare', pfn, gfn: Number(X / PG), order: 0 }]);

    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, false);
    });
    expect(calls.slice(1)).toEqual([{ op: 'invalidate', start: pfn, end: pfn + 1, live: true }]);
    // Given back while the file still held it; then the punch freed it.
    expect(private_page(v, X)).toBeUndefined();

    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, Y, 1n, true);
      yield* guestStore(Y, fill(0x11));
    });
    const pfn_y = private_page(v, Y)!;
    expect(calls.slice(2)).toEqual([{ op: 'prepare', pfn: pfn_y, gfn: Number(Y / PG), order: 0 }]);
    // The VMM exits without punching: the memslot's unbinding gives the page back, then the file frees it.
    v.p.task.files.close_all();
    expect(v.kvm.vm_dead).toBe(true);
    expect(calls.slice(3)).toEqual([{ op: 'invalidate', start: pfn_y, end: pfn_y + 1, live: true }]);
  });

  test('a failed preparation fails the guest\'s private fault (KVM_EXIT_MEMORY_FAULT, the vendor\'s errno) and maps nothing; the next fault prepares again', () => {
    const r = rig();
    const { v, calls } = r;
    const X = v.base + 3n * PG;
    r.prepare_rc = -Errno.EIO;
    const run1 = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, X, 1n, true);
      yield* guestStore(X, fill(0x5e));
    });
    expect(run1).toMatchObject({ ret: -1, errno: Errno.EIO, exit_reason: KVM_EXIT_MEMORY_FAULT });
    expect(calls).toHaveLength(1);
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
});
