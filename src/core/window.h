/* Time-bucketed windows of one metric series: counters, gauges or distributions (sketches). */
#ifndef CANARY_WINDOW_H
#define CANARY_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/sketch.h"

/*
 * One series — rollout × cohort × variant × metric — kept in fixed, aligned time buckets that
 * any window a rule asks for (10 s … 72 h) is merged from. Pure: time is an argument (ms since
 * the epoch, any value in ±2^62), nothing reads a clock.
 *
 * Two tiers, so that 72 hours stay cheap. Fine buckets of bucket_ms (10 s) cover the last
 * fine_span_ms (1 h): 361 of them. As a fine bucket ages out of that hour it is merged into
 * the coarse bucket of coarse_ms (5 min) that contains it; coarse buckets are kept for
 * retention_ms (72 h): 865 of them. A 72-hour distribution is ~1,200 sketches instead of
 * 25,920, and rules over 5–15 minutes read 31–91 fine buckets. With retention_ms <= fine_span_ms
 * (or coarse_ms == bucket_ms) there is one tier of fine buckets covering the retention.
 *
 * Exact semantics at the boundaries:
 *
 * - Buckets. Fine bucket k holds [k * bucket_ms, (k + 1) * bucket_ms); coarse bucket c holds
 *   [c * coarse_ms, (c + 1) * coarse_ms). A timestamp exactly on a boundary belongs to the
 *   bucket that starts there. coarse_ms is a multiple of bucket_ms, so every fine bucket lies in
 *   exactly one coarse bucket.
 *
 * - The clock is the newest time the window has seen: the latest data timestamp, or a later
 *   `now` given to window_expire. The fine tier holds buckets k >= floor((clock - fine_span) /
 *   bucket_ms); older data lives in coarse buckets c >= floor((clock - retention) / coarse_ms).
 *   Everything at or after clock - retention is therefore kept; data older than the oldest kept
 *   bucket is gone.
 *
 * - Late data — older than the newest bucket — lands in its own bucket: the fine one for its
 *   time while that is in the fine tier, else the coarse one. Data older than the retention
 *   when it arrives is dropped and counted in `dropped` (observations), and the call still
 *   returns CANARY_OK: lateness is a fact about the input, not an error.
 *
 * - Data far in the future moves the clock and expires everything older than its retention:
 *   the caller validates event times before they reach a window.
 *
 * - A query (now, span) covers the CLOSED interval [now - span, now] rounded OUT to whole
 *   buckets: every bucket holding a point of it counts whole. So an observation at exactly
 *   now - span is in, one at now is in; one before now - span is in only when it shares a
 *   bucket with now - span (at most bucket_ms - 1 earlier, or coarse_ms - 1 where the interval
 *   starts in the coarse tier), one after now only when it shares now's bucket. With now - span
 *   on a bucket boundary the start is exact; in event time nothing is later than now, so the
 *   query is then exactly [now - span, now]. A span <= fine_span at now >= clock reads fine
 *   buckets only. A negative span reads nothing.
 *
 * - Coverage is the share of the interval's length (span ms) lying in buckets that hold at
 *   least one observation, in [0, 1] — for "sustained" rules. Its resolution is the bucket (a
 *   coarse bucket with one value covers its 5 minutes). With span 0 it is 1 when now's bucket
 *   holds data, else 0.
 *
 * Per bucket: counters keep the sum of the values (deltas) and the number of adds; gauges the
 *   number of samples, their sum, min, max and the last sample by time (ties: the later add);
 *   distributions a sketch (allocated at the first value) with the number and sum of values.
 *   The gauge average is the mean of the samples, not time-weighted.
 *
 * Memory. The bucket rings are allocated at the first value (coarse at the first roll-up) and
 *   never grow: with the defaults 361 + 865 buckets of 56 bytes (67 KiB) a series, plus one
 *   sketch per non-empty distribution bucket (a few KiB; at most 16 KiB). Expired buckets free
 *   their sketches. window_memory() reports the total.
 */

#define WINDOW_KIND_MAP(XX)                                                                        \
  XX(COUNTER, "counter")           /* sums of deltas: requests, errors */                          \
  XX(GAUGE, "gauge")               /* samples of a level: cpu_ratio */                             \
  XX(DISTRIBUTION, "distribution") /* values into sketches: latency_ms */

enum window_kind {
#define XX(name, wire) WINDOW_##name,
  WINDOW_KIND_MAP(XX)
#undef XX
      WINDOW_KIND_COUNT
};

#define WINDOW_BUCKET_MS_DEFAULT 10000LL        /* 10 s */
#define WINDOW_FINE_SPAN_MS_DEFAULT 3600000LL   /* 1 h of fine buckets */
#define WINDOW_COARSE_MS_DEFAULT 300000LL       /* 5 min roll-ups beyond it */
#define WINDOW_RETENTION_MS_DEFAULT 259200000LL /* 72 h */
#define WINDOW_MAX_SLOTS (1 << 20)              /* per tier */
#define WINDOW_TIME_MAX (1LL << 62)             /* |t| beyond this is CANARY_EINVALID */

struct window_config {
  int64_t bucket_ms;    /* fine bucket width, > 0 */
  int64_t retention_ms; /* data kept at least this long behind the clock, >= bucket_ms */
  int64_t fine_span_ms; /* fine buckets reach at least this far behind the clock */
  int64_t coarse_ms;    /* roll-up width: a multiple of bucket_ms */
  double alpha;         /* relative accuracy of the distribution sketches */
};

struct window_bucket {
  int64_t key; /* bucket number (start / width); WINDOW_NO_KEY when the slot is free */
  uint64_t n;  /* observations: counter adds, gauge samples, distribution values */
  double sum;  /* counter and gauge values; distribution values */
  union {
    struct {
      double min, max, last;
      int64_t last_ms;
    } gauge;
    struct sketch *sketch; /* distribution: owned, NULL until the first value */
  } u;
};
#define WINDOW_NO_KEY INT64_MIN

struct window_tier {
  struct window_bucket *b; /* ring of `slots`, bucket key k at k mod slots; NULL until used */
  int64_t slots;
  int64_t width_ms;
  int64_t span_ms; /* keeps keys >= floor((clock - span_ms) / width_ms) */
};

/* What a query saw over its interval. */
struct window_stats {
  uint64_t n;      /* observations */
  double sum;      /* of the values */
  double min, max; /* gauges and distributions; 0 when n == 0 */
  double last;     /* gauges: the sample with the latest time */
  int64_t last_ms;
  int64_t buckets; /* non-empty buckets read */
  double coverage; /* see above */
};

/* The buckets a query over [now - span, now] reads (window.c computes it). */
struct window_range {
  bool coarse; /* the interval starts before the fine tier: coarse keys c0 .. c1 first */
  int64_t c0, c1;
  int64_t fine_start; /* where the fine tier starts: coarse buckets are clipped to end there */
  int64_t k0, k1;     /* fine keys */
};

/*
 * What a query folded over every bucket of its interval but the newest fine one, kept for the
 * next query of the same span: rules read the same spans up to four times a second, and between
 * two reads only the newest bucket usually changes. Valid while the window's generation is the
 * one it was filled at and the query reads the same buckets (see window.c).
 */
#define WINDOW_CACHE_SPANS 4
struct window_cache {
  int64_t span; /* -1: unused */
  uint64_t gen;
  struct window_range r;
  bool have_stats, have_sketch;
  /* What sketch folds, whatever have_sketch says: the range sk_r (k0 .. k1 - 1) as of the late
   * counter sk_late. When the query moves on by a bucket or two, the fold slides (the buckets
   * that left taken out, the ones that joined merged) rather than being merged again. */
  bool sk_valid;
  struct window_range sk_r;
  uint64_t sk_late;
  struct window_stats st; /* of the buckets folded (coverage left out) */
  int64_t covered_ms;     /* of the buckets folded, each from its start */
  int64_t first_start;    /* start of the first bucket folded; INT64_MAX none */
  struct sketch *sketch;  /* distribution: the buckets' sketches merged; owned */
};

struct window {
  enum window_kind kind;
  struct window_config cfg;
  struct window_tier tier[2]; /* [0] fine, [1] coarse */
  int n_tiers;                /* 1 or 2 */
  bool started;               /* clock_ms is set */
  int64_t clock_ms;
  uint64_t dropped;      /* observations older than the retention when they arrived */
  uint64_t rejected;     /* distribution values refused: negative or not finite */
  struct sketch scratch; /* window_quantile's merge target, reused */
  /* Query caches. gen changes whenever a bucket a cache may hold changes: data landing at or
   * before cached_hi (the newest fine key any cache folded) or in the coarse tier, and every
   * expiry or roll-up. */
  struct window_cache cache[WINDOW_CACHE_SPANS];
  int cache_next; /* the entry to reuse next */
  uint64_t gen;
  uint64_t late; /* changes with data landing where a fold may hold it, and at a reset: a
                      * fold of fine buckets stays true across roll-ups while this holds */
  int64_t cached_hi;
  bool uncached; /* tests: answer every query from the buckets */
};

const char *window_kind_name(enum window_kind kind);

/*
 * Initialise an empty window of bucket_ms buckets keeping retention_ms, with the default fine
 * span (1 h), coarse width (5 min, rounded up to a multiple of bucket_ms) and alpha (0.01).
 * Allocates nothing. Returns CANARY_OK or CANARY_EINVALID (bad kind or widths; w is then
 * empty and window_free is safe).
 */
int window_init(struct window *w, enum window_kind kind, int64_t bucket_ms,
                int64_t retention_ms) CANARY_MUSTCHECK;
int window_init_config(struct window *w, enum window_kind kind,
                       const struct window_config *cfg) CANARY_MUSTCHECK;

/*
 * Add at time t_ms: a counter delta, a gauge sample, or n distribution values. Return
 * CANARY_OK (also when the data was too old and dropped), CANARY_EINVALID (wrong kind for the
 * window, a counter or gauge value not finite, t out of range: nothing changes; for samples:
 * some values were negative or not finite — they are counted in `rejected`, the others added),
 * or CANARY_ENOMEM (the window stays consistent; what could not be kept is counted in
 * `dropped`).
 */
int window_add_counter(struct window *w, int64_t t_ms, double value) CANARY_MUSTCHECK;
int window_add_gauge(struct window *w, int64_t t_ms, double value) CANARY_MUSTCHECK;
int window_add_samples(struct window *w, int64_t t_ms, const double *values,
                       size_t n) CANARY_MUSTCHECK;

/* Everything a query over [now - span_ms, now] sees, in one pass. */
void window_stats(const struct window *w, int64_t now, int64_t span_ms, struct window_stats *out);
/*
 * window_stats, the same to the bit, from the window's cache: the fold of the span's buckets
 * but the newest is kept between calls, so a rule that reads the same span four times a second
 * reads one or two buckets instead of every bucket of its window.
 */
void window_read(struct window *w, int64_t now, int64_t span_ms, struct window_stats *out);
/* Counter: sum of the deltas in the span (0 when none). */
double window_counter_sum(const struct window *w, int64_t now, int64_t span_ms);
/* Gauge: mean, max, min and latest sample in the span. False (out untouched) when none. */
bool window_gauge_avg(const struct window *w, int64_t now, int64_t span_ms, double *out);
bool window_gauge_max(const struct window *w, int64_t now, int64_t span_ms, double *out);
bool window_gauge_min(const struct window *w, int64_t now, int64_t span_ms, double *out);
bool window_gauge_last(const struct window *w, int64_t now, int64_t span_ms, double *out);
/* Observations in the span: adds, samples or values — the "insufficient data" count. */
uint64_t window_count(const struct window *w, int64_t now, int64_t span_ms);
/* Share of the span covered by buckets with data, in [0, 1]. */
double window_coverage(const struct window *w, int64_t now, int64_t span_ms);

/*
 * Distribution: merge the sketches of the span into dst (same alpha as the window, else
 * CANARY_EINVALID). Returns CANARY_OK or CANARY_ENOMEM. Merge once, then read several
 * quantiles from dst.
 */
int window_merge(const struct window *w, int64_t now, int64_t span_ms,
                 struct sketch *dst) CANARY_MUSTCHECK;
/*
 * Distribution: the q-quantile of the values in the span (merged into the window's scratch
 * sketch). Returns CANARY_OK, CANARY_ENOTFOUND (no values in the span), CANARY_EINVALID (q
 * outside [0, 1]) or CANARY_ENOMEM.
 */
int window_quantile(struct window *w, int64_t now, int64_t span_ms, double q,
                    double *out) CANARY_MUSTCHECK;
/* The same, with the number of values it was read from in *n (0 when none or on error). */
int window_quantile_n(struct window *w, int64_t now, int64_t span_ms, double q, double *out,
                      uint64_t *n) CANARY_MUSTCHECK;

/*
 * Distribution: of the n values in the span (*n), how many the sketch puts above x (*above):
 * each value counts as its bin's estimate, clamped to [min, max] as sketch_quantile does, so
 * the share above x agrees with the window's quantiles — exact for values more than alpha away
 * from x, either way within it. Values in the zero bin count as 0. Returns CANARY_OK (also for
 * an empty span: both 0), CANARY_EINVALID (not a distribution, x NaN) or CANARY_ENOMEM.
 */
int window_count_above(struct window *w, int64_t now, int64_t span_ms, double x, uint64_t *above,
                       uint64_t *n) CANARY_MUSTCHECK;

/*
 * Move the clock to now (if later): fine buckets that age out roll into coarse ones, buckets
 * past the retention are dropped and their sketches freed. Adds do this too; call it when time
 * passes without data. Returns CANARY_OK or CANARY_ENOMEM (a roll-up could not be kept; its
 * observations are counted in `dropped`; the window stays consistent).
 */
int window_expire(struct window *w, int64_t now) CANARY_MUSTCHECK;

/* Non-empty buckets (both tiers), and the bytes the window holds on the heap. */
size_t window_buckets(const struct window *w);
size_t window_memory(const struct window *w);

/* Release everything; the window is then empty (configuration kept) and may be reused. */
void window_free(struct window *w);

#endif
