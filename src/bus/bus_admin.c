/* Creating the contract's topics with librdkafka's Admin API (idempotent: existing ones stay). */
#include <stdio.h>
#include <string.h>

#include "bus/bus_internal.h"

struct topic_spec {
  const char *name;
  bool input_sized; /* partitions as asked; else 1 */
  bool compact;
};

static const struct topic_spec specs[] = {
#define XX(id, name, input, sized, compact, types) {name, (sized), (compact)},
    TOPIC_MAP(XX)
#undef XX
};
#define N_SPECS (sizeof specs / sizeof specs[0])

int bus_create_topics(const char *brokers, int partitions, int timeout_ms, log_sink_fn log,
                      void *log_ctx) {
  char err[512];
  rd_kafka_conf_t *conf = bus_conf_new(NULL);
  static const char *const none[] = {NULL};
  if (bus_conf_set(conf, "bootstrap.servers", brokers, log, log_ctx) != CANARY_OK ||
      bus_conf_apply(conf, bus_client_conf(), none, log, log_ctx) != CANARY_OK) {
    rd_kafka_conf_destroy(conf);
    return CANARY_EINVALID;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "kafka admin: %s", err);
    rd_kafka_conf_destroy(conf);
    return CANARY_EINVALID;
  }
  rd_kafka_NewTopic_t *topics[N_SPECS];
  for (size_t i = 0; i < N_SPECS; i++) {
    topics[i] = rd_kafka_NewTopic_new(bus_topic(specs[i].name),
                                      specs[i].input_sized ? partitions : 1, 1, err, sizeof err);
    if (specs[i].compact)
      rd_kafka_NewTopic_set_config(topics[i], "cleanup.policy", "compact");
  }
  rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, topics, N_SPECS, opts, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
  int rc = CANARY_OK;
  if (!ev) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "kafka admin: no answer from %s in %d ms", brokers,
             timeout_ms);
    rc = CANARY_EUNAVAILABLE;
  } else if (rd_kafka_event_error(ev)) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "kafka admin: %s", rd_kafka_event_error_string(ev));
    rc = CANARY_EUNAVAILABLE;
  } else {
    size_t n;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        bus_logf(log, log_ctx, LOG_LVL_ERR, "kafka admin: creating %s: %s",
                 rd_kafka_topic_result_name(res[i]), rd_kafka_topic_result_error_string(res[i]));
        rc = CANARY_EIO;
      }
    }
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(opts);
  for (size_t i = 0; i < N_SPECS; i++)
    rd_kafka_NewTopic_destroy(topics[i]);
  rd_kafka_destroy(rk);
  return rc;
}
