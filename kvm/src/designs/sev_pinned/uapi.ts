/**
 * The uAPI of legacy SEV as the VMM drives it (designs.md D13): the VM type, the launch commands
 * of KVM_MEMORY_ENCRYPT_OP (include/uapi/linux/kvm.h enum sev_cmd_id) and the hypercall the guest
 * uses to tell the host about its C-bit changes. The SEV command ids also sit in
 * vendors/sev/src/uapi.ts; kvm cannot import a vendor package, so the few the VMM sends are
 * repeated here with the same values (kvm.h). KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION and
 * KVM_MEMORY_ENCRYPT_OP are the base's (kvm/src/uapi.ts).
 */
export {
  KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM,
  KVM_HC_MAP_GPA_RANGE, KVM_SET_USER_MEMORY_REGION,
} from '../../uapi.js';

/* enum sev_cmd_id (include/uapi/linux/kvm.h) */
export const KVM_SEV_LAUNCH_START = 2;
export const KVM_SEV_LAUNCH_UPDATE_DATA = 3;
export const KVM_SEV_LAUNCH_MEASURE = 6;
export const KVM_SEV_LAUNCH_FINISH = 7;
export const KVM_SEV_INIT2 = 22;

/** The LAUNCH_MEASURE blob: MEASURE (32 bytes, HMAC-SHA-256) || MNONCE (16 bytes). */
export const SEV_LAUNCH_MEASURE_LEN = 48;

/**
 * KVM_FEATURE_MIGRATION_CONTROL (arch/x86/include/uapi/asm/kvm_para.h, bit 17): with it, a Linux
 * SEV guest reports every C-bit change with KVM_HC_MAP_GPA_RANGE (arch/x86/kernel/kvm.c
 * kvm_sev_hc_page_enc_status(), installed by kvm_init_platform()).
 */
export const KVM_FEATURE_MIGRATION_CONTROL = 17;
