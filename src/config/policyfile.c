/* The policy's schema: rights to roles, actors to roles and public keys. */
#include "config/policyfile.h"

#include <stdio.h>
#include <string.h>

static const char *right_at(int i) { return policy_right_name((enum policy_right)i); }

/* The role's index, added when new. */
static int role_of(struct loader *ld, const struct ynode *v, struct policy *p, bool add, int *out) {
  char name[POLICY_ROLE_MAX];
  int rc = schema_ident(ld, v, "role", name, sizeof name);
  if (rc)
    return rc;
  int i = policy_role_index(p, name);
  if (i < 0 && !add) {
    char known[512];
    size_t at = 0;
    known[0] = '\0';
    for (int k = 0; k < p->n_roles && at < sizeof known; k++)
      at += (size_t)snprintf(known + at, sizeof known - at, "%s%s", k ? ", " : "", p->roles[k]);
    return schema_fail(ld, v, CANARY_EINVALID,
                       "role '%s' is given no right under permissions (roles with a right: %s)",
                       name, at ? known : "none");
  }
  if (i < 0) {
    if (p->n_roles == POLICY_MAX_ROLES)
      return schema_fail(ld, v, CANARY_EINVALID, "too many roles (at most %d)", POLICY_MAX_ROLES);
    i = p->n_roles++;
    snprintf(p->roles[i], sizeof p->roles[i], "%s", name);
  }
  *out = i;
  return CANARY_OK;
}

/* A role or a list of roles, as a mask. */
static int roles_of(struct loader *ld, const struct ynode *v, struct policy *p, bool add,
                    uint32_t *mask) {
  int i, rc;
  *mask = 0;
  if (v->kind == YNODE_SCALAR) {
    if ((rc = role_of(ld, v, p, add, &i)))
      return rc;
    *mask = 1u << i;
    return CANARY_OK;
  }
  if ((rc = schema_expect(ld, v, YNODE_SEQ, "roles")))
    return rc;
  for (size_t k = 0; k < v->n; k++) {
    if ((rc = role_of(ld, v->kids[k], p, add, &i)))
      return rc;
    *mask |= 1u << i;
  }
  return CANARY_OK;
}

static int read_permissions(struct loader *ld, const struct ynode *v, struct policy *p) {
  int rc = schema_expect(ld, v, YNODE_MAP, "permissions");
  bool seen[POLICY_RIGHT_COUNT] = {false};
  for (size_t k = 0; !rc && k + 1 < v->n; k += 2) {
    int r;
    if ((rc = schema_choice(ld, v->kids[k], "right", right_at, POLICY_RIGHT_COUNT, &r)))
      break;
    if (seen[r])
      return schema_fail(ld, v->kids[k], CANARY_EINVALID, "right '%s' appears twice",
                         policy_right_name((enum policy_right)r));
    seen[r] = true;
    rc = roles_of(ld, v->kids[k + 1], p, true, &p->allowed[r]);
  }
  return rc;
}

/* 43 base64 characters and one '=': 32 bytes. The shell decodes it; here, the shape. */
static bool key_shaped(const char *s) {
  if (strlen(s) != 44 || s[43] != '=')
    return false;
  for (int i = 0; i < 43; i++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", s[i]))
      return false;
  return true;
}

static int read_keys(struct loader *ld, const struct ynode *v, struct policy_actor *a) {
  const struct ynode *one[1] = {v};
  const struct ynode *const *list = one;
  size_t n = 1;
  if (v->kind != YNODE_SCALAR) {
    int rc = schema_expect(ld, v, YNODE_SEQ, "keys");
    if (rc)
      return rc;
    list = (const struct ynode *const *)v->kids;
    n = v->n;
  }
  if (n > POLICY_MAX_KEYS)
    return schema_fail(ld, v, CANARY_EINVALID, "too many keys (at most %d)", POLICY_MAX_KEYS);
  for (size_t k = 0; k < n; k++) {
    int rc = schema_str(ld, list[k], "key", a->keys[k], sizeof a->keys[k]);
    if (rc)
      return rc;
    if (!key_shaped(a->keys[k]))
      return schema_fail(ld, list[k], CANARY_EINVALID,
                         "key of actor '%s' is not an Ed25519 public key in base64 (44 "
                         "characters ending in '='; canaryctl keygen prints one)",
                         a->name);
  }
  a->n_keys = (int)n;
  return CANARY_OK;
}

static int read_actor(struct loader *ld, const struct ynode *key, const struct ynode *v,
                      struct policy *p) {
  if (p->n_actors == POLICY_MAX_ACTORS)
    return schema_fail(ld, key, CANARY_EINVALID, "too many actors (at most %d)", POLICY_MAX_ACTORS);
  struct policy_actor *a = &p->actors[p->n_actors];
  int rc = schema_str(ld, key, "actor", a->name, sizeof a->name);
  if (rc)
    return rc;
  if (policy_actor(p, a->name))
    return schema_fail(ld, key, CANARY_EINVALID, "actor '%s' appears twice", a->name);
  if ((rc = schema_expect(ld, v, YNODE_MAP, a->name)))
    return rc;
  const struct ynode *roles = NULL, *keys = NULL;
  for (size_t k = 0; k + 1 < v->n; k += 2) {
    const struct ynode *name = v->kids[k];
    if (name->kind == YNODE_SCALAR && !strcmp(name->str, "roles") && !roles)
      roles = v->kids[k + 1];
    else if (name->kind == YNODE_SCALAR && !strcmp(name->str, "keys") && !keys)
      keys = v->kids[k + 1];
    else
      return schema_fail(ld, name, CANARY_EINVALID,
                         "unknown or repeated key '%s' for actor '%s' (expected roles, keys)",
                         name->kind == YNODE_SCALAR ? name->str : "?", a->name);
  }
  if (!roles || !keys)
    return schema_fail(ld, v, CANARY_EINVALID, "actor '%s' needs '%s'", a->name,
                       roles ? "keys" : "roles");
  if ((rc = roles_of(ld, roles, p, false, &a->roles)) || (rc = read_keys(ld, keys, a)))
    return rc;
  p->n_actors++;
  return CANARY_OK;
}

int policyfile_load(struct loader *ld, const struct ynode *v, struct policy *p) {
  memset(p, 0, sizeof *p);
  int rc = schema_expect(ld, v, YNODE_MAP, "policy");
  const struct ynode *perms = NULL, *actors = NULL;
  for (size_t k = 0; !rc && k + 1 < v->n; k += 2) {
    const struct ynode *name = v->kids[k];
    if (name->kind == YNODE_SCALAR && !strcmp(name->str, "permissions") && !perms)
      perms = v->kids[k + 1];
    else if (name->kind == YNODE_SCALAR && !strcmp(name->str, "actors") && !actors)
      actors = v->kids[k + 1];
    else
      return schema_fail(ld, name, CANARY_EINVALID,
                         "unknown or repeated key '%s' in policy (expected permissions, actors)",
                         name->kind == YNODE_SCALAR ? name->str : "?");
  }
  if (!rc && (!perms || !actors))
    return schema_fail(ld, v, CANARY_EINVALID, "policy needs '%s'",
                       perms ? "actors" : "permissions");
  /* permissions first, wherever they are in the file: they name the roles actors may hold */
  if (!rc)
    rc = read_permissions(ld, perms, p);
  if (!rc)
    rc = schema_expect(ld, actors, YNODE_MAP, "actors");
  for (size_t k = 0; !rc && k + 1 < actors->n; k += 2)
    rc = read_actor(ld, actors->kids[k], actors->kids[k + 1], p);
  p->enabled = rc == CANARY_OK;
  return rc;
}
