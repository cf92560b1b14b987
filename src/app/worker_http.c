/*
 * canaryd's /metrics, /healthz and /readyz (worker_http.h): a libmicrohttpd daemon with its own
 * polling thread, answering from the latest snapshot the worker loop published.
 */
#include "app/worker_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app_log.h"
#include "core/expr.h"

struct worker_http {
  struct MHD_Daemon *daemon;
  char version[32];
  int64_t start_ms;
  pthread_mutex_t mu;
  struct worker_snapshot snap; /* under mu */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool worker_http_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len,
                              char *why, size_t why_len) {
  memset(addr, 0, sizeof *addr);
  const char *colon = text ? strrchr(text, ':') : NULL;
  char host[64];
  if (!colon || (size_t)(colon - text) >= sizeof host) {
    snprintf(why, why_len, "'%s' is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464, :9464)",
             text ? text : "");
    return false;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - text), text);
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || errno || port < 1 || port > 65535) {
    snprintf(why, why_len, "'%s': the port must be a number from 1 to 65535", text);
    return false;
  }
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    host[hl - 1] = '\0';
    if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
      snprintf(why, why_len, "'%s': '%s' is not an IPv6 address", text, host + 1);
      return false;
    }
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *addr_len = sizeof *a6;
    return true;
  }
  struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
  if (!hl)
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
  else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
    snprintf(why, why_len,
             "'%s': '%s' is not an IPv4 address (an IPv6 one goes in brackets; "
             "no host names)",
             text, host);
    return false;
  }
  a4->sin_family = AF_INET;
  a4->sin_port = htons((uint16_t)port);
  *addr_len = sizeof *a4;
  return true;
}

/* ---- /metrics ----------------------------------------------------------------------------- */

void worker_snapshot_hists_init(struct prom_hist *batch_events, struct prom_hist *commit_seconds,
                                struct prom_hist *apply_seconds) {
  static const double events[] = {1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000};
  static const double secs[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,   0.25,   0.5,   1,    2.5,   10};
  prom_hist_init(batch_events, events, sizeof events / sizeof *events);
  prom_hist_init(commit_seconds, secs, sizeof secs / sizeof *secs);
  prom_hist_init(apply_seconds, secs, sizeof secs / sizeof *secs);
}

/* RSS and virtual size from /proc/self/statm (pages); false where there is none. */
static bool process_memory(double *rss, double *vsize) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return false;
  unsigned long size = 0, resident = 0;
  bool ok = fscanf(f, "%lu %lu", &size, &resident) == 2;
  fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  *rss = (double)resident * (double)page;
  *vsize = (double)size * (double)page;
  return ok && page > 0;
}

static void one(struct prom_buf *b, const char *name, const char *type, const char *help,
                double v) {
  prom_family(b, name, type, help);
  prom_sample(b, name, NULL, 0, v);
}

static void format_rollouts(const struct worker_snapshot *s, struct prom_buf *b) {
  prom_family(b, "canaryd_rollouts", "gauge",
              "Rollouts in this worker's memory (its shards), by state.");
  for (int st = 0; st < ROLLOUT_STATE_COUNT; st++) {
    struct prom_label l[] = {{"state", rollout_state_name((enum rollout_state)st)}};
    prom_sample(b, "canaryd_rollouts", l, 1, (double)s->by_state[st]);
  }
  one(b, "canaryd_rollouts_exported_max", "gauge",
      "Most rollouts given per-rollout series (live ones first, newest first).",
      WORKER_HTTP_MAX_ROLLOUTS);
  one(b, "canaryd_rollouts_not_exported", "gauge",
      "Rollouts in memory beyond canaryd_rollouts_exported_max: no per-rollout series.",
      (double)(s->rollouts_total - s->n_rollouts));
  prom_family(b, "canaryd_rollout_state", "gauge", "1 for the state each exported rollout is in.");
  for (size_t i = 0; i < s->n_rollouts; i++) {
    const struct wh_rollout *r = &s->rollouts[i];
    struct prom_label l[] = {{"rollout", r->id},
                             {"service", r->service},
                             {"version", r->version},
                             {"state", rollout_state_name(r->state)}};
    prom_sample(b, "canaryd_rollout_state", l, 4, 1);
  }
  prom_family(b, "canaryd_rollout_exposure_percent", "gauge",
              "Share of traffic the rollout's canary serves (its last traffic split).");
  for (size_t i = 0; i < s->n_rollouts; i++) {
    struct prom_label l[] = {{"rollout", s->rollouts[i].id}, {"service", s->rollouts[i].service}};
    prom_sample(b, "canaryd_rollout_exposure_percent", l, 2, s->rollouts[i].exposure);
  }
  prom_family(b, "canaryd_rollout_stage", "gauge",
              "Index of the rollout's current stage (0 first).");
  for (size_t i = 0; i < s->n_rollouts; i++) {
    struct prom_label l[] = {{"rollout", s->rollouts[i].id}, {"service", s->rollouts[i].service}};
    prom_sample(b, "canaryd_rollout_stage", l, 2, s->rollouts[i].stage);
  }
  static const char *const kinds[] = {"rule", "entry", "exit"};
  static const char *const fams[][2] = {
      {"canaryd_rollout_rule_value", "Latest measured value of a metric rule or gate criterion "
                                     "(variant canary or baseline)."},
      {"canaryd_rollout_rule_limit", "The threshold that rule or criterion compares with."},
      {"canaryd_rollout_rule_firing", "1 while the rule's condition holds for its whole for:."}};
  for (int f = 0; f < 3; f++) {
    prom_family(b, fams[f][0], "gauge", fams[f][1]);
    for (size_t i = 0; i < s->n_rollouts; i++) {
      const struct wh_rollout *r = &s->rollouts[i];
      for (int k = 0; k < r->n_readings; k++) {
        const struct wh_reading *rd = &r->readings[k];
        const char *kind = rd->kind >= 0 && rd->kind < 3 ? kinds[rd->kind] : "rule";
        struct prom_label l[] = {
            {"rollout", r->id}, {"rule", rd->name}, {"kind", kind}, {"variant", "canary"}};
        if (f == 0) {
          if (!isnan(rd->canary))
            prom_sample(b, fams[f][0], l, 4, rd->canary);
          l[3].value = "baseline";
          if (!isnan(rd->baseline))
            prom_sample(b, fams[f][0], l, 4, rd->baseline);
        } else if (f == 1) {
          if (!isnan(rd->threshold))
            prom_sample(b, fams[f][0], l, 3, rd->threshold);
        } else {
          prom_sample(b, fams[f][0], l, 3, rd->state == EXPR_FOR_FIRING);
        }
      }
    }
  }
}

/* The snapshot's plain counters: one row each (name, help, where in the snapshot). */
struct counter_row {
  const char *name, *help;
  size_t off; /* of an int64_t in struct worker_snapshot */
};

#define ROW(name, field, help)                                                                     \
  { name, help, offsetof(struct worker_snapshot, field) }
static const struct counter_row counters[] = {
    ROW("canaryd_events_applied_total", applied, "Events the engine applied."),
    ROW("canaryd_events_duplicate_total", duplicates,
        "Redelivered events recognised by their id (nothing changed)."),
    ROW("canaryd_dead_letters_total", dead_letters,
        "Messages refused (undecodable, invalid, wrong topic, reused id): sent to canary.dlq."),
    ROW("canaryd_id_conflicts_total", conflicts,
        "Events whose id was seen before with other content (dead-lettered)."),
    ROW("canaryd_metric_events_replayed_total", replayed,
        "Metric events replayed into the windows after a shard was loaded."),
    ROW("canaryd_commits_total", commits, "Batches committed to PostgreSQL."),
    ROW("canaryd_commit_failures_total", commit_failures,
        "Batch commits that failed or were fenced (the shard resumes from the store)."),
};
static const struct counter_row relay_counters[] = {
    ROW("canaryd_relay_published_total", published, "Outbox rows published to Kafka."),
    ROW("canaryd_relay_errors_total", relay_errors,
        "Outbox rows Kafka did not acknowledge or the producer would not queue (retried)."),
    ROW("canaryd_relay_set_aside_total", set_aside,
        "Outbox rows Kafka refuses for good, set aside (outbox.failure) with notices."),
};
#undef ROW

static void put_counters(struct prom_buf *b, const struct worker_snapshot *s,
                         const struct counter_row *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    memcpy(&v, (const char *)s + rows[i].off, sizeof v);
    one(b, rows[i].name, "counter", rows[i].help, (double)v);
  }
}

static void format_relay(const struct worker_snapshot *s, struct prom_buf *b) {
  one(b, "canaryd_relay_enabled", "gauge", "1 when this worker publishes the outbox.", s->relay);
  if (!s->relay)
    return;
  put_counters(b, s, relay_counters, sizeof relay_counters / sizeof *relay_counters);
  if (s->backlog_rows >= 0) {
    one(b, "canaryd_relay_backlog_rows", "gauge",
        "Outbox rows not yet published (every shard's: the relays of a group share it).",
        (double)s->backlog_rows);
    one(b, "canaryd_relay_oldest_unpublished_seconds", "gauge",
        "Age of the oldest unpublished outbox row (0 when none).", s->backlog_oldest_s);
  }
  if (s->relay_progress_ms > 0)
    one(b, "canaryd_relay_last_progress_timestamp_seconds", "gauge",
        "When the relay last published rows or found the outbox empty (Unix time).",
        (double)s->relay_progress_ms / 1000.0);
}

void worker_http_format(const struct worker_snapshot *s, const char *version, int64_t start_ms,
                        struct prom_buf *b) {
  prom_family(b, "canaryd_build_info", "gauge", "canaryd's version (the value is 1).");
  struct prom_label vl[] = {{"version", version}};
  prom_sample(b, "canaryd_build_info", vl, 1, 1);
  one(b, "canaryd_process_start_time_seconds", "gauge", "When the process started (Unix time).",
      (double)start_ms / 1000.0);
  double rss, vsize;
  if (process_memory(&rss, &vsize)) {
    one(b, "canaryd_process_resident_memory_bytes", "gauge", "Resident memory (RSS).", rss);
    one(b, "canaryd_process_virtual_memory_bytes", "gauge", "Virtual memory size.", vsize);
  }
  one(b, "canaryd_snapshot_timestamp_seconds", "gauge",
      "When the worker loop took the figures below (once a second).", (double)s->taken_ms / 1000.0);
  one(b, "canaryd_ready", "gauge",
      "1 when every shard this worker owns is loaded and has caught up (as /readyz).", s->ready);
  one(b, "canaryd_frozen", "gauge",
      "1 while canaryctl freeze holds: this worker applies no event until unfreeze.", s->frozen);
  one(b, "canaryd_shards_owned", "gauge", "Shards (input partitions) this worker owns.", s->shards);
  prom_family(b, "canaryd_consumer_lag_messages", "gauge",
              "Messages on the broker not yet applied, per input partition this worker owns "
              "(high watermark of the last fetch minus the next offset to apply).");
  for (size_t i = 0; i < s->n_lags; i++) {
    if (s->lags[i].lag < 0)
      continue;
    char part[16];
    snprintf(part, sizeof part, "%" PRId32, s->lags[i].partition);
    struct prom_label l[] = {{"topic", s->lags[i].topic}, {"partition", part}};
    prom_sample(b, "canaryd_consumer_lag_messages", l, 2, (double)s->lags[i].lag);
  }
  put_counters(b, s, counters, sizeof counters / sizeof *counters);
  prom_family(b, "canaryd_batch_events", "histogram", "Events applied per committed batch.");
  prom_histogram(b, "canaryd_batch_events", NULL, 0, &s->batch_events);
  prom_family(b, "canaryd_commit_seconds", "histogram",
              "From sending a batch's transaction to its confirmation.");
  prom_histogram(b, "canaryd_commit_seconds", NULL, 0, &s->commit_seconds);
  prom_family(b, "canaryd_apply_seconds", "histogram",
              "Engine time per shard per loop pass: decoding, deadlines and rule evaluation of "
              "the events released (passes that released none are not counted).");
  prom_histogram(b, "canaryd_apply_seconds", NULL, 0, &s->apply_seconds);
  prom_family(b, "canaryd_decisions_total", "counter", "Decisions committed, by action.");
  for (int a = 0; a < DECISION_ACTION_COUNT; a++) {
    struct prom_label l[] = {{"action", decision_action_name((enum decision_action)a)}};
    prom_sample(b, "canaryd_decisions_total", l, 1, (double)s->decisions[a]);
  }
  one(b, "canaryd_rule_evaluations_total", "counter",
      "Metric halt rules, alerts and gate criteria evaluated.", (double)s->rule_evaluations);
  format_relay(s, b);
  format_rollouts(s, b);
}

/* ---- the server ----------------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, bool owned) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!r) {
    if (owned)
      free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg) {
  return reply(c, status, "text/plain; charset=utf-8", (char *)msg, strlen(msg), false);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **req) {
  (void)version, (void)upload, (void)upload_len, (void)req;
  struct worker_http *h = cls;
  if (strcmp(method, "GET") && strcmp(method, "HEAD"))
    return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD\n");
  if (!strcmp(url, "/healthz"))
    return text(c, MHD_HTTP_OK, "ok\n");
  if (strcmp(url, "/metrics") && strcmp(url, "/readyz"))
    return text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz, /readyz\n");
  /* copied out under the lock, formatted after it: a slow scrape never holds up the loop */
  struct worker_snapshot *s = malloc(sizeof *s);
  if (!s)
    return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  pthread_mutex_lock(&h->mu);
  memcpy(s, &h->snap, sizeof *s);
  pthread_mutex_unlock(&h->mu);
  if (!strcmp(url, "/readyz")) {
    bool ready = s->ready;
    bool started = s->started;
    free(s);
    return ready ? text(c, MHD_HTTP_OK, "ready\n")
                 : text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                        started ? "not ready: shards loading or catching up\n"
                                : "not ready: starting (PostgreSQL, migrations, Kafka group)\n");
  }
  struct prom_buf b = {0};
  worker_http_format(s, h->version, h->start_ms, &b);
  free(s);
  if (b.failed || !b.data) {
    prom_buf_free(&b);
    return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, true);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && line[n - 1] == '\n')
    line[--n] = '\0';
  log_msg(LOG_LVL_WARNING, NULL, "http: %s", line);
}

int worker_http_start(const char *where, const char *version, worker_http_t **out, char *why,
                      size_t why_len) {
  *out = NULL;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  if (!worker_http_parse_listen(where, &addr, &addr_len, why, why_len))
    return -1;
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      bind(fd, (struct sockaddr *)&addr, addr_len) != 0 || listen(fd, 64) != 0) {
    snprintf(why, why_len, "--http-listen %s: %s", where, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  struct worker_http *h = calloc(1, sizeof *h);
  if (!h) {
    close(fd);
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  h->start_ms = now_ms();
  snprintf(h->version, sizeof h->version, "%s", version);
  pthread_mutex_init(&h->mu, NULL);
  h->snap.backlog_rows = -1;
  worker_snapshot_hists_init(&h->snap.batch_events, &h->snap.commit_seconds,
                             &h->snap.apply_seconds);
  /* One polling thread: a scrape takes well under a millisecond to format, and a client that
   * reads slowly only holds its own connection (non-blocking sockets). AUTO: epoll or poll,
   * not select, whose FD_SETSIZE a process with many Kafka and PostgreSQL sockets can pass. */
  h->daemon =
      MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
                       NULL, answer, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                       MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (!h->daemon) {
    snprintf(why, why_len, "--http-listen %s: libmicrohttpd could not start", where);
    close(fd);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return -1;
  }
  *out = h;
  return 0;
}

void worker_http_publish(worker_http_t *h, const struct worker_snapshot *snap) {
  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  memcpy(&h->snap, snap, sizeof *snap);
  pthread_mutex_unlock(&h->mu);
}

void worker_http_stop(worker_http_t *h) {
  if (!h)
    return;
  /* quiesce hands the listening socket back (stop would close it too, behind our back) */
  MHD_socket fd = MHD_quiesce_daemon(h->daemon);
  MHD_stop_daemon(h->daemon);
  if (fd != MHD_INVALID_SOCKET)
    close(fd);
  pthread_mutex_destroy(&h->mu);
  free(h);
}
