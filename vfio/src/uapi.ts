/**
 * The VFIO and iommufd user API of Linux 6.18: include/uapi/linux/vfio.h and
 * include/uapi/linux/iommufd.h, the values a C program passes. Structs arrive as plain objects
 * with these field names (cocosim's ioctl convention); their C sizes are here because the
 * kernel checks `argsz` / `size` against them.
 *
 * Both headers use the ioctl type ';' with plain _IO() numbers (no direction or size bits): VFIO
 * from VFIO_BASE (100), iommufd from IOMMUFD_CMD_BASE (0x80). test/vfio/c/vfio_uapi.c prints
 * the VFIO numbers from this machine's header.
 */

/** _IO(type, nr) (include/uapi/asm-generic/ioctl.h): no direction, no size. */
function _IO(type: number, nr: number): number {
  return (type << 8) | nr;
}

/* ---- include/uapi/linux/vfio.h ---- */

export const VFIO_API_VERSION = 0;

/* Extensions (VFIO_CHECK_EXTENSION) and IOMMU types (VFIO_SET_IOMMU) */
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
/** The IOMMU enforces DMA cache coherence (ex. PCIe NoSnoop stripping). */
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
/** Formerly VFIO_TYPE1_NESTING_IOMMU: opens a v2 IOMMU but is no longer reported. */
export const __VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
/** VFIO_DMA_UNMAP_FLAG_ALL is supported. */
export const VFIO_UNMAP_ALL = 9;
/** VFIO_DMA_MAP_FLAG_VADDR and VFIO_DMA_UNMAP_FLAG_VADDR are supported. */
export const VFIO_UPDATE_VADDR = 10;

export const VFIO_TYPE = 0x3b; /* ';' */
export const VFIO_BASE = 100;

export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16);
export const VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20);

/* struct vfio_group_status: argsz u32, flags u32 */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

/* struct vfio_iommu_type1_info: argsz u32, flags u32, iova_pgsizes u64, cap_offset u32, pad u32 */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;
/** sizeof(struct vfio_iommu_type1_info). */
export const VFIO_IOMMU_TYPE1_INFO_SIZE = 24;

/* struct vfio_iommu_type1_dma_map: argsz u32, flags u32, vaddr u64, iova u64, size u64 */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
/** offsetofend(struct vfio_iommu_type1_dma_map, size). */
export const VFIO_DMA_MAP_MINSZ = 32;

/* struct vfio_iommu_type1_dma_unmap: argsz u32, flags u32, iova u64, size u64, data[] */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
/** offsetofend(struct vfio_iommu_type1_dma_unmap, size). */
export const VFIO_DMA_UNMAP_MINSZ = 24;

/* struct vfio_device_bind_iommufd: argsz u32, flags u32, iommufd s32, out_devid u32, token_uuid_ptr u64 */
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;
/** offsetofend(struct vfio_device_bind_iommufd, out_devid). */
export const VFIO_DEVICE_BIND_IOMMUFD_MINSZ = 16;
/* struct vfio_device_attach_iommufd_pt: argsz u32, flags u32, pt_id u32, pasid u32 */
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
/** offsetofend(struct vfio_device_attach_iommufd_pt, pt_id). */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT_MINSZ = 12;
/* struct vfio_device_detach_iommufd_pt: argsz u32, flags u32, pasid u32 */
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;
/** offsetofend(struct vfio_device_detach_iommufd_pt, flags). */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT_MINSZ = 8;

/* ---- include/uapi/linux/iommufd.h ---- */

export const IOMMUFD_TYPE = 0x3b; /* ';' */
export const IOMMUFD_CMD_BASE = 0x80;
export const IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE;
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
export const IOMMUFD_CMD_OPTION = 0x87;
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;
export const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
export const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;
export const IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d;
export const IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e;
export const IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f;
export const IOMMUFD_CMD_VIOMMU_ALLOC = 0x90;
export const IOMMUFD_CMD_VDEVICE_ALLOC = 0x91;
export const IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92;
export const IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93;
export const IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94;

export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
export const IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
export const IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);
export const IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);
export const IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);
export const IOMMU_IOAS_MAP_FILE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE);

/* enum iommufd_ioas_map_flags */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

/* enum iommufd_option, enum iommufd_option_ops */
export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

/* sizeof() of the iommufd command structs */
/** struct iommu_destroy: size u32, id u32. */
export const IOMMU_DESTROY_SIZE = 8;
/** struct iommu_ioas_alloc: size u32, flags u32, out_ioas_id u32. */
export const IOMMU_IOAS_ALLOC_SIZE = 12;
/** struct iommu_ioas_allow_iovas: size, ioas_id, num_iovas, __reserved (u32), allowed_iovas u64. */
export const IOMMU_IOAS_ALLOW_IOVAS_SIZE = 24;
/** struct iommu_ioas_copy: size, flags, dst_ioas_id, src_ioas_id (u32), length, dst_iova, src_iova (u64). */
export const IOMMU_IOAS_COPY_SIZE = 40;
/** struct iommu_ioas_iova_ranges: size, ioas_id, num_iovas, __reserved (u32), allowed_iovas, out_iova_alignment (u64). */
export const IOMMU_IOAS_IOVA_RANGES_SIZE = 32;
/** struct iommu_ioas_map: size, flags, ioas_id, __reserved (u32), user_va, length, iova (u64). */
export const IOMMU_IOAS_MAP_SIZE = 40;
/** struct iommu_ioas_unmap: size, ioas_id (u32), iova, length (u64). */
export const IOMMU_IOAS_UNMAP_SIZE = 24;
/** struct iommu_option: size, option_id (u32), op, __reserved (u16), object_id u32, val64 u64. */
export const IOMMU_OPTION_SIZE = 24;
/** struct iommu_ioas_map_file: size, flags, ioas_id (u32), fd s32, start, length, iova (u64). */
export const IOMMU_IOAS_MAP_FILE_SIZE = 40;
