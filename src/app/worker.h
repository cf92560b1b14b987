/*
 * The canaryd worker: consumes the input topics in a consumer group, applies each shard's
 * events through its own engine in event-time order, commits state + transitions + offsets +
 * outbox in one PostgreSQL transaction per shard and batch, and relays the outbox to Kafka.
 */
#ifndef CANARY_WORKER_H
#define CANARY_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/plan.h"

struct worker_config {
  const char *brokers;   /* Kafka bootstrap servers */
  const char *conninfo;  /* libpq connection string */
  const char *group;     /* consumer group */
  const char *worker_id; /* owner name recorded on the shards it claims */
  const struct plan *plan;
  bool wall_clock; /* fire due deadlines from the wall clock while input is idle */
  int tick_ms;     /* how often idle deadlines are checked */
  int hold_ms;     /* longest wait for a lagging co-partition before releasing anyway */
  int grace_ms;    /* how long a partition at its end is waited for after a message */
  int batch_max;   /* messages per poll */
  bool relay;      /* publish the outbox (off: another process relays) */
  const char *const *kafka_conf; /* extra consumer properties: name, value, ..., NULL */
  int create_topics;       /* create missing contract topics with this many partitions; 0 = no */
  const char *http_listen; /* ADDR:PORT for /metrics, /healthz, /readyz; NULL: none */
  int64_t max_skew_ms;     /* an event dated further ahead of its message's Kafka timestamp is
                          * dead-lettered (a clock or unit error); 0 = no limit */
  /* SIGHUP (canaryd): when *reload is set, the loop clears it and calls on_reload(reload_ctx)
   * between two batches, where nothing is being applied; NULL: nothing to reload. */
  volatile sig_atomic_t *reload;
  void (*on_reload)(void *ctx);
  void *reload_ctx;
  int load_attempts; /* tries at loading a shard before giving up; 0 = as long as it takes
                          * (canaryd: a shard given up on would be applied by nobody) */
};

/* Defaults: wall clock on, tick 500 ms, hold 1000 ms, grace 100 ms, batch 5000, relay on,
 * max skew 1 h, shards loaded as long as it takes. */
void worker_config_defaults(struct worker_config *cfg);

/*
 * Run until *running becomes 0 (SIGTERM/SIGINT): finishes the batch in hand, commits it,
 * publishes the outbox, leaves the group. Returns 0 on a clean stop, non-zero when it could not
 * start (bad configuration, schemas).
 */
int worker_run(const struct worker_config *cfg, volatile sig_atomic_t *running);

#endif
