/*
 * Who may do what: the roles allowed each right (force-promote, roll back, flip a kill switch,
 * resume, pause, grant each approval), who holds which roles, and their public keys. The
 * authorization of a person's event is decided here, from the policy and what the shell found
 * when it checked the event's signature (event.auth): pure, no crypto, no I/O.
 */
#ifndef CANARY_POLICY_H
#define CANARY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

#define POLICY_MAX_ROLES 32 /* roles are a 32-bit mask */
#define POLICY_ROLE_MAX 48  /* a role's name, incl. NUL */
#define POLICY_MAX_ACTORS 64
#define POLICY_MAX_KEYS 4 /* per actor: the current key and those it is replacing */
#define POLICY_KEY_MAX 48 /* base64 of a 32-byte Ed25519 public key (44), incl. NUL */

/* right: wire name (the policy's keys under permissions:). */
#define POLICY_RIGHT_MAP(XX)                                                                       \
  XX(PAUSE, "pause")                                                                               \
  XX(RESUME, "resume")                                                                             \
  XX(PROMOTE, "promote")                                                                           \
  XX(PROMOTE_FORCE, "promote_force")                                                               \
  XX(ROLLBACK, "rollback")                                                                         \
  XX(CHECK, "check")                                                                               \
  XX(KILL_SWITCH, "kill_switch")                                                                   \
  XX(APPROVE_PRODUCT_OWNER, "approve_product_owner")                                               \
  XX(APPROVE_SUPPORT, "approve_support")                                                           \
  XX(APPROVE_DOCS, "approve_docs")
enum policy_right {
#define XX(name, wire) POLICY_RIGHT_##name,
  POLICY_RIGHT_MAP(XX)
#undef XX
      POLICY_RIGHT_COUNT /* also: the event needs no right (not a person's event) */
};

struct policy_actor {
  char name[EVENT_NAME_MAX];                  /* as the events' actor field says it */
  uint32_t roles;                             /* bit per index into policy.roles */
  char keys[POLICY_MAX_KEYS][POLICY_KEY_MAX]; /* Ed25519 public keys, base64 */
  int n_keys;
};

/*
 * A zeroed policy is "none": every person's event is allowed, unverified (what canaryd did
 * before policies existed). Once enabled, a right no role is given is nobody's.
 */
struct policy {
  bool enabled;
  char roles[POLICY_MAX_ROLES][POLICY_ROLE_MAX];
  int n_roles;
  uint32_t allowed[POLICY_RIGHT_COUNT]; /* bit per role allowed the right */
  struct policy_actor actors[POLICY_MAX_ACTORS];
  int n_actors;
};

/* What policy_authorize found. */
#define POLICY_VERDICT_MAP(XX)                                                                     \
  XX(NOT_GUARDED, "not_guarded") /* not a person's event: no right needed */                       \
  XX(OPEN, "open")               /* no policy: allowed, the actor unverified */                    \
  XX(ALLOWED, "allowed")         /* verified, and a role of the actor has the right */             \
  XX(UNKNOWN_ACTOR, "unknown_actor")                                                               \
  XX(UNSIGNED, "unsigned")                                                                         \
  XX(BAD_SIGNATURE, "bad_signature")                                                               \
  XX(FORBIDDEN, "forbidden") /* verified, but no role of the actor has the right */
enum policy_verdict {
#define XX(name, wire) POLICY_##name,
  POLICY_VERDICT_MAP(XX)
#undef XX
      POLICY_VERDICT_COUNT
};

const char *policy_right_name(enum policy_right r);
bool policy_right_parse(const char *s, enum policy_right *out);
const char *policy_verdict_name(enum policy_verdict v);

/* The right ev needs: a command's action (promote --force is its own), a flag.set's kill
 * switch, an approval's role; POLICY_RIGHT_COUNT for every other event. */
enum policy_right policy_right_of(const struct event *ev);

/* The actor of that name, or NULL. */
const struct policy_actor *policy_actor(const struct policy *p, const char *name);

/* The index of a role, or -1. */
int policy_role_index(const struct policy *p, const char *name);

/* Whether a verdict lets the event through. */
static inline bool policy_allows(enum policy_verdict v) {
  return v == POLICY_NOT_GUARDED || v == POLICY_OPEN || v == POLICY_ALLOWED;
}

/*
 * Decide whether ev may act: the right it needs, the actor it names (must be in the policy), its
 * signature as the shell checked it (ev->auth must be EVENT_AUTH_VERIFIED: unchecked counts as
 * unsigned), and the actor's roles against the right's. Refused in that order. why gets one
 * line saying who tried what and why it was refused (or, allowed, who did what with which
 * role); may be NULL.
 */
enum policy_verdict policy_authorize(const struct policy *p, const struct event *ev, char *why,
                                     size_t why_len);

/* "pause", "promote --force", "kill switch canary.cohort.beta.enabled=false", "approve support":
 * what ev asks, for messages and the audit. */
void policy_describe(const struct event *ev, char *buf, size_t len);

/* Field-by-field equality (plan_equal). */
bool policy_equal(const struct policy *a, const struct policy *b);

#endif
