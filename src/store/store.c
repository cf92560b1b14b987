/*
 * The store's connection (with back-off), shard claims and loads, the outbox relay's queries and
 * the read side for canaryctl. Batches are in store_commit.c, migrations in store_migrate.c.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json.h"
#include "codec/metrics_json.h"
#include "codec/rollout_json.h"
#include "core/idset.h"
#include "store/store_internal.h"

/* The input topics of TOPIC_MAP, indexed by enum topic: their names are the offsets' keys. */
#define INPUT_1(name) name,
#define INPUT_0(name)
const char *const store_input_topics[STORE_INPUT_TOPICS] = {
#define XX(id, name, input, sized, compact, types) INPUT_##input(name)
    TOPIC_MAP(XX)
#undef XX
};

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

/* ---- errors and logs ------------------------------------------------------------------------- */

void store_logf(const store_t *s, int level, const char *fmt, ...) {
  if (!s->log)
    return;
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  s->log(s->log_ctx, level, msg);
}

/* libpq messages end with a newline and may hold several lines: make them one log line. */
static void one_line(char *m) {
  char *w = m;
  for (const char *r = m; *r; r++) {
    char c = *r == '\n' || *r == '\t' ? ' ' : *r;
    if (c == ' ' && (w == m || w[-1] == ' '))
      continue;
    *w++ = c;
  }
  while (w > m && w[-1] == ' ')
    w--;
  *w = '\0';
}

void store_set_error(store_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  canary_vwhy(s->err, sizeof s->err, 0, fmt, ap);
  va_end(ap);
  one_line(s->err);
}

/*
 * SQLSTATEs that end the session: class 08 (connection exception) and the server's shutdown
 * codes (pg_terminate_backend, a crash, a server starting up). libpq may report them before
 * it notices that the socket is closed.
 */
static bool connection_gone(const char *state) {
  return state && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
                   strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0);
}

int store_fail(store_t *s, const char *what, const PGresult *res) {
  const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  if (!msg)
    msg = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res) : PQerrorMessage(s->conn);
  if (res && !*msg)
    msg = PQresStatus(PQresultStatus(res));
  store_set_error(s, "%s: %s%s%s%s%s%s", what, msg, detail ? " (" : "", detail ? detail : "",
                  detail ? ")" : "", state ? " SQLSTATE " : "", state ? state : "");
  return PQstatus(s->conn) == CONNECTION_OK && !connection_gone(state) ? CANARY_EIO
                                                                      : CANARY_EUNAVAILABLE;
}

const char *store_last_error(const store_t *s) { return s->err; }

PGresult *store_exec(store_t *s, const char *what, const char *sql, int n,
                     const char *const *values, int binary_result, ExecStatusType want, int *rc) {
  if (PQstatus(s->conn) != CONNECTION_OK) {
    *rc = store_fail(s, what, NULL);
    return NULL;
  }
  if (s->commit.active) { /* the caller's bug: the connection is in pipeline mode */
    store_set_error(s, "%s: shard %d's commit is still in flight", what, s->commit.shard);
    *rc = CANARY_EINVALID;
    return NULL;
  }
  PGresult *res = PQexecParams(s->conn, sql, n, NULL, values, NULL, NULL, binary_result);
  if (res && PQresultStatus(res) == want) {
    *rc = CANARY_OK;
    return res;
  }
  *rc = store_fail(s, what, res);
  PQclear(res);
  return NULL;
}

int store_command(store_t *s, const char *what, const char *sql) {
  int rc;
  PGresult *res = store_exec(s, what, sql, 0, NULL, 0, PGRES_COMMAND_OK, &rc);
  PQclear(res);
  return rc;
}

void store_abort(store_t *s) {
  if (PQstatus(s->conn) != CONNECTION_OK || PQtransactionStatus(s->conn) == PQTRANS_IDLE)
    return;
  PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* ---- connection ------------------------------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Server notices (CREATE ... IF NOT EXISTS, RAISE NOTICE) go to the log, never to stderr. */
static void on_notice(void *arg, const char *message) {
  store_t *s = arg;
  char m[512];
  snprintf(m, sizeof m, "%s", message);
  one_line(m);
  store_logf(s, LOG_LVL_DEBUG, "PostgreSQL: %s", m);
}

/*
 * One connection attempt. The defaults before "dbname" (which expands the caller's conninfo)
 * are overridden by the conninfo: bounded connect time, and TCP keepalives so that a dead
 * server is noticed by a blocked commit instead of hanging it.
 */
static int connect_once(store_t *s) {
  static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                     "keepalives_interval", "keepalives_count",
                                     "application_name", "dbname", NULL};
  const char *values[] = {"5", "1", "10", "5", "3", "canaryd", s->conninfo, NULL};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (!c) {
    store_set_error(s, "could not connect: out of memory");
    return CANARY_EUNAVAILABLE;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    store_set_error(s, "could not connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return CANARY_EUNAVAILABLE;
  }
  PQsetNoticeProcessor(c, on_notice, s);
  s->conn = c;
  /* Durability is part of exactly-once: an acknowledged batch must survive a crash. */
  int rc = store_command(s, "set synchronous_commit", "SET synchronous_commit = on");
  if (rc) {
    PQfinish(c);
    s->conn = NULL;
    return CANARY_EUNAVAILABLE;
  }
  return CANARY_OK;
}

static void drop_connection(store_t *s) {
  s->commit.active = false; /* its outcome is unknown: see store_commit() */
  PQclear(s->fetched);
  s->fetched = NULL;
  PQfinish(s->conn);
  s->conn = NULL;
}

/* Connect, retrying with exponential back-off until timeout_ms has passed. */
static int connect_retrying(store_t *s, int timeout_ms) {
  int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  int64_t backoff = BACKOFF_FIRST_MS;
  for (int attempt = 1;; attempt++) {
    int rc = connect_once(s);
    if (rc == CANARY_OK) {
      if (attempt > 1)
        store_logf(s, LOG_LVL_INFO, "PostgreSQL connected after %d attempts", attempt);
      return CANARY_OK;
    }
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      store_logf(s, LOG_LVL_ERR, "PostgreSQL unavailable (%s): giving up after %d attempt%s",
                 s->err, attempt, attempt == 1 ? "" : "s");
      return CANARY_EUNAVAILABLE;
    }
    int64_t wait = backoff < left ? backoff : left;
    store_logf(s, LOG_LVL_WARNING, "PostgreSQL unavailable (%s): retrying in %" PRId64 " ms",
               s->err, wait);
    sleep_ms(wait);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
}

int store_open(const char *conninfo, int timeout_ms, log_sink_fn log, void *log_ctx,
               store_t **out) {
  *out = NULL;
  store_t *s = calloc(1, sizeof *s);
  if (!s || !(s->conninfo = strdup(conninfo ? conninfo : ""))) {
    free(s);
    return CANARY_ENOMEM;
  }
  s->log = log;
  s->log_ctx = log_ctx;
  int rc = connect_retrying(s, timeout_ms);
  if (rc) {
    store_close(s);
    return rc;
  }
  *out = s;
  return CANARY_OK;
}

int store_reconnect(store_t *s, int timeout_ms) {
  drop_connection(s);
  return connect_retrying(s, timeout_ms);
}

void store_close(store_t *s) {
  if (!s)
    return;
  drop_connection(s);
  free(s->msgs);
  for (size_t i = 0; i < sizeof s->params / sizeof s->params[0]; i++)
    jbuf_free(&s->params[i]);
  free(s->conninfo);
  free(s);
}

/* ---- shards ---------------------------------------------------------------------------------- */

int store_claim_shard(store_t *s, int shard, const char *worker, int64_t *epoch) {
  char sh[16];
  snprintf(sh, sizeof sh, "%d", shard);
  const char *values[] = {sh, worker ? worker : ""};
  int rc;
  PGresult *res = store_exec(
      s, "claim shard",
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
static int64_t get_int8(const PGresult *res, int row, int col) {
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
                             "ORDER BY ord", 1,
                             values, 0, PGRES_TUPLES_OK, &rc);
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
      store_set_error(s, "rollouts '%s': body %d:%d: %s", id, jerr.line, jerr.column,
                      jerr.message);
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
    rc = flags_json_read(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &f, why,
                         sizeof why);
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
  PGresult *res = store_exec(
      s, "load event ids",
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
    int64_t epoch = get_int8(res, i, 0), top = get_int8(res, i, 2);
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
  PGresult *res = store_exec(s, "load offsets",
                             "SELECT topic, next_offset FROM offsets WHERE shard = $1::int", 1,
                             values, 0, PGRES_TUPLES_OK, &rc);
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
        .seq = get_int8(res, r, 0),
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
    PGresult *res = store_exec(s, "set an outbox row aside", sql, 2 + 4 * (int)n_notices, values,
                               0, n_notices ? PGRES_COMMAND_OK : PGRES_TUPLES_OK, &rc);
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

/* ---- read side ------------------------------------------------------------------------------- */

int store_live_rollouts(store_t *s, const char *service, const char *id,
                        char (*ids)[EVENT_NAME_MAX], int *shards, size_t max, size_t *n) {
  *n = 0;
  const char *values[] = {service, id};
  int rc;
  PGresult *res = store_exec(s, "live rollouts of a service",
                             "SELECT id, shard FROM rollouts WHERE service = $1 AND id <> $2 "
                             "AND state IN ('pending', 'running', 'paused') ORDER BY ord",
                             2, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  for (int i = 0; i < PQntuples(res) && *n < max; i++) {
    snprintf(ids[*n], EVENT_NAME_MAX, "%s", PQgetvalue(res, i, 0));
    shards[*n] = atoi(PQgetvalue(res, i, 1));
    ++*n;
  }
  PQclear(res);
  return CANARY_OK;
}

int store_list_rollouts(store_t *s, struct store_rollout_row **rows, size_t *n) {
  *rows = NULL;
  *n = 0;
  int rc;
  PGresult *res = store_exec(s, "list rollouts",
                             "SELECT id, shard, body FROM rollouts ORDER BY ord", 0, NULL, 0,
                             PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  struct store_rollout_row *out = calloc(count ? count : 1, sizeof *out);
  if (!out) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  struct json_doc doc;
  json_doc_init(&doc);
  for (size_t i = 0; i < count && !rc; i++) {
    int r = (int)i;
    const struct json_value *root;
    struct json_error jerr;
    char why[256];
    json_doc_reset(&doc);
    out[i].shard = atoi(PQgetvalue(res, r, 1));
    rc = json_parse(&doc, PQgetvalue(res, r, 2), (size_t)PQgetlength(res, r, 2), &root, &jerr);
    if (rc) {
      store_set_error(s, "rollouts '%s': body %d:%d: %s", PQgetvalue(res, r, 0), jerr.line,
                      jerr.column, jerr.message);
      rc = rc == CANARY_ENOMEM ? rc : CANARY_EINVALID;
    } else if ((rc = rollout_json_read_value(root, &out[i].rollout, why, sizeof why))) {
      store_set_error(s, "rollouts '%s': body %s", PQgetvalue(res, r, 0), why);
    }
  }
  json_doc_free(&doc);
  PQclear(res);
  if (rc) {
    free(out);
    return rc;
  }
  *rows = out;
  *n = count;
  return CANARY_OK;
}

/* Copy a column into a fixed field; false when it does not fit. */
static bool copy_col(char *dst, size_t size, const PGresult *res, int row, int col) {
  size_t len = (size_t)PQgetlength(res, row, col);
  if (len >= size)
    return false;
  memcpy(dst, PQgetvalue(res, row, col), len + 1);
  return true;
}

static const char *const evidence_kind_names[] = {"num", "int", "str", "bool"};

/* evidence_items: [[key, kind, value], ...] as written by store_commit.c. */
static bool read_evidence(const struct json_value *arr, struct decision *d, char *why,
                          size_t why_len) {
  if (arr->type != JSON_ARRAY || arr->n_items > EVIDENCE_MAX) {
    snprintf(why, why_len, "evidence_items: expected an array of at most %d items",
             EVIDENCE_MAX);
    return false;
  }
  for (size_t i = 0; i < arr->n_items; i++) {
    const struct json_value *it = &arr->items[i];
    struct evidence_item *e = &d->evidence[d->n_evidence];
    if (it->type != JSON_ARRAY || it->n_items != 3 || it->items[0].type != JSON_STRING ||
        it->items[1].type != JSON_STRING || it->items[0].len >= sizeof e->key) {
      snprintf(why, why_len, "evidence_items[%zu]: expected [key, kind, value]", i);
      return false;
    }
    const struct json_value *v = &it->items[2];
    int kind = -1;
    for (int k = 0; k < 4; k++)
      if (strcmp(it->items[1].str, evidence_kind_names[k]) == 0)
        kind = k;
    memcpy(e->key, it->items[0].str, it->items[0].len + 1);
    e->kind = (enum evidence_kind)kind;
    bool ok = false;
    switch (kind) {
    case EVIDENCE_NUM:
      ok = v->type == JSON_NUMBER || v->type == JSON_NULL;
      e->num = v->type == JSON_NUMBER ? v->num : NAN;
      break;
    case EVIDENCE_INT:
      ok = v->type == JSON_NUMBER && v->is_int;
      e->i = v->i;
      break;
    case EVIDENCE_STR:
      ok = v->type == JSON_STRING && v->len < sizeof e->str;
      if (ok)
        memcpy(e->str, v->str, v->len + 1);
      break;
    case EVIDENCE_BOOL:
      ok = v->type == JSON_BOOL;
      e->b = v->b;
      break;
    }
    if (!ok) {
      snprintf(why, why_len, "evidence_items[%zu]: bad %s value", i, it->items[1].str);
      return false;
    }
    d->n_evidence++;
  }
  return true;
}

static int rollout_exists(store_t *s, const char *rollout, bool *exists) {
  const char *values[] = {rollout};
  int rc;
  PGresult *res = store_exec(s, "history", "SELECT 1 FROM rollouts WHERE id = $1", 1, values, 0,
                             PGRES_TUPLES_OK, &rc);
  if (res)
    *exists = PQntuples(res) > 0;
  PQclear(res);
  return rc;
}

enum { H_ID, H_ROLLOUT, H_SEQ, H_TIME, H_ACTION, H_FROM, H_TO, H_STATE, H_REASON, H_RULE,
       H_ACTOR, H_EVIDENCE };

static int history_row(store_t *s, const PGresult *res, int r, struct json_doc *doc,
                       struct decision *d) {
  char why[160] = "";
  bool ok = copy_col(d->id, sizeof d->id, res, r, H_ID) &&
            copy_col(d->rollout, sizeof d->rollout, res, r, H_ROLLOUT) &&
            copy_col(d->from_stage, sizeof d->from_stage, res, r, H_FROM) &&
            copy_col(d->to_stage, sizeof d->to_stage, res, r, H_TO) &&
            copy_col(d->reason, sizeof d->reason, res, r, H_REASON) &&
            copy_col(d->rule, sizeof d->rule, res, r, H_RULE) &&
            copy_col(d->actor, sizeof d->actor, res, r, H_ACTOR);
  if (!ok)
    snprintf(why, sizeof why, "a text column is longer than its field");
  d->seq = strtoll(PQgetvalue(res, r, H_SEQ), NULL, 10);
  d->time_ms = strtoll(PQgetvalue(res, r, H_TIME), NULL, 10);
  if (ok && !decision_action_parse(PQgetvalue(res, r, H_ACTION), &d->action)) {
    ok = false;
    snprintf(why, sizeof why, "unknown action '%s'", PQgetvalue(res, r, H_ACTION));
  }
  if (ok && !rollout_state_parse(PQgetvalue(res, r, H_STATE), &d->state)) {
    ok = false;
    snprintf(why, sizeof why, "unknown state '%s'", PQgetvalue(res, r, H_STATE));
  }
  if (ok) {
    const struct json_value *root;
    struct json_error jerr;
    json_doc_reset(doc);
    int rc = json_parse(doc, PQgetvalue(res, r, H_EVIDENCE),
                        (size_t)PQgetlength(res, r, H_EVIDENCE), &root, &jerr);
    if (rc == CANARY_ENOMEM)
      return rc;
    if (rc) {
      ok = false;
      snprintf(why, sizeof why, "evidence_items %d:%d: %s", jerr.line, jerr.column,
               jerr.message);
    } else {
      ok = read_evidence(root, d, why, sizeof why);
    }
  }
  if (ok)
    return CANARY_OK;
  store_set_error(s, "transitions '%s' seq %s: %s", PQgetvalue(res, r, H_ROLLOUT),
                  PQgetvalue(res, r, H_SEQ), why);
  return CANARY_EINVALID;
}

/* A transition's columns in the order history_row() reads them. */
#define TRANSITION_SELECT                                                                   \
  "SELECT id, rollout, seq, (extract(epoch FROM time) * 1000)::bigint, action, "           \
  "coalesce(from_stage, ''), coalesce(to_stage, ''), state, reason, coalesce(rule, ''), " \
  "actor, evidence_items FROM transitions "

int store_history(store_t *s, const char *rollout, struct decision **decisions, size_t *n) {
  *decisions = NULL;
  *n = 0;
  const char *values[] = {rollout};
  int rc;
  PGresult *res = store_exec(
      s, "history",
      TRANSITION_SELECT "WHERE rollout = $1 ORDER BY seq",
      1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  if (count == 0) {
    PQclear(res);
    bool exists = false;
    if ((rc = rollout_exists(s, rollout, &exists)))
      return rc;
    if (!exists)
      store_set_error(s, "history: no rollout '%s'", rollout);
    return exists ? CANARY_OK : CANARY_ENOTFOUND;
  }
  struct decision *out = calloc(count, sizeof *out);
  if (!out) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  struct json_doc doc;
  json_doc_init(&doc);
  for (size_t i = 0; i < count && !rc; i++)
    rc = history_row(s, res, (int)i, &doc, &out[i]);
  json_doc_free(&doc);
  PQclear(res);
  if (rc) {
    free(out);
    return rc;
  }
  *decisions = out;
  *n = count;
  return CANARY_OK;
}

int store_dispersion(store_t *s, const char *service, int last, struct store_dispersion_row **rows,
                     size_t *n) {
  *rows = NULL;
  *n = 0;
  char limit[24];
  snprintf(limit, sizeof limit, "%d", last);
  const char *values[] = {service, limit};
  int rc;
  /* each service's `last` newest finished releases with steps; jsonb_each spreads the counters */
  PGresult *res = store_exec(
      s, "dispersion",
      "WITH r AS (SELECT service, dispersion, row_number() OVER (PARTITION BY service "
      "ORDER BY updated_at DESC, id) AS nth FROM rollouts WHERE dispersion IS NOT NULL "
      "AND state IN ('completed', 'rolled_back') AND ($1 = '' OR service = $1)) "
      "SELECT r.service, d.key, sum((d.value->>0)::float8), sum((d.value->>1)::float8), count(*) "
      "FROM r, jsonb_each(r.dispersion) AS d WHERE r.nth <= $2::int "
      "GROUP BY r.service, d.key ORDER BY r.service, d.key",
      2, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  struct store_dispersion_row *out = calloc(count ? count : 1, sizeof *out);
  if (!out) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  for (size_t i = 0; i < count; i++) {
    snprintf(out[i].service, sizeof out[i].service, "%s", PQgetvalue(res, (int)i, 0));
    snprintf(out[i].counter, sizeof out[i].counter, "%s", PQgetvalue(res, (int)i, 1));
    out[i].sum = strtod(PQgetvalue(res, (int)i, 2), NULL);
    out[i].k = strtod(PQgetvalue(res, (int)i, 3), NULL);
    out[i].releases = strtol(PQgetvalue(res, (int)i, 4), NULL, 10);
  }
  PQclear(res);
  *rows = out;
  *n = count;
  return CANARY_OK;
}

int store_decision(store_t *s, const char *id, struct decision *d, bool *found) {
  const char *values[] = {id};
  int rc;
  *found = false;
  memset(d, 0, sizeof *d);
  PGresult *res = store_exec(
      s, "decision",
      TRANSITION_SELECT "WHERE id = $1",
      1, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) == 1) {
    struct json_doc doc;
    json_doc_init(&doc);
    rc = history_row(s, res, 0, &doc, d);
    json_doc_free(&doc);
    *found = rc == CANARY_OK;
  }
  PQclear(res);
  return rc;
}
