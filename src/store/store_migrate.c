/*
 * Schema migrations: the migrations/NNN_name.sql files compiled into the binary, applied in
 * order, each in its own transaction, recorded in schema_migrations with their SHA-256.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_migrations.h"

/* Session advisory lock that serialises migrators: the bytes "canaryd!" as a bigint. */
#define MIGRATE_LOCK "7161126247307240481"

struct recorded {
  int version;
  char file[128];
  char checksum[65];
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Line of the 1-based character position pos (PG_DIAG_STATEMENT_POSITION) in UTF-8 text. */
static int line_of(const char *text, long pos) {
  int line = 1;
  long chars = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if ((*p & 0xC0) == 0x80)
      continue; /* a continuation byte is not a character of its own */
    if (++chars >= pos)
      break;
    if (*p == '\n')
      line++;
  }
  return line;
}

/* Run one migration and record it, in one transaction. */
static int apply(store_t *s, const struct store_migration *m) {
  int rc = store_command(s, m->file, "BEGIN");
  if (rc)
    return rc;
  /* The simple query protocol: a file may hold many statements. */
  PGresult *res = PQexec(s->conn, m->sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    char what[160];
    if (pos)
      snprintf(what, sizeof what, "migrations/%s:%d", m->file, line_of(m->sql, atol(pos)));
    else
      snprintf(what, sizeof what, "migrations/%s", m->file);
    rc = store_fail(s, what, res);
    PQclear(res);
    store_abort(s);
    return rc;
  }
  PQclear(res);
  char version[16];
  snprintf(version, sizeof version, "%d", m->version);
  const char *values[] = {version, m->file, m->checksum};
  res = store_exec(s, m->file,
                   "INSERT INTO schema_migrations (version, name, checksum) "
                   "VALUES ($1::int, $2, $3)",
                   3, values, 0, PGRES_COMMAND_OK, &rc);
  PQclear(res);
  if (!rc)
    rc = store_command(s, m->file, "COMMIT");
  if (rc)
    store_abort(s);
  return rc;
}

static int read_recorded(store_t *s, struct recorded **out, size_t *n) {
  int rc;
  PGresult *res = store_exec(s, "migrate",
                             "SELECT version, name, checksum FROM schema_migrations "
                             "ORDER BY version",
                             0, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t rows = (size_t)PQntuples(res);
  struct recorded *r = calloc(rows ? rows : 1, sizeof *r);
  if (!r) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  for (size_t i = 0; i < rows; i++) {
    r[i].version = atoi(PQgetvalue(res, (int)i, 0));
    snprintf(r[i].file, sizeof r[i].file, "%s", PQgetvalue(res, (int)i, 1));
    snprintf(r[i].checksum, sizeof r[i].checksum, "%s", PQgetvalue(res, (int)i, 2));
  }
  PQclear(res);
  *out = r;
  *n = rows;
  return CANARY_OK;
}

static const struct recorded *find_recorded(const struct recorded *r, size_t n, int version) {
  for (size_t i = 0; i < n; i++)
    if (r[i].version == version)
      return &r[i];
  return NULL;
}

/* Everything after the lock: compare what is recorded with what is compiled in, apply the rest. */
static int migrate_locked(store_t *s, int *applied) {
  int rc = store_command(s, "migrate",
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version integer PRIMARY KEY,"
                         " name text NOT NULL,"
                         " checksum text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())");
  if (rc)
    return rc;
  struct recorded *rec = NULL;
  size_t n_rec = 0;
  if ((rc = read_recorded(s, &rec, &n_rec)))
    return rc;

  int newest = n_rec ? rec[n_rec - 1].version : 0;
  for (size_t i = 0; i < n_rec; i++) {
    bool known = false;
    for (size_t k = 0; k < store_migrations_count; k++)
      known |= store_migrations[k].version == rec[i].version;
    if (!known) /* a newer canaryd migrated this database: we may still run (rolling deploy) */
      store_logf(s, LOG_LVL_WARNING,
                 "schema_migrations records %s (version %d), which this build does not have",
                 rec[i].file, rec[i].version);
  }
  for (size_t k = 0; k < store_migrations_count && !rc; k++) {
    const struct store_migration *m = &store_migrations[k];
    const struct recorded *r = find_recorded(rec, n_rec, m->version);
    if (r) {
      if (strcmp(r->checksum, m->checksum) != 0) {
        store_set_error(s,
                        "migrations/%s: changed since it was applied (recorded sha256 %.12s..., "
                        "this build %.12s...): never edit an applied migration, add a new one",
                        m->file, r->checksum, m->checksum);
        rc = CANARY_EINVALID;
      }
      continue;
    }
    if (m->version < newest) {
      store_set_error(s,
                      "migrations/%s: version %d is older than the newest applied (%d): "
                      "renumber it after %d",
                      m->file, m->version, newest, newest);
      rc = CANARY_EINVALID;
      break;
    }
    int64_t t0 = mono_ms();
    if ((rc = apply(s, m)))
      break;
    (*applied)++;
    store_logf(s, LOG_LVL_INFO, "applied migration %s (%" PRId64 " ms)", m->file, mono_ms() - t0);
  }
  free(rec);
  return rc;
}

int store_migrate(store_t *s, int *applied) {
  *applied = 0;
  int rc;
  PGresult *res =
      store_exec(s, "migrate: advisory lock", "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0, NULL,
                 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  PQclear(res);
  rc = migrate_locked(s, applied);
  if (PQstatus(s->conn) == CONNECTION_OK) /* a lost connection released the lock already */
    PQclear(PQexec(s->conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")"));
  return rc;
}
