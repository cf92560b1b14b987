/*
 * `canaryd notify`: consume canary.notifications, deliver each to its sink at most once,
 * retry with back-off, dead-letter what is refused, keeps failing or has an unknown outcome.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "app/app_log.h"
#include "app/notify.h"
#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "store/store.h"

#define SLACK_MAX (256 * 1024)
#define DLQ_ORIGINAL_MAX 65536

void notify_config_defaults(struct notify_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->group = "canaryd-notify";
  cfg->client_id = "canaryd-notify";
  cfg->max_attempts = 8;
  cfg->backoff_ms = 500;
  cfg->backoff_max_ms = 30000;
  cfg->retry_after_max_ms = 300000;
  /* longer than a message stays on canary.notifications with Kafka's defaults (retention.ms
   * 7 days, plus segment.ms 7 days before its segment can go): its row still recognises it */
  cfg->retention_s = 15 * 86400;
  cfg->ep.timeout_ms = 10000;
  cfg->sinks = (1u << NOTIFY_SINK_COUNT) - 1;
}

bool notify_parse_sinks(const char *list, unsigned *sinks, char *why, size_t why_len) {
  *sinks = 0;
  const char *p = list;
  while (*p) {
    size_t n = strcspn(p, ",");
    int s = 0;
    while (s < NOTIFY_SINK_COUNT && (strlen(notify_sink_name((enum notify_sink)s)) != n ||
                                     strncmp(p, notify_sink_name((enum notify_sink)s), n)))
      s++;
    if (n == 3 && !strncmp(p, "all", 3))
      *sinks |= (1u << NOTIFY_SINK_COUNT) - 1;
    else if (s < NOTIFY_SINK_COUNT)
      *sinks |= 1u << s;
    else {
      snprintf(why, why_len, "--sink: '%.*s' is not slack, pagerduty, statuspage, smtp or all",
               (int)n, p);
      return false;
    }
    p += n + (p[n] == ',');
  }
  if (!*sinks)
    snprintf(why, why_len, "--sink: no sink named");
  return *sinks != 0;
}

enum notify_sink notify_route(const struct notification *n, bool *all_clear) {
  *all_clear = n->severity == NOTIFY_SEV_INFO &&
               (n->channel == NOTIFY_ONCALL || n->channel == NOTIFY_STATUS_PAGE);
  switch (n->channel) {
  case NOTIFY_ONCALL:
    return NOTIFY_SINK_PAGERDUTY;
  case NOTIFY_STATUS_PAGE:
    return NOTIFY_SINK_STATUSPAGE;
  case NOTIFY_EXECUTIVE:
    return NOTIFY_SINK_SMTP;
  case NOTIFY_RELEASES:
  case NOTIFY_CHANNEL_COUNT:
    break;
  }
  return NOTIFY_SINK_SLACK;
}

struct relay {
  struct notify_config *cfg;
  volatile sig_atomic_t *running;
  store_t *st;
  bus_subscriber_t *sub;
  bus_producer_t *prod;
  avro_codec_t *codec;
  char *slack;
  int64_t delivered, dead, skipped, duplicates;
  int64_t pruned_ms; /* when the record was last pruned (0: not yet) */
};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms, in short steps, as long as the relay runs; false when it was told to stop. */
static bool pause_ms(struct relay *r, int64_t ms) {
  while (ms > 0 && *r->running) {
    int64_t step = ms < 100 ? ms : 100;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
  return *r->running;
}

enum outcome { DONE, AGAIN }; /* AGAIN: the message is not settled; handle it again later */

/* Publish a dead letter for msg and wait for the broker's acknowledgement. */
static bool dead_letter(struct relay *r, const struct bus_msg *msg, const char *ctx, const char *id,
                        const char *reason) {
  struct avro_buf out = {0};
  char named[800];
  if (id) { /* the dead letter names what it was about: its original is Avro bytes */
    snprintf(named, sizeof named, "notification %s: %s", id, reason);
    reason = named;
  }
  size_t len = msg->len < DLQ_ORIGINAL_MAX ? msg->len : DLQ_ORIGINAL_MAX;
  size_t key_len = msg->key_len < 1024 ? msg->key_len : 1024;
  bool ok =
      avro_codec_encode_dlq(r->codec, msg->value, len, "canary.notifications", msg->partition,
                            msg->offset, msg->key, key_len, reason, wall_ms(), &out) == CANARY_OK &&
      bus_produce(r->prod, "canary.dlq", -1, msg->key, key_len, out.data, out.len, 0) ==
          CANARY_OK &&
      bus_producer_flush(r->prod, 30000) == CANARY_OK;
  avro_buf_free(&out);
  if (ok)
    log_msg(LOG_LVL_WARNING, ctx, "dead letter: %s", reason);
  else
    log_msg(LOG_LVL_ERR, ctx, "cannot publish the dead letter (%s): will try again", reason);
  return ok;
}

/* A store call failed: reconnect if the connection went away. */
static void store_trouble(struct relay *r, const char *ctx, int rc) {
  log_msg(LOG_LVL_ERR, ctx, "store: %s", store_last_error(r->st));
  if (rc == CANARY_EUNAVAILABLE && store_reconnect(r->st, 5000) != CANARY_OK)
    log_msg(LOG_LVL_ERR, ctx, "store: still unavailable");
}

/* Settle as dead: the dead letter first, then the record (a crash between sends it again). */
static enum outcome settle_dead(struct relay *r, const struct bus_msg *msg, const char *ctx,
                                const char *id, const char *sink, int attempt,
                                const struct notify_result *res, const char *reason) {
  if (!dead_letter(r, msg, ctx, id, reason))
    return AGAIN;
  /* without a result, the attempt (if any) is the one a crash cut short */
  const char *outcome = !res ? "unknown" : res->verdict == NOTIFY_REFUSED ? "refused" : "failed";
  int rc = store_delivery_finish(r->st, id, sink, attempt, outcome, res ? res->status : 0, reason,
                                 STORE_DELIVERY_DEAD, NULL);
  if (rc != CANARY_OK) {
    store_trouble(r, ctx, rc);
    return AGAIN;
  }
  r->dead++;
  return DONE;
}

/* Settle without a request: an all-clear with nothing to close. */
static enum outcome settle_skipped(struct relay *r, const char *ctx, const char *id,
                                   const char *sink, const char *why) {
  int rc = store_delivery_finish(r->st, id, sink, 0, NULL, 0, why, STORE_DELIVERY_SKIPPED, NULL);
  if (rc != CANARY_OK) {
    store_trouble(r, ctx, rc);
    return AGAIN;
  }
  r->skipped++;
  return DONE;
}

int64_t notify_backoff_ms(const struct notify_config *cfg, int attempt, int64_t retry_after_ms) {
  int64_t d = cfg->backoff_ms;
  for (int i = 1; i < attempt && d < cfg->backoff_max_ms; i++)
    d *= 2;
  if (d > cfg->backoff_max_ms)
    d = cfg->backoff_max_ms;
  if (retry_after_ms > d) /* the endpoint said when: not earlier */
    d = retry_after_ms < cfg->retry_after_max_ms ? retry_after_ms : cfg->retry_after_max_ms;
  return d;
}

/* Attempts until the delivery is settled (or the relay stops: AGAIN, resumed at the restart). */
static enum outcome attempts(struct relay *r, const struct bus_msg *msg, const char *ctx,
                             const struct notify_item *it, enum notify_sink sink, enum notify_op op,
                             const char *remote_id, int done) {
  const char *id = it->n.id, *sn = notify_sink_name(sink);
  struct notify_result res;
  int rc;
  for (int attempt = done + 1;; attempt++) {
    if (attempt > r->cfg->max_attempts) {
      char reason[512];
      snprintf(reason, sizeof reason, "%s: failed %d attempts", sn, attempt - 1);
      return settle_dead(r, msg, ctx, id, sn, 0, NULL, reason);
    }
    int n;
    if ((rc = store_delivery_attempt(r->st, id, sn, &n)) != CANARY_OK) { /* not sent */
      store_trouble(r, ctx, rc);
      return AGAIN;
    }
    notify_deliver(&r->cfg->ep, sink, op, it, remote_id, &res);
    log_msg(res.verdict == NOTIFY_DELIVERED ? LOG_LVL_INFO : LOG_LVL_WARNING, ctx,
            "%s attempt %d: %s", sn, n, res.detail);
    if (res.verdict == NOTIFY_REFUSED)
      return settle_dead(r, msg, ctx, id, sn, n, &res, res.detail);
    if (res.verdict == NOTIFY_RETRY && n >= r->cfg->max_attempts) {
      char reason[512];
      snprintf(reason, sizeof reason, "failed %d attempts; the last: %s", n, res.detail);
      return settle_dead(r, msg, ctx, id, sn, n, &res, reason);
    }
    struct store_alert_change alert = {STORE_ALERT_NONE, it->n.rollout, NULL};
    if (res.verdict == NOTIFY_DELIVERED) {
      if (op == NOTIFY_OP_TRIGGER || op == NOTIFY_OP_CREATE)
        alert = (struct store_alert_change){STORE_ALERT_OPEN, it->n.rollout,
                                            res.remote_id[0] ? res.remote_id : NULL};
      else if (op == NOTIFY_OP_RESOLVE)
        alert.op = STORE_ALERT_CLOSE;
    }
    rc = store_delivery_finish(
        r->st, id, sn, n, res.verdict == NOTIFY_DELIVERED ? "delivered" : "retry", res.status,
        res.detail,
        res.verdict == NOTIFY_DELIVERED ? STORE_DELIVERY_DELIVERED : STORE_DELIVERY_RETRY, &alert);
    if (rc != CANARY_OK) { /* left 'sending': the next look dead-letters it as unknown */
      store_trouble(r, ctx, rc);
      return AGAIN;
    }
    if (res.verdict == NOTIFY_DELIVERED) {
      r->delivered++;
      return DONE;
    }
    if (!pause_ms(r, notify_backoff_ms(r->cfg, n, res.retry_after_ms)))
      return AGAIN;
  }
}

static enum outcome handle(struct relay *r, const struct bus_msg *msg) {
  char ctx[200], why[512];
  snprintf(ctx, sizeof ctx, "topic=%s partition=%d offset=%" PRId64,
           bus_topic("canary.notifications"), (int)msg->partition, msg->offset);
  struct notify_item it = {.slack = r->slack};
  int rc = avro_codec_decode_notification(r->codec, msg->value, msg->len, &it.n, r->slack,
                                          SLACK_MAX, why, sizeof why);
  if (rc != CANARY_OK) {
    char reason[600];
    snprintf(reason, sizeof reason, "not a notification: %s", why);
    return dead_letter(r, msg, ctx, NULL, reason) ? DONE : AGAIN;
  }
  snprintf(ctx, sizeof ctx, "rollout=%s notification=%s", it.n.rollout, it.n.id);
  static struct decision d; /* the relay is one thread */
  bool found = false;
  if (it.n.decision_id[0] &&
      (rc = store_decision(r->st, it.n.decision_id, &d, &found)) != CANARY_OK) {
    store_trouble(r, ctx, rc);
    return AGAIN;
  }
  it.decision = found ? &d : NULL; /* a database without it (another installation's): no evidence */
  bool all_clear;
  enum notify_sink sink = notify_route(&it.n, &all_clear);
  if (!(r->cfg->sinks & (1u << sink)))
    return DONE; /* another relay's (--sink): nothing recorded here */
  const char *sn = notify_sink_name(sink), *needs;
  enum store_delivery_state state;
  int done;
  if ((rc = store_delivery_begin(r->st, it.n.id, sn, it.n.rollout, &state, &done)) != CANARY_OK) {
    store_trouble(r, ctx, rc);
    return AGAIN;
  }
  switch (state) {
  case STORE_DELIVERY_DELIVERED:
  case STORE_DELIVERY_SKIPPED:
  case STORE_DELIVERY_DEAD:
    r->duplicates++;
    log_msg(LOG_LVL_DEBUG, ctx, "%s: already %s", sn, store_delivery_state_name(state));
    return DONE;
  case STORE_DELIVERY_SENDING: {
    char reason[300];
    snprintf(reason, sizeof reason,
             "%s: outcome unknown: attempt %d was in flight when a relay stopped; not sent again",
             sn, done);
    return settle_dead(r, msg, ctx, it.n.id, sn, done, NULL, reason);
  }
  case STORE_DELIVERY_NEW:
  case STORE_DELIVERY_RETRY:
    break;
  }
  if (!notify_sink_configured(&r->cfg->ep, sink, &needs)) {
    if (all_clear) /* nothing was opened there either */
      return settle_skipped(r, ctx, it.n.id, sn, "not configured");
    snprintf(why, sizeof why, "%s: not configured (set %s)", sn, needs);
    return settle_dead(r, msg, ctx, it.n.id, sn, 0, NULL, why);
  }
  enum notify_op op = NOTIFY_OP_POST;
  char remote[128] = "";
  if (sink == NOTIFY_SINK_PAGERDUTY || sink == NOTIFY_SINK_STATUSPAGE) {
    bool open;
    if ((rc = store_alert_get(r->st, sn, it.n.rollout, &open, remote, sizeof remote))) {
      store_trouble(r, ctx, rc);
      return AGAIN;
    }
    if (all_clear && !open) /* nothing open to resolve: no request at all */
      return settle_skipped(r, ctx, it.n.id, sn, "nothing open to resolve");
    if (sink == NOTIFY_SINK_PAGERDUTY)
      op = all_clear ? NOTIFY_OP_RESOLVE : NOTIFY_OP_TRIGGER;
    else
      op = all_clear ? NOTIFY_OP_RESOLVE : open && remote[0] ? NOTIFY_OP_UPDATE : NOTIFY_OP_CREATE;
  }
  return attempts(r, msg, ctx, &it, sink, op, remote, done);
}

/*
 * Delete the record of deliveries settled more than retention_s ago, at start and every
 * NOTIFY_PRUNE_EVERY_MS, a batch at a time (each a short statement) between messages. A failure
 * is logged and tried again next time: pruning is housekeeping, delivery goes on.
 */
static void prune(struct relay *r) {
  int64_t now = wall_ms();
  if (r->cfg->retention_s <= 0 || (r->pruned_ms && now - r->pruned_ms < NOTIFY_PRUNE_EVERY_MS))
    return;
  r->pruned_ms = now;
  long total = 0, n;
  do {
    if (store_notify_prune(r->st, r->cfg->retention_s, NOTIFY_PRUNE_BATCH, &n) != CANARY_OK) {
      log_msg(LOG_LVL_WARNING, NULL, "notify: cannot prune the delivery record: %s",
              store_last_error(r->st));
      return;
    }
    total += n;
  } while (n == NOTIFY_PRUNE_BATCH && *r->running);
  if (total)
    log_msg(LOG_LVL_INFO, NULL, "notify: pruned %ld deliveries settled more than %" PRId64 " h ago",
            total, r->cfg->retention_s / 3600);
}

static void log_sinks(const struct notify_endpoints *ep, unsigned sinks) {
  for (int s = 0; s < NOTIFY_SINK_COUNT; s++) {
    const char *needs;
    if (!(sinks & (1u << s)))
      log_msg(LOG_LVL_NOTICE, NULL, "sink %s: another relay's (--sink)",
              notify_sink_name((enum notify_sink)s));
    else if (notify_sink_configured(ep, (enum notify_sink)s, &needs))
      log_msg(LOG_LVL_NOTICE, NULL, "sink %s: on", notify_sink_name((enum notify_sink)s));
    else
      log_msg(LOG_LVL_WARNING, NULL, "sink %s: off (%s unset): its notifications are dead-lettered",
              notify_sink_name((enum notify_sink)s), needs);
  }
}

int notify_run(struct notify_config *cfg, volatile sig_atomic_t *running) {
  struct relay r = {.cfg = cfg, .running = running};
  int rc = -1;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    log_msg(LOG_LVL_ERR, NULL, "libcurl: cannot initialise");
    return -1;
  }
  r.slack = malloc(SLACK_MAX);
  if (!r.slack || avro_codec_new(&r.codec) != CANARY_OK) {
    log_msg(LOG_LVL_ERR, NULL, "codec: cannot start (schemas, memory)");
    goto out;
  }
  if (store_open(cfg->conninfo, 30000, log_callback, NULL, &r.st) != CANARY_OK)
    goto out;
  int applied;
  if (store_migrate(r.st, &applied) != CANARY_OK) {
    log_msg(LOG_LVL_ERR, NULL, "migrations: %s", store_last_error(r.st));
    goto out;
  }
  if (bus_create_topics(cfg->brokers, 3, 10000, log_callback, NULL) != CANARY_OK)
    log_msg(LOG_LVL_WARNING, NULL, "notify: could not check the topics; going on");
  if (bus_producer_new(cfg->brokers, cfg->client_id, log_callback, NULL, &r.prod) != CANARY_OK ||
      bus_subscriber_new(cfg->brokers, "canary.notifications", cfg->group, cfg->client_id,
                         cfg->kafka_conf, log_callback, NULL, &r.sub) != CANARY_OK)
    goto out;
  log_sinks(&cfg->ep, cfg->sinks);
  log_msg(LOG_LVL_NOTICE, NULL, "notify: group %s, reading %s", cfg->group,
          bus_topic("canary.notifications"));
  while (*running) {
    struct bus_msg msg;
    prune(&r);
    if (bus_subscriber_read(r.sub, 200, &msg) != CANARY_OK)
      continue;
    while (*running && handle(&r, &msg) == AGAIN)
      pause_ms(&r, 1000);
    if (*running) /* settled: done with it (a stop in between leaves it for the next start) */
      (void)bus_subscriber_commit(r.sub, &msg);
  }
  log_msg(LOG_LVL_NOTICE, NULL,
          "notify: stopping: %" PRId64 " delivered, %" PRId64 " dead-lettered, %" PRId64
          " skipped, %" PRId64 " seen before",
          r.delivered, r.dead, r.skipped, r.duplicates);
  rc = 0;
out:
  bus_subscriber_close(r.sub);
  if (r.prod && bus_producer_flush(r.prod, 10000) != CANARY_OK)
    log_msg(LOG_LVL_WARNING, NULL, "notify: dead letters not acknowledged at exit");
  bus_producer_destroy(r.prod);
  store_close(r.st);
  avro_codec_destroy(r.codec);
  free(r.slack);
  curl_global_cleanup();
  return rc;
}
