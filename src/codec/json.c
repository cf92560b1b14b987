/* Strict JSON: one pass over the text into arena memory (the writer, jbuf_*, is json_write.c). */
#include "codec/json.h"
#include "codec/json_internal.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

/* ---- numbers independent of LC_NUMERIC ------------------------------------------------------ */

/*
 * strtod and printf follow the locale's decimal point; JSON does not. A process that calls
 * setlocale() (a CLI may) must still read and write "0.5", so numbers go through the "C" locale
 * of the calling thread for the duration of the conversion.
 */
static locale_t c_locale_obj;
static once_flag c_locale_once = ONCE_FLAG_INIT;

static void c_locale_init(void) { c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

locale_t json_c_locale_enter(void) {
  call_once(&c_locale_once, c_locale_init);
  return c_locale_obj ? uselocale(c_locale_obj) : (locale_t)0;
}

void json_c_locale_leave(locale_t old) {
  if (old)
    uselocale(old);
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (n bytes available), 0 if ill-formed. */
size_t json_utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF; /* the range allowed for the second byte */
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* above U+10FFFF */
  } else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t k = 2; k < len; k++)
    if ((s[k] & 0xC0) != 0x80)
      return 0;
  return len;
}

static size_t utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---- the arena ------------------------------------------------------------------------------ */

#define ARENA_MIN 4096
#define ARENA_ALIGN (alignof(max_align_t))

struct json_arena_chunk {
  struct json_arena_chunk *next;
  size_t cap, used;
  max_align_t data[];
};

/* A member of an open array (key NULL) or object, with where its key started. */
struct json_pending {
  struct json_member m;
  int key_line, key_column;
};

void json_doc_init(struct json_doc *doc) { memset(doc, 0, sizeof *doc); }

static void free_chunks(struct json_arena_chunk *c) {
  while (c) {
    struct json_arena_chunk *next = c->next;
    free(c);
    c = next;
  }
}

static struct json_arena_chunk *chunk_new(size_t cap) {
  struct json_arena_chunk *c = malloc(sizeof *c + cap);
  if (c) {
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
  }
  return c;
}

void json_doc_reset(struct json_doc *doc) {
  doc->stack_n = 0;
  struct json_arena_chunk *c = doc->chunks;
  if (!c)
    return;
  if (!c->next) {
    c->used = 0;
    return;
  }
  /* Several chunks: replace them by one that holds as much, so the next line needs no malloc. */
  size_t total = 0;
  for (; c; c = c->next)
    total += c->cap;
  free_chunks(doc->chunks);
  doc->chunks = chunk_new(total); /* NULL is fine: the next parse allocates */
}

size_t json_doc_memory(const struct json_doc *doc) {
  size_t n = doc->stack_cap * sizeof *doc->stack + doc->slots_cap * sizeof *doc->slots;
  for (const struct json_arena_chunk *c = doc->chunks; c; c = c->next)
    n += sizeof *c + c->cap;
  return n;
}

void json_doc_free(struct json_doc *doc) {
  free_chunks(doc->chunks);
  free(doc->stack);
  free(doc->slots);
  memset(doc, 0, sizeof *doc);
}

static void *arena_alloc(struct json_doc *doc, size_t n) {
  n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (n == 0)
    n = ARENA_ALIGN;
  struct json_arena_chunk *c = doc->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = c ? c->cap * 2 : ARENA_MIN;
    if (cap < n)
      cap = n;
    struct json_arena_chunk *fresh = chunk_new(cap);
    if (!fresh)
      return NULL;
    fresh->next = c;
    doc->chunks = c = fresh;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

/* ---- the parser ----------------------------------------------------------------------------- */

struct parser {
  struct json_doc *doc;
  const char *start, *p, *end;
  const char *line_start;
  int line;
  struct json_error *err;
};

static int fail_at(struct parser *ps, const char *at, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct parser *ps, const char *at, int rc, const char *fmt, ...) {
  if (ps->err) {
    /* The current line is where the parser is; at may lie on an earlier one (a trailing
     * comma before newlines) or a later one (a raw newline inside a string). */
    int line = ps->line;
    const char *ls = ps->line_start;
    while (at < ls) {
      line--;
      for (ls--; ls > ps->start && ls[-1] != '\n'; ls--)
        ;
    }
    for (const char *q = ls; q < at && q < ps->end; q++)
      if (*q == '\n') {
        line++;
        ls = q + 1;
      }
    ps->err->line = line;
    ps->err->column = (int)(at - ls) + 1;
    va_list ap;
    va_start(ap, fmt);
    canary_vwhy(ps->err->message, sizeof ps->err->message, 0, fmt, ap);
    va_end(ap);
  }
  return rc;
}

#define FAIL(ps, at, ...) fail_at((ps), (at), CANARY_EPARSE, __VA_ARGS__)
#define NOMEM(ps) fail_at((ps), (ps)->p, CANARY_ENOMEM, "out of memory")

/* "unexpected character 'x'" for what was found at p (or the end of input). */
static int fail_unexpected(struct parser *ps, const char *at, const char *expected) {
  const char *sep = expected ? ": expected " : "";
  if (!expected)
    expected = "";
  if (at >= ps->end)
    return FAIL(ps, at, "unexpected end of input%s%s", sep, expected);
  unsigned char c = (unsigned char)*at;
  if (c > 0x20 && c < 0x7F)
    return FAIL(ps, at, "unexpected character '%c'%s%s", c, sep, expected);
  return FAIL(ps, at, "unexpected byte 0x%02X%s%s", c, sep, expected);
}

static void skip_ws(struct parser *ps) {
  const char *p = ps->p;
  while (p < ps->end) {
    char c = *p;
    if (c == '\n') {
      ps->line++;
      ps->line_start = p + 1;
    } else if (c != ' ' && c != '\t' && c != '\r') {
      break;
    }
    p++;
  }
  ps->p = p;
}

static int push(struct parser *ps, const struct json_pending *pend) {
  struct json_doc *doc = ps->doc;
  if (doc->stack_n == doc->stack_cap) {
    size_t cap = doc->stack_cap ? doc->stack_cap * 2 : 64;
    struct json_pending *s = realloc(doc->stack, cap * sizeof *s);
    if (!s)
      return NOMEM(ps);
    doc->stack = s;
    doc->stack_cap = cap;
  }
  doc->stack[doc->stack_n++] = *pend;
  return CANARY_OK;
}

static int hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    char c = p[k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

/* A string at ps->p (the opening quote): unescaped into the arena. */
static int parse_string(struct parser *ps, const char **str, size_t *len) {
  const char *open = ps->p, *q = open + 1, *end = ps->end;
  /* Find the closing quote first: the unescaped text is never longer than the raw one. */
  while (q < end && *q != '"') {
    if (*q == '\\' && end - q < 2)
      q = end; /* a backslash as the last byte escapes nothing */
    else
      q += *q == '\\' ? 2 : 1;
  }
  if (q >= end)
    return FAIL(ps, open, "unterminated string");
  char *out = arena_alloc(ps->doc, (size_t)(q - open));
  if (!out)
    return NOMEM(ps);
  const char *close = q;
  size_t n = 0;
  for (q = open + 1; q < close;) {
    unsigned char c = (unsigned char)*q;
    if (c == '\\') {
      char e = q[1];
      static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
      const char *k = e ? strchr(from, e) : NULL;
      if (k) {
        out[n++] = to[k - from];
        q += 2;
        continue;
      }
      if (e != 'u')
        return FAIL(ps, q, "invalid escape '\\%c'", e > 0x20 && e < 0x7F ? e : '?');
      uint32_t cp, lo;
      if (close - q < 6 || hex4(q + 2, &cp) < 0)
        return FAIL(ps, q, "invalid \\u escape: expected 4 hex digits");
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return FAIL(ps, q, "lone surrogate \\u%04X", (unsigned)cp);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (close - q < 12 || q[6] != '\\' || q[7] != 'u' || hex4(q + 8, &lo) < 0 || lo < 0xDC00 ||
            lo > 0xDFFF)
          return FAIL(ps, q, "lone surrogate \\u%04X", (unsigned)cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        q += 6;
      }
      n += utf8_encode(cp, out + n);
      q += 6;
    } else if (c < 0x20) {
      return FAIL(ps, q, "control character U+%04X in string must be escaped", c);
    } else if (c < 0x80) {
      out[n++] = (char)c;
      q++;
    } else {
      size_t k = json_utf8_seq_len((const unsigned char *)q, (size_t)(close - q));
      if (!k)
        return FAIL(ps, q, "invalid UTF-8 in string");
      memcpy(out + n, q, k);
      n += k;
      q += k;
    }
  }
  out[n] = '\0';
  *str = out;
  *len = n;
  ps->p = close + 1;
  return CANARY_OK;
}

static bool is_digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

static int parse_number(struct parser *ps, struct json_value *v) {
  const char *start = ps->p, *q = start, *end = ps->end;
  bool neg = false, integral = true;
  if (*q == '-') {
    neg = true;
    q++;
  }
  if (!is_digit(q, end))
    return fail_unexpected(ps, q, "digit");
  if (*q == '0' && is_digit(q + 1, end))
    return FAIL(ps, start, "leading zeros are not allowed");
  const char *digits = q;
  while (is_digit(q, end))
    q++;
  const char *digits_end = q;
  if (q < end && *q == '.') {
    integral = false;
    q++;
    if (!is_digit(q, end))
      return fail_unexpected(ps, q, "digit after '.'");
    while (is_digit(q, end))
      q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    integral = false;
    q++;
    if (q < end && (*q == '+' || *q == '-'))
      q++;
    if (!is_digit(q, end))
      return fail_unexpected(ps, q, "digit in exponent");
    while (is_digit(q, end))
      q++;
  }
  ps->p = q;
  v->type = JSON_NUMBER;

  if (integral) {
    /* Exact int64 when it fits: magnitude up to 2^63 - 1, or 2^63 when negative. */
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool fits = true;
    for (const char *d = digits; d < digits_end && fits; d++) {
      unsigned dig = (unsigned)(*d - '0');
      if (mag > (limit - dig) / 10)
        fits = false;
      else
        mag = mag * 10 + dig;
    }
    if (fits) {
      v->is_int = true;
      v->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
      v->num = neg && mag == 0 ? -0.0 : (double)v->i; /* int64 -> double rounds correctly */
      return CANARY_OK;
    }
  }

  /* strtod needs a NUL-terminated copy: the text need not be terminated. */
  size_t n = (size_t)(q - start);
  char small[64], *buf = small;
  if (n >= sizeof small && !(buf = arena_alloc(ps->doc, n + 1)))
    return NOMEM(ps);
  memcpy(buf, start, n);
  buf[n] = '\0';
  locale_t old = json_c_locale_enter();
  errno = 0;
  double d = strtod(buf, NULL);
  int e = errno;
  json_c_locale_leave(old);
  if (e == ERANGE && isinf(d))
    return FAIL(ps, start, "number out of range");
  v->num = d;
  return CANARY_OK;
}

static int parse_value(struct parser *ps, struct json_value *v, int depth);

static int finish_array(struct parser *ps, struct json_value *v, size_t base) {
  struct json_doc *doc = ps->doc;
  size_t n = doc->stack_n - base;
  v->n_items = n;
  if (n) {
    v->items = arena_alloc(doc, n * sizeof *v->items);
    if (!v->items)
      return NOMEM(ps);
    for (size_t k = 0; k < n; k++)
      v->items[k] = doc->stack[base + k].m.value;
  }
  doc->stack_n = base;
  return CANARY_OK;
}

static int parse_array(struct parser *ps, struct json_value *v, int depth) {
  v->type = JSON_ARRAY;
  ps->p++;
  skip_ws(ps);
  size_t base = ps->doc->stack_n;
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    return CANARY_OK;
  }
  for (;;) {
    struct json_pending item = {0};
    int rc = parse_value(ps, &item.m.value, depth);
    if (rc || (rc = push(ps, &item)))
      return rc;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
      ps->p++;
      return finish_array(ps, v, base);
    }
    if (ps->p >= ps->end || *ps->p != ',')
      return fail_unexpected(ps, ps->p, "',' or ']'");
    const char *comma = ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']')
      return FAIL(ps, comma, "trailing comma in array");
  }
}

static uint32_t hash_key(const char *s, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t k = 0; k < n; k++)
    h = (h ^ (unsigned char)s[k]) * 16777619u;
  return h;
}

static bool same_key(const struct json_member *a, const struct json_member *b) {
  return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* The first member of m[0..n) (in document order) whose key appeared before it, or -1. */
static long find_duplicate(struct parser *ps, const struct json_pending *m, size_t n, int *rc) {
  *rc = CANARY_OK;
  if (n <= 8) {
    for (size_t j = 1; j < n; j++)
      for (size_t k = 0; k < j; k++)
        if (same_key(&m[j].m, &m[k].m))
          return (long)j;
    return -1;
  }
  struct json_doc *doc = ps->doc;
  size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  if (cap > doc->slots_cap) {
    uint32_t *s = realloc(doc->slots, cap * sizeof *s);
    if (!s) {
      *rc = NOMEM(ps);
      return -1;
    }
    doc->slots = s;
    doc->slots_cap = cap;
  }
  memset(doc->slots, 0, cap * sizeof *doc->slots);
  for (size_t j = 0; j < n; j++) {
    size_t h = hash_key(m[j].m.key, m[j].m.key_len) & (cap - 1);
    for (; doc->slots[h]; h = (h + 1) & (cap - 1))
      if (same_key(&m[doc->slots[h] - 1].m, &m[j].m))
        return (long)j;
    doc->slots[h] = (uint32_t)(j + 1);
  }
  return -1;
}

static int finish_object(struct parser *ps, struct json_value *v, size_t base) {
  struct json_doc *doc = ps->doc;
  size_t n = doc->stack_n - base;
  int rc;
  long dup = find_duplicate(ps, doc->stack + base, n, &rc);
  if (rc)
    return rc;
  if (dup >= 0) {
    const struct json_pending *d = &doc->stack[base + (size_t)dup];
    char key[64];
    json_excerpt(d->m.key, d->m.key_len, key, sizeof key);
    if (ps->err) {
      ps->err->line = d->key_line;
      ps->err->column = d->key_column;
      snprintf(ps->err->message, sizeof ps->err->message, "duplicate key '%s'", key);
    }
    return CANARY_EPARSE;
  }
  v->n_members = n;
  v->members = arena_alloc(doc, n * sizeof *v->members);
  if (!v->members)
    return NOMEM(ps);
  for (size_t k = 0; k < n; k++)
    v->members[k] = doc->stack[base + k].m;
  doc->stack_n = base;
  return CANARY_OK;
}

static int parse_object(struct parser *ps, struct json_value *v, int depth) {
  v->type = JSON_OBJECT;
  ps->p++;
  skip_ws(ps);
  size_t base = ps->doc->stack_n;
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
    return CANARY_OK;
  }
  for (;;) {
    if (ps->p >= ps->end || *ps->p != '"')
      return fail_unexpected(ps, ps->p, "a string key");
    struct json_pending mem = {0};
    mem.key_line = ps->line;
    mem.key_column = (int)(ps->p - ps->line_start) + 1;
    int rc = parse_string(ps, &mem.m.key, &mem.m.key_len);
    if (rc)
      return rc;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':')
      return fail_unexpected(ps, ps->p, "':' after the key");
    ps->p++;
    skip_ws(ps);
    if ((rc = parse_value(ps, &mem.m.value, depth)) || (rc = push(ps, &mem)))
      return rc;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
      ps->p++;
      return finish_object(ps, v, base);
    }
    if (ps->p >= ps->end || *ps->p != ',')
      return fail_unexpected(ps, ps->p, "',' or '}'");
    const char *comma = ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}')
      return FAIL(ps, comma, "trailing comma in object");
  }
}

static int parse_literal(struct parser *ps, const char *word, size_t n) {
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return FAIL(ps, ps->p, "invalid literal: expected %s", word);
  ps->p += n;
  return CANARY_OK;
}

/* A value at ps->p (whitespace already skipped); depth counts the enclosing containers. */
static int parse_value(struct parser *ps, struct json_value *v, int depth) {
  const char *p = ps->p;
  v->line = ps->line;
  v->column = (int)(p - ps->line_start) + 1;
  if (p >= ps->end)
    return fail_unexpected(ps, p, "a value");
  switch (*p) {
  case '{':
  case '[':
    if (depth >= JSON_MAX_DEPTH)
      return FAIL(ps, p, "nesting deeper than %d", JSON_MAX_DEPTH);
    return *p == '{' ? parse_object(ps, v, depth + 1) : parse_array(ps, v, depth + 1);
  case '"':
    v->type = JSON_STRING;
    return parse_string(ps, &v->str, &v->len);
  case 't':
    v->type = JSON_BOOL;
    v->b = true;
    return parse_literal(ps, "true", 4);
  case 'f':
    v->type = JSON_BOOL;
    return parse_literal(ps, "false", 5);
  case 'n':
    v->type = JSON_NULL;
    return parse_literal(ps, "null", 4);
  default:
    if (*p == '-' || (*p >= '0' && *p <= '9'))
      return parse_number(ps, v);
    return fail_unexpected(ps, p, "a value");
  }
}

int json_parse(struct json_doc *doc, const char *text, size_t len, const struct json_value **root,
               struct json_error *err) {
  struct parser ps = {doc, text, text, text + len, text, 1, err};
  if (err)
    memset(err, 0, sizeof *err);
  doc->stack_n = 0;
  skip_ws(&ps);
  if (ps.p >= ps.end)
    return FAIL(&ps, ps.p, "empty document");
  struct json_value v = {0};
  int rc = parse_value(&ps, &v, 0);
  if (rc)
    return rc;
  skip_ws(&ps);
  if (ps.p < ps.end)
    return FAIL(&ps, ps.p, "trailing characters after the JSON value");
  struct json_value *r = arena_alloc(doc, sizeof *r);
  if (!r)
    return NOMEM(&ps);
  *r = v;
  *root = r;
  return CANARY_OK;
}

const struct json_value *json_get(const struct json_value *obj, const char *key) {
  if (!obj || obj->type != JSON_OBJECT)
    return NULL;
  size_t n = strlen(key);
  for (size_t k = 0; k < obj->n_members; k++) {
    const struct json_member *m = &obj->members[k];
    if (m->key_len == n && memcmp(m->key, key, n) == 0)
      return &m->value;
  }
  return NULL;
}

const char *json_type_name(enum json_type t) {
  switch (t) {
  case JSON_NULL:
    return "null";
  case JSON_BOOL:
    return "boolean";
  case JSON_NUMBER:
    return "number";
  case JSON_STRING:
    return "string";
  case JSON_ARRAY:
    return "array";
  case JSON_OBJECT:
    return "object";
  }
  return "?";
}

void json_excerpt(const char *s, size_t len, char *dst, size_t dst_len) {
  if (!dst_len)
    return;
  const unsigned char *u = (const unsigned char *)s;
  size_t room = dst_len - 1, n = 0, k = 0;
  while (k < len) {
    size_t step = json_utf8_seq_len(u + k, len - k);
    bool shown = step > 0 && u[k] >= 0x20 && u[k] != 0x7F; /* else one '?' */
    if (!step)
      step = 1;
    size_t out = shown ? step : 1;
    if (n + out + (k + step < len ? 3 : 0) > room) /* keep room for "..." unless last */
      break;
    if (shown)
      memcpy(dst + n, s + k, step);
    else
      dst[n] = '?';
    n += out;
    k += step;
  }
  if (k < len && n + 3 <= room) {
    memcpy(dst + n, "...", 3);
    n += 3;
  }
  dst[n] = '\0';
}

int json_why_at(char *why, size_t len, const struct json_value *at, const char *field,
                const char *fmt, ...) {
  if (!why || !len)
    return CANARY_EINVALID;
  int n = snprintf(why, len, "%d:%d: %s%s", at ? at->line : 1, at ? at->column : 1,
                   field ? field : "", field ? ": " : "");
  if (n >= 0 && (size_t)n < len) {
    va_list ap;
    va_start(ap, fmt);
    canary_vwhy(why + n, len - (size_t)n, 0, fmt, ap);
    va_end(ap);
  }
  return CANARY_EINVALID;
}
