/**
 * The simulated guest CPU (cocosim plumbing, no kernel file): what a vCPU executes when KVM_RUN
 * enters guest mode. A guest program is a JS generator that yields instructions and receives
 * each one's result when it retires:
 *
 *   function* guest_code(base: bigint): GuestCode {
 *     yield* guestFill(base, 0xaa, 4096);                 // rep stosb
 *     const v = yield* guestLoad(base, 8);                // mov rax, [base]
 *     const ret = yield* vmcall(KVM_HC_MAP_GPA_RANGE, base, 1n, 0n, 0n);
 *   }
 *
 * x86.ts executes the instructions the way the hardware does: each access goes through the
 * vCPU's guest page tables (a GVA -> GPA map, by default the identity below 512 GiB, as the
 * kernel oracle's guest has) and then through KVM's MMU; a missing SPTE is a VM exit (EPT
 * violation) that KVM handles, after which the instruction is executed again. An instruction
 * that exits to user space (MMIO, PIO, a hypercall KVM forwards) retires when user space
 * completes it on the next KVM_RUN, as complete_userspace_io does.
 *
 * Instructions (the x86 they stand for):
 *   load / store  `mov` of 1, 2, 4 or 8 bytes (one access; an MMIO exit covers it), any other
 *                 length is `rep movsb` (byte elements; an MMIO exit covers one byte)
 *   fill          `rep stosb`
 *   scan          `repe scasb` with al = byte: compares guest memory with the byte, stopping at
 *                 the first that differs (the accesses end there); result its offset, or -1
 *                 when every byte matched. Reads like a load without building its bytes, so a
 *                 guest can check megabytes of a pattern (the selftests' memcmp_g loops).
 *   vmcall        the KVM hypercall: rax = nr, rbx/rcx/rdx/rsi = a0..a3; result rax
 *   pio           `in`/`out` of 1, 2 or 4 bytes on a port (rdi optionally loaded first, as the
 *                 selftests' ucall does); result the value read
 *   accept        the guest's acceptance of private memory (TDG.MEM.PAGE.ACCEPT, PVALIDATE,
 *                 RSI_IPA_STATE_SET): kvm_x86_ops.guest_accept, no VM exit
 *   fwcall        a call to the platform's trusted firmware (Arm SMC/HVC per SMCCC: RSI calls to
 *                 the RMM, pKVM's hypercalls; TDCALL): fn in x0/rax, args in x1..; answered by
 *                 kvm_x86_ops.guest_fwcall, which may first fault or exit to user space; result
 *                 the registers it returns (x0..)
 *   hlt           `hlt`
 */

export type GuestInsn =
  | { readonly op: 'load'; readonly gva: bigint; readonly len: number }
  | { readonly op: 'store'; readonly gva: bigint; readonly data: Uint8Array }
  | { readonly op: 'fill'; readonly gva: bigint; readonly len: number; readonly byte: number }
  | { readonly op: 'scan'; readonly gva: bigint; readonly len: number; readonly byte: number }
  | { readonly op: 'vmcall'; readonly nr: bigint; readonly args: readonly [bigint, bigint, bigint, bigint] }
  | { readonly op: 'pio'; readonly port: number; readonly size: 1 | 2 | 4; readonly in: boolean; readonly value?: number; readonly rdi?: bigint }
  | { readonly op: 'accept'; readonly gpa: bigint; readonly npages: number; readonly to_private: boolean }
  | { readonly op: 'fwcall'; readonly fn: bigint; readonly args: readonly bigint[] }
  | { readonly op: 'hlt' };

/** What a retired instruction gives back: bytes (load), rax (vmcall, pio in), a status (accept), x0.. (fwcall). */
export type GuestInsnResult = Uint8Array | bigint | number | readonly bigint[] | undefined;

/** A piece of guest code: yields instructions, returns T. */
export type GuestCode<T = void> = Generator<GuestInsn, T, GuestInsnResult>;

/**
 * A guest program's entry point. It is called at the first KVM_RUN with the argument registers
 * as the selftests' vcpu_args_set() leaves them (rdi, rsi, rdx, rcx, r8, r9).
 */
export type GuestProgram = (...args: bigint[]) => GuestCode;

/** The guest's page tables: GVA -> GPA, or undefined where the guest has no mapping (#PF). */
export type GuestPageTables = (gva: bigint) => bigint | undefined;

/** The first GPA beyond the identity map of the kernel oracle's guest (512 GiB). */
export const GUEST_IDENTITY_MAP_END = 1n << 39n;

/** The page tables of the kernel oracle's guest (test/oracle/guest_x86.h): 512 GiB identity-mapped. */
export const identityPageTables: GuestPageTables = (gva) => (gva >= 0n && gva < GUEST_IDENTITY_MAP_END ? gva : undefined);

function big(x: bigint | number): bigint {
  return typeof x === 'bigint' ? x : BigInt(x);
}

/** `mov` / `rep movsb` from guest memory: the bytes read. */
export function* guestLoad(gva: bigint | number, len: number): GuestCode<Uint8Array> {
  return (yield { op: 'load', gva: big(gva), len }) as Uint8Array;
}

/** `mov` / `rep movsb` to guest memory. */
export function* guestStore(gva: bigint | number, data: Uint8Array): GuestCode {
  yield { op: 'store', gva: big(gva), data };
}

/** `rep stosb`: memset() of guest memory. */
export function* guestFill(gva: bigint | number, byte: number, len: number): GuestCode {
  yield { op: 'fill', gva: big(gva), len, byte };
}

/**
 * `repe scasb` with al = `byte` over `len` bytes at `gva`: the offset of the first byte that is
 * not `byte` (bytes after it are not read), or -1 when all of them are.
 */
export function* guestScan(gva: bigint | number, byte: number, len: number): GuestCode<number> {
  return (yield { op: 'scan', gva: big(gva), len, byte: byte & 0xff }) as number;
}

/** A little-endian u64 load (`mov rax, [gva]`). */
export function* guestReadU64(gva: bigint | number): GuestCode<bigint> {
  const b = yield* guestLoad(gva, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

/** A little-endian u64 store (`mov [gva], rax`). */
export function* guestWriteU64(gva: bigint | number, v: bigint | number): GuestCode {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, big(v)), true);
  yield* guestStore(gva, b);
}

/** `vmcall` (the selftests' kvm_hypercall()): rax after the hypercall. */
export function* vmcall(nr: bigint | number, a0: bigint | number = 0n, a1: bigint | number = 0n, a2: bigint | number = 0n, a3: bigint | number = 0n): GuestCode<bigint> {
  return (yield { op: 'vmcall', nr: big(nr), args: [big(a0), big(a1), big(a2), big(a3)] }) as bigint;
}

/** `in al/ax/eax, dx`, with rdi loaded first if given: the value read. */
export function* pioIn(port: number, size: 1 | 2 | 4 = 1, rdi?: bigint): GuestCode<bigint> {
  return (yield { op: 'pio', port, size, in: true, ...(rdi !== undefined && { rdi }) }) as bigint;
}

/** `out dx, al/ax/eax`. */
export function* pioOut(port: number, value: number, size: 1 | 2 | 4 = 1): GuestCode {
  yield { op: 'pio', port, size, in: false, value };
}

/** The guest accepts (to_private) or releases `npages` pages at `gpa`: 0 or the vendor's error. */
export function* guestAccept(gpa: bigint | number, npages: number, to_private: boolean): GuestCode<number> {
  return (yield { op: 'accept', gpa: big(gpa), npages, to_private }) as number;
}

/** A call to the platform's firmware (`smc #0` / `hvc #0` with x0 = fn, TDCALL): the registers it returns, x0 first. */
export function* fwcall(fn: bigint | number, ...args: (bigint | number)[]): GuestCode<readonly bigint[]> {
  return (yield { op: 'fwcall', fn: big(fn), args: args.map(big) }) as readonly bigint[];
}

/** `hlt`. */
export function* hlt(): GuestCode {
  yield { op: 'hlt' };
}
