/*
 * What the integration tests of the worker share (harness.c): the recorded stream and its
 * reference run, producing it, a database and topics of a test's own, canaryd started and
 * killed, and the comparisons of what it stored and published with the reference. Each takes
 * CANARY_PG and CANARY_KAFKA from pg and kafka (set by the test's main) and fails the cmocka
 * test that calls it on any error.
 */
#ifndef CANARY_TESTS_INTEGRATION_HARNESS_H
#define CANARY_TESTS_INTEGRATION_HARNESS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus/bus.h"
#include "core/engine.h"

#define STREAM_EVENTS 2400
/* The fast plan with metric halt rules: a restart must give every rollout its windows, for:
 * states and zscore histories back for the decisions to agree. */
#define PLAN_FILE CANARY_SOURCE_DIR "/tests/integration/plans/fast-metrics.yaml"

extern const char *pg, *kafka;
extern struct plan plan; /* PLAN_FILE, loaded by the test's main */
/* How start_worker runs canaryd: --plan (NULL: the built-in plan), --hold-ms, one more
 * --kafka-conf (NULL: none), --clock (NULL: canaryd's default, the wall clock), --batch. */
extern const char *worker_plan, *worker_hold_ms, *worker_kafka_conf, *worker_clock, *worker_batch;

/* The reference: every event through one engine, deadlines fired at their times in between. */
struct reference {
  struct event *events;
  size_t n_events;
  struct event_scratch **scratches; /* one per event: it owns the event's metric arrays */
  struct engine engine;
  struct decision *decisions;
  size_t n_decisions;
  /* what else it publishes: every notification's id, every traffic split (id and service) */
  char **notes;
  size_t n_notes;
  struct traffic_split *splits;
  size_t n_splits;
};

/* One published message of a test's rollouts: its id, service and a digest of its bytes. */
struct pub {
  char *id, *service;
  uint64_t digest;
};

/* What each test gets for itself: a name, topics, a database and a consumer group. */
struct run {
  char prefix[64], db[64], group[80];
  char *conninfo;
};

int64_t wall_now_ms(void);
int64_t mono_ms(void);
void sleep_ms(int64_t ms);

/* Generate the stream, keep its events, and run the reference over it. */
void reference_build(struct reference *ref, const char *prefix);

/*
 * The reference is what `canaryctl simulate` prints for the same stream: check it byte for byte,
 * so the in-process reference cannot drift from the simulator.
 */
void reference_matches_simulate(const struct reference *ref, const char *prefix);

void reference_free(struct reference *ref);

/* A producer's delivery report: a failure is printed and counted in *(int *)ctx. */
void on_delivery(void *ctx, int64_t opaque, bool ok, const char *error);

/* Produce evs as the contract says: Avro, the topic of its type, key = rollout (a global
 * flag.set to every shard, as canaryctl sends it). */
void produce_events(const struct event *evs, size_t n);

/* The stream's events [from, to). */
void produce(const struct reference *ref, size_t from, size_t to);

/* The same while a worker runs: each event once those before it on other topics were
 * acknowledged, so that a late one cannot be overtaken (docs/operations.md). */
void produce_live_in_order(const struct reference *ref, size_t from, size_t to);

/* A database of the test's own: the worker starts from nothing (offsets from the start). */
char *fresh_database(const char *name);

void drop_database(const char *name);

/* Start canaryd as worker_* say; its log goes to test_worker-<id>.log next to the build. */
pid_t start_worker(const char *conninfo, const char *group, const char *id);

int stop_worker(pid_t pid, int sig);

/* Sum of the shards' owner epochs: it grows by one for every claim. */
long epochs(const char *conninfo);

/* Sum of the stored next offsets: how far the worker has committed through the input. */
long committed_on(PGconn *c);

/* How many input messages the stream makes: a global event goes to each of the 3 shards. */
long committed_total(const struct reference *ref);

/* Wait until the shards were claimed `claims` more times than `before` (false on timeout). */
bool wait_claims(const char *conninfo, long before, long claims, int64_t ms);

/* Number of transitions stored for the stream's rollouts. */
long stored_transitions(const char *conninfo, const char *prefix);

/* Wait until the store holds want transitions: fails if none new was stored for stall_ms, if a
 * worker started and not stopped ended on its own, or after 15 minutes in all. */
void wait_caught_up(const char *conninfo, const char *prefix, size_t want, int64_t stall_ms);

/* The transition log and the final states in the store equal the reference's. */
void compare_store(const struct reference *ref, const char *conninfo);

int cmp_str(const void *x, const void *y);

/* FNV-1a of n bytes: a published message's digest. */
uint64_t fnv(const void *p, size_t n);

/*
 * Everything on topic (canary.notifications or canary.flags) about the prefix's rollouts, in
 * offset order, until caught up and quiet for 2 s with at least want messages (or 60 s).
 */
struct pub *read_topic(const char *topic, const char *prefix, size_t want, size_t *n);

/*
 * Notifications: the distinct ids published are the reference's, and a message published twice
 * (a crash between publishing and marking) has the same bytes both times. Traffic splits
 * (canary.flags is compacted: older ones may be gone): every id published is one of the
 * reference's, twice only with the same bytes, and each service's last one is the reference's.
 */
void compare_other_outputs(const struct reference *ref, const char *prefix);

void compare_published(const struct reference *ref, const char *prefix);

/* Wait until the worker has committed every input message of the stream (60 s at most). */
void wait_committed(const char *conninfo, long total);

void run_begin(struct run *r, const char *name);

void run_end(struct run *r);

/*
 * Topics of the test's own (CANARY_TOPIC_PREFIX, inherited by the canaryd it starts): only the
 * stream is in them, so nothing another test produced can interleave with it.
 */
void own_topics(const char *prefix);

#endif
