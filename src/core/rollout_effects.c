/*
 * What a rollout step emits: decisions (numbered by the rollout), notifications to the plan's
 * channels, and the traffic split — with the exposure the split carries: the kill switches
 * (flags_*), the cohort exposed now and its share of users.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/rollout.h"
#include "core/rollout_internal.h"

/* ---- exposure and kill switches ------------------------------------------------------------ */

void flags_init(struct flags *f, const struct plan *plan) {
  memset(f, 0, sizeof *f);
  f->canary_enabled = plan->canary_enabled;
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    f->cohort_enabled[i] = true;
}

int flags_apply(struct flags *f, const struct plan *plan, const char *flag, bool value) {
  static const char prefix[] = "canary.cohort.";
  static const char suffix[] = ".enabled";
  if (strcmp(flag, "system.canary.enabled") == 0) {
    f->canary_enabled = value;
    return CANARY_OK;
  }
  size_t n = strlen(flag), p = sizeof prefix - 1, s = sizeof suffix - 1;
  if (n <= p + s || strncmp(flag, prefix, p) || strcmp(flag + n - s, suffix))
    return CANARY_EINVALID;
  char cohort[PLAN_NAME_MAX];
  if (n - p - s >= sizeof cohort)
    return CANARY_EINVALID;
  memcpy(cohort, flag + p, n - p - s);
  cohort[n - p - s] = '\0';
  int i = plan_stage_index(plan, cohort);
  if (i < 0)
    return CANARY_EINVALID;
  f->cohort_enabled[i] = value;
  return CANARY_OK;
}

/* The stage whose cohort is exposed now: a pending rollout still serves the stage before. */
int rollout_exposed_stage(const struct rollout *r, const struct plan *plan) {
  switch (r->state) {
  case ROLLOUT_COMPLETED:
    return plan->n_stages - 1;
  case ROLLOUT_ROLLED_BACK:
    return -1;
  case ROLLOUT_PENDING:
    return r->stage - 1;
  case ROLLOUT_RUNNING:
    return r->stage;
  case ROLLOUT_PAUSED:
    return r->resume_to == ROLLOUT_PENDING ? r->stage - 1 : r->stage;
  case ROLLOUT_STATE_COUNT:
    break;
  }
  return -1;
}

/*
 * The global switches as they apply to r. They govern canaries in flight; a completed rollout is
 * the release. The engine does not step completed rollouts on a global flag.set (turning every
 * finished release back to its baseline is not what "disable the canary" means), so the global
 * switches must not reach them later either: any unrelated event would republish the split at
 * 0% with no decision behind it. A completed rollout's own flags still apply.
 */
static const struct flags *global_for(const struct rollout *r, const struct flags *global,
                                      struct flags *all_on) {
  if (r->state != ROLLOUT_COMPLETED)
    return global;
  all_on->canary_enabled = true;
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    all_on->cohort_enabled[i] = true;
  return all_on;
}

/* Cohort s's cumulative share of users: the plan's, but the last one keeps the holdback on the
 * old version while the watch after GA goes on. */
double rollout_cohort_percent(const struct rollout *r, const struct plan *plan, int s) {
  double p = plan->stages[s].traffic_percent;
  if (r->watching && s == plan->n_stages - 1 && plan->holdback_percent > 0)
    p -= plan->holdback_percent;
  return p;
}

double rollout_exposure(const struct rollout *r, const struct plan *plan,
                        const struct flags *global) {
  struct flags all_on;
  global = global_for(r, global, &all_on);
  int s = rollout_exposed_stage(r, plan);
  if (s < 0 || r->breaker_open || !global->canary_enabled || !r->flags.canary_enabled)
    return 0;
  if (!global->cohort_enabled[s] || !r->flags.cohort_enabled[s])
    return 0;
  return rollout_cohort_percent(r, plan, s);
}

/* ---- effects ------------------------------------------------------------------------------- */

static struct effect *push(struct run *u, enum effect_kind kind) {
  struct effect *e = effects_push(u->out, kind);
  if (!e)
    u->err = CANARY_ENOMEM;
  return e;
}

/*
 * The latest decision of this run. The effect list is a growable array: every push may move it
 * (realloc), so a decision pointer is good only until the next notification or traffic split is
 * pushed. Code that still needs the decision after a push asks for it again here.
 */
struct decision *run_latest(struct run *u) {
  return u->dec_at == SIZE_MAX ? &u->spare : &u->out->items[u->dec_at].u.decision;
}

void text_cut_at_word(char *s, size_t cap, int n) {
  if (n < 0 || (size_t)n < cap || cap < 8)
    return;
  size_t end = cap - 4; /* room for "..." and the NUL */
  while (end > cap / 2 && s[end] != ' ')
    end--;
  if (s[end] != ' ')
    end = cap - 4; /* one very long word: cut it */
  while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == ';' || s[end - 1] == ','))
    end--;
  memcpy(s + end, "...", 4);
}

/*
 * Record a decision about the rollout as it is now (state and stage already changed).
 * from is the stage index it came from (-1: none). Never returns NULL.
 */
__attribute__((format(printf, 6, 7))) struct decision *
run_decide(struct run *u, enum decision_action action, int from, const char *rule,
           const char *actor, const char *fmt, ...) {
  struct rollout *r = u->r;
  struct effect *e = push(u, EFFECT_DECISION);
  struct decision *d = e ? &e->u.decision : &u->spare;
  u->dec_at = e ? (size_t)(e - u->out->items) : SIZE_MAX;
  if (!e)
    memset(d, 0, sizeof *d);
  d->seq = ++r->seq;
  snprintf(d->id, sizeof d->id, "%s/%" PRId64, r->id, d->seq);
  snprintf(d->rollout, sizeof d->rollout, "%s", r->id);
  d->time_ms = u->now;
  d->action = action;
  snprintf(d->from_stage, sizeof d->from_stage, "%s", stage_name(u->plan, from));
  snprintf(d->to_stage, sizeof d->to_stage, "%s", stage_name(u->plan, r->stage));
  d->state = r->state;
  snprintf(d->rule, sizeof d->rule, "%s", rule ? rule : "");
  snprintf(d->actor, sizeof d->actor, "%s", actor && actor[0] ? actor : ACTOR_SELF);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(d->reason, sizeof d->reason, fmt, ap);
  va_end(ap);
  text_cut_at_word(d->reason, sizeof d->reason, n);
  decision_add_str(d, "trigger", u->ev ? u->ev->id : "deadline");
  return d;
}

static const char *channel_target(const struct plan *p, enum notify_channel ch) {
  switch (ch) {
  case NOTIFY_RELEASES:
    return p->notify.releases;
  case NOTIFY_ONCALL:
    return p->notify.oncall;
  case NOTIFY_STATUS_PAGE:
    return p->notify.status_page;
  case NOTIFY_EXECUTIVE:
    return p->notify.executive;
  case NOTIFY_CHANNEL_COUNT:
    break;
  }
  return "";
}

__attribute__((format(printf, 6, 7))) void run_notify(struct run *u, enum notify_channel ch,
                                                      enum notify_severity sev,
                                                      const struct decision *d, const char *title,
                                                      const char *fmt, ...) {
  if (!channel_target(u->plan, ch)[0])
    return; /* the plan names no address for this channel */
  /* d and the arguments (often d->reason) point into the effect list, which the push below may
   * move: take what is needed from them first. */
  char text[sizeof((struct notification *)0)->text];
  char decision_id[sizeof d->id];
  snprintf(decision_id, sizeof decision_id, "%s", d ? d->id : "");
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  text_cut_at_word(text, sizeof text, len);
  struct effect *e = push(u, EFFECT_NOTIFICATION);
  if (!e)
    return;
  struct notification *n = &e->u.notification;
  struct rollout *r = u->r;
  snprintf(n->id, sizeof n->id, "%s/n%" PRId64, r->id, ++r->notify_seq);
  snprintf(n->rollout, sizeof n->rollout, "%s", r->id);
  n->time_ms = u->now;
  n->channel = ch;
  snprintf(n->target, sizeof n->target, "%s", channel_target(u->plan, ch));
  n->severity = sev;
  snprintf(n->title, sizeof n->title, "%s", title);
  snprintf(n->decision_id, sizeof n->decision_id, "%s", decision_id);
  snprintf(n->text, sizeof n->text, "%s", text);
  if (ch == NOTIFY_ONCALL && sev != NOTIFY_SEV_INFO)
    r->paged = true; /* owed an all-clear when the rollout resumes or is rolled back */
}

/* Tell #releases about a decision, in the words of its reason. */
void run_announce(struct run *u, const struct decision *d, enum notify_severity sev) {
  char title[PLAN_TEXT_MAX];
  snprintf(title, sizeof title, "%s %s: %s%s%s", u->r->service, u->r->version,
           decision_action_name(d->action), d->to_stage[0] ? " at " : "", d->to_stage);
  run_notify(u, NOTIFY_RELEASES, sev, d, title, "%s", d->reason);
}

static unsigned traffic_signature(const struct rollout *r, const struct plan *plan,
                                  const struct flags *g) {
  struct flags all_on;
  g = global_for(r, g, &all_on);
  unsigned sig = (unsigned)(rollout_exposed_stage(r, plan) + 1) << 20;
  sig |= (unsigned)(g->canary_enabled && r->flags.canary_enabled) << 0;
  sig |= (unsigned)r->breaker_open << 1;
  for (int i = 0; i < plan->n_stages; i++)
    sig |= (unsigned)(g->cohort_enabled[i] && r->flags.cohort_enabled[i]) << (2 + i);
  return sig;
}

/* Publish the traffic split when anything clusters must apply has changed. */
void run_publish_traffic(struct run *u) {
  struct rollout *r = u->r;
  double exposure = rollout_exposure(r, u->plan, u->global);
  unsigned sig = traffic_signature(r, u->plan, u->global);
  if (exposure == r->exposure_percent && sig == r->traffic_sig)
    return;
  struct effect *e = push(u, EFFECT_TRAFFIC);
  if (!e)
    return;
  if (exposure != r->exposure_percent)
    r->exposure_changed_ms = u->now;
  r->exposure_percent = exposure;
  r->traffic_sig = sig;
  struct flags all_on;
  const struct flags *g = global_for(r, u->global, &all_on);
  struct traffic_split *t = &e->u.traffic;
  snprintf(t->id, sizeof t->id, "%s/f%" PRId64, r->id, ++r->traffic_seq);
  snprintf(t->rollout, sizeof t->rollout, "%s", r->id);
  snprintf(t->service, sizeof t->service, "%s", r->service);
  snprintf(t->version, sizeof t->version, "%s", r->version);
  snprintf(t->baseline_version, sizeof t->baseline_version, "%s", r->baseline_version);
  t->time_ms = u->now;
  t->exposure_percent = exposure;
  t->canary_enabled = g->canary_enabled && r->flags.canary_enabled;
  t->breaker_open = r->breaker_open;
  int s = rollout_exposed_stage(r, u->plan);
  t->n_cohorts = u->plan->n_stages;
  for (int i = 0; i < u->plan->n_stages; i++) {
    struct traffic_cohort *c = &t->cohorts[i];
    snprintf(c->name, sizeof c->name, "%s", u->plan->stages[i].name);
    c->percent = rollout_cohort_percent(r, u->plan, i);
    c->kill = !(g->cohort_enabled[i] && r->flags.cohort_enabled[i]);
    c->enabled = exposure > 0 && i <= s && !c->kill;
    const struct stage *st = &u->plan->stages[i];
    c->n_segments = st->n_segments;
    for (int k = 0; k < st->n_segments; k++)
      snprintf(c->segments[k], sizeof c->segments[k], "%s", st->segments[k]);
    c->n_features = st->n_features;
    for (int k = 0; k < st->n_features; k++)
      snprintf(c->features[k], sizeof c->features[k], "%s", st->features[k]);
  }
  snprintf(t->salt, sizeof t->salt, "%s", r->id);
  t->buckets = u->plan->buckets;
}
