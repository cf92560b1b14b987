/*
 * app/signing: Ed25519 key pairs, signing a person's event, and the check the worker makes
 * before the engine. A signature covers the whole command: a changed field, another actor's
 * key, the same signature on another rollout or under another id — each is refused by the
 * policy as a bad signature. And key files: what keygen writes loads back, a key readable by
 * others is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/signing.h"
#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "core/policy.h"
#include "fixtures.h"

#define T0 1767225600000LL

static struct signing_key alice, bob;
static struct policy policy;

static int setup(void **state) {
  (void)state;
  if (signing_keygen("alice", &alice) || signing_keygen("bob", &bob))
    return -1;
  memset(&policy, 0, sizeof policy);
  policy.enabled = true;
  strcpy(policy.roles[0], "release_manager");
  policy.n_roles = 1;
  for (int r = 0; r < POLICY_RIGHT_COUNT; r++)
    policy.allowed[r] = 1;
  const struct signing_key *keys[] = {&alice, &bob};
  for (int i = 0; i < 2; i++) {
    strcpy(policy.actors[i].name, keys[i]->actor);
    policy.actors[i].roles = 1;
    strcpy(policy.actors[i].keys[0], keys[i]->public_b64);
    policy.actors[i].n_keys = 1;
  }
  policy.n_actors = 2;
  return 0;
}

static struct event force_promote(const char *actor) {
  struct event ev = fixture_event(EVENT_COMMAND, "cmd-1", "web-2.1.0", T0);
  ev.action = COMMAND_PROMOTE;
  ev.force = true;
  strcpy(ev.actor, actor);
  strcpy(ev.reason, "hotfix verified");
  return ev;
}

static void test_round_trip_verifies(void **state) {
  (void)state;
  struct event ev = force_promote("alice");
  char why[256];
  assert_int_equal(signing_sign(&alice, &ev, why, sizeof why), CANARY_OK);
  assert_int_equal(strlen(ev.signature), 88); /* 64 bytes in base64 */
  assert_int_equal(signing_check(&policy, &ev), EVENT_AUTH_VERIFIED);
  assert_int_equal(policy_authorize(&policy, &ev, why, sizeof why), POLICY_ALLOWED);
  /* Ed25519 is deterministic: the same command signs the same */
  struct event again = force_promote("alice");
  assert_int_equal(signing_sign(&alice, &again, why, sizeof why), CANARY_OK);
  assert_string_equal(again.signature, ev.signature);
  /* and so do the other signed types */
  struct event flag = fixture_event(EVENT_FLAG_SET, "f1", "", T0);
  strcpy(flag.flag, "system.canary.enabled");
  strcpy(flag.actor, "bob");
  struct event appr = fixture_event(EVENT_APPROVAL_GRANTED, "a1", "web-2.1.0", T0);
  appr.role = APPROVAL_DOCS;
  strcpy(appr.actor, "bob");
  assert_int_equal(signing_sign(&bob, &flag, why, sizeof why), CANARY_OK);
  assert_int_equal(signing_sign(&bob, &appr, why, sizeof why), CANARY_OK);
  assert_int_equal(signing_check(&policy, &flag), EVENT_AUTH_VERIFIED);
  assert_int_equal(signing_check(&policy, &appr), EVENT_AUTH_VERIFIED);
}

/* Every way of reusing a signature on something it was not made for: a bad signature. */
static void test_tampering_is_refused(void **state) {
  (void)state;
  struct event signed_ev = force_promote("alice");
  char why[256];
  assert_int_equal(signing_sign(&alice, &signed_ev, why, sizeof why), CANARY_OK);
  static const char *const what[] = {"reason changed",      "force dropped",    "action changed",
                                     "another rollout",     "another id",       "another time",
                                     "another actor named", "signature flipped"};
  for (size_t i = 0; i < sizeof what / sizeof *what; i++) {
    struct event ev = signed_ev;
    switch (i) {
    case 0:
      strcpy(ev.reason, "hotfix verified!");
      break;
    case 1:
      ev.force = false;
      break;
    case 2:
      ev.action = COMMAND_ROLLBACK;
      break;
    case 3:
      strcpy(ev.rollout, "checkout-3.0.0");
      break; /* replay onto another rollout */
    case 4:
      strcpy(ev.id, "cmd-2");
      break; /* replay under a new id */
    case 5:
      ev.time_ms += 1;
      break;
    case 6:
      strcpy(ev.actor, "bob");
      break; /* bob's key did not sign it */
    case 7:
      ev.signature[10] = ev.signature[10] == 'A' ? 'B' : 'A';
      break;
    }
    if (signing_check(&policy, &ev) != EVENT_AUTH_BAD)
      fail_msg("%s: %s", what[i], event_auth_name(ev.auth));
    assert_int_equal(policy_authorize(&policy, &ev, why, sizeof why), POLICY_BAD_SIGNATURE);
  }
  /* signed with the other actor's key while naming alice: signing refuses to, and a
   * signature made by bob's key does not verify as alice's */
  struct event ev = force_promote("alice");
  assert_int_equal(signing_sign(&bob, &ev, why, sizeof why), CANARY_EINVALID);
  assert_non_null(strstr(why, "bob's"));
  struct event as_bob = force_promote("bob");
  assert_int_equal(signing_sign(&bob, &as_bob, why, sizeof why), CANARY_OK);
  strcpy(ev.signature, as_bob.signature);
  assert_int_equal(signing_check(&policy, &ev), EVENT_AUTH_BAD);
  /* an actor the policy does not list has no key: bad, and refused as unknown */
  struct event mallory = force_promote("mallory");
  strcpy(mallory.signature, as_bob.signature);
  assert_int_equal(signing_check(&policy, &mallory), EVENT_AUTH_BAD);
  assert_int_equal(policy_authorize(&policy, &mallory, why, sizeof why), POLICY_UNKNOWN_ACTOR);
  /* no signature at all */
  struct event plain = force_promote("alice");
  assert_int_equal(signing_check(&policy, &plain), EVENT_AUTH_UNSIGNED);
  assert_int_equal(policy_authorize(&policy, &plain, why, sizeof why), POLICY_UNSIGNED);
  /* no policy: nobody checks */
  static struct policy none;
  assert_int_equal(signing_check(&none, &signed_ev), EVENT_AUTH_UNCHECKED);
  /* an actor's second key (rotation) verifies too */
  static struct policy two;
  two = policy;
  strcpy(two.actors[0].keys[0], bob.public_b64);
  strcpy(two.actors[0].keys[1], alice.public_b64);
  two.actors[0].n_keys = 2;
  assert_int_equal(signing_check(&two, &signed_ev), EVENT_AUTH_VERIFIED);
}

/* The signature travels: through JSON and Avro, and still verifies after both. */
static void test_signature_survives_the_codecs(void **state) {
  (void)state;
  struct event ev = force_promote("alice");
  char why[256];
  assert_int_equal(signing_sign(&alice, &ev, why, sizeof why), CANARY_OK);
  struct jbuf b;
  jbuf_init(&b);
  event_to_json(&ev, &b);
  struct event_scratch *scratch = event_scratch_new();
  struct event back;
  assert_int_equal(event_from_json(b.data, b.len, &back, scratch, why, sizeof why), CANARY_OK);
  assert_int_equal(signing_check(&policy, &back), EVENT_AUTH_VERIFIED);
  avro_codec_t *c;
  assert_int_equal(avro_codec_new(&c), CANARY_OK);
  struct avro_buf buf = AVRO_BUF_INIT;
  assert_int_equal(avro_codec_encode_event(c, &back, &buf), CANARY_OK);
  struct event back2;
  assert_int_equal(avro_codec_decode_event(c, buf.data, buf.len, &back2, why, sizeof why),
                   CANARY_OK);
  assert_int_equal(signing_check(&policy, &back2), EVENT_AUTH_VERIFIED);
  avro_buf_free(&buf);
  avro_codec_destroy(c);
  event_scratch_destroy(scratch);
  jbuf_free(&b);
}

/* Key files: keygen's text loads back as the same key; a file others can read is refused. */
static void test_key_files(void **state) {
  (void)state;
  char path[] = "/tmp/test_signing_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  char text[512];
  size_t n = signing_key_text(&alice, text, sizeof text);
  assert_true(n > 0);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
  assert_int_equal(chmod(path, 0600), 0);
  struct signing_key k;
  char why[512];
  assert_int_equal(signing_load_key(path, &k, why, sizeof why), CANARY_OK);
  assert_string_equal(k.actor, "alice");
  assert_string_equal(k.public_b64, alice.public_b64);
  assert_memory_equal(k.secret, alice.secret, sizeof k.secret);
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(signing_load_key(path, &k, why, sizeof why), CANARY_EINVALID);
  assert_non_null(strstr(why, "0600"));
  unlink(path);
  assert_int_equal(signing_load_key(path, &k, why, sizeof why), CANARY_EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_verifies),
      cmocka_unit_test(test_tampering_is_refused),
      cmocka_unit_test(test_signature_survives_the_codecs),
      cmocka_unit_test(test_key_files),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
