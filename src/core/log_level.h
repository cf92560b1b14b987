/*
 * The log vocabulary the shell layers share: one level enum and one sink type, so that the store,
 * the bus and the programs hand their lines to the same function with the same levels. The core
 * itself never logs (it has no I/O); it holds these names because it is the one layer every
 * other may include.
 */
#ifndef CANARY_LOG_LEVEL_H
#define CANARY_LOG_LEVEL_H

/* Levels are syslog(3)'s numbers, which librdkafka reports too: name, number, what is printed. */
#define LOG_LEVEL_MAP(XX)                                                                          \
  XX(ERR, 3, "error")       /* something failed that an operator must look at */                   \
  XX(WARNING, 4, "warning") /* a failure retried on its own: a broker error, PostgreSQL away */    \
  XX(NOTICE, 5, "notice")   /* worth an operator's eye: shards assigned and revoked */             \
  XX(INFO, 6, "info")                                                                              \
  XX(DEBUG, 7, "debug")

enum log_level {
#define XX(name, value, text) LOG_LVL_##name = value,
  LOG_LEVEL_MAP(XX)
#undef XX
};

/* "error", "warning", "notice", "info" or "debug"; any other number is printed as "debug". */
const char *log_level_name(int level);

/*
 * A log sink: msg is one line without a newline that carries its own context (the shard, the
 * topic/partition/offset it is about); level is an enum log_level (or librdkafka's own, the same
 * numbers). ctx is the caller's, handed back untouched. Layers that take a sink accept NULL:
 * nothing is logged.
 */
typedef void (*log_sink_fn)(void *ctx, int level, const char *msg);

#endif
