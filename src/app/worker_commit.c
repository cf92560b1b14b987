/*
 * Committing a shard's batch: its decisions, notifications, splits and dead letters become
 * outbox rows, written with the rollouts, offsets and ids in one transaction.
 */
#include "app/worker_internal.h"

/* ---- committing ------------------------------------------------------------------------- */

static bool add_row(struct worker *w, size_t *n, const char *topic, const char *key, const char *id,
                    const struct avro_buf *payload) {
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
void worker_commit(struct worker *w, struct shard *s) {
  if (worker_batch_empty(&s->b))
    return;
  worker_commit_collect(w);
  if (s->failed) { /* its previous batch did not make it: this one builds on it */
    worker_shard_settle(w, s);
    return;
  }
  size_t n_decisions;
  long n_rows = build_outbox(w, s, &n_decisions);
  if (n_rows < 0) {
    log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory building a batch; rewinding", s->id);
    worker_shard_rewind(w, s);
    return;
  }
  if (s->b.n_dirty > w->cap_metric_states) {
    struct rollout_metrics **m = realloc(w->metric_states, s->b.n_dirty * sizeof *m);
    if (m)
      w->metric_states = m;
    struct rollout_metrics **z = m ? realloc(w->zscores, s->b.n_dirty * sizeof *z) : NULL;
    if (!z) {
      log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory building a batch; rewinding", s->id);
      worker_shard_rewind(w, s);
      return;
    }
    w->zscores = z;
    w->cap_metric_states = s->b.n_dirty;
  }
  /* Only what changed since it was last stored: a failed commit reloads the shard, which
   * starts the fingerprints over. The dashboard's history: a point per series per step of
   * event time that ended since the last (most batches have none); out of memory loses them. */
  history_points_clear(&w->history);
  for (size_t i = 0; i < s->b.n_dirty; i++) {
    struct rollout_metrics *m = engine_metrics(&s->engine, s->b.dirty[i]->id);
    if (m &&
        history_collect(s->b.dirty[i], m, s->engine.plan, &m->history_through_ms, &w->history) < 0)
      log_msg(LOG_LVL_WARNING, s->b.dirty[i]->id, "out of memory recording its history");
    uint64_t st = m ? metrics_json_state_sig(m) : 0, zs = m ? metrics_json_zscores_sig(m) : 0;
    w->metric_states[i] = m && st != m->saved_state_sig ? m : NULL;
    w->zscores[i] = m && zs != m->saved_zscores_sig ? m : NULL;
    if (m)
      m->saved_state_sig = st, m->saved_zscores_sig = zs;
  }
  for (size_t i = 0; i < s->b.n_audit; i++) {
    const struct audit_entry *a = &s->b.audit[i];
    if (!reserve(&w->audit_rows, &w->cap_audit_rows, i, sizeof *w->audit_rows)) {
      log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory building a batch; rewinding", s->id);
      worker_shard_rewind(w, s);
      return;
    }
    w->audit_rows[i] = (struct store_audit_row){.source = a->source,
                                                .event_id = a->event_id,
                                                .rollout = a->rollout,
                                                .type = a->type,
                                                .action = a->action,
                                                .actor = a->actor,
                                                .signature = a->signature,
                                                .outcome = a->outcome,
                                                .reason = a->reason,
                                                .detail = a->detail,
                                                .time_ms = a->time_ms};
  }
  int64_t window_from = worker_advance_window_from(s);
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
      .history = w->history.items,
      .n_history = w->history.n,
      .audit = w->audit_rows,
      .n_audit = s->b.n_audit,
  };
  memcpy(b.offsets.next, s->next, sizeof b.offsets.next);
  /* The log lists rollouts in creation order so the store restores them in it. */
  int rc = store_commit_send(w->store, &b);
  if (rc != CANARY_OK) { /* nothing in flight */
    log_msg(LOG_LVL_WARNING, NULL,
            "shard %d: cannot send a commit: %s (%s); resuming from "
            "what was stored",
            s->id, canary_strerror(rc), store_last_error(w->store));
    worker_shard_rewind(w, s);
    return;
  }
  w->in_flight = (struct in_flight){.active = true,
                                    .shard = s->id,
                                    .epoch = s->epoch,
                                    .n_rows = (size_t)n_rows,
                                    .n_decisions = n_decisions,
                                    .window_from = window_from,
                                    .prune_below = prune_below,
                                    .n_events = (int64_t)s->b.n_ids};
  if (w->http) { /* /metrics: counted when the commit is confirmed (worker_commit_collect) */
    w->in_flight.sent_us = mono_us();
    for (size_t i = 0; i < n_decisions; i++)
      w->in_flight.by_action[w->decisions[i]->action]++;
  }
  worker_batch_clear(&s->b); /* sent: the next batch starts here */
}
