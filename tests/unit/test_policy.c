/*
 * core/policy: who may do what. Table-driven like PgBouncer's hba tests: every right against
 * every role, then the order of refusals (unknown actor, unsigned, bad signature, forbidden),
 * then the engine: a refused command changes nothing but says so, a refused global kill switch
 * is not set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/engine.h"
#include "core/policy.h"
#include "fixtures.h"

#define T0 1767225600000LL

enum { ENGINEER, MANAGER, ONCALL, PO, SUPPORT, DOCS, N_ROLES };
static const char *const role_names[N_ROLES] = {"release_engineer", "release_manager", "oncall",
                                                "product_owner",    "support_lead",    "docs"};

/* The policy of the tables: what each role may do (bit per role). */
static const uint32_t allowed[POLICY_RIGHT_COUNT] = {
    [POLICY_RIGHT_PAUSE] = 1u << ENGINEER | 1u << ONCALL | 1u << MANAGER,
    [POLICY_RIGHT_RESUME] = 1u << ENGINEER | 1u << MANAGER,
    [POLICY_RIGHT_PROMOTE] = 1u << ENGINEER | 1u << MANAGER,
    [POLICY_RIGHT_PROMOTE_FORCE] = 1u << MANAGER,
    [POLICY_RIGHT_ROLLBACK] = 1u << ENGINEER | 1u << ONCALL | 1u << MANAGER,
    [POLICY_RIGHT_CHECK] = 1u << ENGINEER | 1u << MANAGER,
    [POLICY_RIGHT_KILL_SWITCH] = 1u << ONCALL | 1u << MANAGER,
    [POLICY_RIGHT_APPROVE_PRODUCT_OWNER] = 1u << PO,
    [POLICY_RIGHT_APPROVE_SUPPORT] = 1u << SUPPORT,
    [POLICY_RIGHT_APPROVE_DOCS] = 1u << DOCS,
};

/* One actor per role, named after it. */
static void make_policy(struct policy *p) {
  memset(p, 0, sizeof *p);
  p->enabled = true;
  for (int r = 0; r < N_ROLES; r++) {
    strcpy(p->roles[r], role_names[r]);
    strcpy(p->actors[r].name, role_names[r]);
    p->actors[r].roles = 1u << r;
    strcpy(p->actors[r].keys[0], "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    p->actors[r].n_keys = 1;
  }
  p->n_roles = p->n_actors = N_ROLES;
  memcpy(p->allowed, allowed, sizeof allowed);
}

/* An event that needs right r, by actor, verified. */
static struct event event_for(enum policy_right r, const char *actor) {
  struct event ev = fixture_event(EVENT_COMMAND, "e1", "web-2.1.0", T0);
  switch (r) {
  case POLICY_RIGHT_PAUSE:
    ev.action = COMMAND_PAUSE;
    break;
  case POLICY_RIGHT_RESUME:
    ev.action = COMMAND_RESUME;
    break;
  case POLICY_RIGHT_PROMOTE:
    ev.action = COMMAND_PROMOTE;
    break;
  case POLICY_RIGHT_PROMOTE_FORCE:
    ev.action = COMMAND_PROMOTE, ev.force = true;
    break;
  case POLICY_RIGHT_ROLLBACK:
    ev.action = COMMAND_ROLLBACK;
    break;
  case POLICY_RIGHT_CHECK:
    ev.action = COMMAND_CHECK;
    strcpy(ev.item, "smoke_tests");
    break;
  case POLICY_RIGHT_KILL_SWITCH:
    ev = fixture_event(EVENT_FLAG_SET, "e1", "web-2.1.0", T0);
    strcpy(ev.flag, "system.canary.enabled");
    break;
  case POLICY_RIGHT_APPROVE_PRODUCT_OWNER:
  case POLICY_RIGHT_APPROVE_SUPPORT:
  case POLICY_RIGHT_APPROVE_DOCS:
    ev = fixture_event(EVENT_APPROVAL_GRANTED, "e1", "web-2.1.0", T0);
    ev.role = r == POLICY_RIGHT_APPROVE_PRODUCT_OWNER ? APPROVAL_PRODUCT_OWNER
              : r == POLICY_RIGHT_APPROVE_SUPPORT     ? APPROVAL_SUPPORT
                                                      : APPROVAL_DOCS;
    break;
  case POLICY_RIGHT_COUNT:
    break;
  }
  strcpy(ev.actor, actor);
  ev.auth = EVENT_AUTH_VERIFIED;
  return ev;
}

/* Every right x every role: allowed exactly when the table says, and the reason says who. */
static void test_each_right_by_each_role(void **state) {
  (void)state;
  static struct policy p;
  make_policy(&p);
  for (int r = 0; r < POLICY_RIGHT_COUNT; r++)
    for (int role = 0; role < N_ROLES; role++) {
      struct event ev = event_for((enum policy_right)r, role_names[role]);
      assert_int_equal(policy_right_of(&ev), r);
      char why[512];
      enum policy_verdict v = policy_authorize(&p, &ev, why, sizeof why);
      bool want = allowed[r] & 1u << role;
      if (v != (want ? POLICY_ALLOWED : POLICY_FORBIDDEN))
        fail_msg("%s by %s: %s (%s)", policy_right_name((enum policy_right)r), role_names[role],
                 policy_verdict_name(v), why);
      assert_non_null(strstr(why, role_names[role])); /* who tried */
      if (!want)                                      /* and which roles would have had the right */
        assert_non_null(strstr(why, policy_right_name((enum policy_right)r)));
    }
}

/* Refused in order: an actor the policy does not know, then a signature that is missing or
 * does not verify (whatever the actor's roles), then the roles. */
static void test_refusals_and_their_order(void **state) {
  (void)state;
  static struct policy p;
  make_policy(&p);
  static const struct {
    const char *actor;
    enum event_auth auth;
    enum policy_right right;
    enum policy_verdict want;
    const char *says;
  } cases[] = {
      {"mallory", EVENT_AUTH_VERIFIED, POLICY_RIGHT_PAUSE, POLICY_UNKNOWN_ACTOR, "not an actor"},
      {"", EVENT_AUTH_UNSIGNED, POLICY_RIGHT_PAUSE, POLICY_UNKNOWN_ACTOR, "(no actor)"},
      {"release_manager", EVENT_AUTH_UNSIGNED, POLICY_RIGHT_PROMOTE_FORCE, POLICY_UNSIGNED,
       "not signed"},
      {"release_manager", EVENT_AUTH_UNCHECKED, POLICY_RIGHT_PROMOTE_FORCE, POLICY_UNSIGNED,
       "not signed"},
      {"release_manager", EVENT_AUTH_BAD, POLICY_RIGHT_PROMOTE_FORCE, POLICY_BAD_SIGNATURE,
       "does not verify"},
      {"oncall", EVENT_AUTH_BAD, POLICY_RIGHT_ROLLBACK, POLICY_BAD_SIGNATURE, "does not verify"},
      {"oncall", EVENT_AUTH_VERIFIED, POLICY_RIGHT_PROMOTE_FORCE, POLICY_FORBIDDEN,
       "promote_force needs release_manager; oncall has oncall"},
      {"support_lead", EVENT_AUTH_VERIFIED, POLICY_RIGHT_APPROVE_PRODUCT_OWNER, POLICY_FORBIDDEN,
       "approve product_owner by support_lead refused"},
      {"oncall", EVENT_AUTH_VERIFIED, POLICY_RIGHT_KILL_SWITCH, POLICY_ALLOWED,
       "(verified, as oncall)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct event ev = event_for(cases[i].right, cases[i].actor);
    ev.auth = cases[i].auth;
    char why[512];
    enum policy_verdict v = policy_authorize(&p, &ev, why, sizeof why);
    if (v != cases[i].want || !strstr(why, cases[i].says))
      fail_msg("case %zu: %s, '%s'; expected %s, '%s'", i, policy_verdict_name(v), why,
               policy_verdict_name(cases[i].want), cases[i].says);
    assert_int_equal(policy_allows(v), cases[i].want == POLICY_ALLOWED);
  }
}

/* No policy: today's behaviour — everything allowed, unverified, and said so. Events that are
 * not a person's need no right. */
static void test_no_policy_and_events_that_need_no_right(void **state) {
  (void)state;
  static struct policy none;
  memset(&none, 0, sizeof none);
  struct event ev = event_for(POLICY_RIGHT_PROMOTE_FORCE, "anyone");
  ev.auth = EVENT_AUTH_UNCHECKED;
  char why[256];
  assert_int_equal(policy_authorize(&none, &ev, why, sizeof why), POLICY_OPEN);
  assert_non_null(strstr(why, "not verified"));
  static struct policy p;
  make_policy(&p);
  struct event ci = fixture_event(EVENT_CI_COMPLETED, "c1", "web-2.1.0", T0);
  assert_int_equal(policy_right_of(&ci), POLICY_RIGHT_COUNT);
  assert_int_equal(policy_authorize(&p, &ci, why, sizeof why), POLICY_NOT_GUARDED);
}

/* Through the engine: a refused force-promote is a hold 'unauthorized' that moves nothing; a
 * refused approval is not recorded; a refused global kill switch is not set. */
static void test_engine_refuses_and_says_so(void **state) {
  (void)state;
  static struct plan plan;
  fixture_plan(&plan);
  make_policy(&plan.policy);
  static struct engine e;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  struct effects fx = EFFECTS_INIT;
  enum apply_outcome out;
  char why[256];
  struct event req = fixture_event(EVENT_ROLLOUT_REQUESTED, "r1", "web-2.1.0", T0);
  strcpy(req.service, "web");
  strcpy(req.version, "2.1.0");
  strcpy(req.baseline_version, "2.0.0");
  assert_int_equal(engine_apply(&e, &req, T0, &fx, &out, why, sizeof why), CANARY_OK);
  struct rollout before = *engine_find(&e, "web-2.1.0");

  struct event force = event_for(POLICY_RIGHT_PROMOTE_FORCE, "oncall");
  strcpy(force.id, "f1");
  effects_clear(&fx);
  assert_int_equal(engine_apply(&e, &force, T0 + 1, &fx, &out, why, sizeof why), CANARY_OK);
  assert_int_equal(out, APPLY_APPLIED);
  const struct rollout *r = engine_find(&e, "web-2.1.0");
  assert_int_equal(r->stage, before.stage);
  assert_int_equal(r->state, before.state);
  bool said = false;
  for (size_t i = 0; i < fx.n; i++)
    if (fx.items[i].kind == EFFECT_DECISION) {
      const struct decision *d = &fx.items[i].u.decision;
      assert_string_equal(d->rule, "unauthorized");
      assert_int_equal(d->action, DECISION_HOLD);
      assert_non_null(strstr(d->reason, "promote --force by oncall refused"));
      said = true;
    }
  assert_true(said);

  struct event approve = event_for(POLICY_RIGHT_APPROVE_PRODUCT_OWNER, "support_lead");
  strcpy(approve.id, "a1");
  assert_int_equal(engine_apply(&e, &approve, T0 + 2, &fx, &out, why, sizeof why), CANARY_OK);
  assert_int_equal(engine_find(&e, "web-2.1.0")->approvals, 0);
  strcpy(approve.actor, "product_owner");
  strcpy(approve.id, "a2");
  assert_int_equal(engine_apply(&e, &approve, T0 + 3, &fx, &out, why, sizeof why), CANARY_OK);
  assert_int_equal(engine_find(&e, "web-2.1.0")->approvals, 1u << APPROVAL_PRODUCT_OWNER);

  /* a kill switch that names no cohort is invalid whoever sends it: rejected, not refused */
  struct event bad = event_for(POLICY_RIGHT_KILL_SWITCH, "product_owner");
  strcpy(bad.id, "b1");
  strcpy(bad.flag, "canary.cohort.nope.enabled");
  size_t n_fx = fx.n;
  assert_int_equal(engine_apply(&e, &bad, T0 + 3, &fx, &out, why, sizeof why), CANARY_OK);
  assert_int_equal(out, APPLY_REJECTED);
  assert_int_equal(fx.n, n_fx);

  struct event kill = event_for(POLICY_RIGHT_KILL_SWITCH, "release_engineer");
  strcpy(kill.id, "k1");
  kill.rollout[0] = '\0';
  kill.value = false;
  assert_int_equal(engine_apply(&e, &kill, T0 + 4, &fx, &out, why, sizeof why), CANARY_OK);
  assert_true(e.global.canary_enabled);
  strcpy(kill.actor, "oncall");
  strcpy(kill.id, "k2");
  assert_int_equal(engine_apply(&e, &kill, T0 + 5, &fx, &out, why, sizeof why), CANARY_OK);
  assert_false(e.global.canary_enabled);
  effects_free(&fx);
  engine_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_right_by_each_role),
      cmocka_unit_test(test_refusals_and_their_order),
      cmocka_unit_test(test_no_policy_and_events_that_need_no_right),
      cmocka_unit_test(test_engine_refuses_and_says_so),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
