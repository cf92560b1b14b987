/*
 * `canaryctl approve ROLE [ROLLOUT]`: an approval.granted event, signed with --key, and
 * canaryd's answer as its audit records it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "codec/json.h"
#include "app/app_override.h"
#include "app/app_override_internal.h"
#include "store/store.h"

static const char approve_usage[] =
    "usage: canaryctl approve ROLE [ROLLOUT] [--key FILE] [--actor NAME] [--timeout SECONDS]\n"
    "                         [--json] [--kafka BROKERS] [--pg CONNINFO] [-v]\n"
    "\n"
    "Grant an approval the plan's gates ask for (beta's entry to ga: product_owner, support,\n"
    "docs): an approval.granted event on canary.deploy, signed with --key FILE [CANARY_KEY] when\n"
    "given. Waits for canaryd to take it and prints what its audit says: accepted, or refused by\n"
    "the policy (who may approve what: docs/operations.md, \"Who may do what\").\n"
    "Without ROLLOUT the only active rollout is meant.\n"
    "\n"
    "  --key FILE        sign with this private key (canaryctl keygen); the actor is the key's\n"
    "  --actor NAME      who ($USER; with --key, the key's actor)\n"
    "  --timeout SECONDS how long to wait for canaryd (30)\n"
    "  --json            print the audit row as JSON\n"
    "  --kafka BROKERS   Kafka bootstrap servers [CANARY_KAFKA]\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the clients do\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 accepted, 1 refused (the reason is printed), bad role or unknown rollout,\n"
    "2 usage error, 3 Kafka/PostgreSQL unavailable or no answer within the timeout.\n";

/* Until canaryd has audited event_id (in the transaction that applied it), or the timeout. */
static int wait_audited(const struct cmd_opts *o, store_t *st, const char *event_id,
                        struct store_audit_entry *e) {
  int64_t deadline = live_now_ms() + o->timeout_ms;
  for (;;) {
    bool found = false;
    int rc = store_audit_of(st, event_id, e, &found);
    if (rc == CANARY_OK && found)
      return EXIT_OK;
    if (rc != CANARY_OK && store_reconnect(st, 0) != CANARY_OK && live_now_ms() >= deadline) {
      fprintf(stderr, "%s: PostgreSQL unavailable while waiting: %s\n", o->prog,
              store_last_error(st));
      return EXIT_UNAVAILABLE;
    }
    if (live_now_ms() >= deadline) {
      fprintf(stderr,
              "%s: no answer within %g s: is canaryd running? (the approval was sent as "
              "event %s)\n",
              o->prog, o->timeout_ms / 1000.0, event_id);
      return EXIT_UNAVAILABLE;
    }
    override_sleep_ms(POLL_MS);
  }
}

int app_approve(int argc, char **argv) {
  const char *prog = "canaryctl approve";
  struct cmd_opts o = {.prog = prog, .usage = approve_usage};
  int code = override_parse(argc, argv, &o, false);
  if (code >= 0)
    return code;
  enum approval_role role;
  if (o.n_args < 1 || o.n_args > 2) {
    fprintf(stderr, "%s: expected ROLE [ROLLOUT]\n\n%s", prog, approve_usage);
    return EXIT_USAGE;
  }
  if (!approval_role_parse(o.args[0], &role)) {
    fprintf(stderr, "%s: '%s' is not an approval role (product_owner, support, docs)\n", prog,
            o.args[0]);
    return EXIT_USAGE;
  }
  if (!o.kafka || !o.pg) {
    fprintf(stderr, "%s: %s is required (option or environment)\n", prog,
            !o.kafka ? "--kafka/CANARY_KAFKA" : "--pg/CANARY_PG");
    return EXIT_USAGE;
  }
  store_t *st;
  if ((code = live_store_open(prog, o.pg, &st)) != EXIT_OK)
    return code;
  struct store_rollout_row *rows = NULL;
  const struct store_rollout_row *row = NULL;
  size_t n = 0;
  struct event_scratch *scratch = event_scratch_new();
  static struct event ev;
  code = scratch ? live_list_rollouts(prog, st, &rows, &n) : EXIT_BAD_INPUT;
  if (code == EXIT_OK)
    code = live_pick_rollout(prog, rows, n, o.n_args == 2 ? o.args[1] : NULL, &row);
  if (code == EXIT_OK) {
    struct jbuf extra;
    jbuf_init(&extra);
    jbuf_puts(&extra, ",\"role\":");
    jbuf_string(&extra, approval_role_name(role));
    jbuf_puts(&extra, ",\"actor\":");
    jbuf_string(&extra, o.actor);
    code = override_build_event(&o, "approval.granted", row->rollout.id,
                                extra.data ? extra.data : "", &ev, scratch);
    jbuf_free(&extra);
  }
  if (code == EXIT_OK)
    code = override_send_event(&o, &ev, NULL, NULL);
  struct store_audit_entry e;
  if (code == EXIT_OK)
    code = wait_audited(&o, st, ev.id, &e);
  if (code == EXIT_OK) {
    if (o.json) {
      struct jbuf b;
      jbuf_init(&b);
      jbuf_puts(&b, "{\"rollout\":");
      jbuf_string(&b, e.rollout);
      jbuf_puts(&b, ",\"action\":");
      jbuf_string(&b, e.action);
      jbuf_puts(&b, ",\"actor\":");
      jbuf_string(&b, e.actor);
      jbuf_printf(&b, ",\"verified\":%s,\"outcome\":", e.verified ? "true" : "false");
      jbuf_string(&b, e.outcome);
      jbuf_puts(&b, ",\"detail\":");
      jbuf_string(&b, e.detail);
      jbuf_puts(&b, "}\n");
      fwrite(b.data, 1, b.len, stdout);
      jbuf_free(&b);
    } else {
      printf("%s %s: %s\n", e.rollout, e.outcome, e.detail);
    }
    if (strcmp(e.outcome, "accepted")) {
      fprintf(stderr, "%s: %s\n", prog, e.detail);
      code = EXIT_BAD_INPUT;
    }
  }
  free(rows);
  event_scratch_destroy(scratch);
  store_close(st);
  fflush(stdout);
  return code;
}
