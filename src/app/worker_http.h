/*
 * canaryd's HTTP endpoint (--http-listen): /metrics (Prometheus text format 0.0.4), /healthz
 * and /readyz, served by libmicrohttpd from a thread of its own. The worker loop never waits on
 * it: once a second it copies its counters into a snapshot (worker_http_publish, a memcpy under
 * a mutex); a scrape formats the latest snapshot (src/core/prom.c).
 */
#ifndef CANARY_APP_WORKER_HTTP_H
#define CANARY_APP_WORKER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/effect.h"
#include "core/plan.h"
#include "core/prom.h"
#include "core/rollout.h"

/* At most this many rollouts get per-rollout series (their labels name the rollout, so each
 * one is a handful of series): live ones first, newest first. The rest are counted in
 * canaryd_rollouts_not_exported. Bounds a scrape at about 100 x (4 + 3 x rules) series. */
#define WORKER_HTTP_MAX_ROLLOUTS 100
/* Partitions whose lag is exported: the worker's shards x the three input topics. */
#define WORKER_HTTP_MAX_LAGS (256 * 3)

struct wh_lag {
  const char *topic; /* the contract name (canary.deploy, ...): static storage */
  int32_t partition;
  int64_t lag; /* messages on the broker not yet applied; -1 unknown */
};

struct wh_reading {
  char name[PLAN_NAME_MAX];
  int8_t kind;                        /* enum reading_kind */
  int8_t state;                       /* enum expr_for_state: 2 firing */
  double canary, baseline, threshold; /* NaN: none */
};

struct wh_rollout {
  char id[EVENT_NAME_MAX], service[EVENT_NAME_MAX], version[EVENT_NAME_MAX];
  enum rollout_state state;
  int stage;
  double exposure;
  int n_readings;
  struct wh_reading readings[ROLLOUT_MAX_READINGS];
};

/* Everything /metrics and /readyz say, as of taken_ms. */
struct worker_snapshot {
  int64_t taken_ms;
  bool started; /* connected, migrated, joined the group */
  bool ready;   /* and every shard it owns is loaded and has caught up since its assignment */
  bool frozen;  /* canaryctl freeze: it applies nothing (worker.c check_freeze) */
  int shards;
  int64_t applied, duplicates, conflicts, dead_letters, replayed, commits, commit_failures;
  int64_t decisions[DECISION_ACTION_COUNT];
  uint64_t rule_evaluations;
  struct prom_hist batch_events, commit_seconds, apply_seconds;
  bool relay; /* this worker relays the outbox */
  int64_t published, set_aside, relay_errors;
  int64_t backlog_rows;      /* -1: not measured yet */
  double backlog_oldest_s;   /* age of the oldest unpublished row */
  int64_t relay_progress_ms; /* the last time the relay published or found nothing to do */
  int64_t by_state[ROLLOUT_STATE_COUNT];
  size_t n_lags;
  struct wh_lag lags[WORKER_HTTP_MAX_LAGS];
  size_t n_rollouts;     /* exported */
  size_t rollouts_total; /* in memory */
  struct wh_rollout rollouts[WORKER_HTTP_MAX_ROLLOUTS];
};

/* The histograms' bounds, set up in an empty snapshot's counters (worker_metrics.c). */
void worker_snapshot_hists_init(struct prom_hist *batch_events, struct prom_hist *commit_seconds,
                                struct prom_hist *apply_seconds);

typedef struct worker_http worker_http_t;

/*
 * Parse "ADDR:PORT" ("127.0.0.1:9464", "[::1]:9464", ":9464" for every IPv4 address). False
 * with why on anything else (a port outside 1-65535, a host name: give an address).
 */
bool worker_http_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len,
                              char *why, size_t why_len);

/*
 * Bind listen and start serving. The bind is ours (not libmicrohttpd's), so that a busy port
 * says so: "127.0.0.1:9464: Address already in use". Returns 0, or -1 with why.
 */
int worker_http_start(const char *where, const char *version, worker_http_t **out, char *why,
                      size_t why_len);

/* Replace the snapshot the endpoints answer from (copied; brief lock). */
void worker_http_publish(worker_http_t *h, const struct worker_snapshot *snap);

/* Stop serving (waits for requests in progress) and free. NULL is ignored. */
void worker_http_stop(worker_http_t *h);

/* The /metrics text of a snapshot; the process' memory is read here (/proc/self/statm). */
void worker_http_format(const struct worker_snapshot *s, const char *version, int64_t start_ms,
                        struct prom_buf *out);

#endif
