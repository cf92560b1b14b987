/*
 * Private to the metric store's files (metric_store.c, mstore_source.c, mstore_plan.c,
 * mstore_eval.c): the few helpers more than one of them needs. Not part of the module's
 * contract: include core/metric_store.h everywhere else.
 */
#ifndef CANARY_MSTORE_INTERNAL_H
#define CANARY_MSTORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metric_store.h"

#define FNV_SEED 0xcbf29ce484222325ULL

static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static inline bool cohort_ok(int cohort) { return cohort >= 0 && cohort < PLAN_MAX_STAGES; }

static inline int64_t floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Where the series of (name id, cohort, v) is in ms->series: its index, -1 while it has none. */
static inline int16_t *series_ref(const struct mstore *ms, int name, int cohort, enum variant v) {
  return &ms->series_of[((size_t)name * PLAN_MAX_STAGES + (size_t)cohort) * VARIANT_COUNT + v];
}

/* The id of metric name in ms (its index in ms->names), or -1: not seen yet. */
int mstore_name_find(const struct mstore *ms, const char *name);

/* Formats the reason into why (when why and len are given) and returns rc. */
int mstore_fail(char *why, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
