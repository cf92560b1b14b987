/*
 * A consumer group member on one topic whose offsets Kafka keeps: what `canaryd notify` reads
 * canary.notifications with. The caller commits a message's offset once it is done with it; a
 * message redelivered after a crash or a rebalance is the caller's to recognise (by its id).
 */
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"

struct bus_subscriber {
  rd_kafka_t *rk;
  rd_kafka_message_t *last; /* the message returned by the previous read */
  log_sink_fn log;
  void *log_ctx;
};

int bus_subscriber_new(const char *brokers, const char *contract_topic, const char *group,
                       const char *client_id, const char *const *extra, log_sink_fn log,
                       void *log_ctx, bus_subscriber_t **out) {
  char err[512];
  *out = NULL;
  bus_subscriber_t *sub = calloc(1, sizeof *sub);
  if (!sub)
    return CANARY_ENOMEM;
  sub->log = log;
  sub->log_ctx = log_ctx;
  rd_kafka_conf_t *conf = bus_conf_new(extra);
  static const char *const fixed[] = {"bootstrap.servers", "group.id", "enable.auto.commit",
                                      "enable.auto.offset.store", NULL};
  int rc = bus_conf_set(conf, "bootstrap.servers", brokers, log, log_ctx);
  if (rc == CANARY_OK)
    rc = bus_conf_set(conf, "group.id", group, log, log_ctx);
  if (rc == CANARY_OK && client_id)
    rc = bus_conf_set(conf, "client.id", client_id, log, log_ctx);
  if (rc == CANARY_OK) /* committed by the caller, message by message, when it is done */
    rc = bus_conf_set(conf, "enable.auto.commit", "false", log, log_ctx);
  if (rc == CANARY_OK)
    rc = bus_conf_set(conf, "enable.auto.offset.store", "false", log, log_ctx);
  if (rc == CANARY_OK) /* a new group starts at the beginning: nothing published is skipped */
    rc = bus_conf_set(conf, "auto.offset.reset", "earliest", log, log_ctx);
  if (rc == CANARY_OK)
    rc = bus_conf_set(conf, "fetch.wait.max.ms", "100", log, log_ctx);
  if (rc == CANARY_OK) /* how to reach the cluster */
    rc = bus_conf_apply(conf, bus_client_conf(), fixed, log, log_ctx);
  if (rc == CANARY_OK && extra) /* the caller's: session.timeout.ms, group.instance.id, ... */
    rc = bus_conf_apply(conf, extra, fixed, log, log_ctx);
  if (rc != CANARY_OK) {
    rd_kafka_conf_destroy(conf);
    free(sub);
    return rc;
  }
  sub->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!sub->rk) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "cannot create a consumer: %s", err);
    rd_kafka_conf_destroy(conf);
    free(sub);
    return CANARY_EINVALID;
  }
  rd_kafka_poll_set_consumer(sub->rk);
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, bus_topic(contract_topic), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(sub->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "cannot subscribe to %s: %s", bus_topic(contract_topic),
             rd_kafka_err2str(e));
    bus_subscriber_close(sub);
    return CANARY_EIO;
  }
  *out = sub;
  return CANARY_OK;
}

int bus_subscriber_read(bus_subscriber_t *sub, int timeout_ms, struct bus_msg *msg) {
  if (sub->last) {
    rd_kafka_message_destroy(sub->last);
    sub->last = NULL;
  }
  rd_kafka_message_t *m = rd_kafka_consumer_poll(sub->rk, timeout_ms);
  if (!m)
    return CANARY_ETIMEOUT;
  if (m->err) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      bus_logf(sub->log, sub->log_ctx, LOG_LVL_WARNING, "consumer: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return CANARY_ETIMEOUT;
  }
  sub->last = m;
  *msg = (struct bus_msg){.topic = -1,
                          .partition = m->partition,
                          .offset = m->offset,
                          .key = m->key,
                          .key_len = m->key_len,
                          .value = m->payload,
                          .len = m->len,
                          .timestamp_ms = rd_kafka_message_timestamp(m, NULL)};
  return CANARY_OK;
}

int bus_subscriber_commit(bus_subscriber_t *sub, const struct bus_msg *msg) {
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, rd_kafka_topic_name(sub->last->rkt), msg->partition)
      ->offset = msg->offset + 1;
  /* asynchronous: a commit lost in a crash only means a redelivery, which the caller
   * recognises; waiting for each one would halve the throughput for nothing */
  rd_kafka_resp_err_t e = rd_kafka_commit(sub->rk, list, 1);
  rd_kafka_topic_partition_list_destroy(list);
  if (e) {
    bus_logf(sub->log, sub->log_ctx, LOG_LVL_WARNING, "commit of %s [%d] at %lld: %s",
             rd_kafka_topic_name(sub->last->rkt), (int)msg->partition, (long long)msg->offset + 1,
             rd_kafka_err2str(e));
    return CANARY_EIO;
  }
  return CANARY_OK;
}

void bus_subscriber_close(bus_subscriber_t *sub) {
  if (!sub)
    return;
  if (sub->last)
    rd_kafka_message_destroy(sub->last);
  rd_kafka_consumer_close(sub->rk); /* waits for the commits still in flight */
  rd_kafka_destroy(sub->rk);
  free(sub);
}
