/* The migrations compiled into the binary (generated from migrations/ by the build). Private. */
#ifndef CANARY_STORE_MIGRATIONS_H
#define CANARY_STORE_MIGRATIONS_H

#include <stddef.h>

struct store_migration {
  int version;      /* NNN of NNN_name.sql */
  const char *file; /* "001_init.sql" */
  const char *sql;  /* the file's text, NUL-terminated */
  size_t len;
  const char *checksum; /* SHA-256 of the file, lower-case hex */
};

/* In ascending version order. */
extern const struct store_migration store_migrations[];
extern const size_t store_migrations_count;

#endif
