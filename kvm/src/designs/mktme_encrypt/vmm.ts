/**
 * The VMM side of D12: guest RAM is anonymous memory the VMM encrypts with its own key, in the
 * order Dave Hansen gave (Re: [PATCH, RFC 45/62], 17 Jun 2019,
 * 3c658cce-7b7e-7d45-59a0-e17dae986713@intel.com): add_key("mktme", ..., "type=cpu
 * algorithm=aes-xts-128"), mmap(PROT_NONE), encrypt_mprotect(PROT_READ | PROT_WRITE, key), then
 * use; or, with the design's /dev/mktme uAPI, open("/dev/mktme"), ioctl(MKTME_IOC_ENCRYPT_ME),
 * mmap(MAP_SHARED, fd). Either way an ordinary memslot over it. The VMM keeps full access (it
 * owns the key) and has no conversion to make: convert() succeeds without doing anything.
 */
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, O_RDWR, PROT_NONE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import { design_of } from '../design.js';
import { mktme_cvm } from './kvm.js';
import { add_key, encrypt_mprotect } from './syscall.js';
import { KVM_SET_USER_MEMORY_REGION, MKTME_IOC_ENCRYPT_ME } from './uapi.js';

/** What the D12 VMM keeps per VM. */
export interface MktmeVmmState {
  /** The encrypted mapping (the memslot's userspace_addr). */
  readonly hva: bigint;
  /** The key's serial (encrypt_mprotect uAPI), or -1. */
  readonly serial: number;
  /** The /dev/mktme fd (its uAPI), or -1. */
  readonly dev_fd: number;
}

const KEY = 'mktme_encrypt';

/** The D12 VMM's state of `vm` (after add_memory). */
export function mktme_vmm_state(vm: CvmVm): MktmeVmmState {
  return vm.state.get(KEY) as MktmeVmmState;
}

/** The encrypted mapping, by the uAPI the host's design offers: its address, or MAP_FAILED (errno set). */
function mktme_alloc_guest_ram(vm: CvmVm): { hva: bigint; serial: number; dev_fd: number } | undefined {
  const { p } = vm;
  if ((design_of(p.kernel)?.options as { uapi?: string } | undefined)?.uapi === 'dev_mktme') {
    const dev_fd = p.open('/dev/mktme', O_RDWR);
    if (dev_fd < 0 || p.ioctl(dev_fd, MKTME_IOC_ENCRYPT_ME, 0) < 0) return undefined;
    const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev_fd, 0);
    return hva === MAP_FAILED ? undefined : { hva, serial: -1, dev_fd };
  }
  const serial = add_key(p, 'mktme', 'guest-ram', 'type=cpu algorithm=aes-xts-128');
  if (serial < 0) return undefined;
  const hva = p.mmap(0, vm.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (hva === MAP_FAILED || encrypt_mprotect(p, hva, vm.size, PROT_READ | PROT_WRITE, serial) < 0) return undefined;
  return { hva, serial, dev_fd: -1 };
}

function mktme_add_memory(vm: CvmVm): number {
  const ram = mktme_alloc_guest_ram(vm);
  if (ram === undefined) return -1;
  const r = vm.p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, {
    slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: ram.hva,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, ram satisfies MktmeVmmState);
  return 0;
}

export const mktme_encrypt_vmm: CvmDesign = {
  name: 'mktme_encrypt',
  vendor_cvm: (vendor_name, cvm) => (vendor_name === 'mktme' ? mktme_cvm : cvm),
  applies: (vendor) => (vendor === mktme_cvm ? undefined : `D12 runs on MKTME only (a default VM whose memory the VMM keys), not on ${vendor.name}`),
  add_memory: mktme_add_memory,
  convert: () => 0,
  hva: (vm, gpa) => mktme_vmm_state(vm).hva + (gpa - vm.base),
};
