// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem_bench: the real-kernel side of `npm run bench -- conversion` (bench/src/suites/conversion.ts),
 * for the cases a kernel without private VM types can run: guest_memfd with GUEST_MEMFD_FLAG_MMAP |
 * GUEST_MEMFD_FLAG_INIT_SHARED on a KVM_X86_DEFAULT_VM (Linux 6.18), mapped MAP_SHARED.
 *
 * Output is mm_bench.c's: one JSON object with the kernel release and, per case, the median time of
 * one operation over the samples, the case names being the simulator's character for character.
 * When /dev/kvm or guest_memfd mmap does not work it prints {"error": "..."} and exits 0.
 *
 * Usage: gmem_bench [--samples N]   (default 7)
 *
 * Build: cc -O2 -Wall -Wextra -std=gnu11 -o gmem_bench gmem_bench.c (the bench command does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* include/uapi/linux/kvm.h of 6.18, for older installed headers. */
struct gmem_bench_create_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define GMEM_BENCH_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct gmem_bench_create_guest_memfd)
#define GMEM_BENCH_FLAG_MMAP (1ULL << 0)
#define GMEM_BENCH_FLAG_INIT_SHARED (1ULL << 1)

#define PAGE_SIZE 4096UL
/* 1 GiB of 4 KiB pages. */
#define NR_GIB 262144UL
#define MAX_SAMPLES 101

static int kvm_fd = -1;

static void die(const char *what)
{
	fprintf(stderr, "gmem_bench: %s: %s\n", what, strerror(errno));
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

/* A default VM with a 1 GiB guest_memfd (MMAP | INIT_SHARED) mapped MAP_SHARED. */
struct gib {
	int vm;
	int fd;
	unsigned char *p;
};

/* 0, or -1 with errno (the first case's failure says why there is no comparison). */
static int gib_try_prepare(struct gib *g)
{
	struct gmem_bench_create_guest_memfd args = {
		.size = NR_GIB * PAGE_SIZE,
		.flags = GMEM_BENCH_FLAG_MMAP | GMEM_BENCH_FLAG_INIT_SHARED,
	};

	g->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (g->vm < 0)
		return -1;
	g->fd = ioctl(g->vm, GMEM_BENCH_CREATE_GUEST_MEMFD, &args);
	if (g->fd < 0)
		return -1;
	g->p = mmap(NULL, NR_GIB * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	if (g->p == MAP_FAILED)
		return -1;
	return 0;
}

static struct gib gib_prepare(void)
{
	struct gib g;

	if (gib_try_prepare(&g))
		die("guest_memfd");
	return g;
}

static void gib_release(struct gib g)
{
	munmap(g.p, NR_GIB * PAGE_SIZE);
	close(g.fd);
	close(g.vm);
}

static double gmem_fault(void)
{
	struct gib g = gib_prepare();
	double t = now_ms();

	load_pages(g.p, NR_GIB);
	t = now_ms() - t;
	gib_release(g);
	return t;
}

static double gmem_punch_hole(void)
{
	struct gib g = gib_prepare();
	double t;

	load_pages(g.p, NR_GIB);
	t = now_ms();
	if (fallocate(g.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, NR_GIB * PAGE_SIZE))
		die("fallocate(PUNCH_HOLE)");
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
	{ "gmem fault: load of an unmapped page of a 1 GiB guest_memfd MAP_SHARED mapping (MMAP | INIT_SHARED)", gmem_fault, NR_GIB },
	{ "gmem punch hole: 1 GiB of guest_memfd, all 262144 pages mapped", gmem_punch_hole, 1 },
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
	struct gib g;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
			samples = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: gmem_bench [--samples N]\n");
			return 2;
		}
	}
	if (samples < 1 || samples > MAX_SAMPLES) {
		fprintf(stderr, "gmem_bench: --samples must be in [1, %d]\n", MAX_SAMPLES);
		return 2;
	}
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		printf("{\"error\": \"open /dev/kvm: %s\"}\n", strerror(errno));
		return 0;
	}
	if (gib_try_prepare(&g)) {
		printf("{\"error\": \"guest_memfd with MMAP | INIT_SHARED on a default VM: %s\"}\n", strerror(errno));
		return 0;
	}
	gib_release(g);
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
