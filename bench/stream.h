/*
 * The ingest benchmarks' stream, written once for bench_ingest (to Kafka) and bench_core (in
 * memory), which must see the same events: ROLLOUTS rollouts started (requested, CI, deploy,
 * health), then N metrics events of 14 observations (2 counters, 2 gauges, 10 latency values)
 * round-robin over the rollouts, each rollout one variant. Event time starts at 2026-01-01 and
 * advances 10 ms an event, or 10 s / (ROLLOUTS x REPORTERS) with REPORTERS pods per rollout
 * each reporting every 10 s (environment). With spike = k > 0 every k-th event of a rollout
 * carries a burst of errors and slow values, so that rules fire.
 */
#ifndef CANARY_BENCH_STREAM_H
#define CANARY_BENCH_STREAM_H

#include <stdio.h>
#include <stdlib.h>

#include "core/event.h"

/* emit(ctx, ev, n): the n-th event (from 1); non-zero stops the stream with that value. */
typedef int (*bench_emit_fn)(void *ctx, const struct event *ev, long n);

static int bench_stream(long n, int rollouts, long spike, bench_emit_fn emit, void *ctx) {
  int64_t t = 1767225600000;
  int reporters = getenv("REPORTERS") ? atoi(getenv("REPORTERS")) : 0;
  double step_us = reporters > 0 ? 10e6 / ((double)rollouts * reporters) : 10000, t_us = 0;
  long id = 0;
  int rc;
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
      if ((rc = emit(ctx, &ev, id)))
        return rc;
    }
  }
  double lat[10];
  for (long i = 0; i < n; i++) {
    t_us += step_us;
    bool bad = spike > 0 && (i / rollouts) % spike == spike - 1;
    struct metric_value counters[] = {{"requests", 1000 + (double)(i % 97)},
                                      {"errors", bad ? 200 : 1}};
    struct metric_value gauges[] = {{"cpu_ratio", bad ? 0.95 : 0.4}, {"memory_ratio", 0.6}};
    for (int k = 0; k < 10; k++)
      lat[k] = (bad ? 5000 : 20) + (double)((i * 7 + k * 13) % 180);
    struct metric_dist dists[] = {{"latency_ms", lat, 10}};
    struct event ev = {.type = EVENT_METRICS, .time_ms = t + (int64_t)(t_us / 1000)};
    snprintf(ev.id, sizeof ev.id, "ingest-%ld", ++id);
    snprintf(ev.rollout, sizeof ev.rollout, "ingest-r%ld", i % rollouts);
    snprintf(ev.cohort, sizeof ev.cohort, "internal_test");
    ev.metrics = (struct event_metrics){.variant = i % 2 ? VARIANT_BASELINE : VARIANT_CANARY,
                                        .interval_ms = 10000,
                                        .counters = counters,
                                        .n_counters = 2,
                                        .gauges = gauges,
                                        .n_gauges = 2,
                                        .dists = dists,
                                        .n_dists = 1};
    if ((rc = emit(ctx, &ev, id)))
      return rc;
  }
  return 0;
}

#endif
