#!/usr/bin/env node
/**
 * What DEBUG_VM costs per call (mm/src/debug_vm.ts): the state digest and check_vm() on a host
 * of SIZE pages (default 2^19, 2 GiB, as test hosts) with IN_USE pages in use (default 10000: a
 * shared memfd mapping, faulted in, one page in seven written with real bytes), in CPU
 * milliseconds (process.cpuUsage, which a loaded machine inflates less than wall time).
 *
 *   npx tsc -b && node scripts/debug-vm-cost.mjs [IN_USE] [SIZE]
 */
import 'reflect-metadata';
import { createRootContainer } from '@cocosim/core';
import {
  Kernel, MADV_POPULATE_WRITE, MAP_SHARED, PROT_READ, PROT_WRITE, Process, check_vm, mm_state_digest, mmRegistrar,
} from '@cocosim/mm';

const inUse = Number(process.argv[2] ?? 10000);
const size = Number(process.argv[3] ?? 2 ** 19);
const kernel = createRootContainer({}, mmRegistrar({ nr_pages: size })).resolve(Kernel);
const p = new Process(kernel);
if (inUse > 0) {
  const fd = p.memfd_create('cost', 0);
  p.ftruncate(fd, inUse * 4096);
  const a = p.mmap(0, BigInt(inUse) * 4096n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  p.madvise(a, BigInt(inUse) * 4096n, MADV_POPULATE_WRITE);
  for (let i = 0; i < inUse; i += 7) p.store(a + BigInt(i) * 4096n + 5n, Uint8Array.of(1, 2, 3));
}

function cpu(f, n) {
  for (let i = 0; i < 20; i++) f();
  const t = process.cpuUsage();
  for (let i = 0; i < n; i++) f();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000 / n;
}

const n = inUse > 50000 ? 10 : 50;
const digest = cpu(() => mm_state_digest(kernel), n);
const check = cpu(() => check_vm(kernel), n);
const thorough = cpu(() => check_vm(kernel, { thorough: true }), n);
console.log(`host ${size} pages (${(size * 4096) / 2 ** 30} GiB), ${inUse} in use: ` +
  `state digest ${digest.toFixed(2)} ms, check_vm ${check.toFixed(2)} ms, check_vm thorough ${thorough.toFixed(2)} ms (CPU)`);
