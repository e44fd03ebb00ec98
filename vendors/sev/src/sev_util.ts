/**
 * Building and launching SEV-SNP VMs from user space, after the selftests' library
 * (tools/testing/selftests/kvm/lib/x86/sev.c: snp_vm_init(), snp_vm_launch_start(),
 * snp_vm_launch_update(), snp_vm_launch_finish()) and QEMU's target/i386/sev.c: every command is
 * KVM_MEMORY_ENCRYPT_OP with a struct kvm_sev_cmd { id, data, error, sev_fd } on the VM fd.
 */
import { KVM_MEMORY_ENCRYPT_OP } from '@cocosim/kvm';
import type { Process } from '@cocosim/mm';
import {
  KVM_SEV_INIT2, KVM_SEV_SNP_FINISH_DATA_SIZE, KVM_SEV_SNP_LAUNCH_FINISH, KVM_SEV_SNP_LAUNCH_START, KVM_SEV_SNP_LAUNCH_UPDATE,
  SNP_POLICY_MASK_RSVD_MBO, SNP_POLICY_MASK_SMT,
} from './uapi.js';

/** snp_default_policy(): SMT allowed and the must-be-one bit 17 (the bits KVM requires). */
export const SNP_DEFAULT_POLICY = SNP_POLICY_MASK_SMT | SNP_POLICY_MASK_RSVD_MBO;

/** What a KVM_MEMORY_ENCRYPT_OP returned: the C result (0, or -1 with p.errno) and argp->error (the firmware's status). */
export interface SevIoctlResult {
  readonly r: number;
  readonly error: number;
}

/** __vm_sev_ioctl(): KVM_MEMORY_ENCRYPT_OP of command `id` with `data`, naming /dev/sev's `sev_fd`. */
export function vm_sev_ioctl(p: Process, vm_fd: number, sev_fd: number, id: number, data: unknown): SevIoctlResult {
  const cmd = { id, data, error: 0, sev_fd };
  const r = p.ioctl(vm_fd, KVM_MEMORY_ENCRYPT_OP, cmd);
  return { r, error: cmd.error };
}

/** KVM_SEV_INIT2 with struct kvm_sev_init zeroed (no VMSA features, the default GHCB version): the C result. */
export function snp_vm_init(p: Process, vm_fd: number, sev_fd: number): number {
  return vm_sev_ioctl(p, vm_fd, sev_fd, KVM_SEV_INIT2, { vmsa_features: 0n, flags: 0, ghcb_version: 0 }).r;
}

/** KVM_SEV_SNP_LAUNCH_START with `policy` and no GOSVW: the C result. */
export function snp_vm_launch_start(p: Process, vm_fd: number, sev_fd: number, policy: bigint = SNP_DEFAULT_POLICY): number {
  return vm_sev_ioctl(p, vm_fd, sev_fd, KVM_SEV_SNP_LAUNCH_START, { policy, gosvw: new Uint8Array(16), flags: 0 }).r;
}

/**
 * KVM_SEV_SNP_LAUNCH_UPDATE of [gpa, gpa + len) from the user buffer at `uaddr` with page type
 * `type`, again while KVM has pages left (it advances gfn_start, uaddr and len past the pages it
 * did), as QEMU's sev_snp_launch_update() loops. The C result.
 */
export function snp_vm_launch_update(p: Process, vm_fd: number, sev_fd: number, gpa: bigint, uaddr: bigint, len: bigint, type: number): number {
  const update = { gfn_start: gpa >> 12n, uaddr, len, type, flags: 0 };
  do {
    if (vm_sev_ioctl(p, vm_fd, sev_fd, KVM_SEV_SNP_LAUNCH_UPDATE, update).r < 0) return -1;
  } while (update.len > 0n);
  return 0;
}

/** KVM_SEV_SNP_LAUNCH_FINISH without an ID block and with zero host data: the C result. */
export function snp_vm_launch_finish(p: Process, vm_fd: number, sev_fd: number): number {
  const finish = { id_block_uaddr: 0n, id_auth_uaddr: 0n, id_block_en: 0, auth_key_en: 0, vcek_disabled: 0, host_data: new Uint8Array(KVM_SEV_SNP_FINISH_DATA_SIZE), flags: 0 };
  return vm_sev_ioctl(p, vm_fd, sev_fd, KVM_SEV_SNP_LAUNCH_FINISH, finish).r;
}
