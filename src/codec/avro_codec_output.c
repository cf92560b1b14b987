/* The outputs <-> Decision, Notification, TrafficSplit and DeadLetter records. */
#include <stdio.h>
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"

#define INVALID(why, why_len, ...) canary_why((why), (why_len), CANARY_EINVALID, __VA_ARGS__)

/* Field k of a decoded record; present is false for a null union. */
static int get(struct avro_codec_slot *sl, int k, avro_value_t *v, bool *present, char *why,
               size_t why_len) {
  avro_value_t f;
  int rc = avro_codec_field(sl, &sl->dec, k, &f);
  if (!rc && (rc = avro_codec_opt(&f, v)) >= 0) {
    *present = rc == 1;
    return CANARY_OK;
  }
  return INVALID(why, why_len, "%s: %s", sl->spec[k].name, avro_strerror());
}

/* A string field into dst[size] (a null one as ""). */
static int str(struct avro_codec_slot *sl, int k, char *dst, size_t size, char *why,
               size_t why_len) {
  avro_value_t v;
  bool present = false;
  int rc = get(sl, k, &v, &present, why, why_len);
  if (rc || !present)
    return rc;
  return avro_codec_copy_str(&v, sl->spec[k].name, dst, size, why, why_len);
}

static int i64(struct avro_codec_slot *sl, int k, int64_t *out, char *why, size_t why_len) {
  avro_value_t v;
  bool present = false;
  int rc = get(sl, k, &v, &present, why, why_len);
  if (!rc && avro_value_get_long(&v, out))
    rc = INVALID(why, why_len, "%s: %s", sl->spec[k].name, avro_strerror());
  return rc;
}

static int i32(struct avro_codec_slot *sl, int k, int32_t *out, char *why, size_t why_len) {
  avro_value_t v;
  bool present = false;
  int rc = get(sl, k, &v, &present, why, why_len);
  if (!rc && avro_value_get_int(&v, out))
    rc = INVALID(why, why_len, "%s: %s", sl->spec[k].name, avro_strerror());
  return rc;
}

static int dbl(struct avro_codec_slot *sl, int k, double *out, char *why, size_t why_len) {
  avro_value_t v;
  bool present = false;
  int rc = get(sl, k, &v, &present, why, why_len);
  if (!rc && avro_value_get_double(&v, out))
    rc = INVALID(why, why_len, "%s: %s", sl->spec[k].name, avro_strerror());
  return rc;
}

static int boolean(struct avro_codec_slot *sl, int k, bool *out, char *why, size_t why_len) {
  avro_value_t v;
  bool present = false;
  int b = 0;
  int rc = get(sl, k, &v, &present, why, why_len);
  if (!rc && avro_value_get_boolean(&v, &b))
    rc = INVALID(why, why_len, "%s: %s", sl->spec[k].name, avro_strerror());
  *out = b != 0;
  return rc;
}

/* A string field naming a value of an enum: name(i) for i < count. */
static int enum_field(struct avro_codec_slot *sl, int k, const char *(*name)(int), int count,
                      int *out, char *why, size_t why_len) {
  avro_value_t v;
  bool present = false;
  const char *s = "";
  size_t n = 0;
  int rc = get(sl, k, &v, &present, why, why_len);
  if (rc || (rc = avro_codec_get_str(&v, sl->spec[k].name, &s, &n, why, why_len)))
    return rc;
  for (int i = 0; i < count; i++) {
    const char *want = name(i);
    if (strlen(want) == n && memcmp(want, s, n) == 0) {
      *out = i;
      return CANARY_OK;
    }
  }
  char got[48];
  return INVALID(why, why_len, "%s: unknown value '%s'", sl->spec[k].name,
                 avro_codec_excerpt(s, n, got, sizeof got));
}

static const char *action_n(int v) { return decision_action_name((enum decision_action)v); }
static const char *state_n(int v) { return rollout_state_name((enum rollout_state)v); }
static const char *channel_n(int v) { return notify_channel_name((enum notify_channel)v); }
static const char *severity_n(int v) { return notify_severity_name((enum notify_severity)v); }

/* An enum's wire name (a string literal) into string field k. */
static int put_name(struct avro_codec_slot *sl, avro_value_t *rec, int k, const char *name) {
  return avro_codec_put_str(sl, rec, k, name, strlen(name) + 1);
}

/* ---- decisions ------------------------------------------------------------------------------ */

int avro_codec_encode_decision(avro_codec_t *c, const struct decision *d, struct avro_buf *out) {
  if ((unsigned)d->action >= DECISION_ACTION_COUNT || (unsigned)d->state >= ROLLOUT_STATE_COUNT ||
      d->n_evidence < 0 || d->n_evidence > EVIDENCE_MAX)
    return CANARY_EINVALID;
  struct avro_codec_slot *sl = &c->slot[SLOT_DECISION];
  avro_value_t *rec = avro_codec_begin(c, SLOT_DECISION);
  if (!rec)
    return CANARY_ENOMEM;
  avro_value_t map, u, v;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, XF_ID, d->id, sizeof d->id)) ||
      (rc = avro_codec_put_str(sl, rec, XF_ROLLOUT, d->rollout, sizeof d->rollout)) ||
      (rc = avro_codec_put_long(sl, rec, XF_SEQ, d->seq)) ||
      (rc = avro_codec_put_long(sl, rec, XF_TIME, d->time_ms)) ||
      (rc = put_name(sl, rec, XF_ACTION, decision_action_name(d->action))) ||
      (rc = avro_codec_put_ostr(sl, rec, XF_FROM_STAGE, d->from_stage, sizeof d->from_stage)) ||
      (rc = avro_codec_put_ostr(sl, rec, XF_TO_STAGE, d->to_stage, sizeof d->to_stage)) ||
      (rc = put_name(sl, rec, XF_STATE, rollout_state_name(d->state))) ||
      (rc = avro_codec_put_str(sl, rec, XF_REASON, d->reason, sizeof d->reason)) ||
      (rc = avro_codec_put_ostr(sl, rec, XF_RULE, d->rule, sizeof d->rule)) ||
      (rc = avro_codec_put_str(sl, rec, XF_ACTOR, d->actor, sizeof d->actor)))
    return rc;
  if (avro_codec_field(sl, rec, XF_EVIDENCE, &map))
    return CANARY_EINVALID;
  for (int i = 0; i < d->n_evidence; i++) {
    const struct evidence_item *e = &d->evidence[i];
    int is_new = 0;
    if (!memchr(e->key, '\0', sizeof e->key) || !e->key[0])
      return CANARY_EINVALID;
    if (avro_value_add(&map, e->key, &u, NULL, &is_new))
      return CANARY_ENOMEM;
    if (!is_new)
      continue; /* a repeated key keeps its first value, as in the JSON */
    switch (e->kind) {
    case EVIDENCE_BOOL:
      rc = avro_value_set_branch(&u, EV_BOOL, &v) || avro_value_set_boolean(&v, e->b);
      break;
    case EVIDENCE_INT:
      rc = avro_value_set_branch(&u, EV_LONG, &v) || avro_value_set_long(&v, e->i);
      break;
    case EVIDENCE_NUM:
      rc = avro_value_set_branch(&u, EV_DOUBLE, &v) || avro_value_set_double(&v, e->num);
      break;
    case EVIDENCE_STR:
      if (!memchr(e->str, '\0', sizeof e->str))
        return CANARY_EINVALID;
      rc = avro_value_set_branch(&u, EV_STRING, &v) || avro_value_set_string(&v, e->str);
      break;
    default:
      return CANARY_EINVALID;
    }
    if (rc)
      return CANARY_ENOMEM;
  }
  return avro_codec_finish(c, SLOT_DECISION, out);
}

static int decode_evidence(struct avro_codec_slot *sl, struct decision *d, char *why,
                           size_t why_len) {
  avro_value_t map, u, v;
  size_t n;
  if (avro_codec_field(sl, &sl->dec, XF_EVIDENCE, &map) || avro_value_get_size(&map, &n))
    return INVALID(why, why_len, "evidence: %s", avro_strerror());
  for (size_t i = 0; i < n; i++) {
    const char *key;
    int branch;
    if (avro_value_get_by_index(&map, i, &u, &key) || avro_value_get_discriminant(&u, &branch) ||
        avro_value_get_current_branch(&u, &v))
      return INVALID(why, why_len, "evidence: %s", avro_strerror());
    if (branch == EV_NULL)
      continue; /* no evidence_kind for "no value" */
    if (d->n_evidence == EVIDENCE_MAX)
      return INVALID(why, why_len, "evidence: more than %d items", EVIDENCE_MAX);
    struct evidence_item *e = &d->evidence[d->n_evidence];
    size_t klen = strlen(key);
    if (klen == 0 || klen >= sizeof e->key)
      return INVALID(why, why_len, "evidence: key of %zu bytes, must be 1..%zu", klen,
                     sizeof e->key - 1);
    memcpy(e->key, key, klen + 1);
    int rc = 0, b = 0;
    switch (branch) {
    case EV_BOOL:
      e->kind = EVIDENCE_BOOL;
      rc = avro_value_get_boolean(&v, &b);
      e->b = b != 0;
      break;
    case EV_LONG:
      e->kind = EVIDENCE_INT;
      rc = avro_value_get_long(&v, &e->i);
      break;
    case EV_DOUBLE:
      e->kind = EVIDENCE_NUM;
      rc = avro_value_get_double(&v, &e->num);
      break;
    default: {
      char field[EVIDENCE_KEY_MAX + 16];
      snprintf(field, sizeof field, "evidence.%s", e->key);
      e->kind = EVIDENCE_STR;
      if ((rc = avro_codec_copy_str(&v, field, e->str, sizeof e->str, why, why_len)))
        return rc;
      break;
    }
    }
    if (rc)
      return INVALID(why, why_len, "evidence.%s: %s", e->key, avro_strerror());
    d->n_evidence++;
  }
  return CANARY_OK;
}

int avro_codec_decode_decision(avro_codec_t *c, const void *buf, size_t len, struct decision *d,
                               char *why, size_t why_len) {
  memset(d, 0, sizeof *d);
  struct avro_codec_slot *sl;
  int rc = avro_codec_read(c, buf, len, 1u << SLOT_DECISION, &sl, why, why_len);
  int action = 0, state = 0;
  if (rc || (rc = str(sl, XF_ID, d->id, sizeof d->id, why, why_len)) ||
      (rc = str(sl, XF_ROLLOUT, d->rollout, sizeof d->rollout, why, why_len)) ||
      (rc = i64(sl, XF_SEQ, &d->seq, why, why_len)) ||
      (rc = i64(sl, XF_TIME, &d->time_ms, why, why_len)) ||
      (rc = enum_field(sl, XF_ACTION, action_n, DECISION_ACTION_COUNT, &action, why, why_len)) ||
      (rc = str(sl, XF_FROM_STAGE, d->from_stage, sizeof d->from_stage, why, why_len)) ||
      (rc = str(sl, XF_TO_STAGE, d->to_stage, sizeof d->to_stage, why, why_len)) ||
      (rc = enum_field(sl, XF_STATE, state_n, ROLLOUT_STATE_COUNT, &state, why, why_len)) ||
      (rc = str(sl, XF_REASON, d->reason, sizeof d->reason, why, why_len)) ||
      (rc = str(sl, XF_RULE, d->rule, sizeof d->rule, why, why_len)) ||
      (rc = decode_evidence(sl, d, why, why_len)) ||
      (rc = str(sl, XF_ACTOR, d->actor, sizeof d->actor, why, why_len)))
    return rc;
  d->action = (enum decision_action)action;
  d->state = (enum rollout_state)state;
  return CANARY_OK;
}

/* ---- notifications -------------------------------------------------------------------------- */

int avro_codec_encode_notification(avro_codec_t *c, const struct notification *n,
                                   const char *slack_json, struct avro_buf *out) {
  if ((unsigned)n->channel >= NOTIFY_CHANNEL_COUNT ||
      (unsigned)n->severity >= NOTIFY_SEVERITY_COUNT)
    return CANARY_EINVALID;
  struct avro_codec_slot *sl = &c->slot[SLOT_NOTIFICATION];
  avro_value_t *rec = avro_codec_begin(c, SLOT_NOTIFICATION);
  avro_value_t v;
  if (!rec)
    return CANARY_ENOMEM;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, NF_ID, n->id, sizeof n->id)) ||
      (rc = avro_codec_put_str(sl, rec, NF_ROLLOUT, n->rollout, sizeof n->rollout)) ||
      (rc = avro_codec_put_long(sl, rec, NF_TIME, n->time_ms)) ||
      (rc = avro_codec_put_str(sl, rec, NF_CHANNEL, n->target, sizeof n->target)) ||
      (rc = put_name(sl, rec, NF_CHANNEL_KIND, notify_channel_name(n->channel))) ||
      (rc = put_name(sl, rec, NF_SEVERITY, notify_severity_name(n->severity))) ||
      (rc = avro_codec_put_str(sl, rec, NF_TITLE, n->title, sizeof n->title)) ||
      (rc = avro_codec_put_str(sl, rec, NF_TEXT, n->text, sizeof n->text)) ||
      (rc = avro_codec_put_ostr(sl, rec, NF_DECISION_ID, n->decision_id, sizeof n->decision_id)))
    return rc;
  if (avro_codec_field(sl, rec, NF_SLACK, &v) ||
      avro_value_set_string(&v, slack_json ? slack_json : ""))
    return CANARY_ENOMEM;
  return avro_codec_finish(c, SLOT_NOTIFICATION, out);
}

int avro_codec_decode_notification(avro_codec_t *c, const void *buf, size_t len,
                                   struct notification *n, char *slack, size_t slack_len, char *why,
                                   size_t why_len) {
  memset(n, 0, sizeof *n);
  if (slack && slack_len)
    slack[0] = '\0';
  struct avro_codec_slot *sl;
  int rc = avro_codec_read(c, buf, len, 1u << SLOT_NOTIFICATION, &sl, why, why_len);
  int channel = 0, severity = 0;
  if (rc || (rc = str(sl, NF_ID, n->id, sizeof n->id, why, why_len)) ||
      (rc = str(sl, NF_ROLLOUT, n->rollout, sizeof n->rollout, why, why_len)) ||
      (rc = i64(sl, NF_TIME, &n->time_ms, why, why_len)) ||
      (rc = str(sl, NF_CHANNEL, n->target, sizeof n->target, why, why_len)) ||
      (rc = enum_field(sl, NF_CHANNEL_KIND, channel_n, NOTIFY_CHANNEL_COUNT, &channel, why,
                       why_len)) ||
      (rc = enum_field(sl, NF_SEVERITY, severity_n, NOTIFY_SEVERITY_COUNT, &severity, why,
                       why_len)) ||
      (rc = str(sl, NF_TITLE, n->title, sizeof n->title, why, why_len)) ||
      (rc = str(sl, NF_TEXT, n->text, sizeof n->text, why, why_len)) ||
      (rc = str(sl, NF_DECISION_ID, n->decision_id, sizeof n->decision_id, why, why_len)))
    return rc;
  n->channel = (enum notify_channel)channel;
  n->severity = (enum notify_severity)severity;
  if (!slack)
    return CANARY_OK;
  avro_value_t v;
  bool present = false;
  const char *s = "";
  size_t sn = 0;
  if ((rc = get(sl, NF_SLACK, &v, &present, why, why_len)) ||
      (rc = avro_codec_get_str(&v, "slack", &s, &sn, why, why_len)))
    return rc;
  if (sn >= slack_len)
    return canary_why(why, why_len, CANARY_EFULL, "slack: %zu bytes do not fit the %zu-byte buffer",
                      sn + 1, slack_len);
  memcpy(slack, s, sn);
  slack[sn] = '\0';
  return CANARY_OK;
}

/* ---- traffic splits ------------------------------------------------------------------------- */

/* Cohort's fields, pinned by the spec */
enum { CO_NAME, CO_PERCENT, CO_ENABLED, CO_KILL, CO_SEGMENTS, CO_FEATURES };

/* A cohort's segments or features into the array field k of item. */
static int put_names(avro_value_t *item, int k, const char (*names)[PLAN_NAME_MAX], int n) {
  avro_value_t u, arr, el;
  if (avro_value_get_by_index(item, (size_t)k, &u, NULL) ||
      avro_value_set_branch(&u, 1, &arr)) /* always the list: an empty one says "none" */
    return CANARY_ENOMEM;
  for (int i = 0; i < n && i < PLAN_MAX_LIST; i++) {
    if (!memchr(names[i], '\0', PLAN_NAME_MAX))
      return CANARY_EINVALID;
    if (avro_value_append(&arr, &el, NULL) || avro_value_set_string(&el, names[i]))
      return CANARY_ENOMEM;
  }
  return CANARY_OK;
}

static int get_names(avro_value_t *item, int k, const char *what, size_t cohort,
                     char (*names)[PLAN_NAME_MAX], int *n, char *why, size_t why_len) {
  avro_value_t u, arr, el;
  size_t len;
  int branch;
  *n = 0;
  if (avro_value_get_by_index(item, (size_t)k, &u, NULL) ||
      avro_value_get_discriminant(&u, &branch))
    return INVALID(why, why_len, "cohorts: %s", avro_strerror());
  if (branch == 0)
    return CANARY_OK; /* null: none */
  if (avro_value_get_current_branch(&u, &arr) || avro_value_get_size(&arr, &len))
    return INVALID(why, why_len, "cohorts: %s", avro_strerror());
  if (len > PLAN_MAX_LIST)
    return INVALID(why, why_len, "cohorts[%zu].%s: %zu, at most %d", cohort, what, len,
                   PLAN_MAX_LIST);
  for (size_t i = 0; i < len; i++) {
    char field[48];
    snprintf(field, sizeof field, "cohorts[%zu].%s[%zu]", cohort, what, i);
    int rc;
    if (avro_value_get_by_index(&arr, i, &el, NULL))
      return INVALID(why, why_len, "cohorts: %s", avro_strerror());
    if ((rc = avro_codec_copy_str(&el, field, names[i], PLAN_NAME_MAX, why, why_len)))
      return rc;
  }
  *n = (int)len;
  return CANARY_OK;
}

int avro_codec_encode_traffic(avro_codec_t *c, const struct traffic_split *t,
                              struct avro_buf *out) {
  if (t->n_cohorts < 0 || t->n_cohorts > PLAN_MAX_STAGES)
    return CANARY_EINVALID;
  struct avro_codec_slot *sl = &c->slot[SLOT_TRAFFIC];
  avro_value_t *rec = avro_codec_begin(c, SLOT_TRAFFIC);
  if (!rec)
    return CANARY_ENOMEM;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, TF_ID, t->id, sizeof t->id)) ||
      (rc = avro_codec_put_str(sl, rec, TF_ROLLOUT, t->rollout, sizeof t->rollout)) ||
      (rc = avro_codec_put_str(sl, rec, TF_SERVICE, t->service, sizeof t->service)) ||
      (rc = avro_codec_put_str(sl, rec, TF_VERSION, t->version, sizeof t->version)) ||
      (rc = avro_codec_put_str(sl, rec, TF_BASELINE_VERSION, t->baseline_version,
                               sizeof t->baseline_version)) ||
      (rc = avro_codec_put_long(sl, rec, TF_TIME, t->time_ms)) ||
      (rc = avro_codec_put_double(sl, rec, TF_EXPOSURE_PERCENT, t->exposure_percent)) ||
      (rc = avro_codec_put_bool(sl, rec, TF_CANARY_ENABLED, t->canary_enabled)) ||
      (rc = avro_codec_put_bool(sl, rec, TF_BREAKER_OPEN, t->breaker_open)) ||
      (rc = avro_codec_put_str(sl, rec, TF_SALT, t->salt, sizeof t->salt)) ||
      (rc = avro_codec_put_int(sl, rec, TF_BUCKETS, t->buckets)))
    return rc;
  avro_value_t arr, item, f;
  if (avro_codec_field(sl, rec, TF_COHORTS, &arr))
    return CANARY_EINVALID;
  for (int i = 0; i < t->n_cohorts; i++) {
    const struct traffic_cohort *co = &t->cohorts[i];
    if (!memchr(co->name, '\0', sizeof co->name))
      return CANARY_EINVALID;
    if (avro_value_append(&arr, &item, NULL) || avro_value_get_by_index(&item, CO_NAME, &f, NULL) ||
        avro_value_set_string(&f, co->name) ||
        avro_value_get_by_index(&item, CO_PERCENT, &f, NULL) ||
        avro_value_set_double(&f, co->percent) ||
        avro_value_get_by_index(&item, CO_ENABLED, &f, NULL) ||
        avro_value_set_boolean(&f, co->enabled) ||
        avro_value_get_by_index(&item, CO_KILL, &f, NULL) || avro_value_set_boolean(&f, co->kill))
      return CANARY_ENOMEM;
    int rc2;
    if ((rc2 = put_names(&item, CO_SEGMENTS, co->segments, co->n_segments)) ||
        (rc2 = put_names(&item, CO_FEATURES, co->features, co->n_features)))
      return rc2;
  }
  return avro_codec_finish(c, SLOT_TRAFFIC, out);
}

/* lists: the cohorts carry segments and features (schema id 14; id 12's do not: none). */
static int decode_cohorts(struct avro_codec_slot *sl, bool lists, struct traffic_split *t,
                          char *why, size_t why_len) {
  avro_value_t arr, item, f;
  size_t n;
  if (avro_codec_field(sl, &sl->dec, TF_COHORTS, &arr) || avro_value_get_size(&arr, &n))
    return INVALID(why, why_len, "cohorts: %s", avro_strerror());
  if (n > PLAN_MAX_STAGES)
    return INVALID(why, why_len, "cohorts: %zu, more than the %d stages a plan has", n,
                   PLAN_MAX_STAGES);
  for (size_t i = 0; i < n; i++) {
    struct traffic_cohort *co = &t->cohorts[i];
    char field[32];
    int en = 0, kill = 0, rc;
    snprintf(field, sizeof field, "cohorts[%zu].name", i);
    if (avro_value_get_by_index(&arr, i, &item, NULL) ||
        avro_value_get_by_index(&item, CO_NAME, &f, NULL))
      return INVALID(why, why_len, "cohorts: %s", avro_strerror());
    if ((rc = avro_codec_copy_str(&f, field, co->name, sizeof co->name, why, why_len)))
      return rc;
    if (avro_value_get_by_index(&item, CO_PERCENT, &f, NULL) ||
        avro_value_get_double(&f, &co->percent) ||
        avro_value_get_by_index(&item, CO_ENABLED, &f, NULL) || avro_value_get_boolean(&f, &en) ||
        avro_value_get_by_index(&item, CO_KILL, &f, NULL) || avro_value_get_boolean(&f, &kill))
      return INVALID(why, why_len, "cohorts: %s", avro_strerror());
    co->enabled = en != 0;
    co->kill = kill != 0;
    if (!lists)
      continue;
    if ((rc = get_names(&item, CO_SEGMENTS, "segments", i, co->segments, &co->n_segments, why,
                        why_len)) ||
        (rc = get_names(&item, CO_FEATURES, "features", i, co->features, &co->n_features, why,
                        why_len)))
      return rc;
  }
  t->n_cohorts = (int)n;
  return CANARY_OK;
}

int avro_codec_decode_traffic(avro_codec_t *c, const void *buf, size_t len, struct traffic_split *t,
                              char *why, size_t why_len) {
  memset(t, 0, sizeof *t);
  struct avro_codec_slot *sl;
  int32_t buckets = 0;
  int rc =
      avro_codec_read(c, buf, len, 1u << SLOT_TRAFFIC | 1u << SLOT_TRAFFIC_V1, &sl, why, why_len);
  if (rc || (rc = str(sl, TF_ID, t->id, sizeof t->id, why, why_len)) ||
      (rc = str(sl, TF_ROLLOUT, t->rollout, sizeof t->rollout, why, why_len)) ||
      (rc = str(sl, TF_SERVICE, t->service, sizeof t->service, why, why_len)) ||
      (rc = str(sl, TF_VERSION, t->version, sizeof t->version, why, why_len)) ||
      (rc = str(sl, TF_BASELINE_VERSION, t->baseline_version, sizeof t->baseline_version, why,
                why_len)) ||
      (rc = i64(sl, TF_TIME, &t->time_ms, why, why_len)) ||
      (rc = dbl(sl, TF_EXPOSURE_PERCENT, &t->exposure_percent, why, why_len)) ||
      (rc = boolean(sl, TF_CANARY_ENABLED, &t->canary_enabled, why, why_len)) ||
      (rc = boolean(sl, TF_BREAKER_OPEN, &t->breaker_open, why, why_len)) ||
      (rc = decode_cohorts(sl, sl != &c->slot[SLOT_TRAFFIC_V1], t, why, why_len)) ||
      (rc = str(sl, TF_SALT, t->salt, sizeof t->salt, why, why_len)) ||
      (rc = i32(sl, TF_BUCKETS, &buckets, why, why_len)))
    return rc;
  t->buckets = buckets;
  return CANARY_OK;
}

/* ---- dead letters --------------------------------------------------------------------------- */

int avro_codec_encode_dlq(avro_codec_t *c, const void *original, size_t len, const char *topic,
                          int32_t partition, int64_t offset, const void *key, size_t key_len,
                          const char *reason, int64_t time_ms, struct avro_buf *out) {
  static char empty[1];
  if (!topic || (!original && len))
    return CANARY_EINVALID;
  struct avro_codec_slot *sl = &c->slot[SLOT_DLQ];
  avro_value_t *rec = avro_codec_begin(c, SLOT_DLQ);
  avro_value_t v;
  if (!rec)
    return CANARY_ENOMEM;
  int rc;
  /* avro_value_set_bytes copies, but its prototype takes a non-const pointer. */
  if (avro_codec_field(sl, rec, LF_ORIGINAL, &v) ||
      avro_value_set_bytes(&v, len ? (void *)(uintptr_t)original : empty, len))
    return CANARY_ENOMEM;
  if ((rc = avro_codec_put_branch(sl, rec, LF_KEY, key != NULL, &v)))
    return rc;
  if (key && avro_value_set_bytes(&v, key_len ? (void *)(uintptr_t)key : empty, key_len))
    return CANARY_ENOMEM;
  if (avro_codec_field(sl, rec, LF_TOPIC, &v) || avro_value_set_string(&v, topic) ||
      avro_codec_field(sl, rec, LF_REASON, &v) || avro_value_set_string(&v, reason ? reason : ""))
    return CANARY_ENOMEM;
  if ((rc = avro_codec_put_int(sl, rec, LF_PARTITION, partition)) ||
      (rc = avro_codec_put_long(sl, rec, LF_OFFSET, offset)) ||
      (rc = avro_codec_put_long(sl, rec, LF_TIME, time_ms)))
    return rc;
  return avro_codec_finish(c, SLOT_DLQ, out);
}

/* A bytes value as pointer and size; an empty one as a valid pointer. */
static int bytes(avro_value_t *v, const unsigned char **p, size_t *n) {
  const void *b = NULL;
  size_t size = 0;
  if (avro_value_get_bytes(v, &b, &size))
    return -1;
  *p = b ? b : (const unsigned char *)"";
  *n = size;
  return 0;
}

int avro_codec_decode_dlq(avro_codec_t *c, const void *buf, size_t len, struct avro_dlq *d,
                          char *why, size_t why_len) {
  memset(d, 0, sizeof *d);
  struct avro_codec_slot *sl;
  int rc = avro_codec_read(c, buf, len, 1u << SLOT_DLQ, &sl, why, why_len);
  if (rc)
    return rc;
  avro_value_t v;
  bool present = false;
  size_t n;
  if ((rc = get(sl, LF_ORIGINAL, &v, &present, why, why_len)))
    return rc;
  if (bytes(&v, &d->original, &d->original_len))
    return INVALID(why, why_len, "original: %s", avro_strerror());
  if ((rc = get(sl, LF_KEY, &v, &present, why, why_len)))
    return rc;
  if (present && bytes(&v, &d->key, &d->key_len))
    return INVALID(why, why_len, "key: %s", avro_strerror());
  if ((rc = get(sl, LF_TOPIC, &v, &present, why, why_len)) ||
      (rc = avro_codec_get_str(&v, "topic", &d->topic, &n, why, why_len)) ||
      (rc = get(sl, LF_REASON, &v, &present, why, why_len)) ||
      (rc = avro_codec_get_str(&v, "reason", &d->reason, &n, why, why_len)) ||
      (rc = i32(sl, LF_PARTITION, &d->partition, why, why_len)) ||
      (rc = i64(sl, LF_OFFSET, &d->offset, why, why_len)) ||
      (rc = i64(sl, LF_TIME, &d->time_ms, why, why_len)))
    return rc;
  return CANARY_OK;
}
