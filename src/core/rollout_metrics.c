/*
 * A rollout's metric side (see rollout_metrics.h): its series and for: states; the readings
 * `canaryctl status` shows; the metric criteria of the gates; the plan's metric halt rules and
 * alerts, judged on the exposed cohort, and the traffic split's health; the watch of the gates
 * the rollout heads for. The state machine (rollout.c) calls in at two doors: run_metric_check
 * for a gate's metric criterion, run_metric_rules when metric data or a deadline comes.
 */
#include "core/rollout_metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/rollout_internal.h"
#include "core/stats.h"

int rollout_metrics_init(struct rollout_metrics *m, const struct mstore_plan *mp) {
  memset(m, 0, sizeof *m);
  struct mstore_config cfg;
  mstore_config_default(&cfg);
  mstore_config_for_plan(&cfg, mp);
  m->rules_cohort = -1;
  m->deadline = INT64_MAX;
  return mstore_init(&m->ms, &cfg);
}

void rollout_metrics_free(struct rollout_metrics *m) { mstore_free(&m->ms); }

/* ---- readings and the metric criteria of the gates ------------------------------------------ */

/*
 * Keep what an evaluation measured on the rollout, for `canaryctl status`: one reading per rule
 * (kind, name), or per criterion (kind, stage, name), overwritten by the next evaluation.
 */
static bool reading_is(const struct rollout_reading *y, enum reading_kind kind, int stage,
                       const char *name) {
  return y->kind == (int8_t)kind && (kind == READING_RULE || y->stage == stage) &&
         strcmp(y->name, name) == 0;
}

/* The reading of (kind, stage, name), or NULL; *hint (slot + 1, 0 unknown) is tried first and
 * kept up to date, and owners (rollout_metrics.reading_owner) says whether it is still right. */
static struct rollout_reading *reading_find(struct rollout *r, const int16_t **owners,
                                            enum reading_kind kind, int stage, const char *name,
                                            int16_t *hint) {
  int h = *hint - 1;
  if (h >= 0 && h < r->n_readings && owners[h] == hint)
    return &r->readings[h];
  for (int i = 0; i < r->n_readings; i++)
    if (reading_is(&r->readings[i], kind, stage, name)) {
      *hint = (int16_t)(i + 1);
      owners[i] = hint;
      return &r->readings[i];
    }
  return NULL;
}

static void note_reading(struct rollout *r, const int16_t **owners, enum reading_kind kind,
                         int stage, const char *name, int16_t *hint, const struct mstore_verdict *v,
                         const struct expr_for *st, int64_t now) {
  int at = v->which >= 0 ? v->which : 0;
  const struct mstore_finding *f = &v->f[at];
  struct rollout_reading *x = reading_find(r, owners, kind, stage, name, hint);
  if (!x) {
    if (r->n_readings >= ROLLOUT_MAX_READINGS)
      return; /* cannot happen with the plan's limits; a reading is only ever informative */
    owners[r->n_readings] = hint;
    *hint = (int16_t)(r->n_readings + 1);
    x = &r->readings[r->n_readings++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->kind = (int8_t)kind;
  }
  x->stage = (int8_t)stage;
  x->truth = (int8_t)f->truth;
  x->state = (int8_t)f->state;
  x->canary = f->canary;
  x->baseline = f->baseline;
  x->threshold = f->threshold;
  x->window_ms = f->window_ms;
  x->n = f->n;
  x->min_n = f->min_n;
  x->at_ms = now;
  x->since_ms = f->state == EXPR_FOR_INACTIVE ? 0 : st[at].since;
  x->log_e = f->evidence ? f->log_e : NAN;
  x->log_needed = f->evidence ? f->log_needed : NAN;
}

/*
 * A metric criterion, decided by the metric engine: it passes while its expression holds;
 * too little data is "not evaluated" (insufficient), never a pass. The data comes from the
 * criterion's cohort, else from the stage's own (exit gate) or the stage exposed before it
 * (entry gate: the next cohort has no traffic yet).
 */
void run_metric_check(const struct run *u, int stage, bool exit, int index, struct gate_check *c,
                      bool explain) {
  const struct criterion *cr = c->criterion;
  int cohort = cr->cohort >= 0 ? cr->cohort : exit || stage == 0 ? stage : stage - 1;
  struct expr_for *st = &u->m->gates[stage][exit][index];
  enum mstore_owner owner = exit ? MSTORE_EXIT : MSTORE_ENTRY;
  struct mstore_verdict v;
  /* The text costs more than the evaluation: gates are asked at every step, explained only
   * when a decision shows them (run_explain_gate). Stepping for: twice at one time is harmless. */
  int rc = explain ? mstore_eval_rule(&u->m->ms, u->mp, owner, stage, index, cohort, u->now, st, &v)
                   : mstore_eval_rule_values(&u->m->ms, u->mp, owner, stage, index, cohort, u->now,
                                             st, &v);
  if (rc != CANARY_OK || v.n == 0)
    return; /* left as "not evaluated" */
  note_reading(u->r, u->m->reading_owner, exit ? READING_EXIT : READING_ENTRY, stage, cr->name,
               &u->m->gate_reading[stage][exit][index], &v, st, u->now);
  c->result = v.holds                        ? GATE_PASS
              : v.truth == EXPR_INSUFFICIENT ? GATE_NOT_EVALUATED /* never a pass on no data */
                                             : GATE_FAIL;
  const struct mstore_finding *d = &v.f[v.which >= 0 ? v.which : 0];
  c->unproven = c->result == GATE_FAIL && d->truth == EXPR_FALSE && d->evidence &&
                !isnan(d->ev.estimate) && !isnan(d->ev.reference) &&
                (d->ev.above ? d->ev.estimate > d->ev.reference : d->ev.estimate < d->ev.reference);
  if (!explain)
    return;
  const struct mstore_finding *f = &v.f[v.which >= 0 ? v.which : 0];
  if (v.truth == EXPR_TRUE && !v.holds && st->state == EXPR_FOR_PENDING) {
    /* true, but not yet for as long as the criterion asks: say how far it has come */
    char held[32], want[32];
    rollout_format_duration(u->now - st->since, held, sizeof held);
    rollout_format_duration(cr->for_ms, want, sizeof want);
    snprintf(c->detail, sizeof c->detail, "%s; true for %s of the %s it must hold", f->explain,
             held, want);
  } else {
    snprintf(c->detail, sizeof c->detail, "%s", f->explain);
  }
}

/* ---- metric halt rules --------------------------------------------------------------------- */

/* The measured values a metric halt rests on: canary, baseline, threshold, window, samples. */
static void add_finding(struct decision *d, const struct mstore_finding *f) {
  if (f->evidence) { /* what the evidence rests on: counts, estimate, e-value, level, bound */
    const struct expr_evidence *x = &f->ev;
    decision_add_num(d, "canary_count", x->canary_x);
    decision_add_num(d, "canary_trials", x->canary_n);
    if (x->baseline_n > 0) {
      decision_add_num(d, "baseline_count", x->baseline_x);
      decision_add_num(d, "baseline_trials", x->baseline_n);
    }
    if (!isnan(x->line))
      decision_add_num(d, "counted_above", x->line);
    if (x->dispersion > 1)
      decision_add_num(d, "dispersion", x->dispersion);
    if (x->since_ms != INT64_MIN) /* the counts since a slice began: a change mid-stage */
      decision_add_int(d, "counted_since_ms", x->since_ms);
    else /* since a stage began (the release's first, for evidence carried across stages) */
      decision_add_int(d, "counted_from_stage", x->from_cohort);
    decision_add_num(d, "estimate", x->estimate);
    decision_add_num(d, "reference", x->reference);
    if (!isnan(x->bound))
      decision_add_num(d, "bound", x->bound);
    decision_add_num(d, "e_value", exp(f->log_e));
    decision_add_num(d, "alpha", exp(-f->log_needed));
    decision_add_str(d, "expression", f->explain);
    return;
  }
  if (!isnan(f->canary))
    decision_add_num(d, "canary", f->canary);
  if (!isnan(f->baseline))
    decision_add_num(d, "baseline", f->baseline);
  if (!isnan(f->threshold))
    decision_add_num(d, "threshold", f->threshold);
  decision_add_int(d, "window_ms", f->window_ms);
  decision_add_int(d, "samples", f->n);
  decision_add_str(d, "expression", f->explain);
}

/*
 * The traffic split's health: a chi-square test of the canary's share of the cohort's requests
 * against the share the split should give it (0.5 against a same-size control group, else the
 * cohort's percentage). A mismatch (p < srm_p) is an unhealthy split — routing is broken, so
 * no comparison of canary and baseline can be trusted — and halts as such, not as a regression.
 */
static void split_check_estimate(struct run *u, int cohort) {
  const struct plan *p = u->plan;
  const struct mstore_series *c = mstore_series_find(&u->m->ms, cohort, VARIANT_CANARY, "requests");
  const struct mstore_series *b =
      mstore_series_find(&u->m->ms, cohort, VARIANT_BASELINE, "requests");
  if (!c || !b)
    return;
  /* Up to the last complete bucket: the canary's and the baseline's reports for the current
   * interval arrive one after the other, and half an interval is a mismatch of its own. */
  int64_t end = u->now - u->m->ms.cfg.bucket_ms;
  double cr = window_counter_sum(&c->w, end, p->srm_window_ms);
  double br = window_counter_sum(&b->w, end, p->srm_window_ms);
  double share = p->srm_control ? 0.5 : p->stages[cohort].traffic_percent / 100.0;
  struct stats_opts o = STATS_SRM_DEFAULTS;
  o.alpha = p->srm_p;
  struct stats_verdict v;
  if (cr < 0 || br < 0 || stats_srm_opts((uint64_t)cr, (uint64_t)br, share, &o, &v) != CANARY_OK ||
      v.outcome != STATS_SPLIT_MISMATCH)
    return;
  char reason[EVENT_TEXT_MAX + 64];
  snprintf(reason, sizeof reason,
           "unhealthy traffic split in %s: the canary got %.2f%% of "
           "requests, the split says %.2f%% (chi-square p = %.2g < %g); canary and baseline "
           "cannot be compared",
           p->stages[cohort].name, 100 * v.canary_rate, 100 * share, v.p_value, p->srm_p);
  run_halt(u, "unhealthy_split", 2, reason);
  struct decision *d = run_latest(u);
  decision_add_num(d, "canary_requests", cr);
  decision_add_num(d, "baseline_requests", br);
  decision_add_num(d, "canary_share", v.canary_rate);
  decision_add_num(d, "expected_share", share);
  decision_add_num(d, "p_value", v.p_value);
  decision_add_int(d, "window_ms", p->srm_window_ms);
}

/*
 * The split on evidence (mstore_evidence_split): every request since the stage began counts,
 * and the test stays valid however often it is asked, so a healthy split is not halted by the
 * thousandth look at it; a share outside split_margin of the expected one halts.
 */
static void split_check_evidence(struct run *u, int cohort) {
  const struct plan *p = u->plan;
  double alpha = u->mp->ev.rule_alpha;
  /* the share since exposure last changed within the stage (a kill switch switched back on):
   * what came before is another split */
  int64_t since =
      u->r->exposure_changed_ms > u->r->stage_started_ms ? u->r->exposure_changed_ms : INT64_MIN;
  struct expr_evidence x;
  mstore_evidence_split(&u->m->ms, u->mp, cohort, alpha, since, false, &x);
  if (x.n <= 0 || !(x.log_e >= -log(alpha)))
    return;
  mstore_evidence_split(&u->m->ms, u->mp, cohort, alpha, since, true, &x); /* with its bound */
  char reason[EVENT_TEXT_MAX + 64];
  snprintf(reason, sizeof reason,
           "unhealthy traffic split in %s: the canary got %.2f%% of "
           "requests, the split says %.2f%% (evidence e = %.3g >= 1/%.3g: the share is %s "
           "%.2f%% with %.4g%% confidence); canary and baseline cannot be compared",
           p->stages[cohort].name, 100 * x.estimate, 100 * x.reference, exp(x.log_e), alpha,
           x.estimate > x.reference ? "above" : "below", 100 * x.bound, 100 * (1 - alpha));
  run_halt(u, "unhealthy_split", 2, reason);
  struct decision *d = run_latest(u);
  decision_add_num(d, "canary_requests", x.canary_x);
  decision_add_num(d, "baseline_requests", x.baseline_x);
  decision_add_num(d, "canary_share", x.estimate);
  decision_add_num(d, "expected_share", x.reference);
  decision_add_num(d, "share_bound", x.bound);
  decision_add_num(d, "margin", u->mp->ev.split_margin);
  decision_add_num(d, "e_value", exp(x.log_e));
  decision_add_num(d, "alpha", alpha);
}

/*
 * The traffic split's health: does the canary get the share of requests the split says it
 * should (0.5 against a same-size control group, else the cohort's percentage)? A mismatch is
 * an unhealthy split — routing is broken, so no comparison of canary and baseline can be
 * trusted — and halts as such, not as a regression.
 */
static void split_check(struct run *u, int cohort) {
  if (!u->plan->srm_enabled)
    return;
  if (!(u->r->exposure_percent > 0))
    return; /* a kill switch or the breaker holds the canary at 0%: no split to check */
  if (u->plan->decide == PLAN_DECIDE_EVIDENCE)
    split_check_evidence(u, cohort);
  else
    split_check_estimate(u, cohort);
}

/*
 * Advance the for: of the metric criteria the rollout is heading for — its stage's exit gate
 * and the next stage's entry gate while running, its entry gate while pending — at every metric
 * evaluation, not only when the gate itself is asked (which happens after the stage's minimum,
 * or once the rollout waits for the stage): "SLOs met for 24 h" must have been watched for
 * those 24 h. A pending one arms a deadline, so it passes at its exact time.
 */
/*
 * How often a criterion is watched: a hundredth of its time scale — its window, or its for:
 * when shorter — between the rules' cadence and ROLLOUT_GATE_TRACK_MS. Ten seconds for the
 * plan's hour-long windows; every evaluation for a plan in fast motion (the demo's 20 s).
 */
static int64_t gate_cadence(const struct run *u, int stage, bool exit, int i) {
  const struct criterion *c =
      exit ? &u->plan->stages[stage].exit[i] : &u->plan->stages[stage].entry[i];
  int first;
  int64_t scale = ROLLOUT_GATE_TRACK_MS * 100;
  if (mstore_plan_find(u->mp, exit ? MSTORE_EXIT : MSTORE_ENTRY, stage, i, &first) &&
      u->mp->x[first].longest_ms < scale)
    scale = u->mp->x[first].longest_ms;
  if (c->for_ms > 0 && c->for_ms < scale)
    scale = c->for_ms;
  int64_t t = scale / 100;
  return t < ROLLOUT_METRICS_EVAL_MS ? ROLLOUT_METRICS_EVAL_MS
         : t > ROLLOUT_GATE_TRACK_MS ? ROLLOUT_GATE_TRACK_MS
                                     : t;
}

static void track_gate(struct run *u, int stage, bool exit) {
  const struct stage *s = &u->plan->stages[stage];
  const struct criterion *c = exit ? s->exit : s->entry;
  int n = exit ? s->n_exit : s->n_entry;
  struct rollout_metrics *m = u->m;
  for (int i = 0; i < n && !u->err; i++) {
    if (c[i].check != CHECK_METRIC)
      continue;
    struct expr_for *st = m->gates[stage][exit];
    int64_t due;
    bool pending = expr_for_deadline(&st[i], c[i].for_ms, &due);
    const struct rollout_reading *last =
        reading_find(u->r, m->reading_owner, exit ? READING_EXIT : READING_ENTRY, stage, c[i].name,
                     &m->gate_reading[stage][exit][i]);
    if (last && u->now - last->at_ms < gate_cadence(u, stage, exit, i) &&
        !(pending && due <= u->now)) {
      if (pending && due < m->deadline)
        m->deadline = due; /* watched again at its time whatever the cadence */
      continue;
    }
    int cohort = c[i].cohort >= 0 ? c[i].cohort : exit || stage == 0 ? stage : stage - 1;
    struct mstore_verdict v;
    if (mstore_eval_rule_values(&m->ms, u->mp, exit ? MSTORE_EXIT : MSTORE_ENTRY, stage, i, cohort,
                                u->now, &m->gates[stage][exit][i], &v) != CANARY_OK ||
        v.n == 0)
      continue;
    note_reading(u->r, m->reading_owner, exit ? READING_EXIT : READING_ENTRY, stage, c[i].name,
                 &m->gate_reading[stage][exit][i], &v, &m->gates[stage][exit][i], u->now);
    if (v.deadline < m->deadline)
      m->deadline = v.deadline;
  }
}

static void track_gates(struct run *u) {
  const struct rollout *r = u->r;
  if (r->state == ROLLOUT_PENDING) {
    track_gate(u, r->stage, false);
  } else if (r->state == ROLLOUT_RUNNING && !is_last(u->plan, r->stage)) {
    track_gate(u, r->stage, true);
    track_gate(u, r->stage + 1, false);
  }
}

/*
 * One halt rule (owner MSTORE_RULE) or alert of the plan's Alert Configuration (MSTORE_ALERT),
 * evaluated on the exposed cohort's canary: its reading is noted, and when it fires it acts —
 * alert_oncall pages on-call with the evidence (the rollout goes on), pause_canary halts,
 * rollback rolls back, each with the measured values as evidence. Alerts are the halt rules'
 * equals: the same evidence, at the same level, counted in the same false-halt budget.
 * Returns true when the rollout stopped.
 */
static bool judge(struct run *u, enum mstore_owner owner, int i, int cohort) {
  struct rollout_metrics *m = u->m;
  struct rollout *r = u->r;
  bool alert = owner == MSTORE_ALERT;
  const struct rule *rule = alert ? &u->plan->alerts[i] : &u->plan->rules[i];
  int row = alert ? PLAN_MAX_RULES + i : i;
  struct mstore_verdict v;
  if (mstore_eval_rule(&m->ms, u->mp, owner, -1, i, cohort, u->now, m->rules[row], &v) !=
          CANARY_OK ||
      v.n == 0)
    return false;
  if (v.deadline < m->deadline)
    m->deadline = v.deadline;
  note_reading(r, m->reading_owner, READING_RULE, cohort, rule->name, &m->rule_reading[row], &v,
               m->rules[row], u->now);
  if (!v.fired)
    return false;
  const struct mstore_finding *f = &v.f[v.which >= 0 ? v.which : 0];
  char reason[EVENT_TEXT_MAX + 64];
  snprintf(reason, sizeof reason, "%s %s: %s: %s", alert ? "alert" : "halt rule", rule->name,
           rule->text[0] ? rule->text : rule->name, f->explain);
  if (r->state == ROLLOUT_COMPLETED) { /* the watch after GA: people decide, paged at once */
    run_notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NULL, rule->name,
               "%s %s after GA: %s. To roll back: canaryctl rollback %s", r->service, r->version,
               reason, r->id);
    run_notify(u, NOTIFY_RELEASES, NOTIFY_SEV_CRITICAL, NULL, rule->name,
               "%s %s after GA: %s (on-call paged). To roll back: canaryctl rollback %s",
               r->service, r->version, reason, r->id);
    return false;
  }
  if (rule->action == RULE_ALERT_ONCALL) {
    run_notify(u, NOTIFY_ONCALL, rule->severity <= 1 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING,
               NULL, rule->name, "%s %s: %s", r->service, r->version, reason);
    return false;
  }
  struct mstore_finding shown = *f;
  if (isnan(shown.baseline)) { /* the same expression on the baseline, for comparison */
    int first;
    struct expr_result br;
    if (mstore_plan_find(u->mp, owner, -1, i, &first) > v.which && v.which >= 0 &&
        mstore_eval_expr(&m->ms, u->mp, &u->mp->x[first + v.which], cohort, u->now,
                         VARIANT_BASELINE, &br) == CANARY_OK &&
        br.n_compares > 0)
      shown.baseline = br.compares[0].lhs;
  }
  if (rule->action == RULE_ROLLBACK)
    run_roll_back(u, rule->name, NULL, reason);
  else
    run_halt(u, rule->name, rule->severity, reason);
  add_finding(run_latest(u), &shown);
  decision_add_str(run_latest(u), "cohort", u->plan->stages[cohort].name);
  return true;
}

/*
 * Evaluate the plan's metric halt rules and alerts on the exposed cohort's canary, at most once per
 * ROLLOUT_METRICS_EVAL_MS of event time (a deadline brings the next evaluation when data came
 * in between), and act on those that fire: pause_canary, alert_oncall or rollback, with the
 * measured values as evidence. Returns whether it evaluated.
 */
bool run_metric_rules(struct run *u, bool now_please) {
  struct rollout_metrics *m = u->m;
  struct rollout *r = u->r;
  if (!m || (r->state != ROLLOUT_PENDING && r->state != ROLLOUT_RUNNING && !r->watching)) {
    if (m)
      m->deadline = INT64_MAX;
    return false;
  }
  int cohort = rollout_exposed_stage(r, u->plan);
  if (cohort < 0) { /* nothing exposed yet: nothing to judge */
    m->deadline = INT64_MAX;
    return false;
  }
  if (u->now < m->next_eval_ms || !now_please) {
    int64_t at = u->now < m->next_eval_ms ? m->next_eval_ms : u->now + ROLLOUT_METRICS_EVAL_MS;
    if (at < m->deadline)
      m->deadline = at;
    return false;
  }
  if (cohort != m->rules_cohort) { /* a new cohort: its runs start from nothing */
    memset(m->rules, 0, sizeof m->rules);
    m->rules_cohort = cohort;
  }
  m->next_eval_ms = u->now + ROLLOUT_METRICS_EVAL_MS;
  m->deadline = INT64_MAX;
  /* Once the rollout stopped, the other rules are moot until it resumes; an alert that pages
   * still does (the seed pages on-call on latency while the halt rule pauses). */
  bool stopped = false;
  for (int i = 0; i < u->plan->n_rules && !u->err && !stopped; i++)
    stopped = judge(u, MSTORE_RULE, i, cohort);
  for (int i = 0; i < u->plan->n_alerts && !u->err; i++)
    if (!stopped || u->plan->alerts[i].action == RULE_ALERT_ONCALL)
      stopped |= judge(u, MSTORE_ALERT, i, cohort);
  /* (after GA the split is the release's own, and no gate is left) */
  if (!u->err && (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING))
    split_check(u, cohort);
  if (!u->err && (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING))
    track_gates(u);
  return true;
}
