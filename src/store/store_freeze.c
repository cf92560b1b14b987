/* The freeze (migrations/013_freeze.sql): read by every worker between passes, set by canaryctl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_internal.h"

static const char SQL_GET[] =
    "SELECT frozen, actor, reason, (extract(epoch FROM since) * 1000)::int8 FROM input_freeze";

/*
 * One statement, so the state and its audit row go together: the row locked FOR UPDATE gives
 * two concurrent freezes an order, and the audit says which one changed nothing. The source
 * (command_audit's key) is made unique by the transaction id: this did not come off Kafka.
 */
static const char SQL_SET[] =
    "WITH old AS (SELECT frozen FROM input_freeze FOR UPDATE), "
    "upd AS (UPDATE input_freeze SET frozen = $1::bool, actor = $2, reason = $3, since = now() "
    "        WHERE frozen <> $1::bool RETURNING 1), "
    "ins AS (INSERT INTO command_audit (source, event_id, shard, rollout, time, type, action, "
    "        actor, signature, verified, outcome, reason, detail) "
    "        SELECT 'freeze/' || txid_current(), 'freeze-' || txid_current(), -1, '', now(), "
    "        'freeze', CASE WHEN $1::bool THEN 'freeze' ELSE 'unfreeze' END, $2, 'unchecked', "
    "        false, 'accepted', $3, "
    "        CASE WHEN old.frozen = $1::bool THEN "
    "          CASE WHEN $1::bool THEN 'already frozen' ELSE 'not frozen' END "
    "        WHEN $1::bool THEN 'every worker stops applying events' "
    "        ELSE 'the workers apply events again' END FROM old) "
    "SELECT old.frozen <> $1::bool FROM old";

int store_freeze_get(store_t *s, struct store_freeze *out) {
  int rc;
  memset(out, 0, sizeof *out);
  PGresult *res = store_exec(s, "freeze", SQL_GET, 0, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) == 1) {
    out->frozen = PQgetvalue(res, 0, 0)[0] == 't';
    snprintf(out->actor, sizeof out->actor, "%s", PQgetvalue(res, 0, 1));
    snprintf(out->reason, sizeof out->reason, "%s", PQgetvalue(res, 0, 2));
    out->since_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
  }
  PQclear(res);
  return CANARY_OK;
}

int store_freeze_set(store_t *s, bool frozen, const char *actor, const char *reason,
                     bool *changed) {
  const char *values[] = {frozen ? "true" : "false", actor, reason};
  int rc;
  *changed = false;
  PGresult *res = store_exec(s, "freeze", SQL_SET, 3, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  *changed = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return CANARY_OK;
}
