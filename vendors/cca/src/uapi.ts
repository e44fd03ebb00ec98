/**
 * The Arm CCA host series' user API (Steven Price et al., "arm64: Support for Arm CCA in KVM",
 * v8, 2025-04: arch/arm64/include/uapi/asm/kvm.h, include/uapi/linux/kvm.h,
 * Documentation/virt/kvm/api.rst 7.38 KVM_CAP_ARM_RME), and how cocosim's x86-shaped KVM carries
 * it.
 *
 * VM types. arm64's KVM_CREATE_VM argument is KVM_VM_TYPE_ARM_IPA_SIZE(bits) in bits 7:0 (0: the
 * default 40-bit IPA space) and the machine type in bits 11:8 (KVM_VM_TYPE_ARM_NORMAL,
 * KVM_VM_TYPE_ARM_REALM). cocosim's KVM keeps an x86-style vm_type index (kvm->arch.vm_type, the
 * bit in supported_vm_types); the CCA plugin decodes the arm64 argument (kvm_x86_ops.vm_type_decode)
 * into KVM_X86_DEFAULT_VM (0) for a normal VM and KVM_VM_REALM_INDEX (8 = KVM_VM_TYPE_ARM_SHIFT, so
 * that bit 8 of KVM_CAP_VM_TYPES is KVM_VM_TYPE_ARM_REALM's value 0x100) for a realm.
 *
 * Launch. The v8 flow is one multiplexed capability, KVM_ENABLE_CAP(KVM_CAP_ARM_RME) with args[0]
 * the action and args[1] the struct (here: the JS object a pointer would point to):
 * CONFIG_REALM (struct arm_rme_config), CREATE_REALM, INIT_RIPAS_REALM (struct
 * arm_rme_init_ripas), POPULATE_REALM (struct arm_rme_populate_realm), ACTIVATE_REALM.
 */

/** KVM_VM_TYPE_ARM_SHIFT / _MASK / KVM_VM_TYPE_ARM(): the machine type in bits 11:8. */
export const KVM_VM_TYPE_ARM_SHIFT = 8;
export const KVM_VM_TYPE_ARM_MASK = 0xfn << 8n;
export const KVM_VM_TYPE_ARM_NORMAL = 0;
export const KVM_VM_TYPE_ARM_REALM = 1 << KVM_VM_TYPE_ARM_SHIFT;
/** KVM_VM_TYPE_ARM_IPA_SIZE_MASK: bits 7:0, log2 of the IPA space (0: 40 bits). */
export const KVM_VM_TYPE_ARM_IPA_SIZE_MASK = 0xffn;
/** KVM_PHYS_SHIFT: the IPA size of a VM created with IPA size 0. */
export const KVM_PHYS_SHIFT = 40;
/** ARM64_MIN_PARANGE_BITS: the smallest IPA size KVM accepts. */
export const ARM64_MIN_PARANGE_BITS = 32;

/** cocosim's vm_type index of a realm (see the file comment). */
export const KVM_VM_REALM_INDEX = KVM_VM_TYPE_ARM_SHIFT;

/** KVM_CAP_ARM_RME (include/uapi/linux/kvm.h, v8). */
export const KVM_CAP_ARM_RME = 240;

/* KVM_CAP_ARM_RME actions (args[0]) */
export const KVM_CAP_ARM_RME_CONFIG_REALM = 0;
export const KVM_CAP_ARM_RME_CREATE_REALM = 1;
export const KVM_CAP_ARM_RME_INIT_RIPAS_REALM = 2;
export const KVM_CAP_ARM_RME_POPULATE_REALM = 3;
export const KVM_CAP_ARM_RME_ACTIVATE_REALM = 4;

/* struct arm_rme_config cfg */
export const ARM_RME_CONFIG_RPV = 0;
export const ARM_RME_CONFIG_HASH_ALGO = 1;
export const ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA256 = 0;
export const ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512 = 1;
export const ARM_RME_CONFIG_RPV_SIZE = 64;

/** struct arm_rme_populate_realm flags */
export const KVM_ARM_RME_POPULATE_FLAGS_MEASURE = 1 << 0;

/** struct arm_rme_config: cfg and, by cfg, rpv[64] or hash_algo (a 256-byte union). */
export interface ArmRmeConfig {
  cfg?: number | bigint;
  rpv?: Uint8Array;
  hash_algo?: number | bigint;
}

/** struct arm_rme_init_ripas. */
export interface ArmRmeInitRipas {
  base?: number | bigint;
  size?: number | bigint;
  reserved?: readonly (number | bigint)[];
}

/** struct arm_rme_populate_realm. */
export interface ArmRmePopulateRealm {
  base?: number | bigint;
  size?: number | bigint;
  flags?: number | bigint;
  reserved?: readonly (number | bigint)[];
}
