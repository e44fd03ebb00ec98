import { describe, expect, expectTypeOf, test } from 'vitest';
import { VirtualClock } from '../clock.js';
import { Gpa, Pfn } from '../types.js';
import type { TraceEventMap, TraceEventName } from './events.js';
import { RingSink } from './ring.js';
import { Tracer } from './tracer.js';

// What a vendor package does (through '@cocosim/core'; here the defining module itself).
declare module './events.js' {
  interface TraceEventMap {
    cocosim_selftest_merged: { gpa: Gpa; level: number };
  }
}

describe('TraceEventMap', () => {
  test('kernel tracepoints keep their kernel field names', () => {
    expectTypeOf<keyof TraceEventMap['mm_filemap_add_to_page_cache']>().toEqualTypeOf<'pfn' | 'i_ino' | 'index' | 'order'>();
    expectTypeOf<keyof TraceEventMap['memory_failure_event']>().toEqualTypeOf<'pfn' | 'type' | 'result'>();
    expectTypeOf<keyof TraceEventMap['kvm_page_fault']>().toEqualTypeOf<'vcpu_id' | 'guest_rip' | 'fault_address' | 'error_code'>();
    expectTypeOf<keyof TraceEventMap['mm_page_alloc']>().toEqualTypeOf<'pfn' | 'order' | 'gfp_flags' | 'migratetype'>();
    expectTypeOf<TraceEventMap['kvm_page_fault']['fault_address']>().toEqualTypeOf<Gpa>();
  });

  test('names the kernel does not have are prefixed cocosim_', () => {
    const kernel = [
      'mm_filemap_add_to_page_cache', 'mm_filemap_delete_from_page_cache', 'mm_page_alloc', 'mm_page_free', 'tlb_flush',
      'memory_failure_event', 'kvm_page_fault', 'kvm_exit', 'kvm_entry', 'kvm_userspace_exit', 'kvm_hypercall',
      'kvm_vm_set_mem_attributes', 'kvm_unmap_hva_range', 'kvm_mmu_spte_requested', 'kvm_mmu_set_spte',
      'kvm_tdp_mmu_spte_changed', 'kvm_mmu_split_huge_page',
      'map', 'unmap', 'io_page_fault',
    ] as const;
    // A runtime list of the map's keys, checked against the type in both directions.
    const names = [
      ...kernel, 'cocosim_kvm_set_user_memory_region', 'cocosim_warn', 'cocosim_selftest_merged',
      'cocosim_kvm_gmem_create', 'cocosim_kvm_gmem_release', 'cocosim_kvm_gmem_bind', 'cocosim_kvm_gmem_unbind',
      'cocosim_kvm_gmem_invalidate', 'cocosim_kvm_gmem_get_pfn', 'cocosim_kvm_gmem_populate',
      'cocosim_cca_rmi', 'cocosim_cca_rsi', 'cocosim_cca_realm_sea', 'cocosim_pkvm_hyp', 'cocosim_pkvm_host_abort',
    ] as const satisfies readonly TraceEventName[];
    expectTypeOf<TraceEventName>().toEqualTypeOf<(typeof names)[number]>();
    const isKernel = new Set<string>(kernel);
    for (const n of names) if (!isKernel.has(n)) expect(n).toMatch(/^cocosim_/);
  });

  test('a merged tracepoint is emitted and found like a built-in one, and typed', () => {
    const tracer = new Tracer(new VirtualClock());
    const ring = new RingSink();
    tracer.addSink(ring);
    tracer.emit('cocosim_selftest_merged', { gpa: Gpa(0x1000n), level: 1 });
    // @ts-expect-error a field of the wrong type is a compile error
    tracer.emit('cocosim_selftest_merged', { gpa: 0x1000, level: 1 });
    // @ts-expect-error so is an unknown tracepoint
    tracer.emit('cocosim_selftest_unmerged', {});
    // @ts-expect-error and a missing field
    tracer.emit('mm_page_free', { pfn: Pfn(1) });
    expect(ring.find('cocosim_selftest_merged', { gpa: Gpa(0x1000n) })).toHaveLength(1);
  });
});
