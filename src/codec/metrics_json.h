/*
 * The part of a rollout's metric state that its events alone do not give back, as a versioned
 * JSON document (rollouts.metrics): the for: state of every halt rule and metric criterion,
 * the evaluation schedule, and the zscore histories (recorded at evaluations). The windows are
 * not in it: a restarted worker rebuilds them by replaying the metrics partition
 * (docs/ARCHITECTURE.md, "Metric windows after a restart").
 */
#ifndef CANARY_METRICS_JSON_H
#define CANARY_METRICS_JSON_H

#include <stddef.h>

#include "codec/json.h"
#include "core/error.h"
#include "core/rollout_metrics.h"

#define METRICS_JSON_VERSION 1

/*
 * Append m's state as one object: {"v":1,"rules_cohort":..,"next_eval_ms":..,"deadline":..,
 * "rules":[[rule,expr,state,since]..],"gates":[[stage,exit,criterion,state,since]..],
 * "zscores":[{"key":"<hex>","cohort":..,"variant":..,"t":[..],"x":[..]}..]} — only the for:
 * states that are not inactive. The same state gives the same bytes.
 */
void metrics_json_write(const struct rollout_metrics *m, struct jbuf *out);

/*
 * Put the state of a document written by metrics_json_write() back into m (freshly initialised
 * for the same plan; its windows are left alone). Returns CANARY_OK, CANARY_EPARSE (not JSON),
 * CANARY_EINVALID (why says what), CANARY_ENOMEM.
 */
int metrics_json_read(const char *text, size_t len, struct rollout_metrics *m, char *why,
                      size_t why_len) CANARY_MUSTCHECK;

#endif
