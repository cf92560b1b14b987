/*
 * What a dashboard charts of a rollout: its measurements downsampled to one point per series per
 * step of event time (the plan's dashboard.step, a minute), computed from the rollout and its
 * metric windows. Pure: the worker stores the points (store_commit), readers query them.
 */
#ifndef CANARY_HISTORY_H
#define CANARY_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "core/plan.h"
#include "core/rollout.h"
#include "core/rollout_metrics.h"

#define HISTORY_STEP_MS_DEFAULT 60000LL
/* Steps recorded at most at once: a worker that comes back after a pause, or a batch that
 * covers more event time, records the last hour (the fine buckets a step is read from). */
#define HISTORY_CATCH_UP 60

#define HISTORY_KIND_MAP(XX)                                                                       \
  XX(METRIC, "metric")     /* a series of the service's metrics: counter, gauge, quantiles */      \
  XX(BUSINESS, "business") /* a counter the plan's dashboard.counters names */                     \
  XX(RULE, "rule")         /* a metric halt rule's reading: value, baseline, threshold */          \
  XX(SPLIT, "split")       /* the rollout: exposure, stage */

enum history_kind {
#define XX(name, wire) HISTORY_##name,
  HISTORY_KIND_MAP(XX)
#undef XX
      HISTORY_KIND_COUNT
};

const char *history_kind_name(enum history_kind k);

/*
 * One point: the value of (kind, name, stat) for a cohort and variant over the step that starts
 * at step_ms. Stats: counters "sum" (the step's increase); gauges "avg", "max"; distributions
 * "p50", "p75", "p95", "p99", "n"; rules "value" (the canary's), "baseline", "threshold",
 * "progress" (evidence: log e / log needed, 1 = decided), "firing" (0/1); the split "exposure"
 * (percent) and "stage" (index). cohort -1 and variant -1: not of one.
 */
#define HISTORY_STAT_MAX 12
struct history_point {
  const char *rollout; /* borrowed: the rollout's id */
  int64_t step_ms;
  int8_t kind;    /* enum history_kind */
  int8_t cohort;  /* stage index, -1 none */
  int8_t variant; /* enum variant, -1 none */
  char name[PLAN_NAME_MAX];
  char stat[HISTORY_STAT_MAX];
  double value;
};

/* A growable list of points; zero-initialised is empty. */
struct history_points {
  struct history_point *items;
  size_t n, cap;
};

void history_points_clear(struct history_points *h);
void history_points_free(struct history_points *h);

/* The plan's step (HISTORY_STEP_MS_DEFAULT when it says none). */
int64_t history_step_ms(const struct plan *p);

/*
 * Append the points of every whole step of r's event time that ended after *through_ms and at
 * or before r->clock_ms (at most the last HISTORY_CATCH_UP of them), and move *through_ms to the
 * end of the last. Metric points come from m's windows (each series with data in the step);
 * rule readings and the split are recorded as they stand, at the last step only — they are
 * r's latest, not a history. Nothing when no step ended (the usual case: one batch in many).
 * Reads r, m and p and changes none of them (so decisions cannot depend on it). Returns the
 * number of points appended, or -1 when memory ran out (*through_ms then unchanged).
 */
long history_collect(const struct rollout *r, const struct rollout_metrics *m, const struct plan *p,
                     int64_t *through_ms, struct history_points *out);

#endif
