/* canaryctl: the command line for people and CI. Dispatches to one function per subcommand. */
#include <stdio.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_emit.h"
#include "app/app_plan.h"
#include "app/app_simulate.h"

struct subcommand {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};

static const struct subcommand subcommands[] = {
    {"simulate", app_simulate, "run the plan on a JSON Lines file of events in virtual time"},
    {"plan", app_plan, "check or show a plan file (YAML, or the seed's feature-flag JSON)"},
    {"emit", app_emit, "produce contract events (from flags or JSON Lines) to Kafka"},
};

static void usage(FILE *f) {
  fputs("usage: canaryctl COMMAND [OPTIONS]   (canaryctl COMMAND --help for details)\n\n"
        "canaryd's command line: simulate a rollout plan, check plan files, emit events.\n\ncommands:\n",
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
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    if (!strcmp(argv[1], subcommands[i].name))
      return subcommands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "canaryctl: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return EXIT_USAGE;
}
