/* The plan document's schema: one table per section, setters for what a table cannot say. */
#include "config/planfile.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config/policyfile.h"
#include "core/metric_store.h"

#define HOUR_MS (3600 * 1000LL)
#define BIT(i) (1u << (i))

/* A criterion's cohort names a stage that may come later in the file: resolved at the end. */
struct cohort_ref {
  int *cohort;
  const struct ynode *node;
};

struct planctx {
  struct plan *plan;
  struct cohort_ref refs[PLAN_MAX_STAGES * 2 * PLAN_MAX_CRITERIA + PLAN_MAX_CHECKLIST];
  int n_refs;
  const struct ynode *dispersion[PLAN_MAX_DISPERSION]; /* each entry's node, for its errors */
  const struct ynode *checklist[PLAN_MAX_CHECKLIST];   /* each item's node, for its errors */
};

static const char *check_at(int i) { return check_name((enum check)i); }
static const char *role_at(int i) { return approval_role_name((enum approval_role)i); }
static const char *alert_at(int i) { return alert_kind_name((enum alert_kind)i); }
static const char *action_at(int i) { return rule_action_name((enum rule_action)i); }

static const char *const categories[] = {"performance", "errors", "business"};
static const char *category_at(int i) { return categories[i]; }
static const char *proof_at(int i) { return checklist_proof_name((enum checklist_proof)i); }

/* Checks that v is a list of at most max items. */
static int list_room(struct loader *ld, const struct ynode *v, const char *key, size_t max) {
  int rc = schema_expect(ld, v, YNODE_SEQ, key);
  if (!rc && v->n > max)
    rc = schema_fail(ld, v->kids[max], CANARY_EINVALID, "too many %s (at most %zu)", key, max);
  return rc;
}

/* --- criteria ------------------------------------------------------------------------------- */

static int set_check(struct loader *ld, const struct ynode *v, void *target) {
  int i, rc = schema_choice(ld, v, "check", check_at, CHECK_COUNT, &i);
  if (!rc)
    ((struct criterion *)target)->check = (enum check)i;
  return rc;
}

static int set_role(struct loader *ld, const struct ynode *v, void *target) {
  int i, rc = schema_choice(ld, v, "role", role_at, APPROVAL_ROLE_COUNT, &i);
  if (!rc)
    ((struct criterion *)target)->role = (enum approval_role)i;
  return rc;
}

static int cohort_ref(struct loader *ld, const struct ynode *v, int *cohort) {
  struct planctx *ctx = ld->ctx;
  char name[PLAN_NAME_MAX];
  int rc = schema_ident(ld, v, "cohort", name, sizeof name);
  if (rc)
    return rc;
  if (ctx->n_refs == (int)(sizeof ctx->refs / sizeof *ctx->refs))
    return schema_fail(ld, v, CANARY_EINVALID, "too many cohort references");
  ctx->refs[ctx->n_refs++] = (struct cohort_ref){cohort, v};
  return CANARY_OK;
}

static int set_cohort(struct loader *ld, const struct ynode *v, void *target) {
  return cohort_ref(ld, v, &((struct criterion *)target)->cohort);
}

enum {
  CF_CHECK,
  CF_NAME,
  CF_TEXT,
  CF_COHORT,
  CF_MAX_SEVERITY,
  CF_WINDOW,
  CF_MIN_COUNT,
  CF_MIN_RATIO,
  CF_ROLE,
  CF_EXPR,
  CF_FOR,
  CF_COUNT
};

static const struct field criterion_fields[] = {
    [CF_CHECK] = F_CUSTOM("check", set_check, true),
    [CF_NAME] = F_IDENT(struct criterion, "name", name, false),
    [CF_TEXT] = F_STR(struct criterion, "text", text, false),
    [CF_COHORT] = F_CUSTOM("cohort", set_cohort, false),
    [CF_MAX_SEVERITY] = F_INT(struct criterion, "max_severity", max_severity, 1, 4, false),
    [CF_WINDOW] = F_DURATION(struct criterion, "window", window_ms, false),
    [CF_MIN_COUNT] = F_I64(struct criterion, "min_count", min_count, 0, 1e9, false),
    [CF_MIN_RATIO] = F_NUM(struct criterion, "min_ratio", min_ratio, 0, 1, false),
    [CF_ROLE] = F_CUSTOM("role", set_role, false),
    [CF_EXPR] = F_STR(struct criterion, "expr", expr, false),
    [CF_FOR] = F_DURATION(struct criterion, "for", for_ms, false),
};

/* Per check: the keys it needs and the keys it may have besides check, name and text. */
static const struct {
  unsigned required, allowed;
} check_keys[CHECK_COUNT] = {
    [CHECK_NO_CRASHES] = {0, BIT(CF_COHORT)},
    [CHECK_NO_OPEN_INCIDENTS] = {BIT(CF_MAX_SEVERITY), BIT(CF_MAX_SEVERITY)},
    [CHECK_NO_INCIDENTS_WITHIN] = {BIT(CF_MAX_SEVERITY) | BIT(CF_WINDOW),
                                   BIT(CF_MAX_SEVERITY) | BIT(CF_WINDOW)},
    [CHECK_POSITIVE_FEEDBACK] = {0, BIT(CF_COHORT) | BIT(CF_MIN_COUNT) | BIT(CF_MIN_RATIO)},
    [CHECK_NO_NEGATIVE_FEEDBACK] = {0, BIT(CF_COHORT)},
    [CHECK_APPROVAL] = {BIT(CF_ROLE), BIT(CF_ROLE)},
    [CHECK_METRIC] = {BIT(CF_EXPR), BIT(CF_EXPR) | BIT(CF_WINDOW) | BIT(CF_FOR) | BIT(CF_COHORT)},
};

static int criterion_keys_ok(struct loader *ld, const struct ynode *map, const struct criterion *c,
                             const struct seen *seen) {
  unsigned required = check_keys[c->check].required;
  unsigned allowed =
      required | check_keys[c->check].allowed | BIT(CF_CHECK) | BIT(CF_NAME) | BIT(CF_TEXT);
  for (int i = 0; i < CF_COUNT; i++) {
    if (seen[i].key && !(allowed & BIT(i)))
      return schema_fail(ld, seen[i].key, CANARY_EINVALID, "key '%s' does not apply to check '%s'",
                         criterion_fields[i].key, check_name(c->check));
    if (!seen[i].key && (required & BIT(i)))
      return schema_fail(ld, map, CANARY_EINVALID, "check '%s' needs key '%s'",
                         check_name(c->check), criterion_fields[i].key);
  }
  return CANARY_OK;
}

static int read_criterion(struct loader *ld, const struct ynode *map, struct criterion *c) {
  struct seen seen[CF_COUNT];
  memset(c, 0, sizeof *c);
  c->cohort = -1;
  int rc = schema_walk(ld, map, "criterion", criterion_fields, CF_COUNT, c, seen);
  if (rc || (rc = criterion_keys_ok(ld, map, c, seen)))
    return rc;
  if (!seen[CF_NAME].key)
    snprintf(c->name, sizeof c->name, "%s", check_name(c->check));
  if (c->check == CHECK_POSITIVE_FEEDBACK && !seen[CF_MIN_COUNT].key)
    c->min_count = 1; /* "Positive feedback received": at least one */
  return CANARY_OK;
}

static int read_gate(struct loader *ld, const struct ynode *v, const char *key,
                     struct criterion *list, int *n) {
  int rc = list_room(ld, v, key, PLAN_MAX_CRITERIA);
  for (size_t i = 0; !rc && i < v->n; i++) {
    if ((rc = read_criterion(ld, v->kids[i], &list[i])))
      break;
    for (size_t j = 0; j < i; j++)
      if (strcmp(list[j].name, list[i].name) == 0)
        return schema_fail(ld, v->kids[i], CANARY_EINVALID,
                           "two %s criteria are named '%s': give each a distinct 'name'", key,
                           list[i].name);
    *n = (int)i + 1;
  }
  return rc;
}

static int set_entry(struct loader *ld, const struct ynode *v, void *target) {
  struct stage *s = target;
  return read_gate(ld, v, "entry", s->entry, &s->n_entry);
}

static int set_exit(struct loader *ld, const struct ynode *v, void *target) {
  struct stage *s = target;
  return read_gate(ld, v, "exit", s->exit, &s->n_exit);
}

/* --- stages ------------------------------------------------------------------------------- */

enum {
  SF_NAME,
  SF_TITLE,
  SF_PERCENT,
  SF_USERS,
  SF_SEGMENTS,
  SF_FEATURES,
  SF_PURPOSE,
  SF_MIN,
  SF_MAX,
  SF_ANNOUNCE,
  SF_ENTRY,
  SF_EXIT,
  SF_COUNT
};

static const struct field stage_fields[] = {
    [SF_NAME] = F_IDENT(struct stage, "name", name, true),
    [SF_TITLE] = F_STR(struct stage, "title", title, false),
    [SF_PERCENT] = F_NUM(struct stage, "traffic_percent", traffic_percent, 0, 100, true),
    [SF_USERS] = F_STR(struct stage, "users", users, false),
    [SF_SEGMENTS] = F_NAMES(struct stage, "segments", segments, n_segments, false),
    [SF_FEATURES] = F_NAMES(struct stage, "features", features, n_features, false),
    [SF_PURPOSE] = F_STR(struct stage, "purpose", purpose, false),
    [SF_MIN] = F_DURATION(struct stage, "min_duration", min_duration_ms, false),
    [SF_MAX] = F_DURATION(struct stage, "max_duration", max_duration_ms, false),
    [SF_ANNOUNCE] = F_STR(struct stage, "announce", announce, false),
    [SF_ENTRY] = F_CUSTOM("entry", set_entry, false),
    [SF_EXIT] = F_CUSTOM("exit", set_exit, false),
};

/* What plan_validate would say, said at the node that is wrong. */
static int stage_ok(struct loader *ld, const struct plan *p, int i, const struct seen *seen) {
  const struct stage *s = &p->stages[i];
  for (int j = 0; j < i; j++)
    if (strcmp(p->stages[j].name, s->name) == 0)
      return schema_fail(ld, seen[SF_NAME].value, CANARY_EINVALID, "stage '%s' appears twice",
                         s->name);
  double prev = i ? p->stages[i - 1].traffic_percent : 0;
  if (!(s->traffic_percent > prev))
    return schema_fail(ld, seen[SF_PERCENT].value, CANARY_EINVALID,
                       "traffic_percent of stage '%s' (%g) must be above the previous stage's (%g)",
                       s->name, s->traffic_percent, prev);
  if (s->max_duration_ms && s->max_duration_ms < s->min_duration_ms)
    return schema_fail(ld, seen[SF_MAX].value, CANARY_EINVALID,
                       "max_duration of stage '%s' (%s) is shorter than its min_duration (%s)",
                       s->name, seen[SF_MAX].value->str, seen[SF_MIN].value->str);
  return CANARY_OK;
}

static int set_stages(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  int rc = list_room(ld, v, "stages", PLAN_MAX_STAGES);
  for (size_t i = 0; !rc && i < v->n; i++) {
    struct seen seen[SF_COUNT];
    rc = schema_walk(ld, v->kids[i], "stage", stage_fields, SF_COUNT, &p->stages[i], seen);
    if (!rc)
      rc = stage_ok(ld, p, (int)i, seen);
    p->n_stages = (int)i + 1;
  }
  return rc;
}

/* --- halt rules and alerts ----------------------------------------------------------------- */

static int set_category(struct loader *ld, const struct ynode *v, void *target) {
  struct rule *r = target;
  int i, rc = schema_choice(ld, v, "category", category_at, 3, &i);
  if (!rc)
    snprintf(r->category, sizeof r->category, "%s", categories[i]);
  return rc;
}

static int set_exprs(struct loader *ld, const struct ynode *v, void *target) {
  struct rule *r = target;
  if (v->kind == YNODE_SCALAR) {
    int rc = schema_str(ld, v, "expr", r->exprs[0], sizeof r->exprs[0]);
    r->n_exprs = rc ? 0 : 1;
    return rc;
  }
  int rc = list_room(ld, v, "expr", PLAN_MAX_EXPRS);
  if (!rc && v->n == 0)
    rc = schema_fail(ld, v, CANARY_EINVALID, "'expr' is an empty list");
  for (size_t i = 0; !rc && i < v->n; i++)
    rc = schema_str(ld, v->kids[i], "expr", r->exprs[i], sizeof r->exprs[i]);
  r->n_exprs = rc ? 0 : (int)v->n;
  return rc;
}

static int set_on_alert(struct loader *ld, const struct ynode *v, void *target) {
  struct rule *r = target;
  int i, rc = schema_choice(ld, v, "alert kind", alert_at, ALERT_KIND_COUNT, &i);
  if (!rc) {
    r->has_alert = true;
    r->on_alert = (enum alert_kind)i;
  }
  return rc;
}

static int set_action(struct loader *ld, const struct ynode *v, void *target) {
  int i, rc = schema_choice(ld, v, "action", action_at, RULE_ACTION_COUNT, &i);
  if (!rc)
    ((struct rule *)target)->action = (enum rule_action)i;
  return rc;
}

/* decide: / decisions.mode — how rules over counts decide (plan.h, enum plan_decide). */
static int read_decide(struct loader *ld, const struct ynode *v, enum plan_decide *out) {
  if (v->kind == YNODE_SCALAR && strcmp(v->str, "evidence") == 0)
    *out = PLAN_DECIDE_EVIDENCE;
  else if (v->kind == YNODE_SCALAR && strcmp(v->str, "estimate") == 0)
    *out = PLAN_DECIDE_ESTIMATE;
  else
    return schema_fail(ld, v, CANARY_EINVALID,
                       "decide must be evidence (an anytime-valid test at the plan's "
                       "false-halt budget) or estimate (the literal value over the window)");
  return CANARY_OK;
}

static int set_rule_decide(struct loader *ld, const struct ynode *v, void *target) {
  return read_decide(ld, v, &((struct rule *)target)->decide);
}

static const struct field rule_fields[] = {
    F_IDENT(struct rule, "name", name, true),
    F_CUSTOM("category", set_category, false),
    F_STR(struct rule, "text", text, false),
    F_CUSTOM("expr", set_exprs, false),
    F_CUSTOM("on_alert", set_on_alert, false),
    F_DURATION(struct rule, "for", for_ms, false),
    F_CUSTOM("action", set_action, true),
    F_INT(struct rule, "severity", severity, 1, 3, false),
    F_CUSTOM("decide", set_rule_decide, false),
    F_NUM(struct rule, "budget_weight", budget_weight, 0.01, 100, false),
};

static int read_rule(struct loader *ld, const struct ynode *map, const char *what, struct rule *r) {
  memset(r, 0, sizeof *r);
  r->severity = 2;
  int rc =
      schema_walk(ld, map, what, rule_fields, sizeof rule_fields / sizeof *rule_fields, r, NULL);
  if (!rc && !r->n_exprs && !r->has_alert)
    rc = schema_fail(ld, map, CANARY_EINVALID, "%s '%s' needs 'expr' or 'on_alert'", what, r->name);
  return rc;
}

static int read_rules(struct loader *ld, const struct ynode *v, const char *key, const char *what,
                      struct rule *list, size_t max, int *n) {
  int rc = list_room(ld, v, key, max);
  for (size_t i = 0; !rc && i < v->n; i++) {
    if ((rc = read_rule(ld, v->kids[i], what, &list[i])))
      break;
    for (size_t j = 0; j < i; j++)
      if (strcmp(list[j].name, list[i].name) == 0)
        return schema_fail(ld, v->kids[i], CANARY_EINVALID, "%s '%s' appears twice", what,
                           list[i].name);
    *n = (int)i + 1;
  }
  return rc;
}

static int set_rules(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  return read_rules(ld, v, "halt_rules", "halt rule", p->rules, PLAN_MAX_RULES, &p->n_rules);
}

static int set_alerts(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  return read_rules(ld, v, "alerts", "alert", p->alerts, PLAN_MAX_ALERTS, &p->n_alerts);
}

/* --- halt_conditions, slos, the small sections ------------------------------------------- */

static int read_param(struct loader *ld, const struct ynode *key, const struct ynode *value,
                      struct plan *p) {
  if (p->n_params == PLAN_MAX_PARAMS)
    return schema_fail(ld, key, CANARY_EINVALID, "too many halt_conditions (at most %d)",
                       PLAN_MAX_PARAMS);
  struct plan_param *pp = &p->params[p->n_params];
  int rc = schema_ident(ld, key, "halt_conditions", pp->name, sizeof pp->name);
  if (rc)
    return rc;
  for (int j = 0; j < p->n_params; j++)
    if (strcmp(p->params[j].name, pp->name) == 0)
      return schema_fail(ld, key, CANARY_EINVALID, "duplicate key '%s' in halt_conditions",
                         pp->name);
  if ((rc = schema_num(ld, value, pp->name, -HUGE_VAL, HUGE_VAL, &pp->value)))
    return rc;
  p->n_params++;
  return CANARY_OK;
}

static int set_params(struct loader *ld, const struct ynode *v, void *target) {
  int rc = schema_expect(ld, v, YNODE_MAP, "halt_conditions");
  for (size_t i = 0; !rc && i + 1 < v->n; i += 2)
    rc = read_param(ld, v->kids[i], v->kids[i + 1], target);
  return rc;
}

static const struct field slo_fields[] = {
    F_IDENT(struct plan_slo, "name", name, true),
    F_STR(struct plan_slo, "expr", expr, true),
};

static int set_slos(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  int rc = list_room(ld, v, "slos", PLAN_MAX_SLOS);
  for (size_t i = 0; !rc && i < v->n; i++) {
    if ((rc = schema_walk(ld, v->kids[i], "slo", slo_fields, 2, &p->slos[i], NULL)))
      break;
    for (size_t j = 0; j < i; j++)
      if (strcmp(p->slos[j].name, p->slos[i].name) == 0)
        return schema_fail(ld, v->kids[i], CANARY_EINVALID, "slo '%s' appears twice",
                           p->slos[i].name);
    p->n_slos = (int)i + 1;
  }
  return rc;
}

static const struct field flag_fields[] = {
    F_BOOL(struct plan, "system.canary.enabled", canary_enabled, false),
};

static const struct field breaker_fields[] = {
    F_INT(struct plan, "consecutive_errors", breaker_threshold, 0, 1000, false),
};

static const struct field notify_fields[] = {
    F_STR(struct plan, "releases", notify.releases, false),
    F_STR(struct plan, "oncall", notify.oncall, false),
    F_STR(struct plan, "status_page", notify.status_page, false),
    F_STR(struct plan, "executive_email", notify.executive, false),
    F_DURATION(struct plan, "post_mortem_within", post_mortem_ms, false),
};

static const struct field bucketing_fields[] = {
    F_INT(struct plan, "buckets", buckets, 1, 1000000, false),
};

/* traffic_split.baseline: what the baseline variant's metrics cover. */
static int set_split_baseline(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  if (v->kind == YNODE_SCALAR && strcmp(v->str, "control") == 0)
    p->srm_control = true;
  else if (v->kind == YNODE_SCALAR && strcmp(v->str, "complement") == 0)
    p->srm_control = false;
  else
    return schema_fail(ld, v, CANARY_EINVALID,
                       "traffic_split.baseline must be control (a control group as large as "
                       "the canary) or complement (everyone else)");
  return CANARY_OK;
}

static const struct field split_fields[] = {
    F_BOOL(struct plan, "check", srm_enabled, false),
    F_CUSTOM("baseline", set_split_baseline, false),
    F_NUM(struct plan, "p", srm_p, 0, 0.5, false),
    F_DURATION(struct plan, "window", srm_window_ms, false),
    F_NUM(struct plan, "margin", srm_margin, 0, 0.9, false),
};

static int set_plan_decide(struct loader *ld, const struct ynode *v, void *target) {
  return read_decide(ld, v, &((struct plan *)target)->decide);
}

static const struct field dispersion_fields[] = {
    F_IDENT(struct plan_dispersion, "counter", counter, true),
    F_STR(struct plan_dispersion, "service", service, false),
    F_NUM(struct plan_dispersion, "value", value, 1, 1000, true),
    F_NUM(struct plan_dispersion, "reports", reports, 1, 100000, false),
};

/* decisions.dispersion: what earlier releases taught about each counter's bursts. */
static int set_dispersion(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  int rc = list_room(ld, v, "dispersion", PLAN_MAX_DISPERSION);
  for (size_t i = 0; !rc && i < v->n; i++) {
    struct plan_dispersion *d = &p->dispersion[i];
    d->reports = 1000; /* what canaryctl dispersion prints is the steps it was learned from */
    if ((rc = schema_walk(ld, v->kids[i], "dispersion", dispersion_fields, 4, d, NULL)))
      break;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(p->dispersion[j].counter, d->counter) &&
          !strcmp(p->dispersion[j].service, d->service))
        return schema_fail(ld, v->kids[i], CANARY_EINVALID, "dispersion of '%s'%s%s appears twice",
                           d->counter, d->service[0] ? " for service " : "", d->service);
    p->n_dispersion = (int)i + 1;
    ((struct planctx *)ld->ctx)->dispersion[i] = v->kids[i];
  }
  return rc;
}

static const struct field decision_fields[] = {
    F_CUSTOM("mode", set_plan_decide, false),
    F_CUSTOM("dispersion", set_dispersion, false),
    F_NUM(struct plan, "false_halt_budget", false_halt_budget, 1e-9, 0.5, false),
    F_NUM(struct plan, "gate_alpha", gate_alpha, 1e-9, 0.5, false),
    F_NUM(struct plan, "excess_margin", excess_margin, 0, 10, false),
    F_NUM(struct plan, "margin_from_percent", margin_from_percent, 0, 100, false),
};

/* rollback.verify_within: the seed's "Rollback within 30 minutes", checked after each rollback. */
static const struct field rollback_fields[] = {
    F_DURATION(struct plan, "verify_within", rollback_verify_ms, false),
};

static const struct field watch_fields[] = {
    F_DURATION(struct plan, "duration", watch_ms, false),
    F_NUM(struct plan, "holdback_percent", holdback_percent, 0, 50, false),
};

/* dashboard.step: the history's resolution. At least a window bucket (10 s: a finer step
 * would read the same bucket twice), at most an hour (the fine buckets a step is read from). */
static int set_dashboard_step(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  int rc = schema_duration(ld, v, "step", &p->dashboard_step_ms);
  if (rc == CANARY_OK && (p->dashboard_step_ms < 10000 || p->dashboard_step_ms > HOUR_MS ||
                          p->dashboard_step_ms % 10000))
    return schema_fail(ld, v, CANARY_EINVALID,
                       "dashboard.step must be a whole number of 10s between 10s and 1h");
  return rc;
}

/* dashboard: what `canaryctl dashboard` charts apart (business metrics), and how finely the
 * worker records the history it charts; decides nothing. */
static const struct field dashboard_fields[] = {
    F_NAMES(struct plan, "counters", dashboard_counters, n_dashboard_counters, false),
    F_CUSTOM("step", set_dashboard_step, false),
};

/* --- checklist ----------------------------------------------------------------------------- */

static int set_item_stage(struct loader *ld, const struct ynode *v, void *target) {
  return cohort_ref(ld, v, &((struct checklist_item *)target)->stage);
}

static int set_item_proof(struct loader *ld, const struct ynode *v, void *target) {
  int i, rc = schema_choice(ld, v, "proof", proof_at, PROOF_COUNT, &i);
  if (!rc)
    ((struct checklist_item *)target)->proof = (enum checklist_proof)i;
  return rc;
}

static const struct field checklist_fields[] = {
    F_IDENT(struct checklist_item, "id", id, true),
    F_STR(struct checklist_item, "text", text, true),
    F_CUSTOM("stage", set_item_stage, true),
    F_BOOL(struct checklist_item, "required", required, false),
    F_BOOL(struct checklist_item, "remind", remind, false),
    F_CUSTOM("proof", set_item_proof, false),
};

/* checklist: the seed's Day 0 - Day 4+ lists, an item a line. */
static int set_checklist(struct loader *ld, const struct ynode *v, void *target) {
  struct plan *p = target;
  int rc = list_room(ld, v, "checklist", PLAN_MAX_CHECKLIST);
  for (size_t i = 0; !rc && i < v->n; i++) {
    struct checklist_item *c = &p->checklist[i];
    memset(c, 0, sizeof *c);
    if ((rc = schema_walk(ld, v->kids[i], "checklist item", checklist_fields,
                          sizeof checklist_fields / sizeof *checklist_fields, c, NULL)))
      break;
    for (size_t j = 0; j < i; j++)
      if (strcmp(p->checklist[j].id, c->id) == 0)
        return schema_fail(ld, v->kids[i], CANARY_EINVALID, "checklist item '%s' appears twice",
                           c->id);
    p->n_checklist = (int)i + 1;
    ((struct planctx *)ld->ctx)->checklist[i] = v->kids[i];
  }
  return rc;
}

/* After the stages are known: each item's plan_validate check, said at the item. */
static int check_checklist(struct loader *ld, const struct planctx *ctx) {
  char why[240];
  for (int i = 0; i < ctx->plan->n_checklist; i++)
    if (!checklist_item_ok(ctx->plan, i, why, sizeof why))
      return schema_fail(ld, ctx->checklist[i], CANARY_EINVALID, "%s", why);
  return CANARY_OK;
}

/* policy: who may do what (config/policyfile.c). */
static int set_policy(struct loader *ld, const struct ynode *v, void *target) {
  return policyfile_load(ld, v, &((struct plan *)target)->policy);
}

enum {
  PF_PLAN,
  PF_HALT_CONDITIONS,
  PF_FLAGS,
  PF_BREAKER,
  PF_NOTIFY,
  PF_BUCKETING,
  PF_SPLIT,
  PF_DECISIONS,
  PF_WATCH,
  PF_DASHBOARD,
  PF_SLOS,
  PF_STAGES,
  PF_HALT_RULES,
  PF_ALERTS,
  PF_CHECKLIST,
  PF_POLICY,
  PF_ROLLBACK,
  PF_COUNT
};

static const struct field plan_fields[] = {
    [PF_PLAN] = F_STR(struct plan, "plan", name, true),
    [PF_HALT_CONDITIONS] = F_CUSTOM("halt_conditions", set_params, false),
    [PF_FLAGS] = F_MAP("flags", flag_fields, false),
    [PF_BREAKER] = F_MAP("circuit_breaker", breaker_fields, false),
    [PF_NOTIFY] = F_MAP("notify", notify_fields, false),
    [PF_BUCKETING] = F_MAP("bucketing", bucketing_fields, false),
    [PF_SPLIT] = F_MAP("traffic_split", split_fields, false),
    [PF_DECISIONS] = F_MAP("decisions", decision_fields, false),
    [PF_WATCH] = F_MAP("watch", watch_fields, false),
    [PF_DASHBOARD] = F_MAP("dashboard", dashboard_fields, false),
    [PF_SLOS] = F_CUSTOM("slos", set_slos, false),
    [PF_STAGES] = F_CUSTOM("stages", set_stages, true),
    [PF_HALT_RULES] = F_CUSTOM("halt_rules", set_rules, false),
    [PF_ALERTS] = F_CUSTOM("alerts", set_alerts, false),
    [PF_CHECKLIST] = F_CUSTOM("checklist", set_checklist, false),
    [PF_POLICY] = F_CUSTOM("policy", set_policy, false),
    [PF_ROLLBACK] = F_MAP("rollback", rollback_fields, false),
};

/* --- the document ---------------------------------------------------------------------------- */

void planfile_defaults(struct plan *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->notify.releases, sizeof p->notify.releases, "#releases");
  p->breaker_threshold = 3;
  p->canary_enabled = true;
  p->post_mortem_ms = 48 * HOUR_MS;
  p->rollback_verify_ms = 30 * 60 * 1000LL;
  p->buckets = 10000;
  p->srm_control = true;
  p->srm_p = 0.001;
  p->srm_window_ms = 5 * 60 * 1000LL;
  p->srm_margin = 0.2;
  p->decide = PLAN_DECIDE_EVIDENCE;
  p->false_halt_budget = 0.01;
  p->gate_alpha = 0.01;
  p->excess_margin = 0.2;
  p->margin_from_percent = 25;
  p->dashboard_step_ms = 60000;
}

static int resolve_cohorts(struct loader *ld, const struct planctx *ctx) {
  const struct plan *p = ctx->plan;
  for (int i = 0; i < ctx->n_refs; i++) {
    const struct ynode *v = ctx->refs[i].node;
    int idx = plan_stage_index(p, v->str);
    if (idx >= 0) {
      *ctx->refs[i].cohort = idx;
      continue;
    }
    char names[160];
    size_t used = 0;
    names[0] = '\0';
    for (int j = 0; j < p->n_stages && used < sizeof names; j++)
      used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", j ? ", " : "",
                               p->stages[j].name);
    return schema_fail(ld, v, CANARY_EINVALID, "unknown cohort '%s' (the plan's stages: %s)",
                       v->str, names);
  }
  return CANARY_OK;
}

/*
 * A learned dispersion must name a counter the evidence divides by it (the bad events of a ratio
 * some rule, alert, gate or SLO decides on evidence): a typo would otherwise be silently unused
 * and the release would assume bursts. Expressions that do not compile are left to engine_init
 * to report.
 */
static int check_dispersion(struct loader *ld, const struct planctx *ctx) {
  const struct plan *p = ctx->plan;
  if (p->n_dispersion == 0)
    return CANARY_OK;
  static struct mstore_plan mp; /* large: not on the stack; the loader runs on one thread */
  char why[200];
  if (mstore_plan_init(&mp, p, why, sizeof why) != CANARY_OK)
    return CANARY_OK;
  int rc = CANARY_OK;
  for (int i = 0; i < p->n_dispersion && !rc && mp.ev.on; i++) {
    int k = 0;
    while (k < mp.n_pairs && strcmp(mp.pairs[k].num, p->dispersion[i].counter))
      k++;
    if (k < mp.n_pairs)
      continue;
    char names[160];
    size_t used = 0;
    names[0] = '\0';
    for (int j = 0; j < mp.n_pairs && used < sizeof names; j++)
      used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", j ? ", " : "",
                               mp.pairs[j].num);
    rc = schema_fail(ld, ctx->dispersion[i], CANARY_EINVALID,
                     "dispersion of '%s': no ratio the plan decides on evidence counts it "
                     "(its bad-event counters: %s)",
                     p->dispersion[i].counter, used ? names : "none");
  }
  mstore_plan_free(&mp);
  return rc;
}

int planfile_load(struct loader *ld, const struct ynode *root, struct plan *p) {
  struct planctx ctx = {.plan = p};
  struct seen seen[PF_COUNT];
  ld->ctx = &ctx;
  int rc = schema_walk(ld, root, "plan", plan_fields, PF_COUNT, p, seen);
  if (!rc)
    rc = resolve_cohorts(ld, &ctx);
  if (!rc)
    rc = check_dispersion(ld, &ctx);
  if (!rc)
    rc = check_checklist(ld, &ctx);
  char why[200];
  if (!rc && !plan_validate(p, why, sizeof why))
    rc = schema_fail(ld, seen[PF_STAGES].value, CANARY_EINVALID, "%s", why);
  ld->ctx = NULL;
  return rc;
}
