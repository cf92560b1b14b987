/* The input topics, log formatting and librdkafka configuration shared by consumer and producer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus/bus_internal.h"

const char *const bus_input_topics[BUS_INPUT_TOPICS] = {"canary.deploy", "canary.metrics",
                                                        "canary.commands"};

void bus_logf(bus_log_fn log, void *ctx, int level, const char *fmt, ...) {
  if (!log) {
    return;
  }
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  log(ctx, level, line);
}

int bus_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, bus_log_fn log,
                 void *ctx) {
  char err[512];
  if (!name || !value) {
    bus_logf(log, ctx, BUS_LOG_ERR, "kafka config: property %s has no value",
             name ? name : "(null)");
    return CANARY_EINVALID;
  }
  if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
    bus_logf(log, ctx, BUS_LOG_ERR, "kafka config: %s=%s: %s", name, value, err);
    return CANARY_EINVALID;
  }
  return CANARY_OK;
}

int bus_conf_apply(rd_kafka_conf_t *conf, const char *const *extra, const char *const *fixed,
                   bus_log_fn log, void *ctx) {
  if (!extra) {
    return CANARY_OK;
  }
  for (size_t i = 0; extra[i]; i += 2) {
    for (size_t j = 0; fixed[j]; j++) {
      if (strcmp(extra[i], fixed[j]) == 0) {
        bus_logf(log, ctx, BUS_LOG_ERR,
                 "kafka config: %s is fixed by canaryd (exactly-once recipe) and cannot be set",
                 extra[i]);
        return CANARY_EINVALID;
      }
    }
    int rc = bus_conf_set(conf, extra[i], extra[i + 1], log, ctx);
    if (rc != CANARY_OK) {
      return rc;
    }
  }
  return CANARY_OK;
}

/* The contract's topics, and their Kafka names once the installation's prefix is applied. */
static const char *const contract_topics[] = {"canary.deploy",  "canary.metrics",
                                              "canary.commands", "canary.decisions",
                                              "canary.notifications", "canary.flags",
                                              "canary.dlq"};
#define N_CONTRACT (sizeof contract_topics / sizeof contract_topics[0])
static char prefix[64];
static char prefixed[N_CONTRACT][64 + 32];

void bus_set_topic_prefix(const char *p) {
  snprintf(prefix, sizeof prefix, "%s", p ? p : "");
  for (size_t i = 0; i < N_CONTRACT; i++)
    snprintf(prefixed[i], sizeof prefixed[i], "%s%s", prefix, contract_topics[i]);
}

const char *bus_topic(const char *name) {
  if (!prefixed[0][0])
    bus_set_topic_prefix(NULL); /* not set yet: the prefix is "" */
  for (size_t i = 0; i < N_CONTRACT; i++)
    if (strcmp(name, contract_topics[i]) == 0)
      return prefixed[i];
  return name;
}

int bus_topic_index(const char *kafka_name) {
  size_t n = strlen(prefix);
  if (strncmp(kafka_name, prefix, n) != 0)
    return -1;
  for (int i = 0; i < BUS_INPUT_TOPICS; i++) {
    if (strcmp(kafka_name + n, bus_input_topics[i]) == 0) {
      return i;
    }
  }
  return -1;
}

int64_t bus_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
