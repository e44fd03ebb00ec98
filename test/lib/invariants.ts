/**
 * DEBUG_VM for a test, opt in: a process whose every system call is followed by the host's
 * invariant checks (mm/src/debug_vm.ts check_vm(), plus whatever KVM and VFIO registered), and
 * whose failed calls are shown to have changed nothing (the state digest before and after).
 * A broken rule fails the test at the call that broke it, naming the call, the rule and the pfn.
 *
 *   test('...', ({ host }) => {
 *     const p = withInvariants(host);
 *     p.memfd_create('x', 0);   // checked
 *   });
 *
 * What it costs per call on a 2 GiB test host (check_vm() and about one state digest) grows
 * with the pages in use: about 3 ms of CPU with 100 pages, 15 ms with 10,000
 * (scripts/debug-vm-cost.mjs).
 */
import { debug_vm_process, type DebugVmOptions, type Process } from '@cocosim/mm';
import type { SimHost } from './fixtures.js';

/** A process of `host` (a new one, or `p`) checked after every call. */
export function withInvariants(host: SimHost, p: Process = host.process(), opts: DebugVmOptions = {}): Process {
  return debug_vm_process(p, opts);
}
