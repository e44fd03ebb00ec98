import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { createPlatform, type Platform } from '../host.js';
import { getOp, runOp } from './ops.js';
import { formatMismatch } from './results.js';
import { replay } from './replay.js';
import { MAX_DATA_LEN } from './values.js';

function platform(): Platform {
  return createPlatform({ mm: { nr_pages: 4096 } });
}

function run(p: Platform, lines: string[]) {
  const r = replay(`${lines.join('\n')}\n`, { file: 't.jsonl', platform: p });
  expect(r.errors).toEqual([]);
  expect(r.crash).toBeUndefined();
  expect(r.mismatches.map(formatMismatch)).toEqual([]);
  return r;
}

describe('the simulated VFIO device ops', () => {
  test('on a host without VFIO they answer ENOSYS, as a kernel without the facility would', () => {
    const kernel = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 1024 })).resolve(Kernel);
    const ctx = { platform: platform(), process: new Process(kernel) };
    for (const [name, args] of [['vfio_device_add', []], ['dma_read', [0, 0, 4]], ['dma_write', [0, 0, Uint8Array.of(1)]]] as const) {
      expect(runOp(getOp(name)!, ctx, args), name).toEqual({ ret: -1, errno: Errno.ENOSYS });
    }
  });

  test('a device index no device has is ENODEV; arguments no C program can pass are EINVAL', () => {
    const p = platform();
    const ctx = { platform: p, process: p.process() };
    expect(runOp(getOp('dma_read')!, ctx, [0, 0, 4])).toEqual({ ret: -1, errno: Errno.ENODEV });
    expect(runOp(getOp('vfio_device_add')!, ctx, [])).toMatchObject({ ret: 0, arg: { group: '/dev/vfio/0', cdev: '/dev/vfio/devices/vfio0' } });
    expect(runOp(getOp('dma_read')!, ctx, [1, 0, 4])).toEqual({ ret: -1, errno: Errno.ENODEV });
    expect(runOp(getOp('dma_read')!, ctx, [0.5, 0, 4])).toEqual({ ret: -1, errno: Errno.EINVAL });
    expect(runOp(getOp('dma_read')!, ctx, [0, Number.NaN, 4])).toEqual({ ret: -1, errno: Errno.EINVAL });
    expect(runOp(getOp('dma_read')!, ctx, [0, 0, MAX_DATA_LEN + 1])).toEqual({ ret: -1, errno: Errno.EINVAL });
    expect(runOp(getOp('dma_write')!, ctx, [0, 0, 'beef'])).toEqual({ ret: -1, errno: Errno.EINVAL });
    // A device nobody claimed has no domain: its DMA is blocked, and -1 of a u64 is 2^64-1.
    expect(runOp(getOp('dma_read')!, ctx, [0, -1, 1])).toMatchObject({ ret: -1, errno: Errno.EFAULT, arg: { error: 'io_page_fault', iova: 2n ** 64n - 1n, reason: 'blocked' } });
  });

  test('a write that faults part way leaves the pages before the fault written, as on a bus', () => {
    const p = platform();
    run(p, [
      '{"op": "open", "path": "/dev/vfio/vfio", "as": "c"}',
      '{"op": "vfio_device_add", "as": "d"}',
      '{"op": "open", "path": "/dev/vfio/0", "as": "g"}',
      '{"op": "ioctl", "fd": "$g", "req": "VFIO_GROUP_SET_CONTAINER", "arg": "$c", "expect": {"ret": 0}}',
      '{"op": "ioctl", "fd": "$c", "req": "VFIO_SET_IOMMU", "arg": "VFIO_TYPE1v2_IOMMU", "expect": {"ret": 0}}',
      '{"op": "mmap", "length": 8192, "prot": "PROT_READ|PROT_WRITE", "flags": "MAP_PRIVATE|MAP_ANONYMOUS", "as": "m"}',
      '{"op": "store", "addr": "$m+4092", "data": "0000000000000000", "expect": {"ret": 0}}',
      '{"op": "ioctl", "fd": "$c", "req": "VFIO_IOMMU_MAP_DMA", "arg": {"argsz": 32, "flags": 3, "vaddr": "$m", "iova": 65536, "size": 4096}, "expect": {"ret": 0}}',
      '{"op": "dma_write", "device": "$d", "iova": 69628, "data": "1122334455667788", "expect": {"ret": -1, "errno": "EFAULT", "arg": {"error": "io_page_fault", "iova": 69632, "write": true, "reason": "unmapped"}}}',
      '{"op": "load", "addr": "$m+4092", "len": 8, "expect": {"ret": 0, "data": "1122334400000000"}}',
      // The read of the same range stops at the same page and returns nothing.
      '{"op": "dma_read", "device": "$d", "iova": 69628, "len": 8, "expect": {"ret": -1, "errno": "EFAULT", "arg": {"iova": 69632, "write": false}}}',
    ]);
  });

  test('each op is listed on every platform, outside the generic part', () => {
    for (const name of ['vfio_device_add', 'dma_read', 'dma_write']) {
      const op = getOp(name)!;
      expect(op.generic, name).toBe(false);
      expect(op.run, name).toBeDefined();
    }
  });
});
