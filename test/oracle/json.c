// SPDX-License-Identifier: GPL-2.0-only
/*
 * JSON parser and output buffer of the kernel oracle; see json.h.
 */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void (*json_error)(int line, int col, const char *msg);

#define MAX_DEPTH 64

struct parser {
	const char *s;
	size_t len, pos;
	int line;
	int depth;
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "cocosim-oracle: out of memory\n");
		exit(2);
	}
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "cocosim-oracle: out of memory\n");
		exit(2);
	}
	return p;
}

static void __attribute__((noreturn, format(printf, 3, 4)))
perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_error(p->line, (int)pos + 1, msg);
	abort();	/* json_error does not return */
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			break;
		p->pos++;
	}
}

static struct jval *newval(struct parser *p, enum jtype t, size_t pos)
{
	struct jval *v = xmalloc(sizeof(*v));

	memset(v, 0, sizeof(*v));
	v->t = t;
	v->line = p->line;
	v->col = (int)pos + 1;
	return v;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned parse_u4(struct parser *p)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		int h = p->pos < p->len ? hexval(p->s[p->pos]) : -1;

		if (h < 0)
			perr(p, p->pos, "expected 4 hex digits after \\u");
		v = v << 4 | (unsigned)h;
		p->pos++;
	}
	return v;
}

static struct jval *parse_string(struct parser *p)
{
	size_t start = p->pos;
	struct jval *v = newval(p, J_STR, start);
	size_t cap = 16, n = 0;
	char *out = xmalloc(cap);

	p->pos++;	/* opening quote */
	for (;;) {
		unsigned char c;

		if (p->pos >= p->len)
			perr(p, start, "unterminated string");
		c = (unsigned char)p->s[p->pos];
		if (n + 5 > cap) {
			cap *= 2;
			out = xrealloc(out, cap);
		}
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			perr(p, p->pos, "control character in string");
		if (c != '\\') {
			out[n++] = (char)c;
			p->pos++;
			continue;
		}
		p->pos++;
		if (p->pos >= p->len)
			perr(p, start, "unterminated string");
		c = (unsigned char)p->s[p->pos++];
		switch (c) {
		case '"': out[n++] = '"'; break;
		case '\\': out[n++] = '\\'; break;
		case '/': out[n++] = '/'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u': {
			size_t upos = p->pos - 2;
			unsigned cp = parse_u4(p);

			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;

				if (p->pos + 1 >= p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
					perr(p, upos, "unpaired surrogate in \\u escape");
				p->pos += 2;
				lo = parse_u4(p);
				if (lo < 0xdc00 || lo > 0xdfff)
					perr(p, upos, "unpaired surrogate in \\u escape");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				perr(p, upos, "unpaired surrogate in \\u escape");
			}
			if (cp < 0x80) {
				out[n++] = (char)cp;
			} else if (cp < 0x800) {
				out[n++] = (char)(0xc0 | cp >> 6);
				out[n++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				out[n++] = (char)(0xe0 | cp >> 12);
				out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[n++] = (char)(0xf0 | cp >> 18);
				out[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			perr(p, p->pos - 2, "invalid escape '\\%c' in string", c >= 0x20 && c < 0x7f ? c : '?');
		}
	}
	out[n] = 0;
	v->s = out;
	v->slen = n;
	return v;
}

static bool isdigit_(char c)
{
	return c >= '0' && c <= '9';
}

static struct jval *parse_number(struct parser *p)
{
	size_t start = p->pos;
	struct jval *v = newval(p, J_NUM, start);

	if (p->s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len || !isdigit_(p->s[p->pos]))
		perr(p, p->pos, "expected a digit");
	if (p->s[p->pos] == '0') {
		p->pos++;
		if (p->pos < p->len && isdigit_(p->s[p->pos]))
			perr(p, p->pos - 1, "leading zero in number");
	} else {
		while (p->pos < p->len && isdigit_(p->s[p->pos]))
			p->pos++;
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if (p->pos >= p->len || !isdigit_(p->s[p->pos]))
			perr(p, p->pos, "expected a digit after '.'");
		while (p->pos < p->len && isdigit_(p->s[p->pos]))
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || !isdigit_(p->s[p->pos]))
			perr(p, p->pos, "expected a digit in exponent");
		while (p->pos < p->len && isdigit_(p->s[p->pos]))
			p->pos++;
	}
	v->slen = p->pos - start;
	v->s = xmalloc(v->slen + 1);
	memcpy(v->s, p->s + start, v->slen);
	v->s[v->slen] = 0;
	return v;
}

static struct jval *parse_value(struct parser *p);

static void push(struct jval *v, struct jval *key, struct jval *item, size_t *cap)
{
	if (v->n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		v->items = xrealloc(v->items, *cap * sizeof(*v->items));
		if (v->t == J_OBJ)
			v->keys = xrealloc(v->keys, *cap * sizeof(*v->keys));
	}
	if (v->t == J_OBJ)
		v->keys[v->n] = key;
	v->items[v->n++] = item;
}

static struct jval *parse_object(struct parser *p)
{
	struct jval *v = newval(p, J_OBJ, p->pos);
	size_t cap = 0;

	if (++p->depth > MAX_DEPTH)
		perr(p, p->pos, "nesting too deep");
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		goto done;
	}
	for (;;) {
		struct jval *key, *item;

		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '"')
			perr(p, p->pos, "expected a string key");
		key = parse_string(p);
		for (size_t i = 0; i < v->n; i++)
			if (v->keys[i]->slen == key->slen && !memcmp(v->keys[i]->s, key->s, key->slen))
				perr(p, (size_t)key->col - 1, "duplicate key \"%s\"", key->s);
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ':')
			perr(p, p->pos, "expected ':'");
		p->pos++;
		item = parse_value(p);
		push(v, key, item, &cap);
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == '}') {
			p->pos++;
			break;
		}
		perr(p, p->pos, "expected ',' or '}'");
	}
done:
	v->used = xmalloc(v->n * sizeof(*v->used));
	memset(v->used, 0, v->n * sizeof(*v->used));
	p->depth--;
	return v;
}

static struct jval *parse_array(struct parser *p)
{
	struct jval *v = newval(p, J_ARR, p->pos);
	size_t cap = 0;

	if (++p->depth > MAX_DEPTH)
		perr(p, p->pos, "nesting too deep");
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']') {
		p->pos++;
		p->depth--;
		return v;
	}
	for (;;) {
		push(v, NULL, parse_value(p), &cap);
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == ']') {
			p->pos++;
			break;
		}
		perr(p, p->pos, "expected ',' or ']'");
	}
	p->depth--;
	return v;
}

static bool match_word(struct parser *p, const char *w)
{
	size_t n = strlen(w);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n))
		return false;
	p->pos += n;
	return true;
}

static struct jval *parse_value(struct parser *p)
{
	struct jval *v;
	size_t start;

	skip_ws(p);
	start = p->pos;
	if (p->pos >= p->len)
		perr(p, p->pos, "expected a value, found end of line");
	switch (p->s[p->pos]) {
	case '{':
		return parse_object(p);
	case '[':
		return parse_array(p);
	case '"':
		return parse_string(p);
	case 't':
		if (!match_word(p, "true"))
			break;
		v = newval(p, J_BOOL, start);
		v->b = true;
		return v;
	case 'f':
		if (!match_word(p, "false"))
			break;
		return newval(p, J_BOOL, start);
	case 'n':
		if (!match_word(p, "null"))
			break;
		return newval(p, J_NULL, start);
	default:
		if (p->s[p->pos] == '-' || isdigit_(p->s[p->pos]))
			return parse_number(p);
	}
	perr(p, start, "expected a value");
}

struct jval *json_parse(const char *text, size_t len, int line)
{
	struct parser p = { .s = text, .len = len, .line = line };
	struct jval *v = parse_value(&p);

	skip_ws(&p);
	if (p.pos < p.len)
		perr(&p, p.pos, "unexpected characters after the value");
	return v;
}

struct jval *json_get(const struct jval *obj, const char *key)
{
	size_t klen = strlen(key);

	if (!obj || obj->t != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (obj->keys[i]->slen == klen && !memcmp(obj->keys[i]->s, key, klen)) {
			obj->used[i] = true;
			return obj->items[i];
		}
	return NULL;
}

void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		while (b->n + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

void sb_puts(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

void sb_printf(struct sb *b, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(buf)) {
		sb_putn(b, buf, (size_t)n);
	} else {
		char *big = xmalloc((size_t)n + 1);

		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		sb_putn(b, big, (size_t)n);
		free(big);
	}
}

void sb_jstr(struct sb *b, const char *s, size_t n)
{
	sb_putn(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			sb_putn(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			sb_printf(b, "\\u%04x", c);
		} else {
			sb_putn(b, (const char *)&c, 1);
		}
	}
	sb_putn(b, "\"", 1);
}

#define MAX_SAFE 0x1fffffffffffffULL	/* 2^53 - 1 */

void sb_u64(struct sb *b, uint64_t v)
{
	if (v <= MAX_SAFE)
		sb_printf(b, "%llu", (unsigned long long)v);
	else
		sb_printf(b, "\"0x%llx\"", (unsigned long long)v);
}

void sb_s64(struct sb *b, int64_t v)
{
	if (v >= -(int64_t)MAX_SAFE && v <= (int64_t)MAX_SAFE)
		sb_printf(b, "%lld", (long long)v);
	else if (v < 0)
		sb_printf(b, "\"%lld\"", (long long)v);
	else
		sb_printf(b, "\"0x%llx\"", (unsigned long long)v);
}

void sb_reset(struct sb *b)
{
	b->n = 0;
	if (b->p)
		b->p[0] = 0;
}

const char *sb_str(struct sb *b)
{
	return b->p ? b->p : "";
}
