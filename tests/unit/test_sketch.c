/* DDSketch: the relative-error guarantee against exact quantiles, merges, collapse, encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>

#include "core/sketch.h"

/* --- deterministic data ----------------------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed; }

static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double uniform01(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

static double normal(void) { /* Box-Muller */
  return sqrt(-2 * log(uniform01())) * cos(2 * M_PI * uniform01());
}

enum dataset {
  DS_UNIFORM,     /* uniform in [0, 1000) ms */
  DS_LOGNORMAL,   /* latency-like: median 100 ms, sigma 0.8 */
  DS_LATENCY_INT, /* the same rounded to whole ms: many ties */
  DS_BIMODAL,     /* cache hits around 50 ms, misses around 800 ms */
  DS_PARETO,      /* heavy tail, shape 1.1 */
  DS_CONSTANT,    /* 42 */
  DS_HUGE_RANGE,  /* log-uniform 1e-3 .. 1e7 */
  DS_CLS,         /* Core Web Vitals CLS: 40% exactly 0, the rest small */
  DS_WITH_ZEROS,  /* 20% zeros, the rest lognormal */
  DS_COUNT
};

static const char *const ds_names[DS_COUNT] = {
    "uniform",  "lognormal",  "latency_int", "bimodal",    "pareto",
    "constant", "huge_range", "cls",         "with_zeros",
};

static double draw(enum dataset ds) {
  switch (ds) {
  case DS_UNIFORM:
    return 1000 * uniform01();
  case DS_LOGNORMAL:
    return exp(log(100) + 0.8 * normal());
  case DS_LATENCY_INT:
    return round(exp(log(100) + 0.8 * normal()));
  case DS_BIMODAL: {
    double v = uniform01() < 0.7 ? 50 + 5 * normal() : 800 + 80 * normal();
    return v < 0 ? 0 : v;
  }
  case DS_PARETO:
    return 1 / pow(uniform01(), 1 / 1.1);
  case DS_CONSTANT:
    return 42;
  case DS_HUGE_RANGE:
    return pow(10, -3 + 10 * uniform01());
  case DS_CLS:
    return uniform01() < 0.4 ? 0 : 0.3 * pow(uniform01(), 3);
  case DS_WITH_ZEROS:
    return uniform01() < 0.2 ? 0 : exp(log(100) + 0.8 * normal());
  default:
    fail();
    return 0;
  }
}

static double *generate(enum dataset ds, size_t n, uint64_t seed) {
  double *v = malloc(n * sizeof *v);
  assert_non_null(v);
  rng_seed(seed);
  for (size_t i = 0; i < n; i++)
    v[i] = draw(ds);
  return v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double *sorted_copy(const double *v, size_t n) {
  double *s = malloc(n * sizeof *s);
  assert_non_null(s);
  memcpy(s, v, n * sizeof *s);
  qsort(s, n, sizeof *s, cmp_double);
  return s;
}

/* --- the guarantee -------------------------------------------------------------------------- */

/* The paper's exact value: rank floor(q (n - 1)), 0-based, of the sorted values. */
static double exact_quantile(const double *sorted, size_t n, double q) {
  return sorted[(size_t)floor(q * (double)(n - 1))];
}

/*
 * |estimate - exact| <= alpha * exact. The bound is reached exactly at the edges of a bin, so
 * allow the rounding of log() and pow() (1e-12 relative), and the zero bin's absolute 1e-9.
 */
static double rel_error(double est, double exact) {
  if (exact < SKETCH_MIN_VALUE)
    return fabs(est - exact) < SKETCH_MIN_VALUE ? 0 : INFINITY;
  return fabs(est - exact) / exact;
}

static void assert_within(double est, double exact, double alpha, const char *what, double q) {
  double err = rel_error(est, exact);
  if (!(err <= alpha * (1 + 1e-12))) {
    print_error("%s q=%g: estimate %.17g exact %.17g relative error %.6g > alpha %g\n", what, q,
                est, exact, err, alpha);
    fail();
  }
}

static const double qs[] = {0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};

/* Build a sketch of v, check every q of qs against the sorted values; returns the worst error. */
static double check_dataset(const double *v, size_t n, double alpha, const char *name,
                            double worst[4]) {
  struct sketch s;
  assert_int_equal(sketch_init(&s, alpha), CANARY_OK);
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(sketch_add(&s, v[i]), CANARY_OK);
    sum += v[i];
  }
  double *sorted = sorted_copy(v, n);
  assert_int_equal(sketch_count(&s), n);
  assert_false(s.collapsed);
  double m;
  assert_true(sketch_min(&s, &m));
  assert_true(m == sorted[0]);
  assert_true(sketch_max(&s, &m));
  assert_true(m == sorted[n - 1]);
  assert_true(fabs(sketch_sum(&s) - sum) <= 1e-9 * fabs(sum) + 1e-12);
  double max_err = 0;
  for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
    double est = NAN, exact = exact_quantile(sorted, n, qs[i]);
    assert_true(sketch_quantile(&s, qs[i], &est));
    assert_within(est, exact, alpha, name, qs[i]);
    double err = rel_error(est, exact);
    if (err > max_err)
      max_err = err;
    /* the four the plan uses: p50, p75, p95, p99 */
    const double want[4] = {0.5, 0.75, 0.95, 0.99};
    for (int j = 0; worst && j < 4; j++)
      if (qs[i] == want[j] && err > worst[j])
        worst[j] = err;
  }
  free(sorted);
  sketch_free(&s);
  return max_err;
}

static void test_accuracy_datasets(void **state) {
  (void)state;
  enum { N = 100000 };
  double worst[4] = {0};
  for (int ds = 0; ds < DS_COUNT; ds++) {
    double *v = generate((enum dataset)ds, N, 1000 + (uint64_t)ds);
    double err = check_dataset(v, N, 0.01, ds_names[ds], worst);
    printf("  %-12s n=%d  max relative error over q in {0..1}: %.5f\n", ds_names[ds], N, err);
    free(v);
  }
  printf("  worst p50 %.5f  p75 %.5f  p95 %.5f  p99 %.5f  (alpha 0.01)\n", worst[0], worst[1],
         worst[2], worst[3]);
}

/* 1, 2 and 3 values: every quantile is one of them, and min / max come back exactly. */
static void test_accuracy_few_samples(void **state) {
  (void)state;
  const double sets[][3] = {{7, 0, 0}, {3, 9, 0}, {1, 2, 1000}, {0, 0.5, 1e6}, {5, 5, 5}};
  const size_t sizes[] = {1, 2, 3, 3, 3};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    check_dataset(sets[k], sizes[k], 0.01, "few", NULL);
    struct sketch s;
    assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
    for (size_t i = 0; i < sizes[k]; i++)
      assert_int_equal(sketch_add(&s, sets[k][i]), CANARY_OK);
    double lo, hi;
    assert_true(sketch_quantile(&s, 0, &lo));
    assert_true(sketch_quantile(&s, 1, &hi));
    double *sorted = sorted_copy(sets[k], sizes[k]);
    assert_true(lo == sorted[0]);
    assert_true(hi == sorted[sizes[k] - 1]);
    free(sorted);
    sketch_free(&s);
  }
}

/*
 * Every rank of a data set, not only the usual quantiles, and several alphas. The bound on bins
 * is raised: at alpha 0.001, 2048 bins span only 1.8 decades (gamma^2048 = e^4.1).
 */
static void test_accuracy_every_rank(void **state) {
  (void)state;
  enum { N = 2001 };
  const double alphas[] = {0.001, 0.005, 0.01, 0.02, 0.05};
  double worst = 0; /* relative error / alpha */
  for (size_t a = 0; a < sizeof alphas / sizeof *alphas; a++) {
    for (int ds = 0; ds < DS_COUNT; ds++) {
      double *v = generate((enum dataset)ds, N, 77 + (uint64_t)ds);
      double *sorted = sorted_copy(v, N);
      struct sketch s;
      assert_int_equal(sketch_init_bounded(&s, alphas[a], SKETCH_MAX_BINS_MAX), CANARY_OK);
      for (size_t i = 0; i < N; i++)
        assert_int_equal(sketch_add(&s, v[i]), CANARY_OK);
      assert_false(s.collapsed);
      for (size_t r = 0; r < N; r++) {
        double q = (double)r / (N - 1), est, exact = exact_quantile(sorted, N, q);
        assert_true(sketch_quantile(&s, q, &est));
        assert_within(est, exact, alphas[a], ds_names[ds], q);
        if (rel_error(est, exact) / alphas[a] > worst)
          worst = rel_error(est, exact) / alphas[a];
      }
      sketch_free(&s);
      free(sorted);
      free(v);
    }
  }
  printf("  every rank, 9 data sets, 5 alphas: worst relative error = %.6f alpha\n", worst);
}

/* Each bin's estimate is within alpha of both its edges, across the whole double range. */
static void test_mapping(void **state) {
  (void)state;
  struct sketch s;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  assert_true(fabs(s.gamma - 1.01 / 0.99) < 1e-15);
  assert_int_equal(sketch_index(&s, 1.0), 0);
  assert_int_equal(sketch_index(&s, 1.0 + 1e-9), 1);
  assert_int_equal(sketch_index(&s, 1.0 - 1e-9), 0);
  assert_int_equal(sketch_index(&s, s.gamma * 1.0000001), 2);
  assert_int_equal(sketch_index(&s, s.gamma / 1.0000001), 1);
  for (double x = SKETCH_MIN_VALUE; x < 1e300; x *= 1.37) {
    int32_t i = sketch_index(&s, x);
    double est = sketch_bin_value(&s, i);
    assert_within(est, x, 0.01, "mapping", x);
    assert_true(pow(s.gamma, i - 1) <= x * (1 + 1e-12));
    assert_true(x <= pow(s.gamma, i) * (1 + 1e-12));
  }
  sketch_free(&s);
}

static void test_init_rejects_bad_parameters(void **state) {
  (void)state;
  struct sketch s;
  const double bad[] = {0, -0.01, 1, 0.6, NAN, INFINITY, 1e-7};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(sketch_init(&s, bad[i]), CANARY_EINVALID);
    assert_true(s.alpha == SKETCH_ALPHA_DEFAULT); /* still usable and freeable */
    sketch_free(&s);
  }
  assert_int_equal(sketch_init_bounded(&s, 0.01, 8), CANARY_EINVALID);
  assert_int_equal(sketch_init_bounded(&s, 0.01, 1u << 20), CANARY_EINVALID);
  assert_int_equal(sketch_init_bounded(&s, 0.02, 64), CANARY_OK);
  assert_int_equal(s.max_bins, 64);
  assert_null(s.bins); /* init allocates nothing */
  sketch_free(&s);
}

static void test_empty_and_invalid_values(void **state) {
  (void)state;
  struct sketch s;
  double out = 123;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  assert_false(sketch_quantile(&s, 0.5, &out));
  assert_false(sketch_min(&s, &out));
  assert_false(sketch_max(&s, &out));
  assert_true(out == 123);
  assert_int_equal(sketch_count(&s), 0);
  assert_int_equal(sketch_bin_count(&s), 0);
  const double bad[] = {-1, -1e-300, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(sketch_add(&s, bad[i]), CANARY_EINVALID);
    assert_int_equal(sketch_add_n(&s, bad[i], 5), CANARY_EINVALID);
  }
  assert_int_equal(sketch_count(&s), 0);
  assert_int_equal(sketch_add(&s, 10), CANARY_OK);
  assert_false(sketch_quantile(&s, -0.01, &out));
  assert_false(sketch_quantile(&s, 1.01, &out));
  assert_false(sketch_quantile(&s, NAN, &out));
  assert_true(out == 123);
  assert_int_equal(sketch_add_n(&s, 20, 0), CANARY_OK); /* count 0 changes nothing */
  assert_int_equal(sketch_count(&s), 1);
  assert_int_equal(sketch_bin_count(&s), 1);
  sketch_free(&s);
  sketch_free(&s); /* twice is fine */
}

/* Values below SKETCH_MIN_VALUE are zeros; min and max stay exact. */
static void test_zero_bin(void **state) {
  (void)state;
  struct sketch s;
  double out;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  assert_int_equal(sketch_add_n(&s, 0, 6), CANARY_OK);
  assert_int_equal(sketch_add(&s, 1e-12), CANARY_OK);
  assert_int_equal(sketch_add_n(&s, 250, 3), CANARY_OK);
  assert_int_equal(s.zero_count, 7);
  assert_int_equal(sketch_count(&s), 10);
  assert_int_equal(sketch_bin_count(&s), 1);
  assert_true(sketch_quantile(&s, 0.5, &out)); /* rank 4: a zero */
  assert_true(out == 0);
  assert_true(sketch_quantile(&s, 0.7, &out)); /* rank 6: the 1e-12 — estimated as 0 */
  assert_true(out < SKETCH_MIN_VALUE);
  assert_true(sketch_quantile(&s, 0.8, &out)); /* rank 7: 250 */
  assert_within(out, 250, 0.01, "zero_bin", 0.8);
  assert_true(sketch_max(&s, &out));
  assert_true(out == 250);
  sketch_free(&s);
}

static void test_add_n_equals_repeated_adds(void **state) {
  (void)state;
  struct sketch a, b;
  assert_int_equal(sketch_init(&a, 0.01), CANARY_OK);
  assert_int_equal(sketch_init(&b, 0.01), CANARY_OK);
  const double v[] = {0, 0.5, 3, 3, 17.25, 1e4, 2e6};
  const uint64_t n[] = {2, 1, 5, 2, 9, 3, 1};
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    assert_int_equal(sketch_add_n(&a, v[i], n[i]), CANARY_OK);
    for (uint64_t k = 0; k < n[i]; k++)
      assert_int_equal(sketch_add(&b, v[i]), CANARY_OK);
  }
  assert_int_equal(a.count, b.count);
  assert_int_equal(a.zero_count, b.zero_count);
  assert_int_equal(a.lo, b.lo);
  assert_int_equal(a.hi, b.hi);
  for (int32_t i = a.lo; i <= a.hi; i++)
    assert_int_equal(sketch_bin(&a, i), sketch_bin(&b, i));
  assert_true(fabs(a.sum - b.sum) < 1e-6);
  sketch_free(&a);
  sketch_free(&b);
}

/* --- merge ---------------------------------------------------------------------------------- */

static void assert_same_sketch(const struct sketch *a, const struct sketch *b) {
  assert_true(a->alpha == b->alpha);
  assert_int_equal(a->count, b->count);
  assert_int_equal(a->zero_count, b->zero_count);
  assert_int_equal(sketch_bin_count(a), sketch_bin_count(b));
  if (sketch_bin_count(a)) {
    assert_int_equal(a->lo, b->lo);
    assert_int_equal(a->hi, b->hi);
    for (int32_t i = a->lo; i <= a->hi; i++)
      assert_int_equal(sketch_bin(a, i), sketch_bin(b, i));
  }
  assert_int_equal(a->collapsed, b->collapsed);
  if (a->count) {
    assert_true(a->min == b->min);
    assert_true(a->max == b->max);
  }
  /* the sum is the only inexact field: float additions in another order */
  assert_true(fabs(a->sum - b->sum) <= 1e-9 * fabs(a->sum) + 1e-12);
  for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
    double x = 0, y = 0;
    assert_int_equal(sketch_quantile(a, qs[i], &x), sketch_quantile(b, qs[i], &y));
    assert_true(x == y);
  }
}

/* The sketch of the union, and the merge of the parts, are the same sketch bin for bin. */
static void test_merge_equals_union(void **state) {
  (void)state;
  enum { N = 20000 };
  const uint32_t bounds[] = {SKETCH_MAX_BINS_DEFAULT, 64};
  for (size_t bi = 0; bi < 2; bi++) {
    for (int ds = 0; ds < DS_COUNT; ds++) {
      double *v = generate((enum dataset)ds, N, 5 + (uint64_t)ds);
      /* three ways to split: halves, a sliver, everything in one part (the other empty) */
      const size_t cuts[] = {N / 2, 7, 0, N};
      for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        struct sketch all, a, b;
        assert_int_equal(sketch_init_bounded(&all, 0.01, bounds[bi]), CANARY_OK);
        assert_int_equal(sketch_init_bounded(&a, 0.01, bounds[bi]), CANARY_OK);
        assert_int_equal(sketch_init_bounded(&b, 0.01, bounds[bi]), CANARY_OK);
        for (size_t i = 0; i < N; i++) {
          assert_int_equal(sketch_add(&all, v[i]), CANARY_OK);
          assert_int_equal(sketch_add(i < cuts[c] ? &a : &b, v[i]), CANARY_OK);
        }
        struct sketch ba;
        assert_int_equal(sketch_init_bounded(&ba, 0.01, bounds[bi]), CANARY_OK);
        assert_int_equal(sketch_merge(&ba, &b), CANARY_OK); /* into an empty sketch */
        assert_int_equal(sketch_merge(&ba, &a), CANARY_OK); /* the other order */
        assert_int_equal(sketch_merge(&a, &b), CANARY_OK);
        assert_same_sketch(&a, &all);
        assert_same_sketch(&ba, &all);
        sketch_free(&all);
        sketch_free(&a);
        sketch_free(&b);
        sketch_free(&ba);
      }
      free(v);
    }
  }
}

/* Disjoint ranges far apart: the merged range spans both, and collapses when it must. */
/* The quantile as defined: walk the bins up from the zero bin to the first whose cumulative
 * count passes the rank (sketch_quantile may walk down from the top instead). */
static double ref_quantile(const struct sketch *s, double q) {
  uint64_t rank = (uint64_t)floor(q * (double)(s->count - 1));
  if (rank == 0)
    return s->min;
  if (rank >= s->count - 1)
    return s->max;
  double v = 0;
  uint64_t seen = s->zero_count;
  for (int32_t i = s->lo; rank >= s->zero_count && i <= s->hi; i++)
    if ((seen += sketch_bin(s, i)) > rank) {
      v = sketch_bin_value(s, i);
      break;
    }
  return v < s->min ? s->min : v > s->max ? s->max : v;
}

/* Either way up, the same bin: every rank of small sets, 1,001 quantiles of large ones, every
 * data set (zeros, ties, wide ranges). */
static void test_quantile_walks_from_either_end(void **state) {
  (void)state;
  rng_seed(11);
  for (int round = 0; round < 2 * DS_COUNT; round++) {
    struct sketch s;
    assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
    size_t n = round < DS_COUNT ? 200 : 50000;
    for (size_t i = 0; i < n; i++)
      assert_int_equal(sketch_add(&s, draw((enum dataset)(round % DS_COUNT))), CANARY_OK);
    int steps = round < DS_COUNT ? (int)n - 1 : 1000;
    for (int k = 0; k <= steps; k++) {
      double q = (double)k / steps, got = -1, want = ref_quantile(&s, q);
      assert_true(sketch_quantile(&s, q, &got));
      if (memcmp(&got, &want, sizeof got) != 0)
        fail_msg("%s, q %.4f: %.17g, by definition %.17g", ds_names[round % DS_COUNT], q, got,
                 want);
    }
    sketch_free(&s);
  }
}

/*
 * sketch_quantile_pair is sketch_quantile of the merge, bit for bit: every pair of data sets
 * (empty, zeros only, one value, wide ranges), sizes from 0 to 2,000, every q in steps of 0.01;
 * and CANARY_EFULL exactly when the merge would have collapsed.
 */
static void test_quantile_pair_is_the_merge(void **state) {
  (void)state;
  rng_seed(7);
  int pairs = 0, full = 0;
  for (int round = 0; round < 300; round++) {
    struct sketch a, b, m;
    uint32_t bins = round % 3 ? SKETCH_MAX_BINS_DEFAULT : SKETCH_MAX_BINS_MIN;
    assert_int_equal(sketch_init_bounded(&a, 0.01, bins), CANARY_OK);
    assert_int_equal(sketch_init_bounded(&b, 0.01, bins), CANARY_OK);
    assert_int_equal(sketch_init_bounded(&m, 0.01, bins), CANARY_OK);
    size_t na = round % 7 == 0 ? 0 : (size_t)(uniform01() * 2000);
    size_t nb = round % 5 == 0 ? 0 : round % 11 == 0 ? 1 : (size_t)(uniform01() * 300);
    enum dataset da = (enum dataset)(round % DS_COUNT), db = (enum dataset)((round / 3) % DS_COUNT);
    for (size_t i = 0; i < na; i++)
      assert_int_equal(sketch_add(&a, round % 13 == 0 ? 0 : draw(da)), CANARY_OK);
    for (size_t i = 0; i < nb; i++)
      assert_int_equal(sketch_add(&b, draw(db)), CANARY_OK);
    assert_int_equal(sketch_merge(&m, &a), CANARY_OK);
    assert_int_equal(sketch_merge(&m, &b), CANARY_OK);
    /* the merge folds when the bins of both span more than max_bins */
    bool wide = a.lo <= a.hi && b.lo <= b.hi &&
                (int64_t)(a.hi > b.hi ? a.hi : b.hi) - (a.lo < b.lo ? a.lo : b.lo) + 1 > bins;
    for (int k = 0; k <= 100; k++) {
      double q = k / 100.0, want = -1, got = -1;
      bool have = sketch_quantile(&m, q, &want);
      int rc = sketch_quantile_pair(&a, &b, q, &got);
      assert_int_equal(rc == CANARY_EFULL, wide && a.count && b.count);
      if (rc == CANARY_EFULL) {
        full++;
        break;
      }
      assert_int_equal(rc, have ? CANARY_OK : CANARY_ENOTFOUND);
      if (have && memcmp(&want, &got, sizeof want) != 0)
        fail_msg("round %d q %.2f: merge %.17g, pair %.17g", round, q, want, got);
    }
    pairs++;
    sketch_free(&a);
    sketch_free(&b);
    sketch_free(&m);
  }
  assert_int_equal(pairs, 300);
  assert_true(full > 0); /* the narrow sketches did collapse now and then */
}

static void test_merge_disjoint_ranges(void **state) {
  (void)state;
  struct sketch lo, hi, all;
  assert_int_equal(sketch_init_bounded(&lo, 0.01, 512), CANARY_OK);
  assert_int_equal(sketch_init_bounded(&hi, 0.01, 512), CANARY_OK);
  assert_int_equal(sketch_init_bounded(&all, 0.01, 512), CANARY_OK);
  for (int i = 0; i < 100; i++) {
    double a = 0.001 * (1 + i), b = 1e6 * (1 + i);
    assert_int_equal(sketch_add(&lo, a), CANARY_OK);
    assert_int_equal(sketch_add(&hi, b), CANARY_OK);
    assert_int_equal(sketch_add(&all, a), CANARY_OK);
    assert_int_equal(sketch_add(&all, b), CANARY_OK);
  }
  assert_false(lo.collapsed);
  assert_false(hi.collapsed);
  assert_true(all.collapsed); /* 1e-3 .. 1e8 needs ~1150 bins */
  struct sketch hi_lo;
  assert_int_equal(sketch_init_bounded(&hi_lo, 0.01, 512), CANARY_OK);
  assert_int_equal(sketch_merge(&hi_lo, &hi), CANARY_OK);
  assert_int_equal(sketch_merge(&hi_lo, &lo), CANARY_OK); /* src below dst's range: folded */
  assert_same_sketch(&hi_lo, &all);
  sketch_free(&hi_lo);
  assert_int_equal(sketch_merge(&lo, &hi), CANARY_OK); /* dst's own bins fold */
  assert_same_sketch(&lo, &all);
  assert_true(sketch_bin_count(&lo) <= 512);
  double p99;
  assert_true(sketch_quantile(&lo, 0.99, &p99));
  assert_within(p99, 98e6, 0.01, "disjoint", 0.99); /* rank 197 of 0..199: the 98th high value */
  sketch_free(&lo);
  sketch_free(&hi);
  sketch_free(&all);
}

static void test_merge_rejects_other_alpha_and_self_merge(void **state) {
  (void)state;
  struct sketch a, b;
  assert_int_equal(sketch_init(&a, 0.01), CANARY_OK);
  assert_int_equal(sketch_init(&b, 0.02), CANARY_OK);
  assert_int_equal(sketch_add(&a, 5), CANARY_OK);
  assert_int_equal(sketch_add(&b, 5), CANARY_OK);
  assert_int_equal(sketch_merge(&a, &b), CANARY_EINVALID);
  assert_int_equal(sketch_count(&a), 1);
  assert_int_equal(sketch_add(&a, 0), CANARY_OK);
  assert_int_equal(sketch_add(&a, 9), CANARY_OK);
  assert_int_equal(sketch_merge(&a, &a), CANARY_OK); /* doubles every count */
  assert_int_equal(sketch_count(&a), 6);
  assert_int_equal(a.zero_count, 2);
  assert_int_equal(sketch_bin(&a, sketch_index(&a, 5)), 2);
  assert_true(a.sum == 28);
  sketch_free(&a);
  sketch_free(&b);
}

/* Merging many small sketches (a window's buckets) in any grouping gives one result. */
static void test_merge_associative(void **state) {
  (void)state;
  enum { PARTS = 50, PER = 300 };
  struct sketch parts[PARTS], left, tree, all;
  assert_int_equal(sketch_init(&left, 0.01), CANARY_OK);
  assert_int_equal(sketch_init(&tree, 0.01), CANARY_OK);
  assert_int_equal(sketch_init(&all, 0.01), CANARY_OK);
  double *v = generate(DS_LOGNORMAL, PARTS * PER, 99);
  for (int p = 0; p < PARTS; p++) {
    assert_int_equal(sketch_init(&parts[p], 0.01), CANARY_OK);
    for (int i = 0; i < PER; i++) {
      assert_int_equal(sketch_add(&parts[p], v[p * PER + i]), CANARY_OK);
      assert_int_equal(sketch_add(&all, v[p * PER + i]), CANARY_OK);
    }
    assert_int_equal(sketch_merge(&left, &parts[p]), CANARY_OK);
  }
  for (int step = 1; step < PARTS; step *= 2) /* pairwise, like a tree of roll-ups */
    for (int p = 0; p + step < PARTS; p += 2 * step)
      assert_int_equal(sketch_merge(&parts[p], &parts[p + step]), CANARY_OK);
  assert_int_equal(sketch_merge(&tree, &parts[0]), CANARY_OK);
  assert_same_sketch(&left, &all);
  assert_same_sketch(&tree, &all);
  for (int p = 0; p < PARTS; p++)
    sketch_free(&parts[p]);
  sketch_free(&left);
  sketch_free(&tree);
  sketch_free(&all);
  free(v);
}

/* --- collapse ------------------------------------------------------------------------------- */

/* Over max_bins the lowest bins fold: high quantiles keep the guarantee, the range stays bounded. */
static void test_collapse_keeps_high_quantiles(void **state) {
  (void)state;
  enum { N = 100000 };
  const uint32_t bounds[] = {64, 128, 512};
  for (size_t bi = 0; bi < sizeof bounds / sizeof *bounds; bi++) {
    double *v = generate(DS_HUGE_RANGE, N, 4242);
    double *sorted = sorted_copy(v, N);
    struct sketch s;
    assert_int_equal(sketch_init_bounded(&s, 0.01, bounds[bi]), CANARY_OK);
    for (size_t i = 0; i < N; i++) {
      assert_int_equal(sketch_add(&s, v[i]), CANARY_OK);
      assert_true(sketch_bin_count(&s) <= bounds[bi]);
      assert_true(s.cap <= bounds[bi]);
    }
    assert_true(s.collapsed);
    assert_int_equal(sketch_bin_count(&s), bounds[bi]);
    assert_int_equal(sketch_count(&s), N);
    /* every quantile whose exact value maps above the folded bin is within alpha */
    size_t guaranteed = 0;
    for (size_t r = 0; r < N; r += 97) {
      double q = (double)r / (N - 1), est, exact = exact_quantile(sorted, N, q);
      assert_true(sketch_quantile(&s, q, &est));
      if (sketch_index(&s, exact) > s.lo) {
        assert_within(est, exact, 0.01, "collapsed", q);
        guaranteed++;
      }
    }
    assert_true(guaranteed > 0);
    const double high[] = {0.95, 0.99, 0.999, 1};
    for (size_t i = 0; i < 4 && bounds[bi] >= 128; i++) { /* 128 bins = the top 1.1 decades */
      double est;
      assert_true(sketch_quantile(&s, high[i], &est));
      assert_within(est, exact_quantile(sorted, N, high[i]), 0.01, "collapsed high", high[i]);
    }
    sketch_free(&s);
    free(sorted);
    free(v);
  }
}

/* Beyond 17 decades even the default bound collapses; p99 stays within alpha. */
static void test_collapse_default_bound(void **state) {
  (void)state;
  enum { N = 50000 };
  double *v = malloc(N * sizeof *v);
  assert_non_null(v);
  rng_seed(31337);
  for (size_t i = 0; i < N; i++)
    v[i] = pow(10, -9 + 309 * uniform01()); /* 1e-9 .. 1e300 */
  double *sorted = sorted_copy(v, N);
  struct sketch s;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(sketch_add(&s, v[i]), CANARY_OK);
  assert_true(s.collapsed);
  assert_int_equal(sketch_bin_count(&s), SKETCH_MAX_BINS_DEFAULT);
  assert_true(s.cap <= SKETCH_MAX_BINS_DEFAULT);
  const double high[] = {0.95, 0.99, 0.999};
  for (size_t i = 0; i < 3; i++) {
    double est;
    assert_true(sketch_quantile(&s, high[i], &est));
    assert_within(est, exact_quantile(sorted, N, high[i]), 0.01, "1e-9..1e300", high[i]);
  }
  sketch_free(&s);
  free(sorted);
  free(v);
}

/* Collapsing does not depend on the order of the values. */
static void test_collapse_order_independent(void **state) {
  (void)state;
  enum { N = 5000 };
  double *v = generate(DS_HUGE_RANGE, N, 8);
  double *asc = sorted_copy(v, N);
  struct sketch a, b, c;
  assert_int_equal(sketch_init_bounded(&a, 0.01, 100), CANARY_OK);
  assert_int_equal(sketch_init_bounded(&b, 0.01, 100), CANARY_OK);
  assert_int_equal(sketch_init_bounded(&c, 0.01, 100), CANARY_OK);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(sketch_add(&a, v[i]), CANARY_OK);
    assert_int_equal(sketch_add(&b, asc[i]), CANARY_OK);
    assert_int_equal(sketch_add(&c, asc[N - 1 - i]), CANARY_OK);
  }
  assert_same_sketch(&a, &b);
  assert_same_sketch(&a, &c);
  sketch_free(&a);
  sketch_free(&b);
  sketch_free(&c);
  free(asc);
  free(v);
}

static void test_reset_reuses(void **state) {
  (void)state;
  struct sketch s;
  double out;
  assert_int_equal(sketch_init_bounded(&s, 0.02, 64), CANARY_OK);
  for (int i = 1; i <= 1000; i++)
    assert_int_equal(sketch_add(&s, i), CANARY_OK);
  uint64_t *bins = s.bins;
  sketch_reset(&s);
  assert_int_equal(sketch_count(&s), 0);
  assert_false(sketch_quantile(&s, 0.5, &out));
  assert_false(s.collapsed);
  assert_true(s.alpha == 0.02);
  assert_int_equal(s.max_bins, 64);
  assert_ptr_equal(s.bins, bins); /* allocation kept */
  assert_int_equal(sketch_add(&s, 3), CANARY_OK);
  assert_true(sketch_quantile(&s, 0.5, &out));
  assert_true(out == 3);
  sketch_free(&s);
}

/* --- encoding ------------------------------------------------------------------------------- */

/* The layout, byte for byte: what PostgreSQL will hold. */
static void test_encode_golden(void **state) {
  (void)state;
  struct sketch s;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  uint8_t buf[64];
  const uint8_t empty[] = {0x01, 0x00, 0x7b, 0x14, 0xae, 0x47, 0xe1,
                           0x7a, 0x84, 0x3f, 0x80, 0x10, 0x00, 0x00};
  assert_int_equal(sketch_encode(&s, buf, sizeof buf), sizeof empty);
  assert_memory_equal(buf, empty, sizeof empty);
  assert_int_equal(sketch_add(&s, 0), CANARY_OK);
  assert_int_equal(sketch_add_n(&s, 1, 2), CANARY_OK); /* bin 0 */
  const uint8_t two[] = {
      0x01, 0x00, 0x7b, 0x14, 0xae, 0x47, 0xe1, 0x7a, 0x84, 0x3f, /* version, flags, alpha */
      0x80, 0x10,                                                 /* max_bins 2048 */
      0x01, 0x01,                                                 /* zero_count 1, 1 bin */
      0,    0,    0,    0,    0,    0,    0x00, 0x40,             /* sum 2.0 */
      0,    0,    0,    0,    0,    0,    0x00, 0x00,             /* min 0.0 */
      0,    0,    0,    0,    0,    0,    0xf0, 0x3f,             /* max 1.0 */
      0x00, 0x02,                                                 /* lo 0, bin count 2 */
  };
  assert_int_equal(sketch_encoded_size(&s), sizeof two);
  assert_int_equal(sketch_encode(&s, NULL, 0), sizeof two);
  memset(buf, 0xee, sizeof buf);
  assert_int_equal(sketch_encode(&s, buf, sizeof two - 1), sizeof two); /* too small */
  assert_int_equal(buf[0], 0xee);                                       /* nothing written */
  assert_int_equal(sketch_encode(&s, buf, sizeof two), sizeof two);
  assert_memory_equal(buf, two, sizeof two);
  assert_int_equal(sketch_add(&s, 0.5), CANARY_OK); /* negative index: zigzag */
  uint8_t enc[128];
  size_t n = sketch_encode(&s, enc, sizeof enc);
  assert_int_equal(sketch_index(&s, 0.5), -34);
  assert_int_equal(n, 38 + 1 + 35); /* lo, then bins -34 .. 0 */
  assert_int_equal(enc[38], 67);    /* zigzag(-34) */
  sketch_free(&s);
}

static void round_trip(const struct sketch *s) {
  size_t n = sketch_encoded_size(s);
  uint8_t *buf = malloc(n), *again = malloc(n);
  assert_non_null(buf);
  assert_non_null(again);
  assert_int_equal(sketch_encode(s, buf, n), n);
  struct sketch d;
  const char *why = NULL;
  assert_int_equal(sketch_decode(&d, buf, n, &why), CANARY_OK);
  assert_null(why);
  assert_same_sketch(&d, s);
  assert_true(d.sum == s->sum);
  assert_int_equal(d.max_bins, s->max_bins);
  assert_int_equal(sketch_encode(&d, again, n), n);
  assert_memory_equal(buf, again, n);
  /* and the decoded sketch goes on working: adds and merges like the original */
  assert_int_equal(sketch_add(&d, 12.5), CANARY_OK);
  assert_int_equal(sketch_merge(&d, s), CANARY_OK);
  assert_int_equal(sketch_count(&d), 2 * sketch_count(s) + 1);
  sketch_free(&d);
  free(buf);
  free(again);
}

static void test_encode_round_trip(void **state) {
  (void)state;
  struct sketch s;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  round_trip(&s); /* empty */
  assert_int_equal(sketch_add_n(&s, 0, 3), CANARY_OK);
  round_trip(&s); /* zeros only */
  sketch_free(&s);
  for (int ds = 0; ds < DS_COUNT; ds++) {
    double *v = generate((enum dataset)ds, 10000, 17 + (uint64_t)ds);
    assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
    for (size_t i = 0; i < 10000; i++)
      assert_int_equal(sketch_add(&s, v[i]), CANARY_OK);
    round_trip(&s);
    if (ds == DS_LOGNORMAL) /* what a 10-second latency bucket costs */
      printf("  lognormal n=10000: %u bins, %zu bytes encoded\n", sketch_bin_count(&s),
             sketch_encoded_size(&s));
    sketch_free(&s);
    free(v);
  }
  assert_int_equal(sketch_init_bounded(&s, 0.005, 64), CANARY_OK); /* collapsed, other alpha */
  for (int i = 1; i < 5000; i++)
    assert_int_equal(sketch_add(&s, i * 1.7), CANARY_OK);
  assert_true(s.collapsed);
  round_trip(&s);
  sketch_free(&s);
}

/* Every truncation fails cleanly; every corruption decodes or fails, never crashes (ASan). */
static void test_decode_rejects_damage(void **state) {
  (void)state;
  struct sketch s, d;
  const char *why = NULL;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  for (int i = 0; i < 300; i++)
    assert_int_equal(sketch_add(&s, i * 3.1), CANARY_OK);
  uint8_t buf[1024];
  size_t n = sketch_encode(&s, buf, sizeof buf);
  assert_true(n <= sizeof buf);
  for (size_t len = 0; len < n; len++) {
    assert_int_equal(sketch_decode(&d, buf, len, &why), CANARY_EPARSE);
    assert_non_null(why);
    assert_int_equal(sketch_count(&d), 0);
    sketch_free(&d);
  }
  uint8_t longer[1025];
  memcpy(longer, buf, n);
  longer[n] = 0;
  assert_int_equal(sketch_decode(&d, longer, n + 1, &why), CANARY_EPARSE);
  assert_string_equal(why, "trailing bytes");
  uint8_t bad[1024];
  memcpy(bad, buf, n);
  bad[0] = 2;
  assert_int_equal(sketch_decode(&d, bad, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "unknown version");
  memcpy(bad, buf, n);
  bad[n - 1] = 0; /* the last bin empty: not canonical */
  assert_int_equal(sketch_decode(&d, bad, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "first or last bin empty");
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(bad, buf, n);
      bad[i] ^= (uint8_t)(1u << bit);
      int rc = sketch_decode(&d, bad, n, NULL);
      assert_true(rc == CANARY_OK || rc == CANARY_EPARSE);
      if (rc == CANARY_OK) { /* whatever decoded is a working sketch */
        double out;
        assert_true(sketch_bin_count(&d) <= d.max_bins);
        if (sketch_count(&d))
          assert_true(sketch_quantile(&d, 0.5, &out));
        assert_int_equal(sketch_add(&d, 1), CANARY_OK);
      }
      sketch_free(&d);
    }
  }
  sketch_free(&s);
}

/* Hand-made inputs for the checks a bit flip rarely reaches. */
static size_t header(uint8_t *b, double alpha, uint8_t zero, uint8_t nbins) {
  size_t n = 0;
  uint64_t u;
  memcpy(&u, &alpha, sizeof u);
  b[n++] = 1;
  b[n++] = 0;
  for (int i = 0; i < 8; i++)
    b[n++] = (uint8_t)(u >> (8 * i));
  b[n++] = 0x80; /* max_bins 2048 */
  b[n++] = 0x10;
  b[n++] = zero;
  b[n++] = nbins;
  return n;
}

static size_t put_f64s(uint8_t *b, size_t n, double sum, double min, double max) {
  const double d[3] = {sum, min, max};
  for (int k = 0; k < 3; k++) {
    uint64_t u;
    memcpy(&u, &d[k], sizeof u);
    for (int i = 0; i < 8; i++)
      b[n++] = (uint8_t)(u >> (8 * i));
  }
  return n;
}

static void test_decode_crafted(void **state) {
  (void)state;
  struct sketch d;
  const char *why;
  uint8_t b[128];
  size_t n;

  n = header(b, 0.9, 0, 0);
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "alpha out of range");

  n = header(b, 0.01, 0, 0);
  b[1] = 0x02;
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "unknown flags");

  n = header(b, 0.01, 0, 0);
  b[10] = 0x04; /* max_bins 4 */
  b[11] = 0x00;
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "max_bins out of range");

  n = header(b, 0.01, 0, 0) - 1; /* zero_count: eleven continuation bytes */
  for (int i = 0; i < 11; i++)
    b[n++] = 0xff;
  b[n++] = 0;
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "varint overflows 64 bits");

  n = header(b, 0.01, 1, 0);
  n = put_f64s(b, n, 0, 0, -1);
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "sum, min or max out of range");

  n = header(b, 0.01, 0, 1);
  n = put_f64s(b, n, 1, 1, 1);
  b[n++] = 0xfe; /* lo = 2^20: far beyond any double */
  b[n++] = 0xff;
  b[n++] = 0x7f;
  b[n++] = 1;
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "bin index out of range");

  n = header(b, 0.01, 0, 2);
  n = put_f64s(b, n, 1, 1, 2);
  b[n++] = 0;
  for (int k = 0; k < 2; k++) { /* two bins of 2^63 */
    for (int i = 0; i < 9; i++)
      b[n++] = 0x80;
    b[n++] = 0x01;
  }
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_EPARSE);
  assert_string_equal(why, "count overflows");

  n = header(b, 0.01, 2, 1); /* and a good one, by hand: two zeros and three 1.0 */
  n = put_f64s(b, n, 3, 0, 1);
  b[n++] = 0;
  b[n++] = 3;
  assert_int_equal(sketch_decode(&d, b, n, &why), CANARY_OK);
  assert_int_equal(sketch_count(&d), 5);
  double med;
  assert_true(sketch_quantile(&d, 0.5, &med));
  assert_within(med, 1, 0.01, "crafted", 0.5); /* rank 2: bin 0's estimate 2 / (gamma + 1) */
  assert_true(sketch_quantile(&d, 1, &med));
  assert_true(med == 1); /* the last rank is the exact max */
  sketch_free(&d);
}

/* sketch_count_above, which steps to the first bin above x, against every bin's clamped estimate
 * counted one by one (the definition), at values on, between and beyond the bins. */
static void test_count_above_is_the_definition(void **state) {
  (void)state;
  struct sketch s;
  assert_int_equal(sketch_init(&s, 0.01), CANARY_OK);
  rng_seed(7);
  for (int i = 0; i < 5000; i++)
    assert_int_equal(sketch_add(&s, i % 50 == 0 ? 0 : exp(4 + 2 * uniform01())), CANARY_OK);
  for (int t = 0; t < 2000; t++) {
    double x = t < 1000 ? exp(3.9 + 2.2 * uniform01())
                        : sketch_bin_value(&s, s.lo + (int32_t)(uniform01() * (s.hi - s.lo + 1)));
    uint64_t want = 0;
    if (x < s.min)
      want = s.count;
    else if (x < s.max)
      for (int32_t i = s.lo; i <= s.hi; i++) {
        double est = fmin(fmax(sketch_bin_value(&s, i), s.min), s.max);
        if (est > x)
          want += sketch_bin(&s, i);
      }
    assert_int_equal(sketch_count_above(&s, x), want);
  }
  assert_int_equal(sketch_count_above(&s, NAN), 0);
  sketch_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mapping),
      cmocka_unit_test(test_init_rejects_bad_parameters),
      cmocka_unit_test(test_empty_and_invalid_values),
      cmocka_unit_test(test_zero_bin),
      cmocka_unit_test(test_add_n_equals_repeated_adds),
      cmocka_unit_test(test_accuracy_datasets),
      cmocka_unit_test(test_accuracy_few_samples),
      cmocka_unit_test(test_accuracy_every_rank),
      cmocka_unit_test(test_merge_equals_union),
      cmocka_unit_test(test_merge_disjoint_ranges),
      cmocka_unit_test(test_quantile_pair_is_the_merge),
      cmocka_unit_test(test_quantile_walks_from_either_end),
      cmocka_unit_test(test_merge_rejects_other_alpha_and_self_merge),
      cmocka_unit_test(test_merge_associative),
      cmocka_unit_test(test_collapse_keeps_high_quantiles),
      cmocka_unit_test(test_collapse_default_bound),
      cmocka_unit_test(test_collapse_order_independent),
      cmocka_unit_test(test_reset_reuses),
      cmocka_unit_test(test_encode_golden),
      cmocka_unit_test(test_encode_round_trip),
      cmocka_unit_test(test_decode_rejects_damage),
      cmocka_unit_test(test_decode_crafted),
      cmocka_unit_test(test_count_above_is_the_definition),
  };
  return cmocka_run_group_tests_name("sketch", tests, NULL, NULL);
}
