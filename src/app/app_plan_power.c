/*
 * `canaryctl plan power`: what a plan's evidence can decide at a service's traffic, before a
 * release runs. For every halt rule and metric gate decided on evidence, at every stage where it
 * applies: how long a regression takes to halt, how long a healthy canary takes to pass.
 *
 * The model is the expected path: every minute of a stage adds the counts a service of this
 * traffic and these healthy rates produces on average, and the e-value is computed from them the
 * way mstore_evidence.c does (same coefficients, same weights, same levels). No noise: a real
 * release is sometimes faster and sometimes slower, but a rule that needs more than a stage has
 * on average is a rule to fix before the release, not during it.
 *
 * Here the command line; the model in app_plan_power_model.c, the report (text or JSON) in
 * app_plan_power_report.c, what they share in app_plan_power_internal.h.
 */
#include "app/app_plan_power.h"
#include "app/app_plan_power_internal.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "core/metric_store.h"

static const char usage[] =
    "usage: canaryctl plan power [--plan FILE] [--traffic N] [--rates K=V,...] [--values N]\n"
    "                            [--dispersion D] [--format text|json]\n"
    "\n"
    "What the plan's evidence can decide at a service's traffic, before a release runs: for\n"
    "every halt rule and metric gate decided on evidence, at every stage where it applies, how\n"
    "long a regression takes to halt the rollout and how long a healthy canary takes to pass.\n"
    "\n"
    "  --plan FILE      plan (YAML, or the seed's feature-flag JSON); default: the built-in plan\n"
    "  --traffic N      requests per minute across the service (default 240000). The canary gets\n"
    "                   the stage's traffic_percent of them, the baseline the rest (as many as\n"
    "                   the canary with traffic_split.baseline: control)\n"
    "  --rates K=V,...  healthy rates (may repeat): V of counter K per request for a divisor\n"
    "                   (transactions=0.06), per its divisor for a numerator (transactions_failed\n"
    "                   =0.0001: per transaction). Defaults: errors=0.0002, transactions=0.06,\n"
    "                   transactions_failed=0.0001, engine_requests=0.2, engine_timeouts=0.0005,\n"
    "                   approvals=0.02, approval_denials=0.02\n"
    "  --values N       distribution values (latency, web vitals) per minute per variant (1000)\n"
    "  --dispersion D   bad events come in bursts weighing about D (retries; >= 1, default 1):\n"
    "                   counts are divided by canaryd's estimate of it at each minute (bursts\n"
    "                   assumed until the baseline's reports show D)\n"
    "  --format FMT     text (default): a table per stage; json: the same as one document\n"
    "  -h, --help       this help\n"
    "\n"
    "Halt rules: regressions of 1.5x, 3x and 10x the limit (rate > limit), 2x, 3x and 10x the\n"
    "healthy rate (rate > baseline) or the allowed share above the line (quantiles), from the\n"
    "stage's start; the time includes the rule's for:. Gates: the healthy canary. 'never': not\n"
    "within the stage's max_duration (72h without one). WARNING lines name what cannot decide.\n"
    "\n"
    "Exit status: 0 done, 1 bad plan, 2 usage error.\n";

static const struct power_rate default_rates[] = {
    {"requests", 1},          {"errors", 0.0002},
    {"transactions", 0.06},   {"transactions_failed", 0.0001},
    {"engine_requests", 0.2}, {"engine_timeouts", 0.0005},
    {"approvals", 0.02},      {"approval_denials", 0.02},
};

/* --- the command line ------------------------------------------------------------------------- */

/* A finite number >= min (> min when strict), all of s. */
static bool parse_number(const char *s, double min, bool strict, double *v) {
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(d) || d < min || (strict && d == min))
    return false;
  *v = d;
  return true;
}

static bool add_rate(struct power_opts *o, const char *name, size_t len, double v) {
  if (!len || len >= PLAN_NAME_MAX || o->n_rates == POWER_MAX_RATES)
    return false;
  struct power_rate *r = &o->rates[o->n_rates++];
  memcpy(r->name, name, len);
  r->name[len] = 0;
  r->v = v;
  return true;
}

/* K=V,K=V: every V a number > 0 (a numerator's also < 1: a probability). */
static bool parse_rates(struct power_opts *o, const char *arg) {
  const char *s = arg;
  while (*s) {
    const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
    const char *eq = memchr(s, '=', (size_t)(end - s));
    char num[64];
    double v;
    if (!eq || (size_t)(end - eq - 1) >= sizeof num) {
      fprintf(stderr, PROG ": --rates: '%.*s' is not NAME=RATE\n", (int)(end - s), s);
      return false;
    }
    memcpy(num, eq + 1, (size_t)(end - eq - 1));
    num[end - eq - 1] = 0;
    if (!parse_number(num, 0, true, &v) || !add_rate(o, s, (size_t)(eq - s), v)) {
      fprintf(stderr, PROG ": --rates: '%.*s': %s\n", (int)(end - s), s,
              eq == s || eq - s >= PLAN_NAME_MAX ? "not a counter name"
              : o->n_rates == POWER_MAX_RATES    ? "too many rates"
                                                 : "the rate is not a number > 0");
      return false;
    }
    s = comma ? comma + 1 : end;
  }
  return true;
}

/* Whether the plan's evidence divides by or counts counter name. */
static bool plan_counts(const struct mstore_plan *mp, const char *name) {
  for (int i = 0; i < mp->n_pairs; i++)
    if (!strcmp(mp->pairs[i].num, name) || !strcmp(mp->pairs[i].den, name))
      return true;
  return false;
}

/* A numerator's rate is a probability per trial: 1 or more is a typo (1.5 for 1.5%?). A name
 * the plan never reads is said (a typo of one it does), not refused. */
static bool check_rates(const struct power *w, int n_defaults) {
  for (int i = 0; i < w->mp->n_pairs; i++) {
    double v;
    if (power_rate_of(w, w->mp->pairs[i].num, &v) && v >= 1) {
      fprintf(stderr, PROG ": --rates: %s=%g: a rate per %s must be under 1\n", w->mp->pairs[i].num,
              v, w->mp->pairs[i].den);
      return false;
    }
  }
  for (int i = n_defaults; i < w->o->n_rates; i++)
    if (!plan_counts(w->mp, w->o->rates[i].name))
      fprintf(stderr, PROG ": note: --rates: the plan's evidence does not read '%s'\n",
              w->o->rates[i].name);
  return true;
}

/* Exit status, or -1 to go on. --help goes to out. */
static int parse_args(int argc, char **argv, struct power_opts *o, const char **plan_path,
                      FILE *out) {
  static const struct option opts[] = {{"plan", required_argument, NULL, 'p'},
                                       {"traffic", required_argument, NULL, 't'},
                                       {"rates", required_argument, NULL, 'r'},
                                       {"values", required_argument, NULL, 'v'},
                                       {"dispersion", required_argument, NULL, 'd'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "p:t:r:v:d:f:h", opts, NULL)) != -1) {
    switch (c) {
    case 'p':
      *plan_path = optarg;
      break;
    case 't':
    case 'v':
      if (!parse_number(optarg, 0, true, c == 't' ? &o->traffic : &o->values)) {
        fprintf(stderr, PROG ": --%s: '%s' is not a number > 0\n", c == 't' ? "traffic" : "values",
                optarg);
        return EXIT_USAGE;
      }
      break;
    case 'd':
      if (!parse_number(optarg, 1, false, &o->dispersion)) {
        fprintf(stderr, PROG ": --dispersion: '%s' is not a number >= 1\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'r':
      if (!parse_rates(o, optarg))
        return EXIT_USAGE;
      break;
    case 'f':
      if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
        fprintf(stderr, PROG ": --format: '%s' is not text or json\n", optarg);
        return EXIT_USAGE;
      }
      o->json = !strcmp(optarg, "json");
      break;
    case 'h':
      fputs(usage, out);
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
  return -1;
}

static void opts_default(struct power_opts *o) {
  *o = (struct power_opts){.traffic = 240000, .values = 1000, .dispersion = 1};
  for (size_t i = 0; i < sizeof default_rates / sizeof default_rates[0]; i++)
    o->rates[o->n_rates++] = default_rates[i];
}

/* The subcommand, writing its report to out (the tests read it). */
static int plan_power(int argc, char **argv, FILE *out) {
  static struct power_opts o;
  opts_default(&o);
  const char *path = NULL;
  int code = parse_args(argc, argv, &o, &path, out);
  if (code >= 0)
    return code;
  static struct plan plan; /* ~100 KiB: not on the stack */
  if (!cli_load_plan(PROG, path, &plan))
    return EXIT_BAD_INPUT;
  struct mstore_plan mp;
  char why[1024];
  if (mstore_plan_init(&mp, &plan, why, sizeof why) != CANARY_OK) { /* cli_load_plan did it */
    fprintf(stderr, PROG ": %s\n", why);
    return EXIT_BAD_INPUT;
  }
  struct power w = {.p = &plan, .mp = &mp, .o = &o};
  if (!check_rates(&w, (int)(sizeof default_rates / sizeof default_rates[0])))
    code = EXIT_USAGE;
  else if (!mp.ev.on)
    fprintf(out,
            "plan %s decides nothing on evidence (decisions: mode: estimate): nothing to "
            "compute\n",
            plan.name),
        code = EXIT_OK;
  else
    code = power_report(&w, out);
  mstore_plan_free(&mp);
  return code;
}

int app_plan_power(int argc, char **argv) {
  int code = plan_power(argc, argv, stdout);
  if (fflush(stdout) != 0) {
    perror(PROG ": stdout");
    return EXIT_BAD_INPUT;
  }
  return code;
}
