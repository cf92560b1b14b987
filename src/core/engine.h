/*
 * The engine: every rollout of a plan, the global kill switches and the event-id memory.
 * Routes each event to its rollout, ignores repeated ids and refuses an id reused for other
 * content, fires deadlines. Pure like the rest of core: time comes in as an argument.
 */
#ifndef CANARY_ENGINE_H
#define CANARY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/effect.h"
#include "core/error.h"
#include "core/event.h"
#include "core/idset.h"
#include "core/metric_store.h"
#include "core/plan.h"
#include "core/rollout.h"
#include "core/rollout_metrics.h"

#define ENGINE_ID_EPOCH_MS (24 * 3600 * 1000LL)

/* The id epoch an event time falls in (floor division: times before 1970 too). */
int64_t engine_id_epoch_of(int64_t time_ms);

/* Callers may read the fields; only engine.c writes them (storage hands state back through
 * engine_restore and engine_restore_*), but for no_memo, a test's and a benchmark's switch. */
struct engine {
  const struct plan *plan;          /* borrowed: must outlive the engine */
  struct flags global;              /* kill switches that apply to every rollout */
  struct rollout **rollouts;        /* in order of creation */
  struct rollout_metrics **metrics; /* metrics[i] belongs to rollouts[i] */
  size_t n_rollouts, cap_rollouts;
  /* rollouts by id: open addressing over index + 1 (0 free), at most half full; every event
   * looks its rollout up, and a fleet has thousands */
  uint32_t *by_id;
  size_t by_id_cap;
  /* Ids of the events applied, each with its content's digest, for as long as a repeat can
   * come: the current id epoch's and the one before (ENGINE_ID_EPOCH_MS of event time each), so
   * memory and the event_ids table stay bounded. A repeat is recognised for at least one epoch
   * after the first, at most two. */
  struct idset seen, seen_old;
  int64_t id_epoch;      /* epoch of the newest id kept; INT64_MIN: none yet */
  struct mstore_plan mp; /* the plan's metric expressions, compiled once */
  bool no_memo;          /* tests: evaluate every expression afresh (struct mstore_memo);
                              * set before the first rollout */
  char error[512];       /* why engine_init failed */
};

/* Outcome of engine_apply() besides its return code. */
enum apply_outcome {
  APPLY_APPLIED,   /* the event was applied (it may still have decided nothing) */
  APPLY_DUPLICATE, /* the id was seen before with the same content (or content not known):
                    * a redelivery, nothing changed */
  APPLY_REJECTED,  /* invalid for the current state of the world: nothing changed, why says */
  APPLY_CONFLICT   /* the id was seen before with other content (event_digest): nothing
                    * changed, why names the id and both digests */
};

/*
 * Returns CANARY_OK, or CANARY_EINVALID when a metric expression of the plan does not compile
 * (e->error says which and where; engine_destroy() is still safe).
 */
int engine_init(struct engine *e, const struct plan *plan) CANARY_MUSTCHECK;
void engine_destroy(struct engine *e);

/*
 * Apply ev at now. Deadlines due before now are NOT fired here: call engine_tick() first.
 * Returns CANARY_OK (see *outcome), or CANARY_ENOMEM. A rejected event (unknown rollout,
 * a second rollout.requested for an id, an unknown cohort, ...) sets *outcome = APPLY_REJECTED
 * and explains in why; its id is not remembered, so a corrected event can follow. An applied
 * event's id is remembered with event_digest(ev). An id seen before is APPLY_DUPLICATE when
 * its digest is the one remembered (or none is: an id stored before digests were kept), and
 * APPLY_CONFLICT otherwise — never applied either way, and the first digest stays.
 */
int engine_apply(struct engine *e, const struct event *ev, int64_t now, struct effects *out,
                 enum apply_outcome *outcome, char *why, size_t why_len) CANARY_MUSTCHECK;

/* The live (neither completed nor rolled back) rollout of service in this engine, or NULL. A
 * rollout.requested for a service that has one is rejected (one service, one live rollout). */
const struct rollout *engine_live_of_service(const struct engine *e, const char *service);

/*
 * Whether engine_apply would take ev past its first checks — the id not seen, the event valid,
 * its rollout known (or created by it) — without changing anything. An event that does not
 * pass must not move anyone's clock: the caller fires deadlines up to an event's time only
 * after this says yes (a rejected event dated a year ahead would otherwise halt every rollout
 * of its partition at their maxima). False with *outcome APPLY_DUPLICATE, APPLY_CONFLICT or
 * APPLY_REJECTED (why says) otherwise. check_seen false is a replay of events already counted:
 * a seen id is no duplicate there, but a seen id with other content is still APPLY_CONFLICT
 * (that copy was refused the first time; the copy applied is the one whose digest was kept).
 */
bool engine_admit(const struct engine *e, const struct event *ev, bool check_seen,
                  enum apply_outcome *outcome, char *why, size_t why_len);

/* Fire every deadline due at or before now, rollout by rollout in creation order. */
int engine_tick(struct engine *e, int64_t now, struct effects *out) CANARY_MUSTCHECK;

/*
 * engine_tick, with what a caller keeping its own schedule needs from the same walk: ticked(ctx,
 * i) for each rollout about to be ticked (may be NULL), and the earliest deadline after the
 * ticks in *next, held by rollouts[*next_index] (ROLLOUT_NO_DEADLINE: none; either may be NULL).
 * One walk over the rollouts instead of three.
 */
int engine_tick_walk(struct engine *e, int64_t now, struct effects *out,
                     void (*ticked)(void *ctx, size_t i), void *ctx, int64_t *next,
                     size_t *next_index) CANARY_MUSTCHECK;

/* The earliest deadline of any rollout, or ROLLOUT_NO_DEADLINE. */
int64_t engine_next_deadline(const struct engine *e);

/* When rollouts[i] needs its next tick (its own deadlines and its metric rules'). */
int64_t engine_rollout_deadline(const struct engine *e, size_t i);

/* A hint: the event with this idset_hash() is about to be applied (its duplicate check is a
 * cache miss in a large set; start it early). */
void engine_prefetch_id(const struct engine *e, uint64_t id_hash);

/*
 * True when the id with this idset_hash() is remembered (in either epoch's set); then *digest
 * is the digest of the content applied under it (EVENT_DIGEST_UNKNOWN: an id stored before
 * digests were kept). The worker stores the pair with the batch.
 */
bool engine_seen(const struct engine *e, uint64_t id_hash, uint64_t *digest);

/* The rollout with this id, or NULL. */
struct rollout *engine_find(const struct engine *e, const char *id);

/* The index in rollouts[] of the rollout with this id, or n_rollouts. */
size_t engine_index(const struct engine *e, const char *id);

/*
 * Add a rollout restored from storage (the engine copies it). Returns CANARY_EEXISTS if the id
 * is taken, CANARY_ENOMEM.
 */
int engine_restore(struct engine *e, const struct rollout *r) CANARY_MUSTCHECK;

/*
 * The rest of what a shard's storage gives back, for the store to hand over while it loads
 * (store_load_shard): only engine.c writes the engine's fields.
 *
 * engine_restore_global sets the global kill switches. engine_restore_id_epoch sets the id epoch
 * of the newest id kept; engine_restore_id then puts an id (idset_hash) with its content's digest
 * (EVENT_DIGEST_UNKNOWN: stored before digests were kept) back in the set it was kept in: the
 * newest when epoch is the engine's id epoch, the one before otherwise (the store reads only
 * those two epochs). engine_restore_id returns CANARY_OK or CANARY_ENOMEM.
 */
void engine_restore_global(struct engine *e, const struct flags *global);
void engine_restore_id_epoch(struct engine *e, int64_t epoch);
int engine_restore_id(struct engine *e, int64_t epoch, uint64_t id_hash,
                      uint64_t digest) CANARY_MUSTCHECK;

/* The metric state (windows, for: states) of rollout id, or NULL when there is no such rollout. */
struct rollout_metrics *engine_metrics(const struct engine *e, const char *id);

/*
 * Replay a metrics or diff.samples event that was applied before, into its rollout's windows
 * only: nothing is decided or evaluated, the rollout value and the id memory do not change. A
 * restarted worker rebuilds the windows this way from the metrics partition (the windows are
 * a function of the metric events in partition order; see docs/ARCHITECTURE.md). Events the
 * apply refused are refused again: an invalid one, one for an unknown rollout, or one older
 * than the rollout's request (it came before the rollout existed). Returns CANARY_OK when
 * ingested, CANARY_ENOTFOUND or CANARY_EINVALID when not, CANARY_ENOMEM.
 */
int engine_replay_metrics(struct engine *e, const struct event *ev) CANARY_MUSTCHECK;

#endif
