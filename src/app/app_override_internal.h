/*
 * What the people's commands share (app_override.c: pause, resume, promote, rollback, check,
 * flag set; app_approve.c: approve): their options, building a signed contract event, sending
 * it and waiting. Private to those files.
 */
#ifndef CANARY_APP_OVERRIDE_INTERNAL_H
#define CANARY_APP_OVERRIDE_INTERNAL_H

#include <stdbool.h>

#include "app/signing.h"
#include "codec/event_json.h"
#include "core/event.h"

#define POLL_MS 150

struct cmd_opts {
  const char *prog, *usage;
  const char *kafka, *pg, *plan;
  const char *reason, *actor;
  const char *key_path; /* --key, $CANARY_KEY */
  struct signing_key key;
  bool signed_;        /* key loaded: sign what is sent */
  const char *args[4]; /* positional arguments */
  int n_args;
  const char *service; /* rollback --service */
  int timeout_ms;
  bool force, json;
};

/* Returns -1 when parsed, else the exit code (help: EXIT_OK). */
int override_parse(int argc, char **argv, struct cmd_opts *o, bool allow_force);

/* The event as JSON through the contract's decoder, signed when o has a key. An exit code. */
int override_build_event(const struct cmd_opts *o, const char *type, const char *rollout,
                         const char *extra, struct event *ev, struct event_scratch *scratch);

/* Produce ev and wait for the broker's acknowledgement; before(ctx, n) (may be NULL) runs once
 * Kafka has said how many partitions canary.commands has. An exit code. */
int override_send_event(const struct cmd_opts *o, const struct event *ev,
                        void (*before)(void *ctx, int partitions), void *ctx);

void override_sleep_ms(int ms);

#endif
