/* The rollout plan: stages with their gates, halt rules, thresholds, notification channels. */
#ifndef CANARY_PLAN_H
#define CANARY_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event.h"
#include "core/policy.h"

#define PLAN_MAX_STAGES 6
#define PLAN_MAX_CRITERIA 12 /* per gate (entry or exit) */
#define PLAN_MAX_RULES 32
#define PLAN_MAX_ALERTS 16
#define PLAN_MAX_EXPRS 4 /* expressions under one rule or alert */
#define PLAN_MAX_PARAMS 16
#define PLAN_MAX_LIST 4 /* user segments, features */
#define PLAN_MAX_SLOS 8
#define PLAN_NAME_MAX 48
#define PLAN_TEXT_MAX 160
#define PLAN_EXPR_MAX 256
#define PLAN_MAX_CHECKLIST 24

/*
 * What a criterion checks. Every check but METRIC is decided from deploy events and commands;
 * METRIC criteria are kept (expression and window) and reported "not evaluated" — never passed —
 * until the metric engine evaluates them.
 */
#define CHECK_MAP(XX)                                                                              \
  XX(CI_PASSED, "ci_passed")                         /* last ci.completed was ok */                \
  XX(DEPLOY_SUCCEEDED, "deploy_succeeded")           /* last deploy.completed was ok */            \
  XX(HEALTH_GREEN, "health_green")                   /* last health.checked was ok */              \
  XX(SMOKE_PASSED, "smoke_passed")                   /* last smoke run ok with 0 failures */       \
  XX(NO_CRASHES, "no_crashes")                       /* no crash.reported for the cohort */        \
  XX(PREVIOUS_STAGE_PASSED, "previous_stage_passed") /* exit gate of stage before passed */        \
  XX(NO_OPEN_INCIDENTS, "no_open_incidents")         /* none open with severity <= max */          \
  XX(NO_INCIDENTS_WITHIN, "no_incidents_within")     /* none opened in window, sev <= max */       \
  XX(POSITIVE_FEEDBACK, "positive_feedback")         /* >= min_count positive, ratio >= min */     \
  XX(NO_NEGATIVE_FEEDBACK, "no_negative_feedback")                                                 \
  XX(APPROVAL, "approval") /* approval.granted for role */                                         \
  XX(METRIC, "metric")     /* expression over metric windows */

enum check {
#define XX(name, wire) CHECK_##name,
  CHECK_MAP(XX)
#undef XX
      CHECK_COUNT
};

struct criterion {
  enum check check;
  char name[PLAN_NAME_MAX]; /* short label shown in status and evidence */
  char text[PLAN_TEXT_MAX]; /* the plan's own wording, e.g. "All CI checks passed" */
  int cohort;               /* stage index whose cohort is meant; -1 = the gate's own stage */
  int max_severity;         /* incidents: severities 1..max_severity count */
  int64_t window_ms;        /* no_incidents_within; metric window */
  int64_t min_count;        /* positive_feedback */
  double min_ratio;         /* positive_feedback: positive / all, 0 = not checked */
  enum approval_role role;  /* approval */
  char expr[PLAN_EXPR_MAX]; /* metric */
  int64_t for_ms;           /* metric: must hold this long */
};

struct stage {
  char name[PLAN_NAME_MAX];  /* cohort name: internal_test, friendly_gp, beta, ga */
  char title[PLAN_TEXT_MAX]; /* "Internal Test" */
  char users[PLAN_TEXT_MAX]; /* who the cohort is: "Engineering team, QA" */
  char purpose[PLAN_TEXT_MAX];
  double traffic_percent;                      /* exposure while the stage runs: 0.5, 5, 25, 100 */
  char segments[PLAN_MAX_LIST][PLAN_NAME_MAX]; /* allow-listed user segments, e.g. eng-team */
  int n_segments;
  char features[PLAN_MAX_LIST][PLAN_NAME_MAX];
  int n_features;
  int64_t min_duration_ms;      /* not left before this; 0 = no minimum */
  int64_t max_duration_ms;      /* halted when passed with the exit gate unmet; 0 = no maximum */
  char announce[PLAN_TEXT_MAX]; /* #releases message when the stage starts ("" = none) */
  struct criterion entry[PLAN_MAX_CRITERIA];
  int n_entry;
  struct criterion exit[PLAN_MAX_CRITERIA];
  int n_exit;
};

#define RULE_ACTION_MAP(XX)                                                                        \
  XX(PAUSE, "pause_canary")                                                                        \
  XX(ALERT_ONCALL, "alert_oncall")                                                                 \
  XX(ROLLBACK, "rollback")
enum rule_action {
#define XX(name, wire) RULE_##name,
  RULE_ACTION_MAP(XX)
#undef XX
      RULE_ACTION_COUNT
};

/*
 * A halt rule or an alert. It fires on an alert.raised (and an incident.opened) of kind
 * on_alert, or when its expressions hold for for_ms (metric rules: evaluated by the metric
 * engine; kept here until then). Severity 1 rules also page on-call.
 */
/*
 * How a rule or gate over counts decides (docs/rules.md, "Evidence"). EVIDENCE: a comparison of
 * a ratio of counters or of a quantile with a limit, or with the baseline, holds when an
 * anytime-valid sequential test says so at the plan's false-halt budget — its error rate holds
 * however often it is evaluated. ESTIMATE: the literal point estimate over the window, as
 * written (the seed's semantics, kept per rule for users who want it). DEFAULT: the plan's.
 */
#define PLAN_DECIDE_MAP(XX)                                                                        \
  XX(DEFAULT, "default")                                                                           \
  XX(EVIDENCE, "evidence")                                                                         \
  XX(ESTIMATE, "estimate")

enum plan_decide {
#define XX(name, wire) PLAN_DECIDE_##name,
  PLAN_DECIDE_MAP(XX)
#undef XX
};

struct rule {
  char name[PLAN_NAME_MAX];
  char text[PLAN_TEXT_MAX];
  char category[PLAN_NAME_MAX]; /* performance, errors, business: the plan's headings */
  bool has_alert;
  enum alert_kind on_alert;
  char exprs[PLAN_MAX_EXPRS][PLAN_EXPR_MAX];
  int n_exprs;
  int64_t for_ms;
  enum rule_action action;
  int severity;            /* 1 critical .. 3 info */
  enum plan_decide decide; /* DEFAULT: plan.decide */
  double budget_weight;    /* its comparisons' share of the false-halt budget, relative to
                            * the others' (0: 1) */
};

/* A named threshold, e.g. error_rate = 0.01; expressions refer to it by name. */
struct plan_param {
  char name[PLAN_NAME_MAX];
  double value;
};

/* A service-level objective: a named expression that must hold. */
struct plan_slo {
  char name[PLAN_NAME_MAX];
  char expr[PLAN_EXPR_MAX];
};

struct plan_channels {
  char releases[PLAN_NAME_MAX];    /* "#releases": every decision */
  char oncall[PLAN_NAME_MAX];      /* paged for severity 1 rules and the circuit breaker */
  char status_page[PLAN_NAME_MAX]; /* public incident updates (Sev 1-2) */
  char executive[PLAN_TEXT_MAX];   /* executive briefing e-mail (Sev 1) */
};

/*
 * A counter's dispersion learned from a service's earlier releases (`canaryctl dispersion`
 * measures it): how many times more variable than binomial its bad events are (retry bursts),
 * and how many reports' worth of weight that knowledge has before the release's own reports.
 * Without one, the evidence assumes bursts until the reports show otherwise (mstore_dispersion).
 */
#define PLAN_MAX_DISPERSION 32
#define PLAN_MAX_DASHBOARD 8 /* dashboard.counters */
struct plan_dispersion {
  char counter[PLAN_NAME_MAX]; /* the bad events' counter: errors, transactions_failed, ... */
  char service[PLAN_NAME_MAX]; /* "" any service (a service's own entry wins) */
  double value;                /* >= 1 */
  double reports;              /* the weight, in reports (1000 unless the plan says) */
};

/*
 * The rollout checklist (the seed's "Day 0 - Day 4+"): what proves an item without a person.
 * Each proof is about the item's stage (the day it belongs to) where a stage is meant.
 */
#define CHECKLIST_PROOF_MAP(XX)                                                                    \
  XX(MANUAL, "manual")                     /* a person: canaryctl check ROLLOUT ITEM */            \
  XX(CI_PASSED, "ci_passed")               /* a ci.completed that was ok */                        \
  XX(DEPLOY_SUCCEEDED, "deploy_succeeded") /* a deploy.completed that was ok */                    \
  XX(HEALTH_GREEN, "health_green")         /* a health.checked ok while the stage runs */          \
  XX(SMOKE_PASSED, "smoke_passed")         /* a smoke.completed ok with no failure */              \
  XX(STAGE_STARTED, "stage_started")       /* the stage started: "Enable beta cohort" */           \
  XX(STAGE_PASSED, "stage_passed")         /* its exit gate passed (after its minimum) */          \
  XX(DECISION, "decision")                 /* the stage's proceed or rollback decision */          \
  XX(FEEDBACK, "feedback")                 /* a feedback.received from the stage's cohort */       \
  XX(DIFF_SAMPLES, "diff_samples")         /* diff.samples from the stage's cohort */              \
  XX(APPROVALS, "approvals")               /* every role the plan's gates ask for approved */

enum checklist_proof {
#define XX(name, wire) PROOF_##name,
  CHECKLIST_PROOF_MAP(XX)
#undef XX
      PROOF_COUNT
};

struct checklist_item {
  char id[PLAN_NAME_MAX];     /* what `canaryctl check ROLLOUT ID` names */
  char text[PLAN_TEXT_MAX];   /* the plan's wording: "Run smoke tests" */
  int stage;                  /* the stage (the seed's day) it belongs to */
  bool required;              /* the last stage (GA) is not entered while it is open */
  bool remind;                /* a #releases reminder when its stage starts, if still open */
  enum checklist_proof proof; /* MANUAL: only a person ticks it */
};

struct plan {
  char name[PLAN_NAME_MAX];
  struct stage stages[PLAN_MAX_STAGES];
  int n_stages;
  struct rule rules[PLAN_MAX_RULES]; /* automatic halt rules */
  int n_rules;
  struct rule alerts[PLAN_MAX_ALERTS]; /* the plan's alert configuration */
  int n_alerts;
  struct plan_param params[PLAN_MAX_PARAMS]; /* halt_conditions */
  int n_params;
  struct plan_slo slos[PLAN_MAX_SLOS];
  int n_slos;
  struct plan_channels notify;
  int breaker_threshold;      /* consecutive errors that disable the cohort; 0 = off */
  bool canary_enabled;        /* initial value of system.canary.enabled */
  int64_t post_mortem_ms;     /* post-mortem due this long after a rollback (48 h) */
  int64_t rollback_verify_ms; /* rollback.verify_within: a green health check of the stable
                               * version this soon after a rollback verifies it (30 min); 0 off */
  int buckets;                /* bucketing resolution for the traffic split (10000) */
  /* Sample-ratio mismatch: does the canary get the share of requests the split says it should?
   * A chi-square test on the exposed cohort's `requests` counters; a mismatch halts the rollout
   * as an unhealthy split, not as a regression. */
  bool srm_enabled;
  bool srm_control;  /* the baseline variant is a control group as large as the canary
                               * (expected share 0.5); false: it is everyone else in the cohort's
                               * service (expected share traffic_percent / 100) */
  double srm_p;      /* estimate: mismatch when p < srm_p (0.001) */
  double srm_margin; /* evidence: a share within this relative margin of the
                               * configured one is healthy (0.2: 5% expected, 4-6% fine) */
  /* Decisions over counts (docs/statistics.md, "Evidence"). */
  enum plan_decide decide;    /* for every rule and gate that does not say: EVIDENCE (what
                               * the plan loader sets), ESTIMATE; DEFAULT (a zeroed plan built
                               * in code) means ESTIMATE */
  double false_halt_budget;   /* the chance a healthy release is halted by any rule over
                               * counts, over the whole plan (0.01); split across rules */
  double gate_alpha;          /* a gate's "< x" passes on a bound at confidence 1 - gate_alpha */
  double excess_margin;       /* at cohorts of margin_from_percent and above, the canary must
                               * be worse than (1 + margin) x the baseline to count (0.2) */
  double margin_from_percent; /* 25 */
  int64_t srm_window_ms;      /* requests counted over this window (5 min) */
  /* After GA ("Continue monitoring"): for watch_ms after the rollout completed, its halt rules
   * and alerts keep running on ga's cohort; a breach pages on-call with the evidence and the
   * rollback command (the rollout stays completed). holdback_percent of users stay on the old
   * version meanwhile (published in the split): the comparisons with the baseline have one. */
  int64_t watch_ms;        /* 0: no watch */
  double holdback_percent; /* 0: none (then only the absolute rules can decide) */
  struct plan_dispersion dispersion[PLAN_MAX_DISPERSION]; /* decisions.dispersion */
  int n_dispersion;
  /* The seed's Monitoring Dashboard, "business metrics": counters the dashboard charts on their
   * own (conversion, engagement). Every series is recorded (core/history); these are drawn
   * apart from the service's. Read only by the dashboard: nothing decides on it. */
  char dashboard_counters[PLAN_MAX_DASHBOARD][PLAN_NAME_MAX];
  int n_dashboard_counters;
  int64_t dashboard_step_ms; /* one history point per series per step of event time (1 min);
                              * 0 (a plan built in code): the default */
  struct checklist_item checklist[PLAN_MAX_CHECKLIST]; /* in the plan's order */
  int n_checklist;
  struct policy policy; /* who may do what (policy:, or canaryd --policy); zeroed: none */
};

/* The plan's learned dispersion of counter for service: its own entry, else the entry for any
 * service, else NULL (service may be NULL: any service's entry only). */
const struct plan_dispersion *plan_dispersion_for(const struct plan *p, const char *counter,
                                                  const char *service);

const char *check_name(enum check c);
bool check_parse(const char *s, enum check *out);
const char *rule_action_name(enum rule_action a);
bool rule_action_parse(const char *s, enum rule_action *out);

const char *checklist_proof_name(enum checklist_proof p);
bool checklist_proof_parse(const char *s, enum checklist_proof *out);

/* Index of the checklist item named id, or -1. */
int plan_checklist_index(const struct plan *p, const char *id);

/* Index of the stage named name, or -1. */
int plan_stage_index(const struct plan *p, const char *name);

/* The value of the named parameter in *out; false if the plan has none by that name. */
bool plan_param(const struct plan *p, const char *name, double *out);

/*
 * Check what the config layer cannot see field by field: at least one stage, percentages
 * strictly increasing and ending at 100, min <= max durations, criterion cohorts in range,
 * checklist ids distinct and a required item provable before the last stage.
 * Returns true when consistent, else false with a reason in why.
 */
bool plan_validate(const struct plan *p, char *why, size_t why_len);
/* plan_validate's check of checklist item i alone (the loader says it at the item's node). */
bool checklist_item_ok(const struct plan *p, int i, char *why, size_t why_len);

/*
 * The seed's literal semantics (docs/rules.md, "Evidence"): every rule and gate decides on its
 * estimate over its window; rules that exist only on evidence (decide: evidence in the plan —
 * "above the baseline" as an estimate is true half of the time) are dropped. What `canaryctl
 * simulate --decide estimate` and bench/decisions compare against.
 */
void plan_as_estimate(struct plan *p);

/* Field-by-field equality (used to show that the seed's JSON and the YAML give one plan). */
bool plan_equal(const struct plan *a, const struct plan *b);

#endif
