/*
 * A plan's metric expressions compiled once per engine (struct mstore_plan): every halt rule,
 * alert, metric gate criterion and SLO parsed and bound, with what the store must count for
 * them (quantile lines, counter pairs, diff tolerances), what each reads (for the memo), and
 * the evidence's budget: each test's level and the weights of its start points.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metric_store.h"
#include "core/mstore_internal.h"

/* --- the plan -------------------------------------------------------------------------------- */

/* Walks every metric expression of the plan: fn(plan, owner, stage, index, k, text, for, name). */
typedef int (*each_fn)(void *arg, enum mstore_owner o, int stage, int index, int k,
                       const char *text, int64_t window_ms, int64_t for_ms, const char *name);

static int each_expr(const struct plan *p, each_fn fn, void *arg) {
  int rc;
  for (int i = 0; i < p->n_rules; i++)
    for (int k = 0; k < p->rules[i].n_exprs; k++)
      if ((rc = fn(arg, MSTORE_RULE, -1, i, k, p->rules[i].exprs[k], 0, p->rules[i].for_ms,
                   p->rules[i].name)))
        return rc;
  for (int i = 0; i < p->n_alerts; i++)
    for (int k = 0; k < p->alerts[i].n_exprs; k++)
      if ((rc = fn(arg, MSTORE_ALERT, -1, i, k, p->alerts[i].exprs[k], 0, p->alerts[i].for_ms,
                   p->alerts[i].name)))
        return rc;
  for (int s = 0; s < p->n_stages; s++)
    for (int g = 0; g < 2; g++) {
      const struct criterion *cs = g ? p->stages[s].exit : p->stages[s].entry;
      int n = g ? p->stages[s].n_exit : p->stages[s].n_entry;
      for (int i = 0; i < n; i++)
        if (cs[i].check == CHECK_METRIC &&
            (rc = fn(arg, g ? MSTORE_EXIT : MSTORE_ENTRY, s, i, 0, cs[i].expr, cs[i].window_ms,
                     cs[i].for_ms, cs[i].name)))
          return rc;
    }
  for (int i = 0; i < p->n_slos; i++)
    if ((rc = fn(arg, MSTORE_SLO, -1, i, 0, p->slos[i].expr, 0, 0, p->slos[i].name)))
      return rc;
  return CANARY_OK;
}

static int count_one(void *arg, enum mstore_owner o, int stage, int index, int k, const char *text,
                     int64_t window_ms, int64_t for_ms, const char *name) {
  (*(int *)arg)++;
  return CANARY_OK;
}

struct compile {
  struct mstore_plan *mp;
  const struct plan *plan;
  char *why;
  size_t why_len;
};

/* "halt_rules error_rate" / "friendly_gp exit canary_diff" / "slos availability" (+ #k). */
static void owner_label(const struct plan *p, enum mstore_owner o, int stage, int k, int n_exprs,
                        const char *name, char *buf, size_t len) {
  if (o == MSTORE_ENTRY || o == MSTORE_EXIT)
    snprintf(buf, len, "%s %s %s", p->stages[stage].name, mstore_owner_name(o), name);
  else if (n_exprs > 1)
    snprintf(buf, len, "%s %s expr %d", mstore_owner_name(o), name, k + 1);
  else
    snprintf(buf, len, "%s %s", mstore_owner_name(o), name);
}

static bool same_num(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* A quantile form's line: counted at ingest (struct mstore_linecount). */
static void add_line(struct mstore_plan *mp, const struct expr_evq *q) {
  for (int k = 0; k < mp->n_lines; k++) {
    const struct mstore_line *l = &mp->lines[k];
    if (!strcmp(l->dist, q->dist) && l->q == q->q && same_num(l->limit, q->limit) &&
        same_num(l->k, q->k))
      return;
  }
  if (mp->n_lines == MSTORE_MAX_LINES)
    return; /* more lines than counted: those forms read no data (insufficient) */
  struct mstore_line *l = &mp->lines[mp->n_lines++];
  snprintf(l->dist, sizeof l->dist, "%s", q->dist);
  l->q = q->q;
  l->limit = q->versus_baseline ? NAN : q->limit;
  l->k = q->versus_baseline ? q->k : NAN;
}

int mstore_line_index(const struct mstore *ms, const struct expr_evq *q) {
  double limit = q->versus_baseline ? NAN : q->limit, k = q->versus_baseline ? q->k : NAN;
  for (int i = 0; i < ms->cfg.n_lines; i++) {
    const struct mstore_line *l = &ms->cfg.lines[i];
    if (!strcmp(l->dist, q->dist) && l->q == q->q && same_num(l->limit, limit) && same_num(l->k, k))
      return i;
  }
  return -1;
}

/* The ratios of counters the plan's evidence tests: their numerators keep dispersion sums. */
static void add_pairs(struct mstore_plan *mp, const struct expr *e) {
  struct expr_evq q;
  for (int i = 0; i < e->n_nodes; i++) {
    if (!expr_evidence_form(e, i, &q))
      continue;
    if (q.quantile) {
      add_line(mp, &q);
      continue;
    }
    int k = 0;
    while (k < mp->n_pairs && (strcmp(mp->pairs[k].num, q.num) || strcmp(mp->pairs[k].den, q.den)))
      k++;
    if (k == mp->n_pairs && k < MSTORE_MAX_PAIRS) {
      snprintf(mp->pairs[k].num, sizeof mp->pairs[k].num, "%s", q.num);
      snprintf(mp->pairs[k].den, sizeof mp->pairs[k].den, "%s", q.den);
      mp->pairs[k].prior_phi = MSTORE_DISP_PRIOR_PHI;
      mp->pairs[k].prior_n = MSTORE_DISP_PRIOR;
      mp->n_pairs++;
    }
  }
}

static int add_tolerance(struct mstore_plan *mp, double tol) {
  for (int i = 0; i < mp->n_tolerances; i++)
    if (mp->tolerances[i] == tol)
      return CANARY_OK;
  if (mp->n_tolerances == MSTORE_MAX_TOLERANCES)
    return CANARY_EFULL;
  mp->tolerances[mp->n_tolerances++] = tol;
  return CANARY_OK;
}

static int compile_one(void *arg, enum mstore_owner o, int stage, int index, int k,
                       const char *text, int64_t window_ms, int64_t for_ms, const char *name) {
  struct compile *c = arg;
  struct mstore_plan *mp = c->mp;
  struct mstore_expr *x = &mp->x[mp->n];
  char label[2 * PLAN_NAME_MAX + 32];
  int n_exprs = o == MSTORE_RULE    ? c->plan->rules[index].n_exprs
                : o == MSTORE_ALERT ? c->plan->alerts[index].n_exprs
                                    : 1;
  owner_label(c->plan, o, stage, k, n_exprs, name, label, sizeof label);
  struct expr_error err;
  int rc = expr_parse(text, &x->e, &err);
  if (!rc)
    rc = expr_bind(&x->e, c->plan->params, c->plan->n_params,
                   expr_default_window(window_ms, for_ms), &err);
  if (rc) {
    char caret[2 * PLAN_EXPR_MAX + 200];
    expr_error_render(text, &err, caret, sizeof caret);
    return mstore_fail(c->why, c->why_len, rc, "%s:\n%s", label, caret);
  }
  if (!expr_is_condition(&x->e))
    return mstore_fail(c->why, c->why_len, CANARY_EINVALID,
                       "%s: '%s' is a number, not a condition (compare it, as in x > 1)", label,
                       text);
  if (expr_uses(&x->e, EXPR_SLOS_MET) && o == MSTORE_SLO)
    return mstore_fail(c->why, c->why_len, CANARY_EINVALID, "%s: an SLO cannot use slos_met()",
                       label);
  if (expr_uses(&x->e, EXPR_SLOS_MET) && c->plan->n_slos == 0)
    return mstore_fail(c->why, c->why_len, CANARY_EINVALID,
                       "%s: slos_met() but the plan defines no slos", label);
  for (int i = 0; i < x->e.n_nodes; i++) {
    const struct expr_node *nd = &x->e.nodes[i];
    if (nd->kind == EXPR_DIFF_RATIO && nd->a >= 0 &&
        (x->e.nodes[nd->a].kind == EXPR_NUM || x->e.nodes[nd->a].kind == EXPR_PARAM) &&
        add_tolerance(mp, x->e.nodes[nd->a].num))
      return mstore_fail(c->why, c->why_len, CANARY_EINVALID,
                         "%s: more than %d distinct canary_diff_ratio tolerances", label,
                         MSTORE_MAX_TOLERANCES);
  }
  int64_t longest = expr_longest_window(&x->e);
  if (longest > mp->longest_ms)
    mp->longest_ms = longest;
  x->longest_ms = longest;
  x->owner = o;
  x->stage = stage;
  x->index = index;
  x->k = k;
  x->for_ms = for_ms;
  snprintf(x->name, sizeof x->name, "%s", name);
  /* the zscore key: where the expression is and what it says, so a restart with the same plan
   * finds its history and an edited expression starts a new one */
  uint64_t h = fnv1a(FNV_SEED, label, strlen(label));
  h = fnv1a(h, text, strlen(text));
  x->key = h;
  if (o == MSTORE_SLO && mp->n_slos++ == 0)
    mp->slo_first = mp->n;
  if (o == MSTORE_RULE && index < PLAN_MAX_RULES && mp->rule_count[index]++ == 0)
    mp->rule_first[index] = mp->n;
  if ((o == MSTORE_ENTRY || o == MSTORE_EXIT) && stage >= 0 && stage < PLAN_MAX_STAGES &&
      index >= 0 && index < PLAN_MAX_CRITERIA)
    mp->gate_first[stage][o == MSTORE_EXIT][index] = (int16_t)(mp->n + 1);
  mp->n++;
  return CANARY_OK;
}

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/*
 * Add what node i of e reads, evaluated for variant v, to x's memo inputs: metric names with the
 * variants they are read for (baseline() and error_excess_p() switch variant, as expr_eval
 * does), the diff windows, the windows' common divisor. False: it reads something the memo
 * cannot watch (a zscore history, too many names).
 */
static bool add_reads(struct mstore_expr *x, const struct mstore_plan *mp, const struct expr *e,
                      int i, enum variant v) {
  if (i < 0)
    return true;
  const struct expr_node *nd = &e->nodes[i];
  switch (nd->kind) {
  case EXPR_ZSCORE:
    return false;
  case EXPR_BASELINE:
    return add_reads(x, mp, e, nd->a, VARIANT_BASELINE);
  case EXPR_ERROR_EXCESS:
    return add_reads(x, mp, e, nd->a, VARIANT_CANARY) &&
           add_reads(x, mp, e, nd->b, VARIANT_CANARY) &&
           add_reads(x, mp, e, nd->a, VARIANT_BASELINE) &&
           add_reads(x, mp, e, nd->b, VARIANT_BASELINE);
  case EXPR_SLOS_MET:
    for (int k = 0; k < mp->n_slos; k++) {
      const struct expr *slo = &mp->x[mp->slo_first + k].e;
      if (!add_reads(x, mp, slo, slo->root, v))
        return false;
    }
    return true;
  case EXPR_DIFF_RATIO:
    x->reads_diff = true;
    break;
  default:
    break;
  }
  if (nd->window_ms > 0)
    x->window_gcd_ms = gcd64(x->window_gcd_ms, nd->window_ms);
  const char *m = nd->metric >= 0 ? expr_metric(e, i) : NULL;
  if (m) {
    int k = 0;
    while (k < x->n_reads && strcmp(x->reads[k], m) != 0)
      k++;
    if (k == MSTORE_MEMO_READS)
      return false;
    if (k == x->n_reads)
      x->reads[x->n_reads++] = m;
    x->read_variants[k] |= (uint8_t)(1u << v);
  }
  return add_reads(x, mp, e, nd->a, v) && add_reads(x, mp, e, nd->b, v);
}

/* How expression x decides: on evidence, or on the estimate as written. */
static bool decides_on_evidence(const struct plan *p, const struct mstore_expr *x) {
  enum plan_decide d = PLAN_DECIDE_DEFAULT;
  if (x->owner == MSTORE_RULE)
    d = p->rules[x->index].decide;
  else if (x->owner == MSTORE_ALERT)
    d = p->alerts[x->index].decide;
  if (d == PLAN_DECIDE_DEFAULT)
    d = p->decide;
  return d == PLAN_DECIDE_EVIDENCE;
}

static bool same_name(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static bool same_number(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* Two comparisons that are one test: the same counts against the same limit, the same way
 * (their e-values are the same function of the same data, whatever rule makes them). */
static bool same_test(const struct expr_evq *a, const struct expr_evq *b) {
  return a->above == b->above && a->quantile == b->quantile &&
         a->versus_baseline == b->versus_baseline && same_name(a->num, b->num) &&
         same_name(a->den, b->den) && same_name(a->dist, b->dist) && same_number(a->q, b->q) &&
         same_number(a->limit, b->limit) && same_number(a->k, b->k);
}

static double rule_weight(const struct plan *p, const struct mstore_expr *x) {
  const struct rule *r = x->owner == MSTORE_RULE ? &p->rules[x->index] : &p->alerts[x->index];
  return r->budget_weight > 0 ? r->budget_weight : 1;
}

/* Adds expression i's comparisons to the budget's distinct tests. One that does not fit is
 * paid for again (a smaller share for everyone: still within the budget). */
static void add_tests(struct mstore_evidence_plan *ev, const struct mstore_plan *mp, int i,
                      double w) {
  const struct expr *e = &mp->x[i].e;
  struct expr_evq q;
  for (int n = 0; n < e->n_nodes; n++) {
    if (!expr_evidence_form(e, n, &q))
      continue;
    int k = 0;
    while (k < ev->n_distinct && !same_test(&ev->tests[k].q, &q))
      k++;
    if (k < ev->n_distinct) {
      if (w > ev->tests[k].weight)
        ev->units += w - ev->tests[k].weight, ev->tests[k].weight = w;
      continue;
    }
    if (k < MSTORE_MAX_TESTS)
      ev->tests[ev->n_distinct++] = (struct mstore_test){.q = q, .weight = w, .x = i};
    ev->units += w;
  }
}

int mstore_test_index(const struct mstore_plan *mp, const struct expr_evq *q) {
  for (int k = 0; k < mp->ev.n_distinct; k++)
    if (same_test(&mp->ev.tests[k].q, q))
      return k;
  return -1;
}

/*
 * The evidence's levels and weights. The false-halt budget is split across the distinct
 * comparisons over counts that the halt rules and the alerts make, and the split check, in
 * proportion to their rules' budget_weight (1 unless the plan says): a union bound — a healthy
 * release is halted, or on-call paged, by any of them with probability at most the budget. A
 * comparison made by several rules is one event and paid for once. Each test's e-value mixes
 * start points: half the weight on the release's start (evidence carried across every stage),
 * a quarter over the later stages' starts, a quarter over the hours of the stages (a regression
 * that begins mid-stage is tested from the next hour on).
 */
static void plan_evidence(struct mstore_plan *mp, const struct plan *p) {
  struct mstore_evidence_plan *ev = &mp->ev;
  for (int i = 0; i < mp->n; i++) {
    struct mstore_expr *x = &mp->x[i];
    if (!decides_on_evidence(p, x))
      continue;
    x->e.alpha = 1; /* a placeholder, so expr_evidence_count sees the forms */
    x->n_evidence = expr_evidence_count(&x->e);
    if (!x->n_evidence) {
      x->e.alpha = 0;
      continue;
    }
    add_pairs(mp, &x->e);
    ev->on = true;
    if (x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT)
      add_tests(ev, mp, i, rule_weight(p, x));
  }
  bool split = p->srm_enabled && p->decide == PLAN_DECIDE_EVIDENCE;
  ev->on |= split;
  ev->units += split;
  ev->n_tests = ev->n_distinct + split;
  double budget = p->false_halt_budget > 0 ? p->false_halt_budget : 0.01;
  ev->rule_alpha = ev->units > 0 ? budget / ev->units : budget;
  ev->gate_alpha = p->gate_alpha > 0 ? p->gate_alpha : 0.01;
  for (int i = 0; i < mp->n; i++) {
    struct mstore_expr *x = &mp->x[i];
    if (x->e.alpha > 0)
      x->e.alpha = x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT
                       ? ev->rule_alpha * rule_weight(p, x)
                       : ev->gate_alpha;
  }
  for (int k = 0; k < ev->n_distinct; k++)
    ev->tests[k].q.alpha = ev->rule_alpha * ev->tests[k].weight;
  int slices = 0;
  for (int s = 0; s < p->n_stages; s++) {
    const struct stage *st = &p->stages[s];
    bool last = s == p->n_stages - 1;
    /* (the last stage is exposed during the watch after GA: a change there begins mid-watch) */
    int64_t span = st->max_duration_ms ? st->max_duration_ms : last ? p->watch_ms : 72 * 3600000LL;
    ev->slices[s] = span ? (int)((span + MSTORE_SLICE_MS - 1) / MSTORE_SLICE_MS) + 1 : 0;
    slices += ev->slices[s];
    ev->margin[s] = st->traffic_percent >= p->margin_from_percent && p->margin_from_percent > 0
                        ? p->excess_margin
                        : 0;
    ev->share[s] = p->srm_control ? 0.5 : st->traffic_percent / 100.0;
  }
  ev->split_margin = p->srm_margin;
  ev->last_cohort = p->n_stages - 1;
  double w_release = 0.5, w_stages = 0.25, w_slices = 0.25;
  if (p->n_stages < 2)
    w_release += w_stages, w_stages = 0;
  if (!slices)
    w_release += w_slices, w_slices = 0;
  ev->log_w_release = log(w_release);
  ev->log_w_stage = w_stages > 0 ? log(w_stages / (p->n_stages - 1)) : -INFINITY;
  /* The slices' weight is shared by the stages equally, then by each stage's slices: a change
   * that begins mid-stage in the short first stage (where the canary's events are few and each
   * one counts) costs log(4 x 9) nats, not log(4 x the plan's 500 slices); in the long stages
   * it costs about the same as a uniform share would. Any split that sums to w_slices keeps the
   * guarantee (docs/statistics.md, "Where a test starts"). */
  int sliced = 0;
  for (int s = 0; s < p->n_stages; s++)
    sliced += ev->slices[s] > 0;
  for (int s = 0; s < PLAN_MAX_STAGES; s++)
    ev->log_w_slice[s] = s < p->n_stages && w_slices > 0 && ev->slices[s] > 0
                             ? log(w_slices / sliced / ev->slices[s])
                             : -INFINITY;
  /* slos_met() reads the SLOs' evidence: its memo must watch what theirs would (after the
   * budget was counted, which is the halt rules' own comparisons) */
  int slo_evidence = 0;
  for (int i = 0; i < mp->n_slos; i++)
    slo_evidence += mp->x[mp->slo_first + i].n_evidence;
  for (int i = 0; slo_evidence && i < mp->n; i++)
    if (expr_uses(&mp->x[i].e, EXPR_SLOS_MET))
      mp->x[i].n_evidence += slo_evidence;
  /* the evidence counts from the release's start: a restarted worker replays that much (every
   * stage's maximum; a stage held longer is counted from the replay's start after a restart) */
  int64_t whole = ev->on ? p->watch_ms : 0; /* and the watch after GA */
  for (int s = 0; ev->on && s < p->n_stages; s++)
    whole += p->stages[s].max_duration_ms;
  if (whole > mp->replay_ms)
    mp->replay_ms = whole;
}

/* The memo inputs of every expression (after all are compiled: slos_met() reads the SLOs). */
static void plan_reads(struct mstore_plan *mp) {
  for (int i = 0; i < mp->n; i++) {
    struct mstore_expr *x = &mp->x[i];
    x->memo_ok = add_reads(x, mp, &x->e, x->e.root, VARIANT_CANARY) && x->window_gcd_ms > 0;
  }
}

int mstore_plan_init(struct mstore_plan *mp, const struct plan *plan, char *why, size_t why_len) {
  memset(mp, 0, sizeof *mp);
  int n = 0;
  (void)each_expr(plan, count_one, &n);
  if (n) {
    mp->x = calloc((size_t)n, sizeof *mp->x);
    if (!mp->x)
      return mstore_fail(why, why_len, CANARY_ENOMEM, "out of memory compiling the plan");
  }
  struct compile c = {mp, plan, why, why_len};
  int rc = each_expr(plan, compile_one, &c);
  if (rc) {
    mstore_plan_free(mp);
  } else {
    mp->replay_ms = mp->longest_ms;
    plan_evidence(mp, plan);
    plan_reads(mp);
  }
  return rc;
}

void mstore_plan_free(struct mstore_plan *mp) {
  free(mp->x);
  memset(mp, 0, sizeof *mp);
}

int mstore_plan_find(const struct mstore_plan *mp, enum mstore_owner owner, int stage, int index,
                     int *first) {
  int n = 0;
  *first = -1;
  if (owner == MSTORE_RULE && index >= 0 && index < PLAN_MAX_RULES) {
    if (mp->rule_count[index])
      *first = mp->rule_first[index];
    return mp->rule_count[index];
  }
  if ((owner == MSTORE_ENTRY || owner == MSTORE_EXIT) && stage >= 0 && stage < PLAN_MAX_STAGES &&
      index >= 0 && index < PLAN_MAX_CRITERIA) { /* a criterion has one expression */
    int k = mp->gate_first[stage][owner == MSTORE_EXIT][index];
    *first = k - 1;
    return k > 0;
  }
  for (int i = 0; i < mp->n; i++) {
    const struct mstore_expr *x = &mp->x[i];
    if (x->owner != owner || x->index != index ||
        ((owner == MSTORE_ENTRY || owner == MSTORE_EXIT) && x->stage != stage))
      continue;
    if (!n++)
      *first = i;
  }
  return n;
}

void mstore_config_for_plan(struct mstore_config *cfg, const struct mstore_plan *mp) {
  cfg->n_tolerances = mp->n_tolerances;
  memcpy(cfg->tolerances, mp->tolerances, sizeof cfg->tolerances);
  cfg->n_pairs = mp->n_pairs;
  memcpy(cfg->pairs, mp->pairs, sizeof cfg->pairs);
  cfg->n_lines = mp->n_lines;
  memcpy(cfg->lines, mp->lines, sizeof cfg->lines);
  if (mp->longest_ms + cfg->bucket_ms > cfg->retention_ms)
    cfg->retention_ms = mp->longest_ms + cfg->bucket_ms;
  int64_t points = mp->longest_ms / cfg->zscore_step_ms + 1;
  if (points > cfg->zscore_points && points <= 1 << 20)
    cfg->zscore_points = (int)points;
}
