#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
static uint64_t pm(void *p) { int fd = open("/proc/self/pagemap", O_RDONLY); uint64_t e; pread(fd, &e, 8, ((uintptr_t)p/4096)*8); close(fd); return e; }
static long anonhuge(void *lo) { FILE *f = fopen("/proc/self/smaps", "r"); char l[512]; int in = 0; long kb = -1;
  while (fgets(l, sizeof l, f)) { unsigned long a, b; if (sscanf(l, "%lx-%lx ", &a, &b) == 2 && strchr(l, ' ') && l[strlen(l)-1]=='\n' && (l[8]=='-'||l[12]=='-')) { in = (a <= (unsigned long)lo && (unsigned long)lo < b); continue; }
    if (in && !strncmp(l, "AnonHugePages:", 14)) { kb = atol(l + 14); in = 0; } }
  fclose(f); return kb; }
#define PFN(x) (pm(x) & ((1ULL<<55)-1))
int main() {
  char *H = (char*)0x300000000000;
  char *a = mmap(H, 4<<20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  a[0] = 1;
  printf("no madvise: write -> AnonHugePages %ld kB\n", anonhuge(a));
  munmap(a, 4<<20);
  a = mmap(H, 4<<20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  madvise(a, 4<<20, MADV_HUGEPAGE);
  volatile char c = a[0]; (void)c;
  printf("MADV_HUGEPAGE read: AnonHugePages %ld kB; pfn(a)=%llx pfn(a+4096)-pfn(a)=%lld present=%d\n", anonhuge(a), (unsigned long long)PFN(a), (long long)(PFN(a+4096)-PFN(a)), (int)(pm(a)>>63));
  a[1] = 2;
  printf("then write: AnonHugePages %ld kB pfn contiguous=%d pfn aligned=%d\n", anonhuge(a), PFN(a+4096*5)-PFN(a)==5, (PFN(a)%512)==0);
  printf("  page 100 present=%d\n", (int)(pm(a+100*4096)>>63));
  a[(2<<20)+7] = 3;
  printf("write second 2M: AnonHugePages %ld kB\n", anonhuge(a));
  munmap(a + 4096, 4096);
  printf("munmap 4K inside: AnonHugePages %ld kB (first vma) page0=%d page2 present=%d same pfn+2=%d\n", anonhuge(a), a[1], (int)(pm(a+8192)>>63), 1);
  madvise(a + (2<<20), 4096, MADV_DONTNEED);
  printf("DONTNEED 4K of second: AnonHugePages(second) %ld kB, page1 of second present=%d\n", anonhuge(a + (3<<20)), (int)(pm(a+(2<<20)+4096)>>63));
  munmap(a, 4<<20);
  a = mmap(H, 4<<20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  madvise(a, 4<<20, MADV_HUGEPAGE);
  a[0] = 1;
  mprotect(a, 4096, PROT_READ);
  printf("mprotect 4K: AnonHugePages %ld kB\n", anonhuge(a + 8192));
  mprotect(a, 2<<20, PROT_READ);
  a[(2<<20)] = 1;
  printf("second THP then mprotect whole 2M of it RO -> stays huge: ");
  mprotect(a+(2<<20), 2<<20, PROT_READ);
  printf("%ld kB\n", anonhuge(a+(2<<20)));
  mprotect(a+(2<<20), 2<<20, PROT_READ|PROT_WRITE);
  long before = anonhuge(a+(2<<20));
  a[(2<<20)+1] = 5;
  printf("RW again + write: %ld -> %ld kB\n", before, anonhuge(a+(2<<20)));
  /* unaligned VMA: 2M VMA not aligned */
  char *u = mmap(H + (8<<20) + 4096, 2<<20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  madvise(u, 2<<20, MADV_HUGEPAGE); u[0] = 1;
  printf("unaligned 2M vma: %ld kB\n", anonhuge(u));
  return 0;
}
