#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#define P(name, expr) do { errno = 0; long r = (long)(expr); printf("%-50s ret=%ld errno=%s\n", name, r, r==-1?strerrorname_np(errno):"-"); } while (0)
int main() {
  int fd = memfd_create("t", MFD_ALLOW_SEALING); ftruncate(fd, 4096);
  void *r = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0);
  P("SEAL_WRITE with RO shared map", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
  munmap(r, 4096);
  void *pr = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE, fd, 0);
  P("SEAL_WRITE with private RW map", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
  munmap(pr, 4096);
  int fd2 = memfd_create("t2", MFD_ALLOW_SEALING); ftruncate(fd2, 4096);
  void *w = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, fd2, 0);
  mprotect(w, 4096, PROT_READ);
  P("SEAL_WRITE with shared map mprotected RO", fcntl(fd2, F_ADD_SEALS, F_SEAL_WRITE));
  munmap(w, 4096);
  P("SEAL_WRITE after munmap", fcntl(fd2, F_ADD_SEALS, F_SEAL_WRITE));
  /* FUTURE_WRITE */
  int fd3 = memfd_create("t3", MFD_ALLOW_SEALING); ftruncate(fd3, 4096);
  P("SEAL_FUTURE_WRITE", fcntl(fd3, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
  void *m3 = mmap(0, 4096, PROT_READ, MAP_SHARED, fd3, 0);
  printf("RO shared after FUTURE_WRITE: %s\n", m3 == MAP_FAILED ? strerrorname_np(errno) : "ok");
  P("mprotect W after FUTURE_WRITE", mprotect(m3, 4096, PROT_READ|PROT_WRITE));
  void *m3w = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, fd3, 0);
  printf("RW shared after FUTURE_WRITE: %s\n", m3w == MAP_FAILED ? strerrorname_np(errno) : "ok");
  /* overcommit */
  void *big = mmap(0, 1UL<<40, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("1TiB RW private anon: %s\n", big == MAP_FAILED ? strerrorname_np(errno) : "ok");
  void *big2 = mmap(0, 1UL<<40, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("1TiB R private anon: %s\n", big2 == MAP_FAILED ? strerrorname_np(errno) : "ok");
  P("mprotect 1TiB R->RW", mprotect(big2, 1UL<<40, PROT_READ|PROT_WRITE));
  void *big3 = mmap(0, 1UL<<40, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0);
  printf("1TiB RW private anon NORESERVE: %s\n", big3 == MAP_FAILED ? strerrorname_np(errno) : "ok");
  void *big4 = mmap(0, 1UL<<40, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0);
  printf("1TiB RW shared anon: %s\n", big4 == MAP_FAILED ? strerrorname_np(errno) : "ok");
  FILE *f = fopen("/proc/meminfo", "r"); char l[256]; while (fgets(l, sizeof l, f)) if (!strncmp(l, "MemTotal", 8) || !strncmp(l, "SwapTotal", 9) || !strncmp(l, "Hugepagesize", 12) || !strncmp(l,"HugePages_Total",15)) printf("%s", l);
  /* limit of heuristic */
  long total = sysconf(_SC_PHYS_PAGES);
  void *b5 = mmap(0, (total+1)*4096UL, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("totalram+1 pages: %s\n", b5 == MAP_FAILED ? strerrorname_np(errno) : "ok");
  void *b6 = mmap(0, (total)*4096UL, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("totalram pages: %s\n", b6 == MAP_FAILED ? strerrorname_np(errno) : "ok");
  return 0;
}
