/**
 * MKTME under KVM: no private VM type; a default VM whose memory the VMM encrypted with a KeyID
 * (the RFC's encrypt_mprotect + EPT KeyID) runs a guest program that reads and writes plaintext
 * while the host (user and kernel) and KeyID-unaware DMA see ciphertext, with no fault.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, type Pfn } from '@cocosim/core';
import { MAP_PRIVATE, MAP_ANONYMOUS, PROT_READ, PROT_WRITE, Process, isSigInfo, pagemap_pfn } from '@cocosim/mm';
import {
  KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_EXIT_IO, KVM_RUN, KVM_SET_USER_MEMORY_REGION, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
  KVM_X86_TDX_VM, guestLoad, guestStore, kvm_vcpu_set_guest_program, pioOut,
  type GuestProgram, type Kvm, type KvmVcpu,
} from '@cocosim/kvm';
import type { Device } from '@cocosim/vfio';
import { MKTME_AES_XTS_128, MKTME_KEYID_SET_KEY_DIRECT, MKTME_KEY_PROGRAM } from './pconfig.js';
import { mktme_host, type MktmeHost } from './mktme_util.js';
import { to_kvm_mktme, mktme_x86_ops } from './mktme_kvm.js';
import { mktmeIommuOps } from './index.js';

const PAGE = 4096;
const RAM_GPA = 0x100000n;
const KEYID = 12;
const hosts: MktmeHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

interface Vm {
  readonly h: MktmeHost;
  readonly p: Process;
  readonly fd: number;
  readonly kvm: Kvm;
  readonly hva: bigint;
  vcpu_fd: number;
}

function vm_create(): Vm {
  const h = mktme_host({ seed: 5 });
  hosts.push(h);
  const p = new Process(h.kernel);
  const kvm_fd = p.open('/dev/kvm');
  const fd = p.ioctl(kvm_fd, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
  expect(fd).toBeGreaterThanOrEqual(0);
  const hva = p.mmap(0, 4n * 4096n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctl(fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: RAM_GPA, memory_size: 4n * 4096n, userspace_addr: hva })).toBe(0);
  return { h, p, fd, kvm: p.task.files.lookup(fd)!.private_data as Kvm, hva, vcpu_fd: -1 };
}

function run_program(vm: Vm, prog: GuestProgram): void {
  if (vm.vcpu_fd < 0) vm.vcpu_fd = vm.p.ioctl(vm.fd, KVM_CREATE_VCPU, 0);
  const vcpu = vm.p.task.files.lookup(vm.vcpu_fd)!.private_data as KvmVcpu;
  kvm_vcpu_set_guest_program(vcpu, prog);
  expect(vm.p.ioctl(vm.vcpu_fd, KVM_RUN, 0)).toBe(0);
  expect(vcpu.run.exit_reason).toBe(KVM_EXIT_IO);
}

/**
 * The VMM's page at RAM_GPA faulted in, then re-keyed to KEYID as encrypt_mprotect() + the fault
 * that follows would: zeroed through the KeyID, then filled with `secret` through the VMM's
 * KeyID mapping. Returns the pfn.
 */
function encrypt_guest_page(vm: Vm, secret: Uint8Array): number {
  const m = vm.h.mktme;
  expect(m.pconfig(MKTME_KEY_PROGRAM, { keyid: KEYID, keyid_ctrl: MKTME_KEYID_SET_KEY_DIRECT | MKTME_AES_XTS_128 })).toEqual({ kind: 'ret', rax: 0 });
  expect(vm.p.store(vm.hva, new Uint8Array(PAGE).fill(0x5a))).toBe(0);
  const pfn = pagemap_pfn(vm.p.mm, vm.hva)!;
  expect(m.prep_encrypted_page(pfn, KEYID)).toBe(0);
  m.write(m.mk_pa(pfn, KEYID), secret);
  to_kvm_mktme(vm.kvm).keyid = KEYID;
  return pfn;
}

describe('MKTME has no confidential VM type', () => {
  test('KVM_CREATE_VM accepts only KVM_X86_DEFAULT_VM', () => {
    const h = mktme_host();
    hosts.push(h);
    const p = new Process(h.kernel);
    const kvm_fd = p.open('/dev/kvm');
    for (const t of [KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM]) {
      expect(p.ioctl(kvm_fd, KVM_CREATE_VM, t)).toBe(-1);
      expect(p.errno).toBe(Errno.EINVAL);
    }
    const fd = p.ioctl(kvm_fd, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(fd).toBeGreaterThanOrEqual(0);
    const kvm = p.task.files.lookup(fd)!.private_data as Kvm;
    expect(kvm.arch.has_private_mem).toBe(false);
    expect(to_kvm_mktme(kvm)).toEqual({ keyid: 0 });
  });
});

describe('a guest on KeyID-encrypted memory', () => {
  test('the guest reads its plaintext; host user and host kernel see ciphertext without a fault', () => {
    const vm = vm_create();
    const secret = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
    const pfn = encrypt_guest_page(vm, secret);
    let seen: Uint8Array | undefined;
    run_program(vm, function* () {
      seen = yield* guestLoad(RAM_GPA, 64);
      yield* pioOut(0x80, 1);
    });
    expect(seen).toEqual(secret);
    // Host user space through its KeyID-0 mapping: garbage, no SIGBUS.
    const user = vm.p.load(vm.hva, 64);
    expect(isSigInfo(user)).toBe(false);
    expect(user).not.toEqual(secret);
    // The hardware's answers, per actor.
    expect(mktme_x86_ops.host_access!(vm.kvm, pfn, false, 'user')).toEqual({ kind: 'ciphertext' });
    expect(mktme_x86_ops.host_access!(vm.kvm, pfn, true, 'kernel')).toEqual({ kind: 'ciphertext' });
    expect(mktme_x86_ops.dma_access!(vm.kvm, pfn, false)).toEqual({ kind: 'ciphertext' });
    expect(mktme_x86_ops.dma_access!(vm.kvm, pfn, true)).toEqual({ kind: 'ciphertext' });
    const dev = { iommu: { kernel: vm.h.kernel } } as unknown as Device;
    expect(mktmeIommuOps.dma_access!(dev, pfn as Pfn, true)).toEqual({ kind: 'ok' });
    // A page the VMM never re-keyed is plain to everyone.
    expect(vm.p.store(vm.hva + 4096n, new Uint8Array(8).fill(1))).toBe(0);
    const plain = pagemap_pfn(vm.p.mm, vm.hva + 4096n)!;
    expect(mktme_x86_ops.host_access!(vm.kvm, plain, false, 'kernel')).toEqual({ kind: 'ok' });
  });

  test('guest stores land under the KeyID; a host write is silent and the guest then reads garbage', () => {
    const vm = vm_create();
    const pfn = encrypt_guest_page(vm, new Uint8Array(64));
    const m = vm.h.mktme;
    const data = new Uint8Array(32).fill(0xab);
    run_program(vm, function* () {
      yield* guestStore(RAM_GPA + 256n, data);
      yield* pioOut(0x80, 2);
    });
    const k = m.read(m.mk_pa(pfn, KEYID, 256), 32);
    expect(k).toEqual(data);
    expect(m.read(m.mk_pa(pfn, 0, 256), 32)).not.toEqual(data);
    // The host kernel writes through its direct map (KeyID 0): no fault, no poison.
    expect(vm.p.store(vm.hva + 256n, new Uint8Array(16).fill(0x77))).toBe(0);
    let seen: Uint8Array | undefined;
    run_program(vm, function* () {
      seen = yield* guestLoad(RAM_GPA + 256n, 32);
      yield* pioOut(0x80, 3);
    });
    expect(seen!.subarray(0, 16)).not.toEqual(new Uint8Array(16).fill(0x77));
    expect(seen!.subarray(0, 16)).not.toEqual(data.subarray(0, 16));
    expect(seen!.subarray(16)).toEqual(data.subarray(16));
    expect(vm.h.kernel.phys.isPoisoned(pfn as Pfn)).toBe(false);
  });
});
