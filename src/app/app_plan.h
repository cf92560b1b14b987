/* `canaryctl plan check|show`: load a plan and report it, or where it is wrong. */
#ifndef CANARY_APP_PLAN_H
#define CANARY_APP_PLAN_H

/* Runs the subcommand; argv[0] is "plan". Returns the process exit code. */
int app_plan(int argc, char **argv);

#endif
