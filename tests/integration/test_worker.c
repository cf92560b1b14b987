/*
 * The worker against the real broker and database: crash safety and two workers in one group.
 *
 * A recorded stream (tests/integration/gen-stream, >= 2000 events over dozens of rollouts) is
 * produced as Avro to the input topics. The reference is the same stream through the engine
 * in-process, exactly as `canaryctl simulate` runs it. canaryd runs with --clock event (only
 * event time moves its clock, as in the reference) against a database of its own.
 *
 * - crash safety: canaryd is killed with SIGKILL at random moments at least 10 times and
 *   restarted; then its transition log, its final rollout states and the set of decision ids
 *   published on canary.decisions must equal the reference. Re-published ids are counted.
 * - two workers: two canaryd in one group share the shards; one is killed; the other takes its
 *   shards over; again everything must equal the reference, nothing lost or doubled.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/app_cli.h"
#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rollout_json.h"
#include "core/engine.h"
#include "store/store.h"

#define STREAM_EVENTS 2400
/* The fast plan with metric halt rules: a restart must give every rollout its windows, for:
 * states and zscore histories back for the decisions to agree. */
#define PLAN_FILE CANARY_SOURCE_DIR "/tests/integration/plans/fast-metrics.yaml"

static const char *pg, *kafka;
static struct plan plan;
static const char *worker_plan = PLAN_FILE; /* NULL: the built-in plan */
static const char *worker_hold_ms = "600000"; /* canaryd's --hold-ms */
static const char *worker_kafka_conf;         /* one more --kafka-conf (NULL: none) */

/* ---- helpers ---------------------------------------------------------------------------- */

static int64_t wall_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR)
    ;
}

/* The reference: every event through one engine, deadlines fired at their times in between. */
struct reference {
  struct event *events;
  size_t n_events;
  struct event_scratch **scratches; /* one per event: it owns the event's metric arrays */
  struct engine engine;
  struct decision *decisions;
  size_t n_decisions;
  /* what else it publishes: every notification's id, every traffic split (id and service) */
  char **notes;
  size_t n_notes;
  struct traffic_split *splits;
  size_t n_splits;
};

static void keep_decisions(struct reference *ref, struct effects *fx) {
  for (size_t i = 0; i < fx->n; i++)
    if (fx->items[i].kind == EFFECT_DECISION) {
      ref->decisions = realloc(ref->decisions, (ref->n_decisions + 1) * sizeof *ref->decisions);
      assert_non_null(ref->decisions);
      ref->decisions[ref->n_decisions++] = fx->items[i].u.decision;
    } else if (fx->items[i].kind == EFFECT_NOTIFICATION) {
      ref->notes = realloc(ref->notes, (ref->n_notes + 1) * sizeof *ref->notes);
      assert_non_null(ref->notes);
      ref->notes[ref->n_notes++] = strdup(fx->items[i].u.notification.id);
    } else if (fx->items[i].kind == EFFECT_TRAFFIC) {
      ref->splits = realloc(ref->splits, (ref->n_splits + 1) * sizeof *ref->splits);
      assert_non_null(ref->splits);
      ref->splits[ref->n_splits++] = fx->items[i].u.traffic;
    }
  effects_clear(fx);
}

static void fire_until(struct reference *ref, struct effects *fx, int64_t t) {
  for (int64_t d; (d = engine_next_deadline(&ref->engine)) <= t;) {
    assert_int_equal(engine_tick(&ref->engine, d, fx), CANARY_OK);
    keep_decisions(ref, fx);
  }
}

/* Generate the stream, keep its events, and run the reference over it. */
static void reference_build(struct reference *ref, const char *prefix) {
  char cmd[512], why[512];
  snprintf(cmd, sizeof cmd, "%s/tests/integration/gen-stream %s %d", CANARY_SOURCE_DIR, prefix,
           STREAM_EVENTS);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  struct effects fx = EFFECTS_INIT;
  memset(ref, 0, sizeof *ref);
  assert_int_equal(engine_init(&ref->engine, &plan), CANARY_OK);
  ref->events = calloc(STREAM_EVENTS + 1, sizeof *ref->events);
  ref->scratches = calloc(STREAM_EVENTS + 1, sizeof *ref->scratches);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int64_t clock = INT64_MIN;
  while ((len = getline(&line, &cap, f)) > 0) {
    assert_true(ref->n_events < STREAM_EVENTS);
    struct event_scratch *scratch = event_scratch_new();
    ref->scratches[ref->n_events] = scratch;
    struct event *ev = &ref->events[ref->n_events++];
    if (event_from_json(line, (size_t)len - 1, ev, scratch, why, sizeof why) != CANARY_OK)
      fail_msg("generated line %zu does not parse: %s", ref->n_events, why);
    enum apply_outcome outcome;
    if (!engine_admit(&ref->engine, ev, true, &outcome, why, sizeof why)) {
      if (outcome != APPLY_DUPLICATE)
        fail_msg("the reference rejects generated event %s: %s", ev->id, why);
      continue; /* a duplicate moves no clock, as in canaryd and simulate */
    }
    fire_until(ref, &fx, ev->time_ms);
    clock = ev->time_ms > clock ? ev->time_ms : clock;
    assert_int_equal(engine_apply(&ref->engine, ev, clock, &fx, &outcome, why, sizeof why),
                     CANARY_OK);
    if (outcome == APPLY_REJECTED || outcome == APPLY_CONFLICT)
      fail_msg("the reference rejects generated event %s: %s", ev->id, why);
    keep_decisions(ref, &fx);
  }
  fire_until(ref, &fx, clock);
  free(line);
  assert_int_equal(pclose(f), 0);
  assert_int_equal((int)ref->n_events, STREAM_EVENTS);
  effects_free(&fx);
}

/*
 * The reference is what `canaryctl simulate` prints for the same stream: check it byte for byte,
 * so the in-process reference cannot drift from the simulator.
 */
static void reference_matches_simulate(const struct reference *ref, const char *prefix) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "%s/tests/integration/gen-stream %s %d | %s/canaryctl simulate --plan %s --events -",
           CANARY_SOURCE_DIR, prefix, STREAM_EVENTS, CANARY_BINARY_DIR, PLAN_FILE);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  struct jbuf b;
  jbuf_init(&b);
  char *line = NULL;
  size_t cap = 0, i = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    assert_true(i < ref->n_decisions);
    jbuf_reset(&b);
    decision_to_json(&ref->decisions[i], &b);
    if ((size_t)len - 1 != b.len || memcmp(line, b.data, b.len))
      fail_msg("simulate line %zu differs from the reference:\n%s%.*s", i + 1, line,
               (int)b.len, b.data);
    i++;
  }
  assert_int_equal(pclose(f), 0);
  assert_int_equal(i, ref->n_decisions);
  free(line);
  jbuf_free(&b);
}

static void reference_free(struct reference *ref) {
  engine_destroy(&ref->engine);
  for (size_t i = 0; i < ref->n_events; i++)
    event_scratch_destroy(ref->scratches[i]);
  free(ref->scratches);
  free(ref->events);
  free(ref->decisions);
  for (size_t i = 0; i < ref->n_notes; i++)
    free(ref->notes[i]);
  free(ref->notes);
  free(ref->splits);
}

static void on_delivery(void *ctx, int64_t opaque, bool ok, const char *error) {
  int *failed = ctx;
  if (!ok) {
    fprintf(stderr, "delivery of event %" PRId64 " failed: %s\n", opaque, error);
    (*failed)++;
  }
}

/* Produce evs as the contract says: Avro, the topic of its type, key = rollout (a global
 * flag.set to every shard, as canaryctl sends it). */
static void produce_events(const struct event *evs, size_t n) {
  avro_codec_t *codec;
  bus_producer_t *p;
  int failed = 0;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  assert_int_equal(bus_producer_new(kafka, "test-worker", NULL, NULL, &p), CANARY_OK);
  bus_producer_on_delivery(p, on_delivery, &failed);
  struct avro_buf buf = AVRO_BUF_INIT;
  for (size_t i = 0; i < n; i++) {
    const struct event *ev = &evs[i];
    assert_int_equal(avro_codec_encode_event(codec, ev, &buf), CANARY_OK);
    if (!ev->rollout[0]) { /* a global flag.set: to every shard, as canaryctl sends it */
      for (int32_t part = 0; part < 3; part++)
        assert_int_equal(bus_produce(p, avro_codec_topic_of(ev->type), part, NULL, 0, buf.data,
                                     buf.len, (int64_t)i),
                         CANARY_OK);
      continue;
    }
    assert_int_equal(bus_produce(p, avro_codec_topic_of(ev->type), -1, ev->rollout,
                                 strlen(ev->rollout), buf.data, buf.len, (int64_t)i),
                     CANARY_OK);
  }
  assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  assert_int_equal(failed, 0);
  avro_buf_free(&buf);
  bus_producer_destroy(p);
  avro_codec_destroy(codec);
}

/* The stream's events [from, to). */
static void produce(const struct reference *ref, size_t from, size_t to) {
  if (to > ref->n_events)
    to = ref->n_events;
  if (from < to)
    produce_events(ref->events + from, to - from);
}

/* A database of the test's own: the worker starts from nothing (offsets from the start). */
static char *fresh_database(const char *name) {
  PGconn *c = PQconnectdb(pg);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
  PQclear(PQexec(c, sql));
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  char *conninfo = malloc(strlen(pg) + 64);
  sprintf(conninfo, "%s dbname=%s", pg, name); /* libpq: the last dbname wins */
  return conninfo;
}

static void drop_database(const char *name) {
  PGconn *c = PQconnectdb(pg);
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

/* Start canaryd; its log goes to a file next to the build. */
static pid_t start_worker(const char *conninfo, const char *group, const char *id) {
  char log[256];
  snprintf(log, sizeof log, "%s/test_worker-%s.log", CANARY_BINARY_DIR, id);
  /* Static membership: a worker restarted under the same id gets its shards back at once
   * instead of waiting for its dead predecessor's session to time out. */
  char instance[128];
  snprintf(instance, sizeof instance, "group.instance.id=%s-%s", group, id);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failing test must not leave workers behind */
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    /* --clock event and a long --hold-ms: input already in Kafka is released strictly in
     * event-time order, as the reference applies it. Small batches: more commits to crash in. */
    const char *argv[32];
    int n = 0;
    argv[n++] = "canaryd";
    argv[n++] = "--clock", argv[n++] = "event", argv[n++] = "--hold-ms", argv[n++] = worker_hold_ms;
    argv[n++] = "--batch", argv[n++] = "50";
    if (worker_plan)
      argv[n++] = "--plan", argv[n++] = worker_plan;
    argv[n++] = "--pg", argv[n++] = conninfo, argv[n++] = "--kafka", argv[n++] = kafka;
    argv[n++] = "--group", argv[n++] = group, argv[n++] = "--worker-id", argv[n++] = id;
    argv[n++] = "--kafka-conf", argv[n++] = "session.timeout.ms=6000";
    argv[n++] = "--kafka-conf", argv[n++] = "heartbeat.interval.ms=500";
    argv[n++] = "--kafka-conf", argv[n++] = instance;
    if (worker_kafka_conf)
      argv[n++] = "--kafka-conf", argv[n++] = worker_kafka_conf;
    if (getenv("WORKER_DEBUG"))
      argv[n++] = "-v", argv[n++] = "--kafka-conf", argv[n++] = getenv("WORKER_DEBUG");
    argv[n] = NULL;
    execv(CANARY_BINARY_DIR "/canaryd", (char *const *)argv);
    _exit(127);
  }
  return pid;
}

static int stop_worker(pid_t pid, int sig) {
  int status = 0;
  kill(pid, sig);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

/* Sum of the shards' owner epochs: it grows by one for every claim. */
static long epochs(const char *conninfo) {
  PGconn *c = PQconnectdb(conninfo);
  PGresult *r = PQexec(c, "SELECT coalesce(sum(owner_epoch), 0) FROM shards");
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  PQfinish(c);
  return n;
}

/* Sum of the stored next offsets: how far the worker has committed through the input. */
static long committed_on(PGconn *c) {
  PGresult *r = PQexec(c, "SELECT coalesce(sum(next_offset), 0) FROM offsets WHERE next_offset > 0");
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return n;
}

/* How many input messages the stream makes: a global event goes to each of the 3 shards. */
static long committed_total(const struct reference *ref) {
  long n = 0;
  for (size_t i = 0; i < ref->n_events; i++)
    n += ref->events[i].rollout[0] ? 1 : 3;
  return n;
}

/* Wait until the shards were claimed `claims` more times than `before` (false on timeout). */
static bool wait_claims(const char *conninfo, long before, long claims, int64_t ms) {
  int64_t until = mono_ms() + ms;
  while (mono_ms() < until) {
    if (epochs(conninfo) >= before + claims)
      return true;
    sleep_ms(50);
  }
  return false;
}

/* Number of transitions stored for the stream's rollouts. */
static long stored_transitions(const char *conninfo, const char *prefix) {
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return -1;
  }
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM transitions WHERE rollout LIKE '%s-%%'", prefix);
  PGresult *r = PQexec(c, sql);
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  PQfinish(c);
  return n;
}

/* Wait until the store holds as many transitions as the reference (or time runs out). */
static void wait_caught_up(const char *conninfo, const char *prefix, size_t want, int64_t ms) {
  int64_t until = mono_ms() + ms;
  long n = -1;
  while (mono_ms() < until) {
    n = stored_transitions(conninfo, prefix);
    if (n >= (long)want)
      return;
    sleep_ms(250);
  }
  fail_msg("the worker stored %ld of %zu transitions in %" PRId64 " s", n, want, ms / 1000);
}

static bool same_decision(const struct decision *a, const struct decision *b) {
  if (strcmp(a->id, b->id) || a->seq != b->seq || a->time_ms != b->time_ms ||
      a->action != b->action || strcmp(a->from_stage, b->from_stage) ||
      strcmp(a->to_stage, b->to_stage) || a->state != b->state || strcmp(a->reason, b->reason) ||
      strcmp(a->rule, b->rule) || strcmp(a->actor, b->actor) || a->n_evidence != b->n_evidence)
    return false;
  for (int i = 0; i < a->n_evidence; i++) {
    const struct evidence_item *x = &a->evidence[i], *y = &b->evidence[i];
    if (strcmp(x->key, y->key) || x->kind != y->kind || x->num != y->num || x->i != y->i ||
        x->b != y->b || strcmp(x->str, y->str))
      return false;
  }
  return true;
}

/* The transition log and the final states in the store equal the reference's. */
static void compare_store(const struct reference *ref, const char *conninfo) {
  store_t *st;
  assert_int_equal(store_open(conninfo, 10000, NULL, NULL, &st), CANARY_OK);
  struct jbuf a, b;
  jbuf_init(&a);
  jbuf_init(&b);
  size_t checked = 0;
  for (size_t i = 0; i < ref->engine.n_rollouts; i++) {
    const struct rollout *want = ref->engine.rollouts[i];
    struct decision *got;
    size_t n;
    assert_int_equal(store_history(st, want->id, &got, &n), CANARY_OK);
    size_t k = 0;
    for (size_t j = 0; j < ref->n_decisions; j++) {
      const struct decision *d = &ref->decisions[j];
      if (strcmp(d->rollout, want->id))
        continue;
      if (k >= n)
        fail_msg("%s: decision %s is missing from the store", want->id, d->id);
      if (!same_decision(d, &got[k])) {
        jbuf_reset(&a);
        jbuf_reset(&b);
        decision_to_json(d, &a);
        decision_to_json(&got[k], &b);
        /* printed here: cmocka truncates long failure messages */
        printf("reference %.*s\nstored    %.*s\n", (int)a.len, a.data, (int)b.len, b.data);
        fail_msg("%s: stored decision %s differs from the reference's", want->id, d->id);
      }
      k++;
      checked++;
    }
    if (k != n)
      fail_msg("%s: the store has %zu decisions, the reference %zu", want->id, n, k);
    free(got);
  }
  assert_int_equal(checked, ref->n_decisions);

  struct store_rollout_row *rows;
  size_t n_rows, matched = 0;
  assert_int_equal(store_list_rollouts(st, &rows, &n_rows), CANARY_OK);
  for (size_t i = 0; i < n_rows; i++) {
    const struct rollout *want = engine_find(&ref->engine, rows[i].rollout.id);
    if (!want)
      continue; /* another test's rollout */
    jbuf_reset(&a);
    jbuf_reset(&b);
    rollout_json_write(want, &a);
    rollout_json_write(&rows[i].rollout, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len)) {
      printf("reference %.*s\nstored    %.*s\n", (int)a.len, a.data, (int)b.len, b.data);
      fail_msg("final state of %s differs", want->id);
    }
    matched++;
  }
  assert_int_equal(matched, ref->engine.n_rollouts);
  free(rows);
  jbuf_free(&a);
  jbuf_free(&b);
  store_close(st);
  printf("    %zu decisions of %zu rollouts equal the reference, final states equal\n",
         ref->n_decisions, ref->engine.n_rollouts);
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The decision ids published for the stream's rollouts equal the reference's, as a set. */
/* One published message of a test's rollouts: its id, service and a digest of its bytes. */
struct pub {
  char *id, *service;
  uint64_t digest;
};

static uint64_t fnv(const void *p, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
  return h;
}

static int cmp_pub(const void *a, const void *b) {
  return strcmp(((const struct pub *)a)->id, ((const struct pub *)b)->id);
}

/*
 * Everything on topic (canary.notifications or canary.flags) about the prefix's rollouts, in
 * offset order, until caught up and quiet for 2 s with at least want messages (or 60 s).
 */
static struct pub *read_topic(const char *topic, const char *prefix, size_t want, size_t *n) {
  avro_codec_t *codec;
  bus_reader_t *r;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  assert_int_equal(bus_reader_new(kafka, topic, true, NULL, NULL, &r), CANARY_OK);
  size_t plen = strlen(prefix), cap = want * 2 + 16;
  struct pub *out = calloc(cap, sizeof *out);
  *n = 0;
  int64_t quiet_since = mono_ms(), until = mono_ms() + 60000;
  char why[256];
  static char slack[65536];
  for (;;) {
    struct bus_msg m;
    bool caught_up;
    if (bus_reader_read(r, 200, &m, &caught_up) == CANARY_OK) {
      const char *id, *rollout, *service = "";
      static struct notification note;
      static struct traffic_split split;
      if (!strcmp(topic, "canary.notifications")) {
        assert_int_equal(avro_codec_decode_notification(codec, m.value, m.len, &note, slack,
                                                        sizeof slack, why, sizeof why),
                         CANARY_OK);
        id = note.id, rollout = note.rollout;
      } else {
        assert_int_equal(avro_codec_decode_traffic(codec, m.value, m.len, &split, why,
                                                   sizeof why),
                         CANARY_OK);
        id = split.id, rollout = split.rollout, service = split.service;
      }
      if (!strncmp(rollout, prefix, plen) && rollout[plen] == '-') {
        if (*n == cap)
          out = realloc(out, (cap *= 2) * sizeof *out);
        out[(*n)++] = (struct pub){strdup(id), strdup(service), fnv(m.value, m.len)};
      }
      quiet_since = mono_ms();
      continue;
    }
    if ((caught_up && *n >= want && mono_ms() - quiet_since > 2000) || mono_ms() > until)
      break;
  }
  bus_reader_close(r);
  avro_codec_destroy(codec);
  return out;
}

/*
 * Notifications: the distinct ids published are the reference's, and a message published twice
 * (a crash between publishing and marking) has the same bytes both times. Traffic splits
 * (canary.flags is compacted: older ones may be gone): every id published is one of the
 * reference's, twice only with the same bytes, and each service's last one is the reference's.
 */
static void compare_other_outputs(const struct reference *ref, const char *prefix) {
  size_t n;
  struct pub *got = read_topic("canary.notifications", prefix, ref->n_notes, &n);
  qsort(got, n, sizeof *got, cmp_pub);
  size_t unique = 0, repeats = 0;
  for (size_t i = 0; i < n; i++) {
    if (i && !strcmp(got[i].id, got[unique - 1].id)) {
      if (got[i].digest != got[unique - 1].digest)
        fail_msg("notification %s published twice with different bytes", got[i].id);
      repeats++;
    } else {
      got[unique++] = got[i];
    }
  }
  char **want = calloc(ref->n_notes + 1, sizeof *want);
  memcpy(want, ref->notes, ref->n_notes * sizeof *want);
  qsort(want, ref->n_notes, sizeof *want, cmp_str);
  printf("    published %zu notification messages: %zu distinct ids (reference %zu), %zu again "
         "with the same bytes\n", n, unique, ref->n_notes, repeats);
  assert_int_equal(unique, ref->n_notes);
  for (size_t i = 0; i < unique; i++)
    if (strcmp(got[i].id, want[i]))
      fail_msg("published notification %s where the reference has %s", got[i].id, want[i]);
  free(want);
  free(got);

  struct pub *splits = read_topic("canary.flags", prefix, 1, &n);
  size_t known = 0;
  for (size_t i = 0; i < n; i++) {
    bool found = false;
    for (size_t k = 0; k < ref->n_splits && !found; k++)
      found = !strcmp(ref->splits[k].id, splits[i].id);
    if (!found)
      fail_msg("published traffic split %s is not the reference's", splits[i].id);
    known++;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(splits[j].id, splits[i].id) && splits[j].digest != splits[i].digest)
        fail_msg("traffic split %s published twice with different bytes", splits[i].id);
  }
  size_t services = 0;
  for (size_t k = 0; k < ref->n_splits; k++) { /* each service's last split, in both */
    bool later = false;
    for (size_t j = k + 1; j < ref->n_splits && !later; j++)
      later = !strcmp(ref->splits[j].service, ref->splits[k].service);
    if (later)
      continue;
    services++;
    const char *last = NULL;
    for (size_t i = 0; i < n; i++)
      if (!strcmp(splits[i].service, ref->splits[k].service))
        last = splits[i].id;
    if (!last || strcmp(last, ref->splits[k].id))
      fail_msg("service %s: last published split %s, the reference's %s", ref->splits[k].service,
               last ? last : "(none)", ref->splits[k].id);
  }
  printf("    published %zu traffic splits, all the reference's; each of %zu services ends on "
         "the reference's last\n", known, services);
  free(splits);
}

static void compare_published(const struct reference *ref, const char *prefix) {
  avro_codec_t *codec;
  bus_reader_t *r;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  assert_int_equal(bus_reader_new(kafka, "canary.decisions", true, NULL, NULL, &r), CANARY_OK);
  size_t plen = strlen(prefix), n = 0, cap = ref->n_decisions * 2 + 16;
  char **ids = calloc(cap, sizeof *ids);
  int64_t quiet_since = mono_ms(), until = mono_ms() + 60000;
  char why[256];
  for (;;) {
    struct bus_msg m;
    bool caught_up;
    if (bus_reader_read(r, 200, &m, &caught_up) == CANARY_OK) {
      struct decision d;
      assert_int_equal(avro_codec_decode_decision(codec, m.value, m.len, &d, why, sizeof why),
                       CANARY_OK);
      if (!strncmp(d.rollout, prefix, plen) && d.rollout[plen] == '-') {
        if (n == cap)
          ids = realloc(ids, (cap *= 2) * sizeof *ids);
        /* the id, then its bytes' digest: a re-published decision must be the same bytes */
        char *s = NULL;
        assert_true(asprintf(&s, "%s %016" PRIx64, d.id, fnv(m.value, m.len)) > 0);
        ids[n++] = s;
      }
      quiet_since = mono_ms();
      continue;
    }
    /* caught up, and no more arriving for 2 s (the relay may still be publishing) */
    if (caught_up && n >= ref->n_decisions && mono_ms() - quiet_since > 2000)
      break;
    if (mono_ms() > until)
      break;
  }
  qsort(ids, n, sizeof *ids, cmp_str);
  size_t unique = 0, repeats = 0;
  for (size_t i = 0; i < n; i++) {
    size_t idlen = strcspn(ids[i], " ");
    if (i && !strcmp(ids[i], ids[i - 1])) {
      repeats++; /* the same id and the same bytes */
      continue;
    }
    if (i && !strncmp(ids[i], ids[i - 1], idlen) && ids[i - 1][idlen] == ' ')
      fail_msg("decision %.*s published twice with different bytes", (int)idlen, ids[i]);
    ids[unique++] = ids[i];
  }
  for (size_t i = 0; i < unique; i++)
    ids[i][strcspn(ids[i], " ")] = '\0'; /* the id alone, for the comparison below */
  char **want = calloc(ref->n_decisions + 1, sizeof *want);
  for (size_t i = 0; i < ref->n_decisions; i++)
    want[i] = (char *)ref->decisions[i].id;
  qsort(want, ref->n_decisions, sizeof *want, cmp_str);
  printf("    published %zu decision messages: %zu distinct ids, %zu re-published with the same "
         "bytes\n", n, unique, repeats);
  assert_int_equal(unique, ref->n_decisions);
  for (size_t i = 0; i < unique; i++)
    if (strcmp(ids[i], want[i]))
      fail_msg("published id %s where the reference has %s", ids[i], want[i]);
  /* ids[] holds freed duplicates' pointers only below unique; free everything once */
  free(want);
  free(ids); /* the strdup'd strings leak in this short-lived test process on purpose */
  bus_reader_close(r);
  avro_codec_destroy(codec);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* What each test gets for itself: a name, topics, a database and a consumer group. */
struct run {
  char prefix[64], db[64], group[80];
  char *conninfo;
};

/*
 * Topics of the test's own (CANARY_TOPIC_PREFIX, inherited by the canaryd it starts): only the
 * stream is in them, so nothing another test produced can interleave with it.
 */
static void own_topics(const char *prefix);

static void run_begin(struct run *r, const char *name) {
  snprintf(r->prefix, sizeof r->prefix, "%s%d%ld", name, (int)getpid(), (long)time(NULL) % 100000);
  snprintf(r->db, sizeof r->db, "canary_%s", r->prefix);
  snprintf(r->group, sizeof r->group, "g-%s", r->prefix);
  own_topics(r->prefix);
  r->conninfo = fresh_database(r->db);
}

static void run_end(struct run *r) {
  drop_database(r->db);
  free(r->conninfo);
}

static void own_topics(const char *prefix) {
  char p[96];
  snprintf(p, sizeof p, "%s.", prefix);
  setenv("CANARY_TOPIC_PREFIX", p, 1);
  bus_set_topic_prefix(p);
  assert_int_equal(bus_create_topics(kafka, 3, 20000, NULL, NULL), CANARY_OK);
}

static void test_crash_safety(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "crash");
  struct reference ref;
  reference_build(&ref, t.prefix);
  reference_matches_simulate(&ref, t.prefix);
  printf("    stream: %zu events, %zu rollouts, %zu reference decisions\n", ref.n_events,
         ref.engine.n_rollouts, ref.n_decisions);

  /* The whole stream is in Kafka before the first start: what the worker sees does not depend
   * on when it fetches, so its decisions must equal the reference's. Kill k comes once the
   * committed input has passed about k/13 of the stream (and at least one commit more than at
   * the previous kill), a random few milliseconds into what follows: every kill hits a worker
   * that is applying and committing, and the kills are spread over the whole stream. (A fixed
   * delay after a restart can land before the restarted worker has fetched anything.) */
  produce(&ref, 0, ref.n_events);
  srand((unsigned)getpid());
  long total = committed_total(&ref), last = 0;
  int kills = 0;
  PGconn *watch = PQconnectdb(t.conninfo); /* one connection: the progress is polled often */
  assert_int_equal(PQstatus(watch), CONNECTION_OK);
  for (int round = 0; round < 30 && kills < 10; round++) {
    long before = epochs(t.conninfo);
    pid_t pid = start_worker(t.conninfo, t.group, "crash");
    assert_true(wait_claims(t.conninfo, before, 3, 60000));
    long target = total * (kills + 1) / 13, at = 0;
    if (target <= last)
      target = last + 1;
    for (int64_t until = mono_ms() + 60000; mono_ms() < until; sleep_ms(1))
      if ((at = committed_on(watch)) >= target)
        break;
    sleep_ms(rand() % 4);
    int status = stop_worker(pid, SIGKILL);
    assert_true(WIFSIGNALED(status)); /* it was still running */
    long now = committed_on(watch);
    printf("    kill -9 #%d: %ld of %ld input messages committed (%ld at the trigger), %ld of %zu "
           "transitions\n", round + 1, now, total, at, stored_transitions(t.conninfo, t.prefix),
           ref.n_decisions);
    assert_true(now > last); /* it made progress since the previous kill */
    if (now < total)
      kills++; /* in the middle of the stream */
    last = now;
  }
  PQfinish(watch);
  assert_true(kills >= 10);
  pid_t pid = start_worker(t.conninfo, t.group, "crash");
  wait_caught_up(t.conninfo, t.prefix, ref.n_decisions, 180000);
  sleep_ms(1500); /* nothing more may come: an extra transition would fail below */
  int status = stop_worker(pid, SIGTERM);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  compare_store(&ref, t.conninfo);
  compare_published(&ref, t.prefix);
  compare_other_outputs(&ref, t.prefix);
  /* the stream walks rollouts all the way: through the real broker and database to GA */
  size_t completed = 0, metric_halts = 0;
  for (size_t i = 0; i < ref.n_decisions; i++) {
    completed += ref.decisions[i].action == DECISION_COMPLETE;
    metric_halts += !strcmp(ref.decisions[i].rule, "error_rate");
  }
  printf("    %zu rollouts reached ga through Kafka and PostgreSQL; %zu halted on a metric rule "
         "(windows replayed after each kill)\n", completed, metric_halts);
  assert_true(completed >= 1);
  assert_true(metric_halts >= 1);
  run_end(&t);
  reference_free(&ref);
}

/* Wait until the worker has committed every input message of the stream (60 s at most). */
static void wait_committed(const char *conninfo, long total) {
  PGconn *c = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  long at = 0;
  for (int64_t until = mono_ms() + 60000; mono_ms() < until; sleep_ms(100))
    if ((at = committed_on(c)) >= total)
      break;
  PQfinish(c);
  if (at < total)
    fail_msg("the worker committed %ld of %ld input messages in 60 s", at, total);
}

/*
 * The merge keeps event order through a backlog. The whole stream — deploys, metrics and
 * commands of the same rollouts, their times interleaved across each shard's partitions —
 * waits in Kafka before the worker starts, as it does for a worker restarted after an outage.
 * Fetches are small, so each partition's backlog arrives in many pieces and a queue runs dry
 * between two of them while another partition still has messages queued; and --hold-ms is 0:
 * the merge may wait only for what it knows is there. A partition whose backlog is known (the
 * fetch's high watermark, or the broker asked at the start) must be waited for past --hold-ms:
 * when it was not, later metrics went ahead of the deploy events before them and the decisions
 * were not simulate's.
 */
static void test_backlog_keeps_event_order(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "backlog");
  struct reference ref;
  reference_build(&ref, t.prefix);
  reference_matches_simulate(&ref, t.prefix);
  produce(&ref, 0, ref.n_events);
  worker_hold_ms = "0";
  worker_kafka_conf = "max.partition.fetch.bytes=2048";
  pid_t pid = start_worker(t.conninfo, t.group, "backlog");
  worker_hold_ms = "600000";
  worker_kafka_conf = NULL;
  wait_committed(t.conninfo, committed_total(&ref));
  sleep_ms(1500); /* nothing more may come: an extra transition would fail below */
  int status = stop_worker(pid, SIGTERM);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  compare_store(&ref, t.conninfo);
  compare_published(&ref, t.prefix);
  compare_other_outputs(&ref, t.prefix);
  run_end(&t);
  reference_free(&ref);
}

/*
 * Issue 10, finding 7: an engine error while applying was logged after the batch's offsets had
 * moved past the event, so the event was skipped. With every 97th message made to fail (as if
 * out of memory, after its deadlines fired), the worker rewinds the shard to the store and
 * applies it again: the decisions stored and published equal the reference's, none lost, none
 * twice.
 */
static void test_apply_failures_are_retried(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "fault");
  struct reference ref;
  reference_build(&ref, t.prefix);
  produce(&ref, 0, ref.n_events);
  setenv("CANARY_FAULT_APPLY_EVERY", "97", 1);
  pid_t pid = start_worker(t.conninfo, t.group, "fault");
  unsetenv("CANARY_FAULT_APPLY_EVERY");
  wait_caught_up(t.conninfo, t.prefix, ref.n_decisions, 180000);
  sleep_ms(1500); /* nothing more may come: an extra transition would fail below */
  int status = stop_worker(pid, SIGTERM);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "grep -c 'the batch is dropped and the shard rewound' "
                            "%s/test_worker-fault.log", CANARY_BINARY_DIR);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  long failures = 0;
  assert_int_equal(fscanf(f, "%ld", &failures), 1);
  pclose(f);
  printf("    %ld injected apply failures, each rewound and applied again\n", failures);
  assert_true(failures >= 10);
  compare_store(&ref, t.conninfo);
  compare_published(&ref, t.prefix);
  compare_other_outputs(&ref, t.prefix);
  run_end(&t);
  reference_free(&ref);
}

static void test_two_workers_share_and_take_over(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "pair");
  struct reference ref;
  reference_build(&ref, t.prefix);
  produce(&ref, 0, ref.n_events);

  /* The t.group splits the three shards between the two. */
  pid_t a = start_worker(t.conninfo, t.group, "pair-a");
  pid_t b = start_worker(t.conninfo, t.group, "pair-b");
  PGconn *c = NULL;
  int64_t until = mono_ms() + 60000;
  int owners = 0;
  while (mono_ms() < until && owners < 2) {
    sleep_ms(300);
    c = PQconnectdb(t.conninfo);
    PGresult *r = PQexec(c, "SELECT count(DISTINCT owner) FROM shards");
    owners = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    PQfinish(c);
  }
  assert_int_equal(owners, 2);
  sleep_ms(300 + rand() % 700);
  /* Kill one mid-stream: the other must take its shards over from the stored offsets. */
  long at_kill = stored_transitions(t.conninfo, t.prefix);
  int status = stop_worker(a, SIGKILL);
  assert_true(WIFSIGNALED(status));
  printf("    a killed with %ld of %zu transitions stored\n", at_kill, ref.n_decisions);
  int owned_by_b = 0;
  until = mono_ms() + 60000;
  while (mono_ms() < until && owned_by_b < 3) {
    sleep_ms(300);
    c = PQconnectdb(t.conninfo);
    PGresult *r = PQexec(c, "SELECT count(*) FROM shards WHERE owner = 'pair-b'");
    owned_by_b = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    PQfinish(c);
  }
  wait_caught_up(t.conninfo, t.prefix, ref.n_decisions, 180000);
  sleep_ms(1500);
  status = stop_worker(b, SIGTERM);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  printf("    worker b owns %d shards after a was killed\n", owned_by_b);
  assert_int_equal(owned_by_b, 3);

  compare_store(&ref, t.conninfo);
  compare_published(&ref, t.prefix);
  compare_other_outputs(&ref, t.prefix);
  run_end(&t);
  reference_free(&ref);
}

/*
 * A message that is not one of ours goes to canary.dlq with its bytes, where it came from and
 * why; the worker goes on with the next message.
 */
/* Avro's zig-zag varint of v into out (at most 10 bytes); its length. */
static size_t zigzag(int64_t v, unsigned char *out) {
  uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  size_t n = 0;
  do {
    out[n] = z & 0x7f;
    z >>= 7;
    if (z)
      out[n] |= 0x80;
    n++;
  } while (z);
  return n;
}

/* Replace the encoding of the long from (once, exactly) by that of to: what no encoder writes. */
static void patch_long(struct avro_buf *b, int64_t from, int64_t to) {
  unsigned char f[10], t[10];
  size_t nf = zigzag(from, f), nt = zigzag(to, t);
  unsigned char *at = memmem(b->data, b->len, f, nf);
  assert_non_null(at);
  assert_null(memmem(at + 1, b->len - (size_t)(at + 1 - b->data), f, nf));
  unsigned char *out = malloc(b->len - nf + nt);
  assert_non_null(out);
  size_t head = (size_t)(at - b->data);
  memcpy(out, b->data, head);
  memcpy(out + head, t, nt);
  memcpy(out + head + nt, at + nf, b->len - head - nf);
  free(b->data);
  b->data = out;
  b->len = b->len - nf + nt;
  b->cap = b->len;
}

static void test_malformed_message_to_dlq(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "dlq");

  char rollout[80];
  snprintf(rollout, sizeof rollout, "%s-r1", t.prefix);
  static const char garbage[] = "{\"id\":\"not avro\"}";
  bus_producer_t *p;
  assert_int_equal(bus_producer_new(kafka, "test-dlq", NULL, NULL, &p), CANARY_OK);
  assert_int_equal(bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), garbage,
                               sizeof garbage - 1, 0), CANARY_OK);
  /* then a valid rollout.requested for the same rollout (same key: same partition, after it) */
  struct event ev = {.type = EVENT_ROLLOUT_REQUESTED, .time_ms = 1767225600000};
  snprintf(ev.id, sizeof ev.id, "%s-e1", t.prefix);
  snprintf(ev.rollout, sizeof ev.rollout, "%s", rollout);
  snprintf(ev.service, sizeof ev.service, "svc");
  snprintf(ev.version, sizeof ev.version, "2.0.0");
  snprintf(ev.baseline_version, sizeof ev.baseline_version, "1.9.0");
  avro_codec_t *codec;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  struct avro_buf buf = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_event(codec, &ev, &buf), CANARY_OK);
  assert_int_equal(bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), buf.data,
                               buf.len, 1), CANARY_OK);
  /* Issue 10: poison times. A year ahead of the message's Kafka timestamp (now) is a clock or
   * unit error (offset 2); INT64_MAX, the deadlines' "none", made the worker spin for ever on
   * it without committing (offset 3). Both go to the dead letters, and the worker goes on. */
  struct event later = {.type = EVENT_CI_COMPLETED, .ok = true,
                        .time_ms = wall_now_ms() + 365 * 24 * 3600000LL};
  snprintf(later.id, sizeof later.id, "%s-e2", t.prefix);
  snprintf(later.rollout, sizeof later.rollout, "%s", rollout);
  struct event never = later;
  never.time_ms = 1767225600123; /* a mark, patched to INT64_MAX below (the encoder refuses it) */
  snprintf(never.id, sizeof never.id, "%s-e3", t.prefix);
  struct avro_buf b2 = AVRO_BUF_INIT, b3 = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_event(codec, &later, &b2), CANARY_OK);
  assert_int_equal(avro_codec_encode_event(codec, &never, &b3), CANARY_OK);
  patch_long(&b3, never.time_ms, INT64_MAX);
  assert_int_equal(bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), b2.data, b2.len,
                               2), CANARY_OK);
  assert_int_equal(bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), b3.data, b3.len,
                               3), CANARY_OK);
  assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  bus_producer_destroy(p);
  avro_buf_free(&b2);
  avro_buf_free(&b3);
  /* Issue 10: a message near the broker's limit (offset 4, from a producer allowed to send it).
   * Its dead letter wrapped it whole, too large to publish, and the relay retried it for ever
   * with every later output behind it. Now the dead letter keeps its head, length and hash. */
  const char *const roomy[] = {"message.max.bytes", "1100000", NULL};
  assert_int_equal(bus_producer_new_conf(kafka, "test-dlq-big", NULL, NULL, roomy, &p), CANARY_OK);
  enum { HUGE = 1040000 };
  char *huge = malloc(HUGE);
  assert_non_null(huge);
  memset(huge, 'x', HUGE);
  huge[0] = '{';
  assert_int_equal(bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), huge, HUGE, 4),
                   CANARY_OK);
  assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  bus_producer_destroy(p);
  free(huge);

  pid_t pid = start_worker(t.conninfo, t.group, "dlq");
  wait_caught_up(t.conninfo, t.prefix, 1, 60000); /* the valid one decided: a hold at the entry */

  bus_reader_t *r;
  assert_int_equal(bus_reader_new(kafka, "canary.dlq", true, NULL, NULL, &r), CANARY_OK);
  struct bus_msg m;
  bool caught_up = false;
  int found = 0; /* bit k: the dead letter of offset k (0, 2, 3, 4) */
  char why[256];
  for (int64_t until = mono_ms() + 60000; found != 0x1d && mono_ms() < until;) {
    if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK)
      continue;
    struct avro_dlq d;
    assert_int_equal(avro_codec_decode_dlq(codec, m.value, m.len, &d, why, sizeof why), CANARY_OK);
    assert_string_equal(d.topic, "canary.deploy");
    assert_int_equal(d.key_len, strlen(rollout));
    printf("    dead letter: %s [%d] offset %" PRId64 ": %s\n", d.topic, d.partition, d.offset,
           d.reason);
    if (d.offset == 0) {
      assert_int_equal(d.original_len, sizeof garbage - 1);
      assert_memory_equal(d.original, garbage, sizeof garbage - 1);
      assert_non_null(strstr(d.reason, "magic"));
    } else if (d.offset == 2) {
      assert_non_null(strstr(d.reason, "ahead of the message's Kafka timestamp"));
    } else if (d.offset == 3) {
      assert_non_null(strstr(d.reason, "before 2100"));
    } else if (d.offset == 4) {
      assert_int_equal(d.original_len, 65536);
      assert_non_null(strstr(d.reason, "original 1040000 bytes (sha256 "));
      assert_non_null(strstr(d.reason, "its first 65536 kept"));
    } else {
      fail_msg("unexpected dead letter at offset %" PRId64 ": %s", d.offset, d.reason);
    }
    found |= 1 << d.offset;
  }
  assert_int_equal(found, 0x1d);
  bus_reader_close(r);
  /* An outbox row Kafka can never take is set aside and the rows after it are published. */
  PGconn *db = PQconnectdb(t.conninfo);
  assert_int_equal(PQstatus(db), CONNECTION_OK);
  PGresult *res = PQexec(db, "INSERT INTO outbox (shard, topic, key, message_id, payload) VALUES "
                             "(0, 'canary.notifications', 'k', 'test/too-big', "
                             "convert_to(repeat('x', 2000000), 'UTF8')), "
                             "(0, 'canary.notifications', 'k', 'test/after', '\\x00'::bytea)");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  bool moved_on = false;
  for (int64_t until = mono_ms() + 60000; !moved_on && mono_ms() < until; sleep_ms(200)) {
    res = PQexec(db, "SELECT (SELECT failure FROM outbox WHERE message_id = 'test/too-big'), "
                     "(SELECT published_at IS NOT NULL FROM outbox "
                     "WHERE message_id = 'test/after')");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    moved_on = !PQgetisnull(res, 0, 0) && !strcmp(PQgetvalue(res, 0, 1), "t");
    if (moved_on)
      printf("    outbox row set aside: %s\n", PQgetvalue(res, 0, 0));
    PQclear(res);
  }
  PQfinish(db);
  assert_true(moved_on);
  /* the worker went on after them: it stops on request, and the rollout only holds */
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);
  assert_int_equal(stored_transitions(t.conninfo, t.prefix), 1);

  avro_buf_free(&buf);
  avro_codec_destroy(codec);
  run_end(&t);
}

/* The first column of the first row of sql, as an integer (-1 when NULL or on error). */
static long db_long(const char *conninfo, const char *sql) {
  PGconn *c = PQconnectdb(conninfo);
  PGresult *r = PQexec(c, sql);
  long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) && !PQgetisnull(r, 0, 0)
               ? atol(PQgetvalue(r, 0, 0))
               : -1;
  PQclear(r);
  PQfinish(c);
  return n;
}

/* Wait until sql gives at least want (fails the test after 60 s). */
static void wait_db(const char *conninfo, const char *sql, long want) {
  long n = -1;
  for (int64_t until = mono_ms() + 60000; mono_ms() < until; sleep_ms(100))
    if ((n = db_long(conninfo, sql)) >= want)
      return;
  fail_msg("waited 60 s for %s to reach %ld: %ld", sql, want, n);
}

/* How many lines of the worker log `id` contain text. */
static int log_lines_with(const char *id, const char *text) {
  char path[256], line[4096];
  snprintf(path, sizeof path, "%s/test_worker-%s.log", CANARY_BINARY_DIR, id);
  FILE *f = fopen(path, "r");
  int n = 0;
  while (f && fgets(line, sizeof line, f))
    n += strstr(line, text) != NULL;
  if (f)
    fclose(f);
  return n;
}

/* Every dead letter on the topic, read from the beginning until caught up: their count, and
 * the reason of the one at offset `at` (its input offset) in why. */
static int read_dead_letters(avro_codec_t *codec, int64_t at, char *why, size_t why_len) {
  bus_reader_t *r;
  assert_int_equal(bus_reader_new(kafka, "canary.dlq", true, NULL, NULL, &r), CANARY_OK);
  struct bus_msg m;
  bool caught_up = false;
  int n = 0;
  char err[256];
  for (int64_t until = mono_ms() + 30000; !caught_up && mono_ms() < until;) {
    if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK)
      continue;
    struct avro_dlq d;
    assert_int_equal(avro_codec_decode_dlq(codec, m.value, m.len, &d, err, sizeof err),
                     CANARY_OK);
    printf("    dead letter: %s [%d] offset %" PRId64 ": %s\n", d.topic, d.partition, d.offset,
           d.reason);
    if (d.offset == at)
      snprintf(why, why_len, "%s", d.reason);
    n++;
  }
  assert_true(caught_up);
  bus_reader_close(r);
  return n;
}

/*
 * Issue 10, finding 6: an id reused for other content was dropped silently. Here a crash report
 * (offset 1), the same id with another count (offset 2: a conflict) and the first report again
 * (offset 3: a redelivery). The conflict is dead-lettered once, its reason naming the id and
 * both digests, with one log line; the redelivery is silent; the crash is counted once. Then
 * the stored offsets are rewound and the worker restarted: it replays all of it against the
 * ids and digests it loads from the store, finds the conflict again (the digest survived the
 * restart) and publishes nothing new — the dead letter's outbox id is its input offset.
 */
static void test_reused_id_to_dlq(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "dup");
  char rollout[80];
  snprintf(rollout, sizeof rollout, "%s-r1", t.prefix);
  struct event req = {.type = EVENT_ROLLOUT_REQUESTED, .time_ms = 1767225600000};
  snprintf(req.id, sizeof req.id, "%s-e1", t.prefix);
  snprintf(req.rollout, sizeof req.rollout, "%s", rollout);
  snprintf(req.service, sizeof req.service, "svc");
  snprintf(req.version, sizeof req.version, "2.0.0");
  snprintf(req.baseline_version, sizeof req.baseline_version, "1.9.0");
  struct event crash = {.type = EVENT_CRASH_REPORTED, .time_ms = 1767225660000, .count = 1};
  snprintf(crash.id, sizeof crash.id, "%s-e2", t.prefix);
  snprintf(crash.rollout, sizeof crash.rollout, "%s", rollout);
  snprintf(crash.cohort, sizeof crash.cohort, "internal_test");
  struct event other = crash;
  other.count = 5;
  const struct event evs[] = {req, crash, other, crash}; /* offsets 0..3 of one partition */
  produce_events(evs, 4);

  char first[EVENT_DIGEST_HEX_LEN], second[EVENT_DIGEST_HEX_LEN], want[256];
  event_digest_hex(event_digest(&crash), first);
  event_digest_hex(event_digest(&other), second);
  snprintf(want, sizeof want, "'%s' was applied before with other content (digest %s first "
           "seen, %s this one)", crash.id, first, second);
  static const char *const logs[] = {"dup", "dup-replay"};
  for (int i = 0; i < 2; i++) {
    char path[256];
    snprintf(path, sizeof path, "%s/test_worker-%s.log", CANARY_BINARY_DIR, logs[i]);
    unlink(path);
  }
  static const char committed[] = "SELECT coalesce(sum(next_offset), 0) FROM offsets";
  static const char dlq_published[] = "SELECT count(*) FROM outbox WHERE message_id LIKE 'dlq/%' "
                                      "AND published_at IS NOT NULL";
  static const char dlq_rows[] = "SELECT count(*) FROM outbox WHERE message_id LIKE 'dlq/%'";
  static const char crashes[] = "SELECT (body->'crashes'->>0)::int FROM rollouts";
  avro_codec_t *codec;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);

  pid_t pid = start_worker(t.conninfo, t.group, logs[0]);
  wait_db(t.conninfo, committed, 4); /* all four applied or refused, and committed */
  wait_db(t.conninfo, dlq_published, 1);
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);
  char why[1024] = "";
  assert_int_equal(read_dead_letters(codec, 2, why, sizeof why), 1);
  if (!strstr(why, want))
    fail_msg("the dead letter of offset 2 says '%s', not '%s'", why, want);
  assert_int_equal(db_long(t.conninfo, dlq_rows), 1);
  assert_int_equal(db_long(t.conninfo, crashes), 1); /* applied once: not 2, not 6 */
  assert_int_equal(log_lines_with(logs[0], want), 1);
  assert_int_equal(log_lines_with(logs[0], "dead letter:"), 1); /* the redelivery is silent */

  /* A replay of the same input, as after a commit whose outcome was unknown. */
  PGconn *c = PQconnectdb(t.conninfo);
  PQclear(PQexec(c, "UPDATE offsets SET next_offset = 0"));
  PQfinish(c);
  assert_int_equal(db_long(t.conninfo, committed), 0);
  pid = start_worker(t.conninfo, t.group, logs[1]);
  wait_db(t.conninfo, committed, 4);
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);
  assert_int_equal(log_lines_with(logs[1], want), 1); /* found again, from the stored digest */
  assert_int_equal(log_lines_with(logs[1], "dead letter:"), 1);
  assert_int_equal(db_long(t.conninfo, dlq_rows), 1);
  assert_int_equal(db_long(t.conninfo, crashes), 1);
  assert_int_equal(read_dead_letters(codec, 2, why, sizeof why), 1); /* exactly once */
  avro_codec_destroy(codec);
  run_end(&t);
}

/*
 * A regression produced as Avro metric events through the real broker halts the rollout on
 * the built-in plan's comparison of error rates with the baseline, decided on evidence, and the
 * published decision carries what it rests on: both variants' counts, the e-value and the level
 * it cleared; canaryctl status shows the rule firing, proven.
 */
static void test_metric_regression_halts(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "metric");
  FILE *f = fopen(CANARY_SOURCE_DIR "/tests/scenarios/metric-error-rate-halts.jsonl", "r");
  assert_non_null(f);
  struct event_scratch *scratch = event_scratch_new();
  avro_codec_t *codec;
  bus_producer_t *p;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  assert_int_equal(bus_producer_new(kafka, "test-metric", NULL, NULL, &p), CANARY_OK);
  struct avro_buf buf = AVRO_BUF_INIT;
  char *line = NULL, why[256];
  size_t cap = 0, sent = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    if (line[0] == '#')
      continue;
    struct event ev;
    assert_int_equal(event_from_json(line, (size_t)len - 1, &ev, scratch, why, sizeof why),
                     CANARY_OK);
    assert_int_equal(avro_codec_encode_event(codec, &ev, &buf), CANARY_OK);
    assert_int_equal(bus_produce(p, avro_codec_topic_of(ev.type), -1, ev.rollout,
                                 strlen(ev.rollout), buf.data, buf.len, (int64_t)sent++),
                     CANARY_OK);
  }
  assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  bus_producer_destroy(p);
  fclose(f);
  free(line);
  event_scratch_destroy(scratch);

  worker_plan = NULL;
  pid_t pid = start_worker(t.conninfo, t.group, "metric");
  worker_plan = PLAN_FILE;
  /* hold, start, halt: the halt is the third decision of shop-5.0.0 */
  int64_t until = mono_ms() + 60000;
  long n = 0;
  while (mono_ms() < until && (n = stored_transitions(t.conninfo, "shop-5.0.0")) < 3)
    sleep_ms(200);
  (void)n;
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);

  bus_reader_t *r;
  assert_int_equal(bus_reader_new(kafka, "canary.decisions", true, NULL, NULL, &r), CANARY_OK);
  bool found = false, caught_up;
  struct bus_msg m;
  for (until = mono_ms() + 30000; !found && mono_ms() < until;) {
    if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK)
      continue;
    struct decision d;
    assert_int_equal(avro_codec_decode_decision(codec, m.value, m.len, &d, why, sizeof why),
                     CANARY_OK);
    if (d.action != DECISION_HALT)
      continue;
    found = true;
    printf("    %s: %s\n", d.id, d.reason);
    /* on evidence: the comparison with the clean baseline, at the first bad report (09:20,
     * evaluated 250 ms later with the baseline's report of that interval) */
    assert_string_equal(d.rule, "error_excess");
    assert_int_equal(d.state, ROLLOUT_PAUSED);
    assert_int_equal(d.time_ms, 1767604800250LL); /* 09:20:00.250 */
    const struct evidence_item *canary = decision_evidence(&d, "canary_count");
    const struct evidence_item *baseline = decision_evidence(&d, "baseline_count");
    const struct evidence_item *e = decision_evidence(&d, "e_value");
    const struct evidence_item *alpha = decision_evidence(&d, "alpha");
    assert_non_null(canary);
    assert_non_null(baseline);
    assert_non_null(e);
    assert_non_null(alpha);
    assert_true(canary->num == 25);
    assert_true(baseline->num == 0);
    assert_true(e->num >= 1 / alpha->num);
  }
  assert_true(found);
  bus_reader_close(r);

  /* canaryctl status shows what canaryd measured for each halt rule, from the stored state */
  char cmd[1024], out[16384];
  snprintf(cmd, sizeof cmd, "%s/canaryctl status shop-5.0.0 --pg '%s'", CANARY_BINARY_DIR,
           t.conninfo);
  FILE *st = popen(cmd, "r");
  assert_non_null(st);
  size_t got = fread(out, 1, sizeof out - 1, st);
  out[got] = '\0';
  assert_int_equal(pclose(st), 0);
  const char *rules = strstr(out, "\nhalt rules on internal_test (last evaluated ");
  if (!rules)
    fail_msg("no halt rules in the status:\n%s", out);
  const char *firing = strstr(rules, "FIRING        error_excess");
  if (!firing)
    fail_msg("error_excess is not shown firing:\n%s", rules);
  assert_non_null(strstr(firing, ": proven (needs "));
  assert_non_null(strstr(firing, ", since 2026-01-05T09:20:"));
  printf("    status: %.*s\n", (int)(strchr(firing, '\n') - firing), firing);
  avro_buf_free(&buf);
  avro_codec_destroy(codec);
  run_end(&t);
}

/*
 * A window that spans a restart. Three canary reports of 5 LCP values each go in, the worker
 * commits them and is killed; after the restart a fourth comes. The rule's quantile needs 20
 * values in its 15-minute window: only with the first 15 replayed into the window does the
 * fourth report halt the rollout — at its own time, with 20 samples as evidence. A worker that
 * started its windows empty would read "insufficient data" and never halt.
 */
static void test_metric_windows_survive_restart(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "replay");
  char rollout[80];
  snprintf(rollout, sizeof rollout, "%s-r1", t.prefix);
  const int64_t t0 = 1767600000000; /* 2026-01-05T08:00:00Z */
  static const double lcp[] = {3000, 3100, 3200, 3300, 3400};
  struct metric_dist dist = {"webvitals_lcp_ms", lcp, 5};
  struct event evs[8];
  memset(evs, 0, sizeof evs);
  static const enum event_type start[] = {EVENT_ROLLOUT_REQUESTED, EVENT_CI_COMPLETED,
                                          EVENT_DEPLOY_COMPLETED, EVENT_HEALTH_CHECKED};
  for (int i = 0; i < 8; i++) {
    struct event *ev = &evs[i];
    snprintf(ev->id, sizeof ev->id, "%s-e%d", t.prefix, i);
    snprintf(ev->rollout, sizeof ev->rollout, "%s", rollout);
    if (i < 4) {
      ev->type = start[i];
      ev->ok = true;
      ev->time_ms = t0 + i * 1000;
      snprintf(ev->service, sizeof ev->service, "web");
      snprintf(ev->version, sizeof ev->version, "2.0.0");
      snprintf(ev->baseline_version, sizeof ev->baseline_version, "1.9.0");
      continue;
    }
    ev->type = EVENT_METRICS;
    ev->time_ms = t0 + (i - 3) * 60000; /* 08:01 .. 08:04 */
    snprintf(ev->cohort, sizeof ev->cohort, "internal_test");
    ev->metrics = (struct event_metrics){.variant = VARIANT_CANARY, .interval_ms = 60000,
                                         .dists = &dist, .n_dists = 1};
  }
  produce_events(evs, 7); /* the start and three reports: 15 values */
  pid_t pid = start_worker(t.conninfo, t.group, "replay");
  PGconn *watch = PQconnectdb(t.conninfo);
  assert_int_equal(PQstatus(watch), CONNECTION_OK);
  for (int64_t until = mono_ms() + 60000; committed_on(watch) < 7 && mono_ms() < until;)
    sleep_ms(50);
  assert_int_equal(committed_on(watch), 7);
  assert_true(WIFSIGNALED(stop_worker(pid, SIGKILL)));
  assert_int_equal(stored_transitions(t.conninfo, t.prefix), 2); /* hold, start; no halt yet */

  produce_events(&evs[7], 1); /* the fourth report, after the restart */
  pid = start_worker(t.conninfo, t.group, "replay");
  for (int64_t until = mono_ms() + 60000; stored_transitions(t.conninfo, t.prefix) < 3 &&
                                          mono_ms() < until;)
    sleep_ms(100);
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);
  PQfinish(watch);
  store_t *st;
  assert_int_equal(store_open(t.conninfo, 10000, NULL, NULL, &st), CANARY_OK);
  struct decision *ds;
  size_t n;
  assert_int_equal(store_history(st, rollout, &ds, &n), CANARY_OK);
  if (n != 3)
    fail_msg("%zu decisions after the restart, expected hold, start and a halt on lcp_p75", n);
  printf("    after the restart: %s: %s\n", ds[2].id, ds[2].reason);
  assert_int_equal(ds[2].action, DECISION_HALT);
  assert_string_equal(ds[2].rule, "lcp_p75");
  assert_int_equal(ds[2].time_ms, t0 + 4 * 60000);
  const struct evidence_item *samples = decision_evidence(&ds[2], "samples");
  assert_non_null(samples);
  assert_int_equal(samples->i, 20); /* 15 replayed + 5 new */
  free(ds);
  store_close(st);
  run_end(&t);
}

/* scripts/services ACTION SERVICE, on the services scripts/test started (same CANARY_VAR). */
static void services(const char *action, const char *service) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "CANARY_QUIET=1 %s/scripts/services %s %s >/dev/null 2>&1",
           CANARY_SOURCE_DIR, action, service);
  assert_int_equal(system(cmd), 0);
}

/* Run one SQL statement on the maintenance connection. */
static void sql(const char *statement) {
  PGconn *c = PQconnectdb(pg);
  PGresult *r = PQexec(c, statement);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", statement, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

/*
 * PostgreSQL and then Kafka go away while the worker runs, and come back: the worker waits,
 * retries, says so in its log, loses nothing and doubles nothing. The database outage cuts the
 * worker's connections and refuses new ones for a while (the server itself stays up, so its
 * port cannot change under the worker); the Kafka outage stops the broker.
 */
static void test_survives_outages(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "outage");
  struct reference ref;
  reference_build(&ref, t.prefix);
  produce(&ref, 0, ref.n_events / 3);
  pid_t pid = start_worker(t.conninfo, t.group, "outage");
  wait_caught_up(t.conninfo, t.prefix, 1, 60000);

  char statement[256];
  snprintf(statement, sizeof statement, "ALTER DATABASE %s ALLOW_CONNECTIONS false", t.db);
  sql(statement);
  snprintf(statement, sizeof statement,
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'", t.db);
  sql(statement);
  printf("    PostgreSQL connections cut and refused\n");
  sleep_ms(3000);
  snprintf(statement, sizeof statement, "ALTER DATABASE %s ALLOW_CONNECTIONS true", t.db);
  sql(statement);
  printf("    PostgreSQL back\n");
  produce(&ref, ref.n_events / 3, 2 * ref.n_events / 3);
  sleep_ms(2000);

  services("stop", "kafka");
  printf("    Kafka stopped\n");
  sleep_ms(3000);
  services("start", "kafka");
  printf("    Kafka back\n");
  produce(&ref, 2 * ref.n_events / 3, ref.n_events);

  wait_caught_up(t.conninfo, t.prefix, ref.n_decisions, 180000);
  sleep_ms(2000);
  int status = stop_worker(pid, SIGTERM);
  assert_true(WIFEXITED(status)); /* it never gave up */
  assert_int_equal(WEXITSTATUS(status), 0);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "grep -q 'PostgreSQL' %s/test_worker-outage.log", CANARY_BINARY_DIR);
  assert_int_equal(system(cmd), 0); /* and it said what happened */
  compare_store(&ref, t.conninfo);
  compare_published(&ref, t.prefix);
  compare_other_outputs(&ref, t.prefix);
  run_end(&t);
  reference_free(&ref);
}

int main(void) {
  pg = getenv("CANARY_PG");
  kafka = getenv("CANARY_KAFKA");
  if (!pg || !kafka) {
    fprintf(stderr, "test_worker: CANARY_PG and CANARY_KAFKA must be set "
                    "(scripts/test starts the services)\n");
    return 1;
  }
  if (!cli_load_plan("test_worker", PLAN_FILE, &plan))
    return 1;
  setvbuf(stdout, NULL, _IONBF, 0);
  if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER=test_survives_outages: one test only */
    cmocka_set_test_filter(getenv("TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crash_safety),
      cmocka_unit_test(test_two_workers_share_and_take_over),
      cmocka_unit_test(test_malformed_message_to_dlq),
      cmocka_unit_test(test_reused_id_to_dlq),
      cmocka_unit_test(test_apply_failures_are_retried),
      cmocka_unit_test(test_survives_outages),
      cmocka_unit_test(test_metric_regression_halts),
      cmocka_unit_test(test_metric_windows_survive_restart),
      cmocka_unit_test(test_backlog_keeps_event_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
