/*
 * What the parts of `canaryctl plan power` share: the command line (app_plan_power.c), the
 * model of a stage's evidence (app_plan_power_model.c) and the report drawn from it in text
 * or JSON (app_plan_power_report.c). Private to them (and to tests/unit/test_plan_power.c,
 * which compiles the three).
 */
#ifndef CANARY_APP_PLAN_POWER_INTERNAL_H
#define CANARY_APP_PLAN_POWER_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "core/evidence.h"
#include "core/metric_store.h"

#define PROG "canaryctl plan power"
#define POWER_MAX_RATES 32
#define POWER_STEPS 3
#define POWER_NO_MAX_MIN (72 * 60) /* a stage without max_duration: the evidence's retention */

/* A healthy rate: K per request (a divisor) or per its divisor (a numerator). */
struct power_rate {
  char name[PLAN_NAME_MAX];
  double v;
};

struct power_opts {
  double traffic;    /* requests per minute across the service */
  double values;     /* distribution values per minute per variant */
  double dispersion; /* >= 1 */
  struct power_rate rates[POWER_MAX_RATES];
  int n_rates;
  bool json;
};

/* What every computation reads. */
struct power {
  const struct plan *p;
  const struct mstore_plan *mp;
  const struct power_opts *o;
};

/* One stage's volume: requests per minute of each variant, and how long it may run. */
struct flow {
  int stage;
  double canary, baseline;
  double limit; /* minutes: max_duration, or POWER_NO_MAX_MIN */
  bool has_max;
  double steps_before; /* minutes of baseline reports before the stage (its predecessors'
                        * minimum durations): what the dispersion estimate has seen */
};

struct step {
  double mult;    /* x the limit, the healthy rate or the allowed share */
  double value;   /* the canary's rate or share */
  double minutes; /* to halt, from the stage's start, for: included; INFINITY: never */
  double bad;     /* canary bad events (values above the line) by then */
  bool possible;  /* false: no such regression (a share above 1) */
};

struct row {
  bool gate;
  struct expr_evq q;
  int cohort;       /* the stage whose traffic decides it */
  const char *name; /* the rule's or the criterion's (the compiled plan's) */
  int gate_stage;   /* gates: whose gate */
  bool exit;        /* ... entry or exit */
  const char *slo;  /* a slos_met() criterion: the SLO this row is; NULL otherwise */
  char test[160];
  const char *op;
  double alpha, for_min;
  const char *missing; /* a counter with no healthy rate, a distribution with no model:
                           * the row cannot be computed (NULL = it can) */
  bool no_baseline;    /* against the baseline, where the stage leaves none */
  /* halt rules */
  const char *relative; /* what the steps multiply */
  double base;          /* ... and its value */
  struct step steps[POWER_STEPS];
  /* gates */
  double healthy;    /* the healthy canary's rate or share */
  bool wrong_side;   /* healthy is on the null's side: never passes */
  double test_min;   /* the test passes (INFINITY: not within limit) */
  double minutes;    /* the gate passes: test_min + for: */
  double need, gets; /* canary trials by test_min, and in the stage */
};

struct rows {
  struct row *v;
  int n, cap;
  bool oom; /* a row could not be added: the report would be missing it */
};

/* One stage's volume (f.stage = s) under w's traffic. */
struct flow power_flow_of(const struct power *w, int s);

/* The healthy rate of counter name; false when neither the defaults nor --rates give one. */
bool power_rate_of(const struct power *w, const char *name, double *v);

/* Fills row r (its owner's fields already set) for comparison q of x decided by cohort's
 * traffic, with its for: of for_ms. */
void power_row_init(const struct power *w, struct row *r, const struct mstore_expr *x,
                    const struct expr_evq *q, int cohort, int64_t for_ms);

/* Every row of stage f: the halt rules and alerts, then the gates its cohort decides (rows->oom:
 * one could not be added). The caller frees rows->v. */
void power_stage_rows(const struct power *w, const struct flow *f, struct rows *rows);

/* The report on out (text), or as one JSON document: EXIT_OK, EXIT_BAD_INPUT out of memory. */
int power_report(const struct power *w, FILE *out);

#endif
