/*
 * `canaryctl validate`: before expanding past a stage, every check of its exit gate and of the
 * next stage's entry gate as canaryd last judged it, as PASS, FAIL or INSUFFICIENT.
 */
#include "app/app_validate.h"

#include <stdio.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/app_status_internal.h"
#include "codec/rfc3339.h"

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

static const char *const verdict_names[] = {"PASS", "FAIL", "INSUFFICIENT"};

/* PASS, FAIL or INSUFFICIENT: a check that failed only for want of data or evidence is the
 * last (GATE_NOT_EVALUATED, or a metric criterion on the passing side but unproven). */
static int verdict_of(const struct gate_check *c) {
  if (c->result == GATE_PASS)
    return 0;
  return c->result == GATE_NOT_EVALUATED || c->unproven ? 2 : 1;
}

/* The gates validate reads: STAGE's exit gate, then the next stage's entry gate. */
static int validate_gates(const struct rollout *r, const struct plan *plan, int64_t now, int stage,
                          struct gate_view *g) {
  int n = 0;
  g[n++] = (struct gate_view){.stage = stage, .exit = true, .role = ""};
  if (stage + 1 < plan->n_stages)
    g[n++] = (struct gate_view){.stage = stage + 1, .exit = false, .role = ""};
  for (int i = 0; i < n; i++)
    status_gate_eval(r, plan, now, &g[i]);
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
      printf("  %-12s %-20s %-24s %s%s%s\n", verdict_names[verdict_of(c)], gate, c->criterion->name,
             c->criterion->text, c->detail[0] ? ": " : "", c->detail);
      const struct rollout_reading *x = status_criterion_reading(r, &g[i], c);
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
  status_json_key(&b, "rollout"), jbuf_string(&b, r->id);
  status_json_key(&b, "cohort"), jbuf_string(&b, plan->stages[stage].name);
  status_json_key(&b, "next");
  if (stage + 1 < plan->n_stages)
    jbuf_string(&b, plan->stages[stage + 1].name);
  else
    jbuf_null(&b);
  status_json_key(&b, "ready"), jbuf_bool(&b, failing == 0);
  status_json_key(&b, "checks");
  jbuf_putc(&b, '[');
  bool first = true;
  for (int i = 0; i < n_g; i++)
    for (int k = 0; k < g[i].n; k++) {
      const struct gate_check *c = &g[i].checks[k];
      if (!first)
        jbuf_putc(&b, ',');
      first = false;
      jbuf_putc(&b, '{');
      status_json_key(&b, "gate"), jbuf_string(&b, g[i].exit ? "exit" : "entry");
      status_json_key(&b, "stage"), jbuf_string(&b, plan->stages[g[i].stage].name);
      status_json_key(&b, "check"), jbuf_string(&b, c->criterion->name);
      status_json_key(&b, "text"), jbuf_string(&b, c->criterion->text);
      status_json_key(&b, "result"), jbuf_string(&b, verdict_names[verdict_of(c)]);
      status_json_key(&b, "detail"), jbuf_string(&b, c->detail);
      const struct rollout_reading *x = status_criterion_reading(r, &g[i], c);
      status_json_key(&b, "reading");
      if (x)
        status_reading_json(&b, plan, x);
      else
        jbuf_null(&b);
      jbuf_putc(&b, '}');
    }
  jbuf_puts(&b, "]}");
  return status_put_json(&b);
}

int app_validate(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl validate", .usage = validate_usage, .takes_cohort = true};
  int code = status_parse_args(argc, argv, &o, true);
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
