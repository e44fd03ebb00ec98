/**
 * The fuzzer's program generator: traces in the trace format (docs/trace-format.md), made the
 * way syzkaller makes programs.
 *
 * - Ops come from the op table (bench/src/trace/ops.ts), every op registered there, so that an
 *   op a package registers is fuzzed the moment it exists; ioctl requests come from the name
 *   table: every registered KVM_ name whose value is a KVM ioctl number (_IOC type KVMIO), so a
 *   new request is picked up when its constant is exported.
 * - Resources flow from call to call: the fd a memfd_create, open or fd-returning ioctl would
 *   return is bound with "as" and passed on, typed by what made it (a memfd, /dev/kvm, a VM, a
 *   vCPU, a guest_memfd, a VFIO container, group or device cdev, an iommufd) so that most calls
 *   get the kind they want; mmap's address is bound and used with offsets inside and around the
 *   mapping; a simulated VFIO device's index is bound for its DMA ops.
 * - Arguments lean to the edges: 0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, 2^31, 2^32,
 *   2^52, 2^63, 2^64 - 1, negative values where the C type is signed, unknown flag bits,
 *   reserved struct fields set, huge strings, the wrong kind of fd, closed fds; and about half
 *   the time to values a real program would pass, so that calls get deep enough to matter.
 *
 * Values the trace format cannot spell (fractions, NaN, beyond 2^64, wrong JS types) are not
 * generated here: a trace is integers, and the replayer refuses anything else as a trace error
 * before a call runs. The Process methods' handling of such values is fuzzed by the direct mode
 * of the runner (run.ts, jsShapeCalls()).
 *
 * Deterministic: a program is a function of its seed (core's PRandom).
 */
import { PRandom } from '@cocosim/core';
import { KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_USER_MEMORY } from '@cocosim/kvm';
import { allOps, getOp, names, type ArgSpec, type OpSpec } from '../trace/index.js';

/** One call line of a generated trace (JSON-able; integers beyond 2^53 as strings). */
export type FuzzLine = { readonly op: string; readonly as?: string } & Record<string, unknown>;

export interface FuzzProgram {
  readonly platform: { readonly vendor: string; readonly design: string };
  readonly lines: readonly FuzzLine[];
}

/** The trace text of a program: header line, then one call per line. */
export function programText(p: FuzzProgram, comments: readonly string[] = []): string {
  const header = JSON.stringify({ trace: 1, platform: p.platform });
  return [...comments.map((c) => `// ${c}`), header, ...p.lines.map((l) => JSON.stringify(l))].join('\n') + '\n';
}

/** Integers beyond 2^53 as decimal strings, as the trace format wants them. */
function safeNumbers(v: unknown): unknown {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : BigInt(Math.trunc(v)).toString();
  if (Array.isArray(v)) return v.map(safeNumbers);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, safeNumbers(x)]));
  return v;
}

/** What a bound handle holds, by the call that made it. */
export type Kind = 'memfd' | 'kvm' | 'vm' | 'vcpu' | 'gmem' | 'dev' | 'fd' | 'addr' | 'vfio' | 'vgroup' | 'iommufd' | 'vdev' | 'device';

interface Handle {
  readonly name: string;
  readonly kind: Kind;
  /** addr: the mapping's length in bytes. */
  readonly len?: number;
  closed?: boolean;
  /** A vCPU a recipe made on its own VM: the call that made it cannot have failed. */
  sure?: boolean;
}

const PAGE = 4096;
/** The integer edges every integer argument leans to (strings beyond 2^53). */
export const EDGES: readonly (number | string)[] = [
  0, 1, 2, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, 0x10000, 0x200000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
  2 ** 52, Number.MAX_SAFE_INTEGER, '0x7fffffffffffffff', '0x8000000000000000', '0xfffffffffffff000', '0xffffffffffffffff',
];
export const SIGNED_EDGES: readonly (number | string)[] = [-1, -PAGE, -(2 ** 31), '-9223372036854775808'];
export const FD_EDGES: readonly number[] = [-1, 0, 1, 2, 3, 1023, 1024, 0x7fffffff, -(2 ** 31)];
export const DATA_LENS: readonly number[] = [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, 0x10000];
export const NAME_LENS: readonly number[] = [0, 248, 249, 250, PAGE, 0x10000];

/** _IOC_TYPE of a KVM request: KVMIO. */
const KVMIO = 0xae;

/** Which fd an ioctl request wants: the /dev/kvm fd, a VM fd or a vCPU fd. */
export const REQ_TARGET: Readonly<Record<string, Kind>> = {
  KVM_GET_API_VERSION: 'kvm', KVM_CREATE_VM: 'kvm', KVM_CHECK_EXTENSION: 'kvm', KVM_GET_VCPU_MMAP_SIZE: 'kvm',
  KVM_CREATE_VCPU: 'vm', KVM_SET_USER_MEMORY_REGION: 'vm', KVM_SET_USER_MEMORY_REGION2: 'vm', KVM_SET_MEMORY_ATTRIBUTES: 'vm',
  KVM_SET_MEMORY_ATTRIBUTES2: 'vm', KVM_CREATE_GUEST_MEMFD: 'vm', KVM_SET_NR_MMU_PAGES: 'vm', KVM_GET_NR_MMU_PAGES: 'vm',
  KVM_SET_TSS_ADDR: 'vm', KVM_CREATE_IRQCHIP: 'vm', KVM_ENABLE_CAP: 'vm', KVM_GET_DIRTY_LOG: 'vm', KVM_CLEAR_DIRTY_LOG: 'vm',
  KVM_RESET_DIRTY_RINGS: 'vm', KVM_REGISTER_COALESCED_MMIO: 'vm', KVM_UNREGISTER_COALESCED_MMIO: 'vm',
  KVM_RUN: 'vcpu', KVM_GET_REGS: 'vcpu', KVM_SET_REGS: 'vcpu', KVM_PRE_FAULT_MEMORY: 'vcpu',
};
/**
 * The VFIO and iommufd requests (include/uapi/linux/vfio.h, iommufd.h) and the file each wants:
 * the container, a group, a device cdev, an iommufd. They are drawn from their own random
 * stream (see Generator.vrng).
 */
export const VFIO_REQ_TARGET: Readonly<Record<string, Kind>> = {
  VFIO_GET_API_VERSION: 'vfio', VFIO_CHECK_EXTENSION: 'vfio', VFIO_SET_IOMMU: 'vfio', VFIO_IOMMU_GET_INFO: 'vfio',
  VFIO_IOMMU_MAP_DMA: 'vfio', VFIO_IOMMU_UNMAP_DMA: 'vfio',
  VFIO_GROUP_GET_STATUS: 'vgroup', VFIO_GROUP_SET_CONTAINER: 'vgroup', VFIO_GROUP_UNSET_CONTAINER: 'vgroup',
  VFIO_DEVICE_BIND_IOMMUFD: 'vdev', VFIO_DEVICE_ATTACH_IOMMUFD_PT: 'vdev',
  IOMMU_IOAS_ALLOC: 'iommufd', IOMMU_IOAS_MAP: 'iommufd', IOMMU_IOAS_MAP_FILE: 'iommufd', IOMMU_IOAS_UNMAP: 'iommufd',
  IOMMU_IOAS_IOVA_RANGES: 'iommufd',
};

export type FieldKind = 'slot' | 'gpa' | 'size' | 'hva' | 'gmem_fd' | 'memflags' | 'attrs' | 'flags' | 'u32' | 'reserved' | 'cap'
  | 'cap_args' | 'page_index'
  | 'argsz' | 'iova' | 'obj_id' | 'iommufd_fd' | 'memfd_fd' | 'dma_flags' | 'ioas_flags';

/** Struct layouts of the requests the fuzzer knows (include/uapi/linux/kvm.h), field -> kind. */
export const STRUCTS: Readonly<Record<string, Readonly<Record<string, FieldKind>>>> = {
  KVM_SET_USER_MEMORY_REGION: { slot: 'slot', flags: 'memflags', guest_phys_addr: 'gpa', memory_size: 'size', userspace_addr: 'hva' },
  KVM_SET_USER_MEMORY_REGION2: {
    slot: 'slot', flags: 'memflags', guest_phys_addr: 'gpa', memory_size: 'size', userspace_addr: 'hva',
    guest_memfd_offset: 'size', guest_memfd: 'gmem_fd', pad1: 'reserved',
  },
  KVM_CREATE_GUEST_MEMFD: { size: 'size', flags: 'flags' },
  KVM_SET_MEMORY_ATTRIBUTES: { address: 'gpa', size: 'size', attributes: 'attrs', flags: 'reserved' },
  KVM_SET_MEMORY_ATTRIBUTES2: { address: 'gpa', size: 'size', attributes: 'attrs', flags: 'reserved' },
  KVM_PRE_FAULT_MEMORY: { gpa: 'gpa', size: 'size', flags: 'reserved' },
  KVM_ENABLE_CAP: { cap: 'cap', flags: 'reserved', args: 'cap_args' },
  KVM_GET_DIRTY_LOG: { slot: 'slot', dirty_bitmap: 'hva' },
  KVM_REGISTER_COALESCED_MMIO: { addr: 'gpa', size: 'size', pio: 'reserved' },
  KVM_UNREGISTER_COALESCED_MMIO: { addr: 'gpa', size: 'size', pio: 'reserved' },
  KVM_CLEAR_DIRTY_LOG: { slot: 'slot', first_page: 'page_index', num_pages: 'page_index', dirty_bitmap: 'hva' },
  /* VFIO's structs start with argsz, iommufd's with size: 'argsz' is the struct's own size (STRUCT_SIZES) */
  VFIO_GROUP_GET_STATUS: { argsz: 'argsz' },
  VFIO_IOMMU_GET_INFO: { argsz: 'argsz' },
  VFIO_IOMMU_MAP_DMA: { argsz: 'argsz', flags: 'dma_flags', vaddr: 'hva', iova: 'iova', size: 'size' },
  VFIO_IOMMU_UNMAP_DMA: { argsz: 'argsz', flags: 'dma_flags', iova: 'iova', size: 'size' },
  VFIO_DEVICE_BIND_IOMMUFD: { argsz: 'argsz', flags: 'reserved', iommufd: 'iommufd_fd' },
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: { argsz: 'argsz', flags: 'reserved', pt_id: 'obj_id' },
  IOMMU_IOAS_ALLOC: { size: 'argsz', flags: 'reserved' },
  IOMMU_IOAS_MAP: { size: 'argsz', flags: 'ioas_flags', ioas_id: 'obj_id', user_va: 'hva', length: 'size', iova: 'iova' },
  IOMMU_IOAS_MAP_FILE: { size: 'argsz', flags: 'ioas_flags', ioas_id: 'obj_id', fd: 'memfd_fd', start: 'size', length: 'size', iova: 'iova' },
  IOMMU_IOAS_UNMAP: { size: 'argsz', ioas_id: 'obj_id', iova: 'iova', length: 'size' },
  IOMMU_IOAS_IOVA_RANGES: { size: 'argsz', ioas_id: 'obj_id', num_iovas: 'u32' },
};
/** sizeof() of the VFIO and iommufd structs (vfio/src/uapi.ts): what an 'argsz' field mostly holds. */
const STRUCT_SIZES: Readonly<Record<string, number>> = {
  VFIO_GROUP_GET_STATUS: 8, VFIO_IOMMU_GET_INFO: 16, VFIO_IOMMU_MAP_DMA: 32, VFIO_IOMMU_UNMAP_DMA: 24,
  VFIO_DEVICE_BIND_IOMMUFD: 16, VFIO_DEVICE_ATTACH_IOMMUFD_PT: 12, IOMMU_IOAS_ALLOC: 12, IOMMU_IOAS_MAP: 40,
  IOMMU_IOAS_MAP_FILE: 40, IOMMU_IOAS_UNMAP: 24, IOMMU_IOAS_IOVA_RANGES: 32,
};
/** Reserved arrays a struct may carry (set non-zero to test that they are refused). */
export const RESERVED_ARRAYS: Readonly<Record<string, readonly [string, number]>> = {
  KVM_SET_USER_MEMORY_REGION2: ['pad2', 14],
  KVM_CREATE_GUEST_MEMFD: ['reserved', 6],
  KVM_PRE_FAULT_MEMORY: ['padding', 5],
};

/** The ioctl requests the name table knows: every KVM_ name that is a KVMIO request number. */
export function ioctlRequestNames(): string[] {
  const kvm = names.names('KVM_').filter((n) => {
    const v = names.get(n)!;
    return v >= 0xae00n && v <= 0xffffffffn && Number((v >> 8n) & 0xffn) === KVMIO;
  });
  /* and do_vfs_ioctl()'s generic ones, which every file answers */
  return [...kvm, ...names.names('FI'), ...names.names('FS_IOC_')];
}

export interface GenerateOptions {
  readonly vendor: string;
  readonly design: string;
  /** Calls in the program. */
  readonly calls: number;
  /** Ops to draw from (default: every registered op). */
  readonly ops?: readonly OpSpec[];
  /**
   * Programs any Linux can replay without KVM or VFIO, for the kernel oracle (kernel_diff.ts):
   * no KVM half in the resource recipe, no VFIO lines, open() of /dev/null, /dev/zero and a
   * missing /dev/cocosim- path only. `ops` should hold the generic ops (GENERIC_OPS).
   */
  readonly generic?: boolean;
  /**
   * With `generic`: also a default VM's KVM calls that every KVM answers alike, whether or not
   * its kernel has guest_memfd (KVM_GENERIC_REQUESTS): a VM with memslots of user memory and
   * vCPUs, guest accesses, mappings of a vCPU. Nothing a kernel config decides (guest_memfd,
   * memory attributes, their capabilities) and no bare KVM_RUN, whose guest code the simulator
   * does not run.
   */
  readonly kvm?: boolean;
}

/** The KVM requests of generic programs with `kvm` (GenerateOptions.kvm). */
export const KVM_GENERIC_REQUESTS: readonly string[] = [
  'KVM_GET_API_VERSION', 'KVM_CREATE_VM', 'KVM_CHECK_EXTENSION', 'KVM_GET_VCPU_MMAP_SIZE', 'KVM_CREATE_VCPU',
  'KVM_SET_USER_MEMORY_REGION', 'KVM_SET_NR_MMU_PAGES', 'KVM_GET_NR_MMU_PAGES', 'KVM_SET_TSS_ADDR', 'KVM_PRE_FAULT_MEMORY',
  'KVM_GET_DIRTY_LOG', 'KVM_CLEAR_DIRTY_LOG', 'KVM_ENABLE_CAP', 'KVM_RESET_DIRTY_RINGS', 'KVM_REGISTER_COALESCED_MMIO',
  'KVM_UNREGISTER_COALESCED_MMIO',
];

/** Capabilities whose answer is the kernel config's (CONFIG_KVM_GUEST_MEMFD), left out with `kvm`. */
const CONFIG_CAPS: readonly string[] = ['KVM_CAP_GUEST_MEMFD', 'KVM_CAP_GUEST_MEMFD_FLAGS'];

/** The ops of the generic part of the trace format that the kernel oracle replays without /dev/kvm. */
export const GENERIC_OPS: readonly string[] = [
  'memfd_create', 'close', 'ftruncate', 'fallocate', 'fcntl', 'fstat', 'read', 'pread', 'write', 'pwrite', 'mmap', 'munmap',
  'mprotect', 'madvise', 'mlock', 'munlock', 'load', 'store', 'process_vm_readv', 'process_vm_writev', 'open', 'lseek', 'fchmod',
];

/** Generates one program; `seed` decides everything. */
export function generateProgram(seed: string | number | bigint, opts: GenerateOptions): FuzzProgram {
  return new Generator(new PRandom(seed), opts, new PRandom(`vfio:${String(seed)}`)).run();
}

class Generator {
  private readonly handles: Handle[] = [];
  private readonly lines: FuzzLine[] = [];
  private readonly ops: readonly OpSpec[];
  private readonly requests: readonly string[];
  private next = 0;
  /** Simulated VFIO devices added so far: device N is alone in IOMMU group N (vfio_sim_device_add()). */
  private devices = 0;
  /** The stream choices draw from: rng, or vrng while VFIO lines are made. */
  private cur: PRandom;

  constructor(
    private readonly rng: PRandom,
    private readonly opts: GenerateOptions,
    /**
     * The VFIO lines' own stream: they are added between the others, which draw from rng exactly
     * as without them, so that a seed keeps the program it had before VFIO was fuzzed.
     */
    private readonly vrng: PRandom,
  ) {
    this.cur = rng;
    this.ops = opts.ops ?? allOps();
    this.requests = ioctlRequestNames();
  }

  run(): FuzzProgram {
    while (this.lines.length < this.opts.calls) {
      if (this.chance(0.12)) this.recipe();
      else this.emit(this.call(this.pickOp()));
      if (this.opts.generic !== true) this.withVfio(() => this.vfioCalls());
    }
    return { platform: { vendor: this.opts.vendor, design: this.opts.design }, lines: this.lines.slice(0, this.opts.calls) };
  }

  private emit(line: FuzzLine | undefined): void {
    if (line !== undefined) this.lines.push(safeNumbers(line) as FuzzLine);
  }

  /**
   * A few calls the way a real program makes them (syzkaller's resource constructors), so that
   * later calls find live resources: a sealed-or-not memfd with a size and a shared mapping; a
   * VM with a guest_memfd, a memslot over a mapping and a vCPU.
   */
  private recipe(): void {
    const memfd = this.handle('memfd');
    this.emit({ op: 'memfd_create', name: 'fuzz', flags: this.pick([0, 'MFD_ALLOW_SEALING', 'MFD_CLOEXEC|MFD_ALLOW_SEALING']), as: memfd });
    const size = this.sanePages();
    this.emit({ op: 'ftruncate', fd: `$${memfd}`, length: size });
    const map = this.handle('addr', size);
    this.emit({ op: 'mmap', addr: 0, length: size, prot: 'PROT_READ|PROT_WRITE', flags: this.pick(['MAP_SHARED', 'MAP_PRIVATE']), fd: `$${memfd}`, offset: 0, as: map });
    if (!this.chance(0.5) || names.get('KVM_CREATE_VM') === undefined || (this.opts.generic === true && this.opts.kvm !== true)) return;
    const kvm = this.live(['kvm'])[0]?.name ?? this.handle('kvm');
    if (!this.lines.some((l) => l.as === kvm)) this.emit({ op: 'open', path: '/dev/kvm', as: kvm });
    if (this.opts.generic === true) {
      this.defaultVmRecipe(kvm, map, size);
      return;
    }
    const vm = this.handle('vm');
    this.emit({ op: 'ioctl', fd: `$${kvm}`, req: 'KVM_CREATE_VM', arg: this.opts.vendor === 'none' ? 0 : this.pick([0, 1]), as: vm });
    this.maybeDirtyRing(vm);
    const gmem = this.handle('gmem');
    const gsize = this.sanePages();
    this.emit({ op: 'ioctl', fd: `$${vm}`, req: 'KVM_CREATE_GUEST_MEMFD', arg: { size: gsize, flags: this.field('flags') }, as: gmem });
    const gpa = this.pick([0, 0x100000, 0x100000000]);
    this.emit({
      op: 'ioctl', fd: `$${vm}`, req: 'KVM_SET_USER_MEMORY_REGION2',
      arg: { slot: this.below(2), flags: this.pick([0, 'KVM_MEM_GUEST_MEMFD']), guest_phys_addr: gpa, memory_size: Math.min(size, gsize), userspace_addr: `$${map}`, guest_memfd: `$${gmem}`, guest_memfd_offset: 0 },
    });
    const vcpu = this.handle('vcpu');
    this.emit({ op: 'ioctl', fd: `$${vm}`, req: 'KVM_CREATE_VCPU', arg: 0, as: vcpu });
  }

  /** One VM in five logs into dirty rings: they can only be enabled before the first vCPU. */
  private maybeDirtyRing(vm: string): void {
    if (names.get('KVM_CAP_DIRTY_LOG_RING') === undefined || !this.chance(0.2)) return;
    this.emit({ op: 'ioctl', fd: `$${vm}`, req: 'KVM_ENABLE_CAP', arg: { cap: 'KVM_CAP_DIRTY_LOG_RING', args: [this.pick([PAGE, 2 * PAGE])] } });
  }

  /** The KVM half of a generic recipe: a default VM, a memslot over the mapping, a vCPU. */
  private defaultVmRecipe(kvm: string, map: string, size: number): void {
    const vm = this.handle('vm');
    this.emit({ op: 'ioctl', fd: `$${kvm}`, req: 'KVM_CREATE_VM', arg: 0, as: vm });
    this.maybeDirtyRing(vm);
    this.emit({
      op: 'ioctl', fd: `$${vm}`, req: 'KVM_SET_USER_MEMORY_REGION',
      arg: { slot: this.below(2), flags: this.pick([0, 0, 'KVM_MEM_READONLY', 'KVM_MEM_LOG_DIRTY_PAGES']), guest_phys_addr: this.pick([0, 0x100000, 0x100000000]), memory_size: size, userspace_addr: `$${map}` },
    });
    const vcpu = this.handle('vcpu');
    this.emit({ op: 'ioctl', fd: `$${vm}`, req: 'KVM_CREATE_VCPU', arg: this.below(2), as: vcpu });
    this.handles.find((h) => h.name === vcpu)!.sure = true;
  }

  /**
   * A simulated device set up for DMA the way test/vfio's flows do it, through a type1
   * container or an iommufd IOAS, over an anonymous mapping, then a DMA through it.
   */
  private vfioRecipe(): void {
    if (getOp('vfio_device_add') === undefined || names.get('VFIO_IOMMU_MAP_DMA') === undefined) return;
    const dev = this.handle('device');
    const index = this.devices++;
    this.emit({ op: 'vfio_device_add', as: dev });
    const size = (1 + this.below(4)) * PAGE;
    const map = this.handle('addr', size);
    this.emit({ op: 'mmap', addr: 0, length: size, prot: 'PROT_READ|PROT_WRITE', flags: 'MAP_PRIVATE|MAP_ANONYMOUS', as: map });
    const iova = this.pick([0, 0x100000, 0x200000]);
    if (this.chance(0.5)) {
      const c = this.handle('vfio');
      this.emit({ op: 'open', path: '/dev/vfio/vfio', as: c });
      const g = this.handle('vgroup');
      this.emit({ op: 'open', path: `/dev/vfio/${index}`, as: g });
      this.emit({ op: 'ioctl', fd: `$${g}`, req: 'VFIO_GROUP_SET_CONTAINER', arg: `$${c}` });
      this.emit({ op: 'ioctl', fd: `$${c}`, req: 'VFIO_SET_IOMMU', arg: 'VFIO_TYPE1v2_IOMMU' });
      this.emit({ op: 'ioctl', fd: `$${c}`, req: 'VFIO_IOMMU_MAP_DMA', arg: { argsz: 32, flags: 'VFIO_DMA_MAP_FLAG_READ|VFIO_DMA_MAP_FLAG_WRITE', vaddr: `$${map}`, iova, size } });
    } else {
      const i = this.handle('iommufd');
      this.emit({ op: 'open', path: '/dev/iommu', as: i });
      /* a new iommufd numbers its objects from 1: the IOAS */
      this.emit({ op: 'ioctl', fd: `$${i}`, req: 'IOMMU_IOAS_ALLOC', arg: { size: 12, flags: 0 } });
      const v = this.handle('vdev');
      this.emit({ op: 'open', path: `/dev/vfio/devices/vfio${index}`, as: v });
      this.emit({ op: 'ioctl', fd: `$${v}`, req: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { argsz: 16, flags: 0, iommufd: `$${i}` } });
      this.emit({ op: 'ioctl', fd: `$${v}`, req: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { argsz: 12, flags: 0, pt_id: 1 } });
      this.emit({
        op: 'ioctl', fd: `$${i}`, req: 'IOMMU_IOAS_MAP',
        arg: { size: 40, flags: 'IOMMU_IOAS_MAP_FIXED_IOVA|IOMMU_IOAS_MAP_READABLE|IOMMU_IOAS_MAP_WRITEABLE', ioas_id: 1, user_va: `$${map}`, length: size, iova },
      });
    }
    this.emit({ op: 'dma_write', device: `$${dev}`, iova, data: this.data() });
  }

  /** Now and then a device set up for DMA, or a VFIO or iommufd request (from the VFIO stream). */
  private vfioCalls(): void {
    if (this.chance(0.015)) this.vfioRecipe();
    else if (this.devices > 0 && this.chance(0.05)) this.emit(this.vfioIoctl());
  }

  private vfioIoctl(): FuzzLine | undefined {
    const known = Object.keys(VFIO_REQ_TARGET).filter((r) => names.get(r) !== undefined);
    if (known.length === 0) return undefined;
    const req = this.pick(known);
    const line: Record<string, unknown> = { op: 'ioctl', fd: this.fd([VFIO_REQ_TARGET[req]]), req };
    /* VFIO's requests are _IO() numbers whatever their argument: the layout tells a struct */
    if (STRUCTS[req] === undefined) line.arg = this.scalarArg(req);
    else line.arg = this.chance(0.05) ? this.pick([0, 1, '0xffffffffffffffff']) : this.struct(req);
    return this.bind(getOp('ioctl')!, line, req);
  }

  /* ---- random choices ---- */

  private chance(p: number): boolean {
    return this.cur.float() < p;
  }
  private below(n: number): number {
    return this.cur.below(n);
  }

  /** Runs `fn` drawing from the VFIO stream. */
  private withVfio<T>(fn: () => T): T {
    const saved = this.cur;
    this.cur = this.vrng;
    try {
      return fn();
    } finally {
      this.cur = saved;
    }
  }
  private pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }

  private pickOp(): OpSpec {
    /* resource makers and the calls that use memory most, more often */
    const weighted = this.ops.flatMap((op) => {
      const w = op.name === 'ioctl' ? 6 : ['mmap', 'store', 'load', 'ftruncate', 'fallocate', 'madvise'].includes(op.name) ? 3 : 1;
      return Array<OpSpec>(w).fill(op);
    });
    return this.pick(weighted);
  }

  private handle(kind: Kind, len?: number): string {
    const name = `${kind === 'addr' ? 'a' : 'f'}${++this.next}`;
    this.handles.push({ name, kind, len });
    return name;
  }

  private live(kinds: readonly Kind[]): Handle[] {
    return this.handles.filter((h) => !h.closed && kinds.includes(h.kind));
  }

  /* ---- argument values ---- */

  private edge(signed: boolean): number | string {
    return signed && this.chance(0.25) ? this.pick(SIGNED_EDGES) : this.pick(EDGES);
  }

  /** A page-multiple size a program would use: 1..64 pages, sometimes a 2 MiB huge page. */
  private sanePages(): number {
    return this.chance(0.1) ? 512 * PAGE : (1 + this.below(this.chance(0.7) ? 8 : 64)) * PAGE;
  }

  private int(signed: boolean): number | string {
    return this.chance(0.5) ? this.sanePages() * (this.chance(0.3) ? 0 : 1) : this.edge(signed);
  }

  /** An fd: of the wanted kinds mostly, else another kind, a closed one or an edge number. */
  private fd(want: readonly Kind[]): string | number {
    const r = this.cur.float();
    const right = this.live(want);
    if (r < 0.75 && right.length > 0) return `$${this.pick(right).name}`;
    const any = this.handles.filter((h) => h.kind !== 'addr' && h.kind !== 'device');
    if (r < 0.87 && any.length > 0) return `$${this.pick(any).name}`;
    return this.pick(FD_EDGES);
  }

  /** An address: inside or around a mapping the program made, or an edge. */
  private addr(): string | number {
    const maps = this.handles.filter((h) => h.kind === 'addr');
    if (maps.length === 0 || this.chance(0.15)) return this.chance(0.5) ? 0 : this.pick(EDGES);
    const m = this.pick(maps);
    const len = m.len ?? PAGE;
    const off = this.pick([0, 0, 0, 1, PAGE - 1, PAGE, len - PAGE, len - 1, len, len + PAGE, this.below(Math.max(1, Math.min(2 ** 20, Math.floor(len / PAGE)))) * PAGE]);
    return off >= 0 ? `$${m.name}+${off}` : `$${m.name}-${-off}`;
  }

  /** A length for an address range: a page multiple within the mapping mostly, or an edge. */
  private length(): number | string {
    const maps = this.handles.filter((h) => h.kind === 'addr');
    if (maps.length > 0 && this.chance(0.6)) {
      const len = this.pick(maps).len ?? PAGE;
      return this.pick([len, PAGE, len + PAGE, (1 + this.below(Math.max(1, Math.min(2 ** 20, Math.floor(len / PAGE))))) * PAGE]);
    }
    return this.int(false);
  }

  /** Flags: names of the arg's prefixes OR-ed, sometimes with an unknown bit; an enum is one name. */
  private flags(spec: ArgSpec): number | string {
    const prefixes = spec.names === undefined ? [] : typeof spec.names === 'string' ? [spec.names] : spec.names;
    const pool = prefixes.flatMap((p) => names.names(p));
    if (pool.length === 0 || this.chance(0.1)) return this.chance(0.5) ? 0 : this.pick([1, 0x80000000, 0xffffffff, 1 << this.below(31)]);
    /* generic programs go to the kernel oracle, whose name table is the uapi's alone: numbers */
    const spell = (name: string): string => {
      if (this.opts.generic !== true) return name;
      const v = names.get(name)!;
      return v < 0n ? v.toString() : `0x${v.toString(16)}`;
    };
    if (spec.enum === true) return this.chance(0.9) ? spell(this.pick(pool)) : this.pick([-1, 0x7fffffff, 1000]);
    const n = this.below(3) + (this.chance(0.8) ? 1 : 0);
    const parts = Array.from({ length: n }, () => spell(this.pick(pool)));
    if (this.chance(0.1)) parts.push(`0x${(2 ** this.below(32)).toString(16)}`);
    return parts.length === 0 ? 0 : [...new Set(parts)].join('|');
  }

  private data(): string | { fill: number; len: number } {
    if (this.chance(0.6)) {
      const n = 1 + this.below(16);
      return Array.from({ length: n }, () => this.below(256).toString(16).padStart(2, '0')).join('');
    }
    return { fill: this.below(256), len: this.pick(DATA_LENS) };
  }

  private string(op: string): string | null {
    if (op === 'open' && this.opts.generic === true) return this.pick(this.opts.kvm === true ? ['/dev/null', '/dev/zero', '/dev/kvm'] : ['/dev/null', '/dev/zero']);
    if (op === 'open') {
      const vfio = this.withVfio(() => {
        if (!this.chance(0.1)) return undefined;
        const k = this.below(this.devices + 1);
        return this.pick(['/dev/vfio/vfio', '/dev/iommu', `/dev/vfio/${k}`, `/dev/vfio/devices/vfio${k}`]);
      });
      if (vfio !== undefined) return vfio;
      return this.chance(0.85) ? this.pick(['/dev/kvm', '/dev/kvm', '/dev/null', '/dev/zero']) : this.pick<string | null>(['', '/dev/nope', null]);
    }
    if (this.chance(0.8)) return `fuzz${this.below(10)}`;
    return this.chance(0.2) ? null : 'x'.repeat(this.pick(NAME_LENS));
  }

  /* ---- calls ---- */

  /** The fds an op wants by its first argument. */
  private fdKinds(op: string): readonly Kind[] {
    if (op === 'guest_load' || op === 'guest_store') return ['vcpu'];
    if (op === 'mmap') return ['memfd', 'gmem', 'dev', 'vcpu'];
    if (op === 'close') return ['memfd', 'kvm', 'vm', 'vcpu', 'gmem', 'dev', 'fd', 'vfio', 'vgroup', 'iommufd', 'vdev'];
    return ['memfd', 'gmem'];
  }

  private call(op: OpSpec): FuzzLine | undefined {
    if (op.name === 'ioctl') return this.ioctl();
    const line: Record<string, unknown> = { op: op.name };
    for (const a of op.args) {
      if (a.optional === true && this.chance(0.5)) continue;
      if (a.default !== undefined && this.chance(0.2)) continue;
      line[a.name] = this.arg(op, a);
    }
    if (op.name === 'mmap') this.saneMmap(line);
    /* the kernel oracle runs its guest only on vCPUs its trace made (it refuses the program else) */
    if ((op.name === 'guest_load' || op.name === 'guest_store') && this.opts.generic === true) {
      const vcpus = this.live(['vcpu']).filter((h) => h.sure === true);
      if (vcpus.length === 0) return undefined;
      line.vcpu = `$${this.pick(vcpus).name}`;
    }
    if (op.name === 'memfd_create' && this.chance(0.5)) line.flags = this.pick([0, 'MFD_CLOEXEC', 'MFD_ALLOW_SEALING']);
    return this.bind(op, line);
  }

  private arg(op: OpSpec, a: ArgSpec): unknown {
    switch (a.kind) {
      case 'fd':
        return this.fd(this.fdKinds(op.name));
      case 'int': {
        const n = this.int(true);
        const devs = this.live(['device']);
        if (a.name !== 'device' || devs.length === 0) return n;
        return this.withVfio(() => (this.chance(0.8) ? `$${this.pick(devs).name}` : n));
      }
      case 'u64':
        if (a.addr === true) return this.addr();
        if (a.name === 'gpa') return this.field('gpa');
        if (a.name === 'iova') {
          const n = this.int(false);
          return this.withVfio(() => (this.chance(0.7) ? this.field('iova') : n));
        }
        /* a size the replayer allocates a buffer of: up to 64 KiB */
        if (a.max !== undefined) return this.pick([0, 1, 16, PAGE - 1, PAGE, PAGE + 1, 0x10000]);
        if (a.name === 'length' || a.name === 'len') return this.length();
        return this.int(false);
      case 'flags':
        return this.flags(a);
      case 'data':
        return this.data();
      case 'string':
        return this.string(op.name);
      case 'struct':
        return 0;
    }
  }

  /** Half of the mmaps are ones a program would make, so that memory gets mapped at all. */
  private saneMmap(line: Record<string, unknown>): void {
    if (!this.chance(0.5)) return;
    const files = this.live(['memfd', 'gmem']);
    const anon = files.length === 0 || this.chance(0.4);
    line.addr = 0;
    line.length = this.sanePages();
    line.prot = this.pick(['PROT_READ|PROT_WRITE', 'PROT_READ|PROT_WRITE', 'PROT_READ', 'PROT_NONE']);
    line.flags = anon ? 'MAP_PRIVATE|MAP_ANONYMOUS' : this.pick(['MAP_SHARED', 'MAP_SHARED', 'MAP_PRIVATE', 'MAP_SHARED|MAP_POPULATE']);
    line.fd = anon ? -1 : `$${this.pick(files).name}`;
    line.offset = 0;
    /* a vCPU's pages: struct kvm_run, or its dirty ring at KVM_DIRTY_LOG_PAGE_OFFSET */
    const vcpus = this.live(['vcpu']);
    if (vcpus.length > 0 && this.chance(0.15)) {
      line.fd = `$${this.pick(vcpus).name}`;
      line.offset = this.pick([0, 64 * PAGE, 65 * PAGE]);
      line.length = this.pick([PAGE, 2 * PAGE]);
      line.flags = this.pick(['MAP_SHARED', 'MAP_SHARED', 'MAP_PRIVATE']);
    }
  }

  /** Binds what the call returns, if it is a resource, and records its kind. */
  private bind(op: OpSpec, line: Record<string, unknown>, req?: string): FuzzLine {
    let kind: Kind | undefined;
    if (op.name === 'memfd_create') kind = 'memfd';
    else if (op.name === 'open') kind = openKind(line.path);
    else if (op.name === 'vfio_device_add') {
      kind = 'device';
      this.devices++;
    }
    else if (op.name === 'mmap') kind = 'addr';
    else if (op.name === 'close' && typeof line.fd === 'string') {
      const h = this.handles.find((x) => `$${x.name}` === line.fd);
      if (h !== undefined) h.closed = true;
    } else if (req !== undefined) {
      const v = names.get(req);
      if (v !== undefined && op.binds?.([line.fd, v, line.arg]) === 'fd') {
        kind = req === 'KVM_CREATE_VM' ? 'vm' : req === 'KVM_CREATE_VCPU' ? 'vcpu' : req === 'KVM_CREATE_GUEST_MEMFD' ? 'gmem' : 'fd';
      }
    }
    if (kind === undefined) return line as FuzzLine;
    const len = kind === 'addr' && typeof line.length === 'number' ? line.length : undefined;
    return { ...line, op: op.name, as: this.handle(kind, len) };
  }

  private ioctl(): FuzzLine {
    const op = getOp('ioctl')!;
    if (this.opts.generic === true) {
      const req = this.pick(KVM_GENERIC_REQUESTS);
      return this.bind(op, this.kvmGenericIoctl(req), req);
    }
    const known = Object.keys(REQ_TARGET).filter((r) => names.get(r) !== undefined);
    const req = this.chance(0.7) && known.length > 0 ? this.pick(known) : this.requests.length > 0 && this.chance(0.8) ? this.pick(this.requests) : undefined;
    if (req === undefined) {
      /* a request number nobody registered */
      return { op: 'ioctl', fd: this.fd(['kvm', 'vm', 'vcpu', 'memfd']), req: this.pick([0, 0xae00, 0xaeff, 0xc008aeff, 0x5421, 0xffffffff]), arg: this.int(false) };
    }
    if (/^(FI|FS_IOC_)/.test(req)) return this.genericIoctl(op, req);
    const target = REQ_TARGET[req];
    const fd = this.fd(target === undefined ? ['kvm', 'vm', 'vcpu'] : [target]);
    const line: Record<string, unknown> = { op: 'ioctl', fd, req };
    const v = names.get(req)!;
    const dir = Number(v >> 30n);
    if (dir === 0) line.arg = this.scalarArg(req);
    else if (this.chance(0.05)) line.arg = this.pick([0, 1, '0xffffffffffffffff']);
    else line.arg = this.struct(req);
    return this.bind(op, line, req);
  }

  /** A request of KVM_GENERIC_REQUESTS on the fd it wants mostly (GenerateOptions.kvm). */
  private kvmGenericIoctl(req: string): Record<string, unknown> {
    const line: Record<string, unknown> = { op: 'ioctl', fd: this.fd([REQ_TARGET[req] ?? 'kvm']), req };
    const v = names.get(req)!;
    if (Number(v >> 30n) === 0) {
      line.arg = this.scalarArg(req);
      /* a capability Linux 6.18 has, by number (the oracle's name table is the uapi's alone) */
      if (req === 'KVM_CHECK_EXTENSION' && typeof line.arg === 'string') {
        const cap = names.get(line.arg);
        /* KVM_CAP_GUEST_MEMFD_FLAGS is the last of Linux 6.18's <linux/kvm.h>: the rest are designs' */
        line.arg = CONFIG_CAPS.includes(line.arg) || cap === undefined || cap > KVM_CAP_GUEST_MEMFD_FLAGS ? KVM_CAP_USER_MEMORY : Number(cap);
      }
      if (req === 'KVM_CREATE_VM' && this.chance(0.8)) line.arg = 0;
    } else {
      /* KVM_SET_USER_MEMORY_REGION refuses KVM_MEM_GUEST_MEMFD whatever the config (EINVAL) */
      line.arg = this.struct(req);
    }
    return line;
  }

  /**
   * One of do_vfs_ioctl()'s generic requests, which any file answers: on any fd, memfds mostly,
   * with the argument an address in or around a mapping (or an edge); FICLONE's is an fd.
   */
  private genericIoctl(op: OpSpec, req: string): FuzzLine {
    const fd = this.fd(['memfd', 'dev', 'gmem', 'vm', 'vcpu', 'kvm']);
    const arg = req === 'FICLONE' ? this.fd(['memfd']) : this.chance(0.85) ? this.addr() : this.int(false);
    return this.bind(op, { op: 'ioctl', fd, req, arg }, req);
  }

  /** The integer argument of an _IO request (a VM type, a capability, a vCPU id). */
  private scalarArg(req: string): unknown {
    if (this.chance(0.2)) return this.edge(false);
    switch (req) {
      case 'KVM_CREATE_VM':
        return this.pick([0, 0, 1, 2, 5, 0xff]);
      case 'KVM_CHECK_EXTENSION':
        return this.pick(names.names('KVM_CAP_'));
      case 'KVM_CREATE_VCPU':
        return this.below(4);
      case 'VFIO_CHECK_EXTENSION':
      case 'VFIO_SET_IOMMU':
        return this.pick(['VFIO_TYPE1v2_IOMMU', 'VFIO_TYPE1v2_IOMMU', 'VFIO_TYPE1_IOMMU', 'VFIO_NOIOMMU_IOMMU', 'VFIO_UNMAP_ALL', 0]);
      case 'VFIO_GROUP_SET_CONTAINER':
        return this.fd(['vfio']);
      default:
        return this.below(2);
    }
  }

  private field(kind: FieldKind): unknown {
    /* an array field (kvm_enable_cap's args) stays an array */
    if (kind !== 'cap_args' && this.chance(0.15)) return this.edge(false);
    switch (kind) {
      case 'slot':
        return this.pick([0, 0, 1, 2, 0x10000, 0x7fff, 509, 32767]);
      case 'gpa':
        return this.pick([0, 0, 0x100000, 0x40000000, 0x100000000, PAGE, this.below(64) * PAGE]);
      case 'size':
        return this.sanePages();
      case 'hva':
        return this.addr();
      case 'gmem_fd':
        return this.fd(['gmem']);
      case 'memflags':
        return this.chance(0.7) ? this.pick([0, 'KVM_MEM_GUEST_MEMFD', 'KVM_MEM_READONLY', 'KVM_MEM_LOG_DIRTY_PAGES']) : this.pick([0x8, 0xffffffff, 7]);
      case 'attrs':
        return this.pick([0, 'KVM_MEMORY_ATTRIBUTE_PRIVATE', 1, 0xff]);
      case 'flags': {
        const known = names.names('GUEST_MEMFD_FLAG_');
        const all = known.length > 0 ? [known.join('|')] : [];
        return this.chance(0.7) ? this.pick<number | string>([0, ...known, ...all, ...all]) : this.pick([4, 0x80, '0x8000000000000000']);
      }
      case 'reserved':
        return this.chance(0.85) ? 0 : this.pick([1, 0x80000000]);
      case 'cap':
        /* the capabilities a VM enables alike on every x86 KVM: ENABLE_CAP of the others is the host's choice */
        return this.chance(0.9) ? this.pick(['KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2', 'KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2', 'KVM_CAP_EXIT_HYPERCALL', 'KVM_CAP_HALT_POLL',
          'KVM_CAP_DIRTY_LOG_RING', 'KVM_CAP_DIRTY_LOG_RING_ACQ_REL']) : this.below(8);
      case 'cap_args':
        return [this.pick([0, 1, 1, 3, 3, 2, 4, 7, 'KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE|KVM_DIRTY_LOG_INITIALLY_SET', PAGE, PAGE, 2 * PAGE, 3 * PAGE, 1024])];
      case 'page_index':
        return this.pick([0, 0, 64, 128, 192, 256, 1, 3, 63, 100, 512, this.below(16) * 64]);
      case 'iova':
        return this.pick([0, 0, 0x100000, 0x200000, PAGE, 0x10000, 0xfee00000, 2 ** 48]);
      case 'obj_id':
        return this.pick([1, 1, 1, 2, 3, 0, 100]);
      case 'iommufd_fd':
        return this.fd(['iommufd']);
      case 'memfd_fd':
        return this.fd(['memfd']);
      case 'dma_flags':
        return this.pick(['VFIO_DMA_MAP_FLAG_READ|VFIO_DMA_MAP_FLAG_WRITE', 'VFIO_DMA_MAP_FLAG_READ', 0, 'VFIO_DMA_UNMAP_FLAG_ALL', 4, 0xff]);
      case 'ioas_flags':
        return this.pick(['IOMMU_IOAS_MAP_FIXED_IOVA|IOMMU_IOAS_MAP_READABLE|IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE|IOMMU_IOAS_MAP_WRITEABLE',
          'IOMMU_IOAS_MAP_READABLE', 0, 8]);
      default:
        return this.int(false);
    }
  }

  private struct(req: string): Record<string, unknown> {
    const layout = STRUCTS[req];
    const s: Record<string, unknown> = {};
    if (layout === undefined) {
      /* a struct the fuzzer does not know: a few plausible fields */
      for (const f of ['flags', 'size', 'gpa', 'address'].slice(0, 1 + this.below(4))) s[f] = this.int(false);
      return s;
    }
    for (const [name, kind] of Object.entries(layout)) {
      if (!this.chance(0.9)) continue;
      s[name] = kind === 'argsz' && this.chance(0.85) ? STRUCT_SIZES[req] ?? 0 : this.field(kind);
    }
    const arr = RESERVED_ARRAYS[req];
    if (arr !== undefined && this.chance(0.1)) s[arr[0]] = Array.from({ length: arr[1] }, (_, k) => (k === arr[1] - 1 ? 1 : 0));
    return s;
  }
}

/** What an opened path is, for the calls that want it. */
function openKind(path: unknown): Kind {
  if (path === '/dev/kvm') return 'kvm';
  if (path === '/dev/vfio/vfio') return 'vfio';
  if (path === '/dev/iommu') return 'iommufd';
  if (typeof path === 'string' && path.startsWith('/dev/vfio/devices/')) return 'vdev';
  if (typeof path === 'string' && /^\/dev\/vfio\/[0-9]+$/.test(path)) return 'vgroup';
  return 'dev';
}
