/*
 * The SEV-SNP row of the illegal-access matrix (vendor-models.md §2.7), by actor and kind:
 *  - host user space: guest_memfd private pages cannot be mapped (SIGBUS on the fault);
 *  - host kernel: a read returns the ciphertext; a write, full or partial, takes an RMP #PF:
 *    through mm's host_access hook a kernel access without fixup oopses, a uaccess copy gets
 *    -EFAULT, a user access would get SIGBUS;
 *  - device DMA: the IOMMU's RMP check faults a write, a read returns the ciphertext;
 *  - the guest: see snp_convert.test.ts (#VC for a page not validated);
 * and the same accesses once the page went back to the hypervisor (to shared) succeed.
 */
import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import { MAP_SHARED, MM_HOST_ACCESS_FAULT, PROT_READ, PROT_WRITE, KernelOops, isSigInfo, kernel_host_access, uaccess_host_access } from '@cocosim/mm';
import { GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, kvm_host_access_hooks } from '@cocosim/kvm';
import {
  Device, IOMMU_READ, IOMMU_WRITE, Iommu, dma_read, dma_write, iommu_attach_group, iommu_group_add_device, iommu_map,
  iommu_paging_domain_alloc, iommu_vendor_ops_merge, isDmaError,
} from '@cocosim/vfio';
import { BASE, gmem_pfn, image, snpHost, snp_launch, snp_vm } from './snp_env.test-util.js';
import { KVM_SEV_SNP_PAGE_TYPE_NORMAL, sevVendorPlugin, sev_gmem_invalidate } from './index.js';

/** A launched SNP VM whose first page holds `img`, and that page's pfn. */
function launched(): { host: ReturnType<typeof snpHost>; s: ReturnType<typeof snp_vm>; pfn: number; img: Uint8Array } {
  const host = snpHost();
  const s = snp_vm(host);
  const img = image(1, 0x6b);
  snp_launch(s, [{ gpa: BASE, data: img, type: KVM_SEV_SNP_PAGE_TYPE_NORMAL }]);
  return { host, s, pfn: gmem_pfn(s.kvm, BASE), img };
}

describe('SNP: host accesses to a private page', () => {
  test('the vendor answers: reads give ciphertext, full and partial writes fault (RMP #PF); after to-shared both are fine', () => {
    const { host, s, pfn, img } = launched();
    const ops = s.kvm.x86_ops;
    expect(ops.host_access(s.kvm, pfn, false, 'kernel', 0, PAGE_SIZE)).toEqual({ kind: 'ciphertext' });
    expect(ops.host_access(s.kvm, pfn, true, 'kernel', 0, PAGE_SIZE)).toMatchObject({ kind: 'fault' });
    expect(ops.host_access(s.kvm, pfn, true, 'kernel', 8, 4)).toMatchObject({ kind: 'fault' });
    expect(ops.host_access(s.kvm, pfn, true, 'user', 0, 64)).toMatchObject({ kind: 'fault' });
    // What the host's read returns: neither the plaintext nor zeros.
    const raw = host.phys.read(pfn as Pfn, 0, PAGE_SIZE) as Uint8Array;
    expect(Buffer.from(raw).equals(Buffer.from(img))).toBe(false);
    expect(raw.some((b) => b !== 0)).toBe(true);
    sev_gmem_invalidate(s.kvm, pfn, pfn + 1);
    expect(ops.host_access(s.kvm, pfn, true, 'kernel', 0, PAGE_SIZE)).toEqual({ kind: 'ok' });
  });

  test("through mm's host_access hook: a kernel memset oopses, a uaccess copy is -EFAULT, reads go through", () => {
    const { host, pfn } = launched();
    const k = host.kernel;
    expect(kvm_host_access_hooks.host_access!(k, pfn, true, 'user', 0, 8)).toBe(MM_HOST_ACCESS_FAULT);
    expect(kvm_host_access_hooks.host_access!(k, pfn, false, 'kernel', 0, 8)).toBe(0);
    expect(() => kernel_host_access(k, pfn, true, 100, 8)).toThrow(KernelOops);
    expect(() => kernel_host_access(k, pfn, true, 0, PAGE_SIZE)).toThrow(/unable to handle page fault for address: ffff8880[0-9a-f]+\n#PF: supervisor write access in kernel mode/);
    expect(uaccess_host_access(k, pfn, true, 0, 64)).toBe(-14);
    expect(uaccess_host_access(k, pfn, false, 0, 64)).toBe(0);
    expect(kernel_host_access(k, pfn, false, 0, 64)).toBe(0);
    // A page no guest_memfd holds is the host's own.
    expect(kernel_host_access(k, 100, true, 0, 64)).toBe(0);
  });

  test('host user space cannot map private guest_memfd memory: the fault is SIGBUS', () => {
    const host = snpHost();
    const s = snp_vm(host);
    const arg = { size: BigInt(4 * PAGE_SIZE), flags: BigInt(GUEST_MEMFD_FLAG_MMAP) };
    const fd = s.vm.p.ioctl(s.vm.fd, KVM_CREATE_GUEST_MEMFD, arg);
    expect(fd).toBeGreaterThanOrEqual(0);
    const a = s.vm.p.mmap(0n, BigInt(4 * PAGE_SIZE), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const r = s.vm.p.load(a, 8);
    expect(isSigInfo(r) && [r.signo, r.si_code]).toEqual(['SIGBUS', 'BUS_ADRERR']);
  });
});

describe('SNP: device DMA to a private page', () => {
  test("the AMD IOMMU's RMP check faults a write, full or partial; a read returns ciphertext; after to-shared the write goes through", () => {
    const { host, s, pfn, img } = launched();
    const iommu = new Iommu(host.kernel, iommu_vendor_ops_merge(sevVendorPlugin.iommu_ops));
    const dev = new Device('0000:00:05.0', iommu, 'vfio-pci');
    const group = iommu_group_add_device(iommu, dev);
    const domain = iommu_paging_domain_alloc(dev);
    expect(iommu_attach_group(domain, group)).toBe(0);
    expect(iommu_map(domain, 0x100000n, BigInt(pfn) << 12n, 4096n, IOMMU_READ | IOMMU_WRITE)).toBe(0);
    const w = dma_write(dev, 0x100000n, new Uint8Array(PAGE_SIZE).fill(1));
    expect(isDmaError(w) && [w.error, w.reason]).toEqual(['io_page_fault', 'RMP violation (AMD IOMMU: device write to a page assigned in the RMP)']);
    expect(isDmaError(dma_write(dev, 0x100010n, new Uint8Array(4)))).toBe(true);
    const r = dma_read(dev, 0x100000n, 64);
    expect(r instanceof Uint8Array && Buffer.from(r).equals(Buffer.from(img.subarray(0, 64)))).toBe(false);
    expect(s.kvm.x86_ops.dma_access(s.kvm, pfn, true)).toMatchObject({ kind: 'fault' });
    sev_gmem_invalidate(s.kvm, pfn, pfn + 1);
    expect(dma_write(dev, 0x100000n, new Uint8Array(8).fill(2))).toBe(0);
    expect(dma_read(dev, 0x100000n, 8)).toEqual(new Uint8Array(8).fill(2));
  });
});
