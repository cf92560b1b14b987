/* DDSketch: logarithmic bins in one dense, bounded array; the lowest bins fold when it is full. */
#include "core/sketch.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SKETCH_VERSION 1
#define BIN(s, i) ((s)->bins[(int64_t)(i) - (s)->offset])

static int init(struct sketch *s, double alpha, uint32_t max_bins) {
  memset(s, 0, sizeof *s);
  int rc = CANARY_OK;
  /* written so that NaN fails both tests */
  if (!(alpha >= SKETCH_ALPHA_MIN && alpha <= SKETCH_ALPHA_MAX)) {
    alpha = SKETCH_ALPHA_DEFAULT;
    rc = CANARY_EINVALID;
  }
  if (max_bins < SKETCH_MAX_BINS_MIN || max_bins > SKETCH_MAX_BINS_MAX) {
    max_bins = SKETCH_MAX_BINS_DEFAULT;
    rc = CANARY_EINVALID;
  }
  s->alpha = alpha;
  s->gamma = (1 + alpha) / (1 - alpha);
  s->inv_ln_gamma = 1 / log(s->gamma);
  s->max_bins = max_bins;
  s->lo = 1;
  s->hi = 0;
  return rc;
}

int sketch_init(struct sketch *s, double alpha) { return init(s, alpha, SKETCH_MAX_BINS_DEFAULT); }

int sketch_init_bounded(struct sketch *s, double alpha, uint32_t max_bins) {
  return init(s, alpha, max_bins);
}

int32_t sketch_index(const struct sketch *s, double value) {
  return (int32_t)ceil(log(value) * s->inv_ln_gamma);
}

double sketch_bin_value(const struct sketch *s, int32_t i) {
  /* the midpoint in relative terms of (gamma^(i-1), gamma^i]: alpha from both ends */
  return pow(s->gamma, i) * (2 / (s->gamma + 1));
}

/*
 * Make [lo, hi] the index range, with storage covering it, folding the bins below lo into bin lo
 * (the paper's collapse). The caller guarantees hi >= every non-empty bin. Nothing changes on
 * CANARY_ENOMEM.
 */
static int set_range(struct sketch *s, int32_t lo, int32_t hi) {
  uint64_t folded = 0;
  bool fits = s->bins && lo >= s->offset && (int64_t)hi < (int64_t)s->offset + s->cap;
  if (fits) {
    for (int32_t i = s->lo; i <= s->hi && i < lo; i++) {
      folded += BIN(s, i);
      BIN(s, i) = 0;
    }
  } else {
    uint32_t width = (uint32_t)(hi - lo) + 1;
    uint32_t cap = width + width / 2;
    if (cap < 32)
      cap = 32;
    if (cap > s->max_bins)
      cap = s->max_bins > width ? s->max_bins : width;
    if (cap < s->cap)
      cap = s->cap;
    uint64_t *bins = calloc(cap, sizeof *bins);
    if (!bins)
      return CANARY_ENOMEM;
    /* centred: latency data grows at both ends */
    int32_t offset = lo - (int32_t)((cap - width) / 2);
    for (int32_t i = s->lo; i <= s->hi; i++) {
      uint64_t c = BIN(s, i);
      if (i < lo)
        folded += c;
      else
        bins[(int64_t)i - offset] = c;
    }
    free(s->bins);
    s->bins = bins;
    s->cap = cap;
    s->offset = offset;
  }
  s->lo = lo;
  s->hi = hi;
  if (folded) {
    BIN(s, lo) += folded;
    s->collapsed = true;
  }
  return CANARY_OK;
}

/* The range that holds [lo, hi] within max_bins: the top is kept, the bottom gives way. */
static int32_t bounded_lo(const struct sketch *s, int32_t lo, int32_t hi) {
  if ((int64_t)hi - lo + 1 > (int64_t)s->max_bins)
    return hi - (int32_t)s->max_bins + 1;
  return lo;
}

int sketch_add_n(struct sketch *s, double value, uint64_t count) {
  if (!(value >= 0) || !isfinite(value))
    return CANARY_EINVALID;
  if (!count)
    return CANARY_OK;
  if (value < SKETCH_MIN_VALUE) {
    s->zero_count += count;
  } else {
    int32_t i = sketch_index(s, value);
    int32_t lo = i, hi = i;
    if (s->lo <= s->hi) {
      lo = s->lo < i ? s->lo : i;
      hi = s->hi > i ? s->hi : i;
    }
    lo = bounded_lo(s, lo, hi);
    if (lo != s->lo || hi != s->hi) {
      int rc = set_range(s, lo, hi);
      if (rc)
        return rc;
    }
    if (i < lo) {
      i = lo;
      s->collapsed = true;
    }
    BIN(s, i) += count;
  }
  if (!s->count || value < s->min)
    s->min = value;
  if (!s->count || value > s->max)
    s->max = value;
  s->count += count;
  s->sum += value * (double)count;
  return CANARY_OK;
}

int sketch_add(struct sketch *s, double value) { return sketch_add_n(s, value, 1); }

int sketch_merge(struct sketch *dst, const struct sketch *src) {
  if (dst->alpha != src->alpha)
    return CANARY_EINVALID;
  if (!src->count)
    return CANARY_OK;
  if (dst == src) {
    for (int32_t i = dst->lo; i <= dst->hi; i++)
      BIN(dst, i) *= 2;
    dst->zero_count *= 2;
    dst->count *= 2;
    dst->sum *= 2;
    return CANARY_OK;
  }
  if (src->lo <= src->hi) {
    int32_t lo = src->lo, hi = src->hi;
    if (dst->lo <= dst->hi) {
      lo = dst->lo < lo ? dst->lo : lo;
      hi = dst->hi > hi ? dst->hi : hi;
    }
    lo = bounded_lo(dst, lo, hi);
    if (lo != dst->lo || hi != dst->hi) {
      int rc = set_range(dst, lo, hi);
      if (rc)
        return rc;
    }
    for (int32_t i = src->lo; i <= src->hi; i++) {
      uint64_t c = BIN(src, i);
      if (!c)
        continue;
      if (i < lo)
        dst->collapsed = true;
      BIN(dst, i < lo ? lo : i) += c;
    }
  }
  if (!dst->count || src->min < dst->min)
    dst->min = src->min;
  if (!dst->count || src->max > dst->max)
    dst->max = src->max;
  dst->collapsed |= src->collapsed;
  dst->zero_count += src->zero_count;
  dst->count += src->count;
  dst->sum += src->sum;
  return CANARY_OK;
}

static uint64_t bin_or_0(const struct sketch *s, int32_t i) {
  return s && s->count && i >= s->lo && i <= s->hi ? BIN(s, i) : 0;
}

/*
 * The bin that holds the value of rank (0-based) among count values, zero of them in the zero
 * bin and the rest in the bins of a and b (b may be NULL) summed over [lo, hi]: INT32_MIN for
 * the zero bin. The first bin whose cumulative count passes rank — found from the nearer end,
 * so that a p99 reads a few bins from the top rather than every bin from the bottom.
 */
static int32_t rank_bin(const struct sketch *a, const struct sketch *b, int32_t lo, int32_t hi,
                        uint64_t zero, uint64_t count, uint64_t rank) {
  if (rank < zero)
    return INT32_MIN;
  if (rank - zero < (count - zero) / 2) {
    uint64_t seen = zero;
    for (int32_t i = lo; i <= hi; i++) {
      seen += bin_or_0(a, i) + bin_or_0(b, i);
      if (seen > rank)
        return i;
    }
  } else {
    /* the same bin: the lowest i with fewer than count - rank values above it */
    uint64_t above = 0, want = count - rank;
    for (int32_t i = hi; i >= lo; i--) {
      above += bin_or_0(a, i) + bin_or_0(b, i); /* now the values at i and above */
      if (above >= want)
        return i;
    }
  }
  return INT32_MIN; /* the counts disagree: cannot happen */
}

bool sketch_quantile(const struct sketch *s, double q, double *out) {
  if (!s->count || !(q >= 0 && q <= 1))
    return false;
  uint64_t rank = (uint64_t)floor(q * (double)(s->count - 1));
  if (rank == 0) {
    *out = s->min;
    return true;
  }
  if (rank >= s->count - 1) {
    *out = s->max;
    return true;
  }
  int32_t i =
      s->lo <= s->hi ? rank_bin(s, NULL, s->lo, s->hi, s->zero_count, s->count, rank) : INT32_MIN;
  double v = i == INT32_MIN ? 0 : sketch_bin_value(s, i);
  /* the exact value lies in [min, max]: clamping can only bring the estimate closer */
  *out = v < s->min ? s->min : v > s->max ? s->max : v;
  return true;
}

int sketch_subtract(struct sketch *dst, const struct sketch *src) {
  if (dst->alpha != src->alpha || dst->collapsed || src->collapsed || src->count > dst->count ||
      src->zero_count > dst->zero_count)
    return CANARY_EINVALID;
  for (int32_t i = src->lo; i <= src->hi; i++) {
    uint64_t c = BIN(src, i);
    if (c && (i < dst->lo || i > dst->hi || BIN(dst, i) < c))
      return CANARY_EINVALID;
  }
  for (int32_t i = src->lo; i <= src->hi; i++)
    BIN(dst, i) -= BIN(src, i);
  dst->count -= src->count;
  dst->zero_count -= src->zero_count;
  dst->sum -= src->sum;
  while (dst->lo <= dst->hi && !BIN(dst, dst->lo))
    dst->lo++;
  while (dst->hi >= dst->lo && !BIN(dst, dst->hi))
    dst->hi--;
  if (dst->lo > dst->hi) { /* the empty range, as sketch_reset leaves it */
    dst->lo = 1;
    dst->hi = 0;
  }
  return CANARY_OK;
}

int sketch_quantile_pair(const struct sketch *a, const struct sketch *b, double q, double *out) {
  if (!b || !b->count)
    return sketch_quantile(a, q, out) ? CANARY_OK : CANARY_ENOTFOUND;
  if (!a->count)
    return sketch_quantile(b, q, out) ? CANARY_OK : CANARY_ENOTFOUND;
  if (a->alpha != b->alpha || !(q >= 0 && q <= 1))
    return CANARY_EINVALID;
  /* as sketch_merge would leave them: range, count, zero bin, min, max */
  bool a_bins = a->lo <= a->hi, b_bins = b->lo <= b->hi;
  int32_t lo = !a_bins ? b->lo : !b_bins ? a->lo : a->lo < b->lo ? a->lo : b->lo;
  int32_t hi = !a_bins ? b->hi : !b_bins ? a->hi : a->hi > b->hi ? a->hi : b->hi;
  if ((a_bins || b_bins) && (int64_t)hi - lo + 1 > (int64_t)a->max_bins)
    return CANARY_EFULL;
  uint64_t count = a->count + b->count, zero = a->zero_count + b->zero_count;
  double min = b->min < a->min ? b->min : a->min, max = b->max > a->max ? b->max : a->max;
  /* the walk of sketch_quantile over the summed bins */
  uint64_t rank = (uint64_t)floor(q * (double)(count - 1));
  if (rank == 0) {
    *out = min;
    return CANARY_OK;
  }
  if (rank >= count - 1) {
    *out = max;
    return CANARY_OK;
  }
  int32_t i = a_bins || b_bins ? rank_bin(a, b, lo, hi, zero, count, rank) : INT32_MIN;
  double v = i == INT32_MIN ? 0 : sketch_bin_value(a, i);
  *out = v < min ? min : v > max ? max : v;
  return CANARY_OK;
}

uint64_t sketch_count(const struct sketch *s) { return s->count; }

double sketch_sum(const struct sketch *s) { return s->sum; }

bool sketch_min(const struct sketch *s, double *out) {
  if (!s->count)
    return false;
  *out = s->min;
  return true;
}

bool sketch_max(const struct sketch *s, double *out) {
  if (!s->count)
    return false;
  *out = s->max;
  return true;
}

uint32_t sketch_bin_count(const struct sketch *s) {
  return s->lo <= s->hi ? (uint32_t)(s->hi - s->lo) + 1 : 0;
}

uint64_t sketch_bin(const struct sketch *s, int32_t i) {
  return s->lo <= i && i <= s->hi ? BIN(s, i) : 0;
}

void sketch_reset(struct sketch *s) {
  if (s->bins)
    memset(s->bins, 0, (size_t)s->cap * sizeof *s->bins);
  s->collapsed = false;
  s->count = s->zero_count = 0;
  s->sum = s->min = s->max = 0;
  s->lo = 1;
  s->hi = 0;
}

void sketch_free(struct sketch *s) {
  free(s->bins);
  s->bins = NULL;
  s->cap = 0;
  s->offset = 0;
  sketch_reset(s);
}

/* --- encoding ------------------------------------------------------------------------------- */

/* Writes only when p is not NULL, so the same code sizes and encodes. */
struct writer {
  uint8_t *p;
  size_t n;
};

static void put_u8(struct writer *w, uint8_t b) {
  if (w->p)
    w->p[w->n] = b;
  w->n++;
}

static void put_varint(struct writer *w, uint64_t v) {
  while (v >= 0x80) {
    put_u8(w, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  put_u8(w, (uint8_t)v);
}

static void put_f64(struct writer *w, double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  for (int i = 0; i < 8; i++)
    put_u8(w, (uint8_t)(u >> (8 * i)));
}

static size_t encode(const struct sketch *s, uint8_t *buf) {
  struct writer w = {buf, 0};
  uint32_t nbins = sketch_bin_count(s);
  put_u8(&w, SKETCH_VERSION);
  put_u8(&w, s->collapsed ? 1 : 0);
  put_f64(&w, s->alpha);
  put_varint(&w, s->max_bins);
  put_varint(&w, s->zero_count);
  put_varint(&w, nbins);
  if (s->count) {
    put_f64(&w, s->sum);
    put_f64(&w, s->min);
    put_f64(&w, s->max);
  }
  if (nbins) {
    /* zigzag: small negative indices (values below 1) stay short */
    put_varint(&w, ((uint64_t)(int64_t)s->lo << 1) ^ (uint64_t)((int64_t)s->lo >> 63));
    for (int32_t i = s->lo; i <= s->hi; i++)
      put_varint(&w, BIN(s, i));
  }
  return w.n;
}

size_t sketch_encoded_size(const struct sketch *s) { return encode(s, NULL); }

size_t sketch_encode(const struct sketch *s, uint8_t *buf, size_t cap) {
  size_t n = encode(s, NULL);
  if (buf && n <= cap)
    encode(s, buf);
  return n;
}

struct reader {
  const uint8_t *p;
  size_t n, at;
  const char *why;
};

static bool get_u8(struct reader *r, uint8_t *b) {
  if (r->at >= r->n) {
    r->why = "truncated";
    return false;
  }
  *b = r->p[r->at++];
  return true;
}

static bool get_varint(struct reader *r, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b;
    if (!get_u8(r, &b))
      return false;
    if (shift == 63 && b > 1) {
      r->why = "varint overflows 64 bits";
      return false;
    }
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return true;
  }
  r->why = "varint overflows 64 bits";
  return false;
}

static bool get_f64(struct reader *r, double *d) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) {
    uint8_t b;
    if (!get_u8(r, &b))
      return false;
    u |= (uint64_t)b << (8 * i);
  }
  memcpy(d, &u, sizeof *d);
  return true;
}

static int fail(struct sketch *s, const char **why, const char *reason) {
  sketch_free(s);
  if (why)
    *why = reason;
  return CANARY_EPARSE;
}

int sketch_decode(struct sketch *s, const uint8_t *buf, size_t len, const char **why) {
  struct reader r = {buf, len, 0, NULL};
  uint8_t version = 0, flags = 0;
  double alpha = 0, sum = 0, min = 0, max = 0;
  uint64_t max_bins = 0, zero = 0, nbins = 0, zz = 0;
  int rc = init(s, SKETCH_ALPHA_DEFAULT, SKETCH_MAX_BINS_DEFAULT);
  (void)rc; /* the defaults are valid */
  if (!get_u8(&r, &version) || !get_u8(&r, &flags))
    return fail(s, why, r.why);
  if (version != SKETCH_VERSION)
    return fail(s, why, "unknown version");
  if (flags & ~1u)
    return fail(s, why, "unknown flags");
  if (!get_f64(&r, &alpha) || !get_varint(&r, &max_bins) || !get_varint(&r, &zero) ||
      !get_varint(&r, &nbins))
    return fail(s, why, r.why);
  if (!(alpha >= SKETCH_ALPHA_MIN && alpha <= SKETCH_ALPHA_MAX))
    return fail(s, why, "alpha out of range");
  if (max_bins < SKETCH_MAX_BINS_MIN || max_bins > SKETCH_MAX_BINS_MAX)
    return fail(s, why, "max_bins out of range");
  if (nbins > max_bins)
    return fail(s, why, "more bins than max_bins");
  if (init(s, alpha, (uint32_t)max_bins))
    return fail(s, why, "alpha out of range");
  if (zero || nbins) {
    if (!get_f64(&r, &sum) || !get_f64(&r, &min) || !get_f64(&r, &max))
      return fail(s, why, r.why);
    if (!isfinite(sum) || !isfinite(min) || !isfinite(max) || !(0 <= min && min <= max) || sum < 0)
      return fail(s, why, "sum, min or max out of range");
  }
  uint64_t count = zero;
  if (nbins) {
    if (!get_varint(&r, &zz))
      return fail(s, why, r.why);
    int64_t lo = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    int64_t hi = lo + (int64_t)nbins - 1;
    /* every bin a finite double >= SKETCH_MIN_VALUE can map to */
    if (lo < (int64_t)sketch_index(s, SKETCH_MIN_VALUE) || hi > (int64_t)sketch_index(s, DBL_MAX))
      return fail(s, why, "bin index out of range");
    if (set_range(s, (int32_t)lo, (int32_t)hi)) {
      sketch_free(s);
      return CANARY_ENOMEM;
    }
    for (int64_t i = lo; i <= hi; i++) {
      uint64_t c;
      if (!get_varint(&r, &c))
        return fail(s, why, r.why);
      if (!c && (i == lo || i == hi))
        return fail(s, why, "first or last bin empty");
      if (count + c < count)
        return fail(s, why, "count overflows");
      count += c;
      BIN(s, i) = c;
    }
  }
  if (r.at != r.n)
    return fail(s, why, "trailing bytes");
  s->collapsed = flags & 1;
  s->zero_count = zero;
  s->count = count;
  s->sum = sum;
  s->min = min;
  s->max = max;
  return CANARY_OK;
}

uint64_t sketch_count_above(const struct sketch *s, double x) {
  if (!s->count || isnan(x) || x >= s->max)
    return 0;
  if (x < s->min)
    return s->count;
  /* min <= x < max: a bin counts when its estimate, clamped to [min, max], is above x — which,
   * with x inside [min, max), is when the estimate itself is; the zero bin's (0) never is. The
   * estimates grow with the index: start at x's own bin, step to the first estimate above x. */
  if (!s->bins || s->lo > s->hi)
    return 0;
  int32_t i = x > 0 ? sketch_index(s, x) : s->lo;
  if (i < s->lo)
    i = s->lo;
  while (i > s->lo && sketch_bin_value(s, i - 1) > x)
    i--;
  while (i <= s->hi && !(sketch_bin_value(s, i) > x))
    i++;
  uint64_t k = 0;
  for (; i <= s->hi; i++)
    k += sketch_bin(s, i);
  return k;
}
