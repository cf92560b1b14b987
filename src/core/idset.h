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
 * keeps the set at 8 bytes an id.
 */
struct idset {
  uint64_t *slots; /* 0 = empty; a hash of 0 is stored as 1 */
  size_t n, cap;
};
#define IDSET_INIT {0}

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
/* Add id. Returns CANARY_OK, or CANARY_ENOMEM. */
int idset_add(struct idset *s, const char *id) CANARY_MUSTCHECK;
/* Add an id by its idset_hash() (restoring a set from storage). */
int idset_add_hash(struct idset *s, uint64_t hash) CANARY_MUSTCHECK;
void idset_free(struct idset *s);

#endif
