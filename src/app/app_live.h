/*
 * What canaryctl's live subcommands share: finding Kafka and PostgreSQL, producing contract
 * events (Avro, to the topic of their type, a global flag.set to every partition), unique
 * event ids, and picking the rollout a command is about.
 */
#ifndef CANARY_APP_LIVE_H
#define CANARY_APP_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "core/event.h"
#include "store/store.h"

/* How long canaryctl waits for a service before it gives up with EXIT_UNAVAILABLE. */
#define LIVE_CONNECT_TIMEOUT_MS 5000

/* Wall-clock milliseconds since the epoch. */
int64_t live_now_ms(void);

/* A new event id, unique across hosts, processes and calls: "<host>-<pid>-<ms>-<n>". */
void live_new_id(char *buf, size_t len);

/* value when given, else the environment variable name (NULL when neither). */
const char *live_env_or(const char *value, const char *name);

/* Raise the library log level: warnings and debug lines of the store and bus on stderr. */
void live_set_verbose(bool verbose);

/*
 * Open the store at conninfo (NULL: "--pg or CANARY_PG is required", EXIT_USAGE). Returns an
 * exit code: EXIT_OK and *out, or EXIT_UNAVAILABLE after LIVE_CONNECT_TIMEOUT_MS with the last
 * reason printed as "PROG: PostgreSQL unavailable: ...".
 */
int live_store_open(const char *prog, const char *conninfo, store_t **out);

/* "; has canaryd migrated the database?" after an error naming a missing table, else "": the
 * likely cause when a command is pointed at a database canaryd has never started against. */
const char *live_schema_hint(store_t *st);
/*
 * Read every rollout (store_list_rollouts) or print why not ("PROG: cannot read rollouts: ...")
 * and return EXIT_UNAVAILABLE. The caller free()s *rows.
 */
int live_list_rollouts(const char *prog, store_t *st, struct store_rollout_row **rows, size_t *n);

/* A rollout that can still move: neither completed nor rolled back. */
bool live_is_active(const struct rollout *r);

/*
 * The row of the rollout named given, or, when given is NULL, of the only active rollout.
 * Returns EXIT_OK and *row; EXIT_BAD_INPUT with the reason printed: "unknown rollout 'x'",
 * "no active rollout; name one", "several active rollouts: a-1, b-2; name one".
 */
int live_pick_rollout(const char *prog, const struct store_rollout_row *rows, size_t n,
                      const char *given, const struct store_rollout_row **row);

/*
 * After getopt: the optional ROLLOUT argument into *rollout (left as it is when none), and
 * nothing more. Returns -1 when parsed, EXIT_USAGE (printed with the usage) otherwise.
 */
int live_rollout_arg(const char *prog, int argc, char **argv, const char *usage,
                     const char **rollout);

/*
 * live_list_rollouts then live_pick_rollout, keeping a copy of the row picked in *out (the
 * commands that act on one rollout). Returns EXIT_OK or the exit code, the reason printed.
 */
int live_find_rollout(const char *prog, store_t *st, const char *given,
                      struct store_rollout_row *out);

/*
 * What `rollback` without a ROLLOUT means (the emergency command must not need an id, and a
 * completed release may be the one to undo): the only active rollout; with none active, the
 * newest rollout of the only service whose newest rollout is completed. With service, the
 * newest rollout of that service that is active or completed. Returns EXIT_OK and *row, or
 * EXIT_BAD_INPUT with the choices printed ("several ...: a (web), b (api); name one or give
 * --service") or "nothing to roll back".
 */
int live_pick_rollback(const char *prog, const struct store_rollout_row *rows, size_t n,
                       const char *service, const struct store_rollout_row **row);

/*
 * A producer of contract events. Messages are queued by live_send() and confirmed by
 * live_sender_flush(); partitions counts are looked up once per topic (which also tells whether
 * Kafka answers at all).
 */
struct live_sender {
  const char *prog;
  const char *brokers;
  bus_producer_t *producer;
  avro_codec_t *codec;
  struct avro_buf buf;
  int64_t queued, delivered, failed;
  char error[256]; /* the first delivery error */
  char topics[4][STORE_TOPIC_MAX];
  int partitions[4]; /* by topics[] */
  int n_topics;
};

/* Create the producer and codec. Returns an exit code (EXIT_USAGE when brokers is NULL). */
int live_sender_open(struct live_sender *s, const char *prog, const char *brokers);

/* Partitions of topic, looked up once; -1 (printed: Kafka did not say within 5 s). */
int live_partitions(struct live_sender *s, const char *topic);

/*
 * Encode ev (avro_codec_encode_event) and queue it on the topic of its type with key = rollout;
 * a flag.set without rollout goes to every partition of canary.commands (same id in each).
 * Returns EXIT_OK; EXIT_BAD_INPUT when ev does not encode (why says why); EXIT_UNAVAILABLE when
 * Kafka does not answer or the topic does not exist (printed).
 */
int live_send(struct live_sender *s, const struct event *ev, char *why, size_t why_len);

/*
 * Wait until every queued message is acknowledged or timeout_ms passed. Returns EXIT_OK, or
 * EXIT_UNAVAILABLE with "PROG: N of M messages not delivered: reason" printed.
 */
int live_sender_flush(struct live_sender *s, int timeout_ms);

void live_sender_close(struct live_sender *s);

#endif
