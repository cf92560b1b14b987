/*
 * Log lines for the daemon: one line each, to stderr, as text or JSON (for Loki/Elasticsearch),
 * with the context that makes them useful: the rollout, or topic/partition/offset.
 * The level is checked before anything is formatted.
 */
#ifndef CANARY_APP_LOG_H
#define CANARY_APP_LOG_H

#include <stdbool.h>

/* syslog(3) priorities, as the store and bus callbacks use. */
enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_NOTICE = 5, LOG_LVL_INFO = 6,
                 LOG_LVL_DEBUG = 7 };

/* Configure once at start: the highest level printed, JSON or text, and the process name. */
void log_setup(int max_level, bool json, const char *component);
bool log_enabled(int level);

/* printf-style message; ctx is "key=value ..." context (may be NULL), e.g. "shard=2". */
void log_msg(int level, const char *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Adapter with the store/bus callback signature (their messages carry their own context). */
void log_callback(void *ctx, int level, const char *msg);

#endif
