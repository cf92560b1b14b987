/* The Prometheus text format: families, label escaping, number spelling, histogram buckets. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/prom.h"

static void test_family_and_sample(void **state) {
  (void)state;
  struct prom_buf b = {0};
  prom_family(&b, "canaryd_events_applied_total", "counter", "Events applied.\nTwo lines \\ ok");
  prom_sample(&b, "canaryd_events_applied_total", NULL, 0, 42);
  assert_false(b.failed);
  assert_string_equal(b.data, "# HELP canaryd_events_applied_total Events applied.\\nTwo lines "
                              "\\\\ ok\n"
                              "# TYPE canaryd_events_applied_total counter\n"
                              "canaryd_events_applied_total 42\n");
  prom_buf_free(&b);
  assert_null(b.data);
}

static void test_label_escaping(void **state) {
  (void)state;
  struct prom_buf b = {0};
  struct prom_label l[] = {
      {"rollout", "say \"hi\"\\now\nnext"}, {"state", "running"}, {"empty", NULL}};
  prom_sample(&b, "canaryd_rollout_state", l, 3, 1);
  assert_string_equal(b.data, "canaryd_rollout_state{rollout=\"say \\\"hi\\\"\\\\now\\nnext\","
                              "state=\"running\",empty=\"\"} 1\n");
  prom_buf_free(&b);
}

static void test_values(void **state) {
  (void)state;
  static const struct {
    double v;
    const char *text;
  } cases[] = {{0, "x 0\n"},
               {-3, "x -3\n"},
               {0.5, "x 0.5\n"},
               {1e300, "x 1e+300\n"},
               {NAN, "x NaN\n"},
               {INFINITY, "x +Inf\n"},
               {-INFINITY, "x -Inf\n"},
               {123456789012, "x 123456789012\n"},
               {0.1, "x 0.1\n"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct prom_buf b = {0};
    prom_sample(&b, "x", NULL, 0, cases[i].v);
    assert_string_equal(b.data, cases[i].text);
    prom_buf_free(&b);
  }
}

static void test_histogram(void **state) {
  (void)state;
  static const double le[] = {0.005, 0.1, 1};
  struct prom_hist h;
  prom_hist_init(&h, le, 3);
  prom_hist_observe(&h, 0.001);
  prom_hist_observe(&h, 0.1); /* le is inclusive */
  prom_hist_observe(&h, 0.5);
  prom_hist_observe(&h, 7);
  struct prom_buf b = {0};
  struct prom_label l[] = {{"shard", "2"}};
  prom_histogram(&b, "canaryd_commit_seconds", l, 1, &h);
  assert_string_equal(b.data, "canaryd_commit_seconds_bucket{shard=\"2\",le=\"0.005\"} 1\n"
                              "canaryd_commit_seconds_bucket{shard=\"2\",le=\"0.1\"} 2\n"
                              "canaryd_commit_seconds_bucket{shard=\"2\",le=\"1\"} 3\n"
                              "canaryd_commit_seconds_bucket{shard=\"2\",le=\"+Inf\"} 4\n"
                              "canaryd_commit_seconds_sum{shard=\"2\"} 7.601\n"
                              "canaryd_commit_seconds_count{shard=\"2\"} 4\n");
  assert_int_equal(h.count, 4);
  prom_buf_free(&b);
  /* no labels: le alone */
  prom_hist_init(&h, le, 1);
  prom_histogram(&b, "y", NULL, 0, &h);
  assert_non_null(strstr(b.data, "y_bucket{le=\"+Inf\"} 0\n"));
  assert_non_null(strstr(b.data, "y_count 0\n"));
  prom_buf_free(&b);
}

static void test_names(void **state) {
  (void)state;
  assert_true(prom_name_valid("canaryd_events_applied_total"));
  assert_true(prom_name_valid("a:b_c9"));
  assert_true(prom_name_valid("_x"));
  assert_false(prom_name_valid("9x"));
  assert_false(prom_name_valid("a-b"));
  assert_false(prom_name_valid("a b"));
  assert_false(prom_name_valid(""));
  assert_false(prom_name_valid(NULL));
}

static void test_large_output_grows(void **state) {
  (void)state;
  struct prom_buf b = {0};
  for (int i = 0; i < 10000; i++)
    prom_sample(&b, "canaryd_rollout_exposure_percent", NULL, 0, i);
  assert_false(b.failed);
  assert_non_null(strstr(b.data, "canaryd_rollout_exposure_percent 9999\n"));
  assert_int_equal(strlen(b.data), b.len);
  prom_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_family_and_sample),
      cmocka_unit_test(test_label_escaping),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_large_output_grows),
  };
  return cmocka_run_group_tests_name("prom", tests, NULL, NULL);
}
