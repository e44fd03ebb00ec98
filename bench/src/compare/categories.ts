/**
 * Cost entry categories: what `cocosim compare` breaks a run's modeled cost into. The cost table
 * (core/src/cost_table.ts, vendors' define()) names entries, not categories, so the comparison
 * keeps the mapping: the built-in entries by name, vendor firmware entries by their usual
 * prefixes (SEAMCALL leaf functions, RMPUPDATE/PSMASH, RMI/RSI calls...), and anything else a
 * package registers with registerCostCategory() (from a module bench/src/scenarios/index.ts
 * imports, so that `--jobs N` workers use it too). Unknown entries count as "other".
 */
export type CostCategory = 'firmware' | 'zap' | 'tlb' | 'zero' | 'exit' | 'other';

/** The categories in report order, with the label tables and charts show. */
export const COST_CATEGORIES: readonly { readonly id: CostCategory; readonly label: string; readonly short: string }[] = [
  { id: 'firmware', label: 'firmware calls', short: 'firmware' },
  { id: 'zap', label: 'zaps', short: 'zaps' },
  { id: 'tlb', label: 'TLB shootdowns', short: 'TLB' },
  { id: 'zero', label: 'pages zeroed', short: 'zeroed' },
  { id: 'exit', label: 'exits', short: 'exits' },
  { id: 'other', label: 'other', short: 'other' },
];

const byName = new Map<string, CostCategory>([
  ['page_zero_4k', 'zero'],
  ['page_zero_2m', 'zero'],
  ['page_zero_1g', 'zero'],
  ['pte_zap', 'zap'],
  ['spte_zap', 'zap'],
  ['tlb_flush_local', 'tlb'],
  ['tlb_shootdown_ipi', 'tlb'],
  ['kvm_flush_remote_tlbs_per_vcpu', 'tlb'],
  ['iotlb_flush', 'tlb'],
  ['kvm_exit_roundtrip', 'exit'],
  ['kvm_userspace_exit_roundtrip', 'exit'],
]);

/** Name patterns for entries nobody registered: firmware calls of each vendor, then generic words. */
const byPattern: readonly (readonly [RegExp, CostCategory])[] = [
  [/^(seamcall|tdcall|tdh_|tdg_|rmpupdate|rmpadjust|psmash|pvalidate|snp_|sev_|psp_|rmi_|rsi_|smc_|hvc_|firmware_)/, 'firmware'],
  [/(^|_)zap(_|$)/, 'zap'],
  [/(^|_)(tlb|iotlb)(_|$)|shootdown/, 'tlb'],
  [/^page_zero_/, 'zero'],
  [/(^|_)exit(_|$)/, 'exit'],
];

/** Put cost entry `name` in `category` (a vendor's firmware call, a design's own zap...). */
export function registerCostCategory(name: string, category: CostCategory): void {
  byName.set(name, category);
}

/** The category of cost entry `name`. */
export function costCategory(name: string): CostCategory {
  const c = byName.get(name);
  if (c !== undefined) return c;
  for (const [re, cat] of byPattern) if (re.test(name)) return cat;
  return 'other';
}
