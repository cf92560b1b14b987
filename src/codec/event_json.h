/* The contract's events as flat JSON objects (JSON Lines), and the outputs as JSON. */
#ifndef CANARY_EVENT_JSON_H
#define CANARY_EVENT_JSON_H

#include <stddef.h>

#include "codec/json.h"
#include "core/effect.h"
#include "core/error.h"
#include "core/event.h"

/*
 * Holds what a decoded event borrows: the JSON document of event_from_json() and the arrays of a
 * metrics or diff.samples event (counter, gauge and distribution names and values, samples).
 * Reused across events, so decoding a stream allocates only while it grows. An event decoded
 * with a scratch is valid until the next decode with the same scratch or its destruction.
 */
struct event_scratch;

/* A new, empty scratch; NULL when memory is exhausted. Free with event_scratch_destroy(). */
struct event_scratch *event_scratch_new(void);
void event_scratch_destroy(struct event_scratch *scratch);

/*
 * Decode one JSON Lines line (len bytes, no NUL needed) into ev, which is zeroed first.
 * Returns CANARY_OK; CANARY_EPARSE when the text is not JSON (why: "line:column: message",
 * positions within the text); CANARY_EINVALID when it is JSON but not a valid contract event
 * (why names the field: "severity: must be 1..4", "unknown field 'sevrity' for incident.opened",
 * "type: unknown event type 'foo'"); CANARY_ENOMEM (also when scratch is NULL: the document is
 * parsed into it). Ends with event_validate(). why may be NULL.
 */
int event_from_json(const char *text, size_t len, struct event *ev, struct event_scratch *scratch,
                    char *why, size_t why_len) CANARY_MUSTCHECK;

/*
 * The same from an already-parsed object (canaryctl emit builds objects from flags). The event
 * borrows metric names from obj's document, and arrays from scratch; scratch may be NULL for
 * events without metric payloads (a metrics or diff.samples event then fails with CANARY_ENOMEM).
 */
int event_from_json_value(const struct json_value *obj, struct event *ev,
                          struct event_scratch *scratch, char *why,
                          size_t why_len) CANARY_MUSTCHECK;

/*
 * Append ev as one flat object (no whitespace, no newline): id, rollout, time (integer ms), type,
 * then exactly the fields its type uses, in the contract's order, optional ones included.
 * A flag.set for all rollouts has "rollout":null. event_from_json() reads it back equal.
 */
void event_to_json(const struct event *ev, struct jbuf *out);

/*
 * Append d with the keys id, rollout, seq, time (RFC 3339), action, from_stage, to_stage, state,
 * reason, rule, evidence, actor, in that order; empty from_stage, to_stage and rule are null.
 * evidence is an object of the items in order (a repeated key keeps its first value). No
 * whitespace and no trailing newline: the same decision gives the same bytes.
 */
void decision_to_json(const struct decision *d, struct jbuf *out);

/*
 * Append n with the keys id, rollout, time (RFC 3339), channel (the target, e.g. "#releases"),
 * channel_kind, severity, title, text, decision_id (null when none) and slack: the Block Kit
 * payload of notification_slack_payload() as a JSON string.
 */
void notification_to_json(const struct notification *n, struct jbuf *out);

/*
 * Append the chat.postMessage body for n: {"channel", "text" (the fallback), "blocks": a header
 * with the severity's emoji and the title (plain_text, at most 150 characters), a mrkdwn section
 * with the text, and a context block with the rollout, severity, time and decision}.
 */
void notification_slack_payload(const struct notification *n, struct jbuf *out);
/* Append s as Slack mrkdwn: &, < and > escaped; in a code span (code_span) a backtick becomes
 * an apostrophe, so a name cannot close the span it sits in. */
void notification_mrkdwn(struct jbuf *b, const char *s, bool code_span);

/*
 * Append t with the keys id, rollout, service, version, baseline_version, time (RFC 3339),
 * exposure_percent, canary_enabled, breaker_open, cohorts ({name: {percent, enabled, kill}} in
 * stage order), salt, buckets.
 */
void traffic_to_json(const struct traffic_split *t, struct jbuf *out);

#endif
