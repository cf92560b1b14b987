/*
 * `canaryctl simulate`: the core on a JSON Lines file of events, in virtual time.
 * No Kafka, no PostgreSQL: deadlines fire at their exact times between events, so a plan's
 * 72 hours replay in milliseconds, and the same input always prints the same bytes.
 */
#include "app/app_simulate.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/signing.h"
#include "app/app_timeline.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rfc3339.h"
#include "core/engine.h"

static const char usage[] =
    "usage: canaryctl simulate [--plan FILE] --events FILE.jsonl [--until TIME] [--all]\n"
    "                          [--format json|text] [--decide evidence|estimate]\n"
    "\n"
    "Run the rollout state machine on a JSON Lines file of contract events (any number of\n"
    "rollouts) in virtual time, and print every decision as one JSON object per line.\n"
    "\n"
    "  --plan FILE     plan (YAML, or the seed's feature-flag JSON); default: the built-in plan\n"
    "  --events FILE   events, one JSON object per line ('-' = standard input); blank lines\n"
    "                  and lines starting with '#' are skipped\n"
    "  --until TIME    keep firing deadlines (stage minimums, maximums) up to TIME\n"
    "                  (RFC 3339 or ms since the epoch); events after TIME are not read.\n"
    "                  Default: the time of the last event\n"
    "  --all           also print notifications and traffic splits, each line wrapped as\n"
    "                  {\"topic\":\"canary.notifications\",\"value\":{...}}\n"
    "  --format FMT    json (default): the contract's canary.decisions objects;\n"
    "                  text: one readable timeline line per decision (and notification)\n"
    "  --decide MODE   evidence: the plan as it says (the built-in plan decides on evidence);\n"
    "                  estimate: every rule and gate on its literal value over its window,\n"
    "                  rules that exist only on evidence left out (docs/rules.md, Evidence)\n"
    "  -h, --help      this help\n"
    "\n"
    "Time never runs backwards: an event older than the clock is applied at the clock.\n"
    "A malformed or rejected line is reported on stderr with its line number and skipped.\n"
    "\n"
    "Exit status: 0 all lines applied, 1 some line was bad (or the plan), 2 usage error.\n";

struct sim {
  struct engine engine;
  struct effects fx;
  struct jbuf out;
  bool all;
  bool text;
  int64_t decisions;
};

static void print_effects(struct sim *s) {
  for (size_t i = 0; i < s->fx.n; i++) {
    const struct effect *e = &s->fx.items[i];
    if (s->text) {
      if (e->kind == EFFECT_DECISION) {
        s->decisions++;
        timeline_decision(stdout, &e->u.decision);
      } else if (e->kind == EFFECT_NOTIFICATION && s->all) {
        timeline_notification(stdout, &e->u.notification);
      }
      continue;
    }
    jbuf_reset(&s->out);
    switch (e->kind) {
    case EFFECT_DECISION:
      s->decisions++;
      if (s->all)
        jbuf_puts(&s->out, "{\"topic\":\"canary.decisions\",\"value\":");
      decision_to_json(&e->u.decision, &s->out);
      break;
    case EFFECT_NOTIFICATION:
      if (!s->all)
        continue;
      jbuf_puts(&s->out, "{\"topic\":\"canary.notifications\",\"value\":");
      notification_to_json(&e->u.notification, &s->out);
      break;
    case EFFECT_TRAFFIC:
      if (!s->all)
        continue;
      jbuf_puts(&s->out, "{\"topic\":\"canary.flags\",\"value\":");
      traffic_to_json(&e->u.traffic, &s->out);
      break;
    }
    if (s->all)
      jbuf_putc(&s->out, '}');
    jbuf_putc(&s->out, '\n');
    fwrite(s->out.data, 1, s->out.len, stdout);
  }
  effects_clear(&s->fx);
}

/* Fire every deadline at or before t, each at its own exact time. "No deadline" is a sentinel
 * (INT64_MAX), never a time to fire at, whatever t is. */
static int fire_until(struct sim *s, int64_t t) {
  for (;;) {
    int64_t d = engine_next_deadline(&s->engine);
    if (d > t || d == ROLLOUT_NO_DEADLINE)
      return CANARY_OK;
    int rc = engine_tick(&s->engine, d, &s->fx);
    print_effects(s);
    if (rc != CANARY_OK)
      return rc;
  }
}

static bool blank_or_comment(const char *line) {
  while (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\n')
    line++;
  return !*line || *line == '#';
}

/* Returns the exit code. */
static int run(struct sim *s, FILE *in, const char *name, bool has_until, int64_t until) {
  struct event_scratch *scratch = event_scratch_new();
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int64_t lineno = 0, bad = 0, applied = 0, duplicates = 0, clock = INT64_MIN;
  char why[512];
  int rc = CANARY_OK;
  struct event ev;

  if (!scratch) {
    fprintf(stderr, "canaryctl simulate: out of memory\n");
    return EXIT_BAD_INPUT;
  }
  while ((len = getline(&line, &cap, in)) > 0) {
    lineno++;
    if (blank_or_comment(line))
      continue;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    int prc = event_from_json(line, (size_t)len, &ev, scratch, why, sizeof why);
    if (prc != CANARY_OK) {
      /* A JSON syntax error reads "1:COL: message" for the one line given: show FILE:LINE:COL. */
      const char *msg = why;
      if (prc == CANARY_EPARSE && strncmp(why, "1:", 2) == 0)
        msg = why + 2;
      fprintf(stderr, "%s:%" PRId64 ":%s%s\n", name, lineno, msg == why ? " " : "", msg);
      bad++;
      continue;
    }
    if (has_until && ev.time_ms > until)
      break;
    signing_check(&s->engine.plan->policy, &ev); /* as canaryd's worker, before the engine */
    enum apply_outcome outcome;
    /* as canaryd: what the engine refuses moves no clock and fires no deadline */
    if (!engine_admit(&s->engine, &ev, true, &outcome, why, sizeof why)) {
      if (outcome == APPLY_DUPLICATE) {
        duplicates++;
      } else {
        fprintf(stderr, "%s:%" PRId64 ": rejected %s %s: %s\n", name, lineno,
                event_type_name(ev.type), ev.id, why);
        bad++;
      }
      continue;
    }
    if ((rc = fire_until(s, ev.time_ms)) != CANARY_OK)
      break;
    clock = ev.time_ms > clock ? ev.time_ms : clock;
    rc = engine_apply(&s->engine, &ev, clock, &s->fx, &outcome, why, sizeof why);
    print_effects(s);
    if (rc != CANARY_OK)
      break;
    if (outcome == APPLY_REJECTED || outcome == APPLY_CONFLICT) {
      fprintf(stderr, "%s:%" PRId64 ": rejected %s %s: %s\n", name, lineno,
              event_type_name(ev.type), ev.id, why);
      bad++;
    } else if (outcome == APPLY_DUPLICATE) {
      duplicates++;
    } else {
      applied++;
    }
  }
  if (rc == CANARY_OK && (has_until || clock != INT64_MIN))
    rc = fire_until(s, has_until ? until : clock);
  free(line);
  event_scratch_destroy(scratch);
  if (rc != CANARY_OK) {
    fprintf(stderr, "canaryctl simulate: %s\n", canary_strerror(rc));
    return EXIT_BAD_INPUT;
  }
  char at[RFC3339_MAX] = "-";
  if (has_until || clock != INT64_MIN)
    rfc3339_format(has_until ? until : clock, at);
  fprintf(stderr,
          "simulated %" PRId64 " events (%zu rollouts, %" PRId64 " decisions, %" PRId64
          " duplicate ids ignored, %" PRId64 " bad lines) up to %s\n",
          applied, s->engine.n_rollouts, s->decisions, duplicates, bad, at);
  return bad ? EXIT_BAD_INPUT : EXIT_OK;
}

int app_simulate(int argc, char **argv) {
  static const struct option opts[] = {
      {"plan", required_argument, NULL, 'p'},   {"events", required_argument, NULL, 'e'},
      {"until", required_argument, NULL, 'u'},  {"all", no_argument, NULL, 'a'},
      {"format", required_argument, NULL, 'f'}, {"decide", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  const char *plan_path = NULL, *events_path = NULL;
  bool has_until = false, all = false, text = false, estimate = false;
  int64_t until = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "p:e:u:af:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'd':
      if (strcmp(optarg, "evidence") && strcmp(optarg, "estimate")) {
        fprintf(stderr, "canaryctl simulate: --decide: '%s' is not evidence or estimate\n", optarg);
        return EXIT_USAGE;
      }
      estimate = !strcmp(optarg, "estimate");
      break;
    case 'p':
      plan_path = optarg;
      break;
    case 'e':
      events_path = optarg;
      break;
    case 'a':
      all = true;
      break;
    case 'f':
      if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
        fprintf(stderr, "canaryctl simulate: --format: '%s' is not json or text\n", optarg);
        return EXIT_USAGE;
      }
      text = !strcmp(optarg, "text");
      break;
    case 'u':
      if (!cli_parse_time(optarg, &until)) {
        fprintf(stderr, "canaryctl simulate: --until: '%s' is not RFC 3339 or ms\n", optarg);
        return EXIT_USAGE;
      }
      has_until = true;
      break;
    case 'h':
      fputs(usage, stdout);
      return EXIT_OK;
    default:
      fputs(usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (!events_path || optind < argc) {
    fprintf(stderr, "canaryctl simulate: %s\n\n%s",
            optind < argc ? "unexpected argument" : "--events is required", usage);
    return EXIT_USAGE;
  }

  static struct plan plan; /* ~100 KiB: not on the stack */
  if (!cli_load_plan("canaryctl simulate", plan_path, &plan))
    return EXIT_BAD_INPUT;
  if (estimate)
    plan_as_estimate(&plan);
  FILE *in = strcmp(events_path, "-") == 0 ? stdin : fopen(events_path, "r");
  if (!in) {
    perror(events_path);
    return EXIT_BAD_INPUT;
  }

  struct sim s = {.fx = EFFECTS_INIT, .all = all, .text = text};
  jbuf_init(&s.out);
  int code = EXIT_BAD_INPUT;
  if (engine_init(&s.engine, &plan) == CANARY_OK)
    code = run(&s, in, events_path, has_until, until);
  else
    fprintf(stderr, "canaryctl simulate: plan: %s\n", s.engine.error);
  engine_destroy(&s.engine);
  if (in != stdin)
    fclose(in);
  effects_free(&s.fx);
  jbuf_free(&s.out);
  if (fflush(stdout) != 0) {
    perror("canaryctl simulate: stdout");
    return EXIT_BAD_INPUT;
  }
  return code;
}
