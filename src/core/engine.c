/*
 * Routes events to rollouts, remembers event ids (with their content's digest), applies global
 * kill switches, fires deadlines.
 */
#include "core/engine.h"

#include <stdlib.h>
#include <string.h>

int64_t engine_id_epoch_of(int64_t time_ms) {
  int64_t q = time_ms / ENGINE_ID_EPOCH_MS;
  return time_ms % ENGINE_ID_EPOCH_MS < 0 ? q - 1 : q;
}

int engine_init(struct engine *e, const struct plan *plan) {
  memset(e, 0, sizeof *e);
  e->plan = plan;
  e->id_epoch = INT64_MIN;
  flags_init(&e->global, plan);
  return mstore_plan_init(&e->mp, plan, e->error, sizeof e->error) == CANARY_OK ? CANARY_OK
                                                                                : CANARY_EINVALID;
}

void engine_destroy(struct engine *e) {
  for (size_t i = 0; i < e->n_rollouts; i++) {
    free(e->rollouts[i]);
    if (e->metrics[i])
      rollout_metrics_free(e->metrics[i]);
    free(e->metrics[i]);
  }
  free(e->rollouts);
  free(e->metrics);
  free(e->by_id);
  mstore_plan_free(&e->mp);
  idset_free(&e->seen);
  idset_free(&e->seen_old);
  memset(e, 0, sizeof *e);
}

static size_t id_hash(const char *id) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
  for (; *id; id++)
    h = (h ^ (unsigned char)*id) * 0x100000001b3ULL;
  return (size_t)h;
}

/* Index of the rollout with this id, or n_rollouts. */
static size_t index_of(const struct engine *e, const char *id) {
  if (!e->by_id_cap)
    return e->n_rollouts;
  size_t mask = e->by_id_cap - 1;
  for (size_t k = id_hash(id) & mask;; k = (k + 1) & mask) {
    uint32_t slot = e->by_id[k];
    if (!slot)
      return e->n_rollouts;
    if (strcmp(e->rollouts[slot - 1]->id, id) == 0)
      return slot - 1;
  }
}

size_t engine_index(const struct engine *e, const char *id) { return index_of(e, id); }

void engine_prefetch_id(const struct engine *e, uint64_t id_hash) {
  idset_prefetch(&e->seen, id_hash);
  idset_prefetch(&e->seen_old, id_hash);
}

bool engine_seen(const struct engine *e, uint64_t id_hash, uint64_t *digest) {
  return idset_find(&e->seen, id_hash, digest) || idset_find(&e->seen_old, id_hash, digest);
}

/*
 * The id check of admit and apply: true, with *outcome, when ev's id was applied before. The
 * same content again is a duplicate: a redelivery — replays after a crash make them all the
 * time, so they stay silent. So is a seen id whose first content is not known (stored before
 * digests were kept): never a false conflict. Other content under the id is a conflict, which
 * the caller reports; the event is not applied either way. duplicates false (a replay of
 * events already counted) lets the same content through and still catches a conflict.
 */
static bool seen_before(const struct engine *e, const struct event *ev, uint64_t idh,
                        bool duplicates, enum apply_outcome *outcome, char *why, size_t len) {
  uint64_t first = EVENT_DIGEST_UNKNOWN;
  if (!engine_seen(e, idh, &first))
    return false;
  uint64_t now = first == EVENT_DIGEST_UNKNOWN ? first : event_digest(ev);
  if (now == first) {
    if (duplicates)
      *outcome = APPLY_DUPLICATE;
    return duplicates;
  }
  char a[EVENT_DIGEST_HEX_LEN], b[EVENT_DIGEST_HEX_LEN];
  event_digest_hex(first, a);
  event_digest_hex(now, b);
  *outcome = APPLY_CONFLICT;
  canary_why(why, len, 0,
             "id: '%s' was applied before with other content (digest %s first seen, %s this "
             "one): not applied",
             ev->id, a, b);
  return true;
}

static void by_id_put(uint32_t *t, size_t cap, const char *id, size_t i) {
  size_t k = id_hash(id) & (cap - 1);
  while (t[k])
    k = (k + 1) & (cap - 1);
  t[k] = (uint32_t)(i + 1);
}

/* Index rollouts[i] by its id (set by now). Returns CANARY_OK or CANARY_ENOMEM. */
static int by_id_add(struct engine *e, size_t i) {
  if (2 * e->n_rollouts > e->by_id_cap) {
    size_t cap = e->by_id_cap ? 2 * e->by_id_cap : 64;
    while (cap < 2 * e->n_rollouts)
      cap *= 2;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t)
      return CANARY_ENOMEM;
    for (size_t j = 0; j < e->n_rollouts; j++)
      if (j != i)
        by_id_put(t, cap, e->rollouts[j]->id, j);
    free(e->by_id);
    e->by_id = t;
    e->by_id_cap = cap;
  }
  by_id_put(e->by_id, e->by_id_cap, e->rollouts[i]->id, i);
  return CANARY_OK;
}

struct rollout *engine_find(const struct engine *e, const char *id) {
  size_t i = index_of(e, id);
  return i < e->n_rollouts ? e->rollouts[i] : NULL;
}

static struct rollout *add_rollout(struct engine *e) {
  if (e->n_rollouts == e->cap_rollouts) {
    size_t cap = e->cap_rollouts ? e->cap_rollouts * 2 : 16;
    struct rollout **rs = realloc(e->rollouts, cap * sizeof *rs);
    if (!rs)
      return NULL;
    e->rollouts = rs;
    struct rollout_metrics **ms = realloc(e->metrics, cap * sizeof *ms);
    if (!ms)
      return NULL;
    e->metrics = ms;
    e->cap_rollouts = cap;
  }
  struct rollout *r = calloc(1, sizeof *r);
  struct rollout_metrics *m = calloc(1, sizeof *m);
  if (!r || !m || rollout_metrics_init(m, &e->mp) != CANARY_OK) {
    if (m)
      rollout_metrics_free(m);
    free(m);
    free(r);
    return NULL;
  }
  m->ms.cfg.memo = !e->no_memo;
  e->metrics[e->n_rollouts] = m;
  e->rollouts[e->n_rollouts++] = r;
  return r;
}

/* Undo add_rollout (its index entry could not be made). */
static void drop_last(struct engine *e) {
  size_t i = --e->n_rollouts;
  rollout_metrics_free(e->metrics[i]);
  free(e->metrics[i]);
  free(e->rollouts[i]);
}

/* What rollout i steps with: the plan, the clock, the global switches, its metric state. */
static struct step_ctx ctx_for(struct engine *e, size_t i, int64_t now) {
  return (struct step_ctx){
      .plan = e->plan, .now = now, .global = &e->global, .mp = &e->mp, .metrics = e->metrics[i]};
}

int engine_restore(struct engine *e, const struct rollout *r) {
  if (engine_find(e, r->id))
    return CANARY_EEXISTS;
  struct rollout *copy = add_rollout(e);
  if (!copy)
    return CANARY_ENOMEM;
  *copy = *r;
  mstore_learned_dispersion(&e->metrics[e->n_rollouts - 1]->ms, e->plan, copy->service);
  if (by_id_add(e, e->n_rollouts - 1) != CANARY_OK) {
    drop_last(e);
    return CANARY_ENOMEM;
  }
  return CANARY_OK;
}

void engine_restore_global(struct engine *e, const struct flags *global) { e->global = *global; }

void engine_restore_id_epoch(struct engine *e, int64_t epoch) { e->id_epoch = epoch; }

int engine_restore_id(struct engine *e, int64_t epoch, uint64_t id_hash, uint64_t digest) {
  return idset_add_digest(epoch == e->id_epoch ? &e->seen : &e->seen_old, id_hash, digest);
}

/* A flag.set without a rollout: change the global switches, tell every live rollout. */
static int apply_global_flag(struct engine *e, const struct event *ev, int64_t now,
                             struct effects *out, enum apply_outcome *outcome, char *why,
                             size_t len) {
  struct flags next = e->global;
  if (flags_apply(&next, e->plan, ev->flag, ev->value) != CANARY_OK) {
    *outcome = APPLY_REJECTED;
    return canary_why(why, len, CANARY_OK, "flag: '%s' names no cohort of the plan", ev->flag);
  }
  /* Refused by the policy: the switches stay; every live rollout still says so (its step
   * refuses it too), so whoever tried sees the answer wherever they look. */
  if (policy_allows(policy_authorize(&e->plan->policy, ev, NULL, 0)))
    e->global = next;
  for (size_t i = 0; i < e->n_rollouts; i++) {
    struct rollout *r = e->rollouts[i];
    if (rollout_is_terminal(r))
      continue;
    struct step_ctx ctx = ctx_for(e, i, now);
    int rc = rollout_step(r, ev, &ctx, out, why, len);
    if (rc != CANARY_OK)
      return rc; /* a global flag cannot be invalid for one rollout: only ENOMEM gets here */
  }
  return CANARY_OK;
}

const struct rollout *engine_live_of_service(const struct engine *e, const char *service) {
  for (size_t i = e->n_rollouts; i-- > 0;)
    if (!rollout_is_terminal(e->rollouts[i]) && strcmp(e->rollouts[i]->service, service) == 0)
      return e->rollouts[i];
  return NULL;
}

/*
 * One service, one live rollout (docs/ARCHITECTURE.md, "One live rollout per service"): two
 * would publish two traffic splits under the service's key on the compacted canary.flags, and
 * the older would overwrite the newer. A request for a service with a live rollout is refused
 * (dead-lettered with this reason); the person or pipeline decides what happens to the live one.
 */
static bool service_free(const struct engine *e, const struct event *ev, char *why,
                         size_t why_len) {
  const struct rollout *live = engine_live_of_service(e, ev->service);
  if (!live)
    return true;
  canary_why(why, why_len, 0,
             "service: '%s' already has a live rollout, '%s' (%s %s, %s at %s): one service, one "
             "live rollout — roll it back (canaryctl rollback %s) or let it complete, then "
             "request '%s' again",
             ev->service, live->id, live->service, live->version, rollout_state_name(live->state),
             e->plan->stages[live->stage].name, live->id, ev->rollout);
  return false;
}

bool engine_admit(const struct engine *e, const struct event *ev, bool check_seen,
                  enum apply_outcome *outcome, char *why, size_t why_len) {
  *outcome = APPLY_APPLIED;
  if (why && why_len)
    why[0] = '\0';
  if (seen_before(e, ev, idset_hash(ev->id), check_seen, outcome, why, why_len))
    return false;
  if (!event_validate(ev, why, why_len)) {
    *outcome = APPLY_REJECTED;
    return false;
  }
  if (ev->type == EVENT_FLAG_SET && !ev->rollout[0])
    return true;
  bool known = index_of(e, ev->rollout) < e->n_rollouts;
  if (ev->type == EVENT_ROLLOUT_REQUESTED && known) {
    *outcome = APPLY_REJECTED;
    canary_why(why, why_len, 0, "rollout: '%s' already exists", ev->rollout);
    return false;
  }
  if (ev->type == EVENT_ROLLOUT_REQUESTED && !service_free(e, ev, why, why_len)) {
    *outcome = APPLY_REJECTED;
    return false;
  }
  if (ev->type != EVENT_ROLLOUT_REQUESTED && !known) {
    *outcome = APPLY_REJECTED;
    canary_why(why, why_len, 0, "rollout: '%s' is unknown (no rollout.requested)", ev->rollout);
    return false;
  }
  return true;
}

int engine_apply(struct engine *e, const struct event *ev, int64_t now, struct effects *out,
                 enum apply_outcome *outcome, char *why, size_t why_len) {
  *outcome = APPLY_APPLIED;
  if (why && why_len)
    why[0] = '\0';
  uint64_t idh = idset_hash(ev->id); /* once for the lookups and the add */
  if (seen_before(e, ev, idh, true, outcome, why, why_len))
    return CANARY_OK;
  if (!event_validate(ev, why, why_len)) {
    *outcome = APPLY_REJECTED;
    return CANARY_OK;
  }

  int rc;
  struct step_ctx ctx;
  if (ev->type == EVENT_FLAG_SET && !ev->rollout[0]) {
    rc = apply_global_flag(e, ev, now, out, outcome, why, why_len);
  } else if (ev->type == EVENT_ROLLOUT_REQUESTED) {
    if (engine_find(e, ev->rollout)) {
      *outcome = APPLY_REJECTED;
      return canary_why(why, why_len, CANARY_OK, "rollout: '%s' already exists", ev->rollout);
    }
    if (!service_free(e, ev, why, why_len)) {
      *outcome = APPLY_REJECTED;
      return CANARY_OK;
    }
    struct rollout *r = add_rollout(e);
    if (!r)
      return CANARY_ENOMEM;
    rollout_init(r, ev, e->plan);
    mstore_learned_dispersion(&e->metrics[e->n_rollouts - 1]->ms, e->plan, r->service);
    if (by_id_add(e, e->n_rollouts - 1) != CANARY_OK) {
      drop_last(e);
      return CANARY_ENOMEM;
    }
    ctx = ctx_for(e, e->n_rollouts - 1, now);
    rc = rollout_step(r, ev, &ctx, out, why, why_len);
  } else {
    size_t i = index_of(e, ev->rollout);
    if (i == e->n_rollouts) {
      *outcome = APPLY_REJECTED;
      return canary_why(why, why_len, CANARY_OK, "rollout: '%s' is unknown (no rollout.requested)",
                        ev->rollout);
    }
    struct rollout *r = e->rollouts[i];
    ctx = ctx_for(e, i, now);
    rc = rollout_step(r, ev, &ctx, out, why, why_len);
    if (rc == CANARY_EINVALID) {
      *outcome = APPLY_REJECTED;
      return CANARY_OK;
    }
  }
  if (rc != CANARY_OK || *outcome != APPLY_APPLIED)
    return rc;
  /* Ids move on with event time, and only when one is kept: the store tags each id with the
   * epoch it was kept in, so a restarted engine puts it back in the same set. */
  int64_t ep = engine_id_epoch_of(ev->time_ms);
  if (ep > e->id_epoch) {
    idset_free(&e->seen_old);
    if (e->id_epoch != INT64_MIN && ep == e->id_epoch + 1) {
      e->seen_old = e->seen; /* the previous epoch's ids stay one epoch more */
    } else {
      idset_free(&e->seen);
    }
    memset(&e->seen, 0, sizeof e->seen);
    e->id_epoch = ep;
  }
  return idset_add_digest(&e->seen, idh, event_digest(ev));
}

/* The earliest time rollout i needs a tick: its own deadlines and its metric rules'. */
static int64_t next_of(const struct engine *e, size_t i) {
  int64_t t = rollout_next_deadline(e->rollouts[i], e->plan);
  int64_t m = rollout_metrics_next(e->rollouts[i], e->metrics[i]);
  return m < t ? m : t;
}

int64_t engine_rollout_deadline(const struct engine *e, size_t i) {
  return i < e->n_rollouts ? next_of(e, i) : ROLLOUT_NO_DEADLINE;
}

int engine_tick_walk(struct engine *e, int64_t now, struct effects *out,
                     void (*ticked)(void *ctx, size_t i), void *ctx, int64_t *next,
                     size_t *next_index) {
  int64_t best = ROLLOUT_NO_DEADLINE;
  size_t best_i = 0;
  for (size_t i = 0; i < e->n_rollouts; i++) {
    int64_t d = next_of(e, i);
    if (d <= now) {
      if (ticked)
        ticked(ctx, i);
      struct step_ctx sc = ctx_for(e, i, now);
      int rc = rollout_tick(e->rollouts[i], &sc, out);
      if (rc != CANARY_OK)
        return rc;
      d = next_of(e, i); /* a tick changes its own rollout only */
    }
    if (d < best)
      best = d, best_i = i;
  }
  if (next)
    *next = best;
  if (next_index)
    *next_index = best_i;
  return CANARY_OK;
}

int engine_tick(struct engine *e, int64_t now, struct effects *out) {
  return engine_tick_walk(e, now, out, NULL, NULL, NULL, NULL);
}

int64_t engine_next_deadline(const struct engine *e) {
  int64_t best = ROLLOUT_NO_DEADLINE;
  for (size_t i = 0; i < e->n_rollouts; i++) {
    int64_t t = next_of(e, i);
    if (t < best)
      best = t;
  }
  return best;
}

struct rollout_metrics *engine_metrics(const struct engine *e, const char *id) {
  size_t i = index_of(e, id);
  return i < e->n_rollouts ? e->metrics[i] : NULL;
}

int engine_replay_metrics(struct engine *e, const struct event *ev) {
  if (ev->type != EVENT_METRICS && ev->type != EVENT_DIFF_SAMPLES)
    return CANARY_EINVALID;
  if (!event_validate(ev, NULL, 0))
    return CANARY_EINVALID;
  size_t i = index_of(e, ev->rollout);
  if (i == e->n_rollouts || !e->metrics[i] || ev->time_ms < e->rollouts[i]->requested_ms)
    return CANARY_ENOTFOUND;
  int cohort = plan_stage_index(e->plan, ev->cohort);
  if (cohort < 0)
    return CANARY_EINVALID;
  return mstore_ingest(&e->metrics[i]->ms, cohort, ev, NULL, 0);
}
