/* Canary-versus-baseline tests and the special functions under them, in double precision. */
#include "core/stats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* Continued fractions and series stop when a step changes the result by less than this. */
#define EPS 1e-15
/* Lentz's method replaces an exact zero denominator with this. */
#define TINY 1e-300
/* Iterations before a continued fraction gives up: the beta fraction needs about
 * sqrt(max(a, b)) near the mean, i.e. ~30,000 for a billion requests. */
#define MAXIT 200000

const char *stats_outcome_name(enum stats_outcome o) {
  switch (o) {
#define XX(name, str)                                                                              \
  case STATS_##name:                                                                               \
    return str;
    STATS_OUTCOME_MAP(XX)
#undef XX
  }
  return "unknown";
}

/* lgamma_r, not lgamma: lgamma writes the global signgam, a data race between worker threads. */
static double lgam(double x) {
  int sign;
  return lgamma_r(x, &sign);
}

/* --- normal --------------------------------------------------------------------------------- */

double stats_norm_cdf(double z) { return 0.5 * erfc(-z / M_SQRT2); }
double stats_norm_sf(double z) { return 0.5 * erfc(z / M_SQRT2); }

/* --- incomplete gamma: series below a + 1, continued fraction above (Numerical Recipes 6.2) -- */

/* P(a, x) by its series: converges quickly for x < a + 1. */
static double gamma_series(double a, double x) {
  double ap = a, del = 1.0 / a, sum = del;
  for (int i = 0; i < MAXIT; i++) {
    ap += 1.0;
    del *= x / ap;
    sum += del;
    if (fabs(del) < fabs(sum) * EPS)
      break;
  }
  return sum * exp(-x + a * log(x) - lgam(a));
}

/* Q(a, x) by its continued fraction, modified Lentz: converges quickly for x >= a + 1. */
static double gamma_fraction(double a, double x) {
  double b = x + 1.0 - a, c = 1.0 / TINY, d = 1.0 / b, h = d;
  for (int i = 1; i < MAXIT; i++) {
    double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (fabs(d) < TINY)
      d = TINY;
    c = b + an / c;
    if (fabs(c) < TINY)
      c = TINY;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1.0) < EPS)
      break;
  }
  return exp(-x + a * log(x) - lgam(a)) * h;
}

double stats_gamma_p(double a, double x) {
  if (!(a > 0) || !(x >= 0))
    return NAN;
  if (x == 0)
    return 0;
  if (isinf(x))
    return 1;
  /* Each branch computes the small side directly, so neither P nor Q loses its tail. */
  return x < a + 1.0 ? gamma_series(a, x) : 1.0 - gamma_fraction(a, x);
}

double stats_gamma_q(double a, double x) {
  if (!(a > 0) || !(x >= 0))
    return NAN;
  if (x == 0)
    return 1;
  if (isinf(x))
    return 0;
  return x < a + 1.0 ? 1.0 - gamma_series(a, x) : gamma_fraction(a, x);
}

double stats_chi2_sf(double x, double df) {
  if (!(df > 0) || isnan(x))
    return NAN;
  if (x <= 0)
    return 1;
  return stats_gamma_q(df / 2.0, x / 2.0);
}

/* --- incomplete beta (Numerical Recipes 6.4) ----------------------------------------------- */

/* The continued fraction for I_x(a, b); converges quickly for x < (a + 1) / (a + b + 2).
 * *steps gets the number of terms, which bounds its rounding error (Clopper–Pearson uses it). */
static double beta_fraction(double a, double b, double x, int *steps) {
  *steps = 0;
  double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (fabs(d) < TINY)
    d = TINY;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m < MAXIT; m++) {
    int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (fabs(d) < TINY)
      d = TINY;
    c = 1.0 + aa / c;
    if (fabs(c) < TINY)
      c = TINY;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (fabs(d) < TINY)
      d = TINY;
    c = 1.0 + aa / c;
    if (fabs(c) < TINY)
      c = TINY;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    *steps = m;
    if (fabs(del - 1.0) < EPS)
      break;
  }
  return h;
}

/* log(1 / B(a, b)): the part of the prefactor that does not depend on x, so that a search over
 * x (Clopper–Pearson) pays the three lgammas once, not at every step. */
static double beta_log_norm(double a, double b) { return lgam(a + b) - lgam(a) - lgam(b); }

/* log of x^a (1-x)^b / B(a, b); log1p keeps (1-x)^b exact for the small x of error rates.
 * Summed in the order the one-expression form had, so the results stay bit for bit. */
static double beta_log_front(double a, double b, double lnorm, double x) {
  return lnorm + a * log(x) + b * log1p(-x);
}

/* I_x(a, b) for 0 < x < 1, given beta_log_norm(a, b); *steps as beta_fraction. Both
 * stats_beta_inc and the Clopper–Pearson search go through here: one computation, one result. */
static double beta_inc_norm(double a, double b, double lnorm, double x, int *steps) {
  double lbt = beta_log_front(a, b, lnorm, x);
  if (x < (a + 1.0) / (a + b + 2.0))
    return exp(lbt) * beta_fraction(a, b, x, steps) / a;
  return 1.0 - exp(lbt) * beta_fraction(b, a, 1.0 - x, steps) / b;
}

double stats_beta_inc(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0 && x <= 1))
    return NAN;
  if (x == 0)
    return 0;
  if (x == 1)
    return 1;
  int steps;
  return beta_inc_norm(a, b, beta_log_norm(a, b), x, &steps);
}

/* --- binomial ------------------------------------------------------------------------------- */

double stats_log_binom_pmf(uint64_t k, uint64_t n, double p) {
  if (k > n || !(p >= 0 && p <= 1))
    return -INFINITY;
  if (p == 0)
    return k == 0 ? 0 : -INFINITY;
  if (p == 1)
    return k == n ? 0 : -INFINITY;
  double dk = (double)k, dn = (double)n;
  return lgam(dn + 1) - lgam(dk + 1) - lgam(dn - dk + 1) + dk * log(p) + (dn - dk) * log1p(-p);
}

/*
 * Sums terms from the pmf at k outwards, away from the mode, by the ratio of neighbours, so only
 * one pmf goes through lgamma and the terms only shrink: stop when one no longer moves the sum.
 * Above the mean the upper tail is summed; at or below it, 1 − the lower tail, which is then at
 * least about a half, so the subtraction loses nothing that matters.
 */
double stats_binom_sf_exact(uint64_t k, uint64_t n, double p) {
  if (k == 0)
    return 1;
  if (k > n || !(p > 0))
    return 0;
  if (!(p < 1))
    return 1;
  double q = 1.0 - p, t = 1.0, s = 1.0;
  if ((double)k > (double)n * p) {
    double r = p / q;
    for (uint64_t j = k; j < n; j++) {
      t *= (double)(n - j) / (double)(j + 1) * r;
      s += t;
      if (t < s * 1e-17)
        break;
    }
    return fmin(1.0, exp(stats_log_binom_pmf(k, n, p) + log(s)));
  }
  double r = q / p;
  for (uint64_t j = k - 1; j > 0; j--) {
    t *= (double)j / (double)(n - j + 1) * r;
    s += t;
    if (t < s * 1e-17)
      break;
  }
  return fmax(0.0, 1.0 - exp(stats_log_binom_pmf(k - 1, n, p) + log(s)));
}

double stats_binom_sf_normal(uint64_t k, uint64_t n, double p) {
  if (k == 0)
    return 1;
  if (k > n || !(p > 0))
    return 0;
  if (!(p < 1))
    return 1;
  double mean = (double)n * p, sd = sqrt((double)n * p * (1.0 - p));
  return stats_norm_sf(((double)k - 0.5 - mean) / sd); /* P(X >= k) = P(X > k - 1/2) */
}

static bool binom_exact(uint64_t n, double p) {
  return (double)n * p * (1.0 - p) < STATS_BINOM_NORMAL_VAR;
}

double stats_binom_sf(uint64_t k, uint64_t n, double p) {
  return binom_exact(n, p) ? stats_binom_sf_exact(k, n, p) : stats_binom_sf_normal(k, n, p);
}

/* --- Clopper–Pearson ------------------------------------------------------------------------ */

/*
 * The bound is defined by a bisection: lo = x / n, hi = 1, halve until hi − lo <= 1e-12 hi, keep
 * lo where I_mid(x + 1, n − x) < 1 − α. Its result (a double, printed and compared by rules) is
 * whatever that exact sequence of comparisons gives, so the fast path replays the same sequence
 * and only skips the incomplete betas whose comparison is already known: those at midpoints
 * outside a bracket [lo_known, hi_known] around the root, checked with a margin well above the
 * rounding noise of I. About 45 evaluations (each with three lgammas) become about 15 with the
 * lgammas once: Newton finds the root, two evaluations check the bracket, the last halvings
 * inside it are evaluated as before. The bound was a third of canaryd's CPU at the built-in
 * plan, whose small-cohort gates call it at every evaluation with counts that change each time
 * (a cache of results would not hit).
 */
struct cp_search {
  double a, b, lnorm, target;
  double split;              /* (a + 1) / (a + b + 2): where beta_inc_norm changes formula */
  double lo_known, hi_known; /* below lo_known: I < target; above hi_known: I >= target */
  bool known;
};

/* The comparison the bisection makes at mid, exactly as stats_beta_inc would compute it. */
static bool cp_below(const struct cp_search *cs, double mid) {
  if (cs->known && mid > cs->hi_known)
    return false;
  /* Below lo_known only on its side of the formula switch: the two formulas differ by the
   * rounding of lnorm (1e-8 relative at a million requests), too much to carry across. */
  if (cs->known && mid < cs->lo_known && mid >= cs->split)
    return true;
  if (mid >= 1)
    return false; /* stats_beta_inc(…, 1) = 1 */
  int steps;
  return beta_inc_norm(cs->a, cs->b, cs->lnorm, mid, &steps) < cs->target;
}

/*
 * How far beta_inc_norm can stray near x (I_x = i_x), an upper bound: the log-prefactor's terms
 * and the fraction's steps each lose a few ulps, scaled by the tail (<= 1); and the fraction sees
 * 1 − x rounded to a multiple of 2^-53 while the prefactor sees x itself — below rates of about
 * 1e-4 the last halvings fall inside that rounding — worth ε (density + tail |d lbt / dx|) in I.
 */
static double cp_noise(const struct cp_search *cs, double x, double i_x, int steps) {
  double lbt = beta_log_front(cs->a, cs->b, cs->lnorm, x);
  double m = fabs(cs->lnorm) + cs->a * fabs(log(x)) + cs->b * fabs(log1p(-x));
  double density = exp(lbt) / (x * (1.0 - x));
  double slope = fabs(cs->a / x - cs->b / (1.0 - x));
  return DBL_EPSILON * (4.0 * m + 4.0 * steps + 8.0 + density + (1.0 - i_x) * slope);
}

/* log(1 − I_x) and its derivative in x, for Newton; *steps as beta_fraction. The upper tail is
 * computed directly above the formula switch: no cancellation, no underflow at large counts. */
static double cp_log_tail(const struct cp_search *cs, double x, double *dlog, int *steps) {
  double lbt = beta_log_front(cs->a, cs->b, cs->lnorm, x);
  if (x >= cs->split) {
    double f = beta_fraction(cs->b, cs->a, 1.0 - x, steps);
    *dlog = -cs->b / (x * (1.0 - x) * f);
    return lbt + log(f) - log(cs->b);
  }
  double q = 1.0 - exp(lbt) * beta_fraction(cs->a, cs->b, x, steps) / cs->a;
  *dlog = -exp(lbt) / (x * (1.0 - x) * q);
  return log(q);
}

/*
 * The root of I_x = 1 − α by Newton on log(1 − I_x). For a, b >= 1 the beta density is
 * log-concave, and so is its upper tail: from the right Newton comes down monotonically, from the
 * left it overshoots once to the right. The start is the Poisson bound through Wilson–Hilferty's
 * chi-square quantile, a few 1e-3 off at small rates. Returns the root with, in *width, the half
 * width of a bracket around it whose ends I should differ from 1 − α by several times the noise;
 * 0 when Newton does not settle (the plain bisection then does all the work).
 */
static double cp_newton(const struct cp_search *cs, double k, double n, double alpha,
                        double *width) {
  /* z_{1−α} to 4.5e-4 (Abramowitz and Stegun 26.2.23): a starting point only */
  double t = sqrt(-2.0 * log(alpha));
  double z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
                     (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
  double nu = 2.0 * (k + 1), c = 2.0 / (9.0 * nu);
  double chi2 = nu * pow(1.0 - c + z * sqrt(c), 3);
  double floor_x = k / n, log_alpha = log(alpha), r = chi2 / (2.0 * n);
  if (!(r > floor_x && r < 1))
    r = 0.5 * (floor_x + 1);
  double last = INFINITY;
  for (int i = 0; i < 20; i++) {
    double dlog;
    int steps;
    double next = r - (cp_log_tail(cs, r, &dlog, &steps) - log_alpha) / dlog;
    if (!isfinite(next))
      return 0;
    if (next <= floor_x)
      next = 0.5 * (floor_x + r);
    else if (next >= 1)
      next = 0.5 * (r + 1);
    double step = fabs(next - r);
    /* Quadratic convergence: after a step of 1e-12 the error is far below the noise. A step
     * that no longer halves is the noise itself (at 1e9 requests and more): stop there too,
     * the bracket check says whether the root is good enough. */
    if (step <= 1e-12 * r || (i >= 3 && step > 0.5 * last)) {
      double density = exp(beta_log_front(cs->a, cs->b, cs->lnorm, next)) / (next * (1 - next));
      *width =
          fmax(32.0 * cp_noise(cs, next, cs->target, steps) / (density * next), 2.0 * step / r);
      return next;
    }
    last = step;
    r = next;
  }
  return 0;
}

/* Sets the bracket [lo, hi] when I(lo) < target − margin and I(hi) >= target + margin, margin
 * 8 times the noise at each end (so a midpoint beyond either end compares the same way). */
static bool cp_bracket(struct cp_search *cs, double lo, double hi) {
  if (!(lo >= cs->split && hi < 1 && lo < hi))
    return false;
  int sl, sh;
  double il = beta_inc_norm(cs->a, cs->b, cs->lnorm, lo, &sl);
  double ih = beta_inc_norm(cs->a, cs->b, cs->lnorm, hi, &sh);
  if (!(il < cs->target - 8.0 * cp_noise(cs, lo, il, sl) &&
        ih >= cs->target + 8.0 * cp_noise(cs, hi, ih, sh)))
    return false;
  cs->lo_known = lo;
  cs->hi_known = hi;
  cs->known = true;
  return true;
}

/*
 * P(X <= x | n, p) = 1 − I_p(x + 1, n − x), decreasing in p: bisect for I_p(x+1, n−x) = 1 − α.
 * The bound is at least x / n; the bracket closes to 1e-12 relative in about 45 steps.
 */
double stats_clopper_pearson_upper(uint64_t x, uint64_t n, double alpha) {
  if (n == 0 || x >= n)
    return 1;
  if (x == 0) /* (1 − p)^n = α */
    return -expm1(log(alpha) / (double)n);
  double a = (double)x + 1, b = (double)(n - x), lo = (double)x / (double)n, hi = 1;
  struct cp_search cs = {.a = a,
                         .b = b,
                         .lnorm = beta_log_norm(a, b),
                         .target = 1.0 - alpha,
                         .split = (a + 1.0) / (a + b + 2.0)};
  double w = 0,
         root = alpha > 0 && alpha < 0.5 ? cp_newton(&cs, (double)x, (double)n, alpha, &w) : 0;
  /* a bracket wider than 1e-6 saves little; past it, or past three tries, bisect plainly */
  for (int i = 0; i < 3 && root > 0 && w > 0 && w < 1e-6; i++, w *= 4)
    if (cp_bracket(&cs, root * (1 - w), root * (1 + w)))
      break;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    double mid = 0.5 * (lo + hi);
    if (cp_below(&cs, mid))
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

/* --- the tests ------------------------------------------------------------------------------ */

static bool opts_valid(const struct stats_opts *o) {
  return o && o->alpha > 0 && o->alpha < 1 && o->min_expected >= 0 && isfinite(o->min_expected) &&
         o->min_effect >= 0 && o->min_effect <= 1;
}

static void verdict_reset(struct stats_verdict *out, double alpha) {
  *out = (struct stats_verdict){
      .outcome = STATS_INSUFFICIENT, .alpha = alpha, .p_value = 1, .min_p_value = 1, .reason = ""};
}

int stats_binomial_excess(uint64_t ce, uint64_t cr, uint64_t be, uint64_t br,
                          struct stats_verdict *out) {
  const struct stats_opts o = STATS_BINOMIAL_DEFAULTS;
  return stats_binomial_excess_opts(ce, cr, be, br, &o, out);
}

int stats_binomial_excess_opts(uint64_t ce, uint64_t cr, uint64_t be, uint64_t br,
                               const struct stats_opts *opts, struct stats_verdict *out) {
  if (!out)
    return CANARY_EINVALID;
  verdict_reset(out, opts ? opts->alpha : 0);
  if (!opts_valid(opts) || ce > cr || be > br || cr > UINT64_MAX - br)
    return CANARY_EINVALID;
  double alpha = opts->alpha;
  out->statistic = (double)ce;
  if (cr == 0 || br == 0) {
    out->reason = cr == 0 ? "no canary requests" : "no baseline requests";
    return CANARY_OK;
  }
  out->canary_rate = (double)ce / (double)cr;
  out->baseline_rate = (double)be / (double)br;
  out->rate_ratio = ce == 0                  ? 0
                    : out->baseline_rate > 0 ? out->canary_rate / out->baseline_rate
                                             : INFINITY;
  out->canary_upper = stats_clopper_pearson_upper(ce, cr, alpha);

  uint64_t total = ce + be; /* cannot wrap: ce <= cr, be <= br and cr + br fits */
  double share = (double)cr / ((double)cr + (double)br);
  out->expected = (double)total * share;
  out->exact = binom_exact(total, share);
  out->p_value = stats_binom_sf(ce, total, share);
  out->min_p_value = total == 0 ? 1 : exp((double)total * log(share)); /* all N in the canary */

  if (out->p_value < alpha)
    out->outcome = STATS_WORSE; /* exact at any count: small samples can still convict */
  else if (cr < opts->min_count)
    out->reason = "fewer canary requests than the minimum";
  else if (out->min_p_value >= alpha)
    out->reason = "even every error in the canary would not be significant";
  else if (out->expected < opts->min_expected)
    out->reason = "too few canary errors expected to show a regression";
  else
    out->outcome = STATS_NOT_WORSE;
  return CANARY_OK;
}

int stats_srm(uint64_t canary_requests, uint64_t other_requests, double share,
              struct stats_verdict *out) {
  const struct stats_opts o = STATS_SRM_DEFAULTS;
  return stats_srm_opts(canary_requests, other_requests, share, &o, out);
}

int stats_srm_opts(uint64_t c, uint64_t other, double share, const struct stats_opts *opts,
                   struct stats_verdict *out) {
  if (!out)
    return CANARY_EINVALID;
  verdict_reset(out, opts ? opts->alpha : 0);
  if (!opts_valid(opts) || !(share > 0 && share < 1) || c > UINT64_MAX - other)
    return CANARY_EINVALID;
  out->baseline_rate = share;
  if (c + other == 0) {
    out->reason = "no requests";
    return CANARY_OK;
  }
  double total = (double)c + (double)other;
  double exp_c = total * share, exp_o = total * (1.0 - share), dev = (double)c - exp_c;
  out->expected = exp_c;
  out->canary_rate = (double)c / total;
  out->rate_ratio = out->canary_rate / share;
  /* (c − Ec)²/Ec + (o − Eo)²/Eo with o − Eo = −(c − Ec): one subtraction, not two. */
  out->statistic = dev * dev / (total * share * (1.0 - share));
  out->p_value = stats_chi2_sf(out->statistic, 1);
  out->min_p_value = 0;
  if (exp_c < opts->min_expected || exp_o < opts->min_expected)
    out->reason = "fewer requests expected in a cell than the minimum";
  else
    out->outcome = out->p_value < opts->alpha ? STATS_SPLIT_MISMATCH : STATS_SPLIT_OK;
  return CANARY_OK;
}

struct ranked {
  double v;
  bool canary;
};

static int ranked_cmp(const void *a, const void *b) {
  double x = ((const struct ranked *)a)->v, y = ((const struct ranked *)b)->v;
  return (x > y) - (x < y);
}

int stats_mann_whitney(const double *canary, size_t n, const double *baseline, size_t m,
                       struct stats_mw *out) {
  const struct stats_opts o = STATS_MW_DEFAULTS;
  return stats_mann_whitney_opts(canary, n, baseline, m, &o, out);
}

int stats_mann_whitney_opts(const double *canary, size_t n, const double *baseline, size_t m,
                            const struct stats_opts *opts, struct stats_mw *out) {
  if (!out)
    return CANARY_EINVALID;
  *out = (struct stats_mw){.outcome = STATS_INSUFFICIENT,
                           .alpha = opts ? opts->alpha : 0,
                           .p_two_sided = 1,
                           .p_greater = 1,
                           .p_less = 1,
                           .reason = ""};
  if (!opts_valid(opts) || (n && !canary) || (m && !baseline) ||
      m > SIZE_MAX / sizeof(struct ranked) || n > SIZE_MAX / sizeof(struct ranked) - m)
    return CANARY_EINVALID;
  for (size_t i = 0; i < n; i++)
    if (isnan(canary[i]))
      return CANARY_EINVALID;
  for (size_t i = 0; i < m; i++)
    if (isnan(baseline[i]))
      return CANARY_EINVALID;
  uint64_t min = opts->min_count ? opts->min_count : 1;
  if (n < min || m < min) {
    out->reason = "fewer values than the minimum";
    return CANARY_OK;
  }

  size_t total = n + m;
  struct ranked *r = malloc(total * sizeof *r);
  if (!r)
    return CANARY_ENOMEM;
  for (size_t i = 0; i < n; i++)
    r[i] = (struct ranked){canary[i], true};
  for (size_t i = 0; i < m; i++)
    r[n + i] = (struct ranked){baseline[i], false};
  qsort(r, total, sizeof *r, ranked_cmp);

  /* Midranks: a run of t equal values at 0-based positions [i, j) all get (i + 1 + j) / 2. */
  double rank_sum = 0, ties = 0;
  for (size_t i = 0, j; i < total; i = j) {
    size_t in_canary = 0;
    for (j = i; j < total && r[j].v == r[i].v; j++)
      in_canary += r[j].canary;
    double t = (double)(j - i);
    rank_sum += (double)in_canary * ((double)i + 1.0 + (double)j) / 2.0;
    ties += t * t * t - t;
  }
  free(r);

  double dn = (double)n, dm = (double)m, dt = (double)total;
  out->u = rank_sum - dn * (dn + 1.0) / 2.0;
  out->effect = 2.0 * out->u / (dn * dm) - 1.0;
  double var = dn * dm / 12.0 * ((dt + 1.0) - ties / (dt * (dt - 1.0)));
  if (!(var > 0)) {
    out->reason = "every value is the same";
    return CANARY_OK;
  }
  double mu = dn * dm / 2.0, dev = out->u - mu;
  out->sigma = sqrt(var);
  out->z = dev / out->sigma;
  out->p_greater = stats_norm_sf((dev - 0.5) / out->sigma);
  out->p_less = stats_norm_cdf((dev + 0.5) / out->sigma);
  out->p_two_sided = fmin(1.0, 2.0 * stats_norm_sf((fabs(dev) - 0.5) / out->sigma));
  if (out->p_two_sided < opts->alpha && fabs(out->effect) >= opts->min_effect)
    out->outcome = dev > 0 ? STATS_HIGHER : STATS_LOWER;
  else
    out->outcome = STATS_SIMILAR;
  return CANARY_OK;
}
