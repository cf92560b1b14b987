/*
 * Evaluating the compiled expressions on a rollout's store: one expression (mstore_eval_expr),
 * a rule or a gate criterion with its for: states (mstore_eval_rule), its findings as plain
 * values, and the memo that spares an evaluation whose inputs did not change.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/metric_store.h"
#include "core/mstore_internal.h"

/* --- evaluation ------------------------------------------------------------------------------ */

/* lazy: the truth and the values a reading shows are wanted, not every operand's evidence */
/* bounds: the evidence's confidence bounds are wanted (a bisection each: only for the text) */
static int eval_expr(struct mstore *ms, const struct mstore_plan *mp, const struct mstore_expr *x,
                     int cohort, int64_t now, enum variant v, bool lazy, bool bounds,
                     struct expr_result *out) {
  struct mstore_ctx ctx = {
      .ms = ms, .mp = mp, .cohort = cohort, .now = now, .key = x->key, .explain = bounds};
  struct expr_source src = mstore_source(ms);
  src.short_circuit = lazy;
  if (!cohort_ok(cohort)) {
    memset(out, 0, sizeof *out);
    out->truth = EXPR_INSUFFICIENT;
    out->value = NAN;
    out->why_node = -1;
    return CANARY_EINVALID;
  }
  return expr_eval(&x->e, &src, &ctx, v, out);
}

int mstore_eval_expr(struct mstore *ms, const struct mstore_plan *mp, const struct mstore_expr *x,
                     int cohort, int64_t now, enum variant v, struct expr_result *out) {
  return eval_expr(ms, mp, x, cohort, now, v, false, true, out);
}

/* The plain evidence of one evaluation: the root comparison (else the first), the weakest
 * canary query. The explanation is left to the caller (finding_explain): formatting numbers
 * costs more than the evaluation itself, and only the deciding finding is read. */
static void finding_fill(const struct mstore_expr *x, const struct expr_result *r,
                         struct mstore_finding *f) {
  f->truth = r->truth;
  f->why = r->why;
  f->canary = f->baseline = f->threshold = NAN;
  f->window_ms = x->longest_ms;
  const struct expr_compare *cmp = r->n_compares ? &r->compares[0] : NULL;
  for (int i = 0; i < r->n_compares; i++)
    if (r->compares[i].node == x->e.root)
      cmp = &r->compares[i];
  f->evidence = cmp && cmp->evidence;
  f->log_e = f->log_needed = NAN;
  if (f->evidence) {
    f->log_e = cmp->log_e;
    f->log_needed = cmp->log_needed;
    f->ev = cmp->ev;
  }
  if (cmp) {
    f->canary = cmp->lhs;
    f->baseline = cmp->baseline;
    f->threshold = cmp->rhs;
  } else if (r->truth != EXPR_INSUFFICIENT) {
    f->canary = r->value; /* slos_met(): 1 or 0 */
  }
  f->n = f->min_n = 0;
  bool any = false;
  for (int i = 0; i < r->n_measures; i++) {
    const struct expr_measure *m = &r->measures[i];
    if (m->query == EXPR_Q_SLOS)
      continue;
    /* the weakest: the first insufficient one, else the one with the fewest observations */
    bool weaker = !any || (!m->sufficient && f->n >= f->min_n) ||
                  (m->sufficient == (f->n >= f->min_n) && m->n < f->n);
    if (weaker) {
      f->n = m->n;
      f->min_n = m->min_n;
      any = true;
    }
  }
}

/* The evidence of a result evaluated again for its text: the bound it computed that time. */
static void finding_evidence(const struct mstore_expr *x, const struct expr_result *r,
                             struct mstore_finding *f) {
  for (int i = 0; i < r->n_compares; i++)
    if (r->compares[i].evidence && (r->compares[i].node == x->e.root || i == 0))
      f->ev = r->compares[i].ev;
}

/* --- the memo (struct mstore_memo) ---------------------------------------------------------- */

/* Whether a series of (name, cohort) of the variants in mask changed after tick. */
static bool series_since(const struct mstore *ms, int name, int cohort, unsigned mask,
                         uint64_t tick) {
  for (int v = 0; v < VARIANT_COUNT; v++) {
    if (!(mask & (1u << v)))
      continue;
    int16_t s = *series_ref(ms, name, cohort, (enum variant)v);
    if (s >= 0 && ms->series[s].changed > tick)
      return true;
  }
  return false;
}

/* The memo of expression i when it is still what an evaluation at (cohort, now) would give. */
static const struct mstore_memo *memo_get(struct mstore *ms, const struct mstore_plan *mp, int i,
                                          int cohort, int64_t now) {
  const struct mstore_expr *x = &mp->x[i];
  if (!ms->memo || i >= ms->n_memo || !x->memo_ok || x->window_gcd_ms % ms->cfg.bucket_ms)
    return NULL;
  struct mstore_memo *m = &ms->memo[i];
  if (!m->tick || m->cohort != cohort || m->bucket != floor_div(now, ms->cfg.bucket_ms))
    return NULL;
  if (x->reads_diff && ms->diff[cohort].changed > m->tick)
    return NULL;
  if (m->n_names != ms->n_names) { /* names came since: resolve again (new ones are newer) */
    for (int k = 0; k < x->n_reads; k++)
      m->ids[k] = (int16_t)mstore_name_find(ms, x->reads[k]);
    m->n_names = ms->n_names;
  }
  /* the evidence also counts the cohorts before this one (a late report still lands there),
   * and the baseline's reports tell the dispersion of the canary's counts */
  for (int c = x->n_evidence ? 0 : cohort; c <= cohort; c++)
    for (int k = 0; k < x->n_reads; k++)
      if (m->ids[k] >= 0 &&
          series_since(ms, m->ids[k], c, x->n_evidence ? ~0u : x->read_variants[k], m->tick))
        return NULL;
  ms->memo_hits++;
  return m;
}

static void memo_put(struct mstore *ms, const struct mstore_plan *mp, int i, int cohort,
                     int64_t now, const struct mstore_finding *f) {
  const struct mstore_expr *x = &mp->x[i];
  if (!ms->cfg.memo || !x->memo_ok || x->window_gcd_ms % ms->cfg.bucket_ms)
    return;
  if (!ms->memo) {
    ms->memo = calloc((size_t)mp->n, sizeof *ms->memo);
    ms->n_memo = ms->memo ? mp->n : 0;
  }
  if (i >= ms->n_memo)
    return;
  struct mstore_memo *m = &ms->memo[i];
  if (!m->tick || m->n_names != ms->n_names) { /* else memo_get resolved them: names stay */
    for (int k = 0; k < x->n_reads; k++)
      m->ids[k] = (int16_t)mstore_name_find(ms, x->reads[k]);
    m->n_names = ms->n_names;
  }
  m->tick = ++ms->tick; /* every change from here on is newer */
  m->bucket = floor_div(now, ms->cfg.bucket_ms);
  m->cohort = cohort;
  m->truth = f->truth;
  m->why = f->why;
  m->canary = f->canary;
  m->baseline = f->baseline;
  m->threshold = f->threshold;
  m->n = f->n;
  m->min_n = f->min_n;
  m->evidence = f->evidence;
  m->log_e = f->log_e;
  m->log_needed = f->log_needed;
  if (f->evidence)
    m->ev = f->ev;
}

static int eval_rule(struct mstore *ms, const struct mstore_plan *mp, enum mstore_owner owner,
                     int stage, int index, int cohort, int64_t now, struct expr_for *st,
                     struct mstore_verdict *out, bool explain) {
  /* Not memset: the findings are 2 KiB of explanation buffers, and each one used is filled
   * below (finding_fill, and an empty explanation unless it is written). */
  out->n = 0;
  out->fired = out->holds = false;
  out->truth = EXPR_INSUFFICIENT;
  out->which = -1;
  out->deadline = INT64_MAX;
  int first;
  int n = mstore_plan_find(mp, owner, stage, index, &first);
  if (!n)
    return CANARY_ENOTFOUND;
  if (n > PLAN_MAX_EXPRS)
    return CANARY_EINVALID;
  out->n = n;
  ms->evaluations++;
  int rc = CANARY_OK;
  struct expr_result r[PLAN_MAX_EXPRS];
  bool have_r[PLAN_MAX_EXPRS];
  for (int i = 0; i < n; i++) {
    const struct mstore_expr *x = &mp->x[first + i];
    struct mstore_finding *f = &out->f[i];
    const struct mstore_memo *m = memo_get(ms, mp, first + i, cohort, now);
    have_r[i] = !m;
    if (m) {
      f->truth = m->truth;
      f->why = m->why;
      f->canary = m->canary;
      f->baseline = m->baseline;
      f->threshold = m->threshold;
      f->window_ms = x->longest_ms;
      f->n = m->n;
      f->min_n = m->min_n;
      f->evidence = m->evidence;
      f->log_e = m->log_e;
      f->log_needed = m->log_needed;
      if (m->evidence)
        f->ev = m->ev;
    } else {
      /* Without the text (a gate asked whether it passes, a criterion's reading), `and` and
       * `or` stop at an operand that decides them: a held gate's small-cohort test need not
       * compute its Clopper-Pearson bound once the error rate alone fails it (16% of the
       * engine replaying a long backlog). What skipped an operand is not memoized, so an
       * explained evaluation never gets its shorter evidence. */
      int e = eval_expr(ms, mp, x, cohort, now, VARIANT_CANARY, !explain, false, &r[i]);
      if (e && !rc)
        rc = e;
      finding_fill(x, &r[i], f);
      if (!e && !r[i].skipped)
        memo_put(ms, mp, first + i, cohort, now, f);
    }
    f->explain[0] = '\0';
    f->fired = expr_for_step(&st[i], now, f->truth, x->for_ms);
    f->state = st[i].state;
    out->truth = i ? expr_truth_or(out->truth, f->truth) : f->truth;
    int64_t at;
    if (expr_for_deadline(&st[i], x->for_ms, &at) && at < out->deadline)
      out->deadline = at;
    if (f->fired && !out->fired) {
      out->fired = true;
      out->which = i;
    }
    if (f->state == EXPR_FOR_FIRING && !out->holds) {
      out->holds = true;
      if (!out->fired)
        out->which = i;
    }
  }
  for (int i = 0; i < n && out->which < 0; i++)
    if (out->f[i].truth == out->truth)
      out->which = i; /* the first expression with the rule's truth decided it */
  /* What callers show: a criterion's result in its gate's evidence, a rule's when it acts. A
   * rule that does not fire is evaluated up to four times a second and its text is read by no
   * one, and formatting it costs more than evaluating it. */
  bool rule = owner == MSTORE_RULE || owner == MSTORE_ALERT;
  int shown = out->which >= 0 ? out->which : 0;
  if (explain && (!rule || out->fired)) {
    /* the memo keeps values, not the evidence the text is made of, and the evidence's bounds
     * are only computed for the text: evaluate it again (the same inputs give the same
     * result) */
    if ((!have_r[shown] || out->f[shown].evidence) &&
        mstore_eval_expr(ms, mp, &mp->x[first + shown], cohort, now, VARIANT_CANARY, &r[shown]) !=
            CANARY_OK)
      return rc;
    if (out->f[shown].evidence)
      finding_evidence(&mp->x[first + shown], &r[shown], &out->f[shown]);
    expr_explain(&mp->x[first + shown].e, &r[shown], out->f[shown].explain,
                 sizeof out->f[shown].explain);
  }
  return rc;
}

int mstore_eval_rule(struct mstore *ms, const struct mstore_plan *mp, enum mstore_owner owner,
                     int stage, int index, int cohort, int64_t now, struct expr_for *st,
                     struct mstore_verdict *out) {
  return eval_rule(ms, mp, owner, stage, index, cohort, now, st, out, true);
}

int mstore_eval_rule_values(struct mstore *ms, const struct mstore_plan *mp,
                            enum mstore_owner owner, int stage, int index, int cohort, int64_t now,
                            struct expr_for *st, struct mstore_verdict *out) {
  return eval_rule(ms, mp, owner, stage, index, cohort, now, st, out, false);
}
