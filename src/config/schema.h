/*
 * Config tables in the PgBouncer manner: one line per key (name, type, where it goes, bounds),
 * and one walker that fills a struct from a YAML mapping and reports what is wrong and where.
 */
#ifndef CANARY_SCHEMA_H
#define CANARY_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_error.h"
#include "config/yamltree.h"
#include "core/error.h"

/* One load in progress: where messages go, and the caller's state for its setters. */
struct loader {
  const char *name;         /* file name for messages */
  struct config_error *err; /* never NULL */
  void *ctx;
};

/* Records the error (the first one only) and returns rc. */
int schema_fail(struct loader *ld, const struct ynode *at, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int schema_fail_at(struct loader *ld, int line, int col, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

enum field_type {
  FIELD_STR,      /* any scalar but null, into char[size]; too long is an error */
  FIELD_IDENT,    /* FIELD_STR limited to [A-Za-z_][A-Za-z0-9_]*: names expressions can use */
  FIELD_INT,      /* plain integer into int, within [min, max] */
  FIELD_I64,      /* plain integer into int64_t, within [min, max] */
  FIELD_NUM,      /* plain number into double, within [min, max] */
  FIELD_BOOL,     /* true or false into bool */
  FIELD_DURATION, /* "15m" into int64_t milliseconds */
  FIELD_NAMES,    /* list of strings into char[max][size] with an int count at count_offset */
  FIELD_MAP,      /* a nested mapping, walked with sub against the same target */
  FIELD_CUSTOM,   /* set(ld, value, target) does it */
};

typedef int (*field_setter)(struct loader *ld, const struct ynode *value, void *target);

struct field {
  const char *key;
  enum field_type type;
  bool required;
  bool ignored;            /* accepted and type-checked, then dropped */
  size_t offset;           /* of the member in the target */
  size_t size;             /* STR, IDENT, NAMES: bytes per string, NUL included */
  size_t max_items;        /* NAMES */
  size_t count_offset;     /* NAMES */
  double min, max;         /* INT, I64, NUM */
  field_setter set;        /* CUSTOM */
  const struct field *sub; /* MAP */
  size_t n_sub;
};

#define SCHEMA_SIZE(T, m) sizeof(((T *)0)->m)
#define F_STR(T, k, m, req)                                                                        \
  {                                                                                                \
    .key = k, .type = FIELD_STR, .required = req, .offset = offsetof(T, m),                        \
    .size = SCHEMA_SIZE(T, m)                                                                      \
  }
#define F_IDENT(T, k, m, req)                                                                      \
  {                                                                                                \
    .key = k, .type = FIELD_IDENT, .required = req, .offset = offsetof(T, m),                      \
    .size = SCHEMA_SIZE(T, m)                                                                      \
  }
#define F_INT(T, k, m, lo, hi, req)                                                                \
  { .key = k, .type = FIELD_INT, .required = req, .offset = offsetof(T, m), .min = lo, .max = hi }
#define F_I64(T, k, m, lo, hi, req)                                                                \
  { .key = k, .type = FIELD_I64, .required = req, .offset = offsetof(T, m), .min = lo, .max = hi }
#define F_NUM(T, k, m, lo, hi, req)                                                                \
  { .key = k, .type = FIELD_NUM, .required = req, .offset = offsetof(T, m), .min = lo, .max = hi }
#define F_BOOL(T, k, m, req)                                                                       \
  { .key = k, .type = FIELD_BOOL, .required = req, .offset = offsetof(T, m) }
#define F_DURATION(T, k, m, req)                                                                   \
  { .key = k, .type = FIELD_DURATION, .required = req, .offset = offsetof(T, m) }
#define F_NAMES(T, k, m, count, req)                                                               \
  {                                                                                                \
    .key = k, .type = FIELD_NAMES, .required = req, .offset = offsetof(T, m),                      \
    .size = SCHEMA_SIZE(T, m[0]), .max_items = SCHEMA_SIZE(T, m) / SCHEMA_SIZE(T, m[0]),           \
    .count_offset = offsetof(T, count)                                                             \
  }
#define F_MAP(k, table, req)                                                                       \
  {                                                                                                \
    .key = k, .type = FIELD_MAP, .required = req, .sub = table,                                    \
    .n_sub = sizeof table / sizeof *table                                                          \
  }
#define F_CUSTOM(k, fn, req)                                                                       \
  { .key = k, .type = FIELD_CUSTOM, .required = req, .set = fn }
/* Accepted, checked to be of type t (FIELD_BOOL, FIELD_STR with size bytes), then ignored. */
#define F_IGNORED(k, t, bytes)                                                                     \
  { .key = k, .type = t, .ignored = true, .size = bytes }

#define SCHEMA_MAX_FIELDS 32

/* What schema_walk found: per table entry, the key and value nodes (NULL when absent). */
struct seen {
  const struct ynode *key;
  const struct ynode *value;
};

/*
 * Fills target from mapping map by the n entries of fields. Unknown keys, duplicate keys, bad
 * values and missing required keys are errors (what names the mapping in messages: "stage").
 * seen, when not NULL, receives n entries. Returns CANARY_OK or the error code.
 */
int schema_walk(struct loader *ld, const struct ynode *map, const char *what,
                const struct field *fields, size_t n, void *target, struct seen *seen);

/* Value converters: each checks the node's type and bounds and reports an error at it. */
int schema_expect(struct loader *ld, const struct ynode *v, enum ynode_kind kind, const char *key);
int schema_str(struct loader *ld, const struct ynode *v, const char *key, char *dst, size_t cap);
int schema_ident(struct loader *ld, const struct ynode *v, const char *key, char *dst, size_t cap);
int schema_num(struct loader *ld, const struct ynode *v, const char *key, double lo, double hi,
               double *out);
int schema_int64(struct loader *ld, const struct ynode *v, const char *key, double lo, double hi,
                 int64_t *out);
int schema_bool(struct loader *ld, const struct ynode *v, const char *key, bool *out);
int schema_duration(struct loader *ld, const struct ynode *v, const char *key, int64_t *out);

/*
 * A scalar that must be one of count names; name_of(i) gives the i-th. *out = its index.
 * what names the kind of value in messages ("check", "action").
 */
int schema_choice(struct loader *ld, const struct ynode *v, const char *what,
                  const char *(*name_of)(int), int count, int *out);

/* Whether s is an identifier: [A-Za-z_][A-Za-z0-9_]*. */
bool schema_is_ident(const char *s);

/* A duration as config_parse_duration (config.h) reads it: true and *ms, or false. */
bool schema_parse_duration(const char *s, int64_t *ms);

#endif
