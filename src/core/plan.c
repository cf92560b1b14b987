/* Plan look-ups and consistency checks. */
#include "core/plan.h"
#include "core/enum_names.h"

#include <stdio.h>
#include <string.h>

ENUM_NAMES(check, check, CHECK_MAP, CHECK_COUNT)
ENUM_PARSE(check, check, CHECK_COUNT)
ENUM_NAMES(rule_action, rule_action, RULE_ACTION_MAP, RULE_ACTION_COUNT)
ENUM_PARSE(rule_action, rule_action, RULE_ACTION_COUNT)
ENUM_NAMES(checklist_proof, checklist_proof, CHECKLIST_PROOF_MAP, PROOF_COUNT)
ENUM_PARSE(checklist_proof, checklist_proof, PROOF_COUNT)

int plan_checklist_index(const struct plan *p, const char *id) {
  for (int i = 0; i < p->n_checklist; i++)
    if (strcmp(p->checklist[i].id, id) == 0)
      return i;
  return -1;
}

/*
 * A required item must be able to close before the last stage starts, or GA could never be
 * entered: what the last stage itself proves (its start, its exit, its decision) cannot.
 */
bool checklist_item_ok(const struct plan *p, int i, char *why, size_t len) {
  const struct checklist_item *c = &p->checklist[i];
  if (c->stage < 0 || c->stage >= p->n_stages) {
    snprintf(why, len, "checklist item %s names a stage outside the plan", c->id);
    return false;
  }
  for (int j = 0; j < i; j++)
    if (strcmp(p->checklist[j].id, c->id) == 0) {
      snprintf(why, len, "checklist item %s appears twice", c->id);
      return false;
    }
  bool at_last = c->proof == PROOF_STAGE_STARTED || c->proof == PROOF_STAGE_PASSED ||
                 c->proof == PROOF_DECISION || c->proof == PROOF_HEALTH_GREEN;
  if (c->required && at_last && c->stage == p->n_stages - 1) {
    snprintf(why, len,
             "checklist item %s is required before %s, but its proof (%s of %s) "
             "comes only after it: make it manual or not required",
             c->id, p->stages[c->stage].name, checklist_proof_name(c->proof),
             p->stages[c->stage].name);
    return false;
  }
  return true;
}

int plan_stage_index(const struct plan *p, const char *name) {
  for (int i = 0; i < p->n_stages; i++)
    if (strcmp(p->stages[i].name, name) == 0)
      return i;
  return -1;
}

bool plan_param(const struct plan *p, const char *name, double *out) {
  for (int i = 0; i < p->n_params; i++)
    if (strcmp(p->params[i].name, name) == 0) {
      *out = p->params[i].value;
      return true;
    }
  return false;
}

static bool gate_ok(const struct plan *p, const struct stage *s, const struct criterion *c, int n,
                    const char *which, char *why, size_t len) {
  for (int i = 0; i < n; i++) {
    if (c[i].cohort < -1 || c[i].cohort >= p->n_stages) {
      snprintf(why, len, "stage %s: %s criterion %s names a cohort outside the plan", s->name,
               which, c[i].name);
      return false;
    }
    if (c[i].check == CHECK_METRIC && !c[i].expr[0]) {
      snprintf(why, len, "stage %s: %s criterion %s has no expression", s->name, which, c[i].name);
      return false;
    }
  }
  return true;
}

bool plan_validate(const struct plan *p, char *why, size_t len) {
  if (p->n_stages < 1) {
    snprintf(why, len, "the plan has no stages");
    return false;
  }
  double prev = 0;
  for (int i = 0; i < p->n_stages; i++) {
    const struct stage *s = &p->stages[i];
    if (!(s->traffic_percent > prev) || s->traffic_percent > 100) {
      snprintf(why, len,
               "stage %s: traffic_percent %g must be above the previous stage's (%g) "
               "and at most 100",
               s->name, s->traffic_percent, prev);
      return false;
    }
    prev = s->traffic_percent;
    if (s->max_duration_ms && s->max_duration_ms < s->min_duration_ms) {
      snprintf(why, len, "stage %s: max_duration is shorter than min_duration", s->name);
      return false;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(p->stages[j].name, s->name) == 0) {
        snprintf(why, len, "stage %s appears twice", s->name);
        return false;
      }
    if (!gate_ok(p, s, s->entry, s->n_entry, "entry", why, len) ||
        !gate_ok(p, s, s->exit, s->n_exit, "exit", why, len))
      return false;
  }
  if (prev != 100) {
    snprintf(why, len, "the last stage (%s) must reach traffic_percent 100, not %g",
             p->stages[p->n_stages - 1].name, prev);
    return false;
  }
  for (int i = 0; i < p->n_checklist; i++)
    if (!checklist_item_ok(p, i, why, len))
      return false;
  return true;
}

static bool criteria_equal(const struct criterion *a, const struct criterion *b, int n) {
  for (int i = 0; i < n; i++) {
    if (a[i].check != b[i].check || strcmp(a[i].name, b[i].name) || strcmp(a[i].text, b[i].text) ||
        a[i].cohort != b[i].cohort || a[i].max_severity != b[i].max_severity ||
        a[i].window_ms != b[i].window_ms || a[i].min_count != b[i].min_count ||
        a[i].min_ratio != b[i].min_ratio || a[i].role != b[i].role ||
        strcmp(a[i].expr, b[i].expr) || a[i].for_ms != b[i].for_ms)
      return false;
  }
  return true;
}

static bool lists_equal(const char (*a)[PLAN_NAME_MAX], const char (*b)[PLAN_NAME_MAX], int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(a[i], b[i]))
      return false;
  return true;
}

static bool stage_equal(const struct stage *a, const struct stage *b) {
  return !strcmp(a->name, b->name) && !strcmp(a->title, b->title) && !strcmp(a->users, b->users) &&
         !strcmp(a->purpose, b->purpose) && a->traffic_percent == b->traffic_percent &&
         a->n_segments == b->n_segments && lists_equal(a->segments, b->segments, a->n_segments) &&
         a->n_features == b->n_features && lists_equal(a->features, b->features, a->n_features) &&
         a->min_duration_ms == b->min_duration_ms && a->max_duration_ms == b->max_duration_ms &&
         !strcmp(a->announce, b->announce) && a->n_entry == b->n_entry &&
         criteria_equal(a->entry, b->entry, a->n_entry) && a->n_exit == b->n_exit &&
         criteria_equal(a->exit, b->exit, a->n_exit);
}

void plan_as_estimate(struct plan *p) {
  int kept = 0;
  for (int i = 0; i < p->n_rules; i++) {
    if (p->rules[i].decide == PLAN_DECIDE_EVIDENCE)
      continue;
    p->rules[kept] = p->rules[i];
    p->rules[kept++].decide = PLAN_DECIDE_DEFAULT;
  }
  p->n_rules = kept;
  for (int i = 0; i < p->n_alerts; i++)
    p->alerts[i].decide = PLAN_DECIDE_DEFAULT;
  p->decide = PLAN_DECIDE_ESTIMATE;
}

static bool rule_equal(const struct rule *a, const struct rule *b) {
  if (strcmp(a->name, b->name) || strcmp(a->text, b->text) || strcmp(a->category, b->category) ||
      a->has_alert != b->has_alert || (a->has_alert && a->on_alert != b->on_alert) ||
      a->n_exprs != b->n_exprs || a->for_ms != b->for_ms || a->action != b->action ||
      a->severity != b->severity || a->decide != b->decide)
    return false;
  for (int i = 0; i < a->n_exprs; i++)
    if (strcmp(a->exprs[i], b->exprs[i]))
      return false;
  return true;
}

bool plan_equal(const struct plan *a, const struct plan *b) {
  if (strcmp(a->name, b->name) || a->n_stages != b->n_stages || a->n_rules != b->n_rules ||
      a->n_alerts != b->n_alerts || a->n_params != b->n_params || a->n_slos != b->n_slos ||
      strcmp(a->notify.releases, b->notify.releases) ||
      strcmp(a->notify.oncall, b->notify.oncall) ||
      strcmp(a->notify.status_page, b->notify.status_page) ||
      strcmp(a->notify.executive, b->notify.executive) ||
      a->breaker_threshold != b->breaker_threshold || a->canary_enabled != b->canary_enabled ||
      a->post_mortem_ms != b->post_mortem_ms || a->buckets != b->buckets ||
      a->rollback_verify_ms != b->rollback_verify_ms || a->srm_enabled != b->srm_enabled ||
      a->srm_control != b->srm_control || a->srm_p != b->srm_p ||
      a->srm_window_ms != b->srm_window_ms || a->srm_margin != b->srm_margin ||
      a->decide != b->decide || a->false_halt_budget != b->false_halt_budget ||
      a->gate_alpha != b->gate_alpha || a->watch_ms != b->watch_ms ||
      a->holdback_percent != b->holdback_percent || a->excess_margin != b->excess_margin ||
      a->margin_from_percent != b->margin_from_percent ||
      a->n_dashboard_counters != b->n_dashboard_counters ||
      a->dashboard_step_ms != b->dashboard_step_ms || !policy_equal(&a->policy, &b->policy))
    return false;
  for (int i = 0; i < a->n_dashboard_counters; i++)
    if (strcmp(a->dashboard_counters[i], b->dashboard_counters[i]))
      return false;
  for (int i = 0; i < a->n_stages; i++)
    if (!stage_equal(&a->stages[i], &b->stages[i]))
      return false;
  for (int i = 0; i < a->n_rules; i++)
    if (!rule_equal(&a->rules[i], &b->rules[i]))
      return false;
  for (int i = 0; i < a->n_alerts; i++)
    if (!rule_equal(&a->alerts[i], &b->alerts[i]))
      return false;
  for (int i = 0; i < a->n_params; i++)
    if (strcmp(a->params[i].name, b->params[i].name) || a->params[i].value != b->params[i].value)
      return false;
  for (int i = 0; i < a->n_slos; i++)
    if (strcmp(a->slos[i].name, b->slos[i].name) || strcmp(a->slos[i].expr, b->slos[i].expr))
      return false;
  if (a->n_checklist != b->n_checklist)
    return false;
  for (int i = 0; i < a->n_checklist; i++) {
    const struct checklist_item *x = &a->checklist[i], *y = &b->checklist[i];
    if (strcmp(x->id, y->id) || strcmp(x->text, y->text) || x->stage != y->stage ||
        x->required != y->required || x->remind != y->remind || x->proof != y->proof)
      return false;
  }
  return true;
}

const struct plan_dispersion *plan_dispersion_for(const struct plan *p, const char *counter,
                                                  const char *service) {
  const struct plan_dispersion *any = NULL;
  for (int j = 0; j < p->n_dispersion; j++) {
    const struct plan_dispersion *d = &p->dispersion[j];
    if (strcmp(d->counter, counter))
      continue;
    if (!d->service[0])
      any = d;
    else if (service && !strcmp(d->service, service))
      return d;
  }
  return any;
}
