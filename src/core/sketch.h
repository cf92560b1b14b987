/* Quantile sketch with a relative-error guarantee: DDSketch (Masson, Rim, Lee, VLDB 2019). */
#ifndef CANARY_SKETCH_H
#define CANARY_SKETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/*
 * What it guarantees. With relative accuracy alpha, every quantile a sketch returns is within
 * alpha * x of the exact value x, where x is the value of rank floor(q * (n - 1)) (0-based) among
 * the n values added — the paper's definition — for every q as long as that rank lies above the
 * collapsed bins (see max_bins). Merging is exact: the merge of two sketches is the sketch of the
 * union, bin for bin, whatever the order of adds and merges.
 *
 * The mapping. gamma = (1 + alpha) / (1 - alpha). A value x >= SKETCH_MIN_VALUE goes to bin
 * i = ceil(log_gamma(x)), which holds (gamma^(i-1), gamma^i]; its estimate is
 * 2 * gamma^i / (gamma + 1), within alpha of anything in the bin. Values in [0, SKETCH_MIN_VALUE)
 * are counted in a zero bin and estimated as 0 (an absolute error below 1e-9: nothing canaryd
 * measures — milliseconds, ratios, CLS — is that small without being 0).
 *
 * Negative values, NaN and infinities are rejected (CANARY_EINVALID, the sketch unchanged): every
 * distribution canaryd keeps (latency, LCP, INP, CLS) is >= 0, and a mirrored negative store would
 * double the code that can only be reached by a broken producer.
 *
 * The store. Counts live in one dense heap array covering the contiguous index range of the
 * non-empty bins, grown on demand (with headroom) and never wider than max_bins. When a value
 * would widen the range past max_bins, the lowest bins are folded into the lowest kept bin, as in
 * the paper: high quantiles (p50 and up for any realistic data) keep their guarantee, the lowest
 * ones lose it, and `collapsed` says so. With alpha = 0.01, 2048 bins span 17 decades (gamma^2048
 * ≈ 6e17), so latency data never collapses; a full sketch is 16 KiB. The span shrinks with alpha
 * (alpha = 0.001: 1.8 decades): a smaller alpha wants a larger max_bins.
 *
 * Why a heap array and not a small inline one: a window keeps hundreds of sketches, most of them
 * for 10-second buckets of a few hundred values spread over a few hundred bins; an inline array
 * large enough to matter would make every bucket that big, and two storage modes would double
 * the merge code. The struct itself is a small caller-allocated value (tests keep it on the
 * stack); sketch_init allocates nothing.
 *
 * Ownership: the sketch owns `bins`; sketch_free releases it. Fields are readable (tests and
 * diagnostics read them) but only these functions change them.
 */

#define SKETCH_ALPHA_DEFAULT 0.01
#define SKETCH_ALPHA_MIN 1e-5 /* keeps every bin index of a finite double inside int32_t */
#define SKETCH_ALPHA_MAX 0.5
#define SKETCH_MAX_BINS_DEFAULT 2048
#define SKETCH_MAX_BINS_MIN 16
#define SKETCH_MAX_BINS_MAX 65536
#define SKETCH_MIN_VALUE 1e-9 /* values in [0, SKETCH_MIN_VALUE) go to the zero bin */

struct sketch {
  double alpha;         /* relative accuracy */
  double gamma;         /* (1 + alpha) / (1 - alpha) */
  double inv_ln_gamma;  /* 1 / ln(gamma) */
  uint32_t max_bins;    /* bound on hi - lo + 1 */
  bool collapsed;       /* low bins were folded: quantiles at their ranks lost the guarantee */
  uint64_t count;       /* every value added, the zero bin included */
  uint64_t zero_count;  /* values in [0, SKETCH_MIN_VALUE) */
  double sum, min, max; /* exact; min and max meaningful only when count > 0 */
  int32_t lo, hi;       /* index range of the non-empty bins; lo > hi when there are none */
  int32_t offset;       /* bin index of bins[0] */
  uint32_t cap;         /* allocated length of bins */
  uint64_t *bins;       /* bins[i - offset] counts bin i; NULL until the first positive value */
};

/*
 * Initialise an empty sketch with relative accuracy alpha in [SKETCH_ALPHA_MIN, SKETCH_ALPHA_MAX]
 * and SKETCH_MAX_BINS_DEFAULT bins. Allocates nothing. Returns CANARY_OK, or CANARY_EINVALID for
 * an alpha out of range (the sketch is then initialised with SKETCH_ALPHA_DEFAULT, so
 * sketch_free is always safe).
 */
int sketch_init(struct sketch *s, double alpha) CANARY_MUSTCHECK;
/* The same with a bound on the number of bins, in [SKETCH_MAX_BINS_MIN, SKETCH_MAX_BINS_MAX]. */
int sketch_init_bounded(struct sketch *s, double alpha, uint32_t max_bins) CANARY_MUSTCHECK;

/* Add one value. Returns CANARY_OK, CANARY_EINVALID (negative or not finite: nothing changes)
 * or CANARY_ENOMEM (nothing changes). */
int sketch_add(struct sketch *s, double value) CANARY_MUSTCHECK;
/* Add value count times (count = 0 changes nothing). Same returns as sketch_add. */
int sketch_add_n(struct sketch *s, double value, uint64_t count) CANARY_MUSTCHECK;

/*
 * Merge src into dst. Both must have the same alpha (else CANARY_EINVALID); dst keeps its own
 * max_bins and collapses if the union is wider. Returns CANARY_OK, CANARY_EINVALID or
 * CANARY_ENOMEM (dst unchanged on error). src is not changed; dst == src is allowed (doubles).
 */
int sketch_merge(struct sketch *dst, const struct sketch *src) CANARY_MUSTCHECK;

/*
 * The q-quantile, q in [0, 1]: the estimate of the value of rank floor(q * (count - 1)). Rank 0
 * and rank count - 1 return the exact min and max; every estimate is clamped to [min, max] (which
 * can only bring it closer). Returns false, *out untouched, when the sketch is empty or q is
 * outside [0, 1] or NaN.
 */
bool sketch_quantile(const struct sketch *s, double q, double *out);

/*
 * The q-quantile of the merge of a and b (same alpha), without making the merge: what
 * sketch_quantile gives on a copy of a merged with b, bit for bit. b may be NULL. Returns
 * CANARY_OK, CANARY_ENOTFOUND (no values), or CANARY_EFULL when their bins together span more
 * than a's max_bins (the merge would fold the lowest: make it instead).
 */
int sketch_quantile_pair(const struct sketch *a, const struct sketch *b, double q, double *out);

/*
 * Take src's values back out of dst, into which they were merged: bins, counts, sum; the range
 * shrinks to the bins left. min and max stay as they were (only the caller knows those of what
 * remains: set them). CANARY_EINVALID, dst unchanged, when dst cannot hold src's values (other
 * alpha, either collapsed, a bin of src above dst's): fold again instead. Windows slide their
 * folds with it (window.c).
 */
int sketch_subtract(struct sketch *dst, const struct sketch *src) CANARY_MUSTCHECK;

uint64_t sketch_count(const struct sketch *s);
/* How many values the sketch puts above x: each value counts as its bin's estimate, clamped to
 * [min, max] as sketch_quantile does (so the share above x agrees with the quantiles); values in
 * the zero bin count as 0. 0 for an empty sketch or a NaN x. */
uint64_t sketch_count_above(const struct sketch *s, double x);
double sketch_sum(const struct sketch *s);
/* Exact min / max of the values added. False (out untouched) when empty. */
bool sketch_min(const struct sketch *s, double *out);
bool sketch_max(const struct sketch *s, double *out);
/* Number of bins of the current index range (hi - lo + 1), 0 when there are none. */
uint32_t sketch_bin_count(const struct sketch *s);
/* The count of bin index i (0 outside the range). */
uint64_t sketch_bin(const struct sketch *s, int32_t i);
/* The bin a value >= SKETCH_MIN_VALUE maps to, and the estimate a bin stands for. */
int32_t sketch_index(const struct sketch *s, double value);
double sketch_bin_value(const struct sketch *s, int32_t i);

/* Empty the sketch, keeping alpha, max_bins and the allocation (for reuse without malloc). */
void sketch_reset(struct sketch *s);
/* Release the bins; the sketch is then empty and may be reused or freed again. */
void sketch_free(struct sketch *s);

/*
 * Compact, versioned, little-endian encoding (for PostgreSQL bytea):
 *   u8 version (1) | u8 flags (bit 0: collapsed) | f64 alpha | varint max_bins |
 *   varint zero_count | varint nbins | if count > 0: f64 sum, f64 min, f64 max |
 *   if nbins > 0: zigzag-varint lo, then nbins varint counts (bins lo .. lo + nbins - 1)
 * f64 are IEEE 754 binary64, little-endian; varints are LEB128 (7 bits a byte, low first).
 * count is not stored: it is zero_count plus the bins.
 *
 * sketch_encode returns the encoded size. It writes buf only when that size is <= cap; call it
 * with (NULL, 0) to size a buffer. sketch_encoded_size is the same without writing.
 */
size_t sketch_encode(const struct sketch *s, uint8_t *buf, size_t cap);
size_t sketch_encoded_size(const struct sketch *s);
/*
 * Decode len bytes into s, which must not hold bins (fresh, or after sketch_free). Returns
 * CANARY_OK, CANARY_EPARSE (truncated, trailing bytes, unknown version, values out of range,
 * first or last bin empty — the reason in *why when why is not NULL) or CANARY_ENOMEM. On error
 * s is an empty sketch (sketch_free is safe).
 */
int sketch_decode(struct sketch *s, const uint8_t *buf, size_t len,
                  const char **why) CANARY_MUSTCHECK;

#endif
