/*
 * The idempotent producer used by the outbox relay and canaryctl. Idempotence makes the
 * broker drop the duplicates of librdkafka's own retries; the relay's duplicates after a crash
 * are handled downstream by the deterministic message ids.
 */
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"

/* The message opaque travels as librdkafka's void *msg_opaque. */
_Static_assert(sizeof(void *) >= sizeof(int64_t), "bus_produce's opaque needs 64-bit pointers");

#define BUS_MESSAGE_TIMEOUT_MS 30000
/* How long bus_partition_count waits before asking again for a topic still being created. */
#define PARTITION_RETRY_MS 200

struct bus_producer {
  rd_kafka_t *rk;
  log_sink_fn log;
  void *log_ctx;
  bus_delivery_fn delivered;
  void *delivered_ctx;
  int queue_wait_ms; /* how long bus_produce waits for room: message.timeout.ms */
};

static const char *const producer_fixed_conf[] = {"bootstrap.servers",
                                                  "metadata.broker.list",
                                                  "enable.idempotence",
                                                  "acks",
                                                  "request.required.acks",
                                                  "partitioner",
                                                  NULL};

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  bus_producer_t *p = opaque;
  const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "-";
  int64_t id = (int64_t)(intptr_t)m->_private;
  if (m->err) {
    bus_logf(p->log, p->log_ctx, LOG_LVL_ERR,
             "kafka producer: delivery to %s [%d] failed (opaque %lld): %s", topic,
             (int)m->partition, (long long)id, rd_kafka_err2str(m->err));
  }
  if (p->delivered) {
    p->delivered(p->delivered_ctx, id, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
                 m->err ? rd_kafka_err2str(m->err) : NULL);
  }
  (void)rk;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  const bus_producer_t *p = rd_kafka_opaque(rk);
  if (p) {
    bus_logf(p->log, p->log_ctx, level, "librdkafka %s: %s", fac, buf);
  }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  bus_producer_t *p = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, why, sizeof why);
    bus_logf(p->log, p->log_ctx, LOG_LVL_ERR,
             "kafka producer: fatal error %s: %s (the producer must be recreated)",
             rd_kafka_err2name(ferr), why);
    return;
  }
  bus_logf(p->log, p->log_ctx, LOG_LVL_WARNING, "kafka producer: %s: %s", rd_kafka_err2name(err),
           reason);
}

int bus_producer_new(const char *brokers, const char *client_id, log_sink_fn log, void *log_ctx,
                     bus_producer_t **out) {
  return bus_producer_new_conf(brokers, client_id, log, log_ctx, NULL, out);
}

int bus_producer_new_conf(const char *brokers, const char *client_id, log_sink_fn log,
                          void *log_ctx, const char *const *extra, bus_producer_t **out) {
  *out = NULL;
  if (!brokers || !*brokers) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "kafka producer: brokers are required");
    return CANARY_EINVALID;
  }
  bus_producer_t *p = calloc(1, sizeof *p);
  if (!p) {
    return CANARY_ENOMEM;
  }
  p->log = log;
  p->log_ctx = log_ctx;
  p->queue_wait_ms = BUS_MESSAGE_TIMEOUT_MS;
  rd_kafka_conf_t *conf = bus_conf_new(extra);
  const char *settings[][2] = {
      {"bootstrap.servers", brokers},
      {"client.id", client_id && *client_id ? client_id : "canaryd"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      /* Java's default partitioner: a rollout key lands on the same partition whoever writes. */
      {"partitioner", "murmur2_random"},
      {"linger.ms", "5"},
      {"message.timeout.ms", "30000"},
      /* Topics are provisioned with their settings (canary.flags is compacted): a typo must
       * fail, not create a topic with the broker's defaults. */
      {"allow.auto.create.topics", "false"},
      {"log.queue", "true"},
  };
  int rc = CANARY_OK;
  for (size_t i = 0; rc == CANARY_OK && i < sizeof settings / sizeof settings[0]; i++) {
    rc = bus_conf_set(conf, settings[i][0], settings[i][1], log, log_ctx);
  }
  if (rc == CANARY_OK) { /* how to reach the cluster, then this producer's own */
    rc = bus_conf_apply(conf, bus_client_conf(), producer_fixed_conf, log, log_ctx);
  }
  if (rc == CANARY_OK) {
    rc = bus_conf_apply(conf, extra, producer_fixed_conf, log, log_ctx);
  }
  if (rc != CANARY_OK) {
    rd_kafka_conf_destroy(conf);
    free(p);
    return rc;
  }
  for (size_t i = 0; extra && extra[i]; i += 2) {
    if (strcmp(extra[i], "message.timeout.ms") == 0 && atoi(extra[i + 1]) > 0) {
      p->queue_wait_ms = atoi(extra[i + 1]);
    }
  }
  rd_kafka_conf_set_opaque(conf, p);
  rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  rd_kafka_conf_set_log_cb(conf, log_cb);

  char err[512];
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!p->rk) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "kafka producer: %s", err);
    rd_kafka_conf_destroy(conf);
    free(p);
    return CANARY_EINVALID;
  }
  conf = NULL; /* rd_kafka_new() took it */
  rd_kafka_set_log_queue(p->rk, NULL);
  *out = p;
  return CANARY_OK;
}

void bus_producer_on_delivery(bus_producer_t *p, bus_delivery_fn fn, void *ctx) {
  p->delivered = fn;
  p->delivered_ctx = ctx;
}

int bus_produce(bus_producer_t *p, const char *contract_topic, int32_t partition, const void *key,
                size_t key_len, const void *value, size_t len, int64_t opaque) {
  if (!contract_topic || !*contract_topic) {
    bus_logf(p->log, p->log_ctx, LOG_LVL_ERR, "kafka producer: no topic");
    return CANARY_EINVALID;
  }
  int64_t deadline = bus_now_ms() + p->queue_wait_ms;
  for (;;) {
    const char *topic = bus_topic(contract_topic);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_OPAQUE((void *)(intptr_t)opaque), RD_KAFKA_V_END);
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return CANARY_OK;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      if (bus_now_ms() >= deadline) {
        bus_logf(p->log, p->log_ctx, LOG_LVL_ERR,
                 "kafka producer: %s [%d]: queue still full after %d ms (broker unreachable?)",
                 topic, (int)partition, p->queue_wait_ms);
        return CANARY_EFULL;
      }
      /* Delivery reports free room; serving them is what makes progress. */
      rd_kafka_poll(p->rk, 100);
      continue;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      /* the topic may yet be created: try again later */
      bus_logf(p->log, p->log_ctx, LOG_LVL_ERR, "kafka producer: %s [%d]: %s", topic,
               (int)partition, rd_kafka_err2str(err));
      return CANARY_ENOTFOUND;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      /* this message can never go: CANARY_EINVALID says so to the caller */
      bus_logf(p->log, p->log_ctx, LOG_LVL_ERR, "kafka producer: %s [%d]: %s", topic,
               (int)partition, rd_kafka_err2str(err));
      return CANARY_EINVALID;
    case RD_KAFKA_RESP_ERR__FATAL: {
      char why[512];
      rd_kafka_fatal_error(p->rk, why, sizeof why);
      bus_logf(p->log, p->log_ctx, LOG_LVL_ERR, "kafka producer: %s [%d]: producer failed: %s",
               topic, (int)partition, why);
      return CANARY_EUNAVAILABLE;
    }
    default:
      bus_logf(p->log, p->log_ctx, LOG_LVL_ERR, "kafka producer: %s [%d]: %s", topic,
               (int)partition, rd_kafka_err2str(err));
      return CANARY_EIO;
    }
  }
}

void bus_producer_poll(bus_producer_t *p, int timeout_ms) { rd_kafka_poll(p->rk, timeout_ms); }

int bus_producer_flush(bus_producer_t *p, int timeout_ms) {
  rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    bus_logf(p->log, p->log_ctx, LOG_LVL_WARNING,
             "kafka producer: %d messages still undelivered after %d ms", rd_kafka_outq_len(p->rk),
             timeout_ms);
    return CANARY_ETIMEOUT;
  }
  return CANARY_OK;
}

/* One metadata request for topic: its partition count, 0 while the topic is being created
 * (unknown to the broker yet, or no leader elected), -1 on any other error (logged). */
static int partition_count_once(bus_producer_t *p, rd_kafka_topic_t *rkt, const char *topic,
                                int timeout_ms, bool last) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
  int n = -1;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
    err = md->topics[0].err;
    if (!err && md->topics[0].partition_cnt > 0) {
      n = md->topics[0].partition_cnt;
    }
  }
  if (n < 0 && !last &&
      (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
       err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE || err == RD_KAFKA_RESP_ERR_NO_ERROR)) {
    n = 0; /* perhaps being created (canaryd creates its topics as it starts): ask again */
  } else if (n < 0) {
    bus_logf(p->log, p->log_ctx, LOG_LVL_WARNING, "kafka producer: metadata of %s: %s", topic,
             err ? rd_kafka_err2str(err) : "no partitions");
  }
  if (md) {
    rd_kafka_metadata_destroy(md);
  }
  return n;
}

int bus_partition_count(bus_producer_t *p, const char *contract_topic, int timeout_ms) {
  const char *topic = bus_topic(contract_topic);
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
  if (!rkt) {
    return -1;
  }
  /* A topic that does not exist yet is asked for again until the deadline: a client started
   * beside canaryd (a CI step, a test) may ask while canaryd is still creating the topics, and
   * "did not describe the topic within 5 s" should then mean five seconds. */
  int64_t deadline = bus_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  int n;
  for (;;) {
    int64_t left = deadline - bus_now_ms();
    bool last = left <= PARTITION_RETRY_MS;
    n = partition_count_once(p, rkt, topic, left > 0 ? (int)left : 1, last);
    if (n != 0) {
      break;
    }
    rd_kafka_poll(p->rk, PARTITION_RETRY_MS); /* serves callbacks while it waits */
  }
  rd_kafka_topic_destroy(rkt);
  return n;
}

void bus_producer_destroy(bus_producer_t *p) {
  if (!p) {
    return;
  }
  rd_kafka_destroy(p->rk);
  free(p);
}
