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
#include "core/rollout.h"

/*
 * Halt rules are evaluated at once when canary data of the exposed cohort arrives, but at most
 * once per ROLLOUT_METRICS_EVAL_MS of event time per rollout; other metric data (the baseline's,
 * other cohorts') schedules an evaluation that much later. Bounded work per event, and a breach
 * is decided on the event that shows it.
 */
#define ROLLOUT_METRICS_EVAL_MS 250

/*
 * The metric criteria of the gates a rollout heads for are watched (their for: stepped, their
 * reading refreshed) at those evaluations too, but at most once per hundredth of their window
 * (or for:, when shorter), ROLLOUT_GATE_TRACK_MS at most, and at their for: deadlines. A gate decides a promotion on windows of an
 * hour or more: a ten-second resolution (one bucket) changes nothing a release engineer can
 * see, and evaluating the criteria, small-cohort statistics included, 40 times as often was
 * most of an evaluation's cost. A halt rule keeps the fast cadence: it must stop a bad canary
 * within a second. A gate asked for a decision is always evaluated afresh.
 */
#define ROLLOUT_GATE_TRACK_MS 10000

/* The for: states of the halt rules (row i) and of the plan's alerts (row PLAN_MAX_RULES + i). */
#define ROLLOUT_FOR_ROWS (PLAN_MAX_RULES + PLAN_MAX_ALERTS)

struct rollout_metrics {
  struct mstore ms;
  struct expr_for rules[ROLLOUT_FOR_ROWS][PLAN_MAX_EXPRS];
  struct expr_for gates[PLAN_MAX_STAGES][2][PLAN_MAX_CRITERIA]; /* [stage][exit][criterion] */
  int rules_cohort;     /* the exposed cohort the rule states are about (-1: none yet) */
  int64_t next_eval_ms; /* rules are not evaluated again before this */
  int64_t deadline;     /* when the rules must be evaluated again; INT64_MAX: on new data */
  /* Where each rule's and criterion's reading is in rollout.readings, plus one (0: not known):
   * a hint, checked before use, so that noting a reading is not a search by name. */
  int16_t rule_reading[ROLLOUT_FOR_ROWS];
  int16_t gate_reading[PLAN_MAX_STAGES][2][PLAN_MAX_CRITERIA];
  /* which hint above found each slot of rollout.readings: a hint whose slot names it back is
   * right without comparing names (readings are only ever appended, and a restored rollout
   * gets a fresh rollout_metrics) */
  const int16_t *reading_owner[ROLLOUT_MAX_READINGS];
  /* What the worker last stored of this state (metrics_json_*_sig; 0: nothing yet): a batch
   * writes the state, or the zscore histories, only when they changed since. */
  uint64_t saved_state_sig, saved_zscores_sig;
  /* The end of the last history step the worker recorded (core/history; 0: none yet). Like the
   * fingerprints, the worker's bookkeeping, not the rollout's state: a restarted worker records
   * the last hour again, and the store keeps one point per step. */
  int64_t history_through_ms;
};

/* Empty series sized for the compiled plan mp. Returns CANARY_OK or CANARY_ENOMEM. */
int rollout_metrics_init(struct rollout_metrics *m, const struct mstore_plan *mp) CANARY_MUSTCHECK;
void rollout_metrics_free(struct rollout_metrics *m);

#endif
