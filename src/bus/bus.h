/*
 * Kafka: the input consumer (a consumer group over the three co-partitioned input topics,
 * offsets managed by the application, never by Kafka) and the idempotent producer that the
 * outbox relay and canaryctl use. librdkafka underneath; the loop follows its
 * examples/consumer.c: short polls, every message destroyed, close before destroy.
 */
#ifndef CANARY_BUS_H
#define CANARY_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define BUS_INPUT_TOPICS 3
/* Indexed like store_input_topics[]: 0 canary.deploy, 1 canary.metrics, 2 canary.commands. */
extern const char *const bus_input_topics[BUS_INPUT_TOPICS];

typedef void (*bus_log_fn)(void *ctx, int level, const char *msg);

/*
 * Rebalance hooks. assigned() is called once per shard (partition number) newly assigned,
 * before any of its messages are returned; it fills next[] with the offsets to start from
 * (-1 = the beginning) — typically from store_load_shard(). revoked() is called once per shard
 * taken away; the caller must drop the shard's state (it commits nothing more for it).
 * A non-zero return from assigned() leaves the shard unassigned and is logged.
 */
struct bus_hooks {
  void *ctx;
  int (*assigned)(void *ctx, int shard, int64_t next[BUS_INPUT_TOPICS]);
  void (*revoked)(void *ctx, int shard);
  bus_log_fn log;
};

typedef struct bus_consumer bus_consumer_t;

/* One consumed message. Valid until the next bus_consumer_poll(). */
struct bus_msg {
  int topic;          /* index into bus_input_topics */
  int32_t partition;  /* = shard */
  int64_t offset;
  const void *key;
  size_t key_len;
  const void *value;
  size_t len;
  int64_t timestamp_ms; /* broker/producer timestamp */
};

/*
 * Join group on brokers (bootstrap list). enable.auto.commit=false, auto.offset.reset=earliest,
 * partition.assignment.strategy=range (co-partitioning: a consumer gets the same partition
 * numbers of every input topic). Returns CANARY_OK or CANARY_EINVALID (bad config).
 */
int bus_consumer_new(const char *brokers, const char *group, const char *client_id,
                     const struct bus_hooks *hooks, bus_consumer_t **out) CANARY_MUSTCHECK;

/*
 * Wait up to timeout_ms for messages; returns up to max of them in *msgs (consumer-owned).
 * *idle is set when every assigned partition is at its end (caught up). Errors from the
 * broker are logged, not returned: the consumer keeps retrying on its own.
 */
int bus_consumer_poll(bus_consumer_t *c, int timeout_ms, const struct bus_msg **msgs,
                      size_t max, size_t *n, bool *idle) CANARY_MUSTCHECK;

/* Leave the group (revoking every shard through the hooks) and free. */
void bus_consumer_close(bus_consumer_t *c);

typedef struct bus_producer bus_producer_t;

/* enable.idempotence=true, acks=all, partitioner=murmur2_random (what Java clients use). */
int bus_producer_new(const char *brokers, const char *client_id, bus_log_fn log, void *log_ctx,
                     bus_producer_t **out) CANARY_MUSTCHECK;

/*
 * Queue one message; partition = -1 lets the partitioner pick by key. delivered(opaque, ok)
 * is called from bus_producer_poll()/flush() when the broker answered.
 */
typedef void (*bus_delivery_fn)(void *ctx, int64_t opaque, bool ok, const char *error);
int bus_produce(bus_producer_t *p, const char *topic, int32_t partition, const void *key,
                size_t key_len, const void *value, size_t len, int64_t opaque) CANARY_MUSTCHECK;
void bus_producer_on_delivery(bus_producer_t *p, bus_delivery_fn fn, void *ctx);
/* Serve delivery reports for up to timeout_ms. */
void bus_producer_poll(bus_producer_t *p, int timeout_ms);
/* Wait until everything queued is delivered or timeout_ms passed; CANARY_ETIMEOUT then. */
int bus_producer_flush(bus_producer_t *p, int timeout_ms) CANARY_MUSTCHECK;
/* Number of partitions of topic (metadata), or -1. */
int bus_partition_count(bus_producer_t *p, const char *topic, int timeout_ms);
void bus_producer_destroy(bus_producer_t *p);

#endif
