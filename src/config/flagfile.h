/* The seed's feature-flag JSON: an overlay of percentages, segments and thresholds on a plan. */
#ifndef CANARY_FLAGFILE_H
#define CANARY_FLAGFILE_H

#include <stdbool.h>

#include "config/schema.h"
#include "core/plan.h"

/* Whether the document is an overlay: a mapping with the top-level key `canary`. */
bool flagfile_is_overlay(const struct ynode *root);

/*
 * Applies the overlay in root to *p (a complete plan) and runs plan_validate. Returns CANARY_OK
 * or CANARY_EINVALID with the error in ld; *p is then partly changed.
 */
int flagfile_apply(struct loader *ld, const struct ynode *root, struct plan *p);

#endif
