/*
 * The worker against the real broker and database, one fault at a time.
 *
 * A recorded stream (tests/integration/gen-stream, >= 2000 events over dozens of rollouts) is
 * produced as Avro to the input topics. The reference is the same stream through the engine
 * in-process, exactly as `canaryctl simulate` runs it. canaryd runs with --clock event (only
 * event time moves its clock, as in the reference) against a database of its own.
 *
 * - two workers: two canaryd in one group share the shards; one is killed; the other takes its
 *   shards over; everything must equal the reference, nothing lost or doubled.
 * - a backlog keeps its event order, malformed messages and reused ids go to the dead letters,
 *   failed applies are retried, outages of PostgreSQL and Kafka are waited out, metric windows
 *   survive a restart.
 * Kills at random moments, many of them, with two workers and the input produced live: the
 * chaos test (test_chaos.c, which took the crash-safety test's place).
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

#include "harness.h"

/* ---- tests ------------------------------------------------------------------------------ */

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
 * twice. And every 4th shard load fails too (the first one a rewind's), as on a connection a
 * terminated pipelined commit left unusable: the shard is loaded again on a new connection. A
 * rewind used to give up on any error but "unavailable", leaving the shard in the worker with
 * an empty engine — the next message applied to it crashed the worker (test_survives_outages
 * under load).
 */
static void test_apply_failures_are_retried(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "fault");
  struct reference ref;
  reference_build(&ref, t.prefix);
  produce(&ref, 0, ref.n_events);
  setenv("CANARY_FAULT_APPLY_EVERY", "97", 1);
  setenv("CANARY_FAULT_LOAD_EVERY", "4", 1); /* the 3 first loads are the shards' assignments */
  char path[256];
  snprintf(path, sizeof path, "%s/test_worker-fault.log", CANARY_BINARY_DIR);
  unlink(path);
  pid_t pid = start_worker(t.conninfo, t.group, "fault");
  unsetenv("CANARY_FAULT_APPLY_EVERY");
  unsetenv("CANARY_FAULT_LOAD_EVERY");
  wait_caught_up(t.conninfo, t.prefix, ref.n_decisions, 180000);
  sleep_ms(1500); /* nothing more may come: an extra transition would fail below */
  int status = stop_worker(pid, SIGTERM);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "grep -c 'the batch is dropped and the shard rewound' "
           "%s/test_worker-fault.log",
           CANARY_BINARY_DIR);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  long failures = 0;
  assert_int_equal(fscanf(f, "%ld", &failures), 1);
  pclose(f);
  printf("    %ld injected apply failures, each rewound and applied again\n", failures);
  assert_true(failures >= 10);
  int load_failures = log_lines_with("fault", "(fault injection)");
  printf("    %d injected load failures, each loaded again on a new connection\n", load_failures);
  assert_true(load_failures >= 2);
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

/* SELECT count(*) ... as a number. */
static long q_count(PGconn *db, const char *sql) {
  PGresult *res = PQexec(db, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(db));
  long n = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

/*
 * How many notices on canary.notifications say that output `stuck` of rollout was set aside
 * (read from the start until both are found, 30 s at most); each one printed and checked.
 */
static int stuck_notices_published(avro_codec_t *codec, const char *rollout, const char *stuck) {
  bus_reader_t *r;
  assert_int_equal(bus_reader_new(kafka, "canary.notifications", true, NULL, NULL, &r), CANARY_OK);
  int notices = 0;
  static char slack[65536];
  char why[256];
  struct bus_msg m;
  bool caught_up;
  for (int64_t until = mono_ms() + 30000; notices < 2 && mono_ms() < until;) {
    if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK)
      continue;
    struct notification n;
    if (avro_codec_decode_notification(codec, m.value, m.len, &n, slack, sizeof slack, why,
                                       sizeof why) != CANARY_OK)
      continue; /* the test row 'test/after' is no notification */
    if (strncmp(n.id, "outbox/", 7) || !strstr(n.text, stuck))
      continue; /* not one of stuck's */
    printf("    notice %s to %s (%s): %s: %s\n", n.id, n.target, notify_channel_name(n.channel),
           n.title, n.text);
    assert_string_equal(n.rollout, rollout);
    assert_non_null(strstr(n.text, "refused by the Kafka producer"));
    assert_string_equal(n.target, n.channel == NOTIFY_ONCALL ? "#oncall" : "#releases");
    notices++;
  }
  bus_reader_close(r);
  return notices;
}

/*
 * One service, one live rollout, across shards: a second rollout.requested for the service on
 * another partition (another shard) is dead-lettered with a reason that names the live one; once
 * that is rolled back, a new request for the second is taken.
 */
static void test_one_live_rollout_per_service(void **state) {
  (void)state;
  struct run t;
  run_begin(&t, "onelive");
  char a[80], b[80], svc[80];
  snprintf(a, sizeof a, "%s-a", t.prefix);
  snprintf(b, sizeof b, "%s-b", t.prefix);
  snprintf(svc, sizeof svc, "%s-svc", t.prefix);
  avro_codec_t *codec;
  assert_int_equal(avro_codec_new(&codec), CANARY_OK);
  bus_producer_t *p;
  assert_int_equal(bus_producer_new(kafka, "test-onelive", NULL, NULL, &p), CANARY_OK);
  /* a on partition 0, b on partition 1: two shards, whatever their keys hash to */
  struct event req = {.type = EVENT_ROLLOUT_REQUESTED, .time_ms = 1767225600000};
  snprintf(req.service, sizeof req.service, "%s", svc);
  snprintf(req.version, sizeof req.version, "2.0.0");
  snprintf(req.baseline_version, sizeof req.baseline_version, "1.9.0");
  struct avro_buf buf = AVRO_BUF_INIT;
#define SEND(topic, part, key, e)                                                                  \
  do {                                                                                             \
    assert_int_equal(avro_codec_encode_event(codec, &(e), &buf), CANARY_OK);                       \
    assert_int_equal(bus_produce(p, topic, part, key, strlen(key), buf.data, buf.len, 0),          \
                     CANARY_OK);                                                                   \
    assert_int_equal(bus_producer_flush(p, 30000), CANARY_OK);                                     \
  } while (0)
  snprintf(req.id, sizeof req.id, "%s-req-a", t.prefix);
  snprintf(req.rollout, sizeof req.rollout, "%s", a);
  SEND("canary.deploy", 0, a, req);

  pid_t pid = start_worker(t.conninfo, t.group, "onelive");
  wait_caught_up(t.conninfo, t.prefix, 1, 60000); /* a's entry hold is stored */
  snprintf(req.id, sizeof req.id, "%s-req-b", t.prefix);
  snprintf(req.rollout, sizeof req.rollout, "%s", b);
  snprintf(req.version, sizeof req.version, "2.1.0");
  SEND("canary.deploy", 1, b, req);

  bus_reader_t *r;
  assert_int_equal(bus_reader_new(kafka, "canary.dlq", true, NULL, NULL, &r), CANARY_OK);
  struct bus_msg m;
  bool caught_up = false, refused = false;
  char why[256];
  for (int64_t until = mono_ms() + 60000; !refused && mono_ms() < until;) {
    if (bus_reader_read(r, 200, &m, &caught_up) != CANARY_OK)
      continue;
    struct avro_dlq d;
    assert_int_equal(avro_codec_decode_dlq(codec, m.value, m.len, &d, why, sizeof why), CANARY_OK);
    if (d.key_len != strlen(b) || memcmp(d.key, b, d.key_len))
      continue; /* another test's */
    printf("    dead letter: %s [%d] offset %" PRId64 ": %s\n", d.topic, d.partition, d.offset,
           d.reason);
    assert_int_equal(d.partition, 1);
    assert_non_null(strstr(d.reason, "already has a live rollout"));
    assert_non_null(strstr(d.reason, a));
    refused = true;
  }
  assert_true(refused);
  bus_reader_close(r);
  PGconn *db = PQconnectdb(t.conninfo);
  assert_int_equal(PQstatus(db), CONNECTION_OK);
  char q[256];
  snprintf(q, sizeof q, "SELECT count(*) FROM rollouts WHERE service = '%s'", svc);
  assert_int_equal(q_count(db, q), 1);

  /* a rolled back (its command on a's partition): b, asked for again, is taken */
  struct event rb = {
      .type = EVENT_COMMAND, .action = COMMAND_ROLLBACK, .time_ms = 1767225600000 + 60000};
  snprintf(rb.id, sizeof rb.id, "%s-rb-a", t.prefix);
  snprintf(rb.rollout, sizeof rb.rollout, "%s", a);
  snprintf(rb.actor, sizeof rb.actor, "test");
  SEND("canary.commands", 0, a, rb);
  snprintf(q, sizeof q, "SELECT count(*) FROM rollouts WHERE id = '%s' AND state = 'rolled_back'",
           a);
  for (int64_t until = mono_ms() + 60000; q_count(db, q) == 0 && mono_ms() < until;)
    sleep_ms(200);
  assert_int_equal(q_count(db, q), 1);
  snprintf(req.id, sizeof req.id, "%s-req-b2", t.prefix);
  req.time_ms += 120000;
  SEND("canary.deploy", 1, b, req);
  snprintf(q, sizeof q, "SELECT count(*) FROM rollouts WHERE id = '%s' AND service = '%s'", b, svc);
  for (int64_t until = mono_ms() + 60000; q_count(db, q) == 0 && mono_ms() < until;)
    sleep_ms(200);
  assert_int_equal(q_count(db, q), 1);
#undef SEND
  PQfinish(db);
  avro_buf_free(&buf);
  bus_producer_destroy(p);
  avro_codec_destroy(codec);
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);
  run_end(&t);
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
  assert_int_equal(
      bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), garbage, sizeof garbage - 1, 0),
      CANARY_OK);
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
  assert_int_equal(
      bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), buf.data, buf.len, 1),
      CANARY_OK);
  /* Issue 10: poison times. A year ahead of the message's Kafka timestamp (now) is a clock or
   * unit error (offset 2); INT64_MAX, the deadlines' "none", made the worker spin for ever on
   * it without committing (offset 3). Both go to the dead letters, and the worker goes on. */
  struct event later = {
      .type = EVENT_CI_COMPLETED, .ok = true, .time_ms = wall_now_ms() + 365 * 24 * 3600000LL};
  snprintf(later.id, sizeof later.id, "%s-e2", t.prefix);
  snprintf(later.rollout, sizeof later.rollout, "%s", rollout);
  struct event never = later;
  never.time_ms = 1767225600123; /* a mark, patched to INT64_MAX below (the encoder refuses it) */
  snprintf(never.id, sizeof never.id, "%s-e3", t.prefix);
  struct avro_buf b2 = AVRO_BUF_INIT, b3 = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_event(codec, &later, &b2), CANARY_OK);
  assert_int_equal(avro_codec_encode_event(codec, &never, &b3), CANARY_OK);
  patch_long(&b3, never.time_ms, INT64_MAX);
  assert_int_equal(
      bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), b2.data, b2.len, 2), CANARY_OK);
  assert_int_equal(
      bus_produce(p, "canary.deploy", -1, rollout, strlen(rollout), b3.data, b3.len, 3), CANARY_OK);
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
  /* An outbox row Kafka can never take (a traffic split of the rollout, here) is set aside,
   * the rows after it are published, and on-call and #releases are told whose output is stuck
   * and why, on canary.notifications: a deployment waiting on canary.flags would not see it. */
  PGconn *db = PQconnectdb(t.conninfo);
  assert_int_equal(PQstatus(db), CONNECTION_OK);
  char stuck[128], insert[512];
  snprintf(stuck, sizeof stuck, "%s/f9", rollout);
  snprintf(insert, sizeof insert,
           "INSERT INTO outbox (shard, topic, key, message_id, payload) VALUES "
           "(0, 'canary.flags', 'svc', '%s', convert_to(repeat('x', 2000000), 'UTF8')), "
           "(0, 'canary.notifications', 'k', 'test/after', '\\x00'::bytea)",
           stuck);
  PGresult *res = PQexec(db, insert);
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  char query[512];
  snprintf(query, sizeof query,
           "SELECT (SELECT failure FROM outbox WHERE message_id = '%s'), "
           "(SELECT published_at IS NOT NULL FROM outbox WHERE message_id = 'test/after'), "
           "(SELECT count(*) FROM outbox WHERE message_id LIKE 'outbox/%%' "
           "AND published_at IS NOT NULL AND failure IS NULL)",
           stuck);
  bool moved_on = false;
  for (int64_t until = mono_ms() + 60000; !moved_on && mono_ms() < until; sleep_ms(200)) {
    res = PQexec(db, query);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    moved_on = !PQgetisnull(res, 0, 0) && !strcmp(PQgetvalue(res, 0, 1), "t") &&
               !strcmp(PQgetvalue(res, 0, 2), "2");
    if (moved_on)
      printf("    outbox row set aside: %s; its two notices published\n", PQgetvalue(res, 0, 0));
    PQclear(res);
  }
  PQfinish(db);
  assert_true(moved_on);
  assert_int_equal(stuck_notices_published(codec, rollout, stuck), 2);
  /* Another such row, and SIGTERM at once: the relay's last pass sets it aside, and its notices,
   * which join the outbox during that pass, are published before the worker exits — they
   * waited for the next start when the last pass fetched only once. */
  snprintf(stuck, sizeof stuck, "%s/f10", rollout);
  snprintf(insert, sizeof insert,
           "INSERT INTO outbox (shard, topic, key, message_id, payload) VALUES "
           "(0, 'canary.flags', 'svc', '%s', convert_to(repeat('x', 2000000), 'UTF8'))",
           stuck);
  db = PQconnectdb(t.conninfo);
  res = PQexec(db, insert);
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  PQfinish(db);
  /* the worker went on after them: it stops on request, and the rollout only holds */
  assert_int_equal(WEXITSTATUS(stop_worker(pid, SIGTERM)), 0);
  assert_int_equal(stored_transitions(t.conninfo, t.prefix), 1);
  assert_int_equal(stuck_notices_published(codec, rollout, stuck), 2);

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
    assert_int_equal(avro_codec_decode_dlq(codec, m.value, m.len, &d, err, sizeof err), CANARY_OK);
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
  snprintf(want, sizeof want,
           "'%s' was applied before with other content (digest %s first "
           "seen, %s this one)",
           crash.id, first, second);
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
    ev->metrics = (struct event_metrics){
        .variant = VARIANT_CANARY, .interval_ms = 60000, .dists = &dist, .n_dists = 1};
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
  for (int64_t until = mono_ms() + 60000;
       stored_transitions(t.conninfo, t.prefix) < 3 && mono_ms() < until;)
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
 * port cannot change under the worker); the Kafka outage stops the broker. What is produced while
 * the worker runs goes in order across topics, as docs/operations.md asks of a producer.
 *
 * It waits on progress, not on a deadline: a loaded machine makes everything slow, and a fixed
 * 180 s once hid a crash ("stored 29 of 322 transitions in 180 s": the worker had died after the
 * database outage, a shard left unloaded). Now a dead worker fails the test at once, naming its
 * log, and a live one fails it only when it stores nothing new for 3 minutes.
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
  produce_live_in_order(&ref, ref.n_events / 3, 2 * ref.n_events / 3);
  sleep_ms(2000);

  services("stop", "kafka");
  printf("    Kafka stopped\n");
  sleep_ms(3000);
  services("start", "kafka");
  int64_t back = mono_ms();
  long before = stored_transitions(t.conninfo, t.prefix);
  printf("    Kafka back (%ld of %zu transitions stored)\n", before, ref.n_decisions);
  produce_live_in_order(&ref, 2 * ref.n_events / 3, ref.n_events);

  /* Progress, not a deadline: fails only if no transition is stored for 3 minutes (or the
   * worker died: under load it once crashed after the PostgreSQL outage, which a fixed 180-s
   * deadline reported as a slow worker). */
  wait_caught_up(t.conninfo, t.prefix, ref.n_decisions, 180000);
  printf("    caught up %.1f s after Kafka was back\n", (double)(mono_ms() - back) / 1000);
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
      cmocka_unit_test(test_two_workers_share_and_take_over),
      cmocka_unit_test(test_malformed_message_to_dlq),
      cmocka_unit_test(test_one_live_rollout_per_service),
      cmocka_unit_test(test_reused_id_to_dlq),
      cmocka_unit_test(test_apply_failures_are_retried),
      cmocka_unit_test(test_survives_outages),
      cmocka_unit_test(test_metric_regression_halts),
      cmocka_unit_test(test_metric_windows_survive_restart),
      cmocka_unit_test(test_backlog_keeps_event_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
