/**
 * The address-space structures (include/linux/mm_types.h, include/linux/mm.h, Linux 6.18):
 * struct mm_struct, struct vm_area_struct, struct vm_operations_struct, struct vm_fault, the
 * VM_* flags and the VM_FAULT_* / FAULT_FLAG_* codes.
 *
 * Addresses. A VMA covers the pages [start_vpn, end_vpn) (vpn = address / PAGE_SIZE, a plain
 * number: user space has 2^35 pages). The kernel's byte fields vm_start and vm_end are getters
 * returning u64 `Hva` bigints with the kernel's meaning; the hot paths (faults, zaps, walks) use
 * the vpn fields. mm->mm_mt is a core MapleTree keyed by vpn: a VMA is stored over
 * [start_vpn, end_vpn - 1]. Byte values from user space are validated as exact u64 at the
 * syscall boundary (mmap.ts, mprotect.ts...) before anything becomes a vpn.
 *
 * vm_flags. Linux 6.18 has flags above bit 31 (VM_HIGH_ARCH_*, VM_ALLOW_ANY_UNCACHED, VM_DROPPABLE,
 * VM_UFFD_MINOR, VM_SEALED), so vm_flags is a JS number holding up to 2^43 exactly. JavaScript's
 * `&` takes its operands modulo 2^32 (ToInt32), so `vm_flags & VM_WRITE` is right for every flag
 * below bit 31; combining flags (|, &~) and testing the high ones goes through vm_flags_or(),
 * vm_flags_andnot(), vm_flags_and() and vm_flags_test(), which work on both 32-bit halves.
 */
import { BUG_ON, Hva, MapleTree, PAGE_SIZE, type Pfn, type PgOff } from '@cocosim/core';
import type { File } from './fs.js';
import type { Kernel } from './kernel.js';
import { Pgd, type PteTable } from './pgtable.js';
import type { Task } from './process.js';
import type { AnonVma } from './rmap.js';

/* VMA flags (include/linux/mm.h, enum of VMA_*_BIT) */
export const VM_NONE = 0;
export const VM_READ = 2 ** 0;
export const VM_WRITE = 2 ** 1;
export const VM_EXEC = 2 ** 2;
export const VM_SHARED = 2 ** 3;
/* mprotect() hardcodes VM_MAYREAD >> 4 == VM_READ, and so for r/w/x bits. */
export const VM_MAYREAD = 2 ** 4;
export const VM_MAYWRITE = 2 ** 5;
export const VM_MAYEXEC = 2 ** 6;
export const VM_MAYSHARE = 2 ** 7;
/** general info on the segment */
export const VM_GROWSDOWN = 2 ** 8;
/** missing pages tracking (userfaultfd) */
export const VM_UFFD_MISSING = 2 ** 9;
/** Page-ranges managed without "struct page", just pure PFN */
export const VM_PFNMAP = 2 ** 10;
/** wrprotect pages tracking (userfaultfd) */
export const VM_UFFD_WP = 2 ** 12;
export const VM_LOCKED = 2 ** 13;
/** Memory mapped I/O or similar */
export const VM_IO = 2 ** 14;
/** App will access data sequentially */
export const VM_SEQ_READ = 2 ** 15;
/** App will not benefit from clustered reads */
export const VM_RAND_READ = 2 ** 16;
/** Do not copy this vma on fork */
export const VM_DONTCOPY = 2 ** 17;
/** Cannot expand with mremap() */
export const VM_DONTEXPAND = 2 ** 18;
/** Lock pages covered when faulted in */
export const VM_LOCKONFAULT = 2 ** 19;
/** Is a VM accounted object */
export const VM_ACCOUNT = 2 ** 20;
/** should the VM suppress accounting */
export const VM_NORESERVE = 2 ** 21;
/** Huge TLB Page VM */
export const VM_HUGETLB = 2 ** 22;
/** Synchronous page faults */
export const VM_SYNC = 2 ** 23;
/** Architecture-specific flag */
export const VM_ARCH_1 = 2 ** 24;
/** Wipe VMA contents in child. */
export const VM_WIPEONFORK = 2 ** 25;
/** Do not include in the core dump */
export const VM_DONTDUMP = 2 ** 26;
/** Not soft dirty clean area (CONFIG_MEM_SOFT_DIRTY) */
export const VM_SOFTDIRTY = 2 ** 27;
/** Can contain "struct page" and pure PFN pages */
export const VM_MIXEDMAP = 2 ** 28;
/** MADV_HUGEPAGE marked this vma */
export const VM_HUGEPAGE = 2 ** 29;
/** MADV_NOHUGEPAGE marked this vma */
export const VM_NOHUGEPAGE = 2 ** 30;
/** KSM may merge identical pages */
export const VM_MERGEABLE = 2 ** 31;
export const VM_HIGH_ARCH_0 = 2 ** 32;
export const VM_HIGH_ARCH_1 = 2 ** 33;
export const VM_HIGH_ARCH_2 = 2 ** 34;
export const VM_HIGH_ARCH_3 = 2 ** 35;
export const VM_HIGH_ARCH_4 = 2 ** 36;
export const VM_HIGH_ARCH_5 = 2 ** 37;
export const VM_HIGH_ARCH_6 = 2 ** 38;
/** Protection keys (x86: VM_HIGH_ARCH_0..3) */
export const VM_PKEY_BIT0 = VM_HIGH_ARCH_0;
export const VM_PKEY_BIT1 = VM_HIGH_ARCH_1;
export const VM_PKEY_BIT2 = VM_HIGH_ARCH_2;
export const VM_PKEY_BIT3 = VM_HIGH_ARCH_3;
/** x86 user shadow stack (VM_HIGH_ARCH_5) */
export const VM_SHADOW_STACK = VM_HIGH_ARCH_5;
export const VM_ALLOW_ANY_UNCACHED = 2 ** 39;
export const VM_DROPPABLE = 2 ** 40;
export const VM_UFFD_MINOR = 2 ** 41;
/** mseal()ed */
export const VM_SEALED = 2 ** 42;
/** x86-64 has no upward-growing stacks */
export const VM_GROWSUP = VM_NONE;
export const VM_STACK = VM_GROWSDOWN;

/** VMA basic access permission flags */
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;
/** Special vmas that are non-mergable, non-mlock()able. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;
/** This mask represents all the VMA flag bits used by mlock */
export const VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT;
/** Flags merging ignores (VM_IGNORE_MERGE: VM_SOFTDIRTY in 6.18). */
export const VM_IGNORE_MERGE = VM_SOFTDIRTY;
export const VM_STARTGAP_FLAGS = VM_GROWSDOWN | VM_SHADOW_STACK;
/** VM_DATA_DEFAULT_FLAGS on x86-64 (VM_DATA_FLAGS_TSK_EXEC without READ_IMPLIES_EXEC). */
export const VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;

/* 64-bit vm_flags arithmetic (see the file comment) */

const TWO32 = 2 ** 32;

/** a | b on 64-bit flag words. */
export function vm_flags_or(a: number, b: number): number {
  return ((Math.floor(a / TWO32) | Math.floor(b / TWO32)) >>> 0) * TWO32 + ((a | b) >>> 0);
}
/** a & b on 64-bit flag words. */
export function vm_flags_and(a: number, b: number): number {
  return ((Math.floor(a / TWO32) & Math.floor(b / TWO32)) >>> 0) * TWO32 + ((a & b) >>> 0);
}
/** a & ~b on 64-bit flag words. */
export function vm_flags_andnot(a: number, b: number): number {
  return ((Math.floor(a / TWO32) & ~Math.floor(b / TWO32)) >>> 0) * TWO32 + ((a & ~b) >>> 0);
}
/** (a & mask) != 0 on 64-bit flag words. */
export function vm_flags_test(a: number, mask: number): boolean {
  return ((a & mask) | (Math.floor(a / TWO32) & Math.floor(mask / TWO32))) !== 0;
}

/* enum vm_fault_reason (include/linux/mm_types.h) */
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_MAJOR = 0x000004;
export const VM_FAULT_HWPOISON = 0x000010;
export const VM_FAULT_HWPOISON_LARGE = 0x000020;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_NOPAGE = 0x000100;
export const VM_FAULT_LOCKED = 0x000200;
export const VM_FAULT_RETRY = 0x000400;
export const VM_FAULT_FALLBACK = 0x000800;
export const VM_FAULT_DONE_COW = 0x001000;
export const VM_FAULT_NEEDDSYNC = 0x002000;
export const VM_FAULT_COMPLETED = 0x004000;
export const VM_FAULT_HINDEX_MASK = 0x0f0000;
export const VM_FAULT_ERROR =
  VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE | VM_FAULT_FALLBACK;
export const VM_FAULT_HWPOISON_MASK = VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE;
/** VM_FAULT_SET_HINDEX(): the huge page order of a VM_FAULT_HWPOISON_LARGE. */
export function VM_FAULT_SET_HINDEX(x: number): number {
  return x * 2 ** 16;
}
export function VM_FAULT_GET_HINDEX(x: number): number {
  return (x & VM_FAULT_HINDEX_MASK) >>> 16;
}

/* enum fault_flag (include/linux/mm_types.h) */
export const FAULT_FLAG_WRITE = 1 << 0;
export const FAULT_FLAG_MKWRITE = 1 << 1;
export const FAULT_FLAG_ALLOW_RETRY = 1 << 2;
export const FAULT_FLAG_RETRY_NOWAIT = 1 << 3;
export const FAULT_FLAG_KILLABLE = 1 << 4;
export const FAULT_FLAG_TRIED = 1 << 5;
export const FAULT_FLAG_USER = 1 << 6;
export const FAULT_FLAG_REMOTE = 1 << 7;
export const FAULT_FLAG_INSTRUCTION = 1 << 8;
export const FAULT_FLAG_INTERRUPTIBLE = 1 << 9;
export const FAULT_FLAG_UNSHARE = 1 << 10;
export const FAULT_FLAG_ORIG_PTE_VALID = 1 << 11;
export const FAULT_FLAG_VMA_LOCK = 1 << 12;
/** FAULT_FLAG_DEFAULT: what a user fault starts with. */
export const FAULT_FLAG_DEFAULT = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_INTERRUPTIBLE;

/* enum mm counters (include/linux/mm_types_task.h) */
export const MM_FILEPAGES = 0;
export const MM_ANONPAGES = 1;
export const MM_SWAPENTS = 2;
export const MM_SHMEMPAGES = 3;
export const NR_MM_COUNTERS = 4;

/* x86-64 address space (arch/x86/include/asm/page_64_types.h, processor.h) */
/** DEFAULT_MAP_WINDOW = TASK_SIZE_MAX with 4-level paging: 2^47 - PAGE_SIZE. */
export const DEFAULT_MAP_WINDOW = (1n << 47n) - BigInt(PAGE_SIZE);
export const TASK_SIZE_MAX = DEFAULT_MAP_WINDOW;
/** TASK_SIZE of a 64-bit process: 0x7ffffffff000. */
export const TASK_SIZE = DEFAULT_MAP_WINDOW;
/** TASK_UNMAPPED_BASE: the bottom-up allocator's start (PAGE_ALIGN(TASK_SIZE / 3)). */
export const TASK_UNMAPPED_BASE = (TASK_SIZE / 3n + BigInt(PAGE_SIZE) - 1n) & ~BigInt(PAGE_SIZE - 1);
/** mmap_base()'s minimum gap below the stack top (arch/x86/mm/mmap.c SIZE_128M). */
export const MMAP_GAP_MIN = 128n * 1024n * 1024n;

/* mm->flags (include/linux/mm_types.h) */
/** MMF_TOPDOWN: get_unmapped_area searches top-down from mmap_base. */
export const MMF_TOPDOWN = 1 << 0;

/**
 * Host tunables of the address-space side: what /proc/sys/vm, sysfs and Kconfig say on the
 * simulated host. One object per Kernel (vm_sysctl()); tests and experiments change fields
 * directly. The defaults are those of the machine the kernel oracle runs on (Linux 6.18).
 */
export interface VmSysctl {
  /**
   * /proc/sys/vm/mmap_min_addr: dac_mmap_min_addr (4096 on the oracle machine; distributions often
   * use 65536), the floor below which mapping needs CAP_SYS_RAWIO (cap_mmap_addr()).
   */
  mmap_min_addr: bigint;
  /**
   * CONFIG_LSM_MMAP_MIN_ADDR (65536 on the oracle machine; 0 without CONFIG_SECURITY): the kernel's
   * own mmap_min_addr is the larger of the two (security/min_addr.c update_mmap_min_addr()), what
   * hints are rounded up to and address searches start from (effective_mmap_min_addr()).
   */
  lsm_mmap_min_addr: bigint;
  /** /proc/sys/vm/max_map_count. */
  max_map_count: number;
  /** /proc/sys/vm/overcommit_memory (0 = heuristic, 1 = always, 2 = never). */
  overcommit_memory: number;
  /**
   * CONFIG_MEMORY_FAILURE. The oracle's kernel is built without it, so MADV_HWPOISON and
   * MADV_SOFT_OFFLINE are unknown advice there (EINVAL); set true to model a kernel with
   * memory-failure support. hwpoison entries and VM_FAULT_HWPOISON exist either way.
   */
  memory_failure: boolean;
  /** /sys/kernel/mm/transparent_hugepage/enabled for anonymous memory. */
  transparent_hugepage: 'always' | 'madvise' | 'never';
  /** /sys/kernel/mm/transparent_hugepage/shmem_enabled (read by shmem, not here). */
  shmem_enabled: 'always' | 'within_size' | 'advise' | 'never' | 'deny' | 'force';
  /** debugfs fault_around_bytes (64 KiB): how much a read fault maps around from the page cache. */
  fault_around_bytes: number;
  /**
   * X86_FEATURE_OSPKE (cpuinfo "ospke"): the CPU has protection keys and the kernel enabled them,
   * so PROT_EXEC-only memory is execute-only (pkeys.ts): a data access faults with SEGV_PKUERR.
   * Without it (false, the default) x86 maps such memory readable. The command line follows the
   * machine it runs on (bench/src/host_cpu.ts).
   */
  pku: boolean;
}

const sysctls = new WeakMap<Kernel, VmSysctl>();
/* One-entry cache in front of the WeakMap: every fault asks, and the hot paths run on one host at a time. */
let sysctl_kernel: Kernel | undefined;
let sysctl_cached: VmSysctl | undefined;

/** mmap_min_addr (security/min_addr.c): the larger of dac_mmap_min_addr and CONFIG_LSM_MMAP_MIN_ADDR. */
export function effective_mmap_min_addr(s: VmSysctl): bigint {
  return s.mmap_min_addr > s.lsm_mmap_min_addr ? s.mmap_min_addr : s.lsm_mmap_min_addr;
}

/** The address-space tunables of a simulated host. */
export function vm_sysctl(kernel: Kernel): VmSysctl {
  if (kernel === sysctl_kernel) return sysctl_cached!;
  let s = sysctls.get(kernel);
  if (s === undefined) {
    s = {
      mmap_min_addr: 4096n,
      lsm_mmap_min_addr: 65536n,
      max_map_count: 65530,
      overcommit_memory: 0,
      memory_failure: false,
      transparent_hugepage: 'madvise',
      shmem_enabled: 'never',
      fault_around_bytes: 65536,
      pku: false,
    };
    sysctls.set(kernel, s);
  }
  sysctl_kernel = kernel;
  sysctl_cached = s;
  return s;
}

/**
 * struct vm_fault: what a fault handler is told and fills in. Valid for the duration of the
 * handler call only.
 */
export class VmFault {
  /** The faulting page's number (vmf->address >> PAGE_SHIFT). */
  vpn = 0;
  /** Byte offset of the access within its page (vmf->real_address & ~PAGE_MASK). */
  offset_in_page = 0;
  /** Logical page offset based on the VMA (vmf->pgoff). */
  pgoff = 0 as PgOff;
  /** FAULT_FLAG_* */
  flags = 0;
  /** gfp mask to be used for allocations (vmf->gfp_mask). */
  gfp_mask = 0;
  /** ->fault and ->page_mkwrite: the page to map (with a reference), or undefined. */
  page: Pfn | undefined = undefined;
  /** Page allocated for a COW fault. */
  cow_page: Pfn | undefined = undefined;
  /** The PTE table and slot of the faulting address (vmf->pte), once allocated. */
  pte: PteTable | undefined = undefined;
  pte_idx = 0;
  /** vmf->orig_pte: the PTE value at the time of the fault. */
  orig_pte_flags = 0;
  orig_pte_val = 0;

  constructor(public vma: VmAreaStruct) {}

  /** Make a used VmFault a new one for `vma` (handle_mm_fault() reuses them: see MmStruct.vmf_pool). */
  reset(vma: VmAreaStruct): void {
    this.vma = vma;
    this.vpn = 0;
    this.offset_in_page = 0;
    this.pgoff = 0 as PgOff;
    this.flags = 0;
    this.gfp_mask = 0;
    this.page = undefined;
    this.cow_page = undefined;
    this.pte = undefined;
    this.pte_idx = 0;
    this.orig_pte_flags = 0;
    this.orig_pte_val = 0;
  }

  /** vmf->address: the faulting page's address (page aligned). */
  get address(): Hva {
    return Hva(BigInt(this.vpn) * BigInt(PAGE_SIZE));
  }
  /** vmf->real_address. */
  get real_address(): Hva {
    return Hva(BigInt(this.vpn) * BigInt(PAGE_SIZE) + BigInt(this.offset_in_page));
  }
}

/**
 * struct vm_operations_struct. Results are VM_FAULT_* bits (0 = success) for the fault hooks and
 * 0 | -errno for the others. A hook left out behaves as the kernel's NULL hook.
 */
export interface VmOperationsStruct {
  /** A new VMA now shares this one's backing (split, copy). */
  open?(vma: VmAreaStruct): void;
  /** The VMA is being removed from the mm. */
  close?(vma: VmAreaStruct): void;
  /** Called before a split at `addr` (a page-aligned Hva); -errno refuses it. */
  may_split?(vma: VmAreaStruct, addr: Hva): number;
  /** Called by mprotect() before it changes [start, end) to newflags; -errno refuses it. */
  mprotect?(vma: VmAreaStruct, start: Hva, end: Hva, newflags: number): number;
  /**
   * Find the page for vmf->pgoff: set vmf.page to it (holding a reference; locked and
   * VM_FAULT_LOCKED in the result, or unlocked) or return VM_FAULT_* error bits.
   * VM_FAULT_NOPAGE means the handler installed the PTE itself.
   */
  fault?(vmf: VmFault): number;
  /**
   * A fault on a hugetlb (or DAX, guest_memfd huge) VMA at `order`: the handler installs the
   * PMD/PUD entry itself through pgtable.ts and returns VM_FAULT_* bits. Hugetlb VMAs are
   * faulted only through this hook (the simulator's seam for hugetlb_fault()).
   */
  huge_fault?(vmf: VmFault, order: number): number;
  /**
   * Map the page-cache pages [start_pgoff, end_pgoff] that are ready, without sleeping
   * (filemap_map_pages): fault-around of read faults. VM_FAULT_NOPAGE if the faulting page got
   * mapped, else 0.
   */
  map_pages?(vmf: VmFault, start_pgoff: PgOff, end_pgoff: PgOff): number;
  /** A read-only PTE of a shared mapping is about to become writable (file systems' dirty tracking). */
  page_mkwrite?(vmf: VmFault): number;
  /** The same for a VM_PFNMAP/VM_MIXEDMAP mapping without a struct page. */
  pfn_mkwrite?(vmf: VmFault): number;
  /** The name /proc/pid/maps shows. */
  name?(vma: VmAreaStruct): string;
  /**
   * cocosim: ->fault hands out the driver's own kernel pages (no mapping, not on the LRU, as
   * kvm_vcpu_fault()'s kvm_run page): no rmap walk reaches their PTEs, in Linux as here, which
   * DEBUG_VM's rmap rule allows for such a VMA only.
   */
  readonly driver_pages?: boolean;
}

/**
 * struct vm_area_struct: one mapping [vm_start, vm_end) of an mm. Created by mmap, split and
 * merged by munmap, mprotect, mlock and madvise (vma.ts).
 */
export class VmAreaStruct {
  /** First page (vm_start >> PAGE_SHIFT). */
  start_vpn: number;
  /** One past the last page (vm_end >> PAGE_SHIFT). */
  end_vpn: number;
  /** VM_* flags (see the file comment for values above 2^31). */
  vm_flags: number;
  /** _PAGE_* protection bits of new PTEs (vma->vm_page_prot), from vma_set_page_prot(). */
  vm_page_prot = 0;
  /** Offset (within vm_file) in PAGE_SIZE units; for anonymous memory, vm_start's page number. */
  vm_pgoff: number;
  /** File we map to (holds a reference), or null. */
  vm_file: File | null = null;
  /** Function pointers to deal with this struct; null for anonymous memory (vma_is_anonymous). */
  vm_ops: VmOperationsStruct | null = null;
  vm_private_data: unknown = undefined;
  /** Serialized by page_table_lock: the anon_vma of the private pages of this VMA. */
  anon_vma: AnonVma | null = null;
  /** A name set by prctl(PR_SET_VMA_ANON_NAME), or null. */
  anon_name: string | null = null;

  constructor(
    /** The address space we belong to. */
    readonly vm_mm: MmStruct,
    start_vpn: number,
    end_vpn: number,
    vm_flags: number,
    vm_pgoff: number,
  ) {
    BUG_ON(!(start_vpn < end_vpn), `VMA [${start_vpn}, ${end_vpn}) is empty`);
    this.start_vpn = start_vpn;
    this.end_vpn = end_vpn;
    this.vm_flags = vm_flags;
    this.vm_pgoff = vm_pgoff;
  }

  /** vma->vm_start. */
  get vm_start(): Hva {
    return Hva(BigInt(this.start_vpn) * BigInt(PAGE_SIZE));
  }
  /** vma->vm_end. */
  get vm_end(): Hva {
    return Hva(BigInt(this.end_vpn) * BigInt(PAGE_SIZE));
  }
}

/** vma_pages(). */
export function vma_pages(vma: VmAreaStruct): number {
  return vma.end_vpn - vma.start_vpn;
}

/** vma_is_anonymous(): no vm_ops. */
export function vma_is_anonymous(vma: VmAreaStruct): boolean {
  return vma.vm_ops === null;
}

/** vma_set_anonymous(). */
export function vma_set_anonymous(vma: VmAreaStruct): void {
  vma.vm_ops = null;
}

/** is_vm_hugetlb_page(). */
export function is_vm_hugetlb_page(vma: VmAreaStruct): boolean {
  return (vma.vm_flags & VM_HUGETLB) !== 0;
}

/** is_cow_mapping(): private and may be written. */
export function is_cow_mapping(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

/** vma_is_accessible(). */
export function vma_is_accessible(vma: VmAreaStruct): boolean {
  return (vma.vm_flags & VM_ACCESS_FLAGS) !== 0;
}

/** vma_is_shared_maywrite(). */
export function vma_is_shared_maywrite(vma: VmAreaStruct): boolean {
  return (vma.vm_flags & (VM_SHARED | VM_MAYWRITE)) === (VM_SHARED | VM_MAYWRITE);
}

/** linear_page_index(): the page offset of the page `vpn` in the VMA's file (or anon_vma). */
export function linear_page_index(vma: VmAreaStruct, vpn: number): PgOff {
  return (vpn - vma.start_vpn + vma.vm_pgoff) as PgOff;
}

/**
 * A subscriber to an mm's invalidations (struct mmu_notifier, include/linux/mmu_notifier.h):
 * KVM, VFIO and IOMMU SVA mirror user page tables and must drop their copies when PTEs go away
 * or lose permissions. Pages are [start_vpn, end_vpn).
 */
export interface MmuNotifier {
  invalidate_range_start?(mm: MmStruct, start_vpn: number, end_vpn: number): void;
  invalidate_range_end?(mm: MmStruct, start_vpn: number, end_vpn: number): void;
  /** The mm is going away (exit_mmap). */
  release?(mm: MmStruct): void;
}

/** struct mm_struct: a process's address space. */
export class MmStruct {
  /** VMAs keyed by page number (mm->mm_mt). */
  readonly mm_mt = new MapleTree<VmAreaStruct>();
  /** The page tables (mm->pgd). */
  readonly pgd = new Pgd();
  /** Base of the top-down mmap area. */
  mmap_base: Hva;
  /** Size of task vm space. */
  task_size: Hva;
  /** MMF_* bits. */
  flags = MMF_TOPDOWN;
  /** Number of VMAs. */
  map_count = 0;
  /** Total pages mapped. */
  total_vm = 0;
  /** Pages that have PG_mlocked set (mm->locked_vm counts VM_LOCKED pages). */
  locked_vm = 0;
  /** Refcount permanently increased (FOLL_LONGTERM pins). */
  pinned_vm = 0;
  /** VM_WRITE & ~VM_SHARED & ~VM_STACK */
  data_vm = 0;
  /** VM_EXEC & ~VM_WRITE & ~VM_STACK */
  exec_vm = 0;
  /** VM_STACK */
  stack_vm = 0;
  /** Flags new VMAs get (VM_LOCKED after mlockall(MCL_FUTURE)). */
  def_flags = 0;
  /** mm->context.pkey_allocation_map (x86): the protection keys in use, pkey 0 always (pkeys.ts). */
  pkey_allocation_map = 1;
  /** mm->context.execute_only_pkey: the key of PROT_EXEC-only mappings once one was made, else -1. */
  execute_only_pkey = -1;
  /** rss_stat: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES. */
  readonly rss_stat = new Float64Array(NR_MM_COUNTERS);
  /** mmu_notifier subscriptions. */
  readonly notifier_subscriptions: MmuNotifier[] = [];
  /**
   * Simulator only: the struct vm_fault of each fault in progress on this mm, by nesting depth
   * (a fault handler may fault again), kept for the next faults: the kernel's lives on the stack,
   * and a GiB of faults should not make a million objects.
   */
  readonly vmf_pool: VmFault[] = [];
  vmf_depth = 0;

  constructor(readonly kernel: Kernel) {
    this.task_size = TASK_SIZE as Hva;
    this.mmap_base = mmap_base(this.task_size);
    /* empty_zero_page is zeroed at boot: whoever reads it through phys sees zeros */
    const zero = kernel.store.zero_pfn;
    if (zero >= 0) kernel.phys.clear(zero as Pfn);
  }

  /** get_mm_counter(). */
  get_mm_counter(member: number): number {
    return this.rss_stat[member];
  }
  /** add_mm_counter(). */
  add_mm_counter(member: number, value: number): void {
    this.rss_stat[member] += value;
  }
  /** get_mm_rss(): resident pages. */
  get_mm_rss(): number {
    return this.rss_stat[MM_FILEPAGES] + this.rss_stat[MM_ANONPAGES] + this.rss_stat[MM_SHMEMPAGES];
  }
}

/**
 * mmap_base() (arch/x86/mm/mmap.c) without address-space randomization: the stack rlimit (8 MiB)
 * plus the stack guard gap is below the 128 MiB minimum gap, so the base is TASK_SIZE - 128 MiB,
 * 0x7ffff7fff000, what a process sees under `setarch -R` (randomize_va_space=0). The simulator is
 * deterministic, so it never randomizes.
 */
export function mmap_base(task_size: bigint): Hva {
  return Hva(task_size - MMAP_GAP_MIN);
}

const task_mms = new WeakMap<Task, MmStruct>();

/** current->mm of a task: created on first use (the task is an exec'ed process with no mappings). */
export function task_mm(task: Task): MmStruct {
  let mm = task_mms.get(task);
  if (mm === undefined) {
    mm = new MmStruct(task.kernel);
    task_mms.set(task, mm);
  }
  return mm;
}

/** copy_mm(): `task` (a new child) gets `mm` as its current->mm. */
export function task_set_mm(task: Task, mm: MmStruct): void {
  task_mms.set(task, mm);
}

/** The task's mm if it has one, without creating it (debug walks: state digest, DEBUG_VM checks). */
export function task_mm_if_any(task: Task): MmStruct | undefined {
  return task_mms.get(task);
}
