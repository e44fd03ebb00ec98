/**
 * fork(): the memory and file parts of kernel/fork.c copy_process() (Linux 6.18): copy_mm() ->
 * dup_mm() -> dup_mmap() (mm/mmap.c), and copy_files() -> dup_fd() (fs/file.c).
 *
 * dup_mm(): the child's mm_struct starts as a copy of the parent's with mm_init()'s resets:
 * no VMAs yet, locked_vm and pinned_vm 0 (mlock and long-term pins are not inherited), rss 0,
 * def_flags only VM_NOHUGEPAGE (VM_INIT_DEF_MASK: mlockall(MCL_FUTURE) is not inherited), the
 * MMF_INIT_MASK bits of the flags (MMF_TOPDOWN here), no mmu notifier.
 *
 * dup_mmap(): total_vm, data_vm, exec_vm and stack_vm are copied, then every VMA:
 *   - VM_DONTCOPY (MADV_DONTFORK, VM_IO...): not copied, its pages taken off the counters;
 *   - VM_ACCOUNT: committed again for the child (security_vm_enough_memory_mm(), -ENOMEM);
 *   - a copy (vm_area_dup()) linked to the parent's anon_vmas and given its own
 *     (anon_vma_fork()), or with no anon_vma for VM_WIPEONFORK (the child gets zero pages);
 *   - VM_LOCKED and VM_LOCKONFAULT cleared;
 *   - linked into the tree and the file's i_mmap (a file reference more), ->open called;
 *   - its page tables copied by copy_page_range() (memory.ts), except for VM_WIPEONFORK.
 * The parent's TLB is flushed at the end (flush_tlb_mm(oldmm)): COW write-protected its entries.
 * A failure tears the partial child down (mmput() -> exit_mmap()) and fork returns the error.
 *
 * dup_fd(): the child's table has every fd of the parent's, referring to the same struct file
 * (get_file()), close-on-exec bits included; RLIMIT_NOFILE is inherited.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import type { FilesStruct } from './fdtable.js';
import { copy_page_range } from './memory.js';
import { exit_mmap } from './mmap.js';
import { arch_dup_pkeys } from './pkeys.js';
import {
  MMF_TOPDOWN,
  MmStruct,
  TASK_SIZE,
  VM_ACCOUNT,
  VM_DONTCOPY,
  VM_LOCKED_MASK,
  VM_NOHUGEPAGE,
  VM_WIPEONFORK,
  VmAreaStruct,
  task_mm_if_any,
  task_set_mm,
  vm_flags_andnot,
  vma_pages,
} from './mm_types.js';
import { Task } from './process.js';
import { anon_vma_fork } from './rmap.js';
import { flush_tlb_mm_range } from './tlb.js';
import { __vm_enough_memory } from './util.js';
import { vm_stat_account, vma_link } from './vma.js';

/** MMF_INIT_MASK: the mm flags a child inherits (mmf_init_flags()); the simulator has MMF_TOPDOWN. */
const MMF_INIT_MASK = MMF_TOPDOWN;
/** VM_INIT_DEF_MASK: the def_flags a child inherits. */
const VM_INIT_DEF_MASK = VM_NOHUGEPAGE;

/** vm_area_dup(): a copy of the parent's VMA for the child's mm, not yet linked anywhere. */
function vm_area_dup(mm: MmStruct, orig: VmAreaStruct): VmAreaStruct {
  const vma = new VmAreaStruct(mm, orig.start_vpn, orig.end_vpn, orig.vm_flags, orig.vm_pgoff);
  vma.vm_page_prot = orig.vm_page_prot;
  vma.vm_file = orig.vm_file;
  vma.vm_ops = orig.vm_ops;
  vma.vm_private_data = orig.vm_private_data;
  vma.anon_name = orig.anon_name;
  return vma;
}

/**
 * dup_mmap() (mm/mmap.c): copy the VMAs of `oldmm` and their page tables into the new `mm`.
 * 0, or -errno (-ENOMEM from the commit charge, a page allocation or a swap count; -EHWPOISON
 * when a pinned page that must be copied is poisoned) with `mm` left as far as it got.
 */
export function dup_mmap(mm: MmStruct, oldmm: MmStruct): number {
  const kernel = oldmm.kernel;
  /* arch_dup_mmap() */
  arch_dup_pkeys(oldmm, mm);
  mm.total_vm = oldmm.total_vm;
  mm.data_vm = oldmm.data_vm;
  mm.exec_vm = oldmm.exec_vm;
  mm.stack_vm = oldmm.stack_vm;
  let retval = 0;
  for (const r of [...oldmm.mm_mt]) {
    const mpnt = r.entry;
    if (mpnt.vm_flags & VM_DONTCOPY) {
      vm_stat_account(mm, mpnt.vm_flags, -vma_pages(mpnt));
      continue;
    }
    /* the child's copy is committed again; once linked, exit_mmap() gives the charge back */
    if (mpnt.vm_flags & VM_ACCOUNT && __vm_enough_memory(kernel, oldmm, vma_pages(mpnt))) {
      retval = -Errno.ENOMEM;
      break;
    }
    const tmp = vm_area_dup(mm, mpnt);
    /* VM_WIPEONFORK gets a clean slate in the child: no anon_vma until a fault needs one */
    if (!(tmp.vm_flags & VM_WIPEONFORK)) anon_vma_fork(tmp, mpnt);
    tmp.vm_flags = vm_flags_andnot(tmp.vm_flags, VM_LOCKED_MASK);
    if (tmp.vm_file !== null) tmp.vm_file.get_file();
    vma_link(mm, tmp);
    tmp.vm_ops?.open?.(tmp);
    if (!(tmp.vm_flags & VM_WIPEONFORK)) retval = copy_page_range(tmp, mpnt);
    if (retval) break;
  }
  flush_tlb_mm_range(oldmm, 0, Number(TASK_SIZE / BigInt(PAGE_SIZE)));
  return retval;
}

/**
 * dup_mm() (kernel/fork.c): a new mm_struct for the child, a copy of `oldmm` (mm_init()'s
 * resets, then dup_mmap()). The new mm, or -errno after tearing the partial copy down.
 */
export function dup_mm(oldmm: MmStruct): MmStruct | number {
  const mm = new MmStruct(oldmm.kernel);
  mm.mmap_base = oldmm.mmap_base;
  mm.task_size = oldmm.task_size;
  mm.flags = oldmm.flags & MMF_INIT_MASK;
  mm.def_flags = oldmm.def_flags & VM_INIT_DEF_MASK;
  const err = dup_mmap(mm, oldmm);
  if (err) {
    /* mmput() -> exit_mmap(): the partial copy goes, with what it took */
    exit_mmap(mm);
    return err;
  }
  return mm;
}

/**
 * dup_fd() (fs/file.c): fill the child's empty table `newf` with the parent's open files, each
 * one more reference, at the same fds with the same close-on-exec bits.
 */
export function dup_fd(oldf: FilesStruct, newf: FilesStruct): void {
  newf.rlimit_nofile = oldf.rlimit_nofile;
  for (const fd of oldf.open_fds()) {
    const file = oldf.lookup_raw(fd)!;
    newf.fd_install(fd, file.get_file(), oldf.get_close_on_exec(fd));
  }
}

/**
 * copy_process() for fork(2), the parts the simulator models: the child's mm (copy_mm() ->
 * dup_mm(), when the parent has one), then a new task with a pid (alloc_pid()) that inherits
 * comm, the PF_* flags, RLIMIT_MEMLOCK and CAP_IPC_LOCK but no pending signal
 * (init_sigpending()), and a copy of the file table (copy_files() -> dup_fd()). A failed
 * copy_mm() leaves no task behind and no pid taken. The child task, or -errno.
 */
export function copy_process(parent: Task): Task | number {
  const oldmm = task_mm_if_any(parent);
  let mm: MmStruct | undefined;
  if (oldmm !== undefined) {
    const r = dup_mm(oldmm);
    if (typeof r === 'number') return r;
    mm = r;
  }
  const p = new Task(parent.kernel);
  p.comm = parent.comm;
  p.flags = parent.flags;
  p.rlimit_memlock = parent.rlimit_memlock;
  p.cap_ipc_lock = parent.cap_ipc_lock;
  dup_fd(parent.files, p.files);
  if (mm !== undefined) task_set_mm(p, mm);
  return p;
}
