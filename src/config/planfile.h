/* The plan document (config/rollout.yaml): its tables and the checks that need positions. */
#ifndef CANARY_PLANFILE_H
#define CANARY_PLANFILE_H

#include "config/schema.h"
#include "core/plan.h"

/* Sets the defaults of a plan whose keys are all absent (docs/configuration.md). */
void planfile_defaults(struct plan *p);

/*
 * Fills *p (already holding planfile_defaults) from the document root, resolves cohort names,
 * and runs plan_validate. Returns CANARY_OK or CANARY_EINVALID with the error in ld.
 */
int planfile_load(struct loader *ld, const struct ynode *root, struct plan *p);

#endif
