/* Event-id set: linear probing, grown at 50% load so probes stay short. */
#include "core/idset.h"

#include <stdlib.h>

uint64_t idset_hash(const char *id) {
  /* FNV-1a's 64-bit offset basis, 0xcbf29ce484222325. Written in hex: the decimal form had
   * lost its last digit, which gave hashes that are not FNV-1a, while the store persists them
   * as FNV-1a (migrations/001_init.sql) for other tools to recompute. */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  return h ? h : 1;
}

uint64_t idset_hash_n(const char *id, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* as idset_hash */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)id[i];
    h *= 1099511628211ULL;
  }
  return h ? h : 1;
}

static size_t probe(const struct idset_slot *slots, size_t cap, uint64_t h) {
  size_t i = (size_t)(h ^ (h >> 29)) & (cap - 1);
  while (slots[i].hash && slots[i].hash != h)
    i = (i + 1) & (cap - 1);
  return i;
}

void idset_prefetch(const struct idset *s, uint64_t h) {
  if (s->cap)
    __builtin_prefetch(&s->slots[(size_t)(h ^ (h >> 29)) & (s->cap - 1)]);
}

bool idset_find(const struct idset *s, uint64_t h, uint64_t *digest) {
  if (!s->cap)
    return false;
  h = h ? h : 1;
  const struct idset_slot *slot = &s->slots[probe(s->slots, s->cap, h)];
  if (slot->hash != h)
    return false;
  if (digest)
    *digest = slot->digest;
  return true;
}

bool idset_contains_hash(const struct idset *s, uint64_t h) { return idset_find(s, h, NULL); }

bool idset_contains(const struct idset *s, const char *id) {
  return s->cap && idset_contains_hash(s, idset_hash(id));
}

static int grow(struct idset *s) {
  size_t cap = s->cap ? s->cap * 2 : 1024;
  struct idset_slot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return CANARY_ENOMEM;
  for (size_t i = 0; i < s->cap; i++)
    if (s->slots[i].hash)
      slots[probe(slots, cap, s->slots[i].hash)] = s->slots[i];
  free(s->slots);
  s->slots = slots;
  s->cap = cap;
  return CANARY_OK;
}

int idset_add(struct idset *s, const char *id) { return idset_add_hash(s, idset_hash(id)); }

int idset_add_hash(struct idset *s, uint64_t h) { return idset_add_digest(s, h, 0); }

int idset_add_digest(struct idset *s, uint64_t h, uint64_t digest) {
  if ((s->n + 1) * 2 > s->cap) {
    int rc = grow(s);
    if (rc)
      return rc;
  }
  h = h ? h : 1;
  struct idset_slot *slot = &s->slots[probe(s->slots, s->cap, h)];
  if (!slot->hash) {
    slot->hash = h;
    s->n++;
  }
  if (!slot->digest)
    slot->digest = digest;
  return CANARY_OK;
}

void idset_free(struct idset *s) {
  free(s->slots);
  s->slots = NULL;
  s->n = s->cap = 0;
}
