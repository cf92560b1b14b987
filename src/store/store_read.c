/* The read side for canaryctl and the dashboard: rollouts, the decision log with its evidence,
 * a service's dispersion, one decision. */
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/rollout_json.h"
#include "store/store_internal.h"

/* ---- read side ------------------------------------------------------------------------------- */

int store_live_rollouts(store_t *s, const char *service, const char *id,
                        char (*ids)[EVENT_NAME_MAX], int *shards, size_t max, size_t *n) {
  *n = 0;
  const char *values[] = {service, id};
  int rc;
  PGresult *res = store_exec(s, "live rollouts of a service",
                             "SELECT id, shard FROM rollouts WHERE service = $1 AND id <> $2 "
                             "AND state IN ('pending', 'running', 'paused') ORDER BY ord",
                             2, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  for (int i = 0; i < PQntuples(res) && *n < max; i++) {
    snprintf(ids[*n], EVENT_NAME_MAX, "%s", PQgetvalue(res, i, 0));
    shards[*n] = atoi(PQgetvalue(res, i, 1));
    ++*n;
  }
  PQclear(res);
  return CANARY_OK;
}

int store_list_rollouts(store_t *s, struct store_rollout_row **rows, size_t *n) {
  *rows = NULL;
  *n = 0;
  int rc;
  PGresult *res =
      store_exec(s, "list rollouts", "SELECT id, shard, body FROM rollouts ORDER BY ord", 0, NULL,
                 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  struct store_rollout_row *out = calloc(count ? count : 1, sizeof *out);
  if (!out) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  struct json_doc doc;
  json_doc_init(&doc);
  for (size_t i = 0; i < count && !rc; i++) {
    int r = (int)i;
    const struct json_value *root;
    struct json_error jerr;
    char why[256];
    json_doc_reset(&doc);
    out[i].shard = atoi(PQgetvalue(res, r, 1));
    rc = json_parse(&doc, PQgetvalue(res, r, 2), (size_t)PQgetlength(res, r, 2), &root, &jerr);
    if (rc) {
      store_set_error(s, "rollouts '%s': body %d:%d: %s", PQgetvalue(res, r, 0), jerr.line,
                      jerr.column, jerr.message);
      rc = rc == CANARY_ENOMEM ? rc : CANARY_EINVALID;
    } else if ((rc = rollout_json_read_value(root, &out[i].rollout, why, sizeof why))) {
      store_set_error(s, "rollouts '%s': body %s", PQgetvalue(res, r, 0), why);
    }
  }
  json_doc_free(&doc);
  PQclear(res);
  if (rc) {
    free(out);
    return rc;
  }
  *rows = out;
  *n = count;
  return CANARY_OK;
}

/* Copy a column into a fixed field; false when it does not fit. */
static bool copy_col(char *dst, size_t size, const PGresult *res, int row, int col) {
  size_t len = (size_t)PQgetlength(res, row, col);
  if (len >= size)
    return false;
  memcpy(dst, PQgetvalue(res, row, col), len + 1);
  return true;
}

static const char *const evidence_kind_names[] = {"num", "int", "str", "bool"};

/* evidence_items: [[key, kind, value], ...] as written by store_commit.c. */
static bool read_evidence(const struct json_value *arr, struct decision *d, char *why,
                          size_t why_len) {
  if (arr->type != JSON_ARRAY || arr->n_items > EVIDENCE_MAX) {
    snprintf(why, why_len, "evidence_items: expected an array of at most %d items", EVIDENCE_MAX);
    return false;
  }
  for (size_t i = 0; i < arr->n_items; i++) {
    const struct json_value *it = &arr->items[i];
    struct evidence_item *e = &d->evidence[d->n_evidence];
    if (it->type != JSON_ARRAY || it->n_items != 3 || it->items[0].type != JSON_STRING ||
        it->items[1].type != JSON_STRING || it->items[0].len >= sizeof e->key) {
      snprintf(why, why_len, "evidence_items[%zu]: expected [key, kind, value]", i);
      return false;
    }
    const struct json_value *v = &it->items[2];
    int kind = -1;
    for (int k = 0; k < 4; k++)
      if (strcmp(it->items[1].str, evidence_kind_names[k]) == 0)
        kind = k;
    memcpy(e->key, it->items[0].str, it->items[0].len + 1);
    e->kind = (enum evidence_kind)kind;
    bool ok = false;
    switch (kind) {
    case EVIDENCE_NUM:
      ok = v->type == JSON_NUMBER || v->type == JSON_NULL;
      e->num = v->type == JSON_NUMBER ? v->num : NAN;
      break;
    case EVIDENCE_INT:
      ok = v->type == JSON_NUMBER && v->is_int;
      e->i = v->i;
      break;
    case EVIDENCE_STR:
      ok = v->type == JSON_STRING && v->len < sizeof e->str;
      if (ok)
        memcpy(e->str, v->str, v->len + 1);
      break;
    case EVIDENCE_BOOL:
      ok = v->type == JSON_BOOL;
      e->b = v->b;
      break;
    }
    if (!ok) {
      snprintf(why, why_len, "evidence_items[%zu]: bad %s value", i, it->items[1].str);
      return false;
    }
    d->n_evidence++;
  }
  return true;
}

static int rollout_exists(store_t *s, const char *rollout, bool *exists) {
  const char *values[] = {rollout};
  int rc;
  PGresult *res = store_exec(s, "history", "SELECT 1 FROM rollouts WHERE id = $1", 1, values, 0,
                             PGRES_TUPLES_OK, &rc);
  if (res)
    *exists = PQntuples(res) > 0;
  PQclear(res);
  return rc;
}

enum {
  H_ID,
  H_ROLLOUT,
  H_SEQ,
  H_TIME,
  H_ACTION,
  H_FROM,
  H_TO,
  H_STATE,
  H_REASON,
  H_RULE,
  H_ACTOR,
  H_EVIDENCE
};

static int history_row(store_t *s, const PGresult *res, int r, struct json_doc *doc,
                       struct decision *d) {
  char why[160] = "";
  bool ok = copy_col(d->id, sizeof d->id, res, r, H_ID) &&
            copy_col(d->rollout, sizeof d->rollout, res, r, H_ROLLOUT) &&
            copy_col(d->from_stage, sizeof d->from_stage, res, r, H_FROM) &&
            copy_col(d->to_stage, sizeof d->to_stage, res, r, H_TO) &&
            copy_col(d->reason, sizeof d->reason, res, r, H_REASON) &&
            copy_col(d->rule, sizeof d->rule, res, r, H_RULE) &&
            copy_col(d->actor, sizeof d->actor, res, r, H_ACTOR);
  if (!ok)
    snprintf(why, sizeof why, "a text column is longer than its field");
  d->seq = strtoll(PQgetvalue(res, r, H_SEQ), NULL, 10);
  d->time_ms = strtoll(PQgetvalue(res, r, H_TIME), NULL, 10);
  if (ok && !decision_action_parse(PQgetvalue(res, r, H_ACTION), &d->action)) {
    ok = false;
    snprintf(why, sizeof why, "unknown action '%s'", PQgetvalue(res, r, H_ACTION));
  }
  if (ok && !rollout_state_parse(PQgetvalue(res, r, H_STATE), &d->state)) {
    ok = false;
    snprintf(why, sizeof why, "unknown state '%s'", PQgetvalue(res, r, H_STATE));
  }
  if (ok) {
    const struct json_value *root;
    struct json_error jerr;
    json_doc_reset(doc);
    int rc = json_parse(doc, PQgetvalue(res, r, H_EVIDENCE),
                        (size_t)PQgetlength(res, r, H_EVIDENCE), &root, &jerr);
    if (rc == CANARY_ENOMEM)
      return rc;
    if (rc) {
      ok = false;
      snprintf(why, sizeof why, "evidence_items %d:%d: %s", jerr.line, jerr.column, jerr.message);
    } else {
      ok = read_evidence(root, d, why, sizeof why);
    }
  }
  if (ok)
    return CANARY_OK;
  store_set_error(s, "transitions '%s' seq %s: %s", PQgetvalue(res, r, H_ROLLOUT),
                  PQgetvalue(res, r, H_SEQ), why);
  return CANARY_EINVALID;
}

/* A transition's columns in the order history_row() reads them. */
#define TRANSITION_SELECT                                                                          \
  "SELECT id, rollout, seq, (extract(epoch FROM time) * 1000)::bigint, action, "                   \
  "coalesce(from_stage, ''), coalesce(to_stage, ''), state, reason, coalesce(rule, ''), "          \
  "actor, evidence_items FROM transitions "

int store_history(store_t *s, const char *rollout, struct decision **decisions, size_t *n) {
  *decisions = NULL;
  *n = 0;
  const char *values[] = {rollout};
  int rc;
  PGresult *res = store_exec(s, "history", TRANSITION_SELECT "WHERE rollout = $1 ORDER BY seq", 1,
                             values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  if (count == 0) {
    PQclear(res);
    bool exists = false;
    if ((rc = rollout_exists(s, rollout, &exists)))
      return rc;
    if (!exists)
      store_set_error(s, "history: no rollout '%s'", rollout);
    return exists ? CANARY_OK : CANARY_ENOTFOUND;
  }
  struct decision *out = calloc(count, sizeof *out);
  if (!out) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  struct json_doc doc;
  json_doc_init(&doc);
  for (size_t i = 0; i < count && !rc; i++)
    rc = history_row(s, res, (int)i, &doc, &out[i]);
  json_doc_free(&doc);
  PQclear(res);
  if (rc) {
    free(out);
    return rc;
  }
  *decisions = out;
  *n = count;
  return CANARY_OK;
}

int store_dispersion(store_t *s, const char *service, int last, struct store_dispersion_row **rows,
                     size_t *n) {
  *rows = NULL;
  *n = 0;
  char limit[24];
  snprintf(limit, sizeof limit, "%d", last);
  const char *values[] = {service, limit};
  int rc;
  /* each service's `last` newest finished releases with steps; jsonb_each spreads the counters */
  PGresult *res = store_exec(
      s, "dispersion",
      "WITH r AS (SELECT service, dispersion, row_number() OVER (PARTITION BY service "
      "ORDER BY updated_at DESC, id) AS nth FROM rollouts WHERE dispersion IS NOT NULL "
      "AND state IN ('completed', 'rolled_back') AND ($1 = '' OR service = $1)) "
      "SELECT r.service, d.key, sum((d.value->>0)::float8), sum((d.value->>1)::float8), count(*) "
      "FROM r, jsonb_each(r.dispersion) AS d WHERE r.nth <= $2::int "
      "GROUP BY r.service, d.key ORDER BY r.service, d.key",
      2, values, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  size_t count = (size_t)PQntuples(res);
  struct store_dispersion_row *out = calloc(count ? count : 1, sizeof *out);
  if (!out) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  for (size_t i = 0; i < count; i++) {
    snprintf(out[i].service, sizeof out[i].service, "%s", PQgetvalue(res, (int)i, 0));
    snprintf(out[i].counter, sizeof out[i].counter, "%s", PQgetvalue(res, (int)i, 1));
    out[i].sum = strtod(PQgetvalue(res, (int)i, 2), NULL);
    out[i].k = strtod(PQgetvalue(res, (int)i, 3), NULL);
    out[i].releases = strtol(PQgetvalue(res, (int)i, 4), NULL, 10);
  }
  PQclear(res);
  *rows = out;
  *n = count;
  return CANARY_OK;
}

int store_decision(store_t *s, const char *id, struct decision *d, bool *found) {
  const char *values[] = {id};
  int rc;
  *found = false;
  memset(d, 0, sizeof *d);
  PGresult *res = store_exec(s, "decision", TRANSITION_SELECT "WHERE id = $1", 1, values, 0,
                             PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  if (PQntuples(res) == 1) {
    struct json_doc doc;
    json_doc_init(&doc);
    rc = history_row(s, res, 0, &doc, d);
    json_doc_free(&doc);
    *found = rc == CANARY_OK;
  }
  PQclear(res);
  return rc;
}
