/* Who may do what: a person's event against the policy's roles, rights and verified actors. */
#include "core/policy.h"

#include <stdio.h>
#include <string.h>

#include "core/enum_names.h"
#include "core/error.h"

ENUM_NAMES(policy_right, policy_right, POLICY_RIGHT_MAP, POLICY_RIGHT_COUNT)
ENUM_PARSE(policy_right, policy_right, POLICY_RIGHT_COUNT)
ENUM_NAMES(policy_verdict, policy_verdict, POLICY_VERDICT_MAP, POLICY_VERDICT_COUNT)

enum policy_right policy_right_of(const struct event *ev) {
  switch (ev->type) {
  case EVENT_COMMAND:
    switch (ev->action) {
    case COMMAND_PAUSE:
      return POLICY_RIGHT_PAUSE;
    case COMMAND_RESUME:
      return POLICY_RIGHT_RESUME;
    case COMMAND_PROMOTE:
      return ev->force ? POLICY_RIGHT_PROMOTE_FORCE : POLICY_RIGHT_PROMOTE;
    case COMMAND_ROLLBACK:
      return POLICY_RIGHT_ROLLBACK;
    case COMMAND_CHECK:
      return POLICY_RIGHT_CHECK; /* ticking a checklist item a person vouches for */
    case COMMAND_ACTION_COUNT:
      break;
    }
    return POLICY_RIGHT_COUNT;
  case EVENT_FLAG_SET:
    return POLICY_RIGHT_KILL_SWITCH;
  case EVENT_APPROVAL_GRANTED:
    switch (ev->role) {
    case APPROVAL_PRODUCT_OWNER:
      return POLICY_RIGHT_APPROVE_PRODUCT_OWNER;
    case APPROVAL_SUPPORT:
      return POLICY_RIGHT_APPROVE_SUPPORT;
    case APPROVAL_DOCS:
      return POLICY_RIGHT_APPROVE_DOCS;
    case APPROVAL_ROLE_COUNT:
      break;
    }
    return POLICY_RIGHT_COUNT;
  default:
    return POLICY_RIGHT_COUNT;
  }
}

const struct policy_actor *policy_actor(const struct policy *p, const char *name) {
  for (int i = 0; i < p->n_actors; i++)
    if (strcmp(p->actors[i].name, name) == 0)
      return &p->actors[i];
  return NULL;
}

int policy_role_index(const struct policy *p, const char *name) {
  for (int i = 0; i < p->n_roles; i++)
    if (strcmp(p->roles[i], name) == 0)
      return i;
  return -1;
}

void policy_describe(const struct event *ev, char *buf, size_t len) {
  switch (ev->type) {
  case EVENT_COMMAND:
    snprintf(buf, len, "%s%s", command_action_name(ev->action), ev->force ? " --force" : "");
    return;
  case EVENT_FLAG_SET:
    snprintf(buf, len, "kill switch %s%s=%s", ev->rollout[0] ? "" : "global ", ev->flag,
             ev->value ? "true" : "false");
    return;
  case EVENT_APPROVAL_GRANTED:
    snprintf(buf, len, "approve %s", approval_role_name(ev->role));
    return;
  default:
    snprintf(buf, len, "%s", event_type_name(ev->type));
    return;
  }
}

/* "a, b or c" of the roles in mask; "no role" when empty. */
static void role_list(const struct policy *p, uint32_t mask, char *buf, size_t len) {
  size_t at = 0;
  int n = 0, total = __builtin_popcount(mask);
  buf[0] = '\0';
  if (!mask) {
    snprintf(buf, len, "no role");
    return;
  }
  for (int i = 0; i < p->n_roles && at < len; i++)
    if (mask & 1u << i) {
      n++;
      at += (size_t)snprintf(buf + at, len - at, "%s%s",
                             n == 1       ? ""
                             : n == total ? " or "
                                          : ", ",
                             p->roles[i]);
    }
}

enum policy_verdict policy_authorize(const struct policy *p, const struct event *ev, char *why,
                                     size_t why_len) {
  enum policy_right right = policy_right_of(ev);
  char what[EVENT_FLAG_MAX + 48];
  const char *who = ev->actor[0] ? ev->actor : "(no actor)";
  if (why && why_len)
    why[0] = '\0';
  if (right == POLICY_RIGHT_COUNT)
    return POLICY_NOT_GUARDED;
  policy_describe(ev, what, sizeof what);
  if (!p->enabled) {
    canary_why(why, why_len, 0, "%s by %s: no policy, the actor is not verified", what, who);
    return POLICY_OPEN;
  }
  const struct policy_actor *a = policy_actor(p, ev->actor);
  if (!a) {
    canary_why(why, why_len, 0, "%s by %s refused: %s is not an actor of the policy", what, who,
               who);
    return POLICY_UNKNOWN_ACTOR;
  }
  if (ev->auth != EVENT_AUTH_VERIFIED) {
    bool bad = ev->auth == EVENT_AUTH_BAD;
    canary_why(why, why_len, 0,
               bad ? "%s by %s refused: the signature does not verify with %s's key (changed, "
                     "replayed from another command, or signed with another key)"
                   : "%s by %s refused: not signed (the policy requires a signature: canaryctl "
                     "--key or $CANARY_KEY)",
               what, who, who);
    return bad ? POLICY_BAD_SIGNATURE : POLICY_UNSIGNED;
  }
  uint32_t granted = a->roles & p->allowed[right];
  char roles[256], holds[256];
  if (!granted) {
    role_list(p, p->allowed[right], roles, sizeof roles);
    role_list(p, a->roles, holds, sizeof holds);
    canary_why(why, why_len, 0, "%s by %s refused: %s needs %s; %s has %s", what, who,
               policy_right_name(right), roles, who, holds);
    return POLICY_FORBIDDEN;
  }
  role_list(p, granted, roles, sizeof roles);
  canary_why(why, why_len, 0, "%s by %s (verified, as %s)", what, who, roles);
  return POLICY_ALLOWED;
}

bool policy_equal(const struct policy *a, const struct policy *b) {
  if (a->enabled != b->enabled || a->n_roles != b->n_roles || a->n_actors != b->n_actors ||
      memcmp(a->allowed, b->allowed, sizeof a->allowed))
    return false;
  for (int i = 0; i < a->n_roles; i++)
    if (strcmp(a->roles[i], b->roles[i]))
      return false;
  for (int i = 0; i < a->n_actors; i++) {
    const struct policy_actor *x = &a->actors[i], *y = &b->actors[i];
    if (strcmp(x->name, y->name) || x->roles != y->roles || x->n_keys != y->n_keys)
      return false;
    for (int k = 0; k < x->n_keys; k++)
      if (strcmp(x->keys[k], y->keys[k]))
        return false;
  }
  return true;
}
