/*
 * Where `canaryd notify` delivers, and how: Slack incoming webhooks, PagerDuty Events API v2,
 * Atlassian Statuspage's incident API and SMTP, all through libcurl. Endpoints and secrets come
 * from the environment (or files it names), never from the plan.
 */
#ifndef CANARY_NOTIFY_SINK_H
#define CANARY_NOTIFY_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/effect.h"

#define NOTIFY_SINK_MAP(XX)                                                                        \
  XX(SLACK, "slack")           /* #releases: a Block Kit message */                                \
  XX(PAGERDUTY, "pagerduty")   /* on-call: trigger, resolve */                                     \
  XX(STATUSPAGE, "statuspage") /* status page: create, resolve */                                  \
  XX(SMTP, "smtp")             /* executive briefing: e-mail */

enum notify_sink {
#define XX(name, wire) NOTIFY_SINK_##name,
  NOTIFY_SINK_MAP(XX)
#undef XX
      NOTIFY_SINK_COUNT
};
const char *notify_sink_name(enum notify_sink s);

/* The endpoints; NULL or "" = that sink is not configured. Strings owned by the struct. */
struct notify_endpoints {
  char *slack_url;
  char *pagerduty_url, *pagerduty_key;
  char *statuspage_url, *statuspage_page, *statuspage_key;
  char *smtp_url, *smtp_from, *smtp_to, *smtp_user, *smtp_password;
  long timeout_ms; /* each request as a whole */
};

/*
 * Fill ep from the environment: CANARY_SLACK_WEBHOOK_URL, CANARY_PAGERDUTY_URL,
 * CANARY_PAGERDUTY_ROUTING_KEY, CANARY_STATUSPAGE_URL, CANARY_STATUSPAGE_PAGE_ID,
 * CANARY_STATUSPAGE_API_KEY, CANARY_SMTP_URL, CANARY_SMTP_FROM, CANARY_SMTP_TO,
 * CANARY_SMTP_USER, CANARY_SMTP_PASSWORD. Each may instead be given as NAME_FILE, a file whose
 * content (trailing newline dropped) is the value — for secrets mounted as files. Returns false
 * with why when a file cannot be read or both NAME and NAME_FILE are set.
 */
bool notify_endpoints_from_env(struct notify_endpoints *ep, char *why, size_t why_len);
void notify_endpoints_free(struct notify_endpoints *ep);
/* Whether sink s is configured; when not, *needs names the variable that is missing. */
bool notify_sink_configured(const struct notify_endpoints *ep, enum notify_sink s,
                            const char **needs);

/* What a sink is asked to do with a notification. */
enum notify_op {
  NOTIFY_OP_POST,    /* slack: post; smtp: send */
  NOTIFY_OP_TRIGGER, /* pagerduty: trigger (dedup_key = the rollout) */
  NOTIFY_OP_RESOLVE, /* pagerduty: resolve; statuspage: resolve incident remote_id */
  NOTIFY_OP_CREATE,  /* statuspage: create an incident */
  NOTIFY_OP_UPDATE,  /* statuspage: add an update to incident remote_id */
};

enum notify_verdict {
  NOTIFY_DELIVERED, /* the sink took it */
  NOTIFY_RETRY,     /* failed for now: 5xx, 429, 408, timeout, connection; try again */
  NOTIFY_REFUSED,   /* the sink refuses it (other 4xx, SMTP 5xx): never again */
};

struct notify_result {
  enum notify_verdict verdict;
  long status;            /* HTTP status or SMTP reply code; 0 when none came */
  int64_t retry_after_ms; /* from Retry-After, -1 when absent */
  char detail[320];       /* what happened, for the record and the dead letter */
  char remote_id[128];    /* statuspage create: the incident's id */
};

/* One notification as the relay read it: the record and its Slack payload. */
struct notify_item {
  struct notification n;
  const char *slack;               /* the Block Kit JSON of the message */
  const struct decision *decision; /* the decision it reports (its evidence), or NULL */
};

/* Deliver it (one attempt). Never blocks longer than ep->timeout_ms (plus DNS). */
void notify_deliver(const struct notify_endpoints *ep, enum notify_sink sink, enum notify_op op,
                    const struct notify_item *it, const char *remote_id, struct notify_result *res);

/* The request bodies, for tests and people: written into out (a jbuf). */
struct jbuf;
void notify_slack_body(const struct notify_item *it, struct jbuf *out);
void notify_pagerduty_body(const char *routing_key, enum notify_op op, const struct notify_item *it,
                           struct jbuf *out);
void notify_statuspage_body(enum notify_op op, const struct notify_item *it, struct jbuf *out);
void notify_mail_message(const struct notify_endpoints *ep, const char *to,
                         const struct notify_item *it, int64_t now_ms, struct jbuf *out);

#endif
