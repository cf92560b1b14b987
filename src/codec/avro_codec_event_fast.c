/* Input events: canary.metrics read straight from the bytes, the time and id of any input
 * message, and avro_codec_decode_event, which tries this path before the generic one. */
#include <math.h>
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"
#include "core/event_fields.h"
#include "core/topic.h"

static const char *variant_n(int v) { return variant_name((enum variant)v); }

/* ---- the fast path for canary.metrics --------------------------------------------------------- */

/*
 * avro-c's generic values cost a dozen allocations and hash-map inserts per metrics message,
 * several times what the rest of canaryd spends on it. Metrics are the bulk of the input, so
 * their records are read here straight from the bytes, checked on the way as
 * avro_codec_shape_check checks what avro-c is given. The fast path accepts only what it can prove
 * the generic path accepts, and produces the same event field by field: anything else — a
 * frame of another schema, a malformed body, an invalid value, a map key given twice (avro-c
 * merges those), a map of more than FAST_MAX_KEYS entries, a schema whose fields are not in the
 * code's order — goes to the generic path, which decides and says why. So both paths reject
 * exactly the same messages with the same words (tests/unit/test_avro_fast.c holds them to it).
 */
#define FAST_MAX_KEYS 64 /* entries of one map checked for repeats on the stack */
#define FAST_NO 1        /* "let the generic path decide" */

/*
 * A reader that checks as it goes what avro_codec_shape_check checks (lengths within the body,
 * varints of at most 64 bits, UTF-8 strings, keys without NUL, union branches in range, block
 * sizes that agree, nothing after the record): any fault sets bad, every read after it returns
 * zeros, and the message goes to the generic path, whose check says what the fault was. One
 * pass over the bytes instead of a check and then a read.
 */
struct rd {
  const unsigned char *p, *end;
  bool bad;
};

static size_t rd_left(const struct rd *r) { return (size_t)(r->end - r->p); }

static int64_t rd_long(struct rd *r) {
  uint64_t v = 0;
  for (int i = 0; i < 10 && r->p < r->end; i++) {
    uint8_t b = *r->p++;
    if (i == 9 && b > 1)
      break; /* does not fit 64 bits */
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80))
      return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
  }
  r->bad = true;
  r->p = r->end;
  return 0;
}

/* Avro doubles are little-endian IEEE 754, whatever the host. */
static double rd_double(struct rd *r) {
  if (rd_left(r) < 8) {
    r->bad = true;
    r->p = r->end;
    return 0;
  }
  uint64_t u = 0;
  for (int i = 7; i >= 0; i--)
    u = u << 8 | r->p[i];
  r->p += 8;
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* A string (valid UTF-8; a map key also without NUL): *s and *n, or bad. */
static void rd_str(struct rd *r, const char **s, size_t *n, bool key) {
  int64_t len = rd_long(r);
  *s = "";
  *n = 0;
  if (r->bad || len < 0 || (uint64_t)len > rd_left(r) || !avro_codec_utf8_ok(r->p, (size_t)len) ||
      (key && memchr(r->p, '\0', (size_t)len))) {
    r->bad = true;
    r->p = r->end;
    return;
  }
  *s = (const char *)r->p;
  *n = (size_t)len;
  r->p += len;
}

/*
 * The item count of the next block of an array or map, each item at least min bytes (0: the
 * end). A negative count carries the block's size in bytes: *block_end is where the block must
 * end (NULL when it does not say).
 */
static size_t rd_block(struct rd *r, size_t min, const unsigned char **block_end) {
  int64_t count = rd_long(r);
  *block_end = NULL;
  if (count < 0) {
    /* -INT64_MIN does not exist (issue 10: a 10-byte zig-zag count reached it): out of range */
    int64_t size = count == INT64_MIN ? -1 : rd_long(r);
    if (size < 0 || (uint64_t)size > rd_left(r))
      r->bad = true;
    else
      *block_end = r->p + size;
    count = count == INT64_MIN ? 0 : -count;
  }
  if (r->bad || (uint64_t)count > rd_left(r) / min) {
    r->bad = true;
    r->p = r->end;
    return 0;
  }
  return (size_t)count;
}

/* After a block's items: where its size said it ends. */
static void rd_block_done(struct rd *r, const unsigned char *block_end) {
  if (block_end && r->p != block_end) {
    r->bad = true;
    r->p = r->end;
  }
}

/* A string field copied into dst[size] as avro_codec_copy_str would, or FAST_NO. */
static int fast_copy(struct rd *r, char *dst, size_t size) {
  const char *s;
  size_t n;
  rd_str(r, &s, &n, false);
  if (r->bad || n >= size || memchr(s, '\0', n))
    return FAST_NO;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return CANARY_OK;
}

/* The branch of a ["null", T] union: true when T follows. */
static bool rd_present(struct rd *r) {
  int64_t branch = rd_long(r);
  if (branch < 0 || branch > 1) {
    r->bad = true;
    r->p = r->end;
  }
  return branch == 1;
}

/* Where the names of one message go: NUL-terminated, in the codec's values buffer after the
 * values themselves (struct avro_codec has no buffer of its own for them). */
struct names {
  char *at, *end;
};

/* Map key k (n bytes) as a C string; FAST_NO when empty (the generic path says why). */
static int fast_name(struct names *nm, const char *k, size_t n, const char **out) {
  if (!n || (size_t)(nm->end - nm->at) < n + 1)
    return FAST_NO;
  memcpy(nm->at, k, n);
  nm->at[n] = '\0';
  *out = nm->at;
  nm->at += n + 1;
  return CANARY_OK;
}

/* True when a name of names[0 .. n) repeats (n <= FAST_MAX_KEYS). */
static bool repeats(const char *const *names, size_t n) {
  int16_t slot[2 * FAST_MAX_KEYS];
  memset(slot, 0xff, sizeof slot);
  for (size_t i = 0; i < n; i++) {
    uint32_t h = 2166136261u;
    for (const char *p = names[i]; *p; p++)
      h = (h ^ (unsigned char)*p) * 16777619u;
    for (uint32_t j = h % (2 * FAST_MAX_KEYS);; j = (j + 1) % (2 * FAST_MAX_KEYS)) {
      if (slot[j] < 0) {
        slot[j] = (int16_t)i;
        break;
      }
      if (strcmp(names[slot[j]], names[i]) == 0)
        return true;
    }
  }
  return false;
}

/* counters or gauges: map<double>. */
static int fast_values(struct rd *r, struct names *nm, struct metric_value *arr, size_t *n_out) {
  const char *names[FAST_MAX_KEYS];
  size_t n = 0;
  const unsigned char *block_end;
  for (size_t count; (count = rd_block(r, 9, &block_end)) != 0; rd_block_done(r, block_end))
    for (size_t i = 0; i < count; i++, n++) {
      const char *k;
      size_t kn;
      rd_str(r, &k, &kn, true);
      double x = rd_double(r);
      if (r->bad || n == FAST_MAX_KEYS || fast_name(nm, k, kn, &arr[n].name) || !isfinite(x))
        return FAST_NO;
      arr[n].value = x;
      names[n] = arr[n].name;
    }
  if (r->bad || repeats(names, n))
    return FAST_NO;
  *n_out = n;
  return CANARY_OK;
}

/* distributions: map<array<double>>, the values one after the other in vals. */
static int fast_dists(struct rd *r, struct names *nm, struct metric_dist *arr, double *vals,
                      size_t *n_out) {
  const char *names[FAST_MAX_KEYS];
  size_t n = 0, at = 0;
  const unsigned char *block_end, *items_end;
  for (size_t count; (count = rd_block(r, 2, &block_end)) != 0; rd_block_done(r, block_end))
    for (size_t i = 0; i < count; i++, n++) {
      const char *k;
      size_t kn;
      rd_str(r, &k, &kn, true);
      if (r->bad || n == FAST_MAX_KEYS || fast_name(nm, k, kn, &arr[n].name))
        return FAST_NO;
      names[n] = arr[n].name;
      arr[n].values = vals + at;
      arr[n].n = 0;
      for (size_t m; (m = rd_block(r, 8, &items_end)) != 0; rd_block_done(r, items_end))
        for (size_t j = 0; j < m; j++) {
          double x = rd_double(r);
          if (r->bad || !isfinite(x))
            return FAST_NO;
          vals[at++] = x;
          arr[n].n++;
        }
    }
  if (r->bad || repeats(names, n))
    return FAST_NO;
  *n_out = n;
  return CANARY_OK;
}

/* samples: array<DiffSample {input, stable, canary}>. */
static int fast_samples(struct rd *r, struct diff_sample *arr, size_t *n_out) {
  size_t n = 0;
  const unsigned char *block_end;
  for (size_t count; (count = rd_block(r, 24, &block_end)) != 0; rd_block_done(r, block_end))
    for (size_t i = 0; i < count; i++, n++) {
      double x[3];
      for (int f = 0; f < 3; f++)
        if (!isfinite(x[f] = rd_double(r)) || r->bad)
          return FAST_NO;
      arr[n] = (struct diff_sample){x[0], x[1], x[2]};
    }
  if (r->bad)
    return FAST_NO;
  *n_out = n;
  return CANARY_OK;
}

/* An empty map or array (one zero count); FAST_NO otherwise. */
static int fast_empty(struct rd *r) {
  const unsigned char *block_end;
  return rd_block(r, 1, &block_end) || r->bad ? FAST_NO : CANARY_OK;
}

/*
 * Room for whatever a body of len bytes can hold: every map entry or array item takes at least
 * one byte (a double eight), and a name of n bytes takes n + 1 with its length.
 */
static bool fast_reserve(avro_codec_t *c, size_t len) {
  size_t vals = len / 8 + 1, name_words = len / sizeof(double) + 1;
  return GROW(c, counters, len / 9 + 1) && GROW(c, gauges, len / 9 + 1) &&
         GROW(c, dists, len / 2 + 1) && GROW(c, samples, len / 24 + 1) &&
         GROW(c, values, vals + name_words);
}

/* The fields of a MetricEvent body in the schema's order (== the spec's: checked by the caller). */
static int fast_body(avro_codec_t *c, const unsigned char *body, size_t len, struct event *ev) {
  struct rd r = {body, body + len, false};
  size_t max_vals = len / 8 + 1;
  struct names nm = {(char *)(c->values + max_vals), (char *)(c->values + c->cap_values)};
  char type[32];
  if (fast_copy(&r, ev->id, sizeof ev->id) || fast_copy(&r, ev->rollout, sizeof ev->rollout))
    return FAST_NO;
  ev->time_ms = rd_long(&r);
  if (r.bad || fast_copy(&r, type, sizeof type) || !event_type_parse(type, &ev->type) ||
      !(T_METRICS & 1u << ev->type) || fast_copy(&r, ev->cohort, sizeof ev->cohort))
    return FAST_NO;
  const bool metrics = ev->type == EVENT_METRICS;
  if (rd_present(&r) != metrics || r.bad)
    return FAST_NO; /* variant: required for metrics, null for diff.samples */
  if (metrics) {
    const char *s;
    size_t n;
    rd_str(&r, &s, &n, false);
    int v = 0;
    while (v < VARIANT_COUNT && !(strlen(variant_n(v)) == n && memcmp(variant_n(v), s, n) == 0))
      v++;
    if (v == VARIANT_COUNT)
      return FAST_NO;
    ev->metrics.variant = (enum variant)v;
  }
  if (rd_present(&r) != metrics || r.bad)
    return FAST_NO; /* interval_ms, likewise */
  if (metrics && (ev->metrics.interval_ms = rd_long(&r), r.bad))
    return FAST_NO;
  struct event_metrics *m = &ev->metrics;
  if (metrics) {
    if (fast_values(&r, &nm, c->counters, &m->n_counters) ||
        fast_values(&r, &nm, c->gauges, &m->n_gauges) ||
        fast_dists(&r, &nm, c->dists, c->values, &m->n_dists) || fast_empty(&r) || r.p != r.end)
      return FAST_NO;
    m->counters = c->counters;
    m->gauges = c->gauges;
    m->dists = c->dists;
    return CANARY_OK;
  }
  if (fast_empty(&r) || fast_empty(&r) || fast_empty(&r) ||
      fast_samples(&r, c->samples, &ev->diff.n) || r.p != r.end)
    return FAST_NO;
  ev->diff.samples = c->samples;
  return CANARY_OK;
}

/* A metrics message decoded by the fast path: CANARY_OK, or FAST_NO (ev is then garbage). */
static int fast_metrics(avro_codec_t *c, const unsigned char *p, size_t len, struct event *ev) {
  struct avro_codec_slot *sl = &c->slot[SLOT_METRICS];
  if (len < AVRO_CODEC_HEADER || p[0] != AVRO_CODEC_MAGIC ||
      avro_codec_schema_id(p, len) != sl->id || !sl->shape)
    return FAST_NO;
  for (int k = 0; k < MF_COUNT_; k++)
    if (sl->idx[k] != k)
      return FAST_NO;
  const unsigned char *body = p + AVRO_CODEC_HEADER;
  size_t n = len - AVRO_CODEC_HEADER;
  if (!fast_reserve(c, n) || fast_body(c, body, n, ev) || !event_validate(ev, NULL, 0))
    return FAST_NO;
  return CANARY_OK;
}

/*
 * The time of an input message from its first three fields, read as fast_body reads them. Only
 * when the schema puts id, rollout and time first (as the spec does); otherwise the whole
 * message is decoded for it.
 */
int avro_codec_event_head(avro_codec_t *c, const void *buf, size_t len, int64_t *time_ms,
                          const char **id, size_t *id_len) {
  const unsigned char *p = buf;
  int32_t schema = avro_codec_schema_id(buf, len);
  *id = NULL;
  *id_len = 0;
  for (int s = 0; s < SLOT_COUNT; s++) {
    const struct avro_codec_slot *sl = &c->slot[s];
    if (sl->id != schema || !(SLOTS_INPUT & 1u << s))
      continue;
    if (sl->idx[MF_ID] != 0 || sl->idx[MF_ROLLOUT] != 1 || sl->idx[MF_TIME] != 2)
      break;
    struct rd r = {p + AVRO_CODEC_HEADER, p + len, false};
    const char *str, *ev_id;
    size_t n, ev_id_len;
    rd_str(&r, &ev_id, &ev_id_len, false);
    if (sl->spec[MF_ROLLOUT].sig[0] != '<' || rd_present(&r))
      rd_str(&r, &str, &n, false);
    *time_ms = rd_long(&r);
    if (r.bad)
      return CANARY_EPARSE;
    *id = ev_id;
    *id_len = ev_id_len;
    return CANARY_OK;
  }
  struct event ev;
  int rc = avro_codec_decode_event(c, buf, len, &ev, NULL, 0);
  *time_ms = ev.time_ms;
  return rc;
}

int avro_codec_event_time(avro_codec_t *c, const void *buf, size_t len, int64_t *time_ms) {
  const char *id;
  size_t id_len;
  return avro_codec_event_head(c, buf, len, time_ms, &id, &id_len);
}

int avro_codec_decode_event(avro_codec_t *c, const void *buf, size_t len, struct event *ev,
                            char *why, size_t why_len) {
  memset(ev, 0, sizeof *ev);
  if (fast_metrics(c, buf, len, ev) == CANARY_OK) {
    if (why && why_len)
      why[0] = '\0';
    return CANARY_OK;
  }
  return avro_codec_decode_event_generic(c, buf, len, ev, why, why_len);
}
