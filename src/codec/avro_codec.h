/* The contract's events and outputs as Avro in the Confluent wire format (avro-c underneath). */
#ifndef CANARY_AVRO_CODEC_H
#define CANARY_AVRO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/effect.h"
#include "core/error.h"
#include "core/event.h"

/*
 * The wire format of every message on canaryd's topics: byte 0 is the magic byte 0x00, bytes 1..4
 * the schema id (big-endian, ids in schemas/ids.txt), then the Avro binary encoding of one record
 * of that schema. Nothing follows the record.
 */
#define AVRO_CODEC_MAGIC 0x00
#define AVRO_CODEC_HEADER 5

/*
 * A growable byte buffer that the encoders fill. Zero-initialise (AVRO_BUF_INIT), reuse across
 * calls (an encoder replaces the contents and keeps the memory), release with avro_buf_free().
 */
struct avro_buf {
  unsigned char *data;
  size_t len, cap;
};
#define AVRO_BUF_INIT                                                                              \
  { 0 }
void avro_buf_free(struct avro_buf *b);

/*
 * One dead letter as decoded. Every pointer is into memory owned by the codec, valid until the
 * next decode call on the same codec (or its destruction). key is NULL when the message had none.
 */
struct avro_dlq {
  const unsigned char *original;
  size_t original_len;
  const char *topic;
  int32_t partition;
  int64_t offset;
  const unsigned char *key;
  size_t key_len;
  const char *reason;
  int64_t time_ms; /* when it was rejected */
};

/*
 * The codec: the parsed schemas and reusable avro-c values, readers and writers. Not thread-safe:
 * one per thread. Decoding allocates only inside avro-c's values and while the metric arrays grow.
 * (Beware: libavro itself exports avro_codec, avro_codec_encode, avro_codec_decode and
 * avro_codec_reset for its data files; this module must never define those four names.)
 */
typedef struct avro_codec avro_codec_t;

/*
 * Parse the embedded schemas and check them against what this code reads and writes.
 * Returns CANARY_OK and sets *out; CANARY_ENOMEM; CANARY_EINVALID when an embedded schema does
 * not match the code (a build error, reported on stderr with the schema and field).
 */
int avro_codec_new(avro_codec_t **out) CANARY_MUSTCHECK;
/* Free the codec and everything it owns; NULL is fine. */
void avro_codec_destroy(avro_codec_t *c);

/* The schema id in a framed message, or -1 when the message has no 5-byte header with magic 0. */
int32_t avro_codec_schema_id(const void *buf, size_t len);

/* The embedded schema text (JSON) for id, or NULL when unknown; for registering and canaryctl. */
const char *avro_codec_schema_json(int32_t id);
/* The topic of schema id ("canary.deploy", ...), or NULL when unknown. */
const char *avro_codec_schema_topic(int32_t id);

/* The input topic of an event type: "canary.deploy", "canary.commands" or "canary.metrics";
 * NULL for a value out of range. */
const char *avro_codec_topic_of(enum event_type t);

/*
 * Decode one Kafka message value (framed) into ev, which is zeroed first. The schema id picks the
 * record type (1, 2 or 3); whether it fits the topic it came from is the caller's business.
 * Returns CANARY_OK;
 *   CANARY_EPARSE   the bytes are not a message of ours: no header, bad magic byte, an unknown or
 *                   non-input schema id, an Avro body truncated, garbled or with trailing bytes;
 *   CANARY_EINVALID the record decoded but is not a valid contract event: unknown type string,
 *                   unknown kind/role/action/variant/sentiment, a field missing for its type or set
 *                   though its type has no such field, a string longer than its event field or
 *                   containing NUL, a non-finite metric value, or event_validate() refused it;
 *   CANARY_ENOMEM.
 * why (may be NULL) says what and where: "severity: must be 1..4, got 7",
 * "body: field 'rollout' at byte 9 of 13: truncated (length 7, 3 bytes left)".
 * Metric payloads (counters, gauges, distributions, samples and their names) live in memory
 * owned by the codec, valid until the next decode call on it.
 */
int avro_codec_decode_event(avro_codec_t *c, const void *buf, size_t len, struct event *ev,
                            char *why, size_t why_len) CANARY_MUSTCHECK;

/*
 * The event time of a framed input message, without decoding the rest: for ordering messages
 * before they are decoded. CANARY_OK says nothing about the rest of the message, which
 * avro_codec_decode_event may still refuse; CANARY_EPARSE (or another error of
 * avro_codec_decode_event) when the time cannot be read: no header, an unknown or non-input
 * schema id, the fields before it truncated or garbled.
 */
int avro_codec_event_time(avro_codec_t *c, const void *buf, size_t len,
                          int64_t *time_ms) CANARY_MUSTCHECK;
/* The same, with the event id as it lies in buf (*id points into it; NULL when not read that
 * way): an id to look up ahead of time, not a validated one. */
int avro_codec_event_head(avro_codec_t *c, const void *buf, size_t len, int64_t *time_ms,
                          const char **id, size_t *id_len) CANARY_MUSTCHECK;

/*
 * Encode ev for the topic of its type (avro_codec_topic_of) into out, replacing its contents:
 * header and body. Only the fields the type uses are written; the rest are null. A flag.set
 * with an empty rollout has rollout null. Returns CANARY_OK; CANARY_EINVALID when ev is not a
 * valid event (event_validate(), an enum out of range, an unterminated string, a metric name
 * given twice); CANARY_ENOMEM. avro_codec_decode_event() reads it back equal.
 */
int avro_codec_encode_event(avro_codec_t *c, const struct event *ev,
                            struct avro_buf *out) CANARY_MUSTCHECK;

/*
 * The outputs. Each encoder replaces out's contents with the framed record and returns CANARY_OK,
 * CANARY_EINVALID (an enum out of range, an unterminated string, a count out of bounds) or
 * CANARY_ENOMEM. Empty optional strings (from_stage, to_stage, rule, decision_id) are written as
 * null. Decision evidence is a map: an item whose key repeats an earlier one is left out.
 */
int avro_codec_encode_decision(avro_codec_t *c, const struct decision *d,
                               struct avro_buf *out) CANARY_MUSTCHECK;
/* slack_json: the Block Kit payload (notification_slack_payload()); NULL is written as "". */
int avro_codec_encode_notification(avro_codec_t *c, const struct notification *n,
                                   const char *slack_json, struct avro_buf *out) CANARY_MUSTCHECK;
int avro_codec_encode_traffic(avro_codec_t *c, const struct traffic_split *t,
                              struct avro_buf *out) CANARY_MUSTCHECK;
/* original may be NULL when len is 0; key NULL = no key (null), else key_len bytes. */
int avro_codec_encode_dlq(avro_codec_t *c, const void *original, size_t len, const char *topic,
                          int32_t partition, int64_t offset, const void *key, size_t key_len,
                          const char *reason, int64_t time_ms,
                          struct avro_buf *out) CANARY_MUSTCHECK;

/*
 * Decoders for the outputs (canaryctl, tests, consumers written in C). Each zeroes its struct
 * first and returns CANARY_OK, CANARY_EPARSE (not a framed record of that schema: why says
 * what), CANARY_EINVALID (decoded, but an enum name is unknown, a string does not fit its field,
 * too many evidence items or cohorts) or CANARY_ENOMEM. Null optional strings become "".
 * A null evidence value has no evidence_kind and is left out.
 */
int avro_codec_decode_decision(avro_codec_t *c, const void *buf, size_t len, struct decision *d,
                               char *why, size_t why_len) CANARY_MUSTCHECK;
/*
 * slack (may be NULL) receives the Block Kit JSON, NUL-terminated; CANARY_EFULL when it needs
 * more than slack_len bytes (n is filled all the same).
 */
int avro_codec_decode_notification(avro_codec_t *c, const void *buf, size_t len,
                                   struct notification *n, char *slack, size_t slack_len, char *why,
                                   size_t why_len) CANARY_MUSTCHECK;
/* Schema id 14 (written) or 12 (the first version: its cohorts have no segments or features). */
int avro_codec_decode_traffic(avro_codec_t *c, const void *buf, size_t len, struct traffic_split *t,
                              char *why, size_t why_len) CANARY_MUSTCHECK;
/* The pointers in *d are owned by the codec: see struct avro_dlq. */
int avro_codec_decode_dlq(avro_codec_t *c, const void *buf, size_t len, struct avro_dlq *d,
                          char *why, size_t why_len) CANARY_MUSTCHECK;

#endif
