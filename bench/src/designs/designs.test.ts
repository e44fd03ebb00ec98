/**
 * `cocosim designs` against designs.md §1, row by row: each design's generated facts (probes.ts,
 * the catalog scenarios on the design's reference vendor) are checked against what its row of
 * the comparison table states. Where the row states nothing testable a column is left out; where
 * the simulator and the row differ, the entry says which is right and the source that decides.
 */
import { describe, expect, test } from 'vitest';
import { probeDesigns, type ColumnKey, type DesignFacts } from './probes.js';
import { designsCommand } from './command.js';

/** A column's verdicts, scenario by scenario in COLUMNS order. */
type Row = Partial<Record<ColumnKey, readonly (string | RegExp)[]>>;

const SIGBUS = /^SIGBUS /;
const SHARED_ONLY = ['store lands outside the private page; guest data intact', 'no mapping of private memory: reads the shared page'];
const MOBILITY_NONE = ['never reclaimed: the private page stays resident', 'cannot move: EBUSY'];

/** designs.md §1, each cell rephrased as the verdicts of the scenarios that answer it. */
const TABLE: Readonly<Record<string, Row>> = {
  // "VMA VM_KVM_PROTECTED, PTEs PROT_NONE -> SIGBUS"; "-EFAULT unless FOLL_KVM"; "Same page; no
  // zeroing on share (inferred)"; "VFIO GUP fails (inferred)": mapped before protection, the
  // IOMMU keeps the page (designs.md §2 S7: "a stale IOMMU mapping remains").
  kvm_protected: {
    hidden: [SIGBUS, SIGBUS], kernel: ['write() -1 EFAULT', /^fault/], gup: ['pin fails: -EFAULT'],
    content: ['the private data'], vfio: ['DMA reaches the private page: guest reads the device data', /.*/],
  },
  // "PG_hwpoison + SWP_HWPOISON PTE -> SIGBUS"; "-EFAULT unless FOLL_ALLOW_POISONED"; "no unshare";
  // "Same page, contents untouched"; "None ("No THP support")"; "Stale IOMMU mappings".
  hwpoison: {
    hidden: ['SIGBUS BUS_MCEERR_AR', 'SIGBUS BUS_MCEERR_AR'], gup: ['pin fails: -EFAULT'], conversion: ['round trip 2: to-private refused'],
    content: ['the private data'], huge: ['private mapping 4K -> 4K'],
    vfio: ['DMA reaches the private page: guest reads the device data', 'converted; the IOMMU maps the private page'],
  },
  // Hildenbrand's alternative has no row of its own in §1; §D2: writes denied to user space after
  // activation, reads allowed, writes bounced through KVM.
  per_vma: { hidden: ['SIGSEGV SEGV_ACCERR', 'reads the private data in plaintext'] },
  // "PAGE_NONE PTE/PMD -> SIGBUS; syscalls -EIO"; "fails unless FOLL_GUEST"; "Shared side fresh
  // zeroed anon page"; "GUP for VFIO fails on P (inferred)" (mapped before: §2 S7 stale mapping).
  page_guest: {
    hidden: [SIGBUS, SIGBUS], kernel: ['write() -1 EFAULT', /.*/], gup: ['pin fails: -EFAULT'], content: ['zeros'],
  },
  // "Never mapped (fd has no mmap)"; "N/A (no VA)"; "P not DMA-mappable".
  // "Callbacks to KVM; initially unsupported": the store (F_SEAL_GUEST shmem) neither swaps nor
  // migrates its pages.
  fd_rfc: {
    hidden: SHARED_ONLY, gup: ['pins the shared page, not the private one'], mobility: MOBILITY_NONE,
    vfio: ['DMA lands in the stale shared page; guest data intact', /.*/],
  },
  // D5-D7: "mmap/read/write return -EPERM"; "N/A" (GUP); "Punch frees P"; "P not DMA-mappable; S
  // via HVA"; D5 "writepage redirty (no swap)", D7 "no swap".
  // D5 "writepage redirty (no swap); migration -ENOTSUPP", D6 "Same", D7 "migrate_folio -EBUSY;
  // no swap": compaction reports EBUSY for a page it cannot move either way.
  memfd_seal: { hidden: SHARED_ONLY, gup: ['pins the shared page, not the private one'], content: ['zeros'], mobility: MOBILITY_NONE, vfio: ['DMA lands in the stale shared page; guest data intact', /.*/] },
  mfd_inaccessible: { hidden: SHARED_ONLY, gup: ['pins the shared page, not the private one'], content: ['zeros'], mobility: MOBILITY_NONE },
  memfd_restricted: { hidden: SHARED_ONLY, gup: ['pins the shared page, not the private one'], content: ['zeros'], mobility: MOBILITY_NONE },
  // "No mmap/read/write"; "S and P different pages; P zero-filled at alloc; nothing preserved";
  // "Order-0 only"; "Never swap; migration -EINVAL (AS_UNMOVABLE)" (6.18 answers -EOPNOTSUPP for
  // an inaccessible mapping, mm/migrate.c move_to_new_folio(): either way the page stays);
  // "P not DMA-able; S DMA needs RamDiscardManager coordination".
  upstream: {
    hidden: SHARED_ONLY, gup: ['pins the shared page, not the private one'], content: ['zeros'], huge: ['private mapping 4K -> 4K'],
    mobility: ['never reclaimed: the private page stays resident', 'cannot move: EBUSY'],
    vfio: ['DMA lands in the stale shared page; guest data intact', 'converted; the pinned shared page stays allocated and DMA-mapped'],
  },
  // "P faults SIGBUS"; "S: yes; a pin blocks to-private (EAGAIN)"; "no alloc/free"; "Conversion to
  // P fails while IOMMU-pinned". Content: v7/v8 "unspecified": on SW_PROTECTED nothing touches the
  // page, so the guest reads its data (gmem_inplace.test.ts covers the RFC content modes).
  gmem_inplace: {
    hidden: ['SIGBUS BUS_ADRERR', 'SIGBUS BUS_ADRERR'], gup: ['pin fails: -EFAULT'], conversion: ['8 round trips'],
    mobility: ['never reclaimed: the private page stays resident', 'cannot move: EBUSY'],
    vfio: ['to-private fails: EAGAIN', 'to-private fails: EAGAIN'],
  },
  // "Same as D10"; its 1G folios show at a 1 GiB page size (gmem_hugetlb.test.ts), the probes run
  // at 4 KiB.
  gmem_hugetlb: {
    hidden: ['SIGBUS BUS_ADRERR', 'SIGBUS BUS_ADRERR'], gup: ['pin fails: -EFAULT'], vfio: ['to-private fails: EAGAIN', 'to-private fails: EAGAIN'],
  },
  // "Not hidden (owner process uses the key); other KeyIDs see ciphertext"; "Per-KeyID direct map"
  // (the KeyID-0 direct map reads ciphertext, §2 S22); "Works (fully functional memory)".
  mktme_encrypt: {
    hidden: ['store reaches the private page: guest reads the VMM data', 'reads the private data in plaintext'],
    kernel: ['write() copies the private data in plaintext', 'ciphertext'], gup: ['pins the private page'],
  },
  // "Not hidden: host reads ciphertext, writes corrupt"; "Direct map maps ciphertext"; "Works
  // (pinned)"; "Pinned: no swap/migration"; "VFIO pin-all works; guest bounces through C=0".
  sev_pinned: {
    hidden: ['store corrupts the private page: guest reads garbage', 'reads ciphertext'], kernel: ['write() copies ciphertext', 'ciphertext'],
    gup: ['pins the private page'], mobility: ['never reclaimed: the private page stays resident', 'cannot move: EBUSY'],
  },
  // "Hardware RMP #PF on host write -> SIGBUS"; "Works (faults on write)"; "Pinned"; "IOMMU RMP checks".
  snp_anon: {
    hidden: [SIGBUS, 'reads ciphertext'], gup: ['pins the private page'],
    mobility: ['never reclaimed: the private page stays resident', 'cannot move: EBUSY'], vfio: ['DMA faults (IOMMU)', /.*/],
  },
};

let facts: DesignFacts[] | undefined;
function all(): DesignFacts[] {
  facts ??= probeDesigns();
  return facts;
}

describe('cocosim designs matches designs.md §1', () => {
  test('every registered design has a row', () => {
    expect(all().map((f) => f.design).sort()).toEqual(Object.keys(TABLE).sort());
  });

  for (const [design, row] of Object.entries(TABLE)) {
    test(`${design}`, () => {
      const f = all().find((x) => x.design === design)!;
      expect(f.vendor, `${design} runs on some vendor`).not.toBeNull();
      for (const [col, want] of Object.entries(row) as [ColumnKey, readonly (string | RegExp)[]][]) {
        const got = f.columns[col].map((s) => s.verdict);
        want.forEach((w, i) => {
          if (typeof w === 'string') expect(got[i], `${design} ${col} ${f.columns[col][i]!.scenario}`).toBe(w);
          else expect(got[i], `${design} ${col} ${f.columns[col][i]!.scenario}`).toMatch(w);
        });
      }
    });
  }
});

describe('cocosim designs', () => {
  test('requirements: the base kernel holds all it can be judged on; legacy SEV and hwpoison expose private pages', () => {
    const req = (d: string) => Object.fromEntries(all().find((f) => f.design === d)!.requirements.map((r) => [r.requirement, r.status]));
    expect(req('upstream')).toEqual({
      'pfn-one-vm': 'not applicable', 'no-host-access': 'held', 'gfn-pfn-immutable': 'held', convertible: 'held', 'never-private-and-shared': 'held',
      // probed on sw_protected, which has no tracker of its own (vendor-models.md §6)
      'vendor-isolation': 'not applicable',
    });
    // D13: the VMM keeps its mapping of encrypted memory (designs.md §1 "Not hidden").
    expect(req('sev_pinned')['no-host-access']).toBe('violated');
    // D2: no unshare (§1 "no unshare"), and VFIO's pin-all keeps the now-private page DMA-mapped (§2 S7).
    expect(req('hwpoison')).toMatchObject({ convertible: 'violated', 'no-host-access': 'violated' });
  });

  test('the command prints every design, --json the same facts, an unknown name exits 2', () => {
    const lines: string[] = [];
    expect(designsCommand({ json: false, designs: 'upstream' }, (s) => lines.push(s), () => undefined)).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/^upstream \(D8\/D9\)/);
    expect(text).toContain('s01-vmm-store-private: store lands outside the private page; guest data intact');
    expect(text).toContain('no-host-access: held');
    const json: string[] = [];
    expect(designsCommand({ json: true, designs: 'upstream' }, (s) => json.push(s), () => undefined)).toBe(0);
    expect(JSON.parse(json.join('\n'))).toEqual(all().filter((f) => f.design === 'upstream'));
    const err: string[] = [];
    expect(designsCommand({ json: false, designs: 'nope' }, () => undefined, (s) => err.push(s))).toBe(2);
    expect(err[0]).toMatch(/unknown design nope/);
  });
});
