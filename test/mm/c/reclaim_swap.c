/* Reclaim with a swap area on Linux 6.18: a 16 MiB swap file is switched on for the duration of
 * the program (swapon(2) / swapoff(2)); anonymous and memfd (shmem) pages are paged out with
 * MADV_PAGEOUT and read back. Seen through /proc/self/pagemap, /proc/kpageflags, mincore(),
 * fstat() and /proc/swaps (run as root). Swap readahead is switched off for the run
 * (/proc/sys/vm/page-cluster 0, restored after) and the process stays on CPU 0, so that the
 * per-CPU LRU batches are the ones madvise() drains. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sched.h>
#include <unistd.h>

#define PG 4096UL
#define SWAPFILE "/tmp/cocosim-probe-swapfile"
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
	printf("%-30s present=%d swapped=%d", what, present, swapped);
	if (present) {
		uint64_t f = kflags(e & ((1ULL << 55) - 1));
		printf(" active=%d dirty=%d swapcache=%d swapbacked=%d", (int)(f >> 6) & 1, (int)(f >> 4) & 1,
		       (int)(f >> 13) & 1, (int)(f >> 14) & 1);
	} else if (swapped) {
		printf(" swp_type=%llu swp_offset=%llu", (unsigned long long)(e & 0x1f),
		       (unsigned long long)((e >> 5) & ((1ULL << 50) - 1)));
	}
	printf("\n");
}
static void swaps(const char *what) {
	char line[256];
	FILE *f = fopen("/proc/swaps", "r");
	fgets(line, sizeof(line), f);
	printf("%s: ", what);
	if (fgets(line, sizeof(line), f)) {
		char name[128], type[32];
		long size, used, prio;
		sscanf(line, "%127s %31s %ld %ld %ld", name, type, &size, &used, &prio);
		printf("type=%s size=%ld used=%ld prio=%ld\n", type, size, used, prio);
	} else {
		printf("(none)\n");
	}
	fclose(f);
}

int main(void) {
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one); /* one CPU: its LRU batches are the ones madvise() drains */
	pm = open("/proc/self/pagemap", O_RDONLY);
	kpf = open("/proc/kpageflags", O_RDONLY);
	int sf = open(SWAPFILE, O_CREAT | O_TRUNC | O_RDWR, 0600);
	if (sf < 0 || fallocate(sf, 0, 0, 4096 * PG)) return perror("swapfile"), 1;
	close(sf);
	if (system("mkswap -q " SWAPFILE) || swapon(SWAPFILE, 0)) return perror("swapon"), 1;
	/* no swap readahead, as the simulator (restored at the end) */
	char old_cluster[16] = "3\n";
	FILE *pc = fopen("/proc/sys/vm/page-cluster", "r+");
	fgets(old_cluster, sizeof(old_cluster), pc);
	rewind(pc);
	fputs("0\n", pc);
	fclose(pc);
	swaps("swapon");

	char *a = mmap(NULL, 6 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int k = 0; k < 6; k++) memset(a + k * PG, 0x40 + k, PG);
	memset(a + 3 * PG, 0, PG); /* written with zeros: zeromap */
	printf("MADV_PAGEOUT anon = %d\n", madvise(a, 6 * PG, MADV_PAGEOUT));
	show("anon page 0 after PAGEOUT", a);
	show("anon page 1 after PAGEOUT", a + PG);
	show("anon zero page after PAGEOUT", a + 3 * PG);
	show("anon page 5 after PAGEOUT", a + 5 * PG);
	swaps("after anon PAGEOUT");
	printf("anon data %s %s %s zero:%d\n", a[10] == 0x40 ? "ok" : "BAD", a[PG + 10] == 0x41 ? "ok" : "BAD",
	       a[2 * PG + 10] == 0x42 ? "ok" : "BAD", a[3 * PG + 10]);
	show("anon page 0 after read", a);
	swaps("after reads of pages 0-3");
	a[4 * PG + 1] = 1; /* a write fault on a swap entry */
	show("anon page 4 after write fault", a + 4 * PG);
	printf("anon page 4 data %s\n", a[4 * PG] == 0x44 && a[4 * PG + 1] == 1 ? "ok" : "BAD");
	swaps("after write fault");
	printf("MADV_FREE swapped page 5 = %d\n", madvise(a + 5 * PG, PG, MADV_FREE));
	show("page 5 after MADV_FREE", a + 5 * PG);
	swaps("after MADV_FREE");
	printf("page 5 reads %d\n", a[5 * PG + 10]);

	int fd = memfd_create("r", 0);
	ftruncate(fd, 4 * PG);
	char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memset(m, 0x33, PG);
	memset(m + PG, 0x44, PG);
	(void)*(volatile char *)(m + 2 * PG);
	struct stat st;
	unsigned char vec[3];
	fstat(fd, &st);
	printf("memfd st_blocks before PAGEOUT = %lld\n", (long long)st.st_blocks);
	printf("MADV_PAGEOUT memfd = %d\n", madvise(m, 3 * PG, MADV_PAGEOUT));
	mincore(m, 3 * PG, vec);
	fstat(fd, &st);
	printf("memfd mincore after PAGEOUT %d %d %d st_blocks=%lld\n", vec[0] & 1, vec[1] & 1, vec[2] & 1, (long long)st.st_blocks);
	show("memfd page 0 after PAGEOUT", m);
	swaps("after memfd PAGEOUT");
	char b[2];
	ssize_t n = pread(fd, b, 1, PG);
	printf("pread memfd page 1 = %zd byte 0x%x\n", n, (unsigned char)b[0]);
	mincore(m, 3 * PG, vec);
	printf("memfd mincore after pread %d %d %d\n", vec[0] & 1, vec[1] & 1, vec[2] & 1);
	swaps("after pread");
	printf("memfd page 0 %s\n", m[7] == 0x33 ? "ok" : "BAD");
	show("memfd page 0 after read", m);
	swaps("after memfd read");
	munmap(a, 6 * PG);
	munmap(m, 4 * PG);
	close(fd);
	swaps("after munmap/close");
	if (swapoff(SWAPFILE)) perror("swapoff");
	pc = fopen("/proc/sys/vm/page-cluster", "w");
	fputs(old_cluster, pc);
	fclose(pc);
	unlink(SWAPFILE);
	swaps("swapoff");
	return 0;
}
