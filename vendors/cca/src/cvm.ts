/**
 * The Arm CCA half of a confidential VM (kvm/src/cvm.ts CvmVendor): a realm driven the way the
 * host series' VMM drives it (QEMU's rme-guest for the v8-v10 uAPI this plugin models,
 * uapi.ts), and the realm's side of a conversion as Linux's realm guest does it
 * (arch/arm64/include/asm/rsi.h, arch/arm64/mm/pageattr.c __set_memory_enc_dec()).
 *
 *   - VM type: KVM_VM_TYPE_ARM_REALM with the host's IPA size;
 *   - vm_init: KVM_CAP_ARM_RME_CREATE_REALM (RMI_REALM_CREATE: the RIM starts from the realm
 *     parameters); the vCPU created next gets its REC at once (the realm is NEW);
 *   - launch_update: the image into the VMM's memory at the memslot's user address (POPULATE
 *     copies from there), INIT_RIPAS over the range (RIPAS RAM), POPULATE with
 *     KVM_ARM_RME_POPULATE_FLAGS_MEASURE (RMI_DATA_CREATE, measured into the RIM);
 *   - launch_finish: KVM_CAP_ARM_RME_ACTIVATE_REALM; until then KVM_RUN is -EINVAL;
 *   - guest_convert: rsi_set_memory_range_{protected,shared}(): RSI_IPA_STATE_SET with
 *     RSI_CHANGE_DESTROYED until the RMM reports the whole range done;
 *   - the request reaches the VMM as KVM_RUN -1 EFAULT with KVM_EXIT_MEMORY_FAULT
 *     (rec_exit_ripas_change()), answered like any memory fault (QEMU's kvm_convert_memory());
 *     KVM completes the RIPAS change at the next KVM_RUN, so the VMM writes nothing back.
 *
 * Memory the VMM never made RAM stays RIPAS EMPTY: the contract starts a VM all shared, and a
 * realm touching EMPTY memory takes an SEA, as Linux realm guests avoid by converting their RAM
 * at boot (rsi_set_memory_range_protected_safe()).
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  KVM_ENABLE_CAP, KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_EXIT_FLAG_PRIVATE, __gfn_to_hva_memslot, fwcall, gfn_to_memslot,
  type CvmConversion, type CvmVendor, type CvmVm, type GuestCode, type GuestPageTables, type Kvm, type KvmRun,
} from '@cocosim/kvm';
import { measurement_get_size } from './rim.js';
import {
  GRANULE_STATE_DATA, GRANULE_STATE_DELEGATED, GRANULE_STATE_NS, GRANULE_STATE_RD, GRANULE_STATE_REC, GRANULE_STATE_REC_AUX,
  GRANULE_STATE_RTT, RIPAS_EMPTY, RIPAS_RAM, RMM_RTT_LEVEL_SHIFT, RSI_ACCEPT, RSI_CHANGE_DESTROYED, SMC_RSI_IPA_STATE_SET, ripas_name,
} from './rmi.js';
import { cca_realm_rim, kvm_is_realm, kvm_realm } from './rme.js';
import { rmm_if_any, rtt_leaf } from './rmm.js';
import {
  KVM_ARM_RME_POPULATE_FLAGS_MEASURE, KVM_CAP_ARM_RME, KVM_CAP_ARM_RME_ACTIVATE_REALM, KVM_CAP_ARM_RME_CREATE_REALM,
  KVM_CAP_ARM_RME_INIT_RIPAS_REALM, KVM_CAP_ARM_RME_POPULATE_REALM, KVM_PHYS_SHIFT, KVM_VM_TYPE_ARM_REALM,
} from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);
const KEY = 'cca';

/** What the CCA half keeps per VM: the memory fault it answered last (see cca_conversion_exit()). */
interface CcaVmmState {
  last_fault: string | undefined;
}

function cca_state(vm: CvmVm): CcaVmmState {
  let s = vm.state.get(KEY) as CcaVmmState | undefined;
  if (s === undefined) {
    s = { last_fault: undefined };
    vm.state.set(KEY, s);
  }
  return s;
}

/** The guest's page tables: the realm's whole IPA space identity-mapped, both aliases. */
export function realm_guest_page_tables(ia_bits: number): GuestPageTables {
  const top = 1n << BigInt(ia_bits);
  return (gva: bigint): bigint | undefined => (gva >= 0n && gva < top ? gva : undefined);
}

/** KVM_ENABLE_CAP(KVM_CAP_ARM_RME, action, struct): 0, or -1 with errno. */
export function rme_enable_cap(vm: CvmVm, action: number, arg?: object): number {
  return vm.p.ioctl(vm.vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_RME, flags: 0, args: [action, arg ?? 0, 0, 0] }) < 0 ? -1 : 0;
}

/**
 * The VMM's copy of the image at the memslot's user address for [gpa, gpa + len) (where
 * POPULATE's populate_region_cb() gets the source from): -1 EFAULT where no memslot holds a page
 * or the copy faults.
 */
function rme_load_image(vm: CvmVm, gpa: bigint, src: bigint, len: bigint): number {
  const { p } = vm;
  for (let off = 0n; off < len; off += PAGE) {
    const gfn = Number((gpa + off) / PAGE);
    const slot = gfn_to_memslot(vm.kvm, gfn);
    const bytes = slot === undefined ? undefined : p.load(src + off, PAGE_SIZE);
    if (slot === undefined || !(bytes instanceof Uint8Array) || p.store(__gfn_to_hva_memslot(slot, gfn), bytes) !== 0) {
      p.errno = Errno.EFAULT;
      return -1;
    }
  }
  return 0;
}

/**
 * rsi_set_memory_range() (arch/arm64/include/asm/rsi.h): RSI_IPA_STATE_SET from `start` until the
 * RMM reports `end` reached; a failed call, a rejected change (rsi_set_addr_range_state()'s
 * -EPERM) or a `top` outside the range is -EINVAL.
 */
export function* rsi_set_memory_range(start: bigint, end: bigint, ripas: number, flags: bigint): GuestCode<bigint> {
  while (start !== end) {
    const [status, top, response] = yield* fwcall(SMC_RSI_IPA_STATE_SET, start, end, ripas, flags);
    if (status !== 0n || response !== RSI_ACCEPT || top === undefined || top < start || top > end) return BigInt(-Errno.EINVAL);
    start = top;
  }
  return 0n;
}

/**
 * The VMM's reading of an exit: every KVM_EXIT_MEMORY_FAULT is converted, as QEMU's
 * kvm_cpu_exec() does. A fault repeated right after the VMM answered it (a RIPAS DESTROYED page
 * the realm did not ask for, a conversion the design refused) is not answered again: QEMU would
 * re-enter forever, cvm_run() returns the -EFAULT instead.
 */
function cca_conversion_exit(vm: CvmVm, run: KvmRun): CvmConversion | undefined {
  const s = cca_state(vm);
  if (run.exit_reason !== KVM_EXIT_MEMORY_FAULT) {
    s.last_fault = undefined;
    return undefined;
  }
  const { gpa, size, flags } = run.memory_fault;
  const key = `${gpa}:${size}:${flags}`;
  if (s.last_fault === key) return undefined;
  s.last_fault = key;
  return { gpa, npages: (size + PAGE - 1n) / PAGE, to_private: (flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0n };
}

/** Granule states by name (enum granule_state), for messages. */
const GRANULE_NAMES = new Map<number, string>([
  [GRANULE_STATE_NS, 'NS'], [GRANULE_STATE_DELEGATED, 'DELEGATED'], [GRANULE_STATE_RD, 'RD'], [GRANULE_STATE_REC, 'REC'],
  [GRANULE_STATE_REC_AUX, 'REC_AUX'], [GRANULE_STATE_DATA, 'DATA'], [GRANULE_STATE_RTT, 'RTT'],
]);

/**
 * What the RMM holds for `pfn` at the realm's protected `ipa`, as RMI_RTT_READ_ENTRY (the leaf
 * RTT entry for the IPA) and the granule's state report it: 'guest' when the realm's RTT maps the
 * IPA ASSIGNED to `pfn` with RIPAS RAM and the granule is a DATA granule (in the Realm PAS); a
 * DATA granule lives in exactly one realm's RTT (RMI_DATA_CREATE maps it there, RMI_DATA_DESTROY
 * unmaps it), so the realm's own entry names its owner. Otherwise the first thing that differs.
 */
export function cca_cvm_private_owner(vm: CvmVm, ipa: bigint, pfn: number): string {
  return cca_private_owner(vm.kvm, ipa, pfn);
}

/**
 * cca_cvm_private_owner() of a realm VM `kvm`; with `any_ripas`, an ASSIGNED entry whose RIPAS is
 * not RAM counts as the realm's too ('guest'), as it does for the DEBUG_VM rule (cca_debug.ts):
 * the granule is the realm's whatever the realm's view of the IPA (an access to RIPAS EMPTY takes
 * an SEA, a DESTROYED one exits).
 */
export function cca_private_owner(kvm: Kvm, ipa: bigint, pfn: number, any_ripas = false): string {
  const rmm = rmm_if_any(kvm.kernel);
  const rd = kvm_is_realm(kvm) ? rmm?.realm_at(kvm_realm(kvm).rd_pa) ?? null : null;
  if (rmm === undefined || rd === null) return 'no realm';
  const { level, entry } = rtt_leaf(rd, ipa);
  if (entry.hipas !== 'ASSIGNED') return `RTT ${entry.hipas} RIPAS ${ripas_name(entry.ripas)} at this IPA`;
  const mapped = entry.pa + Number((ipa % (1n << BigInt(RMM_RTT_LEVEL_SHIFT(level)))) / PAGE);
  if (mapped !== pfn) return `RTT maps this IPA to granule 0x${mapped.toString(16)}`;
  if (entry.ripas !== RIPAS_RAM && !any_ripas) return `RTT ASSIGNED RIPAS ${ripas_name(entry.ripas)}`;
  const state = rmm.granule_state(pfn);
  if (state !== GRANULE_STATE_DATA) return `granule ${GRANULE_NAMES.get(state) ?? state}`;
  return rmm.gpt_pas(pfn) === 'REALM' ? 'guest' : `DATA granule in the ${rmm.gpt_pas(pfn)} PAS`;
}

/** The CCA half for a host whose realms have `ia_bits`-bit IPA spaces. */
export function cca_cvm_for(ia_bits: number = KVM_PHYS_SHIFT): CvmVendor {
  const shared_bit = 1n << BigInt(ia_bits - 1);
  return {
    name: 'cca',
    // KVM_VM_TYPE_ARM_IPA_SIZE 0 is KVM_PHYS_SHIFT; another size is in bits 7:0.
    vm_type: KVM_VM_TYPE_ARM_REALM | (ia_bits === KVM_PHYS_SHIFT ? 0 : ia_bits),
    shared_gpa: (_vm, gpa) => gpa | shared_bit,
    page_tables: realm_guest_page_tables(ia_bits),
    vm_init: (vm) => rme_enable_cap(vm, KVM_CAP_ARM_RME_CREATE_REALM),
    vcpu_init: () => 0,
    launch_update(vm, gpa, src, len) {
      if (rme_load_image(vm, gpa, src, len) < 0) return -1;
      if (rme_enable_cap(vm, KVM_CAP_ARM_RME_INIT_RIPAS_REALM, { base: gpa, size: len }) < 0) return -1;
      return rme_enable_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: gpa, size: len, flags: KVM_ARM_RME_POPULATE_FLAGS_MEASURE });
    },
    launch_finish: (vm) => rme_enable_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM),
    measurement(vm) {
      const rim = cca_realm_rim(vm.kvm);
      if (rim === undefined) return '';
      return Buffer.from(rim.subarray(0, measurement_get_size(kvm_realm(vm.kvm).hash_algo))).toString('hex');
    },
    guest_convert: (_vm, gpa, npages, to_private) =>
      rsi_set_memory_range(gpa, gpa + npages * PAGE, to_private ? RIPAS_RAM : RIPAS_EMPTY, RSI_CHANGE_DESTROYED),
    conversion_exit: cca_conversion_exit,
    // KVM completes (or, for a range outside the protected half, rejects) the change itself at
    // the next KVM_RUN (kvm_rec_pre_enter()); the uAPI has nothing for the VMM to write.
    complete_conversion: () => undefined,
    vmm_cannot_refuse: true,
    conversion_errno: Errno.EFAULT,
    private_owner: cca_cvm_private_owner,
  };
}

/** The CCA half for 40-bit realms (KVM_PHYS_SHIFT). */
export const cca_cvm: CvmVendor = cca_cvm_for();
