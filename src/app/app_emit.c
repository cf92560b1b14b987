/*
 * `canaryctl emit`: what CI (and people testing a plan) use to put contract events on Kafka.
 * An event comes from flags (`--type ci.completed --rollout web-2.1.0 --ok true`) or as JSON
 * Lines from standard input or a file. Either way it is validated by the same decoder as
 * everywhere else (event_from_json_value), encoded in Avro, produced to the topic of its type
 * with key = rollout, and confirmed by the broker before the command returns.
 */
#include "app/app_emit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/signing.h"
#include "codec/event_json.h"
#include "codec/json.h"

#define PROG "canaryctl emit"
#define MAX_FIELDS 32

static const char usage[] =
    "usage: canaryctl emit --type TYPE [--rollout ID] [--id ID] [--time TIME] [--FIELD VALUE ...]\n"
    "       canaryctl emit [--file FILE.jsonl]          (JSON Lines from FILE or standard input)\n"
    "       common options: [--kafka BROKERS] [--timeout SECONDS] [--dry-run] [--quiet] [-v]\n"
    "\n"
    "Produce contract events (docs/events.md) to Kafka: Avro, on the topic of their type\n"
    "(canary.deploy, canary.commands, canary.metrics), key = rollout, and wait until the broker\n"
    "has acknowledged every one.\n"
    "\n"
    "From flags: every field of the event type is a flag, e.g.\n"
    "  canaryctl emit --type rollout.requested --rollout web-2.1.0 --service web \\\n"
    "                 --version 2.1.0 --baseline_version 2.0.3\n"
    "  canaryctl emit --type ci.completed --rollout web-2.1.0 --ok true\n"
    "  canaryctl emit --type smoke.completed --rollout web-2.1.0 --ok true --passed 42 --failed 0\n"
    "  canaryctl emit --type metrics --rollout web-2.1.0 --cohort internal_test \\\n"
    "                 --variant canary --interval_ms 60000 --counters '{\"requests\":1200}'\n"
    "  (--FIELD=VALUE works too). Booleans are true/false, integer fields take integers,\n"
    "  counters/gauges/distributions/samples take JSON; everything else is a string.\n"
    "  --id defaults to a unique id (host-pid-ms-n), --time to now (RFC 3339 or ms).\n"
    "  A flag.set without --rollout applies to every rollout. The id is printed on stdout.\n"
    "\n"
    "From JSON Lines (no --type): one event object per line; blank lines and lines starting\n"
    "with '#' are skipped. A line without \"id\" or \"time\" gets them as the flags do (a\n"
    "unique id, now; so a file sent twice is sent twice: give ids to make it idempotent). A bad\n"
    "line is reported as 'stdin:LINE: reason' and skipped; the others are still sent. At the\n"
    "end: 'emitted N events (M bad lines)' on stderr.\n"
    "\n"
    "A flag.set without rollout is produced once to EVERY partition of canary.commands (same\n"
    "id), because each canaryd shard applies kill switches to its own rollouts.\n"
    "\n"
    "A person's event (approval.granted, command, flag.set) is signed with --key FILE (a key\n"
    "of canaryctl keygen) [CANARY_KEY]: its actor, when not given, is the key's.\n"
    "\n"
    "  --kafka BROKERS   Kafka bootstrap servers [CANARY_KAFKA]\n"
    "  --key FILE        sign approvals, commands and flag.set with this private key\n"
    "  --file FILE       read JSON Lines from FILE ('-' = standard input, the default)\n"
    "  --timeout SECONDS how long to wait for the broker's acknowledgements (30)\n"
    "  --dry-run         validate and print each event as JSON; send nothing\n"
    "  -q, --quiet       no summary line\n"
    "  -v, --verbose     log what the Kafka client does\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 every event sent, 1 a bad event or line (the good ones were still sent),\n"
    "2 usage error, 3 Kafka unavailable (not every event was acknowledged).\n";

/* How a flag's value becomes JSON. */
enum vkind { V_STRING, V_BOOL, V_INT, V_JSON, V_TIME };

static enum vkind kind_of(const char *field) {
  static const char *const bools[] = {"ok", "force", "value"};
  static const char *const ints[] = {"passed", "failed", "count", "severity", "interval_ms"};
  static const char *const jsons[] = {"counters", "gauges", "distributions", "samples"};
  for (size_t i = 0; i < sizeof bools / sizeof *bools; i++)
    if (!strcmp(field, bools[i]))
      return V_BOOL;
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
    if (!strcmp(field, ints[i]))
      return V_INT;
  for (size_t i = 0; i < sizeof jsons / sizeof *jsons; i++)
    if (!strcmp(field, jsons[i]))
      return V_JSON;
  return !strcmp(field, "time") ? V_TIME : V_STRING;
}

static bool is_integer(const char *s) {
  const char *p = s + (*s == '-');
  if (!*p || (p[0] == '0' && p[1]))
    return false;
  for (; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  return true;
}

/*
 * Write the value as the JSON type its field takes. A value that does not look like that type
 * is written as a string, so the decoder reports it the way it reports any bad event
 * ("ok: expected true or false, got string").
 */
static void put_value(struct jbuf *b, const char *field, const char *v) {
  switch (kind_of(field)) {
  case V_BOOL:
    if (!strcmp(v, "true") || !strcmp(v, "false")) {
      jbuf_puts(b, v);
      return;
    }
    break;
  case V_INT:
  case V_TIME:
    if (is_integer(v)) {
      jbuf_puts(b, v);
      return;
    }
    break;
  case V_JSON:
    jbuf_puts(b, v); /* checked by the caller */
    return;
  case V_STRING:
    break;
  }
  jbuf_string(b, v);
}

struct emit_opts {
  const char *kafka, *file, *type, *key_path;
  struct signing_key key;
  bool signed_;
  int timeout_ms;
  bool dry_run, quiet;
  const char *names[MAX_FIELDS], *values[MAX_FIELDS]; /* event fields, in order given */
  int n;
};

/* Parse a --timeout value in seconds. */
static bool parse_seconds(const char *s, int *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v <= 0 || v > 3600)
    return false;
  *ms = (int)(v * 1000);
  return true;
}

/* Returns -1 when parsed, else the exit code (help: EXIT_OK). */
static int parse_args(int argc, char **argv, struct emit_opts *o) {
  o->timeout_ms = 30000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return EXIT_OK;
    }
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      o->quiet = true;
      continue;
    }
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      live_set_verbose(true);
      continue;
    }
    if (!strcmp(a, "--dry-run")) {
      o->dry_run = true;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || !a[2]) {
      fprintf(stderr, PROG ": unexpected argument '%s' (fields are given as --FIELD VALUE)\n\n%s",
              a, usage);
      return EXIT_USAGE;
    }
    /* --name VALUE or --name=VALUE */
    static char names[MAX_FIELDS][64];
    const char *name = a + 2, *value;
    const char *eq = strchr(name, '=');
    if (eq) {
      if ((size_t)(eq - name) >= sizeof names[0] || o->n >= MAX_FIELDS) {
        fprintf(stderr, PROG ": '%s': too long or too many fields\n", a);
        return EXIT_USAGE;
      }
      memcpy(names[o->n], name, (size_t)(eq - name));
      names[o->n][eq - name] = '\0';
      name = names[o->n];
      value = eq + 1;
    } else if (!strcmp(name, "force") && (i + 1 == argc || !strncmp(argv[i + 1], "--", 2))) {
      value = "true"; /* --force alone, as for promote */
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      fprintf(stderr, PROG ": --%s needs a value\n", name);
      return EXIT_USAGE;
    }
    if (!strcmp(name, "kafka")) {
      o->kafka = value;
    } else if (!strcmp(name, "file")) {
      o->file = value;
    } else if (!strcmp(name, "key")) {
      o->key_path = value;
    } else if (!strcmp(name, "timeout")) {
      if (!parse_seconds(value, &o->timeout_ms)) {
        fprintf(stderr, PROG ": --timeout: '%s' is not a number of seconds\n", value);
        return EXIT_USAGE;
      }
    } else {
      if (!strcmp(name, "type"))
        o->type = value;
      for (int k = 0; k < o->n; k++)
        if (!strcmp(o->names[k], name)) {
          fprintf(stderr, PROG ": --%s given twice\n", name);
          return EXIT_USAGE;
        }
      if (o->n >= MAX_FIELDS) {
        fprintf(stderr, PROG ": too many fields\n");
        return EXIT_USAGE;
      }
      o->names[o->n] = name;
      o->values[o->n++] = value;
    }
  }
  if (!o->type && o->n) {
    fprintf(stderr, PROG ": --%s without --type (give --type, or JSON Lines on stdin)\n",
            o->names[0]);
    return EXIT_USAGE;
  }
  if (o->type && o->file) {
    fprintf(stderr, PROG ": --file reads JSON Lines; it cannot be combined with --type\n");
    return EXIT_USAGE;
  }
  o->key_path = live_env_or(o->key_path, "CANARY_KEY");
  if (o->key_path && *o->key_path) {
    char why[600];
    if (signing_load_key(o->key_path, &o->key, why, sizeof why) != CANARY_OK) {
      fprintf(stderr, PROG ": --key: %s\n", why);
      return EXIT_USAGE;
    }
    o->signed_ = true;
  }
  return -1;
}

/* Build the event of the flags. Returns an exit code; the reason is printed. */
static int event_from_flags(const struct emit_opts *o, struct event *ev,
                            struct event_scratch *scratch) {
  struct jbuf b;
  jbuf_init(&b);
  bool has_id = false, has_time = false;
  jbuf_putc(&b, '{');
  for (int k = 0; k < o->n; k++) {
    if (kind_of(o->names[k]) == V_JSON) {
      struct json_doc doc;
      const struct json_value *root;
      struct json_error err;
      json_doc_init(&doc);
      int rc = json_parse(&doc, o->values[k], strlen(o->values[k]), &root, &err);
      json_doc_free(&doc);
      if (rc != CANARY_OK) {
        fprintf(stderr, PROG ": --%s: not JSON: %d:%d: %s\n", o->names[k], err.line, err.column,
                err.message);
        jbuf_free(&b);
        return EXIT_BAD_INPUT;
      }
    }
    has_id |= !strcmp(o->names[k], "id");
    has_time |= !strcmp(o->names[k], "time");
    if (k)
      jbuf_putc(&b, ',');
    jbuf_string(&b, o->names[k]);
    jbuf_putc(&b, ':');
    put_value(&b, o->names[k], o->values[k]);
  }
  if (!has_id) {
    char id[EVENT_ID_MAX];
    live_new_id(id, sizeof id);
    jbuf_puts(&b, ",\"id\":");
    jbuf_string(&b, id);
  }
  if (!has_time)
    jbuf_printf(&b, ",\"time\":%lld", (long long)live_now_ms());
  jbuf_putc(&b, '}');
  if (b.oom) {
    jbuf_free(&b);
    fprintf(stderr, PROG ": out of memory\n");
    return EXIT_BAD_INPUT;
  }
  /* event_from_json parses into the scratch, which then holds what the event borrows. */
  char why[512];
  int rc = event_from_json(b.data, b.len, ev, scratch, why, sizeof why);
  jbuf_free(&b);
  if (rc != CANARY_OK) {
    fprintf(stderr, PROG ": %s\n", why);
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}

static void print_json(const struct event *ev) {
  struct jbuf b;
  jbuf_init(&b);
  event_to_json(ev, &b);
  jbuf_putc(&b, '\n');
  fwrite(b.data, 1, b.len, stdout);
  jbuf_free(&b);
}

/* With --key, a person's event is signed as the key's actor (filled in when absent). Returns
 * false with why when it names another actor. */
static bool sign_event(const struct emit_opts *o, struct event *ev, char *why, size_t len) {
  if (!o->signed_ || policy_right_of(ev) == POLICY_RIGHT_COUNT) /* not a person's event */
    return true;
  if (!ev->actor[0])
    snprintf(ev->actor, sizeof ev->actor, "%s", o->key.actor);
  return signing_sign(&o->key, ev, why, len) == CANARY_OK;
}

/* The event of the flags is built (and checked) before Kafka is contacted. */
static int emit_one(const struct emit_opts *o) {
  struct event_scratch *scratch = event_scratch_new();
  struct event ev;
  if (!scratch) {
    fprintf(stderr, PROG ": out of memory\n");
    return EXIT_BAD_INPUT;
  }
  int code = event_from_flags(o, &ev, scratch);
  char why_sign[256];
  if (code == EXIT_OK && !sign_event(o, &ev, why_sign, sizeof why_sign)) {
    fprintf(stderr, PROG ": --key: %s\n", why_sign);
    code = EXIT_BAD_INPUT;
  }
  if (code == EXIT_OK && o->dry_run) {
    print_json(&ev);
  } else if (code == EXIT_OK) {
    struct live_sender s;
    char why[256];
    code = live_sender_open(&s, PROG, live_env_or(o->kafka, "CANARY_KAFKA"));
    if (code == EXIT_OK) {
      code = live_send(&s, &ev, why, sizeof why);
      if (code == EXIT_BAD_INPUT)
        fprintf(stderr, PROG ": %s %s: %s\n", event_type_name(ev.type), ev.id, why);
      if (code == EXIT_OK)
        code = live_sender_flush(&s, o->timeout_ms);
      live_sender_close(&s);
    }
    if (code == EXIT_OK) {
      printf("%s\n", ev.id);
      if (!o->quiet)
        fprintf(stderr, "emitted 1 events (0 bad lines)\n");
    }
  }
  event_scratch_destroy(scratch);
  return code;
}

static bool blank_or_comment(const char *line) {
  while (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\n')
    line++;
  return !*line || *line == '#';
}

/*
 * A line that is a JSON object without "id" or "time" gets them as the flag form does: a new
 * unique id, the time now. Into *out (reset); false when the line is left as it is (not an
 * object: event_from_json says why, with its position).
 */
static bool fill_id_time(const char *line, size_t len, struct jbuf *out) {
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root;
  struct json_error err;
  bool filled = false;
  if (json_parse(&doc, line, len, &root, &err) == CANARY_OK && root->type == JSON_OBJECT &&
      (!json_get(root, "id") || !json_get(root, "time"))) {
    const char *end = line + len;
    while (end > line && end[-1] != '}')
      end--;
    jbuf_reset(out);
    jbuf_write(out, line, (size_t)(end - line - 1)); /* without the closing brace */
    bool first = root->n_members == 0;
    if (!json_get(root, "id")) {
      char id[EVENT_ID_MAX];
      live_new_id(id, sizeof id);
      jbuf_puts(out, first ? "\"id\":" : ",\"id\":");
      jbuf_string(out, id);
      first = false;
    }
    if (!json_get(root, "time"))
      jbuf_printf(out, "%s\"time\":%lld", first ? "" : ",", (long long)live_now_ms());
    jbuf_putc(out, '}');
    filled = !out->oom;
  }
  json_doc_free(&doc);
  return filled;
}

static int emit_lines(const struct emit_opts *o, struct live_sender *s, FILE *in,
                      const char *name) {
  struct event_scratch *scratch = event_scratch_new();
  char *line = NULL, why[512];
  size_t cap = 0;
  ssize_t len;
  long long lineno = 0, bad = 0, sent = 0;
  int code = EXIT_OK;
  struct event ev;
  struct jbuf full; /* a line with the id and time it lacked */
  jbuf_init(&full);
  if (!scratch) {
    fprintf(stderr, PROG ": out of memory\n");
    return EXIT_BAD_INPUT;
  }
  while (code == EXIT_OK && (len = getline(&line, &cap, in)) > 0) {
    lineno++;
    if (blank_or_comment(line))
      continue;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    bool filled = fill_id_time(line, (size_t)len, &full);
    int rc = filled ? event_from_json(full.data, full.len, &ev, scratch, why, sizeof why)
                    : event_from_json(line, (size_t)len, &ev, scratch, why, sizeof why);
    if (rc != CANARY_OK) {
      /* A syntax error reads "1:COL: message" for the one line given: show NAME:LINE:COL. */
      bool pos = rc == CANARY_EPARSE && !strncmp(why, "1:", 2);
      fprintf(stderr, "%s:%lld:%s%s\n", name, lineno, pos ? "" : " ", pos ? why + 2 : why);
      bad++;
      continue;
    }
    if (!sign_event(o, &ev, why, sizeof why)) {
      fprintf(stderr, "%s:%lld: --key: %s\n", name, lineno, why);
      bad++;
      continue;
    }
    if (o->dry_run) {
      print_json(&ev);
      sent++;
      continue;
    }
    int sc = live_send(s, &ev, why, sizeof why);
    if (sc == EXIT_BAD_INPUT) {
      fprintf(stderr, "%s:%lld: %s\n", name, lineno, why);
      bad++;
    } else if (sc != EXIT_OK) {
      code = sc; /* Kafka is away: stop reading */
    } else {
      sent++;
    }
  }
  if (ferror(in)) {
    fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
    code = EXIT_BAD_INPUT;
  }
  free(line);
  jbuf_free(&full);
  event_scratch_destroy(scratch);
  if (!o->dry_run) {
    int fc = live_sender_flush(s, o->timeout_ms);
    if (code == EXIT_OK)
      code = fc;
  }
  if (code != EXIT_OK)
    return code;
  if (!o->quiet)
    fprintf(stderr, "emitted %lld events (%lld bad lines)\n", sent, bad);
  return bad ? EXIT_BAD_INPUT : EXIT_OK;
}

int app_emit(int argc, char **argv) {
  struct emit_opts o = {0};
  live_set_verbose(false);
  int code = parse_args(argc, argv, &o);
  if (code >= 0)
    return code;
  if (o.type) {
    code = emit_one(&o);
  } else {
    bool std = !o.file || !strcmp(o.file, "-");
    FILE *in = std ? stdin : fopen(o.file, "r");
    struct live_sender s = {0};
    if (!in) {
      fprintf(stderr, PROG ": %s: %s\n", o.file, strerror(errno));
      code = EXIT_BAD_INPUT;
    } else {
      if (std && isatty(STDIN_FILENO) && !o.quiet)
        fputs(PROG ": reading JSON Lines from standard input (end with Ctrl-D)\n", stderr);
      code = o.dry_run ? EXIT_OK : live_sender_open(&s, PROG, live_env_or(o.kafka, "CANARY_KAFKA"));
      if (code == EXIT_OK)
        code = emit_lines(&o, &s, in, std ? "stdin" : o.file);
      live_sender_close(&s);
      if (!std)
        fclose(in);
    }
  }
  if (fflush(stdout) != 0) {
    perror(PROG ": stdout");
    return EXIT_BAD_INPUT;
  }
  return code;
}
