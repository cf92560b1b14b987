/*
 * Applying events: dead letters, the deadlines, the metric replay after a restart, one event
 * into the engine, and the event-time merge that releases the partitions' messages in order.
 */
#include "app/worker_internal.h"

#include "app/signing.h"
#include "core/policy.h"

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
  snprintf(ctx, sizeof ctx, "topic=%s partition=%d offset=%" PRId64, bus_input_topics[topic], s->id,
           p->offset);
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

/* ---- who did what ------------------------------------------------------------------------- */

/*
 * Record a person's event (command, flag.set, approval.granted) for command_audit, whatever
 * became of it: accepted, refused by the policy, rejected by the rollout's state (a hold with
 * rule command_rejected), or invalid (a dead letter). Other events are not audited.
 */
static void audit(struct shard *s, int topic, const struct pending *p, const struct event *ev,
                  const char *outcome, const char *detail) {
  struct batch *b = &s->b;
  if (policy_right_of(ev) == POLICY_RIGHT_COUNT)
    return;
  if (!reserve(&b->audit, &b->cap_audit, b->n_audit, sizeof *b->audit)) {
    log_msg(LOG_LVL_ERR, NULL, "shard %d: out of memory: event %s is not audited", s->id, ev->id);
    return;
  }
  struct audit_entry *a = &b->audit[b->n_audit++];
  snprintf(a->source, sizeof a->source, "%s/%d/%" PRId64, bus_input_topics[topic], s->id,
           p->offset);
  snprintf(a->event_id, sizeof a->event_id, "%s", ev->id);
  snprintf(a->rollout, sizeof a->rollout, "%s", ev->rollout);
  snprintf(a->type, sizeof a->type, "%s", event_type_name(ev->type));
  policy_describe(ev, a->action, sizeof a->action);
  snprintf(a->actor, sizeof a->actor, "%s", ev->actor);
  snprintf(a->signature, sizeof a->signature, "%s", event_auth_name(ev->auth));
  snprintf(a->outcome, sizeof a->outcome, "%s", outcome);
  snprintf(a->reason, sizeof a->reason, "%s", ev->type == EVENT_COMMAND ? ev->reason : "");
  snprintf(a->detail, sizeof a->detail, "%s", detail);
  a->time_ms = ev->time_ms;
  if (strcmp(outcome, "accepted"))
    log_msg(LOG_LVL_WARNING, ev->rollout[0] ? ev->rollout : "global", "%s %s: %s", a->action,
            outcome, detail);
}

/* What the engine's decisions (from effect `from` on) say of an applied person's event. */
static void audit_applied(struct shard *s, int topic, const struct pending *p,
                          const struct event *ev, size_t from) {
  if (policy_right_of(ev) == POLICY_RIGHT_COUNT)
    return;
  for (size_t i = from; i < s->b.fx.n; i++) {
    const struct effect *e = &s->b.fx.items[i];
    if (e->kind != EFFECT_DECISION)
      continue;
    if (!strcmp(e->u.decision.rule, "unauthorized"))
      return audit(s, topic, p, ev, "refused", e->u.decision.reason);
    if (!strcmp(e->u.decision.rule, "command_rejected"))
      return audit(s, topic, p, ev, "rejected", e->u.decision.reason);
  }
  char why[EVENT_TEXT_MAX + 256];
  enum policy_verdict v = policy_authorize(&s->engine.plan->policy, ev, why, sizeof why);
  if (!policy_allows(v)) /* refused with no rollout to say so (a global switch, none live) */
    return audit(s, topic, p, ev, "refused", why);
  audit(s, topic, p, ev, "accepted", why);
}

/* A rollout is about to be ticked (a metric evaluation is a tick too): it will change. */
static void mark_ticked(void *ctx, size_t i) {
  struct shard *s = ctx;
  worker_mark_dirty(&s->b, s->engine.rollouts[i]);
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
int worker_fire_until(struct shard *s, int64_t t) {
  for (;;) {
    if (!s->due_known)
      due_recompute(s);
    int64_t d = s->due_ms;
    if (d > t || d == ROLLOUT_NO_DEADLINE) /* "none" is a sentinel, never a time */
      return CANARY_OK;
    /* the walk that ticks also finds the next deadline */
    int rc = engine_tick_walk(&s->engine, d, &s->b.fx, mark_ticked, s, &s->due_ms, &s->due_index);
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
int64_t worker_advance_window_from(struct shard *s) {
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
static bool time_believable(const struct worker *w, const struct pending *p, const struct event *ev,
                            char *why, size_t len) {
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
  if (topic_of_event(ev.type) != TOPIC_METRICS || !time_believable(w, p, &ev, why, sizeof why) ||
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
 * committed: the shard is marked failed, worker_release() stops, and the main loop rewinds it to what
 * the store holds (shard_settle), so the event is applied again — retried, never skipped.
 */
static void apply_failed(struct shard *s, const struct pending *p, int rc) {
  log_msg(LOG_LVL_ERR, NULL,
          "shard %d: applying the message at offset %" PRId64 " failed (%s): the batch is "
          "dropped and the shard rewound to the store, to apply it again",
          s->id, p->offset, canary_strerror(rc));
  s->failed = rc;
}

/*
 * One service, one live rollout, across shards: the engine sees only its own shard's rollouts
 * (a service's rollouts are keyed by rollout id, so they land on any partition), the store sees
 * every shard's as committed. A new rollout is rare, so the commit in flight is collected first
 * (the store connection is ours then) and the store asked. A rollout of this shard is the
 * engine's to judge (its state here may be newer than the store's: rolled back in this batch).
 * Two requests that pass this on two shards at once are stopped by the store's unique index
 * (migration 012): the second commit fails, and its request, applied again, is refused here.
 * CANARY_EEXISTS with the reason in why when the service has a live rollout elsewhere.
 */
static int live_elsewhere(struct worker *w, struct shard *s, const struct event *ev, char *why,
                          size_t why_len) {
  worker_commit_collect(w);
  if (s->failed)
    return s->failed;
  char ids[4][EVENT_NAME_MAX];
  int shards[4];
  size_t n = 0;
  int rc = store_live_rollouts(w->store, ev->service, ev->rollout, ids, shards, 4, &n);
  if (rc != CANARY_OK) {
    log_msg(LOG_LVL_ERR, NULL, "shard %d: cannot check the live rollouts of service %s: %s (%s)",
            s->id, ev->service, canary_strerror(rc), store_last_error(w->store));
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    if (shards[i] == s->id && engine_find(&s->engine, ids[i]))
      continue;
    /* another shard of this worker: its memory may have ended it in a batch not yet stored
     * (the index holds this commit back until that one is: the shard retries) */
    const struct shard *o = shards[i] >= 0 && shards[i] < MAX_SHARDS ? w->shards[shards[i]] : NULL;
    const struct rollout *r = o ? engine_find(&o->engine, ids[i]) : NULL;
    if (r && rollout_is_terminal(r))
      continue;
    snprintf(why, why_len,
             "service: '%s' already has a live rollout, '%s' (on shard %d): one service, one live "
             "rollout — roll it back (canaryctl rollback %s) or let it complete, then request "
             "'%s' again",
             ev->service, ids[i], shards[i], ids[i], ev->rollout);
    return CANARY_EEXISTS;
  }
  return CANARY_OK;
}

void worker_apply_one(struct worker *w, struct shard *s, int topic, const struct pending *p) {
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
  /* A person's event: what its signature says under the policy, for the core to decide on */
  signing_check(&s->engine.plan->policy, &ev);
  if (!time_believable(w, p, &ev, why, sizeof why)) {
    audit(s, topic, p, &ev, "invalid", why);
    return dead_letter(w, s, topic, p, why);
  }
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
    audit(s, topic, p, &ev, "invalid", why);
    return dead_letter(w, s, topic, p, why);
  }
  if (ev.type == EVENT_ROLLOUT_REQUESTED) {
    rc = live_elsewhere(w, s, &ev, why, sizeof why);
    if (s->failed)
      return; /* the commit collected failed: the shard is rewound, this applied again */
    if (rc == CANARY_EEXISTS)
      return dead_letter(w, s, topic, p, why);
    if (rc != CANARY_OK)
      return apply_failed(s, p, rc);
  }
  if (ev.time_ms > s->clock_ms)
    s->clock_ms = ev.time_ms;
  if (topic == TOPIC_METRICS)
    note_metric(s, ev.time_ms, p->offset);
  if ((rc = worker_fire_until(s, ev.time_ms)) != CANARY_OK)
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
    audit(s, topic, p, &ev, "invalid", why);
    return dead_letter(w, s, topic, p, why);
  case APPLY_REJECTED:
    audit(s, topic, p, &ev, "invalid", why);
    return dead_letter(w, s, topic, p, why);
  case APPLY_APPLIED:
    break;
  }
  audit_applied(s, topic, p, &ev, before);
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
    worker_mark_all_dirty(s);
  else if ((r = engine_find(&s->engine, ev.rollout)))
    worker_mark_dirty(&s->b, r);
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

bool worker_release(struct worker *w, struct shard *s, int64_t now_wall) {
  for (long applied = 0;; applied++) {
    int k = -1;
    for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
      const struct pending *p = worker_queue_front(&s->q[t]);
      if (p && (k < 0 || p->time_ms < worker_queue_front(&s->q[k])->time_ms))
        k = t;
    }
    if (k < 0)
      return false;
    if (applied >= w->cfg->batch_max)
      return true;
    const struct pending *head = worker_queue_front(&s->q[k]);
    if (!others_released(w, s, k, head, now_wall))
      return false;
    /* the duplicate check a few messages on is a cache miss in a day's ids: start it now */
    const struct queue *q = &s->q[k];
    if (q->n > RELEASE_PREFETCH) {
      const struct pending *ahead = &q->items[q->head + RELEASE_PREFETCH];
      if (ahead->id_hash)
        engine_prefetch_id(&s->engine, ahead->id_hash);
    }
    worker_apply_one(w, s, k, head);
    worker_queue_pop(&s->q[k]);
    if (s->failed)
      return false; /* rewound before anything more: see apply_failed */
  }
}
