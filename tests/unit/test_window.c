/* Windows: bucket boundaries, spans, late data, the two tiers, expiry, quantiles, coverage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "core/window.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double uniform01(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

static double latency(void) { /* lognormal, median 100 ms */
  double n = sqrt(-2 * log(uniform01())) * cos(2 * M_PI * uniform01());
  return exp(log(100) + 0.8 * n);
}

/* --- configuration -------------------------------------------------------------------------- */

static void test_init(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, 10 * SEC, 72 * HOUR), CANARY_OK);
  assert_int_equal(w.n_tiers, 2);
  assert_int_equal(w.tier[0].width_ms, 10 * SEC);
  assert_int_equal(w.tier[0].slots, 361);
  assert_int_equal(w.tier[1].width_ms, 5 * MIN);
  assert_int_equal(w.tier[1].slots, 865);
  assert_null(w.tier[0].b); /* nothing allocated before the first value */
  assert_int_equal(window_memory(&w), 0);
  window_free(&w);

  assert_int_equal(window_init(&w, WINDOW_GAUGE, 10 * SEC, 30 * MIN), CANARY_OK);
  assert_int_equal(w.n_tiers, 1); /* the retention fits in the fine span */
  assert_int_equal(w.tier[0].slots, 181);
  window_free(&w);

  assert_int_equal(window_init(&w, WINDOW_COUNTER, 7 * SEC, 72 * HOUR), CANARY_OK);
  assert_int_equal(w.tier[1].width_ms, 301 * SEC); /* 5 min rounded up to a multiple of 7 s */
  window_free(&w);

  assert_string_equal(window_kind_name(WINDOW_DISTRIBUTION), "distribution");
  assert_string_equal(window_kind_name(WINDOW_KIND_COUNT), "unknown");

  const struct {
    int kind;
    struct window_config cfg;
  } bad[] = {
      {WINDOW_COUNTER, {0, HOUR, HOUR, 5 * MIN, 0.01}},             /* no width */
      {WINDOW_COUNTER, {-10, HOUR, HOUR, 5 * MIN, 0.01}},           /* negative width */
      {WINDOW_COUNTER, {10 * SEC, 5 * SEC, HOUR, 5 * MIN, 0.01}},   /* retention < width */
      {WINDOW_COUNTER, {10 * SEC, HOUR, 5 * SEC, 5 * MIN, 0.01}},   /* fine span < width */
      {WINDOW_COUNTER, {10 * SEC, 2 * HOUR, HOUR, 45 * SEC, 0.01}}, /* coarse not a multiple */
      {WINDOW_COUNTER, {1, 72 * HOUR, HOUR, 5 * MIN, 0.01}},        /* 3.6M fine slots */
      {WINDOW_DISTRIBUTION, {10 * SEC, HOUR, HOUR, 5 * MIN, 0}},    /* alpha */
      {WINDOW_KIND_COUNT, {10 * SEC, HOUR, HOUR, 5 * MIN, 0.01}},
      {-1, {10 * SEC, HOUR, HOUR, 5 * MIN, 0.01}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(window_init_config(&w, (enum window_kind)bad[i].kind, &bad[i].cfg),
                     CANARY_EINVALID);
    /* a window whose init failed refuses data and reads as empty */
    assert_int_equal(window_add_counter(&w, 0, 1), CANARY_EINVALID);
    assert_int_equal(window_add_gauge(&w, 0, 1), CANARY_EINVALID);
    assert_int_equal(window_add_samples(&w, 0, &(double){1}, 1), CANARY_EINVALID);
    assert_int_equal(window_expire(&w, HOUR), CANARY_OK);
    assert_int_equal(window_count(&w, 0, HOUR), 0);
    window_free(&w); /* safe after a failed init */
  }
}

/* --- boundaries and spans: counters --------------------------------------------------------- */

struct timed {
  int64_t t;
  double v;
};

/* Counter deltas around the 10 s boundaries. */
static const struct timed counter_data[] = {
    {0, 1}, {9999, 2}, {10000, 4}, {25000, 8}, {30000, 16}, {59999, 32}, {60000, 64},
};

static void load_counters(struct window *w) {
  assert_int_equal(window_init(w, WINDOW_COUNTER, 10 * SEC, 72 * HOUR), CANARY_OK);
  for (size_t i = 0; i < sizeof counter_data / sizeof *counter_data; i++)
    assert_int_equal(window_add_counter(w, counter_data[i].t, counter_data[i].v), CANARY_OK);
}

/*
 * The query is the closed interval [now - span, now] rounded out to whole 10 s buckets
 * [k * 10 s, (k + 1) * 10 s).
 */
static void test_counter_spans(void **state) {
  (void)state;
  static const struct {
    int64_t now, span;
    double sum;
    uint64_t n;
    double coverage;
    const char *why;
  } cases[] = {
      {60000, 0, 64, 1, 1, "a timestamp on a boundary is in the bucket that starts there"},
      {59999, 0, 32, 1, 1, "one ms earlier is the previous bucket"},
      {9999, 0, 3, 2, 1, "both ends of bucket 0"},
      {60000, 30000, 112, 3, 20000.0 / 30000, "an observation at exactly now - span is in"},
      {60000, 30001, 120, 4, 20001.0 / 30001, "one before it is in when it shares its bucket"},
      {59999, 29999, 48, 2, 19999.0 / 29999, "[30000, 59999]: 30000 in, 60000 out"},
      {59999, 30000, 56, 3, 20000.0 / 30000, "[29999, 59999]: bucket 2 whole"},
      {55000, 20000, 48, 2, 10000.0 / 20000, "59999 is after now but in now's bucket: in"},
      {10000, 10000, 7, 3, 1, "[0, 10000]: buckets 0 and 1"},
      {10000, 9999, 7, 3, 1, "[1, 10000]: bucket 0 whole"},
      {60000, 60000, 127, 7, 50000.0 / 60000, "everything; bucket 4 [40 s, 50 s) is empty"},
      {100000, 10000, 0, 0, 0, "after the data: nothing"},
      {-1, 0, 0, 0, 0, "before the data: nothing"},
      {60000, -1, 0, 0, 0, "a negative span reads nothing"},
  };
  struct window w;
  load_counters(&w);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct window_stats st;
    window_stats(&w, cases[i].now, cases[i].span, &st);
    if (st.sum != cases[i].sum || st.n != cases[i].n ||
        fabs(st.coverage - cases[i].coverage) > 1e-12) {
      print_error("case %zu (%s): now %lld span %lld: sum %g n %llu coverage %g\n", i, cases[i].why,
                  (long long)cases[i].now, (long long)cases[i].span, st.sum,
                  (unsigned long long)st.n, st.coverage);
      fail();
    }
    assert_true(window_counter_sum(&w, cases[i].now, cases[i].span) == cases[i].sum);
    assert_int_equal(window_count(&w, cases[i].now, cases[i].span), cases[i].n);
    assert_true(window_coverage(&w, cases[i].now, cases[i].span) == st.coverage);
  }
  assert_int_equal(w.clock_ms, 60000);
  assert_int_equal(window_buckets(&w), 6);
  window_free(&w);
}

/* Negative times (before the epoch) are bucketed by floor, like any others. */
static void test_negative_times(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_add_counter(&w, -1, 1), CANARY_OK);     /* bucket -1 */
  assert_int_equal(window_add_counter(&w, -10000, 2), CANARY_OK); /* bucket -1 too */
  assert_int_equal(window_add_counter(&w, -10001, 4), CANARY_OK); /* bucket -2 */
  assert_int_equal(window_add_counter(&w, 0, 8), CANARY_OK);      /* bucket 0 */
  assert_true(window_counter_sum(&w, -1, 0) == 3);
  assert_true(window_counter_sum(&w, -10000, 0) == 3);
  assert_true(window_counter_sum(&w, -10001, 0) == 4);
  assert_true(window_counter_sum(&w, 0, 10000) == 11);
  assert_true(window_counter_sum(&w, 0, 10001) == 15);
  window_free(&w);
}

/* --- gauges --------------------------------------------------------------------------------- */

static void test_gauge_spans(void **state) {
  (void)state;
  static const struct timed data[] = {
      {1000, 5}, {2000, 3}, {15000, 9}, {15000, 7}, {31000, 1}, {25000, 4}, {20000, 6},
  };
  static const struct {
    int64_t now, span;
    bool any;
    double avg, max, min, last;
  } cases[] = {
      {2000, 2000, true, 4, 5, 3, 3},
      {15000, 0, true, 8, 9, 7, 7},            /* two samples at 15 s: the later add is last */
      {29999, 10000, true, 6.5, 9, 4, 4},      /* [19999, 29999]: buckets 1 and 2 */
      {31000, 11000, true, 11.0 / 3, 6, 1, 1}, /* [20000, 31000]: buckets 2 and 3 */
      {31000, 31000, true, 5, 9, 1, 1},
      {45000, 5000, false, 0, 0, 0, 0},
  };
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_GAUGE, 10 * SEC, 72 * HOUR), CANARY_OK);
  for (size_t i = 0; i < sizeof data / sizeof *data; i++)
    assert_int_equal(window_add_gauge(&w, data[i].t, data[i].v), CANARY_OK);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double avg = -1, max = -1, min = -1, last = -1;
    assert_int_equal(window_gauge_avg(&w, cases[i].now, cases[i].span, &avg), cases[i].any);
    assert_int_equal(window_gauge_max(&w, cases[i].now, cases[i].span, &max), cases[i].any);
    assert_int_equal(window_gauge_min(&w, cases[i].now, cases[i].span, &min), cases[i].any);
    assert_int_equal(window_gauge_last(&w, cases[i].now, cases[i].span, &last), cases[i].any);
    if (!cases[i].any) {
      assert_true(avg == -1 && max == -1 && min == -1 && last == -1); /* untouched */
      continue;
    }
    if (fabs(avg - cases[i].avg) > 1e-12 || max != cases[i].max || min != cases[i].min ||
        last != cases[i].last) {
      print_error("case %zu: avg %g max %g min %g last %g\n", i, avg, max, min, last);
      fail();
    }
  }
  /* "last" is by time, not by arrival: a late sample older than the newest is not last */
  assert_int_equal(window_add_gauge(&w, 30000, 100), CANARY_OK);
  double last;
  assert_true(window_gauge_last(&w, 31000, 31000, &last));
  assert_true(last == 1);
  window_free(&w);
}

/* Gauges through the roll-up: min, max, mean and last over 3 hours equal those of the samples. */
static void test_gauge_roll_up(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_GAUGE, 10 * SEC, 72 * HOUR), CANARY_OK);
  const int64_t end = 3 * HOUR + 7 * SEC;
  double sum = 0, min = INFINITY, max = -INFINITY, last = 0, sum_old = 0, max_old = -INFINITY;
  uint64_t n = 0, n_old = 0;
  for (int64_t t = 3 * SEC; t <= end; t += 5 * SEC) {
    double v = (double)((t / SEC * 37) % 1013) / 10.0; /* a saw-tooth of 0 .. 101.2 */
    assert_int_equal(window_add_gauge(&w, t, v), CANARY_OK);
    sum += v;
    n++;
    min = v < min ? v : min;
    max = v > max ? v : max;
    last = v;
    if (t >= 30 * MIN && t < 90 * MIN) { /* entirely in the coarse tier at the end */
      sum_old += v;
      n_old++;
      max_old = v > max_old ? v : max_old;
    }
  }
  double out;
  assert_true(window_gauge_avg(&w, end, end, &out));
  assert_true(fabs(out - sum / (double)n) < 1e-9);
  assert_true(window_gauge_min(&w, end, end, &out) && out == min);
  assert_true(window_gauge_max(&w, end, end, &out) && out == max);
  assert_true(window_gauge_last(&w, end, end, &out) && out == last);
  assert_int_equal(window_count(&w, end, end), n);
  struct window_stats st;
  window_stats(&w, 90 * MIN - 1, HOUR - 1, &st); /* [30 min, 90 min): twelve coarse buckets */
  assert_int_equal(st.n, n_old);
  assert_int_equal(st.buckets, 12);
  assert_true(fabs(st.sum - sum_old) < 1e-9);
  assert_true(st.max == max_old);
  window_free(&w);
}

/* --- late data and the retention ------------------------------------------------------------ */

static void test_late_data_fine_tier(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, 10 * SEC, 72 * HOUR), CANARY_OK);
  assert_int_equal(window_add_counter(&w, 100 * SEC, 1), CANARY_OK);
  assert_int_equal(window_add_counter(&w, 50 * SEC, 2), CANARY_OK); /* late: its own bucket */
  assert_int_equal(window_add_counter(&w, 50 * SEC + 5, 4), CANARY_OK);
  assert_int_equal(w.clock_ms, 100 * SEC); /* the clock does not go back */
  assert_true(window_counter_sum(&w, 50 * SEC, 0) == 6);
  assert_true(window_counter_sum(&w, 100 * SEC, 0) == 1);
  assert_true(window_counter_sum(&w, 100 * SEC, 40 * SEC) == 1);
  assert_true(window_counter_sum(&w, 100 * SEC, 50 * SEC) == 7);
  assert_int_equal(window_buckets(&w), 2);
  assert_int_equal(w.dropped, 0);
  window_free(&w);
}

/* Late data older than the fine hour lands in its coarse bucket; older than 72 h is dropped. */
static void test_late_data_coarse_tier_and_retention(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, 10 * SEC, 72 * HOUR), CANARY_OK);
  assert_int_equal(window_add_counter(&w, 80 * HOUR, 1), CANARY_OK);
  /* the fine tier starts at 79 h; the coarse tier keeps 5-min buckets from 8 h on */
  assert_int_equal(window_add_counter(&w, 79 * HOUR, 2), CANARY_OK);           /* fine */
  assert_int_equal(window_add_counter(&w, 79 * HOUR - 1, 4), CANARY_OK);       /* coarse */
  assert_int_equal(window_add_counter(&w, 20 * HOUR + 7 * SEC, 8), CANARY_OK); /* coarse */
  assert_int_equal(window_add_counter(&w, 8 * HOUR, 16), CANARY_OK);           /* the oldest kept */
  assert_int_equal(window_add_counter(&w, 8 * HOUR - 1, 32), CANARY_OK);       /* dropped */
  assert_int_equal(window_add_counter(&w, 1 * HOUR, 64), CANARY_OK);           /* dropped */
  assert_int_equal(w.dropped, 2);
  assert_int_equal(w.clock_ms, 80 * HOUR);
  assert_non_null(w.tier[1].b);
  static const struct {
    int64_t now, span;
    double sum;
  } cases[] = {
      {80 * HOUR, HOUR, 3},            /* [79 h, 80 h]: fine only */
      {80 * HOUR, HOUR + 1, 7},        /* reaches the coarse bucket [78:55, 79:00) */
      {80 * HOUR, 72 * HOUR, 31},      /* everything kept */
      {80 * HOUR, 100 * HOUR, 31},     /* beyond the retention: nothing more */
      {20 * HOUR + 7 * SEC, 0, 8},     /* a past instant reads its coarse bucket */
      {20 * HOUR + 5 * MIN - 1, 0, 8}, /* ... whole */
      {20 * HOUR + 5 * MIN, 0, 0},     /* the next one is empty */
      {79 * HOUR - 1, 0, 4},           /* coarse [78:55, 79:00) */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double sum = window_counter_sum(&w, cases[i].now, cases[i].span);
    if (sum != cases[i].sum) {
      print_error("case %zu: sum %g, want %g\n", i, sum, cases[i].sum);
      fail();
    }
  }
  window_free(&w);
}

/* A small two-tier window, checked key by key: 1 s buckets for 30 s, 10 s roll-ups for 2 min. */
static void test_roll_up_boundaries(void **state) {
  (void)state;
  struct window_config cfg = {SEC, 2 * MIN, 30 * SEC, 10 * SEC, 0.01};
  struct window w;
  assert_int_equal(window_init_config(&w, WINDOW_COUNTER, &cfg), CANARY_OK);
  assert_int_equal(w.tier[0].slots, 31);
  assert_int_equal(w.tier[1].slots, 13);
  for (int64_t s = 0; s <= 100; s++) /* 1 a second, t = 0 .. 100 s */
    assert_int_equal(window_add_counter(&w, s * SEC, 1), CANARY_OK);
  /* clock 100 s: fine keys 70 .. 100; coarse keys -2 (t >= -20 s) .. 6 hold 0 .. 69 s */
  for (int64_t k = 70; k <= 100; k++)
    assert_int_equal(w.tier[0].b[k % 31].key, k);
  assert_int_equal(w.tier[1].b[6].key, 6);
  assert_int_equal(w.tier[1].b[6].n, 10);
  assert_int_equal(window_buckets(&w), 31 + 7);
  static const struct {
    int64_t now, span;
    uint64_t n;
  } cases[] = {
      {100 * SEC, 30 * SEC, 31}, /* [70, 100] in fine buckets */
      {100 * SEC, 31 * SEC, 41}, /* from 69 s: the coarse bucket [60, 70) whole */
      {100 * SEC, 40 * SEC, 41}, /* from 60 s exactly */
      {100 * SEC, 40 * SEC + 1, 51},
      {100 * SEC, 100 * SEC, 101},
      {65 * SEC, 0, 10},       /* a past instant in the coarse tier: its 10 s */
      {65 * SEC, 5 * SEC, 10}, /* [60, 65]: bucket [60, 70) whole — rounded out at the end too */
      {75 * SEC, 5 * SEC, 6},  /* [70, 75] in fine buckets */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    uint64_t n = window_count(&w, cases[i].now, cases[i].span);
    if (n != cases[i].n) {
      print_error("case %zu: n %llu, want %llu\n", i, (unsigned long long)n,
                  (unsigned long long)cases[i].n);
      fail();
    }
  }
  /* 3 s later, 1 s buckets 70..72 roll into coarse 7; coarse -2 stays (t >= -17 s) */
  assert_int_equal(window_expire(&w, 103 * SEC), CANARY_OK);
  assert_int_equal(w.tier[1].b[7].key, 7);
  assert_int_equal(w.tier[1].b[7].n, 3);
  assert_int_equal(window_count(&w, 103 * SEC, 103 * SEC), 101);
  assert_int_equal(window_count(&w, 103 * SEC, 33 * SEC), 31); /* [70, 103]: coarse 7 is partial */
  /* a late value at 71 s now goes to the partial coarse bucket, not to a fine one */
  assert_int_equal(window_add_counter(&w, 71 * SEC, 1), CANARY_OK);
  assert_int_equal(w.tier[1].b[7].n, 4);
  assert_int_equal(window_count(&w, 103 * SEC, 33 * SEC), 32);
  /* 2 min 10 s later: everything up to 20 s is gone (coarse keys < 2) */
  assert_int_equal(window_expire(&w, 140 * SEC), CANARY_OK);
  assert_int_equal(window_count(&w, 140 * SEC, 140 * SEC), 102 - 20);
  window_free(&w);

  /* a jump: fine buckets whose coarse bucket is exactly the oldest kept one roll into it */
  assert_int_equal(window_init_config(&w, WINDOW_COUNTER, &cfg), CANARY_OK);
  for (int64_t s = 0; s < 6; s++)
    assert_int_equal(window_add_counter(&w, s * SEC, 1), CANARY_OK);
  assert_int_equal(window_expire(&w, 2 * MIN + 9 * SEC), CANARY_OK); /* coarse keys >= 0 */
  assert_int_equal(window_count(&w, 2 * MIN + 9 * SEC, 3 * MIN), 6);
  assert_int_equal(w.tier[1].b[0].key, 0);
  assert_int_equal(window_expire(&w, 2 * MIN + 10 * SEC), CANARY_OK); /* now keys >= 1 */
  assert_int_equal(window_count(&w, 2 * MIN + 10 * SEC, 3 * MIN), 0);
  assert_int_equal(window_buckets(&w), 0);
  window_free(&w);
}

/* One tier when the retention fits in the fine span: nothing rolls up, old data goes. */
static void test_single_tier(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, SEC, MIN), CANARY_OK);
  assert_int_equal(w.n_tiers, 1);
  assert_int_equal(w.tier[0].slots, 61);
  for (int64_t s = 0; s < 200; s++)
    assert_int_equal(window_add_counter(&w, s * SEC, 1), CANARY_OK);
  assert_int_equal(window_buckets(&w), 61); /* 139 .. 199 */
  assert_int_equal(window_count(&w, 199 * SEC, HOUR), 61);
  assert_int_equal(window_add_counter(&w, 139 * SEC, 1), CANARY_OK);
  assert_int_equal(window_add_counter(&w, 139 * SEC - 1, 1), CANARY_OK); /* too old */
  assert_int_equal(w.dropped, 1);
  assert_int_equal(window_count(&w, 199 * SEC, HOUR), 62);
  window_free(&w);
}

/* --- expiry and memory ---------------------------------------------------------------------- */

/* 100 hours of latency every 10 s: buckets and bytes stop growing once the 72 h are full. */
static void test_expiry_bounds_memory(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, 72 * HOUR), CANARY_OK);
  const size_t max_buckets = (size_t)(w.tier[0].slots + w.tier[1].slots);
  rng_state = 1;
  size_t mem72 = 0, mem_max = 0, buckets_max = 0;
  double v[20];
  for (int64_t t = 0; t <= 100 * HOUR; t += 10 * SEC) {
    for (int i = 0; i < 20; i++)
      v[i] = latency();
    assert_int_equal(window_add_samples(&w, t, v, 20), CANARY_OK);
    if (t % (10 * MIN) == 0) {
      size_t b = window_buckets(&w), m = window_memory(&w);
      assert_true(b <= max_buckets);
      if (b > buckets_max)
        buckets_max = b;
      if (m > mem_max)
        mem_max = m;
      if (t == 73 * HOUR)
        mem72 = m;
    }
  }
  size_t mem100 = window_memory(&w);
  printf("  100 h of 20 values / 10 s: %zu buckets, %zu KiB at 73 h, %zu KiB at 100 h, peak %zu "
         "KiB\n",
         window_buckets(&w), mem72 / 1024, mem100 / 1024, mem_max / 1024);
  /* full: the fine hour (361) and the coarse buckets from 28 h to 99 h (852 + a partial one) */
  assert_true(window_buckets(&w) >= 361 + 852);
  assert_true(buckets_max <= max_buckets);
  assert_true(mem100 < mem72 + mem72 / 10); /* flat after the retention filled */
  assert_int_equal(w.dropped, 0);
  assert_int_equal(window_count(&w, 100 * HOUR, 72 * HOUR), (72 * 360 + 1) * 20);
  assert_int_equal(window_count(&w, 100 * HOUR, 200 * HOUR),
                   window_count(&w, 100 * HOUR, 72 * HOUR));
  /* three days without data: everything expires, sketches are freed, rings stay */
  assert_int_equal(window_expire(&w, 173 * HOUR), CANARY_OK);
  assert_int_equal(window_buckets(&w), 0);
  size_t rings = max_buckets * sizeof(struct window_bucket);
  assert_true(window_memory(&w) >= rings);
  assert_true(window_memory(&w) <= rings + SKETCH_MAX_BINS_DEFAULT * sizeof(uint64_t));
  assert_int_equal(window_count(&w, 173 * HOUR, 200 * HOUR), 0);
  /* and the window goes on */
  assert_int_equal(window_add_samples(&w, 173 * HOUR, v, 3), CANARY_OK);
  assert_int_equal(window_count(&w, 173 * HOUR, MIN), 3);
  window_free(&w);
  assert_int_equal(window_memory(&w), 0);
}

/* A jump far ahead empties the window in one pass over the rings; expire never goes back. */
static void test_expire_jumps_and_never_goes_back(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_GAUGE, 10 * SEC, 72 * HOUR), CANARY_OK);
  assert_int_equal(window_expire(&w, 5 * HOUR), CANARY_OK); /* no data yet: nothing happens */
  assert_false(w.started);
  for (int64_t t = 0; t < 2 * HOUR; t += 10 * SEC)
    assert_int_equal(window_add_gauge(&w, t, 0.5), CANARY_OK);
  assert_int_equal(window_expire(&w, HOUR), CANARY_OK); /* earlier than the clock: nothing */
  assert_int_equal(w.clock_ms, 2 * HOUR - 10 * SEC);
  assert_int_equal(window_count(&w, 2 * HOUR, 3 * HOUR), 720);
  assert_int_equal(window_expire(&w, 1000000 * HOUR), CANARY_OK);
  assert_int_equal(window_buckets(&w), 0);
  assert_int_equal(window_add_gauge(&w, 2 * HOUR, 1), CANARY_OK); /* ancient now */
  assert_int_equal(w.dropped, 1);
  window_free(&w);

  /* distribution values too old count one each; refused ones are counted apart */
  assert_int_equal(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, HOUR), CANARY_OK);
  const double v[] = {1, 2, -3};
  assert_int_equal(window_add_samples(&w, 2 * HOUR, v, 2), CANARY_OK);
  assert_int_equal(window_add_samples(&w, HOUR - 1, v, 3), CANARY_EINVALID);
  assert_int_equal(w.dropped, 2);
  assert_int_equal(w.rejected, 1);
  assert_int_equal(window_buckets(&w), 1);
  window_free(&w);
}

/* --- quantiles ------------------------------------------------------------------------------ */

struct sample {
  int64_t t;
  double v;
};

/*
 * The quantile of a merged window equals the quantile of one sketch of the values in it — bin
 * for bin — for spans in the fine tier, across both tiers, and rounded out in the coarse one.
 * Values arrive in shuffled time order, so many are late.
 */
static void test_quantile_equals_sketch_of_values(void **state) {
  (void)state;
  enum { N = 30000 };
  const int64_t end = 3 * HOUR + 2 * MIN; /* the fine tier starts at 2:02, inside a coarse bucket */
  struct sample *s = malloc(N * sizeof *s);
  assert_non_null(s);
  rng_state = 7;
  for (size_t i = 0; i < N; i++) {
    s[i].t = (int64_t)(rng_next() % (uint64_t)(end + 1));
    s[i].v = latency();
  }
  s[0].t = end;
  for (size_t i = N - 1; i > 1; i--) { /* shuffle all but the first (which sets the clock) */
    size_t j = 1 + (size_t)(rng_next() % i);
    struct sample tmp = s[i];
    s[i] = s[j];
    s[j] = tmp;
  }
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, 72 * HOUR), CANARY_OK);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(window_add_samples(&w, s[i].t, &s[i].v, 1), CANARY_OK);
  assert_int_equal(w.clock_ms, end);
  static const struct {
    int64_t span;
    int64_t from; /* the first time the rounded-out query holds */
  } cases[] = {
      {5 * MIN, 3 * HOUR - 3 * MIN},                /* fine, aligned */
      {5 * MIN + 1, 3 * HOUR - 3 * MIN - 10 * SEC}, /* fine, rounded out to 10 s */
      {HOUR, 2 * HOUR + 2 * MIN},                   /* exactly the fine tier */
      {HOUR + 1, 2 * HOUR},                         /* the partial coarse bucket [2:00, 2:02) */
      {2 * HOUR + 32 * MIN, 30 * MIN},              /* both tiers, aligned */
      {2 * HOUR + 33 * MIN, 25 * MIN},              /* both tiers, rounded out to 5 min */
      {72 * HOUR, 0},                               /* everything */
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    struct sketch ref, merged;
    assert_int_equal(sketch_init(&ref, 0.01), CANARY_OK);
    assert_int_equal(sketch_init(&merged, 0.01), CANARY_OK);
    for (size_t i = 0; i < N; i++)
      if (s[i].t >= cases[c].from)
        assert_int_equal(sketch_add(&ref, s[i].v), CANARY_OK);
    assert_int_equal(window_merge(&w, end, cases[c].span, &merged), CANARY_OK);
    assert_int_equal(sketch_count(&merged), sketch_count(&ref));
    assert_int_equal(window_count(&w, end, cases[c].span), sketch_count(&ref));
    assert_int_equal(merged.lo, ref.lo);
    assert_int_equal(merged.hi, ref.hi);
    for (int32_t i = ref.lo; i <= ref.hi; i++)
      assert_int_equal(sketch_bin(&merged, i), sketch_bin(&ref, i));
    assert_true(merged.min == ref.min && merged.max == ref.max);
    const double qs[] = {0, 0.5, 0.75, 0.95, 0.99, 1};
    for (size_t q = 0; q < sizeof qs / sizeof *qs; q++) {
      double a, b;
      assert_int_equal(window_quantile(&w, end, cases[c].span, qs[q], &a), CANARY_OK);
      assert_true(sketch_quantile(&ref, qs[q], &b));
      assert_true(a == b);
    }
    struct window_stats st;
    window_stats(&w, end, cases[c].span, &st);
    assert_true(st.min == ref.min && st.max == ref.max);
    assert_true(fabs(st.sum - ref.sum) <= 1e-9 * ref.sum);
    sketch_free(&ref);
    sketch_free(&merged);
  }
  free(s);
  window_free(&w);
}

static void test_quantile_errors(void **state) {
  (void)state;
  struct window w, c;
  double out = -1;
  assert_int_equal(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_quantile(&w, 0, MIN, 0.5, &out), CANARY_ENOTFOUND);
  const double v[] = {1, 2, 3};
  assert_int_equal(window_add_samples(&w, 0, v, 3), CANARY_OK);
  assert_int_equal(window_quantile(&w, 0, MIN, 1.5, &out), CANARY_EINVALID);
  assert_int_equal(window_quantile(&w, 0, MIN, NAN, &out), CANARY_EINVALID);
  assert_int_equal(window_quantile(&w, HOUR, MIN, 0.5, &out), CANARY_ENOTFOUND);
  assert_true(out == -1);
  assert_int_equal(window_quantile(&w, 0, MIN, 0.5, &out), CANARY_OK);
  assert_true(fabs(out - 2) <= 0.01 * 2);
  struct sketch other;
  assert_int_equal(sketch_init(&other, 0.02), CANARY_OK);
  assert_int_equal(window_merge(&w, 0, MIN, &other), CANARY_EINVALID);
  sketch_free(&other);
  assert_int_equal(window_init(&c, WINDOW_COUNTER, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_add_counter(&c, 0, 1), CANARY_OK);
  assert_int_equal(window_quantile(&c, 0, MIN, 0.5, &out), CANARY_EINVALID);
  window_free(&c);
  window_free(&w);
}

/* window_count_above: the share beyond a tolerance, consistent with the window's quantiles. */
static void test_count_above(void **state) {
  (void)state;
  struct window w, c;
  uint64_t above = 7, n = 7;
  assert_int_equal(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_count_above(&w, 0, MIN, 1, &above, &n), CANARY_OK); /* nothing yet */
  assert_true(above == 0 && n == 0);
  double v[1000];
  for (int i = 0; i < 1000; i++)
    v[i] = i < 100 ? 0 : i; /* 100 zeros, then 100 .. 999, over two buckets */
  assert_int_equal(window_add_samples(&w, 0, v, 500), CANARY_OK);
  assert_int_equal(window_add_samples(&w, 10 * SEC, v + 500, 500), CANARY_OK);
  static const struct {
    double x;
    uint64_t lo, hi; /* the exact count of values > x is in [lo, hi]: values within alpha of x
                        may count either way */
  } cases[] = {
      {-1, 1000, 1000},                   /* below the minimum: all */
      {0, 900, 900},                      /* the zero bin is 0, not above 0 */
      {1e-12, 900, 900}, {999, 0, 0},     /* the maximum: none above */
      {1e9, 0, 0},       {500, 490, 510}, /* exact 499 */
      {900, 90, 110},                     /* exact 99 */
      {150.5, 840, 860},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    assert_int_equal(window_count_above(&w, 10 * SEC, MIN, cases[i].x, &above, &n), CANARY_OK);
    assert_int_equal(n, 1000);
    if (above < cases[i].lo || above > cases[i].hi)
      fail_msg("x = %g: %llu above", cases[i].x, (unsigned long long)above);
  }
  /* consistent with the quantiles: the share above the p90 estimate is at most 10% */
  double p90;
  assert_int_equal(window_quantile(&w, 10 * SEC, MIN, 0.9, &p90), CANARY_OK);
  assert_int_equal(window_count_above(&w, 10 * SEC, MIN, p90, &above, &n), CANARY_OK);
  assert_true(above <= 100);
  /* only now's bucket */
  assert_int_equal(window_count_above(&w, 10 * SEC, 0, 500, &above, &n), CANARY_OK);
  assert_int_equal(n, 500);
  assert_int_equal(window_count_above(&w, 10 * SEC, MIN, NAN, &above, &n), CANARY_EINVALID);
  assert_int_equal(window_init(&c, WINDOW_COUNTER, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_count_above(&c, 0, MIN, 1, &above, &n), CANARY_EINVALID);
  window_free(&c);
  window_free(&w);
}

/* A window with another alpha keeps sketches of that alpha. */
static void test_distribution_alpha(void **state) {
  (void)state;
  struct window_config cfg = {10 * SEC, HOUR, HOUR, 5 * MIN, 0.005};
  struct window w;
  assert_int_equal(window_init_config(&w, WINDOW_DISTRIBUTION, &cfg), CANARY_OK);
  const double v[] = {100, 101, 102, 103, 104};
  assert_int_equal(window_add_samples(&w, 0, v, 5), CANARY_OK);
  struct sketch s;
  assert_int_equal(sketch_init(&s, 0.005), CANARY_OK);
  assert_int_equal(window_merge(&w, 0, 0, &s), CANARY_OK);
  assert_int_equal(sketch_count(&s), 5);
  assert_int_equal(sketch_bin_count(&s), 5); /* 1% apart: separate bins at alpha 0.005 */
  sketch_free(&s);
  window_free(&w);
}

/* --- coverage ------------------------------------------------------------------------------- */

static void test_coverage(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_GAUGE, 10 * SEC, 72 * HOUR), CANARY_OK);
  assert_true(window_coverage(&w, HOUR, HOUR) == 0); /* no data */
  /* every 10 s for the first half hour, every 20 s for the second */
  for (int64_t t = 0; t < 30 * MIN; t += 10 * SEC)
    assert_int_equal(window_add_gauge(&w, t, 0.5), CANARY_OK);
  for (int64_t t = 30 * MIN; t <= HOUR; t += 20 * SEC)
    assert_int_equal(window_add_gauge(&w, t, 0.9), CANARY_OK);
  static const struct {
    int64_t now, span;
    double coverage;
  } cases[] = {
      {30 * MIN, 10 * MIN, 1},     /* [20, 30] min: every bucket; [30:00, 30:10) adds 0 */
      {30 * MIN - 1, 10 * MIN, 1}, /* unaligned: the partial buckets count their part */
      {HOUR, 10 * MIN, 0.5},       /* every other bucket */
      {HOUR, 20 * MIN, 0.5},
      {HOUR, 40 * MIN, 0.625},                 /* 10 min full + 30 min half */
      {HOUR, 0, 1},                            /* now's bucket has data */
      {HOUR - 10 * SEC, 0, 0},                 /* an empty bucket */
      {HOUR + 10 * MIN, 20 * MIN, 31.0 / 120}, /* 30 + 1 buckets, then 10 min of nothing */
      {2 * HOUR, 30 * MIN, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double c = window_coverage(&w, cases[i].now, cases[i].span);
    if (fabs(c - cases[i].coverage) > 1e-12) {
      print_error("case %zu: coverage %.12g, want %g\n", i, c, cases[i].coverage);
      fail();
    }
  }
  window_free(&w);
}

/*
 * Where the fine tier starts inside a coarse bucket, the coarse bucket covers only its part
 * before the fine tier: coverage counts no minute twice.
 */
static void test_coverage_across_tiers(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, 10 * SEC, 72 * HOUR), CANARY_OK);
  for (int64_t t = 2 * HOUR; t < 2 * HOUR + 5 * MIN; t += 10 * SEC)
    assert_int_equal(window_add_counter(&w, t, 1), CANARY_OK);
  const int64_t now = 3 * HOUR + 2 * MIN; /* fine tier from 2:02; coarse [2:00, 2:05) partial */
  assert_int_equal(window_expire(&w, now), CANARY_OK);
  struct window_stats st;
  window_stats(&w, now, now, &st);
  assert_int_equal(st.n, 30);
  assert_int_equal(st.buckets, 1 + 18); /* the coarse part [2:00, 2:02) and 18 fine buckets */
  assert_true(fabs(st.coverage - (double)(5 * MIN) / (double)now) < 1e-12);
  /* data everywhere: exactly 1, not more */
  for (int64_t t = 0; t <= now; t += 10 * SEC)
    assert_int_equal(window_add_counter(&w, t, 1), CANARY_OK);
  assert_true(window_coverage(&w, now, now) == 1);
  assert_true(window_coverage(&w, now, 72 * HOUR) < 0.05);
  window_free(&w);
}

/* --- input checks --------------------------------------------------------------------------- */

static void test_invalid_input(void **state) {
  (void)state;
  struct window c, g, d;
  assert_int_equal(window_init(&c, WINDOW_COUNTER, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_init(&g, WINDOW_GAUGE, 10 * SEC, HOUR), CANARY_OK);
  assert_int_equal(window_init(&d, WINDOW_DISTRIBUTION, 10 * SEC, HOUR), CANARY_OK);
  const double one = 1;
  /* the wrong kind */
  assert_int_equal(window_add_gauge(&c, 0, 1), CANARY_EINVALID);
  assert_int_equal(window_add_samples(&c, 0, &one, 1), CANARY_EINVALID);
  assert_int_equal(window_add_counter(&g, 0, 1), CANARY_EINVALID);
  assert_int_equal(window_add_counter(&d, 0, 1), CANARY_EINVALID);
  /* values and times */
  assert_int_equal(window_add_counter(&c, 0, NAN), CANARY_EINVALID);
  assert_int_equal(window_add_gauge(&g, 0, INFINITY), CANARY_EINVALID);
  assert_int_equal(window_add_counter(&c, INT64_MAX, 1), CANARY_EINVALID);
  assert_int_equal(window_add_counter(&c, INT64_MIN, 1), CANARY_EINVALID);
  assert_int_equal(window_add_samples(&d, 0, NULL, 3), CANARY_EINVALID);
  assert_false(c.started || g.started || d.started); /* nothing moved the clock */
  assert_int_equal(window_add_samples(&d, 0, NULL, 0), CANARY_OK);
  /* negative and non-finite samples are refused and counted; the others are kept */
  const double mixed[] = {1, -1, NAN, 2, INFINITY};
  assert_int_equal(window_add_samples(&d, 5 * SEC, mixed, 5), CANARY_EINVALID);
  assert_int_equal(d.rejected, 3);
  assert_int_equal(window_count(&d, 5 * SEC, 0), 2);
  const double none[] = {-5, NAN};
  assert_int_equal(window_add_samples(&d, HOUR, none, 2), CANARY_EINVALID);
  assert_int_equal(d.rejected, 5);
  assert_int_equal(d.clock_ms, 5 * SEC); /* all refused: the clock stays */
  /* counters take any finite delta, a correction included */
  assert_int_equal(window_add_counter(&c, 0, -3), CANARY_OK);
  assert_true(window_counter_sum(&c, 0, 0) == -3);
  /* queries at absurd times read nothing */
  assert_int_equal(window_count(&c, INT64_MAX, 10), 0);
  assert_int_equal(window_count(&c, 0, INT64_MAX), 0);
  window_free(&c);
  window_free(&g);
  window_free(&d);
}

/* After window_free a window is empty and usable again with the same configuration. */
static void test_free_and_reuse(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, 72 * HOUR), CANARY_OK);
  const double v[] = {3, 4};
  assert_int_equal(window_add_samples(&w, 5 * HOUR, v, 2), CANARY_OK);
  double out;
  assert_int_equal(window_quantile(&w, 5 * HOUR, MIN, 0.5, &out), CANARY_OK);
  window_free(&w);
  assert_int_equal(window_memory(&w), 0);
  assert_int_equal(window_count(&w, 5 * HOUR, MIN), 0);
  assert_int_equal(window_add_samples(&w, HOUR, v, 2), CANARY_OK); /* earlier is fine now */
  assert_int_equal(window_count(&w, HOUR, MIN), 2);
  window_free(&w);
  window_free(&w);
}

/* --- query caches ----------------------------------------------------------------------------- */

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void assert_same_stats(const struct window_stats *a, const struct window_stats *b) {
  assert_int_equal(a->n, b->n);
  assert_true(same_bits(a->sum, b->sum));
  assert_true(same_bits(a->min, b->min));
  assert_true(same_bits(a->max, b->max));
  assert_true(same_bits(a->last, b->last));
  assert_int_equal(a->last_ms, b->last_ms);
  assert_int_equal(a->buckets, b->buckets);
  assert_true(same_bits(a->coverage, b->coverage));
}

/*
 * A window that answers from its caches and a twin that reads every bucket, fed the same data
 * (in order, late, far ahead; expiry) and asked the same queries (at the clock, ahead of it,
 * behind it; spans from 0 to beyond the retention): every answer equal to the bit.
 */
static void check_cache_agrees(enum window_kind kind, const struct window_config *cfg,
                               uint64_t seed, int steps) {
  struct window a, b;
  assert_int_equal(window_init_config(&a, kind, cfg), CANARY_OK);
  assert_int_equal(window_init_config(&b, kind, cfg), CANARY_OK);
  b.uncached = true;
  rng_state = seed;
  const int64_t spans[] = {0,
                           1,
                           cfg->bucket_ms - 1,
                           cfg->bucket_ms,
                           5 * MIN,
                           10 * MIN,
                           15 * MIN,
                           HOUR,
                           HOUR + 7 * SEC,
                           24 * HOUR,
                           cfg->retention_ms,
                           cfg->retention_ms + HOUR};
  int64_t t = 1767225600000LL;
  for (int i = 0; i < steps; i++) {
    uint64_t r = rng_next() % 1000;
    int64_t at = t;
    if (r < 700)
      at = t += (int64_t)(rng_next() % (uint64_t)(3 * cfg->bucket_ms / 2)); /* in order */
    else if (r < 900)
      at = t - (int64_t)(rng_next() % (uint64_t)(2 * HOUR)); /* late */
    else if (r < 910)
      at = t += (int64_t)(rng_next() % (uint64_t)(30 * HOUR)); /* far ahead */
    else if (r < 930) {
      int64_t now = t + (int64_t)(rng_next() % (uint64_t)(20 * MIN));
      assert_int_equal(window_expire(&a, now), window_expire(&b, now));
      continue;
    } else if (r < 935) { /* emptied and reused */
      window_free(&a);
      window_free(&b);
      continue;
    }
    if (r < 935) {
      double v = (double)(rng_next() % 1000) / 8.0;
      if (kind == WINDOW_COUNTER)
        assert_int_equal(window_add_counter(&a, at, v), window_add_counter(&b, at, v));
      else if (kind == WINDOW_GAUGE)
        assert_int_equal(window_add_gauge(&a, at, v), window_add_gauge(&b, at, v));
      else {
        double vals[8];
        size_t n = rng_next() % 8;
        for (size_t k = 0; k < n; k++)
          vals[k] = latency();
        assert_int_equal(window_add_samples(&a, at, vals, n), window_add_samples(&b, at, vals, n));
      }
    }
    /* queries, several at nearby times as a rule evaluated every 250 ms would make them */
    for (int q = 0; q < 3; q++) {
      int64_t span = spans[rng_next() % (sizeof spans / sizeof *spans)];
      uint64_t where = rng_next() % 10;
      int64_t now = where < 6   ? t + (int64_t)(rng_next() % 1000)
                    : where < 9 ? t + (int64_t)(rng_next() % (uint64_t)(2 * MIN))
                                : t - (int64_t)(rng_next() % (uint64_t)(3 * HOUR));
      struct window_stats sa, sb;
      window_read(&a, now, span, &sa);
      window_stats(&b, now, span, &sb);
      assert_same_stats(&sa, &sb);
      window_stats(&a, now, span, &sa); /* the uncached call agrees too */
      assert_same_stats(&sa, &sb);
      if (kind == WINDOW_DISTRIBUTION) {
        /* a random rank, and the ends: min and max of the fold must be exact too */
        const double qs[] = {(double)(rng_next() % 101) / 100.0, 0, 1};
        for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
          double qa = -1, qb = -1;
          uint64_t na, nb;
          assert_int_equal(window_quantile_n(&a, now, span, qs[k], &qa, &na),
                           window_quantile_n(&b, now, span, qs[k], &qb, &nb));
          assert_true(same_bits(qa, qb));
          assert_int_equal(na, nb);
        }
        uint64_t aa, an, ba, bn;
        double x = latency();
        assert_int_equal(window_count_above(&a, now, span, x, &aa, &an),
                         window_count_above(&b, now, span, x, &ba, &bn));
        assert_int_equal(aa, ba);
        assert_int_equal(an, bn);
      }
    }
  }
  window_free(&a);
  window_free(&b);
}

static void test_cache_agrees(void **state) {
  (void)state;
  struct window_config cfg = {.bucket_ms = 10 * SEC,
                              .retention_ms = 72 * HOUR,
                              .fine_span_ms = HOUR,
                              .coarse_ms = 5 * MIN,
                              .alpha = 0.01};
  struct window_config one_tier = {.bucket_ms = 10 * SEC,
                                   .retention_ms = 2 * HOUR,
                                   .fine_span_ms = 2 * HOUR,
                                   .coarse_ms = 10 * SEC,
                                   .alpha = 0.01};
  for (uint64_t seed = 1; seed <= 3; seed++) {
    check_cache_agrees(WINDOW_COUNTER, &cfg, seed, 20000);
    check_cache_agrees(WINDOW_GAUGE, &cfg, seed, 20000);
    check_cache_agrees(WINDOW_DISTRIBUTION, &cfg, seed, 6000);
    check_cache_agrees(WINDOW_COUNTER, &one_tier, seed, 5000);
    check_cache_agrees(WINDOW_DISTRIBUTION, &one_tier, seed, 2000);
  }
}

/* A late value lands in a bucket a cache has folded: the next read sees it. */
static void test_cache_sees_late_data(void **state) {
  (void)state;
  struct window w;
  assert_int_equal(window_init(&w, WINDOW_COUNTER, 10 * SEC, HOUR), CANARY_OK);
  int64_t t0 = 1767225600000LL;
  for (int i = 0; i < 60; i++)
    assert_int_equal(window_add_counter(&w, t0 + i * 10 * SEC, 1), CANARY_OK);
  int64_t now = t0 + 595 * SEC;
  struct window_stats st;
  window_read(&w, now, 5 * MIN, &st);
  assert_int_equal(st.n, 31);
  window_read(&w, now + 1, 5 * MIN, &st); /* from the cache */
  assert_int_equal(st.n, 31);
  assert_int_equal(window_add_counter(&w, t0 + 400 * SEC, 5), CANARY_OK); /* late */
  window_read(&w, now + 2, 5 * MIN, &st);
  assert_int_equal(st.n, 32);
  assert_true(st.sum == 36);
  window_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_counter_spans),
      cmocka_unit_test(test_negative_times),
      cmocka_unit_test(test_gauge_spans),
      cmocka_unit_test(test_gauge_roll_up),
      cmocka_unit_test(test_late_data_fine_tier),
      cmocka_unit_test(test_late_data_coarse_tier_and_retention),
      cmocka_unit_test(test_roll_up_boundaries),
      cmocka_unit_test(test_single_tier),
      cmocka_unit_test(test_expiry_bounds_memory),
      cmocka_unit_test(test_expire_jumps_and_never_goes_back),
      cmocka_unit_test(test_quantile_equals_sketch_of_values),
      cmocka_unit_test(test_quantile_errors),
      cmocka_unit_test(test_count_above),
      cmocka_unit_test(test_distribution_alpha),
      cmocka_unit_test(test_coverage),
      cmocka_unit_test(test_coverage_across_tiers),
      cmocka_unit_test(test_invalid_input),
      cmocka_unit_test(test_free_and_reuse),
      cmocka_unit_test(test_cache_agrees),
      cmocka_unit_test(test_cache_sees_late_data),
  };
  return cmocka_run_group_tests_name("window", tests, NULL, NULL);
}
