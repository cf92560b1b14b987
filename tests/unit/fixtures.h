/* Shared test fixtures: plans and events built in code, so unit tests need no files. */
#ifndef CANARY_TEST_FIXTURES_H
#define CANARY_TEST_FIXTURES_H

#include "core/event.h"
#include "core/plan.h"

#define HOUR_MS (3600 * 1000LL)
#define MIN_MS (60 * 1000LL)

/* The seed's plan without metric criteria (those are "not evaluated" until the metric engine). */
void fixture_plan(struct plan *p);
/* A zeroed event of type with id, rollout and time set. */
struct event fixture_event(enum event_type type, const char *id, const char *rollout, int64_t t);

/* A rollout.requested for service "web", version 2.1.0 over baseline 2.0.9. */
struct event fixture_requested(const char *id, const char *rollout, int64_t t);
/* A command from actor "alice" with reason "test". */
struct event fixture_command(const char *id, const char *rollout, int64_t t,
                             enum command_action action, bool force);
/* A flag.set from actor "alice"; rollout "" makes it global. */
struct event fixture_flag(const char *id, const char *rollout, int64_t t, const char *flag,
                          bool value);
/*
 * Append a criterion (cohort -1, the rest zero) to the entry (exit=false) or exit gate of
 * stage: for tests that need a plan slightly different from fixture_plan().
 */
struct criterion *fixture_criterion(struct plan *p, int stage, bool exit, enum check c,
                                    const char *name);

#endif
