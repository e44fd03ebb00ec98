/**
 * The pKVM half of a confidential VM (kvm/src/cvm.ts CvmVendor): a protected VM as crosvm
 * creates it on a pKVM host, and the protected guest's side of a conversion as Linux's
 * drivers/virt/coco/pkvm-guest/arm-pkvm-guest.c does it.
 *
 *   - VM type: KVM_VM_TYPE_ARM_PROTECTED (the 40-bit default IPA size);
 *   - vm_init: KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, crosvm's check that the VM is protected (it
 *     also learns pvmfw's size); no firmware IPA is set: crosvm gives pvmfw a memslot of its own
 *     below RAM, which the design does not back;
 *   - launch_update: the VMM writes the payload into its memory at the memslot's user address;
 *     pKVM measures nothing and has no launch ioctl: each page is donated with those bytes at the
 *     guest's first touch (pkvm_mem_abort(), __pkvm_host_donate_guest()), and pvmfw, in the
 *     guest, measures the payload as it lies in memory (pvmfw.ts);
 *   - measurement: that payload hash (SHA-512 of the loaded bytes in guest-physical order), the
 *     value a verifier expects in the DICE chain;
 *   - guest_convert: MEM_UNSHARE (to private) / MEM_SHARE (to shared) per page and per hypervisor
 *     granule (HYP_MEMINFO), with x2 = 0;
 *   - no VMM exit: kvm_handle_pvm_hvc64() handles both at EL2 (the host only takes the stage-2
 *     fault of a share of an unmapped IPA), so conversion_exit is always undefined and the
 *     design's convert() is never called after launch.
 *
 * A protected guest's memory is private from its first touch: "shared" is only what it shared,
 * so MEM_UNSHARE of a page it never shared fails (SMCCC_RET_INVALID_PARAMETER, -EPERM).
 */
import { createHash } from 'node:crypto';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { KVM_ENABLE_CAP, __gfn_to_hva_memslot, fwcall, gfn_to_memslot, type CvmVendor, type CvmVm, type GuestCode, type Kvm } from '@cocosim/kvm';
import {
  ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID, ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID,
  KVM_CAP_ARM_PROTECTED_VM, KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, KVM_VM_TYPE_ARM_PROTECTED, SMCCC_RET_SUCCESS,
  type KvmProtectedVmInfo,
} from './uapi.js';
import { PKVM_ID_GUEST, PKVM_ID_HOST, PKVM_ID_HYP, PKVM_NOPAGE, PKVM_PAGE_OWNED, pkvm_hyp_if_any, pkvm_page_state_name } from './hyp.js';
import { pkvm_vm } from './pkvm.js';

const PAGE = BigInt(PAGE_SIZE);
const KEY = 'pkvm';

/** What the pKVM half keeps per VM: the payload the VMM loaded, by IPA. */
interface PkvmVmmState {
  readonly payload: Map<bigint, Uint8Array>;
}

function pkvm_state(vm: CvmVm): PkvmVmmState {
  return vm.state.get(KEY) as PkvmVmmState;
}

/** crosvm's query of the protected VM (KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO): 0, or -1 with errno (-EINVAL: not protected). */
function pkvm_vm_init(vm: CvmVm): number {
  const info: KvmProtectedVmInfo = {};
  const r = vm.p.ioctl(vm.vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, args: [info] });
  if (r < 0) return -1;
  vm.state.set(KEY, { payload: new Map() } satisfies PkvmVmmState);
  return 0;
}

/** The payload into the VMM's memory at the memslot's user address; -1 EFAULT where no memslot holds a page or a copy faults. */
function pkvm_load_payload(vm: CvmVm, gpa: bigint, src: bigint, len: bigint): number {
  const { p } = vm;
  for (let off = 0n; off < len; off += PAGE) {
    const gfn = Number((gpa + off) / PAGE);
    const slot = gfn_to_memslot(vm.kvm, gfn);
    const bytes = slot === undefined ? undefined : p.load(src + off, PAGE_SIZE);
    if (slot === undefined || !(bytes instanceof Uint8Array) || p.store(__gfn_to_hva_memslot(slot, gfn), bytes) !== 0) {
      p.errno = Errno.EFAULT;
      return -1;
    }
    pkvm_state(vm).payload.set(gpa + off, bytes);
  }
  return 0;
}

/** pvmfw's payload hash of what the VMM loaded, in guest-physical order (pvmfw reads memory, not the load order). */
function pkvm_measurement(vm: CvmVm): string {
  const h = createHash('sha512');
  for (const [, bytes] of [...pkvm_state(vm).payload].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(bytes);
  return h.digest('hex');
}

/** The guest kernel's pkvm_granule (HYP_MEMINFO at pkvm_init_hyp_services()), per VM. */
const pkvm_granule = new WeakMap<CvmVm, bigint>();

/**
 * pkvm_init_hyp_services()'s HYP_MEMINFO (once per guest), then __set_memory_range():
 * arm_smccc_do_one_page() of each page, one call per hypervisor granule; a call that does not
 * return SMCCC_RET_SUCCESS is -EPERM. A granule above PAGE_SIZE (or an error) leaves the guest
 * without the crypt ops: -EPERM too (set_memory_{en,de}crypted() cannot convert).
 */
export function* pkvm_set_memory_range(vm: CvmVm, func_id: bigint, gpa: bigint, npages: bigint): GuestCode<bigint> {
  let granule = pkvm_granule.get(vm);
  if (granule === undefined) {
    const [a0] = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID, 0, 0, 0);
    granule = a0 ?? 0n;
    pkvm_granule.set(vm, granule);
  }
  if (granule === 0n || granule > PAGE) return BigInt(-Errno.EPERM);
  for (let page = gpa; page < gpa + npages * PAGE; page += PAGE) {
    for (let phys = page; phys < page + PAGE; phys += granule) {
      const [a0] = yield* fwcall(func_id, phys, 0, 0);
      if (a0 !== SMCCC_RET_SUCCESS) return BigInt(-Errno.EPERM);
    }
  }
  return 0n;
}

/** The owner ids of the hypervisor's page states (enum pkvm_component_id), for messages. */
function pkvm_owner_name(id: number): string {
  return id === PKVM_ID_HOST ? 'the host' : id === PKVM_ID_HYP ? 'the hypervisor' : id === PKVM_ID_GUEST ? 'a guest' : `component ${id}`;
}

/**
 * What the hypervisor's page ownership holds for `pfn` at the protected guest's `ipa`
 * (mem_protect.c's guest stage-2 entry and hyp_vmemmap host_state): 'guest' when this VM's
 * stage-2 maps the IPA to `pfn` as PKVM_PAGE_OWNED (donated, not shared back) and the host's
 * state of `pfn` is PKVM_NOPAGE with a guest as owner; otherwise the first thing that differs.
 */
export function pkvm_cvm_private_owner(vm: CvmVm, ipa: bigint, pfn: number): string {
  return pkvm_private_owner(vm.kvm, ipa, pfn);
}

/** pkvm_cvm_private_owner() of a protected VM `kvm` (also the DEBUG_VM rule's, pkvm_debug.ts). */
export function pkvm_private_owner(kvm: Kvm, ipa: bigint, pfn: number): string {
  const hv = pkvm_vm(kvm)?.hyp ?? null;
  const hyp = pkvm_hyp_if_any(kvm.kernel);
  if (hv === null || hyp === undefined) return 'no hypervisor VM';
  const e = hv.pgt.get(Number(ipa / PAGE));
  if (e === undefined) return 'not in the guest stage-2';
  if (e.pfn !== pfn) return `guest stage-2 maps this IPA to pfn 0x${e.pfn.toString(16)}`;
  if (e.state !== PKVM_PAGE_OWNED) return `guest ${pkvm_page_state_name(e.state)}, host ${pkvm_page_state_name(hyp.host_state(pfn))}`;
  const host = hyp.host_state(pfn);
  if (host !== PKVM_NOPAGE) return `host ${pkvm_page_state_name(host)}`;
  const owner = hyp.host_owner(pfn);
  return owner === PKVM_ID_GUEST ? 'guest' : `host NOPAGE, owned by ${pkvm_owner_name(owner)}`;
}

/** The pKVM half. */
export const pkvm_cvm: CvmVendor = {
  name: 'pkvm',
  vm_type: Number(KVM_VM_TYPE_ARM_PROTECTED),
  // A protected guest owns every page it touches (donation on fault); it shares what it must.
  initially_private: true,
  protects_in_hypervisor: true,
  // The guest shares a page at its own IPA: no alias bit (the hypervisor's stage-2 decides).
  shared_gpa: (_vm, gpa) => gpa,
  vm_init: pkvm_vm_init,
  vcpu_init: () => 0,
  launch_update: pkvm_load_payload,
  measurement: pkvm_measurement,
  guest_convert: (vm, gpa, npages, to_private) =>
    pkvm_set_memory_range(vm, to_private ? ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID : ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, gpa, npages),
  conversion_exit: () => undefined,
  // Nothing reaches the VMM, so there is nothing to answer.
  complete_conversion: () => undefined,
  private_owner: pkvm_cvm_private_owner,
};
