/**
 * Design gmem_inplace (D10): the uAPI of KVM_SET_MEMORY_ATTRIBUTES2 in v8's validation order, the
 * hiding of private pages (SIGBUS and GUP -EFAULT in every process mapping the guest_memfd), a
 * conversion each way with the contents checked from both sides, EAGAIN while a page is pinned,
 * the memslot/guest-exit interplay (kernel-uapi.md §10.4), and RFC v4/v5's content modes.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FOLL_LONGTERM, FOLL_WRITE, Kernel, MAP_SHARED, PROT_READ, PROT_WRITE, Process, get_user_pages, mmRegistrar, pin_user_pages,
  unpin_user_pages,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_none_x86_ops, kvm_sw_protected_x86_ops } from '../../kvm.js';
import type { KvmX86Ops } from '../../kvm_x86_ops.js';
import type { Kvm } from '../../kvm_host.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CHECK_EXTENSION,
  KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_MEMORY_ATTRIBUTES2, KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM, KVM_X86_SNP_VM,
  KVM_X86_SW_PROTECTED_VM,
} from '../../uapi.js';
import { design_of } from '../design.js';
import { gmem_inplace, type GmemInplaceOptions } from './index.js';
import {
  KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES_RFC, KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS,
  KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE, KVM_SET_MEMORY_ATTRIBUTES2_ZERO,
} from './uapi.js';

const PG = PAGE_SIZE;
const PRIVATE = KVM_MEMORY_ATTRIBUTE_PRIVATE;
const GPA = 0x100000n;

interface Host {
  kernel: Kernel;
  p: Process;
  kvm_fd: number;
}

function host(opts: { design?: GmemInplaceOptions | false; ops?: KvmX86Ops } = {}): Host {
  const regs = [mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({ x86_ops: opts.ops ?? kvm_sw_protected_x86_ops })];
  if (opts.design !== false) regs.push(gmem_inplace.registrar(opts.design ?? {}));
  const kernel = createRootContainer({}, ...regs).resolve(Kernel);
  const p = new Process(kernel);
  return { kernel, p, kvm_fd: p.open('/dev/kvm') };
}

interface Vm extends Host {
  vm: number;
  kvm: Kvm;
  gmem: number;
  vcpu: number;
}

/** A VM of `type` with a 16-page guest_memfd (`flags`) bound at GPA by slot 0, and one vCPU. */
function vm(h: Host, type = KVM_X86_SW_PROTECTED_VM, flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED): Vm {
  const { p } = h;
  const vm = p.ioctl(h.kvm_fd, KVM_CREATE_VM, type);
  expect(vm, `KVM_CREATE_VM errno ${p.errno}`).toBeGreaterThan(0);
  const gmem = p.ioctl(vm, KVM_CREATE_GUEST_MEMFD, { size: 16 * PG, flags });
  expect(gmem, `KVM_CREATE_GUEST_MEMFD errno ${p.errno}`).toBeGreaterThan(0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: 16 * PG, userspace_addr: 0, guest_memfd: gmem, guest_memfd_offset: 0,
  }), `memslot errno ${p.errno}`).toBe(0);
  const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
  expect(vcpu).toBeGreaterThan(0);
  return { ...h, vm, kvm: p.task.files.lookup(vm)!.private_data as Kvm, gmem, vcpu };
}

/** KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd: the ioctl's result and the struct after it. */
function setAttrs(v: Vm, offset: number, size: number, attributes: number, extra: Record<string, unknown> = {}): { r: number; errno: number; arg: Record<string, unknown> } {
  const arg = { offset, size, attributes, ...extra };
  const r = v.p.ioctl(v.gmem, KVM_SET_MEMORY_ATTRIBUTES2, arg);
  return { r, errno: r < 0 ? v.p.errno : 0, arg };
}

function mapGmem(v: Vm, p: Process = v.p, fd = v.gmem): bigint {
  const a = p.mmap(0, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  expect(a > 0n, `mmap errno ${p.errno}`).toBe(true);
  return a;
}

function filled(byte: number, n = PG): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

function guestLoad(v: Vm, page: number, len = PG): unknown {
  return v.p.guest_load(v.vcpu, GPA + BigInt(page * PG), len);
}

describe('gmem_inplace: capabilities and the ioctl\'s presence', () => {
  test('without the design a guest_memfd has no ioctl (ENOTTY) and the capability is unknown (0)', () => {
    const h = host({ design: false });
    const v = vm(h, KVM_X86_SW_PROTECTED_VM, GUEST_MEMFD_FLAG_MMAP);
    expect(setAttrs(v, 0, PG, PRIVATE)).toMatchObject({ r: -1, errno: Errno.ENOTTY });
    expect(h.p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)).toBe(0);
    expect(design_of(h.kernel)).toBeUndefined();
  });

  test('v8 defaults: the capability is PRIVATE where private memory exists, VM attributes are gone, INIT_SHARED on CoCo VMs', () => {
    const h = host();
    expect(design_of(h.kernel)?.design.name).toBe('gmem_inplace');
    const { p } = h;
    expect(p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)).toBe(PRIVATE);
    expect(p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(0);
    const sw = vm(h);
    expect(p.ioctl(sw.vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)).toBe(PRIVATE);
    expect(p.ioctl(sw.vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    // CONFIG_KVM_VM_MEMORY_ATTRIBUTES=n: the VM ioctl is not compiled in.
    expect(p.ioctl(sw.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: PRIVATE })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    const def = vm(h, KVM_X86_DEFAULT_VM);
    expect(p.ioctl(def.vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)).toBe(0);
  });

  test('a host without private VM types reports the capability 0 even on /dev/kvm', () => {
    const h = host({ ops: kvm_none_x86_ops });
    expect(h.p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)).toBe(0);
  });

  test('CONFIG_KVM_VM_MEMORY_ATTRIBUTES=y with in-place conversion: the VM ioctl exists but takes no PRIVATE', () => {
    const h = host({ design: { vm_memory_attributes: true, gmem_in_place_conversion: true } });
    const v = vm(h);
    expect(h.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: PRIVATE })).toBe(-1);
    expect(h.p.errno).toBe(Errno.EINVAL);
    expect(h.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: 0 })).toBe(0);
    expect(setAttrs(v, 0, PG, PRIVATE).r).toBe(0);
  });

  test('gmem_in_place_conversion=0 (with VM attributes): the 6.18 behaviour, the guest_memfd ioctl is ENOTTY', () => {
    const h = host({ design: { vm_memory_attributes: true, gmem_in_place_conversion: false } });
    expect(h.p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)).toBe(0);
    expect(h.p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(PRIVATE);
    const v = vm(h, KVM_X86_SW_PROTECTED_VM, GUEST_MEMFD_FLAG_MMAP);
    expect(setAttrs(v, 0, PG, PRIVATE)).toMatchObject({ r: -1, errno: Errno.ENOTTY });
    // INIT_SHARED stays refused on a CoCo VM.
    expect(h.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size: PG, flags: GUEST_MEMFD_FLAG_INIT_SHARED })).toBe(-1);
    expect(() => host({ design: { gmem_in_place_conversion: false } })).toThrow(RangeError);
  });
});

describe('gmem_inplace: KVM_SET_MEMORY_ATTRIBUTES2 validation (kvm_gmem_set_attributes, v8 order)', () => {
  test('EFAULT, then each EINVAL in order; a failed call changes nothing; other ioctls are ENOTTY', () => {
    const h = host();
    const v = vm(h);
    const addr = mapGmem(v);
    expect(h.p.store(addr, filled(1))).toBe(0);
    const bad: [unknown, number][] = [
      [42, Errno.EFAULT],
      [{ offset: 0, size: 'x' }, Errno.EFAULT],
      [{ offset: 0, address: PG, size: PG }, Errno.EFAULT],
      [{ offset: 0, size: PG, reserved: new Array(12).fill(0) }, Errno.EFAULT],
      // flags first: even with a zero size
      [{ offset: 0, size: 0, attributes: PRIVATE, flags: 1 }, Errno.EINVAL],
      [{ offset: 0, size: PG, attributes: PRIVATE, reserved: [0, 0, 1] }, Errno.EINVAL],
      [{ offset: 0, size: PG, attributes: 4 }, Errno.EINVAL],
      [{ offset: 0, size: 0, attributes: PRIVATE }, Errno.EINVAL],
      [{ offset: 2n ** 64n - BigInt(PG), size: 2 * PG, attributes: PRIVATE }, Errno.EINVAL],
      [{ offset: 1, size: PG, attributes: PRIVATE }, Errno.EINVAL],
      [{ offset: 0, size: PG + 1, attributes: PRIVATE }, Errno.EINVAL],
      [{ offset: 16 * PG, size: PG, attributes: PRIVATE }, Errno.EINVAL],
      [{ offset: 15 * PG, size: 2 * PG, attributes: PRIVATE }, Errno.EINVAL],
    ];
    for (const [arg, errno] of bad) {
      expect(h.p.ioctl(v.gmem, KVM_SET_MEMORY_ATTRIBUTES2, arg), JSON.stringify(arg, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x))).toBe(-1);
      expect(h.p.errno).toBe(errno);
    }
    // Nothing became private: the host still reads its page, and the struct's error_offset was not written.
    expect(h.p.load(addr, 1)).toEqual(Uint8Array.of(1));
    expect(h.p.ioctl(v.gmem, KVM_SET_MEMORY_ATTRIBUTES, { address: 0, size: PG, attributes: PRIVATE })).toBe(-1);
    expect(h.p.errno).toBe(Errno.ENOTTY);
    // The union's other name works, and v8 ignores an error_offset given on input.
    expect(setAttrs(v, 0, 0, PRIVATE, { offset: undefined, address: PG, size: PG, error_offset: 123 }).r).toBe(0);
  });

  test('a VM without private memory gets EINVAL after the reserved check', () => {
    const h = host();
    const v = vm(h, KVM_X86_DEFAULT_VM);
    expect(setAttrs(v, 0, PG, PRIVATE)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(setAttrs(v, 0, PG, 0)).toMatchObject({ r: -1, errno: Errno.EINVAL });
  });
});

describe('gmem_inplace: hiding, conversions and contents', () => {
  test('to private: every process loses its mapping and gets SIGBUS; GUP fails; the guest keeps the bytes; to shared: the host sees the guest\'s', () => {
    const h = host();
    const v = vm(h);
    const a1 = mapGmem(v);
    const p2 = new Process(h.kernel);
    const fd2 = p2.task.files.install(h.p.task.files.lookup(v.gmem)!.get_file(), false);
    const a2 = mapGmem(v, p2, fd2);
    expect(h.p.store(a1 + BigInt(3 * PG), filled(0xaa))).toBe(0);
    expect(p2.load(a2 + BigInt(3 * PG), 2)).toEqual(Uint8Array.of(0xaa, 0xaa));
    expect(guestLoad(v, 3, 2)).toEqual(Uint8Array.of(0xaa, 0xaa));

    expect(setAttrs(v, 3 * PG, PG, PRIVATE).r).toBe(0);
    expect(h.p.load(a1 + BigInt(3 * PG), 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(p2.load(a2 + BigInt(3 * PG), 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(h.p.store(a1 + BigInt(3 * PG), Uint8Array.of(1))).toMatchObject({ signo: 'SIGBUS' });
    expect(get_user_pages(h.p.mm, Number(a1 / BigInt(PG)) + 3, 1, 0, null)).toBe(-Errno.EFAULT);
    // The neighbours stay shared.
    expect(h.p.load(a1 + BigInt(2 * PG), 1)).toEqual(Uint8Array.of(0));
    // KVM does not touch the contents: the guest reads the host's bytes privately, then writes its own.
    expect(guestLoad(v, 3, 2)).toEqual(Uint8Array.of(0xaa, 0xaa));
    expect(h.p.guest_store(v.vcpu, GPA + BigInt(3 * PG), filled(0xbb, 8))).toBe(0);

    expect(setAttrs(v, 3 * PG, PG, 0).r).toBe(0);
    expect(h.p.load(a1 + BigInt(3 * PG), 8)).toEqual(filled(0xbb, 8));
    expect(p2.load(a2 + BigInt(3 * PG), 9)).toEqual(Uint8Array.of(...filled(0xbb, 8), 0xaa));
  });

  test('EAGAIN while a page is pinned: error_offset names the pinned page, nothing changes; unpinned, the conversion succeeds', () => {
    const h = host();
    const v = vm(h);
    const a = mapGmem(v);
    for (let i = 0; i < 4; i++) expect(h.p.store(a + BigInt(i * PG), Uint8Array.of(i + 1))).toBe(0);
    const pages: number[] = [];
    expect(pin_user_pages(h.p.mm, Number(a / BigInt(PG)) + 2, 1, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(1);
    const res = setAttrs(v, 0, 4 * PG, PRIVATE, { error_offset: 0 });
    expect(res).toMatchObject({ r: -1, errno: Errno.EAGAIN });
    expect(res.arg.error_offset).toBe(2 * PG);
    // Every page stays shared: the host refaults them (the unmap before the check was done).
    for (let i = 0; i < 4; i++) expect(h.p.load(a + BigInt(i * PG), 1)).toEqual(Uint8Array.of(i + 1));
    unpin_user_pages(h.kernel.store, pages, 1);
    expect(setAttrs(v, 0, 4 * PG, PRIVATE).r).toBe(0);
    expect(h.p.load(a, 1)).toMatchObject({ signo: 'SIGBUS' });
    // Private to shared has no refcount check.
    expect(setAttrs(v, 0, 4 * PG, 0).r).toBe(0);
  });

  test('conversion before allocation is recorded, truncation keeps it, and a no-op conversion does nothing', () => {
    const h = host();
    const v = vm(h, KVM_X86_SW_PROTECTED_VM, GUEST_MEMFD_FLAG_MMAP);
    const a = mapGmem(v);
    // Not INIT_SHARED: all private at creation.
    expect(h.p.load(a, 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(setAttrs(v, 0, 2 * PG, 0).r).toBe(0);
    expect(h.p.store(a, Uint8Array.of(7))).toBe(0);
    expect(h.p.fallocate(v.gmem, 3, 0, 2 * PG)).toBe(0);
    // The hole reads zero and is still shared.
    expect(h.p.load(a, 1)).toEqual(Uint8Array.of(0));
    expect(h.p.load(a + BigInt(2 * PG), 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(setAttrs(v, 0, 2 * PG, 0).r).toBe(0);
  });

  test('a deleted memslot makes its private GPA shared: the guest\'s read is an MMIO exit (§10.4)', () => {
    const h = host();
    const v = vm(h);
    expect(setAttrs(v, 0, 16 * PG, PRIVATE).r).toBe(0);
    expect(guestLoad(v, 0, 8)).toEqual(new Uint8Array(8));
    expect(h.p.ioctl(v.vm, KVM_SET_USER_MEMORY_REGION2, { slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: 0, guest_memfd: v.gmem })).toBe(0);
    expect(guestLoad(v, 0, 8)).toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: GPA, len: 8, is_write: 0 } });
  });
});

describe('gmem_inplace: RFC v4/v5 content modes', () => {
  const ZERO = KVM_SET_MEMORY_ATTRIBUTES2_ZERO;
  const PRESERVE = KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE;

  test('v4 flags checks (unknown bits, ZERO|PRESERVE, a non-zero error_offset) and the v4 capability numbers', () => {
    const h = host({ design: { content_modes: 'rfc-v4' } });
    const v = vm(h);
    expect(setAttrs(v, 0, PG, PRIVATE, { flags: 4 })).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(setAttrs(v, 0, PG, PRIVATE, { flags: ZERO | PRESERVE })).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(setAttrs(v, 0, PG, PRIVATE, { error_offset: 8 })).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(h.p.ioctl(v.vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES_RFC)).toBe(PRIVATE);
    expect(h.p.ioctl(v.vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS)).toBe(ZERO | PRESERVE);
  });

  test('ZERO to private is EOPNOTSUPP at the start of the range, even for a range that needs no conversion', () => {
    const h = host({ design: { content_modes: 'rfc-v4' } });
    const v = vm(h);
    expect(setAttrs(v, 2 * PG, PG, PRIVATE, { flags: PRESERVE }).r).toBe(0);
    const res = setAttrs(v, 2 * PG, PG, PRIVATE, { flags: ZERO, error_offset: 0 });
    expect(res).toMatchObject({ r: -1, errno: Errno.EOPNOTSUPP });
    expect(res.arg.error_offset).toBe(2 * PG);
  });

  test('the mode applies to the whole requested range: ZERO to shared zeroes the pages that were shared already', () => {
    const h = host({ design: { content_modes: 'rfc-v4' } });
    const v = vm(h);
    const a = mapGmem(v);
    for (let i = 0; i < 3; i++) expect(h.p.store(a + BigInt(i * PG), filled(0x10 + i, 4))).toBe(0);
    expect(setAttrs(v, PG, PG, PRIVATE, { flags: PRESERVE }).r).toBe(0);
    expect(guestLoad(v, 1, 4)).toEqual(filled(0x11, 4));
    expect(setAttrs(v, 0, 3 * PG, 0, { flags: ZERO }).r).toBe(0);
    for (let i = 0; i < 3; i++) expect(h.p.load(a + BigInt(i * PG), 4)).toEqual(new Uint8Array(4));
  });

  test('PRESERVE keeps the bytes both ways; UNSPECIFIED scrambles SW_PROTECTED memory', () => {
    const h = host({ design: { content_modes: 'rfc-v4' } });
    const v = vm(h);
    const a = mapGmem(v);
    expect(h.p.store(a, filled(0x5a, 64))).toBe(0);
    expect(setAttrs(v, 0, PG, PRIVATE, { flags: PRESERVE }).r).toBe(0);
    expect(guestLoad(v, 0, 64)).toEqual(filled(0x5a, 64));
    expect(setAttrs(v, 0, PG, 0, { flags: PRESERVE }).r).toBe(0);
    expect(h.p.load(a, 64)).toEqual(filled(0x5a, 64));
    expect(setAttrs(v, 0, PG, PRIVATE).r).toBe(0);
    expect(setAttrs(v, 0, PG, 0).r).toBe(0);
    expect(h.p.load(a, 64)).not.toEqual(filled(0x5a, 64));
  });

  test('per VM type: SNP has ZERO only in v4; v5 adds PRESERVE to private before launch, EOPNOTSUPP after', () => {
    const snp_ops: KvmX86Ops = {
      name: 'snp-like', supported_vm_types: 1 << KVM_X86_SNP_VM, tdp_enabled: true,
      vm_init: (kvm) => {
        kvm.arch.has_private_mem = true;
        return 0;
      },
    };
    const v4 = vm(host({ ops: snp_ops, design: { content_modes: 'rfc-v4' } }), KVM_X86_SNP_VM);
    expect(setAttrs(v4, 0, PG, PRIVATE, { flags: PRESERVE })).toMatchObject({ r: -1, errno: Errno.EOPNOTSUPP });
    expect(v4.p.ioctl(v4.vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS)).toBe(ZERO);

    const v5 = vm(host({ ops: snp_ops, design: { content_modes: 'rfc-v5' } }), KVM_X86_SNP_VM);
    expect(v5.p.ioctl(v5.vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS)).toBe(ZERO | PRESERVE);
    expect(setAttrs(v5, 0, PG, PRIVATE, { flags: PRESERVE }).r).toBe(0);
    expect(setAttrs(v5, 0, PG, 0, { flags: PRESERVE })).toMatchObject({ r: -1, errno: Errno.EOPNOTSUPP });
    v5.kvm.arch.pre_fault_allowed = true;
    expect(setAttrs(v5, PG, PG, PRIVATE, { flags: PRESERVE })).toMatchObject({ r: -1, errno: Errno.EOPNOTSUPP });
    expect(setAttrs(v5, 0, PG, 0, { flags: ZERO }).r).toBe(0);
  });
});
