/*
 * struct rollout and struct flags as versioned JSON documents ("v":1): how the store keeps a
 * rollout (rollouts.body) and a shard's global kill switches (shards.global_flags).
 * Every field is written, enums by their wire names (never their numbers), so that
 * read(write(r)) gives r back byte for byte when r was zero-initialised before it was filled.
 */
#ifndef CANARY_ROLLOUT_JSON_H
#define CANARY_ROLLOUT_JSON_H

#include <stddef.h>

#include "codec/json.h"
#include "core/error.h"
#include "core/rollout.h"

/* 2: the checklist ("checked"). A version 1 document (written before it) still reads: its
 * rollout has nothing ticked. Flags documents have not changed: still version 1. */
#define ROLLOUT_JSON_VERSION 2
#define ROLLOUT_JSON_OLDEST 1
#define FLAGS_JSON_VERSION 1

/*
 * Append r as one object without whitespace: "v", then every field of struct rollout in
 * declaration order (n_incidents is the length of "incidents"; approvals are role names).
 * The same rollout gives the same bytes. NaN and infinities (never produced by the core) are
 * written as null and read back as NaN.
 */
void rollout_json_write(const struct rollout *r, struct jbuf *out);

/*
 * Read a document written by rollout_json_write() (len bytes, no NUL needed) into r, which is
 * zeroed first. Strict: "v" must be 1 or 2, every field present (but what version 1 lacks), no unknown field, strings fit their
 * fields, enums are known names, stage within PLAN_MAX_STAGES. Returns CANARY_OK; CANARY_EPARSE
 * when the text is not JSON; CANARY_EINVALID when it is not a valid document (why says
 * "line:column: field: problem"); CANARY_ENOMEM. why may be NULL.
 */
int rollout_json_read(const char *text, size_t len, struct rollout *r, char *why,
                      size_t why_len) CANARY_MUSTCHECK;

/* The same from an already-parsed value (the store parses many rows with one document). */
int rollout_json_read_value(const struct json_value *v, struct rollout *r, char *why,
                            size_t why_len) CANARY_MUSTCHECK;

/* Append f as {"v":1,"canary_enabled":...,"cohort_enabled":[... PLAN_MAX_STAGES booleans]}. */
void flags_json_write(const struct flags *f, struct jbuf *out);

/* Read a document written by flags_json_write() into f (zeroed first). Returns as above. */
int flags_json_read(const char *text, size_t len, struct flags *f, char *why,
                    size_t why_len) CANARY_MUSTCHECK;

#endif
