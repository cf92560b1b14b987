/*
 * Kafka: the input consumer (a consumer group over the three co-partitioned input topics,
 * offsets managed by the application, never by Kafka) and the idempotent producer that the
 * outbox relay and canaryctl use. librdkafka underneath; the loop follows its
 * examples/consumer.c: short polls, every message destroyed, close before destroy.
 *
 * Threading: a consumer or producer is used from one thread. Every callback (hooks, log,
 * delivery) runs on that thread, inside bus_consumer_poll()/bus_consumer_close() or
 * bus_producer_poll()/bus_producer_flush()/bus_produce(), never on a librdkafka thread.
 */
#ifndef CANARY_BUS_H
#define CANARY_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/log_level.h"
#include "core/topic.h"

#define BUS_INPUT_TOPICS TOPIC_INPUT_COUNT
/* The input topics of TOPIC_MAP (core/topic.h), indexed by enum topic like store_input_topics[]. */
extern const char *const bus_input_topics[BUS_INPUT_TOPICS];

/*
 * Topic names. Callers use the contract's names ("canary.deploy", "canary.decisions", ...); the
 * bus prefixes them with the installation's prefix (CANARY_TOPIC_PREFIX: "" by default, e.g.
 * "staging." to run several installations on one cluster, or a test's own topics). Set it
 * once at start, before any consumer, producer or reader is created.
 */
void bus_set_topic_prefix(const char *prefix);

/*
 * librdkafka properties that every Kafka client of this process gets — consumer, producer,
 * admin and reader alike: how to reach the cluster (security.protocol, sasl.*, ssl.*,
 * client.rack, ...). Set once at start, before any client is made. bus_client_conf_add adds
 * one name=value; bus_client_conf_load reads a properties file (name=value lines, # comments,
 * blank lines), as Kafka's client.properties. Both return CANARY_OK, or CANARY_EINVALID with
 * the reason (file:line) in why. A property a client fixes for itself is still refused when
 * that client is made (the exactly-once recipe).
 */
int bus_client_conf_add(const char *name, const char *value, char *why, size_t why_len);
int bus_client_conf_load(const char *path, char *why, size_t why_len);
/* Forget them all (tests). */
void bus_client_conf_clear(void);
/* What they are now: name, value, ..., NULL. */
const char *const *bus_client_conf(void);
/* The Kafka name of a contract topic (the name itself for any other). Static storage. */
const char *bus_topic(const char *contract_topic);

/*
 * Create the contract's topics (prefixed) that do not exist yet: the three inputs and
 * canary.decisions with `partitions` partitions, canary.notifications and canary.dlq with one,
 * canary.flags with one and compaction (a traffic split per service is its latest value).
 * Returns CANARY_OK, CANARY_EUNAVAILABLE (broker unreachable), CANARY_EIO (logged).
 */
int bus_create_topics(const char *brokers, int partitions, int timeout_ms, log_sink_fn log,
                      void *log_ctx) CANARY_MUSTCHECK;

/*
 * Rebalance hooks. assigned() is called once per shard (partition number) newly assigned,
 * before any of its messages are returned; it fills next[] with the offsets to start from
 * (-1 = the beginning) — typically from store_load_shard(). revoked() is called once per shard
 * taken away; the caller must drop the shard's state (it commits nothing more for it).
 * A non-zero return from assigned() leaves the shard unassigned and is logged: the group still
 * counts the shard as this member's, so nobody consumes it until the next rebalance.
 * Both run inside bus_consumer_poll() (after the previous batch was released) or
 * bus_consumer_close(), so a returned batch never holds messages of a shard revoked since.
 */
struct bus_hooks {
  void *ctx;
  int (*assigned)(void *ctx, int shard, int64_t next[BUS_INPUT_TOPICS]);
  void (*revoked)(void *ctx, int shard);
  log_sink_fn log; /* may be NULL: nothing is logged */
};

typedef struct bus_consumer bus_consumer_t;

/* One consumed message. Valid until the next bus_consumer_poll(). */
struct bus_msg {
  int topic;         /* index into bus_input_topics */
  int32_t partition; /* = shard */
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
 * bus_consumer_new() with extra librdkafka properties: conf is NULL or a NULL-terminated list
 * of name, value pairs applied over the defaults (session.timeout.ms, heartbeat.interval.ms,
 * debug, ...). The properties the exactly-once recipe depends on (enable.auto.commit,
 * enable.auto.offset.store, partition.assignment.strategy, enable.partition.eof, group.id,
 * bootstrap.servers) cannot be overridden: CANARY_EINVALID, logged.
 */
int bus_consumer_new_conf(const char *brokers, const char *group, const char *client_id,
                          const struct bus_hooks *hooks, const char *const *conf,
                          bus_consumer_t **out) CANARY_MUSTCHECK;

/*
 * Wait up to timeout_ms for messages; returns up to max of them in *msgs (consumer-owned).
 * Returns early, with what it has, as soon as every assigned partition is at its end.
 * *idle is set when every assigned partition is at its end (caught up): every partition
 * assigned has reported its end since its last message. Before the first assignment of the
 * group *idle is false; with an empty assignment (more members than shards) it is true.
 * Errors from the broker are logged, not returned: the consumer keeps retrying on its own.
 * Returns CANARY_OK, CANARY_ENOMEM, CANARY_EINVALID (max is 0).
 */
int bus_consumer_poll(bus_consumer_t *c, int timeout_ms, const struct bus_msg **msgs, size_t max,
                      size_t *n, bool *idle) CANARY_MUSTCHECK;

/*
 * Whether topic/partition (an index into bus_input_topics) is at its end, as known at or after
 * since_ms (bus_monotonic_ms; 0: whenever): nothing more is there. librdkafka reports an end
 * once per offset, so for a partition that has been idle the report is old; when it is older
 * than since_ms the broker is asked for the partition's high watermark (a round trip of about a
 * millisecond, with a 1 s limit), and the answer, if it matches, counts as a fresh end. A
 * merge that releases a message of one partition only when the others are at end since it
 * arrived cannot be fooled by an end from before it (under load, another partition's earlier
 * message may come long after this one). False when the broker does not answer. True for a
 * partition that is not assigned (nothing will come from it).
 */
bool bus_consumer_at_end(bus_consumer_t *c, int topic, int32_t partition, int64_t since_ms);

/*
 * Whether topic/partition is known to hold messages beyond the last one taken: 1 when the high
 * watermark of the last fetch response (cached by librdkafka, no round trip) is past it and
 * past the end last reported (a transaction's commit marker after the last message counts in
 * the watermark) — a backlog still to come — or, before any fetch has answered since the assignment or a seek,
 * when the broker says so (asked once, 1 s limit); 0 when it is not known to (taken up to the
 * end last reported: its next message, if any, is still to be produced); -1 when the broker
 * does not answer; 0 for a partition that is not assigned. The worker's merge waits for a
 * partition that answers 1 however long it takes: its messages may be earlier than every
 * message queued (--hold-ms bounds the wait only for the next message that is unknown).
 */
int bus_consumer_behind(bus_consumer_t *c, int topic, int32_t partition);

/*
 * The high watermark of topic/partition (an index into bus_input_topics) as the last fetch
 * response told it (cached by librdkafka: no round trip, cheap enough for a metrics snapshot);
 * -1 when the partition is not assigned or no fetch has answered yet. The lag is this minus the
 * next offset to apply.
 */
int64_t bus_consumer_high_watermark(bus_consumer_t *c, int topic, int32_t partition);

/* The clock of bus_consumer_at_end's since_ms (monotonic milliseconds). */
int64_t bus_monotonic_ms(void);

/*
 * Stop (pause true) or start again fetching every partition assigned now: the freeze. What was
 * fetched and not returned is dropped by librdkafka and fetched again, from the offset after
 * the last message returned, when fetching resumes; so nothing is skipped. Partitions assigned
 * later are not paused: the caller calls it again (it is idempotent). Returns CANARY_OK or
 * CANARY_EIO (logged).
 */
int bus_consumer_pause(bus_consumer_t *c, bool pause) CANARY_MUSTCHECK;

/*
 * Go back (or forward) to next[] on the shard's three partitions (-1 = the beginning), e.g. to
 * the offsets stored with the last commit that is known to have happened. Returns CANARY_OK or
 * CANARY_EIO (logged).
 */
int bus_consumer_seek_shard(bus_consumer_t *c, int shard,
                            const int64_t next[BUS_INPUT_TOPICS]) CANARY_MUSTCHECK;

/* Leave the group (revoking every shard through the hooks) and free. NULL is ignored. */
void bus_consumer_close(bus_consumer_t *c);

/*
 * A reader of one whole topic outside any consumer group (for watching outputs): every partition
 * from the beginning (or only what arrives from now on). Nothing is committed.
 */
typedef struct bus_reader bus_reader_t;
int bus_reader_new(const char *brokers, const char *topic, bool from_beginning, log_sink_fn log,
                   void *log_ctx, bus_reader_t **out) CANARY_MUSTCHECK;
/*
 * Wait up to timeout_ms for the next message (valid until the next call); CANARY_ETIMEOUT when
 * none came. *caught_up: every partition has reported its end since its last message.
 */
int bus_reader_read(bus_reader_t *r, int timeout_ms, struct bus_msg *msg, bool *caught_up);
void bus_reader_close(bus_reader_t *r);

/*
 * A member of consumer group `group` on one contract topic, its offsets kept by Kafka
 * (auto.offset.reset=earliest: a new group reads from the beginning). Nothing is committed on
 * its own: bus_subscriber_commit() says the caller is done with a message (asynchronously: after
 * a crash or a rebalance, messages since the last commit that reached the broker come again).
 * bus_subscriber_read() returns the next message (valid until the next read) or CANARY_ETIMEOUT.
 */
typedef struct bus_subscriber bus_subscriber_t;
/* extra: NULL or name, value, ..., NULL (librdkafka properties); the group and the commits
 * (group.id, enable.auto.commit, enable.auto.offset.store, bootstrap.servers) are refused. */
int bus_subscriber_new(const char *brokers, const char *contract_topic, const char *group,
                       const char *client_id, const char *const *extra, log_sink_fn log,
                       void *log_ctx, bus_subscriber_t **out) CANARY_MUSTCHECK;
int bus_subscriber_read(bus_subscriber_t *sub, int timeout_ms, struct bus_msg *msg);
/* msg must be the message of the last read. CANARY_OK or CANARY_EIO (logged). */
int bus_subscriber_commit(bus_subscriber_t *sub, const struct bus_msg *msg);
/* Leave the group and free. NULL is ignored. */
void bus_subscriber_close(bus_subscriber_t *sub);

typedef struct bus_producer bus_producer_t;

/*
 * enable.idempotence=true, acks=all, partitioner=murmur2_random (what Java clients use),
 * linger.ms=5, message.timeout.ms=30000.
 */
int bus_producer_new(const char *brokers, const char *client_id, log_sink_fn log, void *log_ctx,
                     bus_producer_t **out) CANARY_MUSTCHECK;
/*
 * bus_producer_new() with extra librdkafka properties (NULL-terminated name, value pairs).
 * enable.idempotence, acks, partitioner and bootstrap.servers cannot be overridden.
 */
int bus_producer_new_conf(const char *brokers, const char *client_id, log_sink_fn log,
                          void *log_ctx, const char *const *conf,
                          bus_producer_t **out) CANARY_MUSTCHECK;

/*
 * Queue one message (key and value are copied); partition = -1 lets the partitioner pick by
 * key. delivered(ctx, opaque, ok, error) is called once per message from bus_producer_poll(),
 * bus_producer_flush() or bus_produce() (which serves delivery reports while it waits for
 * room in a full queue) when the broker answered or message.timeout.ms passed.
 * Returns CANARY_OK; CANARY_EFULL when the queue stayed full for message.timeout.ms;
 * CANARY_ENOTFOUND for a topic the cluster does not have (yet: try again); CANARY_EINVALID
 * for what can never be sent — a partition that does not exist, a message larger than
 * message.max.bytes (the relay sets such an outbox row aside); CANARY_EUNAVAILABLE
 * when the producer has failed for good (a fatal idempotence error: destroy it, make a new
 * one, and publish again what was not acknowledged); CANARY_EIO otherwise. Logged.
 */
typedef void (*bus_delivery_fn)(void *ctx, int64_t opaque, bool ok, const char *error);
int bus_produce(bus_producer_t *p, const char *topic, int32_t partition, const void *key,
                size_t key_len, const void *value, size_t len, int64_t opaque) CANARY_MUSTCHECK;
void bus_producer_on_delivery(bus_producer_t *p, bus_delivery_fn fn, void *ctx);
/* Serve delivery reports for up to timeout_ms. */
void bus_producer_poll(bus_producer_t *p, int timeout_ms);
/* Wait until everything queued is delivered or timeout_ms passed; CANARY_ETIMEOUT then. */
int bus_producer_flush(bus_producer_t *p, int timeout_ms) CANARY_MUSTCHECK;
/* Number of partitions of topic (metadata), or -1 (unknown topic, broker unreachable). A topic
 * the broker does not know yet is asked for again until timeout_ms: it may be being created. */
int bus_partition_count(bus_producer_t *p, const char *topic, int timeout_ms);
/*
 * Free the producer. Messages not yet delivered are dropped without a delivery report:
 * call bus_producer_flush() first. NULL is ignored.
 */
void bus_producer_destroy(bus_producer_t *p);

#endif
