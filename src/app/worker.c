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
#include "app/worker_internal.h"

/* ---- the loop --------------------------------------------------------------------------- */

static void enqueue(struct worker *w, const struct bus_msg *m, int64_t now_wall) {
  if (m->partition < 0 || m->partition >= MAX_SHARDS || !w->shards[m->partition])
    return; /* not ours (any more): its new owner consumes it from the stored offsets */
  struct shard *s = w->shards[m->partition];
  struct pending p = {.offset = m->offset,
                      .arrived_ms = now_wall,
                      .arrived_mono = bus_monotonic_ms(),
                      .key_len = m->key_len,
                      .len = m->len,
                      .produced_ms = m->timestamp_ms};
  /* Only the time, for the merge, and the id, to look it up ahead (release): worker_apply_one()
   * decodes the message (its metric arrays live in the codec only until the next decode). */
  const char *id;
  size_t id_len;
  if (avro_codec_event_head(w->codec, m->value, m->len, &p.time_ms, &id, &id_len) != CANARY_OK)
    p.time_ms = INT64_MIN;
  else if (id)
    p.id_hash = idset_hash_n(id, id_len);
  p.key = m->key ? dup_bytes(m->key, m->key_len) : NULL;
  p.value = dup_bytes(m->value, m->len);
  if (!p.value || !worker_queue_push(&s->q[m->topic], &p)) {
    worker_pending_free(&p);
    log_msg(LOG_LVL_ERR, NULL, "out of memory queueing a message of shard %d", s->id);
  }
}

/* While the input is idle, the wall clock fires the shard's due deadlines. */
static void idle_tick(struct shard *s, int64_t now_wall) {
  for (int t = 0; t < BUS_INPUT_TOPICS; t++)
    if (s->q[t].n)
      return; /* events still queued come first */
  if (worker_fire_until(s, now_wall) != CANARY_OK)
    log_msg(LOG_LVL_ERR, NULL, "shard %d: cannot fire deadlines", s->id);
}

/*
 * The freeze, from the store, every FREEZE_POLL_MS: a flag every worker reads whatever shards it
 * owns (docs/ARCHITECTURE.md). The commit in flight is collected first: the store connection
 * carries one statement at a time. While frozen the input partitions stay paused (again at each
 * look: a rebalance assigns them unpaused), so nothing piles up in memory; what was fetched
 * before stays queued, unapplied.
 */
static void check_freeze(struct worker *w, int64_t now_wall) {
  if (now_wall - w->freeze_checked_ms < FREEZE_POLL_MS)
    return;
  w->freeze_checked_ms = now_wall;
  worker_commit_collect(w);
  struct store_freeze f;
  if (store_freeze_get(w->store, &f) != CANARY_OK) {
    /* Keep the state it had: a store that is away stops the commits anyway. Said once per
     * outage, not every FREEZE_POLL_MS. */
    if (!w->freeze_unread)
      log_msg(LOG_LVL_WARNING, NULL, "cannot read the freeze (keeping %s): %s",
              w->frozen ? "frozen" : "not frozen", store_last_error(w->store));
    w->freeze_unread = true;
    return;
  }
  w->freeze_unread = false;
  if (f.frozen != w->frozen) {
    if (f.frozen)
      log_msg(LOG_LVL_NOTICE, NULL, "frozen by %s (%s): no event is applied until unfreeze",
              f.actor, f.reason);
    else
      log_msg(LOG_LVL_NOTICE, NULL, "unfrozen by %s (%s): applying events again", f.actor,
              f.reason);
  }
  if ((f.frozen || w->frozen) && bus_consumer_pause(w->consumer, f.frozen) != CANARY_OK)
    log_msg(LOG_LVL_ERR, NULL, "cannot %s the input partitions", f.frozen ? "pause" : "resume");
  w->frozen = f.frozen;
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
    worker_commit_collect(w);
  }
  return bus_consumer_poll(w->consumer, timeout_ms, msgs, max, n, idle);
}

static void stats(struct worker *w, int64_t now_wall) {
  if (now_wall - w->last_stats_ms < 10000)
    return;
  w->last_stats_ms = now_wall;
  log_msg(LOG_LVL_INFO, NULL,
          "progress: %d shards, %" PRId64 " events applied, %" PRId64 " duplicates, %" PRId64
          " dead letters (%" PRId64 " ids reused for other content), %" PRId64
          " decisions, %" PRId64 " commits, %" PRId64 " published, %" PRId64
          " set aside unpublishable, %" PRId64 " metric events replayed into windows",
          owned_shards(w), w->applied, w->duplicates, w->dead_letters, w->conflicts,
          w->decisions_made, w->commits, atomic_load(&w->published), atomic_load(&w->set_aside),
          w->replayed);
}

int worker_start(struct worker *w) {
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
  while (cfg->relay &&
         store_open(cfg->conninfo, 30000, log_callback, NULL, &w->relay_store) != CANARY_OK)
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
    bus_producer_on_delivery(w->producer, worker_on_delivery, w);
    w->outbox_dirty = true; /* a predecessor may have left rows */
    if (pthread_create(&w->relay_thread, NULL, worker_relay_main, w) != 0) {
      log_msg(LOG_LVL_ERR, NULL, "cannot start the relay thread");
      return -1;
    }
    w->relay_started = true;
  }
  struct bus_hooks hooks = {
      .ctx = w, .assigned = worker_on_assigned, .revoked = worker_on_revoked, .log = log_callback};
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
    worker_shard_free(w->shards[i]);
  if (w->producer) {
    if (bus_producer_flush(w->producer, 10000) != CANARY_OK)
      log_msg(LOG_LVL_WARNING, NULL,
              "stopping with outbox rows unacknowledged: they are "
              "published again at the next start");
    bus_producer_destroy(w->producer);
  }
  store_close(w->relay_store);
  store_close(w->store);
  worker_buffers_free(w);
}

void worker_buffers_free(struct worker *w) {
  avro_codec_destroy(w->codec);
  for (size_t i = 0; i < w->cap_enc; i++)
    avro_buf_free(&w->enc[i]);
  free(w->enc);
  free(w->rows);
  free(w->decisions);
  free(w->audit_rows);
  free(w->acked);
  free(w->metric_states);
  free(w->zscores);
  history_points_free(&w->history);
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

/* Fault injection for the tests (CANARY_FAULT_APPLY_EVERY, CANARY_FAULT_LOAD_EVERY): every n-th
 * message fails to apply, every n-th shard load fails. Said loudly: never meant for production. */
void worker_faults_from_env(struct worker *w) {
  const char *fault = getenv("CANARY_FAULT_APPLY_EVERY");
  w->fault_every = fault ? atol(fault) : 0;
  if (w->fault_every > 0)
    log_msg(LOG_LVL_WARNING, NULL, "fault injection: every %ld-th message fails to apply",
            w->fault_every);
  fault = getenv("CANARY_FAULT_LOAD_EVERY");
  w->fault_load_every = fault ? atol(fault) : 0;
  if (w->fault_load_every > 0)
    log_msg(LOG_LVL_WARNING, NULL, "fault injection: every %ld-th shard load fails",
            w->fault_load_every);
}

int worker_run(const struct worker_config *cfg, volatile sig_atomic_t *running) {
  struct worker *w = calloc(1, sizeof *w);
  if (!w)
    return -1;
  w->cfg = cfg;
  w->running = running;
  worker_faults_from_env(w);
  pthread_mutex_init(&w->relay_mu, NULL);
  pthread_cond_init(&w->relay_cv, NULL);
  jbuf_init(&w->slack);
  jbuf_init(&w->notice_slack);
  worker_snapshot_hists_init(&w->batch_events, &w->commit_seconds, &w->apply_seconds);
  atomic_store(&w->relay_backlog, -1);
  int code = 0;
  if (cfg->http_listen) { /* first: a busy port stops the start before anything else */
    char why[256];
    if (worker_http_start(cfg->http_listen, CANARY_VERSION, &w->http, why, sizeof why) != 0) {
      log_msg(LOG_LVL_ERR, NULL, "%s", why);
      code = -1;
    } else {
      log_msg(LOG_LVL_NOTICE, NULL, "serving /metrics, /healthz and /readyz on %s",
              cfg->http_listen);
      worker_metrics_tick(w, wall_ms(), false); /* /readyz says "starting" meanwhile */
    }
  }
  if (code == 0)
    code = worker_start(w);
  w->started = code == 0;
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
    check_freeze(w, now);
    if (cfg->reload && *cfg->reload) { /* between batches: no rollout is being decided */
      *cfg->reload = 0;
      cfg->on_reload(cfg->reload_ctx);
    }
    bool tick = cfg->wall_clock && idle && now - w->last_tick_ms >= cfg->tick_ms;
    if (tick)
      w->last_tick_ms = now;
    /* Shard by shard, apply then send: the next shard applies while the server commits. */
    for (int i = 0; i < MAX_SHARDS; i++) {
      struct shard *s = w->shards[i];
      if (s && s->failed)
        s = worker_shard_settle(w, s);
      if (!s)
        continue;
      if (w->frozen) { /* applies nothing, fires nothing; the last batch is committed */
        worker_commit(w, s);
        continue;
      }
      more |= w->http ? worker_release_timed(w, s, now) : worker_release(w, s, now);
      if (tick)
        idle_tick(s, now);
      worker_commit(w, s);
    }
    stats(w, now);
    worker_metrics_tick(w, now, idle);
  }
  worker_commit_collect(w); /* the last batch sent: its outcome, before the relay's final pass */
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
    log_msg(LOG_LVL_NOTICE, NULL,
            "stopping: %" PRId64 " events applied, %" PRId64 " decisions, %" PRId64 " published",
            w->applied, w->decisions_made, atomic_load(&w->published));
  stop(w);
  worker_http_stop(w->http);
  free(w->snap);
  free(w);
  return code;
}
