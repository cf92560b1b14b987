/* A rollout's metric series and for: states (see rollout_metrics.h). */
#include "core/rollout_metrics.h"

#include <string.h>

int rollout_metrics_init(struct rollout_metrics *m, const struct mstore_plan *mp) {
  memset(m, 0, sizeof *m);
  struct mstore_config cfg;
  mstore_config_default(&cfg);
  mstore_config_for_plan(&cfg, mp);
  m->rules_cohort = -1;
  m->deadline = INT64_MAX;
  return mstore_init(&m->ms, &cfg);
}

void rollout_metrics_free(struct rollout_metrics *m) { mstore_free(&m->ms); }
