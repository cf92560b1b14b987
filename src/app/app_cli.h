/* Shared pieces of the command-line programs: exit codes, option helpers, messages. */
#ifndef CANARY_APP_CLI_H
#define CANARY_APP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/plan.h"

/* Exit codes scripts can trust. */
enum cli_exit {
  EXIT_OK = 0,          /* did what was asked */
  EXIT_BAD_INPUT = 1,   /* input (events, plan, answer) was bad or the command was refused */
  EXIT_USAGE = 2,       /* the command line was wrong */
  EXIT_UNAVAILABLE = 3, /* a service (Kafka, PostgreSQL) could not be reached in time */
  EXIT_UNPUBLISHED = 4, /* decided and stored, but not (yet) published to Kafka */
};

/* Parse a time: integer ms since the epoch, or RFC 3339. */
bool cli_parse_time(const char *s, int64_t *ms);

/*
 * Load the plan from path (NULL: the compiled-in default plan), and then the policy file named
 * by $CANARY_POLICY when set (it replaces the plan's policy:). On error, print
 * "canaryctl: file:line:column: message" to stderr and return false.
 */
bool cli_load_plan(const char *prog, const char *path, struct plan *plan);
/* The policy file that replaces a plan's policy: ($CANARY_POLICY, which canaryd --policy sets),
 * or NULL. cli_load_plan reads it; canaryd reads it again on SIGHUP. */
const char *cli_policy_file(void);

/*
 * One line saying which policy cli_load_plan gave plan (plan_path as given to it; NULL: the
 * built-in plan): the file of $CANARY_POLICY, the plan's own `policy:`, or none — and so
 * whether commands must be signed. canaryd must run the same (--policy / CANARY_POLICY).
 */
void cli_policy_line(FILE *f, const struct plan *plan, const char *plan_path);

#endif
