/* canaryd notify's sinks: the request bodies in each API's shape, routing, back-off, config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/notify.h"
#include "app/notify_sink.h"
#include "codec/event_json.h"
#include "codec/json.h"

static struct notify_item item(enum notify_channel ch, enum notify_severity sev,
                               const char *rollout) {
  struct notify_item it = {0};
  struct notification *n = &it.n;
  snprintf(n->id, sizeof n->id, "%s/n3", rollout);
  snprintf(n->rollout, sizeof n->rollout, "%s", rollout);
  n->time_ms = 1767229200000; /* 2026-01-01T01:00:00Z */
  n->channel = ch;
  snprintf(n->target, sizeof n->target, "#releases");
  n->severity = sev;
  snprintf(n->title, sizeof n->title, "web 2.1.0 halted at friendly_gp");
  snprintf(n->text, sizeof n->text, "Error rate 2.5%% > 1%% limit (baseline 0.4%%)");
  snprintf(n->decision_id, sizeof n->decision_id, "%s/3", rollout);
  return it;
}

/* Parse b as JSON (the test fails if it is not) into doc. */
static const struct json_value *parse(struct json_doc *doc, const struct jbuf *b) {
  const struct json_value *root = NULL;
  struct json_error err;
  if (json_parse(doc, b->data, b->len, &root, &err) != CANARY_OK)
    fail_msg("not JSON: %.*s", (int)b->len, b->data);
  return root;
}

static const char *str(const struct json_value *v, const char *key) {
  const struct json_value *x = json_get(v, key);
  assert_non_null(x);
  assert_int_equal(x->type, JSON_STRING);
  return x->str;
}

/* The contract's Block Kit payload, with the evidence and the commands to act after it. */
static void test_slack_body(void **state) {
  (void)state;
  struct notify_item it = item(NOTIFY_RELEASES, NOTIFY_SEV_CRITICAL, "web<!channel>`2");
  struct jbuf slack, body;
  jbuf_init(&slack);
  jbuf_init(&body);
  notification_slack_payload(&it.n, &slack);
  jbuf_putc(&slack, '\0');
  it.slack = slack.data;
  struct decision d = {0};
  for (int i = 0; i < 12; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    decision_add_num(&d, key, i + 0.5);
  }
  decision_add_str(&d, "rule", "error<rate>");
  it.decision = &d;
  notify_slack_body(&it, &body);
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root = parse(&doc, &body), *blocks = json_get(root, "blocks");
  assert_non_null(blocks);
  assert_int_equal(blocks->type, JSON_ARRAY);
  assert_int_equal(blocks->n_items, 6); /* header, section, context, 2 evidence, commands */
  assert_string_equal(str(&blocks->items[0], "type"), "header");
  assert_int_equal(json_get(&blocks->items[3], "fields")->n_items, 10); /* Slack's limit */
  assert_int_equal(json_get(&blocks->items[4], "fields")->n_items, 3);
  assert_string_equal(str(&json_get(&blocks->items[3], "fields")->items[0], "text"), "*k0:* 0.5");
  assert_string_equal(str(&json_get(&blocks->items[4], "fields")->items[2], "text"),
                      "*rule:* error&lt;rate&gt;");
  const char *act = str(json_get(&blocks->items[5], "text"), "text");
  /* the name cannot ping anyone or close its code span */
  assert_non_null(strstr(act, "`canaryctl rollback web&lt;!channel&gt;'2`"));
  assert_null(strstr(act, "<!channel>"));
  json_doc_free(&doc);
  /* without a decision: the commands only */
  it.decision = NULL;
  jbuf_reset(&body);
  notify_slack_body(&it, &body);
  json_doc_init(&doc);
  root = parse(&doc, &body);
  assert_int_equal(json_get(root, "blocks")->n_items, 4);
  json_doc_free(&doc);
  jbuf_free(&slack);
  jbuf_free(&body);
}

static void test_pagerduty_body(void **state) {
  (void)state;
  struct notify_item it = item(NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, "web-2.1.0");
  memset(it.n.text, 'x', sizeof it.n.text - 1); /* the summary is cut to PagerDuty's 1024 */
  struct jbuf b;
  jbuf_init(&b);
  notify_pagerduty_body("R0UT1NG", NOTIFY_OP_TRIGGER, &it, &b);
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root = parse(&doc, &b), *p = json_get(root, "payload");
  assert_string_equal(str(root, "routing_key"), "R0UT1NG");
  assert_string_equal(str(root, "event_action"), "trigger");
  assert_string_equal(str(root, "dedup_key"), "web-2.1.0");
  assert_string_equal(str(p, "severity"), "critical");
  assert_string_equal(str(p, "source"), "canaryd");
  assert_string_equal(str(p, "timestamp"), "2026-01-01T01:00:00.000Z");
  assert_true(strlen(str(p, "summary")) <= 1023);
  assert_string_equal(str(json_get(p, "custom_details"), "to_roll_back"),
                      "canaryctl rollback web-2.1.0");
  json_doc_free(&doc);
  jbuf_reset(&b);
  notify_pagerduty_body("R0UT1NG", NOTIFY_OP_RESOLVE, &it, &b);
  json_doc_init(&doc);
  root = parse(&doc, &b);
  assert_string_equal(str(root, "event_action"), "resolve");
  assert_string_equal(str(root, "dedup_key"), "web-2.1.0");
  assert_int_equal(root->n_members, 3);
  json_doc_free(&doc);
  jbuf_free(&b);
}

static void test_statuspage_body(void **state) {
  (void)state;
  struct notify_item it = item(NOTIFY_STATUS_PAGE, NOTIFY_SEV_WARNING, "web-2.1.0");
  struct jbuf b;
  jbuf_init(&b);
  notify_statuspage_body(NOTIFY_OP_CREATE, &it, &b);
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *inc = json_get(parse(&doc, &b), "incident");
  assert_string_equal(str(inc, "name"), "web 2.1.0 halted at friendly_gp");
  assert_string_equal(str(inc, "status"), "investigating");
  assert_string_equal(str(inc, "impact_override"), "major");
  json_doc_free(&doc);
  jbuf_reset(&b);
  notify_statuspage_body(NOTIFY_OP_RESOLVE, &it, &b);
  json_doc_init(&doc);
  inc = json_get(parse(&doc, &b), "incident");
  assert_string_equal(str(inc, "status"), "resolved");
  assert_null(json_get(inc, "name"));
  json_doc_free(&doc);
  jbuf_free(&b);
}

/* A title cannot add a header (CR LF), and one beyond ASCII is an RFC 2047 encoded-word. */
static void test_mail_message(void **state) {
  (void)state;
  struct notify_item it = item(NOTIFY_EXECUTIVE, NOTIFY_SEV_CRITICAL, "web-2.1.0");
  snprintf(it.n.title, sizeof it.n.title, "Sev 1\r\nBcc: all@example.com");
  struct notify_endpoints ep = {.smtp_from = "canaryd@example.com"};
  struct jbuf b;
  jbuf_init(&b);
  notify_mail_message(&ep, "exec@example.com", &it, 1767229200000, &b);
  jbuf_putc(&b, '\0');
  const char *body_at = strstr(b.data, "\r\n\r\n");
  assert_non_null(body_at);
  const char *bcc = strstr(b.data, "\r\nBcc:"); /* in the body (plain text) it is harmless */
  assert_true(!bcc || bcc >= body_at);
  assert_non_null(strstr(b.data, "Subject: [canaryd] Sev 1  Bcc: all@example.com\r\n"));
  assert_non_null(strstr(b.data, "Message-ID: <web-2.1.0.n3@canaryd>\r\n"));
  assert_non_null(strstr(b.data, "Date: Thu, 01 Jan 2026 01:00:00 +0000\r\n"));
  assert_non_null(strstr(body_at, "To roll back: canaryctl rollback web-2.1.0\r\n"));
  jbuf_reset(&b);
  snprintf(it.n.title, sizeof it.n.title, "Grüße");
  notify_mail_message(&ep, "exec@example.com", &it, 1767229200000, &b);
  jbuf_putc(&b, '\0');
  /* base64("[canaryd] Grüße") */
  assert_non_null(strstr(b.data, "Subject: =?UTF-8?B?W2NhbmFyeWRdIEdyw7zDn2U=?=\r\n"));
  jbuf_free(&b);
}

static void test_route(void **state) {
  (void)state;
  static const struct {
    enum notify_channel ch;
    enum notify_severity sev;
    enum notify_sink sink;
    bool all_clear;
  } cases[] = {
      {NOTIFY_RELEASES, NOTIFY_SEV_INFO, NOTIFY_SINK_SLACK, false},
      {NOTIFY_RELEASES, NOTIFY_SEV_CRITICAL, NOTIFY_SINK_SLACK, false},
      {NOTIFY_ONCALL, NOTIFY_SEV_CRITICAL, NOTIFY_SINK_PAGERDUTY, false},
      {NOTIFY_ONCALL, NOTIFY_SEV_WARNING, NOTIFY_SINK_PAGERDUTY, false},
      {NOTIFY_ONCALL, NOTIFY_SEV_INFO, NOTIFY_SINK_PAGERDUTY, true},
      {NOTIFY_STATUS_PAGE, NOTIFY_SEV_WARNING, NOTIFY_SINK_STATUSPAGE, false},
      {NOTIFY_STATUS_PAGE, NOTIFY_SEV_INFO, NOTIFY_SINK_STATUSPAGE, true},
      {NOTIFY_EXECUTIVE, NOTIFY_SEV_CRITICAL, NOTIFY_SINK_SMTP, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct notification n = {.channel = cases[i].ch, .severity = cases[i].sev};
    bool all_clear;
    assert_int_equal(notify_route(&n, &all_clear), cases[i].sink);
    assert_int_equal(all_clear, cases[i].all_clear);
  }
}

static void test_backoff(void **state) {
  (void)state;
  struct notify_config cfg;
  notify_config_defaults(&cfg);
  static const int64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (int a = 1; a <= 9; a++)
    assert_int_equal(notify_backoff_ms(&cfg, a, -1), want[a - 1]);
  assert_int_equal(notify_backoff_ms(&cfg, 1, 5000), 5000); /* Retry-After: later, obeyed */
  assert_int_equal(notify_backoff_ms(&cfg, 3, 100), 2000);  /* never sooner than the back-off */
  assert_int_equal(notify_backoff_ms(&cfg, 1, 3600000), 300000); /* up to 5 minutes */
}

static void test_parse_sinks(void **state) {
  (void)state;
  unsigned s;
  char why[160];
  assert_true(notify_parse_sinks("pagerduty", &s, why, sizeof why));
  assert_int_equal(s, 1u << NOTIFY_SINK_PAGERDUTY);
  assert_true(notify_parse_sinks("slack,smtp", &s, why, sizeof why));
  assert_int_equal(s, (1u << NOTIFY_SINK_SLACK) | (1u << NOTIFY_SINK_SMTP));
  assert_true(notify_parse_sinks("all", &s, why, sizeof why));
  assert_int_equal(s, (1u << NOTIFY_SINK_COUNT) - 1);
  assert_false(notify_parse_sinks("slack,pager", &s, why, sizeof why));
  assert_non_null(strstr(why, "'pager' is not"));
  assert_false(notify_parse_sinks("slac", &s, why, sizeof why)); /* no prefixes */
  assert_false(notify_parse_sinks("", &s, why, sizeof why));
}

static void test_endpoints_from_env(void **state) {
  (void)state;
  char path[] = "/tmp/test_notify_sinkXXXXXX", why[256];
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "s3cret\n", 7), 7);
  close(fd);
  struct notify_endpoints ep = {0};
  setenv("CANARY_PAGERDUTY_ROUTING_KEY_FILE", path, 1);
  unsetenv("CANARY_PAGERDUTY_ROUTING_KEY");
  unsetenv("CANARY_SLACK_WEBHOOK_URL");
  unsetenv("CANARY_SLACK_WEBHOOK_URL_FILE");
  assert_true(notify_endpoints_from_env(&ep, why, sizeof why));
  assert_string_equal(ep.pagerduty_key, "s3cret"); /* the newline is not part of it */
  assert_string_equal(ep.pagerduty_url, "https://events.pagerduty.com/v2/enqueue");
  const char *needs;
  assert_true(notify_sink_configured(&ep, NOTIFY_SINK_PAGERDUTY, &needs));
  assert_false(notify_sink_configured(&ep, NOTIFY_SINK_SLACK, &needs));
  assert_string_equal(needs, "CANARY_SLACK_WEBHOOK_URL");
  notify_endpoints_free(&ep);
  setenv("CANARY_PAGERDUTY_ROUTING_KEY", "inline", 1); /* both: which one was meant? */
  assert_false(notify_endpoints_from_env(&ep, why, sizeof why));
  assert_non_null(strstr(why, "both CANARY_PAGERDUTY_ROUTING_KEY and"));
  unsetenv("CANARY_PAGERDUTY_ROUTING_KEY");
  unsetenv("CANARY_PAGERDUTY_ROUTING_KEY_FILE");
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slack_body),
      cmocka_unit_test(test_pagerduty_body),
      cmocka_unit_test(test_statuspage_body),
      cmocka_unit_test(test_mail_message),
      cmocka_unit_test(test_route),
      cmocka_unit_test(test_backoff),
      cmocka_unit_test(test_endpoints_from_env),
      cmocka_unit_test(test_parse_sinks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
