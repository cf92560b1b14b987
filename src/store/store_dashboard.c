/*
 * The dashboard's reads of rollout_history (migrations/010_rollout_history.sql): a rollout's
 * series as one JSON document that PostgreSQL builds (json_agg escapes every string), so that
 * any number of readers chart what the workers recorded without asking one of them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_internal.h"

/* One element per series, its points as two arrays: t (step start, ms) and v, oldest first. */
static const char SQL_SERIES[] =
    "SELECT coalesce(json_agg(json_build_object('kind', kind, 'name', name, 'stat', stat, "
    "'cohort', cohort, 'variant', variant, 't', ts, 'v', vs) "
    "ORDER BY kind, name, stat, cohort, variant), '[]')::text FROM ("
    "SELECT kind, name, stat, cohort, variant, array_agg(step_ms ORDER BY step_ms) AS ts, "
    "array_agg(value ORDER BY step_ms) AS vs FROM rollout_history "
    "WHERE rollout = $1 AND step_ms >= $2::int8 GROUP BY kind, name, stat, cohort, variant) s";

int store_history_series_json(store_t *s, const char *rollout, int64_t since_ms, struct jbuf *out) {
  char since[24];
  snprintf(since, sizeof since, "%" PRId64, since_ms);
  const char *values[] = {rollout, since};
  int rc;
  PGresult *res = store_exec(s, "history series", SQL_SERIES, 2, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) == 1)
    jbuf_puts(out, PQgetvalue(res, 0, 0));
  else
    jbuf_puts(out, "[]");
  PQclear(res);
  return out->oom ? CANARY_ENOMEM : CANARY_OK;
}

int store_history_rows(store_t *s, const char *rollout, long *rows, int64_t *oldest_ms,
                       int64_t *newest_ms) {
  const char *values[] = {rollout};
  int rc;
  PGresult *res = store_exec(s, "history rows",
                             "SELECT count(*), coalesce(min(step_ms), 0), "
                             "coalesce(max(step_ms), 0) FROM rollout_history WHERE rollout = $1",
                             1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  *rows = strtol(PQgetvalue(res, 0, 0), NULL, 10);
  *oldest_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
  *newest_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
  PQclear(res);
  return CANARY_OK;
}
