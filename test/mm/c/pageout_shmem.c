/*
 * MADV_PAGEOUT of a MAP_SHARED memfd mapping on a machine without swap: reclaim unmaps every
 * folio (try_to_unmap()) and then, for shmem without swap, cannot write it out: a folio with data
 * (fallocated, or written) stays in the page cache unmapped; a clean one that only a read fault of
 * a hole allocated is dropped. This is why bench/real/mm_bench.c times try_to_unmap through
 * MADV_PAGEOUT of fallocated memory (bench/src/suites/mm.ts).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#define N 64
static int present(int pm, void *p) { uint64_t e; pread(pm, &e, 8, ((uintptr_t)p / 4096) * 8); return (e >> 63) & 1; }
int main(void) {
  const char *how[] = { "read faults of holes", "fallocate, then read faults", "write faults" };
  int pm = open("/proc/self/pagemap", O_RDONLY);
  for (int mode = 0; mode < 3; mode++) {
    int fd = memfd_create("pageout", 0);
    ftruncate(fd, N * 4096);
    if (mode == 1) fallocate(fd, 0, 0, N * 4096);
    volatile char *p = mmap(0, N * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char s = 0;
    for (int i = 0; i < N; i++) { if (mode == 2) p[i * 4096] = 1; else s += p[i * 4096]; }
    int before = 0, after = 0, resident = 0;
    for (int i = 0; i < N; i++) before += present(pm, (char *)p + i * 4096);
    int r = madvise((void *)p, N * 4096, MADV_PAGEOUT);
    unsigned char v[N];
    mincore((void *)p, N * 4096, v);
    for (int i = 0; i < N; i++) { after += present(pm, (char *)p + i * 4096); resident += v[i] & 1; }
    printf("%-28s MADV_PAGEOUT ret=%d: mapped %d -> %d of %d, in the page cache after: %d\n", how[mode], r, before, after, N, resident);
    munmap((void *)p, N * 4096);
    close(fd);
    (void)s;
  }
  return 0;
}
