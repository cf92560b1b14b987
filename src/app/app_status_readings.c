/*
 * What canaryd last measured for a metric rule or criterion (its readings, stored with the
 * rollout), and a gate judged from them: what status and validate print and serve as JSON.
 */
#include "app/app_status.h"
#include "app/app_status_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "codec/rfc3339.h"
#include "core/expr.h"

/* ---- readings: what canaryd last measured for a metric rule or criterion ------------------ */

static const char *const reading_kind_names[] = {"rule", "entry", "exit"};
static const char *const truth_names[] = {"false", "true", "insufficient data"};
static const char *const for_state_names[] = {"inactive", "pending", "firing"};

static const char *pick(const char *const *names, int n, int v) {
  return v >= 0 && v < n ? names[v] : "?";
}

const struct rollout_reading *status_find_reading(const struct rollout *r, enum reading_kind kind,
                                                  int stage, const char *name) {
  for (int i = 0; i < r->n_readings; i++) {
    const struct rollout_reading *x = &r->readings[i];
    if (x->kind == (int8_t)kind && !strcmp(x->name, name) &&
        (kind == READING_RULE || x->stage == stage))
      return x;
  }
  return NULL;
}

/* What a rule's reading says, in a word: ok, pending, FIRING, insufficient data. */
const char *status_reading_word(const struct rollout_reading *x) {
  if (x->state == EXPR_FOR_FIRING)
    return "FIRING";
  if (x->state == EXPR_FOR_PENDING)
    return "pending";
  return x->truth == EXPR_INSUFFICIENT ? "insufficient" : "ok";
}

static void print_value(const char *label, double v) {
  if (!isnan(v))
    printf(" %s %.6g", label, v);
}

/* "canary 0.05 baseline 0.001 threshold 0.01, window 5m00s, 4200 samples (min 100)" */
void status_print_measurement(const struct rollout_reading *x) {
  char w[32];
  print_value("canary", x->canary);
  print_value("baseline", x->baseline);
  print_value("threshold", x->threshold);
  if (!isnan(x->log_e)) { /* decided on evidence: how far it has come, not a window */
    double way = x->log_e > 0 ? 100 * x->log_e / x->log_needed : 0;
    if (x->truth == EXPR_INSUFFICIENT)
      printf(", no evidence yet (no trials)");
    else if (x->log_e >= x->log_needed)
      printf(", evidence e = %.3g: proven (needs %.3g)", exp(x->log_e), exp(x->log_needed));
    else
      printf(", evidence e = %.3g, %.0f%% of the way to %.3g (%" PRId64 " trials)", exp(x->log_e),
             way > 99 ? 99 : way, exp(x->log_needed), x->n);
    return;
  }
  printf("%s window %s, %" PRId64 " samples (min %" PRId64 ")",
         isnan(x->canary) && isnan(x->baseline) && isnan(x->threshold) ? "" : ",",
         status_span(x->window_ms, w, sizeof w), x->n, x->min_n);
}

void status_reading_json(struct jbuf *b, const struct plan *plan, const struct rollout_reading *x) {
  char t[RFC3339_MAX];
  jbuf_putc(b, '{');
  status_json_key(b, "name"), jbuf_string(b, x->name);
  status_json_key(b, "kind"), jbuf_string(b, pick(reading_kind_names, 3, x->kind));
  status_json_key(b, "stage"), jbuf_string(b, status_stage_name(plan, x->stage));
  status_json_key(b, "truth"), jbuf_string(b, pick(truth_names, 3, x->truth));
  status_json_key(b, "state"), jbuf_string(b, pick(for_state_names, 3, x->state));
  status_json_key(b, "canary"), jbuf_number(b, x->canary);
  status_json_key(b, "baseline"), jbuf_number(b, x->baseline);
  status_json_key(b, "threshold"), jbuf_number(b, x->threshold);
  status_json_key(b, "window_ms"), jbuf_int(b, x->window_ms);
  status_json_key(b, "samples"), jbuf_int(b, x->n);
  status_json_key(b, "min_samples"), jbuf_int(b, x->min_n);
  status_json_key(b, "evaluated_at"), jbuf_string(b, rfc3339_format(x->at_ms, t));
  status_json_time_or_null(b, "since", x->state == EXPR_FOR_INACTIVE ? 0 : x->since_ms);
  status_json_key(b, "e_value"), jbuf_number(b, isnan(x->log_e) ? NAN : exp(x->log_e));
  status_json_key(b, "e_value_needed"),
      jbuf_number(b, isnan(x->log_needed) ? NAN : exp(x->log_needed));
  jbuf_putc(b, '}');
}

/* canaryd's last reading of a gate's criterion: metric criteria only, NULL otherwise. */
const struct rollout_reading *status_criterion_reading(const struct rollout *r,
                                                       const struct gate_view *g,
                                                       const struct gate_check *c) {
  if (c->criterion->check != CHECK_METRIC)
    return NULL;
  return status_find_reading(r, g->exit ? READING_EXIT : READING_ENTRY, g->stage,
                             c->criterion->name);
}

/*
 * A gate as canaryd last judged it. The deploy-event criteria are decided again from the stored
 * rollout; a metric criterion, which needs the windows only canaryd has, takes the result of
 * canaryd's last reading of it (its measured values are printed under it).
 */
void status_gate_eval(const struct rollout *r, const struct plan *plan, int64_t now,
                      struct gate_view *g) {
  g->n = rollout_gate(r, plan, g->stage, g->exit, now, g->checks, PLAN_MAX_CRITERIA);
  if (g->n > PLAN_MAX_CRITERIA)
    g->n = PLAN_MAX_CRITERIA;
  for (int k = 0; k < g->n; k++) {
    struct gate_check *c = &g->checks[k];
    if (c->criterion->check != CHECK_METRIC)
      continue;
    const struct rollout_reading *x = status_criterion_reading(r, g, c);
    if (!x) {
      snprintf(c->detail, sizeof c->detail, "not measured yet: %s", c->criterion->expr);
      continue;
    }
    c->result = x->state == EXPR_FOR_FIRING     ? GATE_PASS
                : x->truth == EXPR_INSUFFICIENT ? GATE_NOT_EVALUATED
                                                : GATE_FAIL;
    snprintf(c->detail, sizeof c->detail, "%s", c->criterion->expr);
  }
  g->passed = true;
  for (int k = 0; k < g->n; k++)
    g->passed &= g->checks[k].result == GATE_PASS;
}
