/*
 * The metric store's answers to the rule language: the struct expr_source over a rollout's
 * series (counter sums, gauge statistics, quantiles, canary_diff_ratio, slos_met()) and the
 * zscore histories that zscore() reads and records at each evaluation.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/metric_store.h"
#include "core/mstore_internal.h"

/* --- the source ----------------------------------------------------------------------------- */

/* The window of a series of the wanted kind, or NULL (no data, or the name is another kind). */
static struct window *series_window(struct mstore_ctx *c, enum variant v, const char *metric,
                                    enum window_kind kind) {
  struct mstore *ms = c->ms;
  if (!cohort_ok(c->cohort) || (unsigned)v >= VARIANT_COUNT || !metric || !ms->name_index)
    return NULL;
  /* The names an expression reads are the compiled plan's, at fixed addresses: remember where
   * each was found (checked by one strcmp) rather than hashing it at every query. */
  struct mstore_name_hint *h = &ms->name_hints[((uintptr_t)metric >> 3) % MSTORE_NAME_HINTS];
  int id;
  if (h->p == metric && strcmp(ms->names[h->id].name, metric) == 0) {
    id = h->id;
  } else if ((id = mstore_name_find(ms, metric)) >= 0) {
    h->p = metric;
    h->id = (int16_t)id;
  } else {
    return NULL;
  }
  int16_t k = *series_ref(ms, id, c->cohort, v);
  struct mstore_series *s = k < 0 ? NULL : &ms->series[k];
  return s && s->w.kind == kind ? &s->w : NULL;
}

static void src_counter_sum(void *ctx, enum variant v, const char *metric, int64_t span,
                            double *out, int64_t *n) {
  struct mstore_ctx *c = ctx;
  struct window *w = series_window(c, v, metric, WINDOW_COUNTER);
  struct window_stats st = {0};
  if (w)
    window_read(w, c->now, span, &st);
  *out = st.sum;
  *n = (int64_t)st.n;
}

enum gauge_op { G_AVG, G_MAX, G_MIN };

static void gauge(struct mstore_ctx *c, enum variant v, const char *metric, int64_t span,
                  enum gauge_op op, double *out, int64_t *n) {
  struct window *w = series_window(c, v, metric, WINDOW_GAUGE);
  struct window_stats st = {0};
  if (w)
    window_read(w, c->now, span, &st);
  *n = (int64_t)st.n;
  *out = !st.n ? NAN : op == G_AVG ? st.sum / (double)st.n : op == G_MAX ? st.max : st.min;
}

static void src_gauge_avg(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                          int64_t *n) {
  gauge(ctx, v, m, span, G_AVG, out, n);
}
static void src_gauge_max(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                          int64_t *n) {
  gauge(ctx, v, m, span, G_MAX, out, n);
}
static void src_gauge_min(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                          int64_t *n) {
  gauge(ctx, v, m, span, G_MIN, out, n);
}

static void src_quantile(void *ctx, enum variant v, const char *metric, double q, int64_t span,
                         double *out, int64_t *n) {
  struct mstore_ctx *c = ctx;
  struct window *w = series_window(c, v, metric, WINDOW_DISTRIBUTION);
  *out = NAN;
  *n = 0;
  uint64_t count;
  if (!w || window_quantile_n(w, c->now, span, q, out, &count) != CANARY_OK)
    return; /* no values; ENOMEM too: insufficient rather than a wrong value */
  *n = (int64_t)count;
}

/* The exact counter of tolerance tol, or -1. */
static int tolerance_slot(const struct mstore *ms, double tol) {
  for (int k = 0; k < ms->cfg.n_tolerances; k++)
    if (ms->cfg.tolerances[k] == tol)
      return k;
  return -1;
}

static void src_diff_ratio(void *ctx, double tol, int64_t span, double *out, int64_t *n) {
  struct mstore_ctx *c = ctx;
  struct mstore_diff *d = &c->ms->diff[c->cohort];
  *out = NAN;
  *n = 0;
  if (!d->used || isnan(tol))
    return;
  struct window_stats st;
  window_read(&d->total, c->now, span, &st);
  double total = st.sum;
  if (total <= 0)
    return;
  double above;
  int k = tolerance_slot(c->ms, tol);
  if (k >= 0) {
    window_read(&d->over[k], c->now, span, &st);
    above = st.sum;
  } else {
    uint64_t a = 0, finite = 0;
    if (window_count_above(&d->rel, c->now, span, tol, &a, &finite))
      return;
    above = (double)a + (total - (double)finite); /* the infinite ones exceed any tolerance */
  }
  *out = above / total;
  *n = (int64_t)total;
}

static struct mstore_zhist *zhist_get(struct mstore *ms, uint64_t key, int cohort, enum variant v) {
  for (int i = 0; i < ms->n_z; i++)
    if (ms->z[i].key == key && ms->z[i].cohort == cohort && ms->z[i].variant == v)
      return &ms->z[i];
  if (ms->n_z >= ms->cfg.max_zscores)
    return NULL;
  if (!ms->z) {
    ms->z = calloc((size_t)ms->cfg.max_zscores, sizeof *ms->z);
    ms->zscratch = malloc((size_t)ms->cfg.zscore_points * sizeof *ms->zscratch);
    if (!ms->z || !ms->zscratch) {
      free(ms->z);
      free(ms->zscratch);
      ms->z = NULL;
      ms->zscratch = NULL;
      return NULL;
    }
  }
  struct mstore_zhist *z = &ms->z[ms->n_z];
  *z = (struct mstore_zhist){.key = key, .cohort = cohort, .variant = v};
  z->t = malloc((size_t)ms->cfg.zscore_points * sizeof *z->t);
  z->x = malloc((size_t)ms->cfg.zscore_points * sizeof *z->x);
  if (!z->t || !z->x) {
    free(z->t);
    free(z->x);
    return NULL;
  }
  ms->n_z++;
  return z;
}

static void src_zscore(void *ctx, enum variant v, const struct expr *e, int node, double current,
                       int64_t history_ms, double *out, int64_t *n) {
  (void)e;
  struct mstore_ctx *c = ctx;
  struct mstore *ms = c->ms;
  *out = NAN;
  *n = 0;
  uint64_t key = fnv1a(c->key, &node, sizeof node);
  struct mstore_zhist *z = zhist_get(ms, key, c->cohort, v);
  if (!z)
    return; /* too many histories (or no memory): insufficient, not a spike */
  int cap = ms->cfg.zscore_points;
  /* the points of [now - h, now): strictly older than now, so a second evaluation at the same
   * time does not compare the value with itself */
  size_t k = 0;
  int64_t newest = INT64_MIN;
  for (int i = 0; i < z->n; i++) {
    int slot = ((z->head - 1 - i) % cap + cap) % cap;
    if (z->t[slot] > newest)
      newest = z->t[slot];
    if (z->t[slot] >= c->now - history_ms && z->t[slot] < c->now)
      ms->zscratch[k++] = z->x[slot];
  }
  if (k && expr_robust_z(ms->zscratch, k, current, ms->cfg.zscore_min_scale, out))
    *n = (int64_t)k;
  /* record at most one point per step, at the cadence of evaluations */
  if (!z->n || c->now - newest >= ms->cfg.zscore_step_ms) {
    z->t[z->head] = c->now;
    z->x[z->head] = current;
    z->head = (z->head + 1) % cap;
    if (z->n < cap)
      z->n++;
  }
}

static enum expr_truth src_slos_met(void *ctx, enum variant v) {
  struct mstore_ctx *c = ctx;
  const struct mstore_plan *mp = c->mp;
  if (!mp || mp->n_slos == 0)
    return EXPR_INSUFFICIENT;
  struct expr_source src = mstore_source(c->ms);
  uint64_t key = c->key;
  enum expr_truth t = EXPR_TRUE;
  for (int i = 0; i < mp->n_slos; i++) {
    const struct mstore_expr *x = &mp->x[mp->slo_first + i];
    struct expr_result r;
    c->key = x->key;
    if (expr_eval(&x->e, &src, c, v, &r))
      r.truth = EXPR_INSUFFICIENT;
    t = expr_truth_and(t, r.truth);
  }
  c->key = key;
  return t;
}

struct expr_source mstore_source(const struct mstore *ms) {
  return (struct expr_source){
      .counter_sum = src_counter_sum,
      .gauge_avg = src_gauge_avg,
      .gauge_max = src_gauge_max,
      .gauge_min = src_gauge_min,
      .quantile = src_quantile,
      .diff_ratio = src_diff_ratio,
      .zscore = src_zscore,
      .slos_met = src_slos_met,
      .evidence = mstore_evidence,
      .limits = &ms->cfg.limits,
  };
}

/* --- the zscore histories after a restart ----------------------------------------------------- */

int mstore_zhist_restore(struct mstore *ms, uint64_t key, int cohort, enum variant v,
                         const int64_t *t, const double *x, int n) {
  if (n < 0 || n > ms->cfg.zscore_points)
    return CANARY_EINVALID;
  struct mstore_zhist *z = zhist_get(ms, key, cohort, v);
  if (!z)
    return ms->n_z >= ms->cfg.max_zscores ? CANARY_EINVALID : CANARY_ENOMEM;
  for (int i = 0; i < n; i++) {
    z->t[i] = t[i];
    z->x[i] = x[i];
  }
  z->n = n;
  z->head = n % ms->cfg.zscore_points;
  return CANARY_OK;
}
