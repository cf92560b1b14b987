/* Contract events <-> JSON Lines, the outputs as JSON, and the examples in docs/events.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/event_json.h"
#include "codec/json.h"
#include "fixtures.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */
#define R "web-2.1.0"

/* ---- helpers -------------------------------------------------------------------------------- */

static void canon(const struct json_value *v, struct jbuf *out) {
  switch (v->type) {
  case JSON_NULL:
    jbuf_null(out);
    break;
  case JSON_BOOL:
    jbuf_bool(out, v->b);
    break;
  case JSON_NUMBER:
    jbuf_number(out, v->num);
    break;
  case JSON_STRING:
    jbuf_string_n(out, v->str, v->len);
    break;
  case JSON_ARRAY:
    jbuf_putc(out, '[');
    for (size_t k = 0; k < v->n_items; k++) {
      if (k)
        jbuf_putc(out, ',');
      canon(&v->items[k], out);
    }
    jbuf_putc(out, ']');
    break;
  case JSON_OBJECT:
    jbuf_putc(out, '{');
    for (size_t k = 0; k < v->n_members; k++) {
      if (k)
        jbuf_putc(out, ',');
      jbuf_string_n(out, v->members[k].key, v->members[k].key_len);
      jbuf_putc(out, ':');
      canon(&v->members[k].value, out);
    }
    jbuf_putc(out, '}');
    break;
  }
}

static const struct json_value *parse_json(struct json_doc *doc, const char *text, size_t len) {
  const struct json_value *root = NULL;
  struct json_error err;
  if (json_parse(doc, text, len, &root, &err) != CANARY_OK)
    fail_msg("not JSON at %d:%d: %s\n%.*s", err.line, err.column, err.message, (int)len, text);
  return root;
}

#define STR_EQ(field)                                                                              \
  if (strcmp(a->field, b->field) != 0)                                                             \
    fail_msg("%s: %s '%s' != '%s'", ctx, #field, a->field, b->field);
#define NUM_EQ(field)                                                                              \
  if (a->field != b->field)                                                                        \
    fail_msg("%s: %s %lld != %lld", ctx, #field, (long long)a->field, (long long)b->field);

static void assert_values_equal(const char *ctx, const char *what, const struct metric_value *x,
                                size_t nx, const struct metric_value *y, size_t ny) {
  if (nx != ny)
    fail_msg("%s: %s: %zu values != %zu", ctx, what, nx, ny);
  for (size_t k = 0; k < nx; k++)
    if (strcmp(x[k].name, y[k].name) != 0 || x[k].value != y[k].value)
      fail_msg("%s: %s[%zu]: %s=%g != %s=%g", ctx, what, k, x[k].name, x[k].value, y[k].name,
               y[k].value);
}

/* Field-by-field equality, metric payloads by content. */
static void assert_event_equal(const char *ctx, const struct event *a, const struct event *b) {
  /* statement macros without semicolons: clang-format cannot lay them out */
  // clang-format off
  NUM_EQ(type) STR_EQ(id) STR_EQ(rollout) NUM_EQ(time_ms)
  STR_EQ(service) STR_EQ(version) STR_EQ(baseline_version)
  NUM_EQ(ok) NUM_EQ(passed) NUM_EQ(failed) STR_EQ(cohort) NUM_EQ(count)
  STR_EQ(incident) NUM_EQ(severity) NUM_EQ(incident_kind) NUM_EQ(sentiment) NUM_EQ(role)
  STR_EQ(actor) NUM_EQ(alert_kind) STR_EQ(detail) NUM_EQ(action) NUM_EQ(force) STR_EQ(reason)
  STR_EQ(flag) NUM_EQ(value) NUM_EQ(metrics.variant) NUM_EQ(metrics.interval_ms)
      // clang-format on
      assert_values_equal(ctx, "counters", a->metrics.counters, a->metrics.n_counters,
                          b->metrics.counters, b->metrics.n_counters);
  assert_values_equal(ctx, "gauges", a->metrics.gauges, a->metrics.n_gauges, b->metrics.gauges,
                      b->metrics.n_gauges);
  NUM_EQ(metrics.n_dists)
  for (size_t k = 0; k < a->metrics.n_dists; k++) {
    const struct metric_dist *x = &a->metrics.dists[k], *y = &b->metrics.dists[k];
    if (strcmp(x->name, y->name) != 0 || x->n != y->n ||
        (x->n && memcmp(x->values, y->values, x->n * sizeof *x->values) != 0))
      fail_msg("%s: distribution %zu (%s) differs", ctx, k, x->name);
  }
  NUM_EQ(diff.n)
  for (size_t k = 0; k < a->diff.n; k++)
    if (memcmp(&a->diff.samples[k], &b->diff.samples[k], sizeof(struct diff_sample)) != 0)
      fail_msg("%s: sample %zu differs", ctx, k);
}

static void set(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s); }
#define SET(field, s) set(ev.field, sizeof ev.field, s)

/* ---- expected events ------------------------------------------------------------------------ */

static struct event ev_requested(void) {
  struct event ev = fixture_event(EVENT_ROLLOUT_REQUESTED, "e1", R, T0);
  SET(service, "web");
  SET(version, "2.1.0");
  SET(baseline_version, "2.0.9");
  return ev;
}
static struct event ev_ci(void) {
  struct event ev = fixture_event(EVENT_CI_COMPLETED, "e2", R, T0 + 1);
  ev.ok = true;
  return ev;
}
static struct event ev_deploy(void) {
  return fixture_event(EVENT_DEPLOY_COMPLETED, "e3", R, T0 + 2); /* ok false */
}
static struct event ev_health(void) {
  struct event ev = fixture_event(EVENT_HEALTH_CHECKED, "e4", R, T0 + 3);
  ev.ok = true;
  return ev;
}
static struct event ev_smoke(void) {
  struct event ev = fixture_event(EVENT_SMOKE_COMPLETED, "e5", R, T0 + 4);
  ev.ok = true;
  ev.passed = 42;
  return ev;
}
static struct event ev_smoke_min(void) {
  return fixture_event(EVENT_SMOKE_COMPLETED, "e5b", R, T0 + 4);
}
static struct event ev_crash(void) {
  struct event ev = fixture_event(EVENT_CRASH_REPORTED, "e6", R, T0 + 5);
  SET(cohort, "internal_test");
  ev.count = 3;
  return ev;
}
static struct event ev_incident(void) {
  struct event ev = fixture_event(EVENT_INCIDENT_OPENED, "e7", R, T0 + 6);
  SET(incident, "INC-7");
  ev.severity = 2;
  ev.incident_kind = INCIDENT_DATA_INCONSISTENCY;
  return ev;
}
static struct event ev_resolved(void) {
  struct event ev = fixture_event(EVENT_INCIDENT_RESOLVED, "e8", R, T0 + 7);
  SET(incident, "INC-7");
  return ev;
}
static struct event ev_feedback(void) {
  struct event ev = fixture_event(EVENT_FEEDBACK_RECEIVED, "e9", R, T0 + 8);
  SET(cohort, "beta");
  ev.sentiment = SENTIMENT_NEGATIVE;
  return ev;
}
static struct event ev_approval(void) {
  struct event ev = fixture_event(EVENT_APPROVAL_GRANTED, "e10", R, T0 + 9);
  ev.role = APPROVAL_DOCS;
  SET(actor, "carol");
  return ev;
}
static struct event ev_alert(void) {
  struct event ev = fixture_event(EVENT_ALERT_RAISED, "e11", R, T0 + 10);
  ev.alert_kind = ALERT_DB_CONNECTION_EXHAUSTION;
  SET(detail, "pool 98% used \"primary\"\n");
  return ev;
}
static struct event ev_alert_min(void) {
  struct event ev = fixture_event(EVENT_ALERT_RAISED, "e11b", R, T0 + 10);
  ev.alert_kind = ALERT_SECURITY;
  return ev;
}
static struct event ev_command(void) {
  struct event ev = fixture_event(EVENT_COMMAND, "c1", R, T0);
  ev.action = COMMAND_PROMOTE;
  ev.force = true;
  SET(actor, "alice");
  SET(reason, "hotfix verified");
  return ev;
}
static struct event ev_command_min(void) {
  struct event ev = fixture_event(EVENT_COMMAND, "c2", R, T0);
  ev.action = COMMAND_PAUSE;
  return ev;
}
static struct event ev_flag(void) {
  struct event ev = fixture_event(EVENT_FLAG_SET, "f1", R, T0 + 11);
  SET(flag, "canary.cohort.beta.enabled");
  SET(actor, "bob");
  return ev; /* value false */
}
static struct event ev_flag_global(void) {
  struct event ev = fixture_event(EVENT_FLAG_SET, "f2", "", T0 + 12);
  SET(flag, "system.canary.enabled");
  ev.value = true;
  return ev;
}

static const struct metric_value counters[] = {{"requests", 1200}, {"errors", 3}};
static const struct metric_value gauges[] = {{"cpu_ratio", 0.42}, {"webvitals_cls", 0.05}};
static const double latency[] = {12.5, 13, 250.25, 1e-3};
static const double lcp[] = {1800};
static const struct metric_dist dists[] = {
    {"latency_ms", latency, 4}, {"webvitals_lcp_ms", lcp, 1}, {"empty", NULL, 0}};
static const struct diff_sample samples[] = {{1, 2, 2}, {0.5, -1, 1e21}};

static struct event ev_metrics(void) {
  struct event ev = fixture_event(EVENT_METRICS, "m1", R, T0 + 13);
  SET(cohort, "friendly_gp");
  ev.metrics.variant = VARIANT_BASELINE;
  ev.metrics.interval_ms = 10000;
  ev.metrics.counters = counters;
  ev.metrics.n_counters = 2;
  ev.metrics.gauges = gauges;
  ev.metrics.n_gauges = 2;
  ev.metrics.dists = dists;
  ev.metrics.n_dists = 3;
  return ev;
}
static struct event ev_metrics_min(void) {
  struct event ev = fixture_event(EVENT_METRICS, "m2", R, T0 + 14);
  SET(cohort, "ga");
  ev.metrics.interval_ms = 1;
  return ev;
}
static struct event ev_diff(void) {
  struct event ev = fixture_event(EVENT_DIFF_SAMPLES, "d1", R, T0 + 15);
  SET(cohort, "beta");
  ev.diff.samples = samples;
  ev.diff.n = 2;
  return ev;
}

static struct event ev_diff_empty(void) {
  struct event ev = fixture_event(EVENT_DIFF_SAMPLES, "d2", R, T0 + 16);
  SET(cohort, "beta");
  return ev;
}

/* One JSON line per case, in the field order a person would write; all fields checked. */
static const struct {
  const char *line;
  struct event (*want)(void);
} valid[] = {
    {"{\"id\":\"e1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600000,\"type\":\"rollout."
     "requested\","
     "\"service\":\"web\",\"version\":\"2.1.0\",\"baseline_version\":\"2.0.9\"}",
     ev_requested},
    {"{\"type\":\"ci.completed\",\"id\":\"e2\",\"rollout\":\"web-2.1.0\",\"time\":1767225600001,"
     "\"ok\":true}",
     ev_ci},
    {" { \"id\" : \"e3\" , \"rollout\" : \"web-2.1.0\" , \"time\" : 1767225600002 , "
     "\"type\" : \"deploy.completed\" , \"ok\" : false }\r\n",
     ev_deploy},
    {"{\"id\":\"e4\",\"rollout\":\"web-2.1.0\",\"time\":\"2026-01-01T00:00:00.003Z\","
     "\"type\":\"health.checked\",\"ok\":true}",
     ev_health},
    {"{\"id\":\"e5\",\"rollout\":\"web-2.1.0\",\"time\":1767225600004,\"type\":\"smoke.completed\","
     "\"ok\":true,\"passed\":42,\"failed\":0}",
     ev_smoke},
    {"{\"id\":\"e5b\",\"rollout\":\"web-2.1.0\",\"time\":1767225600004,\"type\":\"smoke."
     "completed\","
     "\"ok\":false}",
     ev_smoke_min},
    {"{\"id\":\"e6\",\"rollout\":\"web-2.1.0\",\"time\":1767225600005,\"type\":\"crash.reported\","
     "\"cohort\":\"internal_test\",\"count\":3}",
     ev_crash},
    {"{\"id\":\"e7\",\"rollout\":\"web-2.1.0\",\"time\":1767225600006,\"type\":\"incident.opened\","
     "\"incident\":\"INC-7\",\"severity\":2,\"kind\":\"data_inconsistency\"}",
     ev_incident},
    {"{\"id\":\"e8\",\"rollout\":\"web-2.1.0\",\"time\":1767225600007,\"type\":\"incident."
     "resolved\","
     "\"incident\":\"INC-7\"}",
     ev_resolved},
    {"{\"id\":\"e9\",\"rollout\":\"web-2.1.0\",\"time\":1767225600008,\"type\":\"feedback."
     "received\","
     "\"cohort\":\"beta\",\"sentiment\":\"negative\"}",
     ev_feedback},
    {"{\"id\":\"e10\",\"rollout\":\"web-2.1.0\",\"time\":1767225600009,\"type\":\"approval."
     "granted\","
     "\"role\":\"docs\",\"actor\":\"carol\"}",
     ev_approval},
    {"{\"id\":\"e11\",\"rollout\":\"web-2.1.0\",\"time\":1767225600010,\"type\":\"alert.raised\","
     "\"kind\":\"db_connection_exhaustion\",\"detail\":\"pool 98% used \\\"primary\\\"\\n\"}",
     ev_alert},
    {"{\"id\":\"e11b\",\"rollout\":\"web-2.1.0\",\"time\":1767225600010,\"type\":\"alert.raised\","
     "\"kind\":\"security\"}",
     ev_alert_min},
    {"{\"id\":\"c1\",\"rollout\":\"web-2.1.0\",\"time\":\"2026-01-01T01:00:00+01:00\","
     "\"type\":\"command\",\"action\":\"promote\",\"force\":true,\"actor\":\"alice\","
     "\"reason\":\"hotfix verified\"}",
     ev_command},
    {"{\"id\":\"c2\",\"rollout\":\"web-2.1.0\",\"time\":1767225600000,\"type\":\"command\","
     "\"action\":\"pause\"}",
     ev_command_min},
    {"{\"id\":\"f1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600011,\"type\":\"flag.set\","
     "\"flag\":\"canary.cohort.beta.enabled\",\"value\":false,\"actor\":\"bob\"}",
     ev_flag},
    {"{\"id\":\"f2\",\"time\":1767225600012,\"type\":\"flag.set\","
     "\"flag\":\"system.canary.enabled\",\"value\":true}",
     ev_flag_global},
    {"{\"id\":\"f2\",\"rollout\":null,\"time\":1767225600012,\"type\":\"flag.set\","
     "\"flag\":\"system.canary.enabled\",\"value\":true}",
     ev_flag_global},
    {"{\"id\":\"f2\",\"rollout\":\"\",\"time\":1767225600012,\"type\":\"flag.set\","
     "\"flag\":\"system.canary.enabled\",\"value\":true}",
     ev_flag_global},
    {"{\"id\":\"m1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600013,\"type\":\"metrics\","
     "\"cohort\":\"friendly_gp\",\"variant\":\"baseline\",\"interval_ms\":10000,"
     "\"counters\":{\"requests\":1200,\"errors\":3},"
     "\"gauges\":{\"cpu_ratio\":0.42,\"webvitals_cls\":5e-2},"
     "\"distributions\":{\"latency_ms\":[12.5,13,250.25,0.001],\"webvitals_lcp_ms\":[1800],"
     "\"empty\":[]}}",
     ev_metrics},
    {"{\"id\":\"m2\",\"rollout\":\"web-2.1.0\",\"time\":1767225600014,\"type\":\"metrics\","
     "\"cohort\":\"ga\",\"variant\":\"canary\",\"interval_ms\":1}",
     ev_metrics_min},
    {"{\"id\":\"m2\",\"rollout\":\"web-2.1.0\",\"time\":1767225600014,\"type\":\"metrics\","
     "\"cohort\":\"ga\",\"variant\":\"canary\",\"interval_ms\":1,\"counters\":{},\"gauges\":{},"
     "\"distributions\":{}}",
     ev_metrics_min},
    {"{\"id\":\"d2\",\"rollout\":\"web-2.1.0\",\"time\":1767225600016,\"type\":\"diff.samples\","
     "\"cohort\":\"beta\",\"samples\":[]}",
     ev_diff_empty},
    {"{\"id\":\"d1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600015,\"type\":\"diff.samples\","
     "\"cohort\":\"beta\",\"samples\":[{\"input\":1,\"stable\":2,\"canary\":2},"
     "{\"canary\":1e21,\"stable\":-1,\"input\":0.5}]}",
     ev_diff},
};
#define N_VALID (sizeof valid / sizeof valid[0])

static void test_decode_every_type(void **state) {
  struct event_scratch *s = event_scratch_new();
  bool seen[EVENT_TYPE_COUNT] = {false};
  for (size_t k = 0; k < N_VALID; k++) {
    struct event ev, want = valid[k].want();
    char why[256];
    int rc = event_from_json(valid[k].line, strlen(valid[k].line), &ev, s, why, sizeof why);
    if (rc != CANARY_OK)
      fail_msg("case %zu: %s (%s)\n%s", k, canary_strerror(rc), why, valid[k].line);
    char ctx[32];
    snprintf(ctx, sizeof ctx, "case %zu", k);
    assert_event_equal(ctx, &ev, &want);
    seen[ev.type] = true;
  }
  for (int t = 0; t < EVENT_TYPE_COUNT; t++)
    if (!seen[t])
      fail_msg("no case for %s", event_type_name((enum event_type)t));
  event_scratch_destroy(s);
}

/* Integer ms and RFC 3339 (any offset, any fraction) give the same time. */
static void test_time_forms(void **state) {
  static const char *const times[] = {
      "1767229200250",
      "\"2026-01-01T01:00:00.250Z\"",
      "\"2026-01-01T02:00:00.25+01:00\"",
      "\"2025-12-31T19:30:00.250-05:30\"",
      "\"2026-01-01 01:00:00.250999z\"",
  };
  struct event_scratch *s = event_scratch_new();
  for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
    char line[256], why[128];
    snprintf(line, sizeof line,
             "{\"id\":\"t\",\"rollout\":\"r\",\"time\":%s,\"type\":\"ci.completed\",\"ok\":true}",
             times[k]);
    struct event ev;
    assert_int_equal(event_from_json(line, strlen(line), &ev, s, why, sizeof why), CANARY_OK);
    if (ev.time_ms != 1767229200250LL)
      fail_msg("%s -> %lld", times[k], (long long)ev.time_ms);
  }
  event_scratch_destroy(s);
}

/* ---- rejections ----------------------------------------------------------------------------- */

#define HEAD "{\"id\":\"x\",\"rollout\":\"r\",\"time\":1,"
#define LONG64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct {
  const char *line;
  int rc;
  const char *why; /* a substring of the reason */
} rejected[] = {
    /* not JSON: positions within the line */
    {"", CANARY_EPARSE, "1:1: empty document"},
    {"{\"id\":", CANARY_EPARSE, "1:7: unexpected end of input"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":true,}", CANARY_EPARSE, "trailing comma in object"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":true} x", CANARY_EPARSE, "trailing characters"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":true,\"ok\":false}", CANARY_EPARSE,
     "1:66: duplicate key 'ok'"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":True}", CANARY_EPARSE,
     "1:61: unexpected character 'T'"},
    /* JSON, but not an event */
    {"[]", CANARY_EINVALID, "event: expected object, got array"},
    {"\"ci.completed\"", CANARY_EINVALID, "event: expected object, got string"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":1}", CANARY_EINVALID, "type: missing"},
    {HEAD "\"type\":7}", CANARY_EINVALID, "type: expected string, got number"},
    {HEAD "\"type\":\"foo\"}", CANARY_EINVALID, "type: unknown event type 'foo'"},
    {HEAD "\"type\":\"CI.completed\",\"ok\":true}", CANARY_EINVALID, "unknown event type"},
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"sevrity\":1,\"kind\":\"bug\"}",
     CANARY_EINVALID, "unknown field 'sevrity' for incident.opened"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":true,\"severity\":1}", CANARY_EINVALID,
     "unknown field 'severity' for ci.completed"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":true,\"Id\":\"y\"}", CANARY_EINVALID,
     "unknown field 'Id'"},
    /* missing fields */
    {"{\"rollout\":\"r\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}", CANARY_EINVALID,
     "id: missing"},
    {"{\"id\":\"x\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}", CANARY_EINVALID,
     "rollout: missing"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"type\":\"ci.completed\",\"ok\":true}", CANARY_EINVALID,
     "time: missing"},
    {HEAD "\"type\":\"ci.completed\"}", CANARY_EINVALID, "ok: missing"},
    {HEAD "\"type\":\"crash.reported\",\"cohort\":\"beta\"}", CANARY_EINVALID, "count: missing"},
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":1}", CANARY_EINVALID,
     "kind: missing"},
    {HEAD "\"type\":\"rollout.requested\",\"service\":\"web\",\"version\":\"2\"}", CANARY_EINVALID,
     "baseline_version: missing"},
    {HEAD "\"type\":\"metrics\",\"cohort\":\"beta\",\"interval_ms\":5}", CANARY_EINVALID,
     "variant: missing"},
    {HEAD "\"type\":\"diff.samples\",\"cohort\":\"beta\"}", CANARY_EINVALID, "samples: missing"},
    {HEAD "\"type\":\"flag.set\",\"flag\":\"system.canary.enabled\"}", CANARY_EINVALID,
     "value: missing"},
    {HEAD "\"type\":\"rollout.requested\",\"service\":\"\",\"version\":\"2\","
          "\"baseline_version\":\"1\"}",
     CANARY_EINVALID, "service: missing"},
    {"{\"id\":\"\",\"rollout\":\"r\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "id: missing"},
    /* wrong JSON types */
    {"{\"id\":\"x\",\"rollout\":null,\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "rollout: expected string, got null"},
    {"{\"id\":7,\"rollout\":\"r\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "id: expected string, got number"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":\"true\"}", CANARY_EINVALID,
     "ok: expected true or false, got string"},
    {HEAD "\"type\":\"ci.completed\",\"ok\":1}", CANARY_EINVALID,
     "ok: expected true or false, got number"},
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":\"1\",\"kind\":\"bug\"}",
     CANARY_EINVALID, "severity: expected integer, got string"},
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":1.5,\"kind\":\"bug\"}",
     CANARY_EINVALID, "severity: must be an integer"},
    {HEAD "\"type\":\"crash.reported\",\"cohort\":\"beta\",\"count\":2.0}", CANARY_EINVALID,
     "count: must be an integer"},
    {HEAD "\"type\":\"crash.reported\",\"cohort\":\"beta\",\"count\":1e1}", CANARY_EINVALID,
     "count: must be an integer"},
    {HEAD "\"type\":\"crash.reported\",\"cohort\":\"beta\",\"count\":99999999999999999999}",
     CANARY_EINVALID, "count: must be an integer"},
    {HEAD "\"type\":\"crash.reported\",\"cohort\":[\"beta\"],\"count\":1}", CANARY_EINVALID,
     "cohort: expected string, got array"},
    {HEAD "\"type\":\"command\",\"action\":\"pause\",\"force\":null}", CANARY_EINVALID,
     "force: expected true or false, got null"},
    /* values out of their domain */
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":5,\"kind\":\"bug\"}",
     CANARY_EINVALID, "severity: must be 1..4"},
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":0,\"kind\":\"bug\"}",
     CANARY_EINVALID, "severity: must be 1..4"},
    {HEAD
     "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":4294967297,\"kind\":\"bug\"}",
     CANARY_EINVALID, "severity: must be 1..4"},
    {HEAD "\"type\":\"incident.opened\",\"incident\":\"I\",\"severity\":1,\"kind\":\"meteor\"}",
     CANARY_EINVALID, "kind: 'meteor' is not one of bug, security, compliance, data_inconsistency"},
    {HEAD "\"type\":\"alert.raised\",\"kind\":\"bug\"}", CANARY_EINVALID,
     "kind: 'bug' is not one of security, compliance, data_inconsistency, "
     "db_connection_exhaustion"},
    {HEAD "\"type\":\"feedback.received\",\"cohort\":\"beta\",\"sentiment\":\"meh\"}",
     CANARY_EINVALID, "sentiment: 'meh' is not one of positive, negative"},
    {HEAD "\"type\":\"approval.granted\",\"role\":\"ceo\"}", CANARY_EINVALID,
     "role: 'ceo' is not one of product_owner, support, docs"},
    {HEAD "\"type\":\"command\",\"action\":\"explode\"}", CANARY_EINVALID,
     "action: 'explode' is not one of pause, resume, promote, rollback"},
    {HEAD "\"type\":\"metrics\",\"cohort\":\"b\",\"variant\":\"both\",\"interval_ms\":5}",
     CANARY_EINVALID, "variant: 'both' is not one of canary, baseline"},
    {HEAD "\"type\":\"crash.reported\",\"cohort\":\"beta\",\"count\":0}", CANARY_EINVALID,
     "count: must be at least 1"},
    {HEAD "\"type\":\"smoke.completed\",\"ok\":true,\"failed\":-1}", CANARY_EINVALID,
     "failed: must not be negative"},
    {HEAD "\"type\":\"flag.set\",\"flag\":\"canary.enabled\",\"value\":true}", CANARY_EINVALID,
     "flag: must be system.canary.enabled or canary.cohort.<name>.enabled"},
    {HEAD "\"type\":\"metrics\",\"cohort\":\"b\",\"variant\":\"canary\",\"interval_ms\":0}",
     CANARY_EINVALID, "interval_ms: must be positive"},
    {HEAD "\"type\":\"metrics\",\"cohort\":\"b\",\"variant\":\"canary\",\"interval_ms\":10,"
          "\"counters\":{\"errors\":-1}}",
     CANARY_EINVALID, "counters: names must be set and values finite and not negative"},
    {HEAD "\"type\":\"metrics\",\"cohort\":\"b\",\"variant\":\"canary\",\"interval_ms\":10,"
          "\"distributions\":{\"latency_ms\":[12,-3]}}",
     CANARY_EINVALID, "distributions: names must be set and values finite and not negative"},
    /* strings: never truncated */
    {HEAD "\"type\":\"rollout.requested\",\"service\":\"" LONG64 "\",\"version\":\"2\","
          "\"baseline_version\":\"1\"}",
     CANARY_EINVALID, "service: longer than 63 bytes"},
    {"{\"id\":\"x\",\"rollout\":\"" LONG64 "\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "rollout: longer than 63 bytes"},
    {"{\"id\":\"" LONG64 LONG64 "\",\"rollout\":\"r\",\"time\":1,\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "id: longer than 127 bytes"},
    {HEAD "\"type\":\"incident.resolved\",\"incident\":\"a\\u0000b\"}", CANARY_EINVALID,
     "incident: must not contain NUL characters"},
    /* time */
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":\"yesterday\",\"type\":\"ci.completed\",\"ok\":"
     "true}",
     CANARY_EINVALID, "time: 'yesterday' is not an RFC 3339 timestamp"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":\"2026-02-29T00:00:00Z\",\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "time: '2026-02-29T00:00:00Z' is not an RFC 3339 timestamp"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":1.5,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "time: expected integer milliseconds or an RFC 3339 string"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":true,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "time: expected integer milliseconds or an RFC 3339 string, got boolean"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":-1,\"type\":\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "time: must not be before 1970"},
    /* issue 10: names are data, not terminal control (texts may hold tabs and newlines) */
    {"{\"id\":\"x\",\"rollout\":\"r\\nfake row\",\"time\":1,\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "rollout: must not contain control characters (byte 0x0a at 1)"},
    {"{\"id\":\"x\\u001b[31m\",\"rollout\":\"r\",\"time\":1,\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "id: must not contain control characters (byte 0x1b at 1)"},
    {"{\"id\":\"x\",\"rollout\":\"r\\u009b2J\",\"time\":1,\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "rollout: must not contain control characters (byte 0x9b at 1)"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":1,\"type\":\"command\",\"action\":\"pause\","
     "\"reason\":\"a\\u0007b\"}",
     CANARY_EINVALID, "reason: must not contain control characters (byte 0x07 at 1)"},
    /* issue 10: INT64_MAX is the deadlines' "none", and microseconds reach the year 57,000 */
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":9223372036854775807,\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "time: must be before 2100"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":4102444800000,\"type\":\"ci.completed\","
     "\"ok\":true}",
     CANARY_EINVALID, "time: must be before 2100"},
    {"{\"id\":\"x\",\"rollout\":\"r\",\"time\":\"2100-01-01T00:00:00Z\",\"type\":"
     "\"ci.completed\",\"ok\":true}",
     CANARY_EINVALID, "time: must be before 2100"},
/* metric payloads */
#define MHEAD HEAD "\"type\":\"metrics\",\"cohort\":\"b\",\"variant\":\"canary\",\"interval_ms\":5,"
    {MHEAD "\"counters\":[1]}", CANARY_EINVALID, "counters: expected object, got array"},
    {MHEAD "\"counters\":{\"requests\":\"5\"}}", CANARY_EINVALID,
     "counters.requests: expected number, got string"},
    {MHEAD "\"gauges\":{\"cpu_ratio\":null}}", CANARY_EINVALID,
     "gauges.cpu_ratio: expected number, got null"},
    {MHEAD "\"counters\":{\"\":1}}", CANARY_EINVALID, "counters: metric names must not be empty"},
    {MHEAD "\"gauges\":{\"a\\u0000b\":1}}", CANARY_EINVALID,
     "gauges: metric names must not contain NUL"},
    {MHEAD "\"distributions\":{\"latency_ms\":5}}", CANARY_EINVALID,
     "distributions.latency_ms: expected array, got number"},
    {MHEAD "\"distributions\":{\"latency_ms\":[1,\"x\"]}}", CANARY_EINVALID,
     "distributions.latency_ms[1]: expected number, got string"},
    {MHEAD "\"distributions\":{\"\":[1]}}", CANARY_EINVALID,
     "distributions: metric names must not be empty"},
    {MHEAD "\"counters\":null}", CANARY_EINVALID, "counters: expected object, got null"},
#define DHEAD HEAD "\"type\":\"diff.samples\",\"cohort\":\"b\","
    {DHEAD "\"samples\":{}}", CANARY_EINVALID, "samples: expected array, got object"},
    {DHEAD "\"samples\":[1]}", CANARY_EINVALID, "samples[0]: expected object, got number"},
    {DHEAD "\"samples\":[{\"input\":1,\"stable\":2,\"canary\":3},{\"input\":1,\"stable\":2}]}",
     CANARY_EINVALID, "samples[1].canary: missing"},
    {DHEAD "\"samples\":[{\"input\":1,\"stable\":\"2\",\"canary\":3}]}", CANARY_EINVALID,
     "samples[0].stable: expected number, got string"},
    {DHEAD "\"samples\":[{\"input\":1,\"stable\":2,\"canary\":3,\"weight\":4}]}", CANARY_EINVALID,
     "samples[0]: unknown field 'weight'"},
};

static void test_rejections(void **state) {
  struct event_scratch *s = event_scratch_new();
  for (size_t k = 0; k < sizeof rejected / sizeof rejected[0]; k++) {
    struct event ev;
    char why[256] = "(unset)";
    int rc = event_from_json(rejected[k].line, strlen(rejected[k].line), &ev, s, why, sizeof why);
    if (rc != rejected[k].rc || !strstr(why, rejected[k].why))
      fail_msg("case %zu: got %s \"%s\"; want %s \"...%s...\"\n%s", k, canary_strerror(rc), why,
               canary_strerror(rejected[k].rc), rejected[k].why, rejected[k].line);
  }
  /* why may be NULL */
  struct event ev;
  assert_int_equal(event_from_json("[]", 2, &ev, s, NULL, 0), CANARY_EINVALID);
  event_scratch_destroy(s);
}

/* A decode that fails leaves no half-filled event to act on by mistake: it is zeroed first. */
static void test_failed_decode_zeroes(void **state) {
  struct event_scratch *s = event_scratch_new();
  struct event ev;
  memset(&ev, 0xAB, sizeof ev);
  const char *line = HEAD "\"type\":\"ci.completed\",\"ok\":\"yes\"}";
  assert_int_equal(event_from_json(line, strlen(line), &ev, s, NULL, 0), CANARY_EINVALID);
  assert_int_equal(ev.severity, 0);
  assert_int_equal(ev.service[0], 0);
  event_scratch_destroy(s);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_round_trip_every_type(void **state) {
  struct event_scratch *s = event_scratch_new();
  struct jbuf a = {0}, b = {0};
  for (size_t k = 0; k < N_VALID; k++) {
    struct event want = valid[k].want(), got;
    char why[256], ctx[32];
    jbuf_reset(&a);
    event_to_json(&want, &a);
    assert_false(a.oom);
    assert_null(strchr(a.data, '\n'));
    int rc = event_from_json(a.data, a.len, &got, s, why, sizeof why);
    if (rc != CANARY_OK)
      fail_msg("case %zu: %s reading back\n%s", k, why, a.data);
    snprintf(ctx, sizeof ctx, "round trip %zu", k);
    assert_event_equal(ctx, &got, &want);
    jbuf_reset(&b);
    event_to_json(&got, &b); /* and the bytes are stable */
    assert_string_equal(a.data, b.data);
  }
  jbuf_free(&a);
  jbuf_free(&b);
  event_scratch_destroy(s);
}

static void test_event_to_json_bytes(void **state) {
  static const struct {
    struct event (*ev)(void);
    const char *json;
  } cases[] = {
      {ev_command,
       "{\"id\":\"c1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600000,\"type\":\"command\","
       "\"action\":\"promote\",\"force\":true,\"actor\":\"alice\",\"reason\":\"hotfix verified\"}"},
      {ev_incident, "{\"id\":\"e7\",\"rollout\":\"web-2.1.0\",\"time\":1767225600006,"
                    "\"type\":\"incident.opened\",\"incident\":\"INC-7\",\"severity\":2,"
                    "\"kind\":\"data_inconsistency\"}"},
      {ev_flag_global,
       "{\"id\":\"f2\",\"rollout\":null,\"time\":1767225600012,\"type\":\"flag.set\","
       "\"flag\":\"system.canary.enabled\",\"value\":true,\"actor\":\"\"}"},
      {ev_metrics,
       "{\"id\":\"m1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600013,\"type\":\"metrics\","
       "\"cohort\":\"friendly_gp\",\"variant\":\"baseline\",\"interval_ms\":10000,"
       "\"counters\":{\"requests\":1200,\"errors\":3},"
       "\"gauges\":{\"cpu_ratio\":0.42,\"webvitals_cls\":0.05},"
       "\"distributions\":{\"latency_ms\":[12.5,13,250.25,0.001],"
       "\"webvitals_lcp_ms\":[1800],\"empty\":[]}}"},
      {ev_diff,
       "{\"id\":\"d1\",\"rollout\":\"web-2.1.0\",\"time\":1767225600015,"
       "\"type\":\"diff.samples\",\"cohort\":\"beta\",\"samples\":"
       "[{\"input\":1,\"stable\":2,\"canary\":2},{\"input\":0.5,\"stable\":-1,\"canary\":1e21}]}"},
  };
  struct jbuf b = {0};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    struct event ev = cases[k].ev();
    jbuf_reset(&b);
    event_to_json(&ev, &b);
    assert_string_equal(b.data, cases[k].json);
  }
  jbuf_free(&b);
}

/* ---- metric payloads in the scratch --------------------------------------------------------- */

static void test_metrics_scratch(void **state) {
  struct event_scratch *s = event_scratch_new();
  struct jbuf line = {0};
  struct event ev;
  char why[256];
  /* Grows with the biggest event, then serves smaller ones from the same memory. */
  for (int n = 1; n <= 300; n += 299) {
    jbuf_reset(&line);
    jbuf_puts(&line, HEAD "\"type\":\"metrics\",\"cohort\":\"beta\",\"variant\":\"canary\","
                          "\"interval_ms\":10000,\"counters\":{");
    for (int k = 0; k < n; k++)
      jbuf_printf(&line, "%s\"c%d\":%d", k ? "," : "", k, k * 10);
    jbuf_puts(&line, "},\"gauges\":{\"g\":0.5},\"distributions\":{");
    for (int k = 0; k < n; k++) {
      jbuf_printf(&line, "%s\"d%d\":[", k ? "," : "", k);
      for (int j = 0; j <= k % 5; j++)
        jbuf_printf(&line, "%s%d.25", j ? "," : "", k + j);
      jbuf_putc(&line, ']');
    }
    jbuf_puts(&line, "}}");
    int rc = event_from_json(line.data, line.len, &ev, s, why, sizeof why);
    if (rc)
      fail_msg("%s", why);
    assert_int_equal(ev.metrics.n_counters, n);
    assert_int_equal(ev.metrics.n_dists, n);
    assert_int_equal(ev.metrics.n_gauges, 1);
    assert_string_equal(ev.metrics.gauges[0].name, "g");
    assert_true(ev.metrics.gauges[0].value == 0.5);
    for (int k = 0; k < n; k++) {
      char name[16];
      snprintf(name, sizeof name, "c%d", k);
      assert_string_equal(ev.metrics.counters[k].name, name);
      assert_true(ev.metrics.counters[k].value == k * 10);
      const struct metric_dist *d = &ev.metrics.dists[k];
      snprintf(name, sizeof name, "d%d", k);
      assert_string_equal(d->name, name);
      assert_int_equal(d->n, k % 5 + 1);
      for (size_t j = 0; j < d->n; j++)
        assert_true(d->values[j] == k + (double)j + 0.25);
      /* All values sit in one array, one distribution after another. */
      if (k)
        assert_ptr_equal(d->values, ev.metrics.dists[k - 1].values + ev.metrics.dists[k - 1].n);
    }
    /* Borrowed from the scratch, not pointing into the line. */
    assert_true((const char *)ev.metrics.counters < line.data ||
                (const char *)ev.metrics.counters >= line.data + line.cap);
  }
  /* Then a small one and a non-metric one through the same scratch. */
  const char *small = HEAD "\"type\":\"metrics\",\"cohort\":\"beta\",\"variant\":\"baseline\","
                           "\"interval_ms\":1,\"counters\":{\"requests\":7}}";
  assert_int_equal(event_from_json(small, strlen(small), &ev, s, why, sizeof why), CANARY_OK);
  assert_int_equal(ev.metrics.n_counters, 1);
  assert_int_equal(ev.metrics.n_dists, 0);
  assert_int_equal(ev.metrics.variant, VARIANT_BASELINE);
  const char *ci = HEAD "\"type\":\"ci.completed\",\"ok\":true}";
  assert_int_equal(event_from_json(ci, strlen(ci), &ev, s, why, sizeof why), CANARY_OK);
  assert_null(ev.metrics.counters);
  jbuf_free(&line);
  event_scratch_destroy(s);
  event_scratch_destroy(NULL);
}

/* canaryctl emit decodes objects it built: the same rules, from a json_value. */
static void test_from_value(void **state) {
  struct json_doc doc;
  json_doc_init(&doc);
  struct event ev;
  char why[128];
  const char *ci = HEAD "\"type\":\"ci.completed\",\"ok\":true}";
  const struct json_value *v = parse_json(&doc, ci, strlen(ci));
  assert_int_equal(event_from_json_value(v, &ev, NULL, why, sizeof why), CANARY_OK);
  assert_true(ev.ok);

  const char *m = HEAD "\"type\":\"metrics\",\"cohort\":\"b\",\"variant\":\"canary\","
                       "\"interval_ms\":5,\"counters\":{\"requests\":1}}";
  v = parse_json(&doc, m, strlen(m));
  assert_int_equal(event_from_json_value(v, &ev, NULL, why, sizeof why), CANARY_ENOMEM);
  struct event_scratch *s = event_scratch_new();
  assert_int_equal(event_from_json_value(v, &ev, s, why, sizeof why), CANARY_OK);
  assert_string_equal(ev.metrics.counters[0].name, "requests");

  assert_int_equal(event_from_json_value(NULL, &ev, s, why, sizeof why), CANARY_EINVALID);
  assert_string_equal(why, "event: expected object, got nothing");

  /* An object built in code may repeat a key; the parser never lets that through. */
  struct json_member mem[5] = {
      {"id", 2, {.type = JSON_STRING, .str = "x", .len = 1}},
      {"rollout", 7, {.type = JSON_STRING, .str = "r", .len = 1}},
      {"time", 4, {.type = JSON_NUMBER, .is_int = true, .i = 1, .num = 1}},
      {"type", 4, {.type = JSON_STRING, .str = "ci.completed", .len = 12}},
      {"type", 4, {.type = JSON_STRING, .str = "ci.completed", .len = 12}},
  };
  struct json_value obj = {.type = JSON_OBJECT, .members = mem, .n_members = 5};
  assert_int_equal(event_from_json_value(&obj, &ev, s, why, sizeof why), CANARY_EINVALID);
  assert_string_equal(why, "type: given twice");
  mem[4] = (struct json_member){"ok", 2, {.type = JSON_BOOL, .b = true}};
  assert_int_equal(event_from_json_value(&obj, &ev, s, why, sizeof why), CANARY_OK);
  event_scratch_destroy(s);
  json_doc_free(&doc);
}

/* ---- outputs -------------------------------------------------------------------------------- */

static struct decision sample_decision(void) {
  struct decision d;
  memset(&d, 0, sizeof d);
  set(d.id, sizeof d.id, R "/3");
  set(d.rollout, sizeof d.rollout, R);
  d.seq = 3;
  d.time_ms = T0 + 3600000;
  d.action = DECISION_HALT;
  set(d.from_stage, sizeof d.from_stage, "friendly_gp");
  d.state = ROLLOUT_PAUSED;
  set(d.reason, sizeof d.reason, "error rate 2.5% above the 1% limit for 5 min");
  set(d.rule, sizeof d.rule, "error_rate");
  decision_add_num(&d, "error_rate", 0.025);
  decision_add_num(&d, "baseline_error_rate", 0.004);
  decision_add_int(&d, "requests", 12000);
  decision_add_str(&d, "window", "5m");
  decision_add_bool(&d, "significant", true);
  set(d.actor, sizeof d.actor, "canaryd");
  return d;
}

static const char sample_decision_json[] =
    "{\"id\":\"web-2.1.0/"
    "3\",\"rollout\":\"web-2.1.0\",\"seq\":3,\"time\":\"2026-01-01T01:00:00.000Z\","
    "\"action\":\"halt\",\"from_stage\":\"friendly_gp\",\"to_stage\":null,\"state\":\"paused\","
    "\"reason\":\"error rate 2.5% above the 1% limit for 5 min\",\"rule\":\"error_rate\","
    "\"evidence\":{\"error_rate\":0.025,\"baseline_error_rate\":0.004,\"requests\":12000,"
    "\"window\":\"5m\",\"significant\":true},\"actor\":\"canaryd\"}";

static void test_decision_json(void **state) {
  struct jbuf b = {0};
  struct decision d = sample_decision();
  decision_to_json(&d, &b);
  assert_string_equal(b.data, sample_decision_json);
  size_t len = b.len;
  decision_to_json(&d, &b); /* appends: the same bytes again */
  assert_int_equal(b.len, 2 * len);
  assert_memory_equal(b.data + len, sample_decision_json, len);

  /* A plain start: no from_stage, no rule, no evidence; a repeated key keeps the first value,
   * and a value that is not a JSON number becomes null. */
  memset(&d, 0, sizeof d);
  set(d.id, sizeof d.id, "r/1");
  set(d.rollout, sizeof d.rollout, "r");
  d.seq = 1;
  d.action = DECISION_START;
  set(d.to_stage, sizeof d.to_stage, "internal_test");
  d.state = ROLLOUT_PENDING;
  set(d.reason, sizeof d.reason, "requested by \"ci\"");
  set(d.actor, sizeof d.actor, "canaryd");
  jbuf_reset(&b);
  decision_to_json(&d, &b);
  assert_string_equal(
      b.data, "{\"id\":\"r/1\",\"rollout\":\"r\",\"seq\":1,\"time\":\"1970-01-01T00:00:00.000Z\","
              "\"action\":\"start\",\"from_stage\":null,\"to_stage\":\"internal_test\","
              "\"state\":\"pending\",\"reason\":\"requested by \\\"ci\\\"\",\"rule\":null,"
              "\"evidence\":{},\"actor\":\"canaryd\"}");
  decision_add_num(&d, "p99", 0.0 / 0.0);
  decision_add_int(&d, "n", 1);
  decision_add_int(&d, "n", 2);
  jbuf_reset(&b);
  decision_to_json(&d, &b);
  assert_non_null(strstr(b.data, "\"evidence\":{\"p99\":null,\"n\":1}"));
  struct json_doc doc;
  json_doc_init(&doc);
  parse_json(&doc, b.data, b.len);
  json_doc_free(&doc);
  jbuf_free(&b);
}

static struct notification sample_notification(void) {
  struct notification n;
  memset(&n, 0, sizeof n);
  set(n.id, sizeof n.id, R "/n2");
  set(n.rollout, sizeof n.rollout, R);
  n.time_ms = T0 + 3600000;
  n.channel = NOTIFY_RELEASES;
  set(n.target, sizeof n.target, "#releases");
  n.severity = NOTIFY_SEV_CRITICAL;
  set(n.title, sizeof n.title, "web 2.1.0 halted at friendly_gp");
  set(n.text, sizeof n.text,
      "Error rate 2.5% > 1% limit (baseline 0.4%) for 5 min. Exposure held at 5% & no expansion "
      "until resumed.");
  set(n.decision_id, sizeof n.decision_id, R "/3");
  return n;
}

static const char *str_of(const struct json_value *obj, const char *key) {
  const struct json_value *v = json_get(obj, key);
  if (!v || v->type != JSON_STRING)
    fail_msg("%s: not a string", key);
  return v->str;
}

static void test_notification_json(void **state) {
  struct jbuf b = {0}, slack = {0};
  struct json_doc doc;
  json_doc_init(&doc);
  struct notification n = sample_notification();
  notification_to_json(&n, &b);
  const struct json_value *v = parse_json(&doc, b.data, b.len);
  static const char *const keys[] = {"id",       "rollout", "time", "channel",     "channel_kind",
                                     "severity", "title",   "text", "decision_id", "slack"};
  assert_int_equal(v->n_members, 10);
  for (size_t k = 0; k < 10; k++)
    assert_string_equal(v->members[k].key, keys[k]);
  assert_string_equal(str_of(v, "time"), "2026-01-01T01:00:00.000Z");
  assert_string_equal(str_of(v, "channel"), "#releases");
  assert_string_equal(str_of(v, "channel_kind"), "releases");
  assert_string_equal(str_of(v, "severity"), "critical");
  assert_string_equal(str_of(v, "text"), n.text); /* unescaped for non-Slack consumers */
  assert_string_equal(str_of(v, "decision_id"), "web-2.1.0/3");

  /* The slack member is the payload itself, as a JSON string. */
  notification_slack_payload(&n, &slack);
  const struct json_value *sv = json_get(v, "slack");
  assert_string_equal(sv->str, slack.data);

  const struct json_value *p = parse_json(&doc, sv->str, sv->len);
  assert_string_equal(str_of(p, "channel"), "#releases");
  assert_string_equal(str_of(p, "text"),
                      ":rotating_light: web 2.1.0 halted at friendly_gp: Error rate 2.5% &gt; 1% "
                      "limit (baseline 0.4%) for 5 min. Exposure held at 5% &amp; no expansion "
                      "until resumed.");
  const struct json_value *blocks = json_get(p, "blocks");
  assert_int_equal(blocks->type, JSON_ARRAY);
  assert_int_equal(blocks->n_items, 3);
  const struct json_value *header = &blocks->items[0];
  assert_string_equal(str_of(header, "type"), "header");
  assert_string_equal(str_of(json_get(header, "text"), "type"), "plain_text");
  assert_string_equal(str_of(json_get(header, "text"), "text"),
                      ":rotating_light: web 2.1.0 halted at friendly_gp");
  const struct json_value *section = &blocks->items[1];
  assert_string_equal(str_of(section, "type"), "section");
  assert_string_equal(str_of(json_get(section, "text"), "type"), "mrkdwn");
  assert_string_equal(
      str_of(json_get(section, "text"), "text"),
      "Error rate 2.5% &gt; 1% limit (baseline 0.4%) for 5 min. Exposure held at 5% "
      "&amp; no expansion until resumed.");
  const struct json_value *context = &blocks->items[2];
  assert_string_equal(str_of(context, "type"), "context");
  const struct json_value *el = json_get(context, "elements");
  assert_int_equal(el->n_items, 4);
  assert_string_equal(str_of(&el->items[0], "text"), "*Rollout:* `web-2.1.0`");
  assert_string_equal(str_of(&el->items[1], "text"), "*Severity:* critical");
  assert_string_equal(str_of(&el->items[2], "text"), "*Time:* 2026-01-01T01:00:00.000Z");
  assert_string_equal(str_of(&el->items[3], "text"), "*Decision:* `web-2.1.0/3`");
  jbuf_free(&b);
  jbuf_free(&slack);
  json_doc_free(&doc);
}

/* Count UTF-8 characters. */
static size_t chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

static void test_slack_variants(void **state) {
  struct jbuf b = {0};
  struct json_doc doc;
  json_doc_init(&doc);
  struct notification n = sample_notification();
  const struct json_value *p0;

  /* Severity picks the emoji. */
  static const struct {
    enum notify_severity sev;
    const char *prefix;
  } sev[] = {{NOTIFY_SEV_INFO, ":information_source: "},
             {NOTIFY_SEV_WARNING, ":warning: "},
             {NOTIFY_SEV_CRITICAL, ":rotating_light: "}};
  for (size_t k = 0; k < 3; k++) {
    n.severity = sev[k].sev;
    jbuf_reset(&b);
    notification_slack_payload(&n, &b);
    const struct json_value *p = parse_json(&doc, b.data, b.len);
    const char *h = str_of(json_get(&json_get(p, "blocks")->items[0], "text"), "text");
    assert_int_equal(strncmp(h, sev[k].prefix, strlen(sev[k].prefix)), 0);
  }

  /* Slack's three control characters are escaped in mrkdwn and the fallback, not in plain_text. */
  set(n.title, sizeof n.title, "a <b> & c");
  set(n.text, sizeof n.text, "<!channel> & <https://x|y>");
  jbuf_reset(&b);
  notification_slack_payload(&n, &b);
  p0 = parse_json(&doc, b.data, b.len);
  assert_string_equal(
      str_of(p0, "text"),
      ":rotating_light: a &lt;b&gt; &amp; c: &lt;!channel&gt; &amp; &lt;https://x|y&gt;");
  assert_string_equal(str_of(json_get(&json_get(p0, "blocks")->items[0], "text"), "text"),
                      ":rotating_light: a <b> & c");
  assert_string_equal(str_of(json_get(&json_get(p0, "blocks")->items[1], "text"), "text"),
                      "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");

  /* A backtick cannot close the code span the rollout's name sits in; outside one it stays. */
  char rollout[sizeof n.rollout];
  memcpy(rollout, n.rollout, sizeof rollout);
  set(n.rollout, sizeof n.rollout, "web`x");
  set(n.title, sizeof n.title, "a `b`");
  jbuf_reset(&b);
  notification_slack_payload(&n, &b);
  p0 = parse_json(&doc, b.data, b.len);
  const struct json_value *ctx = json_get(&json_get(p0, "blocks")->items[2], "elements");
  assert_string_equal(str_of(&ctx->items[0], "text"), "*Rollout:* `web'x`");
  assert_non_null(strstr(str_of(p0, "text"), "a `b`"));
  memcpy(n.rollout, rollout, sizeof rollout);

  /* A long title is cut to Slack's 150 characters for a header, whole characters only. */
  memset(n.title, 0, sizeof n.title);
  memset(n.title, 'x', 120);
  for (size_t k = 120; k < 146; k += 2)
    memcpy(n.title + k, "\xC3\xA9", 2); /* é: two bytes, one character; 133 characters in all */
  n.severity = NOTIFY_SEV_INFO;
  n.text[0] = '\0';        /* no text: no section block (Slack refuses empty text) */
  n.decision_id[0] = '\0'; /* no decision: three context items */
  jbuf_reset(&b);
  notification_slack_payload(&n, &b);
  const struct json_value *p = parse_json(&doc, b.data, b.len);
  const struct json_value *blocks = json_get(p, "blocks");
  assert_int_equal(blocks->n_items, 2);
  const char *h = str_of(json_get(&blocks->items[0], "text"), "text");
  assert_int_equal(chars(h), 150);
  assert_string_equal(h + strlen(h) - 3, "\xE2\x80\xA6"); /* ends in "…" */
  assert_int_equal(strlen(h), 21 + 120 + 2 * 8 + 3);      /* prefix, 120 x, 8 é, … */
  assert_int_equal(json_get(&blocks->items[1], "elements")->n_items, 3);

  /* A title that fits is not cut. */
  set(n.title, sizeof n.title, "short");
  jbuf_reset(&b);
  notification_slack_payload(&n, &b);
  p = parse_json(&doc, b.data, b.len);
  assert_string_equal(str_of(json_get(&json_get(p, "blocks")->items[0], "text"), "text"),
                      ":information_source: short");
  assert_string_equal(str_of(p, "text"), ":information_source: short");

  /* notification_to_json: an empty decision id is null. */
  jbuf_reset(&b);
  notification_to_json(&n, &b);
  p = parse_json(&doc, b.data, b.len);
  assert_int_equal(json_get(p, "decision_id")->type, JSON_NULL);
  jbuf_free(&b);
  json_doc_free(&doc);
}

static struct traffic_split sample_traffic(void) {
  static const struct {
    const char *name;
    double pct;
    bool enabled, kill;
    const char *segment, *feature;
  } cohorts[] = {{"internal_test", 0.5, true, false, "eng-team", "all"},
                 {"friendly_gp", 5, true, false, "pilot-partners", "all"},
                 {"beta", 25, false, true, "beta-opt-in", "stable"},
                 {"ga", 100, false, false, NULL, "stable"}};
  struct traffic_split t;
  memset(&t, 0, sizeof t);
  set(t.id, sizeof t.id, R "/f4");
  set(t.rollout, sizeof t.rollout, R);
  set(t.service, sizeof t.service, "web");
  set(t.version, sizeof t.version, "2.1.0");
  set(t.baseline_version, sizeof t.baseline_version, "2.0.9");
  t.time_ms = T0 + 90000000;
  t.exposure_percent = 5;
  t.canary_enabled = true;
  for (int k = 0; k < 4; k++) {
    set(t.cohorts[k].name, sizeof t.cohorts[k].name, cohorts[k].name);
    t.cohorts[k].percent = cohorts[k].pct;
    t.cohorts[k].enabled = cohorts[k].enabled;
    t.cohorts[k].kill = cohorts[k].kill;
    if (cohorts[k].segment)
      set(t.cohorts[k].segments[t.cohorts[k].n_segments++], PLAN_NAME_MAX, cohorts[k].segment);
    set(t.cohorts[k].features[t.cohorts[k].n_features++], PLAN_NAME_MAX, cohorts[k].feature);
  }
  t.n_cohorts = 4;
  set(t.salt, sizeof t.salt, R);
  t.buckets = 10000;
  return t;
}

static void test_traffic_json(void **state) {
  struct jbuf b = {0};
  struct traffic_split t = sample_traffic();
  traffic_to_json(&t, &b);
  assert_string_equal(
      b.data,
      "{\"id\":\"web-2.1.0/"
      "f4\",\"rollout\":\"web-2.1.0\",\"service\":\"web\",\"version\":\"2.1.0\","
      "\"baseline_version\":\"2.0.9\",\"time\":\"2026-01-02T01:00:00.000Z\",\"exposure_percent\":5,"
      "\"canary_enabled\":true,\"breaker_open\":false,\"cohorts\":{"
      "\"internal_test\":{\"percent\":0.5,\"enabled\":true,\"kill\":false,"
      "\"segments\":[\"eng-team\"],\"features\":[\"all\"]},"
      "\"friendly_gp\":{\"percent\":5,\"enabled\":true,\"kill\":false,"
      "\"segments\":[\"pilot-partners\"],\"features\":[\"all\"]},"
      "\"beta\":{\"percent\":25,\"enabled\":false,\"kill\":true,"
      "\"segments\":[\"beta-opt-in\"],\"features\":[\"stable\"]},"
      "\"ga\":{\"percent\":100,\"enabled\":false,\"kill\":false,"
      "\"segments\":[],\"features\":[\"stable\"]}},"
      "\"salt\":\"web-2.1.0\",\"buckets\":10000}");
  jbuf_free(&b);
}

/* ---- docs/events.md ------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  struct jbuf b = {0};
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    jbuf_write(&b, chunk, n);
  fclose(f);
  *len = b.len;
  return b.data;
}

/* The example in the docs says exactly what the encoder writes (whitespace aside). */
static void assert_same_json(struct json_doc *doc, const struct json_value *docs_example,
                             const char *encoded, const char *what) {
  struct jbuf a = {0}, b = {0};
  canon(docs_example, &a);
  canon(parse_json(doc, encoded, strlen(encoded)), &b);
  if (strcmp(a.data, b.data) != 0)
    fail_msg("docs/events.md: the %s example differs from the encoder:\n docs: %s\n code: %s", what,
             a.data, b.data);
  jbuf_free(&a);
  jbuf_free(&b);
}

static void test_docs_examples(void **state) {
  size_t len = 0;
  char *md = read_file(CANARY_SOURCE_DIR "/docs/events.md", &len);
  if (!md)
    fail_msg("cannot read %s", CANARY_SOURCE_DIR "/docs/events.md");
  struct event_scratch *s = event_scratch_new();
  struct json_doc doc;
  json_doc_init(&doc);
  struct jbuf block = {0}, enc = {0};
  bool types[EVENT_TYPE_COUNT] = {false};
  int events = 0, outputs = 0;
  bool decision = false, notification = false, slack = false, traffic = false;

  enum { NONE, JSONL, JSON, OTHER } in = NONE;
  int block_line = 0, lineno = 0;
  for (char *line = md; line < md + len;) {
    char *nl = memchr(line, '\n', (size_t)(md + len - line));
    char *end = nl ? nl : md + len;
    size_t n = (size_t)(end - line);
    lineno++;
    bool fence = n >= 3 && memcmp(line, "```", 3) == 0;
    if (fence && in == NONE) {
      in = n == 8 && memcmp(line, "```jsonl", 8) == 0  ? JSONL
           : n == 7 && memcmp(line, "```json", 7) == 0 ? JSON
                                                       : OTHER;
      block_line = lineno;
      jbuf_reset(&block);
    } else if (fence) {
      if (in == JSON) {
        /* An output example: valid JSON, and equal to what the code writes for the sample. */
        const struct json_value *v = parse_json(&doc, block.data ? block.data : "", block.len);
        jbuf_reset(&enc);
        if (json_get(v, "seq")) {
          struct decision d = sample_decision();
          decision_to_json(&d, &enc);
          assert_same_json(&doc, v, enc.data, "decision");
          decision = true;
        } else if (json_get(v, "channel_kind")) {
          struct notification no = sample_notification();
          notification_to_json(&no, &enc);
          assert_same_json(&doc, v, enc.data, "notification");
          notification = true;
        } else if (json_get(v, "blocks")) {
          struct notification no = sample_notification();
          notification_slack_payload(&no, &enc);
          assert_same_json(&doc, v, enc.data, "Slack payload");
          slack = true;
        } else if (json_get(v, "buckets")) {
          struct traffic_split t = sample_traffic();
          traffic_to_json(&t, &enc);
          assert_same_json(&doc, v, enc.data, "traffic split");
          traffic = true;
        }
        outputs++;
      }
      in = NONE;
    } else if (in == JSONL && n > 0) {
      /* An input example: one event per line, valid by the whole contract. */
      struct event ev;
      char why[256];
      int rc = event_from_json(line, n, &ev, s, why, sizeof why);
      if (rc != CANARY_OK)
        fail_msg("docs/events.md:%d (block at line %d): %s\n%.*s", lineno, block_line, why, (int)n,
                 line);
      /* and it survives a round trip */
      jbuf_reset(&enc);
      event_to_json(&ev, &enc);
      struct event again;
      struct event_scratch *s2 = event_scratch_new();
      if (event_from_json(enc.data, enc.len, &again, s2, why, sizeof why) != CANARY_OK)
        fail_msg("docs/events.md:%d: written back as %s: %s", lineno, enc.data, why);
      assert_event_equal("docs round trip", &again, &ev);
      event_scratch_destroy(s2);
      types[ev.type] = true;
      events++;
    } else if (in == JSON) {
      jbuf_write(&block, line, n);
      jbuf_putc(&block, '\n');
    }
    line = end + 1;
  }
  assert_int_equal(in, NONE); /* every fence closed */
  for (int t = 0; t < EVENT_TYPE_COUNT; t++)
    if (!types[t])
      fail_msg("docs/events.md has no ```jsonl example of %s", event_type_name((enum event_type)t));
  assert_true(decision && notification && slack && traffic);
  assert_true(events >= EVENT_TYPE_COUNT);
  assert_true(outputs >= 4);
  jbuf_free(&block);
  jbuf_free(&enc);
  json_doc_free(&doc);
  event_scratch_destroy(s);
  free(md);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_every_type),
      cmocka_unit_test(test_time_forms),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_failed_decode_zeroes),
      cmocka_unit_test(test_round_trip_every_type),
      cmocka_unit_test(test_event_to_json_bytes),
      cmocka_unit_test(test_metrics_scratch),
      cmocka_unit_test(test_from_value),
      cmocka_unit_test(test_decision_json),
      cmocka_unit_test(test_notification_json),
      cmocka_unit_test(test_slack_variants),
      cmocka_unit_test(test_traffic_json),
      cmocka_unit_test(test_docs_examples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
