/*
 * The Prometheus text exposition format (version 0.0.4): metric families with their HELP and
 * TYPE lines, samples with escaped label values, and histograms with cumulative buckets. Pure:
 * it writes into a growable buffer and never reads a clock; canaryd's HTTP thread
 * (src/app/worker_http.c) formats a snapshot of the worker's counters with it.
 */
#ifndef CANARY_PROM_H
#define CANARY_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The text being built. Zero-initialised is empty; failed is set by the first allocation that
 * fails, after which nothing more is written (the caller answers 500). */
struct prom_buf {
  char *data;
  size_t len, cap;
  bool failed;
};

void prom_buf_free(struct prom_buf *b);

/* A label: name (a valid label name, not checked here) and value (any UTF-8: escaped). */
struct prom_label {
  const char *name, *value;
};

#define PROM_MAX_BUCKETS 16

/*
 * A histogram's state: upper bounds (strictly increasing, +Inf implied), the count of
 * observations in each bucket (not cumulative: bucket[n] is above the last bound), their sum
 * and count. A plain value: the worker observes into it, a snapshot copies it.
 */
struct prom_hist {
  size_t n;
  double le[PROM_MAX_BUCKETS];
  uint64_t bucket[PROM_MAX_BUCKETS + 1];
  double sum;
  uint64_t count;
};

/* Set up an empty histogram with n bounds (at most PROM_MAX_BUCKETS; more are ignored). */
void prom_hist_init(struct prom_hist *h, const double *le, size_t n);
/* Count one observation (a bucket is found by comparing, le inclusive as Prometheus'). */
void prom_hist_observe(struct prom_hist *h, double v);

/* Whether name is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
bool prom_name_valid(const char *name);

/*
 * "# HELP name help\n# TYPE name type\n": type is counter, gauge, histogram or untyped; help's
 * backslashes and newlines are escaped. Once per family, before its samples.
 */
void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help);

/*
 * One sample: name{labels} value. Label values are escaped (\\, \", \n); a value that is a
 * whole number is written without a fraction, NaN and infinities as Prometheus spells them.
 */
void prom_sample(struct prom_buf *b, const char *name, const struct prom_label *labels,
                 size_t n_labels, double value);

/*
 * A histogram's samples: name_bucket{labels,le="..."} (cumulative, ending with le="+Inf"),
 * name_sum{labels} and name_count{labels}. At most 7 labels besides le.
 */
void prom_histogram(struct prom_buf *b, const char *name, const struct prom_label *labels,
                    size_t n_labels, const struct prom_hist *h);

#endif
