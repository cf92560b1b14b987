/* `canaryctl simulate`: the state machine on a JSON Lines file, in virtual time. */
#ifndef CANARY_APP_SIMULATE_H
#define CANARY_APP_SIMULATE_H

/* Runs the subcommand; argv[0] is "simulate". Returns the process exit code. */
int app_simulate(int argc, char **argv);

#endif
