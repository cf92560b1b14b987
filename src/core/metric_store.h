/*
 * The metric store of one rollout: the windows every rule reads, the expr_source over them, and
 * the plan's expressions compiled once. Pure: no I/O, no clock (time is an argument).
 */
#ifndef CANARY_METRIC_STORE_H
#define CANARY_METRIC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/event.h"
#include "core/expr.h"
#include "core/plan.h"
#include "core/window.h"

/*
 * What it keeps. A series is (cohort = stage index, variant, metric name) -> struct window.
 * A name's kind (counter, gauge, distribution) is fixed by the first event that carries it; the
 * same name arriving as another kind is refused with a reason. Per cohort, diff.samples keep
 * three things: a counter of samples, a counter of samples beyond each registered tolerance (the
 * plan's canary_diff_ratio tolerances: exact), and a distribution of the finite relative
 * differences (any other tolerance: within the sketch's alpha). Every observation lands in the
 * bucket of the event's time.
 *
 * Bounds. At most max_names names and max_series series (refused beyond, with a reason), names
 * shorter than PLAN_NAME_MAX, max_zscores zscore histories of at most zscore_points points each.
 * A series whose buckets all expired gives its rings back (window_free); its slot and kind stay.
 * So memory is at most max_series windows (window.h: 67 KiB of rings each with the defaults,
 * plus a sketch per non-empty distribution bucket) — see mstore_memory().
 *
 * Ownership. struct mstore and struct mstore_plan are caller-allocated; _init pairs with _free.
 * Events are borrowed for the call. The store never keeps a pointer into the plan.
 */

#define MSTORE_MAX_SERIES_DEFAULT 256
#define MSTORE_MAX_NAMES_DEFAULT 64
#define MSTORE_MAX_ZSCORES_DEFAULT 16
#define MSTORE_ZSCORE_STEP_MS_DEFAULT 60000LL /* one history point a minute */
#define MSTORE_MAX_TOLERANCES 4               /* diff tolerances counted exactly */
#define MSTORE_MAX_PAIRS 8                    /* ratios whose dispersion the evidence needs */

/*
 * A line the evidence counts a distribution's values above: "quantile q of dist above limit" is
 * "more than 1 - q of its values above limit"; against the baseline the line is k times the
 * baseline's quantile q (limit NaN). Each canary value is counted when it arrives, against the
 * line as it stands then (struct mstore_linecount), so the tests read counts, like the ratios.
 */
#define MSTORE_MAX_LINES 8
#define MSTORE_MAX_TESTS 64 /* distinct comparisons in the false-halt budget */
struct mstore_line {
  char dist[PLAN_NAME_MAX];
  double q, limit, k;
};

/* A ratio of counters the evidence tests (bad events per trials: errors per requests). */
struct mstore_pair {
  char num[PLAN_NAME_MAX];
  char den[PLAN_NAME_MAX];
  /* what the dispersion of num starts from before the reports: prior_n reports' worth of
   * prior_phi (MSTORE_DISP_PRIOR of MSTORE_DISP_PRIOR_PHI, or the plan's learned value for the
   * rollout's service: mstore_learned_dispersion) */
  double prior_phi, prior_n;
};

struct mstore_config {
  int64_t bucket_ms;    /* window buckets: WINDOW_BUCKET_MS_DEFAULT (10 s) */
  int64_t retention_ms; /* kept at least this long: 72 h */
  int max_series;
  int max_names;
  int max_zscores;         /* zscore histories (rule expression x node x cohort x variant) */
  int zscore_points;       /* points a history keeps: 24 h / step + 1 */
  int64_t zscore_step_ms;  /* a history records at most one point per step */
  double zscore_min_scale; /* floor of the robust scale (expr_robust_z); 0 = none */
  double tolerances[MSTORE_MAX_TOLERANCES]; /* canary_diff_ratio tolerances counted exactly */
  int n_tolerances;
  struct mstore_pair pairs[MSTORE_MAX_PAIRS]; /* the evidence's ratios: their dispersion */
  int n_pairs;
  struct mstore_line lines[MSTORE_MAX_LINES]; /* the evidence's quantile lines */
  int n_lines;
  struct expr_limits limits; /* insufficient-data minimums: expr_limits_default */
  bool memo;                 /* keep each expression's last result while its data stands still
                              * (struct mstore_memo); true by default, off to test it */
};

/* The defaults above. */
void mstore_config_default(struct mstore_config *c);

/* A metric name and the kind it first arrived as. */
struct mstore_name {
  char name[PLAN_NAME_MAX];
  enum window_kind kind;
};

/*
 * What the evidence counts (docs/statistics.md, "Evidence"): everything since the series began,
 * never expired — a cohort's series begin with its stage — and, for counters, where each slice
 * of event time (15 minutes) began, so a test can also start at any of the last MSTORE_SNAPS
 * slices (a regression that starts mid-stage). Like the windows, a pure function of the metric events in
 * the order they came, so a restarted worker rebuilds it from the same replay.
 */
#define MSTORE_SNAPS 8
#define MSTORE_RECENT 8 /* counters: the last adds, to line up variants that report apart */
#define MSTORE_SLICE_MS 900000LL /* 15 min: the start points of a test within a stage */
/* One step's share of the dispersion estimate: an outage's jump is one step, not a burst
 * (mstore_dispersion). */
#define MSTORE_DISP_CAP 20.0

struct mstore_series {
  int cohort;
  enum variant variant;
  int name;         /* index into names */
  uint64_t changed; /* mstore.tick of its last change: the memo's test (see struct mstore_memo) */
  struct window w;
  double total;                     /* counters: every increment since the series began */
  struct sketch *all;               /* distributions: every value; NULL until the first */
  int32_t n_snaps;                  /* counters: slices begun (the ring keeps the last few) */
  int64_t snap_slice[MSTORE_SNAPS]; /* slice (floor(t / MSTORE_SLICE_MS)) of each snapshot... */
  double snap_total[MSTORE_SNAPS];  /* ... and the total before its first event; ring by n % */
  /* counters that are the numerator of a pair (cfg.pairs), over the reports that carried both:
   * each report's rate against the one before, (d^2 / its binomial variance) capped at
   * MSTORE_DISP_CAP, summed (disp_sum) over disp_k such steps; the last report's counts */
  double disp_k, disp_sum, disp_prev_x, disp_prev_n;
  /* counters: the last MSTORE_RECENT adds (ring by n_recent %): time, and the total before it.
   * The canary's and the baseline's reports of one interval arrive one after the other; a test
   * that compares them counts both up to the older of their latest reports (mstore_total_upto) */
  int32_t n_recent;
  int64_t recent_t[MSTORE_RECENT];
  double recent_pre[MSTORE_RECENT];
};

/* A canary distribution's values above one line (cfg.lines[line]) in one cohort, since the
 * cohort began, with the same snapshots as a counter's (struct mstore_series). */
struct mstore_linecount {
  int cohort;
  int line;
  int16_t name;
  double above, n;
  int32_t n_snaps;
  int64_t snap_slice[MSTORE_SNAPS];
  double snap_above[MSTORE_SNAPS], snap_n[MSTORE_SNAPS];
};

/* The counter's total over its adds at or before cut (the last MSTORE_RECENT adds are known by
 * time; older ones all count). */
double mstore_total_upto(const struct mstore_series *s, int64_t cut);

/* diff.samples of one cohort. */
struct mstore_diff {
  bool used;
  uint64_t changed;                          /* mstore.tick of its last change */
  struct window total;                       /* counter: samples */
  struct window over[MSTORE_MAX_TOLERANCES]; /* counter: samples beyond tolerances[i] */
  struct window rel;                         /* distribution: finite relative differences */
};

/* The history of one zscore node: a ring of (time, value) points. */
struct mstore_zhist {
  uint64_t key; /* mstore_expr.key mixed with the node */
  int cohort;
  enum variant variant;
  int head, n; /* next slot, points held */
  int64_t *t;
  double *x;
};

/*
 * The memo of one compiled expression (the canary variant's evaluation, as plain values): an
 * expression reads nothing but its series' windows (and the diff windows), and a window reads
 * the same until its series changes or `now` enters another bucket (the windows' spans are
 * whole buckets: mstore_expr.memo_ok). So a rule whose data did not move since it was last
 * evaluated — most rules of a plan read metrics a service may never send — costs a few
 * comparisons. Not kept across restarts: it is a cache of a pure function.
 */
#define MSTORE_MEMO_READS 12 /* metric names an expression (with the SLOs it uses) may read */
struct mstore_memo {
  uint64_t tick;  /* ms->tick when evaluated; 0 = empty */
  int64_t bucket; /* floor(now / bucket_ms) */
  int cohort;
  int n_names;                    /* ms->n_names when ids[] were resolved */
  int16_t ids[MSTORE_MEMO_READS]; /* name ids of mstore_expr.reads, -1 = not (yet) a name */
  enum expr_truth truth;
  enum expr_why why;
  double canary, baseline, threshold;
  int64_t n, min_n;
  bool evidence;
  double log_e, log_needed;
  struct expr_evidence ev;
};

#define MSTORE_NAME_HINTS 32
struct mstore_name_hint {
  const char *p; /* a name as an expression holds it; NULL: empty */
  int16_t id;
};

struct mstore {
  struct mstore_config cfg;
  struct mstore_name *names;
  int n_names;
  int16_t *name_index; /* open addressing over names: name_cap slots, -1 = free */
  int name_cap;
  int16_t *series_of;           /* [name][cohort][variant] -> series index, -1 = none */
  struct mstore_series *series; /* grown on demand up to max_series */
  int n_series, series_cap;
  struct mstore_diff diff[PLAN_MAX_STAGES];
  struct mstore_zhist *z;
  int n_z;
  double *zscratch;         /* zscore_points doubles for expr_robust_z */
  int64_t clock_ms;         /* newest time seen (events, expiry) */
  uint64_t rejected;        /* events refused */
  uint64_t tick;            /* counts changes: series and diff windows note theirs (memo) */
  struct mstore_memo *memo; /* one per compiled expression (mstore_plan.n), allocated by the
                             * first evaluation; NULL when that failed (no memo then) */
  int n_memo;
  uint64_t memo_hits;   /* evaluations the memo answered (tests, benchmarks) */
  uint64_t evaluations; /* rules and criteria evaluated (canaryd's /metrics counts them) */
  struct mstore_name_hint name_hints[MSTORE_NAME_HINTS]; /* queries: name -> id, by address */
  struct mstore_linecount *lc; /* the evidence's quantile lines, per cohort (cfg.lines) */
  int n_lc, lc_cap;
};

/*
 * Initialise an empty store. Allocates the name tables (a few KiB); windows are allocated by
 * their first value. Returns CANARY_OK, CANARY_EINVALID (a bound or width out of range) or
 * CANARY_ENOMEM; on error the store is empty and mstore_free is safe.
 */
int mstore_init(struct mstore *ms, const struct mstore_config *cfg) CANARY_MUSTCHECK;
void mstore_free(struct mstore *ms);

/*
 * Ingest a metrics or diff.samples event of the cohort with stage index cohort, at the event's
 * time. All or nothing: an event with a name too long or empty, a name arriving as another kind,
 * a negative counter, a value not finite, a negative distribution value, or more names or series
 * than the bounds allow changes nothing and returns CANARY_EINVALID (CANARY_EFULL for the
 * bounds) with a one-line reason in why. Data older than the retention is dropped (counted by
 * the windows), not an error. CANARY_ENOMEM: some values could not be kept.
 */
int mstore_ingest(struct mstore *ms, int cohort, const struct event *ev, char *why,
                  size_t why_len) CANARY_MUSTCHECK;

/*
 * Move every series to now: old buckets roll up or go (window_expire), series left with no
 * bucket give their memory back, zscore points older than the retention go. Returns CANARY_OK
 * or CANARY_ENOMEM (a roll-up was lost; see window_expire).
 */
int mstore_expire(struct mstore *ms, int64_t now) CANARY_MUSTCHECK;

/*
 * Put back a zscore history saved from ms->z (the points oldest first, at most
 * cfg.zscore_points): zscore histories are recorded at evaluations, not from the events, so a
 * restarted worker restores them rather than rebuilding them. CANARY_EINVALID when there is no
 * room (max_zscores) or too many points, CANARY_ENOMEM.
 */
int mstore_zhist_restore(struct mstore *ms, uint64_t key, int cohort, enum variant v,
                         const int64_t *t, const double *x, int n) CANARY_MUSTCHECK;

/* Bytes held on the heap (tables, rings, sketches, histories). */
size_t mstore_memory(const struct mstore *ms);

/* The series of (cohort, variant, name), or NULL. */
const struct mstore_series *mstore_series_find(const struct mstore *ms, int cohort, enum variant v,
                                               const char *name);

/* --- the plan's expressions (mstore_plan.c) -------------------------------------------------- */

#define MSTORE_OWNER_MAP(XX)                                                                       \
  XX(RULE, "halt_rules") /* plan.rules[index].exprs[k] */                                          \
  XX(ALERT, "alerts")    /* plan.alerts[index].exprs[k] */                                         \
  XX(ENTRY, "entry")     /* plan.stages[stage].entry[index] */                                     \
  XX(EXIT, "exit")       /* plan.stages[stage].exit[index] */                                      \
  XX(SLO, "slos")        /* plan.slos[index] */

enum mstore_owner {
#define XX(name, text) MSTORE_##name,
  MSTORE_OWNER_MAP(XX)
#undef XX
      MSTORE_OWNER_COUNT
};

/* One expression of the plan, parsed and bound. */
struct mstore_expr {
  struct expr e;
  enum mstore_owner owner;
  int stage;          /* ENTRY, EXIT; else -1 */
  int index;          /* rule, alert, criterion or SLO index */
  int k;              /* expression of a rule or alert; 0 otherwise */
  int64_t for_ms;     /* the rule's or criterion's for: (0 for SLOs) */
  int64_t longest_ms; /* expr_longest_window, computed once */
  uint64_t key;       /* stable across restarts while the plan says the same: keys zscore history */
  char name[PLAN_NAME_MAX]; /* the rule, criterion or SLO name */
  /* What an evaluation reads, for the memo: the metric names (both variants of the cohort are
   * watched), with those of the SLOs when it uses slos_met(); whether it reads the diff
   * windows. memo_ok: it reads nothing else (no zscore: its history records at evaluations)
   * and every window is whole buckets of window_gcd_ms. */
  bool memo_ok;
  bool reads_diff;
  int n_reads;
  const char *reads[MSTORE_MEMO_READS];     /* into e.names of this or an SLO expression */
  uint8_t read_variants[MSTORE_MEMO_READS]; /* 1 << variant for each variant it reads */
  int64_t window_gcd_ms;
  int n_evidence; /* comparisons the evidence decides (e.alpha > 0; expr_evidence_count) */
};

/* Every metric expression of a plan, compiled once (mstore_plan_init). */
struct mstore_plan {
  struct mstore_expr *x;
  int n;
  int n_slos; /* the SLOs are x[slo_first .. slo_first + n_slos) */
  int slo_first;
  double tolerances[MSTORE_MAX_TOLERANCES]; /* distinct canary_diff_ratio tolerances */
  int n_tolerances;
  struct mstore_pair pairs[MSTORE_MAX_PAIRS]; /* distinct ratios the evidence tests */
  int n_pairs;
  struct mstore_line lines[MSTORE_MAX_LINES]; /* distinct quantile lines the evidence counts */
  int n_lines;
  int64_t longest_ms; /* longest window or zscore history read */
  int64_t replay_ms;  /* what a restarted worker replays into the store: the longest
                              * window, or with evidence the whole plan (every stage's maximum) */
  /* halt rule i's expressions are x[rule_first[i] .. + rule_count[i]): rules are looked up
   * at every evaluation, several times a second per rollout */
  int rule_first[PLAN_MAX_RULES];
  int rule_count[PLAN_MAX_RULES];
  /* the same for the metric criteria: [stage][exit][criterion], index + 1 (0: none) */
  int16_t gate_first[PLAN_MAX_STAGES][2][PLAN_MAX_CRITERIA];
  /* The evidence (docs/statistics.md, "Evidence"). A test may start at the release's start,
   * at a later stage's start or at a slice of a stage; its e-value is the mixture over those
   * start points with these weights (they sum to at most 1). */
  struct mstore_evidence_plan {
    bool on;     /* some expression, or the split check, decides on evidence */
    int n_tests; /* distinct halt-rule comparisons and the split check */
    /* The distinct comparisons the budget pays for (mstore_plan_init): a comparison that
     * several rules or alerts make (the seed's alerts repeat its halt rules) is one event,
     * "its e-value reached 1/alpha", and is paid for once, at the largest weight that asks. */
    struct mstore_test {
      struct expr_evq q; /* its form (q.alpha: the share it was given) */
      double weight;     /* the largest budget_weight of the rules that make it */
      int x;             /* the first expression that makes it (mp->x[x]) */
    } tests[MSTORE_MAX_TESTS];
    int n_distinct;    /* tests[0 .. n_distinct) */
    double units;      /* the weights' sum, the split check's 1 included */
    double rule_alpha; /* false_halt_budget / units: a test of weight 1 (the split) */
    double gate_alpha;
    double log_w_release;                /* log weight of the test from the first stage's start */
    double log_w_stage;                  /* ... from each later stage's start */
    double log_w_slice[PLAN_MAX_STAGES]; /* ... from each of a stage's slices[stage] slices:
                                          * each stage gets an equal share, whatever its length */
    int slices[PLAN_MAX_STAGES];
    double margin[PLAN_MAX_STAGES]; /* excess_margin where the cohort is large, else 0 */
    double share[PLAN_MAX_STAGES];  /* the canary's expected share of requests (split check) */
    double split_margin;
    int last_cohort; /* the last stage: without a baseline, its own history (the watch) */
  } ev;
};

/* The distinct test of the false-halt budget (mp->ev.tests) that comparison q is; -1 when none
 * (q is not a halt rule's or alert's comparison on evidence). */
int mstore_test_index(const struct mstore_plan *mp, const struct expr_evq *q);

/*
 * Parse and bind every halt rule, alert, metric criterion and SLO of plan (windows from
 * expr_default_window). On error returns CANARY_EPARSE or CANARY_EINVALID with, in why, where
 * and what: "halt_rules error_rate: rate(errors[5m) > 0.01\n              ^ expected ']' ...";
 * mp is then empty (mstore_plan_free is safe). Also refused: an expression that is not a
 * condition, an SLO that uses slos_met(), slos_met() in a plan with no SLOs, more distinct diff
 * tolerances than MSTORE_MAX_TOLERANCES.
 */
int mstore_plan_init(struct mstore_plan *mp, const struct plan *plan, char *why,
                     size_t why_len) CANARY_MUSTCHECK;
void mstore_plan_free(struct mstore_plan *mp);

/*
 * The expressions of one owner: *first is the index into mp->x, the return value how many
 * (0 for a rule with only on_alert, a criterion that is not a metric, an index out of range).
 */
int mstore_plan_find(const struct mstore_plan *mp, enum mstore_owner owner, int stage, int index,
                     int *first);

/* cfg with what the plan needs: its tolerances, a retention and zscore history covering its
 * longest window. */
void mstore_config_for_plan(struct mstore_config *cfg, const struct mstore_plan *mp);

/* --- evaluation (the source: mstore_source.c; rules: mstore_eval.c) -------------------------- */

/* What an evaluation reads: the store for one cohort at one time. Also the expr_source ctx. */
struct mstore_ctx {
  struct mstore *ms;
  const struct mstore_plan *mp; /* for slos_met(); may be NULL (slos_met is then insufficient) */
  int cohort;
  int64_t now;
  uint64_t key; /* the expression being evaluated (zscore history) */
  bool explain; /* the evidence's bounds are wanted (they cost a bisection) */
};

/* The source over the store: pass it with a struct mstore_ctx to expr_eval. Its limits are the
 * store's (ms->cfg.limits), so take it from the store. */
struct expr_source mstore_source(const struct mstore *ms);

/* Evaluate compiled expression x (mp->x[i]) for variant v: expr_eval with the store's source. */
int mstore_eval_expr(struct mstore *ms, const struct mstore_plan *mp, const struct mstore_expr *x,
                     int cohort, int64_t now, enum variant v,
                     struct expr_result *out) CANARY_MUSTCHECK;

/* One expression's result, as plain values for decisions and status. */
struct mstore_finding {
  enum expr_truth truth;
  enum expr_for_state state; /* after this evaluation */
  bool fired;                /* moved to firing at this evaluation */
  double canary;             /* the measured value (left of the main comparison); NaN unknown */
  double baseline;           /* the baseline variant's value in it; NaN when none or unknown */
  double threshold;          /* what it was held against (right of the comparison) */
  int64_t window_ms;         /* the longest window the expression reads */
  int64_t n, min_n;          /* the weakest query: observations, and the minimum it needed */
  enum expr_why why;         /* when insufficient */
  bool evidence;             /* the main comparison was decided on evidence: */
  double log_e, log_needed;  /* its e-value's log and the log(1/alpha) a decision needs */
  struct expr_evidence ev;   /* counts, estimate, bound (the bound only when explained) */
  char explain[400];         /* expr_explain; see mstore_eval_rule for when it is written */
};

struct mstore_verdict {
  int n; /* expressions */
  struct mstore_finding f[PLAN_MAX_EXPRS];
  enum expr_truth truth; /* the expressions' truths, or-ed (Kleene) */
  bool fired;            /* a rule: some expression started firing now — act, once per run */
  bool holds;            /* some expression is firing: a rule is active, a criterion passes */
  int which;             /* the expression that fired (else holds, else decided), -1 none */
  int64_t deadline;      /* earliest expr_for_deadline of a pending one; INT64_MAX none */
};

/*
 * Evaluate the rule, alert or criterion (owner, stage, index) of mp for the canary variant of
 * cohort at now, step st[0 .. n) (one struct expr_for per expression, kept by the caller) and
 * fill *out. The explanation is written for f[which] (f[0] when which is -1), and for a rule
 * or alert only when it fired: formatting it costs more than the evaluation, and a quiet rule's
 * text is shown nowhere (expr_explain of mstore_eval_expr's result gives it on demand). A rule fires when any one expression has held for its for:
 * (docs/rules.md); a criterion passes while its expression is firing (for: 0 — as soon as it
 * is true); an insufficient expression neither fires nor passes. Returns CANARY_OK, CANARY_ENOTFOUND (no
 * metric expression there; *out has n = 0) or CANARY_EINVALID.
 */
int mstore_eval_rule(struct mstore *ms, const struct mstore_plan *mp, enum mstore_owner owner,
                     int stage, int index, int cohort, int64_t now, struct expr_for *st,
                     struct mstore_verdict *out) CANARY_MUSTCHECK;

/*
 * The same evaluation with no explanation written (every f[].explain empty): for callers that
 * keep only the values — the for: of a gate watched at every metric evaluation, a status
 * reading — where formatting the text would cost more than the evaluation.
 */
int mstore_eval_rule_values(struct mstore *ms, const struct mstore_plan *mp,
                            enum mstore_owner owner, int stage, int index, int cohort, int64_t now,
                            struct expr_for *st, struct mstore_verdict *out) CANARY_MUSTCHECK;

const char *mstore_owner_name(enum mstore_owner o);

/* The count of (cohort, line), or NULL when no canary value was counted there yet. */
const struct mstore_linecount *mstore_linecount_find(const struct mstore *ms, int cohort, int line);
/* The index in cfg.lines of the line of quantile form q (dist, q, limit or k), or -1. */
int mstore_line_index(const struct mstore *ms, const struct expr_evq *q);
/* Where line `line` stands in cohort now: its limit, or k times the baseline's quantile so far;
 * NaN while the baseline has too few values to say (or no such line). */
double mstore_line_now(const struct mstore *ms, int cohort, int line);

/* --- the evidence (mstore_evidence.c) -------------------------------------------------------- */

/*
 * The expr_source's evidence function over the store (ctx: struct mstore_ctx). It counts
 * everything since each series began (the cohort's stage): the test from the release's start
 * sums the cohorts up to ctx->cohort, each with its own exposure; from a later stage's start,
 * the cohorts from there; from a slice, the exposed cohort since that slice began.
 * The e-value is their mixture with the weights of mp->ev. Estimates and the bound are those
 * of the exposed cohort.
 */
void mstore_evidence(void *ctx, const struct expr_evq *q, struct expr_evidence *out);

/*
 * How many times more variable than binomial the bad events of pair (num, den) are: retries of
 * one client come in bursts, and a burst of ten errors is not ten independent errors. Each
 * report's rate is compared with the report before it (a slow drift of the rate cancels; an
 * outage's jump is one capped step), squared over its binomial variance: the mean of those is
 * 1 for independent events and about the mean burst weight E[k^2]/E[k] for bursts. From the
 * baseline's reports of the cohorts up to cohort (the canary's when the baseline sends none),
 * after the pair's prior (5 steps' worth of an assumed 3 — bursts are assumed until the reports
 * show otherwise — or what the plan learned from the service's earlier releases), never below
 * 1; 1 while no bad event has been seen at all.
 * The evidence divides the counts by it (an effective count).
 */
double mstore_dispersion(const struct mstore *ms, int cohort, const char *num, const char *den);

/* The dispersion from k steps summing to sum after prior_n steps' worth of prior_phi
 * (mstore_dispersion's arithmetic, for a model of it: canaryctl plan power). */
#define MSTORE_DISP_PRIOR 5.0     /* steps' worth of the assumption before any report */
#define MSTORE_DISP_PRIOR_PHI 3.0 /* the assumption: bursts of about three */
#define MSTORE_DISP_OWN_MIN 10    /* steps before the release's own estimate can overrule a prior */
double mstore_dispersion_of(double sum, double k, double prior_phi, double prior_n);

/*
 * A plan's learned value against what finished releases show (canaryctl dispersion --check): the
 * releases' k steps summing to sum give the mean and its one-sided 95% bounds, lo and hi (a step
 * is a scaled chi-square of one degree: standard error mean·sqrt(2/k)), floored at 1 as the
 * estimate is. STALE when value is under lo: the plan expects fewer bursts than the service has,
 * and a healthy release's bursts read as a regression until its own reports overrule the prior
 * (bench/README.md: 3.3% of healthy releases halted at half the true value). HIGH when value is
 * over hi: safe, but proofs take longer than they need. CURRENT between. k must be > 0.
 */
enum mstore_disp_verdict { MSTORE_DISP_CURRENT, MSTORE_DISP_STALE, MSTORE_DISP_HIGH };
struct mstore_disp_check {
  double mean, lo, hi;
  enum mstore_disp_verdict verdict;
};
struct mstore_disp_check mstore_dispersion_check(double sum, double k, double value);

/*
 * The prior of each pair for a rollout of service: the plan's decisions.dispersion entry for
 * (num, service), else for (num, any service), else the assumption of bursts. Called once the
 * rollout's service is known (a new rollout, a restored one).
 */
void mstore_learned_dispersion(struct mstore *ms, const struct plan *p, const char *service);

/*
 * What the baseline's reports of num said about its dispersion over every cohort so far: the
 * sum of its steps and their number (0 and 0 before two reports). The raw material of a learned
 * prior: a completed release's steps, pooled over releases (canaryctl dispersion, bench/decisions).
 */
void mstore_dispersion_steps(const struct mstore *ms, const char *num, double *sum, double *k);

/*
 * The traffic split on evidence: the canary's share of `requests` against mp->ev.share[cohort],
 * two-sided, healthy within split_margin of it (relative), at level alpha. With since_ms (not
 * INT64_MIN) only the requests of the slices that began at or after it count (the split
 * changed then: a kill switch). Fills *out as mstore_evidence does (estimate: the share;
 * reference: the expected share); n = 0 when either variant has no requests to count.
 */
void mstore_evidence_split(struct mstore *ms, const struct mstore_plan *mp, int cohort,
                           double alpha, int64_t since_ms, bool explain, struct expr_evidence *out);

#endif
