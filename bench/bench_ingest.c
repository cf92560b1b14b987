/*
 * Sustained ingest of metric batch events: canaryd against a bare librdkafka consumer that
 * decodes nothing, on the same stream, in the same run.
 *
 *   bench_ingest produce N ROLLOUTS   produce the stream (rollouts started, then N metric events)
 *   bench_ingest bare N               read N messages of canary.metrics, decoding nothing
 *   bench_ingest watch N CONNINFO     wait until canaryd has committed N metric events (offsets
 *                                     in PostgreSQL), from the moment it claimed its shards
 *
 * Each prints one line "RESULT <name> <events> <seconds>". bench/ingest runs the three and
 * prints the rates and the ratio. Asserts nothing.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "core/event.h"

#define OBS_PER_EVENT 14 /* 2 counters + 2 gauges + 10 latency values */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int produce(long n, int rollouts) {
  avro_codec_t *codec;
  bus_producer_t *p;
  const char *kafka = getenv("CANARY_KAFKA");
  if (avro_codec_new(&codec) != CANARY_OK ||
      bus_producer_new(kafka, "bench-ingest", NULL, NULL, &p) != CANARY_OK)
    return 1;
  struct avro_buf buf = AVRO_BUF_INIT;
  int64_t t = 1767225600000; /* event time, 2026-01-01 */
  /* REPORTERS pods per rollout each report every 10 s: event time advances 10 s / (rollouts x
   * reporters) an event. Unset: 10 ms (50 pods at 20 rollouts), the stream of earlier figures.
   * A larger fleet sends more reports per rule evaluation (at most four a second a rollout). */
  int reporters = getenv("REPORTERS") ? atoi(getenv("REPORTERS")) : 0;
  double step_us = reporters > 0 ? 10e6 / ((double)rollouts * reporters) : 10000, t_us = 0;
  long id = 0;
  for (int r = 0; r < rollouts; r++) {
    static const enum event_type start[] = {EVENT_ROLLOUT_REQUESTED, EVENT_CI_COMPLETED,
                                            EVENT_DEPLOY_COMPLETED, EVENT_HEALTH_CHECKED};
    for (int k = 0; k < 4; k++) {
      struct event ev = {.type = start[k], .ok = true, .time_ms = t};
      snprintf(ev.id, sizeof ev.id, "ingest-%ld", ++id);
      snprintf(ev.rollout, sizeof ev.rollout, "ingest-r%d", r);
      snprintf(ev.service, sizeof ev.service, "svc%d", r);
      snprintf(ev.version, sizeof ev.version, "2.0.0");
      snprintf(ev.baseline_version, sizeof ev.baseline_version, "1.0.0");
      if (avro_codec_encode_event(codec, &ev, &buf) ||
          bus_produce(p, avro_codec_topic_of(ev.type), -1, ev.rollout, strlen(ev.rollout),
                      buf.data, buf.len, id))
        return 1;
    }
  }
  double lat[10];
  for (long i = 0; i < n; i++) {
    t_us += step_us;
    int64_t at = t + (int64_t)(t_us / 1000);
    struct metric_value counters[] = {{"requests", 1000 + (double)(i % 97)}, {"errors", 1}};
    struct metric_value gauges[] = {{"cpu_ratio", 0.4}, {"memory_ratio", 0.6}};
    for (int k = 0; k < 10; k++)
      lat[k] = 20 + (double)((i * 7 + k * 13) % 180);
    struct metric_dist dists[] = {{"latency_ms", lat, 10}};
    struct event ev = {.type = EVENT_METRICS, .time_ms = at};
    snprintf(ev.id, sizeof ev.id, "ingest-%ld", ++id);
    snprintf(ev.rollout, sizeof ev.rollout, "ingest-r%ld", i % rollouts);
    snprintf(ev.cohort, sizeof ev.cohort, "internal_test");
    ev.metrics = (struct event_metrics){.variant = i % 2 ? VARIANT_BASELINE : VARIANT_CANARY,
                                        .interval_ms = 10000, .counters = counters,
                                        .n_counters = 2, .gauges = gauges, .n_gauges = 2,
                                        .dists = dists, .n_dists = 1};
    if (avro_codec_encode_event(codec, &ev, &buf) ||
        bus_produce(p, "canary.metrics", -1, ev.rollout, strlen(ev.rollout), buf.data, buf.len,
                    id))
      return 1;
  }
  if (bus_producer_flush(p, 60000) != CANARY_OK)
    return 1;
  printf("RESULT produced %ld 0\n", n);
  bus_producer_destroy(p);
  avro_buf_free(&buf);
  avro_codec_destroy(codec);
  return 0;
}

/* A consumer that only counts: the ceiling any consumer of this stream can reach here. */
static int bare(long n) {
  bus_reader_t *r;
  if (bus_reader_new(getenv("CANARY_KAFKA"), "canary.metrics", true, NULL, NULL, &r) != CANARY_OK)
    return 1;
  long seen = 0;
  double t0 = 0;
  while (seen < n) {
    struct bus_msg m;
    bool caught_up;
    if (bus_reader_read(r, 1000, &m, &caught_up) != CANARY_OK)
      continue;
    if (!seen)
      t0 = now_s();
    seen++;
  }
  printf("RESULT bare %ld %.3f\n", n, now_s() - t0);
  bus_reader_close(r);
  return 0;
}

static long query(PGconn *c, const char *sql) {
  PGresult *res = PQexec(c, sql);
  long v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) ? atol(PQgetvalue(res, 0, 0))
                                                                   : -1;
  PQclear(res);
  return v;
}

/* From the first committed batch to the last metric event committed, by the stored offsets. */
static int watch(long n, const char *conninfo) {
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK)
    return 1;
  const char *sql = "SELECT coalesce(sum(next_offset), 0) FROM offsets "
                    "WHERE topic = 'canary.metrics' AND next_offset > 0";
  double t0 = 0;
  long done = 0;
  for (double until = now_s() + 600; now_s() < until;) {
    done = query(c, sql);
    if (done > 0 && t0 == 0)
      t0 = now_s();
    if (done >= n)
      break;
    usleep(2000);
  }
  printf("RESULT canaryd %ld %.3f\n", done, now_s() - t0);
  PQfinish(c);
  return done >= n ? 0 : 1;
}

int main(int argc, char **argv) {
  bus_set_topic_prefix(getenv("CANARY_TOPIC_PREFIX"));
  if (argc >= 4 && !strcmp(argv[1], "produce"))
    return produce(atol(argv[2]), atoi(argv[3]));
  if (argc >= 3 && !strcmp(argv[1], "bare"))
    return bare(atol(argv[2]));
  if (argc >= 4 && !strcmp(argv[1], "watch"))
    return watch(atol(argv[2]), argv[3]);
  fprintf(stderr, "usage: bench_ingest produce N ROLLOUTS | bare N | watch N CONNINFO\n");
  return 2;
}
