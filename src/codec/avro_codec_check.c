/*
 * The byte-level check of an Avro body before avro-c reads it.
 *
 * avro-c 1.11.1 trusts length prefixes: read_string()/read_bytes() malloc the length before
 * looking at the buffer, so a 5-byte body can make it allocate 2 GiB (and a length near 2^63
 * overflows), and when the bytes then run out the buffer is leaked (valgrind: "definitely lost"
 * on every truncated string). A negative length comes back as ENOMEM, "Cannot allocate buffer".
 * Bytes from a topic anyone can produce to must not reach it unchecked. This walk visits the body
 * once, allocates nothing, and accepts only a body whose every length, count, index and byte fits
 * the schema; then avro-c's read can only fail for lack of memory. It also says where a body is
 * wrong ("field 'rollout' at byte 9 of 13: truncated (length 7, 3 bytes left)").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/avro_codec_internal.h"

struct avro_shape {
  avro_type_t type;
  size_t n;                /* record fields, union branches, enum symbols, fixed size */
  struct avro_shape *kids; /* record: n fields; union: n branches; array items / map values: 1 */
  const char **names;      /* record field names (owned by the schema) */
  size_t min;              /* the smallest encoding of a value, in bytes */
};

/* ---- compiling ------------------------------------------------------------------------------ */

static void shape_done(struct avro_shape *s) {
  if (!s->kids)
    return;
  size_t k = s->type == AVRO_RECORD || s->type == AVRO_UNION ? s->n : 1;
  for (size_t i = 0; i < k; i++)
    shape_done(&s->kids[i]);
  free(s->kids);
  free(s->names);
  s->kids = NULL;
  s->names = NULL;
}

static bool compile(avro_schema_t sch, struct avro_shape *s, int depth, char *why, size_t why_len);

static bool compile_kids(avro_schema_t sch, struct avro_shape *s, size_t n, int depth, char *why,
                         size_t why_len) {
  s->kids = calloc(n ? n : 1, sizeof *s->kids);
  if (!s->kids) {
    snprintf(why, why_len, "out of memory");
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    avro_schema_t kid;
    switch (s->type) {
    case AVRO_RECORD:
      kid = avro_schema_record_field_get_by_index(sch, (int)i);
      break;
    case AVRO_UNION:
      kid = avro_schema_union_branch(sch, (int)i);
      break;
    case AVRO_ARRAY:
      kid = avro_schema_array_items(sch);
      break;
    default: /* AVRO_MAP */
      kid = avro_schema_map_values(sch);
      break;
    }
    if (!kid) {
      snprintf(why, why_len, "schema has a hole at %zu", i);
      return false;
    }
    if (!compile(kid, &s->kids[i], depth + 1, why, why_len))
      return false;
  }
  return true;
}

static bool compile(avro_schema_t sch, struct avro_shape *s, int depth, char *why, size_t why_len) {
  memset(s, 0, sizeof *s);
  if (depth > 16) {
    snprintf(why, why_len, "schema nests deeper than 16");
    return false;
  }
  s->type = avro_typeof(sch);
  switch (s->type) {
  case AVRO_NULL:
    s->min = 0;
    return true;
  case AVRO_BOOLEAN:
  case AVRO_INT32:
  case AVRO_INT64:
  case AVRO_STRING:
  case AVRO_BYTES:
  case AVRO_ENUM:
    s->min = 1;
    if (s->type == AVRO_ENUM)
      s->n = (size_t)avro_schema_enum_number_of_symbols(sch);
    return true;
  case AVRO_FLOAT:
    s->min = 4;
    return true;
  case AVRO_DOUBLE:
    s->min = 8;
    return true;
  case AVRO_FIXED:
    s->n = (size_t)avro_schema_fixed_size(sch);
    s->min = s->n;
    return true;
  case AVRO_ARRAY:
  case AVRO_MAP:
    s->n = 1;
    s->min = 1; /* the terminating zero count */
    return compile_kids(sch, s, 1, depth, why, why_len);
  case AVRO_UNION:
    s->n = avro_schema_union_size(sch);
    if (s->n == 0) {
      snprintf(why, why_len, "empty union");
      return false;
    }
    if (!compile_kids(sch, s, s->n, depth, why, why_len))
      return false;
    s->min = SIZE_MAX;
    for (size_t i = 0; i < s->n; i++)
      if (s->kids[i].min < s->min)
        s->min = s->kids[i].min;
    s->min += 1; /* the branch index */
    return true;
  case AVRO_RECORD:
    s->n = avro_schema_record_size(sch);
    s->names = calloc(s->n ? s->n : 1, sizeof *s->names);
    if (!s->names) {
      snprintf(why, why_len, "out of memory");
      return false;
    }
    for (size_t i = 0; i < s->n; i++)
      s->names[i] = avro_schema_record_field_name(sch, (int)i);
    if (!compile_kids(sch, s, s->n, depth, why, why_len))
      return false;
    for (size_t i = 0; i < s->n; i++)
      s->min += s->kids[i].min;
    return true;
  case AVRO_LINK:
    snprintf(why, why_len, "recursive schemas are not supported");
    return false;
  }
  snprintf(why, why_len, "unknown schema type %d", (int)s->type);
  return false;
}

struct avro_shape *avro_codec_shape_compile(avro_schema_t sch, char *why, size_t why_len) {
  struct avro_shape *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(why, why_len, "out of memory");
    return NULL;
  }
  if (!compile(sch, s, 0, why, why_len)) {
    shape_done(s);
    free(s);
    return NULL;
  }
  if (s->type != AVRO_RECORD) {
    snprintf(why, why_len, "top-level schema is not a record");
    shape_done(s);
    free(s);
    return NULL;
  }
  return s;
}

void avro_codec_shape_free(struct avro_shape *shape) {
  if (!shape)
    return;
  shape_done(shape);
  free(shape);
}

/* ---- signatures ----------------------------------------------------------------------------- */

struct sigbuf {
  char *p;
  size_t len, at;
  bool ok;
};

static void put(struct sigbuf *b, const char *s) {
  size_t n = strlen(s);
  if (b->at + n >= b->len) {
    b->ok = false;
    return;
  }
  memcpy(b->p + b->at, s, n + 1);
  b->at += n;
}

static void sig(avro_schema_t s, struct sigbuf *b, int depth) {
  if (!s || depth > 16) {
    b->ok = false;
    return;
  }
  switch (avro_typeof(s)) {
  case AVRO_NULL:
    put(b, "n");
    return;
  case AVRO_BOOLEAN:
    put(b, "b");
    return;
  case AVRO_INT32:
    put(b, "i");
    return;
  case AVRO_INT64:
    put(b, "l");
    return;
  case AVRO_FLOAT:
    put(b, "f");
    return;
  case AVRO_DOUBLE:
    put(b, "d");
    return;
  case AVRO_STRING:
    put(b, "s");
    return;
  case AVRO_BYTES:
    put(b, "y");
    return;
  case AVRO_ENUM:
    put(b, "e");
    return;
  case AVRO_FIXED:
    put(b, "x");
    return;
  case AVRO_LINK:
    b->ok = false;
    return;
  case AVRO_ARRAY:
    put(b, "[");
    sig(avro_schema_array_items(s), b, depth + 1);
    put(b, "]");
    return;
  case AVRO_MAP:
    put(b, "{");
    sig(avro_schema_map_values(s), b, depth + 1);
    put(b, "}");
    return;
  case AVRO_UNION:
    put(b, "<");
    for (size_t i = 0; i < avro_schema_union_size(s); i++) {
      if (i)
        put(b, "|");
      sig(avro_schema_union_branch(s, (int)i), b, depth + 1);
    }
    put(b, ">");
    return;
  case AVRO_RECORD:
    put(b, "(");
    for (size_t i = 0; i < avro_schema_record_size(s); i++) {
      if (i)
        put(b, ",");
      put(b, avro_schema_record_field_name(s, (int)i));
      put(b, ":");
      sig(avro_schema_record_field_get_by_index(s, (int)i), b, depth + 1);
    }
    put(b, ")");
    return;
  }
  b->ok = false;
}

bool avro_codec_shape_signature(avro_schema_t s, char *buf, size_t len) {
  struct sigbuf b = {buf, len, 0, len > 0};
  if (len)
    buf[0] = '\0';
  sig(s, &b, 0);
  return b.ok;
}

/* ---- checking ------------------------------------------------------------------------------- */

struct walk {
  const unsigned char *start, *p, *end;
  const unsigned char *at; /* where the value being read starts */
  const char *top;         /* the top-level field being read */
  const char *sub;         /* the field of a nested record, or NULL */
  long long item;          /* the item of the top-level array or map, or -1 */
  int depth;               /* records entered */
  char *why;
  size_t why_len;
};

static int bad(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "body: field 'samples.canary' (item 3) at byte 40 of 52: <what>"; the byte is where the value
 * starts, counted in the whole message. */
static int bad(struct walk *w, const char *fmt, ...) {
  if (!w->why || !w->why_len)
    return CANARY_EPARSE;
  char what[160], item[32] = "";
  va_list ap;
  va_start(ap, fmt);
  canary_vwhy(what, sizeof what, 0, fmt, ap);
  va_end(ap);
  if (w->item >= 0)
    snprintf(item, sizeof item, " (item %lld)", w->item);
  size_t at = (size_t)(w->at - w->start) + AVRO_CODEC_HEADER;
  size_t total = (size_t)(w->end - w->start) + AVRO_CODEC_HEADER;
  if (w->top)
    return canary_why(w->why, w->why_len, CANARY_EPARSE,
                      "body: field '%s%s%s'%s at byte %zu of %zu: %s", w->top, w->sub ? "." : "",
                      w->sub ? w->sub : "", item, at, total, what);
  return canary_why(w->why, w->why_len, CANARY_EPARSE, "body: at byte %zu of %zu: %s", at, total,
                    what);
}

static size_t left(const struct walk *w) { return (size_t)(w->end - w->p); }

/* A zig-zag varint of at most 64 bits. */
static int varint(struct walk *w, int64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    if (w->p == w->end)
      return bad(w, "truncated");
    uint8_t b = *w->p++;
    if (i == 9 && b > 1)
      return bad(w, "varint does not fit 64 bits");
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
      return CANARY_OK;
    }
  }
  return bad(w, "varint longer than 10 bytes");
}

/* Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool avro_codec_utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* Names and ids are ASCII: skip eight such bytes at a time. */
    if (n - i >= 8) {
      uint64_t word;
      memcpy(&word, s + i, 8);
      if (!(word & 0x8080808080808080ULL)) {
        i += 8;
        continue;
      }
    }
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= k)
      return false;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += k + 1;
  }
  return true;
}

static int need(struct walk *w, size_t n) {
  if (left(w) < n)
    return bad(w, "truncated (%zu bytes needed, %zu left)", n, left(w));
  return CANARY_OK;
}

enum text { BYTES, TEXT, KEY };

static int string(struct walk *w, enum text text) {
  int64_t n;
  int rc = varint(w, &n);
  if (rc)
    return rc;
  if (n < 0)
    return bad(w, "negative length %lld", (long long)n);
  if ((uint64_t)n > left(w))
    return bad(w, "truncated (length %lld, %zu bytes left)", (long long)n, left(w));
  if (text != BYTES && !avro_codec_utf8_ok(w->p, (size_t)n))
    return bad(w, "string is not valid UTF-8");
  /* avro-c keeps map keys as C strings: a NUL would silently cut the name. */
  if (text == KEY && memchr(w->p, '\0', (size_t)n))
    return bad(w, "map key contains a NUL byte");
  w->p += n;
  return CANARY_OK;
}

static int walk(struct walk *w, const struct avro_shape *s);

/* Arrays and maps: blocks of items until a zero count; a negative count carries a byte size. */
static int blocks(struct walk *w, const struct avro_shape *s) {
  const bool is_map = s->type == AVRO_MAP;
  size_t min = s->kids[0].min + (is_map ? 1 : 0);
  if (min == 0)
    min = 1; /* items of zero bytes would let a 3-byte body claim 2^62 of them */
  long long item = 0;
  for (;;) {
    int64_t count, size = -1;
    int rc = varint(w, &count);
    if (rc)
      return rc;
    if (count == 0)
      return CANARY_OK;
    if (count < 0) {
      if (count == INT64_MIN)
        return bad(w, "block count out of range");
      count = -count;
      if ((rc = varint(w, &size)))
        return rc;
      if (size < 0 || (uint64_t)size > left(w))
        return bad(w, "block size %lld does not fit the %zu bytes left", (long long)size, left(w));
    }
    if ((uint64_t)count > left(w) / min)
      return bad(w, "truncated (a block of %lld items, %zu bytes left)", (long long)count, left(w));
    const unsigned char *block = w->p;
    for (int64_t i = 0; i < count; i++, item++) {
      if (w->depth == 1)
        w->item = item;
      w->at = w->p;
      if (is_map && (rc = string(w, KEY)))
        return rc;
      if ((rc = walk(w, &s->kids[0])))
        return rc;
    }
    if (size >= 0 && w->p - block != size)
      return bad(w, "block size %lld disagrees with its %td bytes", (long long)size, w->p - block);
  }
}

static int walk(struct walk *w, const struct avro_shape *s) {
  int64_t v;
  int rc;
  w->at = w->p;
  switch (s->type) {
  case AVRO_NULL:
    return CANARY_OK;
  case AVRO_BOOLEAN:
    if ((rc = need(w, 1)))
      return rc;
    if (*w->p > 1)
      return bad(w, "boolean byte 0x%02x is neither 0 nor 1", *w->p);
    w->p++;
    return CANARY_OK;
  case AVRO_INT32:
    if ((rc = varint(w, &v)))
      return rc;
    if (v < INT32_MIN || v > INT32_MAX)
      return bad(w, "int %lld out of 32-bit range", (long long)v);
    return CANARY_OK;
  case AVRO_INT64:
    return varint(w, &v);
  case AVRO_FLOAT:
    if ((rc = need(w, 4)))
      return rc;
    w->p += 4;
    return CANARY_OK;
  case AVRO_DOUBLE:
    if ((rc = need(w, 8)))
      return rc;
    w->p += 8;
    return CANARY_OK;
  case AVRO_STRING:
    return string(w, TEXT);
  case AVRO_BYTES:
    return string(w, BYTES);
  case AVRO_FIXED:
    if ((rc = need(w, s->n)))
      return rc;
    w->p += s->n;
    return CANARY_OK;
  case AVRO_ENUM:
    if ((rc = varint(w, &v)))
      return rc;
    if (v < 0 || (uint64_t)v >= s->n)
      return bad(w, "enum symbol %lld out of range 0..%zu", (long long)v, s->n - 1);
    return CANARY_OK;
  case AVRO_UNION:
    if ((rc = varint(w, &v)))
      return rc;
    if (v < 0 || (uint64_t)v >= s->n)
      return bad(w, "union branch %lld out of range 0..%zu", (long long)v, s->n - 1);
    return walk(w, &s->kids[v]);
  case AVRO_ARRAY:
  case AVRO_MAP:
    return blocks(w, s);
  case AVRO_RECORD:
    w->depth++;
    for (size_t i = 0; i < s->n; i++) {
      if (w->depth == 1) {
        w->top = s->names[i];
        w->item = -1;
      } else {
        w->sub = s->names[i];
      }
      if ((rc = walk(w, &s->kids[i])))
        return rc;
    }
    if (w->depth > 1)
      w->sub = NULL;
    w->depth--;
    return CANARY_OK;
  case AVRO_LINK:
    break;
  }
  return bad(w, "unsupported schema type");
}

int avro_codec_shape_check(const struct avro_shape *shape, const unsigned char *body, size_t len,
                           char *why, size_t why_len) {
  struct walk w = {body, body, body + len, body, NULL, NULL, -1, 0, why, why_len};
  int rc = walk(&w, shape);
  if (rc)
    return rc;
  if (w.p != w.end) {
    w.top = NULL;
    w.at = w.p;
    return bad(&w, "%zu bytes after the end of the record", left(&w));
  }
  return CANARY_OK;
}
