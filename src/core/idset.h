/* A set of event ids, kept as 64-bit hashes: "a repeated event id changes nothing". */
#ifndef CANARY_IDSET_H
#define CANARY_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/*
 * Open addressing over 64-bit FNV-1a hashes. Two different ids collide with probability about
 * n^2 / 2^65 — 1e-8 for a million ids — which is far below any other failure rate here, and it
 * keeps the set at 16 bytes an id: the hash and the content digest of the event applied under
 * it (event_digest), side by side so that a lookup touches one cache line.
 */
struct idset_slot {
  uint64_t hash;   /* 0 = empty; a hash of 0 is stored as 1 */
  uint64_t digest; /* EVENT_DIGEST_UNKNOWN (0) when none was kept */
};
struct idset {
  struct idset_slot *slots;
  size_t n, cap;
};
#define IDSET_INIT                                                                                 \
  { 0 }

uint64_t idset_hash(const char *id);
/* The same of the n bytes at id (not NUL-terminated). */
uint64_t idset_hash_n(const char *id, size_t n);
/* Bring the slot of hash into the cache ahead of a lookup: a set of a day's ids is megabytes,
 * and each lookup is a cache miss. A hint only. */
void idset_prefetch(const struct idset *s, uint64_t hash);
/* True when id is in the set. */
bool idset_contains(const struct idset *s, const char *id);
/* The same by its idset_hash() (hashed once for several sets). */
bool idset_contains_hash(const struct idset *s, uint64_t hash);
/* True when hash is in the set; then *digest is the digest kept with it (0: unknown). */
bool idset_find(const struct idset *s, uint64_t hash, uint64_t *digest);
/* Add id. Returns CANARY_OK, or CANARY_ENOMEM. */
int idset_add(struct idset *s, const char *id) CANARY_MUSTCHECK;
/* Add an id by its idset_hash() (restoring a set from storage), without a digest. */
int idset_add_hash(struct idset *s, uint64_t hash) CANARY_MUSTCHECK;
/*
 * Add an id by its idset_hash() with the digest of its content (0: unknown). An id already in
 * the set keeps the digest it has — the first content seen is the one applied — unless that
 * was unknown. Returns CANARY_OK, or CANARY_ENOMEM.
 */
int idset_add_digest(struct idset *s, uint64_t hash, uint64_t digest) CANARY_MUSTCHECK;
void idset_free(struct idset *s);

#endif
