/*
 * The worker's event log replayed into a scratch schema, for `canaryctl rebuild` (app_rebuild.c).
 *
 * The same code as canaryd's worker decides — worker_apply_one (decoding, dead letters, the
 * signature check, the skew check, one service one live rollout, deadlines, the engine) and
 * worker_commit (rollouts, transitions, offsets, ids, audit, history in one transaction per
 * batch) — on the input topics read from their beginning, each shard up to the offsets the
 * live store says it applied, in the worker's event-time order. Nothing is published: there is
 * no producer, and the rebuilt outbox is marked published at the end (its messages were
 * published when they were first decided).
 */
#ifndef CANARY_APP_WORKER_REBUILD_H
#define CANARY_APP_WORKER_REBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "core/plan.h"
#include "store/store_rebuild.h"

struct worker_rebuild_config {
  const char *brokers;
  const char *conninfo; /* the scratch schema (store_conninfo_schema) */
  const struct plan *plan;
  int64_t max_skew_ms;                    /* as canaryd's --max-skew-ms */
  const struct store_shard_offsets *upto; /* the live shards: each topic-partition's messages
                                            * below next[] are applied (-1: none) */
  size_t n_shards;
  int64_t fire_until_ms; /* then every deadline up to it; INT64_MIN: none */
  int wait_ms;           /* longest wait for Kafka with nothing read */
  /* called about once a second with messages applied so far and how many there are */
  void (*progress)(void *ctx, int64_t done, int64_t total);
  void *progress_ctx;
};

struct worker_rebuild_result {
  int64_t messages, applied, duplicates, dead_letters, decisions, commits;
};

/*
 * Rebuild into the (empty, or freshly recreated) schema cfg->conninfo names: migrations, every
 * shard of cfg->upto claimed and filled. Returns 0, or -1 with the reason in why: Kafka or
 * PostgreSQL unavailable, a partition that starts after offset 0 (Kafka's retention deleted
 * the head of the log: the rebuild cannot be complete) or ends before the live offset (another
 * topic prefix?), a commit that failed.
 */
int worker_rebuild(const struct worker_rebuild_config *cfg, struct worker_rebuild_result *res,
                   char *why, size_t why_len);

#endif
