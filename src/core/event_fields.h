/*
 * The event contract's fields, once: every field after the envelope (id, rollout, time, type),
 * which event types carry it, which must give it, and where it lives in struct event. The JSON
 * codec, the Avro codec and the content digest are all generated from this one table.
 */
#ifndef CANARY_EVENT_FIELDS_H
#define CANARY_EVENT_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

/* Bits per event type (EVENT_T: core/event.h), for the types and required columns. */
#define EVENT_T_OK                                                                                 \
  (EVENT_T(CI_COMPLETED) | EVENT_T(DEPLOY_COMPLETED) | EVENT_T(HEALTH_CHECKED) |                   \
   EVENT_T(SMOKE_COMPLETED))
#define EVENT_T_COHORT                                                                             \
  (EVENT_T(CRASH_REPORTED) | EVENT_T(FEEDBACK_RECEIVED) | EVENT_T(METRICS) | EVENT_T(DIFF_SAMPLES))
#define EVENT_T_ACTOR (EVENT_T(APPROVAL_GRANTED) | EVENT_T(COMMAND) | EVENT_T(FLAG_SET))
#define EVENT_T_INCIDENT (EVENT_T(INCIDENT_OPENED) | EVENT_T(INCIDENT_RESOLVED))

/*
 * XX(ID, "name", KIND, member, types, required, min, max, enum_type, digest)
 *
 *   ID        EVENT_F_<ID> names the row
 *   "name"    the contract's name: the JSON key, the Avro field, the digest's label
 *   KIND      STR (char[] member), BOOL, I64, INT (int, min..max), ENUM (enum_type member),
 *             COUNTERS, GAUGES, DISTS, SAMPLES (the metric payloads: member is the array)
 *   types     the event types that carry it; required: those that must give it
 *   digest    the field's place in event_digest — a stored format, frozen: it is not the
 *             row's place, because the digest was defined before this table (the enums, one per
 *             type at most, share places 10..15, so their order among themselves is free)
 *
 * Rows are in the contract's order, which is the order event_to_json writes them in. `kind` is
 * two rows: incident_kind for incident.opened, alert_kind for alert.raised. A new field is one
 * row here (a new digest place at the end), one member of struct event, its Avro field in
 * schemas/ and in the codec's spec (avro_codec.c); tests/unit/test_event_fields.c then covers it.
 */
#define EVENT_FIELD_MAP(XX)                                                                        \
  XX(SERVICE, "service", STR, service, EVENT_T(ROLLOUT_REQUESTED), EVENT_T(ROLLOUT_REQUESTED), 0,  \
     0, _, 0)                                                                                      \
  XX(VERSION, "version", STR, version, EVENT_T(ROLLOUT_REQUESTED), EVENT_T(ROLLOUT_REQUESTED), 0,  \
     0, _, 1)                                                                                      \
  XX(BASELINE_VERSION, "baseline_version", STR, baseline_version, EVENT_T(ROLLOUT_REQUESTED),      \
     EVENT_T(ROLLOUT_REQUESTED), 0, 0, _, 2)                                                       \
  XX(OK, "ok", BOOL, ok, EVENT_T_OK, EVENT_T_OK, 0, 0, _, 3)                                       \
  XX(PASSED, "passed", I64, passed, EVENT_T(SMOKE_COMPLETED), 0, 0, 0, _, 4)                       \
  XX(FAILED, "failed", I64, failed, EVENT_T(SMOKE_COMPLETED), 0, 0, 0, _, 5)                       \
  XX(COHORT, "cohort", STR, cohort, EVENT_T_COHORT, EVENT_T_COHORT, 0, 0, _, 6)                    \
  XX(COUNT, "count", I64, count, EVENT_T(CRASH_REPORTED), EVENT_T(CRASH_REPORTED), 0, 0, _, 7)     \
  XX(INCIDENT, "incident", STR, incident, EVENT_T_INCIDENT, EVENT_T_INCIDENT, 0, 0, _, 8)          \
  XX(SEVERITY, "severity", INT, severity, EVENT_T(INCIDENT_OPENED), EVENT_T(INCIDENT_OPENED), 1,   \
     4, _, 9)                                                                                      \
  XX(INCIDENT_KIND, "kind", ENUM, incident_kind, EVENT_T(INCIDENT_OPENED),                         \
     EVENT_T(INCIDENT_OPENED), 0, 0, incident_kind, 10)                                            \
  XX(SENTIMENT, "sentiment", ENUM, sentiment, EVENT_T(FEEDBACK_RECEIVED),                          \
     EVENT_T(FEEDBACK_RECEIVED), 0, 0, sentiment, 11)                                              \
  XX(ROLE, "role", ENUM, role, EVENT_T(APPROVAL_GRANTED), EVENT_T(APPROVAL_GRANTED), 0, 0,         \
     approval_role, 12)                                                                            \
  XX(ALERT_KIND, "kind", ENUM, alert_kind, EVENT_T(ALERT_RAISED), EVENT_T(ALERT_RAISED), 0, 0,     \
     alert_kind, 13)                                                                               \
  XX(DETAIL, "detail", STR, detail, EVENT_T(ALERT_RAISED), 0, 0, 0, _, 17)                         \
  XX(ACTION, "action", ENUM, action, EVENT_T(COMMAND), EVENT_T(COMMAND), 0, 0, command_action, 14) \
  XX(FORCE, "force", BOOL, force, EVENT_T(COMMAND), 0, 0, 0, _, 18)                                \
  XX(FLAG, "flag", STR, flag, EVENT_T(FLAG_SET), EVENT_T(FLAG_SET), 0, 0, _, 20)                   \
  XX(VALUE, "value", BOOL, value, EVENT_T(FLAG_SET), EVENT_T(FLAG_SET), 0, 0, _, 21)               \
  XX(ACTOR, "actor", STR, actor, EVENT_T_ACTOR, 0, 0, 0, _, 16)                                    \
  XX(REASON, "reason", STR, reason, EVENT_T(COMMAND), 0, 0, 0, _, 19)                              \
  XX(ITEM, "item", STR, item, EVENT_T(COMMAND), 0, 0, 0, _, 27)                                    \
  XX(VARIANT, "variant", ENUM, metrics.variant, EVENT_T(METRICS), EVENT_T(METRICS), 0, 0, variant, \
     15)                                                                                           \
  XX(INTERVAL_MS, "interval_ms", I64, metrics.interval_ms, EVENT_T(METRICS), EVENT_T(METRICS), 0,  \
     0, _, 22)                                                                                     \
  XX(COUNTERS, "counters", COUNTERS, metrics.counters, EVENT_T(METRICS), 0, 0, 0, _, 23)           \
  XX(GAUGES, "gauges", GAUGES, metrics.gauges, EVENT_T(METRICS), 0, 0, 0, _, 24)                   \
  XX(DISTRIBUTIONS, "distributions", DISTS, metrics.dists, EVENT_T(METRICS), 0, 0, 0, _, 25)       \
  XX(SAMPLES, "samples", SAMPLES, diff.samples, EVENT_T(DIFF_SAMPLES), EVENT_T(DIFF_SAMPLES), 0,   \
     0, _, 26)                                                                                     \
  XX(SIGNATURE, "signature", STR, signature, EVENT_T_ACTOR, 0, 0, 0, _, 28)

enum event_field_id {
#define XX(id, name, kind, member, types, req, lo, hi, etype, digest) EVENT_F_##id,
  EVENT_FIELD_MAP(XX)
#undef XX
      EVENT_FIELD_COUNT
};
_Static_assert(EVENT_FIELD_COUNT <= 32, "codecs keep a 32-bit mask of the fields seen");
_Static_assert(EVENT_TYPE_COUNT <= 32, "types and required are 32-bit masks");

/* How a field is held in struct event. */
enum event_field_kind {
  EVENT_FIELD_STR,      /* char[size] at off: empty is absent */
  EVENT_FIELD_BOOL,     /* bool at off */
  EVENT_FIELD_I64,      /* int64_t at off */
  EVENT_FIELD_INT,      /* int at off, min..max */
  EVENT_FIELD_ENUM,     /* an enum (int-sized) at off: count values, wire names by wire() */
  EVENT_FIELD_COUNTERS, /* metrics.counters, n_counters */
  EVENT_FIELD_GAUGES,   /* metrics.gauges, n_gauges */
  EVENT_FIELD_DISTS,    /* metrics.dists, n_dists */
  EVENT_FIELD_SAMPLES,  /* diff.samples, diff.n */
};

/* One row of EVENT_FIELD_MAP as data. */
struct event_field {
  const char *name;
  enum event_field_kind kind;
  uint32_t types;             /* bit per event type that carries it */
  uint32_t required;          /* bit per event type that must give it */
  size_t off, size;           /* the member in struct event */
  int min, max;               /* EVENT_FIELD_INT */
  const char *(*wire)(int v); /* EVENT_FIELD_ENUM: a value's wire name, "?" out of range */
  int count;                  /* EVENT_FIELD_ENUM: how many values */
  int digest;                 /* place in event_digest */
};

/* The rows, indexed by enum event_field_id (static storage). */
extern const struct event_field event_fields[EVENT_FIELD_COUNT];

/* The value of an enum field of ev, and setting it (v in 0..count-1). */
int event_field_enum_get(const struct event *ev, const struct event_field *f);
void event_field_enum_set(struct event *ev, const struct event_field *f, int v);

#endif
