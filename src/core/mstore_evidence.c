/*
 * The evidence over a rollout's metric store: the counts since each series began (and since
 * each recent hour), turned into a mixture of anytime-valid tests (core/evidence.h) over the
 * points where a regression may have started. docs/statistics.md, "Evidence", says why.
 */
#include <math.h>
#include <string.h>

#include "core/evidence.h"
#include "core/metric_store.h"

/* One start point's log-likelihood ratios, and whether any trial reached it. */
struct term {
  struct evid_llr llr;
  bool any;
};

static void term_reset(struct term *t) {
  evid_llr_reset(&t->llr);
  t->any = false;
}

static double add_term(double acc, double log_w, const struct term *t) {
  if (!t->any || log_w == -INFINITY)
    return acc;
  return evid_log_add(acc, log_w + evid_log_e(&t->llr));
}


/*
 * The counter's total when hour `hour` began: the snapshot of the first hour at or after it
 * (later hours had no event before theirs), the total itself when none is that late (nothing
 * came since), NaN when the ring no longer reaches back that far.
 */
static double total_at(const struct mstore *ms, int cohort, enum variant v, const char *name,
                       int64_t hour) {
  const struct mstore_series *s = mstore_series_find(ms, cohort, v, name);
  if (!s)
    return 0;
  double at = s->total;
  int kept = s->n_snaps < MSTORE_SNAPS ? s->n_snaps : MSTORE_SNAPS;
  for (int j = 0; j < kept; j++) {
    int k = (s->n_snaps - 1 - j) % MSTORE_SNAPS; /* newest first */
    if (s->snap_hour[k] < hour)
      return at;
    at = s->snap_total[k];
    if (j == kept - 1 && s->n_snaps > MSTORE_SNAPS && s->snap_hour[k] > hour)
      return NAN; /* evicted: the hour's own snapshot is gone */
  }
  return at;
}

/* The dispersion steps of one variant's reports, pooled over the cohorts up to cohort. */
static bool steps(const struct mstore *ms, int cohort, enum variant v, const char *num,
                  double *sum, double *k) {
  bool any = false;
  *sum = *k = 0;
  for (int s = 0; s <= cohort; s++) {
    const struct mstore_series *x = mstore_series_find(ms, s, v, num);
    if (x && x->disp_prev_n > 0) {
      any = true;
      *sum += x->disp_sum;
      *k += x->disp_k;
    }
  }
  return any;
}

double mstore_dispersion(const struct mstore *ms, int cohort, const char *num, const char *den) {
  (void)den; /* the numerator's series keeps the steps of its pair */
  double sum, k;
  if (!steps(ms, cohort, VARIANT_BASELINE, num, &sum, &k) &&
      !steps(ms, cohort, VARIANT_CANARY, num, &sum, &k))
    return 1;
  if (k < 3)
    return 1;
  double phi = sum / k * (1 + sqrt(2 / k)); /* one standard error up: it errs on the safe side */
  return phi > 1 ? phi : 1;
}

/* The four counts of a ratio in one segment: canary and baseline, bad and all. */
struct counts {
  double xc, nc, xb, nb;
};

/* The time of the newest add of a counter; INT64_MIN when none. */
static int64_t last_report(const struct mstore *ms, int cohort, enum variant v, const char *name) {
  const struct mstore_series *s = mstore_series_find(ms, cohort, v, name);
  return s && s->n_recent ? s->recent_t[(s->n_recent - 1) % MSTORE_RECENT] : INT64_MIN;
}

static double total_upto(const struct mstore *ms, int cohort, enum variant v, const char *name,
                         int64_t cut) {
  const struct mstore_series *s = mstore_series_find(ms, cohort, v, name);
  return s ? mstore_total_upto(s, cut) : 0;
}

/*
 * A comparison's counts line the variants up: each counted up to the older of their newest
 * reports, so the canary's report for an interval is not weighed against the baseline's for
 * the one before (a whole interval of one side is a mismatch of its own). An absolute test
 * reads the canary alone, up to its newest report.
 */
static bool read_counts(const struct mstore *ms, int cohort, const struct expr_evq *q,
                        struct counts *c) {
  int64_t cut = INT64_MAX;
  if (q->versus_baseline) {
    int64_t a = last_report(ms, cohort, VARIANT_CANARY, q->den);
    int64_t b = last_report(ms, cohort, VARIANT_BASELINE, q->den);
    cut = a < b ? a : b;
  }
  c->xc = total_upto(ms, cohort, VARIANT_CANARY, q->num, cut);
  c->nc = total_upto(ms, cohort, VARIANT_CANARY, q->den, cut);
  c->xb = total_upto(ms, cohort, VARIANT_BASELINE, q->num, cut);
  c->nb = total_upto(ms, cohort, VARIANT_BASELINE, q->den, cut);
  return c->nc > 0;
}

/* Effective counts: bad events and trials over the dispersion (the exposure share is kept). */
static struct counts effective(struct counts c, double phi) {
  return (struct counts){c.xc / phi, c.nc / phi, c.xb / phi, c.nb / phi};
}

/* The null of a ratio segment in cohort s: absolute against the limit, or the canary against
 * the baseline with the cohort's margin (the null's ratio for "below" is the margin's too: a
 * gate that asks "not worse than the baseline" passes within it), at the cohort's exposure.
 * False when the segment says nothing (no exposure on a side). */
static bool ratio_coef(struct evid_coef *k, const struct expr_evq *q, const struct counts *c,
                       double margin) {
  enum evid_side side = q->above ? EVID_ABOVE : EVID_BELOW;
  if (!q->versus_baseline) {
    evid_coef_init(k, q->limit, side);
    return true;
  }
  if (!(c->nc > 0 && c->nb > 0))
    return false;
  evid_coef_init(k, evid_split_p(c->nc / (c->nc + c->nb), q->k * (1 + margin)), side);
  return true;
}

/* Adds a segment with the coefficients of its cohort: successes of trials, absolute (the
 * canary's bad events of its trials) or comparative (the canary's share of all bad events). */
static void add_segment(struct term *t, const struct evid_coef *k, const struct expr_evq *q,
                        const struct counts *raw, double phi) {
  struct counts e = effective(*raw, phi);
  const struct counts *c = &e;
  double x = c->xc, n = q->versus_baseline ? c->xc + c->xb : c->nc;
  if (n > 0) {
    evid_llr_add_coef(&t->llr, k, x, n);
    t->any = true;
  }
}

static bool null_side(const struct evid_coef *k, const struct expr_evq *q, const struct counts *c) {
  return evid_on_null_side(k, c->xc, q->versus_baseline ? c->xc + c->xb : c->nc);
}

static double ratio_of(double x, double n) { return n > 0 ? x / n : NAN; }

/* Evidence for a ratio of counters. */
static void evidence_ratio(const struct mstore_ctx *cx, const struct expr_evq *q,
                           struct expr_evidence *out) {
  const struct mstore *ms = cx->ms;
  const struct mstore_evidence_plan *ev = &cx->mp->ev;
  int cur = cx->cohort;
  struct counts now;
  if (!read_counts(ms, cur, q, &now) || (q->versus_baseline && !(now.nb > 0)))
    return; /* n = 0: no data in the exposed cohort */
  /* per-cohort terms, summed from the back: suffix[s] = cohorts s .. cur */
  double phi = mstore_dispersion(ms, cur, q->num, q->den);
  double log_e = -INFINITY;
  struct term suffix;
  term_reset(&suffix);
  struct evid_coef kcur;
  bool have_cur = ratio_coef(&kcur, q, &now, ev->margin[cur]);
  if (!q->above) { /* a gate: this cohort's own evidence that it is under (passing gate_alpha
                    * once is all a gate's error is about), no start points to mix */
    if (have_cur)
      add_segment(&suffix, &kcur, q, &now, phi);
    log_e = add_term(log_e, 0, &suffix);
  }
  for (int s = cur; q->above && s >= 0; s--) {
    struct counts c;
    struct evid_coef k;
    if (s == cur) {
      if (have_cur)
        add_segment(&suffix, &kcur, q, &now, phi);
    } else if (read_counts(ms, s, q, &c) && ratio_coef(&k, q, &c, ev->margin[s])) {
      add_segment(&suffix, &k, q, &c, phi);
    }
    log_e = add_term(log_e, s == 0 ? ev->log_w_release : ev->log_w_stage, &suffix);
  }
  /* from each of the exposed cohort's recent hours (the canary's exposure series says which),
   * at the cohort's exposure; a term whose estimate is on the null's side is left out */
  const struct mstore_series *ex = mstore_series_find(ms, cur, VARIANT_CANARY, q->den);
  int kept = ex->n_snaps < MSTORE_SNAPS ? ex->n_snaps : MSTORE_SNAPS;
  for (int j = 0; q->above && have_cur && j < kept; j++) {
    int32_t seq = ex->n_snaps - 1 - j;
    if (seq == 0 || seq >= ev->hours[cur])
      continue; /* the first is the stage's start (counted above); past the stage's hours: none */
    int64_t hour = ex->snap_hour[seq % MSTORE_SNAPS];
    struct counts c = {
        now.xc - total_at(ms, cur, VARIANT_CANARY, q->num, hour),
        now.nc - total_at(ms, cur, VARIANT_CANARY, q->den, hour),
        now.xb - total_at(ms, cur, VARIANT_BASELINE, q->num, hour),
        now.nb - total_at(ms, cur, VARIANT_BASELINE, q->den, hour)};
    if (isnan(c.xc + c.nc + c.xb + c.nb) || null_side(&kcur, q, &c))
      continue;
    struct term t;
    term_reset(&t);
    add_segment(&t, &kcur, q, &c, phi);
    log_e = add_term(log_e, ev->log_w_hour, &t);
  }
  out->log_e = log_e == -INFINITY ? 0 : log_e;
  out->dispersion = phi;
  out->canary_x = now.xc;
  out->canary_n = now.nc;
  out->n = (int64_t)now.nc;
  if (out->n == 0)
    out->n = 1; /* a fraction of an event still counted something */
  enum evid_side side = q->above ? EVID_ABOVE : EVID_BELOW;
  if (q->versus_baseline) {
    out->baseline_x = now.xb;
    out->baseline_n = now.nb;
    double rb = ratio_of(now.xb, now.nb), rc = ratio_of(now.xc, now.nc);
    out->estimate = rb > 0 ? rc / rb : rc > 0 ? INFINITY : NAN;
    out->reference = q->k * (1 + ev->margin[cur]);
    if (cx->explain)
      out->bound = evid_bound_split(now.xc / phi, now.xb / phi, now.nc / (now.nc + now.nb),
                                    q->alpha, side);
  } else {
    out->estimate = ratio_of(now.xc, now.nc);
    out->reference = q->limit;
    if (cx->explain)
      out->bound = evid_bound_rate(now.xc / phi, now.nc / phi, q->alpha, side);
  }
}

/* Values a quantile of the baseline needs before it draws the line (p99: 100). */
static uint64_t line_min(double q) {
  double need = q < 1 ? ceil(1 / (1 - q) - 1e-9) : 1e15;
  return need < 20 ? 20 : (uint64_t)need;
}

/* Where cohort s's shares are counted: the limit, or k x the baseline's quantile; NaN when the
 * baseline has too few values to say. */
static double line_of(const struct mstore *ms, int s, const struct expr_evq *q) {
  if (!q->versus_baseline)
    return q->limit;
  const struct mstore_series *b = mstore_series_find(ms, s, VARIANT_BASELINE, q->dist);
  double v;
  if (!b || !b->all || sketch_count(b->all) < line_min(q->q) || !sketch_quantile(b->all, q->q, &v))
    return NAN;
  return q->k * v;
}

/*
 * Evidence for a quantile: "quantile q of d is above L" is "more than 1 - q of d's values are
 * above L" — a count, tested like a rate. Against the baseline, L is k times the baseline's
 * quantile in the same cohort. Whole cohorts only (the sketches have no hourly snapshots).
 */
static void evidence_quantile(const struct mstore_ctx *cx, const struct expr_evq *q,
                              struct expr_evidence *out) {
  const struct mstore *ms = cx->ms;
  const struct mstore_evidence_plan *ev = &cx->mp->ev;
  int cur = cx->cohort;
  enum evid_side side = q->above ? EVID_ABOVE : EVID_BELOW;
  double p0 = 1 - q->q;
  double log_e = -INFINITY;
  struct term suffix;
  term_reset(&suffix);
  int first = q->above ? 0 : cur; /* a gate: this cohort alone, weight 1 (as for ratios) */
  for (int s = cur; s >= first; s--) {
    const struct mstore_series *c = mstore_series_find(ms, s, VARIANT_CANARY, q->dist);
    double line = line_of(ms, s, q);
    if (c && c->all && sketch_count(c->all) && !isnan(line)) {
      double n = (double)sketch_count(c->all), x = (double)sketch_count_above(c->all, line);
      evid_llr_add(&suffix.llr, x, n, p0, side);
      suffix.any = true;
      if (s == cur) {
        out->canary_x = x;
        out->canary_n = n;
        out->n = (int64_t)n;
        out->line = line;
      }
    }
    if (q->above)
      log_e = add_term(log_e, s == 0 ? ev->log_w_release : ev->log_w_stage, &suffix);
  }
  if (!q->above)
    log_e = add_term(log_e, 0, &suffix);
  if (!out->n)
    return;
  out->log_e = log_e == -INFINITY ? 0 : log_e;
  out->estimate = out->canary_x / out->canary_n;
  out->reference = p0;
  if (cx->explain)
    out->bound = evid_bound_rate(out->canary_x, out->canary_n, q->alpha, side);
}

void mstore_evidence(void *ctx, const struct expr_evq *q, struct expr_evidence *out) {
  const struct mstore_ctx *cx = ctx;
  memset(out, 0, sizeof *out);
  out->log_e = out->estimate = out->reference = out->bound = out->line = NAN;
  out->dispersion = 1;
  if (!cx->mp || cx->cohort < 0 || cx->cohort >= PLAN_MAX_STAGES)
    return;
  if (q->quantile)
    evidence_quantile(cx, q, out);
  else
    evidence_ratio(cx, q, out);
}

/* Both variants' requests, lined up as a comparison's counts are. */
static void split_counts(const struct mstore *ms, int cohort, double *c, double *b) {
  int64_t a = last_report(ms, cohort, VARIANT_CANARY, "requests");
  int64_t z = last_report(ms, cohort, VARIANT_BASELINE, "requests");
  int64_t cut = a < z ? a : z;
  *c = total_upto(ms, cohort, VARIANT_CANARY, "requests", cut);
  *b = total_upto(ms, cohort, VARIANT_BASELINE, "requests", cut);
}

/*
 * The split: each request is the canary's with probability p; healthy is p within split_margin
 * of the expected share (relative). Two one-sided tests at the margin's edges, mixed with equal
 * weight (so each is at level alpha / 2), over the same start points as the counters.
 */
void mstore_evidence_split(struct mstore *ms, const struct mstore_plan *mp, int cohort,
                           double alpha, bool explain, struct expr_evidence *out) {
  memset(out, 0, sizeof *out);
  out->log_e = out->estimate = out->reference = out->bound = out->line = NAN;
  out->dispersion = 1;
  if (cohort < 0 || cohort >= PLAN_MAX_STAGES)
    return;
  const struct mstore_evidence_plan *ev = &mp->ev;
  double log_e = -INFINITY;
  for (int side = 0; side < 2; side++) {
    double m = side == 0 ? 1 + ev->split_margin : 1 - ev->split_margin;
    struct term suffix;
    term_reset(&suffix);
    for (int s = cohort; s >= 0; s--) {
      double c, b;
      split_counts(ms, s, &c, &b);
      double p0 = ev->share[s] * m;
      if (c + b > 0 && p0 > 0 && p0 < 1) {
        evid_llr_add(&suffix.llr, c, c + b, p0, side == 0 ? EVID_ABOVE : EVID_BELOW);
        suffix.any = true;
      }
      log_e = add_term(log_e, log(0.5) + (s == 0 ? ev->log_w_release : ev->log_w_stage),
                       &suffix);
    }
  }
  if (!mstore_series_find(ms, cohort, VARIANT_CANARY, "requests") ||
      !mstore_series_find(ms, cohort, VARIANT_BASELINE, "requests"))
    return; /* a variant that never reported is missing data, not a broken split */
  double c, b;
  split_counts(ms, cohort, &c, &b);
  if (!(c + b > 0))
    return;
  out->n = (int64_t)(c + b);
  out->log_e = log_e == -INFINITY ? 0 : log_e;
  out->canary_x = c;
  out->canary_n = c + b;
  out->baseline_x = b;
  out->estimate = c / (c + b);
  out->reference = ev->share[cohort];
  if (explain) {
    bool above = out->estimate > out->reference;
    out->bound = evid_bound_rate(c, c + b, alpha / 2, above ? EVID_ABOVE : EVID_BELOW);
  }
}
