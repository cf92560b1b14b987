/* `canaryctl diff`: the canary-diff validation over a rollout's latest diff samples. */
#ifndef CANARY_APP_DIFF_H
#define CANARY_APP_DIFF_H

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_diff(int argc, char **argv);

#endif
