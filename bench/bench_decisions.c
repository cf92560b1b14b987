/*
 * Decision quality: a Monte Carlo of synthetic releases through the pure core (no Kafka, no
 * PostgreSQL). For the plan (the built-in config/rollout.yaml, or PLAN=file) it measures how
 * often healthy releases are halted (false halts) and how fast regressions of known size,
 * injected in the canary, are halted — under two semantics side by side:
 *
 *   evidence  the plan as loaded (plan.decide, normally PLAN_DECIDE_EVIDENCE);
 *   estimate  plan_as_estimate() of the same plan: plan.decide = PLAN_DECIDE_ESTIMATE, every rule's decide =
 *             PLAN_DECIDE_DEFAULT: the literal point estimates over the windows.
 *
 * Both run with the traffic split's baseline as the complement (srm_control = false): the
 * generator's baseline variant is everyone else in the service.
 *
 * One release: rollout.requested, ci/deploy/health/smoke ok at t0 (2026-01-05T09:00:00Z), then
 * every minute of event time two `metrics` events (baseline, canary) of the exposed cohort, at
 * the exposure the rollout publishes (rollout_exposure), with service traffic
 * R(t) = R0 (1 + 0.5 sin(2 pi t / 24 h)); diff samples, feedback and approvals as a release
 * would get them. Deadlines fire at their exact times in virtual time, as in canaryctl
 * simulate. A release ends at GA, at a halt (the decision's rule), at a rollback, or stuck at
 * t0 + 120 h. Results of JOBS forked workers come back through pipes; the same SEED gives the
 * same table whatever JOBS is (runs are seeded by scenario name and index, and both semantics
 * see the same random stream for the same run until their decisions differ).
 *
 *   bench_decisions [--help] [--list] [KEY=VALUE ...]     (the same keys from the environment)
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/engine.h"
#include "core/expr.h"
#include "core/stats.h"

static const char usage_text[] =
    "usage: bench_decisions [--help] [--list] [KEY=VALUE ...]\n"
    "\n"
    "Decision-quality Monte Carlo through the pure core: false halts of healthy releases and\n"
    "detection of injected regressions, evidence and estimate semantics side by side.\n"
    "Settings come from the environment or from KEY=VALUE arguments (arguments win):\n"
    "\n"
    "  RELEASES=1000         healthy releases per volume (seed volume, 10x less traffic)\n"
    "  REGRESSION_RUNS=200   runs per regression scenario (seed volume)\n"
    "  ESTIMATE_RELEASES=N   at most N runs per scenario for the estimate semantics\n"
    "                        (default min(RELEASES, 200))\n"
    "  SEMANTICS=both        evidence, estimate or both\n"
    "  ONLY=a,b              only scenarios whose name contains a or b (--list shows them)\n"
    "  SEED=1                random seed: the same seed gives the same table, whatever JOBS\n"
    "  JOBS=2                worker processes\n"
    "  BURST=1.5             mean errors per error incident (1: no bursts); the mean error\n"
    "                        rate stays ERROR_RATE\n"
    "  ERROR_RATE=0.0002     a healthy variant's error rate (0.02%: five times under\n"
    "                        internal_test's exit gate, 0.1%; a regression multiplies it)\n"
    "  VALUES=50             distribution values a metrics event carries per variant (at\n"
    "                        most the minute's requests; 1 .. 1000): the sample of latency\n"
    "                        and web vitals a service reports\n"
    "  PLAN=file             another plan (default: the built-in config/rollout.yaml)\n"
    "  DISPERSION=assumed    assumed: the plan's own dispersion priors (bursts are assumed\n"
    "                        until a release's reports show otherwise: a service's first\n"
    "                        release); learned: first run LEARN healthy releases at the seed\n"
    "                        volume with the same traffic, pool their baseline's dispersion\n"
    "                        steps as canaryctl dispersion does, and decide every scenario\n"
    "                        with that learned prior (a service with a history)\n"
    "  LEARN=20              healthy releases to learn from (DISPERSION=learned)\n"
    "  REPORTS=1             metrics reports a minute per variant (6: every 10 s, as the\n"
    "                        contract's example; the minute's requests are split between them\n"
    "                        and VALUES is per report)\n"
    "  TRACE=1               every decision of every run on stderr (with small counts)\n"
    "\n"
    "The table (markdown) goes to stdout, progress to stderr.\n"
    "Exit status: 0 done, 1 the plan does not load or a worker failed, 2 usage error.\n";

/* ---- settings ------------------------------------------------------------------------------ */

#define T0_MS 1767603600000LL /* 2026-01-05T09:00:00Z */
#define MINUTE_MS 60000LL
#define HOUR_MS (60 * MINUTE_MS)
#define RUN_LIMIT_MS (120 * HOUR_MS)
#define SEED_VOLUME 240000.0     /* requests a minute at the seed's volume */
#define MAX_VALUES 1000          /* distribution values per metrics event, at most (VALUES=) */
#define FULL_RELEASE_EVENTS 8800 /* a release to GA: ~73 h of two metrics events a minute */

enum { SEM_EVIDENCE, SEM_ESTIMATE, SEM_COUNT };
static const char *const sem_names[SEM_COUNT] = {"evidence", "estimate"};

struct settings {
  long releases, regression_runs, estimate_releases, jobs;
  uint64_t seed;
  bool sem[SEM_COUNT];
  const char *only;
  double burst, error_rate;
  long values; /* distribution values per metrics event (a sample of the minute's requests) */
  const char *plan_path;
  bool trace;
  long reports;    /* REPORTS=: metrics reports a minute per variant (1: one a minute) */
  bool learned;    /* DISPERSION=learned */
  long learn_runs; /* LEARN= */
};

/* ---- random numbers: xoshiro256**, seeded by splitmix64 ------------------------------------ */

struct rng {
  uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(struct rng *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform on (0, 1). */
static inline double rng_uniform(struct rng *r) {
  return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

/*
 * Quantile tables: QT_N + 1 points of a quantile function at u = (j + 0.5) / (QT_N + 1), read
 * with linear interpolation between neighbours (a continuous distribution, its tails cut at
 * about 3.9 sigma). One random number and a multiply-add a value, where exp() and a normal
 * deviate would cost ten times more: a release draws some two million values.
 */
#define QT_BITS 13
#define QT_N (1 << QT_BITS)

static double z_table[QT_N + 1]; /* the standard normal */

static inline double qt_draw(const double *t, struct rng *r) {
  uint64_t x = rng_next(r);
  size_t j = (size_t)(x >> (64 - QT_BITS));
  double f = (double)((x >> (64 - QT_BITS - 32)) & 0xffffffffULL) * 0x1.0p-32;
  return t[j] + f * (t[j + 1] - t[j]);
}

static inline double rng_normal(struct rng *r) { return qt_draw(z_table, r); }

/* Acklam's inverse of the standard normal distribution (relative error < 1.2e-9). */
static double norm_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double q, r;
  if (p < 0.02425) {
    q = sqrt(-2 * log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - 0.02425) {
    q = sqrt(-2 * log(1 - p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  q = p - 0.5;
  r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/* Lognormal value tables of the distributions: median x exp(sigma z). */
static void lognormal_table(double *t, double median, double sigma) {
  for (int j = 0; j <= QT_N; j++)
    t[j] = median * exp(sigma * z_table[j]);
}

/*
 * Binomial(n, p): exact inversion while the mean is small (the tails a 5-minute rule reads at
 * a 0.5% cohort), the normal approximation with continuity rounding from a mean of 30 on.
 */
static int64_t rng_binomial(struct rng *r, int64_t n, double p) {
  if (n <= 0 || p <= 0)
    return 0;
  if (p >= 1)
    return n;
  if (p > 0.5)
    return n - rng_binomial(r, n, 1 - p);
  double mean = (double)n * p;
  if (mean >= 30) {
    double x = floor(mean + sqrt(mean * (1 - p)) * rng_normal(r) + 0.5);
    return x < 0 ? 0 : x > (double)n ? n : (int64_t)x;
  }
  double q = 1 - p, s = p / q, a = (double)(n + 1) * s;
  double f = exp((double)n * log1p(-p)), u = rng_uniform(r);
  int64_t x = 0, cap = (int64_t)(mean + 60);
  while (u > f && x < cap && x < n) {
    u -= f;
    x++;
    f *= a / (double)x - s;
  }
  return x;
}

/* Errors of `requests`: incidents at rate / burst a request, each 1 + Geometric errors (mean
 * burst in all), so the mean rate stays `rate`. burst <= 1: independent errors. */
static int64_t rng_errors(struct rng *r, int64_t requests, double rate, double burst) {
  if (burst <= 1)
    return rng_binomial(r, requests, rate);
  int64_t m = rng_binomial(r, requests, rate / burst), extra = 0;
  double q = 1 / burst; /* success chance of the geometric: mean (1 - q) / q = burst - 1 */
  if (m < 30) {
    double l = log1p(-q);
    for (int64_t i = 0; i < m; i++)
      extra += (int64_t)floor(log(rng_uniform(r)) / l);
  } else {
    double mean = (double)m * (1 - q) / q, sd = sqrt((double)m * (1 - q)) / q;
    double x = floor(mean + sd * rng_normal(r) + 0.5);
    extra = x < 0 ? 0 : (int64_t)x;
  }
  int64_t e = m + extra;
  return e > requests ? requests : e;
}

/* ---- scenarios ----------------------------------------------------------------------------- */

enum reg {
  REG_NONE,
  REG_ERRORS,  /* canary error rate x f */
  REG_TX,      /* canary failed-transaction rate x f */
  REG_TX_RATE, /* canary failed-transaction rate = f */
  REG_ENGINE,  /* canary engine timeouts x f */
  REG_DENIALS, /* canary approval denials x f */
  REG_LATENCY, /* canary latency values x f */
  REG_LCP,     /* canary LCP values x f */
  REG_INP,     /* canary INP values x f */
  REG_CLS,     /* canary CLS values x f */
  REG_OUTAGE   /* error rate x f on both variants, for a while */
};

/* Which canary count a detection delay is counted in. */
enum unit { U_ERRORS, U_TX_FAILED, U_TIMEOUTS, U_DENIALS, U_REQUESTS, U_COUNT };
static const char *const unit_names[U_COUNT] = {"errors", "failed tx", "timeouts", "denials",
                                                "requests"};

struct kind {
  const char *name;
  enum reg reg;
  double f;
  enum unit unit;
};

static const struct kind kinds[] = {
    {"errors_x2", REG_ERRORS, 2, U_ERRORS},
    {"errors_x3", REG_ERRORS, 3, U_ERRORS},
    {"errors_x10", REG_ERRORS, 10, U_ERRORS},
    {"tx_failed_x3", REG_TX, 3, U_TX_FAILED},
    {"tx_failed_0.3%", REG_TX_RATE, 0.003, U_TX_FAILED},
    {"engine_timeouts_x3", REG_ENGINE, 3, U_TIMEOUTS},
    {"approval_denials_x3", REG_DENIALS, 3, U_DENIALS},
    {"latency_x2", REG_LATENCY, 2, U_REQUESTS},
    {"latency_x6", REG_LATENCY, 6, U_REQUESTS},
    {"lcp_x2", REG_LCP, 2, U_REQUESTS},
    {"inp_x2.5", REG_INP, 2.5, U_REQUESTS},
    {"cls_x2.5", REG_CLS, 2.5, U_REQUESTS},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

struct onset {
  const char *stage, *label;
  int64_t offset_ms;
};

static const struct onset onsets[] = {
    {"internal_test", "+0", 0}, {"internal_test", "+30m", 30 * MINUTE_MS},
    {"friendly_gp", "+0", 0},   {"friendly_gp", "+12h", 12 * HOUR_MS},
    {"beta", "+0", 0},          {"beta", "+24h", 24 * HOUR_MS},
};
#define N_ONSETS (sizeof onsets / sizeof onsets[0])

/* SC_WATCH: a release that reaches GA and goes on through the plan's watch (no holdback in the
 * built-in plan: its own history is the reference), healthy or with a regression after GA. */
enum scen_class { SC_HEALTHY, SC_REGRESSION, SC_OUTAGE, SC_WATCH };

struct scenario {
  char name[96];
  enum scen_class cls;
  double volume; /* R0: requests a minute */
  enum reg reg;
  double f;
  enum unit unit;
  int onset_stage;      /* stage index; -1: none (SC_WATCH: after GA) */
  int64_t onset_ms;     /* after the stage started */
  int64_t duration_ms;  /* 0: for the rest of the release */
  long runs[SEM_COUNT]; /* 0: not run */
  uint64_t name_hash;
};

#define MAX_SCENARIOS 128
static struct scenario scen[MAX_SCENARIOS];
static int n_scen;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}

static struct scenario *add_scenario(enum scen_class cls, double volume, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct scenario *add_scenario(enum scen_class cls, double volume, const char *fmt, ...) {
  struct scenario *s = &scen[n_scen++];
  memset(s, 0, sizeof *s);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->name, sizeof s->name, fmt, ap);
  va_end(ap);
  s->cls = cls;
  s->volume = volume;
  s->onset_stage = -1;
  s->name_hash = fnv1a(s->name);
  return s;
}

/* Returns false (with a message) when the plan lacks a stage the scenarios need. */
static bool make_scenarios(const struct plan *plan) {
  add_scenario(SC_HEALTHY, SEED_VOLUME, "healthy/seed");
  add_scenario(SC_HEALTHY, SEED_VOLUME / 10, "healthy/10x-less");
  for (size_t o = 0; o < N_ONSETS; o++) {
    int st = plan_stage_index(plan, onsets[o].stage);
    if (st < 0) {
      fprintf(stderr, "bench_decisions: the plan has no stage %s\n", onsets[o].stage);
      return false;
    }
  }
  for (size_t k = 0; k < N_KINDS; k++)
    for (size_t o = 0; o < N_ONSETS; o++) {
      struct scenario *s = add_scenario(SC_REGRESSION, SEED_VOLUME, "%s@%s%s", kinds[k].name,
                                        onsets[o].stage, onsets[o].label);
      s->reg = kinds[k].reg;
      s->f = kinds[k].f;
      s->unit = kinds[k].unit;
      s->onset_stage = plan_stage_index(plan, onsets[o].stage);
      s->onset_ms = onsets[o].offset_ms;
    }
  if (plan->watch_ms > 0) { /* the watch after GA: errors since a moment after GA */
    add_scenario(SC_WATCH, SEED_VOLUME, "watch/healthy");
    static const struct {
      const char *name;
      double f;
      int64_t after_ms;
    } w[] = {{"watch/errors_x3@ga+2h", 3, 2 * HOUR_MS},
             {"watch/errors_x10@ga+2h", 10, 2 * HOUR_MS},
             {"watch/errors_x3@ga+12h", 3, 12 * HOUR_MS}};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
      struct scenario *x = add_scenario(SC_WATCH, SEED_VOLUME, "%s", w[i].name);
      x->reg = REG_ERRORS;
      x->f = w[i].f;
      x->unit = U_ERRORS;
      x->onset_ms = w[i].after_ms;
    }
  }
  struct scenario *s =
      add_scenario(SC_OUTAGE, SEED_VOLUME, "outage_both_errors_x10_30m@friendly_gp+12h");
  s->reg = REG_OUTAGE;
  s->f = 10;
  s->unit = U_ERRORS;
  s->onset_stage = plan_stage_index(plan, "friendly_gp");
  s->onset_ms = 12 * HOUR_MS;
  s->duration_ms = 30 * MINUTE_MS;
  return true;
}

static bool only_matches(const char *only, const char *name) {
  if (!only || !*only)
    return true;
  const char *p = only;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len > 0) {
      char part[128];
      if (len >= sizeof part)
        len = sizeof part - 1;
      memcpy(part, p, len);
      part[len] = '\0';
      if (strstr(name, part))
        return true;
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  return false;
}

/* ---- one release --------------------------------------------------------------------------- */

enum outcome { OUT_NONE, OUT_GA, OUT_HALT, OUT_ROLLBACK, OUT_STUCK };

/* What a worker sends back for one run: fixed size, well under PIPE_BUF (atomic writes). */
struct result {
  int32_t scenario, sem, run;
  int32_t outcome;       /* enum outcome */
  int32_t halt_stage;    /* stage index at the halt; -1 */
  int32_t missing_data;  /* a max-duration halt whose unmet metric criteria lacked data */
  int32_t held_past_max; /* a stage passed its maximum with its gate unproven: held there */
  int32_t onset_reached;
  int32_t rejected;   /* events the engine rejected (a bench bug) */
  int32_t error;      /* the engine failed (why says how): the worker stops */
  int64_t end_ms;     /* halt, GA or stuck time, from t0 */
  int64_t onset_ms;   /* from t0; -1: not reached */
  int64_t unit_count; /* canary count of the scenario's unit from onset to the halt */
  int64_t events;     /* events applied */
  int64_t cpu_ns;
  int32_t paged;                 /* SC_WATCH: on-call paged during the watch after GA */
  int64_t page_ms;               /* when, from t0 */
  char rule[PLAN_NAME_MAX + 24]; /* the rule that halted ("stage_max_duration@beta") */
  char why[96];                  /* a rejected event's reason (the first) */
};

/* Healthy rates of one variant; a regression changes the canary's. */
struct rates {
  double err, tx_fail, eng_to, denial;
  double lat, lcp, inp, cls; /* scales of the distribution values */
};
static const struct rates healthy_default = {0.0002, 0.0001, 0.0005, 0.02, 1, 1, 1, 1};

enum { D_LATENCY, D_LCP, D_INP, D_CLS, N_DISTS };
static double dist_table[N_DISTS][QT_N + 1];
static const char *const dist_names[N_DISTS] = {"latency_ms", "webvitals_lcp_ms",
                                                "webvitals_inp_ms", "webvitals_cls"};

enum {
  C_REQUESTS,
  C_ERRORS,
  C_TX,
  C_TX_FAILED,
  C_ENGINE,
  C_TIMEOUTS,
  C_APPROVALS,
  C_DENIALS,
  N_COUNTERS
};
static const char *const counter_names[N_COUNTERS] = {
    "requests",        "errors",          "transactions", "transactions_failed",
    "engine_requests", "engine_timeouts", "approvals",    "approval_denials"};
enum { G_CPU, G_MEM, G_DB_USED, G_DB_MAX, G_ACTIVE, G_FEATURE, N_GAUGES };
static const char *const gauge_names[N_GAUGES] = {"cpu_ratio",           "memory_ratio",
                                                  "db_connections_used", "db_connections_max",
                                                  "active_users",        "feature_users"};

static struct plan plans[SEM_COUNT]; /* ~100 KiB each: not on the stack */
static struct settings cfg;

struct release {
  const struct plan *plan;
  const struct scenario *sc;
  struct engine *e;
  struct effects fx;
  struct rng rng;
  struct event ev;  /* deploy events, approvals, feedback, diff samples */
  struct event mev; /* metrics */
  struct metric_value counters[N_COUNTERS], gauges[N_GAUGES];
  struct metric_dist dists[N_DISTS];
  double values[N_DISTS][MAX_VALUES];
  struct diff_sample diff[100];
  char rollout[EVENT_NAME_MAX];
  long seq;
  int64_t stage_start[PLAN_MAX_STAGES]; /* -1: not yet */
  struct result *res;
  int err; /* CANARY_ENOMEM and the like: abort */
};

static void next_id(struct release *rl, struct event *ev) {
  snprintf(ev->id, sizeof ev->id, "r%d-%ld", rl->res->run, ++rl->seq);
}

/* The stage whose cohort is exposed (rollout.c's rule: a pending rollout serves the stage
 * before), -1 for none. */
static int exposed_stage(const struct rollout *r, int n_stages) {
  switch (r->state) {
  case ROLLOUT_COMPLETED:
    return n_stages - 1;
  case ROLLOUT_PENDING:
    return r->stage - 1;
  case ROLLOUT_RUNNING:
    return r->stage;
  case ROLLOUT_PAUSED:
    return r->resume_to == ROLLOUT_PENDING ? r->stage - 1 : r->stage;
  default:
    return -1;
  }
}

/* A max-duration halt: did its unmet metric criteria lack data (and none was plainly false)? */
static bool halt_for_missing_data(const struct plan *plan, const struct rollout *r, int64_t now) {
  int st = r->stage;
  if (st < 0 || st >= plan->n_stages)
    return false;
  const struct stage *s = &plan->stages[st];
  bool insufficient = false;
  for (int i = 0; i < s->n_exit; i++) {
    const struct criterion *c = &s->exit[i];
    if (c->check != CHECK_METRIC)
      continue;
    const struct rollout_reading *x = NULL;
    for (int k = 0; k < r->n_readings; k++)
      if (r->readings[k].kind == READING_EXIT && r->readings[k].stage == st &&
          strcmp(r->readings[k].name, c->name) == 0)
        x = &r->readings[k];
    if (!x || x->at_ms != now || x->truth == EXPR_INSUFFICIENT)
      insufficient = true; /* no data now: not evaluated */
    else if (x->truth == EXPR_FALSE)
      return false; /* a criterion plainly failed */
  }
  return insufficient;
}

/* Look at what the engine decided; note stage starts, the end of the release. */
static void take_effects(struct release *rl) {
  struct result *res = rl->res;
  struct rollout *r = rl->e->n_rollouts ? rl->e->rollouts[0] : NULL;
  for (size_t i = 0; i < rl->fx.n && res->outcome == OUT_NONE; i++) {
    const struct effect *ef = &rl->fx.items[i];
    if (ef->kind != EFFECT_DECISION)
      continue;
    const struct decision *d = &ef->u.decision;
    if (cfg.trace)
      fprintf(stderr, "%s %s run %d +%.3f h: %s %s->%s %s [%s] %s\n", rl->sc->name,
              sem_names[res->sem], res->run, (double)(d->time_ms - T0_MS) / HOUR_MS,
              decision_action_name(d->action), d->from_stage, d->to_stage,
              rollout_state_name(d->state), d->rule, d->reason);
    if (d->action == DECISION_HOLD && strcmp(d->rule, "stage_max_duration") == 0)
      res->held_past_max = 1;
    if (d->action == DECISION_HALT || d->action == DECISION_ROLLBACK) {
      res->outcome = d->action == DECISION_HALT ? OUT_HALT : OUT_ROLLBACK;
      res->end_ms = d->time_ms - T0_MS;
      res->halt_stage = r ? r->stage : -1;
      if (strcmp(d->rule, "stage_max_duration") == 0 && r) {
        snprintf(res->rule, sizeof res->rule, "%s@%s", d->rule, rl->plan->stages[r->stage].name);
        res->missing_data = halt_for_missing_data(rl->plan, r, d->time_ms);
      } else {
        snprintf(res->rule, sizeof res->rule, "%s", d->rule[0] ? d->rule : "(none)");
      }
    } else if (d->state == ROLLOUT_COMPLETED) {
      res->outcome = OUT_GA;
      res->end_ms = d->time_ms - T0_MS;
    }
  }
  /* after GA, in the watch: the first page to on-call */
  for (size_t i = 0; i < rl->fx.n && rl->sc->cls == SC_WATCH && res->outcome == OUT_GA; i++) {
    const struct effect *ef = &rl->fx.items[i];
    if (ef->kind != EFFECT_NOTIFICATION || ef->u.notification.channel != NOTIFY_ONCALL ||
        res->paged)
      continue;
    if (cfg.trace)
      fprintf(stderr, "%s run %d +%.3f h: paged [%s] %s\n", rl->sc->name, res->run,
              (double)(ef->u.notification.time_ms - T0_MS) / HOUR_MS, ef->u.notification.title,
              ef->u.notification.text);
    res->paged = 1;
    res->page_ms = ef->u.notification.time_ms - T0_MS;
    snprintf(res->rule, sizeof res->rule, "%s", ef->u.notification.title);
  }
  effects_clear(&rl->fx);
  if (r && r->state == ROLLOUT_RUNNING && rl->stage_start[r->stage] < 0)
    rl->stage_start[r->stage] = r->stage_started_ms;
  if (r && res->outcome == OUT_NONE && rollout_is_terminal(r)) { /* not through a decision? */
    res->outcome = r->state == ROLLOUT_COMPLETED ? OUT_GA : OUT_ROLLBACK;
    res->end_ms = r->clock_ms - T0_MS;
  }
}

/* Whether the run goes on: until a halt or GA, and for SC_WATCH through the watch after GA
 * (a regression's run ends at its page). */
static bool still_running(const struct release *rl) {
  const struct result *res = rl->res;
  if (rl->err)
    return false;
  if (res->outcome == OUT_NONE)
    return true;
  const struct rollout *r = rl->e->n_rollouts ? rl->e->rollouts[0] : NULL;
  return rl->sc->cls == SC_WATCH && res->outcome == OUT_GA && r && r->watching &&
         !(res->paged && rl->sc->reg != REG_NONE);
}

static void apply(struct release *rl, const struct event *ev) {
  enum apply_outcome outcome;
  char why[256];
  rl->res->events++;
  int rc = engine_apply(rl->e, ev, ev->time_ms, &rl->fx, &outcome, why, sizeof why);
  if (rc != CANARY_OK) {
    rl->err = rc;
    return;
  }
  if (outcome == APPLY_REJECTED && rl->res->rejected++ == 0)
    snprintf(rl->res->why, sizeof rl->res->why, "%s %s: %s", event_type_name(ev->type), ev->id,
             why);
  take_effects(rl);
}

static void fire_until(struct release *rl, int64_t t) {
  while (still_running(rl)) {
    int64_t d = engine_next_deadline(rl->e);
    if (d > t)
      return;
    int rc = engine_tick(rl->e, d, &rl->fx);
    if (rc != CANARY_OK) {
      rl->err = rc;
      return;
    }
    take_effects(rl);
  }
}

static void simple_event(struct release *rl, enum event_type type, int64_t t) {
  struct event *ev = &rl->ev;
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  next_id(rl, ev);
  snprintf(ev->rollout, sizeof ev->rollout, "%s", rl->rollout);
  ev->time_ms = t;
  ev->ok = true;
}

/* One metrics event of a variant over [t - 1 min, t). Returns the count of `unit` in it. */
static int64_t metrics_event(struct release *rl, int cohort, enum variant v, int64_t requests,
                             const struct rates *x, int64_t t, enum unit unit) {
  struct rng *g = &rl->rng;
  struct event *ev = &rl->mev;
  next_id(rl, ev);
  ev->time_ms = t;
  if (strcmp(ev->cohort, rl->plan->stages[cohort].name) != 0)
    snprintf(ev->cohort, sizeof ev->cohort, "%s", rl->plan->stages[cohort].name);
  ev->metrics.variant = v;
  int64_t c[N_COUNTERS];
  c[C_REQUESTS] = requests;
  c[C_ERRORS] = rng_errors(g, requests, x->err, cfg.burst);
  c[C_TX] = rng_binomial(g, requests, 0.06);
  c[C_TX_FAILED] = rng_binomial(g, c[C_TX], x->tx_fail);
  c[C_ENGINE] = rng_binomial(g, requests, 0.2);
  c[C_TIMEOUTS] = rng_binomial(g, c[C_ENGINE], x->eng_to);
  c[C_APPROVALS] = rng_binomial(g, requests, 0.02);
  c[C_DENIALS] = rng_binomial(g, c[C_APPROVALS], x->denial);
  for (int i = 0; i < N_COUNTERS; i++)
    rl->counters[i].value = (double)c[i];
  double db = floor(40 + 3 * rng_normal(g) + 0.5);
  rl->gauges[G_CPU].value = 0.45 + 0.02 * rng_normal(g);
  rl->gauges[G_MEM].value = 0.6 + 0.02 * rng_normal(g);
  rl->gauges[G_DB_USED].value = db < 0 ? 0 : db;
  rl->gauges[G_DB_MAX].value = 100;
  rl->gauges[G_ACTIVE].value = 2000;
  rl->gauges[G_FEATURE].value = 600;
  size_t n = requests < cfg.values ? (size_t)requests : (size_t)cfg.values;
  const double scale[N_DISTS] = {x->lat, x->lcp, x->inp, x->cls};
  for (int k = 0; k < N_DISTS; k++) {
    for (size_t i = 0; i < n; i++)
      rl->values[k][i] = scale[k] * qt_draw(dist_table[k], g);
    rl->dists[k].n = n;
  }
  ev->metrics.n_dists = n ? N_DISTS : 0;
  apply(rl, ev);
  switch (unit) {
  case U_ERRORS:
    return c[C_ERRORS];
  case U_TX_FAILED:
    return c[C_TX_FAILED];
  case U_TIMEOUTS:
    return c[C_TIMEOUTS];
  case U_DENIALS:
    return c[C_DENIALS];
  default:
    return c[C_REQUESTS];
  }
}

static void init_metrics_event(struct release *rl) {
  struct event *ev = &rl->mev;
  memset(ev, 0, sizeof *ev);
  ev->type = EVENT_METRICS;
  snprintf(ev->rollout, sizeof ev->rollout, "%s", rl->rollout);
  for (int i = 0; i < N_COUNTERS; i++)
    rl->counters[i].name = counter_names[i];
  for (int i = 0; i < N_GAUGES; i++)
    rl->gauges[i].name = gauge_names[i];
  for (int k = 0; k < N_DISTS; k++) {
    rl->dists[k].name = dist_names[k];
    rl->dists[k].values = rl->values[k];
  }
  ev->metrics.interval_ms = MINUTE_MS / cfg.reports;
  ev->metrics.counters = rl->counters;
  ev->metrics.n_counters = N_COUNTERS;
  ev->metrics.gauges = rl->gauges;
  ev->metrics.n_gauges = N_GAUGES;
  ev->metrics.dists = rl->dists;
}

static int64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t run_seed(const struct scenario *sc, long run) {
  uint64_t x = cfg.seed ^ sc->name_hash;
  x ^= splitmix64(&x) + (uint64_t)run * 0xd1b54a32d192ed03ULL;
  return splitmix64(&x);
}

/* Returns CANARY_OK, or an error of the engine (res->why says which). */
/*
 * DISPERSION=learned: what the learning releases' baselines said about each counter's
 * dispersion (mstore_dispersion_steps), pooled — canaryctl dispersion's arithmetic.
 */
static char learned_text[512]; /* for the table's header */
static struct {
  bool on;
  int n;
  char counter[MSTORE_MAX_PAIRS][PLAN_NAME_MAX];
  double sum[MSTORE_MAX_PAIRS], k[MSTORE_MAX_PAIRS];
} learn;

static void learn_from(const struct engine *e) {
  if (!learn.on || e->n_rollouts != 1)
    return;
  const struct mstore *ms = &e->metrics[0]->ms;
  for (int i = 0; i < ms->cfg.n_pairs; i++) {
    const char *num = ms->cfg.pairs[i].num;
    int j = 0;
    while (j < learn.n && strcmp(learn.counter[j], num))
      j++;
    if (j == learn.n) {
      if (learn.n == MSTORE_MAX_PAIRS)
        continue;
      snprintf(learn.counter[learn.n++], PLAN_NAME_MAX, "%s", num);
    }
    double sum, k;
    mstore_dispersion_steps(ms, num, &sum, &k);
    learn.sum[j] += sum;
    learn.k[j] += k;
  }
}

static int run_release(struct release *rl, struct engine *e, int si, int sem, long run,
                       struct result *res) {
  const struct scenario *sc = &scen[si];
  const struct plan *plan = &plans[sem];
  int64_t t0 = cpu_ns();
  memset(res, 0, sizeof *res);
  res->scenario = si;
  res->sem = sem;
  res->run = (int32_t)run;
  res->halt_stage = -1;
  res->onset_ms = -1;
  rl->plan = plan;
  rl->sc = sc;
  rl->e = e;
  rl->res = res;
  rl->seq = 0;
  rl->err = CANARY_OK;
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    rl->stage_start[i] = -1;
  rng_seed(&rl->rng, run_seed(sc, run));
  snprintf(rl->rollout, sizeof rl->rollout, "web-2.1.0-r%ld", run);
  if (engine_init(e, plan) != CANARY_OK) {
    res->error = 1;
    snprintf(res->why, sizeof res->why, "engine_init: %s", e->error);
    engine_destroy(e);
    return CANARY_EINVALID;
  }
  init_metrics_event(rl);

  /* CI announces the release; the deployment, its health and its smoke tests are fine. */
  simple_event(rl, EVENT_ROLLOUT_REQUESTED, T0_MS);
  snprintf(rl->ev.service, sizeof rl->ev.service, "web");
  snprintf(rl->ev.version, sizeof rl->ev.version, "2.1.0");
  snprintf(rl->ev.baseline_version, sizeof rl->ev.baseline_version, "2.0.3");
  apply(rl, &rl->ev);
  simple_event(rl, EVENT_CI_COMPLETED, T0_MS + 1000);
  apply(rl, &rl->ev);
  simple_event(rl, EVENT_DEPLOY_COMPLETED, T0_MS + 2000);
  apply(rl, &rl->ev);
  simple_event(rl, EVENT_HEALTH_CHECKED, T0_MS + 3000);
  apply(rl, &rl->ev);
  simple_event(rl, EVENT_SMOKE_COMPLETED, T0_MS + 4000);
  rl->ev.passed = 10;
  rl->ev.failed = 0;
  apply(rl, &rl->ev);

  if (e->n_rollouts != 1) {
    char why[sizeof res->why];
    snprintf(why, sizeof why, "%s", res->why);
    res->error = 1;
    snprintf(res->why, sizeof res->why, "the rollout was not created: %s", why);
    engine_destroy(e);
    return CANARY_EINVALID;
  }
  int fgp = plan_stage_index(plan, "friendly_gp"), beta = plan_stage_index(plan, "beta");
  int64_t next_diff = -1;
  bool feedback_sent = false, approvals_sent = false;
  for (int64_t k = 1; still_running(rl); k++) {
    int64_t t = T0_MS + k * MINUTE_MS, from = t - MINUTE_MS;
    if (t - T0_MS > RUN_LIMIT_MS && res->outcome == OUT_NONE) {
      res->outcome = OUT_STUCK;
      res->end_ms = RUN_LIMIT_MS;
      break;
    }
    /* The interval [from, t) is served as the rollout stood at its start. */
    const struct rollout *r = e->rollouts[0];
    double exposure = rollout_exposure(r, plan, &e->global);
    int xs = exposed_stage(r, plan->n_stages);
    int at_stage = r->state == ROLLOUT_RUNNING ? r->stage : -1;
    int64_t fgp_start = fgp >= 0 ? rl->stage_start[fgp] : -1;
    int64_t beta_start = beta >= 0 ? rl->stage_start[beta] : -1;

    /* The regression: from its onset on (for a while, for an outage). */
    bool active = false;
    if (sc->cls == SC_WATCH && sc->reg != REG_NONE && res->outcome == OUT_GA) {
      if (res->onset_ms < 0 && from >= T0_MS + res->end_ms + sc->onset_ms) {
        res->onset_ms = from - T0_MS;
        res->onset_reached = 1;
      }
      active = res->onset_ms >= 0;
    } else if (sc->onset_stage >= 0 && rl->stage_start[sc->onset_stage] >= 0) {
      int64_t on = rl->stage_start[sc->onset_stage] + sc->onset_ms;
      if (res->onset_ms < 0 && from >= on) {
        res->onset_ms = from - T0_MS;
        res->onset_reached = 1;
      }
      active = res->onset_ms >= 0 &&
               (sc->duration_ms == 0 || from < T0_MS + res->onset_ms + sc->duration_ms);
    }

    fire_until(rl, t);
    if (!still_running(rl))
      break;

    if (exposure > 0 && xs >= 0) {
      double tod = (double)(t - T0_MS) / (double)(24 * HOUR_MS);
      int64_t total = (int64_t)floor(sc->volume * (1 + 0.5 * sin(2 * M_PI * tod)) + 0.5);
      int64_t canary = rng_binomial(&rl->rng, total, exposure / 100);
      struct rates cr = healthy_default, br = healthy_default;
      cr.err = br.err = cfg.error_rate;
      if (active) {
        switch (sc->reg) {
        case REG_ERRORS:
          cr.err *= sc->f;
          break;
        case REG_TX:
          cr.tx_fail *= sc->f;
          break;
        case REG_TX_RATE:
          cr.tx_fail = sc->f;
          break;
        case REG_ENGINE:
          cr.eng_to *= sc->f;
          break;
        case REG_DENIALS:
          cr.denial *= sc->f;
          break;
        case REG_LATENCY:
          cr.lat *= sc->f;
          break;
        case REG_LCP:
          cr.lcp *= sc->f;
          break;
        case REG_INP:
          cr.inp *= sc->f;
          break;
        case REG_CLS:
          cr.cls *= sc->f;
          break;
        case REG_OUTAGE:
          cr.err *= sc->f;
          br.err *= sc->f;
          break;
        case REG_NONE:
          break;
        }
      }
      /* The baseline first: the canary's report triggers the rules at once, on both. With
       * REPORTS > 1 the minute's requests are split between its reports, sent in turn. */
      int64_t b_left = total - canary, c_left = canary;
      for (long j = 0; j < cfg.reports && still_running(rl); j++) {
        int64_t tj = from + (j + 1) * (MINUTE_MS / cfg.reports), left = cfg.reports - j;
        int64_t bj = j + 1 == cfg.reports ? b_left : rng_binomial(&rl->rng, b_left, 1.0 / left);
        int64_t cj = j + 1 == cfg.reports ? c_left : rng_binomial(&rl->rng, c_left, 1.0 / left);
        b_left -= bj, c_left -= cj;
        if (j > 0)
          fire_until(rl, tj);
        if (!still_running(rl))
          break;
        metrics_event(rl, xs, VARIANT_BASELINE, bj, &br, tj, sc->unit);
        if (!still_running(rl))
          break;
        int64_t n = metrics_event(rl, xs, VARIANT_CANARY, cj, &cr, tj, sc->unit);
        if (res->onset_ms >= 0)
          res->unit_count += n;
      }
      if (!still_running(rl))
        break;
    }

    /* Friendly GP: canary diff samples every 30 minutes, positive feedback after 2 hours. */
    if (at_stage == fgp && fgp_start >= 0) {
      if (next_diff < 0)
        next_diff = fgp_start + 30 * MINUTE_MS;
      if (t >= next_diff) {
        next_diff += 30 * MINUTE_MS;
        simple_event(rl, EVENT_DIFF_SAMPLES, t);
        snprintf(rl->ev.cohort, sizeof rl->ev.cohort, "%s", plan->stages[fgp].name);
        for (int i = 0; i < 100; i++) {
          struct diff_sample *d = &rl->diff[i];
          d->input = (double)i;
          d->stable = 100 * (1 + rng_uniform(&rl->rng));
          d->canary = rng_uniform(&rl->rng) < 0.001 ? d->stable * 1.05 : d->stable;
        }
        rl->ev.diff.samples = rl->diff;
        rl->ev.diff.n = 100;
        apply(rl, &rl->ev);
      }
      if (!feedback_sent && res->outcome == OUT_NONE && t >= fgp_start + 2 * HOUR_MS) {
        feedback_sent = true;
        simple_event(rl, EVENT_FEEDBACK_RECEIVED, t);
        snprintf(rl->ev.cohort, sizeof rl->ev.cohort, "%s", plan->stages[fgp].name);
        rl->ev.sentiment = SENTIMENT_POSITIVE;
        snprintf(rl->ev.actor, sizeof rl->ev.actor, "pilot-partner");
        apply(rl, &rl->ev);
      }
    }
    /* Beta: the product owner, support and docs sign off an hour in. */
    if (at_stage == beta && beta_start >= 0 && !approvals_sent && t >= beta_start + HOUR_MS) {
      approvals_sent = true;
      static const char *const actors[APPROVAL_ROLE_COUNT] = {"po", "support-lead", "docs"};
      for (int role = 0; role < APPROVAL_ROLE_COUNT && res->outcome == OUT_NONE; role++) {
        simple_event(rl, EVENT_APPROVAL_GRANTED, t);
        rl->ev.role = (enum approval_role)role;
        snprintf(rl->ev.actor, sizeof rl->ev.actor, "%s", actors[role]);
        apply(rl, &rl->ev);
      }
    }
  }
  int rc = rl->err;
  if (rc != CANARY_OK) {
    res->error = 1;
    snprintf(res->why, sizeof res->why, "engine: %s", canary_strerror(rc));
  }
  learn_from(e);
  effects_clear(&rl->fx);
  engine_destroy(e);
  res->cpu_ns = cpu_ns() - t0;
  return rc;
}

/* ---- workers ------------------------------------------------------------------------------- */

static bool write_all(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    b += w;
    n -= (size_t)w;
  }
  return true;
}

/* Worker w of jobs: runs w, w + jobs, ... of every scenario and semantics, in table order. */
static int worker(int w, int jobs, int fd) {
  static struct release rl;
  struct engine *e = calloc(1, sizeof *e);
  if (!e)
    return 1;
  rl.fx = (struct effects)EFFECTS_INIT;
  for (int si = 0; si < n_scen; si++)
    for (int sem = 0; sem < SEM_COUNT; sem++)
      for (long run = w; run < scen[si].runs[sem]; run += jobs) {
        struct result res;
        int rc = run_release(&rl, e, si, sem, run, &res);
        if (!write_all(fd, &res, sizeof res))
          return 1;
        if (rc != CANARY_OK)
          return 1;
      }
  effects_free(&rl.fx);
  free(e);
  return 0;
}

/* ---- results ------------------------------------------------------------------------------- */

struct group {
  int scenario, sem;
  long n, done, halted;
  struct result *res; /* n of them, by run index */
};

static struct group *groups;
static int n_groups;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of n sorted values. */
static int64_t quantile(const int64_t *v, long n, double q) {
  long i = (long)ceil(q * (double)n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

struct count {
  char rule[sizeof((struct result *)0)->rule];
  long n;
};

static int cmp_count(const void *a, const void *b) {
  const struct count *x = a, *y = b;
  return x->n != y->n ? (x->n < y->n ? 1 : -1) : strcmp(x->rule, y->rule);
}

/* "rule n, rule n, ..." of the results that pass keep(), most first; at most max rules. */
static void rule_counts(const struct group *g, bool (*keep)(const struct result *), int max,
                        char *buf, size_t len) {
  struct count c[64];
  int n = 0;
  for (long i = 0; i < g->n; i++) {
    const struct result *r = &g->res[i];
    if (!keep(r))
      continue;
    int k = 0;
    while (k < n && strcmp(c[k].rule, r->rule))
      k++;
    if (k == n) {
      if (n == 64)
        continue;
      snprintf(c[n].rule, sizeof c[n].rule, "%s", r->rule);
      c[n++].n = 0;
    }
    c[k].n++;
  }
  qsort(c, (size_t)n, sizeof c[0], cmp_count);
  size_t used = 0;
  buf[0] = '\0';
  if (n == 0)
    snprintf(buf, len, "-");
  for (int k = 0; k < n && k < max && used < len; k++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s %ld", k ? ", " : "", c[k].rule, c[k].n);
  if (n > max && used < len)
    snprintf(buf + used, len - used, ", +%d more", n - max);
}

static bool is_halt(const struct result *r) {
  return r->outcome == OUT_HALT || r->outcome == OUT_ROLLBACK;
}
static bool watch_paged(const struct result *r) { return r->outcome == OUT_GA && r->paged; }

static bool is_detection(const struct result *r) {
  return is_halt(r) && r->onset_reached && r->end_ms >= r->onset_ms;
}

/* A table: rows of cells, printed as markdown with padded columns. */
#define MAX_COLS 12
struct table {
  int n_cols, n_rows, cap;
  char (*cells)[MAX_COLS][160];
};

static void table_row(struct table *t, const char *const *cells) {
  if (t->n_rows == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 16;
    t->cells = realloc(t->cells, (size_t)t->cap * sizeof *t->cells);
    if (!t->cells) {
      perror("bench_decisions");
      exit(1);
    }
  }
  for (int c = 0; c < t->n_cols; c++)
    snprintf(t->cells[t->n_rows][c], sizeof t->cells[0][0], "%s", cells[c] ? cells[c] : "");
  t->n_rows++;
}

/* Display width: UTF-8 continuation bytes take no column. */
static int width(const char *s) {
  int w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

static void table_print(const struct table *t) {
  int w[MAX_COLS] = {0};
  for (int r = 0; r < t->n_rows; r++)
    for (int c = 0; c < t->n_cols; c++)
      if (width(t->cells[r][c]) > w[c])
        w[c] = width(t->cells[r][c]);
  for (int r = 0; r < t->n_rows; r++) {
    for (int c = 0; c < t->n_cols; c++)
      printf("| %s%*s ", t->cells[r][c], w[c] - width(t->cells[r][c]), "");
    printf("|\n");
    if (r == 0) {
      for (int c = 0; c < t->n_cols; c++) {
        putchar('|');
        for (int k = 0; k < w[c] + 2; k++)
          putchar('-');
      }
      printf("|\n");
    }
  }
  free(t->cells);
}

static const char *fmt_pct(char *buf, size_t len, long x, long n) {
  if (n == 0)
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%.1f%% (%ld)", 100.0 * (double)x / (double)n, x);
  return buf;
}

static void print_healthy(void) {
  struct table t = {.n_cols = 11};
  table_row(&t, (const char *const[]){"scenario", "semantics", "N", "false halts", "95% upper",
                                      "halts by rule", "missing-data halts", "held past a max",
                                      "stuck", "GA p50 (h)", "CPU ms/run"});
  for (int gi = 0; gi < n_groups; gi++) {
    const struct group *g = &groups[gi];
    const struct scenario *sc = &scen[g->scenario];
    if (sc->cls != SC_HEALTHY)
      continue;
    long halted = 0, missing = 0, stuck = 0, ga = 0, held = 0;
    int64_t *ga_ms = malloc((size_t)(g->n ? g->n : 1) * sizeof *ga_ms);
    double cpu = 0;
    if (!ga_ms)
      exit(1);
    for (long i = 0; i < g->n; i++) {
      const struct result *r = &g->res[i];
      halted += is_halt(r);
      missing += is_halt(r) && r->missing_data;
      stuck += r->outcome == OUT_STUCK;
      held += r->held_past_max;
      if (r->outcome == OUT_GA)
        ga_ms[ga++] = r->end_ms;
      cpu += (double)r->cpu_ns;
    }
    qsort(ga_ms, (size_t)ga, sizeof *ga_ms, cmp_i64);
    char n[24], fh[48], up[24], rules[160], miss[24], st[24], gap[24], ms[24], hd[48];
    snprintf(n, sizeof n, "%ld", g->n);
    fmt_pct(fh, sizeof fh, halted, g->n);
    snprintf(up, sizeof up, "%.2f%%",
             100 * stats_clopper_pearson_upper((uint64_t)halted, (uint64_t)g->n, 0.05));
    rule_counts(g, is_halt, 4, rules, sizeof rules);
    snprintf(miss, sizeof miss, "%ld", missing);
    snprintf(st, sizeof st, "%ld", stuck);
    fmt_pct(hd, sizeof hd, held, g->n);
    if (ga)
      snprintf(gap, sizeof gap, "%.1f", (double)quantile(ga_ms, ga, 0.5) / HOUR_MS);
    else
      snprintf(gap, sizeof gap, "-");
    snprintf(ms, sizeof ms, "%.1f", g->n ? cpu / (double)g->n / 1e6 : 0);
    table_row(&t, (const char *const[]){sc->name, sem_names[g->sem], n, fh, up, rules, miss, hd, st,
                                        gap, ms});
    free(ga_ms);
  }
  if (t.n_rows > 1) {
    printf("\n### Healthy releases: false halts\n\n");
    table_print(&t);
  } else {
    free(t.cells);
  }
}

static void print_regressions(enum scen_class cls) {
  struct table t = {.n_cols = cls == SC_REGRESSION ? 11 : 8};
  if (cls == SC_REGRESSION)
    table_row(&t, (const char *const[]){"scenario", "semantics", "N", "halted",
                                        "halted before onset", "onset reached", "detected",
                                        "detected by", "delay p50 / p90 (min)",
                                        "delay p50 / p90 (canary)", "missed: GA / stuck"});
  else
    table_row(&t, (const char *const[]){"scenario", "semantics", "N", "onset reached",
                                        "halted before onset", "halted after onset", "halted by",
                                        "delay p50 / p90 (min)"});
  for (int gi = 0; gi < n_groups; gi++) {
    const struct group *g = &groups[gi];
    const struct scenario *sc = &scen[g->scenario];
    if (sc->cls != cls)
      continue;
    long reached = 0, before = 0, det = 0, ga = 0, stuck = 0;
    int64_t *dmin = malloc((size_t)(g->n ? g->n : 1) * sizeof *dmin);
    int64_t *dev = malloc((size_t)(g->n ? g->n : 1) * sizeof *dev);
    if (!dmin || !dev)
      exit(1);
    for (long i = 0; i < g->n; i++) {
      const struct result *r = &g->res[i];
      if (is_halt(r) && !is_detection(r)) {
        before++;
        continue;
      }
      if (!r->onset_reached)
        continue;
      reached++;
      if (is_detection(r)) {
        dmin[det] = r->end_ms - r->onset_ms;
        dev[det++] = r->unit_count;
      } else {
        ga += r->outcome == OUT_GA;
        stuck += r->outcome == OUT_STUCK;
      }
    }
    qsort(dmin, (size_t)det, sizeof *dmin, cmp_i64);
    qsort(dev, (size_t)det, sizeof *dev, cmp_i64);
    char n[24], hl[48], on[48], bf[48], dt[48], rules[160], d1[64], d2[80], miss[48];
    snprintf(n, sizeof n, "%ld", g->n);
    fmt_pct(hl, sizeof hl, before + det, g->n);
    fmt_pct(on, sizeof on, reached, g->n);
    fmt_pct(bf, sizeof bf, before, g->n);
    fmt_pct(dt, sizeof dt, det, reached);
    rule_counts(g, is_detection, 3, rules, sizeof rules);
    if (det) {
      snprintf(d1, sizeof d1, "%.0f / %.0f", (double)quantile(dmin, det, 0.5) / MINUTE_MS,
               (double)quantile(dmin, det, 0.9) / MINUTE_MS);
      snprintf(d2, sizeof d2, "%" PRId64 " / %" PRId64 " %s", quantile(dev, det, 0.5),
               quantile(dev, det, 0.9), unit_names[sc->unit]);
    } else {
      snprintf(d1, sizeof d1, "-");
      snprintf(d2, sizeof d2, "-");
    }
    snprintf(miss, sizeof miss, "%ld / %ld", ga, stuck);
    if (cls == SC_REGRESSION)
      table_row(&t, (const char *const[]){sc->name, sem_names[g->sem], n, hl, bf, on, dt, rules, d1,
                                          d2, miss});
    else
      table_row(&t, (const char *const[]){sc->name, sem_names[g->sem], n, on, bf, dt, rules, d1});
    free(dmin);
    free(dev);
  }
  if (t.n_rows > 1) {
    if (cls == SC_REGRESSION)
      printf("\n### Regressions in the canary: detection (seed volume)\n\n");
    else
      printf("\n### Outage on both variants (not the release's fault: nothing should halt)\n\n");
    table_print(&t);
  } else {
    free(t.cells);
  }
}

/*
 * The watch after GA (no holdback: the release against its own history). Healthy: the share of
 * releases that reached GA and then paged on-call during the watch (a false page). Regressions
 * after GA: the share paged after the onset, and how long it took.
 */
static void print_watch(void) {
  struct table t = {.n_cols = 8};
  table_row(&t, (const char *const[]){"scenario", "N", "reached GA", "paged during the watch",
                                      "95% upper", "paged by", "delay p50 / p90 (min)",
                                      "delay p50 / p90 (canary)"});
  for (int gi = 0; gi < n_groups; gi++) {
    const struct group *g = &groups[gi];
    const struct scenario *sc = &scen[g->scenario];
    if (sc->cls != SC_WATCH || g->n == 0)
      continue;
    long ga = 0, paged = 0, det = 0;
    int64_t *dmin = malloc((size_t)g->n * sizeof *dmin), *dev = malloc((size_t)g->n * sizeof *dev);
    if (!dmin || !dev)
      exit(1);
    for (long i = 0; i < g->n; i++) {
      const struct result *r = &g->res[i];
      if (r->outcome != OUT_GA)
        continue;
      ga++;
      paged += r->paged;
      if (r->paged && r->onset_reached && r->page_ms >= r->onset_ms) {
        dmin[det] = r->page_ms - r->onset_ms;
        dev[det++] = r->unit_count;
      }
    }
    qsort(dmin, (size_t)det, sizeof *dmin, cmp_i64);
    qsort(dev, (size_t)det, sizeof *dev, cmp_i64);
    char n[24], gs[48], ps[48], ub[24], rules[160], d1[64] = "-", d2[80] = "-";
    snprintf(n, sizeof n, "%ld", g->n);
    fmt_pct(gs, sizeof gs, ga, g->n);
    fmt_pct(ps, sizeof ps, paged, ga);
    snprintf(ub, sizeof ub, "%.2f%%",
             ga ? 100 * stats_clopper_pearson_upper((uint64_t)paged, (uint64_t)ga, 0.05) : 100.0);
    rule_counts(g, watch_paged, 3, rules, sizeof rules);
    if (det) {
      snprintf(d1, sizeof d1, "%.0f / %.0f", (double)quantile(dmin, det, 0.5) / MINUTE_MS,
               (double)quantile(dmin, det, 0.9) / MINUTE_MS);
      snprintf(d2, sizeof d2, "%" PRId64 " / %" PRId64 " %s", quantile(dev, det, 0.5),
               quantile(dev, det, 0.9), unit_names[sc->unit]);
    }
    table_row(&t, (const char *const[]){sc->name, n, gs, ps, sc->reg ? "" : ub, rules, d1, d2});
    free(dmin);
    free(dev);
  }
  if (t.n_rows > 1) {
    printf("\n### After GA: the watch without a holdback (the release against its own history)"
           "\n\n");
    table_print(&t);
  } else {
    free(t.cells);
  }
}

/* ---- progress ------------------------------------------------------------------------------ */

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct progress {
  bool tty;
  long total, done;
  double last;
  int last_decile;
};

static void progress_line(const struct progress *p, char *buf, size_t len) {
  int gi = 0;
  while (gi < n_groups - 1 && groups[gi].done == groups[gi].n)
    gi++;
  const struct group *g = &groups[gi];
  snprintf(buf, len, "[%3.0f%%] %s %s: %ld/%ld releases, %ld halted",
           p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, scen[g->scenario].name,
           sem_names[g->sem], g->done, g->n, g->halted);
}

static void progress_update(struct progress *p, bool final) {
  char line[200];
  if (p->tty) {
    double now = mono_s();
    if (!final && now - p->last < 0.5)
      return;
    p->last = now;
    if (final) {
      fprintf(stderr, "\r\033[K");
      return;
    }
    progress_line(p, line, sizeof line);
    fprintf(stderr, "\r\033[K%s", line);
    return;
  }
  int decile = p->total ? (int)(10 * p->done / p->total) : 10;
  if (decile > p->last_decile || final) {
    if (!final || decile > p->last_decile) {
      progress_line(p, line, sizeof line);
      fprintf(stderr, "%s\n", line);
    }
    p->last_decile = decile;
  }
}

/* ---- main ---------------------------------------------------------------------------------- */

static bool parse_long(const char *key, const char *v, long min, long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < min) {
    fprintf(stderr, "bench_decisions: %s=%s: not a number >= %ld (--help)\n", key, v, min);
    return false;
  }
  *out = x;
  return true;
}

static bool set_key(const char *key, const char *v, bool *est_set) {
  if (!strcmp(key, "RELEASES"))
    return parse_long(key, v, 0, &cfg.releases);
  if (!strcmp(key, "REGRESSION_RUNS"))
    return parse_long(key, v, 0, &cfg.regression_runs);
  if (!strcmp(key, "ESTIMATE_RELEASES")) {
    *est_set = true;
    return parse_long(key, v, 0, &cfg.estimate_releases);
  }
  if (!strcmp(key, "JOBS"))
    return parse_long(key, v, 1, &cfg.jobs) &&
           (cfg.jobs <= 256 ||
            (fprintf(stderr, "bench_decisions: JOBS=%s: at most 256\n", v), false));
  if (!strcmp(key, "SEED")) {
    char *end;
    errno = 0;
    cfg.seed = strtoull(v, &end, 0);
    if (errno || end == v || *end) {
      fprintf(stderr, "bench_decisions: SEED=%s: not a number (--help)\n", v);
      return false;
    }
    return true;
  }
  if (!strcmp(key, "SEMANTICS")) {
    bool ev = !strcmp(v, "evidence") || !strcmp(v, "both");
    bool es = !strcmp(v, "estimate") || !strcmp(v, "both");
    if (!ev && !es) {
      fprintf(stderr, "bench_decisions: SEMANTICS=%s: evidence, estimate or both\n", v);
      return false;
    }
    cfg.sem[SEM_EVIDENCE] = ev;
    cfg.sem[SEM_ESTIMATE] = es;
    return true;
  }
  if (!strcmp(key, "TRACE")) {
    cfg.trace = strcmp(v, "") && strcmp(v, "0");
    return true;
  }
  if (!strcmp(key, "ONLY")) {
    cfg.only = v;
    return true;
  }
  if (!strcmp(key, "PLAN")) {
    cfg.plan_path = *v ? v : NULL;
    return true;
  }
  if (!strcmp(key, "ERROR_RATE")) {
    char *end;
    double r = strtod(v, &end);
    if (end == v || *end || !(r >= 0) || r > 0.05) {
      fprintf(stderr, "bench_decisions: ERROR_RATE=%s: a rate in 0 .. 0.05 (--help)\n", v);
      return false;
    }
    cfg.error_rate = r;
    return true;
  }
  if (!strcmp(key, "BURST")) {
    char *end;
    double b = strtod(v, &end);
    if (end == v || *end || !(b >= 1) || b > 1000) {
      fprintf(stderr, "bench_decisions: BURST=%s: a mean of at least 1 (--help)\n", v);
      return false;
    }
    cfg.burst = b;
    return true;
  }
  if (!strcmp(key, "REPORTS")) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > 60 || 60 % n) {
      fprintf(stderr,
              "bench_decisions: REPORTS=%s: a divisor of 60 (1, 2, 3, 4, 6, ... 60) "
              "(--help)\n",
              v);
      return false;
    }
    cfg.reports = n;
    return true;
  }
  if (!strcmp(key, "DISPERSION")) {
    if (strcmp(v, "assumed") && strcmp(v, "learned")) {
      fprintf(stderr, "bench_decisions: DISPERSION=%s: assumed or learned (--help)\n", v);
      return false;
    }
    cfg.learned = !strcmp(v, "learned");
    return true;
  }
  if (!strcmp(key, "LEARN")) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > 100000) {
      fprintf(stderr, "bench_decisions: LEARN=%s: a count in 1 .. 100000 (--help)\n", v);
      return false;
    }
    cfg.learn_runs = n;
    return true;
  }
  if (!strcmp(key, "VALUES")) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > MAX_VALUES) {
      fprintf(stderr, "bench_decisions: VALUES=%s: a count in 1 .. %d (--help)\n", v, MAX_VALUES);
      return false;
    }
    cfg.values = n;
    return true;
  }
  fprintf(stderr, "bench_decisions: unknown setting %s (--help)\n", key);
  return false;
}

static const char *decide_name(enum plan_decide d) {
  switch (d) {
#define XX(name, wire)                                                                             \
  case PLAN_DECIDE_##name:                                                                         \
    return wire;
    PLAN_DECIDE_MAP(XX)
#undef XX
  }
  return "?";
}

/*
 * DISPERSION=learned: run cfg.learn_runs healthy releases at the seed's volume (seeds of their
 * own, apart from every scenario's), pool their baselines' dispersion steps, and give the
 * evidence plan what canaryctl dispersion would print for that service: each counter's mean
 * step, weighing its reports (at most 10,000). Returns false when a release failed.
 */
static bool learn_dispersion(void) {
  int si = 0;
  while (si < n_scen && strcmp(scen[si].name, "healthy/seed"))
    si++;
  struct engine *e = calloc(1, sizeof *e);
  static struct release rl;
  if (si == n_scen || !e)
    return free(e), false;
  rl.fx = (struct effects)EFFECTS_INIT;
  learn.on = true;
  bool ok = true;
  for (long run = 0; ok && run < cfg.learn_runs; run++) {
    struct result res;
    ok = run_release(&rl, e, si, SEM_EVIDENCE, 1000000000L + run, &res) == CANARY_OK;
  }
  learn.on = false;
  effects_free(&rl.fx);
  free(e);
  if (!ok) {
    fprintf(stderr, "bench_decisions: a learning release failed\n");
    return false;
  }
  struct plan *p = &plans[SEM_EVIDENCE];
  fprintf(stderr, "dispersion learned from %ld healthy releases:", cfg.learn_runs);
  for (int j = 0; j < learn.n && j < PLAN_MAX_DISPERSION; j++) {
    if (!(learn.k[j] > 0))
      continue;
    double phi = learn.sum[j] / learn.k[j], reports = learn.k[j] < 10000 ? learn.k[j] : 10000;
    int d = 0;
    while (d < p->n_dispersion &&
           (strcmp(p->dispersion[d].counter, learn.counter[j]) || p->dispersion[d].service[0]))
      d++;
    if (d == p->n_dispersion) {
      if (d == PLAN_MAX_DISPERSION)
        continue;
      p->n_dispersion++;
    }
    p->dispersion[d] = (struct plan_dispersion){.value = phi > 1 ? phi : 1, .reports = reports};
    snprintf(p->dispersion[d].counter, sizeof p->dispersion[d].counter, "%s", learn.counter[j]);
    fprintf(stderr, " %s %.3g (%.0f reports)", learn.counter[j], phi, learn.k[j]);
    snprintf(learned_text + strlen(learned_text), sizeof learned_text - strlen(learned_text),
             "%s%s %.3g", learned_text[0] ? ", " : "", learn.counter[j], phi > 1 ? phi : 1);
  }
  fputc('\n', stderr);
  return true;
}

int main(int argc, char **argv) {
  static const char *const keys[] = {
      "RELEASES", "REGRESSION_RUNS", "ESTIMATE_RELEASES", "JOBS",  "SEED",   "SEMANTICS",  "ONLY",
      "PLAN",     "BURST",           "ERROR_RATE",        "TRACE", "VALUES", "DISPERSION", "LEARN",
      "REPORTS"};
  cfg = (struct settings){.releases = 1000,
                          .regression_runs = 200,
                          .jobs = 2,
                          .seed = 1,
                          .sem = {true, true},
                          .burst = 1.5,
                          .error_rate = 0.0002,
                          .values = 50,
                          .learn_runs = 20,
                          .reports = 1};
  bool est_set = false, list = false;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *v = getenv(keys[i]);
    if (v && !set_key(keys[i], v, &est_set))
      return 2;
  }
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      fputs(usage_text, stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--list")) {
      list = true;
      continue;
    }
    char *eq = strchr(argv[i], '=');
    if (!eq || eq == argv[i]) {
      fprintf(stderr, "bench_decisions: '%s' is not KEY=VALUE\n\n%s", argv[i], usage_text);
      return 2;
    }
    *eq = '\0';
    if (!set_key(argv[i], eq + 1, &est_set))
      return 2;
  }
  if (!est_set)
    cfg.estimate_releases = cfg.releases < 200 ? cfg.releases : 200;

  /* The plan, as loaded and with the literal semantics. */
  struct config_error cerr;
  int rc = cfg.plan_path ? config_load_file(cfg.plan_path, &plans[SEM_EVIDENCE], &cerr)
                         : config_load_default(&plans[SEM_EVIDENCE], &cerr);
  if (rc != CANARY_OK) {
    char msg[sizeof cerr.file + sizeof cerr.message + 32];
    config_error_format(&cerr, msg, sizeof msg);
    fprintf(stderr, "bench_decisions: %s\n", msg);
    return 1;
  }
  bool srm_was_control = plans[SEM_EVIDENCE].srm_control;
  plans[SEM_EVIDENCE].srm_control = false;
  plans[SEM_ESTIMATE] = plans[SEM_EVIDENCE];
  plan_as_estimate(&plans[SEM_ESTIMATE]); /* the seed's literal plan (evidence-only rules go) */

  if (!make_scenarios(&plans[SEM_EVIDENCE]))
    return 1;
  if (list) {
    for (int i = 0; i < n_scen; i++)
      printf("%s\n", scen[i].name);
    return 0;
  }
  long total = 0;
  for (int i = 0; i < n_scen; i++) {
    if (!only_matches(cfg.only, scen[i].name))
      continue;
    bool healthy = scen[i].cls == SC_HEALTHY || (scen[i].cls == SC_WATCH && !scen[i].reg);
    long n = healthy ? cfg.releases : cfg.regression_runs;
    for (int sem = 0; sem < SEM_COUNT; sem++)
      if (cfg.sem[sem] && (scen[i].cls != SC_WATCH || sem == SEM_EVIDENCE)) {
        scen[i].runs[sem] =
            sem == SEM_ESTIMATE && n > cfg.estimate_releases ? cfg.estimate_releases : n;
        total += scen[i].runs[sem];
      }
  }
  groups = calloc((size_t)n_scen * SEM_COUNT, sizeof *groups);
  if (!groups)
    return 1;
  for (int i = 0; i < n_scen; i++)
    for (int sem = 0; sem < SEM_COUNT; sem++)
      if (scen[i].runs[sem] > 0) {
        struct group *g = &groups[n_groups++];
        g->scenario = i;
        g->sem = sem;
        g->n = scen[i].runs[sem];
        g->res = calloc((size_t)g->n, sizeof *g->res);
        if (!g->res)
          return 1;
      }
  if (n_groups == 0) {
    fprintf(stderr, "bench_decisions: ONLY=%s matches no scenario with runs (--list)\n",
            cfg.only ? cfg.only : "");
    return 2;
  }

  /* Tables. */
  for (int j = 0; j <= QT_N; j++)
    z_table[j] = norm_quantile(((double)j + 0.5) / (QT_N + 1));
  lognormal_table(dist_table[D_LATENCY], 120, 0.5);
  lognormal_table(dist_table[D_LCP], 1500, 0.35);
  lognormal_table(dist_table[D_INP], 100, 0.45);
  lognormal_table(dist_table[D_CLS], 0.03, 0.5);

  if (cfg.learned && !learn_dispersion())
    return 1;

  /* Workers. */
  int jobs = (int)cfg.jobs;
  if (jobs > total)
    jobs = total > 0 ? (int)total : 1;
  int fds[256];
  pid_t pids[256];
  fflush(stdout);
  signal(SIGPIPE, SIG_IGN);
  for (int w = 0; w < jobs; w++) {
    int p[2];
    if (pipe(p) != 0) {
      perror("bench_decisions: pipe");
      return 1;
    }
    pids[w] = fork();
    if (pids[w] < 0) {
      perror("bench_decisions: fork");
      return 1;
    }
    if (pids[w] == 0) {
      close(p[0]);
      for (int k = 0; k < w; k++)
        close(fds[k]);
      _exit(worker(w, jobs, p[1]));
    }
    close(p[1]);
    fds[w] = p[0];
  }

  double wall0 = mono_s();
  struct progress pr = {.tty = isatty(2), .total = total, .last_decile = 0};
  long rejected = 0;
  char first_why[sizeof((struct result *)0)->why] = "";
  int open = jobs, failed = 0;
  struct pollfd pfd[256];
  size_t have[256] = {0};
  static struct result buf[256];
  for (int w = 0; w < jobs; w++)
    pfd[w] = (struct pollfd){.fd = fds[w], .events = POLLIN};
  while (open > 0) {
    int n = poll(pfd, (nfds_t)jobs, 1000);
    if (n < 0 && errno != EINTR) {
      perror("bench_decisions: poll");
      return 1;
    }
    for (int w = 0; w < jobs && n > 0; w++) {
      if (pfd[w].fd < 0 || !(pfd[w].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t r = read(pfd[w].fd, (char *)&buf[w] + have[w], sizeof buf[w] - have[w]);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        close(pfd[w].fd);
        pfd[w].fd = -1;
        open--;
        continue;
      }
      have[w] += (size_t)r;
      if (have[w] < sizeof buf[w])
        continue;
      have[w] = 0;
      const struct result *res = &buf[w];
      struct group *g = NULL;
      for (int gi = 0; gi < n_groups; gi++)
        if (groups[gi].scenario == res->scenario && groups[gi].sem == res->sem)
          g = &groups[gi];
      if (!g || res->run < 0 || res->run >= g->n) {
        fprintf(stderr, "bench_decisions: a worker sent a result for nothing\n");
        return 1;
      }
      g->res[res->run] = *res;
      g->done++;
      g->halted += is_halt(res);
      pr.done++;
      if (res->rejected) {
        rejected += res->rejected;
        if (!first_why[0])
          snprintf(first_why, sizeof first_why, "%s", res->why);
      }
      if (res->error) { /* an engine error: the worker stops */
        fprintf(stderr, "bench_decisions: %s (%s %s run %d)\n", res->why, scen[res->scenario].name,
                sem_names[res->sem], res->run);
        failed = 1;
      }
      progress_update(&pr, false);
    }
  }
  for (int w = 0; w < jobs; w++) {
    int status;
    if (waitpid(pids[w], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failed = 1;
  }
  progress_update(&pr, true);
  double wall = mono_s() - wall0;
  if (failed || pr.done != total) {
    fprintf(stderr, "bench_decisions: a worker failed (%ld of %ld runs came back)\n", pr.done,
            total);
    return 1;
  }

  /* The table. */
  const struct plan *p = &plans[SEM_EVIDENCE];
  printf("## Decision quality: %s plan (%s), seed %" PRIu64 "\n\n", p->name,
         cfg.plan_path ? cfg.plan_path : "built-in config/rollout.yaml", cfg.seed);
  printf("- evidence: the plan as loaded, decide = %s%s\n", decide_name(p->decide),
         p->decide == PLAN_DECIDE_EVIDENCE ? "" : " (NOT evidence: the loaded plan says so)");
  printf("- estimate: decide = estimate, every rule's decide = default (literal point "
         "estimates)\n");
  printf("- traffic split check: %s, baseline = complement (srm_control = false%s)\n",
         p->srm_enabled ? "on" : "off",
         srm_was_control ? "; the plan says control, overridden" : ", as the plan says");
  printf("- traffic: R(t) = R0 (1 + 0.5 sin(2 pi t / 24 h)) requests a minute, R0 = %.0f (seed) "
         "or %.0f (10x less); errors %g%% in bursts of mean %g; %ld metrics event%s a minute "
         "per variant, %d values per distribution\n",
         SEED_VOLUME, SEED_VOLUME / 10, 100 * cfg.error_rate, cfg.burst, cfg.reports,
         cfg.reports == 1 ? "" : "s", (int)cfg.values);
  if (cfg.learned)
    printf("- dispersion: learned from %ld healthy releases at the seed volume (their baselines' "
           "reports, pooled): %s\n",
           cfg.learn_runs, learned_text);
  else
    printf("- dispersion: the plan's priors (bursts are assumed until a release's reports show "
           "otherwise, unless the plan has learned values)\n");
  /* A stage whose maximum comes after the run limit cannot halt at it: held there is stuck. */
  int64_t earliest = 0;
  for (int i = 0; i < p->n_stages; i++) {
    const struct stage *st = &p->stages[i];
    if (st->max_duration_ms && earliest + st->max_duration_ms > RUN_LIMIT_MS)
      printf("- %s's maximum duration passes at t0 + %.0f h at the earliest, after the %.0f h "
             "limit: a release held there counts as stuck, not as a stage_max_duration halt\n",
             st->name, (double)(earliest + st->max_duration_ms) / HOUR_MS,
             (double)RUN_LIMIT_MS / HOUR_MS);
    earliest += st->min_duration_ms;
  }
  printf("- a halt is any halt or rollback decision (a rule, or stage_max_duration@<stage>); "
         "stuck: neither GA nor a halt by t0 + 120 h\n");
  print_healthy();
  print_regressions(SC_REGRESSION);
  print_regressions(SC_OUTAGE);
  print_watch();

  printf("\nDetected: halted (any rule) after the onset, before GA, among the runs that reached "
         "the onset; delays from the onset to the halt decision, in minutes and in the canary's "
         "count of the regressed metric (requests for the quantile metrics).\n");
  printf("Missing-data halts: stage_max_duration halts whose unmet metric exit criteria had "
         "insufficient data (none plainly false). 95%% upper: one-sided Clopper-Pearson bound "
         "on the false-halt rate.\n");
  /* Cost per release: the healthy scenarios' CPU time; a release that reaches GA is the
   * whole of one (most halted ones stop early), and µs an event over every run prices it. */
  printf("\nCost, CPU time in one worker (JOBS=%d; %.1f s wall in all):\n\n", jobs, wall);
  bool any = false;
  for (int gi = 0; gi < n_groups; gi++) {
    const struct group *g = &groups[gi];
    if (scen[g->scenario].cls != SC_HEALTHY || g->n == 0)
      continue;
    double cpu = 0, ev = 0, ga_cpu = 0, ga_ev = 0;
    long ga = 0;
    for (long i = 0; i < g->n; i++) {
      const struct result *r = &g->res[i];
      cpu += (double)r->cpu_ns, ev += (double)r->events;
      if (r->outcome == OUT_GA)
        ga++, ga_cpu += (double)r->cpu_ns, ga_ev += (double)r->events;
    }
    double us_event = ev > 0 ? cpu / ev / 1e3 : 0;
    printf("- %s %s: ", scen[g->scenario].name, sem_names[g->sem]);
    if (ga)
      printf("**%.0f ms per release** to GA (mean of %ld, %.0f events each); ",
             ga_cpu / (double)ga / 1e6, ga, ga_ev / (double)ga);
    else
      printf("no release reached GA: a whole one (~%d events) would take at least ~%.0f ms "
             "(the rate of runs that stopped early, while windows are small); ",
             FULL_RELEASE_EVENTS, us_event * FULL_RELEASE_EVENTS / 1e3);
    printf("%.1f ms per run over all %ld runs, %.1f us an event\n", cpu / (double)g->n / 1e6, g->n,
           us_event);
    any = true;
  }
  if (!any) {
    double cpu[SEM_COUNT] = {0}, ev[SEM_COUNT] = {0};
    long n[SEM_COUNT] = {0};
    for (int gi = 0; gi < n_groups; gi++)
      for (long i = 0; i < groups[gi].n; i++) {
        cpu[groups[gi].sem] += (double)groups[gi].res[i].cpu_ns;
        ev[groups[gi].sem] += (double)groups[gi].res[i].events;
        n[groups[gi].sem]++;
      }
    for (int sem = 0; sem < SEM_COUNT; sem++)
      if (n[sem])
        printf("- %s: %.1f ms per run, %.1f us an event (no healthy scenario run)\n",
               sem_names[sem], cpu[sem] / (double)n[sem] / 1e6,
               ev[sem] > 0 ? cpu[sem] / ev[sem] / 1e3 : 0);
  }
  if (rejected) {
    printf("\nWARNING: the engine rejected %ld generated events (first: %s)\n", rejected,
           first_why);
    fprintf(stderr, "bench_decisions: the engine rejected %ld generated events (first: %s)\n",
            rejected, first_why);
  }
  for (int gi = 0; gi < n_groups; gi++)
    free(groups[gi].res);
  free(groups);
  return fflush(stdout) == 0 ? 0 : 1;
}
