/**
 * S19 (designs.md §2): live migration, pre-copy. The VMM turns dirty logging on for the slot
 * holding guest memory (KVM_SET_USER_MEMORY_REGION2 of the same slot with
 * KVM_MEM_LOG_DIRTY_PAGES added) and reads a private page through its mapping, as QEMU's RAM
 * migration would send it. The verdict says what the read gave and whether dirty logging is on.
 */
import { errno_name } from '@cocosim/core';
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_SET_USER_MEMORY_REGION2, gfn_to_memslot, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, hex, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';

/** S19's verdicts: the private read, then dirty logging. */
export const S19 = {
  unreadable: 'private memory unreadable',
  plaintext: 'private memory readable in plaintext',
  ciphertext: 'private memory read as ciphertext',
  refused: 'dirty log refused',
  on: 'dirty log on',
  both: (read: string, log: string) => `${read}; ${log}`,
} as const;

const SECRET = 0x5e;
/** The flags user space may give a slot (KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_MEM_GUEST_MEMFD and designs' bits below 2^16). */
const USER_FLAGS = 0xffff;

const expected: Record<string, DesignExpectation> = {
  HWP: { outcome: S19.both(S19.unreadable, S19.on), tag: '(inferred: private unreadable; an ordinary memslot)' },
  PG: { outcome: S19.both(S19.unreadable, S19.on), tag: '(inferred: private unreadable; an ordinary memslot)' },
  GM68: { outcome: S19.both(S19.unreadable, S19.refused), tag: '(inferred) / [S 6.8 fixes] (gmem memslots cannot be dirty-logged)' },
  GMIP: { outcome: S19.both(S19.unreadable, S19.refused), tag: '(inferred) / [S 6.8 fixes] (gmem memslots cannot be dirty-logged)' },
  HTLB: { outcome: S19.both(S19.unreadable, S19.refused), tag: '(inferred) / [S 6.8 fixes] (gmem memslots cannot be dirty-logged)' },
  SEV: { outcome: S19.both(S19.ciphertext, S19.on), tag: '(inferred: ciphertext; SEND_UPDATE_DATA migrates it)' },
  MKTME: { outcome: S19.both(S19.plaintext, S19.on), tag: '(inferred)' },
};

export const s19LiveMigration = cvmScenario({
  name: 's19-live-migration',
  ref: 'S19',
  description: 'live migration (pre-copy): the VMM dirty-logs guest memory and reads it',
  expected,
  discard: false,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const { p } = vm;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const slot = gfn_to_memslot(vm.kvm, Number(gpa / 4096n));
    let log: string = S19.refused;
    if (slot !== undefined) {
      const fd = vm.design.private_fd?.(vm, gpa);
      const region = {
        slot: slot.id, flags: (slot.flags & USER_FLAGS) | KVM_MEM_LOG_DIRTY_PAGES,
        guest_phys_addr: BigInt(slot.base_gfn) * 4096n, memory_size: BigInt(slot.npages) * 4096n, userspace_addr: slot.userspace_addr,
        guest_memfd: fd?.fd ?? 0, guest_memfd_offset: BigInt(slot.gmem.pgoff) * 4096n,
      };
      const r = ctx.step(`ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, {slot ${slot.id}, flags |= KVM_MEM_LOG_DIRTY_PAGES})`, undefined,
        'virt/kvm/kvm_main.c check_memory_region_flags(): "Dirty logging private memory is not currently supported"',
        () => { const x = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION2, region); return [x < 0 ? `-1 ${errno_name(p.errno) ?? p.errno}` : String(x), x]; });
      if (r >= 0) log = S19.on;
    }
    const hva = vm.design.hva(vm, gpa);
    if (hva === undefined) {
      ctx.verdict(S19.both(S19.unreadable, log));
      return;
    }
    const x = ctx.step(`VMM: load 8 bytes at 0x${hva.toString(16)}`, undefined, 'the migration thread reads the page to send it',
      () => { const v = p.load(hva, 8); return [userAccessOutcome(v), v]; });
    let read: string = S19.unreadable;
    if (x instanceof Uint8Array && hex(x) === hex(fill8(SECRET))) read = S19.plaintext;
    else if (x instanceof Uint8Array && hex(x) !== hex(fill8(0))) read = S19.ciphertext;
    ctx.verdict(S19.both(read, log));
  },
});
