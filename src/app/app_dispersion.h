/* `canaryctl dispersion`: a service's learned dispersion, as plan entries (docs/rules.md). */
#ifndef CANARY_APP_DISPERSION_H
#define CANARY_APP_DISPERSION_H

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_dispersion(int argc, char **argv);

#endif
