/**
 * The bad-input matrix's table (issue 10, item 4): for every op of the trace op table
 * (bench/src/trace/ops.ts allOps()) and, for `ioctl`, every KVM request the name table knows
 * (and each field of its struct), the argument values at the edges and the outcome the kernel
 * gives each, with where that outcome comes from.
 *
 * A case is one op (or one ioctl request) with a baseline call that works on a host prepared by
 * setupResources(); each row changes one argument of the baseline to one value. The values are
 * the fuzzer's edges (bench/src/fuzz/generate.ts EDGES, SIGNED_EDGES, FD_EDGES, DATA_LENS,
 * NAME_LENS), plus what no trace can spell and a JS caller can pass: a fraction, NaN and a huge
 * string (the simulator treats those as the argument's invalid value, mm/src/mman.ts
 * ulong_arg()); and for fds, a file of each kind and a closed fd.
 *
 * An outcome is 'ok' (the call succeeded), an errno name, or a signal name. Each expectation
 * names its source: the kernel function whose check decides, or the kernel oracle's recording
 * (test/traces/NAME.kernel.jsonl, call i).
 */
import { fileURLToPath } from 'node:url';
import type { Kernel } from '@cocosim/mm';
import { vfio_sim_device_add } from '@cocosim/vfio';

export const PAGE = 4096;
const PG = BigInt(PAGE);
const TWO63 = 2n ** 63n;

/* ---- bench's modules, loaded by path (the test package has no project reference to bench) ---- */

export interface OpResult {
  readonly ret: number | bigint;
  readonly errno?: number;
  readonly signal?: { readonly signo: number | string; readonly si_code: number | string };
  readonly exit?: Record<string, unknown>;
}

export interface ArgSpec {
  readonly name: string;
  readonly kind: 'fd' | 'int' | 'u64' | 'flags' | 'data' | 'string' | 'struct';
  readonly max?: number;
  readonly optional?: boolean;
}

export interface OpSpec {
  readonly name: string;
  readonly args: readonly ArgSpec[];
}

export interface GenerateModule {
  readonly EDGES: readonly (number | string)[];
  readonly SIGNED_EDGES: readonly (number | string)[];
  readonly FD_EDGES: readonly number[];
  readonly DATA_LENS: readonly number[];
  readonly NAME_LENS: readonly number[];
  readonly STRUCTS: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly RESERVED_ARRAYS: Readonly<Record<string, readonly [string, number]>>;
  ioctlRequestNames(): string[];
}

export interface TraceModule {
  allOps(): OpSpec[];
  getOp(name: string): OpSpec | undefined;
  runOp(op: OpSpec, ctx: { platform: unknown; process: unknown }, args: readonly unknown[]): OpResult;
  errnoName(errno: number): string | undefined;
  signalName(signo: number): string;
  readonly names: { get(name: string): bigint | undefined };
}

export interface HostModule {
  createPlatform(opts: { vendor: string; design: string; debugVm: boolean; mm: { nr_pages: number } }): {
    readonly kernel: object;
    process(): unknown;
  };
  readonly VENDORS: ReadonlyMap<string, { readonly cvm?: { readonly vm_type: number } }>;
}

const benchSrc = (p: string): string => fileURLToPath(new URL(`../../bench/src/${p}`, import.meta.url));

export async function loadBench(): Promise<{ gen: GenerateModule; trace: TraceModule; host: HostModule }> {
  const [gen, trace, host] = await Promise.all([
    import(benchSrc('fuzz/generate.ts')) as Promise<GenerateModule>,
    import(benchSrc('trace/index.ts')) as Promise<TraceModule>,
    import(benchSrc('host.ts')) as Promise<HostModule>,
  ]);
  return { gen, trace, host };
}

/* ---- values ---- */

/** One value of an argument: how a failing row names it, and what the call gets. */
export interface Value {
  readonly label: string;
  /** The JS value the op gets (for an fd of a kind, resolved against the host's resources). */
  readonly js: unknown;
  /** An fd of a kind: the resource it names (setupResources()). */
  readonly fd?: FdKind;
}

/** The 64-bit register a C program passes for `v`; undefined for what no C program can pass. */
export function reg(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v >= -TWO63 && v < 2n ** 64n ? BigInt.asUintN(64, v) : undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt.asUintN(64, BigInt(v));
  return undefined;
}

/** As a C `long long` / loff_t. */
export const s64 = (u: bigint): bigint => BigInt.asIntN(64, u);
/** As a C `unsigned int` (the low 32 bits the syscall wrappers keep). */
export const u32 = (u: bigint): bigint => u & 0xffff_ffffn;
/** As a C `int`. */
export const i32 = (u: bigint): bigint => BigInt.asIntN(32, u);

const HUGE_STRING = 'x'.repeat(1 << 20);

/** What no trace can spell and a JS caller can pass: the simulator's "no C value". */
export const JS_ONLY: readonly Value[] = [
  { label: '0.5', js: 0.5 },
  { label: 'NaN', js: Number.NaN },
  { label: 'huge string', js: HUGE_STRING },
];

function edgeValue(e: number | string): Value {
  if (typeof e === 'number') return { label: String(e), js: e };
  const neg = e.startsWith('-');
  const v = BigInt(neg ? e.slice(1) : e);
  return { label: e, js: neg ? -v : v };
}

/** The integer edges of the fuzzer: every integer argument gets them. */
export function intValues(gen: GenerateModule, signed: boolean): Value[] {
  const edges = signed ? [...gen.EDGES, ...gen.SIGNED_EDGES] : [...gen.EDGES, -1];
  return [...edges.map(edgeValue), ...JS_ONLY];
}

/** The resources a host is prepared with, by the kind of fd each is. */
export type FdKind = 'memfd' | 'devnull' | 'kvm' | 'vm' | 'vcpu' | 'gmem' | 'closed' | VfioFdKind;
export const FD_KINDS: readonly FdKind[] = ['memfd', 'devnull', 'kvm', 'vm', 'vcpu', 'gmem', 'closed'];
/**
 * The VFIO files (setupResources()): the type1 container with its group, the iommufd, a device
 * cdev bound to it and attached, and a device cdev opened but not bound. Only the VFIO and
 * iommufd requests' rows use them (fdValues(gen, true)).
 */
export type VfioFdKind = 'container' | 'group' | 'iommufd' | 'vdev' | 'cdev';
export const VFIO_FD_KINDS: readonly VfioFdKind[] = ['container', 'group', 'iommufd', 'vdev', 'cdev'];

/** The fd values: one of each kind (with `vfio`, the VFIO files too), the fuzzer's fd edges, and the JS-only values. */
export function fdValues(gen: GenerateModule, vfio = false): Value[] {
  return [
    ...[...FD_KINDS, ...(vfio ? VFIO_FD_KINDS : [])].map((k) => ({ label: `$${k}`, js: undefined, fd: k })),
    ...gen.FD_EDGES.map((n) => ({ label: String(n), js: n })),
    ...JS_ONLY,
  ];
}

/* ---- expectations ---- */

/** 'ok', an errno name, a signal name, or `exit:REASON` for a guest access that exited. */
export type Outcome = string;

export interface Expect {
  readonly outcome: Outcome;
  /** The kernel function, or oracle recording, that decides. */
  readonly src: string;
}

export const ok = (src: string): Expect => ({ outcome: 'ok', src });
export const err = (errno: string, src: string): Expect => ({ outcome: errno, src });

/** How a row's expected outcome is decided: from the value, the register it is, and the host. */
export type Rule = (v: Value, r: bigint | undefined, ctx: RuleCtx) => Expect;

/**
 * The fd rule most file calls share: EBADF for an fd no file is installed at (fdget() failing,
 * the oracle's fd-basics i=3..5 and file-io i=59..65), else what each kind gives.
 */
export function fdRule(byKind: Partial<Record<FdKind | 'stdio', Expect>>, fallback: Expect): Rule {
  const ebadf = err('EBADF', 'fdget(): no file at that fd (oracle fd-basics.kernel.jsonl i=4, file-io i=59)');
  return (v) => {
    if (v.fd !== undefined) return v.fd === 'closed' ? ebadf : byKind[v.fd] ?? fallback;
    /* 0-2 are /dev/null (stdin/stdout/stderr), 3 the memfd (setupResources opens it first) */
    if (v.js === 0 || v.js === 1 || v.js === 2) return byKind.stdio ?? byKind.devnull ?? fallback;
    if (v.js === 3) return byKind.memfd ?? fallback;
    return ebadf;
  };
}

/* ---- the host each row runs on ---- */

/** What setupResources() made: one fd of each kind and a shared mapping of the memfd. */
export interface Resources extends Readonly<Record<FdKind, number>> {
  /** The memfd's MAP_SHARED, PROT_READ|PROT_WRITE mapping of MAP_PAGES pages, faulted in. */
  readonly map: bigint;
  /** The guest physical address of memslot 0, which maps `map` (and the guest_memfd). */
  readonly gpa: bigint;
  /** The DMA buffer: DMA_PAGES anonymous pages, DMA-mapped at IOVA 0 in the container and the IOAS. */
  readonly dma: bigint;
  /** The IOAS of the iommufd, the bound device's object id, and the HWPT it attached to (its pt_id). */
  readonly ioas: number;
  readonly devid: number;
  readonly hwpt: number;
  /** The devices (vfio_device_add indices): in the container's group, attached to the IOAS, and the unbound one. */
  readonly dev0: number;
  readonly dev1: number;
  readonly dev2: number;
}

/** Pages of the DMA buffer. */
export const DMA_PAGES = 16;
/** The DMA buffer's address hint: far below the memfd mapping, so that no address row meets it. */
const DMA_HINT = 0x10000000;

/** Pages of the memfd, its mapping, the guest_memfd and memslot 0. */
export const MAP_PAGES = 4;


/** Where a row's rule looks: the vendor, and the host's resources (for map-relative edges). */
export interface RuleCtx {
  readonly vendor: string;
  readonly res: Resources;
}

/** An argument's rows: its values, and the rule giving each one's outcome. */
export interface ArgRows {
  readonly values: readonly Value[];
  readonly rule: Rule;
}

/** One op (or ioctl request): a baseline call and, per argument, the rows that change it. */
export interface Case {
  /** The op's name, or `ioctl REQUEST`. */
  readonly name: string;
  readonly op: string;
  readonly req?: string;
  /** The vendors (with design upstream) it runs on. */
  readonly vendors: readonly string[];
  /** The baseline's arguments, as the op takes them (op.args order). */
  base(res: Resources, vendor: string): unknown[];
  readonly baseExpect: (ctx: RuleCtx) => Expect;
  /** Argument name (for an ioctl struct: "arg.FIELD") -> its rows. */
  readonly args: Readonly<Record<string, ArgRows>>;
  /**
   * A successful call leaves nothing a later row of the case depends on (KVM_SET_REGS overwrites
   * every register), so the host is kept rather than made anew.
   */
  readonly keepHostOnSuccess?: boolean;
}

/** An address relative to the memfd mapping: `$map+OFF`. */
export interface MapValue extends Value {
  readonly mapOff: bigint;
}

export function isMapValue(v: Value): v is MapValue {
  return 'mapOff' in v;
}

/** The mapping-relative edges every address argument also gets. */
export const MAP_EDGES: readonly MapValue[] = [
  { label: '$map', js: undefined, mapOff: 0n },
  { label: '$map+1', js: undefined, mapOff: 1n },
  { label: '$map+PAGE-1', js: undefined, mapOff: PG - 1n },
  { label: '$map+PAGE', js: undefined, mapOff: PG },
  { label: '$map-PAGE', js: undefined, mapOff: -PG },
  { label: '$map+END', js: undefined, mapOff: BigInt(MAP_PAGES) * PG },
];

/** The JS value a row passes: the value, or the resource it names. */
export function resolveValue(v: Value, res: Resources): unknown {
  if (v.fd !== undefined) return res[v.fd];
  if (isMapValue(v)) return res.map + v.mapOff;
  return v.js;
}

/** The register a row's value is, resolved against the host. */
export function resolvedReg(v: Value, res: Resources): bigint | undefined {
  return reg(resolveValue(v, res));
}

/** x86-64 TASK_SIZE_MAX with 4-level paging: (1 << 47) - PAGE_SIZE (arch/x86/include/asm/page_64_types.h). */
export const TASK_SIZE = (1n << 47n) - PG;

/** PAGE_ALIGN() of a 64-bit value, wrapping as the kernel's unsigned long does. */
export const pageAlign = (u: bigint): bigint => BigInt.asUintN(64, u + PG - 1n) & ~(PG - 1n);

/* ---- the resources ---- */

/** The Process methods setupResources() calls. */
export interface SetupProcess {
  errno: number;
  memfd_create(name: string, flags: number): number;
  ftruncate(fd: number, length: number): number;
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): bigint;
  madvise(addr: bigint, length: number, advice: number): number;
  open(path: string, flags?: number): number;
  close(fd: number): number;
  ioctl(fd: number, req: number, arg?: unknown): number;
  readonly kernel: Kernel;
}

/** KVM request numbers by name (the trace name table's). */
export type ReqNumbers = (name: string) => number;

/**
 * Prepares a host: a sealable memfd of MAP_PAGES pages (fd 3) mapped shared and faulted in,
 * /dev/null, /dev/kvm, a VM of the vendor's private type (the default type on "none"), a
 * guest_memfd of MAP_PAGES pages, memslot 0 at gpa 0 over the mapping (bound to the guest_memfd
 * where the VM has private memory), vCPU 0 (unless `withVcpu` is false: -1), and last an fd opened
 * and closed again.
 */
export function setupResources(p: SetupProcess, req: ReqNumbers, vmType: number, privateMem: boolean, withVcpu = true): Resources {
  const check = (what: string, r: number | bigint): number => {
    if (r === -1 || r === -1n || r === 0xffff_ffff_ffff_ffffn) throw new Error(`setup: ${what} failed with errno ${p.errno}`);
    return Number(r);
  };
  const size = MAP_PAGES * PAGE;
  const memfd = check('memfd_create', p.memfd_create('bad-input', 0x2 /* MFD_ALLOW_SEALING */));
  check('ftruncate', p.ftruncate(memfd, size));
  const map = p.mmap(0, size, 0x3 /* PROT_READ|PROT_WRITE */, 0x1 /* MAP_SHARED */, memfd, 0);
  check('mmap', map);
  check('madvise', p.madvise(map, size, 23 /* MADV_POPULATE_WRITE */));
  const devnull = check('open /dev/null', p.open('/dev/null'));
  const kvm = check('open /dev/kvm', p.open('/dev/kvm'));
  const vm = check('KVM_CREATE_VM', p.ioctl(kvm, req('KVM_CREATE_VM'), vmType));
  const gmem = check('KVM_CREATE_GUEST_MEMFD', p.ioctl(vm, req('KVM_CREATE_GUEST_MEMFD'), { size: 2 * size, flags: 0 }));
  check('KVM_SET_USER_MEMORY_REGION2', p.ioctl(vm, req('KVM_SET_USER_MEMORY_REGION2'), {
    slot: 0, flags: privateMem ? 0x4 /* KVM_MEM_GUEST_MEMFD */ : 0, guest_phys_addr: 0, memory_size: size,
    userspace_addr: map, guest_memfd: privateMem ? gmem : 0, guest_memfd_offset: 0,
  }));
  /* a TD's vCPUs wait for KVM_TDX_INIT_VM (tdx_vcpu_create(): -EIO before it); KVM_SEV_INIT2 refuses a VM with vCPUs */
  const vcpu = withVcpu ? check('KVM_CREATE_VCPU', p.ioctl(vm, req('KVM_CREATE_VCPU'), 0)) : -1;
  const vfio = setupVfio(p, req, check);
  const closed = check('open /dev/null', p.open('/dev/null'));
  check('close', p.close(closed));
  return { memfd, devnull, kvm, vm, vcpu, gmem, closed, map, gpa: 0n, ...vfio };
}

/**
 * The VFIO part of the host (test/vfio/vfio_util.ts's flows): the DMA buffer; device 0's group in
 * a type1v2 container that maps the buffer at IOVA 0; an iommufd whose IOAS maps it at IOVA 0, with
 * device 1's cdev bound and attached; device 2's cdev open and unbound.
 */
function setupVfio(p: SetupProcess, req: ReqNumbers, check: (what: string, r: number | bigint) => number): Omit<Resources, Exclude<FdKind, VfioFdKind> | 'map' | 'gpa'> {
  const bytes = DMA_PAGES * PAGE;
  const dma = p.mmap(DMA_HINT, bytes, 0x3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
  check('mmap', dma);
  const dev0 = vfio_sim_device_add(p.kernel);
  const container = check('open /dev/vfio/vfio', p.open('/dev/vfio/vfio'));
  const group = check(`open ${dev0.group_path}`, p.open(dev0.group_path));
  check('VFIO_GROUP_SET_CONTAINER', p.ioctl(group, req('VFIO_GROUP_SET_CONTAINER'), container));
  check('VFIO_SET_IOMMU', p.ioctl(container, req('VFIO_SET_IOMMU'), 3 /* VFIO_TYPE1v2_IOMMU */));
  check('VFIO_IOMMU_MAP_DMA', p.ioctl(container, req('VFIO_IOMMU_MAP_DMA'), { argsz: 32, flags: 0x3, vaddr: dma, iova: 0, size: bytes }));
  const iommufd = check('open /dev/iommu', p.open('/dev/iommu'));
  const alloc = { size: 12, flags: 0, out_ioas_id: 0 };
  check('IOMMU_IOAS_ALLOC', p.ioctl(iommufd, req('IOMMU_IOAS_ALLOC'), alloc));
  check('IOMMU_IOAS_MAP', p.ioctl(iommufd, req('IOMMU_IOAS_MAP'), {
    size: 40, flags: 0x7 /* FIXED_IOVA|WRITEABLE|READABLE */, ioas_id: alloc.out_ioas_id, user_va: dma, length: bytes, iova: 0,
  }));
  const dev1 = vfio_sim_device_add(p.kernel);
  const vdev = check(`open ${dev1.cdev_path}`, p.open(dev1.cdev_path));
  const bind = { argsz: 16, flags: 0, iommufd, out_devid: 0 };
  check('VFIO_DEVICE_BIND_IOMMUFD', p.ioctl(vdev, req('VFIO_DEVICE_BIND_IOMMUFD'), bind));
  const attach = { argsz: 12, flags: 0, pt_id: alloc.out_ioas_id };
  check('VFIO_DEVICE_ATTACH_IOMMUFD_PT', p.ioctl(vdev, req('VFIO_DEVICE_ATTACH_IOMMUFD_PT'), attach));
  const dev2 = vfio_sim_device_add(p.kernel);
  const cdev = check(`open ${dev2.cdev_path}`, p.open(dev2.cdev_path));
  return {
    container, group, iommufd, vdev, cdev, dma, ioas: alloc.out_ioas_id, devid: bind.out_devid, hwpt: attach.pt_id, dev0: dev0.index, dev1: dev1.index, dev2: dev2.index,
  };
}

/** The simulated host's RAM: the rows run on a small host so that each is cheap. */
export const HOST_PAGES = 1 << 12;
const HOST_BYTES = BigInt(HOST_PAGES) * PG;
const HOST_FULL = `more than the host's ${HOST_PAGES} pages: shmem_fallocate() fails to allocate and shmem_undo_range() rolls back (memfd's internal mount has no max_blocks, so no ENOSPC; a real host runs its OOM killer first)`;
/* The VM and vCPU files share anon_inode_inode: S_IFREG since 6.15, with anon_inode_operations. */
const ANON_SETATTR = err('EOPNOTSUPP', 'fs/anon_inodes.c anon_inode_setattr() (notify_change())');
/* the shared anonymous inode has no file type (alloc_anon_inode()): Linux 6.18.44, trace kvm-fd-ops */
const ANON_TRUNCATE = err('EINVAL', 'fs/open.c do_ftruncate(): the anonymous inode is no S_ISREG');
const ANON_FALLOCATE = err('ENODEV', 'fs/open.c vfs_fallocate(): the anonymous inode is neither S_ISREG nor S_ISBLK');

/* ---- the cases ---- */

const BASE_VENDORS = ['none', 'sw_protected'] as const;
/** struct kvm_regs (arch/x86/include/uapi/asm/kvm.h). */
const REGS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;
const F_ADD_SEALS = 1033;
const JS_LABELS = new Set(JS_ONLY.map((v) => v.label));
const isJs = (v: Value): boolean => JS_LABELS.has(v.label) && v.fd === undefined;

/** A rule that gives `js` for the JS-only values and defers to `rule` for the rest. */
function withJs(js: Expect, rule: (r: bigint, v: Value, ctx: RuleCtx) => Expect): ArgRows['rule'] {
  return (v, r, ctx) => (r === undefined || isJs(v) ? js : rule(r, v, ctx));
}

/** "No C value" rows: the simulator's convention, an invalid value of the argument (mm/src/mman.ts ulong_arg()). */
const noC = (errno: string, where: string): Expect => err(errno, `not a C value: treated as an invalid value, ${where}`);

export function buildCases(gen: GenerateModule, req: ReqNumbers): Case[] {
  const ints = intValues(gen, true);
  const uints = intValues(gen, false);
  const addrs = [...uints, ...MAP_EDGES];
  const fds = fdValues(gen);
  /* sizes the op makes a buffer of: the trace's own limit (ArgSpec.max) keeps them to 2^30 */
  const counts = uints.filter((v) => !isJs(v) && reg(v.js)! <= 1n << 30n);
  const data: Value[] = [...gen.DATA_LENS.map((n) => ({ label: `${n} bytes`, js: new Uint8Array(n).fill(0x5a) })), ...JS_ONLY];
  const strings = (lens: readonly number[]): Value[] => [
    ...lens.map((n) => ({ label: `"x" * ${n}`, js: 'x'.repeat(n) })),
    { label: 'NULL', js: null },
    ...JS_ONLY,
  ];
  const size = BigInt(MAP_PAGES) * PG;
  /** A reserved array of the fuzzer's (RESERVED_ARRAYS): zeroed, and with its last element set. */
  const reserved = (name: string): Value[] => {
    const n = gen.RESERVED_ARRAYS[name][1];
    return [
      { label: `${n} zeroes`, js: Array<number>(n).fill(0) },
      { label: 'last element 1', js: Array.from({ length: n }, (_, k) => (k === n - 1 ? 1 : 0)) },
      { label: 'last element 2^64-1', js: Array.from({ length: n }, (_, k) => (k === n - 1 ? 2n ** 64n - 1n : 0n)) },
    ];
  };
  const V = BASE_VENDORS;
  const cases: Case[] = [];
  const add = (c: Case): void => {
    cases.push(c);
  };

  /* ---- memfd_create ---- */
  add({
    name: 'memfd_create', op: 'memfd_create', vendors: V,
    base: () => ['bad-input', 0x2],
    baseExpect: () => ok('mm/memfd.c memfd_create()'),
    args: {
      name: {
        values: strings(gen.NAME_LENS),
        rule: (v) => {
          if (typeof v.js !== 'string') return err('EFAULT', 'mm/memfd.c alloc_name(): strnlen_user() of no string faults');
          return v.js.length <= 249 ? ok('mm/memfd.c alloc_name(): up to MFD_NAME_MAX_LEN (249) bytes')
            : err('EINVAL', 'mm/memfd.c alloc_name(): longer than MFD_NAME_MAX_LEN (oracle memfd-create.kernel.jsonl)');
        },
      },
      flags: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/memfd.c sanitize_flags()'), (r) => {
          const f = u32(r);
          const allowed = (f & 0x4n) !== 0n ? 0x1fn | (0x3fn << 26n) : 0x1fn;
          if ((f & ~allowed) !== 0n) return err('EINVAL', 'mm/memfd.c sanitize_flags(): a bit outside MFD_ALL_FLAGS (flags is an unsigned int)');
          if ((f & 0x10n) !== 0n && (f & 0x8n) !== 0n) return err('EINVAL', 'mm/memfd.c sanitize_flags(): MFD_EXEC with MFD_NOEXEC_SEAL');
          return ok('mm/memfd.c sanitize_flags(): the low 32 bits are valid flags');
        }),
      },
    },
  });

  /* ---- close ---- */
  add({
    name: 'close', op: 'close', vendors: V,
    base: (r) => [r.memfd],
    baseExpect: () => ok('fs/file.c close_fd()'),
    args: {
      fd: { values: fds, rule: fdRule({}, ok('fs/file.c close_fd(): any open fd (oracle fd-basics.kernel.jsonl i=2)')) },
    },
  });

  /* ---- ftruncate ---- */
  const notRegular = err('EINVAL', 'fs/open.c do_ftruncate(): !S_ISREG (oracle file-io.kernel.jsonl i=70, i=78)');
  add({
    name: 'ftruncate', op: 'ftruncate', vendors: V,
    base: (r) => [r.memfd, 2 * PAGE],
    baseExpect: () => ok('fs/open.c do_sys_ftruncate()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({
          memfd: ok('fs/open.c do_ftruncate()'),
          gmem: err('EINVAL', 'virt/kvm/guest_memfd.c kvm_gmem_setattr(): guest_memfd refuses setattr'),
          vm: ANON_TRUNCATE,
          vcpu: ANON_TRUNCATE,
        }, notRegular),
      },
      length: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/open.c do_sys_ftruncate()'), (r) => (s64(r) < 0n
          ? err('EINVAL', 'fs/open.c do_sys_ftruncate(): length < 0 (oracle file-io.kernel.jsonl i=51..53)')
          : ok('mm/shmem.c shmem_setattr(): up to MAX_LFS_FILESIZE (oracle file-io.kernel.jsonl i=54)'))),
      },
    },
  });

  /* ---- fallocate ---- */
  add({
    name: 'fallocate', op: 'fallocate', vendors: V,
    base: (r) => [r.memfd, 0, 0, PAGE],
    baseExpect: () => ok('mm/shmem.c shmem_fallocate()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({
          memfd: ok('mm/shmem.c shmem_fallocate()'),
          gmem: err('EOPNOTSUPP', 'virt/kvm/guest_memfd.c kvm_gmem_fallocate(): mode without FALLOC_FL_KEEP_SIZE'),
          vm: ANON_FALLOCATE,
          vcpu: ANON_FALLOCATE,
        }, err('ENODEV', 'fs/open.c vfs_fallocate(): neither a regular file nor a block device')),
      },
      mode: {
        values: ints,
        rule: withJs(noC('EOPNOTSUPP', 'fs/open.c vfs_fallocate()'), (r) => {
          const m = u32(r);
          const eop = err('EOPNOTSUPP', 'fs/open.c vfs_fallocate(): mode bits outside FALLOC_FL_MODE_MASK|KEEP_SIZE, or a mode shmem lacks (mode is an int)');
          if ((m & ~0xfbn) !== 0n) return eop;
          if ((m & 0xfan) === 0x2n && (m & 1n) === 0n) return eop;
          return (m & ~0x3n) === 0n ? ok('mm/shmem.c shmem_fallocate(): allocate, or KEEP_SIZE') : eop;
        }),
      },
      offset: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/open.c vfs_fallocate()'), (r) => {
          const s = s64(r);
          if (s < 0n) return err('EINVAL', 'fs/open.c vfs_fallocate(): offset < 0');
          if (s + PG > TWO63 - 1n) return err('EFBIG', 'fs/open.c vfs_fallocate(): offset + len beyond s_maxbytes');
          return ok('mm/shmem.c shmem_fallocate(): one page at that index');
        }),
      },
      len: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/open.c vfs_fallocate()'), (r) => {
          const s = s64(r);
          if (s <= 0n) return err('EINVAL', 'fs/open.c vfs_fallocate(): len <= 0');
          if (s > HOST_BYTES) return err('ENOMEM', HOST_FULL);
          return ok('mm/shmem.c shmem_fallocate()');
        }),
      },
    },
  });

  /* ---- fcntl ---- */
  add({
    name: 'fcntl', op: 'fcntl', vendors: V,
    base: (r) => [r.memfd, F_ADD_SEALS, 0x4 /* F_SEAL_GROW */],
    baseExpect: () => ok('mm/memfd.c memfd_add_seals()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({ memfd: ok('mm/memfd.c memfd_add_seals()') },
          err('EINVAL', 'mm/memfd.c memfd_add_seals(): no seals on a file that is no memfd (memfd_file_seals_ptr() is NULL)')),
      },
      cmd: {
        values: uints,
        rule: withJs(noC('EINVAL', 'fs/fcntl.c do_fcntl()'), (r) => {
          const c = u32(r);
          if (c === 0n) return ok('fs/fcntl.c do_fcntl(): F_DUPFD (cmd is an unsigned int)');
          if (c === 1n || c === 2n) return ok('fs/fcntl.c do_fcntl(): F_GETFD / F_SETFD');
          return err('EINVAL', 'fs/fcntl.c do_fcntl(): no such command');
        }),
      },
      arg: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/memfd.c memfd_add_seals()'), (r) => ((u32(r) & ~0x3fn) !== 0n
          ? err('EINVAL', 'mm/memfd.c memfd_add_seals(): a bit outside F_ALL_SEALS (the seals are an unsigned int)')
          : ok('mm/memfd.c memfd_add_seals()'))),
      },
    },
  });

  /* ---- fstat ---- */
  add({
    name: 'fstat', op: 'fstat', vendors: V,
    base: (r) => [r.memfd],
    baseExpect: () => ok('fs/stat.c vfs_fstat()'),
    args: { fd: { values: fds, rule: fdRule({}, ok('fs/stat.c vfs_fstat(): any open file (oracle file-io.kernel.jsonl i=71)')) } },
  });

  /* ---- read, pread ---- */
  const noRead = err('EINVAL', 'fs/read_write.c vfs_read(): no read method (!FMODE_CAN_READ)');
  const readFd = fdRule({ memfd: ok('mm/shmem.c shmem_file_read_iter()'), devnull: ok('drivers/char/mem.c read_null()') }, noRead);
  add({
    name: 'read', op: 'read', vendors: V,
    base: (r) => [r.memfd, 16],
    baseExpect: () => ok('fs/read_write.c ksys_read()'),
    args: {
      fd: { values: fds, rule: readFd },
      count: { values: counts, rule: () => ok('fs/read_write.c vfs_read(): reads up to the end of the file') },
    },
  });
  const noPread = err('ESPIPE', 'fs/read_write.c ksys_pread64(): no FMODE_PREAD on a pseudo file (alloc_file_pseudo())');
  add({
    name: 'pread', op: 'pread', vendors: V,
    base: (r) => [r.memfd, 16, 0],
    baseExpect: () => ok('fs/read_write.c ksys_pread64()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({
          memfd: ok('mm/shmem.c shmem_file_read_iter()'), devnull: ok('drivers/char/mem.c read_null() (oracle file-io.kernel.jsonl i=81)'),
          kvm: noRead, vm: noPread, vcpu: noPread, gmem: noPread,
        }, noRead),
      },
      count: { values: counts, rule: () => ok('fs/read_write.c vfs_read()') },
      offset: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/read_write.c ksys_pread64()'), (r) => {
          const s = s64(r);
          if (s < 0n) return err('EINVAL', 'fs/read_write.c ksys_pread64(): pos < 0 (oracle file-io.kernel.jsonl i=25)');
          if (s + 16n > TWO63 - 1n) return err('EINVAL', 'fs/read_write.c rw_verify_area(): pos + count overflows a loff_t (oracle file-io.kernel.jsonl i=28)');
          return ok('fs/read_write.c vfs_read(): at or beyond the end, 0 bytes (oracle file-io.kernel.jsonl i=29)');
        }),
      },
    },
  });

  /* ---- write, pwrite ---- */
  const noWrite = err('EINVAL', 'fs/read_write.c vfs_write(): no write method (!FMODE_CAN_WRITE)');
  const noBuffer = err('EFAULT', 'not a C value: no buffer at that address (copy_from_user() faults)');
  const dataRule = (v: Value): Expect => (v.js instanceof Uint8Array ? ok('fs/read_write.c vfs_write()') : noBuffer);
  add({
    name: 'write', op: 'write', vendors: V,
    base: (r) => [r.memfd, Uint8Array.of(1, 2, 3, 4)],
    baseExpect: () => ok('fs/read_write.c ksys_write()'),
    args: {
      fd: { values: fds, rule: fdRule({ memfd: ok('mm/shmem.c shmem_file_write_iter()'), devnull: ok('drivers/char/mem.c write_null()') }, noWrite) },
      data: { values: data, rule: dataRule },
    },
  });
  add({
    name: 'pwrite', op: 'pwrite', vendors: V,
    base: (r) => [r.memfd, Uint8Array.of(1, 2, 3, 4), 0],
    baseExpect: () => ok('fs/read_write.c ksys_pwrite64()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({
          memfd: ok('mm/shmem.c shmem_file_write_iter()'), devnull: ok('drivers/char/mem.c write_null() (oracle file-io.kernel.jsonl i=76)'),
          kvm: noWrite, vm: noPread, vcpu: noPread, gmem: noPread,
        }, noWrite),
      },
      data: { values: data, rule: dataRule },
      offset: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/read_write.c ksys_pwrite64()'), (r) => {
          const s = s64(r);
          if (s < 0n) return err('EINVAL', 'fs/read_write.c ksys_pwrite64(): pos < 0 (oracle file-io.kernel.jsonl i=26, i=27)');
          if (s + 4n > TWO63 - 1n) return err('EINVAL', 'fs/read_write.c rw_verify_area(): pos + count overflows (oracle file-io.kernel.jsonl i=33, i=37)');
          return ok('mm/filemap.c generic_write_checks(): below MAX_LFS_FILESIZE (oracle file-io.kernel.jsonl i=34)');
        }),
      },
    },
  });

  /* ---- lseek ---- */
  const noopLlseek = ok('virt/kvm/kvm_main.c: the KVM files\' llseek is noop_llseek');
  add({
    name: 'lseek', op: 'lseek', vendors: V,
    base: (r) => [r.memfd, 0, 0],
    baseExpect: () => ok('fs/read_write.c ksys_lseek()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({
          memfd: ok('mm/shmem.c shmem_file_llseek()'), devnull: ok('drivers/char/mem.c null_lseek() (oracle file-io.kernel.jsonl i=77)'),
          kvm: noopLlseek, vm: noopLlseek, vcpu: noopLlseek,
          gmem: err('ESPIPE', 'fs/read_write.c vfs_llseek(): guest_memfd has no llseek (!FMODE_LSEEK)'),
        }, ok('fs/read_write.c vfs_llseek()')),
      },
      offset: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/read_write.c vfs_setpos()'), (r) => (s64(r) < 0n
          ? err('EINVAL', 'fs/read_write.c vfs_setpos(): a negative position (oracle file-io.kernel.jsonl i=14, i=23)')
          : ok('fs/read_write.c vfs_setpos(): up to MAX_LFS_FILESIZE (oracle file-io.kernel.jsonl i=18)'))),
      },
      whence: {
        values: uints,
        rule: withJs(noC('EINVAL', 'fs/read_write.c ksys_lseek()'), (r) => (u32(r) <= 4n
          ? ok('fs/read_write.c ksys_lseek(): SEEK_SET..SEEK_HOLE (whence is an unsigned int)')
          : err('EINVAL', 'fs/read_write.c ksys_lseek(): whence > SEEK_MAX (oracle file-io.kernel.jsonl i=16, i=17)'))),
      },
    },
  });

  /* ---- fchmod ---- */
  add({
    name: 'fchmod', op: 'fchmod', vendors: V,
    base: (r) => [r.memfd, 0o644],
    baseExpect: () => ok('fs/open.c chmod_common()'),
    args: {
      fd: {
        values: fds,
        rule: fdRule({
          gmem: err('EINVAL', 'virt/kvm/guest_memfd.c kvm_gmem_setattr()'), vm: ANON_SETATTR, vcpu: ANON_SETATTR,
        }, ok('fs/open.c chmod_common(): root may change the mode')),
      },
      mode: {
        values: uints,
        rule: withJs(noC('EINVAL', 'fs/open.c chmod_common()'), () => ok('fs/open.c chmod_common(): the mode is masked with S_IALLUGO (umode_t)')),
      },
    },
  });

  /* ---- mmap ---- */
  const mmapOk = ok('mm/mmap.c do_mmap()');
  add({
    name: 'mmap', op: 'mmap', vendors: V,
    base: (r) => [0, PAGE, 0x3, 0x1, r.memfd, 0],
    baseExpect: () => mmapOk,
    args: {
      addr: {
        values: addrs,
        rule: withJs(noC('EINVAL', 'mm/mmap.c do_mmap()'), () => ok('mm/mmap.c do_mmap(): without MAP_FIXED the address is only a hint')),
      },
      length: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/mmap.c do_mmap()'), (r) => {
          if (r === 0n) return err('EINVAL', 'mm/mmap.c do_mmap(): len 0 (oracle mmap-validation.kernel.jsonl i=2)');
          const len = pageAlign(r);
          if (len === 0n) return err('ENOMEM', 'mm/mmap.c do_mmap(): PAGE_ALIGN(len) wraps to 0 (oracle mmap-validation.kernel.jsonl i=3)');
          if (len > TASK_SIZE) return err('ENOMEM', 'mm/mmap.c __get_unmapped_area(): len > TASK_SIZE (oracle mmap-validation.kernel.jsonl i=4, i=5)');
          return ok('mm/mmap.c do_mmap(): a mapping past the end of the file is allowed');
        }),
      },
      prot: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/mmap.c do_mmap()'), () => ok('mm/mmap.c do_mmap(): unknown prot bits are ignored (oracle mmap-validation.kernel.jsonl i=26)')),
      },
      flags: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/mmap.c do_mmap()'), (r) => {
          const type = r & 0xfn;
          if ((r & 0x20n) !== 0n && (r & 0x40000n) !== 0n) {
            return err('EINVAL', 'mm/mmap.c ksys_mmap_pgoff(): MAP_HUGETLB with a huge page size no hstate has');
          }
          if ((r & 0x20n) === 0n && (r & 0x40000n) !== 0n) return err('EINVAL', 'mm/mmap.c ksys_mmap_pgoff(): MAP_HUGETLB on a file that is no hugetlbfs file');
          if (type === 1n || type === 2n) return ok('mm/mmap.c do_mmap(): MAP_SHARED/MAP_PRIVATE ignore unknown flags (oracle mmap-validation.kernel.jsonl i=13, i=15)');
          return err('EINVAL', 'mm/mmap.c do_mmap(): no such mapping type (oracle mmap-validation.kernel.jsonl i=10..12)');
        }),
      },
      fd: {
        values: fds,
        rule: fdRule({
          memfd: mmapOk,
          vcpu: ok('virt/kvm/kvm_main.c kvm_vcpu_mmap()'),
          gmem: err('ENODEV', 'virt/kvm/guest_memfd.c kvm_gmem_mmap(): no GUEST_MEMFD_FLAG_MMAP'),
        }, err('ENODEV', 'mm/mmap.c do_mmap(): the file has no mmap method')),
      },
      offset: {
        values: ints,
        rule: withJs(noC('EINVAL', 'arch/x86/kernel/sys_x86_64.c mmap'), (r) => {
          if ((r & (PG - 1n)) !== 0n) return err('EINVAL', 'arch/x86/kernel/sys_x86_64.c SYSCALL_DEFINE6(mmap): off & ~PAGE_MASK');
          const pgoff = r / PG;
          if (pgoff > (TWO63 - 1n - PG) / PG) return err('EOVERFLOW', 'mm/mmap.c file_mmap_ok(): pgoff beyond MAX_LFS_FILESIZE');
          return ok('mm/mmap.c do_mmap(): a mapping beyond the end of the file');
        }),
      },
    },
  });

  /* ---- munmap, mprotect, madvise, mlock, munlock: address ranges ---- */
  const range = (r: bigint, len: bigint, ctx: RuleCtx): 'inside' | 'hole' | 'outside' => {
    const start = r & ~(PG - 1n);
    const end = start + len;
    const ms = ctx.res.map;
    const me = ms + BigInt(MAP_PAGES) * PG;
    if (start >= ms && end <= me) return 'inside';
    return end <= ms || start >= me ? 'outside' : 'hole';
  };
  const mapLen = BigInt(MAP_PAGES) * PG;
  add({
    name: 'munmap', op: 'munmap', vendors: V,
    base: (r) => [r.map, Number(mapLen)],
    baseExpect: () => ok('mm/vma.c do_vmi_munmap()'),
    args: {
      addr: {
        values: addrs,
        rule: withJs(noC('EINVAL', 'mm/vma.c do_vmi_munmap()'), (r) => {
          if ((r & (PG - 1n)) !== 0n || r > TASK_SIZE || mapLen > TASK_SIZE - r) return err('EINVAL', 'mm/vma.c do_vmi_munmap(): unaligned, or beyond TASK_SIZE');
          return ok('mm/vma.c do_vmi_munmap(): unmapping nothing is no error');
        }),
      },
      length: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/vma.c do_vmi_munmap()'), (r, _v, ctx) => {
          if (r > TASK_SIZE || r > TASK_SIZE - ctx.res.map) return err('EINVAL', 'mm/vma.c do_vmi_munmap(): len > TASK_SIZE - start');
          if (pageAlign(r) === 0n) return err('EINVAL', 'mm/vma.c do_vmi_munmap(): an empty range');
          return ok('mm/vma.c do_vmi_munmap()');
        }),
      },
    },
  });
  add({
    name: 'mprotect', op: 'mprotect', vendors: V,
    base: (r) => [r.map, Number(mapLen), 0x1],
    baseExpect: () => ok('mm/mprotect.c do_mprotect_pkey()'),
    args: {
      addr: {
        values: addrs,
        rule: withJs(noC('EINVAL', 'mm/mprotect.c do_mprotect_pkey()'), (r, _v, ctx) => {
          if ((r & (PG - 1n)) !== 0n) return err('EINVAL', 'mm/mprotect.c do_mprotect_pkey(): start not page aligned');
          if (r + mapLen >= 1n << 64n) return err('ENOMEM', 'mm/mprotect.c do_mprotect_pkey(): end <= start');
          return range(r, mapLen, ctx) === 'inside' ? ok('mm/mprotect.c do_mprotect_pkey()')
            : err('ENOMEM', 'mm/mprotect.c do_mprotect_pkey(): a hole in the range');
        }),
      },
      length: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/mprotect.c do_mprotect_pkey()'), (r, _v, ctx) => {
          if (r === 0n) return ok('mm/mprotect.c do_mprotect_pkey(): len 0 does nothing');
          const len = pageAlign(r);
          if (len === 0n || ctx.res.map + len >= 1n << 64n) return err('ENOMEM', 'mm/mprotect.c do_mprotect_pkey(): end <= start');
          return len <= mapLen ? ok('mm/mprotect.c do_mprotect_pkey()') : err('ENOMEM', 'mm/mprotect.c do_mprotect_pkey(): a hole after the mapping');
        }),
      },
      prot: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/mprotect.c do_mprotect_pkey()'), (r) => {
          const grows = r & 0x03000000n;
          if (grows === 0x03000000n) return err('EINVAL', 'mm/mprotect.c do_mprotect_pkey(): PROT_GROWSDOWN|PROT_GROWSUP');
          if (((r & ~grows) & ~0xfn) !== 0n) return err('EINVAL', 'include/linux/mman.h arch_validate_prot(): bits beyond PROT_READ|WRITE|EXEC|SEM');
          if (grows !== 0n) return err('EINVAL', 'mm/mprotect.c do_mprotect_pkey(): PROT_GROWS* on a VMA that does not grow');
          return ok('mm/mprotect.c do_mprotect_pkey()');
        }),
      },
    },
  });
  add({
    name: 'madvise', op: 'madvise', vendors: V,
    base: (r) => [r.map, Number(mapLen), 0],
    baseExpect: () => ok('mm/madvise.c do_madvise()'),
    args: {
      addr: {
        values: addrs,
        rule: withJs(noC('EINVAL', 'mm/madvise.c is_valid_madvise()'), (r, _v, ctx) => {
          if ((r & (PG - 1n)) !== 0n || r + mapLen >= 1n << 64n) return err('EINVAL', 'mm/madvise.c is_valid_madvise(): unaligned start, or start + len wraps');
          return range(r, mapLen, ctx) === 'inside' ? ok('mm/madvise.c madvise_walk_vmas()')
            : err('ENOMEM', 'mm/madvise.c madvise_walk_vmas(): an unmapped part of the range');
        }),
      },
      length: {
        values: uints,
        rule: withJs(noC('EINVAL', 'mm/madvise.c is_valid_madvise()'), (r, _v, ctx) => {
          const len = pageAlign(r);
          if (r !== 0n && len === 0n) return err('EINVAL', 'mm/madvise.c is_valid_madvise(): len rounds up to 0');
          if (ctx.res.map + len >= 1n << 64n) return err('EINVAL', 'mm/madvise.c is_valid_madvise(): start + len wraps');
          if (len === 0n) return ok('mm/madvise.c madvise_should_skip(): an empty range');
          return len <= mapLen ? ok('mm/madvise.c madvise_walk_vmas()') : err('ENOMEM', 'mm/madvise.c madvise_walk_vmas(): a hole after the mapping');
        }),
      },
      advice: {
        values: ints,
        rule: withJs(noC('EINVAL', 'mm/madvise.c madvise_behavior_valid()'), (r) => {
          const a = i32(r);
          return a >= 0n && a <= 3n ? ok('mm/madvise.c madvise_behavior_valid(): NORMAL..WILLNEED (advice is an int)')
            : err('EINVAL', 'mm/madvise.c madvise_behavior_valid(): no such advice');
        }),
      },
    },
  });
  /* mlock/munlock round the start down and the length up (do_mlock(), SYSCALL munlock) */
  const lockRange = (start: bigint, len: bigint, ctx: RuleCtx, fn: string): Expect => {
    const l = pageAlign(len + (start & (PG - 1n)));
    const s = start & ~(PG - 1n);
    if (l === 0n) return ok(`mm/mlock.c ${fn}: an empty range`);
    if (s + l >= 1n << 64n) return err('EINVAL', 'mm/mlock.c apply_vma_lock_flags(): end < start');
    return range(s, l, ctx) === 'inside' ? ok(`mm/mlock.c ${fn}`) : err('ENOMEM', 'mm/mlock.c apply_vma_lock_flags(): a hole in the range');
  };
  for (const [name, fn] of [['mlock', 'do_mlock()'], ['munlock', 'SYSCALL_DEFINE2(munlock)']] as const) {
    add({
      name, op: name, vendors: V,
      base: (r) => [r.map, Number(mapLen)],
      baseExpect: () => ok(`mm/mlock.c ${fn}`),
      args: {
        addr: { values: addrs, rule: withJs(noC('EINVAL', `mm/mlock.c ${fn}`), (r, _v, ctx) => lockRange(r, mapLen, ctx, fn)) },
        length: { values: uints, rule: withJs(noC('EINVAL', `mm/mlock.c ${fn}`), (r, _v, ctx) => lockRange(ctx.res.map, r, ctx, fn)) },
        ...(name === 'mlock' && {
          flags: {
            values: ints,
            rule: withJs(noC('EINVAL', 'mm/mlock.c SYSCALL_DEFINE3(mlock2)'), (r) => ((i32(r) & ~1n) !== 0n
              ? err('EINVAL', 'mm/mlock.c SYSCALL_DEFINE3(mlock2): flags beyond MLOCK_ONFAULT (flags is an int)')
              : ok('mm/mlock.c SYSCALL_DEFINE3(mlock2)'))),
          },
        }),
      },
    });
  }

  /* ---- load, store: the CPU's user accesses ---- */
  const segv = err('SIGSEGV', 'arch/x86/mm/fault.c do_user_addr_fault(): no VMA (bad_area(), SEGV_MAPERR)');
  const access = (r: bigint, len: bigint, ctx: RuleCtx): Expect => {
    if (len === 0n) return ok('a zero-length access touches nothing');
    const ms = ctx.res.map;
    return r >= ms && r + len <= ms + mapLen ? ok('the mapping is present and readable/writable') : segv;
  };
  add({
    name: 'load', op: 'load', vendors: V,
    base: (r) => [r.map, 16],
    baseExpect: () => ok('a load from the shared mapping'),
    args: {
      addr: { values: addrs, rule: withJs(segv, (r, _v, ctx) => access(r, 16n, ctx)) },
      len: { values: counts, rule: (_v, r, ctx) => access(ctx.res.map, r!, ctx) },
    },
  });
  add({
    name: 'store', op: 'store', vendors: V,
    base: (r) => [r.map, Uint8Array.of(1, 2, 3, 4)],
    baseExpect: () => ok('a store to the shared mapping'),
    args: {
      addr: { values: addrs, rule: withJs(segv, (r, _v, ctx) => access(r, 4n, ctx)) },
      data: { values: data.filter((v) => v.js instanceof Uint8Array), rule: (v, _r, ctx) => access(ctx.res.map, BigInt((v.js as Uint8Array).length), ctx) },
    },
  });

  /* ---- process_vm_readv, process_vm_writev ---- */
  const efault = err('EFAULT', 'mm/process_vm_access.c process_vm_rw_core(): no byte could be copied');
  const remote = (r: bigint, len: bigint, ctx: RuleCtx): Expect => {
    if (len === 0n) return ok('mm/process_vm_access.c process_vm_rw_core(): nothing to copy');
    const ms = ctx.res.map;
    return r >= ms && r < ms + mapLen ? ok('mm/process_vm_access.c process_vm_rw_core(): the bytes up to the first fault') : efault;
  };
  add({
    name: 'process_vm_readv', op: 'process_vm_readv', vendors: V,
    base: (r) => [r.map, 16],
    baseExpect: () => ok('mm/process_vm_access.c process_vm_rw()'),
    args: {
      addr: { values: addrs, rule: withJs(efault, (r, _v, ctx) => remote(r, 16n, ctx)) },
      len: { values: counts, rule: (_v, r, ctx) => remote(ctx.res.map, r!, ctx) },
    },
  });
  add({
    name: 'process_vm_writev', op: 'process_vm_writev', vendors: V,
    base: (r) => [r.map, Uint8Array.of(1, 2, 3, 4)],
    baseExpect: () => ok('mm/process_vm_access.c process_vm_rw()'),
    args: {
      addr: { values: addrs, rule: withJs(efault, (r, _v, ctx) => remote(r, 4n, ctx)) },
      data: {
        values: data,
        rule: (v, _r, ctx) => (v.js instanceof Uint8Array ? remote(ctx.res.map, BigInt(v.js.length), ctx)
          : err('EINVAL', 'not a C value: the iovec\'s iov_len is none a C program can pass, refused as a negative one (lib/iov_iter.c iovec_from_user())')),
      },
    },
  });

  /* ---- open ---- */
  add({
    name: 'open', op: 'open', vendors: V,
    base: () => ['/dev/null', 0x2],
    baseExpect: () => ok('fs/open.c do_sys_openat2()'),
    args: {
      path: {
        values: strings(gen.NAME_LENS),
        rule: (v) => {
          if (typeof v.js !== 'string') return err('EFAULT', 'fs/namei.c getname(): no string at that address');
          if (v.js.length >= 4096) return err('ENAMETOOLONG', 'fs/namei.c getname_flags(): PATH_MAX');
          return err('ENOENT', 'fs/namei.c path_openat(): no such file (oracle fd-basics.kernel.jsonl i=6)');
        },
      },
      flags: {
        values: ints,
        rule: withJs(noC('EINVAL', 'fs/open.c build_open_flags()'), (r) => {
          /* build_open_how(): the int's valid bits (VALID_OPEN_FLAGS); O_PATH keeps only O_PATH_FLAGS */
          let f = i32(r) & 0o37777703n;
          if ((f & 0o10000000n) !== 0n) f &= 0o10000000n | 0o200000n | 0o400000n | 0o2000000n;
          if ((f & 0o100n) !== 0n && (f & 0o200000n) !== 0n) return err('EINVAL', 'fs/open.c build_open_flags(): O_CREAT|O_DIRECTORY');
          if ((f & 0o200000n) !== 0n) return err('ENOTDIR', 'fs/namei.c do_open(): O_DIRECTORY on /dev/null');
          if ((f & 0o300n) === 0o300n) return err('EEXIST', 'fs/namei.c open_last_lookups(): O_CREAT|O_EXCL on a node that exists');
          return ok('fs/open.c do_sys_openat2(): /dev/null opens with the valid bits of the int');
        }),
      },
    },
  });

  /* ---- guest_load, guest_store: the vCPU runs the oracle's guest (test/oracle/guest_x86.h) ---- */
  const notVcpu = err('ENOTTY', 'the op\'s own answer for a file that is no vCPU (mm/src/process.ts guest_access(); the oracle refuses such a trace)');
  const guestFd = fdRule({ vcpu: ok('virt/kvm/kvm_main.c kvm_vcpu_ioctl(KVM_RUN)') }, notVcpu);
  const slotEnd = BigInt(MAP_PAGES) * PG;
  const guest = (gpa: bigint, len: bigint): Expect => {
    if (gpa + len <= slotEnd) return ok('memslot 0 maps the access');
    if (gpa < 1n << 52n) return err('exit:KVM_EXIT_MMIO', 'arch/x86/kvm/mmu/mmu.c: a gpa no memslot holds is emulated MMIO, KVM_RUN exits to user space');
    return err('exit:KVM_EXIT_SHUTDOWN', 'a gpa beyond 52 bits: the guest\'s page tables cannot map it, the guest triple-faults');
  };
  const guestGpa = withJs(noC('EINVAL', 'kvm/src/x86.ts kvm_vcpu_guest_access()'), (r, v) => (typeof v.js === 'number' && v.js < 0
    ? noC('EINVAL', 'kvm/src/x86.ts kvm_vcpu_guest_access(): a gpa is a u64')
    : guest(r, 16n)));
  add({
    name: 'guest_load', op: 'guest_load', vendors: V,
    base: (r) => [r.vcpu, 0, 16],
    baseExpect: () => guest(0n, 16n),
    args: {
      vcpu: { values: fds, rule: guestFd },
      gpa: { values: uints, rule: guestGpa },
      len: { values: counts, rule: (_v, r) => guest(0n, r!) },
    },
  });
  add({
    name: 'guest_store', op: 'guest_store', vendors: V,
    base: (r) => [r.vcpu, 0, Uint8Array.of(1, 2, 3, 4)],
    baseExpect: () => guest(0n, 4n),
    args: {
      vcpu: { values: fds, rule: guestFd },
      gpa: { values: uints, rule: withJs(noC('EINVAL', 'kvm/src/x86.ts kvm_vcpu_guest_access()'), (r, v) => (typeof v.js === 'number' && v.js < 0
        ? noC('EINVAL', 'kvm/src/x86.ts kvm_vcpu_guest_access(): a gpa is a u64') : guest(r, 4n))) },
      data: {
        values: data,
        rule: (v) => (v.js instanceof Uint8Array ? guest(0n, BigInt(v.js.length)) : noC('EINVAL', 'kvm/src/x86.ts kvm_vcpu_guest_access(): no bytes to store')),
      },
    },
  });

  /* ---- the simulated VFIO device: bench/src/trace/vfio_ops.ts, vfio/src/device_dma.ts ---- */
  add({
    name: 'vfio_device_add', op: 'vfio_device_add', vendors: V,
    base: () => [],
    baseExpect: () => ok('vfio/src/vfio_main.ts vfio_sim_device_add(): a new device in a new IOMMU group'),
    args: {},
  });
  const OPS = 'bench/src/trace/vfio_ops.ts';
  const dmaBytes = BigInt(DMA_PAGES) * PG;
  const ioFault = (why: string): Expect => err('EFAULT', `vfio/src/device_dma.ts translate(): an I/O page fault, ${why} (the op's errno for it)`);
  /*
   * Device 0's container and device 1's IOAS both map the DMA buffer at IOVA 0; device 2 is
   * unclaimed. One vendor: both base vendors drive the same IOMMU (no vendor iommu_ops).
   */
  const dmaDevice = withJs(noC('EINVAL', `${OPS} deviceArg()`), (r, _v, ctx) => {
    if (r === BigInt(ctx.res.dev0) || r === BigInt(ctx.res.dev1)) return ok('the device\'s domain maps the buffer at IOVA 0');
    if (r === BigInt(ctx.res.dev2)) return ioFault('the group of a device no one bound has no domain ("blocked")');
    return err('ENODEV', `${OPS} deviceArg(): no device has that index (the op's own answer: a DMA is no system call)`);
  });
  const dmaRange = (iova: bigint, len: bigint): Expect => {
    if (len === 0n) return ok('a transfer of no bytes translates nothing');
    return iova + len <= dmaBytes ? ok('every page of the transfer is mapped, read and write')
      : ioFault('an IOVA past the mapping is unmapped (the transfer stops at the first page that faults)');
  };
  add({
    name: 'dma_read', op: 'dma_read', vendors: ['none'],
    base: (r) => [r.dev0, 0, 16],
    baseExpect: () => dmaRange(0n, 16n),
    args: {
      device: { values: ints, rule: dmaDevice },
      iova: { values: uints, rule: withJs(noC('EINVAL', `${OPS} u64Arg()`), (r) => dmaRange(r, 16n)) },
      len: { values: counts, rule: (_v, r) => dmaRange(0n, r!) },
    },
  });
  add({
    name: 'dma_write', op: 'dma_write', vendors: ['none'],
    base: (r) => [r.dev0, 0, Uint8Array.of(1, 2, 3, 4)],
    baseExpect: () => dmaRange(0n, 4n),
    args: {
      device: { values: ints, rule: dmaDevice },
      iova: { values: uints, rule: withJs(noC('EINVAL', `${OPS} u64Arg()`), (r) => dmaRange(r, 4n)) },
      data: {
        values: data,
        rule: (v) => (v.js instanceof Uint8Array ? dmaRange(0n, BigInt(v.js.length)) : noC('EINVAL', `${OPS}: no bytes to write`)),
      },
    },
  });

  /* ---- ioctl: the generic part (fs/ioctl.c) ---- */
  add({
    name: 'ioctl', op: 'ioctl', vendors: V,
    base: (r) => [r.memfd, 0x5451 /* FIOCLEX */, 0],
    baseExpect: () => ok('fs/ioctl.c do_vfs_ioctl(): FIOCLEX'),
    args: {
      fd: { values: fds, rule: fdRule({}, ok('fs/ioctl.c do_vfs_ioctl(): FIOCLEX on any open file (oracle ioctl-basics.kernel.jsonl i=2)')) },
      req: {
        values: uints,
        rule: withJs(err('ENOTTY', 'not a C value: matches no command (mm/src/ioctl.ts ksys_ioctl())'), (r) => {
          /* cmd is an unsigned int: FIBMAP (1) and FIGETBSZ (2) read or write the NULL arg; FIOCLEX ignores it */
          const cmd = r & 0xffff_ffffn;
          if (cmd === 1n || cmd === 2n) return err('EFAULT', 'fs/ioctl.c do_vfs_ioctl(): FIBMAP / FIGETBSZ with a NULL arg (oracle fio-ioctls.kernel.jsonl)');
          if (cmd === 0x5451n || cmd === 0x5450n) return ok('fs/ioctl.c do_vfs_ioctl(): FIOCLEX / FIONCLEX');
          return err('ENOTTY', 'fs/ioctl.c vfs_ioctl(): a shmem file has no unlocked_ioctl (cmd is an unsigned int; oracle ioctl-basics.kernel.jsonl i=1)');
        }),
      },
    },
  });

  /* FIOCLEX, FIONCLEX: do_vfs_ioctl() sets or clears close-on-exec on any file and ignores arg */
  for (const [name, nr] of [['FIOCLEX', 0x5451], ['FIONCLEX', 0x5450]] as const) {
    const fio = ok(`fs/ioctl.c do_vfs_ioctl(): ${name} (oracle ioctl-basics.kernel.jsonl i=2, i=3)`);
    add({
      name: `ioctl ${name}`, op: 'ioctl', req: name, vendors: V,
      base: (r) => [r.memfd, nr, 0],
      baseExpect: () => fio,
      args: { fd: { values: fds, rule: fdRule({}, fio) }, arg: { values: uints, rule: () => fio } },
    });
  }

  /*
   * The other commands of do_vfs_ioctl() (mm/src/ioctl.ts; Linux 6.18.44 in the oracle's
   * fio-ioctls.kernel.jsonl for memfds and devices). Each on every kind of file with its arg in the
   * memfd's mapping (zeroed), and each arg value on the memfd. `len` bytes at arg are read or
   * written first (-EFAULT) on the kinds in `touches`; `kinds` gives the answer for each kind with
   * a good arg, `driver` standing for the file's own ioctl, which the command falls through to.
   */
  {
    const mapLen = BigInt(MAP_PAGES) * PG;
    const driver: Record<'memfd' | 'devnull' | 'kvm' | 'vm' | 'vcpu' | 'gmem', Expect> = {
      memfd: err('ENOTTY', 'fs/ioctl.c vfs_ioctl(): no unlocked_ioctl'),
      devnull: err('ENOTTY', 'fs/ioctl.c vfs_ioctl(): /dev/null has no unlocked_ioctl'),
      kvm: err('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_dev_ioctl(): not a system ioctl'),
      vm: err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): not a VM ioctl'),
      vcpu: err('EINVAL', 'virt/kvm/kvm_main.c kvm_vcpu_ioctl(): not a KVMIO request'),
      gmem: err('ENOTTY', 'fs/ioctl.c vfs_ioctl(): guest_memfd has no unlocked_ioctl'),
    };
    type Kind = keyof typeof driver;
    const KINDS = Object.keys(driver) as Kind[];
    const all = (e: Expect): Record<Kind, Expect> => Object.fromEntries(KINDS.map((k) => [k, e])) as Record<Kind, Expect>;
    const memfdOnly = (e: Expect): Record<Kind, Expect> => ({ ...driver, memfd: e });
    const inMap = (r: bigint, len: bigint, ctx: RuleCtx): boolean => r >= ctx.res.map && r + len <= ctx.res.map + mapLen;
    const efault = err('EFAULT', 'get_user()/copy_from_user()/put_user() at an address nothing maps');
    const generic = (name: string, nr: number, len: bigint, touches: readonly Kind[], kinds: Record<Kind, Expect>): void => {
      const argRule = withJs(len > 0n && touches.includes('memfd') ? efault : kinds.memfd, (r, _v, ctx) =>
        len > 0n && touches.includes('memfd') && !inMap(r, len, ctx) ? efault : kinds.memfd);
      add({
        name: `ioctl ${name}`, op: 'ioctl', req: name, vendors: V,
        base: (r) => [r.memfd, nr, r.map],
        baseExpect: () => kinds.memfd,
        args: { fd: { values: fds, rule: fdRule(kinds, kinds.memfd) }, arg: { values: addrs, rule: argRule } },
      });
    };
    const regular = ['memfd'] as const;
    generic('FIONREAD', 0x541b, 4n, regular, memfdOnly(ok('fs/ioctl.c file_ioctl(): FIONREAD puts i_size - f_pos')));
    generic('FIOQSIZE', 0x5460, 8n, regular, { ...all(err('ENOTTY', 'fs/ioctl.c do_vfs_ioctl(): FIOQSIZE of no directory, regular file or symlink')), memfd: ok('fs/ioctl.c do_vfs_ioctl(): FIOQSIZE puts inode_get_bytes()') });
    generic('FIGETBSZ', 0x2, 4n, KINDS, all(ok('fs/ioctl.c do_vfs_ioctl(): FIGETBSZ puts s_blocksize')));
    generic('FIONBIO', 0x5421, 4n, KINDS, all(ok('fs/ioctl.c ioctl_fionbio()')));
    generic('FIOASYNC', 0x5452, 4n, KINDS, all(ok('fs/ioctl.c ioctl_fioasync(): 0 leaves FASYNC off')));
    generic('FIBMAP', 0x1, 4n, regular, memfdOnly(err('EINVAL', 'fs/ioctl.c ioctl_fibmap(): no ->bmap (0 is put back)')));
    generic('FIFREEZE', 0xc0045877, 0n, [], all(err('EOPNOTSUPP', 'fs/ioctl.c ioctl_fsfreeze(): no freeze_fs')));
    generic('FITHAW', 0xc0045878, 0n, [], all(err('EINVAL', 'fs/super.c thaw_super(): not frozen')));
    generic('FS_IOC_FIEMAP', 0xc020660b, 0n, [], all(err('EOPNOTSUPP', 'fs/ioctl.c ioctl_fiemap(): no ->fiemap')));
    generic('FS_IOC_GETFSSYSFSPATH', 0x80811501, 0n, [], all(err('ENOTTY', 'fs/ioctl.c ioctl_get_fs_sysfs_path(): no sysfs name')));
    const anon = err('ENOTTY', 'fs/ioctl.c ioctl_getfsuuid(): the pseudo file system has no UUID');
    generic('FS_IOC_GETFSUUID', 0x80111500, 17n, ['memfd', 'devnull', 'kvm'], { memfd: ok('fs/ioctl.c ioctl_getfsuuid(): tmpfs'), devnull: ok('devtmpfs'), kvm: ok('devtmpfs'), vm: anon, vcpu: anon, gmem: anon });
    /* the inode flags: shmem has ->fileattr_get/set; elsewhere -ENOIOCTLCMD goes on to the file's own ioctl */
    generic('FS_IOC_GETFLAGS', 0x80086601, 4n, regular, memfdOnly(ok('fs/file_attr.c ioctl_getflags(): shmem_fileattr_get()')));
    generic('FS_IOC_FSGETXATTR', 0x801c581f, 28n, regular, memfdOnly(ok('fs/file_attr.c ioctl_fsgetxattr()')));
    generic('FS_IOC_SETFLAGS', 0x40086602, 4n, KINDS, memfdOnly(ok('fs/file_attr.c ioctl_setflags(): flags 0')));
    generic('FS_IOC_FSSETXATTR', 0x401c5820, 28n, KINDS, memfdOnly(ok('fs/file_attr.c ioctl_fssetxattr(): a zeroed fsxattr')));
    /* preallocation: a zeroed struct space_resv has l_len 0, which vfs_fallocate() refuses */
    for (const [name, nr] of [['FS_IOC_RESVSP', 0x40305828], ['FS_IOC_RESVSP64', 0x4030582a], ['FS_IOC_UNRESVSP', 0x40305829], ['FS_IOC_UNRESVSP64', 0x4030582b], ['FS_IOC_ZERO_RANGE', 0x40305839]] as const) {
      generic(name, nr, 48n, regular, memfdOnly(err('EINVAL', 'fs/ioctl.c ioctl_preallocate() -> vfs_fallocate(): len 0')));
    }
    /* clone and dedupe: the source must share the destination's file system, then no file system has ->remap_file_range */
    const exdev = err('EXDEV', 'fs/ioctl.c ioctl_file_clone(): another mount');
    const cloneTo = (src: Kind | 'none'): Record<Kind, Expect> => {
      if (src === 'none') return all(err('EBADF', 'fs/ioctl.c ioctl_file_clone(): no source file'));
      const chr = (k: Kind): boolean => k === 'devnull' || k === 'kvm';
      const fs = (k: Kind): string => (chr(k) ? 'devtmpfs' : k === 'vm' || k === 'vcpu' ? 'anon' : k);
      return Object.fromEntries(KINDS.map((k) => {
        if (fs(k) !== fs(src)) return [k, exdev];
        if (k === 'memfd' && src === 'memfd') return [k, err('EOPNOTSUPP', 'fs/remap_range.c vfs_clone_file_range(): no ->remap_file_range')];
        return [k, err('EINVAL', 'fs/remap_range.c generic_file_rw_checks(): not regular files')];
      })) as Record<Kind, Expect>;
    };
    /** The kind of file at fd number `n` (a truncated unsigned int), or 'none'. */
    const kindAt = (n: bigint, ctx: RuleCtx): Kind | 'none' => {
      const fd = Number(n & 0xffff_ffffn);
      if (fd <= 2) return 'devnull';
      for (const k of KINDS) if (ctx.res[k] === fd) return k;
      const chrdev = ['container', 'group', 'iommufd', 'vdev', 'cdev'] as const;
      return chrdev.some((k) => ctx.res[k] === fd) ? 'devnull' : 'none';
    };
    add({
      name: 'ioctl FICLONE', op: 'ioctl', req: 'FICLONE', vendors: V,
      base: (r) => [r.memfd, 0x40049409, r.memfd],
      baseExpect: () => cloneTo('memfd').memfd,
      args: {
        fd: { values: fds, rule: fdRule(cloneTo('memfd'), cloneTo('memfd').memfd) },
        arg: { values: uints, rule: withJs(exdev, (r, _v, ctx) => cloneTo(kindAt(r, ctx)).memfd) },
      },
    });
    /* FICLONERANGE: the struct first; a zeroed one names fd 0, /dev/null */
    generic('FICLONERANGE', 0x4020940d, 32n, KINDS, cloneTo('devnull'));
    /* FIDEDUPERANGE: dest_count (0 here) at +16, then the 24-byte header */
    const notReg = err('EINVAL', 'fs/remap_range.c vfs_dedupe_file_range(): not a regular file');
    generic('FIDEDUPERANGE', 0xc0189436, 24n, KINDS, { ...all(notReg), memfd: err('EOPNOTSUPP', 'fs/remap_range.c vfs_dedupe_file_range(): no ->remap_file_range') });
  }

  /* ---- ioctl: each KVM request ---- */
  /** Where each kind of fd sends a KVM request, when it is not the request's own kind. */
  const kvmFd = (name: string, target: FdKind, own: (ctx: RuleCtx) => Expect): ArgRows['rule'] => (v, r, ctx) => {
    const other: Partial<Record<FdKind, Expect>> = {
      kvm: err('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_dev_ioctl(): not a system ioctl'),
      vm: name === 'KVM_CHECK_EXTENSION' ? ok('virt/kvm/kvm_main.c kvm_vm_ioctl(): KVM_CHECK_EXTENSION on a VM')
        : err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): not a VM ioctl'),
      vcpu: name === 'KVM_MEMORY_ENCRYPT_OP' ? err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl(): no vcpu_mem_enc_ioctl')
        : err('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl(): not a vCPU ioctl'),
    };
    return fdRule({ ...other, [target]: own(ctx) }, err('ENOTTY', 'fs/ioctl.c vfs_ioctl(): the file has no unlocked_ioctl (guest_memfd has none in 6.18)'))(v, r, ctx);
  };
  const efaultStruct = err('EFAULT', 'copy_from_user() of the struct from an address nothing maps');
  const fieldNoC = err('EFAULT', 'not a C value: a field C cannot hold, treated as a struct that cannot be copied in');
  const ioctl = (name: string, target: FdKind, arg: (r: Resources, vendor: string) => unknown, own: (ctx: RuleCtx) => Expect,
    rows: Readonly<Record<string, ArgRows['rule'] | ArgRows>>, opts: { keepHostOnSuccess?: boolean } = {}): void => {
    const args: Record<string, ArgRows> = { fd: { values: fds, rule: kvmFd(name, target, own) } };
    for (const [k, rule] of Object.entries(rows)) args[k] = typeof rule === 'function' ? { values: uints, rule } : rule;
    add({
      name: `ioctl ${name}`, op: 'ioctl', req: name, vendors: V,
      base: (r, vendor) => [r[target], req(name), arg(r, vendor)],
      baseExpect: own,
      args,
      ...opts,
    });
  };
  const scalar = (js: Expect, fn: (r: bigint, ctx: RuleCtx) => Expect): ArgRows['rule'] => withJs(js, (r, _v, ctx) => fn(r, ctx));
  const noArg = (what: string): ArgRows['rule'] => scalar(noC('EINVAL', what), (r) => (r === 0n ? ok(what) : err('EINVAL', `${what}: takes no argument`)));

  ioctl('KVM_GET_API_VERSION', 'kvm', () => 0, () => ok('virt/kvm/kvm_main.c kvm_dev_ioctl()'), { arg: noArg('virt/kvm/kvm_main.c kvm_dev_ioctl()') });
  ioctl('KVM_GET_VCPU_MMAP_SIZE', 'kvm', () => 0, () => ok('virt/kvm/kvm_main.c kvm_dev_ioctl()'), { arg: noArg('virt/kvm/kvm_main.c kvm_dev_ioctl()') });
  ioctl('KVM_CREATE_VM', 'kvm', () => 0, () => ok('virt/kvm/kvm_main.c kvm_dev_ioctl_create_vm()'), {
    arg: scalar(noC('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_init_vm()'), (r, ctx) => (r === 0n || (r === 1n && ctx.vendor === 'sw_protected')
      ? ok('arch/x86/kvm/x86.c kvm_is_vm_type_supported(): a type of KVM_CAP_VM_TYPES')
      : err('EINVAL', 'arch/x86/kvm/x86.c kvm_is_vm_type_supported(): type < 32 and in KVM_CAP_VM_TYPES (default only on the oracle\'s host)'))),
  });
  ioctl('KVM_CHECK_EXTENSION', 'kvm', () => 1, () => ok('virt/kvm/kvm_main.c kvm_vm_ioctl_check_extension_generic()'), {
    arg: () => ok('virt/kvm/kvm_main.c kvm_vm_ioctl_check_extension_generic(): 0 for a capability it does not know (oracle kvm-caps.kernel.jsonl)'),
  });
  ioctl('KVM_CREATE_VCPU', 'vm', () => 1, () => ok('virt/kvm/kvm_main.c kvm_vm_ioctl_create_vcpu()'), {
    arg: scalar(noC('EINVAL', 'virt/kvm/kvm_main.c kvm_vm_ioctl_create_vcpu()'), (r) => {
      if (r === 0n) return err('EEXIST', 'virt/kvm/kvm_main.c kvm_vm_ioctl_create_vcpu(): vCPU 0 exists');
      return r < 4096n ? ok('virt/kvm/kvm_main.c kvm_vm_ioctl_create_vcpu()')
        : err('EINVAL', 'virt/kvm/kvm_main.c kvm_vm_ioctl_create_vcpu(): id >= KVM_MAX_VCPU_IDS (4096 with 1024 vCPUs)');
    }),
  });
  ioctl('KVM_SET_TSS_ADDR', 'vm', () => 0xfffbd000, () => ok('arch/x86/kvm/x86.c kvm_vm_ioctl_set_tss_addr()'), {
    arg: scalar(noC('EINVAL', 'arch/x86/kvm/x86.c kvm_vm_ioctl_set_tss_addr()'), (r) => (r <= 0xffffd000n
      ? ok('arch/x86/kvm/x86.c kvm_vm_ioctl_set_tss_addr(): below 4 GiB - 3 pages')
      : err('EINVAL', 'arch/x86/kvm/x86.c kvm_vm_ioctl_set_tss_addr(): addr > (unsigned int)(-3 * PAGE_SIZE)'))),
  });
  ioctl('KVM_SET_NR_MMU_PAGES', 'vm', () => 64, () => ok('arch/x86/kvm/x86.c kvm_vm_ioctl_set_nr_mmu_pages()'), {
    arg: scalar(noC('EINVAL', 'arch/x86/kvm/x86.c kvm_vm_ioctl_set_nr_mmu_pages()'), (r) => (r >= 64n
      ? ok('arch/x86/kvm/x86.c kvm_vm_ioctl_set_nr_mmu_pages()')
      : err('EINVAL', 'arch/x86/kvm/x86.c kvm_vm_ioctl_set_nr_mmu_pages(): fewer than KVM_MIN_ALLOC_MMU_PAGES'))),
  });
  const gone = err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): KVM_GET_NR_MMU_PAGES was removed in 6.4');
  ioctl('KVM_GET_NR_MMU_PAGES', 'vm', () => 0, () => gone, { arg: () => gone });
  const irqchip = err('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(KVM_CREATE_IRQCHIP): a vCPU exists');
  ioctl('KVM_CREATE_IRQCHIP', 'vm', () => 0, () => irqchip, { arg: () => irqchip });
  const runExit = err('exit:KVM_EXIT_INTERNAL_ERROR', 'arch/x86/kvm/x86.c: the reset vector has no memslot, and fetching from MMIO fails emulation');
  ioctl('KVM_RUN', 'vcpu', () => 0, () => runExit, {
    arg: scalar(noC('EINVAL', 'virt/kvm/kvm_main.c kvm_vcpu_ioctl()'), (r) => (r === 0n ? runExit
      : err('EINVAL', 'virt/kvm/kvm_main.c kvm_vcpu_ioctl(KVM_RUN): arg must be 0'))),
  });

  /* memslots: virt/kvm/kvm_main.c kvm_vm_ioctl(), kvm_vm_ioctl_set_memory_region(), __kvm_set_memory_region() */
  interface Slot {
    slot: bigint; flags: bigint; gpa: bigint; size: bigint; uaddr: bigint; off: bigint; gmem: bigint;
  }
  const gmemPages = 2n * BigInt(MAP_PAGES);
  const memslot = (v2: boolean, s: Slot, ctx: RuleCtx): Expect => {
    const KM = 'virt/kvm/kvm_main.c';
    const inval = (why: string): Expect => err('EINVAL', `${KM} ${why}`);
    if (!v2 && (s.flags & ~3n) !== 0n) return inval('kvm_vm_ioctl(): flags beyond KVM_SET_USER_MEMORY_REGION_V1_FLAGS');
    if ((s.slot & 0xffffn) >= 32764n) return inval('kvm_vm_ioctl_set_memory_region(): (u16)slot >= KVM_USER_MEM_SLOTS');
    const withGmem = (s.flags & 4n) !== 0n;
    const valid = withGmem ? 4n : 7n;
    if ((s.flags & ~valid) !== 0n) return inval('check_memory_region_flags()');
    if ((s.size & (PG - 1n)) !== 0n) return inval('__kvm_set_memory_region(): memory_size not page aligned (oracle memslots.kernel.jsonl)');
    if ((s.gpa & (PG - 1n)) !== 0n) return inval('__kvm_set_memory_region(): guest_phys_addr not page aligned (oracle memslots.kernel.jsonl)');
    if ((s.uaddr & (PG - 1n)) !== 0n || s.uaddr + s.size > TASK_SIZE) return inval('__kvm_set_memory_region(): userspace_addr unaligned or !access_ok() (oracle memslots.kernel.jsonl i=39)');
    if (withGmem && ((s.off & (PG - 1n)) !== 0n || s.off + s.size >= 1n << 64n)) return inval('__kvm_set_memory_region(): guest_memfd_offset unaligned or wrapping');
    if (s.slot >> 16n !== 0n) return inval('__kvm_set_memory_region(): as_id beyond the address spaces (no SMM: oracle memslots.kernel.jsonl)');
    if (s.gpa + s.size >= 1n << 64n) return inval('__kvm_set_memory_region(): guest_phys_addr + memory_size wraps');
    if (s.size / PG > 2n ** 31n - 1n) return inval('__kvm_set_memory_region(): more than KVM_MEM_MAX_NR_PAGES');
    if (s.size === 0n) return (s.slot & 0xffffn) === 0n ? ok(`${KM} __kvm_set_memory_region(): size 0 deletes slot 0`) : inval('__kvm_set_memory_region(): deleting a slot that does not exist');
    if ((s.slot & 0xffffn) === 0n) return inval('__kvm_set_memory_region(): slot 0 exists with another size');
    if (s.gpa < slotEnd) return err('EEXIST', `${KM} __kvm_set_memory_region(): overlaps memslot 0`);
    if (withGmem) {
      const fd = BigInt.asIntN(32, s.gmem);
      const open = fd >= 0n && [0n, 1n, 2n, BigInt(ctx.res.memfd), BigInt(ctx.res.devnull), BigInt(ctx.res.kvm), BigInt(ctx.res.vm), BigInt(ctx.res.vcpu), BigInt(ctx.res.gmem)].includes(fd);
      if (!open) return err('EBADF', 'virt/kvm/guest_memfd.c kvm_gmem_bind(): no file at that fd (oracle memslots.kernel.jsonl i=66)');
      if (fd !== BigInt(ctx.res.gmem)) return err('EINVAL', 'virt/kvm/guest_memfd.c kvm_gmem_bind(): not a guest_memfd (oracle memslots.kernel.jsonl i=64)');
      if (s.off + s.size > gmemPages * PG || s.off < BigInt(MAP_PAGES) * PG) {
        return err('EINVAL', 'virt/kvm/guest_memfd.c kvm_gmem_bind(): past the file\'s size, or over memslot 0\'s binding (oracle memslots.kernel.jsonl i=75..82)');
      }
    }
    if (s.gpa / PG + s.size / PG - 1n > (1n << 40n) - 1n) return inval('arch/x86/kvm/x86.c kvm_arch_prepare_memory_region(): beyond the largest gfn (oracle memslots.kernel.jsonl i=43)');
    return ok(`${KM} __kvm_set_memory_region()`);
  };
  const slotBase = (ctx: RuleCtx, v2: boolean): Slot => {
    const g = v2 && ctx.vendor !== 'none';
    return { slot: 1n, flags: g ? 4n : 0n, gpa: 0x100000n, size: PG, uaddr: ctx.res.map, off: g ? BigInt(MAP_PAGES) * PG : 0n, gmem: g ? BigInt(ctx.res.gmem) : 0n };
  };
  const slotField = (v2: boolean, key: keyof Slot, width: 32 | 64): ArgRows['rule'] => withJs(fieldNoC, (r, _v, ctx) =>
    memslot(v2, { ...slotBase(ctx, v2), [key]: width === 32 ? u32(r) : r }, ctx));
  const region = (r: Resources): Record<string, unknown> => ({ slot: 1, flags: 0, guest_phys_addr: 0x100000, memory_size: PAGE, userspace_addr: r.map });
  const v1Fields = (v2: boolean): Record<string, ArgRows['rule']> => ({
    arg: () => efaultStruct,
    'arg.slot': slotField(v2, 'slot', 32),
    'arg.flags': slotField(v2, 'flags', 32),
    'arg.guest_phys_addr': slotField(v2, 'gpa', 64),
    'arg.memory_size': slotField(v2, 'size', 64),
    'arg.userspace_addr': slotField(v2, 'uaddr', 64),
  });
  ioctl('KVM_SET_USER_MEMORY_REGION', 'vm', region, (ctx) => memslot(false, slotBase(ctx, false), ctx), v1Fields(false));
  ioctl('KVM_SET_USER_MEMORY_REGION2', 'vm', (r, vendor) => ({
    ...region(r), ...(vendor !== 'none' && { flags: 0x4, guest_memfd: r.gmem, guest_memfd_offset: Number(size) }),
  }), (ctx) => memslot(true, slotBase(ctx, true), ctx), {
    ...v1Fields(true),
    'arg.guest_memfd_offset': slotField(true, 'off', 64),
    'arg.guest_memfd': slotField(true, 'gmem', 32),
    'arg.pad1': () => ok('virt/kvm/kvm_main.c: pad1 is not read (oracle memslots.kernel.jsonl i=58)'),
    'arg.pad2': { values: reserved('KVM_SET_USER_MEMORY_REGION2'), rule: () => ok('virt/kvm/kvm_main.c: pad2 is not read (oracle memslots.kernel.jsonl i=58)') },
  });
  const rfc = err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): the RFC series\' request is no upstream ioctl');
  ioctl('KVM_SET_USER_MEMORY_REGION_RFC', 'vm', region, () => rfc, {
    arg: () => rfc, 'arg.slot': () => rfc, 'arg.flags': () => rfc, 'arg.guest_phys_addr': () => rfc, 'arg.memory_size': () => rfc, 'arg.userspace_addr': () => rfc,
  });

  /* memory attributes: virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes() */
  const noAttrs = err('ENOTTY', 'virt/kvm/kvm_main.c kvm_vm_ioctl(): no CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES on the oracle\'s host (oracle kvm-caps.kernel.jsonl)');
  const attrs = (a: { address: bigint; size: bigint; attributes: bigint; flags: bigint }, ctx: RuleCtx): Expect => {
    if (ctx.vendor === 'none') return noAttrs;
    const KM = 'virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes()';
    if (a.flags !== 0n) return err('EINVAL', `${KM}: flags`);
    if ((a.attributes & ~8n) !== 0n) return err('EINVAL', `${KM}: attributes beyond KVM_MEMORY_ATTRIBUTE_PRIVATE`);
    if (a.size === 0n || a.address + a.size >= 1n << 64n) return err('EINVAL', `${KM}: an empty or wrapping range`);
    if ((a.address & (PG - 1n)) !== 0n || (a.size & (PG - 1n)) !== 0n) return err('EINVAL', `${KM}: unaligned`);
    return ok(KM);
  };
  const attrBase = { address: 0n, size: PG, attributes: 8n, flags: 0n };
  const attrField = (key: keyof typeof attrBase): ArgRows['rule'] => (v, r, ctx) => {
    if (ctx.vendor === 'none') return noAttrs;
    return r === undefined || isJs(v) ? fieldNoC : attrs({ ...attrBase, [key]: r }, ctx);
  };
  ioctl('KVM_SET_MEMORY_ATTRIBUTES', 'vm', () => ({ address: 0, size: PAGE, attributes: 8, flags: 0 }), (ctx) => attrs(attrBase, ctx), {
    arg: (_v, _r, ctx) => (ctx.vendor === 'none' ? noAttrs : efaultStruct),
    'arg.address': attrField('address'), 'arg.size': attrField('size'), 'arg.attributes': attrField('attributes'), 'arg.flags': attrField('flags'),
  });
  const noAttrs2 = err('ENOTTY', 'virt/kvm/guest_memfd.c: 6.18\'s guest_memfd has no ioctl; KVM_SET_MEMORY_ATTRIBUTES2 is the unmerged in-place conversion series\' (oracle oracle-selftest.kernel.jsonl)');
  ioctl('KVM_SET_MEMORY_ATTRIBUTES2', 'gmem', () => ({ offset: 0, size: PAGE, attributes: 8, flags: 0 }), () => noAttrs2, {
    arg: () => noAttrs2, 'arg.offset': () => noAttrs2, 'arg.address': () => noAttrs2, 'arg.size': () => noAttrs2, 'arg.attributes': () => noAttrs2,
    'arg.flags': () => noAttrs2,
  });

  /* guest_memfd: virt/kvm/guest_memfd.c kvm_gmem_create() */
  const GM = 'virt/kvm/guest_memfd.c kvm_gmem_create()';
  ioctl('KVM_CREATE_GUEST_MEMFD', 'vm', () => ({ size: PAGE, flags: 0 }), () => ok(GM), {
    arg: () => efaultStruct,
    'arg.size': withJs(noC('EINVAL', GM), (r) => (s64(r) <= 0n || (r & (PG - 1n)) !== 0n
      ? err('EINVAL', `${GM}: size <= 0 as a loff_t, or unaligned (oracle guest_memfd.kernel.jsonl)`) : ok(GM))),
    'arg.flags': withJs(noC('EINVAL', GM), (r, _v, ctx) => ((r & ~(ctx.vendor === 'none' ? 3n : 1n)) !== 0n
      ? err('EINVAL', `${GM}: a flag beyond kvm_gmem_get_supported_flags() (INIT_SHARED only without private memory; oracle guest_memfd.kernel.jsonl)`)
      : ok(GM))),
    'arg.reserved': { values: reserved('KVM_CREATE_GUEST_MEMFD'), rule: () => ok(`${GM}: reserved is not checked (oracle guest_memfd.kernel.jsonl)`) },
  });

  /* pre-faulting: virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory(), arch/x86/kvm/mmu/mmu.c kvm_arch_vcpu_pre_fault_memory() */
  const PF = 'virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory()';
  const prefault = (p: { gpa: bigint; size: bigint; flags: bigint }, ctx: RuleCtx): Expect => {
    if (p.flags !== 0n) return err('EINVAL', `${PF}: flags`);
    if ((p.gpa & (PG - 1n)) !== 0n || (p.size & (PG - 1n)) !== 0n || p.gpa + p.size >= 1n << 64n || p.size === 0n) return err('EINVAL', `${PF}: unaligned, empty or wrapping`);
    if (ctx.vendor === 'none') return err('EOPNOTSUPP', 'arch/x86/kvm/mmu/mmu.c kvm_tdp_map_page(): shadow paging cannot pre-fault');
    return p.gpa < slotEnd ? ok(`${PF}: at least one page mapped`) : err('ENOENT', 'arch/x86/kvm/mmu/mmu.c kvm_tdp_map_page(): no memslot (RET_PF_EMULATE)');
  };
  const pfBase = { gpa: 0n, size: PG, flags: 0n };
  const pfField = (key: keyof typeof pfBase): ArgRows['rule'] => withJs(noC('EINVAL', PF), (r, _v, ctx) => prefault({ ...pfBase, [key]: r }, ctx));
  ioctl('KVM_PRE_FAULT_MEMORY', 'vcpu', () => ({ gpa: 0, size: PAGE, flags: 0 }), (ctx) => prefault(pfBase, ctx), {
    arg: () => efaultStruct, 'arg.gpa': pfField('gpa'), 'arg.size': pfField('size'), 'arg.flags': pfField('flags'),
    'arg.padding': { values: reserved('KVM_PRE_FAULT_MEMORY'), rule: (_v, _r, ctx) => prefault(pfBase, ctx) },
  });

  /* capabilities: arch/x86/kvm/x86.c kvm_vm_ioctl_enable_cap() */
  const EC = 'arch/x86/kvm/x86.c kvm_vm_ioctl_enable_cap()';
  ioctl('KVM_ENABLE_CAP', 'vm', () => ({ cap: 201, flags: 0, args: [0, 0, 0, 0] }), () => ok(`${EC}: KVM_CAP_EXIT_HYPERCALL`), {
    arg: () => efaultStruct,
    'arg.cap': withJs(fieldNoC, () => err('EINVAL', `${EC}: no capability of these numbers can be enabled`)),
    'arg.flags': withJs(fieldNoC, (r) => (u32(r) === 0n ? ok(`${EC}: flags is a __u32`) : err('EINVAL', `${EC}: flags must be 0`))),
    'arg.args': {
      values: [
        ...[[0, 0, 0, 0], [4096], [1], [2n ** 64n - 1n], [-1], []].map((a) => ({ label: `[${a.join(', ')}]`, js: a })),
        { label: '[0.5]', js: [0.5] }, { label: '7 (no array)', js: 7 },
      ],
      rule: (v) => {
        if (!Array.isArray(v.js)) return ok(`${EC}: an args that is no array reads as zeroes (the struct was zeroed)`);
        const a0 = v.js.length === 0 ? 0n : reg(v.js[0]);
        if (a0 === undefined) return fieldNoC;
        return (a0 & ~4096n) === 0n ? ok(`${EC}: KVM_CAP_EXIT_HYPERCALL takes a mask of KVM_EXIT_HYPERCALL_VALID_MASK (KVM_HC_MAP_GPA_RANGE)`)
          : err('EINVAL', `${EC}: KVM_CAP_EXIT_HYPERCALL args[0] beyond KVM_EXIT_HYPERCALL_VALID_MASK`);
      },
    },
  });

  /*
   * dirty logging: virt/kvm/kvm_main.c kvm_get_dirty_log_protect(), kvm_clear_dirty_log_protect().
   * Memslot 0 does not log (no bitmap): a call that gets past the slot id is -ENOENT, the struct
   * fields read after the lookup change nothing (oracle kvm-dirty-log*.kernel.jsonl).
   */
  const DL = 'virt/kvm/kvm_main.c kvm_get_dirty_log_protect()';
  const CL = 'virt/kvm/kvm_main.c kvm_clear_dirty_log_protect()';
  const dirtySlot = (where: string) => withJs(fieldNoC, (r) => ((u32(r) >> 16n) >= 1n || (r & 0xffffn) >= 32764n
    ? err('EINVAL', `${where}: as_id beyond the address spaces, or a slot index beyond KVM_USER_MEM_SLOTS`)
    : err('ENOENT', `${where}: no memslot, or one that does not log`)));
  const noBitmap = (where: string) => withJs(fieldNoC, () => err('ENOENT', `${where}: memslot 0 has no dirty bitmap`));
  /* coalesced MMIO: virt/kvm/coalesced_mmio.c kvm_vm_ioctl_{,un}register_coalesced_mmio() */
  for (const [name, fn] of [['KVM_REGISTER_COALESCED_MMIO', 'kvm_vm_ioctl_register_coalesced_mmio()'], ['KVM_UNREGISTER_COALESCED_MMIO', 'kvm_vm_ioctl_unregister_coalesced_mmio()']] as const) {
    const CM = `virt/kvm/coalesced_mmio.c ${fn}`;
    ioctl(name, 'vm', () => ({ addr: 0x10000000, size: PAGE, pio: 0 }), () => ok(CM), {
      arg: () => efaultStruct,
      'arg.addr': withJs(fieldNoC, () => ok(`${CM}: any zone`)),
      'arg.size': withJs(fieldNoC, () => ok(`${CM}: any zone (a __u32)`)),
      'arg.pio': withJs(fieldNoC, (r) => (u32(r) <= 1n ? ok(`${CM}: pio is 0 or 1 (a __u32)`) : err('EINVAL', `${CM}: pio is neither 0 nor 1`))),
    });
  }
  const RR = 'virt/kvm/kvm_main.c kvm_vm_ioctl_reset_dirty_pages()';
  ioctl('KVM_RESET_DIRTY_RINGS', 'vm', () => 0, () => err('EINVAL', `${RR}: the VM has no dirty rings`), {
    arg: () => err('EINVAL', `${RR}: the VM has no dirty rings (the argument is not read)`),
  });
  ioctl('KVM_GET_DIRTY_LOG', 'vm', (r) => ({ slot: 0, dirty_bitmap: r.map }), () => err('ENOENT', `${DL}: memslot 0 has no dirty bitmap`), {
    arg: () => efaultStruct, 'arg.slot': dirtySlot(DL), 'arg.dirty_bitmap': noBitmap(DL),
  });
  ioctl('KVM_CLEAR_DIRTY_LOG', 'vm', (r) => ({ slot: 0, first_page: 0, num_pages: MAP_PAGES, dirty_bitmap: r.map }),
    () => err('ENOENT', `${CL}: memslot 0 has no dirty bitmap`), {
      arg: () => efaultStruct, 'arg.slot': dirtySlot(CL), 'arg.num_pages': noBitmap(CL), 'arg.dirty_bitmap': noBitmap(CL),
      'arg.first_page': withJs(fieldNoC, (r) => ((r & 63n) !== 0n ? err('EINVAL', `${CL}: first_page not a multiple of 64`) : err('ENOENT', `${CL}: memslot 0 has no dirty bitmap`))),
    });

  /* registers: arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl_{get,set}_regs() */
  ioctl('KVM_GET_REGS', 'vcpu', () => ({}), () => ok('arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl_get_regs()'), {
    arg: () => err('EFAULT', 'arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl(): copy_to_user() to an address nothing maps'),
  });
  const regField = withJs(fieldNoC, () => ok('arch/x86/kvm/x86.c __set_regs(): any 64-bit value'));
  ioctl('KVM_SET_REGS', 'vcpu', () => ({}), () => ok('arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl_set_regs()'), {
    arg: () => efaultStruct,
    ...Object.fromEntries(REGS.map((f) => [`arg.${f}`, regField])),
  }, { keepHostOnSuccess: true });

  /* confidential-computing requests without a vendor: arch/x86/kvm/x86.c kvm_arch_vm_ioctl() */
  const noEnc = err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): no mem_enc_ioctl for this VM');
  ioctl('KVM_MEMORY_ENCRYPT_OP', 'vm', () => ({ id: 0, data: 0, error: 0, sev_fd: 0 }), () => noEnc, {
    arg: () => noEnc, 'arg.id': () => noEnc, 'arg.data': () => noEnc,
  });
  const noRegion = err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): no mem_enc_register_region for this VM');
  for (const name of ['KVM_MEMORY_ENCRYPT_REG_REGION', 'KVM_MEMORY_ENCRYPT_UNREG_REGION']) {
    ioctl(name, 'vm', (r) => ({ addr: r.map, size: PAGE }), () => noRegion, {
      arg: () => err('EFAULT', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): struct kvm_enc_region is copied in before the vendor is asked'),
      'arg.addr': () => noRegion, 'arg.size': () => noRegion,
    });
  }

  /* ---- the vendors' KVM_MEMORY_ENCRYPT_OP, on their own VM types ---- */
  const TDX = 'arch/x86/kvm/vmx/tdx.c tdx_vm_ioctl()';
  const tdxCaps = (): Record<string, unknown> => ({ id: 0 /* KVM_TDX_CAPABILITIES */, flags: 0, data: { cpuid: { nent: 256 } }, hw_error: 0 });
  add({
    name: 'ioctl KVM_MEMORY_ENCRYPT_OP (tdx)', op: 'ioctl', req: 'KVM_MEMORY_ENCRYPT_OP', vendors: ['tdx'],
    base: (r) => [r.vm, req('KVM_MEMORY_ENCRYPT_OP'), tdxCaps()],
    baseExpect: () => ok(`${TDX}: KVM_TDX_CAPABILITIES`),
    args: {
      arg: { values: uints, rule: () => err('EFAULT', `${TDX}: copy_from_user() of struct kvm_tdx_cmd`) },
      'arg.id': {
        values: uints,
        rule: withJs(fieldNoC, (r) => (u32(r) === 0n ? ok(`${TDX}: KVM_TDX_CAPABILITIES (id is a __u32)`)
          : u32(r) === 1n ? err('EFAULT', 'arch/x86/kvm/vmx/tdx.c tdx_td_init(): data is no struct kvm_tdx_init_vm')
            : err('EINVAL', `${TDX}: no such VM command (KVM_TDX_FINALIZE_VM before init, or a vCPU command)`))),
      },
      'arg.flags': { values: uints, rule: withJs(fieldNoC, (r) => (u32(r) === 0n ? ok(TDX) : err('EINVAL', 'arch/x86/kvm/vmx/tdx.c tdx_get_capabilities(): flags'))) },
      'arg.hw_error': { values: uints, rule: withJs(fieldNoC, (r) => (r === 0n ? ok(TDX) : err('EINVAL', `${TDX}: user space set hw_error`))) },
      'arg.data': { values: uints, rule: () => err('EFAULT', 'arch/x86/kvm/vmx/tdx.c tdx_get_capabilities(): get_user() of cpuid.nent from data') },
    },
  });
  const SEV = 'arch/x86/kvm/svm/sev.c sev_mem_enc_ioctl()';
  const sevInit2 = (): Record<string, unknown> => ({ id: 22 /* KVM_SEV_INIT2 */, data: { vmsa_features: 0, flags: 0, ghcb_version: 0 }, error: 0, sev_fd: 0 });
  add({
    name: 'ioctl KVM_MEMORY_ENCRYPT_OP (sev)', op: 'ioctl', req: 'KVM_MEMORY_ENCRYPT_OP', vendors: ['sev'],
    base: (r) => [r.vm, req('KVM_MEMORY_ENCRYPT_OP'), sevInit2()],
    baseExpect: () => ok(`${SEV}: KVM_SEV_INIT2 on a KVM_X86_SNP_VM`),
    args: {
      arg: {
        values: uints,
        rule: withJs(err('EFAULT', `${SEV}: copy_from_user()`), (r) => (r === 0n ? ok(`${SEV}: a NULL argument is 0`) : err('EFAULT', `${SEV}: copy_from_user() of struct kvm_sev_cmd`))),
      },
      'arg.id': {
        values: uints,
        rule: withJs(fieldNoC, (r) => {
          const id = u32(r);
          if (id === 0n || id === 1n) return err('EINVAL', 'arch/x86/kvm/svm/sev.c sev_guest_init(): KVM_SEV_INIT/ES_INIT only on a KVM_X86_DEFAULT_VM (id is a __u32)');
          if (id === 2n) return err('ENOTTY', 'arch/x86/kvm/svm/sev.c sev_launch_start(): the VM is no SEV guest yet');
          return id === 22n ? ok(SEV) : err('EINVAL', `${SEV}: no such command`);
        }),
      },
      'arg.data': { values: uints, rule: () => err('EFAULT', 'arch/x86/kvm/svm/sev.c sev_guest_init2(): copy_from_user() of struct kvm_sev_init from data') },
      'arg.error': { values: uints, rule: withJs(fieldNoC, () => ok(`${SEV}: error is an out-field`)) },
      'arg.sev_fd': { values: uints, rule: withJs(fieldNoC, () => ok('arch/x86/kvm/svm/sev.c sev_guest_init2(): KVM_SEV_INIT2 does not use sev_fd')) },
    },
  });

  /* ---- ioctl: VFIO type1 and iommufd requests, on setupResources()'s VFIO files ---- */
  /*
   * Where each kind of file sends a VFIO or iommufd request that is not its own. The iommufd is
   * left out of the VFIO requests' fd rows: drivers/iommu/iommufd/main.c iommufd_fops_ioctl()
   * hands a number below IOMMUFD_CMD_BASE to vfio_compat.c iommufd_vfio_ioctl() (built whatever
   * the config), which answers VFIO_GET_API_VERSION with 0, and the rest from the compat IOAS
   * (-ENODEV without one); vfio/src/iommufd/main.ts answers them all -ENOTTY.
   */
  const VT1 = 'drivers/vfio/vfio_iommu_type1.c';
  const VC = 'drivers/vfio/container.c';
  const VG = 'drivers/vfio/group.c';
  const IF = 'drivers/iommu/iommufd/main.c iommufd_fops_ioctl()';
  const IOP = 'drivers/iommu/iommufd/io_pagetable.c';
  const notVfioFile: Partial<Record<FdKind, Expect>> = {
    kvm: err('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_dev_ioctl(): not a /dev/kvm request'),
    vm: err('ENOTTY', 'arch/x86/kvm/x86.c kvm_arch_vm_ioctl(): not a VM request'),
    vcpu: err('EINVAL', 'arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl(): not a vCPU request'),
    container: err('ENOTTY', `${VT1} vfio_iommu_type1_ioctl(): vfio_fops_unl_ioctl() passes on what it does not know, and type1 does not know it either`),
    group: err('ENOTTY', `${VG} vfio_group_fops_unl_ioctl(): not a group request`),
    iommufd: err('ENOTTY', `${IF}: another command's number (-ENOIOCTLCMD)`),
    vdev: err('ENOTTY', 'drivers/vfio/pci/vfio_pci_core.c vfio_pci_core_ioctl(): no such device request'),
    cdev: err('EINVAL', 'drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl(): a device cdev takes nothing but VFIO_DEVICE_BIND_IOMMUFD before a bind'),
  };
  const vfioFds = fdValues(gen, true);
  /* both base vendors drive the same IOMMU (no vendor iommu_ops: bench/src/host.ts VENDORS), so one runs the rows */
  const VFIO_VENDORS = ['none'] as const;
  const vfioIoctl = (name: string, target: VfioFdKind, arg: (r: Resources) => unknown, own: (ctx: RuleCtx) => Expect,
    rows: Readonly<Record<string, ArgRows['rule'] | ArgRows>>, opts: { keepHostOnSuccess?: boolean; fds?: Partial<Record<FdKind, Expect>> } = {}): void => {
    const values = name.startsWith('VFIO_') ? vfioFds.filter((v) => v.fd !== 'iommufd') : vfioFds;
    const fd: ArgRows['rule'] = (v, r, ctx) => fdRule({ ...notVfioFile, ...opts.fds, [target]: own(ctx) },
      err('ENOTTY', 'fs/ioctl.c vfs_ioctl(): the file has no unlocked_ioctl'))(v, r, ctx);
    const args: Record<string, ArgRows> = { fd: { values, rule: fd } };
    for (const [k, rule] of Object.entries(rows)) args[k] = typeof rule === 'function' ? { values: uints, rule } : rule;
    add({
      name: `ioctl ${name}`, op: 'ioctl', req: name, vendors: VFIO_VENDORS,
      base: (r) => [r[target], req(name), arg(r)],
      baseExpect: own,
      args,
      ...(opts.keepHostOnSuccess === true && { keepHostOnSuccess: true }),
    });
  };
  const U64 = 1n << 64n;
  const ULONG_MAX = U64 - 1n;
  /* the IOVA space of both paths: the domain's 48-bit aperture less the x86 MSI window */
  const MSI_FIRST = 0xfee00000n;
  const MSI_LAST = 0xfeefffffn;
  const iovaValid = (first: bigint, last: bigint): boolean => last < 1n << 48n && (last < MSI_FIRST || first > MSI_LAST);
  /** Whether [va, va + len) lies in the DMA buffer or the memfd mapping (what a pin can reach). */
  const userMapped = (va: bigint, len: bigint, ctx: RuleCtx): boolean =>
    (va >= ctx.res.dma && va + len <= ctx.res.dma + dmaBytes) || (va >= ctx.res.map && va + len <= ctx.res.map + mapLen);
  /* an out-field's value does not matter: the edges of its width and the JS-only values show it */
  const outValues = uints.filter((v) => isJs(v) || v.js === 0 || v.js === 0xffffffff || v.js === '0xffffffffffffffff');
  const notRead = (what: string): ArgRows => ({ values: outValues, rule: () => ok(`${what}: an out-field, not read`) });
  /*
   * Left out of the size rows: sizes that pin the DMA buffer's pages and then fault past its end.
   * The kernel unpins what it pinned, but not what pinning did to the folios (accessed and LRU
   * state, a FOLL_LONGTERM migration), which mm/src/debug_vm.ts failed_call_may_change() does not
   * list for these requests: DEBUG_VM would call the failed call's changes a simulator bug.
   */
  const partialPin = (v: Value): boolean => {
    const r = reg(v.js);
    return r !== undefined && !isJs(v) && r > dmaBytes && (r & (PG - 1n)) === 0n && iovaValid(dmaBytes, dmaBytes + r - 1n);
  };
  const pinSizes = uints.filter((v) => !partialPin(v));

  /* the container: drivers/vfio/container.c vfio_fops_unl_ioctl() */
  const apiVersion = ok(`${VC} vfio_fops_unl_ioctl(): VFIO_API_VERSION, whatever the argument`);
  vfioIoctl('VFIO_GET_API_VERSION', 'container', () => 0, () => apiVersion, { arg: () => apiVersion }, { keepHostOnSuccess: true });
  const checkExt = ok(`${VT1} vfio_iommu_type1_check_extension(): 1 or 0, never an error`);
  vfioIoctl('VFIO_CHECK_EXTENSION', 'container', () => 3, () => checkExt, { arg: () => checkExt }, { keepHostOnSuccess: true });
  const iommuSet = err('EINVAL', `${VC} vfio_ioctl_set_iommu(): the container has its IOMMU driver already`);
  vfioIoctl('VFIO_SET_IOMMU', 'container', () => 3, () => iommuSet, { arg: () => iommuSet });

  /* the group: drivers/vfio/group.c vfio_group_fops_unl_ioctl() */
  const status = ok(`${VG} vfio_group_ioctl_get_status()`);
  vfioIoctl('VFIO_GROUP_GET_STATUS', 'group', () => ({ argsz: 8 }), () => status, {
    arg: () => efaultStruct,
    'arg.argsz': withJs(fieldNoC, (r) => (u32(r) < 8n ? err('EINVAL', `${VG} vfio_group_ioctl_get_status(): argsz below minsz (8)`) : status)),
    'arg.flags': notRead(`${VG} vfio_group_ioctl_get_status()`),
  }, { keepHostOnSuccess: true });
  const inContainer = err('EINVAL', `${VG} vfio_group_ioctl_set_container(): the group is in a container already`);
  vfioIoctl('VFIO_GROUP_SET_CONTAINER', 'group', (r) => r.container, () => inContainer, {
    arg: {
      values: vfioFds,
      rule: (v, r, ctx) => (isJs(v) ? noC('EFAULT', `${VG} vfio_group_ioctl_set_container(): get_user() of the fd`)
        : fdRule({}, inContainer)(v, r, ctx)),
    },
  });
  const unset = ok(`${VG} vfio_group_ioctl_unset_container(): the argument is not read`);
  vfioIoctl('VFIO_GROUP_UNSET_CONTAINER', 'group', () => 0, () => unset, { arg: () => unset });

  /* type1: drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_ioctl() */
  const info = ok(`${VT1} vfio_iommu_type1_get_info()`);
  vfioIoctl('VFIO_IOMMU_GET_INFO', 'container', () => ({ argsz: 16 }), () => info, {
    arg: () => efaultStruct,
    'arg.argsz': withJs(fieldNoC, (r) => (u32(r) < 16n ? err('EINVAL', `${VT1} vfio_iommu_type1_get_info(): argsz below minsz (16)`) : info)),
    'arg.flags': notRead(`${VT1} vfio_iommu_type1_get_info()`),
    'arg.iova_pgsizes': notRead(`${VT1} vfio_iommu_type1_get_info()`),
    'arg.cap_offset': notRead(`${VT1} vfio_iommu_type1_get_info()`),
  }, { keepHostOnSuccess: true });

  interface DmaMap { argsz: bigint; flags: bigint; vaddr: bigint; iova: bigint; size: bigint }
  const DM = `${VT1} vfio_dma_do_map()`;
  const dmaMap = (m: DmaMap, ctx: RuleCtx): Expect => {
    const f = u32(m.flags);
    if (u32(m.argsz) < 32n || (f & ~7n) !== 0n) return err('EINVAL', `${VT1} vfio_iommu_type1_map_dma(): argsz below minsz (32), or a flag beyond READ|WRITE|VADDR`);
    const setVaddr = (f & 4n) !== 0n;
    if (((f & 3n) !== 0n) === setVaddr) return err('EINVAL', `${DM}: VADDR together with READ/WRITE, or none of them`);
    if (m.size === 0n || ((m.size | m.iova | m.vaddr) & (PG - 1n)) !== 0n) return err('EINVAL', `${DM}: size 0, or size, iova or vaddr not page aligned`);
    if (m.iova + m.size - 1n >= U64 || m.vaddr + m.size - 1n >= U64) return err('EINVAL', `${DM}: the IOVA or the user range wraps`);
    const overlaps = m.iova < dmaBytes;
    if (setVaddr) return overlaps ? err('EINVAL', `${DM}: VADDR of a mapping whose vaddr is valid`) : err('ENOENT', `${DM}: VADDR where nothing is mapped`);
    if (overlaps) return err('EEXIST', `${DM}: vfio_find_dma() finds the DMA buffer's mapping`);
    if (!iovaValid(m.iova, m.iova + m.size - 1n)) return err('EINVAL', `${DM}: vfio_iommu_iova_dma_valid(): beyond the aperture or over the MSI window`);
    return userMapped(m.vaddr, m.size, ctx) ? ok(`${DM}: pinned and mapped`) : err('EFAULT', `${VT1} vaddr_get_pfns(): no VMA at part of the user range`);
  };
  const mapBase = (ctx: RuleCtx): DmaMap => ({ argsz: 32n, flags: 3n, vaddr: ctx.res.dma, iova: dmaBytes, size: PG });
  const mapField = (key: keyof DmaMap): ArgRows['rule'] => withJs(fieldNoC, (r, _v, ctx) => dmaMap({ ...mapBase(ctx), [key]: r }, ctx));
  vfioIoctl('VFIO_IOMMU_MAP_DMA', 'container', (r) => ({ argsz: 32, flags: 3, vaddr: r.dma, iova: Number(dmaBytes), size: PAGE }), (ctx) => dmaMap(mapBase(ctx), ctx), {
    arg: () => efaultStruct,
    'arg.argsz': mapField('argsz'), 'arg.flags': mapField('flags'), 'arg.vaddr': { values: addrs, rule: mapField('vaddr') },
    'arg.iova': mapField('iova'), 'arg.size': { values: pinSizes, rule: mapField('size') },
  });

  interface DmaUnmap { argsz: bigint; flags: bigint; iova: bigint; size: bigint }
  const DU = `${VT1} vfio_dma_do_unmap()`;
  const dmaUnmap = (u: DmaUnmap): Expect => {
    const f = u32(u.flags);
    if (u32(u.argsz) < 24n || (f & ~7n) !== 0n) return err('EINVAL', `${VT1} vfio_iommu_type1_unmap_dma(): argsz below minsz (24), or a flag beyond GET_DIRTY_BITMAP|ALL|VADDR`);
    if ((f & 1n) !== 0n) return err('EINVAL', `${VT1} vfio_iommu_type1_unmap_dma(): GET_DIRTY_BITMAP with ALL or VADDR, or with no room for the bitmap in argsz`);
    if ((u.iova & (PG - 1n)) !== 0n) return err('EINVAL', `${DU}: iova not page aligned`);
    if ((f & 2n) !== 0n) return u.iova === 0n && u.size === 0n ? ok(`${DU}: UNMAP_ALL`) : err('EINVAL', `${DU}: UNMAP_ALL with an iova or a size`);
    if (u.size === 0n || (u.size & (PG - 1n)) !== 0n || u.iova + u.size - 1n >= U64) return err('EINVAL', `${DU}: size 0 or not page aligned, or the range wraps`);
    const end = u.iova + u.size - 1n;
    if ((u.iova > 0n && u.iova < dmaBytes) || (end < dmaBytes - 1n)) return err('EINVAL', `${DU}: type1v2 refuses a range that cuts the DMA buffer's mapping`);
    return ok(`${DU}: unmaps the mappings inside the range (none is no error)`);
  };
  const unmapBase: DmaUnmap = { argsz: 24n, flags: 0n, iova: 0n, size: dmaBytes };
  const unmapField = (key: keyof DmaUnmap): ArgRows['rule'] => withJs(fieldNoC, (r) => dmaUnmap({ ...unmapBase, [key]: r }));
  vfioIoctl('VFIO_IOMMU_UNMAP_DMA', 'container', () => ({ argsz: 24, flags: 0, iova: 0, size: Number(dmaBytes) }), () => dmaUnmap(unmapBase), {
    arg: () => efaultStruct,
    'arg.argsz': unmapField('argsz'), 'arg.flags': unmapField('flags'), 'arg.iova': unmapField('iova'), 'arg.size': unmapField('size'),
  });

  /* the device cdev: drivers/vfio/device_cdev.c */
  const VB = 'drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd()';
  const bindArgs = (argsz: bigint, flags: bigint): Expect | undefined => {
    if (u32(argsz) < 16n) return err('EINVAL', `${VB}: argsz below minsz (16)`);
    if ((u32(flags) & ~1n) !== 0n) return err('EINVAL', `${VB}: a flag beyond VFIO_DEVICE_BIND_FLAG_TOKEN`);
    if ((u32(flags) & 1n) !== 0n) return err('EINVAL', `${VB}: vfio_df_check_token(): a VF token for a device that takes none`);
    return undefined;
  };
  const bound = ok(`${VB}: bound to the iommufd`);
  vfioIoctl('VFIO_DEVICE_BIND_IOMMUFD', 'cdev', (r) => ({ argsz: 16, flags: 0, iommufd: r.iommufd }), () => bound, {
    arg: () => efaultStruct,
    'arg.argsz': withJs(fieldNoC, (r) => bindArgs(r, 0n) ?? bound),
    'arg.flags': withJs(fieldNoC, (r) => bindArgs(16n, r) ?? bound),
    'arg.iommufd': {
      values: vfioFds,
      rule: (v, r) => {
        if (isJs(v) || r === undefined) return fieldNoC;
        const fdn = i32(r);
        if (fdn < 0n) return err('EINVAL', `${VB}: iommufd < 0 (an __s32)`);
        if (v.fd === 'iommufd') return bound;
        if (v.fd === 'closed' || (v.fd === undefined && fdn > 3n)) return err('EBADF', 'drivers/iommu/iommufd/main.c iommufd_ctx_from_fd(): no file at that fd');
        return err('EBADFD', 'drivers/iommu/iommufd/main.c iommufd_ctx_from_fd(): not an iommufd');
      },
    },
    'arg.out_devid': notRead(VB),
  }, { fds: { vdev: err('EINVAL', `${VB}: one device file cannot be bound twice`) } });

  const VA = 'drivers/vfio/device_cdev.c vfio_df_ioctl_attach_pt()';
  const attach = (argsz: bigint, flags: bigint, ptId: bigint, ctx: RuleCtx): Expect => {
    if (u32(argsz) < 12n || (u32(flags) & ~1n) !== 0n) return err('EINVAL', `${VA}: argsz below minsz (12), or a flag beyond VFIO_DEVICE_ATTACH_PASID`);
    if ((u32(flags) & 1n) !== 0n) return err('EINVAL', `${VA}: a PASID attach needs argsz to cover pasid, and the device has no PASID`);
    const id = u32(ptId);
    if (id === BigInt(ctx.res.ioas) || id === BigInt(ctx.res.hwpt)) return ok(`${VA}: iommufd_device_replace() to where it is attached already`);
    if (id === BigInt(ctx.res.devid)) return err('EINVAL', 'drivers/iommu/iommufd/device.c iommufd_device_change_pt(): the object is neither an IOAS nor a HWPT');
    return err('ENOENT', 'drivers/iommu/iommufd/main.c iommufd_get_object(): no object has that id');
  };
  vfioIoctl('VFIO_DEVICE_ATTACH_IOMMUFD_PT', 'vdev', (r) => ({ argsz: 12, flags: 0, pt_id: r.ioas }), (ctx) => attach(12n, 0n, BigInt(ctx.res.ioas), ctx), {
    arg: () => efaultStruct,
    'arg.argsz': withJs(fieldNoC, (r, _v, ctx) => attach(r, 0n, BigInt(ctx.res.ioas), ctx)),
    'arg.flags': withJs(fieldNoC, (r, _v, ctx) => attach(12n, r, BigInt(ctx.res.ioas), ctx)),
    'arg.pt_id': withJs(fieldNoC, (r, _v, ctx) => attach(12n, 0n, r, ctx)),
  });

  /* iommufd: drivers/iommu/iommufd/main.c iommufd_fops_ioctl(), ioas.c */
  const tooSmall = err('EINVAL', `${IF}: size below the command's min_size`);
  /* bytes past the kernel's struct are zero (a trace struct is zero-filled), which copy_struct_from_user() accepts */
  const sizeRow = (min: bigint, then: (ctx: RuleCtx) => Expect): ArgRows['rule'] =>
    withJs(err('EFAULT', `${IF}: get_user() of size`), (r, _v, ctx) => (u32(r) < min ? tooSmall : then(ctx)));
  const noIoas = err('ENOENT', 'drivers/iommu/iommufd/main.c iommufd_get_object(): no IOAS has that id');
  const IA = 'drivers/iommu/iommufd/ioas.c iommufd_ioas_alloc_ioctl()';
  /* another IOAS changes nothing the later rows of this case look at: the host is kept */
  vfioIoctl('IOMMU_IOAS_ALLOC', 'iommufd', () => ({ size: 12, flags: 0 }), () => ok(IA), {
    arg: () => efaultStruct,
    'arg.size': sizeRow(12n, () => ok(IA)),
    'arg.flags': withJs(fieldNoC, (r) => (u32(r) !== 0n ? err('EOPNOTSUPP', `${IA}: flags`) : ok(IA))),
    'arg.out_ioas_id': notRead(IA),
  }, { keepHostOnSuccess: true });

  const checkIova = (iova: bigint, length: bigint): Expect | undefined => {
    if ((iova & (PG - 1n)) !== 0n) return err('EINVAL', `${IOP} iopt_check_iova(): iova not aligned to the IOAS's iova_alignment`);
    if (iova + length - 1n > ULONG_MAX) return err('EOVERFLOW', `${IOP} iopt_check_iova(): the range passes 2^64`);
    if (!iovaValid(iova, iova + length - 1n)) return err('EINVAL', `${IOP} iopt_check_iova(): a reserved range (beyond the aperture, or the MSI window) intersects it`);
    if (iova < dmaBytes) return err('EEXIST', `${IOP} iopt_check_iova(): the DMA buffer's area is there`);
    return undefined;
  };
  /** The checks IOAS_MAP and IOAS_MAP_FILE share, up to the pages: iommufd_ioas_map() and iopt_alloc_pages_check(). */
  interface IoasMapCmd { size: bigint; flags: bigint; ioas_id: bigint; reserved: bigint; va: bigint; length: bigint; iova: bigint }
  const mapCommon = (m: IoasMapCmd, ctx: RuleCtx, where: string): Expect | undefined => {
    if (u32(m.size) < 40n) return tooSmall;
    const f = u32(m.flags);
    if ((f & ~7n) !== 0n || u32(m.reserved) !== 0n) return err('EOPNOTSUPP', `${where}: a flag beyond FIXED_IOVA|WRITEABLE|READABLE, or __reserved set`);
    if (m.iova >= ULONG_MAX || m.length >= ULONG_MAX) return err('EOVERFLOW', `${where}: iova or length is ULONG_MAX`);
    if ((f & 6n) === 0n) return err('EINVAL', `${where}: neither READABLE nor WRITEABLE`);
    if (u32(m.ioas_id) !== BigInt(ctx.res.ioas)) return noIoas;
    return undefined;
  };
  const pagesAndArea = (m: IoasMapCmd): Expect | undefined => {
    if (m.length === 0n || m.length > ULONG_MAX - PG) return err('EINVAL', 'drivers/iommu/iommufd/pages.c iopt_alloc_pages(): length 0, or too long for the page count');
    if ((m.length & (PG - 1n)) !== 0n) return err('EINVAL', `${IOP} iopt_alloc_area_pages(): length not a multiple of the IOAS's iova_alignment`);
    if ((u32(m.flags) & 1n) !== 0n) return checkIova(m.iova, m.length);
    return undefined;
  };
  const IM = 'drivers/iommu/iommufd/ioas.c iommufd_ioas_map()';
  const ioasMap = (m: IoasMapCmd, ctx: RuleCtx): Expect => {
    const common = mapCommon(m, ctx, IM);
    if (common !== undefined) return common;
    if (m.va + m.length > ULONG_MAX) return err('EOVERFLOW', 'drivers/iommu/iommufd/pages.c iopt_alloc_user_pages(): the user range passes 2^64');
    const area = pagesAndArea(m);
    if (area !== undefined) return area;
    if ((m.va & (PG - 1n)) !== 0n) return err('EINVAL', `${IOP} iopt_insert_area(): the user address's offset in its page breaks the IOVA alignment`);
    return userMapped(m.va, m.length, ctx) ? ok(`${IM}: pinned into the attached domain`)
      : err('EFAULT', 'drivers/iommu/iommufd/pages.c pfn_reader_user_pin(): no VMA at part of the user range');
  };
  const ioasMapBase = (ctx: RuleCtx): IoasMapCmd => ({ size: 40n, flags: 7n, ioas_id: BigInt(ctx.res.ioas), reserved: 0n, va: ctx.res.dma, length: PG, iova: dmaBytes });
  const ioasMapField = (key: keyof IoasMapCmd): ArgRows['rule'] => withJs(fieldNoC, (r, _v, ctx) => ioasMap({ ...ioasMapBase(ctx), [key]: r }, ctx));
  vfioIoctl('IOMMU_IOAS_MAP', 'iommufd', (r) => ({ size: 40, flags: 7, ioas_id: r.ioas, user_va: r.dma, length: PAGE, iova: Number(dmaBytes) }), (ctx) => ioasMap(ioasMapBase(ctx), ctx), {
    arg: () => efaultStruct,
    'arg.size': sizeRow(40n, (ctx) => ioasMap(ioasMapBase(ctx), ctx)),
    'arg.flags': ioasMapField('flags'), 'arg.ioas_id': ioasMapField('ioas_id'), 'arg.__reserved': ioasMapField('reserved'),
    'arg.user_va': { values: addrs, rule: ioasMapField('va') }, 'arg.length': { values: pinSizes, rule: ioasMapField('length') },
    'arg.iova': ioasMapField('iova'),
  });

  const IMF = 'drivers/iommu/iommufd/ioas.c iommufd_ioas_map_file()';
  const memfdBytes = BigInt(MAP_PAGES) * PG;
  /** fd: 'memfd', 'file' (another open file), 'none' (no file there). */
  const ioasMapFile = (m: IoasMapCmd, fd: 'memfd' | 'file' | 'none', ctx: RuleCtx): Expect => {
    const common = mapCommon(m, ctx, IMF);
    if (common !== undefined) return common;
    if (fd === 'none') return err('EBADF', `${IMF}: fget() finds no file`);
    if (m.length !== 0n && m.va + m.length - 1n > ULONG_MAX) return err('EOVERFLOW', 'drivers/iommu/iommufd/pages.c iopt_alloc_file_pages(): the file range passes 2^64');
    const area = pagesAndArea(m);
    if (area !== undefined) return area;
    if ((m.va & (PG - 1n)) !== 0n) return err('EINVAL', `${IOP} iopt_insert_area(): start's offset in its page breaks the IOVA alignment`);
    if (fd === 'file') return err('EINVAL', 'mm/gup.c memfd_pin_folios(): not a shmem or hugetlbfs file');
    return m.va + m.length <= memfdBytes ? ok(`${IMF}: the memfd's pages pinned into the attached domain`)
      : err('EINVAL', 'mm/shmem.c shmem_get_folio_gfp(): memfd_pin_folios() reads past the end of the file');
  };
  const mapFileBase = (ctx: RuleCtx): IoasMapCmd => ({ ...ioasMapBase(ctx), va: 0n });
  const mapFileField = (key: keyof IoasMapCmd): ArgRows['rule'] => withJs(fieldNoC, (r, _v, ctx) => ioasMapFile({ ...mapFileBase(ctx), [key]: r }, 'memfd', ctx));
  vfioIoctl('IOMMU_IOAS_MAP_FILE', 'iommufd', (r) => ({ size: 40, flags: 7, ioas_id: r.ioas, fd: r.memfd, start: 0, length: PAGE, iova: Number(dmaBytes) }),
    (ctx) => ioasMapFile(mapFileBase(ctx), 'memfd', ctx), {
      arg: () => efaultStruct,
      'arg.size': sizeRow(40n, (ctx) => ioasMapFile(mapFileBase(ctx), 'memfd', ctx)),
      'arg.flags': mapFileField('flags'), 'arg.ioas_id': mapFileField('ioas_id'),
      'arg.fd': {
        values: vfioFds,
        rule: (v, r, ctx) => {
          if (isJs(v) || r === undefined) return fieldNoC;
          const fdn = i32(r);
          const kind = v.fd === 'memfd' || (v.fd === undefined && fdn === 3n) ? 'memfd'
            : v.fd === 'closed' || (v.fd === undefined && (fdn < 0n || fdn > 3n)) ? 'none' : 'file';
          return ioasMapFile(mapFileBase(ctx), kind, ctx);
        },
      },
      'arg.start': mapFileField('va'), 'arg.length': mapFileField('length'), 'arg.iova': mapFileField('iova'),
    });

  const IU = 'drivers/iommu/iommufd/ioas.c iommufd_ioas_unmap()';
  interface IoasUnmap { size: bigint; ioas_id: bigint; iova: bigint; length: bigint }
  const ioasUnmap = (u: IoasUnmap, ctx: RuleCtx): Expect => {
    if (u32(u.size) < 24n) return tooSmall;
    if (u32(u.ioas_id) !== BigInt(ctx.res.ioas)) return noIoas;
    if (u.iova === 0n && u.length === ULONG_MAX) return ok(`${IU}: iopt_unmap_all()`);
    if (u.iova >= ULONG_MAX || u.length >= ULONG_MAX) return err('EOVERFLOW', `${IU}: iova or length is ULONG_MAX`);
    if (u.length === 0n) return err('EINVAL', `${IOP} iopt_unmap_iova(): length 0`);
    if (u.iova + u.length - 1n > ULONG_MAX) return err('EOVERFLOW', `${IOP} iopt_unmap_iova(): the range passes 2^64`);
    return u.iova === 0n && u.length >= dmaBytes ? ok(`${IOP} iopt_unmap_iova_range(): the DMA buffer's area lies inside`)
      : err('ENOENT', `${IOP} iopt_unmap_iova_range(): the range cuts the area, or holds none`);
  };
  const ioasUnmapBase = (ctx: RuleCtx): IoasUnmap => ({ size: 24n, ioas_id: BigInt(ctx.res.ioas), iova: 0n, length: dmaBytes });
  const ioasUnmapField = (key: keyof IoasUnmap): ArgRows['rule'] => withJs(fieldNoC, (r, _v, ctx) => ioasUnmap({ ...ioasUnmapBase(ctx), [key]: r }, ctx));
  vfioIoctl('IOMMU_IOAS_UNMAP', 'iommufd', (r) => ({ size: 24, ioas_id: r.ioas, iova: 0, length: Number(dmaBytes) }), (ctx) => ioasUnmap(ioasUnmapBase(ctx), ctx), {
    arg: () => efaultStruct,
    'arg.size': sizeRow(24n, (ctx) => ioasUnmap(ioasUnmapBase(ctx), ctx)),
    'arg.ioas_id': ioasUnmapField('ioas_id'), 'arg.iova': ioasUnmapField('iova'), 'arg.length': ioasUnmapField('length'),
  });

  const IR = 'drivers/iommu/iommufd/ioas.c iommufd_ioas_iova_ranges()';
  interface IovaRanges { size: bigint; ioas_id: bigint; num_iovas: bigint; reserved: bigint; array: boolean }
  /* the IOAS has two ranges: below the MSI window, and from it to the aperture's end */
  const iovaRanges = (c: IovaRanges, ctx: RuleCtx): Expect => {
    if (u32(c.size) < 32n) return tooSmall;
    if (u32(c.reserved) !== 0n) return err('EOPNOTSUPP', `${IR}: __reserved set`);
    if (u32(c.ioas_id) !== BigInt(ctx.res.ioas)) return noIoas;
    if (u32(c.num_iovas) > 0n && !c.array) return err('EFAULT', `${IR}: copy_to_user() to allowed_iovas, which points at nothing`);
    return u32(c.num_iovas) < 2n ? err('EMSGSIZE', `${IR}: more ranges than num_iovas (the count is written back)`) : ok(IR);
  };
  const rangesBase = (ctx: RuleCtx): IovaRanges => ({ size: 32n, ioas_id: BigInt(ctx.res.ioas), num_iovas: 2n, reserved: 0n, array: true });
  const rangesField = (key: keyof IovaRanges): ArgRows['rule'] => withJs(fieldNoC, (r, _v, ctx) => iovaRanges({ ...rangesBase(ctx), [key]: r }, ctx));
  vfioIoctl('IOMMU_IOAS_IOVA_RANGES', 'iommufd', (r) => ({
    size: 32, ioas_id: r.ioas, num_iovas: 2, allowed_iovas: [{ start: 0, last: 0 }, { start: 0, last: 0 }],
  }), (ctx) => iovaRanges(rangesBase(ctx), ctx), {
    arg: () => efaultStruct,
    'arg.size': sizeRow(32n, (ctx) => iovaRanges(rangesBase(ctx), ctx)),
    'arg.ioas_id': rangesField('ioas_id'), 'arg.num_iovas': rangesField('num_iovas'), 'arg.__reserved': rangesField('reserved'),
    'arg.allowed_iovas': withJs(err('EFAULT', `${IR}: copy_to_user() to allowed_iovas`), (_r, _v, ctx) => iovaRanges({ ...rangesBase(ctx), array: false }, ctx)),
    'arg.out_iova_alignment': notRead(IR),
  }, { keepHostOnSuccess: true });

  return cases;
}

