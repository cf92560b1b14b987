/*
 * `canaryctl freeze` / `canaryctl unfreeze`: the emergency stop of everything canaryd applies.
 * The flag is a row in PostgreSQL (migrations/013_freeze.sql) that every worker reads between
 * passes (worker.c check_freeze); setting it appends who and why to command_audit in the same
 * statement (store_freeze_set). The events keep arriving in Kafka and are applied, in order,
 * after the unfreeze. Why a store flag and not a command event: docs/ARCHITECTURE.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_freeze.h"
#include "app/app_live.h"
#include "codec/rfc3339.h"

static const char usage[] =
    "usage: canaryctl freeze   [--reason TEXT] [--actor NAME] [--pg CONNINFO]\n"
    "       canaryctl unfreeze [--reason TEXT] [--actor NAME] [--pg CONNINFO]\n"
    "\n"
    "freeze: every canaryd worker stops applying input events (metrics, rollout events,\n"
    "commands) and firing deadlines within 0.5 s, and stops fetching them: they stay in Kafka,\n"
    "nothing is lost or skipped. Decisions already made are still published. unfreeze: the\n"
    "workers go on from where they stopped, in order; deadlines that fell due meanwhile fire "
    "then,\n"
    "each at its own time. Both are recorded in the audit (canaryctl audit: type freeze);\n"
    "`canaryctl status` says FROZEN while it holds, /metrics has canaryd_frozen per worker and\n"
    "each worker logs when it obeys. PostgreSQL's grants decide who may: the plan's policy does\n"
    "not cover it (docs/operations.md).\n"
    "\n"
    "  --reason TEXT     why (kept in the audit and shown by status)\n"
    "  --actor NAME      who ($USER)\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 done (or already so: said on stderr), 2 usage error, 3 PostgreSQL "
    "unavailable.\n";

int app_freeze(int argc, char **argv) {
  bool freeze = !strcmp(argv[0], "freeze");
  const char *prog = freeze ? "canaryctl freeze" : "canaryctl unfreeze";
  static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
                                       {"actor", required_argument, NULL, 'a'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *reason = "", *actor = NULL, *pg = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'r':
      reason = optarg;
      break;
    case 'a':
      actor = optarg;
      break;
    case 'p':
      pg = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return EXIT_OK;
    default:
      fputs(usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", prog, argv[optind], usage);
    return EXIT_USAGE;
  }
  if (actor && !*actor) {
    fprintf(stderr, "%s: --actor: empty\n", prog);
    return EXIT_USAGE;
  }
  if (!actor)
    actor = live_env_or(live_env_or(NULL, "USER"), "LOGNAME");
  if (!actor)
    actor = "canaryctl";
  if (strlen(actor) >= sizeof((struct store_freeze *)0)->actor ||
      strlen(reason) >= sizeof((struct store_freeze *)0)->reason) {
    fprintf(stderr, "%s: --actor or --reason too long\n", prog);
    return EXIT_USAGE;
  }
  store_t *st;
  int code = live_store_open(prog, live_env_or(pg, "CANARY_PG"), &st);
  if (code != EXIT_OK)
    return code;
  bool changed;
  if (store_freeze_set(st, freeze, actor, reason, &changed) != CANARY_OK) {
    fprintf(stderr, "%s: %s\n", prog, store_last_error(st));
    store_close(st);
    return EXIT_UNAVAILABLE;
  }
  store_close(st);
  if (!changed)
    fprintf(stderr, "%s: %s (recorded in the audit)\n", prog,
            freeze ? "already frozen" : "not frozen: nothing to do");
  else if (freeze)
    printf("FROZEN: every worker stops applying events within 0.5 s; they wait in Kafka "
           "(canaryctl unfreeze to go on)\n");
  else
    printf("unfrozen: the workers apply the events that waited, in order\n");
  return EXIT_OK;
}

void app_freeze_banner(store_t *st, FILE *f) {
  struct store_freeze fr;
  if (store_freeze_get(st, &fr) != CANARY_OK || !fr.frozen)
    return; /* a store without the table (older canaryd) is not frozen */
  char when[40];
  fprintf(f, "*** FROZEN since %s by %s%s%s: no event is applied (canaryctl unfreeze) ***\n\n",
          rfc3339_format(fr.since_ms, when), fr.actor, *fr.reason ? ": " : "", fr.reason);
}
