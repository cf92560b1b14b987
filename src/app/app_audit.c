/*
 * `canaryctl keygen`: a person's Ed25519 key pair for signed commands. `canaryctl audit`: every
 * command, kill switch and approval canaryd took, with its actor, whether the signature
 * verified, and what came of it (command_audit).
 */
#include "app/app_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/signing.h"
#include "codec/json.h"
#include "codec/rfc3339.h"
#include "store/store.h"

/* ---- keygen --------------------------------------------------------------------------------- */

static const char keygen_usage[] =
    "usage: canaryctl keygen --actor NAME [--out FILE] [--force]\n"
    "\n"
    "Make an Ed25519 key pair for signing commands as NAME (docs/operations.md, \"Who may do\n"
    "what\"). The private key goes to FILE (default ~/.config/canaryd/NAME.key), created with\n"
    "mode 0600; give it to canaryctl with --key FILE or $CANARY_KEY. The public key is printed\n"
    "as the policy entry to add for NAME (with the roles NAME holds).\n"
    "\n"
    "  --actor NAME   who the key signs for: the actor name commands carry\n"
    "  --out FILE     where to write the private key\n"
    "  --force        replace an existing FILE\n"
    "  -h, --help     this help\n"
    "\n"
    "Exit status: 0 written, 1 cannot write FILE (or it exists), 2 usage error.\n";

/* ~/.config/canaryd/NAME.key, making the directories (0700) on the way. */
static bool default_path(const char *actor, char *path, size_t len) {
  const char *home = getenv("HOME");
  if (!home || !*home)
    return false;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/.config", home);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return false;
  snprintf(dir, sizeof dir, "%s/.config/canaryd", home);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return false;
  return snprintf(path, len, "%s/%s.key", dir, actor) < (int)len;
}

int app_keygen(int argc, char **argv) {
  static const struct option opts[] = {{"actor", required_argument, NULL, 'a'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *actor = NULL, *out = NULL;
  bool force = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'a':
      actor = optarg;
      break;
    case 'o':
      out = optarg;
      break;
    case 'f':
      force = true;
      break;
    case 'h':
      fputs(keygen_usage, stdout);
      return EXIT_OK;
    default:
      fputs(keygen_usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc || !actor || !*actor) {
    fprintf(stderr, "canaryctl keygen: %s\n\n%s",
            optind < argc ? "unexpected argument" : "--actor NAME is required", keygen_usage);
    return EXIT_USAGE;
  }
  if (strlen(actor) >= EVENT_NAME_MAX || strpbrk(actor, " \t\n/:")) {
    fprintf(stderr,
            "canaryctl keygen: --actor: '%s' is not an actor name (at most %d "
            "characters, no spaces, '/' or ':')\n",
            actor, EVENT_NAME_MAX - 1);
    return EXIT_USAGE;
  }
  char path[600];
  if (!out) {
    if (!default_path(actor, path, sizeof path)) {
      fprintf(stderr, "canaryctl keygen: cannot make ~/.config/canaryd (HOME unset?): give "
                      "--out FILE\n");
      return EXIT_BAD_INPUT;
    }
    out = path;
  }
  struct signing_key k;
  char text[512];
  size_t len;
  if (signing_keygen(actor, &k) != CANARY_OK || !(len = signing_key_text(&k, text, sizeof text))) {
    fprintf(stderr, "canaryctl keygen: cannot make a key (libsodium)\n");
    return EXIT_BAD_INPUT;
  }
  int fd = open(out, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0600);
  bool ok = fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len;
  int err = errno;
  if (fd >= 0 && close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  memset(text, 0, sizeof text);
  memset(&k.secret, 0, sizeof k.secret);
  if (!ok) {
    fprintf(stderr, "canaryctl keygen: %s: %s%s\n", out, strerror(err),
            err == EEXIST ? " (--force replaces it)" : "");
    return EXIT_BAD_INPUT;
  }
  fprintf(stderr, "wrote the private key of %s to %s (mode 0600)\n", actor, out);
  printf("# the policy entry for %s (canaryd --policy FILE, or the plan's policy:)\n"
         "actors:\n  %s:\n    roles: [ROLE]\n    keys: [\"%s\"]\n",
         actor, actor, k.public_b64);
  return EXIT_OK;
}

/* ---- audit ---------------------------------------------------------------------------------- */

static const char audit_usage[] =
    "usage: canaryctl audit [--rollout ID] [--actor NAME] [--last N] [--json] [--pg CONNINFO]\n"
    "\n"
    "Every command, kill switch and approval canaryd took off its input, oldest first: when,\n"
    "the rollout, what was asked, by whom, whether the actor's signature verified under the\n"
    "policy, and what came of it:\n"
    "  accepted  applied (the rollout's decision says what it did)\n"
    "  refused   the policy said no: unsigned, a bad signature, an unknown actor, or no role\n"
    "            with the right (a hold decision 'unauthorized' says so on #releases)\n"
    "  rejected  allowed, but not in the rollout's state (a hold 'command_rejected')\n"
    "  invalid   not applicable at all (dead-lettered: unknown rollout, bad flag, ...)\n"
    "The signature column: verified, bad, unsigned, or unchecked (no policy: nobody checked).\n"
    "A global kill switch goes to every shard: one row per shard that took it.\n"
    "\n"
    "  --rollout ID     only this rollout's\n"
    "  --actor NAME     only this actor's\n"
    "  --last N         only the newest N\n"
    "  --json           one JSON object per line\n"
    "  --pg CONNINFO    PostgreSQL connection string [CANARY_PG]\n"
    "  -h, --help       this help\n"
    "\n"
    "Exit status: 0 listed (maybe nothing), 2 usage error, 3 PostgreSQL unavailable.\n";

static void print_json(const struct store_audit_entry *e) {
  struct jbuf b;
  char t[RFC3339_MAX];
  jbuf_init(&b);
  jbuf_puts(&b, "{\"time\":");
  jbuf_string(&b, rfc3339_format(e->time_ms, t));
  const char *keys[] = {"rollout", "action", "actor", "signature"};
  const char *vals[] = {e->rollout, e->action, e->actor, e->signature};
  for (int i = 0; i < 4; i++) {
    jbuf_printf(&b, ",\"%s\":", keys[i]);
    jbuf_string(&b, vals[i]);
  }
  jbuf_printf(&b, ",\"verified\":%s,\"outcome\":", e->verified ? "true" : "false");
  jbuf_string(&b, e->outcome);
  const char *keys2[] = {"reason", "detail", "type", "event_id", "source"};
  const char *vals2[] = {e->reason, e->detail, e->type, e->event_id, e->source};
  for (int i = 0; i < 5; i++) {
    jbuf_printf(&b, ",\"%s\":", keys2[i]);
    jbuf_string(&b, vals2[i]);
  }
  jbuf_puts(&b, "}\n");
  fwrite(b.data, 1, b.len, stdout);
  jbuf_free(&b);
}

int app_audit(int argc, char **argv) {
  static const struct option opts[] = {{"rollout", required_argument, NULL, 'r'},
                                       {"actor", required_argument, NULL, 'a'},
                                       {"last", required_argument, NULL, 'n'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *prog = "canaryctl audit", *rollout = NULL, *actor = NULL, *pg = NULL;
  long last = 0;
  bool json = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'r':
      rollout = optarg;
      break;
    case 'a':
      actor = optarg;
      break;
    case 'n':
      errno = 0;
      last = strtol(optarg, &end, 10);
      if (errno || end == optarg || *end || last < 1) {
        fprintf(stderr, "%s: --last: '%s' is not a positive whole number\n", prog, optarg);
        return EXIT_USAGE;
      }
      break;
    case 'j':
      json = true;
      break;
    case 'p':
      pg = optarg;
      break;
    case 'h':
      fputs(audit_usage, stdout);
      return EXIT_OK;
    default:
      fputs(audit_usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", prog, argv[optind], audit_usage);
    return EXIT_USAGE;
  }
  pg = live_env_or(pg, "CANARY_PG");
  if (!pg) {
    fprintf(stderr, "%s: --pg/CANARY_PG is required (option or environment)\n", prog);
    return EXIT_USAGE;
  }
  store_t *st;
  int code = live_store_open(prog, pg, &st);
  if (code != EXIT_OK)
    return code;
  struct store_audit_entry *e = NULL;
  size_t n = 0;
  int rc = store_audit_list(st, rollout, actor, last, &e, &n);
  if (rc != CANARY_OK) {
    fprintf(stderr, "%s: cannot read the audit: %s (%s)%s\n", prog, canary_strerror(rc),
            store_last_error(st), live_schema_hint(st));
    store_close(st);
    return EXIT_UNAVAILABLE;
  }
  if (!json)
    printf("%-24s %-20s %-12s %-34s %-10s %-8s %s\n", "TIME", "ROLLOUT", "ACTOR", "ACTION",
           "SIGNATURE", "OUTCOME", "REASON / DETAIL");
  for (size_t i = 0; i < n; i++) {
    if (json) {
      print_json(&e[i]);
      continue;
    }
    char t[RFC3339_MAX];
    printf("%-24s %-20s %-12s %-34s %-10s %-8s %s%s%s\n", rfc3339_format(e[i].time_ms, t),
           e[i].rollout[0] ? e[i].rollout : "(global)", e[i].actor[0] ? e[i].actor : "-",
           e[i].action, e[i].signature, e[i].outcome, e[i].reason, e[i].reason[0] ? " / " : "",
           e[i].detail);
  }
  free(e);
  store_close(st);
  fflush(stdout);
  return EXIT_OK;
}
