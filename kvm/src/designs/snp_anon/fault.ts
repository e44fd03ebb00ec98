/**
 * The host side of D14: arch/x86/mm/fault.c of the pre-UPM SNP host series, Brijesh Singh,
 * "[PATCH Part2 RFC v2 11/37] x86/fault: Add support to handle the RMP fault for user address"
 * (30 Apr 2021, 20210430123822.13825-12-brijesh.singh@amd.com), and its companion for kernel
 * addresses. The VMM keeps its mapping of guest memory; the hardware checks every host write
 * against the RMP ("the assigned bit in the RMP table is zero", the immutable bit clear), and a
 * write to a page assigned to a guest takes #PF with X86_PF_RMP:
 *
 *   handle_user_rmp_page_fault(): the entry is assigned -> RMP_FAULT_KILL -> do_sigbus() (SIGBUS
 *   BUS_ADRERR to the writer); a kernel write (copy_to_user into guest memory) is fixed up by
 *   the uaccess exception table (-EFAULT, short copy) and oopses elsewhere. Reads are not checked:
 *   they return the ciphertext. The page is shared but the host maps it with a level above its
 *   RMP entry's (a 2 MiB PMD over a 2 MiB range whose other pages are assigned, or were PSMASHed
 *   into 4 KiB entries) -> RMP_FAULT_PAGE_SPLIT -> FAULT_FLAG_PAGE_SPLIT -> __split_huge_pmd(),
 *   and the write is retried through 4 KiB PTEs.
 *
 * The RMP is the vendor's: the answer is the owning VM's kvm_x86_ops.host_access (SNP: the RMP
 * check of sev_host_access()), asked for the pages D14 gave to a guest (sev.ts); the base's KVM
 * provider answers only for guest_memfd pages, which these are not.
 */
import { PAGE_SIZE } from '@cocosim/core';
import {
  MM_HOST_ACCESS_FAULT, MM_HOST_ACCESS_MCE, MM_HOST_ACCESS_ZERO, find_vma, folio_nr_pages, page_folio, split_huge_pmd,
  type HostAccessActor, type Kernel, type MmHooks,
} from '@cocosim/mm';
import { snp_anon_assigned, snp_anon_pfn_owner } from './sev.js';

const PTRS_PER_PMD = 512;

/**
 * The RMP_FAULT_PAGE_SPLIT case of handle_user_rmp_page_fault(): a user write to shared `pfn` of
 * a 2 MiB folio whose neighbours D14 gave to a guest. If the VMM maps that folio with a PMD, the
 * PMD is split (the write then goes through a 4 KiB PTE, which the RMP accepts).
 */
function rmp_fault_page_split(kernel: Kernel, pfn: number): void {
  const store = kernel.store;
  const folio = page_folio(store, pfn);
  if (folio_nr_pages(store, folio) !== PTRS_PER_PMD) return;
  for (let p = folio; p < folio + PTRS_PER_PMD; p++) {
    const a = snp_anon_assigned(kernel, p);
    if (a === undefined) continue;
    const hva = a.slot.userspace_addr + BigInt(a.gfn - a.slot.base_gfn + (pfn - p)) * BigInt(PAGE_SIZE);
    const vpn = Number(hva / BigInt(PAGE_SIZE));
    const vma = find_vma(a.kvm.mm, vpn);
    const pmd = Math.floor(vpn / PTRS_PER_PMD);
    if (vma !== undefined && vma.start_vpn <= vpn && a.kvm.mm.pgd.pmds.get(pmd) !== undefined) split_huge_pmd(vma, pmd);
    return;
  }
}

/** handle_user_rmp_page_fault() (and the kernel-address handler): the RMP's answer as MM_HOST_ACCESS_*. */
function handle_rmp_page_fault(kernel: Kernel, pfn: number, write: boolean, actor: HostAccessActor, offset: number, len: number): number {
  const kvm = snp_anon_pfn_owner(kernel, pfn);
  if (kvm === undefined) {
    if (write && actor === 'user') rmp_fault_page_split(kernel, pfn);
    return 0;
  }
  const out = kvm.x86_ops.host_access(kvm, pfn, write, actor, offset, len);
  switch (out.kind) {
    case 'ok':
    case 'ciphertext':
      return 0;
    case 'fault':
      return MM_HOST_ACCESS_FAULT;
    case 'mce':
      return MM_HOST_ACCESS_MCE;
    case 'zeros':
      return MM_HOST_ACCESS_ZERO;
  }
}

/** The design's mm provider. */
export const snp_anon_mm_hooks: MmHooks = {
  name: 'snp_anon',
  host_access: handle_rmp_page_fault,
};
