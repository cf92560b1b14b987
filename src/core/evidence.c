/* Anytime-valid evidence over counts: grid-mixture likelihood ratios and their bounds. */
#include "core/evidence.h"

#include <math.h>

/*
 * The alternatives, as odds ratios. Spread from barely worse (1.2) to broken (100) so that a
 * regression of any size finds a ratio within a factor of ~1.5 of its own.
 *
 * The weights are a prior over the size of a regression, and what it costs: an alternative of
 * weight w needs log(1/w) nats more evidence than a test that knew the size. Equal weights
 * (1/8: 2.1 nats for every size) spend as much on 1.2x and 100x as on the sizes that matter.
 * A halt rule's weights put 83% on 2x to 10x — the regressions the detection targets name, and
 * the ones a release engineer must not ship — so those pay 1.35-1.9 nats; 1.2x and 100x pay 3.5
 * (barely-worse canaries are the margins' business at large cohorts, and a 100x canary is
 * proven in a handful of events anyway). Any weights summing to 1 keep the guarantee
 * (the mixture of supermartingales is one); docs/statistics.md has the figures.
 */
const double evid_grid_ratio[EVID_GRID] = {1.2, 1.5, 2, 3, 5, 10, 30, 100};
const double evid_grid_weight[2][EVID_GRID] = {
    [EVID_ABOVE] = {0.03, 0.07, 0.26, 0.24, 0.18, 0.15, 0.04, 0.03},
    /* a gate proves "under the limit": a healthy canary is anywhere from just under to 100x
     * under (0.02% errors against a 1% limit), so no size is favoured */
    [EVID_BELOW] = {0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125},
};

#define P_MIN 1e-12

static double clamp_p(double p) { return p < P_MIN ? P_MIN : p > 1 - P_MIN ? 1 - P_MIN : p; }

double evid_log_add(double a, double b) {
  if (a == -INFINITY)
    return b;
  if (b == -INFINITY)
    return a;
  return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

void evid_llr_reset(struct evid_llr *a) {
  for (int k = 0; k < EVID_GRID; k++)
    a->l[k] = 0;
  a->side = EVID_ABOVE;
}

/* p whose odds are odds(p0) * r. */
static double scale_odds(double p0, double r) {
  double o = p0 / (1 - p0) * r;
  return o / (1 + o);
}

void evid_coef_init(struct evid_coef *c, double p0, enum evid_side side) {
  p0 = clamp_p(p0);
  c->p0 = p0;
  c->side = side;
  double lp0 = log(p0), lq0 = log1p(-p0);
  for (int k = 0; k < EVID_GRID; k++) {
    double r = side == EVID_ABOVE ? evid_grid_ratio[k] : 1 / evid_grid_ratio[k];
    double p = clamp_p(scale_odds(p0, r));
    c->a[k] = log(p) - lp0;
    c->b[k] = log1p(-p) - lq0; /* log1p keeps small rates exact */
  }
}

void evid_llr_add_coef(struct evid_llr *a, const struct evid_coef *c, double x, double n) {
  if (!(n > 0))
    return;
  if (x < 0)
    x = 0;
  if (x > n)
    x = n;
  double y = n - x;
  a->side = c->side;
  for (int k = 0; k < EVID_GRID; k++)
    a->l[k] += x * c->a[k] + y * c->b[k];
}

bool evid_on_null_side(const struct evid_coef *c, double x, double n) {
  if (!(n > 0))
    return true;
  return c->side == EVID_ABOVE ? x <= c->p0 * n : x >= c->p0 * n;
}

void evid_llr_add(struct evid_llr *a, double x, double n, double p0, enum evid_side side) {
  if (!(n > 0))
    return;
  struct evid_coef c;
  evid_coef_init(&c, p0, side);
  evid_llr_add_coef(a, &c, x, n);
}

double evid_split_p(double q, double theta) {
  double o = q / (1 - q) * theta;
  return isinf(o) ? 1 : o / (1 + o);
}

void evid_llr_add_split(struct evid_llr *a, double x_canary, double x_baseline, double q,
                        double theta0, enum evid_side side) {
  if (!(q > 0 && q < 1))
    return; /* one variant alone says nothing about the other */
  evid_llr_add(a, x_canary, x_canary + x_baseline, evid_split_p(q, theta0), side);
}

double evid_log_e(const struct evid_llr *a) {
  /* log sum w_k e^l_k, from the largest term (no overflow); no evidence is exactly 0 */
  double m = -INFINITY;
  for (int k = 0; k < EVID_GRID; k++)
    if (a->l[k] > m)
      m = a->l[k];
  if (m == -INFINITY)
    return -INFINITY;
  double s = 0;
  for (int k = 0; k < EVID_GRID; k++)
    s += evid_grid_weight[a->side][k] * exp(a->l[k] - m);
  return m + log(s);
}

double evid_log_e_rate(double x, double n, double p0, enum evid_side side) {
  struct evid_llr a;
  evid_llr_reset(&a);
  evid_llr_add(&a, x, n, p0, side);
  return evid_log_e(&a);
}

/* 80 / 2^32: the bound's log-odds to 2e-8, and the bracket's conservative end is returned. */
#define BISECT_STEPS 32

/* log E of one segment against the p0 whose odds are base_odds * exp(t). */
static double log_e_at(double x, double n, double base_odds, double t, enum evid_side side) {
  return evid_log_e_rate(x, n, 1 / (1 + 1 / (base_odds * exp(t))), side);
}

/*
 * The bounds: log E(p0) falls as p0 moves toward the data's side (ABOVE: larger p0 is harder to
 * reject), so the boundary of the rejected set is found by bisection on t, the log of the odds
 * ratio. `rejected` is the end of the bracket still rejected (ABOVE: the low one), `accepted`
 * the other; the rejected end is returned, the conservative side of the bound.
 */
static double bound_on_odds(double x, double n, double base_odds, double alpha,
                            enum evid_side side) {
  double need = -log(alpha);
  double rejected = side == EVID_ABOVE ? -40 : 40, accepted = -rejected;
  if (log_e_at(x, n, base_odds, rejected, side) < need)
    return side == EVID_ABOVE ? 0 : INFINITY; /* nothing in (0, 1) is rejected */
  for (int i = 0; i < BISECT_STEPS; i++) {
    double mid = (rejected + accepted) / 2;
    if (log_e_at(x, n, base_odds, mid, side) >= need)
      rejected = mid;
    else
      accepted = mid;
  }
  return exp(rejected);
}

double evid_bound_rate(double x, double n, double alpha, enum evid_side side) {
  if (!(n > 0))
    return side == EVID_ABOVE ? 0 : 1;
  double theta = bound_on_odds(x, n, 1, alpha, side);
  if (theta == 0)
    return 0;
  if (isinf(theta))
    return 1;
  return theta / (1 + theta);
}

double evid_bound_split(double x_canary, double x_baseline, double q, double alpha,
                        enum evid_side side) {
  if (!(q > 0 && q < 1) || !(x_canary + x_baseline > 0))
    return side == EVID_ABOVE ? 0 : INFINITY;
  return bound_on_odds(x_canary, x_canary + x_baseline, q / (1 - q), alpha, side);
}
