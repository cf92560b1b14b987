/* What the avro_codec_*.c files share: the codec object, its schema slots and small helpers. */
#ifndef CANARY_AVRO_CODEC_INTERNAL_H
#define CANARY_AVRO_CODEC_INTERNAL_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/avro_codec.h"
#include "core/event_fields.h"
#include "core/topic.h"

/* One slot per schema the code knows; the schema id comes from schemas/ids.txt. */
enum avro_slot {
  SLOT_DEPLOY,
  SLOT_COMMANDS,
  SLOT_METRICS,
  SLOT_DECISION,
  SLOT_NOTIFICATION,
  SLOT_TRAFFIC,
  SLOT_DLQ,
  /* Decoding only: the versions before the signature (schema ids 1 and 2). Messages written
   * with them stay in the topics across an upgrade; they read as unsigned (docs/schemas.md). */
  SLOT_DEPLOY_V1,
  SLOT_COMMANDS_V1,
  /* The traffic split before the cohorts' segments and features (schema id 12): a consumer
   * reading canary.flags from its start meets splits written with it; they read as none. */
  SLOT_TRAFFIC_V1,
  SLOT_COUNT
};
/* The input slots, every version. */
#define SLOTS_INPUT                                                                                \
  (1u << SLOT_DEPLOY | 1u << SLOT_COMMANDS | 1u << SLOT_METRICS | 1u << SLOT_DEPLOY_V1 |           \
   1u << SLOT_COMMANDS_V1)

#define AVRO_SLOT_MAX_FIELDS 24

/*
 * The fields of each record, as positions in the code's field specs (avro_codec.c): the schema's
 * own indexes are looked up by name, so the .avsc may order fields as it likes.
 */
enum deploy_field {
  DF_ID,
  DF_ROLLOUT,
  DF_TIME,
  DF_TYPE,
  DF_SERVICE,
  DF_VERSION,
  DF_BASELINE_VERSION,
  DF_OK,
  DF_PASSED,
  DF_FAILED,
  DF_COUNT,
  DF_COHORT,
  DF_INCIDENT,
  DF_SEVERITY,
  DF_KIND,
  DF_SENTIMENT,
  DF_ROLE,
  DF_ACTOR,
  DF_DETAIL,
  DF_SIGNATURE,
  DF_COUNT_ /* a new field: last, and a V1 slot */
};
enum command_field {
  CF_ID,
  CF_ROLLOUT,
  CF_TIME,
  CF_TYPE,
  CF_ACTION,
  CF_FORCE,
  CF_ACTOR,
  CF_REASON,
  CF_FLAG,
  CF_VALUE,
  CF_ITEM,
  CF_SIGNATURE,
  CF_COUNT_
};
enum metric_field {
  MF_ID,
  MF_ROLLOUT,
  MF_TIME,
  MF_TYPE,
  MF_COHORT,
  MF_VARIANT,
  MF_INTERVAL_MS,
  MF_COUNTERS,
  MF_GAUGES,
  MF_DISTRIBUTIONS,
  MF_SAMPLES,
  MF_COUNT_
};
enum decision_field {
  XF_ID,
  XF_ROLLOUT,
  XF_SEQ,
  XF_TIME,
  XF_ACTION,
  XF_FROM_STAGE,
  XF_TO_STAGE,
  XF_STATE,
  XF_REASON,
  XF_RULE,
  XF_EVIDENCE,
  XF_ACTOR,
  XF_COUNT_
};
enum notification_field {
  NF_ID,
  NF_ROLLOUT,
  NF_TIME,
  NF_CHANNEL,
  NF_CHANNEL_KIND,
  NF_SEVERITY,
  NF_TITLE,
  NF_TEXT,
  NF_DECISION_ID,
  NF_SLACK,
  NF_COUNT_
};
enum traffic_field {
  TF_ID,
  TF_ROLLOUT,
  TF_SERVICE,
  TF_VERSION,
  TF_BASELINE_VERSION,
  TF_TIME,
  TF_EXPOSURE_PERCENT,
  TF_CANARY_ENABLED,
  TF_BREAKER_OPEN,
  TF_COHORTS,
  TF_SALT,
  TF_BUCKETS,
  TF_COUNT_
};
enum dlq_field {
  LF_ORIGINAL,
  LF_TOPIC,
  LF_PARTITION,
  LF_OFFSET,
  LF_KEY,
  LF_REASON,
  LF_TIME,
  LF_COUNT_
};
/* Branches of the evidence union <null|boolean|long|double|string> (the spec pins the order). */
enum { EV_NULL, EV_BOOL, EV_LONG, EV_DOUBLE, EV_STRING };

/*
 * A field the code reads and writes: its name and its type as a signature (avro_codec_shape_signature):
 * n null, b boolean, i int, l long, f float, d double, s string, y bytes, <a|b> union, [T] array,
 * {T} map, (name:T,...) record. avro_codec_new() refuses an embedded schema whose fields differ.
 */
struct avro_field_spec {
  const char *name;
  const char *sig;
};

/*
 * A compiled schema for the byte-level check that runs before avro-c sees a body (avro-c 1.11.1
 * allocates whatever a length prefix says and leaks on truncation: see avro_codec_check.c).
 */
struct avro_shape;

struct avro_codec_slot {
  int32_t id;
  const char *topic;
  const char *record;                 /* the record's name, e.g. "DeployEvent" */
  const struct avro_field_spec *spec; /* in the code's order */
  size_t n_spec;
  avro_schema_t schema;
  avro_value_iface_t *iface;
  avro_value_t enc; /* filled by the encoders */
  avro_value_t dec; /* filled by the decoders: what decoded data borrows */
  bool have_enc, have_dec;
  struct avro_shape *shape;
  int idx[AVRO_SLOT_MAX_FIELDS]; /* schema field index of spec[k] */
  /* Input slots: the row of event_fields (core/event_fields.h) that spec[k] holds for an event
   * type, -1 when the type has no such field (avro_codec_event_bind). */
  signed char row[AVRO_SLOT_MAX_FIELDS][EVENT_TYPE_COUNT];
};

struct avro_codec {
  struct avro_codec_slot slot[SLOT_COUNT];
  avro_reader_t reader;
  avro_writer_t writer;

  /* The metric payloads of the last decoded event (struct event borrows them). The fast path
   * for metrics keeps the names after the values in `values` (see fast_reserve). */
  struct metric_value *counters, *gauges;
  size_t cap_counters, cap_gauges;
  struct metric_dist *dists;
  size_t cap_dists;
  double *values;
  size_t cap_values;
  struct diff_sample *samples;
  size_t cap_samples;
};

/* ---- avro_codec_check.c ---- */

/* Compile s; NULL with why set when it uses what the check does not support (recursion). */
struct avro_shape *avro_codec_shape_compile(avro_schema_t s, char *why, size_t why_len);
void avro_codec_shape_free(struct avro_shape *shape);
/*
 * Walk body as one record of shape without allocating: every length within the body, union
 * indexes and enum symbols in range, booleans 0 or 1, ints within 32 bits, strings valid UTF-8,
 * block sizes that agree, nothing after the record. CANARY_OK or CANARY_EPARSE with why
 * ("body: field 'rollout' at byte 9 of 13: truncated (length 7, 3 bytes left)").
 */
int avro_codec_shape_check(const struct avro_shape *shape, const unsigned char *body, size_t len,
                           char *why, size_t why_len) CANARY_MUSTCHECK;
/* Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as the check
 * requires of every string. */
bool avro_codec_utf8_ok(const unsigned char *s, size_t n);
/* Write the type signature of s into buf (see struct avro_field_spec); false when it is cut. */
bool avro_codec_shape_signature(avro_schema_t s, char *buf, size_t len);

/* ---- avro_codec_event.c (the helpers also for avro_codec_event_fast.c and _encode.c) ---- */

/* The event types of each input topic (TOPIC_MAP, core/topic.h): a record type per topic. */
#define T_DEPLOY topic_event_types(TOPIC_DEPLOY)
#define T_COMMANDS topic_event_types(TOPIC_COMMANDS)
#define T_METRICS topic_event_types(TOPIC_METRICS)

/*
 * The nullable fields of a deploy or command record are the rows of EVENT_FIELD_MAP
 * (core/event_fields.h) that the record's types carry, found by name in the slot's spec when the
 * codec is made (avro_codec_event_bind): which types use a field and which must give it are the
 * map's. `kind` is two rows for one Avro field: incident kind and alert kind.
 */
typedef struct event_field efield_t;

/* The row spec field k of the slot holds for type t, or NULL. */
const efield_t *avro_codec_row_of(const struct avro_codec_slot *sl, int k, enum event_type t);

/* Grow *arr to hold n items of size each. */
bool avro_codec_grow(void **arr, size_t *cap, size_t n, size_t size);
#define GROW(c, arr, n) avro_codec_grow((void **)&(c)->arr, &(c)->cap_##arr, (n), sizeof *(c)->arr)

/*
 * avro_codec_decode_event without its fast path for canary.metrics: every message through
 * avro-c's generic values. The fast path must agree with it on every input (return code, why,
 * event); tests/unit/test_avro_fast.c compares the two.
 */
int avro_codec_decode_event_generic(avro_codec_t *c, const void *buf, size_t len, struct event *ev,
                                    char *why, size_t why_len) CANARY_MUSTCHECK;

/*
 * Bind an input slot's spec to the rows of EVENT_FIELD_MAP by name (sl->row): for every row and
 * every event type of the slot's topic that carries it, the spec field of that name. Returns
 * CANARY_OK (also for a slot that is not an input); CANARY_EINVALID with why when a row has no
 * field in the record: a field added to the map but not to the schema and its spec.
 */
int avro_codec_event_bind(struct avro_codec_slot *sl, enum avro_slot s, char *why,
                          size_t why_len) CANARY_MUSTCHECK;

/* ---- avro_codec.c: shared by the event and output coders ---- */

/*
 * Check the frame of buf against the slots allowed (a bit per enum avro_slot), check the body and
 * read it into that slot's dec value. Sets *slot. CANARY_OK, CANARY_EPARSE or CANARY_ENOMEM.
 */
int avro_codec_read(avro_codec_t *c, const void *buf, size_t len, unsigned allowed,
                    struct avro_codec_slot **slot, char *why, size_t why_len) CANARY_MUSTCHECK;
/* Reset and return the slot's enc value for filling. */
avro_value_t *avro_codec_begin(avro_codec_t *c, enum avro_slot s);
/* Frame and write the slot's enc value into out (contents replaced). */
int avro_codec_finish(avro_codec_t *c, enum avro_slot s, struct avro_buf *out) CANARY_MUSTCHECK;

/* Field access by spec position k (not the schema's index). */
int avro_codec_field(struct avro_codec_slot *sl, avro_value_t *rec, int k, avro_value_t *out);

/*
 * Reading: a nullable field's value. Returns 1 and sets *v to the value when present, 0 when
 * null, -1 on an avro-c error. A field that is not a union is always present.
 */
int avro_codec_opt(avro_value_t *field, avro_value_t *v);
/* A string value (size without NUL); rejects embedded NUL with CANARY_EINVALID naming field. */
int avro_codec_get_str(avro_value_t *v, const char *field, const char **s, size_t *n, char *why,
                       size_t why_len) CANARY_MUSTCHECK;
/* Copy a string value into dst[size]; CANARY_EINVALID naming field when it does not fit. */
int avro_codec_copy_str(avro_value_t *v, const char *field, char *dst, size_t size, char *why,
                        size_t why_len) CANARY_MUSTCHECK;

/* Writing: fields by spec position. Strings are checked to end within size (else EINVALID). */
int avro_codec_put_str(struct avro_codec_slot *sl, avro_value_t *rec, int k, const char *s,
                       size_t size) CANARY_MUSTCHECK;
/* Nullable string: null when s is empty (or NULL). */
int avro_codec_put_ostr(struct avro_codec_slot *sl, avro_value_t *rec, int k, const char *s,
                        size_t size) CANARY_MUSTCHECK;
int avro_codec_put_long(struct avro_codec_slot *sl, avro_value_t *rec, int k,
                        int64_t v) CANARY_MUSTCHECK;
int avro_codec_put_int(struct avro_codec_slot *sl, avro_value_t *rec, int k,
                       int32_t v) CANARY_MUSTCHECK;
int avro_codec_put_bool(struct avro_codec_slot *sl, avro_value_t *rec, int k,
                        bool v) CANARY_MUSTCHECK;
int avro_codec_put_double(struct avro_codec_slot *sl, avro_value_t *rec, int k,
                          double v) CANARY_MUSTCHECK;
/* Select the union branch of field k: null (branch 0) when !present, else branch 1 into *v. */
int avro_codec_put_branch(struct avro_codec_slot *sl, avro_value_t *rec, int k, bool present,
                          avro_value_t *v) CANARY_MUSTCHECK;

/* Map an avro-c error code (errno style) to ours. */
int avro_codec_err(int avro_rc);

/* s (n bytes) made fit for a message in dst[size]: control characters as '?', "..." when cut. */
const char *avro_codec_excerpt(const char *s, size_t n, char *dst, size_t size);

#endif
