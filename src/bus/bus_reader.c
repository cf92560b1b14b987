/*
 * A reader of one whole topic, outside any consumer group: every partition assigned from the
 * beginning (or the end), for people and tests that watch the outputs (canaryctl watch).
 */
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"

struct bus_reader {
  rd_kafka_t *rk;
  rd_kafka_message_t *last; /* the message returned by the previous read */
  int partitions, at_end;   /* partitions assigned, and how many reported their end since */
  bool *eof;
  log_sink_fn log;
  void *log_ctx;
};

int bus_reader_new(const char *brokers, const char *contract_topic, bool from_beginning,
                   log_sink_fn log, void *log_ctx, bus_reader_t **out) {
  const char *topic = bus_topic(contract_topic);
  char err[512];
  *out = NULL;
  bus_reader_t *r = calloc(1, sizeof *r);
  if (!r)
    return CANARY_ENOMEM;
  r->log = log;
  r->log_ctx = log_ctx;
  rd_kafka_conf_t *conf = bus_conf_new(NULL);
  int rc = bus_conf_set(conf, "bootstrap.servers", brokers, log, log_ctx);
  if (rc == CANARY_OK)
    rc = bus_conf_set(conf, "enable.partition.eof", "true", log, log_ctx);
  if (rc == CANARY_OK) /* required by librdkafka for a consumer, unused: nothing is committed */
    rc = bus_conf_set(conf, "group.id", "canaryctl-reader", log, log_ctx);
  if (rc == CANARY_OK)
    rc = bus_conf_set(conf, "enable.auto.commit", "false", log, log_ctx);
  if (rc == CANARY_OK) /* people watch this live: do not let the broker sit on an empty fetch */
    rc = bus_conf_set(conf, "fetch.wait.max.ms", "50", log, log_ctx);
  static const char *const none[] = {NULL};
  if (rc == CANARY_OK) /* how to reach the cluster */
    rc = bus_conf_apply(conf, bus_client_conf(), none, log, log_ctx);
  if (rc != CANARY_OK) {
    rd_kafka_conf_destroy(conf);
    free(r);
    return rc;
  }
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!r->rk) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "cannot create a reader: %s", err);
    rd_kafka_conf_destroy(conf);
    free(r);
    return CANARY_EINVALID;
  }
  rd_kafka_poll_set_consumer(r->rk);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, topic, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(r->rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (e || md->topic_cnt != 1 || md->topics[0].err) {
    bus_logf(log, log_ctx, LOG_LVL_ERR, "cannot read metadata of %s: %s", topic,
             rd_kafka_err2str(e ? e : md->topics[0].err));
    if (md)
      rd_kafka_metadata_destroy(md);
    bus_reader_close(r);
    return CANARY_EUNAVAILABLE;
  }
  r->partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  r->eof = calloc((size_t)r->partitions + 1, sizeof *r->eof);
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(r->partitions);
  for (int p = 0; p < r->partitions; p++)
    rd_kafka_topic_partition_list_add(list, topic, p)->offset =
        from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
  e = rd_kafka_assign(r->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e || !r->eof) {
    bus_reader_close(r);
    return CANARY_EIO;
  }
  *out = r;
  return CANARY_OK;
}

int bus_reader_read(bus_reader_t *r, int timeout_ms, struct bus_msg *msg, bool *caught_up) {
  if (r->last) {
    rd_kafka_message_destroy(r->last);
    r->last = NULL;
  }
  *caught_up = r->at_end == r->partitions;
  rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, timeout_ms);
  if (!m)
    return CANARY_ETIMEOUT;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (m->partition >= 0 && m->partition < r->partitions && !r->eof[m->partition]) {
      r->eof[m->partition] = true;
      r->at_end++;
    }
    *caught_up = r->at_end == r->partitions;
    rd_kafka_message_destroy(m);
    return CANARY_ETIMEOUT;
  }
  if (m->err) {
    bus_logf(r->log, r->log_ctx, LOG_LVL_WARNING, "reader: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return CANARY_ETIMEOUT;
  }
  if (m->partition >= 0 && m->partition < r->partitions && r->eof[m->partition]) {
    r->eof[m->partition] = false;
    r->at_end--;
  }
  *caught_up = false;
  r->last = m;
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

void bus_reader_close(bus_reader_t *r) {
  if (!r)
    return;
  if (r->last)
    rd_kafka_message_destroy(r->last);
  rd_kafka_consumer_close(r->rk);
  rd_kafka_destroy(r->rk);
  free(r->eof);
  free(r);
}
