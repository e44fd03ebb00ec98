/*
 * The RMP instructions and the AMD-SP firmware commands with their return codes: RMPUPDATE,
 * PSMASH, PVALIDATE, RMPADJUST (APM), Linux's rmpupdate()/psmash() wrappers, the 4K/2M handling
 * of sev_gmem_prepare()/sev_gmem_invalidate(), and the firmware's guest-state, ASID and page-state
 * checks (SEV_RET_*).
 */
import { describe, expect, test } from 'vitest';
import { KernelBug } from '@cocosim/core';
import { snpHost, snp_vm } from './snp_env.test-util.js';
import {
  FAIL_INPUT, FAIL_PERMISSION, FAIL_SIZEMISMATCH, KVM_SEV_SNP_PAGE_TYPE_NORMAL, PG_LEVEL_2M, PG_LEVEL_4K,
  PVALIDATE_FAIL_NOUPDATE, RMPUPDATE_FAIL_OVERLAP, RMP_PG_SIZE_2M, RMP_PG_SIZE_4K, Rmp, SEV_GSTATE_RUNNING, SEV_RET_ACTIVE,
  SEV_RET_ASID_OWNED, SEV_RET_DFFLUSH_REQUIRED, SEV_RET_INACTIVE, SEV_RET_INVALID_ASID, SEV_RET_INVALID_GUEST,
  SEV_RET_INVALID_GUEST_STATE, SEV_RET_INVALID_LEN, SEV_RET_INVALID_PAGE_OWNER, SEV_RET_INVALID_PAGE_STATE,
  SEV_RET_POLICY_FAILURE, SEV_RET_WBINVD_REQUIRED, rmp_make_private, rmp_make_shared, rmpupdate, sev_gmem_invalidate,
  sev_gmem_prepare, sev_host, sev_private_max_mapping_level, snp_alloc_firmware_page, to_kvm_sev_info,
} from './index.js';

const MB2 = 2n << 20n;
const priv = (gpa: bigint, asid: number, pagesize = RMP_PG_SIZE_4K, immutable = false) => ({ gpa, assigned: true, pagesize, immutable, asid });
const shared = (pagesize = RMP_PG_SIZE_4K) => ({ gpa: 0n, assigned: false, pagesize, immutable: false, asid: 0 });

describe('RMP instructions', () => {
  test('RMPUPDATE: FAIL_INPUT, FAIL_PERMISSION on immutable entries, FAIL_OVERLAP between 4K and 2M; Validated is cleared', () => {
    const rmp = new Rmp(0, 4095);
    expect(rmp.rmpupdate(4096, priv(0n, 1))).toBe(FAIL_INPUT);
    expect(rmp.rmpupdate(513, priv(0n, 1, RMP_PG_SIZE_2M))).toBe(FAIL_INPUT);
    expect(rmp.rmpupdate(10, priv(0x1000n, 1, RMP_PG_SIZE_4K, true))).toBe(0);
    expect(rmp.rmpupdate(10, shared())).toBe(FAIL_PERMISSION);
    // 2M over an assigned 4K page, then 4K inside an assigned 2M page.
    expect(rmp.rmpupdate(0, priv(0n, 1, RMP_PG_SIZE_2M))).toBe(RMPUPDATE_FAIL_OVERLAP);
    expect(rmp.rmpupdate(1024, priv(MB2, 1, RMP_PG_SIZE_2M))).toBe(0);
    expect(rmp.rmpupdate(1030, priv(0n, 1))).toBe(RMPUPDATE_FAIL_OVERLAP);
    expect(rmp.authoritative(1030)).toMatchObject({ at: 1024, level: PG_LEVEL_2M });
    expect(rmp.gpa_of(1030)).toBe(MB2 + 6n * 4096n);
    expect(rmp.pvalidate(1, MB2, 1024, RMP_PG_SIZE_2M, true)).toBe(0);
    expect(rmp.rmpupdate(1024, priv(MB2, 1, RMP_PG_SIZE_2M))).toBe(0);
    expect(rmp.authoritative(1024).e.validated).toBe(false);
    expect(rmp.rmpupdate(1024, shared(RMP_PG_SIZE_2M))).toBe(0);
    expect(rmp.authoritative(1030).e.assigned).toBe(false);
  });

  test('PSMASH splits an assigned 2M entry into 512 4K entries keeping Validated; FAIL_INPUT otherwise', () => {
    const rmp = new Rmp(0, 4095);
    expect(rmp.psmash(1024)).toBe(FAIL_INPUT);
    expect(rmp.rmpupdate(1024, priv(MB2, 7, RMP_PG_SIZE_2M))).toBe(0);
    expect(rmp.psmash(1025)).toBe(FAIL_INPUT);
    expect(rmp.pvalidate(7, MB2, 1024, RMP_PG_SIZE_2M, true)).toBe(0);
    expect(rmp.psmash(1024)).toBe(0);
    expect(rmp.authoritative(1030)).toMatchObject({ at: 1030, level: PG_LEVEL_4K, e: { assigned: true, validated: true, gpa: MB2 + 6n * 4096n, asid: 7 } });
    expect(rmp.size).toBe(512);
    expect(rmp.psmash(1024)).toBe(FAIL_INPUT);
  });

  test('PVALIDATE: ownership #NPF, 4K-on-2M SIZEM #NPF, FAIL_SIZEMISMATCH, FAIL_INPUT, no-update', () => {
    const rmp = new Rmp(0, 4095);
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_4K, true)).toEqual({ npf: true, sizem: false });
    expect(rmp.rmpupdate(5, priv(0x5000n, 1))).toBe(0);
    expect(rmp.pvalidate(2, 0x5000n, 5, RMP_PG_SIZE_4K, true)).toEqual({ npf: true, sizem: false });
    expect(rmp.pvalidate(1, 0x6000n, 5, RMP_PG_SIZE_4K, true)).toEqual({ npf: true, sizem: false });
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_4K, false)).toBe(PVALIDATE_FAIL_NOUPDATE);
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_4K, true)).toBe(0);
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_4K, true)).toBe(PVALIDATE_FAIL_NOUPDATE);
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_2M, true)).toBe(FAIL_INPUT);
    expect(rmp.rmpupdate(512, priv(MB2, 1))).toBe(0);
    expect(rmp.pvalidate(1, MB2, 512, RMP_PG_SIZE_2M, true)).toBe(FAIL_SIZEMISMATCH);
    expect(rmp.rmpupdate(1536, priv(2n * MB2, 1, RMP_PG_SIZE_2M))).toBe(0);
    expect(rmp.pvalidate(1, 2n * MB2 + 4096n, 1537, RMP_PG_SIZE_4K, true)).toEqual({ npf: true, sizem: true });
    // Immutable pages (Pre-Guest, VMSA at launch) are not the guest's to validate.
    expect(rmp.rmpupdate(8, priv(0x8000n, 1, RMP_PG_SIZE_4K, true))).toBe(0);
    expect(rmp.pvalidate(1, 0x8000n, 8, RMP_PG_SIZE_4K, true)).toEqual({ npf: true, sizem: false });
  });

  test('RMPADJUST: only less privileged VMPLs, only validated pages; sets the VMSA bit and permissions', () => {
    const rmp = new Rmp(0, 4095);
    expect(rmp.rmpupdate(5, priv(0x5000n, 1))).toBe(0);
    expect(rmp.rmpadjust(1, 0x5000n, 5, RMP_PG_SIZE_4K, 1, 0xf, false)).toBe(FAIL_PERMISSION);
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_4K, true)).toBe(0);
    expect(rmp.rmpadjust(1, 0x5000n, 5, RMP_PG_SIZE_4K, 0, 0xf, false)).toBe(FAIL_PERMISSION);
    expect(rmp.rmpadjust(2, 0x5000n, 5, RMP_PG_SIZE_4K, 1, 0xf, false)).toEqual({ npf: true, sizem: false });
    expect(rmp.rmpadjust(1, 0x5000n, 5, RMP_PG_SIZE_4K, 1, 0x3, true)).toBe(0);
    expect(rmp.raw(5)).toMatchObject({ vmsa: true, vmpl_perms: [3, 0, 0] });
  });

  test('host writes fault on assigned and immutable pages; the guest check answers ok, #VC or #NPF', () => {
    const rmp = new Rmp(0, 4095);
    expect(rmp.host_write_faults(5)).toBe(false);
    expect(rmp.rmpupdate(5, priv(0x5000n, 1))).toBe(0);
    expect(rmp.host_write_faults(5)).toBe(true);
    expect(rmp.guest_check(1, 0x5000n, 5, true)).toBe('not_validated');
    expect(rmp.guest_check(1, 0x5000n, 5, false)).toBe('npf');
    expect(rmp.guest_check(2, 0x5000n, 5, true)).toBe('npf');
    expect(rmp.pvalidate(1, 0x5000n, 5, RMP_PG_SIZE_4K, true)).toBe(0);
    expect(rmp.guest_check(1, 0x5000n, 5, true)).toBe('ok');
    expect(rmp.guest_check(1, 0x6000n, 6, false)).toBe('ok');
  });
});

describe("Linux's RMP wrappers and guest_memfd's 4K/2M handling", () => {
  test('rmpupdate() splits the direct map once per 2M region, charges RMPUPDATE, and fails with -EFAULT on an immutable page', () => {
    const host = snpHost();
    const h = sev_host(host.kernel);
    host.cost.begin('rmp');
    expect(rmp_make_private(h, 3000, 0x1000n, PG_LEVEL_4K, 1, true)).toBe(0);
    expect(rmp_make_private(h, 3001, 0x2000n, PG_LEVEL_4K, 1, false)).toBe(0);
    const c = host.cost.end('rmp');
    expect(c.items.map((i) => [i.name, i.count])).toEqual([['sev_direct_map_split', 1], ['sev_rmpupdate', 2]]);
    expect(rmp_make_shared(h, 3000, PG_LEVEL_4K)).toBe(-14);
    expect(host.trace.events('console').map((r) => r.args.msg).some((m) => String(m).includes('RMPUPDATE failed for PFN bb8'))).toBe(true);
    // A 4K update inside an assigned 2M page never succeeds: the kernel would retry forever.
    expect(rmp_make_private(h, 4096, 0n, PG_LEVEL_2M, 1, false)).toBe(0);
    expect(() => rmpupdate(h, 4097, { gpa: 0n, assigned: false, pagesize: RMP_PG_SIZE_4K, immutable: false, asid: 0 })).toThrow(KernelBug);
  });

  test('gmem_prepare uses a 2M RMP entry for a 2M folio over shared memory; invalidating a 4K part PSMASHes it', () => {
    const host = snpHost();
    const s = snp_vm(host);
    const h = sev_host(host.kernel);
    const asid = to_kvm_sev_info(s.kvm).asid;
    const pfn = 6 * 512;
    expect(sev_gmem_prepare(s.kvm, pfn + 3, 0x10003, 9)).toBe(0);
    expect(h.rmp.authoritative(pfn + 3)).toMatchObject({ at: pfn, level: PG_LEVEL_2M, e: { assigned: true, asid, gpa: 0x10000n << 12n, immutable: false } });
    expect(sev_private_max_mapping_level(s.kvm, pfn + 3, true)).toBe(PG_LEVEL_2M);
    expect(sev_private_max_mapping_level(s.kvm, pfn + 3, false)).toBe(0);
    // Already assigned: nothing to do.
    expect(sev_gmem_prepare(s.kvm, pfn + 4, 0x10004, 9)).toBe(0);
    host.cost.begin('inv');
    sev_gmem_invalidate(s.kvm, pfn + 3, pfn + 4);
    const c = host.cost.end('inv');
    expect(c.items.map((i) => [i.name, i.count])).toEqual([['clflush_4k', 1], ['sev_direct_map_split', 1], ['sev_psmash', 1], ['sev_rmpupdate', 1]]);
    expect(h.rmp.authoritative(pfn + 3).e.assigned).toBe(false);
    expect(h.rmp.authoritative(pfn + 4)).toMatchObject({ level: PG_LEVEL_4K, e: { assigned: true, gpa: 0x10004n << 12n } });
    // A 4K folio next to assigned pages gets a 4K entry.
    expect(sev_gmem_prepare(s.kvm, pfn + 3, 0x10003, 9)).toBe(0);
    expect(h.rmp.authoritative(pfn + 3).level).toBe(PG_LEVEL_4K);
    sev_gmem_invalidate(s.kvm, pfn, pfn + 512);
    expect(h.rmp.size).toBeLessThan(10);
  });

  test('invalidating a whole 2M entry is one 2M RMPUPDATE and 512 pages flushed', () => {
    const host = snpHost();
    const s = snp_vm(host);
    const pfn = 7 * 512;
    expect(sev_gmem_prepare(s.kvm, pfn, 0x20000, 9)).toBe(0);
    host.cost.begin('inv');
    sev_gmem_invalidate(s.kvm, pfn, pfn + 512);
    const c = host.cost.end('inv');
    expect(c.items.map((i) => [i.name, i.count])).toEqual([['clflush_4k', 512], ['sev_rmpupdate', 1]]);
    expect(sev_host(host.kernel).rmp.authoritative(pfn + 100).e.assigned).toBe(false);
  });
});

describe('AMD-SP firmware status codes', () => {
  test('legacy guest states, ASID binding and DF_FLUSH', () => {
    const host = snpHost();
    const fw = sev_host(host.kernel).fw;
    expect(fw.launch_start(0, 0, null)).toMatchObject({ rc: -5, error: 1 });
    fw.platform_initialize();
    const { handle } = fw.launch_start(0, 0, null);
    expect(handle).toBeGreaterThan(0);
    expect(fw.launch_start(77, 0, null).error).toBe(SEV_RET_INVALID_GUEST);
    expect(fw.launch_update_data(handle!, 0x100000n, 4096).error).toBe(SEV_RET_INACTIVE);
    expect(fw.activate(handle!, 5).error).toBe(SEV_RET_INVALID_ASID);
    expect(fw.activate(handle!, 200)).toEqual({ rc: 0, error: 0 });
    expect(fw.activate(handle!, 201).error).toBe(SEV_RET_ACTIVE);
    const other = fw.launch_start(0, 0, null).handle!;
    expect(fw.activate(other, 200).error).toBe(SEV_RET_ASID_OWNED);
    expect(fw.launch_update_data(handle!, 0x100000n, 100).error).toBe(SEV_RET_INVALID_LEN);
    expect(fw.launch_finish(handle!).error).toBe(SEV_RET_INVALID_GUEST_STATE);
    expect(fw.launch_measure(handle!, 0)).toMatchObject({ error: SEV_RET_INVALID_LEN, len: 48 });
    expect(fw.launch_measure(handle!, 48)).toMatchObject({ rc: 0, len: 48 });
    expect(fw.launch_update_data(handle!, 0x100000n, 4096).error).toBe(SEV_RET_INVALID_GUEST_STATE);
    expect(fw.launch_finish(handle!)).toEqual({ rc: 0, error: 0 });
    expect(fw.guest_status(handle!)).toMatchObject({ rc: 0, state: SEV_GSTATE_RUNNING });
    expect(fw.decommission(handle!).error).toBe(SEV_RET_ACTIVE);
    expect(fw.deactivate(handle!)).toEqual({ rc: 0, error: 0 });
    expect(fw.deactivate(handle!).error).toBe(SEV_RET_INACTIVE);
    expect(fw.decommission(handle!)).toEqual({ rc: 0, error: 0 });
    // The ASID needs WBINVD and DF_FLUSH before another guest may have it.
    expect(fw.activate(other, 200).error).toBe(SEV_RET_DFFLUSH_REQUIRED);
    expect(fw.df_flush(false).error).toBe(SEV_RET_WBINVD_REQUIRED);
    fw.wbinvd();
    expect(fw.df_flush(false)).toEqual({ rc: 0, error: 0 });
    expect(fw.activate(other, 200)).toEqual({ rc: 0, error: 0 });
  });

  test('SNP contexts: a firmware page for the context, Pre-Guest pages of the right guest for LAUNCH_UPDATE, reclaim of firmware pages only', () => {
    const host = snpHost();
    const h = sev_host(host.kernel);
    const fw = h.fw;
    fw.platform_initialize();
    expect(fw.snp_gctx_create(1000).error).toBe(SEV_RET_INVALID_PAGE_STATE);
    const gctx = snp_alloc_firmware_page(h);
    expect(h.rmp.authoritative(gctx).e).toMatchObject({ assigned: true, immutable: true, asid: 0 });
    expect(h.rmp.host_write_faults(gctx)).toBe(true);
    expect(fw.snp_gctx_create(gctx)).toEqual({ rc: 0, error: 0 });
    expect(fw.snp_launch_update(gctx, 1000, 0, KVM_SEV_SNP_PAGE_TYPE_NORMAL).error).toBe(SEV_RET_INVALID_GUEST_STATE);
    expect(fw.snp_launch_start(gctx, 0x3ff00n, new Uint8Array(16)).error).toBe(SEV_RET_POLICY_FAILURE);
    expect(fw.snp_launch_start(gctx, 0x30000n, new Uint8Array(16))).toEqual({ rc: 0, error: 0 });
    expect(fw.snp_launch_start(gctx, 0x30000n, new Uint8Array(16)).error).toBe(SEV_RET_INVALID_GUEST_STATE);
    expect(fw.snp_launch_update(gctx, 1000, 0, KVM_SEV_SNP_PAGE_TYPE_NORMAL).error).toBe(SEV_RET_INACTIVE);
    expect(fw.snp_activate(gctx, 150).error).toBe(SEV_RET_INVALID_ASID);
    expect(fw.snp_activate(gctx, 9)).toEqual({ rc: 0, error: 0 });
    // Not Pre-Guest (shared, then mutable), then another guest's.
    expect(fw.snp_launch_update(gctx, 1000, 0, KVM_SEV_SNP_PAGE_TYPE_NORMAL).error).toBe(SEV_RET_INVALID_PAGE_STATE);
    expect(rmp_make_private(h, 1000, 0x1000n, PG_LEVEL_4K, 9, false)).toBe(0);
    expect(fw.snp_launch_update(gctx, 1000, 0, KVM_SEV_SNP_PAGE_TYPE_NORMAL).error).toBe(SEV_RET_INVALID_PAGE_STATE);
    expect(rmp_make_private(h, 1001, 0x2000n, PG_LEVEL_4K, 8, true)).toBe(0);
    expect(fw.snp_launch_update(gctx, 1001, 0, KVM_SEV_SNP_PAGE_TYPE_NORMAL).error).toBe(SEV_RET_INVALID_PAGE_OWNER);
    expect(fw.snp_page_reclaim(1000).error).toBe(SEV_RET_INVALID_PAGE_STATE);
    expect(fw.snp_page_reclaim(gctx).error).toBe(SEV_RET_INVALID_PAGE_STATE);
    expect(fw.snp_page_reclaim(1001)).toEqual({ rc: 0, error: 0 });
    expect(rmp_make_shared(h, 1001, PG_LEVEL_4K)).toBe(0);
    expect(fw.snp_decommission(gctx)).toEqual({ rc: 0, error: 0 });
    expect(fw.snp_page_reclaim(gctx)).toEqual({ rc: 0, error: 0 });
    expect(fw.snp_decommission(gctx).error).toBe(SEV_RET_INVALID_GUEST);
  });
});
