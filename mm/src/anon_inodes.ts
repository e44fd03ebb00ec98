/**
 * Anonymous inodes (fs/anon_inodes.c): the files of kernel objects with no file system of their
 * own (a KVM VM, a vCPU), all sharing one inode per host, as anon_inode_inode is shared.
 */
import { Errno } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import { FMODE_LSEEK, File, Inode, O_ACCMODE, O_NONBLOCK, SB_I_NODEV, SB_I_NOEXEC, S_ANON_INODE, S_IFMT, type FileOperations, type InodeOperations, type Kstat } from './fs.js';
import { file_fmode } from './file_table.js';
import { generic_fillattr } from './stat.js';

/*
 * alloc_anon_inode() (fs/libfs.c): "Historically anonymous inodes don't have a type at all and
 * userspace has come to rely on this": owner read-write, no S_IFMT bits. So ftruncate() of a VM
 * or vCPU fd is do_ftruncate()'s -EINVAL and fallocate() vfs_fallocate()'s -ENODEV (Linux
 * 6.18.44); a guest_memfd inode adds S_IFREG itself.
 */
const ANON_INODE_MODE = 0o600;

/** anon_inode_setattr(): no attribute of the shared inode changes: fchmod() is -EOPNOTSUPP. */
function anon_inode_setattr(): number {
  return -Errno.EOPNOTSUPP;
}

/** anon_inode_getattr(): user space expects no file type in an anonymous inode's st_mode (lsof). */
function anon_inode_getattr(inode: Inode, stat: Kstat): number {
  generic_fillattr(inode, stat);
  stat.mode &= ~S_IFMT;
  return 0;
}

const anon_inode_operations: InodeOperations = { getattr: anon_inode_getattr, setattr: anon_inode_setattr };

const anon_inode_inode = new WeakMap<Kernel, Inode>();

function anon_inode(kernel: Kernel): Inode {
  let inode = anon_inode_inode.get(kernel);
  if (inode === undefined) {
    inode = new Inode(kernel.get_next_ino(), ANON_INODE_MODE, anon_inode_operations, {}, kernel.next_mapping_id());
    // anon_inodefs_init_fs_context() (6.15+, "anon_inode: raise SB_I_NODEV and SB_I_NOEXEC"):
    // mapping a VM or vCPU file with PROT_EXEC is EPERM.
    inode.i_sb_iflags = SB_I_NOEXEC | SB_I_NODEV;
    /* alloc_anon_inode(): S_PRIVATE | S_ANON_INODE */
    inode.i_flags |= S_ANON_INODE;
    anon_inode_inode.set(kernel, inode);
  }
  return inode;
}

/**
 * anon_inode_getfile(): a new file on the shared inode with `fops` and `priv` as private_data.
 * The kernel's `name` argument only names the file in /proc/self/fd, which cocosim lacks. Of
 * `flags` the file keeps O_ACCMODE and O_NONBLOCK (__anon_inode_getfile()): O_CLOEXEC is the
 * fd's (anon_inode_getfd()), so F_GETFL of a VM or vCPU fd is O_RDWR (Linux 6.18.44).
 */
export function anon_inode_getfile(kernel: Kernel, fops: FileOperations, priv: unknown, flags: number): File {
  const f_flags = flags & (O_ACCMODE | O_NONBLOCK);
  // alloc_file_pseudo() -> file_init_path(): FMODE_CAN_READ/WRITE only with read/write methods,
  // FMODE_LSEEK for the llseek every anon file's fops has (KVM's noop_llseek), and never
  // FMODE_PREAD/FMODE_PWRITE (pread/pwrite on a VM fd are -ESPIPE).
  const file = new File(anon_inode(kernel), fops, f_flags, file_fmode(f_flags, fops) | FMODE_LSEEK);
  file.private_data = priv;
  return file;
}
