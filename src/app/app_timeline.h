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

/*
 * s as text that cannot act on a terminal or split a line: newline and tab as \n and \t, other
 * control bytes as \xHH, C1 controls as \u00HH (contract texts may hold newlines and tabs; names
 * cannot, but a store written before that rule may).
 */
void timeline_put(FILE *f, const char *s);

#endif
