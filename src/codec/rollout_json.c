/*
 * A rollout and the kill switches to JSON and back: one field table drives both directions.
 * Over 800 lines and one file on purpose: the table, the writer and the reader are one job, and
 * a field added to one direction without the other is what splitting them would invite.
 */
#include "codec/rollout_json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum ftype {
  F_STR,       /* char[size], NUL-terminated */
  F_I64,       /* int64_t */
  F_INT,       /* int */
  F_STAGE,     /* int, 0 .. PLAN_MAX_STAGES-1 */
  F_UINT,      /* unsigned */
  F_BOOL,      /* bool */
  F_DBL,       /* double */
  F_STATE,     /* enum rollout_state, by name */
  F_FACT,      /* enum fact, by name */
  F_COHORTS,   /* int64_t[PLAN_MAX_STAGES] */
  F_FLAGS,     /* struct flags */
  F_INCIDENTS, /* incidents[] and n_incidents */
  F_APPROVALS, /* unsigned bit set of approval roles, as role names */
  F_APPROVERS, /* char[APPROVAL_ROLE_COUNT][EVENT_NAME_MAX], as {role: actor} */
  F_READINGS,  /* readings[] and n_readings; optional (documents written before it) */
  F_CHECKED,   /* checked[] and n_checked (version 2; absent from version 1) */
};

struct field {
  const char *name;
  enum ftype type;
  size_t off, size;
};

#define FIELD(member, type)                                                                        \
  { #member, type, offsetof(struct rollout, member), sizeof(((struct rollout *)0)->member) }

/* In declaration order of struct rollout: the test fills every one of them. */
static const struct field fields[] = {
    FIELD(id, F_STR),
    FIELD(service, F_STR),
    FIELD(version, F_STR),
    FIELD(baseline_version, F_STR),
    FIELD(state, F_STATE),
    FIELD(resume_to, F_STATE),
    FIELD(stage, F_STAGE),
    FIELD(requested_ms, F_I64),
    FIELD(clock_ms, F_I64),
    FIELD(stage_started_ms, F_I64),
    FIELD(stage_max_at_ms, F_I64),
    FIELD(exit_hold_reported, F_BOOL),
    FIELD(max_hold_reported, F_BOOL),
    FIELD(watching, F_BOOL),
    FIELD(watch_until_ms, F_I64),
    FIELD(prev_stage_passed, F_BOOL),
    FIELD(force_promoted, F_BOOL),
    FIELD(seq, F_I64),
    FIELD(notify_seq, F_I64),
    FIELD(traffic_seq, F_I64),
    FIELD(ci, F_FACT),
    FIELD(deploy, F_FACT),
    FIELD(health, F_FACT),
    FIELD(smoke, F_FACT),
    FIELD(smoke_passed, F_I64),
    FIELD(smoke_failed, F_I64),
    FIELD(crashes, F_COHORTS),
    FIELD(positive, F_COHORTS),
    FIELD(negative, F_COHORTS),
    FIELD(incidents, F_INCIDENTS),
    FIELD(approvals, F_APPROVALS),
    FIELD(approvers, F_APPROVERS),
    FIELD(breaker_errors, F_INT),
    FIELD(breaker_open, F_BOOL),
    FIELD(paged, F_BOOL),
    FIELD(flags, F_FLAGS),
    FIELD(exposure_percent, F_DBL),
    FIELD(traffic_sig, F_UINT),
    FIELD(exposure_changed_ms, F_I64),
    FIELD(metric_events, F_I64),
    FIELD(last_metric_ms, F_I64),
    FIELD(rolled_back_ms, F_I64),
    FIELD(rollback_verify, F_INT),
    FIELD(rollback_verified_ms, F_I64),
    FIELD(readings, F_READINGS),
    FIELD(checked, F_CHECKED),
};
/* Newer than some stored documents: absent, they read as zero (no verification). */
static bool optional_field(const char *name) {
  return !strcmp(name, "rolled_back_ms") || !strcmp(name, "rollback_verify") ||
         !strcmp(name, "rollback_verified_ms");
}
#define N_FIELDS (sizeof fields / sizeof fields[0])
_Static_assert(N_FIELDS < 64, "the reader tracks the fields seen in a 64-bit mask");

static const char *const fact_names[] = {"unknown", "ok", "failed"};
/* enum reading_kind, expr_truth and expr_for_state, in their order */
static const char *const reading_kinds[] = {"rule", "entry", "exit"};
static const char *const truth_names[] = {"false", "true", "insufficient"};
static const char *const for_names[] = {"inactive", "pending", "firing"};
#define N_OF(a) (sizeof a / sizeof a[0])

static const char *name_of(const char *const *names, size_t n, int v) {
  return v >= 0 && (size_t)v < n ? names[v] : "?";
}

/* ---- writing --------------------------------------------------------------------------------- */

static void key(struct jbuf *out, const char *k) {
  jbuf_putc(out, ',');
  jbuf_string(out, k);
  jbuf_putc(out, ':');
}

static void write_flags_body(const struct flags *f, struct jbuf *out) {
  jbuf_puts(out, "\"canary_enabled\":");
  jbuf_bool(out, f->canary_enabled);
  jbuf_puts(out, ",\"cohort_enabled\":[");
  for (int i = 0; i < PLAN_MAX_STAGES; i++) {
    if (i)
      jbuf_putc(out, ',');
    jbuf_bool(out, f->cohort_enabled[i]);
  }
  jbuf_putc(out, ']');
}

static void write_incidents(const struct rollout *r, struct jbuf *out) {
  jbuf_putc(out, '[');
  int n = r->n_incidents < 0 ? 0 : r->n_incidents;
  if (n > ROLLOUT_MAX_INCIDENTS)
    n = ROLLOUT_MAX_INCIDENTS;
  for (int i = 0; i < n; i++) {
    const struct rollout_incident *in = &r->incidents[i];
    jbuf_puts(out, i ? ",{\"id\":" : "{\"id\":");
    jbuf_string(out, in->id);
    jbuf_puts(out, ",\"severity\":");
    jbuf_int(out, in->severity);
    jbuf_puts(out, ",\"kind\":");
    jbuf_string(out, incident_kind_name(in->kind));
    jbuf_puts(out, ",\"opened_ms\":");
    jbuf_int(out, in->opened_ms);
    jbuf_puts(out, ",\"open\":");
    jbuf_bool(out, in->open);
    jbuf_putc(out, '}');
  }
  jbuf_putc(out, ']');
}

static void write_readings(const struct rollout *r, struct jbuf *out) {
  jbuf_putc(out, '[');
  int n = r->n_readings < 0 ? 0 : r->n_readings;
  if (n > ROLLOUT_MAX_READINGS)
    n = ROLLOUT_MAX_READINGS;
  for (int i = 0; i < n; i++) {
    const struct rollout_reading *x = &r->readings[i];
    jbuf_puts(out, i ? ",{\"name\":" : "{\"name\":");
    jbuf_string(out, x->name);
    jbuf_puts(out, ",\"kind\":");
    jbuf_string(out, name_of(reading_kinds, N_OF(reading_kinds), x->kind));
    jbuf_puts(out, ",\"stage\":");
    jbuf_int(out, x->stage);
    jbuf_puts(out, ",\"truth\":");
    jbuf_string(out, name_of(truth_names, N_OF(truth_names), x->truth));
    jbuf_puts(out, ",\"state\":");
    jbuf_string(out, name_of(for_names, N_OF(for_names), x->state));
    jbuf_puts(out, ",\"canary\":");
    jbuf_number(out, x->canary);
    jbuf_puts(out, ",\"baseline\":");
    jbuf_number(out, x->baseline);
    jbuf_puts(out, ",\"threshold\":");
    jbuf_number(out, x->threshold);
    jbuf_puts(out, ",\"window_ms\":");
    jbuf_int(out, x->window_ms);
    jbuf_puts(out, ",\"n\":");
    jbuf_int(out, x->n);
    jbuf_puts(out, ",\"min_n\":");
    jbuf_int(out, x->min_n);
    jbuf_puts(out, ",\"at_ms\":");
    jbuf_int(out, x->at_ms);
    jbuf_puts(out, ",\"since_ms\":");
    jbuf_int(out, x->since_ms);
    if (!isnan(x->log_e)) { /* evidence: absent from documents written before it existed */
      jbuf_puts(out, ",\"log_e\":");
      jbuf_number(out, x->log_e);
      jbuf_puts(out, ",\"log_needed\":");
      jbuf_number(out, x->log_needed);
    }
    jbuf_putc(out, '}');
  }
  jbuf_putc(out, ']');
}

static void write_checked(const struct rollout *r, struct jbuf *out) {
  jbuf_putc(out, '[');
  int n = r->n_checked < 0 ? 0 : r->n_checked;
  if (n > ROLLOUT_MAX_CHECKED)
    n = ROLLOUT_MAX_CHECKED;
  for (int i = 0; i < n; i++) {
    const struct rollout_checked *k = &r->checked[i];
    jbuf_puts(out, i ? ",{\"item\":" : "{\"item\":");
    jbuf_string(out, k->item);
    jbuf_puts(out, ",\"by\":");
    jbuf_string(out, checked_by_name((enum checked_by)k->by));
    jbuf_puts(out, ",\"at_ms\":");
    jbuf_int(out, k->at_ms);
    jbuf_puts(out, ",\"evidence\":");
    jbuf_string(out, k->evidence);
    jbuf_puts(out, ",\"actor\":");
    jbuf_string(out, k->actor);
    jbuf_puts(out, ",\"note\":");
    jbuf_string(out, k->note);
    jbuf_putc(out, '}');
  }
  jbuf_putc(out, ']');
}

static void write_field(const struct rollout *r, const struct field *f, struct jbuf *out) {
  const char *p = (const char *)r + f->off;
  switch (f->type) {
  case F_STR:
    jbuf_string(out, p);
    break;
  case F_I64:
    jbuf_int(out, *(const int64_t *)p);
    break;
  case F_INT:
  case F_STAGE:
    jbuf_int(out, *(const int *)p);
    break;
  case F_UINT:
    jbuf_int(out, *(const unsigned *)p);
    break;
  case F_BOOL:
    jbuf_bool(out, *(const bool *)p);
    break;
  case F_DBL:
    jbuf_number(out, *(const double *)p);
    break;
  case F_STATE:
    jbuf_string(out, rollout_state_name(*(const enum rollout_state *)p));
    break;
  case F_FACT: {
    enum fact v = *(const enum fact *)p;
    jbuf_string(out, (unsigned)v < 3 ? fact_names[v] : "?");
    break;
  }
  case F_COHORTS:
    jbuf_putc(out, '[');
    for (int i = 0; i < PLAN_MAX_STAGES; i++) {
      if (i)
        jbuf_putc(out, ',');
      jbuf_int(out, ((const int64_t *)p)[i]);
    }
    jbuf_putc(out, ']');
    break;
  case F_FLAGS:
    jbuf_putc(out, '{');
    write_flags_body((const struct flags *)p, out);
    jbuf_putc(out, '}');
    break;
  case F_INCIDENTS:
    write_incidents(r, out);
    break;
  case F_READINGS:
    write_readings(r, out);
    break;
  case F_CHECKED:
    write_checked(r, out);
    break;
  case F_APPROVALS: {
    unsigned bits = *(const unsigned *)p;
    jbuf_putc(out, '[');
    bool first = true;
    for (int role = 0; role < APPROVAL_ROLE_COUNT; role++) {
      if (!(bits & (1u << role)))
        continue;
      if (!first)
        jbuf_putc(out, ',');
      first = false;
      jbuf_string(out, approval_role_name((enum approval_role)role));
    }
    if (bits >> APPROVAL_ROLE_COUNT) /* no role has such a bit: make the reader refuse it */
      jbuf_puts(out, first ? "\"?\"" : ",\"?\"");
    jbuf_putc(out, ']');
    break;
  }
  case F_APPROVERS:
    jbuf_putc(out, '{');
    for (int role = 0; role < APPROVAL_ROLE_COUNT; role++) {
      if (role)
        jbuf_putc(out, ',');
      jbuf_string(out, approval_role_name((enum approval_role)role));
      jbuf_putc(out, ':');
      jbuf_string(out, r->approvers[role]);
    }
    jbuf_putc(out, '}');
    break;
  }
}

void rollout_json_write(const struct rollout *r, struct jbuf *out) {
  jbuf_printf(out, "{\"v\":%d", ROLLOUT_JSON_VERSION);
  for (size_t i = 0; i < N_FIELDS; i++) {
    key(out, fields[i].name);
    write_field(r, &fields[i], out);
  }
  jbuf_putc(out, '}');
}

void flags_json_write(const struct flags *f, struct jbuf *out) {
  jbuf_printf(out, "{\"v\":%d,", FLAGS_JSON_VERSION);
  write_flags_body(f, out);
  jbuf_putc(out, '}');
}

/* ---- reading --------------------------------------------------------------------------------- */

struct reader {
  char *why;
  size_t why_len;
  const char *doc; /* "rollout" or "flags", for messages */
};

/* "line:column: field: message" about the value at (json_why_at). */
#define BAD(rd, at, field, ...) json_why_at((rd)->why, (rd)->why_len, (at), (field), __VA_ARGS__)

static int want(const struct reader *rd, const struct json_value *v, const char *field,
                enum json_type t) {
  if (v->type == t)
    return CANARY_OK;
  return BAD(rd, v, field, "expected %s, got %s", json_type_name(t), json_type_name(v->type));
}

static int read_int64(const struct reader *rd, const struct json_value *v, const char *field,
                      int64_t min, int64_t max, int64_t *out) {
  int rc = want(rd, v, field, JSON_NUMBER);
  if (rc)
    return rc;
  if (!v->is_int)
    return BAD(rd, v, field, "expected an integer");
  if (v->i < min || v->i > max)
    return BAD(rd, v, field, "%lld is out of range (%lld..%lld)", (long long)v->i, (long long)min,
               (long long)max);
  *out = v->i;
  return CANARY_OK;
}

static int read_str(const struct reader *rd, const struct json_value *v, const char *field,
                    char *dst, size_t size) {
  int rc = want(rd, v, field, JSON_STRING);
  if (rc)
    return rc;
  if (strlen(v->str) != v->len)
    return BAD(rd, v, field, "must not contain NUL characters");
  if (v->len >= size)
    return BAD(rd, v, field, "longer than %zu bytes", size - 1);
  memcpy(dst, v->str, v->len + 1);
  return CANARY_OK;
}

static int read_bool(const struct reader *rd, const struct json_value *v, const char *field,
                     bool *out) {
  int rc = want(rd, v, field, JSON_BOOL);
  if (!rc)
    *out = v->b;
  return rc;
}

static int read_array(const struct reader *rd, const struct json_value *v, const char *field,
                      size_t n) {
  int rc = want(rd, v, field, JSON_ARRAY);
  if (rc)
    return rc;
  if (n != SIZE_MAX && v->n_items != n)
    return BAD(rd, v, field, "expected %zu items, got %zu", n, v->n_items);
  return CANARY_OK;
}

static int read_flags_members(const struct reader *rd, const struct json_value *obj,
                              struct flags *f, bool versioned) {
  const struct json_value *en = NULL, *co = NULL;
  bool have_v = false;
  for (size_t k = 0; k < obj->n_members; k++) {
    const struct json_member *m = &obj->members[k];
    if (strcmp(m->key, "canary_enabled") == 0)
      en = &m->value;
    else if (strcmp(m->key, "cohort_enabled") == 0)
      co = &m->value;
    else if (versioned && strcmp(m->key, "v") == 0)
      have_v = true; /* checked by the caller */
    else
      return BAD(rd, &m->value, NULL, "unknown field '%s' in flags", m->key);
  }
  if (versioned && !have_v)
    return BAD(rd, obj, "v", "missing");
  if (!en)
    return BAD(rd, obj, "canary_enabled", "missing");
  if (!co)
    return BAD(rd, obj, "cohort_enabled", "missing");
  int rc = read_bool(rd, en, "canary_enabled", &f->canary_enabled);
  if (!rc)
    rc = read_array(rd, co, "cohort_enabled", PLAN_MAX_STAGES);
  for (size_t i = 0; !rc && i < PLAN_MAX_STAGES; i++)
    rc = read_bool(rd, &co->items[i], "cohort_enabled", &f->cohort_enabled[i]);
  return rc;
}

static int read_incident(const struct reader *rd, const struct json_value *v,
                         struct rollout_incident *in) {
  int rc = want(rd, v, "incidents", JSON_OBJECT);
  if (rc)
    return rc;
  unsigned seen = 0;
  for (size_t k = 0; k < v->n_members && !rc; k++) {
    const struct json_member *m = &v->members[k];
    const struct json_value *x = &m->value;
    int64_t i64;
    if (strcmp(m->key, "id") == 0) {
      seen |= 1;
      rc = read_str(rd, x, "incidents.id", in->id, sizeof in->id);
    } else if (strcmp(m->key, "severity") == 0) {
      seen |= 2;
      rc = read_int64(rd, x, "incidents.severity", INT_MIN, INT_MAX, &i64);
      in->severity = (int)i64;
    } else if (strcmp(m->key, "kind") == 0) {
      seen |= 4;
      rc = want(rd, x, "incidents.kind", JSON_STRING);
      if (!rc && !incident_kind_parse(x->str, &in->kind))
        rc = BAD(rd, x, "incidents.kind", "unknown incident kind '%s'", x->str);
    } else if (strcmp(m->key, "opened_ms") == 0) {
      seen |= 8;
      rc = read_int64(rd, x, "incidents.opened_ms", INT64_MIN, INT64_MAX, &in->opened_ms);
    } else if (strcmp(m->key, "open") == 0) {
      seen |= 16;
      rc = read_bool(rd, x, "incidents.open", &in->open);
    } else {
      rc = BAD(rd, x, "incidents", "unknown field '%s'", m->key);
    }
  }
  if (!rc && seen != 31)
    rc = BAD(rd, v, "incidents", "an incident needs id, severity, kind, opened_ms and open");
  return rc;
}

static int read_name(const struct reader *rd, const struct json_value *v, const char *field,
                     const char *const *names, size_t n, int8_t *out) {
  int rc = want(rd, v, field, JSON_STRING);
  if (rc)
    return rc;
  for (size_t i = 0; i < n; i++)
    if (strcmp(v->str, names[i]) == 0) {
      *out = (int8_t)i;
      return CANARY_OK;
    }
  return BAD(rd, v, field, "unknown value '%s'", v->str);
}

static int read_number(const struct reader *rd, const struct json_value *v, const char *field,
                       double *out) {
  if (v->type == JSON_NULL) {
    *out = NAN;
    return CANARY_OK;
  }
  int rc = want(rd, v, field, JSON_NUMBER);
  if (!rc)
    *out = v->num;
  return rc;
}

static int read_reading(const struct reader *rd, const struct json_value *v,
                        struct rollout_reading *x) {
  int rc = want(rd, v, "readings", JSON_OBJECT);
  if (rc)
    return rc;
  x->log_e = x->log_needed = NAN; /* not decided on evidence, unless it says */
  unsigned seen = 0;
  int64_t i64;
  for (size_t k = 0; k < v->n_members && !rc; k++) {
    const struct json_member *m = &v->members[k];
    const struct json_value *y = &m->value;
    static const char *const keys[] = {
        "name",      "kind", "stage", "truth", "state",    "canary", "baseline",  "threshold",
        "window_ms", "n",    "min_n", "at_ms", "since_ms", "log_e",  "log_needed"};
    size_t i = 0;
    while (i < N_OF(keys) && strcmp(m->key, keys[i]) != 0)
      i++;
    seen |= 1u << i;
    switch (i) {
    case 0:
      rc = read_str(rd, y, "readings.name", x->name, sizeof x->name);
      break;
    case 1:
      rc = read_name(rd, y, "readings.kind", reading_kinds, N_OF(reading_kinds), &x->kind);
      break;
    case 2:
      rc = read_int64(rd, y, "readings.stage", 0, PLAN_MAX_STAGES - 1, &i64);
      x->stage = (int8_t)i64;
      break;
    case 3:
      rc = read_name(rd, y, "readings.truth", truth_names, N_OF(truth_names), &x->truth);
      break;
    case 4:
      rc = read_name(rd, y, "readings.state", for_names, N_OF(for_names), &x->state);
      break;
    case 5:
      rc = read_number(rd, y, "readings.canary", &x->canary);
      break;
    case 6:
      rc = read_number(rd, y, "readings.baseline", &x->baseline);
      break;
    case 7:
      rc = read_number(rd, y, "readings.threshold", &x->threshold);
      break;
    case 8:
      rc = read_int64(rd, y, "readings.window_ms", INT64_MIN, INT64_MAX, &x->window_ms);
      break;
    case 9:
      rc = read_int64(rd, y, "readings.n", INT64_MIN, INT64_MAX, &x->n);
      break;
    case 10:
      rc = read_int64(rd, y, "readings.min_n", INT64_MIN, INT64_MAX, &x->min_n);
      break;
    case 11:
      rc = read_int64(rd, y, "readings.at_ms", INT64_MIN, INT64_MAX, &x->at_ms);
      break;
    case 12:
      rc = read_int64(rd, y, "readings.since_ms", INT64_MIN, INT64_MAX, &x->since_ms);
      break;
    case 13:
      rc = read_number(rd, y, "readings.log_e", &x->log_e);
      break;
    case 14:
      rc = read_number(rd, y, "readings.log_needed", &x->log_needed);
      break;
    default:
      rc = BAD(rd, y, "readings", "unknown field '%s'", m->key);
    }
  }
  if (!rc && (seen & ((1u << 13) - 1)) != (1u << 13) - 1) /* the evidence's two are optional */
    rc = BAD(rd, v, "readings", "a reading needs every one of its fields");
  return rc;
}

static int read_checked(const struct reader *rd, const struct json_value *v,
                        struct rollout_checked *k) {
  int rc = want(rd, v, "checked", JSON_OBJECT);
  if (rc)
    return rc;
  unsigned seen = 0;
  for (size_t j = 0; j < v->n_members && !rc; j++) {
    const struct json_member *m = &v->members[j];
    const struct json_value *y = &m->value;
    static const char *const keys[] = {"item", "by", "at_ms", "evidence", "actor", "note"};
    size_t i = 0;
    while (i < N_OF(keys) && strcmp(m->key, keys[i]) != 0)
      i++;
    seen |= 1u << i;
    enum checked_by by = CHECKED_BY_EVENT;
    switch (i) {
    case 0:
      rc = read_str(rd, y, "checked.item", k->item, sizeof k->item);
      break;
    case 1:
      if (!(rc = want(rd, y, "checked.by", JSON_STRING)) && !checked_by_parse(y->str, &by))
        rc = BAD(rd, y, "checked.by", "expected event, decision or person, got '%s'", y->str);
      k->by = (int8_t)by;
      break;
    case 2:
      rc = read_int64(rd, y, "checked.at_ms", INT64_MIN, INT64_MAX, &k->at_ms);
      break;
    case 3:
      rc = read_str(rd, y, "checked.evidence", k->evidence, sizeof k->evidence);
      break;
    case 4:
      rc = read_str(rd, y, "checked.actor", k->actor, sizeof k->actor);
      break;
    case 5:
      rc = read_str(rd, y, "checked.note", k->note, sizeof k->note);
      break;
    default:
      rc = BAD(rd, y, "checked", "unknown field '%s'", m->key);
    }
  }
  if (!rc && seen != (1u << 6) - 1) /* the six keys above, each once at least */
    rc = BAD(rd, v, "checked", "a checked item needs item, by, at_ms, evidence, actor and note");
  return rc;
}

static int read_field(const struct reader *rd, const struct json_value *v, const struct field *f,
                      struct rollout *r) {
  char *p = (char *)r + f->off;
  int64_t i64;
  int rc;
  switch (f->type) {
  case F_STR:
    return read_str(rd, v, f->name, p, f->size);
  case F_I64:
    return read_int64(rd, v, f->name, INT64_MIN, INT64_MAX, (int64_t *)p);
  case F_INT:
    rc = read_int64(rd, v, f->name, INT_MIN, INT_MAX, &i64);
    *(int *)p = (int)i64;
    return rc;
  case F_STAGE:
    rc = read_int64(rd, v, f->name, 0, PLAN_MAX_STAGES - 1, &i64);
    *(int *)p = (int)i64;
    return rc;
  case F_UINT:
    rc = read_int64(rd, v, f->name, 0, UINT_MAX, &i64);
    *(unsigned *)p = (unsigned)i64;
    return rc;
  case F_BOOL:
    return read_bool(rd, v, f->name, (bool *)p);
  case F_DBL:
    if (v->type == JSON_NULL) {
      *(double *)p = NAN;
      return CANARY_OK;
    }
    if ((rc = want(rd, v, f->name, JSON_NUMBER)))
      return rc;
    *(double *)p = v->num;
    return CANARY_OK;
  case F_STATE:
    if ((rc = want(rd, v, f->name, JSON_STRING)))
      return rc;
    if (!rollout_state_parse(v->str, (enum rollout_state *)p))
      return BAD(rd, v, f->name, "unknown state '%s'", v->str);
    return CANARY_OK;
  case F_FACT:
    if ((rc = want(rd, v, f->name, JSON_STRING)))
      return rc;
    for (int i = 0; i < 3; i++)
      if (strcmp(v->str, fact_names[i]) == 0) {
        *(enum fact *)p = (enum fact)i;
        return CANARY_OK;
      }
    return BAD(rd, v, f->name, "expected unknown, ok or failed, got '%s'", v->str);
  case F_COHORTS:
    if ((rc = read_array(rd, v, f->name, PLAN_MAX_STAGES)))
      return rc;
    for (size_t i = 0; i < PLAN_MAX_STAGES && !rc; i++)
      rc = read_int64(rd, &v->items[i], f->name, INT64_MIN, INT64_MAX, &((int64_t *)p)[i]);
    return rc;
  case F_FLAGS:
    if ((rc = want(rd, v, f->name, JSON_OBJECT)))
      return rc;
    return read_flags_members(rd, v, (struct flags *)p, false);
  case F_INCIDENTS:
    if ((rc = read_array(rd, v, f->name, SIZE_MAX)))
      return rc;
    if (v->n_items > ROLLOUT_MAX_INCIDENTS)
      return BAD(rd, v, f->name, "%zu incidents, at most %d", v->n_items, ROLLOUT_MAX_INCIDENTS);
    for (size_t i = 0; i < v->n_items && !rc; i++)
      rc = read_incident(rd, &v->items[i], &r->incidents[i]);
    r->n_incidents = (int)v->n_items;
    return rc;
  case F_APPROVALS:
    if ((rc = read_array(rd, v, f->name, SIZE_MAX)))
      return rc;
    for (size_t i = 0; i < v->n_items; i++) {
      const struct json_value *x = &v->items[i];
      enum approval_role role;
      if ((rc = want(rd, x, f->name, JSON_STRING)))
        return rc;
      if (!approval_role_parse(x->str, &role))
        return BAD(rd, x, f->name, "unknown role '%s'", x->str);
      *(unsigned *)p |= 1u << role;
    }
    return CANARY_OK;
  case F_APPROVERS:
    if ((rc = want(rd, v, f->name, JSON_OBJECT)))
      return rc;
    if (v->n_members != APPROVAL_ROLE_COUNT)
      return BAD(rd, v, f->name, "expected one entry per role (%d)", APPROVAL_ROLE_COUNT);
    for (size_t k = 0; k < v->n_members; k++) {
      const struct json_member *m = &v->members[k];
      enum approval_role role;
      if (!approval_role_parse(m->key, &role))
        return BAD(rd, &m->value, f->name, "unknown role '%s'", m->key);
      if ((rc = read_str(rd, &m->value, f->name, r->approvers[role], sizeof r->approvers[role])))
        return rc;
    }
    return CANARY_OK;
  case F_READINGS:
    if ((rc = read_array(rd, v, f->name, SIZE_MAX)))
      return rc;
    if (v->n_items > ROLLOUT_MAX_READINGS)
      return BAD(rd, v, f->name, "%zu readings, at most %d", v->n_items, ROLLOUT_MAX_READINGS);
    for (size_t i = 0; i < v->n_items && !rc; i++)
      rc = read_reading(rd, &v->items[i], &r->readings[i]);
    r->n_readings = (int)v->n_items;
    return rc;
  case F_CHECKED:
    if ((rc = read_array(rd, v, f->name, SIZE_MAX)))
      return rc;
    if (v->n_items > ROLLOUT_MAX_CHECKED)
      return BAD(rd, v, f->name, "%zu checked items, at most %d", v->n_items, ROLLOUT_MAX_CHECKED);
    for (size_t i = 0; i < v->n_items && !rc; i++)
      rc = read_checked(rd, &v->items[i], &r->checked[i]);
    r->n_checked = (int)v->n_items;
    return rc;
  }
  return BAD(rd, v, f->name, "internal error: unknown field type");
}

/* The document's version in *version: oldest..newest. */
static int check_version(const struct reader *rd, const struct json_value *root, int oldest,
                         int newest, int *version) {
  const struct json_value *v = json_get(root, "v");
  if (!v)
    return BAD(rd, root, "v", "missing (not a %s document)", rd->doc);
  if (v->type != JSON_NUMBER || !v->is_int || v->i < oldest || v->i > newest)
    return BAD(rd, v, "v", "unsupported %s document version (this build reads %d to %d)", rd->doc,
               oldest, newest);
  *version = (int)v->i;
  return CANARY_OK;
}

static int read_rollout(const struct json_value *root, struct rollout *r, char *why,
                        size_t why_len) {
  struct reader rd = {why, why_len, "rollout"};
  if (root->type != JSON_OBJECT)
    return BAD(&rd, root, NULL, "a rollout document is an object, got %s",
               json_type_name(root->type));
  int version;
  int rc = check_version(&rd, root, ROLLOUT_JSON_OLDEST, ROLLOUT_JSON_VERSION, &version);
  if (rc)
    return rc;
  uint64_t seen = 0;
  for (size_t k = 0; k < root->n_members; k++) {
    const struct json_member *m = &root->members[k];
    if (strcmp(m->key, "v") == 0)
      continue;
    size_t i = 0;
    while (i < N_FIELDS && strcmp(fields[i].name, m->key) != 0)
      i++;
    if (i == N_FIELDS)
      return BAD(&rd, &m->value, NULL, "unknown field '%s' in rollout", m->key);
    if ((rc = read_field(&rd, &m->value, &fields[i], r)))
      return rc;
    seen |= 1ull << i;
  }
  for (size_t i = 0; i < N_FIELDS; i++)
    if (!(seen & (1ull << i)) && fields[i].type != F_READINGS &&
        strcmp(fields[i].name, "exposure_changed_ms") != 0 &&
        strcmp(fields[i].name, "max_hold_reported") != 0 && strcmp(fields[i].name, "watching") &&
        strcmp(fields[i].name, "watch_until_ms") && strcmp(fields[i].name, "paged") &&
        !optional_field(fields[i].name) &&
        !((fields[i].type == F_CHECKED || !strcmp(fields[i].name, "force_promoted")) &&
          version < 2))
      /* newer than the format */
      return BAD(&rd, root, fields[i].name, "missing");
  if (r->rollback_verify < 0 || r->rollback_verify >= ROLLBACK_VERIFY_COUNT)
    return BAD(&rd, root, "rollback_verify", "unknown value");
  return CANARY_OK;
}

int rollout_json_read_value(const struct json_value *root, struct rollout *r, char *why,
                            size_t why_len) {
  memset(r, 0, sizeof *r);
  int rc = read_rollout(root, r, why, why_len);
  if (rc) /* never leave half a rollout behind */
    memset(r, 0, sizeof *r);
  return rc;
}

static int parse(const char *text, size_t len, const struct json_value **root, struct json_doc *doc,
                 char *why, size_t why_len) {
  struct json_error err;
  int rc = json_parse(doc, text, len, root, &err);
  if (rc == CANARY_EPARSE && why && why_len)
    snprintf(why, why_len, "%d:%d: %s", err.line, err.column, err.message);
  else if (rc && why && why_len)
    snprintf(why, why_len, "%s", canary_strerror(rc));
  return rc;
}

int rollout_json_read(const char *text, size_t len, struct rollout *r, char *why, size_t why_len) {
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root;
  int rc = parse(text, len, &root, &doc, why, why_len);
  if (rc)
    memset(r, 0, sizeof *r);
  else
    rc = rollout_json_read_value(root, r, why, why_len);
  json_doc_free(&doc);
  return rc;
}

int flags_json_read(const char *text, size_t len, struct flags *f, char *why, size_t why_len) {
  struct reader rd = {why, why_len, "flags"};
  memset(f, 0, sizeof *f);
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root;
  int rc = parse(text, len, &root, &doc, why, why_len);
  if (!rc && root->type != JSON_OBJECT)
    rc = BAD(&rd, root, NULL, "a flags document is an object, got %s", json_type_name(root->type));
  int version;
  if (!rc)
    rc = check_version(&rd, root, FLAGS_JSON_VERSION, FLAGS_JSON_VERSION, &version);
  if (!rc)
    rc = read_flags_members(&rd, root, f, true);
  json_doc_free(&doc);
  if (rc)
    memset(f, 0, sizeof *f);
  return rc;
}
