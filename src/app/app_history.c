/* `canaryctl history`: the transition log of a rollout with its evidence, oldest first. */
#include "app/app_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/app_status_internal.h"
#include "app/app_timeline.h"
#include "codec/event_json.h"
#include "codec/rfc3339.h"

static const char history_usage[] =
    "usage: canaryctl history [ROLLOUT] [--json] [--pg CONNINFO] [-v]\n"
    "\n"
    "The transition log of a rollout, oldest first: one timeline line per decision\n"
    "  TIME ROLLOUT ACTION STAGE[->STAGE] STATE [RULE] REASON\n"
    "followed by its evidence (the values it rests on), indented, one 'key: value' a line.\n"
    "Without ROLLOUT, the only active rollout.\n"
    "\n"
    "  --json            each decision as one canary.decisions JSON object per line\n"
    "  --pg CONNINFO     PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose     log what the PostgreSQL client does\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 ok, 1 unknown rollout, 2 usage error, 3 PostgreSQL unavailable.\n";

/* An evidence item in milliseconds: a time (post_mortem_due_ms) or a duration (window_ms). */
static bool print_ms(const struct evidence_item *e) {
  size_t n = strlen(e->key);
  if (e->kind != EVIDENCE_INT || n < 3 || strcmp(e->key + n - 3, "_ms") || e->i < 0)
    return false;
  char buf[RFC3339_MAX > 32 ? RFC3339_MAX : 32];
  if (e->i >= 100000000000LL) /* after 1973: a time, not a duration */
    printf("%s\n", rfc3339_format(e->i, buf));
  else
    printf("%s\n", status_span(e->i, buf, sizeof buf));
  return true;
}

static void print_evidence(const struct decision *d) {
  for (int i = 0; i < d->n_evidence; i++) {
    const struct evidence_item *e = &d->evidence[i];
    printf("    %s: ", e->key);
    if (print_ms(e))
      continue;
    switch (e->kind) {
    case EVIDENCE_NUM:
      printf("%g\n", e->num);
      break;
    case EVIDENCE_INT:
      printf("%" PRId64 "\n", e->i);
      break;
    case EVIDENCE_STR:
      printf("%s\n", e->str);
      break;
    case EVIDENCE_BOOL:
      printf("%s\n", e->b ? "true" : "false");
      break;
    }
  }
}

int app_history(int argc, char **argv) {
  struct ops_opts o = {.prog = "canaryctl history", .usage = history_usage};
  int code = status_parse_args(argc, argv, &o, true);
  if (code >= 0)
    return code;
  store_t *st;
  if ((code = live_store_open(o.prog, o.pg, &st)) != EXIT_OK)
    return code;
  static struct store_rollout_row row;
  code = live_find_rollout(o.prog, st, o.rollout, &row);
  struct decision *d = NULL;
  size_t nd = 0;
  if (code == EXIT_OK) {
    int rc = store_history(st, row.rollout.id, &d, &nd);
    if (rc != CANARY_OK) {
      fprintf(stderr, "%s: cannot read the history of %s: %s (%s)\n", o.prog, row.rollout.id,
              canary_strerror(rc), store_last_error(st));
      code = rc == CANARY_ENOTFOUND ? EXIT_BAD_INPUT : EXIT_UNAVAILABLE;
    }
  }
  struct jbuf b;
  jbuf_init(&b);
  for (size_t i = 0; code == EXIT_OK && i < nd; i++) {
    if (o.json) {
      jbuf_reset(&b);
      decision_to_json(&d[i], &b);
      jbuf_putc(&b, '\n');
      fwrite(b.data, 1, b.len, stdout);
    } else {
      timeline_decision(stdout, &d[i]);
      print_evidence(&d[i]);
    }
  }
  jbuf_free(&b);
  free(d);
  store_close(st);
  if (code == EXIT_OK && fflush(stdout) != 0) {
    perror(o.prog);
    return EXIT_BAD_INPUT;
  }
  return code;
}
