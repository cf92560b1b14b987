/*
 * PostgreSQL storage: migrations, shard ownership, rollout state, the transition log, Kafka
 * offsets, the outbox. A "shard" is one partition number across the three input topics
 * (canary.deploy, canary.metrics, canary.commands are co-partitioned by rollout key), and is the
 * unit of ownership: one worker applies one shard's events, in one engine.
 *
 * Exactly-once recipe (docs/ARCHITECTURE.md): state, transitions, offsets and outbox rows of a
 * batch commit in ONE transaction, fenced by the shard's owner epoch.
 */
#ifndef CANARY_STORE_H
#define CANARY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/effect.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/rollout.h"

typedef struct store store_t;

#define STORE_TOPIC_MAX 64
#define STORE_INPUT_TOPICS 3 /* canary.deploy, canary.metrics, canary.commands */

/* Log sink: the store says what it is doing (retries, back-off) through this, never stderr. */
typedef void (*store_log_fn)(void *ctx, int level, const char *msg);

/*
 * Connect with conninfo (libpq syntax), retrying with exponential back-off (100 ms .. 5 s)
 * until timeout_ms has passed (0 = try once). Each failed attempt is logged. Sets
 * synchronous_commit=on for the session. Returns CANARY_OK, CANARY_EUNAVAILABLE.
 */
int store_open(const char *conninfo, int timeout_ms, store_log_fn log, void *log_ctx,
               store_t **out) CANARY_MUSTCHECK;
void store_close(store_t *s);

/* Reconnect after a lost connection (same back-off). */
int store_reconnect(store_t *s, int timeout_ms) CANARY_MUSTCHECK;

/*
 * Apply the migrations compiled into the binary (migrations/NNN_name.sql) that
 * schema_migrations does not record yet, each in its own transaction, in order; serialised
 * against concurrent migrators by an advisory lock. *applied = how many ran (0 the second time).
 */
int store_migrate(store_t *s, int *applied) CANARY_MUSTCHECK;

/* Next offset to consume per input topic (-1 = none committed: start at the beginning). */
struct store_offsets {
  int64_t next[STORE_INPUT_TOPICS]; /* indexed like store_input_topics[] */
};
extern const char *const store_input_topics[STORE_INPUT_TOPICS];

/*
 * Take ownership of shard for worker: bump owner_epoch and return it. From now on batches from
 * an older epoch fail with CANARY_EFENCED.
 */
int store_claim_shard(store_t *s, int shard, const char *worker, int64_t *epoch)
    CANARY_MUSTCHECK;

/*
 * Load what the shard's engine needs: every rollout of the shard (engine_restore), the shard's
 * global kill switches, the ids of events applied (for duplicate detection), and the offsets.
 * e must be freshly initialised with the plan.
 */
int store_load_shard(store_t *s, int shard, struct engine *e, struct store_offsets *offsets)
    CANARY_MUSTCHECK;

/* A message for the outbox: bytes ready for Kafka (Avro, Confluent framing). */
struct store_outbox_row {
  const char *topic;
  const char *key;       /* NULL = no key */
  const char *message_id; /* deterministic: decision id, notification id, ... */
  const void *payload;
  size_t len;
};

/* One batch of one shard. Everything in it commits together or not at all. */
struct store_batch {
  int shard;
  int64_t epoch;
  struct store_offsets offsets;          /* next offsets after this batch (-1: unchanged) */
  struct rollout *const *rollouts;       /* rollouts changed by the batch: full state */
  size_t n_rollouts;
  const struct decision *const *decisions; /* -> transitions (append-only, with evidence) */
  size_t n_decisions;
  const struct store_outbox_row *outbox;   /* decisions, notifications, traffic, DLQ */
  size_t n_outbox;
  const char *const *event_ids;          /* ids applied in this batch */
  size_t n_event_ids;
  const struct flags *global;            /* the shard's global kill switches after the batch */
};

/*
 * Commit b in one transaction (libpq pipeline mode: one round trip). Fails with CANARY_EFENCED
 * when the shard's epoch is no longer b->epoch (another worker took over: the caller must drop
 * the shard), CANARY_EUNAVAILABLE when the connection is lost (nothing committed; retry after
 * store_reconnect), CANARY_EIO for other errors (rolled back).
 */
int store_commit(store_t *s, const struct store_batch *b) CANARY_MUSTCHECK;

/* An outbox row read back for publishing. Memory owned by the store until the next fetch. */
struct store_outbox_msg {
  int64_t seq;
  const char *topic;
  const char *key;
  const char *message_id;
  const unsigned char *payload;
  size_t len;
};

/* Up to max unpublished rows in commit order. */
int store_outbox_fetch(store_t *s, size_t max, const struct store_outbox_msg **msgs, size_t *n)
    CANARY_MUSTCHECK;
/* Mark rows published (after the broker acknowledged them). */
int store_outbox_mark(store_t *s, const int64_t *seqs, size_t n) CANARY_MUSTCHECK;

/* Read side for canaryctl: every rollout, and one rollout's transition log. */
struct store_rollout_row {
  struct rollout rollout;
  int shard;
};
int store_list_rollouts(store_t *s, struct store_rollout_row **rows, size_t *n) CANARY_MUSTCHECK;
int store_history(store_t *s, const char *rollout, struct decision **decisions, size_t *n)
    CANARY_MUSTCHECK;

/* Last error message from the server or libpq (for logs). */
const char *store_last_error(const store_t *s);

#endif
