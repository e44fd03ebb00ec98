/**
 * memfd_create(2) flags: include/uapi/linux/memfd.h (and the MFD_HUGE_* sizes it takes from
 * include/uapi/asm-generic/hugetlb_encode.h).
 */

export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
/** Not executable, and F_SEAL_EXEC set (implies sealing is allowed). */
export const MFD_NOEXEC_SEAL = 0x0008;
/** Executable. */
export const MFD_EXEC = 0x0010;

/* With MFD_HUGETLB, bits 26..31 give log2 of the huge page size (0: the default size). */
export const MFD_HUGE_SHIFT = 26;
export const MFD_HUGE_MASK = 0x3f;
export const MFD_HUGE_64KB = 16 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_512KB = 19 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_1MB = 20 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_2MB = 21 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_8MB = 23 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_16MB = 24 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_32MB = 25 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_256MB = 28 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_512MB = 29 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_1GB = 30 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_2GB = 31 * 2 ** MFD_HUGE_SHIFT;
export const MFD_HUGE_16GB = 34 * 2 ** MFD_HUGE_SHIFT;
