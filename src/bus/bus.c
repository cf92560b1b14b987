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

int bus_topic_index(const char *name) {
  for (int i = 0; i < BUS_INPUT_TOPICS; i++) {
    if (strcmp(name, bus_input_topics[i]) == 0) {
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
