/** include/uapi/linux/fs.h: lseek whence values. */
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const SEEK_MAX = SEEK_HOLE;

/* include/uapi/linux/fs.h: the generic file ioctls of do_vfs_ioctl() (fs/ioctl.c) */
export const FIBMAP = 0x1; /* _IO(0x00, 1) */
export const FIGETBSZ = 0x2; /* _IO(0x00, 2) */
export const FIFREEZE = 0xc0045877; /* _IOWR('X', 119, int) */
export const FITHAW = 0xc0045878; /* _IOWR('X', 120, int) */
export const FICLONE = 0x40049409; /* _IOW(0x94, 9, int) */
export const FICLONERANGE = 0x4020940d; /* _IOW(0x94, 13, struct file_clone_range) */
export const FIDEDUPERANGE = 0xc0189436; /* _IOWR(0x94, 54, struct file_dedupe_range) */
export const FS_IOC_GETFLAGS = 0x80086601; /* _IOR('f', 1, long) */
export const FS_IOC_SETFLAGS = 0x40086602; /* _IOW('f', 2, long) */
export const FS_IOC_FIEMAP = 0xc020660b; /* _IOWR('f', 11, struct fiemap) */
export const FS_IOC_FSGETXATTR = 0x801c581f; /* _IOR('X', 31, struct fsxattr) */
export const FS_IOC_FSSETXATTR = 0x401c5820; /* _IOW('X', 32, struct fsxattr) */
export const FS_IOC_RESVSP = 0x40305828; /* _IOW('X', 40, struct space_resv) */
export const FS_IOC_UNRESVSP = 0x40305829; /* _IOW('X', 41, struct space_resv) */
export const FS_IOC_RESVSP64 = 0x4030582a; /* _IOW('X', 42, struct space_resv) */
export const FS_IOC_UNRESVSP64 = 0x4030582b; /* _IOW('X', 43, struct space_resv) */
export const FS_IOC_ZERO_RANGE = 0x40305839; /* _IOW('X', 57, struct space_resv) */
export const FS_IOC_GETFSUUID = 0x80111500; /* _IOR(0x15, 0, struct fsuuid2) */
export const FS_IOC_GETFSSYSFSPATH = 0x80811501; /* _IOR(0x15, 1, struct fs_sysfs_path) */

/* Inode flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) */
export const FS_SYNC_FL = 0x00000008;
export const FS_IMMUTABLE_FL = 0x00000010;
export const FS_APPEND_FL = 0x00000020;
export const FS_NODUMP_FL = 0x00000040;
export const FS_NOATIME_FL = 0x00000080;
export const FS_CASEFOLD_FL = 0x40000000;
export const FS_DAX_FL = 0x02000000;
export const FS_PROJINHERIT_FL = 0x20000000;

/* struct fsxattr's fsx_xflags (FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR) */
export const FS_XFLAG_IMMUTABLE = 0x00000008;
export const FS_XFLAG_APPEND = 0x00000010;
export const FS_XFLAG_SYNC = 0x00000020;
export const FS_XFLAG_NOATIME = 0x00000040;
export const FS_XFLAG_NODUMP = 0x00000080;
export const FS_XFLAG_PROJINHERIT = 0x00000200;
export const FS_XFLAG_DAX = 0x00008000;
