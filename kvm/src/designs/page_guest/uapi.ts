/**
 * The uAPI of "mm: Introduce guest-only pages" (Kirill A. Shutemov, dated 16 Apr 2021, posted in
 * "Re: [RFCv2 13/13] KVM: unmap guest memory using poisoned pages", 21 May 2021,
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/; updated 4 Jun 2021 on v5.12,
 * branch kas/linux.git kvm-unmapped-guest-only).
 */
import { PG_arch_1, VM_HIGH_ARCH_4 } from '@cocosim/mm';

/** include/uapi/asm-generic/mman-common.h: "KVM guest memory", an mprotect(2) flag. */
export const PROT_GUEST = 0x04000000;

/** include/linux/mm.h: the VMA flag PROT_GUEST sets (VM_HIGH_ARCH_4, free on x86 in 6.18 too). */
export const VM_GUEST = VM_HIGH_ARCH_4;

/**
 * include/linux/mm.h: "allow access to guest-only pages". The patch's 0x100000 (the bit after
 * 5.12's FOLL_FAST_ONLY) is FOLL_FAST_ONLY itself in 6.18 (1 << 20), so cocosim takes the first
 * bit above 6.18's FOLL_* (bit 23).
 */
export const FOLL_GUEST = 1 << 23;

/**
 * include/linux/page-flags.h: PAGEFLAG(Guest, arch_2, PF_HEAD). 6.18 defines PG_arch_2 only with
 * CONFIG_ARCH_USES_PG_ARCH_2 (arm64), and x86 leaves PG_arch_1 unused, so cocosim keeps PG_guest
 * in PG_arch_1: like the patch's bit, it is cleared when the page is freed.
 */
export const PG_guest = PG_arch_1;
