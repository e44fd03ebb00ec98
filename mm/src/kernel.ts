/**
 * The simulated kernel's globals, one set per simulated host: what Linux keeps in global
 * variables (mem_map, the zones and the buddy allocator, the inode number counter, the misc
 * device table) plus the simulator's host services (physical memory contents, clock and costs,
 * tracer, warnings, PRNG). Kernel objects reach them through this one object, the way kernel
 * code reaches its globals, so that two hosts in one process never share state.
 */
import { inject, injectable, type DependencyContainer } from 'tsyringe';
import {
  CostModel, Errno, PhysMem, PRandom, Tracer, VirtualClock, WarnSink, type HostRegistrar,
} from '@cocosim/core';
import { PageAllocator } from './page_alloc.js';
import { DEFAULT_NR_PAGES, PageStore } from './page_store.js';
import { FMODE_PATH, File, Inode, O_PATH, S_IFCHR, empty_fops } from './fs.js';
import { chr_dev_init } from './char_mem.js';
import { __alloc_contig_migrate_range } from './compaction.js';
import { migration_hooks } from './memory.js';
import { migration_entry_wait } from './migrate.js';
import { vm_sysctl } from './mm_types.js';

/** Opens a character device node: a new File, or -errno (misc_register's fops->open). */
export type DeviceOpen = (kernel: Kernel, flags: number) => File | number;

@injectable()
export class Kernel {
  private last_ino = 0;
  private last_mapping_id = 0;
  private last_pid = 0;
  private readonly devices = new Map<string, DeviceOpen>();
  /**
   * num_online_cpus(): what KVM_CAP_NR_VCPUS reports. 2 by default, the machines cocosim is
   * checked on; the command line gives the machine's own (bench/src/host_cpu.ts).
   */
  num_online_cpus = 2;

  constructor(
    @inject(PageStore) readonly store: PageStore,
    @inject(PageAllocator) readonly page_alloc: PageAllocator,
    @inject(PhysMem) readonly phys: PhysMem,
    @inject(CostModel) readonly cost: CostModel,
    @inject(Tracer) readonly tracer: Tracer,
    @inject(WarnSink) readonly warn: WarnSink,
    @inject(PRandom) readonly rng: PRandom,
    @inject(VirtualClock) readonly clock: VirtualClock,
  ) {
    // __GFP_ZERO and init_on_alloc: the allocator says which pages must read as zero.
    page_alloc.addListener({ onZero: (pfn, nr) => {
      for (let i = 0; i < nr; i++) phys.clear((pfn + i) as typeof pfn);
    } });
    chr_dev_init(this);
    // Page migration: a fault on a migration entry waits for it (migrate.ts), and
    // alloc_contig_range() migrates the pages in use out of its range (compaction.ts).
    migration_hooks.migration_entry_wait = migration_entry_wait;
    page_alloc.contig_migrate = (start, end, gfp) => __alloc_contig_migrate_range(this, start, end, gfp);
  }

  /** get_next_ino() (fs/inode.c): inode numbers of pseudo filesystems (shmem, anon inodes). */
  get_next_ino(): number {
    return ++this.last_ino;
  }

  /** A new address_space / anon_vma id for folio->mapping (a multiple of 4, page_store.ts). */
  next_mapping_id(): number {
    this.last_mapping_id += 4;
    return this.last_mapping_id;
  }

  /** alloc_pid(). */
  next_pid(): number {
    return ++this.last_pid;
  }

  /** misc_register(): make `path` openable (e.g. /dev/kvm). */
  register_device(path: string, open: DeviceOpen): void {
    this.devices.set(path, open);
  }

  /** Open a device node by path: the File, or -ENOENT for a path that does not exist. */
  open_device(path: string, flags: number): File | number {
    const open = this.devices.get(path);
    if (open === undefined) return -Errno.ENOENT;
    /* do_dentry_open(): an O_PATH file refers to the node, FMODE_PATH with empty_fops; no ->open() runs */
    if (flags & O_PATH) {
      const inode = new Inode(this.get_next_ino(), S_IFCHR | 0o666, {}, empty_fops, this.next_mapping_id());
      return new File(inode, empty_fops, flags, FMODE_PATH);
    }
    return open(this, flags);
  }
}

export interface MmHostOptions {
  /** Pages of simulated RAM (default 2^21: 8 GiB). */
  readonly nr_pages?: number;
  /** First pfn of RAM (default 0): lets tests put pfns above 2^32. */
  readonly base_pfn?: number;
  /** The CPU has protection keys, enabled (X86_FEATURE_OSPKE; default false): vm_sysctl().pku. */
  readonly pku?: boolean;
  /** CPUs online (Kernel.num_online_cpus; default 2). */
  readonly nr_cpus?: number;
}

/** mm's contribution to a simulated host: the memory map, the page allocator and the Kernel. */
export function mmRegistrar(opts: MmHostOptions = {}): HostRegistrar {
  return (root: DependencyContainer) => {
    const warn = root.resolve(WarnSink);
    const store = new PageStore(opts.nr_pages ?? DEFAULT_NR_PAGES, { base_pfn: opts.base_pfn, warn });
    root.registerInstance(PageStore, store);
    root.registerInstance(PageAllocator, new PageAllocator(store));
    const kernel = root.resolve(Kernel);
    root.registerInstance(Kernel, kernel);
    if (opts.pku !== undefined) vm_sysctl(kernel).pku = opts.pku;
    if (opts.nr_cpus !== undefined) kernel.num_online_cpus = opts.nr_cpus;
  };
}
