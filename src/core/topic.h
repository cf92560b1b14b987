/* The contract's Kafka topics, once: the bus, the store, the codecs and the programs take them from here. */
#ifndef CANARY_TOPIC_H
#define CANARY_TOPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event.h"

/*
 * XX(ID, "name", input, sized, compact, types)
 *
 *   ID       TOPIC_<ID>
 *   "name"   the contract's name (bus_topic() adds the installation's prefix)
 *   input    1: canaryd consumes it (a shard is one partition number across the inputs, so the
 *            inputs come first and their order indexes bus_input_topics[], store_input_topics[]
 *            and the stored offsets: never reorder them)
 *   sized    1: created with the partitions asked for; else one partition
 *   compact  1: a compacted topic (the latest traffic split per key)
 *   types    the event types it carries (the input topics' share of enum event_type)
 */
#define TOPIC_MAP(XX)                                                                              \
  XX(DEPLOY, "canary.deploy", 1, 1, 0,                                                             \
     EVENT_T(ROLLOUT_REQUESTED) | EVENT_T(CI_COMPLETED) | EVENT_T(DEPLOY_COMPLETED) |              \
         EVENT_T(HEALTH_CHECKED) | EVENT_T(SMOKE_COMPLETED) | EVENT_T(CRASH_REPORTED) |            \
         EVENT_T(INCIDENT_OPENED) | EVENT_T(INCIDENT_RESOLVED) | EVENT_T(FEEDBACK_RECEIVED) |      \
         EVENT_T(APPROVAL_GRANTED) | EVENT_T(ALERT_RAISED))                                        \
  XX(METRICS, "canary.metrics", 1, 1, 0, EVENT_T(METRICS) | EVENT_T(DIFF_SAMPLES))                 \
  XX(COMMANDS, "canary.commands", 1, 1, 0, EVENT_T(COMMAND) | EVENT_T(FLAG_SET))                   \
  XX(DECISIONS, "canary.decisions", 0, 1, 0, 0)                                                    \
  XX(NOTIFICATIONS, "canary.notifications", 0, 0, 0, 0)                                            \
  XX(FLAGS, "canary.flags", 0, 0, 1, 0)                                                            \
  XX(DLQ, "canary.dlq", 0, 0, 0, 0)

enum topic {
#define XX(id, name, input, sized, compact, types) TOPIC_##id,
  TOPIC_MAP(XX)
#undef XX
      TOPIC_COUNT
};

/* How many input topics: TOPIC_0 .. TOPIC_INPUT_COUNT-1. */
enum {
#define XX(id, name, input, sized, compact, types) +(input)
  TOPIC_INPUT_COUNT = 0 TOPIC_MAP(XX)
#undef XX
};
#define XX(id, name, input, sized, compact, types)                                                 \
  _Static_assert(((int)TOPIC_##id < (int)TOPIC_INPUT_COUNT) == (input), "inputs first: " name);
TOPIC_MAP(XX)
#undef XX

/* The contract name of t ("canary.deploy", ...); "?" for a value out of range. */
const char *topic_name(enum topic t);
/* Parse a contract name (no prefix): true and *out set when s names a topic. */
bool topic_parse(const char *s, enum topic *out);
/* The event types t carries (a bit per enum event_type); 0 for an output topic. */
uint32_t topic_event_types(enum topic t);
/* The input topic of an event type; TOPIC_COUNT for a value out of range. */
enum topic topic_of_event(enum event_type type);
/* Whether t is created with the partitions asked for (else one), and whether it is compacted. */
bool topic_sized(enum topic t);
bool topic_compact(enum topic t);

#endif
