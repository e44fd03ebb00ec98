/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small JSON parser and output buffer for the kernel oracle (no libraries).
 *
 * Values keep the line and column where they start, so that every replayer error can name them.
 * Numbers keep their source text: the oracle converts them to exact 64-bit integers itself.
 */
#ifndef COCOSIM_ORACLE_JSON_H
#define COCOSIM_ORACLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype t;
	int line, col;		/* 1-based position of the value's first character */
	bool b;			/* J_BOOL */
	char *s;		/* J_STR: decoded bytes (NUL-terminated); J_NUM: source text */
	size_t slen;
	size_t n;		/* J_ARR / J_OBJ: number of items / members */
	struct jval **items;	/* J_ARR items, J_OBJ member values */
	struct jval **keys;	/* J_OBJ member keys (J_STR) */
	bool *used;		/* J_OBJ: member consumed by the replayer */
};

/* Parse one complete JSON text (a trace line); on a syntax error, calls the error hook. */
struct jval *json_parse(const char *text, size_t len, int line);

/* Member of an object by key, or NULL. */
struct jval *json_get(const struct jval *obj, const char *key);

/* Called on a syntax error with a formatted message; must not return. */
extern void (*json_error)(int line, int col, const char *msg);

/* Growable output buffer. */
struct sb {
	char *p;
	size_t n, cap;
};

void sb_putn(struct sb *b, const char *s, size_t n);
void sb_puts(struct sb *b, const char *s);
void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_jstr(struct sb *b, const char *s, size_t n);	/* a JSON string literal */
void sb_u64(struct sb *b, uint64_t v);			/* number, or "0x.." beyond 2^53-1 */
void sb_s64(struct sb *b, int64_t v);
void sb_reset(struct sb *b);
const char *sb_str(struct sb *b);

#endif
