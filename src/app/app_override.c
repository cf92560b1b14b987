/*
 * People's commands: pause, resume, promote [--force], rollback, check (a checklist item), and
 * kill switches (flag set).
 * Each builds a contract event, produces it to canary.commands, and then watches the transition
 * log for the decisions whose evidence "trigger" is that event's id: canaryd's answer, accepted
 * or rejected (a hold with rule command_rejected), is what the command prints and exits with.
 */
#include "app/app_override.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app_cli.h"
#include "app/app_override_internal.h"
#include "app/app_live.h"
#include "app/app_status.h"
#include "app/app_timeline.h"
#include "app/signing.h"
#include "codec/event_json.h"
#include "codec/json.h"

static const char command_usage[] =
    "usage: canaryctl pause    [ROLLOUT] [--reason TEXT] [--actor NAME] [--timeout SECONDS]\n"
    "       canaryctl resume   [ROLLOUT] [--reason TEXT] [--actor NAME] [--timeout SECONDS]\n"
    "       canaryctl promote  [ROLLOUT] [--force] [--reason TEXT] [--actor NAME] [--timeout S]\n"
    "       canaryctl rollback [ROLLOUT | --service NAME] [--reason TEXT] [--actor NAME]\n"
    "                          [--timeout SECONDS]\n"
    "       canaryctl check    [ROLLOUT] ITEM [--reason TEXT] [--actor NAME] [--plan FILE]\n"
    "                          [--timeout SECONDS]\n"
    "       common options: [--json] [--kafka BROKERS] [--pg CONNINFO] [-v]\n"
    "\n"
    "Send a command to canaryd (a 'command' event on canary.commands, key = rollout) and wait\n"
    "for its answer: the decision the command caused, printed as a timeline line\n"
    "  TIME ROLLOUT ACTION STAGE[->STAGE] STATE [RULE] REASON\n"
    "\n"
    "  pause      stop expansion (pending or running)\n"
    "  resume     continue after a pause or a halt (paused); closes the circuit breaker\n"
    "  promote    go to the next stage now, bypassing its gates (pending or running)\n"
    "  promote --force   straight to the last stage, 100% (pending, running or paused)\n"
    "  rollback   exposure 0, the baseline serves everyone (any state but rolled_back)\n"
    "  check      tick ITEM of the plan's checklist (canaryctl status ROLLOUT lists them):\n"
    "             who (--actor), when and why (--reason) are kept; any state. GA is not\n"
    "             entered while a required item is open\n"
    "\n"
    "Without ROLLOUT the only active rollout (neither completed nor rolled back) is meant;\n"
    "with several, name one. rollback, the emergency command, also finds a release that\n"
    "already completed: with no active rollout it rolls back the newest release of the one\n"
    "service whose newest release is completed (--service NAME: of that service, active or\n"
    "completed), and names the choices when there are several.\n"
    "\n"
    "  --reason TEXT     why (kept in the decision and the audit trail)\n"
    "  --actor NAME      who ($USER; with --key, the key's actor)\n"
    "  --key FILE        sign the command with this private key (canaryctl keygen)\n"
    "                    [CANARY_KEY]; canaryd's policy may refuse unsigned commands\n"
    "  --timeout SECONDS how long to wait for canaryd's decision (30)\n"
    "  --plan FILE       check: the plan canaryd runs, to check ITEM [CANARY_PLAN]\n"
    "  --json            print the decision as a canary.decisions JSON object\n"
    "  --kafka BROKERS   Kafka bootstrap servers [CANARY_KAFKA]\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the clients do\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 accepted and published (deployments reading canary.flags see it), 1 rejected\n"
    "or refused by canaryd (the reason is printed: an item already ticked says by whom; canaryctl\n"
    "audit lists a refusal), an unknown rollout or checklist item, 2 usage error, 3 "
    "Kafka/PostgreSQL\n"
    "unavailable or no decision within the timeout, 4 decided and stored but not published to\n"
    "Kafka within the timeout (canaryd's relay publishes it when it can).\n";

static const char flag_usage[] =
    "usage: canaryctl flag set NAME true|false [ROLLOUT] [--actor NAME] [--key FILE]\n"
    "                          [--timeout SECONDS]\n"
    "                          [--json] [--plan FILE] [--kafka BROKERS] [--pg CONNINFO] [-v]\n"
    "\n"
    "Set a kill switch: NAME is system.canary.enabled (the canary as a whole) or\n"
    "canary.cohort.<stage>.enabled (one cohort). false sets the exposure it governs to 0 at\n"
    "once, in any state; true lets it back.\n"
    "With ROLLOUT the switch is that rollout's own; without, it is global: produced to every\n"
    "partition of canary.commands so each canaryd shard applies it to its rollouts.\n"
    "Waits for the 'flag' decision of every affected rollout (the named one, or every active\n"
    "rollout for a global switch) and prints them. With no active rollout, a global switch is\n"
    "confirmed once every shard has recorded it.\n"
    "\n"
    "  --actor NAME      who ($USER; with --key, the key's actor)\n"
    "  --key FILE        sign with this private key (canaryctl keygen) [CANARY_KEY]\n"
    "  --timeout SECONDS how long to wait for canaryd (30)\n"
    "  --json            print the decisions as canary.decisions JSON objects\n"
    "  --plan FILE       the plan canaryd runs, to check NAME [CANARY_PLAN]\n"
    "  --kafka BROKERS   Kafka bootstrap servers [CANARY_KAFKA]\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the clients do\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 applied, 1 bad flag name, unknown rollout or refused by canaryd's policy,\n"
    "2 usage error,\n"
    "3 Kafka/PostgreSQL unavailable or no decision within the timeout.\n";

static bool parse_seconds(const char *s, int *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v <= 0 || v > 86400)
    return false;
  *ms = (int)(v * 1000);
  return true;
}

/* Returns -1 when parsed, else the exit code (help: EXIT_OK). */
int override_parse(int argc, char **argv, struct cmd_opts *o, bool allow_force) {
  static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
                                       {"actor", required_argument, NULL, 'a'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"kafka", required_argument, NULL, 'k'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"plan", required_argument, NULL, 'P'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"service", required_argument, NULL, 's'},
                                       {"key", required_argument, NULL, 'K'},
                                       {NULL, 0, NULL, 0}};
  int c;
  live_set_verbose(false);
  o->timeout_ms = 30000;
  optind = 1;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'r':
      o->reason = optarg;
      break;
    case 'a':
      o->actor = optarg;
      break;
    case 't':
      if (!parse_seconds(optarg, &o->timeout_ms)) {
        fprintf(stderr, "%s: --timeout: '%s' is not a number of seconds\n", o->prog, optarg);
        return EXIT_USAGE;
      }
      break;
    case 'f':
      if (!allow_force) {
        fprintf(stderr, "%s: --force is for promote only\n", o->prog);
        return EXIT_USAGE;
      }
      o->force = true;
      break;
    case 's':
      if (strcmp(o->prog, "canaryctl rollback")) {
        fprintf(stderr, "%s: --service is for rollback only\n", o->prog);
        return EXIT_USAGE;
      }
      o->service = optarg;
      break;
    case 'j':
      o->json = true;
      break;
    case 'k':
      o->kafka = optarg;
      break;
    case 'p':
      o->pg = optarg;
      break;
    case 'P':
      o->plan = optarg;
      break;
    case 'K':
      o->key_path = optarg;
      break;
    case 'v':
      live_set_verbose(true);
      break;
    case 'h':
      fputs(o->usage, stdout);
      return EXIT_OK;
    default:
      fputs(o->usage, stderr);
      return EXIT_USAGE;
    }
  }
  while (optind < argc) {
    if (o->n_args == (int)(sizeof o->args / sizeof *o->args)) {
      fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", o->prog, argv[optind], o->usage);
      return EXIT_USAGE;
    }
    o->args[o->n_args++] = argv[optind++];
  }
  o->kafka = live_env_or(o->kafka, "CANARY_KAFKA");
  o->pg = live_env_or(o->pg, "CANARY_PG");
  o->plan = live_env_or(o->plan, "CANARY_PLAN");
  o->key_path = live_env_or(o->key_path, "CANARY_KEY");
  if (o->key_path && *o->key_path) {
    char why[600];
    if (signing_load_key(o->key_path, &o->key, why, sizeof why) != CANARY_OK) {
      fprintf(stderr, "%s: --key: %s\n", o->prog, why);
      return EXIT_USAGE;
    }
    o->signed_ = true;
    if (!o->actor)
      o->actor = o->key.actor; /* a key signs for its own actor */
  }
  if (!o->actor)
    o->actor = live_env_or(live_env_or(NULL, "USER"), "LOGNAME");
  if (!o->actor)
    o->actor = "canaryctl";
  return -1;
}

/*
 * The event as JSON, decoded by the same decoder as every other input: a reason longer than
 * the contract allows is refused, not cut. extra is the rest of the object (",\"k\":v...").
 */
int override_build_event(const struct cmd_opts *o, const char *type, const char *rollout,
                         const char *extra, struct event *ev, struct event_scratch *scratch) {
  const char *prog = o->prog;
  char id[EVENT_ID_MAX], why[512];
  struct jbuf b;
  jbuf_init(&b);
  live_new_id(id, sizeof id);
  jbuf_puts(&b, "{\"id\":");
  jbuf_string(&b, id);
  jbuf_puts(&b, ",\"type\":");
  jbuf_string(&b, type);
  if (rollout) {
    jbuf_puts(&b, ",\"rollout\":");
    jbuf_string(&b, rollout);
  }
  jbuf_printf(&b, ",\"time\":%lld%s}", (long long)live_now_ms(), extra);
  int rc = b.oom ? CANARY_ENOMEM : event_from_json(b.data, b.len, ev, scratch, why, sizeof why);
  jbuf_free(&b);
  if (rc != CANARY_OK) {
    fprintf(stderr, "%s: %s\n", prog, rc == CANARY_ENOMEM ? "out of memory" : why);
    return EXIT_BAD_INPUT;
  }
  if (o->signed_ && signing_sign(&o->key, ev, why, sizeof why) != CANARY_OK) {
    fprintf(stderr, "%s: --key: %s\n", prog, why);
    return EXIT_USAGE;
  }
  return EXIT_OK;
}

/*
 * Produce ev and wait for the broker's acknowledgement. Returns an exit code. before(ctx, n)
 * (may be NULL) runs once Kafka has said how many partitions canary.commands has (n), just
 * before the event is produced.
 */
int override_send_event(const struct cmd_opts *o, const struct event *ev,
                        void (*before)(void *ctx, int partitions), void *ctx) {
  struct live_sender s;
  char why[256];
  int code = live_sender_open(&s, o->prog, o->kafka);
  if (code != EXIT_OK)
    return code;
  int parts = live_partitions(&s, "canary.commands");
  if (parts < 0)
    code = EXIT_UNAVAILABLE;
  if (code == EXIT_OK && before)
    before(ctx, parts);
  if (code == EXIT_OK)
    code = live_send(&s, ev, why, sizeof why);
  if (code == EXIT_BAD_INPUT)
    fprintf(stderr, "%s: %s\n", o->prog, why);
  if (code == EXIT_OK)
    code = live_sender_flush(&s, o->timeout_ms);
  live_sender_close(&s);
  return code;
}

void override_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static bool triggered_by(const struct decision *d, const char *id) {
  const struct evidence_item *t = decision_evidence(d, "trigger");
  return t && t->kind == EVIDENCE_STR && strcmp(t->str, id) == 0;
}

/*
 * The decisions of rollout caused by event id, in seq order: *out (free()d by the caller) and
 * *n. They are committed in one transaction, so once one is there all of them are. Returns a
 * CANARY_ code.
 */
static int decisions_of(store_t *st, const char *rollout, const char *id, struct decision **out,
                        size_t *n) {
  struct decision *d = NULL;
  size_t nd = 0, k = 0;
  *out = NULL;
  *n = 0;
  int rc = store_history(st, rollout, &d, &nd);
  if (rc != CANARY_OK)
    return rc;
  for (size_t i = 0; i < nd; i++)
    if (triggered_by(&d[i], id))
      d[k++] = d[i];
  if (!k) {
    free(d);
    return CANARY_OK;
  }
  *out = d;
  *n = k;
  return CANARY_OK;
}

static void print_decision(const struct cmd_opts *o, const struct decision *d) {
  if (!o->json) {
    timeline_decision(stdout, d);
    return;
  }
  struct jbuf b;
  jbuf_init(&b);
  decision_to_json(d, &b);
  jbuf_putc(&b, '\n');
  fwrite(b.data, 1, b.len, stdout);
  jbuf_free(&b);
}

/* Wait until every rollout in ids[] has decisions caused by event_id, or the timeout. */
struct waited {
  const char *rollout;
  struct decision *d;
  size_t n;
};

static int wait_decisions(const struct cmd_opts *o, store_t *st, const char *event_id,
                          struct waited *w, size_t n) {
  int64_t deadline = live_now_ms() + o->timeout_ms;
  for (;;) {
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
      if (!w[i].n) {
        int rc = decisions_of(st, w[i].rollout, event_id, &w[i].d, &w[i].n);
        if (rc == CANARY_EUNAVAILABLE || rc == CANARY_EIO) {
          /* the connection dropped: try again on the next round */
          if (store_reconnect(st, 0) != CANARY_OK && live_now_ms() >= deadline) {
            fprintf(stderr, "%s: PostgreSQL unavailable while waiting: %s\n", o->prog,
                    store_last_error(st));
            return EXIT_UNAVAILABLE;
          }
        } else if (rc != CANARY_OK) {
          fprintf(stderr, "%s: cannot read the history of %s: %s (%s)\n", o->prog, w[i].rollout,
                  canary_strerror(rc), store_last_error(st));
          return EXIT_UNAVAILABLE;
        }
      }
      done += w[i].n > 0;
    }
    if (done == n)
      return EXIT_OK;
    if (live_now_ms() >= deadline)
      return EXIT_UNAVAILABLE;
    override_sleep_ms(POLL_MS);
  }
}

/*
 * A decision stored is not yet a decision seen: deployments read canary.flags and people read
 * canary.notifications, which canaryd's relay publishes from the outbox after the commit. Wait
 * (within the timeout) until the decisions' rows are published; EXIT_UNPUBLISHED when not.
 */
static int wait_published(const struct cmd_opts *o, store_t *st, const struct waited *w,
                          int64_t deadline) {
  for (;;) {
    size_t done = 0;
    char failure[256] = "";
    for (size_t i = 0; i < w->n; i++) {
      bool found = false, published = false;
      if (store_outbox_state(st, w->d[i].id, &found, &published, failure, sizeof failure) !=
          CANARY_OK)
        break;
      if (failure[0]) {
        fprintf(stderr, "%s: decision %s was stored but Kafka refused it for good: %s\n", o->prog,
                w->d[i].id, failure);
        return EXIT_UNPUBLISHED;
      }
      done += !found || published; /* no row: published and pruned long ago */
    }
    if (done == w->n)
      return EXIT_OK;
    if (live_now_ms() >= deadline) {
      fprintf(stderr,
              "%s: decided and stored, but not yet published to Kafka: canaryd's relay "
              "publishes it when Kafka is reachable (canaryctl watch shows it then)\n",
              o->prog);
      return EXIT_UNPUBLISHED;
    }
    override_sleep_ms(POLL_MS);
  }
}

/* ---- pause, resume, promote, rollback ------------------------------------------------------ */

int app_override(int argc, char **argv) {
  enum command_action action;
  if (!command_action_parse(argv[0], &action)) {
    fprintf(stderr, "canaryctl: '%s' is not a command\n", argv[0]);
    return EXIT_USAGE;
  }
  char prog[48];
  snprintf(prog, sizeof prog, "canaryctl %s", argv[0]);
  struct cmd_opts o = {.prog = prog, .usage = command_usage};
  int code = override_parse(argc, argv, &o, action == COMMAND_PROMOTE);
  if (code >= 0)
    return code;
  const char *item = NULL;
  if (action == COMMAND_CHECK) { /* [ROLLOUT] ITEM: the last argument is the item */
    if (o.n_args < 1 || o.n_args > 2) {
      fprintf(stderr, "%s: %s\n\n%s", prog, o.n_args ? "too many arguments" : "name the item",
              command_usage);
      return EXIT_USAGE;
    }
    item = o.args[--o.n_args];
  }
  if (o.n_args > 1) {
    fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", prog, o.args[1], command_usage);
    return EXIT_USAGE;
  }
  if (o.service && o.n_args) {
    fprintf(stderr, "%s: name a rollout or a --service, not both\n", prog);
    return EXIT_USAGE;
  }
  if (!o.kafka || !o.pg) {
    fprintf(stderr, "%s: %s is required (option or environment)\n", prog,
            !o.kafka ? "--kafka/CANARY_KAFKA" : "--pg/CANARY_PG");
    return EXIT_USAGE;
  }

  if (item) { /* an unknown item would be dead-lettered, and this command wait for nothing */
    static struct plan plan;
    if (!cli_load_plan(prog, o.plan, &plan))
      return EXIT_BAD_INPUT;
    if (plan_checklist_index(&plan, item) < 0) {
      fprintf(stderr, "%s: '%s' is not an item of the plan's checklist; its items:", prog, item);
      for (int i = 0; i < plan.n_checklist; i++)
        fprintf(stderr, "%s%s", i ? ", " : " ", plan.checklist[i].id);
      fputs(plan.n_checklist ? "\n" : " none\n", stderr);
      return EXIT_BAD_INPUT;
    }
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
  if (code == EXIT_OK && action == COMMAND_ROLLBACK && !o.n_args)
    code = live_pick_rollback(prog, rows, n, o.service, &row);
  else if (code == EXIT_OK)
    code = live_pick_rollout(prog, rows, n, o.n_args ? o.args[0] : NULL, &row);
  if (code == EXIT_OK) {
    struct jbuf extra;
    jbuf_init(&extra);
    jbuf_puts(&extra, ",\"action\":");
    jbuf_string(&extra, argv[0]);
    jbuf_printf(&extra, ",\"force\":%s,\"actor\":", o.force ? "true" : "false");
    jbuf_string(&extra, o.actor);
    if (o.reason) {
      jbuf_puts(&extra, ",\"reason\":");
      jbuf_string(&extra, o.reason);
    }
    if (item) {
      jbuf_puts(&extra, ",\"item\":");
      jbuf_string(&extra, item);
    }
    code = override_build_event(&o, "command", row->rollout.id, extra.data ? extra.data : "", &ev,
                                scratch);
    jbuf_free(&extra);
  }
  if (code == EXIT_OK)
    code = override_send_event(&o, &ev, NULL, NULL);
  struct waited w = {.rollout = row ? row->rollout.id : NULL};
  int64_t deadline = live_now_ms() + o.timeout_ms;
  if (code == EXIT_OK) {
    code = wait_decisions(&o, st, ev.id, &w, 1);
    if (code == EXIT_UNAVAILABLE && !w.n)
      fprintf(stderr,
              "%s: no decision within %g s: is canaryd running? (the command was sent as "
              "event %s)\n",
              prog, o.timeout_ms / 1000.0, ev.id);
  }
  if (code == EXIT_OK) {
    for (size_t i = 0; i < w.n; i++)
      print_decision(&o, &w.d[i]);
    const struct decision *answer = &w.d[0];
    if (!strcmp(answer->rule, "command_rejected") || !strcmp(answer->rule, "unauthorized")) {
      fprintf(stderr, "%s: %s\n", prog, answer->reason);
      code = EXIT_BAD_INPUT;
    } else if (answer->action != DECISION_PAUSE && answer->action != DECISION_RESUME &&
               answer->action != DECISION_PROMOTE && answer->action != DECISION_ROLLBACK &&
               answer->action != DECISION_CHECK) {
      fprintf(stderr, "%s: unexpected answer '%s' from canaryd\n", prog,
              decision_action_name(answer->action));
      code = EXIT_BAD_INPUT;
    } else {
      code = wait_published(&o, st, &w, deadline);
    }
  }
  free(w.d);
  free(rows);
  event_scratch_destroy(scratch);
  store_close(st);
  fflush(stdout);
  return code;
}

/* ---- flag set ------------------------------------------------------------------------------ */

/* A global flag.set: the shards, and which of them showed the value before it was sent. */
struct global_wait {
  const struct cmd_opts *o;
  store_t *st;
  const struct plan *plan;
  const char *flag;
  bool value;
  int shards;
  int already; /* shards that showed the value before the event was sent */
};

/* Whether shard s has recorded flag = value among its global switches. */
static bool shard_has(const struct global_wait *g, int s) {
  struct flags f, want;
  if (status_global_flags(g->st, g->plan, s, &f) != CANARY_OK)
    return false;
  want = f;
  return flags_apply(&want, g->plan, g->flag, g->value) == CANARY_OK &&
         !memcmp(&want, &f, sizeof f);
}

static void global_before(void *ctx, int partitions) {
  struct global_wait *g = ctx;
  g->shards = partitions;
  for (int s = 0; s < partitions; s++)
    g->already += shard_has(g, s);
}

/* Wait until every shard has recorded the value; a refusal by the policy (the audit says so:
 * with no live rollout there is no decision to carry it) ends the wait with EXIT_BAD_INPUT. */
static int wait_global(const struct global_wait *g, const char *event_id) {
  int64_t deadline = live_now_ms() + g->o->timeout_ms;
  for (;;) {
    int done = 0;
    for (int s = 0; s < g->shards; s++)
      done += shard_has(g, s);
    if (done == g->shards)
      return EXIT_OK;
    struct store_audit_entry e;
    bool found = false;
    if (store_audit_of(g->st, event_id, &e, &found) == CANARY_OK && found &&
        !strcmp(e.outcome, "refused")) {
      fprintf(stderr, "%s: %s\n", g->o->prog, e.detail);
      return EXIT_BAD_INPUT;
    }
    if (live_now_ms() >= deadline)
      return EXIT_UNAVAILABLE;
    override_sleep_ms(POLL_MS);
  }
}

int app_flag_set(int argc, char **argv) {
  const char *prog = "canaryctl flag set";
  struct cmd_opts o = {.prog = prog, .usage = flag_usage};
  if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    fputs(flag_usage, stdout);
    return EXIT_OK;
  }
  if (argc < 2 || strcmp(argv[1], "set") != 0) {
    fprintf(stderr, "canaryctl flag: expected 'set'\n\n%s", flag_usage);
    return EXIT_USAGE;
  }
  int code = override_parse(argc - 1, argv + 1, &o, false);
  if (code >= 0)
    return code;
  if (o.n_args < 2 || o.n_args > 3) {
    fprintf(stderr, "%s: expected NAME true|false [ROLLOUT]\n\n%s", prog, flag_usage);
    return EXIT_USAGE;
  }
  const char *flag = o.args[0], *given = o.n_args == 3 ? o.args[2] : NULL;
  if (strcmp(o.args[1], "true") && strcmp(o.args[1], "false")) {
    fprintf(stderr, "%s: the value must be true or false, not '%s'\n", prog, o.args[1]);
    return EXIT_USAGE;
  }
  bool value = !strcmp(o.args[1], "true");
  if (!o.kafka || !o.pg) {
    fprintf(stderr, "%s: %s is required (option or environment)\n", prog,
            !o.kafka ? "--kafka/CANARY_KAFKA" : "--pg/CANARY_PG");
    return EXIT_USAGE;
  }
  static struct plan plan;
  if (!cli_load_plan(prog, o.plan, &plan))
    return EXIT_BAD_INPUT;
  struct flags probe;
  flags_init(&probe, &plan);
  if (flags_apply(&probe, &plan, flag, value) != CANARY_OK) {
    fprintf(stderr,
            "%s: '%s' is not a kill switch of the plan: system.canary.enabled or "
            "canary.cohort.<stage>.enabled with a stage of",
            prog, flag);
    for (int i = 0; i < plan.n_stages; i++)
      fprintf(stderr, "%s%s", i ? ", " : " ", plan.stages[i].name);
    fputs("\n", stderr);
    return EXIT_BAD_INPUT;
  }

  store_t *st;
  if ((code = live_store_open(prog, o.pg, &st)) != EXIT_OK)
    return code;
  struct store_rollout_row *rows = NULL;
  size_t n = 0;
  struct waited *w = NULL;
  size_t n_w = 0;
  struct event_scratch *scratch = event_scratch_new();
  static struct event ev;
  code = scratch ? live_list_rollouts(prog, st, &rows, &n) : EXIT_BAD_INPUT;
  if (code == EXIT_OK && !(w = calloc(n ? n : 1, sizeof *w)))
    code = EXIT_BAD_INPUT;
  if (code == EXIT_OK && given) {
    const struct store_rollout_row *row;
    code = live_pick_rollout(prog, rows, n, given, &row);
    if (code == EXIT_OK)
      w[n_w++].rollout = row->rollout.id;
  } else if (code == EXIT_OK) {
    for (size_t i = 0; i < n; i++) /* a global switch does not reach finished rollouts */
      if (live_is_active(&rows[i].rollout))
        w[n_w++].rollout = rows[i].rollout.id;
  }
  if (code == EXIT_OK) {
    struct jbuf extra;
    jbuf_init(&extra);
    jbuf_puts(&extra, ",\"flag\":");
    jbuf_string(&extra, flag);
    jbuf_printf(&extra, ",\"value\":%s,\"actor\":", value ? "true" : "false");
    jbuf_string(&extra, o.actor);
    code = override_build_event(&o, "flag.set", given, extra.data ? extra.data : "", &ev, scratch);
    jbuf_free(&extra);
  }
  struct global_wait g = {.o = &o, .st = st, .plan = &plan, .flag = flag, .value = value};
  if (code == EXIT_OK)
    code = override_send_event(&o, &ev, !given && !n_w ? global_before : NULL, &g);
  if (code == EXIT_OK && n_w) {
    code = wait_decisions(&o, st, ev.id, w, n_w);
    bool refused = false;
    for (size_t i = 0; i < n_w; i++)
      for (size_t k = 0; k < w[i].n; k++) {
        print_decision(&o, &w[i].d[k]);
        if (!strcmp(w[i].d[k].rule, "unauthorized") && !refused && code == EXIT_OK) {
          fprintf(stderr, "%s: %s\n", prog, w[i].d[k].reason);
          refused = true; /* refused by canaryd's policy */
        }
      }
    if (refused) {
      code = EXIT_BAD_INPUT;
    } else if (code != EXIT_OK) {
      fprintf(stderr, "%s: no decision within %g s for", prog, o.timeout_ms / 1000.0);
      for (size_t i = 0; i < n_w; i++)
        if (!w[i].n)
          fprintf(stderr, " %s", w[i].rollout);
      fprintf(stderr, ": is canaryd running? (the flag.set was sent as event %s)\n", ev.id);
    }
  } else if (code == EXIT_OK && g.already == g.shards) {
    /* Nothing to watch change: say so rather than claim canaryd applied it. */
    printf("global %s was already %s on all %d shards (no active rollouts to switch; sent as "
           "event %s)\n",
           flag, value ? "true" : "false", g.shards, ev.id);
  } else if (code == EXIT_OK) {
    code = wait_global(&g, ev.id);
    if (code == EXIT_OK)
      printf("global %s set to %s: recorded by all %d shards (no active rollouts to switch)\n",
             flag, value ? "true" : "false", g.shards);
    else if (code == EXIT_UNAVAILABLE)
      fprintf(stderr,
              "%s: not recorded by every shard within %g s: is canaryd running? (the "
              "flag.set was sent as event %s)\n",
              prog, o.timeout_ms / 1000.0, ev.id);
  }
  for (size_t i = 0; i < n_w; i++)
    free(w[i].d);
  free(w);
  free(rows);
  event_scratch_destroy(scratch);
  store_close(st);
  fflush(stdout);
  return code;
}
