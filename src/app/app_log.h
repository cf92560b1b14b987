/*
 * Log lines for the daemon: one line each, to stderr, as text or JSON (for Loki/Elasticsearch),
 * with the context that makes them useful: the rollout, or topic/partition/offset.
 * The level is checked before anything is formatted.
 */
#ifndef CANARY_APP_LOG_H
#define CANARY_APP_LOG_H

#include <stdbool.h>

#include "core/log_level.h" /* enum log_level, log_sink_fn: what the store and the bus log with */

/* Configure once at start: the highest level printed, JSON or text, and the process name. */
void log_setup(int max_level, bool json, const char *component);
bool log_enabled(int level);

/* printf-style message; ctx is "key=value ..." context (may be NULL), e.g. "shard=2". */
void log_msg(int level, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The sink (log_sink_fn) given to the store and the bus: their messages carry their own context. */
void log_callback(void *ctx, int level, const char *msg);

#endif
