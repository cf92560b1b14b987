/*
 * The bus against the real broker ($CANARY_KAFKA, started by scripts/lib/services.sh): 1000 keyed
 * messages through a group with explicit start offsets, in order; the partitioner agrees with
 * Java's; two members split the three shards and hand them back; idle when caught up.
 * Fails (does not skip) when CANARY_KAFKA is unset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bus/bus.h"

#define SHARDS 3
#define MAX_IDS 4096
#define DEPLOY 0 /* index of canary.deploy in bus_input_topics */

static const char *brokers;
static char run_id[64]; /* unique per run: group ids */
static bool verbose;

static void test_log(void *ctx, int level, const char *msg) {
  (void)ctx;
  if (verbose || level <= LOG_LVL_ERR) {
    fprintf(stderr, "[bus %d] %s\n", level, msg);
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Java's default partitioner: toPositive(murmur2(keyBytes)) % numPartitions ----------- */

static int32_t murmur2(const void *key, size_t len) {
  const unsigned char *data = key;
  const uint32_t m = 0x5bd1e995;
  uint32_t h = 0x9747b28cu ^ (uint32_t)len;
  for (size_t i = 0; i < len / 4; i++) {
    const unsigned char *d = data + i * 4;
    uint32_t k = d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char *tail = data + (len & ~(size_t)3);
  switch (len % 4) {
  case 3:
    h ^= (uint32_t)tail[2] << 16;
    /* fall through */
  case 2:
    h ^= (uint32_t)tail[1] << 8;
    /* fall through */
  case 1:
    h ^= tail[0];
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int32_t)h;
}

static int32_t java_partition(const void *key, size_t len, int partitions) {
  return (int32_t)(((uint32_t)murmur2(key, len) & 0x7fffffffu) % (uint32_t)partitions);
}

/* ---- a simulated store and group members --------------------------------------------------- */

struct store_sim {
  int64_t next[SHARDS][BUS_INPUT_TOPICS];
  int counts[MAX_IDS];
  int64_t last_offset[BUS_INPUT_TOPICS][SHARDS];
  int key_seq[64]; /* last sequence number seen per key index: per-key order */
  int order_violations;
  int wrong_partition; /* key not on Java's partition */
  int foreign;
  int32_t partition_of_web_210;
};

struct member {
  struct store_sim *s;
  bus_consumer_t *c;
  bool owns[SHARDS];
  int assigned[SHARDS], revoked[SHARDS];
  int64_t started[SHARDS][BUS_INPUT_TOPICS];
  bool idle, was_idle;
  int received;
};

static int on_assigned(void *ctx, int shard, int64_t next[BUS_INPUT_TOPICS]) {
  struct member *m = ctx;
  assert_true(shard >= 0 && shard < SHARDS);
  assert_false(m->owns[shard]);
  m->assigned[shard]++;
  memcpy(next, m->s->next[shard], sizeof m->s->next[shard]);
  memcpy(m->started[shard], next, sizeof m->started[shard]);
  m->owns[shard] = true;
  return 0;
}

static void on_revoked(void *ctx, int shard) {
  struct member *m = ctx;
  assert_true(m->owns[shard]);
  m->owns[shard] = false;
  m->revoked[shard]++;
}

static void member_join(struct member *m, struct store_sim *s, const char *name,
                        const char *group) {
  memset(m, 0, sizeof *m);
  m->s = s;
  struct bus_hooks hooks = {
      .ctx = m, .assigned = on_assigned, .revoked = on_revoked, .log = test_log};
  /* The production defaults: no tuning of session or heartbeat. */
  assert_int_equal(bus_consumer_new(brokers, group, name, &hooks, &m->c), CANARY_OK);
}

/* value: "<id>:<key index>:<sequence of the key>" */
static void apply(struct member *m, const struct bus_msg *msg) {
  struct store_sim *s = m->s;
  assert_true(msg->topic >= 0 && msg->partition >= 0 && msg->partition < SHARDS);
  if (!m->owns[msg->partition]) {
    s->foreign++;
  }
  if (msg->offset <= s->last_offset[msg->topic][msg->partition]) {
    s->order_violations++;
  }
  s->last_offset[msg->topic][msg->partition] = msg->offset;
  s->next[msg->partition][msg->topic] = msg->offset + 1;
  char buf[64] = {0};
  memcpy(buf, msg->value, msg->len < sizeof buf - 1 ? msg->len : sizeof buf - 1);
  int id = -1, key = -1, seq = -1;
  assert_int_equal(sscanf(buf, "%d:%d:%d", &id, &key, &seq), 3);
  assert_true(id >= 0 && id < MAX_IDS && key >= 0 && key < 64);
  s->counts[id]++;
  if (seq <= s->key_seq[key]) {
    s->order_violations++;
  }
  s->key_seq[key] = seq;
  if (java_partition(msg->key, msg->key_len, SHARDS) != msg->partition) {
    s->wrong_partition++;
  }
  if (msg->key_len == 9 && memcmp(msg->key, "web-2.1.0", 9) == 0) {
    s->partition_of_web_210 = msg->partition;
  }
  m->received++;
}

static void poll_member(struct member *m, int timeout_ms) {
  const struct bus_msg *msgs;
  size_t n;
  assert_int_equal(bus_consumer_poll(m->c, timeout_ms, &msgs, 100, &n, &m->idle), CANARY_OK);
  for (size_t i = 0; i < n; i++) {
    apply(m, &msgs[i]);
  }
  m->was_idle |= m->idle;
}

static int total(const struct store_sim *s) {
  int t = 0;
  for (int i = 0; i < MAX_IDS; i++) {
    t += s->counts[i];
  }
  return t;
}

typedef bool (*cond_fn)(struct member **ms, int k, void *arg);

static bool pump(struct member **ms, int k, cond_fn cond, void *arg, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    for (int i = 0; i < k; i++) {
      poll_member(ms[i], 100);
    }
    if (cond(ms, k, arg)) {
      return true;
    }
  }
  return cond(ms, k, arg);
}

static bool caught_up(struct member **ms, int k, void *arg) {
  for (int i = 0; i < k; i++) {
    if (!ms[i]->idle) {
      return false;
    }
  }
  return total(ms[0]->s) >= *(int *)arg;
}

static bool owners(struct member **ms, int k, void *arg) {
  const int *want = arg; /* shards each member must own */
  int owned = 0;
  for (int i = 0; i < k; i++) {
    int n = ms[i]->owns[0] + ms[i]->owns[1] + ms[i]->owns[2];
    if (want[i] >= 0 ? n != want[i] : n == 0) {
      return false;
    }
    owned += n;
  }
  return owned == SHARDS;
}

/* Start every shard of every input topic at its current end: only this run's messages count. */
static void store_at_end(struct store_sim *s) {
  memset(s, 0, sizeof *s);
  s->partition_of_web_210 = -1;
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err),
                   RD_KAFKA_CONF_OK);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  assert_non_null(rk);
  for (int p = 0; p < SHARDS; p++) {
    for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
      int64_t lo = -1, hi = -1;
      rd_kafka_resp_err_t e;
      /* A broker that has just created its topics may not have elected every leader yet. */
      for (int tries = 0; tries < 60; tries++) {
        e = rd_kafka_query_watermark_offsets(rk, bus_input_topics[t], p, &lo, &hi, 10000);
        if (e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
            e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
            e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
          break;
        usleep(250 * 1000);
      }
      if (e) {
        fail_msg("watermarks of %s [%d]: %s", bus_input_topics[t], p, rd_kafka_err2str(e));
      }
      s->next[p][t] = hi;
      s->last_offset[t][p] = hi - 1;
    }
  }
  for (int k = 0; k < 64; k++) {
    s->key_seq[k] = -1;
  }
  rd_kafka_destroy(rk);
}

/* ---- producing ---------------------------------------------------------------------------- */

struct deliveries {
  int ok, failed;
  int counts[MAX_IDS];
};

static void on_delivery(void *ctx, int64_t opaque, bool ok, const char *error) {
  struct deliveries *d = ctx;
  if (ok) {
    d->ok++;
    d->counts[opaque]++;
  } else {
    d->failed++;
    fprintf(stderr, "delivery of %lld failed: %s\n", (long long)opaque, error);
  }
}

#define KEYS 50 /* key 0 is "web-2.1.0", the others "web-2.1.<k>" and "api-<k>" */

static void key_name(char *out, size_t size, int k) {
  if (k == 0) {
    snprintf(out, size, "web-2.1.0");
  } else if (k % 2) {
    snprintf(out, size, "web-2.1.%d", k);
  } else {
    snprintf(out, size, "api-%d", k);
  }
}

/* Messages first..first+n-1 to canary.deploy; key k = id % KEYS with a per-key sequence. */
static void produce(bus_producer_t *p, struct deliveries *d, int first, int n) {
  for (int id = first; id < first + n; id++) {
    char key[32], value[64];
    int k = id % KEYS;
    key_name(key, sizeof key, k);
    snprintf(value, sizeof value, "%d:%d:%d", id, k, id / KEYS);
    assert_int_equal(
        bus_produce(p, bus_input_topics[DEPLOY], -1, key, strlen(key), value, strlen(value), id),
        CANARY_OK);
  }
  assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  (void)d;
}

static bus_producer_t *producer_new(struct deliveries *d) {
  bus_producer_t *p = NULL;
  assert_int_equal(bus_producer_new(brokers, "test-bus-producer", test_log, NULL, &p), CANARY_OK);
  bus_producer_on_delivery(p, on_delivery, d);
  return p;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_environment(void **state) {
  (void)state;
  if (!brokers || !*brokers) {
    fail_msg("CANARY_KAFKA is not set: start the broker with scripts/services (see "
             "scripts/lib/services.sh) and export CANARY_KAFKA");
  }
}

/* The partitioner in C, Java's murmur2 and Kafka's own answer agree for "web-2.1.0". */
static void test_partitioner_matches_java(void **state) {
  (void)state;
  /* Kafka 4.1.2 kafka-clients: Utils.murmur2("web-2.1.0".getBytes()) and
   * BuiltInPartitioner.partitionForKey(bytes, 3), printed by a Java program once. */
  assert_int_equal(murmur2("web-2.1.0", 9), -1980400876);
  assert_int_equal(java_partition("web-2.1.0", 9, 3), 1);
  assert_int_equal(murmur2("foobar", 6), -790332482); /* Kafka's UtilsTest vectors */
  assert_int_equal(murmur2("abc", 3), 479470107);

  struct deliveries d = {0};
  bus_producer_t *p = producer_new(&d);
  assert_int_equal(bus_partition_count(p, "canary.deploy", 10000), SHARDS);
  assert_int_equal(bus_partition_count(p, "canary.no-such-topic", 1000), -1);
  bus_producer_destroy(p);
}

/* 1000 keyed messages, group with explicit start offsets, per-partition and per-key order. */
static void test_thousand_in_order(void **state) {
  (void)state;
  enum { N = 1000 };
  struct store_sim s;
  store_at_end(&s);
  struct deliveries d = {0};
  bus_producer_t *p = producer_new(&d);
  int64_t t0 = now_ms();
  produce(p, &d, 0, N);
  assert_int_equal(d.ok, N);
  assert_int_equal(d.failed, 0);

  char group[128];
  snprintf(group, sizeof group, "test-bus-%s-order", run_id);
  struct member a;
  member_join(&a, &s, "order-a", group);
  struct member *ms[] = {&a};
  int want = N;
  assert_true(pump(ms, 1, caught_up, &want, 60000));
  fprintf(stderr, "1000 messages produced and consumed in %lld ms\n", (long long)(now_ms() - t0));
  assert_true(a.idle);
  assert_int_equal(total(&s), N);
  for (int id = 0; id < N; id++) {
    assert_int_equal(s.counts[id], 1);
  }
  assert_int_equal(s.order_violations, 0);
  assert_int_equal(s.wrong_partition, 0);
  assert_int_equal(s.foreign, 0);
  assert_int_equal(s.partition_of_web_210, java_partition("web-2.1.0", 9, SHARDS));
  for (int shard = 0; shard < SHARDS; shard++) {
    assert_int_equal(a.assigned[shard], 1);
  }

  /* Idle stays true while nothing new arrives; a new message is still picked up. */
  poll_member(&a, 300);
  assert_true(a.idle);
  produce(p, &d, N, 1);
  int64_t deadline = now_ms() + 10000;
  while (total(&s) < N + 1 && now_ms() < deadline) {
    poll_member(&a, 100);
  }
  assert_int_equal(total(&s), N + 1);

  bus_consumer_close(a.c);
  for (int shard = 0; shard < SHARDS; shard++) {
    assert_int_equal(a.revoked[shard], 1);
  }
  bus_producer_destroy(p);
}

/* Two members split the shards (2 + 1); when one leaves, the other takes its shard over. */
static void test_two_members_split(void **state) {
  (void)state;
  enum { N1 = 300, N2 = 300, N3 = 150 };
  struct store_sim s;
  store_at_end(&s);
  struct deliveries d = {0};
  bus_producer_t *p = producer_new(&d);
  produce(p, &d, 0, N1);

  char group[128];
  snprintf(group, sizeof group, "test-bus-%s-split", run_id);
  struct member a, b;
  member_join(&a, &s, "split-a", group);
  struct member *only_a[] = {&a};
  int want = N1;
  assert_true(pump(only_a, 1, caught_up, &want, 60000));

  member_join(&b, &s, "split-b", group);
  struct member *both[] = {&a, &b};
  int any[] = {-1, -1};
  int64_t t0 = now_ms();
  assert_true(pump(both, 2, owners, any, 60000));
  fprintf(stderr, "rebalance to two members took %lld ms\n", (long long)(now_ms() - t0));
  int na = a.owns[0] + a.owns[1] + a.owns[2], nb = b.owns[0] + b.owns[1] + b.owns[2];
  assert_true((na == 2 && nb == 1) || (na == 1 && nb == 2));
  for (int shard = 0; shard < SHARDS; shard++) {
    assert_int_equal(a.revoked[shard], 1);
    const struct member *owner = a.owns[shard] ? &a : &b;
    assert_int_equal(memcmp(owner->started[shard], s.next[shard], sizeof s.next[shard]), 0);
  }

  produce(p, &d, N1, N2);
  want = N1 + N2;
  assert_true(pump(both, 2, caught_up, &want, 60000));
  assert_true(b.received > 0 && a.received > N1);

  /* b leaves: a gets every shard again and resumes where b stopped. */
  bus_consumer_close(b.c);
  for (int shard = 0; shard < SHARDS; shard++) {
    assert_false(b.owns[shard]);
  }
  produce(p, &d, N1 + N2, N3);
  int all[] = {SHARDS};
  assert_true(pump(only_a, 1, owners, all, 60000));
  want = N1 + N2 + N3;
  assert_true(pump(only_a, 1, caught_up, &want, 60000));

  assert_int_equal(d.ok, N1 + N2 + N3);
  assert_int_equal(total(&s), N1 + N2 + N3);
  for (int id = 0; id < N1 + N2 + N3; id++) {
    assert_int_equal(s.counts[id], 1);
  }
  assert_int_equal(s.order_violations, 0);
  assert_int_equal(s.wrong_partition, 0);
  assert_int_equal(s.foreign, 0);
  bus_consumer_close(a.c);
  bus_producer_destroy(p);
}

/*
 * bus_consumer_behind, the worker merge's "known to hold more": a partition is behind while the
 * broker holds messages not taken yet (here after a seek back, as after a restart), and not
 * once they are taken — also when a transactional producer's commit marker follows the last,
 * which the high watermark counts: before its end was remembered, such a partition looked one
 * message behind for ever, and the merge would have waited on it past --hold-ms for good.
 */
static void test_behind_after_a_transaction(void **state) {
  (void)state;
  enum { N = 3 };
  struct store_sim s;
  store_at_end(&s);
  char err[256], txid[128];
  snprintf(txid, sizeof txid, "test-bus-%s-tx", run_id);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err),
                   RD_KAFKA_CONF_OK);
  assert_int_equal(rd_kafka_conf_set(conf, "transactional.id", txid, err, sizeof err),
                   RD_KAFKA_CONF_OK);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  assert_non_null(rk);
  rd_kafka_error_t *e = rd_kafka_init_transactions(rk, 30000);
  if (e)
    fail_msg("init_transactions: %s", rd_kafka_error_string(e));
  assert_null(rd_kafka_begin_transaction(rk));
  for (int i = 0; i < N; i++) {
    char value[32];
    int n = snprintf(value, sizeof value, "%d:63:%d", MAX_IDS - 1 - i, 1000000 + i);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(bus_input_topics[0]),
                                       RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY("tx", 2),
                                       RD_KAFKA_V_VALUE(value, (size_t)n),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  e = rd_kafka_commit_transaction(rk, 30000);
  if (e)
    fail_msg("commit_transaction: %s", rd_kafka_error_string(e));
  rd_kafka_destroy(rk);

  char group[128];
  snprintf(group, sizeof group, "test-bus-%s-tx", run_id);
  struct member a;
  member_join(&a, &s, "tx-a", group);
  struct member *ms[] = {&a};
  int want = N;
  assert_true(pump(ms, 1, caught_up, &want, 60000));
  assert_int_equal(total(&s), N);
  poll_member(&a, 300);
  /* taken up to the end, the commit marker behind the last message: nothing more is there */
  assert_int_equal(bus_consumer_behind(a.c, 0, 0), 0);
  assert_true(bus_consumer_at_end(a.c, 0, 0, 0));
  /* sought back to before them, as a restarted worker is: they are known to be there */
  int64_t back[BUS_INPUT_TOPICS];
  memcpy(back, s.next[0], sizeof back);
  back[0] -= N + 1;
  assert_int_equal(bus_consumer_seek_shard(a.c, 0, back), CANARY_OK);
  assert_int_equal(bus_consumer_behind(a.c, 0, 0), 1);
  bus_consumer_close(a.c);
}

int main(void) {
  brokers = getenv("CANARY_KAFKA");
  verbose = getenv("BUS_TEST_VERBOSE") != NULL;
  snprintf(run_id, sizeof run_id, "%ld-%ld", (long)getpid(), (long)time(NULL));
  const struct CMUnitTest env[] = {cmocka_unit_test(test_environment)};
  if (cmocka_run_group_tests_name("environment", env, NULL, NULL) != 0) {
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partitioner_matches_java),
      cmocka_unit_test(test_thousand_in_order),
      cmocka_unit_test(test_two_members_split),
      cmocka_unit_test(test_behind_after_a_transaction),
  };
  int rc = cmocka_run_group_tests_name("bus", tests, NULL, NULL);
  rd_kafka_wait_destroyed(5000);
  return rc;
}
