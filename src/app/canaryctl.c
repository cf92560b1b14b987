/* canaryctl: the command line for people and CI. Dispatches to one function per subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_audit.h"
#include "app/app_cli.h"
#include "bus/bus.h"
#include "app/app_dashboard.h"
#include "app/app_diff.h"
#include "app/app_dispersion.h"
#include "app/app_health.h"
#include "app/app_override.h"
#include "app/app_emit.h"
#include "app/app_flags.h"
#include "app/app_freeze.h"
#include "app/app_history.h"
#include "app/app_status.h"
#include "app/app_plan.h"
#include "app/app_rebuild.h"
#include "app/app_simulate.h"
#include "app/app_validate.h"
#include "app/app_watch.h"

struct subcommand {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};

static const struct subcommand subcommands[] = {
    {"status", app_status, "rollouts, or one rollout's gates, deadlines and kill switches"},
    {"history", app_history, "a rollout's decisions with their evidence, oldest first"},
    {"diff", app_diff,
     "the canary diff: histogram, worst samples, verdict over the latest samples"},
    {"health", app_health, "follow a rollout's halt rules for a while; non-zero on a halt"},
    {"validate", app_validate,
     "before expanding: every check of a cohort's exit and next entry gate"},
    {"pause", app_override, "stop a rollout's expansion and wait for canaryd's answer"},
    {"resume", app_override, "resume a paused or halted rollout"},
    {"promote", app_override, "go to the next stage now (--force: straight to 100%)"},
    {"rollback", app_override, "roll back: exposure 0, the baseline serves everyone"},
    {"check", app_override, "tick a checklist item of a rollout: who, when and why are kept"},
    {"flags", app_flags, "the kill switches: global per shard, and each active rollout's"},
    {"flag", app_flag_set, "flag set NAME true|false [ROLLOUT]: set a kill switch"},
    {"approve", app_approve, "approve ROLE [ROLLOUT]: grant a gate's approval (signed with --key)"},
    {"watch", app_watch, "print what canaryd publishes (decisions, notifications, splits, DLQ)"},
    {"emit", app_emit, "produce contract events (from flags or JSON Lines) to Kafka"},
    {"simulate", app_simulate, "run the plan on a JSON Lines file of events in virtual time"},
    {"plan", app_plan, "check or show a plan file, or what it can decide at a traffic (power)"},
    {"dispersion", app_dispersion,
     "what a service's releases taught about its bursts: plan entries, or --check them"},
    {"dashboard", app_dashboard,
     "serve a read-only web dashboard of the rollouts (from PostgreSQL)"},
    {"keygen", app_keygen, "make a key pair for signing commands as an actor (the policy's key)"},
    {"audit", app_audit, "every command, kill switch and approval: who, verified, outcome"},
    {"freeze", app_freeze, "emergency stop: every worker stops applying events (kept in Kafka)"},
    {"unfreeze", app_freeze, "apply events again after a freeze, from where they stopped"},
    {"rebuild", app_rebuild, "rebuild the state from the event log, compare it with the live one"},
};

static void usage(FILE *f) {
  fputs("usage: canaryctl COMMAND [OPTIONS]   (canaryctl COMMAND --help for details)\n\n"
        "canaryd's command line: operate rollouts (status, history, pause, resume, promote,\n"
        "rollback, kill switches), emit events, simulate a plan, check plan files.\n"
        "Kafka and PostgreSQL come from --kafka/--pg or CANARY_KAFKA/CANARY_PG.\n\ncommands:\n",
        f);
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
  fputs("\nExit status: 0 ok, 1 bad input or refused, 2 usage error, 3 service unavailable.\n", f);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    puts("canaryctl " CANARY_VERSION);
    return EXIT_OK;
  }
  /* Every command talks to the same installation's topics as canaryd does, the same way. */
  bus_set_topic_prefix(getenv("CANARY_TOPIC_PREFIX"));
  const char *kconfig = getenv("CANARY_KAFKA_CONFIG");
  char why[600];
  if (kconfig && *kconfig && bus_client_conf_load(kconfig, why, sizeof why) != CANARY_OK) {
    fprintf(stderr, "canaryctl: CANARY_KAFKA_CONFIG: %s\n", why);
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    if (!strcmp(argv[1], subcommands[i].name))
      return subcommands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "canaryctl: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return EXIT_USAGE;
}
