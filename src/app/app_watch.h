/* `canaryctl watch`: print what canaryd publishes (decisions, notifications, splits, DLQ). */
#ifndef CANARY_APP_WATCH_H
#define CANARY_APP_WATCH_H

/* Runs the subcommand; argv[0] is "watch". Returns the process exit code. */
int app_watch(int argc, char **argv);

#endif
