/*
 * The store against a real PostgreSQL ($CANARY_PG): migrations, claim/commit/load round trips,
 * fencing, atomicity, outbox idempotence and relay queries, the append-only log, history, lost
 * connections, and the commit latency of a large batch. Each run works in its own database
 * (canary_test_<pid>), dropped at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/engine.h"
#include "core/idset.h"
#include "core/metric_store.h"
#include "store/store.h"

/* ---- fixture: a database of our own ---------------------------------------------------------- */

static char db_name[64];
static char *db_conninfo; /* CANARY_PG with dbname replaced */
static PGconn *admin;     /* to the server's own database: CREATE / DROP DATABASE */
static PGconn *sql;       /* to the test database: assertions in SQL */
static store_t *st;       /* the store under test */
static struct plan plan;

struct log_lines {
  char text[8192];
  int n;
};
static struct log_lines logs;

static void capture_log(void *ctx, int level, const char *msg) {
  struct log_lines *l = ctx;
  size_t used = strlen(l->text);
  snprintf(l->text + used, sizeof l->text - used, "%d %s\n", level, msg);
  l->n++;
}

/* conninfo with dbname=db: keyword=value pairs, values quoted, from CANARY_PG (string or URI). */
static char *conninfo_for(const char *base, const char *db) {
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(base, &err);
  if (!opts) {
    fprintf(stderr, "CANARY_PG is not a valid conninfo: %s\n", err ? err : "?");
    PQfreemem(err);
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *out = calloc(1, cap);
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
    if (!v || !*v)
      continue;
    len += (size_t)snprintf(out + len, cap - len, "%s='", o->keyword);
    for (const char *p = v; *p && len + 4 < cap; p++) {
      if (*p == '\'' || *p == '\\')
        out[len++] = '\\';
      out[len++] = *p;
    }
    len += (size_t)snprintf(out + len, cap - len, "' ");
  }
  PQconninfoFree(opts);
  return out;
}

static void make_plan(struct plan *p) {
  static const char *const names[] = {"internal_test", "friendly_gp", "beta", "ga"};
  static const double pct[] = {0.5, 5, 25, 100};
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "test");
  p->n_stages = 4;
  for (int i = 0; i < 4; i++) {
    snprintf(p->stages[i].name, sizeof p->stages[i].name, "%s", names[i]);
    p->stages[i].traffic_percent = pct[i];
  }
  p->canary_enabled = true;
  p->breaker_threshold = 3;
  p->buckets = 10000;
  p->post_mortem_ms = 48 * 3600 * 1000LL;
}

static int exec_admin(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok)
    fprintf(stderr, "%s: %s", q, PQerrorMessage(c));
  PQclear(r);
  return ok ? 0 : -1;
}

static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static int group_setup(void **state) {
  (void)state;
  const char *pg = getenv("CANARY_PG");
  admin = PQconnectdb(pg);
  PQsetNoticeProcessor(admin, quiet, NULL);
  if (PQstatus(admin) != CONNECTION_OK) {
    fprintf(stderr, "cannot connect to CANARY_PG (%s): %s", pg, PQerrorMessage(admin));
    return -1;
  }
  snprintf(db_name, sizeof db_name, "canary_test_%ld", (long)getpid());
  char q[256];
  snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s", db_name);
  exec_admin(admin, q);
  snprintf(q, sizeof q, "CREATE DATABASE %s", db_name);
  if (exec_admin(admin, q))
    return -1;
  db_conninfo = conninfo_for(pg, db_name);
  sql = PQconnectdb(db_conninfo);
  if (PQstatus(sql) != CONNECTION_OK) {
    fprintf(stderr, "cannot connect to %s: %s", db_name, PQerrorMessage(sql));
    return -1;
  }
  make_plan(&plan);
  int rc = store_open(db_conninfo, 5000, capture_log, &logs, &st);
  if (rc) {
    fprintf(stderr, "store_open: %s\n%s", canary_strerror(rc), logs.text);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  store_close(st);
  PQfinish(sql);
  char q[256];
  snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
  exec_admin(admin, q);
  PQfinish(admin);
  free(db_conninfo);
  return 0;
}

/* ---- SQL helpers for assertions -------------------------------------------------------------- */

static PGresult *query(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static PGresult *query(PGconn *c, const char *fmt, ...) {
  char q[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", q, PQerrorMessage(c));
  return r;
}

/* The first column of the first row as an integer (-1 for NULL). */
static int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q_int(const char *fmt, ...) {
  char q[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  PGresult *r = query(sql, "%s", q);
  int64_t v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
  PQclear(r);
  return v;
}

/* The first column of every row, joined by newlines (the caller frees). */
static char *q_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *q_text(const char *fmt, ...) {
  char q[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  PGresult *r = query(sql, "%s", q);
  size_t cap = 1, len = 0;
  for (int i = 0; i < PQntuples(r); i++)
    cap += (size_t)PQgetlength(r, i, 0) + 1;
  char *out = calloc(1, cap);
  for (int i = 0; i < PQntuples(r); i++)
    len += (size_t)sprintf(out + len, "%s\n", PQgetvalue(r, i, 0));
  PQclear(r);
  return out;
}

/*
 * The distinct event id hashes a shard has stored: in event_id_batches (8 bytes each in a row's
 * hashes) and in event_ids (a row each, as versions before migration 005 wrote them).
 */
static int64_t ids_stored(int shard) {
  return q_int("SELECT count(DISTINCT h) FROM ("
               "SELECT substr(hashes, 8 * g + 1, 8) AS h FROM event_id_batches, "
               "generate_series(0, length(hashes) / 8 - 1) AS g WHERE shard = %d "
               "UNION ALL SELECT int8send(hash) FROM event_ids WHERE shard = %d) AS x",
               shard, shard);
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- values ---------------------------------------------------------------------------------- */

/* A rollout with every field away from its zero value, zero-initialised first like the core's. */
static void full_rollout(struct rollout *r, const char *id, int variant) {
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "%s", id);
  /* a service of its own: one service has one live rollout (test_one_live_rollout_index) */
  snprintf(r->service, sizeof r->service, "%s", id);
  snprintf(r->version, sizeof r->version, "2.1.%d", variant);
  snprintf(r->baseline_version, sizeof r->baseline_version, "2.0.9");
  r->state = ROLLOUT_PAUSED;
  r->resume_to = ROLLOUT_RUNNING;
  r->stage = 1 + variant % 3;
  r->requested_ms = 1767225600000 + variant;
  r->clock_ms = 1767229200123;
  r->stage_started_ms = 1767226000000;
  r->stage_max_at_ms = 1767312400000;
  r->exit_hold_reported = true;
  r->prev_stage_passed = true;
  r->seq = 3;
  r->notify_seq = 9;
  r->traffic_seq = 4;
  r->ci = FACT_OK;
  r->deploy = FACT_FAILED;
  r->health = FACT_OK;
  r->smoke = FACT_FAILED;
  r->smoke_passed = 41;
  r->smoke_failed = 2;
  for (int i = 0; i < PLAN_MAX_STAGES; i++) {
    r->crashes[i] = i + 1;
    r->positive[i] = 100 * (i + 1);
    r->negative[i] = INT64_MIN + i;
  }
  for (int i = 0; i < 3; i++) {
    struct rollout_incident *in = &r->incidents[i];
    snprintf(in->id, sizeof in->id, "INC-%d", 1000 + i);
    in->severity = 1 + i;
    in->kind = (enum incident_kind)(i % INCIDENT_KIND_COUNT);
    in->opened_ms = 1767226100000 + i;
    in->open = i % 2 == 0;
  }
  r->n_incidents = 3;
  r->approvals = 1u << APPROVAL_DOCS;
  snprintf(r->approvers[APPROVAL_DOCS], EVENT_NAME_MAX, "dora \"the\" writer");
  r->breaker_errors = 2;
  r->breaker_open = true;
  r->flags.canary_enabled = true;
  r->flags.cohort_enabled[1] = true;
  r->exposure_percent = 0.1 + 0.2;
  r->traffic_sig = 0xdeadbeefu;
  r->metric_events = 123456789012345;
  r->last_metric_ms = 1767229100000;
}

static void make_decision(struct decision *d, const char *rollout, int64_t seq, int n_evidence) {
  memset(d, 0, sizeof *d);
  snprintf(d->id, sizeof d->id, "%s/%" PRId64, rollout, seq);
  snprintf(d->rollout, sizeof d->rollout, "%s", rollout);
  d->seq = seq;
  d->time_ms = 1767225600000 + seq * 1000 + 7;
  d->action = seq == 1 ? DECISION_START : DECISION_HOLD;
  if (seq > 1)
    snprintf(d->from_stage, sizeof d->from_stage, "internal_test");
  snprintf(d->to_stage, sizeof d->to_stage, "friendly_gp");
  d->state = ROLLOUT_RUNNING;
  snprintf(d->reason, sizeof d->reason,
           "waiting for the entry gate of friendly_gp: ci_passed (waiting for ci.completed); "
           "smoke_passed (3 passed, 1 failed) — seq %" PRId64,
           seq);
  if (seq > 1)
    snprintf(d->rule, sizeof d->rule, "entry_gate");
  snprintf(d->actor, sizeof d->actor, "canaryd");
  for (int i = 0; i < n_evidence; i++) {
    char k[32];
    snprintf(k, sizeof k, "criterion_%d", i % 5); /* repeated keys, as exit+entry gates give */
    switch (i % 4) {
    case 0:
      decision_add_str(d, k, "not_evaluated");
      break;
    case 1:
      decision_add_num(d, k, i == 1 ? 3.0 : 0.1 * i); /* 3.0 must stay a number, not an int */
      break;
    case 2:
      decision_add_int(d, k, -(int64_t)i * 1000000007);
      break;
    case 3:
      decision_add_bool(d, k, i % 8 == 3);
      break;
    }
  }
}

static int64_t claim(int shard, const char *worker) {
  int64_t epoch = 0;
  int rc = store_claim_shard(st, shard, worker, &epoch);
  if (rc)
    fail_msg("claim: %s: %s", canary_strerror(rc), store_last_error(st));
  return epoch;
}

static void commit_ok(const struct store_batch *b) {
  int rc = store_commit(st, b);
  if (rc)
    fail_msg("commit: %s: %s", canary_strerror(rc), store_last_error(st));
}

static void no_offsets(struct store_offsets *o) {
  for (int t = 0; t < STORE_INPUT_TOPICS; t++)
    o->next[t] = -1;
}

/* A fingerprint of the schema: tables, columns, indexes, constraints, triggers, functions. */
static char *schema_fingerprint(void) {
  return q_text(
      "SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' || "
      "is_nullable || ' ' || coalesce(column_default, '') FROM information_schema.columns "
      "WHERE table_schema = 'public' "
      "UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public' "
      "UNION ALL SELECT 'con ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
      "WHERE connamespace = 'public'::regnamespace "
      "UNION ALL SELECT 'trg ' || tgname FROM pg_trigger WHERE NOT tgisinternal "
      "UNION ALL SELECT 'fn ' || md5(pg_get_functiondef(p.oid)) FROM pg_proc p "
      "WHERE pronamespace = 'public'::regnamespace "
      "UNION ALL SELECT 'mig ' || version || ' ' || name || ' ' || checksum || ' ' || applied_at "
      "FROM schema_migrations ORDER BY 1");
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_migrate_twice(void **state) {
  (void)state;
  int applied = -1;
  int rc = store_migrate(st, &applied);
  if (rc)
    fail_msg("migrate: %s", store_last_error(st));
  assert_true(applied >= 1);
  assert_int_equal(q_int("SELECT count(*) FROM schema_migrations"), applied);
  assert_int_equal(q_int("SELECT count(*) FROM schema_migrations WHERE length(checksum) = 64"),
                   applied);
  char *before = schema_fingerprint();

  assert_int_equal(store_migrate(st, &applied), CANARY_OK);
  assert_int_equal(applied, 0);
  char *after = schema_fingerprint();
  assert_string_equal(before, after);
  free(before);
  free(after);

  /* A recorded migration whose file changed is an error that names the file. */
  PQclear(query(sql, "UPDATE schema_migrations SET checksum = 'x' || checksum WHERE version = 1"));
  assert_int_equal(store_migrate(st, &applied), CANARY_EINVALID);
  assert_int_equal(applied, 0);
  assert_non_null(strstr(store_last_error(st), "migrations/001_init.sql"));
  PQclear(query(sql, "UPDATE schema_migrations SET checksum = substr(checksum, 2) "
                     "WHERE version = 1"));
  assert_int_equal(store_migrate(st, &applied), CANARY_OK);
  /* The advisory lock was released each time: another session can take it at once. */
  assert_int_equal(q_int("SELECT pg_try_advisory_lock(7161126247307240481)::int"), 1);
  PQclear(query(sql, "SELECT pg_advisory_unlock(7161126247307240481)"));
}

struct migrator {
  const char *conninfo;
  int rc, applied;
};

static void *run_migrator(void *arg) {
  struct migrator *m = arg;
  store_t *s;
  m->rc = store_open(m->conninfo, 5000, NULL, NULL, &s);
  if (m->rc == CANARY_OK) {
    m->rc = store_migrate(s, &m->applied);
    store_close(s);
  }
  return NULL;
}

/* Concurrent migrators on an empty database: exactly one applies, none fails. */
static void test_migrate_concurrently(void **state) {
  (void)state;
  char db[96], q[160];
  snprintf(db, sizeof db, "%s_mig", db_name);
  snprintf(q, sizeof q, "CREATE DATABASE %s", db);
  assert_int_equal(exec_admin(admin, q), 0);
  char *ci = conninfo_for(getenv("CANARY_PG"), db);
  struct migrator m[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    m[i] = (struct migrator){.conninfo = ci};
    assert_int_equal(pthread_create(&t[i], NULL, run_migrator, &m[i]), 0);
  }
  int total = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(m[i].rc, CANARY_OK);
    total += m[i].applied;
  }
  PGconn *c = PQconnectdb(ci);
  PGresult *r = query(c, "SELECT count(*) FROM schema_migrations");
  assert_int_equal(total, atoi(PQgetvalue(r, 0, 0)));
  assert_true(total >= 1);
  PQclear(r);
  PQfinish(c);
  free(ci);
  snprintf(q, sizeof q, "DROP DATABASE %s WITH (FORCE)", db);
  assert_int_equal(exec_admin(admin, q), 0);
}

static void test_claim_commit_load(void **state) {
  (void)state;
  int64_t epoch = claim(1, "worker-a");
  assert_true(epoch >= 1);

  static struct rollout r1, r2, r0;
  full_rollout(&r1, "checkout-2.1.0", 0);
  full_rollout(&r2, "search-7.0.0", 1);
  full_rollout(&r0, "search-7.0.0", 9); /* listed first, superseded by r2 */
  struct rollout *rs[] = {&r0, &r1, &r2};
  static struct decision d[3];
  make_decision(&d[0], r1.id, 1, 3);
  make_decision(&d[1], r1.id, 2, EVIDENCE_MAX);
  make_decision(&d[2], r2.id, 1, 0);
  const struct decision *ds[] = {&d[0], &d[1], &d[2]};
  const unsigned char bin[] = {0x00, 0x01, 0xff, 0x00, 'A'};
  struct store_outbox_row out[] = {
      {"canary.decisions", r1.id, d[0].id, "{\"a\":1}", 7},
      {"canary.flags", NULL, "flags/checkout/1", bin, sizeof bin},
  };
  const uint64_t ids[] = {idset_hash("evt-1"), idset_hash("evt-2"), idset_hash("evt-3"),
                          idset_hash("evt-2")};
  struct flags global;
  memset(&global, 0, sizeof global);
  global.canary_enabled = false;
  global.cohort_enabled[2] = true;

  struct store_batch b = {.shard = 1, .epoch = epoch};
  b.offsets.next[0] = 10;
  b.offsets.next[1] = 20;
  b.offsets.next[2] = -1;
  b.rollouts = rs;
  b.n_rollouts = 3;
  b.decisions = ds;
  b.n_decisions = 3;
  b.outbox = out;
  b.n_outbox = 2;
  b.event_ids = ids;
  b.n_event_ids = 4;
  b.global = &global;
  commit_ok(&b);

  struct engine e;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  struct store_offsets off;
  int rc = store_load_shard(st, 1, &e, &off);
  if (rc)
    fail_msg("load: %s", store_last_error(st));
  assert_int_equal(e.n_rollouts, 2);
  /* Byte for byte, in creation order. */
  assert_memory_equal(e.rollouts[0], &r1, sizeof r1);
  assert_memory_equal(e.rollouts[1], &r2, sizeof r2);
  assert_memory_equal(&e.global, &global, sizeof global);
  assert_int_equal(e.seen.n, 3);
  assert_true(idset_contains(&e.seen, "evt-1"));
  assert_true(idset_contains(&e.seen, "evt-3"));
  assert_false(idset_contains(&e.seen, "evt-4"));
  assert_int_equal(off.next[0], 10);
  assert_int_equal(off.next[1], 20);
  assert_int_equal(off.next[2], -1);
  engine_destroy(&e);

  /* The columns for people agree with the body. */
  assert_int_equal(q_int("SELECT stage FROM rollouts WHERE id = 'search-7.0.0'"), r2.stage);
  assert_int_equal(q_int("SELECT count(*) FROM rollouts WHERE id = 'checkout-2.1.0' AND "
                         "state = 'paused' AND exposure_percent = 0.30000000000000004 AND "
                         "body->>'service' = 'checkout-2.1.0'"),
                   1);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'flags/checkout/1' "
                         "AND key IS NULL AND payload = '\\x0001ff0041'::bytea"),
                   1);

  /* An unknown shard loads empty, with the plan's switches and no offsets. */
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  assert_int_equal(store_load_shard(st, 77, &e, &off), CANARY_OK);
  assert_int_equal(e.n_rollouts, 0);
  assert_true(e.global.canary_enabled);
  assert_int_equal(off.next[0], -1);
  engine_destroy(&e);
}

/* What the core itself produces survives the store: a rollout started by the real engine. */
static void test_engine_state_round_trip(void **state) {
  (void)state;
  int64_t epoch = claim(2, "worker-a");
  struct engine e;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  struct event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = EVENT_ROLLOUT_REQUESTED;
  snprintf(ev.id, sizeof ev.id, "req-1");
  snprintf(ev.rollout, sizeof ev.rollout, "web-3.0.0");
  snprintf(ev.service, sizeof ev.service, "web");
  snprintf(ev.version, sizeof ev.version, "3.0.0");
  snprintf(ev.baseline_version, sizeof ev.baseline_version, "2.9.9");
  ev.time_ms = 1767225600000;
  struct effects fx = EFFECTS_INIT;
  enum apply_outcome outcome;
  char why[256];
  assert_int_equal(engine_apply(&e, &ev, ev.time_ms, &fx, &outcome, why, sizeof why), CANARY_OK);
  assert_int_equal(outcome, APPLY_APPLIED);

  const struct decision *ds[16];
  size_t nd = 0;
  for (size_t i = 0; i < fx.n && nd < 16; i++)
    if (fx.items[i].kind == EFFECT_DECISION)
      ds[nd++] = &fx.items[i].u.decision;
  assert_true(nd >= 1);
  const uint64_t ids[] = {idset_hash(ev.id)}, digests[] = {event_digest(&ev)};
  struct store_batch b = {.shard = 2,
                          .epoch = epoch,
                          .rollouts = e.rollouts,
                          .n_rollouts = e.n_rollouts,
                          .decisions = ds,
                          .n_decisions = nd,
                          .event_ids = ids,
                          .event_id_digests = digests,
                          .n_event_ids = 1,
                          .global = &e.global};
  no_offsets(&b.offsets);
  b.offsets.next[0] = 1;
  commit_ok(&b);

  struct engine back;
  struct store_offsets off;
  assert_int_equal(engine_init(&back, &plan), CANARY_OK);
  assert_int_equal(store_load_shard(st, 2, &back, &off), CANARY_OK);
  assert_int_equal(back.n_rollouts, 1);
  assert_memory_equal(back.rollouts[0], e.rollouts[0], sizeof(struct rollout));
  assert_memory_equal(&back.global, &e.global, sizeof e.global);
  /* The restored engine knows the event: applying it again is a duplicate, and its id with
   * other content a conflict (the digest came back with the id). */
  effects_clear(&fx);
  assert_int_equal(engine_apply(&back, &ev, ev.time_ms, &fx, &outcome, why, sizeof why), CANARY_OK);
  assert_int_equal(outcome, APPLY_DUPLICATE);
  struct event other = ev;
  snprintf(other.version, sizeof other.version, "3.0.1");
  assert_int_equal(engine_apply(&back, &other, ev.time_ms, &fx, &outcome, why, sizeof why),
                   CANARY_OK);
  assert_int_equal(outcome, APPLY_CONFLICT);
  assert_int_equal(fx.n, 0);

  struct decision *hist;
  size_t nh;
  assert_int_equal(store_history(st, "web-3.0.0", &hist, &nh), CANARY_OK);
  assert_int_equal(nh, nd);
  for (size_t i = 0; i < nh; i++)
    assert_memory_equal(&hist[i], ds[i], sizeof hist[i]);
  free(hist);
  effects_free(&fx);
  engine_destroy(&back);
  engine_destroy(&e);
}

/* A baseline report of requests and errors into rollout id's internal_test cohort. */
static void baseline_report(struct engine *e, const char *id, int64_t t, double errors) {
  struct metric_value mv[2] = {{"requests", 200000}, {"errors", errors}};
  struct event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = EVENT_METRICS;
  ev.time_ms = t;
  snprintf(ev.rollout, sizeof ev.rollout, "%s", id);
  ev.metrics.variant = VARIANT_BASELINE;
  ev.metrics.interval_ms = 60000;
  ev.metrics.counters = mv;
  ev.metrics.n_counters = 2;
  char why[200];
  if (mstore_ingest(&engine_metrics(e, id)->ms, 0, &ev, why, sizeof why) != CANARY_OK)
    fail_msg("ingest: %s", why);
}

/*
 * rollouts.dispersion: what each release's baseline said about its counters' dispersion,
 * written with its metric state; store_dispersion pools the finished releases (completed or
 * rolled back) of a service, its `last` newest — canaryctl dispersion's source.
 */
static void test_dispersion_of_finished_releases(void **state) {
  (void)state;
  static struct plan builtin;
  struct config_error ce;
  assert_int_equal(config_load_default(&builtin, &ce), CANARY_OK);
  int64_t epoch = claim(5, "worker-d");
  struct engine e;
  assert_int_equal(engine_init(&e, &builtin), CANARY_OK);
  static const char *const ids[] = {"learn-1", "learn-2", "learn-3"};
  static const char *const services[] = {"learnsvc", "learnsvc", "othersvc"};
  struct effects fx = EFFECTS_INIT;
  for (int i = 0; i < 3; i++) {
    struct event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = EVENT_ROLLOUT_REQUESTED;
    snprintf(ev.id, sizeof ev.id, "req-%s", ids[i]);
    snprintf(ev.rollout, sizeof ev.rollout, "%s", ids[i]);
    snprintf(ev.service, sizeof ev.service, "%s", services[i]);
    snprintf(ev.version, sizeof ev.version, "1.0.%d", i);
    snprintf(ev.baseline_version, sizeof ev.baseline_version, "0.9.9");
    ev.time_ms = 1767225600000;
    enum apply_outcome outcome;
    char why[256];
    if (i == 1) /* one service, one live rollout: learn-1 ended before learn-2 was asked for */
      e.rollouts[0]->state = ROLLOUT_ROLLED_BACK;
    assert_int_equal(engine_apply(&e, &ev, ev.time_ms, &fx, &outcome, why, sizeof why), CANARY_OK);
    if (outcome != APPLY_APPLIED)
      fail_msg("%s: %s", ids[i], why);
    for (int m = 0; m < 6; m++) /* five steps each, of different sizes */
      baseline_report(&e, ids[i], ev.time_ms + (m + 1) * 60000, 40 + (m * 7 + i * 3) % 11);
  }
  e.rollouts[0]->state = ROLLOUT_ROLLED_BACK;
  e.rollouts[1]->state = ROLLOUT_RUNNING; /* not finished: left out */
  e.rollouts[2]->state = ROLLOUT_COMPLETED;
  struct rollout_metrics *ms[3];
  double sum[3], k[3];
  for (int i = 0; i < 3; i++) {
    ms[i] = engine_metrics(&e, ids[i]);
    mstore_dispersion_steps(&ms[i]->ms, "errors", &sum[i], &k[i]);
    assert_true(k[i] == 5 && sum[i] > 0);
  }
  struct store_batch b = {.shard = 5,
                          .epoch = epoch,
                          .rollouts = e.rollouts,
                          .n_rollouts = 3,
                          .metrics = ms,
                          .global = &e.global};
  no_offsets(&b.offsets);
  commit_ok(&b);

  struct store_dispersion_row *rows;
  size_t n;
  assert_int_equal(store_dispersion(st, "learnsvc", 20, &rows, &n), CANARY_OK);
  assert_int_equal(n, 1); /* errors: the other counters saw no report */
  assert_string_equal(rows[0].service, "learnsvc");
  assert_string_equal(rows[0].counter, "errors");
  assert_int_equal(rows[0].releases, 1);
  assert_true(fabs((rows[0].k) - (k[0])) <= 0);
  assert_true(fabs((rows[0].sum) - (sum[0])) <= 1e-9 * sum[0]);
  free(rows);

  /* the second finishes too (its row is written again without metrics: the column stays) */
  e.rollouts[1]->state = ROLLOUT_COMPLETED;
  struct rollout_metrics *none[3] = {NULL, NULL, NULL};
  b.rollouts = &e.rollouts[1];
  b.n_rollouts = 1;
  b.metrics = none;
  commit_ok(&b);
  assert_int_equal(store_dispersion(st, "", 20, &rows, &n), CANARY_OK);
  assert_int_equal(n, 2);
  assert_string_equal(rows[0].service, "learnsvc");
  assert_int_equal(rows[0].releases, 2);
  assert_true(fabs((rows[0].k) - (k[0] + k[1])) <= 0);
  assert_true(fabs((rows[0].sum) - (sum[0] + sum[1])) <= 1e-9 * (sum[0] + sum[1]));
  assert_string_equal(rows[1].service, "othersvc");
  assert_true(fabs((rows[1].sum) - (sum[2])) <= 1e-9 * sum[2]);
  free(rows);
  assert_int_equal(store_dispersion(st, "learnsvc", 1, &rows, &n), CANARY_OK);
  assert_int_equal(n, 1);
  assert_int_equal(rows[0].releases, 1); /* the newest alone */
  free(rows);
  assert_int_equal(store_dispersion(st, "nosuchsvc", 20, &rows, &n), CANARY_OK);
  assert_int_equal(n, 0);
  free(rows);
  effects_free(&fx);
  engine_destroy(&e);
}

static int64_t shard_rows(int shard) {
  return q_int("SELECT (SELECT count(*) FROM rollouts WHERE shard = %d) + "
               "(SELECT count(*) FROM transitions t JOIN rollouts r ON r.id = t.rollout "
               " WHERE r.shard = %d) + "
               "(SELECT count(*) FROM outbox WHERE shard = %d) + "
               "(SELECT count(*) FROM event_ids WHERE shard = %d) + "
               "(SELECT count(*) FROM event_id_batches WHERE shard = %d) + "
               "(SELECT coalesce(sum(next_offset), 0) FROM offsets WHERE shard = %d)",
               shard, shard, shard, shard, shard, shard);
}

static void test_fencing(void **state) {
  (void)state;
  int64_t a = claim(3, "worker-a");
  int64_t b_epoch = claim(3, "worker-b");
  assert_int_equal(b_epoch, a + 1);
  assert_int_equal(q_int("SELECT count(*) FROM shards WHERE shard = 3 AND owner = 'worker-b'"), 1);
  char *flags_before = q_text("SELECT coalesce(global_flags::text, 'null') FROM shards "
                              "WHERE shard = 3");
  int64_t rows_before = shard_rows(3);

  static struct rollout r;
  full_rollout(&r, "fenced-1.0", 0);
  struct rollout *rs[] = {&r};
  static struct decision d;
  make_decision(&d, r.id, 1, 2);
  const struct decision *ds[] = {&d};
  struct store_outbox_row out[] = {{"canary.decisions", r.id, "fenced-1.0/1", "x", 1}};
  const uint64_t ids[] = {idset_hash("fenced-evt")};
  struct flags global;
  memset(&global, 0, sizeof global);
  struct store_batch b = {.shard = 3,
                          .epoch = a,
                          .rollouts = rs,
                          .n_rollouts = 1,
                          .decisions = ds,
                          .n_decisions = 1,
                          .outbox = out,
                          .n_outbox = 1,
                          .event_ids = ids,
                          .n_event_ids = 1,
                          .global = &global};
  no_offsets(&b.offsets);
  b.offsets.next[1] = 99;
  assert_int_equal(store_commit(st, &b), CANARY_EFENCED);
  assert_non_null(strstr(store_last_error(st), "fenced"));
  assert_int_equal(shard_rows(3), rows_before);
  char *flags_after = q_text("SELECT coalesce(global_flags::text, 'null') FROM shards "
                             "WHERE shard = 3");
  assert_string_equal(flags_before, flags_after);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'fenced-1.0/1'"), 0);
  free(flags_before);
  free(flags_after);

  /* The new owner's epoch commits; the connection is usable after the failure. */
  b.epoch = b_epoch;
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'fenced-1.0/1'"), 1);
  assert_int_equal(q_int("SELECT next_offset FROM offsets WHERE shard = 3 AND "
                         "topic = 'canary.metrics'"),
                   99);
  /* A shard nobody claimed is fenced too. */
  b.shard = 4242;
  assert_int_equal(store_commit(st, &b), CANARY_EFENCED);
}

static void test_atomicity(void **state) {
  (void)state;
  int64_t epoch = claim(5, "worker-a");
  static struct rollout r;
  full_rollout(&r, "atomic-1.0", 0);
  struct rollout *rs[] = {&r};
  static struct decision d[3];
  make_decision(&d[0], r.id, 1, 1);
  make_decision(&d[1], r.id, 2, 1);
  const struct decision *ds1[] = {&d[0], &d[1]};
  struct store_outbox_row out1[] = {{"canary.decisions", r.id, "atomic-1.0/1", "1", 1}};
  const uint64_t ids1[] = {idset_hash("atomic-evt-1")};
  struct store_batch b = {.shard = 5,
                          .epoch = epoch,
                          .rollouts = rs,
                          .n_rollouts = 1,
                          .decisions = ds1,
                          .n_decisions = 2,
                          .outbox = out1,
                          .n_outbox = 1,
                          .event_ids = ids1,
                          .n_event_ids = 1};
  no_offsets(&b.offsets);
  b.offsets.next[0] = 5;
  commit_ok(&b);

  /* Batch 2 changes everything, then repeats seq 2: nothing of it may stay. */
  static struct rollout r_before;
  r_before = r;
  r.seq = 4;
  r.state = ROLLOUT_RUNNING;
  r.exposure_percent = 25;
  make_decision(&d[2], r.id, 3, 2);
  const struct decision *ds2[] = {&d[2], &d[1]};
  struct store_outbox_row out2[] = {{"canary.decisions", r.id, "atomic-1.0/3", "3", 1}};
  const uint64_t ids2[] = {idset_hash("atomic-evt-2")};
  b.decisions = ds2;
  b.outbox = out2;
  b.event_ids = ids2;
  b.offsets.next[0] = 9;
  b.offsets.next[2] = 4;
  struct flags global;
  memset(&global, 0, sizeof global);
  b.global = &global;
  assert_int_equal(store_commit(st, &b), CANARY_EIO);
  const char *err = store_last_error(st);
  assert_non_null(strstr(err, "transitions"));
  assert_non_null(strstr(err, "duplicate key"));
  assert_non_null(strstr(err, "23505"));

  struct engine e;
  struct store_offsets off;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  assert_int_equal(store_load_shard(st, 5, &e, &off), CANARY_OK);
  assert_int_equal(off.next[0], 5);
  assert_int_equal(off.next[2], -1);
  assert_int_equal(e.n_rollouts, 1);
  assert_memory_equal(e.rollouts[0], &r_before, sizeof r_before);
  assert_false(idset_contains(&e.seen, "atomic-evt-2"));
  assert_true(e.global.canary_enabled); /* the flags of the failed batch were not kept */
  engine_destroy(&e);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'atomic-1.0/3'"), 0);
  assert_int_equal(q_int("SELECT count(*) FROM transitions WHERE rollout = 'atomic-1.0'"), 2);

  /* The transaction was rolled back, not left aborted: the corrected batch commits. */
  const struct decision *ds3[] = {&d[2]};
  b.decisions = ds3;
  b.n_decisions = 1;
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM transitions WHERE rollout = 'atomic-1.0'"), 3);
  assert_int_equal(q_int("SELECT next_offset FROM offsets WHERE shard = 5 AND "
                         "topic = 'canary.deploy'"),
                   9);
}

/*
 * Event ids carry the engine's id epoch; a load gives back the newest epoch's ids and the one's
 * before, in the sets the engine held them in, and a batch that prunes deletes older ones.
 */
static void test_event_id_epochs(void **state) {
  (void)state;
  int64_t epoch = claim(12, "worker-a");
  const uint64_t ids5[] = {idset_hash("old-1"), idset_hash("old-2")},
                 ids6[] = {idset_hash("mid-1")},
                 ids7[] = {idset_hash("new-1"), idset_hash("new-1")};
  const int64_t e5[] = {5, 5}, e6[] = {6}, e7[] = {7, 7};
  /* What a worker before migration 005 wrote: a row per id, in event_ids. */
  query(sql,
        "INSERT INTO event_ids (shard, hash, epoch) VALUES (12, %" PRId64 ", 5), "
        "(12, %" PRId64 ", 6)",
        (int64_t)idset_hash("legacy-5"), (int64_t)idset_hash("legacy-6"));
  struct store_batch b = {
      .shard = 12, .epoch = epoch, .event_ids = ids5, .event_id_epochs = e5, .n_event_ids = 2};
  no_offsets(&b.offsets);
  commit_ok(&b);
  b.event_ids = ids6, b.event_id_epochs = e6, b.n_event_ids = 1, b.prune_ids_below = 5;
  commit_ok(&b);
  assert_int_equal(ids_stored(12), 5);
  b.event_ids = ids7, b.event_id_epochs = e7, b.n_event_ids = 2, b.prune_ids_below = 6;
  commit_ok(&b);
  /* epoch 5 went from both tables */
  assert_int_equal(ids_stored(12), 3);
  assert_int_equal(q_int("SELECT count(*) FROM event_ids WHERE shard = 12"), 1);
  struct engine e;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  struct store_offsets off;
  if (store_load_shard(st, 12, &e, &off))
    fail_msg("load: %s", store_last_error(st));
  assert_int_equal(e.id_epoch, 7);
  assert_true(idset_contains(&e.seen, "new-1"));
  assert_true(idset_contains(&e.seen_old, "mid-1"));
  assert_true(idset_contains(&e.seen_old, "legacy-6"));
  assert_false(idset_contains(&e.seen, "old-1") || idset_contains(&e.seen_old, "old-1"));
  assert_false(idset_contains(&e.seen_old, "legacy-5"));
  assert_int_equal(e.seen.n + e.seen_old.n, 3);
  engine_destroy(&e);

  /* A batch that crosses into the next epoch: a row for each, loaded into the right sets. */
  const uint64_t ids78[] = {idset_hash("late-7"), idset_hash("first-8"), idset_hash("second-8")};
  const int64_t e78[] = {7, 8, 8};
  b.event_ids = ids78, b.event_id_epochs = e78, b.n_event_ids = 3, b.prune_ids_below = 0;
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM event_id_batches WHERE shard = 12 AND epoch = 8"),
                   1);
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  if (store_load_shard(st, 12, &e, &off))
    fail_msg("load: %s", store_last_error(st));
  assert_int_equal(e.id_epoch, 8);
  assert_true(idset_contains(&e.seen, "first-8") && idset_contains(&e.seen, "second-8"));
  assert_true(idset_contains(&e.seen_old, "late-7") && idset_contains(&e.seen_old, "new-1"));
  assert_false(idset_contains(&e.seen_old, "mid-1") || idset_contains(&e.seen_old, "legacy-6"));
  assert_int_equal(e.seen.n + e.seen_old.n, 4);
  engine_destroy(&e);
}

/* The digest the engine holds for id, failing when it holds none. */
static uint64_t digest_of(const struct engine *e, const char *id) {
  uint64_t d = 42;
  if (!engine_seen(e, idset_hash(id), &d))
    fail_msg("the loaded engine does not know id %s", id);
  return d;
}

/*
 * Each id comes back with the digest it was stored with (migrations/007_event_id_digests.sql),
 * also across a batch that crosses into the next epoch; ids stored without one — by an older
 * worker, before the migration, or in event_ids — come back unknown, never as a digest that
 * could make a false conflict. A row whose digests do not match its hashes is refused.
 */
static void test_event_id_digests(void **state) {
  (void)state;
  int64_t epoch = claim(15, "worker-a");
  const uint64_t ids[] = {idset_hash("a"), idset_hash("b")}, digests[] = {0x1111, 0x2222};
  const int64_t e7[] = {7, 7};
  struct store_batch b = {.shard = 15,
                          .epoch = epoch,
                          .event_ids = ids,
                          .event_id_epochs = e7,
                          .event_id_digests = digests,
                          .n_event_ids = 2};
  no_offsets(&b.offsets);
  commit_ok(&b);
  const uint64_t older[] = {idset_hash("c")};
  b.event_ids = older, b.event_id_digests = NULL, b.n_event_ids = 1; /* an older worker's */
  commit_ok(&b);
  PQclear(query(sql, "INSERT INTO event_ids (shard, hash, epoch) VALUES (15, %" PRId64 ", 7)",
                (int64_t)idset_hash("d")));
  const uint64_t ids78[] = {idset_hash("e"), idset_hash("f")}, d78[] = {0x5555, 0xffffffff66666666};
  const int64_t e78[] = {7, 8};
  b.event_ids = ids78, b.event_id_epochs = e78, b.event_id_digests = d78, b.n_event_ids = 2;
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM event_id_batches WHERE shard = 15 AND "
                         "digests IS NULL"),
                   1);

  struct engine e;
  struct store_offsets off;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  if (store_load_shard(st, 15, &e, &off))
    fail_msg("load: %s", store_last_error(st));
  assert_int_equal(digest_of(&e, "a"), 0x1111);
  assert_int_equal(digest_of(&e, "b"), 0x2222);
  assert_int_equal(digest_of(&e, "c"), EVENT_DIGEST_UNKNOWN);
  assert_int_equal(digest_of(&e, "d"), EVENT_DIGEST_UNKNOWN);
  assert_int_equal(digest_of(&e, "e"), 0x5555);
  assert_true(idset_contains(&e.seen_old, "e"));
  assert_int_equal(digest_of(&e, "f"), 0xffffffff66666666);
  assert_true(idset_contains(&e.seen, "f"));
  engine_destroy(&e);

  PGresult *r = PQexec(sql, "INSERT INTO event_id_batches (shard, epoch, hashes, digests) "
                            "VALUES (15, 8, '\\x0000000000000001', '\\x01')");
  assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
  assert_non_null(strstr(PQresultErrorMessage(r), "event_id_batches_digests_length"));
  PQclear(r);
}

/*
 * store_commit_send / store_commit_wait: the batch is copied at send (its memory may be
 * overwritten at once), the connection serves nothing else until the wait, and a fenced batch
 * is reported by the wait.
 */
static void test_commit_send_wait(void **state) {
  (void)state;
  int64_t epoch = claim(14, "worker-a");
  static struct rollout r;
  full_rollout(&r, "sendwait-1.0", 0);
  struct rollout *rs[] = {&r};
  uint64_t ids[] = {idset_hash("sw-1"), idset_hash("sw-2")};
  int64_t epochs[] = {3, 3};
  struct store_outbox_row out[] = {{"canary.flags", "k", "sendwait/1", "abc", 3}};
  struct store_batch b = {.shard = 14,
                          .epoch = epoch,
                          .rollouts = rs,
                          .n_rollouts = 1,
                          .outbox = out,
                          .n_outbox = 1,
                          .event_ids = ids,
                          .event_id_epochs = epochs,
                          .n_event_ids = 2};
  no_offsets(&b.offsets);
  b.offsets.next[0] = 7;
  assert_false(store_commit_in_flight(st));
  if (store_commit_send(st, &b))
    fail_msg("send: %s", store_last_error(st));
  assert_true(store_commit_in_flight(st));
  /* what the batch pointed to is the caller's again */
  r.seq = 99;
  ids[0] = ids[1] = 0;
  out[0].message_id = "sendwait/overwritten";
  int64_t e2;
  assert_int_equal(store_claim_shard(st, 14, "worker-b", &e2), CANARY_EINVALID);
  assert_non_null(strstr(store_last_error(st), "in flight"));
  assert_int_equal(store_commit_send(st, &b), CANARY_EINVALID);
  assert_int_equal(store_commit_wait(st), CANARY_OK);
  assert_false(store_commit_in_flight(st));
  assert_int_equal(store_commit_wait(st), CANARY_EINVALID); /* nothing in flight */
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'sendwait/1'"), 1);
  assert_int_equal(q_int("SELECT seq FROM rollouts WHERE id = 'sendwait-1.0'"), 3);
  assert_int_equal(ids_stored(14), 2);

  /* Fenced: the send succeeds, the wait says so, and the connection serves on. */
  int64_t newer = claim(14, "worker-b");
  out[0].message_id = "sendwait/2";
  assert_int_equal(store_commit_send(st, &b), CANARY_OK);
  assert_int_equal(store_commit_wait(st), CANARY_EFENCED);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'sendwait/2'"), 0);
  b.epoch = newer;
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'sendwait/2'"), 1);
}

/* Rows published long ago go; unpublished ones and recent ones stay. */
static void test_outbox_prune(void **state) {
  (void)state;
  int64_t epoch = claim(13, "worker-a");
  struct store_outbox_row out[] = {
      {"canary.notifications", "k", "prune/old", "x", 1},
      {"canary.notifications", "k", "prune/recent", "x", 1},
      {"canary.notifications", "k", "prune/waiting", "x", 1},
  };
  struct store_batch b = {.shard = 13, .epoch = epoch, .outbox = out, .n_outbox = 3};
  no_offsets(&b.offsets);
  commit_ok(&b);
  PQclear(query(sql, "UPDATE outbox SET published_at = now() - interval '8 days' "
                     "WHERE message_id = 'prune/old'"));
  PQclear(query(sql, "UPDATE outbox SET published_at = now() - interval '1 day' "
                     "WHERE message_id = 'prune/recent'"));
  long n = -1;
  assert_int_equal(store_outbox_prune(st, 7 * 86400, &n), CANARY_OK);
  assert_true(n >= 1);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id LIKE 'prune/%%'"), 2);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'prune/old'"), 0);
}

static void test_outbox_idempotent(void **state) {
  (void)state;
  int64_t epoch = claim(6, "worker-a");
  struct store_outbox_row out[] = {
      {"canary.notifications", "k", "idem/n1", "first", 5},
      {"canary.notifications", "k", "idem/n2", "dup-in-batch", 12},
      {"canary.notifications", "k", "idem/n2", "dup-in-batch-2", 14},
  };
  struct store_batch b = {.shard = 6, .epoch = epoch, .outbox = out, .n_outbox = 3};
  no_offsets(&b.offsets);
  commit_ok(&b);
  commit_ok(&b); /* the same batch again: a re-applied batch never doubles an output */
  struct store_outbox_row again[] = {{"canary.notifications", "k", "idem/n1", "changed", 7},
                                     {"canary.notifications", "k", "idem/n3", "third", 5}};
  b.outbox = again;
  b.n_outbox = 2;
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'idem/n1'"), 1);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'idem/n2'"), 1);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id LIKE 'idem/%%'"), 3);
  /* The first write wins. */
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'idem/n1' AND "
                         "payload = 'first'::bytea"),
                   1);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'idem/n2' AND "
                         "payload = 'dup-in-batch'::bytea"),
                   1);
}

static void drain_outbox(void) {
  for (;;) {
    const struct store_outbox_msg *m;
    size_t n;
    assert_int_equal(store_outbox_fetch(st, 1000, &m, &n), CANARY_OK);
    if (!n)
      return;
    int64_t *seqs = malloc(n * sizeof *seqs);
    for (size_t i = 0; i < n; i++)
      seqs[i] = m[i].seq;
    assert_int_equal(store_outbox_mark(st, seqs, n), CANARY_OK);
    free(seqs);
  }
}

static void test_outbox_fetch_mark(void **state) {
  (void)state;
  drain_outbox();
  int64_t epoch = claim(7, "worker-a");
  static unsigned char big[70000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (unsigned char)(i * 7);
  struct store_outbox_row out[] = {
      {"canary.decisions", "r1", "relay/1", "\0\1\2", 3},
      {"canary.notifications", NULL, "relay/2", "", 0},
      {"canary.flags", "svc", "relay/3", big, sizeof big},
      {"canary.dlq", "r1", "relay/4", "bad", 3},
  };
  struct store_batch b = {.shard = 7, .epoch = epoch, .outbox = out, .n_outbox = 4};
  no_offsets(&b.offsets);
  commit_ok(&b);

  const struct store_outbox_msg *m;
  size_t n;
  assert_int_equal(store_outbox_fetch(st, 2, &m, &n), CANARY_OK);
  assert_int_equal(n, 2);
  assert_string_equal(m[0].message_id, "relay/1");
  assert_string_equal(m[0].topic, "canary.decisions");
  assert_string_equal(m[0].key, "r1");
  assert_int_equal(m[0].len, 3);
  assert_memory_equal(m[0].payload, "\0\1\2", 3);
  assert_string_equal(m[1].message_id, "relay/2");
  assert_null(m[1].key);
  assert_int_equal(m[1].len, 0);
  assert_true(m[0].seq < m[1].seq);
  int64_t first[] = {m[0].seq, m[1].seq};
  assert_int_equal(store_outbox_mark(st, first, 2), CANARY_OK);
  assert_int_equal(store_outbox_mark(st, first, 2), CANARY_OK); /* marking twice is harmless */

  assert_int_equal(store_outbox_fetch(st, 100, &m, &n), CANARY_OK);
  assert_int_equal(n, 2);
  assert_string_equal(m[0].message_id, "relay/3");
  assert_int_equal(m[0].len, sizeof big);
  assert_memory_equal(m[0].payload, big, sizeof big);
  assert_string_equal(m[1].message_id, "relay/4");
  int64_t rest[] = {m[0].seq, m[1].seq};
  assert_int_equal(store_outbox_mark(st, rest, 2), CANARY_OK);
  assert_int_equal(store_outbox_fetch(st, 100, &m, &n), CANARY_OK);
  assert_int_equal(n, 0);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id LIKE 'relay/%%' AND "
                         "published_at IS NOT NULL"),
                   4);
  /* The relay's query can use the partial index (forced: the table is tiny here). */
  PQclear(query(sql, "SET enable_seqscan = off"));
  char *plan_text = q_text("EXPLAIN SELECT seq FROM outbox WHERE published_at IS NULL "
                           "ORDER BY seq LIMIT 100");
  assert_non_null(strstr(plan_text, "outbox_unpublished"));
  free(plan_text);
  PQclear(query(sql, "RESET enable_seqscan"));
}

static void test_transitions_append_only(void **state) {
  (void)state;
  assert_true(q_int("SELECT count(*) FROM transitions") > 0);
  static const char *const stmts[] = {
      "UPDATE transitions SET reason = 'rewritten'",
      "DELETE FROM transitions",
      "TRUNCATE transitions",
  };
  for (size_t i = 0; i < 3; i++) {
    PGresult *r = PQexec(sql, stmts[i]);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(r), "append-only"));
    PQclear(r);
  }
  assert_int_equal(q_int("SELECT count(*) FROM transitions WHERE reason = 'rewritten'"), 0);
}

static void test_history(void **state) {
  (void)state;
  struct decision *h;
  size_t n;
  int rc = store_history(st, "checkout-2.1.0", &h, &n);
  if (rc)
    fail_msg("history: %s", store_last_error(st));
  assert_int_equal(n, 2);
  struct decision want[2];
  make_decision(&want[0], "checkout-2.1.0", 1, 3);
  make_decision(&want[1], "checkout-2.1.0", 2, EVIDENCE_MAX);
  for (size_t i = 0; i < 2; i++)
    assert_memory_equal(&h[i], &want[i], sizeof want[i]);
  assert_int_equal(h[1].n_evidence, EVIDENCE_MAX);
  assert_int_equal(h[1].evidence[1].kind, EVIDENCE_NUM); /* 3.0 stayed a number */
  assert_true(h[1].evidence[1].num == 3.0);
  free(h);

  /* evidence is the contract's object: the first value of a repeated key. */
  assert_int_equal(q_int("SELECT (evidence->>'criterion_2')::bigint FROM transitions "
                         "WHERE id = 'checkout-2.1.0/2'"),
                   -2000000014);
  assert_int_equal(q_int("SELECT count(*) FROM transitions WHERE id = 'checkout-2.1.0/1' AND "
                         "time = timestamptz '2026-01-01 00:00:01.007+00' AND from_stage IS NULL "
                         "AND rule IS NULL"),
                   1);

  assert_int_equal(store_history(st, "search-7.0.0", &h, &n), CANARY_OK);
  assert_int_equal(n, 1);
  assert_int_equal(h[0].n_evidence, 0);
  free(h);
  assert_int_equal(store_history(st, "no-such-rollout", &h, &n), CANARY_ENOTFOUND);
  assert_null(h);
  assert_int_equal(n, 0);
}

static void test_list_rollouts(void **state) {
  (void)state;
  struct store_rollout_row *rows;
  size_t n;
  assert_int_equal(store_list_rollouts(st, &rows, &n), CANARY_OK);
  assert_true(n >= 4);
  assert_string_equal(rows[0].rollout.id, "checkout-2.1.0");
  assert_int_equal(rows[0].shard, 1);
  assert_string_equal(rows[1].rollout.id, "search-7.0.0");
  struct rollout want;
  full_rollout(&want, "checkout-2.1.0", 0);
  assert_memory_equal(&rows[0].rollout, &want, sizeof want);
  free(rows);
}

/* One service, one live rollout, across shards: the store refuses a second live rollout of a
 * service (migration 012) and tells the worker which one is live; ended, it makes room. */
static void test_one_live_rollout_index(void **state) {
  (void)state;
  int64_t e10 = claim(16, "worker-u"), e11 = claim(17, "worker-v");
  static struct rollout a, b;
  full_rollout(&a, "uniq-1.0.0", 0);
  full_rollout(&b, "uniq-1.1.0", 0);
  snprintf(a.service, sizeof a.service, "uniq");
  snprintf(b.service, sizeof b.service, "uniq");
  a.state = b.state = ROLLOUT_RUNNING;
  struct rollout *ra[] = {&a}, *rb[] = {&b};
  struct store_batch ba = {.shard = 16, .epoch = e10, .rollouts = ra, .n_rollouts = 1};
  struct store_batch bb = {.shard = 17, .epoch = e11, .rollouts = rb, .n_rollouts = 1};
  no_offsets(&ba.offsets);
  no_offsets(&bb.offsets);
  commit_ok(&ba);
  char ids[4][EVENT_NAME_MAX];
  int shards[4];
  size_t n = 9;
  assert_int_equal(store_live_rollouts(st, "uniq", "uniq-1.1.0", ids, shards, 4, &n), CANARY_OK);
  assert_int_equal(n, 1);
  assert_string_equal(ids[0], "uniq-1.0.0");
  assert_int_equal(shards[0], 16);
  assert_int_equal(store_live_rollouts(st, "uniq", "uniq-1.0.0", ids, shards, 4, &n), CANARY_OK);
  assert_int_equal(n, 0); /* itself is no other */
  assert_int_not_equal(store_commit(st, &bb), CANARY_OK);
  assert_non_null(strstr(store_last_error(st), "rollouts_one_live_per_service"));
  a.state = ROLLOUT_ROLLED_BACK;
  commit_ok(&ba);
  assert_int_equal(store_live_rollouts(st, "uniq", "uniq-1.1.0", ids, shards, 4, &n), CANARY_OK);
  assert_int_equal(n, 0);
  commit_ok(&bb);
}

static void test_connect_retry_logged(void **state) {
  (void)state;
  struct log_lines l;
  memset(&l, 0, sizeof l);
  store_t *s = NULL;
  int64_t t0 = mono_us();
  /* Port 1 on the loopback refuses at once: every attempt fails fast. */
  int rc = store_open("host=127.0.0.1 port=1 dbname=x", 1500, capture_log, &l, &s);
  int64_t ms = (mono_us() - t0) / 1000;
  assert_int_equal(rc, CANARY_EUNAVAILABLE);
  assert_null(s);
  assert_non_null(strstr(l.text, "PostgreSQL unavailable (could not connect"));
  assert_non_null(strstr(l.text, "retrying in 100 ms"));
  assert_non_null(strstr(l.text, "retrying in 200 ms"));
  assert_non_null(strstr(l.text, "retrying in 400 ms"));
  assert_non_null(strstr(l.text, "giving up"));
  assert_true(ms >= 1450 && ms < 4000);
}

static void test_lost_connection(void **state) {
  (void)state;
  int64_t epoch = claim(8, "worker-a");
  int64_t pid = q_int("SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND "
                      "application_name = 'canaryd' AND pid <> pg_backend_pid() "
                      "ORDER BY backend_start DESC LIMIT 1",
                      db_name);
  assert_true(pid > 0);
  PQclear(query(sql, "SELECT pg_terminate_backend(%" PRId64 ")", pid));
  usleep(100 * 1000);
  struct store_outbox_row out[] = {{"canary.decisions", "k", "lost/1", "x", 1}};
  struct store_batch b = {.shard = 8, .epoch = epoch, .outbox = out, .n_outbox = 1};
  no_offsets(&b.offsets);
  assert_int_equal(store_commit(st, &b), CANARY_EUNAVAILABLE);
  assert_int_equal(store_reconnect(st, 5000), CANARY_OK);
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'lost/1'"), 1);
}

/*
 * The session ends (pg_terminate_backend) while a pipelined commit waits on the shard's row
 * lock: the outcome must read "unavailable" — reconnect, and reload: whether COMMIT ran is not
 * known — never a plain I/O error, which says "rolled back" and left the connection in pipeline
 * mode for the next statement ("cannot exit pipeline mode", then every call an I/O error).
 */
static void test_terminated_during_commit(void **state) {
  (void)state;
  int64_t epoch = claim(20, "worker-a");
  PQclear(query(sql, "BEGIN"));
  PQclear(query(sql, "SELECT 1 FROM shards WHERE shard = 20 FOR UPDATE"));
  struct store_outbox_row out[] = {{"canary.decisions", "k", "terminated/1", "x", 1}};
  struct store_batch b = {.shard = 20, .epoch = epoch, .outbox = out, .n_outbox = 1};
  no_offsets(&b.offsets);
  assert_int_equal(store_commit_send(st, &b), CANARY_OK);
  int64_t pid = -1;
  for (int i = 0; i < 500 && pid <= 0; i++) { /* until the fence waits for the lock */
    PGresult *r = query(sql,
                        "SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND "
                        "application_name = 'canaryd' AND wait_event_type = 'Lock'",
                        db_name);
    pid = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    if (pid <= 0)
      usleep(10 * 1000);
  }
  assert_true(pid > 0);
  PQclear(query(sql, "SELECT pg_terminate_backend(%" PRId64 ")", pid));
  PQclear(query(sql, "ROLLBACK"));
  int rc = store_commit_wait(st);
  assert_string_equal(canary_strerror(rc), canary_strerror(CANARY_EUNAVAILABLE));
  assert_false(store_commit_in_flight(st));
  /* The connection is not used again as if nothing happened. */
  assert_int_equal(store_commit(st, &b), CANARY_EUNAVAILABLE);
  assert_int_equal(store_reconnect(st, 5000), CANARY_OK);
  commit_ok(&b);
  assert_int_equal(q_int("SELECT count(*) FROM outbox WHERE message_id = 'terminated/1'"), 1);
}

/*
 * Commit ROUNDS batches of 500 decisions + 500 outbox rows (300 bytes) + 1000 event ids + the
 * n_rollouts rollouts the decisions belong to (full state each), on shard; print the figures.
 */
static void measure_commits(int shard, int n_rollouts) {
  enum { MAX_ROLLOUTS = 500, N_DECISIONS = 500, N_OUTBOX = 500, N_IDS = 1000, ROUNDS = 20 };
  assert_true(n_rollouts <= MAX_ROLLOUTS && N_DECISIONS % n_rollouts == 0);
  int per_rollout = N_DECISIONS / n_rollouts;
  int64_t epoch = claim(shard, "worker-a");
  static struct rollout r[MAX_ROLLOUTS];
  static struct decision d[N_DECISIONS];
  static char mid[N_OUTBOX][48], eid[N_IDS][48];
  static unsigned char payload[300];
  static struct rollout *rs[MAX_ROLLOUTS];
  static const struct decision *ds[N_DECISIONS];
  static struct store_outbox_row out[N_OUTBOX];
  static uint64_t ids[N_IDS];
  memset(payload, 0x5a, sizeof payload);
  struct flags global;
  memset(&global, 0, sizeof global);
  global.canary_enabled = true;

  int64_t us[ROUNDS + 1];
  for (int round = 0; round <= ROUNDS; round++) { /* round 0 warms up */
    for (int i = 0; i < n_rollouts; i++) {
      char id[32];
      snprintf(id, sizeof id, "perf-%d-%03d", shard, i);
      full_rollout(&r[i], id, i);
      r[i].seq = (int64_t)(round + 1) * per_rollout;
      rs[i] = &r[i];
    }
    for (int i = 0; i < N_DECISIONS; i++) {
      int64_t seq = (int64_t)round * per_rollout + i / n_rollouts + 1;
      make_decision(&d[i], r[i % n_rollouts].id, seq, 8);
      ds[i] = &d[i];
    }
    for (int i = 0; i < N_OUTBOX; i++) {
      snprintf(mid[i], sizeof mid[i], "perf/%d/%d/%d", shard, round, i);
      out[i] = (struct store_outbox_row){"canary.decisions", r[i % n_rollouts].id, mid[i], payload,
                                         sizeof payload};
    }
    for (int i = 0; i < N_IDS; i++) {
      snprintf(eid[i], sizeof eid[i], "perf-evt-%d-%d-%d", shard, round, i);
      ids[i] = idset_hash(eid[i]);
    }
    struct store_batch b = {.shard = shard,
                            .epoch = epoch,
                            .rollouts = rs,
                            .n_rollouts = (size_t)n_rollouts,
                            .decisions = ds,
                            .n_decisions = N_DECISIONS,
                            .outbox = out,
                            .n_outbox = N_OUTBOX,
                            .event_ids = ids,
                            .n_event_ids = N_IDS,
                            .global = &global};
    for (int t = 0; t < STORE_INPUT_TOPICS; t++)
      b.offsets.next[t] = (int64_t)(round + 1) * 1000 + t;
    int64_t t0 = mono_us();
    commit_ok(&b);
    us[round] = mono_us() - t0;
  }
  for (int i = 1; i <= ROUNDS; i++) /* sort rounds 1..ROUNDS for the median */
    for (int j = i + 1; j <= ROUNDS; j++)
      if (us[j] < us[i]) {
        int64_t x = us[i];
        us[i] = us[j];
        us[j] = x;
      }
  printf("commit latency, 500 decisions + 500 outbox rows + 1000 event ids + %d rollouts "
         "(%d rounds): min %.1f ms, median %.1f ms, max %.1f ms (warm-up %.1f ms)\n",
         n_rollouts, ROUNDS, us[1] / 1000.0, us[(ROUNDS + 1) / 2] / 1000.0, us[ROUNDS] / 1000.0,
         us[0] / 1000.0);
  assert_int_equal(q_int("SELECT count(*) FROM transitions WHERE rollout LIKE 'perf-%d-%%'", shard),
                   (ROUNDS + 1) * N_DECISIONS);
  assert_int_equal(ids_stored(shard), (ROUNDS + 1) * N_IDS);
  assert_int_equal(q_int("SELECT count(*) FROM event_id_batches WHERE shard = %d", shard),
                   ROUNDS + 1); /* a row a batch */

  /* And the load of the shard with its 21,000 event ids. */
  struct engine e;
  struct store_offsets off;
  assert_int_equal(engine_init(&e, &plan), CANARY_OK);
  int64_t t0 = mono_us();
  assert_int_equal(store_load_shard(st, shard, &e, &off), CANARY_OK);
  printf("load shard (%zu rollouts, %zu event ids): %.1f ms\n", e.n_rollouts, e.seen.n,
         (mono_us() - t0) / 1000.0);
  assert_int_equal(e.n_rollouts, n_rollouts);
  assert_int_equal(off.next[2], (ROUNDS + 1) * 1000 + 2);
  engine_destroy(&e);
}

static void test_commit_latency(void **state) {
  (void)state;
  measure_commits(9, 50);
  measure_commits(10, 500);
}

int main(void) {
  if (!getenv("CANARY_PG") || !*getenv("CANARY_PG")) {
    fprintf(stderr, "test_store: CANARY_PG is not set: start PostgreSQL first "
                    "(scripts/test does; or: source scripts/lib/services.sh; services_start pg; "
                    "eval \"$(services_env pg)\")\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_migrate_twice),
      cmocka_unit_test(test_migrate_concurrently),
      cmocka_unit_test(test_claim_commit_load),
      cmocka_unit_test(test_engine_state_round_trip),
      cmocka_unit_test(test_fencing),
      cmocka_unit_test(test_atomicity),
      cmocka_unit_test(test_outbox_idempotent),
      cmocka_unit_test(test_event_id_epochs),
      cmocka_unit_test(test_event_id_digests),
      cmocka_unit_test(test_commit_send_wait),
      cmocka_unit_test(test_outbox_prune),
      cmocka_unit_test(test_outbox_fetch_mark),
      cmocka_unit_test(test_transitions_append_only),
      cmocka_unit_test(test_history),
      cmocka_unit_test(test_list_rollouts),
      cmocka_unit_test(test_dispersion_of_finished_releases),
      cmocka_unit_test(test_one_live_rollout_index),
      cmocka_unit_test(test_connect_retry_logged),
      cmocka_unit_test(test_lost_connection),
      cmocka_unit_test(test_terminated_during_commit),
      cmocka_unit_test(test_commit_latency),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
