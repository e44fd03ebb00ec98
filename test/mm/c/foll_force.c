#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>

#define PG 4096
static int memfd;
static uint64_t pm(void *p) { int fd = open("/proc/self/pagemap", O_RDONLY); uint64_t e; pread(fd, &e, 8, ((uintptr_t)p/4096)*8); close(fd); return e; }
static void w(const char *what, void *addr, char c) {
  errno = 0;
  ssize_t r = pwrite(memfd, &c, 1, (off_t)(uintptr_t)addr);
  if (r < 0) printf("%-52s -> -1 %s\n", what, strerrorname_np(errno));
  else printf("%-52s -> %zd\n", what, r);
}
static void rdm(const char *what, void *addr) {
  char c = 0; errno = 0;
  ssize_t r = pread(memfd, &c, 1, (off_t)(uintptr_t)addr);
  if (r < 0) printf("%-52s -> -1 %s\n", what, strerrorname_np(errno));
  else printf("%-52s -> %zd '%c'\n", what, r, c ? c : '0');
}
int main(void) {
  memfd = open("/proc/self/mem", O_RDWR);
  char *H = (char *)0x300000000000;
  int fd = memfd_create("ff", 0);
  ftruncate(fd, 4 * PG);
  pwrite(fd, "FFFF", 4, 0);
  char *pr = mmap(H, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  w("write PROT_READ MAP_PRIVATE memfd (untouched)", pr, 'X');
  char f0; pread(fd, &f0, 1, 0);
  printf("  mapping[0]=%c file[0]=%c anon(pagemap bit61 clear=anon)=%d\n", pr[0], f0, !((pm(pr) >> 61) & 1));
  char *ps = mmap(H + 2 * PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
  w("write PROT_READ MAP_SHARED memfd", ps, 'Y');
  char *an = mmap(H + 4 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  w("write PROT_READ private anon (untouched)", an, 'Z');
  printf("  anon[0]=%c\n", an[0]);
  char *an2 = mmap(H + 6 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  volatile char c = an2[0]; (void)c;
  w("write PROT_READ private anon (zero page mapped)", an2, 'Q');
  printf("  anon2[0]=%c\n", an2[0]);
  char *pn = mmap(H + 8 * PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  w("write PROT_NONE private anon", pn, 'N');
  rdm("read PROT_NONE private anon", pn);
  char *pns = mmap(H + 10 * PG, PG, PROT_NONE, MAP_SHARED | MAP_FIXED, fd, 0);
  rdm("read PROT_NONE MAP_SHARED memfd", pns);
  w("write PROT_NONE MAP_SHARED memfd", pns, 'S');
  rdm("read hole", H + 12 * PG);
  char *rw = mmap(H + 14 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  rw[0] = 1;
  mprotect(rw, PG, PROT_READ);
  w("write RW->RO private anon (exclusive anon page)", rw, 'E');
  printf("  rw[0]=%c\n", rw[0]);
  return 0;
}
