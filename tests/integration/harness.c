/*
 * What the integration tests of the worker share (test_worker.c, test_chaos.c): the recorded
 * stream and its reference run, producing it, a database and topics of a test's own, canaryd
 * started and killed, and the comparisons of what it stored and published with the reference.
 */
#define _GNU_SOURCE /* asprintf */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rollout_json.h"
#include "store/store.h"

const char *pg, *kafka;
struct plan plan;
const char *worker_plan = PLAN_FILE;
const char *worker_hold_ms = "600000";
const char *worker_kafka_conf;
const char *worker_clock = "event";
const char *worker_batch = "50";

/* ---- helpers ---------------------------------------------------------------------------- */

int64_t wall_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR)
    ;
}

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
void reference_build(struct reference *ref, const char *prefix) {
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
void reference_matches_simulate(const struct reference *ref, const char *prefix) {
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
      fail_msg("simulate line %zu differs from the reference:\n%s%.*s", i + 1, line, (int)b.len,
               b.data);
    i++;
  }
  assert_int_equal(pclose(f), 0);
  assert_int_equal(i, ref->n_decisions);
  free(line);
  jbuf_free(&b);
}

void reference_free(struct reference *ref) {
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

void on_delivery(void *ctx, int64_t opaque, bool ok, const char *error) {
  int *failed = ctx;
  if (!ok) {
    fprintf(stderr, "delivery of event %" PRId64 " failed: %s\n", opaque, error);
    (*failed)++;
  }
}

/* Produce evs as the contract says: Avro, the topic of its type, key = rollout (a global
 * flag.set to every shard, as canaryctl sends it). With in_order, an event goes only once those
 * before it on other topics were acknowledged (see produce_live_in_order). */
static void produce_events_to(const struct event *evs, size_t n, bool in_order) {
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
    if (in_order && i > 0 &&
        strcmp(avro_codec_topic_of(ev->type), avro_codec_topic_of(evs[i - 1].type)))
      assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
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

void produce_events(const struct event *evs, size_t n) { produce_events_to(evs, n, false); }

/* The stream's events [from, to). */
void produce(const struct reference *ref, size_t from, size_t to) {
  if (to > ref->n_events)
    to = ref->n_events;
  if (from < to)
    produce_events(ref->events + from, to - from);
}

/*
 * The stream's events [from, to) while a worker runs: each goes once every event before it on
 * another topic was acknowledged, as docs/operations.md asks of a producer. Kafka orders only
 * within a partition; the merge orders what has reached the broker, waiting --grace-ms for the
 * rest. Sent in one burst, a loaded machine delivered a rollout.requested more than the grace
 * after its rollout's metric reports, which were dead-lettered (test_survives_outages).
 */
void produce_live_in_order(const struct reference *ref, size_t from, size_t to) {
  if (to > ref->n_events)
    to = ref->n_events;
  if (from < to)
    produce_events_to(ref->events + from, to - from, true);
}

/* A database of the test's own: the worker starts from nothing (offsets from the start). */
char *fresh_database(const char *name) {
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

void drop_database(const char *name) {
  PGconn *c = PQconnectdb(pg);
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

/*
 * The workers started and not stopped yet, so that a wait can tell a worker that died (a crash
 * under load once looked like a slow worker: "stored 29 of 322 transitions in 180 s").
 */
#define MAX_LIVE 16
static struct {
  pid_t pid;
  char id[64];
} live[MAX_LIVE];

/* Fail the test if a worker started and not stopped has ended (it is left for stop_worker). */
static void workers_alive(void) {
  for (int i = 0; i < MAX_LIVE; i++) {
    if (!live[i].pid)
      continue;
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)live[i].pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid != live[i].pid)
      continue; /* still running */
    fail_msg("worker %s (pid %d) ended on its own: %s %d; see %s/test_worker-%s.log", live[i].id,
             (int)live[i].pid, si.si_code == CLD_EXITED ? "exit" : "signal", si.si_status,
             CANARY_BINARY_DIR, live[i].id);
  }
}

/* Start canaryd; its log goes to a file next to the build. */
pid_t start_worker(const char *conninfo, const char *group, const char *id) {
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
    /* By default --clock event and a long --hold-ms: input already in Kafka is released
     * strictly in event-time order, as the reference applies it. Small batches: more commits
     * to crash in. */
    const char *argv[32];
    int n = 0;
    argv[n++] = "canaryd";
    if (worker_clock)
      argv[n++] = "--clock", argv[n++] = worker_clock;
    argv[n++] = "--hold-ms", argv[n++] = worker_hold_ms;
    argv[n++] = "--batch", argv[n++] = worker_batch;
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
  for (int i = 0; i < MAX_LIVE; i++)
    if (!live[i].pid) {
      live[i].pid = pid;
      snprintf(live[i].id, sizeof live[i].id, "%s", id);
      break;
    }
  return pid;
}

int stop_worker(pid_t pid, int sig) {
  int status = 0;
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i].pid == pid)
      live[i].pid = 0;
  kill(pid, sig);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

/* Sum of the shards' owner epochs: it grows by one for every claim. */
long epochs(const char *conninfo) {
  PGconn *c = PQconnectdb(conninfo);
  PGresult *r = PQexec(c, "SELECT coalesce(sum(owner_epoch), 0) FROM shards");
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  PQfinish(c);
  return n;
}

/* Sum of the stored next offsets: how far the worker has committed through the input. */
long committed_on(PGconn *c) {
  PGresult *r =
      PQexec(c, "SELECT coalesce(sum(next_offset), 0) FROM offsets WHERE next_offset > 0");
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return n;
}

/* How many input messages the stream makes: a global event goes to each of the 3 shards. */
long committed_total(const struct reference *ref) {
  long n = 0;
  for (size_t i = 0; i < ref->n_events; i++)
    n += ref->events[i].rollout[0] ? 1 : 3;
  return n;
}

/* Wait until the shards were claimed `claims` more times than `before` (false on timeout). */
bool wait_claims(const char *conninfo, long before, long claims, int64_t ms) {
  int64_t until = mono_ms() + ms;
  while (mono_ms() < until) {
    if (epochs(conninfo) >= before + claims)
      return true;
    sleep_ms(50);
  }
  return false;
}

/* Number of transitions stored for the stream's rollouts. */
long stored_transitions(const char *conninfo, const char *prefix) {
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return -1;
  }
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM transitions WHERE rollout LIKE '%s-%%'", prefix);
  PGresult *r = PQexec(c, sql);
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  PQfinish(c);
  return n;
}

/*
 * Wait until the store holds want transitions, as long as the worker makes progress: it fails
 * when no new transition was stored for stall_ms, when a worker died, or after WAIT_CAP_MS in
 * all. A fixed total deadline failed a healthy but slow worker on a loaded machine; progress is
 * the property (each outage's recovery restarts the count).
 */
#define WAIT_CAP_MS (15 * 60000)
void wait_caught_up(const char *conninfo, const char *prefix, size_t want, int64_t stall_ms) {
  int64_t start = mono_ms(), moved = start;
  long n = -1, best = -1;
  for (;;) {
    n = stored_transitions(conninfo, prefix);
    if (n >= (long)want)
      return;
    int64_t now = mono_ms();
    if (n > best)
      best = n, moved = now;
    workers_alive();
    if (now - moved > stall_ms)
      fail_msg("the worker stored %ld of %zu transitions, none new for %" PRId64 " s", best, want,
               stall_ms / 1000);
    if (now - start > WAIT_CAP_MS)
      fail_msg("the worker stored %ld of %zu transitions in %d min", best, want,
               WAIT_CAP_MS / 60000);
    sleep_ms(250);
  }
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
void compare_store(const struct reference *ref, const char *conninfo) {
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

int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

uint64_t fnv(const void *p, size_t n) {
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
struct pub *read_topic(const char *topic, const char *prefix, size_t want, size_t *n) {
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
        assert_int_equal(avro_codec_decode_traffic(codec, m.value, m.len, &split, why, sizeof why),
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
void compare_other_outputs(const struct reference *ref, const char *prefix) {
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
         "with the same bytes\n",
         n, unique, ref->n_notes, repeats);
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
         "the reference's last\n",
         known, services);
  free(splits);
}

void compare_published(const struct reference *ref, const char *prefix) {
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
         "bytes\n",
         n, unique, repeats);
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

/* Wait until the worker has committed every input message of the stream (60 s at most). */
void wait_committed(const char *conninfo, long total) {
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

/* A prefix, topics, a database and a consumer group of the test's own, named after it. */
void run_begin(struct run *r, const char *name) {
  memset(live, 0, sizeof live); /* a failed test's workers are not this one's */
  snprintf(r->prefix, sizeof r->prefix, "%s%d%ld", name, (int)getpid(), (long)time(NULL) % 100000);
  snprintf(r->db, sizeof r->db, "canary_%s", r->prefix);
  snprintf(r->group, sizeof r->group, "g-%s", r->prefix);
  own_topics(r->prefix);
  r->conninfo = fresh_database(r->db);
}

void run_end(struct run *r) {
  drop_database(r->db);
  free(r->conninfo);
}

/*
 * Topics of the test's own (CANARY_TOPIC_PREFIX, inherited by the canaryd it starts): only the
 * stream is in them, so nothing another test produced can interleave with it.
 */
void own_topics(const char *prefix) {
  char p[96];
  snprintf(p, sizeof p, "%s.", prefix);
  setenv("CANARY_TOPIC_PREFIX", p, 1);
  bus_set_topic_prefix(p);
  assert_int_equal(bus_create_topics(kafka, 3, 20000, NULL, NULL), CANARY_OK);
}
