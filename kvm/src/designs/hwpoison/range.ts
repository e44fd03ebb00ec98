/**
 * kernel/range.c (Linux 5.12, as RFCv2 13/13 uses it for kvm->shared_ranges): an array of
 * [start, end) ranges with a fixed capacity. Here the ranges are gfns.
 */

/** struct range: [start, end); end 0 is an empty slot. */
export interface Range {
  start: number;
  end: number;
}

/** add_range(): append [start, end) if there is a free slot; the new count. */
export function add_range(range: Range[], az: number, nr_range: number, start: number, end: number): number {
  if (start >= end) return nr_range;
  /* Out of slots: */
  if (nr_range >= az) return nr_range;
  range[nr_range] = { start, end };
  return nr_range + 1;
}

/**
 * add_range_with_merge(): [start, end) absorbs every range it overlaps or touches (each is
 * removed, the array closing up behind it), then the union is appended with add_range(). Out of
 * slots, a range that merged with none is dropped: the caller sees the count unchanged.
 */
export function add_range_with_merge(range: Range[], az: number, nr_range: number, start: number, end: number): number {
  if (start >= end) return nr_range;
  for (let i = 0; i < nr_range; i++) {
    const r = range[i]!;
    if (!r.end) continue;
    const common_start = Math.max(r.start, start);
    const common_end = Math.min(r.end, end);
    if (common_start > common_end) continue;
    /* new start/end, will add it back at last */
    start = Math.min(r.start, start);
    end = Math.max(r.end, end);
    range.splice(i, 1);
    range.length = nr_range - 1;
    nr_range--;
    i--;
  }
  return add_range(range, az, nr_range, start, end);
}

/** Whether gfn lies in one of the first nr_range ranges (the fault path's scan under mmu_lock). */
export function range_contains(range: readonly Range[], nr_range: number, gfn: number): boolean {
  for (let i = 0; i < nr_range; i++) {
    const r = range[i]!;
    if (gfn >= r.start && gfn < r.end) return true;
  }
  return false;
}
