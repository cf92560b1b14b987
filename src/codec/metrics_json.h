/*
 * The part of a rollout's metric state that its events alone do not give back, as versioned
 * JSON documents: the for: state of every halt rule and metric criterion and the evaluation
 * schedule (rollouts.metrics), and the zscore histories, recorded at evaluations
 * (rollouts.zscores). The windows are
 * not in it: a restarted worker rebuilds them by replaying the metrics partition
 * (docs/ARCHITECTURE.md, "Metric windows after a restart").
 */
#ifndef CANARY_METRICS_JSON_H
#define CANARY_METRICS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "codec/json.h"
#include "core/error.h"
#include "core/rollout_metrics.h"

#define METRICS_JSON_VERSION 1

/*
 * Append m's state as one object: {"v":1,"rules_cohort":..,"next_eval_ms":..,"deadline":..,
 * "rules":[[rule,expr,state,since]..],"gates":[[stage,exit,criterion,state,since]..]} — only
 * the for: states that are not inactive. The same state gives the same bytes.
 */
void metrics_json_write(const struct rollout_metrics *m, struct jbuf *out);

/*
 * Append m's zscore histories: {"v":1,"zscores":[{"key":"<hex>","cohort":..,"variant":..,
 * "t":[..],"x":[..]}..]}, the points oldest first. A separate document because it is large (up
 * to a day of points a minute) and changes far less often than the state.
 */
void metrics_json_write_zscores(const struct rollout_metrics *m, struct jbuf *out);

/*
 * The baseline's dispersion steps of each counter the evidence divides (mstore_dispersion_steps):
 * {"errors":[sum,k],...}, counters with no step left out. What canaryctl dispersion pools over
 * a service's releases; derived from the metric events, so nothing reads it back into a worker.
 */
void metrics_json_write_dispersion(const struct rollout_metrics *m, struct jbuf *out);

/*
 * Put a document written by metrics_json_write() (or _write_zscores()) back into m (freshly
 * initialised for the same plan; its windows are left alone). Returns CANARY_OK, CANARY_EPARSE
 * (not JSON), CANARY_EINVALID (why says what), CANARY_ENOMEM.
 */
int metrics_json_read(const char *text, size_t len, struct rollout_metrics *m, char *why,
                      size_t why_len) CANARY_MUSTCHECK;
int metrics_json_read_zscores(const char *text, size_t len, struct rollout_metrics *m, char *why,
                              size_t why_len) CANARY_MUSTCHECK;

/*
 * Cheap fingerprints of what the two documents hold (never 0): equal fingerprints, equal
 * documents, so a batch can leave an unchanged document out.
 */
uint64_t metrics_json_state_sig(const struct rollout_metrics *m);
uint64_t metrics_json_zscores_sig(const struct rollout_metrics *m);

#endif
