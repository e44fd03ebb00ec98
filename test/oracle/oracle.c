// SPDX-License-Identifier: GPL-2.0-only
/*
 * cocosim-oracle: the kernel oracle of cocosim.
 *
 * Replays the generic part of a cocosim trace (docs/trace-format.md) on the running Linux kernel and
 * prints one result line per call, in the trace format's result form:
 *
 *   {"i": INDEX, "op": NAME, "ret": N, "errno": "EINVAL"?, "signal": "SIGBUS"?, "si_code": "BUS_ADRERR"?,
 *    "data": HEX?, "exit": {...}?, "arg": {...}?, "stat": {...}?}
 *
 * Usage: cocosim-oracle [--header] [--no-check] [TRACE.jsonl | -]
 *
 * Exit status: 0 when every call ran and every `expect` matched, 1 when some `expect` did not match
 * (each mismatch is reported on stderr), 2 on a replayer error (bad JSON, unknown name, unknown op
 * or argument, a trace the oracle cannot replay), reported as "line L, column C: message".
 *
 * Every syscall is issued with syscall(2), so that libc wrappers add no checks of their own; errno is
 * read right after the call. SIGBUS and SIGSEGV raised while a call runs (a `load` or `store`, or
 * anything else) become the call's "signal" instead of killing the oracle. See README.md for the
 * result conventions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/kvm.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "json.h"
#include "sha256.h"
#include "tables.h"

#define PAGE_SIZE 4096UL
#define DATA_INLINE_MAX 4096	/* longer data is printed as {"sha256", "len"} */
#define DATA_MAX (1ULL << 32)	/* largest data / count the oracle allocates */
#define RUN_TIMEOUT 10		/* seconds before a KVM_RUN is interrupted (EINTR) */

/* ------------------------------------------------------------------------------------------------ */
/* Diagnostics                                                                                       */

static const char *trace_name = "<stdin>";
static FILE *out;		/* results: a private dup of stdout, safe from `close` in a trace */
static FILE *diag;		/* diagnostics: a private dup of stderr */

static void __attribute__((noreturn, format(printf, 3, 4)))
die_at(int line, int col, const char *fmt, ...)
{
	va_list ap;

	if (out)
		fflush(out);
	fprintf(diag, "cocosim-oracle: %s: ", trace_name);
	if (line > 0 && col > 0)
		fprintf(diag, "line %d, column %d: ", line, col);
	else if (line > 0)
		fprintf(diag, "line %d: ", line);
	va_start(ap, fmt);
	vfprintf(diag, fmt, ap);
	va_end(ap);
	fputc('\n', diag);
	fflush(diag);
	exit(2);
}

static void __attribute__((noreturn)) on_json_error(int line, int col, const char *msg)
{
	die_at(line, col, "%s", msg);
}

#define die_v(v, ...) die_at((v)->line, (v)->col, __VA_ARGS__)

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die_at(0, 0, "out of memory (%zu bytes)", n);
	return p;
}

/* ------------------------------------------------------------------------------------------------ */
/* Newer uAPI than the 6.1 headers of the build machines (include/uapi/linux/kvm.h, Linux 6.18).      */
/* The oracle's own names, so that newer headers do not clash.                                       */

struct o_kvm_userspace_memory_region {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
};

struct o_kvm_userspace_memory_region2 {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t guest_memfd_offset;
	uint32_t guest_memfd;
	uint32_t pad1;
	uint64_t pad2[14];
};

struct o_kvm_memory_attributes {
	uint64_t address;
	uint64_t size;
	uint64_t attributes;
	uint64_t flags;
};

/* Proposed (guest_memfd in-place conversion v7/v8, a guest_memfd ioctl); not in mainline. */
struct o_kvm_memory_attributes2 {
	uint64_t address;	/* union { address; offset; } */
	uint64_t size;
	uint64_t attributes;
	uint64_t flags;
	uint64_t error_offset;
	uint64_t reserved[11];
};

struct o_kvm_create_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};

struct o_kvm_pre_fault_memory {
	uint64_t gpa;
	uint64_t size;
	uint64_t flags;
	uint64_t padding[5];
};

struct o_kvm_dirty_log {
	uint32_t slot;
	uint32_t padding1;
	uint64_t dirty_bitmap;	/* union { void __user *dirty_bitmap; __u64 padding2; } */
};

struct o_kvm_clear_dirty_log {
	uint32_t slot;
	uint32_t num_pages;
	uint64_t first_page;
	uint64_t dirty_bitmap;	/* union { void __user *dirty_bitmap; __u64 padding2; } */
};

struct o_kvm_coalesced_mmio_zone {
	uint64_t addr;
	uint32_t size;
	uint32_t pio;	/* union { __u32 pad; __u32 pio; } */
};

struct o_kvm_enable_cap {
	uint32_t cap;
	uint32_t flags;
	uint64_t args[4];
	uint8_t pad[64];
};

_Static_assert(sizeof(struct o_kvm_userspace_memory_region) == 32, "kvm_userspace_memory_region");
_Static_assert(sizeof(struct o_kvm_userspace_memory_region2) == 160, "kvm_userspace_memory_region2");
_Static_assert(sizeof(struct o_kvm_memory_attributes) == 32, "kvm_memory_attributes");
_Static_assert(sizeof(struct o_kvm_memory_attributes2) == 128, "kvm_memory_attributes2");
_Static_assert(sizeof(struct o_kvm_create_guest_memfd) == 64, "kvm_create_guest_memfd");
_Static_assert(sizeof(struct o_kvm_pre_fault_memory) == 64, "kvm_pre_fault_memory");
_Static_assert(sizeof(struct o_kvm_enable_cap) == 104, "kvm_enable_cap");
_Static_assert(sizeof(struct o_kvm_dirty_log) == 16, "kvm_dirty_log");
_Static_assert(sizeof(struct o_kvm_coalesced_mmio_zone) == 16, "kvm_coalesced_mmio_zone");
_Static_assert(sizeof(struct o_kvm_clear_dirty_log) == 24, "kvm_clear_dirty_log");

#define O_KVMIO 0xAE
#define O_KVM_GET_API_VERSION		_IO(O_KVMIO, 0x00)
#define O_KVM_CREATE_VM			_IO(O_KVMIO, 0x01)
#define O_KVM_CHECK_EXTENSION		_IO(O_KVMIO, 0x03)
#define O_KVM_GET_VCPU_MMAP_SIZE	_IO(O_KVMIO, 0x04)
#define O_KVM_CREATE_VCPU		_IO(O_KVMIO, 0x41)
#define O_KVM_GET_DIRTY_LOG		_IOW(O_KVMIO, 0x42, struct o_kvm_dirty_log)
#define O_KVM_SET_NR_MMU_PAGES		_IO(O_KVMIO, 0x44)
#define O_KVM_GET_NR_MMU_PAGES		_IO(O_KVMIO, 0x45)
#define O_KVM_SET_USER_MEMORY_REGION	_IOW(O_KVMIO, 0x46, struct o_kvm_userspace_memory_region)
#define O_KVM_SET_TSS_ADDR		_IO(O_KVMIO, 0x47)
#define O_KVM_SET_USER_MEMORY_REGION2	_IOW(O_KVMIO, 0x49, struct o_kvm_userspace_memory_region2)
#define O_KVM_REGISTER_COALESCED_MMIO	_IOW(O_KVMIO, 0x67, struct o_kvm_coalesced_mmio_zone)
#define O_KVM_UNREGISTER_COALESCED_MMIO	_IOW(O_KVMIO, 0x68, struct o_kvm_coalesced_mmio_zone)
#define O_KVM_CREATE_IRQCHIP		_IO(O_KVMIO, 0x60)
#define O_KVM_RUN			_IO(O_KVMIO, 0x80)
#define O_KVM_ENABLE_CAP		_IOW(O_KVMIO, 0xa3, struct o_kvm_enable_cap)
#define O_KVM_CLEAR_DIRTY_LOG		_IOWR(O_KVMIO, 0xc0, struct o_kvm_clear_dirty_log)
#define O_KVM_RESET_DIRTY_RINGS		_IO(O_KVMIO, 0xc7)
#define O_KVM_SET_MEMORY_ATTRIBUTES	_IOW(O_KVMIO, 0xd2, struct o_kvm_memory_attributes)
#define O_KVM_SET_MEMORY_ATTRIBUTES2	_IOWR(O_KVMIO, 0xd2, struct o_kvm_memory_attributes2)
#define O_KVM_CREATE_GUEST_MEMFD	_IOWR(O_KVMIO, 0xd4, struct o_kvm_create_guest_memfd)
#define O_KVM_PRE_FAULT_MEMORY		_IOWR(O_KVMIO, 0xd5, struct o_kvm_pre_fault_memory)

#define O_KVM_EXIT_MMIO		6
#define O_KVM_EXIT_MEMORY_FAULT	39
#define O_KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)

/* ------------------------------------------------------------------------------------------------ */
/* Names of flags and constants (uapi spellings; x86-64 values, shared with arm64 where generic)     */

static const struct name_value const_names[] = {
	/* mman-common.h */
	{ "PROT_NONE", 0x0 }, { "PROT_READ", 0x1 }, { "PROT_WRITE", 0x2 }, { "PROT_EXEC", 0x4 },
	{ "PROT_SEM", 0x8 }, { "PROT_GROWSDOWN", 0x01000000 }, { "PROT_GROWSUP", 0x02000000 },
	{ "MAP_SHARED", 0x01 }, { "MAP_PRIVATE", 0x02 }, { "MAP_SHARED_VALIDATE", 0x03 },
	{ "MAP_DROPPABLE", 0x08 }, { "MAP_TYPE", 0x0f }, { "MAP_FIXED", 0x10 },
	{ "MAP_ANONYMOUS", 0x20 }, { "MAP_ANON", 0x20 }, { "MAP_32BIT", 0x40 },
	{ "MAP_GROWSDOWN", 0x0100 }, { "MAP_DENYWRITE", 0x0800 }, { "MAP_EXECUTABLE", 0x1000 },
	{ "MAP_LOCKED", 0x2000 }, { "MAP_NORESERVE", 0x4000 }, { "MAP_POPULATE", 0x8000 },
	{ "MAP_NONBLOCK", 0x10000 }, { "MAP_STACK", 0x20000 }, { "MAP_HUGETLB", 0x40000 },
	{ "MAP_SYNC", 0x80000 }, { "MAP_FIXED_NOREPLACE", 0x100000 },
	{ "MAP_UNINITIALIZED", 0x4000000 },
	{ "MAP_HUGE_64KB", 16ULL << 26 }, { "MAP_HUGE_2MB", 21ULL << 26 }, { "MAP_HUGE_1GB", 30ULL << 26 },
	{ "MADV_NORMAL", 0 }, { "MADV_RANDOM", 1 }, { "MADV_SEQUENTIAL", 2 }, { "MADV_WILLNEED", 3 },
	{ "MADV_DONTNEED", 4 }, { "MADV_FREE", 8 }, { "MADV_REMOVE", 9 }, { "MADV_DONTFORK", 10 },
	{ "MADV_DOFORK", 11 }, { "MADV_MERGEABLE", 12 }, { "MADV_UNMERGEABLE", 13 },
	{ "MADV_HUGEPAGE", 14 }, { "MADV_NOHUGEPAGE", 15 }, { "MADV_DONTDUMP", 16 },
	{ "MADV_DODUMP", 17 }, { "MADV_WIPEONFORK", 18 }, { "MADV_KEEPONFORK", 19 },
	{ "MADV_COLD", 20 }, { "MADV_PAGEOUT", 21 }, { "MADV_POPULATE_READ", 22 },
	{ "MADV_POPULATE_WRITE", 23 }, { "MADV_DONTNEED_LOCKED", 24 }, { "MADV_COLLAPSE", 25 },
	{ "MADV_HWPOISON", 100 }, { "MADV_SOFT_OFFLINE", 101 }, { "MADV_GUARD_INSTALL", 102 },
	{ "MADV_GUARD_REMOVE", 103 },
	{ "MLOCK_ONFAULT", 0x01 },
	/* memfd.h */
	{ "MFD_CLOEXEC", 0x0001 }, { "MFD_ALLOW_SEALING", 0x0002 }, { "MFD_HUGETLB", 0x0004 },
	{ "MFD_NOEXEC_SEAL", 0x0008 }, { "MFD_EXEC", 0x0010 },
	{ "MFD_HUGE_64KB", 16ULL << 26 }, { "MFD_HUGE_2MB", 21ULL << 26 }, { "MFD_HUGE_1GB", 30ULL << 26 },
	/* fcntl.h */
	{ "F_DUPFD", 0 }, { "F_GETFD", 1 }, { "F_SETFD", 2 }, { "F_GETFL", 3 }, { "F_SETFL", 4 },
	{ "F_DUPFD_CLOEXEC", 1030 }, { "F_ADD_SEALS", 1033 }, { "F_GET_SEALS", 1034 },
	{ "FD_CLOEXEC", 1 },
	{ "SEEK_SET", 0 }, { "SEEK_CUR", 1 }, { "SEEK_END", 2 }, { "SEEK_DATA", 3 }, { "SEEK_HOLE", 4 },
	{ "F_SEAL_SEAL", 0x0001 }, { "F_SEAL_SHRINK", 0x0002 }, { "F_SEAL_GROW", 0x0004 },
	{ "F_SEAL_WRITE", 0x0008 }, { "F_SEAL_FUTURE_WRITE", 0x0010 }, { "F_SEAL_EXEC", 0x0020 },
	{ "O_RDONLY", 00 }, { "O_WRONLY", 01 }, { "O_RDWR", 02 }, { "O_CREAT", 0100 },
	{ "O_EXCL", 0200 }, { "O_NOCTTY", 0400 }, { "O_TRUNC", 01000 }, { "O_APPEND", 02000 },
	{ "O_NONBLOCK", 04000 }, { "O_DSYNC", 010000 }, { "O_DIRECT", 040000 },
	{ "O_LARGEFILE", 0100000 }, { "O_DIRECTORY", 0200000 }, { "O_NOFOLLOW", 0400000 },
	{ "O_NOATIME", 01000000 }, { "O_CLOEXEC", 02000000 }, { "O_SYNC", 04010000 },
	{ "O_PATH", 010000000 },
	/* falloc.h */
	{ "FALLOC_FL_ALLOCATE_RANGE", 0x00 }, { "FALLOC_FL_KEEP_SIZE", 0x01 },
	{ "FALLOC_FL_PUNCH_HOLE", 0x02 }, { "FALLOC_FL_NO_HIDE_STALE", 0x04 },
	{ "FALLOC_FL_COLLAPSE_RANGE", 0x08 }, { "FALLOC_FL_ZERO_RANGE", 0x10 },
	{ "FALLOC_FL_INSERT_RANGE", 0x20 }, { "FALLOC_FL_UNSHARE_RANGE", 0x40 },
	{ "FALLOC_FL_WRITE_ZEROES", 0x80 },
	/* kvm.h */
	{ "KVM_API_VERSION", 12 },
	{ "KVM_MEM_LOG_DIRTY_PAGES", 1ULL << 0 }, { "KVM_MEM_READONLY", 1ULL << 1 },
	{ "KVM_MEM_GUEST_MEMFD", 1ULL << 2 },
	{ "KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE", 1ULL << 0 }, { "KVM_DIRTY_LOG_INITIALLY_SET", 1ULL << 1 },
	{ "KVM_MEMORY_ATTRIBUTE_PRIVATE", 1ULL << 3 }, { "KVM_MEMORY_EXIT_FLAG_PRIVATE", 1ULL << 3 },
	{ "GUEST_MEMFD_FLAG_MMAP", 1ULL << 0 }, { "GUEST_MEMFD_FLAG_INIT_SHARED", 1ULL << 1 },
	{ "KVM_X86_DEFAULT_VM", 0 }, { "KVM_X86_SW_PROTECTED_VM", 1 }, { "KVM_X86_SEV_VM", 2 },
	{ "KVM_X86_SEV_ES_VM", 3 }, { "KVM_X86_SNP_VM", 4 }, { "KVM_X86_TDX_VM", 5 },
	{ NULL, 0 }
};

/* ------------------------------------------------------------------------------------------------ */
/* ioctls: request numbers and the layout of their struct arguments                                  */

struct fdesc {
	const char *name;
	unsigned off, size, count;	/* byte offset, element size, elements (1 = scalar) */
	bool out;			/* written by the kernel: comes back in "arg" */
};

enum argkind { A_NONE, A_INT, A_STRUCT };

struct idesc {
	const char *name;
	unsigned long req;
	enum argkind kind;
	unsigned size;
	const struct fdesc *fields;
};

#define F(S, f, cnt, o) { #f, offsetof(struct S, f), sizeof(((struct S *)0)->f) / (cnt), cnt, o }

static const struct fdesc f_region[] = {
	F(o_kvm_userspace_memory_region, slot, 1, false),
	F(o_kvm_userspace_memory_region, flags, 1, false),
	F(o_kvm_userspace_memory_region, guest_phys_addr, 1, false),
	F(o_kvm_userspace_memory_region, memory_size, 1, false),
	F(o_kvm_userspace_memory_region, userspace_addr, 1, false),
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_region2[] = {
	F(o_kvm_userspace_memory_region2, slot, 1, false),
	F(o_kvm_userspace_memory_region2, flags, 1, false),
	F(o_kvm_userspace_memory_region2, guest_phys_addr, 1, false),
	F(o_kvm_userspace_memory_region2, memory_size, 1, false),
	F(o_kvm_userspace_memory_region2, userspace_addr, 1, false),
	F(o_kvm_userspace_memory_region2, guest_memfd_offset, 1, false),
	F(o_kvm_userspace_memory_region2, guest_memfd, 1, false),
	F(o_kvm_userspace_memory_region2, pad1, 1, false),
	F(o_kvm_userspace_memory_region2, pad2, 14, false),
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_attrs[] = {
	F(o_kvm_memory_attributes, address, 1, false),
	F(o_kvm_memory_attributes, size, 1, false),
	F(o_kvm_memory_attributes, attributes, 1, false),
	F(o_kvm_memory_attributes, flags, 1, false),
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_attrs2[] = {
	F(o_kvm_memory_attributes2, address, 1, false),
	{ "offset", offsetof(struct o_kvm_memory_attributes2, address), 8, 1, false },
	F(o_kvm_memory_attributes2, size, 1, false),
	F(o_kvm_memory_attributes2, attributes, 1, false),
	F(o_kvm_memory_attributes2, flags, 1, false),
	F(o_kvm_memory_attributes2, error_offset, 1, true),
	F(o_kvm_memory_attributes2, reserved, 11, false),
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_gmem[] = {
	F(o_kvm_create_guest_memfd, size, 1, false),
	F(o_kvm_create_guest_memfd, flags, 1, false),
	F(o_kvm_create_guest_memfd, reserved, 6, false),
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_prefault[] = {
	F(o_kvm_pre_fault_memory, gpa, 1, true),
	F(o_kvm_pre_fault_memory, size, 1, true),
	F(o_kvm_pre_fault_memory, flags, 1, false),
	F(o_kvm_pre_fault_memory, padding, 5, false),
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_dirty_log[] = {
	F(o_kvm_dirty_log, slot, 1, false),
	F(o_kvm_dirty_log, padding1, 1, false),
	F(o_kvm_dirty_log, dirty_bitmap, 1, false),
	{ "padding2", offsetof(struct o_kvm_dirty_log, dirty_bitmap), 8, 1, false },
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_clear_dirty_log[] = {
	F(o_kvm_clear_dirty_log, slot, 1, false),
	F(o_kvm_clear_dirty_log, num_pages, 1, false),
	F(o_kvm_clear_dirty_log, first_page, 1, false),
	F(o_kvm_clear_dirty_log, dirty_bitmap, 1, false),
	{ "padding2", offsetof(struct o_kvm_clear_dirty_log, dirty_bitmap), 8, 1, false },
	{ NULL, 0, 0, 0, false }
};

/* struct kvm_regs: KVM_GET_REGS writes every field, KVM_SET_REGS only reads them */
#define REGS_FIELDS(o)                                                                          \
	R(rax, o), R(rbx, o), R(rcx, o), R(rdx, o), R(rsi, o), R(rdi, o), R(rsp, o), R(rbp, o),  \
	R(r8, o), R(r9, o), R(r10, o), R(r11, o), R(r12, o), R(r13, o), R(r14, o), R(r15, o),     \
	R(rip, o), R(rflags, o), { NULL, 0, 0, 0, false }
#define R(f, o) { #f, offsetof(struct kvm_regs, f), 8, 1, o }
static const struct fdesc f_get_regs[] = { REGS_FIELDS(true) };
static const struct fdesc f_set_regs[] = { REGS_FIELDS(false) };
#undef R

static const struct fdesc f_zone[] = {
	F(o_kvm_coalesced_mmio_zone, addr, 1, false),
	F(o_kvm_coalesced_mmio_zone, size, 1, false),
	F(o_kvm_coalesced_mmio_zone, pio, 1, false),
	{ "pad", offsetof(struct o_kvm_coalesced_mmio_zone, pio), 4, 1, false },
	{ NULL, 0, 0, 0, false }
};

static const struct fdesc f_enable_cap[] = {
	F(o_kvm_enable_cap, cap, 1, false),
	F(o_kvm_enable_cap, flags, 1, false),
	F(o_kvm_enable_cap, args, 4, false),
	F(o_kvm_enable_cap, pad, 64, false),
	{ NULL, 0, 0, 0, false }
};

static const struct idesc ioctls[] = {
	{ "FIONCLEX", 0x5450, A_NONE, 0, NULL },
	{ "FIOCLEX", 0x5451, A_NONE, 0, NULL },
	{ "KVM_GET_API_VERSION", O_KVM_GET_API_VERSION, A_NONE, 0, NULL },
	{ "KVM_CREATE_VM", O_KVM_CREATE_VM, A_INT, 0, NULL },
	{ "KVM_CHECK_EXTENSION", O_KVM_CHECK_EXTENSION, A_INT, 0, NULL },
	{ "KVM_GET_VCPU_MMAP_SIZE", O_KVM_GET_VCPU_MMAP_SIZE, A_NONE, 0, NULL },
	{ "KVM_CREATE_VCPU", O_KVM_CREATE_VCPU, A_INT, 0, NULL },
	{ "KVM_GET_DIRTY_LOG", O_KVM_GET_DIRTY_LOG, A_STRUCT, sizeof(struct o_kvm_dirty_log), f_dirty_log },
	{ "KVM_SET_NR_MMU_PAGES", O_KVM_SET_NR_MMU_PAGES, A_INT, 0, NULL },
	{ "KVM_GET_NR_MMU_PAGES", O_KVM_GET_NR_MMU_PAGES, A_NONE, 0, NULL },
	{ "KVM_SET_USER_MEMORY_REGION", O_KVM_SET_USER_MEMORY_REGION, A_STRUCT,
	  sizeof(struct o_kvm_userspace_memory_region), f_region },
	{ "KVM_SET_TSS_ADDR", O_KVM_SET_TSS_ADDR, A_INT, 0, NULL },
	{ "KVM_SET_USER_MEMORY_REGION2", O_KVM_SET_USER_MEMORY_REGION2, A_STRUCT,
	  sizeof(struct o_kvm_userspace_memory_region2), f_region2 },
	{ "KVM_REGISTER_COALESCED_MMIO", O_KVM_REGISTER_COALESCED_MMIO, A_STRUCT,
	  sizeof(struct o_kvm_coalesced_mmio_zone), f_zone },
	{ "KVM_UNREGISTER_COALESCED_MMIO", O_KVM_UNREGISTER_COALESCED_MMIO, A_STRUCT,
	  sizeof(struct o_kvm_coalesced_mmio_zone), f_zone },
	{ "KVM_CREATE_IRQCHIP", O_KVM_CREATE_IRQCHIP, A_NONE, 0, NULL },
	{ "KVM_RUN", O_KVM_RUN, A_NONE, 0, NULL },
	{ "KVM_GET_REGS", KVM_GET_REGS, A_STRUCT, sizeof(struct kvm_regs), f_get_regs },
	{ "KVM_SET_REGS", KVM_SET_REGS, A_STRUCT, sizeof(struct kvm_regs), f_set_regs },
	{ "KVM_ENABLE_CAP", O_KVM_ENABLE_CAP, A_STRUCT, sizeof(struct o_kvm_enable_cap), f_enable_cap },
	{ "KVM_CLEAR_DIRTY_LOG", O_KVM_CLEAR_DIRTY_LOG, A_STRUCT, sizeof(struct o_kvm_clear_dirty_log),
	  f_clear_dirty_log },
	{ "KVM_RESET_DIRTY_RINGS", O_KVM_RESET_DIRTY_RINGS, A_NONE, 0, NULL },
	{ "KVM_SET_MEMORY_ATTRIBUTES", O_KVM_SET_MEMORY_ATTRIBUTES, A_STRUCT,
	  sizeof(struct o_kvm_memory_attributes), f_attrs },
	{ "KVM_SET_MEMORY_ATTRIBUTES2", O_KVM_SET_MEMORY_ATTRIBUTES2, A_STRUCT,
	  sizeof(struct o_kvm_memory_attributes2), f_attrs2 },
	{ "KVM_CREATE_GUEST_MEMFD", O_KVM_CREATE_GUEST_MEMFD, A_STRUCT,
	  sizeof(struct o_kvm_create_guest_memfd), f_gmem },
	{ "KVM_PRE_FAULT_MEMORY", O_KVM_PRE_FAULT_MEMORY, A_STRUCT,
	  sizeof(struct o_kvm_pre_fault_memory), f_prefault },
	{ NULL, 0, A_NONE, 0, NULL }
};

static const struct idesc *ioctl_by_req(uint64_t req)
{
	for (const struct idesc *d = ioctls; d->name; d++)
		if (d->req == req)
			return d;
	return NULL;
}

static bool lookup_name(const char *s, size_t n, uint64_t *v)
{
	const struct name_value *tabs[] = { const_names, kvm_cap_names };

	for (size_t t = 0; t < sizeof(tabs) / sizeof(tabs[0]); t++)
		for (const struct name_value *e = tabs[t]; e->name; e++)
			if (strlen(e->name) == n && !memcmp(e->name, s, n)) {
				*v = e->value;
				return true;
			}
	for (const struct idesc *d = ioctls; d->name; d++)
		if (strlen(d->name) == n && !memcmp(d->name, s, n)) {
			*v = d->req;
			return true;
		}
	return false;
}

static const char *name_of(const struct name_value *tab, uint64_t v)
{
	for (const struct name_value *e = tab; e->name; e++)
		if (e->value == v)
			return e->name;
	return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Bindings ("as": "h", then "$h", "$h+4096")                                                        */

struct binding {
	char *name;
	int64_t value;
};

static struct binding *bindings;
static size_t nbindings, capbindings;

static struct binding *find_binding(const char *s, size_t n)
{
	for (size_t i = 0; i < nbindings; i++)
		if (strlen(bindings[i].name) == n && !memcmp(bindings[i].name, s, n))
			return &bindings[i];
	return NULL;
}

static void bind(const char *name, int64_t value)
{
	struct binding *b = find_binding(name, strlen(name));

	if (!b) {
		if (nbindings == capbindings) {
			capbindings = capbindings ? capbindings * 2 : 16;
			bindings = realloc(bindings, capbindings * sizeof(*bindings));
			if (!bindings)
				die_at(0, 0, "out of memory");
		}
		b = &bindings[nbindings++];
		b->name = strdup(name);
	}
	b->value = value;
}

/* ------------------------------------------------------------------------------------------------ */
/* A call being validated or run                                                                     */

struct call {
	int line;		/* line in the trace */
	int index;		/* "i": call lines counted from 0 */
	struct jval *obj;
	const char *op;
	bool validate;		/* pass 1: evaluate arguments only, run nothing */
};

/* Parse a decimal or 0x-hex integer, optionally negative, exactly into 64 bits. */
static bool parse_int_text(const char *s, size_t n, uint64_t *out)
{
	bool neg = false;
	uint64_t v = 0;
	size_t i = 0;

	if (n && s[0] == '-') {
		neg = true;
		i = 1;
	} else if (n && s[0] == '+') {
		i = 1;
	}
	if (i >= n)
		return false;
	if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		i += 2;
		for (; i < n; i++) {
			int h;
			char c = s[i];

			if (c >= '0' && c <= '9')
				h = c - '0';
			else if (c >= 'a' && c <= 'f')
				h = c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				h = c - 'A' + 10;
			else
				return false;
			if (v >> 60)
				return false;
			v = v << 4 | (uint64_t)h;
		}
	} else {
		for (; i < n; i++) {
			char c = s[i];

			if (c < '0' || c > '9')
				return false;
			if (v > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
				return false;
			v = v * 10 + (uint64_t)(c - '0');
		}
	}
	if (neg) {
		if (v > (1ULL << 63))
			return false;
		v = (uint64_t)0 - v;
	}
	*out = v;
	return true;
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * An integer argument: a JSON number, a decimal or 0x-hex string, a reference "$h", "$h+N", "$h-N",
 * or flags "A|B|0x10" of kernel names and numbers; true/false are 1/0 and null is 0 (a NULL pointer).
 * Negative values wrap to 64 bits as a C cast would.
 */
static uint64_t eval_int(struct call *c, const struct jval *v, const char *what)
{
	uint64_t r = 0;

	switch (v->t) {
	case J_NULL:
		return 0;
	case J_BOOL:
		return v->b;
	case J_NUM:
		if (strpbrk(v->s, ".eE"))
			die_v(v, "\"%s\" must be an integer, not %s", what, v->s);
		if (!parse_int_text(v->s, v->slen, &r))
			die_v(v, "\"%s\" = %s does not fit in 64 bits", what, v->s);
		return r;
	case J_STR:
		break;
	default:
		die_v(v, "\"%s\" must be an integer, a string of names or a reference", what);
	}

	const char *s = v->s;
	size_t n = v->slen, i = 0;

	while (i < n && s[i] == ' ')
		i++;
	if (i < n && s[i] == '$') {
		size_t start = ++i;
		struct binding *b;
		uint64_t off = 0;

		while (i < n && is_name_char(s[i]))
			i++;
		if (i == start)
			die_at(v->line, v->col + 1, "empty reference in \"%s\"", what);
		b = find_binding(s + start, i - start);
		if (!b)
			die_at(v->line, v->col + 1, "reference \"$%.*s\" is not bound by an earlier \"as\"",
			       (int)(i - start), s + start);
		r = (uint64_t)b->value;
		while (i < n && s[i] == ' ')
			i++;
		if (i < n) {
			char sign = s[i++];
			size_t e;

			while (i < n && s[i] == ' ')
				i++;
			e = n;
			while (e > i && s[e - 1] == ' ')
				e--;
			if ((sign != '+' && sign != '-') || !parse_int_text(s + i, e - i, &off) ||
			    (e > i && (s[i] == '-' || s[i] == '+')))
				die_at(v->line, v->col + 1 + (int)i,
				       "expected \"+N\" or \"-N\" after the reference in \"%s\"", what);
			r = sign == '+' ? r + off : r - off;
		}
		return r;
	}

	/* flags and numbers joined by '|' */
	if (i >= n)
		die_v(v, "\"%s\" is an empty string", what);
	for (;;) {
		size_t start, e;
		uint64_t t;

		while (i < n && s[i] == ' ')
			i++;
		start = i;
		while (i < n && s[i] != '|')
			i++;
		e = i;
		while (e > start && s[e - 1] == ' ')
			e--;
		if (e == start)
			die_at(v->line, v->col + 1 + (int)start, "empty name in \"%s\"", what);
		if ((s[start] >= '0' && s[start] <= '9') || s[start] == '-' || s[start] == '+') {
			if (!parse_int_text(s + start, e - start, &t))
				die_at(v->line, v->col + 1 + (int)start, "bad number \"%.*s\" in \"%s\"",
				       (int)(e - start), s + start, what);
		} else if (!lookup_name(s + start, e - start, &t)) {
			die_at(v->line, v->col + 1 + (int)start, "unknown name \"%.*s\" in \"%s\"",
			       (int)(e - start), s + start, what);
		}
		r |= t;
		if (i >= n)
			break;
		i++;	/* '|' */
	}
	(void)c;
	return r;
}

static struct jval *arg(struct call *c, const char *key)
{
	return json_get(c->obj, key);
}

static uint64_t arg_int(struct call *c, const char *key, bool required, uint64_t dflt)
{
	struct jval *v = arg(c, key);

	if (!v) {
		if (required)
			die_v(c->obj, "op \"%s\" needs \"%s\"", c->op, key);
		return dflt;
	}
	return eval_int(c, v, key);
}

static int hexdigit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Large buffers are anonymous mappings (lazily backed); small ones come from malloc. */
#define BIG_BUF (64UL << 20)

static void *buf_alloc(size_t n)
{
	void *p;

	if (n < BIG_BUF)
		return xmalloc(n);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die_at(0, 0, "cannot allocate a %zu-byte buffer", n);
	return p;
}

static void buf_free(void *p, size_t n)
{
	if (!p)
		return;
	if (n < BIG_BUF)
		free(p);
	else
		munmap(p, n);
}

/* Data: a hex string, or {"fill": BYTE, "len": N}. In validation, only checks the form. */
static uint8_t *eval_data(struct call *c, const struct jval *v, const char *what, size_t *len)
{
	if (v->t == J_STR) {
		uint8_t *d;

		if (v->slen % 2)
			die_v(v, "\"%s\": hex data has an odd number of digits", what);
		for (size_t i = 0; i < v->slen; i++)
			if (hexdigit(v->s[i]) < 0)
				die_at(v->line, v->col + 1 + (int)i, "\"%s\": not a hex digit", what);
		*len = v->slen / 2;
		if (c->validate)
			return NULL;
		d = buf_alloc(*len);
		for (size_t i = 0; i < *len; i++)
			d[i] = (uint8_t)(hexdigit(v->s[2 * i]) << 4 | hexdigit(v->s[2 * i + 1]));
		return d;
	}
	if (v->t == J_OBJ) {
		struct jval *f = json_get(v, "fill"), *l = json_get(v, "len");
		uint64_t fill, n;
		uint8_t *d;

		if (!f || !l || v->n != 2)
			die_v(v, "\"%s\": data object must be {\"fill\": BYTE, \"len\": N}", what);
		fill = eval_int(c, f, "fill");
		n = eval_int(c, l, "len");
		if (fill > 255)
			die_v(f, "\"fill\" must be a byte (0..255)");
		if (n > DATA_MAX)
			die_v(l, "\"len\" %" PRIu64 " is larger than the oracle replays", n);
		*len = (size_t)n;
		if (c->validate)
			return NULL;
		d = buf_alloc(*len);
		memset(d, (int)fill, *len);
		return d;
	}
	die_v(v, "\"%s\" must be a hex string or {\"fill\": BYTE, \"len\": N}", what);
}

/* ------------------------------------------------------------------------------------------------ */
/* The result of one call                                                                            */

static struct {
	int64_t ret;
	int err;		/* errno, 0 = none */
	int sig;		/* signal, 0 = none */
	int si_code;
	uint8_t *data;		/* "data" (owned; buf_free of dsize bytes) */
	size_t dsize;		/* allocated */
	size_t dlen;		/* bytes of data in the result */
	bool has_data;
	uint8_t *in;		/* input data of the call (owned; buf_free) */
	size_t inlen;
	struct sb exit, arg, stat;	/* rendered objects, empty = absent */
} R;

static void result_reset(void)
{
	buf_free(R.data, R.dsize);
	buf_free(R.in, R.inlen);
	R.data = R.in = NULL;
	R.dsize = R.dlen = R.inlen = 0;
	R.ret = 0;
	R.err = R.sig = R.si_code = 0;
	R.has_data = false;
	sb_reset(&R.exit);
	sb_reset(&R.arg);
	sb_reset(&R.stat);
}

#define SYS(...) do {							\
		long r_;						\
		errno = 0;						\
		r_ = syscall(__VA_ARGS__);				\
		R.err = r_ == -1 ? errno : 0;				\
		R.ret = r_;						\
	} while (0)

static void sb_data(struct sb *b, const uint8_t *d, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	if (n > DATA_INLINE_MAX) {
		uint8_t h[32];

		sha256(d, n, h);
		sb_puts(b, "{\"sha256\":\"");
		for (int i = 0; i < 32; i++) {
			char two[2] = { hx[h[i] >> 4], hx[h[i] & 15] };

			sb_putn(b, two, 2);
		}
		sb_printf(b, "\",\"len\":%zu}", n);
		return;
	}
	sb_putn(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		char two[2] = { hx[d[i] >> 4], hx[d[i] & 15] };

		sb_putn(b, two, 2);
	}
	sb_putn(b, "\"", 1);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGBUS: return "SIGBUS";
	case SIGSEGV: return "SIGSEGV";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGTRAP: return "SIGTRAP";
	case SIGSYS: return "SIGSYS";
	default: return NULL;
	}
}

static const char *si_code_name(int sig, int code)
{
	switch (code) {
	case SI_USER: return "SI_USER";
	case SI_KERNEL: return "SI_KERNEL";
	case SI_QUEUE: return "SI_QUEUE";
	case SI_TKILL: return "SI_TKILL";
	}
	if (sig == SIGBUS) {
		static const char *const n[] = { NULL, "BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR",
						 "BUS_MCEERR_AR", "BUS_MCEERR_AO" };

		if (code > 0 && code < 6)
			return n[code];
	}
	if (sig == SIGSEGV) {
		static const char *const n[] = { NULL, "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR",
						 "SEGV_PKUERR", "SEGV_ACCADI", "SEGV_ADIDERR",
						 "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR",
						 "SEGV_CPERR" };

		if (code > 0 && code < 11)
			return n[code];
	}
	return NULL;
}

static void render_result(struct call *c, struct sb *b)
{
	const char *en;

	sb_reset(b);
	sb_printf(b, "{\"i\":%d,\"op\":", c->index);
	sb_jstr(b, c->op, strlen(c->op));
	sb_puts(b, ",\"ret\":");
	sb_s64(b, R.ret);
	if (R.err) {
		en = name_of(errno_names, (uint64_t)R.err);
		if (en)
			sb_printf(b, ",\"errno\":\"%s\"", en);
		else
			sb_printf(b, ",\"errno\":%d", R.err);
	}
	if (R.sig) {
		const char *sn = signal_name(R.sig), *cn = si_code_name(R.sig, R.si_code);

		if (sn)
			sb_printf(b, ",\"signal\":\"%s\"", sn);
		else
			sb_printf(b, ",\"signal\":%d", R.sig);
		if (cn)
			sb_printf(b, ",\"si_code\":\"%s\"", cn);
		else
			sb_printf(b, ",\"si_code\":%d", R.si_code);
	}
	if (R.has_data) {
		sb_puts(b, ",\"data\":");
		sb_data(b, R.data, R.dlen);
	}
	if (R.exit.n) {
		sb_puts(b, ",\"exit\":");
		sb_puts(b, sb_str(&R.exit));
	}
	if (R.arg.n) {
		sb_puts(b, ",\"arg\":");
		sb_puts(b, sb_str(&R.arg));
	}
	if (R.stat.n) {
		sb_puts(b, ",\"stat\":");
		sb_puts(b, sb_str(&R.stat));
	}
	sb_puts(b, "}");
}

/* ------------------------------------------------------------------------------------------------ */
/* Signals: a fault while a call runs becomes the call's result                                      */

static sigjmp_buf op_jmp;
static volatile sig_atomic_t op_armed;
static volatile int caught_sig, caught_code;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!op_armed) {
		/* a fault in the oracle itself: die as the signal would */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	op_armed = 0;
	caught_sig = sig;
	caught_code = si->si_code;
	siglongjmp(op_jmp, 1);
}

static void on_alarm(int sig)
{
	(void)sig;	/* only interrupts a blocking call (KVM_RUN) with EINTR */
}

static void install_signals(void)
{
	static uint8_t altstack[64 * 1024];
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa;

	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * Copy page by page in address order, so that a fault leaves the pages before the faulting one
 * copied, as a CPU executing the copy would.
 */
static void copy_by_page(void *dst, const void *src, size_t n, bool dst_is_target)
{
	uintptr_t target = dst_is_target ? (uintptr_t)dst : (uintptr_t)src;
	size_t done = 0;

	while (done < n) {
		size_t chunk = PAGE_SIZE - ((target + done) & (PAGE_SIZE - 1));

		if (chunk > n - done)
			chunk = n - done;
		memcpy((uint8_t *)dst + done, (const uint8_t *)src + done, chunk);
		__asm__ volatile("" ::: "memory");
		done += chunk;
	}
}

/* ------------------------------------------------------------------------------------------------ */
/* KVM bookkeeping: VMs and vCPUs created by the trace                                               */

struct vmrec {
	int fd;			/* -1 once closed */
	uint8_t *mem;		/* the oracle's own guest memory (guest ops), or NULL */
	bool ready;
};

struct vcpurec {
	int fd;			/* -1 once closed */
	struct vmrec *vm;
	struct kvm_run *run;
	size_t runsz;
	bool ready;
};

static struct vmrec *vms[256];
static size_t nvms;
static struct vcpurec *vcpus[1024];
static size_t nvcpus;
static int kvm_fd = -1;		/* the oracle's own /dev/kvm */
static int private_fd_base = 3;	/* the oracle's own fds: stdout, stderr, /dev/kvm copies */

/* The oracle's own fds go just below RLIMIT_NOFILE (at most 65536), far from the fds of a trace. */
static int top_fd_base(void)
{
	struct rlimit rl;
	rlim_t top = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		top = rl.rlim_cur;
	if (top > 65536)
		top = 65536;
	return top > 64 ? (int)top - 4 : 3;
}

static struct vmrec *vm_find(int fd)
{
	for (size_t i = 0; i < nvms; i++)
		if (vms[i]->fd == fd)
			return vms[i];
	return NULL;
}

static struct vcpurec *vcpu_find(int fd)
{
	for (size_t i = 0; i < nvcpus; i++)
		if (vcpus[i]->fd == fd)
			return vcpus[i];
	return NULL;
}

static void kvm_note_close(int fd)
{
	struct vmrec *vm = vm_find(fd);
	struct vcpurec *vc = vcpu_find(fd);

	if (vm)
		vm->fd = -1;	/* its memory stays: vCPUs keep the VM alive */
	if (vc) {
		if (vc->run)
			munmap(vc->run, vc->runsz);
		vc->run = NULL;
		vc->fd = -1;
	}
}

static void kvm_note_vm(int fd)
{
	struct vmrec *vm;

	kvm_note_close(fd);
	if (nvms == sizeof(vms) / sizeof(vms[0]))
		return;
	vm = xmalloc(sizeof(*vm));
	memset(vm, 0, sizeof(*vm));
	vm->fd = fd;
	vms[nvms++] = vm;
}

static void kvm_note_vcpu(int fd, int vmfd)
{
	struct vcpurec *vc;

	kvm_note_close(fd);
	if (nvcpus == sizeof(vcpus) / sizeof(vcpus[0]))
		return;
	vc = xmalloc(sizeof(*vc));
	memset(vc, 0, sizeof(*vc));
	vc->fd = fd;
	vc->vm = vm_find(vmfd);
	vcpus[nvcpus++] = vc;
}

static int oracle_kvm_fd(void)
{
	if (kvm_fd < 0) {
		kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm_fd >= 0) {
			int hi = fcntl(kvm_fd, F_DUPFD_CLOEXEC, private_fd_base);

			if (hi >= 0) {
				close(kvm_fd);
				kvm_fd = hi;
			}
		}
	}
	return kvm_fd;
}

static void guard_own(uint64_t start, uint64_t end);

/*
 * The oracle's own mappings for its guest (the VM's memory, each vCPU's kvm_run): at the first
 * free place above ORACLE_MAP_BASE (16 TiB), far below where a trace's mappings go, so that they
 * do not shift the kernel's placement of the trace's later mappings (the simulated process has
 * no such mappings); the guard then keeps a trace's ranges off them.
 */
#define ORACLE_MAP_BASE	(1ULL << 44)
static uint64_t oracle_map_next = ORACLE_MAP_BASE;

static void *oracle_private_mmap(size_t len, int prot, int flags, int fd)
{
	void *p = mmap((void *)(uintptr_t)oracle_map_next, len, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);

	if (p == MAP_FAILED)
		p = mmap(NULL, len, prot, flags, fd, 0);
	if (p == MAP_FAILED)
		return p;
	if ((uint64_t)(uintptr_t)p == oracle_map_next)
		oracle_map_next += (len + 0x1fffff) & ~0x1fffffULL;
	guard_own((uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p + len);
	return p;
}

static struct kvm_run *vcpu_run(struct vcpurec *vc)
{
	int kfd;
	long sz;
	void *p;

	if (vc->run)
		return vc->run;
	kfd = oracle_kvm_fd();
	if (kfd < 0)
		return NULL;
	sz = ioctl(kfd, O_KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return NULL;
	p = oracle_private_mmap((size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd);
	if (p == MAP_FAILED)
		return NULL;
	vc->run = p;
	vc->runsz = (size_t)sz;
	return vc->run;
}

static void render_flags(struct sb *b, uint64_t v, const struct name_value *names)
{
	bool first = true;
	uint64_t left = v;

	if (!v) {
		sb_puts(b, "0");
		return;
	}
	for (const struct name_value *e = names; e->name; e++)
		if (e->value && (left & e->value) == e->value) {
			left &= ~e->value;
			sb_printf(b, "%s%s", first ? "\"" : "|", e->name);
			first = false;
		}
	if (left) {
		if (first) {
			sb_u64(b, v);
			return;
		}
		sb_printf(b, "|0x%llx", (unsigned long long)left);
	}
	sb_puts(b, "\"");
}

static const struct name_value memory_exit_flags[] = {
	{ "KVM_MEMORY_EXIT_FLAG_PRIVATE", O_KVM_MEMORY_EXIT_FLAG_PRIVATE },
	{ NULL, 0 }
};

/* The struct kvm_run exit, in kernel names. */
static void render_exit(struct sb *b, const struct kvm_run *run)
{
	const char *rn = name_of(kvm_exit_names, run->exit_reason);

	sb_reset(b);
	if (rn)
		sb_printf(b, "{\"reason\":\"%s\"", rn);
	else
		sb_printf(b, "{\"reason\":%u", run->exit_reason);
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		sb_puts(b, ",\"mmio\":{\"phys_addr\":");
		sb_u64(b, run->mmio.phys_addr);
		sb_printf(b, ",\"len\":%u,\"is_write\":%u", run->mmio.len, run->mmio.is_write);
		if (run->mmio.is_write && run->mmio.len <= 8) {
			sb_puts(b, ",\"data\":");
			sb_data(b, run->mmio.data, run->mmio.len);
		}
		sb_puts(b, "}");
		break;
	case O_KVM_EXIT_MEMORY_FAULT: {
		/* struct { __u64 flags, gpa, size; } memory_fault, first in the union */
		const uint64_t *mf = (const uint64_t *)(const void *)&run->hw;

		sb_puts(b, ",\"memory_fault\":{\"flags\":");
		render_flags(b, mf[0], memory_exit_flags);
		sb_puts(b, ",\"gpa\":");
		sb_u64(b, mf[1]);
		sb_puts(b, ",\"size\":");
		sb_u64(b, mf[2]);
		sb_puts(b, "}");
		break;
	}
	case KVM_EXIT_IO:
		sb_printf(b, ",\"io\":{\"direction\":%u,\"size\":%u,\"port\":%u,\"count\":%u}",
			  run->io.direction, run->io.size, run->io.port, run->io.count);
		break;
	case KVM_EXIT_HYPERCALL:
		sb_puts(b, ",\"hypercall\":{\"nr\":");
		sb_u64(b, run->hypercall.nr);
		sb_puts(b, ",\"args\":[");
		for (int i = 0; i < 6; i++) {
			if (i)
				sb_puts(b, ",");
			sb_u64(b, run->hypercall.args[i]);
		}
		sb_puts(b, "]}");
		break;
	case KVM_EXIT_EXCEPTION:
		sb_printf(b, ",\"ex\":{\"exception\":%u,\"error_code\":%u}", run->ex.exception,
			  run->ex.error_code);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		sb_puts(b, ",\"fail_entry\":{\"hardware_entry_failure_reason\":");
		sb_u64(b, run->fail_entry.hardware_entry_failure_reason);
		sb_puts(b, "}");
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		sb_printf(b, ",\"internal\":{\"suberror\":%u}", run->internal.suberror);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		sb_printf(b, ",\"system_event\":{\"type\":%u}", run->system_event.type);
		break;
	default:
		break;
	}
	sb_puts(b, "}");
}

/* ------------------------------------------------------------------------------------------------ */
/* The guest: tiny user-mode (CPL3) long-mode code in a memslot the oracle owns (x86-64 only)        */

#if defined(__x86_64__)
#include "guest_x86.h"
#else
static bool guest_access(struct vcpurec *vc, uint64_t gpa, uint8_t *buf, size_t len, bool store,
			 struct call *c)
{
	(void)vc; (void)gpa; (void)buf; (void)len; (void)store;
	die_at(c->line, 0, "guest_load/guest_store are implemented on x86-64 only");
}
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Ops                                                                                               */

/* ------------------------------------------------------------------------------------------------ */
/* --guard: the oracle's own memory, which a trace's address ranges must not reach                  */

/*
 * A trace replayed on the simulator runs in a process with no other mappings; here the oracle's
 * binary, libraries, heap and stack sit beside the trace's mappings (the first mmap lands right
 * below the libraries). A call whose range reaches them would answer for the oracle's memory, or
 * unmap it. With --guard the oracle reads its mappings before the first call and stops at the
 * first call that would touch one: it prints {"i", "op", "guarded": true} and exits 0, so that a
 * fuzzer compares the calls before it only. It stops in the same way at a call that would make
 * the kernel allocate beyond GUARD_BUDGET in all.
 */
struct own_range {
	uint64_t start, end;
};
static struct own_range own[512];
static size_t nown;
static bool guard;

/* A range of the oracle's own memory the guard keeps a trace off (full table: not kept). */
static void guard_own(uint64_t start, uint64_t end)
{
	if (nown < sizeof(own) / sizeof(own[0])) {
		own[nown].start = start;
		own[nown].end = end;
		nown++;
	}
}

/* The simulated process's mmap_base (mm/src/mm_types.ts: TASK_SIZE - 128 MiB, no randomization). */
#define SIM_MMAP_BASE 0x7ffff7fff000ULL
#define SZ_2M (2ULL << 20)

/*
 * The simulated process's first mapping goes right below its mmap_base, the oracle's right below
 * its lowest library, at an address that ASLR chose. Fill the space below the libraries with
 * PROT_NONE down to an address congruent to SIM_MMAP_BASE modulo 2 MiB, so that the 2 MiB
 * alignment of THP-sized anonymous mappings (thp_get_unmapped_area()) leaves the same gaps on
 * both sides.
 */
static void guard_align_top(void)
{
	void *probe = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t top, f;

	if (probe == MAP_FAILED)
		return;
	top = (uint64_t)(uintptr_t)probe + 4096;
	munmap(probe, 4096);
	f = (top & ~(SZ_2M - 1)) | (SIM_MMAP_BASE & (SZ_2M - 1));
	if (f > top)
		f -= SZ_2M;
	if (f < top && nown < sizeof(own) / sizeof(own[0]) &&
	    mmap((void *)(uintptr_t)f, top - f, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED)
		guard_own(f, top);
}

static void read_own_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char buf[512];

	if (!f)
		die_at(0, 0, "--guard: cannot read /proc/self/maps: %s", strerror(errno));
	while (fgets(buf, sizeof(buf), f) && nown < sizeof(own) / sizeof(own[0])) {
		unsigned long long s, e;

		if (sscanf(buf, "%llx-%llx", &s, &e) == 2)
			guard_own(s, e);
	}
	fclose(f);
	/*
	 * The holes between the libraries (alignment gaps, guard pages) would take a trace's small
	 * mappings where the simulated process, which has no libraries, puts them below the last:
	 * fill every hole under 1 GiB with PROT_NONE, so that the kernel's top-down search places
	 * the trace's mappings one below the other, under everything the oracle has.
	 */
	for (size_t k = 0, n = nown; k + 1 < n; k++) {
		uint64_t lo = own[k].end, hi = own[k + 1].start;

		if (hi > lo && hi - lo < (1ULL << 30) && nown < sizeof(own) / sizeof(own[0]) &&
		    mmap((void *)(uintptr_t)lo, hi - lo, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED)
			guard_own(lo, hi);
	}
	guard_align_top();
}

/*
 * Memory a guarded trace may have the kernel allocate (fallocate, populating mmap, mlock,
 * MADV_POPULATE_*): a memfd has no size limit, and a fuzzer's fallocate of 2^40 bytes would
 * run this machine out of memory. A call beyond the budget stops the replay as a guarded one.
 */
#define GUARD_BUDGET (512ULL << 20)
static uint64_t guard_spent;

static void guard_stop(struct call *c)
{
	fprintf(out, "{\"i\":%d,\"op\":\"%s\",\"guarded\":true}\n", c->index, c->op);
	fflush(out);
	exit(0);
}

static void guard_alloc(struct call *c, uint64_t len)
{
	if (!guard || c->validate)
		return;
	if (len > GUARD_BUDGET - guard_spent)
		guard_stop(c);
	guard_spent += len;
}

/*
 * The bytes of [addr, addr + len) that accessible mappings cover: what mlock() or
 * MADV_POPULATE_* can make the kernel allocate (they populate no hole and no PROT_NONE mapping).
 */
static uint64_t guard_mapped_bytes(uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len < addr ? UINT64_MAX : addr + len, sum = 0;
	FILE *f;
	char buf[512];

	if (!guard || len == 0)
		return 0;
	f = fopen("/proc/self/maps", "r");
	if (!f)
		return len;
	while (fgets(buf, sizeof(buf), f)) {
		unsigned long long s, e;
		char perms[5];

		if (sscanf(buf, "%llx-%llx %4s", &s, &e, perms) != 3 || !strcmp(perms, "---p") || !strcmp(perms, "---s"))
			continue;
		if (s < end && e > addr)
			sum += (e < end ? e : end) - (s > addr ? s : addr);
	}
	fclose(f);
	return sum;
}

static void guard_range(struct call *c, uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len < addr ? UINT64_MAX : addr + len;

	if (!guard || c->validate || len == 0)
		return;
	/*
	 * Nothing is mapped from TASK_SIZE (47 bits) up, and munmap() and mmap(MAP_FIXED) refuse a
	 * range that ends beyond it before looking at any mapping (mprotect(), madvise() and mlock()
	 * do not: they act on the mappings before the first hole).
	 */
	if (addr >= (1ULL << 47) || ((!strcmp(c->op, "munmap") || !strcmp(c->op, "mmap")) && end > (1ULL << 47)))
		return;
	for (size_t k = 0; k < nown; k++) {
		if (addr < own[k].end && end > own[k].start)
			guard_stop(c);
	}
}

/* Whether any mapping covers the byte at `addr` now. */
static bool guard_mapped_at(uint64_t addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char buf[512];
	bool found = false;

	if (!f)
		return true;
	while (!found && fgets(buf, sizeof(buf), f)) {
		unsigned long long s, e;

		if (sscanf(buf, "%llx-%llx", &s, &e) == 2 && addr >= s && addr < e)
			found = true;
	}
	fclose(f);
	return found;
}

/*
 * guard_range() for mprotect(), mlock() and munlock(): they look up the VMA at the range's
 * (page-aligned) start first and fail with ENOMEM, changing nothing, when there is none
 * (do_mprotect_pkey(): vma->vm_start > start; apply_vma_lock_flags(): !vma_iter_load()), so a
 * range that starts in a hole is safe whatever it covers. False for such a range: the call will
 * touch nothing.
 */
static bool guard_vma_walk(struct call *c, uint64_t addr, uint64_t len)
{
	if (guard && !c->validate && len != 0 && !guard_mapped_at(addr & ~4095ULL))
		return false;
	guard_range(c, addr, len);
	return true;
}

static void op_memfd_create(struct call *c)
{
	struct jval *nv = arg(c, "name");
	uint64_t flags = arg_int(c, "flags", false, 0);
	const char *name = "";

	if (nv && nv->t == J_STR)
		name = nv->s;
	else if (nv && nv->t == J_NULL)
		name = NULL;
	else if (nv)
		die_v(nv, "\"name\" must be a string (or null)");
	if (c->validate)
		return;
	SYS(SYS_memfd_create, name, flags);
}

static void op_close(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0);

	if (c->validate)
		return;
	SYS(SYS_close, fd);
	if (R.ret == 0)
		kvm_note_close((int)fd);
}

static void op_ftruncate(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0), length = arg_int(c, "length", true, 0);

	if (c->validate)
		return;
	SYS(SYS_ftruncate, fd, length);
}

static void op_fallocate(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0), mode = arg_int(c, "mode", false, 0);
	uint64_t offset = arg_int(c, "offset", true, 0), len = arg_int(c, "len", true, 0);

	if (c->validate)
		return;
	/* what vfs_fallocate() refuses first allocates nothing */
	if (!(mode & 0x02 /* FALLOC_FL_PUNCH_HOLE */) && (int64_t)offset >= 0 && (int64_t)len > 0 &&
	    fcntl((int)fd, F_GETFD) >= 0)
		guard_alloc(c, len);
	SYS(SYS_fallocate, fd, mode, offset, len);
}

static void op_fcntl(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0), cmd = arg_int(c, "cmd", true, 0);
	uint64_t a = arg_int(c, "arg", false, 0);

	if (c->validate)
		return;
	SYS(SYS_fcntl, fd, cmd, a);
}

static void op_fstat(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0);
	struct stat st;

	if (c->validate)
		return;
	memset(&st, 0, sizeof(st));
	SYS(SYS_fstat, fd, &st);
	if (R.ret == 0) {
		sb_puts(&R.stat, "{\"size\":");
		sb_s64(&R.stat, (int64_t)st.st_size);
		sb_puts(&R.stat, ",\"blocks\":");
		sb_s64(&R.stat, (int64_t)st.st_blocks);
		sb_puts(&R.stat, "}");
	}
}

static void do_read(struct call *c, bool positional)
{
	uint64_t fd = arg_int(c, "fd", true, 0), count = arg_int(c, "count", true, 0);
	uint64_t offset = positional ? arg_int(c, "offset", true, 0) : 0;

	if (count > DATA_MAX)
		die_v(arg(c, "count"), "\"count\" %" PRIu64 " is larger than the oracle replays", count);
	if (c->validate)
		return;
	R.data = buf_alloc((size_t)count);
	R.dsize = (size_t)count;
	if (positional)
		SYS(SYS_pread64, fd, R.data, count, offset);
	else
		SYS(SYS_read, fd, R.data, count);
	if (R.ret >= 0) {
		R.has_data = true;
		R.dlen = (size_t)R.ret;	/* only the bytes read */
	}
}

/*
 * lseek and fchmod are outside the spec's generic table (docs/trace-format.md lists them with the
 * ops a package adds) but are plain system calls every kernel has: memfd_test.c checks F_SEAL_EXEC
 * with fchmod, and SEEK_DATA/SEEK_HOLE show where a sparse shmem file has pages.
 */
static void op_lseek(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0), offset = arg_int(c, "offset", true, 0);
	uint64_t whence = arg_int(c, "whence", true, 0);

	if (c->validate)
		return;
	SYS(SYS_lseek, fd, offset, whence);
}

static void op_fchmod(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0), mode = arg_int(c, "mode", true, 0);

	if (c->validate)
		return;
	SYS(SYS_fchmod, fd, mode);
}

static void op_read(struct call *c) { do_read(c, false); }
static void op_pread(struct call *c) { do_read(c, true); }

static void do_write(struct call *c, bool positional)
{
	uint64_t fd = arg_int(c, "fd", true, 0);
	uint64_t offset = positional ? arg_int(c, "offset", true, 0) : 0;
	struct jval *dv = arg(c, "data");

	if (!dv)
		die_v(c->obj, "op \"%s\" needs \"data\"", c->op);
	R.in = eval_data(c, dv, "data", &R.inlen);
	if (c->validate)
		return;
	if (positional)
		SYS(SYS_pwrite64, fd, R.in, R.inlen, offset);
	else
		SYS(SYS_write, fd, R.in, R.inlen);
}

static void op_write(struct call *c) { do_write(c, false); }
static void op_pwrite(struct call *c) { do_write(c, true); }

static void op_mmap(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", false, 0), length = arg_int(c, "length", true, 0);
	uint64_t prot = arg_int(c, "prot", true, 0), flags = arg_int(c, "flags", true, 0);
	uint64_t fd = arg_int(c, "fd", false, (uint64_t)-1), offset = arg_int(c, "offset", false, 0);

	if (c->validate)
		return;
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
		guard_range(c, addr, length);
	if (flags & (MAP_POPULATE | MAP_LOCKED))
		guard_alloc(c, length);
	SYS(SYS_mmap, addr, length, prot, flags, fd, offset);
}

static void op_munmap(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), length = arg_int(c, "length", true, 0);

	if (c->validate)
		return;
	guard_range(c, addr, length);
	SYS(SYS_munmap, addr, length);
}

static void op_mprotect(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), length = arg_int(c, "length", true, 0);
	uint64_t prot = arg_int(c, "prot", true, 0);

	if (c->validate)
		return;
	guard_vma_walk(c, addr, length);
	SYS(SYS_mprotect, addr, length, prot);
}

static void op_madvise(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), length = arg_int(c, "length", true, 0);
	uint64_t advice = arg_int(c, "advice", true, 0);

	if (c->validate)
		return;
	guard_range(c, addr, length);
	if (advice == 3 /* MADV_WILLNEED */ || advice == 22 /* MADV_POPULATE_READ */ || advice == 23 /* MADV_POPULATE_WRITE */)
		guard_alloc(c, guard_mapped_bytes(addr, length));
	SYS(SYS_madvise, addr, length, advice);
}

static void op_mlock(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), length = arg_int(c, "length", true, 0);
	struct jval *fv = arg(c, "flags");
	uint64_t flags = fv ? eval_int(c, fv, "flags") : 0;

	if (c->validate)
		return;
	if (guard_vma_walk(c, addr, length))
		guard_alloc(c, guard_mapped_bytes(addr, length));
	if (fv)
		SYS(SYS_mlock2, addr, length, flags);
	else
		SYS(SYS_mlock, addr, length);
}

static void op_munlock(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), length = arg_int(c, "length", true, 0);

	if (c->validate)
		return;
	guard_vma_walk(c, addr, length);
	SYS(SYS_munlock, addr, length);
}

static void op_load(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), len = arg_int(c, "len", true, 0);

	if (len > DATA_MAX)
		die_v(arg(c, "len"), "\"len\" %" PRIu64 " is larger than the oracle replays", len);
	if (c->validate)
		return;
	guard_range(c, addr, len);
	R.data = buf_alloc((size_t)len);
	R.dsize = (size_t)len;
	__asm__ volatile("" ::: "memory");
	copy_by_page(R.data, (const void *)(uintptr_t)addr, (size_t)len, false);
	R.ret = 0;
	R.dlen = (size_t)len;
	R.has_data = true;
}

static void op_store(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0);
	struct jval *dv = arg(c, "data");

	if (!dv)
		die_v(c->obj, "op \"store\" needs \"data\"");
	R.in = eval_data(c, dv, "data", &R.inlen);
	if (c->validate)
		return;
	guard_range(c, addr, R.inlen);
	__asm__ volatile("" ::: "memory");
	copy_by_page((void *)(uintptr_t)addr, R.in, R.inlen, true);
	R.ret = 0;
}

static void op_process_vm_readv(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0), len = arg_int(c, "len", true, 0);
	struct iovec local, remote;

	if (len > DATA_MAX)
		die_v(arg(c, "len"), "\"len\" %" PRIu64 " is larger than the oracle replays", len);
	if (c->validate)
		return;
	guard_range(c, addr, len);
	R.data = buf_alloc((size_t)len);
	R.dsize = (size_t)len;
	local.iov_base = R.data;
	local.iov_len = (size_t)len;
	remote.iov_base = (void *)(uintptr_t)addr;
	remote.iov_len = (size_t)len;
	SYS(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
	if (R.ret >= 0) {
		R.has_data = true;
		R.dlen = (size_t)R.ret;	/* only the bytes read */
	}
}

static void op_process_vm_writev(struct call *c)
{
	uint64_t addr = arg_int(c, "addr", true, 0);
	struct jval *dv = arg(c, "data");
	struct iovec local, remote;

	if (!dv)
		die_v(c->obj, "op \"process_vm_writev\" needs \"data\"");
	R.in = eval_data(c, dv, "data", &R.inlen);
	if (c->validate)
		return;
	guard_range(c, addr, R.inlen);
	local.iov_base = R.in;
	local.iov_len = R.inlen;
	remote.iov_base = (void *)(uintptr_t)addr;
	remote.iov_len = R.inlen;
	SYS(SYS_process_vm_writev, getpid(), &local, 1, &remote, 1, 0);
}

static void op_open(struct call *c)
{
	struct jval *pv = arg(c, "path");
	uint64_t flags = arg_int(c, "flags", false, 02 /* O_RDWR */);

	if (!pv)
		die_v(c->obj, "op \"open\" needs \"path\"");
	/*
	 * Only harmless paths: the devices below, and /dev/cocosim-* (meant not to exist, for ENOENT),
	 * which may not be created.
	 */
	if (pv->t != J_STR ||
	    (strcmp(pv->s, "/dev/kvm") && strcmp(pv->s, "/dev/null") && strcmp(pv->s, "/dev/zero") &&
	     strncmp(pv->s, "/dev/cocosim-", 13)))
		die_v(pv, "the oracle opens only /dev/kvm, /dev/null, /dev/zero and /dev/cocosim-*");
	if (!strncmp(pv->s, "/dev/cocosim-", 13) && (flags & (0100 /* O_CREAT */ | 020000000 /* __O_TMPFILE */)))
		die_v(pv, "the oracle does not create files");
	if (c->validate)
		return;
	SYS(SYS_openat, AT_FDCWD, pv->s, flags, 0);
}

static uint64_t field_get(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;

	memcpy(&v, p, size);	/* little-endian */
	return v;
}

/*
 * A struct field takes the low bytes of its value, as a C assignment to a narrower field truncates
 * (docs/trace-format.md: "a value the kernel's C type is narrower than is truncated as C truncates
 * it"); the simulator reads fields the same way (user_struct_field()).
 */
static void field_set(struct call *c, const struct jval *v, uint8_t *p, const struct fdesc *f)
{
	uint64_t x = eval_int(c, v, f->name);

	memcpy(p, &x, f->size);
}

static void fill_struct(struct call *c, const struct idesc *d, struct jval *obj, uint8_t *buf)
{
	for (size_t i = 0; i < obj->n; i++) {
		const struct jval *k = obj->keys[i], *v = obj->items[i];
		const struct fdesc *f;

		for (f = d->fields; f->name; f++)
			if (!strcmp(f->name, k->s))
				break;
		if (!f->name)
			die_v(k, "struct of %s has no field \"%s\"", d->name, k->s);
		obj->used[i] = true;
		if (f->count == 1) {
			field_set(c, v, buf + f->off, f);
			continue;
		}
		if (v->t != J_ARR || v->n > f->count)
			die_v(v, "\"%s\" must be an array of at most %u integers", f->name, f->count);
		for (size_t j = 0; j < v->n; j++)
			field_set(c, v->items[j], buf + f->off + j * f->size, f);
	}
}

static void render_out_fields(struct sb *b, const struct idesc *d, const uint8_t *buf)
{
	bool first = true;

	for (const struct fdesc *f = d->fields; f->name; f++) {
		if (!f->out)
			continue;
		sb_printf(b, "%s\"%s\":", first ? "{" : ",", f->name);
		first = false;
		if (f->count == 1) {
			sb_u64(b, field_get(buf + f->off, f->size));
			continue;
		}
		sb_puts(b, "[");
		for (unsigned j = 0; j < f->count; j++) {
			if (j)
				sb_puts(b, ",");
			sb_u64(b, field_get(buf + f->off + j * f->size, f->size));
		}
		sb_puts(b, "]");
	}
	if (!first)
		sb_puts(b, "}");
}

static void op_ioctl(struct call *c)
{
	uint64_t fd = arg_int(c, "fd", true, 0), req = arg_int(c, "req", true, 0);
	struct jval *av = arg(c, "arg");
	const struct idesc *d = ioctl_by_req(req);
	uint64_t sbuf[64], argval = 0;
	bool is_struct = false;
	struct vcpurec *vc = NULL;

	memset(sbuf, 0, sizeof(sbuf));
	if (av && av->t == J_OBJ) {
		if (!d || d->kind != A_STRUCT)
			die_v(av, "\"arg\" is a struct, but this request takes none the oracle knows");
		fill_struct(c, d, av, (uint8_t *)sbuf);
		is_struct = true;
		argval = (uint64_t)(uintptr_t)sbuf;
	} else if (av) {
		argval = eval_int(c, av, "arg");
	}
	if (c->validate)
		return;
	if (req == O_KVM_RUN) {
		vc = vcpu_find((int)fd);
		if (vc && vcpu_run(vc))
			vc->run->exit_reason = KVM_EXIT_UNKNOWN;
		alarm(RUN_TIMEOUT);
	}
	SYS(SYS_ioctl, fd, req, argval);
	if (req == O_KVM_RUN) {
		alarm(0);
		if (vc && vc->run && (R.ret == 0 || vc->run->exit_reason == O_KVM_EXIT_MEMORY_FAULT))
			render_exit(&R.exit, vc->run);
	}
	if (is_struct)
		render_out_fields(&R.arg, d, (const uint8_t *)sbuf);
	if (R.ret >= 0 && req == O_KVM_CREATE_VM)
		kvm_note_vm((int)R.ret);
	if (R.ret >= 0 && req == O_KVM_CREATE_VCPU)
		kvm_note_vcpu((int)R.ret, (int)fd);
}

/*
 * CPUID.(EAX=7,ECX=0):ECX.OSPKE[bit 4]: the CPU has protection keys and the kernel set CR4.PKE,
 * so PROT_EXEC-only mappings are execute-only (SEGV_PKUERR on a data access). The simulator
 * models the same host when the header says so.
 */
static bool cpu_ospke(void)
{
#if defined(__x86_64__)
	unsigned int a, b, c, d;

	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return (c >> 4) & 1;
#else
	return false;
#endif
}

/*
 * KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD) on /dev/kvm: whether the kernel was built with
 * CONFIG_KVM_GUEST_MEMFD (without it KVM_CREATE_GUEST_MEMFD is ENOTTY and KVM_MEM_GUEST_MEMFD an
 * invalid memslot flag). -1 without /dev/kvm. The fd is closed before the trace runs.
 */
static int kvm_guest_memfd(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -1;
	r = ioctl(fd, KVM_CHECK_EXTENSION, 234 /* KVM_CAP_GUEST_MEMFD */);
	close(fd);
	return r > 0;
}

static struct vcpurec *guest_vcpu(struct call *c, uint64_t fd)
{
	struct vcpurec *vc = vcpu_find((int)fd);

	if (!vc)
		die_v(arg(c, "vcpu"), "\"vcpu\" = %" PRId64 " is not a vCPU fd made by KVM_CREATE_VCPU in this trace",
		      (int64_t)fd);
	if (!vc->vm)
		die_v(arg(c, "vcpu"), "the VM of this vCPU is not known to the oracle");
	return vc;
}

static void op_guest_load(struct call *c)
{
	uint64_t fd = arg_int(c, "vcpu", true, 0), gpa = arg_int(c, "gpa", true, 0);
	uint64_t len = arg_int(c, "len", true, 0);
	struct vcpurec *vc;

	if (len > DATA_MAX)
		die_v(arg(c, "len"), "\"len\" %" PRIu64 " is larger than the oracle replays", len);
	if (c->validate)
		return;
	vc = guest_vcpu(c, fd);
	R.data = buf_alloc((size_t)len);
	R.dsize = (size_t)len;
	if (guest_access(vc, gpa, R.data, (size_t)len, false, c)) {
		R.dlen = (size_t)len;
		R.has_data = true;
	}
}

static void op_guest_store(struct call *c)
{
	uint64_t fd = arg_int(c, "vcpu", true, 0), gpa = arg_int(c, "gpa", true, 0);
	struct jval *dv = arg(c, "data");
	struct vcpurec *vc;

	if (!dv)
		die_v(c->obj, "op \"guest_store\" needs \"data\"");
	R.in = eval_data(c, dv, "data", &R.inlen);
	if (c->validate)
		return;
	vc = guest_vcpu(c, fd);
	guest_access(vc, gpa, R.in, R.inlen, true, c);
}

static const struct {
	const char *name;
	void (*fn)(struct call *c);
} ops[] = {
	{ "memfd_create", op_memfd_create },
	{ "close", op_close },
	{ "ftruncate", op_ftruncate },
	{ "fallocate", op_fallocate },
	{ "fcntl", op_fcntl },
	{ "fstat", op_fstat },
	{ "read", op_read },
	{ "pread", op_pread },
	{ "write", op_write },
	{ "pwrite", op_pwrite },
	{ "mmap", op_mmap },
	{ "munmap", op_munmap },
	{ "mprotect", op_mprotect },
	{ "madvise", op_madvise },
	{ "mlock", op_mlock },
	{ "munlock", op_munlock },
	{ "load", op_load },
	{ "store", op_store },
	{ "process_vm_readv", op_process_vm_readv },
	{ "process_vm_writev", op_process_vm_writev },
	{ "open", op_open },
	{ "ioctl", op_ioctl },
	{ "guest_load", op_guest_load },
	{ "guest_store", op_guest_store },
	{ "lseek", op_lseek },
	{ "fchmod", op_fchmod },
};

/* ------------------------------------------------------------------------------------------------ */
/* expect: compare a result with the call's expectations                                            */

static const char *const result_keys[] = { "ret", "errno", "signal", "si_code", "data", "exit", "arg",
					   "stat", NULL };

/* An integer-valued JSON value (number, or decimal / 0x string) as 64 bits, sign apart. */
static bool as_int(const struct jval *v, uint64_t *x, bool *neg)
{
	if (v->t == J_NUM) {
		if (strpbrk(v->s, ".eE"))
			return false;
	} else if (v->t != J_STR) {
		return false;
	}
	if (!parse_int_text(v->s, v->slen, x))
		return false;
	*neg = v->slen && v->s[0] == '-';
	return true;
}

static bool jequal(const struct jval *e, const struct jval *a)
{
	uint64_t xe, xa;
	bool ne, na;

	if ((e->t == J_NUM || a->t == J_NUM) && as_int(e, &xe, &ne) && as_int(a, &xa, &na))
		return xe == xa && (ne == na || xe == 0);
	if (e->t != a->t)
		return false;
	switch (e->t) {
	case J_NULL:
		return true;
	case J_BOOL:
		return e->b == a->b;
	case J_NUM:
	case J_STR:
		return e->slen == a->slen && !memcmp(e->s, a->s, e->slen);
	case J_ARR:
		if (e->n != a->n)
			return false;
		for (size_t i = 0; i < e->n; i++)
			if (!jequal(e->items[i], a->items[i]))
				return false;
		return true;
	case J_OBJ:
		/* expectations may name a subset of an object's fields */
		for (size_t i = 0; i < e->n; i++) {
			struct jval *m = json_get(a, e->keys[i]->s);

			if (!m || !jequal(e->items[i], m))
				return false;
		}
		return true;
	}
	return false;
}

static void show(struct sb *b, const struct jval *v)
{
	switch (v->t) {
	case J_NULL: sb_puts(b, "null"); break;
	case J_BOOL: sb_puts(b, v->b ? "true" : "false"); break;
	case J_NUM: sb_puts(b, v->s); break;
	case J_STR: sb_jstr(b, v->s, v->slen > 80 ? 80 : v->slen); break;
	case J_ARR:
		sb_puts(b, "[");
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				sb_puts(b, ",");
			show(b, v->items[i]);
		}
		sb_puts(b, "]");
		break;
	case J_OBJ:
		sb_puts(b, "{");
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				sb_puts(b, ",");
			sb_jstr(b, v->keys[i]->s, v->keys[i]->slen);
			sb_puts(b, ":");
			show(b, v->items[i]);
		}
		sb_puts(b, "}");
		break;
	}
}

static int mismatches;

static void mismatch(struct call *c, const char *key, const struct jval *e, const struct jval *a)
{
	struct sb b = { 0 };

	sb_printf(&b, "line %d (i=%d, %s): expect.%s is ", c->line, c->index, c->op, key);
	show(&b, e);
	sb_puts(&b, ", the kernel said ");
	if (a)
		show(&b, a);
	else
		sb_puts(&b, "nothing");
	fprintf(diag, "cocosim-oracle: %s: %s\n", trace_name, sb_str(&b));
	free(b.p);
	mismatches++;
}

static void validate_expect(struct call *c, struct jval *ex)
{
	if (ex->t != J_OBJ)
		die_v(ex, "\"expect\" must be an object");
	for (size_t i = 0; i < ex->n; i++) {
		const char *k = ex->keys[i]->s;
		size_t j;

		for (j = 0; result_keys[j]; j++)
			if (!strcmp(k, result_keys[j]))
				break;
		if (!result_keys[j])
			die_v(ex->keys[i], "\"expect\" has \"%s\", which is not a result field", k);
		if (!strcmp(k, "data") && !(ex->items[i]->t == J_OBJ && json_get(ex->items[i], "sha256"))) {
			size_t len;

			eval_data(c, ex->items[i], "expect.data", &len);
		}
	}
}

static void check_expect(struct call *c, struct jval *ex, const char *line)
{
	struct jval *res = json_parse(line, strlen(line), c->line);
	bool bound = json_get(c->obj, "as") != NULL;

	for (size_t i = 0; i < ex->n; i++) {
		const char *k = ex->keys[i]->s;
		struct jval *e = ex->items[i], *a = json_get(res, k);

		if (!strcmp(k, "data") && !(e->t == J_OBJ && json_get(e, "sha256"))) {
			/* compare bytes: hex or {"fill", "len"} against what was read */
			struct call vc = *c;
			size_t len;
			uint8_t *d;
			bool eq;

			vc.validate = false;
			d = eval_data(&vc, e, "expect.data", &len);
			eq = R.has_data && len == R.dlen && !memcmp(d, R.data, len);
			buf_free(d, len);
			if (!eq)
				mismatch(c, k, e, a);
			continue;
		}
		if (!strcmp(k, "ret") && bound && a) {
			/* bound values (fds, addresses) compare by success only */
			uint64_t xe, xa;
			bool ne, na;

			if (as_int(e, &xe, &ne) && as_int(a, &xa, &na) && (ne ? xe != 0 : false) == (na ? xa != 0 : false) &&
			    (!ne || xe == xa))
				continue;
			mismatch(c, k, e, a);
			continue;
		}
		if (!a || !jequal(e, a))
			mismatch(c, k, e, a);
	}
}

/* ------------------------------------------------------------------------------------------------ */
/* Main                                                                                              */

struct line {
	int line;
	struct jval *obj;
};

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *p = xmalloc(cap);

	for (;;) {
		size_t r;

		if (n == cap) {
			cap *= 2;
			p = realloc(p, cap);
			if (!p)
				die_at(0, 0, "out of memory");
		}
		r = fread(p + n, 1, cap - n, f);
		if (!r)
			break;
		n += r;
	}
	if (ferror(f))
		die_at(0, 0, "cannot read the trace");
	*len = n;
	return p;
}

static void check_header(struct jval *h)
{
	struct jval *t = json_get(h, "trace"), *p = json_get(h, "platform");

	if (t->t != J_NUM || strcmp(t->s, "1"))
		die_v(t, "this oracle replays trace format version 1");
	if (p) {
		struct jval *vd = json_get(p, "vendor"), *ds = json_get(p, "design");

		if (p->t != J_OBJ)
			die_v(p, "\"platform\" must be an object");
		if ((vd && (vd->t != J_STR || strcmp(vd->s, "none"))) ||
		    (ds && (ds->t != J_STR || strcmp(ds->s, "upstream"))))
			fprintf(diag, "cocosim-oracle: %s: line %d: note: the platform is not vendor \"none\", "
				"design \"upstream\"; the oracle replays the generic part on this kernel\n",
				trace_name, h->line);
	}
}

static void validate_call(struct call *c, bool check)
{
	struct jval *opv = json_get(c->obj, "op"), *as = json_get(c->obj, "as");
	struct jval *ex = json_get(c->obj, "expect");
	size_t k;

	if (!opv)
		die_v(c->obj, "a call needs \"op\"");
	if (opv->t != J_STR)
		die_v(opv, "\"op\" must be a string");
	c->op = opv->s;
	for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		if (!strcmp(ops[k].name, c->op))
			break;
	if (k == sizeof(ops) / sizeof(ops[0]))
		die_v(opv, "op \"%s\" is not in the generic part the oracle replays", c->op);
	result_reset();
	ops[k].fn(c);
	result_reset();
	json_get(c->obj, "comment");
	for (size_t i = 0; i < c->obj->n; i++) {
		const struct jval *key = c->obj->keys[i];

		if (!c->obj->used[i] && key->s[0] != '_')
			die_v(key, "op \"%s\" has no argument \"%s\"", c->op, key->s);
	}
	if (as) {
		bool ok = as->t == J_STR && as->slen > 0;

		for (size_t i = 0; ok && i < as->slen; i++)
			ok = is_name_char(as->s[i]);
		if (!ok)
			die_v(as, "\"as\" must be a name of letters, digits and '_'");
		bind(as->s, 0);
	}
	if (ex && check)
		validate_expect(c, ex);
}

static void usage(void)
{
	fprintf(diag,
		"usage: cocosim-oracle [--header] [--no-check] [TRACE.jsonl | -]\n"
		"  Replays the generic part of a cocosim trace on this kernel; one result line per call.\n"
		"  --header    print {\"kernel\": \"<uname -r>\", \"pku\": OSPKE, \"cpus\": N, \"guest_memfd\": B} as the first line\n"
		"  --no-check  do not compare results with the trace's \"expect\" fields\n"
		"  --guard     stop, printing {\"i\", \"op\", \"guarded\": true}, at the first call whose\n"
		"              address range reaches the oracle's own memory (for fuzzers)\n");
	exit(2);
}

static void run_call(struct call *c, struct jval *ex, struct sb *line)
{
	static void (*volatile fn)(struct call *c);

	fn = NULL;
	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		if (!strcmp(ops[k].name, c->op))
			fn = ops[k].fn;
	result_reset();
	caught_sig = 0;
	if (sigsetjmp(op_jmp, 1) == 0) {
		op_armed = 1;
		fn(c);
		op_armed = 0;
	} else {
		R.ret = -1;
		R.err = 0;
		R.sig = caught_sig;
		R.si_code = caught_code;
		R.has_data = false;
		sb_reset(&R.exit);
		sb_reset(&R.arg);
		sb_reset(&R.stat);
	}
	render_result(c, line);
	fprintf(out, "%s\n", sb_str(line));
	fflush(out);
	if (ex)
		check_expect(c, ex, sb_str(line));
	{
		struct jval *as = json_get(c->obj, "as");

		if (as)
			bind(as->s, R.ret);
	}
}

int main(int argc, char **argv)
{
	bool header = false, check = true, seen_line = false;
	const char *path = NULL;
	struct line *lines = NULL;
	size_t nlines = 0, caplines = 0, len;
	char *text;
	FILE *in = stdin;
	int ofd, efd;
	struct sb line = { 0 };

	/*
	 * --guard (the differential fuzzer) runs without address-space randomization, re-executing
	 * itself once: the oracle's libraries then sit right below TASK_SIZE - 128 MiB, where the
	 * simulated process's mmap_base is, so that a trace's first mappings are as far from TASK_SIZE
	 * on both sides (access_ok() of a memslot's userspace_addr + memory_size, hints near the top).
	 */
	for (int i = 1; i < argc; i++) {
		int p;

		if (strcmp(argv[i], "--guard"))
			continue;
		p = personality(0xffffffff);
		if (p != -1 && !(p & ADDR_NO_RANDOMIZE) && personality(p | ADDR_NO_RANDOMIZE) != -1)
			execv("/proc/self/exe", argv);
		break;
	}

	/*
	 * Private copies of stdout/stderr at the top of the fd range, so that `close` in a trace cannot
	 * take them away and fds a trace names as "never opened" (1000, ...) stay free.
	 */
	private_fd_base = top_fd_base();
	efd = fcntl(2, F_DUPFD_CLOEXEC, private_fd_base);
	diag = fdopen(efd >= 0 ? efd : 2, "w");
	if (!diag)
		diag = stderr;
	ofd = fcntl(1, F_DUPFD_CLOEXEC, private_fd_base);
	if (ofd < 0) {
		fprintf(diag, "cocosim-oracle: no stdout\n");
		return 2;
	}
	out = fdopen(ofd, "w");
	json_error = on_json_error;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--header"))
			header = true;
		else if (!strcmp(argv[i], "--no-check"))
			check = false;
		else if (!strcmp(argv[i], "--guard"))
			guard = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			usage();
		else if (argv[i][0] == '-' && argv[i][1])
			usage();
		else if (path)
			usage();
		else
			path = argv[i];
	}
	if (path && strcmp(path, "-")) {
		in = fopen(path, "r");
		if (!in) {
			fprintf(diag, "cocosim-oracle: %s: %s\n", path, strerror(errno));
			return 2;
		}
		trace_name = path;
	}
	text = read_all(in, &len);
	if (in != stdin)
		fclose(in);

	/* pass 0: parse every line (columns count from the start of the line) */
	for (size_t pos = 0, lno = 1; pos < len; lno++) {
		size_t ls = pos, le = pos, s, e;
		struct jval *v;

		while (le < len && text[le] != '\n')
			le++;
		pos = le + 1;
		e = le;
		if (e > ls && text[e - 1] == '\r')
			e--;
		s = ls;
		while (s < e && (text[s] == ' ' || text[s] == '\t'))
			s++;
		if (s == e || (e - s >= 2 && text[s] == '/' && text[s + 1] == '/'))
			continue;
		v = json_parse(text + ls, e - ls, (int)lno);
		if (v->t != J_OBJ)
			die_v(v, "a trace line must be a JSON object");
		if (!seen_line && !json_get(v, "op") && json_get(v, "trace")) {
			seen_line = true;
			check_header(v);
			continue;
		}
		seen_line = true;
		if (nlines == caplines) {
			caplines = caplines ? caplines * 2 : 64;
			lines = realloc(lines, caplines * sizeof(*lines));
			if (!lines)
				die_at(0, 0, "out of memory");
		}
		lines[nlines].line = (int)lno;
		lines[nlines].obj = v;
		nlines++;
	}

	/* pass 1: validate every call (ops, arguments, names, references) before running any */
	for (size_t i = 0; i < nlines; i++) {
		struct call c = { .line = lines[i].line, .index = (int)i, .obj = lines[i].obj, .validate = true };

		validate_call(&c, check);
	}
	for (size_t i = 0; i < nbindings; i++)
		free(bindings[i].name);
	nbindings = 0;

	/* pass 2: run */
	if (header) {
		struct utsname u;
		struct sb h = { 0 };
		int gmem = kvm_guest_memfd();

		uname(&u);
		sb_puts(&h, "{\"kernel\":");
		sb_jstr(&h, u.release, strlen(u.release));
		sb_puts(&h, cpu_ospke() ? ",\"pku\":true" : ",\"pku\":false");
		sb_puts(&h, ",\"cpus\":");
		sb_u64(&h, (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
		if (gmem >= 0)
			sb_puts(&h, gmem ? ",\"guest_memfd\":true" : ",\"guest_memfd\":false");
		sb_puts(&h, "}");
		fprintf(out, "%s\n", sb_str(&h));
		fflush(out);
	}
	install_signals();
	if (guard) {
		/*
		 * stdin, stdout and stderr are /dev/null, as in the simulated process (mm's Process),
		 * not the pipes of whoever runs the oracle: results go to the private dup of stdout.
		 */
		int null_fd = open("/dev/null", O_RDWR);

		for (int fd = 0; fd < 3 && null_fd >= 0; fd++)
			if (fd != null_fd)
				dup2(null_fd, fd);
		if (null_fd > 2)
			close(null_fd);
		/*
		 * RLIMIT_NOFILE's soft limit is the simulated process's (1024, mm/src/fdtable.ts), not
		 * what the caller raised it to (Node.js raises its own to the hard limit at start)
		 */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 1024) {
			rl.rlim_cur = 1024;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		/* the oracle's later fds (its /dev/kvm) below the new limit, still far from a trace's */
		private_fd_base = top_fd_base();
		/* keep malloc off mmap, so that the mappings read now stay all the oracle has */
		mallopt(M_MMAP_THRESHOLD, BIG_BUF);
		read_own_maps();
	}
	for (size_t i = 0; i < nlines; i++) {
		struct call c = { .line = lines[i].line, .index = (int)i, .obj = lines[i].obj };
		struct jval *ex = check ? json_get(c.obj, "expect") : NULL;

		c.op = json_get(c.obj, "op")->s;
		run_call(&c, ex, &line);
	}
	if (mismatches) {
		fprintf(diag, "cocosim-oracle: %s: %d expectation(s) did not match the kernel\n", trace_name,
			mismatches);
		return 1;
	}
	return 0;
}
