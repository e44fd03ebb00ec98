/**
 * User-mode memory accesses and the x86 page-fault handler (arch/x86/mm/fault.c,
 * arch/x86/kernel/cpu/mce/core.c; Linux 6.18).
 *
 * userLoad() and userStore() play the CPU executing user loads and stores byte range by byte
 * range: for each page the access touches, the translation is the PTE (or PMD/PUD leaf) if it
 * allows the access, and the accessed/dirty bits are set as the MMU does; otherwise the page
 * fault goes to do_user_addr_fault(), and the access is retried once the fault is resolved.
 * Contents are read and written through kernel.phys (the shared zero page reads zero).
 *
 * Outcomes, as a C program sees them in its signal handler's siginfo:
 *   - no VMA (or below a VMA that does not grow down): SIGSEGV SEGV_MAPERR;
 *   - a VMA without the access (a write to a read-only mapping, any access to PROT_NONE):
 *     SIGSEGV SEGV_ACCERR. x86 cannot make pages write-only or exec-only, so PROT_WRITE and
 *     PROT_EXEC mappings are readable (checked on 6.18);
 *   - VM_FAULT_SIGBUS (e.g. a file page beyond EOF): SIGBUS BUS_ADRERR;
 *   - VM_FAULT_HWPOISON (a hwpoison entry, a poisoned page-cache page): SIGBUS BUS_MCEERR_AR with
 *     si_addr_lsb PAGE_SHIFT (the huge page shift for VM_FAULT_HWPOISON_LARGE);
 *   - VM_FAULT_SIGSEGV (a guard region): SIGSEGV SEGV_MAPERR;
 *   - VM_FAULT_OOM: the OOM killer; the simulator reports SIGKILL (SI_KERNEL) for the faulting
 *     process rather than choosing a victim;
 *   - a load consuming a poisoned cache line: a machine check, then kill_me_maybe():
 *     memory_failure() (memory-failure.ts, through `x86_mce_hooks`) signals SIGBUS BUS_MCEERR_AR
 *     at the page, lsb PAGE_SHIFT, if it could not recover the data, or the load is retried if it
 *     could; on a host without memory-failure support (vm_sysctl().memory_failure off, as on the
 *     oracle machine) a plain SIGBUS (SI_KERNEL, si_addr 0);
 *   - a non-canonical address: #GP, SIGSEGV with si_code SI_KERNEL and si_addr 0; a kernel
 *     address: SIGSEGV SEGV_MAPERR.
 * si_addr is the first byte whose access faulted: the access's own address if it starts in the
 * faulting page, else that page's first byte.
 *
 * A multi-page access is a sequence of per-page accesses in address order: a store that faults
 * midway has written the bytes of the pages before the faulting one, as a CPU executing
 * `rep movsb` would, and a load that faults returns only the signal.
 */
import { BUG, Errno, KernelBug, PAGE_SIZE, type Pfn } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import { handle_mm_fault } from './memory.js';
import { MM_HOST_ACCESS_ABORT, MM_HOST_ACCESS_FAULT, MM_HOST_ACCESS_MCE, MM_HOST_ACCESS_ZERO, mm_host_access, mm_host_access_key } from './mm_hooks.js';
import { ulong_arg } from './mman.js';
import {
  FAULT_FLAG_DEFAULT,
  FAULT_FLAG_USER,
  FAULT_FLAG_WRITE,
  VM_FAULT_ERROR,
  VM_FAULT_GET_HINDEX,
  VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_GROWSDOWN,
  VM_LOCKED,
  VM_WRITE,
  task_mm,
  vma_is_accessible,
  effective_mmap_min_addr,
  vm_sysctl,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import {
  PAGES_PER_PUD,
  PTRS_PER_PTE,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  pte_index,
  pte_user_readable,
  pte_user_writable,
  _PAGE_PKEY_MASK,
  pte_pkru_allows,
} from './pgtable.js';
import { arch_vma_access_permitted, vma_pkey } from './pkeys.js';
import { anon_vma_prepare } from './rmap.js';
import { for_each_process } from './process.js';
import { __vm_enough_memory } from './util.js';
import { find_vma, vma_prev, vm_stat_account } from './vma.js';

/** The signals a user access can get. */
export type SigName = 'SIGSEGV' | 'SIGBUS' | 'SIGKILL';
/** si_code values (include/uapi/asm-generic/siginfo.h). */
export type SiCode = 'SEGV_MAPERR' | 'SEGV_ACCERR' | 'SEGV_PKUERR' | 'BUS_ADRERR' | 'BUS_MCEERR_AR' | 'BUS_MCEERR_AO' | 'SI_KERNEL';

/** The siginfo a faulting access delivers. */
export interface SigInfo {
  readonly signo: SigName;
  readonly si_code: SiCode;
  /** The faulting address (0 for #GP). */
  readonly si_addr: bigint;
  /** BUS_MCEERR_*: log2 of the size of the corrupted memory. */
  readonly si_addr_lsb?: number;
  /** SEGV_PKUERR: the protection key of the page. */
  readonly si_pkey?: number;
}

export function isSigInfo(x: unknown): x is SigInfo {
  return typeof x === 'object' && x !== null && typeof (x as { signo?: unknown }).signo === 'string';
}

/**
 * The machine-check seam: memory-failure.ts installs memory_failure() here for kill_me_maybe().
 * `current` is the mm of the task that consumed the poison.
 */
export interface X86MceHooks {
  memory_failure?(kernel: Kernel, pfn: Pfn, flags: number, current?: MmStruct): number;
}
export const x86_mce_hooks: X86MceHooks = {};
/** MF_ACTION_REQUIRED (include/linux/mm.h): the poison was consumed by the current task. */
const MF_ACTION_REQUIRED = 1 << 1;

const PAGE_SIZE_N = BigInt(PAGE_SIZE);
/** The lowest non-canonical address with 4-level paging (2^47) and the first kernel address. */
const NONCANONICAL_LOW = 1n << 47n;
const KERNEL_START = 0xffff_8000_0000_0000n;
/** RLIMIT_STACK's default (8 MiB), for stack growth. */
const RLIMIT_STACK_PAGES = (8 * 1024 * 1024) / PAGE_SIZE;
/** stack_guard_gap (256 pages). */
const STACK_GUARD_GAP = 256;

/**
 * The host kernel oopsed: a kernel access faulted where no exception fixup covers it. The run
 * stops here as the host would (the task dies holding its locks; cocosim hosts panic on oops),
 * so it is a KernelBug, and a test that provokes it expects this class.
 */
export class KernelOops extends KernelBug {
  /** The platform's answer that caused it (MM_HOST_ACCESS_FAULT or MM_HOST_ACCESS_MCE). */
  constructor(message: string, readonly outcome: number) {
    super(message);
  }
}

/** The direct-map address of a pfn (PAGE_OFFSET without KASLR), as an oops prints it. */
const PAGE_OFFSET = 0xffff_8880_0000_0000n;

/**
 * page_fault_oops() (arch/x86/mm/fault.c) for a kernel access of page `pfn` (offset `offset`) that
 * the platform refused (MmHooks.host_access): show_fault_oops()'s lines, then die().
 */
export function page_fault_oops(pfn: number, offset: number, write: boolean, outcome: number): never {
  const addr = (PAGE_OFFSET + BigInt(pfn) * PAGE_SIZE_N + BigInt(offset)).toString(16);
  if (outcome === MM_HOST_ACCESS_MCE) throw new KernelOops(`mce: [Hardware Error]: kernel ${write ? 'write' : 'read'} of 0x${addr}: Kernel panic - not syncing: Fatal machine check`, outcome);
  throw new KernelOops(`BUG: unable to handle page fault for address: ${addr}\n#PF: supervisor ${write ? 'write' : 'read'} access in kernel mode`, outcome);
}

/**
 * What a kernel copy of `len` bytes at `offset` in `pfn` inside a uaccess routine
 * (copy_to_user/copy_from_user, which have exception-table entries) gets from the platform:
 * 0 (copy), MM_HOST_ACCESS_ZERO (a read copies zeros), or -EFAULT (a fault fixed up by
 * kernelmode_fixup_or_oops(): the copy stops short). A machine check has no fixup: oops.
 */
export function uaccess_host_access(kernel: Kernel, pfn: number, write: boolean, offset: number, len: number): number {
  const ha = mm_host_access(kernel, pfn, write, 'kernel', offset, len);
  if (ha === 0) return 0;
  if (ha === MM_HOST_ACCESS_ZERO) return write ? 0 : MM_HOST_ACCESS_ZERO;
  if (ha === MM_HOST_ACCESS_FAULT || ha === MM_HOST_ACCESS_ABORT) return -Errno.EFAULT;
  return page_fault_oops(pfn, offset, write, ha);
}

/**
 * A kernel access of `len` bytes at `offset` in `pfn` with no exception fixup (clear_page,
 * memset of a folio): 0, MM_HOST_ACCESS_ZERO for a read the platform answers with zeros, or the
 * oops of a refused access.
 */
export function kernel_host_access(kernel: Kernel, pfn: number, write: boolean, offset: number, len: number): number {
  const ha = mm_host_access(kernel, pfn, write, 'kernel', offset, len);
  if (ha === 0) return 0;
  if (ha === MM_HOST_ACCESS_ZERO) return write ? 0 : MM_HOST_ACCESS_ZERO;
  return page_fault_oops(pfn, offset, write, ha);
}

/**
 * A user access the platform answered with `ha` (MmHooks.host_access, non-zero): the signal, or
 * null for MM_HOST_ACCESS_ZERO (the access proceeds, a read with zeros). A refused access is an
 * RMP #PF / GPF in user mode: SIGBUS BUS_ADRERR, as Michael Roth's user-mode RMP handler
 * (do_sigbus(), "Unexpected RMP page fault ... terminating process") and arm64's GPF handling
 * give; a machine check / external abort is SIGBUS BUS_MCEERR_AR at the page.
 */
function user_host_access_sig(ha: number, si_addr: number): SigInfo | null {
  if (ha === MM_HOST_ACCESS_FAULT) return sig('SIGBUS', 'BUS_ADRERR', si_addr);
  if (ha === MM_HOST_ACCESS_ABORT) return sig('SIGSEGV', 'SEGV_ACCERR', si_addr);
  if (ha === MM_HOST_ACCESS_MCE) return sig('SIGBUS', 'BUS_MCEERR_AR', si_addr, 12);
  return null;
}

/** The signal's siginfo; `si_addr` may come as a number (an address below 2^47) and is a bigint in it. */
function sig(signo: SigName, si_code: SiCode, addr: bigint | number, si_addr_lsb?: number): SigInfo {
  const si_addr = BigInt(addr);
  return si_addr_lsb === undefined ? { signo, si_code, si_addr } : { signo, si_code, si_addr, si_addr_lsb };
}

/**
 * access_error(): is the access not permitted by the VMA? The protection key first (a key fault,
 * X86_PF_PK, or a fault on a page that is not present yet, whose key would then fault: the
 * kernel checks arch_vma_access_permitted() so as not to map a page only to take a key fault).
 */
function access_error(write: boolean, vma: VmAreaStruct): boolean {
  if (!arch_vma_access_permitted(vma, write, false, false)) return true;
  if (write) return !(vma.vm_flags & VM_WRITE);
  /* read, not present: */
  return !vma_is_accessible(vma);
}

/**
 * bad_area_access_error(): SEGV_PKUERR when the protection key refused the access (with OSPKE,
 * bad_area_access_from_pkeys()), else SEGV_ACCERR.
 */
function bad_area_access_error(write: boolean, vma: VmAreaStruct, si_addr: bigint | number): SigInfo {
  if (vm_sysctl(vma.vm_mm.kernel).pku && !arch_vma_access_permitted(vma, write, false, false)) {
    return { ...sig('SIGSEGV', 'SEGV_PKUERR', si_addr), si_pkey: vma_pkey(vma) };
  }
  return sig('SIGSEGV', 'SEGV_ACCERR', si_addr);
}

/**
 * expand_downwards(): grow a VM_GROWSDOWN VMA down to page `vpn`. 0, or -ENOMEM when it would
 * come within stack_guard_gap of the VMA below, exceed RLIMIT_STACK or the commit limit.
 */
function expand_downwards(vma: VmAreaStruct, vpn: number): number {
  const mm = vma.vm_mm;
  if (BigInt(vpn) * PAGE_SIZE_N < effective_mmap_min_addr(vm_sysctl(mm.kernel))) return -1;
  const prev = vma_prev(mm, vma);
  if (prev !== undefined && !(prev.vm_flags & VM_GROWSDOWN) && vma_is_accessible(prev) && vpn - prev.end_vpn < STACK_GUARD_GAP) {
    return -1;
  }
  anon_vma_prepare(vma);
  const grow = vma.start_vpn - vpn;
  if (grow > vma.vm_pgoff) return -1;
  if (vma.end_vpn - vpn > RLIMIT_STACK_PAGES) return -1;
  if (__vm_enough_memory(mm.kernel, mm, grow)) return -1;
  if (vma.vm_flags & VM_LOCKED) mm.locked_vm += grow;
  vm_stat_account(mm, vma.vm_flags, grow);
  vma.start_vpn = vpn;
  vma.vm_pgoff -= grow;
  mm.mm_mt.mtree_store_range(vma.start_vpn, vma.end_vpn - 1, vma);
  return 0;
}

/**
 * do_user_addr_fault(): a user-mode page fault at page `vpn` (byte `offset` within it). Returns
 * null when the fault was resolved (the access is retried), else the signal.
 */
export function do_user_addr_fault(mm: MmStruct, vpn: number, offset: number, write: boolean, si_addr: bigint | number): SigInfo | null {
  let vma = find_vma(mm, vpn);
  if (vma === undefined) return sig('SIGSEGV', 'SEGV_MAPERR', si_addr);
  if (vpn < vma.start_vpn) {
    if (!(vma.vm_flags & VM_GROWSDOWN) || expand_downwards(vma, vpn) !== 0) return sig('SIGSEGV', 'SEGV_MAPERR', si_addr);
    vma = find_vma(mm, vpn)!;
  }
  /* Ok, we have a good vm_area for this memory access, so we can handle it.. */
  if (access_error(write, vma)) return bad_area_access_error(write, vma, si_addr);
  let flags = FAULT_FLAG_DEFAULT | FAULT_FLAG_USER;
  if (write) flags |= FAULT_FLAG_WRITE;
  const fault = handle_mm_fault(vma, vpn, flags, offset);
  if (!(fault & VM_FAULT_ERROR)) return null;
  return mm_fault_error(fault, si_addr);
}

/** mm_fault_error() -> do_sigbus() / bad_area_nosemaphore() / pagefault_out_of_memory(). */
function mm_fault_error(fault: number, si_addr: bigint | number): SigInfo {
  if (fault & VM_FAULT_OOM) return sig('SIGKILL', 'SI_KERNEL', si_addr);
  if (fault & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) {
    let lsb = 0;
    if (fault & VM_FAULT_HWPOISON_LARGE) lsb = VM_FAULT_GET_HINDEX(fault) + 12;
    if (fault & VM_FAULT_HWPOISON) lsb = 12;
    return sig('SIGBUS', 'BUS_MCEERR_AR', si_addr, lsb);
  }
  if (fault & VM_FAULT_SIGBUS) return sig('SIGBUS', 'BUS_ADRERR', si_addr);
  if (fault & VM_FAULT_SIGSEGV) return sig('SIGSEGV', 'SEGV_MAPERR', si_addr);
  return sig('SIGBUS', 'BUS_ADRERR', si_addr);
}

/**
 * The translation of page `vpn` for an access (the TLB walk): the pfn, with the accessed bit
 * (and dirty bit for a write) set as the MMU does, or -1 when the access faults.
 */
function translate(mm: MmStruct, vpn: number, write: boolean): number {
  const pt = mm.pgd;
  const t = pt.ptes.lookup(Math.floor(vpn / PTRS_PER_PTE));
  if (t !== undefined) {
    const i = pte_index(vpn);
    const f = t.flags[i];
    if (write ? !pte_user_writable(f) : !pte_user_readable(f)) return -1;
    if (f & _PAGE_PKEY_MASK && !pte_pkru_allows(f, write)) return -1;
    const nf = f | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
    if (nf !== f) t.flags[i] = nf;
    return t.val[i];
  }
  const pmd = pt.pmds.size !== 0 ? pt.pmds.get(Math.floor(vpn / PTRS_PER_PTE)) : undefined;
  const e = pmd ?? (pt.puds.size !== 0 ? pt.puds.get(Math.floor(vpn / PAGES_PER_PUD)) : undefined);
  if (e === undefined) return -1;
  if (write ? !pte_user_writable(e.flags) : !pte_user_readable(e.flags)) return -1;
  if (e.flags & _PAGE_PKEY_MASK && !pte_pkru_allows(e.flags, write)) return -1;
  e.flags |= _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  return e.val + (vpn % (pmd !== undefined ? PTRS_PER_PTE : PAGES_PER_PUD));
}

/** The first non-canonical address, as a number: an access that reaches it raises #GP. */
const NONCANONICAL_LOW_NR = 2 ** 47;

/**
 * Where a user access of `len` bytes at `uaddr` (any JS integer shape, see ulong_arg()) starts, as
 * a number, or the signal it raises before touching a page. The CPU takes the bytes in order, so
 * the first one decides: an access of no bytes touches nothing; a non-canonical first address is
 * #GP (SIGSEGV SI_KERNEL); one in the kernel half is a #PF on a supervisor page (SEGV_MAPERR, as
 * Linux 6.18 says for 0xffffffffffffffff); a user address starts the access, and a range that runs
 * on into the non-canonical hole faults on its first missing page before it gets there (load_to()
 * and userStore() raise the #GP at 2^47).
 */
function user_access_start(uaddr: unknown, len: number): number | SigInfo {
  if (typeof uaddr === 'number' && Number.isSafeInteger(uaddr) && uaddr >= 0 && uaddr + len <= NONCANONICAL_LOW_NR) return uaddr;
  const addr = ulong_arg(uaddr);
  if (addr === undefined) return sig('SIGSEGV', 'SI_KERNEL', 0n);
  if (len === 0) return 0;
  if (addr >= KERNEL_START) return sig('SIGSEGV', 'SEGV_MAPERR', addr);
  if (addr >= NONCANONICAL_LOW) return sig('SIGSEGV', 'SI_KERNEL', 0n);
  return Number(addr);
}

/** Get the pfn backing page `vpn` (below 2^35) for an access, faulting as needed; or the signal. */
function fault_in(mm: MmStruct, vpn: number, offset: number, write: boolean, si_addr: number): number | SigInfo {
  for (let tries = 0; ; tries++) {
    const pfn = translate(mm, vpn, write);
    if (pfn >= 0) return pfn;
    /* The kernel would retry forever: a fault that resolves nothing is a simulator bug. */
    if (tries > 4) BUG(`user access at vpn ${vpn}: the fault handler keeps leaving the page unmapped`);
    const s = do_user_addr_fault(mm, vpn, offset, write, si_addr);
    if (s !== null) return s;
  }
}

/**
 * kill_me_maybe() (arch/x86/kernel/cpu/mce/core.c), run on the way back to user mode after the
 * machine check of a user load at `pfn`: memory_failure(pfn, MF_ACTION_REQUIRED) handles the page
 * and, if data was lost, queues SIGBUS BUS_MCEERR_AR at the page on the task (memory-failure.ts),
 * which is what the access delivers. If it recovered without a signal (the page was clean and got
 * dropped), the load is retried (null). Otherwise kill_me_now(): a plain SIGBUS (SI_KERNEL),
 * which is also what a kernel without CONFIG_MEMORY_FAILURE gives (vm_sysctl().memory_failure
 * off, as on the oracle machine: memory_failure() is a stub returning -ENXIO there).
 */
function kill_me_maybe(mm: MmStruct, pfn: Pfn): SigInfo | null {
  const kernel = mm.kernel;
  const mf = x86_mce_hooks.memory_failure;
  const ret = vm_sysctl(kernel).memory_failure && mf !== undefined ? mf(kernel, pfn, MF_ACTION_REQUIRED, mm) : -Errno.ENXIO;
  /* the signal force_sig_mceerr() queued is delivered on return to user mode */
  const task = for_each_process(kernel).find((t) => task_mm(t) === mm);
  if (task !== undefined) {
    const k = task.pending.findIndex((s) => s.signo === 'SIGBUS' && s.si_code === 'BUS_MCEERR_AR');
    if (k >= 0) return task.pending.splice(k, 1)[0];
  }
  if (ret === 0 || ret === -Errno.EHWPOISON || ret === -Errno.EOPNOTSUPP) return null;
  /* pr_err("Memory error not recovered"); kill_me_now() */
  return sig('SIGBUS', 'SI_KERNEL', 0n);
}

/**
 * A user-mode load of `len` bytes at `addr` (any JS integer shape, see ulong_arg()): the bytes,
 * or the signal the access raised.
 */
export function userLoad(mm: MmStruct, uaddr: unknown, len: number): Uint8Array | SigInfo {
  if (!Number.isSafeInteger(len) || len < 0) return sig('SIGSEGV', 'SI_KERNEL', 0n);
  const addr = user_access_start(uaddr, len);
  if (typeof addr !== 'number') return addr;
  const out = new Uint8Array(len);
  const s = load_to(mm, addr, len, out, true);
  return s === null ? out : s;
}

/**
 * A user-mode load of `dst.length` bytes at `addr` into `dst` (a copy into a buffer the caller
 * keeps, as a C program's `memcpy` from the mapping or a load into a register): 0, or the signal
 * the access raised, and then the bytes of the pages before the faulting one may be in `dst`.
 */
export function userLoadInto(mm: MmStruct, uaddr: unknown, dst: Uint8Array): 0 | SigInfo {
  if (!(dst instanceof Uint8Array)) return sig('SIGSEGV', 'SI_KERNEL', 0n);
  const len = dst.length;
  const addr = user_access_start(uaddr, len);
  if (typeof addr !== 'number') return addr;
  return load_to(mm, addr, len, dst, false) ?? 0;
}

/**
 * The loads of userLoad() and userLoadInto(): `len` bytes at `addr` into `out` (`zeroed`: a new
 * array, which reads of the zero page leave as they are); null, or the signal.
 */
function load_to(mm: MmStruct, addr: number, len: number, out: Uint8Array, zeroed: boolean): SigInfo | null {
  const phys = mm.kernel.phys;
  let done = 0;
  let mce_vpn = -1;
  while (done < len) {
    const a = addr + done;
    if (a >= NONCANONICAL_LOW_NR) return sig('SIGSEGV', 'SI_KERNEL', 0n);
    const vpn = Math.floor(a / PAGE_SIZE);
    const off = a - vpn * PAGE_SIZE;
    const n = Math.min(len - done, PAGE_SIZE - off);
    const pfn = fault_in(mm, vpn, off, false, a);
    if (typeof pfn !== 'number') return pfn;
    const ha = pfn === mm.kernel.store.zero_pfn ? MM_HOST_ACCESS_ZERO : mm_host_access(mm.kernel, pfn, false, 'user', off, n);
    if (ha !== 0) {
      const s = user_host_access_sig(ha, a);
      if (s !== null) return s;
      /* the shared zero page, or a page the platform reads as zeros */
      if (!zeroed) out.fill(0, done, done + n);
    } else {
      if (phys.readInto(pfn as Pfn, off, n, out, done, mm_host_access_key(mm.kernel, pfn)) !== 0) {
        /* a second machine check at the same place: the kernel gives up (mce_count) */
        const s = mce_vpn === vpn ? sig('SIGBUS', 'SI_KERNEL', 0n) : kill_me_maybe(mm, pfn as Pfn);
        if (s !== null) return s;
        /* recovered: the load is executed again */
        mce_vpn = vpn;
        continue;
      }
    }
    done += n;
  }
  return null;
}

/**
 * A user-mode store of `data` at `addr`: 0, or the signal the access raised (the pages before the
 * faulting one are written). With `one_insn` the store is one instruction (put_user()'s single
 * mov): every page it spans is faulted in before any byte lands, so a store that faults on its
 * second page writes nothing, though the fault on the first (a COW break) stays done.
 */
export function userStore(mm: MmStruct, uaddr: unknown, data: Uint8Array, one_insn = false): 0 | SigInfo {
  if (!(data instanceof Uint8Array)) return sig('SIGSEGV', 'SI_KERNEL', 0n);
  const addr = user_access_start(uaddr, data.length);
  if (typeof addr !== 'number') return addr;
  if (one_insn) {
    const s = store_pages(mm, addr, data, false);
    if (s !== 0) return s;
  }
  return store_pages(mm, addr, data, true);
}

/** userStore()'s walk: each page faulted in for write and checked, its bytes written when `write`. */
function store_pages(mm: MmStruct, addr: number, data: Uint8Array, write: boolean): 0 | SigInfo {
  const len = data.length;
  for (let done = 0; done < len;) {
    const a = addr + done;
    if (a >= NONCANONICAL_LOW_NR) return sig('SIGSEGV', 'SI_KERNEL', 0n);
    const vpn = Math.floor(a / PAGE_SIZE);
    const off = a - vpn * PAGE_SIZE;
    const n = Math.min(len - done, PAGE_SIZE - off);
    const pfn = fault_in(mm, vpn, off, true, a);
    if (typeof pfn !== 'number') return pfn;
    const s = user_host_access_sig(mm_host_access(mm.kernel, pfn, true, 'user', off, n), a);
    if (s !== null) return s;
    if (write) mm.kernel.phys.write(pfn as Pfn, off, data.subarray(done, done + n), mm_host_access_key(mm.kernel, pfn));
    done += n;
  }
  return 0;
}
