/* Loading a rollout plan from YAML (or the seed's feature-flag JSON) into struct plan. */
#ifndef CANARY_CONFIG_H
#define CANARY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_error.h" /* struct config_error, config_error_format */
#include "core/error.h"
#include "core/plan.h"

/*
 * Loads the plan in the file at path: a plan document (docs/configuration.md) or a feature-flag
 * overlay (a document whose top-level key is `canary`), which is laid over the compiled-in default
 * plan. Returns CANARY_OK and fills *out; otherwise CANARY_EIO (file unreadable), CANARY_EPARSE
 * (not YAML), or CANARY_EINVALID (YAML that is not a valid plan), with *err filled and *out left
 * untouched. err may be NULL.
 */
int config_load_file(const char *path, struct plan *out, struct config_error *err) CANARY_MUSTCHECK;

/* As config_load_file, from len bytes of text; name is used in error messages only. */
int config_load_buffer(const char *name, const char *text, size_t len, struct plan *out,
                       struct config_error *err) CANARY_MUSTCHECK;

/*
 * Loads a policy file (canaryd --policy, $CANARY_POLICY): a document whose top level is what a
 * plan's `policy:` holds (docs/configuration.md, "policy"). Returns as config_load_file; *out
 * is enabled and filled on success, untouched otherwise.
 */
int config_load_policy_file(const char *path, struct policy *out,
                            struct config_error *err) CANARY_MUSTCHECK;

/* Loads the compiled-in config/rollout.yaml. */
int config_load_default(struct plan *out, struct config_error *err) CANARY_MUSTCHECK;

/*
 * Parses a duration: one or more <integer><unit> parts with units ms, s, m, h, d, w in decreasing
 * order ("500ms", "90s", "15m", "1h30m", "2d"), or "0". No sign, no fraction, no spaces.
 * Returns true and sets *ms; false if malformed or above INT64_MAX ms.
 */
bool config_parse_duration(const char *s, int64_t *ms);

#endif
