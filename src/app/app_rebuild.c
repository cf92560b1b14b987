/*
 * `canaryctl rebuild`: the seed's data-recovery procedure (assess, restore, validate). The state
 * is rebuilt from the event log — the input topics from their beginning, up to the offsets the
 * live store says it applied — by the worker's own code (worker_rebuild.c) into a scratch
 * schema, without publishing anything, and compared with the live state (store_rebuild.c).
 * --apply adopts it while canaryd is frozen. docs/operations.md, "Rebuild", has the runbook.
 */
#include "app/app_rebuild.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/worker_rebuild.h"
#include "codec/json.h"
#include "codec/rfc3339.h"

static const char usage[] =
    "usage: canaryctl rebuild [--schema NAME] [--clock wall|event] [--until TIME] [--json]\n"
    "                         [--apply [--force]] [--plan FILE] [--policy FILE]\n"
    "                         [--max-skew-ms N] [--pg CONNINFO] [--kafka BROKERS] [-q] [-v]\n"
    "\n"
    "Rebuild canaryd's state from the event log and compare it with the live state.\n"
    "The input topics (canary.deploy, canary.metrics, canary.commands) are read from their\n"
    "beginning up to the offsets the live store says each shard applied, and applied by the\n"
    "worker's own code, in its event-time order, into a scratch schema of the same database\n"
    "(dropped and created afresh). Nothing is published: there is no producer, and the\n"
    "rebuilt outbox is marked published. Then every shard's kill switches, the offsets, every\n"
    "rollout (state, stage, exposure, its whole state document), every decision of the\n"
    "transition log and the audit are compared, and the differences printed.\n"
    "\n"
    "Freeze first (canaryctl freeze): otherwise the live state moves while the rebuild reads,\n"
    "and a difference may be only that (said when the live offsets moved).\n"
    "\n"
    "  --schema NAME     the scratch schema (default canary_rebuild); kept for inspection\n"
    "  --clock MODE      wall (default): then fire the deadlines up to the freeze's time (or\n"
    "                    now, when not frozen), as idle workers did; event: only up to the last\n"
    "                    event (canaryd --clock event)\n"
    "  --until TIME      fire deadlines up to TIME instead (RFC 3339 or ms since the epoch)\n"
    "  --json            one JSON object: counts, differences, whether adopted\n"
    "  --apply           adopt the rebuilt state when it differs: only while frozen and with\n"
    "                    nothing waiting in the outbox; the live tables are kept in a schema\n"
    "                    canary_replaced_<time>. Then restart every canaryd and unfreeze\n"
    "  --force           with --apply: adopt even when a live rollout has more decisions,\n"
    "                    notifications or splits than its rebuilt self (their ids are reused)\n"
    "  --plan FILE       the plan canaryd runs [CANARY_PLAN]; default: the built-in plan\n"
    "  --policy FILE     the policy canaryd runs [CANARY_POLICY]; default: the plan's\n"
    "  --max-skew-ms N   as canaryd's (default 3600000)\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  --kafka BROKERS   [CANARY_KAFKA]\n"
    "  -q, --quiet       no progress lines on stderr\n"
    "  -v, --verbose     the worker's and the libraries' log lines on stderr\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 identical (or adopted), 1 different (or adoption refused: why on stderr),\n"
    "2 error: usage, Kafka or PostgreSQL unavailable, or a log that cannot give the state back\n"
    "(its head deleted by Kafka's retention, or shorter than the live offsets).\n";

enum { EXIT_DIFFERENT = 1, EXIT_ERROR = 2 };

struct opts {
  const char *schema, *pg, *kafka, *plan, *policy;
  bool event_clock, json, apply, force, quiet, verbose, has_until;
  int64_t until_ms, max_skew_ms;
};

static const char prog[] = "canaryctl rebuild";

static int parse(int argc, char **argv, struct opts *o) {
  static const struct option opts[] = {{"schema", required_argument, NULL, 's'},
                                       {"clock", required_argument, NULL, 'c'},
                                       {"until", required_argument, NULL, 'u'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"apply", no_argument, NULL, 'A'},
                                       {"force", no_argument, NULL, 'F'},
                                       {"plan", required_argument, NULL, 'P'},
                                       {"policy", required_argument, NULL, 'Y'},
                                       {"max-skew-ms", required_argument, NULL, 'k'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"kafka", required_argument, NULL, 'K'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  *o = (struct opts){.schema = "canary_rebuild", .max_skew_ms = EVENT_MAX_SKEW_MS};
  int c;
  char *end;
  optind = 1;
  while ((c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      o->schema = optarg;
      break;
    case 'c':
      if (strcmp(optarg, "wall") && strcmp(optarg, "event")) {
        fprintf(stderr, "%s: --clock: wall or event, not '%s'\n", prog, optarg);
        return EXIT_USAGE;
      }
      o->event_clock = !strcmp(optarg, "event");
      break;
    case 'u':
      if (!cli_parse_time(optarg, &o->until_ms)) {
        fprintf(stderr, "%s: --until: not a time: '%s'\n", prog, optarg);
        return EXIT_USAGE;
      }
      o->has_until = true;
      break;
    case 'j':
      o->json = true;
      break;
    case 'A':
      o->apply = true;
      break;
    case 'F':
      o->force = true;
      break;
    case 'P':
      o->plan = optarg;
      break;
    case 'Y':
      o->policy = optarg;
      break;
    case 'k':
      o->max_skew_ms = strtoll(optarg, &end, 10);
      if (*end || o->max_skew_ms < 0) {
        fprintf(stderr, "%s: --max-skew-ms: not a number of milliseconds: '%s'\n", prog, optarg);
        return EXIT_USAGE;
      }
      break;
    case 'p':
      o->pg = optarg;
      break;
    case 'K':
      o->kafka = optarg;
      break;
    case 'q':
      o->quiet = true;
      break;
    case 'v':
      o->verbose = true;
      break;
    case 'h':
      fputs(usage, stdout);
      return EXIT_OK;
    default:
      fputs(usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", prog, argv[optind], usage);
    return EXIT_USAGE;
  }
  if (o->force && !o->apply) {
    fprintf(stderr, "%s: --force goes with --apply\n", prog);
    return EXIT_USAGE;
  }
  o->pg = live_env_or(o->pg, "CANARY_PG");
  o->kafka = live_env_or(o->kafka, "CANARY_KAFKA");
  o->plan = live_env_or(o->plan, "CANARY_PLAN");
  if (!o->pg || !o->kafka) {
    fprintf(stderr, "%s: %s is required (option or environment)\n", prog,
            !o->kafka ? "--kafka/CANARY_KAFKA" : "--pg/CANARY_PG");
    return EXIT_USAGE;
  }
  return -1;
}

static void progress(void *ctx, int64_t done, int64_t total) {
  (void)ctx;
  fprintf(stderr, "%s: %" PRId64 " of %" PRId64 " messages applied (%d%%)\n", prog, done, total,
          total > 0 ? (int)(100 * done / total) : 100);
}

/* ---- output ----------------------------------------------------------------------------- */

/* A value for the text table: "(none)" when empty, cut at 72 characters. */
static const char *shown(const char *v, char *buf, size_t len) {
  if (!*v)
    return "(none)";
  if (strlen(v) <= 72)
    return v;
  snprintf(buf, len, "%.69s...", v);
  return buf;
}

static void print_text(const struct store_diff *d, size_t n, bool truncated) {
  for (size_t i = 0; i < n; i++) {
    char a[80], b[80];
    if (!strcmp(d[i].field, "exists")) {
      printf("  %-8s %s: only in the %s state\n", d[i].what, d[i].key,
             !strcmp(d[i].live, "yes") ? "live" : "rebuilt");
      continue;
    }
    printf("  %-8s %s: %s\n             live     %s\n             rebuilt  %s\n", d[i].what,
           d[i].key, d[i].field, shown(d[i].live, a, sizeof a), shown(d[i].rebuilt, b, sizeof b));
  }
  if (truncated)
    printf("  ... and more (the first %d are shown)\n", STORE_DIFF_MAX);
}

struct outcome {
  const char *live_schema, *schema, *archive;
  bool frozen, moved, truncated, adopted;
  int64_t fire_ms;
  const struct worker_rebuild_result *res;
  size_t n_shards;
};

static void print_json(const struct outcome *oc, const struct store_diff *d, size_t n) {
  struct jbuf b;
  jbuf_init(&b);
  jbuf_puts(&b, "{\"identical\":");
  jbuf_bool(&b, n == 0);
  jbuf_puts(&b, ",\"live_schema\":");
  jbuf_string(&b, oc->live_schema);
  jbuf_puts(&b, ",\"rebuilt_schema\":");
  jbuf_string(&b, oc->schema);
  jbuf_puts(&b, ",\"frozen\":");
  jbuf_bool(&b, oc->frozen);
  jbuf_puts(&b, ",\"live_moved\":");
  jbuf_bool(&b, oc->moved);
  jbuf_puts(&b, ",\"deadlines_until\":");
  if (oc->fire_ms == INT64_MIN) {
    jbuf_null(&b);
  } else {
    char t[40];
    jbuf_string(&b, rfc3339_format(oc->fire_ms, t));
  }
  jbuf_printf(&b,
              ",\"shards\":%zu,\"messages\":%" PRId64 ",\"applied\":%" PRId64
              ",\"duplicates\":%" PRId64 ",\"dead_letters\":%" PRId64 ",\"decisions\":%" PRId64,
              oc->n_shards, oc->res->messages, oc->res->applied, oc->res->duplicates,
              oc->res->dead_letters, oc->res->decisions);
  jbuf_puts(&b, ",\"differences\":[");
  for (size_t i = 0; i < n; i++) {
    jbuf_puts(&b, i ? ",{\"what\":" : "{\"what\":");
    jbuf_string(&b, d[i].what);
    jbuf_puts(&b, ",\"key\":");
    jbuf_string(&b, d[i].key);
    jbuf_puts(&b, ",\"field\":");
    jbuf_string(&b, d[i].field);
    jbuf_puts(&b, ",\"live\":");
    jbuf_string(&b, d[i].live);
    jbuf_puts(&b, ",\"rebuilt\":");
    jbuf_string(&b, d[i].rebuilt);
    jbuf_putc(&b, '}');
  }
  jbuf_puts(&b, "],\"truncated\":");
  jbuf_bool(&b, oc->truncated);
  jbuf_puts(&b, ",\"adopted\":");
  jbuf_bool(&b, oc->adopted);
  jbuf_puts(&b, ",\"archive_schema\":");
  if (oc->archive)
    jbuf_string(&b, oc->archive);
  else
    jbuf_null(&b);
  jbuf_puts(&b, "}\n");
  fwrite(b.data, 1, b.len, stdout);
  jbuf_free(&b);
}

/* ---- adopting --------------------------------------------------------------------------- */

/*
 * Decision, notification and split ids are the rollout's counters (rollout/seq, rollout/nN,
 * rollout/fN): where the live rollout counted further than its rebuilt self, or exists only
 * live, the rebuilt one's next outputs would carry ids already published for other messages
 * (consumers de-duplicate by id; the outbox skips an id it holds). Names the first such.
 */
static bool reuses_ids(const struct store_diff *d, size_t n, bool truncated, char *why,
                       size_t len) {
  if (truncated) {
    snprintf(why, len, "too many differences to check that no output id would be reused");
    return true;
  }
  for (size_t i = 0; i < n; i++) {
    if (strcmp(d[i].what, "rollout"))
      continue;
    bool counter = !strcmp(d[i].field, "seq") || !strcmp(d[i].field, "body.notify_seq") ||
                   !strcmp(d[i].field, "body.traffic_seq");
    if ((!strcmp(d[i].field, "exists") && !strcmp(d[i].live, "yes")) ||
        (counter && strtoll(d[i].live, NULL, 10) > strtoll(d[i].rebuilt, NULL, 10))) {
      snprintf(why, len,
               "rollout %s: the live one %s; its next outputs would reuse ids "
               "already published",
               d[i].key,
               !strcmp(d[i].field, "exists") ? "is not in the rebuilt state" : "counted further");
      return true;
    }
  }
  return false;
}

static int adopt(store_t *live, const struct opts *o, bool frozen,
                 const struct store_shard_offsets *upto, size_t n_upto, const struct store_diff *d,
                 size_t n, bool truncated, char *archive, size_t archive_len) {
  char why[512];
  if (!frozen) { /* said first: the rest may be only the live state's progress */
    fprintf(stderr,
            "%s: not adopted: not frozen: freeze first (canaryctl freeze), rebuild, "
            "then adopt\n",
            prog);
    return EXIT_DIFFERENT;
  }
  if (!o->force && reuses_ids(d, n, truncated, why, sizeof why)) {
    fprintf(stderr, "%s: not adopted: %s (--force to adopt anyway)\n", prog, why);
    return EXIT_DIFFERENT;
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(archive, archive_len, "canary_replaced_%Y%m%d_%H%M%S", &tm);
  int rc = store_rebuild_adopt(live, o->schema, archive, upto, n_upto, why, sizeof why);
  if (rc == CANARY_EINVALID) { /* refused: not frozen, rows waiting, the live state moved */
    fprintf(stderr, "%s: not adopted: %s\n", prog, why);
    return EXIT_DIFFERENT;
  }
  if (rc != CANARY_OK) {
    fprintf(stderr, "%s: adopting failed, nothing changed: %s\n", prog, why);
    return EXIT_ERROR;
  }
  return EXIT_OK;
}

/* ---- the command ------------------------------------------------------------------------ */

static bool same_offsets(const struct store_shard_offsets *a, size_t na,
                         const struct store_shard_offsets *b, size_t nb) {
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (a[i].shard != b[i].shard || memcmp(a[i].next, b[i].next, sizeof a[i].next))
      return false;
  return true;
}

static int run(const struct opts *o, const struct plan *plan, store_t *live) {
  char live_schema[128], *conninfo = NULL, why[600];
  struct store_freeze fr;
  struct store_shard_offsets *upto = NULL, *after = NULL;
  size_t n_upto = 0, n_after = 0, n_diff = 0;
  struct store_diff *diff = NULL;
  int code = EXIT_ERROR;
  if (store_schema_current(live, live_schema, sizeof live_schema) != CANARY_OK ||
      store_freeze_get(live, &fr) != CANARY_OK ||
      store_offsets_all(live, &upto, &n_upto) != CANARY_OK) {
    fprintf(stderr, "%s: cannot read the live state: %s%s\n", prog, store_last_error(live),
            live_schema_hint(live));
    goto out;
  }
  if (!fr.frozen)
    fprintf(stderr,
            "%s: warning: canaryd is not frozen: the live state may move while the "
            "rebuild reads (canaryctl freeze first)\n",
            prog);
  int64_t fire_ms = o->has_until     ? o->until_ms
                    : o->event_clock ? INT64_MIN
                    : fr.frozen      ? fr.since_ms
                                     : live_now_ms();
  if (store_schema_recreate(live, o->schema) != CANARY_OK) {
    fprintf(stderr, "%s: %s\n", prog, store_last_error(live));
    goto out;
  }
  if (store_conninfo_schema(o->pg, o->schema, &conninfo, why, sizeof why) != CANARY_OK) {
    fprintf(stderr, "%s: --pg: %s\n", prog, why);
    goto out;
  }
  if (!o->quiet)
    fprintf(stderr, "%s: rebuilding %zu shards from the log into schema %s\n", prog, n_upto,
            o->schema);
  struct worker_rebuild_config rc = {.brokers = o->kafka,
                                     .conninfo = conninfo,
                                     .plan = plan,
                                     .max_skew_ms = o->max_skew_ms,
                                     .upto = upto,
                                     .n_shards = n_upto,
                                     .fire_until_ms = fire_ms,
                                     .wait_ms = 30000,
                                     .progress = o->quiet ? NULL : progress};
  struct worker_rebuild_result res;
  if (worker_rebuild(&rc, &res, why, sizeof why)) {
    fprintf(stderr, "%s: %s\n", prog, why);
    goto out;
  }
  bool truncated;
  if (store_rebuild_compare(live, live_schema, o->schema, &diff, &n_diff, &truncated) !=
          CANARY_OK ||
      store_offsets_all(live, &after, &n_after) != CANARY_OK) {
    fprintf(stderr, "%s: cannot compare: %s\n", prog, store_last_error(live));
    goto out;
  }
  char archive[64] = "";
  struct outcome oc = {.live_schema = live_schema,
                       .schema = o->schema,
                       .frozen = fr.frozen,
                       .moved = !same_offsets(upto, n_upto, after, n_after),
                       .truncated = truncated,
                       .fire_ms = fire_ms,
                       .res = &res,
                       .n_shards = n_upto};
  code = n_diff ? EXIT_DIFFERENT : EXIT_OK;
  if (o->apply && n_diff) {
    code =
        adopt(live, o, fr.frozen, upto, n_upto, diff, n_diff, truncated, archive, sizeof archive);
    oc.adopted = code == EXIT_OK;
    oc.archive = oc.adopted ? archive : NULL;
  }
  if (o->json) {
    print_json(&oc, diff, n_diff);
    goto out;
  }
  printf("rebuilt %zu shards from %" PRId64 " messages (%" PRId64 " applied, %" PRId64
         " duplicates, %" PRId64 " dead letters), %" PRId64 " decisions, into schema %s\n",
         n_upto, res.messages, res.applied, res.duplicates, res.dead_letters, res.decisions,
         o->schema);
  if (!n_diff) {
    printf("identical: the live state (schema %s) is the state the log gives\n", live_schema);
  } else {
    printf("DIFFERENT: %zu%s differences between the live state (schema %s) and the rebuilt "
           "one (schema %s)\n",
           n_diff, truncated ? "+" : "", live_schema, o->schema);
    print_text(diff, n_diff, truncated);
  }
  if (oc.moved)
    printf("note: the live offsets moved while the rebuild ran (not frozen): differences may "
           "be only the live state's progress\n");
  if (oc.adopted)
    printf("adopted: the live state is now the rebuilt one; the old tables are in schema %s.\n"
           "Restart every canaryd (they hold the old state and are fenced), then "
           "canaryctl unfreeze.\n",
           archive);
  else if (o->apply && !n_diff)
    printf("nothing to adopt\n");
out:
  free(conninfo);
  free(upto);
  free(after);
  free(diff);
  return code;
}

int app_rebuild(int argc, char **argv) {
  struct opts o;
  int code = parse(argc, argv, &o);
  if (code >= 0)
    return code;
  live_set_verbose(o.verbose);
  if (o.policy && setenv("CANARY_POLICY", o.policy, 1)) {
    fprintf(stderr, "%s: --policy: cannot set it\n", prog);
    return EXIT_ERROR;
  }
  static struct plan plan; /* ~100 KiB: not on the stack */
  if (!cli_load_plan(prog, o.plan, &plan))
    return EXIT_ERROR;
  store_t *live;
  if (live_store_open(prog, o.pg, &live) != EXIT_OK)
    return EXIT_ERROR;
  code = run(&o, &plan, live);
  store_close(live);
  return code;
}
