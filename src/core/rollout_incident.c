/*
 * A rollout's incidents and alerts: an incident opened (the status page, the executive
 * briefing, on-call for a Sev 1), the status page's all-clear, and the plan's halt rules that
 * watch alerts (a halt, a rollback, or a page after GA).
 */
#include <stdio.h>
#include <string.h>

#include "core/rollout.h"
#include "core/rollout_internal.h"

static enum alert_kind alert_of_incident(enum incident_kind k) {
  switch (k) {
  case INCIDENT_SECURITY:
    return ALERT_SECURITY;
  case INCIDENT_COMPLIANCE:
    return ALERT_COMPLIANCE;
  case INCIDENT_DATA_INCONSISTENCY:
    return ALERT_DATA_INCONSISTENCY;
  default:
    return ALERT_KIND_COUNT;
  }
}

/* Fire the plan's rules that watch alerts of kind. */
void run_fire_alert_rules(struct run *u, enum alert_kind kind, const char *detail) {
  struct rollout *r = u->r;
  for (int i = 0; i < u->plan->n_rules && !u->err; i++) {
    const struct rule *rule = &u->plan->rules[i];
    if (!rule->has_alert || rule->on_alert != kind)
      continue;
    char reason[EVENT_TEXT_MAX + 64];
    snprintf(reason, sizeof reason, "halt rule %s: %s%s%s", rule->name,
             rule->text[0] ? rule->text : alert_kind_name(kind), detail[0] ? ": " : "", detail);
    if (r->state == ROLLOUT_COMPLETED) {
      /* after GA the release is everyone's: a security, compliance or data alert pages on-call
       * (and tells #releases), with the way back */
      run_notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NULL, rule->name,
                 "%s %s after GA: %s. To roll back: canaryctl rollback %s", r->service, r->version,
                 reason, r->id);
      run_notify(u, NOTIFY_RELEASES, NOTIFY_SEV_CRITICAL, NULL, rule->name,
                 "%s %s after GA: %s (on-call paged)", r->service, r->version, reason);
    } else if (rollout_is_terminal(r) || rule->action == RULE_ALERT_ONCALL) {
      run_notify(u, rule->action == RULE_ALERT_ONCALL ? NOTIFY_ONCALL : NOTIFY_RELEASES,
                 rule->severity <= 1 ? NOTIFY_SEV_CRITICAL : NOTIFY_SEV_WARNING, NULL, rule->name,
                 "%s %s: %s", r->service, r->version, reason);
    } else if (rule->action == RULE_ROLLBACK) {
      run_roll_back(u, rule->name, NULL, reason);
    } else {
      run_halt(u, rule->name, rule->severity, reason);
    }
  }
}

/*
 * The status page tells the public about the release, not about each ticket: the first open
 * Sev 1-2 incident opens it, the resolution of the last one still open closes it (severity info
 * on the status_page channel is that all-clear).
 */
void run_status_page_all_clear(struct run *u) {
  struct rollout *r = u->r;
  for (int i = 0; i < r->n_incidents; i++)
    if (r->incidents[i].open && r->incidents[i].severity <= 2)
      return;
  run_notify(u, NOTIFY_STATUS_PAGE, NOTIFY_SEV_INFO, NULL, "Incident resolved",
             "Incident %s is resolved; the rollout of %s %s has no open Sev 1-2 incident.",
             u->ev->incident, r->service, r->version);
}

int run_incident_opened(struct run *u, char *why, size_t why_len) {
  struct rollout *r = u->r;
  const struct event *ev = u->ev;
  for (int i = 0; i < r->n_incidents; i++)
    if (strcmp(r->incidents[i].id, ev->incident) == 0)
      return canary_why(why, why_len, CANARY_EINVALID, "incident: %s is already open",
                        ev->incident);
  if (r->n_incidents == ROLLOUT_MAX_INCIDENTS)
    return canary_why(why, why_len, CANARY_EINVALID,
                      "incident: too many incidents on this rollout (%s)", ev->incident);
  struct rollout_incident *in = &r->incidents[r->n_incidents++];
  snprintf(in->id, sizeof in->id, "%s", ev->incident);
  in->severity = ev->severity;
  in->kind = ev->incident_kind;
  in->opened_ms = u->now;
  in->open = true;
  if (ev->severity <= 2)
    run_notify(u, NOTIFY_STATUS_PAGE, NOTIFY_SEV_WARNING, NULL, "Incident under investigation",
               "Sev %d incident %s (%s) during the rollout of %s %s.", ev->severity, ev->incident,
               incident_kind_name(ev->incident_kind), r->service, r->version);
  if (ev->severity == 1) {
    run_notify(u, NOTIFY_EXECUTIVE, NOTIFY_SEV_CRITICAL, NULL, "Executive briefing: Sev 1 incident",
               "Sev 1 incident %s (%s) during the rollout of %s %s.", ev->incident,
               incident_kind_name(ev->incident_kind), r->service, r->version);
    run_notify(u, NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NULL, "Sev 1 incident",
               "Sev 1 incident %s (%s) during the rollout of %s %s.", ev->incident,
               incident_kind_name(ev->incident_kind), r->service, r->version);
  }
  enum alert_kind k = alert_of_incident(ev->incident_kind);
  if (k != ALERT_KIND_COUNT)
    run_fire_alert_rules(u, k, ev->incident);
  return CANARY_OK;
}
