/* What the consumer and the producer share: logging with context and librdkafka configuration. */
#ifndef CANARY_BUS_INTERNAL_H
#define CANARY_BUS_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "bus/bus.h"

/* Format and send one log line to log (NULL: nothing). */
void bus_logf(log_sink_fn log, void *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A new librdkafka configuration with the defaults every client of ours shares (see bus.c),
 * before the caller's settings and the user's (bus_client_conf(), extra: NULL-terminated
 * name, value pairs, may be NULL), which may override them. The caller owns it.
 */
rd_kafka_conf_t *bus_conf_new(const char *const *extra);

/*
 * Set name=value on conf; on failure log librdkafka's reason and return CANARY_EINVALID.
 */
int bus_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, log_sink_fn log,
                 void *ctx) CANARY_MUSTCHECK;

/*
 * Apply the caller's extra properties (NULL-terminated name, value pairs); a name in fixed[]
 * (NULL-terminated) is refused with CANARY_EINVALID.
 */
int bus_conf_apply(rd_kafka_conf_t *conf, const char *const *extra, const char *const *fixed,
                   log_sink_fn log, void *ctx) CANARY_MUSTCHECK;

/* Index of name in bus_input_topics, or -1. */
int bus_topic_index(const char *name);

/* Milliseconds of a monotonic clock. */
int64_t bus_now_ms(void);

#endif
