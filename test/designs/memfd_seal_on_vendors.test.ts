/**
 * memfd_seal (designs.md D5: F_SEAL_INACCESSIBLE memfd, memfile_notifier, KVM_MEM_PRIVATE) on an
 * SNP and a TDX host: the private pfn path calls the vendor hooks guest_memfd calls
 * (kvm_arch_gmem_prepare() on the private fault, kvm_arch_gmem_invalidate() from the memfile
 * notifier before a punch frees the page and when the memslot unbinds), so the SNP guest's
 * PVALIDATE finds its page assigned: before, its conversion to private failed with -EFAULT
 * ("Unexpected RMP fault, no assigned RMP entry").
 */
import { afterEach, describe, test } from 'vitest';
import { memfd_seal } from '@cocosim/kvm';
import { round_trip, teardown_returns_pages } from './fd_store_cases.js';
import { vendorHost, type VendorHost, type VendorName } from './vendor_hosts.js';

const hosts: VendorHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(vendor: VendorName): VendorHost {
  const h = vendorHost(vendor, memfd_seal);
  hosts.push(h);
  return h;
}

describe.each(['sev', 'tdx'] as const)('memfd_seal on %s', (vendor) => {
  test('shared -> private -> shared -> private: fallocate and punch of the sealed fd convert; the vendor holds the page only while private', () => {
    round_trip(host(vendor), memfd_seal.vmm);
  });

  test('a private page left in the sealed fd goes back to the host when the VM goes (memslot unbind)', () => {
    teardown_returns_pages(host(vendor), memfd_seal.vmm);
  });
});
