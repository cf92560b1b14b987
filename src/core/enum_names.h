/*
 * The wire names of an enum from its X-macro map, one macro for every enum of the tree: a map is
 * XX(NAME, "wire") per value, in the enum's order, and the enum ends with a PREFIX_COUNT.
 *
 *   ENUM_NAMES(rollout_state, rollout_state, ROLLOUT_STATE_MAP, ROLLOUT_STATE_COUNT)
 *     static const char *const rollout_state_names[]   the table
 *     const char *rollout_state_name(enum rollout_state) the name, "?" for a value out of range
 *   ENUM_PARSE(rollout_state, rollout_state, ROLLOUT_STATE_COUNT)   (after ENUM_NAMES)
 *     bool rollout_state_parse(const char *, enum rollout_state *)  true and *out set when
 *                                                                  s names a value
 *
 * Only C11: the core includes this too.
 */
#ifndef CANARY_ENUM_NAMES_H
#define CANARY_ENUM_NAMES_H

#include <stdbool.h>
#include <string.h>

#define ENUM_NAMES_WIRE_(name, wire) wire,

#define ENUM_NAMES(prefix, type, MAP, COUNT)                                                       \
  static const char *const prefix##_names[] = {MAP(ENUM_NAMES_WIRE_)};                             \
  _Static_assert(sizeof prefix##_names / sizeof prefix##_names[0] == (unsigned)(COUNT),            \
                 #prefix ": one name per value");                                                  \
  const char *prefix##_name(enum type v) {                                                         \
    return (unsigned)v < (unsigned)(COUNT) ? prefix##_names[v] : "?";                              \
  }

/* The first characters are compared before strcmp: a message's type is parsed for every
 * message. */
#define ENUM_PARSE(prefix, type, COUNT)                                                            \
  bool prefix##_parse(const char *s, enum type *out) {                                             \
    for (int i = 0; i < (int)(COUNT); i++) {                                                       \
      if (s[0] == prefix##_names[i][0] && strcmp(s, prefix##_names[i]) == 0) {                     \
        *out = (enum type)i;                                                                       \
        return true;                                                                               \
      }                                                                                            \
    }                                                                                              \
    return false;                                                                                  \
  }

#endif
