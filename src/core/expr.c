/* Rule language, shared part: names, numbers, accessors, canonical text, caret messages and
 * evidence lines. */
#include "core/expr.h"
#include "core/enum_names.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ENUM_NAMES(expr_kind, expr_kind, EXPR_KIND_MAP, EXPR_KIND_COUNT)

/* --- numbers, locale-independent ------------------------------------------------------------ */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

size_t expr_scan_number(const char *s, double *out) {
  size_t i = 0;
  uint64_t mant = 0;
  int exp10 = 0, digits = 0;
  if (s[0] < '0' || s[0] > '9')
    return 0;
  for (; s[i] >= '0' && s[i] <= '9'; i++) {
    if (digits < 19) {
      mant = mant * 10 + (uint64_t)(s[i] - '0');
      if (mant)
        digits++;
    } else {
      exp10++; /* digits past the 19th only scale */
    }
  }
  if (s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
    for (i++; s[i] >= '0' && s[i] <= '9'; i++) {
      if (digits < 19) {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        if (mant)
          digits++;
        exp10--;
      }
    }
  }
  if ((s[i] == 'e' || s[i] == 'E') &&
      ((s[i + 1] >= '0' && s[i + 1] <= '9') ||
       ((s[i + 1] == '+' || s[i + 1] == '-') && s[i + 2] >= '0' && s[i + 2] <= '9'))) {
    int sign = 1, e = 0;
    i++;
    if (s[i] == '+' || s[i] == '-')
      sign = s[i++] == '-' ? -1 : 1;
    for (; s[i] >= '0' && s[i] <= '9'; i++)
      if (e < 100000)
        e = e * 10 + (s[i] - '0');
    exp10 += sign * e;
  }
  if (s[i] == '%') {
    exp10 -= 2;
    i++;
  }
  if (mant == 0) {
    *out = 0;
  } else if (mant < (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
    /* both operands exact: one correctly rounded operation, the compiler's result */
    *out = exp10 >= 0 ? (double)mant * pow10_exact[exp10] : (double)mant / pow10_exact[-exp10];
  } else {
    long double v = (long double)mant;
    if (exp10 > 0)
      v *= powl(10.0L, (long double)exp10);
    else
      v /= powl(10.0L, (long double)-exp10);
    *out = (double)v;
  }
  return i;
}

int64_t expr_default_window(int64_t window_ms, int64_t for_ms) {
  if (window_ms > 0)
    return window_ms;
  if (for_ms > 0)
    return for_ms;
  return EXPR_DEFAULT_WINDOW_MS;
}

bool expr_is_condition(const struct expr *e) {
  return e->root >= 0 && (e->nodes[e->root].flags & EXPR_F_COND);
}

bool expr_uses(const struct expr *e, enum expr_kind k) {
  for (int i = 0; i < e->n_nodes; i++)
    if (e->nodes[i].kind == k)
      return true;
  return false;
}

int64_t expr_longest_window(const struct expr *e) {
  int64_t w = 0;
  for (int i = 0; i < e->n_nodes; i++)
    if (e->nodes[i].window_ms > w)
      w = e->nodes[i].window_ms;
  return w;
}

const char *expr_metric(const struct expr *e, int node) {
  if (node < 0 || node >= e->n_nodes || e->nodes[node].metric < 0)
    return NULL;
  return e->names + e->nodes[node].metric;
}

const char *expr_name(const struct expr *e, int node) {
  if (node < 0 || node >= e->n_nodes || e->nodes[node].name < 0)
    return NULL;
  return e->names + e->nodes[node].name;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* --- canonical text ------------------------------------------------------------------------ */

struct out {
  char *buf;
  size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->used < o->len ? o->len - o->used : 0;
  int n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->used += (size_t)n;
}

/* Shortest text that reads back as v, with '.' whatever the locale. */
/* printf in the locale's decimal point, then '.' in its place: the language has '.'. */
static void format_c(char *norm, size_t len, bool fixed, int prec, double v) {
  char buf[400];
  if (fixed)
    snprintf(buf, sizeof buf, "%.*f", prec, v);
  else
    snprintf(buf, sizeof buf, "%.*e", prec, v);
  size_t k = 0;
  for (size_t i = 0; buf[i] && k + 1 < len;) {
    char c = buf[i];
    if (is_digit(c) || c == 'e' || c == '+' || c == '-') {
      norm[k++] = c;
      i++;
    } else {
      norm[k++] = '.';
      while (buf[i] && !is_digit(buf[i]) && buf[i] != 'e' && buf[i] != '+' && buf[i] != '-')
        i++;
    }
  }
  norm[k] = '\0';
}

static bool reads_back(const char *text, double v) {
  double back;
  const char *digits = text[0] == '-' ? text + 1 : text;
  return expr_scan_number(digits, &back) == strlen(digits) && (text[0] == '-' ? -back : back) == v;
}

/* Significant digits in the mantissa of a normalised %e text, its trailing zeros left out. */
static int mantissa_digits(const char *text) {
  int digits = 0, kept = 0;
  for (const char *c = text; *c && *c != 'e'; c++)
    if (is_digit(*c)) {
      digits++;
      if (*c != '0')
        kept = digits;
    }
  return kept ? kept : 1;
}

/*
 * The fewest significant digits (1 to 17; 17 when nothing shorter does) whose %e text reads
 * back as v. One 15-digit text decides what trying every length from 1 would: a decimal of
 * up to 15 digits read as a double prints back as itself with 15 digits (DBL_DIG), so if the
 * 15-digit text reads back, the shortest is that text without its trailing zeros, and if it
 * does not, no text of 15 digits or fewer does. That needs expr_scan_number to round correctly,
 * which it does while mantissa and power of ten are exact doubles: for every length up to 15
 * when the exponent is within -7..21 (the rest take the plain loop). Explanations print
 * measured values of 17 digits: put_number now makes 4 snprintf calls for one, not 18.
 */
static int shortest_digits(double v) {
  char text[64];
  if (isnormal(v)) {
    format_c(text, sizeof text, false, 14, v);
    int exp10 = atoi(strchr(text, 'e') + 1);
    if (exp10 >= -7 && exp10 <= 21) {
      if (reads_back(text, v))
        return mantissa_digits(text);
      format_c(text, sizeof text, false, 15, v);
      return reads_back(text, v) ? 16 : 17;
    }
  }
  int prec = 1;
  for (; prec < 17; prec++) {
    format_c(text, sizeof text, false, prec - 1, v);
    if (reads_back(text, v))
      break;
  }
  return prec;
}

/* The shortest text that reads back as v: plain decimals from 1e-6 to 1e15 (2500, 0.005),
 * exponents beyond. */
static void put_number(struct out *o, double v) {
  if (isnan(v)) {
    put(o, "NaN");
    return;
  }
  if (isinf(v)) {
    put(o, v < 0 ? "-inf" : "inf");
    return;
  }
  char text[64];
  int prec = shortest_digits(v);
  format_c(text, sizeof text, false, prec - 1, v);
  int exp10 = atoi(strchr(text, 'e') + 1);
  if (v != 0 && exp10 >= -6 && exp10 < 15) {
    char fixed[64];
    int decimals = prec - 1 - exp10;
    format_c(fixed, sizeof fixed, true, decimals > 0 ? decimals : 0, v);
    if (reads_back(fixed, v)) {
      put(o, "%s", fixed);
      return;
    }
  }
  if (v == 0) {
    put(o, "0");
    return;
  }
  put(o, "%s", text);
}

static void put_duration(struct out *o, int64_t ms) {
  static const struct {
    const char *unit;
    int64_t ms;
  } parts[] = {{"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}, {"ms", 1LL}};
  if (ms <= 0) {
    put(o, "0s");
    return;
  }
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (ms >= parts[i].ms) {
      put(o, "%lld%s", (long long)(ms / parts[i].ms), parts[i].unit);
      ms %= parts[i].ms;
    }
}

/* Binding strength, loosest first. */
static int prec(const struct expr_node *n) {
  switch ((enum expr_kind)n->kind) {
  case EXPR_OR:
    return 1;
  case EXPR_AND:
    return 2;
  case EXPR_NOT:
    return 3;
  case EXPR_GT:
  case EXPR_GE:
  case EXPR_LT:
  case EXPR_LE:
  case EXPR_EQ:
  case EXPR_NE:
    return 4;
  case EXPR_ADD:
  case EXPR_SUB:
    return 5;
  case EXPR_MUL:
  case EXPR_DIV:
    return 6;
  case EXPR_NEG:
    return 7;
  default:
    return 8;
  }
}

static void fmt(const struct expr *e, int i, int outer, struct out *o) {
  const struct expr_node *n = &e->nodes[i];
  int p = prec(n);
  bool paren = p < outer;
  if (paren)
    put(o, "(");
  switch ((enum expr_kind)n->kind) {
  case EXPR_NUM:
    put_number(o, n->num);
    break;
  case EXPR_NAME:
  case EXPR_PARAM:
    put(o, "%s", e->names + n->name);
    break;
  case EXPR_NEG:
    put(o, "-");
    fmt(e, n->a, p, o);
    break;
  case EXPR_NOT:
    put(o, "not ");
    fmt(e, n->a, p, o);
    break;
  case EXPR_GT:
  case EXPR_GE:
  case EXPR_LT:
  case EXPR_LE:
  case EXPR_EQ:
  case EXPR_NE:
    fmt(e, n->a, p + 1, o);
    put(o, " %s ", expr_kind_name(n->kind));
    fmt(e, n->b, p + 1, o);
    break;
  case EXPR_ADD:
  case EXPR_SUB:
  case EXPR_MUL:
  case EXPR_DIV:
  case EXPR_AND:
  case EXPR_OR:
    fmt(e, n->a, p, o); /* left-associative: the left side needs no parentheses at p */
    put(o, " %s ", expr_kind_name(n->kind));
    fmt(e, n->b, p + 1, o);
    break;
  case EXPR_RATE:
  case EXPR_INCREASE:
  case EXPR_AVG_OVER_TIME:
  case EXPR_MAX_OVER_TIME:
  case EXPR_MIN_OVER_TIME:
  case EXPR_QUANTILE:
    if ((n->flags & EXPR_F_SHORTHAND) && !e->bound) {
      put(o, "%s", e->names + n->name);
      break;
    }
    if (!(n->flags & EXPR_F_ARG)) /* an argument of error_excess_p(): errors[5m] alone */
      put(o, "%s(", expr_kind_name(n->kind));
    if (n->kind == EXPR_QUANTILE) {
      put_number(o, n->num);
      put(o, ", ");
    }
    put(o, "%s", e->names + n->metric);
    if (n->window_ms > 0) {
      put(o, "[");
      put_duration(o, n->window_ms);
      put(o, "]");
    }
    if (!(n->flags & EXPR_F_ARG))
      put(o, ")");
    break;
  case EXPR_ERROR_EXCESS:
  case EXPR_ERROR_UPPER:
    put(o, "%s(", expr_kind_name(n->kind));
    fmt(e, n->a, 0, o);
    put(o, ", ");
    fmt(e, n->b, 0, o);
    put(o, ")");
    break;
  case EXPR_BASELINE:
    if (n->flags & EXPR_F_BARE) {
      put(o, "baseline");
      break;
    }
    put(o, "baseline(");
    fmt(e, n->a, 0, o);
    put(o, ")");
    break;
  case EXPR_ZSCORE:
    put(o, "zscore(");
    fmt(e, n->a, 0, o);
    put(o, ", ");
    put_duration(o, n->window_ms);
    put(o, ")");
    break;
  case EXPR_DIFF_RATIO:
    put(o, "canary_diff_ratio(");
    fmt(e, n->a, 0, o);
    if (!(n->flags & EXPR_F_NO_WINDOW)) {
      put(o, ", ");
      put_duration(o, n->window_ms);
    }
    put(o, ")");
    break;
  case EXPR_SLOS_MET:
    put(o, "slos_met()");
    break;
  default:
    put(o, "?");
    break;
  }
  if (paren)
    put(o, ")");
}

size_t expr_format(const struct expr *e, int node, char *buf, size_t len) {
  struct out o = {buf, len, 0};
  if (len)
    buf[0] = '\0';
  if (node < 0)
    node = e->root;
  if (node < 0 || node >= e->n_nodes)
    return 0;
  fmt(e, node, 0, &o);
  return o.used;
}

/* --- error rendering ----------------------------------------------------------------------- */

size_t expr_error_render(const char *src, const struct expr_error *e, char *buf, size_t len) {
  struct out o = {buf, len, 0};
  if (len)
    buf[0] = '\0';
  size_t n = strlen(src);
  size_t pos = e->pos < 0 ? 0 : (size_t)e->pos > n ? n : (size_t)e->pos;
  size_t line = pos;
  while (line > 0 && src[line - 1] != '\n')
    line--;
  size_t end = pos;
  while (end < n && src[end] != '\n')
    end++;
  put(&o, "%.*s\n", (int)(end - line), src + line);
  for (size_t i = line; i < pos; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c == '\t')
      put(&o, "\t");
    else if ((c & 0xc0) != 0x80) /* one column per character, not per UTF-8 byte */
      put(&o, " ");
  }
  put(&o, "^ %s", e->message);
  return o.used;
}

/* --- evidence ------------------------------------------------------------------------------ */

static const struct expr_measure *measure_of(const struct expr_result *r, int node) {
  for (int i = 0; i < r->n_measures; i++)
    if (r->measures[i].node == node)
      return &r->measures[i];
  return NULL;
}

static bool is_error_fn(const struct expr *e, int node) {
  return e->nodes[node].kind == EXPR_ERROR_EXCESS || e->nodes[node].kind == EXPR_ERROR_UPPER;
}

/* v to 3 significant digits, by arithmetic (printf would bring the locale's decimal point). */
static double three_digits(double v) {
  if (v == 0 || !isfinite(v))
    return v;
  double scale = pow(10, 2 - floor(log10(fabs(v))));
  return round(v * scale) / scale;
}

static const struct expr_measure *measure_of_variant(const struct expr_result *r, int node,
                                                     enum variant v) {
  for (int i = 0; i < r->n_measures; i++)
    if (r->measures[i].node == node && r->measures[i].variant == v)
      return &r->measures[i];
  return NULL;
}

/* " (canary 3 of 400, baseline 20 of 80000)": the counts an error function's value rests on,
 * so a p-value or a bound in a decision can be checked by hand. */
static void put_counts(struct out *o, const struct expr *e, const struct expr_result *r, int node) {
  const struct expr_node *n = &e->nodes[node];
  if (!is_error_fn(e, node))
    return;
  static const enum variant both[] = {VARIANT_CANARY, VARIANT_BASELINE};
  const char *sep = " (";
  for (int k = 0; k < (n->kind == EXPR_ERROR_EXCESS ? 2 : 1); k++) {
    const struct expr_measure *me = measure_of_variant(r, n->a, both[k]);
    const struct expr_measure *mr = measure_of_variant(r, n->b, both[k]);
    if (!me || !mr || !me->sufficient || !mr->sufficient)
      continue;
    put(o, "%s%s ", sep, variant_name(both[k]));
    put_number(o, me->value);
    put(o, " of ");
    put_number(o, mr->value);
    sep = ", ";
  }
  if (sep[0] == ',')
    put(o, ")");
}

static void put_node(struct out *o, const struct expr *e, int node) {
  size_t room = o->used < o->len ? o->len - o->used : 0;
  o->used += expr_format(e, node, room ? o->buf + o->used : NULL, room);
}

/* "; too few observations: rate(errors[5m]) (canary n=0, needs 1)": why r is insufficient. */
static void put_why(struct out *o, const struct expr *e, const struct expr_result *r) {
  put(o, "; %s: ", expr_why_name(r->why));
  put_node(o, e, r->why_node);
  const struct expr_measure *m = measure_of(r, r->why_node);
  /* a counter read for both variants (error_excess_p): the side that lacked events */
  for (int i = 0; m && r->why == EXPR_WHY_FEW_EVENTS && i < r->n_measures; i++)
    if (r->measures[i].node == r->why_node && r->measures[i].value < m->value)
      m = &r->measures[i];
  if (m && r->why == EXPR_WHY_FEW_OBS)
    put(o, " (%s n=%lld, needs %lld)", variant_name(m->variant), (long long)m->n,
        (long long)m->min_n);
  else if (m && r->why == EXPR_WHY_POWER)
    put(o, " (%lld errors in both, needs %lld)", (long long)m->n, (long long)m->min_n);
  else if (m && r->why == EXPR_WHY_FEW_EVENTS) {
    put(o, " (%s ", variant_name(m->variant));
    put_number(o, m->value);
    put(o, " events)");
  }
}

/*
 * A comparison decided on evidence: the counts of the exposed cohort, the estimate against what
 * it is held to, and how far the evidence has come:
 *   rate(errors[5m]) / rate(requests[5m]) > error_rate: canary 42 of 2000 = 0.021 vs 0.01;
 *   evidence e = 5.2e+03 >= 1200 (lower bound 0.0131): true
 *   ... : canary 2 of 1440 = 0.00139 vs 0.001; evidence e = 0.31, 0% of the way to 1200: false
 */
static void put_evidence(struct out *o, const struct expr *e, const struct expr_compare *c) {
  const struct expr_node *n = &e->nodes[c->node];
  const struct expr_evidence *x = &c->ev;
  put_node(o, e, c->node);
  if (c->truth == EXPR_INSUFFICIENT && x->n <= 0) {
    put(o, ": insufficient data (no trials for the canary yet)");
    return;
  }
  bool quantile = e->nodes[n->a].kind == EXPR_QUANTILE;
  bool versus = !isnan(c->baseline) || (!quantile && x->baseline_n > 0);
  put(o, ": canary %.15g of %.15g", x->canary_x, x->canary_n);
  if (quantile) {
    put(o, " above ");
    put_number(o, three_digits(x->line));
  }
  if (versus && !quantile)
    put(o,
        x->history ? ", before that %.15g of %.15g (no baseline: its own history)"
                   : ", baseline %.15g of %.15g",
        x->baseline_x, x->baseline_n);
  put(o, ": %s ", versus && !quantile ? "rate ratio" : quantile ? "share" : "rate");
  put_number(o, three_digits(x->estimate));
  put(o, " vs ");
  put_number(o, three_digits(x->reference));
  double need = exp(c->log_needed);
  if (x->age_ms >= 0)
    put(o, " over the last %lld min", (long long)(x->age_ms / 60000));
  if (x->dispersion >= 1.05)
    put(o, " (bursty: counts / %.2g)", x->dispersion);
  put(o, "; evidence e = %.3g", exp(c->log_e));
  if (c->truth == EXPR_TRUE) {
    put(o, " >= %.3g", need);
  } else {
    double way = c->log_e > 0 ? 100 * c->log_e / c->log_needed : 0;
    put(o, ", %.0f%% of the way to %.3g", way > 99 ? 99 : way, need);
  }
  if (!isnan(x->bound)) {
    put(o, " (%s bound ", n->kind == EXPR_GT || n->kind == EXPR_GE ? "lower" : "upper");
    put_number(o, three_digits(x->bound));
    put(o, ")");
  }
  put(o, ": %s", expr_truth_name(c->truth));
}

static void put_compare(struct out *o, const struct expr *e, const struct expr_result *r,
                        const struct expr_compare *c) {
  const struct expr_node *n = &e->nodes[c->node];
  if (c->evidence) {
    put_evidence(o, e, c);
    return;
  }
  put_node(o, e, n->a);
  put(o, " = ");
  if (isnan(c->lhs))
    put(o, "?");
  else if (is_error_fn(e, n->a))
    put_number(o, three_digits(c->lhs)); /* a p-value or bound: its 17 digits are noise */
  else
    put_number(o, c->lhs);
  put_counts(o, e, r, n->a);
  put(o, " %s ", expr_kind_name(n->kind));
  put_node(o, e, n->b);
  if (e->nodes[n->b].kind != EXPR_NUM) {
    put(o, " = ");
    if (isnan(c->rhs))
      put(o, "?");
    else
      put_number(o, is_error_fn(e, n->b) ? three_digits(c->rhs) : c->rhs);
    put_counts(o, e, r, n->b);
  }
  if (!isnan(c->baseline)) {
    put(o, " (baseline ");
    put_number(o, c->baseline);
    put(o, ")");
  }
  put(o, ": %s", expr_truth_name(c->truth));
}

/*
 * The comparisons in written order; when the result is insufficient, the reason follows the
 * first insufficient comparison rather than the last of all: decisions and gate details cut
 * this line short (160 bytes in a gate's detail), and the reason is what must survive. With
 * one comparison that is the end, as it always was.
 */
size_t expr_explain(const struct expr *e, const struct expr_result *r, char *buf, size_t len) {
  struct out o = {buf, len, 0};
  if (len)
    buf[0] = '\0';
  bool why = r->truth == EXPR_INSUFFICIENT && r->why != EXPR_WHY_NONE && r->why_node >= 0;
  for (int i = 0; i < r->n_compares; i++) {
    const struct expr_compare *c = &r->compares[i];
    if (i)
      put(&o, "; ");
    put_compare(&o, e, r, c);
    if (why && c->truth == EXPR_INSUFFICIENT) {
      if (!c->evidence) /* the evidence says what it lacked itself */
        put_why(&o, e, r);
      why = false;
    }
  }
  if (r->n_compares == 0) {
    put_node(&o, e, -1);
    put(&o, ": ");
    if (r->truth == EXPR_INSUFFICIENT)
      put(&o, "%s", expr_truth_name(r->truth));
    else if (expr_is_condition(e))
      put(&o, "%s", expr_truth_name(r->truth));
    else
      put_number(&o, r->value);
  }
  if (why)
    put_why(&o, e, r);
  return o.used;
}
