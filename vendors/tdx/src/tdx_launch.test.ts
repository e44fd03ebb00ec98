/**
 * The TDX launch: KVM_TDX_INIT_VM, KVM_TDX_INIT_VCPU, KVM_TDX_INIT_MEM_REGION (TDH.MEM.PAGE.ADD and
 * TDH.MR.EXTEND through kvm_gmem_populate()), KVM_TDX_FINALIZE_VM, and MRTD; then the ioctls'
 * errors in the kernel's order.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, type Pfn } from '@cocosim/core';
import {
  KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_MEMORY_ENCRYPT_OP, KVM_PRE_FAULT_MEMORY, KVM_RUN, KVM_X86_DEFAULT_VM, guestLoad,
  kvm_tdp_mmu_spte,
} from '@cocosim/kvm';
import {
  KVM_TDX_CAPABILITIES, KVM_TDX_FINALIZE_VM, KVM_TDX_INIT_MEM_REGION, KVM_TDX_INIT_VCPU, KVM_TDX_INIT_VM,
  TDX_TD_ATTR_DEBUG, TDX_TD_ATTR_SEPT_VE_DISABLE,
} from './uapi.js';
import { tdx_module_of } from './tdx_module.js';
import { tdx_mrtd, tdx_td, to_kvm_tdx } from './tdx.js';
import {
  td_create, td_finalize, td_init_mem_region, td_run, td_set_private, td_set_program, td_vcpu_add, tdx_host, tdx_init_vm_cpuid, tdx_ioctl,
  type TdxHost,
} from './tdx_util.js';

const PAGE = 4096;
const hosts: TdxHost[] = [];

function host(platform = {}): TdxHost {
  const h = tdx_host({ seed: 1, platform });
  hosts.push(h);
  return h;
}

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

/** An image of `n` pages, page i filled with i + 1 and a marker at its start. */
function image(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => {
    const pg = new Uint8Array(PAGE).fill(i + 1);
    pg.set(new TextEncoder().encode(`page ${i}`));
    return pg;
  });
}

/** MRTD as the TDX module computes it: SHA-384 of MEM.PAGE.ADD and MR.EXTEND 128-byte records, page by page. */
function expected_mrtd(base: bigint, pages: readonly Uint8Array[], order: readonly number[]): Buffer {
  const h = createHash('sha384');
  const block = (api: string, gpa: bigint): void => {
    const b = Buffer.alloc(128);
    b.write(api, 0, 'latin1');
    b.writeBigUInt64LE(gpa, 16);
    h.update(b);
  };
  for (const i of order) {
    const gpa = base + BigInt(i * PAGE);
    block('MEM.PAGE.ADD', gpa);
    for (let off = 0; off < PAGE; off += 256) {
      block('MR.EXTEND', gpa + BigInt(off));
      h.update(pages[i]!.subarray(off, off + 256));
    }
  }
  return h.digest();
}

/** A TD launched with `pages` added in `order`: its MRTD. */
function launch(pages: readonly Uint8Array[], order?: readonly number[]): Uint8Array {
  const td = td_create(host());
  td_vcpu_add(td);
  td_init_mem_region(td, pages, order);
  td_finalize(td);
  return tdx_mrtd(td.kvm)!;
}

describe('launch and measurement', () => {
  test('KVM_TDX_INIT_MEM_REGION adds the image with the TD key and MRTD is the module\'s SHA-384 of it', () => {
    const h = host();
    const td = td_create(h);
    td_vcpu_add(td);
    const pages = image(3);
    td_init_mem_region(td, pages);
    const kvm_tdx = to_kvm_tdx(td.kvm);
    expect(kvm_tdx.nr_premapped).toBe(0);
    td_finalize(td);
    expect(Buffer.from(tdx_mrtd(td.kvm)!)).toEqual(expected_mrtd(td.base, pages, [0, 1, 2]));

    // Private, MAPPED, owned by the TD, stored as ciphertext under its HKID; 4 KiB mirror SPTEs.
    const module = tdx_module_of(h.kernel);
    const t = tdx_td(td.kvm)!;
    const gfn = Number(td.base >> 12n);
    const spte = kvm_tdp_mmu_spte(td.kvm, gfn, true)!;
    expect(spte.level).toBe(1);
    expect(module.sept_state(t, gfn)).toBe('MAPPED');
    expect(module.pamt_get(spte.pfn).pt).toBe('PT_REG');
    expect(module.pamt_get(spte.pfn).owner).toBe(t);
    expect(h.kernel.phys.inspect(spte.pfn as Pfn)).toMatchObject({ kind: 'ciphertext', key: t.hkid });

    // The guest reads its image in plaintext through its private GPAs.
    let seen: Uint8Array | undefined;
    td_set_program(td, function* () {
      seen = yield* guestLoad(td.base + BigInt(PAGE), PAGE);
    });
    expect(td_run(td)).toBe(0);
    expect(Buffer.from(seen!).equals(Buffer.from(pages[1]!))).toBe(true);
  });

  test('the same image gives the same MRTD; one byte or the order of the pages changes it', () => {
    const pages = image(2);
    const a = launch(pages);
    const b = launch(image(2));
    const changed = image(2);
    changed[1]![4095] ^= 1;
    const c = launch(changed);
    const swapped = launch(pages, [1, 0]);
    expect(Buffer.from(a)).toEqual(Buffer.from(b));
    expect(Buffer.from(c)).not.toEqual(Buffer.from(a));
    expect(Buffer.from(swapped)).not.toEqual(Buffer.from(a));
    expect(Buffer.from(swapped)).toEqual(expected_mrtd(1n << 30n, pages, [1, 0]));
  });

  test('without KVM_TDX_MEASURE_MEMORY_REGION only the GPAs are measured: contents do not change MRTD', () => {
    const run = (pages: Uint8Array[]): Buffer => {
      const td = td_create(host());
      td_vcpu_add(td);
      td_init_mem_region(td, pages, undefined, false);
      td_finalize(td);
      return Buffer.from(tdx_mrtd(td.kvm)!);
    };
    const other = image(2);
    other[0]![100] ^= 0xff;
    expect(run(image(2))).toEqual(run(other));
  });

  test('KVM_TDX_INIT_MEM_REGION copies the advanced region back; it refuses unaligned, shared and finalized', () => {
    const h = host();
    const td = td_create(h);
    td_vcpu_add(td);
    const p = td.p;
    const pages = image(2);
    td_init_mem_region(td, pages.slice(0, 1));
    const src = p.mmap(0, 2 * PAGE, 3, 0x21, -1, 0);
    const init = (data: object, flags = 1): number => tdx_ioctl(p, td.vcpu_fd, { id: KVM_TDX_INIT_MEM_REGION, flags, data });
    // A page already added: guest_memfd has it prepared (-EEXIST from kvm_gmem_populate()).
    expect(init({ source_addr: src, gpa: td.base, nr_pages: 1 })).toBe(-1);
    expect(p.errno).toBe(Errno.EEXIST);
    expect(init({ source_addr: src + 1n, gpa: td.base, nr_pages: 1 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(init({ source_addr: src, gpa: td.base | td.shared, nr_pages: 1 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(init({ source_addr: src, gpa: td.base, nr_pages: 0 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(init({ source_addr: src, gpa: td.base, nr_pages: 1 }, 2)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(init(undefined as unknown as object)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    // Not private: kvm_gmem_populate() refuses the gfn.
    const region = { source_addr: src, gpa: td.base + 0x10000n, nr_pages: 1 };
    expect(init(region)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(region.nr_pages).toBe(1);
    // Source not mapped: the GUP of tdx_gmem_post_populate() fails.
    expect(td_set_private(td, td.base + BigInt(PAGE), BigInt(PAGE), true)).toBe(0);
    const r2 = { source_addr: 0x7000_0000_0000n, gpa: td.base + BigInt(PAGE), nr_pages: 1 };
    expect(init(r2)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    td_finalize(td);
    expect(init({ source_addr: src, gpa: td.base + BigInt(PAGE), nr_pages: 1 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });
});

describe('the ioctls: order and errors', () => {
  test('KVM_MEMORY_ENCRYPT_OP is -ENOTTY on a default VM and -EINVAL on its vCPUs', () => {
    const h = host();
    const td = td_create(h);
    const p = td.p;
    const kvm_fd = p.open('/dev/kvm');
    const vm = p.ioctl(kvm_fd, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(p.ioctl(vm, KVM_MEMORY_ENCRYPT_OP, { id: KVM_TDX_CAPABILITIES })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    expect(vcpu).toBeGreaterThanOrEqual(0);
    expect(p.ioctl(vcpu, KVM_MEMORY_ENCRYPT_OP, { id: KVM_TDX_INIT_VCPU })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('KVM_TDX_CAPABILITIES: flags, a cpuid too small, the supported attributes and XFAM', () => {
    const h = host();
    const p = td_create(h).p;
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, 5);
    const caps: { cpuid: { nent: number; entries?: unknown[] }; supported_attrs?: number | bigint; supported_xfam?: number | bigint } = { cpuid: { nent: 2 } };
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_CAPABILITIES, data: caps })).toBe(-1);
    expect(p.errno).toBe(Errno.E2BIG);
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_CAPABILITIES, flags: 1, data: { cpuid: { nent: 64 } } })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    caps.cpuid.nent = 64;
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_CAPABILITIES, data: caps })).toBe(0);
    expect(BigInt(caps.supported_attrs!)).toBe(TDX_TD_ATTR_SEPT_VE_DISABLE);
    expect(BigInt(caps.supported_xfam!) & 3n).toBe(3n);
    expect(caps.cpuid.nent).toBe(5);
    expect(tdx_ioctl(p, vm, 'nope' as unknown as object)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(tdx_ioctl(p, vm, { id: 9 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_CAPABILITIES, hw_error: 1, data: caps })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('KVM_TDX_INIT_VM validates in the kernel\'s order and runs once; vCPUs only after it', () => {
    const h = host();
    const p = td_create(h).p;
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, 5);
    const init = (data: unknown, flags = 0): number => tdx_ioctl(p, vm, { id: KVM_TDX_INIT_VM, flags, data });
    const ok = { attributes: TDX_TD_ATTR_SEPT_VE_DISABLE, xfam: 3n, cpuid: tdx_init_vm_cpuid(52) };
    // tdx_vcpu_create(): not before KVM_TDX_INIT_VM.
    expect(p.ioctl(vm, KVM_CREATE_VCPU, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    const cases: [unknown, number, number][] = [
      [ok, 1, Errno.EINVAL],
      [42, 0, Errno.EFAULT],
      [{ ...ok, cpuid: { nent: 257, entries: [] } }, 0, Errno.E2BIG],
      [{ ...ok, cpuid: { nent: 2, entries: [{ function: 0x8000_0008, eax: 52 << 16 }] } }, 0, Errno.EFAULT],
      [{ ...ok, reserved: [0, 1] }, 0, Errno.EINVAL],
      [{ ...ok, cpuid: { ...tdx_init_vm_cpuid(52), padding: 1 } }, 0, Errno.EINVAL],
      [{ ...ok, attributes: TDX_TD_ATTR_DEBUG }, 0, Errno.EINVAL],
      [{ ...ok, xfam: 1n << 40n }, 0, Errno.EINVAL],
      [{ ...ok, cpuid: { nent: 0 } }, 0, Errno.EINVAL],
      [{ ...ok, cpuid: tdx_init_vm_cpuid(40) }, 0, Errno.EINVAL],
      [{ ...ok, cpuid: { nent: 2, entries: [...tdx_init_vm_cpuid(48).entries, { function: 7, index: 0, ebx: 1 << 11, flags: 1 }] } }, 0, Errno.EINVAL],
      [{ ...ok, cpuid: { nent: 2, entries: [...tdx_init_vm_cpuid(48).entries, { function: 0x4000_0000 }] } }, 0, Errno.EINVAL],
    ];
    for (const [data, flags, errno] of cases) {
      expect(init(data, flags), JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toBe(-1);
      expect(p.errno).toBe(errno);
    }
    const module = tdx_module_of(h.kernel);
    expect(init(ok)).toBe(0);
    const kvm = p.task.files.lookup(vm)!.private_data as import('@cocosim/kvm').Kvm;
    // GPAW 52: the shared bit is GPA bit 51.
    expect(kvm.arch.gfn_direct_bits).toBe(2 ** 39);
    expect(module.hkid_owner(to_kvm_tdx(kvm).hkid)).toBe(tdx_td(kvm));
    expect(init(ok)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    expect(vcpu).toBeGreaterThanOrEqual(0);
    // KVM_RUN before KVM_TDX_INIT_VCPU and finalize: tdx_vcpu_pre_run().
    expect(p.ioctl(vcpu, KVM_RUN, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(tdx_ioctl(p, vcpu, { id: KVM_TDX_INIT_VCPU, flags: 1 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(tdx_ioctl(p, vcpu, { id: KVM_TDX_INIT_VCPU, data: 0 })).toBe(0);
    expect(tdx_ioctl(p, vcpu, { id: KVM_TDX_INIT_VCPU, data: 0 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    // No KVM_PRE_FAULT_MEMORY before finalize.
    expect(p.ioctl(vcpu, KVM_PRE_FAULT_MEMORY, { gpa: 1n << 30n, size: 4096n })).toBe(-1);
    expect(p.errno).toBe(Errno.EOPNOTSUPP);
    const fin = { id: KVM_TDX_FINALIZE_VM, hw_error: 0 };
    expect(tdx_ioctl(p, vm, fin)).toBe(0);
    expect(fin.hw_error).toBe(0);
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_FINALIZE_VM })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    // After finalize the vCPU commands are refused before the command is even read.
    expect(tdx_ioctl(p, vcpu, 'x' as unknown as object)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('HKIDs run out: KVM_TDX_INIT_VM is -ENOSPC; a destroyed TD gives its HKID back', () => {
    // TDX KeyIDs [16, 19): the global KeyID and two guest KeyIDs.
    const h = host({ nr_tdx_keyids: 3 });
    const a = td_create(h);
    td_create(h);
    const p = a.p;
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, 5);
    const data = { attributes: TDX_TD_ATTR_SEPT_VE_DISABLE, xfam: 3n, cpuid: tdx_init_vm_cpuid(48) };
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_INIT_VM, data })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOSPC);
    const hkid = to_kvm_tdx(a.kvm).hkid;
    const tdr = to_kvm_tdx(a.kvm).tdr_pfn;
    const module = tdx_module_of(h.kernel);
    // Closing every fd of the TD destroys it: the HKID is released and the TDR reclaimed.
    p.close(a.gmem_fd);
    p.close(a.vm_fd);
    expect(module.hkid_owner(hkid)).toBeUndefined();
    expect(module.pamt_get(tdr).pt).toBe('PT_NDA');
    expect(tdx_ioctl(p, vm, { id: KVM_TDX_INIT_VM, data })).toBe(0);
  });
});
