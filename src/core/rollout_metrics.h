/*
 * A rollout's metric side: its series (metric_store) and the for: states of the plan's halt
 * rules and metric gate criteria. Kept next to the rollout value (by the engine), because the
 * windows are large and heap-allocated while a struct rollout is a plain value.
 */
#ifndef CANARY_ROLLOUT_METRICS_H
#define CANARY_ROLLOUT_METRICS_H

#include <stdint.h>

#include "core/error.h"
#include "core/expr.h"
#include "core/metric_store.h"
#include "core/plan.h"

/*
 * Halt rules are evaluated at once when canary data of the exposed cohort arrives, but at most
 * once per ROLLOUT_METRICS_EVAL_MS of event time per rollout; other metric data (the baseline's,
 * other cohorts') schedules an evaluation that much later. Bounded work per event, and a breach
 * is decided on the event that shows it.
 */
#define ROLLOUT_METRICS_EVAL_MS 250

struct rollout_metrics {
  struct mstore ms;
  struct expr_for rules[PLAN_MAX_RULES][PLAN_MAX_EXPRS];
  struct expr_for gates[PLAN_MAX_STAGES][2][PLAN_MAX_CRITERIA]; /* [stage][exit][criterion] */
  int rules_cohort;      /* the exposed cohort the rule states are about (-1: none yet) */
  int64_t next_eval_ms;  /* rules are not evaluated again before this */
  int64_t deadline;      /* when the rules must be evaluated again; INT64_MAX: on new data */
  /* What the worker last stored of this state (metrics_json_*_sig; 0: nothing yet): a batch
   * writes the state, or the zscore histories, only when they changed since. */
  uint64_t saved_state_sig, saved_zscores_sig;
};

/* Empty series sized for the compiled plan mp. Returns CANARY_OK or CANARY_ENOMEM. */
int rollout_metrics_init(struct rollout_metrics *m, const struct mstore_plan *mp)
    CANARY_MUSTCHECK;
void rollout_metrics_free(struct rollout_metrics *m);

#endif
