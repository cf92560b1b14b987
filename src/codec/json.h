/* A small, strict RFC 8259 JSON parser into an arena-backed DOM, and a growable-buffer writer. */
#ifndef CANARY_JSON_H
#define CANARY_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define JSON_MAX_DEPTH 64 /* arrays and objects nested deeper than this are rejected */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_member;

/* One parsed value. Everything it points to lives in the json_doc that parsed it. */
struct json_value {
  enum json_type type;
  int line, column;         /* 1-based position of the value's first character (column in bytes) */
  bool b;                   /* JSON_BOOL */
  double num;               /* JSON_NUMBER: the value, correctly rounded */
  bool is_int;              /* JSON_NUMBER written without fraction or exponent that fits int64 */
  int64_t i;                /* JSON_NUMBER when is_int: the exact value */
  const char *str;          /* JSON_STRING: unescaped UTF-8, NUL-terminated (may contain \u0000) */
  size_t len;               /* JSON_STRING: bytes in str, without the terminating NUL */
  struct json_value *items; /* JSON_ARRAY */
  size_t n_items;
  struct json_member *members; /* JSON_OBJECT, in document order, keys unique */
  size_t n_members;
};

struct json_member {
  const char *key; /* unescaped, NUL-terminated */
  size_t key_len;  /* bytes in key (differs from strlen only if the key contains \u0000) */
  struct json_value value;
};

/* Where and why a parse failed. line and column are 1-based; column counts bytes. */
struct json_error {
  int line, column;
  char message[128];
};

/*
 * Owns the memory of parsed documents. Caller-allocated: json_doc_init() before use,
 * json_doc_free() after. The members are private to json.c.
 */
struct json_arena_chunk;
struct json_pending;
struct json_doc {
  struct json_arena_chunk *chunks; /* newest first */
  struct json_pending *stack;      /* members of the open arrays and objects */
  size_t stack_n, stack_cap;
  uint32_t *slots; /* hash table for duplicate-key checks of large objects */
  size_t slots_cap;
};

void json_doc_init(struct json_doc *doc);
/* Forget every value parsed with doc but keep its memory for the next parse (JSON Lines). */
void json_doc_reset(struct json_doc *doc);
void json_doc_free(struct json_doc *doc);
/* Bytes of memory doc holds now (for statistics and tests). */
size_t json_doc_memory(const struct json_doc *doc);

/*
 * Parse exactly one JSON text of len bytes (no NUL needed; trailing whitespace allowed).
 * Returns CANARY_OK and sets *root (owned by doc, valid until json_doc_reset/free), or
 * CANARY_EPARSE / CANARY_ENOMEM with the position and reason in *err (err may be NULL).
 * Values from earlier parses with the same doc stay valid until the doc is reset.
 */
int json_parse(struct json_doc *doc, const char *text, size_t len, const struct json_value **root,
               struct json_error *err) CANARY_MUSTCHECK;

/* The value of member key in obj; NULL if absent or obj is not an object. */
const struct json_value *json_get(const struct json_value *obj, const char *key);

/* "null", "boolean", "number", "string", "array", "object". */
const char *json_type_name(enum json_type t);

/*
 * A printable excerpt of the len bytes at s for error messages: control characters and invalid
 * UTF-8 shown as '?', cut at a character boundary with "..." to fit dst_len (incl. the NUL).
 */
void json_excerpt(const char *s, size_t len, char *dst, size_t dst_len);

/*
 * What is wrong with a parsed value, for the readers of stored documents: "line:column: field:
 * message" into why (canary_why: why may be NULL; "1:1" when at is NULL, no "field: " when field
 * is NULL). Returns CANARY_EINVALID.
 */
int json_why_at(char *why, size_t len, const struct json_value *at, const char *field,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * An output buffer that grows as needed. data is always NUL-terminated once anything has been
 * written. On allocation failure oom is set and further writes are dropped: check oom once at the
 * end instead of after every call. Zero-initialise or jbuf_init(); jbuf_free() releases.
 */
struct jbuf {
  char *data;
  size_t len, cap;
  bool oom;
};

void jbuf_init(struct jbuf *b);
/* Empty the buffer (and clear oom) but keep its memory. */
void jbuf_reset(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_putc(struct jbuf *b, char c);
void jbuf_puts(struct jbuf *b, const char *s);
void jbuf_write(struct jbuf *b, const void *data, size_t n);
void jbuf_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jbuf_vprintf(struct jbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * Write s as a quoted JSON string: '"', '\\' and control characters escaped (\n, \t, ...,
 * \u001f), invalid UTF-8 replaced by U+FFFD so the output always parses. NULL writes null.
 */
void jbuf_string(struct jbuf *b, const char *s);
/* The same for n bytes that may contain NUL (written as \u0000). */
void jbuf_string_n(struct jbuf *b, const char *s, size_t n);
/*
 * Write v deterministically: integers with |v| < 2^53 without a decimal point ("-0" for negative
 * zero), otherwise the shortest of %.15g, %.16g, %.17g that parses back to the same double, with
 * the exponent trimmed ("1e21", "1e-7"). NaN and infinities are not JSON: null.
 */
void jbuf_number(struct jbuf *b, double v);
void jbuf_int(struct jbuf *b, int64_t v);
void jbuf_bool(struct jbuf *b, bool v);
void jbuf_null(struct jbuf *b);

#endif
