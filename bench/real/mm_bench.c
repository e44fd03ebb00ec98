// SPDX-License-Identifier: GPL-2.0-only
/*
 * mm_bench: the real-kernel side of `npm run bench -- mm` (bench/src/suites/mm.ts).
 *
 * Runs the mm suite's cases on the running Linux kernel, timing each with
 * clock_gettime(CLOCK_MONOTONIC) around the operation alone (setup and teardown are untimed, as the
 * simulator's `prepare` is), and prints one JSON object on stdout:
 *
 *   {"kernel": "6.18.x", "cases": [{"name": NAME, "ms": MEDIAN, "min_ms": MIN, "max_ms": MAX,
 *     "samples": N, "ops": OPS}, ...]}
 *
 * `ms` is the median over the samples of one operation's time: the timed run divided by `ops`
 * (the fault cases fault NR_FAULT pages per run and report the time per fault). When memfd does not
 * work it prints {"error": "memfd_create: ..."} and exits 0, so that the caller can say why there
 * is no comparison. The case names are the simulator's, character for character.
 *
 * Usage: mm_bench [--samples N]   (default 7)
 *
 * Build: cc -O2 -Wall -Wextra -std=gnu11 -o mm_bench mm_bench.c (the bench command does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE_SIZE 4096UL
/* Pages faulted per run of a fault case (64 MiB): the result is per fault. */
#define NR_FAULT 16384UL
/* 1 GiB of 4 KiB pages. */
#define NR_GIB 262144UL
#define MAX_SAMPLES 101

static void die(const char *what)
{
	fprintf(stderr, "mm_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static volatile unsigned char sink;

/* A load of one byte from each of `nr` pages at `p`: a fault per page that is not mapped. */
static void load_pages(const unsigned char *p, unsigned long nr)
{
	unsigned char s = 0;

	for (unsigned long i = 0; i < nr; i++)
		s += *(volatile const unsigned char *)(p + i * PAGE_SIZE);
	sink = s;
}

/* An empty memfd of `nr` pages (ftruncate), or -1 with errno. */
static int memfd_of(unsigned long nr)
{
	int fd = memfd_create("mm_bench", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, nr * PAGE_SIZE))
		die("ftruncate");
	return fd;
}

static void *map(unsigned long nr, int flags, int fd)
{
	void *p = mmap(NULL, nr * PAGE_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	/* 4 KiB pages whatever the THP settings say, as the simulator's cases ask for */
	if (madvise(p, nr * PAGE_SIZE, MADV_NOHUGEPAGE))
		die("madvise(MADV_NOHUGEPAGE)");
	return p;
}

/*
 * The state of the 1 GiB cases: a memfd of 1 GiB, fallocated, mapped MAP_SHARED and read once
 * page by page, so that all 262144 pages are in the page cache (dirty, as fallocate leaves them)
 * and mapped by a PTE each.
 */
struct gib {
	int fd;
	unsigned char *p;
};

static struct gib gib_prepare(void)
{
	struct gib g;

	g.fd = memfd_of(NR_GIB);
	if (g.fd < 0)
		die("memfd_create");
	if (fallocate(g.fd, 0, 0, NR_GIB * PAGE_SIZE))
		die("fallocate");
	g.p = map(NR_GIB, MAP_SHARED, g.fd);
	load_pages(g.p, NR_GIB);
	return g;
}

static void gib_release(struct gib g)
{
	munmap(g.p, NR_GIB * PAGE_SIZE);
	close(g.fd);
}

/* Each case: one sample, returning the timed part in ms. */

static double fault_memfd_load(void)
{
	int fd = memfd_of(NR_FAULT);
	unsigned char *p;
	double t;

	if (fd < 0)
		die("memfd_create");
	p = map(NR_FAULT, MAP_SHARED, fd);
	t = now_ms();
	load_pages(p, NR_FAULT);
	t = now_ms() - t;
	munmap(p, NR_FAULT * PAGE_SIZE);
	close(fd);
	return t;
}

static double fault_anon_load(void)
{
	unsigned char *p = map(NR_FAULT, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	double t = now_ms();

	load_pages(p, NR_FAULT);
	t = now_ms() - t;
	munmap(p, NR_FAULT * PAGE_SIZE);
	return t;
}

static double punch_hole_gib(void)
{
	struct gib g = gib_prepare();
	double t = now_ms();

	if (fallocate(g.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, NR_GIB * PAGE_SIZE))
		die("fallocate(PUNCH_HOLE)");
	t = now_ms() - t;
	gib_release(g);
	return t;
}

/*
 * try_to_unmap from user space: MADV_PAGEOUT reclaims the mapping's folios, and reclaim
 * (shrink_folio_list()) unmaps each mapped folio with try_to_unmap() before writing it out. With
 * no swap the shmem writeout fails and the folio stays in the page cache, unmapped: the end state
 * of try_to_unmap() on every folio. The kernel also pays the LRU isolation and the failed writeout.
 */
static double try_to_unmap_gib(void)
{
	struct gib g = gib_prepare();
	double t = now_ms();

	if (madvise(g.p, NR_GIB * PAGE_SIZE, MADV_PAGEOUT))
		die("madvise(MADV_PAGEOUT)");
	t = now_ms() - t;
	gib_release(g);
	return t;
}

struct bench_case {
	const char *name;
	double (*run)(void);
	unsigned long ops;
};

static const struct bench_case cases[] = {
	{ "fault: load of an unmapped page of a memfd MAP_SHARED mapping", fault_memfd_load, NR_FAULT },
	{ "fault: load of an unmapped page of anonymous memory", fault_anon_load, NR_FAULT },
	{ "punch hole: 1 GiB of memfd, all 262144 pages mapped", punch_hole_gib, 1 },
	{ "try_to_unmap: 1 GiB of memfd, all 262144 pages mapped (real kernel: MADV_PAGEOUT)", try_to_unmap_gib, 1 },
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* A JSON string: the case names hold no character that needs escaping but '"' and '\'. */
static void put_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	int samples = 7;
	struct utsname u;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
			samples = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: mm_bench [--samples N]\n");
			return 2;
		}
	}
	if (samples < 1 || samples > MAX_SAMPLES) {
		fprintf(stderr, "mm_bench: --samples must be in [1, %d]\n", MAX_SAMPLES);
		return 2;
	}
	fd = memfd_create("mm_bench", MFD_CLOEXEC);
	if (fd < 0) {
		printf("{\"error\": \"memfd_create: %s\"}\n", strerror(errno));
		return 0;
	}
	close(fd);
	if (uname(&u))
		die("uname");

	printf("{\"kernel\": ");
	put_json_string(u.release);
	printf(", \"cases\": [");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		double t[MAX_SAMPLES];

		for (int s = 0; s < samples; s++)
			t[s] = cases[c].run() / cases[c].ops;
		qsort(t, samples, sizeof(t[0]), cmp_double);
		printf("%s\n  {\"name\": ", c ? "," : "");
		put_json_string(cases[c].name);
		printf(", \"ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, \"samples\": %d, \"ops\": %lu}",
		       t[samples / 2], t[0], t[samples - 1], samples, cases[c].ops);
		fflush(stdout);
	}
	printf("\n]}\n");
	return 0;
}
