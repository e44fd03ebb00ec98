/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * guest_load / guest_store on x86-64: included by oracle.c (uses its result and diagnostics).
 *
 * The vCPU runs a few bytes of user-mode (CPL3) 64-bit code with the first 512 GiB of GPAs
 * identity-mapped by 2 MiB pages (the page tables are built once and never change), in a memslot the oracle owns, so that its accesses fault through KVM's MMU as on VMX/SVM
 * hardware (under PVM, CPL0 code is run by the instruction emulator, which reads guest memory
 * through userspace_addr and bypasses guest_memfd). The code copies between the target GPA and a
 * staging buffer in the oracle's memslot, then signals completion with an MMIO store to a GPA that
 * has no memslot. Any other exit from KVM_RUN is the op's "exit".
 *
 * Oracle memslot: slot ORACLE_SLOT at ORACLE_GPA (508 GiB), 4 MiB; the done-MMIO GPA is the byte
 * after it. A trace that puts its own memslot there, or uses slot ORACLE_SLOT, cannot use guest ops.
 */

#define ORACLE_SLOT	32763U
#define ORACLE_GPA	(508ULL << 30)
#define ORACLE_SIZE	(4UL << 20)
#define OFF_PML4	0x0000
#define OFF_PDPT	0x1000
#define OFF_GDT		0x2000
#define OFF_TSS		0x3000
#define OFF_CODE	0x4000
#define OFF_STACK_TOP	0x6000
#define OFF_STAGING	0x100000
#define STAGING_SIZE	(1UL << 20)
#define OFF_PD		0x200000	/* 512 page directories */
#define DONE_GPA	(ORACLE_GPA + ORACLE_SIZE)

/* entry points in the code page */
#define ENTRY_REP	0	/* rep movsb */
#define ENTRY_B1	16	/* movzx eax, byte [rsi]; mov [rdi], al */
#define ENTRY_W2	32	/* movzx eax, word [rsi]; mov [rdi], ax */
#define ENTRY_D4	48	/* mov eax, [rsi]; mov [rdi], eax */
#define ENTRY_Q8	64	/* mov rax, [rsi]; mov [rdi], rax */

static const uint8_t guest_code[][16] = {
	/* each ends with: mov [rdx], al (done MMIO store); jmp $ */
	{ 0xf3, 0xa4, 0x88, 0x02, 0xeb, 0xfe },
	{ 0x0f, 0xb6, 0x06, 0x88, 0x07, 0x88, 0x02, 0xeb, 0xfe },
	{ 0x0f, 0xb7, 0x06, 0x66, 0x89, 0x07, 0x88, 0x02, 0xeb, 0xfe },
	{ 0x8b, 0x06, 0x89, 0x07, 0x88, 0x02, 0xeb, 0xfe },
	{ 0x48, 0x8b, 0x06, 0x48, 0x89, 0x07, 0x88, 0x02, 0xeb, 0xfe },
};

static void __attribute__((noreturn, format(printf, 2, 3)))
guest_die(struct call *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	die_at(c->line, 0, "cannot run the oracle's guest: %s", msg);
}

static void guest_setup_vm(struct vmrec *vm, struct call *c)
{
	struct o_kvm_userspace_memory_region r;
	uint64_t *pml4, *pdpt, *gdt;
	uint8_t *mem;

	if (vm->ready)
		return;
	if (vm->fd < 0)
		guest_die(c, "the VM fd was closed before the first guest op");
	mem = oracle_private_mmap(ORACLE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	if (mem == MAP_FAILED)
		guest_die(c, "mmap: %s", strerror(errno));
	pml4 = (uint64_t *)(void *)(mem + OFF_PML4);
	pdpt = (uint64_t *)(void *)(mem + OFF_PDPT);
	gdt = (uint64_t *)(void *)(mem + OFF_GDT);
	/* identity map of the first 512 GiB, user-accessible, by 2 MiB pages */
	pml4[0] = (ORACLE_GPA + OFF_PDPT) | 0x7;
	for (uint64_t i = 0; i < 512; i++) {
		uint64_t *pd = (uint64_t *)(void *)(mem + OFF_PD + i * PAGE_SIZE);

		pdpt[i] = (ORACLE_GPA + OFF_PD + i * PAGE_SIZE) | 0x7;
		for (uint64_t j = 0; j < 512; j++)
			pd[j] = (i << 30 | j << 21) | 0x87;
	}
	gdt[1] = 0x00af9b000000ffffULL;	/* kernel code64 */
	gdt[2] = 0x00cf93000000ffffULL;	/* kernel data */
	gdt[3] = 0x00affb000000ffffULL;	/* user code64, selector 0x1b */
	gdt[4] = 0x00cff3000000ffffULL;	/* user data, selector 0x23 */
	{
		/* 64-bit busy TSS at OFF_TSS, selector 0x28 */
		uint64_t base = ORACLE_GPA + OFF_TSS, limit = 0x67;

		gdt[5] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x8bULL << 40 |
			 ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
		gdt[6] = base >> 32;
	}
	for (size_t i = 0; i < sizeof(guest_code) / sizeof(guest_code[0]); i++)
		memcpy(mem + OFF_CODE + 16 * i, guest_code[i], 16);

	memset(&r, 0, sizeof(r));
	r.slot = ORACLE_SLOT;
	r.guest_phys_addr = ORACLE_GPA;
	r.memory_size = ORACLE_SIZE;
	r.userspace_addr = (uint64_t)(uintptr_t)mem;
	if (ioctl(vm->fd, O_KVM_SET_USER_MEMORY_REGION, &r) < 0)
		guest_die(c, "KVM_SET_USER_MEMORY_REGION of slot %u at 0x%llx: %s", ORACLE_SLOT,
			  (unsigned long long)ORACLE_GPA, strerror(errno));
	vm->mem = mem;
	vm->ready = true;
}

static void guest_setup_vcpu(struct vcpurec *vc, struct call *c)
{
	struct kvm_cpuid2 *cpuid;
	int kfd, nent = 256;
	bool lm = false;
	unsigned maxphy = 36;

	if (vc->ready)
		return;
	if (vc->fd < 0)
		guest_die(c, "the vCPU fd was closed");
	if (!vcpu_run(vc))
		guest_die(c, "cannot mmap struct kvm_run: %s", strerror(errno));
	kfd = oracle_kvm_fd();
	if (kfd < 0)
		guest_die(c, "open /dev/kvm: %s", strerror(errno));
	for (;;) {
		cpuid = calloc(1, sizeof(*cpuid) + (size_t)nent * sizeof(cpuid->entries[0]));
		if (!cpuid)
			guest_die(c, "out of memory");
		cpuid->nent = (uint32_t)nent;
		if (ioctl(kfd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			break;
		free(cpuid);
		if (errno != E2BIG || nent > 4096)
			guest_die(c, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		nent *= 2;
	}
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == 0x80000001)
			lm = e->edx & (1U << 29);
		if (e->function == 0x80000008)
			maxphy = e->eax & 0xff;
	}
	if (!lm || maxphy < 40)
		guest_die(c, "KVM's CPUID lacks long mode or 40-bit guest physical addresses");
	if (ioctl(vc->fd, KVM_SET_CPUID2, cpuid) < 0)
		fprintf(diag, "cocosim-oracle: %s: line %d: note: KVM_SET_CPUID2: %s\n", trace_name, c->line,
			strerror(errno));
	free(cpuid);
	vc->ready = true;
}

static void guest_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 3;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static void guest_set_state(struct vcpurec *vc, struct call *c, unsigned entry, uint64_t rsi, uint64_t rdi,
			    uint64_t rcx)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;

	if (ioctl(vc->fd, KVM_GET_SREGS, &sr) < 0)
		guest_die(c, "KVM_GET_SREGS: %s", strerror(errno));
	guest_segment(&sr.cs, 0x1b, 11, true);
	guest_segment(&sr.ds, 0x23, 3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.base = ORACLE_GPA + OFF_TSS;
	sr.tr.limit = 0x67;
	sr.tr.selector = 0x28;
	sr.tr.type = 11;
	sr.tr.present = 1;
	memset(&sr.ldt, 0, sizeof(sr.ldt));
	sr.ldt.type = 2;
	sr.ldt.unusable = 1;
	sr.gdt.base = ORACLE_GPA + OFF_GDT;
	sr.gdt.limit = 7 * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;	/* any exception is a triple fault: KVM_EXIT_SHUTDOWN */
	sr.cr0 = 0x80050033;	/* PG | AM | WP | NE | ET | MP | PE */
	sr.cr3 = ORACLE_GPA + OFF_PML4;
	sr.cr4 = 0x20;		/* PAE */
	sr.efer = 0x500;	/* LMA | LME */
	if (ioctl(vc->fd, KVM_SET_SREGS, &sr) < 0)
		guest_die(c, "KVM_SET_SREGS: %s", strerror(errno));
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = ORACLE_GPA + OFF_CODE + entry;
	regs.rsp = ORACLE_GPA + OFF_STACK_TOP;
	regs.rsi = rsi;
	regs.rdi = rdi;
	regs.rcx = rcx;
	regs.rdx = DONE_GPA;
	if (ioctl(vc->fd, KVM_SET_REGS, &regs) < 0)
		guest_die(c, "KVM_SET_REGS: %s", strerror(errno));
}

/*
 * Let KVM complete a pending MMIO/PIO (KVM_RUN with immediate_exit), so the next op starts clean.
 *
 * An access abandoned at an exit for an MMIO read of `rep movsb` would leave the rest of the
 * string pending: completing its element re-executes the instruction (complete_emulated_io() ->
 * kvm_emulate_instruction(EMULTYPE_NO_DECODE)), whose next element exits again, and an element
 * still pending when the next op's KVM_RUN comes is finished with the old decode and the new
 * registers (the next access would lose its first byte). So the count (rcx, which the
 * emulator re-reads after KVM_SET_REGS) is cut to the pending element first: completing it ends
 * the instruction, and immediate_exit keeps the guest from running further.
 */
static void guest_drain(struct vcpurec *vc, bool abandoned)
{
	if (abandoned && vc->run->exit_reason == O_KVM_EXIT_MMIO && !vc->run->mmio.is_write) {
		struct kvm_regs regs;

		if (ioctl(vc->fd, KVM_GET_REGS, &regs) == 0 && regs.rcx > 1) {
			regs.rcx = 1;
			ioctl(vc->fd, KVM_SET_REGS, &regs);
		}
	}
	for (int i = 0; i < 8; i++) {
		int r;

		memset(vc->run->mmio.data, 0, sizeof(vc->run->mmio.data));
		vc->run->immediate_exit = 1;
		r = ioctl(vc->fd, O_KVM_RUN, 0);
		vc->run->immediate_exit = 0;
		if (r < 0)
			break;
	}
}

/*
 * Make the vCPU copy len bytes between gpa and buf (store: buf -> gpa). Returns true when the
 * access completed (R.ret = 0); otherwise R holds the KVM_RUN error and/or the exit.
 */
static bool guest_access(struct vcpurec *vc, uint64_t gpa, uint8_t *buf, size_t len, bool store,
			 struct call *c)
{
	size_t done = 0;

	guest_setup_vm(vc->vm, c);
	guest_setup_vcpu(vc, c);
	while (done < len) {
		size_t n = len - done < STAGING_SIZE ? len - done : STAGING_SIZE;
		uint8_t *staging = vc->vm->mem + OFF_STAGING;
		uint64_t target = gpa + done, stage = ORACLE_GPA + OFF_STAGING;
		unsigned entry = ENTRY_REP;
		int r, e;

		if (n == len) {
			switch (n) {
			case 1: entry = ENTRY_B1; break;
			case 2: entry = ENTRY_W2; break;
			case 4: entry = ENTRY_D4; break;
			case 8: entry = ENTRY_Q8; break;
			}
		}
		if (store)
			memcpy(staging, buf + done, n);
		guest_set_state(vc, c, entry, store ? stage : target, store ? target : stage, n);
		vc->run->exit_reason = KVM_EXIT_UNKNOWN;
		vc->run->immediate_exit = 0;
		alarm(RUN_TIMEOUT);
		r = ioctl(vc->fd, O_KVM_RUN, 0);
		e = errno;
		alarm(0);
		if (r < 0) {
			R.ret = -1;
			R.err = e;
			if (vc->run->exit_reason == O_KVM_EXIT_MEMORY_FAULT)
				render_exit(&R.exit, vc->run);
			if (e == EINTR)
				fprintf(diag, "cocosim-oracle: %s: line %d: note: the guest did not finish in %d s\n",
					trace_name, c->line, RUN_TIMEOUT);
			guest_drain(vc, true);
			return false;
		}
		if (vc->run->exit_reason != O_KVM_EXIT_MMIO || !vc->run->mmio.is_write ||
		    vc->run->mmio.phys_addr != DONE_GPA) {
			R.ret = r;
			render_exit(&R.exit, vc->run);
			guest_drain(vc, true);
			return false;
		}
		guest_drain(vc, false);
		if (!store)
			memcpy(buf + done, staging, n);
		done += n;
	}
	R.ret = 0;
	return true;
}
