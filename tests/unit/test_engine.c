/*
 * The engine: routing events to rollouts, repeated and rejected ids, global kill switches,
 * deadlines across rollouts, determinism, and a whole rollout from request to 100%.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/engine.h"
#include "fixtures.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */

/* An engine on the fixture plan; all effects since the last clear() are kept in fx. */
struct t {
  struct plan plan;
  struct engine e;
  struct effects fx;
  int next_id;
  char why[256];
};

static int setup(void **state) {
  struct t *t = calloc(1, sizeof *t);
  if (!t)
    return -1;
  fixture_plan(&t->plan);
  if (engine_init(&t->e, &t->plan) != CANARY_OK)
    return -1;
  *state = t;
  return 0;
}

static int teardown(void **state) {
  struct t *t = *state;
  engine_destroy(&t->e);
  effects_free(&t->fx);
  free(t);
  return 0;
}

static void clear(struct t *t) { effects_clear(&t->fx); }

/* Apply e at its own time; returns the outcome. */
static enum apply_outcome submit(struct t *t, const struct event *e) {
  enum apply_outcome out = APPLY_REJECTED;
  t->why[0] = '\0';
  assert_int_equal(engine_apply(&t->e, e, e->time_ms, &t->fx, &out, t->why, sizeof t->why),
                   CANARY_OK);
  return out;
}

/* Apply e and require that it was applied. */
static void apply(struct t *t, struct event e) {
  enum apply_outcome out = submit(t, &e);
  if (out != APPLY_APPLIED)
    fail_msg("%s (%s) not applied: %s", e.id, event_type_name(e.type), t->why);
}

static void tick(struct t *t, int64_t now) {
  assert_int_equal(engine_tick(&t->e, now, &t->fx), CANARY_OK);
}

/*
 * What a worker does: fire every deadline due by at, each at its own time. A tick consumes what
 * is due: the next deadline is always later, or a worker would spin.
 */
static void run_until(struct t *t, int64_t at) {
  for (int64_t d; (d = engine_next_deadline(&t->e)) <= at;) {
    tick(t, d);
    if (engine_next_deadline(&t->e) <= d)
      fail_msg("deadline T0%+lld ms is still due after a tick at it", (long long)(d - T0));
  }
}

static struct event ev(struct t *t, enum event_type type, const char *rollout, int64_t at) {
  char id[32];
  snprintf(id, sizeof id, "e%d", ++t->next_id);
  return fixture_event(type, id, rollout, at);
}

/* A rollout of a service of its own ("web" for r1, "web-r2" for r2): one service has one live
 * rollout at a time (test_one_live_rollout_per_service). */
static void request(struct t *t, const char *rollout, int64_t at) {
  char id[32];
  snprintf(id, sizeof id, "req-%s", rollout);
  struct event e = fixture_requested(id, rollout, at);
  if (strcmp(rollout, "r1"))
    snprintf(e.service, sizeof e.service, "web-%s", rollout);
  apply(t, e);
}

static void fact(struct t *t, enum event_type type, const char *rollout, int64_t at, bool ok) {
  struct event e = ev(t, type, rollout, at);
  e.ok = ok;
  apply(t, e);
}

static void command(struct t *t, const char *rollout, int64_t at, enum command_action a,
                    bool force) {
  char id[32];
  snprintf(id, sizeof id, "c%d", ++t->next_id);
  apply(t, fixture_command(id, rollout, at, a, force));
}

/* Requested at at; ci, deploy and health pass 1, 2, 3 min later: running from at + 3 min. */
static void start(struct t *t, const char *rollout, int64_t at) {
  request(t, rollout, at);
  fact(t, EVENT_CI_COMPLETED, rollout, at + 1 * MIN_MS, true);
  fact(t, EVENT_DEPLOY_COMPLETED, rollout, at + 2 * MIN_MS, true);
  fact(t, EVENT_HEALTH_CHECKED, rollout, at + 3 * MIN_MS, true);
  assert_int_equal(engine_find(&t->e, rollout)->state, ROLLOUT_RUNNING);
}

static size_t n_kind(const struct t *t, enum effect_kind k) { return effects_count(&t->fx, k); }

/* Number of effects about rollout. */
static size_t n_for(const struct t *t, const char *rollout) {
  size_t n = 0;
  for (size_t i = 0; i < t->fx.n; i++) {
    const struct effect *x = &t->fx.items[i];
    const char *r = x->kind == EFFECT_DECISION       ? x->u.decision.rollout
                    : x->kind == EFFECT_NOTIFICATION ? x->u.notification.rollout
                                                     : x->u.traffic.rollout;
    n += strcmp(r, rollout) == 0;
  }
  return n;
}

/* The last decision about rollout, or NULL. */
static const struct decision *last_decision(const struct t *t, const char *rollout) {
  for (size_t i = t->fx.n; i-- > 0;)
    if (t->fx.items[i].kind == EFFECT_DECISION &&
        strcmp(t->fx.items[i].u.decision.rollout, rollout) == 0)
      return &t->fx.items[i].u.decision;
  return NULL;
}

/* The last traffic split of rollout, or NULL. */
static const struct traffic_split *last_traffic(const struct t *t, const char *rollout) {
  for (size_t i = t->fx.n; i-- > 0;)
    if (t->fx.items[i].kind == EFFECT_TRAFFIC &&
        strcmp(t->fx.items[i].u.traffic.rollout, rollout) == 0)
      return &t->fx.items[i].u.traffic;
  return NULL;
}

static double exposure(const struct t *t, const char *rollout) {
  return rollout_exposure(engine_find(&t->e, rollout), &t->plan, &t->e.global);
}

#define assert_contains(haystack, needle)                                                          \
  do {                                                                                             \
    if (!strstr((haystack), (needle)))                                                             \
      fail_msg("'%s' does not contain '%s'", (haystack), (needle));                                \
  } while (0)

#define assert_action(d, act)                                                                      \
  do {                                                                                             \
    assert_non_null(d);                                                                            \
    assert_string_equal(decision_action_name((d)->action), decision_action_name(act));             \
  } while (0)

/* ---- routing and ids ----------------------------------------------------------------------- */

static void test_requested_creates_a_rollout(void **state) {
  struct t *t = *state;
  request(t, "r1", T0);
  assert_int_equal(t->e.n_rollouts, 1);
  struct rollout *r = engine_find(&t->e, "r1");
  assert_non_null(r);
  assert_int_equal(r->state, ROLLOUT_PENDING);
  assert_string_equal(r->service, "web");
  assert_int_equal(r->requested_ms, T0);
  assert_null(engine_find(&t->e, "r2"));
  assert_int_equal(t->fx.n, 2); /* the entry hold and the first (empty) traffic split */
  assert_action(last_decision(t, "r1"), DECISION_HOLD);
  assert_true(idset_contains(&t->e.seen, "req-r1"));
}

/*
 * Ids are kept for the id epoch they were kept in and the next one (ENGINE_ID_EPOCH_MS of event
 * time each): a repeat inside that is ignored, one two epochs on is a new event — memory and
 * the store stay bounded.
 */
static void test_ids_are_kept_one_epoch_more(void **state) {
  struct t *t = *state;
  const int64_t day = ENGINE_ID_EPOCH_MS, e0 = engine_id_epoch_of(T0) * day;
  request(t, "r1", e0 + 1 * HOUR_MS);
  struct event a = fixture_event(EVENT_CI_COMPLETED, "a", "r1", e0 + 2 * HOUR_MS);
  a.ok = true;
  assert_int_equal(submit(t, &a), APPLY_APPLIED);
  assert_int_equal(submit(t, &a), APPLY_DUPLICATE); /* redelivered the next day: still known */
  struct event b = a;
  snprintf(b.id, sizeof b.id, "b");
  b.time_ms = e0 + day + 2 * HOUR_MS; /* the first id of the next epoch moves the sets on */
  assert_int_equal(submit(t, &b), APPLY_APPLIED);
  assert_int_equal(t->e.id_epoch, engine_id_epoch_of(T0) + 1);
  assert_int_equal(submit(t, &a), APPLY_DUPLICATE); /* in the previous epoch's set */
  struct event c = b;
  snprintf(c.id, sizeof c.id, "c");
  c.time_ms = e0 + 2 * day + 1 * HOUR_MS;
  assert_int_equal(submit(t, &c), APPLY_APPLIED);
  a.time_ms = e0 + 2 * day + 2 * HOUR_MS; /* two epochs on: forgotten, a new event (no
                                           * conflict with the content forgotten either) */
  assert_int_equal(submit(t, &a), APPLY_APPLIED);
  assert_int_equal(submit(t, &b), APPLY_DUPLICATE); /* b is a day old: still known */
  /* an epoch skipped: everything before is forgotten */
  struct event d = c;
  snprintf(d.id, sizeof d.id, "d");
  d.time_ms = e0 + 5 * day;
  assert_int_equal(submit(t, &d), APPLY_APPLIED);
  assert_int_equal(t->e.seen_old.n, 0);
  assert_int_equal(submit(t, &c), APPLY_APPLIED);
  assert_int_equal(engine_id_epoch_of(-1), -1);
  assert_int_equal(engine_id_epoch_of(0), 0);
  assert_int_equal(engine_id_epoch_of(day - 1), 0);
}

static void test_duplicate_id_is_ignored(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event e = fixture_event(EVENT_CRASH_REPORTED, "crash-1", "r1", T0 + 10 * MIN_MS);
  snprintf(e.cohort, sizeof e.cohort, "internal_test");
  e.count = 1;
  assert_int_equal(submit(t, &e), APPLY_APPLIED);
  struct rollout before = *engine_find(&t->e, "r1");
  clear(t);
  assert_int_equal(submit(t, &e), APPLY_DUPLICATE); /* a redelivery: the same event again */
  assert_int_equal(t->fx.n, 0);
  assert_string_equal(t->why, ""); /* nothing to report: replays make these all the time */
  assert_memory_equal(&before, engine_find(&t->e, "r1"), sizeof before);
  assert_int_equal(engine_find(&t->e, "r1")->crashes[0], 1);

  struct event req = fixture_requested("req-r1", "r1", T0);
  assert_int_equal(submit(t, &req), APPLY_DUPLICATE);
  assert_int_equal(t->fx.n, 0);
  assert_int_equal(t->e.n_rollouts, 1);
}

/*
 * An id reused for other content is a conflict (issue 10: 6): not applied, reported with the
 * id and both digests, and the first content's digest stays — the first content again is
 * still a plain duplicate. A replay's view (engine_admit without the duplicate check) refuses
 * the conflicting copy as the first apply did.
 */
static void test_reused_id_is_a_conflict(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event e = fixture_event(EVENT_CRASH_REPORTED, "crash-1", "r1", T0 + 10 * MIN_MS);
  snprintf(e.cohort, sizeof e.cohort, "internal_test");
  e.count = 1;
  assert_int_equal(submit(t, &e), APPLY_APPLIED);
  uint64_t first;
  assert_true(engine_seen(&t->e, idset_hash("crash-1"), &first));
  assert_int_equal(first, event_digest(&e));
  struct rollout before = *engine_find(&t->e, "r1");
  clear(t);

  struct event later = e;
  later.time_ms += MIN_MS; /* the same claim at another time is another claim */
  struct event rollback = e;
  rollback.type = EVENT_COMMAND;
  rollback.action = COMMAND_ROLLBACK;
  const struct event *others[] = {&later, &rollback};
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(submit(t, others[i]), APPLY_CONFLICT);
    char a[EVENT_DIGEST_HEX_LEN], b[EVENT_DIGEST_HEX_LEN], want[160];
    event_digest_hex(event_digest(&e), a);
    event_digest_hex(event_digest(others[i]), b);
    snprintf(want, sizeof want,
             "'crash-1' was applied before with other content (digest %s "
             "first seen, %s this one)",
             a, b);
    if (!strstr(t->why, want))
      fail_msg("reason '%s' lacks '%s'", t->why, want);
    enum apply_outcome out;
    char why[256];
    assert_false(engine_admit(&t->e, others[i], true, &out, why, sizeof why));
    assert_int_equal(out, APPLY_CONFLICT);
    assert_false(engine_admit(&t->e, others[i], false, &out, why, sizeof why));
    assert_int_equal(out, APPLY_CONFLICT);
  }
  assert_int_equal(t->fx.n, 0);
  assert_memory_equal(&before, engine_find(&t->e, "r1"), sizeof before);
  assert_int_equal(submit(t, &e), APPLY_DUPLICATE);
  assert_true(engine_seen(&t->e, idset_hash("crash-1"), &first));
  assert_int_equal(first, event_digest(&e));
  enum apply_outcome out;
  assert_true(engine_admit(&t->e, &e, false, &out, NULL, 0)); /* the copy applied replays */
}

/* An id whose content is not known (stored before digests were kept) is a plain duplicate,
 * whatever comes under it: never a false conflict. */
static void test_unknown_digest_is_a_duplicate(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  assert_int_equal(idset_add_hash(&t->e.seen, idset_hash("old-1")), CANARY_OK); /* as loaded */
  clear(t);
  struct event e = fixture_event(EVENT_HEALTH_CHECKED, "old-1", "r1", T0 + 10 * MIN_MS);
  e.ok = false;
  assert_int_equal(submit(t, &e), APPLY_DUPLICATE);
  e.ok = true;
  assert_int_equal(submit(t, &e), APPLY_DUPLICATE);
  assert_int_equal(t->fx.n, 0);
  enum apply_outcome out;
  assert_true(engine_admit(&t->e, &e, false, &out, NULL, 0));
}

struct reject_case {
  const char *name;
  struct event ev; /* id, rollout and time are filled in unless set */
  const char *why; /* a substring of the reason */
};

static const struct reject_case reject_cases[] = {
    {"unknown rollout", {.type = EVENT_CI_COMPLETED, .rollout = "nope", .ok = true}, "nope"},
    {"second rollout.requested",
     {.type = EVENT_ROLLOUT_REQUESTED,
      .service = "web",
      .version = "2.2.0",
      .baseline_version = "2.1.0"},
     "already exists"},
    {"crash in an unknown cohort",
     {.type = EVENT_CRASH_REPORTED, .cohort = "gamma", .count = 1},
     "gamma"},
    {"feedback from an unknown cohort",
     {.type = EVENT_FEEDBACK_RECEIVED, .cohort = "gamma", .sentiment = SENTIMENT_POSITIVE},
     "gamma"},
    {"metrics for an unknown cohort",
     {.type = EVENT_METRICS, .cohort = "gamma", .metrics = {.interval_ms = 10000}},
     "gamma"},
    {"diff samples for an unknown cohort",
     {.type = EVENT_DIFF_SAMPLES, .cohort = "gamma"},
     "gamma"},
    {"flag for an unknown cohort",
     {.type = EVENT_FLAG_SET, .flag = "canary.cohort.gamma.enabled", .value = false},
     "gamma"},
    {"global flag for an unknown cohort",
     {.type = EVENT_FLAG_SET, .rollout = "-", .flag = "canary.cohort.gamma.enabled"},
     "gamma"},
    {"malformed flag", {.type = EVENT_FLAG_SET, .flag = "canary.enabled"}, "flag"},
    {"unknown incident resolved", {.type = EVENT_INCIDENT_RESOLVED, .incident = "INC-X"}, "INC-X"},
    {"severity out of range",
     {.type = EVENT_INCIDENT_OPENED, .incident = "INC-5", .severity = 5},
     "severity"},
    {"crash count 0", {.type = EVENT_CRASH_REPORTED, .cohort = "beta", .count = 0}, "count"},
    {"missing id", {.type = EVENT_CI_COMPLETED, .id = "-", .ok = true}, "id"},
};

/*
 * A rejected event changes nothing (the rollout compares equal byte for byte, no effect is
 * produced, no sequence number used) and its id is not remembered.
 */
static void test_rejected_events(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  fact(t, EVENT_HEALTH_CHECKED, "r1", T0 + 5 * MIN_MS, false);
  for (size_t k = 0; k < sizeof reject_cases / sizeof reject_cases[0]; k++) {
    const struct reject_case *c = &reject_cases[k];
    struct event e = c->ev;
    if (strcmp(e.id, "-") == 0)
      e.id[0] = '\0';
    else
      snprintf(e.id, sizeof e.id, "bad-%zu", k);
    if (strcmp(e.rollout, "-") == 0)
      e.rollout[0] = '\0';
    else if (!e.rollout[0])
      snprintf(e.rollout, sizeof e.rollout, "r1");
    e.time_ms = T0 + 10 * MIN_MS;

    struct rollout before = *engine_find(&t->e, "r1");
    struct flags global = t->e.global;
    size_t n_rollouts = t->e.n_rollouts, n_seen = t->e.seen.n;
    clear(t);
    enum apply_outcome out = submit(t, &e);
    if (out != APPLY_REJECTED)
      fail_msg("%s: outcome %d, not rejected", c->name, out);
    if (!strstr(t->why, c->why))
      fail_msg("%s: why '%s' lacks '%s'", c->name, t->why, c->why);
    if (t->fx.n != 0)
      fail_msg("%s: %zu effects", c->name, t->fx.n);
    if (memcmp(&before, engine_find(&t->e, "r1"), sizeof before) != 0)
      fail_msg("%s: the rollout changed", c->name);
    assert_memory_equal(&global, &t->e.global, sizeof global);
    assert_int_equal(t->e.n_rollouts, n_rollouts);
    assert_int_equal(t->e.seen.n, n_seen);
    if (e.id[0] && idset_contains(&t->e.seen, e.id))
      fail_msg("%s: the id of a rejected event was remembered", c->name);
  }
}

/* A rejected event's id is free: the corrected event with the same id applies. */
static void test_corrected_event_reuses_rejected_id(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event e = fixture_event(EVENT_FEEDBACK_RECEIVED, "fb-1", "r1", T0 + 10 * MIN_MS);
  snprintf(e.cohort, sizeof e.cohort, "friendly-gp"); /* a typo */
  e.sentiment = SENTIMENT_NEGATIVE;
  assert_int_equal(submit(t, &e), APPLY_REJECTED);
  snprintf(e.cohort, sizeof e.cohort, "friendly_gp");
  assert_int_equal(submit(t, &e), APPLY_APPLIED);
  assert_int_equal(engine_find(&t->e, "r1")->negative[1], 1);
  assert_int_equal(submit(t, &e), APPLY_DUPLICATE);
  assert_int_equal(engine_find(&t->e, "r1")->negative[1], 1);
}

/* A rejected command is applied (answered with a hold) and its id remembered like any other. */
static void test_rejected_command_is_applied_and_remembered(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  clear(t);
  struct event c = fixture_command("cmd-1", "r1", T0 + 10 * MIN_MS, COMMAND_RESUME, false);
  assert_int_equal(submit(t, &c), APPLY_APPLIED);
  const struct decision *d = last_decision(t, "r1");
  assert_action(d, DECISION_HOLD);
  assert_string_equal(d->rule, "command_rejected");
  assert_int_equal(t->fx.n, 1);
  assert_int_equal(submit(t, &c), APPLY_DUPLICATE);
}

/*
 * engine_admit answers what engine_apply would do at its first checks, changing nothing: the
 * caller fires deadlines up to an event's time only for an event it admits (issue 10: a rejected
 * event dated a year ahead halted every rollout of its partition at their maxima).
 */
static void test_admit_changes_nothing(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  clear(t);
  enum apply_outcome out;
  char why[256];
  struct event ghost = ev(t, EVENT_CI_COMPLETED, "ghost", T0 + 365 * 24 * HOUR_MS);
  ghost.ok = true;
  assert_false(engine_admit(&t->e, &ghost, true, &out, why, sizeof why));
  assert_int_equal(out, APPLY_REJECTED);
  assert_non_null(strstr(why, "'ghost' is unknown"));
  struct event again = fixture_requested("req-2", "r1", T0 + MIN_MS);
  assert_false(engine_admit(&t->e, &again, true, &out, why, sizeof why));
  assert_non_null(strstr(why, "already exists"));
  struct event late = ev(t, EVENT_CI_COMPLETED, "r1", EVENT_TIME_MAX_MS);
  assert_false(engine_admit(&t->e, &late, true, &out, why, sizeof why));
  assert_non_null(strstr(why, "before 2100"));
  struct event fine = ev(t, EVENT_HEALTH_CHECKED, "r1", T0 + 5 * MIN_MS);
  fine.ok = true;
  assert_true(engine_admit(&t->e, &fine, true, &out, why, sizeof why));
  assert_true(engine_admit(&t->e, &fine, false, &out, why, sizeof why));
  apply(t, fine);
  assert_false(engine_admit(&t->e, &fine, true, &out, why, sizeof why)); /* seen now */
  assert_int_equal(out, APPLY_DUPLICATE);
  assert_true(engine_admit(&t->e, &fine, false, &out, why, sizeof why)); /* a replay's view */
  assert_int_equal(t->fx.n, 0); /* nothing decided by any of it */
}

static void test_metrics_accepted_and_decide_nothing(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  clear(t);
  const struct metric_value counters[] = {{"requests", 5000}, {"errors", 400}};
  const double lat[] = {120, 180, 9000};
  const struct metric_dist dists[] = {{"latency_ms", lat, 3}};
  for (int i = 0; i < 5; i++) {
    struct event e = ev(t, EVENT_METRICS, "r1", T0 + (10 + i) * MIN_MS);
    snprintf(e.cohort, sizeof e.cohort, "internal_test");
    e.metrics.variant = i % 2 ? VARIANT_BASELINE : VARIANT_CANARY;
    e.metrics.interval_ms = 60000;
    e.metrics.counters = counters;
    e.metrics.n_counters = 2;
    e.metrics.dists = dists;
    e.metrics.n_dists = 1;
    apply(t, e);
  }
  const struct diff_sample samples[] = {{1, 10, 10}, {2, 20, 25}};
  struct event d = ev(t, EVENT_DIFF_SAMPLES, "r1", T0 + 20 * MIN_MS);
  snprintf(d.cohort, sizeof d.cohort, "internal_test");
  d.diff.samples = samples;
  d.diff.n = 2;
  apply(t, d);
  assert_int_equal(t->fx.n, 0);
  const struct rollout *r = engine_find(&t->e, "r1");
  assert_int_equal(r->metric_events, 6);
  assert_int_equal(r->last_metric_ms, T0 + 20 * MIN_MS);
  assert_int_equal(r->state, ROLLOUT_RUNNING);
  assert_int_equal(r->seq, 2);
}

/* ---- global kill switches ------------------------------------------------------------------ */

static void test_global_flag_applies_to_every_live_rollout(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);                /* running, 0.5% */
  request(t, "r2", T0 + 1 * MIN_MS); /* pending */
  start(t, "r3", T0 + 2 * MIN_MS);
  command(t, "r3", T0 + 6 * MIN_MS, COMMAND_PROMOTE, true); /* completed, 100% */
  start(t, "r4", T0 + 3 * MIN_MS);
  command(t, "r4", T0 + 7 * MIN_MS, COMMAND_PAUSE, false); /* paused at 0.5% */
  clear(t);

  apply(t, fixture_flag("kill-1", "", T0 + 10 * MIN_MS, "system.canary.enabled", false));
  assert_false(t->e.global.canary_enabled);
  static const char *const live[] = {"r1", "r2", "r4"};
  for (size_t i = 0; i < 3; i++) {
    const struct decision *d = last_decision(t, live[i]);
    assert_action(d, DECISION_FLAG);
    assert_string_equal(d->rule, "kill_switch");
    assert_contains(d->reason, "global system.canary.enabled set to false");
    assert_true(exposure(t, live[i]) == 0);
  }
  assert_int_equal(n_kind(t, EFFECT_DECISION), 3);
  assert_int_equal(n_for(t, "r3"), 0); /* completed: not a live rollout */
  assert_int_equal(engine_find(&t->e, "r2")->state, ROLLOUT_PENDING);
  assert_int_equal(engine_find(&t->e, "r4")->state, ROLLOUT_PAUSED);
  assert_true(last_traffic(t, "r1")->exposure_percent == 0);
  assert_false(last_traffic(t, "r1")->canary_enabled);
  assert_true(last_traffic(t, "r4")->exposure_percent == 0);

  /* a rollout created later sees the switch off: it waits, at 0% */
  clear(t);
  request(t, "r5", T0 + 20 * MIN_MS);
  fact(t, EVENT_CI_COMPLETED, "r5", T0 + 21 * MIN_MS, true);
  fact(t, EVENT_DEPLOY_COMPLETED, "r5", T0 + 22 * MIN_MS, true);
  fact(t, EVENT_HEALTH_CHECKED, "r5", T0 + 23 * MIN_MS, true);
  assert_int_equal(engine_find(&t->e, "r5")->state, ROLLOUT_PENDING);
  assert_true(last_traffic(t, "r5")->exposure_percent == 0);
  assert_false(last_traffic(t, "r5")->canary_enabled);

  clear(t);
  apply(t, fixture_flag("kill-2", "", T0 + 30 * MIN_MS, "system.canary.enabled", true));
  assert_true(last_traffic(t, "r1")->exposure_percent == 0.5);
  assert_true(last_traffic(t, "r5")->exposure_percent == 0.5);
  assert_true(exposure(t, "r4") == 0.5);
  /* pending at the first stage: 0% either way, but clusters see the switch itself change */
  assert_true(last_traffic(t, "r2")->exposure_percent == 0);
  assert_true(last_traffic(t, "r2")->canary_enabled);
  /* a flag decision for each of the four live rollouts, and r5 starts now that it may */
  assert_int_equal(n_kind(t, EFFECT_DECISION), 5);
  assert_action(last_decision(t, "r5"), DECISION_START);
}

/* A reason too long for the decision ends at a word, with "...", never mid-word. */
static void test_long_reason_ends_at_a_word(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event promote = fixture_command("long", "r1", T0 + 5 * MIN_MS, COMMAND_PROMOTE, false);
  size_t at = 0;
  while (at + 12 < sizeof promote.reason) /* "supercalifragilistic"-free words of 11 */
    at += (size_t)snprintf(promote.reason + at, sizeof promote.reason - at, "%s", "longreason ");
  promote.reason[at - 1] = '\0';
  clear(t);
  apply(t, promote);
  const struct decision *d = last_decision(t, "r1");
  assert_action(d, DECISION_PROMOTE);
  size_t n = strlen(d->reason);
  assert_true(n + 1 <= sizeof d->reason);
  assert_true(n > 3 && !strcmp(d->reason + n - 3, "..."));
  assert_non_null(strstr(d->reason, "promoted by "));
  assert_non_null(strstr(d->reason, ": longreason longreason"));
  /* the cutter itself: at the last whole word, never inside one */
  char s[16];
  int want = snprintf(s, sizeof s, "%s", "looks good to me, ship it");
  text_cut_at_word(s, sizeof s, want);
  assert_string_equal(s, "looks good..."); /* not "looks good to m" */
  want = snprintf(s, sizeof s, "%s", "fits fine");
  text_cut_at_word(s, sizeof s, want);
  assert_string_equal(s, "fits fine");
  want = snprintf(s, sizeof s, "%s", "averyveryverylongword");
  text_cut_at_word(s, sizeof s, want);
  assert_string_equal(s, "averyveryver..."); /* one word longer than the field: cut it */
}

static void test_global_cohort_flag(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  start(t, "r2", T0);
  command(t, "r2", T0 + 5 * MIN_MS, COMMAND_PROMOTE, false); /* friendly_gp, 5% */
  clear(t);
  apply(t, fixture_flag("k", "", T0 + 10 * MIN_MS, "canary.cohort.internal_test.enabled", false));
  assert_true(exposure(t, "r1") == 0);
  assert_true(exposure(t, "r2") == 5); /* another cohort is exposed there */
  assert_true(last_traffic(t, "r2")->cohorts[0].kill);
  assert_false(t->e.global.cohort_enabled[0]);
  /* a rollout's own switch cannot turn the global one back on */
  clear(t);
  struct event on =
      fixture_flag("k2", "r1", T0 + 11 * MIN_MS, "canary.cohort.internal_test.enabled", true);
  apply(t, on);
  assert_true(exposure(t, "r1") == 0);
  assert_int_equal(n_for(t, "r2"), 0);
}

/*
 * A completed rollout is the release, not a canary in flight: the global switch is not applied
 * to it (the engine does not step it), and a later event about it must not republish its
 * traffic at 0% behind everyone's back, with no decision to say why.
 */
static void test_global_flag_leaves_completed_rollouts_alone(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  command(t, "r1", T0 + 5 * MIN_MS, COMMAND_PROMOTE, true);
  assert_int_equal(engine_find(&t->e, "r1")->state, ROLLOUT_COMPLETED);
  apply(t, fixture_flag("kill", "", T0 + 10 * MIN_MS, "system.canary.enabled", false));
  clear(t);
  struct event inc = ev(t, EVENT_INCIDENT_OPENED, "r1", T0 + 20 * MIN_MS); /* after GA */
  snprintf(inc.incident, sizeof inc.incident, "INC-8");
  inc.severity = 3;
  apply(t, inc);
  assert_null(last_traffic(t, "r1"));
  assert_true(exposure(t, "r1") == 100);
  apply(t, fixture_flag("kill2", "", T0 + 21 * MIN_MS, "canary.cohort.ga.enabled", false));
  assert_true(exposure(t, "r1") == 100);
  /* its own switch is explicit and decided: that one still applies */
  clear(t);
  apply(t, fixture_flag("own", "r1", T0 + 30 * MIN_MS, "system.canary.enabled", false));
  assert_action(last_decision(t, "r1"), DECISION_FLAG);
  assert_true(last_traffic(t, "r1")->exposure_percent == 0);
  /* and a rollback still takes it to 0 */
  command(t, "r1", T0 + 40 * MIN_MS, COMMAND_ROLLBACK, false);
  assert_true(exposure(t, "r1") == 0);
}

/*
 * No expansion while a kill switch holds the cohort at 0%: the rollout does not start (or move
 * on) switched off, however long it waits, and the hold says why. Turning the switch back on
 * lets it start at once — not jump to wherever the clock would have taken it.
 */
static void test_no_expansion_while_globally_off(void **state) {
  struct t *t = *state;
  apply(t, fixture_flag("kill", "", T0, "system.canary.enabled", false));
  request(t, "r1", T0);
  fact(t, EVENT_CI_COMPLETED, "r1", T0 + 1 * MIN_MS, true);
  fact(t, EVENT_DEPLOY_COMPLETED, "r1", T0 + 2 * MIN_MS, true);
  fact(t, EVENT_HEALTH_CHECKED, "r1", T0 + 3 * MIN_MS, true);
  assert_int_equal(engine_find(&t->e, "r1")->state, ROLLOUT_PENDING);
  const struct decision *d = last_decision(t, "r1");
  assert_action(d, DECISION_HOLD);
  assert_non_null(strstr(d->reason, "kill_switch (system.canary.enabled is false"));
  assert_true(exposure(t, "r1") == 0);

  run_until(t, T0 + 30 * 24 * HOUR_MS);
  assert_int_equal(engine_find(&t->e, "r1")->state, ROLLOUT_PENDING);
  assert_int_equal(engine_find(&t->e, "r1")->stage, 0);

  clear(t);
  apply(t, fixture_flag("on", "", T0 + 30 * 24 * HOUR_MS + 1, "system.canary.enabled", true));
  assert_int_equal(engine_find(&t->e, "r1")->state, ROLLOUT_RUNNING);
  assert_int_equal(engine_find(&t->e, "r1")->stage, 0);
  assert_action(last_decision(t, "r1"), DECISION_START);
  assert_true(exposure(t, "r1") == 0.5);
}

/* A running stage switched off at its minimum holds (once) instead of advancing at 0%. */
static void test_cohort_switched_off_holds_at_minimum(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event e = ev(t, EVENT_SMOKE_COMPLETED, "r1", T0 + 10 * MIN_MS);
  e.ok = true;
  apply(t, e);
  apply(t, fixture_flag("k", "r1", T0 + 20 * MIN_MS, "canary.cohort.internal_test.enabled", false));
  clear(t);
  run_until(t, T0 + 3 * MIN_MS + HOUR_MS);
  assert_int_equal(engine_find(&t->e, "r1")->stage, 0);
  const struct decision *d = last_decision(t, "r1");
  assert_action(d, DECISION_HOLD);
  assert_non_null(strstr(d->reason, "kill_switch (the cohort's kill switch is off"));
  apply(t, fixture_flag("k2", "r1", T0 + 90 * MIN_MS, "canary.cohort.internal_test.enabled", true));
  assert_int_equal(engine_find(&t->e, "r1")->stage, 1);
  assert_action(last_decision(t, "r1"), DECISION_ADVANCE);
}

/* ---- the metric engine on the built-in plan ------------------------------------------------ */

/* An engine on config/rollout.yaml (its metric criteria and halt rules), instead of the fixture:
 * as it is (on evidence), or as the seed's literal plan against a same-size control group (the
 * estimate semantics these tests were written for: exact windows and thresholds). */
static int setup_plan(void **state, bool estimate) {
  struct t *t = calloc(1, sizeof *t);
  struct config_error err;
  if (!t || config_load_default(&t->plan, &err) != CANARY_OK)
    return -1;
  if (estimate) {
    plan_as_estimate(&t->plan);
    t->plan.srm_control = true;
  }
  if (engine_init(&t->e, &t->plan) != CANARY_OK)
    return -1;
  *state = t;
  return 0;
}

static int setup_builtin(void **state) { return setup_plan(state, false); }

/* The built-in plan with a day's watch after GA and 1% held back. */
static int setup_watch(void **state) {
  if (setup_plan(state, false))
    return -1;
  struct t *t = *state;
  engine_destroy(&t->e);
  t->plan.watch_ms = 24 * HOUR_MS;
  t->plan.holdback_percent = 1;
  return engine_init(&t->e, &t->plan) == CANARY_OK ? 0 : -1;
}
/* The same watch without a holdback: after GA nothing is left to compare with but the
 * release's own history. */
static int setup_watch_own(void **state) {
  if (setup_watch(state))
    return -1;
  struct t *t = *state;
  engine_destroy(&t->e);
  t->plan.holdback_percent = 0;
  return engine_init(&t->e, &t->plan) == CANARY_OK ? 0 : -1;
}
static int setup_estimate(void **state) { return setup_plan(state, true); }

/* One 10 s interval of one variant: requests, errors. */
static void interval(struct t *t, const char *rollout, int64_t at, enum variant v, double requests,
                     double errors) {
  struct metric_value c[] = {{"requests", requests}, {"errors", errors}};
  struct event e = ev(t, EVENT_METRICS, rollout, at);
  snprintf(e.cohort, sizeof e.cohort, "internal_test");
  e.metrics.variant = v;
  e.metrics.interval_ms = 10000;
  e.metrics.counters = c;
  e.metrics.n_counters = 2;
  apply(t, e);
}

static const struct decision *find_action(const struct t *t, const char *rollout,
                                          enum decision_action action, const char *rule) {
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_DECISION && t->fx.items[i].u.decision.action == action &&
        !strcmp(t->fx.items[i].u.decision.rollout, rollout) &&
        (!rule || !strcmp(t->fx.items[i].u.decision.rule, rule)))
      return &t->fx.items[i].u.decision;
  return NULL;
}

static const struct decision *find_halt(const struct t *t, const char *rollout) {
  return find_action(t, rollout, DECISION_HALT, NULL);
}

/*
 * The error-rate rule (> 1% over 5 min, for 5 min): the canary at 3% against a clean baseline
 * halts exactly 5 minutes after the window first exceeds 1%, with canary, baseline, threshold,
 * window and sample count as evidence.
 */
static void test_error_rate_rule_halts_with_evidence(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  const int64_t bad = T0 + 10 * MIN_MS;
  int64_t at;
  for (at = T0 + 4 * MIN_MS; at < bad; at += 10000) { /* healthy: no errors */
    interval(t, "r1", at, VARIANT_CANARY, 1000, 0);
    interval(t, "r1", at, VARIANT_BASELINE, 1000, 0);
  }
  clear(t);
  for (; at <= T0 + 20 * MIN_MS; at += 10000) {
    run_until(t, at);
    interval(t, "r1", at, VARIANT_CANARY, 1000, 30); /* 3% */
    interval(t, "r1", at, VARIANT_BASELINE, 1000, 0);
  }
  const struct decision *d = find_halt(t, "r1");
  assert_non_null(d);
  assert_string_equal(d->rule, "error_rate");
  assert_int_equal(d->state, ROLLOUT_PAUSED);
  /* the 5-minute window holds ~30 intervals of 1,000 requests: it passes 1% with the 11th bad
   * interval (330 errors), at bad + 100 s, and the rule fires 5 minutes later */
  assert_int_equal(d->time_ms, bad + 100000 + 5 * MIN_MS);
  const struct evidence_item *x;
  assert_non_null(x = decision_evidence(d, "canary"));
  assert_true(x->num > 0.01 && x->num <= 0.03);
  assert_non_null(x = decision_evidence(d, "baseline"));
  assert_true(x->num == 0);
  assert_non_null(x = decision_evidence(d, "threshold"));
  assert_true(x->num == 0.01);
  assert_non_null(x = decision_evidence(d, "window_ms"));
  assert_int_equal(x->i, 5 * MIN_MS);
  assert_non_null(decision_evidence(d, "samples"));
}

/*
 * Low traffic at 0.5%: every request failing, but too few of them — no halt, and no pass. At
 * the stage's maximum the gate is not failed, only unmeasurable: the rollout holds there and
 * says so once, for people to decide (no data halts nothing).
 */
static void test_low_traffic_neither_halts_nor_passes(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event smoke = ev(t, EVENT_SMOKE_COMPLETED, "r1", T0 + 4 * MIN_MS);
  smoke.ok = true;
  apply(t, smoke);
  clear(t);
  for (int64_t at = T0 + 5 * MIN_MS; at <= T0 + 2 * HOUR_MS; at += MIN_MS) {
    run_until(t, at);
    interval(t, "r1", at, VARIANT_CANARY, 1, 1); /* one request a minute, failing */
    interval(t, "r1", at, VARIANT_BASELINE, 1, 0);
  }
  run_until(t, T0 + 3 * HOUR_MS);
  assert_null(find_halt(t, "r1"));
  const struct decision *d = find_action(t, "r1", DECISION_HOLD, "stage_max_duration");
  assert_non_null(d);
  assert_int_equal(d->time_ms, T0 + 3 * MIN_MS + 2 * HOUR_MS); /* 2 h after the start */
  /* error_rate is among the unmet criteria: its ratio has too few requests (insufficient) */
  assert_non_null(strstr(d->reason, "not yet proven"));
  assert_non_null(strstr(d->reason, "error_rate ("));
  const struct rollout *r = engine_find(&t->e, "r1");
  assert_int_equal(r->stage, 0);
  assert_int_equal(r->state, ROLLOUT_RUNNING);
  /* said once: another hour brings no second hold */
  size_t holds = 0;
  for (size_t i = 0; i < t->fx.n; i++)
    holds += t->fx.items[i].kind == EFFECT_DECISION &&
             !strcmp(t->fx.items[i].u.decision.rule, "stage_max_duration");
  assert_int_equal(holds, 1);
}

/* A minute of 200 latency values for one variant, 100-300 ms times scale, and its requests at
 * internal_test's 0.5% share (the built-in plan's baseline is the complement). */
static void latency_minute(struct t *t, int64_t at, enum variant v, double scale) {
  double vals[200];
  for (int i = 0; i < 200; i++)
    vals[i] = scale * (100 + (i % 10) * 20 + (i % 7));
  const struct metric_dist dists[] = {{"latency_ms", vals, 200}};
  const struct metric_value c[] = {{"requests", v == VARIANT_CANARY ? 1200 : 238800},
                                   {"errors", 0}};
  struct event e = ev(t, EVENT_METRICS, "r1", at);
  snprintf(e.cohort, sizeof e.cohort, "internal_test");
  e.metrics.variant = v;
  e.metrics.interval_ms = 60000;
  e.metrics.counters = c;
  e.metrics.n_counters = 2;
  e.metrics.dists = dists;
  e.metrics.n_dists = 1;
  apply(t, e);
}

/*
 * The seed's Alert Configuration runs: a canary six times slower than its baseline fires the
 * halt rule api_latency_p99 (pause) and the alert canary_latency_degradation (alert_oncall),
 * which pages on-call with the evidence, at the same evaluation. A healthy canary pages nobody.
 */
static void test_latency_alert_pages_oncall(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  clear(t);
  for (int64_t at = T0 + 4 * MIN_MS; at <= T0 + 40 * MIN_MS; at += MIN_MS) {
    run_until(t, at);
    latency_minute(t, at, VARIANT_CANARY, 1);
    latency_minute(t, at, VARIANT_BASELINE, 1);
  }
  for (size_t i = 0; i < t->fx.n; i++) /* healthy: no page, no halt */
    assert_false(t->fx.items[i].kind == EFFECT_NOTIFICATION &&
                 t->fx.items[i].u.notification.channel == NOTIFY_ONCALL);
  assert_null(find_halt(t, "r1"));
  int64_t bad = T0 + 41 * MIN_MS;
  for (int64_t at = bad; at <= bad + 40 * MIN_MS; at += MIN_MS) {
    run_until(t, at);
    latency_minute(t, at, VARIANT_CANARY, 6);
    latency_minute(t, at, VARIANT_BASELINE, 1);
  }
  const struct decision *d = find_halt(t, "r1");
  assert_non_null(d);
  assert_string_equal(d->rule, "api_latency_p99");
  const struct notification *page = NULL;
  for (size_t i = 0; i < t->fx.n && !page; i++)
    if (t->fx.items[i].kind == EFFECT_NOTIFICATION &&
        t->fx.items[i].u.notification.channel == NOTIFY_ONCALL &&
        !strcmp(t->fx.items[i].u.notification.title, "canary_latency_degradation"))
      page = &t->fx.items[i].u.notification;
  assert_non_null(page);
  assert_int_equal(page->time_ms, d->time_ms); /* the same evidence, the same evaluation */
  assert_non_null(strstr(page->text, "alert canary_latency_degradation"));
  assert_non_null(strstr(page->text, "evidence e = "));
  assert_true(d->time_ms >= bad + 10 * MIN_MS); /* for: 10m, and the proof within a minute */
  assert_true(d->time_ms <= bad + 11 * MIN_MS);
}

/* A minute of requests and errors of cohort ga, for one variant. */
static void ga_minute(struct t *t, int64_t at, enum variant v, double requests, double errors) {
  const struct metric_value c[] = {{"requests", requests}, {"errors", errors}};
  struct event e = ev(t, EVENT_METRICS, "r1", at);
  snprintf(e.cohort, sizeof e.cohort, "ga");
  e.metrics.variant = v;
  e.metrics.interval_ms = 60000;
  e.metrics.counters = c;
  e.metrics.n_counters = 2;
  apply(t, e);
}

static const struct notification *find_page(const struct t *t, const char *title) {
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_NOTIFICATION &&
        t->fx.items[i].u.notification.channel == NOTIFY_ONCALL &&
        !strcmp(t->fx.items[i].u.notification.title, title))
      return &t->fx.items[i].u.notification;
  return NULL;
}

static const struct traffic_split *last_split(const struct t *t) {
  const struct traffic_split *s = NULL;
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_TRAFFIC)
      s = &t->fx.items[i].u.traffic;
  return s;
}

/*
 * After GA the watch goes on: 1% stays on the old version (published in the split), the halt
 * rules keep running, and a breach pages on-call with the evidence and the rollback command —
 * the rollout stays completed, for people to decide. A day later the watch ends and the
 * holdback joins the release.
 */
static void test_watch_after_ga_pages_oncall(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  clear(t);
  struct event promote = fixture_command("cmd-ga", "r1", T0 + 10 * MIN_MS, COMMAND_PROMOTE, true);
  apply(t, promote);
  const struct rollout *r = engine_find(&t->e, "r1");
  assert_int_equal(r->state, ROLLOUT_COMPLETED);
  assert_true(r->watching);
  const struct traffic_split *split = last_split(t);
  assert_non_null(split);
  assert_true(split->exposure_percent == 99);
  assert_true(split->cohorts[split->n_cohorts - 1].percent == 99);
  const struct decision *d = last_decision(t, "r1");
  assert_non_null(
      strstr(d->reason, "ga at 99% of users (1% held back on 2.0.9) and watched for 24h"));
  assert_non_null(decision_evidence(d, "watch_until_ms"));
  assert_int_equal(engine_next_deadline(&t->e) <= T0 + 10 * MIN_MS + 24 * HOUR_MS, true);
  clear(t);
  /* healthy for an hour: nothing */
  int64_t at = T0 + 11 * MIN_MS;
  for (; at < T0 + 71 * MIN_MS; at += MIN_MS) {
    run_until(t, at);
    ga_minute(t, at, VARIANT_CANARY, 99000, 20);
    ga_minute(t, at, VARIANT_BASELINE, 1000, 0);
  }
  assert_int_equal(t->fx.n, 0);
  /* then 3% of requests fail on the release */
  int64_t bad = at;
  for (; at < bad + 30 * MIN_MS; at += MIN_MS) {
    run_until(t, at);
    ga_minute(t, at, VARIANT_CANARY, 99000, 2970);
    ga_minute(t, at, VARIANT_BASELINE, 1000, 0);
  }
  /* the comparison with the holdback proves it first (the absolute 1% counts the healthy hour
   * too, at first) */
  const struct notification *page = find_page(t, "error_excess");
  assert_non_null(page);
  assert_true(page->time_ms >= bad && page->time_ms <= bad + 5 * MIN_MS);
  assert_non_null(strstr(page->text, "after GA"));
  assert_non_null(strstr(page->text, "evidence e = "));
  assert_non_null(strstr(page->text, "canaryctl rollback r1"));
  assert_int_equal(r->state, ROLLOUT_COMPLETED); /* people decide */
  assert_null(find_halt(t, "r1"));
  /* the watch ends a day after GA: the split goes to 100% */
  clear(t);
  run_until(t, T0 + 10 * MIN_MS + 24 * HOUR_MS);
  assert_false(r->watching);
  split = last_split(t);
  assert_non_null(split);
  assert_true(split->exposure_percent == 100);
  assert_int_equal(engine_next_deadline(&t->e), ROLLOUT_NO_DEADLINE);
}

/* Healthy errors with some spread: 15 .. 25 a minute around 20 (0.02% of 100,000). */
static double healthy_errors(int64_t minute) { return 20 + (double)((minute * 7919) % 11) - 5; }

/*
 * The watch without a holdback: "errors above the baseline's" has no baseline at 100%, so it
 * becomes a change detector against the release's own history. A day of a healthy release
 * whose traffic swings by half (the rate stays) pages nobody; a rate that triples an hour in
 * pages on-call within the hour, saying what it compared with.
 */
static void test_watch_without_holdback_detects_a_change(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  apply(t, fixture_command("cmd-ga", "r1", T0 + 10 * MIN_MS, COMMAND_PROMOTE, true));
  const struct rollout *r = engine_find(&t->e, "r1");
  assert_true(r->watching);
  assert_true(last_split(t)->exposure_percent == 100);
  clear(t);
  int64_t at = T0 + 11 * MIN_MS, minute = 0;
  for (; at < T0 + 11 * MIN_MS + 20 * HOUR_MS; at += MIN_MS, minute++) {
    double swing = 1 + 0.5 * sin(2 * M_PI * (double)minute / (24 * 60));
    run_until(t, at);
    ga_minute(t, at, VARIANT_CANARY, 100000 * swing, healthy_errors(minute) * swing);
  }
  assert_null(find_page(t, "error_excess"));
  assert_int_equal(t->fx.n, 0);
  int64_t bad = at;
  for (; at < bad + 60 * MIN_MS; at += MIN_MS, minute++) {
    run_until(t, at);
    ga_minute(t, at, VARIANT_CANARY, 100000, 3 * healthy_errors(minute));
  }
  const struct notification *page = find_page(t, "error_excess");
  assert_non_null(page);
  assert_true(page->time_ms > bad && page->time_ms <= bad + 45 * MIN_MS);
  assert_non_null(strstr(page->text, "its own history"));
  assert_non_null(strstr(page->text, "canaryctl rollback r1"));
  assert_int_equal(r->state, ROLLOUT_COMPLETED);
}

static const struct rollout_reading *reading(const struct rollout *r, enum reading_kind kind,
                                             const char *name) {
  for (int i = 0; i < r->n_readings; i++)
    if (r->readings[i].kind == (int8_t)kind && !strcmp(r->readings[i].name, name))
      return &r->readings[i];
  return NULL;
}

/*
 * Data every second: the halt rules are read at their fast cadence (every 250 ms of event time
 * that brings canary data, so every second here), the criteria of the gates the rollout heads
 * for once per ROLLOUT_GATE_TRACK_MS.
 */
static void test_gates_are_watched_at_their_cadence(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  int64_t rule_prev = 0, gate_prev = 0;
  int rule_reads = 0, gate_reads = 0;
  for (int64_t at = T0 + 4 * MIN_MS; at <= T0 + 14 * MIN_MS; at += 1000) {
    run_until(t, at);
    interval(t, "r1", at, VARIANT_BASELINE, 100, 0);
    interval(t, "r1", at, VARIANT_CANARY, 100, 0);
    const struct rollout *r = engine_find(&t->e, "r1");
    const struct rollout_reading *rule = reading(r, READING_RULE, "error_rate");
    const struct rollout_reading *gate = reading(r, READING_EXIT, "error_rate");
    assert_non_null(rule);
    assert_non_null(gate);
    if (rule->at_ms != rule_prev) {
      rule_reads++;
      assert_true(rule->at_ms - rule_prev <= 1000 || !rule_prev);
      rule_prev = rule->at_ms;
    }
    if (gate->at_ms != gate_prev) {
      gate_reads++;
      if (gate_prev && gate->at_ms - gate_prev < ROLLOUT_GATE_TRACK_MS)
        fail_msg("criterion read again after %lld ms", (long long)(gate->at_ms - gate_prev));
      gate_prev = gate->at_ms;
    }
  }
  assert_int_equal(rule_reads, 601);
  assert_in_range(gate_reads, 55, 61); /* ten minutes, every ten seconds */
}

/*
 * A rollout held at its exit gate past the stage's minimum (no smoke test yet) with a report
 * every 100 ms: the gate is asked again with each metric evaluation (every 250 ms of event
 * time), not at every report — its metric criterion's reading shows when it was last read.
 */
static void test_held_gate_is_asked_at_the_evaluation_cadence(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  const int64_t held = T0 + 3 * MIN_MS + HOUR_MS; /* the minimum of internal_test */
  int64_t prev = 0;
  int reads = 0;
  for (int64_t at = held - 10000; at <= held + 20000; at += 100) {
    run_until(t, at);
    interval(t, "r1", at, at % 200 ? VARIANT_BASELINE : VARIANT_CANARY, 100, 0);
    const struct rollout_reading *gate =
        reading(engine_find(&t->e, "r1"), READING_EXIT, "error_rate");
    if (at < held || !gate || gate->at_ms == prev)
      continue;
    if (prev >= held && gate->at_ms - prev < ROLLOUT_METRICS_EVAL_MS)
      fail_msg("the gate was asked again after %lld ms", (long long)(gate->at_ms - prev));
    prev = gate->at_ms;
    reads++;
  }
  assert_int_equal(engine_find(&t->e, "r1")->stage, 0); /* held: smoke_passed is unmet */
  assert_in_range(reads, 60, 82);                       /* 20 s at 4 a second, not 200 */
}

/* ---- the built-in plan on evidence --------------------------------------------------------- */

/* One minute of a 0.5% cohort against everyone else: the canary's requests and errors, and the
 * baseline's (complement: 199 times the canary's traffic). */
static void minute(struct t *t, const char *rollout, int64_t at, double canary_requests,
                   double canary_errors, double baseline_errors) {
  interval(t, rollout, at, VARIANT_BASELINE, canary_requests * 199, baseline_errors);
  interval(t, rollout, at, VARIANT_CANARY, canary_requests, canary_errors);
}

static const struct evidence_item *item(const struct decision *d, const char *key) {
  const struct evidence_item *x = decision_evidence(d, key);
  if (!x)
    fail_msg("decision %s lacks evidence '%s'", d->rule, key);
  return x;
}

/*
 * A canary 3x worse than its baseline at 0.5% halts on the comparison with the baseline long
 * before the absolute 1% is in reach, within a few dozen canary errors, with what it rested on
 * as evidence: the counts of both variants, the estimate, the e-value and the level it cleared.
 */
static void test_evidence_halts_a_worse_canary_on_its_counts(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  int64_t at = T0 + 4 * MIN_MS;
  double canary_errors = 0;
  /* 1,000 canary requests a minute: the baseline at 0.1% errors, the canary at 0.3% */
  for (int m = 0; m < 120 && !find_halt(t, "r1"); m++, at += MIN_MS) {
    run_until(t, at);
    double ce = m % 3 == 0 ? 4 : m % 3 == 1 ? 3 : 2; /* 3 a minute */
    canary_errors += ce;
    minute(t, "r1", at, 1000, ce, 199);
  }
  const struct decision *d = find_halt(t, "r1");
  assert_non_null(d);
  assert_string_equal(d->rule, "error_excess");
  assert_in_range((int64_t)canary_errors, 10, 60);
  assert_true(item(d, "estimate")->num > 2 && item(d, "estimate")->num < 4); /* the rate ratio */
  assert_true(item(d, "e_value")->num >= 1 / item(d, "alpha")->num);
  assert_true(item(d, "alpha")->num < 0.01); /* a share of the plan's 1% budget */
  assert_true(item(d, "baseline_count")->num > 0);
  assert_non_null(strstr(d->reason, "evidence e = "));
  /* the explanation whole, as the reason has it (it was cut at 160 bytes, a number in half) */
  const char *x = item(d, "expression")->str;
  size_t n = strlen(x);
  assert_true(n > 160);
  assert_string_equal(x + n - 6, ": true");
  assert_non_null(strstr(d->reason, x));
}

/*
 * An outage on both variants (3% errors everywhere) is not the release's doing: the comparison
 * with the baseline never fires, while the absolute rule (> 1% for 5 minutes) does, once its
 * evidence has held for its for:.
 */
static void test_evidence_outage_on_both_halts_only_the_absolute_rule(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  int64_t at = T0 + 4 * MIN_MS;
  for (int m = 0; m < 60 && !find_halt(t, "r1"); m++, at += MIN_MS) {
    run_until(t, at);
    minute(t, "r1", at, 1000, 30, 30 * 199);
  }
  const struct decision *d = find_halt(t, "r1");
  assert_non_null(d);
  assert_string_equal(d->rule, "error_rate");
  assert_true(item(d, "estimate")->num == 0.03);
  assert_true(item(d, "bound")->num > 0.01);               /* the lower bound cleared the limit */
  assert_true(d->time_ms >= T0 + 4 * MIN_MS + 5 * MIN_MS); /* its for: 5m on top */
}

/*
 * A handful of failures is not evidence: 1 error in the canary's first 50 requests (2% > 1%)
 * halts nothing — the estimate would have (test_low_traffic_neither_halts_nor_passes has the
 * estimate's own minimum). And a clean canary passes its exit gate ("error rate < 0.1%") only
 * once its requests prove it, not on a ratio of 0 in 100.
 */
static void test_evidence_is_not_fooled_by_a_few_requests(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event smoke = ev(t, EVENT_SMOKE_COMPLETED, "r1", T0 + 3 * MIN_MS);
  smoke.ok = true;
  smoke.passed = 5;
  apply(t, smoke);
  int64_t at = T0 + 4 * MIN_MS;
  run_until(t, at);
  minute(t, "r1", at, 50, 1, 20);
  for (at += MIN_MS; at < T0 + 3 * MIN_MS + HOUR_MS; at += MIN_MS) {
    run_until(t, at);
    minute(t, "r1", at, 50, 0, 2);
  }
  assert_null(find_halt(t, "r1"));
  /* ~2,900 canary requests with one error by the stage's minimum: not proven under 0.1% */
  run_until(t, T0 + 3 * MIN_MS + HOUR_MS + 1);
  assert_int_equal(engine_find(&t->e, "r1")->stage, 0);
  for (; engine_find(&t->e, "r1")->stage == 0 && at < T0 + 2 * HOUR_MS; at += MIN_MS) {
    run_until(t, at);
    minute(t, "r1", at, 1000, 0, 40);
  }
  assert_int_equal(engine_find(&t->e, "r1")->stage, 1); /* proven, and promoted */
  assert_null(find_halt(t, "r1"));
}

/*
 * A restart decides as an uninterrupted run would: the evidence's counts (totals since each
 * cohort began, their slices' snapshots, the values above the quantile lines, the dispersion
 * steps) are a function of the metric events in order, so an engine that restores the rollout
 * and replays the metric events (engine_replay_metrics, as the worker does from the metrics
 * partition) reads every rule's e-value back bit for bit.
 */
static void test_evidence_survives_restart(void **state) {
  struct t *t = *state;
  /* a learned dispersion: the restored rollout must take it up again, not assume bursts */
  t->plan.dispersion[t->plan.n_dispersion++] = (struct plan_dispersion){"errors", "", 1.4, 1e5};
  start(t, "r1", T0);
  static struct event metrics[400];
  static struct metric_value counters[400][4];
  static double lcp[400][5];
  static struct metric_dist dists[400];
  int n = 0;
  for (int64_t at = T0 + 4 * MIN_MS; at < T0 + 3 * HOUR_MS && n + 2 <= 400; at += MIN_MS) {
    run_until(t, at);
    for (int v = 0; v < 2; v++, n++) {
      bool canary = v == 1;
      double req = canary ? 1000 : 199000;
      counters[n][0] = (struct metric_value){"requests", req};
      counters[n][1] =
          (struct metric_value){"errors", canary ? (double)(n % 7 == 1) * 3 : 40 + n % 5};
      counters[n][2] = (struct metric_value){"transactions", req / 10};
      counters[n][3] = (struct metric_value){"transactions_failed", (double)(n % 11 == 0)};
      for (int k = 0; k < 5; k++)
        lcp[n][k] = 1200 + 700 * k + (canary ? 150 : 0) + n % 13;
      dists[n] = (struct metric_dist){"webvitals_lcp_ms", lcp[n], 5};
      struct event e = ev(t, EVENT_METRICS, "r1", at);
      snprintf(e.cohort, sizeof e.cohort, "%s",
               t->plan.stages[engine_find(&t->e, "r1")->stage].name);
      e.metrics.variant = canary ? VARIANT_CANARY : VARIANT_BASELINE;
      e.metrics.interval_ms = MIN_MS;
      e.metrics.counters = counters[n];
      e.metrics.n_counters = 4;
      e.metrics.dists = &dists[n];
      e.metrics.n_dists = 1;
      metrics[n] = e;
      apply(t, e);
    }
  }
  const struct rollout *r = engine_find(&t->e, "r1");
  int cohort = r->stage;
  int64_t now = r->clock_ms;
  struct engine b;
  assert_int_equal(engine_init(&b, &t->plan), CANARY_OK);
  assert_int_equal(engine_restore(&b, r), CANARY_OK);
  for (int i = 0; i < n; i++)
    assert_int_equal(engine_replay_metrics(&b, &metrics[i]), CANARY_OK);
  struct rollout_metrics *ma = engine_metrics(&t->e, "r1"), *mb = engine_metrics(&b, "r1");
  double phi = mstore_dispersion(&ma->ms, cohort, "errors", "requests");
  assert_true(phi > 1.39 && phi < 1.45); /* the learned 1.4 (these reports alone say 1) */
  assert_true(mstore_dispersion(&mb->ms, cohort, "errors", "requests") == phi);
  int evidence_rules = 0;
  for (int i = 0; i < t->plan.n_rules; i++) {
    struct expr_for sa[PLAN_MAX_EXPRS] = {0}, sb[PLAN_MAX_EXPRS] = {0};
    struct mstore_verdict va, vb;
    int ra = mstore_eval_rule_values(&ma->ms, &t->e.mp, MSTORE_RULE, -1, i, cohort, now, sa, &va);
    int rb = mstore_eval_rule_values(&mb->ms, &b.mp, MSTORE_RULE, -1, i, cohort, now, sb, &vb);
    assert_int_equal(ra, rb);
    if (ra != CANARY_OK)
      continue;
    for (int k = 0; k < va.n; k++) {
      assert_int_equal(va.f[k].truth, vb.f[k].truth);
      assert_int_equal(va.f[k].evidence, vb.f[k].evidence);
      if (!va.f[k].evidence || va.f[k].truth == EXPR_INSUFFICIENT)
        continue;
      evidence_rules++;
      if (memcmp(&va.f[k].log_e, &vb.f[k].log_e, sizeof(double)))
        fail_msg("rule %s: e-value %.17g before the restart, %.17g after", t->plan.rules[i].name,
                 va.f[k].log_e, vb.f[k].log_e);
    }
  }
  assert_true(evidence_rules >= 5); /* errors (both), transactions (both), LCP, the split... */
  engine_destroy(&b);
}

/*
 * A kill switch holds the canary at 0%: its reports say 0 requests while everyone else's go on.
 * That is the switch working, not a broken split: no unhealthy_split halt, however long it is
 * held (the split check counts every request of the stage, so it would otherwise prove the
 * canary's share far under 0.5% within minutes); switched on again, the split is counted from
 * then on — and a broken one still halts.
 */
static void test_evidence_split_waits_while_switched_off(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct event off = ev(t, EVENT_FLAG_SET, "r1", T0 + 4 * MIN_MS);
  snprintf(off.flag, sizeof off.flag, "canary.cohort.internal_test.enabled");
  off.value = false;
  apply(t, off);
  assert_true(engine_find(&t->e, "r1")->exposure_percent == 0);
  int64_t at = T0 + 5 * MIN_MS;
  for (; at < T0 + 35 * MIN_MS; at += MIN_MS) {
    run_until(t, at);
    interval(t, "r1", at, VARIANT_BASELINE, 199000, 40);
    interval(t, "r1", at, VARIANT_CANARY, 0, 0);
  }
  assert_null(find_halt(t, "r1"));
  /* switched on again: the half hour at 0% is another split, not a share of this one */
  struct event on = ev(t, EVENT_FLAG_SET, "r1", at);
  snprintf(on.flag, sizeof on.flag, "canary.cohort.internal_test.enabled");
  on.value = true;
  apply(t, on);
  assert_true(engine_find(&t->e, "r1")->exposure_percent == 0.5);
  int64_t on_at = at;
  for (at += MIN_MS; at < on_at + 45 * MIN_MS; at += MIN_MS) {
    run_until(t, at);
    interval(t, "r1", at, VARIANT_BASELINE, 199000, 40);
    interval(t, "r1", at, VARIANT_CANARY, 1000, 0);
  }
  if (find_halt(t, "r1"))
    fail_msg("halted: %s", find_halt(t, "r1")->reason);
  /* and a split that is broken after it still halts: the canary at 0.25% */
  for (; at < on_at + 75 * MIN_MS && !find_halt(t, "r1"); at += MIN_MS) {
    run_until(t, at);
    interval(t, "r1", at, VARIANT_BASELINE, 199000, 40);
    interval(t, "r1", at, VARIANT_CANARY, 500, 0);
  }
  const struct decision *d = find_halt(t, "r1");
  assert_non_null(d);
  assert_string_equal(d->rule, "unhealthy_split");
}

/* ---- deadlines across rollouts ------------------------------------------------------------- */

static void test_tick_fires_due_rollouts_only(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);               /* internal_test from T0 + 3 min */
  start(t, "r2", T0 + 30 * MIN_MS); /* internal_test from T0 + 33 min */
  struct event s = ev(t, EVENT_SMOKE_COMPLETED, "r1", T0 + 40 * MIN_MS);
  s.ok = true;
  s.passed = 10;
  apply(t, s);
  s = ev(t, EVENT_SMOKE_COMPLETED, "r2", T0 + 40 * MIN_MS);
  s.ok = true;
  s.passed = 10;
  apply(t, s);
  const int64_t min1 = T0 + 3 * MIN_MS + HOUR_MS, min2 = T0 + 33 * MIN_MS + HOUR_MS;
  assert_int_equal(engine_next_deadline(&t->e), min1);

  clear(t);
  tick(t, min1 - 1);
  assert_int_equal(t->fx.n, 0);
  tick(t, min1);
  assert_int_equal(engine_find(&t->e, "r1")->stage, 1);
  assert_int_equal(engine_find(&t->e, "r2")->stage, 0);
  assert_int_equal(n_for(t, "r2"), 0);
  const struct decision *d = last_decision(t, "r1");
  assert_action(d, DECISION_ADVANCE);
  assert_int_equal(d->time_ms, min1);
  assert_int_equal(engine_next_deadline(&t->e), min2);

  clear(t);
  tick(t, min2);
  assert_int_equal(engine_find(&t->e, "r2")->stage, 1);
  assert_int_equal(last_decision(t, "r2")->time_ms, min2);
  assert_int_equal(engine_next_deadline(&t->e), min1 + 24 * HOUR_MS);
}

static void test_no_rollouts_no_deadline(void **state) {
  struct t *t = *state;
  assert_int_equal(engine_next_deadline(&t->e), ROLLOUT_NO_DEADLINE);
  tick(t, T0);
  assert_int_equal(t->fx.n, 0);
  request(t, "r1", T0);
  assert_int_equal(engine_next_deadline(&t->e), ROLLOUT_NO_DEADLINE); /* pending, no windows */
}

static void test_restore(void **state) {
  struct t *t = *state;
  start(t, "r1", T0);
  struct rollout copy = *engine_find(&t->e, "r1");
  assert_int_equal(engine_restore(&t->e, &copy), CANARY_EEXISTS);
  snprintf(copy.id, sizeof copy.id, "r9");
  assert_int_equal(engine_restore(&t->e, &copy), CANARY_OK);
  assert_int_equal(t->e.n_rollouts, 2);
  assert_int_equal(engine_find(&t->e, "r9")->state, ROLLOUT_RUNNING);
  /* a restored rollout has its deadlines and takes events */
  assert_int_equal(engine_next_deadline(&t->e), T0 + 3 * MIN_MS + HOUR_MS);
  command(t, "r9", T0 + 10 * MIN_MS, COMMAND_PAUSE, false);
  assert_int_equal(engine_find(&t->e, "r9")->state, ROLLOUT_PAUSED);
  assert_int_equal(engine_find(&t->e, "r1")->state, ROLLOUT_RUNNING);
}

/* ---- a whole rollout ----------------------------------------------------------------------- */

/* A realistic rollout of web 2.1.0, with noise, as a worker would feed it. */
static void happy_path(struct t *t, bool noise) {
  struct event e;
#define AT(ms) (run_until(t, (ms)), (ms))
  apply(t, fixture_requested("req", "r1", AT(T0)));
  fact(t, EVENT_CI_COMPLETED, "r1", AT(T0 + 5 * MIN_MS), true);
  fact(t, EVENT_DEPLOY_COMPLETED, "r1", AT(T0 + 12 * MIN_MS), true);
  if (noise)
    fact(t, EVENT_HEALTH_CHECKED, "r1", AT(T0 + 13 * MIN_MS), false);
  fact(t, EVENT_HEALTH_CHECKED, "r1", AT(T0 + 14 * MIN_MS), true); /* start */
  e = ev(t, EVENT_SMOKE_COMPLETED, "r1", AT(T0 + 30 * MIN_MS));
  e.ok = true;
  e.passed = 42;
  apply(t, e);
  if (noise) {
    request(t, "other", AT(T0 + 40 * MIN_MS));
    const struct metric_value c[] = {{"requests", 900}, {"errors", 1}};
    e = ev(t, EVENT_METRICS, "r1", AT(T0 + 50 * MIN_MS));
    snprintf(e.cohort, sizeof e.cohort, "internal_test");
    e.metrics.interval_ms = 60000;
    e.metrics.counters = c;
    e.metrics.n_counters = 2;
    apply(t, e);
    struct event bad = ev(t, EVENT_CRASH_REPORTED, "r1", AT(T0 + 55 * MIN_MS));
    snprintf(bad.cohort, sizeof bad.cohort, "nowhere");
    bad.count = 1;
    assert_int_equal(submit(t, &bad), APPLY_REJECTED);
    apply(t, fixture_flag("k1", "r1", AT(T0 + 2 * HOUR_MS), "canary.cohort.beta.enabled", false));
    apply(t, fixture_flag("k2", "r1", AT(T0 + 3 * HOUR_MS), "canary.cohort.beta.enabled", true));
  }
  e = ev(t, EVENT_FEEDBACK_RECEIVED, "r1", AT(T0 + 6 * HOUR_MS));
  snprintf(e.cohort, sizeof e.cohort, "friendly_gp");
  e.sentiment = SENTIMENT_POSITIVE;
  apply(t, e);
  e.time_ms = AT(T0 + 20 * HOUR_MS);
  snprintf(e.id, sizeof e.id, "fb-2");
  apply(t, e);
  if (noise) {
    e = ev(t, EVENT_INCIDENT_OPENED, "r1", AT(T0 + 22 * HOUR_MS));
    snprintf(e.incident, sizeof e.incident, "INC-3");
    e.severity = 3;
    apply(t, e);
  }
  fact(t, EVENT_HEALTH_CHECKED, "r1", AT(T0 + 30 * HOUR_MS), true);
  static const enum approval_role roles[] = {APPROVAL_PRODUCT_OWNER, APPROVAL_SUPPORT,
                                             APPROVAL_DOCS};
  for (int i = 0; i < 3; i++) {
    e = ev(t, EVENT_APPROVAL_GRANTED, "r1", AT(T0 + (50 + 10 * i) * HOUR_MS));
    e.role = roles[i];
    snprintf(e.actor, sizeof e.actor, "approver%d", i);
    apply(t, e);
  }
  run_until(t, T0 + 30 * 24 * HOUR_MS);
#undef AT
}

/* The state changes seen in the decisions of t->fx: prev[] holds each rollout's last state. */
struct walk {
  char rollout[16][EVENT_NAME_MAX];
  enum rollout_state prev[16];
  int n;
  bool seen[ROLLOUT_STATE_COUNT][ROLLOUT_STATE_COUNT];
};

static void walk_collect(struct t *t, struct walk *w) {
  for (size_t i = 0; i < t->fx.n; i++) {
    if (t->fx.items[i].kind != EFFECT_DECISION)
      continue;
    const struct decision *d = &t->fx.items[i].u.decision;
    int k = 0;
    while (k < w->n && strcmp(w->rollout[k], d->rollout))
      k++;
    if (k == w->n) { /* its first decision: created pending */
      assert_true(w->n < 16);
      snprintf(w->rollout[w->n++], EVENT_NAME_MAX, "%s", d->rollout);
      w->prev[k] = ROLLOUT_PENDING;
    }
    bool moved = d->state != w->prev[k] ||
                 (d->state == ROLLOUT_RUNNING &&
                  (d->action == DECISION_ADVANCE || d->action == DECISION_PROMOTE));
    if (moved)
      w->seen[w->prev[k]][d->state] = true;
    w->prev[k] = d->state;
  }
  clear(t);
}

/*
 * The state diagram is one table (rollout_transition_allowed), and every state change goes
 * through it. Walk it: drive rollouts through every arrow with events and commands, and check
 * that the arrows taken are exactly the table's — none outside it (the engine would have failed
 * the event), none in it that no input can take.
 */
static void test_state_diagram_walk(void **state) {
  struct t *t = *state;
  struct walk w = {.n = 0};
  happy_path(t, false); /* pending -> running -> running (next stage) ... -> completed */
  command(t, "r1", T0 + 31 * 24 * HOUR_MS, COMMAND_ROLLBACK, false); /* completed -> back */
  walk_collect(t, &w);
  int64_t at = T0 + 32 * 24 * HOUR_MS;
  request(t, "p1", at); /* gates unmet: pending */
  command(t, "p1", at + 1, COMMAND_PAUSE, false);
  command(t, "p1", at + 2, COMMAND_RESUME, false);   /* paused -> pending */
  command(t, "p1", at + 3, COMMAND_ROLLBACK, false); /* pending -> rolled_back */
  request(t, "p2", at);
  command(t, "p2", at + 1, COMMAND_PROMOTE, true); /* pending -> completed */
  request(t, "p3", at);
  command(t, "p3", at + 1, COMMAND_PAUSE, false);
  command(t, "p3", at + 2, COMMAND_PROMOTE, true); /* paused -> completed */
  start(t, "s1", at);
  command(t, "s1", at + 4 * MIN_MS, COMMAND_PAUSE, false);
  command(t, "s1", at + 5 * MIN_MS, COMMAND_RESUME, false);  /* paused -> running */
  command(t, "s1", at + 6 * MIN_MS, COMMAND_PROMOTE, false); /* running -> running */
  command(t, "s1", at + 7 * MIN_MS, COMMAND_PROMOTE, true);  /* running -> completed */
  start(t, "s2", at);
  command(t, "s2", at + 4 * MIN_MS, COMMAND_ROLLBACK, false); /* running -> rolled_back */
  start(t, "s3", at);
  command(t, "s3", at + 4 * MIN_MS, COMMAND_PAUSE, false);
  command(t, "s3", at + 5 * MIN_MS, COMMAND_ROLLBACK, false); /* paused -> rolled_back */
  /* running -> pending: internal_test's exit gate passes while a Sev 2 incident is open
   * (friendly_gp's entry gate waits), then pending -> running once it is resolved */
  start(t, "s4", at);
  struct event smoke = ev(t, EVENT_SMOKE_COMPLETED, "s4", at + 30 * MIN_MS);
  smoke.ok = true;
  smoke.passed = 42;
  apply(t, smoke);
  struct event inc = ev(t, EVENT_INCIDENT_OPENED, "s4", at + 31 * MIN_MS);
  snprintf(inc.incident, sizeof inc.incident, "INC-9");
  inc.severity = 2;
  apply(t, inc);
  run_until(t, at + 3 * HOUR_MS);
  assert_int_equal(engine_find(&t->e, "s4")->state, ROLLOUT_PENDING);
  inc = ev(t, EVENT_INCIDENT_RESOLVED, "s4", at + 3 * HOUR_MS);
  snprintf(inc.incident, sizeof inc.incident, "INC-9");
  apply(t, inc);
  walk_collect(t, &w);
  for (int from = 0; from < ROLLOUT_STATE_COUNT; from++)
    for (int to = 0; to < ROLLOUT_STATE_COUNT; to++)
      if (w.seen[from][to] != rollout_transition_allowed(from, to))
        fail_msg("%s -> %s: %s", rollout_state_name(from), rollout_state_name(to),
                 w.seen[from][to] ? "taken, but not in the table" : "in the table, never taken");
  assert_false(rollout_transition_allowed(ROLLOUT_ROLLED_BACK, ROLLOUT_RUNNING));
  assert_false(rollout_transition_allowed(ROLLOUT_COMPLETED, ROLLOUT_RUNNING));
  assert_false(rollout_transition_allowed(ROLLOUT_STATE_COUNT, ROLLOUT_PENDING));
}

/*
 * Observed, and what a release engineer expects: hold at the request (nothing known yet), start
 * when health turns green (T0 + 14 min), advance to friendly_gp at internal_test's 1 h minimum,
 * advance to beta at friendly_gp's 24 h minimum (feedback already in), complete at beta's 48 h
 * minimum (approvals already in). Every decision is stamped with the time that caused it.
 */
static void test_happy_path(void **state) {
  struct t *t = *state;
  happy_path(t, false);
  static const struct {
    enum decision_action action;
    const char *to;
    int64_t at;
  } want[] = {
      {DECISION_HOLD, "internal_test", T0},
      {DECISION_START, "internal_test", T0 + 14 * MIN_MS},
      {DECISION_ADVANCE, "friendly_gp", T0 + 74 * MIN_MS},
      {DECISION_ADVANCE, "beta", T0 + 74 * MIN_MS + 24 * HOUR_MS},
      {DECISION_COMPLETE, "ga", T0 + 74 * MIN_MS + 72 * HOUR_MS},
  };
  size_t k = 0;
  for (size_t i = 0; i < t->fx.n; i++) {
    if (t->fx.items[i].kind != EFFECT_DECISION)
      continue;
    const struct decision *d = &t->fx.items[i].u.decision;
    if (k >= sizeof want / sizeof want[0])
      fail_msg("unexpected decision %s: %s", decision_action_name(d->action), d->reason);
    if (d->action != want[k].action || strcmp(d->to_stage, want[k].to) || d->time_ms != want[k].at)
      fail_msg("decision %zu: %s to %s at T0%+.1f h; want %s to %s at T0%+.1f h", k,
               decision_action_name(d->action), d->to_stage, (d->time_ms - T0) / 3600e3,
               decision_action_name(want[k].action), want[k].to, (want[k].at - T0) / 3600e3);
    k++;
  }
  assert_int_equal(k, sizeof want / sizeof want[0]);
  const struct rollout *r = engine_find(&t->e, "r1");
  assert_int_equal(r->state, ROLLOUT_COMPLETED);
  assert_int_equal(r->stage, 3);
  assert_true(exposure(t, "r1") == 100);
  assert_int_equal(engine_next_deadline(&t->e), ROLLOUT_NO_DEADLINE);

  /* traffic follows the stages: 0 -> 0.5 -> 5 -> 25 -> 100 */
  static const double shares[] = {0, 0.5, 5, 25, 100};
  size_t n = 0;
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_TRAFFIC) {
      assert_true(n < 5);
      assert_true(t->fx.items[i].u.traffic.exposure_percent == shares[n]);
      n++;
    }
  assert_int_equal(n, 5);

  /* #releases hears of every stage, with each stage's checklist item */
  static const char *const titles[] = {"Notify pilot partners", "Send beta announcement",
                                       "Send success announcement"};
  for (size_t j = 0; j < 3; j++) {
    bool seen = false;
    for (size_t i = 0; i < t->fx.n; i++)
      seen = seen || (t->fx.items[i].kind == EFFECT_NOTIFICATION &&
                      strcmp(t->fx.items[i].u.notification.title, titles[j]) == 0);
    if (!seen)
      fail_msg("no '%s' notification", titles[j]);
  }
}

/* Decision ids are "<rollout>/<seq>" with seq 1, 2, 3... and no gaps, even with noise. */
static void test_decision_ids_are_contiguous(void **state) {
  struct t *t = *state;
  happy_path(t, true);
  int64_t seq = 0, notes = 0, splits = 0;
  for (size_t i = 0; i < t->fx.n; i++) {
    const struct effect *x = &t->fx.items[i];
    char want[64];
    if (x->kind == EFFECT_DECISION && strcmp(x->u.decision.rollout, "r1") == 0) {
      seq++;
      assert_int_equal(x->u.decision.seq, seq);
      snprintf(want, sizeof want, "r1/%lld", (long long)seq);
      assert_string_equal(x->u.decision.id, want);
    } else if (x->kind == EFFECT_NOTIFICATION && strcmp(x->u.notification.rollout, "r1") == 0) {
      snprintf(want, sizeof want, "r1/n%lld", (long long)++notes);
      assert_string_equal(x->u.notification.id, want);
    } else if (x->kind == EFFECT_TRAFFIC && strcmp(x->u.traffic.rollout, "r1") == 0) {
      snprintf(want, sizeof want, "r1/f%lld", (long long)++splits);
      assert_string_equal(x->u.traffic.id, want);
    }
  }
  assert_true(seq >= 7); /* 5 of the happy path, 2 kill switch decisions */
  assert_int_equal(engine_find(&t->e, "r1")->seq, seq);
  assert_int_equal(engine_find(&t->e, "r1")->state, ROLLOUT_COMPLETED);
}

/* The same events give the same effects, byte for byte. */
static void test_determinism(void **state) {
  struct t *a = *state;
  struct t *b = calloc(1, sizeof *b);
  assert_non_null(b);
  fixture_plan(&b->plan);
  assert_int_equal(engine_init(&b->e, &b->plan), CANARY_OK);
  happy_path(a, true);
  happy_path(b, true);
  assert_true(a->fx.n > 20);
  assert_int_equal(a->fx.n, b->fx.n);
  for (size_t i = 0; i < a->fx.n; i++)
    if (memcmp(&a->fx.items[i], &b->fx.items[i], sizeof a->fx.items[i]) != 0)
      fail_msg("effect %zu differs", i);
  assert_memory_equal(engine_find(&a->e, "r1"), engine_find(&b->e, "r1"), sizeof(struct rollout));
  engine_destroy(&b->e);
  effects_free(&b->fx);
  free(b);
}

/* Many rollouts: the engine grows its table and finds each one. */
static void test_many_rollouts(void **state) {
  struct t *t = *state;
  for (int i = 0; i < 100; i++) {
    char id[16];
    snprintf(id, sizeof id, "r%d", i);
    start(t, id, T0 + i * MIN_MS);
  }
  assert_int_equal(t->e.n_rollouts, 100);
  for (int i = 0; i < 100; i++) {
    char id[16];
    snprintf(id, sizeof id, "r%d", i);
    assert_string_equal(engine_find(&t->e, id)->id, id);
  }
  assert_int_equal(engine_next_deadline(&t->e), T0 + 3 * MIN_MS + HOUR_MS);
  clear(t);
  tick(t, T0 + 99 * MIN_MS + 3 * MIN_MS + HOUR_MS); /* the last one's minimum */
  /* none has smoke results: r0..r39 are past their 2 h maximum too and halt, the rest hold */
  size_t holds = 0, halts = 0;
  for (size_t i = 0; i < t->fx.n; i++)
    if (t->fx.items[i].kind == EFFECT_DECISION) {
      holds += t->fx.items[i].u.decision.action == DECISION_HOLD;
      halts += t->fx.items[i].u.decision.action == DECISION_HALT;
    }
  assert_int_equal(holds, 60);
  assert_int_equal(halts, 40);
  assert_int_equal(engine_find(&t->e, "r39")->state, ROLLOUT_PAUSED);
  assert_int_equal(engine_find(&t->e, "r40")->state, ROLLOUT_RUNNING);
}

/* One service, one live rollout: a second request for a service with a live rollout is
 * refused with a reason that names it, changes nothing, and is taken once the first ended. */
static void test_one_live_rollout_per_service(void **state) {
  struct t *t = *state;
  start(t, "r1", T0); /* service web */
  clear(t);
  struct event second = fixture_requested("req-web-2", "web-2.2.0", T0 + 10 * MIN_MS);
  enum apply_outcome out;
  char why[512];
  assert_false(engine_admit(&t->e, &second, true, &out, why, sizeof why));
  assert_int_equal(out, APPLY_REJECTED);
  assert_non_null(strstr(why, "service: 'web' already has a live rollout, 'r1'"));
  assert_non_null(strstr(why, "canaryctl rollback r1"));
  assert_int_equal(submit(t, &second), APPLY_REJECTED);
  assert_non_null(strstr(t->why, "'r1' (web 2.1.0, running at internal_test)"));
  assert_int_equal(t->e.n_rollouts, 1);
  assert_int_equal(t->fx.n, 0);
  assert_non_null(engine_live_of_service(&t->e, "web"));
  assert_null(engine_live_of_service(&t->e, "api"));
  /* another service is no concern of web's */
  struct event api = fixture_requested("req-api", "api-1", T0 + 11 * MIN_MS);
  snprintf(api.service, sizeof api.service, "api");
  apply(t, api);
  /* r1 rolled back: web has no live rollout, and the request (a new id) is taken */
  apply(t, fixture_command("rb", "r1", T0 + 12 * MIN_MS, COMMAND_ROLLBACK, false));
  assert_null(engine_live_of_service(&t->e, "web"));
  struct event again = fixture_requested("req-web-2b", "web-2.2.0", T0 + 13 * MIN_MS);
  apply(t, again);
  assert_string_equal(engine_live_of_service(&t->e, "web")->id, "web-2.2.0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_requested_creates_a_rollout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_id_is_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reused_id_is_a_conflict, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_digest_is_a_duplicate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ids_are_kept_one_epoch_more, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rejected_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrected_event_reuses_rejected_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rejected_command_is_applied_and_remembered, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_metrics_accepted_and_decide_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_global_flag_applies_to_every_live_rollout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_long_reason_ends_at_a_word, setup, teardown),
      cmocka_unit_test_setup_teardown(test_global_cohort_flag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_global_flag_leaves_completed_rollouts_alone, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_no_expansion_while_globally_off, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cohort_switched_off_holds_at_minimum, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tick_fires_due_rollouts_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_rate_rule_halts_with_evidence, setup_estimate,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_gates_are_watched_at_their_cadence, setup_estimate,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_held_gate_is_asked_at_the_evaluation_cadence,
                                      setup_estimate, teardown),
      cmocka_unit_test_setup_teardown(test_evidence_halts_a_worse_canary_on_its_counts,
                                      setup_builtin, teardown),
      cmocka_unit_test_setup_teardown(test_evidence_outage_on_both_halts_only_the_absolute_rule,
                                      setup_builtin, teardown),
      cmocka_unit_test_setup_teardown(test_evidence_is_not_fooled_by_a_few_requests, setup_builtin,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_evidence_survives_restart, setup_builtin, teardown),
      cmocka_unit_test_setup_teardown(test_evidence_split_waits_while_switched_off, setup_builtin,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_latency_alert_pages_oncall, setup_builtin, teardown),
      cmocka_unit_test_setup_teardown(test_admit_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_state_diagram_walk, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_after_ga_pages_oncall, setup_watch, teardown),
      cmocka_unit_test_setup_teardown(test_watch_without_holdback_detects_a_change, setup_watch_own,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_low_traffic_neither_halts_nor_passes, setup_estimate,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_no_rollouts_no_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
      cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decision_ids_are_contiguous, setup, teardown),
      cmocka_unit_test_setup_teardown(test_determinism, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_rollouts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_live_rollout_per_service, setup, teardown),
  };
  return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
