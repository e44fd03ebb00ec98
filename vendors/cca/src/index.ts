/**
 * @cocosim/vendor-cca: Arm CCA (RME + RMM 1.0) as a cocosim vendor: the kvm_x86_ops table of a host
 * whose KVM carries the CCA host series (rme.ts), the host's firmware (rmm.ts: GPT, granules,
 * realms, RTTs, RECs), an SMMU that checks the GPT, and the cost entries.
 *
 * Hooks the x86 seam gained for this vendor (kvm_x86_ops.ts, all optional with defaults that keep
 * the x86 behaviour): vcpu_pre_run, vm_type_decode, vm_enable_cap, check_extension,
 * has_mirrored_tdp, external_direct_root, guest_fwcall (with guest.ts's `fwcall` instruction),
 * guest_access_fault, and the is_private argument of set/remove_external_spte.
 */
import { Errno, PAGE_SIZE, type CostEntry, type HostRegistrar, type Pfn } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import type { CvmVendor, GuestFwcallOutcome, HostAccessOutcome, KvmVcpu, KvmX86Ops } from '@cocosim/kvm';
import type { Device, DmaAccessOutcome, IommuVendorOps } from '@cocosim/vfio';
import { CCA_COSTS } from './costs.js';
import { cca_cvm_for } from './cvm.js';
import { cca_debug_register } from './cca_debug.js';
import {
  RIPAS_EMPTY, RIPAS_RAM, RSI_ABI_VERSION, RSI_SUCCESS, SMCCC_RET_NOT_SUPPORTED, SMC_RSI_ABI_VERSION, SMC_RSI_IPA_STATE_GET,
  SMC_RSI_IPA_STATE_SET, SMC_RSI_MEASUREMENT_READ, type Ripas,
} from './rmi.js';
import { rmm_if_any, rmm_of, rtt_leaf } from './rmm.js';
import {
  cca_vm_type_decode, kvm_destroy_realm, kvm_init_realm_vm, kvm_is_realm, kvm_realm, kvm_realm_enable_cap,
  kvm_realm_is_private_address, kvm_realm_remove_external_spte, kvm_realm_set_external_spte, kvm_realm_vcpu_create,
  kvm_rec_pre_enter, realm_guest_access_fault, rec_exit_ripas_change, vcpu_rec,
} from './rme.js';
import { KVM_CAP_ARM_RME, KVM_PHYS_SHIFT, KVM_VM_REALM_INDEX } from './uapi.js';

export * from './rmi.js';
export * from './rim.js';
export * from './rmm.js';
export * from './rme.js';
export * from './uapi.js';
export * from './cvm.js';
export * from './cca_debug.js';
export { CCA_COSTS } from './costs.js';

/** The options of a CCA host. */
export interface CcaHostOptions {
  /**
   * The IPA size of the host's realms, in bits (default KVM_PHYS_SHIFT, 40): its top bit is the
   * unprotected (shared) alias, cocosim's host-wide gfn_attr_mask.
   */
  readonly ia_bits?: number;
}

/**
 * The realm's SMCs to the RMM (guest_fwcall): RSI_ABI_VERSION, RSI_IPA_STATE_SET (which exits to
 * the host: rec_exit_ripas_change(), and returns at the next entry), RSI_IPA_STATE_GET,
 * RSI_MEASUREMENT_READ; anything else SMCCC_RET_NOT_SUPPORTED. A VM that is no realm has no RMM
 * to call.
 */
function cca_guest_fwcall(vcpu: KvmVcpu, fn: bigint, args: readonly bigint[]): GuestFwcallOutcome {
  const rec = vcpu_rec(vcpu);
  if (rec === undefined) return { kind: 'ret', regs: [SMCCC_RET_NOT_SUPPORTED] };
  const rmm = rmm_of(vcpu.kvm.kernel);
  const a = (i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);
  switch (fn) {
    case SMC_RSI_ABI_VERSION:
      vcpu.kvm.kernel.cost.charge('cca_rsi_call');
      return { kind: 'ret', regs: [RSI_SUCCESS, RSI_ABI_VERSION, RSI_ABI_VERSION] };
    case SMC_RSI_IPA_STATE_SET: {
      const r = rmm.rsi_ipa_state_set(rec.rec, a(0), a(1), a(2), a(3));
      if (r.kind === 'ret') return r;
      return { kind: 'exit', ret: rec_exit_ripas_change(vcpu, rec, a(0), a(1), Number(a(2)) as Ripas) };
    }
    case SMC_RSI_IPA_STATE_GET:
      return { kind: 'ret', regs: rmm.rsi_ipa_state_get(rec.rec, a(0), a(1)) };
    case SMC_RSI_MEASUREMENT_READ:
      return { kind: 'ret', regs: rmm.rsi_measurement_read(rec.rec, a(0)) };
    default:
      return { kind: 'ret', regs: [SMCCC_RET_NOT_SUPPORTED] };
  }
}

/**
 * guest_accept for a realm: the realm checks with the RMM that [gpa, gpa + npages) has the RIPAS it
 * converted it to (RAM to private, EMPTY to shared), as it would with RSI_IPA_STATE_GET after
 * RSI_IPA_STATE_SET: 0, or -EPERM where it does not. The conversion itself is the
 * RSI_IPA_STATE_SET fwcall.
 */
function cca_guest_accept(vcpu: KvmVcpu, gpa: bigint, npages: number, to_private: boolean): number {
  const rec = vcpu_rec(vcpu);
  if (rec === undefined) return 0;
  const want: Ripas = to_private ? RIPAS_RAM : RIPAS_EMPTY;
  const base = gpa & ~kvm_realm(vcpu.kvm).shared_bit;
  for (let i = 0; i < npages; i++) {
    if (rtt_leaf(rec.rec.realm, base + BigInt(i) * BigInt(PAGE_SIZE)).entry.ripas !== want) return -Errno.EPERM;
  }
  return 0;
}

const GPF: HostAccessOutcome = { kind: 'fault', reason: 'granule protection fault (GPT: Realm PAS)' };
const GPC: HostAccessOutcome = { kind: 'fault', reason: 'SMMU granule protection check (GPT: Realm PAS)' };
const OK: HostAccessOutcome = { kind: 'ok' };

/** The GPT's answer to a host CPU access of a pfn. */
function cca_host_access(kernel: Kernel, pfn: number): HostAccessOutcome {
  const rmm = rmm_if_any(kernel);
  return rmm !== undefined && rmm.gpt_pas(pfn) !== 'NS' ? GPF : OK;
}

/** The kvm_x86_ops table of a CCA host whose realms have `ia_bits`-bit IPA spaces. */
export function cca_x86_ops(opts: CcaHostOptions = {}): KvmX86Ops {
  const ia_bits = opts.ia_bits ?? KVM_PHYS_SHIFT;
  return {
    name: 'cca',
    supported_vm_types: 1 << KVM_VM_REALM_INDEX,
    tdp_enabled: true,
    gfn_attr_mask: 2 ** (ia_bits - 1 - 12),
    vm_type_decode: (type) => cca_vm_type_decode(type, ia_bits),
    vm_init: (kvm) => kvm_init_realm_vm(kvm, ia_bits),
    vm_destroy: kvm_destroy_realm,
    vcpu_create: kvm_realm_vcpu_create,
    vcpu_pre_run: kvm_rec_pre_enter,
    vm_enable_cap: kvm_realm_enable_cap,
    check_extension: (cap) => (cap === KVM_CAP_ARM_RME ? 1 : 0),
    has_mirrored_tdp: (kvm) => kvm.arch.vm_type === KVM_VM_REALM_INDEX,
    external_direct_root: (kvm) => kvm.arch.vm_type === KVM_VM_REALM_INDEX,
    set_external_spte: kvm_realm_set_external_spte,
    remove_external_spte: kvm_realm_remove_external_spte,
    guest_access_is_private: (vcpu, gpa) => kvm_is_realm(vcpu.kvm) && kvm_realm_is_private_address(kvm_realm(vcpu.kvm), gpa),
    guest_accept: cca_guest_accept,
    guest_fwcall: cca_guest_fwcall,
    guest_access_fault: (vcpu, gpa) => realm_guest_access_fault(vcpu, gpa),
    host_access: (kvm, pfn) => cca_host_access(kvm.kernel, pfn),
    dma_access: (kvm, pfn) => (cca_host_access(kvm.kernel, pfn).kind === 'ok' ? OK : GPC),
  };
}

/** An Arm SMMU with RME: every DMA goes through the Granule Protection Check. */
export const cca_iommu_ops: IommuVendorOps = {
  name: 'smmu-rme',
  dma_access: (dev: Device, pfn: Pfn): DmaAccessOutcome => {
    const rmm = rmm_if_any(dev.iommu.kernel);
    return rmm !== undefined && rmm.gpt_pas(pfn) !== 'NS' ? { kind: 'fault', reason: 'SMMU granule protection check (GPT: Realm PAS)' } : { kind: 'ok' };
  },
};

/** Creates the host's RMM (its cost entries, its GPT check of host accesses) when the host boots. */
export function ccaRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    rmm_of(kernel);
    cca_debug_register(root, kernel);
  };
}

/** A vendor plugin: its name, its KVM table, its IOMMU table, its costs and its host registrar. */
export interface CcaVendorPlugin {
  readonly name: 'cca';
  readonly x86_ops: KvmX86Ops;
  readonly iommu_ops: IommuVendorOps;
  readonly costs: readonly CostEntry[];
  readonly registrar: HostRegistrar;
  /** How user space builds a realm and how the realm converts its memory (kvm/src/cvm.ts). */
  readonly cvm: CvmVendor;
}

/** The CCA plugin for realms of `ia_bits`-bit IPA spaces. */
export function createCcaVendorPlugin(opts: CcaHostOptions = {}): CcaVendorPlugin {
  return {
    name: 'cca', x86_ops: cca_x86_ops(opts), iommu_ops: cca_iommu_ops, costs: CCA_COSTS, registrar: ccaRegistrar(),
    cvm: cca_cvm_for(opts.ia_bits ?? KVM_PHYS_SHIFT),
  };
}

/** The CCA plugin with 40-bit realms (KVM_PHYS_SHIFT). */
export const ccaVendorPlugin: CcaVendorPlugin = createCcaVendorPlugin();
