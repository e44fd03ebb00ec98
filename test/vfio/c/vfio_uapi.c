/*
 * What this machine's kernel and headers say about VFIO and iommufd (Linux 6.18, oracle machine):
 * whether /dev/vfio/vfio and /dev/iommu exist, the kernel config behind that, and the VFIO ioctl
 * numbers and struct sizes from <linux/vfio.h> (the installed header is older than 6.18, so the
 * cdev and iommufd numbers are not in it; they follow from the same _IO(';', nr) rule).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <linux/vfio.h>

static void try_open(const char *path) {
  errno = 0;
  int fd = open(path, O_RDWR);
  if (fd < 0) printf("open %-22s -> -1 %s\n", path, strerrorname_np(errno));
  else { printf("open %-22s -> fd\n", path); close(fd); }
}

static void config(const char *want) {
  gzFile f = gzopen("/proc/config.gz", "r");
  char line[256];
  if (!f) { printf("no /proc/config.gz\n"); return; }
  while (gzgets(f, line, sizeof(line)))
    if (strstr(line, want)) printf("config: %s", line);
  gzclose(f);
}

int main(void) {
  try_open("/dev/vfio/vfio");
  try_open("/dev/iommu");
  config("CONFIG_VFIO ");
  config("CONFIG_VFIO=");
  config("CONFIG_IOMMUFD");
  config("CONFIG_IOMMU_SUPPORT");
  config("CONFIG_INTEL_IOMMU");
  config("CONFIG_AMD_IOMMU");
  printf("VFIO_API_VERSION %d\n", VFIO_API_VERSION);
  printf("VFIO_TYPE1_IOMMU %d VFIO_TYPE1v2_IOMMU %d VFIO_DMA_CC_IOMMU %d VFIO_UNMAP_ALL %d VFIO_UPDATE_VADDR %d\n",
         VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR);
  printf("VFIO_GET_API_VERSION 0x%lx\n", (unsigned long)VFIO_GET_API_VERSION);
  printf("VFIO_CHECK_EXTENSION 0x%lx\n", (unsigned long)VFIO_CHECK_EXTENSION);
  printf("VFIO_SET_IOMMU 0x%lx\n", (unsigned long)VFIO_SET_IOMMU);
  printf("VFIO_GROUP_GET_STATUS 0x%lx\n", (unsigned long)VFIO_GROUP_GET_STATUS);
  printf("VFIO_GROUP_SET_CONTAINER 0x%lx\n", (unsigned long)VFIO_GROUP_SET_CONTAINER);
  printf("VFIO_GROUP_UNSET_CONTAINER 0x%lx\n", (unsigned long)VFIO_GROUP_UNSET_CONTAINER);
  printf("VFIO_IOMMU_GET_INFO 0x%lx\n", (unsigned long)VFIO_IOMMU_GET_INFO);
  printf("VFIO_IOMMU_MAP_DMA 0x%lx\n", (unsigned long)VFIO_IOMMU_MAP_DMA);
  printf("VFIO_IOMMU_UNMAP_DMA 0x%lx\n", (unsigned long)VFIO_IOMMU_UNMAP_DMA);
  printf("VFIO_IOMMU_DIRTY_PAGES 0x%lx\n", (unsigned long)VFIO_IOMMU_DIRTY_PAGES);
  printf("VFIO_DMA_MAP_FLAG_READ %d WRITE %d VADDR %d\n", VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_MAP_FLAG_VADDR);
  printf("VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP %d ALL %d VADDR %d\n", VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR);
  printf("VFIO_GROUP_FLAGS_VIABLE %d CONTAINER_SET %d\n", VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_CONTAINER_SET);
  printf("VFIO_IOMMU_INFO_PGSIZES %d CAPS %d\n", VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_INFO_CAPS);
  printf("cap ids: IOVA_RANGE %d MIGRATION %d DMA_AVAIL %d\n", VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
  printf("sizeof(vfio_iommu_type1_info) %zu\n", sizeof(struct vfio_iommu_type1_info));
  printf("offsetofend(vfio_iommu_type1_dma_map, size) %zu\n", offsetof(struct vfio_iommu_type1_dma_map, size) + 8);
  printf("offsetofend(vfio_iommu_type1_dma_unmap, size) %zu\n", offsetof(struct vfio_iommu_type1_dma_unmap, size) + 8);
  printf("sizeof(vfio_bitmap) %zu\n", sizeof(struct vfio_bitmap));
  printf("sizeof(vfio_group_status) %zu\n", sizeof(struct vfio_group_status));
  printf("sizeof(vfio_iommu_type1_info_cap_migration) %zu\n", sizeof(struct vfio_iommu_type1_info_cap_migration));
  printf("sizeof(vfio_iommu_type1_info_dma_avail) %zu\n", sizeof(struct vfio_iommu_type1_info_dma_avail));
  printf("sizeof(vfio_iommu_type1_info_cap_iova_range) %zu + %zu per range\n", sizeof(struct vfio_iommu_type1_info_cap_iova_range), sizeof(struct vfio_iova_range));
  return 0;
}
