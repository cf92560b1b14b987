/* Helpers shared by canaryctl's subcommands. */
#include "app/app_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/rfc3339.h"
#include "config/config.h"
#include "core/metric_store.h"

bool cli_parse_time(const char *s, int64_t *ms) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*s && !*end && !errno && v >= 0) {
    *ms = v;
    return true;
  }
  return rfc3339_parse(s, ms);
}

/* $CANARY_POLICY, over the plan's own policy. */
const char *cli_policy_file(void) {
  const char *path = getenv("CANARY_POLICY");
  return path && *path ? path : NULL;
}

static bool load_policy(const char *prog, struct plan *plan, struct config_error *err) {
  const char *path = cli_policy_file();
  if (!path || config_load_policy_file(path, &plan->policy, err) == CANARY_OK)
    return true;
  char msg[sizeof err->file + sizeof err->message + 32];
  config_error_format(err, msg, sizeof msg);
  fprintf(stderr, "%s: CANARY_POLICY: %s\n", prog, msg);
  return false;
}

bool cli_load_plan(const char *prog, const char *path, struct plan *plan) {
  struct config_error err;
  int rc = path ? config_load_file(path, plan, &err) : config_load_default(plan, &err);
  if (rc == CANARY_OK) {
    /* The expressions too: a plan whose rule does not parse must not get as far as a worker. */
    struct mstore_plan mp;
    char why[1024];
    rc = mstore_plan_init(&mp, plan, why, sizeof why);
    mstore_plan_free(&mp);
    if (rc == CANARY_OK)
      return load_policy(prog, plan, &err);
    fprintf(stderr, "%s: %s: %s\n", prog, path ? path : "built-in plan", why);
    return false;
  }
  char msg[sizeof err.file + sizeof err.message + 32];
  config_error_format(&err, msg, sizeof msg);
  fprintf(stderr, "%s: %s\n", prog, msg);
  return false;
}

void cli_policy_line(FILE *f, const struct plan *plan, const char *plan_path) {
  const char *file = cli_policy_file();
  if (!plan->policy.enabled) {
    fprintf(f,
            "policy: none (no CANARY_POLICY, no policy: in %s): every command, kill switch "
            "and approval is accepted from anyone, unverified\n",
            plan_path ? plan_path : "the built-in plan");
    return;
  }
  if (file)
    fprintf(f, "policy: %s (CANARY_POLICY)", file);
  else
    fprintf(f, "policy: the policy: of %s", plan_path ? plan_path : "the built-in plan");
  fprintf(f, ", %d actors, %d roles: commands, kill switches and approvals must be signed\n",
          plan->policy.n_actors, plan->policy.n_roles);
}
