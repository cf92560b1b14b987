/*
 * The content digest of an event (core/event_digest.c): the same event however it was written
 * (JSON or Avro, its time as milliseconds or RFC 3339, map entries in any order) has one
 * digest; a change to any field it carries gives another; and the values never change, since
 * the store keeps them across versions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"
#include "codec/event_json.h"
#include "core/event.h"

/* One event of every type, as canaryctl emit would send it. */
static const char *const EVENTS[] = {
    "{\"id\":\"e1\",\"rollout\":\"r1\",\"time\":1767225600000,\"type\":\"rollout.requested\","
    "\"service\":\"web\",\"version\":\"2.1.0\",\"baseline_version\":\"2.0.9\"}",
    "{\"id\":\"e2\",\"rollout\":\"r1\",\"time\":1767225601000,\"type\":\"ci.completed\",\"ok\":"
    "true}",
    "{\"id\":\"e3\",\"rollout\":\"r1\",\"time\":1767225602000,\"type\":\"deploy.completed\","
    "\"ok\":false}",
    "{\"id\":\"e4\",\"rollout\":\"r1\",\"time\":1767225603000,\"type\":\"health.checked\",\"ok\":"
    "true}",
    "{\"id\":\"e5\",\"rollout\":\"r1\",\"time\":1767225604000,\"type\":\"smoke.completed\","
    "\"ok\":false,\"passed\":18,\"failed\":2}",
    "{\"id\":\"e6\",\"rollout\":\"r1\",\"time\":1767225605000,\"type\":\"crash.reported\","
    "\"cohort\":\"internal_test\",\"count\":3}",
    "{\"id\":\"e7\",\"rollout\":\"r1\",\"time\":1767225606000,\"type\":\"incident.opened\","
    "\"incident\":\"I1\",\"severity\":2,\"kind\":\"security\"}",
    "{\"id\":\"e8\",\"rollout\":\"r1\",\"time\":1767225607000,\"type\":\"incident.resolved\","
    "\"incident\":\"I1\"}",
    "{\"id\":\"e9\",\"rollout\":\"r1\",\"time\":1767225608000,\"type\":\"feedback.received\","
    "\"cohort\":\"friendly_gp\",\"sentiment\":\"negative\"}",
    "{\"id\":\"e10\",\"rollout\":\"r1\",\"time\":1767225609000,\"type\":\"approval.granted\","
    "\"role\":\"support\",\"actor\":\"pat\"}",
    "{\"id\":\"e11\",\"rollout\":\"r1\",\"time\":1767225610000,\"type\":\"alert.raised\","
    "\"kind\":\"compliance\",\"detail\":\"audit log gap\"}",
    "{\"id\":\"e12\",\"rollout\":\"r1\",\"time\":1767225611000,\"type\":\"command\","
    "\"action\":\"pause\",\"force\":true,\"actor\":\"sre\",\"reason\":\"error budget\"}",
    "{\"id\":\"e13\",\"rollout\":\"r1\",\"time\":1767225612000,\"type\":\"flag.set\","
    "\"flag\":\"canary.cohort.beta.enabled\",\"value\":false,\"actor\":\"sre\"}",
    "{\"id\":\"e14\",\"rollout\":null,\"time\":1767225613000,\"type\":\"flag.set\","
    "\"flag\":\"system.canary.enabled\",\"value\":true,\"actor\":\"sre\"}",
    "{\"id\":\"e15\",\"rollout\":\"r1\",\"time\":1767225614000,\"type\":\"metrics\","
    "\"cohort\":\"internal_test\",\"variant\":\"canary\",\"interval_ms\":10000,"
    "\"counters\":{\"requests\":900,\"errors\":3},\"gauges\":{\"cpu_ratio\":0.25},"
    "\"distributions\":{\"latency_ms\":[20,35.5,120],\"size_kb\":[4]}}",
    "{\"id\":\"e16\",\"rollout\":\"r1\",\"time\":1767225615000,\"type\":\"diff.samples\","
    "\"cohort\":\"beta\",\"samples\":[{\"input\":1,\"stable\":2,\"canary\":2.5},"
    "{\"input\":3,\"stable\":4,\"canary\":4}]}",
};
#define N_EVENTS (sizeof EVENTS / sizeof EVENTS[0])

static uint64_t digest_of_json(const char *line) {
  struct event_scratch *scratch = event_scratch_new();
  struct event ev;
  char why[256];
  if (event_from_json(line, strlen(line), &ev, scratch, why, sizeof why) != CANARY_OK)
    fail_msg("%s: %s", line, why);
  uint64_t d = event_digest(&ev);
  event_scratch_destroy(scratch);
  return d;
}

/* The line as Avro (the encoder's output), decoded by both Avro paths: one digest for all. */
static void test_json_and_avro_agree(void **state) {
  (void)state;
  avro_codec_t *c;
  assert_int_equal(avro_codec_new(&c), CANARY_OK);
  struct event_scratch *scratch = event_scratch_new();
  struct avro_buf buf = AVRO_BUF_INIT;
  char why[256];
  for (size_t i = 0; i < N_EVENTS; i++) {
    struct event ev, back;
    assert_int_equal(event_from_json(EVENTS[i], strlen(EVENTS[i]), &ev, scratch, why, sizeof why),
                     CANARY_OK);
    uint64_t want = event_digest(&ev);
    assert_int_equal(avro_codec_encode_event(c, &ev, &buf), CANARY_OK);
    assert_int_equal(avro_codec_decode_event(c, buf.data, buf.len, &back, why, sizeof why),
                     CANARY_OK);
    if (event_digest(&back) != want)
      fail_msg("%s: Avro (fast path) gives another digest", EVENTS[i]);
    assert_int_equal(avro_codec_decode_event_generic(c, buf.data, buf.len, &back, why, sizeof why),
                     CANARY_OK);
    if (event_digest(&back) != want)
      fail_msg("%s: Avro (generic path) gives another digest", EVENTS[i]);
  }
  avro_buf_free(&buf);
  event_scratch_destroy(scratch);
  avro_codec_destroy(c);
}

struct pair {
  const char *a, *b;
};

/* Other spellings of one event: the same digest. */
static const struct pair SAME[] = {
    /* the time as RFC 3339, in another offset */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1767225601000,\"type\":\"ci.completed\",\"ok\":"
     "true}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":\"2026-01-01T01:00:01+01:00\","
     "\"type\":\"ci.completed\",\"ok\":true}"},
    /* keys in another order, whitespace */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"resume\","
     "\"actor\":\"sre\"}",
     "{ \"actor\" : \"sre\", \"action\":\"resume\", \"type\":\"command\", \"time\":1,"
     " \"rollout\":\"r1\", \"id\":\"x\" }"},
    /* an optional field at its default is the field left out */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\","
     "\"force\":false,\"reason\":\"\"}"},
    /* map entries in another order; a number written another way */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"baseline\",\"interval_ms\":10000,\"counters\":{\"requests\":900,\"errors\":3},"
     "\"distributions\":{\"a\":[1,2],\"b\":[3]}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"baseline\",\"interval_ms\":10000,\"counters\":{\"errors\":3.0,\"requests\":9e2}"
     ","
     "\"distributions\":{\"b\":[3],\"a\":[1.0,2]}}"},
    /* -0 is 0 */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"gauges\":{\"g\":0}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"gauges\":{\"g\":-0.0}}"},
    /* the id is not content: it is what the digest is kept under */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     "{\"id\":\"y\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}"},
};

/* One field changed: another digest. */
static const struct pair OTHER[] = {
    /* the time: the same claim at another moment is another claim */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":2,\"type\":\"ci.completed\",\"ok\":true}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":false}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     "{\"id\":\"x\",\"rollout\":\"r2\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"ci.completed\",\"ok\":true}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"health.checked\",\"ok\":true}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"rollback\"}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\","
     "\"force\":true}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\","
     "\"reason\":\"a\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"command\",\"action\":\"pause\","
     "\"actor\":\"a\"}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"incident.opened\",\"incident\":\"I1\","
     "\"severity\":2,\"kind\":\"bug\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"incident.opened\",\"incident\":\"I1\","
     "\"severity\":2,\"kind\":\"security\"}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"incident.opened\",\"incident\":\"I1\","
     "\"severity\":2,\"kind\":\"bug\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"incident.opened\",\"incident\":\"I1\","
     "\"severity\":3,\"kind\":\"bug\"}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"smoke.completed\",\"ok\":true,"
     "\"passed\":20}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"smoke.completed\",\"ok\":true,"
     "\"failed\":20}"},
    /* a counter's value, a counter for a gauge, a distribution's order, one value more */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"errors\":3}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"errors\":4}}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"errors\":3}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"gauges\":{\"errors\":3}}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"errors\":3}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"baseline\",\"interval_ms\":10000,\"counters\":{\"errors\":3}}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"distributions\":{\"l\":[1,2]}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"distributions\":{\"l\":[2,1]}}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"distributions\":{\"l\":[1,2]}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"distributions\":{\"l\":[1,2,2]}}"},
    /* two entries trading values is not the same map */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"a\":1,\"b\":2}}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"metrics\",\"cohort\":\"beta\","
     "\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"a\":2,\"b\":1}}"},
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"diff.samples\",\"cohort\":\"beta\","
     "\"samples\":[{\"input\":1,\"stable\":2,\"canary\":3}]}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"diff.samples\",\"cohort\":\"beta\","
     "\"samples\":[{\"input\":1,\"stable\":3,\"canary\":2}]}"},
    /* a string's bytes moved from one field to the next */
    {"{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"rollout.requested\","
     "\"service\":\"ab\",\"version\":\"c\",\"baseline_version\":\"0\"}",
     "{\"id\":\"x\",\"rollout\":\"r1\",\"time\":1,\"type\":\"rollout.requested\","
     "\"service\":\"a\",\"version\":\"bc\",\"baseline_version\":\"0\"}"},
};

static void test_spellings_share_a_digest(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof SAME / sizeof SAME[0]; i++)
    if (digest_of_json(SAME[i].a) != digest_of_json(SAME[i].b))
      fail_msg("different digests for one event:\n  %s\n  %s", SAME[i].a, SAME[i].b);
}

static void test_other_content_other_digest(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof OTHER / sizeof OTHER[0]; i++)
    if (digest_of_json(OTHER[i].a) == digest_of_json(OTHER[i].b))
      fail_msg("one digest for different events:\n  %s\n  %s", OTHER[i].a, OTHER[i].b);
  /* and every event of the list differs from every other */
  for (size_t i = 0; i < N_EVENTS; i++)
    for (size_t j = i + 1; j < N_EVENTS; j++)
      assert_int_not_equal(digest_of_json(EVENTS[i]), digest_of_json(EVENTS[j]));
}

/*
 * The stored format: these values were computed when digests were introduced and must never
 * change — an upgraded canaryd compares them with the digests its predecessor stored, and a
 * changed one would dead-letter every redelivery as a conflict for two days. (When they were
 * pinned, a second implementation written from event_digest.c's description, in Python, gave
 * the same values for the ci.completed, global flag.set and metrics events.)
 */
static void test_digests_never_change(void **state) {
  (void)state;
  static const char *const want[N_EVENTS] = {
      "e8a8b8e8804ef999", "93295bd04102ee45", "c566aa42dde0bec4", "1db8d9932276a205",
      "bab387de9f038b4c", "6d79312576cd82cc", "1ce07c87247b79d6", "d3d4bf5c4eb7bf57",
      "bd73a7c48182f8c0", "4f71e98ee7ab1180", "24b6217cdbfaa5ca", "97f31d4417e90390",
      "1a0f6cdcd03dd556", "de611d47ffcf36ee", "8b253f27884ea3b3", "970f0131d11bab86",
  };
  int wrong = 0;
  for (size_t i = 0; i < N_EVENTS; i++) {
    char hex[EVENT_DIGEST_HEX_LEN];
    event_digest_hex(digest_of_json(EVENTS[i]), hex);
    if (strcmp(hex, want[i])) {
      printf("event %zu: digest %s, pinned %s\n", i, hex, want[i]);
      wrong++;
    }
  }
  assert_int_equal(wrong, 0);
}

static void test_hex_and_unknown(void **state) {
  (void)state;
  char hex[EVENT_DIGEST_HEX_LEN];
  event_digest_hex(0x00ab0000000000cdULL, hex);
  assert_string_equal(hex, "00ab0000000000cd");
  event_digest_hex(UINT64_MAX, hex);
  assert_string_equal(hex, "ffffffffffffffff");
  struct event empty = {0};
  assert_int_not_equal(event_digest(&empty), EVENT_DIGEST_UNKNOWN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_and_avro_agree),
      cmocka_unit_test(test_spellings_share_a_digest),
      cmocka_unit_test(test_other_content_other_digest),
      cmocka_unit_test(test_digests_never_change),
      cmocka_unit_test(test_hex_and_unknown),
  };
  return cmocka_run_group_tests_name("event_digest", tests, NULL, NULL);
}
