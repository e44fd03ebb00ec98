/**
 * The mm seams for the alternative guest-private-memory designs (designs.md D1-D7), modelled on
 * the LSM hook list (include/linux/lsm_hook_defs.h, security/security.c): one interface of
 * optional hooks, a per-Kernel list of providers, and call_int_hook() semantics (providers are
 * asked in registration order and the first non-zero answer wins; no provider, or all answering
 * 0, leaves the base behaviour exactly as Linux 6.18's).
 *
 * Linux has no ops table at these points: each design patched the base there. The base calls the
 * hooks below with one line at each site and never tests which design is active; a design (or a
 * test double of one) registers its providers with register_mm_hooks().
 *
 * Besides the hooks, a provider declares the uAPI bits it adds (FOLL_*, PROT_*, F_SEAL_*, MFD_*):
 * the base's validation accepts the union of the declared bits and leaves their meaning to the
 * hooks. A declared bit must not collide with a bit the base already defines (BUG_ON at
 * registration).
 *
 * "Unmap of pages that become private" is not a hook: folio_make_private() and
 * mapping_make_private() below are the helpers D5-D8 use, built on the base's i_mmap rmap walk
 * (unmap_mapping_folio(), unmap_mapping_range()).
 */
import { BUG_ON, PAGE_SIZE } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import type { AddressSpace, File, Inode } from './fs.js';
import type { VmAreaStruct, VmFault } from './mm_types.js';
import { folio_test_anon, type Folio } from './folio.js';
import { mapping_unmap_hooks, unmap_mapping_range } from './truncate.js';

/** The FOLL_* bits the base defines (mm/internal.h, include/linux/mm_types.h): bits 0-22. */
const BASE_FOLL_BITS = (1 << 23) - 1;
/** PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP. */
const BASE_PROT_BITS = 0x1 | 0x2 | 0x4 | 0x8 | 0x01000000 | 0x02000000;
/** F_SEAL_SEAL .. F_SEAL_EXEC (include/uapi/linux/fcntl.h). */
const BASE_SEAL_BITS = 0x3f;
/** MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC, and MFD_HUGE_* sizes. */
const BASE_MFD_BITS = 0x1f | (0x3f << 26);

/** Returned by gup_check: follow this page although its PTE is PROT_NONE (D1 FOLL_KVM, D3 FOLL_GUEST). */
export const MM_HOOK_FOLLOW = 1;
/**
 * Returned by gup_check: follow this page although its PTE is PROT_NONE, and let FOLL_WRITE take
 * it although the PTE is not writable: the design checked the write itself (D1's and D3's
 * can_follow_write_pte(): VM_WRITE and a shared mapping or an exclusive page, or PageGuest).
 */
export const MM_HOOK_FOLLOW_WRITE = 2;

/*
 * host_access outcomes: what the hardware does to a host CPU access of a page (0: the access
 * proceeds on the page's bytes, which phys_mem gives as ciphertext where the page is encrypted).
 */
/**
 * The access faults (SNP RMP #PF with X86_PF_RMP, CCA granule protection fault): a user access
 * gets SIGBUS BUS_ADRERR, a kernel access inside a uaccess copy is fixed up (-EFAULT, short
 * copy), any other kernel access oopses (page_fault_oops()).
 */
export const MM_HOST_ACCESS_FAULT = 1;
/**
 * A machine check / synchronous external abort (pKVM's abort injected into the host): a user
 * access gets SIGBUS BUS_MCEERR_AR at the page, a kernel access oopses even inside a uaccess copy.
 */
export const MM_HOST_ACCESS_MCE = 2;
/** A read returns zeros and does not fault (TDX under Logical Integrity); a write proceeds. */
export const MM_HOST_ACCESS_ZERO = 3;
/**
 * An abort the hypervisor injects into the host (pKVM's host_inject_abort(), ESR_ELx_S1PTW set):
 * arm64's do_page_fault() sees is_pkvm_stage2_abort() and sends a user access SIGSEGV
 * SEGV_ACCERR; a kernel access is fixed up inside a uaccess copy (-EFAULT) and oopses elsewhere
 * ("access to hypervisor-protected memory").
 */
export const MM_HOST_ACCESS_ABORT = 4;

/** Who executes a host access: user-mode code, or the kernel (uaccess copies, page zeroing...). */
export type HostAccessActor = 'user' | 'kernel';

export interface MmHooks {
  /** A name for traces and warnings (the design: "D1", "D5"...). */
  readonly name: string;

  /**
   * FOLL_* bits this design adds (D1 FOLL_KVM, D2 FOLL_ALLOW_POISONED, D3 FOLL_GUEST). GUP's
   * is_valid_gup_args() rejects only the internal flags, so in-kernel callers may pass them; the
   * gup_check hook gives them their meaning.
   */
  readonly foll_flags?: number;
  /** PROT_* bits mprotect() accepts for this design (D3 PROT_GUEST 0x04000000); see mprotect_prot. */
  readonly prot_flags?: number;
  /** F_SEAL_* bits F_ADD_SEALS accepts for this design (D5 F_SEAL_GUEST / F_SEAL_INACCESSIBLE); see memfd_add_seals. */
  readonly seal_flags?: number;
  /** MFD_* bits memfd_create() accepts for this design (D6 MFD_INACCESSIBLE); see memfd_create. */
  readonly mfd_flags?: number;

  /**
   * handle_mm_fault() (mm/memory.c), before the normal fault handling of page `vpn` of `vma`
   * (FAULT_FLAG_* in `flags`), for user faults and GUP's faultin_page() alike.
   * @returns 0 to continue, or the VM_FAULT_* bits that end the fault (VM_FAULT_SIGBUS: a load or
   * store gets SIGBUS, GUP -EFAULT).
   * Used by D1 (fault in a VM_KVM_PROTECTED VMA: PROT_NONE PTE, page off the direct map), D3
   * (PageGuest page in a VM_GUEST VMA: SIGBUS), D2's per-VMA alternative (David Hildenbrand:
   * VM_DENYUSERWRITE turns a user write fault into SIGSEGV).
   */
  handle_mm_fault?(vma: VmAreaStruct, vpn: number, flags: number): number;

  /**
   * follow_page_mask() in GUP's slow path (mm/gup.c), for each present page before the PROT_NONE
   * check and before the reference or pin is taken. `pte` is the entry's flags, `pfn` its frame.
   * GUP-fast is skipped while any provider has this hook (the slow path asks it).
   * @returns 0 to continue, -errno to fail the GUP at this page (-EFAULT, -EHWPOISON), or
   * MM_HOOK_FOLLOW to take the page even though its PTE is PROT_NONE.
   * Used by D1 (only FOLL_KVM gets VM_KVM_PROTECTED pages), D2 (FOLL_ALLOW_POISONED and the
   * owner check kvm_page_allowed()), D3 (only FOLL_GUEST gets PageGuest pages).
   */
  gup_check?(vma: VmAreaStruct, vpn: number, pte: number, pfn: number, gup_flags: number): number;

  /**
   * vfs_read() / vfs_write() (fs/read_write.c, where rw_verify_area() asks
   * security_file_permission()), for read, write, pread64 and pwrite64 after the position is
   * checked: `count` bytes at `pos` (null for a stream).
   * @returns 0 or -errno (-EPERM, -EIO).
   * Used by D5 (sealed file: read/write -EPERM), D6 (MFD_INACCESSIBLE file), D7
   * (memfd_restricted file: no read/write), D2/D3 (-EIO for poisoned / PageGuest shmem pages).
   */
  file_rw?(file: File, pos: bigint | null, count: number, write: boolean): number;

  /**
   * vm_mmap_pgoff() (mm/util.c, where security_mmap_file() is asked), before do_mmap(): `file`
   * (null for anonymous memory), PROT_* and the low 32 bits of MAP_*.
   * @returns 0 or -errno.
   * For a refusal of the LSM kind (before do_mmap()'s own checks). D5/D6's refusal sits in
   * shmem_mmap(), after them: the shmem_mmap hook; D7's file has no mmap (-ENODEV by do_mmap()).
   */
  mmap_file?(file: File | null, prot: number, flags: number): number;

  /**
   * do_mprotect_pkey() (mm/mprotect.c), for each VMA: `prot` with the design's declared
   * prot_flags still in it.
   * @returns 0 (nothing to add), a positive value: VM_* flags to OR into the VMA's new flags
   * (D3: PROT_GUEST -> VM_GUEST), or -errno (D3: -EINVAL for a VMA that is not shared shmem).
   * The design's VM_* bits already on the VMA stay unless mprotect_fixup refuses.
   */
  mprotect_prot?(vma: VmAreaStruct, prot: number): number;

  /**
   * do_mprotect_pkey(), where security_file_mprotect() is asked: pages [start, end) of `vma` are
   * about to get `newflags`.
   * @returns 0 or -errno.
   * Used by David Hildenbrand's per-VMA write denial (D2 review: adding PROT_WRITE after
   * activation is refused), D1 (memslot VMAs stay PROT_NONE).
   */
  mprotect_fixup?(vma: VmAreaStruct, start: number, end: number, newflags: number): number;

  /**
   * memfd_add_seals() (mm/memfd.c), after the base's checks (-EPERM, -EINVAL, F_SEAL_SEAL) and
   * before any seal is applied: `seals` as asked.
   * @returns 0 (the seals, the design's included, are added and F_GET_SEALS reports them) or
   * -errno (D5: -EBUSY for a non-empty or mapped file).
   * Used by D5 (F_SEAL_GUEST, F_SEAL_INACCESSIBLE).
   */
  memfd_add_seals?(file: File, seals: number): number;

  /**
   * sys_memfd_create() (mm/memfd.c), after the file is set up and before it gets its fd: the
   * sanitized flags, with the design's declared mfd_flags in them.
   * @returns 0 or -errno (the file is released).
   * Used by D6 (MFD_INACCESSIBLE: mark the shmem inode inaccessible), D5 v3 (MFD_INACCESSIBLE
   * forcing F_SEAL_INACCESSIBLE).
   */
  memfd_create?(file: File, flags: number): number;

  /**
   * shmem_mmap() (mm/shmem.c), before the VMA gets shmem's vm_ops (after do_mmap()'s checks).
   * @returns 0 or -errno.
   * Used by D5/D6 (F_SEAL_INACCESSIBLE, MFD_INACCESSIBLE: -EPERM).
   */
  shmem_mmap?(file: File, vma: VmAreaStruct): number;

  /**
   * shmem_setattr() (mm/shmem.c), for a size change of a regular file, after the F_SEAL_SHRINK
   * and F_SEAL_GROW checks.
   * @returns 0 or -errno.
   * Used by D5/D6 (an inaccessible file's size is set once, page aligned: -EPERM, -EINVAL).
   */
  shmem_setattr?(inode: Inode, oldsize: bigint, newsize: bigint): number;

  /**
   * shmem_fallocate() (mm/shmem.c), after the seal checks of the mode (punch: F_SEAL_WRITE /
   * F_SEAL_FUTURE_WRITE; allocate: F_SEAL_GROW) and before pages are freed or allocated.
   * @returns 0 or -errno.
   * Used by D5/D6 (memfile_notifier: a punch invalidates KVM's private mappings, an allocation
   * makes the range private; an unaligned punch of an inaccessible file is -EINVAL).
   */
  shmem_fallocate?(file: File, mode: number, offset: bigint, len: bigint): number;

  /**
   * shmem_fault() and shmem_write_begin() (mm/shmem.c), before shmem_get_folio(): the sgp_type
   * they ask for (SGP_CACHE, SGP_WRITE).
   * @returns 0 (keep it), another SGP_* (D6 F_SEAL_AUTO_ALLOCATE: SGP_NOALLOC, a hole is
   * -ENOENT) or -errno (D5/D6: no write to, or fault on, an inaccessible file: -EPERM).
   */
  shmem_sgp?(inode: Inode, sgp: number): number;

  /**
   * cocosim (hardware, not a kernel hook): a host CPU access of `len` bytes at `offset` in page
   * `pfn`, by user-mode code or by the kernel, asked at every base site that reads or writes a
   * page's bytes for the host (user loads and stores, process_vm_readv/writev, file read/write
   * of page-cache pages, folio_zero_range). A provider may act on the page as the hardware
   * does (a TDX partial write poisons the line: kernel.phys.poison()) and answer 0.
   * @returns 0 (the access proceeds), MM_HOST_ACCESS_FAULT, MM_HOST_ACCESS_MCE or
   * MM_HOST_ACCESS_ZERO.
   * Used by the confidential-computing vendors through KVM's provider (kvm_host_access.ts:
   * the VM that owns the pfn through guest_memfd answers with its kvm_x86_ops.host_access).
   */
  host_access?(kernel: Kernel, pfn: number, write: boolean, actor: HostAccessActor, offset: number, len: number): number;

  /**
   * follow_page_pte() in GUP's slow path (mm/gup.c), for a PTE that is not present and not none
   * (a swap, migration or hwpoison entry): `pte` is the entry's flags, `val` its payload (the
   * page of a hwpoison or migration entry). Huge entries are not asked.
   * @returns 0 to fault it in as the base does, MM_HOOK_FOLLOW to take page `val` (reference or
   * pin as the flags ask), or -errno to fail the GUP at this page.
   * Used by D2 (FOLL_ALLOW_POISONED: KVM follows the page behind a hwpoison entry).
   */
  gup_follow_nonpresent?(vma: VmAreaStruct, vpn: number, pte: number, val: number, gup_flags: number): number;

  /**
   * vma_set_page_prot() -> vm_get_page_prot() (mm/mmap.c): the _PAGE_* bits of new PTEs of `vma`
   * whose flags are `vm_flags` (VM_SHARED already dropped where the VMA wants write notification).
   * @returns 0 for the base's protection_map[], or the bits to use.
   * Used by D1 (VM_KVM_PROTECTED: PAGE_NONE, so that every PTE of a protected VMA is PROT_NONE).
   */
  vm_page_prot?(vma: VmAreaStruct, vm_flags: number): number;

  /**
   * set_pte_range() and do_set_pmd() (mm/memory.c; do_set_pte()/alloc_set_pte() before 6.x):
   * page-cache `folio` is about to be mapped in `vma` by the fault `vmf` (vmf.page set: the page
   * ->fault returned; unset: fault-around's filemap_map_pages()).
   * @returns 0 for the VMA's vm_page_prot with the fault's young/dirty/write bits, or the _PAGE_*
   * bits of the entry (D3: PAGE_NONE for a PageGuest folio).
   */
  pte_prot?(vmf: VmFault, folio: Folio): number;

  /**
   * cocosim (hardware, not a kernel hook): the memory-encryption key (PhysMem key) a host CPU
   * access to `pfn` goes through, asked where user loads and stores and the kernel's uaccess
   * copies (process_vm_readv/writev) read or write a page's bytes.
   * @returns 0 for the base's plaintext domain, or the key.
   * Used by D12 (MKTME encrypt_mprotect(): the page's KeyID is in every host mapping of it, the
   * owner's PTEs and the per-KeyID direct map, so the host reads and writes its plaintext).
   */
  host_access_key?(kernel: Kernel, pfn: number): number;

  /**
   * cocosim (hardware, not a kernel hook): the memory-encryption key (PhysMem key) a device DMA
   * through the IOMMU to `pfn` goes through (vfio/src/device_dma.ts), the KeyID the IOMMU's entry
   * for the page carries.
   * @returns 0 for the base's plaintext domain, or the key.
   * Used by D12 ("iommu/vt-d: Support MKTME in DMA remapping": the IOPTE takes the page's KeyID).
   */
  dma_access_key?(kernel: Kernel, pfn: number): number;

  /**
   * folio_mc_copy() (mm/migrate.c), for each page, before migration copies page `src` to `dst`:
   * the provider prepares `dst` as its hardware needs and answers the memory-encryption key
   * (PhysMem key) the kernel's copy reads and writes through.
   * @returns 0 for the base's plaintext domain, or the key.
   * Used by D12 (MKTME: the new page gets the old page's KeyID and the kernel copies through the
   * per-KeyID direct map).
   */
  migrate_copy_key?(kernel: Kernel, dst: number, src: number): number;
}

type HookName = Exclude<{ [K in keyof MmHooks]-?: MmHooks[K] extends ((...a: never[]) => number) | undefined ? K : never }[keyof MmHooks], undefined>;

interface MmHookList {
  readonly providers: MmHooks[];
  foll_flags: number;
  prot_flags: number;
  seal_flags: number;
  mfd_flags: number;
  gup_check: boolean;
  host_access: boolean;
  /** The names of the hooks some provider has (mm_hook_present()). */
  readonly hooked: Set<string>;
}

const registries = new WeakMap<Kernel, MmHookList>();
/** Hosts that ever registered a design's hooks: while none has, the hot paths skip the lookup. */
let nr_hooked_hosts = 0;
/** Hosts that ever registered a host_access provider: user loads and stores skip the lookup while none has. */
let nr_host_access_hosts = 0;

/**
 * Whether some provider on this host has hook `name`: the hot paths (a fault, a shmem fault) ask
 * before call_mm_hook(), whose arguments cost an array per call, when providers of other hooks
 * (KVM's host_access) are registered on every host.
 */
export function mm_hook_present(kernel: Kernel, name: HookName): boolean {
  if (nr_hooked_hosts === 0) return false;
  const list = registries.get(kernel);
  return list !== undefined && list.hooked.has(name);
}

/** security_add_hooks(): add a provider; earlier providers are asked first. */
export function register_mm_hooks(kernel: Kernel, hooks: MmHooks): void {
  let list = registries.get(kernel);
  if (list === undefined) {
    list = { providers: [], foll_flags: 0, prot_flags: 0, seal_flags: 0, mfd_flags: 0, gup_check: false, host_access: false, hooked: new Set() };
    registries.set(kernel, list);
    nr_hooked_hosts++;
  }
  const bits = (v: number | undefined, base: number, what: string): number => {
    const b = v ?? 0;
    BUG_ON(!Number.isInteger(b) || b < 0 || b > 0xffffffff || (b & base) !== 0, `${hooks.name}: ${what} ${b} collides with the base's bits`);
    return b;
  };
  list.foll_flags |= bits(hooks.foll_flags, BASE_FOLL_BITS, 'FOLL_*');
  list.prot_flags |= bits(hooks.prot_flags, BASE_PROT_BITS, 'PROT_*');
  list.seal_flags |= bits(hooks.seal_flags, BASE_SEAL_BITS, 'F_SEAL_*');
  list.mfd_flags |= bits(hooks.mfd_flags, BASE_MFD_BITS, 'MFD_*');
  list.gup_check ||= hooks.gup_check !== undefined;
  if (hooks.host_access !== undefined && !list.host_access) {
    list.host_access = true;
    nr_host_access_hosts++;
  }
  /* own and inherited methods alike: call_mm_hook() finds either */
  for (let o: object | null = hooks; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const key of Object.getOwnPropertyNames(o)) if (typeof (hooks as unknown as Record<string, unknown>)[key] === 'function') list.hooked.add(key);
  }
  list.providers.push(hooks);
}

/**
 * What a host CPU access of `len` bytes at `offset` in `pfn` does (MmHooks.host_access): 0, or the
 * first provider's non-zero MM_HOST_ACCESS_* answer. The base's access sites call this.
 */
export function mm_host_access(kernel: Kernel, pfn: number, write: boolean, actor: HostAccessActor, offset: number, len: number): number {
  if (nr_host_access_hosts === 0) return 0;
  const list = registries.get(kernel);
  if (list === undefined || !list.host_access) return 0;
  for (const p of list.providers) {
    if (p.host_access === undefined) continue;
    const ret = p.host_access(kernel, pfn, write, actor, offset, len);
    if (ret !== 0) return ret;
  }
  return 0;
}

/** The PROT_* bits the registered designs add to mprotect()'s arch_validate_prot(). */
export function mm_hooks_prot_flags(kernel: Kernel): number {
  return registries.get(kernel)?.prot_flags ?? 0;
}

/** The F_SEAL_* bits the registered designs add to F_ADD_SEALS. */
export function mm_hooks_seal_flags(kernel: Kernel): number {
  return registries.get(kernel)?.seal_flags ?? 0;
}

/** The MFD_* bits the registered designs add to memfd_create(). */
export function mm_hooks_mfd_flags(kernel: Kernel): number {
  return registries.get(kernel)?.mfd_flags ?? 0;
}

/** The FOLL_* bits the registered designs add. */
export function mm_hooks_foll_flags(kernel: Kernel): number {
  return registries.get(kernel)?.foll_flags ?? 0;
}

/** Whether GUP must ask gup_check for every page (GUP-fast cannot). */
export function mm_hooks_gup_check(kernel: Kernel): boolean {
  return registries.get(kernel)?.gup_check ?? false;
}

/**
 * call_int_hook(): ask each provider with hook `name`, in registration order; the first non-zero
 * answer wins; 0 when there is none.
 */
export function call_mm_hook<K extends HookName>(kernel: Kernel, name: K, ...args: Parameters<NonNullable<MmHooks[K]>>): number {
  if (nr_hooked_hosts === 0) return 0;
  const list = registries.get(kernel);
  if (list === undefined) return 0;
  for (const p of list.providers) {
    const fn = p[name] as ((...a: unknown[]) => number) | undefined;
    if (fn === undefined) continue;
    const ret = fn.apply(p, args);
    if (ret !== 0) return ret;
  }
  return 0;
}

/**
 * Unmap page-cache `folio` from every user mapping of its file (unmap_mapping_folio(): the
 * i_mmap rmap walk; a MAP_PRIVATE COW copy is the process's own page and stays), so that host
 * user space must fault to reach it again, where the design's handle_mm_fault hook decides. For
 * file pages that become private (D5-D8 conversion to private). Anonymous folios have no such
 * conversion in D1-D8 (D1 and D3 make their PTEs PROT_NONE, D2 poisons them with
 * unmap_poisoned_folio()): passing one is a simulator bug.
 */
export function folio_make_private(kernel: Kernel, folio: Folio): void {
  BUG_ON(folio_test_anon(kernel.store, folio), 'folio_make_private: anonymous folio');
  mapping_unmap_hooks.unmap_mapping_folio(kernel, folio);
}

/**
 * Unmap pages [index, index + nr) of `mapping` from every user mapping of the file
 * (unmap_mapping_range(), even_cows false: a MAP_PRIVATE COW copy is the process's own page).
 * For a file range that becomes private (D5 F_SEAL_INACCESSIBLE, D6, D7, D8 conversion).
 */
export function mapping_make_private(kernel: Kernel, mapping: AddressSpace, index: number, nr: number): void {
  unmap_mapping_range(kernel, mapping, BigInt(index) * BigInt(PAGE_SIZE), BigInt(nr) * BigInt(PAGE_SIZE), false);
}

/**
 * The key a host CPU access to `pfn` goes through (MmHooks.host_access_key): 0, the plaintext
 * domain, unless a provider answers.
 */
export function mm_host_access_key(kernel: Kernel, pfn: number): number {
  if (!mm_hook_present(kernel, 'host_access_key')) return 0;
  return call_mm_hook(kernel, 'host_access_key', kernel, pfn);
}

/**
 * The key a device DMA to `pfn` goes through (MmHooks.dma_access_key): 0, the plaintext domain,
 * unless a provider answers.
 */
export function mm_dma_access_key(kernel: Kernel, pfn: number): number {
  if (!mm_hook_present(kernel, 'dma_access_key')) return 0;
  return call_mm_hook(kernel, 'dma_access_key', kernel, pfn);
}

/** The key migration copies `src` to `dst` through (MmHooks.migrate_copy_key): 0 unless a provider answers. */
export function mm_migrate_copy_key(kernel: Kernel, dst: number, src: number): number {
  if (!mm_hook_present(kernel, 'migrate_copy_key')) return 0;
  return call_mm_hook(kernel, 'migrate_copy_key', kernel, dst, src);
}
