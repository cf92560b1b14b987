/* One readable line per decision: the timeline that people (and scenario tests) read. */
#ifndef CANARY_APP_TIMELINE_H
#define CANARY_APP_TIMELINE_H

#include <stdio.h>

#include "core/effect.h"

/*
 * "2026-01-01T01:00:00.000Z r1 advance internal_test->friendly_gp running [exit_gate] reason"
 * One stage name when the decision stays in a stage; "-" for none.
 */
void timeline_decision(FILE *f, const struct decision *d);

/* "2026-01-01T01:00:00.000Z r1 notify #releases warning: title" */
void timeline_notification(FILE *f, const struct notification *n);

#endif
