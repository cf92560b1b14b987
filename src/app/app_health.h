/* `canaryctl health`: follow a rollout's halt rules for a while; non-zero on a halt. */
#ifndef CANARY_APP_HEALTH_H
#define CANARY_APP_HEALTH_H

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_health(int argc, char **argv);

#endif
