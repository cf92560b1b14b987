/*
 * The store's side of `canaryctl rebuild` (store_rebuild.c): a scratch schema next to the live
 * one, the live offsets a rebuild stops at, the comparison of the rebuilt state with the live
 * state, and adopting the rebuilt state (docs/operations.md, "Rebuild").
 *
 * The scratch schema is a schema of the live database, filled by the worker's own code through
 * a connection whose search_path names it (store_conninfo_schema): the tables, the fence and
 * the migrations are the live ones'. Comparing and adopting are then plain SQL across the two.
 */
#ifndef CANARY_STORE_REBUILD_H
#define CANARY_STORE_REBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/*
 * conninfo (key=value or a postgresql:// URI) with the server option search_path=schema added
 * to its `options`, as a key=value string in *out (malloc()ed; the caller frees it). Every
 * statement of a store opened with it — the migrations too — then reads and writes schema.
 * CANARY_EINVALID (why in err) when conninfo does not parse, CANARY_ENOMEM.
 */
int store_conninfo_schema(const char *conninfo, const char *schema, char **out, char *err,
                          size_t err_len) CANARY_MUSTCHECK;

/* The schema this connection's unqualified tables are in (current_schema()). */
int store_schema_current(store_t *s, char *out, size_t len) CANARY_MUSTCHECK;

/*
 * Drop schema with everything in it, and create it empty. Refuses (CANARY_EINVALID) the schema
 * the connection itself uses: a rebuild never drops the live tables.
 */
int store_schema_recreate(store_t *s, const char *schema) CANARY_MUSTCHECK;

/* Every shard the store has, with its next offsets per input topic (-1: none committed). */
struct store_shard_offsets {
  int shard;
  int64_t next[STORE_INPUT_TOPICS]; /* indexed like store_input_topics[] */
};
int store_offsets_all(store_t *s, struct store_shard_offsets **out, size_t *n) CANARY_MUSTCHECK;

/*
 * Mark every outbox row published (*marked: how many were not): a rebuilt state publishes
 * nothing — its outputs were published when they were first decided — and a schema with no
 * waiting row stays so if it is ever adopted or relayed.
 */
int store_outbox_mark_all(store_t *s, long *marked) CANARY_MUSTCHECK;

/*
 * One difference between the live state and the rebuilt one. what: shard, offsets, rollout,
 * decision (a row of transitions) or audit (a row of command_audit, the freeze's own rows
 * left out); key: the shard, "shard/topic", the rollout, "rollout #seq", or the audit's
 * source; field: the column ("exists" when the row is on one side only: live or rebuilt is
 * "yes"/"no"; "body.KEY" for a key of a rollout's state document). Values are text, cut
 * at STORE_DIFF_VALUE_MAX - 1 bytes; NULL reads "".
 */
#define STORE_DIFF_VALUE_MAX 256
struct store_diff {
  char what[16];
  char key[192];
  char field[96];
  char live[STORE_DIFF_VALUE_MAX];
  char rebuilt[STORE_DIFF_VALUE_MAX];
};

/*
 * Compare the state in live_schema with the state in rebuilt_schema (both of the database s is
 * connected to): shards' global kill switches, offsets, rollouts (every column that the worker
 * writes but the bookkeeping times and the metric windows' replay mark), every decision of the
 * transition log, and the audit. *out (malloc()ed, the caller frees it) holds the differences
 * in that order, rollouts and decisions in the live creation order; n = 0 when identical. At
 * most STORE_DIFF_MAX are returned: *truncated says there were more.
 */
#define STORE_DIFF_MAX 5000
int store_rebuild_compare(store_t *s, const char *live_schema, const char *rebuilt_schema,
                          struct store_diff **out, size_t *n, bool *truncated) CANARY_MUSTCHECK;

/*
 * Adopt the rebuilt state, in one transaction on the live connection s: only while frozen
 * (CANARY_EINVALID: "not frozen"), with no outbox row waiting to be published, and with the
 * live offsets still those the rebuild stopped at (expected, n_expected; else CANARY_EINVALID:
 * the live state moved on). The live rollouts, transitions, offsets, applied ids and history
 * are moved to archive_schema (created; the permanent record is kept, not deleted) and replaced
 * by the rebuilt ones; each shard keeps its row with the rebuilt kill switches and its owner
 * epoch bumped, so a worker still holding the old state in memory is fenced and must reload.
 * The audit gets the rebuilt rows it lacks (it is append-only: a row that differs stays); the
 * outbox, the freeze and the notifier's record stay as they are. Needs the
 * role that owns canaryd's tables (the append-only triggers of transitions are switched off
 * for the move, inside the transaction). why gets the reason of a refusal.
 */
int store_rebuild_adopt(store_t *s, const char *rebuilt_schema, const char *archive_schema,
                        const struct store_shard_offsets *expected, size_t n_expected, char *why,
                        size_t why_len) CANARY_MUSTCHECK;

#endif
