/*
 * SEV-SNP private memory after launch: a guest program converts a page shared -> private ->
 * shared -> private through the GHCB page state change (PSC NAE event and MSR protocol), which
 * KVM forwards to user space as KVM_HC_MAP_GPA_RANGE exits; user space flips the memory attribute
 * (and optionally punches the guest_memfd hole); the guest PVALIDATEs. Contents are checked by the
 * guest and the host at every step; the guest touching a page it did not validate gets #VC.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { ACR_FLAGS_NONE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GFP_KERNEL } from '@cocosim/mm';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_EXIT_HLT, KVM_EXIT_HYPERCALL, KVM_EXIT_SHUTDOWN, KVM_EXIT_SYSTEM_EVENT, KVM_HC_MAP_GPA_RANGE, fwcall,
  guestFill, guestLoad, guestStore, hlt, type GuestCode,
} from '@cocosim/kvm';
import {
  BASE, addr_gpa2hva, gmem_pfn, image, kvm_gpa_to_guest_memfd, snpHost, snp_launch, snp_vm, vcpu_run, vm_enable_cap, vm_set_private,
  type SnpVm,
} from './snp_env.test-util.js';
import {
  GHCB_MSR_PSC_RESP, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_SEV_SNP_PAGE_TYPE_NORMAL, KVM_SYSTEM_EVENT_SEV_TERM, SVM_EXIT_NOT_VALIDATED,
  SVM_VMGEXIT_PSC, VMGEXIT_PSC_ERROR_INVALID_ENTRY, VMGEXIT_PSC_ERROR_INVALID_HDR, VMGEXIT_PSC_OP_PRIVATE, VMGEXIT_PSC_OP_SHARED,
  X86_TRAP_VC, psc_buffer_decode, psc_buffer_encode, sev_es_terminate, sev_host, snp_psc, snp_psc_msr, snp_set_memory_private,
  snp_set_memory_shared,
} from './index.js';

const PG = BigInt(PAGE_SIZE);
const SCRATCH = BASE + PG;
const TARGET = BASE + 2n * PG;

/**
 * The VMM's loop: KVM_RUN until the guest halts or shuts down, answering each KVM_HC_MAP_GPA_RANGE
 * exit by setting the range's attribute (and punching the guest_memfd hole of a range made shared
 * when `punch` says so). Returns the exits it saw and the final exit reason.
 */
function run_vmm(s: SnpVm, punch: (gpa: bigint) => boolean = () => false): { maps: bigint[][]; exit: number } {
  const maps: bigint[][] = [];
  for (let i = 0; i < 64; i++) {
    vcpu_run(s.vcpu);
    const run = s.vcpu.run;
    if (run.exit_reason !== KVM_EXIT_HYPERCALL) return { maps, exit: run.exit_reason };
    expect(run.hypercall.nr).toBe(BigInt(KVM_HC_MAP_GPA_RANGE));
    const [gpa, npages, attrs] = run.hypercall.args as [bigint, bigint, bigint];
    maps.push([gpa, npages, attrs]);
    const size = npages * PG;
    if (attrs & KVM_MAP_GPA_RANGE_ENCRYPTED) {
      vm_set_private(s.vm, gpa, size, true);
    } else {
      vm_set_private(s.vm, gpa, size, false);
      if (punch(gpa)) {
        const { fd, fd_offset } = kvm_gpa_to_guest_memfd(s.vm, gpa);
        expect(s.vm.p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, fd_offset, size)).toBe(0);
      }
    }
    run.hypercall.ret = 0n;
  }
  throw new Error('run_vmm: the guest did not halt');
}

function fill(b: number): Uint8Array {
  return new Uint8Array(PAGE_SIZE).fill(b);
}

describe('SNP conversion through PSC', () => {
  test('shared -> private -> shared -> private keeps each side\'s contents; a punched private page comes back as new memory', () => {
    const host = snpHost();
    const seen: Record<string, Uint8Array> = {};
    const rc: bigint[] = [];
    function* guest(): GuestCode {
      seen.launched = yield* guestLoad(BASE, PAGE_SIZE);
      yield* guestFill(TARGET, 0x11, PAGE_SIZE);
      rc.push(yield* snp_set_memory_private(TARGET, 1, SCRATCH));
      seen.private_first = yield* guestLoad(TARGET, PAGE_SIZE);
      yield* guestFill(TARGET, 0x22, PAGE_SIZE);
      seen.private_written = yield* guestLoad(TARGET, PAGE_SIZE);
      rc.push(yield* snp_set_memory_shared(TARGET, 1, SCRATCH));
      seen.shared_again = yield* guestLoad(TARGET, PAGE_SIZE);
      rc.push(yield* snp_set_memory_private(TARGET, 1, SCRATCH));
      seen.private_again = yield* guestLoad(TARGET, PAGE_SIZE);
      rc.push(yield* snp_set_memory_shared(TARGET, 1, SCRATCH));
      rc.push(yield* snp_set_memory_private(TARGET, 1, SCRATCH));
      seen.private_after_punch = yield* guestLoad(TARGET, PAGE_SIZE);
    }
    const s = snp_vm(host, guest, 1);
    vm_enable_cap(s.vm, KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE);
    const img = image(1, 0x5a);
    snp_launch(s, [{ gpa: BASE, data: img, type: KVM_SEV_SNP_PAGE_TYPE_NORMAL }]);
    let shared_conversions = 0;
    const { maps, exit } = run_vmm(s, () => ++shared_conversions === 2);
    expect(exit).toBe(KVM_EXIT_HLT);
    expect(rc).toEqual([0n, 0n, 0n, 0n, 0n]);
    // Each PSC became one KVM_HC_MAP_GPA_RANGE exit of one 4 KiB page (ENCRYPTED = bit 4).
    expect(maps).toEqual([
      [TARGET, 1n, 0x10n], [TARGET, 1n, 0n], [TARGET, 1n, 0x10n], [TARGET, 1n, 0n], [TARGET, 1n, 0x10n],
    ]);
    expect(seen.launched).toEqual(img);
    // A fresh private page is neither the shared data nor zeros: the host zeroed it through its own
    // key, the guest reads it through its ASID's.
    expect(seen.private_first).not.toEqual(fill(0x11));
    expect(seen.private_first).not.toEqual(fill(0));
    expect(seen.private_written).toEqual(fill(0x22));
    // To shared: the guest sees the shared page again, which kept what the guest wrote there.
    expect(seen.shared_again).toEqual(fill(0x11));
    // Back to private without a hole punched: the same gmem page, same key: the private data is back.
    expect(seen.private_again).toEqual(fill(0x22));
    // After the hole was punched, the page is a new one.
    expect(seen.private_after_punch).not.toEqual(fill(0x22));
    expect(seen.private_after_punch).not.toEqual(fill(0x11));
    // The host only ever sees the shared page.
    expect(s.vm.p.load(addr_gpa2hva(s.vm, TARGET), PAGE_SIZE)).toEqual(fill(0x11));
    // The guest's PSC descriptor was written back with cur_entry past its one entry, cur_page = 1.
    const buf = s.vm.p.load(addr_gpa2hva(s.vm, SCRATCH), 16) as Uint8Array;
    expect(psc_buffer_decode(buf, 1)).toEqual({ cur_entry: 1, end_entry: 0, entries: [{ cur_page: 1, gfn: TARGET >> 12n, operation: 1, pagesize: 0 }] });
    // The private page is Guest-Valid in the RMP, for this VM, at its gpa.
    const e = sev_host(host.kernel).rmp.authoritative(gmem_pfn(s.kvm, TARGET)).e;
    expect(e).toMatchObject({ assigned: true, validated: true, gpa: TARGET });
  });

  test('the MSR protocol converts one page; its response is GHCB_MSR_PSC_RESP', () => {
    const host = snpHost();
    const resp: bigint[] = [];
    function* guest(): GuestCode {
      resp.push(yield* snp_psc_msr(TARGET, true));
    }
    const s = snp_vm(host, guest, 1);
    vm_enable_cap(s.vm, KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE);
    snp_launch(s, []);
    const { maps, exit } = run_vmm(s);
    expect(exit).toBe(KVM_EXIT_HLT);
    expect(maps).toEqual([[TARGET, 1n, 0x10n]]);
    expect(resp).toEqual([GHCB_MSR_PSC_RESP]);
  });

  test('without KVM_CAP_EXIT_HYPERCALL the PSC fails in the guest (VMGEXIT_PSC_ERROR_GENERIC) and nothing changes', () => {
    const host = snpHost();
    const rc: bigint[] = [];
    function* guest(): GuestCode {
      rc.push(yield* snp_set_memory_private(TARGET, 1, SCRATCH));
    }
    const s = snp_vm(host, guest, 1);
    snp_launch(s, []);
    expect(run_vmm(s)).toEqual({ maps: [], exit: KVM_EXIT_HLT });
    expect(rc).toEqual([0x100n << 32n]);
  });

  test('a private page the guest did not validate raises #VC (page not validated), and the guest shuts down', () => {
    const host = snpHost();
    function* guest(): GuestCode {
      yield* guestLoad(BASE + 3n * PG, 8);
    }
    const s = snp_vm(host, guest, 4);
    snp_launch(s, []);
    const { exit } = run_vmm(s);
    expect(exit).toBe(KVM_EXIT_SHUTDOWN);
    expect(host.trace.events('cocosim_sev_guest_exception').map((r) => r.args)).toEqual([
      { vcpu_id: 0, vector: X86_TRAP_VC, error_code: BigInt(SVM_EXIT_NOT_VALIDATED), gpa: BASE + 3n * PG },
    ]);
    // KVM gave the page to the guest (Guest-Invalid): assigned, not validated.
    expect(sev_host(host.kernel).rmp.authoritative(gmem_pfn(s.kvm, BASE + 3n * PG)).e).toMatchObject({ assigned: true, validated: false, immutable: false });
  });

  test('the host punching a hole in a validated private page is caught by the guest\'s next access (#VC)', () => {
    const host = snpHost();
    const loads: Uint8Array[] = [];
    function* guest(): GuestCode {
      loads.push(yield* guestLoad(BASE, 8));
      yield* hlt();
      loads.push(yield* guestLoad(BASE, 8));
    }
    const s = snp_vm(host, guest, 1);
    const img = image(1, 3);
    snp_launch(s, [{ gpa: BASE, data: img, type: KVM_SEV_SNP_PAGE_TYPE_NORMAL }]);
    const pfn = gmem_pfn(s.kvm, BASE);
    expect(run_vmm(s).exit).toBe(KVM_EXIT_HLT);
    const { fd, fd_offset } = kvm_gpa_to_guest_memfd(s.vm, BASE);
    expect(s.vm.p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, fd_offset, PG)).toBe(0);
    expect(run_vmm(s).exit).toBe(KVM_EXIT_SHUTDOWN);
    expect(loads).toEqual([img.subarray(0, 8)]);
    // The punched page went back to the hypervisor in the RMP before the allocator got it.
    expect(sev_host(host.kernel).rmp.authoritative(pfn).e.assigned).toBe(false);
    // The access faulted in a new page, which KVM gave the guest unvalidated.
    expect(sev_host(host.kernel).rmp.authoritative(gmem_pfn(s.kvm, BASE)).e).toMatchObject({ assigned: true, validated: false });
  });
});

describe('SNP costs and mobility', () => {
  test('a 4 KiB conversion each way is charged to the RMP, PVALIDATE, VM and user-space exits; the freed page is flushed', () => {
    const host = snpHost();
    function* guest(): GuestCode {
      expect(yield* snp_set_memory_private(TARGET, 1, SCRATCH)).toBe(0n);
      yield* guestLoad(TARGET, 8);
      yield* hlt();
      expect(yield* snp_set_memory_shared(TARGET, 1, SCRATCH)).toBe(0n);
    }
    const s = snp_vm(host, guest, 1);
    vm_enable_cap(s.vm, KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE);
    host.cost.begin('launch');
    snp_launch(s, [{ gpa: BASE, data: image(1, 1), type: KVM_SEV_SNP_PAGE_TYPE_NORMAL }]);
    const launch = host.cost.end('launch');
    // GCTX_CREATE, LAUNCH_START, ACTIVATE, LAUNCH_UPDATE of the page and of the VMSA, LAUNCH_FINISH.
    expect(launch.items.find((i) => i.name === 'sev_psp_cmd')?.count).toBe(6);
    host.cost.begin('to_private');
    expect(run_vmm(s).exit).toBe(KVM_EXIT_HLT);
    const to_private = host.cost.end('to_private');
    const count = (c: typeof to_private, name: string): number => c.items.find((i) => i.name === name)?.count ?? 0;
    expect(count(to_private, 'sev_rmpupdate')).toBe(1);
    expect(count(to_private, 'sev_pvalidate_4k')).toBe(1);
    // The guest_memfd page zeroed before RMPUPDATE, and the shared scratch page on its first use.
    expect(count(to_private, 'page_zero_4k')).toBe(2);
    expect(count(to_private, 'kvm_userspace_exit_roundtrip')).toBeGreaterThanOrEqual(1);
    expect(count(to_private, 'kvm_exit_roundtrip')).toBeGreaterThanOrEqual(2);
    expect(to_private.depends_on).toContain('sev_rmpupdate');
    host.cost.begin('to_shared');
    expect(run_vmm(s, () => true).exit).toBe(KVM_EXIT_HLT);
    const to_shared = host.cost.end('to_shared');
    expect(count(to_shared, 'sev_pvalidate_4k')).toBe(1);
    expect(count(to_shared, 'sev_rmpupdate')).toBe(1);
    expect(count(to_shared, 'clflush_4k')).toBe(1);
    expect(to_shared.estimated_ns).toBeGreaterThan(0);
  });

  test('private guest_memfd pages cannot be migrated (unmovable mapping), and stay the guest\'s', () => {
    const host = snpHost();
    const s = snp_vm(host, function* () {}, 1);
    snp_launch(s, [{ gpa: BASE, data: image(1, 2), type: KVM_SEV_SNP_PAGE_TYPE_NORMAL }]);
    const pfn = gmem_pfn(s.kvm, BASE);
    expect(host.kernel.page_alloc.alloc_contig_range(pfn, pfn + 1, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(-Errno.EBUSY);
    expect(gmem_pfn(s.kvm, BASE)).toBe(pfn);
    expect(sev_host(host.kernel).rmp.authoritative(pfn).e.assigned).toBe(true);
  });
});

describe('the PSC NAE event, as snp_begin_psc() walks it', () => {
  test('adjacent entries of one operation coalesce into one exit, SMASH completes without one, a 2M entry exits with PAGE_SZ_2M', () => {
    const host = snpHost();
    const rets: bigint[] = [];
    const gfn = BASE >> 12n;
    function* guest(): GuestCode {
      rets.push(yield* snp_psc(SCRATCH, [
        { cur_page: 0, gfn: gfn + 4n, operation: VMGEXIT_PSC_OP_PRIVATE, pagesize: 0 },
        { cur_page: 0, gfn: gfn + 5n, operation: VMGEXIT_PSC_OP_PRIVATE, pagesize: 0 },
        { cur_page: 0, gfn: gfn + 6n, operation: VMGEXIT_PSC_OP_SHARED, pagesize: 0 },
        { cur_page: 0, gfn: gfn + 7n, operation: 3, pagesize: 0 },
        { cur_page: 0, gfn: gfn + 1024n, operation: VMGEXIT_PSC_OP_PRIVATE, pagesize: 1 },
        { cur_page: 100, gfn: gfn + 1536n, operation: VMGEXIT_PSC_OP_SHARED, pagesize: 1 },
      ]));
      // A 2M entry at a gfn that is not 2M aligned, and a header past the maximum.
      rets.push(yield* snp_psc(SCRATCH, [{ cur_page: 0, gfn: gfn + 1n, operation: VMGEXIT_PSC_OP_PRIVATE, pagesize: 1 }]));
      yield* guestStore(SCRATCH, psc_buffer_encode(0, 253, []));
      rets.push((yield* fwcall(SVM_VMGEXIT_PSC, SCRATCH, 8n))[1]!);
    }
    const s = snp_vm(host, guest, 1);
    vm_enable_cap(s.vm, KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE);
    snp_launch(s, []);
    const { maps, exit } = run_vmm(s);
    expect(exit).toBe(KVM_EXIT_HLT);
    expect(maps).toEqual([
      [BASE + 4n * PG, 2n, 0x10n],
      [BASE + 6n * PG, 1n, 0n],
      [BASE + 1024n * PG, 512n, 0x11n],
      // A 2M entry already done for 100 pages continues at 4K (the size hint is the entry's).
      [BASE + (1536n + 100n) * PG, 412n, 1n],
    ]);
    expect(rets).toEqual([0n, VMGEXIT_PSC_ERROR_INVALID_ENTRY, VMGEXIT_PSC_ERROR_INVALID_HDR]);
  });

  test('the MSR protocol termination request exits with KVM_SYSTEM_EVENT_SEV_TERM and the GHCB value', () => {
    const host = snpHost();
    const s = snp_vm(host, function* () {
      yield* sev_es_terminate(1, 3);
    }, 1);
    snp_launch(s, []);
    expect(run_vmm(s).exit).toBe(KVM_EXIT_SYSTEM_EVENT);
    expect(s.vcpu.run.system_event).toEqual({ type: KVM_SYSTEM_EVENT_SEV_TERM, ndata: 1, data: [0x31100n] });
  });
});
