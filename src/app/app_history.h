/* `canaryctl history`: a rollout's decisions with their evidence, from PostgreSQL. */
#ifndef CANARY_APP_HISTORY_H
#define CANARY_APP_HISTORY_H

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_history(int argc, char **argv);

#endif
