/*
 * The read side of canaryctl: `status` (rollouts, and one rollout's gates, deadlines and kill
 * switches), `history` (the transition log with its evidence) and `flags` (kill switches and
 * exposure). Everything comes from PostgreSQL, as canaryd committed it; gates are evaluated
 * by the core (rollout_gate) with the plan canaryd runs (--plan / CANARY_PLAN).
 */
#include "app/app_status.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_freeze.h"
#include "app/app_live.h"
#include "app/app_timeline.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rfc3339.h"
#include "core/engine.h"
#include "core/expr.h"

static const char status_usage[] =
    "usage: canaryctl status [ROLLOUT] [--cohort STAGE] [--list] [--json] [--plan FILE]\n"
    "                        [--pg CONNINFO] [-v]\n"
    "\n"
    "What canaryd has decided, from PostgreSQL.\n"
    "Without ROLLOUT: a table of every rollout (id, service, version, stage, state, exposure,\n"
    "time of the last decision) — unless exactly one rollout is active (neither completed nor\n"
    "rolled back), which is then shown in detail.\n"
    "With ROLLOUT: its stage, state and exposure; the entry and exit gates of its stage (and the\n"
    "next stage's entry gate while running) with every criterion as pass, fail or not evaluated\n"
    "and what was seen; the stage's minimum and maximum as times; the circuit breaker; the\n"
    "checklist (each item ticked with its evidence, who and when, or open with what it waits\n"
    "for; the required ones GA waits for); the kill switches (the rollout's own and its shard's\n"
    "global ones); the last decision.\n"
    "\n"
    "  --cohort STAGE    the entry and exit gates of STAGE instead of the current stage's\n"
    "                    (before expanding into it: what still stands in the way)\n"
    "  --list            the table even when one rollout is active\n"
    "  --json            one JSON object: {\"rollouts\":[...]} or the rollout in detail\n"
    "  --plan FILE       the plan canaryd runs [CANARY_PLAN]; default: the built-in plan\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the PostgreSQL client does\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 ok, 1 unknown rollout or bad plan, 2 usage error, 3 PostgreSQL unavailable.\n";

static const char validate_usage[] =
    "usage: canaryctl validate [ROLLOUT] --cohort STAGE [--json] [--plan FILE] [--pg CONNINFO]\n"
    "                          [-v]\n"
    "\n"
    "Before expanding past STAGE: every check that stands in the way, as canaryd last judged\n"
    "it — each criterion of STAGE's exit gate and of the next stage's entry gate (the seed's\n"
    "pre-expansion checks: error rate, SLOs for their duration, no open Sev 1-2 incident,\n"
    "positive feedback, canary diff within tolerance, approvals, as the plan words them) —\n"
    "with its value, threshold and evidence, as PASS, FAIL or INSUFFICIENT (not enough data or\n"
    "not measured yet: nothing passes on it). Without ROLLOUT the only active rollout.\n"
    "\n"
    "  --cohort STAGE    the stage to leave (required)\n"
    "  --json            one JSON object: {\"ready\":...,\"checks\":[...]}\n"
    "  --plan FILE       the plan canaryd runs [CANARY_PLAN]; default: the built-in plan\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the PostgreSQL client does\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 every check passes (ready to expand), 1 a check fails or has insufficient\n"
    "data (or an unknown rollout, a bad plan), 2 usage error, 3 PostgreSQL unavailable.\n";

static const char history_usage[] =
    "usage: canaryctl history [ROLLOUT] [--json] [--pg CONNINFO] [-v]\n"
    "\n"
    "The transition log of a rollout, oldest first: one timeline line per decision\n"
    "  TIME ROLLOUT ACTION STAGE[->STAGE] STATE [RULE] REASON\n"
    "followed by its evidence (the values it rests on), indented, one 'key: value' a line.\n"
    "Without ROLLOUT, the only active rollout.\n"
    "\n"
    "  --json            each decision as one canary.decisions JSON object per line\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the PostgreSQL client does\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 ok, 1 unknown rollout, 2 usage error, 3 PostgreSQL unavailable.\n";

static const char flags_usage[] =
    "usage: canaryctl flags [--json] [--plan FILE] [--pg CONNINFO] [--kafka BROKERS] [-v]\n"
    "\n"
    "The kill switches as canaryd committed them: the global switches of every shard (a\n"
    "shard is one partition of the input topics; a global flag.set reaches each of them),\n"
    "then every active rollout's own switches, its state and its exposure now.\n"
    "'on' = the canary may serve that cohort, 'off' = switched off (exposure 0 there).\n"
    "Shards are those of canary.commands (asked from Kafka when --kafka/CANARY_KAFKA is set)\n"
    "and those that hold rollouts.\n"
    "To change a switch: canaryctl flag set NAME true|false [ROLLOUT].\n"
    "\n"
    "  --json            one JSON object {\"global\":[...],\"rollouts\":[...]}\n"
    "  --plan FILE       the plan canaryd runs [CANARY_PLAN]; default: the built-in plan\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  --kafka BROKERS   Kafka bootstrap servers [CANARY_KAFKA]\n"
    "  -v, --verbose     log what the clients do\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 ok, 1 bad plan, 2 usage error, 3 PostgreSQL unavailable.\n";

struct ops_opts {
  const char *prog, *usage;
  const char *pg, *kafka, *plan;
  const char *rollout;
  const char *cohort;
  bool takes_cohort;
  bool json, list;
};

/* Returns -1 when parsed, else the exit code (help: EXIT_OK). */
static int parse(int argc, char **argv, struct ops_opts *o, bool takes_rollout) {
  static const struct option opts[] = {
      {"pg", required_argument, NULL, 'p'},   {"kafka", required_argument, NULL, 'k'},
      {"plan", required_argument, NULL, 'P'}, {"json", no_argument, NULL, 'j'},
      {"list", no_argument, NULL, 'l'},       {"verbose", no_argument, NULL, 'v'},
      {"cohort", required_argument, NULL, 'c'},
      {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
  int c;
  live_set_verbose(false);
  optind = 1;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'p': o->pg = optarg; break;
    case 'k': o->kafka = optarg; break;
    case 'P': o->plan = optarg; break;
    case 'j': o->json = true; break;
    case 'l': o->list = true; break;
    case 'c':
      if (!o->takes_cohort) {
        fputs(o->usage, stderr);
        return EXIT_USAGE;
      }
      o->cohort = optarg;
      break;
    case 'v': live_set_verbose(true); break;
    case 'h': fputs(o->usage, stdout); return EXIT_OK;
    default: fputs(o->usage, stderr); return EXIT_USAGE;
    }
  }
  if (takes_rollout && optind < argc)
    o->rollout = argv[optind++];
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", o->prog, argv[optind], o->usage);
    return EXIT_USAGE;
  }
  o->pg = live_env_or(o->pg, "CANARY_PG");
  o->kafka = live_env_or(o->kafka, "CANARY_KAFKA");
  o->plan = live_env_or(o->plan, "CANARY_PLAN");
  return -1;
}

/* ---- shared pieces ------------------------------------------------------------------------ */

int status_global_flags(store_t *st, const struct plan *plan, int shard, struct flags *out) {
  struct engine e;
  struct store_offsets off;
  int rc = engine_init(&e, plan);
  if (rc != CANARY_OK)
    return rc;
  rc = store_load_shard(st, shard, &e, &off);
  if (rc == CANARY_OK)
    *out = e.global;
  engine_destroy(&e);
  return rc;
}

static const char *stage_of(const struct plan *p, int stage) {
  static char buf[24];
  if (stage >= 0 && stage < p->n_stages)
    return p->stages[stage].name;
  snprintf(buf, sizeof buf, "stage#%d", stage);
  return buf;
}

/* "1h30m", "45s", "2d4h": a duration for people. */
static const char *span(int64_t ms, char *buf, size_t n) {
  int64_t s = (ms < 0 ? -ms : ms) / 1000;
  if (s >= 86400)
    snprintf(buf, n, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
  else if (s >= 3600)
    snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
  else if (s >= 60)
    snprintf(buf, n, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
  else
    snprintf(buf, n, "%" PRId64 "s", s);
  return buf;
}

/* "2026-01-05T10:00:00.000Z (in 45m00s)" or "(12m00s ago)". */
static void print_when(const char *label, int64_t at, int64_t now) {
  char t[RFC3339_MAX], d[32];
  printf("  %-15s %s (%s%s%s)\n", label, rfc3339_format(at, t), at >= now ? "in " : "",
         span(at - now, d, sizeof d), at >= now ? "" : " ago");
}

static const char *const result_names[] = {"pass", "fail", "not evaluated"};

static void json_key(struct jbuf *b, const char *k) {
  if (b->len && b->data[b->len - 1] != '{' && b->data[b->len - 1] != '[')
    jbuf_putc(b, ',');
  jbuf_string(b, k);
  jbuf_putc(b, ':');
}

/* Start an element of an array: a comma unless it is the first. */
static void json_item(struct jbuf *b) {
  if (b->len && b->data[b->len - 1] != '[')
    jbuf_putc(b, ',');
}

static void json_time_or_null(struct jbuf *b, const char *k, int64_t ms) {
  char t[RFC3339_MAX];
  json_key(b, k);
  if (ms > 0)
    jbuf_string(b, rfc3339_format(ms, t));
  else
    jbuf_null(b);
}

/* ---- readings: what canaryd last measured for a metric rule or criterion ------------------ */

static const char *const reading_kind_names[] = {"rule", "entry", "exit"};
static const char *const truth_names[] = {"false", "true", "insufficient data"};
static const char *const for_state_names[] = {"inactive", "pending", "firing"};

static const char *pick(const char *const *names, int n, int v) {
  return v >= 0 && v < n ? names[v] : "?";
}

const struct rollout_reading *status_find_reading(const struct rollout *r,
                                                  enum reading_kind kind, int stage,
                                                  const char *name) {
  for (int i = 0; i < r->n_readings; i++) {
    const struct rollout_reading *x = &r->readings[i];
    if (x->kind == (int8_t)kind && !strcmp(x->name, name) &&
        (kind == READING_RULE || x->stage == stage))
      return x;
  }
  return NULL;
}

/* What a rule's reading says, in a word: ok, pending, FIRING, insufficient data. */
static const char *reading_word(const struct rollout_reading *x) {
  if (x->state == EXPR_FOR_FIRING)
    return "FIRING";
  if (x->state == EXPR_FOR_PENDING)
    return "pending";
  return x->truth == EXPR_INSUFFICIENT ? "insufficient" : "ok";
}

static void print_value(const char *label, double v) {
  if (!isnan(v))
    printf(" %s %.6g", label, v);
}

/* "canary 0.05 baseline 0.001 threshold 0.01, window 5m00s, 4200 samples (min 100)" */
void status_print_measurement(const struct rollout_reading *x) {
  char w[32];
  print_value("canary", x->canary);
  print_value("baseline", x->baseline);
  print_value("threshold", x->threshold);
  if (!isnan(x->log_e)) { /* decided on evidence: how far it has come, not a window */
    double way = x->log_e > 0 ? 100 * x->log_e / x->log_needed : 0;
    if (x->truth == EXPR_INSUFFICIENT)
      printf(", no evidence yet (no trials)");
    else if (x->log_e >= x->log_needed)
      printf(", evidence e = %.3g: proven (needs %.3g)", exp(x->log_e), exp(x->log_needed));
    else
      printf(", evidence e = %.3g, %.0f%% of the way to %.3g (%" PRId64 " trials)",
             exp(x->log_e), way > 99 ? 99 : way, exp(x->log_needed), x->n);
    return;
  }
  printf("%s window %s, %" PRId64 " samples (min %" PRId64 ")",
         isnan(x->canary) && isnan(x->baseline) && isnan(x->threshold) ? "" : ",",
         span(x->window_ms, w, sizeof w), x->n, x->min_n);
}

static void reading_json(struct jbuf *b, const struct plan *plan,
                         const struct rollout_reading *x) {
  char t[RFC3339_MAX];
  jbuf_putc(b, '{');
  json_key(b, "name"), jbuf_string(b, x->name);
  json_key(b, "kind"), jbuf_string(b, pick(reading_kind_names, 3, x->kind));
  json_key(b, "stage"), jbuf_string(b, stage_of(plan, x->stage));
  json_key(b, "truth"), jbuf_string(b, pick(truth_names, 3, x->truth));
  json_key(b, "state"), jbuf_string(b, pick(for_state_names, 3, x->state));
  json_key(b, "canary"), jbuf_number(b, x->canary);
  json_key(b, "baseline"), jbuf_number(b, x->baseline);
  json_key(b, "threshold"), jbuf_number(b, x->threshold);
  json_key(b, "window_ms"), jbuf_int(b, x->window_ms);
  json_key(b, "samples"), jbuf_int(b, x->n);
  json_key(b, "min_samples"), jbuf_int(b, x->min_n);
  json_key(b, "evaluated_at"), jbuf_string(b, rfc3339_format(x->at_ms, t));
  json_time_or_null(b, "since", x->state == EXPR_FOR_INACTIVE ? 0 : x->since_ms);
  json_key(b, "e_value"), jbuf_number(b, isnan(x->log_e) ? NAN : exp(x->log_e));
  json_key(b, "e_value_needed"), jbuf_number(b, isnan(x->log_needed) ? NAN : exp(x->log_needed));
  jbuf_putc(b, '}');
}

/* Print and free the JSON document; false when memory ran out. */
static bool put_json(struct jbuf *b) {
  bool ok = !b->oom;
  if (ok) {
    jbuf_putc(b, '\n');
    fwrite(b->data, 1, b->len, stdout);
  } else {
    fputs("canaryctl: out of memory\n", stderr);
  }
  jbuf_free(b);
  return ok;
}

/* The last decision of a rollout into *last; false when it has none or the store fails. */
static bool last_decision(store_t *st, const char *rollout, struct decision *last) {
  struct decision *d = NULL;
  size_t n = 0;
  bool ok = store_history(st, rollout, &d, &n) == CANARY_OK && n > 0;
  if (ok)
    *last = d[n - 1];
  free(d);
  return ok;
}

/* ---- status: the table -------------------------------------------------------------------- */

void status_rollouts_json(store_t *st, const struct plan *plan,
                          const struct store_rollout_row *rows, size_t n, struct jbuf *b) {
  static struct decision last;
  jbuf_puts(b, "{\"rollouts\":[");
  for (size_t i = 0; i < n; i++) {
    const struct rollout *r = &rows[i].rollout;
    bool has_last = last_decision(st, r->id, &last);
    jbuf_puts(b, i ? ",{" : "{");
    json_key(b, "id"), jbuf_string(b, r->id);
    json_key(b, "service"), jbuf_string(b, r->service);
    json_key(b, "version"), jbuf_string(b, r->version);
    json_key(b, "stage"), jbuf_string(b, stage_of(plan, r->stage));
    json_key(b, "state"), jbuf_string(b, rollout_state_name(r->state));
    json_key(b, "exposure_percent"), jbuf_number(b, r->exposure_percent);
    json_key(b, "shard"), jbuf_int(b, rows[i].shard);
    json_time_or_null(b, "last_decision_time", has_last ? last.time_ms : 0);
    json_key(b, "last_decision");
    if (has_last)
      decision_to_json(&last, b);
    else
      jbuf_null(b);
    jbuf_putc(b, '}');
  }
  jbuf_puts(b, "]}");
}

static int status_table(const struct ops_opts *o, store_t *st, const struct plan *plan,
                        const struct store_rollout_row *rows, size_t n) {
  static struct decision last;
  if (o->json) {
    struct jbuf b;
    jbuf_init(&b);
    status_rollouts_json(st, plan, rows, n, &b);
    return put_json(&b) ? EXIT_OK : EXIT_BAD_INPUT;
  }
  if (!n) {
    printf("no rollouts yet (canaryd creates one on rollout.requested)\n");
    return EXIT_OK;
  }
  int w_id = 7, w_svc = 7, w_ver = 7, w_stage = 5;
  for (size_t i = 0; i < n; i++) {
    const struct rollout *r = &rows[i].rollout;
    int l;
    if ((l = (int)strlen(r->id)) > w_id) w_id = l;
    if ((l = (int)strlen(r->service)) > w_svc) w_svc = l;
    if ((l = (int)strlen(r->version)) > w_ver) w_ver = l;
    if ((l = (int)strlen(stage_of(plan, r->stage))) > w_stage) w_stage = l;
  }
  printf("%-*s  %-*s  %-*s  %-*s  %-11s  %8s  %s\n", w_id, "ROLLOUT", w_svc, "SERVICE", w_ver,
         "VERSION", w_stage, "STAGE", "STATE", "EXPOSURE", "LAST DECISION");
  for (size_t i = 0; i < n; i++) {
    const struct rollout *r = &rows[i].rollout;
    char t[RFC3339_MAX] = "-", pct[32];
    if (last_decision(st, r->id, &last))
      rfc3339_format(last.time_ms, t);
    snprintf(pct, sizeof pct, "%g%%", r->exposure_percent);
    printf("%-*s  %-*s  %-*s  %-*s  %-11s  %8s  %s\n", w_id, r->id, w_svc, r->service, w_ver,
           r->version, w_stage, stage_of(plan, r->stage), rollout_state_name(r->state), pct, t);
  }
  return EXIT_OK;
}

/* ---- status: one rollout ------------------------------------------------------------------ */

struct gate_view {
  int stage;
  bool exit;
  const char *role; /* "waiting", "next", "" */
  struct gate_check checks[PLAN_MAX_CRITERIA];
  int n;
  bool passed;
};

/* canaryd's last reading of a gate's criterion: metric criteria only, NULL otherwise. */
static const struct rollout_reading *criterion_reading(const struct rollout *r,
                                                       const struct gate_view *g,
                                                       const struct gate_check *c) {
  if (c->criterion->check != CHECK_METRIC)
    return NULL;
  return status_find_reading(r, g->exit ? READING_EXIT : READING_ENTRY, g->stage,
                             c->criterion->name);
}

/*
 * A gate as canaryd last judged it. The deploy-event criteria are decided again from the stored
 * rollout; a metric criterion, which needs the windows only canaryd has, takes the result of
 * canaryd's last reading of it (its measured values are printed under it).
 */
static void gate_eval(const struct rollout *r, const struct plan *plan, int64_t now,
                      struct gate_view *g) {
  g->n = rollout_gate(r, plan, g->stage, g->exit, now, g->checks, PLAN_MAX_CRITERIA);
  if (g->n > PLAN_MAX_CRITERIA)
    g->n = PLAN_MAX_CRITERIA;
  for (int k = 0; k < g->n; k++) {
    struct gate_check *c = &g->checks[k];
    if (c->criterion->check != CHECK_METRIC)
      continue;
    const struct rollout_reading *x = criterion_reading(r, g, c);
    if (!x) {
      snprintf(c->detail, sizeof c->detail, "not measured yet: %s", c->criterion->expr);
      continue;
    }
    c->result = x->state == EXPR_FOR_FIRING    ? GATE_PASS
                : x->truth == EXPR_INSUFFICIENT ? GATE_NOT_EVALUATED
                                                : GATE_FAIL;
    snprintf(c->detail, sizeof c->detail, "%s", c->criterion->expr);
  }
  g->passed = true;
  for (int k = 0; k < g->n; k++)
    g->passed &= g->checks[k].result == GATE_PASS;
}

/*
 * The gates worth showing for r at now, in the order they matter: the entry and exit gates of
 * its stage (the one it waits for marked), and the next stage's entry gate while running. With
 * cohort >= 0, the entry and exit gates of that stage instead (canary:validate --cohort).
 */
static int gates_of(const struct rollout *r, const struct plan *plan, int64_t now, int cohort,
                    struct gate_view *g) {
  int n = 0;
  if (r->stage < 0 || r->stage >= plan->n_stages)
    return 0;
  enum rollout_state st = r->state == ROLLOUT_PAUSED ? r->resume_to : r->state;
  bool live = r->state == ROLLOUT_PENDING || r->state == ROLLOUT_RUNNING;
  bool terminal = r->state == ROLLOUT_COMPLETED || r->state == ROLLOUT_ROLLED_BACK;
  int stage = cohort >= 0 ? cohort : r->stage;
  bool here = stage == r->stage;
  g[n++] = (struct gate_view){.stage = stage, .exit = false,
                              .role = here && live && st == ROLLOUT_PENDING ? "waiting" : ""};
  if (stage + 1 < plan->n_stages || plan->stages[stage].n_exit)
    g[n++] = (struct gate_view){.stage = stage, .exit = true,
                                .role = here && live && st == ROLLOUT_RUNNING ? "waiting" : ""};
  if (cohort < 0 && !terminal && st == ROLLOUT_RUNNING && r->stage + 1 < plan->n_stages)
    g[n++] = (struct gate_view){.stage = r->stage + 1, .exit = false, .role = "next"};
  for (int i = 0; i < n; i++)
    gate_eval(r, plan, now, &g[i]);
  return n;
}

struct detail {
  const struct store_rollout_row *row;
  const struct plan *plan;
  int cohort; /* -1, or the stage whose gates are asked for */
  int64_t now;
  struct flags global;
  bool has_global;
  double exposure;
  int64_t min_at, max_at; /* 0 = none */
  struct gate_view gates[3];
  int n_gates;
  struct decision last;
  bool has_last;
};

static void detail_fill(struct detail *d, store_t *st) {
  const struct rollout *r = &d->row->rollout;
  const struct plan *plan = d->plan;
  d->now = live_now_ms() > r->clock_ms ? live_now_ms() : r->clock_ms;
  d->has_global = status_global_flags(st, plan, d->row->shard, &d->global) == CANARY_OK;
  d->exposure = d->has_global ? rollout_exposure(r, plan, &d->global) : r->exposure_percent;
  bool started = r->state == ROLLOUT_RUNNING ||
                 (r->state == ROLLOUT_PAUSED && r->resume_to == ROLLOUT_RUNNING);
  if (started && r->stage < plan->n_stages) {
    const struct stage *s = &plan->stages[r->stage];
    d->min_at = s->min_duration_ms ? r->stage_started_ms + s->min_duration_ms : 0;
    d->max_at = r->stage_max_at_ms;
  }
  d->n_gates = gates_of(r, plan, d->now, d->cohort, d->gates);
  d->has_last = last_decision(st, r->id, &d->last);
}

static void flag_name(const struct plan *plan, int stage, char *buf, size_t n) {
  if (stage < 0)
    snprintf(buf, n, "system.canary.enabled");
  else
    snprintf(buf, n, "canary.cohort.%s.enabled", plan->stages[stage].name);
}

static bool flag_value(const struct flags *f, int stage) {
  return stage < 0 ? f->canary_enabled : f->cohort_enabled[stage];
}

/* The checklist as JSON: every item of the plan, ticked (with what proved it) or open. */
static void checklist_json(struct jbuf *b, const struct rollout *r, const struct plan *plan) {
  jbuf_putc(b, '[');
  for (int i = 0; i < plan->n_checklist; i++) {
    const struct checklist_item *c = &plan->checklist[i];
    const struct rollout_checked *k = rollout_checked_find(r, c->id);
    json_item(b);
    jbuf_putc(b, '{');
    json_key(b, "id"), jbuf_string(b, c->id);
    json_key(b, "text"), jbuf_string(b, c->text);
    json_key(b, "stage"), jbuf_string(b, stage_of(plan, c->stage));
    json_key(b, "required"), jbuf_bool(b, c->required);
    json_key(b, "proof"), jbuf_string(b, checklist_proof_name(c->proof));
    json_key(b, "checked"), jbuf_bool(b, k != NULL);
    json_key(b, "by");
    k ? jbuf_string(b, checked_by_name((enum checked_by)k->by)) : jbuf_null(b);
    json_time_or_null(b, "at", k ? k->at_ms : 0);
    json_key(b, "evidence");
    k ? jbuf_string(b, k->evidence) : jbuf_null(b);
    json_key(b, "actor");
    k ? jbuf_string(b, k->actor) : jbuf_null(b);
    json_key(b, "note");
    k ? jbuf_string(b, k->note) : jbuf_null(b);
    jbuf_putc(b, '}');
  }
  jbuf_putc(b, ']');
}

/* The checklist as text: what is ticked with its evidence, who and when; what is open. */
static void checklist_text(const struct rollout *r, const struct plan *plan) {
  if (plan->n_checklist == 0)
    return;
  char open_ids[400], t[RFC3339_MAX];
  int open = rollout_checklist_open(r, plan, true, open_ids, sizeof open_ids);
  int ticked = 0;
  for (int i = 0; i < plan->n_checklist; i++)
    ticked += rollout_checked_find(r, plan->checklist[i].id) != NULL;
  printf("\nchecklist: %d of %d ticked; ", ticked, plan->n_checklist);
  if (open)
    printf("%d required before %s still open: %s\n", open,
           plan->stages[plan->n_stages - 1].name, open_ids);
  else
    printf("every item required before %s is ticked\n", plan->stages[plan->n_stages - 1].name);
  for (int i = 0; i < plan->n_checklist; i++) {
    const struct checklist_item *c = &plan->checklist[i];
    const struct rollout_checked *k = rollout_checked_find(r, c->id);
    printf("  [%c] %-14s %-24s %s%s", k ? 'x' : ' ', stage_of(plan, c->stage), c->id, c->text,
           c->required ? " (required)" : "");
    if (!k) {
      printf(c->proof == PROOF_MANUAL ? ": canaryctl check %s %s\n" : ": waiting for %s\n",
             c->proof == PROOF_MANUAL ? r->id : checklist_proof_name(c->proof), c->id);
      continue;
    }
    rfc3339_format(k->at_ms, t);
    switch ((enum checked_by)k->by) {
    case CHECKED_BY_PERSON:
      printf(": checked by %s at %s%s%s (command %s)\n", k->actor, t, k->note[0] ? ": " : "",
             k->note, k->evidence);
      break;
    case CHECKED_BY_DECISION:
      printf(": decision %s%s%s at %s\n", k->evidence, k->note[0] ? ", " : "", k->note, t);
      break;
    default:
      printf(": %s %s at %s\n", k->actor, k->evidence, t);
    }
  }
}

static void detail_write(const struct detail *d, struct jbuf *b) {
  const struct rollout *r = &d->row->rollout;
  const struct plan *plan = d->plan;
  jbuf_putc(b, '{');
  json_key(b, "id"), jbuf_string(b, r->id);
  json_key(b, "service"), jbuf_string(b, r->service);
  json_key(b, "version"), jbuf_string(b, r->version);
  json_key(b, "baseline_version"), jbuf_string(b, r->baseline_version);
  json_key(b, "shard"), jbuf_int(b, d->row->shard);
  json_key(b, "state"), jbuf_string(b, rollout_state_name(r->state));
  json_key(b, "stage"), jbuf_string(b, stage_of(plan, r->stage));
  json_key(b, "stage_number"), jbuf_int(b, r->stage + 1);
  json_key(b, "stages"), jbuf_int(b, plan->n_stages);
  json_key(b, "resume_to");
  if (r->state == ROLLOUT_PAUSED)
    jbuf_string(b, rollout_state_name(r->resume_to));
  else
    jbuf_null(b);
  json_key(b, "exposure_percent"), jbuf_number(b, d->exposure);
  json_time_or_null(b, "requested", r->requested_ms);
  json_time_or_null(b, "stage_started", r->stage_started_ms);
  json_time_or_null(b, "min_duration_until", d->min_at);
  json_time_or_null(b, "max_duration_until", d->max_at);
  json_time_or_null(b, "watch_until", r->watching ? r->watch_until_ms : 0);
  json_time_or_null(b, "rolled_back", r->state == ROLLOUT_ROLLED_BACK ? r->rolled_back_ms : 0);
  json_key(b, "rollback_verification");
  if (r->state == ROLLOUT_ROLLED_BACK && r->rolled_back_ms)
    jbuf_string(b, rollback_verify_name(r->rollback_verify));
  else
    jbuf_null(b);
  json_time_or_null(b, "rollback_verified_at",
                    r->rollback_verify >= ROLLBACK_VERIFY_VERIFIED ? r->rollback_verified_ms : 0);
  json_time_or_null(b, "evaluated_at", d->now);
  json_key(b, "gates");
  jbuf_putc(b, '[');
  for (int i = 0; i < d->n_gates; i++) {
    const struct gate_view *g = &d->gates[i];
    json_item(b);
    jbuf_putc(b, '{');
    json_key(b, "stage"), jbuf_string(b, plan->stages[g->stage].name);
    json_key(b, "gate"), jbuf_string(b, g->exit ? "exit" : "entry");
    json_key(b, "waiting"), jbuf_bool(b, !strcmp(g->role, "waiting"));
    json_key(b, "next"), jbuf_bool(b, !strcmp(g->role, "next"));
    json_key(b, "passed"), jbuf_bool(b, g->passed);
    json_key(b, "criteria");
    jbuf_putc(b, '[');
    for (int k = 0; k < g->n; k++) {
      const struct gate_check *c = &g->checks[k];
      json_item(b);
      jbuf_putc(b, '{');
      json_key(b, "name"), jbuf_string(b, c->criterion->name);
      json_key(b, "check"), jbuf_string(b, check_name(c->criterion->check));
      json_key(b, "text"), jbuf_string(b, c->criterion->text);
      json_key(b, "result"), jbuf_string(b, result_names[c->result]);
      json_key(b, "detail"), jbuf_string(b, c->detail);
      const struct rollout_reading *x = criterion_reading(r, g, c);
      json_key(b, "reading");
      if (x)
        reading_json(b, plan, x);
      else
        jbuf_null(b);
      jbuf_putc(b, '}');
    }
    jbuf_puts(b, "]}");
  }
  jbuf_putc(b, ']');
  json_key(b, "halt_rules"); /* the metric halt rules as last evaluated */
  jbuf_putc(b, '[');
  for (int i = 0; i < r->n_readings; i++)
    if (r->readings[i].kind == READING_RULE) {
      json_item(b);
      reading_json(b, plan, &r->readings[i]);
    }
  jbuf_putc(b, ']');
  json_key(b, "breaker");
  jbuf_putc(b, '{');
  json_key(b, "open"), jbuf_bool(b, r->breaker_open);
  json_key(b, "consecutive_errors"), jbuf_int(b, r->breaker_errors);
  json_key(b, "threshold"), jbuf_int(b, plan->breaker_threshold);
  jbuf_putc(b, '}');
  json_key(b, "kill_switches");
  jbuf_putc(b, '[');
  for (int s = -1; s < plan->n_stages; s++) {
    char name[EVENT_FLAG_MAX];
    flag_name(plan, s, name, sizeof name);
    json_item(b);
    jbuf_putc(b, '{');
    json_key(b, "flag"), jbuf_string(b, name);
    json_key(b, "rollout"), jbuf_bool(b, flag_value(&r->flags, s));
    json_key(b, "global");
    if (d->has_global)
      jbuf_bool(b, flag_value(&d->global, s));
    else
      jbuf_null(b);
    jbuf_putc(b, '}');
  }
  jbuf_putc(b, ']');
  json_key(b, "checklist");
  checklist_json(b, r, plan);
  json_key(b, "last_decision");
  if (d->has_last)
    decision_to_json(&d->last, b);
  else
    jbuf_null(b);
  jbuf_putc(b, '}');
}

static void detail_json(const struct detail *d) {
  struct jbuf b;
  jbuf_init(&b);
  detail_write(d, &b);
  put_json(&b);
}

void status_rollout_json(store_t *st, const struct plan *plan,
                         const struct store_rollout_row *row, struct jbuf *b) {
  static struct detail d;
  memset(&d, 0, sizeof d);
  d.row = row;
  d.plan = plan;
  d.cohort = -1;
  detail_fill(&d, st);
  detail_write(&d, b);
}

/* The rollback and its verification against the plan's limit (rollback.verify_within). */
static void rollback_text(const struct rollout *r, const struct plan *plan, int64_t now) {
  if (!r->rolled_back_ms)
    return; /* stored before canaryd verified rollbacks */
  print_when("rolled back", r->rolled_back_ms, now);
  char took[32], limit[32], t[RFC3339_MAX];
  span(plan->rollback_verify_ms, limit, sizeof limit);
  switch ((enum rollback_verify)r->rollback_verify) {
  case ROLLBACK_VERIFY_WAITING:
    printf("  %-15s verifying: waiting for a green health check of %s until %s (limit %s)\n",
           "rollback", r->baseline_version,
           rfc3339_format(r->rolled_back_ms + plan->rollback_verify_ms, t), limit);
    break;
  case ROLLBACK_VERIFY_VERIFIED:
    printf("  %-15s verified: %s healthy %s after the rollback (limit %s)\n", "rollback",
           r->baseline_version, span(r->rollback_verified_ms - r->rolled_back_ms, took,
                                     sizeof took), limit);
    break;
  case ROLLBACK_VERIFY_NOT_VERIFIED:
    printf("  %-15s NOT VERIFIED: no green health check of %s within %s\n", "rollback",
           r->baseline_version, span(r->rollback_verified_ms - r->rolled_back_ms, took,
                                     sizeof took));
    break;
  case ROLLBACK_VERIFY_NONE:
  case ROLLBACK_VERIFY_COUNT:
    printf("  %-15s not verified by canaryd (no rollback.verify_within in the plan)\n",
           "rollback");
    break;
  }
}

static void detail_text(const struct detail *d) {
  const struct rollout *r = &d->row->rollout;
  const struct plan *plan = d->plan;
  char t[RFC3339_MAX], du[32];
  printf("rollout %s: %s %s (baseline %s), shard %d\n", r->id, r->service, r->version,
         r->baseline_version[0] ? r->baseline_version : "-", d->row->shard);
  printf("  %-15s %s", "state", rollout_state_name(r->state));
  if (r->state == ROLLOUT_PAUSED)
    printf(" (resume returns to %s)", rollout_state_name(r->resume_to));
  printf("\n  %-15s %s (%d of %d", "stage", stage_of(plan, r->stage), r->stage + 1,
         plan->n_stages);
  if (r->stage < plan->n_stages)
    printf(", %g%% of users", plan->stages[r->stage].traffic_percent);
  printf(")\n  %-15s %g%%%s\n", "exposure", d->exposure,
         d->exposure == 0 && r->state == ROLLOUT_RUNNING ? " (switched off: see kill switches)"
                                                         : "");
  printf("  %-15s %s\n", "requested", rfc3339_format(r->requested_ms, t));
  bool started = r->state == ROLLOUT_RUNNING ||
                 (r->state == ROLLOUT_PAUSED && r->resume_to == ROLLOUT_RUNNING);
  if (started && r->stage_started_ms) /* pending: it is the previous stage's start */
    print_when("stage started", r->stage_started_ms, d->now);
  if (d->min_at)
    print_when("minimum until", d->min_at, d->now);
  if (d->max_at)
    print_when("maximum until", d->max_at, d->now);
  if (r->state == ROLLOUT_COMPLETED && r->watching) /* rules and alerts still run: docs */
    print_when("watched until", r->watch_until_ms, d->now);
  if (r->state == ROLLOUT_ROLLED_BACK)
    rollback_text(r, plan, d->now);
  if (!d->min_at && !d->max_at && r->stage < plan->n_stages &&
      (r->state == ROLLOUT_PENDING || r->state == ROLLOUT_PAUSED)) {
    const struct stage *s = &plan->stages[r->stage];
    char mx[32];
    printf("  %-15s minimum %s, maximum %s, counted from the stage's start\n", "durations",
           s->min_duration_ms ? span(s->min_duration_ms, du, sizeof du) : "none",
           s->max_duration_ms ? span(s->max_duration_ms, mx, sizeof mx) : "none");
  }
  printf("  %-15s %s (%d consecutive error%s, trips at %d)\n", "circuit breaker",
         r->breaker_open ? "OPEN: the cohort is off until resume" : "closed", r->breaker_errors,
         r->breaker_errors == 1 ? "" : "s", plan->breaker_threshold);
  for (int i = 0; i < d->n_gates; i++) {
    const struct gate_view *g = &d->gates[i];
    printf("\n%s gate of %s%s: %s\n", g->exit ? "exit" : "entry", plan->stages[g->stage].name,
           !strcmp(g->role, "waiting") ? " (waiting for it)"
           : !strcmp(g->role, "next")  ? " (next)"
                                       : "",
           g->n == 0 ? "no criteria" : g->passed ? "passes" : "not passed");
    for (int k = 0; k < g->n; k++) {
      const struct gate_check *c = &g->checks[k];
      printf("  %-13s %-24s %s%s%s\n", result_names[c->result], c->criterion->name,
             c->criterion->text, c->detail[0] ? ": " : "", c->detail);
      const struct rollout_reading *x = criterion_reading(r, g, c);
      if (x) { /* the gate above is judged without windows; this is what canaryd measured */
        char t2[RFC3339_MAX];
        printf("  %-13s %-24s measured %s:", "", "", rfc3339_format(x->at_ms, t));
        if (x->state == EXPR_FOR_PENDING) /* true, not yet for as long as its for: asks */
          printf(" true since %s, not yet for long enough;", rfc3339_format(x->since_ms, t2));
        else
          printf(" %s;", x->truth == EXPR_INSUFFICIENT ? "insufficient data"
                         : x->state == EXPR_FOR_FIRING ? "holds"
                                                       : "does not hold");
        status_print_measurement(x);
        printf("\n");
      }
    }
  }
  bool any_rule = false;
  for (int i = 0; i < r->n_readings; i++) {
    const struct rollout_reading *x = &r->readings[i];
    if (x->kind != READING_RULE)
      continue;
    if (!any_rule) {
      printf("\nhalt rules on %s (last evaluated %s):\n", stage_of(plan, x->stage),
             rfc3339_format(x->at_ms, t));
      any_rule = true;
    }
    printf("  %-13s %-24s", reading_word(x), x->name);
    status_print_measurement(x);
    if (x->state != EXPR_FOR_INACTIVE)
      printf(", since %s", rfc3339_format(x->since_ms, t));
    printf("\n");
  }
  checklist_text(r, plan);
  printf("\nkill switches:%s\n", d->has_global ? "" : " (global ones unreadable)");
  for (int s = -1; s < plan->n_stages; s++) {
    char name[EVENT_FLAG_MAX];
    flag_name(plan, s, name, sizeof name);
    printf("  %-40s rollout %-3s  global %s\n", name, flag_value(&r->flags, s) ? "on" : "off",
           !d->has_global ? "?" : flag_value(&d->global, s) ? "on" : "off");
  }
  if (d->has_last) {
    printf("\nlast decision:\n  ");
    timeline_decision(stdout, &d->last);
  }
}

int app_status(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl status", .usage = status_usage, .takes_cohort = true};
  int code = parse(argc, argv, &o, true);
  if (code >= 0)
    return code;
  static struct plan plan;
  if (!cli_load_plan(o.prog, o.plan, &plan))
    return EXIT_BAD_INPUT;
  store_t *st;
  if ((code = live_store_open(o.prog, o.pg, &st)) != EXIT_OK)
    return code;
  struct store_rollout_row *rows = NULL;
  size_t n = 0;
  code = live_list_rollouts(o.prog, st, &rows, &n);
  if (code == EXIT_OK) {
    app_freeze_banner(st, o.json ? stderr : stdout); /* first: nothing below moves meanwhile */
    if (!o.json) { /* which policy judges commands, if any */
      cli_policy_line(stdout, &plan, o.plan);
      putchar('\n');
    }
    size_t active = 0;
    for (size_t i = 0; i < n; i++)
      active += live_is_active(&rows[i].rollout);
    int cohort = o.cohort ? plan_stage_index(&plan, o.cohort) : -1;
    if (o.cohort && cohort < 0) {
      fprintf(stderr, "%s: --cohort: '%s' is no stage of the plan\n", o.prog, o.cohort);
      code = EXIT_BAD_INPUT;
    } else if (!o.rollout && !o.cohort && (o.list || active != 1)) {
      code = status_table(&o, st, &plan, rows, n);
    } else {
      static struct detail d;
      memset(&d, 0, sizeof d);
      d.cohort = cohort;
      code = live_pick_rollout(o.prog, rows, n, o.rollout, &d.row);
      if (code == EXIT_OK) {
        d.plan = &plan;
        if (d.row->rollout.stage >= plan.n_stages)
          fprintf(stderr, "%s: %s is at stage %d but this plan has %d stages: is --plan the "
                  "plan canaryd runs?\n", o.prog, d.row->rollout.id, d.row->rollout.stage + 1,
                  plan.n_stages);
        detail_fill(&d, st);
        if (o.json)
          detail_json(&d);
        else
          detail_text(&d);
      }
    }
  }
  free(rows);
  store_close(st);
  return code;
}

/* ---- validate ----------------------------------------------------------------------------- */

static const char *const verdict_names[] = {"PASS", "FAIL", "INSUFFICIENT"};

/* PASS, FAIL or INSUFFICIENT: a check that failed only for want of data or evidence is the
 * last (GATE_NOT_EVALUATED, or a metric criterion on the passing side but unproven). */
static int verdict_of(const struct gate_check *c) {
  if (c->result == GATE_PASS)
    return 0;
  return c->result == GATE_NOT_EVALUATED || c->unproven ? 2 : 1;
}

/* The gates validate reads: STAGE's exit gate, then the next stage's entry gate. */
static int validate_gates(const struct rollout *r, const struct plan *plan, int64_t now,
                          int stage, struct gate_view *g) {
  int n = 0;
  g[n++] = (struct gate_view){.stage = stage, .exit = true, .role = ""};
  if (stage + 1 < plan->n_stages)
    g[n++] = (struct gate_view){.stage = stage + 1, .exit = false, .role = ""};
  for (int i = 0; i < n; i++)
    gate_eval(r, plan, now, &g[i]);
  return n;
}

static void validate_text(const struct rollout *r, const struct plan *plan,
                          const struct gate_view *g, int n_g, int stage, int failing) {
  int total = 0;
  for (int i = 0; i < n_g; i++)
    total += g[i].n;
  printf("validate %s before leaving %s%s%s: %s", r->id, plan->stages[stage].name,
         stage + 1 < plan->n_stages ? " for " : "",
         stage + 1 < plan->n_stages ? plan->stages[stage + 1].name : "",
         failing ? "NOT READY" : "ready");
  if (failing)
    printf(" (%d of %d checks not passed)", failing, total);
  printf("\n");
  for (int i = 0; i < n_g; i++)
    for (int k = 0; k < g[i].n; k++) {
      const struct gate_check *c = &g[i].checks[k];
      char gate[PLAN_NAME_MAX + 8];
      snprintf(gate, sizeof gate, "%s %s", g[i].exit ? "exit" : "entry",
               plan->stages[g[i].stage].name);
      printf("  %-12s %-20s %-24s %s%s%s\n", verdict_names[verdict_of(c)], gate,
             c->criterion->name, c->criterion->text, c->detail[0] ? ": " : "", c->detail);
      const struct rollout_reading *x = criterion_reading(r, &g[i], c);
      if (x) {
        char t[RFC3339_MAX];
        printf("  %-12s %-20s %-24s measured %s:", "", "", "", rfc3339_format(x->at_ms, t));
        status_print_measurement(x);
        printf("\n");
      }
    }
}

static bool validate_json(const struct rollout *r, const struct plan *plan,
                          const struct gate_view *g, int n_g, int stage, int failing) {
  struct jbuf b;
  jbuf_init(&b);
  jbuf_putc(&b, '{');
  json_key(&b, "rollout"), jbuf_string(&b, r->id);
  json_key(&b, "cohort"), jbuf_string(&b, plan->stages[stage].name);
  json_key(&b, "next");
  if (stage + 1 < plan->n_stages)
    jbuf_string(&b, plan->stages[stage + 1].name);
  else
    jbuf_null(&b);
  json_key(&b, "ready"), jbuf_bool(&b, failing == 0);
  json_key(&b, "checks");
  jbuf_putc(&b, '[');
  bool first = true;
  for (int i = 0; i < n_g; i++)
    for (int k = 0; k < g[i].n; k++) {
      const struct gate_check *c = &g[i].checks[k];
      if (!first)
        jbuf_putc(&b, ',');
      first = false;
      jbuf_putc(&b, '{');
      json_key(&b, "gate"), jbuf_string(&b, g[i].exit ? "exit" : "entry");
      json_key(&b, "stage"), jbuf_string(&b, plan->stages[g[i].stage].name);
      json_key(&b, "check"), jbuf_string(&b, c->criterion->name);
      json_key(&b, "text"), jbuf_string(&b, c->criterion->text);
      json_key(&b, "result"), jbuf_string(&b, verdict_names[verdict_of(c)]);
      json_key(&b, "detail"), jbuf_string(&b, c->detail);
      const struct rollout_reading *x = criterion_reading(r, &g[i], c);
      json_key(&b, "reading");
      if (x)
        reading_json(&b, plan, x);
      else
        jbuf_null(&b);
      jbuf_putc(&b, '}');
    }
  jbuf_puts(&b, "]}");
  return put_json(&b);
}

int app_validate(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl validate", .usage = validate_usage, .takes_cohort = true};
  int code = parse(argc, argv, &o, true);
  if (code >= 0)
    return code;
  if (!o.cohort) {
    fprintf(stderr, "%s: --cohort STAGE is required (the stage to leave)\n\n%s", o.prog,
            validate_usage);
    return EXIT_USAGE;
  }
  static struct plan plan;
  if (!cli_load_plan(o.prog, o.plan, &plan))
    return EXIT_BAD_INPUT;
  int stage = plan_stage_index(&plan, o.cohort);
  if (stage < 0) {
    fprintf(stderr, "%s: --cohort: '%s' is no stage of the plan\n", o.prog, o.cohort);
    return EXIT_BAD_INPUT;
  }
  store_t *st;
  if ((code = live_store_open(o.prog, o.pg, &st)) != EXIT_OK)
    return code;
  static struct store_rollout_row row;
  code = live_find_rollout(o.prog, st, o.rollout, &row);
  if (code == EXIT_OK) {
    const struct rollout *r = &row.rollout;
    int64_t now = live_now_ms() > r->clock_ms ? live_now_ms() : r->clock_ms;
    static struct gate_view g[2];
    int n_g = validate_gates(r, &plan, now, stage, g), failing = 0;
    for (int i = 0; i < n_g; i++)
      for (int k = 0; k < g[i].n; k++)
        failing += verdict_of(&g[i].checks[k]) != 0;
    if (o.json) {
      if (!validate_json(r, &plan, g, n_g, stage, failing))
        code = EXIT_BAD_INPUT;
    } else {
      validate_text(r, &plan, g, n_g, stage, failing);
    }
    if (code == EXIT_OK && failing)
      code = EXIT_BAD_INPUT;
  }
  store_close(st);
  return code;
}

/* ---- history ------------------------------------------------------------------------------ */

/* An evidence item in milliseconds: a time (post_mortem_due_ms) or a duration (window_ms). */
static bool print_ms(const struct evidence_item *e) {
  size_t n = strlen(e->key);
  if (e->kind != EVIDENCE_INT || n < 3 || strcmp(e->key + n - 3, "_ms") || e->i < 0)
    return false;
  char buf[RFC3339_MAX > 32 ? RFC3339_MAX : 32];
  if (e->i >= 100000000000LL) /* after 1973: a time, not a duration */
    printf("%s\n", rfc3339_format(e->i, buf));
  else
    printf("%s\n", span(e->i, buf, sizeof buf));
  return true;
}

static void print_evidence(const struct decision *d) {
  for (int i = 0; i < d->n_evidence; i++) {
    const struct evidence_item *e = &d->evidence[i];
    printf("    %s: ", e->key);
    if (print_ms(e))
      continue;
    switch (e->kind) {
    case EVIDENCE_NUM: printf("%g\n", e->num); break;
    case EVIDENCE_INT: printf("%" PRId64 "\n", e->i); break;
    case EVIDENCE_STR: printf("%s\n", e->str); break;
    case EVIDENCE_BOOL: printf("%s\n", e->b ? "true" : "false"); break;
    }
  }
}

int app_history(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl history", .usage = history_usage};
  int code = parse(argc, argv, &o, true);
  if (code >= 0)
    return code;
  store_t *st;
  if ((code = live_store_open(o.prog, o.pg, &st)) != EXIT_OK)
    return code;
  static struct store_rollout_row row;
  code = live_find_rollout(o.prog, st, o.rollout, &row);
  struct decision *d = NULL;
  size_t nd = 0;
  if (code == EXIT_OK) {
    int rc = store_history(st, row.rollout.id, &d, &nd);
    if (rc != CANARY_OK) {
      fprintf(stderr, "%s: cannot read the history of %s: %s (%s)\n", o.prog, row.rollout.id,
              canary_strerror(rc), store_last_error(st));
      code = rc == CANARY_ENOTFOUND ? EXIT_BAD_INPUT : EXIT_UNAVAILABLE;
    }
  }
  struct jbuf b;
  jbuf_init(&b);
  for (size_t i = 0; code == EXIT_OK && i < nd; i++) {
    if (o.json) {
      jbuf_reset(&b);
      decision_to_json(&d[i], &b);
      jbuf_putc(&b, '\n');
      fwrite(b.data, 1, b.len, stdout);
    } else {
      timeline_decision(stdout, &d[i]);
      print_evidence(&d[i]);
    }
  }
  jbuf_free(&b);
  free(d);
  store_close(st);
  if (code == EXIT_OK && fflush(stdout) != 0) {
    perror(o.prog);
    return EXIT_BAD_INPUT;
  }
  return code;
}

/* ---- flags -------------------------------------------------------------------------------- */

/* The shards to show: canary.commands' partitions (when Kafka says) and those with rollouts. */
static int shards_of(const struct ops_opts *o, const struct store_rollout_row *rows, size_t n,
                     bool shard[], int max) {
  int top = -1;
  if (o->kafka) {
    bus_producer_t *p;
    if (bus_producer_new(o->kafka, "canaryctl-flags", NULL, NULL, &p) == CANARY_OK) {
      int parts = bus_partition_count(p, "canary.commands", LIVE_CONNECT_TIMEOUT_MS);
      for (int i = 0; i < parts && i < max; i++)
        shard[i] = true, top = i > top ? i : top;
      if (parts < 0)
        fprintf(stderr, "%s: Kafka did not say how many partitions canary.commands has; showing "
                "the shards that hold rollouts\n", o->prog);
      bus_producer_destroy(p);
    }
  }
  for (size_t i = 0; i < n; i++)
    if (rows[i].shard >= 0 && rows[i].shard < max) {
      shard[rows[i].shard] = true;
      top = rows[i].shard > top ? rows[i].shard : top;
    }
  return top + 1;
}

#define MAX_SHARDS_SHOWN 256

int app_flags(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl flags", .usage = flags_usage};
  int code = parse(argc, argv, &o, false);
  if (code >= 0)
    return code;
  static struct plan plan;
  if (!cli_load_plan(o.prog, o.plan, &plan))
    return EXIT_BAD_INPUT;
  store_t *st;
  if ((code = live_store_open(o.prog, o.pg, &st)) != EXIT_OK)
    return code;
  struct store_rollout_row *rows = NULL;
  size_t n = 0;
  if ((code = live_list_rollouts(o.prog, st, &rows, &n)) != EXIT_OK) {
    store_close(st);
    return code;
  }
  static bool shard[MAX_SHARDS_SHOWN];
  static struct flags global[MAX_SHARDS_SHOWN];
  static bool readable[MAX_SHARDS_SHOWN];
  int n_shards = shards_of(&o, rows, n, shard, MAX_SHARDS_SHOWN);
  for (int s = 0; s < n_shards; s++)
    if (shard[s])
      readable[s] = status_global_flags(st, &plan, s, &global[s]) == CANARY_OK;

  struct jbuf b;
  jbuf_init(&b);
  if (o.json) {
    jbuf_puts(&b, "{\"global\":[");
    for (int s = 0, first = 1; s < n_shards; s++) {
      if (!shard[s] || !readable[s])
        continue;
      jbuf_puts(&b, first ? "{" : ",{");
      first = 0;
      json_key(&b, "shard"), jbuf_int(&b, s);
      for (int k = -1; k < plan.n_stages; k++) {
        char name[EVENT_FLAG_MAX];
        flag_name(&plan, k, name, sizeof name);
        json_key(&b, name), jbuf_bool(&b, flag_value(&global[s], k));
      }
      jbuf_putc(&b, '}');
    }
    jbuf_puts(&b, "],\"rollouts\":[");
    for (size_t i = 0, first = 1; i < n; i++) {
      const struct rollout *r = &rows[i].rollout;
      if (!live_is_active(r))
        continue;
      jbuf_puts(&b, first ? "{" : ",{");
      first = 0;
      json_key(&b, "id"), jbuf_string(&b, r->id);
      json_key(&b, "shard"), jbuf_int(&b, rows[i].shard);
      json_key(&b, "state"), jbuf_string(&b, rollout_state_name(r->state));
      json_key(&b, "stage"), jbuf_string(&b, stage_of(&plan, r->stage));
      json_key(&b, "exposure_percent"), jbuf_number(&b, r->exposure_percent);
      for (int k = -1; k < plan.n_stages; k++) {
        char name[EVENT_FLAG_MAX];
        flag_name(&plan, k, name, sizeof name);
        json_key(&b, name), jbuf_bool(&b, flag_value(&r->flags, k));
      }
      jbuf_putc(&b, '}');
    }
    jbuf_puts(&b, "]}");
    code = put_json(&b) ? EXIT_OK : EXIT_BAD_INPUT;
  } else {
    /* One column per switch: system.canary.enabled, then each cohort by its stage name. */
    int w = 16;
    for (size_t i = 0; i < n; i++)
      if (live_is_active(&rows[i].rollout) && (int)strlen(rows[i].rollout.id) > w)
        w = (int)strlen(rows[i].rollout.id);
    printf("%-*s  %-6s", w, "SCOPE", "CANARY");
    for (int k = 0; k < plan.n_stages; k++)
      printf("  %-*s", (int)strlen(plan.stages[k].name) < 3 ? 3 : (int)strlen(plan.stages[k].name),
             plan.stages[k].name);
    printf("  %8s  %s\n", "EXPOSURE", "STATE");
    for (int s = 0; s < n_shards; s++) {
      if (!shard[s])
        continue;
      char scope[32];
      snprintf(scope, sizeof scope, "global shard %d", s);
      printf("%-*s  %-6s", w, scope, !readable[s] ? "?" : global[s].canary_enabled ? "on" : "off");
      for (int k = 0; k < plan.n_stages; k++)
        printf("  %-*s", (int)strlen(plan.stages[k].name) < 3 ? 3
                                                             : (int)strlen(plan.stages[k].name),
               !readable[s] ? "?" : global[s].cohort_enabled[k] ? "on" : "off");
      printf("  %8s  %s\n", "-", "-");
    }
    size_t active = 0;
    for (size_t i = 0; i < n; i++) {
      const struct rollout *r = &rows[i].rollout;
      if (!live_is_active(r))
        continue;
      active++;
      char pct[32];
      snprintf(pct, sizeof pct, "%g%%", r->exposure_percent);
      printf("%-*s  %-6s", w, r->id, r->flags.canary_enabled ? "on" : "off");
      for (int k = 0; k < plan.n_stages; k++)
        printf("  %-*s", (int)strlen(plan.stages[k].name) < 3 ? 3
                                                             : (int)strlen(plan.stages[k].name),
               r->flags.cohort_enabled[k] ? "on" : "off");
      printf("  %8s  %s %s (shard %d)\n", pct, rollout_state_name(r->state),
             stage_of(&plan, r->stage), rows[i].shard);
    }
    if (!active)
      printf("(no active rollouts)\n");
    printf("\nA rollout's exposure is 0 when its own switch or its shard's global switch is off\n"
           "for the canary or for the cohort it is at.\n");
    jbuf_free(&b);
  }
  free(rows);
  store_close(st);
  return code;
}
