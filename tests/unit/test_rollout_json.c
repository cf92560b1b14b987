/* rollout_json: every field of a rollout and the kill switches survive JSON, bad input doesn't. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "core/expr.h"
#include "codec/rollout_json.h"
#include "core/rollout.h"

/* A rollout with every field away from its zero value (zero-initialised first, like the core). */
static void full_rollout(struct rollout *r, int n_incidents) {
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "checkout-2.1.0 \"quoted\" \\ ünïcode \t");
  snprintf(r->service, sizeof r->service, "checkout");
  snprintf(r->version, sizeof r->version, "2.1.0");
  snprintf(r->baseline_version, sizeof r->baseline_version, "2.0.9");
  r->state = ROLLOUT_PAUSED;
  r->resume_to = ROLLOUT_RUNNING;
  r->stage = 2;
  r->requested_ms = 1767225600000;
  r->clock_ms = 1767229200123;
  r->stage_started_ms = 1767226000000;
  r->stage_max_at_ms = INT64_MAX;
  r->exit_hold_reported = true;
  r->prev_stage_passed = true;
  r->force_promoted = true;
  r->rolled_back_ms = 1767229000000;
  r->rollback_verify = ROLLBACK_VERIFY_VERIFIED;
  r->rollback_verified_ms = 1767229100000;
  r->seq = 17;
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
  for (int i = 0; i < n_incidents; i++) {
    struct rollout_incident *in = &r->incidents[i];
    snprintf(in->id, sizeof in->id, "INC-%d", 1000 + i);
    in->severity = 1 + i % 4;
    in->kind = (enum incident_kind)(i % INCIDENT_KIND_COUNT);
    in->opened_ms = 1767226100000 + i;
    in->open = i % 2 == 0;
  }
  r->n_incidents = n_incidents;
  r->approvals = (1u << APPROVAL_PRODUCT_OWNER) | (1u << APPROVAL_DOCS);
  snprintf(r->approvers[APPROVAL_PRODUCT_OWNER], EVENT_NAME_MAX, "alice");
  snprintf(r->approvers[APPROVAL_DOCS], EVENT_NAME_MAX, "dora");
  r->breaker_errors = 2;
  r->breaker_open = true;
  r->paged = true;
  r->flags.canary_enabled = true;
  for (int i = 0; i < PLAN_MAX_STAGES; i++)
    r->flags.cohort_enabled[i] = i % 2 == 1;
  r->exposure_percent = 0.1 + 0.2; /* 0.30000000000000004: needs all 17 digits */
  r->traffic_sig = 0xdeadbeefu;
  r->metric_events = 123456789012345;
  r->last_metric_ms = -1;
  r->readings[0] = (struct rollout_reading){.kind = READING_RULE,
                                            .stage = 1,
                                            .truth = EXPR_TRUE,
                                            .state = EXPR_FOR_PENDING,
                                            .canary = 0.05,
                                            .baseline = 0.001,
                                            .threshold = 0.01,
                                            .window_ms = 300000,
                                            .n = 4200,
                                            .min_n = 100,
                                            .at_ms = 1767229200000,
                                            .since_ms = 1767229100000,
                                            .log_e = 2.5,
                                            .log_needed = 7.0}; /* on evidence */
  snprintf(r->readings[0].name, sizeof r->readings[0].name, "error_rate");
  r->readings[1] = (struct rollout_reading){
      .kind = READING_EXIT,
      .stage = 2,
      .truth = EXPR_INSUFFICIENT,
      .state = EXPR_FOR_INACTIVE,
      .canary = NAN,
      .baseline = NAN,
      .threshold = 1.1,
      .window_ms = 86400000,
      .n = 3,
      .min_n = 50,
      .at_ms = 1767229200000,
      .since_ms = 0,
      .log_e = NAN,
      .log_needed = NAN}; /* an estimate: the two are left out, read back NaN */
  snprintf(r->readings[1].name, sizeof r->readings[1].name, "latency_p75");
  r->n_readings = 2;
  r->checked[0] = (struct rollout_checked){.by = CHECKED_BY_EVENT, .at_ms = 1767226000100};
  snprintf(r->checked[0].item, sizeof r->checked[0].item, "deploy_canary");
  snprintf(r->checked[0].evidence, sizeof r->checked[0].evidence, "e-deploy-1");
  snprintf(r->checked[0].actor, sizeof r->checked[0].actor, "deploy.completed");
  r->checked[1] = (struct rollout_checked){.by = CHECKED_BY_DECISION, .at_ms = 1767229200000};
  snprintf(r->checked[1].item, sizeof r->checked[1].item, "internal_test_decision");
  snprintf(r->checked[1].evidence, sizeof r->checked[1].evidence, "checkout-2.1.0/7");
  snprintf(r->checked[1].actor, sizeof r->checked[1].actor, "canaryd");
  snprintf(r->checked[1].note, sizeof r->checked[1].note, "proceed");
  r->checked[2] = (struct rollout_checked){.by = CHECKED_BY_PERSON, .at_ms = 1767229300000};
  snprintf(r->checked[2].item, sizeof r->checked[2].item, "prepare_ga_announcement");
  snprintf(r->checked[2].evidence, sizeof r->checked[2].evidence, "cmd-42");
  snprintf(r->checked[2].actor, sizeof r->checked[2].actor, "alice");
  memset(r->checked[2].note, 'n', sizeof r->checked[2].note - 1); /* the field's capacity */
  r->n_checked = 3;
}

static void write_doc(const struct rollout *r, struct jbuf *out) {
  jbuf_init(out);
  rollout_json_write(r, out);
  assert_false(out->oom);
}

static void assert_round_trip(const struct rollout *r) {
  struct jbuf a, b;
  write_doc(r, &a);
  struct rollout back;
  memset(&back, 0xA5, sizeof back); /* the reader must zero what it does not set */
  char why[256] = "";
  int rc = rollout_json_read(a.data, a.len, &back, why, sizeof why);
  if (rc)
    fail_msg("read failed: %s\n%s", why, a.data);
  assert_memory_equal(r, &back, sizeof back);
  write_doc(&back, &b); /* and the bytes are stable */
  assert_string_equal(a.data, b.data);
  jbuf_free(&a);
  jbuf_free(&b);
}

static void test_round_trip_every_field(void **state) {
  (void)state;
  struct rollout r;
  full_rollout(&r, 3);
  assert_round_trip(&r);
}

static void test_round_trip_zero(void **state) {
  (void)state;
  struct rollout r;
  memset(&r, 0, sizeof r);
  assert_round_trip(&r);
}

static void test_round_trip_all_incidents(void **state) {
  (void)state;
  struct rollout r;
  full_rollout(&r, ROLLOUT_MAX_INCIDENTS);
  assert_round_trip(&r);
}

static void test_round_trip_numbers(void **state) {
  (void)state;
  struct rollout r;
  full_rollout(&r, 1);
  r.exposure_percent = -0.0;
  r.requested_ms = INT64_MIN;
  r.clock_ms = INT64_MAX;
  r.breaker_errors = -2147483647 - 1;
  r.traffic_sig = 0xffffffffu;
  assert_round_trip(&r);
  r.exposure_percent = 1e-300;
  assert_round_trip(&r);
  r.exposure_percent = 100;
  assert_round_trip(&r);
}

static void test_round_trip_long_strings(void **state) {
  (void)state;
  struct rollout r;
  full_rollout(&r, 1);
  memset(r.version, 'v', sizeof r.version - 1); /* exactly the field's capacity */
  memset(r.approvers[APPROVAL_SUPPORT], 's', EVENT_NAME_MAX - 1);
  r.approvals |= 1u << APPROVAL_SUPPORT;
  memset(r.service, 0, sizeof r.service); /* bytes after the NUL are not serialised */
  snprintf(r.service, sizeof r.service, "ctl\x01\x1f\x7f");
  assert_round_trip(&r);
}

/* Documents stored before readings existed load, with none. */
static void test_readings_are_optional(void **state) {
  (void)state;
  struct rollout r, back;
  full_rollout(&r, 1);
  struct jbuf a;
  write_doc(&r, &a);
  char *at = strstr(a.data, ",\"readings\":"), *next = strstr(a.data, ",\"checked\":");
  assert_non_null(at);
  assert_non_null(next);
  memmove(at, next, strlen(next) + 1); /* the readings member out, the rest kept */
  char why[256] = "";
  assert_int_equal(rollout_json_read(a.data, strlen(a.data), &back, why, sizeof why), CANARY_OK);
  assert_int_equal(back.n_readings, 0);
  assert_int_equal(back.metric_events, r.metric_events);
  jbuf_free(&a);
}

/* A version 1 document (stored before the checklist) loads with nothing ticked; a version 2
 * document must have its checklist, and a later version is refused, by name. */
static void test_version_1_documents_load(void **state) {
  (void)state;
  struct rollout r, back;
  full_rollout(&r, 2);
  struct jbuf a;
  write_doc(&r, &a);
  char *at = strstr(a.data, ",\"checked\":");
  assert_non_null(at);
  strcpy(at, "}");
  char why[256] = "";
  assert_int_equal(rollout_json_read(a.data, strlen(a.data), &back, why, sizeof why),
                   CANARY_EINVALID); /* v2 without it: a damaged document */
  assert_non_null(strstr(why, "checked"));
  at = strstr(a.data, ",\"force_promoted\":true");
  assert_non_null(at);
  memmove(at, at + strlen(",\"force_promoted\":true"),
          strlen(at + strlen(",\"force_promoted\":true")) + 1);
  /* Documents from before the rollback's verification: none, as for a rollout never rolled back. */
  const char *tail = ",\"rolled_back_ms\":1767229000000,\"rollback_verify\":2,"
                     "\"rollback_verified_ms\":1767229100000";
  at = strstr(a.data, tail);
  assert_non_null(at);
  memmove(at, at + strlen(tail), strlen(at + strlen(tail)) + 1);
  a.data[5] = '1';
  assert_int_equal(rollout_json_read(a.data, strlen(a.data), &back, why, sizeof why), CANARY_OK);
  assert_int_equal(back.rollback_verify, ROLLBACK_VERIFY_NONE);
  assert_int_equal(back.rolled_back_ms, 0);
  assert_int_equal(back.n_checked, 0);
  assert_false(back.force_promoted);
  assert_int_equal(back.n_incidents, 2);
  assert_int_equal(back.seq, r.seq);
  a.data[5] = '3';
  assert_int_equal(rollout_json_read(a.data, strlen(a.data), &back, why, sizeof why),
                   CANARY_EINVALID);
  assert_non_null(strstr(why, "reads 1 to 2"));
  jbuf_free(&a);
}

static void test_document_shape(void **state) {
  (void)state;
  struct rollout r;
  full_rollout(&r, 1);
  struct jbuf a;
  write_doc(&r, &a);
  assert_memory_equal(a.data, "{\"v\":2,\"id\":", 12);
  assert_non_null(strstr(a.data, ",\"checked\":[{\"item\":\"deploy_canary\",\"by\":\"event\","
                                 "\"at_ms\":1767226000100,\"evidence\":\"e-deploy-1\","
                                 "\"actor\":\"deploy.completed\",\"note\":\"\"},"));
  assert_non_null(strstr(a.data, "\"state\":\"paused\""));
  assert_non_null(strstr(a.data, "\"deploy\":\"failed\""));
  assert_non_null(strstr(a.data, "\"approvals\":[\"product_owner\",\"docs\"]"));
  assert_non_null(strstr(a.data, "\"kind\":\"bug\""));
  assert_non_null(strstr(a.data, "\"exposure_percent\":0.30000000000000004"));
  assert_non_null(strstr(a.data,
                         "\"readings\":[{\"name\":\"error_rate\",\"kind\":\"rule\",\"stage\":1,"
                         "\"truth\":\"true\",\"state\":\"pending\",\"canary\":0.05,"));
  assert_non_null(strstr(a.data, "\"truth\":\"insufficient\",\"state\":\"inactive\","
                                 "\"canary\":null,\"baseline\":null,\"threshold\":1.1,"));
  assert_null(strchr(a.data, '\n'));
  jbuf_free(&a);
}

static void test_flags_round_trip(void **state) {
  (void)state;
  struct flags f, back;
  memset(&f, 0, sizeof f);
  f.canary_enabled = true;
  f.cohort_enabled[1] = f.cohort_enabled[PLAN_MAX_STAGES - 1] = true;
  struct jbuf a;
  jbuf_init(&a);
  flags_json_write(&f, &a);
  assert_string_equal(a.data, "{\"v\":1,\"canary_enabled\":true,"
                              "\"cohort_enabled\":[false,true,false,false,false,true]}");
  memset(&back, 0xA5, sizeof back);
  assert_int_equal(flags_json_read(a.data, a.len, &back, NULL, 0), CANARY_OK);
  assert_memory_equal(&f, &back, sizeof f);
  jbuf_free(&a);
}

/* ---- malformed documents: (replace this, by that) in a valid document -> rc, message --------- */

struct bad_case {
  const char *from, *to;
  int rc;
  const char *why; /* substring of the message */
};

static const struct bad_case bad_rollouts[] = {
    {"{\"v\":2,", "{\"v\":3,", CANARY_EINVALID, "v: unsupported rollout document version"},
    {"{\"v\":2,", "{\"v\":0,", CANARY_EINVALID, "v: unsupported rollout document version"},
    {"{\"v\":2,", "{", CANARY_EINVALID, "v: missing"},
    {"{\"v\":2,", "{\"v\":\"2\",", CANARY_EINVALID, "v: unsupported"},
    {"\"by\":\"person\"", "\"by\":\"robot\"", CANARY_EINVALID,
     "checked.by: expected event, decision or person, got 'robot'"},
    {",\"note\":\"proceed\"", "", CANARY_EINVALID, "a checked item needs item, by"},
    {"\"clock_ms\":1767229200123,", "", CANARY_EINVALID, "clock_ms: missing"},
    {"\"last_metric_ms\":-1", "\"last_metric_ms\":-1,\"bogus\":0", CANARY_EINVALID,
     "unknown field 'bogus'"},
    {"\"stage\":2", "\"stage\":\"2\"", CANARY_EINVALID, "stage: expected number, got string"},
    {"\"stage\":2", "\"stage\":6", CANARY_EINVALID, "stage: 6 is out of range (0..5)"},
    {"\"stage\":2", "\"stage\":-1", CANARY_EINVALID, "stage: -1 is out of range"},
    {"\"seq\":17", "\"seq\":17.5", CANARY_EINVALID, "seq: expected an integer"},
    {"\"seq\":17", "\"seq\":1e3", CANARY_EINVALID, "seq: expected an integer"},
    {"\"seq\":17", "\"seq\":null", CANARY_EINVALID, "seq: expected number, got null"},
    {"\"breaker_errors\":2", "\"breaker_errors\":2147483648", CANARY_EINVALID,
     "breaker_errors: 2147483648 is out of range"},
    {"\"traffic_sig\":3735928559", "\"traffic_sig\":-1", CANARY_EINVALID,
     "traffic_sig: -1 is out of range"},
    {"\"state\":\"paused\"", "\"state\":\"flying\"", CANARY_EINVALID,
     "state: unknown state 'flying'"},
    {"\"ci\":\"ok\"", "\"ci\":\"maybe\"", CANARY_EINVALID, "ci: expected unknown, ok or failed"},
    {"\"ci\":\"ok\"", "\"ci\":true", CANARY_EINVALID, "ci: expected string, got boolean"},
    {"\"breaker_open\":true", "\"breaker_open\":1", CANARY_EINVALID,
     "breaker_open: expected boolean"},
    {"\"service\":\"checkout\"",
     "\"service\":\"0123456789012345678901234567890123456789012345678901234567890123\"",
     CANARY_EINVALID, "service: longer than 63 bytes"},
    {"\"service\":\"checkout\"", "\"service\":\"check\\u0000out\"", CANARY_EINVALID,
     "service: must not contain NUL"},
    {"\"crashes\":[1,2,3,4,5,6]", "\"crashes\":[1,2,3,4,5]", CANARY_EINVALID,
     "crashes: expected 6 items, got 5"},
    {"\"crashes\":[1,2,3,4,5,6]", "\"crashes\":[1,2,3,4,5,\"6\"]", CANARY_EINVALID,
     "crashes: expected number"},
    {"\"approvals\":[\"product_owner\",\"docs\"]", "\"approvals\":[\"ceo\"]", CANARY_EINVALID,
     "approvals: unknown role 'ceo'"},
    {"\"approvers\":{\"product_owner\":\"alice\",", "\"approvers\":{\"ceo\":\"alice\",",
     CANARY_EINVALID, "approvers: unknown role 'ceo'"},
    {"\"kind\":\"bug\"", "\"kind\":\"meteor\"", CANARY_EINVALID, "unknown incident kind 'meteor'"},
    {",\"open\":true}", "}", CANARY_EINVALID, "an incident needs id, severity, kind"},
    {"\"cohort_enabled\":[false,true,false,true,false,true]",
     "\"cohort_enabled\":[false,true,false,true,false]", CANARY_EINVALID,
     "cohort_enabled: expected 6 items"},
    {"\"flags\":{\"canary_enabled\":true,", "\"flags\":{", CANARY_EINVALID,
     "canary_enabled: missing"},
    {"nnnn\"}]}", "nnnn\"}]} x", CANARY_EPARSE, ""},
    {"nnnn\"}]}", "nnnn\"}]", CANARY_EPARSE, ""},
    {"\"truth\":\"true\"", "\"truth\":\"maybe\"", CANARY_EINVALID,
     "readings.truth: unknown value 'maybe'"},
    {"\"kind\":\"rule\"", "\"kind\":\"wish\"", CANARY_EINVALID,
     "readings.kind: unknown value 'wish'"},
    {",\"since_ms\":0}", "}", CANARY_EINVALID, "a reading needs every one of its fields"},
    {"\"canary\":0.05", "\"canary\":\"high\"", CANARY_EINVALID, "readings.canary: expected number"},
    {"\"n\":4200", "\"n\":4200,\"extra\":1", CANARY_EINVALID, "unknown field 'extra'"},
    {"\"seq\":17", "\"seq\":17,\"seq\":18", CANARY_EPARSE, "duplicate"},
    {"\"rollback_verify\":2", "\"rollback_verify\":4", CANARY_EINVALID,
     "rollback_verify: unknown value"},
};

static char *replace(const char *doc, const char *from, const char *to) {
  const char *at = strstr(doc, from);
  if (!at)
    fail_msg("'%s' is not in the document %s", from, doc);
  size_t n = strlen(doc) - strlen(from) + strlen(to);
  char *out = malloc(n + 1);
  assert_non_null(out);
  size_t head = (size_t)(at - doc);
  memcpy(out, doc, head);
  strcpy(out + head, to);
  strcat(out, at + strlen(from));
  return out;
}

static void test_rejects_malformed_rollouts(void **state) {
  (void)state;
  struct rollout r;
  full_rollout(&r, 1);
  struct jbuf a;
  write_doc(&r, &a);
  for (size_t i = 0; i < sizeof bad_rollouts / sizeof bad_rollouts[0]; i++) {
    const struct bad_case *c = &bad_rollouts[i];
    char *doc = replace(a.data, c->from, c->to);
    char why[256] = "";
    struct rollout back;
    memset(&back, 0xA5, sizeof back);
    int rc = rollout_json_read(doc, strlen(doc), &back, why, sizeof why);
    if (rc != c->rc || !strstr(why, c->why))
      fail_msg("case %zu (%s -> %s): rc %d, why '%s'; expected rc %d, '%s'", i, c->from, c->to, rc,
               why, c->rc, c->why);
    struct rollout zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&back, &zero, sizeof zero); /* nothing half-read is left behind */
    free(doc);
  }
  jbuf_free(&a);
}

static void test_rejects_other_documents(void **state) {
  (void)state;
  struct rollout r;
  char why[256];
  assert_int_equal(rollout_json_read("", 0, &r, why, sizeof why), CANARY_EPARSE);
  assert_int_equal(rollout_json_read("[]", 2, &r, why, sizeof why), CANARY_EINVALID);
  assert_non_null(strstr(why, "a rollout document is an object, got array"));
  assert_int_equal(rollout_json_read("{\"v\":1}", 7, &r, why, sizeof why), CANARY_EINVALID);
  assert_non_null(strstr(why, "id: missing"));
  /* Too many incidents. */
  struct rollout full;
  full_rollout(&full, ROLLOUT_MAX_INCIDENTS);
  struct jbuf a;
  write_doc(&full, &a);
  char *doc = replace(a.data, "\"incidents\":[",
                      "\"incidents\":[{\"id\":\"X\",\"severity\":1,\"kind\":\"bug\","
                      "\"opened_ms\":0,\"open\":true},");
  assert_int_equal(rollout_json_read(doc, strlen(doc), &r, why, sizeof why), CANARY_EINVALID);
  assert_non_null(strstr(why, "33 incidents, at most 32"));
  free(doc);
  jbuf_free(&a);
}

static void test_rejects_malformed_flags(void **state) {
  (void)state;
  static const char *const docs[] = {
      "{\"canary_enabled\":true,\"cohort_enabled\":[true,true,true,true,true,true]}",
      "{\"v\":1,\"cohort_enabled\":[true,true,true,true,true,true]}",
      "{\"v\":1,\"canary_enabled\":true,\"cohort_enabled\":[true,true]}",
      "{\"v\":1,\"canary_enabled\":\"yes\",\"cohort_enabled\":[true,true,true,true,true,true]}",
      ("{\"v\":1,\"canary_enabled\":true,\"cohort_enabled\":[true,true,true,true,true,true],"
       "\"x\":1}"), /* one string on two lines (clang's -Wstring-concatenation) */
      "[true]",
      "{\"v\":1,",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    struct flags f;
    char why[256] = "";
    int rc = flags_json_read(docs[i], strlen(docs[i]), &f, why, sizeof why);
    if (rc == CANARY_OK || !why[0])
      fail_msg("flags document %zu was accepted: %s", i, docs[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_every_field),
      cmocka_unit_test(test_round_trip_zero),
      cmocka_unit_test(test_round_trip_all_incidents),
      cmocka_unit_test(test_round_trip_numbers),
      cmocka_unit_test(test_round_trip_long_strings),
      cmocka_unit_test(test_document_shape),
      cmocka_unit_test(test_readings_are_optional),
      cmocka_unit_test(test_version_1_documents_load),
      cmocka_unit_test(test_flags_round_trip),
      cmocka_unit_test(test_rejects_malformed_rollouts),
      cmocka_unit_test(test_rejects_other_documents),
      cmocka_unit_test(test_rejects_malformed_flags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
