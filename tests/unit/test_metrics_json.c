/* metrics_json: a rollout's for: states, evaluation schedule and zscore histories survive JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "codec/metrics_json.h"
#include "core/rollout_metrics.h"
#include "fixtures.h"

static struct plan plan;
static struct mstore_plan mp;

static int setup(void **state) {
  (void)state;
  fixture_plan(&plan);
  struct rule *r = &plan.rules[plan.n_rules++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "spike");
  snprintf(r->exprs[0], sizeof r->exprs[0], "zscore(rate(errors[5m]), 2h) > 3");
  r->n_exprs = 1;
  r->action = RULE_PAUSE;
  char why[256];
  if (mstore_plan_init(&mp, &plan, why, sizeof why) != CANARY_OK)
    fail_msg("plan: %s", why);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mstore_plan_free(&mp);
  return 0;
}

/* A state with every part away from its initial value. */
static void fill(struct rollout_metrics *m) {
  assert_int_equal(rollout_metrics_init(m, &mp), CANARY_OK);
  m->rules_cohort = 2;
  m->next_eval_ms = 1767225600250;
  m->deadline = INT64_MAX;
  m->rules[0][0] = (struct expr_for){EXPR_FOR_PENDING, 1767225000000};
  m->rules[PLAN_MAX_RULES - 1][PLAN_MAX_EXPRS - 1] = (struct expr_for){EXPR_FOR_FIRING, -5};
  m->gates[1][1][3] = (struct expr_for){EXPR_FOR_FIRING, 1767220000000};
  m->gates[PLAN_MAX_STAGES - 1][0][PLAN_MAX_CRITERIA - 1] = (struct expr_for){EXPR_FOR_PENDING, 0};
  int64_t t[] = {1767220000000, 1767220060000, 1767220120000};
  double x[] = {0.1 + 0.2, 0, -1e-300};
  assert_int_equal(mstore_zhist_restore(&m->ms, 0xfedcba9876543210ULL, 1, VARIANT_CANARY, t, x, 3),
                   CANARY_OK);
  assert_int_equal(mstore_zhist_restore(&m->ms, 7, 0, VARIANT_BASELINE, t, x, 0), CANARY_OK);
}

static void write_doc(const struct rollout_metrics *m, struct jbuf *b) {
  jbuf_init(b);
  metrics_json_write(m, b);
  assert_false(b->oom);
}

static void test_round_trip(void **state) {
  (void)state;
  struct rollout_metrics a, b;
  fill(&a);
  struct jbuf ja, jb, za, zb;
  write_doc(&a, &ja);
  jbuf_init(&za);
  metrics_json_write_zscores(&a, &za);
  assert_int_equal(rollout_metrics_init(&b, &mp), CANARY_OK);
  char why[256] = "";
  if (metrics_json_read(ja.data, ja.len, &b, why, sizeof why) != CANARY_OK)
    fail_msg("read: %s\n%s", why, ja.data);
  if (metrics_json_read_zscores(za.data, za.len, &b, why, sizeof why) != CANARY_OK)
    fail_msg("read: %s\n%s", why, za.data);
  assert_true(metrics_json_state_sig(&b) == metrics_json_state_sig(&a));
  assert_int_equal(b.rules_cohort, 2);
  assert_int_equal(b.next_eval_ms, a.next_eval_ms);
  assert_int_equal(b.deadline, INT64_MAX);
  for (int i = 0; i < PLAN_MAX_RULES; i++)
    for (int j = 0; j < PLAN_MAX_EXPRS; j++) {
      assert_int_equal(b.rules[i][j].state, a.rules[i][j].state);
      assert_int_equal(b.rules[i][j].since, a.rules[i][j].since);
    }
  for (int s = 0; s < PLAN_MAX_STAGES; s++)
    for (int x = 0; x < 2; x++)
      for (int c = 0; c < PLAN_MAX_CRITERIA; c++) {
        assert_int_equal(b.gates[s][x][c].state, a.gates[s][x][c].state);
        assert_int_equal(b.gates[s][x][c].since, a.gates[s][x][c].since);
      }
  assert_int_equal(b.ms.n_z, 2);
  assert_int_equal(b.ms.z[0].n, 3);
  assert_true(b.ms.z[0].x[0] == 0.1 + 0.2);
  assert_true(b.ms.z[0].x[2] == -1e-300);
  write_doc(&b, &jb); /* the same bytes again */
  assert_string_equal(ja.data, jb.data);
  jbuf_init(&zb);
  metrics_json_write_zscores(&b, &zb);
  assert_string_equal(za.data, zb.data);
  assert_non_null(strstr(za.data, "\"key\":\"fedcba9876543210\""));
  assert_non_null(strstr(ja.data, "\"rules\":[[0,0,\"pending\",1767225000000],"));
  /* the fingerprints follow the content */
  uint64_t st = metrics_json_state_sig(&a), zs = metrics_json_zscores_sig(&a);
  a.gates[1][1][3].since++;
  assert_true(metrics_json_state_sig(&a) != st);
  assert_true(metrics_json_zscores_sig(&a) == zs);
  int64_t t = 1767220180000;
  double x = 4;
  struct mstore_zhist *z = &a.ms.z[0];
  z->t[z->head] = t, z->x[z->head] = x, z->head++, z->n++; /* a point more */
  assert_true(metrics_json_zscores_sig(&a) != zs);
  jbuf_free(&ja);
  jbuf_free(&jb);
  jbuf_free(&za);
  jbuf_free(&zb);
  rollout_metrics_free(&a);
  rollout_metrics_free(&b);
}

/* A history kept in a ring that wrapped comes back oldest first, with the same points. */
static void test_wrapped_history(void **state) {
  (void)state;
  struct rollout_metrics a, b;
  assert_int_equal(rollout_metrics_init(&a, &mp), CANARY_OK);
  assert_int_equal(rollout_metrics_init(&b, &mp), CANARY_OK);
  int64_t t[] = {1, 2, 3};
  double x[] = {10, 20, 30};
  assert_int_equal(mstore_zhist_restore(&a.ms, 9, 0, VARIANT_CANARY, t, x, 3), CANARY_OK);
  struct mstore_zhist *z = &a.ms.z[0];
  int cap = a.ms.cfg.zscore_points;
  /* move the three points to the ring's end and start: slots cap-2, cap-1, 0 */
  z->t[cap - 2] = 1, z->x[cap - 2] = 10;
  z->t[cap - 1] = 2, z->x[cap - 1] = 20;
  z->t[0] = 3, z->x[0] = 30;
  z->head = 1;
  struct jbuf j;
  jbuf_init(&j);
  metrics_json_write_zscores(&a, &j);
  assert_non_null(strstr(j.data, "\"t\":[1,2,3],\"x\":[10,20,30]"));
  assert_int_equal(metrics_json_read_zscores(j.data, j.len, &b, NULL, 0), CANARY_OK);
  assert_int_equal(b.ms.z[0].n, 3);
  assert_int_equal(b.ms.z[0].t[0], 1);
  assert_int_equal(b.ms.z[0].t[2], 3);
  assert_int_equal(b.ms.z[0].head, 3);
  jbuf_free(&j);
  rollout_metrics_free(&a);
  rollout_metrics_free(&b);
}

static const struct {
  const char *doc, *why;
} bad[] = {
    {"{\"v\":2,\"rules_cohort\":-1,\"next_eval_ms\":0,\"deadline\":0,\"rules\":[],\"gates\":[]}",
     "this build reads version 1"},
    {"{\"v\":1,\"rules_cohort\":-1,\"next_eval_ms\":0,\"deadline\":0,\"rules\":[]}",
     "expected v, rules_cohort"},
    {"{\"v\":1,\"rules_cohort\":9,\"next_eval_ms\":0,\"deadline\":0,\"rules\":[],\"gates\":[]}",
     "rules_cohort out of range"},
    {"{\"v\":1,\"rules_cohort\":-1,\"next_eval_ms\":0,\"deadline\":0,\"rules\":[[48,0,\"firing\","
     "0]],\"gates\":[]}",
     "index out of range (0..47)"},
    {"{\"v\":1,\"rules_cohort\":-1,\"next_eval_ms\":0,\"deadline\":0,\"rules\":[[0,0,\"burning\","
     "0]],\"gates\":[]}",
     "expected inactive, pending or firing"},
    {"{\"v\":1,\"rules_cohort\":-1,\"next_eval_ms\":0,\"deadline\":0,\"rules\":[],\"gates\":"
     "[[0,2,0,\"firing\",0]]}",
     "index out of range (0..1)"},
    {"{\"v\":1,\"zscores\":[{\"key\":\"12\",\"cohort\":0,\"variant\":\"canary\",\"t\":[],\"x\":[]}]"
     "}",
     "key: expected 16 hex digits"},
    {"{\"v\":1,\"zscores\":[{\"key\":\"0000000000000012\",\"cohort\":0,\"variant\":\"canary\","
     "\"t\":[1],"
     "\"x\":[]}]}",
     "t and x: arrays of the same length"},
};

static void test_rejects_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct rollout_metrics m;
    assert_int_equal(rollout_metrics_init(&m, &mp), CANARY_OK);
    char why[256] = "";
    int rc = strstr(bad[i].doc, "zscores")
                 ? metrics_json_read_zscores(bad[i].doc, strlen(bad[i].doc), &m, why, sizeof why)
                 : metrics_json_read(bad[i].doc, strlen(bad[i].doc), &m, why, sizeof why);
    if (rc != CANARY_EINVALID || !strstr(why, bad[i].why))
      fail_msg("case %zu: rc %d, '%s', expected '%s'", i, rc, why, bad[i].why);
    rollout_metrics_free(&m);
  }
  struct rollout_metrics m;
  assert_int_equal(rollout_metrics_init(&m, &mp), CANARY_OK);
  assert_int_equal(metrics_json_read("{", 1, &m, NULL, 0), CANARY_EPARSE);
  rollout_metrics_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_wrapped_history),
      cmocka_unit_test(test_rejects_malformed),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
