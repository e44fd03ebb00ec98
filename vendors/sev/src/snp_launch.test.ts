/*
 * SEV-SNP launch through KVM_MEMORY_ENCRYPT_OP (KVM_SEV_INIT2, KVM_SEV_SNP_LAUNCH_START/UPDATE/
 * FINISH): the RMP states of launched pages, what the guest reads, the launch digest (stable for
 * the same image, different for a changed byte or order, equal to an independent computation of
 * the SNP ABI's PAGE_INFO chain), the ID block check, and KVM's and the firmware's errors.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import { KVM_MEMORY_ENCRYPT_OP, guestLoad } from '@cocosim/kvm';
import { BASE, POLICY, gmem_pfn, image, sev_cmd, snpHost, snp_launch, snp_vm, vcpu_run, vm_set_private, vmm_buffer } from './snp_env.test-util.js';
import {
  INITIAL_VMSA_GPA, KVM_SEV_INIT2, KVM_SEV_LAUNCH_START, KVM_SEV_SNP_LAUNCH_FINISH, KVM_SEV_SNP_LAUNCH_START,
  KVM_SEV_SNP_LAUNCH_UPDATE, KVM_SEV_SNP_PAGE_TYPE_CPUID, KVM_SEV_SNP_PAGE_TYPE_NORMAL, KVM_SEV_SNP_PAGE_TYPE_ZERO,
  SEV_RET_BAD_MEASUREMENT, SEV_RET_INVALID_GUEST_STATE, SEV_RET_INVALID_PARAM, SNP_PAGE_TYPE_VMSA,
  sev_es_sync_vmsa, sev_host, snp_launch_digest, to_kvm_sev_info,
} from './index.js';

/** The launch digest as sev-snp-measure computes it (SNP ABI PAGE_INFO, SHA-384 chain). */
function expected_digest(pages: readonly { gpa: bigint; contents: Uint8Array | null; type: number }[]): Buffer {
  let ld = Buffer.alloc(48);
  for (const pg of pages) {
    const info = Buffer.alloc(0x70);
    info.set(ld, 0);
    if (pg.contents !== null) info.set(createHash('sha384').update(pg.contents).digest(), 48);
    info.writeUInt16LE(0x70, 96);
    info.writeUInt8(pg.type, 98);
    info.writeBigUInt64LE(pg.gpa, 104);
    ld = createHash('sha384').update(info).digest();
  }
  return ld;
}

describe('SNP launch', () => {
  test('launched pages are Guest-Valid, encrypted under the ASID, and the guest reads the image', () => {
    const host = snpHost();
    const img = image(2, 0x40);
    let seen: Uint8Array | undefined;
    const s = snp_vm(host, function* () {
      seen = yield* guestLoad(BASE, 2 * PAGE_SIZE);
    });
    snp_launch(s, [{ gpa: BASE, data: img, type: KVM_SEV_SNP_PAGE_TYPE_NORMAL }]);
    const rmp = sev_host(host.kernel).rmp;
    const asid = to_kvm_sev_info(s.kvm).asid;
    expect(asid).toBeGreaterThanOrEqual(1);
    expect(asid).toBeLessThan(100);
    for (let i = 0; i < 2; i++) {
      const pfn = gmem_pfn(s.kvm, BASE + BigInt(i * PAGE_SIZE));
      expect(rmp.authoritative(pfn).e).toMatchObject({ assigned: true, immutable: false, validated: true, asid, gpa: BASE + BigInt(i * PAGE_SIZE) });
      expect(host.phys.inspect(pfn as Pfn)).toMatchObject({ kind: 'ciphertext', key: asid });
      // The host's read through its own key is neither the image nor zeros.
      const raw = host.phys.read(pfn as Pfn, 0, 64) as Uint8Array;
      expect(Buffer.from(raw).equals(Buffer.from(img.subarray(i * PAGE_SIZE, i * PAGE_SIZE + 64)))).toBe(false);
      expect(raw.every((b) => b === 0)).toBe(false);
    }
    expect(s.kvm.arch.pre_fault_allowed).toBe(true);
    vcpu_run(s.vcpu);
    expect(seen).toEqual(img);
  });

  test('the launch digest is the PAGE_INFO chain over the pages and the VMSA; stable, and it changes with a byte or the order', () => {
    const run = (seed: number, order: 'ab' | 'ba', tweak: boolean): Buffer => {
      const host = snpHost(seed);
      const s = snp_vm(host);
      const a = image(1, 0x10);
      const b = image(1, 0x20);
      if (tweak) b[100] ^= 1;
      const pa = { gpa: BASE, data: a, type: KVM_SEV_SNP_PAGE_TYPE_NORMAL };
      const pb = { gpa: BASE + 0x1000n, data: b, type: KVM_SEV_SNP_PAGE_TYPE_NORMAL };
      snp_launch(s, order === 'ab' ? [pa, pb] : [pb, pa]);
      const vmsa = sev_es_sync_vmsa(s.vcpu.kvcpu);
      const pages = (order === 'ab' ? [pa, pb] : [pb, pa]).map((u) => ({ gpa: u.gpa, contents: u.data, type: u.type }));
      expect(snp_launch_digest(s.kvm)).toEqual(expected_digest([...pages, { gpa: INITIAL_VMSA_GPA, contents: vmsa, type: SNP_PAGE_TYPE_VMSA }]));
      return snp_launch_digest(s.kvm)!;
    };
    const d = run(1, 'ab', false);
    expect(run(2, 'ab', false)).toEqual(d);
    expect(run(1, 'ab', true)).not.toEqual(d);
    expect(run(1, 'ba', false)).not.toEqual(d);
  });

  test('a ZERO page is measured without contents and reads as zeros; the ID block must carry the digest', () => {
    const host = snpHost();
    let seen: Uint8Array | undefined;
    const s = snp_vm(host, function* () {
      seen = yield* guestLoad(BASE, 16);
    });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd).r).toBe(0);
    const p = { gfn_start: BASE >> 12n, uaddr: 0n, len: 4096n, type: KVM_SEV_SNP_PAGE_TYPE_ZERO };
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, p, s.sev_fd).r).toBe(0);
    const id_block = new Uint8Array(96);
    const blk = vmm_buffer(s.vm, id_block);
    const auth = vmm_buffer(s.vm, new Uint8Array(4096));
    // A wrong digest in the ID block: SEV_RET_BAD_MEASUREMENT, and the launch is not finished.
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_FINISH, { id_block_en: 1, id_block_uaddr: blk, id_auth_uaddr: auth }, s.sev_fd))
      .toEqual({ r: -1, errno: Errno.EIO, error: SEV_RET_BAD_MEASUREMENT });
    expect(s.kvm.arch.pre_fault_allowed).toBe(false);
    // Without an ID block the launch finishes, and the guest reads its ZERO page as zeros.
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_FINISH, {}, s.sev_fd).r).toBe(0);
    vcpu_run(s.vcpu);
    expect(seen).toEqual(new Uint8Array(16));
  });

  test('an ID block with the launch digest and policy finishes the launch', () => {
    const host = snpHost();
    const s = snp_vm(host);
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd).r).toBe(0);
    const img = image(1, 7);
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, { gfn_start: BASE >> 12n, uaddr: vmm_buffer(s.vm, img), len: 4096n, type: 1 }, s.sev_fd).r).toBe(0);
    const vmsa = sev_es_sync_vmsa(s.vcpu.kvcpu);
    const ld = expected_digest([{ gpa: BASE, contents: img, type: 1 }, { gpa: INITIAL_VMSA_GPA, contents: vmsa, type: SNP_PAGE_TYPE_VMSA }]);
    const id_block = new Uint8Array(96);
    id_block.set(ld, 0);
    new DataView(id_block.buffer).setBigUint64(88, POLICY, true);
    const r = sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_FINISH, { id_block_en: 1, id_block_uaddr: vmm_buffer(s.vm, id_block), id_auth_uaddr: vmm_buffer(s.vm, new Uint8Array(4096)) }, s.sev_fd);
    expect(r).toEqual({ r: 0, errno: 0, error: 0 });
  });
});

describe('SNP launch errors', () => {
  test('KVM refuses bad policies, a second context, legacy commands and updates without a context', () => {
    const host = snpHost();
    const s = snp_vm(host);
    const upd = { gfn_start: BASE >> 12n, uaddr: 0n, len: 4096n, type: KVM_SEV_SNP_PAGE_TYPE_ZERO };
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, upd, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_FINISH, {}, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: 1n << 16n }, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY | (1n << 20n) }, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY | (1n << 30n) }, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY, flags: 1 }, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, 99)).toMatchObject({ r: -1, errno: Errno.EBADF });
    expect(sev_cmd(s.vm, KVM_SEV_LAUNCH_START, {}, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EPERM });
    expect(sev_cmd(s.vm, KVM_SEV_INIT2, {}, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EPERM });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd).r).toBe(0);
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(s.vm.p.ioctl(s.vm.fd, KVM_MEMORY_ENCRYPT_OP, 'not a struct')).toBe(-1);
    expect(s.vm.p.errno).toBe(Errno.EFAULT);
  });

  test('an update of a page twice, of a shared gfn or with a bad length fails; after FINISH the firmware refuses updates', () => {
    const host = snpHost();
    const s = snp_vm(host);
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd).r).toBe(0);
    const zero = (gpa: bigint, len = 4096n): object => ({ gfn_start: gpa >> 12n, uaddr: 0n, len, type: KVM_SEV_SNP_PAGE_TYPE_ZERO });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, zero(BASE, 100n), s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, { ...zero(BASE), type: SNP_PAGE_TYPE_VMSA }, s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, zero(0x1000n), s.sev_fd)).toMatchObject({ r: -1, errno: Errno.EINVAL });
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, zero(BASE), s.sev_fd).r).toBe(0);
    // The folio is prepared now: kvm_gmem_populate() says -EEXIST, KVM reports -EIO.
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, zero(BASE), s.sev_fd)).toEqual({ r: -1, errno: Errno.EIO, error: 0 });
    vm_set_private(s.vm, BASE + 0x1000n, 0x1000n, true);
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_FINISH, {}, s.sev_fd).r).toBe(0);
    const rmp = sev_host(host.kernel).rmp;
    const before = rmp.size;
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, zero(BASE + 0x2000n), s.sev_fd)).toEqual({ r: -1, errno: Errno.EIO, error: SEV_RET_INVALID_GUEST_STATE });
    // The page made Pre-Guest for the failed command was reclaimed: the RMP is as before.
    expect(rmp.size).toBe(before);
  });

  test('a CPUID page the firmware rejects comes back corrected in the source buffer', () => {
    const host = snpHost();
    const s = snp_vm(host);
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd).r).toBe(0);
    const page = new Uint8Array(PAGE_SIZE);
    const v = new DataView(page.buffer);
    v.setUint32(0, 1, true);
    v.setUint32(16, 0x8000001f, true);
    v.setUint32(16 + 28, 47, true);
    const src = vmm_buffer(s.vm, page);
    const r = sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, { gfn_start: BASE >> 12n, uaddr: src, len: 4096n, type: KVM_SEV_SNP_PAGE_TYPE_CPUID }, s.sev_fd);
    expect(r).toEqual({ r: -1, errno: Errno.EIO, error: SEV_RET_INVALID_PARAM });
    const back = s.vm.p.load(src + 16n + 28n, 4) as Uint8Array;
    expect(new DataView(back.buffer).getUint32(0, true) & 0x3f).toBe(51);
    expect(sev_host(host.kernel).rmp.authoritative(gmem_pfn(s.kvm, BASE)).e.assigned).toBe(false);
  });
});
