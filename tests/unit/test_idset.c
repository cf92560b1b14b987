/* The event-id set: membership, growth, ids that were never added, the digests kept with ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "core/idset.h"

static void test_empty_set(void **state) {
  (void)state;
  struct idset s = IDSET_INIT;
  assert_false(idset_contains(&s, "a"));
  assert_false(idset_contains(&s, ""));
  idset_free(&s); /* freeing an empty set is fine, and so is freeing twice */
  idset_free(&s);
  assert_null(s.slots);
}

static void test_add_and_contains(void **state) {
  (void)state;
  struct idset s = IDSET_INIT;
  assert_int_equal(idset_add(&s, "deploy-1"), CANARY_OK);
  assert_int_equal(idset_add(&s, "deploy-2"), CANARY_OK);
  assert_true(idset_contains(&s, "deploy-1"));
  assert_true(idset_contains(&s, "deploy-2"));
  assert_false(idset_contains(&s, "deploy-3"));
  assert_false(idset_contains(&s, "deploy-"));
  assert_false(idset_contains(&s, "Deploy-1")); /* ids are case-sensitive */
  assert_int_equal(s.n, 2);
  assert_int_equal(idset_add(&s, "deploy-1"), CANARY_OK); /* adding again changes nothing */
  assert_int_equal(s.n, 2);
  idset_free(&s);
  assert_int_equal(s.n, 0);
  assert_false(idset_contains(&s, "deploy-1"));
}

static void test_hash(void **state) {
  (void)state;
  /* the published 64-bit FNV-1a test vectors: the store persists these values */
  assert_int_equal(idset_hash(""), 0xcbf29ce484222325ULL);
  assert_int_equal(idset_hash("a"), 0xaf63dc4c8601ec8cULL);
  assert_int_equal(idset_hash("foobar"), 0x85944171f73967e8ULL);
  assert_int_equal(idset_hash_n("foobar and more", 6), idset_hash("foobar")); /* in place */
  assert_int_equal(idset_hash_n("", 0), idset_hash(""));
  assert_int_not_equal(idset_hash("ab"), idset_hash("ba"));
  assert_int_not_equal(idset_hash("x"), 0);
}

/* 100k ids: several doublings of the table; every id stays findable, no absent id appears. */
static void test_growth(void **state) {
  (void)state;
  enum { N = 100000 };
  struct idset s = IDSET_INIT;
  char id[64];
  size_t caps_seen = 0, last_cap = 0;
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "canary.deploy/0/%d", i);
    assert_int_equal(idset_add(&s, id), CANARY_OK);
    if (s.cap != last_cap) {
      caps_seen++;
      last_cap = s.cap;
    }
    /* spot-check across every resize: ids added before it are still there */
    if ((i & (i - 1)) == 0) {
      for (int j = 0; j <= i; j += 1 + i / 64) {
        snprintf(id, sizeof id, "canary.deploy/0/%d", j);
        assert_true(idset_contains(&s, id));
      }
    }
  }
  assert_int_equal(s.n, N);
  assert_true(caps_seen >= 8); /* 1024 -> 262144 */
  assert_int_equal(s.cap & (s.cap - 1), 0);
  assert_true(s.n * 2 <= s.cap);
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "canary.deploy/0/%d", i);
    assert_true(idset_contains(&s, id));
  }
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "canary.deploy/1/%d", i);
    assert_false(idset_contains(&s, id));
    snprintf(id, sizeof id, "canary.deploy/0/%d", N + i);
    assert_false(idset_contains(&s, id));
  }
  for (int i = 0; i < N; i += 7) { /* re-adding is idempotent */
    snprintf(id, sizeof id, "canary.deploy/0/%d", i);
    assert_int_equal(idset_add(&s, id), CANARY_OK);
  }
  assert_int_equal(s.n, N);
  idset_free(&s);
}

/* A set restored from stored hashes answers for the ids, and a stored 0 is kept as 1. */
static void test_restore_from_hashes(void **state) {
  (void)state;
  struct idset s = IDSET_INIT;
  assert_int_equal(idset_add_hash(&s, idset_hash("deploy-1")), CANARY_OK);
  assert_int_equal(idset_add_hash(&s, (uint64_t)(int64_t)-42), CANARY_OK); /* from a bigint */
  assert_true(idset_contains(&s, "deploy-1"));
  assert_false(idset_contains(&s, "deploy-2"));
  assert_int_equal(idset_add(&s, "deploy-1"), CANARY_OK);
  assert_int_equal(s.n, 2);
  assert_int_equal(idset_add_hash(&s, 0), CANARY_OK);
  assert_int_equal(idset_add_hash(&s, 1), CANARY_OK); /* the same slot as 0 */
  assert_int_equal(s.n, 3);
  idset_free(&s);
}

/*
 * Each id keeps the digest of the content first applied under it: a later add of the same id
 * (with any digest) does not replace it, an unknown one (a row stored before digests) is
 * filled in, and every digest survives the table's growth.
 */
static void test_digests_kept_with_ids(void **state) {
  (void)state;
  struct idset s = IDSET_INIT;
  uint64_t d = 42;
  assert_false(idset_find(&s, idset_hash("a"), &d));
  assert_int_equal(d, 42); /* untouched when absent */
  assert_int_equal(idset_add_digest(&s, idset_hash("a"), 0x1111), CANARY_OK);
  assert_int_equal(idset_add_digest(&s, idset_hash("a"), 0x2222), CANARY_OK);
  assert_true(idset_find(&s, idset_hash("a"), &d));
  assert_int_equal(d, 0x1111);
  assert_int_equal(idset_add_hash(&s, idset_hash("b")), CANARY_OK); /* no digest: unknown */
  assert_true(idset_find(&s, idset_hash("b"), &d));
  assert_int_equal(d, 0);
  assert_int_equal(idset_add_digest(&s, idset_hash("b"), 0x3333), CANARY_OK);
  assert_true(idset_find(&s, idset_hash("b"), &d));
  assert_int_equal(d, 0x3333);
  assert_int_equal(idset_add_digest(&s, 0, 0x4444), CANARY_OK); /* hash 0 is slot 1 */
  assert_true(idset_find(&s, 1, &d));
  assert_int_equal(d, 0x4444);
  assert_true(idset_find(&s, idset_hash("a"), NULL));
  char id[32];
  for (uint64_t i = 0; i < 5000; i++) { /* several doublings */
    snprintf(id, sizeof id, "id-%llu", (unsigned long long)i);
    assert_int_equal(idset_add_digest(&s, idset_hash(id), 1000 + i), CANARY_OK);
  }
  for (uint64_t i = 0; i < 5000; i++) {
    snprintf(id, sizeof id, "id-%llu", (unsigned long long)i);
    assert_true(idset_find(&s, idset_hash(id), &d));
    assert_int_equal(d, 1000 + i);
  }
  assert_true(idset_find(&s, idset_hash("a"), &d));
  assert_int_equal(d, 0x1111);
  assert_int_equal(s.n, 5003);
  idset_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_set),
      cmocka_unit_test(test_add_and_contains),
      cmocka_unit_test(test_hash),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_restore_from_hashes),
      cmocka_unit_test(test_digests_kept_with_ids),
  };
  return cmocka_run_group_tests_name("idset", tests, NULL, NULL);
}
