/*
 * The rollout state machine. Facts from events are recorded first; then evaluate() decides
 * what the facts and the clock allow: start, advance, hold, halt. Commands and halt rules act
 * directly. Every change of state goes through this file (enter(), checked against the state
 * diagram's table) and leaves a decision behind. What a step emits is in rollout_effects.c, the
 * gates (their criteria over recorded facts, and the implicit ones) in rollout_gate.c, incidents
 * and alerts in rollout_incident.c, the metric side (metric criteria, halt rules, alerts, the
 * split check) in rollout_metrics.c; rollout_internal.h is what they share.
 */
#include "core/rollout.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/metric_store.h"
#include "core/rollout_internal.h"
#include "core/rollout_metrics.h"
#include "core/enum_names.h"

/* ---- small helpers ------------------------------------------------------------------------- */

bool rollout_is_terminal(const struct rollout *r) {
  return r->state == ROLLOUT_ROLLED_BACK || r->state == ROLLOUT_COMPLETED;
}

/* ---- transitions --------------------------------------------------------------------------- */

/*
 * The state diagram (docs/ARCHITECTURE.md), as the one table every state change is checked
 * against:
 *
 *   pending --entry gate--> running --exit gate--> pending (the next stage) ... --> completed
 *      |  \__________________^  |  \__ exit and next entry gate at once: running (next stage)
 *      |   promote (--force: completed)
 *      +--halt/pause--> paused --resume--> pending | running;  promote --force --> completed
 *   any of pending, running, paused, completed --rollback--> rolled_back
 *
 * A change outside it is a bug in this file: enter() refuses it and fails the event (the
 * worker retries and logs it) rather than store a rollout in a state nobody designed.
 */
#define TO(s) (1u << ROLLOUT_##s)
static const unsigned allowed_to[ROLLOUT_STATE_COUNT] = {
    [ROLLOUT_PENDING] = TO(RUNNING) | TO(COMPLETED) | TO(PAUSED) | TO(ROLLED_BACK),
    [ROLLOUT_RUNNING] = TO(PENDING) | TO(RUNNING) | TO(COMPLETED) | TO(PAUSED) | TO(ROLLED_BACK),
    [ROLLOUT_PAUSED] = TO(PENDING) | TO(RUNNING) | TO(COMPLETED) | TO(ROLLED_BACK),
    [ROLLOUT_COMPLETED] = TO(ROLLED_BACK),
};
#undef TO

bool rollout_transition_allowed(enum rollout_state from, enum rollout_state to) {
  return (unsigned)from < ROLLOUT_STATE_COUNT && (unsigned)to < ROLLOUT_STATE_COUNT &&
         (allowed_to[from] >> to & 1u);
}

/* The one door: every state change of a rollout goes through here. */
static bool enter(struct run *u, enum rollout_state to) {
  if (!rollout_transition_allowed(u->r->state, to)) {
    u->err = CANARY_EINVALID;
    return false;
  }
  u->r->state = to;
  return true;
}

/* Start running stage r->stage now (or complete, on the last stage). */
static struct decision *enter_stage(struct run *u, int from, enum decision_action action,
                                    const char *rule, const char *actor, const char *why) {
  struct rollout *r = u->r;
  const struct stage *s = &u->plan->stages[r->stage];
  enter(u, is_last(u->plan, r->stage) ? ROLLOUT_COMPLETED : ROLLOUT_RUNNING);
  r->stage_started_ms = u->now;
  r->stage_max_at_ms = s->max_duration_ms ? u->now + s->max_duration_ms : 0;
  r->exit_hold_reported = false;
  r->max_hold_reported = false;
  if (action == DECISION_ADVANCE && r->state == ROLLOUT_COMPLETED)
    action = DECISION_COMPLETE;
  char watch[160] = "";
  if (r->state == ROLLOUT_COMPLETED && u->plan->watch_ms > 0) {
    r->watching = true;
    r->watch_until_ms = u->now + u->plan->watch_ms;
    char d[32];
    rollout_format_duration(u->plan->watch_ms, d, sizeof d);
    if (u->plan->holdback_percent > 0)
      snprintf(watch, sizeof watch, " (%g%% held back on %s) and watched for %s",
               u->plan->holdback_percent, r->baseline_version, d);
    else
      snprintf(watch, sizeof watch, " and watched for %s", d);
  }
  struct decision *d = run_decide(u, action, from, rule, actor, "%s; %s at %g%% of users%s", why,
                                  s->name, rollout_cohort_percent(r, u->plan, r->stage), watch);
  decision_add_num(d, "exposure_percent", rollout_exposure(r, u->plan, u->global));
  if (r->watching)
    decision_add_int(d, "watch_until_ms", r->watch_until_ms);
  /* the stage left onward is the checklist's "proceed" decision; this one starts the next */
  if (from >= 0 && from < r->stage)
    run_checklist_stage(u, from, PROOF_DECISION, d->id, d->actor, "proceed");
  run_checklist_stage(u, r->stage, PROOF_STAGE_STARTED, d->id, d->actor, "");
  run_announce(u, d, NOTIFY_SEV_INFO); /* d is stale from here on: see run_latest() */
  if (s->announce[0])
    run_notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, run_latest(u), s->announce,
               "%s %s is now at %s (%g%%). Checklist: %s.", r->service, r->version, s->name,
               s->traffic_percent, s->announce);
  run_checklist_remind(u, r->stage, run_latest(u));
  return run_latest(u); /* good until the caller's next push */
}

/* Stop expansion because a rule fired. */
void run_halt(struct run *u, const char *rule, int severity, const char *fmt_reason) {
  struct rollout *r = u->r;
  bool already = r->state == ROLLOUT_PAUSED;
  if (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING) {
    r->resume_to = r->state;
    enter(u, ROLLOUT_PAUSED);
  }
  struct decision *d = run_decide(u, DECISION_HALT, r->stage, rule, NULL, "%s%s", fmt_reason,
                                  already ? " (already paused)" : "");
  decision_add_num(d, "exposure_percent", rollout_exposure(r, u->plan, u->global));
  run_announce(u, d, severity <= 1 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING);
  if (severity <= 1) /* after run_announce() d may have moved: see run_latest() */
    run_notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, run_latest(u), "Canary halted", "%s %s: %s",
               r->service, r->version, run_latest(u)->reason);
}

static void oncall_all_clear(struct run *u, const char *what);

void run_roll_back(struct run *u, const char *rule, const char *actor, const char *why) {
  struct rollout *r = u->r;
  enter(u, ROLLOUT_ROLLED_BACK);
  struct decision *d = run_decide(u, DECISION_ROLLBACK, r->stage, rule, actor, "%s", why);
  decision_add_num(d, "exposure_percent", 0);
  run_checklist_stage(u, r->stage, PROOF_DECISION, d->id, d->actor, "rollback");
  decision_add_int(d, "post_mortem_due_ms", u->now + u->plan->post_mortem_ms);
  run_announce(u, d, NOTIFY_SEV_WARNING); /* d is stale from here on: see run_latest() */
  run_notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, run_latest(u), "Post-mortem due",
             "%s %s was rolled back. Verify health checks, notify stakeholders; post-mortem within "
             "%" PRId64 " h.",
             r->service, r->version, u->plan->post_mortem_ms / 3600000);
  oncall_all_clear(u, "rolled back");
  /* The seed's "Rollback within 30 minutes": from now the stable version serves everyone, and a
   * green health check of it by the limit verifies the rollback (rollback_verify). A rollout
   * rolled back again (completed, then rolled back) starts the clock again. */
  r->rolled_back_ms = u->now;
  r->rollback_verified_ms = 0;
  r->rollback_verify =
      u->plan->rollback_verify_ms > 0 ? ROLLBACK_VERIFY_WAITING : ROLLBACK_VERIFY_NONE;
}

ENUM_NAMES(rollback_verify, rollback_verify, ROLLBACK_VERIFY_MAP, ROLLBACK_VERIFY_COUNT)

/*
 * The rollback's verification: `ok` a green health.checked now (the baseline serves everyone:
 * any health check is of the stable version), else the time alone. Verified by a green check
 * at or before the limit; not verified once the limit has passed without one — decided at the
 * limit's own time (rollout_next_deadline), so replay decides the same. A failed check changes
 * nothing: the stable version may recover within the limit. Recorded as a `verify` decision
 * with the time it took (or the limit) against the plan's limit; a failure to verify pages.
 */
static void rollback_verify(struct run *u, bool ok) {
  struct rollout *r = u->r;
  if (r->state != ROLLOUT_ROLLED_BACK || r->rollback_verify != ROLLBACK_VERIFY_WAITING)
    return;
  int64_t limit = u->plan->rollback_verify_ms, due = r->rolled_back_ms + limit;
  char took[32], within[32];
  rollout_format_duration(limit, within, sizeof within);
  if (ok && u->now <= due) {
    rollout_format_duration(u->now - r->rolled_back_ms, took, sizeof took);
    r->rollback_verify = ROLLBACK_VERIFY_VERIFIED;
    r->rollback_verified_ms = u->now;
    struct decision *d = run_decide(u, DECISION_VERIFY, r->stage, "rollback_verified", NULL,
                                    "rollback verified: the stable version %s is healthy %s "
                                    "after the rollback (limit %s)",
                                    r->baseline_version, took, within);
    decision_add_int(d, "rollback_duration_ms", u->now - r->rolled_back_ms);
    decision_add_int(d, "limit_ms", limit);
    run_announce(u, d, NOTIFY_SEV_INFO);
    return;
  }
  if (u->now < due)
    return;
  r->rollback_verify = ROLLBACK_VERIFY_NOT_VERIFIED;
  r->rollback_verified_ms = due;
  struct decision *d = run_decide(u, DECISION_VERIFY, r->stage, "rollback_not_verified", NULL,
                                  "rollback not verified: no green health check of the stable "
                                  "version %s within %s of the rollback",
                                  r->baseline_version, within);
  decision_add_int(d, "rollback_duration_ms", limit);
  decision_add_int(d, "limit_ms", limit);
  run_announce(u, d, NOTIFY_SEV_WARNING);
  run_notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, run_latest(u), "Rollback not verified",
             "%s: %s", r->service, run_latest(u)->reason);
}

/*
 * The all-clear on the on-call channel: severity info there closes the rollout's page (a pager
 * resolves it). Sent when the rollout resumes or is rolled back, if on-call was paged since
 * the last all-clear: a consumer that pages on the on-call channel is never woken for nothing.
 */
static void oncall_all_clear(struct run *u, const char *what) {
  struct rollout *r = u->r;
  if (!r->paged)
    return;
  r->paged = false;
  run_notify(u, NOTIFY_ONCALL, NOTIFY_SEV_INFO, run_latest(u), "Canary no longer halted",
             "%s %s %s: %s", r->service, r->version, what, run_latest(u)->reason);
}

/* One round of gate and deadline evaluation; true if the state moved (evaluate again). */
static bool evaluate_once(struct run *u) {
  struct rollout *r = u->r;
  const struct stage *s = &u->plan->stages[r->stage];
  struct gate_check checks[GATE_MAX_CHECKS];
  int n;
  char unmet[EVENT_TEXT_MAX + 64];

  if (r->state == ROLLOUT_PENDING) {
    if (run_gate_passes(u, r->stage, false, checks, &n)) {
      run_explain_gate(u, r->stage, false, checks, n);
      int from = r->stage - 1;
      struct decision *d = enter_stage(u, from, from < 0 ? DECISION_START : DECISION_ADVANCE,
                                       "entry_gate", NULL, "entry gate passed");
      run_gate_evidence(d, checks, n);
      return true;
    }
    if (!r->exit_hold_reported) { /* reused while pending: the entry hold was reported */
      run_explain_gate(u, r->stage, false, checks, n);
      run_unmet_list(checks, n, unmet, sizeof unmet);
      struct decision *d = run_decide(u, DECISION_HOLD, r->stage - 1, "entry_gate", NULL,
                                      "waiting for the entry gate of %s: %s", s->name, unmet);
      run_gate_evidence(d, checks, n);
      r->exit_hold_reported = true;
    }
    return false;
  }
  if (r->state != ROLLOUT_RUNNING || is_last(u->plan, r->stage))
    return false;
  if (u->now < r->stage_started_ms + s->min_duration_ms)
    return false; /* a stage is never left before its minimum */

  if (run_gate_passes(u, r->stage, true, checks, &n)) {
    int from = r->stage;
    /* The stage passed and is left onward: its checklist's "monitored" and "proceed" items are
     * ticked now, before the next entry gate (the last one waits for them), with the decision
     * this step makes next (advance or hold: either way the next number) as their evidence. */
    char next_id[sizeof run_latest(u)->id];
    snprintf(next_id, sizeof next_id, "%s/%" PRId64, r->id, r->seq + 1);
    run_checklist_stage(u, from, PROOF_STAGE_PASSED, next_id, ACTOR_SELF, "");
    run_checklist_stage(u, from, PROOF_DECISION, next_id, ACTOR_SELF, "proceed");
    r->stage++;
    r->prev_stage_passed = true;
    enter(u, ROLLOUT_PENDING);
    r->exit_hold_reported = false;
    struct gate_check entry[GATE_MAX_CHECKS];
    int m;
    run_explain_gate(u, from, true, checks, n);
    if (run_gate_passes(u, r->stage, false, entry, &m)) {
      run_explain_gate(u, r->stage, false, entry, m);
      char why[2 * PLAN_NAME_MAX + 48];
      snprintf(why, sizeof why, "%s passed its exit gate and %s its entry gate",
               stage_name(u->plan, from), u->plan->stages[r->stage].name);
      struct decision *d = enter_stage(u, from, DECISION_ADVANCE, "exit_gate", NULL, why);
      run_gate_evidence(d, checks, n);
      run_gate_evidence(d, entry, m);
      return true;
    }
    run_explain_gate(u, r->stage, false, entry, m);
    run_unmet_list(entry, m, unmet, sizeof unmet);
    struct decision *d =
        run_decide(u, DECISION_HOLD, from, "entry_gate", NULL,
                   "%s passed its exit gate; waiting for the entry gate of %s: %s",
                   stage_name(u->plan, from), u->plan->stages[r->stage].name, unmet);
    run_gate_evidence(d, entry, m);
    r->exit_hold_reported = true;
    return false;
  }
  bool at_max = r->stage_max_at_ms && u->now >= r->stage_max_at_ms;
  /* At the maximum, a gate that failed halts. One that is merely unproven — its estimate on
   * the passing side, too few events to prove it, or no data at all — does not: too little
   * traffic is not a regression (a service with a tenth of the seed's volume cannot prove
   * "error rate < 0.1%" in internal_test's two hours), and no data halts nothing. The rollout
   * holds in the stage, says so once, and goes on when the evidence is in; people can promote
   * or roll back meanwhile. The halt rules keep running all along. */
  bool failed = false;
  for (int i = 0; at_max && i < n; i++)
    if (checks[i].result == GATE_FAIL && !checks[i].unproven)
      failed = true;
  if (at_max && !failed) {
    if (r->max_hold_reported)
      return false;
    run_explain_gate(u, r->stage, true, checks, n);
    run_unmet_list(checks, n, unmet, sizeof unmet);
    struct decision *d = run_decide(u, DECISION_HOLD, r->stage, "stage_max_duration", NULL,
                                    "%s passed its maximum duration with its exit gate not yet "
                                    "proven, and nothing in it failed: holding in the stage until "
                                    "it is (promote or roll back to decide sooner); %s",
                                    s->name, unmet);
    run_gate_evidence(d, checks, n);
    run_announce(u, d, NOTIFY_SEV_WARNING);
    r->max_hold_reported = true;
    r->exit_hold_reported = true;
    return false;
  }
  if (!at_max && r->exit_hold_reported)
    return false; /* nothing to tell */
  run_explain_gate(u, r->stage, true, checks, n);
  run_unmet_list(checks, n, unmet, sizeof unmet);
  if (at_max) {
    char reason[sizeof unmet + 96];
    snprintf(reason, sizeof reason, "%s passed its maximum duration with the exit gate unmet: %s",
             s->name, unmet);
    run_halt(u, "stage_max_duration", 2, reason);
    return false;
  }
  if (!r->exit_hold_reported) {
    struct decision *d =
        run_decide(u, DECISION_HOLD, r->stage, "exit_gate", NULL,
                   "minimum duration of %s reached; exit gate unmet: %s", s->name, unmet);
    run_gate_evidence(d, checks, n);
    r->exit_hold_reported = true;
  }
  return false;
}

static void evaluate(struct run *u) {
  for (int guard = 0; guard <= 2 * u->plan->n_stages && !u->err; guard++)
    if (!evaluate_once(u))
      break;
}

/* ---- circuit breaker ----------------------------------------------------------------------- */

static void breaker_success(struct run *u) { u->r->breaker_errors = 0; }

static void breaker_error(struct run *u, const char *what) {
  struct rollout *r = u->r;
  if (u->plan->breaker_threshold <= 0 || rollout_is_terminal(r) || r->breaker_open) {
    if (!r->breaker_open)
      r->breaker_errors++;
    return;
  }
  if (++r->breaker_errors < u->plan->breaker_threshold)
    return;
  r->breaker_open = true;
  int s = rollout_exposed_stage(r, u->plan);
  char reason[EVENT_TEXT_MAX];
  snprintf(reason, sizeof reason,
           "circuit breaker: %d consecutive errors (last: %s); cohort %s "
           "disabled",
           r->breaker_errors, what, s >= 0 ? u->plan->stages[s].name : "none");
  run_halt(u, "circuit_breaker", 1, reason);
}

/* ---- the watch after GA --------------------------------------------------------------------- */

/* The watch after GA ends at watch_until_ms: the holdback, if any, joins the release (the split
 * is published again at 100%). */
static void watch_end(struct run *u) {
  struct rollout *r = u->r;
  if (!r->watching || u->now < r->watch_until_ms)
    return;
  r->watching = false;
  run_notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, NULL, "Watch over",
             "%s %s: the watch after GA is over%s", r->service, r->version,
             u->plan->holdback_percent > 0 ? "; the holdback moves to the release (100% of users)"
                                           : "");
}

/* ---- events -------------------------------------------------------------------------------- */

static void command_rejected(struct run *u, const char *hint) {
  const struct event *ev = u->ev;
  struct decision *d = run_decide(u, DECISION_HOLD, u->r->stage, "command_rejected", ev->actor,
                                  "%s%s rejected: rollout is %s%s%s",
                                  command_action_name(ev->action), ev->force ? " --force" : "",
                                  rollout_state_name(u->r->state), hint[0] ? "; " : "", hint);
  decision_add_str(d, "command", command_action_name(ev->action));
  decision_add_bool(d, "accepted", false);
}

/*
 * Whether the policy lets this person's event act (core/policy). Refused: a hold that says who
 * tried what and why, posted to #releases — the event changes nothing else, and is not a dead
 * letter: it was well-formed, and its refusal is the answer canaryctl waits for.
 */
static bool authorized(struct run *u) {
  const struct event *ev = u->ev;
  char why[EVENT_TEXT_MAX + 128];
  enum policy_verdict v = policy_authorize(&u->plan->policy, ev, why, sizeof why);
  if (policy_allows(v))
    return true;
  struct decision *d =
      run_decide(u, DECISION_HOLD, u->r->stage, "unauthorized", ev->actor, "%s", why);
  decision_add_str(d, "right", policy_right_name(policy_right_of(ev)));
  decision_add_str(d, "verdict", policy_verdict_name(v));
  decision_add_str(d, "signature", event_auth_name(ev->auth));
  decision_add_bool(d, "accepted", false);
  run_announce(u, d, NOTIFY_SEV_WARNING);
  return false;
}

static void on_command(struct run *u) {
  struct rollout *r = u->r;
  const struct event *ev = u->ev;
  const char *reason = ev->reason[0] ? ev->reason : "no reason given";
  enum rollout_state st = r->state;
  bool live = st == ROLLOUT_PENDING || st == ROLLOUT_RUNNING;
  char
      why[3 * EVENT_TEXT_MAX + 64]; /* longer than a decision's reason: run_decide cuts at a word */

  switch (ev->action) {
  case COMMAND_PAUSE:
    if (!live)
      return command_rejected(u, st == ROLLOUT_PAUSED ? "already paused" : "it has ended");
    r->resume_to = st;
    enter(u, ROLLOUT_PAUSED);
    run_announce(u,
                 run_decide(u, DECISION_PAUSE, r->stage, "manual", ev->actor, "paused by %s: %s",
                            ev->actor[0] ? ev->actor : "unknown", reason),
                 NOTIFY_SEV_WARNING);
    return;
  case COMMAND_RESUME:
    if (st != ROLLOUT_PAUSED)
      return command_rejected(u, "only a paused rollout resumes");
    enter(u, r->resume_to);
    r->breaker_open = false;
    r->breaker_errors = 0;
    r->exit_hold_reported = false;
    r->max_hold_reported = false;
    /* The stage gets a fresh maximum: otherwise a rollout halted at its maximum would halt
     * again the moment it resumes. The minimum still counts from the stage's start. */
    if (r->state == ROLLOUT_RUNNING && u->plan->stages[r->stage].max_duration_ms)
      r->stage_max_at_ms = u->now + u->plan->stages[r->stage].max_duration_ms;
    run_announce(u,
                 run_decide(u, DECISION_RESUME, r->stage, "manual", ev->actor, "resumed by %s: %s",
                            ev->actor[0] ? ev->actor : "unknown", reason),
                 NOTIFY_SEV_INFO);
    oncall_all_clear(u, "resumed");
    return;
  case COMMAND_PROMOTE:
    if (ev->force) {
      if (rollout_is_terminal(r))
        return command_rejected(u, "it has ended");
      int from = r->stage;
      r->stage = u->plan->n_stages - 1;
      r->force_promoted = true;
      if (from < r->stage)
        r->prev_stage_passed = false; /* the stage before the last never passed its exit gate */
      r->breaker_open = false;
      r->breaker_errors = 0;
      snprintf(why, sizeof why, "promoted --force to 100%% by %s: %s",
               ev->actor[0] ? ev->actor : "unknown", reason);
      decision_add_bool(enter_stage(u, from, DECISION_PROMOTE, "manual_force", ev->actor, why),
                        "force", true);
      return;
    }
    if (!live)
      return command_rejected(u, st == ROLLOUT_PAUSED ? "resume it first, or promote --force"
                                                      : "it has ended");
    {
      /* Pending: this stage's entry gate is bypassed. Running: this stage's exit gate AND the
       * next stage's entry gate are (promoting into ga skips its approvals): the decision lists
       * both, or the audit trail would not show what a person overrode. */
      int from = st == ROLLOUT_PENDING ? r->stage - 1 : r->stage;
      struct gate_check checks[GATE_MAX_CHECKS], entry[GATE_MAX_CHECKS];
      int n, m = 0;
      bool met = run_gate_passes(u, r->stage, st == ROLLOUT_RUNNING, checks, &n);
      run_explain_gate(u, r->stage, st == ROLLOUT_RUNNING, checks, n);
      if (st == ROLLOUT_RUNNING) {
        r->stage++;
        r->prev_stage_passed = false; /* the stage left early never passed its exit gate */
        met = run_gate_passes(u, r->stage, false, entry, &m) && met;
        run_explain_gate(u, r->stage, false, entry, m);
      }
      char unmet[EVENT_TEXT_MAX], unmet_entry[EVENT_TEXT_MAX];
      run_unmet_list(checks, n, unmet, sizeof unmet);
      run_unmet_list(entry, m, unmet_entry, sizeof unmet_entry);
      snprintf(why, sizeof why, "promoted by %s: %s%s%s%s%s", ev->actor[0] ? ev->actor : "unknown",
               reason, met ? "" : "; bypassed: ", unmet, unmet[0] && unmet_entry[0] ? "; " : "",
               unmet_entry);
      struct decision *d = enter_stage(u, from, DECISION_PROMOTE, "manual", ev->actor, why);
      run_gate_evidence(d, checks, n);
      run_gate_evidence(d, entry, m);
    }
    return;
  case COMMAND_ROLLBACK:
    if (st == ROLLOUT_ROLLED_BACK)
      return command_rejected(u, "already rolled back");
    snprintf(why, sizeof why, "rolled back by %s: %s", ev->actor[0] ? ev->actor : "unknown",
             reason);
    run_roll_back(u, "manual", ev->actor, why);
    return;
  case COMMAND_CHECK: /* apply_event: it can be refused, the others only answered */
  case COMMAND_ACTION_COUNT:
    break;
  }
}

static int cohort_of(const struct run *u, char *why, size_t why_len) {
  int c = plan_stage_index(u->plan, u->ev->cohort);
  if (c < 0)
    canary_why(why, why_len, CANARY_EINVALID, "cohort: '%s' is not a stage of the plan",
               u->ev->cohort);
  return c;
}

static enum fact fact_of(bool ok) { return ok ? FACT_OK : FACT_FAILED; }

/* Record what ev says; act on commands, flags and alerts. */
static int apply_event(struct run *u, char *why, size_t why_len) {
  struct rollout *r = u->r;
  const struct event *ev = u->ev;
  int c;
  switch (ev->type) {
  case EVENT_ROLLOUT_REQUESTED:
    return CANARY_OK; /* rollout_init() did the work; evaluate() decides */
  case EVENT_CI_COMPLETED:
    r->ci = fact_of(ev->ok);
    return CANARY_OK;
  case EVENT_DEPLOY_COMPLETED:
    r->deploy = fact_of(ev->ok);
    ev->ok ? breaker_success(u) : breaker_error(u, "deployment failed");
    return CANARY_OK;
  case EVENT_HEALTH_CHECKED:
    r->health = fact_of(ev->ok);
    rollback_verify(u, ev->ok);
    ev->ok ? breaker_success(u) : breaker_error(u, "health check failed");
    return CANARY_OK;
  case EVENT_SMOKE_COMPLETED: {
    bool ok = ev->ok && ev->failed == 0;
    r->smoke = fact_of(ok);
    r->smoke_passed = ev->passed;
    r->smoke_failed = ev->failed;
    ok ? breaker_success(u) : breaker_error(u, "smoke tests failed");
    return CANARY_OK;
  }
  case EVENT_CRASH_REPORTED:
    if ((c = cohort_of(u, why, why_len)) < 0)
      return CANARY_EINVALID;
    r->crashes[c] += ev->count;
    breaker_error(u, "crash reported");
    return CANARY_OK;
  case EVENT_INCIDENT_OPENED:
    return run_incident_opened(u, why, why_len);
  case EVENT_INCIDENT_RESOLVED:
    for (int i = 0; i < r->n_incidents; i++)
      if (strcmp(r->incidents[i].id, ev->incident) == 0 && r->incidents[i].open) {
        r->incidents[i].open = false;
        if (r->incidents[i].severity <= 2)
          run_status_page_all_clear(u);
        return CANARY_OK;
      }
    return canary_why(why, why_len, CANARY_EINVALID, "incident: %s is not open on this rollout",
                      ev->incident);
  case EVENT_FEEDBACK_RECEIVED:
    if ((c = cohort_of(u, why, why_len)) < 0)
      return CANARY_EINVALID;
    (ev->sentiment == SENTIMENT_POSITIVE ? r->positive : r->negative)[c]++;
    return CANARY_OK;
  case EVENT_APPROVAL_GRANTED:
    if (!authorized(u))
      return CANARY_OK;
    r->approvals |= 1u << ev->role;
    /* zeroed first: a rollout is compared and stored byte for byte, so no stale tail bytes */
    memset(r->approvers[ev->role], 0, sizeof r->approvers[ev->role]);
    snprintf(r->approvers[ev->role], sizeof r->approvers[ev->role], "%s",
             ev->actor[0] ? ev->actor : "unknown");
    return CANARY_OK;
  case EVENT_ALERT_RAISED:
    run_fire_alert_rules(u, ev->alert_kind, ev->detail);
    return CANARY_OK;
  case EVENT_COMMAND:
    if (authorized(u)) {
      if (ev->action == COMMAND_CHECK)
        return run_checklist_check(u, why, why_len);
      on_command(u);
    }
    return CANARY_OK;
  case EVENT_FLAG_SET: {
    bool global = !ev->rollout[0];
    struct flags next = r->flags;
    /* a bad name first, as for a global switch (engine_apply): invalid whoever sends it */
    if (!global && flags_apply(&next, u->plan, ev->flag, ev->value) != CANARY_OK)
      return canary_why(why, why_len, CANARY_EINVALID, "flag: '%s' names no cohort of the plan",
                        ev->flag);
    if (!authorized(u))
      return CANARY_OK; /* a refused global switch was not set either (engine_apply) */
    r->flags = next;
    struct decision *d = run_decide(
        u, DECISION_FLAG, r->stage, "kill_switch", ev->actor, "%s%s set to %s by %s: exposure %g%%",
        global ? "global " : "", ev->flag, ev->value ? "true" : "false",
        ev->actor[0] ? ev->actor : "unknown", rollout_exposure(r, u->plan, u->global));
    decision_add_str(d, "flag", ev->flag);
    decision_add_bool(d, "value", ev->value);
    decision_add_num(d, "exposure_percent", rollout_exposure(r, u->plan, u->global));
    run_announce(u, d, ev->value ? NOTIFY_SEV_INFO : NOTIFY_SEV_WARNING);
    return CANARY_OK;
  }
  case EVENT_METRICS:
  case EVENT_DIFF_SAMPLES:
    if ((c = u->cohort = cohort_of(u, why, why_len)) < 0)
      return CANARY_EINVALID;
    if (u->m && mstore_ingest(&u->m->ms, c, ev, why, why_len) != CANARY_OK)
      return CANARY_EINVALID; /* refused whole: the store is as it was */
    r->metric_events++;
    r->last_metric_ms = u->now;
    return CANARY_OK;
  case EVENT_TYPE_COUNT:
    break;
  }
  return canary_why(why, why_len, CANARY_EINVALID, "type: %s cannot be applied to a rollout",
                    event_type_name(ev->type));
}

/* ---- public -------------------------------------------------------------------------------- */

void rollout_init(struct rollout *r, const struct event *ev, const struct plan *plan) {
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "%s", ev->rollout);
  snprintf(r->service, sizeof r->service, "%s", ev->service);
  snprintf(r->version, sizeof r->version, "%s", ev->version);
  snprintf(r->baseline_version, sizeof r->baseline_version, "%s", ev->baseline_version);
  r->state = ROLLOUT_PENDING; /* born pending: the one state set outside enter() */
  r->resume_to = ROLLOUT_PENDING;
  r->requested_ms = ev->time_ms;
  r->prev_stage_passed = true; /* the first stage has no predecessor */
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    r->flags.cohort_enabled[i] = true;
  r->flags.canary_enabled = true;
  r->traffic_sig = ~0u; /* publish the first split (exposure 0) at once */
  (void)plan;
}

static void run_init(struct run *u, struct rollout *r, const struct event *ev,
                     const struct step_ctx *ctx, struct effects *out) {
  /* Field by field, not memset: the spare decision (4 KiB) is cleared when used (decide), and
   * a run is set up for every event. */
  u->mp = NULL;
  u->m = NULL;
  u->err = 0;
  u->cohort = -1;
  u->dec_at = 0;
  u->r = r;
  u->plan = ctx->plan;
  u->global = ctx->global;
  u->ev = ev;
  u->now = ctx->now > r->clock_ms ? ctx->now : r->clock_ms;
  u->out = out;
  if (ctx->mp && ctx->metrics) {
    u->mp = ctx->mp;
    u->m = ctx->metrics;
  }
}

int rollout_step(struct rollout *r, const struct event *ev, const struct step_ctx *ctx,
                 struct effects *out, char *why, size_t why_len) {
  struct run u;
  run_init(&u, r, ev, ctx, out);
  /* Validate first: a rejected event must leave no trace, not even a sequence number. Metric
   * data changes the rollout only once the store took it (all or nothing), so the copy to undo
   * with (the rollout with its readings is several KiB) is not made for the bulk of the input. */
  bool undo = ev->type != EVENT_METRICS && ev->type != EVENT_DIFF_SAMPLES;
  struct rollout before;
  if (undo)
    before = *r;
  size_t n_before = out->n;
  int rc = apply_event(&u, why, why_len);
  if (rc != CANARY_OK) {
    if (undo)
      *r = before;
    out->n = n_before;
    return rc;
  }
  run_checklist_event(&u);
  bool ask = true;
  watch_end(&u);
  if (ev->type == EVENT_METRICS || ev->type == EVENT_DIFF_SAMPLES) {
    /* canary data of the exposed cohort is judged at once; anything else a little later. The
     * gates are asked again only with that evaluation (or its deadline's tick): metric data
     * changes nothing else, and a held rollout gets a report every few milliseconds. */
    bool canary = ev->type == EVENT_DIFF_SAMPLES || ev->metrics.variant == VARIANT_CANARY;
    ask = run_metric_rules(&u, canary && u.cohort == rollout_exposed_stage(r, u.plan));
  }
  if (ask && !rollout_is_terminal(r) && r->state != ROLLOUT_PAUSED)
    evaluate(&u);
  run_publish_traffic(&u);
  r->clock_ms = u.now;
  return u.err;
}

int rollout_tick(struct rollout *r, const struct step_ctx *ctx, struct effects *out) {
  struct run u;
  run_init(&u, r, NULL, ctx, out);
  watch_end(&u);
  rollback_verify(&u, false);
  if (u.m && u.m->deadline <= u.now)
    run_metric_rules(&u, true);
  if (!rollout_is_terminal(r) && r->state != ROLLOUT_PAUSED)
    evaluate(&u);
  run_publish_traffic(&u);
  r->clock_ms = u.now;
  return u.err;
}

int64_t rollout_metrics_next(const struct rollout *r, const struct rollout_metrics *m) {
  if (!m || (r->state != ROLLOUT_PENDING && r->state != ROLLOUT_RUNNING && !r->watching))
    return ROLLOUT_NO_DEADLINE;
  return m->deadline > r->clock_ms ? m->deadline : r->clock_ms + 1;
}

static void earliest(int64_t *best, int64_t t) {
  if (t < *best)
    *best = t;
}

int64_t rollout_next_deadline(const struct rollout *r, const struct plan *plan) {
  int64_t best = ROLLOUT_NO_DEADLINE;
  if (r->state == ROLLOUT_COMPLETED && r->watching)
    return r->watch_until_ms; /* the watch after GA ends */
  if (r->state == ROLLOUT_ROLLED_BACK && r->rollback_verify == ROLLBACK_VERIFY_WAITING)
    return r->rolled_back_ms + plan->rollback_verify_ms; /* not verified by then */
  if (r->state != ROLLOUT_PENDING && r->state != ROLLOUT_RUNNING)
    return best;
  const struct stage *s = &plan->stages[r->stage];
  bool exit = r->state == ROLLOUT_RUNNING;
  if (exit) {
    if (is_last(plan, r->stage))
      return best;
    int64_t min_at = r->stage_started_ms + s->min_duration_ms;
    if (!r->exit_hold_reported)
      earliest(&best, min_at); /* the minimum: advance or report the hold */
    if (r->stage_max_at_ms && !r->max_hold_reported)
      earliest(&best, r->stage_max_at_ms < min_at ? min_at : r->stage_max_at_ms);
  }
  /* An incident that ages out of a gate's window changes the gate then. */
  const struct criterion *c = exit ? s->exit : s->entry;
  int n = exit ? s->n_exit : s->n_entry;
  for (int i = 0; i < n; i++) {
    if (c[i].check != CHECK_NO_INCIDENTS_WITHIN)
      continue;
    for (int j = 0; j < r->n_incidents; j++) {
      const struct rollout_incident *in = &r->incidents[j];
      int64_t clears = in->opened_ms + c[i].window_ms;
      if (in->severity <= c[i].max_severity && clears > r->clock_ms)
        earliest(&best, clears);
    }
  }
  return best;
}
