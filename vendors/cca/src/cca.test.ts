/**
 * Arm CCA end to end on cocosim's KVM: a realm launched through KVM_CAP_ARM_RME with populate and
 * measurement, conversions through RSI_IPA_STATE_SET with their contents, the illegal accesses
 * of vendor-models.md §3.7, and the KVM-level errnos of the v8 host series.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { MM_HOST_ACCESS_FAULT, KernelOops, kernel_host_access, mm_host_access, uaccess_host_access, PROT_READ, MAP_SHARED } from '@cocosim/mm';
import {
  KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_EXIT_HLT, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_SHUTDOWN,
  KVM_MEMORY_EXIT_FLAG_PRIVATE, fwcall, guestLoad, guestStore, hlt, type GuestCode,
} from '@cocosim/kvm';
import { Device, Iommu, iommu_vendor_ops_merge } from '@cocosim/vfio';
import {
  GRANULE_STATE_DATA, GRANULE_STATE_NS, RIPAS_DESTROYED, RIPAS_EMPTY, RIPAS_RAM, RSI_ACCEPT, RSI_CHANGE_DESTROYED, RSI_SUCCESS,
  SMC_RSI_IPA_STATE_GET, SMC_RSI_IPA_STATE_SET, SMC_RSI_MEASUREMENT_READ, cca_iommu_ops, cca_realm_rim, rmm_of, rtt_leaf,
  KVM_CAP_ARM_RME, KVM_CAP_ARM_RME_ACTIVATE_REALM, KVM_CAP_ARM_RME_CONFIG_REALM, KVM_CAP_ARM_RME_CREATE_REALM,
  KVM_CAP_ARM_RME_POPULATE_REALM, KVM_VM_TYPE_ARM_REALM, ARM_RME_CONFIG_HASH_ALGO, ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512,
  KVM_ARM_RME_POPULATE_FLAGS_MEASURE, kvm_realm,
} from './index.js';
import {
  RAM_GPA, RAM_PAGES, SHARED_BIT, add_vcpu, cca_host, gmem_pfn, image, launch, realm_vm, rme_cap, run, set_attributes,
  type CcaHost, type RealmVm,
} from './cca_host.test-helpers.js';

const hosts: CcaHost[] = [];
function host(): CcaHost {
  const h = cca_host();
  hosts.push(h);
  return h;
}
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

const IMG_PAGES = 4;

/** Launch a realm with `img` and return its RIM as hex. */
function rim_of(img: Uint8Array, populate?: readonly (readonly [number, number])[]): string {
  const vm = realm_vm(host());
  add_vcpu(vm, function* () {});
  launch(vm, img, populate);
  return Buffer.from(cca_realm_rim(vm.kvm)!).toString('hex');
}

describe('launch: KVM_CAP_ARM_RME create / init RIPAS / populate / activate, and the RIM', () => {
  test('the same image gives the same RIM; a changed byte, swapped pages or another populate order a different one', () => {
    const img = image(IMG_PAGES, 1);
    const a = rim_of(img);
    expect(rim_of(image(IMG_PAGES, 1))).toBe(a);
    const changed = img.slice();
    changed[3 * PAGE_SIZE + 17] ^= 1;
    expect(rim_of(changed)).not.toBe(a);
    const swapped = img.slice();
    swapped.set(img.subarray(0, PAGE_SIZE), PAGE_SIZE);
    swapped.set(img.subarray(PAGE_SIZE, 2 * PAGE_SIZE), 0);
    expect(rim_of(swapped)).not.toBe(a);
    // Same pages, populated back to front: DATA descriptors chain in another order.
    expect(rim_of(img, [[2, 2], [0, 2]])).not.toBe(a);
    expect(rim_of(img, [[2, 2], [0, 2]])).toBe(rim_of(img, [[2, 2], [0, 2]]));
  });

  test('the realm reads the RIM the RMM computed (RSI_MEASUREMENT_READ) and its populated image', () => {
    const vm = realm_vm(host());
    const img = image(IMG_PAGES, 7);
    let rim: readonly bigint[] = [];
    let seen: Uint8Array | null = null;
    add_vcpu(vm, function* () {
      rim = yield* fwcall(SMC_RSI_MEASUREMENT_READ, 0);
      seen = yield* guestLoad(RAM_GPA, IMG_PAGES * PAGE_SIZE);
      yield* hlt();
    });
    launch(vm, img);
    expect(run(vm)).toBe(0);
    expect(vm.vcpu!.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(rim[0]).toBe(RSI_SUCCESS);
    const bytes = Buffer.alloc(64);
    for (let i = 0; i < 8; i++) bytes.writeBigUInt64LE(rim[i + 1]!, 8 * i);
    expect(bytes.equals(Buffer.from(cca_realm_rim(vm.kvm)!))).toBe(true);
    expect(Buffer.from(seen!).equals(Buffer.from(img))).toBe(true);
    // The populated granules are the realm's DATA, copied from the VMM's pages.
    expect(rmm_of(vm.host.kernel).granule_state(gmem_pfn(vm, RAM_GPA))).toBe(GRANULE_STATE_DATA);
  });

  test('SHA-512 realms measure with SHA-512 (a 64-byte RIM)', () => {
    const vm = realm_vm(host());
    add_vcpu(vm, function* () {});
    expect(rme_cap(vm, KVM_CAP_ARM_RME_CONFIG_REALM, { cfg: ARM_RME_CONFIG_HASH_ALGO, hash_algo: ARM_RME_CONFIG_MEASUREMENT_ALGO_SHA512 })).toBe(0);
    launch(vm, image(1, 2), [[0, 1]]);
    expect(cca_realm_rim(vm.kvm)!.subarray(32).some((b) => b !== 0)).toBe(true);
  });

  test('populate charges a delegate, a DATA_CREATE with its copy and measurement per page', () => {
    const vm = realm_vm(host());
    add_vcpu(vm, function* () {});
    const kernel = vm.host.kernel;
    expect(vm.host.p.store(vm.hva, image(2, 3))).toBe(0);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_CREATE_REALM)).toBe(0);
    const { result, cost } = kernel.cost.measure('populate', () =>
      rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA, size: 2 * PAGE_SIZE, flags: KVM_ARM_RME_POPULATE_FLAGS_MEASURE }));
    expect(result).toBe(0);
    const n = (name: string): number => cost.items.find((i) => i.name === name)?.count ?? 0;
    expect(n('cca_measure_4k')).toBe(2);
    expect(n('page_copy_4k')).toBe(2);
    // 2 data granules + the level-2 and level-3 RTTs: each delegated (GPT change, RMM zeroing).
    expect(n('cca_gpt_transition')).toBe(4);
    expect(n('page_zero_4k')).toBeGreaterThanOrEqual(4);
    expect(n('cca_rmi_call')).toBeGreaterThanOrEqual(6);
  });
});

/** RSI_IPA_STATE_SET of one page from the guest, handling the host side until it returns. */
function* rsi_set(gpa: bigint, ripas: number): GuestCode<readonly bigint[]> {
  return yield* fwcall(SMC_RSI_IPA_STATE_SET, gpa, gpa + BigInt(PAGE_SIZE), ripas, RSI_CHANGE_DESTROYED);
}

/** Run until the vCPU exits with KVM_EXIT_MEMORY_FAULT for a RIPAS change, convert as the VMM does, repeat; the final KVM_RUN result. */
function run_converting(vm: RealmVm, on_shared?: (gpa: bigint) => void): number {
  for (;;) {
    const r = run(vm);
    const mf = vm.vcpu!.run.memory_fault;
    if (r !== -Errno.EFAULT || vm.vcpu!.run.exit_reason !== KVM_EXIT_MEMORY_FAULT) return r;
    const priv = mf.flags === KVM_MEMORY_EXIT_FLAG_PRIVATE;
    set_attributes(vm.host, vm.vm_fd, mf.gpa, mf.size, priv);
    if (!priv) on_shared?.(mf.gpa);
  }
}

describe('conversions after activation (RSI_IPA_STATE_SET -> KVM_EXIT_MEMORY_FAULT -> RMI_RTT_SET_RIPAS)', () => {
  test('private -> shared -> private: the shared alias shows the VMM\'s bytes, the page comes back zeroed', () => {
    const vm = realm_vm(host());
    const img = image(IMG_PAGES, 5);
    const page = RAM_GPA + BigInt(PAGE_SIZE);
    const out: {
      before?: Uint8Array; to_shared?: readonly bigint[]; shared?: Uint8Array; to_private?: readonly bigint[]; after?: Uint8Array;
      state?: readonly bigint[]; to_shared_again?: readonly bigint[]; shared_again?: Uint8Array;
    } = {};
    add_vcpu(vm, function* () {
      out.before = yield* guestLoad(page, 64);
      out.to_shared = yield* rsi_set(page, RIPAS_EMPTY);
      out.shared = yield* guestLoad(page | SHARED_BIT, 64);
      yield* guestStore((page | SHARED_BIT) + 64n, Uint8Array.of(0xee));
      out.to_private = yield* rsi_set(page, RIPAS_RAM);
      out.state = yield* fwcall(SMC_RSI_IPA_STATE_GET, page, page + BigInt(PAGE_SIZE));
      out.after = yield* guestLoad(page, 64);
      // And shared again: what the realm wrote while it was private does not follow it.
      yield* guestStore(page, new Uint8Array(64).fill(0x77));
      out.to_shared_again = yield* rsi_set(page, RIPAS_EMPTY);
      out.shared_again = yield* guestLoad(page | SHARED_BIT, 64);
      yield* hlt();
    });
    launch(vm, img);
    const data_pfn = gmem_pfn(vm, page);
    const exits: bigint[] = [];
    const r = run_converting(vm, (gpa) => {
      exits.push(gpa);
      expect(vm.host.p.store(vm.hva + (gpa - RAM_GPA), new Uint8Array(PAGE_SIZE).fill(0x5a))).toBe(0);
    });
    expect(r).toBe(0);
    expect(vm.vcpu!.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(exits).toEqual([page, page]);
    expect(Buffer.from(out.before!).equals(Buffer.from(img.subarray(PAGE_SIZE, PAGE_SIZE + 64)))).toBe(true);
    expect(out.to_shared).toEqual([RSI_SUCCESS, page + BigInt(PAGE_SIZE), RSI_ACCEPT]);
    expect([...out.shared!]).toEqual(new Array(64).fill(0x5a));
    expect(out.to_private).toEqual([RSI_SUCCESS, page + BigInt(PAGE_SIZE), RSI_ACCEPT]);
    expect(out.state).toEqual([RSI_SUCCESS, page + BigInt(PAGE_SIZE), BigInt(RIPAS_RAM)]);
    expect([...out.after!]).toEqual(new Array(64).fill(0));
    expect(out.to_shared_again).toEqual([RSI_SUCCESS, page + BigInt(PAGE_SIZE), RSI_ACCEPT]);
    expect([...out.shared_again!]).toEqual(new Array(64).fill(0x5a));
    // The old DATA granule was zeroed by RMI_DATA_DESTROY and given back (NS).
    expect(vm.host.kernel.phys.state(data_pfn as never)).toBe('zero');
    expect(rmm_of(vm.host.kernel).granule_state(data_pfn)).toBe(GRANULE_STATE_NS);
    const realm = rmm_of(vm.host.kernel).realms.get(kvm_realm(vm.kvm).rd)!;
    expect(rtt_leaf(realm, page).entry).toMatchObject({ hipas: 'UNASSIGNED', ripas: RIPAS_EMPTY });
  });

  test('the conversion charges the REC exit, the VMM round trip and RMI calls', () => {
    const vm = realm_vm(host());
    const page = RAM_GPA;
    add_vcpu(vm, function* () {
      yield* rsi_set(page, RIPAS_EMPTY);
      yield* hlt();
    });
    launch(vm, image(1, 9), [[0, 1]]);
    const { cost } = vm.host.kernel.cost.measure('to_shared', () => run_converting(vm));
    const n = (name: string): number => cost.items.find((i) => i.name === name)?.count ?? 0;
    expect(n('kvm_userspace_exit_roundtrip')).toBeGreaterThanOrEqual(1);
    expect(n('cca_rmi_call')).toBeGreaterThanOrEqual(3); // DATA_DESTROY, UNDELEGATE, SET_RIPAS
    expect(n('cca_gpt_transition')).toBe(1);
    expect(n('cca_s2_tlbi')).toBeGreaterThanOrEqual(1);
    expect(cost.estimated_ns).toBeGreaterThan(0);
  });
});

describe('illegal accesses (vendor-models.md §3.7)', () => {
  function launched(): { vm: RealmVm; pfn: number } {
    const vm = realm_vm(host());
    add_vcpu(vm, function* () {
      yield* hlt();
    });
    launch(vm, image(IMG_PAGES, 11));
    return { vm, pfn: gmem_pfn(vm, RAM_GPA) };
  }

  test('host kernel: a granule protection fault, whether read, write or a partial-line write', () => {
    const { vm, pfn } = launched();
    const kernel = vm.host.kernel;
    for (const [write, len] of [[false, 64], [true, PAGE_SIZE], [true, 8]] as const) {
      expect(mm_host_access(kernel, pfn, write, 'kernel', 0, len)).toBe(MM_HOST_ACCESS_FAULT);
      expect(vm.kvm.x86_ops.host_access(vm.kvm, pfn, write)).toMatchObject({ kind: 'fault' });
      // Inside copy_to/from_user the fault is fixed up; elsewhere it is an oops.
      expect(uaccess_host_access(kernel, pfn, write, 0, len)).toBe(-Errno.EFAULT);
      expect(() => kernel_host_access(kernel, pfn, write, 0, len)).toThrow(KernelOops);
    }
    // The RD and RTT granules are in the Realm PAS too; a host page is not.
    expect(mm_host_access(kernel, kvm_realm(vm.kvm).rd, false, 'kernel', 0, 8)).toBe(MM_HOST_ACCESS_FAULT);
    const shared_pfn = vm.host.p.load(vm.hva, 1) instanceof Uint8Array ? 0 : -1;
    expect(shared_pfn).toBe(0);
  });

  test('host user: private memory cannot be mapped (guest_memfd without MMAP)', () => {
    const { vm } = launched();
    const r = vm.host.p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, vm.gmem_fd, 0);
    expect(r).toBe(0xffff_ffff_ffff_ffffn);
  });

  test('device DMA: the SMMU\'s granule protection check refuses it', () => {
    const { vm, pfn } = launched();
    const kernel = vm.host.kernel;
    const dev = new Device('0000:00:01.0', new Iommu(kernel, iommu_vendor_ops_merge(cca_iommu_ops)), 'vfio-pci');
    expect(dev.iommu.ops.dma_access(dev, pfn as never, false)).toMatchObject({ kind: 'fault' });
    expect(dev.iommu.ops.dma_access(dev, pfn as never, true)).toMatchObject({ kind: 'fault' });
    expect(vm.kvm.x86_ops.dma_access(vm.kvm, pfn, true)).toMatchObject({ kind: 'fault' });
    const ns = kernel.page_alloc.alloc_page(0);
    expect(dev.iommu.ops.dma_access(dev, ns as never, true)).toEqual({ kind: 'ok' });
  });

  test('guest: RIPAS EMPTY is an SEA in the realm; unassigned RAM is mapped on the fault, zeroed', () => {
    const vm = realm_vm(host());
    const empty = RAM_GPA + BigInt((RAM_PAGES - 1) * PAGE_SIZE);
    const fresh = RAM_GPA + BigInt(2 * PAGE_SIZE);
    let got: Uint8Array | null = null;
    add_vcpu(vm, function* () {
      got = yield* guestLoad(fresh, 16);
      yield* rsi_set(empty, RIPAS_EMPTY);
      yield* guestLoad(empty, 8);
      yield* hlt();
    });
    launch(vm, image(2, 3), [[0, 2]]);
    expect(run_converting(vm)).toBe(0);
    expect(vm.vcpu!.run.exit_reason).toBe(KVM_EXIT_SHUTDOWN);
    expect(kvm_realm(vm.kvm).recs.get(vm.vcpu!)!.seas).toBe(1);
    expect([...got!]).toEqual(new Array(16).fill(0));
    expect(rmm_of(vm.host.kernel).granule_state(gmem_pfn(vm, fresh))).toBe(GRANULE_STATE_DATA);
  });

  test('guest: a page the host destroyed without the realm asking is DESTROYED, and the realm cannot use it', () => {
    const vm = realm_vm(host());
    const page = RAM_GPA;
    add_vcpu(vm, function* () {
      yield* guestLoad(page, 8);
      yield* hlt();
      yield* guestLoad(page, 8);
    });
    launch(vm, image(2, 4), [[0, 2]]);
    expect(run(vm)).toBe(0);
    // The VMM takes the pages back: KVM zaps them, RMI_DATA_DESTROY makes the RIPAS DESTROYED,
    // also for the populated page the realm never touched.
    set_attributes(vm.host, vm.vm_fd, page, BigInt(2 * PAGE_SIZE), false);
    const realm = rmm_of(vm.host.kernel).realms.get(kvm_realm(vm.kvm).rd)!;
    expect(rtt_leaf(realm, page).entry).toMatchObject({ hipas: 'UNASSIGNED', ripas: RIPAS_DESTROYED });
    expect(rtt_leaf(realm, page + BigInt(PAGE_SIZE)).entry).toMatchObject({ hipas: 'UNASSIGNED', ripas: RIPAS_DESTROYED });
    expect(rmm_of(vm.host.kernel).granule_state(gmem_pfn(vm, page))).toBe(GRANULE_STATE_NS);
    expect(run(vm)).toBe(-Errno.EFAULT);
    expect(vm.vcpu!.run.exit_reason).toBe(KVM_EXIT_MEMORY_FAULT);
  });
});

describe('KVM errnos of the host series', () => {
  test('VM types, capability and the realm lifecycle order', () => {
    const h = host();
    const { p } = h;
    expect(p.ioctl(h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_RME)).toBe(1);
    expect(p.ioctl(h.kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_REALM | 0x1000)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(h.kvm_fd, KVM_CREATE_VM, (2 << 8))).toBe(-1);
    expect(p.ioctl(h.kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_REALM | 44)).toBe(-1);
    const normal = p.ioctl(h.kvm_fd, KVM_CREATE_VM, 0);
    expect(normal).toBeGreaterThanOrEqual(0);
    expect(p.ioctl(normal, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_RME, args: [KVM_CAP_ARM_RME_CREATE_REALM] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);

    const vm = realm_vm(h);
    add_vcpu(vm, function* () {});
    expect(run(vm)).toBe(-Errno.EINVAL);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA, size: PAGE_SIZE })).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(rme_cap(vm, 9)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_CREATE_REALM)).toBe(0);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_CREATE_REALM)).toBe(-1);
    expect(p.errno).toBe(Errno.EEXIST);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_CONFIG_REALM, { cfg: ARM_RME_CONFIG_HASH_ALGO, hash_algo: 0 })).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA + 1n, size: PAGE_SIZE })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA, size: PAGE_SIZE, flags: 2 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: 0, size: PAGE_SIZE })).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, 0 as never)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    // kvm_gmem_populate(): the page must be private, and populated once.
    set_attributes(h, vm.vm_fd, RAM_GPA, BigInt(PAGE_SIZE), false);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA, size: PAGE_SIZE })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    set_attributes(h, vm.vm_fd, RAM_GPA, BigInt(PAGE_SIZE), true);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA, size: PAGE_SIZE })).toBe(0);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA, size: PAGE_SIZE })).toBe(-1);
    expect(p.errno).toBe(Errno.EEXIST);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM)).toBe(0);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: RAM_GPA + BigInt(PAGE_SIZE), size: PAGE_SIZE })).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    // A vCPU added to an active realm: the RMM refuses its REC.
    expect(p.ioctl(vm.vm_fd, KVM_CREATE_VCPU, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.ENXIO);
  });

  test('destroying the realm gives every granule back to the host', () => {
    const h = host();
    const vm = realm_vm(h);
    add_vcpu(vm, function* () {
      yield* guestLoad(RAM_GPA + BigInt(3 * PAGE_SIZE), 8);
      yield* guestLoad((RAM_GPA + BigInt(5 * PAGE_SIZE)) | SHARED_BIT, 8);
    });
    launch(vm, image(2, 1), [[0, 2]]);
    set_attributes(h, vm.vm_fd, RAM_GPA + BigInt(5 * PAGE_SIZE), BigInt(PAGE_SIZE), false);
    expect(run(vm)).toBe(0);
    const rmm = rmm_of(h.kernel);
    expect(rmm.realms.size).toBe(1);
    expect(rmm.nr_protected_granules).toBeGreaterThan(4);
    for (const fd of [vm.vcpu_fd, vm.gmem_fd, vm.vm_fd]) expect(h.p.close(fd)).toBe(0);
    expect(rmm.realms.size).toBe(0);
    expect(rmm.nr_protected_granules).toBe(0);
  });
});
