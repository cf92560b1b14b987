/* The rule language: tables of expressions with their inputs and the expected value, truth or
 * error (as PgBouncer's hba_test pairs rules with results); the seed's alerts and every
 * expression of config/rollout.yaml; for: timing; caret messages. */
#include <locale.h>
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
#include "core/expr.h"
#include "fixtures.h"

/* Table rows leave their trailing fields (window, SLO truth, ...) at zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define ROLLOUT_YAML CANARY_SOURCE_DIR "/config/rollout.yaml"
#define SEC_MS 1000LL
#define INS EXPR_INSUFFICIENT
#define T EXPR_TRUE
#define F EXPR_FALSE

/* --- a fake metric source: a table of answers -------------------------------------------------- */

enum fake_fn { F_NONE, F_CTR, F_AVG, F_MAX, F_MIN, F_Q, F_DIFF, F_Z };

/* One answer: for function fn, variant v, metric (any for DIFF and Z), window (0 = any) and
 * arg (quantile q or diff tolerance; 0 = any), the source answers value with n observations. */
struct obs {
  enum fake_fn fn;
  enum variant v;
  const char *metric;
  int64_t window;
  double arg;
  double value;
  int64_t n;
};
#define MAX_OBS 6

#define CTR(var, m, w, sum, n)                                                                     \
  { F_CTR, VARIANT_##var, m, w, 0, sum, n }
#define AVG(var, m, w, x, n)                                                                       \
  { F_AVG, VARIANT_##var, m, w, 0, x, n }
#define GMAX(var, m, w, x, n)                                                                      \
  { F_MAX, VARIANT_##var, m, w, 0, x, n }
#define GMIN(var, m, w, x, n)                                                                      \
  { F_MIN, VARIANT_##var, m, w, 0, x, n }
#define QNT(var, m, q, w, x, n)                                                                    \
  { F_Q, VARIANT_##var, m, w, q, x, n }
#define DIFF(tol, w, x, n)                                                                         \
  { F_DIFF, VARIANT_CANARY, NULL, w, tol, x, n }
#define ZS(x, n)                                                                                   \
  { F_Z, VARIANT_CANARY, NULL, 0, 0, x, n }

struct fake {
  const struct obs *obs;
  enum expr_truth slos;
  int calls;
  int z_calls;
  double z_current;
  int64_t z_history;
};

static void answer(struct fake *f, enum fake_fn fn, enum variant v, const char *metric,
                   int64_t span, double arg, double *out, int64_t *n) {
  f->calls++;
  *n = 0;
  *out = NAN;
  for (int i = 0; i < MAX_OBS && f->obs && f->obs[i].fn != F_NONE; i++) {
    const struct obs *o = &f->obs[i];
    if (o->fn == fn && o->v == v && (!o->metric || !metric || strcmp(o->metric, metric) == 0) &&
        (!o->window || o->window == span) && (o->arg == 0 || o->arg == arg)) {
      *out = o->value;
      *n = o->n;
      return;
    }
  }
}

static void fake_counter(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                         int64_t *n) {
  answer(ctx, F_CTR, v, m, span, 0, out, n);
}
static void fake_avg(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                     int64_t *n) {
  answer(ctx, F_AVG, v, m, span, 0, out, n);
}
static void fake_max(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                     int64_t *n) {
  answer(ctx, F_MAX, v, m, span, 0, out, n);
}
static void fake_min(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                     int64_t *n) {
  answer(ctx, F_MIN, v, m, span, 0, out, n);
}
static void fake_quantile(void *ctx, enum variant v, const char *m, double q, int64_t span,
                          double *out, int64_t *n) {
  answer(ctx, F_Q, v, m, span, q, out, n);
}
static void fake_diff(void *ctx, double tol, int64_t span, double *out, int64_t *n) {
  answer(ctx, F_DIFF, VARIANT_CANARY, NULL, span, tol, out, n);
}
static void fake_zscore(void *ctx, enum variant v, const struct expr *e, int node, double cur,
                        int64_t history, double *out, int64_t *n) {
  struct fake *f = ctx;
  f->z_calls++;
  f->z_current = cur;
  f->z_history = history;
  assert_int_equal(e->nodes[node].kind, EXPR_ZSCORE);
  answer(ctx, F_Z, v, NULL, 0, 0, out, n);
}
static enum expr_truth fake_slos(void *ctx, enum variant v) { return ((struct fake *)ctx)->slos; }

static const struct expr_source fake_source = {
    .counter_sum = fake_counter,
    .gauge_avg = fake_avg,
    .gauge_max = fake_max,
    .gauge_min = fake_min,
    .quantile = fake_quantile,
    .diff_ratio = fake_diff,
    .zscore = fake_zscore,
    .slos_met = fake_slos,
};

/* Thresholds for the tables that do not load the plan (same names and values as the plan). */
static const struct plan_param params[] = {
    {"error_rate", 0.01},       {"latency_multiplier", 5},    {"lcp_p75_ms", 2500},
    {"cls_p95", 0.1},           {"approval_denial_sigma", 3}, {"diff_tolerance", 0.005},
    {"negative_tolerance", -1},
};
#define N_PARAMS ((int)(sizeof params / sizeof params[0]))

static void parse_ok(const char *src, struct expr *e) {
  struct expr_error err;
  if (expr_parse(src, e, &err) != CANARY_OK) {
    char buf[512];
    expr_error_render(src, &err, buf, sizeof buf);
    fail_msg("%s", buf);
  }
}

static void parse_bind_ok(const char *src, struct expr *e, const struct plan_param *ps, int n,
                          int64_t window) {
  parse_ok(src, e);
  struct expr_error err;
  if (expr_bind(e, ps, n, window, &err) != CANARY_OK) {
    char buf[512];
    expr_error_render(src, &err, buf, sizeof buf);
    fail_msg("%s", buf);
  }
}

static bool same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* Evaluates src over the answers, checks truth and (unless NaN) value; returns the result. */
static struct expr_result check_eval(int line, const char *src, const struct obs *obs,
                                     enum expr_truth slos, int64_t window, enum expr_truth want,
                                     double value) {
  struct expr e;
  parse_bind_ok(src, &e, params, N_PARAMS, window);
  struct fake f = {.obs = obs, .slos = slos};
  struct expr_result r;
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  if (r.truth != want || (!isnan(value) && !same(r.value, value))) {
    char buf[600];
    expr_explain(&e, &r, buf, sizeof buf);
    fail_msg("line %d: %s: got %s (value %.17g), want %s (value %.17g)\n  %s", line, src,
             expr_truth_name(r.truth), r.value, expr_truth_name(want), value, buf);
  }
  return r;
}

/* --- operators and precedence ----------------------------------------------------------------- */

struct value_case {
  int line;
  const char *src;
  enum expr_truth truth;
  double value; /* a condition: 1 or 0; NaN: not checked */
};

static const struct value_case value_cases[] = {
    {__LINE__, "1 + 2 * 3", T, 7},
    {__LINE__, "(1 + 2) * 3", T, 9},
    {__LINE__, "10 - 4 - 3", T, 3}, /* left-associative */
    {__LINE__, "10 - (4 - 3)", T, 9},
    {__LINE__, "24 / 4 / 2", T, 3},
    {__LINE__, "24 / (4 / 2)", T, 12},
    {__LINE__, "2 + 12 / 4 * 3", T, 11}, /* * and / bind tighter, left to right */
    {__LINE__, "-2 * 3", T, -6},
    {__LINE__, "2 * -3", T, -6},
    {__LINE__, "- -2", T, 2},
    {__LINE__, "-(1 + 2)", T, -3},
    {__LINE__, "1 - -1", T, 2},
    {__LINE__, "0.5%", T, 0.005},
    {__LINE__, "50%", T, 0.5},
    {__LINE__, "1e3 + 2.5e-1", T, 1000.25},
    {__LINE__, "error_rate * 100", T, 1},
    {__LINE__, "3 > 2", T, 1},
    {__LINE__, "2 > 2", F, 0},
    {__LINE__, "2 >= 2", T, 1},
    {__LINE__, "1 >= 2", F, 0},
    {__LINE__, "1 < 2", T, 1},
    {__LINE__, "2 < 2", F, 0},
    {__LINE__, "2 <= 2", T, 1},
    {__LINE__, "3 <= 2", F, 0},
    {__LINE__, "2 == 2", T, 1},
    {__LINE__, "2 == 3", F, 0},
    {__LINE__, "2 != 3", T, 1},
    {__LINE__, "2 != 2", F, 0},
    {__LINE__, "0.1 + 0.2 == 0.3", F, 0}, /* doubles, as in C: documented */
    {__LINE__, "1 + 2 > 2 * 1", T, 1},    /* arithmetic before comparison */
    {__LINE__, "1 - 3 < -1", T, 1},
    {__LINE__, "1 < 2 and 2 < 3", T, 1},
    {__LINE__, "1 < 2 and 3 < 2", F, 0},
    {__LINE__, "2 < 1 or 2 < 3", T, 1},
    {__LINE__, "2 < 1 or 3 < 2", F, 0},
    {__LINE__, "2 < 1 and 2 < 1 or 1 < 2", T, 1}, /* and before or: (F and F) or T */
    {__LINE__, "2 < 1 and (2 < 1 or 1 < 2)", F, 0},
    {__LINE__, "1 < 2 or 1 < 2 and 2 < 1", T, 1}, /* T or (T and F) */
    {__LINE__, "(1 < 2 or 1 < 2) and 2 < 1", F, 0},
    {__LINE__, "not 1 < 2", F, 0}, /* not (1 < 2) */
    {__LINE__, "not 2 < 1", T, 1},
    {__LINE__, "not not 1 < 2", T, 1},
    {__LINE__, "not 2 < 1 and 2 < 1", F, 0}, /* (not F) and F */
    {__LINE__, "not (2 < 1 and 2 < 1)", T, 1},
    {__LINE__, "not 1 < 2 or 1 < 2", T, 1}, /* (not T) or T */
    {__LINE__, "1 / 0", INS, NAN},          /* no value, no infinity */
    {__LINE__, "1 / 0 > 1", INS, NAN},
    {__LINE__, "1 / 0 > 1 or 1 < 2", T, 1},
    {__LINE__, "1 / 0 > 1 and 2 < 1", F, 0},
    {__LINE__, "1 / (2 - 2) < 1 or 2 < 1", INS, NAN},
};

static void test_operators_and_precedence(void **state) {
  for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
    const struct value_case *c = &value_cases[i];
    check_eval(c->line, c->src, NULL, T, 0, c->truth, c->value);
  }
}

/* --- functions with a fake source -------------------------------------------------------------- */

struct fn_case {
  int line;
  const char *src;
  struct obs in[MAX_OBS];
  enum expr_truth truth;
  double value;
  int64_t window; /* expr_bind's default window; 0 = EXPR_DEFAULT_WINDOW_MS */
  enum expr_truth slos;
};

#define M5 (5 * MIN_MS)
#define M10 (10 * MIN_MS)
#define M15 (15 * MIN_MS)

static const struct fn_case fn_cases[] = {
    /* rate: per second over the window; increase: the sum */
    {__LINE__, "rate(errors[5m])", {CTR(CANARY, "errors", M5, 30, 30)}, T, 0.1},
    {__LINE__, "rate(errors[1h])", {CTR(CANARY, "errors", HOUR_MS, 36, 360)}, T, 0.01},
    {__LINE__, "increase(errors[5m])", {CTR(CANARY, "errors", M5, 30, 30)}, T, 30},
    {__LINE__, "increase(errors[5m])", {CTR(CANARY, "errors", M5, 0, 30)}, T, 0}, /* 0 is data */
    {__LINE__,
     "rate(errors[5m]) / rate(requests[5m])",
     {CTR(CANARY, "errors", M5, 25, 30), CTR(CANARY, "requests", M5, 1000, 30)},
     T,
     0.025},
    {__LINE__,
     "increase(errors[5m]) / increase(requests[5m])",
     {CTR(CANARY, "errors", M5, 25, 30), CTR(CANARY, "requests", M5, 1000, 30)},
     T,
     0.025},
    /* gauges */
    {__LINE__, "avg_over_time(cpu_ratio[10m])", {AVG(CANARY, "cpu_ratio", M10, 0.42, 60)}, T, 0.42},
    {__LINE__,
     "max_over_time(cpu_ratio[10m])",
     {GMAX(CANARY, "cpu_ratio", M10, 0.97, 60)},
     T,
     0.97},
    {__LINE__,
     "min_over_time(cpu_ratio[10m])",
     {GMIN(CANARY, "cpu_ratio", M10, 0.05, 60)},
     T,
     0.05},
    {__LINE__,
     "max_over_time(db_connections_used[1m]) / max_over_time(db_connections_max[1m])",
     {GMAX(CANARY, "db_connections_used", MIN_MS, 75, 6),
      GMAX(CANARY, "db_connections_max", MIN_MS, 100, 6)},
     T,
     0.75},
    /* quantiles, with and without a window */
    {__LINE__,
     "histogram_quantile(0.99, latency_ms[10m])",
     {QNT(CANARY, "latency_ms", 0.99, M10, 812, 500)},
     T,
     812},
    {__LINE__,
     "histogram_quantile(0.5, latency_ms[10m])",
     {QNT(CANARY, "latency_ms", 0.5, M10, 40, 500)},
     T,
     40},
    {__LINE__,
     "histogram_quantile(0.99, latency)", /* alias, the bind window */
     {QNT(CANARY, "latency_ms", 0.99, M10, 812, 500)},
     T,
     812,
     M10},
    {__LINE__,
     "histogram_quantile(0.99, latency)", /* no for: the default window, 5m */
     {QNT(CANARY, "latency_ms", 0.99, M5, 700, 500)},
     T,
     700},
    {__LINE__,
     "webvitals_lcp_p75",
     {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2300, 90)},
     T,
     2300,
     M15},
    {__LINE__,
     "webvitals_inp_p75",
     {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 180, 90)},
     T,
     180,
     M15},
    {__LINE__,
     "webvitals_cls_p95",
     {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.04, 90)},
     T,
     0.04,
     M15},
    {__LINE__, "latency_ms_p999", {QNT(CANARY, "latency_ms", 0.999, M5, 1900, 5000)}, T, 1900},
    /* baseline(): the same expression on the baseline variant */
    {__LINE__,
     "baseline(rate(errors[5m]))",
     {CTR(CANARY, "errors", M5, 300, 30), CTR(BASELINE, "errors", M5, 60, 30)},
     T,
     0.2},
    {__LINE__,
     "rate(errors[5m]) - baseline(rate(errors[5m]))",
     {CTR(CANARY, "errors", M5, 300, 30), CTR(BASELINE, "errors", M5, 60, 30)},
     T,
     0.8},
    {__LINE__,
     "baseline(increase(requests[1h])) >= 1000",
     {CTR(BASELINE, "requests", HOUR_MS, 1000, 360)},
     T,
     1},
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline", /* bare: the left side */
     {QNT(CANARY, "latency_ms", 0.99, M10, 600, 500),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 500)},
     T,
     1,
     M10},
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline",
     {QNT(CANARY, "latency_ms", 0.99, M10, 400, 500),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 500)},
     F,
     0,
     M10},
    {__LINE__,
     "baseline(baseline(increase(requests[5m])))", /* idempotent */
     {CTR(BASELINE, "requests", M5, 7, 1)},
     T,
     7},
    /* zscore: the source answers; the evaluator gives it the current value */
    {__LINE__,
     "zscore(rate(approval_denials[5m]) / rate(approvals[5m]), 24h)",
     {CTR(CANARY, "approval_denials", M5, 30, 30), CTR(CANARY, "approvals", M5, 1000, 30),
      ZS(4.5, 288)},
     T,
     4.5},
    {__LINE__,
     "zscore(rate(approval_denials[5m]) / rate(approvals[5m]), 24h) > approval_denial_sigma",
     {CTR(CANARY, "approval_denials", M5, 30, 30), CTR(CANARY, "approvals", M5, 1000, 30),
      ZS(2.5, 288)},
     F,
     0},
    /* canary_diff_ratio: the tolerance as a number or a threshold; the bind window */
    {__LINE__,
     "canary_diff_ratio(0.005)",
     {DIFF(0.005, 24 * HOUR_MS, 0.003, 1000)},
     T,
     0.003,
     24 * HOUR_MS},
    {__LINE__, "canary_diff_ratio(diff_tolerance) < 0.005", {DIFF(0.005, M5, 0.003, 5000)}, T, 1},
    {__LINE__, "canary_diff_ratio(0.01, 1h)", {DIFF(0.01, HOUR_MS, 0.02, 5000)}, T, 0.02},
    /* slos_met() */
    {__LINE__, "slos_met()", {{0}}, T, 1, 0, T},
    {__LINE__, "slos_met()", {{0}}, F, 0, 0, F},
    {__LINE__, "slos_met()", {{0}}, INS, NAN, 0, INS},
    {__LINE__,
     "slos_met() and rate(errors[5m]) < 0.01",
     {CTR(CANARY, "errors", M5, 0, 30)},
     F,
     0,
     0,
     F},
};

static void test_functions(void **state) {
  for (size_t i = 0; i < sizeof fn_cases / sizeof fn_cases[0]; i++) {
    const struct fn_case *c = &fn_cases[i];
    check_eval(c->line, c->src, c->in, c->slos, c->window, c->truth, c->value);
  }
}

/* zscore(x, w): the source gets x's current value and the history; not asked without x. */
static void test_zscore_asks_the_source(void **state) {
  struct expr e;
  parse_bind_ok("zscore(rate(approval_denials[5m]) / rate(approvals[5m]), 24h) > 3", &e, params,
                N_PARAMS, 0);
  const struct obs in[MAX_OBS] = {CTR(CANARY, "approval_denials", M5, 30, 30),
                                  CTR(CANARY, "approvals", M5, 1000, 30), ZS(3.2, 288)};
  struct fake f = {.obs = in};
  struct expr_result r;
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, T);
  assert_int_equal(f.z_calls, 1);
  assert_true(f.z_current == 0.03);
  assert_int_equal(f.z_history, 24 * HOUR_MS);

  const struct obs few[MAX_OBS] = {CTR(CANARY, "approval_denials", M5, 3, 30),
                                   CTR(CANARY, "approvals", M5, 12, 30), ZS(9, 288)};
  struct fake g = {.obs = few};
  assert_int_equal(expr_eval(&e, &fake_source, &g, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, INS); /* 12 approvals: no ratio, so no z and nothing recorded */
  assert_int_equal(r.why, EXPR_WHY_FEW_EVENTS);
  assert_int_equal(g.z_calls, 0);
}

/* --- the seed's Alert Configuration, as written ------------------------------------------------ */

/* The seed's block (canary-rollout-plan.md, Monitoring Dashboard), verbatim. */
static const struct {
  const char *name;
  const char *exprs[3];
  int n;
  int64_t for_ms;
} seed_alerts[] = {
    {"canary_error_spike", {"rate(errors[5m]) > 0.01"}, 1, 5 * MIN_MS},
    {"canary_latency_degradation",
     {"histogram_quantile(0.99, latency) > 5 * baseline"},
     1,
     10 * MIN_MS},
    {"canary_web_vitals_breach",
     {"webvitals_lcp_p75 > 2500", "webvitals_inp_p75 > 200", "webvitals_cls_p95 > 0.1"},
     3,
     15 * MIN_MS},
};

struct alert_case {
  int line;
  const char *src;
  int64_t for_ms;
  struct obs in[MAX_OBS];
  enum expr_truth truth;
};

static const struct alert_case alert_cases[] = {
    /* rate(errors[5m]) is errors per second, as in Prometheus: 0.01/s = 3 errors in 5 minutes.
     * (The halt rule error_rate is the ratio errors / requests.) */
    {__LINE__,
     "rate(errors[5m]) > 0.01",
     M5,
     {CTR(CANARY, "errors", M5, 2.97, 30)},
     F},                                                                              /* 0.0099 */
    {__LINE__, "rate(errors[5m]) > 0.01", M5, {CTR(CANARY, "errors", M5, 3, 30)}, F}, /* 0.01 */
    {__LINE__,
     "rate(errors[5m]) > 0.01",
     M5,
     {CTR(CANARY, "errors", M5, 3.03, 30)},
     T}, /* 0.0101 */
    {__LINE__, "rate(errors[5m]) > 0.01", M5, {CTR(CANARY, "errors", M5, 2, 30)}, F},
    {__LINE__, "rate(errors[5m]) > 0.01", M5, {CTR(CANARY, "errors", M5, 4, 30)}, T},
    {__LINE__, "rate(errors[5m]) > 0.01", M5, {CTR(CANARY, "errors", M5, 4, 0)}, INS},
    /* p99 latency over the rule's for: (10m) against 5x the baseline's */
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline",
     M10,
     {QNT(CANARY, "latency_ms", 0.99, M10, 499.9, 400),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 4000)},
     F},
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline",
     M10,
     {QNT(CANARY, "latency_ms", 0.99, M10, 500, 400),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 4000)},
     F},
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline",
     M10,
     {QNT(CANARY, "latency_ms", 0.99, M10, 500.1, 400),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 4000)},
     T},
    /* an outage that is not the release's fault: both degrade, the ratio holds */
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline",
     M10,
     {QNT(CANARY, "latency_ms", 0.99, M10, 3000, 400),
      QNT(BASELINE, "latency_ms", 0.99, M10, 2900, 4000)},
     F},
    {__LINE__,
     "histogram_quantile(0.99, latency) > 5 * baseline",
     M10, /* 99 values: no p99 */
     {QNT(CANARY, "latency_ms", 0.99, M10, 900, 99),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 4000)},
     INS},
    /* web vitals, one expression at a time, over 15m */
    {__LINE__,
     "webvitals_lcp_p75 > 2500",
     M15,
     {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2499, 50)},
     F},
    {__LINE__,
     "webvitals_lcp_p75 > 2500",
     M15,
     {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2500, 50)},
     F},
    {__LINE__,
     "webvitals_lcp_p75 > 2500",
     M15,
     {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2501, 50)},
     T},
    {__LINE__,
     "webvitals_inp_p75 > 200",
     M15,
     {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 199.9, 50)},
     F},
    {__LINE__,
     "webvitals_inp_p75 > 200",
     M15,
     {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 200, 50)},
     F},
    {__LINE__,
     "webvitals_inp_p75 > 200",
     M15,
     {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 200.1, 50)},
     T},
    {__LINE__,
     "webvitals_cls_p95 > 0.1",
     M15,
     {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.0999, 50)},
     F},
    {__LINE__,
     "webvitals_cls_p95 > 0.1",
     M15,
     {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.1, 50)},
     F},
    {__LINE__,
     "webvitals_cls_p95 > 0.1",
     M15,
     {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.1001, 50)},
     T},
    {__LINE__,
     "webvitals_cls_p95 > 0.1",
     M15,
     {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.5, 19)},
     INS},
};

static void test_seed_alerts_as_written(void **state) {
  /* the block parses as written: every expression is a condition */
  for (size_t i = 0; i < sizeof seed_alerts / sizeof seed_alerts[0]; i++)
    for (int k = 0; k < seed_alerts[i].n; k++) {
      struct expr e;
      parse_bind_ok(seed_alerts[i].exprs[k], &e, params, N_PARAMS,
                    expr_default_window(0, seed_alerts[i].for_ms));
      assert_true(expr_is_condition(&e));
      assert_int_equal(expr_longest_window(&e), seed_alerts[i].for_ms);
    }
  for (size_t i = 0; i < sizeof alert_cases / sizeof alert_cases[0]; i++) {
    const struct alert_case *c = &alert_cases[i];
    check_eval(c->line, c->src, c->in, T, expr_default_window(0, c->for_ms), c->truth, NAN);
  }
}

/* The seed's alerts in config/rollout.yaml are the block above, and canonical text shows what
 * the bare names mean. */
static struct plan plan;

static void load_plan(void) {
  struct config_error ce;
  if (config_load_file(ROLLOUT_YAML, &plan, &ce) != CANARY_OK) {
    char buf[600];
    config_error_format(&ce, buf, sizeof buf);
    fail_msg("%s", buf);
  }
}

static void test_seed_alerts_in_the_plan(void **state) {
  load_plan();
  assert_int_equal(plan.n_alerts, 3);
  /* The seed's rate(errors[5m]) > 0.01 is errors a second: the plan holds the error ratio the
   * halt rules mean instead (config/rollout.yaml says why); the others are as written. */
  static const char *const error_ratio = "rate(errors[5m]) / rate(requests[5m]) > 0.01";
  static const char *const canonical[][3] = {
      {"rate(errors[5m]) / rate(requests[5m]) > 0.01"},
      {"histogram_quantile(0.99, latency_ms[10m]) > 5 * baseline"},
      {"histogram_quantile(0.75, webvitals_lcp_ms[15m]) > 2500",
       "histogram_quantile(0.75, webvitals_inp_ms[15m]) > 200",
       "histogram_quantile(0.95, webvitals_cls[15m]) > 0.1"},
  };
  for (int i = 0; i < 3; i++) {
    const struct rule *a = &plan.alerts[i];
    assert_string_equal(a->name, seed_alerts[i].name);
    assert_int_equal(a->n_exprs, seed_alerts[i].n);
    assert_int_equal(a->for_ms, seed_alerts[i].for_ms);
    for (int k = 0; k < a->n_exprs; k++) {
      assert_string_equal(a->exprs[k], i == 0 ? error_ratio : seed_alerts[i].exprs[k]);
      struct expr e;
      parse_bind_ok(a->exprs[k], &e, plan.params, plan.n_params, expr_default_window(0, a->for_ms));
      char buf[256];
      expr_format(&e, -1, buf, sizeof buf);
      assert_string_equal(buf, canonical[i][k]);
    }
  }
}

/* --- every expression of config/rollout.yaml ---------------------------------------------------- */

/* Parses and binds src against the plan's thresholds; checks it is a condition and that its
 * canonical text reads back to the same canonical text. */
static void check_plan_expr(const char *where, const char *src, int64_t window) {
  struct expr e, again;
  struct expr_error err;
  char buf[600];
  if (expr_parse(src, &e, &err) != CANARY_OK ||
      expr_bind(&e, plan.params, plan.n_params, window, &err) != CANARY_OK) {
    expr_error_render(src, &err, buf, sizeof buf);
    fail_msg("%s:\n%s", where, buf);
  }
  if (!expr_is_condition(&e))
    fail_msg("%s: %s is a number, not a condition", where, src);
  char text[600], text2[600];
  expr_format(&e, -1, text, sizeof text);
  parse_bind_ok(text, &again, plan.params, plan.n_params, window);
  expr_format(&again, -1, text2, sizeof text2);
  assert_string_equal(text, text2);
}

static void test_rollout_yaml_parses(void **state) {
  load_plan();
  int n = 0;
  char where[160];
  for (int i = 0; i < plan.n_rules; i++)
    for (int k = 0; k < plan.rules[i].n_exprs; k++, n++) {
      snprintf(where, sizeof where, "halt_rules %s", plan.rules[i].name);
      check_plan_expr(where, plan.rules[i].exprs[k], expr_default_window(0, plan.rules[i].for_ms));
    }
  for (int i = 0; i < plan.n_alerts; i++)
    for (int k = 0; k < plan.alerts[i].n_exprs; k++, n++) {
      snprintf(where, sizeof where, "alerts %s", plan.alerts[i].name);
      check_plan_expr(where, plan.alerts[i].exprs[k],
                      expr_default_window(0, plan.alerts[i].for_ms));
    }
  for (int s = 0; s < plan.n_stages; s++)
    for (int g = 0; g < 2; g++) {
      const struct criterion *cs = g ? plan.stages[s].exit : plan.stages[s].entry;
      int nc = g ? plan.stages[s].n_exit : plan.stages[s].n_entry;
      for (int i = 0; i < nc; i++) {
        if (cs[i].check != CHECK_METRIC)
          continue;
        snprintf(where, sizeof where, "%s %s %s", plan.stages[s].name, g ? "exit" : "entry",
                 cs[i].name);
        check_plan_expr(where, cs[i].expr, expr_default_window(cs[i].window_ms, cs[i].for_ms));
        n++;
      }
    }
  for (int i = 0; i < plan.n_slos; i++, n++) {
    snprintf(where, sizeof where, "slos %s", plan.slos[i].name);
    check_plan_expr(where, plan.slos[i].expr, 0);
  }
  /* 13 halt-rule expressions, 5 alert expressions, 9 gate criteria, 7 SLOs */
  assert_int_equal(n, 34);
}

/* Each halt rule, alert, metric criterion and SLO of the plan just below, at and just above its
 * threshold. Found by name: "rule:error_rate", "alert:canary_error_spike",
 * "exit:friendly_gp:latency_p75", "entry:...", "slo:availability". */
struct plan_case {
  int line;
  const char *what;
  struct obs in[MAX_OBS];
  enum expr_truth truth;
};

#define H24 (24 * HOUR_MS)
#define H48 (48 * HOUR_MS)

static const struct plan_case plan_cases[] = {
    /* Performance Degradation */
    {__LINE__, "rule:lcp_p75", {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2499.9, 100)}, F},
    {__LINE__, "rule:lcp_p75", {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2500, 100)}, F},
    {__LINE__, "rule:lcp_p75", {QNT(CANARY, "webvitals_lcp_ms", 0.75, M15, 2500.1, 100)}, T},
    {__LINE__, "rule:inp_p75", {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 199.9, 100)}, F},
    {__LINE__, "rule:inp_p75", {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 200, 100)}, F},
    {__LINE__, "rule:inp_p75", {QNT(CANARY, "webvitals_inp_ms", 0.75, M15, 200.1, 100)}, T},
    {__LINE__, "rule:cls_p95", {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.0999, 100)}, F},
    {__LINE__, "rule:cls_p95", {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.1, 100)}, F},
    {__LINE__, "rule:cls_p95", {QNT(CANARY, "webvitals_cls", 0.95, M15, 0.1001, 100)}, T},
    {__LINE__,
     "rule:api_latency_p99",
     {QNT(CANARY, "latency_ms", 0.99, M10, 499.9, 200),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 200)},
     F},
    {__LINE__,
     "rule:api_latency_p99",
     {QNT(CANARY, "latency_ms", 0.99, M10, 500, 200),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 200)},
     F},
    {__LINE__,
     "rule:api_latency_p99",
     {QNT(CANARY, "latency_ms", 0.99, M10, 500.1, 200),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 200)},
     T},
    {__LINE__,
     "rule:engine_timeout_rate",
     {CTR(CANARY, "engine_timeouts", M5, 49, 30), CTR(CANARY, "engine_requests", M5, 10000, 30)},
     F},
    {__LINE__,
     "rule:engine_timeout_rate",
     {CTR(CANARY, "engine_timeouts", M5, 50, 30), CTR(CANARY, "engine_requests", M5, 10000, 30)},
     F},
    {__LINE__,
     "rule:engine_timeout_rate",
     {CTR(CANARY, "engine_timeouts", M5, 51, 30), CTR(CANARY, "engine_requests", M5, 10000, 30)},
     T},
    /* Error Conditions */
    {__LINE__,
     "rule:error_rate",
     {CTR(CANARY, "errors", M5, 99, 30), CTR(CANARY, "requests", M5, 10000, 30)},
     F}, /* 0.0099 */
    {__LINE__,
     "rule:error_rate",
     {CTR(CANARY, "errors", M5, 100, 30), CTR(CANARY, "requests", M5, 10000, 30)},
     F}, /* 0.01 */
    {__LINE__,
     "rule:error_rate",
     {CTR(CANARY, "errors", M5, 101, 30), CTR(CANARY, "requests", M5, 10000, 30)},
     T}, /* 0.0101 */
    {__LINE__,
     "rule:error_rate",
     {CTR(CANARY, "errors", M5, 3, 30), CTR(CANARY, "requests", M5, 300, 30)},
     F},
    {__LINE__,
     "rule:error_rate", /* 50% errors of 40 requests: too few to judge */
     {CTR(CANARY, "errors", M5, 20, 30), CTR(CANARY, "requests", M5, 40, 30)},
     INS},
    {__LINE__,
     "rule:approval_denial_spike",
     {CTR(CANARY, "approval_denials", M5, 10, 30), CTR(CANARY, "approvals", M5, 1000, 30),
      ZS(2.99, 288)},
     F},
    {__LINE__,
     "rule:approval_denial_spike",
     {CTR(CANARY, "approval_denials", M5, 10, 30), CTR(CANARY, "approvals", M5, 1000, 30),
      ZS(3, 288)},
     F},
    {__LINE__,
     "rule:approval_denial_spike",
     {CTR(CANARY, "approval_denials", M5, 10, 30), CTR(CANARY, "approvals", M5, 1000, 30),
      ZS(3.01, 288)},
     T},
    {__LINE__,
     "rule:approval_denial_spike", /* warm-up: 29 history points */
     {CTR(CANARY, "approval_denials", M5, 10, 30), CTR(CANARY, "approvals", M5, 1000, 30),
      ZS(8, 29)},
     INS},
    {__LINE__,
     "rule:db_connection_exhaustion",
     {GMAX(CANARY, "db_connections_used", MIN_MS, 99, 6),
      GMAX(CANARY, "db_connections_max", MIN_MS, 100, 6)},
     F},
    {__LINE__,
     "rule:db_connection_exhaustion",
     {GMAX(CANARY, "db_connections_used", MIN_MS, 100, 6),
      GMAX(CANARY, "db_connections_max", MIN_MS, 100, 6)},
     T},
    {__LINE__,
     "rule:db_connection_exhaustion",
     {GMAX(CANARY, "db_connections_used", MIN_MS, 101, 6),
      GMAX(CANARY, "db_connections_max", MIN_MS, 100, 6)},
     T},
    {__LINE__, "rule:memory_usage", {AVG(CANARY, "memory_ratio", M10, 0.8999, 60)}, F},
    {__LINE__, "rule:memory_usage", {AVG(CANARY, "memory_ratio", M10, 0.9, 60)}, F},
    {__LINE__, "rule:memory_usage", {AVG(CANARY, "memory_ratio", M10, 0.9001, 60)}, T},
    {__LINE__, "rule:cpu_usage", {AVG(CANARY, "cpu_ratio", M10, 0.7999, 60)}, F},
    {__LINE__, "rule:cpu_usage", {AVG(CANARY, "cpu_ratio", M10, 0.8, 60)}, F},
    {__LINE__, "rule:cpu_usage", {AVG(CANARY, "cpu_ratio", M10, 0.8001, 60)}, T},
    {__LINE__, "rule:cpu_usage", {AVG(CANARY, "cpu_ratio", M10, 0.99, 2)}, INS},
    /* Business Metrics */
    {__LINE__,
     "rule:failed_transactions",
     {CTR(CANARY, "transactions_failed", M5, 99, 30), CTR(CANARY, "transactions", M5, 100000, 30)},
     F},
    {__LINE__,
     "rule:failed_transactions",
     {CTR(CANARY, "transactions_failed", M5, 100, 30), CTR(CANARY, "transactions", M5, 100000, 30)},
     F},
    {__LINE__,
     "rule:failed_transactions",
     {CTR(CANARY, "transactions_failed", M5, 101, 30), CTR(CANARY, "transactions", M5, 100000, 30)},
     T},
    /* the seed's alerts as loaded */
    {__LINE__,
     "alert:canary_error_spike",
     {CTR(CANARY, "errors", M5, 99, 30), CTR(CANARY, "requests", M5, 10000, 30)},
     F},
    {__LINE__,
     "alert:canary_error_spike",
     {CTR(CANARY, "errors", M5, 100, 30), CTR(CANARY, "requests", M5, 10000, 30)},
     F},
    {__LINE__,
     "alert:canary_error_spike",
     {CTR(CANARY, "errors", M5, 101, 30), CTR(CANARY, "requests", M5, 10000, 30)},
     T},
    {__LINE__,
     "alert:canary_latency_degradation",
     {QNT(CANARY, "latency_ms", 0.99, M10, 500, 200),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 200)},
     F},
    {__LINE__,
     "alert:canary_latency_degradation",
     {QNT(CANARY, "latency_ms", 0.99, M10, 500.1, 200),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 200)},
     T},
/* gates, as estimates (alpha 0 here; the built-in plan decides them on evidence: the
     * evidence's own cases are in test_evidence.c and test_metric_store.c) */
#define SPLIT_W(w, ce, cr, be, br)                                                                 \
  {                                                                                                \
    CTR(CANARY, "errors", w, ce, 360), CTR(CANARY, "requests", w, cr, 360),                        \
        CTR(BASELINE, "errors", w, be, 360), CTR(BASELINE, "requests", w, br, 360)                 \
  }
    {__LINE__, "exit:internal_test:error_rate", SPLIT_W(HOUR_MS, 99, 100000, 99, 100000), T},
    {__LINE__, "exit:internal_test:error_rate", SPLIT_W(HOUR_MS, 100, 100000, 99, 100000), F},
    {__LINE__, "exit:internal_test:error_rate", SPLIT_W(HOUR_MS, 101, 100000, 99, 100000), F},
    {__LINE__, "exit:internal_test:error_rate", /* 0.5% of the traffic at night: hold */
     SPLIT_W(HOUR_MS, 0, 60, 0, 60), INS},
    {__LINE__, "exit:internal_test:error_rate", /* the estimate passes 0 in 100: the evidence */
     SPLIT_W(HOUR_MS, 0, 100, 0, 100), T},      /* does not (test_metric_store.c) */
    {__LINE__,
     "entry:friendly_gp:baseline_established",
     {CTR(BASELINE, "requests", HOUR_MS, 999, 360)},
     F},
    {__LINE__,
     "entry:friendly_gp:baseline_established",
     {CTR(BASELINE, "requests", HOUR_MS, 1000, 360)},
     T},
    {__LINE__,
     "entry:friendly_gp:baseline_established",
     {CTR(BASELINE, "requests", HOUR_MS, 1001, 360)},
     T},
    {__LINE__, "exit:friendly_gp:error_rate", SPLIT_W(H24, 499, 100000, 499, 100000), T},
    {__LINE__, "exit:friendly_gp:error_rate", SPLIT_W(H24, 500, 100000, 499, 100000), F},
    {__LINE__, "exit:friendly_gp:error_rate", SPLIT_W(H24, 501, 100000, 499, 100000), F},
    {__LINE__, "exit:friendly_gp:error_rate", SPLIT_W(H24, 0, 919, 0, 919), T},
    {__LINE__, "exit:friendly_gp:error_rate", SPLIT_W(H24, 0, 99, 0, 99), INS},
    {__LINE__, "exit:friendly_gp:error_rate", SPLIT_W(H24, 9, 10000, 1, 10000), T},
    {__LINE__,
     "exit:friendly_gp:latency_p75",
     {QNT(CANARY, "latency_ms", 0.75, H24, 1099.9, 5000),
      QNT(BASELINE, "latency_ms", 0.75, H24, 1000, 5000)},
     T},
    {__LINE__,
     "exit:friendly_gp:latency_p75",
     {QNT(CANARY, "latency_ms", 0.75, H24, 1100, 5000),
      QNT(BASELINE, "latency_ms", 0.75, H24, 1000, 5000)},
     F},
    {__LINE__,
     "exit:friendly_gp:latency_p75",
     {QNT(CANARY, "latency_ms", 0.75, H24, 1100.1, 5000),
      QNT(BASELINE, "latency_ms", 0.75, H24, 1000, 5000)},
     F},
    {__LINE__, "exit:friendly_gp:canary_diff", {DIFF(0.005, H24, 0.0049, 1000)}, T},
    {__LINE__, "exit:friendly_gp:canary_diff", {DIFF(0.005, H24, 0.005, 1000)}, F},
    {__LINE__, "exit:friendly_gp:canary_diff", {DIFF(0.005, H24, 0.0051, 1000)}, F},
    {__LINE__, "exit:friendly_gp:canary_diff", {DIFF(0.005, H24, 0, 999)}, INS},
    {__LINE__,
     "exit:beta:feature_adoption",
     {AVG(CANARY, "feature_users", H48, 99, 100), AVG(CANARY, "active_users", H48, 1000, 100)},
     F},
    {__LINE__,
     "exit:beta:feature_adoption",
     {AVG(CANARY, "feature_users", H48, 100, 100), AVG(CANARY, "active_users", H48, 1000, 100)},
     F},
    {__LINE__,
     "exit:beta:feature_adoption",
     {AVG(CANARY, "feature_users", H48, 101, 100), AVG(CANARY, "active_users", H48, 1000, 100)},
     T},
    {__LINE__,
     "exit:beta:error_rate",
     {CTR(CANARY, "errors", H48, 500, 17280), CTR(CANARY, "requests", H48, 100000, 17280)},
     F},
    {__LINE__,
     "slo:availability",
     {CTR(CANARY, "errors", HOUR_MS, 499, 360), CTR(CANARY, "requests", HOUR_MS, 100000, 360)},
     T},
    {__LINE__,
     "slo:availability",
     {CTR(CANARY, "errors", HOUR_MS, 500, 360), CTR(CANARY, "requests", HOUR_MS, 100000, 360)},
     F},
    {__LINE__,
     "slo:lcp_p75",
     {QNT(CANARY, "webvitals_lcp_ms", 0.75, HOUR_MS, 2500, 100)},
     T}, /* <= */
    {__LINE__, "slo:lcp_p75", {QNT(CANARY, "webvitals_lcp_ms", 0.75, HOUR_MS, 2500.1, 100)}, F},
    {__LINE__, "slo:cls_p95", {QNT(CANARY, "webvitals_cls", 0.95, HOUR_MS, 0.1, 100)}, T},
    {__LINE__,
     "slo:transactions",
     {CTR(CANARY, "transactions_failed", HOUR_MS, 100, 360),
      CTR(CANARY, "transactions", HOUR_MS, 100000, 360)},
     T},
    {__LINE__,
     "slo:transactions",
     {CTR(CANARY, "transactions_failed", HOUR_MS, 101, 360),
      CTR(CANARY, "transactions", HOUR_MS, 100000, 360)},
     F},
};

/* The expression and its default window for a "kind:name" or "gate:stage:name" reference. */
static bool plan_expr(const char *what, const char **src, int64_t *window) {
  char kind[16], a[PLAN_NAME_MAX], b[PLAN_NAME_MAX] = "";
  if (sscanf(what, "%15[^:]:%47[^:]:%47s", kind, a, b) < 2)
    return false;
  if (strcmp(kind, "rule") == 0 || strcmp(kind, "alert") == 0) {
    const struct rule *rs = kind[0] == 'r' ? plan.rules : plan.alerts;
    int n = kind[0] == 'r' ? plan.n_rules : plan.n_alerts;
    for (int i = 0; i < n; i++)
      if (strcmp(rs[i].name, a) == 0 && rs[i].n_exprs == 1) {
        *src = rs[i].exprs[0];
        *window = expr_default_window(0, rs[i].for_ms);
        return true;
      }
  } else if (strcmp(kind, "slo") == 0) {
    for (int i = 0; i < plan.n_slos; i++)
      if (strcmp(plan.slos[i].name, a) == 0) {
        *src = plan.slos[i].expr;
        *window = 0;
        return true;
      }
  } else {
    int s = plan_stage_index(&plan, a);
    if (s < 0)
      return false;
    bool exit = strcmp(kind, "exit") == 0;
    const struct criterion *cs = exit ? plan.stages[s].exit : plan.stages[s].entry;
    int nc = exit ? plan.stages[s].n_exit : plan.stages[s].n_entry;
    for (int i = 0; i < nc; i++)
      if (cs[i].check == CHECK_METRIC && strcmp(cs[i].name, b) == 0) {
        *src = cs[i].expr;
        *window = expr_default_window(cs[i].window_ms, cs[i].for_ms);
        return true;
      }
  }
  return false;
}

static void test_plan_thresholds(void **state) {
  load_plan();
  for (size_t i = 0; i < sizeof plan_cases / sizeof plan_cases[0]; i++) {
    const struct plan_case *c = &plan_cases[i];
    const char *src;
    int64_t window;
    if (!plan_expr(c->what, &src, &window))
      fail_msg("line %d: %s is not in config/rollout.yaml", c->line, c->what);
    struct expr e;
    parse_bind_ok(src, &e, plan.params, plan.n_params, window);
    struct fake f = {.obs = c->in, .slos = T};
    struct expr_result r;
    assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
    if (r.truth != c->truth) {
      char buf[600];
      expr_explain(&e, &r, buf, sizeof buf);
      fail_msg("line %d: %s: got %s, want %s\n  %s", c->line, c->what, expr_truth_name(r.truth),
               expr_truth_name(c->truth), buf);
    }
  }
}

/* --- insufficient data -------------------------------------------------------------------------- */

struct ins_case {
  int line;
  const char *src;
  struct obs in[MAX_OBS];
  enum expr_truth truth;
  enum expr_why why;
  const char *why_node; /* canonical text of the node that lacked data */
};

static const struct ins_case ins_cases[] = {
    {__LINE__, "rate(errors[5m]) > 0.01", {{0}}, INS, EXPR_WHY_FEW_OBS, "rate(errors[5m])"},
    {__LINE__,
     "rate(errors[5m]) > 0.01",
     {CTR(CANARY, "errors", M5, 9, 0)},
     INS,
     EXPR_WHY_FEW_OBS,
     "rate(errors[5m])"},
    {__LINE__,
     "rate(errors[5m]) > 0.01",
     {CTR(CANARY, "errors", M5, 9, 1)},
     T,
     EXPR_WHY_NONE,
     NULL},
    /* the divisor must have counted min_events (100) */
    {__LINE__,
     "rate(errors[5m]) / rate(requests[5m]) > 0.01",
     {CTR(CANARY, "errors", M5, 0, 30), CTR(CANARY, "requests", M5, 99, 30)},
     INS,
     EXPR_WHY_FEW_EVENTS,
     "rate(requests[5m])"},
    {__LINE__,
     "rate(errors[5m]) / rate(requests[5m]) > 0.01",
     {CTR(CANARY, "errors", M5, 0, 30), CTR(CANARY, "requests", M5, 100, 30)},
     F,
     EXPR_WHY_NONE,
     NULL},
    {__LINE__,
     "rate(errors[5m]) / rate(requests[5m]) > 0.01",
     {CTR(CANARY, "errors", M5, 0, 30), CTR(CANARY, "requests", M5, 0, 30)},
     INS,
     EXPR_WHY_FEW_EVENTS,
     "rate(requests[5m])"},
    {__LINE__,
     "baseline(rate(errors[5m]) / rate(requests[5m])) > 0.01",
     {CTR(BASELINE, "errors", M5, 0, 30), CTR(BASELINE, "requests", M5, 50, 30)},
     INS,
     EXPR_WHY_FEW_EVENTS,
     "rate(requests[5m])"},
    /* a gauge divisor of 0 */
    {__LINE__,
     "avg_over_time(feature_users[1h]) / avg_over_time(active_users[1h]) > 0.1",
     {AVG(CANARY, "feature_users", HOUR_MS, 0, 60), AVG(CANARY, "active_users", HOUR_MS, 0, 60)},
     INS,
     EXPR_WHY_ZERO_DIVISOR,
     "avg_over_time(active_users[1h])"},
    /* gauges need 3 readings */
    {__LINE__,
     "avg_over_time(cpu_ratio[10m]) > 0.8",
     {AVG(CANARY, "cpu_ratio", M10, 0.9, 2)},
     INS,
     EXPR_WHY_FEW_OBS,
     "avg_over_time(cpu_ratio[10m])"},
    {__LINE__,
     "avg_over_time(cpu_ratio[10m]) > 0.8",
     {AVG(CANARY, "cpu_ratio", M10, 0.9, 3)},
     T,
     EXPR_WHY_NONE,
     NULL},
    /* quantiles: 20 values, and 1 / (1 - q) */
    {__LINE__,
     "histogram_quantile(0.75, latency_ms[5m]) > 100",
     {QNT(CANARY, "latency_ms", 0.75, M5, 150, 19)},
     INS,
     EXPR_WHY_FEW_OBS,
     "histogram_quantile(0.75, latency_ms[5m])"},
    {__LINE__,
     "histogram_quantile(0.75, latency_ms[5m]) > 100",
     {QNT(CANARY, "latency_ms", 0.75, M5, 150, 20)},
     T,
     EXPR_WHY_NONE,
     NULL},
    {__LINE__,
     "histogram_quantile(0.99, latency_ms[5m]) > 100",
     {QNT(CANARY, "latency_ms", 0.99, M5, 150, 99)},
     INS,
     EXPR_WHY_FEW_OBS,
     "histogram_quantile(0.99, latency_ms[5m])"},
    {__LINE__,
     "histogram_quantile(0.99, latency_ms[5m]) > 100",
     {QNT(CANARY, "latency_ms", 0.99, M5, 150, 100)},
     T,
     EXPR_WHY_NONE,
     NULL},
    {__LINE__,
     "latency_ms_p999 > 100",
     {QNT(CANARY, "latency_ms", 0.999, M5, 150, 999)},
     INS,
     EXPR_WHY_FEW_OBS,
     "histogram_quantile(0.999, latency_ms[5m])"},
    /* the baseline side lacking data */
    {__LINE__,
     "histogram_quantile(0.99, latency_ms[10m]) > 5 * baseline",
     {QNT(CANARY, "latency_ms", 0.99, M10, 900, 500),
      QNT(BASELINE, "latency_ms", 0.99, M10, 100, 10)},
     INS,
     EXPR_WHY_FEW_OBS,
     "histogram_quantile(0.99, latency_ms[10m])"},
    /* diff samples, z-score warm-up, SLOs */
    {__LINE__,
     "canary_diff_ratio(0.005) < 0.005",
     {DIFF(0.005, 0, 0, 999)},
     INS,
     EXPR_WHY_FEW_OBS,
     "canary_diff_ratio(0.005)"},
    {__LINE__,
     "zscore(increase(approval_denials[5m]), 24h) > 3",
     {CTR(CANARY, "approval_denials", M5, 9, 30), ZS(7, 29)},
     INS,
     EXPR_WHY_FEW_OBS,
     "zscore(increase(approval_denials[5m]), 24h)"},
    {__LINE__,
     "zscore(increase(approval_denials[5m]), 24h) > 3",
     {CTR(CANARY, "approval_denials", M5, 9, 30), ZS(7, 30)},
     T,
     EXPR_WHY_NONE,
     NULL},
    {__LINE__, "slos_met()", {{0}}, INS, EXPR_WHY_SLOS, "slos_met()"},
    /* a NaN answer with observations */
    {__LINE__,
     "avg_over_time(cpu_ratio[10m]) > 0.8",
     {AVG(CANARY, "cpu_ratio", M10, NAN, 60)},
     INS,
     EXPR_WHY_NAN,
     "avg_over_time(cpu_ratio[10m])"},
    /* three-valued and / or / not */
    {__LINE__,
     "rate(errors[5m]) > 0.01 or avg_over_time(cpu_ratio[10m]) > 0.8",
     {AVG(CANARY, "cpu_ratio", M10, 0.9, 60)},
     T,
     EXPR_WHY_NONE,
     NULL},
    {__LINE__,
     "rate(errors[5m]) > 0.01 or avg_over_time(cpu_ratio[10m]) > 0.8",
     {AVG(CANARY, "cpu_ratio", M10, 0.5, 60)},
     INS,
     EXPR_WHY_FEW_OBS,
     "rate(errors[5m])"},
    {__LINE__,
     "rate(errors[5m]) > 0.01 and avg_over_time(cpu_ratio[10m]) > 0.8",
     {AVG(CANARY, "cpu_ratio", M10, 0.5, 60)},
     F,
     EXPR_WHY_NONE,
     NULL},
    {__LINE__,
     "avg_over_time(cpu_ratio[10m]) > 0.8 and rate(errors[5m]) > 0.01",
     {AVG(CANARY, "cpu_ratio", M10, 0.9, 60)},
     INS,
     EXPR_WHY_FEW_OBS,
     "rate(errors[5m])"},
    {__LINE__, "not rate(errors[5m]) > 0.01", {{0}}, INS, EXPR_WHY_FEW_OBS, "rate(errors[5m])"},
    /* the one that decided it is named, not the first that lacked data */
    {__LINE__,
     "rate(a[5m]) > 1 and 1 > 2 or rate(b[5m]) > 1",
     {{0}},
     INS,
     EXPR_WHY_FEW_OBS,
     "rate(b[5m])"},
};

static void test_insufficient_data(void **state) {
  for (size_t i = 0; i < sizeof ins_cases / sizeof ins_cases[0]; i++) {
    const struct ins_case *c = &ins_cases[i];
    struct expr_result r = check_eval(c->line, c->src, c->in, INS, 0, c->truth, NAN);
    if (r.why != (c->truth == INS ? c->why : r.why))
      fail_msg("line %d: %s: why %s, want %s", c->line, c->src, expr_why_name(r.why),
               expr_why_name(c->why));
    if (c->why_node) {
      struct expr e;
      parse_bind_ok(c->src, &e, params, N_PARAMS, 0);
      char buf[200];
      expr_format(&e, r.why_node, buf, sizeof buf);
      if (strcmp(buf, c->why_node) != 0)
        fail_msg("line %d: %s: insufficient at %s, want %s", c->line, c->src, buf, c->why_node);
    }
    if (c->truth == INS)
      assert_true(isnan(r.value));
  }
}

/* --- error_excess_p and error_rate_upper: counts, not a bare ratio ------------------------------ */

/* errors and requests of both variants over 1h, reported by 360 intervals */
#define SPLIT(ce, cr, be, br)                                                                      \
  {                                                                                                \
    CTR(CANARY, "errors", HOUR_MS, ce, 360), CTR(CANARY, "requests", HOUR_MS, cr, 360),            \
        CTR(BASELINE, "errors", HOUR_MS, be, 360), CTR(BASELINE, "requests", HOUR_MS, br, 360)     \
  }
#define EXCESS "error_excess_p(errors[1h], requests[1h])"
#define UPPER "error_rate_upper(errors[1h], requests[1h])"
#define NO_P NAN

/* One case: truth, the reason when insufficient, and the p-value (or bound) it measured, to a
 * relative 1e-9 (NO_P: not checked). References: exact sums with Python's fractions, or scipy
 * 1.17 (binom.sf, beta.ppf). */
struct excess_case {
  int line;
  const char *src;
  struct obs in[MAX_OBS];
  enum expr_truth truth;
  enum expr_why why;
  double p;
};

static const struct excess_case excess_cases[] = {
    /* an even split (control baseline), 10 errors in all: P(X >= k | 10, 1/2) */
    {__LINE__, EXCESS " < 0.01", SPLIT(10, 1000, 0, 1000), T, EXPR_WHY_NONE, 1.0 / 1024},
    {__LINE__, EXCESS " >= 0.01", SPLIT(10, 1000, 0, 1000), F, EXPR_WHY_NONE, 1.0 / 1024},
    {__LINE__, EXCESS " < 0.01", SPLIT(9, 1000, 1, 1000), F, EXPR_WHY_NONE, 11.0 / 1024},
    {__LINE__, EXCESS " >= 0.01", SPLIT(9, 1000, 1, 1000), T, EXPR_WHY_NONE, 11.0 / 1024},
    /* around the level: p = 56/1024, computed to ~1e-16 (a sum of terms), so the level is
     * set just either side of it; the decision is p < level, strictly */
    {__LINE__, EXCESS " < 0.0546876", SPLIT(8, 1000, 2, 1000), T, EXPR_WHY_NONE, 56.0 / 1024},
    {__LINE__, EXCESS " < 0.0546874", SPLIT(8, 1000, 2, 1000), F, EXPR_WHY_NONE, 56.0 / 1024},
    {__LINE__, EXCESS " >= 0.0546874", SPLIT(8, 1000, 2, 1000), T, EXPR_WHY_NONE, 56.0 / 1024},
    {__LINE__, EXCESS " > 0.0546876", SPLIT(8, 1000, 2, 1000), F, EXPR_WHY_NONE, 56.0 / 1024},
    /* the level by name (error_rate = 0.01), and on the left */
    {__LINE__, EXCESS " < error_rate", SPLIT(10, 1000, 0, 1000), T, EXPR_WHY_NONE, 1.0 / 1024},
    {__LINE__, "0.01 > " EXCESS, SPLIT(10, 1000, 0, 1000), T, EXPR_WHY_NONE, 1.0 / 1024},
    /* 20 errors: 15 in the canary p = 0.0207, 16 p = 0.0059 */
    {__LINE__, EXCESS " >= 0.01", SPLIT(15, 5000, 5, 5000), T, EXPR_WHY_NONE, 0.020694732666015625},
    {__LINE__, EXCESS " >= 0.01", SPLIT(16, 5000, 4, 5000), F, EXPR_WHY_NONE, 0.005908966064453125},
    /* unequal split: 5,000 canary and 10,000 baseline requests, 12 of 30 errors: p = 0.276 */
    {__LINE__, EXCESS " >= 0.01", SPLIT(12, 5000, 18, 10000), T, EXPR_WHY_NONE, 0.2761356346903617},
    /* a 0.5% cohort against everyone else (docs/statistics.md): 3 of 400 against 20 of 80,000
     * is significant although 0.11 canary errors were expected — small counts can convict */
    {__LINE__, EXCESS " < 0.01", SPLIT(3, 400, 20, 80000), T, EXPR_WHY_NONE,
     0.00020241247976379836},
    {__LINE__, EXCESS " >= 0.01", SPLIT(3, 400, 20, 80000), F, EXPR_WHY_NONE,
     0.00020241247976379836},
    /* ... but 1 of 50 against 50 of 9,950 (p = 0.23, 0.26 expected) cannot tell either way:
     * neither a pass nor a halt */
    {__LINE__, EXCESS " >= 0.01", SPLIT(1, 50, 50, 9950), INS, EXPR_WHY_POWER, NO_P},
    {__LINE__, EXCESS " < 0.01", SPLIT(1, 50, 50, 9950), INS, EXPR_WHY_POWER, NO_P},
    /* no errors at all: p = 1, and nothing to compare */
    {__LINE__, EXCESS " >= 0.01", SPLIT(0, 1000, 0, 1000), INS, EXPR_WHY_POWER, NO_P},
    /* 10 errors even: powered at 0.01 (0.5^10 < 0.01), not at 0.0005 (0.5^10 >= 0.0005) */
    {__LINE__, EXCESS " >= 0.01", SPLIT(5, 1000, 5, 1000), T, EXPR_WHY_NONE, 0.623046875},
    {__LINE__, EXCESS " >= 0.0005", SPLIT(5, 1000, 5, 1000), INS, EXPR_WHY_POWER, NO_P},
    /* 4 expected canary errors (8 in all, even split) is below the 5 that "not worse" needs */
    {__LINE__, EXCESS " >= 0.01", SPLIT(4, 1000, 4, 1000), INS, EXPR_WHY_POWER, NO_P},
    /* no requests on a side, no reports, more errors than requests */
    {__LINE__, EXCESS " >= 0.01", SPLIT(0, 1000, 0, 0), INS, EXPR_WHY_FEW_EVENTS, NO_P},
    {__LINE__,
     EXCESS " >= 0.01",
     {CTR(CANARY, "errors", HOUR_MS, 0, 360), CTR(CANARY, "requests", HOUR_MS, 1000, 360)},
     INS,
     EXPR_WHY_FEW_OBS,
     NO_P},
    {__LINE__, EXCESS " >= 0.01", SPLIT(5, 4, 0, 1000), INS, EXPR_WHY_NAN, NO_P},

    /* error_rate_upper: one-sided 99% Clopper-Pearson; 0 errors need 4,603 requests for < 0.1% */
    {__LINE__, UPPER " < 0.001", SPLIT(0, 4603, 0, 0), T, EXPR_WHY_NONE, 0.0009999711673583898},
    {__LINE__, UPPER " < 0.001", SPLIT(0, 4602, 0, 0), F, EXPR_WHY_NONE, 0.0010001883492186273},
    {__LINE__, UPPER " < 0.1", SPLIT(0, 50, 0, 0), T, EXPR_WHY_NONE, 0.08798916064409025},
    {__LINE__, UPPER " < 0.001", SPLIT(5, 10000, 0, 0), F, EXPR_WHY_NONE, 0.001310316998309211},
    {__LINE__, UPPER " < 0.005", SPLIT(1, 2000, 0, 0), T, EXPR_WHY_NONE, 0.0033145012418919094},
    {__LINE__, "baseline(" UPPER ") < 0.05", SPLIT(0, 0, 3, 400), T, EXPR_WHY_NONE, NO_P},
    {__LINE__, UPPER " < 0.001", SPLIT(0, 0, 0, 1000), INS, EXPR_WHY_FEW_EVENTS, NO_P},
    {__LINE__, UPPER " < 0.001", {{0}}, INS, EXPR_WHY_FEW_OBS, NO_P},
    {__LINE__, UPPER " < 0.001", SPLIT(7, 5, 0, 0), INS, EXPR_WHY_NAN, NO_P},

    /* the plan's combination: not significantly worse than the baseline, or clean enough on
     * its own counts that the comparison does not matter */
    {__LINE__, EXCESS " >= 0.01 or " UPPER " < 0.001", SPLIT(0, 5000, 0, 5000), T, EXPR_WHY_NONE,
     NO_P},
    {__LINE__, EXCESS " >= 0.01 or " UPPER " < 0.001", SPLIT(0, 4000, 0, 4000), INS, EXPR_WHY_POWER,
     NO_P},
    {__LINE__, EXCESS " >= 0.01 or " UPPER " < 0.001", SPLIT(5, 10000, 5, 10000), T, EXPR_WHY_NONE,
     NO_P},
    {__LINE__, EXCESS " >= 0.01 or " UPPER " < 0.001", SPLIT(10, 10000, 0, 10000), F, EXPR_WHY_NONE,
     NO_P},
};

static void test_error_excess(void **state) {
  for (size_t i = 0; i < sizeof excess_cases / sizeof excess_cases[0]; i++) {
    const struct excess_case *c = &excess_cases[i];
    struct expr_result r = check_eval(c->line, c->src, c->in, INS, 0, c->truth, NAN);
    if (c->truth == INS && r.why != c->why)
      fail_msg("line %d: %s: why %s, want %s", c->line, c->src, expr_why_name(r.why),
               expr_why_name(c->why));
    if (isnan(c->p))
      continue;
    /* the p-value (or bound) is the measured side of the first comparison (the right when
     * the level is written first) */
    double got = c->src[0] == '0' ? r.compares[0].rhs : r.compares[0].lhs;
    if (r.n_compares < 1 || !(fabs(got - c->p) <= 1e-9 * c->p))
      fail_msg("line %d: %s: measured %.17g, want %.17g", c->line, c->src, got, c->p);
  }
}

/* The evidence names the counts, and how many errors "not worse" needs. */
static void test_error_excess_evidence(void **state) {
  struct expr e;
  struct expr_result r;
  char buf[600];
  const struct obs sig[] = SPLIT(3, 400, 20, 80000);
  struct fake f = {.obs = sig};
  parse_bind_ok(EXCESS " < 0.01", &e, params, N_PARAMS, 0);
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "error_excess_p(errors[1h], requests[1h]) = 0.000202 "
                           "(canary 3 of 400, baseline 20 of 80000) < 0.01: true");
  /* four counter reads and the test itself */
  assert_int_equal(r.n_measures, 5);
  assert_int_equal(r.measures[4].query, EXPR_Q_BINOMIAL);
  assert_int_equal(r.measures[4].n, 23);

  const struct obs few[] = SPLIT(1, 1000, 2, 1000);
  f = (struct fake){.obs = few};
  parse_bind_ok(EXCESS " >= 0.01", &e, params, N_PARAMS, 0);
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  /* an even split needs 10 errors: 5 expected in the canary */
  assert_string_equal(buf, "error_excess_p(errors[1h], requests[1h]) = ? (canary 1 of 1000, "
                           "baseline 2 of 1000) >= 0.01: insufficient data; too few errors to "
                           "tell canary from baseline: "
                           "error_excess_p(errors[1h], requests[1h]) (3 errors in both, needs 10)");

  const struct obs none[] = SPLIT(0, 1000, 0, 0);
  f = (struct fake){.obs = none};
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "error_excess_p(errors[1h], requests[1h]) = ? (canary 0 of 1000, "
                           "baseline 0 of 0) >= 0.01: insufficient data; too few events in the "
                           "divisor: requests[1h] (baseline 0 events)");

  /* it names its variants itself: on the baseline alone it has no value */
  f = (struct fake){.obs = sig};
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_BASELINE, &r), CANARY_OK);
  assert_int_equal(r.truth, INS);
  assert_int_equal(r.why, EXPR_WHY_VARIANT);

  /* the minimum expected errors is a limit like the others */
  struct expr_limits lim = expr_limits_default;
  const struct obs eight[] = SPLIT(4, 1000, 4, 1000); /* 4 expected: below the default 5 */
  f = (struct fake){.obs = eight};
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, INS);
  lim.min_obs[EXPR_Q_BINOMIAL] = 4;
  struct expr_source src = fake_source;
  src.limits = &lim;
  assert_int_equal(expr_eval(&e, &src, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, T);
}

static void test_limits_are_configurable(void **state) {
  struct expr e;
  parse_bind_ok("rate(errors[5m]) / rate(requests[5m]) > 0.01", &e, params, N_PARAMS, 0);
  const struct obs in[MAX_OBS] = {CTR(CANARY, "errors", M5, 2, 3),
                                  CTR(CANARY, "requests", M5, 20, 3)};
  struct expr_limits lim = expr_limits_default;
  struct expr_source src = fake_source;
  src.limits = &lim;
  struct fake f = {.obs = in};
  struct expr_result r;
  assert_int_equal(expr_eval(&e, &src, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, INS); /* 20 requests < 100 */
  lim.min_events = 20;
  assert_int_equal(expr_eval(&e, &src, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, T);    /* 10% */
  lim.min_obs[EXPR_Q_COUNTER] = 4; /* 3 intervals are now too few */
  assert_int_equal(expr_eval(&e, &src, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, INS);
  assert_int_equal(r.why, EXPR_WHY_FEW_OBS);
  assert_int_equal(r.measures[0].min_n, 4);
  assert_false(r.measures[0].sufficient);

  /* a source without a function: its queries are insufficient, not an error */
  struct expr_source none = {0};
  assert_int_equal(expr_eval(&e, &none, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, INS);
  assert_int_equal(r.why, EXPR_WHY_NO_SOURCE);
  assert_int_equal(f.calls, 6);
}

static void test_kleene(void **state) {
  static const enum expr_truth v[] = {F, T, INS};
  static const enum expr_truth and_[3][3] = {{F, F, F}, {F, T, INS}, {F, INS, INS}};
  static const enum expr_truth or_[3][3] = {{F, T, INS}, {T, T, T}, {INS, T, INS}};
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < 3; k++) {
      assert_int_equal(expr_truth_and(v[i], v[k]), and_[i][k]);
      assert_int_equal(expr_truth_or(v[i], v[k]), or_[i][k]);
    }
  }
  assert_int_equal(expr_truth_not(T), F);
  assert_int_equal(expr_truth_not(F), T);
  assert_int_equal(expr_truth_not(INS), INS);
  assert_string_equal(expr_truth_name(INS), "insufficient data");
}

/* short_circuit: the same truth as the full evaluation for every truth of every operand, with
 * fewer source calls exactly when an operand decides; never across zscore(). */
static void test_short_circuit_keeps_the_truth(void **state) {
  static const char *const exprs[] = {
      "avg_over_time(a[5m]) > 1 and avg_over_time(b[5m]) > 1",
      "avg_over_time(a[5m]) > 1 or avg_over_time(b[5m]) > 1",
      "avg_over_time(a[5m]) > 1 and (avg_over_time(b[5m]) > 1 or avg_over_time(c[5m]) > 1)",
      "not (avg_over_time(a[5m]) > 1) or avg_over_time(b[5m]) > 1 and avg_over_time(c[5m]) > 1",
  };
  /* each gauge reads true (2), false (0) or insufficient (no readings) */
  static const double value[] = {2, 0, 2};
  static const int64_t n[] = {5, 5, 0};
  int skipped = 0;
  for (size_t k = 0; k < sizeof exprs / sizeof exprs[0]; k++) {
    struct expr e;
    parse_bind_ok(exprs[k], &e, params, N_PARAMS, 0);
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++)
        for (int c = 0; c < 3; c++) {
          const struct obs in[MAX_OBS] = {AVG(CANARY, "a", M5, value[a], n[a]),
                                          AVG(CANARY, "b", M5, value[b], n[b]),
                                          AVG(CANARY, "c", M5, value[c], n[c])};
          struct fake full = {.obs = in}, lazy = {.obs = in};
          struct expr_source src = fake_source;
          struct expr_result rf, rl;
          assert_int_equal(expr_eval(&e, &src, &full, VARIANT_CANARY, &rf), CANARY_OK);
          src.short_circuit = true;
          assert_int_equal(expr_eval(&e, &src, &lazy, VARIANT_CANARY, &rl), CANARY_OK);
          assert_int_equal(rl.truth, rf.truth);
          assert_false(rf.skipped);
          assert_true(rl.skipped == (lazy.calls < full.calls));
          skipped += rl.skipped;
        }
  }
  assert_true(skipped > 20); /* the cases where an operand decides */

  /* zscore() records its history as it is evaluated: never skipped */
  struct expr e;
  parse_bind_ok("avg_over_time(a[5m]) > 1 and zscore(rate(approval_denials[5m]) / "
                "rate(approvals[5m]), 24h) > 3",
                &e, params, N_PARAMS, 0);
  const struct obs in[MAX_OBS] = {AVG(CANARY, "a", M5, 0, 5),
                                  CTR(CANARY, "approval_denials", M5, 30, 30),
                                  CTR(CANARY, "approvals", M5, 1000, 30), ZS(3.2, 288)};
  struct fake f = {.obs = in};
  struct expr_source src = fake_source;
  src.short_circuit = true;
  struct expr_result r;
  assert_int_equal(expr_eval(&e, &src, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, F);
  assert_int_equal(f.z_calls, 1);
  assert_false(r.skipped);
}

/* --- evidence ----------------------------------------------------------------------------------- */

static void test_evidence(void **state) {
  load_plan();
  const char *src;
  int64_t window;
  assert_true(plan_expr("rule:api_latency_p99", &src, &window));
  struct expr e;
  parse_bind_ok(src, &e, plan.params, plan.n_params, window);
  const struct obs in[MAX_OBS] = {QNT(CANARY, "latency_ms", 0.99, M10, 812, 400),
                                  QNT(BASELINE, "latency_ms", 0.99, M10, 120, 4000)};
  struct fake f = {.obs = in};
  struct expr_result r;
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, T);
  assert_int_equal(r.n_compares, 1);
  assert_true(r.compares[0].lhs == 812); /* the canary */
  assert_true(r.compares[0].rhs == 600); /* the threshold */
  assert_true(r.compares[0].baseline == 120);
  assert_int_equal(r.compares[0].node, e.root);
  assert_int_equal(r.n_measures, 2);
  assert_int_equal(r.measures[0].variant, VARIANT_CANARY);
  assert_int_equal(r.measures[0].query, EXPR_Q_QUANTILE);
  assert_int_equal(r.measures[0].n, 400);
  assert_int_equal(r.measures[0].min_n, 100);
  assert_true(r.measures[0].sufficient);
  assert_int_equal(r.measures[1].variant, VARIANT_BASELINE);
  assert_true(r.measures[1].value == 120);
  assert_string_equal(expr_metric(&e, r.measures[1].node), "latency_ms");
  assert_int_equal(e.nodes[r.measures[1].node].window_ms, M10);
  char buf[400];
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "histogram_quantile(0.99, latency_ms[10m]) = 812 > latency_multiplier * "
                           "baseline(histogram_quantile(0.99, latency_ms[10m])) = 600 "
                           "(baseline 120): true");

  /* the seed's bare baseline reports the same way */
  struct expr a;
  parse_bind_ok("histogram_quantile(0.99, latency) > 5 * baseline", &a, plan.params, plan.n_params,
                M10);
  assert_int_equal(expr_eval(&a, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&a, &r, buf, sizeof buf);
  assert_string_equal(buf, "histogram_quantile(0.99, latency_ms[10m]) = 812 > 5 * baseline = 600 "
                           "(baseline 120): true");

  /* insufficient: which query, how many it had, how many it needed */
  assert_true(plan_expr("rule:error_rate", &src, &window));
  parse_bind_ok(src, &e, plan.params, plan.n_params, window);
  const struct obs low[MAX_OBS] = {CTR(CANARY, "errors", M5, 1, 30),
                                   CTR(CANARY, "requests", M5, 40, 30)};
  struct fake g = {.obs = low};
  assert_int_equal(expr_eval(&e, &fake_source, &g, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "rate(errors[5m]) / rate(requests[5m]) = ? > error_rate = 0.01: "
                           "insufficient data; too few events in the divisor: rate(requests[5m]) "
                           "(canary 40 events)");
  const struct obs none[MAX_OBS] = {{0}};
  g.obs = none;
  assert_int_equal(expr_eval(&e, &fake_source, &g, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "rate(errors[5m]) / rate(requests[5m]) = ? > error_rate = 0.01: "
                           "insufficient data; too few observations: rate(errors[5m]) "
                           "(canary n=0, needs 1)");

  /* a number expression and slos_met() */
  parse_bind_ok("increase(requests[1h])", &e, params, N_PARAMS, 0);
  const struct obs req[MAX_OBS] = {CTR(CANARY, "requests", HOUR_MS, 1234, 360)};
  g.obs = req;
  assert_int_equal(expr_eval(&e, &fake_source, &g, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "increase(requests[1h]): 1234");
  parse_bind_ok("slos_met()", &e, params, N_PARAMS, 0);
  g.slos = F;
  assert_int_equal(expr_eval(&e, &fake_source, &g, VARIANT_CANARY, &r), CANARY_OK);
  expr_explain(&e, &r, buf, sizeof buf);
  assert_string_equal(buf, "slos_met(): false");

  /* more queries than the evidence holds: still the right truth */
  char big[1024] = "";
  for (int i = 0; i < 20; i++)
    strcat(big, i ? " + increase(errors[5m])" : "increase(errors[5m])");
  strcat(big, " > 19");
  parse_bind_ok(big, &e, params, N_PARAMS, 0);
  const struct obs err1[MAX_OBS] = {CTR(CANARY, "errors", M5, 1, 30)};
  g.obs = err1;
  assert_int_equal(expr_eval(&e, &fake_source, &g, VARIANT_CANARY, &r), CANARY_OK);
  assert_int_equal(r.truth, T);
  assert_int_equal(r.n_measures, EXPR_MAX_MEASURES);
  assert_true(r.truncated);
}

/* An expression that is not bound cannot be evaluated. */
static void test_unbound_is_an_error(void **state) {
  struct expr e;
  parse_ok("rate(errors[5m]) > error_rate", &e);
  assert_false(e.bound);
  struct fake f = {0};
  struct expr_result r;
  assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_EINVALID);
  assert_int_equal(r.truth, INS);
  assert_int_equal(f.calls, 0);
  parse_ok("rate(errors[5m]) > 0.01", &e); /* nothing to bind */
  assert_true(e.bound);
}

/* --- for: ------------------------------------------------------------------------------------- */

#define T0 (1767225600000LL) /* 2026-01-01T00:00:00Z */
#define STEP (10 * SEC_MS)   /* one 10 s bucket */

/* Evaluations every 10 s from T0 with truths[i]; returns the time it fired, or -1. */
static int64_t run_for(const enum expr_truth *truths, int n, int64_t for_ms, int *fires) {
  struct expr_for st = EXPR_FOR_INIT;
  int64_t fired = -1;
  *fires = 0;
  for (int i = 0; i < n; i++) {
    int64_t now = T0 + i * STEP;
    if (expr_for_step(&st, now, truths[i], for_ms)) {
      (*fires)++;
      if (fired < 0)
        fired = now;
    }
  }
  return fired;
}

static void test_for_holds_exactly_long_enough(void **state) {
  /* true at every bucket for 5 minutes: pending at T0, firing at exactly T0 + 5m */
  struct expr_for st = EXPR_FOR_INIT;
  int64_t at;
  assert_false(expr_for_deadline(&st, 5 * MIN_MS, &at));
  for (int64_t now = T0; now < T0 + 5 * MIN_MS; now += STEP) {
    assert_false(expr_for_step(&st, now, T, 5 * MIN_MS));
    assert_int_equal(st.state, EXPR_FOR_PENDING);
    assert_int_equal(st.since, T0);
    assert_true(expr_for_deadline(&st, 5 * MIN_MS, &at));
    assert_int_equal(at, T0 + 5 * MIN_MS);
  }
  assert_true(expr_for_step(&st, T0 + 5 * MIN_MS, T, 5 * MIN_MS));
  assert_int_equal(st.state, EXPR_FOR_FIRING);
  assert_false(expr_for_deadline(&st, 5 * MIN_MS, &at));
  /* fires once per run */
  assert_false(expr_for_step(&st, T0 + 5 * MIN_MS + STEP, T, 5 * MIN_MS));
  assert_int_equal(st.state, EXPR_FOR_FIRING);
  /* a timer at the deadline, with no evaluation in between, fires it too */
  struct expr_for t = EXPR_FOR_INIT;
  assert_false(expr_for_step(&t, T0, T, 10 * MIN_MS));
  assert_false(expr_for_step(&t, T0 + 10 * MIN_MS - 1, T, 10 * MIN_MS));
  assert_true(expr_for_step(&t, T0 + 10 * MIN_MS, T, 10 * MIN_MS));
}

static void test_for_breaks_one_bucket_before(void **state) {
  /* 5m = 30 buckets: true for 29 buckets, false at the 30th (T0 + 290 s), then true again */
  enum expr_truth truths[70];
  for (int i = 0; i < 70; i++)
    truths[i] = T;
  truths[29] = F;
  int fires;
  int64_t fired = run_for(truths, 60, 5 * MIN_MS, &fires); /* up to T0 + 590 s */
  assert_int_equal(fired, -1); /* not at T0 + 300 s, nor later in this minute-long stretch */
  assert_int_equal(fires, 0);
  /* the new run starts at T0 + 300 s and fires at exactly T0 + 600 s */
  fired = run_for(truths, 70, 5 * MIN_MS, &fires);
  assert_int_equal(fired, T0 + 600 * SEC_MS);
  assert_int_equal(fires, 1);
}

static void test_for_insufficient_resets(void **state) {
  enum expr_truth truths[70];
  for (int i = 0; i < 70; i++)
    truths[i] = T;
  truths[15] = INS; /* one bucket without enough data in the middle */
  int fires;
  assert_int_equal(run_for(truths, 46, 5 * MIN_MS, &fires), -1);
  assert_int_equal(run_for(truths, 70, 5 * MIN_MS, &fires), T0 + (16 * 10 + 300) * SEC_MS);
  /* and it never fires on insufficient data alone */
  for (int i = 0; i < 70; i++)
    truths[i] = INS;
  assert_int_equal(run_for(truths, 70, 0, &fires), -1);
  struct expr_for st = EXPR_FOR_INIT;
  assert_true(expr_for_step(&st, T0, T, 0));
  assert_false(expr_for_step(&st, T0 + STEP, INS, 0));
  assert_int_equal(st.state, EXPR_FOR_INACTIVE); /* firing ends too */
}

static void test_for_zero_fires_at_once(void **state) {
  static const enum expr_truth truths[] = {F, T, T, T, F, T};
  struct expr_for st = EXPR_FOR_INIT;
  static const bool want[] = {false, true, false, false, false, true};
  for (int i = 0; i < 6; i++)
    assert_int_equal(expr_for_step(&st, T0 + i * STEP, truths[i], 0), want[i]);
  assert_string_equal(expr_for_state_name(st.state), "firing");
}

/* The seed's web-vitals alert: three expressions, one state each. LCP bad for 10 minutes and
 * then INP bad for 5 does not fire a 15-minute rule; INP bad for 15 does, at exactly t0 + 15m. */
static void test_for_one_state_per_expression(void **state) {
  struct expr_for st[3] = {EXPR_FOR_INIT, EXPR_FOR_INIT, EXPR_FOR_INIT};
  int64_t fired = -1;
  for (int i = 0; i <= 180; i++) { /* 30 minutes of 10 s buckets */
    int64_t now = T0 + i * STEP;
    enum expr_truth lcp = i < 60 ? T : F;  /* T0 .. T0 + 9m50s */
    enum expr_truth inp = i >= 60 ? T : F; /* from T0 + 10m */
    enum expr_truth cls = F;
    bool any = false;
    any |= expr_for_step(&st[0], now, lcp, 15 * MIN_MS);
    any |= expr_for_step(&st[1], now, inp, 15 * MIN_MS);
    any |= expr_for_step(&st[2], now, cls, 15 * MIN_MS);
    if (any && fired < 0)
      fired = now;
  }
  assert_int_equal(fired, T0 + 10 * MIN_MS + 15 * MIN_MS);
}

/* A rule over a changing source: error rate above 1% from 10:00:30, for: 5m. */
static void test_for_with_the_evaluator(void **state) {
  load_plan();
  const char *src;
  int64_t window;
  assert_true(plan_expr("rule:error_rate", &src, &window));
  struct expr e;
  parse_bind_ok(src, &e, plan.params, plan.n_params, window);
  struct expr_for st = EXPR_FOR_INIT;
  int64_t fired = -1;
  for (int i = 0; i < 60; i++) {
    int64_t now = T0 + i * STEP;
    double errors = i < 3 ? 50 : 150; /* of 10000 requests in the window */
    struct obs in[MAX_OBS] = {CTR(CANARY, "errors", M5, errors, 30),
                              CTR(CANARY, "requests", M5, 10000, 30)};
    struct fake f = {.obs = in};
    struct expr_result r;
    assert_int_equal(expr_eval(&e, &fake_source, &f, VARIANT_CANARY, &r), CANARY_OK);
    if (expr_for_step(&st, now, r.truth, 5 * MIN_MS)) {
      assert_int_equal(fired, -1);
      fired = now;
    }
  }
  assert_int_equal(fired, T0 + 30 * SEC_MS + 5 * MIN_MS);
}

/* --- parse errors ---------------------------------------------------------------------------- */

struct error_case {
  int line;
  const char *src;
  int pos;
  const char *message;
};

static const struct error_case error_cases[] = {
    {__LINE__, "rate(errors[5m) > 0.01", 14, "expected ']' after the window"},
    {__LINE__, "", 0, "empty expression"},
    {__LINE__, "   ", 3, "empty expression"},
    {__LINE__, "rate(errors[5m]) >", 18, "expected a number, a name or '('"},
    {__LINE__, "> 0.01", 0, "expected a number, a name or '('"},
    {__LINE__, "1 +", 3, "expected a number, a name or '('"},
    {__LINE__, "1 > and", 4, "expected a number, a name or '(', not 'and'"},
    {__LINE__, "(1 > 0", 6, "expected ')' to close '('"},
    {__LINE__, "rate(errors[5m]) > 0.01)", 23, "expected an operator or the end, found ')'"},
    {__LINE__, "rate(errors[5m]) > 0.01 extra", 24,
     "expected an operator or the end, found 'extra'"},
    {__LINE__, "rate(errors[5m]) 0.01", 17, "expected an operator or the end, found '0.01'"},
    {__LINE__, "rate(errors[5m]) = 0.01", 17, "'=' is not an operator: write '==' to compare"},
    {__LINE__, "rate(errors[5m]) > 0.01 && 1 > 0", 24, "'&' is not an operator: write 'and'"},
    {__LINE__, "rate(errors[5m]) > 0.01 || 1 > 0", 24, "'|' is not an operator: write 'or'"},
    {__LINE__, "!(1 > 0)", 0, "'!' is not an operator: write 'not' or '!='"},
    {__LINE__, "rate(errors[5m]) > 3σ", 20, "unexpected byte 0xcf"},
    {__LINE__, "rate(errors[5m]) > $x", 19, "unexpected '$'"},
    {__LINE__, "0.5.5 > 1", 3, "unexpected '.' after the number"},
    {__LINE__, "5. > 1", 1, "expected a digit after '.'"},
    {__LINE__, "rate(errors[5m]) > 5x", 20, "unexpected 'x' after the number"},
    {__LINE__, "rate(errors[5m]) > 5m", 19,
     "a duration such as 5m belongs in a window, as in errors[5m]"},
    {__LINE__, "1e999 > 1", 0, "number out of range"},
    {__LINE__, "errors[5m] > 1", 0,
     "a window is read through a function, as in rate(errors[5m]) or avg_over_time(errors[5m])"},
    {__LINE__, "foo(errors[5m]) > 1", 0, "unknown function 'foo'"},
    {__LINE__, "rate(5) > 1", 5, "expected a metric name, as in rate(errors[5m])"},
    {__LINE__, "rate() > 1", 5, "expected a metric name, as in rate(errors[5m])"},
    {__LINE__, "rate(rate(errors[5m])) > 1", 5,
     "rate() reads a metric, as in rate(errors[5m]), not a function"},
    {__LINE__, "rate(baseline[5m]) > 1", 5,
     "'baseline' is not a metric: write baseline(rate(metric[5m]))"},
    {__LINE__, "rate(errors[5m] > 1", 16, "expected ')' to close rate("},
    {__LINE__, "rate(errors[]) > 1", 12, "expected a window such as 5m"},
    {__LINE__, "rate(errors[5]) > 1", 13, "expected a unit after 5: ms, s, m, h, d or w"},
    {__LINE__, "rate(errors[5x]) > 1", 13, "unknown duration unit 'x' (ms, s, m, h, d, w)"},
    {__LINE__, "rate(errors[5min]) > 1", 13, "unknown duration unit 'min' (ms, s, m, h, d, w)"},
    {__LINE__, "rate(errors[1.5h]) > 1", 13, "durations have no fractions: write 1h30m, not 1.5h"},
    {__LINE__, "rate(errors[5m1h]) > 1", 14, "duration units must decrease, as in 1h30m"},
    {__LINE__, "rate(errors[0s]) > 1", 12, "a window must be longer than 0"},
    {__LINE__, "rate(errors[99999999999999999999h]) > 1", 12, "duration out of range"},
    {__LINE__, "histogram_quantile(latency_ms[5m]) > 1", 19,
     "expected a quantile between 0 and 1, such as 0.99"},
    {__LINE__, "histogram_quantile(1.5, latency_ms[5m]) > 1", 19, "a quantile is between 0 and 1"},
    {__LINE__, "histogram_quantile(0.99 latency_ms[5m]) > 1", 24,
     "expected ',' after the quantile"},
    {__LINE__, "zscore(rate(x[5m])) > 3", 18, "expected ',' and the history, as in zscore(x, 24h)"},
    {__LINE__, "zscore(rate(x[5m]), 3) > 3", 21, "expected a unit after 3: ms, s, m, h, d or w"},
    {__LINE__, "zscore(rate(x[5m]), x) > 3", 20, "expected a history such as 5m"},
    {__LINE__, "zscore(rate(x[5m]) > 1, 24h) > 3", 7,
     "expected a number as the first argument of zscore(), found a condition"},
    {__LINE__, "canary_diff_ratio() < 0.005", 18,
     "expected a tolerance: a number or a threshold name"},
    {__LINE__, "slos_met(1)", 9, "slos_met() takes no arguments"},
    {__LINE__, "1 < 2 < 3", 6, "comparisons do not chain: join them with 'and'"},
    {__LINE__, "(1 < 2) > 0", 1, "expected a number on the left of '>', found a condition"},
    {__LINE__, "1 + (1 < 2)", 5, "expected a number on the right of '+', found a condition"},
    {__LINE__, "-(1 < 2)", 2, "expected a number after '-', found a condition"},
    {__LINE__, "slos_met() * 2", 0, "expected a number on the left of '*', found a condition"},
    {__LINE__, "rate(errors[5m]) and 1 > 0", 0,
     "expected a condition on the left of 'and', found a number (compare it, as in x > 1)"},
    {__LINE__, "1 > 0 or 2", 9,
     "expected a condition on the right of 'or', found a number (compare it, as in x > 1)"},
    {__LINE__, "not rate(errors[5m])", 4,
     "expected a condition after 'not', found a number (compare it, as in x > 1)"},
    {__LINE__, "baseline(1 > 0)", 9, "expected a number inside baseline(), found a condition"},
    {__LINE__, "baseline > 1", 0,
     "a bare 'baseline' goes on the right of a comparison, where it stands for the left-hand "
     "side on the baseline variant"},
    {__LINE__, "2 * baseline", 4,
     "a bare 'baseline' stands for the left-hand side of a comparison on the baseline variant: "
     "use it on the right of one, or write baseline(expr)"},
    {__LINE__, "((((((((((((((((((((((((((1))))))))))))))))))))))))) > 0", 24, /* the 25th ( */
     "expression nested more than 24 deep"},
    {__LINE__,
     "baseline(baseline(baseline(baseline(baseline(baseline(baseline(baseline("
     "baseline(baseline(baseline(baseline(baseline(baseline(baseline(baseline("
     "baseline(baseline(baseline(baseline(baseline(baseline(baseline(baseline("
     "baseline(rate(x[5m])))))))))))))))))))))))))) > 0",
     216, "expression nested more than 24 deep"},
    {__LINE__, "----------------------------1", 24, "expression nested more than 24 deep"},
    {__LINE__,
     "not not not not not not not not not not not not not not not not not not not not "
     "not not not not not 1 > 0",
     96, "expression nested more than 24 deep"},
    {__LINE__, "a_name_that_is_much_longer_than_forty_seven_bytes_x > 1", 0,
     "name longer than 47 bytes"},
    /* error_excess_p(): counters, compared with a significance level, not inside baseline() */
    {__LINE__, "error_excess_p(errors[5m], requests[5m])", 0,
     "error_excess_p() is a p-value to compare with a significance level, as in "
     "error_excess_p(errors[5m], requests[5m]) < 0.01"},
    {__LINE__, "2 * error_excess_p(errors[5m], requests[5m]) < 0.01", 4,
     "error_excess_p() is a p-value to compare with a significance level, as in "
     "error_excess_p(errors[5m], requests[5m]) < 0.01"},
    {__LINE__, "error_excess_p(errors[5m], requests[5m]) < 2 * 0.01", 43,
     "error_excess_p() is compared with a significance level: a number or a threshold name, as "
     "in error_excess_p(errors[5m], requests[5m]) < 0.01"},
    {__LINE__, "error_excess_p(errors[5m], requests[5m]) < 1", 43,
     "a significance level is between 0 and 1, such as 0.01"},
    {__LINE__, "error_excess_p(errors[5m], requests[5m]) == 0.01", 0,
     "error_excess_p() is a p-value: compare it with a level using <, <=, > or >="},
    {__LINE__, "error_excess_p(rate(errors[5m]), requests[5m]) < 0.01", 15,
     "error_excess_p() reads the counters themselves, as in error_excess_p(errors[5m], "
     "requests[5m]), not a function of them"},
    {__LINE__, "error_excess_p(errors[5m]) < 0.01", 25,
     "expected ',' and the requests counter, as in (errors[5m], requests[5m])"},
    {__LINE__, "error_rate_upper(errors[5m], 3) < 0.01", 29,
     "expected the requests counter, as in error_rate_upper(errors[5m], requests[5m])"},
    {__LINE__, "baseline(error_excess_p(errors[5m], requests[5m])) < 0.01", 9,
     "error_excess_p() compares the canary with the baseline itself: it does not go inside "
     "baseline()"},
    {__LINE__, "error_excess_p(errors[5m], requests[5m]) > baseline", 43,
     "error_excess_p() is compared with a significance level: a number or a threshold name, as "
     "in error_excess_p(errors[5m], requests[5m]) < 0.01"},
};

static void test_parse_errors(void **state) {
  assert_true(sizeof error_cases / sizeof error_cases[0] >= 15);
  for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
    const struct error_case *c = &error_cases[i];
    struct expr e;
    struct expr_error err;
    int rc = expr_parse(c->src, &e, &err);
    if (rc != CANARY_EPARSE)
      fail_msg("line %d: %s: parsed", c->line, c->src);
    if (err.pos != c->pos || strcmp(err.message, c->message) != 0) {
      char buf[600];
      expr_error_render(c->src, &err, buf, sizeof buf);
      fail_msg("line %d: got position %d \"%s\", want %d \"%s\"\n%s", c->line, err.pos, err.message,
               c->pos, c->message, buf);
    }
    assert_int_equal(e.n_nodes, 0); /* a failed parse leaves an empty expression */
  }
}

static void test_too_many_nodes(void **state) {
  char src[400] = "1";
  for (int i = 0; i < 40; i++)
    strcat(src, " + 1");
  struct expr e;
  struct expr_error err;
  assert_int_equal(expr_parse(src, &e, &err), CANARY_EPARSE);
  assert_string_equal(err.message, "expression too complex: more than 64 terms and operators");
  assert_int_equal(err.pos, 126); /* the 32nd '+' would be node 65 */
  char long_src[EXPR_SRC_MAX + 2];
  memset(long_src, ' ', sizeof long_src - 1);
  long_src[sizeof long_src - 1] = '\0';
  assert_int_equal(expr_parse(long_src, &e, &err), CANARY_EPARSE);
  assert_string_equal(err.message, "expression longer than 4096 bytes");
}

static void test_error_render(void **state) {
  static const struct {
    const char *src;
    const char *want;
  } cases[] = {
      /* the example, to the byte */
      {"rate(errors[5m) > 0.01",
       "rate(errors[5m) > 0.01\n              ^ expected ']' after the window"},
      {"", "\n^ empty expression"},
      {"1 +", "1 +\n   ^ expected a number, a name or '('"},
      /* tabs are kept so the caret lines up under a tab-indented expression */
      {"\trate(errors[5m) > 0.01",
       "\trate(errors[5m) > 0.01\n\t              ^ expected ']' after the window"},
      /* only the line with the fault */
      {"rate(errors[5m]) > 0.01 and\n  rate(requests[5m) > 1",
       "  rate(requests[5m) > 1\n                  ^ expected ']' after the window"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct expr e;
    struct expr_error err;
    assert_int_equal(expr_parse(cases[i].src, &e, &err), CANARY_EPARSE);
    char buf[300];
    size_t n = expr_error_render(cases[i].src, &err, buf, sizeof buf);
    assert_string_equal(buf, cases[i].want);
    assert_int_equal(n, strlen(cases[i].want));
    char small[8];
    assert_int_equal(expr_error_render(cases[i].src, &err, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
  }
  /* one column per character: the caret after "σ " is in column 2 */
  struct expr_error err = {.pos = 3, .message = "here"};
  char buf[64];
  expr_error_render("σ x", &err, buf, sizeof buf);
  assert_string_equal(buf, "σ x\n  ^ here");
}

/* --- binding ---------------------------------------------------------------------------------- */

struct bind_error_case {
  int line;
  const char *src;
  int pos;
  const char *message;
};

static const struct bind_error_case bind_error_cases[] = {
    {__LINE__, "rate(errors[5m]) > eror_rate", 19,
     "unknown name 'eror_rate': not a halt condition of the plan (a metric is read through a "
     "function, as in rate(errors[5m]))"},
    {__LINE__, "errors > 1", 0,
     "unknown name 'errors': not a halt condition of the plan (a metric is read through a "
     "function, as in rate(errors[5m]))"},
    {__LINE__, "1 < 2 and latency_p7 > 1", 10,
     "unknown name 'latency_p7': not a halt condition of the plan (a metric is read through a "
     "function, as in rate(errors[5m]))"},
    {__LINE__, "canary_diff_ratio(negative_tolerance) < 0.1", 18,
     "the tolerance 'negative_tolerance' is negative"},
    {__LINE__, "canary_diff_ratio(latency_p99) < 0.1", 18,
     "the tolerance 'latency_p99' is not a threshold"},
    {__LINE__, "error_excess_p(errors[5m], requests[5m]) < latency_p99", 43,
     "'latency_p99' is not a threshold: error_excess_p() is compared with a significance level"},
    {__LINE__, "error_excess_p(errors[5m], requests[5m]) < lcp_p75_ms", 43,
     "a significance level is between 0 and 1, such as 0.01"},
};

/* A number as put_number printed it before its fast path: try 1, 2, … 17 significant digits
 * until the text reads back, then the plain decimal of as many digits if that reads back too. */
static bool reads_back_as(const char *text, double v) {
  double back;
  return expr_scan_number(text, &back) == strlen(text) && back == v;
}

static void shortest_by_trying(double v, char *out, size_t len) {
  char text[64], fixed[64];
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(text, sizeof text, "%.*e", prec - 1, v);
    if (reads_back_as(text, v))
      break;
  }
  snprintf(text, sizeof text, "%.*e", prec - 1, v);
  int exp10 = atoi(strchr(text, 'e') + 1);
  if (exp10 >= -6 && exp10 < 15) {
    int decimals = prec - 1 - exp10;
    snprintf(fixed, sizeof fixed, "%.*f", decimals > 0 ? decimals : 0, v);
    if (reads_back_as(fixed, v)) {
      snprintf(out, len, "%s", fixed);
      return;
    }
  }
  snprintf(out, len, "%s", text);
}

/*
 * Literals print as the shortest text that reads back (scenario outputs compare it byte for
 * byte): the 15-digit shortcut must agree with trying every length — 17-digit ratios, short
 * decimals, 16-digit values, powers of ten a few ulps off, across the exponents where the
 * shortcut applies and past them.
 */
static void test_numbers_print_shortest(void **state) {
  (void)state;
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 3000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double v;
    switch (i % 4) {
    case 0:
      v = (double)(x % 100000 + 1) / (double)(x / 100000 % 99991 + 1);
      break;
    case 1:
      v = (double)(x % 1000 + 1) * pow(10, (int)(x / 1000 % 44) - 20);
      break;
    case 2:
      v = nextafter(pow(10, (int)(x % 44) - 20), (x >> 8) & 1 ? 0 : INFINITY);
      break;
    default:
      v = (double)(x % 9007199254740992ULL) * pow(10, (int)(x / 7 % 40) - 25);
      break;
    }
    if (!(v > 0) || !isfinite(v))
      continue;
    char src[64], want[64], got[64];
    struct expr e;
    struct expr_error err;
    snprintf(src, sizeof src, "%.17e", v);
    assert_int_equal(expr_parse(src, &e, &err), CANARY_OK);
    assert_int_equal(e.nodes[e.root].kind, EXPR_NUM);
    shortest_by_trying(e.nodes[e.root].num, want, sizeof want);
    expr_format(&e, -1, got, sizeof got);
    if (strcmp(got, want) != 0)
      fail_msg("%.17g: printed %s, shortest by trying %s", e.nodes[e.root].num, got, want);
  }
}

static void test_bind(void **state) {
  for (size_t i = 0; i < sizeof bind_error_cases / sizeof bind_error_cases[0]; i++) {
    const struct bind_error_case *c = &bind_error_cases[i];
    struct expr e;
    struct expr_error err;
    parse_ok(c->src, &e);
    assert_int_equal(expr_bind(&e, params, N_PARAMS, 0, &err), CANARY_EINVALID);
    if (err.pos != c->pos || strcmp(err.message, c->message) != 0)
      fail_msg("line %d: got %d \"%s\", want %d \"%s\"", c->line, err.pos, err.message, c->pos,
               c->message);
    assert_false(e.bound);
  }

  /* a threshold wins over the _pNN shorthand: the plan's cls_p95 is 0.1, not a quantile */
  struct expr e;
  char buf[200];
  parse_bind_ok("histogram_quantile(0.95, webvitals_cls[15m]) > cls_p95", &e, params, N_PARAMS, 0);
  expr_format(&e, -1, buf, sizeof buf);
  assert_string_equal(buf, "histogram_quantile(0.95, webvitals_cls[15m]) > cls_p95");
  assert_int_equal(e.nodes[e.nodes[e.root].b].kind, EXPR_PARAM);
  assert_true(e.nodes[e.nodes[e.root].b].num == 0.1);
  /* without that threshold, it is the p95 of the distribution "cls" */
  parse_bind_ok("cls_p95 > 0.1", &e, params, 1, M15);
  expr_format(&e, -1, buf, sizeof buf);
  assert_string_equal(buf, "histogram_quantile(0.95, cls[15m]) > 0.1");

  /* rebinding: new thresholds and a new window */
  parse_ok("histogram_quantile(0.99, latency) > latency_multiplier * baseline", &e);
  assert_false(e.bound);
  expr_format(&e, -1, buf, sizeof buf);
  assert_string_equal(buf, "histogram_quantile(0.99, latency_ms) > latency_multiplier * baseline");
  assert_string_equal(expr_name(&e, e.nodes[e.root].a), "latency");
  assert_string_equal(expr_metric(&e, e.nodes[e.root].a), "latency_ms");
  assert_int_equal(expr_bind(&e, params, N_PARAMS, M10, NULL), CANARY_OK);
  expr_format(&e, -1, buf, sizeof buf);
  assert_string_equal(buf,
                      "histogram_quantile(0.99, latency_ms[10m]) > latency_multiplier * baseline");
  struct plan_param other[] = {{"latency_multiplier", 3}};
  assert_int_equal(expr_bind(&e, other, 1, 0, NULL), CANARY_OK);
  expr_format(&e, -1, buf, sizeof buf);
  assert_string_equal(buf,
                      "histogram_quantile(0.99, latency_ms[5m]) > latency_multiplier * baseline");
  assert_true(e.nodes[e.nodes[e.nodes[e.root].b].a].num == 3);
  assert_int_equal(expr_longest_window(&e), 5 * MIN_MS);
  assert_int_equal(expr_bind(&e, NULL, 0, 0, NULL), CANARY_EINVALID); /* the threshold is gone */

  /* written windows stay; the default applies only where none was written */
  parse_bind_ok("rate(errors[1h]) > 0 and histogram_quantile(0.5, latency) > 0", &e, params,
                N_PARAMS, M10);
  expr_format(&e, -1, buf, sizeof buf);
  assert_string_equal(buf, "rate(errors[1h]) > 0 and histogram_quantile(0.5, latency_ms[10m]) > 0");
  assert_int_equal(expr_longest_window(&e), HOUR_MS);
  assert_false(expr_uses(&e, EXPR_BASELINE));
  assert_true(expr_uses(&e, EXPR_QUANTILE));
  parse_bind_ok("histogram_quantile(0.99, latency) > 5 * baseline", &e, params, N_PARAMS, 0);
  assert_true(expr_uses(&e, EXPR_BASELINE));
  parse_bind_ok("zscore(increase(x[5m]), 2d) > 3", &e, params, N_PARAMS, 0);
  assert_int_equal(expr_longest_window(&e), 48 * HOUR_MS);

  /* expr_default_window: criterion window, then for:, then 5m */
  assert_int_equal(expr_default_window(HOUR_MS, 5 * MIN_MS), HOUR_MS);
  assert_int_equal(expr_default_window(0, 10 * MIN_MS), 10 * MIN_MS);
  assert_int_equal(expr_default_window(0, 0), EXPR_DEFAULT_WINDOW_MS);
}

/* --- canonical text --------------------------------------------------------------------------- */

static const struct {
  const char *src, *canonical;
} format_cases[] = {
    {"rate( errors [ 5m ] )>0.01", "rate(errors[5m]) > 0.01"},
    {"(1+2)*3", "(1 + 2) * 3"},
    {"1+(2*3)", "1 + 2 * 3"},
    {"1-(2-3)", "1 - (2 - 3)"},
    {"(1-2)-3", "1 - 2 - 3"},
    {"8/(4/2)", "8 / (4 / 2)"},
    {"-(1+2)", "-(1 + 2)"},
    {"- - 2", "--2"},
    {"2*-3", "2 * -3"},
    {"not(1>2)", "not 1 > 2"},
    {"not (1>2 and 2>1)", "not (1 > 2 and 2 > 1)"},
    {"(1>2 or 2>1) and 1>0", "(1 > 2 or 2 > 1) and 1 > 0"},
    {"1>2 or (2>1 and 1>0)", "1 > 2 or 2 > 1 and 1 > 0"},
    {"0.5% < 1e3", "0.005 < 1000"},
    {"rate(errors[90m]) > 0", "rate(errors[1h30m]) > 0"},
    {"rate(errors[2d]) > 0", "rate(errors[48h]) > 0"},
    {"rate(errors[1500ms]) > 0", "rate(errors[1s500ms]) > 0"},
    {"increase(requests[1w]) > 1", "increase(requests[168h]) > 1"},
    {"zscore(rate(a[5m]) / rate(b[5m]), 1d) > 3", "zscore(rate(a[5m]) / rate(b[5m]), 24h) > 3"},
    {"canary_diff_ratio(0.005, 24h) < 0.5%", "canary_diff_ratio(0.005, 24h) < 0.005"},
    {"slos_met( )", "slos_met()"},
    {"error_excess_p( errors[1h] , requests [1h])>=0.01",
     "error_excess_p(errors[1h], requests[1h]) >= 0.01"},
    {"error_rate_upper(errors[90m], requests[90m]) < 0.1%",
     "error_rate_upper(errors[1h30m], requests[1h30m]) < 0.001"},
};

static void test_format(void **state) {
  for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0]; i++) {
    struct expr e, again;
    char buf[200], buf2[200];
    parse_ok(format_cases[i].src, &e);
    expr_format(&e, -1, buf, sizeof buf);
    assert_string_equal(buf, format_cases[i].canonical);
    parse_ok(buf, &again);
    expr_format(&again, -1, buf2, sizeof buf2);
    assert_string_equal(buf2, buf);
  }
  struct expr e;
  parse_ok("rate(errors[5m]) > 0.01", &e);
  char small[6];
  assert_int_equal(expr_format(&e, -1, small, sizeof small), strlen("rate(errors[5m]) > 0.01"));
  assert_string_equal(small, "rate(");
  assert_int_equal(expr_format(&e, e.nodes[e.root].b, small, sizeof small), 4);
}

/* --- numbers ---------------------------------------------------------------------------------- */

static void test_numbers(void **state) {
  static const struct {
    const char *text;
    double want;
    size_t len;
  } cases[] = {
      {"0.01", 0.01, 4},
      {"0.0099", 0.0099, 6},
      {"0.0101", 0.0101, 6},
      {"0.005", 0.005, 5},
      {"0.5%", 0.005, 4},
      {"1%", 0.01, 2},
      {"2500", 2500, 4},
      {"1.1", 1.1, 3},
      {"0.1", 0.1, 3},
      {"1e3", 1e3, 3},
      {"1.5e-3", 1.5e-3, 6},
      {"2E+2", 200, 4},
      {"007", 7, 3},
      {"0", 0, 1},
      {"0.000", 0, 5},
      {"3.14159265358979", 3.14159265358979, 16},
      {"0.30000000000000004", 0.30000000000000004, 19},
      {"123456789012345678901234", 123456789012345678901234.0, 24},
      {"1e-300", 1e-300, 6},
      {"5m", 5, 1},
      {"1e", 1, 1},
      {"2.x", 2, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double v = -1;
    size_t n = expr_scan_number(cases[i].text, &v);
    if (n != cases[i].len || v != cases[i].want)
      fail_msg("%s: read %zu bytes, %.17g; want %zu, %.17g", cases[i].text, n, v, cases[i].len,
               cases[i].want);
  }
  double v;
  assert_int_equal(expr_scan_number(".5", &v), 0);
  assert_int_equal(expr_scan_number("-1", &v), 0);
}

/* Numbers read and print with '.', whatever LC_NUMERIC says. */
static void test_numbers_ignore_locale(void **state) {
  const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8"};
  bool comma = false;
  for (size_t k = 0; k < sizeof names / sizeof names[0] && !comma; k++)
    comma = setlocale(LC_NUMERIC, names[k]) && localeconv()->decimal_point[0] == ',';
  if (!comma) {
    setlocale(LC_NUMERIC, "C");
    fail_msg("no decimal-comma locale installed (run scripts/install-deps)");
  }
  struct expr e;
  char buf[200];
  parse_ok("rate(errors[5m]) / rate(requests[5m]) > 0.0125 + 1.5e-7", &e);
  expr_format(&e, -1, buf, sizeof buf);
  setlocale(LC_NUMERIC, "C");
  assert_string_equal(buf, "rate(errors[5m]) / rate(requests[5m]) > 0.0125 + 1.5e-07");
}

/* --- helpers for the source ------------------------------------------------------------------ */

static void test_robust_z(void **state) {
  double z;
  double h1[] = {10, 12, 11, 9, 10, 11, 10, 9, 12, 10, 1000}; /* one outlier */
  /* median 10, |deviations| sorted: 0 0 0 0 1 1 1 1 2 2 990 -> MAD 1 */
  assert_true(expr_robust_z(h1, 11, 16, 0, &z));
  assert_true(fabs(z - 6 / 1.4826) < 1e-12);
  double h2[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2}; /* mostly 0: MAD 0, mean |dev| 0.3 */
  assert_true(expr_robust_z(h2, 10, 3, 0, &z));
  assert_true(fabs(z - 3 / (1.2533 * 0.3)) < 1e-12);
  double h3[] = {5, 5, 5, 5};
  assert_true(expr_robust_z(h3, 4, 5, 0, &z));
  assert_true(z == 0);
  double h4[] = {5, 5, 5, 5};
  assert_true(expr_robust_z(h4, 4, 6, 0, &z));
  assert_true(isinf(z) && z > 0);
  double h5[] = {5, 5, 5, 5};
  assert_true(expr_robust_z(h5, 4, 6, 0.5, &z)); /* a floor on the scale */
  assert_true(z == 2);
  double h6[] = {1, 2, 3, 4}; /* even count: median 2.5, |dev| .5 .5 1.5 1.5 -> MAD 1 */
  assert_true(expr_robust_z(h6, 4, 1, 0, &z));
  assert_true(fabs(z + 1.5 / 1.4826) < 1e-12);
  z = 42;
  assert_false(expr_robust_z(h6, 0, 1, 0, &z));
  assert_true(z == 42);
}

static void test_relative_diff(void **state) {
  assert_true(expr_relative_diff(42, 42) == 0);
  assert_true(fabs(expr_relative_diff(17.5, 17.6) - 0.1 / 17.5) < 1e-15);
  assert_true(expr_relative_diff(-10, -11) == 0.1);
  assert_true(expr_relative_diff(0, 0) == 0);
  assert_true(isinf(expr_relative_diff(0, 1)));
}

static void test_names(void **state) {
  assert_string_equal(expr_kind_name(EXPR_QUANTILE), "histogram_quantile");
  assert_string_equal(expr_kind_name(EXPR_KIND_COUNT), "?");
  assert_string_equal(expr_query_name(EXPR_Q_DIFF), "diff");
  assert_string_equal(expr_why_name(EXPR_WHY_FEW_EVENTS), "too few events in the divisor");
  assert_string_equal(expr_for_state_name(EXPR_FOR_PENDING), "pending");
  assert_true(sizeof(struct expr) <= 2600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_operators_and_precedence),
      cmocka_unit_test(test_functions),
      cmocka_unit_test(test_zscore_asks_the_source),
      cmocka_unit_test(test_seed_alerts_as_written),
      cmocka_unit_test(test_seed_alerts_in_the_plan),
      cmocka_unit_test(test_rollout_yaml_parses),
      cmocka_unit_test(test_plan_thresholds),
      cmocka_unit_test(test_insufficient_data),
      cmocka_unit_test(test_limits_are_configurable),
      cmocka_unit_test(test_error_excess),
      cmocka_unit_test(test_error_excess_evidence),
      cmocka_unit_test(test_kleene),
      cmocka_unit_test(test_short_circuit_keeps_the_truth),
      cmocka_unit_test(test_evidence),
      cmocka_unit_test(test_unbound_is_an_error),
      cmocka_unit_test(test_for_holds_exactly_long_enough),
      cmocka_unit_test(test_for_breaks_one_bucket_before),
      cmocka_unit_test(test_for_insufficient_resets),
      cmocka_unit_test(test_for_zero_fires_at_once),
      cmocka_unit_test(test_for_one_state_per_expression),
      cmocka_unit_test(test_for_with_the_evaluator),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_too_many_nodes),
      cmocka_unit_test(test_error_render),
      cmocka_unit_test(test_bind),
      cmocka_unit_test(test_numbers_print_shortest),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_numbers_ignore_locale),
      cmocka_unit_test(test_robust_z),
      cmocka_unit_test(test_relative_diff),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests_name("expr", tests, NULL, NULL);
}
