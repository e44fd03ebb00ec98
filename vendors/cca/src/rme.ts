/**
 * KVM's realm support (the Arm CCA host series, v8: arch/arm64/kvm/rme.c and rme-exit.c, with
 * populate through kvm_gmem_populate() as from v10), on cocosim's x86-shaped KVM: the realm
 * lifecycle behind KVM_ENABLE_CAP(KVM_CAP_ARM_RME), the protected mappings KVM's mirror root
 * propagates to the RMM's RTTs (set_external_spte: realm_map_protected(); remove_external_spte:
 * realm_unmap_private_range()), the unprotected ones of the direct root
 * (RMI_RTT_MAP_UNPROTECTED), and the REC exits for RSI_IPA_STATE_SET.
 *
 * Private memory after activation: the realm asks with RSI_IPA_STATE_SET; the REC exits
 * (RMI_EXIT_RIPAS_CHANGE) and KVM_RUN returns -EFAULT with KVM_EXIT_MEMORY_FAULT for the range
 * (rec_exit_ripas_change()); the VMM converts the memory attributes and runs the vCPU again, and
 * kvm_rec_pre_enter() completes the change with RMI_RTT_SET_RIPAS (and, to EMPTY, unmaps the
 * protected granules: RMI_DATA_DESTROY, which zeroes them, and RMI_GRANULE_UNDELEGATE). A
 * protected access to RIPAS RAM with nothing assigned is a stage-2 fault that KVM handles with
 * RMI_GRANULE_DELEGATE (zeroing) and RMI_DATA_CREATE_UNKNOWN, so new private memory reads zeros.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { GFP_KERNEL, get_user_pages_unlocked, put_page, type Kernel } from '@cocosim/mm';
import {
  KVM_FILTER_PRIVATE, KVM_X86_DEFAULT_VM, PG_LEVEL_4K, __gfn_to_hva_memslot, gfn_to_memslot, kvm_flush_remote_tlbs, kvm_gmem_populate,
  kvm_mmu_prepare_memory_fault_exit, kvm_slot_has_gmem, kvm_tdp_mmu_unmap_gfn_range, make_spte, tdp_mmu_get_root, tdp_mmu_set_leaf,
  tdp_mmu_walk_to_level, type Kvm, type KvmVcpu,
} from '@cocosim/kvm';
import {
  GRANULE_STATE_NS, REC_ENTER_FLAG_RIPAS_RESPONSE, RIPAS_EMPTY, RIPAS_RAM, RMI_ERROR_RTT, RMI_EXIT_RIPAS_CHANGE,
  RMI_EXIT_SYNC, RMI_HASH_SHA_256, RMI_HASH_SHA_512, RMI_MEASURE_CONTENT, RMI_RETURN_INDEX, RMI_RETURN_STATUS, RMI_SUCCESS,
  RMM_RTT_BLOCK_LEVEL, RMM_RTT_MAX_LEVEL, realm_num_root_rtts, rmi_rtt_level_mapsize, rtt_start_level, type Ripas,
} from './rmi.js';
import { RMM_MAX_S2SZ, rmm_of, rtt_leaf, type Rmm, type RmmRec } from './rmm.js';
import {
  ARM64_MIN_PARANGE_BITS, ARM_RME_CONFIG_HASH_ALGO, ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA256, ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512,
  ARM_RME_CONFIG_RPV, ARM_RME_CONFIG_RPV_SIZE, KVM_ARM_RME_POPULATE_FLAGS_MEASURE, KVM_CAP_ARM_RME, KVM_CAP_ARM_RME_ACTIVATE_REALM,
  KVM_CAP_ARM_RME_CONFIG_REALM, KVM_CAP_ARM_RME_CREATE_REALM, KVM_CAP_ARM_RME_INIT_RIPAS_REALM, KVM_CAP_ARM_RME_POPULATE_REALM,
  KVM_PHYS_SHIFT, KVM_VM_REALM_INDEX, KVM_VM_TYPE_ARM_IPA_SIZE_MASK, KVM_VM_TYPE_ARM_MASK, KVM_VM_TYPE_ARM_SHIFT,
} from './uapi.js';

/** enum realm_state (kvm_rme.h). */
export type RealmState = 'NONE' | 'NEW' | 'ACTIVE' | 'DYING' | 'DEAD';

/** struct realm_rec: a vCPU's REC and what the last REC exit reported (rec->run->exit / enter). */
export interface RealmRec {
  readonly rec_pfn: number;
  readonly aux_pfns: readonly number[];
  /** The RMM's REC. */
  readonly rec: RmmRec;
  exit_reason: number;
  ripas_base: bigint;
  ripas_top: bigint;
  ripas_value: number;
  /** rec->run->enter.flags (REC_ENTER_FLAG_RIPAS_RESPONSE). */
  enter_flags: number;
  /** SEAs the RMM injected into this REC (RIPAS EMPTY accesses), for tests and traces. */
  seas: number;
}

/** struct realm (kvm_rme.h): kvm->arch.realm, cocosim's kvm.arch.vendor for a realm VM. */
export class Realm {
  state: RealmState = 'NONE';
  /** realm->params before CREATE_REALM: the RPV and the hash algorithm (RMI_HASH_*). */
  rpv = new Uint8Array(ARM_RME_CONFIG_RPV_SIZE);
  hash_algo = RMI_HASH_SHA_256;
  /** The RD granule and the root RTT granules (kvm->arch.mmu.pgd_phys), pfns. */
  rd = -1;
  pgd: number[] = [];
  vmid = -1;
  num_aux = 0;
  readonly recs = new Map<KvmVcpu, RealmRec>();

  constructor(readonly kvm: Kvm, readonly ia_bits: number) {}

  get rd_pa(): bigint {
    return BigInt(this.rd) << 12n;
  }

  /** BIT(ia_bits - 1): the top IPA bit, set for unprotected (shared) addresses. */
  get shared_bit(): bigint {
    return 1n << BigInt(this.ia_bits - 1);
  }
}

/** kvm_is_realm(): the VM is a realm. */
export function kvm_is_realm(kvm: Kvm): boolean {
  return kvm.arch.vm_type === KVM_VM_REALM_INDEX && kvm.arch.vendor instanceof Realm;
}

/** The realm of a realm VM. */
export function kvm_realm(kvm: Kvm): Realm {
  return kvm.arch.vendor as Realm;
}

/** kvm_realm_is_private_address(): the IPA is in the protected half. */
export function kvm_realm_is_private_address(realm: Realm, ipa: bigint): boolean {
  return (ipa & realm.shared_bit) === 0n;
}

/** kvm_realm_is_created(): RMI_REALM_CREATE was done. */
function kvm_realm_is_created(realm: Realm): boolean {
  return realm.state !== 'NONE';
}

/* ---- u64 struct fields (copy_from_user of the kernel's struct) ---- */

function u64_of(v: unknown): bigint | undefined {
  if (v === undefined) return 0n;
  if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 64n ? BigInt.asUintN(64, v) : undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt.asUintN(64, BigInt(v));
  return undefined;
}

/* ---- VM type ---- */

/**
 * kvm_arch_init_vm()'s type checks (arm64: `type & ~(KVM_VM_TYPE_ARM_MASK |
 * KVM_VM_TYPE_ARM_IPA_SIZE_MASK)` is -EINVAL, then kvm_init_stage2_mmu()'s IPA size: 0 is
 * KVM_PHYS_SHIFT, anything below ARM64_MIN_PARANGE_BITS or above the limit is -EINVAL) and the
 * realm machine type (unknown machine types are -EINVAL). cocosim keeps one IPA size per host
 * (`ia_bits`: the shared bit is the host's gfn_attr_mask), so a realm of another size is -EINVAL.
 */
export function cca_vm_type_decode(type: bigint, ia_bits: number): number {
  if ((type & ~(KVM_VM_TYPE_ARM_MASK | KVM_VM_TYPE_ARM_IPA_SIZE_MASK)) !== 0n) return -Errno.EINVAL;
  let phys_shift = Number(type & KVM_VM_TYPE_ARM_IPA_SIZE_MASK);
  if (phys_shift === 0) phys_shift = KVM_PHYS_SHIFT;
  if (phys_shift < ARM64_MIN_PARANGE_BITS || phys_shift > RMM_MAX_S2SZ) return -Errno.EINVAL;
  switch (Number((type & KVM_VM_TYPE_ARM_MASK) >> BigInt(KVM_VM_TYPE_ARM_SHIFT))) {
    case 0:
      return KVM_X86_DEFAULT_VM;
    case 1:
      return phys_shift === ia_bits ? KVM_VM_REALM_INDEX : -Errno.EINVAL;
    default:
      return -Errno.EINVAL;
  }
}

/* ---- granules the host gives the RMM ---- */

/** __get_free_page() for a granule the RMM will own; -1 when memory is short. */
function alloc_granule(kernel: Kernel): number {
  const pfn = kernel.page_alloc.alloc_page(GFP_KERNEL);
  return pfn < 0 ? -1 : pfn;
}

function free_granule(kernel: Kernel, pfn: number): void {
  kernel.page_alloc.__free_pages(pfn, 0);
}

/** alloc_delegated_granule(): a fresh page delegated to the RMM, or -1. */
function alloc_delegated_granule(rmm: Rmm): number {
  const pfn = alloc_granule(rmm.kernel);
  if (pfn < 0) return -1;
  if (rmm.smc_granule_delegate(BigInt(pfn) << 12n).ret !== RMI_SUCCESS) {
    free_granule(rmm.kernel, pfn);
    return -1;
  }
  return pfn;
}

/** free_delegated_granule(): undelegate and free; a granule the RMM will not return is leaked (WARN). */
function free_delegated_granule(rmm: Rmm, pfn: number): number {
  if (rmm.kernel.warn.WARN_ON(rmm.smc_granule_undelegate(BigInt(pfn) << 12n).ret !== RMI_SUCCESS, 'free_delegated_granule: undelegate')) return -Errno.EBUSY;
  free_granule(rmm.kernel, pfn);
  return 0;
}

/* ---- RTTs ---- */

/** realm_rtt_create(): RMI_RTT_CREATE of `rtt` for the level-aligned `addr`. */
function realm_rtt_create(rmm: Rmm, realm: Realm, addr: bigint, level: number, rtt: number): number {
  const size = rmi_rtt_level_mapsize(level - 1);
  return rmm.smc_rtt_create(realm.rd_pa, BigInt(rtt) << 12n, addr - (addr % size), level).ret;
}

/**
 * realm_create_rtt_levels(): create the RTTs from `level` + 1 down to `max_level` for `ipa`; an
 * RTT that exists already (RMI_ERROR_RTT at level - 1) is fine. -ENOMEM or -ENXIO.
 */
function realm_create_rtt_levels(rmm: Rmm, realm: Realm, ipa: bigint, level: number, max_level: number): number {
  while (level++ < max_level) {
    const rtt = alloc_delegated_granule(rmm);
    if (rtt < 0) return -Errno.ENOMEM;
    const ret = realm_rtt_create(rmm, realm, ipa, level, rtt);
    if (RMI_RETURN_STATUS(ret) === RMI_ERROR_RTT && RMI_RETURN_INDEX(ret) === level - 1) {
      free_delegated_granule(rmm, rtt);
      continue;
    }
    if (ret) {
      rmm.kernel.warn.WARN_ON(true, `Failed to create RTT at level ${level}: ${ret}`);
      free_delegated_granule(rmm, rtt);
      return -Errno.ENXIO;
    }
  }
  return 0;
}

/** find_map_level(): the largest block level [start, end) can be mapped or changed at. */
function find_map_level(realm: Realm, start: bigint, end: bigint): number {
  let level = RMM_RTT_MAX_LEVEL;
  while (level > rtt_start_level(realm.ia_bits)) {
    const size = rmi_rtt_level_mapsize(level - 1);
    if (start % size !== 0n || start + size > end) break;
    level--;
  }
  return level;
}

/**
 * realm_tear_down_rtt_level(): RMI_RTT_DESTROY every RTT of `level` (and deeper first) in
 * [start, end), skipping missing ones.
 */
function realm_tear_down_rtt_level(rmm: Rmm, realm: Realm, level: number, start: bigint, end: bigint): number {
  const kernel = rmm.kernel;
  if (kernel.warn.WARN_ON(level > RMM_RTT_MAX_LEVEL, 'realm_tear_down_rtt_level: level')) return -Errno.EINVAL;
  const map_size = rmi_rtt_level_mapsize(level - 1);
  let next: bigint;
  for (let addr = start; addr < end; addr = next) {
    const align = addr % map_size === 0n ? addr : addr - (addr % map_size) + map_size;
    next = addr - (addr % map_size) + map_size;
    if (next > end || align !== addr) {
      const r = realm_tear_down_rtt_level(rmm, realm, level + 1, addr, next < end ? next : end);
      if (r) return r;
      continue;
    }
    const res = rmm.smc_rtt_destroy(realm.rd_pa, addr, level);
    switch (RMI_RETURN_STATUS(res.ret)) {
      case RMI_SUCCESS:
        free_delegated_granule(rmm, Number(res.x1 >> 12n));
        break;
      case RMI_ERROR_RTT: {
        if (res.x2 > addr) {
          next = res.x2;
          break;
        }
        if (kernel.warn.WARN_ON(RMI_RETURN_INDEX(res.ret) !== level || level === RMM_RTT_MAX_LEVEL, 'realm_tear_down_rtt_level: live entries')) return -Errno.EBUSY;
        next = addr - (addr % map_size) + map_size;
        const r = realm_tear_down_rtt_level(rmm, realm, level + 1, addr, next);
        if (r) return r;
        next = addr;
        break;
      }
      default:
        kernel.warn.WARN_ON(true, 'realm_tear_down_rtt_level');
        return -Errno.ENXIO;
    }
  }
  return 0;
}

/* ---- protected and unprotected mappings ---- */

/**
 * realm_destroy_private_granule(): RMI_DATA_DESTROY at `ipa` (a block is split with an RTT first)
 * and RMI_GRANULE_UNDELEGATE of the granule; an unassigned IPA is skipped. `next` receives the
 * next IPA to look at. 0, -ENOMEM or -ENXIO.
 */
function realm_destroy_private_granule(rmm: Rmm, realm: Realm, ipa: bigint, next: { addr: bigint }): number {
  for (;;) {
    const res = rmm.smc_data_destroy(realm.rd_pa, ipa);
    next.addr = res.x2;
    if (RMI_RETURN_STATUS(res.ret) === RMI_ERROR_RTT) {
      if (res.x2 > ipa) return 0;
      const rtt = alloc_delegated_granule(rmm);
      if (rmm.kernel.warn.WARN_ON(rtt < 0, 'realm_destroy_private_granule: rtt')) return -Errno.ENOMEM;
      rmm.kernel.warn.WARN_ON(RMI_RETURN_INDEX(res.ret) !== RMM_RTT_BLOCK_LEVEL, 'realm_destroy_private_granule: block level');
      if (rmm.kernel.warn.WARN_ON(realm_rtt_create(rmm, realm, ipa, RMM_RTT_MAX_LEVEL, rtt) !== RMI_SUCCESS, 'realm_destroy_private_granule: split')) {
        free_delegated_granule(rmm, rtt);
        return -Errno.ENXIO;
      }
      continue;
    }
    if (rmm.kernel.warn.WARN_ON(res.ret !== RMI_SUCCESS, 'realm_destroy_private_granule')) return -Errno.ENXIO;
    if (rmm.kernel.warn.WARN_ON(rmm.smc_granule_undelegate(res.x1).ret !== RMI_SUCCESS, 'realm_destroy_private_granule: undelegate')) return -Errno.ENXIO;
    return 0;
  }
}

/** realm_unmap_private_range(): destroy the protected granules of [start, end). */
export function realm_unmap_private_range(rmm: Rmm, realm: Realm, start: bigint, end: bigint): void {
  const next = { addr: start };
  for (let addr = start; addr < end; addr = next.addr) {
    if (realm_destroy_private_granule(rmm, realm, addr, next)) break;
  }
}

/** realm_unmap_shared_range(): RMI_RTT_UNMAP_UNPROTECTED over the unprotected alias of [start, end). */
function realm_unmap_shared_range(rmm: Rmm, realm: Realm, start: bigint, end: bigint): void {
  start |= realm.shared_bit;
  end |= realm.shared_bit;
  for (let addr = start; addr < end;) {
    const res = rmm.smc_rtt_unmap_unprotected(realm.rd_pa, addr, RMM_RTT_MAX_LEVEL);
    if (res.ret === RMI_SUCCESS || RMI_RETURN_STATUS(res.ret) === RMI_ERROR_RTT) {
      addr = res.x1 > addr ? res.x1 : addr + BigInt(PAGE_SIZE);
      continue;
    }
    rmm.kernel.warn.WARN_ON(true, 'realm_unmap_shared_range');
    return;
  }
}

/**
 * realm_map_protected(): map `pfn` (and the granules after it, for a block) at protected `ipa`:
 * per granule RMI_GRANULE_DELEGATE (the RMM zeroes it) and RMI_DATA_CREATE_UNKNOWN, creating
 * missing RTTs on RMI_ERROR_RTT; a 2 MiB block is then folded (RMI_RTT_FOLD). A granule that is
 * already delegated means the mapping is there (another vCPU's fault): 0. -ENXIO on failure, the
 * granules done so far destroyed and undelegated.
 */
export function realm_map_protected(rmm: Rmm, realm: Realm, ipa: bigint, pfn: number, map_size: bigint): number {
  const kernel = rmm.kernel;
  const block = map_size === rmi_rtt_level_mapsize(RMM_RTT_BLOCK_LEVEL);
  const base_ipa = ipa;
  if (kernel.warn.WARN_ON(map_size % BigInt(PAGE_SIZE) !== 0n || ipa % map_size !== 0n, 'realm_map_protected: alignment')) return -Errno.EINVAL;
  if (block) realm_create_rtt_levels(rmm, realm, ipa, RMM_RTT_BLOCK_LEVEL, RMM_RTT_MAX_LEVEL);
  let done = 0n;
  let phys = BigInt(pfn) << 12n;
  let failed = false;
  for (; done < map_size; done += BigInt(PAGE_SIZE)) {
    if (rmm.smc_granule_delegate(phys).ret !== RMI_SUCCESS) return 0;
    let ret = rmm.smc_data_create_unknown(realm.rd_pa, phys, ipa).ret;
    if (RMI_RETURN_STATUS(ret) === RMI_ERROR_RTT) {
      const level = RMI_RETURN_INDEX(ret);
      kernel.warn.WARN_ON(level === RMM_RTT_MAX_LEVEL, 'realm_map_protected: level');
      ret = realm_create_rtt_levels(rmm, realm, ipa, level, RMM_RTT_MAX_LEVEL);
      if (ret === 0) ret = rmm.smc_data_create_unknown(realm.rd_pa, phys, ipa).ret;
    }
    if (kernel.warn.WARN_ON(ret !== 0, 'realm_map_protected: DATA_CREATE_UNKNOWN')) {
      // A granule the RMM keeps cannot go back to the NS world: the kernel leaks it (get_page()).
      kernel.warn.WARN_ON(rmm.smc_granule_undelegate(phys).ret !== RMI_SUCCESS, 'realm_map_protected: undelegate');
      failed = true;
      break;
    }
    phys += BigInt(PAGE_SIZE);
    ipa += BigInt(PAGE_SIZE);
  }
  if (!failed && block) {
    const res = rmm.smc_rtt_fold(realm.rd_pa, base_ipa, RMM_RTT_MAX_LEVEL);
    if (!kernel.warn.WARN_ON(res.ret !== RMI_SUCCESS, 'realm_map_protected: fold')) {
      free_delegated_granule(rmm, Number(res.x1 >> 12n));
      return 0;
    }
    failed = true;
  }
  if (!failed) return 0;
  while (done > 0n) {
    phys -= BigInt(PAGE_SIZE);
    ipa -= BigInt(PAGE_SIZE);
    done -= BigInt(PAGE_SIZE);
    kernel.warn.WARN_ON(rmm.smc_data_destroy(realm.rd_pa, ipa).ret !== RMI_SUCCESS, 'realm_map_protected: unwind');
    kernel.warn.WARN_ON(rmm.smc_granule_undelegate(phys).ret !== RMI_SUCCESS, 'realm_map_protected: unwind undelegate');
  }
  return -Errno.ENXIO;
}

/**
 * realm_map_non_secure(): map host page `pfn` at unprotected `ipa` with
 * RMI_RTT_MAP_UNPROTECTED at level 3, creating missing RTTs; an entry already there (another
 * vCPU) is fine. -ENXIO on failure.
 */
function realm_map_non_secure(rmm: Rmm, realm: Realm, ipa: bigint, pfn: number, size: bigint): number {
  for (let off = 0n; off < size; off += BigInt(PAGE_SIZE)) {
    const a = ipa + off;
    const pa = (BigInt(pfn) << 12n) + off;
    let ret = rmm.smc_rtt_map_unprotected(realm.rd_pa, a, RMM_RTT_MAX_LEVEL, pa).ret;
    if (RMI_RETURN_STATUS(ret) === RMI_ERROR_RTT && RMI_RETURN_INDEX(ret) < RMM_RTT_MAX_LEVEL) {
      if (realm_create_rtt_levels(rmm, realm, a, RMI_RETURN_INDEX(ret), RMM_RTT_MAX_LEVEL)) return -Errno.ENXIO;
      ret = rmm.smc_rtt_map_unprotected(realm.rd_pa, a, RMM_RTT_MAX_LEVEL, pa).ret;
    }
    if (ret && RMI_RETURN_STATUS(ret) !== RMI_ERROR_RTT) return -Errno.ENXIO;
  }
  return 0;
}

/** The bytes one x86 MMU level maps (PG_LEVEL_4K 1, 2M 2, 1G 3). */
function level_size(level: number): bigint {
  return BigInt(PAGE_SIZE) << BigInt(9 * (level - 1));
}

/** A realm whose RD exists and that is not being torn down. */
function live_realm(kvm: Kvm): Realm | undefined {
  if (!kvm_is_realm(kvm)) return undefined;
  const realm = kvm_realm(kvm);
  return realm.state === 'NEW' || realm.state === 'ACTIVE' ? realm : undefined;
}

/**
 * kvm_x86_ops.set_external_spte of a realm (user_mem_abort() -> realm_map_ipa()): a protected
 * leaf of the mirror root is realm_map_protected(), an unprotected leaf of the direct root
 * realm_map_non_secure() at the shared alias. -EINVAL for a realm that is not NEW or ACTIVE.
 */
export function kvm_realm_set_external_spte(kvm: Kvm, gfn: number, level: number, pfn: number, is_private = false): number {
  if (!kvm_is_realm(kvm)) return 0;
  const realm = live_realm(kvm);
  if (realm === undefined) return -Errno.EINVAL;
  const rmm = rmm_of(kvm.kernel);
  const ipa = BigInt(gfn) << 12n;
  if (is_private) return realm_map_protected(rmm, realm, ipa, pfn, level_size(level));
  return realm_map_non_secure(rmm, realm, ipa | realm.shared_bit, pfn, level_size(level));
}

/**
 * kvm_x86_ops.remove_external_spte of a realm (kvm_realm_unmap_range()): a protected leaf goes
 * with realm_unmap_private_range() (DATA_DESTROY, which zeroes, + UNDELEGATE), an unprotected one
 * with realm_unmap_shared_range() (RMI_RTT_UNMAP_UNPROTECTED). Nothing once the realm is gone.
 */
export function kvm_realm_remove_external_spte(kvm: Kvm, gfn: number, level: number, _pfn: number, is_private = false): number {
  const realm = live_realm(kvm);
  if (realm === undefined) return 0;
  const rmm = rmm_of(kvm.kernel);
  const ipa = BigInt(gfn) << 12n;
  if (is_private) realm_unmap_private_range(rmm, realm, ipa, ipa + level_size(level));
  else realm_unmap_shared_range(rmm, realm, ipa, ipa + level_size(level));
  return 0;
}

/* ---- RIPAS ---- */

/**
 * ripas_change(): RMI_RTT_INIT_RIPAS (no vCPU) or RMI_RTT_SET_RIPAS (for the vCPU's REC) over
 * [ipa, end), creating RTTs on RMI_ERROR_RTT; an error at or below the level the range could be
 * changed at is skipped a page at a time ("Ugly hack to skip regions which are already
 * RIPAS_RAM", rme.c). `top` receives how far it got. 0, -ENOMEM, -ENXIO.
 */
function ripas_change(rmm: Rmm, realm: Realm, rec: RealmRec | null, ipa: bigint, end: bigint, top: { ipa: bigint }): number {
  while (ipa < end) {
    const res = rec === null
      ? rmm.smc_rtt_init_ripas(realm.rd_pa, ipa, end)
      : rmm.smc_rtt_set_ripas(realm.rd_pa, BigInt(rec.rec_pfn) << 12n, ipa, end);
    const status = RMI_RETURN_STATUS(res.ret);
    if (status === RMI_SUCCESS) {
      ipa = res.x1;
      continue;
    }
    if (status === RMI_ERROR_RTT) {
      const err_level = RMI_RETURN_INDEX(res.ret);
      const level = find_map_level(realm, ipa, end);
      if (err_level >= level) {
        ipa += BigInt(PAGE_SIZE);
        continue;
      }
      const r = realm_create_rtt_levels(rmm, realm, ipa, err_level, level);
      if (r) return r;
      continue;
    }
    rmm.kernel.warn.WARN_ON(true, `ripas_change: ${res.ret}`);
    return -Errno.ENXIO;
  }
  top.ipa = ipa;
  return 0;
}

/**
 * realm_set_ipa_state(): the RIPAS change of the REC's request over [start, end); a change to
 * EMPTY then unmaps the protected granules there (KVM's mirror SPTEs are zapped, whose removal is
 * RMI_DATA_DESTROY + RMI_GRANULE_UNDELEGATE: realm_unmap_private_range()).
 */
function realm_set_ipa_state(vcpu: KvmVcpu, rec: RealmRec, start: bigint, end: bigint, ripas: number, top: { ipa: bigint }): number {
  const kvm = vcpu.kvm;
  const realm = kvm_realm(kvm);
  const rmm = rmm_of(kvm.kernel);
  const r = ripas_change(rmm, realm, rec, start, end, top);
  if (ripas === RIPAS_EMPTY && top.ipa !== start) {
    if (kvm_tdp_mmu_unmap_gfn_range(kvm, Number(start >> 12n), Number(top.ipa >> 12n), KVM_FILTER_PRIVATE, false)) kvm_flush_remote_tlbs(kvm);
    realm_unmap_private_range(rmm, realm, start, top.ipa);
  }
  return r;
}

/**
 * kvm_complete_ripas_change(): complete the REC's RIPAS change before it is entered again (the
 * VMM has converted the memory attributes meanwhile).
 */
function kvm_complete_ripas_change(vcpu: KvmVcpu, rec: RealmRec): void {
  const warn = vcpu.kvm.kernel.warn;
  let base = rec.ripas_base;
  const top = rec.ripas_top;
  do {
    const t = { ipa: base };
    const ret = realm_set_ipa_state(vcpu, rec, base, top, rec.ripas_value, t);
    if (warn.WARN_ON(ret !== 0 && ret !== -Errno.ENOMEM, `Unable to satisfy RIPAS_CHANGE for 0x${base.toString(16)} - 0x${top.toString(16)}, ripas: ${rec.ripas_value}`)) break;
    base = t.ipa;
  } while (base < top);
  rec.ripas_base = base;
}

/* ---- KVM_CAP_ARM_RME ---- */

/** config_realm_hash_algo(): SHA-256 or SHA-512 (both in this RMM's features); -EINVAL otherwise. */
function config_realm_hash_algo(realm: Realm, algo: bigint): number {
  if (algo === BigInt(ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA256)) realm.hash_algo = RMI_HASH_SHA_256;
  else if (algo === BigInt(ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512)) realm.hash_algo = RMI_HASH_SHA_512;
  else return -Errno.EINVAL;
  return 0;
}

/**
 * kvm_rme_config_realm(): -EBUSY once the realm is created, -EFAULT for no struct, then
 * ARM_RME_CONFIG_RPV (the 64-byte Realm Personalization Value) or ARM_RME_CONFIG_HASH_ALGO;
 * another cfg is -EINVAL.
 */
function kvm_rme_config_realm(realm: Realm, arg: unknown): number {
  if (kvm_realm_is_created(realm)) return -Errno.EBUSY;
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const cfg = u64_of((arg as { cfg?: unknown }).cfg);
  if (cfg === BigInt(ARM_RME_CONFIG_RPV)) {
    const rpv = (arg as { rpv?: unknown }).rpv;
    realm.rpv = new Uint8Array(ARM_RME_CONFIG_RPV_SIZE);
    if (rpv instanceof Uint8Array) realm.rpv.set(rpv.subarray(0, ARM_RME_CONFIG_RPV_SIZE));
    return 0;
  }
  if (cfg === BigInt(ARM_RME_CONFIG_HASH_ALGO)) {
    const algo = u64_of((arg as { hash_algo?: unknown }).hash_algo);
    return algo === undefined ? -Errno.EINVAL : config_realm_hash_algo(realm, algo);
  }
  return -Errno.EINVAL;
}

/**
 * kvm_create_realm() -> realm_create_rd(): -EEXIST if created; delegate the RD and the root RTTs
 * (kvm->arch.mmu.pgd_phys) and RMI_REALM_CREATE with the configured parameters (-ENXIO when the
 * RMM refuses, everything undelegated again); the realm is NEW.
 */
function kvm_create_realm(realm: Realm): number {
  if (kvm_realm_is_created(realm)) return -Errno.EEXIST;
  const rmm = rmm_of(realm.kvm.kernel);
  const kernel = rmm.kernel;
  const nr_root = realm_num_root_rtts(realm.ia_bits);
  const got: number[] = [];
  const unwind = (r: number): number => {
    for (const p of got) free_delegated_granule(rmm, p);
    return r;
  };
  const rd = alloc_delegated_granule(rmm);
  if (rd < 0) return -Errno.ENXIO;
  got.push(rd);
  const pgd: number[] = [];
  for (let i = 0; i < nr_root; i++) {
    const p = alloc_delegated_granule(rmm);
    if (p < 0) return unwind(-Errno.ENXIO);
    got.push(p);
    pgd.push(p);
  }
  const vmid = next_vmid(kernel);
  const res = rmm.smc_realm_create(BigInt(rd) << 12n, {
    s2sz: realm.ia_bits, hash_algo: realm.hash_algo, rpv: realm.rpv, vmid, rtt_base: pgd,
    rtt_level_start: rtt_start_level(realm.ia_bits), rtt_num_start: nr_root,
  });
  if (res.ret !== RMI_SUCCESS) return unwind(-Errno.ENXIO);
  realm.rd = rd;
  realm.pgd = pgd;
  realm.vmid = vmid;
  realm.num_aux = Number(rmm.smc_rec_aux_count(realm.rd_pa).x1);
  realm.state = 'NEW';
  return 0;
}

/** rmi_vmid_reserve(): the host's VMIDs for realms, per host. */
const vmid_next = new WeakMap<Kernel, number>();
function next_vmid(kernel: Kernel): number {
  const v = vmid_next.get(kernel) ?? 1;
  vmid_next.set(kernel, v + 1);
  return v;
}

/**
 * kvm_init_ipa_range_realm(): -EFAULT for no struct, -EINVAL for a range that wraps, -EPERM once
 * the realm is not NEW, then RMI_RTT_INIT_RIPAS over it (realm_init_ipa_state()).
 */
function kvm_init_ipa_range_realm(realm: Realm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const base = u64_of((arg as { base?: unknown }).base);
  const size = u64_of((arg as { size?: unknown }).size);
  if (base === undefined || size === undefined) return -Errno.EFAULT;
  const end = base + size;
  if (end >= 2n ** 64n) return -Errno.EINVAL;
  if (realm.state !== 'NEW') return -Errno.EPERM;
  return ripas_change(rmm_of(realm.kvm.kernel), realm, null, base, end, { ipa: base });
}

/**
 * realm_create_protected_data_page(): RMI_GRANULE_DELEGATE of the guest_memfd page and
 * RMI_DATA_CREATE from the source page at `ipa`, creating missing RTTs; on failure what was done
 * is undone and the result is -ENXIO.
 */
function realm_create_protected_data_page(rmm: Rmm, realm: Realm, ipa: bigint, dst_pfn: number, src_pfn: number, flags: bigint): number {
  const dst = BigInt(dst_pfn) << 12n;
  const src = BigInt(src_pfn) << 12n;
  if (rmm.smc_granule_delegate(dst).ret !== RMI_SUCCESS) return -Errno.ENXIO;
  let ret = rmm.smc_data_create(realm.rd_pa, dst, ipa, src, flags).ret;
  if (RMI_RETURN_STATUS(ret) === RMI_ERROR_RTT) {
    const level = RMI_RETURN_INDEX(ret);
    rmm.kernel.warn.WARN_ON(level === RMM_RTT_MAX_LEVEL, 'realm_create_protected_data_page: level');
    ret = realm_create_rtt_levels(rmm, realm, ipa, level, RMM_RTT_MAX_LEVEL);
    if (ret === 0) ret = rmm.smc_data_create(realm.rd_pa, dst, ipa, src, flags).ret;
  }
  if (ret === 0) return 0;
  rmm.kernel.warn.WARN_ON(rmm.smc_granule_undelegate(dst).ret !== RMI_SUCCESS, 'realm_create_protected_data_page: undelegate');
  return -Errno.ENXIO;
}

/**
 * kvm_populate_realm(): -EFAULT for no struct, -EPERM unless NEW, -EINVAL for an unaligned range,
 * unknown flags or a range that wraps; then per 2 MiB chunk populate_region(): the chunk's
 * memslot (-EFAULT without one), within it (-EINVAL), with a guest_memfd (-EPERM), then
 * kvm_gmem_populate() with populate_region_cb(): the source is the VMM's copy at the memslot's
 * shared alias (get_user_pages() of its hva), copied and measured by RMI_DATA_CREATE. The gfns
 * must be private (kvm_gmem_populate: -EINVAL) and not populated before (-EEXIST).
 */
function kvm_populate_realm(realm: Realm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const a = arg as { base?: unknown; size?: unknown; flags?: unknown };
  const base = u64_of(a.base);
  const size = u64_of(a.size);
  const flags = u64_of(a.flags);
  if (base === undefined || size === undefined || flags === undefined) return -Errno.EFAULT;
  if (realm.state !== 'NEW') return -Errno.EPERM;
  const page = BigInt(PAGE_SIZE);
  if (base % page !== 0n || size % page !== 0n || (flags & ~BigInt(KVM_ARM_RME_POPULATE_FLAGS_MEASURE)) !== 0n) return -Errno.EINVAL;
  const ipa_end = base + size;
  if (ipa_end >= 2n ** 64n) return -Errno.EINVAL;
  const data_flags = flags & BigInt(KVM_ARM_RME_POPULATE_FLAGS_MEASURE) ? RMI_MEASURE_CONTENT : 0n;
  const SZ_2M = 2n << 20n;
  for (let ipa = base; ipa < ipa_end;) {
    const end = ipa_end < ipa + SZ_2M ? ipa_end : ipa + SZ_2M;
    const r = populate_region(realm, ipa, end, data_flags);
    if (r) return r;
    ipa = end;
  }
  return 0;
}

function populate_region(realm: Realm, ipa_base: bigint, ipa_end: bigint, data_flags: bigint): number {
  const kvm = realm.kvm;
  const kernel = kvm.kernel;
  const rmm = rmm_of(kernel);
  const base_gfn = Number(ipa_base >> 12n);
  const end_gfn = Number(ipa_end >> 12n);
  const slot = gfn_to_memslot(kvm, base_gfn);
  if (slot === undefined) return -Errno.EFAULT;
  if (slot.base_gfn + slot.npages < end_gfn) return -Errno.EINVAL;
  if (!kvm_slot_has_gmem(slot)) return -Errno.EPERM;
  const r = kvm_gmem_populate(kvm, base_gfn, null, end_gfn - base_gfn, (_kvm, gfn, pfn) => {
    /* populate_region_cb(): get_user_pages() of the source in the shared alias, then DATA_CREATE. */
    const vpn = Number(__gfn_to_hva_memslot(slot, gfn) / BigInt(PAGE_SIZE));
    const pages: number[] = [];
    const got = get_user_pages_unlocked(kvm.mm, vpn, 1, pages, 0);
    if (got < 0) return got;
    if (got !== 1) return -Errno.ENOMEM;
    const ret = realm_create_protected_data_page(rmm, realm, BigInt(gfn) << 12n, pfn, pages[0]!, data_flags);
    put_page(kernel.store, pages[0]!);
    if (ret) return ret;
    // The RTT entry the RMM made is mirrored in KVM's mirror root (as TDX's populate maps its
    // mirror SPTE, kvm_tdp_map_page()), so that an unmap of the range reaches the RMM.
    const t = tdp_mmu_walk_to_level(kvm, tdp_mmu_get_root(kvm, true), gfn, PG_LEVEL_4K);
    return tdp_mmu_set_leaf(kvm, t, make_spte(PG_LEVEL_4K, true, true), pfn);
  });
  return r < 0 ? r : 0;
}

/**
 * kvm_create_rec(): a REC for the vCPU: RMI_GRANULE_DELEGATE of the REC and its auxiliary
 * granules, RMI_REC_CREATE with the vCPU's MPIDR (its id), pc 0, flags RUNNABLE for vCPU 0.
 * -ENXIO when the RMM refuses (a realm no longer NEW), everything undelegated again.
 */
function kvm_create_rec(vcpu: KvmVcpu): number {
  const realm = kvm_realm(vcpu.kvm);
  const rmm = rmm_of(vcpu.kvm.kernel);
  if (realm.recs.has(vcpu)) return -Errno.EBUSY;
  const rec = alloc_delegated_granule(rmm);
  if (rec < 0) return -Errno.ENXIO;
  const aux: number[] = [];
  const unwind = (): number => {
    for (const p of [rec, ...aux]) free_delegated_granule(rmm, p);
    return -Errno.ENXIO;
  };
  for (let i = 0; i < realm.num_aux; i++) {
    const p = alloc_delegated_granule(rmm);
    if (p < 0) return unwind();
    aux.push(p);
  }
  const rec_pa = BigInt(rec) << 12n;
  const res = rmm.smc_rec_create(realm.rd_pa, rec_pa, {
    flags: vcpu.vcpu_id === 0 ? 1n : 0n, mpidr: BigInt(vcpu.vcpu_id), pc: 0n, gprs: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n], aux,
  });
  if (res.ret !== RMI_SUCCESS) return unwind();
  realm.recs.set(vcpu, {
    rec_pfn: rec, aux_pfns: aux, rec: rmm.rec_at(rec_pa)!, exit_reason: RMI_EXIT_SYNC, ripas_base: 0n, ripas_top: 0n,
    ripas_value: RIPAS_EMPTY, enter_flags: 0, seas: 0,
  });
  return 0;
}

/**
 * kvm_activate_realm(): -EINVAL unless NEW; the vCPUs without a REC get one (in vCPU id order, as
 * the v12 activation does), then RMI_REALM_ACTIVATE (-ENXIO when refused).
 */
function kvm_activate_realm(realm: Realm): number {
  if (realm.state !== 'NEW') return -Errno.EINVAL;
  const vcpus = [...realm.kvm.vcpus.values()].sort((a, b) => a.vcpu_id - b.vcpu_id);
  for (const vcpu of vcpus) {
    if (realm.recs.has(vcpu)) continue;
    const r = kvm_create_rec(vcpu);
    if (r) return r;
  }
  if (rmm_of(realm.kvm.kernel).smc_realm_activate(realm.rd_pa).ret !== RMI_SUCCESS) return -Errno.ENXIO;
  realm.state = 'ACTIVE';
  return 0;
}

/**
 * kvm_realm_enable_cap(): KVM_ENABLE_CAP(KVM_CAP_ARM_RME) on a realm VM (-EINVAL for flags, on
 * another VM or for another capability), args[0] the action (-EINVAL for an unknown one), args[1] its struct.
 */
export function kvm_realm_enable_cap(kvm: Kvm, cap: bigint, flags: bigint, args: readonly unknown[]): number {
  // kvm_vm_ioctl_enable_cap() (arm64): flags must be 0.
  if (flags !== 0n || cap !== BigInt(KVM_CAP_ARM_RME) || !kvm_is_realm(kvm)) return -Errno.EINVAL;
  const realm = kvm_realm(kvm);
  const action = u64_of(args[0]);
  switch (action) {
    case BigInt(KVM_CAP_ARM_RME_CONFIG_REALM):
      return kvm_rme_config_realm(realm, args[1]);
    case BigInt(KVM_CAP_ARM_RME_CREATE_REALM):
      return kvm_create_realm(realm);
    case BigInt(KVM_CAP_ARM_RME_INIT_RIPAS_REALM):
      return kvm_init_ipa_range_realm(realm, args[1]);
    case BigInt(KVM_CAP_ARM_RME_POPULATE_REALM):
      return kvm_populate_realm(realm, args[1]);
    case BigInt(KVM_CAP_ARM_RME_ACTIVATE_REALM):
      return kvm_activate_realm(realm);
    default:
      return -Errno.EINVAL;
  }
}

/* ---- VM and vCPU lifetime ---- */

/** kvm_init_realm_vm() (kvm_arch_init_vm for a realm): private memory, protected state. */
export function kvm_init_realm_vm(kvm: Kvm, ia_bits: number): number {
  if (kvm.arch.vm_type !== KVM_VM_REALM_INDEX) return 0;
  kvm.arch.vendor = new Realm(kvm, ia_bits);
  kvm.arch.has_private_mem = true;
  kvm.arch.has_protected_state = true;
  kvm.arch.pre_fault_allowed = false;
  return 0;
}

/**
 * kvm_arch_vcpu_create() for a realm vCPU: its REC is created now when the realm is NEW (REC
 * parameters are measured in creation order), at activation otherwise; a vCPU added to an
 * active realm gets none (the RMM refuses RMI_REC_CREATE: -ENXIO).
 */
export function kvm_realm_vcpu_create(vcpu: KvmVcpu): number {
  if (!kvm_is_realm(vcpu.kvm)) return 0;
  const realm = kvm_realm(vcpu.kvm);
  if (realm.state === 'NEW' || realm.state === 'ACTIVE') return kvm_create_rec(vcpu);
  return 0;
}

/**
 * kvm_destroy_realm(): unmap every protected granule and unprotected mapping, destroy the RECs,
 * tear the RTTs down, RMI_REALM_DESTROY, and give the RD and root RTTs back to the host.
 */
export function kvm_destroy_realm(kvm: Kvm): void {
  if (!kvm_is_realm(kvm)) return;
  const realm = kvm_realm(kvm);
  if (!kvm_realm_is_created(realm) || realm.state === 'DEAD') {
    realm.state = 'DEAD';
    return;
  }
  const rmm = rmm_of(kvm.kernel);
  const warn = kvm.kernel.warn;
  const protected_top = realm.shared_bit;
  realm_unmap_private_range(rmm, realm, 0n, protected_top);
  realm_unmap_shared_range(rmm, realm, 0n, protected_top);
  realm.state = 'DYING';
  for (const rec of realm.recs.values()) {
    if (warn.WARN_ON(rmm.smc_rec_destroy(BigInt(rec.rec_pfn) << 12n).ret !== RMI_SUCCESS, 'kvm_destroy_rec')) continue;
    for (const p of rec.aux_pfns) free_delegated_granule(rmm, p);
    free_delegated_granule(rmm, rec.rec_pfn);
  }
  realm.recs.clear();
  warn.WARN_ON(realm_tear_down_rtt_level(rmm, realm, rtt_start_level(realm.ia_bits) + 1, 0n, 1n << BigInt(realm.ia_bits)) !== 0, 'kvm_realm_destroy_rtts');
  if (warn.WARN_ON(rmm.smc_realm_destroy(realm.rd_pa).ret !== RMI_SUCCESS, 'rmi_realm_destroy')) return;
  free_delegated_granule(rmm, realm.rd);
  for (const p of realm.pgd) free_delegated_granule(rmm, p);
  realm.rd = -1;
  realm.pgd = [];
  realm.state = 'DEAD';
}

/* ---- REC entry and exits ---- */

/**
 * kvm_rec_pre_enter(): -EINVAL unless the realm is ACTIVE; after a RIPAS change exit the change is
 * completed (kvm_complete_ripas_change()); then the REC is entered (RMI_REC_ENTER with the
 * RIPAS response flag). 1: enter the guest.
 */
export function kvm_rec_pre_enter(vcpu: KvmVcpu): number {
  if (!kvm_is_realm(vcpu.kvm)) return 1;
  const realm = kvm_realm(vcpu.kvm);
  if (realm.state !== 'ACTIVE') return -Errno.EINVAL;
  const rec = realm.recs.get(vcpu);
  if (rec === undefined) return -Errno.EINVAL;
  if (rec.exit_reason === RMI_EXIT_RIPAS_CHANGE && (rec.enter_flags & REC_ENTER_FLAG_RIPAS_RESPONSE) === 0) kvm_complete_ripas_change(vcpu, rec);
  const rmm = rmm_of(vcpu.kvm.kernel);
  const ret = rmm.smc_rec_enter(rec.rec, (rec.enter_flags & REC_ENTER_FLAG_RIPAS_RESPONSE) !== 0);
  rec.enter_flags = 0;
  rec.exit_reason = RMI_EXIT_SYNC;
  return ret === RMI_SUCCESS ? 1 : -Errno.EINVAL;
}

/**
 * rec_exit_ripas_change(): a range that is not protected is rejected (REC_ENTER_FLAG_RIPAS_RESPONSE
 * for the next entry, KVM_RUN -EINVAL); otherwise KVM_RUN returns -EFAULT with
 * KVM_EXIT_MEMORY_FAULT for [base, top) (PRIVATE for a change to RAM) and the change is done at
 * the next entry.
 */
export function rec_exit_ripas_change(vcpu: KvmVcpu, rec: RealmRec, base: bigint, top: bigint, ripas: Ripas): number {
  const realm = kvm_realm(vcpu.kvm);
  rec.exit_reason = RMI_EXIT_RIPAS_CHANGE;
  rec.ripas_base = base;
  rec.ripas_top = top;
  rec.ripas_value = ripas;
  if (top <= base || !kvm_realm_is_private_address(realm, base) || !kvm_realm_is_private_address(realm, top - 1n)) {
    rec.enter_flags = REC_ENTER_FLAG_RIPAS_RESPONSE;
    return -Errno.EINVAL;
  }
  kvm_mmu_prepare_memory_fault_exit(vcpu, { gfn: Number(base >> 12n), is_private: ripas === RIPAS_RAM });
  vcpu.run.memory_fault.size = top - base;
  return -Errno.EFAULT;
}

/** The realm's REC for a vCPU, if it has one. */
export function vcpu_rec(vcpu: KvmVcpu): RealmRec | undefined {
  return kvm_is_realm(vcpu.kvm) ? kvm_realm(vcpu.kvm).recs.get(vcpu) : undefined;
}

/**
 * The RMM's handle_data_abort() before the access reaches the stage-2 walk: a protected IPA
 * whose RIPAS is EMPTY takes a Synchronous External Abort in the realm (no REC exit); one whose
 * RIPAS is DESTROYED can only be fixed by the realm (RSI_IPA_STATE_SET), so the REC exit ends in
 * KVM_EXIT_MEMORY_FAULT (-EFAULT) to the VMM (inferred: the host series cannot map it).
 */
export function realm_guest_access_fault(vcpu: KvmVcpu, gpa: bigint): { kind: 'inject'; name: string } | { kind: 'exit'; ret: number } | undefined {
  const rec = vcpu_rec(vcpu);
  if (rec === undefined) return undefined;
  const realm = kvm_realm(vcpu.kvm);
  if (!kvm_realm_is_private_address(realm, gpa)) return undefined;
  const rmm = rmm_of(vcpu.kvm.kernel);
  const ripas = rtt_leaf(rec.rec.realm, gpa - (gpa % BigInt(PAGE_SIZE))).entry.ripas;
  if (ripas === RIPAS_RAM) return undefined;
  if (ripas === RIPAS_EMPTY) {
    rec.seas++;
    const tracer = rmm.kernel.tracer;
    if (tracer.enabled('cocosim_cca_realm_sea')) tracer.emit('cocosim_cca_realm_sea', { vcpu_id: vcpu.vcpu_id, ipa: gpa });
    return { kind: 'inject', name: 'SEA' };
  }
  kvm_mmu_prepare_memory_fault_exit(vcpu, { gfn: Number(gpa >> 12n), is_private: true });
  return { kind: 'exit', ret: -Errno.EFAULT };
}

/** The granule state the RMM reports for a pfn (tests, the vendor comparison). */
export function cca_granule_state(kernel: Kernel, pfn: number): number {
  return rmm_of(kernel).granule_state(pfn) ?? GRANULE_STATE_NS;
}

/** A realm's current RIM, 64 bytes (the RMM's; a realm reads it with RSI_MEASUREMENT_READ). */
export function cca_realm_rim(kvm: Kvm): Uint8Array | undefined {
  const realm = kvm_realm(kvm);
  if (realm.rd < 0) return undefined;
  return rmm_of(kvm.kernel).realms.get(realm.rd)?.rim.slice();
}
