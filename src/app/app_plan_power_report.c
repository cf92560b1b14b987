/*
 * `canaryctl plan power`, the report: the rows of the model (app_plan_power_model.c) and the
 * plan's false-halt budget, as a table per stage or as one JSON document.
 */
#include "app/app_plan_power_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "codec/json.h"
#include "core/evidence.h"
#include "core/metric_store.h"

/* --- formatting ------------------------------------------------------------------------------- */

/* 0, 45m, 2h, 1h05m; "never" for INFINITY. */
static const char *fmt_minutes(double m, char *buf, size_t len) {
  if (!isfinite(m))
    return snprintf(buf, len, "never"), buf;
  long long v = llround(m);
  if (v == 0)
    snprintf(buf, len, "0");
  else if (v < 60)
    snprintf(buf, len, "%lldm", v);
  else if (v % 60 == 0)
    snprintf(buf, len, "%lldh", v / 60);
  else
    snprintf(buf, len, "%lldh%02lldm", v / 60, v % 60);
  return buf;
}

/* 1,234,567 (three significant digits under 100: expected counts are fractional). */
static const char *fmt_count(double v, char *buf, size_t len) {
  if (!(v < 1e15)) {
    snprintf(buf, len, "%g", v);
    return buf;
  }
  if (v < 100) {
    snprintf(buf, len, "%.3g", v);
    return buf;
  }
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%.0f", v), o = 0;
  for (int i = 0; i < n && o + 2 < (int)len; i++) {
    if (i && (n - i) % 3 == 0)
      buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = 0;
  return buf;
}

/* 0.1%, 0.05%, 1% */
static const char *fmt_pct(double v, char *buf, size_t len) {
  snprintf(buf, len, "%.3g%%", v * 100);
  return buf;
}

/* What a gate counts: its divisor ("requests"), or values. */
static const char *trial_unit(const struct expr_evq *q) { return q->quantile ? "values" : q->den; }

/* Who a row is, in a sentence: "halt rule error_rate", "beta entry slos_24h (SLO availability)". */
static const char *who(const struct power *w, const struct row *r, char *buf, size_t len) {
  if (!r->gate)
    snprintf(buf, len, "halt rule %s", r->name);
  else
    snprintf(buf, len, "%s %s %s%s%s%s", w->p->stages[r->gate_stage].name,
             r->exit ? "exit" : "entry", r->name, r->slo ? " (SLO " : "", r->slo ? r->slo : "",
             r->slo ? ")" : "");
  return buf;
}

/* A gate that can never pass: the healthy canary is on the null's side of its comparison. */
static void warn_wrong_side(const struct power *w, const struct flow *f, const struct row *r,
                            const char *name, char *buf, size_t len) {
  const struct expr_evq *q = &r->q;
  if (q->versus_baseline && !q->quantile)
    snprintf(buf, len,
             "%s can never pass: a healthy canary's rate equals the baseline's, which "
             "is not %s %g x the baseline's",
             name, q->above ? "above" : "under", q->k * (1 + w->mp->ev.margin[f->stage]));
  else
    snprintf(buf, len, "%s can never pass: the healthy %s %g is not %s %g", name,
             q->quantile ? "share above the line" : "rate", r->healthy,
             q->above ? "above" : "under", q->quantile ? 1 - q->q : q->limit);
}

/* A gate that does not pass within its stage: how far off it is. */
static void warn_slow_gate(const struct power *w, const struct flow *f, const struct row *r,
                           const char *name, char *buf, size_t len) {
  char lim[32], a[32], b[32], traffic[PLAN_NAME_MAX + 32] = "at this traffic";
  fmt_minutes(f->limit, lim, sizeof lim);
  if (r->gate_stage != f->stage) /* an entry gate, decided on the stage before it */
    snprintf(traffic, sizeof traffic, "on %s's traffic", w->p->stages[f->stage].name);
  if (!isfinite(r->test_min) && r->need > 0)
    snprintf(buf, len, "%s cannot pass %s within %s: needs ~%s canary %s, the stage gets %s", name,
             traffic, lim, fmt_count(r->need, a, sizeof a), trial_unit(&r->q),
             fmt_count(r->gets, b, sizeof b));
  else if (!isfinite(r->test_min))
    snprintf(buf, len, "%s cannot pass %s within %s (nor in 100 times as long)", name, traffic,
             lim);
  else
    snprintf(buf, len,
             "%s cannot pass within %s: its test passes after %s, then it must hold "
             "for %s",
             name, lim, fmt_minutes(r->test_min, a, sizeof a),
             fmt_minutes(r->for_min, b, sizeof b));
}

/*
 * The warning of a row, if it has one (the text and JSON reports say the same): a halt rule
 * that cannot halt even its largest regression within the stage, a gate that cannot pass.
 */
static bool row_warning(const struct power *w, const struct flow *f, const struct row *r, char *buf,
                        size_t len) {
  if (r->missing || r->no_baseline)
    return false; /* a note, not a warning: nothing to decide on at all */
  char name[3 * PLAN_NAME_MAX + 32];
  who(w, r, name, sizeof name);
  if (r->gate) {
    if (r->wrong_side)
      warn_wrong_side(w, f, r, name, buf, len);
    else if (!isfinite(r->minutes))
      warn_slow_gate(w, f, r, name, buf, len);
    return r->wrong_side || !isfinite(r->minutes);
  }
  const struct step *last = NULL;
  for (int i = 0; i < POWER_STEPS; i++)
    if (r->steps[i].possible)
      last = &r->steps[i];
  if (!last || isfinite(last->minutes))
    return false;
  char lim[32], v[32];
  snprintf(buf, len, "%s: %s cannot halt even a %gx regression (%s %s) within %s at this traffic",
           w->p->stages[f->stage].name, name, last->mult,
           r->q.quantile ? "share above the line" : "rate", fmt_pct(last->value, v, sizeof v),
           fmt_minutes(f->limit, lim, sizeof lim));
  return true;
}

/* A row that cannot be computed at all: why, for the report. */
static bool row_note(const struct power *w, const struct flow *f, const struct row *r, char *buf,
                     size_t len) {
  char name[3 * PLAN_NAME_MAX + 32];
  who(w, r, name, sizeof name);
  if (r->missing && r->q.quantile)
    return snprintf(buf, len, "%s: needs the healthy distribution of %s (not modelled)", name,
                    r->missing),
           true;
  if (r->missing)
    return snprintf(buf, len, "%s: no healthy rate for %s (give --rates %s=V)", name, r->missing,
                    r->missing),
           true;
  if (r->no_baseline)
    return snprintf(buf, len,
                    "%s: no baseline left to compare with at %g%% (traffic_split: "
                    "complement)",
                    name, w->p->stages[f->stage].traffic_percent),
           true;
  return false;
}

/* --- the false-halt budget -------------------------------------------------------------------- */

/* A halt rule's or alert's comparisons on evidence (owner MSTORE_RULE or MSTORE_ALERT): each
 * is a test at rule_alpha (the budget's share). */
static int rule_tests(const struct power *w, enum mstore_owner owner, int rule) {
  int n = 0;
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    if (x->owner == owner && x->index == rule && x->e.alpha > 0)
      n += expr_evidence_count(&x->e); /* its own: n_evidence also counts the SLOs it reads */
  }
  return n;
}

static bool split_tested(const struct plan *p) {
  return p->srm_enabled && p->decide == PLAN_DECIDE_EVIDENCE;
}

/* The union bound: the sum of every distinct test's level (a comparison several rules make is
 * one test). */
static double union_bound(const struct power *w) {
  const struct mstore_evidence_plan *ev = &w->mp->ev;
  double sum = split_tested(w->p) ? ev->rule_alpha : 0;
  for (int k = 0; k < ev->n_distinct; k++)
    sum += ev->tests[k].q.alpha;
  return sum;
}

/* The expression that pays for comparison q of expression x when another one does (the first
 * that makes the same test); NULL when x pays for it itself. */
static const struct mstore_expr *paid_by(const struct power *w, const struct mstore_expr *x,
                                         const struct expr_evq *q) {
  int k = mstore_test_index(w->mp, q);
  if (k < 0)
    return NULL;
  const struct mstore_expr *by = &w->mp->x[w->mp->ev.tests[k].x];
  return by != x ? by : NULL;
}

/* The budget a rule's or alert's comparisons spend: those it is the first to make (*same: the
 * rule that made one of the others first, or NULL). */
static double rule_share(const struct power *w, enum mstore_owner owner, int rule,
                         const char **same) {
  double sum = 0;
  *same = NULL;
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    struct expr_evq q;
    if (x->owner != owner || x->index != rule || !(x->e.alpha > 0))
      continue;
    for (int n = 0; n < x->e.n_nodes; n++) {
      if (!expr_evidence_form(&x->e, n, &q))
        continue;
      const struct mstore_expr *by = paid_by(w, x, &q);
      if (!by)
        sum += q.alpha;
      else if (!*same)
        *same = by->name;
    }
  }
  return sum;
}

/* --- text ------------------------------------------------------------------------------------- */

/* Prints item (after ", " unless first), wrapping lines at 96 columns; *col is the column. */
static void wrap_item(FILE *out, int *col, bool first, const char *item) {
  int len = (int)strlen(item) + (first ? 1 : 2);
  if (!first)
    fputc(',', out);
  if (*col + len > 96)
    fputs("\n ", out), *col = 1;
  fprintf(out, " %s", item);
  *col += len;
}

static void text_header(const struct power *w, FILE *out) {
  const struct power_opts *o = w->o;
  char a[32];
  fprintf(out, "plan %s at %s requests/min across the service\n", w->p->name,
          fmt_count(o->traffic, a, sizeof a));
  fputs("Expected counts minute by minute, no noise. The canary gets the stage's "
        "traffic_percent of the\n",
        out);
  int col = fprintf(out, "requests, the baseline %s. Healthy rates:",
                    w->p->srm_control ? "as many (traffic_split: control)"
                                      : "the rest (traffic_split: complement)"),
      n = 0;
  for (int i = 0; i < o->n_rates; i++) {
    bool later = false; /* each name once, with its last value */
    for (int j = i + 1; j < o->n_rates; j++)
      later |= !strcmp(o->rates[i].name, o->rates[j].name);
    if (later || !strcmp(o->rates[i].name, "requests"))
      continue;
    char item[PLAN_NAME_MAX + 40];
    snprintf(item, sizeof item, "%s=%g", o->rates[i].name, o->rates[i].v);
    wrap_item(out, &col, !n++, item);
  }
  fprintf(out, ".\n%g distribution values/min per variant; dispersion %g.\n", o->values,
          o->dispersion);
  fputs("Halt rules: a regression from the stage's start, the stage-start term alone "
        "(conservative),\nthe rule's for: included. Gates: the healthy canary, its cohort "
        "alone; a quantile against the\nbaseline on exponential values, an absolute line "
        "with half the allowed share above it.\n",
        out);
}

/* The halt rules on evidence, once: their test, for: and share of the false-halt budget. */
static void text_rules(const struct power *w, FILE *out) {
  const struct mstore_evidence_plan *ev = &w->mp->ev;
  char a[32], b[32], c[32];
  fprintf(out,
          "\nhalt rules on evidence: false_halt_budget %s over %d distinct tests, a test "
          "of budget_weight 1 at %s\n",
          fmt_pct(w->p->false_halt_budget, b, sizeof b), ev->n_tests,
          fmt_pct(ev->rule_alpha, a, sizeof a));
  fprintf(out, "  %-26s %-50s %-5s %s\n", "rule", "test", "for", "share");
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    struct expr_evq q;
    bool rule = x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT;
    for (int k = 0; rule && k < x->e.n_nodes; k++) {
      if (!expr_evidence_form(&x->e, k, &q))
        continue;
      struct row r = {.name = x->name};
      power_row_init(w, &r, x, &q, 0, x->for_ms);
      const struct mstore_expr *by = paid_by(w, x, &q);
      fprintf(out, "  %-26s %-50s %-5s %s%s%s\n", x->name, r.test,
              fmt_minutes(r.for_min, b, sizeof b), by ? "" : fmt_pct(q.alpha, c, sizeof c),
              by ? "the same test as " : "", by ? by->name : "");
    }
  }
  if (split_tested(w->p))
    fprintf(out, "  %-26s %-50s %-5s %s\n", "(traffic split)", "the canary's share of requests", "",
            fmt_pct(ev->rule_alpha, c, sizeof c));
  fprintf(out,
          "expected false halts over the whole plan <= %s (union bound); gates pass at "
          "%s each.\n",
          fmt_pct(union_bound(w), a, sizeof a), fmt_pct(ev->gate_alpha, b, sizeof b));
}

static void text_halt(const struct row *r, FILE *out) {
  char t[32], n[32], cell[POWER_STEPS][64];
  for (int i = 0; i < POWER_STEPS; i++) {
    const struct step *s = &r->steps[i];
    if (!s->possible)
      snprintf(cell[i], sizeof cell[i], "-");
    else if (!isfinite(s->minutes))
      snprintf(cell[i], sizeof cell[i], "%gx never", s->mult);
    else
      snprintf(cell[i], sizeof cell[i], "%gx %s (%s)", s->mult,
               fmt_minutes(s->minutes, t, sizeof t), fmt_count(s->bad, n, sizeof n));
  }
  fprintf(out, "  %-26s %-21s %-21s %s\n", r->name, cell[0], cell[1], cell[2]);
}

/* A gate's name in its table: "exit error_rate", "beta entry slos_24h" (another stage's). */
static const char *gate_label(const struct power *w, const struct row *r, char *buf, size_t len) {
  bool own = r->gate_stage == r->cohort;
  snprintf(buf, len, "%s%s%s %s", own ? "" : w->p->stages[r->gate_stage].name, own ? "" : " ",
           r->exit ? "exit" : "entry", r->name);
  return buf;
}

static void text_gate(const struct power *w, const struct row *r, FILE *out) {
  char label[2 * PLAN_NAME_MAX + 16], t[32], n[32], h[32], cell[96];
  if (r->slo)
    snprintf(label, sizeof label, "  SLO %s", r->slo);
  else
    gate_label(w, r, label, sizeof label);
  if (r->wrong_side || !isfinite(r->minutes))
    snprintf(cell, sizeof cell, "never");
  else
    snprintf(cell, sizeof cell, "%s (~%s canary %s)", fmt_minutes(r->minutes, t, sizeof t),
             fmt_count(r->need, n, sizeof n), trial_unit(&r->q));
  snprintf(h, sizeof h, "%.3g", r->healthy);
  fprintf(out, "  %-26s %-44s %-5s %-8s %s\n", label, r->test, fmt_minutes(r->for_min, t, sizeof t),
          h, cell);
}

/* The gates decided on this stage's traffic; a slos_met() criterion heads its SLOs' rows. */
static void text_gates(const struct power *w, const struct rows *rows, FILE *out) {
  bool head = false;
  const char *group = NULL;
  for (int i = 0; i < rows->n; i++) {
    const struct row *r = &rows->v[i];
    if (!r->gate || r->missing || r->no_baseline)
      continue;
    if (!head)
      fprintf(out, "  %-26s %-44s %-5s %-8s %s\n", "gate", "test", "for", "healthy",
              "passes after"),
          head = true;
    if (r->slo && r->name != group) {
      char label[2 * PLAN_NAME_MAX + 16];
      fprintf(out, "  %s: slos_met(), every SLO:\n", gate_label(w, r, label, sizeof label));
    }
    group = r->slo ? r->name : NULL;
    text_gate(w, r, out);
  }
}

static void text_stage(const struct power *w, const struct flow *f, const struct rows *rows,
                       FILE *out) {
  const struct stage *st = &w->p->stages[f->stage];
  char a[32], b[32], c[32], d[32];
  fmt_minutes((double)st->min_duration_ms / 60000.0, a, sizeof a);
  fprintf(out, "\nstage %d %s: %g%%, ", f->stage + 1, st->name, st->traffic_percent);
  if (f->has_max)
    fprintf(out, "min %s, max %s", a, fmt_minutes(f->limit, b, sizeof b));
  else
    fprintf(out, "min %s, no max (72h shown)", a);
  fprintf(out, "; per minute: canary %s requests, baseline %s\n", fmt_count(f->canary, c, sizeof c),
          fmt_count(f->baseline, d, sizeof d));
  if (w->mp->ev.margin[f->stage] > 0 && f->baseline > 0)
    fprintf(out, "  (excess_margin: a comparison with the baseline needs %gx it here)\n",
            1 + w->mp->ev.margin[f->stage]);
  bool head = false;
  for (int i = 0; i < rows->n; i++) {
    const struct row *r = &rows->v[i];
    if (r->gate || r->missing || r->no_baseline)
      continue;
    if (!head)
      fprintf(out, "  %-26s %s\n", "halt rule",
              "regression: time to halt (canary bad events by then)"),
          head = true;
    text_halt(r, out);
  }
  text_gates(w, rows, out);
  char msg[512];
  for (int i = 0; i < rows->n; i++)
    if (row_note(w, f, &rows->v[i], msg, sizeof msg))
      fprintf(out, "  note: %s\n", msg);
  for (int i = 0; i < rows->n; i++)
    if (row_warning(w, f, &rows->v[i], msg, sizeof msg))
      fprintf(out, "  WARNING: %s\n", msg);
}

/* Metric rules and gates that are not decided on evidence: named, so their absence is seen. */
static void text_unmodelled(const struct power *w, FILE *out) {
  int col = 0, n = 0;
  for (int i = 0; i < w->mp->n; i++) {
    const struct mstore_expr *x = &w->mp->x[i];
    if (x->owner == MSTORE_SLO || x->n_evidence > 0)
      continue;
    if ((x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT) && x->k > 0)
      continue; /* a rule's name once */
    if (!n)
      col = fprintf(out, "\nmetric rules and gates not decided on evidence (not shown):") - 1;
    char item[3 * PLAN_NAME_MAX];
    if (x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT)
      snprintf(item, sizeof item, "%s", x->name);
    else
      snprintf(item, sizeof item, "%s %s %s", w->p->stages[x->stage].name,
               x->owner == MSTORE_EXIT ? "exit" : "entry", x->name);
    wrap_item(out, &col, !n++, item);
  }
  if (n)
    fputc('\n', out);
}

/* --- JSON ------------------------------------------------------------------------------------- */

/* v to 12 significant digits: 3 x 0.0002 is 0.0006 in the document, not 0.0006000000000000001. */
static void json_value(struct jbuf *b, double v) {
  char s[32];
  snprintf(s, sizeof s, "%.12g", v);
  jbuf_number(b, strtod(s, NULL));
}

static void json_minutes(struct jbuf *b, const char *key, double m) {
  jbuf_printf(b, ",\"%s\":", key);
  if (isfinite(m))
    jbuf_number(b, m);
  else
    jbuf_null(b);
}

/* Who the row is: "rule", or "stage", "gate" (entry, exit), "criterion" and "slo". */
static void json_row_common(struct jbuf *b, const struct power *w, const struct row *r) {
  if (!r->gate) {
    jbuf_puts(b, "{\"rule\":");
    jbuf_string(b, r->name);
  } else {
    jbuf_puts(b, "{\"stage\":");
    jbuf_string(b, w->p->stages[r->gate_stage].name);
    jbuf_printf(b, ",\"gate\":\"%s\",\"criterion\":", r->exit ? "exit" : "entry");
    jbuf_string(b, r->name);
    jbuf_puts(b, ",\"slo\":");
    jbuf_string(b, r->slo); /* NULL: null */
  }
  jbuf_puts(b, ",\"test\":");
  jbuf_string(b, r->test);
  jbuf_puts(b, ",\"form\":");
  jbuf_string(b, r->q.quantile ? (r->q.versus_baseline ? "quantile_versus_baseline" : "quantile")
                 : r->q.versus_baseline ? "ratio_versus_baseline"
                                        : "ratio");
  jbuf_puts(b, ",\"alpha\":");
  jbuf_number(b, r->alpha);
  jbuf_puts(b, ",\"for_minutes\":");
  jbuf_number(b, r->for_min);
}

static void json_halt(struct jbuf *b, const struct power *w, const struct row *r) {
  json_row_common(b, w, r);
  jbuf_puts(b, ",\"relative_to\":");
  jbuf_string(b, r->relative);
  jbuf_puts(b, ",\"base\":");
  jbuf_number(b, r->base);
  jbuf_puts(b, ",\"regressions\":[");
  for (int i = 0, n = 0; i < POWER_STEPS; i++) {
    const struct step *s = &r->steps[i];
    if (!s->possible)
      continue;
    jbuf_printf(b, "%s{\"multiplier\":", n++ ? "," : "");
    jbuf_number(b, s->mult);
    jbuf_puts(b, ",\"value\":");
    json_value(b, s->value);
    json_minutes(b, "minutes", s->minutes);
    jbuf_puts(b, ",\"canary_bad_events\":");
    if (isfinite(s->minutes))
      jbuf_number(b, round(s->bad * 10) / 10);
    else
      jbuf_null(b);
    jbuf_putc(b, '}');
  }
  jbuf_puts(b, "]}");
}

static void json_gate(struct jbuf *b, const struct power *w, const struct row *r) {
  json_row_common(b, w, r);
  jbuf_puts(b, ",\"healthy\":");
  json_value(b, r->healthy);
  jbuf_puts(b, ",\"passes\":");
  jbuf_bool(b, isfinite(r->minutes));
  json_minutes(b, "minutes", r->minutes);
  json_minutes(b, "test_minutes", r->test_min);
  jbuf_puts(b, ",\"trials_unit\":");
  jbuf_string(b, trial_unit(&r->q));
  jbuf_puts(b, ",\"canary_trials_needed\":");
  if (r->need > 0)
    jbuf_number(b, round(r->need));
  else
    jbuf_null(b);
  jbuf_puts(b, ",\"canary_trials_in_stage\":");
  jbuf_number(b, round(r->gets));
  jbuf_putc(b, '}');
}

/* One array of the stage's rows of a kind, or of its notes or warnings (as strings). */
enum json_part { PART_HALT, PART_GATE, PART_NOTE, PART_WARNING };

static void json_part(struct jbuf *b, const struct power *w, const struct flow *f,
                      const struct rows *rows, enum json_part part) {
  static const char *const key[] = {"halt_rules", "gates", "notes", "warnings"};
  jbuf_printf(b, ",\"%s\":[", key[part]);
  char msg[512];
  for (int i = 0, n = 0; i < rows->n; i++) {
    const struct row *r = &rows->v[i];
    bool shown = !r->missing && !r->no_baseline;
    if (part == PART_HALT && shown && !r->gate)
      jbuf_puts(b, n++ ? "," : ""), json_halt(b, w, r);
    else if (part == PART_GATE && shown && r->gate)
      jbuf_puts(b, n++ ? "," : ""), json_gate(b, w, r);
    else if ((part == PART_NOTE && row_note(w, f, r, msg, sizeof msg)) ||
             (part == PART_WARNING && row_warning(w, f, r, msg, sizeof msg)))
      jbuf_puts(b, n++ ? "," : ""), jbuf_string(b, msg);
  }
  jbuf_putc(b, ']');
}

static void json_stage(struct jbuf *b, const struct power *w, const struct flow *f,
                       const struct rows *rows) {
  const struct stage *st = &w->p->stages[f->stage];
  jbuf_puts(b, "{\"stage\":");
  jbuf_string(b, st->name);
  jbuf_puts(b, ",\"traffic_percent\":");
  jbuf_number(b, st->traffic_percent);
  jbuf_puts(b, ",\"min_minutes\":");
  jbuf_number(b, (double)st->min_duration_ms / 60000.0);
  jbuf_puts(b, ",\"max_minutes\":");
  if (f->has_max)
    jbuf_number(b, f->limit);
  else
    jbuf_null(b);
  jbuf_puts(b, ",\"canary_requests_per_minute\":");
  jbuf_number(b, f->canary);
  jbuf_puts(b, ",\"baseline_requests_per_minute\":");
  jbuf_number(b, f->baseline);
  for (int part = PART_HALT; part <= PART_WARNING; part++)
    json_part(b, w, f, rows, (enum json_part)part);
  jbuf_putc(b, '}');
}

static void json_budget(struct jbuf *b, const struct power *w) {
  const struct mstore_evidence_plan *ev = &w->mp->ev;
  jbuf_puts(b, ",\"false_halts\":{\"false_halt_budget\":");
  jbuf_number(b, w->p->false_halt_budget);
  jbuf_puts(b, ",\"union_bound\":");
  jbuf_number(b, union_bound(w));
  jbuf_printf(b, ",\"tests\":%d,\"rule_alpha\":", ev->n_tests);
  jbuf_number(b, ev->rule_alpha);
  jbuf_puts(b, ",\"shares\":[");
  int n = 0;
  for (int a = 0; a < 2; a++) /* the halt rules, then the alerts ("alert": true) */
    for (int i = 0; i < (a ? w->p->n_alerts : w->p->n_rules); i++) {
      int k = rule_tests(w, a ? MSTORE_ALERT : MSTORE_RULE, i);
      if (!k)
        continue;
      jbuf_puts(b, n++ ? ",{\"rule\":" : "{\"rule\":");
      jbuf_string(b, a ? w->p->alerts[i].name : w->p->rules[i].name);
      if (a)
        jbuf_puts(b, ",\"alert\":true");
      const char *same = NULL;
      jbuf_puts(b, ",\"share\":");
      jbuf_number(b, rule_share(w, a ? MSTORE_ALERT : MSTORE_RULE, i, &same));
      if (same) {
        jbuf_puts(b, ",\"same_test_as\":");
        jbuf_string(b, same);
      }
      jbuf_putc(b, '}');
    }
  if (split_tested(w->p)) {
    jbuf_puts(b, n ? "," : "");
    jbuf_puts(b, "{\"rule\":\"traffic_split\",\"share\":");
    jbuf_number(b, ev->rule_alpha);
    jbuf_putc(b, '}');
  }
  jbuf_puts(b, "]},\"gate_alpha\":");
  jbuf_number(b, ev->gate_alpha);
}

static void json_header(struct jbuf *b, const struct power *w) {
  const struct power_opts *o = w->o;
  jbuf_puts(b, "{\"plan\":");
  jbuf_string(b, w->p->name);
  jbuf_puts(b, ",\"traffic_per_minute\":");
  jbuf_number(b, o->traffic);
  jbuf_puts(b, ",\"values_per_minute\":");
  jbuf_number(b, o->values);
  jbuf_puts(b, ",\"dispersion\":");
  jbuf_number(b, o->dispersion);
  jbuf_puts(b, ",\"baseline\":");
  jbuf_string(b, w->p->srm_control ? "control" : "complement");
  jbuf_puts(b, ",\"rates\":{");
  for (int i = 0, n = 0; i < o->n_rates; i++) {
    bool later = false;
    for (int j = i + 1; j < o->n_rates; j++)
      later |= !strcmp(o->rates[i].name, o->rates[j].name);
    if (later)
      continue;
    jbuf_puts(b, n++ ? "," : "");
    jbuf_string(b, o->rates[i].name);
    jbuf_putc(b, ':');
    jbuf_number(b, o->rates[i].v);
  }
  jbuf_putc(b, '}');
}

/* --- the report ------------------------------------------------------------------------------- */

int power_report(const struct power *w, FILE *out) {
  struct jbuf b;
  jbuf_init(&b);
  if (w->o->json) {
    json_header(&b, w);
    json_budget(&b, w);
    jbuf_puts(&b, ",\"stages\":[");
  } else {
    text_header(w, out);
    text_rules(w, out);
  }
  bool oom = false;
  for (int s = 0, shown = 0; s < w->p->n_stages; s++) {
    if (!(w->p->stages[s].traffic_percent > 0))
      continue; /* no canary traffic: nothing is decided there */
    struct flow f = power_flow_of(w, s);
    struct rows rows = {0};
    power_stage_rows(w, &f, &rows);
    oom |= rows.oom;
    if (w->o->json)
      jbuf_puts(&b, shown++ ? "," : ""), json_stage(&b, w, &f, &rows);
    else
      text_stage(w, &f, &rows, out);
    free(rows.v);
  }
  if (w->o->json)
    jbuf_puts(&b, "]}\n");
  else
    text_unmodelled(w, out);
  oom |= b.oom;
  if (w->o->json && !oom)
    fputs(b.data, out);
  jbuf_free(&b);
  if (oom) {
    fprintf(stderr, PROG ": out of memory\n");
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}
