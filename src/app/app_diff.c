/*
 * `canaryctl diff`: the seed's canary-diff validation. The latest N diff.samples of a rollout
 * (the same input computed by the stable and the canary version), read back from Kafka: the
 * distribution of their relative differences as a histogram, the worst samples, the share over
 * the tolerance with its confidence interval, and a verdict a pipeline can gate on.
 */
#include "app/app_diff.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_cli.h"
#include "app/app_live.h"
#include "app/app_log.h"
#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "codec/json.h"
#include "core/expr.h"
#include "core/stats.h"

#define PROG "canaryctl diff"
#define WORST 5
#define BAR 40 /* the longest histogram bar */

static const char usage[] =
    "usage: canaryctl diff [ROLLOUT] [--samples N] [--tolerance T] [--max-share S]\n"
    "                      [--cohort STAGE] [--json] [--kafka BROKERS] [--pg CONNINFO] [-v]\n"
    "\n"
    "Compare the stable and the canary version's results on the same inputs: the latest N\n"
    "samples of the rollout's diff.samples events (read back from Kafka; the service sends\n"
    "them), each sample's relative difference |canary - stable| / |stable| (0 when both are 0,\n"
    "infinite when only stable is), as\n"
    "  - a histogram of the relative differences against the tolerance;\n"
    "  - the worst samples, with their input and how many tolerances out they are;\n"
    "  - the share of samples over the tolerance, with its 95% confidence interval;\n"
    "  - a verdict: PASS when the interval's upper end is under --max-share, FAIL when the\n"
    "    share itself is at or over it, INSUFFICIENT in between (more samples would decide).\n"
    "Without ROLLOUT the only active rollout (PostgreSQL says which).\n"
    "\n"
    "  --samples N      the latest N samples (default 1000)\n"
    "  --tolerance T    a sample is out when its relative difference is over T (default 0.005)\n"
    "  --max-share S    the share of samples out that fails (default 0.005: the built-in plan's\n"
    "                   canary_diff criterion, canary_diff_ratio(0.005) < 0.005)\n"
    "  --cohort STAGE   only the samples sent for that cohort\n"
    "  --json           one JSON object\n"
    "  --kafka BROKERS  [CANARY_KAFKA]\n"
    "  --pg CONNINFO    [CANARY_PG] (only to find the active rollout)\n"
    "  -v, --verbose    log what the clients do\n"
    "\n"
    "Exit status: 0 PASS, 1 FAIL or INSUFFICIENT (or no samples, an unknown rollout), 2 usage\n"
    "error, 3 Kafka or PostgreSQL unavailable.\n";

struct opts {
  const char *rollout, *cohort, *kafka, *pg;
  long samples;
  double tolerance, max_share;
  bool json;
};

/* The latest samples, in a ring of opts.samples. */
struct ring {
  struct diff_sample *s;
  long cap, n; /* n: every sample seen */
};

static bool parse_num(const char *s, double lo, double hi, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v >= lo && v <= hi))
    return false;
  *out = v;
  return true;
}

static int parse(int argc, char **argv, struct opts *o) {
  static const struct option opts[] = {{"samples", required_argument, NULL, 'n'},
                                       {"tolerance", required_argument, NULL, 't'},
                                       {"max-share", required_argument, NULL, 'm'},
                                       {"cohort", required_argument, NULL, 'c'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"kafka", required_argument, NULL, 'k'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  *o = (struct opts){.samples = 1000, .tolerance = 0.005, .max_share = 0.005};
  live_set_verbose(false);
  optind = 1;
  int c;
  double v;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'n':
      if (!parse_num(optarg, 1, 10000000, &v) || v != floor(v)) {
        fprintf(stderr, PROG ": --samples: '%s' is not a count in 1 .. 10000000\n", optarg);
        return EXIT_USAGE;
      }
      o->samples = (long)v;
      break;
    case 't':
      if (!parse_num(optarg, 0, 1e300, &o->tolerance)) {
        fprintf(stderr, PROG ": --tolerance: '%s' is not a number >= 0\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'm':
      if (!parse_num(optarg, 0, 1, &o->max_share) || o->max_share == 0) {
        fprintf(stderr, PROG ": --max-share: '%s' is not a share in (0, 1]\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'c':
      o->cohort = optarg;
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
  o->kafka = live_env_or(o->kafka, "CANARY_KAFKA");
  o->pg = live_env_or(o->pg, "CANARY_PG");
  if (!o->kafka) {
    fprintf(stderr, PROG ": --kafka or CANARY_KAFKA is required\n");
    return EXIT_USAGE;
  }
  return -1;
}

/* The rollout: the one named, or the only active one in PostgreSQL. */
static int find_rollout(struct opts *o, char *id, size_t len) {
  if (o->rollout) {
    snprintf(id, len, "%s", o->rollout);
    return EXIT_OK;
  }
  store_t *st;
  int code = live_store_open(PROG, o->pg, &st);
  if (code != EXIT_OK)
    return code;
  static struct store_rollout_row row;
  code = live_find_rollout(PROG, st, NULL, &row);
  if (code == EXIT_OK)
    snprintf(id, len, "%s", row.rollout.id);
  store_close(st);
  return code;
}

/* Read the diff samples' topic to its end, keeping rollout's latest samples. */
static int read_samples(const struct opts *o, const char *rollout, struct ring *ring,
                        long *events) {
  const char *topic = avro_codec_topic_of(EVENT_DIFF_SAMPLES);
  avro_codec_t *codec;
  if (avro_codec_new(&codec) != CANARY_OK)
    return EXIT_BAD_INPUT;
  bus_reader_t *r;
  if (bus_reader_new(o->kafka, topic, true, log_callback, NULL, &r) != CANARY_OK) {
    avro_codec_destroy(codec);
    fprintf(stderr, PROG ": Kafka unavailable (%s)\n", o->kafka);
    return EXIT_UNAVAILABLE;
  }
  long read = 0;
  int idle = 0;
  static struct event ev;
  for (;;) {
    struct bus_msg m;
    bool caught_up = false;
    int rc = bus_reader_read(r, 200, &m, &caught_up);
    if (rc != CANARY_OK) {
      /* nothing came: done once every partition has said where it ends */
      if (caught_up || ++idle >= 25)
        break;
      continue;
    }
    idle = 0;
    if (++read % 100000 == 0)
      fprintf(stderr, PROG ": read %ld messages of %s ...\n", read, topic);
    if (m.key_len != strlen(rollout) || memcmp(m.key, rollout, m.key_len))
      continue; /* keyed by rollout: another rollout's */
    char why[256];
    if (avro_codec_decode_event(codec, m.value, m.len, &ev, why, sizeof why) != CANARY_OK ||
        ev.type != EVENT_DIFF_SAMPLES || strcmp(ev.rollout, rollout) ||
        (o->cohort && strcmp(ev.cohort, o->cohort)))
      continue;
    (*events)++;
    for (size_t i = 0; i < ev.diff.n; i++)
      ring->s[ring->n++ % ring->cap] = ev.diff.samples[i];
  }
  bus_reader_close(r);
  avro_codec_destroy(codec);
  return EXIT_OK;
}

struct sample_diff {
  struct diff_sample s;
  double rel;
};

static int by_rel_desc(const void *a, const void *b) {
  double x = ((const struct sample_diff *)a)->rel, y = ((const struct sample_diff *)b)->rel;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Histogram bins in tolerances: exact, then up to T/10, T/2, T, 2T, 10T, beyond, infinite. */
#define N_BINS 8
static const char *const bin_names[N_BINS] = {"0 (equal)", "<= T/10", "<= T/2", "<= T",
                                              "<= 2T",     "<= 10T",  "> 10T",  "inf (stable 0)"};

static int bin_of(double rel, double t) {
  if (rel == 0)
    return 0;
  if (isinf(rel))
    return 7;
  static const double edges[] = {0.1, 0.5, 1, 2, 10};
  for (int i = 0; i < 5; i++)
    if (rel <= edges[i] * t)
      return i + 1;
  return 6;
}

enum verdict { V_PASS, V_FAIL, V_INSUFFICIENT };
static const char *const verdict_names[] = {"PASS", "FAIL", "INSUFFICIENT"};

int app_diff(int argc, char **argv) {
  struct opts o;
  int code = parse(argc, argv, &o);
  if (code >= 0)
    return code;
  log_setup(LOG_LVL_WARNING, false, "canaryctl");
  char rollout[EVENT_NAME_MAX];
  if ((code = find_rollout(&o, rollout, sizeof rollout)) != EXIT_OK)
    return code;
  struct ring ring = {calloc((size_t)o.samples, sizeof *ring.s), o.samples, 0};
  struct sample_diff *d = calloc((size_t)o.samples, sizeof *d);
  if (!ring.s || !d) {
    free(ring.s), free(d);
    fprintf(stderr, PROG ": out of memory for %ld samples\n", o.samples);
    return EXIT_BAD_INPUT;
  }
  long events = 0;
  code = read_samples(&o, rollout, &ring, &events);
  long n = ring.n < ring.cap ? ring.n : ring.cap;
  if (code == EXIT_OK && n == 0) {
    fprintf(stderr,
            PROG ": no diff.samples for %s%s%s in Kafka: the service sends them "
                 "(docs/events.md)\n",
            rollout, o.cohort ? " in " : "", o.cohort ? o.cohort : "");
    code = EXIT_BAD_INPUT;
  }
  if (code != EXIT_OK) {
    free(ring.s), free(d);
    return code;
  }
  long bins[N_BINS] = {0}, over = 0;
  for (long i = 0; i < n; i++) {
    d[i].s = ring.s[i];
    d[i].rel = expr_relative_diff(d[i].s.stable, d[i].s.canary);
    bins[bin_of(d[i].rel, o.tolerance)]++;
    over += d[i].rel > o.tolerance;
  }
  qsort(d, (size_t)n, sizeof *d, by_rel_desc);
  double share = (double)over / (double)n;
  double upper = stats_clopper_pearson_upper((uint64_t)over, (uint64_t)n, 0.025);
  double lower =
      over ? 1 - stats_clopper_pearson_upper((uint64_t)(n - over), (uint64_t)n, 0.025) : 0;
  enum verdict v = upper < o.max_share ? V_PASS : share >= o.max_share ? V_FAIL : V_INSUFFICIENT;
  long worst = over < WORST ? (n < WORST ? n : WORST) : WORST;
  if (o.json) {
    struct jbuf b;
    jbuf_init(&b);
    jbuf_puts(&b, "{\"rollout\":");
    jbuf_string(&b, rollout);
    jbuf_printf(&b, ",\"samples\":%ld,\"events\":%ld,\"tolerance\":", n, events);
    jbuf_number(&b, o.tolerance);
    jbuf_printf(&b, ",\"over\":%ld,\"share\":", over);
    jbuf_number(&b, share);
    jbuf_puts(&b, ",\"share_95\":[");
    jbuf_number(&b, lower);
    jbuf_putc(&b, ',');
    jbuf_number(&b, upper);
    jbuf_puts(&b, "],\"max_share\":");
    jbuf_number(&b, o.max_share);
    jbuf_puts(&b, ",\"verdict\":");
    jbuf_string(&b, verdict_names[v]);
    jbuf_puts(&b, ",\"histogram\":[");
    for (int i = 0; i < N_BINS; i++) {
      jbuf_puts(&b, i ? ",{\"bin\":" : "{\"bin\":");
      jbuf_string(&b, bin_names[i]);
      jbuf_printf(&b, ",\"count\":%ld}", bins[i]);
    }
    jbuf_puts(&b, "],\"worst\":[");
    for (long i = 0; i < worst; i++) {
      jbuf_puts(&b, i ? ",{\"input\":" : "{\"input\":");
      jbuf_number(&b, d[i].s.input);
      jbuf_puts(&b, ",\"stable\":");
      jbuf_number(&b, d[i].s.stable);
      jbuf_puts(&b, ",\"canary\":");
      jbuf_number(&b, d[i].s.canary);
      jbuf_puts(&b, ",\"relative_diff\":");
      jbuf_number(&b, d[i].rel); /* inf: null */
      jbuf_putc(&b, '}');
    }
    jbuf_puts(&b, "]}\n");
    fwrite(b.data, 1, b.len, stdout);
    jbuf_free(&b);
  } else {
    printf("canary diff of %s: the latest %ld samples (of %ld, in %ld events), tolerance %g\n",
           rollout, n, ring.n, events, o.tolerance);
    long most = 1;
    for (int i = 0; i < N_BINS; i++)
      most = bins[i] > most ? bins[i] : most;
    printf("\n  relative difference    samples\n");
    for (int i = 0; i < N_BINS; i++) {
      int len = (int)((bins[i] * BAR + most - 1) / most);
      printf("  %-18s %9ld  %.*s%s\n", bin_names[i], bins[i], len,
             "########################################", i >= 4 && bins[i] ? "  (out)" : "");
    }
    if (worst) {
      printf("\n  worst samples        input       stable       canary   relative  tolerances\n");
      for (long i = 0; i < worst; i++)
        printf("  %-12ld %12.6g %12.6g %12.6g %10.3g %11.3g\n", i + 1, d[i].s.input, d[i].s.stable,
               d[i].s.canary, d[i].rel, o.tolerance > 0 ? d[i].rel / o.tolerance : INFINITY);
    }
    printf(
        "\n  over the tolerance: %ld of %ld = %.3g%% (95%%: %.3g%% .. %.3g%%); fails at %.3g%%\n",
        over, n, 100 * share, 100 * lower, 100 * upper, 100 * o.max_share);
    printf("  verdict: %s%s\n", verdict_names[v],
           v == V_INSUFFICIENT ? " (the interval holds the limit: more samples would decide)" : "");
  }
  free(ring.s);
  free(d);
  if (fflush(stdout) != 0) {
    perror(PROG);
    return EXIT_BAD_INPUT;
  }
  return v == V_PASS ? EXIT_OK : EXIT_BAD_INPUT;
}
