/* Reclaim without swap on Linux 6.18 (no swap area): what MADV_PAGEOUT and MADV_COLD do to an
 * anonymous page and to a memfd (shmem) page, seen through /proc/self/pagemap and
 * /proc/kpageflags (run as root). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <unistd.h>
#include <sys/stat.h>

#define PG 4096UL
static int pm, kpf;

static uint64_t pagemap(void *p) {
	uint64_t e = 0;
	pread(pm, &e, 8, ((uintptr_t)p / PG) * 8);
	return e;
}
static uint64_t kflags(uint64_t pfn) {
	uint64_t f = 0;
	pread(kpf, &f, 8, pfn * 8);
	return f;
}
static void show(const char *what, void *p) {
	uint64_t e = pagemap(p);
	int present = (e >> 63) & 1, swapped = (e >> 62) & 1;
	printf("%-28s present=%d swapped=%d", what, present, swapped);
	if (present) {
		uint64_t f = kflags(e & ((1ULL << 55) - 1));
		printf(" lru=%d active=%d referenced=%d dirty=%d swapcache=%d swapbacked=%d unevictable=%d mlocked=%d",
		       (int)(f >> 5) & 1, (int)(f >> 6) & 1, (int)(f >> 2) & 1, (int)(f >> 4) & 1,
		       (int)(f >> 13) & 1, (int)(f >> 14) & 1, (int)(f >> 18) & 1, (int)(f >> 33) & 1);
	} else if (swapped) {
		printf(" swp_type=%llu swp_offset=%llu", (unsigned long long)(e & 0x1f),
		       (unsigned long long)((e >> 5) & ((1ULL << 50) - 1)));
	}
	printf("\n");
}

int main(void) {
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one); /* one CPU: its LRU batches are the ones madvise() drains */
	pm = open("/proc/self/pagemap", O_RDONLY);
	kpf = open("/proc/kpageflags", O_RDONLY);
	char *a = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(a, 0x5a, PG);
	show("anon written", a);
	printf("MADV_COLD anon = %d\n", madvise(a, PG, MADV_COLD));
	show("anon after COLD", a);
	printf("MADV_PAGEOUT anon = %d\n", madvise(a, PG, MADV_PAGEOUT));
	show("anon after PAGEOUT", a);
	printf("anon data %s\n", a[100] == 0x5a ? "intact" : "LOST");
	show("anon after read", a);

	int fd = memfd_create("r", 0);
	ftruncate(fd, 4 * PG);
	char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memset(m, 0x33, PG);
	(void)*(volatile char *)(m + PG); /* a read-faulted (clean) page */
	show("memfd written", m);
	show("memfd read-only page", m + PG);
	struct stat st;
	unsigned char vec[2];
	fstat(fd, &st);
	printf("memfd st_blocks before PAGEOUT = %lld\n", (long long)st.st_blocks);
	printf("MADV_PAGEOUT memfd = %d\n", madvise(m, 2 * PG, MADV_PAGEOUT));
	mincore(m, 2 * PG, vec);
	fstat(fd, &st);
	printf("memfd mincore after PAGEOUT: written=%d clean=%d st_blocks=%lld\n", vec[0] & 1, vec[1] & 1, (long long)st.st_blocks);
	show("memfd after PAGEOUT", m);
	show("memfd clean after PAGEOUT", m + PG);
	printf("memfd data %s\n", m[100] == 0x33 ? "intact" : "LOST");
	show("memfd after read", m);
	char b = 0x7f;
	ssize_t n = pread(fd, &b, 1, PG);
	printf("pread clean page = %zd byte %d\n", n, b);

	char *l = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mlock(l, PG);
	show("mlocked anon", l);
	int r = madvise(l, PG, MADV_PAGEOUT);
	printf("MADV_PAGEOUT mlocked = %d errno %s\n", r, r ? strerrorname_np(errno) : "-");
	r = madvise(l, PG, MADV_COLD);
	printf("MADV_COLD mlocked = %d errno %s\n", r, r ? strerrorname_np(errno) : "-");
	return 0;
}
