/* Shared test fixtures (see fixtures.h). */
#include "fixtures.h"

#include <stdio.h>
#include <string.h>

struct event fixture_event(enum event_type type, const char *id, const char *rollout, int64_t t) {
  struct event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  snprintf(ev.id, sizeof ev.id, "%s", id);
  snprintf(ev.rollout, sizeof ev.rollout, "%s", rollout);
  ev.time_ms = t;
  return ev;
}

static struct criterion *add(struct stage *s, int exit, enum check c, const char *name) {
  struct criterion *cr = exit ? &s->exit[s->n_exit++] : &s->entry[s->n_entry++];
  memset(cr, 0, sizeof *cr);
  cr->check = c;
  cr->cohort = -1;
  snprintf(cr->name, sizeof cr->name, "%s", name);
  snprintf(cr->text, sizeof cr->text, "%s", name);
  return cr;
}

static struct stage *stage(struct plan *p, const char *name, double pct, int64_t min, int64_t max) {
  struct stage *s = &p->stages[p->n_stages++];
  snprintf(s->name, sizeof s->name, "%s", name);
  s->traffic_percent = pct;
  s->min_duration_ms = min;
  s->max_duration_ms = max;
  return s;
}

void fixture_plan(struct plan *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "fixture");
  snprintf(p->notify.releases, sizeof p->notify.releases, "#releases");
  snprintf(p->notify.oncall, sizeof p->notify.oncall, "#oncall");
  snprintf(p->notify.status_page, sizeof p->notify.status_page, "status-page");
  snprintf(p->notify.executive, sizeof p->notify.executive, "exec@example.com");
  p->breaker_threshold = 3;
  p->canary_enabled = true;
  p->post_mortem_ms = 48 * HOUR_MS;
  p->buckets = 10000;

  struct stage *s = stage(p, "internal_test", 0.5, 1 * HOUR_MS, 2 * HOUR_MS);
  add(s, 0, CHECK_CI_PASSED, "ci_passed");
  add(s, 0, CHECK_DEPLOY_SUCCEEDED, "deploy_succeeded");
  add(s, 0, CHECK_HEALTH_GREEN, "health_green");
  add(s, 1, CHECK_NO_CRASHES, "no_crashes");
  add(s, 1, CHECK_SMOKE_PASSED, "smoke_passed");

  s = stage(p, "friendly_gp", 5, 24 * HOUR_MS, 48 * HOUR_MS);
  add(s, 0, CHECK_PREVIOUS_STAGE_PASSED, "internal_test_passed");
  add(s, 0, CHECK_NO_OPEN_INCIDENTS, "no_open_sev1_2")->max_severity = 2;
  add(s, 1, CHECK_NO_NEGATIVE_FEEDBACK, "no_negative_feedback");
  snprintf(s->announce, sizeof s->announce, "Notify pilot partners");

  s = stage(p, "beta", 25, 48 * HOUR_MS, 72 * HOUR_MS);
  add(s, 0, CHECK_PREVIOUS_STAGE_PASSED, "friendly_gp_passed");
  struct criterion *c = add(s, 0, CHECK_POSITIVE_FEEDBACK, "positive_feedback");
  c->cohort = 1;
  c->min_count = 1;
  c = add(s, 1, CHECK_NO_INCIDENTS_WITHIN, "no_sev1_48h");
  c->max_severity = 1;
  c->window_ms = 48 * HOUR_MS;
  snprintf(s->announce, sizeof s->announce, "Send beta announcement");

  s = stage(p, "ga", 100, 0, 0);
  add(s, 0, CHECK_PREVIOUS_STAGE_PASSED, "beta_passed");
  add(s, 0, CHECK_APPROVAL, "product_owner_approval")->role = APPROVAL_PRODUCT_OWNER;
  add(s, 0, CHECK_APPROVAL, "support_ready")->role = APPROVAL_SUPPORT;
  add(s, 0, CHECK_APPROVAL, "docs_complete")->role = APPROVAL_DOCS;
  snprintf(s->announce, sizeof s->announce, "Send success announcement");

  struct rule *r = &p->rules[p->n_rules++];
  snprintf(r->name, sizeof r->name, "security_alert");
  r->has_alert = true;
  r->on_alert = ALERT_SECURITY;
  r->action = RULE_PAUSE;
  r->severity = 1;
  r = &p->rules[p->n_rules++];
  snprintf(r->name, sizeof r->name, "compliance_violation");
  r->has_alert = true;
  r->on_alert = ALERT_COMPLIANCE;
  r->action = RULE_PAUSE;
  r->severity = 1;
  r = &p->rules[p->n_rules++];
  snprintf(r->name, sizeof r->name, "data_inconsistency");
  r->has_alert = true;
  r->on_alert = ALERT_DATA_INCONSISTENCY;
  r->action = RULE_PAUSE;
  r->severity = 1;
  r = &p->rules[p->n_rules++];
  snprintf(r->name, sizeof r->name, "db_connection_exhaustion");
  r->has_alert = true;
  r->on_alert = ALERT_DB_CONNECTION_EXHAUSTION;
  r->action = RULE_PAUSE;
  r->severity = 2;
}

struct event fixture_requested(const char *id, const char *rollout, int64_t t) {
  struct event ev = fixture_event(EVENT_ROLLOUT_REQUESTED, id, rollout, t);
  snprintf(ev.service, sizeof ev.service, "web");
  snprintf(ev.version, sizeof ev.version, "2.1.0");
  snprintf(ev.baseline_version, sizeof ev.baseline_version, "2.0.9");
  return ev;
}

struct event fixture_command(const char *id, const char *rollout, int64_t t,
                             enum command_action action, bool force) {
  struct event ev = fixture_event(EVENT_COMMAND, id, rollout, t);
  ev.action = action;
  ev.force = force;
  snprintf(ev.actor, sizeof ev.actor, "alice");
  snprintf(ev.reason, sizeof ev.reason, "test");
  return ev;
}

struct event fixture_flag(const char *id, const char *rollout, int64_t t, const char *flag,
                          bool value) {
  struct event ev = fixture_event(EVENT_FLAG_SET, id, rollout, t);
  snprintf(ev.flag, sizeof ev.flag, "%s", flag);
  ev.value = value;
  snprintf(ev.actor, sizeof ev.actor, "alice");
  return ev;
}

struct criterion *fixture_criterion(struct plan *p, int stage, bool exit, enum check c,
                                    const char *name) {
  return add(&p->stages[stage], exit, c, name);
}
