import { describe, expect, test } from 'vitest';
import { Errno, RingSink, Tracer, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, TASK_SIZE_MAX, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import { KVM_MEMSLOT_INVALID, type Kvm } from './kvm_host.js';
import {
  KVM_HVA_ERR_BAD, KVM_HVA_ERR_RO_BAD, __gfn_to_hva_many, __gfn_to_memslot, gfn_to_hva_memslot_prot,
  gfn_to_memslot, id_to_memslot, kvm_for_each_memslot_in_gfn_range, kvm_free_memslots, kvm_is_error_hva,
} from './kvm_memslots.js';
import {
  KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY,
  KVM_SET_USER_MEMORY_REGION, KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM,
} from './uapi.js';

const MB2 = 0x200000;
const GPA = 0xc0000000;

interface Vm {
  p: Process;
  kernel: Kernel;
  vm: number;
  kvm: Kvm;
  /** 8 MiB of anonymous memory for the slots. */
  mem: bigint;
  trace: RingSink;
}

function setup(sw = false): Vm {
  const root = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar(sw ? { x86_ops: kvm_sw_protected_x86_ops } : {}));
  const kernel = root.resolve(Kernel);
  const trace = new RingSink();
  root.resolve(Tracer).addSink(trace);
  const p = new Process(kernel);
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
  const kvm = p.task.files.lookup(vm)!.private_data as Kvm;
  const mem = p.mmap(0, 4 * MB2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return { p, kernel, vm, kvm, mem, trace };
}

/** The ioctl as C sees it: 0, or the errno. */
function set(t: Vm, v2: boolean, arg: unknown): number {
  const r = t.p.ioctl(t.vm, v2 ? KVM_SET_USER_MEMORY_REGION2 : KVM_SET_USER_MEMORY_REGION, arg);
  return r === 0 ? 0 : t.p.errno;
}

/** What a failed call must leave as it was. */
function snapshot(kvm: Kvm): unknown {
  const slots = kvm.memslots[0]!;
  return {
    generation: slots.generation,
    nr_memslot_pages: kvm.nr_memslot_pages,
    ids: [...slots.id_hash.entries()].map(([id, s]) => [id, s, s.base_gfn, s.npages, s.flags, s.userspace_addr]),
    gfns: [...slots.gfn_tree.ranges()].map((r) => [r.first, r.last, r.entry]),
  };
}

function gmem(t: Vm, size: number): number {
  return t.p.ioctl(t.vm, KVM_CREATE_GUEST_MEMFD, { size, flags: 0 });
}

describe('KVM_SET_USER_MEMORY_REGION(2): validation in kernel order (virt/kvm/kvm_main.c)', () => {
  test('the argument is copied in first: no struct, or a field no C program can write, is EFAULT', () => {
    const t = setup();
    for (const arg of [undefined, null, 0, 7, 'x', 12n]) expect(set(t, true, arg), String(arg)).toBe(Errno.EFAULT);
    // EFAULT before the flags are looked at.
    for (const bad of [0.5, NaN, Infinity, 'x', 2n ** 64n, -(2n ** 63n) - 1n, {}]) {
      expect(set(t, true, { slot: 0, flags: 0xff, guest_phys_addr: bad, memory_size: MB2, userspace_addr: t.mem }), String(bad)).toBe(Errno.EFAULT);
    }
    // v1 copies 32 bytes: what lies beyond them is never read.
    expect(set(t, false, { slot: 0, guest_phys_addr: 0, memory_size: MB2, userspace_addr: t.mem, guest_memfd: 'junk', guest_memfd_offset: 0.5 })).toBe(0);
    // Missing fields are zero: { slot: 1 } deletes slot 1, which does not exist.
    expect(set(t, true, { slot: 1 })).toBe(Errno.EINVAL);
  });

  test('v1 takes only LOG_DIRTY_PAGES and READONLY; GUEST_MEMFD needs v2', () => {
    const t = setup();
    for (const flags of [KVM_MEM_GUEST_MEMFD, 0x8, 0x100, 0x80000000]) {
      expect(set(t, false, { slot: 0, flags, memory_size: MB2, userspace_addr: t.mem }), `flags ${flags}`).toBe(Errno.EINVAL);
    }
    // The v1 check precedes the slot check and everything after: a delete with GUEST_MEMFD fails too.
    expect(set(t, false, { slot: 0, flags: KVM_MEM_GUEST_MEMFD })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, flags: 0x8, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, flags: KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES, memory_size: MB2 })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, flags: KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY, memory_size: MB2 })).toBe(Errno.EINVAL);
    for (const flags of [KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY]) {
      expect(set(t, false, { slot: 0, flags, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
      expect(set(t, false, { slot: 0 })).toBe(0);
    }
  });

  test('slot ids: user slots below 32764, address space 0 only; -1 is slot 0xffffffff', () => {
    const t = setup();
    expect(set(t, false, { slot: 32763, guest_phys_addr: 0x1000000000, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    for (const slot of [32764, 0xffff, 0x10000, 0x20000, -1, 0xffffffff, 2 ** 32 + 32764]) {
      expect(set(t, false, { slot, memory_size: MB2, userspace_addr: t.mem + BigInt(MB2) }), `slot ${slot}`).toBe(Errno.EINVAL);
    }
    // A u32 field keeps the low 32 bits, as a C assignment does: 2^32 + 1 is slot 1.
    expect(set(t, false, { slot: 2 ** 32 + 1, guest_phys_addr: 0, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    expect(id_to_memslot(t.kvm.memslots[0]!, 1)?.base_gfn).toBe(0);
  });

  test('sizes and addresses: page alignment, access_ok up to TASK_SIZE_MAX, wrap, KVM_MEM_MAX_NR_PAGES', () => {
    const t = setup();
    const r = (f: Record<string, unknown>): number => set(t, true, { slot: 2, memory_size: MB2, userspace_addr: t.mem, ...f });
    expect(r({ memory_size: MB2 - 1 })).toBe(Errno.EINVAL);
    expect(r({ guest_phys_addr: 1 })).toBe(Errno.EINVAL);
    expect(r({ userspace_addr: t.mem + 1n })).toBe(Errno.EINVAL);
    expect(r({ userspace_addr: 0xffff800000000000n })).toBe(Errno.EINVAL);
    expect(r({ userspace_addr: TASK_SIZE_MAX })).toBe(Errno.EINVAL);
    expect(r({ userspace_addr: TASK_SIZE_MAX - BigInt(MB2) + 4096n })).toBe(Errno.EINVAL);
    expect(r({ userspace_addr: -4096 })).toBe(Errno.EINVAL);
    expect(r({ guest_phys_addr: 0xfffffffffffff000n })).toBe(Errno.EINVAL);
    expect(r({ guest_phys_addr: -MB2 })).toBe(Errno.EINVAL); // ends at 2^64: wraps to 0
    expect(r({ memory_size: 2n ** 31n * 4096n, userspace_addr: 0 })).toBe(Errno.EINVAL);
    expect(r({ memory_size: 0x8000000000000000n })).toBe(Errno.EINVAL);
    // A delete is validated too: its host address must be aligned and in user space.
    expect(set(t, true, { slot: 0, userspace_addr: 0xffff800000000000n })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, guest_phys_addr: 4095 })).toBe(Errno.EINVAL);
    // Ending exactly at TASK_SIZE_MAX is fine; nothing needs to be mapped there (nor at 0).
    expect(r({ userspace_addr: TASK_SIZE_MAX - BigInt(MB2) })).toBe(0);
    expect(set(t, true, { slot: 2 })).toBe(0);
    expect(r({ userspace_addr: 0 })).toBe(0);
    expect(set(t, true, { slot: 2 })).toBe(0);
    // The largest user slot: KVM_MEM_MAX_NR_PAGES pages, at a GPA of 0.
    expect(r({ memory_size: (2n ** 31n - 1n) * 4096n, userspace_addr: 0 })).toBe(0);
    expect(t.kvm.nr_memslot_pages).toBe(2 ** 31 - 1);
  });

  test('guest_memfd_offset is checked, only with GUEST_MEMFD, before the address space and the GPA', () => {
    const t = setup();
    // Unaligned offset with a bad fd: EINVAL, bind (EBADF) never runs.
    expect(set(t, true, { slot: 1, flags: KVM_MEM_GUEST_MEMFD, memory_size: MB2, guest_memfd: 1000, guest_memfd_offset: 1 })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 1, flags: KVM_MEM_GUEST_MEMFD, memory_size: MB2, guest_memfd: 1000, guest_memfd_offset: -4096 })).toBe(Errno.EINVAL);
    // Without GUEST_MEMFD the offset and fd are not looked at.
    expect(set(t, true, { slot: 1, memory_size: MB2, userspace_addr: t.mem, guest_memfd: 1000, guest_memfd_offset: 1 })).toBe(0);
    // Aligned offset, bad fd: the bind's EBADF.
    expect(set(t, true, { slot: 2, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: MB2, guest_memfd: 1000 })).toBe(Errno.EBADF);
    expect(set(t, true, { slot: 2, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: MB2, guest_memfd: -1 })).toBe(Errno.EBADF);
  });

  test('overlap (EEXIST) comes before the guest_memfd bind (EBADF), and after a bad modify (EINVAL)', () => {
    const t = setup();
    expect(set(t, true, { slot: 3, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    expect(set(t, true, { slot: 4, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA + 4096, memory_size: MB2, guest_memfd: 1000 })).toBe(Errno.EEXIST);
    expect(set(t, true, { slot: 4, guest_phys_addr: GPA - MB2 + 4096, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EEXIST);
    expect(set(t, true, { slot: 4, guest_phys_addr: GPA + MB2, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    // Moving slot 3 onto slot 4: EEXIST; resizing it there too: EINVAL (the modify check is first).
    expect(set(t, true, { slot: 3, guest_phys_addr: GPA + MB2, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EEXIST);
    expect(set(t, true, { slot: 3, guest_phys_addr: GPA + MB2, memory_size: 2 * MB2, userspace_addr: t.mem })).toBe(Errno.EINVAL);
    // Bad flags on an overlapping create: EINVAL.
    expect(set(t, true, { slot: 5, flags: 0x8, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EINVAL);
  });

  test('an existing slot: size, host address and READONLY are fixed; a guest_memfd slot cannot change at all', () => {
    const t = setup();
    expect(set(t, true, { slot: 0, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    expect(set(t, true, { slot: 0, memory_size: 2 * MB2, userspace_addr: t.mem })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, memory_size: MB2, userspace_addr: t.mem + BigInt(MB2) })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, flags: KVM_MEM_READONLY, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EINVAL);
    expect(set(t, true, { slot: 0, memory_size: MB2, userspace_addr: t.mem })).toBe(0);

    const fd = gmem(t, 2 * MB2);
    const gm = { slot: 1, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: MB2, guest_memfd: fd };
    expect(set(t, true, gm)).toBe(0);
    const before = snapshot(t.kvm);
    // Even an identical re-issue, and one whose fd is bad: the immutability check is first.
    expect(set(t, true, gm)).toBe(Errno.EINVAL);
    expect(set(t, true, { ...gm, guest_memfd: 1000 })).toBe(Errno.EINVAL);
    expect(set(t, true, { ...gm, guest_phys_addr: GPA + MB2 })).toBe(Errno.EINVAL);
    // Dropping GUEST_MEMFD with everything else unchanged is no FLAGS_ONLY change (6.18.y).
    expect(set(t, true, { slot: 1, guest_phys_addr: GPA, memory_size: MB2 })).toBe(Errno.EINVAL);
    expect(snapshot(t.kvm)).toEqual(before);
    // Deleting looks at neither the fd nor the offset's file.
    expect(set(t, true, { slot: 1, flags: KVM_MEM_GUEST_MEMFD, guest_memfd: -1 })).toBe(0);
    expect(id_to_memslot(t.kvm.memslots[0]!, 1)).toBeUndefined();
    // The file range is free again.
    expect(set(t, true, { ...gm, slot: 2, guest_phys_addr: 2 * GPA })).toBe(0);
  });

  test('a failed call changes nothing, and the argument object is never written', () => {
    const t = setup();
    expect(set(t, true, { slot: 0, flags: KVM_MEM_LOG_DIRTY_PAGES, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    expect(set(t, true, { slot: 1, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    const before = snapshot(t.kvm);
    const bitmap = id_to_memslot(t.kvm.memslots[0]!, 0)!.dirty_bitmap;
    const fd = gmem(t, MB2);
    const failing: [Record<string, unknown>, number][] = [
      [{ slot: 2, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem }, Errno.EEXIST],
      [{ slot: 2, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: 2 * GPA, memory_size: 2 * MB2, guest_memfd: fd }, Errno.EINVAL],
      [{ slot: 2, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: 2 * GPA, memory_size: MB2, guest_memfd: t.vm }, Errno.EINVAL],
      [{ slot: 3 }, Errno.EINVAL],
      [{ slot: 0, memory_size: MB2, userspace_addr: t.mem + 4096n }, Errno.EINVAL],
      [{ slot: 0, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem }, Errno.EEXIST],
    ];
    for (const [arg, errno] of failing) {
      const copy = { ...arg };
      expect(set(t, true, arg), `slot ${String(arg.slot)} gpa ${String(arg.guest_phys_addr)}`).toBe(errno);
      expect(arg).toEqual(copy);
    }
    expect(snapshot(t.kvm)).toEqual(before);
    expect(id_to_memslot(t.kvm.memslots[0]!, 0)!.dirty_bitmap).toBe(bitmap);
    // The guest_memfd whose bind failed later is not left bound: the whole file binds now.
    expect(set(t, true, { slot: 2, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: 2 * GPA, memory_size: MB2, guest_memfd: fd })).toBe(0);
    const ok = { slot: 5, guest_phys_addr: 3 * GPA, memory_size: MB2, userspace_addr: t.mem };
    const copy = { ...ok };
    expect(set(t, true, ok)).toBe(0);
    expect(ok).toEqual(copy);
  });
});

describe('kvm_set_memslot(): changes, generations, accounting', () => {
  test('CREATE and FLAGS_ONLY swap the slots once, MOVE and DELETE twice; an unchanged re-issue not at all', () => {
    const t = setup();
    const slots = t.kvm.memslots[0]!;
    const gen = (): number => slots.generation;
    /** The generations a call moves on, and the kvm_memslots_swap charges it makes (the same). */
    const swaps = (arg: unknown, errno = 0): [number, number] => {
      const g = gen();
      const { result, cost } = t.kernel.cost.measure('set', () => set(t, true, arg));
      expect(result).toBe(errno);
      return [gen() - g, cost.items.find((i) => i.name === 'kvm_memslots_swap')?.count ?? 0];
    };
    const base = { slot: 0, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem };
    expect(swaps(base)).toEqual([1, 1]);
    expect(swaps(base)).toEqual([0, 0]);
    expect(swaps({ ...base, flags: KVM_MEM_LOG_DIRTY_PAGES })).toEqual([1, 1]);
    expect(swaps({ ...base, flags: KVM_MEM_LOG_DIRTY_PAGES, guest_phys_addr: 2 * GPA })).toEqual([2, 2]);
    expect(swaps({ slot: 0 })).toEqual([2, 2]);
    expect(swaps({ slot: 0 }, Errno.EINVAL)).toEqual([0, 0]);
  });

  test('nr_memslot_pages counts created slots and forgets deleted ones; MOVE keeps the count', () => {
    const t = setup();
    expect(set(t, true, { slot: 0, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    expect(set(t, true, { slot: 1, guest_phys_addr: GPA, memory_size: 2 * MB2, userspace_addr: t.mem })).toBe(0);
    expect(t.kvm.nr_memslot_pages).toBe(3 * 512);
    expect(set(t, true, { slot: 1, guest_phys_addr: 2 * GPA, memory_size: 2 * MB2, userspace_addr: t.mem })).toBe(0);
    expect(t.kvm.nr_memslot_pages).toBe(3 * 512);
    expect(set(t, true, { slot: 0 })).toBe(0);
    expect(t.kvm.nr_memslot_pages).toBe(2 * 512);
  });

  test('MOVE makes a new slot at the new gfns; the old gfns have none', () => {
    const t = setup();
    const slots = t.kvm.memslots[0]!;
    expect(set(t, true, { slot: 7, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    const old = id_to_memslot(slots, 7)!;
    expect(set(t, true, { slot: 7, guest_phys_addr: 2 * GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    const moved = id_to_memslot(slots, 7)!;
    expect(moved).not.toBe(old);
    expect(moved.base_gfn).toBe(2 * GPA / 4096);
    expect(__gfn_to_memslot(slots, GPA / 4096)).toBeUndefined();
    expect(__gfn_to_memslot(slots, 2 * GPA / 4096 + 511)).toBe(moved);
    expect(__gfn_to_memslot(slots, 2 * GPA / 4096 + 512)).toBeUndefined();
    expect([...slots.gfn_tree.ranges()].length).toBe(1);
  });

  test('the dirty bitmap: allocated when logging starts, kept across a MOVE, dropped when logging stops', () => {
    const t = setup();
    const slots = t.kvm.memslots[0]!;
    const base = { slot: 0, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem };
    expect(set(t, true, base)).toBe(0);
    expect(id_to_memslot(slots, 0)!.dirty_bitmap).toBeNull();
    expect(set(t, true, { ...base, flags: KVM_MEM_LOG_DIRTY_PAGES })).toBe(0);
    const bitmap = id_to_memslot(slots, 0)!.dirty_bitmap;
    expect(bitmap?.length).toBe(512 / 8);
    expect(set(t, true, { ...base, flags: KVM_MEM_LOG_DIRTY_PAGES, guest_phys_addr: 2 * GPA })).toBe(0);
    expect(id_to_memslot(slots, 0)!.dirty_bitmap).toBe(bitmap);
    expect(set(t, true, { ...base, guest_phys_addr: 2 * GPA })).toBe(0);
    expect(id_to_memslot(slots, 0)!.dirty_bitmap).toBeNull();
  });

  test('a MOVE the arch refuses (beyond the largest gfn) leaves the slot, two generations on', () => {
    const t = setup();
    const slots = t.kvm.memslots[0]!;
    expect(set(t, true, { slot: 0, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    const old = id_to_memslot(slots, 0)!;
    const g = slots.generation;
    expect(set(t, true, { slot: 0, guest_phys_addr: 0xfffffffffe00000n, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EINVAL);
    expect(slots.generation).toBe(g + 2);
    expect(id_to_memslot(slots, 0)).toBe(old);
    expect(old.flags & KVM_MEMSLOT_INVALID).toBe(0);
    expect(__gfn_to_memslot(slots, GPA / 4096)).toBe(old);
    expect(t.kvm.nr_memslot_pages).toBe(512);
  });

  test('each successful call is traced with its struct; failures are not', () => {
    const t = setup();
    expect(set(t, true, { slot: 1, flags: 0, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem, guest_memfd: 5 })).toBe(0);
    expect(set(t, false, { slot: 2, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(Errno.EEXIST);
    expect(set(t, false, { slot: 1 })).toBe(0);
    const recs = t.trace.find('cocosim_kvm_set_user_memory_region');
    expect(recs.map((r) => r.args)).toEqual([
      { slot: 1, flags: 0, guest_phys_addr: BigInt(GPA), memory_size: BigInt(MB2), userspace_addr: t.mem, guest_memfd: 5, guest_memfd_offset: 0n },
      { slot: 1, flags: 0, guest_phys_addr: 0n, memory_size: 0n, userspace_addr: 0n },
    ]);
  });
});

describe('memslot lookups', () => {
  test('by gfn and by hva: INVALID and missing slots are KVM_HVA_ERR_BAD, writes to READONLY ones KVM_HVA_ERR_RO_BAD', () => {
    const t = setup();
    expect(set(t, true, { slot: 0, flags: KVM_MEM_READONLY, guest_phys_addr: GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    expect(set(t, true, { slot: 1, guest_phys_addr: GPA + MB2, memory_size: MB2, userspace_addr: t.mem + BigInt(MB2) })).toBe(0);
    const g = GPA / 4096;
    const ro = gfn_to_memslot(t.kvm, g + 3)!;
    const rw = gfn_to_memslot(t.kvm, g + 512)!;
    expect(ro.id).toBe(0);
    expect(rw.id).toBe(1);
    expect(gfn_to_memslot(t.kvm, g - 1)).toBeUndefined();
    expect(gfn_to_hva_memslot_prot(ro, g + 3)).toEqual({ hva: t.mem + 3n * 4096n, writable: false });
    expect(gfn_to_hva_memslot_prot(rw, g + 513)).toEqual({ hva: t.mem + BigInt(MB2) + 4096n, writable: true });
    expect(gfn_to_hva_memslot_prot(undefined, g)).toBe(-Errno.EFAULT);
    expect(__gfn_to_hva_many(ro, g, true)).toBe(KVM_HVA_ERR_RO_BAD);
    expect(__gfn_to_hva_many(ro, g, false)).toBe(t.mem);
    expect(kvm_is_error_hva(KVM_HVA_ERR_BAD) && kvm_is_error_hva(KVM_HVA_ERR_RO_BAD) && !kvm_is_error_hva(t.mem)).toBe(true);
    ro.flags |= KVM_MEMSLOT_INVALID;
    expect(__gfn_to_hva_many(ro, g, false)).toBe(KVM_HVA_ERR_BAD);
    expect(gfn_to_hva_memslot_prot(ro, g)).toBe(-Errno.EFAULT);
  });

  test('kvm_for_each_memslot_in_gfn_range() visits the slots overlapping [start, end) by gfn', () => {
    const t = setup();
    for (const [slot, gpa] of [[5, 3 * GPA], [1, GPA], [9, 2 * GPA]] as const) {
      expect(set(t, true, { slot, guest_phys_addr: gpa, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    }
    const seen = (start: number, end: number): number[] => {
      const ids: number[] = [];
      kvm_for_each_memslot_in_gfn_range(t.kvm.memslots[0]!, start, end, (s) => void ids.push(s.id));
      return ids;
    };
    const g = GPA / 4096;
    expect(seen(0, 4 * g)).toEqual([1, 9, 5]);
    expect(seen(g + 511, 2 * g + 1)).toEqual([1, 9]);
    expect(seen(g + 512, 2 * g)).toEqual([]);
    expect(seen(g, g)).toEqual([]);
    const first: number[] = [];
    kvm_for_each_memslot_in_gfn_range(t.kvm.memslots[0]!, 0, 4 * g, (s) => (first.push(s.id), false));
    expect(first).toEqual([1]);
  });

  test('kvm_free_memslots() empties every set and releases guest_memfd bindings', () => {
    const t = setup();
    const fd = gmem(t, MB2);
    expect(set(t, true, { slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: GPA, memory_size: MB2, guest_memfd: fd })).toBe(0);
    expect(set(t, true, { slot: 1, guest_phys_addr: 2 * GPA, memory_size: MB2, userspace_addr: t.mem })).toBe(0);
    const slot = id_to_memslot(t.kvm.memslots[0]!, 0)!;
    expect(slot.gmem.file).not.toBeNull();
    kvm_free_memslots(t.kvm);
    expect(slot.gmem.file).toBeNull();
    expect(t.kvm.memslots[0]!.id_hash.size).toBe(0);
    expect(t.kvm.memslots[0]!.gfn_tree.size).toBe(0);
  });
});
