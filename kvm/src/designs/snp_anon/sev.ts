/**
 * The KVM half of D14 (SEV-SNP on anonymous memory; designs.md D14): arch/x86/kvm/svm/sev.c of
 * the pre-UPM SNP host series, Brijesh Singh, "[PATCH Part2 RFC v2 00/37] Add AMD Secure Nested
 * Paging (SEV-SNP) Hypervisor Support" (30 Apr 2021, 20210430123822.13825-1-brijesh.singh@amd.com)
 * through Part2 v6 (Ashish Kalra, 20 Jun 2022). There, an SNP guest's memory is the VMM's
 * anonymous memory behind an ordinary memslot, registered (pinned) with
 * KVM_MEMORY_ENCRYPT_REG_REGION; private and shared are the same pages, told apart only by the
 * RMP: a guest page state change makes KVM RMPUPDATE the page behind the gpa's hva
 * (__snp_handle_page_state_change(): snp_make_page_private() assigns it to the guest's ASID at
 * the gpa, snp_make_page_shared() returns it to the hypervisor).
 *
 * Rebased on 6.18 with the base's seams (kvm_hooks.ts):
 *  - KVM_SET_USER_MEMORY_REGION on a KVM_X86_SNP_VM creates a slot whose private half is its own
 *    userspace_addr: the slot is bound to a per-slot anonymous file whose KvmPrivateStore gives
 *    the hva's page (hva_to_pfn() by GUP), so the 6.18 MMU's private faults map the VMM's page;
 *  - the page state change still leaves to user space as 6.18's KVM_HC_MAP_GPA_RANGE exit (the
 *    vendor's snp_begin_psc()), and the RMPUPDATE the series did inside KVM happens when the VMM
 *    answers it with KVM_SET_MEMORY_ATTRIBUTES: snp_make_page_private() through the vendor's
 *    kvm_x86_ops.gmem_prepare (RMPUPDATE to Guest-Invalid at the gpa, ASID), snp_make_page_shared()
 *    through gmem_invalidate (RMPUPDATE back to the hypervisor, PSMASH first inside a 2 MiB
 *    entry, clflush);
 *  - the host side (fault.ts): what the RMP does to host accesses of the assigned pages.
 * Where the VMM's page is part of a 2 MiB THP mapped at a 2 MiB-aligned gpa, a whole 2 MiB
 * range made private becomes one 2 MiB RMP entry (the series' snp_make_page_private() at the NPT
 * level), which KVM may map with a 2 MiB NPT entry; a 4 KiB page of it made shared is PSMASHed
 * first (snp_make_page_shared(): "if ((level == PG_LEVEL_4K) && (rmp_level == PG_LEVEL_2M))
 * snp_rmptable_psmash()").
 * Not modelled: is_hva_registered()'s refusal of a range the VMM never registered (the vendor's
 * regions list is its own) and snp_mark_unmergable() (no KSM here).
 */
import { Errno, PAGE_SHIFT, PAGE_SIZE } from '@cocosim/core';
import {
  FOLL_WRITE, File, FilesStruct, Inode, O_RDWR, S_IFREG, folio_order, get_user_pages_unlocked, open_fmode, page_folio, put_page,
  type FileOwner, type Kernel,
} from '@cocosim/mm';
import type { Kvm, KvmMemorySlot } from '../../kvm_host.js';
import { ENOIOCTLCMD, kvm_private_store_register, type KvmPrivateStore } from '../../kvm_hooks.js';
import { gfn_to_memslot, kvm_set_memory_region, user_struct_field } from '../../kvm_memslots.js';
import { kvm_get_memory_attributes, kvm_vm_ioctl_set_mem_attributes } from '../../kvm_mem_attributes.js';
import { KVM_MEM_GUEST_MEMFD } from '../../uapi.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, KVM_X86_SNP_VM } from './uapi.js';

/** A page D14 assigned to a guest in the RMP: the VM, the slot whose hva it backs, its gfn. */
export interface AssignedPage {
  readonly kvm: Kvm;
  readonly slot: KvmMemorySlot;
  readonly gfn: number;
}

/** The pages D14 assigned to a guest in the RMP, by pfn (host-wide, as the RMP is). */
const assigned_pages = new WeakMap<Kernel, Map<number, AssignedPage>>();

function assigned_of(kernel: Kernel): Map<number, AssignedPage> {
  let m = assigned_pages.get(kernel);
  if (m === undefined) assigned_pages.set(kernel, (m = new Map()));
  return m;
}

/** The VM whose guest D14 gave `pfn` to in the RMP, or undefined. */
export function snp_anon_pfn_owner(kernel: Kernel, pfn: number): Kvm | undefined {
  return assigned_pages.get(kernel)?.get(pfn)?.kvm;
}

/** What D14 knows of a page it assigned: VM, slot and gfn; undefined for any other page. */
export function snp_anon_assigned(kernel: Kernel, pfn: number): AssignedPage | undefined {
  return assigned_pages.get(kernel)?.get(pfn);
}

const PTRS_PER_PMD = 512;

/** The slots of D14 (their private half is their hva), with their VM and the file that binds them. */
const anon_slots = new WeakMap<KvmMemorySlot, { readonly kvm: Kvm; readonly file: File }>();

/**
 * hva_to_pfn() of a D14 slot's gfn: the page behind its userspace_addr, faulted in for write
 * (GUP; the page is pinned already by REG_REGION, so the reference GUP takes is dropped at once,
 * as kvm_release_faultin_page() does). -EFAULT when the VMM has no page there.
 */
function snp_gfn_to_pfn(kvm: Kvm, slot: KvmMemorySlot, gfn: number): number {
  const hva = slot.userspace_addr + BigInt(gfn - slot.base_gfn) * BigInt(PAGE_SIZE);
  const pages: number[] = [];
  const r = get_user_pages_unlocked(kvm.mm, Number(hva >> BigInt(PAGE_SHIFT)), 1, pages, FOLL_WRITE);
  if (r !== 1) return r < 0 ? r : -Errno.EFAULT;
  put_page(kvm.kernel.store, pages[0]!);
  return pages[0]!;
}

/**
 * The order the guest may have `gfn` at: 9 when the VMM's page is part of a 2 MiB folio that
 * lines up with the gpa's 2 MiB frame (a THP at a 2 MiB-aligned hva of a 2 MiB-aligned slot),
 * else 0.
 */
function snp_gfn_order(kvm: Kvm, gfn: number, pfn: number): number {
  const folio = page_folio(kvm.kernel.store, pfn);
  return folio_order(kvm.kernel.store, folio) >= 9 && pfn - folio === gfn % PTRS_PER_PMD ? 9 : 0;
}

/**
 * snp_make_page_private(): RMPUPDATE of the page to the guest (assigned, its ASID, at `gfn`'s gpa;
 * `order` 9: the whole 2 MiB as one entry where the vendor can), through the vendor's
 * gmem_prepare (already assigned: nothing to do). 0 or -errno.
 */
function snp_make_page_private(kvm: Kvm, slot: KvmMemorySlot, gfn: number, pfn: number, order: number): number {
  const rc = kvm.x86_ops.gmem_prepare(kvm, pfn, gfn, order);
  if (rc) return rc;
  const m = assigned_of(kvm.kernel);
  const n = order ? PTRS_PER_PMD : 1;
  const pfn0 = pfn - (pfn % n);
  const gfn0 = gfn - (gfn % n);
  for (let i = 0; i < n; i++) m.set(pfn0 + i, { kvm, slot, gfn: gfn0 + i });
  return 0;
}

/** snp_make_page_shared(): RMPUPDATE back to the hypervisor (PSMASH first, clflush) through gmem_invalidate. */
function snp_make_page_shared(kvm: Kvm, pfn: number): void {
  const m = assigned_of(kvm.kernel);
  if (m.get(pfn)?.kvm !== kvm) return;
  kvm.x86_ops.gmem_invalidate(kvm, pfn, pfn + 1);
  m.delete(pfn);
}

/**
 * The private half of a D14 slot: its own hva. get_pfn is the private fault's hva_to_pfn(); the
 * page is made private in the RMP if the page state change has not done it yet (a page the
 * guest uses private before any PSC, as after a launch).
 */
const snp_anon_store: KvmPrivateStore = {
  bind(kvm, slot, file): number {
    slot.gmem.file = file.get_file();
    slot.gmem.pgoff = 0;
    anon_slots.set(slot, { kvm, file });
    return 0;
  },
  unbind(slot): void {
    const b = anon_slots.get(slot);
    if (b === undefined) return;
    // The slot's pages go back to the hypervisor before the VMM can reuse or free them: an
    // assigned page left behind would fault the host's next write to it.
    for (const [pfn, a] of assigned_of(b.kvm.kernel)) if (a.slot === slot) snp_make_page_shared(b.kvm, pfn);
    anon_slots.delete(slot);
    slot.gmem.file = null;
    b.file.fput();
  },
  get_pfn(kvm, slot, gfn) {
    const pfn = snp_gfn_to_pfn(kvm, slot, gfn);
    if (pfn < 0) return pfn;
    const order = snp_gfn_order(kvm, gfn, pfn);
    const r = snp_make_page_private(kvm, slot, gfn, pfn, 0);
    // KVM caps the mapping at the RMP entry's level (the vendor's gmem_max_mapping_level).
    return r < 0 ? r : { pfn, max_order: order };
  },
};

/**
 * KVM_SET_USER_MEMORY_REGION on an SNP VM (the series' memslots): the base's
 * kvm_set_memory_region() with the slot's private half bound to a file of its own, whose store
 * serves the hva. Other VMs, and KVM_SET_USER_MEMORY_REGION2, are the base's.
 */
function snp_set_user_memory_region(kvm: Kvm, arg: unknown, current: FileOwner): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const slot = user_struct_field(o, 'slot', 32);
  const flags = user_struct_field(o, 'flags', 32);
  const guest_phys_addr = user_struct_field(o, 'guest_phys_addr', 64);
  const memory_size = user_struct_field(o, 'memory_size', 64);
  const userspace_addr = user_struct_field(o, 'userspace_addr', 64);
  if (slot === undefined || flags === undefined || guest_phys_addr === undefined || memory_size === undefined || userspace_addr === undefined) {
    return -Errno.EFAULT;
  }
  // KVM_SET_USER_MEMORY_REGION has no guest_memfd fields: the flag is the region2 ioctl's only.
  if (Number(flags) & KVM_MEM_GUEST_MEMFD) return -Errno.EINVAL;
  const mem = { slot: Number(slot), flags: Number(flags), guest_phys_addr, memory_size, userspace_addr, guest_memfd: 0, guest_memfd_offset: 0n };
  // Deleting, moving or changing a slot: the base's (a D14 slot is bound, so only deletion is allowed).
  if (memory_size === 0n) return kvm_set_memory_region(kvm, mem, current);
  const kernel = kvm.kernel;
  const inode = new Inode(kernel.get_next_ino(), S_IFREG | 0o600, {}, {}, kernel.next_mapping_id());
  inode.i_size = memory_size;
  kvm_private_store_register(inode, snp_anon_store);
  const file = new File(inode, {}, O_RDWR, open_fmode(O_RDWR));
  // The file is the kernel's own: it is found as fd 0 of a table nobody else sees.
  const files = new FilesStruct();
  files.install(file, true);
  const r = kvm_set_memory_region(kvm, { ...mem, flags: mem.flags | KVM_MEM_GUEST_MEMFD, guest_memfd: 0 }, { files });
  file.fput();
  return r;
}

/**
 * KVM_SET_MEMORY_ATTRIBUTES of a VM with D14 slots: the base's ioctl, then the RMPUPDATE the
 * series' __snp_handle_page_state_change() did for each page of the range that a D14 slot backs
 * (to private: the hva's page to the guest; to shared: back to the hypervisor). The RMP changes
 * only once the base accepted the request, so a refused request changes nothing.
 */
function snp_set_memory_attributes(kvm: Kvm, arg: unknown): number {
  const r = kvm_vm_ioctl_set_mem_attributes(kvm, arg);
  if (r) return r;
  const o = arg as Record<string, unknown>;
  const start = Number(user_struct_field(o, 'address', 64)! >> BigInt(PAGE_SHIFT));
  const end = start + Number(user_struct_field(o, 'size', 64)! >> BigInt(PAGE_SHIFT));
  for (let gfn = start; gfn < end;) {
    const slot = gfn_to_memslot(kvm, gfn);
    if (slot === undefined || !anon_slots.has(slot)) {
      gfn++;
      continue;
    }
    const to_private = (kvm_get_memory_attributes(kvm, gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
    const pfn = snp_gfn_to_pfn(kvm, slot, gfn);
    if (to_private) {
      if (pfn < 0) return pfn;
      // A whole, aligned 2 MiB of a THP: one 2 MiB RMP entry.
      const order = gfn % PTRS_PER_PMD === 0 && end - gfn >= PTRS_PER_PMD ? snp_gfn_order(kvm, gfn, pfn) : 0;
      const rc = snp_make_page_private(kvm, slot, gfn, pfn, order);
      if (rc) return rc;
      gfn += order ? PTRS_PER_PMD : 1;
    } else {
      if (pfn >= 0) snp_make_page_shared(kvm, pfn);
      gfn++;
    }
  }
  return 0;
}

/** The design's vm_ioctl hook: the two ioctls above on SNP VMs, everything else the base's. */
export function snp_anon_vm_ioctl(kvm: Kvm, cmd: number, arg: unknown, current: FileOwner): number {
  if (kvm.arch.vm_type !== KVM_X86_SNP_VM) return -ENOIOCTLCMD;
  if (cmd === KVM_SET_USER_MEMORY_REGION) return snp_set_user_memory_region(kvm, arg, current);
  if (cmd === KVM_SET_MEMORY_ATTRIBUTES) return snp_set_memory_attributes(kvm, arg);
  return -ENOIOCTLCMD;
}

/** Whether `slot` is a D14 slot (its private half is its hva). */
export function snp_anon_slot(slot: KvmMemorySlot): boolean {
  return anon_slots.has(slot);
}
