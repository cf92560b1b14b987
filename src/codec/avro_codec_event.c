/* Input events <-> DeployEvent, CommandEvent and MetricEvent records: the binding of their fields
 * to EVENT_FIELD_MAP and the decoding through avro-c's generic values (avro_codec_event_fast.c
 * reads canary.metrics straight from the bytes; avro_codec_event_encode.c writes the records). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"
#include "core/event_fields.h"
#include "core/topic.h"

_Static_assert(EVENT_TYPE_COUNT <= 32, "types are a 32-bit mask");

static const efield_t *const VARIANT = &event_fields[EVENT_F_VARIANT];

/* The event types of an input slot's topic; 0 for an output slot. */
static uint32_t slot_types(enum avro_slot s) {
  return s == SLOT_DEPLOY || s == SLOT_DEPLOY_V1       ? T_DEPLOY
         : s == SLOT_COMMANDS || s == SLOT_COMMANDS_V1 ? T_COMMANDS
         : s == SLOT_METRICS                           ? T_METRICS
                                                       : 0;
}

int avro_codec_event_bind(struct avro_codec_slot *sl, enum avro_slot s, char *why, size_t why_len) {
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
const efield_t *avro_codec_row_of(const struct avro_codec_slot *sl, int k, enum event_type t) {
  int r = sl->row[k][t];
  return r >= 0 ? &event_fields[r] : NULL;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A field's name as the schema spells it. */
static const char *fname(const struct avro_codec_slot *sl, int k) { return sl->spec[k].name; }

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
    const efield_t *f = avro_codec_row_of(d->sl, k, d->ev->type);
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
  if (present && (rc = avro_codec_copy_str(&v, "rollout", d->ev->rollout, sizeof d->ev->rollout,
                                           d->why, d->why_len)))
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
bool avro_codec_grow(void **arr, size_t *cap, size_t n, size_t size) {
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
  if (!avro_codec_grow((void **)arr, cap, n, sizeof **arr))
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
  if (avro_codec_field(d->sl, &d->sl->dec, MF_DISTRIBUTIONS, &map) || avro_value_get_size(&map, &n))
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

int avro_codec_decode_event_generic(avro_codec_t *c, const void *buf, size_t len, struct event *ev,
                                    char *why, size_t why_len) {
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
