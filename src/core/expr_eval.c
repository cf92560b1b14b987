/* Rule language, back half: three-valued evaluation against a metric source, with the evidence
 * it measured; the for: state machine; the robust z-score the source uses for zscore(). */
#include "core/expr.h"
#include "core/enum_names.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"

ENUM_NAMES(expr_truth, expr_truth, EXPR_TRUTH_MAP, EXPR_TRUTH_COUNT)
ENUM_NAMES(expr_query, expr_query, EXPR_QUERY_MAP, EXPR_QUERY_COUNT)
ENUM_NAMES(expr_why, expr_why, EXPR_WHY_MAP, EXPR_WHY_COUNT)
ENUM_NAMES(expr_for_state, expr_for_state, EXPR_FOR_STATE_MAP, EXPR_FOR_STATE_COUNT)
ENUM_PARSE(expr_for_state, expr_for_state, EXPR_FOR_STATE_COUNT)

const struct expr_limits expr_limits_default = {
    .min_obs =
        {
            [EXPR_Q_COUNTER] = 1,   /* one reporting interval: zero errors is data */
            [EXPR_Q_GAUGE] = 3,     /* "sustained" needs more than one reading */
            [EXPR_Q_QUANTILE] = 20, /* and quantile_tail / (1 - q) */
            [EXPR_Q_DIFF] = 1000,   /* the seed: canary:diff --samples 1000 */
            [EXPR_Q_ZSCORE] = 30,   /* warm-up: history points before a sigma means anything */
            [EXPR_Q_SLOS] = 0,
            [EXPR_Q_BINOMIAL] = 5, /* expected canary errors: power to see a doubled rate */
        },
    .min_events = 100,
    .quantile_tail = 1,
};

enum expr_truth expr_truth_and(enum expr_truth a, enum expr_truth b) {
  if (a == EXPR_FALSE || b == EXPR_FALSE)
    return EXPR_FALSE;
  if (a == EXPR_INSUFFICIENT || b == EXPR_INSUFFICIENT)
    return EXPR_INSUFFICIENT;
  return EXPR_TRUE;
}

enum expr_truth expr_truth_or(enum expr_truth a, enum expr_truth b) {
  if (a == EXPR_TRUE || b == EXPR_TRUE)
    return EXPR_TRUE;
  if (a == EXPR_INSUFFICIENT || b == EXPR_INSUFFICIENT)
    return EXPR_INSUFFICIENT;
  return EXPR_FALSE;
}

enum expr_truth expr_truth_not(enum expr_truth a) {
  return a == EXPR_TRUE ? EXPR_FALSE : a == EXPR_FALSE ? EXPR_TRUE : EXPR_INSUFFICIENT;
}

/* --- evaluation ------------------------------------------------------------------------------ */

/* The value of a node. A number is TRUE when known; a condition is its truth (v = 1 or 0). */
struct val {
  double v;
  enum expr_truth t;
  enum expr_why why; /* INSUFFICIENT: the first reason, at why_node */
  int why_node;
  bool counter; /* a counter query (also through baseline()): sum is its increase */
  double sum;
  int64_t per_sec; /* RATE: the window it divided by, so a ratio of rates is sum / sum */
};

struct ev {
  const struct expr *e;
  const struct expr_source *src;
  void *ctx;
  const struct expr_limits *lim;
  struct expr_result *out;
  double baseline_seen; /* first baseline value inside the comparison being evaluated */
  int rc;
  bool lazy; /* src->short_circuit, and nothing in e records history */
};

static struct val known(double v) { return (struct val){.v = v, .t = EXPR_TRUE, .why_node = -1}; }

static struct val truth(bool b) {
  return (struct val){.v = b ? 1 : 0, .t = b ? EXPR_TRUE : EXPR_FALSE, .why_node = -1};
}

static struct val unknown(enum expr_why why, int node) {
  return (struct val){.v = NAN, .t = EXPR_INSUFFICIENT, .why = why, .why_node = node};
}

static void measure(struct ev *ev, int node, enum expr_query q, enum variant v, double value,
                    int64_t n, int64_t min_n, bool sufficient) {
  struct expr_result *out = ev->out;
  if (out->n_measures >= EXPR_MAX_MEASURES) {
    out->truncated = true;
    return;
  }
  out->measures[out->n_measures++] = (struct expr_measure){.node = node,
                                                           .query = q,
                                                           .variant = v,
                                                           .value = value,
                                                           .n = n,
                                                           .min_n = min_n,
                                                           .sufficient = sufficient};
}

/* Observations a quantile q needs: min_obs, and tail values beyond q. */
static int64_t quantile_min(const struct expr_limits *lim, double q) {
  int64_t min = lim->min_obs[EXPR_Q_QUANTILE];
  if (q < 1 && lim->quantile_tail > 0) {
    double need = ceil(lim->quantile_tail / (1 - q) - 1e-9);
    if (need > (double)min)
      min = need > 1e15 ? (int64_t)1e15 : (int64_t)need;
  }
  return min;
}

/* A metric read: rate, increase, *_over_time, histogram_quantile. */
static struct val read_metric(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  const struct expr_source *src = ev->src;
  const char *metric = ev->e->names + n->metric;
  void (*gauge)(void *, enum variant, const char *, int64_t, double *, int64_t *) = NULL;
  enum expr_query q = EXPR_Q_GAUGE;
  double x = NAN;
  int64_t cnt = 0;
  bool have = true;
  switch ((enum expr_kind)n->kind) {
  case EXPR_RATE:
  case EXPR_INCREASE:
    q = EXPR_Q_COUNTER;
    if ((have = src->counter_sum != NULL))
      src->counter_sum(ev->ctx, v, metric, n->window_ms, &x, &cnt);
    break;
  case EXPR_QUANTILE:
    q = EXPR_Q_QUANTILE;
    if ((have = src->quantile != NULL))
      src->quantile(ev->ctx, v, metric, n->num, n->window_ms, &x, &cnt);
    break;
  case EXPR_AVG_OVER_TIME:
    gauge = src->gauge_avg;
    break;
  case EXPR_MAX_OVER_TIME:
    gauge = src->gauge_max;
    break;
  case EXPR_MIN_OVER_TIME:
    gauge = src->gauge_min;
    break;
  default:
    break;
  }
  if (q == EXPR_Q_GAUGE && (have = gauge != NULL))
    gauge(ev->ctx, v, metric, n->window_ms, &x, &cnt);
  int64_t min_n = q == EXPR_Q_QUANTILE ? quantile_min(ev->lim, n->num) : ev->lim->min_obs[q];
  bool enough = have && cnt > 0 && cnt >= min_n;
  measure(ev, i, q, v, have && cnt > 0 ? x : NAN, cnt, min_n, enough && !isnan(x));
  if (!have)
    return unknown(EXPR_WHY_NO_SOURCE, i);
  if (!enough)
    return unknown(EXPR_WHY_FEW_OBS, i);
  if (isnan(x))
    return unknown(EXPR_WHY_NAN, i);
  if (q != EXPR_Q_COUNTER)
    return known(x);
  struct val r = known(x);
  r.counter = true;
  r.sum = x;
  if (n->kind == EXPR_RATE) {
    r.v = x / ((double)n->window_ms / 1000.0);
    r.per_sec = n->window_ms;
  }
  return r;
}

static struct val eval(struct ev *ev, int i, enum variant v);

/* A window's counter sum as a count: the sums of integer increments are exact in a double. */
static uint64_t count_of(double x) { return x < 0.5 ? 0 : (uint64_t)llround(x); }

/*
 * Total errors the split needs before "not worse" can be claimed at level alpha with share s:
 * s^N < alpha (else even every error in the canary would not be significant) and N·s >=
 * min_expected (docs/statistics.md, rule 3).
 */
static int64_t errors_needed(double s, double alpha, double min_expected) {
  double n = min_expected > 0 ? ceil(min_expected / s - 1e-9) : 0;
  double by_p = floor(log(alpha) / log(s)) + 1; /* the smallest N with s^N < alpha */
  if (by_p > n)
    n = by_p;
  return n > 1e15 ? (int64_t)1e15 : (int64_t)n;
}

/*
 * error_excess_p(errors, requests): the p-value of the binomial split of errors between canary
 * and baseline (stats_binomial_excess), at the level num it is compared with. Known when the
 * test decides at that level — significant (p < level, at any count: the test is exact) or
 * powered (enough errors that "not worse" means something) — insufficient otherwise, so a gate
 * `>= level` never passes on too few errors and a halt `< level` never fires on them.
 */
static struct val error_excess(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  if (v != VARIANT_CANARY) /* it names its variants itself, like baseline() */
    return unknown(EXPR_WHY_VARIANT, i);
  struct val ce = eval(ev, n->a, VARIANT_CANARY), cr = eval(ev, n->b, VARIANT_CANARY);
  struct val be = eval(ev, n->a, VARIANT_BASELINE), br = eval(ev, n->b, VARIANT_BASELINE);
  const struct val *all[] = {&ce, &cr, &be, &br};
  for (size_t k = 0; k < 4; k++)
    if (all[k]->t == EXPR_INSUFFICIENT)
      return *all[k];
  if (count_of(cr.v) == 0 || count_of(br.v) == 0)
    return unknown(EXPR_WHY_FEW_EVENTS, n->b);
  struct stats_opts o = STATS_BINOMIAL_DEFAULTS;
  o.alpha = n->num;
  o.min_expected = (double)ev->lim->min_obs[EXPR_Q_BINOMIAL];
  struct stats_verdict sv;
  if (stats_binomial_excess_opts(count_of(ce.v), count_of(cr.v), count_of(be.v), count_of(br.v), &o,
                                 &sv) != CANARY_OK) {
    measure(ev, i, EXPR_Q_BINOMIAL, VARIANT_CANARY, NAN, 0, 0, false);
    return unknown(EXPR_WHY_NAN, i); /* more errors than requests, or no level bound */
  }
  uint64_t total = count_of(ce.v) + count_of(be.v);
  double share = cr.v / (cr.v + br.v);
  bool known_p = sv.outcome != STATS_INSUFFICIENT;
  measure(ev, i, EXPR_Q_BINOMIAL, VARIANT_CANARY, sv.p_value, (int64_t)total,
          errors_needed(share, o.alpha, o.min_expected), known_p);
  if (!known_p)
    return unknown(EXPR_WHY_POWER, i);
  return known(sv.p_value);
}

/*
 * error_rate_upper(errors, requests): the one-sided 99% Clopper–Pearson upper bound on the
 * rate of variant v. The count-aware form of "error rate < t": 0 errors in 50 requests bound
 * it by 8.8%, not 0%. Insufficient only with no requests: few requests give a wide bound.
 */
static struct val error_upper(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  struct val e = eval(ev, n->a, v), r = eval(ev, n->b, v);
  if (e.t == EXPR_INSUFFICIENT)
    return e;
  if (r.t == EXPR_INSUFFICIENT)
    return r;
  if (count_of(r.v) == 0)
    return unknown(EXPR_WHY_FEW_EVENTS, n->b);
  if (count_of(e.v) > count_of(r.v))
    return unknown(EXPR_WHY_NAN, i);
  return known(stats_clopper_pearson_upper(count_of(e.v), count_of(r.v), 0.01));
}

static struct val arith(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  struct val l = eval(ev, n->a, v), r = eval(ev, n->b, v);
  if (l.t == EXPR_INSUFFICIENT)
    return l;
  if (r.t == EXPR_INSUFFICIENT)
    return r;
  double x;
  switch ((enum expr_kind)n->kind) {
  case EXPR_ADD:
    x = l.v + r.v;
    break;
  case EXPR_SUB:
    x = l.v - r.v;
    break;
  case EXPR_MUL:
    x = l.v * r.v;
    break;
  case EXPR_DIV:
    if (r.counter && r.sum < ev->lim->min_events)
      return unknown(EXPR_WHY_FEW_EVENTS, n->b);
    if (r.v == 0)
      return unknown(EXPR_WHY_ZERO_DIVISOR, n->b);
    /* errors/requests over one window: divide the sums, not two rounded per-second rates */
    x = l.per_sec && l.per_sec == r.per_sec ? l.sum / r.sum : l.v / r.v;
    break;
  default:
    ev->rc = CANARY_EINVALID;
    return unknown(EXPR_WHY_NAN, i);
  }
  if (isnan(x))
    return unknown(EXPR_WHY_NAN, i);
  return known(x);
}

/* --- evidence (docs/rules.md, "Evidence") --------------------------------------------------- */

static bool is_counter(const struct expr_node *n) {
  return n->kind == EXPR_RATE || n->kind == EXPR_INCREASE;
}

/* A ratio of two counters: rate(a) / rate(b) or increase(a) / increase(b). */
static bool counter_ratio(const struct expr *e, int i, struct expr_evq *q) {
  if (i < 0 || e->nodes[i].kind != EXPR_DIV)
    return false;
  const struct expr_node *a = &e->nodes[e->nodes[i].a], *b = &e->nodes[e->nodes[i].b];
  if (!is_counter(a) || !is_counter(b) || a->metric < 0 || b->metric < 0)
    return false;
  q->num = e->names + a->metric;
  q->den = e->names + b->metric;
  return true;
}

/* A constant: numbers and thresholds under arithmetic. */
static bool constant(const struct expr *e, int i, double *out) {
  if (i < 0)
    return false;
  const struct expr_node *n = &e->nodes[i];
  double a, b;
  switch ((enum expr_kind)n->kind) {
  case EXPR_NUM:
  case EXPR_PARAM:
    *out = n->num;
    return true;
  case EXPR_NEG:
    return constant(e, n->a, &a) && (*out = -a, true);
  case EXPR_ADD:
    return constant(e, n->a, &a) && constant(e, n->b, &b) && (*out = a + b, true);
  case EXPR_SUB:
    return constant(e, n->a, &a) && constant(e, n->b, &b) && (*out = a - b, true);
  case EXPR_MUL:
    return constant(e, n->a, &a) && constant(e, n->b, &b) && (*out = a * b, true);
  case EXPR_DIV:
    return constant(e, n->a, &a) && constant(e, n->b, &b) && b != 0 && (*out = a / b, true);
  default:
    return false;
  }
}

/* The same shape (kinds, metrics, quantile) for the nodes that decide what is counted. */
static bool same_read(const struct expr *e, int i, int j) {
  if (i < 0 || j < 0)
    return i == j;
  const struct expr_node *a = &e->nodes[i], *b = &e->nodes[j];
  if (a->kind != b->kind || (a->kind == EXPR_QUANTILE && a->num != b->num))
    return false;
  if ((a->metric < 0) != (b->metric < 0) ||
      (a->metric >= 0 && strcmp(e->names + a->metric, e->names + b->metric) != 0))
    return false;
  return same_read(e, a->a, b->a) && same_read(e, a->b, b->b);
}

/* k * baseline, baseline * k, or baseline alone, where baseline is bare or of lhs's shape. */
static bool versus_baseline(const struct expr *e, int i, int lhs, double *k) {
  const struct expr_node *n = &e->nodes[i];
  if (n->kind == EXPR_BASELINE) {
    *k = 1;
    return (n->flags & EXPR_F_BARE) || same_read(e, n->a, lhs);
  }
  if (n->kind != EXPR_MUL)
    return false;
  double c;
  if (constant(e, n->a, &c) && versus_baseline(e, n->b, lhs, k))
    return *k *= c, true;
  if (constant(e, n->b, &c) && versus_baseline(e, n->a, lhs, k))
    return *k *= c, true;
  return false;
}

bool expr_evidence_form(const struct expr *e, int i, struct expr_evq *q) {
  if (!(e->alpha > 0) || i < 0 || i >= e->n_nodes)
    return false;
  const struct expr_node *n = &e->nodes[i];
  if (n->kind != EXPR_GT && n->kind != EXPR_GE && n->kind != EXPR_LT && n->kind != EXPR_LE)
    return false;
  memset(q, 0, sizeof *q);
  q->node = i;
  q->above = n->kind == EXPR_GT || n->kind == EXPR_GE;
  q->alpha = e->alpha;
  q->limit = NAN;
  q->k = NAN;
  const struct expr_node *l = &e->nodes[n->a];
  if (l->kind == EXPR_ZSCORE) { /* a spike of a ratio: against the concurrent baseline */
    if (!q->above || !counter_ratio(e, l->a, q))
      return false;
    q->versus_baseline = true;
    q->k = 1;
    return true;
  }
  if (l->kind == EXPR_QUANTILE && l->metric >= 0) {
    q->quantile = true;
    q->dist = e->names + l->metric;
    q->q = l->num;
  } else if (!counter_ratio(e, n->a, q)) {
    return false;
  }
  if (constant(e, n->b, &q->limit))
    return true;
  if (versus_baseline(e, n->b, n->a, &q->k)) {
    q->versus_baseline = true;
    return true;
  }
  return false;
}

int expr_evidence_count(const struct expr *e) {
  struct expr_evq q;
  int c = 0;
  for (int i = 0; i < e->n_nodes; i++)
    c += expr_evidence_form(e, i, &q);
  return c;
}

/* A comparison decided by the evidence: the source's e-value against 1 / alpha. */
static struct val compare_evidence(struct ev *ev, int i, const struct expr_evq *q) {
  struct expr_evidence x = {
      .log_e = NAN, .estimate = NAN, .reference = NAN, .bound = NAN, .line = NAN};
  bool have = ev->src->evidence != NULL;
  if (have)
    ev->src->evidence(ev->ctx, q, &x);
  x.above = q->above;
  double need = -log(q->alpha);
  struct val res;
  if (!have)
    res = unknown(EXPR_WHY_NO_SOURCE, i);
  else if (x.n <= 0 || isnan(x.log_e))
    res = unknown(EXPR_WHY_FEW_OBS, i);
  else
    res = truth(x.log_e >= need);
  measure(ev, i, q->quantile ? EXPR_Q_QUANTILE : EXPR_Q_COUNTER, VARIANT_CANARY, x.estimate, x.n, 1,
          res.t != EXPR_INSUFFICIENT);
  struct expr_result *out = ev->out;
  if (out->n_compares < EXPR_MAX_COMPARES)
    out->compares[out->n_compares++] = (struct expr_compare){
        .node = i,
        .lhs = x.estimate,
        .rhs = x.reference,
        .baseline = q->versus_baseline && x.baseline_n > 0 ? x.baseline_x / x.baseline_n : NAN,
        .truth = res.t,
        .evidence = true,
        .log_e = x.log_e,
        .log_needed = need,
        .ev = x};
  else
    out->truncated = true;
  return res;
}

static struct val compare(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  struct expr_evq q;
  if (v == VARIANT_CANARY && expr_evidence_form(ev->e, i, &q))
    return compare_evidence(ev, i, &q);
  double outer = ev->baseline_seen;
  ev->baseline_seen = NAN;
  struct val l = eval(ev, n->a, v), r = eval(ev, n->b, v);
  struct val res;
  if (l.t == EXPR_INSUFFICIENT)
    res = l;
  else if (r.t == EXPR_INSUFFICIENT)
    res = r;
  else {
    bool b = false;
    switch ((enum expr_kind)n->kind) {
    case EXPR_GT:
      b = l.v > r.v;
      break;
    case EXPR_GE:
      b = l.v >= r.v;
      break;
    case EXPR_LT:
      b = l.v < r.v;
      break;
    case EXPR_LE:
      b = l.v <= r.v;
      break;
    case EXPR_EQ:
      b = l.v == r.v;
      break;
    case EXPR_NE:
      b = l.v != r.v;
      break;
    default:
      ev->rc = CANARY_EINVALID;
      break;
    }
    res = truth(b);
  }
  res.counter = false;
  struct expr_result *out = ev->out;
  if (out->n_compares < EXPR_MAX_COMPARES)
    out->compares[out->n_compares++] =
        (struct expr_compare){.node = i,
                              .lhs = l.t == EXPR_INSUFFICIENT ? NAN : l.v,
                              .rhs = r.t == EXPR_INSUFFICIENT ? NAN : r.v,
                              .baseline = ev->baseline_seen,
                              .truth = res.t};
  else
    out->truncated = true;
  ev->baseline_seen = outer;
  return res;
}

/* Kleene logic; the reason of an insufficient result is that of an operand that decided it. */
static struct val logic(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  struct val l = eval(ev, n->a, v);
  if (n->kind == EXPR_NOT) {
    if (l.t == EXPR_INSUFFICIENT)
      return l;
    return truth(l.t == EXPR_FALSE);
  }
  if (ev->lazy && l.t == (n->kind == EXPR_AND ? EXPR_FALSE : EXPR_TRUE)) {
    ev->out->skipped = true; /* false and x, true or x: x cannot change it */
    return truth(l.t == EXPR_TRUE);
  }
  struct val r = eval(ev, n->b, v);
  enum expr_truth t = n->kind == EXPR_AND ? expr_truth_and(l.t, r.t) : expr_truth_or(l.t, r.t);
  if (t != EXPR_INSUFFICIENT)
    return truth(t == EXPR_TRUE);
  return l.t == EXPR_INSUFFICIENT ? l : r;
}

static struct val eval(struct ev *ev, int i, enum variant v) {
  const struct expr_node *n = &ev->e->nodes[i];
  switch ((enum expr_kind)n->kind) {
  case EXPR_NUM:
  case EXPR_PARAM:
    return known(n->num);
  case EXPR_NEG: {
    struct val a = eval(ev, n->a, v);
    return a.t == EXPR_INSUFFICIENT ? a : known(-a.v);
  }
  case EXPR_ADD:
  case EXPR_SUB:
  case EXPR_MUL:
  case EXPR_DIV:
    return arith(ev, i, v);
  case EXPR_GT:
  case EXPR_GE:
  case EXPR_LT:
  case EXPR_LE:
  case EXPR_EQ:
  case EXPR_NE:
    return compare(ev, i, v);
  case EXPR_NOT:
  case EXPR_AND:
  case EXPR_OR:
    return logic(ev, i, v);
  case EXPR_RATE:
  case EXPR_INCREASE:
  case EXPR_QUANTILE:
  case EXPR_AVG_OVER_TIME:
  case EXPR_MAX_OVER_TIME:
  case EXPR_MIN_OVER_TIME:
    return read_metric(ev, i, v);
  case EXPR_BASELINE: {
    struct val a = eval(ev, n->a, VARIANT_BASELINE);
    if (a.t != EXPR_INSUFFICIENT && isnan(ev->baseline_seen))
      ev->baseline_seen = a.v;
    return a;
  }
  case EXPR_ZSCORE: {
    struct val a = eval(ev, n->a, v);
    if (a.t == EXPR_INSUFFICIENT)
      return a; /* the source is not asked (nor records) without a current value */
    double z = NAN;
    int64_t cnt = 0;
    bool have = ev->src->zscore != NULL;
    if (have)
      ev->src->zscore(ev->ctx, v, ev->e, i, a.v, n->window_ms, &z, &cnt);
    int64_t min_n = ev->lim->min_obs[EXPR_Q_ZSCORE];
    bool enough = have && cnt > 0 && cnt >= min_n;
    measure(ev, i, EXPR_Q_ZSCORE, v, have && cnt > 0 ? z : NAN, cnt, min_n, enough && !isnan(z));
    if (!have)
      return unknown(EXPR_WHY_NO_SOURCE, i);
    if (!enough)
      return unknown(EXPR_WHY_FEW_OBS, i);
    if (isnan(z))
      return unknown(EXPR_WHY_NAN, i);
    return known(z);
  }
  case EXPR_DIFF_RATIO: {
    struct val tol = eval(ev, n->a, v);
    double x = NAN;
    int64_t cnt = 0;
    bool have = ev->src->diff_ratio != NULL;
    if (have)
      ev->src->diff_ratio(ev->ctx, tol.v, n->window_ms, &x, &cnt);
    int64_t min_n = ev->lim->min_obs[EXPR_Q_DIFF];
    bool enough = have && cnt > 0 && cnt >= min_n;
    measure(ev, i, EXPR_Q_DIFF, v, have && cnt > 0 ? x : NAN, cnt, min_n, enough && !isnan(x));
    if (!have)
      return unknown(EXPR_WHY_NO_SOURCE, i);
    if (!enough)
      return unknown(EXPR_WHY_FEW_OBS, i);
    if (isnan(x))
      return unknown(EXPR_WHY_NAN, i);
    return known(x);
  }
  case EXPR_SLOS_MET: {
    enum expr_truth t = ev->src->slos_met ? ev->src->slos_met(ev->ctx, v) : EXPR_INSUFFICIENT;
    double x = t == EXPR_TRUE ? 1 : t == EXPR_FALSE ? 0 : NAN;
    measure(ev, i, EXPR_Q_SLOS, v, x, 0, 0, t != EXPR_INSUFFICIENT);
    if (!ev->src->slos_met)
      return unknown(EXPR_WHY_NO_SOURCE, i);
    if (t == EXPR_INSUFFICIENT)
      return unknown(EXPR_WHY_SLOS, i);
    return truth(t == EXPR_TRUE);
  }
  case EXPR_ERROR_EXCESS:
    return error_excess(ev, i, v);
  case EXPR_ERROR_UPPER:
    return error_upper(ev, i, v);
  case EXPR_NAME:
  default:
    ev->rc = CANARY_EINVALID; /* unbound, or a kind this evaluator does not know */
    return unknown(EXPR_WHY_NO_SOURCE, i);
  }
}

int expr_eval(const struct expr *e, const struct expr_source *src, void *ctx, enum variant v,
              struct expr_result *out) {
  memset(out, 0, sizeof *out);
  out->truth = EXPR_INSUFFICIENT;
  out->value = NAN;
  out->why_node = -1;
  if (!e->bound || e->root < 0 || e->root >= e->n_nodes) {
    out->why = EXPR_WHY_NO_SOURCE;
    return CANARY_EINVALID;
  }
  struct ev ev = {.e = e,
                  .src = src,
                  .ctx = ctx,
                  .out = out,
                  .baseline_seen = NAN,
                  .lim = src->limits ? src->limits : &expr_limits_default,
                  .lazy = src->short_circuit};
  for (int i = 0; i < e->n_nodes && ev.lazy; i++)
    if (e->nodes[i].kind == EXPR_ZSCORE || e->nodes[i].kind == EXPR_SLOS_MET)
      ev.lazy = false; /* both record history as they evaluate: skipping them changes it */
  struct val r = eval(&ev, e->root, v);
  out->truth = r.t;
  if (r.t == EXPR_INSUFFICIENT) {
    out->why = r.why;
    out->why_node = r.why_node;
  } else {
    out->value = r.v;
  }
  return ev.rc;
}

/* --- for: -------------------------------------------------------------------------------------- */

bool expr_for_step(struct expr_for *st, int64_t now, enum expr_truth t, int64_t for_ms) {
  switch (st->state) {
  case EXPR_FOR_INACTIVE:
    if (t != EXPR_TRUE)
      return false;
    st->state = EXPR_FOR_PENDING;
    st->since = now;
    break;
  case EXPR_FOR_PENDING:
    if (t != EXPR_TRUE) {
      st->state = EXPR_FOR_INACTIVE;
      return false;
    }
    break;
  case EXPR_FOR_FIRING:
    if (t != EXPR_TRUE)
      st->state = EXPR_FOR_INACTIVE;
    return false;
  default: /* a corrupted state: start over rather than fire on it */
    st->state = EXPR_FOR_INACTIVE;
    return false;
  }
  if (now - st->since >= for_ms) {
    st->state = EXPR_FOR_FIRING;
    return true;
  }
  return false;
}

bool expr_for_deadline(const struct expr_for *st, int64_t for_ms, int64_t *at) {
  if (st->state != EXPR_FOR_PENDING)
    return false;
  *at = for_ms > INT64_MAX - st->since ? INT64_MAX : st->since + for_ms;
  return true;
}

/* --- helpers for the source ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median_sorted(const double *v, size_t n) {
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool expr_robust_z(double *hist, size_t n, double x, double min_scale, double *z) {
  if (n == 0)
    return false;
  qsort(hist, n, sizeof *hist, cmp_double);
  double med = median_sorted(hist, n);
  double mean_abs = 0;
  for (size_t i = 0; i < n; i++) {
    hist[i] = fabs(hist[i] - med);
    mean_abs += hist[i];
  }
  mean_abs /= (double)n;
  qsort(hist, n, sizeof *hist, cmp_double);
  /* 1.4826 * MAD estimates sigma for normal data; 1.2533 * mean absolute deviation likewise,
   * for histories where more than half the points equal the median (a rate that is mostly 0) */
  double scale = 1.4826 * median_sorted(hist, n);
  if (scale == 0)
    scale = 1.2533 * mean_abs;
  if (scale < min_scale)
    scale = min_scale;
  double d = x - med;
  if (scale == 0)
    *z = d == 0 ? 0 : d > 0 ? INFINITY : -INFINITY;
  else
    *z = d / scale;
  return true;
}

double expr_relative_diff(double stable, double canary) {
  double d = fabs(canary - stable);
  if (stable == 0)
    return d == 0 ? 0 : INFINITY;
  return d / fabs(stable);
}
