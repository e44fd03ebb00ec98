/**
 * /dev/kvm and the VM and vCPU files (virt/kvm/kvm_main.c, with x86's answers from
 * arch/x86/kvm/x86.c): the system ioctls, capability queries, VM creation with type validation,
 * vCPU creation, and the VM ioctls of a VM with no memory yet.
 *
 * The host modelled is the one of /work/shared/ARCHITECTURE.md with vendor "none": KVM under PVM
 * (shadow paging, no SMM), only KVM_X86_DEFAULT_VM, no memory attributes, no pre-fault. Every
 * capability answer below is what test/traces/kvm-caps.kernel.jsonl recorded on that kernel.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  File, Inode, O_CLOEXEC, O_RDWR, S_IFCHR, anon_inode_getfile, open_fmode, type FileOperations, type FileOwner,
  type Kernel, type VmAreaStruct,
} from '@cocosim/mm';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_API_VERSION, KVM_CAP_CHECK_EXTENSION_VM,
  KVM_CAP_COALESCED_MMIO, KVM_CAP_DESTROY_MEMORY_REGION_WORKS, KVM_CAP_GUEST_MEMFD,
  KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_INTERNAL_ERROR_DATA, KVM_CAP_IRQCHIP,
  KVM_CAP_JOIN_MEMORY_REGIONS_WORKS, KVM_CAP_MAX_VCPU_ID, KVM_CAP_MEMORY_FAULT_INFO,
  KVM_CAP_NR_MEMSLOTS, KVM_CAP_READONLY_MEM, KVM_CAP_SET_TSS_ADDR, KVM_CAP_SYNC_MMU,
  KVM_CAP_USER_MEMORY, KVM_CAP_USER_MEMORY2, KVM_CAP_VM_TYPES, KVM_CHECK_EXTENSION,
  KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_GET_API_VERSION,
  KVM_GET_VCPU_MMAP_SIZE, KVM_MAX_VCPU_IDS, KVM_SET_NR_MMU_PAGES, KVM_SET_TSS_ADDR,
  KVM_X86_DEFAULT_VM,
} from './uapi.js';

/** KVM_USER_MEM_SLOTS (x86): KVM_MEM_SLOTS_NUM (32767) less the 3 private slots. */
export const KVM_USER_MEM_SLOTS = 32764;
/** KVM_MAX_VCPUS (arch/x86/include/asm/kvm_host.h). */
export const KVM_MAX_VCPUS = 1024;
/** KVM_COALESCED_MMIO_PAGE_OFFSET (x86): the page of the vCPU mapping holding the ring. */
export const KVM_COALESCED_MMIO_PAGE_OFFSET = 2;
/** KVM_MIN_ALLOC_MMU_PAGES (arch/x86/include/asm/kvm_host.h). */
export const KVM_MIN_ALLOC_MMU_PAGES = 64;
/** The VM types this host supports (kvm_caps.supported_vm_types): only the default VM. */
export const SUPPORTED_VM_TYPES = 1 << KVM_X86_DEFAULT_VM;

/**
 * kvm_vcpu_mmap_size: struct kvm_run's page, the PIO data page (KVM_PIO_PAGE_OFFSET 1) and the
 * coalesced MMIO ring (KVM_COALESCED_MMIO_PAGE_OFFSET 2) — 3 pages, 12288 as recorded.
 */
const VCPU_MMAP_SIZE = (KVM_COALESCED_MMIO_PAGE_OFFSET + 1) * PAGE_SIZE;

/** struct kvm_vcpu, as far as vCPU creation needs. */
export class KvmVcpu {
  constructor(readonly kvm: Kvm, readonly vcpu_id: number) {}
}

/** struct kvm: one VM. */
export class Kvm {
  /** kvm->created_vcpus: counts vCPUs created, whether or not their fds are still open. */
  created_vcpus = 0;
  readonly max_vcpus = KVM_MAX_VCPUS;
  /** kvm->vcpu_array, by vCPU id: vCPUs live as long as the VM. */
  readonly vcpus = new Map<number, KvmVcpu>();
  /** kvm->arch.irqchip_mode != KVM_IRQCHIP_NONE. */
  irqchip_in_kernel = false;
  /** kvm->arch.n_requested_mmu_pages. */
  n_requested_mmu_pages = 0;
  /** kvm->arch.tss_addr. */
  tss_addr = 0n;

  constructor(readonly kernel: Kernel, readonly type: number) {}
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
 * kvm_vm_ioctl_check_extension_generic() with x86's kvm_vm_ioctl_check_extension() answers for
 * this host. `kvm` is undefined on /dev/kvm; the answers are the same on both here (the VM-type
 * dependent ones, KVM_CAP_MEMORY_ATTRIBUTES and KVM_CAP_GUEST_MEMFD_FLAGS, depend only on
 * kvm_arch_has_private_mem(), false for the one type supported).
 */
export function kvm_vm_ioctl_check_extension_generic(_kvm: Kvm | undefined, arg: unknown): number {
  // `long arg`: a value outside the capability numbers (negative, 2^32) is no capability.
  const cap = ioctl_ulong(arg);
  if (cap === undefined || cap > BigInt(Number.MAX_SAFE_INTEGER)) return 0;
  switch (Number(cap)) {
    case KVM_CAP_USER_MEMORY:
    case KVM_CAP_USER_MEMORY2:
    case KVM_CAP_DESTROY_MEMORY_REGION_WORKS:
    case KVM_CAP_JOIN_MEMORY_REGIONS_WORKS:
    case KVM_CAP_INTERNAL_ERROR_DATA:
    case KVM_CAP_CHECK_EXTENSION_VM:
    case KVM_CAP_GUEST_MEMFD:
      return 1;
    case KVM_CAP_COALESCED_MMIO:
      return KVM_COALESCED_MMIO_PAGE_OFFSET;
    case KVM_CAP_NR_MEMSLOTS:
      return KVM_USER_MEM_SLOTS;
    case KVM_CAP_GUEST_MEMFD_FLAGS:
      // kvm_gmem_get_supported_flags(): INIT_SHARED unless the VM has private memory.
      return GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
    /*
     * KVM_CAP_MEMORY_ATTRIBUTES is 0 (no private memory on this host), KVM_CAP_MULTI_ADDRESS_SPACE
     * is not compiled in (no SMM: KVM_MAX_NR_ADDRESS_SPACES is 1), and KVM_CAP_PRE_FAULT_MEMORY is
     * tdp_enabled, false under PVM's shadow paging: all fall to the default, 0.
     */
    default:
      return kvm_x86_check_extension(Number(cap));
  }
}

/** kvm_vm_ioctl_check_extension() (arch/x86/kvm/x86.c), the capabilities the trace asks. */
function kvm_x86_check_extension(cap: number): number {
  switch (cap) {
    case KVM_CAP_IRQCHIP:
    case KVM_CAP_SET_TSS_ADDR:
    case KVM_CAP_SYNC_MMU:
    case KVM_CAP_READONLY_MEM:
    case KVM_CAP_IMMEDIATE_EXIT:
    case KVM_CAP_MEMORY_FAULT_INFO:
      return 1;
    case KVM_CAP_VM_TYPES:
      return SUPPORTED_VM_TYPES;
    case KVM_CAP_MAX_VCPU_ID:
      // kvm->arch.max_vcpu_ids once set by KVM_ENABLE_CAP (refused here), else the limit.
      return KVM_MAX_VCPU_IDS;
    default:
      return 0;
  }
}

/* ---- vCPU files ---- */

/**
 * kvm_vcpu_mmap(): any mapping is allowed (no dirty ring here). The vCPU pages themselves
 * (kvm_vcpu_fault) are not modelled: touching the mapping is SIGBUS, as beyond the vCPU pages.
 */
function kvm_vcpu_mmap(_file: File, v: unknown): number {
  (v as VmAreaStruct).vm_ops = {};
  return 0;
}

/** kvm_vcpu_fops: the vCPU ioctls (KVM_RUN...) are not modelled yet, so none answers. */
const kvm_vcpu_fops: FileOperations = {
  mmap: kvm_vcpu_mmap,
};

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
  const fd = current.files.install(anon_inode_getfile(kvm.kernel, kvm_vcpu_fops, vcpu, O_RDWR | O_CLOEXEC), true);
  if (fd < 0) return fd;
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

/**
 * KVM_ENABLE_CAP: kvm_vm_ioctl_enable_cap_generic() handles none of the capabilities this host
 * enables, and x86's kvm_vm_ioctl_enable_cap() refuses flags, then any capability it does not
 * know: -EINVAL after the struct is copied in (-EFAULT for an argument that is no struct).
 */
function kvm_vm_ioctl_enable_cap(arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  return -Errno.EINVAL;
}

/** kvm_vm_ioctl(), then kvm_arch_vm_ioctl(): an unknown request is -ENOTTY. */
function kvm_vm_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const kvm = file.private_data as Kvm;
  switch (cmd) {
    case KVM_CREATE_VCPU:
      return kvm_vm_ioctl_create_vcpu(kvm, arg, current);
    case KVM_ENABLE_CAP:
      return kvm_vm_ioctl_enable_cap(arg);
    case KVM_CHECK_EXTENSION:
      return kvm_vm_ioctl_check_extension_generic(kvm, arg);
    case KVM_SET_TSS_ADDR:
      return kvm_vm_ioctl_set_tss_addr(kvm, arg);
    case KVM_SET_NR_MMU_PAGES:
      return kvm_vm_ioctl_set_nr_mmu_pages(kvm, arg);
    case KVM_CREATE_IRQCHIP:
      return kvm_vm_ioctl_create_irqchip(kvm);
    default:
      return -Errno.ENOTTY;
  }
}

const kvm_vm_fops: FileOperations = {
  unlocked_ioctl: kvm_vm_ioctl,
};

/**
 * kvm_dev_ioctl_create_vm(): the fd is reserved first (EMFILE before a bad type), then
 * kvm_arch_init_vm() refuses a type outside KVM_CAP_VM_TYPES (kvm_is_vm_type_supported()).
 * The VM file is "anon_inode:kvm-vm", O_CLOEXEC.
 */
export function kvm_dev_ioctl_create_vm(kernel: Kernel, arg: unknown, current: FileOwner): number {
  const fd = current.files.get_unused_fd();
  if (fd < 0) return fd;
  const type = ioctl_ulong(arg);
  if (type === undefined || type >= 64n || (BigInt(SUPPORTED_VM_TYPES) & (1n << type)) === 0n) return -Errno.EINVAL;
  const kvm = new Kvm(kernel, Number(type));
  current.files.fd_install(fd, anon_inode_getfile(kernel, kvm_vm_fops, kvm, O_RDWR | O_CLOEXEC), true);
  return fd;
}

/**
 * kvm_dev_ioctl(): the system ioctls. Those taking no argument refuse one (-EINVAL); any other
 * request goes to kvm_arch_dev_ioctl(), whose x86 default is -EINVAL, not -ENOTTY.
 */
function kvm_dev_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const kernel = file.private_data as Kernel;
  switch (cmd) {
    case KVM_GET_API_VERSION:
      return arg === 0 || arg === 0n ? KVM_API_VERSION : -Errno.EINVAL;
    case KVM_CREATE_VM:
      return kvm_dev_ioctl_create_vm(kernel, arg, current);
    case KVM_CHECK_EXTENSION:
      return kvm_vm_ioctl_check_extension_generic(undefined, arg);
    case KVM_GET_VCPU_MMAP_SIZE:
      return arg === 0 || arg === 0n ? VCPU_MMAP_SIZE : -Errno.EINVAL;
    default:
      return -Errno.EINVAL;
  }
}

/** kvm_chardev_ops: no read, write or mmap (those answer EINVAL, EINVAL and ENODEV). */
const kvm_chardev_ops: FileOperations = {
  unlocked_ioctl: kvm_dev_ioctl,
};

/** The misc device's open (misc_open): a File of /dev/kvm whose private_data is the host's Kernel. */
export function kvm_dev_open(kernel: Kernel, flags: number): File {
  const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o666, {}, kvm_chardev_ops, kernel.next_mapping_id());
  const file = new File(inode, kvm_chardev_ops, flags, open_fmode(flags));
  file.private_data = kernel;
  return file;
}
