/*
 * The rollout checklist (the seed's Day 0 - Day 4+): which of the plan's items are ticked, by
 * what, and what is still open. Items that an event or a decision proves are ticked here with
 * that event or decision as their evidence; the others by a person (the check command). The
 * last stage's entry gate waits for the required ones (rollout_gate.c, run_gate_passes).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/enum_names.h"
#include "core/rollout_internal.h"

ENUM_NAMES(checked_by, checked_by, CHECKED_BY_MAP, CHECKED_BY_COUNT)
ENUM_PARSE(checked_by, checked_by, CHECKED_BY_COUNT)

const struct rollout_checked *rollout_checked_find(const struct rollout *r, const char *id) {
  for (int i = 0; i < r->n_checked && i < ROLLOUT_MAX_CHECKED; i++)
    if (strcmp(r->checked[i].item, id) == 0)
      return &r->checked[i];
  return NULL;
}

int rollout_checklist_open(const struct rollout *r, const struct plan *plan, bool required_only,
                           char *buf, size_t n) {
  int open = 0;
  size_t used = 0;
  if (buf && n)
    buf[0] = '\0';
  for (int i = 0; i < plan->n_checklist; i++) {
    const struct checklist_item *c = &plan->checklist[i];
    if ((required_only && !c->required) || rollout_checked_find(r, c->id))
      continue;
    open++;
    if (buf && used < n) {
      int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", c->id);
      used = w < 0 ? n : used + (size_t)w;
    }
  }
  return open;
}

/* Tick item c (if open). Fields are zeroed first: a rollout is compared and stored byte for
 * byte, so no stale tail bytes. */
static struct rollout_checked *tick(struct run *u, const struct checklist_item *c,
                                    enum checked_by by, const char *evidence, const char *actor,
                                    const char *note) {
  struct rollout *r = u->r;
  if (rollout_checked_find(r, c->id) || r->n_checked >= ROLLOUT_MAX_CHECKED)
    return NULL; /* the plan holds at most as many items as a rollout can tick */
  struct rollout_checked *k = &r->checked[r->n_checked++];
  memset(k, 0, sizeof *k);
  snprintf(k->item, sizeof k->item, "%s", c->id);
  k->by = (int8_t)by;
  k->at_ms = u->now;
  snprintf(k->evidence, sizeof k->evidence, "%s", evidence);
  snprintf(k->actor, sizeof k->actor, "%s", actor);
  snprintf(k->note, sizeof k->note, "%s", note);
  return k;
}

/* Every role that some gate of the plan asks an approval of has approved. */
static bool all_approvals(const struct run *u) {
  unsigned need = 0;
  for (int s = 0; s < u->plan->n_stages; s++) {
    const struct stage *st = &u->plan->stages[s];
    for (int i = 0; i < st->n_entry; i++)
      if (st->entry[i].check == CHECK_APPROVAL)
        need |= 1u << st->entry[i].role;
    for (int i = 0; i < st->n_exit; i++)
      if (st->exit[i].check == CHECK_APPROVAL)
        need |= 1u << st->exit[i].role;
  }
  return need ? (u->r->approvals & need) == need : u->r->approvals != 0;
}

/* Whether the event being applied proves item c. */
static bool event_proves(const struct run *u, const struct checklist_item *c) {
  const struct event *ev = u->ev;
  const struct rollout *r = u->r;
  switch (c->proof) {
  case PROOF_CI_PASSED:
    return ev->type == EVENT_CI_COMPLETED && ev->ok;
  case PROOF_DEPLOY_SUCCEEDED:
    return ev->type == EVENT_DEPLOY_COMPLETED && ev->ok;
  case PROOF_SMOKE_PASSED:
    return ev->type == EVENT_SMOKE_COMPLETED && ev->ok && ev->failed == 0;
  case PROOF_HEALTH_GREEN: /* "Daily health checks" of beta: a check while beta is exposed */
    return ev->type == EVENT_HEALTH_CHECKED && ev->ok && r->stage == c->stage &&
           (r->state == ROLLOUT_RUNNING || r->state == ROLLOUT_COMPLETED);
  case PROOF_FEEDBACK:
    return ev->type == EVENT_FEEDBACK_RECEIVED && plan_stage_index(u->plan, ev->cohort) == c->stage;
  case PROOF_DIFF_SAMPLES:
    return ev->type == EVENT_DIFF_SAMPLES && ev->diff.n > 0 &&
           plan_stage_index(u->plan, ev->cohort) == c->stage;
  case PROOF_APPROVALS:
    return ev->type == EVENT_APPROVAL_GRANTED && all_approvals(u);
  case PROOF_MANUAL:
  case PROOF_STAGE_STARTED:
  case PROOF_STAGE_PASSED:
  case PROOF_DECISION:
  case PROOF_COUNT:
    break;
  }
  return false;
}

void run_checklist_event(struct run *u) {
  const struct event *ev = u->ev;
  if (!ev || u->plan->n_checklist == 0 || ev->type == EVENT_METRICS)
    return; /* metrics prove nothing on the list: the bulk of the input costs nothing here */
  for (int i = 0; i < u->plan->n_checklist; i++) {
    const struct checklist_item *c = &u->plan->checklist[i];
    if (event_proves(u, c))
      tick(u, c, CHECKED_BY_EVENT, ev->id, event_type_name(ev->type), "");
  }
}

void run_checklist_stage(struct run *u, int stage, enum checklist_proof proof,
                         const char *decision_id, const char *actor, const char *note) {
  for (int i = 0; i < u->plan->n_checklist; i++) {
    const struct checklist_item *c = &u->plan->checklist[i];
    if (c->stage == stage && c->proof == proof)
      tick(u, c, CHECKED_BY_DECISION, decision_id, actor, note);
  }
}

void run_checklist_remind(struct run *u, int stage, const struct decision *d) {
  struct rollout *r = u->r;
  for (int i = 0; i < u->plan->n_checklist; i++) {
    const struct checklist_item *c = &u->plan->checklist[i];
    if (c->stage != stage || !c->remind || rollout_checked_find(r, c->id))
      continue;
    run_notify(u, NOTIFY_RELEASES, NOTIFY_SEV_INFO, d, "Checklist reminder",
               "%s %s is at %s: %s%s. When done: canaryctl check %s %s", r->service, r->version,
               u->plan->stages[stage].name, c->text, c->required ? " (required before GA)" : "",
               r->id, c->id);
  }
}

int run_checklist_check(struct run *u, char *why, size_t why_len) {
  const struct event *ev = u->ev;
  struct rollout *r = u->r;
  if (!ev->item[0])
    return canary_why(why, why_len, CANARY_EINVALID,
                      "item: a check command names the checklist item it ticks");
  int i = plan_checklist_index(u->plan, ev->item);
  if (i < 0) {
    char ids[EVENT_TEXT_MAX / 2] = "";
    size_t used = 0;
    for (int j = 0; j < u->plan->n_checklist && used < sizeof ids; j++) {
      int w =
          snprintf(ids + used, sizeof ids - used, "%s%s", j ? ", " : "", u->plan->checklist[j].id);
      used = w < 0 ? sizeof ids : used + (size_t)w;
    }
    return canary_why(why, why_len, CANARY_EINVALID,
                      "item: '%s' is not an item of the plan's checklist (%s)", ev->item,
                      u->plan->n_checklist ? ids : "the plan has none");
  }
  const struct checklist_item *c = &u->plan->checklist[i];
  const char *actor = ev->actor[0] ? ev->actor : "unknown";
  const struct rollout_checked *k = rollout_checked_find(r, c->id);
  if (k) {
    /* an answer, not an error: the person learns who ticked it and by what */
    struct decision *d = run_decide(u, DECISION_HOLD, r->stage, "command_rejected", ev->actor,
                                    "check %s rejected: already ticked by %s %s (%s)", c->id,
                                    checked_by_name((enum checked_by)k->by), k->actor, k->evidence);
    decision_add_str(d, "command", command_action_name(ev->action));
    decision_add_bool(d, "accepted", false);
    return CANARY_OK;
  }
  const char *reason = ev->reason[0] ? ev->reason : "";
  struct decision *d = run_decide(u, DECISION_CHECK, r->stage, "checklist", ev->actor,
                                  "checklist: %s (%s) checked by %s%s%s", c->text, c->id, actor,
                                  reason[0] ? ": " : "", reason);
  decision_add_str(d, "item", c->id);
  decision_add_bool(d, "required", c->required);
  char ids[EVENT_TEXT_MAX / 2];
  tick(u, c, CHECKED_BY_PERSON, ev->id, actor, reason);
  int open = rollout_checklist_open(r, u->plan, true, ids, sizeof ids);
  decision_add_int(run_latest(u), "required_open", open);
  return CANARY_OK;
}
