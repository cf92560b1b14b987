/* Tests for the config layer: the default plan, the seed's flag JSON, and every error's position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "fixtures.h"

#define ROLLOUT_YAML CANARY_SOURCE_DIR "/config/rollout.yaml"
#define FLAGS_JSON CANARY_SOURCE_DIR "/config/feature-flags.json"
#define DAY_MS (24 * HOUR_MS)
#define SEC_MS 1000LL

/* Plans are ~150 KB: keep them off the test's stack. */
static struct plan plan_a, plan_b;

static void load_ok(const char *path, struct plan *p) {
  struct config_error e;
  int rc = config_load_file(path, p, &e);
  if (rc) {
    char buf[600];
    config_error_format(&e, buf, sizeof buf);
    fail_msg("%s", buf);
  }
}

static int load_text(const char *text, struct plan *p, struct config_error *e) {
  return config_load_buffer("t.yaml", text, strlen(text), p, e);
}

/* --- config/rollout.yaml -------------------------------------------------------------------- */

struct stage_want {
  const char *name;
  double percent;
  int64_t min_ms, max_ms;
  const char *announce;
  enum check entry[PLAN_MAX_CRITERIA];
  int n_entry;
  enum check exit[PLAN_MAX_CRITERIA];
  int n_exit;
};

static const struct stage_want stages_want[] = {
    {"internal_test",
     0.5,
     1 * HOUR_MS,
     2 * HOUR_MS,
     "",
     {CHECK_CI_PASSED, CHECK_DEPLOY_SUCCEEDED, CHECK_HEALTH_GREEN},
     3,
     {CHECK_NO_CRASHES, CHECK_METRIC, CHECK_SMOKE_PASSED},
     3},
    {"friendly_gp",
     5,
     24 * HOUR_MS,
     48 * HOUR_MS,
     "Notify pilot partners",
     {CHECK_PREVIOUS_STAGE_PASSED, CHECK_NO_OPEN_INCIDENTS, CHECK_METRIC},
     3,
     {CHECK_METRIC, CHECK_METRIC, CHECK_NO_NEGATIVE_FEEDBACK, CHECK_METRIC},
     4},
    {"beta",
     25,
     48 * HOUR_MS,
     72 * HOUR_MS,
     "Send beta announcement",
     {CHECK_PREVIOUS_STAGE_PASSED, CHECK_POSITIVE_FEEDBACK, CHECK_METRIC, CHECK_NO_OPEN_INCIDENTS},
     4,
     {CHECK_METRIC, CHECK_METRIC, CHECK_NO_INCIDENTS_WITHIN, CHECK_METRIC},
     4},
    {"ga",
     100,
     0,
     0,
     "Send success announcement",
     {CHECK_PREVIOUS_STAGE_PASSED, CHECK_APPROVAL, CHECK_APPROVAL, CHECK_APPROVAL,
      CHECK_NO_OPEN_INCIDENTS},
     5,
     {0},
     0},
};

static void test_rollout_stages(void **state) {
  (void)state;
  load_ok(ROLLOUT_YAML, &plan_a);
  assert_string_equal(plan_a.name, "default");
  assert_int_equal(plan_a.n_stages, 4);
  for (int i = 0; i < 4; i++) {
    const struct stage_want *w = &stages_want[i];
    const struct stage *s = &plan_a.stages[i];
    assert_string_equal(s->name, w->name);
    assert_true(s->traffic_percent == w->percent);
    assert_int_equal(s->min_duration_ms, w->min_ms);
    assert_int_equal(s->max_duration_ms, w->max_ms);
    assert_string_equal(s->announce, w->announce);
    assert_int_equal(s->n_entry, w->n_entry);
    for (int j = 0; j < w->n_entry; j++)
      assert_int_equal(s->entry[j].check, w->entry[j]);
    assert_int_equal(s->n_exit, w->n_exit);
    for (int j = 0; j < w->n_exit; j++)
      assert_int_equal(s->exit[j].check, w->exit[j]);
    for (int j = 0; j < s->n_entry; j++)
      assert_true(s->entry[j].text[0]); /* every criterion keeps the seed's wording */
    for (int j = 0; j < s->n_exit; j++)
      assert_true(s->exit[j].text[0]);
  }
  assert_string_equal(plan_a.stages[0].segments[0], "eng-team");
  assert_string_equal(plan_a.stages[2].features[0], "stable");
}

static void test_rollout_criteria_details(void **state) {
  (void)state;
  load_ok(ROLLOUT_YAML, &plan_a);
  const struct stage *fgp = &plan_a.stages[1], *beta = &plan_a.stages[2], *ga = &plan_a.stages[3];
  assert_int_equal(fgp->entry[1].max_severity, 2);
  assert_int_equal(fgp->entry[1].cohort, -1);
  assert_int_equal(fgp->exit[2].cohort, 1); /* no_negative_feedback of friendly_gp */
  assert_string_equal(fgp->exit[3].expr, "canary_diff_ratio(0.005) < 0.005");
  const struct criterion *pos = &beta->entry[1];
  assert_int_equal(pos->cohort, 1);
  assert_int_equal(pos->min_count, 1);
  assert_true(pos->min_ratio == 0.8);
  assert_int_equal(beta->entry[2].for_ms, 24 * HOUR_MS);
  assert_int_equal(beta->exit[2].max_severity, 1);
  assert_int_equal(beta->exit[2].window_ms, 48 * HOUR_MS);
  assert_int_equal(ga->entry[1].role, APPROVAL_PRODUCT_OWNER);
  assert_int_equal(ga->entry[2].role, APPROVAL_SUPPORT);
  assert_int_equal(ga->entry[3].role, APPROVAL_DOCS);
  assert_string_equal(plan_a.stages[0].entry[0].name, "ci_passed"); /* defaulted to the check */
  for (int i = 0; i < plan_a.n_stages; i++)
    for (int j = 0; j < plan_a.stages[i].n_exit; j++)
      if (plan_a.stages[i].exit[j].check == CHECK_METRIC)
        assert_true(plan_a.stages[i].exit[j].expr[0] && plan_a.stages[i].exit[j].window_ms > 0);
}

struct rule_want {
  const char *name;
  const char *category;
  int64_t for_ms;
  int severity;
  bool has_alert;
  enum alert_kind on_alert;
  int n_exprs;
};

static const struct rule_want rules_want[] = {
    {"lcp_p75", "performance", 15 * MIN_MS, 2, false, 0, 1},
    {"inp_p75", "performance", 15 * MIN_MS, 2, false, 0, 1},
    {"cls_p95", "performance", 15 * MIN_MS, 2, false, 0, 1},
    {"api_latency_p99", "performance", 10 * MIN_MS, 2, false, 0, 1},
    {"engine_timeout_rate", "performance", 5 * MIN_MS, 2, false, 0, 1},
    {"error_rate", "errors", 5 * MIN_MS, 2, false, 0, 1},
    {"approval_denial_spike", "errors", 0, 2, false, 0, 1},
    {"error_excess", "errors", 0, 2, false, 0, 1},
    {"db_connection_exhaustion", "errors", 1 * MIN_MS, 2, true, ALERT_DB_CONNECTION_EXHAUSTION, 1},
    {"memory_usage", "errors", 10 * MIN_MS, 2, false, 0, 1},
    {"cpu_usage", "errors", 10 * MIN_MS, 2, false, 0, 1},
    {"failed_transactions", "business", 0, 2, false, 0, 1},
    {"failed_transaction_excess", "business", 0, 2, false, 0, 1},
    {"data_inconsistency", "business", 0, 1, true, ALERT_DATA_INCONSISTENCY, 0},
    {"security_alert", "business", 0, 1, true, ALERT_SECURITY, 0},
    {"compliance_violation", "business", 0, 1, true, ALERT_COMPLIANCE, 0},
};

static void test_rollout_halt_rules(void **state) {
  (void)state;
  load_ok(ROLLOUT_YAML, &plan_a);
  int n = (int)(sizeof rules_want / sizeof *rules_want);
  assert_int_equal(plan_a.n_rules, n);
  for (int i = 0; i < n; i++) {
    const struct rule_want *w = &rules_want[i];
    const struct rule *r = &plan_a.rules[i];
    assert_string_equal(r->name, w->name);
    assert_string_equal(r->category, w->category);
    assert_int_equal(r->for_ms, w->for_ms);
    assert_int_equal(r->severity, w->severity);
    assert_int_equal(r->has_alert, w->has_alert);
    if (w->has_alert)
      assert_int_equal(r->on_alert, w->on_alert);
    assert_int_equal(r->n_exprs, w->n_exprs);
    assert_int_equal(r->action, RULE_PAUSE); /* "automatically pauses rollout" */
    assert_true(r->text[0]);
  }
  assert_string_equal(plan_a.rules[0].exprs[0],
                      "histogram_quantile(0.75, webvitals_lcp_ms[15m]) > lcp_p75_ms");
  /* the built-in plan decides on evidence; the comparisons with the baseline exist only so */
  assert_int_equal(plan_a.decide, PLAN_DECIDE_EVIDENCE);
  assert_true(plan_a.false_halt_budget == 0.01);
  assert_int_equal(plan_a.watch_ms, 24 * 3600000LL); /* GA: "Continue monitoring" */
  assert_true(plan_a.holdback_percent == 0);
  assert_int_equal(plan_a.rollback_verify_ms, 30 * 60000LL); /* "Rollback within 30 minutes" */
  for (int i = 0; i < n; i++)
    assert_int_equal(plan_a.rules[i].decide, strstr(plan_a.rules[i].name, "excess")
                                                 ? PLAN_DECIDE_EVIDENCE
                                                 : PLAN_DECIDE_DEFAULT);
  plan_as_estimate(&plan_a); /* the seed's literal plan: the evidence-only rules go */
  assert_int_equal(plan_a.n_rules, n - 2);
  assert_int_equal(plan_a.decide, PLAN_DECIDE_ESTIMATE);
}

static void test_rollout_alerts_and_params(void **state) {
  (void)state;
  load_ok(ROLLOUT_YAML, &plan_a);
  assert_int_equal(plan_a.n_alerts, 3);
  assert_string_equal(plan_a.alerts[0].name, "canary_error_spike");
  /* the seed's rate(errors[5m]) > 0.01 as the error ratio it means (config/rollout.yaml) */
  assert_string_equal(plan_a.alerts[0].exprs[0], "rate(errors[5m]) / rate(requests[5m]) > 0.01");
  assert_int_equal(plan_a.alerts[0].for_ms, 5 * MIN_MS);
  assert_int_equal(plan_a.alerts[1].action, RULE_ALERT_ONCALL);
  assert_string_equal(plan_a.alerts[1].exprs[0],
                      "histogram_quantile(0.99, latency) > 5 * baseline");
  assert_int_equal(plan_a.alerts[2].n_exprs, 3);
  assert_string_equal(plan_a.alerts[2].exprs[2], "webvitals_cls_p95 > 0.1");
  assert_int_equal(plan_a.alerts[2].for_ms, 15 * MIN_MS);

  static const struct {
    const char *name;
    double value;
  } params[] = {{"error_rate", 0.01},
                {"latency_multiplier", 5},
                {"lcp_p75_ms", 2500},
                {"inp_p75_ms", 200},
                {"cls_p95", 0.1},
                {"engine_timeout_rate", 0.005},
                {"approval_denial_sigma", 3},
                {"db_connection_ratio", 1},
                {"memory_ratio", 0.9},
                {"cpu_ratio", 0.8},
                {"failed_transaction_rate", 0.001}};
  assert_int_equal(plan_a.n_params, (int)(sizeof params / sizeof *params));
  for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
    double v;
    assert_true(plan_param(&plan_a, params[i].name, &v));
    assert_true(v == params[i].value);
  }
  assert_int_equal(plan_a.n_slos, 7);
  assert_string_equal(plan_a.notify.releases, "#releases");
  assert_string_equal(plan_a.notify.oncall, "#oncall");
  assert_string_equal(plan_a.notify.status_page, "status-page");
  assert_string_equal(plan_a.notify.executive, "exec-briefing@example.com");
  assert_int_equal(plan_a.post_mortem_ms, 48 * HOUR_MS);
  assert_int_equal(plan_a.breaker_threshold, 3);
  assert_true(plan_a.canary_enabled);
  assert_int_equal(plan_a.buckets, 10000);
}

/* --- the seed's JSON, the built-in copy ------------------------------------------------------ */

static void test_flags_json_equals_yaml(void **state) {
  (void)state;
  load_ok(ROLLOUT_YAML, &plan_a);
  load_ok(FLAGS_JSON, &plan_b);
  assert_true(plan_equal(&plan_a, &plan_b));
}

static void test_default_equals_file(void **state) {
  (void)state;
  struct config_error e;
  load_ok(ROLLOUT_YAML, &plan_a);
  assert_int_equal(config_load_default(&plan_b, &e), CANARY_OK);
  assert_true(plan_equal(&plan_a, &plan_b));
  assert_int_equal(config_load_default(&plan_b, NULL), CANARY_OK); /* err is optional */
}

static void test_overlay_changes(void **state) {
  (void)state;
  static const char json[] = "{\"canary\": {\"enabled\": false, \"version\": \"9\",\n"
                             " \"cohorts\": {\"beta\": {\"enabled\": true, \"percentage\": 30,\n"
                             "   \"users\": [\"a\", \"b\"], \"features\": []}},\n"
                             " \"halt_conditions\": {\"error_rate\": 0.02}}}\n";
  struct config_error e;
  assert_int_equal(load_text(json, &plan_a, &e), CANARY_OK);
  assert_false(plan_a.canary_enabled);
  assert_true(plan_a.stages[2].traffic_percent == 30);
  assert_int_equal(plan_a.stages[2].n_segments, 2);
  assert_string_equal(plan_a.stages[2].segments[1], "b");
  assert_int_equal(plan_a.stages[2].n_features, 0);
  double v;
  assert_true(plan_param(&plan_a, "error_rate", &v) && v == 0.02);
  assert_true(plan_a.stages[1].traffic_percent == 5); /* untouched */
  assert_int_equal(plan_a.n_rules, 16);
}

/* --- defaults and small documents ------------------------------------------------------------ */

static void test_defaults(void **state) {
  (void)state;
  static const char yaml[] = "plan: mini\n"
                             "stages:\n"
                             "  - name: a\n"
                             "    traffic_percent: 10\n"
                             "    entry:\n"
                             "      - check: ci_passed\n"
                             "      - { check: positive_feedback, cohort: b }\n"
                             "  - { name: b, traffic_percent: 100 }\n"
                             "halt_rules:\n"
                             "  - { name: sec, on_alert: security, action: rollback }\n";
  struct config_error e;
  assert_int_equal(load_text(yaml, &plan_a, &e), CANARY_OK);
  assert_int_equal(plan_a.breaker_threshold, 3);
  assert_true(plan_a.canary_enabled);
  assert_int_equal(plan_a.buckets, 10000);
  assert_int_equal(plan_a.post_mortem_ms, 48 * HOUR_MS);
  assert_string_equal(plan_a.notify.releases, "#releases");
  const struct criterion *c = &plan_a.stages[0].entry[0];
  assert_int_equal(c->cohort, -1);
  assert_string_equal(c->name, "ci_passed");
  assert_string_equal(c->text, "");
  c = &plan_a.stages[0].entry[1];
  assert_int_equal(c->cohort, 1); /* names a stage defined later */
  assert_int_equal(c->min_count, 1);
  assert_true(c->min_ratio == 0);
  assert_int_equal(plan_a.rules[0].severity, 2);
  assert_int_equal(plan_a.rules[0].action, RULE_ROLLBACK);
  assert_true(plan_a.rules[0].has_alert);
  assert_int_equal(plan_a.rules[0].n_exprs, 0);
  assert_int_equal(plan_a.stages[1].max_duration_ms, 0);
}

/* decisions.dispersion: entries per counter and service, 1000 reports unless said. */
static void test_learned_dispersion(void **state) {
  (void)state;
  static const char yaml[] =
      "plan: t\n"
      "stages:\n"
      "  - { name: a, traffic_percent: 10 }\n"
      "  - { name: b, traffic_percent: 100 }\n"
      "decisions:\n"
      "  dispersion:\n"
      "    - { counter: errors, value: 1.5 }\n"
      "    - { counter: errors, service: checkout, value: 2.25, reports: 40 }\n";
  struct config_error e;
  assert_int_equal(load_text(yaml, &plan_a, &e), CANARY_OK);
  assert_int_equal(plan_a.n_dispersion, 2);
  const struct plan_dispersion *d = plan_dispersion_for(&plan_a, "errors", "checkout");
  assert_non_null(d);
  assert_true(d->value == 2.25 && d->reports == 40); /* the service's own entry wins */
  d = plan_dispersion_for(&plan_a, "errors", "web");
  assert_non_null(d);
  assert_true(d->value == 1.5 && d->reports == 1000 && d->service[0] == 0);
  assert_null(plan_dispersion_for(&plan_a, "transactions_failed", "checkout"));
  assert_true(plan_dispersion_for(&plan_a, "errors", NULL) == &plan_a.dispersion[0]);
}

/* The built-in plan carries the seed's checklist, an item a line, with what proves each. */
static void test_builtin_checklist(void **state) {
  (void)state;
  struct config_error e;
  assert_int_equal(config_load_default(&plan_a, &e), CANARY_OK);
  assert_int_equal(plan_a.n_checklist, 23);
  int i = plan_checklist_index(&plan_a, "deploy_canary");
  assert_int_equal(i, 0);
  assert_string_equal(plan_a.checklist[i].text, "Deploy canary build");
  assert_int_equal(plan_a.checklist[i].stage, 0);
  assert_int_equal(plan_a.checklist[i].proof, PROOF_DEPLOY_SUCCEEDED);
  assert_true(plan_a.checklist[i].required);
  i = plan_checklist_index(&plan_a, "prepare_ga_announcement");
  assert_int_equal(plan_a.checklist[i].proof, PROOF_MANUAL);
  assert_true(plan_a.checklist[i].remind);
  assert_false(plan_a.checklist[i].required);
  assert_int_equal(plan_a.checklist[i].stage, plan_stage_index(&plan_a, "beta"));
  assert_int_equal(plan_checklist_index(&plan_a, "nope"), -1);
  int required = 0;
  for (int k = 0; k < plan_a.n_checklist; k++)
    required += plan_a.checklist[k].required;
  assert_int_equal(required, 7);
}

static void test_anchors_and_aliases(void **state) {
  (void)state;
  static const char yaml[] = "plan: mini\n"
                             "stages:\n"
                             "  - name: a\n"
                             "    traffic_percent: 10\n"
                             "    entry: &gate\n"
                             "      - { check: ci_passed, text: CI }\n"
                             "  - { name: b, traffic_percent: 100, entry: *gate }\n";
  struct config_error e;
  assert_int_equal(load_text(yaml, &plan_a, &e), CANARY_OK);
  assert_int_equal(plan_a.stages[1].n_entry, 1);
  assert_string_equal(plan_a.stages[1].entry[0].text, "CI");
}

static void test_failure_leaves_out_untouched(void **state) {
  (void)state;
  load_ok(ROLLOUT_YAML, &plan_a);
  memcpy(&plan_b, &plan_a, sizeof plan_b);
  struct config_error e;
  assert_int_equal(load_text("plan: x\nstages: []\n", &plan_a, &e), CANARY_EINVALID);
  assert_memory_equal(&plan_a, &plan_b, sizeof plan_a);
  assert_int_equal(load_text("plan: x\n", &plan_a, NULL), CANARY_EINVALID); /* err optional */
}

/* --- bad configurations ---------------------------------------------------------------------- */

struct bad_case {
  const char *what;
  const char *text;
  int rc;
  int line, col;
  const char *message; /* a substring of the message */
};

#define POLICY_KEY "1QkNIu9l1AMau+PGUJrH1V7ZSATawvZdZuuzun06F6I="
#define STAGES_AB                                                                                  \
  "stages:\n  - { name: a, traffic_percent: 10 }\n  - { name: b, traffic_percent: 100 }\n"

static const struct bad_case bad_cases[] = {
    {"a checklist item of an unknown stage",
     "plan: t\n" STAGES_AB "checklist:\n  - { id: x, text: X, stage: nope }\n", CANARY_EINVALID, 6,
     30, "unknown cohort 'nope'"},
    {"a checklist proof that is no proof",
     "plan: t\n" STAGES_AB "checklist:\n  - { id: x, text: X, stage: a, proof: vibes }\n",
     CANARY_EINVALID, 6, 40, "unknown proof 'vibes' (expected one of: manual, ci_passed"},
    {"a checklist item twice",
     "plan: t\n" STAGES_AB
     "checklist:\n  - { id: x, text: X, stage: a }\n  - { id: x, text: Y, stage: b }\n",
     CANARY_EINVALID, 7, 5, "checklist item 'x' appears twice"},
    {"a checklist item without its text",
     "plan: t\n" STAGES_AB "checklist:\n  - { id: x, stage: a }\n", CANARY_EINVALID, 6, 5,
     "missing required key 'text' in checklist item"},
    {"a required item only GA itself could prove",
     "plan: t\n" STAGES_AB
     "checklist:\n  - { id: x, text: X, stage: b, proof: stage_started, required: true }\n",
     CANARY_EINVALID, 6, 5, "checklist item x is required before b, but its proof"},
    {"a decide that is neither",
     "plan: t\n" STAGES_AB
     "halt_rules:\n  - { name: r, expr: \"rate(e[5m]) / rate(r[5m]) > 0.1\", action: pause_canary,"
     " decide: guess }\n",
     CANARY_EINVALID, 6, 87, "decide must be evidence"},
    {"a false-halt budget out of range",
     "plan: t\n" STAGES_AB "decisions:\n  false_halt_budget: 2\n", CANARY_EINVALID, 6, 22,
     "false_halt_budget"},
    {"a dispersion under 1",
     "plan: t\n" STAGES_AB "decisions:\n  dispersion:\n    - { counter: errors, value: 0.5 }\n",
     CANARY_EINVALID, 7, 33, "value"},
    {"a dispersion given twice",
     "plan: t\n" STAGES_AB "decisions:\n  dispersion:\n    - { counter: errors, value: 2 }\n"
     "    - { counter: errors, value: 3 }\n",
     CANARY_EINVALID, 8, 7, "appears twice"},
    {"a dispersion without its counter",
     "plan: t\n" STAGES_AB "decisions:\n  dispersion:\n    - { value: 2 }\n", CANARY_EINVALID, 7, 7,
     "counter"},
    {"a dispersion of a counter no evidence divides",
     "plan: t\n" STAGES_AB "decisions:\n  dispersion:\n    - { counter: error, value: 2 }\n"
     "halt_rules:\n  - { name: r, expr: \"rate(errors[5m]) / rate(requests[5m]) > baseline\","
     " action: pause_canary }\n",
     CANARY_EINVALID, 7, 7, "its bad-event counters: errors"},
    {"a holdback out of range",
     "plan: t\n" STAGES_AB "watch:\n  duration: 24h\n"
     "  holdback_percent: 60\n",
     CANARY_EINVALID, 7, 21, "holdback_percent"},
    {"a rollback limit that is no duration",
     "plan: t\n" STAGES_AB "rollback: { verify_within: soon }\n", CANARY_EINVALID, 5, 28,
     "verify_within"},
    {"an unknown key under rollback", "plan: t\n" STAGES_AB "rollback: { within: 30m }\n",
     CANARY_EINVALID, 5, 13, "unknown key 'within'"},
    {"a watch duration that is not one", "plan: t\n" STAGES_AB "watch: { duration: 1.5h }\n",
     CANARY_EINVALID, 5, 20, "1h30m"},
    {"unknown top-level key", "plan: t\nstagez: []\n", CANARY_EINVALID, 2, 1,
     "unknown key 'stagez' in plan (expected one of: plan, halt_conditions, flags"},
    {"unknown key in a stage",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    min_duraton: 1h\n",
     CANARY_EINVALID, 5, 5, "unknown key 'min_duraton' in stage (expected one of: name, title,"},
    {"unknown key in a criterion",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    entry:\n"
     "      - { check: ci_passed, txt: x }\n",
     CANARY_EINVALID, 6, 29, "unknown key 'txt' in criterion"},
    {"unknown key in a halt rule",
     "plan: t\n" STAGES_AB "halt_rules:\n"
     "  - name: r\n"
     "    expr: \"x > 1\"\n"
     "    action: pause_canary\n"
     "    sevrity: 1\n",
     CANARY_EINVALID, 9, 5, "unknown key 'sevrity' in halt rule"},
    {"unknown key in a section", "plan: t\nnotify: { release: x }\n" STAGES_AB, CANARY_EINVALID, 2,
     11, "unknown key 'release' in notify"},
    {"unknown flag", "plan: t\nflags:\n  canary.enabled: true\n" STAGES_AB, CANARY_EINVALID, 3, 3,
     "unknown key 'canary.enabled' in flags (expected one of: system.canary.enabled)"},
    {"duplicate key", "plan: t\n" STAGES_AB "plan: u\n", CANARY_EINVALID, 5, 1,
     "duplicate key 'plan' in plan (first at 1:1)"},
    {"string where a number is expected",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: \"100\"\n",
     CANARY_EINVALID, 4, 22, "expected a number for 'traffic_percent', got quoted string '100'"},
    {"word where a number is expected",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: all\n",
     CANARY_EINVALID, 4, 22, "expected a number for 'traffic_percent', got 'all'"},
    {"fraction where an integer is expected",
     "plan: t\ncircuit_breaker: {consecutive_errors: 2.5}\n" STAGES_AB, CANARY_EINVALID, 2, 39,
     "expected an integer for 'consecutive_errors'"},
    {"unknown traffic_split baseline",
     "plan: t\ntraffic_split: {check: true, baseline: both}\n" STAGES_AB, CANARY_EINVALID, 2, 40,
     "traffic_split.baseline must be control"},
    {"scalar where a list is expected",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    segments: eng-team\n",
     CANARY_EINVALID, 5, 15, "expected a list for 'segments', got 'eng-team'"},
    {"list where a string is expected", "plan: [t]\n" STAGES_AB, CANARY_EINVALID, 1, 7,
     "expected a string for 'plan', got a list"},
    {"yes is not a boolean", "plan: t\nflags: {system.canary.enabled: yes}\n" STAGES_AB,
     CANARY_EINVALID, 2, 32, "expected true or false for 'system.canary.enabled', got 'yes'"},
    {"percent above 100",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 101\n",
     CANARY_EINVALID, 4, 22, "'traffic_percent' must be between 0 and 100, got 101"},
    {"severity out of range",
     "plan: t\n" STAGES_AB "halt_rules:\n  - { name: r, on_alert: security, action: rollback, "
     "severity: 7 }\n",
     CANARY_EINVALID, 6, 64, "'severity' must be between 1 and 3, got 7"},
    {"bad duration",
     "plan: t\n" STAGES_AB "halt_rules:\n"
     "  - name: r\n"
     "    expr: \"x > 1\"\n"
     "    for: 15 minutes\n"
     "    action: pause_canary\n",
     CANARY_EINVALID, 8, 10, "bad duration '15 minutes' for 'for'"},
    {"unknown check",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    exit:\n"
     "      - check: ci_pased\n",
     CANARY_EINVALID, 6, 16,
     "unknown check 'ci_pased' (expected one of: ci_passed, deploy_succeeded"},
    {"unknown action",
     "plan: t\n" STAGES_AB "halt_rules:\n"
     "  - name: r\n"
     "    expr: \"x > 1\"\n"
     "    action: pause\n",
     CANARY_EINVALID, 8, 13,
     "unknown action 'pause' (expected one of: pause_canary, alert_oncall, rollback)"},
    {"unknown alert kind",
     "plan: t\n" STAGES_AB "halt_rules:\n  - {name: r, on_alert: fire, "
     "action: rollback}\n",
     CANARY_EINVALID, 6, 25, "unknown alert kind 'fire'"},
    {"unknown category",
     "plan: t\n" STAGES_AB "halt_rules:\n  - {name: r, category: perf, "
     "on_alert: security, action: rollback}\n",
     CANARY_EINVALID, 6, 25,
     "unknown category 'perf' (expected one of: performance, errors, business)"},
    {"unknown role",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    entry:\n"
     "      - { check: approval, role: ceo }\n",
     CANARY_EINVALID, 6, 34, "unknown role 'ceo' (expected one of: product_owner, support, docs)"},
    {"unknown cohort name",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 10\n"
     "    exit:\n"
     "      - { check: no_crashes, cohort: betta }\n"
     "  - { name: b, traffic_percent: 100 }\n",
     CANARY_EINVALID, 6, 38, "unknown cohort 'betta' (the plan's stages: a, b)"},
    {"percent not increasing",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 50\n"
     "  - name: b\n"
     "    traffic_percent: 25\n"
     "  - name: c\n"
     "    traffic_percent: 100\n",
     CANARY_EINVALID, 6, 22,
     "traffic_percent of stage 'b' (25) must be above the previous stage's (50)"},
    {"percent zero", "plan: t\nstages:\n  - { name: a, traffic_percent: 0 }\n", CANARY_EINVALID, 3,
     33, "traffic_percent of stage 'a' (0) must be above the previous stage's (0)"},
    {"last stage below 100", "plan: t\nstages:\n  - { name: a, traffic_percent: 50 }\n",
     CANARY_EINVALID, 3, 3, "the last stage (a) must reach traffic_percent 100"},
    {"no stages", "plan: t\nstages: []\n", CANARY_EINVALID, 2, 9, "the plan has no stages"},
    {"max below min",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    min_duration: 2h\n"
     "    max_duration: 90m\n",
     CANARY_EINVALID, 6, 19,
     "max_duration of stage 'a' (90m) is shorter than its min_duration (2h)"},
    {"stage twice",
     "plan: t\nstages:\n  - { name: a, traffic_percent: 10 }\n"
     "  - { name: a, traffic_percent: 100 }\n",
     CANARY_EINVALID, 4, 13, "stage 'a' appears twice"},
    {"missing stage name",
     "plan: t\n"
     "stages:\n"
     "  - traffic_percent: 100\n"
     "    title: Everyone\n",
     CANARY_EINVALID, 3, 5, "missing required key 'name' in stage"},
    {"missing stages", "plan: t\n", CANARY_EINVALID, 1, 1, "missing required key 'stages' in plan"},
    {"missing rule action", "plan: t\n" STAGES_AB "halt_rules:\n  - { name: r, expr: x }\n",
     CANARY_EINVALID, 6, 5, "missing required key 'action' in halt rule"},
    {"rule with nothing to fire on",
     "plan: t\n" STAGES_AB "halt_rules:\n  - { name: r, action: rollback }\n", CANARY_EINVALID, 6,
     5, "halt rule 'r' needs 'expr' or 'on_alert'"},
    {"metric criterion without expr",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    exit:\n"
     "      - { check: metric, name: m, window: 1h }\n",
     CANARY_EINVALID, 6, 9, "check 'metric' needs key 'expr'"},
    {"key that does not apply to the check",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    entry:\n"
     "      - { check: ci_passed, role: docs }\n",
     CANARY_EINVALID, 6, 29, "key 'role' does not apply to check 'ci_passed'"},
    {"two criteria with one name",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    traffic_percent: 100\n"
     "    exit:\n"
     "      - { check: metric, expr: x }\n"
     "      - { check: metric, expr: y }\n",
     CANARY_EINVALID, 7, 9, "two exit criteria are named 'metric'"},
    {"too many exprs",
     "plan: t\n" STAGES_AB "alerts:\n  - { name: r, action: rollback, expr: [a, b, c, d, e] }\n",
     CANARY_EINVALID, 6, 53, "too many expr (at most 4)"},
    {"too many stages",
     "plan: t\nstages: [{name: a, traffic_percent: 1}, {name: b, "
     "traffic_percent: 2}, {name: c, traffic_percent: 3}, {name: d, traffic_percent: 4}, "
     "{name: e, traffic_percent: 5}, {name: f, traffic_percent: 6}, {name: g, traffic_percent: "
     "100}]\n",
     CANARY_EINVALID, 2, 196, "too many stages (at most 6)"},
    {"too-long name",
     "plan: t\n"
     "stages:\n"
     "  - name: stage_name_of_exactly_forty_eight_characters_xyz\n"
     "    traffic_percent: 100\n",
     CANARY_EINVALID, 3, 11, "'name' is too long (48 characters, at most 47)"},
    {"name that expressions cannot use", "plan: t\nhalt_conditions: {error-rate: 1}\n" STAGES_AB,
     CANARY_EINVALID, 2, 19, "'halt_conditions' must be a name of letters, digits and '_'"},
    {"YAML syntax error: bad indentation",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "   traffic_percent: 100\n",
     CANARY_EPARSE, 4, 4,
     "did not find expected '-' indicator (while parsing a block collection at 3:3)"},
    {"YAML syntax error: unclosed bracket",
     "plan: t\n"
     "stages:\n"
     "  - name: a\n"
     "    segments: [eng-team, qa\n"
     "    traffic_percent: 100\n",
     CANARY_EPARSE, 5, 20,
     "did not find expected ',' or ']' (while parsing a flow sequence at 4:15)"},
    {"tab indentation", "plan: t\n\tstages: []\n", CANARY_EPARSE, 2, 1,
     "found a tab character that violates indentation"},
    {"invalid UTF-8", "plan: \"t\xff\"\n", CANARY_EPARSE, 1, 9, "invalid leading UTF-8 octet"},
    {"two documents", "plan: t\n---\nplan: u\n", CANARY_EPARSE, 2, 1,
     "expected a single YAML document"},
    {"tag", "plan: !!str t\n", CANARY_EPARSE, 1, 7, "YAML tags are not supported"},
    {"unknown alias", "plan: *name\n", CANARY_EPARSE, 1, 7, "unknown alias '*name'"},
    {"empty document", "# nothing\n", CANARY_EINVALID, 1, 1, "the document is empty"},
    {"policy: an unknown right",
     "plan: t\n" STAGES_AB "policy:\n  permissions: { promote_everything: [boss] }\n  actors: {}\n",
     CANARY_EINVALID, 6, 18, "promote_everything"},
    {"policy: an actor's role that has no right",
     "plan: t\n" STAGES_AB "policy:\n  permissions: { rollback: [oncall] }\n"
     "  actors:\n    bob: { roles: [oncal], keys: [\"" POLICY_KEY "\"] }\n",
     CANARY_EINVALID, 8, 20,
     "role 'oncal' is given no right under permissions (roles with a "
     "right: oncall)"},
    {"policy: a key that is no key",
     "plan: t\n" STAGES_AB "policy:\n  permissions: { rollback: [oncall] }\n"
     "  actors:\n    bob: { roles: [oncall], keys: [\"c2VjcmV0\"] }\n",
     CANARY_EINVALID, 8, 36, "is not an Ed25519 public key in base64"},
    {"policy: an actor without keys",
     "plan: t\n" STAGES_AB "policy:\n  permissions: { rollback: [oncall] }\n"
     "  actors:\n    bob: { roles: [oncall] }\n",
     CANARY_EINVALID, 8, 10, "actor 'bob' needs 'keys'"},
    {"policy: without actors",
     "plan: t\n" STAGES_AB "policy:\n  permissions: { rollback: [oncall] }\n", CANARY_EINVALID, 6,
     3, "policy needs 'actors'"},
    {"list at the top", "- plan: t\n", CANARY_EINVALID, 1, 1,
     "expected a mapping at the top level, got a list"},
    {"overlay: unknown cohort",
     "{\n"
     "  \"canary\": {\n"
     "    \"cohorts\": {\n"
     "      \"gamma\": { \"percentage\": 1 }\n"
     "    }\n"
     "  }\n"
     "}\n",
     CANARY_EINVALID, 4, 7,
     "unknown cohort 'gamma' (the plan's stages: internal_test, friendly_gp, beta, ga)"},
    {"overlay: unknown halt condition",
     "{\n"
     "  \"canary\": {\n"
     "    \"halt_conditions\": { \"error_rate\": 0.02, \"lcp_p99_ms\": 4000 }\n"
     "  }\n"
     "}\n",
     CANARY_EINVALID, 3, 46,
     "unknown halt condition 'lcp_p99_ms' (the plan's halt_conditions: "
     "error_rate, latency_multiplier"},
    {"overlay: unknown key", "{ \"canary\": { \"cohorts\": { \"beta\": { \"percent\": 30 } } } }\n",
     CANARY_EINVALID, 1, 38,
     "unknown key 'percent' in cohort (expected one of: enabled, percentage, users, features)"},
    {"overlay: unknown top-level key", "{ \"canary\": {}, \"stages\": [] }\n", CANARY_EINVALID, 1,
     17, "unknown key 'stages' in feature-flag file (expected one of: canary)"},
    {"overlay: string percentage",
     "{ \"canary\": { \"cohorts\": { \"beta\": { \"percentage\": \"30\" } } } }\n", CANARY_EINVALID,
     1, 52, "expected a number for 'percentage', got quoted string '30'"},
    {"overlay: enabled must still be a boolean",
     "{ \"canary\": { \"cohorts\": { \"beta\": { \"enabled\": \"no\" } } } }\n", CANARY_EINVALID, 1,
     49, "expected true or false for 'enabled'"},
    {"overlay: percentages out of order",
     "{ \"canary\": { \"cohorts\": { \"beta\": { \"percentage\": 4 } } } }\n", CANARY_EINVALID, 1,
     26, "stage beta: traffic_percent 4 must be above the previous stage's (5)"},
};

static void test_bad_configs(void **state) {
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
    const struct bad_case *c = &bad_cases[i];
    struct config_error e;
    int rc = load_text(c->text, &plan_a, &e);
    char buf[600];
    config_error_format(&e, buf, sizeof buf);
    if (rc != c->rc || e.line != c->line || e.column != c->col || !strstr(e.message, c->message) ||
        strcmp(e.file, "t.yaml") != 0) {
      print_error("case '%s': rc %d (want %d)\n  got  %s\n  want t.yaml:%d:%d: ...%s...\n", c->what,
                  rc, c->rc, buf, c->line, c->col, c->message);
      failed++;
    }
  }
  assert_int_equal(failed, 0);
}

/* --- files, messages, durations -------------------------------------------------------------- */

static void test_missing_file(void **state) {
  (void)state;
  struct config_error e;
  const char *path = "/nonexistent/canaryd/rollout.yaml";
  assert_int_equal(config_load_file(path, &plan_a, &e), CANARY_EIO);
  assert_non_null(strstr(e.message, path));
  assert_non_null(strstr(e.message, "No such file"));
  assert_int_equal(e.line, 0);
  char buf[600];
  config_error_format(&e, buf, sizeof buf);
  assert_true(strncmp(buf, "/nonexistent/canaryd/rollout.yaml: cannot open", 46) == 0);
}

static void test_error_file_name(void **state) {
  (void)state;
  struct config_error e;
  char buf[600];
  assert_int_equal(config_load_file(CANARY_SOURCE_DIR "/tests/config/bad/typo.yaml", &plan_a, &e),
                   CANARY_EINVALID);
  config_error_format(&e, buf, sizeof buf);
  assert_string_equal(buf, CANARY_SOURCE_DIR
                      "/tests/config/bad/typo.yaml:12:5: unknown key "
                      "'min_duraton' in stage (expected one of: name, title, traffic_percent, "
                      "users, segments, features, purpose, min_duration, max_duration, "
                      "announce, entry, exit)");
}

static void test_error_format(void **state) {
  (void)state;
  struct config_error e = {.file = "a.yaml", .line = 3, .column = 7, .message = "bad"};
  char buf[64];
  config_error_format(&e, buf, sizeof buf);
  assert_string_equal(buf, "a.yaml:3:7: bad");
  e.line = e.column = 0;
  config_error_format(&e, buf, sizeof buf);
  assert_string_equal(buf, "a.yaml: bad");
  config_error_format(&e, buf, 4);
  assert_string_equal(buf, "a.y");
}

static const struct {
  const char *s;
  bool ok;
  int64_t ms;
} durations[] = {
    {"500ms", true, 500},
    {"90s", true, 90 * SEC_MS},
    {"15m", true, 15 * MIN_MS},
    {"1h", true, HOUR_MS},
    {"48h", true, 48 * HOUR_MS},
    {"2d", true, 2 * DAY_MS},
    {"1w", true, 7 * DAY_MS},
    {"1h30m", true, 90 * MIN_MS},
    {"1d2h3m4s5ms", true, DAY_MS + 2 * HOUR_MS + 3 * MIN_MS + 4 * SEC_MS + 5},
    {"0", true, 0},
    {"0s", true, 0},
    {"007m", true, 7 * MIN_MS},
    {"", false, 0},
    {"5", false, 0},
    {"h", false, 0},
    {"ms", false, 0},
    {"-1m", false, 0},
    {"+1m", false, 0},
    {"1.5h", false, 0}, /* no fractions: write 1h30m */
    {"15 minutes", false, 0},
    {"1h 30m", false, 0},
    {" 1h", false, 0},
    {"1h ", false, 0},
    {"1H", false, 0},
    {"30m1h", false, 0}, /* units must decrease */
    {"1h1h", false, 0},
    {"1m1ms1s", false, 0},
    {"1y", false, 0},
    {"0x10s", false, 0},
    {"9223372036854775807ms", true, INT64_MAX},
    {"9223372036854775808ms", false, 0},
    {"9223372036854776s", false, 0},
    {"106751991167d7h12m55s807ms", true, INT64_MAX},
    {"106751991167d7h12m55s808ms", false, 0},
};

static void test_parse_duration(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof durations / sizeof *durations; i++) {
    int64_t ms = -1;
    bool ok = config_parse_duration(durations[i].s, &ms);
    if (ok != durations[i].ok || (ok && ms != durations[i].ms))
      fail_msg("'%s': got %d %lld, want %d %lld", durations[i].s, ok, (long long)ms,
               durations[i].ok, (long long)durations[i].ms);
  }
  int64_t ms;
  assert_false(config_parse_duration(NULL, &ms));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rollout_stages),
      cmocka_unit_test(test_rollout_criteria_details),
      cmocka_unit_test(test_rollout_halt_rules),
      cmocka_unit_test(test_rollout_alerts_and_params),
      cmocka_unit_test(test_flags_json_equals_yaml),
      cmocka_unit_test(test_default_equals_file),
      cmocka_unit_test(test_overlay_changes),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_learned_dispersion),
      cmocka_unit_test(test_builtin_checklist),
      cmocka_unit_test(test_anchors_and_aliases),
      cmocka_unit_test(test_failure_leaves_out_untouched),
      cmocka_unit_test(test_bad_configs),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_error_file_name),
      cmocka_unit_test(test_error_format),
      cmocka_unit_test(test_parse_duration),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
