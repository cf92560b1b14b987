/*
 * `canaryd notify`'s record of deliveries: a row per notification and sink, a row per attempt
 * written before the request leaves, and what each pager or status page has open (migration 009).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static const char *const state_names[] = {
#define XX(name, wire) wire,
    STORE_DELIVERY_STATE_MAP(XX)
#undef XX
};
#define N_STATES (sizeof state_names / sizeof state_names[0])

const char *store_delivery_state_name(enum store_delivery_state st) {
  return (unsigned)st < N_STATES ? state_names[st] : "?";
}

static bool state_parse(const char *s, enum store_delivery_state *out) {
  for (size_t i = 0; i < N_STATES; i++)
    if (!strcmp(s, state_names[i])) {
      *out = (enum store_delivery_state)i;
      return true;
    }
  return false;
}

int store_delivery_begin(store_t *s, const char *id, const char *sink, const char *rollout,
                         enum store_delivery_state *state, int *attempts) {
  int rc;
  const char *v[] = {id, sink, rollout};
  PGresult *res = store_exec(s, "recording a delivery",
                             "WITH ins AS (INSERT INTO notify_deliveries "
                             "(notification_id, sink, rollout, state) VALUES ($1, $2, $3, 'new') "
                             "ON CONFLICT DO NOTHING RETURNING state, attempts) "
                             "SELECT state, attempts FROM ins UNION ALL "
                             "SELECT state, attempts FROM notify_deliveries "
                             "WHERE notification_id = $1 AND sink = $2",
                             3, v, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) < 1 || !state_parse(PQgetvalue(res, 0, 0), state)) {
    store_set_error(s, "recording a delivery: %s/%s: unexpected answer", id, sink);
    PQclear(res);
    return CANARY_EIO;
  }
  *attempts = atoi(PQgetvalue(res, 0, 1));
  PQclear(res);
  return CANARY_OK;
}

int store_delivery_attempt(store_t *s, const char *id, const char *sink, int *attempt) {
  int rc;
  const char *v[] = {id, sink};
  /* One statement, so one transaction: committed (synchronous_commit=on) when it returns. */
  PGresult *res = store_exec(s, "recording an attempt",
                             "WITH d AS (UPDATE notify_deliveries SET state = 'sending', "
                             "attempts = attempts + 1, updated_at = now() "
                             "WHERE notification_id = $1 AND sink = $2 RETURNING attempts) "
                             "INSERT INTO notify_attempts (notification_id, sink, attempt) "
                             "SELECT $1, $2, attempts FROM d RETURNING attempt",
                             2, v, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) != 1) {
    store_set_error(s, "recording an attempt: %s/%s is not recorded", id, sink);
    PQclear(res);
    return CANARY_EIO;
  }
  *attempt = atoi(PQgetvalue(res, 0, 0));
  PQclear(res);
  return CANARY_OK;
}

static int exec_ok(store_t *s, const char *what, const char *sql, int n, const char *const *v) {
  int rc;
  PGresult *res = store_exec(s, what, sql, n, v, 0, PGRES_COMMAND_OK, &rc);
  PQclear(res);
  return rc;
}

static int finish_in_tx(store_t *s, const char *id, const char *sink, int attempt,
                        const char *outcome, long status, const char *detail,
                        enum store_delivery_state state, const struct store_alert_change *alert) {
  char a[16], st[24];
  snprintf(a, sizeof a, "%d", attempt);
  snprintf(st, sizeof st, "%ld", status);
  int rc;
  if (attempt > 0) {
    const char *v[] = {id, sink, a, outcome, st, detail};
    if ((rc = exec_ok(s, "recording an outcome",
                      "UPDATE notify_attempts SET finished_at = now(), outcome = $4, "
                      "status = $5, detail = $6 "
                      "WHERE notification_id = $1 AND sink = $2 AND attempt = $3",
                      6, v)))
      return rc;
  }
  const char *v[] = {id, sink, store_delivery_state_name(state), detail};
  if ((rc = exec_ok(s, "settling a delivery",
                    "UPDATE notify_deliveries SET state = $3, detail = $4, updated_at = now() "
                    "WHERE notification_id = $1 AND sink = $2",
                    4, v)))
    return rc;
  if (!alert || alert->op == STORE_ALERT_NONE)
    return CANARY_OK;
  if (alert->op == STORE_ALERT_OPEN) {
    const char *w[] = {sink, alert->key, alert->remote_id, id};
    return exec_ok(s, "opening an alert",
                   "INSERT INTO notify_alerts (sink, alert_key, remote_id, open, opened_by) "
                   "VALUES ($1, $2, $3, true, $4) ON CONFLICT (sink, alert_key) DO UPDATE SET "
                   "remote_id = COALESCE(EXCLUDED.remote_id, notify_alerts.remote_id), "
                   "open = true, opened_by = EXCLUDED.opened_by, closed_by = NULL, "
                   "updated_at = now()",
                   4, w);
  }
  const char *w[] = {sink, alert->key, id};
  return exec_ok(s, "closing an alert",
                 "UPDATE notify_alerts SET open = false, closed_by = $3, updated_at = now() "
                 "WHERE sink = $1 AND alert_key = $2",
                 3, w);
}

int store_delivery_finish(store_t *s, const char *id, const char *sink, int attempt,
                          const char *outcome, long status, const char *detail,
                          enum store_delivery_state state, const struct store_alert_change *alert) {
  int rc = store_command(s, "BEGIN", "BEGIN");
  if (rc == CANARY_OK)
    rc = finish_in_tx(s, id, sink, attempt, outcome, status, detail, state, alert);
  if (rc == CANARY_OK)
    rc = store_command(s, "COMMIT", "COMMIT");
  if (rc != CANARY_OK)
    store_abort(s);
  return rc;
}

int store_alert_get(store_t *s, const char *sink, const char *key, bool *open, char *remote_id,
                    size_t remote_len) {
  int rc;
  const char *v[] = {sink, key};
  PGresult *res = store_exec(s, "reading an alert",
                             "SELECT open, COALESCE(remote_id, '') FROM notify_alerts "
                             "WHERE sink = $1 AND alert_key = $2",
                             2, v, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  *open = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
  if (remote_id && remote_len)
    snprintf(remote_id, remote_len, "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : "");
  PQclear(res);
  return CANARY_OK;
}

/*
 * Two statements, each short: a batch of the oldest settled deliveries (the partial index of
 * migration 014 finds them), then the closed alerts. A delivery pruned is forgotten: a
 * redelivery of its notification would be sent again, which is why the retention must outlast
 * the topic's (docs/operations.md).
 */
int store_notify_prune(store_t *s, int64_t older_than_s, long batch, long *deleted) {
  char age[32], lim[32];
  snprintf(age, sizeof age, "%lld", (long long)older_than_s);
  snprintf(lim, sizeof lim, "%ld", batch);
  const char *v[] = {age, lim};
  int rc;
  *deleted = 0;
  PGresult *res = store_exec(s, "pruning deliveries",
                             "DELETE FROM notify_deliveries WHERE (notification_id, sink) IN ("
                             " SELECT notification_id, sink FROM notify_deliveries"
                             " WHERE state IN ('delivered', 'skipped')"
                             "   AND updated_at < now() - make_interval(secs => $1::float8)"
                             " ORDER BY updated_at LIMIT $2::int)",
                             2, v, 0, PGRES_COMMAND_OK, &rc);
  if (!res)
    return rc;
  *deleted = atol(PQcmdTuples(res));
  PQclear(res);
  res = store_exec(s, "pruning alerts",
                   "DELETE FROM notify_alerts WHERE NOT open"
                   " AND updated_at < now() - make_interval(secs => $1::float8)",
                   1, v, 0, PGRES_COMMAND_OK, &rc);
  PQclear(res);
  return rc;
}
