/*
 * What the read side of canaryctl shares: status (app_status.c, which defines these), validate
 * (app_validate.c), history (app_history.c) and flags (app_flags.c); app_status_readings.c
 * defines the readings and gates. Private to them.
 */
#ifndef CANARY_APP_STATUS_INTERNAL_H
#define CANARY_APP_STATUS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/app_status.h"
#include "codec/json.h"
#include "core/plan.h"
#include "core/rollout.h"

/* The options of the read-side commands; each command names the ones it takes. */
struct ops_opts {
  const char *prog, *usage;
  const char *pg, *kafka, *plan;
  const char *rollout;
  const char *cohort;
  bool takes_cohort;
  bool json, list;
};

/* Returns -1 when parsed, else the exit code (help: EXIT_OK). */
int status_parse_args(int argc, char **argv, struct ops_opts *o, bool takes_rollout);

/* A stage's name, or "stage#N" when plan has no such stage (static buffer). */
const char *status_stage_name(const struct plan *p, int stage);

/* "1h30m", "45s", "2d4h": a duration for people, into buf. */
const char *status_span(int64_t ms, char *buf, size_t n);

/* Append "k": to an object, with the comma unless k is its first key. */
void status_json_key(struct jbuf *b, const char *k);

/* Append "k": and the time ms in RFC 3339, or null when ms <= 0. */
void status_json_time_or_null(struct jbuf *b, const char *k, int64_t ms);

/* What a rule's reading says, in a word: ok, pending, FIRING, insufficient. */
const char *status_reading_word(const struct rollout_reading *x);

/* A reading of canaryd's (status_find_reading) as a JSON object appended to b. */
void status_reading_json(struct jbuf *b, const struct plan *plan, const struct rollout_reading *x);

/* Print and free the JSON document; false when memory ran out. */
bool status_put_json(struct jbuf *b);

/* A kill switch's name (stage -1: system.canary.enabled) and its value in f. */
void status_flag_name(const struct plan *plan, int stage, char *buf, size_t n);
bool status_flag_value(const struct flags *f, int stage);

/* A gate of one stage, entry or exit, with its checks as status_gate_eval judged them. */
struct gate_view {
  int stage;
  bool exit;
  const char *role; /* "waiting", "next", "" */
  struct gate_check checks[PLAN_MAX_CRITERIA];
  int n;
  bool passed;
};

/* canaryd's last reading of a gate's criterion: metric criteria only, NULL otherwise. */
const struct rollout_reading *status_criterion_reading(const struct rollout *r,
                                                       const struct gate_view *g,
                                                       const struct gate_check *c);

/*
 * A gate as canaryd last judged it, into g->checks, g->n and g->passed: the deploy-event
 * criteria decided again from the stored rollout, a metric criterion from canaryd's last
 * reading of it (GATE_NOT_EVALUATED without one).
 */
void status_gate_eval(const struct rollout *r, const struct plan *plan, int64_t now,
                      struct gate_view *g);

#endif
