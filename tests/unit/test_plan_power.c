/*
 * Tests for `canaryctl plan power` (src/app/app_plan_power*.c). The command reads nothing but the
 * plan, the core and the codec's JSON writer, so its source is compiled into this test (unit
 * tests link core, codec and config, not the app layer); cli_load_plan, the one app helper it
 * calls, is defined here as app_cli.c defines it.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/app_plan_power.c"
#include "app/app_plan_power_model.c"
#include "app/app_plan_power_report.c"
#include "codec/json.h"
#include "config/config.h"
#include "fixtures.h"

#define ROLLOUT_YAML CANARY_SOURCE_DIR "/config/rollout.yaml"

/* cmocka 1.1 has no assert_double_equal */
#define assert_double_equal(a, b, eps) assert_near_((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_(double a, double b, double eps, const char *file, int line) {
  if (!(fabs(a - b) <= eps))
    fail_msg("%s:%d: %.17g != %.17g", file, line, a, b);
}

bool cli_load_plan(const char *prog, const char *path, struct plan *p) {
  struct config_error err;
  int rc = path ? config_load_file(path, p, &err) : config_load_default(p, &err);
  if (rc != CANARY_OK) {
    char msg[600];
    config_error_format(&err, msg, sizeof msg);
    fprintf(stderr, "%s: %s\n", prog, msg);
    return false;
  }
  struct mstore_plan mp;
  char why[1024];
  rc = mstore_plan_init(&mp, p, why, sizeof why);
  mstore_plan_free(&mp);
  if (rc != CANARY_OK)
    fprintf(stderr, "%s: %s\n", prog, why);
  return rc == CANARY_OK;
}

/* --- running the command ---------------------------------------------------------------------- */

struct run {
  int code;
  char *out; /* stdout, NUL-terminated */
};

/* Runs `plan power` with the arguments (NULL-terminated), capturing what it prints. */
static struct run power(const char *arg, ...) {
  char *argv[16] = {"power"};
  int argc = 1;
  va_list ap;
  va_start(ap, arg);
  for (const char *a = arg; a && argc < 15; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  struct run r = {0};
  size_t len = 0;
  FILE *out = open_memstream(&r.out, &len);
  assert_non_null(out);
  r.code = plan_power(argc, argv, out);
  fclose(out);
  return r;
}

static void run_free(struct run *r) { free(r->out); }

/* The report as JSON, parsed: *root lives in doc. */
static const struct json_value *power_json(struct json_doc *doc, struct run *r) {
  const struct json_value *root = NULL;
  struct json_error err;
  assert_int_equal(r->code, EXIT_OK);
  if (json_parse(doc, r->out, strlen(r->out), &root, &err) != CANARY_OK)
    fail_msg("not JSON at %d:%d: %s", err.line, err.column, err.message);
  return root;
}

static const struct json_value *find_named(const struct json_value *arr, const char *key,
                                           const char *name) {
  assert_non_null(arr);
  for (size_t i = 0; i < arr->n_items; i++) {
    const struct json_value *v = json_get(&arr->items[i], key);
    if (v && v->type == JSON_STRING && !strcmp(v->str, name))
      return &arr->items[i];
  }
  fail_msg("no %s '%s'", key, name);
  return NULL;
}

/* Minutes to halt at regression i of a rule at a stage; -1 for never (null). */
static double halt_minutes(const struct json_value *root, const char *stage, const char *rule,
                           size_t i) {
  const struct json_value *s = find_named(json_get(root, "stages"), "stage", stage);
  const struct json_value *r = find_named(json_get(s, "halt_rules"), "rule", rule);
  const struct json_value *steps = json_get(r, "regressions");
  assert_true(steps && i < steps->n_items);
  const struct json_value *m = json_get(&steps->items[i], "minutes");
  return m->type == JSON_NULL ? -1 : m->num;
}

/* --- what it says about the built-in plan ---------------------------------------------------- */

/* The larger the regression, the sooner it halts: 10x errors at internal_test within minutes,
 * the mild one later (absolute: 1.5x the limit; against the baseline: 2x the healthy rate). */
static void test_worse_regressions_halt_sooner(void **state) {
  (void)state;
  struct run r = power("--format", "json", NULL);
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root = power_json(&doc, &r);
  const char *rules[] = {"error_rate", "error_excess"};
  for (size_t k = 0; k < 2; k++) {
    double mild = halt_minutes(root, "internal_test", rules[k], 0);
    double x3 = halt_minutes(root, "internal_test", rules[k], 1);
    double x10 = halt_minutes(root, "internal_test", rules[k], 2);
    print_message("%s at internal_test: %g, %g, %g minutes\n", rules[k], mild, x3, x10);
    assert_true(x10 > 0 && x3 > 0); /* the mild one may take longer than the stage: never */
    assert_true(x10 <= x3 && (mild < 0 || x3 <= mild));
    assert_true(mild < 0 || x10 < mild);
  }
  /* the rule's for: is part of it: error_rate waits 5 minutes after its evidence */
  assert_true(halt_minutes(root, "internal_test", "error_rate", 2) >= 6);
  /* more traffic is sooner: friendly_gp's 5% beats internal_test's 0.5% */
  double fgp = halt_minutes(root, "friendly_gp", "error_excess", 1);
  double it = halt_minutes(root, "internal_test", "error_excess", 1);
  assert_true(fgp > 0 && fgp < it);
  json_doc_free(&doc);
  run_free(&r);
}

/* The budget printed is the union bound: every distinct halt-rule comparison at its share and
 * the split check at rule_alpha, summing to false_halt_budget. */
static void test_budget_is_the_union_bound(void **state) {
  (void)state;
  struct run r = power("--format", "json", NULL);
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root = power_json(&doc, &r);
  const struct json_value *fh = json_get(root, "false_halts");
  assert_double_equal(json_get(fh, "union_bound")->num, 0.01, 1e-12);
  assert_double_equal(json_get(fh, "false_halt_budget")->num, 0.01, 0);
  const struct json_value *shares = json_get(fh, "shares");
  double sum = 0, alpha = json_get(fh, "rule_alpha")->num;
  for (size_t i = 0; i < shares->n_items; i++)
    sum += json_get(&shares->items[i], "share")->num;
  assert_double_equal(sum, 0.01, 1e-12); /* every distinct test, once */
  assert_double_equal(json_get(fh, "tests")->num, 11, 0);
  assert_double_equal(json_get(find_named(shares, "rule", "traffic_split"), "share")->num, alpha,
                      1e-15);
  assert_double_equal(json_get(find_named(shares, "rule", "error_excess"), "share")->num, 8 * alpha,
                      1e-15); /* its budget_weight */
  /* the alerts repeat the halt rules' tests: canary_web_vitals_breach's three comparisons are
   * lcp_p75's, inp_p75's and cls_p95's, paid for by them */
  const struct json_value *vitals = find_named(shares, "rule", "canary_web_vitals_breach");
  assert_true(json_get(vitals, "alert")->type == JSON_BOOL && json_get(vitals, "alert")->b);
  assert_double_equal(json_get(vitals, "share")->num, 0, 0);
  assert_string_equal(json_get(vitals, "same_test_as")->str, "lcp_p75");
  json_doc_free(&doc);
  run_free(&r);
  r = power(NULL);
  assert_int_equal(r.code, EXIT_OK);
  assert_non_null(strstr(r.out, "expected false halts over the whole plan <= 1%"));
  run_free(&r);
}

/* At 1% of the default traffic internal_test's canary sees 12 requests a minute: its exit
 * gate cannot prove an error rate under 0.1% within the stage's 2 hours. At the default it can. */
static void test_low_traffic_warns_on_the_exit_gate(void **state) {
  (void)state;
  const char *warning = "WARNING: internal_test exit error_rate cannot pass at this traffic "
                        "within 2h: needs ~";
  struct run r = power("--traffic", "2400", NULL);
  assert_int_equal(r.code, EXIT_OK);
  assert_non_null(strstr(r.out, warning));
  assert_non_null(strstr(r.out, "canary requests, the stage gets 1,440"));
  run_free(&r);
  r = power(NULL);
  assert_int_equal(r.code, EXIT_OK);
  assert_null(strstr(r.out, "WARNING: internal_test exit error_rate"));
  run_free(&r);
  /* the same warning in the JSON document */
  r = power("--traffic", "2400", "--format", "json", NULL);
  assert_non_null(strstr(r.out, "internal_test exit error_rate cannot pass at this traffic"));
  run_free(&r);
}

/* A healthy rate above the gate's limit never passes, whatever the traffic. */
static void test_gate_above_its_limit_never_passes(void **state) {
  (void)state;
  struct run r = power("--rates", "errors=0.002", NULL);
  assert_int_equal(r.code, EXIT_OK);
  assert_non_null(strstr(r.out, "WARNING: internal_test exit error_rate can never pass"));
  run_free(&r);
}

/* --- the model is the core's evidence ------------------------------------------------------- */

#define T0 (1800000000000LL / MSTORE_SLICE_MS * MSTORE_SLICE_MS) /* a slice's start */

static void put(struct mstore *ms, enum variant v, int64_t t, const char *num, double x,
                const char *den, double n) {
  struct metric_value mv[2] = {{den, n}, {num, x}};
  struct event ev = fixture_event(EVENT_METRICS, "m", "r1", t);
  ev.metrics.variant = v;
  ev.metrics.interval_ms = MIN_MS;
  ev.metrics.counters = mv;
  ev.metrics.n_counters = 2;
  char why[200];
  if (mstore_ingest(ms, 0, &ev, why, sizeof why) != CANARY_OK)
    fail_msg("ingest: %s", why);
}

/* The core's log E of rule's comparison for the canary of stage 0 at now. */
static double core_log_e(struct mstore *ms, const struct mstore_plan *mp,
                         const struct mstore_expr *x, int64_t now) {
  struct expr_result res;
  assert_int_equal(mstore_eval_expr(ms, mp, x, 0, now, VARIANT_CANARY, &res), CANARY_OK);
  for (int i = 0; i < res.n_compares; i++)
    if (res.compares[i].evidence)
      return res.compares[i].log_e;
  fail_msg("no evidence");
  return NAN;
}

/*
 * Feed a store the expected counts of a regression at internal_test, minute by minute, and
 * compare the core's e-value with the model's: equal while only the stage's start point is
 * counted (the first slice), at least as large after (the slices' terms only add), so the
 * model's minute is never earlier than the core's.
 */
static void check_against_core(const char *rule, double mult) {
  static struct plan p;
  assert_true(cli_load_plan("test", NULL, &p));
  static struct mstore_plan mp;
  char why[600];
  assert_int_equal(mstore_plan_init(&mp, &p, why, sizeof why), CANARY_OK);
  static struct power_opts o;
  opts_default(&o);
  struct power w = {.p = &p, .mp = &mp, .o = &o};
  const struct mstore_expr *x = NULL;
  for (int i = 0; i < mp.n; i++)
    if (mp.x[i].owner == MSTORE_RULE && !strcmp(mp.x[i].name, rule))
      x = &mp.x[i];
  assert_non_null(x);
  struct expr_evq q;
  int node = 0;
  while (!expr_evidence_form(&x->e, node, &q))
    node++;
  struct flow f = power_flow_of(&w, 0);
  double healthy = NAN;
  assert_true(power_rate_of(&w, q.num, &healthy));
  double value = (q.versus_baseline ? healthy : q.limit) * mult;
  struct path path;
  assert_true(make_path(&w, &f, &q, (struct canary){value, healthy}, &path));
  double model_minute = decide_minute(&path, f.limit);

  struct mstore_config cfg;
  mstore_config_default(&cfg);
  mstore_config_for_plan(&cfg, &mp);
  struct mstore ms;
  assert_int_equal(mstore_init(&ms, &cfg), CANARY_OK);
  double core_minute = INFINITY;
  for (int t = 1; t <= 120 && isinf(core_minute); t++) {
    int64_t now = T0 + (t - 1) * MIN_MS;
    put(&ms, VARIANT_CANARY, now, q.num, f.canary * value, q.den, f.canary);
    put(&ms, VARIANT_BASELINE, now, q.num, f.baseline * healthy, q.den, f.baseline);
    struct evid_llr one, at;
    struct evid_coef c;
    evid_coef_init(&c, path.p0, path.side);
    evid_llr_reset(&one);
    evid_llr_add_coef(&one, &c, path.x, path.n);
    at = one;
    /* the core's dispersion on these even reports (every step 0), the model's on its own
     * (disp 1 a step): the core's is never larger, so its e-value never smaller */
    double k_steps = t - 1;
    double phi_core = mstore_dispersion_of(0, k_steps, MSTORE_DISP_PRIOR_PHI, MSTORE_DISP_PRIOR);
    double phi_model = path.dispersed ? mstore_dispersion_of(k_steps * path.disp, k_steps,
                                                             path.prior_phi, path.prior_n)
                                      : 1;
    for (int k = 0; k < EVID_GRID; k++)
      at.l[k] = one.l[k] * t / phi_core;
    double same = path.log_w + evid_log_e(&at), core = core_log_e(&ms, &mp, x, now);
    for (int k = 0; k < EVID_GRID; k++)
      at.l[k] = one.l[k] * t / phi_model;
    double model = path.log_w + evid_log_e(&at);
    if (now < T0 + MSTORE_SLICE_MS) /* before the first slice: exactly the stage's term */
      assert_double_equal(core, same, 1e-9 * (1 + fabs(same)));
    if (model > 0) /* evidence for the regression: the smaller dispersion gives it more */
      assert_true(core >= model - 1e-9 * (1 + fabs(model)));
    if (core >= path.need)
      core_minute = t;
  }
  print_message("%s at %gx: the core decides at minute %g, the model at %g\n", rule, mult,
                core_minute, model_minute);
  assert_true(isfinite(model_minute));
  assert_true(core_minute <= model_minute);
  mstore_free(&ms);
  mstore_plan_free(&mp);
}

static void test_model_is_the_core(void **state) {
  (void)state;
  check_against_core("error_rate", 1.5); /* absolute: within the first slice */
  check_against_core("error_excess", 3); /* against the baseline */
  check_against_core("error_excess", 4); /* past the first slice: the core is sooner */
}

/* --- the command line ------------------------------------------------------------------------ */

static void test_usage_errors(void **state) {
  (void)state;
  const char *bad[][2] = {{"--traffic", "abc"},  {"--traffic", "0"},      {"--traffic", "-1"},
                          {"--values", "many"},  {"--dispersion", "0.5"}, {"--rates", "errors=abc"},
                          {"--rates", "errors"}, {"--rates", "=0.1"},     {"--rates", "errors=2"},
                          {"--format", "xml"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct run r = power(bad[i][0], bad[i][1], NULL);
    if (r.code != EXIT_USAGE)
      fail_msg("%s %s: exit %d, want %d", bad[i][0], bad[i][1], r.code, EXIT_USAGE);
    run_free(&r);
  }
  struct run r = power("extra", NULL);
  assert_int_equal(r.code, EXIT_USAGE);
  run_free(&r);
  r = power("--help", NULL);
  assert_int_equal(r.code, EXIT_OK);
  assert_non_null(strstr(r.out, "usage: canaryctl plan power"));
  run_free(&r);
}

static void test_bad_plan(void **state) {
  (void)state;
  struct run r = power("--plan", CANARY_SOURCE_DIR "/tests/config/no-such-plan.yaml", NULL);
  assert_int_equal(r.code, EXIT_BAD_INPUT);
  run_free(&r);
  r = power("--plan", CANARY_SOURCE_DIR "/tests/config/bad/typo.yaml", NULL);
  assert_int_equal(r.code, EXIT_BAD_INPUT);
  run_free(&r);
  r = power("--plan", ROLLOUT_YAML, "--traffic", "24000", NULL); /* the file, as the built-in */
  assert_int_equal(r.code, EXIT_OK);
  assert_non_null(strstr(r.out, "plan default at 24,000 requests/min"));
  run_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_worse_regressions_halt_sooner),
      cmocka_unit_test(test_budget_is_the_union_bound),
      cmocka_unit_test(test_low_traffic_warns_on_the_exit_gate),
      cmocka_unit_test(test_gate_above_its_limit_never_passes),
      cmocka_unit_test(test_model_is_the_core),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_bad_plan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
