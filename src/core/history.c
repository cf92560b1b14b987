/*
 * A rollout's measurements as a dashboard's time series: one point per series per step, read
 * from the metric windows the rules read, so the chart shows what canaryd measured.
 */
#include "core/history.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/enum_names.h"

ENUM_NAMES(history_kind, history_kind, HISTORY_KIND_MAP, HISTORY_KIND_COUNT)

void history_points_clear(struct history_points *h) { h->n = 0; }

void history_points_free(struct history_points *h) {
  free(h->items);
  *h = (struct history_points){0};
}

int64_t history_step_ms(const struct plan *p) {
  return p && p->dashboard_step_ms > 0 ? p->dashboard_step_ms : HISTORY_STEP_MS_DEFAULT;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* src cut to fit dst (names are shorter than PLAN_NAME_MAX: the store refuses longer ones). */
static void copy(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static bool add(struct history_points *h, const char *rollout, int64_t step_ms,
                enum history_kind kind, int cohort, int variant, const char *name, const char *stat,
                double value) {
  if (!isfinite(value))
    return true; /* nothing to draw: a gap */
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    struct history_point *p = realloc(h->items, cap * sizeof *p);
    if (!p)
      return false;
    h->items = p;
    h->cap = cap;
  }
  struct history_point *pt = &h->items[h->n++];
  *pt = (struct history_point){.rollout = rollout,
                               .step_ms = step_ms,
                               .kind = (int8_t)kind,
                               .cohort = (int8_t)cohort,
                               .variant = (int8_t)variant,
                               .value = value};
  copy(pt->name, sizeof pt->name, name);
  copy(pt->stat, sizeof pt->stat, stat);
  return true;
}

static bool is_business(const struct plan *p, const char *name) {
  for (int i = 0; p && i < p->n_dashboard_counters; i++)
    if (!strcmp(p->dashboard_counters[i], name))
      return true;
  return false;
}

static const double quantiles[] = {0.50, 0.75, 0.95, 0.99};
static const char *const quantile_stats[] = {"p50", "p75", "p95", "p99"};

/* The series of one metric over [start, start + step): a query over the closed interval
 * [start, start + step - 1] reads exactly the buckets that start in it (the step is a whole
 * number of buckets, and so aligned). */
static bool series_points(const struct rollout *r, const struct mstore *ms,
                          const struct mstore_series *s, const struct plan *p, int64_t start,
                          int64_t step, struct history_points *out) {
  const struct window *w = &s->w;
  int64_t now = start + step - 1, span = step - 1;
  struct window_stats st;
  window_stats(w, now, span, &st);
  if (st.n == 0)
    return true;
  const char *name = ms->names[s->name].name;
  int c = s->cohort, v = (int)s->variant;
  switch (w->kind) {
  case WINDOW_COUNTER:
    return add(out, r->id, start, is_business(p, name) ? HISTORY_BUSINESS : HISTORY_METRIC, c, v,
               name, "sum", st.sum);
  case WINDOW_GAUGE:
    return add(out, r->id, start, HISTORY_METRIC, c, v, name, "avg", st.sum / (double)st.n) &&
           add(out, r->id, start, HISTORY_METRIC, c, v, name, "max", st.max);
  case WINDOW_DISTRIBUTION: {
    struct sketch sk;
    if (sketch_init(&sk, w->cfg.alpha) != CANARY_OK)
      return false;
    bool ok = window_merge(w, now, span, &sk) == CANARY_OK;
    for (size_t i = 0; ok && i < sizeof quantiles / sizeof *quantiles; i++) {
      double q;
      if (sketch_quantile(&sk, quantiles[i], &q))
        ok = add(out, r->id, start, HISTORY_METRIC, c, v, name, quantile_stats[i], q);
    }
    ok = ok && add(out, r->id, start, HISTORY_METRIC, c, v, name, "n", (double)st.n);
    sketch_free(&sk);
    return ok;
  }
  default:
    return true;
  }
}

/* The rollout as it stands: exposure, stage, and each halt rule's latest reading. */
static bool latest_points(const struct rollout *r, int64_t start, struct history_points *out) {
  bool ok = add(out, r->id, start, HISTORY_SPLIT, r->stage, -1, "rollout", "exposure",
                r->exposure_percent) &&
            add(out, r->id, start, HISTORY_SPLIT, r->stage, -1, "rollout", "stage", r->stage);
  for (int i = 0; ok && i < r->n_readings; i++) {
    const struct rollout_reading *x = &r->readings[i];
    if (x->kind != READING_RULE)
      continue;
    double progress = isfinite(x->log_e) && isfinite(x->log_needed) && x->log_needed > 0
                          ? fmax(0, x->log_e) / x->log_needed
                          : NAN;
    ok = add(out, r->id, start, HISTORY_RULE, x->stage, -1, x->name, "value", x->canary) &&
         add(out, r->id, start, HISTORY_RULE, x->stage, -1, x->name, "baseline", x->baseline) &&
         add(out, r->id, start, HISTORY_RULE, x->stage, -1, x->name, "threshold", x->threshold) &&
         add(out, r->id, start, HISTORY_RULE, x->stage, -1, x->name, "progress", progress) &&
         add(out, r->id, start, HISTORY_RULE, x->stage, -1, x->name, "firing",
             x->state == EXPR_FOR_FIRING);
  }
  return ok;
}

long history_collect(const struct rollout *r, const struct rollout_metrics *m, const struct plan *p,
                     int64_t *through_ms, struct history_points *out) {
  int64_t step = history_step_ms(p);
  int64_t end = floor_div(r->clock_ms, step) * step; /* the last step ended here */
  if (end <= *through_ms)
    return 0;
  int64_t first =
      *through_ms > end - HISTORY_CATCH_UP * step ? *through_ms : end - HISTORY_CATCH_UP * step;
  size_t n0 = out->n;
  bool ok = true;
  for (int64_t start = first; ok && start < end; start += step)
    for (int i = 0; ok && m && i < m->ms.n_series; i++)
      ok = series_points(r, &m->ms, &m->ms.series[i], p, start, step, out);
  ok = ok && latest_points(r, end - step, out);
  if (!ok) {
    out->n = n0;
    return -1;
  }
  *through_ms = end;
  return (long)(out->n - n0);
}
