/**
 * x86 memory protection keys as plain mmap() and mprotect() meet them (arch/x86/mm/pkeys.c,
 * arch/x86/include/asm/pkeys.h and mmu_context.h, Linux 6.18): on a CPU with protection keys
 * that the kernel enabled (X86_FEATURE_OSPKE, cpuinfo "ospke"; vm_sysctl().pku), a mapping made
 * or changed to exactly PROT_EXEC gets the mm's execute-only pkey, whose PKRU bits deny every data
 * access, so that the memory can be executed but neither read nor written: a user load or store
 * there is SIGSEGV with SEGV_PKUERR, and a kernel copy from or to it (read(2), write(2) with such a
 * buffer) is -EFAULT. Without OSPKE x86 cannot express execute-only and the memory stays readable.
 *
 * pkey_alloc(), pkey_free() and pkey_mprotect() are not modelled (no trace op reaches them), so
 * the only pkey besides 0 is the execute-only one, and PKRU stays the value every thread starts
 * with (init_pkru_value: access to every pkey but 0 disabled; execute_only_pkey() finds its key
 * already write- and access-disabled there, as the kernel's own check does).
 */
import { PROT_EXEC } from './mman.js';
import { vm_sysctl, type MmStruct, type VmAreaStruct, VM_ACCESS_FLAGS, VM_EXEC, VM_PKEY_BIT0 } from './mm_types.js';

/** arch_max_pkey(): 16 keys with OSPKE. */
const ARCH_MAX_PKEY = 16;
/** ARCH_DEFAULT_PKEY. */
export const ARCH_DEFAULT_PKEY = 0;
/** PKRU_AD_BIT / PKRU_WD_BIT: a key's access-disable and write-disable bits (2 per key). */
const PKRU_AD_BIT = 0x1;
const PKRU_WD_BIT = 0x2;
/**
 * init_pkru_value (arch/x86/mm/pkeys.c): PKRU_AD_MASK(pkey) for every key but 0, 0x55555554. A
 * 32-bit value: read with `>>>`.
 */
export const INIT_PKRU_VALUE = 0x55555554;

/** vma_pkey(): the VMA's key, VM_PKEY_BIT0..3 (vm_flags bits 32-35). */
export function vma_pkey(vma: VmAreaStruct): number {
  return Math.floor(vma.vm_flags / VM_PKEY_BIT0) & (ARCH_MAX_PKEY - 1);
}

/** __pkru_allows_pkey(): may the current thread's PKRU read (or write) memory of `pkey`? */
export function __pkru_allows_pkey(pkey: number, write: boolean): boolean {
  const bits = (INIT_PKRU_VALUE >>> (pkey * 2)) & (PKRU_AD_BIT | PKRU_WD_BIT);
  if (bits & PKRU_AD_BIT) return false;
  return !(write && bits & PKRU_WD_BIT);
}

/**
 * arch_vma_access_permitted(): pkeys never stop instruction fetches, nor a foreign access (GUP of
 * another mm, FOLL_REMOTE); otherwise the thread's PKRU decides for the VMA's key.
 */
export function arch_vma_access_permitted(vma: VmAreaStruct, write: boolean, execute: boolean, foreign: boolean): boolean {
  if (execute || foreign) return true;
  return __pkru_allows_pkey(vma_pkey(vma), write);
}

/** mm_pkey_alloc(): the lowest key free in the mm's allocation map, marked used; -1 when none. */
function mm_pkey_alloc(mm: MmStruct): number {
  for (let pkey = 0; pkey < ARCH_MAX_PKEY; pkey++) {
    if (!(mm.pkey_allocation_map & (1 << pkey))) {
      mm.pkey_allocation_map |= 1 << pkey;
      return pkey;
    }
  }
  return -1;
}

/**
 * execute_only_pkey() / __execute_only_pkey(): the mm's execute-only key, allocated on first use
 * (arch_set_user_pkey_access(PKEY_DISABLE_ACCESS) finds it disabled already in PKRU); -1 without
 * OSPKE or without a free key.
 */
export function execute_only_pkey(mm: MmStruct): number {
  if (!vm_sysctl(mm.kernel).pku) return -1;
  if (mm.execute_only_pkey !== -1) return mm.execute_only_pkey;
  const pkey = mm_pkey_alloc(mm);
  if (pkey < 0) return -1;
  mm.execute_only_pkey = pkey;
  return pkey;
}

/** vma_is_pkey_exec_only(): an execute-only VMA under the mm's execute-only key. */
function vma_is_pkey_exec_only(vma: VmAreaStruct): boolean {
  if ((vma.vm_flags & VM_ACCESS_FLAGS) !== VM_EXEC) return false;
  return vma_pkey(vma) === vma.vm_mm.execute_only_pkey;
}

/**
 * arch_override_mprotect_pkey() for a plain mprotect() (pkey -1): PROT_EXEC alone takes the
 * execute-only key when there is one; leaving execute-only goes back to the default key; anything
 * else keeps the VMA's key. Without OSPKE, always 0.
 */
export function arch_override_mprotect_pkey(vma: VmAreaStruct, prot: number, pkey: number): number {
  if (!vm_sysctl(vma.vm_mm.kernel).pku) return 0;
  if (pkey !== -1) return pkey;
  if (prot === PROT_EXEC) {
    const xo = execute_only_pkey(vma.vm_mm);
    if (xo > 0) return xo;
  } else if (vma_is_pkey_exec_only(vma)) {
    return ARCH_DEFAULT_PKEY;
  }
  return vma_pkey(vma);
}

/** arch_dup_pkeys(): a forked mm inherits the allocation map and the execute-only key. */
export function arch_dup_pkeys(oldmm: MmStruct, mm: MmStruct): void {
  mm.pkey_allocation_map = oldmm.pkey_allocation_map;
  mm.execute_only_pkey = oldmm.execute_only_pkey;
}
