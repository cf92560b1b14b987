/* `canaryctl flags`: the kill switches, global per shard and each active rollout's. */
#ifndef CANARY_APP_FLAGS_H
#define CANARY_APP_FLAGS_H

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_flags(int argc, char **argv);

#endif
