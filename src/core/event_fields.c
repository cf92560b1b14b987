/* The rows of EVENT_FIELD_MAP as data, and the accessors of its enum fields. */
#include "core/event_fields.h"

#include <string.h>

#define EV_SIZE(member) sizeof(((struct event *)0)->member)

/* An enum's wire name from an int, for the rows' wire(); one per enum row. */
#define WIRE_FN_STR(etype)
#define WIRE_FN_BOOL(etype)
#define WIRE_FN_I64(etype)
#define WIRE_FN_INT(etype)
#define WIRE_FN_COUNTERS(etype)
#define WIRE_FN_GAUGES(etype)
#define WIRE_FN_DISTS(etype)
#define WIRE_FN_SAMPLES(etype)
#define WIRE_FN_ENUM(etype)                                                                        \
  static const char *etype##_wire(int v) { return etype##_name((enum etype)v); }                   \
  _Static_assert(sizeof(enum etype) == sizeof(int), #etype ": read and written as an int");
#define XX(id, name, kind, member, types, req, lo, hi, etype, digest) WIRE_FN_##kind(etype)
EVENT_FIELD_MAP(XX)
#undef XX

#define ROW_WIRE_STR(etype) NULL, 0
#define ROW_WIRE_BOOL(etype) NULL, 0
#define ROW_WIRE_I64(etype) NULL, 0
#define ROW_WIRE_INT(etype) NULL, 0
#define ROW_WIRE_COUNTERS(etype) NULL, 0
#define ROW_WIRE_GAUGES(etype) NULL, 0
#define ROW_WIRE_DISTS(etype) NULL, 0
#define ROW_WIRE_SAMPLES(etype) NULL, 0
#define ROW_WIRE_ENUM(etype) etype##_wire, (int)(etype##_COUNT_)

/* The value count of each enum a row names (the enums' own COUNT constants). */
#define incident_kind_COUNT_ INCIDENT_KIND_COUNT
#define sentiment_COUNT_ SENTIMENT_COUNT
#define approval_role_COUNT_ APPROVAL_ROLE_COUNT
#define alert_kind_COUNT_ ALERT_KIND_COUNT
#define command_action_COUNT_ COMMAND_ACTION_COUNT
#define variant_COUNT_ VARIANT_COUNT

const struct event_field event_fields[EVENT_FIELD_COUNT] = {
#define XX(id, nm, kind, member, types, req, lo, hi, etype, dig)                                   \
  [EVENT_F_##id] = {nm,                                                                            \
                    EVENT_FIELD_##kind,                                                            \
                    (types),                                                                       \
                    (req),                                                                         \
                    offsetof(struct event, member),                                                \
                    EV_SIZE(member),                                                               \
                    (lo),                                                                          \
                    (hi),                                                                          \
                    ROW_WIRE_##kind(etype),                                                        \
                    (dig)},
    EVENT_FIELD_MAP(XX)
#undef XX
};

int event_field_enum_get(const struct event *ev, const struct event_field *f) {
  int v;
  memcpy(&v, (const char *)ev + f->off, sizeof v);
  return v;
}

void event_field_enum_set(struct event *ev, const struct event_field *f, int v) {
  memcpy((char *)ev + f->off, &v, sizeof v);
}
