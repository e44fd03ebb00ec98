/**
 * /dev/null and /dev/zero (drivers/char/mem.c): the stdio of a simulated process, so that its
 * first file is fd 3 as in any real process, and a source of zeros.
 */
import type { DeviceOpen, Kernel } from './kernel.js';
import { File, Inode, S_IFCHR, open_fmode, type FileOperations } from './fs.js';

/** null_fops: reads see end of file, writes succeed and vanish. */
const null_fops: FileOperations = {
  read: () => 0,
  write: (_file, buf) => buf.length,
};

/** zero_fops: reads fill the buffer with zeros, writes vanish. */
const zero_fops: FileOperations = {
  read: (_file, buf) => {
    buf.fill(0);
    return buf.length;
  },
  write: (_file, buf) => buf.length,
};

function char_device(fops: FileOperations): DeviceOpen {
  return (kernel: Kernel, flags: number) => {
    const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o666, {}, fops, kernel.next_mapping_id());
    return new File(inode, fops, flags, open_fmode(flags));
  };
}

/** chr_dev_init() for the nodes cocosim has. */
export function chr_dev_init(kernel: Kernel): void {
  kernel.register_device('/dev/null', char_device(null_fops));
  kernel.register_device('/dev/zero', char_device(zero_fops));
}
