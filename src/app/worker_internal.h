/*
 * The worker's parts (docs/ARCHITECTURE.md): what worker.c (the loop), worker_shard.c
 * (queues, batches, shards), worker_apply.c (the event-time merge and applying),
 * worker_commit.c (batches to PostgreSQL) and worker_relay.c (the outbox to Kafka) share.
 * Private to src/app/worker*.c.
 */
#ifndef CANARY_APP_WORKER_INTERNAL_H
#define CANARY_APP_WORKER_INTERNAL_H

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "app/app_log.h"
#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/metrics_json.h"
#include "core/engine.h"
#include "core/history.h"
#include "core/idset.h"
#include "core/topic.h"
#include "store/store.h"
#include "app/worker.h"
#include "app/worker_http.h"

#define MAX_SHARDS 256
#define RELAY_BATCH 500
#define FREEZE_POLL_MS 500 /* how soon every worker obeys a freeze or an unfreeze */

/* One consumed message waiting for its turn (its bytes copied out of librdkafka's). */
struct pending {
  int64_t offset;
  int64_t time_ms;      /* event time; INT64_MIN when it does not read (released first) */
  int64_t arrived_ms;   /* wall clock, for the hold limit */
  int64_t arrived_mono; /* bus_monotonic_ms, for the other partitions' ends (release) */
  int64_t produced_ms;  /* the message's Kafka timestamp (its producer's clock); -1 none */
  uint64_t id_hash;     /* idset_hash of its event id as read at enqueue; 0 unknown */
  unsigned char *key, *value;
  size_t key_len, len;
};

struct queue {
  struct pending *items;
  size_t head, n, cap; /* items[head .. head+n) */
};

/* What a shard has decided since its last commit. */
struct dead {
  struct avro_buf payload;
  char *key;
  char id[96]; /* "dlq/<topic>/<partition>/<offset>": a re-applied batch cannot double it */
};

/* A person's event for command_audit (store_audit_row), copied: the event is gone by the commit. */
struct audit_entry {
  char source[96], event_id[EVENT_ID_MAX], rollout[EVENT_NAME_MAX], type[24];
  char action[EVENT_FLAG_MAX + 48], actor[EVENT_NAME_MAX], signature[16], outcome[16];
  char reason[EVENT_TEXT_MAX], detail[EVENT_TEXT_MAX + 256];
  int64_t time_ms;
};

struct batch {
  struct effects fx;
  struct rollout **dirty;
  size_t n_dirty, cap_dirty;
  uint64_t *ids;        /* idset_hash() of each id applied */
  int64_t *id_epochs;   /* the engine's id epoch each id was kept in */
  uint64_t *id_digests; /* the digest of each one's content, as the engine kept it */
  size_t n_ids, cap_ids, cap_id_epochs, cap_id_digests;
  struct dead *dlq;
  size_t n_dlq, cap_dlq;
  struct audit_entry *audit; /* worker_apply.c: every person's event, accepted or not */
  size_t n_audit, cap_audit;
  bool offsets_moved;
};

/*
 * Where the metric windows can be rebuilt from. After the first metrics message at offset o,
 * every message of the partition before the checkpoint's `next` had an event time <= max_ms.
 */
struct window_ckpt {
  int64_t max_ms, next;
};
#define WINDOW_CKPT_MAX 4096
#define WINDOW_CKPT_EVERY_MS 60000 /* of event time */

struct shard {
  int id;
  int64_t epoch;
  struct engine engine;
  struct queue q[BUS_INPUT_TOPICS];
  int64_t next[BUS_INPUT_TOPICS]; /* next offset to apply, per input topic (-1: from start) */
  int64_t seek[BUS_INPUT_TOPICS]; /* where consuming starts: next, or window_from for metrics */
  struct batch b;
  /* Metric windows after a restart (docs/ARCHITECTURE.md): messages of the metrics partition
   * below replay_until were applied before; they are replayed into the windows only. */
  int64_t replay_until;
  struct idset replayed;  /* ids replayed: a repeated id was ignored the first time */
  int64_t window_from;    /* stored: where a restart replays from (-1: the start) */
  int64_t keep_ms;        /* how far back of the clock a window can read */
  int64_t ids_pruned;     /* event_ids of epochs below this are deleted */
  int64_t clock_ms;       /* newest event time applied or replayed */
  int64_t metrics_max_ms; /* newest metric event time since window_from */
  struct window_ckpt ckpt[WINDOW_CKPT_MAX];
  int n_ckpt;
  /* The engine's earliest deadline (engine_next_deadline walks every rollout) and the rollout
   * that holds it, kept across events so that most events skip the walk; see fire_until. */
  bool due_known;
  int64_t due_ms;
  size_t due_index;
  uint64_t evaluations_seen; /* its rollouts' rule evaluations already counted (/metrics) */
  /* Its last commit failed (the store's code) while the shard went on applying: memory is
   * ahead of the store. Settled at the next safe point (shard_settle): dropped when fenced, else
   * started over from the store; what memory holds now is never committed. */
  int failed;
};

/* Input topics are indexed by their enum topic (core/topic.h): TOPIC_METRICS is the one that
 * carries metric events. */
_Static_assert(BUS_INPUT_TOPICS == TOPIC_INPUT_COUNT,
               "bus_input_topics[] is indexed by enum topic");

/*
 * The commit sent and not yet confirmed (one per connection: store_commit_send). What it changes
 * in the worker — counters, window_from, ids_pruned, waking the relay — waits for its outcome.
 */
struct in_flight {
  bool active;
  int shard;
  int64_t epoch;
  size_t n_rows, n_decisions;
  int64_t window_from, prune_below;
  /* for /metrics, counted when it is confirmed */
  int64_t sent_us, n_events;
  int64_t by_action[DECISION_ACTION_COUNT];
};

struct worker {
  const struct worker_config *cfg;
  /* Fault injection for tests (CANARY_FAULT_APPLY_EVERY=n): every n-th message that reaches the
   * engine fails as if it ran out of memory, after its deadlines fired (apply_failed). */
  long fault_every, fault_n;
  /* CANARY_FAULT_LOAD_EVERY=n: every n-th shard load fails with an I/O error, as on a connection
   * that a pipelined commit left unusable (shard_fill). */
  long fault_load_every, fault_load_n;
  store_t *store;
  store_t *relay_store;
  bus_consumer_t *consumer;
  bus_producer_t *producer;
  avro_codec_t *codec;
  struct shard *shards[MAX_SHARDS];
  volatile sig_atomic_t *running;
  int64_t last_tick_ms, last_stats_ms;
  /* commit scratch, reused */
  struct avro_buf *enc;
  struct store_outbox_row *rows;
  const struct decision **decisions;
  struct store_audit_row *audit_rows;
  size_t cap_enc, cap_rows, cap_decisions, cap_audit_rows;
  struct jbuf slack;
  struct in_flight in_flight;
  /*
   * The relay runs in a thread of its own with its own PostgreSQL connection (relay_store), so
   * publishing — the producer's first connection, a flush waiting for acknowledgements, a broker
   * that is away — never holds up consuming and committing. Commits wake it up.
   */
  pthread_t relay_thread;
  bool relay_started;
  pthread_mutex_t relay_mu;
  pthread_cond_t relay_cv;
  bool outbox_dirty;   /* rows may be waiting: set by commits and at start (under relay_mu) */
  bool relay_stopping; /* the loop has ended: publish what is left, then return (relay_mu) */
  int64_t *acked;      /* relay thread only */
  size_t n_acked, cap_acked;
  /* counters for the periodic progress line */
  int64_t applied, duplicates, conflicts, dead_letters, decisions_made, commits, replayed;
  /* commit scratch: the dirty rollouts' metric states and zscore histories, where changed */
  struct rollout_metrics **metric_states, **zscores;
  size_t cap_metric_states;
  struct history_points history; /* commit scratch: the dashboard's points (core/history) */
  _Atomic int64_t published;     /* written by the relay thread */
  _Atomic int64_t set_aside;     /* outbox rows Kafka refused for good (relay thread) */
  /* The relay thread's own encoder and buffers, for the notices of a row set aside. */
  avro_codec_t *relay_codec;
  struct avro_buf notice_buf[2];
  struct jbuf notice_slack;
  /*
   * /metrics (--http-listen; NULL: off, and none of this is kept). The loop counts in plain
   * fields and publishes a snapshot once a second (worker_metrics.c); the relay thread in
   * atomics. The HTTP thread only ever reads the snapshot.
   */
  worker_http_t *http;
  int64_t last_snapshot_ms;
  struct worker_snapshot *snap; /* the loop's scratch for it */
  int64_t commit_failures, decisions_by_action[DECISION_ACTION_COUNT];
  struct prom_hist batch_events, commit_seconds, apply_seconds;
  uint64_t rule_evaluations;
  bool started;   /* worker_start succeeded */
  bool caught_up; /* every partition at its end since the last assignment (readiness) */
  /* The freeze (store_freeze, migrations/013): read every FREEZE_POLL_MS between passes; while
   * set, nothing is applied nor fired and the input partitions are paused (worker.c). */
  bool frozen;
  bool freeze_unread; /* the last read of it failed (logged once) */
  int64_t freeze_checked_ms;
  _Atomic int64_t relay_errors, relay_backlog, relay_progress_ms;
  _Atomic int64_t relay_oldest_ms; /* age of the oldest unpublished row */
};

/* Tell the relay thread that the outbox may hold rows. */
static inline void relay_wake(struct worker *w) {
  pthread_mutex_lock(&w->relay_mu);
  w->outbox_dirty = true;
  pthread_cond_signal(&w->relay_cv);
  pthread_mutex_unlock(&w->relay_mu);
}

static inline int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *d = malloc(n + 1);
  if (d) {
    if (n)
      memcpy(d, p, n);
    d[n] = '\0';
  }
  return d;
}

/* Make room for one more element in *items; false on ENOMEM. */
static inline bool reserve(void *items, size_t *cap, size_t n, size_t elem) {
  void **p = items;
  if (n < *cap)
    return true;
  size_t c = *cap ? *cap * 2 : 16;
  void *q = realloc(*p, c * elem);
  if (!q)
    return false;
  *p = q;
  *cap = c;
  return true;
}

/* worker.c */
int worker_start(struct worker *w);

/* worker_apply.c */
int worker_fire_until(struct shard *s, int64_t t);
int64_t worker_advance_window_from(struct shard *s);
void worker_apply_one(struct worker *w, struct shard *s, int topic, const struct pending *p);
bool worker_release(struct worker *w, struct shard *s, int64_t now_wall);

/* worker_commit.c */
void worker_commit(struct worker *w, struct shard *s);

/* worker_metrics.c */
void worker_metrics_tick(struct worker *w, int64_t now_wall, bool idle);
bool worker_release_timed(struct worker *w, struct shard *s, int64_t now_wall);

/* worker_relay.c */
void worker_on_delivery(void *ctx, int64_t opaque, bool ok, const char *error);
bool worker_relay_stopping(struct worker *w);
void worker_relay(struct worker *w, bool final);
void *worker_relay_main(void *arg);

/* worker_shard.c */
void worker_pending_free(struct pending *p);
bool worker_queue_push(struct queue *q, const struct pending *p);
struct pending *worker_queue_front(struct queue *q);
void worker_queue_pop(struct queue *q);
void worker_batch_clear(struct batch *b);
bool worker_batch_empty(const struct batch *b);
void worker_mark_dirty(struct batch *b, struct rollout *r);
void worker_mark_all_dirty(struct shard *s);
void worker_shard_free(struct shard *s);
bool worker_store_back(struct worker *w, store_t *st);
void worker_commit_collect(struct worker *w);
int worker_on_assigned(void *ctx, int id, int64_t next[BUS_INPUT_TOPICS]);
void worker_on_revoked(void *ctx, int id);
bool worker_shard_rewind(struct worker *w, struct shard *s);
struct shard *worker_shard_settle(struct worker *w, struct shard *s);
/* The codecs and scratch buffers of a worker (not its store, consumer or producer): stop(), and
 * the rebuild, which drives a worker of its own. Zeroed fields are fine. */
void worker_buffers_free(struct worker *w);
/* Read the tests' fault injection (CANARY_FAULT_*_EVERY) into w, saying so in the log. */
void worker_faults_from_env(struct worker *w);

#endif
