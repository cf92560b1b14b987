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

#endif
