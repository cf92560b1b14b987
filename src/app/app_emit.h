/* `canaryctl emit`: contract events from flags or JSON Lines, produced to Kafka in Avro. */
#ifndef CANARY_APP_EMIT_H
#define CANARY_APP_EMIT_H

/* argv[0] is "emit". Returns the exit code (app_cli.h). */
int app_emit(int argc, char **argv);

#endif
