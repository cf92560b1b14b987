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
#include "stream.h"


static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* bench_stream's events, produced to their topics (keyed by rollout). */
struct send {
  avro_codec_t *codec;
  bus_producer_t *p;
  struct avro_buf buf;
};

static int send_one(void *ctx, const struct event *ev, long id) {
  struct send *s = ctx;
  return avro_codec_encode_event(s->codec, ev, &s->buf) ||
         bus_produce(s->p, avro_codec_topic_of(ev->type), -1, ev->rollout, strlen(ev->rollout),
                     s->buf.data, s->buf.len, id);
}

static int produce(long n, int rollouts) {
  struct send s = {.buf = AVRO_BUF_INIT};
  if (avro_codec_new(&s.codec) != CANARY_OK ||
      bus_producer_new(getenv("CANARY_KAFKA"), "bench-ingest", NULL, NULL, &s.p) != CANARY_OK)
    return 1;
  if (bench_stream(n, rollouts, 0, send_one, &s) || bus_producer_flush(s.p, 60000) != CANARY_OK)
    return 1;
  printf("RESULT produced %ld 0\n", n);
  bus_producer_destroy(s.p);
  avro_buf_free(&s.buf);
  avro_codec_destroy(s.codec);
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
