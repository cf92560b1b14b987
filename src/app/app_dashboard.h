/* `canaryctl dashboard`: the read-only web dashboard (rollouts, history, gates) over PostgreSQL. */
#ifndef CANARY_APP_DASHBOARD_H
#define CANARY_APP_DASHBOARD_H

/* argv[0] = "dashboard"; serves until SIGINT or SIGTERM; returns the exit code (app_cli.h). */
int app_dashboard(int argc, char **argv);

#endif
