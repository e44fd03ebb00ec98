/**
 * Design "snp_anon" (designs.md D14): SEV-SNP guests on anonymous VMM memory with RMP-fault
 * handling, the host series before UPM: Brijesh Singh's "[PATCH Part2 RFC v2 00/37] Add AMD
 * Secure Nested Paging (SEV-SNP) Hypervisor Support" (30 Apr 2021,
 * 20210430123822.13825-1-brijesh.singh@amd.com) through Part2 v6 (Ashish Kalra, 20 Jun 2022) and
 * Michael Roth's RFC v7/v8 (2022-2023), whose covers moved SNP to "restricted/private memslots
 * (aka Unmapped Private Memory)" and then to guest_memfd.
 *
 * Host memory is ordinary pinned VMM memory and the hardware RMP enforces ownership: the page
 * state change assigns the VMM's own page to the guest (sev.ts), a host write to it takes an RMP
 * #PF and the writer gets SIGBUS (fault.ts), a host read returns ciphertext. Sean's objection,
 * which ended it: "with SEV-SNP and especially TDX, accessing guest private memory can be fatal
 * to the host, i.e. KVM must be prevent host userspace from accessing guest memory irrespective of
 * hardware behavior".
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { design_install, type Design } from '../design.js';
import { snp_anon_mm_hooks } from './fault.js';
import { snp_anon_vm_ioctl } from './sev.js';
import {
  KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, KVM_SEV_INIT2, KVM_SEV_SNP_LAUNCH_FINISH, KVM_SEV_SNP_LAUNCH_START, KVM_X86_SNP_VM,
} from './uapi.js';
import { snp_anon_vmm } from './vmm.js';

export * from './vmm.js';
export { snp_anon_cvm, snp_anon_guest_convert, snp_anon_vendor_cvm } from './snp.js';
export { snp_anon_assigned, snp_anon_pfn_owner, snp_anon_slot, type AssignedPage } from './sev.js';

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function snpAnonRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, snp_anon, {});
    register_kvm_hooks(kernel, { name: 'snp_anon', vm_ioctl: snp_anon_vm_ioctl });
    register_mm_hooks(kernel, snp_anon_mm_hooks);
  };
}

export const snp_anon: Design = {
  name: 'snp_anon',
  title: 'SEV-SNP on pinned anonymous VMM memory, RMP #PF -> SIGBUS on host writes (pre-UPM SNP host series, 2021-2023)',
  rows: ['D14'],
  uapi: {
    KVM_X86_SNP_VM,
    KVM_MEMORY_ENCRYPT_OP,
    KVM_MEMORY_ENCRYPT_REG_REGION,
    KVM_MEMORY_ENCRYPT_UNREG_REGION,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SET_MEMORY_ATTRIBUTES,
    KVM_MEMORY_ATTRIBUTE_PRIVATE,
    KVM_SEV_INIT2,
    KVM_SEV_SNP_LAUNCH_START,
    KVM_SEV_SNP_LAUNCH_FINISH,
    KVM_HC_MAP_GPA_RANGE,
  },
  options: {},
  vmm: snp_anon_vmm,
  registrar: snpAnonRegistrar,
};
