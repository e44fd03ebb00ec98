/**
 * Device DMA: simulated hardware, no kernel function. A device reads or writes memory at an
 * IOVA; the IOMMU translates each page through the domain the device's group is attached to
 * (VFIO type1's container domain, or the iommufd HWPT the device is attached to), checks the
 * IOPTE's permission, and asks the platform (IommuVendorOps.dma_access) whether the access may
 * reach the page. A DMA the IOMMU refuses is an I/O page fault: reported to the IOMMU driver
 * (the io_page_fault tracepoint) and returned as the DMA's error, which ends the transfer (the
 * pages before the faulting one were transferred, as on a bus).
 *
 * Causes of a fault: the device has no translation (its group is in the blocking domain, or the
 * IOVA is outside the aperture or unmapped), the IOPTE lacks IOMMU_READ for a read or IOMMU_WRITE
 * for a write, or the platform refuses the page. A read of a poisoned line is not an IOMMU fault
 * but a poisoned completion, returned as such.
 */
import { BUG_ON, U64_MAX, isMemPoison, type Pfn } from '@cocosim/core';
import { IOMMU_FAULT_READ, IOMMU_FAULT_WRITE, IOMMU_READ, IOMMU_WRITE, report_iommu_fault, type Device } from './iommu.js';
import { mm_dma_access_key } from '@cocosim/mm';

/** Why a DMA stopped. */
export interface DmaError {
  /** 'io_page_fault': the IOMMU refused it; 'poison': the memory read was poisoned. */
  readonly error: 'io_page_fault' | 'poison';
  /** The IOVA of the access that stopped. */
  readonly iova: bigint;
  readonly write: boolean;
  /** What refused it: "blocked", "unmapped", "read-only", "write-only", or the platform's reason. */
  readonly reason: string;
}

/** True for a DMA's error result. */
export function isDmaError(x: unknown): x is DmaError {
  return typeof x === 'object' && x !== null && 'error' in x && 'iova' in x;
}

/**
 * One page of a transfer (`len` bytes from `iova`): the frame, and whether the memory controller
 * answers a read with zeros, or why it cannot be reached.
 */
function translate(dev: Device, iova: bigint, write: boolean, len: number): { pfn: Pfn; zeros: boolean } | DmaError {
  const domain = dev.iommu_group.domain;
  const fault = (reason: string): DmaError => {
    report_iommu_fault(domain, dev, iova, write ? IOMMU_FAULT_WRITE : IOMMU_FAULT_READ);
    return { error: 'io_page_fault', iova, write, reason };
  };
  if (domain === null) return fault('blocked');
  if (iova > domain.aperture_end) return fault('unmapped');
  const leaf = domain.lookup(Number(iova >> 12n));
  if (leaf === undefined) return fault('unmapped');
  if (!(leaf.prot & (write ? IOMMU_WRITE : IOMMU_READ))) return fault(write ? 'read-only' : 'write-only');
  const outcome = dev.iommu.ops.dma_access(dev, leaf.pfn, write, Number(iova & 0xfffn), len);
  if (outcome.kind === 'fault') return fault(outcome.reason);
  return { pfn: leaf.pfn, zeros: outcome.kind === 'zeros' };
}

/** The IOVA a transfer of `len` bytes starts at, checked to stay inside the 64-bit bus address space. */
function bus_address(iova: bigint | number, len: number): bigint {
  const a = BigInt(iova);
  BUG_ON(a < 0n || a > U64_MAX, `DMA at ${a}: not a 64-bit bus address`);
  BUG_ON(!Number.isSafeInteger(len) || len < 0, `DMA of ${len} bytes`);
  return a;
}

/**
 * A device read of `len` bytes at `iova` (device memory-read requests): the bytes, or the error
 * that stopped it.
 */
export function dma_read(dev: Device, iova: bigint | number, len: number): Uint8Array | DmaError {
  const start = bus_address(iova, len);
  const phys = dev.iommu.kernel.phys;
  const out = new Uint8Array(len);
  for (let pos = 0; pos < len; ) {
    const cur = start + BigInt(pos);
    if (cur > U64_MAX) return { error: 'io_page_fault', iova: cur, write: false, reason: 'unmapped' };
    const off = Number(cur & 0xfffn);
    const n = Math.min(len - pos, 4096 - off);
    const t = translate(dev, cur, false, n);
    if ('error' in t) return t;
    if (t.zeros) {
      pos += n;
      continue;
    }
    const r = phys.readInto(t.pfn, off, n, out, pos, mm_dma_access_key(dev.iommu.kernel, t.pfn));
    if (isMemPoison(r)) return { error: 'poison', iova: cur, write: false, reason: 'poisoned memory' };
    pos += n;
  }
  return out;
}

/**
 * A device write of `data` at `iova` (memory-write requests): 0, or the error that stopped it
 * (the pages before the faulting one were written).
 */
export function dma_write(dev: Device, iova: bigint | number, data: Uint8Array): 0 | DmaError {
  const start = bus_address(iova, data.length);
  const phys = dev.iommu.kernel.phys;
  for (let pos = 0; pos < data.length; ) {
    const cur = start + BigInt(pos);
    if (cur > U64_MAX) return { error: 'io_page_fault', iova: cur, write: true, reason: 'unmapped' };
    const off = Number(cur & 0xfffn);
    const n = Math.min(data.length - pos, 4096 - off);
    const t = translate(dev, cur, true, n);
    if ('error' in t) return t;
    phys.write(t.pfn, off, data.subarray(pos, pos + n), mm_dma_access_key(dev.iommu.kernel, t.pfn));
    pos += n;
  }
  return 0;
}
