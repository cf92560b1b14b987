/*
 * Private to the rollout's files — rollout.c (the state machine, its commands), rollout_effects.c,
 * rollout_gate.c, rollout_incident.c, rollout_metrics.c: one step's working set and the helpers
 * more than one of them needs. Not part of the module's contract: include core/rollout.h (and
 * core/rollout_metrics.h) everywhere else.
 */
#ifndef CANARY_ROLLOUT_INTERNAL_H
#define CANARY_ROLLOUT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/effect.h"
#include "core/metric_store.h"
#include "core/plan.h"
#include "core/rollout.h"
#include "core/rollout_metrics.h"

/* The actor of the decisions canaryd makes itself. */
#define ACTOR_SELF "canaryd"

/* One call's working set, so helpers need one argument instead of six. */
struct run {
  struct rollout *r;
  const struct plan *plan;
  const struct flags *global;
  const struct event *ev; /* the event being applied; NULL on a tick */
  int64_t now;
  struct effects *out;
  const struct mstore_plan *mp; /* NULL: no metric engine */
  struct rollout_metrics *m;
  int err;
  int cohort;            /* metric data: the stage index of its cohort (apply_event) */
  size_t dec_at;         /* index in out of the latest decision; SIZE_MAX: it is in spare */
  struct decision spare; /* written to when the effect list cannot grow (err says so) */
};

static inline const char *stage_name(const struct plan *p, int i) {
  return i >= 0 && i < p->n_stages ? p->stages[i].name : "";
}

static inline bool is_last(const struct plan *p, int stage) { return stage == p->n_stages - 1; }

/* --- rollout_effects.c: the exposure, decisions, notifications, the traffic split ---------- */

/* The stage whose cohort is exposed now (-1: none). */
int rollout_exposed_stage(const struct rollout *r, const struct plan *plan);
/* Cohort s's cumulative share of users (the holdback kept back during the watch after GA). */
double rollout_cohort_percent(const struct rollout *r, const struct plan *plan, int s);
/* The latest decision of this run: good until the next push (see rollout_effects.c). */
struct decision *run_latest(struct run *u);
/* Appends a decision about the rollout as it is now. Never returns NULL. */
__attribute__((format(printf, 6, 7))) struct decision *
run_decide(struct run *u, enum decision_action action, int from, const char *rule,
           const char *actor, const char *fmt, ...);
/* Appends a notification to channel ch, unless the plan names no address for it. */
__attribute__((format(printf, 6, 7))) void run_notify(struct run *u, enum notify_channel ch,
                                                      enum notify_severity sev,
                                                      const struct decision *d, const char *title,
                                                      const char *fmt, ...);
/* Tells #releases about decision d, in the words of its reason. */
void run_announce(struct run *u, const struct decision *d, enum notify_severity sev);
/* Appends the traffic split when what clusters must apply has changed. */
void run_publish_traffic(struct run *u);

/* --- rollout_gate.c: the criteria over recorded facts -------------------------------------- */

/* A gate's criteria and the implicit ones (the kill switch, the checklist before the last). */
#define GATE_MAX_CHECKS (PLAN_MAX_CRITERIA + 2)

/* Evaluate a gate; true when every criterion passes. Fills checks (GATE_MAX_CHECKS) and *n. */
bool run_gate_passes(const struct run *u, int stage, bool exit, struct gate_check *checks, int *n);
/* Give the metric criteria of checks (from run_gate_passes) their text, for a decision. */
void run_explain_gate(const struct run *u, int stage, bool exit, struct gate_check *checks, int n);
/* "ci_passed (waiting for ci.completed); health_green (last health.checked failed)" */
void run_unmet_list(const struct gate_check *checks, int n, char *buf, size_t len);
/* Each check of checks as evidence of d: pass, fail, not_evaluated or unproven. */
void run_gate_evidence(struct decision *d, const struct gate_check *checks, int n);

/* A duration the way the plan writes them: "48h", "15m", "8s", "1h30m". */
void rollout_format_duration(int64_t ms, char *buf, size_t n);

/* --- rollout.c: the state changes the metric side makes ------------------------------------ */

/* Stops expansion because a rule fired: pauses a pending or running rollout, decides, pages. */
void run_halt(struct run *u, const char *rule, int severity, const char *fmt_reason);
/* Rolls the rollout back, with the decision, its announcement and the post-mortem reminder. */
void run_roll_back(struct run *u, const char *rule, const char *actor, const char *why);

/* --- rollout_incident.c: incidents and alerts ---------------------------------------------- */

/* An incident.opened: recorded, told to the status page (Sev 1-2), the executive channel and
 * on-call (Sev 1), and the alert rules of its kind fired. CANARY_EINVALID when already open. */
int run_incident_opened(struct run *u, char *why, size_t why_len);
/* Tells the status page all is clear unless a Sev 1-2 incident is still open. */
void run_status_page_all_clear(struct run *u);
/* Fire the plan's rules that watch alerts of kind. */
void run_fire_alert_rules(struct run *u, enum alert_kind kind, const char *detail);

/* --- rollout_checklist.c: the checklist ---------------------------------------------------- */

/* Ticks what the event being applied proves. */
void run_checklist_event(struct run *u);
/* Ticks stage's items whose proof is proof (a stage started, passed, decided) with the
 * decision decision_id (by actor) as their evidence; note: what it says ("proceed"). */
void run_checklist_stage(struct run *u, int stage, enum checklist_proof proof,
                         const char *decision_id, const char *actor, const char *note);
/* Reminds #releases of stage's open items that ask for it (d: the stage's start). */
void run_checklist_remind(struct run *u, int stage, const struct decision *d);
/* The check command: ticks ev->item for a person, or says why not. */
int run_checklist_check(struct run *u, char *why, size_t why_len);

/* --- rollout_metrics.c: the metric side of a step ------------------------------------------ */

/* Measures gate criterion index (a CHECK_METRIC one) of stage into c; explain: with its text. */
void run_metric_check(const struct run *u, int stage, bool exit, int index, struct gate_check *c,
                      bool explain);
/* Evaluates the metric halt rules and alerts (now_please: at once, not on the schedule) and
 * acts on those that fire. Returns whether it evaluated. */
bool run_metric_rules(struct run *u, bool now_please);

#endif
