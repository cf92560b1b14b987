/* The outbox relay's queries: fetch in seq order, mark published, set aside what Kafka refuses
 * for good (with its notifications), prune, and the backlog /metrics reports. */
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "store/store_internal.h"

/* ---- outbox ---------------------------------------------------------------------------------- */

int store_outbox_fetch(store_t *s, size_t max, const struct store_outbox_msg **msgs, size_t *n) {
  *msgs = NULL;
  *n = 0;
  PQclear(s->fetched);
  s->fetched = NULL;
  if (max == 0)
    return CANARY_OK;
  char limit[24];
  snprintf(limit, sizeof limit, "%zu", max);
  const char *values[] = {limit};
  int rc;
  PGresult *res = store_exec(s, "fetch outbox",
                             "SELECT seq, topic, key, message_id, payload FROM outbox "
                             "WHERE published_at IS NULL ORDER BY seq LIMIT $1::bigint",
                             1, values, 1, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t rows = (size_t)PQntuples(res);
  if (rows > s->msgs_cap) {
    struct store_outbox_msg *m = realloc(s->msgs, rows * sizeof *m);
    if (!m) {
      PQclear(res);
      return CANARY_ENOMEM;
    }
    s->msgs = m;
    s->msgs_cap = rows;
  }
  for (size_t i = 0; i < rows; i++) {
    int r = (int)i;
    s->msgs[i] = (struct store_outbox_msg){
        .seq = store_get_int8(res, r, 0),
        .topic = PQgetvalue(res, r, 1),
        .key = PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2),
        .message_id = PQgetvalue(res, r, 3),
        .payload = (const unsigned char *)PQgetvalue(res, r, 4),
        .len = (size_t)PQgetlength(res, r, 4),
    };
  }
  s->fetched = res;
  *msgs = s->msgs;
  *n = rows;
  return CANARY_OK;
}

int store_outbox_mark(store_t *s, const int64_t *seqs, size_t n) {
  if (n == 0)
    return CANARY_OK;
  struct jbuf arr;
  jbuf_init(&arr);
  jbuf_putc(&arr, '{');
  for (size_t i = 0; i < n; i++)
    jbuf_printf(&arr, i ? ",%" PRId64 : "%" PRId64, seqs[i]);
  jbuf_putc(&arr, '}');
  if (arr.oom) {
    jbuf_free(&arr);
    return CANARY_ENOMEM;
  }
  const char *values[] = {arr.data};
  int rc;
  PGresult *res = store_exec(s, "mark outbox published",
                             "UPDATE outbox SET published_at = now() "
                             "WHERE seq = ANY ($1::bigint[]) AND published_at IS NULL",
                             1, values, 0, PGRES_COMMAND_OK, &rc);
  PQclear(res);
  jbuf_free(&arr);
  return rc;
}

/* Session advisory lock the relays take turns with: the bytes "canrelay" as a bigint. */
#define RELAY_LOCK "7161126320102728057"

int store_outbox_lock(store_t *s) {
  int rc;
  PQclear(store_exec(s, "outbox: the relay lock", "SELECT pg_advisory_lock(" RELAY_LOCK ")", 0,
                     NULL, 0, PGRES_TUPLES_OK, &rc));
  return rc;
}

void store_outbox_unlock(store_t *s) {
  if (PQstatus(s->conn) == CONNECTION_OK) /* a lost connection let go of it already */
    PQclear(PQexec(s->conn, "SELECT pg_advisory_unlock(" RELAY_LOCK ")"));
}

int store_outbox_state(store_t *s, const char *message_id, bool *found, bool *published,
                       char *failure, size_t failure_len) {
  const char *values[] = {message_id};
  int rc;
  *found = *published = false;
  if (failure_len)
    failure[0] = '\0';
  PGresult *res = store_exec(s, "outbox row state",
                             "SELECT published_at IS NOT NULL, coalesce(failure, '') FROM outbox "
                             "WHERE message_id = $1",
                             1, values, 0, PGRES_TUPLES_OK, &rc);
  if (res && PQntuples(res) == 1) {
    *found = true;
    *published = !strcmp(PQgetvalue(res, 0, 0), "t");
    snprintf(failure, failure_len, "%s", PQgetvalue(res, 0, 1));
  }
  PQclear(res);
  return rc;
}

/* bytea's hex input form of n bytes ("\\x..."), malloc'd; NULL when out of memory. */
static char *bytea_hex(const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char *out = malloc(2 * n + 3);
  if (!out)
    return NULL;
  out[0] = '\\', out[1] = 'x';
  for (size_t i = 0; i < n; i++) {
    out[2 + 2 * i] = digits[p[i] >> 4];
    out[3 + 2 * i] = digits[p[i] & 15];
  }
  out[2 + 2 * n] = '\0';
  return out;
}

int store_outbox_fail(store_t *s, int64_t seq, const char *why,
                      const struct store_outbox_row *notices, size_t n_notices) {
  if (n_notices > STORE_NOTICES_MAX)
    return CANARY_EINVALID;
  /* One statement: the notices go in only with the row that was set aside by it. */
  char sql[1024], id[24];
  char *hex[STORE_NOTICES_MAX] = {0};
  const char *values[2 + 4 * STORE_NOTICES_MAX];
  snprintf(id, sizeof id, "%" PRId64, seq);
  values[0] = id, values[1] = why ? why : "?";
  int len = snprintf(sql, sizeof sql,
                     "WITH failed AS (UPDATE outbox SET published_at = now(), failure = $2 "
                     "WHERE seq = $1::bigint AND published_at IS NULL RETURNING shard)");
  if (n_notices == 0) {
    len += snprintf(sql + len, sizeof sql - (size_t)len, " SELECT 1 FROM failed");
  } else {
    len += snprintf(sql + len, sizeof sql - (size_t)len,
                    " INSERT INTO outbox (shard, topic, key, message_id, payload) "
                    "SELECT failed.shard, v.topic, v.key, v.message_id, v.payload::bytea "
                    "FROM failed, (VALUES ");
    for (size_t i = 0; i < n_notices; i++) {
      int k = 3 + 4 * (int)i;
      len += snprintf(sql + len, sizeof sql - (size_t)len, "%s(%d, $%d, $%d, $%d, $%d)",
                      i ? ", " : "", (int)i, k, k + 1, k + 2, k + 3);
    }
    len += snprintf(sql + len, sizeof sql - (size_t)len,
                    ") AS v(n, topic, key, message_id, payload) ORDER BY v.n "
                    "ON CONFLICT (message_id) DO NOTHING");
  }
  int rc = CANARY_OK;
  for (size_t i = 0; i < n_notices; i++) {
    const struct store_outbox_row *r = &notices[i];
    hex[i] = bytea_hex(r->payload, r->len);
    if (!hex[i])
      rc = CANARY_ENOMEM;
    values[2 + 4 * i] = r->topic;
    values[3 + 4 * i] = r->key;
    values[4 + 4 * i] = r->message_id;
    values[5 + 4 * i] = hex[i];
  }
  if (rc == CANARY_OK) {
    PGresult *res = store_exec(s, "set an outbox row aside", sql, 2 + 4 * (int)n_notices, values, 0,
                               n_notices ? PGRES_COMMAND_OK : PGRES_TUPLES_OK, &rc);
    PQclear(res);
  }
  for (size_t i = 0; i < n_notices; i++)
    free(hex[i]);
  return rc;
}

int store_outbox_prune(store_t *s, int64_t older_than_s, long *deleted) {
  char secs[24];
  snprintf(secs, sizeof secs, "%" PRId64, older_than_s);
  const char *values[] = {secs};
  int rc;
  *deleted = 0;
  PGresult *res = store_exec(s, "prune outbox",
                             "DELETE FROM outbox WHERE published_at < "
                             "now() - $1::bigint * interval '1 second'",
                             1, values, 0, PGRES_COMMAND_OK, &rc);
  if (res)
    *deleted = atol(PQcmdTuples(res));
  PQclear(res);
  return rc;
}

int store_outbox_backlog(store_t *s, int64_t *rows, int64_t *oldest_ms) {
  int rc;
  *rows = *oldest_ms = 0;
  PGresult *res = store_exec(s, "measure the outbox backlog",
                             "SELECT count(*), coalesce((extract(epoch FROM now() - "
                             "min(created_at)) * 1000)::bigint, 0) FROM outbox "
                             "WHERE published_at IS NULL",
                             0, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (res && PQntuples(res) == 1) {
    *rows = atoll(PQgetvalue(res, 0, 0));
    *oldest_ms = atoll(PQgetvalue(res, 0, 1));
  }
  PQclear(res);
  return rc;
}
