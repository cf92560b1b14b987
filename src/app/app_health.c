/*
 * `canaryctl health`: the seed's health gate check. Follows a rollout's halt rules as canaryd
 * evaluates them (its readings in PostgreSQL) for a duration: each rule's value against its
 * limit, its evidence, pending or firing, its trend over the period; and exits non-zero as soon
 * as a halt fires, so a pipeline can wait on it.
 */
#include "app/app_health.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/app_status.h"
#include "app/app_timeline.h"
#include "config/config.h"
#include "codec/rfc3339.h"
#include "core/expr.h"

#define PROG "canaryctl health"
#define MAX_RULES 64
#define MAX_POINTS 4096 /* per rule: an hour at a point a second */

static const char usage[] =
    "usage: canaryctl health [ROLLOUT] [--cohort STAGE] [--duration D] [--interval D] [--once]\n"
    "                        [--plan FILE] [--pg CONNINFO] [-v]\n"
    "\n"
    "Follow a rollout's halt rules as canaryd evaluates them, for a while: each rule's value\n"
    "against its limit, its evidence (how far to a halt), whether it is pending (holding, not yet\n"
    "for as long as its for: asks) or FIRING, and its trend over the period (the slope of the\n"
    "canary's value per hour). Rules that are pending, firing, or more than half way to a halt\n"
    "are marked as anomalies. The view refreshes in place on a terminal, and prints one block\n"
    "per refresh otherwise. canaryd halts by itself; this is for the people and the pipelines\n"
    "that wait on it. Without ROLLOUT the only active rollout.\n"
    "\n"
    "  --cohort STAGE   the stage expected (a note when the rollout is elsewhere)\n"
    "  --duration D     how long to follow it: 90s, 30m, 1h (default 1h)\n"
    "  --interval D     how often to read canaryd's state (default 10s)\n"
    "  --once           one reading, no waiting (for scripts)\n"
    "  --plan FILE      the plan canaryd runs [CANARY_PLAN]; default: the built-in plan\n"
    "  --pg CONNINFO    PostgreSQL connection string [CANARY_PG]\n"
    "  -v, --verbose    log what the PostgreSQL client does\n"
    "\n"
    "Exit status: 0 no halt during the duration (or the rollout completed), 1 a halt fired or\n"
    "the rollout was rolled back (the decision is printed), or an unknown rollout, 2 usage\n"
    "error, 3 PostgreSQL unavailable.\n";

struct opts {
  const char *rollout, *cohort, *plan, *pg;
  int64_t duration_ms, interval_ms;
  bool once;
};

/* A rule's canary values seen while following it, for its trend. */
struct series {
  char name[PLAN_NAME_MAX];
  int64_t t[MAX_POINTS];
  double v[MAX_POINTS];
  int n;
  int64_t last_at; /* the reading's evaluation time last kept: one point per evaluation */
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int parse(int argc, char **argv, struct opts *o) {
  static const struct option opts[] = {{"cohort", required_argument, NULL, 'c'},
                                       {"duration", required_argument, NULL, 'd'},
                                       {"interval", required_argument, NULL, 'i'},
                                       {"once", no_argument, NULL, '1'},
                                       {"plan", required_argument, NULL, 'P'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  *o = (struct opts){.duration_ms = 3600000, .interval_ms = 10000};
  live_set_verbose(false);
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c':
      o->cohort = optarg;
      break;
    case 'd':
    case 'i': {
      int64_t ms;
      if (!config_parse_duration(optarg, &ms) || ms <= 0) {
        fprintf(stderr, PROG ": --%s: '%s' is not a duration such as 90s, 30m or 1h\n",
                c == 'd' ? "duration" : "interval", optarg);
        return EXIT_USAGE;
      }
      *(c == 'd' ? &o->duration_ms : &o->interval_ms) = ms;
      break;
    }
    case '1':
      o->once = true;
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
  if (live_rollout_arg(PROG, argc, argv, usage, &o->rollout) >= 0)
    return EXIT_USAGE;
  o->pg = live_env_or(o->pg, "CANARY_PG");
  o->plan = live_env_or(o->plan, "CANARY_PLAN");
  return -1;
}

/* Least-squares slope of v over t, per hour; NAN with fewer than two points or no time. */
static double slope_per_hour(const struct series *s) {
  if (s->n < 2)
    return NAN;
  double mt = 0, mv = 0;
  for (int i = 0; i < s->n; i++)
    mt += (double)(s->t[i] - s->t[0]), mv += s->v[i];
  mt /= s->n, mv /= s->n;
  double sxx = 0, sxy = 0;
  for (int i = 0; i < s->n; i++) {
    double dt = (double)(s->t[i] - s->t[0]) - mt;
    sxx += dt * dt, sxy += dt * (s->v[i] - mv);
  }
  return sxx > 0 ? sxy / sxx * 3600000.0 : NAN;
}

static struct series *series_of(struct series *all, int *n, const char *name) {
  for (int i = 0; i < *n; i++)
    if (!strcmp(all[i].name, name))
      return &all[i];
  if (*n == MAX_RULES)
    return NULL;
  struct series *s = &all[(*n)++];
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", name);
  return s;
}

static void keep_point(struct series *s, const struct rollout_reading *x) {
  if (!s || isnan(x->canary) || x->at_ms == s->last_at)
    return;
  s->last_at = x->at_ms;
  if (s->n == MAX_POINTS) { /* keep every other point: the trend over the whole period stays */
    for (int i = 0; i < MAX_POINTS / 2; i++)
      s->t[i] = s->t[2 * i], s->v[i] = s->v[2 * i];
    s->n = MAX_POINTS / 2;
  }
  s->t[s->n] = x->at_ms, s->v[s->n++] = x->canary;
}

/* "rising 0.0012/h", "falling ...", "flat", "" (not enough points). */
static void trend_text(const struct series *s, char *buf, size_t len) {
  double k = s ? slope_per_hour(s) : NAN;
  if (isnan(k)) {
    snprintf(buf, len, "-");
    return;
  }
  double scale = 0;
  for (int i = 0; i < s->n; i++)
    scale = fabs(s->v[i]) > scale ? fabs(s->v[i]) : scale;
  if (fabs(k) <= 0.05 * scale) /* under 5% of its size an hour */
    snprintf(buf, len, "flat");
  else
    snprintf(buf, len, "%s %.3g/h", k > 0 ? "rising" : "falling", fabs(k));
}

static bool anomalous(const struct rollout_reading *x) {
  return x->state != EXPR_FOR_INACTIVE ||
         (!isnan(x->log_e) && x->log_needed > 0 && x->log_e >= 0.5 * x->log_needed);
}

static void show(const struct plan *plan, const struct rollout *r, struct series *all, int *n_all,
                 int64_t started, int64_t now, const struct opts *o, bool tty) {
  char t[RFC3339_MAX];
  if (tty)
    fputs("\033[H\033[J", stdout);
  int64_t elapsed = now - started;
  printf("health of %s at %s: %s, %g%% exposure — %s", r->id,
         r->stage >= 0 && r->stage < plan->n_stages ? plan->stages[r->stage].name : "?",
         rollout_state_name(r->state), r->exposure_percent, rfc3339_format(now, t));
  if (!o->once)
    printf(" (%" PRId64 "m%02" PRId64 "s of %" PRId64 "m)", elapsed / 60000, elapsed / 1000 % 60,
           o->duration_ms / 60000);
  printf("\n");
  int anomalies = 0, shown = 0;
  for (int i = 0; i < r->n_readings; i++) {
    const struct rollout_reading *x = &r->readings[i];
    if (x->kind != READING_RULE)
      continue;
    struct series *s = series_of(all, n_all, x->name);
    keep_point(s, x);
    char tr[48];
    trend_text(s, tr, sizeof tr);
    bool a = anomalous(x);
    anomalies += a;
    const char *word = x->state == EXPR_FOR_FIRING     ? "FIRING"
                       : x->state == EXPR_FOR_PENDING  ? "pending"
                       : x->truth == EXPR_INSUFFICIENT ? "insufficient"
                                                       : "ok";
    printf("  %-2s %-12s %-26s trend %-18s", a ? "!" : "", word, x->name, tr);
    status_print_measurement(x);
    printf("\n");
    shown++;
  }
  if (!shown)
    printf("  no halt rule evaluated yet on this rollout (no metrics, or not started)\n");
  printf("%d anomal%s (! pending, firing, or over half way to a halt)\n", anomalies,
         anomalies == 1 ? "y" : "ies");
  fflush(stdout);
}

/* Read the rollout; EXIT_OK and *out, or the exit code with the reason printed. */
static int load(store_t *st, const char *given, struct rollout *out) {
  static struct store_rollout_row row;
  int code = live_find_rollout(PROG, st, given, &row);
  if (code == EXIT_OK)
    *out = row.rollout;
  return code;
}

/* The rollout's newest decision, if it came at or after since. */
static bool decision_since(store_t *st, const char *id, int64_t since, struct decision *out) {
  struct decision *d = NULL;
  size_t n = 0;
  bool ok = store_history(st, id, &d, &n) == CANARY_OK && n > 0 && d[n - 1].time_ms >= since;
  if (ok)
    *out = d[n - 1];
  free(d);
  return ok;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (!stop && nanosleep(&ts, &ts) != 0) {
  }
}

int app_health(int argc, char **argv) {
  struct opts o;
  int code = parse(argc, argv, &o);
  if (code >= 0)
    return code;
  static struct plan plan;
  if (!cli_load_plan(PROG, o.plan, &plan))
    return EXIT_BAD_INPUT;
  store_t *st;
  if ((code = live_store_open(PROG, o.pg, &st)) != EXIT_OK)
    return code;
  static struct rollout r;
  if ((code = load(st, o.rollout, &r)) != EXIT_OK) {
    store_close(st);
    return code;
  }
  char id[EVENT_NAME_MAX];
  snprintf(id, sizeof id, "%s", r.id);
  if (o.cohort) {
    int want = plan_stage_index(&plan, o.cohort);
    if (want < 0) {
      fprintf(stderr, PROG ": --cohort: '%s' is no stage of the plan\n", o.cohort);
      store_close(st);
      return EXIT_BAD_INPUT;
    }
    if (want != r.stage)
      fprintf(stderr, PROG ": note: %s is at %s, not %s: following it where it is\n", id,
              r.stage >= 0 && r.stage < plan.n_stages ? plan.stages[r.stage].name : "?", o.cohort);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  bool tty = isatty(STDOUT_FILENO) && !o.once;
  static struct series all[MAX_RULES];
  int n_all = 0;
  int64_t started = live_now_ms();
  /* a halt already standing when we start is the answer too: rollouts paused by a rule */
  int64_t since = r.state == ROLLOUT_PAUSED ? 0 : started;
  for (;;) {
    int64_t now = live_now_ms();
    show(&plan, &r, all, &n_all, started, now, &o, tty);
    struct decision d;
    bool halted = (r.state == ROLLOUT_PAUSED || r.state == ROLLOUT_ROLLED_BACK) &&
                  decision_since(st, id, since, &d) &&
                  (d.action == DECISION_HALT || d.action == DECISION_ROLLBACK);
    if (halted) {
      printf("\n");
      timeline_decision(stdout, &d);
      code = EXIT_BAD_INPUT;
      break;
    }
    if (r.state == ROLLOUT_COMPLETED) {
      printf("\n%s completed: nothing left to follow\n", id);
      break;
    }
    if (o.once || stop || now - started >= o.duration_ms) {
      if (!o.once && !stop)
        printf("\nno halt in %" PRId64 " minutes\n", o.duration_ms / 60000);
      break;
    }
    int64_t left = o.duration_ms - (now - started);
    sleep_ms(left < o.interval_ms ? left : o.interval_ms);
    if ((code = load(st, id, &r)) != EXIT_OK)
      break;
  }
  store_close(st); /* interrupted by the person watching (Ctrl-C): not a halt, exit 0 */
  return code;
}
