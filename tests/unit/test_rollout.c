/*
 * The rollout state machine, stepped directly (no engine): gates criterion by criterion, the
 * deadlines of a stage, every command in every state, halt rules, the circuit breaker and the
 * kill switches. Time is an argument, so a 72-hour stage takes microseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rollout.h"
#include "fixtures.h"

#define T0 1700000000000LL     /* 2023-11-14T22:13:20Z: when the rollout is requested */
#define S0 (T0 + 3 * MIN_MS)   /* internal_test starts (start() below) */
#define S1 (S0 + 1 * HOUR_MS)  /* friendly_gp starts (to_friendly_gp()) */
#define S2 (S1 + 24 * HOUR_MS) /* beta starts (to_beta()) */
#define RID "r1"

enum { INTERNAL_TEST, FRIENDLY_GP, BETA, GA };

/* One rollout on the fixture plan, and the effects of its last step or tick. */
struct t {
  struct plan plan;
  struct flags global;
  struct rollout r;
  struct effects fx;
  int next_id;
  char why[256];
};

static int setup(void **state) {
  struct t *t = calloc(1, sizeof *t);
  if (!t)
    return -1;
  fixture_plan(&t->plan);
  flags_init(&t->global, &t->plan);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  struct t *t = *state;
  effects_free(&t->fx);
  free(t);
  return 0;
}

/* ---- stepping ------------------------------------------------------------------------------ */

static struct event ev(struct t *t, enum event_type type, int64_t at) {
  char id[32];
  snprintf(id, sizeof id, "e%d", ++t->next_id);
  return fixture_event(type, id, RID, at);
}

/* Step with ev at its own time; the effects of this step only are left in t->fx. */
static int step(struct t *t, const struct event *e) {
  effects_clear(&t->fx);
  t->why[0] = '\0';
  struct step_ctx ctx = {.plan = &t->plan, .now = e->time_ms, .global = &t->global};
  return rollout_step(&t->r, e, &ctx, &t->fx, t->why, sizeof t->why);
}

static void apply(struct t *t, struct event e) { assert_int_equal(step(t, &e), CANARY_OK); }

static void tick(struct t *t, int64_t at) {
  effects_clear(&t->fx);
  struct step_ctx ctx = {.plan = &t->plan, .now = at, .global = &t->global};
  assert_int_equal(rollout_tick(&t->r, &ctx, &t->fx), CANARY_OK);
}

static void request(struct t *t, int64_t at) {
  struct event e = fixture_requested("req", RID, at);
  rollout_init(&t->r, &e, &t->plan);
  apply(t, e);
}

static void fact(struct t *t, enum event_type type, int64_t at, bool ok) {
  struct event e = ev(t, type, at);
  e.ok = ok;
  apply(t, e);
}

static void smoke(struct t *t, int64_t at, bool ok, int64_t passed, int64_t failed) {
  struct event e = ev(t, EVENT_SMOKE_COMPLETED, at);
  e.ok = ok;
  e.passed = passed;
  e.failed = failed;
  apply(t, e);
}

static void crash(struct t *t, int64_t at, const char *cohort) {
  struct event e = ev(t, EVENT_CRASH_REPORTED, at);
  snprintf(e.cohort, sizeof e.cohort, "%s", cohort);
  e.count = 1;
  apply(t, e);
}

static void incident(struct t *t, int64_t at, const char *id, int sev, enum incident_kind kind) {
  struct event e = ev(t, EVENT_INCIDENT_OPENED, at);
  snprintf(e.incident, sizeof e.incident, "%s", id);
  e.severity = sev;
  e.incident_kind = kind;
  apply(t, e);
}

static void resolve(struct t *t, int64_t at, const char *id) {
  struct event e = ev(t, EVENT_INCIDENT_RESOLVED, at);
  snprintf(e.incident, sizeof e.incident, "%s", id);
  apply(t, e);
}

static void feedback(struct t *t, int64_t at, const char *cohort, enum sentiment s) {
  struct event e = ev(t, EVENT_FEEDBACK_RECEIVED, at);
  snprintf(e.cohort, sizeof e.cohort, "%s", cohort);
  e.sentiment = s;
  apply(t, e);
}

static void approve(struct t *t, int64_t at, enum approval_role role) {
  struct event e = ev(t, EVENT_APPROVAL_GRANTED, at);
  e.role = role;
  snprintf(e.actor, sizeof e.actor, "%s", approval_role_name(role));
  apply(t, e);
}

static void alert(struct t *t, int64_t at, enum alert_kind kind) {
  struct event e = ev(t, EVENT_ALERT_RAISED, at);
  e.alert_kind = kind;
  snprintf(e.detail, sizeof e.detail, "seen by the test");
  apply(t, e);
}

static void command(struct t *t, int64_t at, enum command_action a, bool force) {
  char id[32];
  snprintf(id, sizeof id, "c%d", ++t->next_id);
  apply(t, fixture_command(id, RID, at, a, force));
}

static int flag(struct t *t, int64_t at, const char *name, bool value) {
  char id[32];
  snprintf(id, sizeof id, "f%d", ++t->next_id);
  struct event e = fixture_flag(id, RID, at, name, value);
  return step(t, &e);
}

/* Requested at T0; ci, deploy and health pass; internal_test runs from S0. */
static void start(struct t *t) {
  request(t, T0);
  fact(t, EVENT_CI_COMPLETED, T0 + 1 * MIN_MS, true);
  fact(t, EVENT_DEPLOY_COMPLETED, T0 + 2 * MIN_MS, true);
  fact(t, EVENT_HEALTH_CHECKED, S0, true);
  assert_int_equal(t->r.state, ROLLOUT_RUNNING);
}

/* internal_test passes its exit gate at its minimum: friendly_gp runs from S1. */
static void to_friendly_gp(struct t *t) {
  start(t);
  smoke(t, S0 + 10 * MIN_MS, true, 42, 0);
  tick(t, S1);
  assert_int_equal(t->r.state, ROLLOUT_RUNNING);
  assert_int_equal(t->r.stage, FRIENDLY_GP);
}

/* friendly_gp gets positive feedback and no negative: beta runs from S2. */
static void to_beta(struct t *t) {
  to_friendly_gp(t);
  feedback(t, S1 + 2 * HOUR_MS, "friendly_gp", SENTIMENT_POSITIVE);
  tick(t, S2);
  assert_int_equal(t->r.state, ROLLOUT_RUNNING);
  assert_int_equal(t->r.stage, BETA);
}

/* ---- looking at effects -------------------------------------------------------------------- */

static double exposure(const struct t *t) { return rollout_exposure(&t->r, &t->plan, &t->global); }

static size_t n_decisions(const struct t *t) { return effects_count(&t->fx, EFFECT_DECISION); }
static size_t n_traffic(const struct t *t) { return effects_count(&t->fx, EFFECT_TRAFFIC); }
static size_t n_notes(const struct t *t) { return effects_count(&t->fx, EFFECT_NOTIFICATION); }

static size_t n_notes_on(const struct t *t, enum notify_channel ch) {
  size_t n = 0;
  for (size_t i = 0; i < t->fx.n; i++)
    n += t->fx.items[i].kind == EFFECT_NOTIFICATION && t->fx.items[i].u.notification.channel == ch;
  return n;
}

/* The k-th decision of the last step (0-based); fails the test if there is none. */
static const struct decision *decision(const struct t *t, size_t k) {
  for (size_t i = 0, seen = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_DECISION && seen++ == k)
      return &t->fx.items[i].u.decision;
  fail_msg("decision %zu not found among %zu effects", k, t->fx.n);
  return NULL;
}

/* The only decision of the last step. */
static const struct decision *only_decision(const struct t *t) {
  assert_int_equal(n_decisions(t), 1);
  return decision(t, 0);
}

/* The last traffic split of the last step, or NULL. */
static const struct traffic_split *last_traffic(const struct t *t) {
  for (size_t i = t->fx.n; i-- > 0;)
    if (t->fx.items[i].kind == EFFECT_TRAFFIC)
      return &t->fx.items[i].u.traffic;
  return NULL;
}

/* Macros, so a failure names the line of the test rather than of a helper. */
#define assert_decision(d, act, st, rl)                                                            \
  do {                                                                                             \
    assert_string_equal(decision_action_name((d)->action), decision_action_name(act));             \
    assert_string_equal(rollout_state_name((d)->state), rollout_state_name(st));                   \
    assert_string_equal((d)->rule, (rl));                                                          \
  } while (0)

#define assert_contains(haystack, needle)                                                          \
  do {                                                                                             \
    if (!strstr((haystack), (needle)))                                                             \
      fail_msg("'%s' does not contain '%s'", (haystack), (needle));                                \
  } while (0)

#define assert_evidence_str(d, key, want)                                                          \
  do {                                                                                             \
    const struct evidence_item *it_ = decision_evidence((d), (key));                               \
    assert_non_null(it_);                                                                          \
    assert_int_equal(it_->kind, EVIDENCE_STR);                                                     \
    assert_string_equal(it_->str, (want));                                                         \
  } while (0)

#define assert_evidence_num(d, key, want)                                                          \
  do {                                                                                             \
    const struct evidence_item *it_ = decision_evidence((d), (key));                               \
    assert_non_null(it_);                                                                          \
    assert_int_equal(it_->kind, EVIDENCE_NUM);                                                     \
    assert_true(it_->num == (want));                                                               \
  } while (0)

#define assert_state(t, st, stg)                                                                   \
  do {                                                                                             \
    assert_string_equal(rollout_state_name((t)->r.state), rollout_state_name(st));                 \
    assert_int_equal((t)->r.stage, (stg));                                                         \
  } while (0)

/* ---- starting ------------------------------------------------------------------------------ */

static void test_requested_holds_and_publishes_zero(void **state) {
  struct t *t = *state;
  request(t, T0);
  assert_state(t, ROLLOUT_PENDING, INTERNAL_TEST);
  assert_int_equal(t->fx.n, 2);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_PENDING, "entry_gate");
  assert_string_equal(d->to_stage, "internal_test");
  assert_string_equal(d->from_stage, "");
  assert_int_equal(d->time_ms, T0);
  assert_contains(d->reason, "ci_passed (waiting for ci.completed)");
  assert_contains(d->reason, "deploy_succeeded (waiting for deploy.completed)");
  assert_contains(d->reason, "health_green (waiting for health.checked)");
  assert_evidence_str(d, "ci_passed", "fail");
  const struct traffic_split *ts = last_traffic(t);
  assert_non_null(ts);
  assert_true(ts->exposure_percent == 0);
  assert_string_equal(ts->rollout, RID);
  assert_string_equal(ts->service, "web");
  assert_string_equal(ts->version, "2.1.0");
  assert_string_equal(ts->baseline_version, "2.0.9");
  assert_int_equal(ts->n_cohorts, 4);
  assert_string_equal(ts->cohorts[3].name, "ga");
  assert_false(ts->cohorts[0].enabled);
  assert_int_equal(ts->buckets, 10000);
  assert_int_equal(n_notes(t), 0);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
}

static void test_start_when_entry_gate_passes(void **state) {
  struct t *t = *state;
  request(t, T0);
  fact(t, EVENT_CI_COMPLETED, T0 + 1 * MIN_MS, true);
  assert_int_equal(t->fx.n, 0); /* the hold is not repeated for every event */
  fact(t, EVENT_DEPLOY_COMPLETED, T0 + 2 * MIN_MS, true);
  assert_int_equal(t->fx.n, 0);
  assert_state(t, ROLLOUT_PENDING, INTERNAL_TEST);
  fact(t, EVENT_HEALTH_CHECKED, S0, true);

  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_int_equal(t->fx.n, 3);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_START, ROLLOUT_RUNNING, "entry_gate");
  assert_string_equal(d->from_stage, "");
  assert_string_equal(d->to_stage, "internal_test");
  assert_string_equal(d->actor, "canaryd");
  assert_int_equal(d->time_ms, S0);
  assert_evidence_num(d, "exposure_percent", 0.5);
  assert_evidence_str(d, "health_green", "pass");
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
  assert_int_equal(n_notes(t), 1);
  assert_true(last_traffic(t)->exposure_percent == 0.5);
  assert_true(last_traffic(t)->cohorts[0].enabled);
  assert_false(last_traffic(t)->cohorts[1].enabled);
  assert_true(exposure(t) == 0.5);
  assert_int_equal(t->r.stage_started_ms, S0);
  assert_int_equal(t->r.stage_max_at_ms, S0 + 2 * HOUR_MS);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S0 + 1 * HOUR_MS);
}

/* ---- gates, criterion by criterion --------------------------------------------------------- */

enum whole { ANY, PASSES, FAILS };

struct gate_case {
  const char *name;
  void (*plan_mod)(struct plan *);
  struct event events[8]; /* applied in order at T0 + time_ms; a zeroed entry ends the list */
  int stage;
  bool exit;
  const char *criterion;
  int64_t at; /* the gate is evaluated at T0 + at */
  enum gate_result want;
  const char *detail; /* a substring of the check's detail, or NULL */
  enum whole gate;    /* whether the whole gate passes, when it matters */
};

static void ratio_0_8(struct plan *p) {
  for (int i = 0; i < p->stages[BETA].n_entry; i++)
    if (p->stages[BETA].entry[i].check == CHECK_POSITIVE_FEEDBACK)
      p->stages[BETA].entry[i].min_ratio = 0.8;
}

static void crashes_in_friendly_gp(struct plan *p) {
  fixture_criterion(p, FRIENDLY_GP, true, CHECK_NO_CRASHES, "no_crashes_gp");
}

static void metric_exit(struct plan *p) {
  struct criterion *c = fixture_criterion(p, INTERNAL_TEST, true, CHECK_METRIC, "error_rate");
  snprintf(c->expr, sizeof c->expr, "error_rate < 0.001");
  c->window_ms = 5 * MIN_MS;
}

#define CI(ok_)                                                                                    \
  { .type = EVENT_CI_COMPLETED, .ok = (ok_) }
#define DEPLOY(ok_)                                                                                \
  { .type = EVENT_DEPLOY_COMPLETED, .ok = (ok_) }
#define HEALTH(ok_)                                                                                \
  { .type = EVENT_HEALTH_CHECKED, .ok = (ok_) }
#define SMOKE(ok_, p_, f_)                                                                         \
  { .type = EVENT_SMOKE_COMPLETED, .ok = (ok_), .passed = (p_), .failed = (f_) }
#define CRASH(c_)                                                                                  \
  { .type = EVENT_CRASH_REPORTED, .cohort = c_, .count = 1 }
#define OPEN(id_, sev_, at_)                                                                       \
  { .type = EVENT_INCIDENT_OPENED, .incident = id_, .severity = (sev_), .time_ms = (at_) }
#define RESOLVE(id_, at_)                                                                          \
  { .type = EVENT_INCIDENT_RESOLVED, .incident = id_, .time_ms = (at_) }
#define POS(c_)                                                                                    \
  { .type = EVENT_FEEDBACK_RECEIVED, .cohort = c_, .sentiment = SENTIMENT_POSITIVE }
#define NEG(c_)                                                                                    \
  { .type = EVENT_FEEDBACK_RECEIVED, .cohort = c_, .sentiment = SENTIMENT_NEGATIVE }
#define APPROVE(r_)                                                                                \
  { .type = EVENT_APPROVAL_GRANTED, .role = (r_), .actor = "someone" }

static const struct gate_case gate_cases[] = {
    /* ci / deploy / health: the last event wins */
    {"ci: none yet",
     NULL,
     {{0}},
     INTERNAL_TEST,
     false,
     "ci_passed",
     0,
     GATE_FAIL,
     "waiting for ci.completed",
     ANY},
    {"ci: ok", NULL, {CI(true)}, INTERNAL_TEST, false, "ci_passed", 0, GATE_PASS, NULL, ANY},
    {"ci: failed",
     NULL,
     {CI(false)},
     INTERNAL_TEST,
     false,
     "ci_passed",
     0,
     GATE_FAIL,
     "last ci.completed failed",
     ANY},
    {"ci: failed then ok",
     NULL,
     {CI(false), CI(true)},
     INTERNAL_TEST,
     false,
     "ci_passed",
     0,
     GATE_PASS,
     NULL,
     ANY},
    {"ci: ok then failed",
     NULL,
     {CI(true), CI(false)},
     INTERNAL_TEST,
     false,
     "ci_passed",
     0,
     GATE_FAIL,
     NULL,
     ANY},
    {"deploy: ok",
     NULL,
     {DEPLOY(true)},
     INTERNAL_TEST,
     false,
     "deploy_succeeded",
     0,
     GATE_PASS,
     NULL,
     ANY},
    {"deploy: failed",
     NULL,
     {DEPLOY(false)},
     INTERNAL_TEST,
     false,
     "deploy_succeeded",
     0,
     GATE_FAIL,
     "last deploy.completed failed",
     ANY},
    {"deploy: ok then failed",
     NULL,
     {DEPLOY(true), DEPLOY(false)},
     INTERNAL_TEST,
     false,
     "deploy_succeeded",
     0,
     GATE_FAIL,
     NULL,
     ANY},
    {"health: ok",
     NULL,
     {HEALTH(true)},
     INTERNAL_TEST,
     false,
     "health_green",
     0,
     GATE_PASS,
     NULL,
     ANY},
    {"health: failed",
     NULL,
     {HEALTH(false)},
     INTERNAL_TEST,
     false,
     "health_green",
     0,
     GATE_FAIL,
     "last health.checked failed",
     ANY},
    {"health: failed then ok",
     NULL,
     {HEALTH(false), HEALTH(true)},
     INTERNAL_TEST,
     false,
     "health_green",
     0,
     GATE_PASS,
     NULL,
     ANY},
    {"entry: all three ok",
     NULL,
     {CI(true), DEPLOY(true), HEALTH(true)},
     INTERNAL_TEST,
     false,
     "health_green",
     0,
     GATE_PASS,
     NULL,
     PASSES},
    {"entry: two of three",
     NULL,
     {CI(true), HEALTH(true)},
     INTERNAL_TEST,
     false,
     "ci_passed",
     0,
     GATE_PASS,
     NULL,
     FAILS},

    /* smoke: ok with 0 failures; a failed test or a run that is not ok fails */
    {"smoke: none yet",
     NULL,
     {{0}},
     INTERNAL_TEST,
     true,
     "smoke_passed",
     0,
     GATE_FAIL,
     "waiting for smoke.completed",
     ANY},
    {"smoke: ok, 0 failed",
     NULL,
     {SMOKE(true, 42, 0)},
     INTERNAL_TEST,
     true,
     "smoke_passed",
     0,
     GATE_PASS,
     "42 passed, 0 failed",
     ANY},
    {"smoke: ok, 1 failed",
     NULL,
     {SMOKE(true, 41, 1)},
     INTERNAL_TEST,
     true,
     "smoke_passed",
     0,
     GATE_FAIL,
     "41 passed, 1 failed",
     ANY},
    {"smoke: not ok, 0 failed",
     NULL,
     {SMOKE(false, 42, 0)},
     INTERNAL_TEST,
     true,
     "smoke_passed",
     0,
     GATE_FAIL,
     "(run not ok)",
     ANY},
    {"smoke: failed then ok",
     NULL,
     {SMOKE(true, 41, 1), SMOKE(true, 42, 0)},
     INTERNAL_TEST,
     true,
     "smoke_passed",
     0,
     GATE_PASS,
     NULL,
     ANY},

    /* crashes count in the gate's own cohort only */
    {"crashes: none",
     NULL,
     {SMOKE(true, 42, 0)},
     INTERNAL_TEST,
     true,
     "no_crashes",
     0,
     GATE_PASS,
     "0 crash(es) reported in internal_test",
     PASSES},
    {"crashes: 1 in the cohort",
     NULL,
     {SMOKE(true, 42, 0), CRASH("internal_test")},
     INTERNAL_TEST,
     true,
     "no_crashes",
     0,
     GATE_FAIL,
     "1 crash(es) reported in internal_test",
     FAILS},
    {"crashes: 1 in another cohort",
     NULL,
     {SMOKE(true, 42, 0), CRASH("friendly_gp")},
     INTERNAL_TEST,
     true,
     "no_crashes",
     0,
     GATE_PASS,
     NULL,
     PASSES},
    /* the gate's own stage, not the stage the rollout is at (pending at internal_test here) */
    {"crashes: friendly_gp's gate ignores internal_test",
     crashes_in_friendly_gp,
     {CRASH("internal_test")},
     FRIENDLY_GP,
     true,
     "no_crashes_gp",
     0,
     GATE_PASS,
     "0 crash(es) reported in friendly_gp",
     ANY},
    {"crashes: friendly_gp's gate sees friendly_gp",
     crashes_in_friendly_gp,
     {CRASH("friendly_gp")},
     FRIENDLY_GP,
     true,
     "no_crashes_gp",
     0,
     GATE_FAIL,
     NULL,
     ANY},

    /* no_open_incidents, max_severity 2 */
    {"open: none", NULL, {{0}}, FRIENDLY_GP, false, "no_open_sev1_2", 0, GATE_PASS, NULL, ANY},
    {"open: Sev 2",
     NULL,
     {OPEN("INC-2", 2, 0)},
     FRIENDLY_GP,
     false,
     "no_open_sev1_2",
     0,
     GATE_FAIL,
     "incident INC-2 (Sev 2) is open",
     ANY},
    {"open: Sev 3",
     NULL,
     {OPEN("INC-3", 3, 0)},
     FRIENDLY_GP,
     false,
     "no_open_sev1_2",
     0,
     GATE_PASS,
     NULL,
     ANY},
    {"open: Sev 1",
     NULL,
     {OPEN("INC-1", 1, 0)},
     FRIENDLY_GP,
     false,
     "no_open_sev1_2",
     0,
     GATE_FAIL,
     NULL,
     ANY},
    {"open: Sev 1 resolved",
     NULL,
     {OPEN("INC-1", 1, 0), RESOLVE("INC-1", MIN_MS)},
     FRIENDLY_GP,
     false,
     "no_open_sev1_2",
     MIN_MS,
     GATE_PASS,
     NULL,
     ANY},
    {"open: Sev 2 resolved, Sev 2 open",
     NULL,
     {OPEN("INC-A", 2, 0), OPEN("INC-B", 2, 0), RESOLVE("INC-A", MIN_MS)},
     FRIENDLY_GP,
     false,
     "no_open_sev1_2",
     MIN_MS,
     GATE_FAIL,
     "INC-B",
     ANY},

    /* no_incidents_within 48 h, max_severity 1: opened at T0 + 1 h */
    {"window: Sev 1, 1 ms before it clears",
     NULL,
     {OPEN("INC-1", 1, HOUR_MS)},
     BETA,
     true,
     "no_sev1_48h",
     HOUR_MS + 48 * HOUR_MS - 1,
     GATE_FAIL,
     "incident INC-1 (Sev 1)",
     ANY},
    {"window: Sev 1, exactly when it clears",
     NULL,
     {OPEN("INC-1", 1, HOUR_MS)},
     BETA,
     true,
     "no_sev1_48h",
     HOUR_MS + 48 * HOUR_MS,
     GATE_PASS,
     NULL,
     ANY},
    {"window: Sev 1 resolved still counts",
     NULL,
     {OPEN("INC-1", 1, HOUR_MS), RESOLVE("INC-1", 2 * HOUR_MS)},
     BETA,
     true,
     "no_sev1_48h",
     3 * HOUR_MS,
     GATE_FAIL,
     NULL,
     ANY},
    {"window: Sev 2 does not count",
     NULL,
     {OPEN("INC-2", 2, HOUR_MS)},
     BETA,
     true,
     "no_sev1_48h",
     2 * HOUR_MS,
     GATE_PASS,
     NULL,
     ANY},

    /* positive_feedback from friendly_gp, min_count 1 */
    {"positive: none",
     NULL,
     {{0}},
     BETA,
     false,
     "positive_feedback",
     0,
     GATE_FAIL,
     "0 positive, 0 negative from friendly_gp",
     ANY},
    {"positive: 1",
     NULL,
     {POS("friendly_gp")},
     BETA,
     false,
     "positive_feedback",
     0,
     GATE_PASS,
     "1 positive, 0 negative from friendly_gp",
     ANY},
    {"positive: 1 from another cohort",
     NULL,
     {POS("beta")},
     BETA,
     false,
     "positive_feedback",
     0,
     GATE_FAIL,
     NULL,
     ANY},
    {"positive: only negative",
     NULL,
     {NEG("friendly_gp")},
     BETA,
     false,
     "positive_feedback",
     0,
     GATE_FAIL,
     NULL,
     ANY},
    {"positive: 4/1 = 0.8 is not above 0.8",
     ratio_0_8,
     {POS("friendly_gp"), POS("friendly_gp"), POS("friendly_gp"), POS("friendly_gp"),
      NEG("friendly_gp")},
     BETA,
     false,
     "positive_feedback",
     0,
     GATE_FAIL,
     "4 positive, 1 negative",
     ANY},
    {"positive: 5/1 is above 0.8",
     ratio_0_8,
     {POS("friendly_gp"), POS("friendly_gp"), POS("friendly_gp"), POS("friendly_gp"),
      POS("friendly_gp"), NEG("friendly_gp")},
     BETA,
     false,
     "positive_feedback",
     0,
     GATE_PASS,
     NULL,
     ANY},

    /* no_negative_feedback in friendly_gp */
    {"negative: none",
     NULL,
     {POS("friendly_gp")},
     FRIENDLY_GP,
     true,
     "no_negative_feedback",
     0,
     GATE_PASS,
     NULL,
     PASSES},
    {"negative: 1",
     NULL,
     {NEG("friendly_gp")},
     FRIENDLY_GP,
     true,
     "no_negative_feedback",
     0,
     GATE_FAIL,
     "1 negative feedback from friendly_gp",
     FAILS},
    {"negative: 1 in another cohort",
     NULL,
     {NEG("internal_test")},
     FRIENDLY_GP,
     true,
     "no_negative_feedback",
     0,
     GATE_PASS,
     NULL,
     PASSES},

    /* approvals for ga: each role is its own criterion */
    {"approval: none",
     NULL,
     {{0}},
     GA,
     false,
     "product_owner_approval",
     0,
     GATE_FAIL,
     "waiting for product_owner approval",
     FAILS},
    {"approval: product owner",
     NULL,
     {APPROVE(APPROVAL_PRODUCT_OWNER)},
     GA,
     false,
     "product_owner_approval",
     0,
     GATE_PASS,
     "product_owner approved by someone",
     FAILS},
    {"approval: support",
     NULL,
     {APPROVE(APPROVAL_SUPPORT)},
     GA,
     false,
     "support_ready",
     0,
     GATE_PASS,
     NULL,
     FAILS},
    {"approval: docs",
     NULL,
     {APPROVE(APPROVAL_DOCS)},
     GA,
     false,
     "docs_complete",
     0,
     GATE_PASS,
     NULL,
     FAILS},
    {"approval: support is not docs",
     NULL,
     {APPROVE(APPROVAL_SUPPORT)},
     GA,
     false,
     "docs_complete",
     0,
     GATE_FAIL,
     NULL,
     FAILS},
    {"approval: two of three",
     NULL,
     {APPROVE(APPROVAL_PRODUCT_OWNER), APPROVE(APPROVAL_SUPPORT)},
     GA,
     false,
     "docs_complete",
     0,
     GATE_FAIL,
     NULL,
     FAILS},

    /* metric criteria are kept but never pass until the metric engine evaluates them */
    {"metric: not evaluated",
     metric_exit,
     {SMOKE(true, 42, 0)},
     INTERNAL_TEST,
     true,
     "error_rate",
     0,
     GATE_NOT_EVALUATED,
     "not measured yet",
     FAILS},
    {"metric: the others pass",
     metric_exit,
     {SMOKE(true, 42, 0)},
     INTERNAL_TEST,
     true,
     "smoke_passed",
     0,
     GATE_PASS,
     NULL,
     FAILS},
};

static void test_gate_table(void **state) {
  static const char *const results[] = {"pass", "fail", "not_evaluated"};
  (void)state;
  for (size_t k = 0; k < sizeof gate_cases / sizeof gate_cases[0]; k++) {
    const struct gate_case *c = &gate_cases[k];
    struct t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    fixture_plan(&t->plan);
    if (c->plan_mod)
      c->plan_mod(&t->plan);
    flags_init(&t->global, &t->plan);
    request(t, T0);
    for (size_t i = 0; i < 8 && c->events[i].type != EVENT_ROLLOUT_REQUESTED; i++) {
      struct event e = c->events[i];
      snprintf(e.id, sizeof e.id, "g%zu", i);
      snprintf(e.rollout, sizeof e.rollout, RID);
      e.time_ms += T0;
      if (step(t, &e) != CANARY_OK)
        fail_msg("%s: event %zu rejected: %s", c->name, i, t->why);
    }
    struct gate_check checks[PLAN_MAX_CRITERIA];
    int n = rollout_gate(&t->r, &t->plan, c->stage, c->exit, T0 + c->at, checks, PLAN_MAX_CRITERIA);
    const struct gate_check *found = NULL;
    bool all = true;
    for (int i = 0; i < n; i++) {
      all = all && checks[i].result == GATE_PASS;
      if (strcmp(checks[i].criterion->name, c->criterion) == 0)
        found = &checks[i];
    }
    if (!found)
      fail_msg("%s: no criterion %s", c->name, c->criterion);
    if (found->result != c->want)
      fail_msg("%s: %s is %s, want %s (%s)", c->name, c->criterion, results[found->result],
               results[c->want], found->detail);
    if (c->detail && !strstr(found->detail, c->detail))
      fail_msg("%s: detail '%s' lacks '%s'", c->name, found->detail, c->detail);
    if (c->gate != ANY && all != (c->gate == PASSES))
      fail_msg("%s: the whole gate %s", c->name, all ? "passes" : "fails");
    effects_free(&t->fx);
    free(t);
  }
}

/* All three approvals complete the rollout; two hold it at ga's entry. */
static void test_ga_needs_all_three_approvals(void **state) {
  struct t *t = *state;
  to_beta(t);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_PRODUCT_OWNER);
  approve(t, S2 + 2 * HOUR_MS, APPROVAL_SUPPORT);
  tick(t, S2 + 48 * HOUR_MS);
  assert_state(t, ROLLOUT_PENDING, GA);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_PENDING, "entry_gate");
  assert_contains(d->reason, "docs_complete (waiting for docs approval)");
  assert_true(exposure(t) == 25); /* beta's share while ga waits */
  approve(t, S2 + 50 * HOUR_MS, APPROVAL_DOCS);
  assert_state(t, ROLLOUT_COMPLETED, GA);
  d = only_decision(t);
  assert_decision(d, DECISION_COMPLETE, ROLLOUT_COMPLETED, "entry_gate");
  assert_int_equal(d->time_ms, S2 + 50 * HOUR_MS);
  assert_string_equal(d->from_stage, "beta");
  assert_string_equal(d->to_stage, "ga");
  assert_evidence_num(d, "exposure_percent", 100);
  assert_true(last_traffic(t)->exposure_percent == 100);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
}

/* A metric criterion in an exit gate holds the stage at its minimum and says why. */
static void test_metric_criterion_blocks_the_stage(void **state) {
  struct t *t = *state;
  metric_exit(&t->plan);
  start(t);
  smoke(t, S0 + 10 * MIN_MS, true, 42, 0);
  tick(t, S0 + 1 * HOUR_MS);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_RUNNING, "exit_gate");
  assert_contains(d->reason, "error_rate");
  assert_contains(d->reason, "not measured yet");
  assert_evidence_str(d, "error_rate", "not_evaluated");
  assert_evidence_str(d, "smoke_passed", "pass");
  /* ... up to the maximum, where a gate that failed would halt; one never measured does not
   * (no data halts nothing): the rollout holds in the stage and says so, once. */
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S0 + 2 * HOUR_MS);
  tick(t, S0 + 2 * HOUR_MS);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_RUNNING, "stage_max_duration");
  assert_contains(d->reason, "not yet proven");
  assert_evidence_str(d, "error_rate", "not_evaluated");
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
  tick(t, S0 + 5 * HOUR_MS);
  assert_int_equal(t->fx.n, 0);
}

/* ---- deadlines ----------------------------------------------------------------------------- */

/* The minimum arrives with no event: a tick 1 ms early does nothing, at the minimum it advances. */
static void test_min_reached_by_tick(void **state) {
  struct t *t = *state;
  start(t);
  smoke(t, S0 + 10 * MIN_MS, true, 42, 0);
  assert_int_equal(t->fx.n, 0); /* the exit gate passes, but not before the minimum */
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S0 + 1 * HOUR_MS);

  tick(t, S0 + 1 * HOUR_MS - 1);
  assert_int_equal(t->fx.n, 0);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);

  tick(t, S0 + 1 * HOUR_MS);
  assert_state(t, ROLLOUT_RUNNING, FRIENDLY_GP);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_ADVANCE, ROLLOUT_RUNNING, "exit_gate");
  assert_int_equal(d->time_ms, S0 + 1 * HOUR_MS);
  assert_string_equal(d->from_stage, "internal_test");
  assert_string_equal(d->to_stage, "friendly_gp");
  assert_evidence_str(d, "trigger", "deadline");
  assert_evidence_str(d, "smoke_passed", "pass");
  assert_evidence_str(d, "internal_test_passed", "pass");
  assert_evidence_num(d, "exposure_percent", 5);
  /* the decision and friendly_gp's checklist item ("Notify pilot partners") */
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 2);
  assert_int_equal(n_notes(t), 2);
  assert_true(last_traffic(t)->exposure_percent == 5);
  assert_int_equal(t->r.stage_started_ms, S1);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S1 + 24 * HOUR_MS);
}

/* An exit gate unmet at the minimum: one hold; the event that meets it advances at its time. */
static void test_exit_unmet_at_min_holds_once(void **state) {
  struct t *t = *state;
  start(t);
  tick(t, S0 + 1 * HOUR_MS);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_RUNNING, "exit_gate");
  assert_int_equal(d->time_ms, S0 + 1 * HOUR_MS);
  assert_contains(d->reason, "smoke_passed (waiting for smoke.completed)");
  assert_evidence_str(d, "no_crashes", "pass");
  assert_evidence_str(d, "smoke_passed", "fail");
  assert_int_equal(n_notes(t), 0);
  assert_int_equal(n_traffic(t), 0);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S0 + 2 * HOUR_MS);

  tick(t, S0 + 80 * MIN_MS);
  assert_int_equal(t->fx.n, 0);
  approve(t, S0 + 85 * MIN_MS, APPROVAL_DOCS); /* an event that changes nothing here */
  assert_int_equal(t->fx.n, 0);
  smoke(t, S0 + 90 * MIN_MS, true, 41, 1); /* still failing */
  assert_int_equal(t->fx.n, 0);

  smoke(t, S0 + 100 * MIN_MS, true, 42, 0);
  assert_state(t, ROLLOUT_RUNNING, FRIENDLY_GP);
  d = only_decision(t);
  assert_decision(d, DECISION_ADVANCE, ROLLOUT_RUNNING, "exit_gate");
  assert_int_equal(d->time_ms, S0 + 100 * MIN_MS);
  assert_int_equal(t->r.stage_started_ms, S0 + 100 * MIN_MS);
}

/* The maximum passes with the exit gate unmet: halt, exactly at started + max. */
static void test_max_passed_halts(void **state) {
  struct t *t = *state;
  start(t);
  crash(t, S0 + 5 * MIN_MS, "internal_test");
  smoke(t, S0 + 6 * MIN_MS, true, 42, 0);
  tick(t, S0 + 1 * HOUR_MS);
  assert_decision(only_decision(t), DECISION_HOLD, ROLLOUT_RUNNING, "exit_gate");

  tick(t, S0 + 2 * HOUR_MS - 1);
  assert_int_equal(t->fx.n, 0);
  tick(t, S0 + 2 * HOUR_MS);
  assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HALT, ROLLOUT_PAUSED, "stage_max_duration");
  assert_int_equal(d->time_ms, S0 + 2 * HOUR_MS);
  assert_contains(d->reason, "no_crashes (1 crash(es) reported in internal_test)");
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
  assert_int_equal(n_notes(t), 1);
  assert_int_equal(t->fx.items[1].u.notification.severity, NOTIFY_SEV_WARNING);
  /* paused holds the share it had: no expansion, no retraction */
  assert_true(exposure(t) == 0.5);
  assert_int_equal(n_traffic(t), 0);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
  tick(t, S0 + 10 * HOUR_MS);
  assert_int_equal(t->fx.n, 0);
}

/* Exit passes but the next entry does not: pending at the next stage, previous share kept. */
static void test_exit_pass_entry_fail_holds_pending(void **state) {
  struct t *t = *state;
  start(t);
  incident(t, S0 + 5 * MIN_MS, "INC-7", 2, INCIDENT_BUG);
  smoke(t, S0 + 6 * MIN_MS, true, 42, 0);
  tick(t, S0 + 1 * HOUR_MS);
  assert_state(t, ROLLOUT_PENDING, FRIENDLY_GP);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_PENDING, "entry_gate");
  assert_string_equal(d->from_stage, "internal_test");
  assert_string_equal(d->to_stage, "friendly_gp");
  assert_contains(d->reason, "no_open_sev1_2 (incident INC-7 (Sev 2) is open)");
  assert_evidence_str(d, "internal_test_passed", "pass");
  assert_evidence_str(d, "no_open_sev1_2", "fail");
  assert_true(exposure(t) == 0.5);
  assert_int_equal(n_traffic(t), 0);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);

  tick(t, S0 + 2 * HOUR_MS); /* internal_test's maximum no longer applies */
  assert_int_equal(t->fx.n, 0);
  resolve(t, S0 + 3 * HOUR_MS, "INC-7");
  assert_state(t, ROLLOUT_RUNNING, FRIENDLY_GP);
  d = only_decision(t);
  assert_decision(d, DECISION_ADVANCE, ROLLOUT_RUNNING, "entry_gate");
  assert_int_equal(d->time_ms, S0 + 3 * HOUR_MS);
  assert_true(last_traffic(t)->exposure_percent == 5);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S0 + 27 * HOUR_MS);
}

/* The beta exit "no Sev 1 in 48 h" clears exactly 48 h after the incident opened. */
static void test_sev1_window_clears_at_48h(void **state) {
  struct t *t = *state;
  to_beta(t);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_PRODUCT_OWNER);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_SUPPORT);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_DOCS);
  const int64_t opened = S2 + 10 * HOUR_MS;
  incident(t, opened, "INC-1", 1, INCIDENT_BUG);
  assert_state(t, ROLLOUT_RUNNING, BETA); /* a Sev 1 bug blocks the gate; it is no halt rule */
  resolve(t, opened + 2 * HOUR_MS, "INC-1");
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S2 + 48 * HOUR_MS);

  tick(t, S2 + 48 * HOUR_MS);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_RUNNING, "exit_gate");
  assert_contains(d->reason, "no_sev1_48h");
  /* the incident ages out before the maximum (S2 + 72 h) */
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), opened + 48 * HOUR_MS);

  tick(t, opened + 48 * HOUR_MS - 1);
  assert_int_equal(t->fx.n, 0);
  assert_state(t, ROLLOUT_RUNNING, BETA);

  tick(t, opened + 48 * HOUR_MS);
  assert_state(t, ROLLOUT_COMPLETED, GA);
  d = only_decision(t);
  assert_decision(d, DECISION_COMPLETE, ROLLOUT_COMPLETED, "exit_gate");
  assert_int_equal(d->time_ms, opened + 48 * HOUR_MS);
  assert_evidence_str(d, "no_sev1_48h", "pass");
  assert_true(exposure(t) == 100);
}

/*
 * The window is about time, not stages: a Sev 1 opened during friendly_gp still blocks beta's
 * exit until it ages out, and makes a deadline; a Sev 2 does not count and makes none.
 */
static void test_window_deadline_counts_only_matching_incidents(void **state) {
  struct t *t = *state;
  to_friendly_gp(t);
  incident(t, S1 + 1 * HOUR_MS, "INC-2", 2, INCIDENT_BUG);
  resolve(t, S1 + 2 * HOUR_MS, "INC-2");
  feedback(t, S1 + 3 * HOUR_MS, "friendly_gp", SENTIMENT_POSITIVE);
  tick(t, S2);
  assert_state(t, ROLLOUT_RUNNING, BETA);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S2 + 48 * HOUR_MS);

  struct t *u = calloc(1, sizeof *u);
  assert_non_null(u);
  fixture_plan(&u->plan);
  flags_init(&u->global, &u->plan);
  to_friendly_gp(u);
  incident(u, S1 + 1 * HOUR_MS, "INC-1", 1, INCIDENT_BUG);
  resolve(u, S1 + 2 * HOUR_MS, "INC-1");
  feedback(u, S1 + 3 * HOUR_MS, "friendly_gp", SENTIMENT_POSITIVE);
  tick(u, S2);
  assert_state(u, ROLLOUT_RUNNING, BETA);
  /* it ages out (S1 + 49 h) before beta's minimum: a deadline that decides nothing */
  assert_int_equal(rollout_next_deadline(&u->r, &u->plan), S1 + 49 * HOUR_MS);
  tick(u, S1 + 49 * HOUR_MS);
  assert_int_equal(u->fx.n, 0);
  assert_int_equal(rollout_next_deadline(&u->r, &u->plan), S2 + 48 * HOUR_MS);
  effects_free(&u->fx);
  free(u);
}

static void test_no_deadline_when_paused_or_ended(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + 1 * MIN_MS, COMMAND_PAUSE, false);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
  tick(t, S0 + 5 * HOUR_MS);
  assert_int_equal(t->fx.n, 0);
  command(t, S0 + 5 * HOUR_MS, COMMAND_ROLLBACK, false);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
}

/* Time never goes back: a late event is decided at the rollout's clock. */
static void test_clock_never_goes_back(void **state) {
  struct t *t = *state;
  start(t);
  smoke(t, S0 + 10 * MIN_MS, true, 42, 0);
  tick(t, S1);
  struct event e = ev(t, EVENT_HEALTH_CHECKED, S0 + 20 * MIN_MS); /* arrives late */
  e.ok = true;
  apply(t, e);
  assert_int_equal(t->r.clock_ms, S1);
  command(t, S0, COMMAND_PAUSE, false);
  assert_int_equal(only_decision(t)->time_ms, S1);
}

/* ---- commands in every state --------------------------------------------------------------- */

struct command_case {
  enum rollout_state from;
  enum command_action action;
  bool force;
  bool accepted;
  enum decision_action decided; /* hold when rejected */
  enum rollout_state state;     /* after */
  int stage;                    /* after */
  double exposure;              /* after */
  int releases;                 /* #releases messages */
  const char *reason;           /* a substring of the decision's reason */
};

#define PAUSE COMMAND_PAUSE, false
#define RESUME COMMAND_RESUME, false
#define PROMOTE COMMAND_PROMOTE, false
#define FORCE COMMAND_PROMOTE, true
#define ROLLBACK COMMAND_ROLLBACK, false
#define OK true
#define NO false

static const struct command_case command_cases[] = {
    {ROLLOUT_PENDING, PAUSE, OK, DECISION_PAUSE, ROLLOUT_PAUSED, 0, 0, 1, "paused by alice: test"},
    {ROLLOUT_PENDING, RESUME, NO, DECISION_HOLD, ROLLOUT_PENDING, 0, 0, 0,
     "resume rejected: rollout is pending; only a paused rollout resumes"},
    {ROLLOUT_PENDING, PROMOTE, OK, DECISION_PROMOTE, ROLLOUT_RUNNING, 0, 0.5, 1,
     "bypassed: ci_passed"},
    {ROLLOUT_PENDING, FORCE, OK, DECISION_PROMOTE, ROLLOUT_COMPLETED, 3, 100, 2, "--force"},
    {ROLLOUT_PENDING, ROLLBACK, OK, DECISION_ROLLBACK, ROLLOUT_ROLLED_BACK, 0, 0, 2,
     "rolled back by alice"},

    {ROLLOUT_RUNNING, PAUSE, OK, DECISION_PAUSE, ROLLOUT_PAUSED, 0, 0.5, 1, "paused by alice"},
    {ROLLOUT_RUNNING, RESUME, NO, DECISION_HOLD, ROLLOUT_RUNNING, 0, 0.5, 0,
     "only a paused rollout resumes"},
    {ROLLOUT_RUNNING, PROMOTE, OK, DECISION_PROMOTE, ROLLOUT_RUNNING, 1, 5, 2,
     "bypassed: smoke_passed"},
    {ROLLOUT_RUNNING, FORCE, OK, DECISION_PROMOTE, ROLLOUT_COMPLETED, 3, 100, 2, "--force"},
    {ROLLOUT_RUNNING, ROLLBACK, OK, DECISION_ROLLBACK, ROLLOUT_ROLLED_BACK, 0, 0, 2,
     "rolled back by alice"},

    {ROLLOUT_PAUSED, PAUSE, NO, DECISION_HOLD, ROLLOUT_PAUSED, 0, 0.5, 0, "already paused"},
    {ROLLOUT_PAUSED, RESUME, OK, DECISION_RESUME, ROLLOUT_RUNNING, 0, 0.5, 1, "resumed by alice"},
    {ROLLOUT_PAUSED, PROMOTE, NO, DECISION_HOLD, ROLLOUT_PAUSED, 0, 0.5, 0,
     "resume it first, or promote --force"},
    {ROLLOUT_PAUSED, FORCE, OK, DECISION_PROMOTE, ROLLOUT_COMPLETED, 3, 100, 2, "--force"},
    {ROLLOUT_PAUSED, ROLLBACK, OK, DECISION_ROLLBACK, ROLLOUT_ROLLED_BACK, 0, 0, 2,
     "rolled back by alice"},

    {ROLLOUT_ROLLED_BACK, PAUSE, NO, DECISION_HOLD, ROLLOUT_ROLLED_BACK, 0, 0, 0, "it has ended"},
    {ROLLOUT_ROLLED_BACK, RESUME, NO, DECISION_HOLD, ROLLOUT_ROLLED_BACK, 0, 0, 0,
     "only a paused rollout resumes"},
    {ROLLOUT_ROLLED_BACK, PROMOTE, NO, DECISION_HOLD, ROLLOUT_ROLLED_BACK, 0, 0, 0, "it has ended"},
    {ROLLOUT_ROLLED_BACK, FORCE, NO, DECISION_HOLD, ROLLOUT_ROLLED_BACK, 0, 0, 0,
     "promote --force rejected: rollout is rolled_back"},
    {ROLLOUT_ROLLED_BACK, ROLLBACK, NO, DECISION_HOLD, ROLLOUT_ROLLED_BACK, 0, 0, 0,
     "already rolled back"},

    {ROLLOUT_COMPLETED, PAUSE, NO, DECISION_HOLD, ROLLOUT_COMPLETED, 3, 100, 0, "it has ended"},
    {ROLLOUT_COMPLETED, RESUME, NO, DECISION_HOLD, ROLLOUT_COMPLETED, 3, 100, 0,
     "only a paused rollout resumes"},
    {ROLLOUT_COMPLETED, PROMOTE, NO, DECISION_HOLD, ROLLOUT_COMPLETED, 3, 100, 0, "it has ended"},
    {ROLLOUT_COMPLETED, FORCE, NO, DECISION_HOLD, ROLLOUT_COMPLETED, 3, 100, 0, "it has ended"},
    {ROLLOUT_COMPLETED, ROLLBACK, OK, DECISION_ROLLBACK, ROLLOUT_ROLLED_BACK, 3, 0, 2,
     "rolled back by alice"},
};

/* Bring a fresh rollout into state; commands then come at S0 + 10 min, before any deadline. */
static void enter(struct t *t, enum rollout_state st) {
  if (st == ROLLOUT_PENDING) {
    request(t, T0);
    return;
  }
  start(t);
  if (st == ROLLOUT_PAUSED)
    command(t, S0 + 5 * MIN_MS, COMMAND_PAUSE, false);
  else if (st == ROLLOUT_ROLLED_BACK)
    command(t, S0 + 5 * MIN_MS, COMMAND_ROLLBACK, false);
  else if (st == ROLLOUT_COMPLETED)
    command(t, S0 + 5 * MIN_MS, COMMAND_PROMOTE, true);
  assert_int_equal(t->r.state, st);
}

static void test_command_table(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof command_cases / sizeof command_cases[0]; k++) {
    const struct command_case *c = &command_cases[k];
    char name[96];
    snprintf(name, sizeof name, "%s on %s",
             c->force ? "promote --force" : command_action_name(c->action),
             rollout_state_name(c->from));
    struct t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    fixture_plan(&t->plan);
    flags_init(&t->global, &t->plan);
    enter(t, c->from);
    struct rollout before = t->r;
    double exposure_before = exposure(t);

    command(t, S0 + 10 * MIN_MS, c->action, c->force);

    const struct decision *d = only_decision(t);
    if (d->action != c->decided || t->r.state != c->state || t->r.stage != c->stage ||
        exposure(t) != c->exposure)
      fail_msg("%s: decided %s, %s at stage %d, exposure %g; want %s, %s at %d, %g", name,
               decision_action_name(d->action), rollout_state_name(t->r.state), t->r.stage,
               exposure(t), decision_action_name(c->decided), rollout_state_name(c->state),
               c->stage, c->exposure);
    if (!strstr(d->reason, c->reason))
      fail_msg("%s: reason '%s' lacks '%s'", name, d->reason, c->reason);
    assert_string_equal(d->actor, "alice");
    assert_int_equal(d->time_ms, S0 + 10 * MIN_MS);
    assert_int_equal(d->state, t->r.state);
    /* nobody was paged: no all-clear for on-call either */
    if (n_notes_on(t, NOTIFY_RELEASES) != (size_t)c->releases || n_notes(t) != (size_t)c->releases)
      fail_msg("%s: %zu notifications, %zu on #releases; want %d on #releases", name, n_notes(t),
               n_notes_on(t, NOTIFY_RELEASES), c->releases);
    assert_int_equal(n_traffic(t), exposure_before != c->exposure);

    if (c->accepted) {
      assert_string_equal(d->rule, c->force ? "manual_force" : "manual");
      assert_null(decision_evidence(d, "accepted"));
    } else {
      /* Rejected: a hold that says so, and nothing else about the rollout changes. */
      assert_string_equal(d->rule, "command_rejected");
      const struct evidence_item *acc = decision_evidence(d, "accepted");
      assert_non_null(acc);
      assert_int_equal(acc->kind, EVIDENCE_BOOL);
      assert_false(acc->b);
      assert_evidence_str(d, "command", command_action_name(c->action));
      assert_int_equal(t->r.seq, before.seq + 1);
      struct rollout after = t->r;
      after.seq = before.seq;
      after.clock_ms = before.clock_ms;
      if (memcmp(&before, &after, sizeof before) != 0)
        fail_msg("%s: a rejected command changed the rollout", name);
    }
    effects_free(&t->fx);
    free(t);
  }
}

/* Resume returns to the state the rollout was paused from. */
static void test_resume_returns_to_pending(void **state) {
  struct t *t = *state;
  request(t, T0);
  command(t, T0 + 1 * MIN_MS, COMMAND_PAUSE, false);
  assert_int_equal(t->r.resume_to, ROLLOUT_PENDING);
  fact(t, EVENT_CI_COMPLETED, T0 + 2 * MIN_MS, true);
  fact(t, EVENT_DEPLOY_COMPLETED, T0 + 3 * MIN_MS, true);
  fact(t, EVENT_HEALTH_CHECKED, T0 + 4 * MIN_MS, true);
  assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST); /* paused: no start, however green */
  assert_int_equal(t->fx.n, 0);
  command(t, T0 + 5 * MIN_MS, COMMAND_RESUME, false);
  /* back to pending, where the now-open entry gate starts it in the same step */
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_int_equal(n_decisions(t), 2);
  assert_decision(decision(t, 0), DECISION_RESUME, ROLLOUT_PENDING, "manual");
  assert_decision(decision(t, 1), DECISION_START, ROLLOUT_RUNNING, "entry_gate");
}

/* A stage halted at its maximum gets a fresh maximum on resume; its minimum stays put. */
static void test_resume_gives_a_fresh_max(void **state) {
  struct t *t = *state;
  start(t);
  tick(t, S0 + 1 * HOUR_MS);
  tick(t, S0 + 2 * HOUR_MS);
  assert_decision(only_decision(t), DECISION_HALT, ROLLOUT_PAUSED, "stage_max_duration");
  command(t, S0 + 3 * HOUR_MS, COMMAND_RESUME, false);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_decision(decision(t, 0), DECISION_RESUME, ROLLOUT_RUNNING, "manual");
  /* the minimum is long past and the exit gate still unmet: reported once more, not halted */
  assert_int_equal(n_decisions(t), 2);
  assert_decision(decision(t, 1), DECISION_HOLD, ROLLOUT_RUNNING, "exit_gate");
  assert_int_equal(t->r.stage_max_at_ms, S0 + 5 * HOUR_MS);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), S0 + 5 * HOUR_MS);
  smoke(t, S0 + 4 * HOUR_MS, true, 42, 0);
  assert_decision(only_decision(t), DECISION_ADVANCE, ROLLOUT_RUNNING, "exit_gate");
}

/* Promote from running records what it bypassed, as text and as evidence. */
static void test_promote_lists_bypassed_criteria(void **state) {
  struct t *t = *state;
  start(t);
  crash(t, S0 + 5 * MIN_MS, "internal_test");
  command(t, S0 + 10 * MIN_MS, COMMAND_PROMOTE, false);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_PROMOTE, ROLLOUT_RUNNING, "manual");
  assert_string_equal(d->from_stage, "internal_test");
  assert_string_equal(d->to_stage, "friendly_gp");
  assert_contains(d->reason, "promoted by alice: test; bypassed: ");
  assert_contains(d->reason, "no_crashes (1 crash(es) reported in internal_test)");
  assert_contains(d->reason, "smoke_passed (waiting for smoke.completed)");
  assert_evidence_str(d, "no_crashes", "fail");
  assert_evidence_str(d, "smoke_passed", "fail");
  assert_evidence_num(d, "exposure_percent", 5);
  assert_int_equal(t->r.stage_started_ms, S0 + 10 * MIN_MS);
}

/*
 * Promoting into ga skips ga's entry gate too (the approvals): a release engineer reading the
 * decision must see that, not only the exit gate of beta.
 */
static void test_promote_lists_bypassed_entry_of_next_stage(void **state) {
  struct t *t = *state;
  to_beta(t);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_SUPPORT);
  command(t, S2 + 2 * HOUR_MS, COMMAND_PROMOTE, false);
  assert_state(t, ROLLOUT_COMPLETED, GA);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_PROMOTE, ROLLOUT_COMPLETED, "manual");
  assert_contains(d->reason, "product_owner_approval (waiting for product_owner approval)");
  assert_contains(d->reason, "docs_complete (waiting for docs approval)");
  assert_evidence_str(d, "product_owner_approval", "fail");
  assert_evidence_str(d, "support_ready", "pass");
  assert_evidence_str(d, "docs_complete", "fail");
  assert_evidence_str(d, "no_sev1_48h", "pass");
}

/* A promote with every gate met bypasses nothing and says so by omission. */
static void test_promote_with_gates_met(void **state) {
  struct t *t = *state;
  request(t, T0);
  fact(t, EVENT_CI_COMPLETED, T0 + 1 * MIN_MS, true);
  fact(t, EVENT_DEPLOY_COMPLETED, T0 + 2 * MIN_MS, true);
  command(t, T0 + 3 * MIN_MS, COMMAND_PAUSE, false);
  fact(t, EVENT_HEALTH_CHECKED, T0 + 4 * MIN_MS, true);
  command(t, T0 + 5 * MIN_MS, COMMAND_PROMOTE, true);
  assert_state(t, ROLLOUT_COMPLETED, GA);
  assert_evidence_num(only_decision(t), "exposure_percent", 100);

  struct t *u = calloc(1, sizeof *u);
  assert_non_null(u);
  fixture_plan(&u->plan);
  flags_init(&u->global, &u->plan);
  start(u);
  smoke(u, S0 + 5 * MIN_MS, true, 42, 0);
  command(u, S0 + 10 * MIN_MS, COMMAND_PROMOTE, false); /* before the minimum: allowed */
  const struct decision *d = only_decision(u);
  assert_decision(d, DECISION_PROMOTE, ROLLOUT_RUNNING, "manual");
  /* every exit criterion is met; what is skipped is the rest of internal_test's soak */
  if (strstr(d->reason, "smoke_passed (") || strstr(d->reason, "no_crashes ("))
    fail_msg("nothing of internal_test's exit was bypassed: %s", d->reason);
  assert_contains(d->reason,
                  "bypassed: internal_test_passed (internal_test has not passed its exit gate)");
  assert_evidence_str(d, "smoke_passed", "pass");
  assert_evidence_str(d, "internal_test_passed", "fail");
  effects_free(&u->fx);
  free(u);
}

/*
 * previous_stage_passed is false after a promote: the promoted stage never passed its exit
 * gate. Leaving the promoted stage normally still needs that stage's own exit gate.
 */
static void test_previous_stage_passed_after_promote(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + 10 * MIN_MS, COMMAND_PROMOTE, false);
  assert_state(t, ROLLOUT_RUNNING, FRIENDLY_GP);
  assert_false(t->r.prev_stage_passed);
  struct gate_check checks[PLAN_MAX_CRITERIA];
  int n = rollout_gate(&t->r, &t->plan, FRIENDLY_GP, false, S0 + 10 * MIN_MS, checks,
                       PLAN_MAX_CRITERIA);
  assert_int_equal(n, 2);
  assert_string_equal(checks[0].criterion->name, "internal_test_passed");
  assert_int_equal(checks[0].result, GATE_FAIL);
  assert_string_equal(checks[0].detail, "internal_test has not passed its exit gate");
  /* stages already left count as passed; the first stage has no predecessor */
  n = rollout_gate(&t->r, &t->plan, INTERNAL_TEST, false, S0, checks, PLAN_MAX_CRITERIA);
  assert_int_equal(n, 3);

  const int64_t started = S0 + 10 * MIN_MS;
  feedback(t, started + 1 * HOUR_MS, "friendly_gp", SENTIMENT_POSITIVE);
  feedback(t, started + 2 * HOUR_MS, "friendly_gp", SENTIMENT_NEGATIVE);
  tick(t, started + 24 * HOUR_MS);
  assert_state(t, ROLLOUT_RUNNING, FRIENDLY_GP);
  assert_decision(only_decision(t), DECISION_HOLD, ROLLOUT_RUNNING, "exit_gate");
  tick(t, started + 48 * HOUR_MS);
  assert_decision(only_decision(t), DECISION_HALT, ROLLOUT_PAUSED, "stage_max_duration");
}

/* The same promoted stage with its exit gate met advances normally, and beta sees it passed. */
static void test_normal_advance_out_of_promoted_stage(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + 10 * MIN_MS, COMMAND_PROMOTE, false);
  const int64_t started = S0 + 10 * MIN_MS;
  feedback(t, started + 1 * HOUR_MS, "friendly_gp", SENTIMENT_POSITIVE);
  tick(t, started + 24 * HOUR_MS - 1);
  assert_int_equal(t->fx.n, 0);
  tick(t, started + 24 * HOUR_MS);
  assert_state(t, ROLLOUT_RUNNING, BETA);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_ADVANCE, ROLLOUT_RUNNING, "exit_gate");
  assert_evidence_str(d, "no_negative_feedback", "pass");
  assert_evidence_str(d, "friendly_gp_passed", "pass");
  assert_true(t->r.prev_stage_passed);
}

/* ---- halt rules and incidents -------------------------------------------------------------- */

struct halt_case {
  enum alert_kind kind;
  const char *rule;
  bool pages_oncall; /* severity 1 rules */
};

static const struct halt_case halt_cases[] = {
    {ALERT_SECURITY, "security_alert", true},
    {ALERT_COMPLIANCE, "compliance_violation", true},
    {ALERT_DATA_INCONSISTENCY, "data_inconsistency", true},
    {ALERT_DB_CONNECTION_EXHAUSTION, "db_connection_exhaustion", false},
};

static void test_alert_halts(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof halt_cases / sizeof halt_cases[0]; k++) {
    const struct halt_case *c = &halt_cases[k];
    struct t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    fixture_plan(&t->plan);
    flags_init(&t->global, &t->plan);
    start(t);
    alert(t, S0 + 10 * MIN_MS, c->kind);
    assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST);
    assert_int_equal(t->r.resume_to, ROLLOUT_RUNNING);
    const struct decision *d = only_decision(t);
    assert_decision(d, DECISION_HALT, ROLLOUT_PAUSED, c->rule);
    assert_int_equal(d->time_ms, S0 + 10 * MIN_MS);
    assert_contains(d->reason, c->rule);
    assert_contains(d->reason, "seen by the test");
    assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
    assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), c->pages_oncall);
    assert_int_equal(n_notes(t), 1 + c->pages_oncall);
    assert_int_equal(n_traffic(t), 0); /* halted: no expansion, the current share stays */
    assert_true(exposure(t) == 0.5);
    /* a second alert while paused is recorded, not a second state change */
    alert(t, S0 + 11 * MIN_MS, c->kind);
    assert_contains(only_decision(t)->reason, "(already paused)");
    assert_int_equal(t->r.resume_to, ROLLOUT_RUNNING);
    effects_free(&t->fx);
    free(t);
  }
}

struct incident_case {
  int severity;
  enum incident_kind kind;
  const char *halt_rule; /* NULL: no halt */
  int releases, oncall, status_page, executive;
};

static const struct incident_case incident_cases[] = {
    {1, INCIDENT_BUG, NULL, 0, 1, 1, 1},
    {2, INCIDENT_BUG, NULL, 0, 0, 1, 0},
    {3, INCIDENT_BUG, NULL, 0, 0, 0, 0},
    {4, INCIDENT_BUG, NULL, 0, 0, 0, 0},
    {3, INCIDENT_SECURITY, "security_alert", 1, 1, 0, 0},
    {1, INCIDENT_SECURITY, "security_alert", 1, 2, 1, 1},
    {2, INCIDENT_COMPLIANCE, "compliance_violation", 1, 1, 1, 0},
    {4, INCIDENT_DATA_INCONSISTENCY, "data_inconsistency", 1, 1, 0, 0},
};

static void test_incident_table(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof incident_cases / sizeof incident_cases[0]; k++) {
    const struct incident_case *c = &incident_cases[k];
    struct t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    fixture_plan(&t->plan);
    flags_init(&t->global, &t->plan);
    start(t);
    incident(t, S0 + 10 * MIN_MS, "INC-9", c->severity, c->kind);
    if (n_notes_on(t, NOTIFY_RELEASES) != (size_t)c->releases ||
        n_notes_on(t, NOTIFY_ONCALL) != (size_t)c->oncall ||
        n_notes_on(t, NOTIFY_STATUS_PAGE) != (size_t)c->status_page ||
        n_notes_on(t, NOTIFY_EXECUTIVE) != (size_t)c->executive)
      fail_msg("Sev %d %s: releases %zu oncall %zu status %zu exec %zu", c->severity,
               incident_kind_name(c->kind), n_notes_on(t, NOTIFY_RELEASES),
               n_notes_on(t, NOTIFY_ONCALL), n_notes_on(t, NOTIFY_STATUS_PAGE),
               n_notes_on(t, NOTIFY_EXECUTIVE));
    if (c->halt_rule) {
      assert_decision(only_decision(t), DECISION_HALT, ROLLOUT_PAUSED, c->halt_rule);
      assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST);
    } else {
      assert_int_equal(n_decisions(t), 0);
      assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
    }
    for (size_t i = 0; i < t->fx.n; i++)
      if (t->fx.items[i].kind == EFFECT_NOTIFICATION &&
          t->fx.items[i].u.notification.channel == NOTIFY_EXECUTIVE)
        assert_string_equal(t->fx.items[i].u.notification.target, "exec@example.com");
    effects_free(&t->fx);
    free(t);
  }
}

/* The notification on channel ch of the last step with severity sev, or NULL. */
static const struct notification *note_on(const struct t *t, enum notify_channel ch,
                                          enum notify_severity sev) {
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_NOTIFICATION && t->fx.items[i].u.notification.channel == ch &&
        t->fx.items[i].u.notification.severity == sev)
      return &t->fx.items[i].u.notification;
  return NULL;
}

/* The status page's all-clear (severity info) comes with the last open Sev 1-2 incident's
 * resolution, not before, and not for a Sev 3 (which never opened it). */
static void test_status_page_all_clear(void **state) {
  struct t *t = *state;
  start(t);
  incident(t, S0 + 1 * MIN_MS, "INC-1", 2, INCIDENT_BUG);
  assert_non_null(note_on(t, NOTIFY_STATUS_PAGE, NOTIFY_SEV_WARNING));
  incident(t, S0 + 2 * MIN_MS, "INC-2", 1, INCIDENT_BUG);
  incident(t, S0 + 3 * MIN_MS, "INC-3", 3, INCIDENT_BUG);
  resolve(t, S0 + 4 * MIN_MS, "INC-1");
  assert_int_equal(n_notes(t), 0);
  resolve(t, S0 + 5 * MIN_MS, "INC-2");
  const struct notification *n = note_on(t, NOTIFY_STATUS_PAGE, NOTIFY_SEV_INFO);
  assert_non_null(n);
  assert_int_equal(n_notes(t), 1);
  assert_contains(n->text, "INC-2");
  resolve(t, S0 + 6 * MIN_MS, "INC-3");
  assert_int_equal(n_notes(t), 0);
}

/* A resume and a rollback give on-call its all-clear (severity info), once per page: a
 * rollout that did not page since its last all-clear gives none. */
static void test_oncall_all_clear(void **state) {
  struct t *t = *state;
  start(t);
  alert(t, S0 + 1 * MIN_MS, ALERT_SECURITY);
  assert_non_null(note_on(t, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL));
  assert_true(t->r.paged);
  command(t, S0 + 2 * MIN_MS, COMMAND_RESUME, false);
  const struct notification *n = note_on(t, NOTIFY_ONCALL, NOTIFY_SEV_INFO);
  assert_non_null(n);
  assert_contains(n->text, "resumed");
  assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), 1);
  assert_false(t->r.paged);
  command(t, S0 + 3 * MIN_MS, COMMAND_PAUSE, false); /* a person's pause pages nobody */
  command(t, S0 + 4 * MIN_MS, COMMAND_RESUME, false);
  assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), 0);
  alert(t, S0 + 5 * MIN_MS, ALERT_SECURITY);
  command(t, S0 + 6 * MIN_MS, COMMAND_ROLLBACK, false);
  n = note_on(t, NOTIFY_ONCALL, NOTIFY_SEV_INFO);
  assert_non_null(n);
  assert_contains(n->text, "rolled back");
  assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), 1);
}

/* Halt rules still fire on a pending rollout, and resume returns it to pending. */
static void test_halt_while_pending(void **state) {
  struct t *t = *state;
  request(t, T0);
  alert(t, T0 + 1 * MIN_MS, ALERT_COMPLIANCE);
  assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST);
  assert_int_equal(t->r.resume_to, ROLLOUT_PENDING);
  command(t, T0 + 2 * MIN_MS, COMMAND_RESUME, false);
  assert_state(t, ROLLOUT_PENDING, INTERNAL_TEST);
}

/* On an ended rollout an alert only notifies. */
static void test_alert_after_rollback_only_notifies(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + 5 * MIN_MS, COMMAND_ROLLBACK, false);
  alert(t, S0 + 10 * MIN_MS, ALERT_SECURITY);
  assert_int_equal(n_decisions(t), 0);
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
  assert_state(t, ROLLOUT_ROLLED_BACK, INTERNAL_TEST);
}

/* The verified rollback (plan rollback.verify_within, the seed's "Rollback within 30 minutes"). */
static const struct decision *only_verify(const struct t *t) {
  const struct decision *d = only_decision(t);
  assert_string_equal(decision_action_name(d->action), "verify");
  return d;
}

static int64_t evidence_int(const struct decision *d, const char *key) {
  const struct evidence_item *it = decision_evidence(d, key);
  assert_non_null(it);
  assert_int_equal(it->kind, EVIDENCE_INT);
  return it->i;
}

/* A green health check within the limit verifies it, with the time it took; a failed one
 * before changes nothing; the deadline is gone once verified. */
static void test_rollback_verified_by_a_green_health_check(void **state) {
  struct t *t = *state;
  t->plan.rollback_verify_ms = 30 * MIN_MS;
  start(t);
  int64_t at = S0 + 5 * MIN_MS;
  command(t, at, COMMAND_ROLLBACK, false);
  assert_int_equal(t->r.rollback_verify, ROLLBACK_VERIFY_WAITING);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), at + 30 * MIN_MS);
  fact(t, EVENT_HEALTH_CHECKED, at + 3 * MIN_MS, false);
  assert_int_equal(n_decisions(t), 0);
  assert_int_equal(t->r.rollback_verify, ROLLBACK_VERIFY_WAITING);
  tick(t, at + 10 * MIN_MS); /* before the limit: nothing */
  assert_int_equal(n_decisions(t), 0);
  fact(t, EVENT_HEALTH_CHECKED, at + 12 * MIN_MS, true);
  const struct decision *d = only_verify(t);
  assert_string_equal(d->rule, "rollback_verified");
  assert_contains(d->reason, "rollback verified");
  assert_contains(d->reason, "12m after the rollback (limit 30m)");
  assert_int_equal(evidence_int(d, "rollback_duration_ms"), 12 * MIN_MS);
  assert_int_equal(evidence_int(d, "limit_ms"), 30 * MIN_MS);
  assert_int_equal(t->r.rollback_verify, ROLLBACK_VERIFY_VERIFIED);
  assert_int_equal(t->r.rollback_verified_ms, at + 12 * MIN_MS);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
  fact(t, EVENT_HEALTH_CHECKED, at + 20 * MIN_MS, true); /* once */
  assert_int_equal(n_decisions(t), 0);
  tick(t, at + 31 * MIN_MS);
  assert_int_equal(n_decisions(t), 0);
}

/* A fresh rollout on the fixture plan with a 30-minute limit, started and rolled back at `at`. */
static void rolled_back_at(struct t *x, int64_t at) {
  fixture_plan(&x->plan);
  flags_init(&x->global, &x->plan);
  x->plan.rollback_verify_ms = 30 * MIN_MS;
  start(x);
  command(x, at, COMMAND_ROLLBACK, false);
}

/* None by the limit: "not verified" at the limit's own time, on-call paged; a green check
 * later changes nothing. A check at the limit itself still verifies. */
static void test_rollback_not_verified_at_the_limit(void **state) {
  struct t *t = *state;
  t->plan.rollback_verify_ms = 30 * MIN_MS;
  start(t);
  int64_t at = S0 + 5 * MIN_MS;
  command(t, at, COMMAND_ROLLBACK, false);
  tick(t, at + 30 * MIN_MS - 1);
  assert_int_equal(n_decisions(t), 0);
  tick(t, at + 45 * MIN_MS); /* late: decided as of the limit */
  const struct decision *d = only_verify(t);
  assert_string_equal(d->rule, "rollback_not_verified");
  assert_contains(d->reason, "within 30m of the rollback");
  assert_int_equal(evidence_int(d, "rollback_duration_ms"), 30 * MIN_MS);
  assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), 1);
  assert_int_equal(t->r.rollback_verify, ROLLBACK_VERIFY_NOT_VERIFIED);
  assert_int_equal(t->r.rollback_verified_ms, at + 30 * MIN_MS);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
  fact(t, EVENT_HEALTH_CHECKED, at + 50 * MIN_MS, true);
  assert_int_equal(n_decisions(t), 0);
  assert_int_equal(t->r.rollback_verify, ROLLBACK_VERIFY_NOT_VERIFIED);

  struct t u = {0};
  rolled_back_at(&u, at);
  fact(&u, EVENT_HEALTH_CHECKED, at + 30 * MIN_MS, true); /* at the limit: in time */
  assert_string_equal(only_verify(&u)->rule, "rollback_verified");
  /* An event after the limit with no tick before it (a replay never does this; a caller may):
   * the limit has passed, so not verified, whatever the check says. */
  struct t v = {0};
  rolled_back_at(&v, at);
  fact(&v, EVENT_HEALTH_CHECKED, at + 31 * MIN_MS, true);
  assert_string_equal(only_verify(&v)->rule, "rollback_not_verified");
  effects_free(&u.fx);
  effects_free(&v.fx);
}

/* Without the key (0) nothing is verified, and nothing waits. */
static void test_rollback_verify_off(void **state) {
  struct t *t = *state;
  t->plan.rollback_verify_ms = 0;
  start(t);
  command(t, S0 + 5 * MIN_MS, COMMAND_ROLLBACK, false);
  assert_int_equal(t->r.rollback_verify, ROLLBACK_VERIFY_NONE);
  assert_int_equal(rollout_next_deadline(&t->r, &t->plan), ROLLOUT_NO_DEADLINE);
  fact(t, EVENT_HEALTH_CHECKED, S0 + 6 * MIN_MS, true);
  assert_int_equal(n_decisions(t), 0);
}

/* After GA a security, compliance or data alert pages on-call with the way back (and tells
 * #releases); the release stays completed, for people to decide. */
static void test_alert_after_ga_pages_oncall(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + 5 * MIN_MS, COMMAND_PROMOTE, true);
  assert_int_equal(t->r.state, ROLLOUT_COMPLETED);
  effects_clear(&t->fx);
  alert(t, S0 + 10 * MIN_MS, ALERT_DATA_INCONSISTENCY);
  assert_int_equal(n_decisions(t), 0);
  assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), 1);
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_NOTIFICATION &&
        t->fx.items[i].u.notification.channel == NOTIFY_ONCALL)
      assert_contains(t->fx.items[i].u.notification.text, "To roll back: canaryctl rollback");
  assert_int_equal(t->r.state, ROLLOUT_COMPLETED);
}

/* ---- circuit breaker ----------------------------------------------------------------------- */

static void test_breaker_trips_on_three_errors(void **state) {
  struct t *t = *state;
  start(t);
  fact(t, EVENT_HEALTH_CHECKED, S0 + 1 * MIN_MS, false);
  assert_int_equal(t->fx.n, 0);
  smoke(t, S0 + 2 * MIN_MS, false, 40, 0);
  assert_int_equal(t->fx.n, 0);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  fact(t, EVENT_DEPLOY_COMPLETED, S0 + 3 * MIN_MS, false);

  assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST);
  assert_true(t->r.breaker_open);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HALT, ROLLOUT_PAUSED, "circuit_breaker");
  assert_contains(d->reason, "3 consecutive errors (last: deployment failed)");
  assert_evidence_num(d, "exposure_percent", 0);
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
  assert_int_equal(n_notes_on(t, NOTIFY_ONCALL), 1);
  const struct traffic_split *ts = last_traffic(t);
  assert_non_null(ts);
  assert_true(ts->exposure_percent == 0);
  assert_true(ts->breaker_open);
  assert_false(ts->cohorts[0].enabled);
  assert_true(exposure(t) == 0);
}

static void test_breaker_counts_crashes_and_failed_smoke_tests(void **state) {
  struct t *t = *state;
  start(t);
  crash(t, S0 + 1 * MIN_MS, "internal_test");
  smoke(t, S0 + 2 * MIN_MS, true, 41, 1); /* ok but a test failed: an error */
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  crash(t, S0 + 3 * MIN_MS, "friendly_gp");
  assert_decision(only_decision(t), DECISION_HALT, ROLLOUT_PAUSED, "circuit_breaker");
}

static void test_breaker_resets_on_success(void **state) {
  struct t *t = *state;
  start(t);
  fact(t, EVENT_HEALTH_CHECKED, S0 + 1 * MIN_MS, false);
  crash(t, S0 + 2 * MIN_MS, "internal_test");
  smoke(t, S0 + 3 * MIN_MS, true, 42, 0); /* success */
  fact(t, EVENT_HEALTH_CHECKED, S0 + 4 * MIN_MS, false);
  fact(t, EVENT_DEPLOY_COMPLETED, S0 + 5 * MIN_MS, false);
  assert_int_equal(t->fx.n, 0);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_false(t->r.breaker_open);
  assert_int_equal(t->r.breaker_errors, 2);
  /* ci.completed is no deploy health signal: it neither resets nor counts */
  fact(t, EVENT_CI_COMPLETED, S0 + 6 * MIN_MS, true);
  assert_int_equal(t->r.breaker_errors, 2);
}

static void test_resume_closes_the_breaker(void **state) {
  struct t *t = *state;
  start(t);
  for (int i = 0; i < 3; i++)
    fact(t, EVENT_HEALTH_CHECKED, S0 + (i + 1) * MIN_MS, false);
  assert_true(t->r.breaker_open);
  command(t, S0 + 10 * MIN_MS, COMMAND_RESUME, false);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_false(t->r.breaker_open);
  assert_int_equal(t->r.breaker_errors, 0);
  assert_decision(only_decision(t), DECISION_RESUME, ROLLOUT_RUNNING, "manual");
  assert_true(last_traffic(t)->exposure_percent == 0.5);
  assert_false(last_traffic(t)->breaker_open);
  /* counting starts over */
  fact(t, EVENT_HEALTH_CHECKED, S0 + 11 * MIN_MS, false);
  fact(t, EVENT_HEALTH_CHECKED, S0 + 12 * MIN_MS, false);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  fact(t, EVENT_HEALTH_CHECKED, S0 + 13 * MIN_MS, false);
  assert_state(t, ROLLOUT_PAUSED, INTERNAL_TEST);
}

/* ---- kill switches ------------------------------------------------------------------------- */

static void test_kill_switch_system_flag(void **state) {
  struct t *t = *state;
  start(t);
  assert_int_equal(flag(t, S0 + 5 * MIN_MS, "system.canary.enabled", false), CANARY_OK);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST); /* the state is untouched */
  assert_int_equal(t->fx.n, 3);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_FLAG, ROLLOUT_RUNNING, "kill_switch");
  assert_string_equal(d->actor, "alice");
  assert_evidence_str(d, "flag", "system.canary.enabled");
  assert_evidence_num(d, "exposure_percent", 0);
  assert_int_equal(n_notes_on(t, NOTIFY_RELEASES), 1);
  const struct traffic_split *ts = last_traffic(t);
  assert_non_null(ts);
  assert_true(ts->exposure_percent == 0);
  assert_false(ts->canary_enabled);
  assert_int_equal(ts->time_ms, S0 + 5 * MIN_MS);

  assert_int_equal(flag(t, S0 + 6 * MIN_MS, "system.canary.enabled", true), CANARY_OK);
  assert_evidence_num(only_decision(t), "exposure_percent", 0.5);
  assert_true(last_traffic(t)->exposure_percent == 0.5);
  assert_true(last_traffic(t)->canary_enabled);
}

static void test_kill_switch_current_cohort(void **state) {
  struct t *t = *state;
  start(t);
  assert_int_equal(flag(t, S0 + 5 * MIN_MS, "canary.cohort.internal_test.enabled", false),
                   CANARY_OK);
  assert_decision(only_decision(t), DECISION_FLAG, ROLLOUT_RUNNING, "kill_switch");
  const struct traffic_split *ts = last_traffic(t);
  assert_non_null(ts);
  assert_true(ts->exposure_percent == 0);
  assert_true(ts->canary_enabled);
  assert_true(ts->cohorts[0].kill);
  assert_false(ts->cohorts[0].enabled);
  assert_true(exposure(t) == 0);
  /* no expansion while the cohort is switched off: at its minimum the stage holds */
  smoke(t, S0 + 6 * MIN_MS, true, 42, 0);
  tick(t, S1);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_contains(only_decision(t)->reason, "kill_switch (the cohort's kill switch is off");
  /* switched back on: it moves on at once */
  assert_int_equal(flag(t, S1 + MIN_MS, "canary.cohort.internal_test.enabled", true), CANARY_OK);
  assert_state(t, ROLLOUT_RUNNING, FRIENDLY_GP);
  assert_true(exposure(t) == 5);
}

static void test_kill_switch_other_cohort(void **state) {
  struct t *t = *state;
  start(t);
  assert_int_equal(flag(t, S0 + 5 * MIN_MS, "canary.cohort.beta.enabled", false), CANARY_OK);
  assert_decision(only_decision(t), DECISION_FLAG, ROLLOUT_RUNNING, "kill_switch");
  assert_true(exposure(t) == 0.5);
  const struct traffic_split *ts = last_traffic(t); /* the switches changed: republished */
  assert_non_null(ts);
  assert_true(ts->exposure_percent == 0.5);
  assert_true(ts->cohorts[2].kill);
  assert_true(ts->cohorts[0].enabled);
  assert_false(ts->cohorts[0].kill);
}

static void test_kill_switch_unknown_cohort_rejected(void **state) {
  struct t *t = *state;
  start(t);
  struct rollout before = t->r;
  assert_int_equal(flag(t, S0 + 5 * MIN_MS, "canary.cohort.gamma.enabled", false), CANARY_EINVALID);
  assert_contains(t->why, "canary.cohort.gamma.enabled");
  assert_int_equal(t->fx.n, 0);
  assert_memory_equal(&before, &t->r, sizeof before);
}

static void test_kill_switch_on_paused_rollout(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + 1 * MIN_MS, COMMAND_PAUSE, false);
  assert_int_equal(flag(t, S0 + 2 * MIN_MS, "system.canary.enabled", false), CANARY_OK);
  assert_decision(only_decision(t), DECISION_FLAG, ROLLOUT_PAUSED, "kill_switch");
  assert_true(last_traffic(t)->exposure_percent == 0);
  command(t, S0 + 3 * MIN_MS, COMMAND_RESUME, false);
  assert_true(exposure(t) == 0); /* resume does not undo a kill switch */
}

/* ---- events that decide nothing, and events that cannot apply ------------------------------ */

static void test_metrics_and_diff_samples_are_counted(void **state) {
  struct t *t = *state;
  start(t);
  const struct metric_value counters[] = {{"requests", 1000}, {"errors", 3}};
  struct event e = ev(t, EVENT_METRICS, S0 + 1 * MIN_MS);
  snprintf(e.cohort, sizeof e.cohort, "internal_test");
  e.metrics.variant = VARIANT_CANARY;
  e.metrics.interval_ms = 10000;
  e.metrics.counters = counters;
  e.metrics.n_counters = 2;
  apply(t, e);
  assert_int_equal(t->fx.n, 0);
  const struct diff_sample samples[] = {{1, 2, 2}, {2, 4, 4.01}};
  e = ev(t, EVENT_DIFF_SAMPLES, S0 + 2 * MIN_MS);
  snprintf(e.cohort, sizeof e.cohort, "internal_test");
  e.diff.samples = samples;
  e.diff.n = 2;
  apply(t, e);
  assert_int_equal(t->fx.n, 0);
  assert_int_equal(t->r.metric_events, 2);
  assert_int_equal(t->r.last_metric_ms, S0 + 2 * MIN_MS);
  assert_state(t, ROLLOUT_RUNNING, INTERNAL_TEST);
  assert_int_equal(t->r.seq, 2); /* hold and start */
}

struct invalid_case {
  const char *name;
  struct event ev;
  const char *why;
};

static const struct invalid_case invalid_cases[] = {
    {"crash in an unknown cohort",
     {.type = EVENT_CRASH_REPORTED, .cohort = "gamma", .count = 1},
     "cohort: 'gamma'"},
    {"feedback from an unknown cohort",
     {.type = EVENT_FEEDBACK_RECEIVED, .cohort = "gamma", .sentiment = SENTIMENT_NEGATIVE},
     "cohort: 'gamma'"},
    {"metrics for an unknown cohort",
     {.type = EVENT_METRICS, .cohort = "gamma", .metrics = {.interval_ms = 1000}},
     "cohort: 'gamma'"},
    {"diff samples for an unknown cohort",
     {.type = EVENT_DIFF_SAMPLES, .cohort = "gamma"},
     "cohort: 'gamma'"},
    {"resolving an incident never opened",
     {.type = EVENT_INCIDENT_RESOLVED, .incident = "INC-X"},
     "INC-X"},
    {"opening an incident twice",
     {.type = EVENT_INCIDENT_OPENED, .incident = "INC-1", .severity = 1},
     "INC-1"},
    {"a flag for an unknown cohort",
     {.type = EVENT_FLAG_SET, .flag = "canary.cohort.gamma.enabled"},
     "gamma"},
};

/* An event that cannot apply changes nothing: not a field, not a sequence number. */
static void test_invalid_events_change_nothing(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof invalid_cases / sizeof invalid_cases[0]; k++) {
    const struct invalid_case *c = &invalid_cases[k];
    struct t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    fixture_plan(&t->plan);
    flags_init(&t->global, &t->plan);
    start(t);
    incident(t, S0 + 1 * MIN_MS, "INC-1", 1, INCIDENT_BUG);
    fact(t, EVENT_HEALTH_CHECKED, S0 + 2 * MIN_MS, false); /* a breaker error pending */
    fact(t, EVENT_HEALTH_CHECKED, S0 + 3 * MIN_MS, false);
    struct rollout before = t->r;
    struct event e = c->ev;
    snprintf(e.id, sizeof e.id, "bad");
    snprintf(e.rollout, sizeof e.rollout, RID);
    e.time_ms = S0 + 4 * HOUR_MS; /* past every deadline: the clock must not move either */
    effects_clear(&t->fx);
    assert_int_equal(effects_push(&t->fx, EFFECT_DECISION) != NULL, 1); /* a caller's effect */
    struct step_ctx ctx = {.plan = &t->plan, .now = e.time_ms, .global = &t->global};
    int rc = rollout_step(&t->r, &e, &ctx, &t->fx, t->why, sizeof t->why);
    if (rc != CANARY_EINVALID)
      fail_msg("%s: accepted (rc %d)", c->name, rc);
    if (!strstr(t->why, c->why))
      fail_msg("%s: why '%s' lacks '%s'", c->name, t->why, c->why);
    assert_int_equal(t->fx.n, 1); /* what was in the list before stays; nothing is added */
    if (memcmp(&before, &t->r, sizeof before) != 0)
      fail_msg("%s: the rollout changed", c->name);
    effects_free(&t->fx);
    free(t);
  }
}

/* ---- flags --------------------------------------------------------------------------------- */

static void test_flags_apply(void **state) {
  struct t *t = *state;
  struct flags f;
  flags_init(&f, &t->plan);
  assert_true(f.canary_enabled);
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    assert_true(f.cohort_enabled[i]);
  assert_int_equal(flags_apply(&f, &t->plan, "canary.cohort.friendly_gp.enabled", false),
                   CANARY_OK);
  assert_false(f.cohort_enabled[FRIENDLY_GP]);
  assert_int_equal(flags_apply(&f, &t->plan, "system.canary.enabled", false), CANARY_OK);
  assert_false(f.canary_enabled);
  static const char *const bad[] = {"canary.cohort..enabled",
                                    "canary.cohort.gamma.enabled",
                                    "canary.cohort.beta",
                                    "cohort.beta.enabled",
                                    "system.canary",
                                    "",
                                    "canary.cohort.beta.enabledx"};
  struct flags g = f;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(flags_apply(&f, &t->plan, bad[i], true), CANARY_EINVALID);
  assert_memory_equal(&f, &g, sizeof f);

  t->plan.canary_enabled = false;
  flags_init(&f, &t->plan);
  assert_false(f.canary_enabled);
}

/* ---- the checklist ------------------------------------------------------------------------- */

static struct checklist_item *item(struct plan *p, const char *id, int stage,
                                   enum checklist_proof proof, bool required) {
  struct checklist_item *c = &p->checklist[p->n_checklist++];
  memset(c, 0, sizeof *c);
  snprintf(c->id, sizeof c->id, "%s", id);
  snprintf(c->text, sizeof c->text, "text of %s", id);
  c->stage = stage;
  c->proof = proof;
  c->required = required;
  return c;
}

/* The seed's checklist in miniature: what events prove, what decisions prove, what people do. */
static int setup_checklist(void **state) {
  int rc = setup(state);
  struct t *t = *state;
  struct plan *p = &t->plan;
  item(p, "deploy_canary", INTERNAL_TEST, PROOF_DEPLOY_SUCCEEDED, true);
  item(p, "enable_internal_test", INTERNAL_TEST, PROOF_STAGE_STARTED, false);
  item(p, "smoke_tests", INTERNAL_TEST, PROOF_SMOKE_PASSED, true);
  item(p, "monitor_internal_test", INTERNAL_TEST, PROOF_STAGE_PASSED, false);
  item(p, "internal_test_decision", INTERNAL_TEST, PROOF_DECISION, true);
  item(p, "user_feedback", FRIENDLY_GP, PROOF_FEEDBACK, false);
  item(p, "daily_health_checks", BETA, PROOF_HEALTH_GREEN, false);
  item(p, "prepare_ga_announcement", BETA, PROOF_MANUAL, true)->remind = true;
  item(p, "final_approvals", GA, PROOF_APPROVALS, true);
  item(p, "retrospective", GA, PROOF_MANUAL, false)->remind = true;
  char why[200];
  assert_true(plan_validate(p, why, sizeof why));
  return rc;
}

static void check_item(struct t *t, int64_t at, const char *id, const char *reason) {
  char cid[32];
  snprintf(cid, sizeof cid, "c%d", ++t->next_id);
  struct event e = fixture_command(cid, RID, at, COMMAND_CHECK, false);
  snprintf(e.item, sizeof e.item, "%s", id);
  snprintf(e.reason, sizeof e.reason, "%s", reason);
  apply(t, e);
}

static const struct rollout_checked *ticked(const struct t *t, const char *id) {
  const struct rollout_checked *k = rollout_checked_find(&t->r, id);
  if (!k)
    fail_msg("checklist item %s is not ticked", id);
  return k;
}

/* Events tick what they prove, with the event as evidence; a stage's start, pass and proceed
 * tick theirs with the decision; nothing is ticked early (health before beta, feedback of
 * another cohort). */
static void test_checklist_ticks_by_events_and_decisions(void **state) {
  struct t *t = *state;
  start(t); /* e2: ci, e3: deploy, e4: health */
  const struct rollout_checked *k = ticked(t, "deploy_canary");
  assert_int_equal(k->by, CHECKED_BY_EVENT);
  assert_string_equal(k->evidence, "e2");
  assert_string_equal(k->actor, "deploy.completed");
  assert_int_equal(k->at_ms, T0 + 2 * MIN_MS);
  k = ticked(t, "enable_internal_test");
  assert_int_equal(k->by, CHECKED_BY_DECISION);
  assert_string_equal(k->evidence, only_decision(t)->id);          /* the start decision */
  assert_null(rollout_checked_find(&t->r, "daily_health_checks")); /* beta's, not yet */
  assert_null(rollout_checked_find(&t->r, "smoke_tests"));
  feedback(t, S0 + MIN_MS, "internal_test", SENTIMENT_POSITIVE); /* not friendly_gp's */
  assert_null(rollout_checked_find(&t->r, "user_feedback"));
  smoke(t, S0 + 10 * MIN_MS, true, 42, 0);
  assert_int_equal(ticked(t, "smoke_tests")->by, CHECKED_BY_EVENT);
  assert_null(rollout_checked_find(&t->r, "internal_test_decision"));
  tick(t, S1); /* internal_test passes, friendly_gp starts */
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_ADVANCE, ROLLOUT_RUNNING, "exit_gate");
  k = ticked(t, "internal_test_decision");
  assert_string_equal(k->evidence, d->id);
  assert_string_equal(k->note, "proceed");
  assert_string_equal(k->actor, "canaryd");
  assert_string_equal(ticked(t, "monitor_internal_test")->evidence, d->id);
  feedback(t, S1 + HOUR_MS, "friendly_gp", SENTIMENT_POSITIVE);
  assert_int_equal(ticked(t, "user_feedback")->by, CHECKED_BY_EVENT);
  tick(t, S2);
  assert_state(t, ROLLOUT_RUNNING, BETA);
  fact(t, EVENT_HEALTH_CHECKED, S2 + HOUR_MS, true);
  assert_int_equal(ticked(t, "daily_health_checks")->by, CHECKED_BY_EVENT);
  char open[200];
  assert_int_equal(rollout_checklist_open(&t->r, &t->plan, true, open, sizeof open), 2);
  assert_string_equal(open, "prepare_ga_announcement, final_approvals");
  approve(t, S2 + 2 * HOUR_MS, APPROVAL_PRODUCT_OWNER);
  assert_null(rollout_checked_find(&t->r, "final_approvals")); /* one of three roles */
  approve(t, S2 + 2 * HOUR_MS, APPROVAL_SUPPORT);
  approve(t, S2 + 3 * HOUR_MS, APPROVAL_DOCS);
  assert_string_equal(ticked(t, "final_approvals")->actor, "approval.granted");
}

/* A person's check is a decision with who, when and why; a second check says who did it; an
 * item the plan does not have is refused and changes nothing. */
static void test_checklist_manual_check(void **state) {
  struct t *t = *state;
  start(t);
  int64_t seq = t->r.seq;
  check_item(t, S0 + 5 * MIN_MS, "prepare_ga_announcement", "draft in the release doc");
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_CHECK, ROLLOUT_RUNNING, "checklist");
  assert_string_equal(d->actor, "alice");
  assert_contains(d->reason, "checked by alice: draft in the release doc");
  assert_evidence_str(d, "item", "prepare_ga_announcement");
  assert_int_equal(d->seq, seq + 1);
  const struct rollout_checked *k = ticked(t, "prepare_ga_announcement");
  assert_int_equal(k->by, CHECKED_BY_PERSON);
  assert_string_equal(k->actor, "alice");
  assert_string_equal(k->note, "draft in the release doc");
  assert_int_equal(k->at_ms, S0 + 5 * MIN_MS);
  check_item(t, S0 + 6 * MIN_MS, "prepare_ga_announcement", "again");
  d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_RUNNING, "command_rejected");
  assert_contains(d->reason, "already ticked by person alice");
  check_item(t, S0 + 7 * MIN_MS, "deploy_canary", ""); /* proven by an event already */
  assert_contains(only_decision(t)->reason, "already ticked by event deploy.completed (e2)");
  struct rollout before = t->r;
  struct event e = fixture_command("c-bad", RID, S0 + 8 * MIN_MS, COMMAND_CHECK, false);
  snprintf(e.item, sizeof e.item, "no_such_item");
  assert_int_equal(step(t, &e), CANARY_EINVALID);
  assert_contains(t->why, "'no_such_item' is not an item of the plan's checklist");
  assert_contains(t->why, "deploy_canary, enable_internal_test");
  e.item[0] = '\0';
  assert_int_equal(step(t, &e), CANARY_EINVALID);
  assert_contains(t->why, "names the checklist item");
  assert_memory_equal(&before, &t->r, sizeof before);
  assert_int_equal(t->fx.n, 0);
}

/* GA is not entered while a required item is open: the entry gate holds and names it; the
 * check that closes the last one enters GA in the same step. */
static void test_ga_waits_for_required_checklist_items(void **state) {
  struct t *t = *state;
  to_beta(t);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_PRODUCT_OWNER);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_SUPPORT);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_DOCS);
  tick(t, S2 + 48 * HOUR_MS);
  assert_state(t, ROLLOUT_PENDING, GA);
  const struct decision *d = only_decision(t);
  assert_decision(d, DECISION_HOLD, ROLLOUT_PENDING, "entry_gate");
  assert_contains(d->reason, "checklist (1 required item open: prepare_ga_announcement)");
  assert_evidence_str(d, "checklist", "fail");
  assert_true(exposure(t) == 25);
  /* beta's exit was its "proceed": ticked before the GA gate was asked */
  assert_string_equal(ticked(t, "internal_test_decision")->note, "proceed");
  check_item(t, S2 + 49 * HOUR_MS, "prepare_ga_announcement", "");
  assert_state(t, ROLLOUT_COMPLETED, GA);
  assert_int_equal(n_decisions(t), 2);
  assert_decision(decision(t, 0), DECISION_CHECK, ROLLOUT_PENDING, "checklist");
  d = decision(t, 1);
  assert_decision(d, DECISION_COMPLETE, ROLLOUT_COMPLETED, "entry_gate");
  assert_null(decision_evidence(d, "checklist")); /* shown only while it holds */
  /* GA's start proves nothing required; the retrospective is reminded now */
  bool reminded = false;
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_NOTIFICATION &&
        strstr(t->fx.items[i].u.notification.text, "text of retrospective") &&
        strstr(t->fx.items[i].u.notification.text, "canaryctl check r1 retrospective"))
      reminded = true;
  assert_true(reminded);
}

/* A plan without a checklist decides as before: no implicit criterion, nothing ticked. */
static void test_no_checklist_no_gate(void **state) {
  struct t *t = *state;
  to_beta(t);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_PRODUCT_OWNER);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_SUPPORT);
  approve(t, S2 + 1 * HOUR_MS, APPROVAL_DOCS);
  tick(t, S2 + 48 * HOUR_MS);
  assert_state(t, ROLLOUT_COMPLETED, GA);
  assert_int_equal(t->r.n_checked, 0);
}

/* A rollback is the stage's decision: "rollback" ticks it. Promote --force skips the gates,
 * and the stage it skipped says so (not "beta passed its exit gate"). */
static void test_rollback_and_force_on_the_checklist(void **state) {
  struct t *t = *state;
  start(t);
  command(t, S0 + MIN_MS, COMMAND_ROLLBACK, false);
  const struct rollout_checked *k = ticked(t, "internal_test_decision");
  assert_string_equal(k->note, "rollback");
  assert_string_equal(k->actor, "alice");
  assert_string_equal(k->evidence, only_decision(t)->id);

  memset(&t->r, 0, sizeof t->r);
  to_friendly_gp(t);
  command(t, S1 + HOUR_MS, COMMAND_PROMOTE, true);
  assert_state(t, ROLLOUT_COMPLETED, GA);
  assert_true(t->r.force_promoted);
  struct gate_check checks[PLAN_MAX_CRITERIA];
  int n = rollout_gate(&t->r, &t->plan, GA, false, S1 + HOUR_MS, checks, PLAN_MAX_CRITERIA);
  assert_true(n > 0);
  assert_int_equal(checks[0].criterion->check, CHECK_PREVIOUS_STAGE_PASSED);
  assert_int_equal(checks[0].result, GATE_FAIL);
  assert_string_equal(checks[0].detail, "beta was skipped: promoted --force");
}

/* The split carries each cohort's named user groups and features from the plan, so a
 * deployment can route them (eng-team to the canary from internal_test on). */
static void test_split_carries_segments(void **state) {
  struct t *t = *state;
  struct stage *s0 = &t->plan.stages[INTERNAL_TEST], *s2 = &t->plan.stages[BETA];
  snprintf(s0->segments[0], PLAN_NAME_MAX, "eng-team");
  s0->n_segments = 1;
  snprintf(s0->features[0], PLAN_NAME_MAX, "all");
  s0->n_features = 1;
  snprintf(s2->segments[0], PLAN_NAME_MAX, "beta-opt-in");
  s2->n_segments = 1;
  start(t);
  const struct traffic_split *sp = last_traffic(t);
  assert_non_null(sp);
  assert_int_equal(sp->cohorts[INTERNAL_TEST].n_segments, 1);
  assert_string_equal(sp->cohorts[INTERNAL_TEST].segments[0], "eng-team");
  assert_string_equal(sp->cohorts[INTERNAL_TEST].features[0], "all");
  assert_true(sp->cohorts[INTERNAL_TEST].enabled);
  assert_string_equal(sp->cohorts[BETA].segments[0], "beta-opt-in");
  assert_false(sp->cohorts[BETA].enabled);
  assert_int_equal(sp->cohorts[FRIENDLY_GP].n_segments, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_requested_holds_and_publishes_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_when_entry_gate_passes, setup, teardown),
      cmocka_unit_test(test_gate_table),
      cmocka_unit_test_setup_teardown(test_ga_needs_all_three_approvals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metric_criterion_blocks_the_stage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_min_reached_by_tick, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exit_unmet_at_min_holds_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_passed_halts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exit_pass_entry_fail_holds_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sev1_window_clears_at_48h, setup, teardown),
      cmocka_unit_test_setup_teardown(test_window_deadline_counts_only_matching_incidents, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_no_deadline_when_paused_or_ended, setup, teardown),
      cmocka_unit_test_setup_teardown(test_clock_never_goes_back, setup, teardown),
      cmocka_unit_test(test_command_table),
      cmocka_unit_test_setup_teardown(test_resume_returns_to_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_gives_a_fresh_max, setup, teardown),
      cmocka_unit_test_setup_teardown(test_promote_lists_bypassed_criteria, setup, teardown),
      cmocka_unit_test_setup_teardown(test_promote_lists_bypassed_entry_of_next_stage, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_promote_with_gates_met, setup, teardown),
      cmocka_unit_test_setup_teardown(test_previous_stage_passed_after_promote, setup, teardown),
      cmocka_unit_test_setup_teardown(test_normal_advance_out_of_promoted_stage, setup, teardown),
      cmocka_unit_test(test_alert_halts),
      cmocka_unit_test(test_incident_table),
      cmocka_unit_test_setup_teardown(test_status_page_all_clear, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oncall_all_clear, setup, teardown),
      cmocka_unit_test_setup_teardown(test_halt_while_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alert_after_rollback_only_notifies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rollback_verified_by_a_green_health_check, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_rollback_not_verified_at_the_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rollback_verify_off, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alert_after_ga_pages_oncall, setup, teardown),
      cmocka_unit_test_setup_teardown(test_breaker_trips_on_three_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_breaker_counts_crashes_and_failed_smoke_tests, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_breaker_resets_on_success, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_closes_the_breaker, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_switch_system_flag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_switch_current_cohort, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_switch_other_cohort, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_switch_unknown_cohort_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill_switch_on_paused_rollout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics_and_diff_samples_are_counted, setup, teardown),
      cmocka_unit_test(test_invalid_events_change_nothing),
      cmocka_unit_test_setup_teardown(test_flags_apply, setup, teardown),
      cmocka_unit_test_setup_teardown(test_checklist_ticks_by_events_and_decisions, setup_checklist,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_checklist_manual_check, setup_checklist, teardown),
      cmocka_unit_test_setup_teardown(test_ga_waits_for_required_checklist_items, setup_checklist,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_no_checklist_no_gate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_carries_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rollback_and_force_on_the_checklist, setup_checklist,
                                      teardown),
  };
  return cmocka_run_group_tests_name("rollout", tests, NULL, NULL);
}
