/* The input events of the contract (DESIGN.md), as plain values the core can decide on. */
#ifndef CANARY_EVENT_H
#define CANARY_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_MAX 128   /* id, incl. NUL */
#define EVENT_NAME_MAX 64  /* rollout, service, version, cohort, actor, incident */
#define EVENT_FLAG_MAX 96  /* flag names: canary.cohort.<name>.enabled */
#define EVENT_TEXT_MAX 256 /* reason, detail */
#define EVENT_SIG_MAX 96   /* signature: base64 of a 64-byte Ed25519 signature (88), incl. NUL */

/* type: wire name. The order is part of nothing: never persist the numeric value. */
#define EVENT_TYPE_MAP(XX)                                                                         \
  XX(ROLLOUT_REQUESTED, "rollout.requested")                                                       \
  XX(CI_COMPLETED, "ci.completed")                                                                 \
  XX(DEPLOY_COMPLETED, "deploy.completed")                                                         \
  XX(HEALTH_CHECKED, "health.checked")                                                             \
  XX(SMOKE_COMPLETED, "smoke.completed")                                                           \
  XX(CRASH_REPORTED, "crash.reported")                                                             \
  XX(INCIDENT_OPENED, "incident.opened")                                                           \
  XX(INCIDENT_RESOLVED, "incident.resolved")                                                       \
  XX(FEEDBACK_RECEIVED, "feedback.received")                                                       \
  XX(APPROVAL_GRANTED, "approval.granted")                                                         \
  XX(ALERT_RAISED, "alert.raised")                                                                 \
  XX(COMMAND, "command")                                                                           \
  XX(FLAG_SET, "flag.set")                                                                         \
  XX(METRICS, "metrics")                                                                           \
  XX(DIFF_SAMPLES, "diff.samples")

enum event_type {
#define XX(name, wire) EVENT_##name,
  EVENT_TYPE_MAP(XX)
#undef XX
      EVENT_TYPE_COUNT
};
/* The bit of an event type in a mask of types: EVENT_T(METRICS). */
#define EVENT_T(x) (1u << EVENT_##x)

#define INCIDENT_KIND_MAP(XX)                                                                      \
  XX(BUG, "bug")                                                                                   \
  XX(SECURITY, "security")                                                                         \
  XX(COMPLIANCE, "compliance")                                                                     \
  XX(DATA_INCONSISTENCY, "data_inconsistency")                                                     \
  XX(OUTAGE, "outage") /* the service is down: no halt rule of its own, Sev decides */
enum incident_kind {
#define XX(name, wire) INCIDENT_##name,
  INCIDENT_KIND_MAP(XX)
#undef XX
      INCIDENT_KIND_COUNT
};

#define SENTIMENT_MAP(XX) XX(POSITIVE, "positive") XX(NEGATIVE, "negative")
enum sentiment {
#define XX(name, wire) SENTIMENT_##name,
  SENTIMENT_MAP(XX)
#undef XX
      SENTIMENT_COUNT
};

#define APPROVAL_ROLE_MAP(XX)                                                                      \
  XX(PRODUCT_OWNER, "product_owner")                                                               \
  XX(SUPPORT, "support")                                                                           \
  XX(DOCS, "docs")
enum approval_role {
#define XX(name, wire) APPROVAL_##name,
  APPROVAL_ROLE_MAP(XX)
#undef XX
      APPROVAL_ROLE_COUNT
};

#define ALERT_KIND_MAP(XX)                                                                         \
  XX(SECURITY, "security")                                                                         \
  XX(COMPLIANCE, "compliance")                                                                     \
  XX(DATA_INCONSISTENCY, "data_inconsistency")                                                     \
  XX(DB_CONNECTION_EXHAUSTION, "db_connection_exhaustion")
enum alert_kind {
#define XX(name, wire) ALERT_##name,
  ALERT_KIND_MAP(XX)
#undef XX
      ALERT_KIND_COUNT
};

#define COMMAND_ACTION_MAP(XX)                                                                     \
  XX(PAUSE, "pause")                                                                               \
  XX(RESUME, "resume")                                                                             \
  XX(PROMOTE, "promote")                                                                           \
  XX(ROLLBACK, "rollback")                                                                         \
  XX(CHECK, "check") /* tick the checklist item `item` */
enum command_action {
#define XX(name, wire) COMMAND_##name,
  COMMAND_ACTION_MAP(XX)
#undef XX
      COMMAND_ACTION_COUNT
};

#define VARIANT_MAP(XX) XX(CANARY, "canary") XX(BASELINE, "baseline")
enum variant {
#define XX(name, wire) VARIANT_##name,
  VARIANT_MAP(XX)
#undef XX
      VARIANT_COUNT
};

/*
 * Whether an event's signature was checked, and what came of it. Set by the shell (the worker,
 * simulate) before the event reaches the engine; the core's policy (core/policy) decides on it.
 */
#define EVENT_AUTH_MAP(XX)                                                                         \
  XX(UNCHECKED, "unchecked") /* nobody looked (no policy, or a type that is not signed) */         \
  XX(UNSIGNED, "unsigned")   /* no signature */                                                    \
  XX(VERIFIED, "verified")   /* the signature verifies with one of actor's keys */                 \
  XX(BAD, "bad")             /* a signature that verifies with none of actor's keys */
enum event_auth {
#define XX(name, wire) EVENT_AUTH_##name,
  EVENT_AUTH_MAP(XX)
#undef XX
      EVENT_AUTH_COUNT
};

/* Metric payloads are borrowed: the arrays belong to whoever decoded the event and are valid
 * only for the duration of the call that receives the event. The core copies what it keeps. */
struct metric_value {
  const char *name;
  double value;
};
struct metric_dist {
  const char *name;
  const double *values;
  size_t n;
};
struct diff_sample {
  double input, stable, canary;
};

struct event_metrics {
  enum variant variant;
  int64_t interval_ms;
  const struct metric_value *counters;
  size_t n_counters;
  const struct metric_value *gauges;
  size_t n_gauges;
  const struct metric_dist *dists;
  size_t n_dists;
};

struct event_diff {
  const struct diff_sample *samples;
  size_t n;
};

/*
 * One input event. A flat value: fields that the type does not use stay zero. Caller-allocated,
 * so tests keep events on the stack. Strings are NUL-terminated and truncated never: a codec that
 * meets a value longer than its field rejects the event (event_validate() names the field).
 */
struct event {
  enum event_type type;
  char id[EVENT_ID_MAX];
  char rollout[EVENT_NAME_MAX]; /* empty only for a flag.set that applies to all rollouts */
  int64_t time_ms;              /* event time, ms since the epoch */

  /* rollout.requested */
  char service[EVENT_NAME_MAX];
  char version[EVENT_NAME_MAX];
  char baseline_version[EVENT_NAME_MAX];

  /* ci.completed, deploy.completed, health.checked, smoke.completed */
  bool ok;
  int64_t passed, failed; /* smoke.completed */

  /* crash.reported, feedback.received, metrics, diff.samples */
  char cohort[EVENT_NAME_MAX];
  int64_t count; /* crash.reported */

  /* incident.opened, incident.resolved */
  char incident[EVENT_NAME_MAX];
  int severity; /* 1 (worst) .. 4 */
  enum incident_kind incident_kind;

  enum sentiment sentiment; /* feedback.received */

  /* approval.granted, command, flag.set */
  enum approval_role role;
  char actor[EVENT_NAME_MAX];

  /* alert.raised */
  enum alert_kind alert_kind;
  char detail[EVENT_TEXT_MAX];

  /* command */
  enum command_action action;
  bool force;
  char reason[EVENT_TEXT_MAX];
  char item[EVENT_NAME_MAX]; /* check: the plan's checklist item */

  /* flag.set */
  char flag[EVENT_FLAG_MAX];
  bool value;

  /* approval.granted, command, flag.set: the actor's Ed25519 signature of event_signed_bytes,
   * base64; empty when unsigned */
  char signature[EVENT_SIG_MAX];
  /* Not on the wire: what the shell found when it checked signature against the policy's keys
   * for actor (the core has no crypto; it decides on this). Codecs leave it EVENT_AUTH_UNCHECKED. */
  enum event_auth auth;

  struct event_metrics metrics; /* metrics */
  struct event_diff diff;       /* diff.samples */
};

/* Wire names of the enums above; each returns "?" for a value out of range. */
const char *event_type_name(enum event_type t);
const char *incident_kind_name(enum incident_kind k);
const char *sentiment_name(enum sentiment s);
const char *approval_role_name(enum approval_role r);
const char *alert_kind_name(enum alert_kind k);
const char *command_action_name(enum command_action a);
const char *variant_name(enum variant v);
const char *event_auth_name(enum event_auth a);

/* Parse a wire name. Return true and set *out when s names a value, false otherwise. */
bool event_type_parse(const char *s, enum event_type *out);
bool incident_kind_parse(const char *s, enum incident_kind *out);
bool sentiment_parse(const char *s, enum sentiment *out);
bool approval_role_parse(const char *s, enum approval_role *out);
bool alert_kind_parse(const char *s, enum alert_kind *out);
bool command_action_parse(const char *s, enum command_action *out);
bool variant_parse(const char *s, enum variant *out);

/*
 * Event times are milliseconds since 1970 before 2100-01-01: a time beyond is a unit error
 * (microseconds for milliseconds reach the year 55,000) or an attack, and a deadline loop must
 * never meet a time near INT64_MAX.
 */
#define EVENT_TIME_MAX_MS 4102444800000LL /* 2100-01-01T00:00:00Z */
/* canaryd's default --max-skew-ms: how far an event may be dated ahead of its producer's clock */
#define EVENT_MAX_SKEW_MS (3600 * 1000LL)

/*
 * Check the contract's rules that do not depend on any state: id present, rollout present
 * (except for a global flag.set), time in [1970, 2100), severity in 1..4, counts not negative,
 * flag name well-formed, metric values finite. Returns true when valid; otherwise false with a
 * one-line reason in why.
 */
bool event_validate(const struct event *ev, char *why, size_t why_len);

/*
 * What an event says, as 64 bits: every field but its id, as decoded (src/core/event_digest.c
 * says why decoded, and what is in it). Two copies of an id with the same digest are a
 * redelivery; with different digests, a conflict. Never EVENT_DIGEST_UNKNOWN. The value is
 * stored (event_id_batches.digests) and compared across versions: it must never change for an
 * event (tests/unit/test_event_digest.c pins it).
 */
uint64_t event_digest(const struct event *ev);
/* No digest: an id stored before digests were kept. It conflicts with no content: a repeat of
 * such an id is a plain duplicate, whatever it says. */
#define EVENT_DIGEST_UNKNOWN 0
/*
 * The bytes an actor signs (canaryctl --key) and canaryd verifies: the event in a canonical
 * form that every spelling of it shares — the id, the type, the rollout, the time and every
 * field of the type by its contract name, in the digest's order, each as name, length and
 * value — but the signature itself. The id is in it (unlike the digest): a signed pause sent
 * again under a new id would otherwise be a second, valid pause. The rollout and the time are
 * in it: a signature cannot be moved onto another rollout or another moment.
 * Only the types a person signs (approval.granted, command, flag.set). Writes at most cap bytes
 * to buf; returns the length, or 0 when ev is of another type or cap is too small
 * (EVENT_SIGNED_MAX always suffices).
 */
#define EVENT_SIGNED_MAX 2048
size_t event_signed_bytes(const struct event *ev, unsigned char *buf, size_t cap);

/* A digest as text, as logs and dead letters print it: 16 lowercase hex digits. */
#define EVENT_DIGEST_HEX_LEN 17
void event_digest_hex(uint64_t digest, char out[EVENT_DIGEST_HEX_LEN]);

#endif
