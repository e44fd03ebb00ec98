/**
 * /dev/mktme: Andy Lutomirski's alternative to encrypt_mprotect() (Re: [PATCH, RFC 45/62] mm: Add
 * the encrypt_mprotect() system call for MKTME, 17 Jun 2019,
 * CALCETrUPSv4Xae3iO+2i_HecJLfx4mqFfmtfp+cwBdab8JUZrg@mail.gmail.com): "I much prefer the idea of
 * making this style of MKTME a driver or some other non-intrusive interface"; "you open
 * /dev/mktme and you get your own key … If you want some other program to be able to see your
 * memory, you pass it the fd"; and, since "something has to prevent user code from mapping the
 * same page with two different key ids", the fd needs "ioctl(fd, ENCRYPT_ME)" before mmap(fd).
 * No patch was posted, so the shape is cocosim's reading of the mail:
 *
 *  - open(): a file with no key yet; ioctl(MKTME_IOC_ENCRYPT_ME): a KeyID with a CPU-generated key
 *    (-EBUSY the second time, the key service's -ENOKEY when none is free); other ioctls -ENOTTY;
 *  - mmap(MAP_SHARED): the fd's memory (one unlinked shmem object per fd, so that every mapping
 *    of the fd, in any process, is the same memory through the same KeyID); before ENCRYPT_ME, or
 *    MAP_PRIVATE, -EINVAL;
 *  - release: the KeyID is freed once the last page using it is.
 * The pages are ordinary memory otherwise (GUP, swap-less shmem): Andy's no-GUP PFNMAP was
 * /dev/xpfo, a different proposal.
 */
import { Errno, IS_ERR } from '@cocosim/core';
import {
  File, Inode, S_IFCHR, VM_NORESERVE, VM_SHARED, open_fmode, shmem_file_setup, shmem_mmap, type FileOperations, type Kernel,
  type VmAreaStruct,
} from '@cocosim/mm';
import { mktme_get_anonymous_keyid, mktme_put_anonymous_keyid } from './mktme_keys.js';
import { MktmeVmaKeyid } from './mprotect.js';
import { MKTME_IOC_ENCRYPT_ME } from './uapi.js';

/** The size of an fd's memory object: the largest offset a mapping of it can reach. */
const MKTME_OBJECT_SIZE = 1n << 46n;

/** What a /dev/mktme file holds. */
class MktmeDevFile {
  keyid = 0;
  backing: File | null = null;
  constructor(readonly kernel: Kernel) {}
}

function dev(file: File): MktmeDevFile {
  return file.private_data as MktmeDevFile;
}

/** mktme_ioctl(): MKTME_IOC_ENCRYPT_ME gives the fd its KeyID. */
function mktme_ioctl(file: File, cmd: number): number {
  if (cmd !== MKTME_IOC_ENCRYPT_ME) return -Errno.ENOTTY;
  const d = dev(file);
  if (d.keyid) return -Errno.EBUSY;
  const keyid = mktme_get_anonymous_keyid(d.kernel);
  if (keyid < 0) return keyid;
  d.keyid = keyid;
  return 0;
}

/** mktme_mmap(): the fd's memory object through its KeyID. */
function mktme_mmap(file: File, v: unknown): number {
  const vma = v as VmAreaStruct;
  const d = dev(file);
  if (!d.keyid || !(vma.vm_flags & VM_SHARED)) return -Errno.EINVAL;
  if (d.backing === null) {
    const f = shmem_file_setup(d.kernel, 'mktme', MKTME_OBJECT_SIZE, VM_NORESERVE);
    if (IS_ERR(f)) return f.errno;
    d.backing = f;
  }
  const error = shmem_mmap(d.backing, vma);
  if (error) return error;
  vma.vm_file = d.backing.get_file();
  file.fput();
  vma.vm_private_data = new MktmeVmaKeyid(d.keyid);
  return 0;
}

/** mktme_release(): the memory object goes with its last mapping, the KeyID with its last page. */
function mktme_release(_inode: Inode, file: File): void {
  const d = dev(file);
  d.backing?.fput();
  d.backing = null;
  if (d.keyid) mktme_put_anonymous_keyid(d.kernel, d.keyid);
}

export const mktme_dev_fops: FileOperations = {
  unlocked_ioctl: (file, cmd) => mktme_ioctl(file, cmd),
  mmap: mktme_mmap,
  release: mktme_release,
};

/** open("/dev/mktme"). */
export function mktme_dev_open(kernel: Kernel, flags: number): File {
  const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o600, {}, mktme_dev_fops, kernel.next_mapping_id());
  const file = new File(inode, mktme_dev_fops, flags, open_fmode(flags));
  file.private_data = new MktmeDevFile(kernel);
  return file;
}
