/*
 * The rollout state machine. Facts from events are recorded first; then evaluate() decides
 * what the facts and the clock allow: start, advance, hold, halt. Commands and halt rules act
 * directly. Every change of state goes through this file and leaves a decision behind.
 */
#include "core/rollout.h"

#include <math.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/metric_store.h"
#include "core/rollout_metrics.h"
#include "core/stats.h"

#define ACTOR_SELF "canaryd"

/* One call's working set, so helpers need one argument instead of six. */
struct run {
  struct rollout *r;
  const struct plan *plan;
  const struct flags *global;
  const struct event *ev; /* the event being applied; NULL on a tick */
  int64_t now;
  struct effects *out;
  const struct mstore_plan *mp;  /* NULL: no metric engine */
  struct rollout_metrics *m;
  int err;
  int cohort;            /* metric data: the stage index of its cohort (apply_event) */
  size_t dec_at;         /* index in out of the latest decision; SIZE_MAX: it is in spare */
  struct decision spare; /* written to when the effect list cannot grow (err says so) */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static const char *stage_name(const struct plan *p, int i) {
  return i >= 0 && i < p->n_stages ? p->stages[i].name : "";
}

static bool is_last(const struct plan *p, int stage) { return stage == p->n_stages - 1; }

bool rollout_is_terminal(const struct rollout *r) {
  return r->state == ROLLOUT_ROLLED_BACK || r->state == ROLLOUT_COMPLETED;
}

void flags_init(struct flags *f, const struct plan *plan) {
  memset(f, 0, sizeof *f);
  f->canary_enabled = plan->canary_enabled;
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    f->cohort_enabled[i] = true;
}

int flags_apply(struct flags *f, const struct plan *plan, const char *flag, bool value) {
  static const char prefix[] = "canary.cohort.";
  static const char suffix[] = ".enabled";
  if (strcmp(flag, "system.canary.enabled") == 0) {
    f->canary_enabled = value;
    return CANARY_OK;
  }
  size_t n = strlen(flag), p = sizeof prefix - 1, s = sizeof suffix - 1;
  if (n <= p + s || strncmp(flag, prefix, p) || strcmp(flag + n - s, suffix))
    return CANARY_EINVALID;
  char cohort[PLAN_NAME_MAX];
  if (n - p - s >= sizeof cohort)
    return CANARY_EINVALID;
  memcpy(cohort, flag + p, n - p - s);
  cohort[n - p - s] = '\0';
  int i = plan_stage_index(plan, cohort);
  if (i < 0)
    return CANARY_EINVALID;
  f->cohort_enabled[i] = value;
  return CANARY_OK;
}

/* The stage whose cohort is exposed now: a pending rollout still serves the stage before. */
static int exposed_stage(const struct rollout *r, const struct plan *plan) {
  switch (r->state) {
  case ROLLOUT_COMPLETED: return plan->n_stages - 1;
  case ROLLOUT_ROLLED_BACK: return -1;
  case ROLLOUT_PENDING: return r->stage - 1;
  case ROLLOUT_RUNNING: return r->stage;
  case ROLLOUT_PAUSED: return r->resume_to == ROLLOUT_PENDING ? r->stage - 1 : r->stage;
  case ROLLOUT_STATE_COUNT: break;
  }
  return -1;
}

/*
 * The global switches as they apply to r. They govern canaries in flight; a completed rollout is
 * the release. The engine does not step completed rollouts on a global flag.set (turning every
 * finished release back to its baseline is not what "disable the canary" means), so the global
 * switches must not reach them later either: any unrelated event would republish the split at
 * 0% with no decision behind it. A completed rollout's own flags still apply.
 */
static const struct flags *global_for(const struct rollout *r, const struct flags *global,
                                      struct flags *all_on) {
  if (r->state != ROLLOUT_COMPLETED)
    return global;
  all_on->canary_enabled = true;
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    all_on->cohort_enabled[i] = true;
  return all_on;
}

/* Cohort s's cumulative share of users: the plan's, but the last one keeps the holdback on the
 * old version while the watch after GA goes on. */
static double cohort_percent(const struct rollout *r, const struct plan *plan, int s) {
  double p = plan->stages[s].traffic_percent;
  if (r->watching && s == plan->n_stages - 1 && plan->holdback_percent > 0)
    p -= plan->holdback_percent;
  return p;
}

double rollout_exposure(const struct rollout *r, const struct plan *plan,
                        const struct flags *global) {
  struct flags all_on;
  global = global_for(r, global, &all_on);
  int s = exposed_stage(r, plan);
  if (s < 0 || r->breaker_open || !global->canary_enabled || !r->flags.canary_enabled)
    return 0;
  if (!global->cohort_enabled[s] || !r->flags.cohort_enabled[s])
    return 0;
  return cohort_percent(r, plan, s);
}

/* ---- effects ------------------------------------------------------------------------------- */

static struct effect *push(struct run *u, enum effect_kind kind) {
  struct effect *e = effects_push(u->out, kind);
  if (!e)
    u->err = CANARY_ENOMEM;
  return e;
}

/*
 * The latest decision of this run. The effect list is a growable array: every push may move it
 * (realloc), so a decision pointer is good only until the next notification or traffic split is
 * pushed. Code that still needs the decision after a push asks for it again here.
 */
static struct decision *latest(struct run *u) {
  return u->dec_at == SIZE_MAX ? &u->spare : &u->out->items[u->dec_at].u.decision;
}

/*
 * Record a decision about the rollout as it is now (state and stage already changed).
 * from is the stage index it came from (-1: none). Never returns NULL.
 */
__attribute__((format(printf, 6, 7))) static struct decision *
decide(struct run *u, enum decision_action action, int from, const char *rule, const char *actor,
       const char *fmt, ...) {
  struct rollout *r = u->r;
  struct effect *e = push(u, EFFECT_DECISION);
  struct decision *d = e ? &e->u.decision : &u->spare;
  u->dec_at = e ? (size_t)(e - u->out->items) : SIZE_MAX;
  if (!e)
    memset(d, 0, sizeof *d);
  d->seq = ++r->seq;
  snprintf(d->id, sizeof d->id, "%s/%" PRId64, r->id, d->seq);
  snprintf(d->rollout, sizeof d->rollout, "%s", r->id);
  d->time_ms = u->now;
  d->action = action;
  snprintf(d->from_stage, sizeof d->from_stage, "%s", stage_name(u->plan, from));
  snprintf(d->to_stage, sizeof d->to_stage, "%s", stage_name(u->plan, r->stage));
  d->state = r->state;
  snprintf(d->rule, sizeof d->rule, "%s", rule ? rule : "");
  snprintf(d->actor, sizeof d->actor, "%s", actor && actor[0] ? actor : ACTOR_SELF);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->reason, sizeof d->reason, fmt, ap);
  va_end(ap);
  decision_add_str(d, "trigger", u->ev ? u->ev->id : "deadline");
  return d;
}

static const char *channel_target(const struct plan *p, enum notify_channel ch) {
  switch (ch) {
  case NOTIFY_RELEASES: return p->notify.releases;
  case NOTIFY_ONCALL: return p->notify.oncall;
  case NOTIFY_STATUS_PAGE: return p->notify.status_page;
  case NOTIFY_EXECUTIVE: return p->notify.executive;
  case NOTIFY_CHANNEL_COUNT: break;
  }
  return "";
}

__attribute__((format(printf, 6, 7))) static void
notify(struct run *u, enum notify_channel ch, enum notify_severity sev, const struct decision *d,
       const char *title, const char *fmt, ...) {
  if (!channel_target(u->plan, ch)[0])
    return; /* the plan names no address for this channel */
  /* d and the arguments (often d->reason) point into the effect list, which the push below may
   * move: take what is needed from them first. */
  char text[sizeof ((struct notification *)0)->text];
  char decision_id[sizeof d->id];
  snprintf(decision_id, sizeof decision_id, "%s", d ? d->id : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  struct effect *e = push(u, EFFECT_NOTIFICATION);
  if (!e)
    return;
  struct notification *n = &e->u.notification;
  struct rollout *r = u->r;
  snprintf(n->id, sizeof n->id, "%s/n%" PRId64, r->id, ++r->notify_seq);
  snprintf(n->rollout, sizeof n->rollout, "%s", r->id);
  n->time_ms = u->now;
  n->channel = ch;
  snprintf(n->target, sizeof n->target, "%s", channel_target(u->plan, ch));
  n->severity = sev;
  snprintf(n->title, sizeof n->title, "%s", title);
  snprintf(n->decision_id, sizeof n->decision_id, "%s", decision_id);
  snprintf(n->text, sizeof n->text, "%s", text);
}

/* Tell #releases about a decision, in the words of its reason. */
static void announce(struct run *u, const struct decision *d, enum notify_severity sev) {
  char title[PLAN_TEXT_MAX];
  snprintf(title, sizeof title, "%s %s: %s%s%s", u->r->service, u->r->version,
           decision_action_name(d->action), d->to_stage[0] ? " at " : "", d->to_stage);
  notify(u, NOTIFY_RELEASES, sev, d, title, "%s", d->reason);
}

static unsigned traffic_signature(const struct rollout *r, const struct plan *plan,
                                  const struct flags *g) {
  struct flags all_on;
  g = global_for(r, g, &all_on);
  unsigned sig = (unsigned)(exposed_stage(r, plan) + 1) << 20;
  sig |= (unsigned)(g->canary_enabled && r->flags.canary_enabled) << 0;
  sig |= (unsigned)r->breaker_open << 1;
  for (int i = 0; i < plan->n_stages; i++)
    sig |= (unsigned)(g->cohort_enabled[i] && r->flags.cohort_enabled[i]) << (2 + i);
  return sig;
}

/* Publish the traffic split when anything clusters must apply has changed. */
static void publish_traffic(struct run *u) {
  struct rollout *r = u->r;
  double exposure = rollout_exposure(r, u->plan, u->global);
  unsigned sig = traffic_signature(r, u->plan, u->global);
  if (exposure == r->exposure_percent && sig == r->traffic_sig)
    return;
  struct effect *e = push(u, EFFECT_TRAFFIC);
  if (!e)
    return;
  if (exposure != r->exposure_percent)
    r->exposure_changed_ms = u->now;
  r->exposure_percent = exposure;
  r->traffic_sig = sig;
  struct flags all_on;
  const struct flags *g = global_for(r, u->global, &all_on);
  struct traffic_split *t = &e->u.traffic;
  snprintf(t->id, sizeof t->id, "%s/f%" PRId64, r->id, ++r->traffic_seq);
  snprintf(t->rollout, sizeof t->rollout, "%s", r->id);
  snprintf(t->service, sizeof t->service, "%s", r->service);
  snprintf(t->version, sizeof t->version, "%s", r->version);
  snprintf(t->baseline_version, sizeof t->baseline_version, "%s", r->baseline_version);
  t->time_ms = u->now;
  t->exposure_percent = exposure;
  t->canary_enabled = g->canary_enabled && r->flags.canary_enabled;
  t->breaker_open = r->breaker_open;
  int s = exposed_stage(r, u->plan);
  t->n_cohorts = u->plan->n_stages;
  for (int i = 0; i < u->plan->n_stages; i++) {
    struct traffic_cohort *c = &t->cohorts[i];
    snprintf(c->name, sizeof c->name, "%s", u->plan->stages[i].name);
    c->percent = cohort_percent(r, u->plan, i);
    c->kill = !(g->cohort_enabled[i] && r->flags.cohort_enabled[i]);
    c->enabled = exposure > 0 && i <= s && !c->kill;
  }
  snprintf(t->salt, sizeof t->salt, "%s", r->id);
  t->buckets = u->plan->buckets;
}

/* ---- gates --------------------------------------------------------------------------------- */

static enum gate_result fact_check(enum fact f, const char *event, char *detail, size_t n) {
  switch (f) {
  case FACT_OK: snprintf(detail, n, "%s: ok", event); return GATE_PASS;
  case FACT_FAILED: snprintf(detail, n, "last %s failed", event); return GATE_FAIL;
  case FACT_UNKNOWN: break;
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
static void duration(int64_t ms, char *buf, size_t n) {
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
                                  const struct criterion *c, int64_t now, char *detail,
                                  size_t n) {
  int cohort = c->cohort >= 0 ? c->cohort : stage;
  const char *cname = stage_name(plan, cohort);
  switch (c->check) {
  case CHECK_CI_PASSED: return fact_check(r->ci, "ci.completed", detail, n);
  case CHECK_DEPLOY_SUCCEEDED: return fact_check(r->deploy, "deploy.completed", detail, n);
  case CHECK_HEALTH_GREEN: return fact_check(r->health, "health.checked", detail, n);
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
    duration(c->window_ms, window, sizeof window);
    if (in) {
      duration(now - in->opened_ms, ago, sizeof ago);
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
    bool ok = pos >= (c->min_count > 0 ? c->min_count : 1) && (c->min_ratio <= 0 || ratio > c->min_ratio);
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
    snprintf(detail, n, "not measured yet: %s", c->expr); /* metric_check measures it */
    return GATE_NOT_EVALUATED;
  case CHECK_COUNT: break;
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
    checks[i].result = check_one(r, plan, stage, &c[i], now, checks[i].detail,
                                 sizeof checks[i].detail);
  }
  return n;
}

/*
 * The implicit criterion of every gate: no expansion while a kill switch or the circuit breaker
 * holds the gate's cohort at 0%. Moving on at 0% would reach the next stage with no evidence
 * from real traffic, and a rollout that completed while switched off would jump to 100% the
 * moment the switch came back.
 */
static const struct criterion canary_on = {
    .check = CHECK_COUNT, .name = "kill_switch", .text = "Canary enabled for the cohort",
    .cohort = -1};

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

/*
 * Keep what an evaluation measured on the rollout, for `canaryctl status`: one reading per rule
 * (kind, name), or per criterion (kind, stage, name), overwritten by the next evaluation.
 */
static bool reading_is(const struct rollout_reading *y, enum reading_kind kind, int stage,
                       const char *name) {
  return y->kind == (int8_t)kind && (kind == READING_RULE || y->stage == stage) &&
         strcmp(y->name, name) == 0;
}

/* The reading of (kind, stage, name), or NULL; *hint (slot + 1, 0 unknown) is tried first and
 * kept up to date, and owners (rollout_metrics.reading_owner) says whether it is still right. */
static struct rollout_reading *reading_find(struct rollout *r, const int16_t **owners,
                                            enum reading_kind kind, int stage, const char *name,
                                            int16_t *hint) {
  int h = *hint - 1;
  if (h >= 0 && h < r->n_readings && owners[h] == hint)
    return &r->readings[h];
  for (int i = 0; i < r->n_readings; i++)
    if (reading_is(&r->readings[i], kind, stage, name)) {
      *hint = (int16_t)(i + 1);
      owners[i] = hint;
      return &r->readings[i];
    }
  return NULL;
}

static void note_reading(struct rollout *r, const int16_t **owners, enum reading_kind kind,
                         int stage, const char *name, int16_t *hint,
                         const struct mstore_verdict *v, const struct expr_for *st,
                         int64_t now) {
  int at = v->which >= 0 ? v->which : 0;
  const struct mstore_finding *f = &v->f[at];
  struct rollout_reading *x = reading_find(r, owners, kind, stage, name, hint);
  if (!x) {
    if (r->n_readings >= ROLLOUT_MAX_READINGS)
      return; /* cannot happen with the plan's limits; a reading is only ever informative */
    owners[r->n_readings] = hint;
    *hint = (int16_t)(r->n_readings + 1);
    x = &r->readings[r->n_readings++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->kind = (int8_t)kind;
  }
  x->stage = (int8_t)stage;
  x->truth = (int8_t)f->truth;
  x->state = (int8_t)f->state;
  x->canary = f->canary;
  x->baseline = f->baseline;
  x->threshold = f->threshold;
  x->window_ms = f->window_ms;
  x->n = f->n;
  x->min_n = f->min_n;
  x->at_ms = now;
  x->since_ms = f->state == EXPR_FOR_INACTIVE ? 0 : st[at].since;
  x->log_e = f->evidence ? f->log_e : NAN;
  x->log_needed = f->evidence ? f->log_needed : NAN;
}

/*
 * A metric criterion, decided by the metric engine: it passes while its expression holds;
 * too little data is "not evaluated" (insufficient), never a pass. The data comes from the
 * criterion's cohort, else from the stage's own (exit gate) or the stage exposed before it
 * (entry gate: the next cohort has no traffic yet).
 */
static void metric_check(const struct run *u, int stage, bool exit, int index,
                         struct gate_check *c, bool explain) {
  const struct criterion *cr = c->criterion;
  int cohort = cr->cohort >= 0 ? cr->cohort : exit || stage == 0 ? stage : stage - 1;
  struct expr_for *st = &u->m->gates[stage][exit][index];
  enum mstore_owner owner = exit ? MSTORE_EXIT : MSTORE_ENTRY;
  struct mstore_verdict v;
  /* The text costs more than the evaluation: gates are asked at every step, explained only
   * when a decision shows them (explain_gate). Stepping for: twice at one time is harmless. */
  int rc = explain ? mstore_eval_rule(&u->m->ms, u->mp, owner, stage, index, cohort, u->now, st, &v)
                   : mstore_eval_rule_values(&u->m->ms, u->mp, owner, stage, index, cohort,
                                             u->now, st, &v);
  if (rc != CANARY_OK || v.n == 0)
    return; /* left as "not evaluated" */
  note_reading(u->r, u->m->reading_owner, exit ? READING_EXIT : READING_ENTRY, stage, cr->name,
               &u->m->gate_reading[stage][exit][index], &v, st, u->now);
  c->result = v.holds                         ? GATE_PASS
              : v.truth == EXPR_INSUFFICIENT ? GATE_NOT_EVALUATED /* never a pass on no data */
                                              : GATE_FAIL;
  const struct mstore_finding *d = &v.f[v.which >= 0 ? v.which : 0];
  c->unproven = c->result == GATE_FAIL && d->truth == EXPR_FALSE && d->evidence &&
                !isnan(d->ev.estimate) && !isnan(d->ev.reference) &&
                (d->ev.above ? d->ev.estimate > d->ev.reference
                             : d->ev.estimate < d->ev.reference);
  if (!explain)
    return;
  const struct mstore_finding *f = &v.f[v.which >= 0 ? v.which : 0];
  if (v.truth == EXPR_TRUE && !v.holds && st->state == EXPR_FOR_PENDING) {
    /* true, but not yet for as long as the criterion asks: say how far it has come */
    char held[32], want[32];
    duration(u->now - st->since, held, sizeof held);
    duration(cr->for_ms, want, sizeof want);
    snprintf(c->detail, sizeof c->detail, "%s; true for %s of the %s it must hold", f->explain,
             held, want);
  } else {
    snprintf(c->detail, sizeof c->detail, "%s", f->explain);
  }
}

/* Evaluate a gate; true when every criterion passes. Fills checks (PLAN_MAX_CRITERIA + 1). */
static bool gate_passes(const struct run *u, int stage, bool exit, struct gate_check *checks,
                        int *n) {
  *n = rollout_gate(u->r, u->plan, stage, exit, u->now, checks, PLAN_MAX_CRITERIA);
  for (int i = 0; u->m && i < *n; i++)
    if (checks[i].criterion->check == CHECK_METRIC)
      metric_check(u, stage, exit, i, &checks[i], false);
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
  return pass;
}

/* Give the metric criteria of checks (from gate_passes) their text, for a decision. */
static void explain_gate(const struct run *u, int stage, bool exit, struct gate_check *checks,
                         int n) {
  for (int i = 0; u->m && i < n; i++)
    if (checks[i].criterion->check == CHECK_METRIC)
      metric_check(u, stage, exit, i, &checks[i], true);
}

/* "ci_passed (waiting for ci.completed); health_green (last health.checked failed)" */
static void unmet_list(const struct gate_check *checks, int n, char *buf, size_t len) {
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

static void add_gate_evidence(struct decision *d, const struct gate_check *checks, int n) {
  static const char *const result_names[] = {"pass", "fail", "not_evaluated"};
  for (int i = 0; i < n; i++)
    decision_add_str(d, checks[i].criterion->name,
                     checks[i].unproven ? "unproven" : result_names[checks[i].result]);
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
    duration(u->plan->watch_ms, d, sizeof d);
    if (u->plan->holdback_percent > 0)
      snprintf(watch, sizeof watch, " (%g%% held back on %s) and watched for %s",
               u->plan->holdback_percent, r->baseline_version, d);
    else
      snprintf(watch, sizeof watch, " and watched for %s", d);
  }
  struct decision *d = decide(u, action, from, rule, actor, "%s; %s at %g%% of users%s", why,
                              s->name, cohort_percent(r, u->plan, r->stage), watch);
  decision_add_num(d, "exposure_percent", rollout_exposure(r, u->plan, u->global));
  if (r->watching)
    decision_add_int(d, "watch_until_ms", r->watch_until_ms);
  announce(u, d, NOTIFY_SEV_INFO); /* d is stale from here on: see latest() */
  if (s->announce[0])
    notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, latest(u), s->announce,
           "%s %s is now at %s (%g%%). Checklist: %s.", r->service, r->version, s->name,
           s->traffic_percent, s->announce);
  return latest(u); /* good until the caller's next push */
}

/* Stop expansion because a rule fired. */
static void halt(struct run *u, const char *rule, int severity, const char *fmt_reason) {
  struct rollout *r = u->r;
  bool already = r->state == ROLLOUT_PAUSED;
  if (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING) {
    r->resume_to = r->state;
    enter(u, ROLLOUT_PAUSED);
  }
  struct decision *d = decide(u, DECISION_HALT, r->stage, rule, NULL, "%s%s", fmt_reason,
                              already ? " (already paused)" : "");
  decision_add_num(d, "exposure_percent", rollout_exposure(r, u->plan, u->global));
  announce(u, d, severity <= 1 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING);
  if (severity <= 1) /* after announce() d may have moved: see latest() */
    notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, latest(u), "Canary halted", "%s %s: %s",
           r->service, r->version, latest(u)->reason);
}

static void roll_back(struct run *u, const char *rule, const char *actor, const char *why) {
  struct rollout *r = u->r;
  enter(u, ROLLOUT_ROLLED_BACK);
  struct decision *d = decide(u, DECISION_ROLLBACK, r->stage, rule, actor, "%s", why);
  decision_add_num(d, "exposure_percent", 0);
  decision_add_int(d, "post_mortem_due_ms", u->now + u->plan->post_mortem_ms);
  announce(u, d, NOTIFY_SEV_WARNING); /* d is stale from here on: see latest() */
  notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, latest(u), "Post-mortem due",
         "%s %s was rolled back. Verify health checks, notify stakeholders; post-mortem within "
         "%" PRId64 " h.", r->service, r->version, u->plan->post_mortem_ms / 3600000);
}

/* One round of gate and deadline evaluation; true if the state moved (evaluate again). */
static bool evaluate_once(struct run *u) {
  struct rollout *r = u->r;
  const struct stage *s = &u->plan->stages[r->stage];
  struct gate_check checks[PLAN_MAX_CRITERIA + 1];
  int n;
  char unmet[EVENT_TEXT_MAX + 64];

  if (r->state == ROLLOUT_PENDING) {
    if (gate_passes(u, r->stage, false, checks, &n)) {
      explain_gate(u, r->stage, false, checks, n);
      int from = r->stage - 1;
      struct decision *d = enter_stage(u, from, from < 0 ? DECISION_START : DECISION_ADVANCE,
                                       "entry_gate", NULL, "entry gate passed");
      add_gate_evidence(d, checks, n);
      return true;
    }
    if (!r->exit_hold_reported) { /* reused while pending: the entry hold was reported */
      explain_gate(u, r->stage, false, checks, n);
      unmet_list(checks, n, unmet, sizeof unmet);
      struct decision *d = decide(u, DECISION_HOLD, r->stage - 1, "entry_gate",
                                  NULL, "waiting for the entry gate of %s: %s", s->name, unmet);
      add_gate_evidence(d, checks, n);
      r->exit_hold_reported = true;
    }
    return false;
  }
  if (r->state != ROLLOUT_RUNNING || is_last(u->plan, r->stage))
    return false;
  if (u->now < r->stage_started_ms + s->min_duration_ms)
    return false; /* a stage is never left before its minimum */

  if (gate_passes(u, r->stage, true, checks, &n)) {
    int from = r->stage;
    r->stage++;
    r->prev_stage_passed = true;
    enter(u, ROLLOUT_PENDING);
    r->exit_hold_reported = false;
    struct gate_check entry[PLAN_MAX_CRITERIA + 1];
    int m;
    explain_gate(u, from, true, checks, n);
    if (gate_passes(u, r->stage, false, entry, &m)) {
      explain_gate(u, r->stage, false, entry, m);
      char why[2 * PLAN_NAME_MAX + 48];
      snprintf(why, sizeof why, "%s passed its exit gate and %s its entry gate",
               stage_name(u->plan, from), u->plan->stages[r->stage].name);
      struct decision *d = enter_stage(u, from, DECISION_ADVANCE, "exit_gate", NULL, why);
      add_gate_evidence(d, checks, n);
      add_gate_evidence(d, entry, m);
      return true;
    }
    explain_gate(u, r->stage, false, entry, m);
    unmet_list(entry, m, unmet, sizeof unmet);
    struct decision *d = decide(u, DECISION_HOLD, from, "entry_gate", NULL,
                                "%s passed its exit gate; waiting for the entry gate of %s: %s",
                                stage_name(u->plan, from), u->plan->stages[r->stage].name, unmet);
    add_gate_evidence(d, entry, m);
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
    explain_gate(u, r->stage, true, checks, n);
    unmet_list(checks, n, unmet, sizeof unmet);
    struct decision *d = decide(u, DECISION_HOLD, r->stage, "stage_max_duration", NULL,
                                "%s passed its maximum duration with its exit gate not yet "
                                "proven, and nothing in it failed: holding in the stage until "
                                "it is (promote or roll back to decide sooner); %s",
                                s->name, unmet);
    add_gate_evidence(d, checks, n);
    announce(u, d, NOTIFY_SEV_WARNING);
    r->max_hold_reported = true;
    r->exit_hold_reported = true;
    return false;
  }
  if (!at_max && r->exit_hold_reported)
    return false; /* nothing to tell */
  explain_gate(u, r->stage, true, checks, n);
  unmet_list(checks, n, unmet, sizeof unmet);
  if (at_max) {
    char reason[sizeof unmet + 96];
    snprintf(reason, sizeof reason, "%s passed its maximum duration with the exit gate unmet: %s",
             s->name, unmet);
    halt(u, "stage_max_duration", 2, reason);
    return false;
  }
  if (!r->exit_hold_reported) {
    struct decision *d = decide(u, DECISION_HOLD, r->stage, "exit_gate", NULL,
                                "minimum duration of %s reached; exit gate unmet: %s", s->name,
                                unmet);
    add_gate_evidence(d, checks, n);
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
  int s = exposed_stage(r, u->plan);
  char reason[EVENT_TEXT_MAX];
  snprintf(reason, sizeof reason, "circuit breaker: %d consecutive errors (last: %s); cohort %s "
           "disabled", r->breaker_errors, what, s >= 0 ? u->plan->stages[s].name : "none");
  halt(u, "circuit_breaker", 1, reason);
}

/* ---- metric halt rules --------------------------------------------------------------------- */

/* The measured values a metric halt rests on: canary, baseline, threshold, window, samples. */
static void add_finding(struct decision *d, const struct mstore_finding *f) {
  if (f->evidence) { /* what the evidence rests on: counts, estimate, e-value, level, bound */
    const struct expr_evidence *x = &f->ev;
    decision_add_num(d, "canary_count", x->canary_x);
    decision_add_num(d, "canary_trials", x->canary_n);
    if (x->baseline_n > 0) {
      decision_add_num(d, "baseline_count", x->baseline_x);
      decision_add_num(d, "baseline_trials", x->baseline_n);
    }
    if (!isnan(x->line))
      decision_add_num(d, "counted_above", x->line);
    if (x->dispersion > 1)
      decision_add_num(d, "dispersion", x->dispersion);
    if (x->since_ms != INT64_MIN) /* the counts since a slice began: a change mid-stage */
      decision_add_int(d, "counted_since_ms", x->since_ms);
    else /* since a stage began (the release's first, for evidence carried across stages) */
      decision_add_int(d, "counted_from_stage", x->from_cohort);
    decision_add_num(d, "estimate", x->estimate);
    decision_add_num(d, "reference", x->reference);
    if (!isnan(x->bound))
      decision_add_num(d, "bound", x->bound);
    decision_add_num(d, "e_value", exp(f->log_e));
    decision_add_num(d, "alpha", exp(-f->log_needed));
    decision_add_str(d, "expression", f->explain);
    return;
  }
  if (!isnan(f->canary))
    decision_add_num(d, "canary", f->canary);
  if (!isnan(f->baseline))
    decision_add_num(d, "baseline", f->baseline);
  if (!isnan(f->threshold))
    decision_add_num(d, "threshold", f->threshold);
  decision_add_int(d, "window_ms", f->window_ms);
  decision_add_int(d, "samples", f->n);
  decision_add_str(d, "expression", f->explain);
}

/*
 * The traffic split's health: a chi-square test of the canary's share of the cohort's requests
 * against the share the split should give it (0.5 against a same-size control group, else the
 * cohort's percentage). A mismatch (p < srm_p) is an unhealthy split — routing is broken, so
 * no comparison of canary and baseline can be trusted — and halts as such, not as a regression.
 */
static void split_check_estimate(struct run *u, int cohort) {
  const struct plan *p = u->plan;
  const struct mstore_series *c =
      mstore_series_find(&u->m->ms, cohort, VARIANT_CANARY, "requests");
  const struct mstore_series *b =
      mstore_series_find(&u->m->ms, cohort, VARIANT_BASELINE, "requests");
  if (!c || !b)
    return;
  /* Up to the last complete bucket: the canary's and the baseline's reports for the current
   * interval arrive one after the other, and half an interval is a mismatch of its own. */
  int64_t end = u->now - u->m->ms.cfg.bucket_ms;
  double cr = window_counter_sum(&c->w, end, p->srm_window_ms);
  double br = window_counter_sum(&b->w, end, p->srm_window_ms);
  double share = p->srm_control ? 0.5 : p->stages[cohort].traffic_percent / 100.0;
  struct stats_opts o = STATS_SRM_DEFAULTS;
  o.alpha = p->srm_p;
  struct stats_verdict v;
  if (cr < 0 || br < 0 ||
      stats_srm_opts((uint64_t)cr, (uint64_t)br, share, &o, &v) != CANARY_OK ||
      v.outcome != STATS_SPLIT_MISMATCH)
    return;
  char reason[EVENT_TEXT_MAX + 64];
  snprintf(reason, sizeof reason, "unhealthy traffic split in %s: the canary got %.2f%% of "
           "requests, the split says %.2f%% (chi-square p = %.2g < %g); canary and baseline "
           "cannot be compared", p->stages[cohort].name, 100 * v.canary_rate, 100 * share,
           v.p_value, p->srm_p);
  halt(u, "unhealthy_split", 2, reason);
  struct decision *d = latest(u);
  decision_add_num(d, "canary_requests", cr);
  decision_add_num(d, "baseline_requests", br);
  decision_add_num(d, "canary_share", v.canary_rate);
  decision_add_num(d, "expected_share", share);
  decision_add_num(d, "p_value", v.p_value);
  decision_add_int(d, "window_ms", p->srm_window_ms);
}

/*
 * The split on evidence (mstore_evidence_split): every request since the stage began counts,
 * and the test stays valid however often it is asked, so a healthy split is not halted by the
 * thousandth look at it; a share outside split_margin of the expected one halts.
 */
static void split_check_evidence(struct run *u, int cohort) {
  const struct plan *p = u->plan;
  double alpha = u->mp->ev.rule_alpha;
  /* the share since exposure last changed within the stage (a kill switch switched back on):
   * what came before is another split */
  int64_t since = u->r->exposure_changed_ms > u->r->stage_started_ms ? u->r->exposure_changed_ms
                                                                      : INT64_MIN;
  struct expr_evidence x;
  mstore_evidence_split(&u->m->ms, u->mp, cohort, alpha, since, false, &x);
  if (x.n <= 0 || !(x.log_e >= -log(alpha)))
    return;
  mstore_evidence_split(&u->m->ms, u->mp, cohort, alpha, since, true, &x); /* with its bound */
  char reason[EVENT_TEXT_MAX + 64];
  snprintf(reason, sizeof reason, "unhealthy traffic split in %s: the canary got %.2f%% of "
           "requests, the split says %.2f%% (evidence e = %.3g >= 1/%.3g: the share is %s "
           "%.2f%% with %.4g%% confidence); canary and baseline cannot be compared",
           p->stages[cohort].name, 100 * x.estimate, 100 * x.reference, exp(x.log_e), alpha,
           x.estimate > x.reference ? "above" : "below", 100 * x.bound, 100 * (1 - alpha));
  halt(u, "unhealthy_split", 2, reason);
  struct decision *d = latest(u);
  decision_add_num(d, "canary_requests", x.canary_x);
  decision_add_num(d, "baseline_requests", x.baseline_x);
  decision_add_num(d, "canary_share", x.estimate);
  decision_add_num(d, "expected_share", x.reference);
  decision_add_num(d, "share_bound", x.bound);
  decision_add_num(d, "margin", u->mp->ev.split_margin);
  decision_add_num(d, "e_value", exp(x.log_e));
  decision_add_num(d, "alpha", alpha);
}

/*
 * The traffic split's health: does the canary get the share of requests the split says it
 * should (0.5 against a same-size control group, else the cohort's percentage)? A mismatch is
 * an unhealthy split — routing is broken, so no comparison of canary and baseline can be
 * trusted — and halts as such, not as a regression.
 */
static void split_check(struct run *u, int cohort) {
  if (!u->plan->srm_enabled)
    return;
  if (!(u->r->exposure_percent > 0))
    return; /* a kill switch or the breaker holds the canary at 0%: no split to check */
  if (u->plan->decide == PLAN_DECIDE_EVIDENCE)
    split_check_evidence(u, cohort);
  else
    split_check_estimate(u, cohort);
}

/*
 * Advance the for: of the metric criteria the rollout is heading for — its stage's exit gate
 * and the next stage's entry gate while running, its entry gate while pending — at every metric
 * evaluation, not only when the gate itself is asked (which happens after the stage's minimum,
 * or once the rollout waits for the stage): "SLOs met for 24 h" must have been watched for
 * those 24 h. A pending one arms a deadline, so it passes at its exact time.
 */
/*
 * How often a criterion is watched: a hundredth of its time scale — its window, or its for:
 * when shorter — between the rules' cadence and ROLLOUT_GATE_TRACK_MS. Ten seconds for the
 * plan's hour-long windows; every evaluation for a plan in fast motion (the demo's 20 s).
 */
static int64_t gate_cadence(const struct run *u, int stage, bool exit, int i) {
  const struct criterion *c = exit ? &u->plan->stages[stage].exit[i]
                                   : &u->plan->stages[stage].entry[i];
  int first;
  int64_t scale = ROLLOUT_GATE_TRACK_MS * 100;
  if (mstore_plan_find(u->mp, exit ? MSTORE_EXIT : MSTORE_ENTRY, stage, i, &first) &&
      u->mp->x[first].longest_ms < scale)
    scale = u->mp->x[first].longest_ms;
  if (c->for_ms > 0 && c->for_ms < scale)
    scale = c->for_ms;
  int64_t t = scale / 100;
  return t < ROLLOUT_METRICS_EVAL_MS ? ROLLOUT_METRICS_EVAL_MS
         : t > ROLLOUT_GATE_TRACK_MS ? ROLLOUT_GATE_TRACK_MS
                                     : t;
}

static void track_gate(struct run *u, int stage, bool exit) {
  const struct stage *s = &u->plan->stages[stage];
  const struct criterion *c = exit ? s->exit : s->entry;
  int n = exit ? s->n_exit : s->n_entry;
  struct rollout_metrics *m = u->m;
  for (int i = 0; i < n && !u->err; i++) {
    if (c[i].check != CHECK_METRIC)
      continue;
    struct expr_for *st = m->gates[stage][exit];
    int64_t due;
    bool pending = expr_for_deadline(&st[i], c[i].for_ms, &due);
    const struct rollout_reading *last =
        reading_find(u->r, m->reading_owner, exit ? READING_EXIT : READING_ENTRY, stage,
                     c[i].name, &m->gate_reading[stage][exit][i]);
    if (last && u->now - last->at_ms < gate_cadence(u, stage, exit, i) &&
        !(pending && due <= u->now)) {
      if (pending && due < m->deadline)
        m->deadline = due; /* watched again at its time whatever the cadence */
      continue;
    }
    int cohort = c[i].cohort >= 0 ? c[i].cohort : exit || stage == 0 ? stage : stage - 1;
    struct mstore_verdict v;
    if (mstore_eval_rule_values(&m->ms, u->mp, exit ? MSTORE_EXIT : MSTORE_ENTRY, stage, i, cohort,
                         u->now, &m->gates[stage][exit][i], &v) != CANARY_OK ||
        v.n == 0)
      continue;
    note_reading(u->r, m->reading_owner, exit ? READING_EXIT : READING_ENTRY, stage, c[i].name,
                 &m->gate_reading[stage][exit][i], &v, &m->gates[stage][exit][i], u->now);
    if (v.deadline < m->deadline)
      m->deadline = v.deadline;
  }
}

static void track_gates(struct run *u) {
  const struct rollout *r = u->r;
  if (r->state == ROLLOUT_PENDING) {
    track_gate(u, r->stage, false);
  } else if (r->state == ROLLOUT_RUNNING && !is_last(u->plan, r->stage)) {
    track_gate(u, r->stage, true);
    track_gate(u, r->stage + 1, false);
  }
}

/* The watch after GA ends at watch_until_ms: the holdback, if any, joins the release (the split
 * is published again at 100%). */
static void watch_end(struct run *u) {
  struct rollout *r = u->r;
  if (!r->watching || u->now < r->watch_until_ms)
    return;
  r->watching = false;
  notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, NULL, "Watch over",
         "%s %s: the watch after GA is over%s", r->service, r->version,
         u->plan->holdback_percent > 0 ? "; the holdback moves to the release (100% of users)"
                                       : "");
}

/*
 * One halt rule (owner MSTORE_RULE) or alert of the plan's Alert Configuration (MSTORE_ALERT),
 * evaluated on the exposed cohort's canary: its reading is noted, and when it fires it acts —
 * alert_oncall pages on-call with the evidence (the rollout goes on), pause_canary halts,
 * rollback rolls back, each with the measured values as evidence. Alerts are the halt rules'
 * equals: the same evidence, at the same level, counted in the same false-halt budget.
 * Returns true when the rollout stopped.
 */
static bool judge(struct run *u, enum mstore_owner owner, int i, int cohort) {
  struct rollout_metrics *m = u->m;
  struct rollout *r = u->r;
  bool alert = owner == MSTORE_ALERT;
  const struct rule *rule = alert ? &u->plan->alerts[i] : &u->plan->rules[i];
  int row = alert ? PLAN_MAX_RULES + i : i;
  struct mstore_verdict v;
  if (mstore_eval_rule(&m->ms, u->mp, owner, -1, i, cohort, u->now, m->rules[row], &v) !=
          CANARY_OK ||
      v.n == 0)
    return false;
  if (v.deadline < m->deadline)
    m->deadline = v.deadline;
  note_reading(r, m->reading_owner, READING_RULE, cohort, rule->name, &m->rule_reading[row], &v,
               m->rules[row], u->now);
  if (!v.fired)
    return false;
  const struct mstore_finding *f = &v.f[v.which >= 0 ? v.which : 0];
  char reason[EVENT_TEXT_MAX + 64];
  snprintf(reason, sizeof reason, "%s %s: %s: %s", alert ? "alert" : "halt rule", rule->name,
           rule->text[0] ? rule->text : rule->name, f->explain);
  if (r->state == ROLLOUT_COMPLETED) { /* the watch after GA: people decide, paged at once */
    notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NULL, rule->name,
           "%s %s after GA: %s. To roll back: canaryctl rollback %s", r->service, r->version,
           reason, r->id);
    notify(u, NOTIFY_RELEASES, NOTIFY_SEV_CRITICAL, NULL, rule->name,
           "%s %s after GA: %s (on-call paged). To roll back: canaryctl rollback %s", r->service,
           r->version, reason, r->id);
    return false;
  }
  if (rule->action == RULE_ALERT_ONCALL) {
    notify(u, NOTIFY_ONCALL, rule->severity <= 1 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING,
           NULL, rule->name, "%s %s: %s", r->service, r->version, reason);
    return false;
  }
  struct mstore_finding shown = *f;
  if (isnan(shown.baseline)) { /* the same expression on the baseline, for comparison */
    int first;
    struct expr_result br;
    if (mstore_plan_find(u->mp, owner, -1, i, &first) > v.which && v.which >= 0 &&
        mstore_eval_expr(&m->ms, u->mp, &u->mp->x[first + v.which], cohort, u->now,
                         VARIANT_BASELINE, &br) == CANARY_OK &&
        br.n_compares > 0)
      shown.baseline = br.compares[0].lhs;
  }
  if (rule->action == RULE_ROLLBACK)
    roll_back(u, rule->name, NULL, reason);
  else
    halt(u, rule->name, rule->severity, reason);
  add_finding(latest(u), &shown);
  decision_add_str(latest(u), "cohort", u->plan->stages[cohort].name);
  return true;
}

/*
 * Evaluate the plan's metric halt rules and alerts on the exposed cohort's canary, at most once per
 * ROLLOUT_METRICS_EVAL_MS of event time (a deadline brings the next evaluation when data came
 * in between), and act on those that fire: pause_canary, alert_oncall or rollback, with the
 * measured values as evidence. Returns whether it evaluated.
 */
static bool metric_rules(struct run *u, bool now_please) {
  struct rollout_metrics *m = u->m;
  struct rollout *r = u->r;
  if (!m || (r->state != ROLLOUT_PENDING && r->state != ROLLOUT_RUNNING && !r->watching)) {
    if (m)
      m->deadline = INT64_MAX;
    return false;
  }
  int cohort = exposed_stage(r, u->plan);
  if (cohort < 0) { /* nothing exposed yet: nothing to judge */
    m->deadline = INT64_MAX;
    return false;
  }
  if (u->now < m->next_eval_ms || !now_please) {
    int64_t at = u->now < m->next_eval_ms ? m->next_eval_ms : u->now + ROLLOUT_METRICS_EVAL_MS;
    if (at < m->deadline)
      m->deadline = at;
    return false;
  }
  if (cohort != m->rules_cohort) { /* a new cohort: its runs start from nothing */
    memset(m->rules, 0, sizeof m->rules);
    m->rules_cohort = cohort;
  }
  m->next_eval_ms = u->now + ROLLOUT_METRICS_EVAL_MS;
  m->deadline = INT64_MAX;
  /* Once the rollout stopped, the other rules are moot until it resumes; an alert that pages
   * still does (the seed pages on-call on latency while the halt rule pauses). */
  bool stopped = false;
  for (int i = 0; i < u->plan->n_rules && !u->err && !stopped; i++)
    stopped = judge(u, MSTORE_RULE, i, cohort);
  for (int i = 0; i < u->plan->n_alerts && !u->err; i++)
    if (!stopped || u->plan->alerts[i].action == RULE_ALERT_ONCALL)
      stopped |= judge(u, MSTORE_ALERT, i, cohort);
  /* (after GA the split is the release's own, and no gate is left) */
  if (!u->err && (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING))
    split_check(u, cohort);
  if (!u->err && (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING))
    track_gates(u);
  return true;
}

/* ---- events -------------------------------------------------------------------------------- */

static void command_rejected(struct run *u, const char *hint) {
  const struct event *ev = u->ev;
  struct decision *d = decide(u, DECISION_HOLD, u->r->stage, "command_rejected", ev->actor,
                              "%s%s rejected: rollout is %s%s%s", command_action_name(ev->action),
                              ev->force ? " --force" : "", rollout_state_name(u->r->state),
                              hint[0] ? "; " : "", hint);
  decision_add_str(d, "command", command_action_name(ev->action));
  decision_add_bool(d, "accepted", false);
}

static void on_command(struct run *u) {
  struct rollout *r = u->r;
  const struct event *ev = u->ev;
  const char *reason = ev->reason[0] ? ev->reason : "no reason given";
  enum rollout_state st = r->state;
  bool live = st == ROLLOUT_PENDING || st == ROLLOUT_RUNNING;
  char why[EVENT_TEXT_MAX + 64];

  switch (ev->action) {
  case COMMAND_PAUSE:
    if (!live)
      return command_rejected(u, st == ROLLOUT_PAUSED ? "already paused" : "it has ended");
    r->resume_to = st;
    enter(u, ROLLOUT_PAUSED);
    announce(u, decide(u, DECISION_PAUSE, r->stage, "manual", ev->actor, "paused by %s: %s",
                       ev->actor[0] ? ev->actor : "unknown", reason), NOTIFY_SEV_WARNING);
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
    announce(u, decide(u, DECISION_RESUME, r->stage, "manual", ev->actor, "resumed by %s: %s",
                       ev->actor[0] ? ev->actor : "unknown", reason), NOTIFY_SEV_INFO);
    return;
  case COMMAND_PROMOTE:
    if (ev->force) {
      if (rollout_is_terminal(r))
        return command_rejected(u, "it has ended");
      int from = r->stage;
      r->stage = u->plan->n_stages - 1;
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
      struct gate_check checks[PLAN_MAX_CRITERIA + 1], entry[PLAN_MAX_CRITERIA + 1];
      int n, m = 0;
      bool met = gate_passes(u, r->stage, st == ROLLOUT_RUNNING, checks, &n);
      explain_gate(u, r->stage, st == ROLLOUT_RUNNING, checks, n);
      if (st == ROLLOUT_RUNNING) {
        r->stage++;
        r->prev_stage_passed = false; /* the stage left early never passed its exit gate */
        met = gate_passes(u, r->stage, false, entry, &m) && met;
        explain_gate(u, r->stage, false, entry, m);
      }
      char unmet[EVENT_TEXT_MAX], unmet_entry[EVENT_TEXT_MAX];
      unmet_list(checks, n, unmet, sizeof unmet);
      unmet_list(entry, m, unmet_entry, sizeof unmet_entry);
      snprintf(why, sizeof why, "promoted by %s: %s%s%s%s%s", ev->actor[0] ? ev->actor : "unknown",
               reason, met ? "" : "; bypassed: ", unmet, unmet[0] && unmet_entry[0] ? "; " : "",
               unmet_entry);
      struct decision *d = enter_stage(u, from, DECISION_PROMOTE, "manual", ev->actor, why);
      add_gate_evidence(d, checks, n);
      add_gate_evidence(d, entry, m);
    }
    return;
  case COMMAND_ROLLBACK:
    if (st == ROLLOUT_ROLLED_BACK)
      return command_rejected(u, "already rolled back");
    snprintf(why, sizeof why, "rolled back by %s: %s", ev->actor[0] ? ev->actor : "unknown",
             reason);
    roll_back(u, "manual", ev->actor, why);
    return;
  case COMMAND_ACTION_COUNT:
    break;
  }
}

static enum alert_kind alert_of_incident(enum incident_kind k) {
  switch (k) {
  case INCIDENT_SECURITY: return ALERT_SECURITY;
  case INCIDENT_COMPLIANCE: return ALERT_COMPLIANCE;
  case INCIDENT_DATA_INCONSISTENCY: return ALERT_DATA_INCONSISTENCY;
  default: return ALERT_KIND_COUNT;
  }
}

/* Fire the plan's rules that watch alerts of kind. */
static void fire_alert_rules(struct run *u, enum alert_kind kind, const char *detail) {
  struct rollout *r = u->r;
  for (int i = 0; i < u->plan->n_rules && !u->err; i++) {
    const struct rule *rule = &u->plan->rules[i];
    if (!rule->has_alert || rule->on_alert != kind)
      continue;
    char reason[EVENT_TEXT_MAX + 64];
    snprintf(reason, sizeof reason, "halt rule %s: %s%s%s", rule->name,
             rule->text[0] ? rule->text : alert_kind_name(kind), detail[0] ? ": " : "", detail);
    if (r->state == ROLLOUT_COMPLETED) {
      /* after GA the release is everyone's: a security, compliance or data alert pages on-call
       * (and tells #releases), with the way back */
      notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NULL, rule->name,
             "%s %s after GA: %s. To roll back: canaryctl rollback %s", r->service, r->version,
             reason, r->id);
      notify(u, NOTIFY_RELEASES, NOTIFY_SEV_CRITICAL, NULL, rule->name,
             "%s %s after GA: %s (on-call paged)", r->service, r->version, reason);
    } else if (rollout_is_terminal(r) || rule->action == RULE_ALERT_ONCALL) {
      notify(u, rule->action == RULE_ALERT_ONCALL ? NOTIFY_ONCALL : NOTIFY_RELEASES,
             rule->severity <= 1 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING, NULL, rule->name,
             "%s %s: %s", r->service, r->version, reason);
    } else if (rule->action == RULE_ROLLBACK) {
      roll_back(u, rule->name, NULL, reason);
    } else {
      halt(u, rule->name, rule->severity, reason);
    }
  }
}

static int on_incident_opened(struct run *u, char *why, size_t why_len) {
  struct rollout *r = u->r;
  const struct event *ev = u->ev;
  for (int i = 0; i < r->n_incidents; i++)
    if (strcmp(r->incidents[i].id, ev->incident) == 0)
      return canary_why(why, why_len, CANARY_EINVALID, "incident: %s is already open",
                        ev->incident);
  if (r->n_incidents == ROLLOUT_MAX_INCIDENTS)
    return canary_why(why, why_len, CANARY_EINVALID,
                      "incident: too many incidents on this rollout (%s)", ev->incident);
  struct rollout_incident *in = &r->incidents[r->n_incidents++];
  snprintf(in->id, sizeof in->id, "%s", ev->incident);
  in->severity = ev->severity;
  in->kind = ev->incident_kind;
  in->opened_ms = u->now;
  in->open = true;
  if (ev->severity <= 2)
    notify(u, NOTIFY_STATUS_PAGE, NOTIFY_SEV_WARNING, NULL, "Incident under investigation",
           "Sev %d incident %s (%s) during the rollout of %s %s.", ev->severity, ev->incident,
           incident_kind_name(ev->incident_kind), r->service, r->version);
  if (ev->severity == 1) {
    notify(u, NOTIFY_EXECUTIVE, NOTIFY_SEV_CRITICAL, NULL, "Executive briefing: Sev 1 incident",
           "Sev 1 incident %s (%s) during the rollout of %s %s.", ev->incident,
           incident_kind_name(ev->incident_kind), r->service, r->version);
    notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NULL, "Sev 1 incident",
           "Sev 1 incident %s (%s) during the rollout of %s %s.", ev->incident,
           incident_kind_name(ev->incident_kind), r->service, r->version);
  }
  enum alert_kind k = alert_of_incident(ev->incident_kind);
  if (k != ALERT_KIND_COUNT)
    fire_alert_rules(u, k, ev->incident);
  return CANARY_OK;
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
    return on_incident_opened(u, why, why_len);
  case EVENT_INCIDENT_RESOLVED:
    for (int i = 0; i < r->n_incidents; i++)
      if (strcmp(r->incidents[i].id, ev->incident) == 0 && r->incidents[i].open) {
        r->incidents[i].open = false;
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
    r->approvals |= 1u << ev->role;
    /* zeroed first: a rollout is compared and stored byte for byte, so no stale tail bytes */
    memset(r->approvers[ev->role], 0, sizeof r->approvers[ev->role]);
    snprintf(r->approvers[ev->role], sizeof r->approvers[ev->role], "%s",
             ev->actor[0] ? ev->actor : "unknown");
    return CANARY_OK;
  case EVENT_ALERT_RAISED:
    fire_alert_rules(u, ev->alert_kind, ev->detail);
    return CANARY_OK;
  case EVENT_COMMAND:
    on_command(u);
    return CANARY_OK;
  case EVENT_FLAG_SET: {
    bool global = !ev->rollout[0];
    if (!global && flags_apply(&r->flags, u->plan, ev->flag, ev->value) != CANARY_OK)
      return canary_why(why, why_len, CANARY_EINVALID, "flag: '%s' names no cohort of the plan",
                        ev->flag);
    struct decision *d = decide(u, DECISION_FLAG, r->stage, "kill_switch", ev->actor,
                                "%s%s set to %s by %s: exposure %g%%", global ? "global " : "",
                                ev->flag, ev->value ? "true" : "false",
                                ev->actor[0] ? ev->actor : "unknown",
                                rollout_exposure(r, u->plan, u->global));
    decision_add_str(d, "flag", ev->flag);
    decision_add_bool(d, "value", ev->value);
    decision_add_num(d, "exposure_percent", rollout_exposure(r, u->plan, u->global));
    announce(u, d, ev->value ? NOTIFY_SEV_INFO : NOTIFY_SEV_WARNING);
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
  bool ask = true;
  watch_end(&u);
  if (ev->type == EVENT_METRICS || ev->type == EVENT_DIFF_SAMPLES) {
    /* canary data of the exposed cohort is judged at once; anything else a little later. The
     * gates are asked again only with that evaluation (or its deadline's tick): metric data
     * changes nothing else, and a held rollout gets a report every few milliseconds. */
    bool canary = ev->type == EVENT_DIFF_SAMPLES || ev->metrics.variant == VARIANT_CANARY;
    ask = metric_rules(&u, canary && u.cohort == exposed_stage(r, u.plan));
  }
  if (ask && !rollout_is_terminal(r) && r->state != ROLLOUT_PAUSED)
    evaluate(&u);
  publish_traffic(&u);
  r->clock_ms = u.now;
  return u.err;
}

int rollout_tick(struct rollout *r, const struct step_ctx *ctx, struct effects *out) {
  struct run u;
  run_init(&u, r, NULL, ctx, out);
  watch_end(&u);
  if (u.m && u.m->deadline <= u.now)
    metric_rules(&u, true);
  if (!rollout_is_terminal(r) && r->state != ROLLOUT_PAUSED)
    evaluate(&u);
  publish_traffic(&u);
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
