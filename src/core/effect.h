/* What a step of the state machine asks the world to do: decisions, notifications, traffic. */
#ifndef CANARY_EFFECT_H
#define CANARY_EFFECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/event.h"
#include "core/plan.h"

#define ROLLOUT_STATE_MAP(XX)                                                                      \
  XX(PENDING, "pending")         /* waiting for the current stage's entry gate */                  \
  XX(RUNNING, "running")         /* exposed at the stage's share, soaking to its exit */           \
  XX(PAUSED, "paused")           /* stopped by a person or a halt rule: no expansion */            \
  XX(ROLLED_BACK, "rolled_back") /* terminal: exposure 0, the baseline serves everyone */          \
  XX(COMPLETED, "completed")     /* terminal: the last stage (100%) is reached */

enum rollout_state {
#define XX(name, wire) ROLLOUT_##name,
  ROLLOUT_STATE_MAP(XX)
#undef XX
      ROLLOUT_STATE_COUNT
};

#define DECISION_ACTION_MAP(XX)                                                                    \
  XX(START, "start")                                                                               \
  XX(ADVANCE, "advance")                                                                           \
  XX(HOLD, "hold")                                                                                 \
  XX(PAUSE, "pause")                                                                               \
  XX(RESUME, "resume")                                                                             \
  XX(HALT, "halt")                                                                                 \
  XX(ROLLBACK, "rollback")                                                                         \
  XX(PROMOTE, "promote")                                                                           \
  XX(COMPLETE, "complete")                                                                         \
  XX(FLAG, "flag")                                                                                 \
  XX(CHECK, "check")   /* a person ticked a checklist item */                                      \
  XX(VERIFY, "verify") /* a rollback verified, or not, by the stable version's health */

enum decision_action {
#define XX(name, wire) DECISION_##name,
  DECISION_ACTION_MAP(XX)
#undef XX
      DECISION_ACTION_COUNT
};

#define EVIDENCE_MAX 16
#define EVIDENCE_KEY_MAX 40
/* Room for a rule's whole explanation (a metric finding's explain[400]): cut at 160, the
 * demo's halt notification ended "(lower bound 0.", a number cut in half. */
#define EVIDENCE_STR_MAX 400

enum evidence_kind { EVIDENCE_NUM, EVIDENCE_INT, EVIDENCE_STR, EVIDENCE_BOOL };

/* One measured or observed value that a decision rests on. */
struct evidence_item {
  char key[EVIDENCE_KEY_MAX];
  enum evidence_kind kind;
  double num;
  int64_t i;
  bool b;
  char str[EVIDENCE_STR_MAX];
};

struct decision {
  char id[EVENT_NAME_MAX + 24]; /* "<rollout>/<seq>": deterministic */
  char rollout[EVENT_NAME_MAX];
  int64_t seq; /* 1, 2, ... per rollout */
  int64_t time_ms;
  enum decision_action action;
  char from_stage[PLAN_NAME_MAX]; /* "" when none */
  char to_stage[PLAN_NAME_MAX];
  enum rollout_state state; /* state after the decision */
  char reason[EVENT_TEXT_MAX + 128];
  char rule[PLAN_NAME_MAX]; /* the rule or gate that decided, "" for a plain command */
  struct evidence_item evidence[EVIDENCE_MAX];
  int n_evidence;
  char actor[EVENT_NAME_MAX]; /* "canaryd" for automatic decisions */
};

#define NOTIFY_CHANNEL_MAP(XX)                                                                     \
  XX(RELEASES, "releases")                                                                         \
  XX(ONCALL, "oncall")                                                                             \
  XX(STATUS_PAGE, "status_page")                                                                   \
  XX(EXECUTIVE, "executive")

enum notify_channel {
#define XX(name, wire) NOTIFY_##name,
  NOTIFY_CHANNEL_MAP(XX)
#undef XX
      NOTIFY_CHANNEL_COUNT
};

#define NOTIFY_SEVERITY_MAP(XX) XX(INFO, "info") XX(WARNING, "warning") XX(CRITICAL, "critical")
enum notify_severity {
#define XX(name, wire) NOTIFY_SEV_##name,
  NOTIFY_SEVERITY_MAP(XX)
#undef XX
      NOTIFY_SEVERITY_COUNT
};

/* A message for people. The codec renders it as Slack Block Kit; the core only says what. */
struct notification {
  char id[EVENT_NAME_MAX + 24]; /* "<rollout>/n<k>" */
  char rollout[EVENT_NAME_MAX];
  int64_t time_ms;
  enum notify_channel channel;
  char target[PLAN_TEXT_MAX]; /* the plan's address for the channel, e.g. "#releases" */
  enum notify_severity severity;
  char title[PLAN_TEXT_MAX];
  char text[512];
  char decision_id[EVENT_NAME_MAX + 24]; /* the decision it reports, "" if none */
};

/* The traffic split that deployments in clusters apply (canary.flags, key = service). */
struct traffic_cohort {
  char name[PLAN_NAME_MAX];
  double percent; /* the cohort's cumulative share of users when enabled */
  bool enabled;   /* canary served to this cohort now */
  bool kill;      /* the cohort's kill switch is off (canary.cohort.<name>.enabled=false) */
  /* The plan's named user groups of the cohort (eng-team, pilot-partners, ...) and the features
   * it gets: a deployment routes these users to the canary as well as the bucketed share. */
  char segments[PLAN_MAX_LIST][PLAN_NAME_MAX];
  int n_segments;
  char features[PLAN_MAX_LIST][PLAN_NAME_MAX];
  int n_features;
};

struct traffic_split {
  char id[EVENT_NAME_MAX + 24]; /* "<rollout>/f<k>" */
  char rollout[EVENT_NAME_MAX];
  char service[EVENT_NAME_MAX];
  char version[EVENT_NAME_MAX];
  char baseline_version[EVENT_NAME_MAX];
  int64_t time_ms;
  double exposure_percent; /* share of users on the canary now */
  bool canary_enabled;     /* system.canary.enabled as seen by this rollout */
  bool breaker_open;       /* the circuit breaker disabled the current cohort */
  struct traffic_cohort cohorts[PLAN_MAX_STAGES];
  int n_cohorts;
  char salt[EVENT_NAME_MAX]; /* murmur3(salt ":" user) % buckets picks the bucket */
  int buckets;
};

enum effect_kind { EFFECT_DECISION, EFFECT_NOTIFICATION, EFFECT_TRAFFIC };

struct effect {
  enum effect_kind kind;
  union {
    struct decision decision;
    struct notification notification;
    struct traffic_split traffic;
  } u;
};

/* An ordered, growable list of effects. Zero-initialise (EFFECTS_INIT) and effects_free(). */
struct effects {
  struct effect *items;
  size_t n, cap;
};
#define EFFECTS_INIT                                                                               \
  { 0 }

/* Append an uninitialised-but-zeroed effect of kind; NULL when memory is exhausted. */
struct effect *effects_push(struct effects *fx, enum effect_kind kind) CANARY_MUSTCHECK;
/* Forget the effects but keep the memory. */
void effects_clear(struct effects *fx);
void effects_free(struct effects *fx);
/* Number of effects of kind. */
size_t effects_count(const struct effects *fx, enum effect_kind kind);

/* Evidence helpers: add one key/value to d; silently ignored past EVIDENCE_MAX. */
void decision_add_num(struct decision *d, const char *key, double v);
void decision_add_int(struct decision *d, const char *key, int64_t v);
void decision_add_str(struct decision *d, const char *key, const char *v);
void decision_add_bool(struct decision *d, const char *key, bool v);
/* The evidence item named key, or NULL. */
const struct evidence_item *decision_evidence(const struct decision *d, const char *key);

const char *rollout_state_name(enum rollout_state s);
bool rollout_state_parse(const char *s, enum rollout_state *out);
const char *decision_action_name(enum decision_action a);
bool decision_action_parse(const char *s, enum decision_action *out);
const char *notify_channel_name(enum notify_channel c);
const char *notify_severity_name(enum notify_severity s);

/*
 * After snprintf(s, cap, ...) returned n: a text that did not fit (n >= cap) is made to end at
 * the last word that fits, with "..." — a reason cut mid-word ("promoted by bob: looks goo")
 * reads as a typo. A text that fit is left alone.
 */
void text_cut_at_word(char *s, size_t cap, int n);

#endif
