/* FOLL_LONGTERM pins (io_uring fixed buffers: pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)) and a
 * short-term read pin (process_vm_readv) of the huge zero folio and of a THP made read-only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define PS 4096UL
#define HP (2UL << 20)

static uint64_t pfn(void *p) {
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	pread(fd, &e, 8, (uintptr_t)p / PS * 8);
	close(fd);
	return e & (1ULL << 63) ? e & ((1ULL << 55) - 1) : 0;
}

static long anon_huge_kb(void *p) {
	char line[256];
	char want[64];
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	while (fgets(line, sizeof line, f)) {
		if (strchr(line, '-') && strchr(line, ' ') && line[0] != ' ' && strncmp(line, "AnonHuge", 8)) {
			if (strstr(line, ":") == NULL || strchr(line, '-') < strchr(line, ' ')) in = !strncmp(line, want, strlen(want));
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
	}
	fclose(f);
	return kb;
}

static char *region(int prot) {
	char *m = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a = (char *)(((uintptr_t)m + HP - 1) & ~(HP - 1));
	munmap(m, a - m);
	munmap(a + HP, m + 2 * HP - (a + HP));
	madvise(a, HP, MADV_HUGEPAGE);
	mprotect(a, HP, prot);
	return a;
}

static int ring(void) {
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	return syscall(__NR_io_uring_setup, 4, &p);
}

static int reg(int r, void *base, size_t len) {
	struct iovec iov = { base, len };
	int ret = syscall(__NR_io_uring_register, r, IORING_REGISTER_BUFFERS, &iov, 1);
	return ret < 0 ? -errno : ret;
}

static void unreg(int r) { syscall(__NR_io_uring_register, r, IORING_UNREGISTER_BUFFERS, NULL, 0); }

int main(void) {
	int r = ring();
	volatile char c;
	if (r < 0) { perror("io_uring_setup"); return 1; }

	/* 1: huge zero folio, io_uring (FOLL_WRITE|FOLL_LONGTERM) pin of pages 3..4 */
	char *a = region(PROT_READ | PROT_WRITE);
	c = a[5 * PS];
	uint64_t z0 = pfn(a), z5 = pfn(a + 5 * PS);
	printf("huge zero: pfn[5]-pfn[0]=%ld AnonHugePages=%ld kB\n", (long)(z5 - z0), anon_huge_kb(a));
	char buf[3 * PS];
	struct iovec l = { buf, sizeof buf }, rv = { a + 100, sizeof buf };
	memset(buf, 0xaa, sizeof buf);
	ssize_t n = process_vm_readv(getpid(), &l, 1, &rv, 1, 0);
	printf("process_vm_readv=%zd allzero=%d pfn0 unchanged=%d\n", n, buf[0] == 0 && buf[sizeof buf - 1] == 0, pfn(a) == z0);
	printf("register rw huge zero=%d\n", reg(r, a + 3 * PS, 2 * PS));
	uint64_t n0 = pfn(a), n3 = pfn(a + 3 * PS), n9 = pfn(a + 9 * PS);
	printf("after: pfn0 changed=%d pfn3-pfn0=%ld pfn9-pfn0=%ld AnonHugePages=%ld kB byte=%d\n", n0 != z0, (long)(n3 - n0),
	       (long)(n9 - n0), anon_huge_kb(a), a[3 * PS]);
	unreg(r);

	/* 2: huge zero folio in a PROT_READ mapping */
	char *b = region(PROT_READ);
	c = b[0];
	printf("PROT_READ huge zero: AnonHugePages=%ld kB register=%d\n", anon_huge_kb(b), reg(r, b, PS));

	/* 3: written THP, mprotect(PROT_READ) */
	char *t = region(PROT_READ | PROT_WRITE);
	t[2 * PS] = 5;
	uint64_t t0 = pfn(t);
	mprotect(t, HP, PROT_READ);
	printf("THP then PROT_READ: AnonHugePages=%ld kB register=%d\n", anon_huge_kb(t), reg(r, t + 2 * PS, PS));
	l.iov_len = 1; rv.iov_base = t + 2 * PS; rv.iov_len = 1;
	n = process_vm_readv(getpid(), &l, 1, &rv, 1, 0);
	printf("process_vm_readv=%zd byte=%d pfn unchanged=%d AnonHugePages=%ld kB\n", n, buf[0], pfn(t) == t0, anon_huge_kb(t));
	mprotect(t, HP, PROT_READ | PROT_WRITE);
	printf("THP rw again: register=%d pfn unchanged=%d\n", reg(r, t + 2 * PS, PS), pfn(t) == t0);
	unreg(r);
	(void)c;
	return 0;
}
