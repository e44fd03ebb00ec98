/**
 * Design "sev_pinned" (designs.md D13): legacy SEV / SEV-ES guest memory is ordinary VMM memory,
 * registered with KVM_MEMORY_ENCRYPT_REG_REGION (commit 1e80fdc09d12 "KVM: SVM: Pin guest memory
 * when SEV is active", Brijesh Singh, 2017-18), which pins it for the VM's lifetime because "the
 * current SEV key management spec doesn't provide commands to swap or migrate (move) ciphertext
 * pages" (Documentation/virt/kvm/x86/amd-memory-encryption.rst).
 *
 * The kernel half is in the base already (arch/x86/kvm/svm/sev.c: sev_mem_enc_register_region(),
 * sev_pin_memory(), sev_launch_update_data(), modelled by the SEV vendor package), and it still
 * is the way plain SEV and SEV-ES VMs run in 6.18: guest_memfd gives them no private attribute
 * ("x86's SEV-MEM and SEV-ES have no way to detect private vs. shared"). So the registrar adds no
 * hook; the design is its VMM (vmm.ts) and the legacy launch (sev.ts) on vendor "sev".
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import { design_install, type Design } from '../design.js';
import {
  KVM_FEATURE_MIGRATION_CONTROL, KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_MEMORY_ENCRYPT_UNREG_REGION, KVM_SET_USER_MEMORY_REGION, KVM_SEV_INIT2, KVM_SEV_LAUNCH_FINISH, KVM_SEV_LAUNCH_MEASURE,
  KVM_SEV_LAUNCH_START, KVM_SEV_LAUNCH_UPDATE_DATA, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM,
} from './uapi.js';
import { sev_pinned_vmm } from './vmm.js';

export * from './vmm.js';
export { sev_legacy_cvm, sev_legacy_guest_convert, sev_legacy_state, type SevLegacyState } from './sev.js';

export const sev_pinned: Design = {
  name: 'sev_pinned',
  title: 'legacy SEV/SEV-ES: anonymous VMM memory pinned by KVM_MEMORY_ENCRYPT_REG_REGION, encrypted in place (v4.16, 2017-18)',
  rows: ['D13'],
  uapi: {
    KVM_X86_SEV_VM,
    KVM_X86_SEV_ES_VM,
    KVM_MEMORY_ENCRYPT_OP,
    KVM_MEMORY_ENCRYPT_REG_REGION,
    KVM_MEMORY_ENCRYPT_UNREG_REGION,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SEV_INIT2,
    KVM_SEV_LAUNCH_START,
    KVM_SEV_LAUNCH_UPDATE_DATA,
    KVM_SEV_LAUNCH_MEASURE,
    KVM_SEV_LAUNCH_FINISH,
    KVM_HC_MAP_GPA_RANGE,
    KVM_FEATURE_MIGRATION_CONTROL,
  },
  options: {},
  vmm: sev_pinned_vmm,
  registrar: (): HostRegistrar => (root) => design_install(root.resolve(Kernel), sev_pinned, {}),
};
