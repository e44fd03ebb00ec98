/*
 * Legacy SEV and SEV-ES: guest memory is the VMM's own, encrypted in place by LAUNCH_UPDATE_DATA
 * and by the guest's C-bit; KVM_MEMORY_ENCRYPT_REG_REGION pins it; LAUNCH_MEASURE's measurement;
 * no integrity (the host reads ciphertext and can overwrite guest data unnoticed); SEV-ES VMSAs;
 * ASIDs recycled through WBINVD and DF_FLUSH.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { ACR_FLAGS_NONE, GFP_KERNEL, page_maybe_dma_pinned, pagemap_pfn } from '@cocosim/mm';
import { KVM_CREATE_VM, KVM_X86_DEFAULT_VM, guestAccept, guestFill, guestLoad, hlt, type GuestCode } from '@cocosim/kvm';
import {
  BASE, addr_gpa2hva, image, kvm_vm_free, sevHost, sev_cmd, vcpu_run, vm_create_barebones_type, vm_kvm, vm_mem_add, vm_vcpu_add,
  vmm_buffer, type KvmVcpuFd, type KvmVm, type SimHost,
} from './snp_env.test-util.js';
import {
  KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION, KVM_SEV_GUEST_STATUS, KVM_SEV_INIT, KVM_SEV_INIT2,
  KVM_SEV_LAUNCH_FINISH, KVM_SEV_LAUNCH_MEASURE, KVM_SEV_LAUNCH_START, KVM_SEV_LAUNCH_UPDATE_DATA, KVM_SEV_LAUNCH_UPDATE_VMSA,
  KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM, KVM_X86_SNP_VM, SEV_POLICY_ES, SEV_RET_INVALID_GUEST_STATE, SEV_RET_INVALID_LEN,
  sev_es_sync_vmsa, sev_host, sev_launch_digest, to_kvm_sev_info,
} from './index.js';

const PG = BigInt(PAGE_SIZE);

interface SevVm { vm: KvmVm; vcpu: KvmVcpuFd; sev_fd: number; hva: bigint }

/** A VM of `type` after KVM_SEV_INIT2 with 8 pages of ordinary memory at BASE and one vCPU. */
function sev_vm(host: SimHost, type: number, guest: () => GuestCode = function* () {}): SevVm {
  const p = host.process();
  const vm = vm_create_barebones_type(p, type);
  const sev_fd = p.open('/dev/sev');
  expect(sev_cmd(vm, KVM_SEV_INIT2, {}, sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
  vm_mem_add(vm, BASE, 1, 8, false);
  const vcpu = vm_vcpu_add(vm, 0, guest);
  return { vm, vcpu, sev_fd, hva: addr_gpa2hva(vm, BASE) };
}

/** LAUNCH_START (policy), LAUNCH_UPDATE_DATA of each chunk at its page, LAUNCH_MEASURE, LAUNCH_FINISH: the measurement blob. */
function sev_launch(s: SevVm, policy: number, chunks: readonly { page: number; data: Uint8Array }[]): Uint8Array {
  const start = { policy, handle: 0 };
  expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_START, start, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
  expect(start.handle).toBeGreaterThan(0);
  for (const c of chunks) {
    const uaddr = s.hva + BigInt(c.page) * PG;
    expect(s.vm.p.store(uaddr, c.data)).toBe(0);
    expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_UPDATE_DATA, { uaddr, len: c.data.length }, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
  }
  const query = { uaddr: 0n, len: 0 };
  expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_MEASURE, query, s.sev_fd)).toEqual({ r: -1, errno: Errno.EIO, error: SEV_RET_INVALID_LEN });
  expect(query.len).toBe(48);
  const buf = vmm_buffer(s.vm, new Uint8Array(48));
  expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_MEASURE, { uaddr: buf, len: 48 }, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
  expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_FINISH, {}, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
  return s.vm.p.load(buf, 48) as Uint8Array;
}

describe('legacy SEV launch and memory', () => {
  test('LAUNCH_UPDATE_DATA encrypts in place: the guest reads the image, the host its ciphertext; GUEST_STATUS is RUNNING', () => {
    const host = sevHost();
    const img = image(2, 0x30);
    let seen: Uint8Array | undefined;
    const s = sev_vm(host, KVM_X86_SEV_VM, function* () {
      seen = yield* guestLoad(BASE, 2 * PAGE_SIZE);
    });
    sev_launch(s, 0, [{ page: 0, data: img }]);
    const host_view = s.vm.p.load(s.hva, 2 * PAGE_SIZE) as Uint8Array;
    expect(Buffer.from(host_view).equals(Buffer.from(img))).toBe(false);
    vcpu_run(s.vcpu);
    expect(seen).toEqual(img);
    const status = { policy: -1, state: -1, handle: -1 };
    expect(sev_cmd(s.vm, KVM_SEV_GUEST_STATUS, status, s.sev_fd).r).toBe(0);
    expect(status).toEqual({ policy: 0, state: 3, handle: to_kvm_sev_info(vm_kvm(s.vm)).handle });
    const asid = to_kvm_sev_info(vm_kvm(s.vm)).asid;
    expect(asid).toBeGreaterThanOrEqual(100);
  });

  test('the launch digest is SHA-256 of the data in order: stable, changed by a byte or the order; the measurement follows it', () => {
    const run = (seed: number, swap: boolean, tweak: boolean): { ld: Buffer; blob: Uint8Array } => {
      const host = sevHost({}, seed);
      const s = sev_vm(host, KVM_X86_SEV_VM);
      const a = image(1, 1);
      const b = image(1, 2);
      if (tweak) a[7] ^= 0x80;
      const chunks = swap ? [{ page: 1, data: b }, { page: 0, data: a }] : [{ page: 0, data: a }, { page: 1, data: b }];
      const blob = sev_launch(s, 0, chunks);
      const ld = sev_launch_digest(vm_kvm(s.vm))!;
      const h = createHash('sha256');
      for (const c of chunks) h.update(c.data);
      expect(ld).toEqual(h.digest());
      return { ld, blob };
    };
    const base = run(1, false, false);
    expect(run(1, false, false).blob).toEqual(base.blob);
    // Another host: the same digest, but the firmware's MNONCE, hence the measurement, differ.
    const other = run(2, false, false);
    expect(other.ld).toEqual(base.ld);
    expect(other.blob.subarray(0, 32)).not.toEqual(base.blob.subarray(0, 32));
    expect(run(1, false, true).ld).not.toEqual(base.ld);
    expect(run(1, true, false).ld).not.toEqual(base.ld);
    expect(run(1, true, false).blob).not.toEqual(base.blob);
  });

  test('no integrity: the guest writes through its C-bit, the host reads ciphertext and its overwrite reaches the guest as garbage', () => {
    const host = sevHost();
    const seen: Uint8Array[] = [];
    const s = sev_vm(host, KVM_X86_SEV_VM, function* () {
      yield* guestFill(BASE + 2n * PG, 0x44, PAGE_SIZE);
      expect(yield* guestAccept(BASE + 3n * PG, 1, true)).toBe(0);
      yield* guestFill(BASE + 3n * PG, 0x77, PAGE_SIZE);
      seen.push(yield* guestLoad(BASE + 3n * PG, 16));
      yield* guestLoad(BASE, 1);
      seen.push(yield* guestLoad(BASE, 16));
    });
    const img = image(1, 9);
    sev_launch(s, 0, [{ page: 0, data: img }]);
    expect(s.vm.p.store(s.hva, new Uint8Array(16).fill(0xee))).toBe(0);
    vcpu_run(s.vcpu);
    // A page without the C-bit is shared: the host reads the guest's plaintext.
    expect(s.vm.p.load(s.hva + 2n * PG, 4)).toEqual(new Uint8Array(4).fill(0x44));
    // With the C-bit: the guest reads back its data, the host sees ciphertext.
    expect(seen[0]).toEqual(new Uint8Array(16).fill(0x77));
    const h3 = s.vm.p.load(s.hva + 3n * PG, 16) as Uint8Array;
    expect(h3).not.toEqual(new Uint8Array(16).fill(0x77));
    // The host's write to an encrypted page went through, and the guest reads it as garbage:
    // neither its data nor what the host wrote.
    expect(seen[1]).not.toEqual(img.subarray(0, 16));
    expect(seen[1]).not.toEqual(new Uint8Array(16).fill(0xee));
  });
});

describe('KVM_MEMORY_ENCRYPT_REG_REGION', () => {
  test('pins the range until UNREG_REGION of exactly that range, which WBINVDs; errors for other VMs and ranges', () => {
    const host = sevHost();
    const s = sev_vm(host, KVM_X86_SEV_VM);
    const p = s.vm.p;
    expect(p.store(s.hva, new Uint8Array(8 * PAGE_SIZE))).toBe(0);
    const pfn = pagemap_pfn(p.mm, s.hva + PG)!;
    expect(p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_REG_REGION, { addr: s.hva, size: 8n * PG })).toBe(0);
    expect(page_maybe_dma_pinned(host.kernel.store, pfn)).toBe(true);
    expect(to_kvm_sev_info(vm_kvm(s.vm)).pages_locked).toBe(8);
    expect(p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_UNREG_REGION, { addr: s.hva, size: 4n * PG })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    host.cost.begin('unreg');
    expect(p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_UNREG_REGION, { addr: s.hva, size: 8n * PG })).toBe(0);
    expect(host.cost.end('unreg').items.map((i) => i.name)).toContain('wbinvd');
    expect(page_maybe_dma_pinned(host.kernel.store, pfn)).toBe(false);
    expect(p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_REG_REGION, { addr: s.hva, size: 0n })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const plain = vm_create_barebones_type(host.process(), KVM_X86_DEFAULT_VM);
    expect(plain.p.ioctl(plain.fd, KVM_MEMORY_ENCRYPT_REG_REGION, { addr: s.hva, size: PG })).toBe(-1);
    expect(plain.p.errno).toBe(Errno.ENOTTY);
  });
});

describe('SEV init, guest states and ASIDs', () => {
  test('KVM_SEV_INIT on a default VM gives an SEV ASID; INIT2 needs a confidential type; commands out of order fail', () => {
    const host = sevHost();
    const p = host.process();
    const vm = vm_create_barebones_type(p, KVM_X86_DEFAULT_VM);
    const sev_fd = p.open('/dev/sev');
    expect(sev_cmd(vm, KVM_SEV_INIT2, {}, sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(vm, KVM_SEV_LAUNCH_START, {}, sev_fd)).toMatchObject({ r: -1, errno: Errno.ENOTTY });
    expect(sev_cmd(vm, KVM_SEV_INIT, {}, sev_fd).r).toBe(0);
    expect(to_kvm_sev_info(vm_kvm(vm)).asid).toBeGreaterThanOrEqual(100);
    expect(sev_cmd(vm, KVM_SEV_INIT, {}, sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    // Before LAUNCH_START KVM has no /dev/sev fd for the launch (sev->fd): -EBADF.
    const buf = vmm_buffer(vm, new Uint8Array(PAGE_SIZE));
    expect(sev_cmd(vm, KVM_SEV_LAUNCH_UPDATE_DATA, { uaddr: buf, len: PAGE_SIZE }, sev_fd)).toMatchObject({ r: -1, errno: Errno.EBADF });
    expect(sev_cmd(vm, KVM_SEV_LAUNCH_START, { policy: 0 }, sev_fd).r).toBe(0);
    expect(sev_cmd(vm, KVM_SEV_LAUNCH_FINISH, {}, sev_fd)).toEqual({ r: -1, errno: Errno.EIO, error: SEV_RET_INVALID_GUEST_STATE });
    expect(sev_cmd(vm, KVM_SEV_LAUNCH_UPDATE_VMSA, {}, sev_fd)).toMatchObject({ r: -1, errno: Errno.ENOTTY });
    const es = vm_create_barebones_type(p, KVM_X86_SEV_ES_VM);
    expect(sev_cmd(es, KVM_SEV_INIT2, { ghcb_version: 3 }, sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(es, KVM_SEV_INIT2, { flags: 1 }, sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(es, KVM_SEV_INIT2, { vmsa_features: 1 }, sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
  });

  test('a host without SEV-SNP (kvm_amd.sev_snp=0) refuses KVM_X86_SNP_VM; SEV VMs still work', () => {
    const host = sevHost({ sev_snp: false });
    const p = host.process();
    const kvm_fd = p.open('/dev/kvm');
    expect(p.ioctl(kvm_fd, KVM_CREATE_VM, KVM_X86_SNP_VM)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(kvm_fd, KVM_CREATE_VM, KVM_X86_SEV_VM)).toBeGreaterThanOrEqual(0);
  });

  test('SEV-ES: LAUNCH_UPDATE_VMSA measures and encrypts the vCPU save area; the vCPU state is protected', () => {
    const host = sevHost();
    const s = sev_vm(host, KVM_X86_SEV_ES_VM);
    const kvm = vm_kvm(s.vm);
    const sev = to_kvm_sev_info(kvm);
    expect(sev.asid).toBeGreaterThanOrEqual(1);
    expect(sev.asid).toBeLessThan(100);
    expect(kvm.arch.has_protected_state).toBe(true);
    expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_START, { policy: SEV_POLICY_ES }, s.sev_fd).r).toBe(0);
    const img = image(1, 5);
    expect(s.vm.p.store(s.hva, img)).toBe(0);
    expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_UPDATE_DATA, { uaddr: s.hva, len: PAGE_SIZE }, s.sev_fd).r).toBe(0);
    const vcpu = [...kvm.vcpus.values()][0]!;
    const vmsa = sev_es_sync_vmsa(vcpu);
    expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, {}, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
    const vmsa_pfn = sev.vcpus.get(vcpu)!.vmsa_pfn;
    expect(vmsa_pfn % 512).not.toBe(0);
    expect(host.phys.inspect(vmsa_pfn as never)).toMatchObject({ kind: 'ciphertext', key: sev.asid });
    expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_MEASURE, { uaddr: vmm_buffer(s.vm, new Uint8Array(48)), len: 48 }, s.sev_fd).r).toBe(0);
    expect(sev_launch_digest(kvm)).toEqual(createHash('sha256').update(img).update(vmsa).digest());
  });

  test('ASIDs run out (-EBUSY) and are recycled once a VM is gone: WBINVD, then DF_FLUSH before reuse', () => {
    const host = sevHost({ min_sev_asid: 3 });
    const a = sev_vm(host, KVM_X86_SEV_ES_VM);
    const b = sev_vm(host, KVM_X86_SEV_ES_VM);
    expect(sev_cmd(a.vm, KVM_SEV_LAUNCH_START, { policy: SEV_POLICY_ES }, a.sev_fd).r).toBe(0);
    expect([to_kvm_sev_info(vm_kvm(a.vm)).asid, to_kvm_sev_info(vm_kvm(b.vm)).asid]).toEqual([1, 2]);
    const p = host.process();
    const c = vm_create_barebones_type(p, KVM_X86_SEV_ES_VM);
    const sev_fd = p.open('/dev/sev');
    expect(sev_cmd(c, KVM_SEV_INIT2, {}, sev_fd)).toMatchObject({ r: -1, errno: Errno.EBUSY });
    kvm_vm_free(a.vm);
    const h = sev_host(host.kernel);
    expect(h.reclaim_asid_bitmap.has(1)).toBe(true);
    expect(h.fw.dirty_asids.has(1)).toBe(true);
    host.cost.begin('init');
    expect(sev_cmd(c, KVM_SEV_INIT2, {}, sev_fd).r).toBe(0);
    const cost = host.cost.end('init');
    expect(cost.items.map((i) => [i.name, i.count])).toEqual([['sev_psp_cmd', 1], ['wbinvd', 1]]);
    expect(to_kvm_sev_info(vm_kvm(c)).asid).toBe(1);
    expect(h.fw.dirty_asids.size).toBe(0);
    expect(sev_cmd(c, KVM_SEV_LAUNCH_START, { policy: SEV_POLICY_ES }, sev_fd).r).toBe(0);
  });
});

describe('mobility: the address-tweaked cipher forbids moving encrypted pages', () => {
  test('a registered page cannot be migrated; an unregistered encrypted page can, and then the guest reads garbage', () => {
    const host = sevHost();
    const seen: Uint8Array[] = [];
    const s = sev_vm(host, KVM_X86_SEV_VM, function* () {
      seen.push(yield* guestLoad(BASE, 16));
      yield* hlt();
      seen.push(yield* guestLoad(BASE, 16));
    });
    const img = image(1, 0x21);
    sev_launch(s, 0, [{ page: 0, data: img }]);
    const p = s.vm.p;
    const pfn = pagemap_pfn(p.mm, s.hva)!;
    const pa = host.kernel.page_alloc;
    expect(p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_REG_REGION, { addr: s.hva, size: PG })).toBe(0);
    expect(pa.alloc_contig_range(pfn, pfn + 1, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(-Errno.EBUSY);
    vcpu_run(s.vcpu);
    expect(seen[0]).toEqual(img.subarray(0, 16));
    expect(p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_UNREG_REGION, { addr: s.hva, size: PG })).toBe(0);
    // Without the pin, compaction moves the page: copy_page() moves the ciphertext, whose tweak is
    // the old address.
    expect(pa.alloc_contig_range(pfn, pfn + 1, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(0);
    expect(pagemap_pfn(p.mm, s.hva)).not.toBe(pfn);
    vcpu_run(s.vcpu);
    expect(seen[1]).not.toEqual(img.subarray(0, 16));
  });
});
