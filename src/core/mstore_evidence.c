/*
 * The evidence over a rollout's metric store: the counts since each series began (and since
 * each recent 15-minute slice), turned into a mixture of anytime-valid tests (core/evidence.h)
 * over the points where a regression may have started. docs/statistics.md, "Evidence".
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
 * The counter's total when slice `slice` began: the snapshot of the first slice at or after it
 * (later slices had no event before theirs), the total itself when none is that late (nothing
 * came since), NaN when the ring no longer reaches back that far.
 */
static double total_at(const struct mstore *ms, int cohort, enum variant v, const char *name,
                       int64_t slice) {
  const struct mstore_series *s = mstore_series_find(ms, cohort, v, name);
  if (!s)
    return 0;
  double at = s->total;
  int kept = s->n_snaps < MSTORE_SNAPS ? s->n_snaps : MSTORE_SNAPS;
  for (int j = 0; j < kept; j++) {
    int k = (s->n_snaps - 1 - j) % MSTORE_SNAPS; /* newest first */
    if (s->snap_slice[k] < slice)
      return at;
    at = s->snap_total[k];
    if (j == kept - 1 && s->n_snaps > MSTORE_SNAPS && s->snap_slice[k] > slice)
      return NAN; /* evicted: the slice's own snapshot is gone */
  }
  return at;
}

/* The dispersion steps of one variant's reports, pooled over the cohorts up to cohort. */
static bool steps(const struct mstore *ms, int cohort, enum variant v, const char *num, double *sum,
                  double *k) {
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

double mstore_dispersion_of(double sum, double k, double prior_phi, double prior_n) {
  /* Before the reports can tell, the prior speaks: bursts are assumed (a burst of six errors in
   * the canary's first minutes is otherwise proof of a regression) unless the plan learned the
   * service's dispersion from its earlier releases. prior_n steps of prior_phi come first,
   * then the reports outweigh them. No margin on top: the prior already errs up while the
   * reports are few, and once they are many the mean is good to a few percent. Measured
   * (docs/statistics.md, "The dispersion's margin"): one standard error more cost a first release
   * 1-2 failures at p90 in the detection targets; without it 7 of 1,000 healthy releases at 10x
   * less traffic halt instead of 3, within the 1% budget. */
  double n = k + prior_n;
  if (!(n > 0))
    return prior_phi > 1 ? prior_phi : 1;
  double phi = (sum + prior_n * prior_phi) / n;
  /* A learned prior can be wrong (the service's clients began to retry harder): once the
   * release's own reports prove more dispersion than the prior allows — their mean, less about
   * one standard error (a step is a scaled chi-square of one degree: variance 2 phi^2) — they
   * win. With a correct prior this lower bound stays under it and costs nothing. */
  if (k >= MSTORE_DISP_OWN_MIN) {
    double own = sum / k * (1 - sqrt(2 / k));
    if (own > phi)
      phi = own;
  }
  return phi > 1 ? phi : 1;
}

struct mstore_disp_check mstore_dispersion_check(double sum, double k, double value) {
  const double z = 1.6449; /* one-sided 95% */
  struct mstore_disp_check c = {.mean = sum / k};
  double se = c.mean * sqrt(2 / k);
  c.lo = c.mean - z * se;
  c.hi = c.mean + z * se;
  c.mean = c.mean > 1 ? c.mean : 1;
  c.lo = c.lo > 1 ? c.lo : 1;
  c.hi = c.hi > 1 ? c.hi : 1;
  c.verdict = value < c.lo   ? MSTORE_DISP_STALE
              : value > c.hi ? MSTORE_DISP_HIGH
                             : MSTORE_DISP_CURRENT;
  return c;
}

/* The pair whose numerator is num, or NULL. */
static const struct mstore_pair *pair_of(const struct mstore *ms, const char *num) {
  for (int i = 0; i < ms->cfg.n_pairs; i++)
    if (!strcmp(ms->cfg.pairs[i].num, num))
      return &ms->cfg.pairs[i];
  return NULL;
}

void mstore_learned_dispersion(struct mstore *ms, const struct plan *p, const char *service) {
  for (int i = 0; i < ms->cfg.n_pairs; i++) {
    struct mstore_pair *x = &ms->cfg.pairs[i];
    const struct plan_dispersion *d = plan_dispersion_for(p, x->num, service);
    x->prior_phi = d ? d->value : MSTORE_DISP_PRIOR_PHI;
    x->prior_n = d ? d->reports : MSTORE_DISP_PRIOR;
  }
}

void mstore_dispersion_steps(const struct mstore *ms, const char *num, double *sum, double *k) {
  if (!steps(ms, PLAN_MAX_STAGES - 1, VARIANT_BASELINE, num, sum, k))
    *sum = *k = 0;
}

/* Whether any bad event of num has been seen, in either variant, in the cohorts up to cohort. */
static bool any_seen(const struct mstore *ms, int cohort, const char *num) {
  for (int s = 0; s <= cohort; s++)
    for (int v = 0; v < VARIANT_COUNT; v++) {
      const struct mstore_series *x = mstore_series_find(ms, s, (enum variant)v, num);
      if (x && x->total > 0)
        return true;
    }
  return false;
}

double mstore_dispersion(const struct mstore *ms, int cohort, const char *num, const char *den) {
  (void)den; /* the numerator's series keeps the steps of its pair */
  /* No bad event anywhere yet: nothing can halt on it, and a gate is judged on its trials
   * (bursts are assumed from the first bad event on) */
  if (!any_seen(ms, cohort, num))
    return 1;
  double sum, k;
  if (!steps(ms, cohort, VARIANT_BASELINE, num, &sum, &k) &&
      !steps(ms, cohort, VARIANT_CANARY, num, &sum, &k))
    sum = k = 0;
  const struct mstore_pair *p = pair_of(ms, num);
  return p ? mstore_dispersion_of(sum, k, p->prior_phi, p->prior_n)
           : mstore_dispersion_of(sum, k, MSTORE_DISP_PRIOR_PHI, MSTORE_DISP_PRIOR);
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

/* The start point that contributes most to a mixture: what the explanation shows. */
struct best {
  double contrib;   /* log weight + log e of the term */
  struct counts c;  /* its counts (for a term over several cohorts: the exposed cohort's) */
  int from_cohort;  /* where it starts: a cohort's start ... */
  int64_t since_ms; /* ... or a slice's (INT64_MIN: a cohort's start) */
};

static double add_term_best(double acc, double log_w, const struct term *t, struct best *b,
                            const struct counts *c, int from_cohort, int64_t since_ms) {
  if (!t->any || log_w == -INFINITY)
    return acc;
  double contrib = log_w + evid_log_e(&t->llr);
  if (contrib > b->contrib)
    *b = (struct best){contrib, *c, from_cohort, since_ms};
  return evid_log_add(acc, contrib);
}

/*
 * A gate's "the canary's rate is under L", proven two ways at half its level each (a union
 * bound keeps the whole at alpha): on the canary's own counts (log_e_direct), or through its
 * concurrent baseline — the baseline's rate is under b with confidence 1 - alpha/4 (its upper
 * bound, on its far larger counts), and the canary's rate is under L/b times the baseline's with
 * confidence 1 - alpha/4 (the comparison on the split of bad events). The second is how a 0.5%
 * cohort proves "< 0.1%" in hours instead of days: the canary's own few thousand requests say
 * little, but that it is not five times worse than a baseline at 0.02% needs few of them.
 * Returns the log e-value to hold against log(1/alpha): the larger of the two paths, each
 * scaled to that level.
 */
static double gate_through_baseline(const struct expr_evq *q, const struct counts *c, double phi,
                                    double log_e_direct) {
  double direct = log_e_direct - log(2);
  if (!(c->nb > 0) || !(c->nc > 0))
    return direct;
  double b = evid_bound_rate(c->xb / phi, c->nb / phi, q->alpha / 4, EVID_BELOW);
  if (!(b > 0 && b < q->limit))
    return direct;
  struct evid_coef k;
  evid_coef_init(&k, evid_split_p(c->nc / (c->nc + c->nb), q->limit / b), EVID_BELOW);
  struct evid_llr l;
  evid_llr_reset(&l);
  evid_llr_add_coef(&l, &k, c->xc / phi, (c->xc + c->xb) / phi);
  double through = evid_log_e(&l) - log(4);
  return through > direct ? through : direct;
}

/*
 * The last cohort with no baseline (after GA without a holdback, the watch): nothing is left to
 * compare the release with but its own history, so "rate > k x baseline" becomes a change
 * detector — the rate since a recent slice began against the rate before it. For each slice s
 * of the cohort's kept ones (the last two hours), with w the weight of a slice:
 *   - b, the upper bound of the rate before s at confidence 1 - w·alpha/2 (those counts no
 *     longer change once s began);
 *   - the counts since s against b·k·(1 + margin) by the one-sample test, at e >= 2/(w·alpha).
 * A term is wrong on a healthy release only if its bound is (w·alpha/2) or its test fires on
 * noise (w·alpha/2): over the slices at most alpha times their weights' sum. Terms are not added
 * up as a mixture is (a bound's error is not an e-value): the largest decides, scaled so that
 * log(1/alpha) is its threshold. A slow drift of the rate (the diurnal cycle) within the margin
 * (1.2x at 100%) does not fire; docs/statistics.md, "After GA".
 */
static void own_history(const struct mstore_ctx *cx, const struct expr_evq *q,
                        struct expr_evidence *out) {
  const struct mstore *ms = cx->ms;
  const struct mstore_evidence_plan *ev = &cx->mp->ev;
  int cur = cx->cohort;
  const struct mstore_series *ex = mstore_series_find(ms, cur, VARIANT_CANARY, q->den);
  if (!ex || !(ex->total > 0))
    return;
  double phi = mstore_dispersion(ms, cur, q->num, q->den);
  double xn = total_upto(ms, cur, VARIANT_CANARY, q->num, INT64_MAX), nn = ex->total;
  double w = exp(ev->log_w_slice[cur]), limit_k = q->k * (1 + ev->margin[cur]);
  double best = -INFINITY;
  int kept = ex->n_snaps < MSTORE_SNAPS ? ex->n_snaps : MSTORE_SNAPS;
  for (int j = 0; w > 0 && j < kept; j++) {
    int32_t seq = ex->n_snaps - 1 - j;
    if (seq == 0 || seq >= ev->slices[cur])
      continue; /* the first is the cohort's start: no history before it */
    int64_t slice = ex->snap_slice[seq % MSTORE_SNAPS];
    double xr = total_at(ms, cur, VARIANT_CANARY, q->num, slice);
    double nr = total_at(ms, cur, VARIANT_CANARY, q->den, slice);
    double xt = xn - xr, nt = nn - nr;
    if (isnan(xr + nr) || !(nr > 0) || !(nt > 0) || xt / nt <= xr / nr * limit_k)
      continue; /* no history, nothing since, or no higher than before: no evidence */
    double b = evid_bound_rate(xr / phi, nr / phi, w * q->alpha / 2, EVID_BELOW);
    if (!(b > 0) || !(b * limit_k < 1))
      continue;
    double term = evid_log_e_rate(xt / phi, nt / phi, b * limit_k, EVID_ABOVE) + log(w / 2);
    if (term <= best)
      continue;
    best = term;
    out->canary_x = xt, out->canary_n = nt;
    out->baseline_x = xr, out->baseline_n = nr; /* the history */
    out->estimate = xr > 0 ? (xt / nt) / (xr / nr) : INFINITY;
    out->since_ms = slice * MSTORE_SLICE_MS;
  }
  out->history = true;
  out->reference = limit_k;
  out->from_cohort = cur;
  out->dispersion = phi;
  out->n = (int64_t)nn > 0 ? (int64_t)nn : 1;
  out->log_e = best == -INFINITY ? 0 : best;
  if (best == -INFINITY)
    out->since_ms = INT64_MIN;
  out->age_ms = out->since_ms == INT64_MIN ? -1 : cx->now - out->since_ms;
}

/* Evidence for a ratio of counters. */
static void evidence_ratio(const struct mstore_ctx *cx, const struct expr_evq *q,
                           struct expr_evidence *out) {
  const struct mstore *ms = cx->ms;
  const struct mstore_evidence_plan *ev = &cx->mp->ev;
  int cur = cx->cohort;
  struct counts now;
  if (!read_counts(ms, cur, q, &now) || (q->versus_baseline && !(now.nb > 0))) {
    const struct mstore_series *b = mstore_series_find(ms, cur, VARIANT_BASELINE, q->den);
    if (q->above && q->versus_baseline && cur == ev->last_cohort && !(b && b->total > 0))
      own_history(cx, q, out); /* no baseline at all, not one that is late */
    return;                    /* n = 0: no data in the exposed cohort */
  }
  /* per-cohort terms, summed from the back: suffix[s] = cohorts s .. cur */
  double phi = mstore_dispersion(ms, cur, q->num, q->den);
  double log_e = -INFINITY;
  struct best best = {-INFINITY, now, cur, INT64_MIN};
  struct term suffix;
  term_reset(&suffix);
  struct evid_coef kcur;
  bool have_cur = ratio_coef(&kcur, q, &now, ev->margin[cur]);
  if (!q->above) { /* a gate: this cohort's own evidence that it is under (passing gate_alpha
                    * once is all a gate's error is about), no start points to mix */
    if (have_cur)
      add_segment(&suffix, &kcur, q, &now, phi);
    log_e = add_term_best(log_e, 0, &suffix, &best, &now, cur, INT64_MIN);
    if (!q->versus_baseline)
      log_e = gate_through_baseline(q, &now, phi, log_e);
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
    log_e = add_term_best(log_e, s == 0 ? ev->log_w_release : ev->log_w_stage, &suffix, &best, &now,
                          s, INT64_MIN);
  }
  /* from each of the exposed cohort's recent slices (the canary's exposure series says which),
   * at the cohort's exposure; a term whose estimate is on the null's side is left out */
  const struct mstore_series *ex = mstore_series_find(ms, cur, VARIANT_CANARY, q->den);
  int kept = ex->n_snaps < MSTORE_SNAPS ? ex->n_snaps : MSTORE_SNAPS;
  for (int j = 0; q->above && have_cur && j < kept; j++) {
    int32_t seq = ex->n_snaps - 1 - j;
    if (seq == 0 || seq >= ev->slices[cur])
      continue; /* the first is the stage's start (counted above); past the stage's slices: none */
    int64_t slice = ex->snap_slice[seq % MSTORE_SNAPS];
    struct counts c = {now.xc - total_at(ms, cur, VARIANT_CANARY, q->num, slice),
                       now.nc - total_at(ms, cur, VARIANT_CANARY, q->den, slice),
                       now.xb - total_at(ms, cur, VARIANT_BASELINE, q->num, slice),
                       now.nb - total_at(ms, cur, VARIANT_BASELINE, q->den, slice)};
    if (isnan(c.xc + c.nc + c.xb + c.nb) || null_side(&kcur, q, &c))
      continue;
    struct term t;
    term_reset(&t);
    add_segment(&t, &kcur, q, &c, phi);
    log_e = add_term_best(log_e, ev->log_w_slice[cur], &t, &best, &c, cur, slice * MSTORE_SLICE_MS);
  }
  out->log_e = log_e == -INFINITY ? 0 : log_e;
  out->dispersion = phi;
  out->n = (int64_t)now.nc;
  if (out->n == 0)
    out->n = 1; /* a fraction of an event still counted something */
  /* what the explanation shows: the term that weighs most, and where it starts */
  const struct counts *b = &best.c;
  out->from_cohort = best.from_cohort;
  out->since_ms = best.since_ms;
  out->age_ms = best.since_ms == INT64_MIN ? -1 : cx->now - best.since_ms;
  out->canary_x = b->xc;
  out->canary_n = b->nc;
  enum evid_side side = q->above ? EVID_ABOVE : EVID_BELOW;
  if (q->versus_baseline) {
    out->baseline_x = b->xb;
    out->baseline_n = b->nb;
    double rb = ratio_of(b->xb, b->nb), rc = ratio_of(b->xc, b->nc);
    out->estimate = rb > 0 ? rc / rb : rc > 0 ? INFINITY : NAN;
    out->reference = q->k * (1 + ev->margin[cur]);
    if (cx->explain && b->nc + b->nb > 0)
      out->bound =
          evid_bound_split(b->xc / phi, b->xb / phi, b->nc / (b->nc + b->nb), q->alpha, side);
  } else {
    out->estimate = ratio_of(b->xc, b->nc);
    out->reference = q->limit;
    if (cx->explain)
      out->bound = evid_bound_rate(b->xc / phi, b->nc / phi, q->alpha, side);
  }
}

/* A line count's values above and counted at the start of slice `slice` (as total_at does for
 * a counter): false when the ring no longer reaches back that far. */
static bool line_at(const struct mstore_linecount *c, int64_t slice, double *above, double *n) {
  *above = c->above;
  *n = c->n;
  int kept = c->n_snaps < MSTORE_SNAPS ? c->n_snaps : MSTORE_SNAPS;
  for (int j = 0; j < kept; j++) {
    int k = (c->n_snaps - 1 - j) % MSTORE_SNAPS;
    if (c->snap_slice[k] < slice)
      return true;
    *above = c->snap_above[k];
    *n = c->snap_n[k];
    if (j == kept - 1 && c->n_snaps > MSTORE_SNAPS && c->snap_slice[k] > slice)
      return false;
  }
  return true;
}

/*
 * Evidence for a quantile: "quantile q of d is above L" is "more than 1 - q of d's values are
 * above L" — a count, tested like a rate. The canary's values were counted above the line when
 * they came (struct mstore_linecount: against the baseline, k times the baseline's quantile as
 * it stood then), so the start points are those of the counters: the release's, the later
 * stages', the exposed cohort's recent slices.
 */
static void evidence_quantile(const struct mstore_ctx *cx, const struct expr_evq *q,
                              struct expr_evidence *out) {
  const struct mstore *ms = cx->ms;
  const struct mstore_evidence_plan *ev = &cx->mp->ev;
  int cur = cx->cohort, line = mstore_line_index(ms, q);
  const struct mstore_linecount *now = line < 0 ? NULL : mstore_linecount_find(ms, cur, line);
  if (!now || !(now->n > 0))
    return; /* n = 0: no canary value counted in the exposed cohort */
  enum evid_side side = q->above ? EVID_ABOVE : EVID_BELOW;
  struct evid_coef k;
  evid_coef_init(&k, 1 - q->q, side);
  double log_e = -INFINITY;
  struct counts whole = {now->above, now->n, 0, 0};
  struct best best = {-INFINITY, whole, cur, INT64_MIN};
  struct term suffix;
  term_reset(&suffix);
  int first = q->above ? 0 : cur; /* a gate: this cohort alone, weight 1 (as for ratios) */
  for (int s = cur; s >= first; s--) {
    const struct mstore_linecount *c = s == cur ? now : mstore_linecount_find(ms, s, line);
    if (c && c->n > 0) {
      evid_llr_add_coef(&suffix.llr, &k, c->above, c->n);
      suffix.any = true;
    }
    if (q->above)
      log_e = add_term_best(log_e, s == 0 ? ev->log_w_release : ev->log_w_stage, &suffix, &best,
                            &whole, s, INT64_MIN);
  }
  if (!q->above)
    log_e = add_term_best(log_e, 0, &suffix, &best, &whole, cur, INT64_MIN);
  int kept = now->n_snaps < MSTORE_SNAPS ? now->n_snaps : MSTORE_SNAPS;
  for (int j = 0; q->above && j < kept; j++) {
    int32_t seq = now->n_snaps - 1 - j;
    if (seq == 0 || seq >= ev->slices[cur])
      continue; /* the first is the stage's start (counted above); past the stage's slices: none */
    int64_t slice = now->snap_slice[seq % MSTORE_SNAPS];
    double a0, n0;
    if (!line_at(now, slice, &a0, &n0))
      continue;
    struct counts part = {now->above - a0, now->n - n0, 0, 0};
    if (evid_on_null_side(&k, part.xc, part.nc))
      continue;
    struct term t;
    term_reset(&t);
    evid_llr_add_coef(&t.llr, &k, part.xc, part.nc);
    t.any = true;
    log_e =
        add_term_best(log_e, ev->log_w_slice[cur], &t, &best, &part, cur, slice * MSTORE_SLICE_MS);
  }
  out->log_e = log_e == -INFINITY ? 0 : log_e;
  out->n = (int64_t)now->n;
  out->canary_x = best.c.xc;
  out->canary_n = best.c.nc;
  out->from_cohort = best.from_cohort;
  out->since_ms = best.since_ms;
  out->age_ms = best.since_ms == INT64_MIN ? -1 : cx->now - best.since_ms;
  out->line = mstore_line_now(ms, cur, line);
  out->estimate = out->canary_n > 0 ? out->canary_x / out->canary_n : NAN;
  out->reference = 1 - q->q;
  if (cx->explain)
    out->bound = evid_bound_rate(out->canary_x, out->canary_n, q->alpha, side);
}

void mstore_evidence(void *ctx, const struct expr_evq *q, struct expr_evidence *out) {
  const struct mstore_ctx *cx = ctx;
  memset(out, 0, sizeof *out);
  out->log_e = out->estimate = out->reference = out->bound = out->line = NAN;
  out->dispersion = 1;
  out->from_cohort = cx->cohort;
  out->since_ms = INT64_MIN;
  out->age_ms = -1;
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
/* Adds the two one-sided tests of a share (c of c + b against p0 = share x (1 -/+ margin)),
 * each at half the weight log_w. */
static double split_terms(double log_e, const struct mstore_evidence_plan *ev, double share,
                          double c, double b, double log_w) {
  for (int side = 0; side < 2; side++) {
    double p0 = share * (side == 0 ? 1 + ev->split_margin : 1 - ev->split_margin);
    if (!(c + b > 0 && p0 > 0 && p0 < 1))
      continue;
    struct term t;
    term_reset(&t);
    evid_llr_add(&t.llr, c, c + b, p0, side == 0 ? EVID_ABOVE : EVID_BELOW);
    t.any = true;
    log_e = add_term(log_e, log(0.5) + log_w, &t);
  }
  return log_e;
}

void mstore_evidence_split(struct mstore *ms, const struct mstore_plan *mp, int cohort,
                           double alpha, int64_t since_ms, bool explain,
                           struct expr_evidence *out) {
  memset(out, 0, sizeof *out);
  out->log_e = out->estimate = out->reference = out->bound = out->line = NAN;
  out->dispersion = 1;
  out->from_cohort = cohort;
  out->since_ms = INT64_MIN;
  out->age_ms = -1;
  if (cohort < 0 || cohort >= PLAN_MAX_STAGES)
    return;
  const struct mstore_series *cs = mstore_series_find(ms, cohort, VARIANT_CANARY, "requests");
  if (!cs || !mstore_series_find(ms, cohort, VARIANT_BASELINE, "requests"))
    return; /* a variant that never reported is missing data, not a broken split */
  const struct mstore_evidence_plan *ev = &mp->ev;
  double log_e = -INFINITY, c, b;
  split_counts(ms, cohort, &c, &b);
  if (since_ms == INT64_MIN) {
    /* the whole release: each cohort at its own share, suffix sums as for the counters */
    for (int side = 0; side < 2; side++) {
      double m = side == 0 ? 1 + ev->split_margin : 1 - ev->split_margin;
      struct term suffix;
      term_reset(&suffix);
      for (int s = cohort; s >= 0; s--) {
        double sc, sb;
        split_counts(ms, s, &sc, &sb);
        double p0 = ev->share[s] * m;
        if (sc + sb > 0 && p0 > 0 && p0 < 1) {
          evid_llr_add(&suffix.llr, sc, sc + sb, p0, side == 0 ? EVID_ABOVE : EVID_BELOW);
          suffix.any = true;
        }
        log_e = add_term(log_e, log(0.5) + (s == 0 ? ev->log_w_release : ev->log_w_stage), &suffix);
      }
    }
  } else {
    /* the split changed within the stage: only the slices that began after it count */
    double c0 = NAN, b0 = NAN;
    int kept = cs->n_snaps < MSTORE_SNAPS ? cs->n_snaps : MSTORE_SNAPS;
    for (int j = 0; j < kept; j++) {
      int64_t slice = cs->snap_slice[(cs->n_snaps - 1 - j) % MSTORE_SNAPS];
      if (slice * MSTORE_SLICE_MS < since_ms)
        break; /* newest first: the rest began before the change */
      double sc = c - total_at(ms, cohort, VARIANT_CANARY, "requests", slice);
      double sb = b - total_at(ms, cohort, VARIANT_BASELINE, "requests", slice);
      if (isnan(sc + sb))
        continue;
      log_e = split_terms(log_e, ev, ev->share[cohort], sc, sb, ev->log_w_slice[cohort]);
      c0 = sc, b0 = sb; /* the oldest such slice: the counts shown */
    }
    if (isnan(c0))
      return; /* no slice since the change yet */
    c = c0, b = b0;
  }
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
