/* prctl(PR_MCE_KILL) and MADV_HWPOISON on Linux 6.18 without CONFIG_MEMORY_FAILURE (run as root):
 * the machine-check kill policy calls, including a PR_MCE_KILL_SET with a bad policy. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif

static void call(const char *what, int r) {
	printf("%-44s = %d errno %s\n", what, r, r < 0 ? strerrorname_np(errno) : "-");
}

int main(void) {
	call("PR_MCE_KILL_GET (initial)", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL SET EARLY", prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	call("PR_MCE_KILL_GET", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL SET LATE", prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0));
	call("PR_MCE_KILL_GET", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL SET DEFAULT", prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_DEFAULT, 0, 0));
	call("PR_MCE_KILL_GET", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL SET 5 (bad policy)", prctl(PR_MCE_KILL, PR_MCE_KILL_SET, 5, 0, 0));
	call("PR_MCE_KILL_GET after the bad SET", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL CLEAR", prctl(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 0, 0, 0));
	call("PR_MCE_KILL_GET", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL CLEAR with arg3 1", prctl(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 1, 0, 0));
	call("PR_MCE_KILL 7 (bad action)", prctl(PR_MCE_KILL, 7, 0, 0, 0));
	call("PR_MCE_KILL SET EARLY arg4 1", prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 1, 0));
	call("PR_MCE_KILL_GET after arg4", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
	call("PR_MCE_KILL_GET arg2 1", prctl(PR_MCE_KILL_GET, 1, 0, 0, 0));
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	call("madvise(MADV_HWPOISON)", madvise(p, 4096, MADV_HWPOISON));
	call("madvise(MADV_SOFT_OFFLINE)", madvise(p, 4096, MADV_SOFT_OFFLINE));
	return 0;
}
