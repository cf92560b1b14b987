/* Input events <-> DeployEvent, CommandEvent and MetricEvent records. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"
#include "core/event_fields.h"
#include "core/topic.h"

/* The event types of each input topic (TOPIC_MAP, core/topic.h): a record type per topic. */
#define T_DEPLOY topic_event_types(TOPIC_DEPLOY)
#define T_COMMANDS topic_event_types(TOPIC_COMMANDS)
#define T_METRICS topic_event_types(TOPIC_METRICS)

_Static_assert(EVENT_TYPE_COUNT <= 32, "types are a 32-bit mask");

/*
 * The nullable fields of a deploy or command record are the rows of EVENT_FIELD_MAP
 * (core/event_fields.h) that the record's types carry, found by name in the slot's spec when the
 * codec is made (avro_codec_event_bind): which types use a field and which must give it are the
 * map's. `kind` is two rows for one Avro field: incident kind and alert kind.
 */
typedef struct event_field efield_t;

static const char *variant_n(int v) { return variant_name((enum variant)v); }
static const efield_t *const VARIANT = &event_fields[EVENT_F_VARIANT];

/* The event types of an input slot's topic; 0 for an output slot. */
static uint32_t slot_types(enum avro_slot s) {
  return s == SLOT_DEPLOY || s == SLOT_DEPLOY_V1       ? T_DEPLOY
       : s == SLOT_COMMANDS || s == SLOT_COMMANDS_V1 ? T_COMMANDS
       : s == SLOT_METRICS                           ? T_METRICS
                                                     : 0;
}

int avro_codec_event_bind(struct avro_codec_slot *sl, enum avro_slot s, char *why,
                          size_t why_len) {
  const uint32_t types = slot_types(s);
  memset(sl->row, -1, sizeof sl->row);
  for (int r = 0; r < EVENT_FIELD_COUNT; r++) {
    const efield_t *f = &event_fields[r];
    if (!(f->types & types))
      continue;
    int k = 0;
    while (k < (int)sl->n_spec && strcmp(sl->spec[k].name, f->name) != 0)
      k++;
    if (k == (int)sl->n_spec && (s == SLOT_DEPLOY_V1 || s == SLOT_COMMANDS_V1))
      continue; /* a field the older version did not have: it reads as absent */
    if (k == (int)sl->n_spec)
      return canary_why(why, why_len, CANARY_EINVALID, "%s: no field '%s' for the event field",
                        sl->record, f->name);
    for (int t = 0; t < EVENT_TYPE_COUNT; t++) {
      if (!(f->types & types & 1u << t))
        continue;
      if (sl->row[k][t] >= 0)
        return canary_why(why, why_len, CANARY_EINVALID, "%s: two event fields '%s' for %s",
                          sl->record, f->name, event_type_name((enum event_type)t));
      sl->row[k][t] = (signed char)r;
    }
  }
  /* and every field after the envelope is an event field of some type (none always null) */
  for (int k = DF_TYPE + 1; types && k < (int)sl->n_spec; k++) {
    bool bound = false;
    for (int t = 0; t < EVENT_TYPE_COUNT && !bound; t++)
      bound = sl->row[k][t] >= 0;
    if (!bound)
      return canary_why(why, why_len, CANARY_EINVALID, "%s: field '%s' is no event field",
                        sl->record, sl->spec[k].name);
  }
  return CANARY_OK;
}

/* The row spec field k of the slot holds for type t, or NULL. */
static const efield_t *row_of(const struct avro_codec_slot *sl, int k, enum event_type t) {
  int r = sl->row[k][t];
  return r >= 0 ? &event_fields[r] : NULL;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A field's name as the schema spells it. */
static const char *fname(const struct avro_codec_slot *sl, int k) {
  return sl->spec[k].name;
}

/* "product_owner, support, docs" */
static void enum_list(const efield_t *en, char *buf, size_t len) {
  size_t at = 0;
  buf[0] = '\0';
  for (int i = 0; i < en->count && at < len; i++)
    at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", en->wire(i));
}

const char *avro_codec_topic_of(enum event_type t) {
  enum topic topic = topic_of_event(t);
  return topic < TOPIC_COUNT ? topic_name(topic) : NULL;
}

/* ---- decoding ------------------------------------------------------------------------------- */

struct dec {
  avro_codec_t *c;
  struct avro_codec_slot *sl;
  struct event *ev;
  char *why;
  size_t why_len;
};

#define INVALID(d, ...) canary_why((d)->why, (d)->why_len, CANARY_EINVALID, __VA_ARGS__)

static int avro_broke(struct dec *d, const char *field) {
  return canary_why(d->why, d->why_len, CANARY_EINVALID, "%s: %s", field, avro_strerror());
}

/* Field k of the record, and whether it is set (not null). */
static int get(struct dec *d, int k, avro_value_t *v, bool *present) {
  avro_value_t f;
  if (avro_codec_field(d->sl, &d->sl->dec, k, &f))
    return avro_broke(d, fname(d->sl, k));
  int rc = avro_codec_opt(&f, v);
  if (rc < 0)
    return avro_broke(d, fname(d->sl, k));
  *present = rc == 1;
  return CANARY_OK;
}

static int parse_enum(struct dec *d, const char *field, const efield_t *en, avro_value_t *v) {
  const char *s = "";
  size_t n = 0;
  int rc = avro_codec_get_str(v, field, &s, &n, d->why, d->why_len);
  if (rc)
    return rc;
  for (int i = 0; i < en->count; i++) {
    const char *name = en->wire(i);
    if (strlen(name) == n && memcmp(name, s, n) == 0) {
      event_field_enum_set(d->ev, en, i);
      return CANARY_OK;
    }
  }
  char got[48], list[160];
  avro_codec_excerpt(s, n, got, sizeof got);
  enum_list(en, list, sizeof list);
  return INVALID(d, "%s: '%s' is not one of %s", field, got, list);
}

static int get_long(struct dec *d, const char *field, avro_value_t *v, int64_t *out) {
  return avro_value_get_long(v, out) ? avro_broke(d, field) : CANARY_OK;
}

/* One nullable field of a deploy or command record (a scalar row of the map). */
static int decode_field(struct dec *d, int k, const efield_t *f, avro_value_t *v) {
  struct event *ev = d->ev;
  const char *name = fname(d->sl, k);
  switch (f->kind) {
  case EVENT_FIELD_STR:
    return avro_codec_copy_str(v, name, (char *)ev + f->off, f->size, d->why, d->why_len);
  case EVENT_FIELD_BOOL: {
    int b;
    if (avro_value_get_boolean(v, &b))
      return avro_broke(d, name);
    *(bool *)((char *)ev + f->off) = b != 0;
    return CANARY_OK;
  }
  case EVENT_FIELD_I64:
    return get_long(d, name, v, (int64_t *)((char *)ev + f->off));
  case EVENT_FIELD_INT: {
    int32_t x;
    if (avro_value_get_int(v, &x))
      return avro_broke(d, name);
    if (x < f->min || x > f->max)
      return INVALID(d, "%s: must be %d..%d, got %ld", f->name, f->min, f->max, (long)x);
    *(int *)((char *)ev + f->off) = x;
    return CANARY_OK;
  }
  case EVENT_FIELD_ENUM:
    return parse_enum(d, name, f, v);
  default:
    break;
  }
  return INVALID(d, "%s: unsupported", name);
}

/* The nullable fields of a deploy or command record: required ones given, foreign ones null. */
static int decode_fields(struct dec *d, int first, int count) {
  const uint32_t bit = 1u << d->ev->type;
  for (int k = first; k < count; k++) {
    avro_value_t v;
    bool present = false;
    int rc = get(d, k, &v, &present);
    if (rc)
      return rc;
    const efield_t *f = row_of(d->sl, k, d->ev->type);
    if (!f) {
      if (present)
        return INVALID(d, "%s: not a field of %s (must be null)", fname(d->sl, k),
                       event_type_name(d->ev->type));
      continue;
    }
    if (!present) {
      if (f->required & bit)
        return INVALID(d, "%s: missing (required for %s)", fname(d->sl, k),
                       event_type_name(d->ev->type));
      continue;
    }
    if ((rc = decode_field(d, k, f, &v)))
      return rc;
  }
  return CANARY_OK;
}

/* id, rollout, time and type: the first four fields of every input record. */
static int decode_common(struct dec *d, uint32_t types) {
  avro_value_t v;
  bool present = false;
  int rc;
  if ((rc = get(d, DF_TYPE, &v, &present)))
    return rc;
  const char *s = "";
  size_t n = 0;
  if ((rc = avro_codec_get_str(&v, "type", &s, &n, d->why, d->why_len)))
    return rc;
  char got[48];
  if (n >= 32 || !event_type_parse(avro_codec_excerpt(s, n, got, sizeof got), &d->ev->type))
    return INVALID(d, "type: unknown event type '%s'", avro_codec_excerpt(s, n, got, sizeof got));
  if (!(types & 1u << d->ev->type))
    return INVALID(d, "type: %s is not an event of %s (schema id %ld)", got, d->sl->topic,
                   (long)d->sl->id);

  if ((rc = get(d, DF_ID, &v, &present)) ||
      (rc = avro_codec_copy_str(&v, "id", d->ev->id, sizeof d->ev->id, d->why, d->why_len)))
    return rc;
  if ((rc = get(d, DF_ROLLOUT, &v, &present)))
    return rc;
  if (present &&
      (rc = avro_codec_copy_str(&v, "rollout", d->ev->rollout, sizeof d->ev->rollout, d->why,
                                d->why_len)))
    return rc;
  if ((rc = get(d, DF_TIME, &v, &present)))
    return rc;
  return get_long(d, "time", &v, &d->ev->time_ms);
}
#define SAME(a, b, c) ((int)(a) == (int)(b) && (int)(a) == (int)(c))
_Static_assert(SAME(DF_ID, CF_ID, MF_ID) && SAME(DF_ROLLOUT, CF_ROLLOUT, MF_ROLLOUT) &&
                   SAME(DF_TIME, CF_TIME, MF_TIME) && SAME(DF_TYPE, CF_TYPE, MF_TYPE),
               "the common fields come first in every input spec (avro_codec_event_time too)");

/* Grow *arr to hold n items of size each. */
static bool grow(void **arr, size_t *cap, size_t n, size_t size) {
  if (*cap >= n)
    return true;
  size_t c = *cap ? *cap : 16;
  while (c < n)
    c *= 2;
  void *p = realloc(*arr, c * size);
  if (!p)
    return false;
  *arr = p;
  *cap = c;
  return true;
}
#define GROW(c, arr, n) grow((void **)&(c)->arr, &(c)->cap_##arr, (n), sizeof *(c)->arr)

static int nomem(struct dec *d) {
  return canary_why(d->why, d->why_len, CANARY_ENOMEM, "out of memory");
}

/* A metric name: the map key, as a C string (the check refused NUL in keys). */
static int metric_name(struct dec *d, const char *field, const char *name) {
  if (!name || !name[0])
    return INVALID(d, "%s: metric names must not be empty", field);
  return CANARY_OK;
}

/* counters or gauges: map<double> into the codec's array. */
static int decode_values(struct dec *d, int k, struct metric_value **arr, size_t *cap,
                         const struct metric_value **out, size_t *n_out) {
  const char *field = fname(d->sl, k);
  avro_value_t map, v;
  size_t n;
  if (avro_codec_field(d->sl, &d->sl->dec, k, &map) || avro_value_get_size(&map, &n))
    return avro_broke(d, field);
  if (!grow((void **)arr, cap, n, sizeof **arr))
    return nomem(d);
  for (size_t i = 0; i < n; i++) {
    const char *name;
    double x;
    if (avro_value_get_by_index(&map, i, &v, &name) || avro_value_get_double(&v, &x))
      return avro_broke(d, field);
    int rc = metric_name(d, field, name);
    if (rc)
      return rc;
    if (!isfinite(x))
      return INVALID(d, "%s.%s: not a finite number", field, name);
    (*arr)[i] = (struct metric_value){name, x};
  }
  *out = *arr;
  *n_out = n;
  return CANARY_OK;
}

/* distributions: map<array<double>>; all values in one array of the codec. */
static int decode_dists(struct dec *d) {
  avro_codec_t *c = d->c;
  avro_value_t map, arr, v;
  size_t n, total = 0;
  if (avro_codec_field(d->sl, &d->sl->dec, MF_DISTRIBUTIONS, &map) ||
      avro_value_get_size(&map, &n))
    return avro_broke(d, "distributions");
  for (size_t i = 0; i < n; i++) {
    size_t m;
    if (avro_value_get_by_index(&map, i, &arr, NULL) || avro_value_get_size(&arr, &m))
      return avro_broke(d, "distributions");
    total += m;
  }
  if (!GROW(c, dists, n) || !GROW(c, values, total))
    return nomem(d);
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name;
    size_t m;
    if (avro_value_get_by_index(&map, i, &arr, &name) || avro_value_get_size(&arr, &m))
      return avro_broke(d, "distributions");
    int rc = metric_name(d, "distributions", name);
    if (rc)
      return rc;
    for (size_t j = 0; j < m; j++) {
      double x;
      if (avro_value_get_by_index(&arr, j, &v, NULL) || avro_value_get_double(&v, &x))
        return avro_broke(d, "distributions");
      if (!isfinite(x))
        return INVALID(d, "distributions.%s[%zu]: not a finite number", name, j);
      c->values[at + j] = x;
    }
    c->dists[i] = (struct metric_dist){name, c->values + at, m};
    at += m;
  }
  d->ev->metrics.dists = c->dists;
  d->ev->metrics.n_dists = n;
  return CANARY_OK;
}

/* samples: array<DiffSample {input, stable, canary}> (the spec pins the field order). */
static int decode_samples(struct dec *d) {
  static const char *const names[] = {"input", "stable", "canary"};
  avro_codec_t *c = d->c;
  avro_value_t arr, rec, v;
  size_t n;
  if (avro_codec_field(d->sl, &d->sl->dec, MF_SAMPLES, &arr) || avro_value_get_size(&arr, &n))
    return avro_broke(d, "samples");
  if (!GROW(c, samples, n))
    return nomem(d);
  for (size_t i = 0; i < n; i++) {
    double x[3];
    if (avro_value_get_by_index(&arr, i, &rec, NULL))
      return avro_broke(d, "samples");
    for (int f = 0; f < 3; f++) {
      if (avro_value_get_by_index(&rec, (size_t)f, &v, NULL) || avro_value_get_double(&v, &x[f]))
        return avro_broke(d, "samples");
      if (!isfinite(x[f]))
        return INVALID(d, "samples[%zu].%s: not a finite number", i, names[f]);
    }
    c->samples[i] = (struct diff_sample){x[0], x[1], x[2]};
  }
  d->ev->diff.samples = c->samples;
  d->ev->diff.n = n;
  return CANARY_OK;
}

/* A map or array field that must be empty for this type. */
static int must_be_empty(struct dec *d, int k) {
  avro_value_t v;
  size_t n;
  if (avro_codec_field(d->sl, &d->sl->dec, k, &v) || avro_value_get_size(&v, &n))
    return avro_broke(d, fname(d->sl, k));
  if (n)
    return INVALID(d, "%s: not a field of %s (must be empty)", fname(d->sl, k),
                   event_type_name(d->ev->type));
  return CANARY_OK;
}

static int decode_metrics(struct dec *d) {
  struct event *ev = d->ev;
  avro_codec_t *c = d->c;
  avro_value_t v;
  bool present = false;
  int rc;
  if ((rc = get(d, MF_COHORT, &v, &present)) ||
      (rc = avro_codec_copy_str(&v, "cohort", ev->cohort, sizeof ev->cohort, d->why, d->why_len)))
    return rc;
  if (ev->type == EVENT_DIFF_SAMPLES) {
    static const int foreign[] = {MF_VARIANT, MF_INTERVAL_MS};
    for (size_t i = 0; i < N(foreign); i++) {
      if ((rc = get(d, foreign[i], &v, &present)))
        return rc;
      if (present)
        return INVALID(d, "%s: not a field of diff.samples (must be null)",
                       fname(d->sl, foreign[i]));
    }
    if ((rc = must_be_empty(d, MF_COUNTERS)) || (rc = must_be_empty(d, MF_GAUGES)) ||
        (rc = must_be_empty(d, MF_DISTRIBUTIONS)))
      return rc;
    return decode_samples(d);
  }

  if ((rc = get(d, MF_VARIANT, &v, &present)))
    return rc;
  if (!present)
    return INVALID(d, "variant: missing (required for metrics)");
  if ((rc = parse_enum(d, "variant", VARIANT, &v)))
    return rc;
  if ((rc = get(d, MF_INTERVAL_MS, &v, &present)))
    return rc;
  if (!present)
    return INVALID(d, "interval_ms: missing (required for metrics)");
  if ((rc = get_long(d, "interval_ms", &v, &ev->metrics.interval_ms)))
    return rc;
  if ((rc = must_be_empty(d, MF_SAMPLES)))
    return rc;
  if ((rc = decode_values(d, MF_COUNTERS, &c->counters, &c->cap_counters, &ev->metrics.counters,
                          &ev->metrics.n_counters)) ||
      (rc = decode_values(d, MF_GAUGES, &c->gauges, &c->cap_gauges, &ev->metrics.gauges,
                          &ev->metrics.n_gauges)))
    return rc;
  return decode_dists(d);
}


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
  if (r->bad || len < 0 || (uint64_t)len > rd_left(r) ||
      !avro_codec_utf8_ok(r->p, (size_t)len) || (key && memchr(r->p, '\0', (size_t)len))) {
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
        fast_dists(&r, &nm, c->dists, c->values, &m->n_dists) || fast_empty(&r) ||
        r.p != r.end)
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

int avro_codec_decode_event_generic(avro_codec_t *c, const void *buf, size_t len,
                                    struct event *ev, char *why, size_t why_len) {
  memset(ev, 0, sizeof *ev);
  struct avro_codec_slot *sl;
  int rc = avro_codec_read(c, buf, len, SLOTS_INPUT, &sl, why, why_len);
  if (rc)
    return rc;
  struct dec d = {c, sl, ev, why, why_len};
  const enum avro_slot which = (enum avro_slot)(sl - c->slot);
  switch (which) {
  case SLOT_DEPLOY:
  case SLOT_DEPLOY_V1: /* its fields are the first n_spec */
    rc = decode_common(&d, T_DEPLOY);
    if (!rc)
      rc = decode_fields(&d, DF_SERVICE, (int)sl->n_spec);
    break;
  case SLOT_COMMANDS:
  case SLOT_COMMANDS_V1:
    rc = decode_common(&d, T_COMMANDS);
    if (!rc && !ev->rollout[0] && ev->type != EVENT_FLAG_SET)
      rc = INVALID(&d, "rollout: missing (only a flag.set may apply to all rollouts)");
    if (!rc)
      rc = decode_fields(&d, CF_ACTION, (int)sl->n_spec);
    break;
  case SLOT_METRICS:
    rc = decode_common(&d, T_METRICS);
    if (!rc)
      rc = decode_metrics(&d);
    break;
  default:
    rc = INVALID(&d, "schema id %ld is not an input event", (long)sl->id);
    break;
  }
  if (rc)
    return rc;
  if (!event_validate(ev, why, why_len))
    return CANARY_EINVALID;
  return CANARY_OK;
}

/* ---- encoding ------------------------------------------------------------------------------- */

/* Every char array of ev ends within its size. */
static bool strings_terminated(const struct event *ev) {
#define TERM(m) (memchr(ev->m, '\0', sizeof ev->m) != NULL)
  return TERM(id) && TERM(rollout) && TERM(service) && TERM(version) && TERM(baseline_version) &&
         TERM(cohort) && TERM(incident) && TERM(actor) && TERM(detail) && TERM(reason) &&
         TERM(flag) && TERM(item);
#undef TERM
}

static int encode_field(struct avro_codec_slot *sl, avro_value_t *rec, int k, const efield_t *f,
                        const struct event *ev) {
  const char *p = (const char *)ev + f->off;
  avro_value_t v;
  int rc;
  switch (f->kind) {
  case EVENT_FIELD_STR:
    /* Optional strings travel as null when empty, required ones as they are. */
    if (!f->required)
      return avro_codec_put_ostr(sl, rec, k, p, f->size);
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_string(&v, p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_BOOL:
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_boolean(&v, *(const bool *)p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_I64:
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_long(&v, *(const int64_t *)p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_INT:
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_int(&v, *(const int *)p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_ENUM: {
    int e = event_field_enum_get(ev, f);
    if (e < 0 || e >= f->count)
      return CANARY_EINVALID;
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_string(&v, f->wire(e)) ? CANARY_ENOMEM : CANARY_OK;
  }
  default:
    break;
  }
  return CANARY_EINVALID;
}

/* The nullable fields of a deploy or command record: the type's own, the rest null. */
static int encode_fields(struct avro_codec_slot *sl, avro_value_t *rec, int first, int count,
                         const struct event *ev) {
  for (int k = first; k < count; k++) {
    const efield_t *f = row_of(sl, k, ev->type);
    avro_value_t v;
    int rc = f ? encode_field(sl, rec, k, f, ev) : avro_codec_put_branch(sl, rec, k, false, &v);
    if (rc)
      return rc;
  }
  return CANARY_OK;
}

/* counters or gauges: names must be set and unique. */
static int encode_values(struct avro_codec_slot *sl, avro_value_t *rec, int k,
                         const struct metric_value *vals, size_t n) {
  avro_value_t map, v;
  if (n && !vals)
    return CANARY_EINVALID;
  if (avro_codec_field(sl, rec, k, &map))
    return CANARY_EINVALID;
  for (size_t i = 0; i < n; i++) {
    int is_new = 0;
    if (!vals[i].name || !vals[i].name[0])
      return CANARY_EINVALID;
    if (avro_value_add(&map, vals[i].name, &v, NULL, &is_new))
      return CANARY_ENOMEM;
    if (!is_new)
      return CANARY_EINVALID; /* a name given twice */
    if (avro_value_set_double(&v, vals[i].value))
      return CANARY_ENOMEM;
  }
  return CANARY_OK;
}

static int encode_metrics(struct avro_codec_slot *sl, avro_value_t *rec, const struct event *ev) {
  avro_value_t v, map, arr, item, x;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, MF_COHORT, ev->cohort, sizeof ev->cohort)))
    return rc;
  const bool metrics = ev->type == EVENT_METRICS;
  if (metrics && (unsigned)ev->metrics.variant >= VARIANT_COUNT)
    return CANARY_EINVALID;
  if ((rc = avro_codec_put_branch(sl, rec, MF_VARIANT, metrics, &v)))
    return rc;
  if (metrics && avro_value_set_string(&v, variant_name(ev->metrics.variant)))
    return CANARY_ENOMEM;
  if ((rc = avro_codec_put_branch(sl, rec, MF_INTERVAL_MS, metrics, &v)))
    return rc;
  if (metrics && avro_value_set_long(&v, ev->metrics.interval_ms))
    return CANARY_ENOMEM;
  /* Maps and arrays were emptied by the reset in avro_codec_begin(). */
  if (metrics) {
    const struct event_metrics *m = &ev->metrics;
    if ((rc = encode_values(sl, rec, MF_COUNTERS, m->counters, m->n_counters)) ||
        (rc = encode_values(sl, rec, MF_GAUGES, m->gauges, m->n_gauges)))
      return rc;
    if (m->n_dists && !m->dists)
      return CANARY_EINVALID;
    if (avro_codec_field(sl, rec, MF_DISTRIBUTIONS, &map))
      return CANARY_EINVALID;
    for (size_t i = 0; i < m->n_dists; i++) {
      const struct metric_dist *dd = &m->dists[i];
      int is_new = 0;
      if (!dd->name || !dd->name[0] || (dd->n && !dd->values))
        return CANARY_EINVALID;
      if (avro_value_add(&map, dd->name, &arr, NULL, &is_new))
        return CANARY_ENOMEM;
      if (!is_new)
        return CANARY_EINVALID;
      for (size_t j = 0; j < dd->n; j++)
        if (avro_value_append(&arr, &x, NULL) || avro_value_set_double(&x, dd->values[j]))
          return CANARY_ENOMEM;
    }
    return CANARY_OK;
  }
  if (ev->diff.n && !ev->diff.samples)
    return CANARY_EINVALID;
  if (avro_codec_field(sl, rec, MF_SAMPLES, &arr))
    return CANARY_EINVALID;
  for (size_t i = 0; i < ev->diff.n; i++) {
    const struct diff_sample *s = &ev->diff.samples[i];
    const double xs[3] = {s->input, s->stable, s->canary};
    if (avro_value_append(&arr, &item, NULL))
      return CANARY_ENOMEM;
    for (int f = 0; f < 3; f++)
      if (avro_value_get_by_index(&item, (size_t)f, &x, NULL) || avro_value_set_double(&x, xs[f]))
        return CANARY_ENOMEM;
  }
  return CANARY_OK;
}

int avro_codec_encode_event(avro_codec_t *c, const struct event *ev, struct avro_buf *out) {
  if ((unsigned)ev->type >= EVENT_TYPE_COUNT || !strings_terminated(ev) ||
      !event_validate(ev, NULL, 0))
    return CANARY_EINVALID;
  const uint32_t bit = 1u << ev->type;
  enum avro_slot which = bit & T_DEPLOY ? SLOT_DEPLOY : bit & T_COMMANDS ? SLOT_COMMANDS
                                                                         : SLOT_METRICS;
  struct avro_codec_slot *sl = &c->slot[which];
  avro_value_t *rec = avro_codec_begin(c, which);
  if (!rec)
    return CANARY_ENOMEM;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, DF_ID, ev->id, sizeof ev->id)) ||
      (rc = avro_codec_put_long(sl, rec, DF_TIME, ev->time_ms)))
    return rc;
  avro_value_t type;
  if (avro_codec_field(sl, rec, DF_TYPE, &type) ||
      avro_value_set_string(&type, event_type_name(ev->type)))
    return CANARY_ENOMEM;
  if (which == SLOT_COMMANDS)
    rc = avro_codec_put_ostr(sl, rec, CF_ROLLOUT, ev->rollout, sizeof ev->rollout);
  else
    rc = avro_codec_put_str(sl, rec, DF_ROLLOUT, ev->rollout, sizeof ev->rollout);
  if (rc)
    return rc;
  switch (which) {
  case SLOT_DEPLOY:
    rc = encode_fields(sl, rec, DF_SERVICE, DF_COUNT_, ev);
    break;
  case SLOT_COMMANDS:
    rc = encode_fields(sl, rec, CF_ACTION, CF_COUNT_, ev);
    break;
  default:
    rc = encode_metrics(sl, rec, ev);
    break;
  }
  if (rc)
    return rc;
  return avro_codec_finish(c, which, out);
}
