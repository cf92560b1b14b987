/* Reading command_audit (migrations/011_command_audit.sql): who did what, for canaryctl audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_internal.h"

#define AUDIT_COLUMNS                                                                              \
  "event_id, rollout, (extract(epoch FROM time) * 1000)::int8, type, action, actor, "              \
  "signature, verified, outcome, reason, detail, source"

/* The newest `last` rows (all when last <= 0) matching the filters, oldest first. */
static const char SQL_AUDIT_LIST[] =
    "SELECT * FROM ("
    "SELECT " AUDIT_COLUMNS " FROM command_audit "
    "WHERE ($1::text IS NULL OR rollout = $1) AND ($2::text IS NULL OR actor = $2) "
    "ORDER BY time DESC, source DESC LIMIT $3::int8) AS newest "
    "ORDER BY 3, 12";

/* The rows of one event id (one per shard that took it: a global kill switch goes to all). */
static const char SQL_AUDIT_OF[] =
    "SELECT " AUDIT_COLUMNS " FROM command_audit WHERE event_id = $1 ORDER BY source LIMIT 1";

static void copy(char *dst, size_t cap, const PGresult *res, int row, int col) {
  snprintf(dst, cap, "%s", PQgetvalue(res, row, col));
}

static void read_row(const PGresult *res, int r, struct store_audit_entry *e) {
  copy(e->event_id, sizeof e->event_id, res, r, 0);
  copy(e->rollout, sizeof e->rollout, res, r, 1);
  e->time_ms = strtoll(PQgetvalue(res, r, 2), NULL, 10);
  copy(e->type, sizeof e->type, res, r, 3);
  copy(e->action, sizeof e->action, res, r, 4);
  copy(e->actor, sizeof e->actor, res, r, 5);
  copy(e->signature, sizeof e->signature, res, r, 6);
  e->verified = PQgetvalue(res, r, 7)[0] == 't';
  copy(e->outcome, sizeof e->outcome, res, r, 8);
  copy(e->reason, sizeof e->reason, res, r, 9);
  copy(e->detail, sizeof e->detail, res, r, 10);
  copy(e->source, sizeof e->source, res, r, 11);
}

int store_audit_of(store_t *s, const char *event_id, struct store_audit_entry *out, bool *found) {
  const char *values[] = {event_id};
  int rc;
  *found = false;
  PGresult *res = store_exec(s, "audit", SQL_AUDIT_OF, 1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) > 0) {
    memset(out, 0, sizeof *out);
    read_row(res, 0, out);
    *found = true;
  }
  PQclear(res);
  return CANARY_OK;
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
  for (size_t i = 0; i < count; i++)
    read_row(res, (int)i, &e[i]);
  PQclear(res);
  *out = e;
  *n = count;
  return CANARY_OK;
}
