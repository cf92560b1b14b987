/* The effect list and the names of the output enums. */
#include "core/effect.h"
#include "core/enum_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct effect *effects_push(struct effects *fx, enum effect_kind kind) {
  if (fx->n == fx->cap) {
    size_t cap = fx->cap ? fx->cap * 2 : 8;
    struct effect *items = realloc(fx->items, cap * sizeof *items);
    if (!items)
      return NULL;
    fx->items = items;
    fx->cap = cap;
  }
  struct effect *e = &fx->items[fx->n++];
  memset(e, 0, sizeof *e);
  e->kind = kind;
  return e;
}

void effects_clear(struct effects *fx) { fx->n = 0; }

void effects_free(struct effects *fx) {
  free(fx->items);
  fx->items = NULL;
  fx->n = fx->cap = 0;
}

size_t effects_count(const struct effects *fx, enum effect_kind kind) {
  size_t n = 0;
  for (size_t i = 0; i < fx->n; i++)
    n += fx->items[i].kind == kind;
  return n;
}

static struct evidence_item *evidence_slot(struct decision *d, const char *key,
                                           enum evidence_kind kind) {
  if (d->n_evidence >= EVIDENCE_MAX)
    return NULL;
  struct evidence_item *it = &d->evidence[d->n_evidence++];
  memset(it, 0, sizeof *it);
  snprintf(it->key, sizeof it->key, "%s", key);
  it->kind = kind;
  return it;
}

void decision_add_num(struct decision *d, const char *key, double v) {
  struct evidence_item *it = evidence_slot(d, key, EVIDENCE_NUM);
  if (it)
    it->num = v;
}

void decision_add_int(struct decision *d, const char *key, int64_t v) {
  struct evidence_item *it = evidence_slot(d, key, EVIDENCE_INT);
  if (it)
    it->i = v;
}

void decision_add_str(struct decision *d, const char *key, const char *v) {
  struct evidence_item *it = evidence_slot(d, key, EVIDENCE_STR);
  if (it)
    snprintf(it->str, sizeof it->str, "%s", v);
}

void decision_add_bool(struct decision *d, const char *key, bool v) {
  struct evidence_item *it = evidence_slot(d, key, EVIDENCE_BOOL);
  if (it)
    it->b = v;
}

const struct evidence_item *decision_evidence(const struct decision *d, const char *key) {
  for (int i = 0; i < d->n_evidence; i++)
    if (strcmp(d->evidence[i].key, key) == 0)
      return &d->evidence[i];
  return NULL;
}

ENUM_NAMES(rollout_state, rollout_state, ROLLOUT_STATE_MAP, ROLLOUT_STATE_COUNT)
ENUM_PARSE(rollout_state, rollout_state, ROLLOUT_STATE_COUNT)
ENUM_NAMES(decision_action, decision_action, DECISION_ACTION_MAP, DECISION_ACTION_COUNT)
ENUM_PARSE(decision_action, decision_action, DECISION_ACTION_COUNT)
ENUM_NAMES(notify_channel, notify_channel, NOTIFY_CHANNEL_MAP, NOTIFY_CHANNEL_COUNT)
ENUM_NAMES(notify_severity, notify_severity, NOTIFY_SEVERITY_MAP, NOTIFY_SEVERITY_COUNT)
