/*
 * The seed's "Feature Flag Configuration" JSON, read as a change to a complete plan: it carries
 * the kill switch, each cohort's percentage, users and features, and the halt thresholds.
 */
#include "config/flagfile.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A key that appeared before position i in mapping m (its key node), or NULL. */
static const struct ynode *earlier_key(const struct ynode *m, size_t i) {
  for (size_t j = 0; j < i; j += 2)
    if (strcmp(m->kids[j]->str, m->kids[i]->str) == 0)
      return m->kids[j];
  return NULL;
}

static int duplicate(struct loader *ld, const struct ynode *key, const struct ynode *first,
                     const char *what) {
  return schema_fail(ld, key, CANARY_EINVALID, "duplicate key '%s' in %s (first at %d:%d)",
                     key->str, what, first->line, first->col);
}

/*
 * "enabled" is the manual process's record of which cohorts it had switched on; canaryd now
 * drives exposure itself, so the value is checked and dropped (docs/configuration.md).
 */
static const struct field cohort_fields[] = {
    F_IGNORED("enabled", FIELD_BOOL, 0),
    F_NUM(struct stage, "percentage", traffic_percent, 0, 100, false),
    F_NAMES(struct stage, "users", segments, n_segments, false),
    F_NAMES(struct stage, "features", features, n_features, false),
};

static void stage_names(const struct plan *p, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int j = 0; j < p->n_stages && used < len; j++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s", j ? ", " : "", p->stages[j].name);
}

static int apply_cohort(struct loader *ld, const struct ynode *key, const struct ynode *value,
                        struct plan *p) {
  int idx = plan_stage_index(p, key->str);
  if (idx < 0) {
    char names[160];
    stage_names(p, names, sizeof names);
    return schema_fail(ld, key, CANARY_EINVALID, "unknown cohort '%s' (the plan's stages: %s)",
                       key->str, names);
  }
  return schema_walk(ld, value, "cohort", cohort_fields,
                     sizeof cohort_fields / sizeof *cohort_fields, &p->stages[idx], NULL);
}

static int set_cohorts(struct loader *ld, const struct ynode *v, void *target) {
  int rc = schema_expect(ld, v, YNODE_MAP, "cohorts");
  for (size_t i = 0; !rc && i + 1 < v->n; i += 2) {
    const struct ynode *first = earlier_key(v, i);
    rc = first ? duplicate(ld, v->kids[i], first, "cohorts")
               : apply_cohort(ld, v->kids[i], v->kids[i + 1], target);
  }
  return rc;
}

static int apply_halt(struct loader *ld, const struct ynode *key, const struct ynode *value,
                      struct plan *p) {
  for (int j = 0; j < p->n_params; j++)
    if (strcmp(p->params[j].name, key->str) == 0)
      return schema_num(ld, value, key->str, -HUGE_VAL, HUGE_VAL, &p->params[j].value);
  char names[200];
  size_t used = 0;
  names[0] = '\0';
  for (int j = 0; j < p->n_params && used < sizeof names; j++)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", j ? ", " : "",
                             p->params[j].name);
  return schema_fail(ld, key, CANARY_EINVALID,
                     "unknown halt condition '%s' (the plan's halt_conditions: %s)", key->str,
                     names);
}

static int set_halts(struct loader *ld, const struct ynode *v, void *target) {
  int rc = schema_expect(ld, v, YNODE_MAP, "halt_conditions");
  for (size_t i = 0; !rc && i + 1 < v->n; i += 2) {
    const struct ynode *first = earlier_key(v, i);
    rc = first ? duplicate(ld, v->kids[i], first, "halt_conditions")
               : apply_halt(ld, v->kids[i], v->kids[i + 1], target);
  }
  return rc;
}

/* "version" is the flag file's own version, not the plan's: checked and dropped. */
static const struct field canary_fields[] = {
    F_BOOL(struct plan, "enabled", canary_enabled, false),
    F_IGNORED("version", FIELD_STR, 64),
    F_CUSTOM("cohorts", set_cohorts, false),
    F_CUSTOM("halt_conditions", set_halts, false),
};

static const struct field top_fields[] = {
    F_MAP("canary", canary_fields, true),
};

bool flagfile_is_overlay(const struct ynode *root) {
  return root && yamltree_get(root, "canary") != NULL;
}

int flagfile_apply(struct loader *ld, const struct ynode *root, struct plan *p) {
  int rc = schema_walk(ld, root, "feature-flag file", top_fields, 1, p, NULL);
  if (rc)
    return rc;
  char why[200];
  if (plan_validate(p, why, sizeof why))
    return CANARY_OK;
  const struct ynode *at = yamltree_get(yamltree_get(root, "canary"), "cohorts");
  return schema_fail(ld, at ? at : root, CANARY_EINVALID, "%s", why);
}
