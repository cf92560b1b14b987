/* `canaryctl plan power`: what a plan's evidence can decide at a service's traffic. */
#ifndef CANARY_APP_PLAN_POWER_H
#define CANARY_APP_PLAN_POWER_H

/* Runs the subcommand; argv[0] is "power". Returns the process exit code. */
int app_plan_power(int argc, char **argv);

#endif
