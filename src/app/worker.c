/*
 * The worker loop. A shard (one partition number across the three input topics) is owned by one
 * worker at a time and has its own engine, so its events replay in one order:
 *
 *   poll ─▶ queue per topic ─▶ release in event-time order ─▶ engine ─▶ batch ─▶ commit ─▶ relay
 *
 * "Now" is event time: an event is applied at its own time, after every deadline due before it
 * has fired at its exact time — as `canaryctl simulate` does, so a replay of the same input
 * decides the same. While the input is idle (every partition caught up), the wall clock fires
 * due deadlines (stage minimums and maximums), each still decided at its exact deadline time.
 */
#include "app/worker.h"

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
#include "core/idset.h"
#include "core/topic.h"
#include "store/store.h"

#define MAX_SHARDS 256
#define RELAY_BATCH 500

/* One consumed message waiting for its turn (its bytes copied out of librdkafka's). */
struct pending {
  int64_t offset;
  int64_t time_ms;       /* event time; INT64_MIN when it does not read (released first) */
  int64_t arrived_ms;    /* wall clock, for the hold limit */
  int64_t arrived_mono;  /* bus_monotonic_ms, for the other partitions' ends (release) */
  int64_t produced_ms;   /* the message's Kafka timestamp (its producer's clock); -1 none */
  uint64_t id_hash;      /* idset_hash of its event id as read at enqueue; 0 unknown */
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

struct batch {
  struct effects fx;
  struct rollout **dirty;
  size_t n_dirty, cap_dirty;
  uint64_t *ids;            /* idset_hash() of each id applied */
  int64_t *id_epochs;       /* the engine's id epoch each id was kept in */
  uint64_t *id_digests;     /* the digest of each one's content, as the engine kept it */
  size_t n_ids, cap_ids, cap_id_epochs, cap_id_digests;
  struct dead *dlq;
  size_t n_dlq, cap_dlq;
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
  struct idset replayed;          /* ids replayed: a repeated id was ignored the first time */
  int64_t window_from;            /* stored: where a restart replays from (-1: the start) */
  int64_t keep_ms;                /* how far back of the clock a window can read */
  int64_t ids_pruned;             /* event_ids of epochs below this are deleted */
  int64_t clock_ms;               /* newest event time applied or replayed */
  int64_t metrics_max_ms;         /* newest metric event time since window_from */
  struct window_ckpt ckpt[WINDOW_CKPT_MAX];
  int n_ckpt;
  /* The engine's earliest deadline (engine_next_deadline walks every rollout) and the rollout
   * that holds it, kept across events so that most events skip the walk; see fire_until. */
  bool due_known;
  int64_t due_ms;
  size_t due_index;
  /* Its last commit failed (the store's code) while the shard went on applying: memory is
   * ahead of the store. Settled at the next safe point (shard_settle): dropped when fenced, else
   * started over from the store; what memory holds now is never committed. */
  int failed;
};

/* Input topics are indexed by their enum topic (core/topic.h): TOPIC_METRICS is the one that
 * carries metric events. */
_Static_assert(BUS_INPUT_TOPICS == TOPIC_INPUT_COUNT, "bus_input_topics[] is indexed by enum topic");

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
};

struct worker {
  const struct worker_config *cfg;
  /* Fault injection for tests (CANARY_FAULT_APPLY_EVERY=n): every n-th message that reaches the
   * engine fails as if it ran out of memory, after its deadlines fired (apply_failed). */
  long fault_every, fault_n;
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
  size_t cap_enc, cap_rows, cap_decisions;
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
  bool outbox_dirty;  /* rows may be waiting: set by commits and at start (under relay_mu) */
  bool relay_stopping; /* the loop has ended: publish what is left, then return (relay_mu) */
  int64_t *acked;      /* relay thread only */
  size_t n_acked, cap_acked;
  /* counters for the periodic progress line */
  int64_t applied, duplicates, conflicts, dead_letters, decisions_made, commits, replayed;
  /* commit scratch: the dirty rollouts' metric states and zscore histories, where changed */
  struct rollout_metrics **metric_states, **zscores;
  size_t cap_metric_states;
  _Atomic int64_t published; /* written by the relay thread */
  _Atomic int64_t set_aside; /* outbox rows Kafka refused for good (relay thread) */
  /* The relay thread's own encoder and buffers, for the notices of a row set aside. */
  avro_codec_t *relay_codec;
  struct avro_buf notice_buf[2];
  struct jbuf notice_slack;
};

/* Tell the relay thread that the outbox may hold rows. */
static void relay_wake(struct worker *w) {
  pthread_mutex_lock(&w->relay_mu);
  w->outbox_dirty = true;
  pthread_cond_signal(&w->relay_cv);
  pthread_mutex_unlock(&w->relay_mu);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *d = malloc(n + 1);
  if (d) {
    if (n)
      memcpy(d, p, n);
    d[n] = '\0';
  }
  return d;
}

/* Make room for one more element in *items; false on ENOMEM. */
static bool reserve(void *items, size_t *cap, size_t n, size_t elem) {
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

/* ---- queues ----------------------------------------------------------------------------- */

static void pending_free(struct pending *p) {
  free(p->key);
  free(p->value);
}

static bool queue_push(struct queue *q, const struct pending *p) {
  if (q->head + q->n == q->cap && q->head) { /* compact before growing */
    memmove(q->items, q->items + q->head, q->n * sizeof *q->items);
    q->head = 0;
  }
  if (!reserve(&q->items, &q->cap, q->head + q->n, sizeof *q->items))
    return false;
  q->items[q->head + q->n++] = *p;
  return true;
}

static struct pending *queue_front(struct queue *q) { return q->n ? &q->items[q->head] : NULL; }

static void queue_pop(struct queue *q) {
  pending_free(&q->items[q->head]);
  q->head++;
  if (!--q->n)
    q->head = 0;
}

static void queue_clear(struct queue *q) {
  while (q->n)
    queue_pop(q);
}

/* ---- batches ---------------------------------------------------------------------------- */

static void batch_clear(struct batch *b) {
  effects_clear(&b->fx);
  b->n_dirty = 0;
  b->n_ids = 0;
  for (size_t i = 0; i < b->n_dlq; i++) {
    avro_buf_free(&b->dlq[i].payload);
    free(b->dlq[i].key);
  }
  b->n_dlq = 0;
  b->offsets_moved = false;
}

static void batch_free(struct batch *b) {
  batch_clear(b);
  effects_free(&b->fx);
  free(b->dirty);
  free(b->ids);
  free(b->id_epochs);
  free(b->id_digests);
  free(b->dlq);
  memset(b, 0, sizeof *b);
}

static bool batch_empty(const struct batch *b) {
  return !b->fx.n && !b->n_dirty && !b->n_ids && !b->n_dlq && !b->offsets_moved;
}

static void mark_dirty(struct batch *b, struct rollout *r) {
  for (size_t i = 0; i < b->n_dirty; i++)
    if (b->dirty[i] == r)
      return;
  if (reserve(&b->dirty, &b->cap_dirty, b->n_dirty, sizeof *b->dirty))
    b->dirty[b->n_dirty++] = r;
}

static void mark_all_dirty(struct shard *s) {
  for (size_t i = 0; i < s->engine.n_rollouts; i++)
    mark_dirty(&s->b, s->engine.rollouts[i]);
}

/* ---- shards ----------------------------------------------------------------------------- */

static void shard_reset(struct shard *s) {
  s->due_known = false;
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    queue_clear(&s->q[t]);
  batch_clear(&s->b);
  engine_destroy(&s->engine);
  idset_free(&s->replayed);
  s->n_ckpt = 0;
}

static void shard_free(struct shard *s) {
  if (!s)
    return;
  shard_reset(s);
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    free(s->q[t].items);
  batch_free(&s->b);
  free(s);
}

/* Reconnect to PostgreSQL, as long as it takes (or until shutdown). */
static bool store_back(struct worker *w, store_t *st) {
  while (*w->running) {
    if (store_reconnect(st, 30000) == CANARY_OK) {
      log_msg(LOG_LVL_NOTICE, NULL, "PostgreSQL is back");
      return true;
    }
    log_msg(LOG_LVL_WARNING, NULL, "PostgreSQL still unavailable; retrying");
  }
  return false;
}

/*
 * Wait for the commit in flight, if any, and take its outcome: only a confirmed commit is
 * counted, moves window_from and ids_pruned, and wakes the relay (which publishes only what the
 * store holds, so nothing of an unconfirmed batch is ever published). A failed one marks its
 * shard (s->failed) for shard_settle: freeing or reloading it here could pull a shard from under
 * a caller. Runs before anything else uses the store connection.
 */
static void commit_collect(struct worker *w) {
  struct in_flight f = w->in_flight;
  if (!f.active)
    return;
  w->in_flight.active = false;
  int rc = store_commit_wait(w->store);
  struct shard *s = w->shards[f.shard];
  if (s && s->epoch != f.epoch)
    s = NULL; /* reloaded since: cannot happen, loads collect first */
  switch (rc) {
  case CANARY_OK:
    w->commits++;
    w->decisions_made += (int64_t)f.n_decisions;
    if (f.n_rows > 0)
      relay_wake(w);
    if (s && f.window_from > 0)
      s->window_from = f.window_from;
    if (s && f.prune_below != 0)
      s->ids_pruned = f.prune_below;
    return;
  case CANARY_EFENCED:
    log_msg(LOG_LVL_WARNING, NULL, "shard %d: another worker owns it now (epoch %" PRId64
            " is stale); dropping it", f.shard, f.epoch);
    break;
  case CANARY_EUNAVAILABLE:
    log_msg(LOG_LVL_WARNING, NULL, "shard %d: PostgreSQL went away during a commit; "
            "reconnecting, then resuming from what was stored", f.shard);
    break;
  default:
    log_msg(LOG_LVL_ERR, NULL, "shard %d: commit failed: %s (%s); resuming from what was stored",
            f.shard, canary_strerror(rc), store_last_error(w->store));
    break;
  }
  if (s)
    s->failed = rc;
}

/* Claim the shard and load its state from the store into a fresh engine. */
static int shard_fill(struct worker *w, struct shard *s) {
  struct store_offsets off;
  commit_collect(w); /* the connection is ours again */
  s->due_known = false; /* a fresh engine */
  int rc = engine_init(&s->engine, w->cfg->plan);
  if (rc == CANARY_OK)
    rc = store_claim_shard(w->store, s->id, w->cfg->worker_id, &s->epoch);
  if (rc == CANARY_OK)
    rc = store_load_shard(w->store, s->id, &s->engine, &off);
  if (rc == CANARY_OK) {
    memcpy(s->next, off.next, sizeof s->next);
    memcpy(s->seek, off.next, sizeof s->seek);
    /* The windows are not stored: replay the metrics partition from window_from up to where
     * the store says the shard got to, into the windows only. */
    int mt = TOPIC_METRICS;
    s->window_from = off.window_from;
    s->replay_until = s->next[mt];
    if (s->next[mt] > 0 && s->window_from < s->next[mt])
      s->seek[mt] = s->window_from; /* -1: from the partition's start */
    struct mstore_config mc;
    mstore_config_default(&mc);
    mstore_config_for_plan(&mc, &s->engine.mp);
    int64_t span = mc.retention_ms > s->engine.mp.replay_ms ? mc.retention_ms
                                                             : s->engine.mp.replay_ms;
    s->keep_ms = span + WINDOW_COARSE_MS_DEFAULT + mc.bucket_ms;
    s->clock_ms = s->metrics_max_ms = INT64_MIN;
    s->ids_pruned = INT64_MIN; /* the first commit deletes what the load left out */
    s->n_ckpt = 0;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "shard=%d epoch=%" PRId64, s->id, s->epoch);
    log_msg(LOG_LVL_NOTICE, ctx, "shard loaded: %zu rollouts, next offsets %" PRId64 "/%" PRId64
            "/%" PRId64 "; metric windows replayed from offset %" PRId64,
            s->engine.n_rollouts, s->next[0], s->next[1], s->next[2],
            s->seek[mt] == s->next[mt] ? s->next[mt] : s->window_from < 0 ? 0 : s->window_from);
    return CANARY_OK;
  }
  engine_destroy(&s->engine);
  log_msg(LOG_LVL_ERR, NULL, "cannot load shard %d: %s (%s)", s->id, canary_strerror(rc),
          store_last_error(w->store));
  return rc;
}

/* Claim and load a shard; retried while PostgreSQL is away, since the group gave it to us. */
static struct shard *shard_load(struct worker *w, int id) {
  struct shard *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->id = id;
  for (;;) {
    int rc = shard_fill(w, s);
    if (rc == CANARY_OK)
      return s;
    if (rc != CANARY_EUNAVAILABLE || !store_back(w, w->store)) {
      free(s);
      return NULL;
    }
  }
}

static int on_assigned(void *ctx, int id, int64_t next[BUS_INPUT_TOPICS]) {
  struct worker *w = ctx;
  if (id < 0 || id >= MAX_SHARDS) {
    log_msg(LOG_LVL_ERR, NULL, "shard %d is beyond the %d this build supports", id, MAX_SHARDS);
    return -1;
  }
  shard_free(w->shards[id]);
  w->shards[id] = shard_load(w, id);
  if (!w->shards[id])
    return -1;
  memcpy(next, w->shards[id]->seek, sizeof w->shards[id]->seek);
  return 0;
}

static void on_revoked(void *ctx, int id) {
  struct worker *w = ctx;
  commit_collect(w); /* a hand-over waits for the shard's last commit */
  if (id < 0 || id >= MAX_SHARDS || !w->shards[id])
    return;
  log_msg(LOG_LVL_NOTICE, NULL, "shard %d revoked", id);
  shard_free(w->shards[id]);
  w->shards[id] = NULL;
}

/*
 * Start the shard over from what the store has: after a commit whose outcome is unknown (the
 * connection dropped during COMMIT) or that failed, memory may be ahead of the store. The
 * stored offsets say where the truth ends; the consumer goes back there.
 */
static void shard_rewind(struct worker *w, struct shard *s) {
  s->failed = 0;
  for (;;) {
    shard_reset(s);
    int rc = shard_fill(w, s);
    if (rc == CANARY_OK)
      break;
    if (!*w->running || (rc == CANARY_EUNAVAILABLE && !store_back(w, w->store)))
      return;
    if (rc != CANARY_EUNAVAILABLE)
      return; /* logged; the shard stays empty until the next rebalance */
  }
  if (bus_consumer_seek_shard(w->consumer, s->id, s->seek) != CANARY_OK)
    log_msg(LOG_LVL_ERR, NULL, "shard %d: cannot seek back to the stored offsets", s->id);
}

/* After a failed commit (s->failed): drop a fenced shard, rewind any other. NULL when dropped. */
static struct shard *shard_settle(struct worker *w, struct shard *s) {
  if (s->failed == CANARY_EFENCED) {
    w->shards[s->id] = NULL;
    shard_free(s);
    return NULL;
  }
  shard_rewind(w, s);
  return s;
}

/* ---- applying events -------------------------------------------------------------------- */

/*
 * A dead letter wraps the rejected message, but never more of it than the producer may send:
 * a message near the broker's limit, wrapped whole, made a dead letter too large to publish,
 * and the relay retried it for ever with every later output of the shard behind it (issue 10).
 * Beyond DLQ_ORIGINAL_MAX bytes the dead letter keeps the original's head, and its reason
 * ends with the whole length and SHA-256; keys are cut at DLQ_KEY_MAX.
 */
#define DLQ_ORIGINAL_MAX 65536
#define DLQ_KEY_MAX 1024

static void sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  out[0] = '\0';
  if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
    return;
  for (unsigned int i = 0; i < n && i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void dead_letter(struct worker *w, struct shard *s, int topic, const struct pending *p,
                        const char *reason) {
  struct batch *b = &s->b;
  char ctx[160];
  snprintf(ctx, sizeof ctx, "topic=%s partition=%d offset=%" PRId64, bus_input_topics[topic],
           s->id, p->offset);
  log_msg(LOG_LVL_WARNING, ctx, "dead letter: %s", reason);
  w->dead_letters++;
  if (!reserve(&b->dlq, &b->cap_dlq, b->n_dlq, sizeof *b->dlq))
    return;
  struct dead *d = &b->dlq[b->n_dlq];
  memset(d, 0, sizeof *d);
  size_t len = p->len < DLQ_ORIGINAL_MAX ? p->len : DLQ_ORIGINAL_MAX;
  size_t key_len = p->key_len < DLQ_KEY_MAX ? p->key_len : DLQ_KEY_MAX;
  char why[768];
  if (len < p->len) {
    char hex[65];
    sha256_hex(p->value, p->len, hex);
    snprintf(why, sizeof why, "%s; original %zu bytes (sha256 %s), its first %zu kept", reason,
             p->len, hex, len);
    reason = why;
  }
  if (avro_codec_encode_dlq(w->codec, p->value, len, bus_input_topics[topic], s->id, p->offset,
                            p->key, key_len, reason, wall_ms(), &d->payload) != CANARY_OK) {
    log_msg(LOG_LVL_ERR, ctx, "cannot encode the dead letter");
    avro_buf_free(&d->payload);
    return;
  }
  d->key = p->key ? (char *)dup_bytes(p->key, key_len) : NULL;
  snprintf(d->id, sizeof d->id, "dlq/%s/%d/%" PRId64, bus_input_topics[topic], s->id, p->offset);
  b->n_dlq++;
}

/* A rollout is about to be ticked (a metric evaluation is a tick too): it will change. */
static void mark_ticked(void *ctx, size_t i) {
  struct shard *s = ctx;
  mark_dirty(&s->b, s->engine.rollouts[i]);
}

/* The earliest deadline of the shard and who holds it, by walking every rollout. */
static void due_recompute(struct shard *s) {
  s->due_ms = ROLLOUT_NO_DEADLINE;
  s->due_index = 0;
  for (size_t i = 0; i < s->engine.n_rollouts; i++) {
    int64_t d = engine_rollout_deadline(&s->engine, i);
    if (d < s->due_ms) {
      s->due_ms = d;
      s->due_index = i;
    }
  }
  s->due_known = true;
}

/*
 * After engine_apply of ev: keep the cached earliest deadline when it provably still holds.
 * An event applied to one existing rollout changes that rollout and its metrics only (its step
 * gets the plan, the global flags and the compiled rules read-only: struct step_ctx), so only
 * its deadline can move: take it if earlier, and walk again only when it was the one holding the
 * earliest. Anything else — a global flag, a new rollout, a duplicate or a rejection, where the
 * engine took another path — forgets the cache: the next fire_until walks.
 */
static void due_after_apply(struct shard *s, const struct event *ev, enum apply_outcome outcome,
                            size_t rollouts_before) {
  size_t i = s->engine.n_rollouts;
  if (s->due_known && outcome == APPLY_APPLIED && ev->type != EVENT_FLAG_SET &&
      ev->type != EVENT_ROLLOUT_REQUESTED && s->engine.n_rollouts == rollouts_before)
    i = engine_index(&s->engine, ev->rollout);
  if (i == s->engine.n_rollouts) {
    s->due_known = false;
    return;
  }
  int64_t d = engine_rollout_deadline(&s->engine, i);
  if (i == s->due_index)
    due_recompute(s); /* the holder moved, maybe later: another rollout may now be first */
  else if (d < s->due_ms) {
    s->due_ms = d;
    s->due_index = i;
  }
}

/*
 * Fire the shard's deadlines up to t, each at its own time. Most events come before the next
 * deadline: the cached one answers without walking the rollouts. A tick can change any rollout
 * it fired, so the walk that ticks (engine_tick_walk) also finds the next deadline and marks
 * the rollouts it ticked for the batch.
 */
static int fire_until(struct shard *s, int64_t t) {
  for (;;) {
    if (!s->due_known)
      due_recompute(s);
    int64_t d = s->due_ms;
    if (d > t || d == ROLLOUT_NO_DEADLINE) /* "none" is a sentinel, never a time */
      return CANARY_OK;
    /* the walk that ticks also finds the next deadline */
    int rc = engine_tick_walk(&s->engine, d, &s->b.fx, mark_ticked, s, &s->due_ms,
                              &s->due_index);
    s->due_known = rc == CANARY_OK;
    if (rc != CANARY_OK)
      return rc;
  }
}

/* A metric event time seen at offset: keep a checkpoint now and then (see struct window_ckpt). */
static void note_metric(struct shard *s, int64_t time_ms, int64_t offset) {
  if (time_ms > s->metrics_max_ms)
    s->metrics_max_ms = time_ms;
  if (s->n_ckpt && s->metrics_max_ms < s->ckpt[s->n_ckpt - 1].max_ms + WINDOW_CKPT_EVERY_MS) {
    s->ckpt[s->n_ckpt - 1].next = offset + 1; /* the last one moves along */
    s->ckpt[s->n_ckpt - 1].max_ms = s->metrics_max_ms;
    return;
  }
  if (s->n_ckpt == WINDOW_CKPT_MAX) { /* thin out: keep every other one */
    for (int i = 0; i < WINDOW_CKPT_MAX / 2; i++)
      s->ckpt[i] = s->ckpt[2 * i + 1];
    s->n_ckpt = WINDOW_CKPT_MAX / 2;
  }
  s->ckpt[s->n_ckpt++] = (struct window_ckpt){s->metrics_max_ms, offset + 1};
}

/*
 * The new window_from, or -1 when it does not move: the furthest checkpoint before which every
 * metric event is older than anything a window can still read (the clock minus keep_ms).
 */
static int64_t advance_window_from(struct shard *s) {
  if (s->clock_ms == INT64_MIN)
    return -1;
  int64_t cutoff = s->clock_ms - s->keep_ms;
  int k = -1;
  for (int i = 0; i < s->n_ckpt && s->ckpt[i].max_ms < cutoff; i++)
    k = i;
  if (k < 0 || s->ckpt[k].next <= s->window_from)
    return -1;
  int64_t from = s->ckpt[k].next;
  memmove(s->ckpt, s->ckpt + k + 1, (size_t)(s->n_ckpt - k - 1) * sizeof *s->ckpt);
  s->n_ckpt -= k + 1;
  return from;
}

/*
 * Whether an event's time is believable for the message that carried it: not more than
 * max_skew_ms ahead of its producer's clock (the Kafka timestamp, which a replay sees again, so
 * the answer never changes). A time far ahead is a clock or unit error, or an attack: it would
 * fire every deadline on the shard. Writes the reason when not.
 */
static bool time_believable(const struct worker *w, const struct pending *p,
                            const struct event *ev, char *why, size_t len) {
  int64_t skew = w->cfg->max_skew_ms;
  if (skew <= 0 || p->produced_ms <= 0 || ev->time_ms <= p->produced_ms + skew)
    return true;
  snprintf(why, len,
           "time: %" PRId64 " ms since 1970 is %" PRId64 " s ahead of the message's Kafka "
           "timestamp %" PRId64 " (more than --max-skew-ms %" PRId64 "): a clock or unit error",
           ev->time_ms, (ev->time_ms - p->produced_ms) / 1000, p->produced_ms, skew);
  return false;
}

/* A metrics message applied before this restart: into the windows only (engine_replay_metrics). */
static void replay_one(struct worker *w, struct shard *s, const struct pending *p) {
  struct event ev;
  char why[512];
  enum apply_outcome admitted;
  if (avro_codec_decode_event(w->codec, p->value, p->len, &ev, why, sizeof why) != CANARY_OK)
    return; /* it went to the dead letters the first time */
  if (idset_contains(&s->replayed, ev.id))
    return; /* a later copy: the first time it was a duplicate, and moved nothing */
  /* as apply_one: what it refused moved no clock (its ids were counted: no id check here) */
  if (topic_of_event(ev.type) != TOPIC_METRICS ||
      !time_believable(w, p, &ev, why, sizeof why) ||
      !engine_admit(&s->engine, &ev, false, &admitted, why, sizeof why))
    return;
  if (ev.time_ms > s->clock_ms)
    s->clock_ms = ev.time_ms;
  note_metric(s, ev.time_ms, p->offset);
  int rc = engine_replay_metrics(&s->engine, &ev);
  if (rc == CANARY_OK) /* as engine_apply: an id is remembered once its event went in */
    rc = idset_add(&s->replayed, ev.id);
  if (rc == CANARY_ENOMEM)
    log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory replaying metric windows", s->id);
  s->due_known = false; /* the windows changed: so may the next metric evaluation */
  w->replayed++;
}

/*
 * The engine could not apply an event (out of memory, mostly): the shard's memory may be half
 * way through it, and the batch's offsets are already past it. Nothing of the batch may be
 * committed: the shard is marked failed, release() stops, and the main loop rewinds it to what
 * the store holds (shard_settle), so the event is applied again — retried, never skipped.
 */
static void apply_failed(struct shard *s, const struct pending *p, int rc) {
  log_msg(LOG_LVL_ERR, NULL,
          "shard %d: applying the message at offset %" PRId64 " failed (%s): the batch is "
          "dropped and the shard rewound to the store, to apply it again",
          s->id, p->offset, canary_strerror(rc));
  s->failed = rc;
}

static void apply_one(struct worker *w, struct shard *s, int topic, const struct pending *p) {
  struct event ev;
  char why[512];
  if (topic == TOPIC_METRICS && p->offset < s->replay_until)
    return replay_one(w, s, p);
  if (topic == TOPIC_METRICS && s->replayed.n) /* the replay is over */
    idset_free(&s->replayed);
  s->next[topic] = p->offset + 1;
  s->b.offsets_moved = true;
  int rc = avro_codec_decode_event(w->codec, p->value, p->len, &ev, why, sizeof why);
  if (rc != CANARY_OK)
    return dead_letter(w, s, topic, p, why);
  if (topic_of_event(ev.type) != (enum topic)topic) {
    snprintf(why, sizeof why, "type %s belongs on %s, not %s", event_type_name(ev.type),
             avro_codec_topic_of(ev.type), bus_input_topics[topic]);
    return dead_letter(w, s, topic, p, why);
  }
  if (!time_believable(w, p, &ev, why, sizeof why))
    return dead_letter(w, s, topic, p, why);
  /* Only an event the engine will take moves the shard's clock (and fires its deadlines). */
  enum apply_outcome admitted;
  if (!engine_admit(&s->engine, &ev, true, &admitted, why, sizeof why)) {
    if (admitted == APPLY_DUPLICATE) { /* a redelivery: silent, or replays flood the DLQ */
      w->duplicates++;
      return;
    }
    /* A conflict (the id reused for other content) goes where every refused event goes: a
     * dead letter with the reason, keyed by its offset, so a replay of the batch cannot
     * double it. */
    w->conflicts += admitted == APPLY_CONFLICT;
    return dead_letter(w, s, topic, p, why);
  }
  if (ev.time_ms > s->clock_ms)
    s->clock_ms = ev.time_ms;
  if (topic == TOPIC_METRICS)
    note_metric(s, ev.time_ms, p->offset);
  if ((rc = fire_until(s, ev.time_ms)) != CANARY_OK)
    return apply_failed(s, p, rc);
  if (w->fault_every > 0 && ++w->fault_n % w->fault_every == 0)
    return apply_failed(s, p, CANARY_ENOMEM); /* injected (tests) */
  enum apply_outcome outcome;
  size_t before = s->b.fx.n, rollouts_before = s->engine.n_rollouts;
  rc = engine_apply(&s->engine, &ev, ev.time_ms, &s->b.fx, &outcome, why, sizeof why);
  if (rc == CANARY_OK)
    due_after_apply(s, &ev, outcome, rollouts_before);
  else
    s->due_known = false;
  if (rc != CANARY_OK)
    return apply_failed(s, p, rc);
  switch (outcome) {
  case APPLY_DUPLICATE:
    w->duplicates++;
    return;
  case APPLY_CONFLICT:
    w->conflicts++;
    return dead_letter(w, s, topic, p, why);
  case APPLY_REJECTED:
    return dead_letter(w, s, topic, p, why);
  case APPLY_APPLIED:
    break;
  }
  w->applied++;
  if (!reserve(&s->b.ids, &s->b.cap_ids, s->b.n_ids, sizeof *s->b.ids) ||
      !reserve(&s->b.id_epochs, &s->b.cap_id_epochs, s->b.n_ids, sizeof *s->b.id_epochs) ||
      !reserve(&s->b.id_digests, &s->b.cap_id_digests, s->b.n_ids, sizeof *s->b.id_digests))
    return apply_failed(s, p, CANARY_ENOMEM); /* its id would not be stored: do it again */
  uint64_t idh = idset_hash(ev.id), digest = EVENT_DIGEST_UNKNOWN;
  (void)engine_seen(&s->engine, idh, &digest); /* kept by the apply: a restart compares it */
  s->b.id_epochs[s->b.n_ids] = s->engine.id_epoch;
  s->b.id_digests[s->b.n_ids] = digest;
  s->b.ids[s->b.n_ids++] = idh;
  struct rollout *r;
  if (ev.type == EVENT_FLAG_SET && !ev.rollout[0])
    mark_all_dirty(s);
  else if ((r = engine_find(&s->engine, ev.rollout)))
    mark_dirty(&s->b, r);
  for (size_t i = before; i < s->b.fx.n; i++)
    if (s->b.fx.items[i].kind == EFFECT_DECISION && log_enabled(LOG_LVL_INFO)) {
      const struct decision *d = &s->b.fx.items[i].u.decision;
      char ctx[128];
      snprintf(ctx, sizeof ctx, "rollout=%s shard=%d", d->rollout, s->id);
      log_msg(LOG_LVL_INFO, ctx, "decision %s: %s %s (%s): %s", d->id,
              decision_action_name(d->action), d->to_stage, rollout_state_name(d->state),
              d->reason);
    }
}

/*
 * Release queued messages in event-time order across the shard's three topic-partitions. The
 * earliest head goes first, but only when every other partition either has a message queued
 * (so nothing earlier can still come from it) or is at its end as known since the head
 * arrived, and grace_ms have passed: messages produced at about the same moment to different
 * partitions reach the broker (and us) a few milliseconds apart. An end-of-partition reported
 * before the head arrived says nothing about what the broker got since: bus_consumer_at_end
 * then asks the broker for the partition's high watermark (under load, another partition's
 * earlier message reached us long after the head, and the merge released the head first:
 * metrics of a rollout whose rollout.requested was not applied yet went to the dead letters).
 * A partition that is merely slow is waited for at most hold_ms. With the input already in
 * Kafka — a replay — this gives the same order every time; live, it costs grace_ms of latency
 * and, after an idle spell, a watermark query per other partition.
 *
 * At most batch_max messages go per call, so one commit never holds more than a batch (a
 * backlog released at once would make one huge transaction and keep the other shards waiting).
 * Returns true when it stopped at that limit with messages that could go on.
 */
#define RELEASE_PREFETCH 4 /* messages ahead: each takes a microsecond or two to apply */

/*
 * Whether head (of partition k, the earliest queued) may go before the shard's other
 * partitions whose queues are empty. hold_ms bounds the wait only for a partition whose next
 * message is unknown (nothing more on the broker as far as we know: still to be produced, or
 * slow to arrive). One known to hold more — its last fetch's high watermark, or the broker
 * asked after a restart, says the backlog goes on past what we took — is waited for however
 * long it takes: its next message may be earlier than head. When hold_ms let such a partition
 * go too, a restarted worker with a backlog applied deploy events ahead of the metric events
 * before them in event time whenever a queue ran dry between two fetches: its decisions were
 * not simulate's (test_backlog_keeps_event_order).
 */
static bool others_released(struct worker *w, struct shard *s, int k, const struct pending *head,
                            int64_t now_wall) {
  int64_t waited = now_wall - head->arrived_ms;
  for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
    if (t == k || s->q[t].n)
      continue; /* its head is queued, and later than this one */
    if (waited < w->cfg->hold_ms) {
      if (waited < w->cfg->grace_ms ||
          !bus_consumer_at_end(w->consumer, t, s->id, head->arrived_mono))
        return false; /* partition t may still deliver something earlier */
    } else if (bus_consumer_behind(w->consumer, t, s->id) > 0) {
      return false; /* it will: its backlog is not here yet */
    }
  }
  return true;
}

static bool release(struct worker *w, struct shard *s, int64_t now_wall) {
  for (long applied = 0;; applied++) {
    int k = -1;
    for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
      const struct pending *p = queue_front(&s->q[t]);
      if (p && (k < 0 || p->time_ms < queue_front(&s->q[k])->time_ms))
        k = t;
    }
    if (k < 0)
      return false;
    if (applied >= w->cfg->batch_max)
      return true;
    const struct pending *head = queue_front(&s->q[k]);
    if (!others_released(w, s, k, head, now_wall))
      return false;
    /* the duplicate check a few messages on is a cache miss in a day's ids: start it now */
    const struct queue *q = &s->q[k];
    if (q->n > RELEASE_PREFETCH) {
      const struct pending *ahead = &q->items[q->head + RELEASE_PREFETCH];
      if (ahead->id_hash)
        engine_prefetch_id(&s->engine, ahead->id_hash);
    }
    apply_one(w, s, k, head);
    queue_pop(&s->q[k]);
    if (s->failed)
      return false; /* rewound before anything more: see apply_failed */
  }
}

/* ---- committing ------------------------------------------------------------------------- */

static bool add_row(struct worker *w, size_t *n, const char *topic, const char *key,
                    const char *id, const struct avro_buf *payload) {
  if (!reserve(&w->rows, &w->cap_rows, *n, sizeof *w->rows))
    return false;
  w->rows[(*n)++] = (struct store_outbox_row){
      .topic = topic, .key = key, .message_id = id, .payload = payload->data, .len = payload->len};
  return true;
}

/* Encode the batch's effects for the outbox. Returns the number of rows, or -1. */
static long build_outbox(struct worker *w, struct shard *s, size_t *n_decisions) {
  struct batch *b = &s->b;
  size_t n = 0;
  *n_decisions = 0;
  if (b->fx.n > w->cap_enc) { /* encoders reuse their buffers: new slots start empty */
    struct avro_buf *enc = realloc(w->enc, b->fx.n * sizeof *enc);
    if (!enc)
      return -1;
    memset(enc + w->cap_enc, 0, (b->fx.n - w->cap_enc) * sizeof *enc);
    w->enc = enc;
    w->cap_enc = b->fx.n;
  }
  for (size_t i = 0; i < b->fx.n; i++) {
    const struct effect *e = &b->fx.items[i];
    struct avro_buf *out = &w->enc[i];
    int rc;
    const char *topic, *key, *id;
    switch (e->kind) {
    case EFFECT_DECISION:
      if (!reserve(&w->decisions, &w->cap_decisions, *n_decisions, sizeof *w->decisions))
        return -1;
      w->decisions[(*n_decisions)++] = &e->u.decision;
      rc = avro_codec_encode_decision(w->codec, &e->u.decision, out);
      topic = "canary.decisions", key = e->u.decision.rollout, id = e->u.decision.id;
      break;
    case EFFECT_NOTIFICATION:
      jbuf_reset(&w->slack);
      notification_slack_payload(&e->u.notification, &w->slack);
      rc = avro_codec_encode_notification(w->codec, &e->u.notification,
                                          w->slack.data ? w->slack.data : "{}", out);
      topic = "canary.notifications", key = e->u.notification.rollout;
      id = e->u.notification.id;
      break;
    case EFFECT_TRAFFIC:
      rc = avro_codec_encode_traffic(w->codec, &e->u.traffic, out);
      topic = "canary.flags", key = e->u.traffic.service, id = e->u.traffic.id;
      break;
    default:
      continue;
    }
    if (rc != CANARY_OK) {
      log_msg(LOG_LVL_ERR, NULL, "shard %d: cannot encode an output: %s", s->id,
              canary_strerror(rc));
      return -1;
    }
    if (!add_row(w, &n, topic, key, id, out))
      return -1;
  }
  for (size_t i = 0; i < b->n_dlq; i++)
    if (!add_row(w, &n, "canary.dlq", b->dlq[i].key, b->dlq[i].id, &b->dlq[i].payload))
      return -1;
  return (long)n;
}

/*
 * Send the shard's batch: state, transitions, offsets, outbox, ids — committed together or not
 * at all. The commit in flight (maybe this shard's previous batch) is collected first; this one
 * is collected by the next commit, shard load or blocking poll (commit_collect), so that the
 * server commits while the worker polls and applies. store_commit_send copies the batch, so the
 * batch and the scratch it points into are free again when it returns.
 */
static void commit(struct worker *w, struct shard *s) {
  if (batch_empty(&s->b))
    return;
  commit_collect(w);
  if (s->failed) { /* its previous batch did not make it: this one builds on it */
    shard_settle(w, s);
    return;
  }
  size_t n_decisions;
  long n_rows = build_outbox(w, s, &n_decisions);
  if (n_rows < 0) {
    log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory building a batch; rewinding", s->id);
    shard_rewind(w, s);
    return;
  }
  if (s->b.n_dirty > w->cap_metric_states) {
    struct rollout_metrics **m = realloc(w->metric_states, s->b.n_dirty * sizeof *m);
    if (m)
      w->metric_states = m;
    struct rollout_metrics **z = m ? realloc(w->zscores, s->b.n_dirty * sizeof *z) : NULL;
    if (!z) {
      log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory building a batch; rewinding", s->id);
      shard_rewind(w, s);
      return;
    }
    w->zscores = z;
    w->cap_metric_states = s->b.n_dirty;
  }
  /* Only what changed since it was last stored: a failed commit reloads the shard, which
   * starts the fingerprints over. */
  for (size_t i = 0; i < s->b.n_dirty; i++) {
    struct rollout_metrics *m = engine_metrics(&s->engine, s->b.dirty[i]->id);
    uint64_t st = m ? metrics_json_state_sig(m) : 0, zs = m ? metrics_json_zscores_sig(m) : 0;
    w->metric_states[i] = m && st != m->saved_state_sig ? m : NULL;
    w->zscores[i] = m && zs != m->saved_zscores_sig ? m : NULL;
    if (m)
      m->saved_state_sig = st, m->saved_zscores_sig = zs;
  }
  int64_t window_from = advance_window_from(s);
  /* the engine forgot the ids of epochs before id_epoch - 1: so does the table */
  int64_t prune_below = s->engine.id_epoch != INT64_MIN && s->engine.id_epoch - 1 > s->ids_pruned
                            ? s->engine.id_epoch - 1
                            : 0;
  struct store_batch b = {
      .shard = s->id,
      .epoch = s->epoch,
      .rollouts = s->b.dirty,
      .n_rollouts = s->b.n_dirty,
      .metrics = w->metric_states,
      .zscores = w->zscores,
      .window_from = window_from,
      .decisions = w->decisions,
      .n_decisions = n_decisions,
      .outbox = w->rows,
      .n_outbox = (size_t)n_rows,
      .event_ids = s->b.ids,
      .event_id_epochs = s->b.id_epochs,
      .event_id_digests = s->b.id_digests,
      .n_event_ids = s->b.n_ids,
      .prune_ids_below = prune_below,
      .global = &s->engine.global,
  };
  memcpy(b.offsets.next, s->next, sizeof b.offsets.next);
  /* The log lists rollouts in creation order so the store restores them in it. */
  int rc = store_commit_send(w->store, &b);
  if (rc != CANARY_OK) { /* nothing in flight */
    log_msg(LOG_LVL_WARNING, NULL, "shard %d: cannot send a commit: %s (%s); resuming from "
            "what was stored", s->id, canary_strerror(rc), store_last_error(w->store));
    shard_rewind(w, s);
    return;
  }
  w->in_flight = (struct in_flight){.active = true, .shard = s->id, .epoch = s->epoch,
                                    .n_rows = (size_t)n_rows, .n_decisions = n_decisions,
                                    .window_from = window_from, .prune_below = prune_below};
  batch_clear(&s->b); /* sent: the next batch starts here */
}

/* ---- relay ------------------------------------------------------------------------------ */

static void on_delivery(void *ctx, int64_t opaque, bool ok, const char *error) {
  struct worker *w = ctx;
  if (!ok) {
    log_msg(LOG_LVL_WARNING, NULL, "outbox row %" PRId64 " not delivered: %s (will retry)",
            opaque, error ? error : "?");
    return;
  }
  if (reserve(&w->acked, &w->cap_acked, w->n_acked, sizeof *w->acked))
    w->acked[w->n_acked++] = opaque;
}

/*
 * Publish what the outbox holds, oldest first, and mark what the broker acknowledged. A crash
 * between the two publishes those rows again on restart, with the same ids: consumers
 * de-duplicate by id.
 */
static bool relay_stopping(struct worker *w) {
  pthread_mutex_lock(&w->relay_mu);
  bool stopping = w->relay_stopping;
  pthread_mutex_unlock(&w->relay_mu);
  return stopping;
}

/*
 * The notices that row m, which Kafka will never take (why), is set aside: on-call is paged and
 * #releases told which rollout's output is stuck, so that a consumer missing it — a deployment
 * waiting on canary.flags for a pause — is not left to find out. Their ids
 * ("outbox/<seq>/<channel>") make a relay that sets the row aside twice (a crash between)
 * announce it once. None for a notice itself (it cannot be that large; no loop if it were).
 * The rows point into ids, rollout (their key, as every notification's) and the relay's
 * buffers. Returns how many are in rows.
 */
static size_t stuck_notices(struct worker *w, const struct store_outbox_msg *m, const char *why,
                            struct store_outbox_row rows[2], char ids[2][64],
                            char rollout[EVENT_NAME_MAX]) {
  if (!strncmp(m->message_id, "outbox/", 7))
    return 0;
  if (!w->relay_codec && avro_codec_new(&w->relay_codec) != CANARY_OK)
    return 0;
  /* "<rollout>/<seq>", "<rollout>/n<k>", "<rollout>/f<k>"; a dead letter's key is its original's */
  rollout[0] = '\0';
  const char *slash = strrchr(m->message_id, '/');
  if (strncmp(m->message_id, "dlq/", 4) && slash)
    snprintf(rollout, EVENT_NAME_MAX, "%.*s", (int)(slash - m->message_id), m->message_id);
  else if (m->key)
    snprintf(rollout, EVENT_NAME_MAX, "%s", m->key);
  static const enum notify_channel channels[2] = {NOTIFY_ONCALL, NOTIFY_RELEASES};
  size_t n = 0;
  for (int i = 0; i < 2; i++) {
    struct notification note = {.time_ms = wall_ms(), .channel = channels[i],
                                .severity = i == 0 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING};
    snprintf(ids[i], 64, "outbox/%" PRId64 "/%s", m->seq, notify_channel_name(channels[i]));
    snprintf(note.id, sizeof note.id, "%s", ids[i]);
    snprintf(note.rollout, sizeof note.rollout, "%s", rollout);
    snprintf(note.target, sizeof note.target, "%s",
             i == 0 ? w->cfg->plan->notify.oncall : w->cfg->plan->notify.releases);
    snprintf(note.title, sizeof note.title, "Output stuck: %s", rollout[0] ? rollout : m->topic);
    snprintf(note.text, sizeof note.text,
             "%s message %s (%zu bytes) can never be published: %s. It is set aside "
             "(outbox seq %" PRId64 ", column failure) and the outputs after it go on; consumers "
             "of %s will not see it. Look at the row and publish its content another way.",
             m->topic, m->message_id, m->len, why, m->seq, m->topic);
    if (!strcmp(m->topic, "canary.decisions"))
      snprintf(note.decision_id, sizeof note.decision_id, "%s", m->message_id);
    jbuf_reset(&w->notice_slack);
    notification_slack_payload(&note, &w->notice_slack);
    if (avro_codec_encode_notification(w->relay_codec, &note,
                                       w->notice_slack.data ? w->notice_slack.data : "{}",
                                       &w->notice_buf[i]) != CANARY_OK)
      return 0;
    rows[n++] = (struct store_outbox_row){.topic = "canary.notifications",
                                          .key = rollout[0] ? rollout : m->key,
                                          .message_id = ids[i],
                                          .payload = w->notice_buf[i].data,
                                          .len = w->notice_buf[i].len};
  }
  return n;
}

/*
 * Publish until the outbox is empty (or 20 rounds: then go on at the next turn), holding the
 * relay lock. False when the store connection was lost, and the lock with it.
 */
static bool relay_rounds(struct worker *w, bool final) {
  for (int round = 0; round < 20 && (final || !relay_stopping(w)); round++) {
    const struct store_outbox_msg *msgs;
    size_t n;
    int rc = store_outbox_fetch(w->relay_store, RELAY_BATCH, &msgs, &n);
    if (rc == CANARY_EUNAVAILABLE) {
      store_back(w, w->relay_store);
      return false;
    }
    if (rc != CANARY_OK || n == 0)
      return true;
    w->n_acked = 0;
    size_t set_aside = 0;
    for (size_t i = 0; i < n; i++) {
      const struct store_outbox_msg *m = &msgs[i];
      rc = bus_produce(w->producer, m->topic, -1, m->key, m->key ? strlen(m->key) : 0, m->payload,
                       m->len, m->seq);
      if (rc == CANARY_EINVALID) {
        /* Kafka will never take it (too large for the producer): set it aside, loudly, and go
         * on — the rows behind it must not wait for ever (issue 10). Order still holds for
         * everything that can be published. Notices of it join the outbox with the set-aside,
         * published after the rows behind it (relay_wake: at once, not in 5 s). */
        static const char why[] = "refused by the Kafka producer (larger than it may send)";
        log_msg(LOG_LVL_ERR, NULL,
                "outbox row %" PRId64 " (%s, %s, %zu bytes) can never be published: set aside "
                "(outbox.failure); the rows after it go on; on-call and releases are notified",
                m->seq, m->topic, m->message_id, m->len);
        struct store_outbox_row notices[2];
        char ids[2][64], rollout[EVENT_NAME_MAX];
        size_t n_notices = stuck_notices(w, m, why, notices, ids, rollout);
        if (store_outbox_fail(w->relay_store, m->seq, why, notices, n_notices) == CANARY_OK) {
          atomic_fetch_add(&w->set_aside, 1);
          set_aside++;
          relay_wake(w);
          continue;
        }
        break; /* the store is away: this row again next time */
      }
      if (rc != CANARY_OK) {
        log_msg(LOG_LVL_WARNING, NULL, "cannot queue outbox row %" PRId64 " for %s: %s", m->seq,
                m->topic, canary_strerror(rc));
        break;
      }
    }
    /* Everything sent is settled — acknowledged, or failed for good at the producer's
     * message.timeout.ms (30 s) — before it is marked and the lock goes: a row still in flight
     * could reach the broker after the next relay published it again and the rows behind it. */
    for (int waited = 10; bus_producer_flush(w->producer, 10000) != CANARY_OK; waited += 10) {
      log_msg(LOG_LVL_WARNING, NULL, "Kafka has not acknowledged every outbox row in %d s; "
              "waiting (what it does not take will be published again)", waited);
      if (waited >= 60)
        break;
    }
    if (w->n_acked) {
      rc = store_outbox_mark(w->relay_store, w->acked, w->n_acked);
      if (rc != CANARY_OK)
        log_msg(LOG_LVL_WARNING, NULL, "cannot mark %zu outbox rows published: %s", w->n_acked,
                canary_strerror(rc));
      else
        atomic_fetch_add(&w->published, (int64_t)w->n_acked);
      if (rc == CANARY_EUNAVAILABLE)
        return false;
    }
    if (n < RELAY_BATCH || w->n_acked + set_aside < n)
      return true;
  }
  relay_wake(w); /* more than 20 rounds' worth: go on at the next turn */
  return true;
}

/*
 * One relay of the group publishes at a time (store_outbox_lock), from its fetch until what it
 * sent is acknowledged and marked. Each relay fetches every unpublished row, whichever shard
 * wrote it: with two workers, both published the same rows — hundreds of decisions twice with
 * no crash — and a traffic split sent again after the newer one behind it left the compacted
 * canary.flags on a stale exposure (the chaos test, test_chaos.c).
 */
static void relay(struct worker *w, bool final) {
  int rc = store_outbox_lock(w->relay_store);
  if (rc == CANARY_EUNAVAILABLE) {
    store_back(w, w->relay_store);
    return;
  }
  if (rc != CANARY_OK) {
    log_msg(LOG_LVL_WARNING, NULL, "cannot take the relay lock: %s (%s); trying again later",
            canary_strerror(rc), store_last_error(w->relay_store));
    return;
  }
  if (relay_rounds(w, final))
    store_outbox_unlock(w->relay_store);
}

/*
 * The relay thread: publish when a commit added rows, and every 5 s anyway, for rows a crashed
 * predecessor (or another worker's shard before a hand-over) left unpublished. When the loop
 * ends, one last pass publishes what the final commits added.
 */
/* Published outbox rows are kept this long (for people and SQL), then deleted. */
#define OUTBOX_KEEP_S (7 * 86400)
#define OUTBOX_PRUNE_EVERY_MS 3600000

static void *relay_main(void *arg) {
  struct worker *w = arg;
  int64_t pruned_at = 0;
  for (;;) {
    if (wall_ms() - pruned_at >= OUTBOX_PRUNE_EVERY_MS) {
      long n = 0;
      pruned_at = wall_ms();
      if (store_outbox_prune(w->relay_store, OUTBOX_KEEP_S, &n) == CANARY_OK && n > 0)
        log_msg(LOG_LVL_INFO, NULL, "deleted %ld outbox rows published more than %d days ago",
                n, OUTBOX_KEEP_S / 86400);
    }
    pthread_mutex_lock(&w->relay_mu);
    if (!w->outbox_dirty && !w->relay_stopping) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 5;
      pthread_cond_timedwait(&w->relay_cv, &w->relay_mu, &until);
    }
    bool stopping = w->relay_stopping;
    w->outbox_dirty = false;
    pthread_mutex_unlock(&w->relay_mu);
    relay(w, stopping);
    if (stopping)
      return NULL;
  }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void enqueue(struct worker *w, const struct bus_msg *m, int64_t now_wall) {
  if (m->partition < 0 || m->partition >= MAX_SHARDS || !w->shards[m->partition])
    return; /* not ours (any more): its new owner consumes it from the stored offsets */
  struct shard *s = w->shards[m->partition];
  struct pending p = {.offset = m->offset, .arrived_ms = now_wall,
                      .arrived_mono = bus_monotonic_ms(), .key_len = m->key_len,
                      .len = m->len, .produced_ms = m->timestamp_ms};
  /* Only the time, for the merge, and the id, to look it up ahead (release): apply_one()
   * decodes the message (its metric arrays live in the codec only until the next decode). */
  const char *id;
  size_t id_len;
  if (avro_codec_event_head(w->codec, m->value, m->len, &p.time_ms, &id, &id_len) != CANARY_OK)
    p.time_ms = INT64_MIN;
  else if (id)
    p.id_hash = idset_hash_n(id, id_len);
  p.key = m->key ? dup_bytes(m->key, m->key_len) : NULL;
  p.value = dup_bytes(m->value, m->len);
  if (!p.value || !queue_push(&s->q[m->topic], &p)) {
    pending_free(&p);
    log_msg(LOG_LVL_ERR, NULL, "out of memory queueing a message of shard %d", s->id);
  }
}

/* While the input is idle, the wall clock fires the shard's due deadlines. */
static void idle_tick(struct shard *s, int64_t now_wall) {
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    if (s->q[t].n)
      return; /* events still queued come first */
  if (fire_until(s, now_wall) != CANARY_OK)
    log_msg(LOG_LVL_ERR, NULL, "shard %d: cannot fire deadlines", s->id);
}

static int owned_shards(const struct worker *w) {
  int owned = 0;
  for (int i = 0; i < MAX_SHARDS; i++)
    owned += w->shards[i] != NULL;
  return owned;
}

/*
 * Poll, without waiting on the commit in flight: when nothing is queued in the consumer and the
 * poll would wait, collect the commit first, so that a caught-up worker confirms (and the relay
 * publishes) at once rather than after the poll's timeout.
 */
static int poll_input(struct worker *w, int timeout_ms, const struct bus_msg **msgs, size_t *n,
                      bool *idle) {
  /* A pass of the loop applies up to batch_max per shard: taking no more than batch_max from
   * the consumer left librdkafka's queue to fill up under a backlog, and librdkafka (2.0) stops
   * fetching at queued.min.messages and looks again only later — the worker then sat in empty
   * polls for 100-400 ms at a time (bench/ingest: 0.6 s of 1.1 s with no metric rules). */
  int owned = owned_shards(w);
  size_t max = (size_t)w->cfg->batch_max * (size_t)(owned > 1 ? owned : 1);
  if (w->in_flight.active && timeout_ms > 0) {
    int rc = bus_consumer_poll(w->consumer, 0, msgs, max, n, idle);
    if (rc != CANARY_OK || *n > 0)
      return rc;
    commit_collect(w);
  }
  return bus_consumer_poll(w->consumer, timeout_ms, msgs, max, n, idle);
}

static void stats(struct worker *w, int64_t now_wall) {
  if (now_wall - w->last_stats_ms < 10000)
    return;
  w->last_stats_ms = now_wall;
  log_msg(LOG_LVL_INFO, NULL, "progress: %d shards, %" PRId64 " events applied, %" PRId64
          " duplicates, %" PRId64 " dead letters (%" PRId64 " ids reused for other content), %"
          PRId64 " decisions, %" PRId64 " commits, %" PRId64 " published, %" PRId64
          " set aside unpublishable, %" PRId64 " metric events replayed into windows",
          owned_shards(w), w->applied, w->duplicates, w->dead_letters, w->conflicts,
          w->decisions_made, w->commits, atomic_load(&w->published), atomic_load(&w->set_aside),
          w->replayed);
}

static int start(struct worker *w) {
  const struct worker_config *cfg = w->cfg;
  int applied = 0;
  if (avro_codec_new(&w->codec) != CANARY_OK) {
    log_msg(LOG_LVL_ERR, NULL, "cannot load the Avro schemas");
    return -1;
  }
  if (cfg->create_topics > 0 &&
      bus_create_topics(cfg->brokers, cfg->create_topics, 15000, log_callback, NULL) != CANARY_OK)
    log_msg(LOG_LVL_WARNING, NULL, "could not make sure the topics exist (see above); going on");
  log_msg(LOG_LVL_INFO, NULL, "connecting to PostgreSQL");
  while (store_open(cfg->conninfo, 30000, log_callback, NULL, &w->store) != CANARY_OK)
    if (!*w->running)
      return -1;
  while (cfg->relay && store_open(cfg->conninfo, 30000, log_callback, NULL, &w->relay_store) !=
                           CANARY_OK)
    if (!*w->running)
      return -1;
  int rc = store_migrate(w->store, &applied);
  if (rc != CANARY_OK) {
    log_msg(LOG_LVL_ERR, NULL, "migrations failed: %s", store_last_error(w->store));
    return -1;
  }
  if (applied)
    log_msg(LOG_LVL_NOTICE, NULL, "applied %d migrations", applied);
  if (cfg->relay) {
    if (bus_producer_new(cfg->brokers, cfg->worker_id, log_callback, NULL, &w->producer) !=
        CANARY_OK) {
      log_msg(LOG_LVL_ERR, NULL, "cannot create the Kafka producer for %s", cfg->brokers);
      return -1;
    }
    bus_producer_on_delivery(w->producer, on_delivery, w);
    w->outbox_dirty = true; /* a predecessor may have left rows */
    if (pthread_create(&w->relay_thread, NULL, relay_main, w) != 0) {
      log_msg(LOG_LVL_ERR, NULL, "cannot start the relay thread");
      return -1;
    }
    w->relay_started = true;
  }
  struct bus_hooks hooks = {.ctx = w, .assigned = on_assigned, .revoked = on_revoked,
                            .log = log_callback};
  if (bus_consumer_new_conf(cfg->brokers, cfg->group, cfg->worker_id, &hooks, cfg->kafka_conf,
                            &w->consumer) != CANARY_OK) {
    log_msg(LOG_LVL_ERR, NULL, "cannot create the Kafka consumer for %s", cfg->brokers);
    return -1;
  }
  log_msg(LOG_LVL_NOTICE, NULL, "worker %s joined group %s on %s", cfg->worker_id, cfg->group,
          cfg->brokers);
  return 0;
}

static void stop(struct worker *w) {
  /* Leaving the group runs the revoke hooks, which free the shards. */
  bus_consumer_close(w->consumer);
  for (int i = 0; i < MAX_SHARDS; i++)
    shard_free(w->shards[i]);
  if (w->producer) {
    if (bus_producer_flush(w->producer, 10000) != CANARY_OK)
      log_msg(LOG_LVL_WARNING, NULL, "stopping with outbox rows unacknowledged: they are "
              "published again at the next start");
    bus_producer_destroy(w->producer);
  }
  store_close(w->relay_store);
  store_close(w->store);
  avro_codec_destroy(w->codec);
  for (size_t i = 0; i < w->cap_enc; i++)
    avro_buf_free(&w->enc[i]);
  free(w->enc);
  free(w->rows);
  free(w->decisions);
  free(w->acked);
  free(w->metric_states);
  free(w->zscores);
  jbuf_free(&w->slack);
  avro_codec_destroy(w->relay_codec);
  for (int i = 0; i < 2; i++)
    avro_buf_free(&w->notice_buf[i]);
  jbuf_free(&w->notice_slack);
}

void worker_config_defaults(struct worker_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->group = "canaryd";
  cfg->worker_id = "canaryd";
  cfg->wall_clock = true;
  cfg->tick_ms = 500;
  cfg->hold_ms = 1000;
  cfg->max_skew_ms = EVENT_MAX_SKEW_MS;
  cfg->grace_ms = 100;
  cfg->batch_max = 5000; /* under a backlog, fewer and larger commits: +24% ingest */
  cfg->relay = true;
  cfg->create_topics = 3;
}

int worker_run(const struct worker_config *cfg, volatile sig_atomic_t *running) {
  struct worker *w = calloc(1, sizeof *w);
  if (!w)
    return -1;
  w->cfg = cfg;
  w->running = running;
  const char *fault = getenv("CANARY_FAULT_APPLY_EVERY");
  w->fault_every = fault ? atol(fault) : 0;
  if (w->fault_every > 0)
    log_msg(LOG_LVL_WARNING, NULL, "fault injection: every %ld-th message fails to apply",
            w->fault_every);
  pthread_mutex_init(&w->relay_mu, NULL);
  pthread_cond_init(&w->relay_cv, NULL);
  jbuf_init(&w->slack);
  jbuf_init(&w->notice_slack);
  int code = start(w);
  bool more = false; /* a shard stopped at its batch limit: do not wait in the next poll */
  while (code == 0 && *running) {
    const struct bus_msg *msgs;
    size_t n = 0;
    bool idle = false;
    if (poll_input(w, more ? 0 : 100, &msgs, &n, &idle) != CANARY_OK)
      log_msg(LOG_LVL_ERR, NULL, "consumer poll failed");
    int64_t now = wall_ms();
    for (size_t i = 0; i < n; i++)
      enqueue(w, &msgs[i], now);
    more = false;
    bool tick = cfg->wall_clock && idle && now - w->last_tick_ms >= cfg->tick_ms;
    if (tick)
      w->last_tick_ms = now;
    /* Shard by shard, apply then send: the next shard applies while the server commits. */
    for (int i = 0; i < MAX_SHARDS; i++) {
      struct shard *s = w->shards[i];
      if (s && s->failed)
        s = shard_settle(w, s);
      if (!s)
        continue;
      more |= release(w, s, now);
      if (tick)
        idle_tick(s, now);
      commit(w, s);
    }
    stats(w, now);
  }
  commit_collect(w); /* the last batch sent: its outcome, before the relay's final pass */
  if (w->relay_started) {
    /* SIGTERM: what was applied is committed above; the relay publishes what is left. */
    pthread_mutex_lock(&w->relay_mu);
    w->relay_stopping = true;
    pthread_cond_signal(&w->relay_cv);
    pthread_mutex_unlock(&w->relay_mu);
    pthread_join(w->relay_thread, NULL);
    w->relay_started = false;
  }
  if (w->store)
    log_msg(LOG_LVL_NOTICE, NULL, "stopping: %" PRId64 " events applied, %" PRId64
            " decisions, %" PRId64 " published", w->applied, w->decisions_made,
            atomic_load(&w->published));
  stop(w);
  free(w);
  return code;
}
