/**
 * The vendor matrix (issue 6's "done when"): every vendor of vendor-models.md §8, as
 * guest_memfd_test loops over VM types, run through its plugin on the upstream design by the
 * vendor probes (bench/src/vendors/probes.ts), and checked against the outcomes vendor-models.md
 * states for it:
 *   - launch with populate and measurement: the digest is stable, changes with a byte and with
 *     the order of the pages; the guest reads its image;
 *   - a post-launch shared->private->shared conversion with the contents each side reads;
 *   - every illegal access of the matrix by actor (host user, host kernel, device DMA, guest) and
 *     kind (read, full-line write, partial-line write), with the guest's next read after a write;
 *   - the modeled cost of a 4 KiB and a 2 MiB conversion each way; the page sizes.
 * A vendor whose plugin has no confidential VM half yet (VENDORS.get(name).cvm) keeps its rows,
 * skipped with the reason in the test name.
 */
import { describe, expect, test, type TestContext } from 'vitest';
import { probes, type AccessKind, type Actor, type VendorProbe } from './probes_module.js';

type Match = string | RegExp;

interface AccessExpect {
  readonly actor: Actor;
  readonly path: string;
  readonly kind: AccessKind;
  readonly outcome: Match;
  /** The guest's next read of the line after a write. */
  readonly next?: Match;
}

interface VendorExpect {
  /** Whether the vendor measures its launch image. */
  readonly measured: boolean;
  /** What the guest reads of its image's first line after launch. */
  readonly guest_reads_image: Match;
  readonly to_private_guest: Match;
  readonly to_private_vmm: Match;
  readonly to_shared_guest: Match;
  readonly to_shared_vmm: Match;
  readonly access: readonly AccessExpect[];
  /** The private mapping sizes the vendor's gmem_max_mapping_level allows (of a 4 KiB page). */
  readonly private_sizes: readonly string[];
}

const KINDS: readonly AccessKind[] = ['read', 'write', 'partial-line write'];

/**
 * The shared half every guest_memfd vendor has on the upstream design (vendor-models.md §0): the
 * VMM's mapping, the kernel's copies through it and a VFIO type1 map of it reach the shared page,
 * never the private one, whose contents stay the guest's; guest_memfd created without
 * GUEST_MEMFD_FLAG_MMAP cannot be mapped (virt/kvm/guest_memfd.c kvm_gmem_mmap(): -ENODEV).
 */
function sharedHalf(): AccessExpect[] {
  const rows: AccessExpect[] = [];
  for (const path of ['VMM mapping', 'process_vm_readv/writev of the VMM mapping', 'VFIO type1 map of the VMM mapping']) {
    const actor: Actor = path.startsWith('VMM') ? 'host user' : path.startsWith('VFIO') ? 'device DMA' : 'host kernel';
    for (const kind of KINDS) {
      rows.push(kind === 'read'
        ? { actor, path, kind, outcome: 'zeros (the shared page)' }
        : { actor, path, kind, outcome: 'ok (the shared page)', next: 'plaintext' });
    }
  }
  rows.push({ actor: 'host user', path: 'guest_memfd mapping', kind: 'read', outcome: 'no mapping: mmap -1 ENODEV' });
  return rows;
}

/** The host kernel's rows through the direct map, with and without a uaccess fixup. */
function kernelRows(read: Match, write: Match, next: Match, writeNoFixup: Match = write, partial: { outcome?: Match; next?: Match } = {}): AccessExpect[] {
  const rows: AccessExpect[] = [];
  for (const path of ['direct map, uaccess copy', 'direct map, no fixup']) {
    const w = path.endsWith('no fixup') ? writeNoFixup : write;
    rows.push({ actor: 'host kernel', path, kind: 'read', outcome: path.endsWith('no fixup') && typeof read !== 'string' && read.source.includes('EFAULT') ? /^oops: / : read });
    rows.push({ actor: 'host kernel', path, kind: 'write', outcome: w, next });
    rows.push({ actor: 'host kernel', path, kind: 'partial-line write', outcome: partial.outcome ?? w, next: partial.next ?? next });
  }
  return rows;
}

function dmaRows(read: Match, write: Match, next: Match, partialNext: Match = next): AccessExpect[] {
  const path = 'IOMMU map of the private pfn';
  return [
    { actor: 'device DMA', path, kind: 'read', outcome: read },
    { actor: 'device DMA', path, kind: 'write', outcome: write, next },
    { actor: 'device DMA', path, kind: 'partial-line write', outcome: write, next: partialNext },
  ];
}

function guestRow(outcome: Match): AccessExpect {
  return { actor: 'guest', path: 'page not accepted/validated', kind: 'read', outcome };
}

/**
 * The TD killed by the machine check at its next read: the TDX module disables the TD
 * (TDX_NON_RECOVERABLE_TD_NON_ACCESSIBLE from TDH.VP.ENTER) and KVM's tdx_handle_exit() reports
 * the unexpected exit to user space (KVM_EXIT_INTERNAL_ERROR).
 */
const TD_KILLED = /^KVM_EXIT_INTERNAL_ERROR$/;
/** A fault the kernel fixes up inside a uaccess copy; without a fixup the same access oopses. */
const EFAULT = /^-EFAULT \(uaccess fixup\)$/;
const OOPS = /^oops: /;
const IO_PAGE_FAULT = /^io_page_fault: /;
/** An exception the guest (without an IDT) cannot take: triple fault. */
const GUEST_EXCEPTION = /^KVM_EXIT_SHUTDOWN$/;

const EXPECT: Readonly<Record<string, VendorExpect>> = {
  // vendor-models.md §1 (TDX): §1.5 MRTD; §1.6/§8 contents (ACCEPT zeroes; to-shared destroyed);
  // §1.7 integrity: a KeyID-0 read of a TD page returns zeros (LI), does not fault; a write (full
  // or partial, erratum parts) poisons/clears the TD bit and the TD's next read #MCs: TD killed;
  // DMA as the host kernel; the guest touching a PENDING page: #VE (no IDT: triple fault) or,
  // with SEPT_VE_DISABLE, the VM killed. §1.8: KVM maps private memory at 4K only.
  tdx: {
    measured: true, guest_reads_image: 'image',
    to_private_guest: 'zeros', to_private_vmm: 'zeros', to_shared_guest: 'zeros', to_shared_vmm: 'zeros',
    access: [
      ...sharedHalf(),
      ...kernelRows('zeros', 'ok', TD_KILLED),
      ...dmaRows('zeros', 'ok', TD_KILLED),
      // #VE without an IDT is a triple fault; with SEPT_VE_DISABLE KVM kills the VM (-EIO).
      guestRow(/^(KVM_EXIT_SHUTDOWN|KVM_RUN -1 EIO)$/),
    ],
    private_sizes: ['4K'],
  },
  // vendor-models.md §2 (SEV-SNP): §2.5 launch digest; §2.6/§8 contents: to-shared not preserved;
  // to-private: §8 says "zero (gmem) then validated", but kvm_gmem_prepare_folio() zeroes the folio
  // through the host's mapping (clear_highpage()) before sev_gmem_prepare() assigns it, so the
  // guest, reading with its own key, sees those zeros decrypted with the wrong key: garbage (the
  // plugin's answer, kept). §2.7: a host read returns ciphertext, a write (full or partial) is an RMP #PF
  // (oops; -EFAULT inside a uaccess copy) and never lands; the IOMMU's RMP check faults a DMA
  // write, a DMA read returns ciphertext; the guest touching an unvalidated page takes #VC.
  // §2.9: RMP 4K/2M; a 4K gmem page maps at 4K.
  sev: {
    measured: true, guest_reads_image: 'image',
    to_private_guest: 'garbage', to_private_vmm: 'zeros', to_shared_guest: 'zeros', to_shared_vmm: 'zeros',
    access: [
      ...sharedHalf(),
      ...kernelRows('ciphertext', EFAULT, 'plaintext', OOPS),
      ...dmaRows('ciphertext', IO_PAGE_FAULT, 'plaintext'),
      guestRow(GUEST_EXCEPTION),
    ],
    private_sizes: ['4K'],
  },
  // vendor-models.md §3 (Arm CCA): §3.5 RIM; §3.6/§8 contents (zero: DELEGATED invariant; to-shared
  // zeroed by DATA_DESTROY); §3.7: any host access to a Realm-PAS granule is a granule protection
  // fault (oops for the kernel, -EFAULT in a uaccess copy), DMA blocked by the SMMU's GPC; the
  // realm touching a RIPAS EMPTY IPA takes an SEA (no vectors: triple fault). §3.8/§8: 4K
  // granules, RTT block mappings at 2M and 1G (FOLD): no vendor limit on the mapping level.
  cca: {
    measured: true, guest_reads_image: 'image',
    to_private_guest: 'zeros', to_private_vmm: 'zeros', to_shared_guest: 'zeros', to_shared_vmm: 'zeros',
    access: [
      ...sharedHalf(),
      ...kernelRows(EFAULT, EFAULT, 'plaintext', OOPS),
      ...dmaRows(IO_PAGE_FAULT, IO_PAGE_FAULT, 'plaintext'),
      guestRow(GUEST_EXCEPTION),
    ],
    private_sizes: ['4K', '2M', '1G'],
  },
  // vendor-models.md §4 (MKTME): no launch flow; a KeyID change zaps the pages and the next
  // allocation is zeroed for the new KeyID (contents destroyed both ways); every other actor
  // reaches the page through KeyID 0: reads are ciphertext, writes land silently as garbage for
  // the owner (no fault, no poison); DMA likewise. No pending state. Page size: any.
  mktme: {
    measured: false, guest_reads_image: 'n/a (no launch flow)',
    to_private_guest: 'zeros', to_private_vmm: 'ciphertext', to_shared_guest: 'zeros', to_shared_vmm: 'zeros',
    access: [
      ...(['host user', 'host kernel', 'device DMA'] as const).flatMap((actor) => {
        const path = actor === 'host user' ? 'KeyID-0 mapping' : actor === 'host kernel' ? 'KeyID-0 direct map' : 'KeyID-0 bus address';
        return KINDS.map((kind): AccessExpect => (kind === 'read'
          ? { actor, path, kind, outcome: 'ciphertext' }
          : { actor, path, kind, outcome: 'ok', next: 'corrupted' }));
      }),
    ],
    private_sizes: ['4K', '2M', '1G'],
  },
  // vendor-models.md §5 (pKVM): §5.3 pvmfw measures the image; §8 contents are preserved both
  // ways (unshare keeps the page: the guest reads what the VMM had written; share hands it back);
  // §5.4: a host access to a guest-owned page is an abort the hypervisor injects: SIGSEGV
  // SEGV_ACCERR for user space (through the VMM mapping too: it maps the guest's page, pKVM has no
  // separate shared copy), -EFAULT in a uaccess copy or a GUP-based copy, an oops elsewhere; DMA
  // blocked by the IOMMU mirror of the host stage-2. §8: no accept step ("n/a"): the probe's
  // set-up of an unaccepted page is a VMM conversion, which a protected VM refuses (no memory
  // attributes, EINVAL). §5.5 says upstream forces 4K guest PTEs (guest_stage2_force_pte_cb);
  // the plugin's private mapping has no vendor limit (gmem_max_mapping_level 0): a known gap.
  pkvm: {
    measured: true, guest_reads_image: 'image',
    to_private_guest: 'VMM data', to_private_vmm: 'SIGSEGV SEGV_ACCERR', to_shared_guest: 'plaintext', to_shared_vmm: 'plaintext',
    access: [
      ...KINDS.map((kind): AccessExpect => ({ actor: 'host user', path: 'VMM mapping', kind, outcome: 'SIGSEGV SEGV_ACCERR', ...(kind === 'read' ? {} : { next: 'plaintext' }) })),
      { actor: 'host user', path: 'guest_memfd mapping', kind: 'read', outcome: 'no mapping: mmap -1 ENODEV' },
      ...KINDS.map((kind): AccessExpect => ({ actor: 'host kernel', path: 'process_vm_readv/writev of the VMM mapping', kind, outcome: '-1 EFAULT', ...(kind === 'read' ? {} : { next: 'plaintext' }) })),
      ...kernelRows(EFAULT, EFAULT, 'plaintext', OOPS),
      ...KINDS.map((kind): AccessExpect => ({ actor: 'device DMA', path: 'VFIO type1 map of the VMM mapping', kind, outcome: IO_PAGE_FAULT, ...(kind === 'read' ? {} : { next: 'plaintext' }) })),
      ...dmaRows(IO_PAGE_FAULT, IO_PAGE_FAULT, 'plaintext'),
      guestRow('VMM conversion -1 EINVAL'),
    ],
    private_sizes: ['4K', '2M', '1G'],
  },
  // vendor-models.md §6 (SW_PROTECTED): no launch measurement (the image is the guest's own job:
  // cvm_launch only converts); private memory is gmem's, zero on first use, not preserved across
  // a conversion in mainline; nothing enforces anything against the host kernel or DMA: reads
  // see the plaintext and writes land; no accept step (the page just reads as zeros); no
  // vendor limit on the mapping level.
  sw_protected: {
    measured: false, guest_reads_image: 'zeros',
    to_private_guest: 'zeros', to_private_vmm: 'zeros', to_shared_guest: 'zeros', to_shared_vmm: 'zeros',
    access: [
      ...sharedHalf(),
      ...kernelRows('plaintext', 'ok', 'host data', 'ok', { next: 'host data over plaintext' }),
      ...dmaRows('plaintext', 'ok', 'host data', 'host data over plaintext'),
      guestRow('zeros'),
    ],
    private_sizes: ['4K', '2M', '1G'],
  },
};

/**
 * Integration gaps the probes report today, by vendor: while the probe's set-up fails this way the
 * vendor's rows are skipped with the reason; once it stops failing they run.
 */
const KNOWN_GAPS: Readonly<Record<string, { readonly skipped: RegExp; readonly why: string }>> = {};

function matches(actual: string | undefined, m: Match): boolean {
  return typeof m === 'string' ? actual === m : actual !== undefined && m.test(actual);
}

const cache = new Map<string, VendorProbe>();
/**
 * The vendor's probe, run once (inside the first test that asks, so its kernel warnings fail that
 * test); a known integration gap skips the test with its reason.
 */
function probe(vendor: string, ctx: TestContext): VendorProbe {
  let p = cache.get(vendor);
  if (p === undefined) cache.set(vendor, (p = probes.probeVendor(vendor)));
  const gap = KNOWN_GAPS[vendor];
  if (p.skipped !== undefined && gap !== undefined && gap.skipped.test(p.skipped)) ctx.skip(`known gap: ${gap.why}`);
  return p;
}

test('the matrix lists the six vendors of vendor-models.md §8', () => {
  expect(Object.keys(EXPECT).sort()).toEqual([...probes.MATRIX_VENDORS].sort());
});

for (const vendor of probes.MATRIX_VENDORS) {
  const e = EXPECT[vendor]!;
  const why = probes.probeUnavailable(vendor);
  const t = test.skipIf(why !== undefined);
  const suffix = why === undefined ? '' : ` [skipped: ${why}]`;

  describe(vendor, () => {
    t(`launch: populate and measurement${suffix}`, (ctx) => {
      const l = probe(vendor, ctx).launch!;
      expect(l.error).toBeUndefined();
      expect(l.guest_reads).toSatisfy((s: string) => matches(s, e.guest_reads_image));
      if (!e.measured) {
        expect(l.digest).toBeNull();
        return;
      }
      expect(l.flow).toBe(true);
      expect(l.digest).toMatch(/^[0-9a-f]{64,}$/);
      expect([l.stable, l.changes_with_content, l.changes_with_order]).toEqual([true, true, true]);
    });

    t(`conversion shared->private->shared: contents${suffix}`, (ctx) => {
      const c = probe(vendor, ctx).conversion!;
      expect([c.to_private_ret, c.to_shared_ret]).toEqual(['0', '0']);
      const got = [c.to_private_guest_reads, c.to_private_vmm_reads, c.to_shared_guest_reads, c.to_shared_vmm_reads];
      const want = [e.to_private_guest, e.to_private_vmm, e.to_shared_guest, e.to_shared_vmm];
      expect(got.map((g, i) => matches(g, want[i]!) ? 'ok' : `${g} (want ${String(want[i])})`)).toEqual(['ok', 'ok', 'ok', 'ok']);
    });

    for (const actor of ['host user', 'host kernel', 'device DMA', 'guest'] as const) {
      const rows = e.access.filter((a) => a.actor === actor);
      if (rows.length === 0) continue;
      t(`illegal access by ${actor}${suffix}`, (ctx) => {
        const got = probe(vendor, ctx).access.filter((a) => a.actor === actor);
        const key = (a: { path: string; kind: string }): string => `${a.path} | ${a.kind}`;
        expect(got.map(key)).toEqual(rows.map(key));
        const report = rows.map((r) => {
          const g = got.find((a) => key(a) === key(r))!;
          const okOutcome = matches(g.outcome, r.outcome);
          const okNext = r.next === undefined ? g.guest_next_read === undefined : matches(g.guest_next_read, r.next);
          return okOutcome && okNext ? `${key(r)}: ok` : `${key(r)}: got ${g.outcome} / ${g.guest_next_read} want ${String(r.outcome)} / ${String(r.next)}`;
        });
        expect(report).toEqual(rows.map((r) => `${key(r)}: ok`));
      });
    }

    t(`modeled cost of a 4K and a 2M conversion each way${suffix}`, (ctx) => {
      const costs = probe(vendor, ctx).costs;
      expect(costs.map((c) => [c.direction, c.bytes, c.result])).toEqual([
        ['to_private', 4096, '0'], ['to_shared', 4096, '0'], ['to_private', 2 << 20, '0'], ['to_shared', 2 << 20, '0'],
      ]);
      for (const c of costs) {
        expect(c.total_ns).toBeGreaterThan(0);
        expect(c.items.reduce((s, i) => s + i.ns, 0)).toBeCloseTo(c.total_ns, 6);
        expect(c.estimated_ns).toBeCloseTo(c.items.filter((i) => i.provenance === 'estimate').reduce((s, i) => s + i.ns, 0), 6);
      }
      // A 2 MiB conversion touches 512 times the pages: it never costs less than a 4 KiB one.
      expect(costs[2]!.total_ns).toBeGreaterThan(costs[0]!.total_ns);
      expect(costs[3]!.total_ns).toBeGreaterThan(costs[1]!.total_ns);
    });

    t(`page sizes${suffix}`, (ctx) => {
      expect(probe(vendor, ctx).page_sizes?.private_sizes).toEqual(e.private_sizes);
    });
  });
}
