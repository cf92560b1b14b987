/* Shards: a worker's claim (a new epoch fences the old owner out) and the load of a shard's
 * rollouts, kill switches, applied event ids and offsets into an engine. */
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/metrics_json.h"
#include "codec/rollout_json.h"
#include "store/store_internal.h"

/* ---- shards ---------------------------------------------------------------------------------- */

int store_claim_shard(store_t *s, int shard, const char *worker, int64_t *epoch) {
  char sh[16];
  snprintf(sh, sizeof sh, "%d", shard);
  const char *values[] = {sh, worker ? worker : ""};
  int rc;
  PGresult *res =
      store_exec(s, "claim shard",
                 "INSERT INTO shards AS s (shard, owner, owner_epoch) VALUES ($1::int, $2, 1) "
                 "ON CONFLICT (shard) DO UPDATE SET owner = EXCLUDED.owner, "
                 "owner_epoch = s.owner_epoch + 1, claimed_at = now(), updated_at = now() "
                 "RETURNING owner_epoch",
                 2, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  *epoch = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  store_logf(s, LOG_LVL_INFO, "shard %d claimed by %s at epoch %" PRId64, shard, worker, *epoch);
  return CANARY_OK;
}

/* Big-endian int64 of a binary-format result column. */
int64_t store_get_int8(const PGresult *res, int row, int col) {
  const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return (int64_t)v;
}

static int load_rollouts(store_t *s, const char *shard, struct engine *e) {
  const char *values[] = {shard};
  int rc;
  PGresult *res = store_exec(s, "load rollouts",
                             "SELECT id, body, metrics, zscores FROM rollouts "
                             "WHERE shard = $1::int "
                             "ORDER BY ord",
                             1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  struct json_doc doc;
  json_doc_init(&doc);
  struct rollout *r = malloc(sizeof *r);
  if (!r)
    rc = CANARY_ENOMEM;
  for (int i = 0, n = PQntuples(res); i < n && !rc; i++) {
    const char *id = PQgetvalue(res, i, 0), *body = PQgetvalue(res, i, 1);
    const struct json_value *root;
    struct json_error jerr;
    char why[256];
    json_doc_reset(&doc);
    rc = json_parse(&doc, body, (size_t)PQgetlength(res, i, 1), &root, &jerr);
    if (rc) {
      store_set_error(s, "rollouts '%s': body %d:%d: %s", id, jerr.line, jerr.column, jerr.message);
      rc = rc == CANARY_ENOMEM ? rc : CANARY_EINVALID;
    } else if ((rc = rollout_json_read_value(root, r, why, sizeof why))) {
      store_set_error(s, "rollouts '%s': body %s", id, why);
    } else if (r->stage >= e->plan->n_stages) {
      store_set_error(s, "rollouts '%s': at stage %d but the plan has %d stages", id, r->stage,
                      e->plan->n_stages);
      rc = CANARY_EINVALID;
    } else if ((rc = engine_restore(e, r))) {
      store_set_error(s, "rollouts '%s': %s", id, canary_strerror(rc));
    } else if (!PQgetisnull(res, i, 2) && engine_metrics(e, id)) {
      rc = metrics_json_read(PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2),
                             engine_metrics(e, id), why, sizeof why);
      if (rc)
        store_set_error(s, "rollouts '%s': metrics %s", id, why);
    }
    if (!rc && !PQgetisnull(res, i, 3) && engine_metrics(e, id)) {
      rc = metrics_json_read_zscores(PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3),
                                     engine_metrics(e, id), why, sizeof why);
      if (rc)
        store_set_error(s, "rollouts '%s': zscores %s", id, why);
    }
  }
  free(r);
  json_doc_free(&doc);
  PQclear(res);
  return rc;
}

static int load_flags(store_t *s, const char *shard, struct engine *e, int64_t *window_from) {
  const char *values[] = {shard};
  int rc;
  PGresult *res = store_exec(s, "load global flags",
                             "SELECT global_flags, window_from FROM shards WHERE shard = $1::int",
                             1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  *window_from = PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)
                     ? strtoll(PQgetvalue(res, 0, 1), NULL, 10)
                     : -1;
  if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
    char why[256];
    struct flags f;
    rc =
        flags_json_read(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &f, why, sizeof why);
    if (rc)
      store_set_error(s, "shards %s: global_flags %s", shard, why);
    else
      engine_restore_global(e, &f);
  }
  PQclear(res);
  return rc;
}

/* The 8-byte big-endian value at p. */
static uint64_t be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int k = 0; k < 8; k++)
    v = v << 8 | p[k];
  return v;
}

/*
 * The ids of the newest epoch and the one before: what the engine held (engine.h). They are in
 * event_id_batches, a row per batch and epoch, and — written before migration 005 or by an
 * older worker — in event_ids, a row per id; both come back as (epoch, 8-byte hashes, newest,
 * 8-byte digests or NULL). An id without a digest (event_ids, rows from before migration 007)
 * comes back with an unknown one: a repeat of it is a plain duplicate.
 */
static int load_event_ids(store_t *s, const char *shard, struct engine *e) {
  const char *values[] = {shard};
  int rc;
  PGresult *res =
      store_exec(s, "load event ids",
                 "WITH top AS (SELECT greatest("
                 "(SELECT max(epoch) FROM event_ids WHERE shard = $1::int), "
                 "(SELECT max(epoch) FROM event_id_batches WHERE shard = $1::int)) AS e) "
                 "SELECT b.epoch, b.hashes, top.e, b.digests FROM event_id_batches b, top "
                 "WHERE b.shard = $1::int AND b.epoch >= top.e - 1 "
                 "UNION ALL "
                 "SELECT i.epoch, int8send(i.hash), top.e, NULL::bytea FROM event_ids i, top "
                 "WHERE i.shard = $1::int AND i.epoch >= top.e - 1",
                 1, values, 1, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  for (int i = 0, n = PQntuples(res); i < n && !rc; i++) {
    int64_t epoch = store_get_int8(res, i, 0), top = store_get_int8(res, i, 2);
    const unsigned char *h = (const unsigned char *)PQgetvalue(res, i, 1);
    size_t len = (size_t)PQgetlength(res, i, 1);
    const unsigned char *d = PQgetisnull(res, i, 3) || (size_t)PQgetlength(res, i, 3) != len
                                 ? NULL
                                 : (const unsigned char *)PQgetvalue(res, i, 3);
    engine_restore_id_epoch(e, top);
    for (size_t at = 0; at + 8 <= len && !rc; at += 8)
      rc = engine_restore_id(e, epoch, be64(h + at), d ? be64(d + at) : EVENT_DIGEST_UNKNOWN);
  }
  PQclear(res);
  return rc;
}

static int load_offsets(store_t *s, const char *shard, struct store_offsets *o) {
  const char *values[] = {shard};
  int rc;
  PGresult *res =
      store_exec(s, "load offsets", "SELECT topic, next_offset FROM offsets WHERE shard = $1::int",
                 1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  for (int t = 0; t < STORE_INPUT_TOPICS; t++)
    o->next[t] = -1;
  for (int i = 0, n = PQntuples(res); i < n; i++)
    for (int t = 0; t < STORE_INPUT_TOPICS; t++)
      if (strcmp(PQgetvalue(res, i, 0), store_input_topics[t]) == 0)
        o->next[t] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
  PQclear(res);
  return CANARY_OK;
}

int store_load_shard(store_t *s, int shard, struct engine *e, struct store_offsets *offsets) {
  char sh[16];
  snprintf(sh, sizeof sh, "%d", shard);
  /* One snapshot: state, ids and offsets that were committed together are read together. */
  int rc = store_command(s, "load shard", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!rc)
    rc = load_flags(s, sh, e, &offsets->window_from);
  if (!rc)
    rc = load_rollouts(s, sh, e);
  if (!rc)
    rc = load_event_ids(s, sh, e);
  if (!rc)
    rc = load_offsets(s, sh, offsets);
  if (!rc)
    rc = store_command(s, "load shard", "COMMIT");
  if (rc) {
    store_abort(s);
    return rc;
  }
  store_logf(s, LOG_LVL_INFO, "shard %d loaded: %zu rollouts, %zu event ids", shard, e->n_rollouts,
             e->seen.n + e->seen_old.n);
  return CANARY_OK;
}
