/*
 * The worker's figures for /metrics (src/app/worker_http.c): once a second the loop copies its
 * counters, each owned partition's lag and its rollouts' gauges into a snapshot and hands it to
 * the HTTP thread. Nothing here runs per event; with --http-listen unset nothing runs at all.
 */
#include <math.h>

#include "app/worker_internal.h"

#define SNAPSHOT_EVERY_MS 1000

/* Live rollouts before terminal ones, then the newest first: what a dashboard looks at. */
static bool exported_before(const struct rollout *a, const struct rollout *b) {
  bool la = a->state != ROLLOUT_COMPLETED && a->state != ROLLOUT_ROLLED_BACK;
  bool lb = b->state != ROLLOUT_COMPLETED && b->state != ROLLOUT_ROLLED_BACK;
  if (la != lb)
    return la;
  return a->requested_ms > b->requested_ms;
}

static void copy_rollout(struct wh_rollout *o, const struct rollout *r) {
  snprintf(o->id, sizeof o->id, "%s", r->id);
  snprintf(o->service, sizeof o->service, "%s", r->service);
  snprintf(o->version, sizeof o->version, "%s", r->version);
  o->state = r->state;
  o->stage = r->stage;
  o->exposure = r->exposure_percent;
  o->n_readings = 0;
  for (int k = 0; k < r->n_readings && k < ROLLOUT_MAX_READINGS; k++) {
    const struct rollout_reading *rd = &r->readings[k];
    struct wh_reading *d = &o->readings[o->n_readings++];
    snprintf(d->name, sizeof d->name, "%s", rd->name);
    d->kind = rd->kind;
    d->state = rd->state;
    d->canary = rd->canary;
    d->baseline = rd->baseline;
    d->threshold = rd->threshold;
  }
}

/*
 * Keep the WORKER_HTTP_MAX_ROLLOUTS that exported_before() ranks first: a rollout that ranks
 * above the last kept one replaces it (insertion into a sorted list of at most 100).
 */
static void offer_rollout(struct worker_snapshot *snap, const struct rollout **kept,
                          const struct rollout *r) {
  size_t n = snap->n_rollouts;
  if (n == WORKER_HTTP_MAX_ROLLOUTS && !exported_before(r, kept[n - 1]))
    return;
  size_t i = n < WORKER_HTTP_MAX_ROLLOUTS ? n : n - 1;
  while (i > 0 && exported_before(r, kept[i - 1])) {
    kept[i] = kept[i - 1];
    i--;
  }
  kept[i] = r;
  if (n < WORKER_HTTP_MAX_ROLLOUTS)
    snap->n_rollouts++;
}

/* Rule evaluations since the last snapshot: the rollouts' counters only grow, but a shard
 * reloaded from the store starts them over (what it counted before is then not lost, only
 * what came between the last snapshot and the reload). */
static void count_evaluations(struct worker *w, struct shard *s) {
  uint64_t sum = 0;
  for (size_t i = 0; i < s->engine.n_rollouts; i++)
    if (s->engine.metrics && s->engine.metrics[i])
      sum += s->engine.metrics[i]->ms.evaluations;
  if (sum >= s->evaluations_seen)
    w->rule_evaluations += sum - s->evaluations_seen;
  s->evaluations_seen = sum;
}

static void snapshot_shards(struct worker *w, struct worker_snapshot *snap) {
  static const struct rollout *kept[WORKER_HTTP_MAX_ROLLOUTS];
  bool failed = false;
  for (int i = 0; i < MAX_SHARDS; i++) {
    struct shard *s = w->shards[i];
    if (!s)
      continue;
    snap->shards++;
    failed |= s->failed != 0;
    for (int t = 0; t < BUS_INPUT_TOPICS && snap->n_lags < WORKER_HTTP_MAX_LAGS; t++) {
      int64_t hi = bus_consumer_high_watermark(w->consumer, t, s->id);
      int64_t next = s->next[t] < 0 ? 0 : s->next[t];
      snap->lags[snap->n_lags++] = (struct wh_lag){.topic = bus_input_topics[t],
                                                   .partition = s->id,
                                                   .lag = hi < 0      ? -1
                                                          : hi > next ? hi - next
                                                                      : 0};
    }
    count_evaluations(w, s);
    for (size_t k = 0; k < s->engine.n_rollouts; k++) {
      const struct rollout *r = s->engine.rollouts[k];
      snap->by_state[r->state]++;
      snap->rollouts_total++;
      offer_rollout(snap, kept, r);
    }
  }
  for (size_t k = 0; k < snap->n_rollouts; k++)
    copy_rollout(&snap->rollouts[k], kept[k]);
  snap->ready = w->started && w->caught_up && !failed;
  snap->frozen = w->frozen;
}

/* worker_release, timed for canaryd_apply_seconds (passes that released something): two clock
 * reads a shard and loop pass. */
bool worker_release_timed(struct worker *w, struct shard *s, int64_t now_wall) {
  int64_t before = w->applied + w->duplicates + w->dead_letters + w->replayed;
  int64_t t0 = mono_us();
  bool more = worker_release(w, s, now_wall);
  if (w->applied + w->duplicates + w->dead_letters + w->replayed != before)
    prom_hist_observe(&w->apply_seconds, (double)(mono_us() - t0) / 1e6);
  return more;
}

void worker_metrics_tick(struct worker *w, int64_t now_wall, bool idle) {
  if (!w->http)
    return;
  if (idle)
    w->caught_up = true;
  if (now_wall - w->last_snapshot_ms < SNAPSHOT_EVERY_MS)
    return;
  w->last_snapshot_ms = now_wall;
  if (!w->snap && !(w->snap = malloc(sizeof *w->snap)))
    return; /* the endpoint keeps answering from the last one */
  struct worker_snapshot *snap = w->snap;
  /* not the whole 450 KiB: the rollouts' slots are written as they are exported */
  memset(snap, 0, offsetof(struct worker_snapshot, rollouts));
  snap->taken_ms = now_wall;
  snap->started = w->started;
  snap->applied = w->applied;
  snap->duplicates = w->duplicates;
  snap->conflicts = w->conflicts;
  snap->dead_letters = w->dead_letters;
  snap->replayed = w->replayed;
  snap->commits = w->commits;
  snap->commit_failures = w->commit_failures;
  memcpy(snap->decisions, w->decisions_by_action, sizeof snap->decisions);
  snap->batch_events = w->batch_events;
  snap->commit_seconds = w->commit_seconds;
  snap->apply_seconds = w->apply_seconds;
  snap->relay = w->cfg->relay;
  snap->published = atomic_load(&w->published);
  snap->set_aside = atomic_load(&w->set_aside);
  snap->relay_errors = atomic_load(&w->relay_errors);
  snap->backlog_rows = atomic_load(&w->relay_backlog);
  snap->backlog_oldest_s = (double)atomic_load(&w->relay_oldest_ms) / 1000.0;
  snap->relay_progress_ms = atomic_load(&w->relay_progress_ms);
  if (w->consumer)
    snapshot_shards(w, snap);
  snap->rule_evaluations = w->rule_evaluations;
  worker_http_publish(w->http, snap);
}
