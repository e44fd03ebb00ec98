/**
 * The uAPI of D12 (designs.md D12), with the values of the RFC that posted them:
 *  - encrypt_mprotect(2): "[PATCH, RFC 43/62] syscall/x86: Wire up a system call for MKTME
 *    encryption keys" (8 May 2019, 20190508144422.13171-44-kirill.shutemov@linux.intel.com)
 *    numbered it 428 after io_uring_register (the Dec 2018 RFC had 335, the later rebases 436;
 *    designs.md's "434 in the demo" is none of these). cocosim has no syscall table: the number is
 *    recorded, and encrypt_mprotect() (syscall.ts) is the C library's syscall(2) of it;
 *  - the "mktme" key type of the kernel key service (add_key(2), keyctl(2)), whose payload
 *    options are Documentation/x86/mktme/mktme_keys.rst of the RFC;
 *  - /dev/mktme, Andy Lutomirski's alternative (Re: [PATCH, RFC 45/62], 17 Jun 2019,
 *    CALCETrUPSv4Xae3iO+2i_HecJLfx4mqFfmtfp+cwBdab8JUZrg@mail.gmail.com): "you open /dev/mktme
 *    and you get your own key", with an "ioctl(fd, ENCRYPT_ME)" before mmap(fd). No patch gave it
 *    numbers: MKTME_IOC_ENCRYPT_ME is cocosim's.
 * The PCONFIG constants are intel_pconfig.h's (also in vendors/mktme/src/pconfig.ts, which kvm
 * cannot import).
 */
export { KVM_X86_DEFAULT_VM, KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';

/** __NR_encrypt_mprotect of the 8 May 2019 RFC (x86_64 and i386 tables). */
export const __NR_encrypt_mprotect = 428;

/* keyctl(2) commands (include/uapi/linux/keyctl.h) */
export const KEYCTL_REVOKE = 3;
export const KEYCTL_INVALIDATE = 21;
/** KEY_SPEC_THREAD_KEYRING, the keyring the RFC's examples add MKTME keys to. */
export const KEY_SPEC_THREAD_KEYRING = -1;

/* mktme_key_program::keyid_ctrl (arch/x86/include/asm/intel_pconfig.h) */
export const MKTME_KEYID_SET_KEY_DIRECT = 0;
export const MKTME_KEYID_SET_KEY_RANDOM = 1;
export const MKTME_KEYID_CLEAR_KEY = 2;
export const MKTME_KEYID_NO_ENCRYPT = 3;
export const MKTME_AES_XTS_128 = 1 << 8;
/** MKTME_AES_XTS_SIZE: the data and tweak keys, 16 bytes each ("key=" and "tweak=" take 32 hex digits). */
export const MKTME_AES_XTS_SIZE = 16;

/** ioctl(fd, MKTME_IOC_ENCRYPT_ME) on /dev/mktme: the fd gets its own KeyID (cocosim: _IO('M', 1)). */
export const MKTME_IOC_ENCRYPT_ME = (0x4d << 8) | 1;
