/**
 * The TDX module's SEAMCALLs called out of order: each refuses with the module's status (and the
 * operand at fault in bits 31:0), as include/auto_gen/sept_state_lookup.c and the leaf handlers
 * decide, and changes nothing.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno } from '@cocosim/core';
import { GFP_KERNEL } from '@cocosim/mm';
import {
  TDX_EPT_ENTRY_STATE_INCORRECT, TDX_EPT_WALK_FAILED, TDX_GPA_RANGE_ALREADY_BLOCKED, TDX_GPA_RANGE_NOT_BLOCKED,
  TDX_HKID_NOT_FREE, TDX_LIFECYCLE_STATE_INCORRECT, TDX_NO_VCPUS, TDX_OPERAND_ID_R8, TDX_OPERAND_ID_RCX,
  TDX_OPERAND_ID_RDX, TDX_OPERAND_INVALID, TDX_OP_STATE_INCORRECT, TDX_PAGE_METADATA_INCORRECT, TDX_SUCCESS,
  TDX_TD_KEYS_NOT_CONFIGURED, TDX_TLB_TRACKING_NOT_DONE, tdx_status_name,
} from './tdx_errno.js';
import { SEPT_STATE_LEGAL, TDX_TD_CONF, tdx_module_of, type Td } from './tdx_module.js';
import { tdx_td, to_kvm_tdx } from './tdx.js';
import { TDX_PS_1G, TDX_PS_2M, TDX_PS_4K } from './uapi.js';
import { td_create, td_finalize, td_init_mem_region, td_vcpu_add, tdx_host, type TdxHost } from './tdx_util.js';

const hosts: TdxHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function setup(): { h: TdxHost; t: Td; base: bigint; page: () => number } {
  const h = tdx_host({ seed: 3 });
  hosts.push(h);
  const td = td_create(h);
  td_vcpu_add(td);
  td_init_mem_region(td, [new Uint8Array(4096)]);
  td_finalize(td);
  return { h, t: tdx_td(td.kvm)!, base: td.base, page: () => h.kernel.page_alloc.alloc_page(GFP_KERNEL) };
}

const rcx = (code: bigint): bigint => code | TDX_OPERAND_ID_RCX;

describe('SEAMCALL legality', () => {
  test('the legality table is the module\'s: PAGE.ADD from FREE only, AUG from FREE or REMOVED, ACCEPT from PENDING', () => {
    expect(SEPT_STATE_LEGAL['TDH.MEM.PAGE.ADD']).toEqual([0x0e]);
    expect(SEPT_STATE_LEGAL['TDH.MEM.PAGE.AUG']).toEqual([0x0e, 0x0c]);
    expect(SEPT_STATE_LEGAL['TDG.MEM.PAGE.ACCEPT']).toEqual([0x70]);
    expect(tdx_status_name(rcx(TDX_EPT_WALK_FAILED))).toBe('TDX_EPT_WALK_FAILED|0x1');
  });

  test('AUG: walk failure, state, page owner; REMOVE: not blocked, not tracked; BLOCK twice', () => {
    const { h, t, base, page } = setup();
    const module = tdx_module_of(h.kernel);
    const Z = base + 0x30_0000n;
    const gfn = Number(Z >> 12n);
    const p1 = page();
    // No page table under the PD entry of Z yet.
    expect(module.tdh_mem_page_aug(t, Z, TDX_PS_4K, p1)).toBe(rcx(TDX_EPT_WALK_FAILED));
    expect(module.tdh_mem_sept_add(t, Z, TDX_PS_2M, page())).toBe(TDX_SUCCESS);
    expect(module.tdh_mem_page_aug(t, Z + 1n, TDX_PS_4K, p1)).toBe(rcx(TDX_OPERAND_INVALID));
    expect(module.tdh_mem_page_aug(t, Z, TDX_PS_1G, p1)).toBe(rcx(TDX_OPERAND_INVALID));
    expect(module.tdh_mem_page_aug(t, Z, TDX_PS_4K, p1)).toBe(TDX_SUCCESS);
    expect(module.sept_state(t, gfn)).toBe('PENDING');
    expect(module.tdh_mem_page_aug(t, Z, TDX_PS_4K, page())).toBe(rcx(TDX_EPT_ENTRY_STATE_INCORRECT));
    expect(module.tdh_mem_page_aug(t, Z + 4096n, TDX_PS_4K, p1)).toBe(TDX_PAGE_METADATA_INCORRECT | TDX_OPERAND_ID_R8);
    // The guest accepts it; a MAPPED page must be blocked, then tracked, before REMOVE.
    expect(module.tdg_mem_page_accept(t, Z, TDX_PS_4K).err).toBe(TDX_SUCCESS);
    expect(module.tdh_mem_page_remove(t, Z, TDX_PS_4K).err).toBe(rcx(TDX_GPA_RANGE_NOT_BLOCKED));
    expect(module.tdh_mem_range_block(t, Z, TDX_PS_4K)).toBe(TDX_SUCCESS);
    expect(module.tdh_mem_range_block(t, Z, TDX_PS_4K)).toBe(rcx(TDX_GPA_RANGE_ALREADY_BLOCKED));
    expect(module.sept_state(t, gfn)).toBe('BLOCKED');
    expect(module.tdh_mem_page_remove(t, Z, TDX_PS_4K).err).toBe(rcx(TDX_TLB_TRACKING_NOT_DONE));
    expect(module.pamt_get(p1).pt).toBe('PT_REG');
    // PAGE.WBINVD of a page still the TD's is refused.
    expect(module.tdh_phymem_page_wbinvd(t.hkid, p1)).toBe(rcx(TDX_PAGE_METADATA_INCORRECT));
    expect(module.tdh_mem_track(t)).toBe(TDX_SUCCESS);
    expect(module.tdh_mem_page_remove(t, Z, TDX_PS_4K)).toEqual({ err: TDX_SUCCESS, pfn: p1 });
    expect(module.pamt_get(p1).pt).toBe('PT_NDA');
    expect(module.sept_state(t, gfn)).toBe('FREE');
    // ACCEPT of a FREE entry is an EPT violation (a TD exit), not a status.
    expect(module.tdg_mem_page_accept(t, Z, TDX_PS_4K)).toEqual({ err: TDX_SUCCESS, violation: true });
    expect(module.tdg_mem_page_accept(t, Z, TDX_PS_1G).err).toBe(rcx(TDX_OPERAND_INVALID));
  });

  test('the build-time calls after finalize, and MR.FINALIZE of a TD without vCPUs', () => {
    const { h, t, base, page } = setup();
    const module = tdx_module_of(h.kernel);
    expect(module.tdh_mem_page_add(t, base + 0x1000n, page(), new Uint8Array(4096))).toBe(TDX_OP_STATE_INCORRECT);
    expect(module.tdh_mr_extend(t, base)).toBe(TDX_OP_STATE_INCORRECT);
    expect(module.tdh_mr_finalize(t)).toBe(TDX_OP_STATE_INCORRECT);
    expect(module.tdh_vp_create(t, page()).err).toBe(TDX_OP_STATE_INCORRECT);
    const other = td_create(hosts[0]!);
    expect(module.tdh_mr_finalize(tdx_td(other.kvm)!)).toBe(TDX_NO_VCPUS);
    // Before finalize, AUG is refused: the initial image only comes through PAGE.ADD.
    expect(module.tdh_mem_page_aug(tdx_td(other.kvm)!, other.base, TDX_PS_4K, page())).toBe(TDX_OP_STATE_INCORRECT);
  });

  test('keys and teardown: HKID in use, ADDCX before KEY.CONFIG, RECLAIM and FREEID of a live TD', () => {
    const { h, t, page } = setup();
    const module = tdx_module_of(h.kernel);
    expect(module.tdh_mng_create(page(), t.hkid).err).toBe(TDX_HKID_NOT_FREE | TDX_OPERAND_ID_RDX);
    expect(module.tdh_mng_create(page(), module.tdx_keyid_start).err).toBe(TDX_OPERAND_INVALID | TDX_OPERAND_ID_RDX);
    const fresh_hkid = module.tdx_guest_keyid_alloc();
    const fresh = module.tdh_mng_create(page(), fresh_hkid).td!;
    expect(module.tdh_mng_addcx(fresh, page(), TDX_TD_CONF.tdcs_nr_pages)).toBe(TDX_TD_KEYS_NOT_CONFIGURED);
    expect(module.tdh_phymem_page_reclaim(t.tdr_pfn)).toBe(TDX_LIFECYCLE_STATE_INCORRECT);
    expect(module.tdh_mng_key_freeid(t)).toBe(TDX_LIFECYCLE_STATE_INCORRECT);
    expect(module.pamt_get(t.tdr_pfn).pt).toBe('PT_TDR');
  });

  test('no guest KeyID left: tdx_guest_keyid_alloc() is -ENOSPC', () => {
    const h = tdx_host({ seed: 4, platform: { nr_tdx_keyids: 2 } });
    hosts.push(h);
    const module = tdx_module_of(h.kernel);
    expect(module.tdx_guest_keyid_alloc()).toBe(17);
    expect(module.tdx_guest_keyid_alloc()).toBe(-Errno.ENOSPC);
    // Another host has its own KeyIDs: its first TD gets the first guest KeyID too.
    const h2 = tdx_host({ seed: 5 });
    hosts.push(h2);
    expect(to_kvm_tdx(td_create(h2).kvm).hkid).toBe(17);
  });
});
