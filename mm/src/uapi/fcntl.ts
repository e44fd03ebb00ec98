/**
 * fcntl(2) commands and file seals: include/uapi/asm-generic/fcntl.h and include/uapi/linux/fcntl.h
 * (x86-64 and arm64 values). The O_* open flags are in fs.ts.
 */

/* include/uapi/asm-generic/fcntl.h */
export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
/** The close-on-exec bit of F_GETFD / F_SETFD. */
export const FD_CLOEXEC = 1;

/* include/uapi/linux/fcntl.h */
export const F_LINUX_SPECIFIC_BASE = 1024;
export const F_DUPFD_CLOEXEC = F_LINUX_SPECIFIC_BASE + 6;
/** Add seals to a memfd (1033). */
export const F_ADD_SEALS = F_LINUX_SPECIFIC_BASE + 9;
/** Read a memfd's seals (1034). */
export const F_GET_SEALS = F_LINUX_SPECIFIC_BASE + 10;

/** Prevent further seals from being set. */
export const F_SEAL_SEAL = 0x0001;
/** Prevent the file from shrinking. */
export const F_SEAL_SHRINK = 0x0002;
/** Prevent the file from growing. */
export const F_SEAL_GROW = 0x0004;
/** Prevent writes. */
export const F_SEAL_WRITE = 0x0008;
/** Prevent future writes while mapped (existing writable mappings keep working). */
export const F_SEAL_FUTURE_WRITE = 0x0010;
/** Prevent chmod from changing the execute bits. */
export const F_SEAL_EXEC = 0x0020;
