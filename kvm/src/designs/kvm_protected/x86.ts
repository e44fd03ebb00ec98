/**
 * arch/x86/kvm/x86.c of "[RFC 10/16] KVM: x86: Enabled protected memory extension" (Kirill A.
 * Shutemov, 22 May 2020, https://lore.kernel.org/all/20200522125214.31348-11-kirill.shutemov@linux.intel.com/):
 * kvm_emulate_hypercall() handles the guest's three hypercalls inside KVM, nothing exits to the
 * VMM:
 *   case KVM_HC_ENABLE_MEM_PROTECTED: ret = kvm_protect_all_memory(vcpu->kvm);
 *   case KVM_HC_MEM_SHARE:            ret = kvm_protect_memory(vcpu->kvm, a0, a1, false);
 *   case KVM_HC_MEM_UNSHARE:          ret = kvm_protect_memory(vcpu->kvm, a0, a1, true);
 * The result goes to the guest's rax as it comes (0 or a negative kernel errno).
 */
import type { KvmVcpu } from '../../kvm_host.js';
import { ENOIOCTLCMD } from '../../kvm_hooks.js';
import { kvm_protect_all_memory, kvm_protect_memory } from './kvm_main.js';
import { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE } from './uapi.js';

/** The emulate_hypercall hook: the series' cases of kvm_emulate_hypercall(), -ENOIOCTLCMD for the rest. */
export function kvm_emulate_hypercall_protected(vcpu: KvmVcpu, nr: bigint, a0: bigint, a1: bigint): number {
  switch (nr) {
    case BigInt(KVM_HC_ENABLE_MEM_PROTECTED):
      return kvm_protect_all_memory(vcpu.kvm);
    case BigInt(KVM_HC_MEM_SHARE):
      return kvm_protect_memory(vcpu.kvm, a0, a1, false);
    case BigInt(KVM_HC_MEM_UNSHARE):
      return kvm_protect_memory(vcpu.kvm, a0, a1, true);
    default:
      return -ENOIOCTLCMD;
  }
}
