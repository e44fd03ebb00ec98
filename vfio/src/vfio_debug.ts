/**
 * VFIO's part of the state digest and of DEBUG_VM (mm/src/debug.ts, mm/src/debug_vm.ts).
 *
 * What is walked, in a canonical order: the open files of every task (for_each_process(), fds
 * in order) for type1 containers and iommufd contexts, then the VFIO groups by iommu group id
 * (their containers), then the devices in the order they were added (their iommufd contexts).
 * Each object is hashed once, when first met, and referenced by its canonical id after.
 *
 * Digest part "vfio":
 *   groups     id, DMA owner and owner count, attached domain, container, users, open file,
 *              cdev opens; devices: name, driver, opens, iommufd binding and attachment.
 *   containers kref, noiommu, driver, and type1's state (struct vfio_iommu): v2, usable IOVA
 *              ranges, pgsize_bitmap, mappings by iova (vaddr, size, prot, mapped, vaddr
 *              invalid, locked_vm, lock_cap, owning mm), domains with their groups.
 *   IOAS       iommufd objects by id (type, users): IOAS areas (iova range, pages, prot,
 *              offsets, storage domain, accesses), reserved and allowed ranges, domains, the
 *              alignment and large-page switch; HWPTs (IOAS, domain, flags); iopt_pages
 *              (source, npages, writability, pins held per index: the pin bookkeeping).
 *   mappings   every IOMMU domain met: its page table leaf by leaf (IOVA page, pfn, prot,
 *              size), cache coherency, freed.
 * Left out: the accounting mirror last_npinned, and mm state (refcounts, pincounts, locked_vm
 * of the mm), which mm's parts hash.
 *
 * DEBUG_VM rule ("vfio:iommu_pin"): every pfn an IOMMU leaf of a live domain maps belongs to a
 * folio that is DMA-pinned (folio_maybe_dma_pinned(): pincount > 0 for a large folio, a pin
 * bias in the refcount for a small one). VFIO and iommufd map only pages they pinned
 * (vfio_pin_pages_remote(), pfn_reader_user_pin()), and unmap before they unpin
 * (vfio_unmap_unpin(), iopt_area_unfill_domain()); a leaf on an unpinned page is a device DMA
 * into memory the mm may free or move.
 */
import { type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, folio_maybe_dma_pinned, folio_nr_pages, for_each_process, page_folio, type Kernel } from '@cocosim/mm';
import { vfio_fops, type VfioContainer } from './container.js';
import type { VfioGroup } from './group.js';
import type { IommuDomain } from './iommu.js';
import { IommufdDevice, IommufdHwptPaging } from './iommufd/device.js';
import { iommufd_fops } from './iommufd/main.js';
import { IommufdIoas } from './iommufd/ioas.js';
import type { IommufdCtx } from './iommufd/iommufd_private.js';
import type { IoptPages } from './iommufd/pages.js';
import type { VfioIommu } from './vfio_iommu_type1.js';
import type { VfioModule } from './vfio_main.js';

const PMD_PAGES = 512;
const PUD_PAGES = 262144;

/** What a walk of the host reaches: containers, iommufd contexts and domains, in canonical order. */
interface Reach {
  readonly containers: VfioContainer[];
  readonly ictxs: IommufdCtx[];
  readonly domains: IommuDomain[];
}

function add<T>(list: T[], seen: Set<unknown>, x: T | null | undefined): void {
  if (x === null || x === undefined || seen.has(x)) return;
  seen.add(x);
  list.push(x);
}

/** The containers, contexts and domains of the host, in the order of the file comment. */
function reach(module: VfioModule): Reach {
  const seen = new Set<unknown>();
  const r: Reach = { containers: [], ictxs: [], domains: [] };
  for (const t of for_each_process(module.kernel)) {
    for (const fd of t.files.open_fds()) {
      const file = t.files.lookup_raw(fd)!;
      if (file.f_op === vfio_fops) add(r.containers, seen, file.private_data as VfioContainer);
      else if (file.f_op === iommufd_fops) add(r.ictxs, seen, file.private_data as IommufdCtx);
    }
  }
  const groups = [...module.groups.values()].sort((a, b) => a.iommu_group.id - b.iommu_group.id);
  for (const g of groups) add(r.containers, seen, g.container);
  for (const d of module.devices) add(r.ictxs, seen, d.iommufd_device?.ictx);
  for (const g of groups) add(r.domains, seen, g.iommu_group.domain);
  for (const c of r.containers) for (const d of c.iommu_data?.domain_list ?? []) add(r.domains, seen, d.domain);
  for (const ictx of r.ictxs) {
    for (const id of [...ictx.objects.keys()].sort((a, b) => a - b)) {
      const obj = ictx.objects.get(id);
      if (obj instanceof IommufdHwptPaging) add(r.domains, seen, obj.domain);
      else if (obj instanceof IommufdIoas) for (const d of obj.iopt.domains) add(r.domains, seen, d);
    }
  }
  return r;
}

/** Visit the leaves of a domain in IOVA order: fn(first IOVA page, pfn, prot, order). */
function for_each_iommu_leaf(domain: IommuDomain, fn: (ipfn: number, pfn: number, prot: number, order: number) => void): void {
  const leaves: [number, number, number, number][] = [];
  for (const [pmd, t] of domain.ptes) {
    for (let i = 0; i < PMD_PAGES; i++) if (t.pfn[i]! >= 0) leaves.push([pmd * PMD_PAGES + i, t.pfn[i]!, t.prot[i]!, 0]);
  }
  for (const [pmd, l] of domain.pmds) leaves.push([pmd * PMD_PAGES, l.pfn, l.prot, 9]);
  for (const [pud, l] of domain.puds) leaves.push([pud * PUD_PAGES, l.pfn, l.prot, 18]);
  leaves.sort((a, b) => a[0] - b[0]);
  for (const [ipfn, pfn, prot, order] of leaves) fn(ipfn, pfn, prot, order);
}

/* ---- the digest ---- */

function hash_type1(h: StateHash, iommu: VfioIommu): void {
  h.bool(iommu.v2);
  h.num(iommu.dma_avail);
  h.num(iommu.vaddr_invalid_count);
  h.big(iommu.pgsize_bitmap);
  h.num(iommu.num_non_pinned_groups);
  h.num(iommu.iova_list.length);
  for (const r of iommu.iova_list) {
    h.big(r.start);
    h.big(r.end);
  }
  h.num(iommu.dma_list.length);
  for (const dma of iommu.dma_list) {
    h.big(dma.iova);
    h.big(dma.vaddr);
    h.big(dma.size);
    h.u32(dma.prot);
    h.bool(dma.iommu_mapped);
    h.bool(dma.vaddr_invalid);
    h.num(dma.locked_vm);
    h.bool(dma.lock_cap);
    h.num(h.id(dma.mm).id);
  }
  h.num(iommu.domain_list.length);
  for (const d of iommu.domain_list) {
    h.num(h.id(d.domain).id);
    h.bool(d.enforce_cache_coherency);
    h.num(d.group_list.length);
    for (const g of d.group_list) {
      h.num(g.iommu_group.id);
      h.bool(g.pinned_page_dirty_scope);
    }
  }
}

function hash_container(h: StateHash, c: VfioContainer): void {
  h.num(h.id(c).id);
  h.num(c.kref);
  h.bool(c.noiommu);
  h.str(c.iommu_driver?.name);
  h.num(c.group_list.length);
  for (const g of c.group_list) h.num(g.iommu_group.id);
  if (c.iommu_data === null) h.num(-1);
  else hash_type1(h, c.iommu_data);
}

function hash_pages(h: StateHash, pages: IoptPages): void {
  const { id, first } = h.id(pages);
  h.num(id);
  if (!first) return;
  h.u32(pages.type);
  h.big(pages.uptr);
  h.num(pages.file === null ? 0 : h.id(pages.file).id);
  h.big(pages.start);
  h.num(pages.npages);
  h.bool(pages.writable);
  h.num(pages.kref);
  h.num(pages.npinned);
  h.u32(pages.account_mode);
  h.num(h.id(pages.source_mm).id);
  for (const k of [...pages.chunks.keys()].sort((a, b) => a - b)) {
    const c = pages.chunks.get(k)!;
    h.num(k);
    for (let i = 0; i < c.holders.length; i++) {
      if (c.holders[i] === 0) continue;
      h.num(i);
      h.num(c.pfn[i]!);
      h.u32(c.holders[i]!);
    }
  }
}

function hash_ictx(h: StateHash, ictx: IommufdCtx): void {
  h.num(h.id(ictx).id);
  h.u32(ictx.account_mode);
  h.num(ictx.groups.size);
  for (const id of [...ictx.objects.keys()].sort((a, b) => a - b)) {
    const obj = ictx.objects.get(id)!;
    h.num(id);
    h.u32(obj.type);
    h.num(obj.users);
    if (obj instanceof IommufdIoas) {
      const iopt = obj.iopt;
      h.num(iopt.areas.length);
      for (const a of iopt.areas) {
        h.big(a.iova);
        h.big(a.last);
        if (a.pages === null) h.num(-1);
        else hash_pages(h, a.pages);
        h.u32(a.iommu_prot);
        h.num(a.page_offset);
        h.num(a.pages_index);
        h.num(a.pages_last);
        h.num(a.storage_domain === null ? 0 : h.id(a.storage_domain).id);
        h.num(a.num_accesses);
        h.num(a.num_locks);
      }
      for (const list of [iopt.reserved, iopt.allowed]) {
        h.num(list.length);
        for (const r of list) {
          h.big(r.start);
          h.big(r.last);
        }
      }
      h.num(iopt.domains.length);
      for (const d of iopt.domains) h.num(h.id(d).id);
      h.big(iopt.iova_alignment);
      h.bool(iopt.disable_large_pages);
      h.num(obj.hwpt_list.length);
    } else if (obj instanceof IommufdHwptPaging) {
      h.num(obj.ioas.id);
      h.num(h.id(obj.domain).id);
      h.bool(obj.auto_domain);
      h.bool(obj.enforce_cache_coherency);
      h.bool(obj.in_iopt);
    } else if (obj instanceof IommufdDevice) {
      h.str(obj.dev.name);
    }
  }
}

function hash_group(h: StateHash, g: VfioGroup): void {
  const ig = g.iommu_group;
  h.num(ig.id);
  h.num(ig.owner === null ? 0 : h.id(ig.owner).id);
  h.num(ig.owner_cnt);
  h.num(ig.domain === null ? 0 : h.id(ig.domain).id);
  h.num(g.container === null ? 0 : h.id(g.container).id);
  h.num(g.container_users);
  h.num(g.opened_file === null ? 0 : h.id(g.opened_file).id);
  h.num(g.cdev_device_open_cnt);
}

function hash_domain(h: StateHash, d: IommuDomain): void {
  h.num(h.id(d).id);
  h.bool(d.freed);
  h.bool(d.enforce_cache_coherency);
  h.num(d.groups.size);
  for (const id of [...d.groups].map((g) => g.id).sort((a, b) => a - b)) h.num(id);
  let n = 0;
  for_each_iommu_leaf(d, (ipfn, pfn, prot, order) => {
    h.num(ipfn);
    h.num(pfn);
    h.u32(prot);
    h.u32(order);
    n++;
  });
  h.num(n);
}

/** The "vfio" digest part (no kernel counterpart: the simulator's crash-dump comparison). */
function hash_vfio(h: StateHash, module: VfioModule): void {
  const r = reach(module);
  h.num(r.containers.length);
  for (const c of r.containers) hash_container(h, c);
  h.num(r.ictxs.length);
  for (const ictx of r.ictxs) hash_ictx(h, ictx);
  const groups = [...module.groups.values()].sort((a, b) => a.iommu_group.id - b.iommu_group.id);
  h.num(groups.length);
  for (const g of groups) hash_group(h, g);
  h.num(module.devices.length);
  for (const d of module.devices) {
    h.str(d.dev.name);
    h.str(d.dev.driver);
    h.num(d.open_count);
    h.num(d.iommufd_device === null ? 0 : h.id(d.iommufd_device.ictx).id);
    h.num(d.iommufd_device?.id ?? 0);
    h.bool(d.iommufd_attached);
  }
  h.num(r.domains.length);
  for (const d of r.domains) hash_domain(h, d);
}

/* ---- the check ---- */

type Report = (rule: string, message: string, pfn?: number) => void;

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The iommu_pin rule over every live domain of the host. */
export function vfio_check_iommu(module: VfioModule, report: Report): void {
  const store = module.kernel.store;
  reach(module).domains.forEach((d, n) => {
    if (d.freed) return;
    for_each_iommu_leaf(d, (ipfn, pfn, _prot, order) => {
      const nr = 2 ** order;
      if (pfn < store.base_pfn || pfn + nr > store.end_pfn) return; /* no struct page (MMIO): nothing to pin */
      for (let p = pfn; p < pfn + nr;) {
        const folio = page_folio(store, p);
        if (!folio_maybe_dma_pinned(store, folio)) {
          report('iommu_pin', `domain ${n}: IOVA ${hex((ipfn + (p - pfn)) * 4096)} (order ${order} leaf) maps pfn ${hex(p)}, whose folio is not pinned`, p);
          break;
        }
        p = Math.max(p + 1, folio + folio_nr_pages(store, folio));
      }
    });
  });
}

/** Registers VFIO's digest part and DEBUG_VM rule on the module's host (once, at vfio_init()). */
export function vfio_debug_register(module: VfioModule): void {
  const kernel: Kernel = module.kernel;
  stateDigestRegistry(kernel).register('vfio', (h) => hash_vfio(h, module), 30);
  debug_vm_register(kernel, 'vfio', (_k, report) => vfio_check_iommu(module, report));
}
