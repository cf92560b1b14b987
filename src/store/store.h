/*
 * PostgreSQL storage: migrations, shard ownership, rollout state, the transition log, Kafka
 * offsets, the outbox. A "shard" is one partition number across the three input topics
 * (canary.deploy, canary.metrics, canary.commands are co-partitioned by rollout key), and is the
 * unit of ownership: one worker applies one shard's events, in one engine.
 *
 * Exactly-once recipe (docs/ARCHITECTURE.md): state, transitions, offsets and outbox rows of a
 * batch commit in ONE transaction, fenced by the shard's owner epoch.
 *
 * A store_t is one connection: use it from one thread at a time (the relay and the worker each
 * open their own).
 */
#ifndef CANARY_STORE_H
#define CANARY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/effect.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/history.h"
#include "core/log_level.h"
#include "core/rollout.h"
#include "core/topic.h"

typedef struct store store_t;

#define STORE_TOPIC_MAX 64
#define STORE_INPUT_TOPICS TOPIC_INPUT_COUNT /* the inputs of TOPIC_MAP (core/topic.h) */

/*
 * Connect with conninfo (libpq syntax), retrying with exponential back-off (100 ms .. 5 s)
 * until timeout_ms has passed (0 = try once). Each failed attempt is logged (there is no handle
 * for store_last_error() when this fails). Sets synchronous_commit=on for the session; unless
 * conninfo says otherwise, connect_timeout=5 and TCP keepalives (10 s idle, 3 probes 5 s apart)
 * so that a dead server fails a blocked call instead of hanging it. Returns CANARY_OK,
 * CANARY_EUNAVAILABLE, CANARY_ENOMEM. The store says what it is doing (retries, back-off,
 * migrations, server notices) through log, never stderr: each failed connection attempt is a
 * LOG_LVL_WARNING ("PostgreSQL unavailable (...): retrying in 400 ms").
 */
int store_open(const char *conninfo, int timeout_ms, log_sink_fn log, void *log_ctx,
               store_t **out) CANARY_MUSTCHECK;
void store_close(store_t *s);

/* Reconnect after a lost connection (same back-off). Forgets the last outbox fetch. */
int store_reconnect(store_t *s, int timeout_ms) CANARY_MUSTCHECK;

/*
 * Apply the migrations compiled into the binary (migrations/NNN_name.sql) that
 * schema_migrations does not record yet, each in its own transaction, in order; serialised
 * against concurrent migrators by an advisory lock. *applied = how many ran (0 the second time).
 * CANARY_EINVALID when a recorded migration's checksum differs from the compiled-in file, or a
 * new file's version is older than the newest applied one (store_last_error() names the file);
 * CANARY_EIO when a migration fails ("migrations/002_x.sql:14: <server message>"): that
 * migration is rolled back, the earlier ones stay. Versions recorded but unknown to this build
 * (a newer canaryd migrated) are logged as a warning, not an error. A migration runs inside a
 * transaction: no CREATE INDEX CONCURRENTLY, no BEGIN/COMMIT of its own.
 */
int store_migrate(store_t *s, int *applied) CANARY_MUSTCHECK;

/* Next offset to consume per input topic (-1 = none committed: start at the beginning). */
struct store_offsets {
  int64_t next[STORE_INPUT_TOPICS]; /* indexed like store_input_topics[] */
  int64_t window_from; /* canary.metrics offset a restart replays windows from; -1: the start */
};
extern const char *const store_input_topics[STORE_INPUT_TOPICS];

/*
 * Take ownership of shard for worker: bump owner_epoch (1 for a shard never claimed) and return
 * it. From now on batches from an older epoch fail with CANARY_EFENCED. A claim waits for a
 * batch of the old owner that is committing at that moment (both take the shard's row lock).
 */
int store_claim_shard(store_t *s, int shard, const char *worker, int64_t *epoch) CANARY_MUSTCHECK;

/*
 * Load what the shard's engine needs: every rollout of the shard (engine_restore, in creation
 * order), the shard's global kill switches (left as engine_init set them when none were ever
 * committed), the ids of events applied with their content digests (for duplicate and conflict
 * detection; unknown for ids stored without one), and the offsets (-1 where none). One
 * consistent snapshot. e must be freshly initialised with the plan. CANARY_EINVALID when a
 * stored rollout cannot be read or is at a stage the plan does not have (the row is
 * named in store_last_error()); e is then partly filled: engine_destroy() it.
 */
int store_load_shard(store_t *s, int shard, struct engine *e,
                     struct store_offsets *offsets) CANARY_MUSTCHECK;

/* A message for the outbox: bytes ready for Kafka (Avro, Confluent framing). */
struct store_outbox_row {
  const char *topic;
  const char *key;        /* NULL = no key */
  const char *message_id; /* deterministic: decision id, notification id, ... */
  const void *payload;
  size_t len;
};

/*
 * One batch of one shard. Everything in it commits together or not at all. A rollout listed
 * twice is stored once (the last one). Rollouts new to the store take their creation rank (the
 * order store_load_shard restores) in the order listed: list them in engine order. Every
 * decision's rollout must be stored already or be in the batch. A decision's (rollout, seq) and
 * id must be new: the transition log is append-only. Outbox rows whose message_id is stored
 * already are skipped. Event ids are the engine's new ones: they are not checked against what
 * is stored.
 */
/* The dashboard's history (rollout_history) kept per rollout: behind its newest step, and
 * after it finished. The span covers a rollout's life under the seed's plan (122 h of stages,
 * a day of watch). */
#define STORE_HISTORY_SPAN_MS (8 * 24 * 3600 * 1000LL)
#define STORE_HISTORY_RETENTION "7 days"

/*
 * A person's event as command_audit keeps it (migrations/011_command_audit.sql): what it asked,
 * whether its signature verified, and what canaryd answered. Strings are borrowed for the call.
 */
struct store_audit_row {
  const char *source; /* <topic>/<partition>/<offset>: unique, so a replayed batch adds none */
  const char *event_id, *rollout, *type, *action, *actor;
  const char *signature; /* event_auth_name: unchecked, unsigned, verified, bad */
  const char *outcome;   /* accepted, refused, rejected, invalid */
  const char *reason, *detail;
  int64_t time_ms;
};

/* One row of command_audit as read back (store_audit_list). */
struct store_audit_entry {
  char event_id[EVENT_ID_MAX], rollout[EVENT_NAME_MAX], type[24], action[160];
  char actor[EVENT_NAME_MAX], signature[16], outcome[16], reason[EVENT_TEXT_MAX];
  char detail[EVENT_TEXT_MAX + 256], source[96];
  int64_t time_ms;
  bool verified;
};

/*
 * The audit's newest `last` rows (every row when last <= 0), oldest first; rollout and actor,
 * when not NULL, keep only theirs. *out is malloc()ed (the caller frees it). A CANARY_ code.
 */
int store_audit_list(store_t *s, const char *rollout, const char *actor, long last,
                     struct store_audit_entry **out, size_t *n) CANARY_MUSTCHECK;

/* The audit's row of the event with this id in *out, *found false when there is none (yet). */
int store_audit_of(store_t *s, const char *event_id, struct store_audit_entry *out,
                   bool *found) CANARY_MUSTCHECK;

/*
 * The freeze (migrations/013_freeze.sql, store_freeze.c): while frozen, the workers apply nothing.
 * store_freeze_get reads it; store_freeze_set sets it and appends the command_audit row (type
 * 'freeze', action freeze/unfreeze, the actor and reason given) in one statement. *changed is
 * false when it already was so (the audit row says "already frozen"/"not frozen").
 */
struct store_freeze {
  bool frozen;
  char actor[128], reason[512];
  int64_t since_ms;
};
int store_freeze_get(store_t *s, struct store_freeze *out) CANARY_MUSTCHECK;
int store_freeze_set(store_t *s, bool frozen, const char *actor, const char *reason,
                     bool *changed) CANARY_MUSTCHECK;

struct store_batch {
  int shard;
  int64_t epoch;
  struct store_offsets offsets;    /* next offsets after this batch (-1: unchanged) */
  struct rollout *const *rollouts; /* rollouts changed by the batch: full state */
  size_t n_rollouts;
  const struct decision *const *decisions; /* -> transitions (append-only, with evidence) */
  size_t n_decisions;
  const struct store_outbox_row *outbox; /* decisions, notifications, traffic, DLQ */
  size_t n_outbox;
  const uint64_t *event_ids;        /* idset_hash() of the ids applied in this batch */
  const int64_t *event_id_epochs;   /* the engine's id epoch each was kept in (NULL: 0) */
  const uint64_t *event_id_digests; /* event_digest() of each one's content (NULL: none
                                          * known; a repeat is then a plain duplicate) */
  size_t n_event_ids;
  int64_t prune_ids_below;    /* != 0: delete the shard's ids of older epochs */
  const struct flags *global; /* the shard's global kill switches after the batch */
  /* rollouts[i]'s metric state beyond its windows (rollouts.metrics) and its zscore histories
   * (rollouts.zscores); a NULL array or entry keeps what is stored */
  struct rollout_metrics *const *metrics;
  struct rollout_metrics *const *zscores;
  int64_t window_from; /* > 0: the shard's new window_from; else unchanged */
  /* the dashboard's points (core/history) -> rollout_history, one row per series and step
   * (a step recorded again replaces its row); their rollouts' rows older than
   * STORE_HISTORY_SPAN_MS before their newest step, and those of rollouts finished more than
   * STORE_HISTORY_RETENTION ago, are deleted in the same transaction */
  const struct history_point *history;
  size_t n_history;
  const struct store_audit_row *audit; /* -> command_audit */
  size_t n_audit;
};

/*
 * Commit b in one transaction (libpq pipeline mode: one round trip). Fails with CANARY_EFENCED
 * when the shard's epoch is no longer b->epoch (another worker took over: the caller must drop
 * the shard; nothing written), CANARY_EIO for other errors (rolled back, nothing written; the
 * server's message in store_last_error()), CANARY_EINVALID for a malformed batch (an outbox row
 * without topic or message id; nothing sent), CANARY_ENOMEM.
 * CANARY_EUNAVAILABLE when the connection is lost. If it was lost while COMMIT was in flight,
 * the batch may or may not have committed: do not send the same batch again (its transitions
 * would be duplicates). Instead store_reconnect(), then rebuild the shard from the store
 * (store_load_shard into a fresh engine) and consume from the offsets it returns — they say
 * whether the batch made it.
 */
int store_commit(store_t *s, const struct store_batch *b) CANARY_MUSTCHECK;

/*
 * store_commit in two halves, so that the caller can go on working while the server commits:
 * store_commit_send() writes the whole batch to the connection and returns; store_commit_wait()
 * reads its outcome, with store_commit()'s return codes. Everything b points to is copied
 * before store_commit_send() returns: the caller may reuse or free it at once. One commit is in
 * flight per connection: between the two calls no other store_* call may use s (they fail with
 * CANARY_EINVALID; a second send too). store_commit_send() returns CANARY_OK when the batch is
 * on its way, or an error when nothing is in flight (the batch was not committed — except
 * CANARY_EUNAVAILABLE, which is unknown as for store_commit()).
 */
int store_commit_send(store_t *s, const struct store_batch *b) CANARY_MUSTCHECK;
int store_commit_wait(store_t *s) CANARY_MUSTCHECK;
/* True between a successful store_commit_send() and its store_commit_wait(). */
bool store_commit_in_flight(const store_t *s);

/* An outbox row read back for publishing. Memory owned by the store until the next fetch. */
struct store_outbox_msg {
  int64_t seq;
  const char *topic;
  const char *key;
  const char *message_id;
  const unsigned char *payload;
  size_t len;
};

/*
 * Up to max unpublished rows in seq order, which is commit order within a shard (its batches
 * are serialised by the fence); rows of different shards may commit out of seq order, and a
 * row committed late is still returned by a later fetch since only published_at is looked at.
 */
int store_outbox_fetch(store_t *s, size_t max, const struct store_outbox_msg **msgs,
                       size_t *n) CANARY_MUSTCHECK;
/* Mark rows published (after the broker acknowledged them). */
int store_outbox_mark(store_t *s, const int64_t *seqs, size_t n) CANARY_MUSTCHECK;

/*
 * The relays of a group take turns: store_outbox_lock waits for the group-wide relay lock (a
 * session advisory lock), store_outbox_unlock lets it go. A relay holds it from its fetch until
 * what it published is acknowledged and marked, so no two relays publish the same row, or a
 * row after the rows behind it. A lost connection lets go of the lock with the session: after
 * CANARY_EUNAVAILABLE from any store call the lock is no longer held (do not unlock).
 * store_outbox_lock: CANARY_OK, CANARY_EUNAVAILABLE, CANARY_EIO.
 */
int store_outbox_lock(store_t *s) CANARY_MUSTCHECK;
void store_outbox_unlock(store_t *s);

/*
 * Where the outbox row of message_id stands: *published once Kafka acknowledged it (or it was
 * set aside: then failure holds why, else ""). *found false when there is no such row.
 */
int store_outbox_state(store_t *s, const char *message_id, bool *found, bool *published,
                       char *failure, size_t failure_len) CANARY_MUSTCHECK;

/*
 * Set outbox row seq aside for good: Kafka refuses it (why), and the relay must move on. The
 * n_notices rows of notices (at most STORE_NOTICES_MAX: what tells people its output is stuck)
 * join the outbox in the same statement, under the set-aside row's shard — set aside and
 * announced together, or neither — unless their message_id is there already, and nothing is
 * added when the row was set aside before. Returns CANARY_OK, CANARY_EINVALID (too many
 * notices), or the store's code.
 */
#define STORE_NOTICES_MAX 4
int store_outbox_fail(store_t *s, int64_t seq, const char *why,
                      const struct store_outbox_row *notices, size_t n_notices) CANARY_MUSTCHECK;

/*
 * Delete outbox rows published more than older_than_s seconds ago: the table keeps what is
 * waiting and a recent window (a re-applied batch is recognised by its message ids), not every
 * message ever sent. *deleted gets the count. CANARY_OK, CANARY_EIO, CANARY_EUNAVAILABLE.
 */
int store_outbox_prune(store_t *s, int64_t older_than_s, long *deleted) CANARY_MUSTCHECK;

/*
 * How many outbox rows wait to be published (*rows) and how long the oldest has waited
 * (*oldest_ms, by the server's clock; 0 when none): canaryd's relay backlog on /metrics. One
 * count over the unpublished rows' partial index. CANARY_OK, CANARY_EIO, CANARY_EUNAVAILABLE.
 */
int store_outbox_backlog(store_t *s, int64_t *rows, int64_t *oldest_ms) CANARY_MUSTCHECK;

/*
 * Read side for canaryctl: every rollout (in creation order), and one rollout's transition log
 * (decisions in seq order, evidence items as decided). Arrays are allocated here and the caller
 * free()s them. store_history returns CANARY_ENOTFOUND for a rollout the store does not have
 * (a known rollout without decisions gives *n = 0); CANARY_EINVALID when a stored row cannot be
 * read back.
 */
struct store_rollout_row {
  struct rollout rollout;
  int shard;
};
int store_list_rollouts(store_t *s, struct store_rollout_row **rows, size_t *n) CANARY_MUSTCHECK;
int store_history(store_t *s, const char *rollout, struct decision **decisions,
                  size_t *n) CANARY_MUSTCHECK;

/*
 * The dashboard's history of rollout (rollout_history) from since_ms on, appended to out as a
 * JSON array: one object per series {"kind","name","stat","cohort","variant","t":[ms...],
 * "v":[...]}, oldest point first ("[]" when none). CANARY_OK, CANARY_EIO, CANARY_EUNAVAILABLE,
 * CANARY_ENOMEM.
 */
struct jbuf;
int store_history_series_json(store_t *s, const char *rollout, int64_t since_ms,
                              struct jbuf *out) CANARY_MUSTCHECK;
/* How many history rows rollout has, and its oldest and newest step (0 when none). */
int store_history_rows(store_t *s, const char *rollout, long *rows, int64_t *oldest_ms,
                       int64_t *newest_ms) CANARY_MUSTCHECK;

/*
 * The live rollouts (pending, running, paused) of service as stored, oldest first, but id: up
 * to max of them into ids (each EVENT_NAME_MAX bytes) with their shards, *n how many. The worker
 * asks before it creates a rollout, so that a service's rollouts on other shards count too.
 */
int store_live_rollouts(store_t *s, const char *service, const char *id,
                        char (*ids)[EVENT_NAME_MAX], int *shards, size_t max,
                        size_t *n) CANARY_MUSTCHECK;

/*
 * What the finished releases (completed or rolled back) of service — every service when it is
 * "" — said about their counters' dispersion (the rollouts.dispersion column): per service and
 * counter, the sum of the baseline's steps and their number over the service's `last` newest
 * such releases, and how many releases had any. In service, then counter order; allocated here,
 * the caller free()s them. CANARY_OK (n may be 0), CANARY_EIO, CANARY_EUNAVAILABLE, CANARY_ENOMEM.
 */
struct store_dispersion_row {
  char service[EVENT_NAME_MAX];
  char counter[PLAN_NAME_MAX];
  double sum, k;
  long releases;
};
int store_dispersion(store_t *s, const char *service, int last, struct store_dispersion_row **rows,
                     size_t *n) CANARY_MUSTCHECK;

/*
 * `canaryd notify`'s record of deliveries (migration 009; store_notify.c). A delivery is one
 * notification to one sink (slack, pagerduty, statuspage, smtp), keyed by both.
 */
#define STORE_DELIVERY_STATE_MAP(XX)                                                               \
  XX(NEW, "new")             /* recorded, no attempt yet */                                        \
  XX(SENDING, "sending")     /* an attempt is in flight, or its relay died during it */            \
  XX(RETRY, "retry")         /* the last attempt failed: another may follow */                     \
  XX(DELIVERED, "delivered") /* the sink took it */                                                \
  XX(SKIPPED, "skipped")     /* nothing to send (an all-clear with nothing open) */                \
  XX(DEAD, "dead")           /* dead-lettered: refused, failed for good, or unknown */

enum store_delivery_state {
#define XX(name, wire) STORE_DELIVERY_##name,
  STORE_DELIVERY_STATE_MAP(XX)
#undef XX
};
const char *store_delivery_state_name(enum store_delivery_state st);

/*
 * Record the delivery of notification id to sink if it is not recorded yet (state new), and
 * say where it stands: *state and *attempts (attempts made so far). A delivery found 'sending'
 * was cut short by a crash: its outcome is unknown. CANARY_OK, CANARY_EIO, CANARY_EUNAVAILABLE.
 */
int store_delivery_begin(store_t *s, const char *id, const char *sink, const char *rollout,
                         enum store_delivery_state *state, int *attempts) CANARY_MUSTCHECK;

/*
 * Record the next attempt as in flight (state sending) and commit it: call it BEFORE the request
 * leaves. *attempt gets its number (1, 2, ...).
 */
int store_delivery_attempt(store_t *s, const char *id, const char *sink,
                           int *attempt) CANARY_MUSTCHECK;

/*
 * What the pager or status page has open for a rollout (notify_alerts). op OPEN records
 * remote_id (may be NULL) as open, opened by the notification; CLOSE closes it.
 */
enum store_alert_op { STORE_ALERT_NONE, STORE_ALERT_OPEN, STORE_ALERT_CLOSE };
struct store_alert_change {
  enum store_alert_op op;
  const char *key;       /* the rollout */
  const char *remote_id; /* OPEN: the sink's id for it (Statuspage's incident id), or NULL */
};

/*
 * Settle a delivery in one transaction: attempt's outcome (attempt 0: none was made), the
 * delivery's new state and detail, and the alert change (NULL: none) of the sink.
 * status: the HTTP status or SMTP reply code, 0 for none.
 */
int store_delivery_finish(store_t *s, const char *id, const char *sink, int attempt,
                          const char *outcome, long status, const char *detail,
                          enum store_delivery_state state,
                          const struct store_alert_change *alert) CANARY_MUSTCHECK;

/* Whether sink has an alert open for key; *remote_id (may be NULL) gets its id or "". */
int store_alert_get(store_t *s, const char *sink, const char *key, bool *open, char *remote_id,
                    size_t remote_len) CANARY_MUSTCHECK;

/*
 * Delete the deliveries settled for good (delivered, skipped) whose last change is more than
 * older_than_s seconds ago, their attempts with them, and the alerts closed as long: up to
 * `batch` deliveries (a short statement; call again while *deleted == batch). Dead-lettered and
 * open deliveries and open alerts are kept. *deleted: the deliveries deleted. migrations/014.
 */
int store_notify_prune(store_t *s, int64_t older_than_s, long batch,
                       long *deleted) CANARY_MUSTCHECK;

/* The decision with id (its evidence as decided); *found false when there is none. */
int store_decision(store_t *s, const char *id, struct decision *d, bool *found) CANARY_MUSTCHECK;

/* Last error message from the server or libpq (for logs). */
const char *store_last_error(const store_t *s);

#endif
