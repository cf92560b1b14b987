/* `canaryctl plan check|show [FILE]`: validate a plan file, or print what it says. */
#include "app/app_plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_plan_power.h"
#include "core/plan.h"

static const char usage[] =
    "usage: canaryctl plan check [FILE]\n"
    "       canaryctl plan show [FILE]\n"
    "       canaryctl plan power [--plan FILE] [--traffic N] ...  (plan power --help)\n"
    "\n"
    "check: load FILE (YAML, or the seed's feature-flag JSON laid over the built-in plan) and\n"
    "      report 'ok' or the first error as file:line:column: message.\n"
    "show:  print the stages, their gates and the halt rules of the plan.\n"
    "power: how long its rules take to halt a regression, its gates to pass, at a traffic.\n"
    "Without FILE, the built-in plan (config/rollout.yaml at build time) is used.\n"
    "\n"
    "Exit status: 0 valid, 1 invalid, 2 usage error.\n";

static void show_duration(const char *label, int64_t ms) {
  if (!ms)
    printf("  %s: none\n", label);
  else if (ms % 3600000 == 0)
    printf("  %s: %" PRId64 "h\n", label, ms / 3600000);
  else
    printf("  %s: %" PRId64 "s\n", label, ms / 1000);
}

static void show_gate(const char *label, const struct criterion *c, int n) {
  printf("  %s:\n", label);
  for (int i = 0; i < n; i++) {
    printf("    - %-28s %s", c[i].name, c[i].text);
    if (c[i].check == CHECK_METRIC)
      printf("  [metric: %s]", c[i].expr);
    printf("\n");
  }
  if (!n)
    printf("    (none)\n");
}

/* The seed's Day 0 - Day 4+ lists: each item by stage, how it is ticked, whether GA waits. */
static void show_checklist(const struct plan *p) {
  printf("\nchecklist: %d items%s\n", p->n_checklist,
         p->n_checklist ? " (required: the last stage is not entered while it is open)" : "");
  for (int i = 0; i < p->n_checklist; i++) {
    const struct checklist_item *c = &p->checklist[i];
    const char *stage = c->stage >= 0 && c->stage < p->n_stages ? p->stages[c->stage].name : "?";
    printf("  - %-14s %-26s %s  [%s%s%s]\n", stage, c->id, c->text,
           c->proof == PROOF_MANUAL ? "a person: canaryctl check" : checklist_proof_name(c->proof),
           c->required ? ", required" : "", c->remind ? ", reminded" : "");
  }
}

static void show(const struct plan *p) {
  printf("plan %s: %d stages, %d halt rules, %d alerts\n", p->name, p->n_stages, p->n_rules,
         p->n_alerts);
  for (int i = 0; i < p->n_stages; i++) {
    const struct stage *s = &p->stages[i];
    printf("\nstage %d: %s (%s) at %g%% — %s\n", i + 1, s->name, s->title, s->traffic_percent,
           s->users);
    show_duration("min duration", s->min_duration_ms);
    show_duration("max duration", s->max_duration_ms);
    show_gate("entry", s->entry, s->n_entry);
    show_gate("exit", s->exit, s->n_exit);
  }
  printf("\nhalt rules:\n");
  for (int i = 0; i < p->n_rules; i++)
    printf("  - %-26s %-13s %s\n", p->rules[i].name, rule_action_name(p->rules[i].action),
           p->rules[i].text);
  show_checklist(p);
}

int app_plan(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "power"))
    return app_plan_power(argc - 1, argv + 1); /* options of its own */
  if (argc < 2 || argc > 3) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    fputs(usage, stdout);
    return EXIT_OK;
  }
  if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
    fputs(usage, stdout); /* canaryctl plan show --help */
    return EXIT_OK;
  }
  bool check = !strcmp(argv[1], "check");
  if (!check && strcmp(argv[1], "show")) {
    fprintf(stderr, "canaryctl plan: unknown action '%s'\n\n%s", argv[1], usage);
    return EXIT_USAGE;
  }
  static struct plan plan;
  const char *path = argc == 3 ? argv[2] : NULL;
  if (!cli_load_plan("canaryctl plan", path, &plan))
    return EXIT_BAD_INPUT;
  if (check && plan.policy.enabled)
    printf("%s: ok (%d stages, %d halt rules, %d alerts; policy: %d actors, %d roles)\n",
           path ? path : "built-in plan", plan.n_stages, plan.n_rules, plan.n_alerts,
           plan.policy.n_actors, plan.policy.n_roles);
  else if (check)
    printf("%s: ok (%d stages, %d halt rules, %d alerts; no policy: commands unverified)\n",
           path ? path : "built-in plan", plan.n_stages, plan.n_rules, plan.n_alerts);
  else
    show(&plan);
  if (!check) {
    printf("\n");
    cli_policy_line(stdout, &plan, path);
  }
  return EXIT_OK;
}
