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

#define PROT_SEM 0x8
#define MADV_SOFT_OFFLINE 101
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#define P(name, expr) do { errno = 0; long r = (long)(expr); printf("%-50s ret=%ld errno=%d (%s)\n", name, r, r==-1?errno:0, r==-1?strerrorname_np(errno):"-"); } while (0)
#define PM(name, expr) do { errno = 0; void *r = (expr); printf("%-50s ret=%s errno=%s\n", name, r==MAP_FAILED?"MAP_FAILED":"ok", r==MAP_FAILED?strerrorname_np(errno):"-"); if (r!=MAP_FAILED) munmap(r, 4096); } while (0)

static sigjmp_buf jb; static volatile int gsig, gcode; static void * volatile gaddr;
static void h(int s, siginfo_t *si, void *u) { gsig = s; gcode = si->si_code; gaddr = si->si_addr; siglongjmp(jb, 1); }
static void try_load(const char *name, volatile char *p) {
  gsig = 0; if (!sigsetjmp(jb, 1)) { char c = *p; (void)c; printf("%-50s load ok\n", name); }
  else printf("%-50s sig=%d code=%d addr_ok=%d\n", name, gsig, gcode, gaddr == (void*)p);
}
static void try_store(const char *name, volatile char *p) {
  gsig = 0; if (!sigsetjmp(jb, 1)) { *p = 1; printf("%-50s store ok\n", name); }
  else printf("%-50s sig=%d code=%d addr_ok=%d\n", name, gsig, gcode, gaddr == (void*)p);
}
int main() {
  struct sigaction sa = {0}; sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0); sigaction(SIGBUS, &sa, 0);
  PM("mmap len 0", mmap(0, 0, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap anon SHARED|PRIVATE (validate)", mmap(0, 4096, PROT_READ, MAP_SHARED|MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap anon type 0", mmap(0, 4096, PROT_READ, MAP_ANONYMOUS, -1, 0));
  PM("mmap anon type 0xf", mmap(0, 4096, PROT_READ, 0xf|MAP_ANONYMOUS, -1, 0));
  PM("mmap anon type 4", mmap(0, 4096, PROT_READ, 4|MAP_ANONYMOUS, -1, 0));
  PM("mmap non-anon fd -1 off 1", mmap(0, 4096, PROT_READ, MAP_PRIVATE, -1, 1));
  PM("mmap non-anon fd -1 len0", mmap(0, 0, PROT_READ, MAP_PRIVATE, -1, 0));
  PM("mmap non-anon fd -1", mmap(0, 4096, PROT_READ, MAP_PRIVATE, -1, 0));
  PM("mmap anon off 1", mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 1));
  PM("mmap anon off 4096", mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 4096));
  PM("mmap anon len -1", mmap(0, (size_t)-1, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap anon len 1<<63", mmap(0, 1UL<<63, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap anon len 1<<47", mmap(0, 1UL<<47, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap anon len 0 offset 1", mmap(0, 0, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 1));
  PM("mmap FIXED unaligned", mmap((void*)0x10000001, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED unaligned huge len", mmap((void*)0x10000001, (size_t)-1, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED unaligned len>TASK", mmap((void*)0x10000001, 1UL<<48, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED unaligned addr near top", mmap((void*)0x7ffffffff001, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED at 1<<47", mmap((void*)(1UL<<47), 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED at 0", mmap((void*)0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED at 0x1000", mmap((void*)0x1000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED at 0x7ffffffff000", mmap((void*)0x7ffffffff000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap FIXED at 0x7fffffffe000 len 8192", mmap((void*)0x7fffffffe000, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  PM("mmap prot 0x100", mmap(0, 4096, 0x100, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap prot -1", mmap(0, 4096, -1, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0));
  PM("mmap flags unknown 0x800000 anon private", mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|0x800000, -1, 0));
  PM("mmap GROWSDOWN anon shared", mmap(0, 4096, PROT_READ, MAP_SHARED|MAP_ANONYMOUS|MAP_GROWSDOWN, -1, 0));
  PM("mmap HUGETLB anon", mmap(0, 2<<20, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB, -1, 0));
  /* hints */
  void *a = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  void *b = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("a=%p b=%p diff=%ld\n", a, b, (char*)a-(char*)b);
  void *c = mmap((void*)0x10000123, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("hint 0x10000123 -> %p\n", c);
  void *d = mmap((void*)0x10, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("hint 0x10 -> %p\n", d);
  void *e = mmap(0, 4<<20, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("4MiB anon -> %p\n", e);
  void *e2 = mmap(0, 4<<20, PROT_READ, MAP_SHARED|MAP_ANONYMOUS, -1, 0);
  printf("4MiB anon shared -> %p\n", e2);
  void *e3 = mmap(0, (4<<20)+4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("4MiB+4k anon -> %p\n", e3);
  PM("FIXED_NOREPLACE over a", mmap(a, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0));
  PM("FIXED_NOREPLACE unaligned", mmap((char*)a+1, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0));
  /* munmap */
  P("munmap unaligned", munmap((char*)a+1, 4096));
  P("munmap len 0", munmap(a, 0));
  P("munmap unmapped range", munmap((void*)0x200000000000, 4096));
  P("munmap len -1", munmap(a, (size_t)-1));
  P("munmap addr 1<<47", munmap((void*)(1UL<<47), 4096));
  P("munmap addr 0x7ffffffff000 len 4096", munmap((void*)0x7ffffffff000, 4096));
  P("munmap addr 0x7ffffffff000 len 8192", munmap((void*)0x7ffffffff000, 8192));
  P("munmap addr 0 len 4096", munmap((void*)0, 4096));
  /* mprotect */
  P("mprotect unaligned", mprotect((char*)a+1, 4096, PROT_READ));
  P("mprotect len 0 unmapped", mprotect((void*)0x200000000000, 0, PROT_READ));
  P("mprotect unmapped", mprotect((void*)0x200000000000, 4096, PROT_READ));
  P("mprotect bad prot 0x10 unmapped", mprotect((void*)0x200000000000, 4096, 0x10));
  P("mprotect bad prot 0x10 mapped", mprotect(a, 4096, 0x10));
  P("mprotect PROT_SEM", mprotect(a, 4096, PROT_READ|PROT_SEM));
  P("mprotect GROWSDOWN|GROWSUP", mprotect(a, 4096, PROT_READ|PROT_GROWSDOWN|PROT_GROWSUP));
  P("mprotect GROWSDOWN on non-growsdown", mprotect(a, 4096, PROT_READ|PROT_GROWSDOWN));
  P("mprotect len -1", mprotect(a, (size_t)-1, PROT_READ));
  P("mprotect len huge overflow", mprotect(a, (size_t)-4096*2, PROT_READ));
  P("mprotect len 0 unaligned", mprotect((char*)a+1, 0, PROT_READ));
  /* mprotect across hole: map 3 pages, unmap middle, mprotect all RW */
  char *m = mmap(0, 3*4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  munmap(m+4096, 4096);
  P("mprotect across hole", mprotect(m, 3*4096, PROT_READ|PROT_WRITE));
  try_store("store first page after failed mprotect", m);
  try_store("store third page after failed mprotect", m+8192);
  P("mprotect starting in hole", mprotect(m+4096, 2*4096, PROT_READ|PROT_WRITE|PROT_EXEC));
  /* madvise */
  P("madvise unknown 999", madvise(m, 4096, 999));
  P("madvise unknown 999 unaligned", madvise(m+1, 4096, 999));
  P("madvise unaligned DONTNEED", madvise(m+1, 4096, MADV_DONTNEED));
  P("madvise len 0 DONTNEED unmapped", madvise((void*)0x200000000000, 0, MADV_DONTNEED));
  P("madvise DONTNEED unmapped", madvise((void*)0x200000000000, 4096, MADV_DONTNEED));
  P("madvise DONTNEED across hole", madvise(m, 3*4096, MADV_DONTNEED));
  P("madvise HWPOISON", madvise(m, 4096, MADV_HWPOISON));
  P("madvise SOFT_OFFLINE", madvise(m, 4096, MADV_SOFT_OFFLINE));
  P("madvise len -1", madvise(m, (size_t)-1, MADV_DONTNEED));
  P("madvise NORMAL unmapped", madvise((void*)0x200000000000, 4096, MADV_NORMAL));
  P("madvise WILLNEED unmapped", madvise((void*)0x200000000000, 4096, MADV_WILLNEED));
  P("madvise -1 advice", madvise(m, 4096, -1));
  char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  P("POPULATE_WRITE on RO", madvise(ro, 4096, MADV_POPULATE_WRITE));
  P("POPULATE_READ on RO", madvise(ro, 4096, MADV_POPULATE_READ));
  char *pn = mmap(0, 4096, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  P("POPULATE_READ on PROT_NONE", madvise(pn, 4096, MADV_POPULATE_READ));
  P("POPULATE_WRITE unmapped", madvise((void*)0x200000000000, 4096, MADV_POPULATE_WRITE));
  P("POPULATE_WRITE across hole", madvise(m, 3*4096, MADV_POPULATE_WRITE));
  char *wo = mmap(0, 4096, PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  P("POPULATE_READ on WRONLY", madvise(wo, 4096, MADV_POPULATE_READ));
  char *xo = mmap(0, 4096, PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  try_load("load PROT_EXEC only", xo);
  try_load("load PROT_WRITE only", wo);
  try_load("load PROT_NONE", pn);
  try_store("store PROT_NONE", pn);
  try_store("store RO", ro);
  try_load("load RO", ro);
  try_load("load unmapped", (char*)0x200000000000);
  try_store("store unmapped", (char*)0x200000000000);
  try_load("load hole", m+4096);
  /* mlock */
  P("mlock PROT_NONE", mlock(pn, 4096));
  P("mlock unmapped", mlock((void*)0x200000000000, 4096));
  P("mlock unaligned ok", mlock(ro+5, 10));
  P("mlock len 0", mlock((void*)0x200000000000, 0));
  P("mlock starting in hole", mlock(m+4096, 2*4096));
  P("mlock across hole", mlock(m, 3*4096));
  P("munlock unmapped", munlock((void*)0x200000000000, 4096));
  P("munlock across hole", munlock(m, 3*4096));
  P("mlock len -1", mlock(m, (size_t)-1));
  P("mlock len -4096 from 0x1000", mlock((void*)0x1000, (size_t)-8192));
  P("munlock len -1", munlock(m, (size_t)-1));
  /* memfd */
  int fd = memfd_create("t", MFD_ALLOW_SEALING);
  ftruncate(fd, 8192);
  char *f = mmap(0, 4*4096, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0);
  try_store("memfd store page 0", f);
  try_load("memfd load page 2 (beyond EOF)", f+8192);
  try_store("memfd store page 3 (beyond EOF)", f+12288+5);
  P("POPULATE_WRITE memfd beyond EOF", madvise(f, 4*4096, MADV_POPULATE_WRITE));
  P("POPULATE_READ memfd beyond EOF", madvise(f+8192, 4096, MADV_POPULATE_READ));
  P("mlock memfd beyond EOF", mlock(f, 4*4096));
  PM("memfd off unaligned", mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 1));
  PM("memfd pgoff overflow", mmap(0, 8192, PROT_READ, MAP_SHARED, fd, (off_t)0xfffffffffffff000));
  PM("memfd off negative big", mmap(0, 4096, PROT_READ, MAP_SHARED, fd, (off_t)0x8000000000000000));
  PM("memfd SHARED_VALIDATE", mmap(0, 4096, PROT_READ, MAP_SHARED_VALIDATE, fd, 0));
  PM("memfd SHARED_VALIDATE|0x800000", mmap(0, 4096, PROT_READ, MAP_SHARED_VALIDATE|0x800000, fd, 0));
  PM("memfd SHARED|0x800000", mmap(0, 4096, PROT_READ, MAP_SHARED|0x800000, fd, 0));
  PM("memfd SHARED_VALIDATE|FIXED_NOREPLACE", mmap((void*)0x300000000000, 4096, PROT_READ, MAP_SHARED_VALIDATE|MAP_FIXED_NOREPLACE, fd, 0));
  PM("memfd SHARED_VALIDATE|MAP_SYNC", mmap(0, 4096, PROT_READ, MAP_SHARED_VALIDATE|MAP_SYNC, fd, 0));
  PM("memfd SHARED_VALIDATE|MAP_32BIT", mmap(0, 4096, PROT_READ, MAP_SHARED_VALIDATE|MAP_32BIT, fd, 0));
  PM("memfd SHARED_VALIDATE|MAP_UNINITIALIZED", mmap(0, 4096, PROT_READ, MAP_SHARED_VALIDATE|0x4000000, fd, 0));
  PM("memfd type 0", mmap(0, 4096, PROT_READ, 0, fd, 0));
  PM("memfd type 0xf", mmap(0, 4096, PROT_READ, 0xf, fd, 0));
  PM("memfd GROWSDOWN shared", mmap(0, 4096, PROT_READ, MAP_SHARED|MAP_GROWSDOWN, fd, 0));
  PM("memfd HUGETLB", mmap(0, 4096, PROT_READ, MAP_SHARED|MAP_HUGETLB, fd, 0));
  char path[64]; sprintf(path, "/proc/self/fd/%d", fd);
  int rfd = open(path, O_RDONLY), wfd = open(path, O_WRONLY);
  PM("memfd O_RDONLY shared RW", mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, rfd, 0));
  PM("memfd O_RDONLY shared R", mmap(0, 4096, PROT_READ, MAP_SHARED, rfd, 0));
  PM("memfd O_RDONLY private RW", mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE, rfd, 0));
  PM("memfd O_WRONLY shared RW", mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, wfd, 0));
  PM("memfd O_WRONLY private R", mmap(0, 4096, PROT_READ, MAP_PRIVATE, wfd, 0));
  PM("memfd O_WRONLY shared NONE", mmap(0, 4096, PROT_NONE, MAP_SHARED, wfd, 0));
  PM("memfd O_WRONLY shared len0", mmap(0, 0, PROT_NONE, MAP_SHARED, wfd, 0));
  char *rs = mmap(0, 4096, PROT_READ, MAP_SHARED, rfd, 0);
  P("mprotect W on RDONLY shared", mprotect(rs, 4096, PROT_READ|PROT_WRITE));
  P("mprotect X on RDONLY shared", mprotect(rs, 4096, PROT_READ|PROT_EXEC));
  int nfd = open("/dev/null", O_RDWR);
  PM("mmap /dev/null", mmap(0, 4096, PROT_READ, MAP_SHARED, nfd, 0));
  PM("mmap /dev/null private", mmap(0, 4096, PROT_READ, MAP_PRIVATE, nfd, 0));
  PM("mmap /dev/null O_WRONLY-ish (via rdwr) shared", mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, nfd, 0));
  PM("mmap closed fd 100", mmap(0, 4096, PROT_READ, MAP_SHARED, 100, 0));
  PM("mmap closed fd 100 len 0", mmap(0, 0, PROT_READ, MAP_SHARED, 100, 0));
  PM("mmap closed fd 100 type 0", mmap(0, 4096, PROT_READ, 0, 100, 0));
  /* seal write */
  munmap(f, 4*4096);
  P("F_ADD_SEALS WRITE", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
  PM("sealed shared RW", mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0));
  PM("sealed shared R", mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0));
  PM("sealed private RW", mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE, fd, 0));
  char *sr = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0);
  P("sealed mprotect W", mprotect(sr, 4096, PROT_READ|PROT_WRITE));
  return 0;
}
