/* Wire names for the event enums and the stateless checks of the contract. */
#include "core/event.h"

#include <math.h>
#include <string.h>

#include "core/enum_names.h"
#include "core/error.h"

ENUM_NAMES(event_type, event_type, EVENT_TYPE_MAP, EVENT_TYPE_COUNT)
ENUM_PARSE(event_type, event_type, EVENT_TYPE_COUNT)
ENUM_NAMES(incident_kind, incident_kind, INCIDENT_KIND_MAP, INCIDENT_KIND_COUNT)
ENUM_PARSE(incident_kind, incident_kind, INCIDENT_KIND_COUNT)
ENUM_NAMES(sentiment, sentiment, SENTIMENT_MAP, SENTIMENT_COUNT)
ENUM_PARSE(sentiment, sentiment, SENTIMENT_COUNT)
ENUM_NAMES(approval_role, approval_role, APPROVAL_ROLE_MAP, APPROVAL_ROLE_COUNT)
ENUM_PARSE(approval_role, approval_role, APPROVAL_ROLE_COUNT)
ENUM_NAMES(alert_kind, alert_kind, ALERT_KIND_MAP, ALERT_KIND_COUNT)
ENUM_PARSE(alert_kind, alert_kind, ALERT_KIND_COUNT)
ENUM_NAMES(event_auth, event_auth, EVENT_AUTH_MAP, EVENT_AUTH_COUNT)
ENUM_NAMES(command_action, command_action, COMMAND_ACTION_MAP, COMMAND_ACTION_COUNT)
ENUM_PARSE(command_action, command_action, COMMAND_ACTION_COUNT)
ENUM_NAMES(variant, variant, VARIANT_MAP, VARIANT_COUNT)
ENUM_PARSE(variant, variant, VARIANT_COUNT)

/* "field: msg" into why; false, for the checks below to return. */
static bool fail(char *why, size_t len, const char *msg, const char *field) {
  canary_why(why, len, 0, "%s: %s", field, msg);
  return false;
}

/*
 * Names and texts are data, never terminal control: a rollout named with a newline split a row
 * of `canaryctl status` in two, and an escape sequence in one was interpreted by the operator's
 * terminal (issue 10). Refused: C0 controls and DEL, and the C1 controls (U+0080..U+009F, some
 * terminals act on them); free text (detail, reason) may hold tabs and newlines, which every
 * text output escapes (app_timeline.c).
 */
static bool printable(const char *s, bool text, char *why, size_t len, const char *field) {
  for (size_t i = 0; s[i]; i++) {
    unsigned char c = (unsigned char)s[i], next = (unsigned char)s[i + 1];
    bool c0 = c < 0x20 || c == 0x7f, c1 = c == 0xc2 && next >= 0x80 && next <= 0x9f;
    if ((c0 && !(text && (c == '\t' || c == '\n'))) || c1) {
      canary_why(why, len, 0, "%s: must not contain control characters (byte 0x%02x at %zu)", field,
                 c1 ? next : c, i);
      return false;
    }
  }
  return true;
}

/* Every name and text of ev printable (see printable). */
static bool all_printable(const struct event *ev, char *why, size_t len) {
  const struct {
    const char *v, *name;
    bool text;
  } f[] = {{ev->id, "id", false},
           {ev->rollout, "rollout", false},
           {ev->service, "service", false},
           {ev->version, "version", false},
           {ev->baseline_version, "baseline_version", false},
           {ev->cohort, "cohort", false},
           {ev->incident, "incident", false},
           {ev->actor, "actor", false},
           {ev->flag, "flag", false},
           {ev->detail, "detail", true},
           {ev->reason, "reason", true}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (!printable(f[i].v, f[i].text, why, len, f[i].name))
      return false;
  return true;
}

static bool flag_name_ok(const char *flag) {
  static const char prefix[] = "canary.cohort.";
  static const char suffix[] = ".enabled";
  if (strcmp(flag, "system.canary.enabled") == 0)
    return true;
  size_t n = strlen(flag), p = sizeof prefix - 1, s = sizeof suffix - 1;
  return n > p + s && strncmp(flag, prefix, p) == 0 && strcmp(flag + n - s, suffix) == 0;
}

static bool values_finite(const struct metric_value *v, size_t n, bool non_negative) {
  for (size_t i = 0; i < n; i++)
    if (!v[i].name || !v[i].name[0] || !isfinite(v[i].value) || (non_negative && v[i].value < 0))
      return false;
  return true;
}

/* Distributions hold latencies, sizes, CLS scores: finite and not negative. */
static bool dists_ok(const struct metric_dist *d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!d[i].name || !d[i].name[0])
      return false;
    for (size_t j = 0; j < d[i].n; j++)
      if (!isfinite(d[i].values[j]) || d[i].values[j] < 0)
        return false;
  }
  return true;
}

static bool samples_ok(const struct diff_sample *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(s[i].input) || !isfinite(s[i].stable) || !isfinite(s[i].canary))
      return false;
  return true;
}

bool event_validate(const struct event *ev, char *why, size_t why_len) {
  if (!ev->id[0])
    return fail(why, why_len, "missing", "id");
  if ((unsigned)ev->type >= EVENT_TYPE_COUNT)
    return fail(why, why_len, "unknown event type", "type");
  if (!ev->rollout[0] && ev->type != EVENT_FLAG_SET)
    return fail(why, why_len, "missing", "rollout");
  if (ev->time_ms < 0)
    return fail(why, why_len, "must not be before 1970", "time");
  if (!all_printable(ev, why, why_len))
    return false;
  if (ev->time_ms >= EVENT_TIME_MAX_MS)
    return fail(why, why_len,
                "must be before 2100 (milliseconds since 1970: is it in microseconds?)", "time");

  switch (ev->type) {
  case EVENT_ROLLOUT_REQUESTED:
    if (!ev->service[0])
      return fail(why, why_len, "missing", "service");
    if (!ev->version[0])
      return fail(why, why_len, "missing", "version");
    if (!ev->baseline_version[0])
      return fail(why, why_len, "missing", "baseline_version");
    return true;
  case EVENT_SMOKE_COMPLETED:
    if (ev->passed < 0 || ev->failed < 0)
      return fail(why, why_len, "must not be negative", ev->passed < 0 ? "passed" : "failed");
    return true;
  case EVENT_CRASH_REPORTED:
    if (!ev->cohort[0])
      return fail(why, why_len, "missing", "cohort");
    if (ev->count < 1)
      return fail(why, why_len, "must be at least 1", "count");
    return true;
  case EVENT_INCIDENT_OPENED:
    if (ev->severity < 1 || ev->severity > 4)
      return fail(why, why_len, "must be 1..4", "severity");
    __attribute__((fallthrough)); /* both need the incident id */
  case EVENT_INCIDENT_RESOLVED:
    if (!ev->incident[0])
      return fail(why, why_len, "missing", "incident");
    return true;
  case EVENT_FEEDBACK_RECEIVED:
    if (!ev->cohort[0])
      return fail(why, why_len, "missing", "cohort");
    return true;
  case EVENT_DIFF_SAMPLES:
    if (!ev->cohort[0])
      return fail(why, why_len, "missing", "cohort");
    if (!samples_ok(ev->diff.samples, ev->diff.n))
      return fail(why, why_len, "input, stable and canary must be finite", "samples");
    return true;
  case EVENT_METRICS:
    if (!ev->cohort[0])
      return fail(why, why_len, "missing", "cohort");
    if (ev->metrics.interval_ms <= 0)
      return fail(why, why_len, "must be positive", "interval_ms");
    /* Counters are counts over the interval: a negative one is a reset or a bug upstream. */
    if (!values_finite(ev->metrics.counters, ev->metrics.n_counters, true))
      return fail(why, why_len, "names must be set and values finite and not negative", "counters");
    if (!values_finite(ev->metrics.gauges, ev->metrics.n_gauges, false))
      return fail(why, why_len, "names must be set and values finite", "gauges");
    if (!dists_ok(ev->metrics.dists, ev->metrics.n_dists))
      return fail(why, why_len, "names must be set and values finite and not negative",
                  "distributions");
    return true;
  case EVENT_FLAG_SET:
    if (!flag_name_ok(ev->flag))
      return fail(why, why_len, "must be system.canary.enabled or canary.cohort.<name>.enabled",
                  "flag");
    return true;
  case EVENT_CI_COMPLETED:
  case EVENT_DEPLOY_COMPLETED:
  case EVENT_HEALTH_CHECKED:
  case EVENT_APPROVAL_GRANTED:
  case EVENT_ALERT_RAISED:
  case EVENT_COMMAND:
    return true;
  case EVENT_TYPE_COUNT:
    break;
  }
  return fail(why, why_len, "unknown event type", "type");
}
