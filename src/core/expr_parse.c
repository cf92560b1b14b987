/* Rule language, front half: lexer, recursive-descent parser, binding of names. The grammar is
 * in docs/rules.md; the text side (canonical form, caret messages) is in expr.c. Over 800 lines
 * and one file on purpose: the lexer and the parse_* functions work on one struct parser and call
 * one another, and the binding (a hundred lines) resolves the names they leave: one job. */
#include "core/expr.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The seed's short metric names (its Alert Configuration) and the contract's names. */
static const struct {
  const char *written, *metric;
} aliases[] = {
    {"latency", "latency_ms"},
    {"webvitals_lcp", "webvitals_lcp_ms"},
    {"webvitals_inp", "webvitals_inp_ms"},
};

static const char *alias_of(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strlen(aliases[i].written) == len && memcmp(aliases[i].written, name, len) == 0)
      return aliases[i].metric;
  return NULL;
}

/* --- durations --------------------------------------------------------------------------- */

static const struct {
  const char *unit;
  int64_t ms;
} units[] = {{"w", 604800000LL}, {"d", 86400000LL}, {"h", 3600000LL},
             {"m", 60000LL},     {"s", 1000LL},     {"ms", 1LL}};
#define N_UNITS ((int)(sizeof units / sizeof units[0]))

static bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

static bool is_unit(const char *s, size_t len) {
  for (int u = 0; u < N_UNITS; u++)
    if (strlen(units[u].unit) == len && memcmp(units[u].unit, s, len) == 0)
      return true;
  return false;
}

/* --- the parser ----------------------------------------------------------------------------- */

enum tok {
  T_END,
  T_NUM,
  T_IDENT,
  T_LPAREN,
  T_RPAREN,
  T_LBRACK,
  T_RBRACK,
  T_COMMA,
  T_PLUS,
  T_MINUS,
  T_STAR,
  T_SLASH,
  T_GT,
  T_GE,
  T_LT,
  T_LE,
  T_EQ,
  T_NE
};

struct parser {
  const char *src;
  size_t len;
  size_t pos;        /* next byte to lex */
  enum tok tok;      /* current token */
  size_t start, end; /* its bytes */
  double num;        /* T_NUM: its value */
  struct expr *e;
  struct expr_error *err;
  bool failed;
  int depth;
  int bare[EXPR_MAX_NODES]; /* bare `baseline` nodes not yet tied to a comparison */
  int n_bare;
  int in_baseline;              /* inside baseline(...): error_excess_p() has no place there */
  bool leveled[EXPR_MAX_NODES]; /* error_excess_p() nodes compared with a level */
};

__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, size_t pos, const char *fmt,
                                                      ...) {
  if (!p->failed) {
    p->failed = true;
    if (p->err) {
      p->err->pos = (int)pos;
      va_list ap;
      va_start(ap, fmt);
      canary_vwhy(p->err->message, sizeof p->err->message, 0, fmt, ap);
      va_end(ap);
    }
  }
  p->tok = T_END;
  return -1;
}

/* The current token as text for messages: 'rate', ')', or "the end". */
static const char *tok_text(struct parser *p, char *buf, size_t len) {
  if (p->tok == T_END)
    return "the end";
  size_t n = p->end - p->start;
  if (n > 24)
    n = 24;
  snprintf(buf, len, "'%.*s'", (int)n, p->src + p->start);
  return buf;
}

static void lex(struct parser *p) {
  if (p->failed) {
    p->tok = T_END;
    return;
  }
  const char *s = p->src;
  size_t i = p->pos;
  while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
    i++;
  p->start = i;
  if (!s[i]) {
    p->tok = T_END;
    p->end = p->pos = i;
    return;
  }
  char c = s[i];
  if (is_digit(c)) {
    size_t j = i + expr_scan_number(s + i, &p->num);
    if (s[j] == '.' && !is_digit(s[j + 1])) {
      fail(p, j, "expected a digit after '.'");
      return;
    }
    if (!isfinite(p->num)) {
      fail(p, i, "number out of range");
      return;
    }
    if (is_alpha(s[j])) {
      size_t k = j;
      while (is_alpha(s[k]))
        k++;
      if (is_unit(s + j, k - j) && s[j - 1] != '%')
        fail(p, i, "a duration such as %.*s belongs in a window, as in errors[%.*s]", (int)(k - i),
             s + i, (int)(k - i), s + i);
      else
        fail(p, j, "unexpected '%c' after the number", s[j]);
      return;
    }
    if (s[j] == '.' || is_digit(s[j])) {
      fail(p, j, "unexpected '%c' after the number", s[j]);
      return;
    }
    p->tok = T_NUM;
    p->end = p->pos = j;
    return;
  }
  if (is_alpha(c)) {
    size_t j = i;
    while (is_alnum(s[j]))
      j++;
    p->tok = T_IDENT;
    p->end = p->pos = j;
    return;
  }
  size_t n = 1;
  switch (c) {
  case '(':
    p->tok = T_LPAREN;
    break;
  case ')':
    p->tok = T_RPAREN;
    break;
  case '[':
    p->tok = T_LBRACK;
    break;
  case ']':
    p->tok = T_RBRACK;
    break;
  case ',':
    p->tok = T_COMMA;
    break;
  case '+':
    p->tok = T_PLUS;
    break;
  case '-':
    p->tok = T_MINUS;
    break;
  case '*':
    p->tok = T_STAR;
    break;
  case '/':
    p->tok = T_SLASH;
    break;
  case '>':
    p->tok = s[i + 1] == '=' ? T_GE : T_GT;
    n = s[i + 1] == '=' ? 2 : 1;
    break;
  case '<':
    p->tok = s[i + 1] == '=' ? T_LE : T_LT;
    n = s[i + 1] == '=' ? 2 : 1;
    break;
  case '=':
    if (s[i + 1] != '=') {
      fail(p, i, "'=' is not an operator: write '==' to compare");
      return;
    }
    p->tok = T_EQ;
    n = 2;
    break;
  case '!':
    if (s[i + 1] != '=') {
      fail(p, i, "'!' is not an operator: write 'not' or '!='");
      return;
    }
    p->tok = T_NE;
    n = 2;
    break;
  case '&':
    fail(p, i, "'&' is not an operator: write 'and'");
    return;
  case '|':
    fail(p, i, "'|' is not an operator: write 'or'");
    return;
  default:
    if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
      fail(p, i, "unexpected byte 0x%02x", (unsigned char)c);
    else
      fail(p, i, "unexpected '%c'", c);
    return;
  }
  p->end = p->pos = i + n;
}

static bool tok_is(const struct parser *p, const char *word) {
  size_t n = strlen(word);
  return p->tok == T_IDENT && p->end - p->start == n && memcmp(p->src + p->start, word, n) == 0;
}

static bool is_keyword(const struct parser *p) {
  return tok_is(p, "and") || tok_is(p, "or") || tok_is(p, "not");
}

/* Stores a name (deduplicated); returns its offset or -1 after failing. */
static int add_name(struct expr *e, const char *s, size_t n) {
  for (int off = 0; off < e->names_len; off += (int)strlen(e->names + off) + 1)
    if (strlen(e->names + off) == n && memcmp(e->names + off, s, n) == 0)
      return off;
  if ((size_t)e->names_len + n + 1 > sizeof e->names)
    return -1;
  int off = e->names_len;
  memcpy(e->names + off, s, n);
  e->names[off + (int)n] = '\0';
  e->names_len += (int)n + 1;
  return off;
}

static int new_node(struct parser *p, enum expr_kind kind, size_t pos) {
  if (p->failed)
    return -1;
  if (p->e->n_nodes >= EXPR_MAX_NODES)
    return fail(p, pos, "expression too complex: more than %d terms and operators", EXPR_MAX_NODES);
  int i = p->e->n_nodes++;
  struct expr_node *n = &p->e->nodes[i];
  memset(n, 0, sizeof *n);
  n->kind = (uint8_t)kind;
  n->a = n->b = n->name = n->metric = -1;
  n->pos = (uint16_t)pos;
  return i;
}

static struct expr_node *node(struct parser *p, int i) { return &p->e->nodes[i]; }
static bool is_cond(struct parser *p, int i) { return node(p, i)->flags & EXPR_F_COND; }

static int parse_or(struct parser *p);

/* Operand checks: arithmetic wants numbers, logic wants conditions. */
static bool want_number(struct parser *p, int i, const char *where) {
  if (i >= 0 && is_cond(p, i)) {
    fail(p, node(p, i)->pos, "expected a number %s, found a condition", where);
    return false;
  }
  return i >= 0;
}

static bool want_cond(struct parser *p, int i, const char *where) {
  if (i >= 0 && !is_cond(p, i)) {
    fail(p, node(p, i)->pos, "expected a condition %s, found a number (compare it, as in x > 1)",
         where);
    return false;
  }
  return i >= 0;
}

static bool expect(struct parser *p, enum tok t, const char *msg) {
  if (p->failed)
    return false;
  if (p->tok != t) {
    fail(p, p->start, "%s", msg);
    return false;
  }
  lex(p);
  return !p->failed;
}

/*
 * A duration at the raw position (the current token was consumed without lexing the next):
 * <digits><unit> parts, units w d h m s ms in decreasing order. Then lexes the next token.
 */
static bool parse_duration(struct parser *p, int64_t *ms, const char *what) {
  const char *s = p->src;
  size_t i = p->pos;
  while (s[i] == ' ' || s[i] == '\t')
    i++;
  size_t begin = i;
  int64_t total = 0;
  int last = -1;
  if (!is_digit(s[i])) {
    fail(p, i, "expected %s such as 5m", what);
    return false;
  }
  while (is_digit(s[i])) {
    size_t part = i;
    int64_t v = 0;
    for (; is_digit(s[i]); i++) {
      if (v > (INT64_MAX - 9) / 10) {
        fail(p, part, "duration out of range");
        return false;
      }
      v = v * 10 + (s[i] - '0');
    }
    if (s[i] == '.') {
      fail(p, i, "durations have no fractions: write 1h30m, not 1.5h");
      return false;
    }
    size_t u0 = i;
    while (is_alpha(s[i]))
      i++;
    if (u0 == i) {
      fail(p, i, "expected a unit after %.*s: ms, s, m, h, d or w", (int)(i - part), s + part);
      return false;
    }
    int u = -1;
    for (int k = 0; k < N_UNITS; k++)
      if (strlen(units[k].unit) == i - u0 && memcmp(units[k].unit, s + u0, i - u0) == 0)
        u = k;
    if (u < 0) {
      fail(p, u0, "unknown duration unit '%.*s' (ms, s, m, h, d, w)", (int)(i - u0), s + u0);
      return false;
    }
    if (u <= last) {
      fail(p, part, "duration units must decrease, as in 1h30m");
      return false;
    }
    last = u;
    if (v > (INT64_MAX - total) / units[u].ms) {
      fail(p, part, "duration out of range");
      return false;
    }
    total += v * units[u].ms;
  }
  if (total <= 0) {
    fail(p, begin, "%s must be longer than 0", what);
    return false;
  }
  *ms = total;
  p->pos = i;
  lex(p);
  return !p->failed;
}

/* metric or metric[window], the argument of rate() and friends; fills the function node. */
static bool parse_metric(struct parser *p, int fn, const char *fname) {
  if (p->failed)
    return false;
  if (p->tok != T_IDENT || is_keyword(p)) {
    fail(p, p->start, "expected a metric name, as in %s(errors[5m])", fname);
    return false;
  }
  size_t start = p->start, n = p->end - p->start;
  if (tok_is(p, "baseline")) {
    fail(p, start, "'baseline' is not a metric: write baseline(%s(metric[5m]))", fname);
    return false;
  }
  if (n >= PLAN_NAME_MAX) {
    fail(p, start, "name longer than %d bytes", PLAN_NAME_MAX - 1);
    return false;
  }
  const char *alias = alias_of(p->src + start, n);
  int name = add_name(p->e, p->src + start, n);
  int metric = alias ? add_name(p->e, alias, strlen(alias)) : name;
  if (name < 0 || metric < 0) {
    fail(p, start, "expression too long: more than %d bytes of names", EXPR_NAMES_MAX);
    return false;
  }
  node(p, fn)->name = (int16_t)name;
  node(p, fn)->metric = (int16_t)metric;
  lex(p);
  if (p->failed)
    return false;
  if (p->tok == T_LPAREN) {
    fail(p, start, "%s() reads a metric, as in %s(errors[5m]), not a function", fname, fname);
    return false;
  }
  if (p->tok != T_LBRACK) {
    node(p, fn)->flags |= EXPR_F_NO_WINDOW;
    return true;
  }
  p->pos = p->end; /* the window is scanned raw: 5m is not a number and a name */
  if (!parse_duration(p, &node(p, fn)->window_ms, "a window"))
    return false;
  return expect(p, T_RBRACK, "expected ']' after the window");
}

/*
 * One counter argument of error_excess_p() / error_rate_upper(): a metric with an optional
 * window, read as increase() (a node of its own, flagged EXPR_F_ARG). Returns the node or -1.
 */
static int parse_counter_arg(struct parser *p, const char *fname, const char *what) {
  if (p->failed)
    return -1;
  if (p->tok != T_IDENT || is_keyword(p))
    return fail(p, p->start, "expected the %s counter, as in %s(errors[5m], requests[5m])", what,
                fname);
  size_t j = p->end;
  while (p->src[j] == ' ' || p->src[j] == '\t')
    j++;
  if (p->src[j] == '(') /* rate(errors[5m]): the test needs counts, not rates */
    return fail(p, p->start,
                "%s() reads the counters themselves, as in %s(errors[5m], requests[5m]), not a "
                "function of them",
                fname, fname);
  int i = new_node(p, EXPR_INCREASE, p->start);
  if (i < 0 || !parse_metric(p, i, fname))
    return -1;
  node(p, i)->flags |= EXPR_F_ARG;
  return i;
}

/* A function call; the current token is its name, followed by '('. */
static int parse_call(struct parser *p, enum expr_kind k, size_t start) {
  const char *fname = expr_kind_name(k);
  char close_msg[64];
  snprintf(close_msg, sizeof close_msg, "expected ')' to close %s(", fname);
  int fn = new_node(p, k, start);
  lex(p); /* '(' */
  lex(p);
  if (fn < 0 || p->failed)
    return -1;
  switch (k) {
  case EXPR_RATE:
  case EXPR_INCREASE:
  case EXPR_AVG_OVER_TIME:
  case EXPR_MAX_OVER_TIME:
  case EXPR_MIN_OVER_TIME:
    parse_metric(p, fn, fname);
    break;
  case EXPR_QUANTILE:
    if (p->tok != T_NUM)
      return fail(p, p->start, "expected a quantile between 0 and 1, such as 0.99");
    if (p->num < 0 || p->num > 1)
      return fail(p, p->start, "a quantile is between 0 and 1");
    node(p, fn)->num = p->num;
    lex(p);
    if (expect(p, T_COMMA, "expected ',' after the quantile"))
      parse_metric(p, fn, fname);
    break;
  case EXPR_BASELINE: {
    p->in_baseline++;
    int a = parse_or(p);
    p->in_baseline--;
    if (want_number(p, a, "inside baseline()"))
      node(p, fn)->a = (int16_t)a;
    break;
  }
  case EXPR_ZSCORE: {
    int a = parse_or(p);
    if (!want_number(p, a, "as the first argument of zscore()"))
      return -1;
    node(p, fn)->a = (int16_t)a;
    if (p->tok != T_COMMA)
      return fail(p, p->start, "expected ',' and the history, as in zscore(x, 24h)");
    p->pos = p->end;
    parse_duration(p, &node(p, fn)->window_ms, "a history");
    break;
  }
  case EXPR_DIFF_RATIO: {
    int a;
    if (p->tok == T_NUM) {
      a = new_node(p, EXPR_NUM, p->start);
      if (a >= 0)
        node(p, a)->num = p->num;
    } else if (p->tok == T_IDENT && !is_keyword(p) && !tok_is(p, "baseline")) {
      if (p->end - p->start >= PLAN_NAME_MAX)
        return fail(p, p->start, "name longer than %d bytes", PLAN_NAME_MAX - 1);
      a = new_node(p, EXPR_NAME, p->start);
      int name = add_name(p->e, p->src + p->start, p->end - p->start);
      if (a >= 0 && name < 0)
        return fail(p, p->start, "expression too long: more than %d bytes of names",
                    EXPR_NAMES_MAX);
      if (a >= 0)
        node(p, a)->name = (int16_t)name;
    } else {
      return fail(p, p->start, "expected a tolerance: a number or a threshold name");
    }
    if (a < 0)
      return -1;
    node(p, fn)->a = (int16_t)a;
    lex(p);
    if (p->tok == T_COMMA) {
      p->pos = p->end;
      parse_duration(p, &node(p, fn)->window_ms, "a window");
    } else {
      node(p, fn)->flags |= EXPR_F_NO_WINDOW;
    }
    break;
  }
  case EXPR_ERROR_EXCESS:
  case EXPR_ERROR_UPPER: {
    if (k == EXPR_ERROR_EXCESS && p->in_baseline)
      return fail(p, start,
                  "%s() compares the canary with the baseline itself: it does not go "
                  "inside baseline()",
                  fname);
    int a = parse_counter_arg(p, fname, "errors");
    if (a < 0 || !expect(p, T_COMMA,
                         "expected ',' and the requests counter, as in "
                         "(errors[5m], requests[5m])"))
      return -1;
    int b = parse_counter_arg(p, fname, "requests");
    if (b < 0)
      return -1;
    node(p, fn)->a = (int16_t)a;
    node(p, fn)->b = (int16_t)b;
    break;
  }
  case EXPR_SLOS_MET:
    node(p, fn)->flags |= EXPR_F_COND;
    if (p->tok != T_RPAREN)
      return fail(p, p->start, "slos_met() takes no arguments");
    break;
  default:
    return fail(p, start, "internal: %s is not a function", fname);
  }
  if (!expect(p, T_RPAREN, close_msg))
    return -1;
  return fn;
}

static int parse_primary(struct parser *p) {
  size_t start = p->start;
  if (p->failed)
    return -1;
  switch (p->tok) {
  case T_NUM: {
    int i = new_node(p, EXPR_NUM, start);
    if (i >= 0)
      node(p, i)->num = p->num;
    lex(p);
    return p->failed ? -1 : i;
  }
  case T_LPAREN: {
    if (p->depth >= EXPR_MAX_DEPTH)
      return fail(p, start, "expression nested more than %d deep", EXPR_MAX_DEPTH);
    p->depth++;
    lex(p);
    int i = parse_or(p);
    p->depth--;
    if (i < 0 || !expect(p, T_RPAREN, "expected ')' to close '('"))
      return -1;
    return i;
  }
  case T_IDENT:
    break;
  default:
    return fail(p, start, "expected a number, a name or '('");
  }
  if (is_keyword(p))
    return fail(p, start, "expected a number, a name or '(', not '%.*s'", (int)(p->end - start),
                p->src + start);
  size_t n = p->end - start;
  /* A function call is a name followed by '('. */
  size_t j = p->end;
  while (p->src[j] == ' ' || p->src[j] == '\t' || p->src[j] == '\n' || p->src[j] == '\r')
    j++;
  if (p->src[j] == '(') {
    for (int k = EXPR_RATE; k < EXPR_KIND_COUNT; k++)
      if (strlen(expr_kind_name((enum expr_kind)k)) == n &&
          memcmp(expr_kind_name((enum expr_kind)k), p->src + start, n) == 0) {
        if (p->depth >= EXPR_MAX_DEPTH)
          return fail(p, start, "expression nested more than %d deep", EXPR_MAX_DEPTH);
        p->depth++;
        int i = parse_call(p, (enum expr_kind)k, start);
        p->depth--;
        return i;
      }
    return fail(p, start, "unknown function '%.*s'", (int)n, p->src + start);
  }
  if (p->src[j] == '[')
    return fail(p, start,
                "a window is read through a function, as in rate(%.*s[5m]) or "
                "avg_over_time(%.*s[5m])",
                (int)n, p->src + start, (int)n, p->src + start);
  if (n >= PLAN_NAME_MAX)
    return fail(p, start, "name longer than %d bytes", PLAN_NAME_MAX - 1);
  if (tok_is(p, "baseline")) {
    int i = new_node(p, EXPR_BASELINE, start);
    if (i < 0)
      return -1;
    node(p, i)->flags |= EXPR_F_BARE;
    p->bare[p->n_bare++] = i;
    lex(p);
    return p->failed ? -1 : i;
  }
  int i = new_node(p, EXPR_NAME, start);
  if (i < 0)
    return -1;
  int name = add_name(p->e, p->src + start, n);
  if (name < 0)
    return fail(p, start, "expression too long: more than %d bytes of names", EXPR_NAMES_MAX);
  node(p, i)->name = (int16_t)name;
  lex(p);
  return p->failed ? -1 : i;
}

static int parse_unary(struct parser *p) {
  if (p->tok == T_MINUS) {
    size_t start = p->start;
    if (p->depth >= EXPR_MAX_DEPTH)
      return fail(p, start, "expression nested more than %d deep", EXPR_MAX_DEPTH);
    lex(p);
    p->depth++;
    int a = parse_unary(p);
    p->depth--;
    if (!want_number(p, a, "after '-'"))
      return -1;
    int i = new_node(p, EXPR_NEG, start);
    if (i >= 0)
      node(p, i)->a = (int16_t)a;
    return i;
  }
  return parse_primary(p);
}

/* a k b; the node's position is a's first character, a full array is reported at the operator. */
static int binary(struct parser *p, enum expr_kind k, int a, int b, size_t op) {
  if (p->e->n_nodes >= EXPR_MAX_NODES)
    return new_node(p, k, op);
  int i = new_node(p, k, node(p, a)->pos);
  if (i >= 0) {
    node(p, i)->a = (int16_t)a;
    node(p, i)->b = (int16_t)b;
  }
  return i;
}

static int parse_mul(struct parser *p) {
  int l = parse_unary(p);
  while (l >= 0 && (p->tok == T_STAR || p->tok == T_SLASH)) {
    enum expr_kind k = p->tok == T_STAR ? EXPR_MUL : EXPR_DIV;
    size_t op = p->start;
    char where[40];
    snprintf(where, sizeof where, "on the left of '%s'", expr_kind_name(k));
    if (!want_number(p, l, where))
      return -1;
    lex(p);
    int r = parse_unary(p);
    snprintf(where, sizeof where, "on the right of '%s'", expr_kind_name(k));
    if (!want_number(p, r, where))
      return -1;
    l = binary(p, k, l, r, op);
  }
  return l;
}

static int parse_add(struct parser *p) {
  int l = parse_mul(p);
  while (l >= 0 && (p->tok == T_PLUS || p->tok == T_MINUS)) {
    enum expr_kind k = p->tok == T_PLUS ? EXPR_ADD : EXPR_SUB;
    size_t op = p->start;
    char where[40];
    snprintf(where, sizeof where, "on the left of '%s'", expr_kind_name(k));
    if (!want_number(p, l, where))
      return -1;
    lex(p);
    int r = parse_mul(p);
    snprintf(where, sizeof where, "on the right of '%s'", expr_kind_name(k));
    if (!want_number(p, r, where))
      return -1;
    l = binary(p, k, l, r, op);
  }
  return l;
}

static bool cmp_tok(enum tok t, enum expr_kind *k) {
  switch (t) {
  case T_GT:
    *k = EXPR_GT;
    return true;
  case T_GE:
    *k = EXPR_GE;
    return true;
  case T_LT:
    *k = EXPR_LT;
    return true;
  case T_LE:
    *k = EXPR_LE;
    return true;
  case T_EQ:
    *k = EXPR_EQ;
    return true;
  case T_NE:
    *k = EXPR_NE;
    return true;
  default:
    return false;
  }
}

/*
 * error_excess_p() as an operand of the comparison i: the other operand is its significance
 * level, and the p-value is only known where that level can decide (docs/rules.md). So the
 * level must be a number in (0, 1) or a threshold name (checked again once bound), and the
 * comparison an ordering. Returns false after failing.
 */
static bool check_level(struct parser *p, int i) {
  struct expr_node *c = node(p, i);
  for (int side = 0; side < 2; side++) {
    int x = side ? c->b : c->a, lv = side ? c->a : c->b;
    if (node(p, x)->kind != EXPR_ERROR_EXCESS)
      continue;
    if (c->kind == EXPR_EQ || c->kind == EXPR_NE) {
      fail(p, node(p, x)->pos,
           "error_excess_p() is a p-value: compare it with a level using "
           "<, <=, > or >=");
      return false;
    }
    struct expr_node *l = node(p, lv);
    if (l->kind != EXPR_NUM && l->kind != EXPR_NAME) {
      fail(p, l->pos,
           "error_excess_p() is compared with a significance level: a number or a "
           "threshold name, as in error_excess_p(errors[5m], requests[5m]) < 0.01");
      return false;
    }
    if (l->kind == EXPR_NUM && !(l->num > 0 && l->num < 1)) {
      fail(p, l->pos, "a significance level is between 0 and 1, such as 0.01");
      return false;
    }
    node(p, x)->num = l->kind == EXPR_NUM ? l->num : 0; /* a name: set by expr_bind */
    p->leveled[x] = true;
  }
  return true;
}

/* a OP b, not chained. A bare `baseline` on the right stands for a on the baseline variant. */
static int parse_cmp(struct parser *p) {
  int mark = p->n_bare;
  int l = parse_add(p);
  enum expr_kind k;
  if (l < 0 || !cmp_tok(p->tok, &k))
    return l;
  char where[40];
  snprintf(where, sizeof where, "on the left of '%s'", expr_kind_name(k));
  if (!want_number(p, l, where))
    return -1;
  size_t op = p->start;
  if (p->n_bare > mark)
    return fail(p, node(p, p->bare[mark])->pos,
                "a bare 'baseline' goes on the right of a comparison, where it stands for "
                "the left-hand side on the baseline variant");
  lex(p);
  int r = parse_add(p);
  snprintf(where, sizeof where, "on the right of '%s'", expr_kind_name(k));
  if (!want_number(p, r, where))
    return -1;
  for (int i = mark; i < p->n_bare; i++)
    node(p, p->bare[i])->a = (int16_t)l;
  p->n_bare = mark;
  enum expr_kind k2;
  if (cmp_tok(p->tok, &k2))
    return fail(p, p->start, "comparisons do not chain: join them with 'and'");
  int i = binary(p, k, l, r, op);
  if (i >= 0)
    node(p, i)->flags |= EXPR_F_COND;
  if (i >= 0 && !check_level(p, i))
    return -1;
  return i;
}

/* `not` binds looser than comparisons (as in SQL and Python): not a > b is not (a > b). */
static int parse_not(struct parser *p) {
  if (!tok_is(p, "not"))
    return parse_cmp(p);
  size_t start = p->start;
  if (p->depth >= EXPR_MAX_DEPTH)
    return fail(p, start, "expression nested more than %d deep", EXPR_MAX_DEPTH);
  lex(p);
  p->depth++;
  int a = parse_not(p);
  p->depth--;
  if (!want_cond(p, a, "after 'not'"))
    return -1;
  int i = new_node(p, EXPR_NOT, start);
  if (i >= 0) {
    node(p, i)->a = (int16_t)a;
    node(p, i)->flags |= EXPR_F_COND;
  }
  return i;
}

static int parse_logic(struct parser *p, const char *word, enum expr_kind k,
                       int (*operand)(struct parser *)) {
  int l = operand(p);
  while (l >= 0 && tok_is(p, word)) {
    char where[40];
    snprintf(where, sizeof where, "on the left of '%s'", word);
    if (!want_cond(p, l, where))
      return -1;
    size_t op = p->start;
    lex(p);
    int r = operand(p);
    snprintf(where, sizeof where, "on the right of '%s'", word);
    if (!want_cond(p, r, where))
      return -1;
    l = binary(p, k, l, r, op);
    if (l >= 0)
      node(p, l)->flags |= EXPR_F_COND;
  }
  return l;
}

static int parse_and(struct parser *p) { return parse_logic(p, "and", EXPR_AND, parse_not); }

static int parse_or(struct parser *p) { return parse_logic(p, "or", EXPR_OR, parse_and); }

static bool needs_binding(const struct expr *e) {
  for (int i = 0; i < e->n_nodes; i++)
    if (e->nodes[i].kind == EXPR_NAME || (e->nodes[i].flags & EXPR_F_NO_WINDOW))
      return true;
  return false;
}

int expr_parse(const char *src, struct expr *out, struct expr_error *err) {
  struct parser p = {.src = src, .e = out, .err = err};
  memset(out, 0, sizeof *out);
  out->root = -1;
  if (err) {
    err->pos = 0;
    err->message[0] = '\0';
  }
  p.len = strlen(src);
  if (p.len > EXPR_SRC_MAX) {
    fail(&p, EXPR_SRC_MAX, "expression longer than %d bytes", EXPR_SRC_MAX);
    return CANARY_EPARSE;
  }
  lex(&p);
  if (!p.failed && p.tok == T_END)
    fail(&p, p.start, "empty expression");
  int root = p.failed ? -1 : parse_or(&p);
  if (!p.failed && p.tok != T_END) {
    char buf[40];
    fail(&p, p.start, "expected an operator or the end, found %s", tok_text(&p, buf, sizeof buf));
  }
  for (int i = 0; !p.failed && i < out->n_nodes; i++)
    if (out->nodes[i].kind == EXPR_ERROR_EXCESS && !p.leveled[i])
      fail(&p, out->nodes[i].pos,
           "error_excess_p() is a p-value to compare with a significance level, as in "
           "error_excess_p(errors[5m], requests[5m]) < 0.01");
  if (!p.failed && p.n_bare > 0)
    fail(&p, p.e->nodes[p.bare[0]].pos,
         "a bare 'baseline' stands for the left-hand side of a comparison on the baseline "
         "variant: use it on the right of one, or write baseline(expr)");
  if (p.failed) {
    memset(out, 0, sizeof *out);
    out->root = -1;
    return CANARY_EPARSE;
  }
  out->root = root;
  out->bound = !needs_binding(out);
  return CANARY_OK;
}

/* --- binding ------------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int bind_fail(struct expr_error *err, int pos,
                                                           const char *fmt, ...) {
  if (err) {
    err->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    canary_vwhy(err->message, sizeof err->message, 0, fmt, ap);
    va_end(ap);
  }
  return CANARY_EINVALID;
}

/* name = <distribution>_p<2 or 3 digits>: q = 0.<digits>, *base_len the distribution's length. */
static bool shorthand(const char *name, double *q, size_t *base_len) {
  size_t n = strlen(name);
  size_t k = n;
  while (k > 0 && is_digit(name[k - 1]))
    k--;
  size_t digits = n - k;
  if (digits < 2 || digits > 3 || k < 3 || name[k - 1] != 'p' || name[k - 2] != '_')
    return false;
  int v = 0;
  for (size_t i = k; i < n; i++)
    v = v * 10 + (name[i] - '0');
  *q = (double)v / (digits == 2 ? 100.0 : 1000.0);
  *base_len = k - 2;
  return true;
}

int expr_bind(struct expr *e, const struct plan_param *params, int n_params, int64_t window_ms,
              struct expr_error *err) {
  if (window_ms <= 0)
    window_ms = EXPR_DEFAULT_WINDOW_MS;
  e->bound = false;
  for (int i = 0; i < e->n_nodes; i++) {
    struct expr_node *n = &e->nodes[i];
    bool by_name = n->kind == EXPR_NAME || n->kind == EXPR_PARAM || (n->flags & EXPR_F_SHORTHAND);
    if (by_name) {
      const char *name = e->names + n->name;
      int found = -1;
      for (int k = 0; k < n_params; k++)
        if (strcmp(params[k].name, name) == 0)
          found = k;
      double q;
      size_t base;
      if (found >= 0) {
        n->kind = EXPR_PARAM;
        n->num = params[found].value;
        n->flags &= (uint8_t) ~(EXPR_F_SHORTHAND | EXPR_F_NO_WINDOW);
        n->metric = -1;
      } else if (shorthand(name, &q, &base)) {
        const char *alias = alias_of(name, base);
        int metric = alias ? add_name(e, alias, strlen(alias)) : add_name(e, name, base);
        if (metric < 0)
          return bind_fail(err, n->pos, "expression too long: no room for the metric of '%s'",
                           name);
        n->kind = EXPR_QUANTILE;
        n->flags |= EXPR_F_SHORTHAND | EXPR_F_NO_WINDOW;
        n->num = q;
        n->metric = (int16_t)metric;
      } else {
        return bind_fail(err, n->pos,
                         "unknown name '%s': not a halt condition of the plan (a metric is read "
                         "through a function, as in rate(errors[5m]))",
                         name);
      }
    }
    if (n->flags & EXPR_F_NO_WINDOW)
      n->window_ms = window_ms;
  }
  for (int i = 0; i < e->n_nodes; i++) {
    const struct expr_node *n = &e->nodes[i];
    bool ordering =
        n->kind == EXPR_GT || n->kind == EXPR_GE || n->kind == EXPR_LT || n->kind == EXPR_LE;
    for (int side = 0; ordering && side < 2; side++) {
      struct expr_node *x = &e->nodes[side ? n->b : n->a];
      const struct expr_node *lv = &e->nodes[side ? n->a : n->b];
      if (x->kind != EXPR_ERROR_EXCESS)
        continue;
      if (lv->kind != EXPR_NUM && lv->kind != EXPR_PARAM)
        return bind_fail(err, lv->pos,
                         "'%s' is not a threshold: error_excess_p() is compared "
                         "with a significance level",
                         lv->name >= 0 ? e->names + lv->name : "?");
      if (!(lv->num > 0 && lv->num < 1))
        return bind_fail(err, lv->pos, "a significance level is between 0 and 1, such as 0.01");
      x->num = lv->num;
    }
    if (n->kind == EXPR_DIFF_RATIO && e->nodes[n->a].kind != EXPR_NUM &&
        e->nodes[n->a].kind != EXPR_PARAM)
      return bind_fail(err, e->nodes[n->a].pos, "the tolerance '%s' is not a threshold",
                       e->names + e->nodes[n->a].name);
    if (n->kind == EXPR_DIFF_RATIO && e->nodes[n->a].num < 0)
      return bind_fail(err, e->nodes[n->a].pos, "the tolerance '%s' is negative",
                       e->nodes[n->a].name >= 0 ? e->names + e->nodes[n->a].name : "?");
  }
  e->bound = true;
  return CANARY_OK;
}
