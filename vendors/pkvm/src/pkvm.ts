/**
 * KVM on a pKVM host (arch/arm64/kvm/pkvm.c and mmu.c's pKVM paths; Android common kernel for
 * protected VMs), on cocosim's x86-shaped KVM. The hypervisor owns every guest's stage-2, so each
 * leaf KVM maps or unmaps for a VM is a hypercall (kvm_x86_ops.external_direct_root: the direct
 * root's leaves reach set_external_spte / remove_external_spte):
 *   - a protected VM's stage-2 fault donates the faulting page of the VMM's memory
 *     (pkvm_mem_abort(): pin_user_pages(FOLL_LONGTERM), __pkvm_host_donate_guest()); the page
 *     keeps what the VMM wrote there and the host loses access to it;
 *   - a non-protected VM's fault lends the page (__pkvm_host_share_guest()), its unmap takes it
 *     back (__pkvm_host_unshare_guest());
 *   - a protected VM's pages cannot be taken back while it runs (they stay pinned and donated);
 *     at teardown each is reclaimed (__pkvm_reclaim_dying_guest_page(): zeroed if the guest owned
 *     it) and unpinned.
 * The protected guest shares and unshares its pages with the MEM_SHARE / MEM_UNSHARE hypercalls
 * (kvm_handle_pvm_hvc64(): handled at EL2 without exiting to the host; a share of an IPA not yet
 * mapped becomes a stage-2 fault first, __pkvm_memshare_page_req()).
 *
 * Launch: the VMM writes the guest's image into its memory before the first run; pages in
 * pvmfw's range (KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA) get pvmfw's image at donation
 * (pkvm_load_pvmfw_pages()). pvmfw, guest firmware, measures the payload (DICE): pvmfw.ts.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { FOLL_PIN, gup_put_folio, page_folio, try_grab_folio } from '@cocosim/mm';
import { KVM_X86_DEFAULT_VM, type GuestFwcallOutcome, type Kvm, type KvmVcpu } from '@cocosim/kvm';
import { pkvm_hyp, type HypVm } from './hyp.js';
import {
  ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID, ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID,
  KVM_CAP_ARM_PROTECTED_VM, KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA, KVM_PHYS_SHIFT,
  KVM_VM_PROTECTED_INDEX, KVM_VM_TYPE_ARM_IPA_SIZE_MASK, KVM_VM_TYPE_ARM_PROTECTED, SMCCC_RET_INVALID_PARAMETER,
  SMCCC_RET_NOT_SUPPORTED, SMCCC_RET_SUCCESS,
} from './uapi.js';

/** PVMFW_INVALID_LOAD_ADDR: no pvmfw in this VM. */
export const PVMFW_INVALID_LOAD_ADDR = -1n;

/** kvm->arch.pkvm: cocosim's kvm.arch.vendor on a pKVM host. */
export class PkvmVm {
  /** kvm->arch.pkvm.pvmfw_load_addr. */
  pvmfw_load_addr = PVMFW_INVALID_LOAD_ADDR;
  /** The hypervisor's VM (kvm->arch.pkvm.handle), created at the first vCPU run or mapping. */
  hyp: HypVm | null = null;
  /** The pages pinned for the protected guest (the host's pkvm_mappings), by gfn. */
  readonly pinned = new Map<number, number>();

  constructor(readonly kvm: Kvm, readonly is_protected: boolean, readonly pvmfw: Uint8Array | null) {}
}

/** The pKVM state of a VM on a pKVM host. */
export function pkvm_vm(kvm: Kvm): PkvmVm | undefined {
  return kvm.arch.vendor instanceof PkvmVm ? kvm.arch.vendor : undefined;
}

/** kvm_vm_is_protected(). */
export function kvm_vm_is_protected(kvm: Kvm): boolean {
  return pkvm_vm(kvm)?.is_protected ?? false;
}

function u64_of(v: unknown): bigint | undefined {
  if (v === undefined) return 0n;
  if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 64n ? BigInt.asUintN(64, v) : undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt.asUintN(64, BigInt(v));
  return undefined;
}

/**
 * kvm_arch_init_vm()'s type checks on a pKVM host: bits other than KVM_VM_TYPE_ARM_PROTECTED and
 * the IPA size are -EINVAL, an IPA size below 32 or above 48 bits -EINVAL; a protected VM is
 * KVM_VM_PROTECTED_INDEX, anything else KVM_X86_DEFAULT_VM.
 */
export function pkvm_vm_type_decode(type: bigint): number {
  if ((type & ~(KVM_VM_TYPE_ARM_PROTECTED | KVM_VM_TYPE_ARM_IPA_SIZE_MASK)) !== 0n) return -Errno.EINVAL;
  const ipa = Number(type & KVM_VM_TYPE_ARM_IPA_SIZE_MASK) || KVM_PHYS_SHIFT;
  if (ipa < 32 || ipa > 48) return -Errno.EINVAL;
  return type & KVM_VM_TYPE_ARM_PROTECTED ? KVM_VM_PROTECTED_INDEX : KVM_X86_DEFAULT_VM;
}

/** pkvm_init_host_vm(): every VM of a pKVM host has its stage-2 at EL2; a protected one has protected state. */
export function pkvm_init_host_vm(kvm: Kvm, pvmfw: Uint8Array | null): number {
  const is_protected = kvm.arch.vm_type === KVM_VM_PROTECTED_INDEX;
  kvm.arch.vendor = new PkvmVm(kvm, is_protected, pvmfw);
  if (is_protected) {
    kvm.arch.has_protected_state = true;
    kvm.arch.pre_fault_allowed = false;
  }
  return 0;
}

/** pkvm_create_hyp_vm(): the hypervisor's copy of the VM, once. */
export function pkvm_create_hyp_vm(vm: PkvmVm): HypVm {
  if (vm.hyp === null) vm.hyp = pkvm_hyp(vm.kvm.kernel, vm.pvmfw).__pkvm_init_vm(vm.is_protected, vm.pvmfw_load_addr);
  return vm.hyp;
}

/** The pages one x86 MMU leaf of `level` maps. */
function level_pages(level: number): number {
  return 512 ** (level - 1);
}

/**
 * set_external_spte on a pKVM host (pkvm_pgtable_stage2_map()): each page of the leaf is donated
 * to a protected guest (pinned first, as pkvm_mem_abort() pins with FOLL_LONGTERM) or lent to a
 * non-protected one. A page the guest has there already is fine (another vCPU's fault). 4 KiB and
 * 2 MiB leaves (ACK maps PMD-sized guest memory); a 1 GiB leaf is -EINVAL. The hypervisor's
 * error otherwise.
 */
export function pkvm_set_external_spte(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  const vm = pkvm_vm(kvm);
  if (vm === undefined) return 0;
  if (level > 2) return -Errno.EINVAL;
  const hv = pkvm_create_hyp_vm(vm);
  const hyp = pkvm_hyp(kvm.kernel, vm.pvmfw);
  const store = kvm.kernel.store;
  for (let i = 0; i < level_pages(level); i++) {
    const g = gfn + i;
    const p = pfn + i;
    const have = hv.pgt.get(g);
    if (have !== undefined) {
      if (have.pfn === p) continue;
      return -Errno.EPERM;
    }
    if (!vm.is_protected) {
      const r = hyp.__pkvm_host_share_guest(p, g, hv);
      if (r) return r;
      continue;
    }
    const folio = page_folio(store, p);
    const pin = try_grab_folio(store, folio, 1, FOLL_PIN);
    if (pin) return pin;
    const r = hyp.__pkvm_host_donate_guest(p, g, hv);
    if (r) {
      gup_put_folio(store, folio, 1, FOLL_PIN);
      return r;
    }
    vm.pinned.set(g, p);
  }
  return 0;
}

/** Give a page back to the host at teardown: reclaim and unpin. */
function pkvm_reclaim_page(vm: PkvmVm, hv: HypVm, gfn: number, pfn: number): void {
  const kernel = vm.kvm.kernel;
  kernel.warn.WARN_ON(pkvm_hyp(kernel, vm.pvmfw).__pkvm_reclaim_dying_guest_page(hv, pfn, gfn) !== 0, 'pkvm_reclaim_page');
  if (vm.pinned.get(gfn) === pfn) {
    vm.pinned.delete(gfn);
    gup_put_folio(kernel.store, page_folio(kernel.store, pfn), 1, FOLL_PIN);
  }
}

/**
 * remove_external_spte on a pKVM host (pkvm_pgtable_stage2_unmap()): a non-protected guest's pages
 * are unshared; a running protected guest keeps its pages (the hypervisor refuses: they stay
 * donated and pinned); a dying one's are reclaimed.
 */
export function pkvm_remove_external_spte(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  const vm = pkvm_vm(kvm);
  const hv = vm?.hyp;
  if (vm === undefined || hv === null || hv === undefined) return 0;
  const hyp = pkvm_hyp(kvm.kernel, vm.pvmfw);
  for (let i = 0; i < level_pages(level); i++) {
    const e = hv.pgt.get(gfn + i);
    if (e === undefined || e.pfn !== pfn + i) continue;
    if (!vm.is_protected) hyp.__pkvm_host_unshare_guest(gfn + i, hv);
    else if (hv.is_dying) pkvm_reclaim_page(vm, hv, gfn + i, pfn + i);
  }
  return 0;
}

/**
 * pkvm_destroy_hyp_vm(): __pkvm_start_teardown_vm(), then every page of the guest's stage-2 is
 * reclaimed (a page it owned comes back zeroed) and unpinned, and the hypervisor forgets the VM.
 */
export function pkvm_destroy_hyp_vm(kvm: Kvm): void {
  const vm = pkvm_vm(kvm);
  const hv = vm?.hyp;
  if (vm === undefined || hv === null || hv === undefined) return;
  const hyp = pkvm_hyp(kvm.kernel, vm.pvmfw);
  hyp.__pkvm_start_teardown_vm(hv);
  for (const [gfn, e] of [...hv.pgt]) pkvm_reclaim_page(vm, hv, gfn, e.pfn);
  kvm.kernel.warn.WARN_ON(hyp.__pkvm_teardown_vm(hv) !== 0, '__pkvm_teardown_vm');
  vm.hyp = null;
}

/** kvm_arch_vcpu_run_pid_change() -> pkvm_create_hyp_vm(): the hypervisor's VM exists before the first entry. */
export function pkvm_vcpu_pre_run(vcpu: KvmVcpu): number {
  const vm = pkvm_vm(vcpu.kvm);
  if (vm !== undefined) pkvm_create_hyp_vm(vm);
  return 1;
}

/**
 * pkvm_vm_ioctl_enable_cap(): KVM_CAP_ARM_PROTECTED_VM on a protected VM (-EINVAL otherwise or for
 * another capability), args[1..3] zero (-EINVAL), the subcommand in flags:
 * KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA (args[0] the IPA: -EINVAL without pvmfw, -EBUSY once
 * the hypervisor's VM exists) or KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO (args[0] the struct
 * kvm_protected_vm_info the firmware size is written to: -EFAULT for no struct).
 */
export function pkvm_vm_ioctl_enable_cap(kvm: Kvm, cap: bigint, flags: bigint, args: readonly unknown[]): number {
  if (cap !== BigInt(KVM_CAP_ARM_PROTECTED_VM)) return -Errno.EINVAL;
  const vm = pkvm_vm(kvm);
  if (vm === undefined || !vm.is_protected) return -Errno.EINVAL;
  for (const a of args.slice(1, 4)) {
    const v = u64_of(a);
    if (v === undefined) return -Errno.EFAULT;
    if (v !== 0n) return -Errno.EINVAL;
  }
  switch (flags) {
    case BigInt(KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA): {
      const ipa = u64_of(args[0]);
      if (ipa === undefined) return -Errno.EFAULT;
      if (vm.pvmfw === null) return -Errno.EINVAL;
      if (vm.hyp !== null) return -Errno.EBUSY;
      vm.pvmfw_load_addr = ipa;
      return 0;
    }
    case BigInt(KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO): {
      const info = args[0];
      if (typeof info !== 'object' || info === null) return -Errno.EFAULT;
      (info as { firmware_size?: bigint }).firmware_size = BigInt(vm.pvmfw?.length ?? 0);
      return 0;
    }
    default:
      return -Errno.EINVAL;
  }
}

/**
 * kvm_handle_pvm_hvc64(): a protected guest's hypercalls handled at EL2. HYP_MEMINFO returns the
 * hypervisor's page size; MEM_SHARE / MEM_UNSHARE (x1 the IPA, x2 the page count, 0 meaning 1 for
 * legacy guests, x3 zero, the IPA page-aligned: SMCCC_RET_INVALID_PARAMETER otherwise) return
 * SMCCC_RET_SUCCESS and the count done; a share of an IPA with nothing mapped first faults it in
 * (pkvm_memshare_call() -> __pkvm_memshare_page_req()). A non-protected guest's vendor
 * hypercalls reach the host, which has none of these: SMCCC_RET_NOT_SUPPORTED.
 */
export function pkvm_guest_fwcall(vcpu: KvmVcpu, fn: bigint, args: readonly bigint[]): GuestFwcallOutcome {
  const vm = pkvm_vm(vcpu.kvm);
  if (vm === undefined || !vm.is_protected) return { kind: 'ret', regs: [SMCCC_RET_NOT_SUPPORTED] };
  const a = (i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);
  const invalid: GuestFwcallOutcome = { kind: 'ret', regs: [SMCCC_RET_INVALID_PARAMETER] };
  const hv = pkvm_create_hyp_vm(vm);
  const hyp = pkvm_hyp(vcpu.kvm.kernel, vm.pvmfw);
  switch (fn) {
    case ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID:
      vcpu.kvm.kernel.cost.charge('pkvm_hvc');
      if (a(0) || a(1) || a(2)) return invalid;
      return { kind: 'ret', regs: [BigInt(PAGE_SIZE)] };
    case ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID:
    case ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID: {
      const ipa = a(0);
      const nr = a(1) === 0n ? 1n : a(1);
      if (a(2) !== 0n || ipa % BigInt(PAGE_SIZE) !== 0n || nr > 512n) return invalid;
      const gfn = Number(ipa / BigInt(PAGE_SIZE));
      const share = fn === ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID;
      const r = share ? hyp.__pkvm_guest_share_host(hv, gfn, Number(nr)) : hyp.__pkvm_guest_unshare_host(hv, gfn, Number(nr));
      if (r >= 0) return { kind: 'ret', regs: [SMCCC_RET_SUCCESS, BigInt(r)] };
      if (share && r === -Errno.EFAULT) return { kind: 'fault', gpa: ipa, write: true };
      return invalid;
    }
    default:
      return { kind: 'ret', regs: [SMCCC_RET_NOT_SUPPORTED] };
  }
}
