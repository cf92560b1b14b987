/*
 * `canaryctl plan power`, the model: the expected counts of a stage minute by minute and the
 * e-value computed from them as mstore_evidence.c does; one row per comparison at one stage,
 * with the minutes a regression takes to halt and a healthy canary to pass (the command and
 * the model's assumptions: app_plan_power.c).
 */
#include "app/app_plan_power_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/evidence.h"
#include "core/metric_store.h"

/* --- the model -------------------------------------------------------------------------------- */

struct flow power_flow_of(const struct power *w, int s) {
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
bool power_rate_of(const struct power *w, const char *name, double *v) {
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
    double phi = p->dispersed
                     ? mstore_dispersion_of(k_steps * p->disp, k_steps, p->prior_phi, p->prior_n)
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
  if (!power_rate_of(w, q->den, &per_req))
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
  return power_rate_of(w, q->den, &per_req) ? f->canary * per_req : 0;
}

/* --- rows: one comparison at one stage -------------------------------------------------------- */

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
  case EXPR_GT:
    return ">";
  case EXPR_GE:
    return ">=";
  case EXPR_LT:
    return "<";
  case EXPR_LE:
    return "<=";
  default:
    return "?";
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

void power_row_init(const struct power *w, struct row *r, const struct mstore_expr *x,
                    const struct expr_evq *q, int cohort, int64_t for_ms) {
  r->q = *q;
  r->cohort = cohort;
  r->op = op_text(&x->e, q->node);
  r->alpha = q->alpha;
  r->for_min = (double)for_ms / 60000.0;
  describe(w, r, r->test, sizeof r->test);
  double per_req;
  if (!q->quantile && !power_rate_of(w, q->den, &per_req))
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
  if (!power_rate_of(w, q->num, &r->base)) {
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
    if (power_rate_of(w, q->num, &r->healthy))
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
    power_row_init(w, r, x, &q, f->stage, for_ms);
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
  struct row who = {
      .gate = true, .name = x->name, .gate_stage = x->stage, .exit = x->owner == MSTORE_EXIT};
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
void power_stage_rows(const struct power *w, const struct flow *f, struct rows *rows) {
  const struct mstore_plan *mp = w->mp;
  for (int i = 0; i < mp->n; i++)
    if (mp->x[i].owner == MSTORE_RULE || mp->x[i].owner == MSTORE_ALERT)
      add_comparisons(w, f, rows, &mp->x[i], &(struct row){.name = mp->x[i].name}, mp->x[i].for_ms);
  for (int i = 0; i < mp->n; i++) {
    const struct mstore_expr *x = &mp->x[i];
    if ((x->owner == MSTORE_EXIT || x->owner == MSTORE_ENTRY) &&
        gate_cohort(w->p, x->stage, x->owner == MSTORE_EXIT, x->index) == f->stage)
      add_gate(w, f, rows, x);
  }
}
