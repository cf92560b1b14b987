/* Reading command_audit (migrations/011_command_audit.sql): who did what, for canaryctl audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_internal.h"

/* The newest `last` rows (all when last <= 0) matching the filters, oldest first. */
static const char SQL_AUDIT_LIST[] =
    "SELECT * FROM ("
    "SELECT event_id, rollout, (extract(epoch FROM time) * 1000)::int8, type, action, actor, "
    "signature, verified, outcome, reason, detail, source FROM command_audit "
    "WHERE ($1::text IS NULL OR rollout = $1) AND ($2::text IS NULL OR actor = $2) "
    "ORDER BY time DESC, source DESC LIMIT $3::int8) AS newest "
    "ORDER BY 3, 12";

static void copy(char *dst, size_t cap, const PGresult *res, int row, int col) {
  snprintf(dst, cap, "%s", PQgetvalue(res, row, col));
}

int store_audit_list(store_t *s, const char *rollout, const char *actor, long last,
                     struct store_audit_entry **out, size_t *n) {
  *out = NULL;
  *n = 0;
  char limit[24];
  snprintf(limit, sizeof limit, "%ld", last > 0 ? last : (long)1 << 62);
  const char *values[] = {rollout, actor, limit};
  int rc;
  PGresult *res = store_exec(s, "audit", SQL_AUDIT_LIST, 3, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  struct store_audit_entry *e = count ? calloc(count, sizeof *e) : NULL;
  if (count && !e) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  for (size_t i = 0; i < count; i++) {
    int r = (int)i;
    copy(e[i].event_id, sizeof e[i].event_id, res, r, 0);
    copy(e[i].rollout, sizeof e[i].rollout, res, r, 1);
    e[i].time_ms = strtoll(PQgetvalue(res, r, 2), NULL, 10);
    copy(e[i].type, sizeof e[i].type, res, r, 3);
    copy(e[i].action, sizeof e[i].action, res, r, 4);
    copy(e[i].actor, sizeof e[i].actor, res, r, 5);
    copy(e[i].signature, sizeof e[i].signature, res, r, 6);
    e[i].verified = PQgetvalue(res, r, 7)[0] == 't';
    copy(e[i].outcome, sizeof e[i].outcome, res, r, 8);
    copy(e[i].reason, sizeof e[i].reason, res, r, 9);
    copy(e[i].detail, sizeof e[i].detail, res, r, 10);
    copy(e[i].source, sizeof e[i].source, res, r, 11);
  }
  PQclear(res);
  *out = e;
  *n = count;
  return CANARY_OK;
}
