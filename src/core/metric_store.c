/*
 * The metric store: a rollout's series of windows, fed by metric and diff events, and what the
 * evidence counts at ingest (totals and their 15-minute snapshots, values above the plan's
 * quantile lines, dispersion steps); expiry and memory. Its other files: mstore_source.c (the
 * expr_source over these series), mstore_plan.c (the plan's expressions compiled once),
 * mstore_eval.c (rules and criteria evaluated with their for: states), mstore_evidence.c (the
 * evidence over the counts kept here).
 */
#include "core/metric_store.h"
#include "core/enum_names.h"
#include "core/mstore_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ENUM_NAMES(mstore_owner, mstore_owner, MSTORE_OWNER_MAP, MSTORE_OWNER_COUNT)

int mstore_fail(char *why, size_t len, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  canary_vwhy(why, len, rc, fmt, ap); /* the one formatter (core/error.h) */
  va_end(ap);
  return rc;
}

/* --- configuration ------------------------------------------------------------------------ */

void mstore_config_default(struct mstore_config *c) {
  memset(c, 0, sizeof *c);
  c->bucket_ms = WINDOW_BUCKET_MS_DEFAULT;
  c->retention_ms = WINDOW_RETENTION_MS_DEFAULT;
  c->max_series = MSTORE_MAX_SERIES_DEFAULT;
  c->max_names = MSTORE_MAX_NAMES_DEFAULT;
  c->max_zscores = MSTORE_MAX_ZSCORES_DEFAULT;
  c->zscore_step_ms = MSTORE_ZSCORE_STEP_MS_DEFAULT;
  c->zscore_points = (int)(24 * 3600 * 1000LL / MSTORE_ZSCORE_STEP_MS_DEFAULT) + 1;
  c->limits = expr_limits_default;
  c->memo = true;
}

static bool config_ok(const struct mstore_config *c) {
  return c->bucket_ms > 0 && c->retention_ms >= c->bucket_ms && c->max_series > 0 &&
         c->max_series <= INT16_MAX && c->max_names > 0 && c->max_names <= 4096 &&
         (int64_t)c->max_names * PLAN_MAX_STAGES * VARIANT_COUNT <= INT32_MAX &&
         c->max_zscores >= 0 && c->zscore_points > 0 && c->zscore_points <= 1 << 20 &&
         c->zscore_step_ms > 0 && c->zscore_min_scale >= 0 && c->n_tolerances >= 0 &&
         c->n_tolerances <= MSTORE_MAX_TOLERANCES;
}

int mstore_init(struct mstore *ms, const struct mstore_config *cfg) {
  memset(ms, 0, sizeof *ms);
  if (!config_ok(cfg))
    return CANARY_EINVALID;
  ms->cfg = *cfg;
  struct window probe;
  int rc = window_init(&probe, WINDOW_COUNTER, cfg->bucket_ms, cfg->retention_ms);
  window_free(&probe);
  if (rc)
    return CANARY_EINVALID;
  ms->name_cap = 16;
  while (ms->name_cap < 2 * cfg->max_names)
    ms->name_cap *= 2;
  size_t n_of = (size_t)cfg->max_names * PLAN_MAX_STAGES * VARIANT_COUNT;
  ms->names = calloc((size_t)cfg->max_names, sizeof *ms->names);
  ms->name_index = malloc((size_t)ms->name_cap * sizeof *ms->name_index);
  ms->series_of = malloc(n_of * sizeof *ms->series_of);
  if (!ms->names || !ms->name_index || !ms->series_of) {
    mstore_free(ms);
    return CANARY_ENOMEM;
  }
  memset(ms->name_index, 0xff, (size_t)ms->name_cap * sizeof *ms->name_index);
  memset(ms->series_of, 0xff, n_of * sizeof *ms->series_of);
  return CANARY_OK;
}

static void diff_free(struct mstore_diff *d) {
  window_free(&d->total);
  for (int i = 0; i < MSTORE_MAX_TOLERANCES; i++)
    window_free(&d->over[i]);
  window_free(&d->rel);
  d->used = false;
}

void mstore_free(struct mstore *ms) {
  for (int i = 0; i < ms->n_series; i++) {
    window_free(&ms->series[i].w);
    if (ms->series[i].all) {
      sketch_free(ms->series[i].all);
      free(ms->series[i].all);
    }
  }
  for (int c = 0; c < PLAN_MAX_STAGES; c++)
    if (ms->diff[c].used)
      diff_free(&ms->diff[c]);
  for (int i = 0; i < ms->n_z; i++) {
    free(ms->z[i].t);
    free(ms->z[i].x);
  }
  free(ms->z);
  free(ms->zscratch);
  free(ms->memo);
  free(ms->lc);
  free(ms->series);
  free(ms->series_of);
  free(ms->name_index);
  free(ms->names);
  struct mstore_config cfg = ms->cfg;
  memset(ms, 0, sizeof *ms);
  ms->cfg = cfg;
}

/* --- names and series ----------------------------------------------------------------------- */

/* The slot of name in the open-addressing index: its entry, or the free slot where it goes. */
static int name_slot(const struct mstore *ms, const char *name) {
  uint64_t h = fnv1a(FNV_SEED, name, strlen(name));
  int mask = ms->name_cap - 1;
  for (int i = (int)(h & (uint64_t)mask);; i = (i + 1) & mask) {
    int id = ms->name_index[i];
    if (id < 0 || strcmp(ms->names[id].name, name) == 0)
      return i;
  }
}

int mstore_name_find(const struct mstore *ms, const char *name) {
  if (!ms->name_index)
    return -1;
  return ms->name_index[name_slot(ms, name)];
}

static int name_add(struct mstore *ms, const char *name, enum window_kind kind) {
  int slot = name_slot(ms, name);
  int id = ms->n_names++;
  snprintf(ms->names[id].name, sizeof ms->names[id].name, "%s", name);
  ms->names[id].kind = kind;
  ms->name_index[slot] = (int16_t)id;
  return id;
}

static struct mstore_series *series_get(const struct mstore *ms, int cohort, enum variant v,
                                        const char *name) {
  if (!cohort_ok(cohort) || (unsigned)v >= VARIANT_COUNT || !name)
    return NULL;
  int id = mstore_name_find(ms, name);
  if (id < 0)
    return NULL;
  int16_t s = *series_ref(ms, id, cohort, v);
  return s < 0 ? NULL : &ms->series[s];
}

const struct mstore_series *mstore_series_find(const struct mstore *ms, int cohort, enum variant v,
                                               const char *name) {
  return series_get(ms, cohort, v, name);
}

/* The series of (cohort, v, name id), created (with its window) if new. NULL: ENOMEM. */
static struct mstore_series *series_open(struct mstore *ms, int cohort, enum variant v, int id) {
  int16_t *ref = series_ref(ms, id, cohort, v);
  if (*ref >= 0)
    return &ms->series[*ref];
  if (ms->n_series == ms->series_cap) {
    int cap = ms->series_cap ? 2 * ms->series_cap : 16;
    if (cap > ms->cfg.max_series)
      cap = ms->cfg.max_series;
    struct mstore_series *s = realloc(ms->series, (size_t)cap * sizeof *s);
    if (!s)
      return NULL;
    ms->series = s;
    ms->series_cap = cap;
  }
  struct mstore_series *s = &ms->series[ms->n_series];
  memset(s, 0, sizeof *s);
  s->cohort = cohort;
  s->variant = v;
  s->name = id;
  if (window_init(&s->w, ms->names[id].kind, ms->cfg.bucket_ms, ms->cfg.retention_ms))
    return NULL; /* validated at mstore_init: cannot happen */
  *ref = (int16_t)ms->n_series++;
  return s;
}

/* --- ingest --------------------------------------------------------------------------------- */

/* One metric of an event, flattened for validation. */
struct item {
  const char *name;
  enum window_kind kind;
  int id; /* name id, -1 = new */
};

static bool all_finite(const double *v, size_t n, bool nonneg) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]) || (nonneg && v[i] < 0))
      return false;
  return true;
}

/* Checks one metric; a new name is checked against the new names of the event before it. */
static int check_item(const struct mstore *ms, struct item *it, const struct item *prev, size_t i,
                      char *why, size_t len) {
  size_t nl = it->name ? strlen(it->name) : 0;
  const char *kind = window_kind_name(it->kind);
  if (!nl)
    return mstore_fail(why, len, CANARY_EINVALID, "a %s has no name", kind);
  if (nl >= PLAN_NAME_MAX)
    return mstore_fail(why, len, CANARY_EINVALID, "%s name '%.40s...' is longer than %d bytes",
                       kind, it->name, PLAN_NAME_MAX - 1);
  it->id = mstore_name_find(ms, it->name);
  enum window_kind known = it->id >= 0 ? ms->names[it->id].kind : it->kind;
  for (size_t j = 0; it->id < 0 && j < i; j++)
    if (prev[j].id < 0 && strcmp(prev[j].name, it->name) == 0) {
      known = prev[j].kind;
      break;
    }
  if (known != it->kind)
    return mstore_fail(why, len, CANARY_EINVALID, "metric '%s' arrives as a %s but is a %s",
                       it->name, kind, window_kind_name(known));
  return CANARY_OK;
}

/*
 * Validates a metrics event against the store's kinds and bounds, without changing anything.
 * items (one per metric of the event, counters, gauges, distributions in order) gets each
 * name's id, -1 for a name the store does not know yet: metrics_apply uses them.
 */
static int metrics_check(const struct mstore *ms, int cohort, const struct event_metrics *m,
                         struct item *items, char *why, size_t len) {
  size_t n = m->n_counters + m->n_gauges + m->n_dists;
  if ((unsigned)m->variant >= VARIANT_COUNT)
    return mstore_fail(why, len, CANARY_EINVALID, "unknown variant");
  if ((m->n_counters && !m->counters) || (m->n_gauges && !m->gauges) || (m->n_dists && !m->dists))
    return mstore_fail(why, len, CANARY_EINVALID, "metric arrays missing");
  if (!n)
    return CANARY_OK;
  size_t k = 0;
  for (size_t i = 0; i < m->n_counters; i++)
    items[k++] = (struct item){m->counters[i].name, WINDOW_COUNTER, -1};
  for (size_t i = 0; i < m->n_gauges; i++)
    items[k++] = (struct item){m->gauges[i].name, WINDOW_GAUGE, -1};
  for (size_t i = 0; i < m->n_dists; i++)
    items[k++] = (struct item){m->dists[i].name, WINDOW_DISTRIBUTION, -1};
  int rc = CANARY_OK, new_names = 0, new_series = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    rc = check_item(ms, &items[i], items, i, why, len);
    if (rc)
      break;
    const struct item *it = &items[i];
    if (it->id >= 0 && *series_ref(ms, it->id, cohort, m->variant) >= 0)
      continue;                 /* the usual case: nothing new to count */
    bool first_in_event = true; /* counts a new name (or series) once per event */
    for (size_t j = 0; j < i; j++)
      if (strcmp(items[j].name, it->name) == 0) {
        first_in_event = false;
        break;
      }
    if (!first_in_event)
      continue;
    if (it->id < 0) {
      new_names++;
      new_series++;
    } else if (*series_ref(ms, it->id, cohort, m->variant) < 0) {
      new_series++;
    }
  }
  if (!rc && ms->n_names + new_names > ms->cfg.max_names)
    rc = mstore_fail(why, len, CANARY_EFULL, "more than %d metric names in this rollout",
                     ms->cfg.max_names);
  if (!rc && ms->n_series + new_series > ms->cfg.max_series)
    rc = mstore_fail(why, len, CANARY_EFULL,
                     "more than %d metric series in this rollout (cohort x variant x metric)",
                     ms->cfg.max_series);
  if (rc)
    return rc;
  for (size_t i = 0; i < m->n_counters; i++) {
    if (!isfinite(m->counters[i].value) || m->counters[i].value < 0)
      return mstore_fail(why, len, CANARY_EINVALID,
                         "counter '%s' is %g: counters are increments, finite and >= 0",
                         m->counters[i].name, m->counters[i].value);
  }
  for (size_t i = 0; i < m->n_gauges; i++)
    if (!isfinite(m->gauges[i].value))
      return mstore_fail(why, len, CANARY_EINVALID, "gauge '%s' is not finite", m->gauges[i].name);
  for (size_t i = 0; i < m->n_dists; i++)
    if ((m->dists[i].n && !m->dists[i].values) ||
        !all_finite(m->dists[i].values, m->dists[i].n, true))
      return mstore_fail(why, len, CANARY_EINVALID,
                         "distribution '%s' has a value that is negative or not finite",
                         m->dists[i].name);
  return CANARY_OK;
}

static enum window_kind item_kind(const struct event_metrics *m, size_t i) {
  return i < m->n_counters                 ? WINDOW_COUNTER
         : i < m->n_counters + m->n_gauges ? WINDOW_GAUGE
                                           : WINDOW_DISTRIBUTION;
}

/* A counter's running total; the first event of a later slice of event time snapshots it. */
static void total_add(struct mstore_series *s, int64_t t, double value) {
  int64_t slice = floor_div(t, MSTORE_SLICE_MS);
  int last = (s->n_snaps - 1) % MSTORE_SNAPS;
  if (s->n_snaps == 0 || slice > s->snap_slice[last]) {
    int k = s->n_snaps % MSTORE_SNAPS;
    s->snap_slice[k] = slice;
    s->snap_total[k] = s->total;
    s->n_snaps++;
  }
  int r = s->n_recent++ % MSTORE_RECENT;
  s->recent_t[r] = t;
  s->recent_pre[r] = s->total;
  s->total += value;
}

double mstore_total_upto(const struct mstore_series *s, int64_t cut) {
  int kept = s->n_recent < MSTORE_RECENT ? s->n_recent : MSTORE_RECENT;
  double after = s->total; /* the total after the add being looked at */
  for (int j = 0; j < kept; j++) {
    int r = (s->n_recent - 1 - j) % MSTORE_RECENT; /* newest first */
    if (s->recent_t[r] <= cut)
      return after;
    after = s->recent_pre[r];
  }
  return after; /* every recent add is after cut: the total before them */
}

/* Every value of a distribution since the series began, in one sketch (the window's alpha). */
static int all_add(struct mstore_series *s, const double *v, size_t n) {
  if (!s->all) {
    s->all = malloc(sizeof *s->all);
    if (!s->all || sketch_init(s->all, s->w.cfg.alpha)) {
      free(s->all);
      s->all = NULL;
      return CANARY_ENOMEM;
    }
  }
  for (size_t i = 0; i < n; i++)
    if (sketch_add(s->all, v[i]) == CANARY_ENOMEM)
      return CANARY_ENOMEM; /* negative or not finite: refused by the window's check already */
  return CANARY_OK;
}

/* A report that carries both counters of a pair adds to the numerator's dispersion sums. */
static void dispersion_add(struct mstore *ms, int cohort, const struct event_metrics *m) {
  for (int k = 0; k < ms->cfg.n_pairs; k++) {
    const struct mstore_pair *p = &ms->cfg.pairs[k];
    double x = NAN, n = NAN;
    for (size_t i = 0; i < m->n_counters; i++) {
      if (!strcmp(m->counters[i].name, p->num))
        x = m->counters[i].value;
      else if (!strcmp(m->counters[i].name, p->den))
        n = m->counters[i].value;
    }
    if (!(n > 0) || isnan(x))
      continue;
    struct mstore_series *s = series_get(ms, cohort, m->variant, p->num);
    if (!s)
      continue;
    double px = s->disp_prev_x, pn = s->disp_prev_n;
    s->disp_prev_x = x;
    s->disp_prev_n = n;
    if (!(pn > 0))
      continue;
    double r = (x + px) / (n + pn);
    double var = r * (1 - r) * (1 / n + 1 / pn);
    if (!(var > 0))
      continue; /* no bad event in either: no information about their spread */
    double d = x / n - px / pn, step = d * d / var;
    s->disp_k++;
    s->disp_sum += step < MSTORE_DISP_CAP ? step : MSTORE_DISP_CAP;
  }
}

const struct mstore_linecount *mstore_linecount_find(const struct mstore *ms, int cohort,
                                                     int line) {
  for (int i = 0; i < ms->n_lc; i++)
    if (ms->lc[i].cohort == cohort && ms->lc[i].line == line)
      return &ms->lc[i];
  return NULL;
}

static struct mstore_linecount *linecount_open(struct mstore *ms, int cohort, int line, int name) {
  struct mstore_linecount *c = (struct mstore_linecount *)mstore_linecount_find(ms, cohort, line);
  if (c)
    return c;
  if (ms->n_lc == ms->lc_cap) {
    int cap = ms->lc_cap ? 2 * ms->lc_cap : 8;
    struct mstore_linecount *p = realloc(ms->lc, (size_t)cap * sizeof *p);
    if (!p)
      return NULL;
    ms->lc = p;
    ms->lc_cap = cap;
  }
  c = &ms->lc[ms->n_lc++];
  memset(c, 0, sizeof *c);
  c->cohort = cohort;
  c->line = line;
  c->name = (int16_t)name;
  return c;
}

/* Values a baseline quantile needs before it draws a line (p99: 100). */
static uint64_t line_min_values(double q) {
  double need = q < 1 ? ceil(1 / (1 - q) - 1e-9) : 1e15;
  return need < 20 ? 20 : (uint64_t)need;
}

/* Where line l stands in cohort now: its limit, or k times the baseline's quantile so far (NaN
 * while the baseline has too few values to say). */
static double line_now(const struct mstore *ms, int cohort, const struct mstore_line *l) {
  if (isnan(l->k))
    return l->limit;
  const struct mstore_series *b = series_get(ms, cohort, VARIANT_BASELINE, l->dist);
  double v;
  if (!b || !b->all || sketch_count(b->all) < line_min_values(l->q) ||
      !sketch_quantile(b->all, l->q, &v))
    return NAN;
  return l->k * v;
}

double mstore_line_now(const struct mstore *ms, int cohort, int line) {
  return line >= 0 && line < ms->cfg.n_lines ? line_now(ms, cohort, &ms->cfg.lines[line]) : NAN;
}

/* Count a canary report's values above each of the lines drawn on its distribution. */
static int lines_add(struct mstore *ms, int cohort, int name, int64_t t,
                     const struct metric_dist *d) {
  for (int j = 0; j < ms->cfg.n_lines; j++) {
    const struct mstore_line *l = &ms->cfg.lines[j];
    if (strcmp(l->dist, ms->names[name].name))
      continue;
    double line = line_now(ms, cohort, l);
    if (isnan(line))
      continue; /* no line yet: these values are not counted either way */
    struct mstore_linecount *c = linecount_open(ms, cohort, j, name);
    if (!c)
      return CANARY_ENOMEM;
    double above = 0;
    for (size_t i = 0; i < d->n; i++)
      above += d->values[i] > line;
    int64_t slice = floor_div(t, MSTORE_SLICE_MS);
    int last = (c->n_snaps - 1) % MSTORE_SNAPS;
    if (c->n_snaps == 0 || slice > c->snap_slice[last]) {
      int k = c->n_snaps++ % MSTORE_SNAPS;
      c->snap_slice[k] = slice;
      c->snap_above[k] = c->above;
      c->snap_n[k] = c->n;
    }
    c->above += above;
    c->n += (double)d->n;
  }
  return CANARY_OK;
}

static int metrics_apply(struct mstore *ms, int cohort, int64_t t, const struct event_metrics *m,
                         const struct item *items) {
  size_t n = m->n_counters + m->n_gauges + m->n_dists;
  int rc = CANARY_OK;
  uint64_t tick = ++ms->tick;
  for (size_t i = 0; i < n; i++) {
    enum window_kind kind = item_kind(m, i);
    int id = items[i].id;
    /* new (maybe earlier in this event) */
    if (id < 0 && (id = mstore_name_find(ms, items[i].name)) < 0)
      id = name_add(ms, items[i].name, kind);
    struct mstore_series *s = series_open(ms, cohort, m->variant, id);
    if (!s) {
      rc = CANARY_ENOMEM;
      continue;
    }
    s->changed = tick;
    int r;
    if (kind == WINDOW_COUNTER) {
      r = window_add_counter(&s->w, t, m->counters[i].value);
      if (!r)
        total_add(s, t, m->counters[i].value);
    } else if (kind == WINDOW_GAUGE) {
      r = window_add_gauge(&s->w, t, m->gauges[i - m->n_counters].value);
    } else {
      const struct metric_dist *d = &m->dists[i - m->n_counters - m->n_gauges];
      r = d->n ? window_add_samples(&s->w, t, d->values, d->n) : CANARY_OK;
      if (!r && d->n && m->variant == VARIANT_BASELINE && ms->cfg.n_lines)
        r = all_add(s, d->values, d->n); /* the lines drawn from the baseline's quantiles */
      if (!r && d->n && m->variant == VARIANT_CANARY && ms->cfg.n_lines)
        r = lines_add(ms, cohort, id, t, d);
    }
    if (r && !rc)
      rc = r;
  }
  if (ms->cfg.n_pairs)
    dispersion_add(ms, cohort, m);
  return rc;
}

static int diff_open(struct mstore *ms, struct mstore_diff *d) {
  if (d->used)
    return CANARY_OK;
  int64_t b = ms->cfg.bucket_ms, r = ms->cfg.retention_ms;
  int rc = window_init(&d->total, WINDOW_COUNTER, b, r);
  for (int i = 0; i < MSTORE_MAX_TOLERANCES && !rc; i++)
    rc = window_init(&d->over[i], WINDOW_COUNTER, b, r);
  if (!rc)
    rc = window_init(&d->rel, WINDOW_DISTRIBUTION, b, r);
  d->used = true; /* the windows are initialised (or empty): diff_free is safe */
  return rc;
}

static int diff_ingest(struct mstore *ms, int cohort, int64_t t, const struct event_diff *dv,
                       char *why, size_t len) {
  if (dv->n && !dv->samples)
    return mstore_fail(why, len, CANARY_EINVALID, "diff samples missing");
  for (size_t i = 0; i < dv->n; i++) {
    const struct diff_sample *s = &dv->samples[i];
    if (!isfinite(s->stable) || !isfinite(s->canary))
      return mstore_fail(why, len, CANARY_EINVALID, "diff sample %zu is not finite", i);
  }
  if (!dv->n)
    return CANARY_OK;
  struct mstore_diff *d = &ms->diff[cohort];
  int rc = diff_open(ms, d);
  if (rc)
    return rc;
  d->changed = ++ms->tick;
  double *rel = malloc(dv->n * sizeof *rel);
  if (!rel)
    return CANARY_ENOMEM;
  size_t n_rel = 0;
  uint64_t over[MSTORE_MAX_TOLERANCES] = {0};
  for (size_t i = 0; i < dv->n; i++) {
    double x = expr_relative_diff(dv->samples[i].stable, dv->samples[i].canary);
    for (int k = 0; k < ms->cfg.n_tolerances; k++)
      over[k] += x > ms->cfg.tolerances[k];
    if (isfinite(x))
      rel[n_rel++] = x; /* infinite ones are total - rel: beyond any tolerance */
  }
  int r = window_add_counter(&d->total, t, (double)dv->n);
  if (!r)
    for (int k = 0; k < ms->cfg.n_tolerances && !r; k++)
      r = window_add_counter(&d->over[k], t, (double)over[k]);
  if (!r && n_rel)
    r = window_add_samples(&d->rel, t, rel, n_rel);
  free(rel);
  return r;
}

int mstore_ingest(struct mstore *ms, int cohort, const struct event *ev, char *why,
                  size_t why_len) {
  if (why && why_len)
    why[0] = '\0';
  int rc;
  if (!ms->names)
    rc = mstore_fail(why, why_len, CANARY_EINVALID, "the metric store is not initialised");
  else if (!cohort_ok(cohort))
    rc = mstore_fail(why, why_len, CANARY_EINVALID, "cohort index %d out of range", cohort);
  else if (ev->time_ms < -WINDOW_TIME_MAX || ev->time_ms > WINDOW_TIME_MAX)
    rc = mstore_fail(why, why_len, CANARY_EINVALID, "event time out of range");
  else if (ev->type == EVENT_METRICS) {
    /* on the stack for any event a reporter sends; the heap for the unusual */
    struct item stack[32], *items = stack;
    size_t n = ev->metrics.n_counters + ev->metrics.n_gauges + ev->metrics.n_dists;
    if (n > sizeof stack / sizeof *stack && !(items = malloc(n * sizeof *items)))
      rc = CANARY_ENOMEM;
    else if (!(rc = metrics_check(ms, cohort, &ev->metrics, items, why, why_len)))
      rc = metrics_apply(ms, cohort, ev->time_ms, &ev->metrics, items);
    if (items != stack)
      free(items);
  } else if (ev->type == EVENT_DIFF_SAMPLES) {
    rc = diff_ingest(ms, cohort, ev->time_ms, &ev->diff, why, why_len);
  } else {
    rc = mstore_fail(why, why_len, CANARY_EINVALID, "a %s event holds no metrics",
                     event_type_name(ev->type));
  }
  if (rc == CANARY_EINVALID || rc == CANARY_EFULL)
    ms->rejected++;
  else if (ev->time_ms > ms->clock_ms)
    ms->clock_ms = ev->time_ms;
  if (rc == CANARY_ENOMEM && why && why_len && !why[0])
    mstore_fail(why, why_len, rc, "out of memory: some observations were not kept");
  return rc;
}

/* --- expiry --------------------------------------------------------------------------------- */

/* Expire w; a window left without buckets gives its rings back (its kind stays). */
static int window_trim(struct window *w, int64_t now) {
  int rc = window_expire(w, now);
  if (w->started && window_buckets(w) == 0)
    window_free(w);
  return rc;
}

static void zhist_expire(struct mstore *ms, struct mstore_zhist *z, int64_t now) {
  int cap = ms->cfg.zscore_points;
  while (z->n > 0) {
    int oldest = ((z->head - z->n) % cap + cap) % cap;
    if (z->t[oldest] >= now - ms->cfg.retention_ms)
      break;
    z->n--;
  }
}

int mstore_expire(struct mstore *ms, int64_t now) {
  if (now > ms->clock_ms)
    ms->clock_ms = now;
  int rc = CANARY_OK, r;
  uint64_t tick = ++ms->tick; /* roll-ups and expiry change what the windows read */
  for (int i = 0; i < ms->n_series; i++) {
    ms->series[i].changed = tick;
    if ((r = window_trim(&ms->series[i].w, now)) && !rc)
      rc = r;
  }
  for (int c = 0; c < PLAN_MAX_STAGES; c++) {
    struct mstore_diff *d = &ms->diff[c];
    if (!d->used)
      continue;
    d->changed = tick;
    if ((r = window_trim(&d->total, now)) && !rc)
      rc = r;
    for (int k = 0; k < MSTORE_MAX_TOLERANCES; k++)
      if ((r = window_trim(&d->over[k], now)) && !rc)
        rc = r;
    if ((r = window_trim(&d->rel, now)) && !rc)
      rc = r;
  }
  /* histories: old points go; an empty history gives its slot and arrays back */
  for (int i = 0; i < ms->n_z;) {
    struct mstore_zhist *z = &ms->z[i];
    zhist_expire(ms, z, now);
    if (z->n == 0) {
      free(z->t);
      free(z->x);
      ms->z[i] = ms->z[--ms->n_z];
    } else {
      i++;
    }
  }
  if (ms->n_z == 0) {
    free(ms->z);
    free(ms->zscratch);
    ms->z = NULL;
    ms->zscratch = NULL;
  }
  return rc;
}

size_t mstore_memory(const struct mstore *ms) {
  if (!ms->names)
    return 0;
  size_t bytes =
      (size_t)ms->cfg.max_names * sizeof *ms->names +
      (size_t)ms->name_cap * sizeof *ms->name_index +
      (size_t)ms->cfg.max_names * PLAN_MAX_STAGES * VARIANT_COUNT * sizeof *ms->series_of +
      (size_t)ms->series_cap * sizeof *ms->series;
  for (int i = 0; i < ms->n_series; i++) {
    bytes += window_memory(&ms->series[i].w);
    const struct sketch *all = ms->series[i].all;
    if (all)
      bytes += sizeof *all + (size_t)all->cap * sizeof *all->bins;
  }
  for (int c = 0; c < PLAN_MAX_STAGES; c++) {
    const struct mstore_diff *d = &ms->diff[c];
    if (!d->used)
      continue;
    bytes += window_memory(&d->total) + window_memory(&d->rel);
    for (int k = 0; k < MSTORE_MAX_TOLERANCES; k++)
      bytes += window_memory(&d->over[k]);
  }
  bytes += (size_t)ms->lc_cap * sizeof *ms->lc;
  size_t per = (size_t)ms->cfg.zscore_points * (sizeof(int64_t) + sizeof(double));
  bytes += (size_t)ms->n_z * (sizeof *ms->z + per);
  if (ms->zscratch)
    bytes += (size_t)ms->cfg.zscore_points * sizeof(double);
  return bytes;
}
