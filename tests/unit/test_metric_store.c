/* The metric store: ingest and queries, refusals with reasons, the seed's halt rules and gates
 * of config/rollout.yaml against synthetic streams (below / at / above), low traffic, for:,
 * canary diff, zscore warm-up, SLOs, expiry and bounded memory, compiling the plan. */
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
#include "core/metric_store.h"
#include "fixtures.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define ROLLOUT_YAML CANARY_SOURCE_DIR "/config/rollout.yaml"
#define SEC 1000LL
#define T0 1700000000000LL /* on a 10 s boundary */
#define STEP (10 * SEC)
#define NEVER (-1LL)
#define INS EXPR_INSUFFICIENT

/* cmocka 1.1 has no assert_double_equal */
#define assert_double_equal(a, b, eps) assert_near_((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_(double a, double b, double eps, const char *file, int line) {
  if (!(fabs(a - b) <= eps))
    fail_msg("%s:%d: %.17g != %.17g", file, line, a, b);
}

enum { INTERNAL = 0, FRIENDLY = 1, BETA = 2 };
static const enum variant C = VARIANT_CANARY, B = VARIANT_BASELINE;

/* The built-in plan twice: as the seed's literal plan (plan, mp: the estimate semantics that
 * most tests here pin down to the window and the threshold) and as it is (plan_ev, mp_ev: on
 * evidence, the tests at the end). */
static struct plan plan, plan_ev;
static struct mstore_plan mp, mp_ev;

static int setup(void **state) {
  (void)state;
  struct config_error ce;
  if (config_load_file(ROLLOUT_YAML, &plan_ev, &ce) != CANARY_OK) {
    char buf[600];
    config_error_format(&ce, buf, sizeof buf);
    fprintf(stderr, "%s\n", buf);
    return -1;
  }
  plan = plan_ev;
  plan_as_estimate(&plan);
  char why[600];
  if (mstore_plan_init(&mp, &plan, why, sizeof why) != CANARY_OK ||
      mstore_plan_init(&mp_ev, &plan_ev, why, sizeof why) != CANARY_OK) {
    fprintf(stderr, "%s\n", why);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mstore_plan_free(&mp);
  mstore_plan_free(&mp_ev);
  return 0;
}

static void store_init_for(struct mstore *ms, const struct mstore_plan *p) {
  struct mstore_config cfg;
  mstore_config_default(&cfg);
  mstore_config_for_plan(&cfg, p);
  assert_int_equal(mstore_init(ms, &cfg), CANARY_OK);
}

static void store_init(struct mstore *ms) { store_init_for(ms, &mp); }

/* --- events ----------------------------------------------------------------------------------- */

static struct event metrics_event(int64_t t, enum variant v) {
  struct event ev = fixture_event(EVENT_METRICS, "m", "r1", t);
  ev.metrics.variant = v;
  ev.metrics.interval_ms = STEP;
  return ev;
}

static void ingest_ok(struct mstore *ms, int cohort, const struct event *ev) {
  char why[200];
  int rc = mstore_ingest(ms, cohort, ev, why, sizeof why);
  if (rc != CANARY_OK)
    fail_msg("ingest: %s (%s)", canary_strerror(rc), why);
}

/* Counters: name, value pairs ended by NULL. */
static void put_counters(struct mstore *ms, int cohort, enum variant v, int64_t t, ...) {
  struct metric_value mv[8];
  size_t n = 0;
  va_list ap;
  va_start(ap, t);
  for (const char *name; (name = va_arg(ap, const char *)) && n < 8;)
    mv[n++] = (struct metric_value){name, va_arg(ap, double)};
  va_end(ap);
  struct event ev = metrics_event(t, v);
  ev.metrics.counters = mv;
  ev.metrics.n_counters = n;
  ingest_ok(ms, cohort, &ev);
}

static void put_gauge(struct mstore *ms, int cohort, enum variant v, int64_t t, const char *name,
                      double value) {
  struct metric_value mv = {name, value};
  struct event ev = metrics_event(t, v);
  ev.metrics.gauges = &mv;
  ev.metrics.n_gauges = 1;
  ingest_ok(ms, cohort, &ev);
}

/* n copies of value */
static void put_dist(struct mstore *ms, int cohort, enum variant v, int64_t t, const char *name,
                     double value, size_t n) {
  double vals[256];
  assert_true(n <= 256);
  for (size_t i = 0; i < n; i++)
    vals[i] = value;
  struct metric_dist d = {name, vals, n};
  struct event ev = metrics_event(t, v);
  ev.metrics.dists = &d;
  ev.metrics.n_dists = 1;
  ingest_ok(ms, cohort, &ev);
}

/* n diff samples, of which `over` differ by rel (the others not at all). */
static void put_diffs(struct mstore *ms, int cohort, int64_t t, size_t n, size_t over, double rel) {
  struct diff_sample *s = calloc(n, sizeof *s);
  for (size_t i = 0; i < n; i++)
    s[i] = (struct diff_sample){
        .input = (double)i, .stable = 100, .canary = i < over ? 100 * (1 + rel) : 100};
  struct event ev = fixture_event(EVENT_DIFF_SAMPLES, "d", "r1", t);
  ev.diff.samples = s;
  ev.diff.n = n;
  ingest_ok(ms, cohort, &ev);
  free(s);
}

static uint64_t rng_state;
static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double uniform01(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

/* --- plan lookups ------------------------------------------------------------------------------ */

static int rule_index(const char *name) {
  for (int i = 0; i < plan.n_rules; i++)
    if (strcmp(plan.rules[i].name, name) == 0)
      return i;
  fail_msg("no rule %s", name);
  return -1;
}

static int criterion_index(int stage, bool exit, const char *name) {
  const struct stage *s = &plan.stages[stage];
  const struct criterion *cs = exit ? s->exit : s->entry;
  int n = exit ? s->n_exit : s->n_entry;
  for (int i = 0; i < n; i++)
    if (strcmp(cs[i].name, name) == 0)
      return i;
  fail_msg("no criterion %s", name);
  return -1;
}

/* --- the source, queried directly ---------------------------------------------------------------- */

struct q {
  struct mstore *ms;
  struct expr_source src;
  struct mstore_ctx ctx;
};

static struct q query(struct mstore *ms, int cohort, int64_t now) {
  return (struct q){ms, mstore_source(ms), {.ms = ms, .mp = &mp, .cohort = cohort, .now = now}};
}

static void test_ingest_and_queries(void **state) {
  (void)state;
  struct mstore ms;
  store_init(&ms);
  for (int i = 0; i < 6; i++) { /* one minute of batches */
    int64_t t = T0 + i * STEP;
    put_counters(&ms, INTERNAL, C, t, "requests", 100.0, "errors", (double)(i == 2), NULL);
    put_counters(&ms, INTERNAL, B, t, "requests", 1000.0, "errors", 0.0, NULL);
    put_gauge(&ms, INTERNAL, C, t, "cpu_ratio", 0.5 + 0.1 * i);
  }
  struct q q = query(&ms, INTERNAL, T0 + 5 * STEP);
  static const struct {
    enum variant v;
    const char *metric;
    int64_t span;
    double sum;
    int64_t n;
  } counters[] = {
      {VARIANT_CANARY, "requests", 60 * SEC, 600, 6},
      {VARIANT_CANARY, "requests", 20 * SEC, 300, 3}, /* [now-20s, now]: 3 buckets */
      {VARIANT_CANARY, "errors", 60 * SEC, 1, 6},     /* zero is data: 6 intervals */
      {VARIANT_CANARY, "errors", 10 * SEC, 0, 2},
      {VARIANT_BASELINE, "requests", 60 * SEC, 6000, 6},
      {VARIANT_CANARY, "nothing", 60 * SEC, 0, 0},
      {VARIANT_CANARY, "cpu_ratio", 60 * SEC, 0, 0}, /* a gauge read as a counter: no data */
  };
  for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
    double out = -1;
    int64_t n = -1;
    q.src.counter_sum(&q.ctx, counters[i].v, counters[i].metric, counters[i].span, &out, &n);
    assert_int_equal(n, counters[i].n);
    if (n)
      assert_double_equal(out, counters[i].sum, 0);
  }
  double x;
  int64_t n;
  q.src.gauge_avg(&q.ctx, C, "cpu_ratio", 60 * SEC, &x, &n);
  assert_int_equal(n, 6);
  assert_double_equal(x, 0.75, 1e-12);
  q.src.gauge_max(&q.ctx, C, "cpu_ratio", 60 * SEC, &x, &n);
  assert_double_equal(x, 1.0, 1e-12);
  q.src.gauge_min(&q.ctx, C, "cpu_ratio", 20 * SEC, &x, &n);
  assert_int_equal(n, 3);
  assert_double_equal(x, 0.8, 1e-12);
  q.src.gauge_min(&q.ctx, B, "cpu_ratio", 20 * SEC, &x, &n);
  assert_int_equal(n, 0);

  /* quantiles within alpha of the exact value, over values spread across 10-second buckets */
  rng_state = 42;
  enum { N = 5000 };
  static double all[N];
  for (int b = 0; b < 50; b++) {
    double vals[100];
    for (int i = 0; i < 100; i++) {
      double g = sqrt(-2 * log(uniform01())) * cos(2 * M_PI * uniform01());
      all[b * 100 + i] = vals[i] = exp(log(100) + 0.8 * g);
    }
    struct metric_dist d = {"latency_ms", vals, 100};
    struct event ev = metrics_event(T0 + b * STEP, C);
    ev.metrics.dists = &d;
    ev.metrics.n_dists = 1;
    ingest_ok(&ms, FRIENDLY, &ev);
  }
  for (int i = 1; i < N; i++) /* insertion sort: small and obviously right */
    for (int j = i; j > 0 && all[j - 1] > all[j]; j--) {
      double t = all[j];
      all[j] = all[j - 1];
      all[j - 1] = t;
    }
  q = query(&ms, FRIENDLY, T0 + 49 * STEP);
  static const double qs[] = {0.5, 0.75, 0.95, 0.99};
  for (size_t i = 0; i < 4; i++) {
    double exact = all[(size_t)floor(qs[i] * (N - 1))];
    q.src.quantile(&q.ctx, C, "latency_ms", qs[i], 10 * 60 * SEC, &x, &n);
    assert_int_equal(n, N);
    if (fabs(x - exact) > 0.01 * exact)
      fail_msg("p%g: %g, exact %g", qs[i] * 100, x, exact);
  }
  q.src.quantile(&q.ctx, C, "latency_ms", 0.5, 0, &x, &n); /* now's bucket only */
  assert_int_equal(n, 100);
  mstore_free(&ms);
}

/* --- refusals ------------------------------------------------------------------------------------ */

static const char long_name[] = "a_metric_name_that_is_far_too_long_for_the_plan_x"; /* 50 */

static void test_refusals(void **state) {
  (void)state;
  static const double bad_latency[] = {12, -1};
  static const double nan_value = NAN;
  struct row {
    int line;
    int cohort;
    enum event_type type;
    struct metric_value counters[2];
    int n_counters;
    struct metric_value gauges[2];
    int n_gauges;
    struct metric_dist dists[1];
    int n_dists;
    int max_names, max_series; /* 0: the defaults */
    int rc;
    const char *why;
  } rows[] = {
      {__LINE__,
       0,
       EVENT_METRICS,
       {},
       0,
       {{"errors", 1}},
       1,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "metric 'errors' arrives as a gauge but is a counter"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {},
       0,
       {},
       0,
       {{"errors", bad_latency, 1}},
       1,
       0,
       0,
       CANARY_EINVALID,
       "metric 'errors' arrives as a distribution but is a counter"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {{"latency_ms", 1}},
       1,
       {},
       0,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "metric 'latency_ms' arrives as a counter but is a distribution"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {{"fresh", 1}},
       1,
       {{"fresh", 1}},
       1,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "metric 'fresh' arrives as a gauge but is a counter"}, /* same event */
      {__LINE__,
       0,
       EVENT_METRICS,
       {{long_name, 1}},
       1,
       {},
       0,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "longer than 47 bytes"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {{"", 1}},
       1,
       {},
       0,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "a counter has no name"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {{"requests", 5}, {"errors", -1}},
       2,
       {},
       0,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "counter 'errors' is -1: counters are increments"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {},
       0,
       {{"cpu_ratio", NAN}},
       1,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "gauge 'cpu_ratio' is not finite"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {},
       0,
       {},
       0,
       {{"latency_ms", bad_latency, 2}},
       1,
       0,
       0,
       CANARY_EINVALID,
       "distribution 'latency_ms' has a value that is negative"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {},
       0,
       {},
       0,
       {{"latency_ms", &nan_value, 1}},
       1,
       0,
       0,
       CANARY_EINVALID,
       "not finite"},
      {__LINE__,
       PLAN_MAX_STAGES,
       EVENT_METRICS,
       {{"errors", 1}},
       1,
       {},
       0,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "cohort index 6 out of range"},
      {__LINE__,
       0,
       EVENT_COMMAND,
       {},
       0,
       {},
       0,
       {},
       0,
       0,
       0,
       CANARY_EINVALID,
       "a command event holds no metrics"},
      {__LINE__,
       0,
       EVENT_METRICS,
       {{"one", 1}, {"two", 1}},
       2,
       {},
       0,
       {},
       0,
       3,
       0,
       CANARY_EFULL,
       "more than 3 metric names"},
      {__LINE__,
       1,
       EVENT_METRICS,
       {{"errors", 1}},
       1,
       {},
       0,
       {{"latency_ms", bad_latency, 1}},
       1,
       0,
       3,
       CANARY_EFULL,
       "more than 3 metric series"},
      /* within the bounds exactly: accepted */
      {__LINE__, 1, EVENT_METRICS, {{"errors", 1}}, 1, {}, 0, {}, 0, 2, 3, CANARY_OK, ""},
      {__LINE__, 0, EVENT_METRICS, {{"one", 1}}, 1, {}, 0, {}, 0, 3, 0, CANARY_OK, ""},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const struct row *r = &rows[i];
    struct mstore_config cfg;
    mstore_config_default(&cfg);
    if (r->max_names)
      cfg.max_names = r->max_names;
    if (r->max_series)
      cfg.max_series = r->max_series;
    struct mstore ms;
    assert_int_equal(mstore_init(&ms, &cfg), CANARY_OK);
    /* primed: errors (counter) and latency_ms (distribution) of cohort 0's canary */
    put_counters(&ms, 0, C, T0, "errors", 2.0, NULL);
    put_dist(&ms, 0, C, T0, "latency_ms", 50, 10);
    size_t mem = mstore_memory(&ms);

    struct event ev = metrics_event(T0 + STEP, C);
    ev.type = r->type;
    ev.metrics.counters = r->counters;
    ev.metrics.n_counters = (size_t)r->n_counters;
    ev.metrics.gauges = r->gauges;
    ev.metrics.n_gauges = (size_t)r->n_gauges;
    ev.metrics.dists = r->dists;
    ev.metrics.n_dists = (size_t)r->n_dists;
    char why[200];
    int rc = mstore_ingest(&ms, r->cohort, &ev, why, sizeof why);
    if (rc != r->rc || !strstr(why, r->why))
      fail_msg("line %d: %s '%s', expected %s '%s'", r->line, canary_strerror(rc), why,
               canary_strerror(r->rc), r->why);
    if (rc != CANARY_OK) { /* all or nothing */
      assert_int_equal(ms.n_names, 2);
      assert_int_equal(ms.n_series, 2);
      assert_int_equal(mstore_memory(&ms), mem);
      assert_int_equal(ms.rejected, 1);
      struct q q = query(&ms, 0, T0 + STEP);
      double x;
      int64_t n;
      q.src.counter_sum(&q.ctx, C, "errors", 60 * SEC, &x, &n);
      assert_int_equal(n, 1);
      assert_double_equal(x, 2, 0);
    }
    mstore_free(&ms);
  }
}

/* --- rules against synthetic streams -------------------------------------------------------------- */

/* One stream: what the cohort reports at time t (every 10 s); level is the row's parameter. */
typedef void (*feed_fn)(struct mstore *ms, int cohort, int64_t t, double level);

struct run {
  int64_t fired_at;           /* first evaluation that fired; NEVER */
  struct mstore_verdict last; /* of the last evaluation */
  int64_t first_deadline;     /* the first deadline announced; INT64_MAX none */
  bool ever_true;
  bool ever_insufficient_only; /* every evaluation was insufficient */
  char explain[400];           /* the deciding expression at the last time, explained */
};

/* Feed and evaluate the rule (or criterion) every 10 s from T0 to T0 + span. */
static struct run run_rule(enum mstore_owner owner, int stage, int index, int cohort, feed_fn feed,
                           double level, int64_t span) {
  struct mstore ms;
  store_init(&ms);
  struct expr_for st[PLAN_MAX_EXPRS] = {0};
  struct run r = {.fired_at = NEVER, .first_deadline = INT64_MAX, .ever_insufficient_only = true};
  for (int64_t t = T0; t <= T0 + span; t += STEP) {
    feed(&ms, cohort, t, level);
    assert_int_equal(mstore_eval_rule(&ms, &mp, owner, stage, index, cohort, t, st, &r.last),
                     CANARY_OK);
    if (r.last.fired && r.fired_at == NEVER)
      r.fired_at = t;
    if (r.last.deadline != INT64_MAX && r.first_deadline == INT64_MAX)
      r.first_deadline = r.last.deadline;
    r.ever_true |= r.last.truth == EXPR_TRUE;
    if (r.last.truth != INS)
      r.ever_insufficient_only = false;
  }
  /* a rule that did not fire carries no text (mstore_eval_rule): explain it on demand, as a
   * status page would */
  int first;
  struct expr_result er;
  if (mstore_plan_find(&mp, owner, stage, index, &first) > 0) {
    const struct mstore_expr *x = &mp.x[first + (r.last.which >= 0 ? r.last.which : 0)];
    if (mstore_eval_expr(&ms, &mp, x, cohort, T0 + span / STEP * STEP, VARIANT_CANARY, &er) ==
        CANARY_OK)
      expr_explain(&x->e, &er, r.explain, sizeof r.explain);
  }
  mstore_free(&ms);
  return r;
}

static void feed_errors(struct mstore *ms, int cohort, int64_t t, double errors_per_1000) {
  put_counters(ms, cohort, C, t, "requests", 1000.0, "errors", errors_per_1000, NULL);
  put_counters(ms, cohort, B, t, "requests", 1000.0, "errors", 1.0, NULL);
}
static void feed_engine(struct mstore *ms, int cohort, int64_t t, double per_1000) {
  put_counters(ms, cohort, C, t, "engine_requests", 1000.0, "engine_timeouts", per_1000, NULL);
}
static void feed_transactions(struct mstore *ms, int cohort, int64_t t, double per_1000) {
  put_counters(ms, cohort, C, t, "transactions", 1000.0, "transactions_failed", per_1000, NULL);
}
static void feed_p99(struct mstore *ms, int cohort, int64_t t, double canary_ms) {
  put_dist(ms, cohort, B, t, "latency_ms", 100, 200);
  put_dist(ms, cohort, C, t, "latency_ms", canary_ms, 200);
}
static void feed_lcp(struct mstore *ms, int cohort, int64_t t, double ms_) {
  put_dist(ms, cohort, C, t, "webvitals_lcp_ms", ms_, 30);
}
static void feed_inp(struct mstore *ms, int cohort, int64_t t, double ms_) {
  put_dist(ms, cohort, C, t, "webvitals_inp_ms", ms_, 30);
}
static void feed_cls(struct mstore *ms, int cohort, int64_t t, double cls) {
  put_dist(ms, cohort, C, t, "webvitals_cls", cls, 30);
}
static void feed_memory(struct mstore *ms, int cohort, int64_t t, double ratio) {
  put_gauge(ms, cohort, C, t, "memory_ratio", ratio);
}
static void feed_cpu(struct mstore *ms, int cohort, int64_t t, double ratio) {
  put_gauge(ms, cohort, C, t, "cpu_ratio", ratio);
}
static void feed_db(struct mstore *ms, int cohort, int64_t t, double used) {
  put_gauge(ms, cohort, C, t, "db_connections_used", used);
  put_gauge(ms, cohort, C, t, "db_connections_max", 100);
}

static void test_halt_rules_at_thresholds(void **state) {
  (void)state;
  struct row {
    int line;
    const char *rule;
    feed_fn feed;
    double level;
    int64_t fires_after; /* after T0; NEVER */
  } rows[] = {
      /* error rate > 1% for 5 minutes: 1000 requests each 10 s */
      {__LINE__, "error_rate", feed_errors, 9, NEVER},
      {__LINE__, "error_rate", feed_errors, 10, NEVER}, /* exactly 1%: > is strict */
      {__LINE__, "error_rate", feed_errors, 11, 5 * MIN_MS},
      /* engine timeouts > 0.5% for 5 minutes */
      {__LINE__, "engine_timeout_rate", feed_engine, 4, NEVER},
      {__LINE__, "engine_timeout_rate", feed_engine, 5, NEVER},
      {__LINE__, "engine_timeout_rate", feed_engine, 6, 5 * MIN_MS},
      /* failed transactions > 0.1%, for 0s: at the first evaluation */
      {__LINE__, "failed_transactions", feed_transactions, 0, NEVER},
      {__LINE__, "failed_transactions", feed_transactions, 1, NEVER},
      {__LINE__, "failed_transactions", feed_transactions, 2, 0},
      /* API p99 > 5x the baseline's (100 ms) for 10 minutes; constant values are exact */
      {__LINE__, "api_latency_p99", feed_p99, 499, NEVER},
      {__LINE__, "api_latency_p99", feed_p99, 500, NEVER},
      {__LINE__, "api_latency_p99", feed_p99, 501, 10 * MIN_MS},
      /* web vitals for 15 minutes */
      {__LINE__, "lcp_p75", feed_lcp, 2499, NEVER},
      {__LINE__, "lcp_p75", feed_lcp, 2500, NEVER},
      {__LINE__, "lcp_p75", feed_lcp, 2501, 15 * MIN_MS},
      {__LINE__, "inp_p75", feed_inp, 200, NEVER},
      {__LINE__, "inp_p75", feed_inp, 201, 15 * MIN_MS},
      {__LINE__, "cls_p95", feed_cls, 0.1, NEVER},
      {__LINE__, "cls_p95", feed_cls, 0.11, 15 * MIN_MS},
      /* gauges need 3 readings: true from the third (T0 + 20 s) */
      {__LINE__, "memory_usage", feed_memory, 0.9, NEVER},
      {__LINE__, "memory_usage", feed_memory, 0.91, 10 * MIN_MS + 20 * SEC},
      {__LINE__, "cpu_usage", feed_cpu, 0.8, NEVER},
      {__LINE__, "cpu_usage", feed_cpu, 0.81, 10 * MIN_MS + 20 * SEC},
      {__LINE__, "db_connection_exhaustion", feed_db, 99, NEVER},
      {__LINE__, "db_connection_exhaustion", feed_db, 100, 1 * MIN_MS + 20 * SEC},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const struct row *r = &rows[i];
    struct run run =
        run_rule(MSTORE_RULE, -1, rule_index(r->rule), FRIENDLY, r->feed, r->level, 20 * MIN_MS);
    int64_t got = run.fired_at == NEVER ? NEVER : run.fired_at - T0;
    if (got != r->fires_after)
      fail_msg("line %d: %s at %g fired after %lld ms, expected %lld (%s)", r->line, r->rule,
               r->level, (long long)got, (long long)r->fires_after, run.explain);
    assert_false(run.ever_insufficient_only); /* every row had enough data */
    if (r->fires_after != NEVER) {            /* the evidence names what was measured */
      const struct mstore_finding *f = &run.last.f[0];
      assert_true(run.last.holds);
      assert_int_equal(f->state, EXPR_FOR_FIRING);
      assert_true(f->canary >= f->threshold); /* db: >= */
      assert_true(f->n >= f->min_n && f->n > 0);
      assert_true(f->window_ms > 0);
    }
  }
  /* the baseline-relative rule's evidence: canary 501, baseline 100, threshold 500 */
  struct run run = run_rule(MSTORE_RULE, -1, rule_index("api_latency_p99"), FRIENDLY, feed_p99, 501,
                            10 * MIN_MS);
  const struct mstore_finding *f = &run.last.f[0];
  assert_true(run.last.fired);
  assert_double_equal(f->canary, 501, 0);
  assert_double_equal(f->baseline, 100, 0);
  assert_double_equal(f->threshold, 500, 0);
  assert_int_equal(f->window_ms, 10 * MIN_MS);
  assert_int_equal(f->n, 61 * 200); /* [now - 10m, now]: 61 batches of 200 values */
  assert_int_equal(f->min_n, 100);
  assert_non_null(strstr(f->explain, "(baseline 100)"));
}

/* An outage that is not the release's fault: both variants at 1 s p99 and 5% errors. */
static void feed_outage(struct mstore *ms, int cohort, int64_t t, double level) {
  put_dist(ms, cohort, B, t, "latency_ms", 1000, 200);
  put_dist(ms, cohort, C, t, "latency_ms", 1000, 200);
  put_counters(ms, cohort, C, t, "requests", 1000.0, "errors", 50.0, NULL);
  put_counters(ms, cohort, B, t, "requests", 1000.0, "errors", 50.0, NULL);
}

static void test_degrading_together(void **state) {
  (void)state;
  struct run p99 =
      run_rule(MSTORE_RULE, -1, rule_index("api_latency_p99"), BETA, feed_outage, 0, 30 * MIN_MS);
  assert_int_equal(p99.fired_at, NEVER);
  assert_int_equal(p99.last.truth, EXPR_FALSE); /* known, and false: not insufficient */
  struct run err =
      run_rule(MSTORE_RULE, -1, rule_index("error_rate"), BETA, feed_outage, 0, 30 * MIN_MS);
  assert_int_equal(err.fired_at, T0 + 5 * MIN_MS);
  /* and the seed's alert with bare `baseline` says the same */
  int alert = -1;
  for (int i = 0; i < plan.n_alerts; i++)
    if (strcmp(plan.alerts[i].name, "canary_latency_degradation") == 0)
      alert = i;
  struct run a = run_rule(MSTORE_ALERT, -1, alert, BETA, feed_outage, 0, 30 * MIN_MS);
  assert_int_equal(a.fired_at, NEVER);
  assert_int_equal(a.last.truth, EXPR_FALSE);
}

/* --- low traffic --------------------------------------------------------------------------------- */

/* 0.5%: one request a minute (every sixth batch), level = the share that fails. */
static void feed_trickle(struct mstore *ms, int cohort, int64_t t, double failing) {
  bool req = (t - T0) % MIN_MS == 0;
  put_counters(ms, cohort, C, t, "requests", req ? 1.0 : 0.0, "errors",
               req && failing > 0 ? 1.0 : 0.0, NULL);
}
static void feed_busy(struct mstore *ms, int cohort, int64_t t, double errors) {
  put_counters(ms, cohort, C, t, "requests", 100.0, "errors", errors, NULL);
}

static void test_low_traffic_is_insufficient(void **state) {
  (void)state;
  /* every request failing, but 5 requests in 5 minutes: no halt */
  struct run halt =
      run_rule(MSTORE_RULE, -1, rule_index("error_rate"), INTERNAL, feed_trickle, 1, 30 * MIN_MS);
  assert_int_equal(halt.fired_at, NEVER);
  assert_true(halt.ever_insufficient_only);
  assert_int_equal(halt.last.f[0].why, EXPR_WHY_FEW_EVENTS);
  assert_non_null(strstr(halt.explain, "too few events in the divisor"));

  /* internal_test's exit gate "error rate < 0.1%" over 1h: 61 requests, none failing — not a
   * pass */
  int crit = criterion_index(INTERNAL, true, "error_rate");
  struct run gate = run_rule(MSTORE_EXIT, INTERNAL, crit, INTERNAL, feed_trickle, 0, HOUR_MS);
  assert_true(gate.ever_insufficient_only);
  assert_false(gate.last.holds);
  assert_int_equal(gate.last.truth, INS);
  /* with traffic it passes (and fails on errors) */
  gate = run_rule(MSTORE_EXIT, INTERNAL, crit, INTERNAL, feed_busy, 0, 10 * MIN_MS);
  assert_true(gate.last.holds);
  assert_int_equal(gate.last.truth, EXPR_TRUE);
  gate = run_rule(MSTORE_EXIT, INTERNAL, crit, INTERNAL, feed_busy, 1, 10 * MIN_MS);
  assert_false(gate.last.holds);
  assert_int_equal(gate.last.truth, EXPR_FALSE);
}

/* --- for: ----------------------------------------------------------------------------------------- */

/* 1.1% errors, except one batch of a million good requests at T0 + level. */
static void feed_break(struct mstore *ms, int cohort, int64_t t, double at) {
  if (at >= 0 && t == T0 + (int64_t)at)
    put_counters(ms, cohort, C, t, "requests", 1e6, "errors", 0.0, NULL);
  else
    put_counters(ms, cohort, C, t, "requests", 1000.0, "errors", 11.0, NULL);
}

static void test_for_holds_exactly_or_breaks(void **state) {
  (void)state;
  int rule = rule_index("error_rate");
  struct run whole = run_rule(MSTORE_RULE, -1, rule, BETA, feed_break, -1, 5 * MIN_MS);
  assert_int_equal(whole.fired_at, T0 + 5 * MIN_MS); /* exactly at t0 + for, not a bucket early */
  assert_int_equal(whole.first_deadline, T0 + 5 * MIN_MS);
  struct run early =
      run_rule(MSTORE_RULE, -1, rule, BETA, feed_break, (double)(5 * MIN_MS - STEP), 5 * MIN_MS);
  assert_int_equal(early.fired_at, NEVER); /* broke one bucket before: the run starts over */
  assert_int_equal(early.last.f[0].state, EXPR_FOR_INACTIVE);

  /* evaluated only at the deadline (a timer, no metric event in between): fires on time */
  struct mstore ms;
  store_init(&ms);
  struct expr_for st[PLAN_MAX_EXPRS] = {0};
  struct mstore_verdict v;
  feed_break(&ms, BETA, T0, -1);
  assert_int_equal(mstore_eval_rule(&ms, &mp, MSTORE_RULE, -1, rule, BETA, T0, st, &v), CANARY_OK);
  assert_false(v.fired);
  assert_int_equal(v.deadline, T0 + 5 * MIN_MS);
  for (int64_t t = T0 + STEP; t <= T0 + 5 * MIN_MS; t += STEP)
    feed_break(&ms, BETA, t, -1);
  assert_int_equal(mstore_eval_rule(&ms, &mp, MSTORE_RULE, -1, rule, BETA, v.deadline, st, &v),
                   CANARY_OK);
  assert_true(v.fired);
  assert_int_equal(v.which, 0);
  assert_int_equal(v.deadline, INT64_MAX);
  mstore_free(&ms);
}

/* --- canary diff -------------------------------------------------------------------------------- */

static void test_canary_diff(void **state) {
  (void)state;
  int crit = criterion_index(FRIENDLY, true, "canary_diff"); /* canary_diff_ratio(0.005) < 0.005 */
  struct row {
    int line;
    size_t n, over;
    double rel;
    enum expr_truth truth;
  } rows[] = {
      {__LINE__, 1000, 4, 0.1, EXPR_TRUE},
      {__LINE__, 1000, 5, 0.1, EXPR_FALSE}, /* 0.5% is not < 0.5% */
      {__LINE__, 1000, 6, 0.1, EXPR_FALSE},
      {__LINE__, 1000, 600, 0.004, EXPR_TRUE}, /* within the tolerance: not counted */
      {__LINE__, 1000, 600, 0.006, EXPR_FALSE},
      {__LINE__, 999, 0, 0, INS}, /* the seed's --samples 1000 */
      {__LINE__, 0, 0, 0, INS},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const struct row *r = &rows[i];
    struct mstore ms;
    store_init(&ms);
    if (r->n)
      put_diffs(&ms, FRIENDLY, T0, r->n, r->over, r->rel);
    put_diffs(&ms, BETA, T0, 1000, 1000, 1); /* another cohort's samples are not read */
    struct expr_for st[PLAN_MAX_EXPRS] = {0};
    struct mstore_verdict v;
    assert_int_equal(
        mstore_eval_rule(&ms, &mp, MSTORE_EXIT, FRIENDLY, crit, FRIENDLY, T0 + HOUR_MS, st, &v),
        CANARY_OK);
    if (v.truth != r->truth)
      fail_msg("line %d: %s (%s)", r->line, expr_truth_name(v.truth), v.f[0].explain);
    assert_int_equal(v.holds, r->truth == EXPR_TRUE); /* for: 0 passes at once */
    assert_int_equal(v.f[0].n, (int64_t)r->n);
    mstore_free(&ms);
  }

  /* a tolerance the plan does not name is read from the sketch; stable 0 vs canary 1 is an
   * infinite difference, beyond any tolerance; 0 vs 0 is none */
  struct mstore ms;
  store_init(&ms);
  struct diff_sample s[1010];
  for (int i = 0; i < 1010; i++)
    s[i] = (struct diff_sample){i, 100, i < 100 ? 110 : i < 500 ? 101 : 100};
  for (int i = 1000; i < 1010; i++)
    s[i] = (struct diff_sample){i, 0, i < 1005 ? 1 : 0};
  struct event ev = fixture_event(EVENT_DIFF_SAMPLES, "d", "r1", T0);
  ev.diff.samples = s;
  ev.diff.n = 1010;
  ingest_ok(&ms, FRIENDLY, &ev);
  struct q q = query(&ms, FRIENDLY, T0);
  struct {
    double tol, share;
  } tols[] = {
      {0.005, 505.0 / 1010}, /* registered: exact */
      {0.05, 105.0 / 1010},  /* from the sketch */
      {0.5, 5.0 / 1010},
      {0, 505.0 / 1010},
  };
  for (size_t i = 0; i < sizeof tols / sizeof *tols; i++) {
    double x;
    int64_t n;
    q.src.diff_ratio(&q.ctx, tols[i].tol, 60 * SEC, &x, &n);
    assert_int_equal(n, 1010);
    if (fabs(x - tols[i].share) > 1e-12)
      fail_msg("tolerance %g: %g, expected %g", tols[i].tol, x, tols[i].share);
  }
  /* 24h later the samples are out of a 1h window */
  q = query(&ms, FRIENDLY, T0 + 24 * HOUR_MS);
  double x;
  int64_t n;
  q.src.diff_ratio(&q.ctx, 0.005, HOUR_MS, &x, &n);
  assert_int_equal(n, 0);
  mstore_free(&ms);
}

/* --- zscore --------------------------------------------------------------------------------------- */

/* approvals 100 a batch, denials 3..7 at random; 40 in the two minutes after spike_at */
static void feed_approvals(struct mstore *ms, int cohort, int64_t t, int64_t spike_at) {
  bool spike = t >= spike_at && t < spike_at + 2 * MIN_MS;
  double denials = spike ? 40 : (double)(3 + rng_next() % 5);
  put_counters(ms, cohort, C, t, "approvals", 100.0, "approval_denials", denials, NULL);
}

static void test_zscore_spike_with_warm_up(void **state) {
  (void)state;
  int rule = rule_index("approval_denial_spike");
  struct row {
    int line;
    int64_t spike_at;
    int64_t fires_from, fires_to; /* window of the first firing; NEVER */
  } rows[] = {
      {__LINE__, T0 + 10 * MIN_MS, NEVER, NEVER}, /* in the warm-up: insufficient */
      {__LINE__, T0 + 90 * MIN_MS, T0 + 90 * MIN_MS, T0 + 91 * MIN_MS},
      {__LINE__, INT64_MAX, NEVER, NEVER}, /* no spike: no false alarm */
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const struct row *r = &rows[i];
    rng_state = 7;
    struct mstore ms;
    store_init(&ms);
    struct expr_for st[PLAN_MAX_EXPRS] = {0};
    struct mstore_verdict v;
    int64_t fired = NEVER;
    for (int64_t t = T0; t <= T0 + 2 * HOUR_MS; t += STEP) {
      feed_approvals(&ms, BETA, t, r->spike_at);
      assert_int_equal(mstore_eval_rule(&ms, &mp, MSTORE_RULE, -1, rule, BETA, t, st, &v),
                       CANARY_OK);
      if (v.fired && fired == NEVER)
        fired = t;
      if (t == T0 + 10 * MIN_MS + STEP) { /* warm-up: 10 points of history, 30 needed */
        assert_int_equal(v.truth, INS);
        assert_int_equal(v.f[0].why, EXPR_WHY_FEW_OBS);
        assert_int_equal(v.f[0].n, 11); /* T0, T0 + 1m, ..., T0 + 10m */
        assert_int_equal(v.f[0].min_n, 30);
      }
    }
    if (r->fires_from == NEVER ? fired != NEVER : fired < r->fires_from || fired > r->fires_to)
      fail_msg("line %d: fired at T0 + %lld ms", r->line, (long long)(fired - T0));
    assert_int_equal(ms.n_z, 1); /* one history: (rule expression, node, cohort, variant) */
    mstore_free(&ms);
  }
}

/* --- SLOs ------------------------------------------------------------------------------------------ */

struct slo_feed {
  double canary_latency;
  bool cls;
  double errors;
};

static void feed_slos(struct mstore *ms, int cohort, int64_t t, const struct slo_feed *f) {
  put_counters(ms, cohort, C, t, "requests", 1000.0, "errors", f->errors, "engine_requests", 1000.0,
               "engine_timeouts", 1.0, "transactions", 1000.0, "transactions_failed", 0.0, NULL);
  put_dist(ms, cohort, C, t, "latency_ms", f->canary_latency, 30);
  put_dist(ms, cohort, B, t, "latency_ms", 100, 30);
  put_dist(ms, cohort, C, t, "webvitals_lcp_ms", 2000, 30);
  put_dist(ms, cohort, C, t, "webvitals_inp_ms", 150, 30);
  if (f->cls)
    put_dist(ms, cohort, C, t, "webvitals_cls", 0.05, 30);
}

static void test_slos_met(void **state) {
  (void)state;
  struct row {
    int line;
    struct slo_feed feed;
    enum expr_truth truth;
  } rows[] = {
      {__LINE__, {100, true, 1}, EXPR_TRUE},
      {__LINE__, {109, true, 1}, EXPR_TRUE}, /* p75 < 110% of the baseline */
      /* exactly 110%: 1.1 * 100 is 110.00000000000001 in doubles, so 110 still passes */
      {__LINE__, {110, true, 1}, EXPR_TRUE},
      {__LINE__, {111, true, 1}, EXPR_FALSE},
      {__LINE__, {100, true, 5}, EXPR_FALSE},  /* 0.5% errors: not < 0.5% */
      {__LINE__, {100, false, 1}, INS},        /* an SLO without data */
      {__LINE__, {300, false, 1}, EXPR_FALSE}, /* false and ? = false */
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    struct mstore ms;
    store_init(&ms);
    for (int64_t t = T0; t <= T0 + 30 * MIN_MS; t += MIN_MS)
      feed_slos(&ms, BETA, t, &rows[i].feed);
    struct q q = query(&ms, BETA, T0 + 30 * MIN_MS);
    enum expr_truth got = q.src.slos_met(&q.ctx, C);
    if (got != rows[i].truth)
      fail_msg("line %d: %s", rows[i].line, expr_truth_name(got));
    mstore_free(&ms);
  }

  /* beta's entry "all SLOs met for 24h": pending from the first evaluation, passes at T0 + 24h
   * exactly, with the deadline announced */
  int crit = criterion_index(BETA, false, "slos_24h");
  struct mstore ms;
  store_init(&ms);
  struct expr_for st[PLAN_MAX_EXPRS] = {0};
  struct mstore_verdict v;
  int64_t passed = NEVER;
  struct slo_feed good = {100, true, 1};
  for (int64_t t = T0; t <= T0 + 24 * HOUR_MS; t += MIN_MS) {
    feed_slos(&ms, BETA, t, &good);
    if ((t - T0) % (10 * MIN_MS))
      continue;
    assert_int_equal(mstore_eval_rule(&ms, &mp, MSTORE_ENTRY, BETA, crit, BETA, t, st, &v),
                     CANARY_OK);
    assert_int_equal(v.truth, EXPR_TRUE);
    if (t == T0)
      assert_int_equal(v.deadline, T0 + 24 * HOUR_MS);
    if (v.holds && passed == NEVER)
      passed = t;
  }
  assert_int_equal(passed, T0 + 24 * HOUR_MS);
  assert_double_equal(v.f[0].canary, 1, 0);
  mstore_free(&ms);
}

/* --- expiry and memory ---------------------------------------------------------------------------- */

static void test_expiry_bounds_memory(void **state) {
  (void)state;
  struct mstore ms;
  store_init(&ms);
  size_t empty = mstore_memory(&ms);
  size_t at_retention = 0, most = 0;
  rng_state = 3;
  for (int64_t t = T0; t < T0 + 80 * HOUR_MS; t += STEP) {
    double vals[20];
    for (int i = 0; i < 20; i++)
      vals[i] = 50 + 100 * uniform01();
    struct metric_value c = {"requests", 10}, g = {"cpu_ratio", 0.5};
    struct metric_dist d = {"latency_ms", vals, 20};
    struct event ev = metrics_event(t, C);
    ev.metrics.counters = &c;
    ev.metrics.n_counters = 1;
    ev.metrics.gauges = &g;
    ev.metrics.n_gauges = 1;
    ev.metrics.dists = &d;
    ev.metrics.n_dists = 1;
    ingest_ok(&ms, FRIENDLY, &ev);
    if ((t - T0) % MIN_MS == 0)
      put_diffs(&ms, FRIENDLY, t, 10, 1, 0.1);
    if ((t - T0) % HOUR_MS)
      continue;
    assert_int_equal(mstore_expire(&ms, t), CANARY_OK);
    size_t m = mstore_memory(&ms);
    if (t - T0 == 73 * HOUR_MS)
      at_retention = m;
    if (t - T0 > 73 * HOUR_MS && m > most)
      most = m;
  }
  assert_true(at_retention > empty);
  if (most > at_retention + at_retention / 20) /* flat once the retention is full */
    fail_msg("memory grew from %zu to %zu", at_retention, most);
  /* 72h of 10 s distributions: ~1,226 buckets, each a sketch of ~100 bins: a few MiB */
  assert_true(most < 8u << 20);

  /* silence beyond the retention: every window gives its memory back, kinds stay; what the
   * evidence counts stays (a sketch of every value, its bins bounded) */
  int64_t later = T0 + 80 * HOUR_MS + 73 * HOUR_MS;
  assert_int_equal(mstore_expire(&ms, later), CANARY_OK);
  size_t tables = empty + (size_t)ms.series_cap * sizeof *ms.series;
  size_t kept = (size_t)ms.lc_cap * sizeof *ms.lc; /* the lines' counts */
  for (int i = 0; i < ms.n_series; i++)
    if (ms.series[i].all) /* the baseline's values, whose quantiles draw the lines */
      kept += sizeof *ms.series[i].all + ms.series[i].all->cap * sizeof(uint64_t);
  assert_true(kept <= 16u << 10);
  assert_int_equal(mstore_memory(&ms), tables + kept);
  struct q q = query(&ms, FRIENDLY, later);
  double x;
  int64_t n;
  q.src.counter_sum(&q.ctx, C, "requests", 72 * HOUR_MS, &x, &n);
  assert_int_equal(n, 0);
  q.src.quantile(&q.ctx, C, "latency_ms", 0.5, 72 * HOUR_MS, &x, &n);
  assert_int_equal(n, 0);
  struct metric_value wrong = {"requests", 1};
  struct event ev = metrics_event(later, C);
  ev.metrics.gauges = &wrong;
  ev.metrics.n_gauges = 1;
  char why[160];
  assert_int_equal(mstore_ingest(&ms, FRIENDLY, &ev, why, sizeof why), CANARY_EINVALID);
  /* and it fills again */
  put_counters(&ms, FRIENDLY, C, later, "requests", 5.0, NULL);
  q.src.counter_sum(&q.ctx, C, "requests", MIN_MS, &x, &n);
  assert_int_equal(n, 1);
  assert_double_equal(x, 5, 0);
  mstore_free(&ms);
}

static void test_zscore_histories_are_bounded(void **state) {
  (void)state;
  struct mstore_config cfg;
  mstore_config_default(&cfg);
  cfg.max_zscores = 2;
  struct mstore ms;
  assert_int_equal(mstore_init(&ms, &cfg), CANARY_OK);
  struct expr_source src = mstore_source(&ms);
  struct mstore_ctx ctx = {.ms = &ms, .mp = &mp, .cohort = 0};
  double z;
  int64_t n;
  for (int64_t t = T0; t < T0 + 48 * HOUR_MS; t += MIN_MS) {
    ctx.now = t;
    for (uint64_t key = 1; key <= 3; key++) {
      ctx.key = key;
      src.zscore(&ctx, C, NULL, 4, 1.0, 24 * HOUR_MS, &z, &n);
      if (key == 3)
        assert_int_equal(n, 0); /* beyond max_zscores: insufficient, never a spike */
    }
  }
  assert_int_equal(ms.n_z, 2);
  assert_int_equal(n, 0);
  ctx.key = 1;
  src.zscore(&ctx, C, NULL, 4, 1.0, 24 * HOUR_MS, &z, &n);
  assert_int_equal(n, 24 * 60); /* one point a minute over the last 24h */
  assert_double_equal(z, 0, 0);
  size_t m = mstore_memory(&ms);
  assert_true(m < 2 * (size_t)cfg.zscore_points * 16 + 64 * 1024);
  assert_int_equal(mstore_expire(&ms, T0 + 200 * HOUR_MS), CANARY_OK);
  assert_int_equal(ms.n_z, 0);
  mstore_free(&ms);
}

/* --- compiling the plan ----------------------------------------------------------------------------- */

static struct plan bad;

static void test_plan_compiles(void **state) {
  (void)state;
  /* 11 halt rules with expressions, 5 alert expressions, 9 metric criteria, 7 SLOs */
  assert_int_equal(mp.n, 32);
  assert_int_equal(mp.n_slos, 7);
  assert_int_equal(mp.n_tolerances, 1);
  assert_double_equal(mp.tolerances[0], 0.005, 0);
  assert_int_equal(mp.longest_ms, 48 * HOUR_MS);
  int first;
  assert_int_equal(mstore_plan_find(&mp, MSTORE_RULE, -1, rule_index("data_inconsistency"), &first),
                   0);
  int alert = 2; /* canary_web_vitals_breach: three expressions */
  assert_int_equal(mstore_plan_find(&mp, MSTORE_ALERT, -1, alert, &first), 3);
  struct mstore ms;
  store_init(&ms);
  struct expr_for st[PLAN_MAX_EXPRS] = {0};
  struct mstore_verdict v;
  assert_int_equal(
      mstore_eval_rule(&ms, &mp, MSTORE_RULE, -1, rule_index("security_alert"), 0, T0, st, &v),
      CANARY_ENOTFOUND);
  assert_int_equal(v.n, 0);
  mstore_free(&ms);
  /* zscore keys: distinct, and the same when compiled again */
  struct mstore_plan again;
  char why[600];
  assert_int_equal(mstore_plan_init(&again, &plan, why, sizeof why), CANARY_OK);
  for (int i = 0; i < mp.n; i++) {
    assert_true(mp.x[i].key == again.x[i].key);
    for (int j = 0; j < i; j++)
      assert_true(mp.x[i].key != mp.x[j].key);
  }
  mstore_plan_free(&again);
  struct mstore_config cfg;
  mstore_config_default(&cfg);
  mstore_config_for_plan(&cfg, &mp);
  assert_int_equal(cfg.retention_ms, 72 * HOUR_MS); /* covers 48h already */
  assert_int_equal(cfg.n_tolerances, 1);
}

static void test_plan_errors(void **state) {
  (void)state;
  struct row {
    int line;
    int what; /* 0 rule error_rate, 1 internal_test exit error_rate, 2 SLO 0, 3 alert 2 */
    const char *expr;
    int rc;
    const char *why;
  } rows[] = {
      {__LINE__, 0, "rate(errors[5m) > 0.01", CANARY_EPARSE,
       "halt_rules error_rate:\nrate(errors[5m) > 0.01\n              ^ expected ']' after the "
       "window"},
      {__LINE__, 1, "rate(errors[1h]) / rate(requests[1h]) < eror_rate", CANARY_EINVALID,
       "internal_test exit error_rate:\n"},
      {__LINE__, 1, "rate(errors[1h]) / rate(requests[1h]) < eror_rate", CANARY_EINVALID,
       "unknown name 'eror_rate'"},
      {__LINE__, 2, "slos_met()", CANARY_EINVALID,
       "slos availability: an SLO cannot use slos_met()"},
      {__LINE__, 0, "rate(errors[5m])", CANARY_EINVALID,
       "halt_rules error_rate: 'rate(errors[5m])' is a number, not a condition"},
      {__LINE__, 3, "webvitals_lcp_p75 > 2500 and", CANARY_EPARSE,
       "alerts canary_web_vitals_breach expr 1:\n"},
      {__LINE__, 0,
       "canary_diff_ratio(0.1) < 1 and canary_diff_ratio(0.2) < 1 and canary_diff_ratio(0.3) < 1 "
       "and canary_diff_ratio(0.4) < 1",
       CANARY_EINVALID, "more than 4 distinct canary_diff_ratio tolerances"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const struct row *r = &rows[i];
    bad = plan;
    char *dst = r->what == 0 ? bad.rules[rule_index("error_rate")].exprs[0]
                : r->what == 1
                    ? bad.stages[INTERNAL].exit[criterion_index(INTERNAL, true, "error_rate")].expr
                : r->what == 2 ? bad.slos[0].expr
                               : bad.alerts[2].exprs[0];
    snprintf(dst, PLAN_EXPR_MAX, "%s", r->expr);
    struct mstore_plan m;
    char why[600] = "";
    int rc = mstore_plan_init(&m, &bad, why, sizeof why);
    if (rc != r->rc || !strstr(why, r->why))
      fail_msg("line %d: %s\n%s", r->line, canary_strerror(rc), why);
    assert_null(m.x);
    assert_int_equal(m.n, 0);
    mstore_plan_free(&m);
  }
  /* slos_met() in a plan without SLOs */
  bad = plan;
  bad.n_slos = 0;
  struct mstore_plan m;
  char why[600];
  assert_int_equal(mstore_plan_init(&m, &bad, why, sizeof why), CANARY_EINVALID);
  assert_non_null(strstr(why, "beta entry slos_24h: slos_met() but the plan defines no slos"));
}

/* mstore_eval_rule_values decides the same as mstore_eval_rule, without the text. */
/* Two verdicts say the same, bit for bit (the explanations aside); what fails is named by where. */
static void assert_same_verdict(const struct mstore_verdict *va, const struct mstore_verdict *vb,
                                const char *where) {
  if (va->n != vb->n || va->truth != vb->truth || va->fired != vb->fired ||
      va->holds != vb->holds || va->which != vb->which || va->deadline != vb->deadline)
    fail_msg("%s: verdicts differ (n %d/%d, truth %d/%d, fired %d/%d, which %d/%d)", where, va->n,
             vb->n, va->truth, vb->truth, va->fired, vb->fired, va->which, vb->which);
  for (int k = 0; k < va->n; k++) {
    const struct mstore_finding *fa = &va->f[k], *fb = &vb->f[k];
    if (fa->truth != fb->truth || fa->n != fb->n || fa->min_n != fb->min_n ||
        memcmp(&fa->canary, &fb->canary, sizeof fa->canary) ||
        memcmp(&fa->baseline, &fb->baseline, sizeof fa->baseline) ||
        memcmp(&fa->threshold, &fb->threshold, sizeof fa->threshold) || fa->why != fb->why ||
        fa->state != fb->state)
      fail_msg("%s, expr %d: %s %.17g (n %lld) vs %s %.17g (n %lld)", where, k,
               expr_truth_name(fa->truth), fa->canary, (long long)fa->n, expr_truth_name(fb->truth),
               fb->canary, (long long)fb->n);
  }
}

static void test_values_without_text(void **state) {
  (void)state;
  struct {
    enum mstore_owner owner;
    int stage, index;
    feed_fn feed;
    double level;
  } cases[] = {
      {MSTORE_RULE, -1, rule_index("error_rate"), feed_errors, 11},
      {MSTORE_RULE, -1, rule_index("api_latency_p99"), feed_p99, 501},
      {MSTORE_EXIT, INTERNAL, criterion_index(INTERNAL, true, "error_rate"), feed_busy, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    struct mstore a, b;
    store_init(&a);
    store_init(&b);
    struct expr_for sa[PLAN_MAX_EXPRS] = {0}, sb[PLAN_MAX_EXPRS] = {0};
    int fired = 0;
    for (int64_t t = T0; t <= T0 + 20 * MIN_MS; t += STEP) {
      cases[c].feed(&a, INTERNAL, t, cases[c].level);
      cases[c].feed(&b, INTERNAL, t, cases[c].level);
      struct mstore_verdict va, vb;
      assert_int_equal(mstore_eval_rule(&a, &mp, cases[c].owner, cases[c].stage, cases[c].index,
                                        INTERNAL, t, sa, &va),
                       mstore_eval_rule_values(&b, &mp, cases[c].owner, cases[c].stage,
                                               cases[c].index, INTERNAL, t, sb, &vb));
      assert_same_verdict(&va, &vb, "with text / values only");
      for (int i = 0; i < vb.n; i++)
        assert_string_equal(vb.f[i].explain, "");
      fired += va.fired;
    }
    assert_true(fired || cases[c].owner != MSTORE_RULE);
    mstore_free(&a);
    mstore_free(&b);
  }
}

/*
 * The memo (struct mstore_memo) answers exactly what a fresh evaluation answers: two stores fed
 * the same random stream — both variants, two cohorts, counters, gauges, distributions and diff
 * samples at irregular times, a metric that first arrives an hour in, silences long enough for
 * windows to empty — and every rule, alert and criterion of the plan evaluated at random times
 * (several at one time, some between buckets) on both, the memo off in one. It must also have
 * answered a good share of them, or this proves nothing.
 */
static void memo_is_a_fresh_evaluation(const struct plan *pl, const struct mstore_plan *p) {
  struct mstore a, b;
  store_init_for(&a, p);
  store_init_for(&b, p);
  b.cfg.memo = false;
  static struct expr_for sa[MSTORE_OWNER_COUNT][PLAN_MAX_STAGES + 1]
                           [PLAN_MAX_RULES + PLAN_MAX_CRITERIA][PLAN_MAX_EXPRS];
  static struct expr_for sb[MSTORE_OWNER_COUNT][PLAN_MAX_STAGES + 1]
                           [PLAN_MAX_RULES + PLAN_MAX_CRITERIA][PLAN_MAX_EXPRS];
  memset(sa, 0, sizeof sa);
  memset(sb, 0, sizeof sb);
  rng_state = 42;
  long evaluations = 0;
  int64_t t = T0;
  for (int step = 0; step < 3000; step++) {
    /* mostly a few seconds apart; now and then a silence of up to 20 minutes */
    t += uniform01() < 0.02 ? (int64_t)(uniform01() * 20 * MIN_MS) : (int64_t)(uniform01() * 8000);
    int cohort = uniform01() < 0.7 ? INTERNAL : FRIENDLY;
    enum variant v = uniform01() < 0.5 ? C : B;
    double u = uniform01();
    for (int k = 0; k < 2; k++) {
      struct mstore *ms = k ? &b : &a;
      if (u < 0.25)
        put_counters(ms, cohort, v, t, "requests", 1000.0, "errors", (double)(step % 7), NULL);
      else if (u < 0.33) /* one of an expression's inputs moves, not the others */
        put_counters(ms, cohort, v, t, "requests", 900.0, NULL);
      else if (u < 0.4)
        put_counters(ms, cohort, v, t, "errors", (double)(step % 5), NULL);
      else if (u < 0.6)
        put_dist(ms, cohort, v, t, "latency_ms", 50 + (double)(step % 50), 20);
      else if (u < 0.75)
        put_gauge(ms, cohort, v, t, step % 2 ? "cpu_ratio" : "memory_ratio",
                  0.5 + (step % 5) / 10.0);
      else if (u < 0.85 && t > T0 + 60 * MIN_MS)
        put_dist(ms, cohort, v, t, "webvitals_lcp_ms", 2000 + (double)(step % 900), 25);
      else if (u < 0.9)
        put_diffs(ms, cohort, t, 50, (size_t)(step % 3), 0.01);
    }
    /* evaluate now and then, sometimes twice at one time, sometimes a little later */
    int rounds = uniform01() < 0.5 ? 0 : 1 + (int)(uniform01() * 3);
    int64_t at = t;
    for (int round = 0; round < rounds; round++) {
      if (uniform01() < 0.5)
        at += (int64_t)(uniform01() * 15000);
      for (int o = 0; o < MSTORE_OWNER_COUNT; o++) {
        if (o == MSTORE_SLO)
          continue; /* read through slos_met() by the criteria */
        int stages = o == MSTORE_ENTRY || o == MSTORE_EXIT ? pl->n_stages : 1;
        int count = o == MSTORE_RULE    ? pl->n_rules
                    : o == MSTORE_ALERT ? pl->n_alerts
                                        : PLAN_MAX_CRITERIA;
        for (int st = 0; st < stages; st++)
          for (int i = 0; i < count; i++) {
            int stage = stages > 1 ? st : -1, first;
            if (!mstore_plan_find(p, (enum mstore_owner)o, stage, i, &first))
              continue;
            /* the for: states are shared by the cohorts: the same in both stores */
            struct mstore_verdict va, vb;
            struct expr_for *xa = sa[o][st][i], *xb = sb[o][st][i];
            assert_int_equal(
                mstore_eval_rule_values(&a, p, (enum mstore_owner)o, stage, i, cohort, at, xa, &va),
                mstore_eval_rule_values(&b, p, (enum mstore_owner)o, stage, i, cohort, at, xb,
                                        &vb));
            evaluations++;
            char where[96];
            snprintf(where, sizeof where, "step %d, %s %d/%d at %+lld ms (memo / fresh)", step,
                     mstore_owner_name((enum mstore_owner)o), stage, i, (long long)(at - T0));
            assert_same_verdict(&va, &vb, where);
          }
      }
    }
  }
  assert_true(evaluations > 10000);
  assert_int_equal(b.memo_hits, 0);
  /* most rules read metrics this stream never sends, and rounds repeat within a bucket */
  assert_true(a.memo_hits > (uint64_t)evaluations / 4);
  print_message("memo: %llu of %ld evaluations answered from it\n", (unsigned long long)a.memo_hits,
                evaluations);
  mstore_free(&a);
  mstore_free(&b);
}

static void test_memo_is_a_fresh_evaluation(void **state) {
  (void)state;
  memo_is_a_fresh_evaluation(&plan, &mp);
}

/* The evidence reads every cohort up to the exposed one: the memo must see them all. */
static void test_memo_is_a_fresh_evaluation_on_evidence(void **state) {
  (void)state;
  memo_is_a_fresh_evaluation(&plan_ev, &mp_ev);
}

/* --- the built-in plan on evidence ------------------------------------------------------------ */

static int rule_index_ev(const char *name) {
  for (int i = 0; i < plan_ev.n_rules; i++)
    if (!strcmp(plan_ev.rules[i].name, name))
      return i;
  fail_msg("no rule %s", name);
  return -1;
}

/* The budget: 1% over the halt rules' 10 comparisons over counts and the split check (the
 * alerts' 5 comparisons are the halt rules' own: paid for once), error_excess at 8 shares and
 * failed_transaction_excess at 4; gates at 95%; a restart replays the whole plan's metrics (the
 * evidence counts from the release's start). */
static void test_evidence_plan(void **state) {
  (void)state;
  assert_true(mp_ev.ev.on);
  assert_int_equal(mp_ev.ev.n_tests, 11);
  assert_int_equal(mp_ev.ev.n_distinct, 10);
  assert_double_equal(mp_ev.ev.units, 21, 0);
  assert_double_equal(mp_ev.ev.rule_alpha, 0.01 / 21, 1e-15);
  double sum = mp_ev.ev.rule_alpha; /* the split's */
  for (int k = 0; k < mp_ev.ev.n_distinct; k++)
    sum += mp_ev.ev.tests[k].q.alpha;
  assert_double_equal(sum, 0.01, 1e-15); /* the union bound is the budget */
  for (int i = 0; i < mp_ev.n; i++) {
    const struct mstore_expr *x = &mp_ev.x[i];
    if (x->owner == MSTORE_RULE && !strcmp(x->name, "error_excess"))
      assert_double_equal(x->e.alpha, 8 * 0.01 / 21, 1e-15);
    if (x->owner == MSTORE_ALERT && !strcmp(x->name, "canary_error_spike"))
      assert_double_equal(x->e.alpha, 0.01 / 21, 1e-15); /* error_rate's test */
  }
  assert_double_equal(mp_ev.ev.gate_alpha, 0.05, 0);
  assert_true(mp_ev.replay_ms >= (2 + 48 + 72) * HOUR_MS); /* a restart replays the plan */
  double w = exp(mp_ev.ev.log_w_release) + (plan_ev.n_stages - 1) * exp(mp_ev.ev.log_w_stage);
  for (int s = 0; s < plan_ev.n_stages; s++)
    w += mp_ev.ev.slices[s] * exp(mp_ev.ev.log_w_slice[s]);
  assert_true(w <= 1 + 1e-12); /* the start points' weights: a mixture, valid as a whole */
  assert_double_equal(mp_ev.ev.margin[BETA], 0.2, 0);
  assert_double_equal(mp_ev.ev.margin[FRIENDLY], 0, 0);
  /* gauges keep their thresholds; the literal plan has no evidence at all */
  int first;
  assert_int_equal(mstore_plan_find(&mp_ev, MSTORE_RULE, -1, rule_index_ev("cpu_usage"), &first),
                   1);
  assert_true(mp_ev.x[first].e.alpha == 0);
  assert_false(mp.ev.on);
}

/*
 * The example: 2 failed transactions in 1,440 (0.14% > 0.1%) at a 0.5% cohort. The
 * estimate halts on it; the evidence says how far it is from proving anything, and halts only
 * when the counts do (here: 12 of 2,880, 0.42%).
 */
static void test_evidence_two_failures_are_not_a_halt(void **state) {
  (void)state;
  struct mstore ms;
  store_init_for(&ms, &mp_ev);
  int rule = rule_index_ev("failed_transactions");
  struct expr_for st[PLAN_MAX_EXPRS] = {0};
  put_counters(&ms, INTERNAL, C, T0, "transactions", 1440.0, "transactions_failed", 2.0, NULL);
  struct mstore_verdict v;
  assert_int_equal(mstore_eval_rule(&ms, &mp_ev, MSTORE_RULE, -1, rule, INTERNAL, T0, st, &v),
                   CANARY_OK);
  assert_false(v.fired);
  assert_int_equal(v.f[0].truth, EXPR_FALSE);
  assert_true(v.f[0].evidence && v.f[0].log_e < v.f[0].log_needed);
  struct expr_result r;
  int first;
  assert_int_equal(mstore_plan_find(&mp_ev, MSTORE_RULE, -1, rule, &first), 1);
  assert_int_equal(mstore_eval_expr(&ms, &mp_ev, &mp_ev.x[first], INTERNAL, T0, C, &r), CANARY_OK);
  char text[400];
  expr_explain(&mp_ev.x[first].e, &r, text, sizeof text);
  assert_non_null(strstr(text, "canary 2 of 1440"));
  assert_non_null(strstr(text, "of the way to"));
  /* the estimate fires on the same counts */
  int first_est;
  assert_int_equal(
      mstore_plan_find(&mp, MSTORE_RULE, -1, rule_index("failed_transactions"), &first_est), 1);
  assert_int_equal(mstore_eval_expr(&ms, &mp, &mp.x[first_est], INTERNAL, T0, C, &r), CANARY_OK);
  assert_int_equal(r.truth, EXPR_TRUE);
  /* 58 more of 1,440: 60 of 2,880 against 0.1% — proven */
  put_counters(&ms, INTERNAL, C, T0 + MIN_MS, "transactions", 1440.0, "transactions_failed", 58.0,
               NULL);
  assert_int_equal(
      mstore_eval_rule(&ms, &mp_ev, MSTORE_RULE, -1, rule, INTERNAL, T0 + MIN_MS, st, &v),
      CANARY_OK);
  assert_true(v.fired);
  assert_non_null(strstr(v.f[0].explain, "lower bound"));
  mstore_free(&ms);
}

/*
 * A regression that begins in the tenth hour of a long stage: ten healthy hours have pushed the
 * test from the stage's start far below 1, and the tests from the slices since find it. Without
 * them (the slices' weight set to nothing) the same stream takes several times the failures.
 */
static int failures_to_detect(const struct mstore_plan *p) {
  struct mstore ms;
  store_init_for(&ms, p);
  int rule = rule_index_ev("failed_transaction_excess");
  struct expr_for st[PLAN_MAX_EXPRS] = {0};
  int failures = 0;
  for (int m = 0; m < 40 * 60; m++) {
    int64_t t = T0 + m * MIN_MS;
    bool worse = m >= 10 * 60 + 17; /* from 10h17m: the canary fails 10x as often */
    /* 2,000 canary transactions a minute at 5%, the baseline 38,000; baseline 0.02% failing */
    double cf = worse ? (m % 5 == 0 ? 5 : 4) : (m % 25 == 0 ? 1 : 0); /* 4.2/min vs 0.04/min */
    put_counters(&ms, FRIENDLY, B, t, "transactions", 38000.0, "transactions_failed",
                 m % 4 == 0 ? 8.0 : 7.0, NULL);
    put_counters(&ms, FRIENDLY, C, t, "transactions", 2000.0, "transactions_failed", cf, NULL);
    if (worse)
      failures += (int)cf;
    struct mstore_verdict v;
    assert_int_equal(mstore_eval_rule_values(&ms, p, MSTORE_RULE, -1, rule, FRIENDLY, t, st, &v),
                     CANARY_OK);
    if (v.fired) {
      mstore_free(&ms);
      return failures;
    }
  }
  mstore_free(&ms);
  return -1;
}

static void test_evidence_finds_a_regression_mid_stage(void **state) {
  (void)state;
  int sliced = failures_to_detect(&mp_ev);
  static struct mstore_plan without;
  without = mp_ev;
  for (int s = 0; s < PLAN_MAX_STAGES; s++) /* a shallow copy: the expressions are shared */
    without.ev.log_w_slice[s] = -INFINITY;
  int stage_only = failures_to_detect(&without);
  print_message("a 10x rise in the tenth hour: found after %d canary failures with the slices' "
                "tests, %d from the stage's start alone\n",
                sliced, stage_only);
  assert_true(sliced > 0 && sliced <= 60);
  assert_true(stage_only < 0 || stage_only > 2 * sliced);
}

/*
 * The dispersion's prior: bursts assumed (5 reports' worth of 3) for a service the plan has
 * learned nothing about; the plan's learned value for the service, or for any service, when
 * it has one; and the release's own reports overruling a prior they prove too small.
 */
/* canaryctl dispersion --check: a plan's value against the releases' steps. */
static void test_dispersion_check(void **state) {
  (void)state;
  /* 400 steps of mean 2 (bursts of 1.5): the 95% bounds are 2(1 -+ 1.645 sqrt(2/400)) */
  struct mstore_disp_check c = mstore_dispersion_check(800, 400, 1);
  assert_double_equal(c.mean, 2, 1e-12);
  assert_double_equal(c.lo, 2 * (1 - 1.6449 * sqrt(2.0 / 400)), 1e-9);
  assert_double_equal(c.hi, 2 * (1 + 1.6449 * sqrt(2.0 / 400)), 1e-9);
  assert_int_equal(c.verdict, MSTORE_DISP_STALE); /* the stale bench's plan: 1 where it is 2 */
  assert_int_equal(mstore_dispersion_check(800, 400, 1.9).verdict, MSTORE_DISP_CURRENT);
  assert_int_equal(mstore_dispersion_check(800, 400, 2.2).verdict, MSTORE_DISP_CURRENT);
  assert_int_equal(mstore_dispersion_check(800, 400, 3).verdict, MSTORE_DISP_HIGH);
  /* few steps prove little: 1 is not shown stale by ten steps of mean 2 */
  assert_int_equal(mstore_dispersion_check(20, 10, 1).verdict, MSTORE_DISP_CURRENT);
  /* independent events (steps under 1): floored at 1 as the estimate is; 1 is current */
  c = mstore_dispersion_check(0, 95, 1);
  assert_true(c.mean == 1 && c.lo == 1 && c.hi == 1);
  assert_int_equal(c.verdict, MSTORE_DISP_CURRENT);
  assert_int_equal(mstore_dispersion_check(0, 95, MSTORE_DISP_PRIOR_PHI).verdict, MSTORE_DISP_HIGH);
}

static void test_learned_dispersion_prior(void **state) {
  (void)state;
  static struct plan learned;
  learned = plan_ev;
  learned.n_dispersion = 2;
  learned.dispersion[0] = (struct plan_dispersion){"errors", "", 1, 1000};
  learned.dispersion[1] = (struct plan_dispersion){"errors", "checkout", 2, 100};
  const char *services[] = {NULL, "web", "checkout"};
  const double want[] = {3, 1, 2}; /* the priors themselves: no margin on top */
  for (int i = 0; i < 3; i++) {
    struct mstore ms;
    store_init_for(&ms, &mp_ev);
    if (services[i])
      mstore_learned_dispersion(&ms, &learned, services[i]);
    assert_true(mstore_dispersion(&ms, 0, "errors", "requests") == 1); /* no bad event yet */
    put_counters(&ms, 0, B, T0, "errors", 5.0, "requests", 240000.0, NULL);
    assert_double_equal(mstore_dispersion(&ms, 0, "errors", "requests"), want[i], 1e-12);
    mstore_free(&ms);
  }
  /* steps of 4 (bursts of about four) against a learned 1: ten of them prove it wrong */
  double trusting = mstore_dispersion_of(9 * 4, 9, 1, 1000),
         proven = mstore_dispersion_of(40, 10, 1, 1000);
  assert_true(trusting < 1.1);
  assert_double_equal(proven, 4 * (1 - sqrt(0.2)), 1e-12);
  /* steps of 1 against a learned 1: the prior stands */
  assert_double_equal(mstore_dispersion_of(10, 10, 1, 1000), 1, 1e-12);
  double sum, k;
  struct mstore ms;
  store_init_for(&ms, &mp_ev);
  for (int m = 0; m < 4; m++)
    put_counters(&ms, m < 2 ? 0 : 1, B, T0 + m * 60000, "errors", 5.0 + m, "requests", 240000.0,
                 NULL);
  mstore_dispersion_steps(&ms, "errors", &sum, &k);
  assert_true(k == 2 && sum > 0); /* a step per report after each cohort's first, pooled */
  mstore_free(&ms);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ingest_and_queries),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_halt_rules_at_thresholds),
      cmocka_unit_test(test_degrading_together),
      cmocka_unit_test(test_low_traffic_is_insufficient),
      cmocka_unit_test(test_for_holds_exactly_or_breaks),
      cmocka_unit_test(test_canary_diff),
      cmocka_unit_test(test_zscore_spike_with_warm_up),
      cmocka_unit_test(test_slos_met),
      cmocka_unit_test(test_expiry_bounds_memory),
      cmocka_unit_test(test_zscore_histories_are_bounded),
      cmocka_unit_test(test_plan_compiles),
      cmocka_unit_test(test_plan_errors),
      cmocka_unit_test(test_values_without_text),
      cmocka_unit_test(test_memo_is_a_fresh_evaluation),
      cmocka_unit_test(test_memo_is_a_fresh_evaluation_on_evidence),
      cmocka_unit_test(test_evidence_plan),
      cmocka_unit_test(test_evidence_two_failures_are_not_a_halt),
      cmocka_unit_test(test_evidence_finds_a_regression_mid_stage),
      cmocka_unit_test(test_learned_dispersion_prior),
      cmocka_unit_test(test_dispersion_check),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
