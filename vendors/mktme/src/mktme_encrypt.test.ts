/*
 * Design D12 "mktme_encrypt" (kvm/src/designs/mktme_encrypt) on the MKTME vendor: the RFC's
 * "mktme" key type and encrypt_mprotect(), Andy's /dev/mktme alternative, and a default VM whose
 * memory the VMM keyed. The VMM owns the key: it reads and writes the guest's plaintext (designs.md
 * §2 S1-S4 "MKTME"); only another KeyID (KeyID 0: a device, the TME view) sees ciphertext.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer, errno_name } from '@cocosim/core';
import {
  ACR_FLAGS_NONE, FOLL_LONGTERM, FOLL_WRITE, GFP_KERNEL, Kernel, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, MFD_CLOEXEC, O_RDWR, PROT_NONE, PROT_READ,
  PROT_WRITE, Process, mmRegistrar, pagemap_pfn, pin_user_pages, unpin_user_pages_dirty_lock,
} from '@cocosim/mm';
import {
  KEYCTL_INVALIDATE, KEYCTL_REVOKE, KVM_EXIT_HLT, KVM_X86_DEFAULT_VM, MKTME_IOC_ENCRYPT_ME, add_key, cvm_create, cvm_guest_convert,
  cvm_run, encrypt_mprotect, guestLoad, guestStore, keyctl, kvmRegistrar, mktme_cvm, mktme_encrypt, mktme_encrypt_vmm, mktme_vmm_state,
  sw_protected_cvm, type CvmVm, type MktmeEncryptOptions,
} from '@cocosim/kvm';
import {
  VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU,
  dma_read, dma_write, vfioRegistrar, vfio_sim_device_add,
} from '@cocosim/vfio';
import { mktmeVendorPlugin, mktme_platform_of, mktme_x86_ops, type MktmePlatform } from './index.js';

const PG = BigInt(PAGE_SIZE);
const CPU_KEY = 'type=cpu algorithm=aes-xts-128';

/** A host with MKTME (`keyid_bits` bits of KeyID) running D12 with `opts`. */
function host(opts: MktmeEncryptOptions = {}, keyid_bits = 6): { kernel: Kernel; mktme: MktmePlatform; p: Process } {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 1 << 14 }), mktmeVendorPlugin.registrar({ keyid_bits }),
    kvmRegistrar({ x86_ops: mktme_x86_ops }), vfioRegistrar({ iommu_ops: mktmeVendorPlugin.iommu_ops }), mktme_encrypt.registrar(opts))
    .resolve(Kernel);
  return { kernel, mktme: mktme_platform_of(kernel), p: new Process(kernel) };
}

const fill = (b: number, n = 16): Uint8Array => new Uint8Array(n).fill(b);

/** errno of a failed call (-1), or the call's value. */
function err(p: Process, r: number): number | string {
  return r === -1 ? errno_name(p.errno) ?? p.errno : r;
}

describe('D12 key service: add_key("mktme") and keyctl', () => {
  test('add_key validates in the kernel\'s order: type name, description, key type, payload', () => {
    const { p } = host();
    expect(err(p, add_key(p, '', 'k', CPU_KEY))).toBe('EINVAL');
    expect(err(p, add_key(p, '.mktme', 'k', CPU_KEY))).toBe('EPERM');
    expect(err(p, add_key(p, 'mktme', '', CPU_KEY))).toBe('EINVAL');
    expect(err(p, add_key(p, 'user', 'k', CPU_KEY))).toBe('ENODEV');
    for (const bad of ['', ' ', 'type=', 'type=cpu', 'type=CPU algorithm=aes-xts-128', 'type=cpu algorithm=aes-xts-256',
      'type=cpu type=cpu algorithm=aes-xts-128', 'type=cpu algorithm=aes-xts-128 colour=blue', 'type=no-encrypt algorithm=aes-xts-128',
      `type=user algorithm=aes-xts-128 key=${'ab'.repeat(16)}`, `type=user algorithm=aes-xts-128 key=${'ab'.repeat(15)} tweak=${'cd'.repeat(16)}`,
      `type=cpu algorithm=aes-xts-128 key=${'zz'.repeat(16)}`]) {
      expect(err(p, add_key(p, 'mktme', 'k', bad)), bad).toBe('EINVAL');
    }
    const a = add_key(p, 'mktme', 'a', CPU_KEY);
    const b = add_key(p, 'mktme', 'b', `type=user algorithm=aes-xts-128 key=${'ab'.repeat(16)} tweak=${'cd'.repeat(16)}`);
    const c = add_key(p, 'mktme', 'c', 'type=no-encrypt');
    expect([a, b, c].every((s) => s > 0)).toBe(true);
    expect(new Set([a, b, c]).size).toBe(3);
  });

  test('one KeyID per key: the last free KeyID taken, add_key is ENOKEY; a revoked key frees its KeyID once no page uses it', () => {
    const { p, mktme } = host({}, 2);
    const keys = [1, 2, 3].map((i) => add_key(p, 'mktme', `k${i}`, CPU_KEY));
    expect(keys.every((s) => s > 0)).toBe(true);
    expect(err(p, add_key(p, 'mktme', 'k4', CPU_KEY))).toBe('ENOKEY');
    const a = p.mmap(0, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(encrypt_mprotect(p, a, PG, PROT_READ | PROT_WRITE, keys[0])).toBe(0);
    expect(p.store(a, fill(1))).toBe(0);
    const keyid = mktme.page_keyid(pagemap_pfn(p.mm, a)!);
    expect(keyid).toBeGreaterThan(0);
    expect(keyctl(p, KEYCTL_REVOKE, keys[0])).toBe(0);
    expect(err(p, keyctl(p, KEYCTL_REVOKE, keys[0]))).toBe('EKEYREVOKED');
    // The page still uses the KeyID: it is not free yet.
    expect(err(p, add_key(p, 'mktme', 'k4', CPU_KEY))).toBe('ENOKEY');
    expect(p.munmap(a, PG)).toBe(0);
    expect(mktme.key_state(keyid)).toBe('cleared');
    expect(add_key(p, 'mktme', 'k4', CPU_KEY)).toBeGreaterThan(0);
    expect(err(p, keyctl(p, 99, keys[1]))).toBe('EOPNOTSUPP');
    expect(keyctl(p, KEYCTL_INVALIDATE, keys[1])).toBe(0);
    expect(err(p, keyctl(p, KEYCTL_INVALIDATE, keys[1]))).toBe('ENOKEY');
  });

  test('without the design\'s encrypt_mprotect uAPI there is neither the syscall nor the key type', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 1 << 12 }), mktmeVendorPlugin.registrar(),
      kvmRegistrar({ x86_ops: mktme_x86_ops })).resolve(Kernel);
    const p = new Process(kernel);
    expect(err(p, encrypt_mprotect(p, 0, PG, PROT_READ, 1))).toBe('ENOSYS');
    expect(err(p, add_key(p, 'mktme', 'k', CPU_KEY))).toBe('ENODEV');
    const d = host({ uapi: 'dev_mktme' }).p;
    expect(err(d, encrypt_mprotect(d, 0, PG, PROT_READ, 1))).toBe('ENOSYS');
    expect(err(d, add_key(d, 'mktme', 'k', CPU_KEY))).toBe('ENODEV');
  });
});

describe('D12 encrypt_mprotect()', () => {
  test('errnos in the RFC\'s order; a refused call changes nothing', () => {
    const { p } = host();
    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    const a = p.mmap(0, 4n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(err(p, encrypt_mprotect(p, a, 100, PROT_READ, 12345))).toBe('EINVAL');
    expect(err(p, encrypt_mprotect(p, a, PG, PROT_READ, 12345))).toBe('ENOKEY');
    expect(err(p, encrypt_mprotect(p, a + 1n, PG, PROT_READ, key))).toBe('EINVAL');
    const fd = p.memfd_create('file', MFD_CLOEXEC);
    expect(p.ftruncate(fd, PG)).toBe(0);
    const f = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.store(f, fill(7))).toBe(0);
    expect(err(p, encrypt_mprotect(p, f, PG, PROT_READ, key))).toBe('EINVAL');
    expect(p.store(f, fill(8))).toBe(0);
    expect(p.load(f, 16)).toEqual(fill(8));
    expect(p.munmap(a + 2n * PG, PG)).toBe(0);
    expect(err(p, encrypt_mprotect(p, a, 4n * PG, PROT_READ, key))).toBe('ENOMEM');
    const revoked = add_key(p, 'mktme', 'r', CPU_KEY);
    expect(keyctl(p, KEYCTL_REVOKE, revoked)).toBe(0);
    expect(err(p, encrypt_mprotect(p, a, PG, PROT_READ, revoked))).toBe('EKEYREVOKED');
  });

  test('pages get the key\'s KeyID: the owner reads plaintext, KeyID 0 (the TME view, a device) reads ciphertext; old data is gone', () => {
    const { p, kernel, mktme } = host();
    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    const a = p.mmap(0, 2n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(a, fill(0x11))).toBe(0);
    const old = pagemap_pfn(p.mm, a)!;
    expect(mktme.page_keyid(old)).toBe(0);
    expect(encrypt_mprotect(p, a, 2n * PG, PROT_READ | PROT_WRITE, key)).toBe(0);
    // Zapped, like MADV_DONTNEED: a new, zeroed page with the KeyID.
    expect(pagemap_pfn(p.mm, a)).toBeUndefined();
    expect(p.load(a, 16)).toEqual(fill(0));
    expect(p.store(a, fill(0x5e))).toBe(0);
    const pfn = pagemap_pfn(p.mm, a)!;
    const keyid = mktme.page_keyid(pfn);
    expect(keyid).toBeGreaterThan(0);
    expect(p.load(a, 16)).toEqual(fill(0x5e));
    expect(kernel.phys.read(pfn as never, 0, 16, 0)).not.toEqual(fill(0x5e));
    expect(mktme.access_outcome(pfn, 0).data).toBe('ciphertext');
    // The kernel's uaccess goes through the per-KeyID direct map: plaintext too.
    const got = new Uint8Array(16);
    expect(p.process_vm_readv(p, [got], 1, [{ iov_base: a, iov_len: 16 }], 1)).toBe(16);
    expect(got).toEqual(fill(0x5e));
    // Freed pages leave their KeyID.
    expect(p.munmap(a, 2n * PG)).toBe(0);
    expect(mktme.page_keyid(pfn)).toBe(0);
    expect(mktme.keyid_refcount(keyid)).toBe(0);
  });

  test('compaction moves an encrypted page: the new page gets the KeyID and the plaintext, the old one leaves the KeyID', () => {
    const { p, kernel, mktme } = host();
    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    const a = p.mmap(0, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(encrypt_mprotect(p, a, PG, PROT_READ | PROT_WRITE, key)).toBe(0);
    expect(p.store(a, fill(0x5e))).toBe(0);
    const old = pagemap_pfn(p.mm, a)!;
    const keyid = mktme.page_keyid(old);
    expect(kernel.page_alloc.alloc_contig_range(old, old + 1, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(0);
    const moved = pagemap_pfn(p.mm, a)!;
    expect(moved).not.toBe(old);
    expect(mktme.page_keyid(moved)).toBe(keyid);
    expect(mktme.page_keyid(old)).toBe(0);
    expect(p.load(a, 16)).toEqual(fill(0x5e));
    expect(kernel.phys.read(moved as never, 0, 16, 0)).not.toEqual(fill(0x5e));
  });

  test('S4: GUP pins an encrypted page: it is ordinary memory ("fully functional and can be GUP-ed")', () => {
    const { p, mktme } = host();
    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    const a = p.mmap(0, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(encrypt_mprotect(p, a, PG, PROT_READ | PROT_WRITE, key)).toBe(0);
    const pages: number[] = [];
    expect(pin_user_pages(p.mm, Number(a / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(1);
    expect(mktme.page_keyid(pages[0]!)).toBeGreaterThan(0);
    unpin_user_pages_dirty_lock(p.kernel, pages, 1, false);
  });
});

describe('D12 /dev/mktme (option uapi: dev_mktme)', () => {
  test('ENCRYPT_ME before mmap, once; MAP_SHARED only; two mappings of the fd are one memory through one KeyID', () => {
    const { p, mktme } = host({ uapi: 'dev_mktme' });
    const fd = p.open('/dev/mktme', O_RDWR);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(err(p, p.ioctl(fd, 0x1234, 0))).toBe('ENOTTY');
    expect(p.ioctl(fd, MKTME_IOC_ENCRYPT_ME, 0)).toBe(0);
    expect(err(p, p.ioctl(fd, MKTME_IOC_ENCRYPT_ME, 0))).toBe('EBUSY');
    expect(p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EINVAL);
    const a = p.mmap(0, 2n * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const b = p.mmap(0, 2n * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.store(a + PG, fill(0x42))).toBe(0);
    expect(p.load(b + PG, 16)).toEqual(fill(0x42));
    const pfn = pagemap_pfn(p.mm, b + PG)!;
    expect(pfn).toBe(pagemap_pfn(p.mm, a + PG));
    expect(mktme.page_keyid(pfn)).toBeGreaterThan(0);
    expect(p.kernel.phys.read(pfn as never, 0, 16, 0)).not.toEqual(fill(0x42));
  });
});

describe('D12 VM: a default VM on memory the VMM keyed', () => {
  function vm(opts: MktmeEncryptOptions = {}): { v: CvmVm; mktme: MktmePlatform } {
    const h = host(opts);
    const v = cvm_create(h.p, mktme_cvm, mktme_encrypt_vmm, { size: 4n * PG });
    if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
    return { v, mktme: h.mktme };
  }

  test('runs on vendor mktme only, as KVM_X86_DEFAULT_VM; a conversion either way has nothing to ask: 0, no exit, nothing moves', () => {
    expect(mktme_encrypt_vmm.vendor_cvm!('mktme', undefined)).toBe(mktme_cvm);
    expect(mktme_encrypt_vmm.applies(sw_protected_cvm)).toMatch(/D12 runs on MKTME only/);
    const { v } = vm();
    expect(v.kvm.arch.vm_type).toBe(KVM_X86_DEFAULT_VM);
    const gpa = v.base + 2n * PG;
    let rets: bigint[] = [];
    let after: Uint8Array | undefined;
    const r = cvm_run(v, function* () {
      yield* guestStore(gpa, fill(0x77));
      rets = [yield* cvm_guest_convert(v, gpa, 1n, true), yield* cvm_guest_convert(v, gpa, 1n, false)];
      after = yield* guestLoad(gpa, 16);
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([]);
    expect(rets).toEqual([0n, 0n]);
    expect(after).toEqual(fill(0x77));
    expect(v.p.load(mktme_encrypt_vmm.hva(v, gpa)!, 16)).toEqual(fill(0x77));
  });

  for (const uapi of ['encrypt_mprotect', 'dev_mktme'] as const) {
    test(`S1/S2 (${uapi}): the guest's page has the VMM's KeyID; the VMM reads its plaintext and its store reaches the guest`, () => {
      const { v, mktme } = vm({ uapi });
      const gpa = v.base + PG;
      const hva = mktme_encrypt_vmm.hva(v, gpa)!;
      expect(uapi === 'dev_mktme' ? mktme_vmm_state(v).dev_fd : mktme_vmm_state(v).serial).toBeGreaterThan(0);
      cvm_run(v, function* () {
        yield* guestStore(gpa, fill(0x5e));
      });
      const pfn = pagemap_pfn(v.p.mm, hva)!;
      expect(mktme.page_keyid(pfn)).toBeGreaterThan(0);
      expect(v.p.load(hva, 16)).toEqual(fill(0x5e));
      expect(v.kvm.kernel.phys.read(pfn as never, 0, 16, 0)).not.toEqual(fill(0x5e));
      expect(v.p.store(hva, fill(0xee))).toBe(0);
      let seen: Uint8Array | undefined;
      cvm_run(v, function* () {
        seen = yield* guestLoad(gpa, 16);
      });
      expect(seen).toEqual(fill(0xee));
    });
  }

  test('S7: with the VT-d KeyID patch a device DMAs through the page\'s KeyID: it reads the guest\'s data, the guest reads its write', () => {
    const { v } = vm();
    const gpa = v.base + PG;
    const { p } = v;
    const container = p.open('/dev/vfio/vfio', O_RDWR);
    const device = vfio_sim_device_add(p.kernel);
    const group = p.open(device.group_path, O_RDWR);
    expect(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, container)).toBe(0);
    expect(p.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(p.ioctl(container, VFIO_IOMMU_MAP_DMA, {
      argsz: 32, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr: mktme_vmm_state(v).hva, iova: v.base, size: v.size,
    })).toBe(0);
    cvm_run(v, function* () {
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(dma_read(device.dev, gpa, 16)).toEqual(fill(0x5e));
    expect(dma_write(device.dev, gpa, fill(0xd1))).toBe(0);
    let seen: Uint8Array | undefined;
    cvm_run(v, function* () {
      seen = yield* guestLoad(gpa, 16);
    });
    expect(seen).toEqual(fill(0xd1));
  });
});
