/*
 * A worker's shards: the queue of each input partition, the batch of what was decided since
 * the last commit, and loading, rewinding and settling a shard (docs/ARCHITECTURE.md, "Shards").
 */
#include "app/worker_internal.h"

/* ---- queues ----------------------------------------------------------------------------- */

void worker_pending_free(struct pending *p) {
  free(p->key);
  free(p->value);
}

bool worker_queue_push(struct queue *q, const struct pending *p) {
  if (q->head + q->n == q->cap && q->head) { /* compact before growing */
    memmove(q->items, q->items + q->head, q->n * sizeof *q->items);
    q->head = 0;
  }
  if (!reserve(&q->items, &q->cap, q->head + q->n, sizeof *q->items))
    return false;
  q->items[q->head + q->n++] = *p;
  return true;
}

struct pending *worker_queue_front(struct queue *q) {
  return q->n ? &q->items[q->head] : NULL;
}

void worker_queue_pop(struct queue *q) {
  worker_pending_free(&q->items[q->head]);
  q->head++;
  if (!--q->n)
    q->head = 0;
}

static void queue_clear(struct queue *q) {
  while (q->n)
    worker_queue_pop(q);
}

/* ---- batches ---------------------------------------------------------------------------- */

void worker_batch_clear(struct batch *b) {
  effects_clear(&b->fx);
  b->n_dirty = 0;
  b->n_ids = 0;
  for (size_t i = 0; i < b->n_dlq; i++) {
    avro_buf_free(&b->dlq[i].payload);
    free(b->dlq[i].key);
  }
  b->n_dlq = 0;
  b->n_audit = 0;
  b->offsets_moved = false;
}

static void batch_free(struct batch *b) {
  worker_batch_clear(b);
  effects_free(&b->fx);
  free(b->dirty);
  free(b->ids);
  free(b->id_epochs);
  free(b->id_digests);
  free(b->dlq);
  free(b->audit);
  memset(b, 0, sizeof *b);
}

bool worker_batch_empty(const struct batch *b) {
  return !b->fx.n && !b->n_dirty && !b->n_ids && !b->n_dlq && !b->n_audit && !b->offsets_moved;
}

void worker_mark_dirty(struct batch *b, struct rollout *r) {
  for (size_t i = 0; i < b->n_dirty; i++)
    if (b->dirty[i] == r)
      return;
  if (reserve(&b->dirty, &b->cap_dirty, b->n_dirty, sizeof *b->dirty))
    b->dirty[b->n_dirty++] = r;
}

void worker_mark_all_dirty(struct shard *s) {
  for (size_t i = 0; i < s->engine.n_rollouts; i++)
    worker_mark_dirty(&s->b, s->engine.rollouts[i]);
}

/* ---- shards ----------------------------------------------------------------------------- */

static void shard_reset(struct shard *s) {
  s->due_known = false;
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    queue_clear(&s->q[t]);
  worker_batch_clear(&s->b);
  engine_destroy(&s->engine);
  idset_free(&s->replayed);
  s->n_ckpt = 0;
}

void worker_shard_free(struct shard *s) {
  if (!s)
    return;
  shard_reset(s);
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    free(s->q[t].items);
  batch_free(&s->b);
  free(s);
}

/* Reconnect to PostgreSQL, as long as it takes (or until shutdown). */
bool worker_store_back(struct worker *w, store_t *st) {
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
void worker_commit_collect(struct worker *w) {
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
    if (w->http) {
      for (int a = 0; a < DECISION_ACTION_COUNT; a++)
        w->decisions_by_action[a] += f.by_action[a];
      prom_hist_observe(&w->batch_events, (double)f.n_events);
      prom_hist_observe(&w->commit_seconds, (double)(mono_us() - f.sent_us) / 1e6);
    }
    if (f.n_rows > 0)
      relay_wake(w);
    if (s && f.window_from > 0)
      s->window_from = f.window_from;
    if (s && f.prune_below != 0)
      s->ids_pruned = f.prune_below;
    return;
  case CANARY_EFENCED:
    log_msg(LOG_LVL_WARNING, NULL,
            "shard %d: another worker owns it now (epoch %" PRId64 " is stale); dropping it",
            f.shard, f.epoch);
    break;
  case CANARY_EUNAVAILABLE:
    log_msg(LOG_LVL_WARNING, NULL,
            "shard %d: PostgreSQL went away during a commit; "
            "reconnecting, then resuming from what was stored",
            f.shard);
    break;
  default:
    log_msg(LOG_LVL_ERR, NULL, "shard %d: commit failed: %s (%s); resuming from what was stored",
            f.shard, canary_strerror(rc), store_last_error(w->store));
    break;
  }
  w->commit_failures++;
  if (s)
    s->failed = rc;
}

/* Claim the shard and load its state from the store into a fresh engine. */
static int shard_fill(struct worker *w, struct shard *s) {
  struct store_offsets off;
  worker_commit_collect(w); /* the connection is ours again */
  s->due_known = false;     /* a fresh engine */
  int rc = engine_init(&s->engine, w->cfg->plan);
  /* injected (tests): as on a connection a terminated pipelined commit left unusable */
  if (rc == CANARY_OK && w->fault_load_every > 0 && ++w->fault_load_n % w->fault_load_every == 0) {
    engine_destroy(&s->engine);
    log_msg(LOG_LVL_ERR, NULL, "cannot load shard %d: %s (fault injection)", s->id,
            canary_strerror(CANARY_EIO));
    return CANARY_EIO;
  }
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
    int64_t span =
        mc.retention_ms > s->engine.mp.replay_ms ? mc.retention_ms : s->engine.mp.replay_ms;
    s->keep_ms = span + WINDOW_COARSE_MS_DEFAULT + mc.bucket_ms;
    s->clock_ms = s->metrics_max_ms = INT64_MIN;
    s->ids_pruned = INT64_MIN; /* the first commit deletes what the load left out */
    s->n_ckpt = 0;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "shard=%d epoch=%" PRId64, s->id, s->epoch);
    log_msg(LOG_LVL_NOTICE, ctx,
            "shard loaded: %zu rollouts, next offsets %" PRId64 "/%" PRId64 "/%" PRId64
            "; metric windows replayed from offset %" PRId64,
            s->engine.n_rollouts, s->next[0], s->next[1], s->next[2],
            s->seek[mt] == s->next[mt] ? s->next[mt]
            : s->window_from < 0       ? 0
                                       : s->window_from);
    return CANARY_OK;
  }
  engine_destroy(&s->engine);
  log_msg(LOG_LVL_ERR, NULL, "cannot load shard %d: %s (%s)", s->id, canary_strerror(rc),
          store_last_error(w->store));
  return rc;
}

/* Sleep ms (a signal ends it early: the caller looks at w->running). */
static void nap_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#define FILL_BACKOFF_FIRST_MS 100
#define FILL_BACKOFF_MAX_MS 5000

/*
 * Claim and load the shard, as long as it takes: the group gave it to us, and a shard given up
 * on would sit in the worker unloaded, its events applied by nobody until the next rebalance.
 * PostgreSQL away is waited out; any other failure reconnects too (after a back-off), because the
 * connection itself is the likely culprit: when the server ends a session while a pipelined
 * commit is in flight, libpq can report the FATAL as a plain error with the socket still open,
 * and every later statement fails with "cannot exit pipeline mode" or "not allowed in pipeline
 * mode" — an I/O error, not "unavailable", for as long as that connection lives. Under load
 * test_survives_outages hit exactly that: the shard was left unloaded (its engine destroyed),
 * the loop applied the next message to it and the worker died on a NULL plan. False only when
 * the worker stops, or after cfg->load_attempts (canaryctl rebuild: a command should fail, not
 * hang); the engine is then destroyed.
 */
static bool shard_fill_retrying(struct worker *w, struct shard *s) {
  int64_t backoff = FILL_BACKOFF_FIRST_MS;
  for (int attempt = 1;; attempt++) {
    int rc = shard_fill(w, s);
    if (rc == CANARY_OK)
      return true;
    if (!*w->running)
      return false;
    if (w->cfg->load_attempts > 0 && attempt >= w->cfg->load_attempts) {
      log_msg(LOG_LVL_ERR, NULL, "shard %d: not loaded after %d attempts; giving up", s->id,
              attempt);
      return false;
    }
    if (rc != CANARY_EUNAVAILABLE) {
      log_msg(LOG_LVL_WARNING, NULL,
              "shard %d: reconnecting to PostgreSQL in %" PRId64 " ms "
              "to load it again",
              s->id, backoff);
      nap_ms(backoff);
      backoff = backoff * 2 > FILL_BACKOFF_MAX_MS ? FILL_BACKOFF_MAX_MS : backoff * 2;
      if (!*w->running)
        return false;
    }
    if (!worker_store_back(w, w->store))
      return false;
  }
}

/* Claim and load a shard (NULL when the worker stops first, or out of memory). */
static struct shard *shard_load(struct worker *w, int id) {
  struct shard *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->id = id;
  if (shard_fill_retrying(w, s))
    return s;
  free(s);
  return NULL;
}

int worker_on_assigned(void *ctx, int id, int64_t next[BUS_INPUT_TOPICS]) {
  struct worker *w = ctx;
  if (id < 0 || id >= MAX_SHARDS) {
    log_msg(LOG_LVL_ERR, NULL, "shard %d is beyond the %d this build supports", id, MAX_SHARDS);
    return -1;
  }
  w->caught_up = false; /* readiness: not before this shard has caught up too */
  worker_shard_free(w->shards[id]);
  w->shards[id] = shard_load(w, id);
  if (!w->shards[id])
    return -1;
  memcpy(next, w->shards[id]->seek, sizeof w->shards[id]->seek);
  return 0;
}

void worker_on_revoked(void *ctx, int id) {
  struct worker *w = ctx;
  worker_commit_collect(w); /* a hand-over waits for the shard's last commit */
  if (id < 0 || id >= MAX_SHARDS || !w->shards[id])
    return;
  log_msg(LOG_LVL_NOTICE, NULL, "shard %d revoked", id);
  worker_shard_free(w->shards[id]);
  w->shards[id] = NULL;
}

/*
 * Start the shard over from what the store has: after a commit whose outcome is unknown (the
 * connection dropped during COMMIT) or that failed, memory may be ahead of the store. The
 * stored offsets say where the truth ends; the consumer goes back there. False when the worker
 * stopped before the shard was loaded again: it stays marked failed (its engine is empty), so
 * that nothing is applied to it (worker_shard_settle).
 */
bool worker_shard_rewind(struct worker *w, struct shard *s) {
  s->failed = 0;
  shard_reset(s);
  if (!shard_fill_retrying(w, s)) {
    s->failed = CANARY_EUNAVAILABLE;
    return false;
  }
  if (bus_consumer_seek_shard(w->consumer, s->id, s->seek) != CANARY_OK)
    log_msg(LOG_LVL_ERR, NULL, "shard %d: cannot seek back to the stored offsets", s->id);
  return true;
}

/*
 * After a failed commit (s->failed): drop a fenced shard, rewind any other. NULL when dropped,
 * or when it could not be loaded again (the worker stops): the caller must not use it then.
 */
struct shard *worker_shard_settle(struct worker *w, struct shard *s) {
  if (s->failed == CANARY_EFENCED) {
    w->shards[s->id] = NULL;
    worker_shard_free(s);
    return NULL;
  }
  return worker_shard_rewind(w, s) ? s : NULL;
}
