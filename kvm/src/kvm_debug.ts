/**
 * KVM's part of the state digest and of DEBUG_VM (mm/src/debug.ts, mm/src/debug_vm.ts), for
 * every live VM of a host (KvmModule.vms, the kernel's vm_list).
 *
 * Digest part "kvm.vms", VMs in creation order, each: its type and the flags user space can
 * observe (private memory, protected state, pre-fault, dead, irqchip, hypercall exits, TSS, MMU
 * pages requested), its memslots per address space by id (gfn range, flags, hva, dirty bitmap,
 * guest_memfd file and offset), the memory-attribute ranges, the leaf SPTEs of each root in gfn
 * order (gfn, level, pfn, state word: permissions and A/D) and the page-table page count, and
 * its vCPUs by id (struct kvm_run, registers, mp_state, the user-space completion in flight).
 * Left out: counters that only order events (memslots generation, mmu_invalidate_seq, vCPU
 * statistics) and the guest program of the model, which is the test's, not the kernel's.
 *
 * DEBUG_VM rules ("kvm:<rule>"), no kernel function does all of them; each is an invariant the
 * kernel keeps and WARNs or relies on:
 *   memslot   per address space, id_hash and gfn_tree hold the same slots, each slot once in
 *             the tree at exactly [base_gfn, base_gfn + npages), slots sorted and non-overlapping,
 *             nr_memslot_pages their sum (kvm_set_memslot() / kvm_replace_memslot()).
 *   gmem      a slot's guest_memfd binding and the file's f->bindings agree both ways, the file
 *             belongs to the VM, and only KVM_MEM_GUEST_MEMFD slots have one (kvm_gmem_bind()).
 *   spte_slot no leaf SPTE maps a gfn outside a memslot (every unmap zaps a removed slot's range).
 *   spte_private on a VM with private memory, a leaf's kind agrees with kvm_mem_is_private() of
 *             each gfn it maps (the PRIVATE attribute, or a design's answer: D10 the guest_memfd's
 *             attribute, the designs that fault through the hva never private): mirror-root leaves
 *             are private, direct-root leaves of a mirrored VM shared; without a mirror root
 *             (SW_PROTECTED, SNP) a private leaf maps the slot's guest_memfd page and a shared one
 *             does not, unless the slot is gmem-only (kvm_vm_set_mem_attributes() zaps what a
 *             conversion changes).
 *   spte_ref  every pfn a leaf SPTE maps has a page refcount > 0: KVM maps only pages someone
 *             holds (guest_memfd's page cache, the mm's pages under the MMU notifier).
 */
import { MT_MAX, type MapleRange, type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, folio_nr_pages, page_count, page_folio, xa_is_value, type Kernel } from '@cocosim/mm';
import { kvm_memslot_is_gmem_only, kvm_slot_has_gmem, type Kvm, type KvmMemorySlot, type KvmVcpu } from './kvm_host.js';
import type { KvmModule } from './kvm_main.js';
import { kvm_hooks_providers } from './kvm_hooks.js';
import { kvm_mem_is_private, kvm_range_has_memory_attributes } from './kvm_mem_attributes.js';
import { file_is_kvm_gmem, type GmemFile } from './guest_memfd.js';
import { KVM_PAGES_PER_HPAGE } from './mmu/spte.js';
import { tdp_mmu_for_each_leaf, type KvmMmuPage, type KvmTdpMmu } from './mmu/tdp_mmu.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from './uapi.js';
import { vcpu_arch } from './x86.js';

/** Gfns a 5-level root spans (512^5): the end of a walk over a whole root. */
const ROOT_GFNS = KVM_PAGES_PER_HPAGE(6);

/* ---- the digest ---- */

function hash_slot(h: StateHash, slot: KvmMemorySlot): void {
  h.num(slot.id);
  h.num(slot.base_gfn);
  h.num(slot.npages);
  h.num(slot.flags);
  h.big(slot.userspace_addr);
  h.num(slot.gmem.file === null ? 0 : h.id(slot.gmem.file).id);
  h.num(slot.gmem.pgoff);
  if (slot.dirty_bitmap === null) h.num(-1);
  else h.bytes(slot.dirty_bitmap);
}

function hash_root(h: StateHash, root: KvmMmuPage | null): void {
  if (root === null) {
    h.num(-1);
    return;
  }
  let n = 0;
  tdp_mmu_for_each_leaf(root, 0, ROOT_GFNS, (sp, i, gfn) => {
    h.num(gfn);
    h.u32(sp.level);
    h.num(sp.pfn[i]!);
    h.u32(sp.spte[i]!);
    n++;
  });
  h.num(n);
}

function hash_vcpu(h: StateHash, vcpu: KvmVcpu): void {
  const run = vcpu.run;
  h.num(vcpu.vcpu_id);
  h.u32(run.exit_reason);
  h.u32(run.immediate_exit);
  h.big(run.mmio.phys_addr);
  h.bytes(run.mmio.data);
  h.u32(run.mmio.len);
  h.u32(run.mmio.is_write);
  h.big(run.hypercall.nr);
  for (const a of run.hypercall.args) h.big(a);
  h.big(run.hypercall.ret);
  h.big(run.hypercall.flags);
  h.big(run.memory_fault.flags);
  h.big(run.memory_fault.gpa);
  h.big(run.memory_fault.size);
  h.u32(run.internal.suberror);
  h.u32(run.internal.ndata);
  for (const d of run.internal.data) h.big(d);
  h.u32(run.system_event.type);
  h.u32(run.system_event.ndata);
  for (const d of run.system_event.data) h.big(d);
  h.u32(run.io.direction);
  h.u32(run.io.size);
  h.u32(run.io.port);
  h.u32(run.io.count);
  h.big(run.io.data_offset);
  h.bytes(run.pio_data);
  const a = vcpu_arch(vcpu);
  for (const v of Object.values(a.regs)) h.big(v);
  h.u32(a.mp_state);
  h.bool(a.complete_userspace_io !== null);
  h.u32(a.mmio_needed);
  h.u32(a.mmio_read_completed);
  h.u32(a.mmio_is_write);
  h.u32(a.mmio_cur_fragment);
  for (const f of a.mmio_fragments) {
    h.big(f.gpa);
    h.bytes(f.data);
    h.u32(f.len);
    h.u32(f.off);
  }
  h.u32(a.pio.count);
  h.u32(a.pio.port);
  h.u32(a.pio.size);
  h.bool(a.pio.in);
  h.big(a.pio.linear_rip);
  h.bool(a.signal_pending);
}

/** One VM into the digest (no kernel counterpart: the simulator's crash-dump comparison). */
function hash_vm(h: StateHash, kvm: Kvm): void {
  h.num(h.id(kvm).id);
  h.u32(kvm.arch.vm_type);
  h.bool(kvm.arch.has_private_mem);
  h.bool(kvm.arch.has_protected_state);
  h.bool(kvm.arch.pre_fault_allowed);
  h.num(kvm.arch.hypercall_exit_enabled);
  h.num(kvm.arch.gfn_direct_bits ?? -1);
  h.bool(kvm.vm_dead);
  h.bool(kvm.irqchip_in_kernel);
  h.num(kvm.n_requested_mmu_pages);
  h.big(kvm.tss_addr);
  h.num(kvm.users_count);
  h.num(kvm.created_vcpus);
  h.num(kvm.nr_memslot_pages);
  for (const slots of kvm.memslots) {
    const ids = [...slots.id_hash.keys()].sort((a, b) => a - b);
    h.num(ids.length);
    for (const id of ids) hash_slot(h, slots.id_hash.get(id)!);
  }
  kvm.mem_attr_array.mt_for_each(0, MT_MAX, (attrs, first, last) => {
    h.num(first);
    h.num(last);
    h.num(attrs);
  });
  h.str('sptes');
  const mmu = kvm.arch.mmu as KvmTdpMmu | undefined;
  if (mmu === undefined) h.num(-1);
  else {
    h.num(mmu.tdp_mmu_pages);
    hash_root(h, mmu.direct_root);
    hash_root(h, mmu.mirror_root);
  }
  const vcpus = [...kvm.vcpus.keys()].sort((a, b) => a - b);
  h.num(vcpus.length);
  for (const id of vcpus) hash_vcpu(h, kvm.vcpus.get(id)!);
}

/* ---- the checks ---- */

type Report = (rule: string, message: string, pfn?: number) => void;

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The memslot rule for one address space. */
function check_memslots(kvm: Kvm, vm: string, report: Report): number {
  let pages = 0;
  kvm.memslots.forEach((slots, as_id) => {
    const sorted: KvmMemorySlot[] = [];
    for (const [id, slot] of slots.id_hash) {
      if (slot.id !== id) report('memslot', `${vm} as ${as_id}: id_hash key ${id} holds slot ${slot.id}`);
      if (slot.as_id !== as_id) report('memslot', `${vm} as ${as_id}: slot ${slot.id} says address space ${slot.as_id}`);
      if (!(slot.npages > 0)) report('memslot', `${vm} as ${as_id}: slot ${slot.id} has ${slot.npages} pages`);
      const r = slots.gfn_tree.mt_range_at(slot.base_gfn);
      if (r === undefined || r.entry !== slot || r.first !== slot.base_gfn || r.last !== slot.base_gfn + slot.npages - 1) {
        report('memslot', `${vm} as ${as_id}: slot ${slot.id} [gfn ${hex(slot.base_gfn)}, +${slot.npages}) is not in gfn_tree as such`);
      }
      sorted.push(slot);
      pages += slot.npages;
    }
    sorted.sort((a, b) => a.base_gfn - b.base_gfn);
    for (let i = 1; i < sorted.length; i++) {
      const p = sorted[i - 1]!;
      const s = sorted[i]!;
      if (p.base_gfn + p.npages > s.base_gfn) report('memslot', `${vm} as ${as_id}: slots ${p.id} and ${s.id} overlap at gfn ${hex(s.base_gfn)}`);
    }
    slots.gfn_tree.mt_for_each(0, MT_MAX, (slot, first) => {
      if (slots.id_hash.get(slot.id) !== slot) report('memslot', `${vm} as ${as_id}: gfn_tree holds slot ${slot.id} at gfn ${hex(first)}, id_hash does not`);
    });
  });
  if (pages !== kvm.nr_memslot_pages) report('memslot', `${vm}: nr_memslot_pages ${kvm.nr_memslot_pages}, the slots hold ${pages}`);
  return pages;
}

/** The gmem rule: slot->gmem and the file's bindings agree both ways. */
function check_gmem(kvm: Kvm, vm: string, report: Report): void {
  const files = new Set<GmemFile>();
  for (const slots of kvm.memslots) {
    for (const slot of slots.id_hash.values()) {
      const file = slot.gmem.file;
      if (file === null) continue;
      if (!kvm_slot_has_gmem(slot)) report('gmem', `${vm}: slot ${slot.id} without KVM_MEM_GUEST_MEMFD is bound to a guest_memfd`);
      if (!file_is_kvm_gmem(file)) continue; /* another private store (kvm_hooks.ts) keeps its own bindings */
      const f = file.private_data as GmemFile;
      files.add(f);
      if (f.kvm !== kvm) report('gmem', `${vm}: slot ${slot.id} is bound to a guest_memfd of another VM`);
      const r = f.bindings.mt_range_at(slot.gmem.pgoff);
      if (r === undefined || r.entry !== slot || r.first !== slot.gmem.pgoff || r.last !== slot.gmem.pgoff + slot.npages - 1) {
        report('gmem', `${vm}: slot ${slot.id} (gfn ${hex(slot.base_gfn)}) at pgoff ${slot.gmem.pgoff}: the file's bindings do not hold it there`);
      }
    }
  }
  for (const f of files) {
    f.bindings.mt_for_each(0, MT_MAX, (slot, first, last) => {
      const live = kvm.memslots[slot.as_id]?.id_hash.get(slot.id) === slot;
      if (!live || slot.gmem.pgoff !== first || slot.npages !== last - first + 1 || slot.gmem.file?.private_data !== f) {
        report('gmem', `${vm}: guest_memfd binding [${first}, ${last}] names slot ${slot.id}, which is not bound there`);
      }
    });
  }
}

/** The pfn of guest_memfd page `index` of the slot's file, or -1 when none is cached. */
function gmem_pfn(slot: KvmMemorySlot, gfn: number, kernel: Kernel): number {
  const file = slot.gmem.file;
  if (file === null || !file_is_kvm_gmem(file)) return -1;
  const index = gfn - slot.base_gfn + slot.gmem.pgoff;
  const folio = file.f_inode.i_mapping.i_pages.xa_load(index);
  if (folio === undefined || xa_is_value(folio)) return -1;
  return folio + (index % folio_nr_pages(kernel.store, folio));
}

/** The SPTE rules (spte_slot, spte_private, spte_ref) over one root. */
function check_root(kvm: Kvm, vm: string, root: KvmMmuPage, mirrored: boolean, report: Report): void {
  const kernel = kvm.kernel;
  const store = kernel.store;
  const slots = kvm.memslots[0]!;
  const priv = kvm.arch.has_private_mem;
  /* Leaves come in gfn order: the slot and the attribute run of the last leaf usually hold the next. */
  let r: MapleRange<KvmMemorySlot> | undefined;
  let attr_first = 1;
  let attr_last = 0;
  let attr = 0;
  /* a design that answers kvm_mem_is_private() itself (kvm_hooks.ts) decides which gfns KVM faults privately */
  const hooked = kvm_hooks_providers(kernel).some((p) => p.mem_is_private !== undefined);
  const attributes_of = (gfn: number, n: number): number => {
    if (hooked) {
      const first = kvm_mem_is_private(kvm, gfn);
      for (let g = gfn + 1; g < gfn + n; g++) if (kvm_mem_is_private(kvm, g) !== first) return -1;
      return first ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
    }
    if (gfn < attr_first || gfn > attr_last) {
      const a = kvm.mem_attr_array.mt_range_at(gfn);
      if (a !== undefined) [attr_first, attr_last, attr] = [a.first, a.last, a.entry];
      else [attr_first, attr_last, attr] = [gfn, (kvm.mem_attr_array.mt_find(gfn, MT_MAX)?.first ?? MT_MAX + 1) - 1, 0];
    }
    if (gfn + n - 1 <= attr_last) return attr & KVM_MEMORY_ATTRIBUTE_PRIVATE;
    if (kvm_range_has_memory_attributes(kvm, gfn, gfn + n, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ATTRIBUTE_PRIVATE)) return KVM_MEMORY_ATTRIBUTE_PRIVATE;
    return kvm_range_has_memory_attributes(kvm, gfn, gfn + n, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0) ? 0 : -1;
  };
  tdp_mmu_for_each_leaf(root, 0, ROOT_GFNS, (sp, i, gfn) => {
    const n = KVM_PAGES_PER_HPAGE(sp.level);
    const pfn = sp.pfn[i]!;
    if (r === undefined || gfn < r.first || gfn > r.last) r = slots.gfn_tree.mt_range_at(gfn);
    if (r === undefined || r.last < gfn + n - 1) {
      report('spte_slot', `${vm}: ${root.is_mirror ? 'mirror' : 'direct'} SPTE gfn ${hex(gfn)} level ${sp.level} (pfn ${hex(pfn)}) is outside every memslot`, pfn);
    } else if (priv) {
      const attrs = attributes_of(gfn, n);
      const is_private = attrs === KVM_MEMORY_ATTRIBUTE_PRIVATE;
      const is_shared = attrs === 0;
      let kind: string | undefined;
      if (!is_private && !is_shared) kind = 'spans private and shared gfns';
      else if (mirrored) {
        if (root.is_mirror && !is_private) kind = 'is private (mirror root), the gfn is shared';
        else if (!root.is_mirror && is_private) kind = 'is shared (direct root), the gfn is private';
      } else {
        const slot = r.entry;
        const maps_gmem = kvm_slot_has_gmem(slot) && gmem_pfn(slot, gfn, kernel) === pfn;
        /* another private store (kvm_hooks.ts) keeps its pages where only its get_pfn looks */
        const own_store = hooked && slot.gmem.file !== null && !file_is_kvm_gmem(slot.gmem.file);
        if (own_store) { /* nothing this check can compare */ }
        else if (is_private && !maps_gmem) kind = 'maps no guest_memfd page, the gfn is private';
        else if (is_shared && maps_gmem && !kvm_memslot_is_gmem_only(slot)) kind = 'maps the guest_memfd page, the gfn is shared';
      }
      if (kind !== undefined) report('spte_private', `${vm}: SPTE gfn ${hex(gfn)} level ${sp.level} pfn ${hex(pfn)} ${kind}`, pfn);
    }
    if (pfn >= store.base_pfn && pfn + n <= store.end_pfn) {
      /* one question per folio the leaf covers: page_count() is the folio's count */
      for (let p = pfn; p < pfn + n;) {
        const folio = page_folio(store, p);
        if (page_count(store, p) <= 0) {
          report('spte_ref', `${vm}: SPTE gfn ${hex(gfn + (p - pfn))} level ${sp.level} maps pfn ${hex(p)} with refcount ${page_count(store, p)}`, p);
          break;
        }
        p = Math.max(p + 1, folio + folio_nr_pages(store, folio));
      }
    }
  });
}

/** The DEBUG_VM check of every VM of the module (the rules of the file comment). */
export function kvm_check_vms(module: KvmModule, report: Report): void {
  let n = 0;
  for (const kvm of module.vms) {
    const vm = `VM ${n++} (type ${kvm.arch.vm_type})`;
    check_memslots(kvm, vm, report);
    check_gmem(kvm, vm, report);
    const mmu = kvm.arch.mmu as KvmTdpMmu | undefined;
    if (mmu === undefined) continue;
    const mirrored = mmu.mirror_root !== null;
    check_root(kvm, vm, mmu.direct_root, mirrored, report);
    if (mmu.mirror_root !== null) check_root(kvm, vm, mmu.mirror_root, mirrored, report);
  }
}

/** Registers KVM's digest part and DEBUG_VM rules on the module's host (once, at kvm_init()). */
export function kvm_debug_register(module: KvmModule): void {
  const kernel = module.kernel;
  stateDigestRegistry(kernel).register('kvm.vms', (h) => {
    h.num(module.vms.size);
    for (const kvm of module.vms) hash_vm(h, kvm);
  }, 20);
  debug_vm_register(kernel, 'kvm', (_k, report) => kvm_check_vms(module, report));
}
