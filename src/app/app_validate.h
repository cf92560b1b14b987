/* `canaryctl validate`: the checks that stand before expanding past a stage, from PostgreSQL. */
#ifndef CANARY_APP_VALIDATE_H
#define CANARY_APP_VALIDATE_H

/* Takes argv[0] = the subcommand name and returns the exit code (app_cli.h). */
int app_validate(int argc, char **argv);

#endif
