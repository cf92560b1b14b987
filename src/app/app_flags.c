/*
 * `canaryctl flags`: the kill switches as canaryd committed them, the global ones of every
 * shard and each active rollout's own (setting one is `canaryctl flag set`, app_override.c).
 */
#include "app/app_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/app_status_internal.h"

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
        fprintf(stderr,
                "%s: Kafka did not say how many partitions canary.commands has; showing "
                "the shards that hold rollouts\n",
                o->prog);
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
  int code = status_parse_args(argc, argv, &o, false);
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
      status_json_key(&b, "shard"), jbuf_int(&b, s);
      for (int k = -1; k < plan.n_stages; k++) {
        char name[EVENT_FLAG_MAX];
        status_flag_name(&plan, k, name, sizeof name);
        status_json_key(&b, name), jbuf_bool(&b, status_flag_value(&global[s], k));
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
      status_json_key(&b, "id"), jbuf_string(&b, r->id);
      status_json_key(&b, "shard"), jbuf_int(&b, rows[i].shard);
      status_json_key(&b, "state"), jbuf_string(&b, rollout_state_name(r->state));
      status_json_key(&b, "stage"), jbuf_string(&b, status_stage_name(&plan, r->stage));
      status_json_key(&b, "exposure_percent"), jbuf_number(&b, r->exposure_percent);
      for (int k = -1; k < plan.n_stages; k++) {
        char name[EVENT_FLAG_MAX];
        status_flag_name(&plan, k, name, sizeof name);
        status_json_key(&b, name), jbuf_bool(&b, status_flag_value(&r->flags, k));
      }
      jbuf_putc(&b, '}');
    }
    jbuf_puts(&b, "]}");
    code = status_put_json(&b) ? EXIT_OK : EXIT_BAD_INPUT;
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
        printf("  %-*s",
               (int)strlen(plan.stages[k].name) < 3 ? 3 : (int)strlen(plan.stages[k].name),
               !readable[s]                  ? "?"
               : global[s].cohort_enabled[k] ? "on"
                                             : "off");
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
        printf("  %-*s",
               (int)strlen(plan.stages[k].name) < 3 ? 3 : (int)strlen(plan.stages[k].name),
               r->flags.cohort_enabled[k] ? "on" : "off");
      printf("  %8s  %s %s (shard %d)\n", pct, rollout_state_name(r->state),
             status_stage_name(&plan, r->stage), rows[i].shard);
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
