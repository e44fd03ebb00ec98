/**
 * The VFIO type1 IOMMU driver (drivers/vfio/vfio_iommu_type1.c, Linux 6.18): the DMA mappings of
 * a container, user memory pinned with FOLL_LONGTERM and mapped into the IOMMU domains of the
 * container's groups.
 *
 * - VFIO_IOMMU_MAP_DMA (vfio_dma_do_map()), in the kernel's order: argsz < 32 or unknown flags
 *   -EINVAL; no READ/WRITE, or VADDR with one of them, -EINVAL; iova, vaddr or size unaligned to
 *   the smallest IOMMU page, or size 0, -EINVAL; an IOVA or vaddr range that wraps -EINVAL; any
 *   overlap with a mapping -EEXIST; dma_entry_limit mappings already (module parameter, default
 *   U16_MAX) -ENOSPC; a range outside the usable IOVA list (the domain aperture less the reserved
 *   regions: the x86 MSI window) -EINVAL. Then the pages are pinned (vfio_pin_pages_remote():
 *   pin_user_pages_remote(FOLL_LONGTERM [| FOLL_WRITE]) by batches of 512, a run of physically
 *   contiguous pages at a time) and each run is mapped with iommu_map(), which uses 2 MiB and
 *   1 GiB IOPTEs where the run's alignment allows. Pins are charged to the caller's
 *   mm->locked_vm against RLIMIT_MEMLOCK unless it has CAP_IPC_LOCK (-ENOMEM beyond it, the run
 *   that crossed the limit unpinned). A failure unpins and unmaps everything the call did.
 * - VFIO_IOMMU_UNMAP_DMA (vfio_dma_do_unmap()): iova/size alignment, size 0, wrap, size >
 *   SIZE_MAX -EINVAL; VFIO_DMA_UNMAP_FLAG_ALL needs iova = size = 0. Type1v2 refuses to split a
 *   mapping: a range whose first or last byte falls inside a mapping that it does not start or
 *   end with is -EINVAL; otherwise every mapping inside it goes (none: success with size 0), and
 *   `size` returns the bytes unmapped. Unmapping unmaps the IOMMU first (batched iommu_unmap_fast
 *   with one IOTLB sync per 512 runs), then unpins (dirtying the pages of a writable mapping)
 *   and credits locked_vm.
 * - VFIO_DMA_MAP_FLAG_VADDR / VFIO_DMA_UNMAP_FLAG_VADDR (VFIO_UPDATE_VADDR): a mapping's vaddr
 *   invalidated and re-supplied across a live update; the IOMMU mapping stays.
 * - VFIO_IOMMU_GET_INFO: the page sizes and the capability chain (migration, DMA available, IOVA
 *   ranges), with its argsz rule. VFIO_CHECK_EXTENSION as the driver answers it.
 * - The container's groups (vfio_iommu_type1_attach_group()/detach_group()): one domain per
 *   compatible IOMMU, so with one IOMMU per host every group joins the first domain; detaching
 *   the last group unmaps and unpins everything (vfio_iommu_unmap_unpin_all()), as does releasing
 *   the driver with the container.
 *
 * Not modelled: dirty page tracking (VFIO_IOMMU_DIRTY_PAGES is -ENOTTY, an unmap asking for a
 * dirty bitmap is -EINVAL as while tracking is off), emulated-IOMMU (mdev) groups and their
 * vfio_pin_pages()/vfio_dma_rw() (so no pfn_list), VM_PFNMAP ranges (no simulated file maps
 * device memory), and the per-task accounting of a process that exited.
 */
import { BUG_ON, Errno, U64_MAX } from '@cocosim/core';
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  PageReserved,
  __account_locked_vm,
  pin_user_pages_remote,
  task_mm,
  unpin_user_page_range_dirty_lock,
  type MmStruct,
  type Task,
} from '@cocosim/mm';
import {
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuIotlbGather,
  iommu_attach_group,
  iommu_detach_group,
  iommu_domain_free,
  iommu_enforce_cache_coherency,
  iommu_get_resv_regions,
  iommu_group_has_isolated_msi,
  iommu_iotlb_sync,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_phys_contig_len,
  iommu_unmap,
  iommu_unmap_fast,
  type IommuDomain,
  type IommuGroup,
  type IommuResvRegion,
} from './iommu.js';
import { IOMMU_RESV_DIRECT_RELAXABLE, IOMMU_RESV_SW_MSI } from './iommu_vendor_ops.js';
import { copy_fields, user_struct } from './uaccess.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_MAP_MINSZ,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_MINSZ,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_TYPE1_INFO_SIZE,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  __VFIO_RESERVED_TYPE1_NESTING_IOMMU,
} from './uapi.js';

/** The module parameters of vfio_iommu_type1 (module_param_named). */
export interface VfioType1Params {
  /** Maximum number of user DMA mappings per container (default U16_MAX = 65535). */
  dma_entry_limit: number;
  /** Map everything with PAGE_SIZE IOPTEs, one page per pin (default false). */
  disable_hugepages: boolean;
  /** Allow groups whose MSIs the platform cannot isolate (default false). */
  allow_unsafe_interrupts: boolean;
}

/** PAGE_MASK as a u64. */
const PAGE_MASK = U64_MAX ^ 0xfffn;
const PAGE_SIZE_N = 4096n;
/** VFIO_BATCH_MAX_CAPACITY: PAGE_SIZE / sizeof(struct page *). */
const VFIO_BATCH_MAX_CAPACITY = 512;
/** VFIO_IOMMU_TLB_SYNC_MAX: unmapped runs per IOTLB sync. */
const VFIO_IOMMU_TLB_SYNC_MAX = 512;
/** DIRTY_BITMAP_SIZE_MAX: DIRTY_BITMAP_BYTES(INT_MAX). */
const DIRTY_BITMAP_SIZE_MAX = 1n << 28n;
/** SIZE_MAX on 64-bit. */
const SIZE_MAX = U64_MAX;

/** struct vfio_dma: one user mapping. */
export class VfioDma {
  /** Bytes mapped so far (grows while vfio_pin_map_dma() works). */
  size = 0n;
  iommu_mapped = false;
  vaddr_invalid = false;
  /** Pages this mapping charged to mm->locked_vm. */
  locked_vm = 0;

  constructor(
    /** Device address. */
    readonly iova: bigint,
    /** Process virtual address. */
    public vaddr: bigint,
    /** IOMMU_READ | IOMMU_WRITE. */
    readonly prot: number,
    /** capable(CAP_IPC_LOCK) of the task that mapped it. */
    public lock_cap: boolean,
    /** The mapping task (current->group_leader) and its mm. */
    public task: Task,
    public mm: MmStruct,
  ) {}
}

/** struct vfio_iommu_group. */
class VfioIommuGroup {
  pinned_page_dirty_scope = false;
  constructor(readonly iommu_group: IommuGroup) {}
}

/** struct vfio_domain. */
class VfioDomain {
  readonly group_list: VfioIommuGroup[] = [];
  enforce_cache_coherency = false;
  constructor(readonly domain: IommuDomain) {}
}

/** struct vfio_iova: a usable IOVA range [start, end]. */
interface VfioIova {
  start: bigint;
  end: bigint;
}

/** struct vfio_iommu: the type1 state of one container. */
export class VfioIommu {
  readonly domain_list: VfioDomain[] = [];
  iova_list: VfioIova[] = [];
  /** The mappings, sorted by iova (the kernel's rb-tree). */
  readonly dma_list: VfioDma[] = [];
  dma_avail: number;
  vaddr_invalid_count = 0;
  /** PAGE_MASK until a domain narrows it. */
  pgsize_bitmap = PAGE_MASK;
  num_non_pinned_groups = 0;
  readonly v2: boolean;
  readonly dirty_page_tracking = false;

  constructor(v2: boolean, readonly params: Readonly<VfioType1Params>) {
    this.v2 = v2;
    this.dma_avail = params.dma_entry_limit;
  }
}

/** __ffs() of a non-zero u64. */
function __ffs(x: bigint): bigint {
  let n = 0n;
  while (!((x >> n) & 1n)) n++;
  return n;
}

/**
 * vfio_find_dma(): a mapping overlapping [start, start + size), as the rb-tree walk finds it
 * (with size 0: one strictly containing `start`). `start + size` wraps as dma_addr_t does.
 */
export function vfio_find_dma(iommu: VfioIommu, start: bigint, size: bigint): VfioDma | undefined {
  const end = BigInt.asUintN(64, start + size);
  const list = iommu.dma_list;
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const dma = list[mid];
    if (end <= dma.iova) hi = mid - 1;
    else if (start >= dma.iova + dma.size) lo = mid + 1;
    else return dma;
  }
  return undefined;
}

/** vfio_find_dma_first_node(): the lowest mapping ending after `start`, if it starts before start + size. */
function vfio_find_dma_first_node(iommu: VfioIommu, start: bigint, size: bigint): number {
  const list = iommu.dma_list;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (start < list[mid].iova + list[mid].size) hi = mid;
    else lo = mid + 1;
  }
  if (lo === list.length) return -1;
  if (size && list[lo].iova >= BigInt.asUintN(64, start + size)) return -1;
  return lo;
}

/** vfio_link_dma(). */
function vfio_link_dma(iommu: VfioIommu, dma: VfioDma): void {
  const list = iommu.dma_list;
  let i = list.length;
  while (i > 0 && list[i - 1].iova > dma.iova) i--;
  list.splice(i, 0, dma);
}

/** vfio_unlink_dma(). */
function vfio_unlink_dma(iommu: VfioIommu, dma: VfioDma): void {
  const i = iommu.dma_list.indexOf(dma);
  BUG_ON(i < 0, 'vfio_unlink_dma() of a mapping not in the list');
  iommu.dma_list.splice(i, 1);
}

/** mm_lock_acct(): charge (npage > 0) or credit `npage` pages to mm->locked_vm. */
function mm_lock_acct(task: Task, mm: MmStruct, lock_cap: boolean, npage: number): number {
  return __account_locked_vm(mm, Math.abs(npage), npage > 0, task, lock_cap);
}

/** vfio_lock_acct(): mm_lock_acct() for a mapping, tracked in dma->locked_vm. */
function vfio_lock_acct(dma: VfioDma, npage: number): number {
  if (!npage) return 0;
  const ret = mm_lock_acct(dma.task, dma.mm, dma.lock_cap, npage);
  if (!ret) dma.locked_vm += npage;
  return ret;
}

/**
 * is_invalid_reserved_pfn(): a frame without a struct page, or PageReserved (the zero page a
 * read-only pin of untouched anonymous memory returns): not pinned, not accounted.
 */
function is_invalid_reserved_pfn(mm: MmStruct, pfn: number): boolean {
  const store = mm.kernel.store;
  return !store.pfn_valid(pfn) || PageReserved(store, pfn);
}

/** put_pfn() over `npage` frames from `pfn`: unpin (dirtying for a writable mapping) what has a page. */
function put_pfns(mm: MmStruct, pfn: number, npage: number, prot: number): number {
  if (!npage || is_invalid_reserved_pfn(mm, pfn)) return 0;
  unpin_user_page_range_dirty_lock(mm.kernel, pfn, npage, (prot & IOMMU_WRITE) !== 0);
  return npage;
}

/** struct vfio_batch: pages pinned by one pin_user_pages_remote() not yet consumed. */
class VfioBatch {
  readonly pages: number[] = [];
  size = 0;
  offset = 0;
  constructor(readonly capacity: number) {}
}

/** vfio_batch_unpin(): unpin what is left in the batch. */
function vfio_batch_unpin(batch: VfioBatch, dma: VfioDma): void {
  while (batch.size) {
    put_pfns(dma.mm, batch.pages[batch.offset], 1, dma.prot);
    batch.offset++;
    batch.size--;
  }
}

/**
 * vaddr_get_pfns(): pin up to the batch's capacity of the `npages` pages at `vaddr` with
 * pin_user_pages_remote(FOLL_LONGTERM [| FOLL_WRITE]): the count, or -errno (-EFAULT when GUP
 * pinned nothing without an error).
 */
function vaddr_get_pfns(mm: MmStruct, vaddr: bigint, npages: number, prot: number, batch: VfioBatch): number {
  const pin_pages = Math.min(npages, batch.capacity);
  const flags = prot & IOMMU_WRITE ? FOLL_WRITE : 0;
  const ret = pin_user_pages_remote(mm, Number(vaddr >> 12n), pin_pages, flags | FOLL_LONGTERM, batch.pages, null);
  if (ret > 0) {
    batch.size = ret;
    batch.offset = 0;
    return ret;
  }
  return ret === 0 ? -Errno.EFAULT : ret;
}

/** num_pages_contiguous(): how many of the batch's next pages are physically consecutive. */
function num_pages_contiguous(batch: VfioBatch): number {
  const first = batch.pages[batch.offset];
  let i = 1;
  while (i < batch.size && batch.pages[batch.offset + i] === first + i) i++;
  return i;
}

/**
 * vfio_pin_pages_remote(): pin the longest run of physically contiguous pages from `vaddr` (at
 * most `npage`), accounting them to locked_vm against `limit` pages. The run's first frame goes
 * to out.pfn_base.
 * @returns the pages pinned, or -errno with nothing of this call left pinned
 */
function vfio_pin_pages_remote(dma: VfioDma, vaddr: bigint, npage: number, out: { pfn_base: number }, limit: number, batch: VfioBatch, mm: MmStruct, disable_hugepages: boolean): number {
  let pfn = 0;
  let pinned = 0;
  let lock_acct = 0;
  let rsvd = false;
  let have_base = false;
  let ret = 0;
  if (batch.size) {
    /* Leftover pages in batch from an earlier call. */
    out.pfn_base = batch.pages[batch.offset];
    pfn = out.pfn_base;
    rsvd = is_invalid_reserved_pfn(mm, pfn);
    have_base = true;
  }
  if (disable_hugepages) npage = 1;
  fill: {
    while (npage) {
      if (!batch.size) {
        /* Empty batch, so refill it. */
        ret = vaddr_get_pfns(mm, vaddr, npage, dma.prot, batch);
        if (ret < 0) break fill;
        pfn = batch.pages[0];
        if (!have_base) {
          out.pfn_base = pfn;
          rsvd = is_invalid_reserved_pfn(mm, pfn);
          have_base = true;
        }
      }
      while (true) {
        if (pfn !== out.pfn_base + pinned || rsvd !== is_invalid_reserved_pfn(mm, pfn)) {
          ret = vfio_lock_acct(dma, lock_acct);
          break fill;
        }
        const nr_pages = num_pages_contiguous(batch);
        /* Reserved pages aren't counted against the user. */
        const acct_pages = rsvd ? 0 : nr_pages;
        if (acct_pages) {
          if (!dma.lock_cap && mm.locked_vm + lock_acct + acct_pages > limit) {
            ret = -Errno.ENOMEM;
            break fill;
          }
          lock_acct += acct_pages;
        }
        pinned += nr_pages;
        npage -= nr_pages;
        vaddr += PAGE_SIZE_N * BigInt(nr_pages);
        batch.offset += nr_pages;
        batch.size -= nr_pages;
        if (!batch.size) break;
        pfn = batch.pages[batch.offset];
      }
    }
    ret = vfio_lock_acct(dma, lock_acct);
  }
  if (ret < 0) {
    if (pinned && !rsvd) put_pfns(mm, out.pfn_base, pinned, dma.prot);
    vfio_batch_unpin(batch, dma);
    return ret;
  }
  return pinned;
}

/** vfio_unpin_pages_remote(): unpin `npage` frames from `pfn`; credit locked_vm when asked. */
function vfio_unpin_pages_remote(dma: VfioDma, pfn: number, npage: number, do_accounting: boolean): number {
  const unlocked = put_pfns(dma.mm, pfn, npage, dma.prot);
  if (do_accounting) vfio_lock_acct(dma, -unlocked);
  return unlocked;
}

/**
 * vfio_unmap_unpin(): take the mapping out of every domain (the first one last, since its page
 * table says which frames to unpin), then unpin. Runs of contiguous frames are unmapped with
 * iommu_unmap_fast() and unpinned after the IOTLB sync that follows every 512 of them
 * (unmap_unpin_fast(), vfio_sync_unpin()).
 * @returns the pages unpinned (0 when do_accounting, which credits them itself)
 */
function vfio_unmap_unpin(iommu: VfioIommu, dma: VfioDma, do_accounting: boolean): number {
  if (!dma.size || iommu.domain_list.length === 0) return 0;
  const end = dma.iova + dma.size;
  const domain = iommu.domain_list[0];
  for (const d of iommu.domain_list.slice(1)) iommu_unmap(d.domain, dma.iova, dma.size);
  const gather = new IommuIotlbGather();
  let unlocked = 0;
  let regions: { phys: number; len: number }[] = [];
  const sync = (): void => {
    iommu_iotlb_sync(domain.domain, gather);
    for (const r of regions) unlocked += vfio_unpin_pages_remote(dma, r.phys, r.len, false);
    regions = [];
  };
  let iova = dma.iova;
  while (iova < end) {
    const leaf = domain.domain.lookup(Number(iova >> 12n));
    if (leaf === undefined) {
      dma.mm.kernel.warn.WARN_ON(true, `vfio_unmap_unpin: IOVA 0x${iova.toString(16)} not mapped`);
      iova += PAGE_SIZE_N;
      continue;
    }
    /* To optimize for fewer iommu_unmap() calls, each of which may require hardware cache flushing, try to find the largest contiguous physical memory chunk to unmap. */
    const len = iommu_phys_contig_len(domain.domain, iova, end);
    const unmapped = iommu_unmap_fast(domain.domain, iova, len, gather);
    BUG_ON(unmapped === 0n, 'vfio_unmap_unpin: the IOMMU unmapped nothing');
    regions.push({ phys: leaf!.pfn, len: Number(unmapped >> 12n) });
    iova += unmapped;
    if (regions.length >= VFIO_IOMMU_TLB_SYNC_MAX) sync();
  }
  dma.iommu_mapped = false;
  if (regions.length) sync();
  if (do_accounting) {
    vfio_lock_acct(dma, -unlocked);
    return 0;
  }
  return unlocked;
}

/** vfio_remove_dma(): unmap, unpin and forget a mapping. */
function vfio_remove_dma(iommu: VfioIommu, dma: VfioDma): void {
  vfio_unmap_unpin(iommu, dma, true);
  vfio_unlink_dma(iommu, dma);
  if (dma.vaddr_invalid) iommu.vaddr_invalid_count--;
  iommu.dma_avail++;
}

/** vfio_update_pgsize_bitmap(): the page sizes every domain of the container has. */
function vfio_update_pgsize_bitmap(iommu: VfioIommu): void {
  iommu.pgsize_bitmap = U64_MAX;
  for (const d of iommu.domain_list) iommu.pgsize_bitmap &= d.domain.pgsize_bitmap;
  /* In case the IOMMU supports page sizes smaller than PAGE_SIZE we pretend PAGE_SIZE is supported and hide sub-PAGE_SIZE sizes. */
  if (iommu.pgsize_bitmap & ~PAGE_MASK) {
    iommu.pgsize_bitmap &= PAGE_MASK;
    iommu.pgsize_bitmap |= PAGE_SIZE_N;
  }
}

/** vfio_iommu_map(): map a pinned run into every domain, undoing the domains done on failure. */
function vfio_iommu_map(iommu: VfioIommu, iova: bigint, pfn: number, npage: number, prot: number): number {
  const size = BigInt(npage) << 12n;
  for (let i = 0; i < iommu.domain_list.length; i++) {
    const ret = iommu_map(iommu.domain_list[i].domain, iova, BigInt(pfn) << 12n, size, prot | IOMMU_CACHE);
    if (ret) {
      for (let j = i - 1; j >= 0; j--) iommu_unmap(iommu.domain_list[j].domain, iova, size);
      return ret;
    }
  }
  return 0;
}

/**
 * vfio_pin_map_dma(): pin and map `map_size` bytes of a new mapping, run by run, growing
 * dma->size; on failure the mapping is removed (what was done is undone).
 */
function vfio_pin_map_dma(iommu: VfioIommu, dma: VfioDma, map_size: bigint, current: Task): number {
  const mm = task_mm(current);
  const batch = new VfioBatch(iommu.params.disable_hugepages ? 1 : VFIO_BATCH_MAX_CAPACITY);
  const limit = Number(current.rlimit_memlock >> 12n > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : current.rlimit_memlock >> 12n);
  let size = map_size;
  let ret = 0;
  const out = { pfn_base: 0 };
  while (size) {
    /* Pin a contiguous chunk of memory */
    const npage = vfio_pin_pages_remote(dma, dma.vaddr + dma.size, Number(size >> 12n), out, limit, batch, mm, iommu.params.disable_hugepages);
    if (npage <= 0) {
      dma.mm.kernel.warn.WARN_ON(npage === 0, 'vfio_pin_map_dma: nothing pinned');
      ret = npage;
      break;
    }
    /* Map it! */
    ret = vfio_iommu_map(iommu, dma.iova + dma.size, out.pfn_base, npage, dma.prot);
    if (ret) {
      vfio_unpin_pages_remote(dma, out.pfn_base, npage, true);
      vfio_batch_unpin(batch, dma);
      break;
    }
    size -= BigInt(npage) << 12n;
    dma.size += BigInt(npage) << 12n;
  }
  dma.iommu_mapped = true;
  if (ret) vfio_remove_dma(iommu, dma);
  return ret;
}

/** vfio_iommu_iova_dma_valid(): [start, end] lies in one usable IOVA range (or there is no list). */
function vfio_iommu_iova_dma_valid(iommu: VfioIommu, start: bigint, end: bigint): boolean {
  for (const node of iommu.iova_list) if (start >= node.start && end <= node.end) return true;
  return iommu.iova_list.length === 0;
}

/**
 * vfio_change_dma_owner(): a VADDR update from another process moves the mapping's locked_vm
 * charge to the caller's mm.
 */
function vfio_change_dma_owner(dma: VfioDma, current: Task): number {
  const mm = task_mm(current);
  if (mm === dma.mm) return 0;
  const npage = dma.locked_vm;
  const lock_cap = current.cap_ipc_lock;
  const ret = mm_lock_acct(current, mm, lock_cap, npage);
  if (ret) return ret;
  mm_lock_acct(dma.task, dma.mm, dma.lock_cap, -npage);
  dma.task = current;
  dma.mm = mm;
  dma.lock_cap = lock_cap;
  return 0;
}

/** vfio_dma_do_map(): VFIO_IOMMU_MAP_DMA once its struct is copied in (see the file comment). */
function vfio_dma_do_map(iommu: VfioIommu, map: { flags: number; vaddr: bigint; iova: bigint; size: bigint }, current: Task): number {
  const set_vaddr = (map.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  const { iova, vaddr, size } = map;
  let prot = 0;
  /* READ/WRITE from device perspective */
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  if ((prot && set_vaddr) || (!prot && !set_vaddr)) return -Errno.EINVAL;
  const pgsize = 1n << __ffs(iommu.pgsize_bitmap);
  if (!size || ((size | iova | vaddr) & (pgsize - 1n))) return -Errno.EINVAL;
  /* Don't allow IOVA or virtual address wrap */
  if (BigInt.asUintN(64, iova + size - 1n) < iova || BigInt.asUintN(64, vaddr + size - 1n) < vaddr) return -Errno.EINVAL;
  let dma = vfio_find_dma(iommu, iova, size);
  if (set_vaddr) {
    if (dma === undefined) return -Errno.ENOENT;
    if (!dma.vaddr_invalid || dma.iova !== iova || dma.size !== size) return -Errno.EINVAL;
    const ret = vfio_change_dma_owner(dma, current);
    if (ret) return ret;
    dma.vaddr = vaddr;
    dma.vaddr_invalid = false;
    iommu.vaddr_invalid_count--;
    return 0;
  } else if (dma !== undefined) {
    return -Errno.EEXIST;
  }
  if (!iommu.dma_avail) return -Errno.ENOSPC;
  if (!vfio_iommu_iova_dma_valid(iommu, iova, iova + size - 1n)) return -Errno.EINVAL;
  iommu.dma_avail--;
  dma = new VfioDma(iova, vaddr, prot, current.cap_ipc_lock, current, task_mm(current));
  /* Insert zero-sized and grow as we map chunks of it */
  vfio_link_dma(iommu, dma);
  /* Don't pin and map if container doesn't contain IOMMU capable domain */
  if (iommu.domain_list.length === 0) {
    dma.size = size;
    return 0;
  }
  return vfio_pin_map_dma(iommu, dma, size, current);
}

/** vfio_dma_do_unmap(): VFIO_IOMMU_UNMAP_DMA once copied in; `unmap.size` returns the bytes unmapped. */
function vfio_dma_do_unmap(iommu: VfioIommu, unmap: { flags: number; iova: bigint; size: bigint }): number {
  let ret = -Errno.EINVAL;
  let unmapped = 0n;
  const iova = unmap.iova;
  let size = unmap.size;
  const unmap_all = (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const invalidate_vaddr = (unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
  const pgsize = 1n << __ffs(iommu.pgsize_bitmap);
  done: {
    if (iova & (pgsize - 1n)) break done;
    if (unmap_all) {
      if (iova || size) break done;
      size = U64_MAX;
    } else if (!size || size & (pgsize - 1n) || BigInt.asUintN(64, iova + size - 1n) < iova || size > SIZE_MAX) {
      break done;
    }
    /* When dirty tracking is enabled, allow only min supported pgsize */
    if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP && !iommu.dirty_page_tracking) break done;
    /*
     * The v2 version of this interface intends to be more deterministic. Unmap requests must fully
     * cover previous mappings. Multiple mappings may still be unmaped by specifying large ranges,
     * but there must not be any previous mappings bisected by the range.
     */
    if (iommu.v2 && !unmap_all) {
      let dma = vfio_find_dma(iommu, iova, 1n);
      if (dma !== undefined && dma.iova !== iova) break done;
      dma = vfio_find_dma(iommu, iova + size - 1n, 0n);
      if (dma !== undefined && dma.iova + dma.size !== iova + size) break done;
    }
    ret = 0;
    const first = vfio_find_dma_first_node(iommu, iova, size);
    if (first < 0) break done;
    const end = BigInt.asUintN(64, iova + size);
    const list = iommu.dma_list;
    let n = first;
    while (n < list.length) {
      const dma = list[n];
      if (dma.iova >= end) break;
      if (!iommu.v2 && iova > dma.iova) break;
      if (invalidate_vaddr) {
        if (dma.vaddr_invalid) {
          for (let k = first; k < n; k++) {
            list[k].vaddr_invalid = false;
            iommu.vaddr_invalid_count--;
          }
          ret = -Errno.EINVAL;
          unmapped = 0n;
          break;
        }
        dma.vaddr_invalid = true;
        iommu.vaddr_invalid_count++;
        unmapped += dma.size;
        n++;
        continue;
      }
      unmapped += dma.size;
      vfio_remove_dma(iommu, dma);
    }
  }
  /* Report how much was unmapped */
  unmap.size = unmapped;
  return ret;
}

/** iommu_get_group_resv_regions(): the reserved regions of every device of a group, sorted. */
function iommu_get_group_resv_regions(group: IommuGroup): IommuResvRegion[] {
  const out: IommuResvRegion[] = [];
  for (const dev of group.devices) for (const r of iommu_get_resv_regions(dev)) out.push(r);
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** vfio_iommu_aper_conflict(): the new aperture misses the current one or leaves mappings outside it. */
function vfio_iommu_aper_conflict(iommu: VfioIommu, start: bigint, end: bigint): boolean {
  const list = iommu.iova_list;
  if (list.length === 0) return false;
  const first = list[0];
  const last = list[list.length - 1];
  /* Disjoint sets, return conflict */
  if (start > last.end || end < first.start) return true;
  /* Check for any existing dma mappings below the new start */
  if (start > first.start && vfio_find_dma(iommu, first.start, start - first.start)) return true;
  /* Check for any existing dma mappings beyond the new end */
  if (end < last.end && vfio_find_dma(iommu, end + 1n, last.end - end)) return true;
  return false;
}

/** vfio_iommu_aper_resize(): clip the IOVA list to the aperture [start, end]. */
function vfio_iommu_aper_resize(iova: VfioIova[], start: bigint, end: bigint): void {
  if (iova.length === 0) {
    iova.push({ start, end });
    return;
  }
  /* Adjust iova list start */
  while (iova.length) {
    const node = iova[0];
    if (start < node.start) break;
    if (start >= node.start && start < node.end) {
      node.start = start;
      break;
    }
    /* Delete nodes before new start */
    iova.shift();
  }
  /* Adjust iova list end */
  for (let i = 0; i < iova.length; ) {
    const node = iova[i];
    if (end > node.end) {
      i++;
      continue;
    }
    if (end > node.start && end <= node.end) {
      node.end = end;
      i++;
      continue;
    }
    /* Delete nodes after new end */
    iova.splice(i, 1);
  }
}

/** vfio_iommu_resv_conflict(): a reserved region holds a mapping. */
function vfio_iommu_resv_conflict(iommu: VfioIommu, resv: readonly IommuResvRegion[]): boolean {
  for (const r of resv) {
    if (r.type === IOMMU_RESV_DIRECT_RELAXABLE) continue;
    if (vfio_find_dma(iommu, r.start, r.length)) return true;
  }
  return false;
}

/** vfio_iommu_resv_exclude(): cut the reserved regions out of the IOVA list; -EINVAL when nothing is left. */
function vfio_iommu_resv_exclude(iova: VfioIova[], resv: readonly IommuResvRegion[]): number {
  for (const r of resv) {
    if (r.type === IOMMU_RESV_DIRECT_RELAXABLE) continue;
    const start = r.start;
    const end = r.start + r.length - 1n;
    for (let i = 0; i < iova.length; ) {
      const n = iova[i];
      /* No overlap */
      if (start > n.end || end < n.start) {
        i++;
        continue;
      }
      const repl: VfioIova[] = [];
      if (start > n.start) repl.push({ start: n.start, end: start - 1n });
      if (end < n.end) repl.push({ start: end + 1n, end: n.end });
      iova.splice(i, 1, ...repl);
      i += repl.length;
    }
  }
  return iova.length === 0 ? -Errno.EINVAL : 0;
}

/** vfio_iommu_find_iommu_group(). */
function vfio_iommu_find_iommu_group(iommu: VfioIommu, iommu_group: IommuGroup): VfioIommuGroup | undefined {
  for (const d of iommu.domain_list) {
    const g = d.group_list.find((x) => x.iommu_group === iommu_group);
    if (g !== undefined) return g;
  }
  return undefined;
}

/**
 * vfio_iommu_type1_attach_group(): give the group a domain: a new one, or the existing domain of
 * the same IOMMU (there is one IOMMU per simulated host, so all groups share the first domain).
 * -EBUSY while a vaddr is invalid, -EINVAL for a group already in, an aperture or reserved
 * region that conflicts with a mapping, -EPERM without MSI isolation (and allow_unsafe_interrupts).
 */
export function vfio_iommu_type1_attach_group(iommu: VfioIommu, iommu_group: IommuGroup): number {
  /* Attach could require pinning, so disallow while vaddr is invalid. */
  if (iommu.vaddr_invalid_count) return -Errno.EBUSY;
  /* Check for duplicates */
  if (vfio_iommu_find_iommu_group(iommu, iommu_group)) return -Errno.EINVAL;
  const group = new VfioIommuGroup(iommu_group);
  const domain = new VfioDomain(iommu_paging_domain_alloc(iommu_group.devices[0]));
  let ret = iommu_attach_group(domain.domain, iommu_group);
  if (ret) {
    iommu_domain_free(domain.domain);
    return ret;
  }
  const fail = (err: number): number => {
    iommu_detach_group(domain.domain, iommu_group);
    iommu_domain_free(domain.domain);
    return err;
  };
  /* Get aperture info */
  if (vfio_iommu_aper_conflict(iommu, domain.domain.aperture_start, domain.domain.aperture_end)) return fail(-Errno.EINVAL);
  const group_resv_regions = iommu_get_group_resv_regions(iommu_group);
  if (vfio_iommu_resv_conflict(iommu, group_resv_regions)) return fail(-Errno.EINVAL);
  /* We don't want to work on the original iova list as the list gets modified and in case of failure we have to retain the original list. */
  const iova_copy = iommu.iova_list.map((n) => ({ ...n }));
  vfio_iommu_aper_resize(iova_copy, domain.domain.aperture_start, domain.domain.aperture_end);
  ret = vfio_iommu_resv_exclude(iova_copy, group_resv_regions);
  if (ret) return fail(ret);
  domain.group_list.push(group);
  if (!iommu.params.allow_unsafe_interrupts && !iommu_group_has_isolated_msi(iommu_group)) return fail(-Errno.EPERM);
  /* If the IOMMU can block non-coherent operations (ie PCIe TLPs with no-snoop set) then VFIO always turns this feature on. */
  domain.enforce_cache_coherency = iommu_enforce_cache_coherency(domain.domain);
  let joined = false;
  /* Try to match an existing compatible domain. */
  for (const d of iommu.domain_list) {
    if (d.domain.iommu === domain.domain.iommu && d.enforce_cache_coherency === domain.enforce_cache_coherency) {
      iommu_detach_group(domain.domain, iommu_group);
      if (!iommu_attach_group(d.domain, iommu_group)) {
        d.group_list.push(group);
        iommu_domain_free(domain.domain);
        joined = true;
        break;
      }
      ret = iommu_attach_group(domain.domain, iommu_group);
      if (ret) {
        iommu_domain_free(domain.domain);
        return ret;
      }
    }
  }
  if (!joined) {
    /* replay mappings on new domains: a first domain finds none (the list empties with the last domain) */
    BUG_ON(iommu.dma_list.length !== 0, 'vfio_iommu_replay(): mappings to replay into a second, incompatible domain');
    BUG_ON(group_resv_regions.some((r) => r.type === IOMMU_RESV_SW_MSI), 'IOMMU_RESV_SW_MSI regions need an MSI cookie the simulator lacks');
    iommu.domain_list.unshift(domain);
    vfio_update_pgsize_bitmap(iommu);
  }
  /* Delete the old one and insert new iova list */
  iommu.iova_list = iova_copy;
  /* An iommu backed group can dirty memory directly and therefore demotes the iommu scope until it declares itself dirty tracking capable via the page pinning interface. */
  iommu.num_non_pinned_groups++;
  return 0;
}

/** vfio_iommu_unmap_unpin_all(). */
function vfio_iommu_unmap_unpin_all(iommu: VfioIommu): void {
  while (iommu.dma_list.length) vfio_remove_dma(iommu, iommu.dma_list[0]);
}

/** vfio_iommu_aper_expand(): after a domain went, the aperture is the intersection of those left. */
function vfio_iommu_aper_expand(iommu: VfioIommu, iova_copy: VfioIova[]): void {
  if (iova_copy.length === 0) return;
  let start = 0n;
  let end = U64_MAX;
  for (const d of iommu.domain_list) {
    if (d.domain.aperture_start > start) start = d.domain.aperture_start;
    if (d.domain.aperture_end < end) end = d.domain.aperture_end;
  }
  /* Modify aperture limits. The new aper is either same or bigger */
  iova_copy[0].start = start;
  iova_copy[iova_copy.length - 1].end = end;
}

/** vfio_iommu_resv_refresh(): rebuild the IOVA list from the aperture and the groups left. */
function vfio_iommu_resv_refresh(iommu: VfioIommu, iova_copy: VfioIova[]): number {
  if (iova_copy.length === 0) return -Errno.EINVAL;
  const resv: IommuResvRegion[] = [];
  for (const d of iommu.domain_list) for (const g of d.group_list) resv.push(...iommu_get_group_resv_regions(g.iommu_group));
  const start = iova_copy[0].start;
  const end = iova_copy[iova_copy.length - 1].end;
  /* purge the iova list and create new one */
  iova_copy.length = 0;
  vfio_iommu_aper_resize(iova_copy, start, end);
  /* Exclude current reserved regions from iova ranges */
  return vfio_iommu_resv_exclude(iova_copy, resv);
}

/**
 * vfio_iommu_type1_detach_group(): the group leaves its domain; the last group of the last domain
 * takes every mapping with it (unmapped and unpinned).
 */
export function vfio_iommu_type1_detach_group(iommu: VfioIommu, iommu_group: IommuGroup): void {
  let update_dirty_scope = false;
  const iova_copy = iommu.iova_list.map((n) => ({ ...n }));
  for (const domain of iommu.domain_list) {
    const gi = domain.group_list.findIndex((g) => g.iommu_group === iommu_group);
    if (gi < 0) continue;
    const group = domain.group_list[gi];
    iommu_detach_group(domain.domain, iommu_group);
    update_dirty_scope = !group.pinned_page_dirty_scope;
    domain.group_list.splice(gi, 1);
    /* Group ownership provides privilege, if the group list is empty, the domain goes away. If it's the last domain with iommu then all the mappings go away too. */
    if (domain.group_list.length === 0) {
      if (iommu.domain_list.length === 1) vfio_iommu_unmap_unpin_all(iommu);
      iommu_domain_free(domain.domain);
      iommu.domain_list.splice(iommu.domain_list.indexOf(domain), 1);
      vfio_iommu_aper_expand(iommu, iova_copy);
      vfio_update_pgsize_bitmap(iommu);
    }
    break;
  }
  if (!vfio_iommu_resv_refresh(iommu, iova_copy)) iommu.iova_list = iova_copy;
  /* Removal of a group without dirty tracking may allow the iommu scope to be promoted. */
  if (update_dirty_scope) iommu.num_non_pinned_groups--;
}

/**
 * vfio_iommu_type1_open(): a VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU (or the retired nesting type,
 * which opens a v2) container state; -EINVAL for any other type.
 */
export function vfio_iommu_type1_open(arg: number, params: Readonly<VfioType1Params>): VfioIommu | number {
  switch (arg) {
    case VFIO_TYPE1_IOMMU:
      return new VfioIommu(false, params);
    case __VFIO_RESERVED_TYPE1_NESTING_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
      return new VfioIommu(true, params);
    default:
      return -Errno.EINVAL;
  }
}

/** vfio_iommu_type1_release(): unmap and unpin everything, detach the groups, free the domains. */
export function vfio_iommu_type1_release(iommu: VfioIommu): void {
  vfio_iommu_unmap_unpin_all(iommu);
  for (const domain of iommu.domain_list) {
    for (const g of domain.group_list) iommu_detach_group(domain.domain, g.iommu_group);
    domain.group_list.length = 0;
    iommu_domain_free(domain.domain);
  }
  iommu.domain_list.length = 0;
  iommu.iova_list = [];
}

/**
 * vfio_iommu_type1_check_extension(): the driver's answer, with `iommu` null when the container
 * has no driver yet (VFIO_UPDATE_VADDR and VFIO_DMA_CC_IOMMU are then 0).
 */
export function vfio_iommu_type1_check_extension(iommu: VfioIommu | null, arg: bigint): number {
  switch (arg) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return 1;
    case BigInt(VFIO_UPDATE_VADDR):
      /* Disable this feature if mdevs are present. */
      return iommu !== null ? 1 : 0;
    case BigInt(VFIO_DMA_CC_IOMMU):
      if (iommu === null) return 0;
      return iommu.domain_list.every((d) => d.enforce_cache_coherency) ? 1 : 0;
    default:
      return 0;
  }
}

/** A VFIO_IOMMU_GET_INFO capability, with its header (id, version, next) as the kernel lays it out. */
export type VfioInfoCap = Record<string, unknown> & { readonly id: number; readonly version: number; next: number };

/**
 * vfio_iommu_type1_get_info(): flags (PGSIZES | CAPS), iova_pgsizes, and the capability chain
 * (migration, DMA available, IOVA ranges) when argsz leaves room for it, else argsz grows to the
 * size needed. Out-fields beyond argsz are not written. The chain comes back as `caps`, an array
 * of the capability structs with their `next` offsets.
 */
function vfio_iommu_type1_get_info(iommu: VfioIommu, arg: unknown): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const minsz = 16;
  const info = copy_fields(s, ['argsz'], []);
  if (info === undefined) return -Errno.EFAULT;
  if (info.argsz < minsz) return -Errno.EINVAL;
  const copy = Math.min(info.argsz, VFIO_IOMMU_TYPE1_INFO_SIZE);
  const caps: VfioInfoCap[] = [];
  const sizes: number[] = [];
  /* vfio_iommu_migration_build_caps(): support minimum pgsize */
  caps.push({ id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1, next: 0, flags: 0, pgsize_bitmap: 1n << __ffs(iommu.pgsize_bitmap), max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX });
  sizes.push(32);
  caps.push({ id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0, avail: iommu.dma_avail });
  sizes.push(16);
  /* Return 0 as a container with a single mdev device will have an empty list */
  if (iommu.iova_list.length) {
    caps.push({ id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0, nr_iovas: iommu.iova_list.length, iova_ranges: iommu.iova_list.map((n) => ({ start: n.start, end: n.end })) });
    sizes.push(16 + 16 * iommu.iova_list.length);
  }
  const caps_size = sizes.reduce((a, b) => a + b, 0);
  let flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
  let argsz = info.argsz;
  let cap_offset = 0;
  let chain: VfioInfoCap[] | undefined;
  if (info.argsz < VFIO_IOMMU_TYPE1_INFO_SIZE + caps_size) {
    argsz = VFIO_IOMMU_TYPE1_INFO_SIZE + caps_size;
  } else {
    /* vfio_info_cap_shift(): offsets from the start of the info struct */
    let off = VFIO_IOMMU_TYPE1_INFO_SIZE;
    for (let i = 0; i < caps.length; i++) {
      off += sizes[i];
      caps[i].next = i + 1 < caps.length ? off : 0;
    }
    cap_offset = VFIO_IOMMU_TYPE1_INFO_SIZE;
    chain = caps;
  }
  flags >>>= 0;
  s.argsz = argsz;
  s.flags = flags;
  s.iova_pgsizes = iommu.pgsize_bitmap;
  if (copy >= 20) s.cap_offset = cap_offset;
  if (chain !== undefined) s.caps = chain;
  return 0;
}

/** vfio_iommu_type1_map_dma(): copy in struct vfio_iommu_type1_dma_map and check argsz and flags. */
function vfio_iommu_type1_map_dma(iommu: VfioIommu, arg: unknown, current: Task): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const map = copy_fields(s, ['argsz', 'flags'], ['vaddr', 'iova', 'size']);
  if (map === undefined) return -Errno.EFAULT;
  const mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
  if (map.argsz < VFIO_DMA_MAP_MINSZ || map.flags & ~mask) return -Errno.EINVAL;
  return vfio_dma_do_map(iommu, map, current);
}

/**
 * vfio_iommu_type1_unmap_dma(): copy in struct vfio_iommu_type1_dma_unmap, check argsz and
 * flags (and, for GET_DIRTY_BITMAP, the struct vfio_bitmap after it, given as `bitmap`), unmap,
 * and on success copy `size` back.
 */
function vfio_iommu_type1_unmap_dma(iommu: VfioIommu, arg: unknown): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const unmap = copy_fields(s, ['argsz', 'flags'], ['iova', 'size']);
  if (unmap === undefined) return -Errno.EFAULT;
  const mask = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
  if (unmap.argsz < VFIO_DMA_UNMAP_MINSZ || unmap.flags & ~mask) return -Errno.EINVAL;
  if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP && unmap.flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) return -Errno.EINVAL;
  if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
    if (unmap.argsz < VFIO_DMA_UNMAP_MINSZ + 24) return -Errno.EINVAL;
    const b = user_struct(s.bitmap);
    if (b === undefined) return -Errno.EFAULT;
    const bitmap = copy_fields(b, [], ['pgsize', 'size']);
    if (bitmap === undefined || bitmap.pgsize === 0n) return -Errno.EFAULT;
    /* verify_bitmap_size() */
    const npages = unmap.size >> __ffs(bitmap.pgsize);
    if (!npages || !bitmap.size || bitmap.size > DIRTY_BITMAP_SIZE_MAX || bitmap.size < ((npages + 63n) / 64n) * 8n) return -Errno.EINVAL;
  }
  const ret = vfio_dma_do_unmap(iommu, unmap);
  if (ret) return ret;
  s.size = unmap.size;
  return 0;
}

/**
 * vfio_iommu_type1_ioctl(): the container ioctls the driver takes (the container passes it
 * everything it does not handle itself); an unknown one is -ENOTTY.
 */
export function vfio_iommu_type1_ioctl(iommu: VfioIommu, cmd: number, arg: unknown, current: Task): number {
  switch (cmd) {
    case VFIO_CHECK_EXTENSION:
      return vfio_iommu_type1_check_extension(iommu, ioctl_ulong(arg));
    case VFIO_IOMMU_GET_INFO:
      return vfio_iommu_type1_get_info(iommu, arg);
    case VFIO_IOMMU_MAP_DMA:
      return vfio_iommu_type1_map_dma(iommu, arg, current);
    case VFIO_IOMMU_UNMAP_DMA:
      return vfio_iommu_type1_unmap_dma(iommu, arg);
    default:
      return -Errno.ENOTTY;
  }
}

/**
 * An `unsigned long arg` passed by value: a number or bigint as C would hold it (negative values
 * wrap); anything else is a value no extension has (all ones).
 */
export function ioctl_ulong(arg: unknown): bigint {
  if (typeof arg === 'number' && Number.isSafeInteger(arg)) return BigInt.asUintN(64, BigInt(arg));
  if (typeof arg === 'bigint') return BigInt.asUintN(64, arg);
  return U64_MAX;
}

/** cocosim inspection: the container's mappings (iova, vaddr, size, prot, locked_vm), in IOVA order. */
export function vfio_iommu_type1_dmas(iommu: VfioIommu): readonly VfioDma[] {
  return iommu.dma_list;
}

/** cocosim inspection: the domain the container's groups translate through (the first one). */
export function vfio_iommu_type1_domain(iommu: VfioIommu): IommuDomain | undefined {
  return iommu.domain_list[0]?.domain;
}
