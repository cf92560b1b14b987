/* Windows: fine buckets age into coarse roll-ups, and queries merge whatever their span covers.
 * Over 800 lines and one file on purpose: the queries walk the same rings through the bucket
 * helpers (bucket_find, tier_lo, the caches), which would otherwise be exported to a second file
 * for no second job. */
#include "core/window.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FINE = 0, COARSE = 1 };

const char *window_kind_name(enum window_kind kind) {
  switch (kind) {
#define XX(name, wire)                                                                             \
  case WINDOW_##name:                                                                              \
    return wire;
    WINDOW_KIND_MAP(XX)
#undef XX
  default:
    return "unknown";
  }
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return r < 0 ? r + b : r;
}

static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* --- configuration -------------------------------------------------------------------------- */

int window_init(struct window *w, enum window_kind kind, int64_t bucket_ms, int64_t retention_ms) {
  struct window_config cfg = {
      .bucket_ms = bucket_ms,
      .retention_ms = retention_ms,
      .fine_span_ms = WINDOW_FINE_SPAN_MS_DEFAULT,
      .coarse_ms = WINDOW_COARSE_MS_DEFAULT,
      .alpha = SKETCH_ALPHA_DEFAULT,
  };
  if (bucket_ms > 0) {
    cfg.coarse_ms = ceil_div(WINDOW_COARSE_MS_DEFAULT, bucket_ms) * bucket_ms;
    if (cfg.fine_span_ms < bucket_ms)
      cfg.fine_span_ms = bucket_ms;
  }
  return window_init_config(w, kind, &cfg);
}

static bool config_ok(enum window_kind kind, const struct window_config *c) {
  const int64_t max = WINDOW_TIME_MAX;
  if ((unsigned)kind >= WINDOW_KIND_COUNT)
    return false;
  if (c->bucket_ms <= 0 || c->bucket_ms > max || c->retention_ms < c->bucket_ms ||
      c->retention_ms > max || c->fine_span_ms < c->bucket_ms || c->fine_span_ms > max ||
      c->coarse_ms < c->bucket_ms || c->coarse_ms > max || c->coarse_ms % c->bucket_ms)
    return false;
  return true;
}

static void caches_clear(struct window *w) {
  for (int i = 0; i < WINDOW_CACHE_SPANS; i++) {
    struct window_cache *c = &w->cache[i];
    if (c->sketch) {
      sketch_free(c->sketch);
      free(c->sketch);
    }
    memset(c, 0, sizeof *c);
    c->span = -1;
  }
  w->cache_next = 0;
  w->cached_hi = INT64_MIN;
  w->gen++;
  w->late++;
}

int window_init_config(struct window *w, enum window_kind kind, const struct window_config *cfg) {
  memset(w, 0, sizeof *w);
  caches_clear(w);
  w->kind = kind;
  w->n_tiers = 1;
  int rc = sketch_init(&w->scratch, cfg->alpha);
  if (rc || !config_ok(kind, cfg))
    return CANARY_EINVALID;
  w->cfg = *cfg;
  bool two = cfg->retention_ms > cfg->fine_span_ms && cfg->coarse_ms > cfg->bucket_ms;
  struct window_tier *f = &w->tier[FINE], *c = &w->tier[COARSE];
  f->width_ms = cfg->bucket_ms;
  f->span_ms = two ? cfg->fine_span_ms : cfg->retention_ms;
  /* keys floor((clock - span) / width) .. floor(clock / width): at most ceil(span/width) + 1 */
  f->slots = ceil_div(f->span_ms, f->width_ms) + 1;
  if (two) {
    w->n_tiers = 2;
    c->width_ms = cfg->coarse_ms;
    c->span_ms = cfg->retention_ms;
    c->slots = ceil_div(c->span_ms, c->width_ms) + 1;
  }
  if (f->slots > WINDOW_MAX_SLOTS || c->slots > WINDOW_MAX_SLOTS) {
    memset(w->tier, 0, sizeof w->tier);
    w->n_tiers = 1;
    return CANARY_EINVALID;
  }
  return CANARY_OK;
}

/* --- buckets -------------------------------------------------------------------------------- */

/* The oldest key a tier keeps at the current clock. */
static int64_t tier_lo(const struct window *w, const struct window_tier *t) {
  return floor_div(w->clock_ms - t->span_ms, t->width_ms);
}

static void bucket_clear(struct window_bucket *b) {
  memset(b, 0, sizeof *b);
  b->key = WINDOW_NO_KEY;
}

static void bucket_drop(const struct window *w, struct window_bucket *b) {
  if (w->kind == WINDOW_DISTRIBUTION && b->u.sketch) {
    sketch_free(b->u.sketch);
    free(b->u.sketch);
  }
  bucket_clear(b);
}

static int ring_alloc(struct window_tier *t) {
  if (t->b)
    return CANARY_OK;
  t->b = malloc((size_t)t->slots * sizeof *t->b);
  if (!t->b)
    return CANARY_ENOMEM;
  for (int64_t i = 0; i < t->slots; i++)
    bucket_clear(&t->b[i]);
  return CANARY_OK;
}

/* The bucket of key in tier t, opened empty if the slot held nothing (or something stale). */
static struct window_bucket *bucket_open(const struct window *w, struct window_tier *t,
                                         int64_t key) {
  if (ring_alloc(t))
    return NULL;
  struct window_bucket *b = &t->b[mod(key, t->slots)];
  if (b->key != key) {
    bucket_drop(w, b); /* stale keys are cleared on expiry; this is only a safety net */
    b->key = key;
  }
  return b;
}

static const struct window_bucket *bucket_find(const struct window_tier *t, int64_t key) {
  if (!t->b)
    return NULL;
  const struct window_bucket *b = &t->b[mod(key, t->slots)];
  return b->key == key && b->n ? b : NULL;
}

/* Fold src (a fine bucket leaving the fine tier) into dst (its coarse bucket); src is left
 * without its sketch when dst takes it over. */
static int bucket_merge(const struct window *w, struct window_bucket *dst,
                        struct window_bucket *src) {
  if (w->kind == WINDOW_DISTRIBUTION && src->u.sketch) {
    if (!dst->u.sketch) {
      dst->u.sketch = src->u.sketch; /* the common case: no copy */
      src->u.sketch = NULL;
    } else {
      int rc = sketch_merge(dst->u.sketch, src->u.sketch);
      if (rc)
        return rc;
    }
  } else if (w->kind == WINDOW_GAUGE) {
    if (!dst->n) {
      dst->u.gauge = src->u.gauge;
    } else {
      if (src->u.gauge.min < dst->u.gauge.min)
        dst->u.gauge.min = src->u.gauge.min;
      if (src->u.gauge.max > dst->u.gauge.max)
        dst->u.gauge.max = src->u.gauge.max;
      if (src->u.gauge.last_ms >= dst->u.gauge.last_ms) {
        dst->u.gauge.last = src->u.gauge.last;
        dst->u.gauge.last_ms = src->u.gauge.last_ms;
      }
    }
  }
  dst->n += src->n;
  dst->sum += src->sum;
  return CANARY_OK;
}

/*
 * Move the clock to t (if later). Coarse buckets past the retention go first; then fine
 * buckets that leave the fine tier roll into their coarse bucket (or go, if that is past the
 * retention too). Each loop is bounded by the ring: a jump of days costs one pass.
 */
static int advance(struct window *w, int64_t t) {
  if (!w->started) {
    w->started = true;
    w->clock_ms = t;
    return CANARY_OK;
  }
  if (t <= w->clock_ms)
    return CANARY_OK;
  struct window_tier *f = &w->tier[FINE], *c = &w->tier[COARSE];
  int64_t old_flo = tier_lo(w, f), old_clo = w->n_tiers == 2 ? tier_lo(w, c) : 0;
  w->clock_ms = t;
  int rc = CANARY_OK;
  if (tier_lo(w, f) != old_flo || (w->n_tiers == 2 && tier_lo(w, c) != old_clo))
    w->gen++; /* buckets roll up or go: what the caches folded may have changed */
  if (w->n_tiers == 2 && c->b) {
    int64_t clo = tier_lo(w, c);
    for (int64_t k = old_clo; k < clo && k < old_clo + c->slots; k++) {
      struct window_bucket *b = &c->b[mod(k, c->slots)];
      if (b->key == k)
        bucket_drop(w, b);
    }
  }
  if (f->b) {
    int64_t flo = tier_lo(w, f);
    for (int64_t k = old_flo; k < flo && k < old_flo + f->slots; k++) {
      struct window_bucket *b = &f->b[mod(k, f->slots)];
      if (b->key != k)
        continue;
      if (w->n_tiers == 2) {
        int64_t ck = floor_div(k * f->width_ms, c->width_ms);
        if (ck >= tier_lo(w, c)) {
          struct window_bucket *cb = bucket_open(w, c, ck);
          int r = cb ? bucket_merge(w, cb, b) : CANARY_ENOMEM;
          if (r) {
            w->dropped += b->n;
            rc = r;
          }
        }
      }
      bucket_drop(w, b);
    }
  }
  return rc;
}

/*
 * The bucket that data at t goes to, after moving the clock. NULL with *rc == CANARY_OK when t
 * is past the retention (the caller counts it dropped), NULL with CANARY_ENOMEM when a ring or
 * roll-up could not be allocated.
 */
static struct window_bucket *bucket_at(struct window *w, int64_t t, int *rc) {
  *rc = advance(w, t);
  struct window_tier *f = &w->tier[FINE], *c = &w->tier[COARSE];
  struct window_tier *tier = NULL;
  int64_t key = floor_div(t, f->width_ms);
  if (key >= tier_lo(w, f)) {
    tier = f;
  } else if (w->n_tiers == 2) {
    key = floor_div(t, c->width_ms);
    if (key >= tier_lo(w, c))
      tier = c;
  }
  if (!tier)
    return NULL;
  if (tier == c || key <= w->cached_hi) {
    w->gen++; /* late data, into a bucket that a cache may have folded */
    w->late++;
  }
  struct window_bucket *b = bucket_open(w, tier, key);
  if (!b)
    *rc = CANARY_ENOMEM;
  return b;
}

static bool time_ok(int64_t t) { return t >= -WINDOW_TIME_MAX && t <= WINDOW_TIME_MAX; }

/* t is in range and the window was initialised successfully (a failed init leaves no slots). */
static bool add_ok(const struct window *w, enum window_kind kind, int64_t t) {
  return w->kind == kind && w->tier[FINE].slots > 0 && time_ok(t);
}

int window_add_counter(struct window *w, int64_t t_ms, double value) {
  if (!add_ok(w, WINDOW_COUNTER, t_ms) || !isfinite(value))
    return CANARY_EINVALID;
  int rc;
  struct window_bucket *b = bucket_at(w, t_ms, &rc);
  if (!b) {
    w->dropped++;
    return rc;
  }
  b->n++;
  b->sum += value;
  return rc;
}

int window_add_gauge(struct window *w, int64_t t_ms, double value) {
  if (!add_ok(w, WINDOW_GAUGE, t_ms) || !isfinite(value))
    return CANARY_EINVALID;
  int rc;
  struct window_bucket *b = bucket_at(w, t_ms, &rc);
  if (!b) {
    w->dropped++;
    return rc;
  }
  if (!b->n || value < b->u.gauge.min)
    b->u.gauge.min = value;
  if (!b->n || value > b->u.gauge.max)
    b->u.gauge.max = value;
  if (!b->n || t_ms >= b->u.gauge.last_ms) {
    b->u.gauge.last = value;
    b->u.gauge.last_ms = t_ms;
  }
  b->n++;
  b->sum += value;
  return rc;
}

static bool sample_ok(double v) { return v >= 0 && isfinite(v); }

int window_add_samples(struct window *w, int64_t t_ms, const double *values, size_t n) {
  if (!add_ok(w, WINDOW_DISTRIBUTION, t_ms) || (n && !values))
    return CANARY_EINVALID;
  size_t valid = 0;
  for (size_t i = 0; i < n; i++)
    valid += sample_ok(values[i]);
  w->rejected += n - valid;
  int bad = valid < n ? CANARY_EINVALID : CANARY_OK;
  if (!valid)
    return bad; /* nothing to keep: neither a bucket nor the clock moves */
  int rc;
  struct window_bucket *b = bucket_at(w, t_ms, &rc);
  if (!b) {
    w->dropped += valid;
    return rc ? rc : bad;
  }
  if (!b->u.sketch) {
    struct sketch *s = malloc(sizeof *s);
    if (!s) {
      w->dropped += valid;
      return CANARY_ENOMEM;
    }
    if (sketch_init(s, w->cfg.alpha)) { /* validated at init: cannot happen */
      free(s);
      return CANARY_EINVALID;
    }
    b->u.sketch = s;
  }
  for (size_t i = 0; i < n; i++) {
    if (!sample_ok(values[i]))
      continue;
    if (sketch_add(b->u.sketch, values[i])) {
      w->dropped += valid;
      return CANARY_ENOMEM;
    }
    b->n++;
    b->sum += values[i];
    valid--;
  }
  return rc ? rc : bad;
}

int window_expire(struct window *w, int64_t now) {
  if (!w->started || !time_ok(now))
    return CANARY_OK;
  return advance(w, now);
}

/* --- queries -------------------------------------------------------------------------------- */

typedef int (*visit_fn)(const struct window_bucket *b, int64_t start, int64_t end, void *ctx);

static bool query_ok(const struct window *w, int64_t now, int64_t span) {
  return w->started && time_ok(now) && span >= 0 && span <= WINDOW_TIME_MAX;
}

/*
 * The buckets that hold a point of [now - span, now]: coarse buckets for the part before the
 * fine tier (each clipped to end where the fine tier starts: a coarse bucket there holds only
 * what has left the fine tier), then fine buckets. False when the query reads nothing.
 */
static bool query_range(const struct window *w, int64_t now, int64_t span, struct window_range *r) {
  if (!query_ok(w, now, span))
    return false;
  const struct window_tier *f = &w->tier[FINE], *c = &w->tier[COARSE];
  int64_t from = now - span;
  int64_t flo = tier_lo(w, f);
  memset(r, 0, sizeof *r);
  r->k0 = floor_div(from, f->width_ms);
  r->k1 = floor_div(now, f->width_ms);
  r->fine_start = flo * f->width_ms;
  if (w->n_tiers == 2 && r->k0 < flo) {
    int64_t last = now < r->fine_start - 1 ? now : r->fine_start - 1;
    int64_t clo = tier_lo(w, c);
    r->coarse = true;
    r->c0 = floor_div(from, c->width_ms);
    r->c1 = floor_div(last, c->width_ms);
    if (r->c0 < clo)
      r->c0 = clo;
    if (r->c1 > clo + c->slots - 1)
      r->c1 = clo + c->slots - 1;
  }
  if (r->k0 < flo)
    r->k0 = flo;
  if (r->k1 > flo + f->slots - 1)
    r->k1 = flo + f->slots - 1;
  return true;
}

/* Call fn, oldest first, for every non-empty bucket of r's coarse part (if coarse) and of the
 * fine keys k0 .. k1. */
static int visit_part(const struct window *w, const struct window_range *r, bool coarse, int64_t k0,
                      int64_t k1, visit_fn fn, void *ctx) {
  const struct window_tier *f = &w->tier[FINE], *c = &w->tier[COARSE];
  for (int64_t k = r->c0; coarse && r->coarse && k <= r->c1; k++) {
    const struct window_bucket *b = bucket_find(c, k);
    if (!b)
      continue;
    int64_t start = k * c->width_ms, end = start + c->width_ms;
    int rc = fn(b, start, end < r->fine_start ? end : r->fine_start, ctx);
    if (rc)
      return rc;
  }
  for (int64_t k = k0; k <= k1; k++) {
    const struct window_bucket *b = bucket_find(f, k);
    if (!b)
      continue;
    int rc = fn(b, k * f->width_ms, (k + 1) * f->width_ms, ctx);
    if (rc)
      return rc;
  }
  return CANARY_OK;
}

static int visit(const struct window *w, int64_t now, int64_t span, visit_fn fn, void *ctx) {
  struct window_range r;
  if (!query_range(w, now, span, &r))
    return CANARY_OK;
  return visit_part(w, &r, true, r.k0, r.k1, fn, ctx);
}

/*
 * The cache entry for a query of span over r, or NULL when it cannot have one: the fine part
 * must reach now's bucket (k1 >= k0, the tier starting at or before it), so that every bucket
 * but the newest is whole in the past and reads the same at a later now. *fresh says whether
 * the entry holds a valid fold; otherwise it has been taken over (kind flags cleared) for
 * filling.
 */
static struct window_cache *cache_for(struct window *w, int64_t span, const struct window_range *r,
                                      bool *fresh) {
  *fresh = false;
  if (w->uncached || r->k1 < r->k0)
    return NULL;
  struct window_cache *e = NULL;
  for (int i = 0; i < WINDOW_CACHE_SPANS && !e; i++)
    if (w->cache[i].span == span)
      e = &w->cache[i];
  if (!e) {
    e = &w->cache[w->cache_next];
    w->cache_next = (w->cache_next + 1) % WINDOW_CACHE_SPANS;
    e->span = span;
    e->sk_valid = false; /* another span's fold */
  } else if (e->gen == w->gen && memcmp(&e->r, r, sizeof *r) == 0) {
    *fresh = true;
    return e;
  }
  e->gen = w->gen;
  e->r = *r;
  e->have_stats = e->have_sketch = false;
  if (r->k1 - 1 > w->cached_hi)
    w->cached_hi = r->k1 - 1;
  return e;
}

/*
 * The fold of window_stats. Coverage is summed from each bucket's start and the first bucket's
 * part before the interval taken off at the end (only the first bucket can start before it), so
 * that a fold of the older buckets can be kept and carried on with the newest.
 */
struct stats_ctx {
  const struct window *w;
  struct window_stats *out;
  int64_t to;          /* now: a bucket counts up to there */
  int64_t covered_ms;  /* of the buckets read, each from its start */
  int64_t first_start; /* start of the first bucket read; INT64_MAX none */
};

static int add_stats(const struct window_bucket *b, int64_t start, int64_t end, void *p) {
  struct stats_ctx *ctx = p;
  struct window_stats *o = ctx->out;
  double min = 0, max = 0;
  if (ctx->w->kind == WINDOW_GAUGE) {
    min = b->u.gauge.min;
    max = b->u.gauge.max;
    if (!o->n || b->u.gauge.last_ms >= o->last_ms) {
      o->last = b->u.gauge.last;
      o->last_ms = b->u.gauge.last_ms;
    }
  } else if (ctx->w->kind == WINDOW_DISTRIBUTION && b->u.sketch) {
    min = b->u.sketch->min;
    max = b->u.sketch->max;
  }
  if (ctx->w->kind != WINDOW_COUNTER) {
    if (!o->n || min < o->min)
      o->min = min;
    if (!o->n || max > o->max)
      o->max = max;
  }
  o->n += b->n;
  o->sum += b->sum;
  o->buckets++;
  if (ctx->first_start == INT64_MAX)
    ctx->first_start = start;
  int64_t hi = end < ctx->to ? end : ctx->to;
  if (hi > start)
    ctx->covered_ms += hi - start;
  return CANARY_OK;
}

static void stats_finish(const struct stats_ctx *ctx, int64_t now, int64_t span_ms) {
  struct window_stats *out = ctx->out;
  int64_t from = now - span_ms, covered = ctx->covered_ms;
  if (ctx->first_start < from)
    covered -= from - ctx->first_start;
  if (span_ms == 0)
    out->coverage = out->n ? 1 : 0;
  else
    out->coverage = covered >= span_ms ? 1 : (double)covered / (double)span_ms;
}

void window_stats(const struct window *w, int64_t now, int64_t span_ms, struct window_stats *out) {
  memset(out, 0, sizeof *out);
  struct window_range r;
  if (!query_range(w, now, span_ms, &r))
    return;
  struct stats_ctx ctx = {w, out, now, 0, INT64_MAX};
  (void)visit_part(w, &r, true, r.k0, r.k1, add_stats, &ctx); /* add_stats cannot fail */
  stats_finish(&ctx, now, span_ms);
}

void window_read(struct window *w, int64_t now, int64_t span_ms, struct window_stats *out) {
  memset(out, 0, sizeof *out);
  struct window_range r;
  if (!query_range(w, now, span_ms, &r))
    return;
  bool fresh;
  struct window_cache *e = cache_for(w, span_ms, &r, &fresh);
  if (!e) {
    window_stats(w, now, span_ms, out);
    return;
  }
  struct stats_ctx ctx = {w, out, now, 0, INT64_MAX};
  if (fresh && e->have_stats) {
    *out = e->st;
    ctx.covered_ms = e->covered_ms;
    ctx.first_start = e->first_start;
  } else {
    (void)visit_part(w, &r, true, r.k0, r.k1 - 1, add_stats, &ctx);
    e->st = *out;
    e->covered_ms = ctx.covered_ms;
    e->first_start = ctx.first_start;
    e->have_stats = true;
  }
  (void)visit_part(w, &r, false, r.k1, r.k1, add_stats, &ctx); /* the newest bucket */
  stats_finish(&ctx, now, span_ms);
}

double window_counter_sum(const struct window *w, int64_t now, int64_t span_ms) {
  struct window_stats st;
  window_stats(w, now, span_ms, &st);
  return st.sum;
}

static bool gauge_stats(const struct window *w, int64_t now, int64_t span_ms,
                        struct window_stats *st) {
  window_stats(w, now, span_ms, st);
  return st->n > 0;
}

bool window_gauge_avg(const struct window *w, int64_t now, int64_t span_ms, double *out) {
  struct window_stats st;
  if (!gauge_stats(w, now, span_ms, &st))
    return false;
  *out = st.sum / (double)st.n;
  return true;
}

bool window_gauge_max(const struct window *w, int64_t now, int64_t span_ms, double *out) {
  struct window_stats st;
  if (!gauge_stats(w, now, span_ms, &st))
    return false;
  *out = st.max;
  return true;
}

bool window_gauge_min(const struct window *w, int64_t now, int64_t span_ms, double *out) {
  struct window_stats st;
  if (!gauge_stats(w, now, span_ms, &st))
    return false;
  *out = st.min;
  return true;
}

bool window_gauge_last(const struct window *w, int64_t now, int64_t span_ms, double *out) {
  struct window_stats st;
  if (!gauge_stats(w, now, span_ms, &st))
    return false;
  *out = st.last;
  return true;
}

uint64_t window_count(const struct window *w, int64_t now, int64_t span_ms) {
  struct window_stats st;
  window_stats(w, now, span_ms, &st);
  return st.n;
}

double window_coverage(const struct window *w, int64_t now, int64_t span_ms) {
  struct window_stats st;
  window_stats(w, now, span_ms, &st);
  return st.coverage;
}

static int merge_sketch(const struct window_bucket *b, int64_t start, int64_t end, void *dst) {
  (void)start;
  (void)end;
  return b->u.sketch ? sketch_merge(dst, b->u.sketch) : CANARY_OK;
}

int window_merge(const struct window *w, int64_t now, int64_t span_ms, struct sketch *dst) {
  if (w->kind != WINDOW_DISTRIBUTION || dst->alpha != w->scratch.alpha)
    return CANARY_EINVALID;
  return visit(w, now, span_ms, merge_sketch, dst);
}

/*
 * Slide e's fold from the range it holds (sk_r) to r: take out the fine buckets that left it,
 * merge in those that joined. Exact — the same bins, counts, min and max as merging r's buckets
 * again — when both ranges lie in the fine tier, no data landed since in a bucket the fold holds
 * (late), every bucket that left is still there to be taken out, and nothing collapses;
 * otherwise CANARY_EINVALID and the caller merges afresh. Queries move on one bucket at a time,
 * so a 10-minute p99 takes out one sketch and merges one instead of merging sixty.
 */
static int slide(struct window *w, struct window_cache *e, const struct window_range *r) {
  const struct window_range *o = &e->sk_r;
  const struct window_tier *f = &w->tier[FINE];
  struct sketch *d = e->sketch;
  if (!e->sk_valid || e->sk_late != w->late || o->coarse || r->coarse || d->collapsed ||
      r->k0 < o->k0 || r->k1 < o->k1 || r->k0 > o->k1 || o->k0 < tier_lo(w, f) ||
      r->k0 - o->k0 > 8 || r->k1 - o->k1 > 8)
    return CANARY_EINVALID;
  /* what joins must not widen the fold past max_bins (merging afresh would collapse) */
  int32_t lo = d->lo, hi = d->hi;
  for (int64_t k = o->k1; k < r->k1; k++) {
    const struct window_bucket *b = bucket_find(f, k);
    const struct sketch *x = b ? b->u.sketch : NULL;
    if (!x || x->lo > x->hi)
      continue;
    if (x->collapsed)
      return CANARY_EINVALID;
    lo = lo > hi || x->lo < lo ? x->lo : lo;
    hi = hi < x->hi ? x->hi : hi;
  }
  if (lo <= hi && (int64_t)hi - lo + 1 > (int64_t)d->max_bins)
    return CANARY_EINVALID;
  for (int64_t k = o->k0; k < r->k0; k++) {
    const struct window_bucket *b = bucket_find(f, k);
    if (b && b->u.sketch && sketch_subtract(d, b->u.sketch) != CANARY_OK)
      return CANARY_EINVALID; /* d is left part-way: the caller merges afresh */
  }
  for (int64_t k = o->k1; k < r->k1; k++) {
    const struct window_bucket *b = bucket_find(f, k);
    if (b && b->u.sketch) {
      int rc = sketch_merge(d, b->u.sketch);
      if (rc)
        return rc;
    }
  }
  /* min and max of what the fold holds now, from its buckets' (exact) */
  bool any = false;
  for (int64_t k = r->k0; k < r->k1; k++) {
    const struct window_bucket *b = bucket_find(f, k);
    const struct sketch *x = b ? b->u.sketch : NULL;
    if (!x || !x->count)
      continue;
    if (!any || x->min < d->min)
      d->min = x->min;
    if (!any || x->max > d->max)
      d->max = x->max;
    any = true;
  }
  if (!d->count)
    sketch_reset(d);
  return CANARY_OK;
}

/* Make e->sketch the merge of r's buckets but the newest: as it is when fresh, slid when it can
 * be, else merged afresh. */
static int fold_sketch(struct window *w, struct window_cache *e, const struct window_range *r,
                       bool fresh) {
  if (fresh && e->have_sketch)
    return CANARY_OK;
  if (!e->sketch) {
    e->sketch = malloc(sizeof *e->sketch);
    if (!e->sketch || sketch_init(e->sketch, w->cfg.alpha)) {
      free(e->sketch);
      e->sketch = NULL;
      return CANARY_ENOMEM;
    }
    e->sk_valid = false;
  }
  int rc = slide(w, e, r);
  if (rc == CANARY_ENOMEM) {
    e->sk_valid = e->have_sketch = false;
    return rc;
  }
  if (rc != CANARY_OK) {
    sketch_reset(e->sketch);
    rc = visit_part(w, r, true, r->k0, r->k1 - 1, merge_sketch, e->sketch);
    if (rc) {
      e->sk_valid = false; /* have_sketch stays false: filled again next time */
      return rc;
    }
  }
  e->have_sketch = e->sk_valid = true;
  e->sk_r = *r;
  e->sk_late = w->late;
  return CANARY_OK;
}

/*
 * The span's buckets as the cache keeps them: the fold of every bucket but the newest (filled or
 * slid if it was not current) and the newest bucket's sketch (NULL: none), with the range in *r.
 * CANARY_ENOTFOUND: the query reads nothing. *fold NULL: the query has no cache entry (walk r's
 * buckets instead).
 */
static int fold_and_newest(struct window *w, int64_t now, int64_t span_ms, struct window_range *r,
                           const struct sketch **fold, const struct sketch **newest) {
  *fold = *newest = NULL;
  if (!query_range(w, now, span_ms, r))
    return CANARY_ENOTFOUND;
  bool fresh;
  struct window_cache *e = cache_for(w, span_ms, r, &fresh);
  if (!e)
    return CANARY_OK;
  int rc = fold_sketch(w, e, r, fresh);
  if (rc)
    return rc;
  const struct window_bucket *b = bucket_find(&w->tier[FINE], r->k1);
  *fold = e->sketch;
  *newest = b ? b->u.sketch : NULL;
  return CANARY_OK;
}

/*
 * window_merge into the scratch sketch, through the cache: merging the fold of every bucket but
 * the newest, then the newest bucket, gives the same sketch as merging them all in order
 * (merging into an empty sketch copies; counts add; sum adds in the same order).
 */
static int merge_scratch(struct window *w, int64_t now, int64_t span_ms) {
  struct sketch *s = &w->scratch;
  sketch_reset(s);
  if (w->kind != WINDOW_DISTRIBUTION)
    return CANARY_EINVALID;
  struct window_range r;
  const struct sketch *fold, *newest;
  int rc = fold_and_newest(w, now, span_ms, &r, &fold, &newest);
  if (rc == CANARY_ENOTFOUND)
    return CANARY_OK; /* nothing in the span: the scratch stays empty */
  if (rc)
    return rc;
  if (!fold)
    return visit_part(w, &r, true, r.k0, r.k1, merge_sketch, s);
  if ((rc = sketch_merge(s, fold)))
    return rc;
  return newest ? sketch_merge(s, newest) : CANARY_OK;
}

int window_quantile_n(struct window *w, int64_t now, int64_t span_ms, double q, double *out,
                      uint64_t *n) {
  if (n)
    *n = 0;
  if (!(q >= 0 && q <= 1) || w->kind != WINDOW_DISTRIBUTION)
    return CANARY_EINVALID;
  /* Read the quantile off the fold and the newest bucket together: the same value as from
   * their merge, without copying the fold's bins into the scratch at every query. */
  struct window_range r;
  const struct sketch *fold, *newest;
  int rc = fold_and_newest(w, now, span_ms, &r, &fold, &newest);
  if (rc == CANARY_ENOTFOUND)
    return rc; /* no values in the span */
  if (rc)
    return rc;
  if (fold) {
    rc = sketch_quantile_pair(fold, newest, q, out);
    if (rc != CANARY_EFULL) {
      if (n && rc == CANARY_OK)
        *n = fold->count + (newest ? newest->count : 0);
      return rc;
    }
  }
  if ((rc = merge_scratch(w, now, span_ms)))
    return rc;
  if (n)
    *n = w->scratch.count;
  return sketch_quantile(&w->scratch, q, out) ? CANARY_OK : CANARY_ENOTFOUND;
}

int window_quantile(struct window *w, int64_t now, int64_t span_ms, double q, double *out) {
  return window_quantile_n(w, now, span_ms, q, out, NULL);
}

int window_count_above(struct window *w, int64_t now, int64_t span_ms, double x, uint64_t *above,
                       uint64_t *n) {
  *above = *n = 0;
  if (w->kind != WINDOW_DISTRIBUTION || isnan(x))
    return CANARY_EINVALID;
  struct sketch *s = &w->scratch;
  int rc = merge_scratch(w, now, span_ms);
  if (rc)
    return rc;
  *n = s->count;
  *above = sketch_count_above(s, x);
  return CANARY_OK;
}

/* --- bookkeeping ---------------------------------------------------------------------------- */

size_t window_buckets(const struct window *w) {
  size_t n = 0;
  for (int i = 0; i < w->n_tiers; i++)
    for (int64_t k = 0; w->tier[i].b && k < w->tier[i].slots; k++)
      n += w->tier[i].b[k].key != WINDOW_NO_KEY;
  return n;
}

size_t window_memory(const struct window *w) {
  size_t bytes = (size_t)w->scratch.cap * sizeof *w->scratch.bins;
  for (int i = 0; i < WINDOW_CACHE_SPANS; i++) {
    const struct sketch *s = w->cache[i].sketch;
    if (s)
      bytes += sizeof *s + (size_t)s->cap * sizeof *s->bins;
  }
  for (int i = 0; i < w->n_tiers; i++) {
    const struct window_tier *t = &w->tier[i];
    if (!t->b)
      continue;
    bytes += (size_t)t->slots * sizeof *t->b;
    if (w->kind != WINDOW_DISTRIBUTION)
      continue;
    for (int64_t k = 0; k < t->slots; k++) {
      const struct sketch *s = t->b[k].key != WINDOW_NO_KEY ? t->b[k].u.sketch : NULL;
      if (s)
        bytes += sizeof *s + (size_t)s->cap * sizeof *s->bins;
    }
  }
  return bytes;
}

void window_free(struct window *w) {
  for (int i = 0; i < w->n_tiers; i++) {
    struct window_tier *t = &w->tier[i];
    for (int64_t k = 0; t->b && k < t->slots; k++)
      bucket_drop(w, &t->b[k]);
    free(t->b);
    t->b = NULL;
  }
  sketch_free(&w->scratch);
  caches_clear(w);
  w->started = false;
  w->clock_ms = 0;
  w->dropped = w->rejected = 0;
}
