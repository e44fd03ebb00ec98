/**
 * The KVM side of David Hildenbrand's per-VMA write denial (2021-04-07,
 * 5e934d94-414c-90de-c58e-34456e4ab1cf@redhat.com; designs.md D2 "Alternative proposed in
 * review"): "User space sets up VM memory as mprotect(PROT_READ)"; after "protected memory is
 * switched on (a KVM ioctl)" the VMAs "cannot be set to PROT_WRITE anymore", KVM writes guest
 * memory through GUP with the new flag, and "all writes to shared pages" are bounced "through the
 * kernel (an ioctl writes page content)". The mail is a sketch: the validation below (which VMAs
 * qualify, in which order) is cocosim's reading of it, said where it is made.
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  FOLL_FORCE, FOLL_WRITE, VM_MAYSHARE, VM_SHARED, VM_WRITE, find_vma, folio_mark_dirty, get_user_pages_remote, page_folio, put_page,
  vm_flags_or, vm_flags_test, type FileOwner, type VmAreaStruct,
} from '@cocosim/mm';
import type { Kvm } from '../../kvm_host.js';
import { kvm_get_memory_attributes } from '../../kvm_mem_attributes.js';
import { kvm_memslots } from '../../kvm_host.js';
import { gfn_to_memslot, __gfn_to_hva_memslot } from '../../kvm_memslots.js';
import { ENOIOCTLCMD } from '../../kvm_hooks.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi.js';
import { FOLL_DENYUSERWRITE, KVM_PROTECT_MEMORY, KVM_WRITE_GUEST, VM_DENYUSERWRITE } from './uapi.js';

const PG = BigInt(PAGE_SIZE);
const active = new WeakSet<Kvm>();

/** Whether the VM switched protected memory on. */
export function kvm_mem_protected(kvm: Kvm): boolean {
  return active.has(kvm);
}

/**
 * hva_to_pfn_slow()'s flags once protected: a write fault takes the page with FOLL_FORCE (the VMA
 * has no VM_WRITE) and FOLL_DENYUSERWRITE (the VMA denies user writes); reads need nothing.
 */
export function kvm_per_vma_gup_flags(kvm: Kvm, write: boolean): number {
  return write && active.has(kvm) ? FOLL_FORCE | FOLL_DENYUSERWRITE : 0;
}

/** The VMAs covering user pages [start, end) of `kvm`'s mm, or -EFAULT at a hole. */
function memslot_vmas(kvm: Kvm, start: number, end: number): VmAreaStruct[] | number {
  const out: VmAreaStruct[] = [];
  for (let vpn = start; vpn < end;) {
    const vma = find_vma(kvm.mm, vpn);
    if (vma === undefined || vma.start_vpn > vpn) return -Errno.EFAULT;
    out.push(vma);
    vpn = vma.end_vpn;
  }
  return out;
}

/**
 * KVM_PROTECT_MEMORY: every memslot's memory must already be read-only to user space
 * (mprotect(PROT_READ): -EINVAL while a VMA has VM_WRITE) and private to the VMM (-EINVAL for a
 * shared mapping: another mapping of the file, or write(2) to it, would still write the pages;
 * Kirill's answer, 2021-04-09, "per-VMA would not fly for file-backed (e.g. tmpfs) memory");
 * -EFAULT where a slot's range is not mapped. All checks come first, so a refusal changes
 * nothing; then each VMA gets VM_DENYUSERWRITE (whole VMAs: the VMM maps guest RAM exactly).
 * Switching on twice covers slots added since.
 */
export function kvm_vm_ioctl_protect_memory(kvm: Kvm): number {
  const vmas: VmAreaStruct[] = [];
  for (const slot of kvm_memslots(kvm).id_hash.values()) {
    const start = Number(slot.userspace_addr / PG);
    const r = memslot_vmas(kvm, start, start + slot.npages);
    if (typeof r === 'number') return r;
    for (const vma of r) {
      if (vm_flags_test(vma.vm_flags, VM_WRITE) || vm_flags_test(vma.vm_flags, VM_SHARED | VM_MAYSHARE)) return -Errno.EINVAL;
      vmas.push(vma);
    }
  }
  for (const vma of vmas) vma.vm_flags = vm_flags_or(vma.vm_flags, VM_DENYUSERWRITE);
  active.add(kvm);
  return 0;
}

/** struct kvm_write_guest as the simulated VMM passes it. */
export interface KvmWriteGuest {
  readonly gpa: bigint | number;
  readonly size: bigint | number;
  readonly data: Uint8Array;
}

/**
 * KVM_WRITE_GUEST: the VMM's write of `size` bytes of `data` to guest memory at `gpa`, which KVM
 * copies with GUP(FOLL_WRITE | FOLL_FORCE | FOLL_DENYUSERWRITE). Checks (cocosim's order): a
 * struct that is not one, or `data` shorter than `size`, -EFAULT; size 0 is 0; a range outside
 * the memslots -EFAULT; a private page (KVM_MEMORY_ATTRIBUTE_PRIVATE) -EPERM: only shared pages
 * are bounced. All pages are checked before any byte is written.
 */
export function kvm_vm_ioctl_write_guest(kvm: Kvm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const { gpa: gpa_in, size: size_in, data } = arg as Partial<KvmWriteGuest>;
  if (!(data instanceof Uint8Array)) return -Errno.EFAULT;
  if ((typeof gpa_in !== 'bigint' && typeof gpa_in !== 'number') || (typeof size_in !== 'bigint' && typeof size_in !== 'number')) return -Errno.EFAULT;
  let gpa: bigint;
  let size: bigint;
  try {
    gpa = BigInt.asUintN(64, BigInt(gpa_in));
    size = BigInt.asUintN(64, BigInt(size_in));
  } catch {
    return -Errno.EFAULT;
  }
  if (size > BigInt(data.length)) return -Errno.EFAULT;
  if (size === 0n) return 0;
  const first = gpa / PG;
  const last = (gpa + size - 1n) / PG;
  const hvas: bigint[] = [];
  for (let g = first; g <= last; g++) {
    const slot = gfn_to_memslot(kvm, Number(g));
    if (slot === undefined) return -Errno.EFAULT;
    if (kvm_get_memory_attributes(kvm, Number(g)) & KVM_MEMORY_ATTRIBUTE_PRIVATE) return -Errno.EPERM;
    hvas.push(__gfn_to_hva_memslot(slot, Number(g)));
  }
  const store = kvm.kernel.store;
  let done = 0;
  for (let i = 0; i < hvas.length; i++) {
    const pages: number[] = [];
    const n = get_user_pages_remote(kvm.mm, Number(hvas[i]! / PG), 1, FOLL_WRITE | FOLL_FORCE | FOLL_DENYUSERWRITE, pages);
    if (n < 1) return n < 0 ? n : -Errno.EFAULT;
    const off = i === 0 ? Number(gpa % PG) : 0;
    const len = Math.min(PAGE_SIZE - off, Number(size) - done);
    kvm.kernel.phys.write(pages[0]! as Pfn, off, data.subarray(done, done + len));
    folio_mark_dirty(store, page_folio(store, pages[0]!));
    put_page(store, pages[0]!);
    done += len;
  }
  kvm.kernel.cost.charge('page_copy_4k', hvas.length);
  return 0;
}

/** The design's VM ioctls, or -ENOIOCTLCMD for the base's. */
export function kvm_per_vma_vm_ioctl(kvm: Kvm, cmd: number, arg: unknown, _current: FileOwner): number {
  if (cmd === KVM_PROTECT_MEMORY) return kvm_vm_ioctl_protect_memory(kvm);
  if (cmd === KVM_WRITE_GUEST) return kvm_vm_ioctl_write_guest(kvm, arg);
  return -ENOIOCTLCMD;
}
