/*
 * The Prometheus text exposition format 0.0.4 (see prom.h): the escaping and number spelling
 * that a scraper's parser insists on, kept out of the HTTP code so a unit test can pin them.
 */
#include "core/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prom_buf_free(struct prom_buf *b) {
  free(b->data);
  *b = (struct prom_buf){0};
}

static bool grow(struct prom_buf *b, size_t more) {
  if (b->failed)
    return false;
  if (b->len + more + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) {
    b->failed = true;
    return false;
  }
  b->data = d;
  b->cap = cap;
  return true;
}

static void put(struct prom_buf *b, const char *s, size_t n) {
  if (!grow(b, n))
    return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s) { put(b, s, strlen(s)); }

static void putc_(struct prom_buf *b, char c) { put(b, &c, 1); }

/* Escape what the format escapes: \ and newline always, " inside label values. */
static void put_escaped(struct prom_buf *b, const char *s, bool quote) {
  for (; *s; s++) {
    if (*s == '\\')
      puts_(b, "\\\\");
    else if (*s == '\n')
      puts_(b, "\\n");
    else if (quote && *s == '"')
      puts_(b, "\\\"");
    else
      putc_(b, *s);
  }
}

/*
 * Go's strconv and the Python client spell these so; %g would say "inf" and "nan". Numbers are
 * formatted in the process's locale: canaryd never calls setlocale, so that is "C" (a decimal
 * point).
 */
static void spell_value(double v, char num[40]) {
  if (isnan(v))
    snprintf(num, 40, "NaN");
  else if (isinf(v))
    snprintf(num, 40, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact as an integer */
    snprintf(num, 40, "%.0f", v);
  else /* the shortest spelling that reads back as v: 0.005, not 0.0050000000000000001 */
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(num, 40, "%.*g", prec, v);
      if (strtod(num, NULL) == v)
        break;
    }
}

static void put_value(struct prom_buf *b, double v) {
  char num[40];
  spell_value(v, num);
  puts_(b, num);
}

void prom_hist_init(struct prom_hist *h, const double *le, size_t n) {
  memset(h, 0, sizeof *h);
  h->n = n < PROM_MAX_BUCKETS ? n : PROM_MAX_BUCKETS;
  memcpy(h->le, le, h->n * sizeof *le);
}

void prom_hist_observe(struct prom_hist *h, double v) {
  size_t i = 0;
  while (i < h->n && v > h->le[i])
    i++;
  h->bucket[i]++;
  h->sum += v;
  h->count++;
}

bool prom_name_valid(const char *name) {
  if (!name || !*name)
    return false;
  for (const char *p = name; *p; p++) {
    char c = *p;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(p > name && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help) {
  puts_(b, "# HELP ");
  puts_(b, name);
  putc_(b, ' ');
  put_escaped(b, help, false);
  puts_(b, "\n# TYPE ");
  puts_(b, name);
  putc_(b, ' ');
  puts_(b, type);
  putc_(b, '\n');
}

static void put_labels(struct prom_buf *b, const struct prom_label *labels, size_t n) {
  if (!n)
    return;
  putc_(b, '{');
  for (size_t i = 0; i < n; i++) {
    if (i)
      putc_(b, ',');
    puts_(b, labels[i].name);
    puts_(b, "=\"");
    put_escaped(b, labels[i].value ? labels[i].value : "", true);
    putc_(b, '"');
  }
  putc_(b, '}');
}

void prom_sample(struct prom_buf *b, const char *name, const struct prom_label *labels,
                 size_t n_labels, double value) {
  puts_(b, name);
  put_labels(b, labels, n_labels);
  putc_(b, ' ');
  put_value(b, value);
  putc_(b, '\n');
}

void prom_histogram(struct prom_buf *b, const char *name, const struct prom_label *labels,
                    size_t n_labels, const struct prom_hist *h) {
  char metric[128], le[40];
  struct prom_label l[8];
  if (n_labels > 7)
    n_labels = 7;
  if (n_labels) /* labels may be NULL then */
    memcpy(l, labels, n_labels * sizeof *l);
  l[n_labels].name = "le";
  snprintf(metric, sizeof metric, "%s_bucket", name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= h->n; i++) {
    cumulative += h->bucket[i];
    spell_value(i == h->n ? INFINITY : h->le[i], le);
    l[n_labels].value = le;
    prom_sample(b, metric, l, n_labels + 1, (double)cumulative);
  }
  snprintf(metric, sizeof metric, "%s_sum", name);
  prom_sample(b, metric, labels, n_labels, h->sum);
  snprintf(metric, sizeof metric, "%s_count", name);
  prom_sample(b, metric, labels, n_labels, (double)h->count);
}
