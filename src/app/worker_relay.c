/*
 * The relay: a thread of its own that publishes the outbox to Kafka in order, one relay of
 * the group at a time, and announces a row Kafka refuses for good.
 */
#include "app/worker_internal.h"

/* ---- relay ------------------------------------------------------------------------------ */

void worker_on_delivery(void *ctx, int64_t opaque, bool ok, const char *error) {
  struct worker *w = ctx;
  if (!ok) {
    log_msg(LOG_LVL_WARNING, NULL, "outbox row %" PRId64 " not delivered: %s (will retry)", opaque,
            error ? error : "?");
    atomic_fetch_add(&w->relay_errors, 1);
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
bool worker_relay_stopping(struct worker *w) {
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
    struct notification note = {.time_ms = wall_ms(),
                                .channel = channels[i],
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
 * A store call of the relay failed (rc): start again on a new connection, whatever the error. A
 * session ended by the server during a statement can report a plain I/O error with the socket
 * still open, and every later call on it failed too: the relay, which reconnected only on
 * "unavailable", then published nothing until a restart. The session's relay lock goes with
 * it, so the caller must not unlock after this.
 */
static void relay_store_failed(struct worker *w, int rc, const char *what) {
  if (rc != CANARY_EUNAVAILABLE)
    log_msg(LOG_LVL_WARNING, NULL, "relay: %s: %s (%s); reconnecting", what, canary_strerror(rc),
            store_last_error(w->relay_store));
  worker_store_back(w, w->relay_store);
}

/*
 * The last pass, at shutdown, goes on until a fetch finds the outbox empty, for at most this
 * long: the notices of a row it sets aside join the outbox during the pass, and with one more
 * fetch only when a round was full they waited for the next start — an on-call page delayed by
 * a deploy. Bounded, because a broker that is away (or another worker's relay adding rows all
 * the time) must not hold up the exit: what is left is published at the next start.
 */
#define RELAY_FINAL_DRAIN_MS 5000

/*
 * Wait until everything sent is settled — acknowledged, or failed for good at the producer's
 * message.timeout.ms (30 s) — before it is marked and the lock goes: a row still in flight could
 * reach the broker after the next relay published it again and the rows behind it. At shutdown
 * only until drain_until (then false: rows are still in flight).
 */
static bool relay_settle(struct worker *w, bool final, int64_t drain_until) {
  if (final) {
    int64_t left = drain_until - bus_monotonic_ms();
    if (bus_producer_flush(w->producer, (int)(left > 1000 ? left : 1000)) == CANARY_OK)
      return true;
    log_msg(LOG_LVL_WARNING, NULL,
            "stopping with outbox rows Kafka has not acknowledged: they "
            "are published again at the next start");
    return false;
  }
  for (int waited = 10; bus_producer_flush(w->producer, 10000) != CANARY_OK; waited += 10) {
    log_msg(LOG_LVL_WARNING, NULL,
            "Kafka has not acknowledged every outbox row in %d s; "
            "waiting (what it does not take will be published again)",
            waited);
    if (waited >= 60)
      break;
  }
  return true;
}

/*
 * Publish until the outbox is empty (or 20 rounds: then go on at the next turn; at shutdown
 * until RELAY_FINAL_DRAIN_MS have passed), holding the relay lock. False when the lock must not
 * be released here: the store connection was lost (and the lock with it), or at shutdown rows
 * are still in flight — the lock then goes with the connection, which is closed after the
 * producer (worker.c, stop), so that no other relay publishes behind them.
 */
static bool relay_rounds(struct worker *w, bool final) {
  int64_t drain_until = bus_monotonic_ms() + RELAY_FINAL_DRAIN_MS;
  for (int round = 0;
       final ? bus_monotonic_ms() < drain_until : round < 20 && !worker_relay_stopping(w);
       round++) {
    const struct store_outbox_msg *msgs;
    size_t n;
    int rc = store_outbox_fetch(w->relay_store, RELAY_BATCH, &msgs, &n);
    if (rc != CANARY_OK) {
      relay_store_failed(w, rc, "cannot read the outbox");
      return false;
    }
    if (n == 0) {
      atomic_store(&w->relay_progress_ms, wall_ms()); /* nothing waiting: not stuck */
      return true;
    }
    w->n_acked = 0;
    size_t set_aside = 0;
    int failed = CANARY_OK; /* a store call that failed in this round: reconnect once settled */
    const char *failed_what = "cannot set an outbox row aside";
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
        failed = store_outbox_fail(w->relay_store, m->seq, why, notices, n_notices);
        if (failed == CANARY_OK) {
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
        atomic_fetch_add(&w->relay_errors, 1);
        break;
      }
    }
    bool settled = relay_settle(w, final, drain_until);
    if (w->n_acked) {
      /* Not marked: published again, with the same ids, by the next relay (consumers
       * de-duplicate by id). */
      rc = store_outbox_mark(w->relay_store, w->acked, w->n_acked);
      if (rc == CANARY_OK) {
        atomic_fetch_add(&w->published, (int64_t)w->n_acked);
        atomic_store(&w->relay_progress_ms, wall_ms());
      } else if (failed == CANARY_OK) {
        failed = rc;
        failed_what = "cannot mark outbox rows published";
      }
    }
    if (failed != CANARY_OK) { /* what was sent is settled (or given up at shutdown) */
      relay_store_failed(w, failed, failed_what);
      return false;
    }
    if (!settled)
      return false;
    if (w->n_acked + set_aside < n)
      return true; /* Kafka did not take them all: again at the next turn (or start) */
    if (n < RELAY_BATCH && !final)
      return true; /* drained; the notices of rows set aside woke the next turn */
  }
  if (!final)
    relay_wake(w); /* more than 20 rounds' worth: go on at the next turn */
  else
    log_msg(LOG_LVL_WARNING, NULL,
            "stopping with outbox rows still to publish after %d s: "
            "they are published at the next start",
            RELAY_FINAL_DRAIN_MS / 1000);
  return true;
}

/*
 * One relay of the group publishes at a time (store_outbox_lock), from its fetch until what it
 * sent is acknowledged and marked. Each relay fetches every unpublished row, whichever shard
 * wrote it: with two workers, both published the same rows — hundreds of decisions twice with
 * no crash — and a traffic split sent again after the newer one behind it left the compacted
 * canary.flags on a stale exposure (the chaos test, test_chaos.c).
 */
void worker_relay(struct worker *w, bool final) {
  int rc = store_outbox_lock(w->relay_store);
  if (rc != CANARY_OK) {
    relay_store_failed(w, rc, "cannot take the relay lock");
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

/*
 * /metrics: how many outbox rows wait and since when, asked of PostgreSQL (one indexed count) at
 * most once a second, and only with --http-listen. A relay stuck in a flush does not measure;
 * canaryd_relay_last_progress_timestamp_seconds tells that case.
 */
static void relay_measure_backlog(struct worker *w) {
  static _Thread_local int64_t measured_at;
  if (!w->http || wall_ms() - measured_at < 1000)
    return;
  measured_at = wall_ms();
  int64_t rows, oldest_ms;
  if (store_outbox_backlog(w->relay_store, &rows, &oldest_ms) == CANARY_OK) {
    atomic_store(&w->relay_backlog, rows);
    atomic_store(&w->relay_oldest_ms, oldest_ms);
  }
}

void *worker_relay_main(void *arg) {
  struct worker *w = arg;
  int64_t pruned_at = 0;
  for (;;) {
    if (wall_ms() - pruned_at >= OUTBOX_PRUNE_EVERY_MS) {
      long n = 0;
      pruned_at = wall_ms();
      if (store_outbox_prune(w->relay_store, OUTBOX_KEEP_S, &n) == CANARY_OK && n > 0)
        log_msg(LOG_LVL_INFO, NULL, "deleted %ld outbox rows published more than %d days ago", n,
                OUTBOX_KEEP_S / 86400);
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
    worker_relay(w, stopping);
    if (stopping)
      return NULL;
    relay_measure_backlog(w);
  }
}
