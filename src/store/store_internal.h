/* What the store's .c files share: the handle and the libpq helpers (store.c), private to
 * src/store. */
#ifndef CANARY_STORE_INTERNAL_H
#define CANARY_STORE_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/json.h"
#include "store/store.h"

/* SQLSTATE raised by canary_fence() (migrations/001_init.sql) when the epoch is stale. */
#define STORE_SQLSTATE_FENCED "CF001"

#define STORE_PARAM_BUFS 64
#define STORE_MAX_STATEMENTS 16

/* The batch store_commit_send() sent and store_commit_wait() has not collected yet. */
struct store_in_flight {
  bool active;
  int shard;
  int n; /* statements sent, named in what[] */
  const char *what[STORE_MAX_STATEMENTS];
};

struct store {
  PGconn *conn;
  char *conninfo;
  log_sink_fn log;
  void *log_ctx;
  char err[1024]; /* store_last_error() */

  PGresult *fetched; /* rows of the last store_outbox_fetch() */
  struct store_outbox_msg *msgs;
  size_t msgs_cap;

  struct jbuf params[STORE_PARAM_BUFS]; /* store_commit's columns, reused batch to batch */
  struct store_in_flight commit;        /* the pipeline mode lasts from send to wait */
};

/* Log through the caller's sink (nothing when there is none). level: enum log_level. */
void store_logf(const store_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set store_last_error() to "what: message" and return the message. */
void store_set_error(store_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Record why res (NULL: the connection) failed as "what: server message (SQLSTATE)" and return
 * CANARY_EUNAVAILABLE when the connection is gone, CANARY_EIO otherwise.
 */
int store_fail(store_t *s, const char *what, const PGresult *res);

/*
 * PQexecParams with text parameters; returns the result when its status is want (caller
 * PQclear()s it), else NULL with the error recorded and *rc set as store_fail() says.
 */
PGresult *store_exec(store_t *s, const char *what, const char *sql, int n,
                     const char *const *values, int binary_result, ExecStatusType want, int *rc);

/* Run a statement without parameters and rows (BEGIN, ROLLBACK, SET ...). */
int store_command(store_t *s, const char *what, const char *sql) CANARY_MUSTCHECK;

/*
 * Close the connection (a commit in flight is forgotten: its outcome is unknown). Every call
 * then fails with CANARY_EUNAVAILABLE until store_reconnect().
 */
void store_disconnect(store_t *s);

/* ROLLBACK if a transaction is open (after a failure); keeps the first error. */
void store_abort(store_t *s);

/* Big-endian int64 of a binary-format result column. */
int64_t store_get_int8(const PGresult *res, int row, int col);

#endif
