/*
 * Throughput of the DDSketch and the windows, against sorting the same values for exact
 * quantiles. Prints figures; asserts nothing. Build and run: see bench/README.md.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sketch.h"
#include "core/window.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static uint64_t rng_state = 12345;

static uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double uniform01(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

static double latency(void) { /* lognormal, median 100 ms, sigma 0.8 */
  double n = sqrt(-2 * log(uniform01())) * cos(2 * M_PI * uniform01());
  return exp(log(100) + 0.8 * n);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void check(int rc, const char *what) {
  if (rc) {
    fprintf(stderr, "bench_sketch: %s failed (%d)\n", what, rc);
    exit(1);
  }
}

static volatile double sink; /* keeps results alive */

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000000;
  const double qs[] = {0.5, 0.75, 0.95, 0.99};
  double *v = malloc(n * sizeof *v), *sorted = malloc(n * sizeof *v);
  if (!v || !sorted || n < 1000)
    return 1;
  for (size_t i = 0; i < n; i++)
    v[i] = latency();
  printf("bench_sketch: %zu lognormal latency values (median 100 ms, sigma 0.8), alpha 0.01\n\n",
         n);

  /* add */
  struct sketch s;
  check(sketch_init(&s, 0.01), "init");
  double t0 = seconds();
  for (size_t i = 0; i < n; i++)
    check(sketch_add(&s, v[i]), "add");
  double t_add = seconds() - t0;

  /* quantile: the four the plan uses, from the full sketch */
  size_t nq = 200000;
  t0 = seconds();
  for (size_t i = 0; i < nq; i++) {
    double out;
    sketch_quantile(&s, qs[i & 3], &out);
    sink = out;
  }
  double t_q = seconds() - t0;
  double est[4];
  for (int i = 0; i < 4; i++)
    sketch_quantile(&s, qs[i], &est[i]);

  /* reference: sort a copy, read the exact values */
  t0 = seconds();
  memcpy(sorted, v, n * sizeof *v);
  qsort(sorted, n, sizeof *sorted, cmp_double);
  double exact[4];
  for (int i = 0; i < 4; i++)
    exact[i] = sorted[(size_t)floor(qs[i] * (double)(n - 1))];
  double t_sort = seconds() - t0;

  /* merge: 10-second buckets of 1,000 values each, merged as a 1-hour window would be */
  enum { PARTS = 360, PER = 1000 };
  struct sketch *parts = malloc(PARTS * sizeof *parts);
  if (!parts)
    return 1;
  for (int p = 0; p < PARTS; p++) {
    check(sketch_init(&parts[p], 0.01), "init");
    for (int i = 0; i < PER; i++)
      check(sketch_add(&parts[p], v[((size_t)p * PER + (size_t)i) % n]), "add");
  }
  struct sketch m;
  check(sketch_init(&m, 0.01), "init");
  int rounds = 50;
  t0 = seconds();
  for (int r = 0; r < rounds; r++) {
    sketch_reset(&m);
    for (int p = 0; p < PARTS; p++)
      check(sketch_merge(&m, &parts[p]), "merge");
  }
  double t_merge = seconds() - t0;
  uint64_t bins_per_part = 0;
  for (int p = 0; p < PARTS; p++)
    bins_per_part += sketch_bin_count(&parts[p]);
  bins_per_part /= PARTS;

  printf("  %-34s %12.0f /s   (%.1f ns each)\n", "sketch_add", (double)n / t_add,
         t_add / (double)n * 1e9);
  printf("  %-34s %12.0f /s   (%.2f us each, %u bins)\n", "sketch_quantile", (double)nq / t_q,
         t_q / (double)nq * 1e6, sketch_bin_count(&s));
  printf("  %-34s %12.0f /s   (%.2f us each, ~%llu bins a sketch)\n",
         "sketch_merge (1,000-value sketches)", rounds * PARTS / t_merge,
         t_merge / (rounds * PARTS) * 1e6, (unsigned long long)bins_per_part);
  printf("  %-34s %12.3f ms   (360 sketches holding %d values)\n", "1 h of 10 s buckets merged",
         t_merge / rounds * 1e3, PARTS * PER);
  printf("\n  reference: qsort of the same %zu values + 4 exact quantiles: %.3f s\n", n, t_sort);
  printf("  sketch (add all + 4 quantiles): %.3f s  ->  %.1fx faster than sorting\n",
         t_add + 4 * t_q / (double)nq, t_sort / (t_add + 4 * t_q / (double)nq));
  printf("  memory: sketch %zu B + %u bins x 8 B; encoded %zu B; the sorted copy %zu MB\n\n",
         sizeof s, s.cap, sketch_encoded_size(&s), n * sizeof *v >> 20);
  printf("  %-6s %14s %14s %12s\n", "q", "exact", "sketch", "rel. error");
  for (int i = 0; i < 4; i++)
    printf("  p%-5g %14.4f %14.4f %12.5f\n", qs[i] * 100, exact[i], est[i],
           fabs(est[i] - exact[i]) / exact[i]);

  /* windows: ingest 100 hours of a series, 20 values every 10 s, then query */
  struct window w;
  check(window_init(&w, WINDOW_DISTRIBUTION, 10 * SEC, 72 * HOUR), "window_init");
  size_t calls = 0, values = 0;
  t0 = seconds();
  for (int64_t t = 0; t <= 100 * HOUR; t += 10 * SEC) {
    check(window_add_samples(&w, t, &v[values % (n - 20)], 20), "window_add_samples");
    calls++;
    values += 20;
  }
  double t_win = seconds() - t0;
  printf("\n  window_add_samples (20 values / call, 100 h incl. roll-ups): %.0f calls/s, %.0f "
         "values/s\n",
         (double)calls / t_win, (double)values / t_win);
  printf("  window memory after 100 h: %zu buckets, %zu KiB\n", window_buckets(&w),
         window_memory(&w) / 1024);
  const int64_t spans[] = {5 * MIN, 15 * MIN, HOUR, 24 * HOUR, 72 * HOUR};
  const char *names[] = {"5 min", "15 min", "1 h", "24 h", "72 h"};
  for (int i = 0; i < 5; i++) {
    int reps = spans[i] <= HOUR ? 2000 : 200;
    t0 = seconds();
    for (int r = 0; r < reps; r++) {
      double out;
      check(window_quantile(&w, 100 * HOUR, spans[i], 0.99, &out), "window_quantile");
      sink = out;
    }
    double t = (seconds() - t0) / reps;
    printf("  window_quantile p99 over %-6s %10.1f us   (%llu values)\n", names[i], t * 1e6,
           (unsigned long long)window_count(&w, 100 * HOUR, spans[i]));
  }
  struct window c;
  check(window_init(&c, WINDOW_COUNTER, 10 * SEC, 72 * HOUR), "window_init");
  t0 = seconds();
  size_t adds = 0;
  for (int64_t t = 0; t <= 100 * HOUR; t += SEC, adds++)
    check(window_add_counter(&c, t, 1), "window_add_counter");
  double t_c = seconds() - t0;
  t0 = seconds();
  for (int r = 0; r < 20000; r++)
    sink = window_counter_sum(&c, 100 * HOUR, 5 * MIN);
  double t_sum = (seconds() - t0) / 20000;
  printf("  window_add_counter: %.0f /s;  window_counter_sum over 5 min: %.2f us\n",
         (double)adds / t_c, t_sum * 1e6);

  window_free(&c);
  window_free(&w);
  for (int p = 0; p < PARTS; p++)
    sketch_free(&parts[p]);
  free(parts);
  sketch_free(&m);
  sketch_free(&s);
  free(sorted);
  free(v);
  return 0;
}
