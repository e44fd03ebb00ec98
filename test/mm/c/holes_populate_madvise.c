#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdint.h>
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#define P(name, expr) do { errno = 0; long r = (long)(expr); printf("%-50s ret=%ld errno=%s\n", name, r, r==-1?strerrorname_np(errno):"-"); } while (0)
static sigjmp_buf jb; static volatile int gsig, gcode; static void * volatile gaddr;
static void h(int s, siginfo_t *si, void *u) { gsig = s; gcode = si->si_code; gaddr = si->si_addr; siglongjmp(jb, 1); }
static void try_store(const char *name, volatile char *p) {
  gsig = 0; if (!sigsetjmp(jb, 1)) { *p = 1; printf("%-50s store ok\n", name); }
  else printf("%-50s sig=%d code=%d addr_ok=%d\n", name, gsig, gcode, gaddr == (void*)p);
}
static uint64_t pfn(void *p) { int fd = open("/proc/self/pagemap", O_RDONLY); uint64_t e; pread(fd, &e, 8, ((uintptr_t)p/4096)*8); close(fd); return e; }
static char *H = (char*)0x300000000000;
static char *mk(int prot, int n) { char *m = mmap(H, n*4096, prot, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0); return m; }
static void clean(void) { munmap(H, 64*4096); }
int main() {
  struct sigaction sa = {0}; sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0); sigaction(SIGBUS, &sa, 0);
  char *m;
  m = mk(PROT_READ, 3); munmap(m+4096, 4096);
  P("mprotect across hole", mprotect(m, 3*4096, PROT_READ|PROT_WRITE));
  try_store("  page0 after", m); try_store("  page2 after", m+8192);
  P("mprotect starting in hole", mprotect(m+4096, 2*4096, PROT_READ|PROT_WRITE));
  try_store("  page2 after", m+8192);
  P("madvise DONTNEED across hole", madvise(m, 3*4096, MADV_DONTNEED));
  P("madvise DONTNEED starting in hole", madvise(m+4096, 2*4096, MADV_DONTNEED));
  P("madvise DONTNEED hole only", madvise(m+4096, 4096, MADV_DONTNEED));
  P("POPULATE_WRITE across hole", madvise(m, 3*4096, MADV_POPULATE_WRITE));
  P("POPULATE_WRITE starting in hole", madvise(m+4096, 2*4096, MADV_POPULATE_WRITE));
  P("mlock across hole", mlock(m, 3*4096));
  P("mlock starting in hole", mlock(m+4096, 2*4096));
  P("munlock across hole", munlock(m, 3*4096));
  P("munlock starting in hole", munlock(m+4096, 2*4096));
  clean();
  /* populate on PROT_WRITE page after RO part */
  m = mk(PROT_READ|PROT_WRITE, 3); mprotect(m+4096, 4096, PROT_READ);
  P("POPULATE_WRITE RW,RO,RW", madvise(m, 3*4096, MADV_POPULATE_WRITE));
  printf("  page0 present=%d page2 present=%d\n", (int)(pfn(m)>>63), (int)(pfn(m+8192)>>63));
  clean();
  m = mk(PROT_READ|PROT_WRITE, 2); mprotect(m+4096, 4096, PROT_NONE);
  P("mlock RW,NONE", mlock(m, 2*4096));
  printf("  page0 present=%d\n", (int)(pfn(m)>>63));
  clean();
  m = mk(PROT_NONE, 2); mprotect(m+4096, 4096, PROT_READ);
  P("mlock NONE,R", mlock(m, 2*4096));
  printf("  page1 present=%d\n", (int)(pfn(m+4096)>>63));
  clean();
  /* zero page */
  m = mk(PROT_READ|PROT_WRITE, 4);
  volatile char c = m[0]; c = m[4096]; (void)c;
  printf("zero-page pfns equal=%d pfn=%llx present=%d\n", (pfn(m)&((1ULL<<55)-1)) == (pfn(m+4096)&((1ULL<<55)-1)), (unsigned long long)(pfn(m)&((1ULL<<55)-1)), (int)(pfn(m)>>63));
  P("POPULATE_READ anon", madvise(m+8192, 4096, MADV_POPULATE_READ));
  printf("populate_read uses zero page=%d\n", (pfn(m)&((1ULL<<55)-1)) == (pfn(m+8192)&((1ULL<<55)-1)));
  m[0] = 5;
  printf("after write pfn differs=%d\n", (pfn(m)&((1ULL<<55)-1)) != (pfn(m+4096)&((1ULL<<55)-1)));
  madvise(m, 4096, MADV_DONTNEED);
  printf("after DONTNEED m[0]=%d present=%d\n", m[0], (int)(pfn(m)>>63));
  clean();
  /* MAP_POPULATE with PROT_READ anon: zero page? */
  m = mmap(H, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE|MAP_POPULATE, -1, 0);
  printf("MAP_POPULATE RO present=%d\n", (int)(pfn(m)>>63));
  clean();
  m = mmap(H, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE|MAP_POPULATE, -1, 0);
  printf("MAP_POPULATE RW present=%d\n", (int)(pfn(m)>>63));
  clean();
  /* memfd: shared and private behaviour */
  int fd = memfd_create("t", 0); ftruncate(fd, 4*4096);
  char *s = mmap(0, 4*4096, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0);
  char *pv = mmap(0, 4*4096, PROT_READ|PROT_WRITE, MAP_PRIVATE, fd, 0);
  s[0] = 'A'; s[4096] = 'B';
  printf("private sees shared write: %c\n", pv[0]);
  pv[0] = 'X';
  printf("private after own write: %c, shared: %c\n", pv[0], s[0]);
  madvise(pv, 4096, MADV_DONTNEED);
  printf("private after DONTNEED: %c\n", pv[0]);
  madvise(s, 4096, MADV_DONTNEED);
  printf("shared after DONTNEED: %c\n", s[0]);
  P("MADV_REMOVE shared", madvise(s, 4096, MADV_REMOVE));
  printf("shared after REMOVE: %d, private: %d\n", s[0], pv[0]);
  P("MADV_REMOVE private", madvise(pv, 4096, MADV_REMOVE));
  char *anon = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  P("MADV_REMOVE anon", madvise(anon, 4096, MADV_REMOVE));
  char *sanon = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0);
  P("MADV_REMOVE shared anon", madvise(sanon, 4096, MADV_REMOVE));
  char *sro = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0);
  P("MADV_REMOVE shared RO", madvise(sro, 4096, MADV_REMOVE));
  P("MADV_DONTNEED locked", (mlock(anon, 4096), madvise(anon, 4096, MADV_DONTNEED)));
  P("MADV_FREE", madvise(anon, 4096, MADV_FREE));
  P("MADV_FREE shared", madvise(s, 4096, MADV_FREE));
  P("MADV_HUGEPAGE", madvise(anon, 4096, MADV_HUGEPAGE));
  P("MADV_DONTFORK", madvise(anon, 4096, MADV_DONTFORK));
  P("MADV_COLD", madvise(anon, 4096, MADV_COLD));
  P("MADV_PAGEOUT", madvise(anon, 4096, MADV_PAGEOUT));
  P("MADV_DONTDUMP", madvise(anon, 4096, MADV_DONTDUMP));
  P("MADV_WIPEONFORK shared", madvise(s, 4096, MADV_WIPEONFORK));
  P("MADV_MERGEABLE", madvise(anon, 4096, MADV_MERGEABLE));
  P("MADV_GUARD_INSTALL 102", madvise(anon, 4096, 102));
  P("MADV_COLLAPSE", madvise(anon, 4096, 25));
  P("advice 26", madvise(anon, 4096, 26));
  P("advice 103", madvise(anon, 4096, 103));
  P("advice 104", madvise(anon, 4096, 104));
  P("advice 20 (MADV_COLD)", madvise(anon, 4096, 20));
  P("advice 24 (DONTNEED_LOCKED)", madvise(anon, 4096, 24));
  P("advice 5", madvise(anon, 4096, 5));
  P("advice 6", madvise(anon, 4096, 6));
  P("advice 7", madvise(anon, 4096, 7));
  return 0;
}
