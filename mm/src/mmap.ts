/**
 * mmap(2) and munmap(2) (arch/x86/kernel/sys_x86_64.c, mm/mmap.c, mm/vma.c, mm/util.c;
 * Linux 6.18): validation in the kernel's order, address selection, the new VMA (merged with
 * its neighbours where compatible), the file's ->mmap, and unmapping.
 *
 * Validation order (each verified on Linux 6.18, see test/mm/mmap_test.test.ts):
 *   1. sys_mmap: offset not page aligned -> EINVAL (before the fd is looked at);
 *   2. ksys_mmap_pgoff: no MAP_ANONYMOUS and a bad fd -> EBADF; MAP_HUGETLB on a file that is not
 *      hugetlbfs -> EINVAL; MAP_HUGETLB anonymous with an unknown size -> EINVAL;
 *   3. do_mmap: len 0 -> EINVAL; PAGE_ALIGN(len) wraps to 0 -> ENOMEM; pgoff + pages wraps ->
 *      EOVERFLOW; too many mappings -> ENOMEM;
 *   4. __get_unmapped_area: len > TASK_SIZE -> ENOMEM; no room -> ENOMEM; addr > TASK_SIZE - len
 *      -> ENOMEM; addr not page aligned (only possible with MAP_FIXED) -> EINVAL;
 *   5. MAP_FIXED_NOREPLACE over a mapping -> EEXIST;
 *   6. file: file_mmap_ok -> EOVERFLOW; MAP_SHARED drops unknown flags, MAP_SHARED_VALIDATE
 *      refuses them -> EOPNOTSUPP; shared PROT_WRITE without FMODE_WRITE -> EACCES; no
 *      FMODE_READ -> EACCES; PROT_EXEC on a noexec file system (guest_memfd) -> EPERM; no
 *      ->mmap -> ENODEV; MAP_GROWSDOWN -> EINVAL; other map types -> EINVAL; write seals ->
 *      EPERM. Anonymous: MAP_SHARED|MAP_GROWSDOWN -> EINVAL, map types other than SHARED,
 *      PRIVATE, DROPPABLE -> EINVAL;
 *   7. mmap_region: a shared writable mapping of a file whose writes are denied -> EPERM;
 *      overcommit -> ENOMEM; then the old mappings under MAP_FIXED are zapped, and an error of
 *      ->mmap after that leaves a hole, as the kernel does.
 *
 * Address selection is x86-64's top-down allocator below mmap_base (0x7ffff7fff000, no
 * randomization), with the bottom-up fallback from TASK_UNMAPPED_BASE; hints are rounded down
 * to a page and used if the range is free; anonymous private mappings of a multiple of 2 MiB
 * without hint are THP-aligned (__thp_get_unmapped_area), as Linux places them.
 *
 * Processes run as root: security_mmap_addr() lets them map below mmap_min_addr with MAP_FIXED
 * (CAP_SYS_RAWIO), and MAP_LOCKED is always allowed (CAP_IPC_LOCK).
 */
import { Errno, HPAGE_PMD_NR, Hva, IS_ERR, PAGE_SIZE } from '@cocosim/core';
import { FMODE_READ, FMODE_WRITE, IS_APPEND, S_IFMT, S_IFREG, path_noexec, type File } from './fs.js';
import { mm_populate } from './gup.js';
import { hugetlb_pool, hstate_sizelog, huge_page_size } from './hugetlb.js';
import { hugetlb_file_setup, hstate_file, is_file_hugepages, HUGETLB_ANONHUGE_INODE } from './hugetlbfs.js';
import { memfd_check_seals_mmap } from './memfd.js';
import { unmap_vmas } from './memory.js';
import {
  LEGACY_MAP_MASK,
  MAP_32BIT,
  MAP_ABOVE4G,
  MAP_ANONYMOUS,
  MAP_DROPPABLE,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_HUGE_MASK,
  MAP_HUGE_SHIFT,
  MAP_LOCKED,
  MAP_NONBLOCK,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  PROT_EXEC,
  PROT_WRITE,
  calc_vm_flag_bits,
  calc_vm_prot_bits,
  low32,
  ulong_arg,
} from './mman.js';
import {
  DEFAULT_MAP_WINDOW,
  MMF_TOPDOWN,
  TASK_SIZE,
  TASK_UNMAPPED_BASE,
  VM_ACCOUNT,
  VM_DONTDUMP,
  VM_DROPPABLE,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGETLB,
  VM_LOCKED,
  VM_LOCKED_MASK,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NORESERVE,
  VM_SHARED,
  VM_SOFTDIRTY,
  VM_SPECIAL,
  VM_WIPEONFORK,
  VM_WRITE,
  VmAreaStruct,
  vm_flags_andnot,
  vm_flags_or,
  effective_mmap_min_addr,
  vm_sysctl,
  type MmStruct,
} from './mm_types.js';
import type { Task } from './process.js';
import { execute_only_pkey } from './pkeys.js';
import { shmem_file_setup } from './shmem.js';
import { OVERCOMMIT_NEVER, __vm_enough_memory, vm_unacct_memory } from './util.js';
import {
  find_vma,
  find_vma_intersection,
  split_vma,
  vma_before,
  vma_detach_and_remove,
  vma_link,
  vma_merge_new_range,
  vma_set_page_prot,
  vm_stat_account,
  vmas_in_range,
} from './vma.js';
import { call_mm_hook } from './mm_hooks.js';

const PAGE_SIZE_N = BigInt(PAGE_SIZE);
const PAGE_MASK_N = ~(PAGE_SIZE_N - 1n);
const U64 = (x: bigint): bigint => BigInt.asUintN(64, x);
/** stack_guard_gap: 256 pages below a VM_GROWSDOWN VMA stay free (mm/mmap.c). */
export const STACK_GUARD_GAP_PAGES = 256;

/** PAGE_ALIGN() on u64: may wrap to 0. */
function PAGE_ALIGN(x: bigint): bigint {
  return U64(x + PAGE_SIZE_N - 1n) & PAGE_MASK_N;
}

/** A mmap result: the address, or a negative errno (IS_ERR_VALUE). */
export type MmapResult = Hva | number;

/* Address selection */

/** Information for vm_unmapped_area() in pages (struct vm_unmapped_area_info). */
interface UnmappedAreaInfo {
  topdown: boolean;
  /** Pages. */
  length: number;
  /** First page of the search window. */
  low_limit: number;
  /** One past its last page. */
  high_limit: number;
  /** Alignment mask in pages (2^k - 1) and offset, for huge page files. */
  align_mask: number;
  align_offset: number;
}

/** vm_start_gap(): a VM_GROWSDOWN VMA keeps stack_guard_gap free below it. */
function vm_start_gap(vma: VmAreaStruct): number {
  return vma.vm_flags & VM_GROWSDOWN ? Math.max(0, vma.start_vpn - STACK_GUARD_GAP_PAGES) : vma.start_vpn;
}

/** The low end of searches: mmap_min_addr in pages, rounded up. */
function mmap_min_page(mm: MmStruct): number {
  return Number((effective_mmap_min_addr(vm_sysctl(mm.kernel)) + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
}

/** unmapped_area_topdown() / unmapped_area(): -ENOMEM, or the first page of the area. */
function vm_unmapped_area(mm: MmStruct, info: UnmappedAreaInfo): number {
  const length = info.length + info.align_mask;
  const low = Math.max(info.low_limit, mmap_min_page(mm));
  let high = info.high_limit;
  let lowcur = low;
  for (;;) {
    if (high - lowcur < length || high <= lowcur) return -Errno.ENOMEM;
    let gap: number;
    if (info.topdown) {
      const g = mm.mm_mt.find_gap_rev(lowcur, high - 1, length);
      if (g === undefined) return -Errno.ENOMEM;
      gap = g + length - info.length;
      gap -= (((gap - info.align_offset) % (info.align_mask + 1)) + (info.align_mask + 1)) % (info.align_mask + 1);
    } else {
      const g = mm.mm_mt.find_gap(lowcur, high - 1, length);
      if (g === undefined) return -Errno.ENOMEM;
      gap = g + ((((info.align_offset - g) % (info.align_mask + 1)) + (info.align_mask + 1)) % (info.align_mask + 1));
    }
    /* A VM_GROWSDOWN VMA above wants its guard gap. */
    const next = mm.mm_mt.mt_find(gap + info.length, high - 1)?.entry;
    if (next !== undefined && next.vm_flags & VM_GROWSDOWN && vm_start_gap(next) < gap + info.length) {
      if (info.topdown) high = vm_start_gap(next);
      else lowcur = next.end_vpn;
      continue;
    }
    return gap;
  }
}

/** mmap_address_hint_valid() (arch/x86/mm/mmap.c): the hint fits and stays on one side of 2^47. */
function mmap_address_hint_valid(addr: bigint, len: bigint): boolean {
  if (TASK_SIZE - len < addr) return false;
  return (addr > DEFAULT_MAP_WINDOW) === (addr + len > DEFAULT_MAP_WINDOW);
}

/** -MAX_ERRNO as an unsigned long: IS_ERR_VALUE() holds from here up. */
const U64_ERR_MIN = 2n ** 64n - 4095n;

/** SZ_4G in pages: MAP_ABOVE4G's floor. */
const SZ_4G_PAGES = 2 ** 32 / PAGE_SIZE;

/**
 * find_start_end() (arch/x86/kernel/sys_x86_64.c): the bottom-up search window in pages.
 * MAP_32BIT asks for the first 2 GiB, [1 GiB, 2 GiB) ("1GB of playground"); the kernel moves its
 * start up by a random amount under ASLR, the simulator, which has no ASLR, does not.
 */
function find_start_end(mm: MmStruct, flags: number): { begin: number; end: number } {
  if (flags & MAP_32BIT) return { begin: 0x40000000 / PAGE_SIZE, end: 0x80000000 / PAGE_SIZE };
  return { begin: Number(TASK_UNMAPPED_BASE / PAGE_SIZE_N), end: Number(mm.task_size / PAGE_SIZE_N) };
}

/**
 * arch_get_unmapped_area() (x86-64): bottom-up, the hint first if it fits below the window's end.
 * Returns the address or -ENOMEM.
 */
function arch_get_unmapped_area(mm: MmStruct, addr: bigint, len: bigint, flags: number, align_mask: number): MmapResult {
  if (flags & MAP_FIXED) return addr as Hva;
  const { begin, end } = find_start_end(mm, flags);
  const pages = Number(len / PAGE_SIZE_N);
  if (pages > end) return -Errno.ENOMEM;
  if (addr !== 0n) {
    addr = PAGE_ALIGN(addr);
    const vpn = Number(addr / PAGE_SIZE_N);
    const vma = find_vma(mm, vpn);
    if (BigInt(end - pages) * PAGE_SIZE_N >= addr && (vma === undefined || vpn + pages <= vm_start_gap(vma))) return addr as Hva;
  }
  const gap = vm_unmapped_area(mm, { topdown: false, length: pages, low_limit: begin, high_limit: end, align_mask, align_offset: 0 });
  return gap >= 0 ? Hva(BigInt(gap) * PAGE_SIZE_N) : gap;
}

/**
 * arch_get_unmapped_area_topdown() (x86-64): a free range of `len` bytes below mmap_base (above
 * 4 GiB with MAP_ABOVE4G), else bottom-up; MAP_32BIT goes bottom-up at once. Returns the address
 * or -ENOMEM.
 */
function arch_get_unmapped_area_topdown(mm: MmStruct, addr0: bigint, len: bigint, flags: number, align_mask: number): MmapResult {
  /* requested length too big for entire address space */
  if (len > TASK_SIZE) return -Errno.ENOMEM;
  if (flags & MAP_FIXED) return addr0 as Hva;
  if (!(mm.flags & MMF_TOPDOWN)) return arch_get_unmapped_area(mm, addr0, len, flags, align_mask);
  /* for MAP_32BIT mappings we force the legacy mmap base */
  if (flags & MAP_32BIT) return arch_get_unmapped_area(mm, addr0, len, flags, align_mask);
  const pages = Number(len / PAGE_SIZE_N);
  if (addr0 !== 0n) {
    const addr = addr0 & PAGE_MASK_N;
    if (mmap_address_hint_valid(addr, len)) {
      const vpn = Number(addr / PAGE_SIZE_N);
      const vma = find_vma(mm, vpn);
      if (vma === undefined || vpn + pages <= vm_start_gap(vma)) return addr as Hva;
    }
  }
  const gap = vm_unmapped_area(mm, {
    topdown: true,
    length: pages,
    low_limit: flags & MAP_ABOVE4G ? SZ_4G_PAGES : 1,
    high_limit: Number(mm.mmap_base / PAGE_SIZE_N),
    align_mask,
    align_offset: 0,
  });
  if (gap >= 0) return Hva(BigInt(gap) * PAGE_SIZE_N);
  /* A failed mmap() very likely causes application failure, so fall back to bottom-up. */
  return arch_get_unmapped_area(mm, addr0, len, flags, align_mask);
}

/**
 * __thp_get_unmapped_area(): for an anonymous mapping of whole 2 MiB units, search len + 2 MiB
 * and place the mapping on a 2 MiB boundary inside it. 0 when that fails (the caller retries
 * unpadded).
 */
function __thp_get_unmapped_area(mm: MmStruct, len: bigint, flags: number): bigint {
  const size = BigInt(HPAGE_PMD_NR) * PAGE_SIZE_N;
  if (len < size) return 0n;
  const len_pad = len + size;
  const ret = arch_get_unmapped_area_topdown(mm, 0n, len_pad, flags, 0);
  if (typeof ret === 'number') return 0n;
  const off_sub = U64(0n - ret) & (size - 1n);
  if (mm.flags & MMF_TOPDOWN && off_sub === 0n) return ret + size;
  return ret + off_sub;
}

/**
 * __get_unmapped_area(): the address for a new mapping of `len` (page aligned) bytes, or
 * -errno. MAP_FIXED takes `addr` as is (checked here for range and alignment).
 */
export function __get_unmapped_area(mm: MmStruct, file: File | null, addr: bigint, len: bigint, flags: number): MmapResult {
  /* Careful about overflows.. */
  if (len > TASK_SIZE) return -Errno.ENOMEM;
  let align_mask = 0;
  if (file !== null && is_file_hugepages(file)) {
    /* hugetlb_get_unmapped_area() (fs/hugetlbfs/inode.c): huge-page-aligned or -EINVAL, the hint rounded up */
    const hsize = BigInt(huge_page_size(hstate_file(file)));
    if (len % hsize !== 0n) return -Errno.EINVAL;
    if (flags & MAP_FIXED && addr % hsize !== 0n) return -Errno.EINVAL;
    if (addr !== 0n) addr = U64(addr + hsize - 1n) & ~(hsize - 1n);
    align_mask = Number(hsize) / PAGE_SIZE - 1;
  }
  let ret: MmapResult;
  if (file === null && !(flags & MAP_SHARED) && addr === 0n && len % (BigInt(HPAGE_PMD_NR) * PAGE_SIZE_N) === 0n && !(flags & MAP_FIXED)) {
    const a = __thp_get_unmapped_area(mm, len, flags);
    ret = a !== 0n ? (a as Hva) : arch_get_unmapped_area_topdown(mm, addr, len, flags, 0);
  } else {
    ret = arch_get_unmapped_area_topdown(mm, addr, len, flags, align_mask);
  }
  if (typeof ret === 'number') return ret;
  /* IS_ERR_VALUE(): a MAP_FIXED address in the last MAX_ERRNO bytes reads as an error code */
  if (ret >= U64_ERR_MIN) return -Number(2n ** 64n - ret);
  if (ret > TASK_SIZE - len) return -Errno.ENOMEM;
  if (ret % PAGE_SIZE_N !== 0n) return -Errno.EINVAL;
  return ret;
}

/** round_hint_to_min(): a hint below mmap_min_addr becomes mmap_min_addr. */
function round_hint_to_min(mm: MmStruct, hint: bigint): bigint {
  hint &= PAGE_MASK_N;
  const min = effective_mmap_min_addr(vm_sysctl(mm.kernel));
  if (hint !== 0n && hint < min) return PAGE_ALIGN(min);
  return hint;
}

/* The mapping */

/** MAX_LFS_FILESIZE. */
const MAX_LFS_FILESIZE = (1n << 63n) - 1n;

/** file_mmap_ok(): pgoff + len within what the file type allows. */
function file_mmap_ok(file: File, pgoff: bigint, len: bigint): boolean {
  const mode = file.f_inode.i_mode & S_IFMT;
  let maxsize = mode === S_IFREG ? MAX_LFS_FILESIZE : U64(-1n);
  if (len > maxsize) return false;
  maxsize -= len;
  return pgoff <= maxsize >> 12n;
}

/** accountable_mapping(): private writable memory without MAP_NORESERVE is committed. */
function accountable_mapping(file: File | null, vm_flags: number): boolean {
  if (file !== null && is_file_hugepages(file)) return false;
  return (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE;
}

/**
 * shmem_zero_setup() (mm/shmem.c): a MAP_SHARED|MAP_ANONYMOUS mapping is backed by an unlinked
 * shmem file of its size ("dev/zero"), which the VMA holds.
 */
export function shmem_zero_setup(vma: VmAreaStruct): number {
  const mm = vma.vm_mm;
  const size = BigInt(vma.end_vpn - vma.start_vpn) * PAGE_SIZE_N;
  const file = shmem_file_setup(mm.kernel, 'dev/zero', size, vma.vm_flags & VM_NORESERVE);
  if (IS_ERR(file)) return file.errno;
  vma.vm_file = file;
  if (file.f_op.mmap === undefined) return 0;
  return file.f_op.mmap(file, vma);
}

/**
 * mmap_region() / __mmap_region(): map pages [addr, addr + pglen) with `vm_flags`, replacing
 * whatever was mapped there. Returns the address or -errno.
 */
export function mmap_region(mm: MmStruct, file: File | null, addr: number, pglen: number, vm_flags: number, pgoff: number): MmapResult {
  const end = addr + pglen;
  /* Map writable and ensure this isn't a sealed memfd. */
  const writable_file_mapping = file !== null && (vm_flags & (VM_SHARED | VM_MAYWRITE)) === (VM_SHARED | VM_MAYWRITE);
  if (writable_file_mapping) {
    const err = file!.f_mapping.mapping_map_writable();
    if (err) return err;
  }
  const ret = __mmap_region(mm, file, addr, end, vm_flags, pgoff);
  /* Clear our write mapping regardless of error. */
  if (writable_file_mapping) file!.f_mapping.mapping_unmap_writable();
  return ret;
}

function __mmap_region(mm: MmStruct, file: File | null, addr: number, end: number, vm_flags: number, pgoff: number): MmapResult {
  const kernel = mm.kernel;
  const pglen = end - addr;
  /* vms_gather_munmap_vmas(): split the mappings the new one replaces at its boundaries */
  const old = gather_munmap_vmas(mm, addr, end, true);
  if (typeof old === 'number') return old;
  let nr_accounted = 0;
  for (const v of old) if (v.vm_flags & VM_ACCOUNT) nr_accounted += v.end_vpn - v.start_vpn;
  /* Private writable mapping: check memory availability. */
  let charged = 0;
  if (accountable_mapping(file, vm_flags)) {
    charged = pglen - nr_accounted;
    if (charged > 0) {
      const err = __vm_enough_memory(kernel, mm, charged);
      if (err) return err;
    }
    nr_accounted = 0;
    vm_flags = vm_flags_or(vm_flags, VM_ACCOUNT);
  }
  /* vms_clean_up_area(): the old pages go now; from here an error leaves a hole. */
  if (old.length !== 0) {
    unmap_vmas(mm, old, addr, end);
    for (const v of old) v.vm_ops?.close?.(v);
  }
  const detach_old = (): void => {
    for (const v of old) {
      const np = v.end_vpn - v.start_vpn;
      if (v.vm_flags & VM_LOCKED) mm.locked_vm -= np;
      vm_stat_account(mm, v.vm_flags, -np);
      /* ->close already ran in vms_clean_up_area() */
      const ops = v.vm_ops;
      v.vm_ops = ops === null || ops.close === undefined ? ops : { ...ops, close: undefined };
      vma_detach_and_remove(mm, v);
    }
    if (nr_accounted) vm_unacct_memory(kernel, nr_accounted);
  };
  detach_old();
  const prev = vma_before(mm, addr);
  const next = find_vma(mm, end);
  /* Shared anonymous memory gets its own shmem file below: it never merges. */
  let vma: VmAreaStruct | undefined;
  if (file !== null || !(vm_flags & VM_SHARED)) {
    vma = vma_merge_new_range(mm, prev, next?.start_vpn === end ? next : undefined, addr, end, {
      flags: vm_flags,
      file,
      pgoff,
      anon_vma: null,
      anon_name: null,
    });
  }
  if (vma === undefined) {
    vma = new VmAreaStruct(mm, addr, end, vm_flags, pgoff);
    let error = 0;
    if (file !== null) {
      vma.vm_file = file.get_file();
      if (file.f_op.mmap !== undefined) error = file.f_op.mmap(vma.vm_file, vma);
      if (error) {
        vma.vm_file = null;
        file.fput();
      }
    } else if (vm_flags & VM_SHARED) {
      error = shmem_zero_setup(vma);
      if (error && vma.vm_file !== null) {
        vma.vm_file.fput();
        vma.vm_file = null;
      }
    }
    if (error) {
      if (charged) vm_unacct_memory(kernel, charged);
      return error;
    }
    vma_link(mm, vma);
  }
  /* __mmap_complete() */
  const flags = vma.vm_flags;
  vm_stat_account(mm, flags, pglen);
  if (flags & VM_LOCKED) {
    if (flags & VM_SPECIAL || flags & VM_HUGETLB) vma.vm_flags = vm_flags_andnot(flags, VM_LOCKED_MASK);
    else mm.locked_vm += pglen;
  }
  vma.vm_flags = vm_flags_or(vma.vm_flags, VM_SOFTDIRTY);
  vma_set_page_prot(vma);
  return Hva(BigInt(addr) * PAGE_SIZE_N);
}

/**
 * vms_gather_munmap_vmas(): the VMAs overlapping pages [start, end), split so that they lie
 * exactly inside it. -ENOMEM when a split of the first VMA in two would pass max_map_count
 * (munmap), or a split's error.
 */
function gather_munmap_vmas(mm: MmStruct, start: number, end: number, check_count: boolean): VmAreaStruct[] | number {
  const first = find_vma_intersection(mm, start, end);
  if (first === undefined) return [];
  if (start > first.start_vpn) {
    if (check_count && end < first.end_vpn && mm.map_count >= vm_sysctl(mm.kernel).max_map_count) return -Errno.ENOMEM;
    const r = split_vma(first, start, true, false);
    if (typeof r === 'number') return r;
  }
  const out: VmAreaStruct[] = [];
  for (const v of vmas_in_range(mm, start, end)) {
    if (v.end_vpn > end) {
      const r = split_vma(v, end, false, false);
      if (typeof r === 'number') return r;
    }
    out.push(v);
  }
  return out;
}

/**
 * do_mmap(): validate and create a mapping. Returns the address (and sets populate.len when the
 * caller must populate it) or -errno.
 */
export function do_mmap(
  mm: MmStruct,
  file: File | null,
  addr: bigint,
  len: bigint,
  prot: number,
  flags64: bigint,
  pgoff: bigint,
  populate: { len: bigint },
): MmapResult {
  let flags = low32(flags64);
  populate.len = 0n;
  if (len === 0n) return -Errno.EINVAL;
  /* force arch specific MAP_FIXED handling in get_unmapped_area */
  if (flags & MAP_FIXED_NOREPLACE) {
    flags |= MAP_FIXED;
    flags64 |= BigInt(MAP_FIXED);
  }
  if (!(flags & MAP_FIXED)) addr = round_hint_to_min(mm, addr);
  /* Careful about overflows.. */
  len = PAGE_ALIGN(len);
  if (len === 0n) return -Errno.ENOMEM;
  /* offset overflow? */
  if (U64(pgoff + (len >> 12n)) < pgoff) return -Errno.EOVERFLOW;
  /* Too many mappings? */
  if (mm.map_count > vm_sysctl(mm.kernel).max_map_count) return -Errno.ENOMEM;
  /* PROT_EXEC alone: the execute-only protection key, where the CPU has them (pkeys.ts) */
  let pkey = 0;
  if (prot === PROT_EXEC) {
    pkey = execute_only_pkey(mm);
    if (pkey < 0) pkey = 0;
  }
  let vm_flags = vm_flags_or(calc_vm_prot_bits(prot, pkey), calc_vm_flag_bits(file, flags) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC);
  vm_flags = vm_flags_or(vm_flags, mm.def_flags);
  const a = __get_unmapped_area(mm, file, addr, len, flags);
  if (typeof a === 'number') return a;
  addr = a;
  const addr_vpn = Number(addr / PAGE_SIZE_N);
  const pglen = Number(len / PAGE_SIZE_N);
  if (flags & MAP_FIXED_NOREPLACE && find_vma_intersection(mm, addr_vpn, addr_vpn + pglen) !== undefined) return -Errno.EEXIST;
  let pgoff_n: number;
  if (file !== null) {
    if (!file_mmap_ok(file, pgoff, len)) return -Errno.EOVERFLOW;
    const type = flags & MAP_TYPE;
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
      /*
       * Force use of MAP_SHARED_VALIDATE with non-legacy flags. We silently ignore
       * unsupported flags with MAP_SHARED to preserve backward compatibility.
       */
      if (type === MAP_SHARED) {
        flags64 &= BigInt(LEGACY_MAP_MASK);
        flags = low32(flags64);
      }
      if (flags64 & ~BigInt(LEGACY_MAP_MASK)) return -Errno.EOPNOTSUPP;
      if (prot & PROT_WRITE && !(file.f_mode & FMODE_WRITE)) return -Errno.EACCES;
      /* Make sure we don't allow writing to an append-only file.. */
      if (IS_APPEND(file.f_inode) && file.f_mode & FMODE_WRITE) return -Errno.EACCES;
      vm_flags = vm_flags_or(vm_flags, VM_SHARED | VM_MAYSHARE);
      if (!(file.f_mode & FMODE_WRITE)) vm_flags = vm_flags_andnot(vm_flags, VM_MAYWRITE | VM_SHARED);
    }
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE || type === MAP_PRIVATE) {
      if (!(file.f_mode & FMODE_READ)) return -Errno.EACCES;
      if (path_noexec(file)) {
        if (vm_flags & VM_EXEC) return -Errno.EPERM;
        vm_flags = vm_flags_andnot(vm_flags, VM_MAYEXEC);
      }
      if (file.f_op.mmap === undefined) return -Errno.ENODEV;
      if (vm_flags & VM_GROWSDOWN) return -Errno.EINVAL;
    } else {
      return -Errno.EINVAL;
    }
    /* Check to see if we are violating any seals and update VMA flags if necessary. */
    const holder = { vm_flags };
    const err = memfd_check_seals_mmap(file, holder);
    if (err) return err;
    vm_flags = holder.vm_flags;
    pgoff_n = Number(pgoff);
  } else {
    switch (flags & MAP_TYPE) {
      case MAP_SHARED:
        if (vm_flags & VM_GROWSDOWN) return -Errno.EINVAL;
        /* Ignore pgoff. */
        pgoff_n = 0;
        vm_flags = vm_flags_or(vm_flags, VM_SHARED | VM_MAYSHARE);
        break;
      case MAP_DROPPABLE:
        /*
         * A locked or stack area makes no sense to be droppable, and don't attempt to combine
         * with hugetlb for now.
         */
        if (flags & (MAP_LOCKED | MAP_HUGETLB)) return -Errno.EINVAL;
        if (vm_flags & VM_GROWSDOWN) return -Errno.EINVAL;
        vm_flags = vm_flags_or(vm_flags, VM_DROPPABLE + VM_NORESERVE + VM_WIPEONFORK + VM_DONTDUMP);
        pgoff_n = addr_vpn;
        break;
      case MAP_PRIVATE:
        /* Set pgoff according to addr for anon_vma. */
        pgoff_n = addr_vpn;
        break;
      default:
        return -Errno.EINVAL;
    }
  }
  /* Set 'VM_NORESERVE' if we should not account for the memory use of this mapping. */
  if (flags & MAP_NORESERVE) {
    /* We honor MAP_NORESERVE if allowed to overcommit */
    if (vm_sysctl(mm.kernel).overcommit_memory !== OVERCOMMIT_NEVER) vm_flags = vm_flags_or(vm_flags, VM_NORESERVE);
    /* hugetlb applies strict overcommit unless MAP_NORESERVE */
    if (file !== null && is_file_hugepages(file)) vm_flags = vm_flags_or(vm_flags, VM_NORESERVE);
  }
  const ret = mmap_region(mm, file, addr_vpn, pglen, vm_flags, pgoff_n);
  if (typeof ret !== 'number' && (vm_flags & VM_LOCKED || (flags & (MAP_POPULATE | MAP_NONBLOCK)) === MAP_POPULATE)) {
    populate.len = len;
  }
  return ret;
}

/**
 * vm_mmap_pgoff(): do_mmap() and, for MAP_POPULATE and VM_LOCKED mappings, populate
 * (mm_populate() ignores its errors: the mapping stands).
 */
export function vm_mmap_pgoff(mm: MmStruct, file: File | null, addr: bigint, len: bigint, prot: number, flags: bigint, pgoff: bigint): MmapResult {
  /* security_mmap_file()'s place */
  const hook = call_mm_hook(mm.kernel, 'mmap_file', file, prot, low32(flags));
  if (hook) return hook;
  const populate = { len: 0n };
  const ret = do_mmap(mm, file, addr, len, prot, flags, pgoff, populate);
  if (typeof ret !== 'number' && populate.len !== 0n) {
    mm_populate(mm, Number(ret / PAGE_SIZE_N), Number(populate.len / PAGE_SIZE_N));
  }
  return ret;
}

/**
 * ksys_mmap_pgoff(): the file (EBADF without MAP_ANONYMOUS), hugetlb sizes, then vm_mmap_pgoff().
 */
export function ksys_mmap_pgoff(task: Task, mm: MmStruct, addr: bigint, len: bigint, prot: number, flags: bigint, fd: bigint, pgoff: bigint): MmapResult {
  const f = low32(flags);
  let file: File | null = null;
  if (!(f & MAP_ANONYMOUS)) {
    /* fget(fd): the fd is an unsigned int */
    const found = task.files.lookup(Number(fd & 0xffff_ffffn));
    if (found === undefined) return -Errno.EBADF;
    file = found.get_file();
    if (is_file_hugepages(file)) {
      const hsize = BigInt(huge_page_size(hstate_file(file)));
      len = U64(len + hsize - 1n) & ~(hsize - 1n);
    } else if (f & MAP_HUGETLB) {
      file.fput();
      return -Errno.EINVAL;
    }
  } else if (f & MAP_HUGETLB) {
    const size_log = Math.floor(f / 2 ** MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
    const hs = hstate_sizelog(hugetlb_pool(mm.kernel), size_log);
    if (hs === undefined) return -Errno.EINVAL;
    const hsize = BigInt(huge_page_size(hs));
    len = U64(len + hsize - 1n) & ~(hsize - 1n);
    const hf = hugetlb_file_setup(mm.kernel, 'anon_hugepage', len, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, size_log);
    if (IS_ERR(hf)) return hf.errno;
    file = hf;
  }
  const ret = vm_mmap_pgoff(mm, file, addr, len, prot, flags, pgoff);
  if (file !== null) file.fput();
  return ret;
}

/**
 * SYSCALL_DEFINE6(mmap) (arch/x86/kernel/sys_x86_64.c): the offset must be page aligned; the
 * rest is ksys_mmap_pgoff(). Arguments of any JS shape: see mman.ts ulong_arg().
 */
export function sys_mmap(task: Task, mm: MmStruct, uaddr: unknown, ulen: unknown, uprot: unknown, uflags: unknown, ufd: unknown, uoff: unknown): MmapResult {
  mm.kernel.cost.charge('syscall_entry');
  const addr = ulong_arg(uaddr);
  const len = ulong_arg(ulen);
  const prot = ulong_arg(uprot);
  const flags = ulong_arg(uflags);
  const fd = ulong_arg(ufd);
  const off = ulong_arg(uoff);
  if (off === undefined || off % PAGE_SIZE_N !== 0n) return -Errno.EINVAL;
  if (flags === undefined) return -Errno.EINVAL;
  if (fd === undefined && !(low32(flags) & MAP_ANONYMOUS)) return -Errno.EBADF;
  if (addr === undefined || len === undefined || prot === undefined) return -Errno.EINVAL;
  return ksys_mmap_pgoff(task, mm, addr, len, low32(prot), flags, fd ?? 0n, off >> 12n);
}

/* munmap */

/**
 * do_vmi_munmap(): unmap the bytes [start, start + len), split VMAs at the ends, zap their
 * pages, drop their files. 0 (also when nothing was mapped) or -errno.
 */
export function do_munmap(mm: MmStruct, start: bigint, len: bigint): number {
  if (start % PAGE_SIZE_N !== 0n || start > TASK_SIZE || len > TASK_SIZE - start) return -Errno.EINVAL;
  const endb = start + PAGE_ALIGN(len);
  if (endb === start) return -Errno.EINVAL;
  const s = Number(start / PAGE_SIZE_N);
  const e = Number(endb / PAGE_SIZE_N);
  return do_vmi_align_munmap(mm, s, e);
}

/** do_vmi_align_munmap(): pages [start, end) are unmapped. */
export function do_vmi_align_munmap(mm: MmStruct, start: number, end: number): number {
  const vmas = gather_munmap_vmas(mm, start, end, true);
  if (typeof vmas === 'number') return vmas;
  if (vmas.length === 0) return 0;
  unmap_vmas(mm, vmas, start, end);
  let nr_accounted = 0;
  for (const v of vmas) {
    const np = v.end_vpn - v.start_vpn;
    if (v.vm_flags & VM_LOCKED) mm.locked_vm -= np;
    if (v.vm_flags & VM_ACCOUNT) nr_accounted += np;
    vm_stat_account(mm, v.vm_flags, -np);
    vma_detach_and_remove(mm, v);
  }
  if (nr_accounted) vm_unacct_memory(mm.kernel, nr_accounted);
  return 0;
}

/** SYSCALL_DEFINE2(munmap). */
export function sys_munmap(mm: MmStruct, uaddr: unknown, ulen: unknown): number {
  mm.kernel.cost.charge('syscall_entry');
  const addr = ulong_arg(uaddr);
  const len = ulong_arg(ulen);
  if (addr === undefined || len === undefined) return -Errno.EINVAL;
  return do_munmap(mm, addr, len);
}

/** exit_mmap(): tear the whole address space down (process exit). */
export function exit_mmap(mm: MmStruct): void {
  const all = vmas_in_range(mm, 0, Number(TASK_SIZE / PAGE_SIZE_N) + 1);
  if (all.length === 0) return;
  do_vmi_align_munmap(mm, all[0].start_vpn, all[all.length - 1].end_vpn);
}
