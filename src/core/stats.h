/* Canary-versus-baseline statistics: error-rate excess, sample-ratio mismatch, Mann-Whitney. */
#ifndef CANARY_STATS_H
#define CANARY_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/*
 * Pure functions: no I/O, no global state; only stats_mann_whitney allocates (and frees) scratch.
 * docs/statistics.md says what each test decides, its assumptions and why its thresholds are
 * what they are.
 *
 * Every verdict starts as STATS_INSUFFICIENT (the zero value): a struct that a failed call left
 * untouched, or one nobody filled, never reads as a pass.
 */

#define STATS_OUTCOME_MAP(XX)                                                                      \
  XX(INSUFFICIENT, "insufficient")     /* too little data to decide: hold, never pass */           \
  XX(NOT_WORSE, "not_worse")           /* binomial: no evidence the canary's rate is higher */     \
  XX(WORSE, "worse")                   /* binomial: canary's error rate higher, p < alpha */       \
  XX(SPLIT_OK, "split_ok")             /* srm: the observed share fits the configured one */       \
  XX(SPLIT_MISMATCH, "split_mismatch") /* srm: traffic split unhealthy, p < alpha */               \
  XX(SIMILAR, "similar")               /* mann-whitney: no significant shift */                    \
  XX(HIGHER, "higher")                 /* mann-whitney: canary's values tend to be higher */       \
  XX(LOWER, "lower")                   /* mann-whitney: canary's values tend to be lower */

enum stats_outcome {
#define XX(name, str) STATS_##name,
  STATS_OUTCOME_MAP(XX)
#undef XX
};

/* Static name of an outcome ("worse", "split_mismatch", ...); "unknown" for anything else. */
const char *stats_outcome_name(enum stats_outcome o);

/*
 * Thresholds. alpha is the significance level (the decision is p < alpha, strictly).
 * min_expected: binomial — the expected canary errors under "same rate" below which "not worse"
 * is not claimed; srm — the expected count of either cell below which nothing is claimed.
 * min_count: binomial — canary requests below which nothing is claimed; mann-whitney — values
 * on either side. min_effect: mann-whitney — |rank-biserial| a shift must reach to count.
 */
struct stats_opts {
  double alpha;
  double min_expected;
  uint64_t min_count;
  double min_effect;
};
#define STATS_BINOMIAL_DEFAULTS                                                                    \
  { .alpha = 0.01, .min_expected = 5.0, .min_count = 0, .min_effect = 0 }
#define STATS_SRM_DEFAULTS                                                                         \
  { .alpha = 0.001, .min_expected = 5.0, .min_count = 0, .min_effect = 0 }
#define STATS_MW_DEFAULTS                                                                          \
  { .alpha = 0.02, .min_expected = 0, .min_count = 10, .min_effect = 0 }

/*
 * The binomial split of errors is summed exactly while n·p·(1−p) < STATS_BINOM_NORMAL_VAR and
 * approximated by the normal with continuity correction from there on. The approximation's tail
 * error shrinks with the variance (skewness (1−2p)/sqrt(npq)), not with n: at a 0.5% share and
 * npq = 1000 it understates p ≈ 0.01 by 5%, at npq = 10,000 by 2% (even splits: 0.01%). Below
 * the switch the exact sum stops after about 9 standard deviations: under a thousand terms.
 */
#define STATS_BINOM_NORMAL_VAR 10000.0

/*
 * One verdict of stats_binomial_excess or stats_srm. Fields that a test does not use are 0.
 *
 * binomial: p_value = P(canary errors >= observed | total errors, same rate), one-sided;
 *   min_p_value = the p-value had every error been the canary's; statistic = canary errors;
 *   expected = canary errors expected under the same rate; canary_rate and baseline_rate =
 *   errors / requests; rate_ratio = canary_rate / baseline_rate (0 when the canary has no
 *   errors, INFINITY when only the canary has errors); canary_upper = one-sided (1 − alpha)
 *   Clopper–Pearson upper bound on the canary's rate; exact = summed, not approximated.
 * srm: p_value = chi-square (1 df) upper tail; statistic = chi-square; expected = expected
 *   canary requests; canary_rate = observed canary share; baseline_rate = configured share;
 *   rate_ratio = observed / configured share; min_p_value = 0; exact = false.
 * reason: a static sentence when the outcome is INSUFFICIENT, else "".
 */
struct stats_verdict {
  enum stats_outcome outcome;
  double alpha;
  double p_value;
  double min_p_value;
  double statistic;
  double expected;
  double canary_rate, baseline_rate, rate_ratio;
  double canary_upper;
  bool exact;
  const char *reason;
};

/*
 * Is the canary's error rate higher than the baseline's? Conditions on the total errors N: under
 * "same rate", the canary's share of them is Binomial(N, canary_requests / all requests). WORSE
 * when P(X >= canary_errors) < alpha — valid at any count, so a clear regression halts even at
 * a 0.5% cohort. Otherwise INSUFFICIENT when the counts could not have shown a regression (no
 * requests on a side, fewer than min_count canary requests, even all N errors in the canary
 * would give p >= alpha, or fewer than min_expected canary errors expected), else NOT_WORSE.
 * Returns CANARY_OK, or CANARY_EINVALID (errors > requests, bad opts, out NULL: out is then
 * reset to INSUFFICIENT when it is not NULL).
 */
int stats_binomial_excess(uint64_t canary_errors, uint64_t canary_requests,
                          uint64_t baseline_errors, uint64_t baseline_requests,
                          struct stats_verdict *out) CANARY_MUSTCHECK;
int stats_binomial_excess_opts(uint64_t canary_errors, uint64_t canary_requests,
                               uint64_t baseline_errors, uint64_t baseline_requests,
                               const struct stats_opts *opts,
                               struct stats_verdict *out) CANARY_MUSTCHECK;

/*
 * Sample-ratio mismatch: chi-square goodness of fit (1 df) of canary_requests against
 * expected_canary_share of all requests (other_requests = everyone else). Two-sided: too few and
 * too many both mismatch. INSUFFICIENT when either cell expects fewer than min_expected requests.
 * Returns CANARY_OK, or CANARY_EINVALID (share not in (0, 1), bad opts, out NULL).
 */
int stats_srm(uint64_t canary_requests, uint64_t other_requests, double expected_canary_share,
              struct stats_verdict *out) CANARY_MUSTCHECK;
int stats_srm_opts(uint64_t canary_requests, uint64_t other_requests, double expected_canary_share,
                   const struct stats_opts *opts, struct stats_verdict *out) CANARY_MUSTCHECK;

/*
 * Mann-Whitney U (Wilcoxon rank-sum) of canary against baseline values, Kayenta's judge: a shift
 * is HIGHER or LOWER when the two-sided p < alpha (0.02: 98% confidence) and |effect| >=
 * min_effect; SIMILAR otherwise; INSUFFICIENT with fewer than min_count values on a side or when
 * every value is the same.
 *
 * u = pairs (canary, baseline) with canary > baseline, a tie counting 1/2. Normal approximation
 * with tie-corrected variance and continuity correction (scipy's mannwhitneyu, method
 * 'asymptotic'). effect = rank-biserial correlation 2u/(nm) − 1 in [−1, 1]: > 0 when the canary
 * tends higher; (effect + 1) / 2 is the probability a random canary value beats a random
 * baseline one.
 */
struct stats_mw {
  enum stats_outcome outcome;
  double alpha;
  double u;
  double z;           /* (u − nm/2) / sigma, without the continuity correction */
  double sigma;       /* tie-corrected standard deviation of u under H0; 0 when all values tie */
  double p_two_sided; /* each with the continuity correction */
  double p_greater;   /* H1: the canary tends higher */
  double p_less;      /* H1: the canary tends lower */
  double effect;      /* rank-biserial */
  const char *reason; /* static; "" unless INSUFFICIENT */
};

/* Returns CANARY_OK, CANARY_EINVALID (NaN value, NULL pointer with a count, bad opts, out NULL)
 * or CANARY_ENOMEM. Values are not modified. */
int stats_mann_whitney(const double *canary, size_t n, const double *baseline, size_t m,
                       struct stats_mw *out) CANARY_MUSTCHECK;
int stats_mann_whitney_opts(const double *canary, size_t n, const double *baseline, size_t m,
                            const struct stats_opts *opts, struct stats_mw *out) CANARY_MUSTCHECK;

/* --- building blocks (exposed for tests and for rules that want a bare p-value) -------------- */

/* Standard normal P(Z <= z) and P(Z > z); both through erfc, so the far tails keep their
 * relative precision (1 − cdf would round to 0 past z ≈ 8). */
double stats_norm_cdf(double z);
double stats_norm_sf(double z);

/* Regularized incomplete gamma P(a, x) and Q(a, x) = 1 − P(a, x), a > 0, x >= 0 (NaN outside). */
double stats_gamma_p(double a, double x);
double stats_gamma_q(double a, double x);

/* Regularized incomplete beta I_x(a, b), a, b > 0, x in [0, 1] (NaN outside). */
double stats_beta_inc(double a, double b, double x);

/* Chi-square upper tail P(X > x) with df degrees of freedom: Q(df/2, x/2). */
double stats_chi2_sf(double x, double df);

/* log P(X = k), X ~ Binomial(n, p); -INFINITY when k > n or the probability is 0. */
double stats_log_binom_pmf(uint64_t k, uint64_t n, double p);

/* P(X >= k), X ~ Binomial(n, p): exact while n·p·(1−p) < STATS_BINOM_NORMAL_VAR, else normal. */
double stats_binom_sf(uint64_t k, uint64_t n, double p);
/* The two methods on their own (tests compare them near the switch). */
double stats_binom_sf_exact(uint64_t k, uint64_t n, double p);
double stats_binom_sf_normal(uint64_t k, uint64_t n, double p);

/* One-sided Clopper–Pearson upper bound at confidence 1 − alpha on a rate with x successes in
 * n trials: the p with P(X <= x | n, p) = alpha. 1 when n == 0 or x == n. */
double stats_clopper_pearson_upper(uint64_t x, uint64_t n, double alpha);

#endif
