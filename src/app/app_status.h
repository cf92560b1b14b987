/* `canaryctl status`: what canaryd has decided, read from PostgreSQL, and what other commands
 * (health, override, the dashboard) take from it: readings, the global kill switches, documents. */
#ifndef CANARY_APP_STATUS_H
#define CANARY_APP_STATUS_H

#include <stdbool.h>

#include "core/plan.h"
#include "core/rollout.h"
#include "store/store.h"

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_status(int argc, char **argv);

/* The reading of a rule (kind READING_RULE, any stage) or a gate criterion, or NULL. */
const struct rollout_reading *status_find_reading(const struct rollout *r, enum reading_kind kind,
                                                  int stage, const char *name);

/* What a reading measured, on stdout: " canary 0.05 threshold 0.01, evidence e = ..." */
void status_print_measurement(const struct rollout_reading *x);

/*
 * The global kill switches of shard as committed (read through store_load_shard into a scratch
 * engine, so they come from the same snapshot the worker would load). Returns CANARY_OK; the
 * store's error otherwise (store_last_error() says what).
 */
int status_global_flags(store_t *st, const struct plan *plan, int shard,
                        struct flags *out) CANARY_MUSTCHECK;

/*
 * `canaryctl status --json` documents, appended to b: every rollout of rows (id, service,
 * version, stage, state, exposure, last decision), and one rollout in detail (gates of its stage
 * and the next, halt rules' readings, kill switches, last decision), evaluated at now by plan.
 * The dashboard serves the same documents. Not thread-safe (static scratch).
 */
struct jbuf;
void status_rollouts_json(store_t *st, const struct plan *plan,
                          const struct store_rollout_row *rows, size_t n, struct jbuf *b);
void status_rollout_json(store_t *st, const struct plan *plan, const struct store_rollout_row *row,
                         struct jbuf *b);

#endif
