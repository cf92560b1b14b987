/*
 * `canaryctl dispersion`: what a service's finished releases taught about its counters' bursts,
 * as the plan entries (decisions.dispersion) that let its next release use it.
 */
#include "app/app_dispersion.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "codec/json.h"
#include "store/store.h"

#define PROG "canaryctl dispersion"
#define LAST_DEFAULT 20
#define REPORTS_CAP 10000 /* the most weight a learned value gets (planfile: 100000 at most) */

static const char usage[] =
    "usage: canaryctl dispersion [--service NAME] [--last N] [--format text|yaml|json]\n"
    "                            [--pg CONNINFO] [-v]\n"
    "\n"
    "What the finished releases (completed or rolled back) of a service said about how bursty\n"
    "its bad events are, and the plan entries that let its next release use it. The evidence\n"
    "divides counts by a dispersion: 1 when errors are independent, about 2 when retries of one\n"
    "client come in bursts of 1.5. A release begins by assuming bursts of about three unless the\n"
    "plan's decisions.dispersion has the service's value, so a service with independent errors\n"
    "proves a regression with up to half the events once its value is in the plan.\n"
    "\n"
    "Each value is the mean of the baselines' dispersion steps over the service's last N\n"
    "finished releases, weighing as many reports as it was learned from (at most 10,000).\n"
    "\n"
    "  --service NAME   one service (default: every service)\n"
    "  --last N         the newest N finished releases of each service (default 20)\n"
    "  --format F       text (a table and the entries, default), yaml (the entries alone,\n"
    "                   to paste under decisions:), json\n"
    "  --pg CONNINFO    PostgreSQL (or CANARY_PG)\n"
    "  -v, --verbose    the store's log lines on stderr\n"
    "\n"
    "Exit status: 0 printed, 1 nothing learned yet (no finished release with reports),\n"
    "2 usage error, 3 PostgreSQL unavailable.\n";

enum format { FMT_TEXT, FMT_YAML, FMT_JSON };

struct opts {
  const char *service, *pg;
  int last;
  enum format format;
};

static int parse(int argc, char **argv, struct opts *o) {
  static const struct option opts[] = {{"service", required_argument, NULL, 's'},
                                       {"last", required_argument, NULL, 'n'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  *o = (struct opts){.service = "", .last = LAST_DEFAULT};
  live_set_verbose(false);
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      o->service = optarg;
      break;
    case 'n': {
      char *end;
      long n = strtol(optarg, &end, 10);
      if (end == optarg || *end || n < 1 || n > 100000) {
        fprintf(stderr, PROG ": --last: '%s' is not a count in 1 .. 100000\n", optarg);
        return EXIT_USAGE;
      }
      o->last = (int)n;
      break;
    }
    case 'f':
      if (!strcmp(optarg, "text"))
        o->format = FMT_TEXT;
      else if (!strcmp(optarg, "yaml"))
        o->format = FMT_YAML;
      else if (!strcmp(optarg, "json"))
        o->format = FMT_JSON;
      else {
        fprintf(stderr, PROG ": --format: '%s' is not text, yaml or json\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'p':
      o->pg = optarg;
      break;
    case 'v':
      live_set_verbose(true);
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
    fprintf(stderr, PROG ": unexpected argument '%s'\n\n%s", argv[optind], usage);
    return EXIT_USAGE;
  }
  o->pg = live_env_or(o->pg, "CANARY_PG");
  return -1;
}

/* The learned value: the steps' mean (the evidence adds its own margin for the estimate's
 * error), never under 1; and the weight it carries in the plan. */
static double value_of(const struct store_dispersion_row *r) {
  double v = r->sum / r->k;
  return v > 1 ? v : 1;
}

static double reports_of(const struct store_dispersion_row *r) {
  return r->k < REPORTS_CAP ? floor(r->k) : REPORTS_CAP;
}

/* One plan entry, as YAML under decisions:, indented by indent. */
static void print_entry(const struct store_dispersion_row *r, const char *indent) {
  printf("%s- {counter: %s, service: \"%s\", value: %.3g, reports: %.0f}\n", indent, r->counter,
         r->service, value_of(r), reports_of(r));
}

static void print_text(const struct store_dispersion_row *rows, size_t n) {
  printf("%-24s %-24s %9s %10s %10s\n", "service", "counter", "releases", "reports", "dispersion");
  for (size_t i = 0; i < n; i++)
    printf("%-24s %-24s %9ld %10.0f %10.3g\n", rows[i].service, rows[i].counter, rows[i].releases,
           rows[i].k, value_of(&rows[i]));
  printf("\nIn the plan, under decisions:\n  dispersion:\n");
  for (size_t i = 0; i < n; i++)
    print_entry(&rows[i], "    ");
}

static void print_json(const struct store_dispersion_row *rows, size_t n) {
  struct jbuf b;
  jbuf_init(&b);
  jbuf_putc(&b, '[');
  for (size_t i = 0; i < n; i++) {
    jbuf_puts(&b, i ? ",{\"service\":" : "{\"service\":");
    jbuf_string(&b, rows[i].service);
    jbuf_puts(&b, ",\"counter\":");
    jbuf_string(&b, rows[i].counter);
    jbuf_puts(&b, ",\"releases\":");
    jbuf_int(&b, rows[i].releases);
    jbuf_puts(&b, ",\"steps\":");
    jbuf_number(&b, rows[i].k);
    jbuf_puts(&b, ",\"steps_sum\":");
    jbuf_number(&b, rows[i].sum);
    jbuf_puts(&b, ",\"value\":");
    jbuf_number(&b, value_of(&rows[i]));
    jbuf_puts(&b, ",\"reports\":");
    jbuf_number(&b, reports_of(&rows[i]));
    jbuf_putc(&b, '}');
  }
  jbuf_puts(&b, "]\n");
  fwrite(b.data, 1, b.len, stdout);
  jbuf_free(&b);
}

int app_dispersion(int argc, char **argv) {
  struct opts o;
  int code = parse(argc, argv, &o);
  if (code >= 0)
    return code;
  store_t *st;
  if ((code = live_store_open(PROG, o.pg, &st)) != EXIT_OK)
    return code;
  struct store_dispersion_row *rows = NULL;
  size_t n = 0;
  int rc = store_dispersion(st, o.service, o.last, &rows, &n);
  if (rc != CANARY_OK) {
    fprintf(stderr, PROG ": cannot read the releases: %s (%s)\n", canary_strerror(rc),
            store_last_error(st));
    store_close(st);
    return EXIT_UNAVAILABLE;
  }
  store_close(st);
  /* a counter whose steps all came from no report at all says nothing */
  size_t kept = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].k > 0)
      rows[kept++] = rows[i];
  if (kept == 0) {
    fprintf(stderr,
            PROG ": nothing learned yet: no finished release%s%s%s has baseline reports "
                 "(releases finish when they complete or are rolled back)\n",
            o.service[0] ? " of '" : "", o.service, o.service[0] ? "'" : "");
    free(rows);
    return EXIT_BAD_INPUT;
  }
  if (o.format == FMT_JSON)
    print_json(rows, kept);
  else if (o.format == FMT_YAML)
    for (size_t i = 0; i < kept; i++)
      print_entry(&rows[i], "");
  else
    print_text(rows, kept);
  free(rows);
  if (fflush(stdout) != 0) {
    perror(PROG);
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}
