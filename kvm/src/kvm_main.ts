/**
 * /dev/kvm and the VM and vCPU files (virt/kvm/kvm_main.c, with x86's answers from
 * arch/x86/kvm/x86.c): the system ioctls, capability queries, VM creation with type validation
 * and the VM's lifetime, vCPU creation, and the dispatch of the VM and vCPU ioctls to the files
 * that implement them (kvm_memslots.ts, kvm_mem_attributes.ts, guest_memfd.ts, x86.ts, mmu/).
 *
 * With the vendor "none" the host is the one of ARCHITECTURE.md: KVM under PVM (shadow paging,
 * no SMM), only KVM_X86_DEFAULT_VM, no memory attributes, no pre-fault; every capability answer
 * is then what test/traces/kvm-caps.kernel.jsonl recorded on that kernel. A vendor table
 * (kvm_x86_ops.ts) adds VM types, memory attributes and TDP.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  File, GFP_KERNEL_ACCOUNT, Inode, O_CLOEXEC, O_RDWR, S_IFCHR, VM_EXEC, VM_FAULT_SIGBUS, VM_SHARED, __GFP_ZERO, anon_inode_getfile, get_page,
  noop_llseek, open_fmode, task_mm, type FileOperations, type FileOwner, type Kernel, type Task, type VmAreaStruct, type VmFault,
  type VmOperationsStruct,
} from '@cocosim/mm';
import { Kvm, KvmVcpu, KVM_USER_MEM_SLOTS } from './kvm_host.js';
import type { MergedKvmX86Ops } from './kvm_x86_ops.js';
import { kvm_free_memslots, kvm_vm_ioctl_set_memory_region, user_struct_field } from './kvm_memslots.js';
import { kvm_supported_mem_attributes, kvm_vm_ioctl_set_mem_attributes } from './kvm_mem_attributes.js';
import { kvm_gmem_create, kvm_gmem_get_supported_flags } from './guest_memfd.js';
import { call_kvm_hook, kvm_hook_check_extension, kvm_hook_vm_ioctl, kvm_hooks_providers } from './kvm_hooks.js';
import { kvm_mmu_init_vm, kvm_mmu_notifier_register, kvm_mmu_notifier_unregister, kvm_mmu_uninit_vm, kvm_vcpu_pre_fault_memory } from './mmu/mmu.js';
import { kvm_run_pio_page } from './kvm_run.js';
import {
  kvm_arch_vcpu_create, kvm_arch_vcpu_destroy, kvm_arch_vcpu_ioctl_get_regs, kvm_arch_vcpu_ioctl_run, kvm_arch_vcpu_ioctl_set_regs,
  kvm_vcpu_guest_access,
} from './x86.js';
import {
  KVM_API_VERSION, KVM_CAP_CHECK_EXTENSION_VM, KVM_CAP_COALESCED_MMIO, KVM_CAP_DESTROY_MEMORY_REGION_WORKS, KVM_CAP_EXIT_HYPERCALL, KVM_EXIT_HYPERCALL_VALID_MASK,
  KVM_CAP_GUEST_MEMFD, KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_INTERNAL_ERROR_DATA,
  KVM_CAP_IRQCHIP, KVM_CAP_JOIN_MEMORY_REGIONS_WORKS, KVM_CAP_MAX_VCPU_ID, KVM_CAP_MAX_VCPUS, KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_MEMORY_FAULT_INFO, KVM_CAP_NR_MEMSLOTS, KVM_CAP_PRE_FAULT_MEMORY, KVM_CAP_READONLY_MEM,
  KVM_CAP_SET_TSS_ADDR, KVM_CAP_SYNC_MMU, KVM_CAP_USER_MEMORY, KVM_CAP_USER_MEMORY2, KVM_CAP_VM_TYPES,
  KVM_CHECK_EXTENSION, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU, KVM_CREATE_VM,
  KVM_ENABLE_CAP, KVM_GET_API_VERSION, KVM_GET_REGS, KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION, KVM_SET_REGS, KVM_GET_VCPU_MMAP_SIZE, KVM_MAX_VCPU_IDS, KVM_PIO_PAGE_OFFSET, KVM_PRE_FAULT_MEMORY,
  KVM_RUN, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_NR_MMU_PAGES, KVM_SET_TSS_ADDR, KVM_SET_USER_MEMORY_REGION,
  KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
  KVM_DIRTY_LOG_MANUAL_CAPS, KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG, KVM_CAP_ENABLE_CAP_VM, KVM_CAP_HALT_POLL, KVM_CAP_NR_VCPUS,
  KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL, KVM_DIRTY_LOG_PAGE_OFFSET, KVM_RESET_DIRTY_RINGS,
  KVM_CAP_COALESCED_PIO, KVM_REGISTER_COALESCED_MMIO, KVM_UNREGISTER_COALESCED_MMIO,
} from './uapi.js';
import { kvm_vm_ioctl_register_coalesced_mmio, kvm_vm_ioctl_unregister_coalesced_mmio } from './coalesced_mmio.js';
import {
  KVM_DIRTY_RING_MAX_BYTES, kvm_dirty_ring_alloc, kvm_dirty_ring_free, kvm_dirty_ring_get_page, kvm_page_in_dirty_ring,
  kvm_vm_ioctl_enable_dirty_log_ring, kvm_vm_ioctl_reset_dirty_pages,
} from './dirty_ring.js';
import { kvm_vm_enable_manual_dirty_log_protect, kvm_vm_ioctl_clear_dirty_log, kvm_vm_ioctl_get_dirty_log } from './kvm_dirty_log.js';

/** KVM_MAX_VCPUS (arch/x86/include/asm/kvm_host.h). */
export const KVM_MAX_VCPUS = 1024;
/** KVM_COALESCED_MMIO_PAGE_OFFSET (x86): the page of the vCPU mapping holding the ring. */
export const KVM_COALESCED_MMIO_PAGE_OFFSET = 2;
/** KVM_MIN_ALLOC_MMU_PAGES (arch/x86/include/asm/kvm_host.h). */
export const KVM_MIN_ALLOC_MMU_PAGES = 64;

/**
 * The loaded KVM module of one host (kvm_init + kvm_x86_vendor_init): the vendor's merged
 * kvm_x86_ops and what it makes of kvm_caps. A VM's Kvm points back to it.
 */
export class KvmModule {
  /** The live VMs, in creation order (the kernel's vm_list): what the state digest and DEBUG_VM walk. */
  readonly vms = new Set<Kvm>();

  /**
   * @param guest_memfd CONFIG_KVM_GUEST_MEMFD (default true, as Linux 6.18 on x86-64 builds it):
   *   without it KVM_CAP_GUEST_MEMFD(_FLAGS) is 0, KVM_CREATE_GUEST_MEMFD is ENOTTY and
   *   KVM_MEM_GUEST_MEMFD is no valid memslot flag, as on kernels built without it.
   */
  constructor(readonly kernel: Kernel, readonly ops: MergedKvmX86Ops, readonly guest_memfd = true) {}

  /** kvm_caps.supported_vm_types: the default VM always. */
  get supported_vm_types(): number {
    return this.ops.supported_vm_types | (1 << KVM_X86_DEFAULT_VM);
  }

  /**
   * CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES: selected on x86 by KVM_SW_PROTECTED_VM, KVM_INTEL_TDX and
   * KVM_AMD_SEV, i.e. by any VM type beyond the default one (this machine's kernel has none).
   */
  get generic_memory_attributes(): boolean {
    return (this.supported_vm_types & ~(1 << KVM_X86_DEFAULT_VM)) !== 0;
  }
}

/**
 * kvm_vcpu_mmap_size: struct kvm_run's page, the PIO data page (KVM_PIO_PAGE_OFFSET 1) and the
 * coalesced MMIO ring (KVM_COALESCED_MMIO_PAGE_OFFSET 2) — 3 pages, 12288 as recorded.
 */
const VCPU_MMAP_SIZE = (KVM_COALESCED_MMIO_PAGE_OFFSET + 1) * PAGE_SIZE;

const kvm_modules = new WeakMap<Kvm, KvmModule>();

/** The module a VM was created by. */
export function kvm_module(kvm: Kvm): KvmModule {
  return kvm_modules.get(kvm)!;
}

/**
 * The `unsigned long arg` of an ioctl as C passes it: an integer of any sign wraps to 64 bits;
 * anything else (a struct, i.e. a pointer) has no integer value here.
 */
function ioctl_ulong(arg: unknown): bigint | undefined {
  if (typeof arg === 'number' && Number.isSafeInteger(arg)) return BigInt.asUintN(64, BigInt(arg));
  if (typeof arg === 'bigint' && arg >= -(2n ** 63n) && arg < 2n ** 64n) return BigInt.asUintN(64, arg);
  return undefined;
}

/**
 * kvm_vm_ioctl_check_extension_generic() with x86's kvm_vm_ioctl_check_extension(). `kvm` is
 * undefined on /dev/kvm ("what KVM supports at all"); on a VM fd the VM-type dependent answers
 * (KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_GUEST_MEMFD_FLAGS) are the VM's.
 */
export function kvm_vm_ioctl_check_extension_generic(module: KvmModule, kvm: Kvm | undefined, arg: unknown): number {
  // `long arg`: a value outside the capability numbers (negative, 2^32) is no capability.
  const cap = ioctl_ulong(arg);
  if (cap === undefined || cap > BigInt(Number.MAX_SAFE_INTEGER)) return 0;
  const design = kvm_hook_check_extension(module.kernel, kvm, Number(cap));
  if (design !== undefined) return design;
  switch (Number(cap)) {
    case KVM_CAP_USER_MEMORY:
    case KVM_CAP_USER_MEMORY2:
    case KVM_CAP_DESTROY_MEMORY_REGION_WORKS:
    case KVM_CAP_JOIN_MEMORY_REGIONS_WORKS:
    case KVM_CAP_INTERNAL_ERROR_DATA:
    case KVM_CAP_CHECK_EXTENSION_VM:
    case KVM_CAP_ENABLE_CAP_VM:
    case KVM_CAP_HALT_POLL:
      return 1;
    case KVM_CAP_GUEST_MEMFD:
      return module.guest_memfd ? 1 : 0;
    case KVM_CAP_COALESCED_MMIO:
      return KVM_COALESCED_MMIO_PAGE_OFFSET;
    case KVM_CAP_COALESCED_PIO:
      return 1;
    case KVM_CAP_NR_MEMSLOTS:
      return KVM_USER_MEM_SLOTS;
    case KVM_CAP_MEMORY_ATTRIBUTES:
      // Only with CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES; 0 otherwise (this machine's kernel).
      return module.generic_memory_attributes ? kvm_supported_mem_attributes(kvm) : 0;
    case KVM_CAP_GUEST_MEMFD_FLAGS:
      return module.guest_memfd ? kvm_gmem_get_supported_flags(kvm) : 0;
    case KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2:
      return KVM_DIRTY_LOG_MANUAL_CAPS;
    case KVM_CAP_DIRTY_LOG_RING:
    case KVM_CAP_DIRTY_LOG_RING_ACQ_REL:
      return KVM_DIRTY_RING_MAX_BYTES;
    /* KVM_CAP_MULTI_ADDRESS_SPACE is not compiled in (no SMM: KVM_MAX_NR_ADDRESS_SPACES is 1): 0. */
    default:
      return kvm_x86_check_extension(module, Number(cap));
  }
}

/** kvm_vm_ioctl_check_extension() (arch/x86/kvm/x86.c), the capabilities the traces ask. */
function kvm_x86_check_extension(module: KvmModule, cap: number): number {
  switch (cap) {
    case KVM_CAP_IRQCHIP:
    case KVM_CAP_SET_TSS_ADDR:
    case KVM_CAP_SYNC_MMU:
    case KVM_CAP_READONLY_MEM:
    case KVM_CAP_IMMEDIATE_EXIT:
    case KVM_CAP_MEMORY_FAULT_INFO:
      return 1;
    case KVM_CAP_VM_TYPES:
      return module.supported_vm_types;
    case KVM_CAP_EXIT_HYPERCALL:
      return KVM_EXIT_HYPERCALL_VALID_MASK;
    case KVM_CAP_PRE_FAULT_MEMORY:
      return module.ops.tdp_enabled ? 1 : 0;
    case KVM_CAP_MAX_VCPU_ID:
      // kvm->arch.max_vcpu_ids once set by KVM_ENABLE_CAP (refused here), else the limit.
      return KVM_MAX_VCPU_IDS;
    case KVM_CAP_MAX_VCPUS:
      // KVM_MAX_VCPUS (a VM's kvm->max_vcpus is the same here): 1024 on Linux 6.18.44.
      return KVM_MAX_VCPUS;
    case KVM_CAP_NR_VCPUS:
      return Math.min(module.kernel.num_online_cpus, KVM_MAX_VCPUS);
    default:
      // The vendor's capabilities (arm64 KVM_CAP_ARM_RME...): 0 when it has none.
      return module.ops.check_extension(cap);
  }
}

/* ---- VM lifetime (kvm_get_kvm / kvm_put_kvm / kvm_destroy_vm) ---- */

/** kvm_get_kvm(): a file (guest_memfd, vCPU) keeps the VM alive. */
export function kvm_get_kvm(kvm: Kvm): void {
  kvm.users_count++;
}

/** kvm_put_kvm(): the last reference destroys the VM. */
export function kvm_put_kvm(kvm: Kvm): void {
  if (--kvm.users_count === 0) kvm_destroy_vm(kvm);
}

/**
 * kvm_destroy_vm(): unregister from the mm's notifiers, tear down the MMU, let the vendor
 * reclaim its state, free the memslots (unbinding guest_memfd ranges).
 */
function kvm_destroy_vm(kvm: Kvm): void {
  kvm_mmu_notifier_unregister(kvm);
  call_kvm_hook(kvm.kernel, 'vm_destroy', 0, kvm);
  kvm.x86_ops.vm_destroy(kvm);
  /* kvm_destroy_vcpus() -> kvm_vcpu_destroy(): each vCPU's pages; then kvm_coalesced_mmio_free() */
  for (const vcpu of kvm.vcpus.values()) kvm_vcpu_destroy(vcpu);
  kvm_coalesced_mmio_free(kvm);
  kvm_mmu_uninit_vm(kvm);
  kvm_free_memslots(kvm);
  kvm.vm_dead = true;
  kvm_module(kvm).vms.delete(kvm);
}

/** kvm_vcpu_destroy(): kvm_arch_vcpu_destroy(), then the run page. */
function kvm_vcpu_destroy(vcpu: KvmVcpu): void {
  kvm_dirty_ring_free(vcpu);
  kvm_arch_vcpu_destroy(vcpu);
  if (vcpu.run_page >= 0) vcpu.kvm.kernel.page_alloc.__free_page(vcpu.run_page);
  vcpu.run_page = -1;
}

/** kvm_coalesced_mmio_init() (virt/kvm/coalesced_mmio.c): the ring's page, zeroed; -ENOMEM. */
function kvm_coalesced_mmio_init(kvm: Kvm): number {
  const page = kvm.kernel.page_alloc.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  if (page < 0) return -Errno.ENOMEM;
  kvm.coalesced_mmio_ring = page;
  return 0;
}

/** kvm_coalesced_mmio_free(). */
function kvm_coalesced_mmio_free(kvm: Kvm): void {
  if (kvm.coalesced_mmio_ring >= 0) kvm.kernel.page_alloc.__free_page(kvm.coalesced_mmio_ring);
  kvm.coalesced_mmio_ring = -1;
}

/* ---- vCPU files ---- */

/**
 * kvm_vcpu_fault(): page 0 of the mapping is struct kvm_run, page KVM_PIO_PAGE_OFFSET the port
 * I/O data, page KVM_COALESCED_MMIO_PAGE_OFFSET the VM's coalesced MMIO ring, the pages from
 * KVM_DIRTY_LOG_PAGE_OFFSET the vCPU's dirty ring; any other offset is x86's
 * kvm_arch_vcpu_fault(): SIGBUS. The page is the kernel's own,
 * handed out with a reference and mapped like a file page (a private mapping's write copies it).
 */
function kvm_vcpu_fault(vmf: VmFault): number {
  const vcpu = vmf.vma.vm_file!.private_data as KvmVcpu;
  let page: number;
  if (vmf.pgoff === 0) page = vcpu.run_page;
  else if (vmf.pgoff === KVM_PIO_PAGE_OFFSET) page = kvm_run_pio_page(vcpu);
  else if (vmf.pgoff === KVM_COALESCED_MMIO_PAGE_OFFSET) page = vcpu.kvm.coalesced_mmio_ring;
  else if (kvm_page_in_dirty_ring(vcpu.kvm, vmf.pgoff)) page = kvm_dirty_ring_get_page(vcpu, vmf.pgoff - KVM_DIRTY_LOG_PAGE_OFFSET);
  else return VM_FAULT_SIGBUS;
  if (page < 0) return VM_FAULT_SIGBUS;
  get_page(vcpu.kvm.kernel.store, page);
  vmf.page = page as VmFault['page'];
  return 0;
}

/** kvm_vcpu_vm_ops. */
const kvm_vcpu_vm_ops: VmOperationsStruct = {
  fault: kvm_vcpu_fault,
  driver_pages: true,
};

/**
 * kvm_vcpu_mmap(): a mapping whose first or last page is one of the dirty ring's must be shared
 * and not executable (-EINVAL); any other is allowed.
 */
function kvm_vcpu_mmap(file: File, v: unknown): number {
  const vma = v as VmAreaStruct;
  const kvm = (file.private_data as KvmVcpu).kvm;
  const pages = vma.end_vpn - vma.start_vpn;
  if ((kvm_page_in_dirty_ring(kvm, vma.vm_pgoff) || kvm_page_in_dirty_ring(kvm, vma.vm_pgoff + pages - 1)) &&
    (vma.vm_flags & VM_EXEC || !(vma.vm_flags & VM_SHARED))) {
    return -Errno.EINVAL;
  }
  vma.vm_ops = kvm_vcpu_vm_ops;
  return 0;
}

/**
 * kvm_vcpu_ioctl(): -EIO from another mm or on a dead VM, -EINVAL for a request of another
 * ioctl type (_IOC_TYPE != KVMIO), then the vCPU ioctls; the rest go to kvm_arch_vcpu_ioctl(),
 * whose default is -EINVAL.
 */
function kvm_vcpu_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const vcpu = file.private_data as KvmVcpu;
  const kvm = vcpu.kvm;
  if (task_mm(current as Task) !== kvm.mm || kvm.vm_dead) return -Errno.EIO;
  if (Math.floor(cmd / 256) % 256 !== 0xae) return -Errno.EINVAL;
  switch (cmd) {
    case KVM_RUN:
      if (arg !== 0 && arg !== 0n) return -Errno.EINVAL;
      return kvm_arch_vcpu_ioctl_run(vcpu);
    case KVM_PRE_FAULT_MEMORY:
      return kvm_vcpu_pre_fault_memory(vcpu, arg);
    case KVM_GET_REGS:
      return kvm_arch_vcpu_ioctl_get_regs(vcpu, arg);
    case KVM_SET_REGS:
      return kvm_arch_vcpu_ioctl_set_regs(vcpu, arg);
    case KVM_MEMORY_ENCRYPT_OP:
      // kvm_arch_vcpu_ioctl(): -ENOTTY without a vendor vcpu_mem_enc_ioctl (the merged default).
      return kvm.x86_ops.vcpu_mem_enc_ioctl(vcpu, arg);
    default:
      return -Errno.EINVAL;
  }
}

/** kvm_vcpu_release(): the vCPU lives on with the VM; the file's VM reference goes. */
function kvm_vcpu_release(_inode: Inode, file: File): void {
  kvm_put_kvm((file.private_data as KvmVcpu).kvm);
}

const kvm_vcpu_fops: FileOperations = {
  unlocked_ioctl: kvm_vcpu_ioctl,
  mmap: kvm_vcpu_mmap,
  release: kvm_vcpu_release,
  llseek: noop_llseek,
  guest_access: kvm_vcpu_guest_access,
};

/** Whether `file` is a vCPU file (the simulator's guest accesses run on one). */
export function file_is_kvm_vcpu(file: File): boolean {
  return file.f_op === kvm_vcpu_fops;
}

/**
 * kvm_vm_ioctl_create_vcpu(): the id is an unsigned long below KVM_MAX_VCPU_IDS, at most
 * max_vcpus per VM, unique; the fd is O_CLOEXEC (create_vcpu_fd).
 */
export function kvm_vm_ioctl_create_vcpu(kvm: Kvm, arg: unknown, current: FileOwner): number {
  const id = ioctl_ulong(arg);
  if (id === undefined || id >= BigInt(KVM_MAX_VCPU_IDS)) return -Errno.EINVAL;
  if (kvm.created_vcpus >= kvm.max_vcpus) return -Errno.EINVAL;
  const vcpu_id = Number(id);
  if (kvm.vcpus.has(vcpu_id)) return -Errno.EEXIST;
  const vcpu = new KvmVcpu(kvm, vcpu_id);
  const page_alloc = kvm.kernel.page_alloc;
  const run = page_alloc.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  if (run < 0) return -Errno.ENOMEM;
  vcpu.run_page = run;
  const r = kvm_arch_vcpu_create(vcpu);
  if (r < 0) {
    page_alloc.__free_page(run);
    return r;
  }
  const ring = kvm_dirty_ring_alloc(vcpu);
  if (ring < 0) {
    kvm_vcpu_destroy(vcpu);
    return ring;
  }
  const fd = current.files.install(anon_inode_getfile(kvm.kernel, kvm_vcpu_fops, vcpu, O_RDWR | O_CLOEXEC), true);
  if (fd < 0) {
    kvm_vcpu_destroy(vcpu);
    return fd;
  }
  kvm_get_kvm(kvm);
  kvm.created_vcpus++;
  kvm.vcpus.set(vcpu_id, vcpu);
  return fd;
}

/* ---- VM files ---- */

/** kvm_vm_ioctl_set_tss_addr() (x86): the 3-page TSS must sit below 4 GiB. */
function kvm_vm_ioctl_set_tss_addr(kvm: Kvm, arg: unknown): number {
  const addr = ioctl_ulong(arg);
  if (addr === undefined || addr > BigInt(2 ** 32 - 3 * PAGE_SIZE)) return -Errno.EINVAL;
  kvm.tss_addr = addr;
  return 0;
}

/** kvm_vm_ioctl_set_nr_mmu_pages() (x86). */
function kvm_vm_ioctl_set_nr_mmu_pages(kvm: Kvm, arg: unknown): number {
  const nr = ioctl_ulong(arg);
  if (nr === undefined || nr < BigInt(KVM_MIN_ALLOC_MMU_PAGES)) return -Errno.EINVAL;
  kvm.n_requested_mmu_pages = Number(nr > 2n ** 32n ? 2n ** 32n : nr);
  return 0;
}

/** The KVM_CREATE_IRQCHIP case of kvm_arch_vm_ioctl(): once, and before any vCPU. */
function kvm_vm_ioctl_create_irqchip(kvm: Kvm): number {
  if (kvm.irqchip_in_kernel) return -Errno.EEXIST;
  if (kvm.created_vcpus) return -Errno.EINVAL;
  kvm.irqchip_in_kernel = true;
  return 0;
}

/** An integer field of a copied-in struct as the C type `u64` holds it (missing: 0, the struct was zeroed). */
function struct_u64(v: unknown): bigint | undefined {
  if (v === undefined) return 0n;
  return ioctl_ulong(v);
}

/**
 * KVM_ENABLE_CAP (kvm_vm_ioctl_enable_cap_generic(), then x86's kvm_vm_ioctl_enable_cap()):
 * -EFAULT for an argument that is no struct; flags must be 0; generic: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
 * (kvm_dirty_log.ts) and KVM_CAP_HALT_POLL (args[0] an unsigned int); x86: KVM_CAP_EXIT_HYPERCALL
 * takes a mask of KVM_EXIT_HYPERCALL_VALID_MASK; any other capability this host does not enable is
 * -EINVAL (the vendor's own, if it has any).
 */
function kvm_vm_ioctl_enable_cap(kvm: Kvm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const cap = arg as { cap?: unknown; flags?: unknown; args?: unknown };
  /* struct kvm_enable_cap { __u32 cap; __u32 flags; __u64 args[4]; }: the u32 fields keep their low 32 bits */
  const nr = user_struct_field(cap, 'cap', 32);
  const flags = user_struct_field(cap, 'flags', 32);
  if (nr === undefined || flags === undefined) return -Errno.EFAULT;
  // The vendor's capabilities read their own flags and args (arm64 KVM_CAP_ARM_RME ->
  // kvm_realm_enable_cap(); ACK's KVM_CAP_ARM_PROTECTED_VM takes its subcommand in flags); -EINVAL without.
  const ring = nr === BigInt(KVM_CAP_DIRTY_LOG_RING) || nr === BigInt(KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
  const generic = ring || nr === BigInt(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) || nr === BigInt(KVM_CAP_HALT_POLL);
  if (!generic && nr !== BigInt(KVM_CAP_EXIT_HYPERCALL)) return kvm.x86_ops.vm_enable_cap(kvm, nr, flags, Array.isArray(cap.args) ? cap.args : []);
  const args0 = struct_u64(Array.isArray(cap.args) ? cap.args[0] : undefined);
  if (args0 === undefined) return -Errno.EFAULT;
  if (nr === BigInt(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)) return kvm_vm_enable_manual_dirty_log_protect(kvm, flags, args0);
  /* the ring's size, whatever the flags */
  if (ring) return kvm_vm_ioctl_enable_dirty_log_ring(kvm, args0);
  if (generic) {
    /* KVM_CAP_HALT_POLL: the VM's own halt-polling limit, an unsigned int of nanoseconds */
    if (flags !== 0n || args0 > 0xffffffffn) return -Errno.EINVAL;
    kvm.max_halt_poll_ns = Number(args0);
    return 0;
  }
  if (flags !== 0n) return -Errno.EINVAL;
  if ((args0 & ~BigInt(KVM_EXIT_HYPERCALL_VALID_MASK)) !== 0n) return -Errno.EINVAL;
  kvm.arch.hypercall_exit_enabled = Number(args0);
  return 0;
}

/**
 * kvm_vm_ioctl(): -EIO from another mm or on a dead VM, then the generic VM ioctls, then
 * kvm_arch_vm_ioctl(); an unknown request is -ENOTTY. KVM_SET_MEMORY_ATTRIBUTES exists only
 * with CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES (-ENOTTY on this machine's kernel).
 */
function kvm_vm_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const kvm = file.private_data as Kvm;
  const module = kvm_module(kvm);
  if (task_mm(current as Task) !== kvm.mm || kvm.vm_dead) return -Errno.EIO;
  const design = kvm_hook_vm_ioctl(kvm, cmd, arg, current);
  if (design !== undefined) return design;
  switch (cmd) {
    case KVM_CREATE_VCPU:
      return kvm_vm_ioctl_create_vcpu(kvm, arg, current);
    case KVM_ENABLE_CAP:
      return kvm_vm_ioctl_enable_cap(kvm, arg);
    case KVM_SET_USER_MEMORY_REGION2:
    case KVM_SET_USER_MEMORY_REGION:
      return kvm_vm_ioctl_set_memory_region(kvm, cmd === KVM_SET_USER_MEMORY_REGION2, arg, current);
    case KVM_GET_DIRTY_LOG:
      return kvm_vm_ioctl_get_dirty_log(kvm, arg);
    case KVM_CLEAR_DIRTY_LOG:
      return kvm_vm_ioctl_clear_dirty_log(kvm, arg);
    case KVM_RESET_DIRTY_RINGS:
      return kvm_vm_ioctl_reset_dirty_pages(kvm);
    case KVM_REGISTER_COALESCED_MMIO:
      return kvm_vm_ioctl_register_coalesced_mmio(kvm, arg);
    case KVM_UNREGISTER_COALESCED_MMIO:
      return kvm_vm_ioctl_unregister_coalesced_mmio(kvm, arg);
    case KVM_CHECK_EXTENSION:
      return kvm_vm_ioctl_check_extension_generic(module, kvm, arg);
    case KVM_SET_MEMORY_ATTRIBUTES:
      if (!module.generic_memory_attributes) return -Errno.ENOTTY;
      return kvm_vm_ioctl_set_mem_attributes(kvm, arg);
    case KVM_CREATE_GUEST_MEMFD:
      // Without CONFIG_KVM_GUEST_MEMFD the case is not compiled: kvm_arch_vm_ioctl()'s -ENOTTY.
      if (!module.guest_memfd) return -Errno.ENOTTY;
      return kvm_gmem_create(kvm, arg, current);
    case KVM_SET_TSS_ADDR:
      return kvm_vm_ioctl_set_tss_addr(kvm, arg);
    case KVM_SET_NR_MMU_PAGES:
      return kvm_vm_ioctl_set_nr_mmu_pages(kvm, arg);
    case KVM_CREATE_IRQCHIP:
      return kvm_vm_ioctl_create_irqchip(kvm);
    case KVM_MEMORY_ENCRYPT_OP:
      // kvm_arch_vm_ioctl(): -ENOTTY without a vendor mem_enc_ioctl (the merged default).
      return kvm.x86_ops.mem_enc_ioctl(kvm, arg);
    case KVM_MEMORY_ENCRYPT_REG_REGION:
    case KVM_MEMORY_ENCRYPT_UNREG_REGION:
      // kvm_arch_vm_ioctl() copies struct kvm_enc_region in (-EFAULT) before it asks the vendor (-ENOTTY without one).
      if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
      return cmd === KVM_MEMORY_ENCRYPT_REG_REGION ? kvm.x86_ops.mem_enc_register_region(kvm, arg) : kvm.x86_ops.mem_enc_unregister_region(kvm, arg);
    default:
      return -Errno.ENOTTY;
  }
}

/** kvm_vm_release(): the VM file's reference goes. */
function kvm_vm_release(_inode: Inode, file: File): void {
  kvm_put_kvm(file.private_data as Kvm);
}

const kvm_vm_fops: FileOperations = {
  unlocked_ioctl: kvm_vm_ioctl,
  release: kvm_vm_release,
  llseek: noop_llseek,
};

/** Whether `file` is a VM file. */
export function file_is_kvm(file: File): boolean {
  return file.f_op === kvm_vm_fops;
}

/**
 * kvm_create_vm() / kvm_arch_init_vm(): has_private_mem for SW_PROTECTED, pre-fault for the
 * types whose memory KVM controls, the design's per-VM structures (vm_init hook), the MMU, the
 * vendor's vm_init, then the mm's MMU notifier.
 */
function kvm_create_vm(module: KvmModule, mm: ReturnType<typeof task_mm>, type: number): Kvm | number {
  const kvm = new Kvm(module.kernel, mm, type, module.ops);
  kvm_modules.set(kvm, module);
  kvm.arch.has_private_mem = type === KVM_X86_SW_PROTECTED_VM;
  kvm.arch.pre_fault_allowed = type === KVM_X86_DEFAULT_VM || type === KVM_X86_SW_PROTECTED_VM;
  for (const h of kvm_hooks_providers(module.kernel)) h.vm_init?.(kvm);
  kvm_mmu_init_vm(kvm);
  const r = kvm.x86_ops.vm_init(kvm);
  if (r < 0) {
    kvm_mmu_uninit_vm(kvm);
    return r;
  }
  kvm_mmu_notifier_register(kvm);
  const ring = kvm_coalesced_mmio_init(kvm);
  if (ring < 0) {
    kvm_mmu_notifier_unregister(kvm);
    kvm.x86_ops.vm_destroy(kvm);
    kvm_mmu_uninit_vm(kvm);
    return ring;
  }
  module.vms.add(kvm);
  return kvm;
}

/**
 * kvm_dev_ioctl_create_vm(): the fd is reserved first (EMFILE before a bad type), then
 * kvm_arch_init_vm() refuses a type outside KVM_CAP_VM_TYPES (kvm_is_vm_type_supported()).
 * The VM file is "anon_inode:kvm-vm", O_CLOEXEC.
 */
export function kvm_dev_ioctl_create_vm(module: KvmModule, arg: unknown, current: FileOwner): number {
  const fd = current.files.get_unused_fd();
  if (fd < 0) return fd;
  const type = ioctl_ulong(arg);
  // The architecture's reading of the argument (x86: the index itself; arm64: IPA size and machine type).
  const vm_type = type === undefined ? -Errno.EINVAL : module.ops.vm_type_decode(type);
  if (vm_type < 0 || vm_type >= 32 || (module.supported_vm_types & (1 << vm_type)) === 0) return -Errno.EINVAL;
  const kvm = kvm_create_vm(module, task_mm(current as Task), vm_type);
  if (typeof kvm === 'number') return kvm;
  current.files.fd_install(fd, anon_inode_getfile(module.kernel, kvm_vm_fops, kvm, O_RDWR | O_CLOEXEC), true);
  return fd;
}

/**
 * kvm_dev_ioctl(): the system ioctls. Those taking no argument refuse one (-EINVAL); any other
 * request goes to kvm_arch_dev_ioctl(), whose x86 default is -EINVAL, not -ENOTTY.
 */
function kvm_dev_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const module = file.private_data as KvmModule;
  switch (cmd) {
    case KVM_GET_API_VERSION:
      return arg === 0 || arg === 0n ? KVM_API_VERSION : -Errno.EINVAL;
    case KVM_CREATE_VM:
      return kvm_dev_ioctl_create_vm(module, arg, current);
    case KVM_CHECK_EXTENSION:
      return kvm_vm_ioctl_check_extension_generic(module, undefined, arg);
    case KVM_GET_VCPU_MMAP_SIZE:
      return arg === 0 || arg === 0n ? VCPU_MMAP_SIZE : -Errno.EINVAL;
    default:
      return -Errno.EINVAL;
  }
}

/** kvm_chardev_ops: no read, write or mmap (those answer EINVAL, EINVAL and ENODEV). */
const kvm_chardev_ops: FileOperations = {
  unlocked_ioctl: kvm_dev_ioctl,
  llseek: noop_llseek,
};

/** The misc device's open (misc_open): a File of /dev/kvm whose private_data is the module. */
export function kvm_dev_open(module: KvmModule, flags: number): File {
  const kernel = module.kernel;
  const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o666, {}, kvm_chardev_ops, kernel.next_mapping_id());
  const file = new File(inode, kvm_chardev_ops, flags, open_fmode(flags));
  file.private_data = module;
  return file;
}
