/*
 * `canaryctl rebuild`'s queries: the scratch schema, the live offsets, the comparison of two
 * schemas' state and the adoption of the rebuilt one (store_rebuild.h).
 */
#include "store/store_rebuild.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* ---- the scratch schema ------------------------------------------------------------------- */

/* Append s to a key=value conninfo as a single-quoted value (libpq: \' and \\ escaped). */
static void put_quoted(struct jbuf *b, const char *s) {
  jbuf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '\'' || *s == '\\')
      jbuf_putc(b, '\\');
    jbuf_putc(b, *s);
  }
  jbuf_putc(b, '\'');
}

int store_conninfo_schema(const char *conninfo, const char *schema, char **out, char *err,
                          size_t err_len) {
  char *perr = NULL;
  *out = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  if (!opts) {
    snprintf(err, err_len, "%s", perr ? perr : "out of memory");
    PQfreemem(perr);
    return perr ? CANARY_EINVALID : CANARY_ENOMEM;
  }
  struct jbuf b;
  jbuf_init(&b);
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    bool is_options = !strcmp(o->keyword, "options");
    if (!o->val && !is_options)
      continue;
    jbuf_puts(&b, o->keyword);
    jbuf_putc(&b, '=');
    /* The server option: identifiers in options are split at spaces, so a schema name is
     * quoted as an SQL identifier would not survive; store_schema_recreate checks the name. */
    char opt[512];
    if (is_options) {
      snprintf(opt, sizeof opt, "%s%s-c search_path=%s", o->val ? o->val : "",
               o->val && *o->val ? " " : "", schema);
      put_quoted(&b, opt);
    } else {
      put_quoted(&b, o->val);
    }
    jbuf_putc(&b, ' ');
  }
  PQconninfoFree(opts);
  if (b.oom) {
    jbuf_free(&b);
    return CANARY_ENOMEM;
  }
  *out = strdup(b.data ? b.data : "");
  jbuf_free(&b);
  return *out ? CANARY_OK : CANARY_ENOMEM;
}

int store_schema_current(store_t *s, char *out, size_t len) {
  int rc;
  PGresult *res = store_exec(s, "current schema", "SELECT coalesce(current_schema(), '')", 0, NULL,
                             0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
  PQclear(res);
  if (!*out) {
    store_set_error(s, "current schema: none (the search_path names no schema that exists)");
    return CANARY_EINVALID;
  }
  return CANARY_OK;
}

/* A name that needs no quoting anywhere (SQL, the server's options): [a-z_][a-z0-9_]*. */
static bool plain_name(const char *name) {
  if (!*name || strlen(name) > 63 || (*name >= '0' && *name <= '9'))
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return false;
  return true;
}

int store_schema_recreate(store_t *s, const char *schema) {
  char live[128], sql[256];
  if (!plain_name(schema)) {
    store_set_error(s, "schema '%s': use lower-case letters, digits and _ (at most 63)", schema);
    return CANARY_EINVALID;
  }
  int rc = store_schema_current(s, live, sizeof live);
  if (rc)
    return rc;
  if (!strcmp(live, schema) || !strcmp(schema, "public") || !strncmp(schema, "pg_", 3)) {
    store_set_error(s,
                    "schema '%s' is the live one (or a system schema): the rebuild needs a "
                    "scratch schema of its own",
                    schema);
    return CANARY_EINVALID;
  }
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  if ((rc = store_command(s, "drop the scratch schema", sql)))
    return rc;
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
  return store_command(s, "create the scratch schema", sql);
}

int store_offsets_all(store_t *s, struct store_shard_offsets **out, size_t *n) {
  *out = NULL;
  *n = 0;
  int rc;
  PGresult *res = store_exec(s, "offsets",
                             "SELECT s.shard, o.topic, o.next_offset FROM shards s "
                             "LEFT JOIN offsets o ON o.shard = s.shard ORDER BY s.shard",
                             0, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  int rows = PQntuples(res);
  struct store_shard_offsets *o = calloc(rows ? (size_t)rows : 1, sizeof *o);
  if (!o) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  size_t k = 0;
  for (int i = 0; i < rows; i++) {
    int shard = atoi(PQgetvalue(res, i, 0));
    if (!k || o[k - 1].shard != shard) {
      o[k].shard = shard;
      for (int t = 0; t < STORE_INPUT_TOPICS; t++)
        o[k].next[t] = -1;
      k++;
    }
    for (int t = 0; t < STORE_INPUT_TOPICS; t++)
      if (!PQgetisnull(res, i, 1) && !strcmp(PQgetvalue(res, i, 1), store_input_topics[t]))
        o[k - 1].next[t] = strtoll(PQgetvalue(res, i, 2), NULL, 10);
  }
  PQclear(res);
  *out = o;
  *n = k;
  return CANARY_OK;
}

int store_outbox_mark_all(store_t *s, long *marked) {
  int rc;
  *marked = 0;
  PGresult *res = store_exec(s, "mark the rebuilt outbox",
                             "UPDATE outbox SET published_at = now() WHERE published_at IS NULL", 0,
                             NULL, 0, PGRES_COMMAND_OK, &rc);
  if (!res)
    return rc;
  *marked = atol(PQcmdTuples(res));
  PQclear(res);
  return CANARY_OK;
}

/* ---- comparing ---------------------------------------------------------------------------- */

/*
 * One query, a row per difference: (what, key, field, live, rebuilt), sorted. Each part is a
 * FULL JOIN of a table on its key with the compared columns unpivoted (LATERAL VALUES), so a
 * row on one side only is one "exists" difference. {L} and {R} are the two schemas.
 * Left out as bookkeeping, not state: the times rows were written (created_at, updated_at,
 * recorded_at), the shards' owners and epochs, window_from (where a restart replays the metric
 * windows from: it moves at commits, and the commits are the worker's own rhythm), the applied
 * ids (their batches' boundaries), the dashboard's history, the outbox, and rollouts.dispersion:
 * it is written only with a changed metric state (store_commit.c), so what is stored of it
 * depends on where the batches ended (a 20,000-event log rebuilt with --clock event differed
 * from the live state in that column only, for 130 of 210 rollouts). A state document
 * is compared key by key as jsonb: the same value written another way (a row edited by hand
 * through jsonb) is not a difference; the keys that differ are named.
 */
static const char SQL_COMPARE[] =
    "WITH sh AS ("
    " SELECT 1 AS sec, coalesce(l.shard, r.shard)::int8 AS o1, 0::int8 AS o2, 'shard' AS what,"
    "  coalesce(l.shard, r.shard)::text AS key, f.name, f.lv, f.rv"
    " FROM {L}.shards l FULL JOIN {R}.shards r ON l.shard = r.shard"
    " CROSS JOIN LATERAL (VALUES"
    "  ('exists', CASE WHEN l.shard IS NULL THEN 'no' ELSE 'yes' END,"
    "             CASE WHEN r.shard IS NULL THEN 'no' ELSE 'yes' END),"
    "  ('global_flags', l.global_flags::text, r.global_flags::text)) f(name, lv, rv)"
    " WHERE f.lv IS DISTINCT FROM f.rv"
    "   AND (f.name = 'exists' OR (l.shard IS NOT NULL AND r.shard IS NOT NULL))),"
    "off AS ("
    " SELECT 2, coalesce(l.shard, r.shard)::int8, 0::int8, 'offsets',"
    "  coalesce(l.shard, r.shard) || '/' || coalesce(l.topic, r.topic), 'next_offset',"
    "  l.next_offset::text, r.next_offset::text"
    " FROM {L}.offsets l FULL JOIN {R}.offsets r ON l.shard = r.shard AND l.topic = r.topic"
    " WHERE l.next_offset IS DISTINCT FROM r.next_offset),"
    "ro AS ("
    " SELECT 3, coalesce(l.ord, 1000000000000 + r.ord), 0::int8, 'rollout', coalesce(l.id, r.id),"
    "  f.name, f.lv, f.rv"
    " FROM {L}.rollouts l FULL JOIN {R}.rollouts r ON l.id = r.id"
    " CROSS JOIN LATERAL (VALUES"
    "  ('exists', CASE WHEN l.id IS NULL THEN 'no' ELSE 'yes' END,"
    "             CASE WHEN r.id IS NULL THEN 'no' ELSE 'yes' END),"
    "  ('shard', l.shard::text, r.shard::text), ('service', l.service, r.service),"
    "  ('version', l.version, r.version), ('state', l.state, r.state),"
    "  ('stage', l.stage::text, r.stage::text),"
    "  ('exposure_percent', l.exposure_percent::text, r.exposure_percent::text),"
    "  ('seq', l.seq::text, r.seq::text), ('metrics', l.metrics::text, r.metrics::text),"
    "  ('zscores', l.zscores::text, r.zscores::text)) f(name, lv, rv)"
    " WHERE f.lv IS DISTINCT FROM f.rv"
    "   AND (f.name = 'exists' OR (l.id IS NOT NULL AND r.id IS NOT NULL))),"
    "body AS ("
    " SELECT 3, l.ord, 1::int8, 'rollout', l.id, 'body.' || d.k, d.lv, d.rv"
    " FROM {L}.rollouts l JOIN {R}.rollouts r ON l.id = r.id"
    " CROSS JOIN LATERAL (SELECT coalesce(a.key, b.key) AS k, a.value::text AS lv,"
    "                            b.value::text AS rv"
    "   FROM jsonb_each(l.body::jsonb) a FULL JOIN jsonb_each(r.body::jsonb) b"
    "   ON a.key = b.key) d"
    " WHERE l.body::text <> r.body::text AND d.lv IS DISTINCT FROM d.rv),"
    "tr AS ("
    " SELECT 4, coalesce((SELECT ord FROM {L}.rollouts x WHERE x.id = coalesce(l.rollout, "
    "r.rollout)),"
    "                    1000000000000), coalesce(l.seq, r.seq), 'decision',"
    "  coalesce(l.rollout, r.rollout) || ' #' || coalesce(l.seq, r.seq), f.name, f.lv, f.rv"
    " FROM {L}.transitions l FULL JOIN {R}.transitions r"
    "   ON l.rollout = r.rollout AND l.seq = r.seq"
    " CROSS JOIN LATERAL (VALUES"
    "  ('exists', CASE WHEN l.id IS NULL THEN 'no' ELSE 'yes' END,"
    "             CASE WHEN r.id IS NULL THEN 'no' ELSE 'yes' END),"
    "  ('id', l.id, r.id), ('time', l.time::text, r.time::text), ('action', l.action, r.action),"
    "  ('from_stage', l.from_stage, r.from_stage), ('to_stage', l.to_stage, r.to_stage),"
    "  ('state', l.state, r.state), ('reason', l.reason, r.reason), ('rule', l.rule, r.rule),"
    "  ('actor', l.actor, r.actor),"
    "  ('evidence', l.evidence_items::text, r.evidence_items::text)) f(name, lv, rv)"
    " WHERE f.lv IS DISTINCT FROM f.rv"
    "   AND (f.name = 'exists' OR (l.id IS NOT NULL AND r.id IS NOT NULL))),"
    "au AS ("
    " SELECT 5, 0::int8, 0::int8, 'audit', coalesce(l.source, r.source), f.name, f.lv, f.rv"
    " FROM (SELECT * FROM {L}.command_audit WHERE type <> 'freeze') l"
    " FULL JOIN {R}.command_audit r ON l.source = r.source"
    " CROSS JOIN LATERAL (VALUES"
    "  ('exists', CASE WHEN l.source IS NULL THEN 'no' ELSE 'yes' END,"
    "             CASE WHEN r.source IS NULL THEN 'no' ELSE 'yes' END),"
    "  ('event_id', l.event_id, r.event_id), ('rollout', l.rollout, r.rollout),"
    "  ('time', l.time::text, r.time::text), ('type', l.type, r.type),"
    "  ('action', l.action, r.action), ('actor', l.actor, r.actor),"
    "  ('signature', l.signature, r.signature), ('outcome', l.outcome, r.outcome),"
    "  ('reason', l.reason, r.reason), ('detail', l.detail, r.detail)) f(name, lv, rv)"
    " WHERE f.lv IS DISTINCT FROM f.rv"
    "   AND (f.name = 'exists' OR (l.source IS NOT NULL AND r.source IS NOT NULL)))"
    "SELECT what, key, name, left(lv, 255), left(rv, 255) FROM ("
    " SELECT * FROM sh UNION ALL SELECT * FROM off UNION ALL SELECT * FROM ro"
    " UNION ALL SELECT * FROM body UNION ALL SELECT * FROM tr UNION ALL SELECT * FROM au) d"
    " ORDER BY sec, o1, o2, key, name <> 'exists', name LIMIT 5001";

/* sql with every {L} and {R} replaced by the two (plain) schema names; NULL on ENOMEM. */
static char *with_schemas(const char *sql, const char *l, const char *r) {
  struct jbuf b;
  jbuf_init(&b);
  for (const char *p = sql; *p; p++) {
    if (p[0] == '{' && (p[1] == 'L' || p[1] == 'R') && p[2] == '}') {
      jbuf_puts(&b, p[1] == 'L' ? l : r);
      p += 2;
    } else {
      jbuf_putc(&b, *p);
    }
  }
  char *out = b.oom ? NULL : strdup(b.data ? b.data : "");
  jbuf_free(&b);
  return out;
}

int store_rebuild_compare(store_t *s, const char *live_schema, const char *rebuilt_schema,
                          struct store_diff **out, size_t *n, bool *truncated) {
  *out = NULL;
  *n = 0;
  *truncated = false;
  if (!plain_name(live_schema) || !plain_name(rebuilt_schema)) {
    store_set_error(s, "compare: schema names must be plain identifiers ('%s', '%s')", live_schema,
                    rebuilt_schema);
    return CANARY_EINVALID;
  }
  char *sql = with_schemas(SQL_COMPARE, live_schema, rebuilt_schema);
  if (!sql)
    return CANARY_ENOMEM;
  int rc;
  PGresult *res = store_exec(s, "compare", sql, 0, NULL, 0, PGRES_TUPLES_OK, &rc);
  free(sql);
  if (!res)
    return rc;
  size_t rows = (size_t)PQntuples(res);
  if (rows > STORE_DIFF_MAX) {
    rows = STORE_DIFF_MAX;
    *truncated = true;
  }
  struct store_diff *d = calloc(rows ? rows : 1, sizeof *d);
  if (!d) {
    PQclear(res);
    return CANARY_ENOMEM;
  }
  for (size_t i = 0; i < rows; i++) {
    int r = (int)i;
    snprintf(d[i].what, sizeof d[i].what, "%s", PQgetvalue(res, r, 0));
    snprintf(d[i].key, sizeof d[i].key, "%s", PQgetvalue(res, r, 1));
    snprintf(d[i].field, sizeof d[i].field, "%s", PQgetvalue(res, r, 2));
    snprintf(d[i].live, sizeof d[i].live, "%s", PQgetvalue(res, r, 3));
    snprintf(d[i].rebuilt, sizeof d[i].rebuilt, "%s", PQgetvalue(res, r, 4));
  }
  PQclear(res);
  *out = d;
  *n = rows;
  return CANARY_OK;
}

/* ---- adopting ----------------------------------------------------------------------------- */

/* The state tables a rebuild replaces, in the order they are emptied (references first). */
static const char *const replaced[] = {"transitions", "rollout_history", "event_id_batches",
                                       "event_ids",   "offsets",         "rollouts"};
#define N_REPLACED (sizeof replaced / sizeof *replaced)

/* Run a query that must give one row; its first column in out. */
static int one_value(store_t *s, const char *what, const char *sql, char *out, size_t len) {
  int rc;
  PGresult *res = store_exec(s, what, sql, 0, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (!res)
    return rc;
  snprintf(out, len, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
  PQclear(res);
  return CANARY_OK;
}

/* The checks before anything moves; CANARY_EINVALID with the reason in why. */
static int adopt_check(store_t *s, const char *rebuilt, const struct store_shard_offsets *exp,
                       size_t n_exp, char *why, size_t why_len) {
  char v[256], sql[1024];
  int rc = one_value(s, "freeze", "SELECT frozen FROM input_freeze FOR UPDATE", v, sizeof v);
  if (rc)
    return rc;
  if (strcmp(v, "t")) {
    snprintf(why, why_len,
             "not frozen: freeze first (canaryctl freeze), so that no worker "
             "applies anything while the state is replaced");
    return CANARY_EINVALID;
  }
  if ((rc = one_value(s, "outbox",
                      "SELECT count(*) FROM outbox WHERE published_at IS NULL "
                      "AND failure IS NULL",
                      v, sizeof v)))
    return rc;
  if (strcmp(v, "0")) {
    snprintf(why, why_len,
             "%s outbox rows still wait to be published: let the relay publish "
             "them (the workers keep relaying while frozen), then run again",
             v);
    return CANARY_EINVALID;
  }
  snprintf(sql, sizeof sql,
           "SELECT string_agg(coalesce(l.version, r.version)::text, ',') FROM schema_migrations l "
           "FULL JOIN %s.schema_migrations r ON l.version = r.version "
           "WHERE l.checksum IS DISTINCT FROM r.checksum",
           rebuilt);
  if ((rc = one_value(s, "migrations", sql, v, sizeof v)))
    return rc;
  if (*v) {
    snprintf(why, why_len,
             "the live schema and the rebuilt one differ in migrations (%s): "
             "migrate the live one (canaryd migrate) and rebuild again",
             v);
    return CANARY_EINVALID;
  }
  struct store_shard_offsets *now;
  size_t n_now;
  if ((rc = store_offsets_all(s, &now, &n_now)))
    return rc;
  bool same = n_now == n_exp;
  for (size_t i = 0; same && i < n_now; i++)
    same = now[i].shard == exp[i].shard && !memcmp(now[i].next, exp[i].next, sizeof now[i].next);
  free(now);
  if (!same) {
    snprintf(why, why_len,
             "the live offsets moved since the rebuild read them: rebuild again "
             "(while frozen)");
    return CANARY_EINVALID;
  }
  return CANARY_OK;
}

static int adopt_move(store_t *s, const char *rebuilt, const char *archive) {
  char sql[1024];
  int rc;
  snprintf(sql, sizeof sql,
           "LOCK TABLE shards, offsets, rollouts, transitions, "
           "event_id_batches, event_ids, rollout_history IN EXCLUSIVE MODE");
  if ((rc = store_command(s, "lock", sql)))
    return rc;
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s", archive);
  if ((rc = store_command(s, "archive schema", sql)))
    return rc;
  snprintf(sql, sizeof sql, "CREATE TABLE %s.shards AS TABLE shards", archive);
  if ((rc = store_command(s, "archive", sql)))
    return rc;
  for (size_t i = 0; i < N_REPLACED; i++) {
    snprintf(sql, sizeof sql, "CREATE TABLE %s.%s AS TABLE %s", archive, replaced[i], replaced[i]);
    if ((rc = store_command(s, "archive", sql)))
      return rc;
  }
  /* transitions is append-only for canaryd; the move is the one exception, in this transaction */
  if ((rc = store_command(s, "triggers", "ALTER TABLE transitions DISABLE TRIGGER USER")))
    return rc;
  for (size_t i = 0; i < N_REPLACED; i++) {
    snprintf(sql, sizeof sql, "DELETE FROM %s", replaced[i]);
    if ((rc = store_command(s, "empty", sql)))
      return rc;
  }
  /* every shard the rebuild has (it claimed each live one): its kill switches and replay mark;
   * the owner epoch bumped, so that a worker holding the old state is fenced at its next commit */
  snprintf(sql, sizeof sql,
           "UPDATE shards l SET global_flags = r.global_flags, window_from = r.window_from, "
           "owner = 'canaryctl rebuild --apply', owner_epoch = l.owner_epoch + 1, "
           "updated_at = now() FROM %s.shards r WHERE l.shard = r.shard",
           rebuilt);
  if ((rc = store_command(s, "shards", sql)))
    return rc;
  /* in reverse: what is referenced first; the columns are the same migrations' (checked) */
  for (size_t i = N_REPLACED; i-- > 0;) {
    bool identity = !strcmp(replaced[i], "rollouts") || !strcmp(replaced[i], "event_id_batches");
    snprintf(sql, sizeof sql, "INSERT INTO %s %s SELECT * FROM %s.%s", replaced[i],
             identity ? "OVERRIDING SYSTEM VALUE" : "", rebuilt, replaced[i]);
    if ((rc = store_command(s, "copy", sql)))
      return rc;
  }
  if ((rc = store_command(s, "triggers", "ALTER TABLE transitions ENABLE TRIGGER USER")))
    return rc;
  /* the audit is append-only and the live record: what it lacks is added, nothing replaced */
  snprintf(sql, sizeof sql,
           "INSERT INTO command_audit SELECT * FROM %s.command_audit r "
           "WHERE NOT EXISTS (SELECT 1 FROM command_audit l WHERE l.source = r.source)",
           rebuilt);
  if ((rc = store_command(s, "audit", sql)))
    return rc;
  char v[64];
  if ((rc = one_value(s, "identity",
                      "SELECT setval(pg_get_serial_sequence('rollouts', 'ord'), "
                      "coalesce((SELECT max(ord) FROM rollouts), 0) + 1, false)",
                      v, sizeof v)))
    return rc;
  return one_value(s, "identity",
                   "SELECT setval(pg_get_serial_sequence('event_id_batches', 'seq'), "
                   "coalesce((SELECT max(seq) FROM event_id_batches), 0) + 1, false)",
                   v, sizeof v);
}

int store_rebuild_adopt(store_t *s, const char *rebuilt_schema, const char *archive_schema,
                        const struct store_shard_offsets *expected, size_t n_expected, char *why,
                        size_t why_len) {
  why[0] = '\0';
  if (!plain_name(rebuilt_schema) || !plain_name(archive_schema)) {
    snprintf(why, why_len, "schema names must be plain identifiers");
    return CANARY_EINVALID;
  }
  int rc = store_command(s, "begin", "BEGIN");
  if (rc)
    return rc;
  rc = adopt_check(s, rebuilt_schema, expected, n_expected, why, why_len);
  if (!rc)
    rc = adopt_move(s, rebuilt_schema, archive_schema);
  if (!rc)
    rc = store_command(s, "commit", "COMMIT");
  if (rc) {
    if (!why[0])
      snprintf(why, why_len, "%s", store_last_error(s));
    store_abort(s);
  }
  return rc;
}
