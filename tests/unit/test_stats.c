/* The statistics module: special functions against reference values, then each test's verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <math.h>

#include "core/stats.h"

/*
 * Reference values: scipy 1.17 (scipy.stats.binom/norm/chi2/beta, scipy.special.gammainc,
 * gammaincc, betainc, scipy.stats.mannwhitneyu with method='asymptotic'), or closed forms where
 * the comment says so.
 */

/* |got − want| <= rel · |want| (or <= rel when want is 0). */
static void near(double got, double want, double rel, const char *what) {
  double tol = want == 0 ? rel : rel * fabs(want);
  if (!(fabs(got - want) <= tol)) {
    print_error("%s: got %.17g, want %.17g (rel %g)\n", what, got, want, rel);
    fail();
  }
}

static void test_normal(void **state) {
  (void)state;
  static const struct {
    double z, cdf, sf;
  } cases[] = {
      {0, 0.5, 0.5},
      {1.96, 0.9750021048517795, 0.024997895148220435},
      {-1.96, 0.024997895148220435, 0.9750021048517795},
      {-3, 0.0013498980316301, 0.9986501019683699},
      {8, 1.0, 6.22096057427174e-16}, /* the far tail keeps its digits: no 1 − cdf */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    near(stats_norm_cdf(cases[i].z), cases[i].cdf, 1e-12, "norm_cdf");
    near(stats_norm_sf(cases[i].z), cases[i].sf, 1e-12, "norm_sf");
  }
}

static void test_incomplete_gamma(void **state) {
  (void)state;
  static const struct {
    double a, x, p;
  } cases[] = {
      {0.5, 1.0, 0.8427007929497151},                                    /* erf(1) */
      {1.0, 1.0, 0.6321205588285577},                                    /* 1 − 1/e */
      {3.0, 2.0, 1 - 0.6766764161830634},  {10, 5, 0.03182805730620481}, /* series branch */
      {10, 20, 1 - 0.0049954123083075785}, /* continued-fraction branch */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    near(stats_gamma_p(cases[i].a, cases[i].x), cases[i].p, 1e-12, "gamma_p");
    near(stats_gamma_p(cases[i].a, cases[i].x) + stats_gamma_q(cases[i].a, cases[i].x), 1, 1e-14,
         "P + Q");
  }
  near(stats_gamma_q(10, 20), 0.0049954123083075785, 1e-12, "gamma_q tail");
  assert_true(stats_gamma_p(1, 0) == 0 && stats_gamma_q(1, 0) == 1);
  assert_true(isnan(stats_gamma_p(0, 1)) && isnan(stats_gamma_q(1, -1)));

  /* chi-square with 1 df: Q(1/2, x/2) = erfc(sqrt(x/2)), both branches of the gamma code */
  static const double xs[] = {0.01, 0.5, 1, 3.84, 10.83, 30, 200};
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
    near(stats_chi2_sf(xs[i], 1), erfc(sqrt(xs[i] / 2)), 1e-12, "chi2 = erfc");
  near(stats_chi2_sf(10.83, 1), 0.0009986863791802592, 1e-10, "chi2 10.83");
  near(stats_chi2_sf(10.827566170662733, 1), 0.001, 1e-10, "chi2 critical 0.001");
  near(stats_chi2_sf(3.841458820694124, 1), 0.05, 1e-10, "chi2 critical 0.05");
  near(stats_chi2_sf(5, 4), 0.2872974951836458, 1e-12, "chi2 4 df");
  assert_true(stats_chi2_sf(0, 1) == 1);
}

static void test_incomplete_beta(void **state) {
  (void)state;
  static const struct {
    double a, b, x, want;
  } cases[] = {
      {2, 3, 0.4, 0.5248},                  /* closed form */
      {1, 1, 0.7, 0.7},                     /* uniform */
      {0.5, 0.5, 0.3, 0.36901011956554536}, /* arcsine: 2/pi asin(sqrt(x)) */
      {10, 20, 0.2, 0.049263517304212585},
      {200, 800, 0.25, 0.9999139693303183}, /* the 1 − I_{1−x}(b, a) branch */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    near(stats_beta_inc(cases[i].a, cases[i].b, cases[i].x), cases[i].want, 1e-11, "beta_inc");
    /* symmetry I_x(a, b) = 1 − I_{1−x}(b, a) */
    near(stats_beta_inc(cases[i].b, cases[i].a, 1 - cases[i].x), 1 - cases[i].want, 1e-9,
         "beta symmetry");
  }
  assert_true(stats_beta_inc(2, 3, 0) == 0 && stats_beta_inc(2, 3, 1) == 1);
  assert_true(isnan(stats_beta_inc(2, 3, 1.5)) && isnan(stats_beta_inc(-1, 3, 0.5)));
}

static void test_binomial_tail(void **state) {
  (void)state;
  near(exp(stats_log_binom_pmf(7, 10, 0.5)), 120.0 / 1024, 1e-13, "pmf 7|10");
  assert_true(stats_log_binom_pmf(11, 10, 0.5) == -INFINITY);
  assert_true(stats_log_binom_pmf(0, 10, 0) == 0 && stats_log_binom_pmf(1, 10, 0) == -INFINITY);
  static const struct {
    uint64_t k, n;
    double p, want;
  } cases[] = {
      {7, 10, 0.5, 0.171875}, /* (120 + 45 + 10 + 1) / 1024 */
      {0, 10, 0.5, 1},
      {10, 10, 0.5, 1.0 / 1024},
      {11, 10, 0.5, 0},
      {1, 51, 0.005, 0.22557900571670114}, /* 1 − 0.995^51: the lower-tail branch */
      {5, 25, 0.004975124378109453, 1.4904403090308712e-07},
      {12, 1012, 0.005, 0.005834844163456554},
      {3, 103, 0.005, 0.015255868096748696},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    near(stats_binom_sf_exact(cases[i].k, cases[i].n, cases[i].p), cases[i].want, 1e-11,
         "binom_sf_exact");
    near(stats_binom_sf(cases[i].k, cases[i].n, cases[i].p), cases[i].want, 1e-11, "binom_sf");
  }
  /* The exact sum, forced past the switch, against a reference with n = 40,000. */
  near(stats_binom_sf_exact(20233, 40000, 0.5), 0.010035409553610672, 1e-9, "exact, large n");
  near(stats_binom_sf_exact(10283, 2010000, 0.005), 0.010229060617516599, 1e-7, "exact, npq 1e4");
}

/* Both methods either side of the switch (n·p·(1−p) = STATS_BINOM_NORMAL_VAR): they agree to
 * the approximation's documented error, and binom_sf picks the right one. */
static void test_binomial_switch(void **state) {
  (void)state;
  static const struct {
    uint64_t n;
    double p, z, rel; /* k = mean + z·sd; rel: allowed normal-vs-exact difference */
  } cases[] = {
      {40000, 0.5, 2.33, 1e-3},     /* npq = 10,000: symmetric, nearly exact */
      {39996, 0.5, 2.33, 1e-3},     /* just below */
      {2010000, 0.005, 2.33, 0.03}, /* npq = 9,999.75: skew costs ~2% near p = 0.01 */
      {2020000, 0.005, 2.33, 0.03}, /* just above */
      {2010000, 0.005, 1.0, 0.01},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double n = (double)cases[i].n, p = cases[i].p;
    double mean = n * p, sd = sqrt(n * p * (1 - p));
    uint64_t k = (uint64_t)ceil(mean + cases[i].z * sd);
    double ex = stats_binom_sf_exact(k, cases[i].n, p),
           nm = stats_binom_sf_normal(k, cases[i].n, p);
    near(nm, ex, cases[i].rel, "normal vs exact");
    double chosen = stats_binom_sf(k, cases[i].n, p);
    assert_true(chosen == (n * p * (1 - p) < STATS_BINOM_NORMAL_VAR ? ex : nm));
  }
}

static void test_clopper_pearson(void **state) {
  (void)state;
  near(stats_clopper_pearson_upper(0, 50, 0.01), 0.08798916064409025, 1e-10, "x = 0");
  near(stats_clopper_pearson_upper(1, 50, 0.01), 0.1255237164585527, 1e-9, "1/50");
  near(stats_clopper_pearson_upper(5, 400, 0.01), 0.032440339845794794, 1e-9, "5/400");
  near(stats_clopper_pearson_upper(5, 100, 0.05), 0.1022533776432745, 1e-9, "5/100 at 95%");
  near(stats_clopper_pearson_upper(100, 10000, 0.01), 0.01256758204869178, 1e-9, "100/10000");
  assert_true(stats_clopper_pearson_upper(3, 3, 0.01) == 1);
  assert_true(stats_clopper_pearson_upper(0, 0, 0.01) == 1);
}

/* The bound as it was defined before the fast path: the plain bisection on stats_beta_inc. */
static double clopper_pearson_bisect(uint64_t x, uint64_t n, double alpha) {
  double a = (double)x + 1, b = (double)(n - x), lo = (double)x / (double)n, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    double mid = 0.5 * (lo + hi);
    if (stats_beta_inc(a, b, mid) < 1.0 - alpha)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

/*
 * The fast path (Newton, then the bisection replayed inside a checked bracket) must give the
 * bisection's double bit for bit: rules compare it and decisions print it. Counts from a handful
 * to 10^12, rates from 10^-6 to a half, the levels a plan can use; tiny rates are where the
 * bisection's last halvings fall inside the rounding of 1 − x, the case that needs the margin.
 */
static void test_clopper_pearson_same_bits(void **state) {
  (void)state;
  static const double alphas[] = {0.01, 0.05, 0.001, 0.2};
  static const uint64_t ns[] = {2,      7,      50,      400,     1000,       10007,
                                123457, 500000, 2000003, 8631084, 1000000007, 1000000000000ULL};
  uint64_t state64 = 88172645463325252ULL;
  int checked = 0;
  for (size_t ia = 0; ia < sizeof alphas / sizeof *alphas; ia++)
    for (size_t in = 0; in < sizeof ns / sizeof *ns; in++)
      for (int j = 0; j < 24; j++) {
        uint64_t n = ns[in];
        state64 ^= state64 << 13, state64 ^= state64 >> 7, state64 ^= state64 << 17;
        /* half small counts (the small-cohort gates), half any rate up to 1/2 */
        uint64_t x = j < 12 ? (uint64_t)j * 9 % n : state64 % (n / 2 + 1);
        double got = stats_clopper_pearson_upper(x, n, alphas[ia]);
        double want = x == 0 || x >= n ? got : clopper_pearson_bisect(x, n, alphas[ia]);
        if (got != want) {
          print_error("x %llu n %llu alpha %g: got %.17g, bisection %.17g\n", (unsigned long long)x,
                      (unsigned long long)n, alphas[ia], got, want);
          fail();
        }
        checked++;
      }
  assert_true(checked > 1000);
}

static void test_binomial_excess(void **state) {
  (void)state;
  static const struct {
    const char *name;
    uint64_t ce, cr, be, br;
    enum stats_outcome want;
    double p; /* reference p-value, or −1 to skip */
  } cases[] = {
      /* a clear regression at small counts: 1.25% against 0.025% */
      {"5/400 vs 20/80000", 5, 400, 20, 80000, STATS_WORSE, 1.4904403090308712e-07},
      /* 0.5% cohort, 50 requests, baseline at 0.5%: 0.25 canary errors expected */
      {"0.5% cohort, 0 errors", 0, 50, 50, 9950, STATS_INSUFFICIENT, 1},
      {"0.5% cohort, 1 error", 1, 50, 50, 9950, STATS_INSUFFICIENT, 0.22557900571670114},
      /* no errors anywhere: nothing could ever be significant */
      {"no errors at all", 0, 400, 0, 80000, STATS_INSUFFICIENT, 1},
      /* equal rates, plenty of data */
      {"equal 1%", 100, 10000, 100, 10000, STATS_NOT_WORSE, 0.5281742395046283},
      {"equal 0.5%, 1% cohort", 50, 10000, 5000, 1000000, STATS_NOT_WORSE, 0.5190887658737373},
      /* 3x the rate but only 0.5 errors expected: p = 0.015, not significant, not a pass */
      {"3x, underpowered", 3, 1000, 100, 199000, STATS_INSUFFICIENT, 0.015255868096748696},
      /* 2.4x with 5 expected: significant */
      {"2.4x at 0.5%", 12, 1000, 1000, 199000, STATS_WORSE, 0.005834844163456554},
      /* a single error against a clean baseline of 9950: p = 0.005 < 0.01 */
      {"1 error vs clean baseline", 1, 50, 0, 9950, STATS_WORSE, 0.005},
      {"canary better", 0, 10000, 500, 10000, STATS_NOT_WORSE, 1},
      {"no canary requests", 0, 0, 5, 1000, STATS_INSUFFICIENT, -1},
      {"no baseline requests", 5, 100, 0, 0, STATS_INSUFFICIENT, -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct stats_verdict v;
    assert_int_equal(stats_binomial_excess(cases[i].ce, cases[i].cr, cases[i].be, cases[i].br, &v),
                     CANARY_OK);
    if (v.outcome != cases[i].want) {
      print_error("%s: got %s (p %g, expected %g, reason '%s'), want %s\n", cases[i].name,
                  stats_outcome_name(v.outcome), v.p_value, v.expected, v.reason,
                  stats_outcome_name(cases[i].want));
      fail();
    }
    if (cases[i].p >= 0)
      near(v.p_value, cases[i].p, 1e-9, cases[i].name);
    assert_true(v.alpha == 0.01);
    assert_true((v.outcome == STATS_INSUFFICIENT) == (v.reason[0] != '\0'));
  }

  struct stats_verdict v;
  assert_int_equal(stats_binomial_excess(5, 400, 20, 80000, &v), CANARY_OK);
  near(v.canary_rate, 0.0125, 1e-15, "canary rate");
  near(v.baseline_rate, 0.00025, 1e-15, "baseline rate");
  near(v.rate_ratio, 50, 1e-12, "ratio");
  near(v.expected, 25 * 400.0 / 80400, 1e-12, "expected");
  near(v.canary_upper, 0.032440339845794794, 1e-9, "upper bound");
  near(v.min_p_value, 2.6308650071679295e-58, 1e-9, "min p");
  assert_true(v.exact);

  /* the minimum-p rule on its own: at a 0.5% share a lone error could reach p = 0.005, at a 5%
   * share it cannot (0.05 >= 0.01), whatever min_expected says */
  struct stats_opts o = STATS_BINOMIAL_DEFAULTS;
  o.min_expected = 0;
  assert_int_equal(stats_binomial_excess_opts(0, 500, 1, 9500, &o, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_INSUFFICIENT);
  near(v.min_p_value, 0.05, 1e-12, "min p at 5%");
  assert_int_equal(stats_binomial_excess_opts(0, 50, 1, 9950, &o, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_NOT_WORSE);
  /* min_count */
  o.min_count = 100;
  assert_int_equal(stats_binomial_excess_opts(0, 50, 1, 9950, &o, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_INSUFFICIENT);
  /* ... but never hides a regression */
  assert_int_equal(stats_binomial_excess_opts(1, 50, 0, 9950, &o, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_WORSE);

  /* ratio edge cases */
  assert_int_equal(stats_binomial_excess(0, 400, 0, 80000, &v), CANARY_OK);
  assert_true(v.rate_ratio == 0);
  assert_int_equal(stats_binomial_excess(1, 50, 0, 9950, &v), CANARY_OK);
  assert_true(isinf(v.rate_ratio));

  /* large counts go through the normal approximation and still decide */
  assert_int_equal(stats_binomial_excess(11000, 1000000, 1000000, 99000000, &v), CANARY_OK);
  assert_false(v.exact);
  assert_int_equal(v.outcome, STATS_WORSE);
  assert_int_equal(stats_binomial_excess(10000, 1000000, 1000000, 99000000, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_NOT_WORSE);

  /* invalid input leaves an insufficient verdict */
  assert_int_equal(stats_binomial_excess(5, 4, 0, 10, &v), CANARY_EINVALID);
  assert_int_equal(v.outcome, STATS_INSUFFICIENT);
  assert_int_equal(stats_binomial_excess(0, 4, 11, 10, &v), CANARY_EINVALID);
  assert_int_equal(stats_binomial_excess(0, UINT64_MAX, 0, 1, &v), CANARY_EINVALID);
  o = (struct stats_opts)STATS_BINOMIAL_DEFAULTS;
  o.alpha = 0;
  assert_int_equal(stats_binomial_excess_opts(0, 4, 0, 10, &o, &v), CANARY_EINVALID);
  assert_int_equal(stats_binomial_excess(0, 4, 0, 10, NULL), CANARY_EINVALID);
}

static void test_srm(void **state) {
  (void)state;
  /* 0.5% of 100,000 = 500 expected; chi-square crosses 10.8276 (p = 0.001) between 426 and 427
   * below, and between 573 and 574 above (symmetric deviations) */
  static const struct {
    uint64_t c, other;
    double share;
    enum stats_outcome want;
    double p;
  } cases[] = {
      {500, 99500, 0.005, STATS_SPLIT_OK, 1},
      {427, 99573, 0.005, STATS_SPLIT_OK, 0.001064683499131612},       /* just above 0.001 */
      {426, 99574, 0.005, STATS_SPLIT_MISMATCH, 0.000907667153336127}, /* just below */
      {573, 99427, 0.005, STATS_SPLIT_OK, 0.001064683499131612},       /* too many, not yet */
      {574, 99426, 0.005, STATS_SPLIT_MISMATCH, 0.000907667153336127}, /* too many */
      {5000, 5000, 0.5, STATS_SPLIT_OK, 1},
      {50, 9950, 0.005, STATS_SPLIT_OK, 1},
      {0, 9950, 0.005, STATS_SPLIT_MISMATCH, -1}, /* the canary gets nothing: 49.75 expected */
      {0, 900, 0.005, STATS_INSUFFICIENT, -1},    /* 4.5 expected: below 5 */
      {0, 0, 0.005, STATS_INSUFFICIENT, -1},
      {996, 3, 0.995, STATS_INSUFFICIENT, -1}, /* the other cell expects 4.995 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct stats_verdict v;
    assert_int_equal(stats_srm(cases[i].c, cases[i].other, cases[i].share, &v), CANARY_OK);
    if (v.outcome != cases[i].want) {
      print_error("srm %llu/%llu at %g: got %s (chi2 %g p %g), want %s\n",
                  (unsigned long long)cases[i].c, (unsigned long long)cases[i].other,
                  cases[i].share, stats_outcome_name(v.outcome), v.statistic, v.p_value,
                  stats_outcome_name(cases[i].want));
      fail();
    }
    if (cases[i].p >= 0)
      near(v.p_value, cases[i].p, 1e-9, "srm p");
  }

  /* exactly at the threshold: p == alpha is not a mismatch (p < alpha is) */
  struct stats_verdict v;
  assert_int_equal(stats_srm(426, 99574, 0.005, &v), CANARY_OK);
  near(v.statistic, 11.007035175879397, 1e-12, "chi2");
  near(v.expected, 500, 1e-12, "expected");
  near(v.canary_rate, 0.00426, 1e-12, "observed share");
  struct stats_opts o = STATS_SRM_DEFAULTS;
  o.alpha = v.p_value;
  assert_int_equal(stats_srm_opts(426, 99574, 0.005, &o, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_SPLIT_OK);
  o.alpha = nextafter(v.p_value, 1);
  assert_int_equal(stats_srm_opts(426, 99574, 0.005, &o, &v), CANARY_OK);
  assert_int_equal(v.outcome, STATS_SPLIT_MISMATCH);

  assert_int_equal(stats_srm(1, 2, 0, &v), CANARY_EINVALID);
  assert_int_equal(stats_srm(1, 2, 1, &v), CANARY_EINVALID);
  assert_int_equal(stats_srm(1, 2, NAN, &v), CANARY_EINVALID);
  assert_int_equal(v.outcome, STATS_INSUFFICIENT);
}

struct mw_case {
  const char *name;
  const double *c, *b;
  size_t n, m;
  double u, p_two, p_greater, p_less;
  enum stats_outcome want;
};

static void check_mw(const struct mw_case *k, const struct stats_opts *o) {
  struct stats_mw r;
  assert_int_equal(stats_mann_whitney_opts(k->c, k->n, k->b, k->m, o, &r), CANARY_OK);
  if (r.outcome != k->want) {
    print_error("%s: got %s (U %g p %g), want %s\n", k->name, stats_outcome_name(r.outcome), r.u,
                r.p_two_sided, stats_outcome_name(k->want));
    fail();
  }
  near(r.u, k->u, 1e-12, k->name);
  near(r.p_two_sided, k->p_two, 1e-9, k->name);
  near(r.p_greater, k->p_greater, 1e-9, k->name);
  near(r.p_less, k->p_less, 1e-9, k->name);
  near(r.effect, 2 * k->u / ((double)k->n * (double)k->m) - 1, 1e-12, "rank-biserial");
}

static void test_mann_whitney(void **state) {
  (void)state;
  /* Hollander & Wolfe (1973) p. 69, R's wilcox.test example: W = 35 (exact p 0.1272, greater) */
  static const double hw_x[] = {0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46};
  static const double hw_y[] = {1.15, 0.88, 0.90, 0.74, 1.21};
  /* ClickHouse's mannWhitneyUTest test data (two ties inside each group): U = 223, p 0.5427 */
  static const double ch_l[] = {310, 195, 530, 155, 530, 245, 385, 450, 465, 545,
                                170, 180, 125, 180, 230, 75,  430, 480, 495, 295};
  static const double ch_r[] = {116, 171, 176, 421, 111, 326, 481, 111, 346, 441,
                                261, 411, 206, 521, 456, 446, 296, 51,  426, 261};
  struct stats_opts small = STATS_MW_DEFAULTS;
  small.min_count = 5;
  const struct mw_case hw = {
      "hollander-wolfe",  hw_x,         hw_y, 10, 5, 35, 0.24462360512698333, 0.12231180256349167,
      0.9007753482039937, STATS_SIMILAR};
  check_mw(&hw, &small);
  const struct mw_case ch = {
      "clickhouse",      ch_l,         ch_r, 20, 20, 223, 0.5426959774289482, 0.2713479887144741,
      0.737545429642209, STATS_SIMILAR};
  check_mw(&ch, &small);

  /* tie-heavy: latencies in four buckets; canary shifted up */
  double c[50], b[50];
  for (int i = 0; i < 50; i++) {
    c[i] = i < 10 ? 1 : i < 30 ? 2 : i < 45 ? 3 : 4;
    b[i] = i < 20 ? 1 : i < 40 ? 2 : i < 48 ? 3 : 4;
  }
  const struct stats_opts def = STATS_MW_DEFAULTS;
  const struct mw_case ties = {"ties",
                               c,
                               b,
                               50,
                               50,
                               1605,
                               0.009852522205849378,
                               0.004926261102924689,
                               0.9951766589356354,
                               STATS_HIGHER};
  check_mw(&ties, &def);
  struct stats_mw r;
  assert_int_equal(stats_mann_whitney(c, 50, b, 50, &r), CANARY_OK);
  near(r.sigma, 137.35184856065936, 1e-12, "tie-corrected sigma"); /* untied: 145.06 */
  /* swapped, the same evidence the other way */
  const struct mw_case swapped = {"ties swapped",
                                  b,
                                  c,
                                  50,
                                  50,
                                  2500 - 1605,
                                  0.009852522205849378,
                                  0.9951766589356354,
                                  0.004926261102924689,
                                  STATS_LOWER};
  check_mw(&swapped, &def);
  /* an effect-size floor above the observed |r| = 0.284 keeps it SIMILAR */
  struct stats_opts floor = STATS_MW_DEFAULTS;
  floor.min_effect = 0.3;
  assert_int_equal(stats_mann_whitney_opts(c, 50, b, 50, &floor, &r), CANARY_OK);
  assert_int_equal(r.outcome, STATS_SIMILAR);
  near(r.effect, 0.284, 1e-12, "effect");

  /* complete separation */
  double lo[20], hi[20];
  for (int i = 0; i < 20; i++) {
    lo[i] = 100 + i;
    hi[i] = 200 + i;
  }
  assert_int_equal(stats_mann_whitney(hi, 20, lo, 20, &r), CANARY_OK);
  assert_int_equal(r.outcome, STATS_HIGHER);
  assert_true(r.u == 400 && r.effect == 1);

  /* every value the same, too few values, bad input */
  double same[12] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
  assert_int_equal(stats_mann_whitney(same, 12, same, 12, &r), CANARY_OK);
  assert_int_equal(r.outcome, STATS_INSUFFICIENT);
  assert_int_equal(stats_mann_whitney(hi, 9, lo, 20, &r), CANARY_OK);
  assert_int_equal(r.outcome, STATS_INSUFFICIENT);
  assert_int_equal(stats_mann_whitney(hi, 0, lo, 20, &r), CANARY_OK);
  assert_int_equal(r.outcome, STATS_INSUFFICIENT);
  double bad[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, NAN};
  assert_int_equal(stats_mann_whitney(bad, 10, lo, 20, &r), CANARY_EINVALID);
  assert_int_equal(r.outcome, STATS_INSUFFICIENT);
  assert_int_equal(stats_mann_whitney(NULL, 10, lo, 20, &r), CANARY_EINVALID);
}

static void test_outcome_names(void **state) {
  (void)state;
  assert_string_equal(stats_outcome_name(STATS_INSUFFICIENT), "insufficient");
  assert_string_equal(stats_outcome_name(STATS_WORSE), "worse");
  assert_string_equal(stats_outcome_name(STATS_SPLIT_MISMATCH), "split_mismatch");
  assert_string_equal(stats_outcome_name((enum stats_outcome)99), "unknown");
  /* the zero value is the one that never passes */
  struct stats_verdict v = {0};
  assert_int_equal(v.outcome, STATS_INSUFFICIENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normal),
      cmocka_unit_test(test_incomplete_gamma),
      cmocka_unit_test(test_incomplete_beta),
      cmocka_unit_test(test_binomial_tail),
      cmocka_unit_test(test_binomial_switch),
      cmocka_unit_test(test_clopper_pearson),
      cmocka_unit_test(test_clopper_pearson_same_bits),
      cmocka_unit_test(test_binomial_excess),
      cmocka_unit_test(test_srm),
      cmocka_unit_test(test_mann_whitney),
      cmocka_unit_test(test_outcome_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
