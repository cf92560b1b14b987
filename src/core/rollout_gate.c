/*
 * A gate's criteria checked against the facts the rollout recorded (rollout_gate): CI, deploy,
 * health, smoke runs, crashes, incidents, feedback, approvals. A metric criterion is left "not
 * evaluated" here: the metric engine measures it (rollout_metrics.c, run_metric_check). Then a
 * gate as a step judges it (run_gate_passes): those criteria measured, and the implicit ones.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rollout.h"
#include "core/rollout_internal.h"

static enum gate_result fact_check(enum fact f, const char *event, char *detail, size_t n) {
  switch (f) {
  case FACT_OK:
    snprintf(detail, n, "%s: ok", event);
    return GATE_PASS;
  case FACT_FAILED:
    snprintf(detail, n, "last %s failed", event);
    return GATE_FAIL;
  case FACT_UNKNOWN:
    break;
  }
  snprintf(detail, n, "waiting for %s", event);
  return GATE_FAIL;
}

/* "Sev 1" or "Sev 1-2": the severities a criterion counts. */
static void severities(int max, char *buf, size_t n) {
  if (max <= 1)
    snprintf(buf, n, "Sev 1");
  else
    snprintf(buf, n, "Sev 1-%d", max);
}

/* A duration the way the plan writes them: "48h", "15m", "8s", "1h30m". */
void rollout_format_duration(int64_t ms, char *buf, size_t n) {
  int64_t s = ms / 1000;
  if (ms % 1000 || s == 0)
    snprintf(buf, n, "%" PRId64 "ms", ms);
  else if (s % 3600 == 0)
    snprintf(buf, n, "%" PRId64 "h", s / 3600);
  else if (s >= 3600 && s % 60 == 0)
    snprintf(buf, n, "%" PRId64 "h%" PRId64 "m", s / 3600, s % 3600 / 60);
  else if (s % 60 == 0)
    snprintf(buf, n, "%" PRId64 "m", s / 60);
  else
    snprintf(buf, n, "%" PRId64 "s", s);
}

static const struct rollout_incident *incident_within(const struct rollout *r, int max_sev,
                                                      int64_t since) {
  const struct rollout_incident *worst = NULL;
  for (int i = 0; i < r->n_incidents; i++) {
    const struct rollout_incident *in = &r->incidents[i];
    if (in->severity <= max_sev && in->opened_ms > since &&
        (!worst || in->opened_ms > worst->opened_ms))
      worst = in;
  }
  return worst;
}

static enum gate_result check_one(const struct rollout *r, const struct plan *plan, int stage,
                                  const struct criterion *c, int64_t now, char *detail, size_t n) {
  int cohort = c->cohort >= 0 ? c->cohort : stage;
  const char *cname = stage_name(plan, cohort);
  switch (c->check) {
  case CHECK_CI_PASSED:
    return fact_check(r->ci, "ci.completed", detail, n);
  case CHECK_DEPLOY_SUCCEEDED:
    return fact_check(r->deploy, "deploy.completed", detail, n);
  case CHECK_HEALTH_GREEN:
    return fact_check(r->health, "health.checked", detail, n);
  case CHECK_SMOKE_PASSED:
    if (r->smoke == FACT_UNKNOWN) {
      snprintf(detail, n, "waiting for smoke.completed");
      return GATE_FAIL;
    }
    snprintf(detail, n, "%" PRId64 " passed, %" PRId64 " failed%s", r->smoke_passed,
             r->smoke_failed, r->smoke == FACT_FAILED ? " (run not ok)" : "");
    return r->smoke == FACT_OK ? GATE_PASS : GATE_FAIL;
  case CHECK_NO_CRASHES:
    snprintf(detail, n, "%" PRId64 " crash(es) reported in %s", r->crashes[cohort], cname);
    return r->crashes[cohort] == 0 ? GATE_PASS : GATE_FAIL;
  case CHECK_PREVIOUS_STAGE_PASSED:
    if (stage == 0 || stage < r->stage) {
      snprintf(detail, n, "%s", stage == 0 ? "first stage" : "passed");
      return GATE_PASS;
    }
    if (stage == r->stage && r->prev_stage_passed) {
      snprintf(detail, n, "%s passed its exit gate", stage_name(plan, stage - 1));
      return GATE_PASS;
    }
    if (stage == r->stage && r->force_promoted) {
      snprintf(detail, n, "%s was skipped: promoted --force", stage_name(plan, stage - 1));
      return GATE_FAIL;
    }
    snprintf(detail, n, "%s has not passed its exit gate", stage_name(plan, stage - 1));
    return GATE_FAIL;
  case CHECK_NO_OPEN_INCIDENTS:
    for (int i = 0; i < r->n_incidents; i++) {
      const struct rollout_incident *in = &r->incidents[i];
      if (in->open && in->severity <= c->max_severity) {
        snprintf(detail, n, "incident %s (Sev %d) is open", in->id, in->severity);
        return GATE_FAIL;
      }
    }
    {
      char sev[16];
      severities(c->max_severity, sev, sizeof sev);
      snprintf(detail, n, "no open %s incident", sev);
    }
    return GATE_PASS;
  case CHECK_NO_INCIDENTS_WITHIN: {
    const struct rollout_incident *in = incident_within(r, c->max_severity, now - c->window_ms);
    char sev[16], window[24], ago[24];
    severities(c->max_severity, sev, sizeof sev);
    rollout_format_duration(c->window_ms, window, sizeof window);
    if (in) {
      rollout_format_duration(now - in->opened_ms, ago, sizeof ago);
      snprintf(detail, n, "incident %s (Sev %d) opened %s ago; %s must pass without a %s incident",
               in->id, in->severity, ago, window, sev);
      return GATE_FAIL;
    }
    snprintf(detail, n, "no %s incident in the last %s", sev, window);
    return GATE_PASS;
  }
  case CHECK_POSITIVE_FEEDBACK: {
    int64_t pos = r->positive[cohort], neg = r->negative[cohort];
    double ratio = pos + neg ? (double)pos / (double)(pos + neg) : 0;
    snprintf(detail, n, "%" PRId64 " positive, %" PRId64 " negative from %s", pos, neg, cname);
    /* The seed asks for a positive ratio "> 80%": strictly above min_ratio. */
    bool ok =
        pos >= (c->min_count > 0 ? c->min_count : 1) && (c->min_ratio <= 0 || ratio > c->min_ratio);
    return ok ? GATE_PASS : GATE_FAIL;
  }
  case CHECK_NO_NEGATIVE_FEEDBACK:
    snprintf(detail, n, "%" PRId64 " negative feedback from %s", r->negative[cohort], cname);
    return r->negative[cohort] == 0 ? GATE_PASS : GATE_FAIL;
  case CHECK_APPROVAL:
    if (r->approvals & (1u << c->role)) {
      snprintf(detail, n, "%s approved by %s", approval_role_name(c->role), r->approvers[c->role]);
      return GATE_PASS;
    }
    snprintf(detail, n, "waiting for %s approval", approval_role_name(c->role));
    return GATE_FAIL;
  case CHECK_METRIC:
    snprintf(detail, n, "not measured yet: %s", c->expr); /* run_metric_check measures it */
    return GATE_NOT_EVALUATED;
  case CHECK_COUNT:
    break;
  }
  snprintf(detail, n, "unknown check");
  return GATE_FAIL;
}

int rollout_gate(const struct rollout *r, const struct plan *plan, int stage, bool exit,
                 int64_t now, struct gate_check *checks, int max) {
  if (stage < 0 || stage >= plan->n_stages)
    return 0;
  const struct stage *s = &plan->stages[stage];
  const struct criterion *c = exit ? s->exit : s->entry;
  int n = exit ? s->n_exit : s->n_entry;
  for (int i = 0; i < n && i < max; i++) {
    checks[i].criterion = &c[i];
    checks[i].unproven = false;
    checks[i].result =
        check_one(r, plan, stage, &c[i], now, checks[i].detail, sizeof checks[i].detail);
  }
  return n;
}

/* ---- gates --------------------------------------------------------------------------------- */

/*
 * The implicit criterion of every gate: no expansion while a kill switch or the circuit breaker
 * holds the gate's cohort at 0%. Moving on at 0% would reach the next stage with no evidence
 * from real traffic, and a rollout that completed while switched off would jump to 100% the
 * moment the switch came back.
 */
static const struct criterion canary_on = {.check = CHECK_COUNT,
                                           .name = "kill_switch",
                                           .text = "Canary enabled for the cohort",
                                           .cohort = -1};

/*
 * The implicit criterion of the last stage's entry gate: the checklist's required items are
 * ticked ("GA is not entered while a required item is open"). Shown only while it holds, so a
 * plan without a checklist decides exactly as before.
 */
static const struct criterion checklist_done = {.check = CHECK_COUNT,
                                                .name = "checklist",
                                                .text = "Required checklist items checked",
                                                .cohort = -1};

static bool checklist_holds(const struct run *u, int stage, bool exit, char *detail, size_t n) {
  if (exit || !is_last(u->plan, stage))
    return false;
  char ids[EVENT_TEXT_MAX - 32];
  int open = rollout_checklist_open(u->r, u->plan, true, ids, sizeof ids);
  if (open)
    snprintf(detail, n, "%d required item%s open: %s", open, open == 1 ? "" : "s", ids);
  return open > 0;
}

static bool switched_off(const struct run *u, int stage, char *detail, size_t n) {
  const struct rollout *r = u->r;
  const char *why = NULL;
  if (!u->global->canary_enabled || !r->flags.canary_enabled)
    why = "system.canary.enabled is false";
  else if (!u->global->cohort_enabled[stage] || !r->flags.cohort_enabled[stage])
    why = "the cohort's kill switch is off";
  else if (r->breaker_open)
    why = "the circuit breaker is open";
  if (why)
    snprintf(detail, n, "%s for %s", why, u->plan->stages[stage].name);
  return why != NULL;
}

/* Evaluate a gate; true when every criterion passes. Fills checks (GATE_MAX_CHECKS). */
bool run_gate_passes(const struct run *u, int stage, bool exit, struct gate_check *checks, int *n) {
  *n = rollout_gate(u->r, u->plan, stage, exit, u->now, checks, PLAN_MAX_CRITERIA);
  for (int i = 0; u->m && i < *n; i++)
    if (checks[i].criterion->check == CHECK_METRIC)
      run_metric_check(u, stage, exit, i, &checks[i], false);
  bool pass = true;
  for (int i = 0; i < *n; i++)
    if (checks[i].result != GATE_PASS)
      pass = false;
  if (switched_off(u, stage, checks[*n].detail, sizeof checks[*n].detail)) {
    checks[*n].criterion = &canary_on;
    checks[*n].result = GATE_FAIL;
    checks[*n].unproven = false;
    ++*n;
    pass = false;
  }
  if (checklist_holds(u, stage, exit, checks[*n].detail, sizeof checks[*n].detail)) {
    checks[*n].criterion = &checklist_done;
    checks[*n].result = GATE_FAIL;
    checks[*n].unproven = false;
    ++*n;
    pass = false;
  }
  return pass;
}

/* Give the metric criteria of checks (from run_gate_passes) their text, for a decision. */
void run_explain_gate(const struct run *u, int stage, bool exit, struct gate_check *checks, int n) {
  for (int i = 0; u->m && i < n; i++)
    if (checks[i].criterion->check == CHECK_METRIC)
      run_metric_check(u, stage, exit, i, &checks[i], true);
}

/* "ci_passed (waiting for ci.completed); health_green (last health.checked failed)" */
void run_unmet_list(const struct gate_check *checks, int n, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && used < len; i++) {
    if (checks[i].result == GATE_PASS)
      continue;
    int w = snprintf(buf + used, len - used, "%s%s (%s)", used ? "; " : "",
                     checks[i].criterion->name, checks[i].detail);
    if (w < 0)
      break;
    used += (size_t)w;
  }
}

void run_gate_evidence(struct decision *d, const struct gate_check *checks, int n) {
  static const char *const result_names[] = {"pass", "fail", "not_evaluated"};
  for (int i = 0; i < n; i++)
    decision_add_str(d, checks[i].criterion->name,
                     checks[i].unproven ? "unproven" : result_names[checks[i].result]);
}
