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

/*
 * KVM_CHECK_EXTENSION capabilities: every KVM_CAP_* of include/uapi/linux/kvm.h (Linux 6.18), so that
 * a trace can name any of them. KVM_CHECK_EXTENSION answers 0 for those whose feature cocosim does not
 * model (kvm_vm_ioctl_check_extension_generic() and kvm_vm_ioctl_check_extension() list the others).
 */
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_HLT = 1;
export const KVM_CAP_MMU_SHADOW_CACHE_CONTROL = 2;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_VAPIC = 6;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_CLOCKSOURCE = 8;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_PIT = 11;
export const KVM_CAP_NOP_IO_DELAY = 12;
export const KVM_CAP_PV_MMU = 13;
export const KVM_CAP_MP_STATE = 14;
export const KVM_CAP_COALESCED_MMIO = 15;
export const KVM_CAP_SYNC_MMU = 16;
export const KVM_CAP_IOMMU = 18;
export const KVM_CAP_DESTROY_MEMORY_REGION_WORKS = 21;
export const KVM_CAP_USER_NMI = 22;
export const KVM_CAP_SET_GUEST_DEBUG = 23;
export const KVM_CAP_REINJECT_CONTROL = 24;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_IRQ_INJECT_STATUS = 26;
export const KVM_CAP_ASSIGN_DEV_IRQ = 29;
export const KVM_CAP_JOIN_MEMORY_REGIONS_WORKS = 30;
export const KVM_CAP_MCE = 31;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_SET_BOOT_CPU_ID = 34;
export const KVM_CAP_PIT_STATE2 = 35;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
export const KVM_CAP_XEN_HVM = 38;
export const KVM_CAP_ADJUST_CLOCK = 39;
export const KVM_CAP_INTERNAL_ERROR_DATA = 40;
export const KVM_CAP_VCPU_EVENTS = 41;
export const KVM_CAP_S390_PSW = 42;
export const KVM_CAP_PPC_SEGSTATE = 43;
export const KVM_CAP_HYPERV = 44;
export const KVM_CAP_HYPERV_VAPIC = 45;
export const KVM_CAP_HYPERV_SPIN = 46;
export const KVM_CAP_PCI_SEGMENT = 47;
export const KVM_CAP_PPC_PAIRED_SINGLES = 48;
export const KVM_CAP_INTR_SHADOW = 49;
export const KVM_CAP_DEBUGREGS = 50;
export const KVM_CAP_X86_ROBUST_SINGLESTEP = 51;
export const KVM_CAP_PPC_OSI = 52;
export const KVM_CAP_PPC_UNSET_IRQ = 53;
export const KVM_CAP_ENABLE_CAP = 54;
export const KVM_CAP_XSAVE = 55;
export const KVM_CAP_XCRS = 56;
export const KVM_CAP_PPC_GET_PVINFO = 57;
export const KVM_CAP_PPC_IRQ_LEVEL = 58;
export const KVM_CAP_ASYNC_PF = 59;
export const KVM_CAP_TSC_CONTROL = 60;
export const KVM_CAP_GET_TSC_KHZ = 61;
export const KVM_CAP_PPC_BOOKE_SREGS = 62;
export const KVM_CAP_SPAPR_TCE = 63;
export const KVM_CAP_PPC_SMT = 64;
export const KVM_CAP_PPC_RMA = 65;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_PPC_HIOR = 67;
export const KVM_CAP_PPC_PAPR = 68;
export const KVM_CAP_SW_TLB = 69;
export const KVM_CAP_ONE_REG = 70;
export const KVM_CAP_S390_GMAP = 71;
export const KVM_CAP_TSC_DEADLINE_TIMER = 72;
export const KVM_CAP_S390_UCONTROL = 73;
export const KVM_CAP_SYNC_REGS = 74;
export const KVM_CAP_PCI_2_3 = 75;
export const KVM_CAP_KVMCLOCK_CTRL = 76;
export const KVM_CAP_SIGNAL_MSI = 77;
export const KVM_CAP_PPC_GET_SMMU_INFO = 78;
export const KVM_CAP_S390_COW = 79;
export const KVM_CAP_PPC_ALLOC_HTAB = 80;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_IRQFD_RESAMPLE = 82;
export const KVM_CAP_PPC_BOOKE_WATCHDOG = 83;
export const KVM_CAP_PPC_HTAB_FD = 84;
export const KVM_CAP_S390_CSS_SUPPORT = 85;
export const KVM_CAP_PPC_EPR = 86;
export const KVM_CAP_ARM_PSCI = 87;
export const KVM_CAP_ARM_SET_DEVICE_ADDR = 88;
export const KVM_CAP_DEVICE_CTRL = 89;
export const KVM_CAP_IRQ_MPIC = 90;
export const KVM_CAP_PPC_RTAS = 91;
export const KVM_CAP_IRQ_XICS = 92;
export const KVM_CAP_ARM_EL1_32BIT = 93;
export const KVM_CAP_SPAPR_MULTITCE = 94;
export const KVM_CAP_EXT_EMUL_CPUID = 95;
export const KVM_CAP_HYPERV_TIME = 96;
export const KVM_CAP_IOAPIC_POLARITY_IGNORED = 97;
export const KVM_CAP_ENABLE_CAP_VM = 98;
export const KVM_CAP_S390_IRQCHIP = 99;
export const KVM_CAP_IOEVENTFD_NO_LENGTH = 100;
export const KVM_CAP_VM_ATTRIBUTES = 101;
export const KVM_CAP_ARM_PSCI_0_2 = 102;
export const KVM_CAP_PPC_FIXUP_HCALL = 103;
export const KVM_CAP_PPC_ENABLE_HCALL = 104;
export const KVM_CAP_CHECK_EXTENSION_VM = 105;
export const KVM_CAP_S390_USER_SIGP = 106;
export const KVM_CAP_S390_VECTOR_REGISTERS = 107;
export const KVM_CAP_S390_MEM_OP = 108;
export const KVM_CAP_S390_USER_STSI = 109;
export const KVM_CAP_S390_SKEYS = 110;
export const KVM_CAP_MIPS_FPU = 111;
export const KVM_CAP_MIPS_MSA = 112;
export const KVM_CAP_S390_INJECT_IRQ = 113;
export const KVM_CAP_S390_IRQ_STATE = 114;
export const KVM_CAP_PPC_HWRNG = 115;
export const KVM_CAP_DISABLE_QUIRKS = 116;
export const KVM_CAP_X86_SMM = 117;
export const KVM_CAP_MULTI_ADDRESS_SPACE = 118;
export const KVM_CAP_GUEST_DEBUG_HW_BPS = 119;
export const KVM_CAP_GUEST_DEBUG_HW_WPS = 120;
export const KVM_CAP_SPLIT_IRQCHIP = 121;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;
export const KVM_CAP_HYPERV_SYNIC = 123;
export const KVM_CAP_S390_RI = 124;
export const KVM_CAP_SPAPR_TCE_64 = 125;
export const KVM_CAP_ARM_PMU_V3 = 126;
export const KVM_CAP_VCPU_ATTRIBUTES = 127;
export const KVM_CAP_MAX_VCPU_ID = 128;
export const KVM_CAP_X2APIC_API = 129;
export const KVM_CAP_S390_USER_INSTR0 = 130;
export const KVM_CAP_MSI_DEVID = 131;
export const KVM_CAP_PPC_HTM = 132;
export const KVM_CAP_SPAPR_RESIZE_HPT = 133;
export const KVM_CAP_PPC_MMU_RADIX = 134;
export const KVM_CAP_PPC_MMU_HASH_V3 = 135;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_MIPS_VZ = 137;
export const KVM_CAP_MIPS_TE = 138;
export const KVM_CAP_MIPS_64BIT = 139;
export const KVM_CAP_S390_GS = 140;
export const KVM_CAP_S390_AIS = 141;
export const KVM_CAP_SPAPR_TCE_VFIO = 142;
export const KVM_CAP_X86_DISABLE_EXITS = 143;
export const KVM_CAP_ARM_USER_IRQ = 144;
export const KVM_CAP_S390_CMMA_MIGRATION = 145;
export const KVM_CAP_PPC_FWNMI = 146;
export const KVM_CAP_PPC_SMT_POSSIBLE = 147;
export const KVM_CAP_HYPERV_SYNIC2 = 148;
export const KVM_CAP_HYPERV_VP_INDEX = 149;
export const KVM_CAP_S390_AIS_MIGRATION = 150;
export const KVM_CAP_PPC_GET_CPU_CHAR = 151;
export const KVM_CAP_S390_BPB = 152;
export const KVM_CAP_GET_MSR_FEATURES = 153;
export const KVM_CAP_HYPERV_EVENTFD = 154;
export const KVM_CAP_HYPERV_TLBFLUSH = 155;
export const KVM_CAP_S390_HPAGE_1M = 156;
export const KVM_CAP_NESTED_STATE = 157;
export const KVM_CAP_ARM_INJECT_SERROR_ESR = 158;
export const KVM_CAP_MSR_PLATFORM_INFO = 159;
export const KVM_CAP_PPC_NESTED_HV = 160;
export const KVM_CAP_HYPERV_SEND_IPI = 161;
export const KVM_CAP_COALESCED_PIO = 162;
export const KVM_CAP_HYPERV_ENLIGHTENED_VMCS = 163;
export const KVM_CAP_EXCEPTION_PAYLOAD = 164;
export const KVM_CAP_ARM_VM_IPA_SIZE = 165;
export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT = 166;
export const KVM_CAP_HYPERV_CPUID = 167;
export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168;
export const KVM_CAP_PPC_IRQ_XIVE = 169;
export const KVM_CAP_ARM_SVE = 170;
export const KVM_CAP_ARM_PTRAUTH_ADDRESS = 171;
export const KVM_CAP_ARM_PTRAUTH_GENERIC = 172;
export const KVM_CAP_PMU_EVENT_FILTER = 173;
export const KVM_CAP_ARM_IRQ_LINE_LAYOUT_2 = 174;
export const KVM_CAP_HYPERV_DIRECT_TLBFLUSH = 175;
export const KVM_CAP_PPC_GUEST_DEBUG_SSTEP = 176;
export const KVM_CAP_ARM_NISV_TO_USER = 177;
export const KVM_CAP_ARM_INJECT_EXT_DABT = 178;
export const KVM_CAP_S390_VCPU_RESETS = 179;
export const KVM_CAP_S390_PROTECTED = 180;
export const KVM_CAP_PPC_SECURE_GUEST = 181;
export const KVM_CAP_HALT_POLL = 182;
export const KVM_CAP_ASYNC_PF_INT = 183;
export const KVM_CAP_LAST_CPU = 184;
export const KVM_CAP_SMALLER_MAXPHYADDR = 185;
export const KVM_CAP_S390_DIAG318 = 186;
export const KVM_CAP_STEAL_TIME = 187;
export const KVM_CAP_X86_USER_SPACE_MSR = 188;
export const KVM_CAP_X86_MSR_FILTER = 189;
export const KVM_CAP_ENFORCE_PV_FEATURE_CPUID = 190;
export const KVM_CAP_SYS_HYPERV_CPUID = 191;
export const KVM_CAP_DIRTY_LOG_RING = 192;
export const KVM_CAP_X86_BUS_LOCK_EXIT = 193;
export const KVM_CAP_PPC_DAWR1 = 194;
export const KVM_CAP_SET_GUEST_DEBUG2 = 195;
export const KVM_CAP_SGX_ATTRIBUTE = 196;
export const KVM_CAP_VM_COPY_ENC_CONTEXT_FROM = 197;
export const KVM_CAP_PTP_KVM = 198;
export const KVM_CAP_HYPERV_ENFORCE_CPUID = 199;
export const KVM_CAP_SREGS2 = 200;
export const KVM_CAP_EXIT_HYPERCALL = 201;
export const KVM_CAP_PPC_RPT_INVALIDATE = 202;
export const KVM_CAP_BINARY_STATS_FD = 203;
export const KVM_CAP_EXIT_ON_EMULATION_FAILURE = 204;
export const KVM_CAP_ARM_MTE = 205;
export const KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM = 206;
export const KVM_CAP_VM_GPA_BITS = 207;
export const KVM_CAP_XSAVE2 = 208;
export const KVM_CAP_SYS_ATTRIBUTES = 209;
export const KVM_CAP_PPC_AIL_MODE_3 = 210;
export const KVM_CAP_S390_MEM_OP_EXTENSION = 211;
export const KVM_CAP_PMU_CAPABILITY = 212;
export const KVM_CAP_DISABLE_QUIRKS2 = 213;
export const KVM_CAP_VM_TSC_CONTROL = 214;
export const KVM_CAP_SYSTEM_EVENT_DATA = 215;
export const KVM_CAP_ARM_SYSTEM_SUSPEND = 216;
export const KVM_CAP_S390_PROTECTED_DUMP = 217;
export const KVM_CAP_X86_TRIPLE_FAULT_EVENT = 218;
export const KVM_CAP_X86_NOTIFY_VMEXIT = 219;
export const KVM_CAP_VM_DISABLE_NX_HUGE_PAGES = 220;
export const KVM_CAP_S390_ZPCI_OP = 221;
export const KVM_CAP_S390_CPU_TOPOLOGY = 222;
export const KVM_CAP_DIRTY_LOG_RING_ACQ_REL = 223;
export const KVM_CAP_S390_PROTECTED_ASYNC_DISABLE = 224;
export const KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP = 225;
export const KVM_CAP_PMU_EVENT_MASKED_EVENTS = 226;
export const KVM_CAP_COUNTER_OFFSET = 227;
export const KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE = 228;
export const KVM_CAP_ARM_SUPPORTED_BLOCK_SIZES = 229;
export const KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES = 230;
export const KVM_CAP_USER_MEMORY2 = 231;
export const KVM_CAP_MEMORY_FAULT_INFO = 232;
export const KVM_CAP_MEMORY_ATTRIBUTES = 233;
export const KVM_CAP_GUEST_MEMFD = 234;
export const KVM_CAP_VM_TYPES = 235;
export const KVM_CAP_PRE_FAULT_MEMORY = 236;
export const KVM_CAP_X86_APIC_BUS_CYCLES_NS = 237;
export const KVM_CAP_X86_GUEST_MODE = 238;
export const KVM_CAP_ARM_WRITABLE_IMP_ID_REGS = 239;
export const KVM_CAP_ARM_EL2 = 240;
export const KVM_CAP_ARM_EL2_E2H0 = 241;
export const KVM_CAP_RISCV_MP_STATE_RESET = 242;
export const KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED = 243;
export const KVM_CAP_GUEST_MEMFD_FLAGS = 244;
export const KVM_CAP_ARM_SEA_TO_USER = 245;
export const KVM_CAP_S390_USER_OPEREXEC = 246;

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
export const KVM_EXIT_SET_TPR = 11;
export const KVM_EXIT_TPR_ACCESS = 12;
export const KVM_EXIT_S390_SIEIC = 13;
export const KVM_EXIT_S390_RESET = 14;
export const KVM_EXIT_DCR = 15;
export const KVM_EXIT_NMI = 16;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_OSI = 18;
export const KVM_EXIT_PAPR_HCALL = 19;
export const KVM_EXIT_S390_UCONTROL = 20;
export const KVM_EXIT_WATCHDOG = 21;
export const KVM_EXIT_S390_TSCH = 22;
export const KVM_EXIT_EPR = 23;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_S390_STSI = 25;
export const KVM_EXIT_IOAPIC_EOI = 26;
export const KVM_EXIT_HYPERV = 27;
export const KVM_EXIT_ARM_NISV = 28;
export const KVM_EXIT_X86_RDMSR = 29;
export const KVM_EXIT_X86_WRMSR = 30;
export const KVM_EXIT_DIRTY_RING_FULL = 31;
export const KVM_EXIT_AP_RESET_HOLD = 32;
export const KVM_EXIT_X86_BUS_LOCK = 33;
export const KVM_EXIT_XEN = 34;
export const KVM_EXIT_RISCV_SBI = 35;
export const KVM_EXIT_RISCV_CSR = 36;
export const KVM_EXIT_NOTIFY = 37;
export const KVM_EXIT_LOONGARCH_IOCSR = 38;
export const KVM_EXIT_MEMORY_FAULT = 39;
export const KVM_EXIT_TDX = 40;
export const KVM_EXIT_ARM_SEA = 41;

/** The KVM_EXIT_* names by value, as the kernel oracle prints them (test/oracle/tables.h). */
const KVM_EXIT_NAMES: ReadonlyMap<number, string> = new Map([
  [KVM_EXIT_UNKNOWN, 'KVM_EXIT_UNKNOWN'], [KVM_EXIT_EXCEPTION, 'KVM_EXIT_EXCEPTION'], [KVM_EXIT_IO, 'KVM_EXIT_IO'],
  [KVM_EXIT_HYPERCALL, 'KVM_EXIT_HYPERCALL'], [KVM_EXIT_DEBUG, 'KVM_EXIT_DEBUG'], [KVM_EXIT_HLT, 'KVM_EXIT_HLT'],
  [KVM_EXIT_MMIO, 'KVM_EXIT_MMIO'], [KVM_EXIT_IRQ_WINDOW_OPEN, 'KVM_EXIT_IRQ_WINDOW_OPEN'],
  [KVM_EXIT_SHUTDOWN, 'KVM_EXIT_SHUTDOWN'], [KVM_EXIT_FAIL_ENTRY, 'KVM_EXIT_FAIL_ENTRY'],
  [KVM_EXIT_INTR, 'KVM_EXIT_INTR'], [KVM_EXIT_SET_TPR, 'KVM_EXIT_SET_TPR'],
  [KVM_EXIT_TPR_ACCESS, 'KVM_EXIT_TPR_ACCESS'], [KVM_EXIT_S390_SIEIC, 'KVM_EXIT_S390_SIEIC'],
  [KVM_EXIT_S390_RESET, 'KVM_EXIT_S390_RESET'], [KVM_EXIT_DCR, 'KVM_EXIT_DCR'], [KVM_EXIT_NMI, 'KVM_EXIT_NMI'],
  [KVM_EXIT_INTERNAL_ERROR, 'KVM_EXIT_INTERNAL_ERROR'], [KVM_EXIT_OSI, 'KVM_EXIT_OSI'],
  [KVM_EXIT_PAPR_HCALL, 'KVM_EXIT_PAPR_HCALL'], [KVM_EXIT_S390_UCONTROL, 'KVM_EXIT_S390_UCONTROL'],
  [KVM_EXIT_WATCHDOG, 'KVM_EXIT_WATCHDOG'], [KVM_EXIT_S390_TSCH, 'KVM_EXIT_S390_TSCH'],
  [KVM_EXIT_EPR, 'KVM_EXIT_EPR'], [KVM_EXIT_SYSTEM_EVENT, 'KVM_EXIT_SYSTEM_EVENT'],
  [KVM_EXIT_S390_STSI, 'KVM_EXIT_S390_STSI'], [KVM_EXIT_IOAPIC_EOI, 'KVM_EXIT_IOAPIC_EOI'],
  [KVM_EXIT_HYPERV, 'KVM_EXIT_HYPERV'], [KVM_EXIT_ARM_NISV, 'KVM_EXIT_ARM_NISV'],
  [KVM_EXIT_X86_RDMSR, 'KVM_EXIT_X86_RDMSR'], [KVM_EXIT_X86_WRMSR, 'KVM_EXIT_X86_WRMSR'],
  [KVM_EXIT_DIRTY_RING_FULL, 'KVM_EXIT_DIRTY_RING_FULL'], [KVM_EXIT_AP_RESET_HOLD, 'KVM_EXIT_AP_RESET_HOLD'],
  [KVM_EXIT_X86_BUS_LOCK, 'KVM_EXIT_X86_BUS_LOCK'], [KVM_EXIT_XEN, 'KVM_EXIT_XEN'],
  [KVM_EXIT_RISCV_SBI, 'KVM_EXIT_RISCV_SBI'], [KVM_EXIT_RISCV_CSR, 'KVM_EXIT_RISCV_CSR'],
  [KVM_EXIT_NOTIFY, 'KVM_EXIT_NOTIFY'], [KVM_EXIT_LOONGARCH_IOCSR, 'KVM_EXIT_LOONGARCH_IOCSR'],
  [KVM_EXIT_MEMORY_FAULT, 'KVM_EXIT_MEMORY_FAULT'], [KVM_EXIT_TDX, 'KVM_EXIT_TDX'],
  [KVM_EXIT_ARM_SEA, 'KVM_EXIT_ARM_SEA'],
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
