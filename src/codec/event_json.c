/* Events <-> flat JSON objects by one field table; decisions, notifications and splits -> JSON. */
#include "codec/event_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/rfc3339.h"
#include "core/event_fields.h"

struct event_scratch {
  struct json_doc doc; /* the document of event_from_json() */
  struct metric_value *counters, *gauges;
  size_t counters_cap, gauges_cap;
  struct metric_dist *dists;
  size_t dists_cap;
  double *values; /* every distribution's values, one after another */
  size_t values_cap;
  struct diff_sample *samples;
  size_t samples_cap;
};

struct event_scratch *event_scratch_new(void) {
  struct event_scratch *s = calloc(1, sizeof *s);
  if (s)
    json_doc_init(&s->doc);
  return s;
}

void event_scratch_destroy(struct event_scratch *s) {
  if (!s)
    return;
  json_doc_free(&s->doc);
  free(s->counters);
  free(s->gauges);
  free(s->dists);
  free(s->values);
  free(s->samples);
  free(s);
}

/*
 * arr with room for at least need elements of size elem (arr itself if it has). On ENOMEM the
 * old array is freed and *cap zeroed, so that assigning the NULL result keeps the scratch sane.
 */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem) {
  if (need == 0)
    need = 1; /* an empty payload still gets an array: NULL means out of memory */
  if (need <= *cap)
    return arr;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *q = realloc(arr, c * elem);
  if (!q) {
    free(arr);
    c = 0;
  }
  *cap = c;
  return q;
}

#define GROW(s, arr, need) ((s)->arr = grow((s)->arr, &(s)->arr##_cap, (need), sizeof *(s)->arr))

/* ---- the field table ------------------------------------------------------------------------ */

/*
 * Every field after id, rollout, time and type is a row of event_fields[], generated from
 * EVENT_FIELD_MAP (core/event_fields.h) in the order the contract lists them: that order is the
 * order of the keys event_to_json writes, for every type. `kind` is two rows: incident_kind for
 * incident.opened, alert_kind for alert.raised.
 */

/* ---- decoding ------------------------------------------------------------------------------- */

struct decoder {
  struct event *ev;
  struct event_scratch *scratch;
  char *why;
  size_t why_len;
};

#define INVALID(d, ...) canary_why((d)->why, (d)->why_len, CANARY_EINVALID, __VA_ARGS__)

static int nomem(struct decoder *d) {
  return canary_why(d->why, d->why_len, CANARY_ENOMEM, "out of memory");
}

/* "expected string, got number": the value's type for a message. */
static int wrong_type(struct decoder *d, const char *field, const char *expected,
                      const struct json_value *v) {
  return INVALID(d, "%s: expected %s, got %s", field, expected, json_type_name(v->type));
}

static bool key_is(const struct json_member *m, const char *name) {
  return strlen(name) == m->key_len && memcmp(m->key, name, m->key_len) == 0;
}

static int get_str(struct decoder *d, const char *field, const struct json_value *v, char *dst,
                   size_t size) {
  if (v->type != JSON_STRING)
    return wrong_type(d, field, "string", v);
  if (strlen(v->str) != v->len)
    return INVALID(d, "%s: must not contain NUL characters", field);
  if (v->len >= size)
    return INVALID(d, "%s: longer than %zu bytes", field, size - 1);
  memcpy(dst, v->str, v->len + 1);
  return CANARY_OK;
}

static int get_i64(struct decoder *d, const char *field, const struct json_value *v, int64_t *out) {
  if (v->type != JSON_NUMBER)
    return wrong_type(d, field, "integer", v);
  if (!v->is_int)
    return INVALID(d, "%s: must be an integer", field);
  *out = v->i;
  return CANARY_OK;
}

static int get_enum(struct decoder *d, const struct event_field *f, const struct json_value *v) {
  if (v->type != JSON_STRING)
    return wrong_type(d, f->name, "string", v);
  for (int k = 0; k < f->count; k++) {
    if (strcmp(v->str, f->wire(k)) == 0 && strlen(v->str) == v->len) {
      event_field_enum_set(d->ev, f, k);
      return CANARY_OK;
    }
  }
  char got[48], list[160];
  size_t n = 0;
  list[0] = '\0';
  for (int k = 0; k < f->count && n < sizeof list; k++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", f->wire(k));
  json_excerpt(v->str, v->len, got, sizeof got);
  return INVALID(d, "%s: '%s' is not one of %s", f->name, got, list);
}

/* A metric name: an object key that can serve as a C string. */
static int metric_name(struct decoder *d, const char *field, const struct json_member *m) {
  if (m->key_len == 0)
    return INVALID(d, "%s: metric names must not be empty", field);
  if (strlen(m->key) != m->key_len)
    return INVALID(d, "%s: metric names must not contain NUL characters", field);
  return CANARY_OK;
}

/* counters or gauges: {name: number}. */
static int get_values(struct decoder *d, const char *field, const struct json_value *v,
                      bool gauges) {
  struct event_scratch *s = d->scratch;
  if (v->type != JSON_OBJECT)
    return wrong_type(d, field, "object", v);
  struct metric_value *arr = !s       ? NULL
                             : gauges ? GROW(s, gauges, v->n_members)
                                      : GROW(s, counters, v->n_members);
  if (!arr)
    return nomem(d);
  for (size_t k = 0; k < v->n_members; k++) {
    const struct json_member *m = &v->members[k];
    int rc = metric_name(d, field, m);
    if (rc)
      return rc;
    if (m->value.type != JSON_NUMBER) {
      char name[48];
      json_excerpt(m->key, m->key_len, name, sizeof name);
      return INVALID(d, "%s.%s: expected number, got %s", field, name,
                     json_type_name(m->value.type));
    }
    arr[k] = (struct metric_value){m->key, m->value.num};
  }
  if (gauges) {
    d->ev->metrics.gauges = arr;
    d->ev->metrics.n_gauges = v->n_members;
  } else {
    d->ev->metrics.counters = arr;
    d->ev->metrics.n_counters = v->n_members;
  }
  return CANARY_OK;
}

/* distributions: {name: [number, ...]}; all values go into one array of the scratch. */
static int get_dists(struct decoder *d, const struct json_value *v) {
  struct event_scratch *s = d->scratch;
  if (v->type != JSON_OBJECT)
    return wrong_type(d, "distributions", "object", v);
  size_t total = 0;
  for (size_t k = 0; k < v->n_members; k++) {
    const struct json_member *m = &v->members[k];
    int rc = metric_name(d, "distributions", m);
    if (rc)
      return rc;
    if (m->value.type != JSON_ARRAY) {
      char name[48];
      json_excerpt(m->key, m->key_len, name, sizeof name);
      return INVALID(d, "distributions.%s: expected array, got %s", name,
                     json_type_name(m->value.type));
    }
    total += m->value.n_items;
  }
  if (!s || !GROW(s, dists, v->n_members) || !GROW(s, values, total))
    return nomem(d);
  size_t at = 0;
  for (size_t k = 0; k < v->n_members; k++) {
    const struct json_member *m = &v->members[k];
    for (size_t j = 0; j < m->value.n_items; j++) {
      const struct json_value *x = &m->value.items[j];
      if (x->type != JSON_NUMBER) {
        char name[48];
        json_excerpt(m->key, m->key_len, name, sizeof name);
        return INVALID(d, "distributions.%s[%zu]: expected number, got %s", name, j,
                       json_type_name(x->type));
      }
      s->values[at + j] = x->num;
    }
    s->dists[k] = (struct metric_dist){m->key, s->values + at, m->value.n_items};
    at += m->value.n_items;
  }
  d->ev->metrics.dists = s->dists;
  d->ev->metrics.n_dists = v->n_members;
  return CANARY_OK;
}

/* samples: [{input, stable, canary}, ...], each of the three required and nothing else. */
static int get_samples(struct decoder *d, const struct json_value *v) {
  struct event_scratch *s = d->scratch;
  static const char *const names[] = {"input", "stable", "canary"};
  if (v->type != JSON_ARRAY)
    return wrong_type(d, "samples", "array", v);
  if (!s || !GROW(s, samples, v->n_items))
    return nomem(d);
  for (size_t k = 0; k < v->n_items; k++) {
    const struct json_value *x = &v->items[k];
    if (x->type != JSON_OBJECT)
      return INVALID(d, "samples[%zu]: expected object, got %s", k, json_type_name(x->type));
    double val[3];
    for (int f = 0; f < 3; f++) {
      const struct json_value *y = json_get(x, names[f]);
      if (!y)
        return INVALID(d, "samples[%zu].%s: missing", k, names[f]);
      if (y->type != JSON_NUMBER)
        return INVALID(d, "samples[%zu].%s: expected number, got %s", k, names[f],
                       json_type_name(y->type));
      val[f] = y->num;
    }
    if (x->n_members != 3) {
      for (size_t j = 0; j < x->n_members; j++) {
        const struct json_member *m = &x->members[j];
        if (!key_is(m, "input") && !key_is(m, "stable") && !key_is(m, "canary")) {
          char key[48];
          json_excerpt(m->key, m->key_len, key, sizeof key);
          return INVALID(d, "samples[%zu]: unknown field '%s'", k, key);
        }
      }
    }
    s->samples[k] = (struct diff_sample){val[0], val[1], val[2]};
  }
  d->ev->diff.samples = s->samples;
  d->ev->diff.n = v->n_items;
  return CANARY_OK;
}

static int decode_field(struct decoder *d, const struct event_field *f,
                        const struct json_value *v) {
  char *at = (char *)d->ev + f->off;
  int64_t i = 0;
  int rc;
  switch (f->kind) {
  case EVENT_FIELD_STR:
    return get_str(d, f->name, v, at, f->size);
  case EVENT_FIELD_BOOL:
    if (v->type != JSON_BOOL)
      return wrong_type(d, f->name, "true or false", v);
    *(bool *)at = v->b;
    return CANARY_OK;
  case EVENT_FIELD_I64:
    return get_i64(d, f->name, v, (int64_t *)at);
  case EVENT_FIELD_INT:
    if ((rc = get_i64(d, f->name, v, &i)))
      return rc;
    if (i < f->min || i > f->max)
      return INVALID(d, "%s: must be %d..%d", f->name, f->min, f->max);
    *(int *)at = (int)i;
    return CANARY_OK;
  case EVENT_FIELD_ENUM:
    return get_enum(d, f, v);
  case EVENT_FIELD_COUNTERS:
    return get_values(d, f->name, v, false);
  case EVENT_FIELD_GAUGES:
    return get_values(d, f->name, v, true);
  case EVENT_FIELD_DISTS:
    return get_dists(d, v);
  case EVENT_FIELD_SAMPLES:
    return get_samples(d, v);
  }
  return INVALID(d, "%s: unsupported field", f->name);
}

/* time: integer milliseconds since the epoch, or an RFC 3339 string. */
static int decode_time(struct decoder *d, const struct json_value *v) {
  static const char expected[] = "integer milliseconds or an RFC 3339 string";
  if (v->type == JSON_NUMBER) {
    if (!v->is_int)
      return INVALID(d, "time: expected %s, got a non-integer number", expected);
    d->ev->time_ms = v->i;
    return CANARY_OK;
  }
  if (v->type != JSON_STRING)
    return wrong_type(d, "time", expected, v);
  if (strlen(v->str) != v->len || !rfc3339_parse(v->str, &d->ev->time_ms)) {
    char got[48];
    json_excerpt(v->str, v->len, got, sizeof got);
    return INVALID(d, "time: '%s' is not an RFC 3339 timestamp", got);
  }
  return CANARY_OK;
}

static const struct event_field *find_field(const struct json_member *m, uint32_t bit) {
  for (size_t k = 0; k < EVENT_FIELD_COUNT; k++)
    if ((event_fields[k].types & bit) && key_is(m, event_fields[k].name))
      return &event_fields[k];
  return NULL;
}

int event_from_json_value(const struct json_value *obj, struct event *ev,
                          struct event_scratch *scratch, char *why, size_t why_len) {
  struct decoder d = {ev, scratch, why, why_len};
  memset(ev, 0, sizeof *ev);
  if (why && why_len)
    why[0] = '\0';
  if (!obj || obj->type != JSON_OBJECT)
    return INVALID(&d, "event: expected object, got %s",
                   obj ? json_type_name(obj->type) : "nothing");

  const struct json_value *type = json_get(obj, "type");
  if (!type)
    return INVALID(&d, "type: missing");
  if (type->type != JSON_STRING)
    return wrong_type(&d, "type", "string", type);
  if (strlen(type->str) != type->len || !event_type_parse(type->str, &ev->type)) {
    char got[48];
    json_excerpt(type->str, type->len, got, sizeof got);
    return INVALID(&d, "type: unknown event type '%s'", got);
  }
  const uint32_t bit = 1u << ev->type;
  const char *tname = event_type_name(ev->type);

  enum { SEEN_ID = 1, SEEN_ROLLOUT = 2, SEEN_TIME = 4, SEEN_TYPE = 8 };
  unsigned common = 0;
  uint32_t seen = 0;
  for (size_t k = 0; k < obj->n_members; k++) {
    const struct json_member *m = &obj->members[k];
    const struct json_value *v = &m->value;
    unsigned flag = key_is(m, "id")        ? SEEN_ID
                    : key_is(m, "rollout") ? SEEN_ROLLOUT
                    : key_is(m, "time")    ? SEEN_TIME
                    : key_is(m, "type")    ? SEEN_TYPE
                                           : 0;
    const struct event_field *f = flag ? NULL : find_field(m, bit);
    if (!flag && !f) {
      char key[48];
      json_excerpt(m->key, m->key_len, key, sizeof key);
      return INVALID(&d, "unknown field '%s' for %s", key, tname);
    }
    /* A parsed document has no repeated keys; an object built in code might. */
    uint32_t fbit = f ? 1u << (f - event_fields) : 0;
    if ((flag & common) || (fbit & seen))
      return INVALID(&d, "%s: given twice", f ? f->name : m->key);
    common |= flag;
    seen |= fbit;
    int rc = CANARY_OK;
    if (flag == SEEN_ID)
      rc = get_str(&d, "id", v, ev->id, sizeof ev->id);
    else if (flag == SEEN_ROLLOUT && !(ev->type == EVENT_FLAG_SET && v->type == JSON_NULL))
      rc = get_str(&d, "rollout", v, ev->rollout, sizeof ev->rollout);
    else if (flag == SEEN_TIME)
      rc = decode_time(&d, v);
    else if (f)
      rc = decode_field(&d, f, v);
    if (rc)
      return rc;
  }

  if (!(common & SEEN_ID))
    return INVALID(&d, "id: missing");
  if (!(common & SEEN_ROLLOUT) && ev->type != EVENT_FLAG_SET)
    return INVALID(&d, "rollout: missing");
  if (!(common & SEEN_TIME))
    return INVALID(&d, "time: missing");
  for (size_t k = 0; k < EVENT_FIELD_COUNT; k++)
    if ((event_fields[k].required & bit) && !(seen & (1u << k)))
      return INVALID(&d, "%s: missing", event_fields[k].name);
  if (!event_validate(ev, why, why_len))
    return CANARY_EINVALID;
  return CANARY_OK;
}

int event_from_json(const char *text, size_t len, struct event *ev, struct event_scratch *scratch,
                    char *why, size_t why_len) {
  struct decoder d = {ev, scratch, why, why_len};
  memset(ev, 0, sizeof *ev);
  if (!scratch)
    return nomem(&d);
  json_doc_reset(&scratch->doc);
  const struct json_value *root;
  struct json_error err;
  int rc = json_parse(&scratch->doc, text, len, &root, &err);
  if (rc == CANARY_EPARSE)
    return canary_why(d.why, d.why_len, rc, "%d:%d: %s", err.line, err.column, err.message);
  if (rc)
    return nomem(&d);
  return event_from_json_value(root, ev, scratch, why, why_len);
}

/* ---- encoding ------------------------------------------------------------------------------- */

static void key(struct jbuf *out, const char *k) {
  jbuf_putc(out, ',');
  jbuf_string(out, k);
  jbuf_putc(out, ':');
}

static void metric_values(struct jbuf *out, const struct metric_value *v, size_t n) {
  jbuf_putc(out, '{');
  for (size_t k = 0; k < n; k++) {
    if (k)
      jbuf_putc(out, ',');
    jbuf_string(out, v[k].name);
    jbuf_putc(out, ':');
    jbuf_number(out, v[k].value);
  }
  jbuf_putc(out, '}');
}

static void encode_field(const struct event *ev, const struct event_field *f, struct jbuf *out) {
  const char *at = (const char *)ev + f->off;
  key(out, f->name);
  switch (f->kind) {
  case EVENT_FIELD_STR:
    jbuf_string(out, at);
    break;
  case EVENT_FIELD_BOOL:
    jbuf_bool(out, *(const bool *)at);
    break;
  case EVENT_FIELD_I64:
    jbuf_int(out, *(const int64_t *)at);
    break;
  case EVENT_FIELD_INT:
    jbuf_int(out, *(const int *)at);
    break;
  case EVENT_FIELD_ENUM:
    jbuf_string(out, f->wire(event_field_enum_get(ev, f)));
    break;
  case EVENT_FIELD_COUNTERS:
    metric_values(out, ev->metrics.counters, ev->metrics.n_counters);
    break;
  case EVENT_FIELD_GAUGES:
    metric_values(out, ev->metrics.gauges, ev->metrics.n_gauges);
    break;
  case EVENT_FIELD_DISTS:
    jbuf_putc(out, '{');
    for (size_t k = 0; k < ev->metrics.n_dists; k++) {
      const struct metric_dist *m = &ev->metrics.dists[k];
      if (k)
        jbuf_putc(out, ',');
      jbuf_string(out, m->name);
      jbuf_puts(out, ":[");
      for (size_t j = 0; j < m->n; j++) {
        if (j)
          jbuf_putc(out, ',');
        jbuf_number(out, m->values[j]);
      }
      jbuf_putc(out, ']');
    }
    jbuf_putc(out, '}');
    break;
  case EVENT_FIELD_SAMPLES:
    jbuf_putc(out, '[');
    for (size_t k = 0; k < ev->diff.n; k++) {
      const struct diff_sample *s = &ev->diff.samples[k];
      jbuf_puts(out, k ? ",{\"input\":" : "{\"input\":");
      jbuf_number(out, s->input);
      jbuf_puts(out, ",\"stable\":");
      jbuf_number(out, s->stable);
      jbuf_puts(out, ",\"canary\":");
      jbuf_number(out, s->canary);
      jbuf_putc(out, '}');
    }
    jbuf_putc(out, ']');
    break;
  }
}

void event_to_json(const struct event *ev, struct jbuf *out) {
  jbuf_puts(out, "{\"id\":");
  jbuf_string(out, ev->id);
  key(out, "rollout");
  if (ev->rollout[0] || ev->type != EVENT_FLAG_SET)
    jbuf_string(out, ev->rollout);
  else
    jbuf_null(out);
  key(out, "time");
  jbuf_int(out, ev->time_ms);
  key(out, "type");
  jbuf_string(out, event_type_name(ev->type));
  uint32_t bit = 1u << ev->type;
  for (size_t k = 0; k < EVENT_FIELD_COUNT; k++)
    if ((event_fields[k].types & bit) && !(k == EVENT_F_ITEM && !ev->item[0]) &&
        (k != EVENT_F_SIGNATURE || ev->signature[0]))
      encode_field(ev, &event_fields[k], out); /* item and signature, newer than the contract:
                                                 * when given, so other events read as before */
  jbuf_putc(out, '}');
}

/* A string, or null when it is empty. */
static void string_or_null(struct jbuf *out, const char *s) {
  if (s[0])
    jbuf_string(out, s);
  else
    jbuf_null(out);
}

static void time_string(struct jbuf *out, int64_t ms) {
  char buf[RFC3339_MAX];
  jbuf_string(out, rfc3339_format(ms, buf));
}

void decision_to_json(const struct decision *d, struct jbuf *out) {
  jbuf_puts(out, "{\"id\":");
  jbuf_string(out, d->id);
  key(out, "rollout");
  jbuf_string(out, d->rollout);
  key(out, "seq");
  jbuf_int(out, d->seq);
  key(out, "time");
  time_string(out, d->time_ms);
  key(out, "action");
  jbuf_string(out, decision_action_name(d->action));
  key(out, "from_stage");
  string_or_null(out, d->from_stage);
  key(out, "to_stage");
  string_or_null(out, d->to_stage);
  key(out, "state");
  jbuf_string(out, rollout_state_name(d->state));
  key(out, "reason");
  jbuf_string(out, d->reason);
  key(out, "rule");
  string_or_null(out, d->rule);
  key(out, "evidence");
  jbuf_putc(out, '{');
  int n = d->n_evidence < EVIDENCE_MAX ? d->n_evidence : EVIDENCE_MAX;
  bool first = true;
  for (int k = 0; k < n; k++) {
    const struct evidence_item *it = &d->evidence[k];
    bool repeated = false; /* a JSON object cannot hold a key twice: the first one counts */
    for (int j = 0; j < k && !repeated; j++)
      repeated = strcmp(d->evidence[j].key, it->key) == 0;
    if (repeated)
      continue;
    if (!first)
      jbuf_putc(out, ',');
    first = false;
    jbuf_string(out, it->key);
    jbuf_putc(out, ':');
    switch (it->kind) {
    case EVIDENCE_NUM:
      jbuf_number(out, it->num);
      break;
    case EVIDENCE_INT:
      jbuf_int(out, it->i);
      break;
    case EVIDENCE_STR:
      jbuf_string(out, it->str);
      break;
    case EVIDENCE_BOOL:
      jbuf_bool(out, it->b);
      break;
    default:
      jbuf_null(out);
    }
  }
  jbuf_putc(out, '}');
  key(out, "actor");
  jbuf_string(out, d->actor);
  jbuf_putc(out, '}');
}

/* ---- Slack ---------------------------------------------------------------------------------- */

#define SLACK_HEADER_MAX 150 /* characters of a header block's plain_text */

static const char *severity_emoji(enum notify_severity s) {
  switch (s) {
  case NOTIFY_SEV_CRITICAL:
    return ":rotating_light: ";
  case NOTIFY_SEV_WARNING:
    return ":warning: ";
  case NOTIFY_SEV_INFO:
  default:
    return ":information_source: ";
  }
}

/* Slack treats &, < and > as control characters in mrkdwn and in the fallback text: escaped, no
 * text pings <!channel> or forges a link. In a code span a backtick would close it early. */
void notification_mrkdwn(struct jbuf *b, const char *s, bool code_span) {
  for (; *s; s++) {
    switch (*s) {
    case '&':
      jbuf_puts(b, "&amp;");
      break;
    case '<':
      jbuf_puts(b, "&lt;");
      break;
    case '>':
      jbuf_puts(b, "&gt;");
      break;
    case '`':
      jbuf_putc(b, code_span ? '\'' : '`');
      break;
    default:
      jbuf_putc(b, *s);
    }
  }
}

/* The first max characters (UTF-8 code points) of s, with "…" in place of the last if cut. */
static void clip_chars(struct jbuf *b, const char *s, size_t max) {
  size_t chars = 0, k = 0, cut = 0;
  for (; s[k]; k++) {
    if (((unsigned char)s[k] & 0xC0) == 0x80)
      continue;
    if (chars == max - 1)
      cut = k;
    if (chars++ == max) {
      jbuf_write(b, s, cut);
      jbuf_puts(b, "\xE2\x80\xA6");
      return;
    }
  }
  jbuf_write(b, s, k);
}

/* Append a JSON string made of tmp's bytes; tmp is emptied for the next use. */
static void put_tmp(struct jbuf *out, struct jbuf *tmp) {
  if (tmp->oom)
    out->oom = true;
  jbuf_string_n(out, tmp->data ? tmp->data : "", tmp->len);
  jbuf_reset(tmp);
}

static void context_item(struct jbuf *out, struct jbuf *tmp, const char *label, const char *value,
                         bool code, bool first) {
  jbuf_printf(tmp, "*%s:* %s", label, code ? "`" : "");
  notification_mrkdwn(tmp, value, code);
  if (code)
    jbuf_putc(tmp, '`');
  jbuf_puts(out, first ? "{\"type\":\"mrkdwn\",\"text\":" : ",{\"type\":\"mrkdwn\",\"text\":");
  put_tmp(out, tmp);
  jbuf_putc(out, '}');
}

void notification_slack_payload(const struct notification *n, struct jbuf *out) {
  struct jbuf tmp;
  jbuf_init(&tmp);
  const char *emoji = severity_emoji(n->severity);

  jbuf_puts(out, "{\"channel\":");
  jbuf_string(out, n->target);

  /* The fallback shown in notifications and by clients without blocks. */
  jbuf_puts(&tmp, emoji);
  notification_mrkdwn(&tmp, n->title, false);
  if (n->text[0]) {
    jbuf_puts(&tmp, ": ");
    notification_mrkdwn(&tmp, n->text, false);
  }
  jbuf_puts(out, ",\"text\":");
  put_tmp(out, &tmp);

  jbuf_puts(&tmp, emoji); /* ASCII: one character per byte */
  clip_chars(&tmp, n->title, SLACK_HEADER_MAX - strlen(emoji));
  jbuf_puts(out, ",\"blocks\":[{\"type\":\"header\",\"text\":{\"type\":\"plain_text\",\"text\":");
  put_tmp(out, &tmp);
  jbuf_puts(out, ",\"emoji\":true}}");

  if (n->text[0]) { /* Slack rejects a section with empty text */
    notification_mrkdwn(&tmp, n->text, false);
    jbuf_puts(out, ",{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":");
    put_tmp(out, &tmp);
    jbuf_puts(out, "}}");
  }

  char when[RFC3339_MAX];
  jbuf_puts(out, ",{\"type\":\"context\",\"elements\":[");
  context_item(out, &tmp, "Rollout", n->rollout, true, true);
  context_item(out, &tmp, "Severity", notify_severity_name(n->severity), false, false);
  context_item(out, &tmp, "Time", rfc3339_format(n->time_ms, when), false, false);
  if (n->decision_id[0])
    context_item(out, &tmp, "Decision", n->decision_id, true, false);
  jbuf_puts(out, "]}]}");
  jbuf_free(&tmp);
}

void notification_to_json(const struct notification *n, struct jbuf *out) {
  jbuf_puts(out, "{\"id\":");
  jbuf_string(out, n->id);
  key(out, "rollout");
  jbuf_string(out, n->rollout);
  key(out, "time");
  time_string(out, n->time_ms);
  key(out, "channel");
  jbuf_string(out, n->target);
  key(out, "channel_kind");
  jbuf_string(out, notify_channel_name(n->channel));
  key(out, "severity");
  jbuf_string(out, notify_severity_name(n->severity));
  key(out, "title");
  jbuf_string(out, n->title);
  key(out, "text");
  jbuf_string(out, n->text);
  key(out, "decision_id");
  string_or_null(out, n->decision_id);
  key(out, "slack");
  struct jbuf slack;
  jbuf_init(&slack);
  notification_slack_payload(n, &slack);
  put_tmp(out, &slack);
  jbuf_free(&slack);
  jbuf_putc(out, '}');
}

/* ,"key":["a","b"] (a cohort's segments or features). */
static void names_list(struct jbuf *out, const char *k, const char (*names)[PLAN_NAME_MAX], int n) {
  jbuf_puts(out, ",\"");
  jbuf_puts(out, k);
  jbuf_puts(out, "\":[");
  for (int i = 0; i < n && i < PLAN_MAX_LIST; i++) {
    if (i)
      jbuf_putc(out, ',');
    jbuf_string(out, names[i]);
  }
  jbuf_putc(out, ']');
}

void traffic_to_json(const struct traffic_split *t, struct jbuf *out) {
  jbuf_puts(out, "{\"id\":");
  jbuf_string(out, t->id);
  key(out, "rollout");
  jbuf_string(out, t->rollout);
  key(out, "service");
  jbuf_string(out, t->service);
  key(out, "version");
  jbuf_string(out, t->version);
  key(out, "baseline_version");
  jbuf_string(out, t->baseline_version);
  key(out, "time");
  time_string(out, t->time_ms);
  key(out, "exposure_percent");
  jbuf_number(out, t->exposure_percent);
  key(out, "canary_enabled");
  jbuf_bool(out, t->canary_enabled);
  key(out, "breaker_open");
  jbuf_bool(out, t->breaker_open);
  key(out, "cohorts");
  jbuf_putc(out, '{');
  int n = t->n_cohorts < PLAN_MAX_STAGES ? t->n_cohorts : PLAN_MAX_STAGES;
  bool first = true;
  for (int k = 0; k < n; k++) {
    const struct traffic_cohort *c = &t->cohorts[k];
    bool repeated = false;
    for (int j = 0; j < k && !repeated; j++)
      repeated = strcmp(t->cohorts[j].name, c->name) == 0;
    if (repeated)
      continue;
    if (!first)
      jbuf_putc(out, ',');
    first = false;
    jbuf_string(out, c->name);
    jbuf_puts(out, ":{\"percent\":");
    jbuf_number(out, c->percent);
    jbuf_puts(out, ",\"enabled\":");
    jbuf_bool(out, c->enabled);
    jbuf_puts(out, ",\"kill\":");
    jbuf_bool(out, c->kill);
    names_list(out, "segments", c->segments, c->n_segments);
    names_list(out, "features", c->features, c->n_features);
    jbuf_putc(out, '}');
  }
  jbuf_putc(out, '}');
  key(out, "salt");
  jbuf_string(out, t->salt);
  key(out, "buckets");
  jbuf_int(out, t->buckets);
  jbuf_putc(out, '}');
}
