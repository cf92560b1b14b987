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
#include "core/metric_store.h"
#include "core/plan.h"
#include "store/store.h"

#define PROG "canaryctl dispersion"
#define LAST_DEFAULT 20
#define REPORTS_CAP 10000 /* the most weight a learned value gets (planfile: 100000 at most) */

static const char usage[] =
    "usage: canaryctl dispersion [--service NAME] [--last N] [--format text|yaml|json]\n"
    "                            [--check [--plan FILE]] [--pg CONNINFO] [-v]\n"
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
    "  --check          instead: the plan's values against what the releases show now. A\n"
    "                   value under the releases' 95% interval is STALE (the service's\n"
    "                   clients retry harder than the plan says, and a healthy release's\n"
    "                   first minutes can read as a regression): re-learn it. Over it: HIGH\n"
    "                   (safe; proofs slower than they need be). For a CI step on the plan.\n"
    "  --plan FILE      the plan canaryd runs [CANARY_PLAN]; default: the built-in plan\n"
    "  --pg CONNINFO    PostgreSQL (or CANARY_PG)\n"
    "  -v, --verbose    the store's log lines on stderr\n"
    "\n"
    "Exit status: 0 printed, 1 nothing learned yet (no finished release with reports),\n"
    "2 usage error, 3 PostgreSQL unavailable. With --check: 0 no value stale (nothing to\n"
    "check against included), 1 a value stale or the plan invalid.\n";

enum format { FMT_TEXT, FMT_YAML, FMT_JSON };

struct opts {
  const char *service, *pg, *plan;
  int last;
  enum format format;
  bool check;
};

static int parse(int argc, char **argv, struct opts *o) {
  static const struct option opts[] = {{"service", required_argument, NULL, 's'},
                                       {"last", required_argument, NULL, 'n'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"check", no_argument, NULL, 'c'},
                                       {"plan", required_argument, NULL, 'P'},
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
    case 'c':
      o->check = true;
      break;
    case 'P':
      o->plan = optarg;
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
  if (o->plan && !o->check) {
    fprintf(stderr, PROG ": --plan goes with --check\n");
    return EXIT_USAGE;
  }
  if (o->check && o->format == FMT_YAML) {
    fprintf(stderr, PROG ": --check prints text or json, not yaml\n");
    return EXIT_USAGE;
  }
  o->pg = live_env_or(o->pg, "CANARY_PG");
  o->plan = live_env_or(o->plan, "CANARY_PLAN");
  return -1;
}

/* The learned value: the steps' mean, never under 1 (as canaryd's estimate); and the weight it
 * carries in the plan. */
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

/* ---- --check ---------------------------------------------------------------------------- */

static const char *const verdict_names[] = {"current", "stale", "high"};

/* A stored row against the plan: the entry it takes its value from (the service's own, any
 * service's, or NULL: the assumption), that value, and the check. */
struct judged {
  const struct plan_dispersion *entry;
  double value;
  struct mstore_disp_check c;
};

static struct judged judge(const struct plan *plan, const struct store_dispersion_row *r) {
  struct judged j = {.entry = plan_dispersion_for(plan, r->counter, r->service)};
  j.value = j.entry ? j.entry->value : MSTORE_DISP_PRIOR_PHI;
  j.c = mstore_dispersion_check(r->sum, r->k, j.value);
  return j;
}

static const char *source_of(const struct judged *j) {
  return !j->entry ? "assumed" : j->entry->service[0] ? "learned" : "learned, any service";
}

/* Whether plan entry e is listed as unchecked: it is for the service asked about (or any
 * service), and no stored row takes its value from it. */
static bool unchecked(const struct plan *plan, const struct plan_dispersion *e,
                      const struct store_dispersion_row *rows, size_t n, const char *service) {
  if (service[0] && e->service[0] && strcmp(e->service, service))
    return false;
  for (size_t i = 0; i < n; i++)
    if (plan_dispersion_for(plan, rows[i].counter, rows[i].service) == e)
      return false;
  return true;
}

static void check_json(const struct plan *plan, const struct store_dispersion_row *rows, size_t n,
                       const char *service, int stale) {
  struct jbuf b;
  jbuf_init(&b);
  jbuf_puts(&b, "{\"checks\":[");
  for (size_t i = 0; i < n; i++) {
    struct judged j = judge(plan, &rows[i]);
    jbuf_puts(&b, i ? ",{\"service\":" : "{\"service\":");
    jbuf_string(&b, rows[i].service);
    jbuf_puts(&b, ",\"counter\":");
    jbuf_string(&b, rows[i].counter);
    jbuf_puts(&b, ",\"plan\":");
    jbuf_number(&b, j.value);
    jbuf_puts(&b, ",\"source\":");
    jbuf_string(&b, source_of(&j));
    jbuf_printf(&b, ",\"releases\":%ld,\"reports\":", rows[i].releases);
    jbuf_number(&b, rows[i].k);
    jbuf_puts(&b, ",\"shown\":");
    jbuf_number(&b, j.c.mean);
    jbuf_puts(&b, ",\"low\":");
    jbuf_number(&b, j.c.lo);
    jbuf_puts(&b, ",\"high\":");
    jbuf_number(&b, j.c.hi);
    jbuf_puts(&b, ",\"verdict\":");
    jbuf_string(&b, verdict_names[j.c.verdict]);
    jbuf_putc(&b, '}');
  }
  jbuf_puts(&b, "],\"unchecked\":[");
  bool first = true;
  for (int i = 0; i < plan->n_dispersion; i++) {
    const struct plan_dispersion *e = &plan->dispersion[i];
    if (!unchecked(plan, e, rows, n, service))
      continue;
    jbuf_puts(&b, first ? "{\"service\":" : ",{\"service\":");
    first = false;
    jbuf_string(&b, e->service);
    jbuf_puts(&b, ",\"counter\":");
    jbuf_string(&b, e->counter);
    jbuf_puts(&b, ",\"plan\":");
    jbuf_number(&b, e->value);
    jbuf_putc(&b, '}');
  }
  jbuf_printf(&b, "],\"stale\":%d}\n", stale);
  fwrite(b.data, 1, b.len, stdout);
  jbuf_free(&b);
}

static void check_text(const struct plan *plan, const struct store_dispersion_row *rows, size_t n,
                       const char *service) {
  printf("%-24s %-20s %-26s %8s %8s %-18s %s\n", "service", "counter", "plan", "releases",
         "reports", "shown (95%)", "verdict");
  for (size_t i = 0; i < n; i++) {
    struct judged j = judge(plan, &rows[i]);
    char plan_col[48], shown[48];
    snprintf(plan_col, sizeof plan_col, "%.3g (%s)", j.value, source_of(&j));
    snprintf(shown, sizeof shown, "%.3g (%.3g-%.3g)", j.c.mean, j.c.lo, j.c.hi);
    static const char *const learned[] = {"current", "STALE: re-learn",
                                          "high: re-learn to prove sooner"};
    static const char *const assumed[] = {"current", "STALE: burstier than assumed; learn it",
                                          "not learned: learn it to prove sooner"};
    printf("%-24s %-20s %-26s %8ld %8.0f %-18s %s\n", rows[i].service, rows[i].counter, plan_col,
           rows[i].releases, rows[i].k, shown, (j.entry ? learned : assumed)[j.c.verdict]);
  }
  for (int i = 0; i < plan->n_dispersion; i++) {
    const struct plan_dispersion *e = &plan->dispersion[i];
    if (!unchecked(plan, e, rows, n, service))
      continue;
    printf("%-24s %-20s %-26.3g %8s %8s %-18s %s\n", e->service[0] ? e->service : "(any)",
           e->counter, e->value, "-", "-", "-", "unchecked: no finished release to check against");
  }
}

/* --check: exit 1 when a value the plan gives is under what the releases show. */
static int check(const struct opts *o, const struct plan *plan,
                 const struct store_dispersion_row *rows, size_t n) {
  int stale = 0;
  for (size_t i = 0; i < n; i++)
    stale += judge(plan, &rows[i]).c.verdict == MSTORE_DISP_STALE;
  if (o->format == FMT_JSON)
    check_json(plan, rows, n, o->service, stale);
  else
    check_text(plan, rows, n, o->service);
  if (stale)
    fprintf(stderr,
            PROG ": %d value%s under what the releases show: healthy releases may be halted on "
                 "bursts the plan does not expect; re-learn (canaryctl dispersion --format yaml) "
                 "and update decisions.dispersion\n",
            stale, stale == 1 ? "" : "s");
  else if (n == 0)
    fprintf(stderr,
            PROG ": nothing to check against yet: no finished release%s%s%s has "
                 "baseline reports\n",
            o->service[0] ? " of '" : "", o->service, o->service[0] ? "'" : "");
  return stale ? EXIT_BAD_INPUT : EXIT_OK;
}

int app_dispersion(int argc, char **argv) {
  struct opts o;
  int code = parse(argc, argv, &o);
  if (code >= 0)
    return code;
  static struct plan plan;
  if (o.check && !cli_load_plan(PROG, o.plan, &plan)) /* before PostgreSQL: a bad plan is quick */
    return EXIT_BAD_INPUT;
  store_t *st;
  if ((code = live_store_open(PROG, o.pg, &st)) != EXIT_OK)
    return code;
  struct store_dispersion_row *rows = NULL;
  size_t n = 0;
  int rc = store_dispersion(st, o.service, o.last, &rows, &n);
  if (rc != CANARY_OK) {
    fprintf(stderr, PROG ": cannot read the releases: %s (%s)%s\n", canary_strerror(rc),
            store_last_error(st), live_schema_hint(st));
    store_close(st);
    return EXIT_UNAVAILABLE;
  }
  store_close(st);
  /* a counter whose steps all came from no report at all says nothing */
  size_t kept = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].k > 0)
      rows[kept++] = rows[i];
  if (o.check) {
    code = check(&o, &plan, rows, kept);
    free(rows);
    if (fflush(stdout) != 0) {
      perror(PROG);
      return EXIT_BAD_INPUT;
    }
    return code;
  }
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
