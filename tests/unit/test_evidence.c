/* Anytime-valid evidence: reference values, the bounds, and the false-alarm guarantee by Monte
 * Carlo (the guarantee is the whole point: it must hold when the test is looked at often). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <math.h>

#include "core/evidence.h"

static void near(double got, double want, double rel, const char *what) {
  double tol = want == 0 ? rel : rel * fabs(want);
  if (!(fabs(got - want) <= tol)) {
    print_error("%s: got %.17g, want %.17g (rel %g)\n", what, got, want, rel);
    fail();
  }
}

/*
 * Reference values: the closed form log( sum_k w_k exp(x log(p_k/p0) + (n-x) log((1-p_k)/
 * (1-p0))) ), p_k the odds of p0 times (ABOVE) or over (BELOW) the grid ratio k, w_k its weight
 * (ABOVE: 0.03, 0.07, 0.26, 0.24, 0.18, 0.15, 0.04, 0.03 for 1.2 ... 100; BELOW: 1/8 each),
 * evaluated in Python 3
 * (math.log, math.log1p) independently of this code.
 */
static void test_reference_values(void **state) {
  (void)state;
  static const struct {
    double x, n, p0;
    enum evid_side side;
    double log_e;
  } cases[] = {
      {10, 1000, 0.005, EVID_ABOVE, 1.0639238829387327}, /* 2x the null's rate: weak */
      {0, 1000, 0.005, EVID_ABOVE, -3.985073227667675},  /* none: evidence against */
      {0, 10000, 0.001, EVID_BELOW, 8.699117249792097},  /* clean: a gate's "< 0.1%" */
      {3, 400, 0.001, EVID_ABOVE, 2.58654333037643},
      {30, 30, 0.005, EVID_ABOVE, 122.58476147704408},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    near(evid_log_e_rate(cases[i].x, cases[i].n, cases[i].p0, cases[i].side), cases[i].log_e, 1e-12,
         "log_e");
  /* the split: 20 canary errors against 1,000 baseline ones at a 0.5% share is p0 = q */
  struct evid_llr a;
  evid_llr_reset(&a);
  evid_llr_add_split(&a, 20, 1000, 0.005, 1, EVID_ABOVE);
  near(evid_log_e(&a), 11.057705050822765, 1e-12, "split");
  evid_llr_reset(&a);
  near(evid_log_e(&a), 0, 0, "no data is no evidence");
}

/* Segments add: two halves give the e-value of the whole when p0 is the same. */
static void test_segments_add(void **state) {
  (void)state;
  struct evid_llr a;
  evid_llr_reset(&a);
  evid_llr_add(&a, 4, 600, 0.002, EVID_ABOVE);
  evid_llr_add(&a, 6, 400, 0.002, EVID_ABOVE);
  near(evid_log_e(&a), evid_log_e_rate(10, 1000, 0.002, EVID_ABOVE), 1e-12, "halves");
  /* a segment with no trials adds nothing; a comparison with one variant adds nothing */
  struct evid_llr b = a;
  evid_llr_add(&b, 0, 0, 0.002, EVID_ABOVE);
  evid_llr_add_split(&b, 5, 0, 1.0, 1, EVID_ABOVE);
  evid_llr_add_split(&b, 5, 0, 0.0, 1, EVID_ABOVE);
  for (int k = 0; k < EVID_GRID; k++)
    assert_true(a.l[k] == b.l[k]);
}

/*
 * An outage on both variants multiplies both counts: at the same exposure the split of bad
 * events stays what it was, so the comparison gains no evidence against the canary — while the
 * absolute test does (the outage is real).
 */
static void test_outage_on_both_is_not_the_canary(void **state) {
  (void)state;
  double q = 0.05;
  struct evid_llr calm, outage;
  evid_llr_reset(&calm);
  evid_llr_reset(&outage);
  evid_llr_add_split(&calm, 5, 95, q, 1, EVID_ABOVE);
  evid_llr_add_split(&outage, 50, 950, q, 1, EVID_ABOVE);
  assert_true(evid_log_e(&outage) < 0); /* more data at the null's split: evidence for it */
  assert_true(evid_log_e(&outage) <= evid_log_e(&calm));
  assert_true(evid_log_e_rate(50, 1000, 0.01, EVID_ABOVE) > log(1000)); /* 5% against 1% */
}

/* The bound is where the test switches: the data rejects p0 just past it, not just before. */
static void test_bounds_are_the_switch(void **state) {
  (void)state;
  double alpha = 0.01, need = -log(alpha);
  double lo = evid_bound_rate(30, 1000, alpha, EVID_ABOVE);
  assert_true(lo > 0.005 && lo < 0.03);
  assert_true(evid_log_e_rate(30, 1000, lo * 0.999, EVID_ABOVE) >= need);
  assert_true(evid_log_e_rate(30, 1000, lo * 1.001, EVID_ABOVE) < need);
  double hi = evid_bound_rate(0, 20000, alpha, EVID_BELOW);
  assert_true(hi > 0 && hi < 0.001);
  assert_true(evid_log_e_rate(0, 20000, hi * 1.001, EVID_BELOW) >= need);
  assert_true(evid_log_e_rate(0, 20000, hi * 0.999, EVID_BELOW) < need);
  /* nothing rejected: the trivial bounds */
  near(evid_bound_rate(0, 10, alpha, EVID_ABOVE), 0, 0, "no lower bound");
  near(evid_bound_rate(0, 0, alpha, EVID_BELOW), 1, 0, "no upper bound");
  hi = evid_bound_rate(0, 10, alpha, EVID_BELOW); /* ten clean trials rule out p near 1 */
  assert_true(hi > 0.3 && hi < 0.6);
  double th = evid_bound_split(40, 1000, 0.005, alpha, EVID_ABOVE);
  assert_true(th > 1 && th < 8); /* 40 canary errors where ~5 were expected: ~8x */
  assert_true(isinf(evid_bound_split(0, 0, 0.005, alpha, EVID_BELOW)));
}

/* splitmix64: a fixed stream, so the Monte Carlo below decides the same way every run. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/*
 * The guarantee. 2,000 streams at the null's boundary (the hardest case: p exactly p0), each
 * looked at after every batch of 10 trials for 5,000 trials: the share of streams that ever
 * reach 1/alpha must stay below alpha. A fixed-horizon test looked at 500 times would exceed it
 * many times over (the peeking problem); the stream is fixed, so this never flakes — and it
 * fails for a test that is not a supermartingale (e.g. grid weights summing above 1, or a sign slip).
 */
/* The weights are a prior: each positive, together 1 (more would void the guarantee). */
static void test_grid_weights_are_a_prior(void **state) {
  (void)state;
  for (int side = 0; side < 2; side++) {
    double sum = 0;
    for (int k = 0; k < EVID_GRID; k++) {
      assert_true(evid_grid_weight[side][k] > 0);
      sum += evid_grid_weight[side][k];
    }
    near(sum, 1, 1e-12, "weights");
    /* evid_log_e weighs each alternative: one far ahead of the rest reads its own weight */
    for (int k = 0; k < EVID_GRID; k++) {
      struct evid_llr a;
      evid_llr_reset(&a);
      a.side = (enum evid_side)side;
      a.l[k] = 50;
      near(evid_log_e(&a), 50 + log(evid_grid_weight[side][k]), 1e-9, "log weight");
    }
  }
}

static void test_false_alarms_stay_under_alpha_however_often_looked_at(void **state) {
  (void)state;
  const double alpha = 0.05, need = -log(alpha);
  const struct {
    double p0;
    enum evid_side side;
  } nulls[] = {{0.01, EVID_ABOVE}, {0.25, EVID_ABOVE}, {0.01, EVID_BELOW}, {0.5, EVID_BELOW}};
  for (size_t c = 0; c < sizeof nulls / sizeof *nulls; c++) {
    int alarms = 0, streams = 2000;
    for (int s = 0; s < streams; s++) {
      double x = 0;
      for (int n = 10; n <= 5000; n += 10) {
        for (int t = 0; t < 10; t++)
          x += uniform() < nulls[c].p0;
        if (evid_log_e_rate(x, n, nulls[c].p0, nulls[c].side) >= need) {
          alarms++;
          break;
        }
      }
    }
    print_message("null p0 = %g (%s): %d of %d streams ever alarmed at alpha %g\n", nulls[c].p0,
                  nulls[c].side == EVID_ABOVE ? "above" : "below", alarms, streams, alpha);
    assert_true(alarms < alpha * streams);
  }
}

/* And power: a rate 3x the null's is found, at a 0.5% share, within ~30 canary events. */
static void test_a_real_excess_is_found(void **state) {
  (void)state;
  const double alpha = 0.001, need = -log(alpha), q = 0.005;
  double p = evid_split_p(q, 3); /* each bad event is the canary's with this probability */
  int found = 0, runs = 500, within30 = 0;
  for (int s = 0; s < runs; s++) {
    double xc = 0, xb = 0;
    for (int m = 1; m <= 20000; m++) {
      if (uniform() < p)
        xc++;
      else
        xb++;
      struct evid_llr a;
      evid_llr_reset(&a);
      evid_llr_add_split(&a, xc, xb, q, 1, EVID_ABOVE);
      if (evid_log_e(&a) >= need) {
        found++;
        within30 += xc <= 30;
        break;
      }
    }
  }
  print_message("3x excess at a 0.5%% share: found in %d of %d, %d within 30 canary events\n",
                found, runs, within30);
  assert_true(found == runs);
  assert_true(within30 >= runs * 9 / 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_values),
      cmocka_unit_test(test_grid_weights_are_a_prior),
      cmocka_unit_test(test_segments_add),
      cmocka_unit_test(test_outage_on_both_is_not_the_canary),
      cmocka_unit_test(test_bounds_are_the_switch),
      cmocka_unit_test(test_false_alarms_stay_under_alpha_however_often_looked_at),
      cmocka_unit_test(test_a_real_excess_is_found),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
