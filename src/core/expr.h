/* The rule language: PromQL-like conditions over metric windows (docs/rules.md). Pure: no I/O,
 * no clock, no heap. Parsed once into a small node array, bound to the plan's thresholds, then
 * evaluated as often as needed against an abstract metric source. */
#ifndef CANARY_EXPR_H
#define CANARY_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/event.h" /* enum variant */
#include "core/plan.h"  /* struct plan_param */

#define EXPR_SRC_MAX 4096  /* longest accepted source text, bytes */
#define EXPR_MAX_NODES 64  /* terms and operators of one expression */
#define EXPR_NAMES_MAX 256 /* bytes of names (metrics, thresholds) of one expression */
#define EXPR_MAX_DEPTH 24  /* nesting of parentheses and function calls */
#define EXPR_DEFAULT_WINDOW_MS (5 * 60 * 1000LL) /* window of `latency` with no window, no for */
#define EXPR_MAX_MEASURES 16 /* source queries kept as evidence by one evaluation */
#define EXPR_MAX_COMPARES 8  /* comparisons kept as evidence by one evaluation */

/*
 * Node kinds. Operands are node indices a (and b). NUM and PARAM hold their value in num;
 * metric functions hold the metric and window; QUANTILE also q in num.
 */
#define EXPR_KIND_MAP(XX)                                                                          \
  XX(NUM, "number")  /* literal: 0.01, 5, 0.5% */                                                  \
  XX(NAME, "name")   /* bare name, not yet bound (expr_bind) */                                    \
  XX(PARAM, "param") /* a halt condition; num = its value */                                       \
  XX(NEG, "-")       /* -a */                                                                      \
  XX(NOT, "not")     /* not a */                                                                   \
  XX(ADD, "+")                                                                                     \
  XX(SUB, "-")                                                                                     \
  XX(MUL, "*")                                                                                     \
  XX(DIV, "/")                                                                                     \
  XX(GT, ">")                                                                                      \
  XX(GE, ">=")                                                                                     \
  XX(LT, "<")                                                                                      \
  XX(LE, "<=")                                                                                     \
  XX(EQ, "==")                                                                                     \
  XX(NE, "!=")                                                                                     \
  XX(AND, "and")                                                                                   \
  XX(OR, "or")                                                                                     \
  XX(RATE, "rate")                    /* counter: sum over the window per second */                \
  XX(INCREASE, "increase")            /* counter: sum over the window */                           \
  XX(QUANTILE, "histogram_quantile")  /* distribution: quantile num of the window */               \
  XX(AVG_OVER_TIME, "avg_over_time")  /* gauge */                                                  \
  XX(MAX_OVER_TIME, "max_over_time")  /* gauge */                                                  \
  XX(MIN_OVER_TIME, "min_over_time")  /* gauge */                                                  \
  XX(BASELINE, "baseline")            /* a on the baseline variant */                              \
  XX(ZSCORE, "zscore")                /* a in robust sigmas over its history (window) */           \
  XX(DIFF_RATIO, "canary_diff_ratio") /* share of diff samples beyond tolerance a */               \
  XX(SLOS_MET, "slos_met")            /* all of the plan's SLOs hold */                            \
  XX(ERROR_EXCESS, "error_excess_p")  /* p-value: canary's errors a vs baseline's, over  \
                                           requests b; num = level it is compared with */         \
  XX(ERROR_UPPER, "error_rate_upper") /* 99% upper bound on errors a / requests b */

enum expr_kind {
#define XX(name, text) EXPR_##name,
  EXPR_KIND_MAP(XX)
#undef XX
      EXPR_KIND_COUNT
};

/* Node flags. */
#define EXPR_F_COND 0x01      /* the node is a condition (true/false), not a number */
#define EXPR_F_NO_WINDOW 0x02 /* written without a window: the window comes from expr_bind */
#define EXPR_F_SHORTHAND 0x04 /* QUANTILE written as a name, webvitals_lcp_p75 */
#define EXPR_F_BARE 0x08      /* BASELINE written bare: a is the comparison's left-hand side */
#define EXPR_F_ARG 0x10       /* INCREASE written as an argument, errors[5m] (error_excess_p) */

struct expr_node {
  uint8_t kind;      /* enum expr_kind */
  uint8_t flags;     /* EXPR_F_* */
  int16_t a, b;      /* operands, -1 = none */
  int16_t name;      /* the name as written (names[] offset), -1 = none */
  int16_t metric;    /* metric functions: the metric read, after aliases; -1 = none */
  uint16_t pos;      /* byte offset of the node's first character in the source */
  double num;        /* NUM, PARAM: value; QUANTILE: q */
  int64_t window_ms; /* metric functions, DIFF_RATIO: window; ZSCORE: history */
};

/*
 * A parsed expression. A plain value of about 2.3 KB: no heap, nothing to free, copy it freely
 * (node references are indices). root is the top node.
 */
struct expr {
  struct expr_node nodes[EXPR_MAX_NODES];
  int n_nodes;
  int root;
  bool bound; /* every name resolved and every window known: expr_eval may run */
  /* 0: every comparison is decided on the values over its window, as written (the estimate).
   * > 0: a comparison over counts (expr_evidence_form) is decided by an anytime-valid test at
   * this level — the evidence (docs/rules.md, "Evidence"). Set by the plan's compiler. */
  double alpha;
  char names[EXPR_NAMES_MAX]; /* NUL-terminated names, referenced by offset */
  int names_len;
};

/* Where and why parsing or binding failed. pos is a byte offset into the source. */
struct expr_error {
  int pos;
  char message[160];
};

const char *expr_kind_name(enum expr_kind k);

/*
 * Parses src into *out. Returns CANARY_OK, or CANARY_EPARSE with *err (may be NULL) filled: the
 * byte position of the fault and a message. Bare names are kept unresolved: call expr_bind
 * before expr_eval unless out->bound is already true (an expression with neither bare names nor
 * metrics written without a window).
 */
int expr_parse(const char *src, struct expr *out, struct expr_error *err) CANARY_MUSTCHECK;

/*
 * Resolves bare names and default windows:
 *  - a bare name that is one of params (the plan's halt_conditions) is that threshold;
 *  - otherwise a name ending in _pNN (webvitals_lcp_p75) is histogram_quantile(0.NN, metric)
 *    of the distribution before the suffix (after the aliases of docs/rules.md);
 *  - a metric written without a window (histogram_quantile(0.99, latency)) reads window_ms.
 * window_ms <= 0 means EXPR_DEFAULT_WINDOW_MS; see expr_default_window. May be called again
 * (after a plan reload). Returns CANARY_OK, or CANARY_EINVALID with *err filled (the position of
 * an unknown name, a negative tolerance).
 */
int expr_bind(struct expr *e, const struct plan_param *params, int n_params, int64_t window_ms,
              struct expr_error *err) CANARY_MUSTCHECK;

/*
 * The window a metric written without one reads: the criterion's window if set, else the rule's
 * `for` (the seed's "histogram_quantile(0.99, latency) ... for: 10m" means "over those 10
 * minutes"), else EXPR_DEFAULT_WINDOW_MS.
 */
int64_t expr_default_window(int64_t window_ms, int64_t for_ms);

/*
 * Reads a number literal at s — digits [. digits] [e [+-] digits] [%], 0.5% being 0.005 — with
 * '.' whatever the locale, rounded as the C compiler and the YAML loader round it (so 0.01 here
 * equals error_rate: 0.01 there). Returns the bytes read, 0 when s does not start with a digit.
 */
size_t expr_scan_number(const char *s, double *out);

/* True when the expression is a condition (a rule or a gate), false when it is a number. */
bool expr_is_condition(const struct expr *e);

/* True when some node of e is of kind k (an SLO must not use slos_met(); a rule that uses
 * EXPR_BASELINE needs the baseline variant's windows, EXPR_DIFF_RATIO the diff samples). */
bool expr_uses(const struct expr *e, enum expr_kind k);

/* The longest window (or zscore history) the expression reads, ms; 0 if it reads none. */
int64_t expr_longest_window(const struct expr *e);

/* The metric node reads (after aliases), or NULL when it reads none. */
const char *expr_metric(const struct expr *e, int node);
/* The name as written (threshold, metric, shorthand), or NULL. */
const char *expr_name(const struct expr *e, int node);

/*
 * Writes node (-1 = the root) as canonical text — single spaces, minimal parentheses, metric
 * aliases resolved, windows shown once bound — into buf. Parsing the text gives the same
 * evaluation. Returns the length it needed, like snprintf.
 */
size_t expr_format(const struct expr *e, int node, char *buf, size_t len);

/*
 * Writes the line of src holding the fault, then a caret under it and the message:
 *     rate(errors[5m) > 0.01
 *                   ^ expected ']' after the window
 * (no trailing newline; tabs are kept so the caret lines up). Returns the length it needed.
 */
size_t expr_error_render(const char *src, const struct expr_error *e, char *buf, size_t len);

/* --- evaluation ------------------------------------------------------------------------------ */

#define EXPR_TRUTH_MAP(XX)                                                                         \
  XX(FALSE, "false")                                                                               \
  XX(TRUE, "true")                                                                                 \
  XX(INSUFFICIENT, "insufficient data") /* an operand had too few observations */

enum expr_truth {
#define XX(name, text) EXPR_##name,
  EXPR_TRUTH_MAP(XX)
#undef XX
      EXPR_TRUTH_COUNT
};
const char *expr_truth_name(enum expr_truth t);

/* Three-valued logic (Kleene): false and ? = false, true or ? = true, not ? = ?. */
enum expr_truth expr_truth_and(enum expr_truth a, enum expr_truth b);
enum expr_truth expr_truth_or(enum expr_truth a, enum expr_truth b);
enum expr_truth expr_truth_not(enum expr_truth a);

/* What the evaluator asks the source; each kind has its own minimum observation count. */
#define EXPR_QUERY_MAP(XX)                                                                         \
  XX(COUNTER, "counter")   /* rate, increase: n = reporting intervals in the window */             \
  XX(GAUGE, "gauge")       /* *_over_time: n = gauge readings in the window */                     \
  XX(QUANTILE, "quantile") /* histogram_quantile: n = values in the window */                      \
  XX(DIFF, "diff")         /* canary_diff_ratio: n = diff samples in the window */                 \
  XX(ZSCORE, "zscore")     /* zscore: n = history points (the warm-up) */                          \
  XX(SLOS, "slos")         /* slos_met: the source answers with a truth, n is not used */          \
  XX(BINOMIAL, "binomial") /* error_excess_p: n = errors of both variants; its minimum is  \
                              the canary errors expected under "same rate" (statistics.md) */

enum expr_query {
#define XX(name, text) EXPR_Q_##name,
  EXPR_QUERY_MAP(XX)
#undef XX
      EXPR_QUERY_COUNT
};
const char *expr_query_name(enum expr_query q);

/*
 * Minimum counts below which an operand is "insufficient data" rather than a value.
 * min_obs[kind]: observations a query must report. min_events: a counter used as a divisor
 * (errors / requests) must have counted at least this many events over its window — a ratio
 * of 0 errors in 12 requests is no evidence. quantile_tail: a quantile q also needs
 * ceil(quantile_tail / (1 - q)) values (so p99 with tail 1 needs 100: fewer is just the max).
 */
struct expr_limits {
  int64_t min_obs[EXPR_QUERY_COUNT];
  double min_events;
  double quantile_tail;
};
/* counter 1, gauge 3, quantile 20, diff 1000 (the seed's --samples 1000), zscore 30, slos 0,
 * binomial 5 (expected canary errors, docs/statistics.md); min_events 100; quantile_tail 1. */
extern const struct expr_limits expr_limits_default;

/*
 * A comparison over counts, as the evidence decides it. The forms (expr_evidence_form):
 *   rate(a[w]) / rate(b[w])  OP  limit          absolute: the rate of a per b (increase too)
 *   histogram_quantile(q, d[w])  OP  limit      absolute: the share of d above limit, vs 1 - q
 *   rate(a) / rate(b)  OP  k * baseline         against the baseline: the canary's rate over
 *                                               the baseline's, vs k (a margin on top, by cohort)
 *   histogram_quantile(q, d)  OP  k * baseline  the share above k x the baseline's quantile
 *   zscore(rate(a) / rate(b), h)  >  s          a spike: the canary's rate above the baseline's
 * with OP one of > >= (evidence that the left side is above) or < <= (below). limit and k are
 * numbers or thresholds; `baseline` is bare or baseline(<the left side>).
 */
struct expr_evq {
  int node;              /* the comparison */
  bool above;            /* > >=: evidence that it is above; < <=: below */
  bool quantile;         /* a distribution's quantile; else a ratio of two counters */
  bool versus_baseline;  /* the right side is k x the baseline's left side */
  const char *num, *den; /* counters (ratio forms) */
  const char *dist;      /* distribution (quantile forms) */
  double q;              /* the quantile */
  double limit;          /* absolute forms */
  double k;              /* against the baseline */
  double alpha;          /* the level: e->alpha */
};

/*
 * What the source found. n = 0 (no trials for the canary in the exposed cohort, or none for the
 * baseline it is compared with) is insufficient data, as ever. Otherwise the comparison holds
 * when log_e >= log(1 / alpha).
 */
struct expr_evidence {
  double log_e;              /* log of the e-value of the deciding mixture */
  double estimate;           /* canary: rate, share above the limit, or rate over the baseline's */
  double reference;          /* what the estimate is held against: limit, 1 - q, or k */
  double bound;              /* confidence bound on the estimate at 1 - alpha (lower when above),
                            * over the exposed cohort; NaN when not computed */
  double canary_x, canary_n; /* bad events (or values above) and trials of that term */
  double baseline_x, baseline_n; /* the same for the baseline; 0 for absolute forms */
  double line;                   /* quantile forms: the value the shares are counted above */
  double dispersion;             /* ratio forms: the counts were divided by it (bursts, >= 1) */
  bool above;                    /* the side tested (expr_evq.above): set by the evaluator */
  /* The start point that weighs most in the mixture, whose counts, estimate and bound the
   * fields above show: the start of cohort from_cohort (since_ms INT64_MIN), or since_ms. */
  int from_cohort;
  int64_t since_ms;
  int64_t age_ms; /* now - since_ms; -1 for a cohort's start */
  int64_t n;      /* canary trials; 0 = no data */
  bool history;   /* against the canary's own history (the last cohort without a
                            * baseline): baseline_x/_n are its counts before since_ms */
};

/*
 * The metric source: the metric engine's windows, behind function pointers. Each query
 * answers with the value and the number of observations behind it (*n = 0: no data at all;
 * *out is then ignored). Windows end at the evaluation time, which the context knows; the
 * evaluator has no clock. A NULL function makes its queries insufficient.
 */
struct expr_source {
  /* Sum of the counter's increments over the last span_ms; n = intervals that reported it
   * (a batch with errors: 0 counts — zero is data). */
  void (*counter_sum)(void *ctx, enum variant v, const char *metric, int64_t span_ms, double *out,
                      int64_t *n);
  /* Mean, maximum, minimum of the gauge's readings over the last span_ms; n = readings. */
  void (*gauge_avg)(void *ctx, enum variant v, const char *metric, int64_t span_ms, double *out,
                    int64_t *n);
  void (*gauge_max)(void *ctx, enum variant v, const char *metric, int64_t span_ms, double *out,
                    int64_t *n);
  void (*gauge_min)(void *ctx, enum variant v, const char *metric, int64_t span_ms, double *out,
                    int64_t *n);
  /* Quantile q (0..1) of the distribution's values over the last span_ms; n = values. */
  void (*quantile)(void *ctx, enum variant v, const char *metric, double q, int64_t span_ms,
                   double *out, int64_t *n);
  /* Share (0..1) of the diff samples of the last span_ms whose expr_relative_diff exceeds
   * tolerance; n = samples. Diff samples compare canary with stable: no variant. */
  void (*diff_ratio)(void *ctx, double tolerance, int64_t span_ms, double *out, int64_t *n);
  /* How many robust sigmas current lies from the history of node over the last history_ms
   * (expr_robust_z does the arithmetic); n = history points, excluding current. Called once
   * per evaluation, only with a sufficient current value, which the source may then record
   * as the history's newest point (key it by the rule in ctx and node). */
  void (*zscore)(void *ctx, enum variant v, const struct expr *e, int node, double current,
                 int64_t history_ms, double *out, int64_t *n);
  /* Whether every SLO of the plan holds (expr_eval of each, combined with expr_truth_and). */
  enum expr_truth (*slos_met)(void *ctx, enum variant v);
  /* The evidence for a comparison over counts (struct expr_evq), with e->alpha > 0. */
  void (*evidence)(void *ctx, const struct expr_evq *q, struct expr_evidence *out);
  const struct expr_limits *limits; /* NULL: expr_limits_default */
  /* For a caller that needs the truth, not the evidence: `and` skips its right operand once
   * the left is false, `or` once it is true (the truth is the same in Kleene logic). Never in
   * an expression with zscore() or slos_met(), whose evaluation records history. */
  bool short_circuit;
};

#define EXPR_WHY_MAP(XX)                                                                           \
  XX(NONE, "")                                                                                     \
  XX(FEW_OBS, "too few observations")                                                              \
  XX(FEW_EVENTS, "too few events in the divisor")                                                  \
  XX(ZERO_DIVISOR, "division by zero")                                                             \
  XX(NO_SOURCE, "the metric source cannot answer")                                                 \
  XX(NAN, "not a number")                                                                          \
  XX(SLOS, "an SLO lacks data")                                                                    \
  XX(POWER, "too few errors to tell canary from baseline")                                         \
  XX(VARIANT, "compares canary with baseline, not one variant")

enum expr_why {
#define XX(name, text) EXPR_WHY_##name,
  EXPR_WHY_MAP(XX)
#undef XX
      EXPR_WHY_COUNT
};
const char *expr_why_name(enum expr_why w);

/* One query the evaluator made: evidence. The metric and window are those of node. value is
 * what the source answered (counters: the sum, not the rate). */
struct expr_measure {
  int node;
  enum expr_query query;
  enum variant variant;
  double value;
  int64_t n;
  int64_t min_n; /* what n had to reach */
  bool sufficient;
};

/* One comparison: lhs is the measured value, rhs the threshold it was held against; baseline
 * is the value of the first baseline(...) (or bare baseline) inside it, NaN if none — with the
 * usual `x > k * baseline(x)`, lhs is the canary value. NaN values were not known. */
struct expr_compare {
  int node;
  double lhs, rhs, baseline;
  enum expr_truth truth;
  bool evidence;            /* decided by the evidence: the fields below are set */
  double log_e, log_needed; /* the e-value's log and the log(1 / alpha) it must reach */
  struct expr_evidence ev;
};

struct expr_result {
  enum expr_truth truth; /* a number expression: TRUE when its value is known */
  double value;          /* the value (a condition: 1 or 0); NaN when insufficient */
  enum expr_why why;     /* when INSUFFICIENT: the first reason, at node why_node */
  int why_node;
  struct expr_measure measures[EXPR_MAX_MEASURES];
  int n_measures;
  struct expr_compare compares[EXPR_MAX_COMPARES];
  int n_compares;
  bool truncated; /* more measures or comparisons than fit (the truth is still right) */
  bool skipped;   /* short_circuit left an operand out: its evidence is missing */
};

/*
 * Evaluates a bound expression for variant v (canary, normally; baseline(...) switches to the
 * baseline variant) and fills *out with the truth, the value and the evidence. Every operand
 * is evaluated (no short cut, unless src->short_circuit), so the evidence shows them all.
 * Returns CANARY_OK, or
 * CANARY_EINVALID when e is not bound (*out then says INSUFFICIENT).
 */
int expr_eval(const struct expr *e, const struct expr_source *src, void *ctx, enum variant v,
              struct expr_result *out) CANARY_MUSTCHECK;

/*
 * One line of evidence for status and decisions, e.g.
 *   rate(errors[5m]) / rate(requests[5m]) = 0.012 > error_rate = 0.01: true
 * with "(baseline 120)" after a baseline comparison and, when insufficient, the query that
 * lacked data. Returns the length it needed, like snprintf.
 */
size_t expr_explain(const struct expr *e, const struct expr_result *r, char *buf, size_t len);

/*
 * Whether comparison node i of e is one of the forms above; fills *q (alpha from e). False for
 * any other node, or when e->alpha is 0.
 */
bool expr_evidence_form(const struct expr *e, int i, struct expr_evq *q);

/* The comparisons of e that the evidence decides (each spends a share of a budget). */
int expr_evidence_count(const struct expr *e);

/* --- helpers for the source ------------------------------------------------------------------ */

/*
 * Robust z-score of x against hist[0..n): (x - median) / (1.4826 * MAD); when the MAD is 0,
 * 1.2533 * mean absolute deviation; the scale is at least min_scale. A history that never
 * varied gives 0 for x equal to it and +/-infinity otherwise (unless min_scale > 0). hist is
 * used as scratch (reordered, overwritten). Returns false (and *z untouched) when n is 0.
 */
bool expr_robust_z(double *hist, size_t n, double x, double min_scale, double *z);

/* |canary - stable| / |stable|; 0 when both are 0, +infinity when only stable is 0. */
double expr_relative_diff(double stable, double canary);

/* --- for: ------------------------------------------------------------------------------------- */

#define EXPR_FOR_STATE_MAP(XX)                                                                     \
  XX(INACTIVE, "inactive") /* the condition is not known to hold */                                \
  XX(PENDING, "pending")   /* true at every evaluation since `since`, not yet long enough */       \
  XX(FIRING, "firing")     /* true continuously for at least `for` */

enum expr_for_state {
#define XX(name, text) EXPR_FOR_##name,
  EXPR_FOR_STATE_MAP(XX)
#undef XX
      EXPR_FOR_STATE_COUNT
};
/* A state's name ("?" out of range), and parsing one. The names are stored (the metric state of
 * a rollout, codec/metrics_json): never rename one. */
const char *expr_for_state_name(enum expr_for_state s);
bool expr_for_state_parse(const char *s, enum expr_for_state *out);

/* Per rule expression: Prometheus's `for:`. Zero-initialised = inactive. */
struct expr_for {
  enum expr_for_state state;
  int64_t since; /* PENDING, FIRING: time of the first true evaluation of this run */
};
#define EXPR_FOR_INIT                                                                              \
  { EXPR_FOR_INACTIVE, 0 }

/*
 * Advances the state with the evaluation t at time now. TRUE starts (inactive -> pending, since
 * = now) or continues a run; the run fires once now - since >= for_ms (at once when for_ms is
 * 0). FALSE and INSUFFICIENT both end the run (-> inactive): a condition holds "for 10m" only
 * when it was seen to hold at every evaluation of those 10 minutes. Returns true exactly once
 * per run: at the evaluation that moves it to firing.
 */
bool expr_for_step(struct expr_for *st, int64_t now, enum expr_truth t, int64_t for_ms);

/*
 * When a pending run fires if it stays true: *at = since + for_ms; the core arms a timer to
 * evaluate then. Returns false (no deadline) when inactive or already firing.
 */
bool expr_for_deadline(const struct expr_for *st, int64_t for_ms, int64_t *at);

#endif
