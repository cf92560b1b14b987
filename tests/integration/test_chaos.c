/*
 * Chaos: two canaryd workers in one consumer group on the wall clock (canaryd's default), the
 * input produced live — deploys, metrics whose halt rules fire, commands, kill switches, events
 * for a rollout nobody requested and bytes that are no event at all — while a random one of the
 * workers is killed with SIGKILL at random moments, at least 24 times, and restarted at once.
 * Afterwards every output topic equals `canaryctl simulate --all` of the same input: decisions,
 * notifications and traffic splits as sets keyed by id with each one's JSON byte for byte the
 * simulator's, dead letters one per refused message with its bytes; an id published twice (a
 * kill between publishing and marking) only with the same bytes; and the transition log in
 * PostgreSQL holds each of simulate's decisions once, in its order. Only properties are
 * asserted, never a timing.
 *
 * Why the wall clock agrees with the simulator: each event is dated lead_ms after the moment it
 * is produced, and a worker fires deadlines by the wall clock only while its input is idle, so
 * a deadline the wall clock fires is never before an event still on its way. The last event, a
 * global flag.set, is dated end_gap_ms after the one before it: every shard applies it, which
 * fires every deadline up to its time, as simulate's last event does; the workers are stopped
 * before the wall clock reaches it. (This replaced the crash-safety test: --clock event, the
 * whole stream in Kafka before the first start, one worker.)
 */
#define _GNU_SOURCE /* asprintf */
#include <inttypes.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/app_cli.h"
#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "store/store.h"

#include "harness.h"

#define CHAOS_PLAN CANARY_SOURCE_DIR "/tests/integration/plans/chaos.yaml"
#define GARBAGE_EVERY 97 /* one message of bytes that are no event, every so many events */

/*
 * The test's scale, and bench/chaos's: each can be set in the environment (CHAOS_EVENTS,
 * CHAOS_STEP_MS, CHAOS_LEAD_MS, CHAOS_END_GAP_MS, CHAOS_MIN_KILLS, CHAOS_KILL_MIN_MS,
 * CHAOS_KILL_MAX_MS, CHAOS_KAFKA_RESTART_AT, CHAOS_PG_RESTART_AT).
 * A broker or PostgreSQL restart (bench/chaos) comes after that many events are produced; the
 * producer waits for it, so lead_ms must be longer than a restart takes.
 */
static long n_events = 1600; /* one every step_ms: about a minute of input */
static long step_ms = 40;
static long lead_ms = 3000;     /* an event is dated this long after it is produced */
static long end_gap_ms = 60000; /* the last event's date after the one before it */
static long min_kills = 24;
static long kill_min_ms = 1000, kill_max_ms = 3000; /* between two kills */
static long kafka_restart_at = -1, pg_restart_at = -1;

static long knob(const char *name, long value) {
  const char *v = getenv(name);
  return v && *v ? atol(v) : value;
}

/* The faults, by wall clock: a re-published output must have one between its copies. */
struct fault {
  int64_t from_ms, to_ms;
  const char *what; /* "kill", "PostgreSQL restart", "broker restart" */
};
static struct fault *faults;
static size_t n_faults;

static void fault_add(int64_t from_ms, int64_t to_ms, const char *what) {
  faults = realloc(faults, (n_faults + 1) * sizeof *faults);
  assert_non_null(faults);
  faults[n_faults++] = (struct fault){from_ms, to_ms, what};
}

/* One output of simulate, or one id published on a topic. */
struct out {
  char *id;
  char *json;           /* simulate's value, or the published message decoded and re-encoded */
  size_t json_len;      /* (a dead letter's holds the original's bytes, NULs and all) */
  unsigned char *bytes; /* as published (NULL for simulate's) */
  size_t len;
  int copies;
  int64_t ts_min, ts_max; /* the copies' Kafka timestamps (when the relay produced them) */
};

struct outs {
  struct out *items;
  size_t n, cap;
};

static void outs_add(struct outs *o, const char *id, const char *json, size_t json_len,
                     const void *bytes, size_t len, int64_t ts) {
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 256;
    o->items = realloc(o->items, o->cap * sizeof *o->items);
    assert_non_null(o->items);
  }
  struct out *x = &o->items[o->n++];
  x->id = strdup(id);
  x->json = malloc(json_len + 1);
  assert_non_null(x->json);
  memcpy(x->json, json, json_len);
  x->json[json_len] = '\0';
  x->json_len = json_len;
  x->bytes = bytes ? malloc(len ? len : 1) : NULL;
  if (bytes)
    memcpy(x->bytes, bytes, len);
  x->len = len;
  x->copies = 1;
  x->ts_min = x->ts_max = ts;
}

static bool same_json(const struct out *a, const struct out *b) {
  return a->json_len == b->json_len && !memcmp(a->json, b->json, a->json_len);
}

static int cmp_out(const void *a, const void *b) {
  return strcmp(((const struct out *)a)->id, ((const struct out *)b)->id);
}

/* Sort by id and fold the copies of an id into one; a copy with other bytes fails the test.
 * Returns how many copies were folded. */
static size_t outs_fold(struct outs *o, const char *what) {
  qsort(o->items, o->n, sizeof *o->items, cmp_out);
  size_t k = 0, folded = 0;
  for (size_t i = 0; i < o->n; i++) {
    if (k && !strcmp(o->items[k - 1].id, o->items[i].id)) {
      struct out *first = &o->items[k - 1], *again = &o->items[i];
      if (first->len != again->len ||
          (first->bytes && memcmp(first->bytes, again->bytes, first->len)))
        fail_msg("%s %s published twice with different bytes", what, again->id);
      if (!first->bytes && !same_json(first, again))
        fail_msg("simulate printed %s %s twice, differently", what, again->id);
      first->copies++;
      first->ts_min = again->ts_min < first->ts_min ? again->ts_min : first->ts_min;
      first->ts_max = again->ts_max > first->ts_max ? again->ts_max : first->ts_max;
      folded++;
      free(again->id);
      free(again->json);
      free(again->bytes);
      continue;
    }
    o->items[k++] = o->items[i];
  }
  o->n = k;
  return folded;
}

static void outs_free(struct outs *o) {
  for (size_t i = 0; i < o->n; i++) {
    free(o->items[i].id);
    free(o->items[i].json);
    free(o->items[i].bytes);
  }
  free(o->items);
}

/* The value of "id" at the start of a JSON object (the contract's outputs begin with it). */
static void json_id(const char *json, char *id, size_t cap) {
  const char *p = strstr(json, "\"id\":\"");
  assert_non_null(p);
  p += 6;
  size_t n = strcspn(p, "\"");
  assert_true(n < cap);
  memcpy(id, p, n);
  id[n] = '\0';
}

/* What simulate says of the stream: its outputs by topic, and the ids it refused with why. */
struct expected {
  struct outs decisions, notes, splits;
  char **refused, **refused_why;
  size_t n_refused;
};

static void simulate(const char *stream, struct expected *x) {
  memset(x, 0, sizeof *x);
  char *cmd, *errfile;
  assert_true(asprintf(&errfile, "%s.simulate-stderr", stream) > 0);
  assert_true(asprintf(&cmd, "%s/canaryctl simulate --plan %s --events %s --all 2>%s",
                       CANARY_BINARY_DIR, CHAOS_PLAN, stream, errfile) > 0);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  char *line = NULL, id[256];
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    static const char pre[] = "{\"topic\":\"";
    assert_true(!strncmp(line, pre, sizeof pre - 1));
    const char *topic = line + sizeof pre - 1, *value = strstr(line, ",\"value\":");
    assert_non_null(value);
    value += 9;
    size_t vlen = (size_t)len - 1 - (size_t)(value - line) - 1; /* without "}\n" */
    json_id(value, id, sizeof id);
    struct outs *o = !strncmp(topic, "canary.decisions\"", 17)       ? &x->decisions
                     : !strncmp(topic, "canary.notifications\"", 21) ? &x->notes
                     : !strncmp(topic, "canary.flags\"", 13)         ? &x->splits
                                                                     : NULL;
    if (!o)
      fail_msg("simulate printed an output of an unknown topic: %s", line);
    outs_add(o, id, value, vlen, NULL, 0, 0);
  }
  int status = pclose(f);
  /* 1: some lines were refused, which the stream means to have */
  assert_true(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 1));
  f = fopen(errfile, "r");
  assert_non_null(f);
  while ((len = getline(&line, &cap, f)) > 0) {
    /* "<file>:<line>: rejected <type> <id>: <why>" */
    char *r = strstr(line, ": rejected ");
    if (!strncmp(line, "simulated ", 10))
      continue; /* the summary */
    if (!r)
      fail_msg("simulate: %s", line);
    char *eid = strchr(r + 11, ' ');
    assert_non_null(eid);
    eid++;
    char *colon = strstr(eid, ": ");
    assert_non_null(colon);
    line[len - 1] = '\0';
    x->refused = realloc(x->refused, (x->n_refused + 1) * sizeof *x->refused);
    x->refused_why = realloc(x->refused_why, (x->n_refused + 1) * sizeof *x->refused_why);
    x->refused[x->n_refused] = strndup(eid, (size_t)(colon - eid));
    x->refused_why[x->n_refused++] = strdup(colon + 2);
  }
  fclose(f);
  free(line);
  free(cmd);
  free(errfile);
  assert_int_equal(outs_fold(&x->decisions, "decision"), 0);
  assert_int_equal(outs_fold(&x->notes, "notification"), 0);
  assert_int_equal(outs_fold(&x->splits, "traffic split"), 0);
}

/* ---- the workers ------------------------------------------------------------------------ */

struct workers {
  const struct run *t;
  pid_t pid[2];
  int kills;
  int64_t next_kill; /* mono_ms */
};

static const char *const worker_ids[2] = {"chaos-a", "chaos-b"};

/* kill -9 a random one of the two at a random moment (kill_min_ms to kill_max_ms after the
 * last), and restart it. */
static void maybe_kill(struct workers *w) {
  if (mono_ms() < w->next_kill)
    return;
  int i = rand() % 2;
  int status = stop_worker(w->pid[i], SIGKILL);
  if (!WIFSIGNALED(status))
    fail_msg("worker %s had stopped before it was killed (status %d)", worker_ids[i], status);
  int64_t at = wall_now_ms();
  w->pid[i] = start_worker(w->t->conninfo, w->t->group, worker_ids[i]);
  fault_add(at, at, "kill");
  w->kills++;
  w->next_kill = mono_ms() + kill_min_ms + rand() % (kill_max_ms - kill_min_ms + 1);
  if (w->kills % 10 == 0)
    fprintf(stderr, "chaos: %d kills\n", w->kills);
}

/* Until both own a shard (the group has split them): a kill then hits a working pair. */
static void wait_two_owners(const char *conninfo) {
  PGconn *c = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  int owners = 0;
  for (int64_t until = mono_ms() + 60000; mono_ms() < until && owners < 2; sleep_ms(200)) {
    PGresult *r = PQexec(c, "SELECT count(DISTINCT owner) FROM shards");
    owners = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
  }
  PQfinish(c);
  assert_int_equal(owners, 2);
}

/* ---- the input -------------------------------------------------------------------------- */

struct stream {
  char *path;
  struct event *events;
  struct event_scratch **scratches;
  size_t n;
};

static void stream_make(struct stream *s, const char *prefix, int64_t start_ms, unsigned seed) {
  memset(s, 0, sizeof *s);
  assert_true(asprintf(&s->path, "%s/test_chaos-%s.jsonl", CANARY_BINARY_DIR, prefix) > 0);
  char *cmd;
  assert_true(asprintf(&cmd, "%s/tests/integration/gen-stream %s %ld %u %" PRId64 " %ld %ld 1 > %s",
                       CANARY_SOURCE_DIR, prefix, n_events, seed, start_ms, step_ms, end_gap_ms,
                       s->path) > 0);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  FILE *f = fopen(s->path, "r");
  assert_non_null(f);
  s->events = calloc((size_t)n_events, sizeof *s->events);
  s->scratches = calloc((size_t)n_events, sizeof *s->scratches);
  char *line = NULL, why[512];
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    assert_true((long)s->n < n_events);
    s->scratches[s->n] = event_scratch_new();
    if (event_from_json(line, (size_t)len - 1, &s->events[s->n], s->scratches[s->n], why,
                        sizeof why) != CANARY_OK)
      fail_msg("generated line %zu does not parse: %s", s->n + 1, why);
    s->n++;
  }
  free(line);
  fclose(f);
  assert_int_equal(s->n, (size_t)n_events);
}

static void stream_free(struct stream *s) {
  for (size_t i = 0; i < s->n; i++)
    event_scratch_destroy(s->scratches[i]);
  free(s->scratches);
  free(s->events);
  free(s->path);
}

/* Restart a service (scripts/services, on those the caller started) while the workers run. */
static void restart(const char *service) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "CANARY_QUIET=1 %s/scripts/services restart %s >/dev/null 2>&1",
           CANARY_SOURCE_DIR, service);
  fprintf(stderr, "chaos: restarting %s\n", service);
  int64_t from = wall_now_ms();
  assert_int_equal(system(cmd), 0);
  int64_t to = wall_now_ms();
  fault_add(from, to, !strcmp(service, "pg") ? "PostgreSQL restart" : "broker restart");
  printf("    %s restarted in %.1f s\n", service, (double)(to - from) / 1000);
}

/*
 * Produce the stream live, each event lead_ms before its time, with a message of garbage now
 * and then, killing workers as it goes. Returns the number of input messages (a global event
 * goes to each of the 3 shards).
 *
 * Each event is sent once the one before it is acknowledged, as an application that emits an
 * event when something happened does. Kafka orders only within a partition; the merge orders
 * across a shard's partitions what has reached the broker (waiting --grace-ms for messages
 * produced at about the same moment). Sent without waiting, the first message to a topic waits
 * for its metadata: a flag.set reached the broker half a second after a later ci.completed of
 * its rollout, and the worker applied it late, at the rollout's clock — what canaryd documents
 * for an event that arrives late, and not what this test is about.
 */
static long produce_live(const struct stream *s, struct workers *w) {
  avro_codec_t *codec;
  bus_producer_t *p;
  int failed = 0;
  long messages = 0;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  assert_int_equal(bus_producer_new(kafka, "test-chaos", NULL, NULL, &p), CANARY_OK);
  bus_producer_on_delivery(p, on_delivery, &failed);
  struct avro_buf buf = AVRO_BUF_INIT;
  for (size_t i = 0; i < s->n; i++) {
    const struct event *ev = &s->events[i];
    if ((long)i == kafka_restart_at || (long)i == pg_restart_at)
      restart((long)i == kafka_restart_at ? "kafka" : "pg");
    if (i % 10000 == 0 && i)
      fprintf(stderr, "chaos: %zu of %zu events produced, %d kills\n", i, s->n, w->kills);
    /* the last, dated end_gap_ms on, goes at once: the workers stop before its time */
    while (i + 1 < s->n && wall_now_ms() < ev->time_ms - lead_ms) {
      maybe_kill(w);
      bus_producer_poll(p, 0);
      sleep_ms(2);
    }
    assert_int_equal(avro_codec_encode_event(codec, ev, &buf), CANARY_OK);
    const char *topic = avro_codec_topic_of(ev->type);
    if (!ev->rollout[0]) { /* a global flag.set: to every shard, as canaryctl sends it */
      for (int32_t part = 0; part < 3; part++, messages++)
        assert_int_equal(bus_produce(p, topic, part, NULL, 0, buf.data, buf.len, (int64_t)i),
                         CANARY_OK);
    } else {
      assert_int_equal(bus_produce(p, topic, -1, ev->rollout, strlen(ev->rollout), buf.data,
                                   buf.len, (int64_t)i),
                       CANARY_OK);
      messages++;
    }
    if (i % GARBAGE_EVERY == GARBAGE_EVERY / 2 && ev->rollout[0]) {
      char junk[64];
      int n = snprintf(junk, sizeof junk, "not an event %zu", i);
      assert_int_equal(
          bus_produce(p, topic, -1, ev->rollout, strlen(ev->rollout), junk, (size_t)n, -1),
          CANARY_OK);
      messages++;
    }
    assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  }
  assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);
  assert_int_equal(failed, 0);
  avro_buf_free(&buf);
  bus_producer_destroy(p);
  avro_codec_destroy(codec);
  return messages;
}

/* ---- what was published ----------------------------------------------------------------- */

/* Every message of topic (the test's own: all of it is the test's), until caught up. */
static void read_all(const char *topic, struct outs *o) {
  avro_codec_t *codec;
  bus_reader_t *r;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  assert_int_equal(bus_reader_new(kafka, topic, true, NULL, NULL, &r), CANARY_OK);
  struct jbuf j;
  jbuf_init(&j);
  static char slack[65536];
  char why[256], id[256];
  bool caught_up = false;
  int64_t quiet_since = mono_ms();
  for (int64_t until = mono_ms() + 60000; mono_ms() < until;) {
    struct bus_msg m;
    if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK) {
      if (caught_up && mono_ms() - quiet_since > 1000)
        break;
      continue;
    }
    quiet_since = mono_ms();
    jbuf_reset(&j);
    if (!strcmp(topic, "canary.decisions")) {
      static struct decision d;
      assert_int_equal(avro_codec_decode_decision(codec, m.value, m.len, &d, why, sizeof why),
                       CANARY_OK);
      decision_to_json(&d, &j);
      snprintf(id, sizeof id, "%s", d.id);
    } else if (!strcmp(topic, "canary.notifications")) {
      static struct notification n;
      assert_int_equal(avro_codec_decode_notification(codec, m.value, m.len, &n, slack,
                                                      sizeof slack, why, sizeof why),
                       CANARY_OK);
      notification_to_json(&n, &j);
      snprintf(id, sizeof id, "%s", n.id);
    } else if (!strcmp(topic, "canary.flags")) {
      static struct traffic_split t;
      assert_int_equal(avro_codec_decode_traffic(codec, m.value, m.len, &t, why, sizeof why),
                       CANARY_OK);
      traffic_to_json(&t, &j);
      snprintf(id, sizeof id, "%s", t.id);
    } else { /* canary.dlq: the original's bytes and why, keyed as the outbox keys it */
      struct avro_dlq d;
      assert_int_equal(avro_codec_decode_dlq(codec, m.value, m.len, &d, why, sizeof why),
                       CANARY_OK);
      snprintf(id, sizeof id, "dlq/%s/%d/%" PRId64, d.topic, (int)d.partition, d.offset);
      jbuf_puts(&j, d.reason);
      jbuf_putc(&j, '\n');
      jbuf_write(&j, d.original, d.original_len);
    }
    outs_add(o, id, j.data ? j.data : "", j.len, m.value, m.len, m.timestamp_ms);
  }
  assert_true(caught_up);
  jbuf_free(&j);
  bus_reader_close(r);
  avro_codec_destroy(codec);
}

/*
 * Why each output published more than once was: a fault between its first and its last copy
 * (the relay published it, and the fault came before it marked it published). Prints the
 * counts; the outputs are the same bytes either way, and consumers de-duplicate by id.
 */
static void explain_copies(const char *topic, const struct outs *got) {
  size_t by[4] = {0}, shown = 0;
  static const char *const what[] = {"kill", "PostgreSQL restart", "broker restart"};
  for (size_t i = 0; i < got->n; i++) {
    const struct out *o = &got->items[i];
    if (o->copies < 2)
      continue;
    int k = 3; /* unexplained */
    for (size_t f = 0; f < n_faults && k == 3; f++)
      if (faults[f].from_ms <= o->ts_max && faults[f].to_ms >= o->ts_min)
        for (int j = 0; j < 3; j++)
          if (!strcmp(faults[f].what, what[j]))
            k = j;
    by[k]++;
    if (k == 3 && shown++ < 5)
      printf("      %s %s: %d copies from %" PRId64 " to %" PRId64 " ms, no fault between\n", topic,
             o->id, o->copies, o->ts_min, o->ts_max);
  }
  if (by[0] + by[1] + by[2] + by[3])
    printf("      ids published more than once: %zu across a kill, %zu across a PostgreSQL "
           "restart, %zu across a broker restart, %zu unexplained\n",
           by[0], by[1], by[2], by[3]);
}

/* The published set equals simulate's, id for id and JSON byte for byte. */
static void compare_topic(const char *topic, const struct outs *want) {
  struct outs got = {0};
  read_all(topic, &got);
  size_t published = got.n, again = outs_fold(&got, topic);
  printf("    %s: %zu published, %zu distinct (simulate %zu), %zu again with the same bytes\n",
         topic, published, got.n, want->n, again);
  explain_copies(topic, &got);
  for (size_t i = 0, k = 0; i < got.n || k < want->n;) {
    int c = i == got.n ? 1 : k == want->n ? -1 : strcmp(got.items[i].id, want->items[k].id);
    if (c < 0)
      fail_msg("%s: %s published, simulate has no such output", topic, got.items[i].id);
    if (c > 0)
      fail_msg("%s: simulate's %s was never published", topic, want->items[k].id);
    if (!same_json(&got.items[i], &want->items[k])) {
      printf("simulate  %s\npublished %s\n", want->items[k].json, got.items[i].json);
      fail_msg("%s: %s differs from simulate's", topic, got.items[i].id);
    }
    i++, k++;
  }
  outs_free(&got);
}

/*
 * Dead letters: one per refused message — each garbage message and each event simulate refused
 * — keyed by its input topic, partition and offset, carrying its bytes and, for an event,
 * simulate's reason. Read back from the input topics, which hold only this test's messages.
 */
static void compare_dead_letters(const struct expected *x) {
  struct outs want = {0};
  avro_codec_t *codec;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  struct jbuf j;
  jbuf_init(&j);
  char id[256], why[512];
  for (int t = 0; t < BUS_INPUT_TOPICS; t++) {
    bus_reader_t *r;
    assert_int_equal(bus_reader_new(kafka, bus_input_topics[t], true, NULL, NULL, &r), CANARY_OK);
    bool caught_up = false;
    for (int64_t until = mono_ms() + 30000; !caught_up && mono_ms() < until;) {
      struct bus_msg m;
      if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK)
        continue;
      struct event ev;
      const char *reason = NULL;
      if (avro_codec_decode_event(codec, m.value, m.len, &ev, why, sizeof why) != CANARY_OK) {
        reason = why; /* what the worker says of bytes that do not decode: not compared */
      } else {
        for (size_t i = 0; i < x->n_refused && !reason; i++)
          if (!strcmp(x->refused[i], ev.id))
            reason = x->refused_why[i];
        if (!reason)
          continue;
      }
      snprintf(id, sizeof id, "dlq/%s/%d/%" PRId64, bus_input_topics[t], (int)m.partition,
               m.offset);
      jbuf_reset(&j);
      jbuf_puts(&j, reason == why ? "" : reason);
      jbuf_putc(&j, '\n');
      jbuf_write(&j, m.value, m.len);
      outs_add(&want, id, j.data, j.len, NULL, 0, 0);
    }
    assert_true(caught_up);
    bus_reader_close(r);
  }
  jbuf_free(&j);
  avro_codec_destroy(codec);
  assert_int_equal(outs_fold(&want, "dead letter"), 0);

  struct outs got = {0};
  read_all("canary.dlq", &got);
  size_t published = got.n, again = outs_fold(&got, "dead letter");
  printf("    canary.dlq: %zu published, %zu distinct (refused: %zu), %zu again with the same "
         "bytes\n",
         published, got.n, want.n, again);
  explain_copies("canary.dlq", &got);
  for (size_t i = 0, k = 0; i < got.n || k < want.n; i++, k++) {
    int c = i == got.n ? 1 : k == want.n ? -1 : strcmp(got.items[i].id, want.items[k].id);
    if (c < 0)
      fail_msg("dead letter %s for a message nobody refused", got.items[i].id);
    if (c > 0)
      fail_msg("refused message %s has no dead letter", want.items[k].id);
    const struct out *go = &got.items[i], *wo = &want.items[k];
    const char *g = go->json, *w = wo->json;
    const char *gb = strchr(g, '\n'), *wb = strchr(w, '\n');
    size_t glen = go->json_len - (size_t)(gb - g), wlen = wo->json_len - (size_t)(wb - w);
    if (glen != wlen || memcmp(gb, wb, glen))
      fail_msg("dead letter %s does not carry the message's bytes", got.items[i].id);
    if (wb != w && ((size_t)(gb - g) != (size_t)(wb - w) || strncmp(g, w, (size_t)(wb - w))))
      fail_msg("dead letter %s says '%.*s', simulate '%.*s'", got.items[i].id, (int)(gb - g), g,
               (int)(wb - w), w);
  }
  outs_free(&got);
  outs_free(&want);
}

/* The transition log holds each of simulate's decisions once, rollout by rollout in order. */
static void compare_transitions(const char *conninfo, const struct outs *want) {
  store_t *st;
  assert_int_equal(store_open(conninfo, 10000, NULL, NULL, &st), CANARY_OK);
  struct store_rollout_row *rows;
  size_t n_rows, checked = 0;
  assert_int_equal(store_list_rollouts(st, &rows, &n_rows), CANARY_OK);
  struct jbuf j;
  jbuf_init(&j);
  for (size_t r = 0; r < n_rows; r++) {
    struct decision *got;
    size_t n;
    const char *rollout = rows[r].rollout.id;
    assert_int_equal(store_history(st, rollout, &got, &n), CANARY_OK);
    for (size_t i = 0; i < n; i++) {
      jbuf_reset(&j);
      decision_to_json(&got[i], &j);
      struct out key = {.id = got[i].id};
      const struct out *w = bsearch(&key, want->items, want->n, sizeof *want->items, cmp_out);
      if (!w)
        fail_msg("%s: stored transition %s is not simulate's", rollout, got[i].id);
      if (strlen(w->json) != j.len || memcmp(w->json, j.data, j.len))
        fail_msg("%s: stored transition %s differs from simulate's", rollout, got[i].id);
      if (i && got[i].seq <= got[i - 1].seq)
        fail_msg("%s: transition %s stored twice or out of order", rollout, got[i].id);
      checked++;
    }
    free(got);
  }
  jbuf_free(&j);
  free(rows);
  store_close(st);
  printf("    %zu transitions stored, each once, all simulate's (simulate: %zu decisions)\n",
         checked, want->n);
  assert_int_equal(checked, want->n);
}

/* ---- the test --------------------------------------------------------------------------- */

static void test_chaos(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "chaos");
  unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
  srand(seed);
  printf("    seed %u (gen-stream and the kills)\n", seed);

  struct workers w = {.t = &t};
  long before = epochs(t.conninfo);
  for (int i = 0; i < 2; i++)
    w.pid[i] = start_worker(t.conninfo, t.group, worker_ids[i]);
  assert_true(wait_claims(t.conninfo, before, 3, 60000));
  wait_two_owners(t.conninfo);

  struct stream s;
  stream_make(&s, t.prefix, wall_now_ms() + lead_ms + 1500, seed);
  struct expected x;
  simulate(s.path, &x);
  int64_t end_ms = s.events[s.n - 1].time_ms;
  printf("    stream: %zu events over %ld s, %zu refused by simulate; simulate: %zu decisions, "
         "%zu notifications, %zu traffic splits\n",
         s.n, n_events * step_ms / 1000, x.n_refused, x.decisions.n, x.notes.n, x.splits.n);

  w.next_kill = mono_ms() + 500 + rand() % 2000;
  int64_t t0 = mono_ms();
  long messages = produce_live(&s, &w);
  printf("    produced in %.1f s\n", (double)(mono_ms() - t0) / 1000);
  while (w.kills < min_kills) {
    maybe_kill(&w);
    sleep_ms(5);
  }
  printf("    %d kills -9 while %ld input messages were produced\n", w.kills, messages);
  wait_committed(t.conninfo, messages);
  printf("    all committed %.1f s after the first event was produced\n",
         (double)(mono_ms() - t0) / 1000);
  /* Every shard has applied the last event, so every deadline up to its time has fired, as in
   * simulate; stopped before the wall clock reaches it, no worker fired one beyond. */
  if (wall_now_ms() >= end_ms)
    fail_msg("the workers caught up %" PRId64 " ms after the stream's end time: its outputs may "
             "hold deadlines simulate never reached",
             wall_now_ms() - end_ms);
  for (int i = 0; i < 2; i++) {
    int status = stop_worker(w.pid[i], SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }

  compare_topic("canary.decisions", &x.decisions);
  compare_topic("canary.notifications", &x.notes);
  compare_topic("canary.flags", &x.splits);
  compare_dead_letters(&x);
  compare_transitions(t.conninfo, &x.decisions);
  size_t halts = 0;
  for (size_t i = 0; i < x.decisions.n; i++)
    halts += strstr(x.decisions.items[i].json, "\"rule\":\"error_rate\"") != NULL;
  printf("    %zu halts on the error_rate rule among them\n", halts);
  assert_true(halts >= 1); /* the metric windows were rebuilt after the kills */

  outs_free(&x.decisions);
  outs_free(&x.notes);
  outs_free(&x.splits);
  for (size_t i = 0; i < x.n_refused; i++) {
    free(x.refused[i]);
    free(x.refused_why[i]);
  }
  free(x.refused);
  free(x.refused_why);
  stream_free(&s);
  run_end(&t);
}

int main(void) {
  pg = getenv("CANARY_PG");
  kafka = getenv("CANARY_KAFKA");
  if (!pg || !kafka) {
    fprintf(stderr, "test_chaos: CANARY_PG and CANARY_KAFKA must be set "
                    "(scripts/test starts the services)\n");
    return 1;
  }
  n_events = knob("CHAOS_EVENTS", n_events);
  step_ms = knob("CHAOS_STEP_MS", step_ms);
  lead_ms = knob("CHAOS_LEAD_MS", lead_ms);
  end_gap_ms = knob("CHAOS_END_GAP_MS", end_gap_ms);
  min_kills = knob("CHAOS_MIN_KILLS", min_kills);
  kill_min_ms = knob("CHAOS_KILL_MIN_MS", kill_min_ms);
  kill_max_ms = knob("CHAOS_KILL_MAX_MS", kill_max_ms);
  kafka_restart_at = knob("CHAOS_KAFKA_RESTART_AT", kafka_restart_at);
  pg_restart_at = knob("CHAOS_PG_RESTART_AT", pg_restart_at);
  if (n_events < 100 || step_ms < 1 || kill_max_ms < kill_min_ms || kill_min_ms < 1) {
    fprintf(stderr, "test_chaos: CHAOS_EVENTS >= 100, CHAOS_STEP_MS >= 1 and "
                    "1 <= CHAOS_KILL_MIN_MS <= CHAOS_KILL_MAX_MS, please\n");
    return 2;
  }
  worker_plan = CHAOS_PLAN;
  worker_clock = NULL; /* canaryd's default: the wall clock */
  worker_hold_ms = "1000";
  setvbuf(stdout, NULL, _IONBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chaos),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
