/**
 * /dev/null and /dev/zero (drivers/char/mem.c): the stdio of a simulated process, so that its
 * first file is fd 3 as in any real process, and a source of zeros and anonymous memory.
 */
import type { DeviceOpen, Kernel } from './kernel.js';
import { File, Inode, S_IFCHR, open_fmode, type FileOperations } from './fs.js';
import { VM_SHARED, vma_set_anonymous, type VmAreaStruct } from './mm_types.js';
import { shmem_zero_setup } from './mmap.js';

/** null_lseek(): the position of /dev/null and /dev/zero is always 0. */
function null_lseek(file: File): bigint {
  file.f_pos = 0n;
  return 0n;
}

/** null_fops: reads see end of file, writes succeed and vanish. */
const null_fops: FileOperations = {
  read: () => 0,
  write: (_file, buf) => buf.length,
  llseek: null_lseek,
};

/**
 * mmap_zero(): a shared mapping of /dev/zero is shared anonymous memory (an unlinked shmem file
 * replaces the VMA's file, as shmem_zero_setup() does); a private one is plain anonymous memory.
 */
function mmap_zero(file: File, v: unknown): number {
  const vma = v as VmAreaStruct;
  if (!(vma.vm_flags & VM_SHARED)) {
    vma_set_anonymous(vma);
    return 0;
  }
  const error = shmem_zero_setup(vma);
  if (error) {
    if (vma.vm_file !== null && vma.vm_file !== file) vma.vm_file.fput();
    vma.vm_file = file;
    return error;
  }
  file.fput();
  return 0;
}

/** zero_fops: reads fill the buffer with zeros, writes vanish. */
const zero_fops: FileOperations = {
  read: (_file, buf) => {
    buf.fill(0);
    return buf.length;
  },
  write: (_file, buf) => buf.length,
  llseek: null_lseek,
  mmap: mmap_zero,
};

/**
 * A character device node: one inode for every open of it, as the device node in /dev is one
 * inode (two opens share its record locks), made on the first open.
 */
function char_device(fops: FileOperations): DeviceOpen {
  const nodes = new WeakMap<Kernel, Inode>();
  return (kernel: Kernel, flags: number) => {
    let inode = nodes.get(kernel);
    if (inode === undefined) {
      inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o666, {}, fops, kernel.next_mapping_id());
      nodes.set(kernel, inode);
    }
    return new File(inode, fops, flags, open_fmode(flags));
  };
}

/** chr_dev_init() for the nodes cocosim has. */
export function chr_dev_init(kernel: Kernel): void {
  kernel.register_device('/dev/null', char_device(null_fops));
  kernel.register_device('/dev/zero', char_device(zero_fops));
}
