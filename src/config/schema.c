/* The table walker and the value converters: every config message with a position starts here. */
#include "config/schema.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_MAX 60 /* longest piece of a bad value quoted back in a message */

int schema_fail_at(struct loader *ld, int line, int col, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  config_error_vset(ld->err, ld->name, line, col, rc, fmt, ap);
  va_end(ap);
  return rc;
}

int schema_fail(struct loader *ld, const struct ynode *at, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  config_error_vset(ld->err, ld->name, at->line, at->col, rc, fmt, ap);
  va_end(ap);
  return rc;
}

/* How a value is shown back in a message: 'text' for scalars, "a list" otherwise. */
static const char *shown(const struct ynode *v, char *buf, size_t len) {
  if (v->kind != YNODE_SCALAR || yamltree_is_null(v))
    return yamltree_kind_name(v);
  const char *dots = strlen(v->str) > ECHO_MAX ? "..." : "";
  snprintf(buf, len, "%s'%.*s%s'", v->plain ? "" : "quoted string ", ECHO_MAX, v->str, dots);
  return buf;
}

static int wrong_type(struct loader *ld, const struct ynode *v, const char *want, const char *key) {
  char buf[ECHO_MAX + 32];
  return schema_fail(ld, v, CANARY_EINVALID, "expected %s for '%s', got %s", want, key,
                     shown(v, buf, sizeof buf));
}

int schema_expect(struct loader *ld, const struct ynode *v, enum ynode_kind kind, const char *key) {
  if (v->kind == kind)
    return CANARY_OK;
  static const char *const want[] = {
      [YNODE_SCALAR] = "a string", [YNODE_SEQ] = "a list", [YNODE_MAP] = "a mapping"};
  return wrong_type(ld, v, want[kind], key);
}

int schema_str(struct loader *ld, const struct ynode *v, const char *key, char *dst, size_t cap) {
  if (v->kind != YNODE_SCALAR || yamltree_is_null(v))
    return wrong_type(ld, v, "a string", key);
  size_t len = strlen(v->str);
  if (len >= cap)
    return schema_fail(ld, v, CANARY_EINVALID, "'%s' is too long (%zu characters, at most %zu)",
                       key, len, cap - 1);
  memcpy(dst, v->str, len + 1);
  return CANARY_OK;
}

bool schema_is_ident(const char *s) {
  if (!(isalpha((unsigned char)*s) || *s == '_'))
    return false;
  for (s++; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_'))
      return false;
  return true;
}

int schema_ident(struct loader *ld, const struct ynode *v, const char *key, char *dst, size_t cap) {
  int rc = schema_str(ld, v, key, dst, cap);
  if (rc || schema_is_ident(dst))
    return rc;
  char buf[ECHO_MAX + 32];
  return schema_fail(ld, v, CANARY_EINVALID,
                     "'%s' must be a name of letters, digits and '_' (not starting with a digit), "
                     "got %s",
                     key, shown(v, buf, sizeof buf));
}

/* [-+]? (digits [. digits?] | . digits) ([eE] [-+]? digits)?  -- no inf, nan or hex. */
static bool number_syntax(const char *s, bool integer) {
  if (*s == '-' || *s == '+')
    s++;
  size_t whole = strspn(s, "0123456789");
  s += whole;
  if (integer)
    return whole > 0 && !*s;
  size_t frac = 0;
  if (*s == '.') {
    frac = strspn(++s, "0123456789");
    s += frac;
  }
  if (whole + frac == 0)
    return false;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+')
      s++;
    size_t exp = strspn(s, "0123456789");
    if (!exp)
      return false;
    s += exp;
  }
  return !*s;
}

static int out_of_range(struct loader *ld, const struct ynode *v, const char *key, double lo,
                        double hi) {
  return schema_fail(ld, v, CANARY_EINVALID, "'%s' must be between %g and %g, got %s", key, lo, hi,
                     v->str);
}

int schema_num(struct loader *ld, const struct ynode *v, const char *key, double lo, double hi,
               double *out) {
  if (v->kind != YNODE_SCALAR || !v->plain || !number_syntax(v->str, false))
    return wrong_type(ld, v, "a number", key);
  double d = strtod(v->str, NULL);
  if (!isfinite(d) || d < lo || d > hi)
    return out_of_range(ld, v, key, lo, hi);
  *out = d;
  return CANARY_OK;
}

int schema_int64(struct loader *ld, const struct ynode *v, const char *key, double lo, double hi,
                 int64_t *out) {
  if (v->kind != YNODE_SCALAR || !v->plain || !number_syntax(v->str, true))
    return wrong_type(ld, v, "an integer", key);
  errno = 0;
  long long x = strtoll(v->str, NULL, 10);
  if (errno == ERANGE || (double)x < lo || (double)x > hi)
    return out_of_range(ld, v, key, lo, hi);
  *out = x;
  return CANARY_OK;
}

int schema_bool(struct loader *ld, const struct ynode *v, const char *key, bool *out) {
  if (v->kind == YNODE_SCALAR && v->plain && strcmp(v->str, "true") == 0)
    *out = true;
  else if (v->kind == YNODE_SCALAR && v->plain && strcmp(v->str, "false") == 0)
    *out = false;
  else
    return wrong_type(ld, v, "true or false", key);
  return CANARY_OK;
}

int schema_duration(struct loader *ld, const struct ynode *v, const char *key, int64_t *out) {
  if (v->kind != YNODE_SCALAR || yamltree_is_null(v))
    return wrong_type(ld, v, "a duration", key);
  if (schema_parse_duration(v->str, out))
    return CANARY_OK;
  char buf[ECHO_MAX + 32];
  return schema_fail(ld, v, CANARY_EINVALID,
                     "bad duration %s for '%s' (expected e.g. 500ms, 90s, 15m, 1h, 1h30m, 2d)",
                     shown(v, buf, sizeof buf), key);
}

/* "a, b, c" from name_of(0..count-1), cut short to fit. */
static void join_names(char *buf, size_t len, const char *(*name_of)(int), int count) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < count && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", name_of(i));
}

int schema_choice(struct loader *ld, const struct ynode *v, const char *what,
                  const char *(*name_of)(int), int count, int *out) {
  if (v->kind != YNODE_SCALAR || yamltree_is_null(v))
    return wrong_type(ld, v, "a string", what);
  for (int i = 0; i < count; i++)
    if (strcmp(v->str, name_of(i)) == 0) {
      *out = i;
      return CANARY_OK;
    }
  char names[200], buf[ECHO_MAX + 32];
  join_names(names, sizeof names, name_of, count);
  return schema_fail(ld, v, CANARY_EINVALID, "unknown %s %s (expected one of: %s)", what,
                     shown(v, buf, sizeof buf), names);
}

static int set_names(struct loader *ld, const struct field *f, const struct ynode *v, char *t) {
  int rc = schema_expect(ld, v, YNODE_SEQ, f->key);
  if (rc)
    return rc;
  if (v->n > f->max_items)
    return schema_fail(ld, v->kids[f->max_items], CANARY_EINVALID,
                       "too many items in '%s' (at most %zu)", f->key, f->max_items);
  for (size_t i = 0; i < v->n; i++) {
    char *dst = t + f->offset + i * f->size;
    if ((rc = schema_str(ld, v->kids[i], f->key, dst, f->size)))
      return rc;
    if (!dst[0])
      return schema_fail(ld, v->kids[i], CANARY_EINVALID, "empty item in '%s'", f->key);
  }
  *(int *)(t + f->count_offset) = (int)v->n;
  return CANARY_OK;
}

/* Converts v by f into target, or into scratch when f says to ignore it. */
static int set_field(struct loader *ld, const struct field *f, const struct ynode *v,
                     void *target) {
  union {
    char s[512];
    bool b;
  } scratch;
  char *t = target;
  void *dst = f->ignored ? (void *)&scratch : (void *)(t + f->offset);
  size_t size = f->ignored && f->size > sizeof scratch.s ? sizeof scratch.s : f->size;
  int64_t i64;
  int rc;
  switch (f->type) {
  case FIELD_STR:
    return schema_str(ld, v, f->key, dst, size);
  case FIELD_IDENT:
    return schema_ident(ld, v, f->key, dst, size);
  case FIELD_INT:
    if (!(rc = schema_int64(ld, v, f->key, f->min, f->max, &i64)))
      *(int *)dst = (int)i64;
    return rc;
  case FIELD_I64:
    return schema_int64(ld, v, f->key, f->min, f->max, dst);
  case FIELD_NUM:
    return schema_num(ld, v, f->key, f->min, f->max, dst);
  case FIELD_BOOL:
    return schema_bool(ld, v, f->key, dst);
  case FIELD_DURATION:
    return schema_duration(ld, v, f->key, dst);
  case FIELD_NAMES:
    return set_names(ld, f, v, t);
  case FIELD_MAP:
    return schema_walk(ld, v, f->key, f->sub, f->n_sub, target, NULL);
  case FIELD_CUSTOM:
    return f->set(ld, v, target);
  }
  return schema_fail(ld, v, CANARY_EINVALID, "internal error: field type %d", (int)f->type);
}

static int unknown_key(struct loader *ld, const struct ynode *key, const char *what,
                       const struct field *fields, size_t n) {
  char names[200];
  size_t used = 0;
  names[0] = '\0';
  for (size_t i = 0; i < n && used < sizeof names; i++)
    used +=
        (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", fields[i].key);
  return schema_fail(ld, key, CANARY_EINVALID, "unknown key '%.*s%s' in %s (expected one of: %s)",
                     ECHO_MAX, key->str, strlen(key->str) > ECHO_MAX ? "..." : "", what, names);
}

static int walk_pair(struct loader *ld, const struct ynode *key, const struct ynode *value,
                     const char *what, const struct field *fields, size_t n, void *target,
                     struct seen *seen) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(key->str, fields[i].key) != 0)
      continue;
    if (seen[i].key)
      return schema_fail(ld, key, CANARY_EINVALID, "duplicate key '%s' in %s (first at %d:%d)",
                         key->str, what, seen[i].key->line, seen[i].key->col);
    seen[i].key = key;
    seen[i].value = value;
    return set_field(ld, &fields[i], value, target);
  }
  return unknown_key(ld, key, what, fields, n);
}

int schema_walk(struct loader *ld, const struct ynode *map, const char *what,
                const struct field *fields, size_t n, void *target, struct seen *seen) {
  struct seen local[SCHEMA_MAX_FIELDS];
  if (n > SCHEMA_MAX_FIELDS)
    return schema_fail(ld, map, CANARY_EINVALID, "internal error: table for %s too big", what);
  if (!seen)
    seen = local;
  memset(seen, 0, n * sizeof *seen);
  if (map->kind != YNODE_MAP)
    return wrong_type(ld, map, "a mapping", what);
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    int rc = walk_pair(ld, map->kids[i], map->kids[i + 1], what, fields, n, target, seen);
    if (rc)
      return rc;
  }
  for (size_t i = 0; i < n; i++)
    if (fields[i].required && !seen[i].key)
      return schema_fail(ld, map, CANARY_EINVALID, "missing required key '%s' in %s", fields[i].key,
                         what);
  return CANARY_OK;
}

/* --- durations ------------------------------------------------------------------------------ */

static const struct {
  const char *suffix;
  int64_t ms;
} duration_units[] = {
    /* largest first; "ms" before "m" so that "500ms" is not read as minutes */
    {"w", 7 * 86400000LL}, {"d", 86400000LL}, {"h", 3600000LL}, {"ms", 1},
    {"m", 60000LL},        {"s", 1000LL},
};

/* The unit at s (longest match), or -1. */
static int duration_unit(const char *s) {
  int best = -1;
  size_t best_len = 0;
  for (int i = 0; i < (int)(sizeof duration_units / sizeof *duration_units); i++) {
    size_t n = strlen(duration_units[i].suffix);
    if (n > best_len && strncmp(s, duration_units[i].suffix, n) == 0) {
      best = i;
      best_len = n;
    }
  }
  return best;
}

bool schema_parse_duration(const char *s, int64_t *ms) {
  if (!s || !*s)
    return false;
  if (strcmp(s, "0") == 0) {
    *ms = 0;
    return true;
  }
  int64_t total = 0, last_unit = INT64_MAX;
  while (*s) {
    int64_t n = 0;
    const char *start = s;
    for (; *s >= '0' && *s <= '9'; s++) {
      if (n > (INT64_MAX - (*s - '0')) / 10)
        return false;
      n = n * 10 + (*s - '0');
    }
    int u = s > start ? duration_unit(s) : -1;
    if (u < 0 || duration_units[u].ms >= last_unit) /* units strictly decreasing: "1h30m" */
      return false;
    int64_t unit = duration_units[u].ms;
    if (n > (INT64_MAX - total) / unit)
      return false;
    total += n * unit;
    last_unit = unit;
    s += strlen(duration_units[u].suffix);
  }
  *ms = total;
  return true;
}
