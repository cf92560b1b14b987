/* Ed25519 keys, signatures and their checks, with libsodium. */
#include "app/signing.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#define B64 sodium_base64_VARIANT_ORIGINAL

static bool ready(void) { return sodium_init() >= 0; /* 1 after the first call: fine */ }

int signing_keygen(const char *actor, struct signing_key *out) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  memset(out, 0, sizeof *out);
  if (!ready() || strlen(actor) >= sizeof out->actor)
    return CANARY_EINVALID;
  snprintf(out->actor, sizeof out->actor, "%s", actor);
  if (crypto_sign_keypair(pk, out->secret) != 0)
    return CANARY_EINVALID;
  sodium_bin2base64(out->public_b64, sizeof out->public_b64, pk, sizeof pk, B64);
  return CANARY_OK;
}

size_t signing_key_text(const struct signing_key *k, char *buf, size_t cap) {
  char secret[sodium_base64_ENCODED_LEN(64, B64)];
  sodium_bin2base64(secret, sizeof secret, k->secret, sizeof k->secret, B64);
  int n = snprintf(buf, cap,
                   "# canaryd signing key (Ed25519) of %s: keep it private (mode 0600).\n"
                   "# The policy lists the public key below for this actor.\n"
                   "actor: %s\npublic: %s\nsecret: %s\n",
                   k->actor, k->actor, k->public_b64, secret);
  sodium_memzero(secret, sizeof secret);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* "name: value" lines into the key; false on a line it does not know. */
static bool key_line(char *line, struct signing_key *k, bool *have_secret) {
  line[strcspn(line, "\r\n")] = '\0';
  if (!line[0] || line[0] == '#')
    return true;
  char *colon = strchr(line, ':');
  if (!colon)
    return false;
  *colon = '\0';
  const char *v = colon + 1;
  while (*v == ' ')
    v++;
  if (!strcmp(line, "actor"))
    return snprintf(k->actor, sizeof k->actor, "%s", v) < (int)sizeof k->actor;
  if (!strcmp(line, "public"))
    return snprintf(k->public_b64, sizeof k->public_b64, "%s", v) < (int)sizeof k->public_b64;
  if (!strcmp(line, "secret")) {
    size_t n = 0;
    *have_secret =
        sodium_base642bin(k->secret, sizeof k->secret, v, strlen(v), NULL, &n, NULL, B64) == 0 &&
        n == sizeof k->secret;
    return *have_secret;
  }
  return false;
}

int signing_load_key(const char *path, struct signing_key *out, char *why, size_t why_len) {
  memset(out, 0, sizeof *out);
  if (!ready())
    return canary_why(why, why_len, CANARY_EINVALID, "libsodium could not be initialised");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return canary_why(why, why_len, CANARY_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
    close(fd);
    return canary_why(why, why_len, CANARY_EINVALID,
                      "%s: readable by others (mode %04o): a private key must be 0600 "
                      "(chmod 600 %s)",
                      path, (unsigned)(st.st_mode & 07777), path);
  }
  FILE *f = fdopen(fd, "r");
  if (!f) {
    close(fd);
    return canary_why(why, why_len, CANARY_EIO, "%s: %s", path, strerror(errno));
  }
  char line[512];
  bool have_secret = false, ok = true;
  int n = 0;
  while (ok && fgets(line, sizeof line, f)) {
    n++;
    ok = key_line(line, out, &have_secret);
  }
  fclose(f);
  sodium_memzero(line, sizeof line);
  if (!ok)
    return canary_why(why, why_len, CANARY_EINVALID,
                      "%s:%d: not a canaryd key file line "
                      "(expected actor:, public:, secret:)",
                      path, n);
  if (!have_secret || !out->actor[0])
    return canary_why(why, why_len, CANARY_EINVALID,
                      "%s: no %s (canaryctl keygen writes key "
                      "files)",
                      path, have_secret ? "actor" : "secret");
  /* the public key is the secret's second half: say which one it is, whatever the file says */
  sodium_bin2base64(out->public_b64, sizeof out->public_b64, out->secret + 32, 32, B64);
  return CANARY_OK;
}

int signing_sign(const struct signing_key *k, struct event *ev, char *why, size_t why_len) {
  unsigned char bytes[EVENT_SIGNED_MAX], sig[crypto_sign_BYTES];
  if (!ready())
    return canary_why(why, why_len, CANARY_EINVALID, "libsodium could not be initialised");
  if (strcmp(ev->actor, k->actor))
    return canary_why(why, why_len, CANARY_EINVALID,
                      "the key is %s's, the command's actor is '%s': a key signs for its own "
                      "actor only",
                      k->actor, ev->actor);
  ev->signature[0] = '\0';
  size_t n = event_signed_bytes(ev, bytes, sizeof bytes);
  if (!n)
    return canary_why(why, why_len, CANARY_EINVALID, "%s events are not signed",
                      event_type_name(ev->type));
  crypto_sign_detached(sig, NULL, bytes, n, k->secret);
  sodium_bin2base64(ev->signature, sizeof ev->signature, sig, sizeof sig, B64);
  return CANARY_OK;
}

/* Whether sig verifies bytes with the base64 public key. */
static bool verifies(const unsigned char *sig, const unsigned char *bytes, size_t n,
                     const char *key_b64) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  size_t len = 0;
  if (sodium_base642bin(pk, sizeof pk, key_b64, strlen(key_b64), NULL, &len, NULL, B64) != 0 ||
      len != sizeof pk)
    return false;
  return crypto_sign_verify_detached(sig, bytes, n, pk) == 0;
}

enum event_auth signing_check(const struct policy *p, struct event *ev) {
  unsigned char bytes[EVENT_SIGNED_MAX], sig[crypto_sign_BYTES];
  size_t n = 0, len = 0;
  if (!p->enabled || (unsigned)ev->type >= EVENT_TYPE_COUNT ||
      !(n = event_signed_bytes(ev, bytes, sizeof bytes)))
    return ev->auth = EVENT_AUTH_UNCHECKED;
  if (!ev->signature[0])
    return ev->auth = EVENT_AUTH_UNSIGNED;
  ev->auth = EVENT_AUTH_BAD;
  const struct policy_actor *a = policy_actor(p, ev->actor);
  if (!a || !ready() ||
      sodium_base642bin(sig, sizeof sig, ev->signature, strlen(ev->signature), NULL, &len, NULL,
                        B64) != 0 ||
      len != sizeof sig)
    return ev->auth;
  for (int k = 0; k < a->n_keys; k++)
    if (verifies(sig, bytes, n, a->keys[k]))
      return ev->auth = EVENT_AUTH_VERIFIED;
  return ev->auth;
}
