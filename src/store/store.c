/*
 * The store's connection (with back-off), its errors and logs, and the statements every part
 * runs. Shard claims and loads are in store_shard.c, the outbox relay's queries in
 * store_outbox.c, the read side for canaryctl in store_read.c, batches in store_commit.c,
 * migrations in store_migrate.c.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
  static const char *const keys[] = {
      "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
      "keepalives_count", "application_name", "dbname",          NULL};
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

void store_disconnect(store_t *s) {
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
  store_disconnect(s);
  return connect_retrying(s, timeout_ms);
}

void store_close(store_t *s) {
  if (!s)
    return;
  store_disconnect(s);
  free(s->msgs);
  for (size_t i = 0; i < sizeof s->params / sizeof s->params[0]; i++)
    jbuf_free(&s->params[i]);
  free(s->conninfo);
  free(s);
}
