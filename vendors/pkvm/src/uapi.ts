/**
 * pKVM's user API (Android common kernel: include/uapi/linux/kvm.h KVM_CAP_ARM_PROTECTED_VM,
 * arch/arm64/include/uapi/asm/kvm.h; Documentation/virt/kvm/arm/pkvm.rst "VM creation"), the
 * guest's hypercalls (include/linux/arm-smccc.h ARM_SMCCC_VENDOR_HYP_KVM_*), and how cocosim's
 * x86-shaped KVM carries them.
 *
 * VM types. A protected VM is KVM_CREATE_VM with KVM_VM_TYPE_ARM_PROTECTED (bit 31) or'ed into the
 * arm64 type (KVM_VM_TYPE_ARM_IPA_SIZE in bits 7:0). cocosim's vm_type index of a protected VM is
 * KVM_VM_PROTECTED_INDEX (9): bit 31 cannot be a bit of the x86-style supported_vm_types mask,
 * which KVM_CAP_VM_TYPES returns as a positive int. Any other arm64 VM on a pKVM host is a
 * non-protected VM (index 0) whose stage-2 is the hypervisor's too (host-shared pages).
 */

/** KVM_VM_TYPE_ARM_PROTECTED (ACK include/uapi/linux/kvm.h): the protected machine type flag. */
export const KVM_VM_TYPE_ARM_PROTECTED = 1n << 31n;
/** KVM_VM_TYPE_ARM_IPA_SIZE_MASK. */
export const KVM_VM_TYPE_ARM_IPA_SIZE_MASK = 0xffn;
/** KVM_PHYS_SHIFT: the IPA size of type 0. */
export const KVM_PHYS_SHIFT = 40;
/** cocosim's vm_type index of a protected VM (see the file comment). */
export const KVM_VM_PROTECTED_INDEX = 9;

/** KVM_CAP_ARM_PROTECTED_VM (ACK; "Update this once the pKVM patches are merged upstream"). */
export const KVM_CAP_ARM_PROTECTED_VM = 0xffbadab1;
/** KVM_ENABLE_CAP flags of KVM_CAP_ARM_PROTECTED_VM: the subcommand. */
export const KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA = 0;
export const KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO = 1;

/** struct kvm_protected_vm_info (args[0] of KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO), written back. */
export interface KvmProtectedVmInfo {
  firmware_size?: bigint;
  __reserved?: bigint[];
}

/** ARM_SMCCC_CALL_VAL(ARM_SMCCC_FAST_CALL, SMC_64 or SMC_32, ARM_SMCCC_OWNER_VENDOR_HYP, n). */
function VENDOR_HYP(n: number, smc64 = true): bigint {
  return (smc64 ? 0xc6000000n : 0x86000000n) | BigInt(n);
}

/* ARM_SMCCC_KVM_FUNC_* guest hypercalls (include/linux/arm-smccc.h) */
export const ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID = VENDOR_HYP(0, false);
export const ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID = VENDOR_HYP(2);
export const ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID = VENDOR_HYP(3);
export const ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID = VENDOR_HYP(4);
export const ARM_SMCCC_KVM_FUNC_HYP_MEMINFO = 2;
export const ARM_SMCCC_KVM_FUNC_MEM_SHARE = 3;
export const ARM_SMCCC_KVM_FUNC_MEM_UNSHARE = 4;

/* SMCCC return codes (include/linux/arm-smccc.h), as the u64 in x0 */
export const SMCCC_RET_SUCCESS = 0n;
export const SMCCC_RET_NOT_SUPPORTED = BigInt.asUintN(64, -1n);
export const SMCCC_RET_INVALID_PARAMETER = BigInt.asUintN(64, -3n);
