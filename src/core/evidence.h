/*
 * Anytime-valid evidence over counts: e-values whose false-alarm rate holds however often they
 * are looked at (docs/statistics.md, "Evidence"). Pure: no I/O, no state, no allocation.
 */
#ifndef CANARY_EVIDENCE_H
#define CANARY_EVIDENCE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The test. Successes x of n Bernoulli trials with a success probability p. The null says p is
 * at most p0 (EVID_ABOVE: we look for evidence that p is above p0) or at least p0 (EVID_BELOW).
 * The e-value is a mixture of likelihood ratios over a fixed grid of alternatives, each the odds
 * of p0 multiplied (ABOVE) or divided (BELOW) by one of EVID_GRID ratios, with fixed weights
 * w_k summing to 1 (evid_grid_weight: a prior over the size of a regression):
 *
 *     E = sum_k w_k * prod over trials of P_k(trial) / P_0(trial)
 *
 * Under the null each ratio is a non-negative supermartingale in the number of trials (its
 * expectation per trial is at most 1 for every p on the null's side of p0), so the mixture is
 * too, and by Ville's inequality P(E ever reaches 1/alpha) <= alpha: the test may be evaluated
 * after every trial, every batch, or four times a second, and stopped whenever it decides.
 * Sums of log-ratios over segments with different p0 (cohorts with different exposure) are
 * products of supermartingales over successive segments, so the same bound holds across them.
 *
 * Comparing a canary with its concurrent baseline is the same test (Lindon & Malek 2022):
 * conditional on the total number of bad events m = x_canary + x_baseline, each bad event is
 * the canary's with probability p = q·θ / (q·θ + 1 − q), q the canary's share of the exposure
 * (its requests over all requests) and θ the ratio of the canary's rate to the baseline's. The
 * odds of p are θ times the odds of q, so "θ <= θ0" is "p <= p0" with odds(p0) = θ0·odds(q),
 * and the grid is a grid of rate ratios. An outage that hits both variants moves m, not p.
 */

#define EVID_GRID 8

/* Which side of p0 the evidence is for. */
enum evid_side {
  EVID_ABOVE, /* H0: p <= p0; evidence that p > p0 (a halt rule's "x > limit") */
  EVID_BELOW  /* H0: p >= p0; evidence that p < p0 (a gate's "x < limit") */
};

/* The log-likelihood ratio of each alternative of the grid, summed over segments. Zeroed by
 * evid_llr_reset (all zeros: E = 1, no evidence). */
struct evid_llr {
  double l[EVID_GRID];
  enum evid_side side; /* of the segments added (EVID_ABOVE after a reset): the weights' set */
};

/* The grid's odds ratios (> 1), ascending, and their weights (each side's sum 1): a halt
 * rule's (ABOVE) prior over the size of a regression, a gate's (BELOW) over how far under its
 * limit a healthy canary is. */
extern const double evid_grid_ratio[EVID_GRID];
extern const double evid_grid_weight[2][EVID_GRID];

void evid_llr_reset(struct evid_llr *a);

/*
 * Add a segment: x successes of n trials (x <= n, both >= 0; counts as doubles) against p0
 * in (0, 1) (clamped to [1e-12, 1 - 1e-12]). Nothing is added when n <= 0.
 */
void evid_llr_add(struct evid_llr *a, double x, double n, double p0, enum evid_side side);

/*
 * Comparative segment: x_canary and x_baseline bad events, the canary's exposure share q in
 * (0, 1) and the null's rate ratio theta0 (>= 1 for ABOVE: 1 + margin; <= 1 for BELOW). The
 * same as evid_llr_add(x_canary, x_canary + x_baseline, p0(q, theta0), side).
 */
void evid_llr_add_split(struct evid_llr *a, double x_canary, double x_baseline, double q,
                        double theta0, enum evid_side side);

/*
 * The per-trial log-ratios of one null p0 and side, computed once for many segments (the same
 * limit, or the same exposure share): a segment then costs two multiply-adds per alternative.
 * on_null_side(x, n): the segment's estimate x/n is on the null's side of p0, so no alternative
 * is more likely than the null (each ratio <= 1): a term made of it alone may be left out of a
 * mixture (a smaller sum of non-negative terms stays valid) at almost no cost in power.
 */
struct evid_coef {
  double p0;
  enum evid_side side;
  double a[EVID_GRID]; /* log(p_k / p0): per success */
  double b[EVID_GRID]; /* log((1 - p_k) / (1 - p0)): per failure */
};

void evid_coef_init(struct evid_coef *c, double p0, enum evid_side side);
void evid_llr_add_coef(struct evid_llr *a, const struct evid_coef *c, double x, double n);
bool evid_on_null_side(const struct evid_coef *c, double x, double n);

/* The success probability whose odds are theta times those of q: q·θ / (q·θ + 1 − q). */
double evid_split_p(double q, double theta);

/* log E of the grid mixture (log-sum-exp; 0 when reset). */
double evid_log_e(const struct evid_llr *a);

/* log E of one segment on its own: evid_llr_reset, evid_llr_add, evid_log_e. */
double evid_log_e_rate(double x, double n, double p0, enum evid_side side);

/*
 * The confidence bound that goes with the test at level alpha, for one segment: ABOVE, the
 * smallest p0 the data does not reject (a lower bound on p); BELOW, the largest (an upper
 * bound). The set {p0 : E(p0) < 1/alpha} is a confidence sequence: it holds p at every time
 * with probability >= 1 - alpha. Bisection on the log-odds, for explanations (not hot paths).
 * 0 (ABOVE) or 1 (BELOW) when no p0 in (0, 1) is rejected.
 */
double evid_bound_rate(double x, double n, double alpha, enum evid_side side);

/* The same for a comparative segment: the bound on the rate ratio theta (lower for ABOVE,
 * upper for BELOW); 0 or INFINITY when nothing is rejected. */
double evid_bound_split(double x_canary, double x_baseline, double q, double alpha,
                        enum evid_side side);

/* log(exp(a) + exp(b)) without overflow; -INFINITY is the identity. */
double evid_log_add(double a, double b);

#endif
