/*
 * Halt latency: from the moment the metric events that breach a `for: 0` rule are produced to
 * the moment the halt decision is readable on canary.decisions, through a running canaryd with
 * the real broker and database. Reference, in the same run: the bare Kafka round trip (produce
 * one message, read it back) that any such path must pay.
 *
 *   bench_halt ROLLOUTS      (CANARY_KAFKA, CANARY_TOPIC_PREFIX; canaryd running bench/halt.yaml)
 *
 * Prints p50/p95/p99/max for both and their ratio. Asserts nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "core/effect.h"
#include "core/event.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double q) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  int i = (int)(q * (n - 1) + 0.5);
  return v[i];
}

static avro_codec_t *codec;
static bus_producer_t *producer;
static struct avro_buf buf = AVRO_BUF_INIT;
static int seq;

static void send(struct event *ev) {
  snprintf(ev->id, sizeof ev->id, "bench-%d-%d", (int)getpid(), ++seq);
  ev->time_ms = now_ms();
  if (avro_codec_encode_event(codec, ev, &buf) != CANARY_OK ||
      bus_produce(producer, avro_codec_topic_of(ev->type), -1, ev->rollout, strlen(ev->rollout),
                  buf.data, buf.len, seq) != CANARY_OK) {
    fprintf(stderr, "bench_halt: cannot produce %s\n", ev->id);
    exit(1);
  }
}

static void fact(const char *rollout, enum event_type type) {
  struct event ev = {.type = type, .ok = true};
  snprintf(ev.rollout, sizeof ev.rollout, "%s", rollout);
  send(&ev);
}

/* Wait for the decision of rollout with action on the reader; returns when it arrived (µs). */
static double await(bus_reader_t *r, const char *rollout, enum decision_action action) {
  char why[256];
  for (double until = now_us() + 30e6; now_us() < until;) {
    struct bus_msg m;
    bool caught_up;
    if (bus_reader_read(r, 50, &m, &caught_up) != CANARY_OK)
      continue;
    struct decision d;
    if (avro_codec_decode_decision(codec, m.value, m.len, &d, why, sizeof why) == CANARY_OK &&
        d.action == action && strcmp(d.rollout, rollout) == 0)
      return now_us();
  }
  fprintf(stderr, "bench_halt: no %s decision for %s within 30 s (is canaryd running?)\n",
          decision_action_name(action), rollout);
  exit(1);
}

int main(int argc, char **argv) {
  const char *kafka = getenv("CANARY_KAFKA");
  int n = argc > 1 ? atoi(argv[1]) : 50;
  if (!kafka || n < 1) {
    fprintf(stderr, "usage: bench_halt ROLLOUTS   (CANARY_KAFKA, CANARY_TOPIC_PREFIX set)\n");
    return 2;
  }
  bus_set_topic_prefix(getenv("CANARY_TOPIC_PREFIX"));
  if (avro_codec_new(&codec) != CANARY_OK ||
      bus_producer_new(kafka, "bench-halt", NULL, NULL, &producer) != CANARY_OK)
    return 1;
  bus_reader_t *decisions;
  if (bus_reader_new(kafka, "canary.decisions", false, NULL, NULL, &decisions) != CANARY_OK)
    return 1;
  double *halt = calloc((size_t)n, sizeof *halt), *ref = calloc((size_t)n, sizeof *ref);

  /* Reference: the bare broker round trip of one message (a DLQ-bound junk record on the
   * deploy topic is not read by us: use canary.dlq itself, which canaryd only writes to). */
  bus_reader_t *dlq;
  if (bus_reader_new(kafka, "canary.dlq", false, NULL, NULL, &dlq) != CANARY_OK)
    return 1;
  sleep(1); /* let the readers' assignments settle at the end of their topics */
  for (int i = 0; i < n; i++) {
    char payload[32];
    int len = snprintf(payload, sizeof payload, "ping-%d", i);
    double t0 = now_us();
    if (bus_produce(producer, "canary.dlq", -1, "bench", 5, payload, (size_t)len, -1) !=
            CANARY_OK ||
        bus_producer_flush(producer, 5000) != CANARY_OK)
      return 1;
    struct bus_msg m;
    bool caught_up;
    while (bus_reader_read(dlq, 50, &m, &caught_up) != CANARY_OK || m.len != (size_t)len ||
           memcmp(m.value, payload, (size_t)len))
      ;
    ref[i] = (now_us() - t0) / 1000;
  }
  bus_reader_close(dlq);

  for (int i = 0; i < n; i++) {
    char rollout[64];
    snprintf(rollout, sizeof rollout, "bench-%d-r%d", (int)getpid(), i);
    struct event ev = {.type = EVENT_ROLLOUT_REQUESTED};
    snprintf(ev.rollout, sizeof ev.rollout, "%s", rollout);
    snprintf(ev.service, sizeof ev.service, "bench-%d", i); /* one live rollout per service */
    snprintf(ev.version, sizeof ev.version, "2.0.%d", i);
    snprintf(ev.baseline_version, sizeof ev.baseline_version, "1.0.0");
    send(&ev);
    fact(rollout, EVENT_CI_COMPLETED);
    fact(rollout, EVENT_DEPLOY_COMPLETED);
    fact(rollout, EVENT_HEALTH_CHECKED);
    if (bus_producer_flush(producer, 5000) != CANARY_OK)
      return 1;
    await(decisions, rollout, DECISION_START);

    /* The breach: one interval of the canary at 10% errors, one of a clean baseline. */
    struct metric_value cc[] = {{"requests", 1000}, {"errors", 100}};
    struct metric_value bc[] = {{"requests", 1000}, {"errors", 0}};
    struct event m = {.type = EVENT_METRICS};
    snprintf(m.rollout, sizeof m.rollout, "%s", rollout);
    snprintf(m.cohort, sizeof m.cohort, "internal_test");
    m.metrics.interval_ms = 10000;
    m.metrics.variant = VARIANT_BASELINE;
    m.metrics.counters = bc;
    m.metrics.n_counters = 2;
    send(&m);
    double t0 = now_us();
    m.metrics.variant = VARIANT_CANARY;
    m.metrics.counters = cc;
    send(&m);
    if (bus_producer_flush(producer, 5000) != CANARY_OK)
      return 1;
    halt[i] = (await(decisions, rollout, DECISION_HALT) - t0) / 1000;
    /* progress: redrawn on a terminal, a line every tenth of the run in a log */
    if (isatty(STDERR_FILENO))
      fprintf(stderr, "\r%d/%d rollouts halted", i + 1, n);
    else if ((i + 1) % (n >= 10 ? n / 10 : 1) == 0)
      fprintf(stderr, "%d/%d rollouts halted\n", i + 1, n);
  }
  if (isatty(STDERR_FILENO))
    fprintf(stderr, "\n");
  double h50 = pct(halt, n, 0.5), h95 = pct(halt, n, 0.95), h99 = pct(halt, n, 0.99);
  double r50 = pct(ref, n, 0.5), r99 = pct(ref, n, 0.99);
  printf("halt latency, produce -> decision readable on canary.decisions (%d rollouts):\n", n);
  printf("  p50 %.0f ms   p95 %.0f ms   p99 %.0f ms   max %.0f ms   (target: p99 < 1000 ms)\n", h50,
         h95, h99, halt[n - 1]);
  printf("reference, bare Kafka round trip (produce, flush, read back), same run:\n");
  printf("  p50 %.1f ms   p99 %.1f ms\n", r50, r99);
  printf("ratio halt/reference: p50 %.1fx   p99 %.1fx\n", h50 / r50, h99 / r99);
  bus_reader_close(decisions);
  bus_producer_destroy(producer);
  avro_buf_free(&buf);
  avro_codec_destroy(codec);
  free(halt);
  free(ref);
  return 0;
}
