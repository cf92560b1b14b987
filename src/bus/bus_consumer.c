/*
 * The input consumer: one group member over the three co-partitioned input topics. Kafka only
 * decides who owns which shard; where to start reading comes from our own store (assigned hook)
 * and nothing is ever committed to Kafka.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"

/* One assigned topic partition and whether it has reported its end since its last message. */
struct bus_part {
  int topic;
  int32_t partition;
  bool eof;
  /* After a seek (a shard rewound to its stored offsets), an end-of-partition that librdkafka
   * queued before it would say "at end" of a partition whose rewound messages are still to
   * come — and the worker's merge would release the other partitions' later events before them
   * (an event for a rollout whose rollout.requested was not applied yet went to the dead
   * letters). Until a message arrives after the seek, only an end at the seek's own offset
   * counts. */
  bool fresh;      /* no seek pending: any end counts */
  int64_t seek_to; /* the offset sought, while !fresh */
  int64_t next;    /* the offset after the last message taken (or assigned, sought); -1 unknown */
  int64_t eof_ms;  /* bus_now_ms() when the end was reported or checked (while eof) */
  /* bus_consumer_behind's answer from the broker while no fetch had answered (1 more, -1 not;
   * 0 not asked): asked once per assignment, seek or message taken. */
  int behind_asked;
  /* The offset of the last end reported (-1: none since the assignment or a seek). Past the
   * last message when control records follow it (a transactional producer's commit markers):
   * the high watermark counts them, and without this a partition that ends on one would look
   * as if it held one more message for ever. */
  int64_t end_at;
};

struct bus_consumer {
  rd_kafka_t *rk;
  char name[128]; /* group/client.id: every log line says which member speaks */
  struct bus_hooks hooks;
  /* The batch returned by the last poll: raw[i] backs msgs[i]. */
  rd_kafka_message_t **raw;
  struct bus_msg *msgs;
  size_t n, cap_raw, cap_msgs;
  /* The current assignment. */
  struct bus_part *parts;
  size_t n_parts, cap_parts;
  int32_t *shards; /* shards whose assigned() hook succeeded, so revoked() is owed */
  size_t n_shards, cap_shards;
  bool joined; /* an assignment (possibly empty) has been received */
  /* A broker connection failed: every end-of-partition seen so far may be stale (see reseek). */
  bool reseek;
};

static const char *const consumer_fixed_conf[] = {"bootstrap.servers",
                                                  "metadata.broker.list",
                                                  "group.id",
                                                  "enable.auto.commit",
                                                  "enable.auto.offset.store",
                                                  "partition.assignment.strategy",
                                                  "enable.partition.eof",
                                                  NULL};

static void consumer_log(const bus_consumer_t *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void consumer_log(const bus_consumer_t *c, int level, const char *fmt, ...) {
  if (!c->hooks.log) {
    return;
  }
  char line[1024];
  int w = snprintf(line, sizeof line, "kafka consumer %s: ", c->name);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + w, sizeof line - (size_t)w, fmt, ap);
  va_end(ap);
  c->hooks.log(c->hooks.ctx, level, line);
}

/* ---- the assignment ---------------------------------------------------------------------- */

static struct bus_part *part_find(bus_consumer_t *c, int topic, int32_t partition) {
  for (size_t i = 0; i < c->n_parts; i++) {
    if (c->parts[i].topic == topic && c->parts[i].partition == partition) {
      return &c->parts[i];
    }
  }
  return NULL;
}

static bool idle_now(const bus_consumer_t *c) {
  if (!c->joined) {
    return false;
  }
  for (size_t i = 0; i < c->n_parts; i++) {
    if (!c->parts[i].eof) {
      return false;
    }
  }
  return true;
}

/* Destroy the messages of the batch in progress that belong to shard (-1: all of them). */
static void batch_drop_shard(bus_consumer_t *c, int32_t shard) {
  size_t keep = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (shard < 0 || c->raw[i]->partition == shard) {
      rd_kafka_message_destroy(c->raw[i]);
    } else {
      c->raw[keep++] = c->raw[i];
    }
  }
  c->n = keep;
}

/* Make room for need elements of size in the array *arrp (any object pointer type). */
static int grow(void *arrp, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) {
    return CANARY_OK;
  }
  size_t ncap = *cap ? *cap : 8;
  while (ncap < need) {
    ncap *= 2;
  }
  void *arr;
  memcpy(&arr, arrp, sizeof arr);
  void *p = realloc(arr, ncap * size);
  if (!p) {
    return CANARY_ENOMEM;
  }
  memcpy(arrp, &p, sizeof p);
  *cap = ncap;
  return CANARY_OK;
}

/*
 * Eager protocol: the whole previous assignment is revoked first. Every shard whose assigned()
 * hook ran gets its revoked() hook, the messages not yet returned are dropped.
 */
static void on_revoke(bus_consumer_t *c, rd_kafka_topic_partition_list_t *parts) {
  bool lost = rd_kafka_assignment_lost(c->rk);
  for (size_t i = 0; i < c->n_shards; i++) {
    consumer_log(c, LOG_LVL_NOTICE, "shard %d %s", (int)c->shards[i],
                 lost ? "lost (session timed out or fenced)" : "revoked");
    batch_drop_shard(c, c->shards[i]);
    if (c->hooks.revoked) {
      c->hooks.revoked(c->hooks.ctx, c->shards[i]);
    }
  }
  c->n_shards = 0;
  c->n_parts = 0;
  c->joined = false;
  rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, NULL);
  if (err) {
    consumer_log(c, LOG_LVL_ERR, "unassign of %d partitions failed: %s", parts->cnt,
                 rd_kafka_err2str(err));
  }
}

/*
 * Group the new partitions by shard, ask the hook where each shard starts, and assign exactly
 * those offsets. A shard whose hook fails is left out (and logged).
 */
static void on_assign(bus_consumer_t *c, rd_kafka_topic_partition_list_t *parts) {
  rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(parts->cnt);
  c->n_parts = 0;
  c->n_shards = 0;
  for (int i = 0; i < parts->cnt; i++) {
    int32_t shard = parts->elems[i].partition;
    bool seen = false;
    for (int j = 0; j < i; j++) {
      if (parts->elems[j].partition == shard) {
        seen = true;
        break;
      }
    }
    if (seen) {
      continue;
    }
    int64_t next[BUS_INPUT_TOPICS];
    for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
      next[t] = -1;
    }
    int rc = c->hooks.assigned ? c->hooks.assigned(c->hooks.ctx, shard, next) : 0;
    if (rc != 0) {
      consumer_log(c, LOG_LVL_ERR,
                   "shard %d left unassigned: the assigned hook failed (%d: %s); "
                   "nobody consumes it until the next rebalance",
                   (int)shard, rc, canary_strerror(rc));
      continue;
    }
    if (grow(&c->shards, &c->cap_shards, c->n_shards + 1, sizeof *c->shards) ||
        grow(&c->parts, &c->cap_parts, c->n_parts + (size_t)parts->cnt, sizeof *c->parts)) {
      consumer_log(c, LOG_LVL_ERR, "shard %d left unassigned: out of memory", (int)shard);
      if (c->hooks.revoked) {
        c->hooks.revoked(c->hooks.ctx, shard);
      }
      continue;
    }
    c->shards[c->n_shards++] = shard;
    char where[256] = "";
    size_t wl = 0;
    for (int k = i; k < parts->cnt; k++) {
      const rd_kafka_topic_partition_t *tp = &parts->elems[k];
      int topic = bus_topic_index(tp->topic);
      if (tp->partition != shard) {
        continue;
      }
      if (topic < 0) {
        consumer_log(c, LOG_LVL_WARNING, "ignoring unexpected topic %s [%d]", tp->topic,
                     (int)tp->partition);
        continue;
      }
      int64_t off = next[topic] < 0 ? RD_KAFKA_OFFSET_BEGINNING : next[topic];
      rd_kafka_topic_partition_list_add(assign, tp->topic, tp->partition)->offset = off;
      c->parts[c->n_parts++] = (struct bus_part){.topic = topic,
                                                 .partition = shard,
                                                 .eof = false,
                                                 .fresh = true,
                                                 .seek_to = -1,
                                                 .next = next[topic],
                                                 .end_at = -1};
      if (wl < sizeof where) {
        int w =
            snprintf(where + wl, sizeof where - wl, " %s@%lld", tp->topic, (long long)next[topic]);
        wl += w > 0 ? (size_t)w : 0;
      }
    }
    consumer_log(c, LOG_LVL_NOTICE, "shard %d assigned, starting at%s (-1 = beginning)", (int)shard,
                 where);
  }
  c->joined = true;
  rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, assign);
  if (err) {
    /* Nothing is consumed; the shards' state is dropped again so that nothing stale is kept. */
    consumer_log(c, LOG_LVL_ERR, "assign of %d partitions failed: %s", assign->cnt,
                 rd_kafka_err2str(err));
    for (size_t i = 0; i < c->n_shards; i++) {
      if (c->hooks.revoked) {
        c->hooks.revoked(c->hooks.ctx, c->shards[i]);
      }
    }
    c->n_shards = 0;
    c->n_parts = 0;
  }
  rd_kafka_topic_partition_list_destroy(assign);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  bus_consumer_t *c = opaque;
  switch (err) {
  case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
    on_assign(c, parts);
    break;
  case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
    on_revoke(c, parts);
    break;
  default:
    consumer_log(c, LOG_LVL_ERR, "rebalance failed: %s", rd_kafka_err2str(err));
    on_revoke(c, parts);
    break;
  }
  (void)rk;
}

/* ---- callbacks served on the caller's thread -------------------------------------------- */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  bus_consumer_t *c = rd_kafka_opaque(rk);
  /* A connection failure is logged (facility FAIL) even when it is too mild for error_cb. */
  if (c && strcmp(fac, "FAIL") == 0)
    c->reseek = true;
  if (c) {
    consumer_log(c, level, "librdkafka %s: %s", fac, buf);
  }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  bus_consumer_t *c = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, why, sizeof why);
    consumer_log(c, LOG_LVL_ERR, "fatal error %s: %s", rd_kafka_err2name(ferr), why);
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    c->reseek = true;
  consumer_log(c, LOG_LVL_WARNING, "%s: %s", rd_kafka_err2name(err), reason);
}

/* ---- life cycle ------------------------------------------------------------------------- */

int bus_consumer_new(const char *brokers, const char *group, const char *client_id,
                     const struct bus_hooks *hooks, bus_consumer_t **out) {
  return bus_consumer_new_conf(brokers, group, client_id, hooks, NULL, out);
}

int bus_consumer_new_conf(const char *brokers, const char *group, const char *client_id,
                          const struct bus_hooks *hooks, const char *const *extra,
                          bus_consumer_t **out) {
  *out = NULL;
  log_sink_fn log = hooks ? hooks->log : NULL;
  void *lctx = hooks ? hooks->ctx : NULL;
  if (!brokers || !*brokers || !group || !*group) {
    bus_logf(log, lctx, LOG_LVL_ERR, "kafka consumer: brokers and group are required");
    return CANARY_EINVALID;
  }
  bus_consumer_t *c = calloc(1, sizeof *c);
  if (!c) {
    return CANARY_ENOMEM;
  }
  if (hooks) {
    c->hooks = *hooks;
  }
  if (!client_id || !*client_id) {
    client_id = "canaryd";
  }
  snprintf(c->name, sizeof c->name, "%s/%s", group, client_id);
  rd_kafka_conf_t *conf = bus_conf_new(extra);
  const char *settings[][2] = {
      {"bootstrap.servers", brokers},
      {"group.id", group},
      {"client.id", client_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "range"},
      {"enable.partition.eof", "true"},
      /* A halt must be readable within a second of the breach: an idle fetch may wait 100 ms
       * for data, not librdkafka's default 500. */
      {"fetch.wait.max.ms", "100"},
      /* librdkafka (2.0) stops fetching once this many messages wait in its queue and notices
       * they were taken only when a later timer fires: under a backlog the worker ran dry for
       * 100-400 ms at a time (bench/ingest). The memory stays bounded by
       * queued.max.messages.kbytes (64 MB), which is reached first at these message sizes. */
      {"queued.min.messages", "1000000"},
      /* Logs come to the main queue, which poll serves: the log hook runs on our thread. */
      {"log.queue", "true"},
  };
  int rc = CANARY_OK;
  for (size_t i = 0; rc == CANARY_OK && i < sizeof settings / sizeof settings[0]; i++) {
    rc = bus_conf_set(conf, settings[i][0], settings[i][1], log, lctx);
  }
  if (rc == CANARY_OK) { /* how to reach the cluster, then this consumer's own */
    rc = bus_conf_apply(conf, bus_client_conf(), consumer_fixed_conf, log, lctx);
  }
  if (rc == CANARY_OK) {
    rc = bus_conf_apply(conf, extra, consumer_fixed_conf, log, lctx);
  }
  if (rc != CANARY_OK) {
    rd_kafka_conf_destroy(conf);
    free(c);
    return rc;
  }
  rd_kafka_conf_set_opaque(conf, c);
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  rd_kafka_conf_set_log_cb(conf, log_cb);

  char err[512];
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!c->rk) {
    consumer_log(c, LOG_LVL_ERR, "%s", err);
    rd_kafka_conf_destroy(conf);
    free(c);
    return CANARY_EINVALID;
  }
  conf = NULL; /* rd_kafka_new() took it */
  rd_kafka_set_log_queue(c->rk, NULL);
  /* Rebalances, errors and logs are served by rd_kafka_consumer_poll(). */
  rd_kafka_poll_set_consumer(c->rk);

  rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(BUS_INPUT_TOPICS);
  for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
    rd_kafka_topic_partition_list_add(topics, bus_topic(bus_input_topics[t]),
                                      RD_KAFKA_PARTITION_UA);
  }
  rd_kafka_resp_err_t serr = rd_kafka_subscribe(c->rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (serr) {
    consumer_log(c, LOG_LVL_ERR, "subscribe failed: %s", rd_kafka_err2str(serr));
    rd_kafka_destroy(c->rk);
    free(c);
    return CANARY_EINVALID;
  }
  consumer_log(c, LOG_LVL_INFO, "joining the group on %s", brokers);
  *out = c;
  return CANARY_OK;
}

void bus_consumer_close(bus_consumer_t *c) {
  if (!c) {
    return;
  }
  batch_drop_shard(c, -1);
  /* Runs the revoke through rebalance_cb, so every shard gets its revoked() hook. */
  rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
  if (err) {
    consumer_log(c, LOG_LVL_WARNING, "close: %s", rd_kafka_err2str(err));
  }
  /* Shards still owed a revoke (close failed before the rebalance callback ran). */
  for (size_t i = 0; i < c->n_shards; i++) {
    if (c->hooks.revoked) {
      c->hooks.revoked(c->hooks.ctx, c->shards[i]);
    }
  }
  c->n_shards = 0;
  rd_kafka_destroy(c->rk);
  free(c->raw);
  free(c->msgs);
  free(c->parts);
  free(c->shards);
  free(c);
}

/* ---- polling ---------------------------------------------------------------------------- */

/* Handle one event from rd_kafka_consumer_poll: keep a message, note an end, log an error. */
static void take(bus_consumer_t *c, rd_kafka_message_t *m) {
  const char *tname = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
  int topic = tname ? bus_topic_index(tname) : -1;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    struct bus_part *p = topic >= 0 ? part_find(c, topic, m->partition) : NULL;
    if (p && (p->fresh || m->offset == p->seek_to)) { /* else: from before the seek */
      p->eof = true;
      p->eof_ms = bus_now_ms();
      p->end_at = m->offset;
    }
    rd_kafka_message_destroy(m);
    return;
  }
  if (m->err) {
    consumer_log(c, LOG_LVL_WARNING, "%s [%d] offset %lld: %s: %s", tname ? tname : "-",
                 (int)m->partition, (long long)m->offset, rd_kafka_err2name(m->err),
                 rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return;
  }
  struct bus_part *p = topic >= 0 ? part_find(c, topic, m->partition) : NULL;
  if (!p) {
    /* Not ours (any more): librdkafka should never hand these out, but never process them. */
    consumer_log(c, LOG_LVL_WARNING, "dropping message of unassigned %s [%d] offset %lld",
                 tname ? tname : "-", (int)m->partition, (long long)m->offset);
    rd_kafka_message_destroy(m);
    return;
  }
  p->eof = false;
  p->fresh = true;
  p->next = m->offset + 1;
  p->behind_asked = 0;
  c->raw[c->n++] = m;
}

/*
 * After a broker connection failed, an end-of-partition seen before it says nothing about
 * what was produced while we were away, and librdkafka reports an end once per offset: a
 * partition that got nothing new would never say "at end" again, and one that did would
 * deliver only when its fetch resumes — while a stale "at end" let the worker's merge release
 * another partition's later events first (test_survives_outages, about 1 run in 3). Seeking
 * every partition to where it stands drops nothing and duplicates nothing, and makes
 * librdkafka report each end afresh (a seek starts a new fetch version, whose end is new).
 */
static void reseek(bus_consumer_t *c) {
  c->reseek = false;
  if (c->n_parts == 0)
    return;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)c->n_parts);
  if (!list) {
    c->reseek = true; /* try again at the next poll */
    return;
  }
  for (size_t i = 0; i < c->n_parts; i++) {
    struct bus_part *p = &c->parts[i];
    rd_kafka_topic_partition_list_add(list, bus_topic(bus_input_topics[p->topic]), p->partition)
        ->offset = p->next < 0 ? RD_KAFKA_OFFSET_BEGINNING : p->next;
    p->eof = false;
    p->fresh = p->next < 0;
    p->seek_to = p->next;
  }
  rd_kafka_error_t *err = rd_kafka_seek_partitions(c->rk, list, 2000);
  if (err) {
    consumer_log(c, LOG_LVL_WARNING, "re-reading the partitions' ends failed: %s",
                 rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
  }
  for (int i = 0; i < list->cnt; i++)
    if (list->elems[i].err)
      consumer_log(c, LOG_LVL_WARNING, "re-reading the end of %s [%d] failed: %s",
                   list->elems[i].topic, (int)list->elems[i].partition,
                   rd_kafka_err2str(list->elems[i].err));
  rd_kafka_topic_partition_list_destroy(list);
  consumer_log(c, LOG_LVL_NOTICE,
               "a broker connection failed: partition ends are trusted again once re-read");
}

int bus_consumer_poll(bus_consumer_t *c, int timeout_ms, const struct bus_msg **msgs, size_t max,
                      size_t *n, bool *idle) {
  batch_drop_shard(c, -1);
  *msgs = c->msgs;
  *n = 0;
  *idle = idle_now(c);
  if (max == 0) {
    return CANARY_EINVALID; /* nothing would ever serve the rebalances */
  }
  if (grow(&c->raw, &c->cap_raw, max, sizeof *c->raw) != CANARY_OK ||
      grow(&c->msgs, &c->cap_msgs, max, sizeof *c->msgs) != CANARY_OK) {
    return CANARY_ENOMEM;
  }
  *msgs = c->msgs;

  int64_t deadline = bus_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  while (c->n < max) {
    int wait = 0;
    if (c->n == 0) {
      int64_t left = deadline - bus_now_ms();
      wait = left > 0 ? (int)left : 0;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
    if (c->reseek) /* the poll served a callback that saw a connection fail */
      reseek(c);
    if (!m) {
      if (c->n > 0 || wait == 0) {
        break;
      }
      continue;
    }
    bool was_eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    take(c, m);
    if (was_eof && idle_now(c)) {
      break; /* caught up: return what we have at once */
    }
  }

  for (size_t i = 0; i < c->n; i++) {
    const rd_kafka_message_t *m = c->raw[i];
    rd_kafka_timestamp_type_t tstype;
    c->msgs[i] = (struct bus_msg){
        .topic = bus_topic_index(rd_kafka_topic_name(m->rkt)),
        .partition = m->partition,
        .offset = m->offset,
        .key = m->key,
        .key_len = m->key_len,
        .value = m->payload,
        .len = m->len,
        .timestamp_ms = rd_kafka_message_timestamp(m, &tstype),
    };
  }
  *n = c->n;
  *idle = idle_now(c);
  return CANARY_OK;
}

/* ---- positions -------------------------------------------------------------------------- */

int64_t bus_monotonic_ms(void) { return bus_now_ms(); }

bool bus_consumer_at_end(bus_consumer_t *c, int topic, int32_t partition, int64_t since_ms) {
  for (size_t i = 0; i < c->n_parts; i++) {
    struct bus_part *p = &c->parts[i];
    if (p->topic != topic || p->partition != partition)
      continue;
    if (!p->eof || p->eof_ms >= since_ms || p->next < 0)
      return p->eof;
    /* An old end: is there more on the broker than we have taken? */
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        c->rk, bus_topic(bus_input_topics[topic]), partition, &lo, &hi, 1000);
    if (err) {
      consumer_log(c, LOG_LVL_WARNING, "cannot read the end of %s [%d]: %s",
                   bus_topic(bus_input_topics[topic]), (int)partition, rd_kafka_err2str(err));
      return false;
    }
    if (hi > (p->end_at > p->next ? p->end_at : p->next)) {
      p->eof = false; /* there is more: its end is reported again after it */
      return false;
    }
    p->eof_ms = bus_now_ms();
    return true;
  }
  return true; /* not assigned (the topic has fewer partitions): nothing will come from it */
}

int64_t bus_consumer_high_watermark(bus_consumer_t *c, int topic, int32_t partition) {
  if (!part_find(c, topic, partition))
    return -1;
  int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
  if (rd_kafka_get_watermark_offsets(c->rk, bus_topic(bus_input_topics[topic]), partition, &lo,
                                     &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      hi < 0)
    return -1;
  return hi;
}

int bus_consumer_behind(bus_consumer_t *c, int topic, int32_t partition) {
  struct bus_part *p = part_find(c, topic, partition);
  if (!p)
    return 0; /* not assigned: nothing will come from it */
  const char *name = bus_topic(bus_input_topics[topic]);
  int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
  int64_t taken = p->end_at > p->next ? p->end_at : p->next; /* control records: see end_at */
  /* The end the last fetch response carried: no round trip (it only ever grows). */
  if (p->next >= 0 &&
      rd_kafka_get_watermark_offsets(c->rk, name, partition, &lo, &hi) ==
          RD_KAFKA_RESP_ERR_NO_ERROR &&
      hi >= 0 && hi > taken)
    return 1;
  if (p->next >= 0 && hi >= 0)
    return 0; /* taken up to the end the broker last told: the next message is unknown */
  if (p->behind_asked)
    return p->behind_asked > 0 ? 1 : 0;
  /* No fetch has answered since the assignment (or it reads from the beginning, whose offset
   * is not known here): ask the broker, once. */
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(c->rk, name, partition, &lo, &hi, 1000);
  if (err) {
    consumer_log(c, LOG_LVL_WARNING, "cannot read the end of %s [%d]: %s", name, (int)partition,
                 rd_kafka_err2str(err));
    p->behind_asked = -1; /* not asked again before a fetch answers (each try costs 1 s) */
    return -1;
  }
  bool more = p->next >= 0 ? hi > taken : hi > lo;
  p->behind_asked = more ? 1 : -1;
  return more ? 1 : 0;
}

int bus_consumer_seek_shard(bus_consumer_t *c, int shard, const int64_t next[BUS_INPUT_TOPICS]) {
  if (!c) /* a worker without a consumer (canaryctl rebuild): nothing to seek */
    return CANARY_EINVALID;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(BUS_INPUT_TOPICS);
  if (!list)
    return CANARY_ENOMEM;
  for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(list, bus_topic(bus_input_topics[t]), shard);
    tp->offset = next[t] < 0 ? RD_KAFKA_OFFSET_BEGINNING : next[t];
  }
  rd_kafka_error_t *err = rd_kafka_seek_partitions(c->rk, list, 10000);
  int rc = CANARY_OK;
  if (err) {
    consumer_log(c, LOG_LVL_ERR, "seek of shard %d failed: %s", shard, rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
    rc = CANARY_EIO;
  }
  for (int i = 0; rc == CANARY_OK && i < list->cnt; i++)
    if (list->elems[i].err) {
      consumer_log(c, LOG_LVL_ERR, "seek of %s [%d] failed: %s", list->elems[i].topic, shard,
                   rd_kafka_err2str(list->elems[i].err));
      rc = CANARY_EIO;
    }
  rd_kafka_topic_partition_list_destroy(list);
  for (size_t i = 0; i < c->n_parts; i++)
    if (c->parts[i].partition == shard) {
      int64_t to = next[c->parts[i].topic];
      c->parts[i].eof = false;
      c->parts[i].fresh = to < 0; /* from the beginning: its offset is not known here */
      c->parts[i].seek_to = to;
      c->parts[i].next = to;
      c->parts[i].behind_asked = 0;
      c->parts[i].end_at = -1;
    }
  return rc;
}

int bus_consumer_pause(bus_consumer_t *c, bool pause) {
  if (!c->n_parts)
    return CANARY_OK;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)c->n_parts);
  if (!list)
    return CANARY_ENOMEM;
  for (size_t i = 0; i < c->n_parts; i++)
    rd_kafka_topic_partition_list_add(list, bus_topic(bus_input_topics[c->parts[i].topic]),
                                      c->parts[i].partition);
  rd_kafka_resp_err_t err =
      pause ? rd_kafka_pause_partitions(c->rk, list) : rd_kafka_resume_partitions(c->rk, list);
  int rc = CANARY_OK;
  if (err) {
    consumer_log(c, LOG_LVL_ERR, "%s failed: %s", pause ? "pause" : "resume",
                 rd_kafka_err2str(err));
    rc = CANARY_EIO;
  }
  rd_kafka_topic_partition_list_destroy(list);
  return rc;
}
