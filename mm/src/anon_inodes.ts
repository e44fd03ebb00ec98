/**
 * Anonymous inodes (fs/anon_inodes.c): the files of kernel objects with no file system of their
 * own (a KVM VM, a vCPU), all sharing one inode per host, as anon_inode_inode is shared.
 */
import type { Kernel } from './kernel.js';
import { File, Inode, SB_I_NODEV, SB_I_NOEXEC, S_IFREG, open_fmode, type FileOperations } from './fs.js';

/* Since 6.15 the shared inode is a regular file, owner read-write (anon_inode_init). */
const ANON_INODE_MODE = S_IFREG | 0o600;

const anon_inode_inode = new WeakMap<Kernel, Inode>();

function anon_inode(kernel: Kernel): Inode {
  let inode = anon_inode_inode.get(kernel);
  if (inode === undefined) {
    inode = new Inode(kernel.get_next_ino(), ANON_INODE_MODE, {}, {}, kernel.next_mapping_id());
    // anon_inodefs_init_fs_context() (6.15+, "anon_inode: raise SB_I_NODEV and SB_I_NOEXEC"):
    // mapping a VM or vCPU file with PROT_EXEC is EPERM.
    inode.i_sb_iflags = SB_I_NOEXEC | SB_I_NODEV;
    anon_inode_inode.set(kernel, inode);
  }
  return inode;
}

/**
 * anon_inode_getfile(): a new file on the shared inode with `fops` and `priv` as private_data.
 * The kernel's `name` argument only names the file in /proc/self/fd, which cocosim lacks.
 */
export function anon_inode_getfile(kernel: Kernel, fops: FileOperations, priv: unknown, flags: number): File {
  const file = new File(anon_inode(kernel), fops, flags, open_fmode(flags));
  file.private_data = priv;
  return file;
}
