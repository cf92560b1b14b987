/* The dashboard's history (core/history): one point per series per step, read from the windows
 * (counter sums, gauge avg/max, distribution quantiles), whole steps only, at most the last
 * HISTORY_CATCH_UP of them, the rules' readings and the split at the last step; dashboard.counters
 * marked business; nothing recorded twice; the plan key's bounds. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/planfile.h"
#include "core/history.h"
#include "fixtures.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MIN 60000LL
#define T0 (28333333LL * MIN) /* on a minute boundary */

static struct plan plan;
static struct rollout_metrics rm;
static struct rollout r;

static int setup(void **state) {
  (void)state;
  planfile_defaults(&plan);
  plan.n_dashboard_counters = 1;
  snprintf(plan.dashboard_counters[0], PLAN_NAME_MAX, "conversions");
  struct mstore_config cfg;
  mstore_config_default(&cfg);
  memset(&rm, 0, sizeof rm);
  if (mstore_init(&rm.ms, &cfg) != CANARY_OK)
    return -1;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "r\"<1>");
  r.stage = 1;
  r.exposure_percent = 5;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mstore_free(&rm.ms);
  return 0;
}

static void ingest(int64_t t, enum variant v, const char *counter, double c, const char *gauge,
                   double g, const char *dist, const double *vals, size_t n) {
  struct event ev = fixture_event(EVENT_METRICS, "m", "r1", t);
  ev.metrics.variant = v;
  ev.metrics.interval_ms = 10000;
  struct metric_value mc = {counter, c}, mg = {gauge, g};
  struct metric_dist d = {dist, vals, n};
  if (counter)
    ev.metrics.counters = &mc, ev.metrics.n_counters = 1;
  if (gauge)
    ev.metrics.gauges = &mg, ev.metrics.n_gauges = 1;
  if (dist)
    ev.metrics.dists = &d, ev.metrics.n_dists = 1;
  char why[200];
  int rc = mstore_ingest(&rm.ms, 1, &ev, why, sizeof why);
  if (rc != CANARY_OK)
    fail_msg("ingest: %s", why);
}

static const struct history_point *find(const struct history_points *h, int64_t step,
                                        const char *name, const char *stat, int variant) {
  const struct history_point *found = NULL;
  for (size_t i = 0; i < h->n; i++) {
    const struct history_point *p = &h->items[i];
    if (p->step_ms == step && !strcmp(p->name, name) && !strcmp(p->stat, stat) &&
        p->variant == variant) {
      assert_null(found); /* one point per series and step */
      found = p;
    }
  }
  return found;
}

static void test_steps_and_stats(void **state) {
  (void)state;
  double lat[100];
  for (int i = 0; i < 100; i++)
    lat[i] = i + 1; /* 1..100 ms */
  /* minute 0: six reports; minute 1: one report of 1000 requests */
  for (int k = 0; k < 6; k++) {
    ingest(T0 + k * 10000, VARIANT_CANARY, "requests", 100, "cpu_ratio", 0.1 * (k + 1),
           "latency_ms", lat, 100);
    ingest(T0 + k * 10000, VARIANT_BASELINE, "conversions", 2, NULL, 0, NULL, NULL, 0);
  }
  ingest(T0 + MIN + 5000, VARIANT_CANARY, "requests", 1000, NULL, 0, NULL, NULL, 0);

  struct history_points h = {0};
  int64_t through = T0;      /* recorded up to T0 */
  r.clock_ms = T0 + MIN - 1; /* the first minute has not ended: nothing */
  assert_int_equal(history_collect(&r, &rm, &plan, &through, &h), 0);
  assert_int_equal(through, T0);

  r.clock_ms = T0 + MIN + 5000; /* minute 0 ended */
  long n = history_collect(&r, &rm, &plan, &through, &h);
  assert_true(n > 0);
  assert_int_equal((long)h.n, n);
  assert_int_equal(through, T0 + MIN);
  const struct history_point *p = find(&h, T0, "requests", "sum", VARIANT_CANARY);
  assert_non_null(p);
  assert_true(p->value == 600); /* minute 1's 1000 are not in it */
  assert_int_equal(p->kind, HISTORY_METRIC);
  assert_int_equal(p->cohort, 1);
  assert_string_equal(p->rollout, r.id);
  p = find(&h, T0, "conversions", "sum", VARIANT_BASELINE);
  assert_non_null(p);
  assert_int_equal(p->kind, HISTORY_BUSINESS);
  assert_true(p->value == 12);
  p = find(&h, T0, "cpu_ratio", "avg", VARIANT_CANARY);
  assert_non_null(p);
  assert_true(fabs(p->value - 0.35) < 1e-12);
  assert_true(fabs(find(&h, T0, "cpu_ratio", "max", VARIANT_CANARY)->value - 0.6) < 1e-12);
  /* quantiles within the sketch's 1% */
  assert_true(fabs(find(&h, T0, "latency_ms", "p50", VARIANT_CANARY)->value - 50) <= 1.01);
  assert_true(fabs(find(&h, T0, "latency_ms", "p99", VARIANT_CANARY)->value - 99) <= 1.5);
  assert_true(find(&h, T0, "latency_ms", "n", VARIANT_CANARY)->value == 600);
  /* the split at the last step */
  p = find(&h, T0, "rollout", "exposure", -1);
  assert_non_null(p);
  assert_true(p->value == 5);
  assert_int_equal(p->kind, HISTORY_SPLIT);

  /* the same time again: nothing new (one point per step) */
  history_points_clear(&h);
  assert_int_equal(history_collect(&r, &rm, &plan, &through, &h), 0);

  /* minute 1 ends: its 1000 requests, and no cpu point (no data in it) */
  r.clock_ms = T0 + 2 * MIN;
  assert_true(history_collect(&r, &rm, &plan, &through, &h) > 0);
  assert_true(find(&h, T0 + MIN, "requests", "sum", VARIANT_CANARY)->value == 1000);
  assert_null(find(&h, T0 + MIN, "cpu_ratio", "avg", VARIANT_CANARY));
  assert_null(find(&h, T0, "requests", "sum", VARIANT_CANARY));
  history_points_free(&h);
}

static void test_catch_up_bounded(void **state) {
  (void)state;
  struct history_points h = {0};
  int64_t through = 0; /* a worker that just started */
  r.clock_ms = T0 + 500 * MIN + 30000;
  assert_true(history_collect(&r, &rm, &plan, &through, &h) > 0);
  assert_int_equal(through, T0 + 500 * MIN);
  for (size_t i = 0; i < h.n; i++) /* only the last HISTORY_CATCH_UP steps */
    assert_true(h.items[i].step_ms >= through - HISTORY_CATCH_UP * MIN);
  history_points_free(&h);
}

static void test_rule_readings(void **state) {
  (void)state;
  struct rollout x = r;
  x.n_readings = 2;
  x.readings[0] = (struct rollout_reading){.name = "error_rate",
                                           .kind = READING_RULE,
                                           .stage = 1,
                                           .state = EXPR_FOR_FIRING,
                                           .canary = 0.06,
                                           .baseline = 0.001,
                                           .threshold = 0.01,
                                           .log_e = log(50),
                                           .log_needed = log(100)};
  x.readings[1] = (struct rollout_reading){.name = "gate_x", .kind = READING_EXIT, .canary = 1};
  x.clock_ms = T0 + 3 * MIN;
  struct history_points h = {0};
  int64_t through = T0 + 2 * MIN;
  assert_true(history_collect(&x, &rm, &plan, &through, &h) > 0);
  int64_t last = T0 + 2 * MIN;
  assert_true(find(&h, last, "error_rate", "value", -1)->value == 0.06);
  assert_true(find(&h, last, "error_rate", "threshold", -1)->value == 0.01);
  assert_true(find(&h, last, "error_rate", "baseline", -1)->value == 0.001);
  assert_true(find(&h, last, "error_rate", "firing", -1)->value == 1);
  assert_true(fabs(find(&h, last, "error_rate", "progress", -1)->value - log(50) / log(100)) <
              1e-12);
  assert_null(find(&h, last, "gate_x", "value", -1)); /* gates are not rules */
  history_points_free(&h);
}

static void test_plan_key(void **state) {
  (void)state;
  struct plan p;
  struct config_error ce;
  const char *ok = "plan: t\ndashboard:\n  counters: [conversions, engagement]\n  step: 10s\n"
                   "stages:\n  - {name: a, traffic_percent: 100}\n";
  assert_int_equal(config_load_buffer("t.yaml", ok, strlen(ok), &p, &ce), CANARY_OK);
  assert_int_equal(p.n_dashboard_counters, 2);
  assert_string_equal(p.dashboard_counters[1], "engagement");
  assert_int_equal(history_step_ms(&p), 10000);
  const char *bad = "plan: t\ndashboard:\n  step: 15s\n"
                    "stages:\n  - {name: a, traffic_percent: 100}\n";
  assert_int_not_equal(config_load_buffer("t.yaml", bad, strlen(bad), &p, &ce), CANARY_OK);
  assert_int_equal(ce.line, 3);
  struct plan d;
  assert_int_equal(config_load_file(CANARY_SOURCE_DIR "/config/rollout.yaml", &d, &ce), CANARY_OK);
  assert_int_equal(history_step_ms(&d), 60000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_steps_and_stats),
      cmocka_unit_test(test_catch_up_bounded),
      cmocka_unit_test(test_rule_readings),
      cmocka_unit_test(test_plan_key),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
