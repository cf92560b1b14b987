#define _GNU_SOURCE /* memmem */
/* Tests for codec/avro_codec: round trips, frames, invalid content, fuzzing, and a throughput print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <avro.h>
#include <cmocka.h>

#include "codec/avro_codec.h"
#include "fixtures.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

static int setup(void **state) {
  avro_codec_t *c;
  if (avro_codec_new(&c) != CANARY_OK)
    return -1;
  *state = c;
  return 0;
}

static int teardown(void **state) {
  avro_codec_destroy(*state);
  return 0;
}

/* ---- comparing ------------------------------------------------------------------------------ */

static void assert_values_equal(const struct metric_value *a, size_t na,
                                const struct metric_value *b, size_t nb) {
  assert_int_equal(na, nb);
  for (size_t i = 0; i < na; i++) {
    assert_string_equal(a[i].name, b[i].name);
    assert_true(a[i].value == b[i].value);
  }
}

static void assert_event_equal(const struct event *a, const struct event *b) {
  assert_int_equal(a->type, b->type);
  assert_string_equal(a->id, b->id);
  assert_string_equal(a->rollout, b->rollout);
  assert_int_equal(a->time_ms, b->time_ms);
  assert_string_equal(a->signature, b->signature);
  assert_string_equal(a->service, b->service);
  assert_string_equal(a->version, b->version);
  assert_string_equal(a->baseline_version, b->baseline_version);
  assert_int_equal(a->ok, b->ok);
  assert_int_equal(a->passed, b->passed);
  assert_int_equal(a->failed, b->failed);
  assert_string_equal(a->cohort, b->cohort);
  assert_int_equal(a->count, b->count);
  assert_string_equal(a->incident, b->incident);
  assert_int_equal(a->severity, b->severity);
  assert_int_equal(a->incident_kind, b->incident_kind);
  assert_int_equal(a->sentiment, b->sentiment);
  assert_int_equal(a->role, b->role);
  assert_string_equal(a->actor, b->actor);
  assert_int_equal(a->alert_kind, b->alert_kind);
  assert_string_equal(a->detail, b->detail);
  assert_int_equal(a->action, b->action);
  assert_int_equal(a->force, b->force);
  assert_string_equal(a->reason, b->reason);
  assert_string_equal(a->flag, b->flag);
  assert_int_equal(a->value, b->value);
  assert_int_equal(a->metrics.variant, b->metrics.variant);
  assert_int_equal(a->metrics.interval_ms, b->metrics.interval_ms);
  assert_values_equal(a->metrics.counters, a->metrics.n_counters, b->metrics.counters,
                      b->metrics.n_counters);
  assert_values_equal(a->metrics.gauges, a->metrics.n_gauges, b->metrics.gauges,
                      b->metrics.n_gauges);
  assert_int_equal(a->metrics.n_dists, b->metrics.n_dists);
  for (size_t i = 0; i < a->metrics.n_dists; i++) {
    assert_string_equal(a->metrics.dists[i].name, b->metrics.dists[i].name);
    assert_int_equal(a->metrics.dists[i].n, b->metrics.dists[i].n);
    for (size_t j = 0; j < a->metrics.dists[i].n; j++)
      assert_true(a->metrics.dists[i].values[j] == b->metrics.dists[i].values[j]);
  }
  assert_int_equal(a->diff.n, b->diff.n);
  for (size_t i = 0; i < a->diff.n; i++) {
    assert_true(a->diff.samples[i].input == b->diff.samples[i].input);
    assert_true(a->diff.samples[i].stable == b->diff.samples[i].stable);
    assert_true(a->diff.samples[i].canary == b->diff.samples[i].canary);
  }
}

/* Encode ev, check frame and topic, decode, compare. */
static void round_trip(avro_codec_t *c, const struct event *ev, int32_t want_id) {
  struct avro_buf buf = AVRO_BUF_INIT;
  struct event back;
  char why[256] = "";
  assert_int_equal(avro_codec_encode_event(c, ev, &buf), CANARY_OK);
  assert_int_equal(avro_codec_schema_id(buf.data, buf.len), want_id);
  assert_string_equal(avro_codec_schema_topic(want_id), avro_codec_topic_of(ev->type));
  int rc = avro_codec_decode_event(c, buf.data, buf.len, &back, why, sizeof why);
  if (rc)
    fail_msg("%s: %s", event_type_name(ev->type), why);
  assert_event_equal(ev, &back);
  avro_buf_free(&buf);
}

/* ---- input events --------------------------------------------------------------------------- */

static void test_schemas_embedded(void **state) {
  (void)state;
  static const struct {
    int32_t id;
    const char *topic, *record;
  } want[] = {{1, "canary.deploy", "DeployEvent"},
              {2, "canary.commands", "CommandEvent"},
              {3, "canary.metrics", "MetricEvent"},
              {4, "canary.deploy", "DeployEvent"},
              {5, "canary.commands", "CommandEvent"},
              {10, "canary.decisions", "Decision"},
              {11, "canary.notifications", "Notification"},
              {12, "canary.flags", "TrafficSplit"},
              {13, "canary.dlq", "DeadLetter"},
              {14, "canary.flags", "TrafficSplit"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_string_equal(avro_codec_schema_topic(want[i].id), want[i].topic);
    assert_non_null(strstr(avro_codec_schema_json(want[i].id), want[i].record));
  }
  assert_null(avro_codec_schema_json(6));
  /* the split's cohorts gained segments under a new id; id 12 stays the schema before them */
  assert_null(strstr(avro_codec_schema_json(12), "segments"));
  assert_non_null(strstr(avro_codec_schema_json(14), "segments"));
  assert_string_equal(avro_codec_topic_of(EVENT_CI_COMPLETED), "canary.deploy");
  assert_string_equal(avro_codec_topic_of(EVENT_FLAG_SET), "canary.commands");
  assert_string_equal(avro_codec_topic_of(EVENT_DIFF_SAMPLES), "canary.metrics");
  assert_null(avro_codec_topic_of(EVENT_TYPE_COUNT));
}

static void test_deploy_round_trip(void **state) {
  avro_codec_t *c = *state;
  struct event ev = fixture_event(EVENT_ROLLOUT_REQUESTED, "e1", "checkout-v2", T0);
  strcpy(ev.service, "checkout");
  strcpy(ev.version, "2.0.0");
  strcpy(ev.baseline_version, "1.9.3");
  round_trip(c, &ev, 4);

  static const enum event_type oks[] = {EVENT_CI_COMPLETED, EVENT_DEPLOY_COMPLETED,
                                        EVENT_HEALTH_CHECKED};
  for (size_t i = 0; i < 3; i++) {
    ev = fixture_event(oks[i], "e2", "checkout-v2", T0 + 1);
    ev.ok = i != 1;
    round_trip(c, &ev, 4);
  }
  ev = fixture_event(EVENT_SMOKE_COMPLETED, "e3", "checkout-v2", T0 + 2);
  ev.ok = false;
  ev.passed = 41;
  ev.failed = 1;
  round_trip(c, &ev, 4);

  ev = fixture_event(EVENT_CRASH_REPORTED, "e4", "checkout-v2", T0 + 3);
  strcpy(ev.cohort, "internal_test");
  ev.count = 3;
  round_trip(c, &ev, 4);

  for (int k = 0; k < INCIDENT_KIND_COUNT; k++) {
    ev = fixture_event(EVENT_INCIDENT_OPENED, "e5", "checkout-v2", T0 + 4);
    strcpy(ev.incident, "INC-7");
    ev.severity = 1 + k % 4; /* 1..4, whatever the number of kinds */
    ev.incident_kind = (enum incident_kind)k;
    round_trip(c, &ev, 4);
  }
  ev = fixture_event(EVENT_INCIDENT_RESOLVED, "e6", "checkout-v2", T0 + 5);
  strcpy(ev.incident, "INC-7");
  round_trip(c, &ev, 4);

  ev = fixture_event(EVENT_FEEDBACK_RECEIVED, "e7", "checkout-v2", T0 + 6);
  strcpy(ev.cohort, "friendly_gp");
  ev.sentiment = SENTIMENT_NEGATIVE;
  round_trip(c, &ev, 4);

  for (int r = 0; r < APPROVAL_ROLE_COUNT; r++) {
    ev = fixture_event(EVENT_APPROVAL_GRANTED, "e8", "checkout-v2", T0 + 7);
    ev.role = (enum approval_role)r;
    strcpy(ev.actor, r ? "sam" : "");
    round_trip(c, &ev, 4);
  }
  for (int k = 0; k < ALERT_KIND_COUNT; k++) {
    ev = fixture_event(EVENT_ALERT_RAISED, "e9", "checkout-v2", T0 + 8);
    ev.alert_kind = (enum alert_kind)k;
    strcpy(ev.detail, k ? "pool at 97% — ünïcödé" : "");
    round_trip(c, &ev, 4);
  }
}

static void test_command_round_trip(void **state) {
  avro_codec_t *c = *state;
  for (int a = 0; a < COMMAND_ACTION_COUNT; a++) {
    struct event ev = fixture_event(EVENT_COMMAND, "c1", "checkout-v2", T0);
    ev.action = (enum command_action)a;
    ev.force = a == COMMAND_PROMOTE;
    strcpy(ev.actor, "alice");
    strcpy(ev.reason, a == COMMAND_PAUSE ? "checking dashboards" : "");
    round_trip(c, &ev, 5);
  }
  struct event ev = fixture_event(EVENT_FLAG_SET, "c2", "checkout-v2", T0);
  strcpy(ev.flag, "canary.cohort.beta.enabled");
  ev.value = false;
  strcpy(ev.actor, "bob");
  round_trip(c, &ev, 5);
  strcpy(ev.signature, "c2lnbmVk"); /* signed: the new field travels */
  round_trip(c, &ev, 5);
}

/*
 * Messages of the first versions (ids 1 and 2, before the signature, and for a command the
 * checklist item) still decode, as unsigned: they are in the topics when canaryd is upgraded.
 * Such a message is the new encoding without its last bytes (the null branches of the fields
 * added) under the old id.
 */
static void test_first_versions_still_decode(void **state) {
  avro_codec_t *c = *state;
  struct event cmd = fixture_event(EVENT_COMMAND, "c1", "checkout-v2", T0);
  cmd.action = COMMAND_ROLLBACK;
  strcpy(cmd.actor, "alice");
  struct event appr = fixture_event(EVENT_APPROVAL_GRANTED, "a1", "checkout-v2", T0);
  appr.role = APPROVAL_SUPPORT;
  strcpy(appr.actor, "carol");
  const struct {
    const struct event *ev;
    int32_t old_id;
    size_t added; /* fields the new version added, each a null branch (one byte) here */
  } cases[] = {{&cmd, 2, 2}, {&appr, 1, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct avro_buf buf = AVRO_BUF_INIT;
    struct event back;
    char why[256] = "";
    assert_int_equal(avro_codec_encode_event(c, cases[i].ev, &buf), CANARY_OK);
    for (size_t k = 1; k <= cases[i].added; k++)
      assert_int_equal(buf.data[buf.len - k], 0); /* the added fields: null */
    buf.data[4] = (unsigned char)cases[i].old_id;
    int rc = avro_codec_decode_event(c, buf.data, buf.len - cases[i].added, &back, why, sizeof why);
    if (rc)
      fail_msg("%s: %s", event_type_name(cases[i].ev->type), why);
    assert_event_equal(cases[i].ev, &back);
    /* and the old id with the new fields is refused: bytes after the record */
    assert_int_equal(avro_codec_decode_event(c, buf.data, buf.len, &back, why, sizeof why),
                     CANARY_EPARSE);
    avro_buf_free(&buf);
  }
}

/* A flag.set for all rollouts: rollout is null on the wire and "" after decoding. */
static void test_flag_set_without_rollout(void **state) {
  avro_codec_t *c = *state;
  struct event ev = fixture_event(EVENT_FLAG_SET, "kill-all", "", T0);
  strcpy(ev.flag, "system.canary.enabled");
  ev.value = false;
  round_trip(c, &ev, 5);

  /* Read it back with avro-c directly: the rollout field holds the null branch. */
  struct avro_buf buf = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_OK);
  avro_schema_t schema;
  assert_int_equal(avro_schema_from_json_length(avro_codec_schema_json(5),
                                                strlen(avro_codec_schema_json(5)), &schema),
                   0);
  avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
  avro_value_t rec, f, branch;
  assert_int_equal(avro_generic_value_new(iface, &rec), 0);
  avro_reader_t r = avro_reader_memory((const char *)buf.data + 5, (int64_t)buf.len - 5);
  assert_int_equal(avro_value_read(r, &rec), 0);
  assert_int_equal(avro_value_get_by_name(&rec, "rollout", &f, NULL), 0);
  assert_int_equal(avro_value_get_current_branch(&f, &branch), 0);
  assert_int_equal(avro_value_get_type(&branch), AVRO_NULL);
  avro_reader_free(r);
  avro_value_decref(&rec);
  avro_value_iface_decref(iface);
  avro_schema_decref(schema);
  avro_buf_free(&buf);
}

static void test_metrics_round_trip(void **state) {
  avro_codec_t *c = *state;
  static const struct metric_value counters[] = {
      {"requests", 1200}, {"errors", 3}, {"engine_requests", 800}, {"engine_timeouts", 0}};
  static const struct metric_value gauges[] = {
      {"cpu_ratio", 0.42}, {"memory_ratio", 0.61}, {"db_connections_used", 37}};
  static const double lat[] = {12.5, 80, 430.25, 19};
  static const double lcp[] = {2100};
  static const struct metric_dist dists[] = {
      {"latency_ms", lat, 4}, {"webvitals_lcp_ms", lcp, 1}, {"webvitals_cls", NULL, 0}};
  struct event ev = fixture_event(EVENT_METRICS, "m1", "checkout-v2", T0);
  strcpy(ev.cohort, "beta");
  ev.metrics.variant = VARIANT_BASELINE;
  ev.metrics.interval_ms = 10000;
  ev.metrics.counters = counters;
  ev.metrics.n_counters = 4;
  ev.metrics.gauges = gauges;
  ev.metrics.n_gauges = 3;
  ev.metrics.dists = dists;
  ev.metrics.n_dists = 3;
  round_trip(c, &ev, 3);

  /* An empty batch, then the big one again: the codec's arrays are reused. */
  struct event empty = fixture_event(EVENT_METRICS, "m2", "checkout-v2", T0);
  strcpy(empty.cohort, "ga");
  empty.metrics.variant = VARIANT_CANARY;
  empty.metrics.interval_ms = 1;
  round_trip(c, &empty, 3);
  round_trip(c, &ev, 3);

  static const struct diff_sample samples[] = {{1, 2, 2}, {0.5, -3.25, 1e300}, {0, 0, 0}};
  struct event d = fixture_event(EVENT_DIFF_SAMPLES, "m3", "checkout-v2", T0);
  strcpy(d.cohort, "internal_test");
  d.diff.samples = samples;
  d.diff.n = 3;
  round_trip(c, &d, 3);
}

static void test_encode_refuses_invalid(void **state) {
  avro_codec_t *c = *state;
  struct avro_buf buf = AVRO_BUF_INIT;
  struct event ev = fixture_event(EVENT_INCIDENT_OPENED, "x", "r", T0);
  strcpy(ev.incident, "INC-1");
  ev.severity = 7;
  assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_EINVALID);
  ev.severity = 2;
  ev.incident_kind = (enum incident_kind)99;
  assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_EINVALID);

  static const struct metric_value twice[] = {{"requests", 1}, {"requests", 2}};
  ev = fixture_event(EVENT_METRICS, "m", "r", T0);
  strcpy(ev.cohort, "beta");
  ev.metrics.interval_ms = 1000;
  ev.metrics.counters = twice;
  ev.metrics.n_counters = 2;
  assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_EINVALID);

  ev = fixture_event(EVENT_COMMAND, "c", "", T0); /* only flag.set may omit the rollout */
  assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_EINVALID);
  avro_buf_free(&buf);
}

/* ---- outputs -------------------------------------------------------------------------------- */

static void test_decision_round_trip(void **state) {
  avro_codec_t *c = *state;
  struct decision d;
  memset(&d, 0, sizeof d);
  strcpy(d.id, "checkout-v2/7");
  strcpy(d.rollout, "checkout-v2");
  d.seq = 7;
  d.time_ms = T0 + 99;
  d.action = DECISION_HALT;
  strcpy(d.from_stage, "beta");
  d.state = ROLLOUT_PAUSED;
  strcpy(d.reason, "error rate 2.1% > 1% (canary vs baseline, p=0.003)");
  strcpy(d.rule, "error_rate");
  strcpy(d.actor, "canaryd");
  decision_add_num(&d, "error_rate", 0.021);
  decision_add_int(&d, "requests", 10432);
  decision_add_str(&d, "cohort", "beta");
  decision_add_bool(&d, "breaker_open", true);
  decision_add_num(&d, "error_rate", 99); /* repeated key: the first value stays */

  struct avro_buf buf = AVRO_BUF_INIT;
  struct decision back;
  char why[256] = "";
  assert_int_equal(avro_codec_encode_decision(c, &d, &buf), CANARY_OK);
  assert_int_equal(avro_codec_schema_id(buf.data, buf.len), 10);
  int rc = avro_codec_decode_decision(c, buf.data, buf.len, &back, why, sizeof why);
  if (rc)
    fail_msg("%s", why);
  assert_string_equal(back.id, d.id);
  assert_string_equal(back.rollout, d.rollout);
  assert_int_equal(back.seq, 7);
  assert_int_equal(back.time_ms, d.time_ms);
  assert_int_equal(back.action, DECISION_HALT);
  assert_string_equal(back.from_stage, "beta");
  assert_string_equal(back.to_stage, "");
  assert_int_equal(back.state, ROLLOUT_PAUSED);
  assert_string_equal(back.reason, d.reason);
  assert_string_equal(back.rule, "error_rate");
  assert_string_equal(back.actor, "canaryd");
  assert_int_equal(back.n_evidence, 4);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(back.evidence[i].key, d.evidence[i].key);
    assert_int_equal(back.evidence[i].kind, d.evidence[i].kind);
  }
  assert_true(back.evidence[0].num == 0.021);
  assert_int_equal(back.evidence[1].i, 10432);
  assert_string_equal(back.evidence[2].str, "beta");
  assert_true(back.evidence[3].b);

  /* A plain command: no stages, no rule, no evidence. */
  memset(&d, 0, sizeof d);
  strcpy(d.id, "r/1");
  strcpy(d.rollout, "r");
  d.action = DECISION_PAUSE;
  strcpy(d.actor, "alice");
  assert_int_equal(avro_codec_encode_decision(c, &d, &buf), CANARY_OK);
  assert_int_equal(avro_codec_decode_decision(c, buf.data, buf.len, &back, why, sizeof why),
                   CANARY_OK);
  assert_string_equal(back.rule, "");
  assert_int_equal(back.n_evidence, 0);
  avro_buf_free(&buf);
}

static void test_notification_round_trip(void **state) {
  avro_codec_t *c = *state;
  struct notification n;
  memset(&n, 0, sizeof n);
  strcpy(n.id, "checkout-v2/n3");
  strcpy(n.rollout, "checkout-v2");
  n.time_ms = T0 + 5;
  n.channel = NOTIFY_EXECUTIVE;
  strcpy(n.target, "exec@example.com");
  n.severity = NOTIFY_SEV_CRITICAL;
  strcpy(n.title, "Sev 1: checkout-v2 halted");
  strcpy(n.text, "Error rate 2.1% in *beta*; exposure set to 0.");
  strcpy(n.decision_id, "checkout-v2/7");
  const char *slack = "{\"channel\":\"exec@example.com\",\"blocks\":[{\"type\":\"header\"}]}";

  struct avro_buf buf = AVRO_BUF_INIT;
  struct notification back;
  char why[256] = "", got[256], tiny[8];
  assert_int_equal(avro_codec_encode_notification(c, &n, slack, &buf), CANARY_OK);
  assert_int_equal(avro_codec_schema_id(buf.data, buf.len), 11);
  int rc =
      avro_codec_decode_notification(c, buf.data, buf.len, &back, got, sizeof got, why, sizeof why);
  if (rc)
    fail_msg("%s", why);
  assert_string_equal(back.id, n.id);
  assert_string_equal(back.rollout, n.rollout);
  assert_int_equal(back.time_ms, n.time_ms);
  assert_int_equal(back.channel, NOTIFY_EXECUTIVE);
  assert_string_equal(back.target, n.target);
  assert_int_equal(back.severity, NOTIFY_SEV_CRITICAL);
  assert_string_equal(back.title, n.title);
  assert_string_equal(back.text, n.text);
  assert_string_equal(back.decision_id, n.decision_id);
  assert_string_equal(got, slack);
  assert_int_equal(avro_codec_decode_notification(c, buf.data, buf.len, &back, tiny, sizeof tiny,
                                                  why, sizeof why),
                   CANARY_EFULL);
  assert_non_null(strstr(why, "slack"));
  assert_string_equal(back.title, n.title);
  avro_buf_free(&buf);
}

static void test_traffic_round_trip(void **state) {
  avro_codec_t *c = *state;
  struct traffic_split t;
  memset(&t, 0, sizeof t);
  strcpy(t.id, "checkout-v2/f4");
  strcpy(t.rollout, "checkout-v2");
  strcpy(t.service, "checkout");
  strcpy(t.version, "2.0.0");
  strcpy(t.baseline_version, "1.9.3");
  t.time_ms = T0 + 1;
  t.exposure_percent = 5;
  t.canary_enabled = true;
  t.breaker_open = false;
  static const char *const names[] = {"internal_test", "friendly_gp", "beta", "ga"};
  static const double pct[] = {0.5, 5, 25, 100};
  for (int i = 0; i < 4; i++) {
    strcpy(t.cohorts[i].name, names[i]);
    t.cohorts[i].percent = pct[i];
    t.cohorts[i].enabled = i < 2;
    t.cohorts[i].kill = i == 1;
  }
  t.n_cohorts = 4;
  strcpy(t.cohorts[0].segments[0], "eng-team"); /* the plan's groups travel with the split */
  strcpy(t.cohorts[0].segments[1], "qa");
  t.cohorts[0].n_segments = 2;
  strcpy(t.cohorts[2].features[0], "stable");
  t.cohorts[2].n_features = 1;
  strcpy(t.salt, "checkout-v2");
  t.buckets = 10000;

  struct avro_buf buf = AVRO_BUF_INIT;
  struct traffic_split back;
  char why[256] = "";
  assert_int_equal(avro_codec_encode_traffic(c, &t, &buf), CANARY_OK);
  assert_int_equal(avro_codec_schema_id(buf.data, buf.len), 14);
  int rc = avro_codec_decode_traffic(c, buf.data, buf.len, &back, why, sizeof why);
  if (rc)
    fail_msg("%s", why);
  assert_string_equal(back.id, t.id);
  assert_string_equal(back.rollout, t.rollout);
  assert_string_equal(back.service, t.service);
  assert_string_equal(back.version, t.version);
  assert_string_equal(back.baseline_version, t.baseline_version);
  assert_int_equal(back.time_ms, t.time_ms);
  assert_true(back.exposure_percent == 5);
  assert_true(back.canary_enabled);
  assert_false(back.breaker_open);
  assert_int_equal(back.n_cohorts, 4);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(back.cohorts[i].name, names[i]);
    assert_true(back.cohorts[i].percent == pct[i]);
    assert_int_equal(back.cohorts[i].n_segments, t.cohorts[i].n_segments);
    for (int k = 0; k < t.cohorts[i].n_segments; k++)
      assert_string_equal(back.cohorts[i].segments[k], t.cohorts[i].segments[k]);
    assert_int_equal(back.cohorts[i].n_features, t.cohorts[i].n_features);
    for (int k = 0; k < t.cohorts[i].n_features; k++)
      assert_string_equal(back.cohorts[i].features[k], t.cohorts[i].features[k]);
    assert_int_equal(back.cohorts[i].enabled, t.cohorts[i].enabled);
    assert_int_equal(back.cohorts[i].kill, t.cohorts[i].kill);
  }
  assert_string_equal(back.salt, t.salt);
  assert_int_equal(back.buckets, 10000);
  avro_buf_free(&buf);
}

/* Set field name of rec, a string, double, boolean or int by type (avro-c's generic value). */
static void put(avro_value_t *rec, const char *name, const char *s, double d, int i) {
  avro_value_t f;
  assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
  switch (avro_value_get_type(&f)) {
  case AVRO_STRING:
    assert_int_equal(avro_value_set_string(&f, s), 0);
    break;
  case AVRO_DOUBLE:
    assert_int_equal(avro_value_set_double(&f, d), 0);
    break;
  case AVRO_BOOLEAN:
    assert_int_equal(avro_value_set_boolean(&f, i), 0);
    break;
  case AVRO_INT32:
    assert_int_equal(avro_value_set_int(&f, i), 0);
    break;
  case AVRO_INT64:
    assert_int_equal(avro_value_set_long(&f, i), 0);
    break;
  default:
    fail_msg("%s: unexpected type", name);
  }
}

/*
 * A split written by a producer with the first version's schema (id 12, the Cohort record without
 * segments and features: what a consumer's registry serves for 12) still decodes, with no
 * segments or features; the current schema is id 14, and its bytes framed as 12 are refused.
 */
static void test_first_split_still_decodes(void **state) {
  avro_codec_t *c = *state;
  const char *json = avro_codec_schema_json(12);
  avro_schema_t schema;
  assert_non_null(json);
  assert_int_equal(avro_schema_from_json_length(json, strlen(json), &schema), 0);
  avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
  avro_value_t rec, arr, co;
  assert_int_equal(avro_generic_value_new(iface, &rec), 0);
  put(&rec, "id", "checkout-v2/f3", 0, 0);
  put(&rec, "rollout", "checkout-v2", 0, 0);
  put(&rec, "service", "checkout", 0, 0);
  put(&rec, "version", "2.0.0", 0, 0);
  put(&rec, "baseline_version", "1.9.3", 0, 0);
  put(&rec, "time", NULL, 0, 1000);
  put(&rec, "exposure_percent", NULL, 5, 0);
  put(&rec, "canary_enabled", NULL, 0, 1);
  put(&rec, "breaker_open", NULL, 0, 0);
  put(&rec, "salt", "checkout-v2", 0, 0);
  put(&rec, "buckets", NULL, 0, 10000);
  assert_int_equal(avro_value_get_by_name(&rec, "cohorts", &arr, NULL), 0);
  static const char *const names[] = {"internal_test", "beta"};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(avro_value_append(&arr, &co, NULL), 0);
    put(&co, "name", names[i], 0, 0);
    put(&co, "percent", NULL, i ? 25 : 0.5, 0);
    put(&co, "enabled", NULL, 0, i == 0);
    put(&co, "kill", NULL, 0, i == 1);
  }
  unsigned char buf[512] = {0x00, 0, 0, 0, 12};
  avro_writer_t w = avro_writer_memory((char *)buf + 5, (int64_t)sizeof buf - 5);
  assert_int_equal(avro_value_write(w, &rec), 0);
  size_t len = 5 + (size_t)avro_writer_tell(w);
  avro_writer_free(w);
  avro_value_decref(&rec);
  avro_value_iface_decref(iface);
  avro_schema_decref(schema);

  struct traffic_split back;
  char why[256] = "";
  int rc = avro_codec_decode_traffic(c, buf, len, &back, why, sizeof why);
  if (rc)
    fail_msg("%s", why);
  assert_string_equal(back.id, "checkout-v2/f3");
  assert_string_equal(back.service, "checkout");
  assert_string_equal(back.baseline_version, "1.9.3");
  assert_int_equal(back.time_ms, 1000);
  assert_true(back.exposure_percent == 5);
  assert_true(back.canary_enabled);
  assert_false(back.breaker_open);
  assert_string_equal(back.salt, "checkout-v2");
  assert_int_equal(back.buckets, 10000);
  assert_int_equal(back.n_cohorts, 2);
  for (int i = 0; i < 2; i++) {
    assert_string_equal(back.cohorts[i].name, names[i]);
    assert_true(back.cohorts[i].percent == (i ? 25 : 0.5));
    assert_int_equal(back.cohorts[i].enabled, i == 0);
    assert_int_equal(back.cohorts[i].kill, i == 1);
    assert_int_equal(back.cohorts[i].n_segments, 0);
    assert_int_equal(back.cohorts[i].n_features, 0);
  }

  /* canaryd writes 14; the same split framed as 12 is not what schema 12 describes */
  struct avro_buf cur = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_traffic(c, &back, &cur), CANARY_OK);
  assert_int_equal(avro_codec_schema_id(cur.data, cur.len), 14);
  assert_true(cur.len > len); /* the two nullable arrays per cohort */
  cur.data[4] = 12;
  assert_int_equal(avro_codec_decode_traffic(c, cur.data, cur.len, &back, why, sizeof why),
                   CANARY_EPARSE);
  avro_buf_free(&cur);
}

static void test_dlq_round_trip(void **state) {
  avro_codec_t *c = *state;
  static const unsigned char original[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x80, 0x7b};
  struct avro_buf buf = AVRO_BUF_INIT;
  struct avro_dlq d;
  char why[256] = "";
  assert_int_equal(avro_codec_encode_dlq(c, original, sizeof original, "canary.deploy", 3, 123456,
                                         NULL, 0, "body: field 'id' at byte 5 of 5: truncated",
                                         T0 + 42, &buf),
                   CANARY_OK);
  assert_int_equal(avro_codec_schema_id(buf.data, buf.len), 13);
  int rc = avro_codec_decode_dlq(c, buf.data, buf.len, &d, why, sizeof why);
  if (rc)
    fail_msg("%s", why);
  assert_int_equal(d.original_len, sizeof original);
  assert_memory_equal(d.original, original, sizeof original);
  assert_string_equal(d.topic, "canary.deploy");
  assert_int_equal(d.partition, 3);
  assert_int_equal(d.offset, 123456);
  assert_null(d.key);
  assert_int_equal(d.key_len, 0);
  assert_string_equal(d.reason, "body: field 'id' at byte 5 of 5: truncated");
  assert_int_equal(d.time_ms, T0 + 42);

  /* With a key, and an empty original. */
  assert_int_equal(
      avro_codec_encode_dlq(c, NULL, 0, "canary.metrics", 0, 0, "r\0x", 3, "empty", T0, &buf),
      CANARY_OK);
  assert_int_equal(avro_codec_decode_dlq(c, buf.data, buf.len, &d, why, sizeof why), CANARY_OK);
  assert_int_equal(d.original_len, 0);
  assert_non_null(d.original);
  assert_int_equal(d.key_len, 3);
  assert_memory_equal(d.key, "r\0x", 3);
  avro_buf_free(&buf);
}

/* ---- frames --------------------------------------------------------------------------------- */

/* A valid deploy message to damage. */
static struct avro_buf valid_message(avro_codec_t *c) {
  struct avro_buf buf = AVRO_BUF_INIT;
  struct event ev = fixture_event(EVENT_ROLLOUT_REQUESTED, "e1", "checkout-v2", T0);
  strcpy(ev.service, "checkout");
  strcpy(ev.version, "2.0.0");
  strcpy(ev.baseline_version, "1.9.3");
  assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_OK);
  return buf;
}

static void test_bad_frames(void **state) {
  avro_codec_t *c = *state;
  struct avro_buf ok = valid_message(c);
  unsigned char wrong_magic[256], unknown_id[256], truncated[256], trailing[256], decision_id[256];
  assert_true(ok.len < sizeof trailing);
  memcpy(wrong_magic, ok.data, ok.len);
  wrong_magic[0] = 0x01;
  memcpy(unknown_id, ok.data, ok.len);
  unknown_id[4] = 42;
  memcpy(truncated, ok.data, ok.len);
  memcpy(trailing, ok.data, ok.len);
  trailing[ok.len] = 0x02;
  memcpy(decision_id, ok.data, ok.len);
  decision_id[4] = 10;
  static const unsigned char garbage[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  static const unsigned char negative_len[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x41};
  /* id "id", rollout "r", time 1, type "ci", then service with branch 2 of ["null","string"] */
  static const unsigned char bad_union[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 'i', 'd',
                                            0x02, 'r',  0x02, 0x04, 'c',  'i',  0x04};
  static const char json[] = "{\"id\":\"e1\",\"type\":\"ci.completed\"}";
  const struct {
    const char *name;
    const void *buf;
    size_t len;
    const char *why; /* a substring of the message */
  } cases[] = {
      {"empty", "", 0, "shorter than the 5-byte header"},
      {"3 bytes", ok.data, 3, "3 bytes, shorter than the 5-byte header"},
      {"wrong magic byte", wrong_magic, ok.len, "magic byte 0x01"},
      {"JSON", json, sizeof json - 1, "looks like JSON"},
      {"unknown schema id", unknown_id, ok.len, "unknown schema id 42"},
      {"an output schema id", decision_id, ok.len, "is canary.decisions, not an input event"},
      {"header only", ok.data, 5, "field 'id' at byte 5 of 5: truncated"},
      {"truncated body", truncated, ok.len - 3, "truncated"},
      {"trailing bytes", trailing, ok.len + 1, "1 bytes after the end of the record"},
      {"varint too long", garbage, sizeof garbage, "varint"},
      {"negative length", negative_len, sizeof negative_len, "negative length -1"},
      {"union branch out of range", bad_union, sizeof bad_union,
       "field 'service' at byte 14 of 15: union branch 2 out of range 0..1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct event ev;
    char why[256] = "";
    int rc = avro_codec_decode_event(c, cases[i].buf, cases[i].len, &ev, why, sizeof why);
    if (rc != CANARY_EPARSE || !strstr(why, cases[i].why))
      fail_msg("%s: rc %d, why '%s', expected EPARSE and '%s'", cases[i].name, rc, why,
               cases[i].why);
  }
  assert_int_equal(avro_codec_schema_id(ok.data, 4), -1);
  assert_int_equal(avro_codec_schema_id(wrong_magic, ok.len), -1);
  assert_int_equal(avro_codec_schema_id(unknown_id, ok.len), 42);

  /* An input event is not a decision. */
  struct decision d;
  char why[256];
  assert_int_equal(avro_codec_decode_decision(c, ok.data, ok.len, &d, why, sizeof why),
                   CANARY_EPARSE);
  assert_non_null(strstr(why, "is canary.deploy, not canary.decisions"));
  avro_buf_free(&ok);
}

/* ---- invalid content, written with avro-c directly ------------------------------------------ */

struct raw {
  avro_schema_t schema;
  avro_value_iface_t *iface;
  avro_value_t rec;
  int32_t id;
};

static void raw_set(struct raw *r, const char *field, avro_type_t type, const void *val);

/* A record of schema id with every nullable field null and the common fields set. */
static void raw_new(struct raw *r, int32_t id, const char *type) {
  const char *json = avro_codec_schema_json(id);
  r->id = id;
  assert_int_equal(avro_schema_from_json_length(json, strlen(json), &r->schema), 0);
  r->iface = avro_generic_class_from_schema(r->schema);
  assert_int_equal(avro_generic_value_new(r->iface, &r->rec), 0);
  size_t n = 0; /* clang: avro-c's call macro may return before setting it */
  assert_int_equal(avro_value_get_size(&r->rec, &n), 0);
  for (size_t i = 0; i < n; i++) {
    avro_value_t f, b;
    assert_int_equal(avro_value_get_by_index(&r->rec, i, &f, NULL), 0);
    if (avro_value_get_type(&f) == AVRO_UNION) {
      assert_int_equal(avro_value_set_branch(&f, 0, &b), 0);
      assert_int_equal(avro_value_set_null(&b), 0);
    }
  }
  int64_t t = T0;
  raw_set(r, "id", AVRO_STRING, "raw-1");
  raw_set(r, "rollout", AVRO_STRING, "checkout-v2");
  raw_set(r, "time", AVRO_INT64, &t);
  raw_set(r, "type", AVRO_STRING, type);
}

/* Set field (selecting the union's non-null branch) to a string, long, int or boolean. */
static void raw_set(struct raw *r, const char *field, avro_type_t type, const void *val) {
  avro_value_t f, v = {NULL, NULL}; /* clang: as n in raw_new */
  assert_int_equal(avro_value_get_by_name(&r->rec, field, &f, NULL), 0);
  if (avro_value_get_type(&f) == AVRO_UNION) {
    assert_int_equal(avro_value_set_branch(&f, 1, &v), 0);
    f = v;
  }
  switch (type) {
  case AVRO_STRING:
    assert_int_equal(avro_value_set_string(&f, val), 0);
    break;
  case AVRO_BYTES: /* a string with a NUL inside: "ab\0c" */
    assert_int_equal(avro_value_set_string_len(&f, val, 5), 0);
    break;
  case AVRO_INT64:
    assert_int_equal(avro_value_set_long(&f, *(const int64_t *)val), 0);
    break;
  case AVRO_INT32:
    assert_int_equal(avro_value_set_int(&f, *(const int32_t *)val), 0);
    break;
  case AVRO_BOOLEAN:
    assert_int_equal(avro_value_set_boolean(&f, *(const int *)val), 0);
    break;
  default:
    fail();
  }
}

/* Frame the record and free it. */
static struct avro_buf raw_frame(struct raw *r) {
  struct avro_buf b = AVRO_BUF_INIT;
  size_t size;
  assert_int_equal(avro_value_sizeof(&r->rec, &size), 0);
  b.cap = b.len = size + 5;
  b.data = malloc(b.cap);
  assert_non_null(b.data);
  b.data[0] = 0;
  b.data[1] = b.data[2] = b.data[3] = 0;
  b.data[4] = (unsigned char)r->id;
  avro_writer_t w = avro_writer_memory((const char *)b.data + 5, (int64_t)size);
  assert_int_equal(avro_value_write(w, &r->rec), 0);
  avro_writer_free(w);
  avro_value_decref(&r->rec);
  avro_value_iface_decref(r->iface);
  avro_schema_decref(r->schema);
  return b;
}

static void expect_invalid(avro_codec_t *c, struct raw *r, const char *want) {
  struct avro_buf b = raw_frame(r);
  struct event ev;
  char why[256] = "";
  int rc = avro_codec_decode_event(c, b.data, b.len, &ev, why, sizeof why);
  avro_buf_free(&b);
  if (rc != CANARY_EINVALID || strncmp(why, want, strlen(want)) != 0)
    fail_msg("rc %d, why '%s', expected EINVALID and '%s...'", rc, why, want);
}

static void test_invalid_content(void **state) {
  avro_codec_t *c = *state;
  struct raw r;
  int32_t sev = 7;
  int64_t one = 1;
  int yes = 1;
  static const char nul[] = "ab\0c";
  char longname[200];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';

  raw_new(&r, 1, "foo");
  expect_invalid(c, &r, "type: unknown event type 'foo'");

  raw_new(&r, 1, "incident.opened");
  raw_set(&r, "incident", AVRO_STRING, "INC-1");
  raw_set(&r, "severity", AVRO_INT32, &sev);
  raw_set(&r, "kind", AVRO_STRING, "bug");
  expect_invalid(c, &r, "severity: must be 1..4, got 7");

  raw_new(&r, 1, "incident.opened");
  raw_set(&r, "incident", AVRO_STRING, "INC-1");
  sev = 2;
  raw_set(&r, "severity", AVRO_INT32, &sev);
  raw_set(&r, "kind", AVRO_STRING, "meteor");
  expect_invalid(c, &r, "kind: 'meteor' is not one of bug, security");

  raw_new(&r, 1, "approval.granted");
  raw_set(&r, "role", AVRO_STRING, "ceo");
  expect_invalid(c, &r, "role: 'ceo' is not one of product_owner, support, docs");

  raw_new(&r, 1, "approval.granted");
  expect_invalid(c, &r, "role: missing (required for approval.granted)");

  raw_new(&r, 1, "ci.completed");
  expect_invalid(c, &r, "ok: missing");

  raw_new(&r, 1, "ci.completed");
  raw_set(&r, "ok", AVRO_BOOLEAN, &yes);
  raw_set(&r, "severity", AVRO_INT32, &sev);
  expect_invalid(c, &r, "severity: not a field of ci.completed");

  raw_new(&r, 1, "crash.reported");
  raw_set(&r, "cohort", AVRO_STRING, "beta");
  raw_set(&r, "count", AVRO_INT64, &one);
  raw_set(&r, "rollout", AVRO_STRING, longname);
  expect_invalid(c, &r, "rollout: 199 bytes, longer than the 63 allowed");

  raw_new(&r, 1, "incident.resolved");
  raw_set(&r, "incident", AVRO_BYTES, nul);
  expect_invalid(c, &r, "incident: contains a NUL byte");

  raw_new(&r, 1, "command"); /* a command on the deploy topic's schema */
  expect_invalid(c, &r, "type: command is not an event of canary.deploy");

  raw_new(&r, 1, "crash.reported");
  raw_set(&r, "cohort", AVRO_STRING, "beta");
  int64_t zero = 0;
  raw_set(&r, "count", AVRO_INT64, &zero);
  expect_invalid(c, &r, "count: must be at least 1"); /* event_validate() */

  raw_new(&r, 2, "command");
  raw_set(&r, "action", AVRO_STRING, "explode");
  expect_invalid(c, &r, "action: 'explode' is not one of pause, resume, promote, rollback");

  raw_new(&r, 2, "command");
  raw_set(&r, "action", AVRO_STRING, "pause");
  {
    avro_value_t f, b;
    assert_int_equal(avro_value_get_by_name(&r.rec, "rollout", &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, 0, &b), 0);
  }
  expect_invalid(c, &r, "rollout: missing");

  raw_new(&r, 2, "flag.set");
  raw_set(&r, "flag", AVRO_STRING, "canary.everything");
  raw_set(&r, "value", AVRO_BOOLEAN, &yes);
  expect_invalid(c, &r, "flag: must be");

  raw_new(&r, 3, "metrics");
  raw_set(&r, "cohort", AVRO_STRING, "beta");
  raw_set(&r, "variant", AVRO_STRING, "blue");
  expect_invalid(c, &r, "variant: 'blue' is not one of canary, baseline");

  raw_new(&r, 3, "metrics");
  raw_set(&r, "cohort", AVRO_STRING, "beta");
  raw_set(&r, "variant", AVRO_STRING, "canary");
  int64_t ival = 1000;
  raw_set(&r, "interval_ms", AVRO_INT64, &ival);
  {
    avro_value_t map, v;
    assert_int_equal(avro_value_get_by_name(&r.rec, "counters", &map, NULL), 0);
    assert_int_equal(avro_value_add(&map, "requests", &v, NULL, NULL), 0);
    assert_int_equal(avro_value_set_double(&v, 0.0 / 0.0), 0);
  }
  expect_invalid(c, &r, "counters.requests: not a finite number");

  raw_new(&r, 3, "diff.samples");
  raw_set(&r, "cohort", AVRO_STRING, "beta");
  raw_set(&r, "variant", AVRO_STRING, "canary");
  expect_invalid(c, &r, "variant: not a field of diff.samples");
}

/* ---- no crash on anything ------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) { /* xorshift64*: deterministic, so a failure replays */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ULL;
}

/* What the fuzz loops saw: decodes that succeeded, and errors by code. */
static long seen_ok, seen_parse, seen_invalid, seen_other;

static void count(int rc) {
  if (rc == CANARY_OK)
    seen_ok++;
  else if (rc == CANARY_EPARSE)
    seen_parse++;
  else if (rc == CANARY_EINVALID)
    seen_invalid++;
  else
    seen_other++;
}

static void print_counts(const char *what) {
  printf("%s: %ld decoded, %ld EPARSE, %ld EINVALID, %ld other\n", what, seen_ok, seen_parse,
         seen_invalid, seen_other);
  seen_ok = seen_parse = seen_invalid = seen_other = 0;
}

/* Every decoder on buf: an error must say why; a success must be a valid value. */
static void decode_all(avro_codec_t *c, const unsigned char *buf, size_t len) {
  struct event ev;
  struct decision d;
  struct notification n;
  struct traffic_split t;
  struct avro_dlq q;
  char why[256], slack[512];
  why[0] = '\0';
  int rc = avro_codec_decode_event(c, buf, len, &ev, why, sizeof why);
  if (rc)
    assert_true(why[0] != '\0');
  else
    assert_true(event_validate(&ev, why, sizeof why));
  /* Count each message once, by the decoder of its schema id. */
  int32_t id = avro_codec_schema_id(buf, len);
  if (id < 10)
    count(rc);
  why[0] = '\0';
  if ((rc = avro_codec_decode_decision(c, buf, len, &d, why, sizeof why)))
    assert_true(why[0] != '\0');
  if (id == 10)
    count(rc);
  why[0] = '\0';
  if ((rc = avro_codec_decode_notification(c, buf, len, &n, slack, sizeof slack, why, sizeof why)))
    assert_true(why[0] != '\0');
  if (id == 11)
    count(rc);
  why[0] = '\0';
  if ((rc = avro_codec_decode_traffic(c, buf, len, &t, why, sizeof why)))
    assert_true(why[0] != '\0');
  if (id == 12 || id == 14)
    count(rc);
  why[0] = '\0';
  if ((rc = avro_codec_decode_dlq(c, buf, len, &q, why, sizeof why)))
    assert_true(why[0] != '\0');
  if (id == 13 || id > 14)
    count(rc);
}

static void test_random_buffers(void **state) {
  avro_codec_t *c = *state;
  static const int32_t ids[] = {1, 2, 3, 10, 11, 12, 13, 14};
  unsigned char buf[96];
  for (int i = 0; i < 10000; i++) {
    size_t len = next() % sizeof buf;
    for (size_t j = 0; j < len; j++)
      buf[j] = (unsigned char)next();
    /* Two in three get a valid header, so that the body check sees them. */
    if (i % 3 && len >= 5) {
      buf[0] = buf[1] = buf[2] = buf[3] = 0;
      buf[4] = (unsigned char)ids[next() % (sizeof ids / sizeof *ids)];
    }
    decode_all(c, buf, len);
  }
  print_counts("10,000 random buffers");
}

/* Valid messages of every schema, truncated, bit-flipped and overwritten. */
static void test_damaged_messages(void **state) {
  avro_codec_t *c = *state;
  struct avro_buf m[8] = {AVRO_BUF_INIT};
  m[0] = valid_message(c);

  static const struct metric_value counters[] = {{"requests", 10}, {"errors", 1}};
  static const double lat[] = {1, 2, 3};
  static const struct metric_dist dists[] = {{"latency_ms", lat, 3}};
  struct event ev = fixture_event(EVENT_METRICS, "m", "r", T0);
  strcpy(ev.cohort, "beta");
  ev.metrics.interval_ms = 1000;
  ev.metrics.counters = counters;
  ev.metrics.n_counters = 2;
  ev.metrics.gauges = counters;
  ev.metrics.n_gauges = 1;
  ev.metrics.dists = dists;
  ev.metrics.n_dists = 1;
  assert_int_equal(avro_codec_encode_event(c, &ev, &m[1]), CANARY_OK);
  static const struct diff_sample samples[] = {{1, 2, 3}, {4, 5, 6}};
  ev = fixture_event(EVENT_DIFF_SAMPLES, "d", "r", T0);
  strcpy(ev.cohort, "beta");
  ev.diff.samples = samples;
  ev.diff.n = 2;
  assert_int_equal(avro_codec_encode_event(c, &ev, &m[2]), CANARY_OK);
  ev = fixture_event(EVENT_COMMAND, "c", "r", T0);
  strcpy(ev.reason, "because");
  assert_int_equal(avro_codec_encode_event(c, &ev, &m[3]), CANARY_OK);

  struct decision d = {.id = "r/1", .rollout = "r", .actor = "canaryd", .rule = "x"};
  decision_add_num(&d, "a", 1);
  decision_add_str(&d, "b", "s");
  decision_add_bool(&d, "c", false);
  assert_int_equal(avro_codec_encode_decision(c, &d, &m[4]), CANARY_OK);
  struct notification n = {.id = "r/n1", .rollout = "r", .target = "#releases", .title = "t"};
  assert_int_equal(avro_codec_encode_notification(c, &n, "{}", &m[5]), CANARY_OK);
  struct traffic_split t = {.id = "r/f1",
                            .rollout = "r",
                            .service = "s",
                            .n_cohorts = 2,
                            .cohorts = {{.name = "a"}, {.name = "b"}}};
  assert_int_equal(avro_codec_encode_traffic(c, &t, &m[6]), CANARY_OK);
  assert_int_equal(
      avro_codec_encode_dlq(c, "abc", 3, "canary.deploy", 1, 2, "k", 1, "why", T0, &m[7]),
      CANARY_OK);

  unsigned char buf[256];
  for (int i = 0; i < 10000; i++) {
    const struct avro_buf *src = &m[i % 8];
    size_t len = src->len;
    assert_true(len <= sizeof buf);
    memcpy(buf, src->data, len);
    switch (next() % 4) {
    case 0: /* truncation */
      len = next() % len;
      break;
    case 1: /* 1 to 4 bit flips in the body */
      for (int k = 1 + (int)(next() % 4); k > 0; k--) {
        size_t at = 5 + next() % (len - 5);
        buf[at] ^= (unsigned char)(1u << (next() % 8));
      }
      break;
    case 2: /* an overwritten byte */
      buf[5 + next() % (len - 5)] = (unsigned char)next();
      break;
    default: /* a flip and a truncation */
      buf[5 + next() % (len - 5)] ^= 0x80;
      len = 5 + next() % (len - 4);
      break;
    }
    decode_all(c, buf, len);
  }
  print_counts("10,000 damaged messages");
  for (int i = 0; i < 8; i++)
    avro_buf_free(&m[i]);
}

/*
 * Issue 10, found by fuzzing: a block count of INT64_MIN (the 10-byte zig-zag varint
 * ff ff ff ff ff ff ff ff ff 01) in a diff.samples array was negated (undefined behaviour) before
 * being refused. It is refused, without (under UBSan: ./scripts/test) any report.
 */
static void test_block_count_int64_min(void **state) {
  avro_codec_t *c = *state;
  static const struct diff_sample samples[] = {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}};
  struct event ev = fixture_event(EVENT_DIFF_SAMPLES, "d", "r", T0);
  strcpy(ev.cohort, "beta");
  ev.diff.samples = samples;
  ev.diff.n = 3;
  struct avro_buf m = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_event(c, &ev, &m), CANARY_OK);
  /* the samples block: count 3 (zig-zag 0x06), then input 1.0 as 8 little-endian bytes */
  static const unsigned char block[] = {0x06, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
  unsigned char *at = memmem(m.data, m.len, block, sizeof block);
  assert_non_null(at);
  static const unsigned char min[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  unsigned char buf[512];
  size_t head = (size_t)(at - m.data);
  assert_true(m.len + sizeof min < sizeof buf);
  memcpy(buf, m.data, head);
  memcpy(buf + head, min, sizeof min);
  memcpy(buf + head + sizeof min, at + 1, m.len - head - 1);
  size_t len = m.len - 1 + sizeof min;
  struct event back;
  char why[256];
  int rc = avro_codec_decode_event(c, buf, len, &back, why, sizeof why);
  assert_true(rc == CANARY_EPARSE || rc == CANARY_EINVALID);
  avro_buf_free(&m);
}

/* ---- throughput: printed, never asserted ---------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Decode (and encode) one message repeatedly for about budget seconds; return per second. */
static double rate(avro_codec_t *c, const struct event *ev, bool encode, double budget) {
  struct avro_buf buf = AVRO_BUF_INIT;
  struct event back;
  char why[128];
  assert_int_equal(avro_codec_encode_event(c, ev, &buf), CANARY_OK);
  long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 1000; i++) {
      int rc = encode ? avro_codec_encode_event(c, ev, &buf)
                      : avro_codec_decode_event(c, buf.data, buf.len, &back, why, sizeof why);
      assert_int_equal(rc, CANARY_OK);
    }
    n += 1000;
    t = now_s() - t0;
  } while (t < budget);
  avro_buf_free(&buf);
  return (double)n / t;
}

static void test_throughput_print(void **state) {
  avro_codec_t *c = *state;
  struct event deploy = fixture_event(EVENT_CI_COMPLETED, "ci-4711", "checkout-v2", T0);
  deploy.ok = true;
  struct event cmd = fixture_event(EVENT_COMMAND, "cmd-12", "checkout-v2", T0);
  strcpy(cmd.actor, "alice");
  strcpy(cmd.reason, "checking dashboards");
  static const struct metric_value counters[] = {
      {"requests", 1200},       {"errors", 3},
      {"engine_requests", 800}, {"engine_timeouts", 0},
      {"approvals", 40},        {"approval_denials", 1},
      {"transactions", 300},    {"transactions_failed", 2}};
  static const struct metric_value gauges[] = {{"cpu_ratio", 0.42},
                                               {"memory_ratio", 0.61},
                                               {"db_connections_used", 37},
                                               {"db_connections_max", 100}};
  static const double lat[] = {12, 15, 19, 22, 30, 41, 55, 80, 120, 430};
  static const struct metric_dist dists[] = {{"latency_ms", lat, 10}};
  struct event metrics = fixture_event(EVENT_METRICS, "m-99", "checkout-v2", T0);
  strcpy(metrics.cohort, "beta");
  metrics.metrics.interval_ms = 10000;
  metrics.metrics.counters = counters;
  metrics.metrics.n_counters = 8;
  metrics.metrics.gauges = gauges;
  metrics.metrics.n_gauges = 4;
  metrics.metrics.dists = dists;
  metrics.metrics.n_dists = 1;

  const double budget = 0.1; /* seconds per figure: a glance, not a benchmark */
  printf("avro_codec throughput (one core, this build):\n");
  printf("  decode ci.completed : %9.0f /s\n", rate(c, &deploy, false, budget));
  printf("  decode command      : %9.0f /s\n", rate(c, &cmd, false, budget));
  printf("  decode metrics (8 counters, 4 gauges, 10 latencies): %9.0f /s\n",
         rate(c, &metrics, false, budget));
  printf("  encode ci.completed : %9.0f /s\n", rate(c, &deploy, true, budget));
  printf("  encode metrics      : %9.0f /s\n", rate(c, &metrics, true, budget));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schemas_embedded),
      cmocka_unit_test_setup_teardown(test_deploy_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flag_set_without_rollout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_first_versions_still_decode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_encode_refuses_invalid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decision_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_notification_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_traffic_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_first_split_still_decodes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dlq_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_content, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_buffers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_block_count_int64_min, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_throughput_print, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
