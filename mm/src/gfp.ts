/**
 * GFP flags (include/linux/gfp_types.h) and the zone they select (include/linux/gfp.h), Linux 6.18.
 *
 * Bit values are those of the 6.18 `___GFP_*_BIT` enum for x86-64 with CONFIG_SLAB_OBJ_EXT
 * (memcg) and without CONFIG_KASAN_HW_TAGS or CONFIG_LOCKDEP, so __GFP_SKIP_ZERO,
 * __GFP_SKIP_KASAN and __GFP_NOLOCKDEP are 0 as they are in that build.
 *
 * What the simulated allocator does with them: the zone modifiers and __GFP_THISNODE choose the
 * zonelist; __GFP_ZERO (and init_on_alloc) asks for zeroed pages; __GFP_COMP makes a compound
 * page; __GFP_NOWARN silences the failure report and the order WARN; __GFP_NOFAIL may not fail.
 * The reclaim modifiers are accepted and recorded but there is no reclaim, so they do not change
 * the outcome.
 */
import { BUG } from '@cocosim/core';
import { ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL } from './page_store.js';

/** gfp_t: an unsigned int of the flags below. */
export type gfp_t = number;

/* Plain integer GFP bitmasks. Do not use this directly. */
export const ___GFP_DMA = 0x01;
export const ___GFP_HIGHMEM = 0x02;
export const ___GFP_DMA32 = 0x04;
export const ___GFP_MOVABLE = 0x08;
export const ___GFP_RECLAIMABLE = 0x10;
export const ___GFP_HIGH = 0x20;
export const ___GFP_IO = 0x40;
export const ___GFP_FS = 0x80;
export const ___GFP_ZERO = 0x100;
/* 0x200u unused */
export const ___GFP_DIRECT_RECLAIM = 0x400;
export const ___GFP_KSWAPD_RECLAIM = 0x800;
export const ___GFP_WRITE = 0x1000;
export const ___GFP_NOWARN = 0x2000;
export const ___GFP_RETRY_MAYFAIL = 0x4000;
export const ___GFP_NOFAIL = 0x8000;
export const ___GFP_NORETRY = 0x10000;
export const ___GFP_MEMALLOC = 0x20000;
export const ___GFP_COMP = 0x40000;
export const ___GFP_NOMEMALLOC = 0x80000;
export const ___GFP_HARDWALL = 0x100000;
export const ___GFP_THISNODE = 0x200000;
export const ___GFP_ACCOUNT = 0x400000;
export const ___GFP_ZEROTAGS = 0x800000;
export const ___GFP_NO_OBJ_EXT = 0x1000000;

/* Physical address zone modifiers (see linux/mmzone.h - low four bits) */
export const __GFP_DMA = ___GFP_DMA;
export const __GFP_HIGHMEM = ___GFP_HIGHMEM;
export const __GFP_DMA32 = ___GFP_DMA32;
export const __GFP_MOVABLE = ___GFP_MOVABLE; /* ZONE_MOVABLE allowed */
export const GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE;

/* Page mobility and placement hints */
export const __GFP_RECLAIMABLE = ___GFP_RECLAIMABLE;
export const __GFP_WRITE = ___GFP_WRITE;
export const __GFP_HARDWALL = ___GFP_HARDWALL;
/** Forces the allocation to be satisfied from the requested node with no fallbacks. */
export const __GFP_THISNODE = ___GFP_THISNODE;
export const __GFP_ACCOUNT = ___GFP_ACCOUNT;
export const __GFP_NO_OBJ_EXT = ___GFP_NO_OBJ_EXT;

/* Watermark modifiers -- controls access to emergency reserves */
export const __GFP_HIGH = ___GFP_HIGH;
export const __GFP_MEMALLOC = ___GFP_MEMALLOC;
export const __GFP_NOMEMALLOC = ___GFP_NOMEMALLOC;

/* Reclaim modifiers */
export const __GFP_IO = ___GFP_IO;
export const __GFP_FS = ___GFP_FS;
export const __GFP_DIRECT_RECLAIM = ___GFP_DIRECT_RECLAIM; /* Caller can reclaim */
export const __GFP_KSWAPD_RECLAIM = ___GFP_KSWAPD_RECLAIM; /* kswapd can wake */
export const __GFP_RECLAIM = ___GFP_DIRECT_RECLAIM | ___GFP_KSWAPD_RECLAIM;
export const __GFP_RETRY_MAYFAIL = ___GFP_RETRY_MAYFAIL;
export const __GFP_NOFAIL = ___GFP_NOFAIL;
export const __GFP_NORETRY = ___GFP_NORETRY;

/* Action modifiers */
/** Suppresses allocation failure reports. */
export const __GFP_NOWARN = ___GFP_NOWARN;
/** Address compound page metadata. */
export const __GFP_COMP = ___GFP_COMP;
/** Returns a zeroed page on success. */
export const __GFP_ZERO = ___GFP_ZERO;
export const __GFP_ZEROTAGS = ___GFP_ZEROTAGS;
export const __GFP_SKIP_ZERO = 0;
export const __GFP_SKIP_KASAN = 0;
export const __GFP_NOLOCKDEP = 0;

/* Room for N __GFP_FOO bits */
export const __GFP_BITS_SHIFT = 25;
export const __GFP_BITS_MASK = 2 ** __GFP_BITS_SHIFT - 1;

/* Useful GFP flag combinations */
export const GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
export const GFP_NOIO = __GFP_RECLAIM;
export const GFP_NOFS = __GFP_RECLAIM | __GFP_IO;
export const GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
export const GFP_DMA = __GFP_DMA;
export const GFP_DMA32 = __GFP_DMA32;
export const GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
export const GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE | __GFP_SKIP_KASAN;
export const GFP_TRANSHUGE_LIGHT = (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM;
export const GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM;

/** The names %pGg prints, most significant combinations first (include/trace/events/mmflags.h). */
const GFP_NAMES: readonly (readonly [number, string])[] = [
  [GFP_TRANSHUGE, 'GFP_TRANSHUGE'],
  [GFP_TRANSHUGE_LIGHT, 'GFP_TRANSHUGE_LIGHT'],
  [GFP_HIGHUSER_MOVABLE, 'GFP_HIGHUSER_MOVABLE'],
  [GFP_HIGHUSER, 'GFP_HIGHUSER'],
  [GFP_USER, 'GFP_USER'],
  [GFP_KERNEL_ACCOUNT, 'GFP_KERNEL_ACCOUNT'],
  [GFP_KERNEL, 'GFP_KERNEL'],
  [GFP_NOFS, 'GFP_NOFS'],
  [GFP_ATOMIC, 'GFP_ATOMIC'],
  [GFP_NOIO, 'GFP_NOIO'],
  [GFP_NOWAIT, 'GFP_NOWAIT'],
  [GFP_DMA, 'GFP_DMA'],
  [__GFP_HIGHMEM, '__GFP_HIGHMEM'],
  [GFP_DMA32, 'GFP_DMA32'],
  [__GFP_HIGH, '__GFP_HIGH'],
  [__GFP_IO, '__GFP_IO'],
  [__GFP_FS, '__GFP_FS'],
  [__GFP_NOWARN, '__GFP_NOWARN'],
  [__GFP_RETRY_MAYFAIL, '__GFP_RETRY_MAYFAIL'],
  [__GFP_NOFAIL, '__GFP_NOFAIL'],
  [__GFP_NORETRY, '__GFP_NORETRY'],
  [__GFP_COMP, '__GFP_COMP'],
  [__GFP_ZERO, '__GFP_ZERO'],
  [__GFP_NOMEMALLOC, '__GFP_NOMEMALLOC'],
  [__GFP_MEMALLOC, '__GFP_MEMALLOC'],
  [__GFP_HARDWALL, '__GFP_HARDWALL'],
  [__GFP_THISNODE, '__GFP_THISNODE'],
  [__GFP_RECLAIMABLE, '__GFP_RECLAIMABLE'],
  [__GFP_MOVABLE, '__GFP_MOVABLE'],
  [__GFP_ACCOUNT, '__GFP_ACCOUNT'],
  [__GFP_WRITE, '__GFP_WRITE'],
  [__GFP_RECLAIM, '__GFP_RECLAIM'],
  [__GFP_DIRECT_RECLAIM, '__GFP_DIRECT_RECLAIM'],
  [__GFP_KSWAPD_RECLAIM, '__GFP_KSWAPD_RECLAIM'],
  [__GFP_ZEROTAGS, '__GFP_ZEROTAGS'],
  [__GFP_NO_OBJ_EXT, '__GFP_NO_OBJ_EXT'],
];

/** The mask as warn_alloc() prints it: `0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)`. */
export function format_gfp(gfp: gfp_t): string {
  const names: string[] = [];
  let rest = gfp >>> 0;
  for (const [mask, name] of GFP_NAMES) {
    if (mask !== 0 && (rest & mask) === mask) {
      names.push(name);
      rest = (rest & ~mask) >>> 0;
    }
  }
  if (rest !== 0) names.push(`0x${rest.toString(16)}`);
  return `0x${(gfp >>> 0).toString(16)}(${names.join('|')})`;
}

/*
 * GFP_ZONE_TABLE and GFP_ZONE_BAD (include/linux/gfp.h), indexed by the four zone bits:
 *
 *       bit       result
 *       =================
 *       0x0    => NORMAL
 *       0x1    => DMA or NORMAL
 *       0x2    => HIGHMEM or NORMAL
 *       0x3    => BAD (DMA+HIGHMEM)
 *       0x4    => DMA32 or NORMAL
 *       0x5    => BAD (DMA+DMA32)
 *       0x6    => BAD (HIGHMEM+DMA32)
 *       0x7    => BAD (HIGHMEM+DMA32+DMA)
 *       0x8    => NORMAL (MOVABLE+0)
 *       0x9    => DMA or NORMAL (MOVABLE+DMA)
 *       0xa    => MOVABLE (Movable is valid only if HIGHMEM is set too)
 *       0xb    => BAD (MOVABLE+HIGHMEM+DMA)
 *       0xc    => DMA32 or NORMAL (MOVABLE+DMA32)
 *       0xd    => BAD (MOVABLE+DMA32+DMA)
 *       0xe    => BAD (MOVABLE+DMA32+HIGHMEM)
 *       0xf    => BAD (MOVABLE+DMA32+DMA+HIGHMEM)
 *
 * x86-64 has no ZONE_HIGHMEM, so OPT_ZONE_HIGHMEM is ZONE_NORMAL; -1 marks the BAD entries.
 */
const GFP_ZONE_TABLE: readonly number[] = [
  ZONE_NORMAL, ZONE_DMA, ZONE_NORMAL, -1, ZONE_DMA32, -1, -1, -1,
  ZONE_NORMAL, ZONE_DMA, ZONE_MOVABLE, -1, ZONE_DMA32, -1, -1, -1,
];

/**
 * gfp_zone(): the highest zone the allocation may use. __GFP_MOVABLE alone stays in ZONE_NORMAL:
 * ZONE_MOVABLE needs __GFP_HIGHMEM | __GFP_MOVABLE, as in GFP_HIGHUSER_MOVABLE. An impossible
 * combination is VM_BUG_ON() in the kernel.
 */
export function gfp_zone(flags: gfp_t): number {
  const z = GFP_ZONE_TABLE[flags & GFP_ZONEMASK];
  if (z < 0) BUG(`VM_BUG_ON: GFP_ZONE_BAD zone modifiers in ${format_gfp(flags)}`);
  return z;
}

/** gfpflags_allow_blocking(). */
export function gfpflags_allow_blocking(gfp: gfp_t): boolean {
  return (gfp & __GFP_DIRECT_RECLAIM) !== 0;
}

/** ZONELIST_FALLBACK / ZONELIST_NOFALLBACK (include/linux/mmzone.h). */
export const ZONELIST_FALLBACK = 0;
export const ZONELIST_NOFALLBACK = 1;

/** gfp_zonelist(): __GFP_THISNODE uses the node's own zones only. */
export function gfp_zonelist(flags: gfp_t): number {
  return flags & __GFP_THISNODE ? ZONELIST_NOFALLBACK : ZONELIST_FALLBACK;
}
