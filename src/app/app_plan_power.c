/*
 * `canaryctl plan power`: what a plan's evidence can decide at a service's traffic, before a
 * release runs. For every halt rule and metric gate decided on evidence, at every stage where it
 * applies: how long a regression takes to halt, how long a healthy canary takes to pass.
 *
 * The model is the expected path: every minute of a stage adds the counts a service of this
 * traffic and these healthy rates produces on average, and the e-value is computed from them the
 * way mstore_evidence.c does (same coefficients, same weights, same levels). No noise: a real
 * release is sometimes faster and sometimes slower, but a rule that needs more than a stage has
 * on average is a rule to fix before the release, not during it.
 */
#include "app/app_plan_power.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "codec/json.h"
#include "core/evidence.h"
#include "core/metric_store.h"

static const char usage[] =
    "usage: canaryctl plan power [--plan FILE] [--traffic N] [--rates K=V,...] [--values N]\n"
    "                            [--dispersion D] [--format text|json]\n"
    "\n"
    "What the plan's evidence can decide at a service's traffic, before a release runs: for\n"
    "every halt rule and metric gate decided on evidence, at every stage where it applies, how\n"
    "long a regression takes to halt the rollout and how long a healthy canary takes to pass.\n"
    "\n"
    "  --plan FILE      plan (YAML, or the seed's feature-flag JSON); default: the built-in plan\n"
    "  --traffic N      requests per minute across the service (default 240000). The canary gets\n"
    "                   the stage's traffic_percent of them, the baseline the rest (as many as\n"
    "                   the canary with traffic_split.baseline: control)\n"
    "  --rates K=V,...  healthy rates (may repeat): V of counter K per request for a divisor\n"
    "                   (transactions=0.06), per its divisor for a numerator (transactions_failed\n"
    "                   =0.0001: per transaction). Defaults: errors=0.0002, transactions=0.06,\n"
    "                   transactions_failed=0.0001, engine_requests=0.2, engine_timeouts=0.0005,\n"
    "                   approvals=0.02, approval_denials=0.02\n"
    "  --values N       distribution values (latency, web vitals) per minute per variant (1000)\n"
    "  --dispersion D   bad events come in bursts weighing about D (retries; >= 1, default 1):\n"
    "                   counts are divided by canaryd's estimate of it at each minute (bursts\n"
    "                   assumed until the baseline's reports show D)\n"
    "  --format FMT     text (default): a table per stage; json: the same as one document\n"
    "  -h, --help       this help\n"
    "\n"
    "Halt rules: regressions of 1.5x, 3x and 10x the limit (rate > limit), 2x, 3x and 10x the\n"
    "healthy rate (rate > baseline) or the allowed share above the line (quantiles), from the\n"
    "stage's start; the time includes the rule's for:. Gates: the healthy canary. 'never': not\n"
    "within the stage's max_duration (72h without one). WARNING lines name what cannot decide.\n"
    "\n"
    "Exit status: 0 done, 1 bad plan, 2 usage error.\n";

#define PROG "canaryctl plan power"
#define POWER_MAX_RATES 32
#define POWER_STEPS 3
#define POWER_NO_MAX_MIN (72 * 60) /* a stage without max_duration: the evidence's retention */

/* A healthy rate: K per request (a divisor) or per its divisor (a numerator). */
struct power_rate {
  char name[PLAN_NAME_MAX];
  double v;
};

static const struct power_rate default_rates[] = {
    {"requests", 1},
    {"errors", 0.0002},
    {"transactions", 0.06},
    {"transactions_failed", 0.0001},
    {"engine_requests", 0.2},
    {"engine_timeouts", 0.0005},
    {"approvals", 0.02},
    {"approval_denials", 0.02},
};

struct power_opts {
  double traffic;    /* requests per minute across the service */
  double values;     /* distribution values per minute per variant */
  double dispersion; /* >= 1 */
  struct power_rate rates[POWER_MAX_RATES];
  int n_rates;
  bool json;
};

/* What every computation reads. */
struct power {
  const struct plan *p;
  const struct mstore_plan *mp;
  const struct power_opts *o;
};

/* --- the model -------------------------------------------------------------------------------- */

/* One stage's volume: requests per minute of each variant, and how long it may run. */
struct flow {
  int stage;
  double canary, baseline;
  double limit; /* minutes: max_duration, or POWER_NO_MAX_MIN */
  bool has_max;
  double steps_before; /* minutes of baseline reports before the stage (its predecessors'
                        * minimum durations): what the dispersion estimate has seen */
};

static struct flow flow_of(const struct power *w, int s) {
  const struct stage *st = &w->p->stages[s];
  double share = st->traffic_percent / 100;
  struct flow f = {.stage = s, .canary = w->o->traffic * share};
  /* complement: the baseline is the rest of the service; control: a group as large */
  f.baseline = w->p->srm_control ? f.canary : w->o->traffic * (1 - share);
  f.has_max = st->max_duration_ms > 0;
  f.limit = f.has_max ? (double)st->max_duration_ms / 60000.0 : POWER_NO_MAX_MIN;
  for (int k = 0; k < s; k++)
    f.steps_before += (double)w->p->stages[k].min_duration_ms / 60000.0;
  return f;
}

/* The healthy rate of counter name; false when neither the defaults nor --rates give one. */
static bool rate_of(const struct power *w, const char *name, double *v) {
  for (int i = w->o->n_rates - 1; i >= 0; i--) /* the last --rates wins */
    if (!strcmp(w->o->rates[i].name, name))
      return *v = w->o->rates[i].v, true;
  return false;
}

/*
 * A test on the expected path: every minute adds x successes of n trials against p0. log_w is
 * the weight of the one start point counted, need is log(1 / alpha); nothing is counted for the
 * first lag minutes. Ratio forms divide the counts by the dispersion canaryd would estimate
 * after steps0 + t minutes of the baseline's reports whose steps average disp
 * (mstore_dispersion_of: bursts are assumed until the reports show otherwise).
 */
struct path {
  double p0;
  enum evid_side side;
  double x, n;
  double log_w, need;
  double lag;
  bool dispersed;
  double disp, steps0;
  double prior_phi, prior_n; /* the plan's learned dispersion of the counter, or the default */
};

/*
 * The first whole minute at which log E reaches log(1/alpha), INFINITY when not by limit. On
 * the expected path the counts grow linearly, so the log-likelihood ratios are t times those of
 * one minute: one evid_log_e per minute, the core's own mixture.
 */
static double decide_minute(const struct path *p, double limit) {
  if (!(p->n > 0) || !(p->p0 > 0 && p->p0 < 1))
    return INFINITY;
  struct evid_coef c;
  evid_coef_init(&c, p->p0, p->side);
  struct evid_llr one;
  evid_llr_reset(&one);
  evid_llr_add_coef(&one, &c, p->x, p->n);
  for (double t = floor(p->lag) + 1; t <= limit; t++) {
    struct evid_llr at = one;
    double k_steps = p->steps0 + t - 1;
    double phi =
        p->dispersed ? mstore_dispersion_of(k_steps * p->disp, k_steps, p->prior_phi, p->prior_n)
                     : 1;
    for (int k = 0; k < EVID_GRID; k++)
      at.l[k] = one.l[k] * (t - p->lag) / phi;
    if (p->log_w + evid_log_e(&at) >= p->need)
      return t;
  }
  return INFINITY;
}

/*
 * The weight of the single start point counted: a halt rule's e-value mixes the release's
 * start, the later stages' starts and slices within a stage (mstore_evidence.c), a sum of
 * non-negative terms; a regression from the stage's start is in the stage-start term (the
 * release's, for the first stage), so that term alone is a lower bound on the e-value and the
 * time it gives an upper bound. "Below" comparisons (gates) count the cohort alone, weight 1.
 */
static double start_weight(const struct power *w, const struct expr_evq *q, int stage) {
  if (!q->above)
    return 0;
  return stage == 0 ? w->mp->ev.log_w_release : w->mp->ev.log_w_stage;
}

/* What the canary does in one comparison: its rate (ratio forms) or its share of values above
 * the line (quantile forms); the baseline keeps the healthy one. */
struct canary {
  double value;
  double healthy; /* the baseline's rate (comparative ratios) */
};

/* The path of comparison q at stage f for a canary at c. False when the stage gives it
 * nothing to test: no baseline left to compare with (100% with complement), no divisor rate. */
static bool make_path(const struct power *w, const struct flow *f, const struct expr_evq *q,
                      struct canary c, struct path *p) {
  *p = (struct path){.side = q->above ? EVID_ABOVE : EVID_BELOW,
                     .log_w = start_weight(w, q, f->stage),
                     .need = -log(q->alpha)};
  if (q->quantile) { /* values are not divided by the dispersion (evidence_quantile) */
    if (q->versus_baseline && !(f->baseline > 0))
      return false;
    p->p0 = 1 - q->q;
    p->n = w->o->values;
    p->x = p->n * c.value;
    /* against the baseline, no canary value is counted until the baseline has enough values
     * to draw the line (metric_store.c, line_min_values: p99 needs 100) */
    double need = ceil(1 / (1 - q->q) - 1e-9);
    p->lag = q->versus_baseline ? (need < 20 ? 20 : need) / w->o->values : 0;
    return true;
  }
  double per_req;
  if (!rate_of(w, q->den, &per_req))
    return false;
  double nc = f->canary * per_req, nb = f->baseline * per_req;
  p->dispersed = true;
  p->disp = w->o->dispersion;
  p->steps0 = f->steps_before;
  const struct plan_dispersion *learned = plan_dispersion_for(w->p, q->num, NULL);
  p->prior_phi = learned ? learned->value : MSTORE_DISP_PRIOR_PHI;
  p->prior_n = learned ? learned->reports : MSTORE_DISP_PRIOR;
  if (!q->versus_baseline) {
    p->p0 = q->limit;
    p->n = nc;
    p->x = p->n * c.value;
    return true;
  }
  if (!(nb > 0))
    return false;
  /* the canary's share of all bad events, against its share of the exposure x theta0 */
  p->p0 = evid_split_p(nc / (nc + nb), q->k * (1 + w->mp->ev.margin[f->stage]));
  p->x = nc * c.value;
  p->n = nc * c.value + nb * c.healthy;
  return true;
}

/* Trials per minute of the canary in comparison q (divisor events, or values). */
static double canary_trials(const struct power *w, const struct flow *f, const struct expr_evq *q) {
  double per_req = 0;
  if (q->quantile)
    return w->o->values;
  return rate_of(w, q->den, &per_req) ? f->canary * per_req : 0;
}

/* --- rows: one comparison at one stage -------------------------------------------------------- */

struct step {
  double mult;    /* x the limit, the healthy rate or the allowed share */
  double value;   /* the canary's rate or share */
  double minutes; /* to halt, from the stage's start, for: included; INFINITY: never */
  double bad;     /* canary bad events (values above the line) by then */
  bool possible;  /* false: no such regression (a share above 1) */
};

struct row {
  bool gate;
  struct expr_evq q;
  int cohort;             /* the stage whose traffic decides it */
  const char *name;       /* the rule's or the criterion's (the compiled plan's) */
  int gate_stage;         /* gates: whose gate */
  bool exit;              /* ... entry or exit */
  const char *slo;        /* a slos_met() criterion: the SLO this row is; NULL otherwise */
  char test[160];
  const char *op;
  double alpha, for_min;
  const char *missing;    /* a counter with no healthy rate, a distribution with no model:
                           * the row cannot be computed (NULL = it can) */
  bool no_baseline;       /* against the baseline, where the stage leaves none */
  /* halt rules */
  const char *relative;   /* what the steps multiply */
  double base;            /* ... and its value */
  struct step steps[POWER_STEPS];
  /* gates */
  double healthy;         /* the healthy canary's rate or share */
  bool wrong_side;        /* healthy is on the null's side: never passes */
  double test_min;        /* the test passes (INFINITY: not within limit) */
  double minutes;         /* the gate passes: test_min + for: */
  double need, gets;      /* canary trials by test_min, and in the stage */
};

struct rows {
  struct row *v;
  int n, cap;
  bool oom; /* a row could not be added: the report would be missing it */
};

static struct row *rows_add(struct rows *r) {
  if (r->n == r->cap) {
    int cap = r->cap ? 2 * r->cap : 16;
    struct row *v = realloc(r->v, (size_t)cap * sizeof *v);
    if (!v) {
      r->oom = true;
      return NULL;
    }
    r->v = v;
    r->cap = cap;
  }
  memset(&r->v[r->n], 0, sizeof r->v[0]);
  return &r->v[r->n++];
}

static const char *op_text(const struct expr *e, int node) {
  switch ((enum expr_kind)e->nodes[node].kind) {
  case EXPR_GT: return ">";
  case EXPR_GE: return ">=";
  case EXPR_LT: return "<";
  case EXPR_LE: return "<=";
  default: return "?";
  }
}

/* The comparison as the evidence tests it at stage s: "errors/requests > 0.01",
 * "p99(latency_ms) > 5 x baseline" (a ratio's margin included, as at that stage). */
static void describe(const struct power *w, const struct row *r, char *buf, size_t len) {
  const struct expr_evq *q = &r->q;
  char lhs[2 * PLAN_NAME_MAX + 16];
  if (q->quantile)
    snprintf(lhs, sizeof lhs, "p%g(%s)", q->q * 100, q->dist);
  else
    snprintf(lhs, sizeof lhs, "%s/%s", q->num, q->den);
  if (!q->versus_baseline) {
    snprintf(buf, len, "%s %s %g", lhs, r->op, q->limit);
    return;
  }
  double k = q->quantile ? q->k : q->k * (1 + w->mp->ev.margin[r->cohort]);
  if (k == 1)
    snprintf(buf, len, "%s %s baseline", lhs, r->op);
  else
    snprintf(buf, len, "%s %s %g x baseline", lhs, r->op, k);
}

static void row_init(const struct power *w, struct row *r, const struct mstore_expr *x,
                     const struct expr_evq *q, int cohort, int64_t for_ms) {
  r->q = *q;
  r->cohort = cohort;
  r->op = op_text(&x->e, q->node);
  r->alpha = q->alpha;
  r->for_min = (double)for_ms / 60000.0;
  describe(w, r, r->test, sizeof r->test);
  double per_req;
  if (!q->quantile && !rate_of(w, q->den, &per_req))
    r->missing = q->den; /* every ratio needs its divisor's volume */
}

/* The regressions a halt rule is asked about: multiples of the limit for an absolute ratio
 * (the limit is already a regression), of the healthy rate for a comparison with the baseline,
 * of the allowed share above the line (1 - q) for a quantile. */
static const double mult_limit[POWER_STEPS] = {1.5, 3, 10};
static const double mult_rate[POWER_STEPS] = {2, 3, 10};

/* The halt rule's base: *base and what it is; false (with r->missing) when a rate is missing. */
static bool halt_base(const struct power *w, struct row *r) {
  const struct expr_evq *q = &r->q;
  if (q->quantile) {
    r->relative = "the allowed share above the line";
    r->base = 1 - q->q;
    return true;
  }
  if (!q->versus_baseline) {
    r->relative = "the limit";
    r->base = q->limit;
    return true;
  }
  r->relative = "the healthy rate";
  if (!rate_of(w, q->num, &r->base)) {
    r->missing = q->num;
    return false;
  }
  return true;
}

static void halt_step(const struct power *w, const struct flow *f, struct row *r, int i) {
  const struct expr_evq *q = &r->q;
  const double *mults = !q->quantile && !q->versus_baseline ? mult_limit : mult_rate;
  struct step *s = &r->steps[i];
  s->mult = mults[i];
  s->value = q->above ? r->base * s->mult : r->base / s->mult;
  s->minutes = INFINITY;
  if (q->quantile && s->value >= 1) { /* at most every value: the largest share there is */
    bool first = i == 0 || r->steps[i - 1].value < 1;
    s->value = 1;
    s->mult = 1 / r->base;
    if (!first)
      return; /* the same as the step before: not a regression of its own */
  }
  if (s->value >= 1 && !q->quantile)
    return; /* a rate of 1 or more per trial is no regression a binomial count can show */
  s->possible = true;
  struct path p;
  if (!make_path(w, f, q, (struct canary){s->value, r->base}, &p)) {
    r->no_baseline = true;
    return;
  }
  double t = decide_minute(&p, f->limit);
  if (t + r->for_min <= f->limit)
    s->minutes = t + r->for_min;
  if (isfinite(s->minutes))
    s->bad = canary_trials(w, f, q) * s->value * s->minutes;
}

static void halt_row(const struct power *w, const struct flow *f, struct row *r) {
  if (!halt_base(w, r))
    return;
  for (int i = 0; i < POWER_STEPS; i++)
    halt_step(w, f, r, i);
}

/*
 * The healthy canary in a gate's comparison. Ratios: the rate from --rates. Quantiles against
 * the baseline: the canary has the baseline's distribution, taken as exponential, so the share
 * above k x its quantile q is (1 - q)^k. An absolute quantile line needs the distribution
 * itself: taken as half the allowed share above it (a "below" gate only).
 */
static bool gate_healthy(const struct power *w, struct row *r) {
  const struct expr_evq *q = &r->q;
  if (!q->quantile) {
    if (rate_of(w, q->num, &r->healthy))
      return true;
    r->missing = q->num;
    return false;
  }
  if (q->versus_baseline) {
    r->healthy = pow(1 - q->q, q->k);
    return true;
  }
  if (!q->above) {
    r->healthy = (1 - q->q) / 2;
    return true;
  }
  r->missing = q->dist;
  return false;
}

/* Whether the healthy canary is on the null's side of the comparison: it never passes. */
static bool gate_wrong_side(const struct power *w, const struct row *r) {
  const struct expr_evq *q = &r->q;
  double at, ref;
  if (q->versus_baseline && !q->quantile) {
    at = 1; /* the canary's rate over the baseline's */
    ref = q->k * (1 + w->mp->ev.margin[r->cohort]);
  } else {
    at = r->healthy;
    ref = q->quantile ? 1 - q->q : q->limit;
  }
  return q->above ? at <= ref : at >= ref;
}

static void gate_row(const struct power *w, const struct flow *f, struct row *r) {
  r->test_min = r->minutes = INFINITY;
  if (!gate_healthy(w, r))
    return;
  r->wrong_side = gate_wrong_side(w, r);
  r->gets = canary_trials(w, f, &r->q) * f->limit;
  struct path p;
  if (!make_path(w, f, &r->q, (struct canary){r->healthy, r->healthy}, &p)) {
    r->no_baseline = true;
    return;
  }
  if (r->wrong_side)
    return;
  /* searched past the stage's end, so a warning can say how far off it is */
  double t = decide_minute(&p, 100 * f->limit);
  if (!isfinite(t))
    return;
  r->need = canary_trials(w, f, &r->q) * t;
  if (t <= f->limit)
    r->test_min = t;
  if (t + r->for_min <= f->limit)
    r->minutes = t + r->for_min;
}

/* --- which comparisons apply at a stage ------------------------------------------------------- */

/* Adds a row for every evidence comparison of x; who is the row's owner (a halt rule, a
 * criterion, the SLO of a criterion), as a template. */
static void add_comparisons(const struct power *w, const struct flow *f, struct rows *rows,
                            const struct mstore_expr *x, const struct row *who, int64_t for_ms) {
  for (int i = 0; x->e.alpha > 0 && i < x->e.n_nodes; i++) {
    struct expr_evq q;
    if (!expr_evidence_form(&x->e, i, &q))
      continue;
    struct row *r = rows_add(rows);
    if (!r)
      return;
    *r = *who;
    row_init(w, r, x, &q, f->stage, for_ms);
    if (r->missing)
      continue;
    if (r->gate)
      gate_row(w, f, r);
    else
      halt_row(w, f, r);
  }
}

/* The stage whose cohort a criterion reads: its own (exit gates, the first stage), the one
 * exposed before it (entry gates), or the one it names (rollout_metrics.c, run_metric_check). */
static int gate_cohort(const struct plan *p, int stage, bool exit, int index) {
  const struct criterion *c = exit ? &p->stages[stage].exit[index] : &p->stages[stage].entry[index];
  return c->cohort >= 0 ? c->cohort : exit || stage == 0 ? stage : stage - 1;
}

/* A gate criterion's rows: its own comparisons, and with slos_met() those of every SLO, each
 * of which must pass and then hold for the criterion's for:. */
static void add_gate(const struct power *w, const struct flow *f, struct rows *rows,
                     const struct mstore_expr *x) {
  struct row who = {.gate = true, .name = x->name, .gate_stage = x->stage,
                    .exit = x->owner == MSTORE_EXIT};
  add_comparisons(w, f, rows, x, &who, x->for_ms);
  if (!expr_uses(&x->e, EXPR_SLOS_MET))
    return;
  for (int j = 0; j < w->mp->n_slos; j++) {
    const struct mstore_expr *s = &w->mp->x[w->mp->slo_first + j];
    who.slo = s->name;
    add_comparisons(w, f, rows, s, &who, x->for_ms);
  }
}

/* Every row of stage f: the halt rules and alerts, then the gates its cohort decides. */
static void stage_rows(const struct power *w, const struct flow *f, struct rows *rows) {
  const struct mstore_plan *mp = w->mp;
  for (int i = 0; i < mp->n; i++)
    if (mp->x[i].owner == MSTORE_RULE || mp->x[i].owner == MSTORE_ALERT)
      add_comparisons(w, f, rows, &mp->x[i], &(struct row){.name = mp->x[i].name},
                      mp->x[i].for_ms);
  for (int i = 0; i < mp->n; i++) {
    const struct mstore_expr *x = &mp->x[i];
    if ((x->owner == MSTORE_EXIT || x->owner == MSTORE_ENTRY) &&
        gate_cohort(w->p, x->stage, x->owner == MSTORE_EXIT, x->index) == f->stage)
      add_gate(w, f, rows, x);
  }
}

/* --- formatting ------------------------------------------------------------------------------- */

/* 0, 45m, 2h, 1h05m; "never" for INFINITY. */
static const char *fmt_minutes(double m, char *buf, size_t len) {
  if (!isfinite(m))
    return snprintf(buf, len, "never"), buf;
  long long v = llround(m);
  if (v == 0)
    snprintf(buf, len, "0");
  else if (v < 60)
    snprintf(buf, len, "%lldm", v);
  else if (v % 60 == 0)
    snprintf(buf, len, "%lldh", v / 60);
  else
    snprintf(buf, len, "%lldh%02lldm", v / 60, v % 60);
  return buf;
}

/* 1,234,567 (three significant digits under 100: expected counts are fractional). */
static const char *fmt_count(double v, char *buf, size_t len) {
  if (!(v < 1e15)) {
    snprintf(buf, len, "%g", v);
    return buf;
  }
  if (v < 100) {
    snprintf(buf, len, "%.3g", v);
    return buf;
  }
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%.0f", v), o = 0;
  for (int i = 0; i < n && o + 2 < (int)len; i++) {
    if (i && (n - i) % 3 == 0)
      buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = 0;
  return buf;
}

/* 0.1%, 0.05%, 1% */
static const char *fmt_pct(double v, char *buf, size_t len) {
  snprintf(buf, len, "%.3g%%", v * 100);
  return buf;
}

/* What a gate counts: its divisor ("requests"), or values. */
static const char *trial_unit(const struct expr_evq *q) { return q->quantile ? "values" : q->den; }

/* Who a row is, in a sentence: "halt rule error_rate", "beta entry slos_24h (SLO availability)". */
static const char *who(const struct power *w, const struct row *r, char *buf, size_t len) {
  if (!r->gate)
    snprintf(buf, len, "halt rule %s", r->name);
  else
    snprintf(buf, len, "%s %s %s%s%s%s", w->p->stages[r->gate_stage].name,
             r->exit ? "exit" : "entry", r->name, r->slo ? " (SLO " : "", r->slo ? r->slo : "",
             r->slo ? ")" : "");
  return buf;
}

/* A gate that can never pass: the healthy canary is on the null's side of its comparison. */
static void warn_wrong_side(const struct power *w, const struct flow *f, const struct row *r,
                            const char *name, char *buf, size_t len) {
  const struct expr_evq *q = &r->q;
  if (q->versus_baseline && !q->quantile)
    snprintf(buf, len, "%s can never pass: a healthy canary's rate equals the baseline's, which "
             "is not %s %g x the baseline's", name, q->above ? "above" : "under",
             q->k * (1 + w->mp->ev.margin[f->stage]));
  else
    snprintf(buf, len, "%s can never pass: the healthy %s %g is not %s %g", name,
             q->quantile ? "share above the line" : "rate", r->healthy,
             q->above ? "above" : "under", q->quantile ? 1 - q->q : q->limit);
}

/* A gate that does not pass within its stage: how far off it is. */
static void warn_slow_gate(const struct power *w, const struct flow *f, const struct row *r,
                           const char *name, char *buf, size_t len) {
  char lim[32], a[32], b[32], traffic[PLAN_NAME_MAX + 32] = "at this traffic";
  fmt_minutes(f->limit, lim, sizeof lim);
  if (r->gate_stage != f->stage) /* an entry gate, decided on the stage before it */
    snprintf(traffic, sizeof traffic, "on %s's traffic", w->p->stages[f->stage].name);
  if (!isfinite(r->test_min) && r->need > 0)
    snprintf(buf, len, "%s cannot pass %s within %s: needs ~%s canary %s, the stage gets %s",
             name, traffic, lim, fmt_count(r->need, a, sizeof a), trial_unit(&r->q),
             fmt_count(r->gets, b, sizeof b));
  else if (!isfinite(r->test_min))
    snprintf(buf, len, "%s cannot pass %s within %s (nor in 100 times as long)", name, traffic,
             lim);
  else
    snprintf(buf, len, "%s cannot pass within %s: its test passes after %s, then it must hold "
             "for %s", name, lim, fmt_minutes(r->test_min, a, sizeof a),
             fmt_minutes(r->for_min, b, sizeof b));
}

/*
 * The warning of a row, if it has one (the text and JSON reports say the same): a halt rule
 * that cannot halt even its largest regression within the stage, a gate that cannot pass.
 */
static bool row_warning(const struct power *w, const struct flow *f, const struct row *r,
                        char *buf, size_t len) {
  if (r->missing || r->no_baseline)
    return false; /* a note, not a warning: nothing to decide on at all */
  char name[3 * PLAN_NAME_MAX + 32];
  who(w, r, name, sizeof name);
  if (r->gate) {
    if (r->wrong_side)
      warn_wrong_side(w, f, r, name, buf, len);
    else if (!isfinite(r->minutes))
      warn_slow_gate(w, f, r, name, buf, len);
    return r->wrong_side || !isfinite(r->minutes);
  }
  const struct step *last = NULL;
  for (int i = 0; i < POWER_STEPS; i++)
    if (r->steps[i].possible)
      last = &r->steps[i];
  if (!last || isfinite(last->minutes))
    return false;
  char lim[32], v[32];
  snprintf(buf, len, "%s: %s cannot halt even a %gx regression (%s %s) within %s at this traffic",
           w->p->stages[f->stage].name, name, last->mult,
           r->q.quantile ? "share above the line" : "rate", fmt_pct(last->value, v, sizeof v),
           fmt_minutes(f->limit, lim, sizeof lim));
  return true;
}

/* A row that cannot be computed at all: why, for the report. */
static bool row_note(const struct power *w, const struct flow *f, const struct row *r, char *buf,
                     size_t len) {
  char name[3 * PLAN_NAME_MAX + 32];
  who(w, r, name, sizeof name);
  if (r->missing && r->q.quantile)
    return snprintf(buf, len, "%s: needs the healthy distribution of %s (not modelled)", name,
                    r->missing), true;
  if (r->missing)
    return snprintf(buf, len, "%s: no healthy rate for %s (give --rates %s=V)", name,
                    r->missing, r->missing), true;
  if (r->no_baseline)
    return snprintf(buf, len, "%s: no baseline left to compare with at %g%% (traffic_split: "
                    "complement)", name, w->p->stages[f->stage].traffic_percent), true;
  return false;
}

/* --- the false-halt budget -------------------------------------------------------------------- */

/* A halt rule's or alert's comparisons on evidence (owner MSTORE_RULE or MSTORE_ALERT): each
 * is a test at rule_alpha (the budget's share). */
static int rule_tests(const struct power *w, enum mstore_owner owner, int rule) {
  int n = 0;
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    if (x->owner == owner && x->index == rule && x->e.alpha > 0)
      n += expr_evidence_count(&x->e); /* its own: n_evidence also counts the SLOs it reads */
  }
  return n;
}

static bool split_tested(const struct plan *p) {
  return p->srm_enabled && p->decide == PLAN_DECIDE_EVIDENCE;
}

/* The union bound: the sum of every distinct test's level (a comparison several rules make is
 * one test). */
static double union_bound(const struct power *w) {
  const struct mstore_evidence_plan *ev = &w->mp->ev;
  double sum = split_tested(w->p) ? ev->rule_alpha : 0;
  for (int k = 0; k < ev->n_distinct; k++)
    sum += ev->tests[k].q.alpha;
  return sum;
}

/* The expression that pays for comparison q of expression x when another one does (the first
 * that makes the same test); NULL when x pays for it itself. */
static const struct mstore_expr *paid_by(const struct power *w, const struct mstore_expr *x,
                                         const struct expr_evq *q) {
  int k = mstore_test_index(w->mp, q);
  if (k < 0)
    return NULL;
  const struct mstore_expr *by = &w->mp->x[w->mp->ev.tests[k].x];
  return by != x ? by : NULL;
}

/* The budget a rule's or alert's comparisons spend: those it is the first to make (*same: the
 * rule that made one of the others first, or NULL). */
static double rule_share(const struct power *w, enum mstore_owner owner, int rule,
                         const char **same) {
  double sum = 0;
  *same = NULL;
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    struct expr_evq q;
    if (x->owner != owner || x->index != rule || !(x->e.alpha > 0))
      continue;
    for (int n = 0; n < x->e.n_nodes; n++) {
      if (!expr_evidence_form(&x->e, n, &q))
        continue;
      const struct mstore_expr *by = paid_by(w, x, &q);
      if (!by)
        sum += q.alpha;
      else if (!*same)
        *same = by->name;
    }
  }
  return sum;
}

/* --- text ------------------------------------------------------------------------------------- */

/* Prints item (after ", " unless first), wrapping lines at 96 columns; *col is the column. */
static void wrap_item(FILE *out, int *col, bool first, const char *item) {
  int len = (int)strlen(item) + (first ? 1 : 2);
  if (!first)
    fputc(',', out);
  if (*col + len > 96)
    fputs("\n ", out), *col = 1;
  fprintf(out, " %s", item);
  *col += len;
}

static void text_header(const struct power *w, FILE *out) {
  const struct power_opts *o = w->o;
  char a[32];
  fprintf(out, "plan %s at %s requests/min across the service\n", w->p->name,
          fmt_count(o->traffic, a, sizeof a));
  fputs("Expected counts minute by minute, no noise. The canary gets the stage's "
        "traffic_percent of the\n", out);
  int col = fprintf(out, "requests, the baseline %s. Healthy rates:",
                    w->p->srm_control ? "as many (traffic_split: control)"
                                      : "the rest (traffic_split: complement)"),
      n = 0;
  for (int i = 0; i < o->n_rates; i++) {
    bool later = false; /* each name once, with its last value */
    for (int j = i + 1; j < o->n_rates; j++)
      later |= !strcmp(o->rates[i].name, o->rates[j].name);
    if (later || !strcmp(o->rates[i].name, "requests"))
      continue;
    char item[PLAN_NAME_MAX + 40];
    snprintf(item, sizeof item, "%s=%g", o->rates[i].name, o->rates[i].v);
    wrap_item(out, &col, !n++, item);
  }
  fprintf(out, ".\n%g distribution values/min per variant; dispersion %g.\n", o->values,
          o->dispersion);
  fputs("Halt rules: a regression from the stage's start, the stage-start term alone "
        "(conservative),\nthe rule's for: included. Gates: the healthy canary, its cohort "
        "alone; a quantile against the\nbaseline on exponential values, an absolute line "
        "with half the allowed share above it.\n",
        out);
}

/* The halt rules on evidence, once: their test, for: and share of the false-halt budget. */
static void text_rules(const struct power *w, FILE *out) {
  const struct mstore_evidence_plan *ev = &w->mp->ev;
  char a[32], b[32], c[32];
  fprintf(out, "\nhalt rules on evidence: false_halt_budget %s over %d distinct tests, a test "
               "of budget_weight 1 at %s\n",
          fmt_pct(w->p->false_halt_budget, b, sizeof b), ev->n_tests,
          fmt_pct(ev->rule_alpha, a, sizeof a));
  fprintf(out, "  %-26s %-50s %-5s %s\n", "rule", "test", "for", "share");
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    struct expr_evq q;
    bool rule = x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT;
    for (int k = 0; rule && k < x->e.n_nodes; k++) {
      if (!expr_evidence_form(&x->e, k, &q))
        continue;
      struct row r = {.name = x->name};
      row_init(w, &r, x, &q, 0, x->for_ms);
      const struct mstore_expr *by = paid_by(w, x, &q);
      fprintf(out, "  %-26s %-50s %-5s %s%s%s\n", x->name, r.test,
              fmt_minutes(r.for_min, b, sizeof b), by ? "" : fmt_pct(q.alpha, c, sizeof c),
              by ? "the same test as " : "", by ? by->name : "");
    }
  }
  if (split_tested(w->p))
    fprintf(out, "  %-26s %-50s %-5s %s\n", "(traffic split)", "the canary's share of requests",
            "", fmt_pct(ev->rule_alpha, c, sizeof c));
  fprintf(out, "expected false halts over the whole plan <= %s (union bound); gates pass at "
               "%s each.\n",
          fmt_pct(union_bound(w), a, sizeof a), fmt_pct(ev->gate_alpha, b, sizeof b));
}

static void text_halt(const struct row *r, FILE *out) {
  char t[32], n[32], cell[POWER_STEPS][64];
  for (int i = 0; i < POWER_STEPS; i++) {
    const struct step *s = &r->steps[i];
    if (!s->possible)
      snprintf(cell[i], sizeof cell[i], "-");
    else if (!isfinite(s->minutes))
      snprintf(cell[i], sizeof cell[i], "%gx never", s->mult);
    else
      snprintf(cell[i], sizeof cell[i], "%gx %s (%s)", s->mult, fmt_minutes(s->minutes, t, sizeof t),
               fmt_count(s->bad, n, sizeof n));
  }
  fprintf(out, "  %-26s %-21s %-21s %s\n", r->name, cell[0], cell[1], cell[2]);
}

/* A gate's name in its table: "exit error_rate", "beta entry slos_24h" (another stage's). */
static const char *gate_label(const struct power *w, const struct row *r, char *buf, size_t len) {
  bool own = r->gate_stage == r->cohort;
  snprintf(buf, len, "%s%s%s %s", own ? "" : w->p->stages[r->gate_stage].name, own ? "" : " ",
           r->exit ? "exit" : "entry", r->name);
  return buf;
}

static void text_gate(const struct power *w, const struct row *r, FILE *out) {
  char label[2 * PLAN_NAME_MAX + 16], t[32], n[32], h[32], cell[96];
  if (r->slo)
    snprintf(label, sizeof label, "  SLO %s", r->slo);
  else
    gate_label(w, r, label, sizeof label);
  if (r->wrong_side || !isfinite(r->minutes))
    snprintf(cell, sizeof cell, "never");
  else
    snprintf(cell, sizeof cell, "%s (~%s canary %s)", fmt_minutes(r->minutes, t, sizeof t),
             fmt_count(r->need, n, sizeof n), trial_unit(&r->q));
  snprintf(h, sizeof h, "%.3g", r->healthy);
  fprintf(out, "  %-26s %-44s %-5s %-8s %s\n", label, r->test,
          fmt_minutes(r->for_min, t, sizeof t), h, cell);
}

/* The gates decided on this stage's traffic; a slos_met() criterion heads its SLOs' rows. */
static void text_gates(const struct power *w, const struct rows *rows, FILE *out) {
  bool head = false;
  const char *group = NULL;
  for (int i = 0; i < rows->n; i++) {
    const struct row *r = &rows->v[i];
    if (!r->gate || r->missing || r->no_baseline)
      continue;
    if (!head)
      fprintf(out, "  %-26s %-44s %-5s %-8s %s\n", "gate", "test", "for", "healthy",
              "passes after"), head = true;
    if (r->slo && r->name != group) {
      char label[2 * PLAN_NAME_MAX + 16];
      fprintf(out, "  %s: slos_met(), every SLO:\n", gate_label(w, r, label, sizeof label));
    }
    group = r->slo ? r->name : NULL;
    text_gate(w, r, out);
  }
}

static void text_stage(const struct power *w, const struct flow *f, const struct rows *rows,
                       FILE *out) {
  const struct stage *st = &w->p->stages[f->stage];
  char a[32], b[32], c[32], d[32];
  fmt_minutes((double)st->min_duration_ms / 60000.0, a, sizeof a);
  fprintf(out, "\nstage %d %s: %g%%, ", f->stage + 1, st->name, st->traffic_percent);
  if (f->has_max)
    fprintf(out, "min %s, max %s", a, fmt_minutes(f->limit, b, sizeof b));
  else
    fprintf(out, "min %s, no max (72h shown)", a);
  fprintf(out, "; per minute: canary %s requests, baseline %s\n",
          fmt_count(f->canary, c, sizeof c), fmt_count(f->baseline, d, sizeof d));
  if (w->mp->ev.margin[f->stage] > 0 && f->baseline > 0)
    fprintf(out, "  (excess_margin: a comparison with the baseline needs %gx it here)\n",
            1 + w->mp->ev.margin[f->stage]);
  bool head = false;
  for (int i = 0; i < rows->n; i++) {
    const struct row *r = &rows->v[i];
    if (r->gate || r->missing || r->no_baseline)
      continue;
    if (!head)
      fprintf(out, "  %-26s %s\n", "halt rule",
              "regression: time to halt (canary bad events by then)"), head = true;
    text_halt(r, out);
  }
  text_gates(w, rows, out);
  char msg[512];
  for (int i = 0; i < rows->n; i++)
    if (row_note(w, f, &rows->v[i], msg, sizeof msg))
      fprintf(out, "  note: %s\n", msg);
  for (int i = 0; i < rows->n; i++)
    if (row_warning(w, f, &rows->v[i], msg, sizeof msg))
      fprintf(out, "  WARNING: %s\n", msg);
}

/* Metric rules and gates that are not decided on evidence: named, so their absence is seen. */
static void text_unmodelled(const struct power *w, FILE *out) {
  int col = 0, n = 0;
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    if (x->owner == MSTORE_SLO || x->n_evidence > 0)
      continue;
    if ((x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT) && x->k > 0)
      continue; /* a rule's name once */
    if (!n)
      col = fprintf(out, "\nmetric rules and gates not decided on evidence (not shown):") - 1;
    char item[3 * PLAN_NAME_MAX];
    if (x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT)
      snprintf(item, sizeof item, "%s", x->name);
    else
      snprintf(item, sizeof item, "%s %s %s", w->p->stages[x->stage].name,
               x->owner == MSTORE_EXIT ? "exit" : "entry", x->name);
    wrap_item(out, &col, !n++, item);
  }
  if (n)
    fputc('\n', out);
}

/* --- JSON ------------------------------------------------------------------------------------- */

/* v to 12 significant digits: 3 x 0.0002 is 0.0006 in the document, not 0.0006000000000000001. */
static void json_value(struct jbuf *b, double v) {
  char s[32];
  snprintf(s, sizeof s, "%.12g", v);
  jbuf_number(b, strtod(s, NULL));
}

static void json_minutes(struct jbuf *b, const char *key, double m) {
  jbuf_printf(b, ",\"%s\":", key);
  if (isfinite(m))
    jbuf_number(b, m);
  else
    jbuf_null(b);
}

/* Who the row is: "rule", or "stage", "gate" (entry, exit), "criterion" and "slo". */
static void json_row_common(struct jbuf *b, const struct power *w, const struct row *r) {
  if (!r->gate) {
    jbuf_puts(b, "{\"rule\":");
    jbuf_string(b, r->name);
  } else {
    jbuf_puts(b, "{\"stage\":");
    jbuf_string(b, w->p->stages[r->gate_stage].name);
    jbuf_printf(b, ",\"gate\":\"%s\",\"criterion\":", r->exit ? "exit" : "entry");
    jbuf_string(b, r->name);
    jbuf_puts(b, ",\"slo\":");
    jbuf_string(b, r->slo); /* NULL: null */
  }
  jbuf_puts(b, ",\"test\":");
  jbuf_string(b, r->test);
  jbuf_puts(b, ",\"form\":");
  jbuf_string(b, r->q.quantile ? (r->q.versus_baseline ? "quantile_versus_baseline" : "quantile")
                 : r->q.versus_baseline ? "ratio_versus_baseline"
                                        : "ratio");
  jbuf_puts(b, ",\"alpha\":");
  jbuf_number(b, r->alpha);
  jbuf_puts(b, ",\"for_minutes\":");
  jbuf_number(b, r->for_min);
}

static void json_halt(struct jbuf *b, const struct power *w, const struct row *r) {
  json_row_common(b, w, r);
  jbuf_puts(b, ",\"relative_to\":");
  jbuf_string(b, r->relative);
  jbuf_puts(b, ",\"base\":");
  jbuf_number(b, r->base);
  jbuf_puts(b, ",\"regressions\":[");
  for (int i = 0, n = 0; i < POWER_STEPS; i++) {
    const struct step *s = &r->steps[i];
    if (!s->possible)
      continue;
    jbuf_printf(b, "%s{\"multiplier\":", n++ ? "," : "");
    jbuf_number(b, s->mult);
    jbuf_puts(b, ",\"value\":");
    json_value(b, s->value);
    json_minutes(b, "minutes", s->minutes);
    jbuf_puts(b, ",\"canary_bad_events\":");
    if (isfinite(s->minutes))
      jbuf_number(b, round(s->bad * 10) / 10);
    else
      jbuf_null(b);
    jbuf_putc(b, '}');
  }
  jbuf_puts(b, "]}");
}

static void json_gate(struct jbuf *b, const struct power *w, const struct row *r) {
  json_row_common(b, w, r);
  jbuf_puts(b, ",\"healthy\":");
  json_value(b, r->healthy);
  jbuf_puts(b, ",\"passes\":");
  jbuf_bool(b, isfinite(r->minutes));
  json_minutes(b, "minutes", r->minutes);
  json_minutes(b, "test_minutes", r->test_min);
  jbuf_puts(b, ",\"trials_unit\":");
  jbuf_string(b, trial_unit(&r->q));
  jbuf_puts(b, ",\"canary_trials_needed\":");
  if (r->need > 0)
    jbuf_number(b, round(r->need));
  else
    jbuf_null(b);
  jbuf_puts(b, ",\"canary_trials_in_stage\":");
  jbuf_number(b, round(r->gets));
  jbuf_putc(b, '}');
}

/* One array of the stage's rows of a kind, or of its notes or warnings (as strings). */
enum json_part { PART_HALT, PART_GATE, PART_NOTE, PART_WARNING };

static void json_part(struct jbuf *b, const struct power *w, const struct flow *f,
                      const struct rows *rows, enum json_part part) {
  static const char *const key[] = {"halt_rules", "gates", "notes", "warnings"};
  jbuf_printf(b, ",\"%s\":[", key[part]);
  char msg[512];
  for (int i = 0, n = 0; i < rows->n; i++) {
    const struct row *r = &rows->v[i];
    bool shown = !r->missing && !r->no_baseline;
    if (part == PART_HALT && shown && !r->gate)
      jbuf_puts(b, n++ ? "," : ""), json_halt(b, w, r);
    else if (part == PART_GATE && shown && r->gate)
      jbuf_puts(b, n++ ? "," : ""), json_gate(b, w, r);
    else if ((part == PART_NOTE && row_note(w, f, r, msg, sizeof msg)) ||
             (part == PART_WARNING && row_warning(w, f, r, msg, sizeof msg)))
      jbuf_puts(b, n++ ? "," : ""), jbuf_string(b, msg);
  }
  jbuf_putc(b, ']');
}

static void json_stage(struct jbuf *b, const struct power *w, const struct flow *f,
                       const struct rows *rows) {
  const struct stage *st = &w->p->stages[f->stage];
  jbuf_puts(b, "{\"stage\":");
  jbuf_string(b, st->name);
  jbuf_puts(b, ",\"traffic_percent\":");
  jbuf_number(b, st->traffic_percent);
  jbuf_puts(b, ",\"min_minutes\":");
  jbuf_number(b, (double)st->min_duration_ms / 60000.0);
  jbuf_puts(b, ",\"max_minutes\":");
  if (f->has_max)
    jbuf_number(b, f->limit);
  else
    jbuf_null(b);
  jbuf_puts(b, ",\"canary_requests_per_minute\":");
  jbuf_number(b, f->canary);
  jbuf_puts(b, ",\"baseline_requests_per_minute\":");
  jbuf_number(b, f->baseline);
  for (int part = PART_HALT; part <= PART_WARNING; part++)
    json_part(b, w, f, rows, (enum json_part)part);
  jbuf_putc(b, '}');
}

static void json_budget(struct jbuf *b, const struct power *w) {
  const struct mstore_evidence_plan *ev = &w->mp->ev;
  jbuf_puts(b, ",\"false_halts\":{\"false_halt_budget\":");
  jbuf_number(b, w->p->false_halt_budget);
  jbuf_puts(b, ",\"union_bound\":");
  jbuf_number(b, union_bound(w));
  jbuf_printf(b, ",\"tests\":%d,\"rule_alpha\":", ev->n_tests);
  jbuf_number(b, ev->rule_alpha);
  jbuf_puts(b, ",\"shares\":[");
  int n = 0;
  for (int a = 0; a < 2; a++) /* the halt rules, then the alerts ("alert": true) */
    for (int i = 0; i < (a ? w->p->n_alerts : w->p->n_rules); i++) {
      int k = rule_tests(w, a ? MSTORE_ALERT : MSTORE_RULE, i);
      if (!k)
        continue;
      jbuf_puts(b, n++ ? ",{\"rule\":" : "{\"rule\":");
      jbuf_string(b, a ? w->p->alerts[i].name : w->p->rules[i].name);
      if (a)
        jbuf_puts(b, ",\"alert\":true");
      const char *same = NULL;
      jbuf_puts(b, ",\"share\":");
      jbuf_number(b, rule_share(w, a ? MSTORE_ALERT : MSTORE_RULE, i, &same));
      if (same) {
        jbuf_puts(b, ",\"same_test_as\":");
        jbuf_string(b, same);
      }
      jbuf_putc(b, '}');
    }
  if (split_tested(w->p)) {
    jbuf_puts(b, n ? "," : "");
    jbuf_puts(b, "{\"rule\":\"traffic_split\",\"share\":");
    jbuf_number(b, ev->rule_alpha);
    jbuf_putc(b, '}');
  }
  jbuf_puts(b, "]},\"gate_alpha\":");
  jbuf_number(b, ev->gate_alpha);
}

static void json_header(struct jbuf *b, const struct power *w) {
  const struct power_opts *o = w->o;
  jbuf_puts(b, "{\"plan\":");
  jbuf_string(b, w->p->name);
  jbuf_puts(b, ",\"traffic_per_minute\":");
  jbuf_number(b, o->traffic);
  jbuf_puts(b, ",\"values_per_minute\":");
  jbuf_number(b, o->values);
  jbuf_puts(b, ",\"dispersion\":");
  jbuf_number(b, o->dispersion);
  jbuf_puts(b, ",\"baseline\":");
  jbuf_string(b, w->p->srm_control ? "control" : "complement");
  jbuf_puts(b, ",\"rates\":{");
  for (int i = 0, n = 0; i < o->n_rates; i++) {
    bool later = false;
    for (int j = i + 1; j < o->n_rates; j++)
      later |= !strcmp(o->rates[i].name, o->rates[j].name);
    if (later)
      continue;
    jbuf_puts(b, n++ ? "," : "");
    jbuf_string(b, o->rates[i].name);
    jbuf_putc(b, ':');
    jbuf_number(b, o->rates[i].v);
  }
  jbuf_putc(b, '}');
}

/* --- the report ------------------------------------------------------------------------------- */

static int report(const struct power *w, FILE *out) {
  struct jbuf b;
  jbuf_init(&b);
  if (w->o->json) {
    json_header(&b, w);
    json_budget(&b, w);
    jbuf_puts(&b, ",\"stages\":[");
  } else {
    text_header(w, out);
    text_rules(w, out);
  }
  bool oom = false;
  for (int s = 0, shown = 0; s < w->p->n_stages; s++) {
    if (!(w->p->stages[s].traffic_percent > 0))
      continue; /* no canary traffic: nothing is decided there */
    struct flow f = flow_of(w, s);
    struct rows rows = {0};
    stage_rows(w, &f, &rows);
    oom |= rows.oom;
    if (w->o->json)
      jbuf_puts(&b, shown++ ? "," : ""), json_stage(&b, w, &f, &rows);
    else
      text_stage(w, &f, &rows, out);
    free(rows.v);
  }
  if (w->o->json)
    jbuf_puts(&b, "]}\n");
  else
    text_unmodelled(w, out);
  oom |= b.oom;
  if (w->o->json && !oom)
    fputs(b.data, out);
  jbuf_free(&b);
  if (oom) {
    fprintf(stderr, PROG ": out of memory\n");
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}

/* --- the command line ------------------------------------------------------------------------- */

/* A finite number >= min (> min when strict), all of s. */
static bool parse_number(const char *s, double min, bool strict, double *v) {
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(d) || d < min || (strict && d == min))
    return false;
  *v = d;
  return true;
}

static bool add_rate(struct power_opts *o, const char *name, size_t len, double v) {
  if (!len || len >= PLAN_NAME_MAX || o->n_rates == POWER_MAX_RATES)
    return false;
  struct power_rate *r = &o->rates[o->n_rates++];
  memcpy(r->name, name, len);
  r->name[len] = 0;
  r->v = v;
  return true;
}

/* K=V,K=V: every V a number > 0 (a numerator's also < 1: a probability). */
static bool parse_rates(struct power_opts *o, const char *arg) {
  const char *s = arg;
  while (*s) {
    const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
    const char *eq = memchr(s, '=', (size_t)(end - s));
    char num[64];
    double v;
    if (!eq || (size_t)(end - eq - 1) >= sizeof num) {
      fprintf(stderr, PROG ": --rates: '%.*s' is not NAME=RATE\n", (int)(end - s), s);
      return false;
    }
    memcpy(num, eq + 1, (size_t)(end - eq - 1));
    num[end - eq - 1] = 0;
    if (!parse_number(num, 0, true, &v) || !add_rate(o, s, (size_t)(eq - s), v)) {
      fprintf(stderr, PROG ": --rates: '%.*s': %s\n", (int)(end - s), s,
              eq == s || eq - s >= PLAN_NAME_MAX ? "not a counter name"
              : o->n_rates == POWER_MAX_RATES    ? "too many rates"
                                                 : "the rate is not a number > 0");
      return false;
    }
    s = comma ? comma + 1 : end;
  }
  return true;
}

/* Whether the plan's evidence divides by or counts counter name. */
static bool plan_counts(const struct mstore_plan *mp, const char *name) {
  for (int i = 0; i < mp->n_pairs; i++)
    if (!strcmp(mp->pairs[i].num, name) || !strcmp(mp->pairs[i].den, name))
      return true;
  return false;
}

/* A numerator's rate is a probability per trial: 1 or more is a typo (1.5 for 1.5%?). A name
 * the plan never reads is said (a typo of one it does), not refused. */
static bool check_rates(const struct power *w, int n_defaults) {
  for (int i = 0; i < w->mp->n_pairs; i++) {
    double v;
    if (rate_of(w, w->mp->pairs[i].num, &v) && v >= 1) {
      fprintf(stderr, PROG ": --rates: %s=%g: a rate per %s must be under 1\n",
              w->mp->pairs[i].num, v, w->mp->pairs[i].den);
      return false;
    }
  }
  for (int i = n_defaults; i < w->o->n_rates; i++)
    if (!plan_counts(w->mp, w->o->rates[i].name))
      fprintf(stderr, PROG ": note: --rates: the plan's evidence does not read '%s'\n",
              w->o->rates[i].name);
  return true;
}

/* Exit status, or -1 to go on. --help goes to out. */
static int parse_args(int argc, char **argv, struct power_opts *o, const char **plan_path,
                      FILE *out) {
  static const struct option opts[] = {
      {"plan", required_argument, NULL, 'p'},   {"traffic", required_argument, NULL, 't'},
      {"rates", required_argument, NULL, 'r'},  {"values", required_argument, NULL, 'v'},
      {"dispersion", required_argument, NULL, 'd'}, {"format", required_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "p:t:r:v:d:f:h", opts, NULL)) != -1) {
    switch (c) {
    case 'p': *plan_path = optarg; break;
    case 't':
    case 'v':
      if (!parse_number(optarg, 0, true, c == 't' ? &o->traffic : &o->values)) {
        fprintf(stderr, PROG ": --%s: '%s' is not a number > 0\n",
                c == 't' ? "traffic" : "values", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'd':
      if (!parse_number(optarg, 1, false, &o->dispersion)) {
        fprintf(stderr, PROG ": --dispersion: '%s' is not a number >= 1\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'r':
      if (!parse_rates(o, optarg))
        return EXIT_USAGE;
      break;
    case 'f':
      if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
        fprintf(stderr, PROG ": --format: '%s' is not text or json\n", optarg);
        return EXIT_USAGE;
      }
      o->json = !strcmp(optarg, "json");
      break;
    case 'h': fputs(usage, out); return EXIT_OK;
    default: fputs(usage, stderr); return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument '%s'\n\n%s", argv[optind], usage);
    return EXIT_USAGE;
  }
  return -1;
}

static void opts_default(struct power_opts *o) {
  *o = (struct power_opts){.traffic = 240000, .values = 1000, .dispersion = 1};
  for (size_t i = 0; i < sizeof default_rates / sizeof default_rates[0]; i++)
    o->rates[o->n_rates++] = default_rates[i];
}

/* The subcommand, writing its report to out (the tests read it). */
static int plan_power(int argc, char **argv, FILE *out) {
  static struct power_opts o;
  opts_default(&o);
  const char *path = NULL;
  int code = parse_args(argc, argv, &o, &path, out);
  if (code >= 0)
    return code;
  static struct plan plan; /* ~100 KiB: not on the stack */
  if (!cli_load_plan(PROG, path, &plan))
    return EXIT_BAD_INPUT;
  struct mstore_plan mp;
  char why[1024];
  if (mstore_plan_init(&mp, &plan, why, sizeof why) != CANARY_OK) { /* cli_load_plan did it */
    fprintf(stderr, PROG ": %s\n", why);
    return EXIT_BAD_INPUT;
  }
  struct power w = {.p = &plan, .mp = &mp, .o = &o};
  if (!check_rates(&w, (int)(sizeof default_rates / sizeof default_rates[0])))
    code = EXIT_USAGE;
  else if (!mp.ev.on)
    fprintf(out, "plan %s decides nothing on evidence (decisions: mode: estimate): nothing to "
                 "compute\n", plan.name), code = EXIT_OK;
  else
    code = report(&w, out);
  mstore_plan_free(&mp);
  return code;
}

int app_plan_power(int argc, char **argv) {
  int code = plan_power(argc, argv, stdout);
  if (fflush(stdout) != 0) {
    perror(PROG ": stdout");
    return EXIT_BAD_INPUT;
  }
  return code;
}
