/*
 * `canaryd notify`: the relay from canary.notifications to people. A consumer group of its own
 * reads the topic; each notification goes to the sink of its channel (#releases: Slack;
 * on-call: PagerDuty; status page: Statuspage; executive: e-mail), at most once per
 * notification id and sink — every attempt is recorded in PostgreSQL before its request leaves.
 * What a sink refuses, what keeps failing and what a crash left with an unknown outcome goes to
 * canary.dlq with the reason.
 */
#ifndef CANARY_NOTIFY_H
#define CANARY_NOTIFY_H

#include <signal.h>

#include "app/notify_sink.h"

struct notify_config {
  const char *brokers, *conninfo;
  const char *group;      /* consumer group (canaryd-notify) */
  const char *client_id;  /* this relay's name */
  int max_attempts;       /* per delivery, before it is dead-lettered (8) */
  int backoff_ms;         /* after the first failure (500), doubling ... */
  int backoff_max_ms;     /* ... up to this (30000) */
  int retry_after_max_ms; /* the longest Retry-After obeyed (300000) */
  int64_t retention_s;    /* settled deliveries are deleted this long after (15 days; 0: never) */
  const char *const *kafka_conf; /* --kafka-conf: extra consumer properties, or NULL */
  unsigned sinks;                /* the sinks this relay delivers to: bit 1 << enum notify_sink */
  struct notify_endpoints ep;
};

/* How often the relay prunes its record (store_notify_prune), and how much at a time. */
#define NOTIFY_PRUNE_EVERY_MS (10 * 60 * 1000)
#define NOTIFY_PRUNE_BATCH 10000

/* The defaults above, every sink; endpoints empty. */
void notify_config_defaults(struct notify_config *cfg);

/* Run until *running is 0. Returns 0 after a clean stop, -1 when it could not start (logged). */
int notify_run(struct notify_config *cfg, volatile sig_atomic_t *running);

/*
 * Parse a --sink list ("slack,pagerduty", "all") into *sinks (bits); false with why when a name
 * is not a sink.
 */
bool notify_parse_sinks(const char *list, unsigned *sinks, char *why, size_t why_len);

/* Which sink a notification goes to, and what it asks of it before the sink's state is known:
 * all-clears (severity info on the oncall and status_page channels) resolve. */
enum notify_sink notify_route(const struct notification *n, bool *all_clear);

/*
 * How long to wait after failed attempt number `attempt` (1, 2, ...): backoff_ms doubling up to
 * backoff_max_ms, or the endpoint's Retry-After (retry_after_ms, -1 when none) when it is longer,
 * up to retry_after_max_ms.
 */
int64_t notify_backoff_ms(const struct notify_config *cfg, int attempt, int64_t retry_after_ms);

#endif
