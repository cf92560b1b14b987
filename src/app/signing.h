/*
 * Signed commands in the shell: Ed25519 (libsodium) key pairs, signing a person's event before
 * it is produced (canaryctl --key), and checking an event's signature against the policy's keys
 * for its actor before the engine sees it (canaryd's worker, canaryctl simulate). The core
 * decides on the result (event.auth, core/policy); only this file links libsodium.
 */
#ifndef CANARY_SIGNING_H
#define CANARY_SIGNING_H

#include <stdbool.h>
#include <stddef.h>

#include "core/event.h"
#include "core/policy.h"

#define SIGNING_PUB_B64 48 /* a public key in base64 (44) with its NUL, padded */

/* A private key as canaryctl keygen writes it, with the actor it belongs to. */
struct signing_key {
  char actor[EVENT_NAME_MAX];
  unsigned char secret[64]; /* libsodium's Ed25519 secret key: seed and public key */
  char public_b64[SIGNING_PUB_B64];
};

/* A new key pair for actor. Returns CANARY_OK, or CANARY_EINVALID (no entropy, libsodium). */
int signing_keygen(const char *actor, struct signing_key *out);

/*
 * The key file's text (what keygen writes; written 0600): comment lines, "actor: NAME",
 * "public: BASE64", "secret: BASE64". Returns the length, or 0 when cap is too small.
 */
size_t signing_key_text(const struct signing_key *k, char *buf, size_t cap);

/* Read a key file. CANARY_OK, or CANARY_EIO / CANARY_EINVALID with a reason in why. A file
 * that others may read is refused: a private key shared is no one's key. */
int signing_load_key(const char *path, struct signing_key *out, char *why, size_t why_len);

/*
 * Sign ev as k's actor: ev->actor must be k's (the signed bytes name the actor), ev->signature
 * is set to the base64 signature of event_signed_bytes(ev). CANARY_OK, or CANARY_EINVALID with
 * a reason (another actor, a type that is not signed).
 */
int signing_sign(const struct signing_key *k, struct event *ev, char *why, size_t why_len);

/*
 * What ev's signature says under policy p: UNCHECKED when there is no policy or the type is not
 * a person's; UNSIGNED with no signature; VERIFIED when it verifies with one of the actor's keys
 * (an actor not in the policy has none: BAD). Sets and returns ev->auth.
 */
enum event_auth signing_check(const struct policy *p, struct event *ev);

#endif
