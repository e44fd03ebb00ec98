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
export const F_GETLK = 5;
export const F_SETLK = 6;
export const F_SETLKW = 7;
export const F_SETOWN = 8;
export const F_GETOWN = 9;
export const F_SETSIG = 10;
export const F_GETSIG = 11;
export const F_SETOWN_EX = 15;
export const F_GETOWN_EX = 16;
export const F_GETOWNER_UIDS = 17;
export const F_OFD_GETLK = 36;
export const F_OFD_SETLK = 37;
export const F_OFD_SETLKW = 38;
/** Lock types (struct flock l_type, and leases). */
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
/** struct f_owner_ex type. */
export const F_OWNER_TID = 0;
export const F_OWNER_PID = 1;
export const F_OWNER_PGRP = 2;
/** The close-on-exec bit of F_GETFD / F_SETFD. */
export const FD_CLOEXEC = 1;

/* include/uapi/linux/fcntl.h */
export const F_LINUX_SPECIFIC_BASE = 1024;
export const F_SETLEASE = F_LINUX_SPECIFIC_BASE + 0;
export const F_GETLEASE = F_LINUX_SPECIFIC_BASE + 1;
export const F_NOTIFY = F_LINUX_SPECIFIC_BASE + 2;
/** Whether the argument fd refers to the same open file (Linux 6.10). */
export const F_DUPFD_QUERY = F_LINUX_SPECIFIC_BASE + 3;
/** Whether the file was created by the open that made it (Linux 6.12). */
export const F_CREATED_QUERY = F_LINUX_SPECIFIC_BASE + 4;
export const F_DUPFD_CLOEXEC = F_LINUX_SPECIFIC_BASE + 6;
export const F_SETPIPE_SZ = F_LINUX_SPECIFIC_BASE + 7;
export const F_GETPIPE_SZ = F_LINUX_SPECIFIC_BASE + 8;
export const F_GET_RW_HINT = F_LINUX_SPECIFIC_BASE + 11;
export const F_SET_RW_HINT = F_LINUX_SPECIFIC_BASE + 12;
export const F_GET_FILE_RW_HINT = F_LINUX_SPECIFIC_BASE + 13;
export const F_SET_FILE_RW_HINT = F_LINUX_SPECIFIC_BASE + 14;
/** dnotify: keep the notification after the first event. */
export const DN_MULTISHOT = 0x80000000;
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
