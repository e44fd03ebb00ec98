/**
 * The KVM user-space API: include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h. Request
 * numbers are computed as the C macros compute them (include/uapi/asm-generic/ioctl.h); the
 * pre-6.8 ones agree with what gcc printed from the host's <linux/kvm.h> (KVM_CREATE_VM 0xae01,
 * KVM_ENABLE_CAP 0x4068aea3, KVM_SET_USER_MEMORY_REGION 0x4020ae46).
 */

/* include/uapi/asm-generic/ioctl.h */
const _IOC_NRSHIFT = 0;
const _IOC_TYPESHIFT = 8;
const _IOC_SIZESHIFT = 16;
const _IOC_DIRSHIFT = 30;
const _IOC_NONE = 0;
const _IOC_WRITE = 1;
const _IOC_READ = 2;

/** _IOC(): arithmetic rather than `<<`, since a request with _IOC_READ exceeds 2^31. */
function _IOC(dir: number, type: number, nr: number, size: number): number {
  return dir * 2 ** _IOC_DIRSHIFT + size * 2 ** _IOC_SIZESHIFT + type * 2 ** _IOC_TYPESHIFT + nr * 2 ** _IOC_NRSHIFT;
}
const _IO = (type: number, nr: number): number => _IOC(_IOC_NONE, type, nr, 0);
const _IOW = (type: number, nr: number, size: number): number => _IOC(_IOC_WRITE, type, nr, size);
const _IOWR = (type: number, nr: number, size: number): number => _IOC(_IOC_READ + _IOC_WRITE, type, nr, size);

export const KVMIO = 0xae;

/** KVM_API_VERSION: what KVM_GET_API_VERSION returns. */
export const KVM_API_VERSION = 12;

/* sizeof() of the structs the requests carry (kernel-uapi.md §1.1; kvm_enable_cap by gcc). */
const SIZEOF_KVM_USERSPACE_MEMORY_REGION = 32;
const SIZEOF_KVM_USERSPACE_MEMORY_REGION2 = 160;
const SIZEOF_KVM_ENABLE_CAP = 104;
const SIZEOF_KVM_MEMORY_ATTRIBUTES = 32;
const SIZEOF_KVM_CREATE_GUEST_MEMFD = 64;
const SIZEOF_KVM_PRE_FAULT_MEMORY = 64;
/** struct kvm_regs: 18 u64 registers (arch/x86/include/uapi/asm/kvm.h). */
const SIZEOF_KVM_REGS = 144;
const SIZEOF_KVM_MEMORY_ATTRIBUTES2 = 128;
/** struct kvm_dirty_log { __u32 slot; __u32 padding1; union { void __user *dirty_bitmap; __u64 padding2; }; }. */
const SIZEOF_KVM_DIRTY_LOG = 16;
/** struct kvm_clear_dirty_log { __u32 slot; __u32 num_pages; __u64 first_page; union { dirty_bitmap; padding2; }; }. */
const SIZEOF_KVM_CLEAR_DIRTY_LOG = 24;

/* ioctls for /dev/kvm */
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);

/* ioctls for VM fds */
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
export const KVM_GET_DIRTY_LOG = _IOW(KVMIO, 0x42, SIZEOF_KVM_DIRTY_LOG);
export const KVM_SET_NR_MMU_PAGES = _IO(KVMIO, 0x44);
/** Removed from the kernel (2019); the number stays reserved and answers ENOTTY. */
export const KVM_GET_NR_MMU_PAGES = _IO(KVMIO, 0x45);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION);
export const KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
export const KVM_SET_USER_MEMORY_REGION2 = _IOW(KVMIO, 0x49, SIZEOF_KVM_USERSPACE_MEMORY_REGION2);
/** struct kvm_coalesced_mmio_zone { __u64 addr; __u32 size; union { __u32 pad; __u32 pio; }; }: 16 bytes. */
export const KVM_REGISTER_COALESCED_MMIO = _IOW(KVMIO, 0x67, 16);
export const KVM_UNREGISTER_COALESCED_MMIO = _IOW(KVMIO, 0x68, 16);
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
export const KVM_ENABLE_CAP = _IOW(KVMIO, 0xa3, SIZEOF_KVM_ENABLE_CAP);
/** KVM_MEMORY_ENCRYPT_OP: _IOWR(KVMIO, 0xba, unsigned long), the vendor's launch commands (SEV, TDX). */
export const KVM_MEMORY_ENCRYPT_OP = _IOWR(KVMIO, 0xba, 8);
/**
 * KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION: _IOR(KVMIO, 0xbb/0xbc, struct kvm_enc_region
 * { __u64 addr; __u64 size; }), by arithmetic since _IOC_READ exceeds 2^31.
 */
export const KVM_MEMORY_ENCRYPT_REG_REGION = 2 * 2 ** 30 + 16 * 2 ** 16 + KVMIO * 2 ** 8 + 0xbb;
export const KVM_MEMORY_ENCRYPT_UNREG_REGION = 2 * 2 ** 30 + 16 * 2 ** 16 + KVMIO * 2 ** 8 + 0xbc;
export const KVM_SET_MEMORY_ATTRIBUTES = _IOW(KVMIO, 0xd2, SIZEOF_KVM_MEMORY_ATTRIBUTES);
export const KVM_CREATE_GUEST_MEMFD = _IOWR(KVMIO, 0xd4, SIZEOF_KVM_CREATE_GUEST_MEMFD);
export const KVM_CLEAR_DIRTY_LOG = _IOWR(KVMIO, 0xc0, SIZEOF_KVM_CLEAR_DIRTY_LOG);
export const KVM_RESET_DIRTY_RINGS = _IO(KVMIO, 0xc7);
/**
 * Proposed, not merged ("guest_memfd: In-place conversion support" v7/v8): a guest_memfd ioctl
 * (0xc080aed2). Mainline answers ENOTTY on a guest_memfd fd; the in-place design implements it.
 */
export const KVM_SET_MEMORY_ATTRIBUTES2 = _IOWR(KVMIO, 0xd2, SIZEOF_KVM_MEMORY_ATTRIBUTES2);

/* ioctls for vCPU fds */
export const KVM_RUN = _IO(KVMIO, 0x80);
export const KVM_GET_REGS = _IOC(_IOC_READ, KVMIO, 0x81, SIZEOF_KVM_REGS);
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, SIZEOF_KVM_REGS);
export const KVM_PRE_FAULT_MEMORY = _IOWR(KVMIO, 0xd5, SIZEOF_KVM_PRE_FAULT_MEMORY);

/* KVM_CHECK_EXTENSION capabilities */
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_COALESCED_MMIO = 15;
export const KVM_CAP_SYNC_MMU = 16;
export const KVM_CAP_DESTROY_MEMORY_REGION_WORKS = 21;
export const KVM_CAP_JOIN_MEMORY_REGIONS_WORKS = 30;
export const KVM_CAP_INTERNAL_ERROR_DATA = 40;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_CHECK_EXTENSION_VM = 105;
export const KVM_CAP_ENABLE_CAP_VM = 98;
export const KVM_CAP_MULTI_ADDRESS_SPACE = 118;
export const KVM_CAP_MAX_VCPU_ID = 128;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_COALESCED_PIO = 162;
export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168;
export const KVM_CAP_HALT_POLL = 182;
export const KVM_CAP_DIRTY_LOG_RING = 192;
export const KVM_CAP_DIRTY_LOG_RING_ACQ_REL = 223;
export const KVM_CAP_EXIT_HYPERCALL = 201;
export const KVM_CAP_USER_MEMORY2 = 231;
export const KVM_CAP_MEMORY_FAULT_INFO = 232;
export const KVM_CAP_MEMORY_ATTRIBUTES = 233;
export const KVM_CAP_GUEST_MEMFD = 234;
export const KVM_CAP_VM_TYPES = 235;
export const KVM_CAP_PRE_FAULT_MEMORY = 236;
export const KVM_CAP_GUEST_MEMFD_FLAGS = 244;

/* KVM_CREATE_VM types (arch/x86/include/uapi/asm/kvm.h) */
export const KVM_X86_DEFAULT_VM = 0;
export const KVM_X86_SW_PROTECTED_VM = 1;
export const KVM_X86_SEV_VM = 2;
export const KVM_X86_SEV_ES_VM = 3;
export const KVM_X86_SNP_VM = 4;
export const KVM_X86_TDX_VM = 5;

/* struct kvm_userspace_memory_region(2) flags */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2's args[0] bits */
export const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 1 << 0;
export const KVM_DIRTY_LOG_INITIALLY_SET = 1 << 1;
/* struct kvm_dirty_gfn flags; the ring's first page in a vCPU mapping (x86) */
export const KVM_DIRTY_GFN_F_DIRTY = 1 << 0;
export const KVM_DIRTY_GFN_F_RESET = 1 << 1;
export const KVM_DIRTY_LOG_PAGE_OFFSET = 64;
/** KVM_DIRTY_LOG_MANUAL_CAPS (include/linux/kvm_host.h, x86 and arm64): what KVM_CHECK_EXTENSION reports. */
export const KVM_DIRTY_LOG_MANUAL_CAPS = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;

/* struct kvm_memory_attributes attributes */
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3;

/* struct kvm_create_guest_memfd flags */
export const GUEST_MEMFD_FLAG_MMAP = 1 << 0;
export const GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1;

/* struct kvm_run exit_reason */
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_DIRTY_RING_FULL = 31;
export const KVM_EXIT_MEMORY_FAULT = 39;

/** The KVM_EXIT_* names by value, as the kernel oracle prints them (test/oracle/tables.h). */
const KVM_EXIT_NAMES: ReadonlyMap<number, string> = new Map([
  [KVM_EXIT_UNKNOWN, 'KVM_EXIT_UNKNOWN'], [KVM_EXIT_EXCEPTION, 'KVM_EXIT_EXCEPTION'], [KVM_EXIT_IO, 'KVM_EXIT_IO'],
  [KVM_EXIT_HYPERCALL, 'KVM_EXIT_HYPERCALL'], [KVM_EXIT_DEBUG, 'KVM_EXIT_DEBUG'], [KVM_EXIT_HLT, 'KVM_EXIT_HLT'],
  [KVM_EXIT_MMIO, 'KVM_EXIT_MMIO'], [KVM_EXIT_IRQ_WINDOW_OPEN, 'KVM_EXIT_IRQ_WINDOW_OPEN'],
  [KVM_EXIT_SHUTDOWN, 'KVM_EXIT_SHUTDOWN'], [KVM_EXIT_FAIL_ENTRY, 'KVM_EXIT_FAIL_ENTRY'], [KVM_EXIT_INTR, 'KVM_EXIT_INTR'],
  [KVM_EXIT_INTERNAL_ERROR, 'KVM_EXIT_INTERNAL_ERROR'], [KVM_EXIT_SYSTEM_EVENT, 'KVM_EXIT_SYSTEM_EVENT'],
  [KVM_EXIT_DIRTY_RING_FULL, 'KVM_EXIT_DIRTY_RING_FULL'], [KVM_EXIT_MEMORY_FAULT, 'KVM_EXIT_MEMORY_FAULT'],
]);

/** The name of a KVM_EXIT_* value, or undefined for one this table does not know. */
export function kvm_exit_reason_name(reason: number): string | undefined {
  return KVM_EXIT_NAMES.get(reason);
}

/* struct kvm_run internal.suberror (KVM_EXIT_INTERNAL_ERROR) */
export const KVM_INTERNAL_ERROR_EMULATION = 1;

/* struct kvm_run io.direction (KVM_EXIT_IO) */
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
/** The page of the vCPU mapping that holds port I/O data (x86). */
export const KVM_PIO_PAGE_OFFSET = 1;

/* struct kvm_run memory_fault.flags (KVM_EXIT_MEMORY_FAULT) */
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1n << 3n;

/* struct kvm_run hypercall.flags (KVM_EXIT_HYPERCALL) */
export const KVM_EXIT_HYPERCALL_LONG_MODE = 1n << 0n;

/**
 * KVM_MAX_VCPU_IDS (arch/x86/include/asm/kvm_host.h): KVM_MAX_VCPUS (1024) * KVM_VCPU_ID_RATIO
 * (4). Kernel-internal, but what KVM_CAP_MAX_VCPU_ID reports, so traces name it.
 */
export const KVM_MAX_VCPU_IDS = 4096;

/* Hypercalls the host handles (include/uapi/linux/kvm_para.h) */
export const KVM_HC_VAPIC_POLL_IRQ = 1;
export const KVM_HC_KICK_CPU = 5;
export const KVM_HC_CLOCK_PAIRING = 9;
export const KVM_HC_SEND_IPI = 10;
export const KVM_HC_SCHED_YIELD = 11;
export const KVM_HC_MAP_GPA_RANGE = 12;
/** KVM_EXIT_HYPERCALL_VALID_MASK (arch/x86/kvm/x86.h): the hypercalls user space may take over. */
export const KVM_EXIT_HYPERCALL_VALID_MASK = 1 << KVM_HC_MAP_GPA_RANGE;

/** KVM_MAP_GPA_RANGE_* attribute bits of KVM_HC_MAP_GPA_RANGE's third argument (include/uapi/linux/kvm_para.h). */
export const KVM_MAP_GPA_RANGE_PAGE_SZ_4K = 0n;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1n;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_1G = 2n;
export const KVM_MAP_GPA_RANGE_ENCRYPTED = 1n << 4n;
export const KVM_MAP_GPA_RANGE_DECRYPTED = 0n;
