/*
 * `canaryctl status`: the rollouts, and one rollout's gates, deadlines and kill switches.
 * Everything comes from PostgreSQL, as canaryd committed it; gates are evaluated by the core
 * (rollout_gate) with the plan canaryd runs (--plan / CANARY_PLAN). Also what the read-side
 * commands share (app_status_internal.h): options and JSON pieces; the readings and gates are
 * in app_status_readings.c; validate, history and flags in app_validate.c, app_history.c and
 * app_flags.c.
 */
#include "app/app_status.h"
#include "app/app_status_internal.h"

#include <getopt.h>
#include <inttypes.h>
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

/* Returns -1 when parsed, else the exit code (help: EXIT_OK). */
int status_parse_args(int argc, char **argv, struct ops_opts *o, bool takes_rollout) {
  static const struct option opts[] = {{"pg", required_argument, NULL, 'p'},
                                       {"kafka", required_argument, NULL, 'k'},
                                       {"plan", required_argument, NULL, 'P'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"list", no_argument, NULL, 'l'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"cohort", required_argument, NULL, 'c'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  live_set_verbose(false);
  optind = 1;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'p':
      o->pg = optarg;
      break;
    case 'k':
      o->kafka = optarg;
      break;
    case 'P':
      o->plan = optarg;
      break;
    case 'j':
      o->json = true;
      break;
    case 'l':
      o->list = true;
      break;
    case 'c':
      if (!o->takes_cohort) {
        fputs(o->usage, stderr);
        return EXIT_USAGE;
      }
      o->cohort = optarg;
      break;
    case 'v':
      live_set_verbose(true);
      break;
    case 'h':
      fputs(o->usage, stdout);
      return EXIT_OK;
    default:
      fputs(o->usage, stderr);
      return EXIT_USAGE;
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

const char *status_stage_name(const struct plan *p, int stage) {
  static char buf[24];
  if (stage >= 0 && stage < p->n_stages)
    return p->stages[stage].name;
  snprintf(buf, sizeof buf, "stage#%d", stage);
  return buf;
}

/* "1h30m", "45s", "2d4h": a duration for people. */
const char *status_span(int64_t ms, char *buf, size_t n) {
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
         status_span(at - now, d, sizeof d), at >= now ? "" : " ago");
}

static const char *const result_names[] = {"pass", "fail", "not evaluated"};

void status_json_key(struct jbuf *b, const char *k) {
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

void status_json_time_or_null(struct jbuf *b, const char *k, int64_t ms) {
  char t[RFC3339_MAX];
  status_json_key(b, k);
  if (ms > 0)
    jbuf_string(b, rfc3339_format(ms, t));
  else
    jbuf_null(b);
}

/* Print and free the JSON document; false when memory ran out. */
bool status_put_json(struct jbuf *b) {
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
    status_json_key(b, "id"), jbuf_string(b, r->id);
    status_json_key(b, "service"), jbuf_string(b, r->service);
    status_json_key(b, "version"), jbuf_string(b, r->version);
    status_json_key(b, "stage"), jbuf_string(b, status_stage_name(plan, r->stage));
    status_json_key(b, "state"), jbuf_string(b, rollout_state_name(r->state));
    status_json_key(b, "exposure_percent"), jbuf_number(b, r->exposure_percent);
    status_json_key(b, "shard"), jbuf_int(b, rows[i].shard);
    status_json_time_or_null(b, "last_decision_time", has_last ? last.time_ms : 0);
    status_json_key(b, "last_decision");
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
    return status_put_json(&b) ? EXIT_OK : EXIT_BAD_INPUT;
  }
  if (!n) {
    printf("no rollouts yet (canaryd creates one on rollout.requested)\n");
    return EXIT_OK;
  }
  int w_id = 7, w_svc = 7, w_ver = 7, w_stage = 5;
  for (size_t i = 0; i < n; i++) {
    const struct rollout *r = &rows[i].rollout;
    int l;
    if ((l = (int)strlen(r->id)) > w_id)
      w_id = l;
    if ((l = (int)strlen(r->service)) > w_svc)
      w_svc = l;
    if ((l = (int)strlen(r->version)) > w_ver)
      w_ver = l;
    if ((l = (int)strlen(status_stage_name(plan, r->stage))) > w_stage)
      w_stage = l;
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
           r->version, w_stage, status_stage_name(plan, r->stage), rollout_state_name(r->state),
           pct, t);
  }
  return EXIT_OK;
}

/* ---- status: one rollout ------------------------------------------------------------------ */

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
  g[n++] = (struct gate_view){.stage = stage,
                              .exit = false,
                              .role = here && live && st == ROLLOUT_PENDING ? "waiting" : ""};
  if (stage + 1 < plan->n_stages || plan->stages[stage].n_exit)
    g[n++] = (struct gate_view){.stage = stage,
                                .exit = true,
                                .role = here && live && st == ROLLOUT_RUNNING ? "waiting" : ""};
  if (cohort < 0 && !terminal && st == ROLLOUT_RUNNING && r->stage + 1 < plan->n_stages)
    g[n++] = (struct gate_view){.stage = r->stage + 1, .exit = false, .role = "next"};
  for (int i = 0; i < n; i++)
    status_gate_eval(r, plan, now, &g[i]);
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

void status_flag_name(const struct plan *plan, int stage, char *buf, size_t n) {
  if (stage < 0)
    snprintf(buf, n, "system.canary.enabled");
  else
    snprintf(buf, n, "canary.cohort.%s.enabled", plan->stages[stage].name);
}

bool status_flag_value(const struct flags *f, int stage) {
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
    status_json_key(b, "id"), jbuf_string(b, c->id);
    status_json_key(b, "text"), jbuf_string(b, c->text);
    status_json_key(b, "stage"), jbuf_string(b, status_stage_name(plan, c->stage));
    status_json_key(b, "required"), jbuf_bool(b, c->required);
    status_json_key(b, "proof"), jbuf_string(b, checklist_proof_name(c->proof));
    status_json_key(b, "checked"), jbuf_bool(b, k != NULL);
    status_json_key(b, "by");
    k ? jbuf_string(b, checked_by_name((enum checked_by)k->by)) : jbuf_null(b);
    status_json_time_or_null(b, "at", k ? k->at_ms : 0);
    status_json_key(b, "evidence");
    k ? jbuf_string(b, k->evidence) : jbuf_null(b);
    status_json_key(b, "actor");
    k ? jbuf_string(b, k->actor) : jbuf_null(b);
    status_json_key(b, "note");
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
    printf("%d required before %s still open: %s\n", open, plan->stages[plan->n_stages - 1].name,
           open_ids);
  else
    printf("every item required before %s is ticked\n", plan->stages[plan->n_stages - 1].name);
  for (int i = 0; i < plan->n_checklist; i++) {
    const struct checklist_item *c = &plan->checklist[i];
    const struct rollout_checked *k = rollout_checked_find(r, c->id);
    printf("  [%c] %-14s %-24s %s%s", k ? 'x' : ' ', status_stage_name(plan, c->stage), c->id,
           c->text, c->required ? " (required)" : "");
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
  status_json_key(b, "id"), jbuf_string(b, r->id);
  status_json_key(b, "service"), jbuf_string(b, r->service);
  status_json_key(b, "version"), jbuf_string(b, r->version);
  status_json_key(b, "baseline_version"), jbuf_string(b, r->baseline_version);
  status_json_key(b, "shard"), jbuf_int(b, d->row->shard);
  status_json_key(b, "state"), jbuf_string(b, rollout_state_name(r->state));
  status_json_key(b, "stage"), jbuf_string(b, status_stage_name(plan, r->stage));
  status_json_key(b, "stage_number"), jbuf_int(b, r->stage + 1);
  status_json_key(b, "stages"), jbuf_int(b, plan->n_stages);
  status_json_key(b, "resume_to");
  if (r->state == ROLLOUT_PAUSED)
    jbuf_string(b, rollout_state_name(r->resume_to));
  else
    jbuf_null(b);
  status_json_key(b, "exposure_percent"), jbuf_number(b, d->exposure);
  status_json_time_or_null(b, "requested", r->requested_ms);
  status_json_time_or_null(b, "stage_started", r->stage_started_ms);
  status_json_time_or_null(b, "min_duration_until", d->min_at);
  status_json_time_or_null(b, "max_duration_until", d->max_at);
  status_json_time_or_null(b, "watch_until", r->watching ? r->watch_until_ms : 0);
  status_json_time_or_null(b, "rolled_back",
                           r->state == ROLLOUT_ROLLED_BACK ? r->rolled_back_ms : 0);
  status_json_key(b, "rollback_verification");
  if (r->state == ROLLOUT_ROLLED_BACK && r->rolled_back_ms)
    jbuf_string(b, rollback_verify_name(r->rollback_verify));
  else
    jbuf_null(b);
  status_json_time_or_null(b, "rollback_verified_at",
                           r->rollback_verify >= ROLLBACK_VERIFY_VERIFIED ? r->rollback_verified_ms
                                                                          : 0);
  status_json_time_or_null(b, "evaluated_at", d->now);
  status_json_key(b, "gates");
  jbuf_putc(b, '[');
  for (int i = 0; i < d->n_gates; i++) {
    const struct gate_view *g = &d->gates[i];
    json_item(b);
    jbuf_putc(b, '{');
    status_json_key(b, "stage"), jbuf_string(b, plan->stages[g->stage].name);
    status_json_key(b, "gate"), jbuf_string(b, g->exit ? "exit" : "entry");
    status_json_key(b, "waiting"), jbuf_bool(b, !strcmp(g->role, "waiting"));
    status_json_key(b, "next"), jbuf_bool(b, !strcmp(g->role, "next"));
    status_json_key(b, "passed"), jbuf_bool(b, g->passed);
    status_json_key(b, "criteria");
    jbuf_putc(b, '[');
    for (int k = 0; k < g->n; k++) {
      const struct gate_check *c = &g->checks[k];
      json_item(b);
      jbuf_putc(b, '{');
      status_json_key(b, "name"), jbuf_string(b, c->criterion->name);
      status_json_key(b, "check"), jbuf_string(b, check_name(c->criterion->check));
      status_json_key(b, "text"), jbuf_string(b, c->criterion->text);
      status_json_key(b, "result"), jbuf_string(b, result_names[c->result]);
      status_json_key(b, "detail"), jbuf_string(b, c->detail);
      const struct rollout_reading *x = status_criterion_reading(r, g, c);
      status_json_key(b, "reading");
      if (x)
        status_reading_json(b, plan, x);
      else
        jbuf_null(b);
      jbuf_putc(b, '}');
    }
    jbuf_puts(b, "]}");
  }
  jbuf_putc(b, ']');
  status_json_key(b, "halt_rules"); /* the metric halt rules as last evaluated */
  jbuf_putc(b, '[');
  for (int i = 0; i < r->n_readings; i++)
    if (r->readings[i].kind == READING_RULE) {
      json_item(b);
      status_reading_json(b, plan, &r->readings[i]);
    }
  jbuf_putc(b, ']');
  status_json_key(b, "breaker");
  jbuf_putc(b, '{');
  status_json_key(b, "open"), jbuf_bool(b, r->breaker_open);
  status_json_key(b, "consecutive_errors"), jbuf_int(b, r->breaker_errors);
  status_json_key(b, "threshold"), jbuf_int(b, plan->breaker_threshold);
  jbuf_putc(b, '}');
  status_json_key(b, "kill_switches");
  jbuf_putc(b, '[');
  for (int s = -1; s < plan->n_stages; s++) {
    char name[EVENT_FLAG_MAX];
    status_flag_name(plan, s, name, sizeof name);
    json_item(b);
    jbuf_putc(b, '{');
    status_json_key(b, "flag"), jbuf_string(b, name);
    status_json_key(b, "rollout"), jbuf_bool(b, status_flag_value(&r->flags, s));
    status_json_key(b, "global");
    if (d->has_global)
      jbuf_bool(b, status_flag_value(&d->global, s));
    else
      jbuf_null(b);
    jbuf_putc(b, '}');
  }
  jbuf_putc(b, ']');
  status_json_key(b, "checklist");
  checklist_json(b, r, plan);
  status_json_key(b, "last_decision");
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
  status_put_json(&b);
}

void status_rollout_json(store_t *st, const struct plan *plan, const struct store_rollout_row *row,
                         struct jbuf *b) {
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
  status_span(plan->rollback_verify_ms, limit, sizeof limit);
  switch ((enum rollback_verify)r->rollback_verify) {
  case ROLLBACK_VERIFY_WAITING:
    printf("  %-15s verifying: waiting for a green health check of %s until %s (limit %s)\n",
           "rollback", r->baseline_version,
           rfc3339_format(r->rolled_back_ms + plan->rollback_verify_ms, t), limit);
    break;
  case ROLLBACK_VERIFY_VERIFIED:
    printf("  %-15s verified: %s healthy %s after the rollback (limit %s)\n", "rollback",
           r->baseline_version,
           status_span(r->rollback_verified_ms - r->rolled_back_ms, took, sizeof took), limit);
    break;
  case ROLLBACK_VERIFY_NOT_VERIFIED:
    printf("  %-15s NOT VERIFIED: no green health check of %s within %s\n", "rollback",
           r->baseline_version,
           status_span(r->rollback_verified_ms - r->rolled_back_ms, took, sizeof took));
    break;
  case ROLLBACK_VERIFY_NONE:
  case ROLLBACK_VERIFY_COUNT:
    printf("  %-15s not verified by canaryd (no rollback.verify_within in the plan)\n", "rollback");
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
  printf("\n  %-15s %s (%d of %d", "stage", status_stage_name(plan, r->stage), r->stage + 1,
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
           s->min_duration_ms ? status_span(s->min_duration_ms, du, sizeof du) : "none",
           s->max_duration_ms ? status_span(s->max_duration_ms, mx, sizeof mx) : "none");
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
           g->n == 0   ? "no criteria"
           : g->passed ? "passes"
                       : "not passed");
    for (int k = 0; k < g->n; k++) {
      const struct gate_check *c = &g->checks[k];
      printf("  %-13s %-24s %s%s%s\n", result_names[c->result], c->criterion->name,
             c->criterion->text, c->detail[0] ? ": " : "", c->detail);
      const struct rollout_reading *x = status_criterion_reading(r, g, c);
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
      printf("\nhalt rules on %s (last evaluated %s):\n", status_stage_name(plan, x->stage),
             rfc3339_format(x->at_ms, t));
      any_rule = true;
    }
    printf("  %-13s %-24s", status_reading_word(x), x->name);
    status_print_measurement(x);
    if (x->state != EXPR_FOR_INACTIVE)
      printf(", since %s", rfc3339_format(x->since_ms, t));
    printf("\n");
  }
  checklist_text(r, plan);
  printf("\nkill switches:%s\n", d->has_global ? "" : " (global ones unreadable)");
  for (int s = -1; s < plan->n_stages; s++) {
    char name[EVENT_FLAG_MAX];
    status_flag_name(plan, s, name, sizeof name);
    printf("  %-40s rollout %-3s  global %s\n", name,
           status_flag_value(&r->flags, s) ? "on" : "off",
           !d->has_global                     ? "?"
           : status_flag_value(&d->global, s) ? "on"
                                              : "off");
  }
  if (d->has_last) {
    printf("\nlast decision:\n  ");
    timeline_decision(stdout, &d->last);
  }
}

int app_status(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl status", .usage = status_usage, .takes_cohort = true};
  int code = status_parse_args(argc, argv, &o, true);
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
    if (!o.json) {                                   /* which policy judges commands, if any */
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
          fprintf(stderr,
                  "%s: %s is at stage %d but this plan has %d stages: is --plan the "
                  "plan canaryd runs?\n",
                  o.prog, d.row->rollout.id, d.row->rollout.stage + 1, plan.n_stages);
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
