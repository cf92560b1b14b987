/*
 * The rollout state machine: one rollout of one service version through the plan's stages.
 * Pure: no I/O, no clock. rollout_step() is the only function that changes a rollout.
 */
#ifndef CANARY_ROLLOUT_H
#define CANARY_ROLLOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/effect.h"
#include "core/error.h"
#include "core/event.h"
#include "core/plan.h"

#define ROLLOUT_MAX_INCIDENTS 32
#define ROLLOUT_NO_DEADLINE INT64_MAX

/* What a deploy event last said about a fact: nothing yet, ok, or failed. */
enum fact { FACT_UNKNOWN, FACT_OK, FACT_FAILED };

struct rollout_incident {
  char id[EVENT_NAME_MAX];
  int severity;
  enum incident_kind kind;
  int64_t opened_ms;
  bool open;
};

/* Kill switches: false = the canary is switched off there. */
struct flags {
  bool canary_enabled;                  /* system.canary.enabled */
  bool cohort_enabled[PLAN_MAX_STAGES]; /* canary.cohort.<name>.enabled, by stage index */
};

/* How a checklist item was ticked. */
#define CHECKED_BY_MAP(XX)                                                                         \
  XX(EVENT, "event")       /* an input event proved it: evidence is its id */                      \
  XX(DECISION, "decision") /* a decision of this rollout proved it: evidence is its id */          \
  XX(PERSON, "person")     /* a person checked it (canaryctl check): evidence is the command */
enum checked_by {
#define XX(name, wire) CHECKED_BY_##name,
  CHECKED_BY_MAP(XX)
#undef XX
      CHECKED_BY_COUNT
};
const char *checked_by_name(enum checked_by b);
bool checked_by_parse(const char *s, enum checked_by *out);

#define ROLLOUT_MAX_CHECKED PLAN_MAX_CHECKLIST
#define ROLLOUT_NOTE_MAX 128

/* A ticked checklist item, by the plan's id (a plan edited later keeps what was ticked). */
struct rollout_checked {
  char item[PLAN_NAME_MAX];
  int8_t by; /* enum checked_by */
  int64_t at_ms;
  char evidence[EVENT_ID_MAX]; /* the event's id, the decision's id, or the command's id */
  char actor[EVENT_NAME_MAX];  /* a person: who; an event: its type; a decision: canaryd or
                                  * the person who decided */
  char note[ROLLOUT_NOTE_MAX]; /* a person's reason; a decision: proceed or rollback */
};

/* A plain value: copy it, keep it on the stack, serialise it field by field. */
/* What a reading is of. */
enum reading_kind { READING_RULE, READING_ENTRY, READING_EXIT };
#define ROLLOUT_MAX_READINGS (PLAN_MAX_RULES + 2 * PLAN_MAX_CRITERIA)

/*
 * One evaluation of a metric rule or criterion, as measured: the expression that decided (or
 * the first), its canary value, the baseline's, the threshold, the window it read and how many
 * observations that window held against the minimum it needs.
 */
struct rollout_reading {
  char name[PLAN_NAME_MAX];
  int8_t kind;  /* enum reading_kind */
  int8_t stage; /* a rule: the cohort whose data was read; a criterion: its gate's stage */
  int8_t truth; /* enum expr_truth: false, true, insufficient data */
  int8_t state; /* enum expr_for_state: inactive, pending (for: running), firing */
  double canary, baseline, threshold; /* NaN: none or unknown */
  int64_t window_ms, n, min_n;
  int64_t at_ms;            /* when it was evaluated */
  int64_t since_ms;         /* pending or firing: since when the condition holds */
  double log_e, log_needed; /* decided on evidence: the e-value's log and the log(1/alpha) it
                             * must reach (status: "87% of the way"); NaN otherwise */
};

struct rollout {
  char id[EVENT_NAME_MAX];
  char service[EVENT_NAME_MAX];
  char version[EVENT_NAME_MAX];
  char baseline_version[EVENT_NAME_MAX];

  enum rollout_state state;
  enum rollout_state resume_to; /* pending or running: where resume returns to */
  int stage;                    /* index into plan->stages */
  int64_t requested_ms;
  int64_t clock_ms;         /* the latest "now" it was stepped with: time never goes back */
  int64_t stage_started_ms; /* when the current stage started running */
  int64_t stage_max_at_ms;  /* halt if the exit gate is unmet by then; 0 = none */
  bool exit_hold_reported;  /* the "minimum reached, exit gate unmet" hold was decided */
  bool max_hold_reported;   /* past the maximum with the gate unproven (not failed): held */
  bool watching;            /* completed, and the watch after GA goes on (plan.watch_ms) */
  int64_t watch_until_ms;   /* when it ends */
  bool prev_stage_passed;   /* the exit gate of the stage before the current one passed */
  bool force_promoted;      /* promote --force took it to the last stage, skipping gates */
  /* After a rollback, the seed's "Rollback within 30 minutes" (plan.rollback_verify_ms): a green
   * health check of the stable version by then verifies it (rollout.c, rollback_verify). */
  int64_t rolled_back_ms;       /* when it was rolled back; 0 never */
  int rollback_verify;          /* enum rollback_verify */
  int64_t rollback_verified_ms; /* when it was verified, or found not verified */

  int64_t seq;         /* last decision sequence number */
  int64_t notify_seq;  /* last notification number */
  int64_t traffic_seq; /* last traffic-split number */

  /* Facts from deploy events. */
  enum fact ci, deploy, health, smoke;
  int64_t smoke_passed, smoke_failed;
  int64_t crashes[PLAN_MAX_STAGES];  /* by cohort */
  int64_t positive[PLAN_MAX_STAGES]; /* feedback by cohort */
  int64_t negative[PLAN_MAX_STAGES];
  struct rollout_incident incidents[ROLLOUT_MAX_INCIDENTS];
  int n_incidents;
  unsigned approvals; /* bit (1 << role) */
  char approvers[APPROVAL_ROLE_COUNT][EVENT_NAME_MAX];

  /* Circuit breaker: consecutive errors; open = the current cohort is disabled. */
  int breaker_errors;
  bool breaker_open;
  bool paged; /* on-call was paged and has not had the all-clear of a resume or rollback */

  struct flags flags; /* this rollout's own kill switches */

  /* Published traffic split: a change in any of these publishes a new one. */
  double exposure_percent;
  unsigned traffic_sig;
  int64_t exposure_changed_ms; /* when exposure_percent last changed: the split check counts
                                  * only what came after (a kill switch held it at 0%) */

  /* Kept for the metric engine: metric and diff events seen. */
  int64_t metric_events;
  int64_t last_metric_ms;

  /* The latest reading of each metric halt rule (on the exposed cohort) and of each metric
   * criterion of the gates evaluated: what `canaryctl status` shows while the rollout runs. */
  struct rollout_reading readings[ROLLOUT_MAX_READINGS];
  int n_readings;

  /* The plan's checklist items ticked so far, in the order they were. */
  struct rollout_checked checked[ROLLOUT_MAX_CHECKED];
  int n_checked;
};

/* Everything a step needs besides the rollout and the event. */
struct mstore_plan;
struct rollout_metrics;

struct step_ctx {
  const struct plan *plan;
  int64_t now;                /* ms since the epoch; the caller's clock, never read here */
  const struct flags *global; /* kill switches that apply to every rollout */
  /* The metric engine: the plan's expressions compiled, and this rollout's series and for:
   * states. Both NULL: metric criteria are "not evaluated" and metric halt rules never fire. */
  const struct mstore_plan *mp;
  struct rollout_metrics *metrics;
};

/* Result of one criterion of a gate, for decisions and `canaryctl status`. */
enum gate_result { GATE_PASS, GATE_FAIL, GATE_NOT_EVALUATED };

struct gate_check {
  const struct criterion *criterion;
  enum gate_result result;
  char detail
      [EVENT_TEXT_MAX]; /* what was seen: "2 crash(es) reported", "waiting for health.checked" */
  /* A metric criterion that fails only for want of evidence: its estimate is on the passing
   * side, the evidence has not proven it yet ("error rate < 0.1%" at 0.03% on too few requests) */
  bool unproven;
};

/*
 * Start a rollout from a rollout.requested event: state pending at the first stage. The entry
 * gate is evaluated by the first rollout_step() call (the engine passes the same event on).
 */
void rollout_init(struct rollout *r, const struct event *requested, const struct plan *plan);

/*
 * Apply one event to r at ctx->now and re-evaluate gates and deadlines. Appends decisions,
 * notifications and traffic splits to out in the order they happen. An event that cannot apply
 * to this rollout (an unknown cohort, say) changes nothing and returns CANARY_EINVALID with the
 * reason in why; a command that is not allowed in the current state is not an error: it is
 * answered with a "hold" decision (rule command_rejected) and changes nothing else.
 */
int rollout_step(struct rollout *r, const struct event *ev, const struct step_ctx *ctx,
                 struct effects *out, char *why, size_t why_len) CANARY_MUSTCHECK;

/*
 * Fire what is due at ctx->now: a stage's minimum duration reached, its maximum passed, an
 * incident window elapsed. Call it at (or after) rollout_next_deadline(). Also re-applies the
 * kill switches in ctx->global (after a global flag change).
 */
int rollout_tick(struct rollout *r, const struct step_ctx *ctx,
                 struct effects *out) CANARY_MUSTCHECK;

/* When the metric halt rules must be evaluated again (a throttled evaluation, a for: about to
 * fire), or ROLLOUT_NO_DEADLINE. */
int64_t rollout_metrics_next(const struct rollout *r, const struct rollout_metrics *m);

/* The earliest time after which rollout_tick() may decide something, or ROLLOUT_NO_DEADLINE. */
int64_t rollout_next_deadline(const struct rollout *r, const struct plan *plan);

/* A rollback's verification (struct rollout.rollback_verify), with its wire name. */
#define ROLLBACK_VERIFY_MAP(XX)                                                                    \
  XX(NONE, "none")                 /* not rolled back, or the plan does not verify */              \
  XX(WAITING, "waiting")           /* rolled back: waiting for a green health check */             \
  XX(VERIFIED, "verified")         /* one came within plan.rollback_verify_ms */                   \
  XX(NOT_VERIFIED, "not verified") /* none came in time */
enum rollback_verify {
#define XX(name, wire) ROLLBACK_VERIFY_##name,
  ROLLBACK_VERIFY_MAP(XX)
#undef XX
      ROLLBACK_VERIFY_COUNT
};
const char *rollback_verify_name(enum rollback_verify v);

/*
 * Evaluate the entry (exit=false) or exit gate of stage at now. Fills up to max checks, returns
 * how many criteria the gate has. The gate passes when every check is GATE_PASS.
 */
int rollout_gate(const struct rollout *r, const struct plan *plan, int stage, bool exit,
                 int64_t now, struct gate_check *checks, int max);

/* Share of users on the canary now, after kill switches and the breaker. */
double rollout_exposure(const struct rollout *r, const struct plan *plan,
                        const struct flags *global);

/* The tick of checklist item id, or NULL while it is open. */
const struct rollout_checked *rollout_checked_find(const struct rollout *r, const char *id);

/*
 * The checklist items still open (required_only: those GA waits for), as "id, id" in buf (cut
 * to fit). Returns how many.
 */
int rollout_checklist_open(const struct rollout *r, const struct plan *plan, bool required_only,
                           char *buf, size_t n);

/* Whether the rollout is finished (rolled back or completed). */
bool rollout_is_terminal(const struct rollout *r);

/* Whether the state diagram has an arrow from `from` to `to` (rollout.c: every state change
 * is checked against it). */
bool rollout_transition_allowed(enum rollout_state from, enum rollout_state to);

/* The kill switches as the plan starts them: everything enabled but what the plan says. */
void flags_init(struct flags *f, const struct plan *plan);

/*
 * Set flag (system.canary.enabled or canary.cohort.<stage>.enabled) to value in f. Returns
 * CANARY_OK, or CANARY_EINVALID when the name is malformed or names no stage of the plan.
 */
int flags_apply(struct flags *f, const struct plan *plan, const char *flag,
                bool value) CANARY_MUSTCHECK;

#endif
