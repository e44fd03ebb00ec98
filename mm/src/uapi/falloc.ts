/**
 * fallocate(2) modes: include/uapi/linux/falloc.h, and FALLOC_FL_MODE_MASK from
 * include/linux/falloc.h (Linux 6.18).
 */

/** Allocate the range (no bit set). */
export const FALLOC_FL_ALLOCATE_RANGE = 0x00;
/** Do not change i_size. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
/** Deallocate the range (needs FALLOC_FL_KEEP_SIZE). */
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/** Reserved; never accepted. */
export const FALLOC_FL_NO_HIDE_STALE = 0x04;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;
export const FALLOC_FL_UNSHARE_RANGE = 0x40;
/** Write zeroes to the range (new in 6.17). */
export const FALLOC_FL_WRITE_ZEROES = 0x80;

/** The mutually exclusive modes (include/linux/falloc.h). */
export const FALLOC_FL_MODE_MASK =
  FALLOC_FL_ALLOCATE_RANGE |
  FALLOC_FL_PUNCH_HOLE |
  FALLOC_FL_COLLAPSE_RANGE |
  FALLOC_FL_ZERO_RANGE |
  FALLOC_FL_INSERT_RANGE |
  FALLOC_FL_UNSHARE_RANGE |
  FALLOC_FL_WRITE_ZEROES;
