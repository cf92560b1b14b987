/*
 * The event log replayed by the worker's own code into a scratch schema (worker_rebuild.h):
 * the input topics read from their beginning instead of a consumer group, released in the
 * worker's event-time order, applied and committed as canaryd does, and nothing published.
 */
#include "app/worker_internal.h"

#include <stdarg.h>

#include "app/worker_rebuild.h"

/* The state of one rebuild: the worker it drives, and where each input partition stands. */
struct rebuild {
  const struct worker_rebuild_config *cfg;
  struct worker_config wc;
  struct worker *w;
  volatile sig_atomic_t running;
  bus_reader_t *readers[BUS_INPUT_TOPICS];
  bool ours[MAX_SHARDS];
  int64_t upto[MAX_SHARDS][BUS_INPUT_TOPICS]; /* apply the messages below this offset */
  bool done[MAX_SHARDS][BUS_INPUT_TOPICS];    /* every message below upto is queued */
  bool seen[MAX_SHARDS][BUS_INPUT_TOPICS];    /* a message of the partition was read */
  int64_t total, released;
  long since_commit[MAX_SHARDS];
  char *why;
  size_t why_len;
};

static int fail(struct rebuild *rb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct rebuild *rb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rb->why, rb->why_len, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- reading the log ---------------------------------------------------------------------- */

/* Whether topic t has a partition of ours with nothing queued and more to come below upto. */
static bool topic_needed(struct rebuild *rb, int t) {
  for (int p = 0; p < MAX_SHARDS; p++)
    if (rb->ours[p] && !rb->done[p][t] && !rb->w->shards[p]->q[t].n)
      return true;
  return false;
}

/* Queue one message read (as worker.c's enqueue: the time and id read ahead for the merge). */
static int take(struct rebuild *rb, int t, const struct bus_msg *m) {
  int p = m->partition;
  if (p < 0 || p >= MAX_SHARDS || !rb->ours[p] || rb->done[p][t])
    return 0; /* not a live shard, or beyond what the live store applied */
  if (!rb->seen[p][t] && m->offset > 0)
    return fail(rb,
                "%s partition %d starts at offset %" PRId64 ", not 0: Kafka's retention "
                "deleted the head of the log, so the state cannot be rebuilt from it",
                bus_topic(bus_input_topics[t]), p, m->offset);
  rb->seen[p][t] = true;
  if (m->offset >= rb->upto[p][t]) { /* past a gap (a control record) at the live offset */
    rb->done[p][t] = true;
    return 0;
  }
  struct pending q = {
      .offset = m->offset, .key_len = m->key_len, .len = m->len, .produced_ms = m->timestamp_ms};
  const char *id;
  size_t id_len;
  if (avro_codec_event_head(rb->w->codec, m->value, m->len, &q.time_ms, &id, &id_len) != CANARY_OK)
    q.time_ms = INT64_MIN;
  else if (id)
    q.id_hash = idset_hash_n(id, id_len);
  q.key = m->key ? dup_bytes(m->key, m->key_len) : NULL;
  q.value = dup_bytes(m->value, m->len);
  if (!q.value || !worker_queue_push(&rb->w->shards[p]->q[t], &q)) {
    worker_pending_free(&q);
    return fail(rb, "out of memory reading the log (it is held in memory per partition "
                    "until its turn)");
  }
  if (m->offset + 1 >= rb->upto[p][t])
    rb->done[p][t] = true;
  return 0;
}

/* Read topic t until every partition of ours has a message queued or is done. */
static int fill(struct rebuild *rb, int t) {
  int64_t quiet_since = bus_monotonic_ms();
  while (topic_needed(rb, t)) {
    struct bus_msg m;
    bool caught_up = false;
    int rc = bus_reader_read(rb->readers[t], 200, &m, &caught_up);
    if (rc == CANARY_OK) {
      quiet_since = bus_monotonic_ms();
      if (take(rb, t, &m))
        return -1;
      continue;
    }
    if (caught_up || bus_monotonic_ms() - quiet_since > rb->cfg->wait_ms) {
      for (int p = 0; p < MAX_SHARDS; p++)
        if (rb->ours[p] && !rb->done[p][t] && !rb->w->shards[p]->q[t].n)
          return fail(rb,
                      "%s partition %d ends before offset %" PRId64 ", where the live "
                      "store says it applied up to%s",
                      bus_topic(bus_input_topics[t]), p, rb->upto[p][t],
                      caught_up ? " (another CANARY_TOPIC_PREFIX?)"
                                : " (Kafka did not answer in time)");
    }
  }
  return 0;
}

/* ---- applying and committing -------------------------------------------------------------- */

/* Send shard p's batch (the worker's commit), after taking the outcome of the one in flight. */
static int commit(struct rebuild *rb, int p) {
  struct worker *w = rb->w;
  worker_commit_collect(w);
  for (int i = 0; i < MAX_SHARDS; i++)
    if (w->shards[i] && w->shards[i]->failed)
      return fail(rb, "shard %d: a commit to the scratch schema failed: %s", i,
                  store_last_error(w->store));
  struct shard *s = w->shards[p];
  int64_t epoch = s->epoch;
  worker_commit(w, s);
  if (s->epoch != epoch) /* worker_commit started it over from the store: it could not send */
    return fail(rb, "shard %d: cannot send a commit to the scratch schema: %s", p,
                store_last_error(w->store));
  rb->since_commit[p] = 0;
  return 0;
}

static int commit_all(struct rebuild *rb, int except) {
  for (int p = 0; p < MAX_SHARDS; p++)
    if (rb->ours[p] && p != except && !worker_batch_empty(&rb->w->shards[p]->b) && commit(rb, p))
      return -1;
  return 0;
}

/*
 * The earliest queued message over every shard and topic (ties: the lower shard, then the
 * lower topic, as the worker's merge within a shard). The shards are interleaved in event time
 * because one check crosses them: a rollout.requested asks the store for the service's live
 * rollouts on other shards (worker_apply.c, live_elsewhere), and should see them as they were
 * at that time.
 */
static bool earliest(struct rebuild *rb, int *shard, int *topic) {
  const struct pending *best = NULL;
  for (int p = 0; p < MAX_SHARDS; p++) {
    if (!rb->ours[p])
      continue;
    for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
      const struct pending *h = worker_queue_front(&rb->w->shards[p]->q[t]);
      if (h && (!best || h->time_ms < best->time_ms)) {
        best = h;
        *shard = p;
        *topic = t;
      }
    }
  }
  return best != NULL;
}

/* Whether the message is a rollout.requested (decoded once more by worker_apply_one). */
static bool is_request(struct rebuild *rb, const struct pending *p) {
  static struct event ev; /* large: not on the stack */
  char why[256];
  return avro_codec_decode_event(rb->w->codec, p->value, p->len, &ev, why, sizeof why) ==
             CANARY_OK &&
         ev.type == EVENT_ROLLOUT_REQUESTED;
}

static int replay(struct rebuild *rb) {
  struct worker *w = rb->w;
  int64_t last_progress = 0;
  for (;;) {
    for (int t = 0; t < BUS_INPUT_TOPICS; t++)
      if (fill(rb, t))
        return -1;
    int p, t;
    if (!earliest(rb, &p, &t))
      return 0;
    struct shard *s = w->shards[p];
    /* what the other shards hold must be in the store before a request asks it (only then:
     * a commit is a round trip and an fsync, and deploy events are half of a busy log) */
    if (t == TOPIC_DEPLOY && is_request(rb, worker_queue_front(&s->q[t])) && commit_all(rb, p))
      return -1;
    worker_apply_one(w, s, t, worker_queue_front(&s->q[t]));
    worker_queue_pop(&s->q[t]);
    if (s->failed)
      return fail(rb, "shard %d: applying failed (%s)", p, canary_strerror(s->failed));
    rb->released++;
    if (++rb->since_commit[p] >= w->cfg->batch_max && commit(rb, p))
      return -1;
    int64_t now = bus_monotonic_ms();
    if (rb->cfg->progress && now - last_progress >= 1000) {
      last_progress = now;
      rb->cfg->progress(rb->cfg->progress_ctx, rb->released, rb->total);
    }
  }
}

/* ---- setting up ------------------------------------------------------------------------- */

static int start(struct rebuild *rb) {
  const struct worker_rebuild_config *cfg = rb->cfg;
  struct worker *w = rb->w;
  worker_config_defaults(&rb->wc);
  rb->wc.brokers = cfg->brokers;
  rb->wc.conninfo = cfg->conninfo;
  rb->wc.plan = cfg->plan;
  rb->wc.worker_id = "canaryctl-rebuild";
  rb->wc.relay = false; /* and no producer at all: nothing can be published */
  rb->wc.wall_clock = false;
  rb->wc.create_topics = 0;
  rb->wc.max_skew_ms = cfg->max_skew_ms;
  rb->wc.load_attempts = 4; /* 0.7 s of back-off in all, then the command fails with the cause */
  w->cfg = &rb->wc;
  rb->running = 1;
  w->running = &rb->running;
  worker_faults_from_env(w);
  jbuf_init(&w->slack);
  jbuf_init(&w->notice_slack);
  if (avro_codec_new(&w->codec) != CANARY_OK)
    return fail(rb, "cannot load the Avro schemas");
  if (store_open(cfg->conninfo, 5000, log_callback, NULL, &w->store) != CANARY_OK)
    return fail(rb, "PostgreSQL unavailable (the scratch schema's connection)");
  int applied;
  if (store_migrate(w->store, &applied) != CANARY_OK)
    return fail(rb, "migrating the scratch schema: %s", store_last_error(w->store));
  for (size_t i = 0; i < cfg->n_shards; i++) {
    int p = cfg->upto[i].shard;
    if (p < 0 || p >= MAX_SHARDS)
      return fail(rb, "shard %d is beyond the %d this build supports", p, MAX_SHARDS);
    int64_t seek[BUS_INPUT_TOPICS];
    if (worker_on_assigned(w, p, seek)) /* claim and load: empty in a fresh schema */
      return fail(rb, "cannot set up shard %d in the scratch schema: %s", p,
                  store_last_error(w->store));
    rb->ours[p] = true;
    for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
      rb->upto[p][t] = cfg->upto[i].next[t];
      rb->done[p][t] = rb->upto[p][t] <= 0;
      rb->total += rb->upto[p][t] > 0 ? rb->upto[p][t] : 0;
    }
  }
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    if (bus_reader_new(cfg->brokers, bus_input_topics[t], true, log_callback, NULL,
                       &rb->readers[t]) != CANARY_OK)
      return fail(rb, "cannot read %s from Kafka at %s", bus_topic(bus_input_topics[t]),
                  cfg->brokers);
  return 0;
}

/* After the log: the deadlines up to the live workers' clock, as their idle ticks fired them. */
static int fire(struct rebuild *rb) {
  if (rb->cfg->fire_until_ms == INT64_MIN)
    return 0;
  for (int p = 0; p < MAX_SHARDS; p++) {
    if (!rb->ours[p])
      continue;
    if (worker_fire_until(rb->w->shards[p], rb->cfg->fire_until_ms) != CANARY_OK)
      return fail(rb, "shard %d: cannot fire its deadlines", p);
  }
  return 0;
}

static void finish(struct rebuild *rb) {
  struct worker *w = rb->w;
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    bus_reader_close(rb->readers[t]);
  for (int i = 0; i < MAX_SHARDS; i++)
    worker_shard_free(w->shards[i]);
  store_close(w->store);
  worker_buffers_free(w);
  free(w);
}

int worker_rebuild(const struct worker_rebuild_config *cfg, struct worker_rebuild_result *res,
                   char *why, size_t why_len) {
  memset(res, 0, sizeof *res);
  struct rebuild *rb = calloc(1, sizeof *rb);
  struct worker *w = calloc(1, sizeof *w);
  if (!rb || !w) {
    free(rb);
    free(w);
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  rb->cfg = cfg;
  rb->w = w;
  rb->why = why;
  rb->why_len = why_len;
  int rc = start(rb);
  if (!rc)
    rc = replay(rb);
  if (!rc)
    rc = fire(rb);
  if (!rc)
    rc = commit_all(rb, -1);
  if (!rc) {
    worker_commit_collect(w);
    for (int i = 0; i < MAX_SHARDS && !rc; i++)
      if (w->shards[i] && w->shards[i]->failed)
        rc = fail(rb, "shard %d: the last commit to the scratch schema failed: %s", i,
                  store_last_error(w->store));
  }
  long marked;
  if (!rc && store_outbox_mark_all(w->store, &marked) != CANARY_OK)
    rc = fail(rb, "cannot mark the rebuilt outbox published: %s", store_last_error(w->store));
  if (!rc && cfg->progress)
    cfg->progress(cfg->progress_ctx, rb->released, rb->total);
  res->messages = rb->released;
  res->applied = w->applied;
  res->duplicates = w->duplicates;
  res->dead_letters = w->dead_letters;
  res->decisions = w->decisions_made;
  res->commits = w->commits;
  finish(rb);
  free(rb);
  return rc;
}
