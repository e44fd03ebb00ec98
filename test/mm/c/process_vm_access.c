#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/syscall.h>

#define PG 4096
static pid_t me;
static void show(const char *what, ssize_t r) {
  if (r < 0) printf("%-58s -> -1 %s\n", what, strerrorname_np(errno));
  else printf("%-58s -> %zd\n", what, r);
}
static ssize_t rd(void *l, size_t ll, void *r, size_t rl) {
  struct iovec lv = { l, ll }, rv = { r, rl };
  errno = 0; return process_vm_readv(me, &lv, 1, &rv, 1, 0);
}
static ssize_t wr(void *l, size_t ll, void *r, size_t rl) {
  struct iovec lv = { l, ll }, rv = { r, rl };
  errno = 0; return process_vm_writev(me, &lv, 1, &rv, 1, 0);
}
int main(void) {
  me = getpid();
  char *H = (char *)0x300000000000;
  char *buf = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  /* remote: pages 0,2 mapped; 1 hole; 3 PROT_NONE; 4 RO; 5 RW */
  char *a = mmap(H, 6 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  memset(a, 'A', 6 * PG);
  munmap(a + PG, PG);
  mprotect(a + 3 * PG, PG, PROT_NONE);
  mprotect(a + 4 * PG, PG, PROT_READ);
  show("readv 2 pages [0,1=hole]", rd(buf, 2 * PG, a, 2 * PG));
  show("readv 3 pages from 0 (hole at 1)", rd(buf, 3 * PG, a, 3 * PG));
  show("readv unaligned +100 len 8192 (hole at 1)", rd(buf, 2 * PG, a + 100, 2 * PG));
  show("readv starting in hole", rd(buf, PG, a + PG, PG));
  show("readv page 2 then PROT_NONE page 3", rd(buf, 2 * PG, a + 2 * PG, 2 * PG));
  show("readv PROT_NONE page alone", rd(buf, PG, a + 3 * PG, PG));
  show("readv RO page 4 and RW page 5", rd(buf, 2 * PG, a + 4 * PG, 2 * PG));
  show("writev RW page 5 ok", wr(buf, PG, a + 5 * PG, PG));
  show("writev RO page 4 (no FOLL_FORCE)", wr(buf, PG, a + 4 * PG, PG));
  show("writev page 2 then PROT_NONE", wr(buf, 2 * PG, a + 2 * PG, 2 * PG));
  show("readv local 100 bytes, remote 8192 (page 4,5)", rd(buf, 100, a + 4 * PG, 2 * PG));
  show("readv len 0 remote in hole", rd(buf, PG, a + PG, 0));
  show("readv local len 0", rd(buf, 0, a, PG));
  /* local buffer followed by a hole */
  char *lh = mmap(H + 16 * PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  munmap(lh + PG, PG);
  show("readv local buf (last 100 bytes before hole) len 8192", rd(lh + PG - 100, 2 * PG, a + 4 * PG, 2 * PG));
  show("readv local buf entirely in hole", rd(lh + PG, PG, a + 4 * PG, PG));
  show("writev local src 100 bytes before hole len 8192", wr(lh + PG - 100, 2 * PG, a + 5 * PG, PG));
  /* multiple remote iovecs */
  {
    struct iovec lv = { buf, 4 * PG };
    struct iovec rv[3] = { { a, 100 }, { a + PG, PG }, { a + 2 * PG, PG } };
    errno = 0; show("readv riov [ok 100][hole][ok]", process_vm_readv(me, &lv, 1, rv, 3, 0));
    struct iovec rv2[2] = { { a + PG, PG }, { a, 100 } };
    errno = 0; show("readv riov [hole][ok 100]", process_vm_readv(me, &lv, 1, rv2, 2, 0));
    struct iovec rv3[3] = { { a, 100 }, { a + PG, 0 }, { a + 2 * PG, 50 } };
    errno = 0; show("readv riov [ok 100][hole len 0][ok 50]", process_vm_readv(me, &lv, 1, rv3, 3, 0));
  }
  /* multiple local iovecs */
  {
    struct iovec lv[3] = { { buf, 10 }, { buf + 100, 0 }, { buf + 200, 5000 } };
    struct iovec rv = { a, 2 * PG };
    errno = 0; show("readv liov [10][0][5000] riov 8192 (hole at 1)", process_vm_readv(me, lv, 3, &rv, 1, 0));
  }
  /* memfd beyond EOF */
  {
    int fd = memfd_create("pvm", 0);
    ftruncate(fd, PG + 100);
    char *f = mmap(H + 32 * PG, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    memset(f, 'F', 10);
    show("readv memfd 3 pages, i_size 4196", rd(buf, 3 * PG, f, 3 * PG));
    show("readv memfd page 2 only (beyond EOF)", rd(buf, PG, f + 2 * PG, PG));
    show("writev memfd 3 pages, i_size 4196", wr(buf, 3 * PG, f, 3 * PG));
    char *p = mmap(H + 40 * PG, 3 * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    show("writev memfd MAP_PRIVATE PROT_READ", wr(buf, PG, p, PG));
    memset(buf, 'W', PG);
    char *pw = mmap(H + 44 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
    show("writev memfd MAP_PRIVATE RW (COW)", wr(buf, PG, pw, PG));
    printf("  after COW: mapping[0]=%c file[0]=%c\n", pw[0], f[0]);
  }
  /* validation */
  {
    struct iovec lv = { buf, PG }, rv = { a, PG };
    errno = 0; show("flags=1", syscall(SYS_process_vm_readv, me, &lv, 1UL, &rv, 1UL, 1UL));
    errno = 0; show("flags=1, lvec NULL", syscall(SYS_process_vm_readv, me, NULL, 1UL, &rv, 1UL, 1UL));
    errno = 0; show("lvec NULL liovcnt 1", syscall(SYS_process_vm_readv, me, NULL, 1UL, &rv, 1UL, 0UL));
    errno = 0; show("rvec NULL riovcnt 1", syscall(SYS_process_vm_readv, me, &lv, 1UL, NULL, 1UL, 0UL));
    errno = 0; show("liovcnt 0, rvec NULL riovcnt 5000", syscall(SYS_process_vm_readv, me, &lv, 0UL, NULL, 5000UL, 0UL));
    errno = 0; show("riovcnt 0", syscall(SYS_process_vm_readv, me, &lv, 1UL, &rv, 0UL, 0UL));
    static struct iovec big[1100];
    for (int i = 0; i < 1100; i++) { big[i].iov_base = buf; big[i].iov_len = 1; }
    errno = 0; show("liovcnt 1025", syscall(SYS_process_vm_readv, me, big, 1025UL, &rv, 1UL, 0UL));
    errno = 0; show("liovcnt 1024", syscall(SYS_process_vm_readv, me, big, 1024UL, &rv, 1UL, 0UL));
    errno = 0; show("riovcnt 1025", syscall(SYS_process_vm_readv, me, &lv, 1UL, big, 1025UL, 0UL));
    errno = 0; show("liovcnt 2^32+1 (truncated to 1)", syscall(SYS_process_vm_readv, me, &lv, (1UL << 32) + 1, &rv, 1UL, 0UL));
    struct iovec neg = { a, (size_t)-1 };
    errno = 0; show("remote iov_len -1", syscall(SYS_process_vm_readv, me, &lv, 1UL, &neg, 1UL, 0UL));
    struct iovec lneg = { buf, (size_t)-1 };
    errno = 0; show("local iov_len -1 (1 seg)", syscall(SYS_process_vm_readv, me, &lneg, 1UL, &rv, 1UL, 0UL));
    struct iovec lneg2[2] = { { buf, 10 }, { buf, (size_t)-1 } };
    errno = 0; show("local iov_len -1 (2 segs)", syscall(SYS_process_vm_readv, me, lneg2, 2UL, &rv, 1UL, 0UL));
    struct iovec lhuge[2] = { { buf, 10 }, { buf, 1UL << 62 } };
    errno = 0; show("local iov_len 2^62 (2 segs)", syscall(SYS_process_vm_readv, me, lhuge, 2UL, &rv, 1UL, 0UL));
    struct iovec lhuge1 = { buf, 1UL << 62 };
    errno = 0; show("local iov_len 2^62 (1 seg)", syscall(SYS_process_vm_readv, me, &lhuge1, 1UL, &rv, 1UL, 0UL));
    struct iovec rhuge = { a, 1UL << 62 };
    errno = 0; show("remote iov_len 2^62 (a, mapped first)", syscall(SYS_process_vm_readv, me, &lv, 1UL, &rhuge, 1UL, 0UL));
    struct iovec rk = { (void *)0xffff800000000000UL, PG };
    errno = 0; show("remote kernel address", syscall(SYS_process_vm_readv, me, &lv, 1UL, &rk, 1UL, 0UL));
    struct iovec rwrap = { (void *)0xfffffffffffff000UL, 0x2000 };
    errno = 0; show("remote wrapping range", syscall(SYS_process_vm_readv, me, &lv, 1UL, &rwrap, 1UL, 0UL));
    errno = 0; show("pid 999999", syscall(SYS_process_vm_readv, 999999, &lv, 1UL, &rv, 1UL, 0UL));
    errno = 0; show("pid 999999 flags 1", syscall(SYS_process_vm_readv, 999999, &lv, 1UL, &rv, 1UL, 1UL));
    errno = 0; show("pid 999999 riovcnt 1025", syscall(SYS_process_vm_readv, 999999, &lv, 1UL, big, 1025UL, 0UL));
    struct iovec r0 = { a + PG, 0 };
    errno = 0; show("pid 999999 remote len 0", syscall(SYS_process_vm_readv, 999999, &lv, 1UL, &r0, 1UL, 0UL));
  }
  /* contents check */
  {
    memset(buf, 0, PG);
    a[5 * PG + 7] = 'x';
    ssize_t r = rd(buf, 16, a + 5 * PG, 16);
    printf("contents: r=%zd buf[7]=%c buf[0]=%c\n", r, buf[7], buf[0]);
  }
  return 0;
}
