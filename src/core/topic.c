/* The contract's topics as data, from TOPIC_MAP. */
#include "core/topic.h"

#include <string.h>

#include "core/enum_names.h"

/* The names as ENUM_NAMES lays them out (the map has more columns than XX(NAME, "wire")). */
static const char *const topic_names[] = {
#define XX(id, name, input, sized, compact, types) name,
    TOPIC_MAP(XX)
#undef XX
};
_Static_assert(sizeof topic_names / sizeof topic_names[0] == TOPIC_COUNT, "a name per topic");

const char *topic_name(enum topic t) { return (unsigned)t < TOPIC_COUNT ? topic_names[t] : "?"; }

ENUM_PARSE(topic, topic, TOPIC_COUNT)

static const struct {
  uint32_t types;
  bool sized, compact;
} TOPICS[TOPIC_COUNT] = {
#define XX(id, name, input, sized, compact, types) [TOPIC_##id] = {(types), (sized), (compact)},
    TOPIC_MAP(XX)
#undef XX
};

uint32_t topic_event_types(enum topic t) { return (unsigned)t < TOPIC_COUNT ? TOPICS[t].types : 0; }

enum topic topic_of_event(enum event_type type) {
  if ((unsigned)type >= EVENT_TYPE_COUNT)
    return TOPIC_COUNT;
  for (int t = 0; t < TOPIC_INPUT_COUNT; t++)
    if (TOPICS[t].types & 1u << type)
      return (enum topic)t;
  return TOPIC_COUNT;
}

bool topic_sized(enum topic t) { return (unsigned)t < TOPIC_COUNT && TOPICS[t].sized; }

bool topic_compact(enum topic t) { return (unsigned)t < TOPIC_COUNT && TOPICS[t].compact; }
