/**
 * Design "page_guest" (designs.md D3): guest-only pages, PROT_GUEST / VM_GUEST / PG_guest /
 * FOLL_GUEST. Kirill A. Shutemov's "[PATCH] mm: Introduce guest-only pages" (dated 16 Apr 2021,
 * posted 21 May 2021 in reply to "[RFCv2 13/13] KVM: unmap guest memory using poisoned pages",
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/; updated 4 Jun 2021 on v5.12
 * after Sean Christopherson's review; branch kas/linux.git kvm-unmapped-guest-only), with the
 * QEMU patch attached to the first mail.
 *
 * mprotect(PROT_GUEST) on a shared shmem mapping sets VM_GUEST and zaps it (mprotect.ts); the
 * next fault through shmem_fault() makes the page PageGuest, unmaps it everywhere else and maps
 * it PAGE_NONE (memory.ts): user loads and stores get SIGBUS, read(2)/write(2)/fallocate(2) of
 * the file -EIO (shmem.ts), GUP -EFAULT unless FOLL_GUEST (gup.ts), which KVM passes in
 * hva_to_pfn_slow(). The kernel's direct map keeps the pages. Conversions are the VMM's (vmm.ts).
 *
 * The design predates guest_memfd: on the 6.18 base, KVM must fault every gfn through the
 * memslot's hva, so the registrar answers kvm_mem_is_private() with 0 (a SW_PROTECTED VM would
 * otherwise take private faults to guest_memfd).
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks, type MmHooks } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { design_install, type Design } from '../design.js';
import { follow_page_guest } from './gup.js';
import { do_numa_page_guest, do_set_pte_guest } from './memory.js';
import { calc_vm_prot_guest, mprotect_fixup_guest } from './mprotect.js';
import { shmem_fallocate_guest, shmem_file_rw_guest } from './shmem.js';
import { FOLL_GUEST, PG_guest, PROT_GUEST, VM_GUEST } from './uapi.js';
import { page_guest_vmm } from './vmm.js';

export * from './uapi.js';
export * from './page-flags.js';
export * from './vmm.js';

/** The design's mm hooks on one host. */
function page_guest_mm_hooks(kernel: Kernel): MmHooks {
  return {
    name: 'page_guest',
    prot_flags: PROT_GUEST,
    foll_flags: FOLL_GUEST,
    mprotect_prot: calc_vm_prot_guest,
    mprotect_fixup: mprotect_fixup_guest,
    handle_mm_fault: do_numa_page_guest,
    pte_prot: do_set_pte_guest,
    gup_check: follow_page_guest,
    file_rw: (file, pos, count, write) => shmem_file_rw_guest(kernel, file, pos, count, write),
    shmem_fallocate: (file, mode, offset, len) => shmem_fallocate_guest(kernel, file, mode, offset, len),
  };
}

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function pageGuestRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, page_guest, {});
    register_mm_hooks(kernel, page_guest_mm_hooks(kernel));
    register_kvm_hooks(kernel, {
      name: 'page_guest',
      // Every gfn faults through the hva, as before guest_memfd.
      mem_is_private: () => 0,
      // "FOLL_GUEST has to be used in hva_to_pfn_slow() when running TDX guest" (Kirill, 21 May 2021).
      hva_gup_flags: () => FOLL_GUEST,
    });
  };
}

export const page_guest: Design = {
  name: 'page_guest',
  title: 'Guest-only pages: PROT_GUEST / VM_GUEST / PG_guest / FOLL_GUEST on shared shmem (Kirill A. Shutemov, May-Jun 2021)',
  rows: ['D3'],
  uapi: { PROT_GUEST, VM_GUEST, FOLL_GUEST, PG_guest },
  options: {},
  vmm: page_guest_vmm,
  registrar: pageGuestRegistrar,
};
