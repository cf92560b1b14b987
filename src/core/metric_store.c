/* The metric store: series of windows per rollout, fed by metric and diff events, read by the
 * rule language through struct expr_source; and the plan's expressions compiled once. */
#include "core/metric_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const owner_names[] = {
#define XX(name, text) text,
    MSTORE_OWNER_MAP(XX)
#undef XX
};

const char *mstore_owner_name(enum mstore_owner o) {
  return (unsigned)o < MSTORE_OWNER_COUNT ? owner_names[o] : "?";
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
#define FNV_SEED 0xcbf29ce484222325ULL

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

static int name_find(const struct mstore *ms, const char *name) {
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

static int16_t *series_ref(const struct mstore *ms, int name, int cohort, enum variant v) {
  return &ms->series_of[((size_t)name * PLAN_MAX_STAGES + (size_t)cohort) * VARIANT_COUNT + v];
}

static bool cohort_ok(int cohort) { return cohort >= 0 && cohort < PLAN_MAX_STAGES; }

static struct mstore_series *series_get(const struct mstore *ms, int cohort, enum variant v,
                                        const char *name) {
  if (!cohort_ok(cohort) || (unsigned)v >= VARIANT_COUNT || !name)
    return NULL;
  int id = name_find(ms, name);
  if (id < 0)
    return NULL;
  int16_t s = *series_ref(ms, id, cohort, v);
  return s < 0 ? NULL : &ms->series[s];
}

const struct mstore_series *mstore_series_find(const struct mstore *ms, int cohort,
                                               enum variant v, const char *name) {
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
    return canary_why(why, len, CANARY_EINVALID, "a %s has no name", kind);
  if (nl >= PLAN_NAME_MAX)
    return canary_why(why, len, CANARY_EINVALID, "%s name '%.40s...' is longer than %d bytes", kind,
                      it->name, PLAN_NAME_MAX - 1);
  it->id = name_find(ms, it->name);
  enum window_kind known = it->id >= 0 ? ms->names[it->id].kind : it->kind;
  for (size_t j = 0; it->id < 0 && j < i; j++)
    if (prev[j].id < 0 && strcmp(prev[j].name, it->name) == 0) {
      known = prev[j].kind;
      break;
    }
  if (known != it->kind)
    return canary_why(why, len, CANARY_EINVALID, "metric '%s' arrives as a %s but is a %s",
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
    return canary_why(why, len, CANARY_EINVALID, "unknown variant");
  if ((m->n_counters && !m->counters) || (m->n_gauges && !m->gauges) || (m->n_dists && !m->dists))
    return canary_why(why, len, CANARY_EINVALID, "metric arrays missing");
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
      continue; /* the usual case: nothing new to count */
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
    rc = canary_why(why, len, CANARY_EFULL, "more than %d metric names in this rollout",
                    ms->cfg.max_names);
  if (!rc && ms->n_series + new_series > ms->cfg.max_series)
    rc = canary_why(why, len, CANARY_EFULL,
                    "more than %d metric series in this rollout (cohort x variant x metric)",
                    ms->cfg.max_series);
  if (rc)
    return rc;
  for (size_t i = 0; i < m->n_counters; i++) {
    if (!isfinite(m->counters[i].value) || m->counters[i].value < 0)
      return canary_why(why, len, CANARY_EINVALID,
                        "counter '%s' is %g: counters are increments, finite and >= 0",
                        m->counters[i].name, m->counters[i].value);
  }
  for (size_t i = 0; i < m->n_gauges; i++)
    if (!isfinite(m->gauges[i].value))
      return canary_why(why, len, CANARY_EINVALID, "gauge '%s' is not finite", m->gauges[i].name);
  for (size_t i = 0; i < m->n_dists; i++)
    if ((m->dists[i].n && !m->dists[i].values) ||
        !all_finite(m->dists[i].values, m->dists[i].n, true))
      return canary_why(why, len, CANARY_EINVALID,
                        "distribution '%s' has a value that is negative or not finite",
                        m->dists[i].name);
  return CANARY_OK;
}

static enum window_kind item_kind(const struct event_metrics *m, size_t i) {
  return i < m->n_counters ? WINDOW_COUNTER
         : i < m->n_counters + m->n_gauges ? WINDOW_GAUGE
                                            : WINDOW_DISTRIBUTION;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

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
    if (id < 0 && (id = name_find(ms, items[i].name)) < 0) /* new (maybe earlier in this event) */
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
    return canary_why(why, len, CANARY_EINVALID, "diff samples missing");
  for (size_t i = 0; i < dv->n; i++) {
    const struct diff_sample *s = &dv->samples[i];
    if (!isfinite(s->stable) || !isfinite(s->canary))
      return canary_why(why, len, CANARY_EINVALID, "diff sample %zu is not finite", i);
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
    rc = canary_why(why, why_len, CANARY_EINVALID, "the metric store is not initialised");
  else if (!cohort_ok(cohort))
    rc = canary_why(why, why_len, CANARY_EINVALID, "cohort index %d out of range", cohort);
  else if (ev->time_ms < -WINDOW_TIME_MAX || ev->time_ms > WINDOW_TIME_MAX)
    rc = canary_why(why, why_len, CANARY_EINVALID, "event time out of range");
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
    rc = canary_why(why, why_len, CANARY_EINVALID, "a %s event holds no metrics",
                    event_type_name(ev->type));
  }
  if (rc == CANARY_EINVALID || rc == CANARY_EFULL)
    ms->rejected++;
  else if (ev->time_ms > ms->clock_ms)
    ms->clock_ms = ev->time_ms;
  if (rc == CANARY_ENOMEM && why && why_len && !why[0])
    canary_why(why, why_len, rc, "out of memory: some observations were not kept");
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
  size_t bytes = (size_t)ms->cfg.max_names * sizeof *ms->names +
                 (size_t)ms->name_cap * sizeof *ms->name_index +
                 (size_t)ms->cfg.max_names * PLAN_MAX_STAGES * VARIANT_COUNT *
                     sizeof *ms->series_of +
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

/* --- the source ----------------------------------------------------------------------------- */

/* The window of a series of the wanted kind, or NULL (no data, or the name is another kind). */
static struct window *series_window(struct mstore_ctx *c, enum variant v, const char *metric,
                                    enum window_kind kind) {
  struct mstore *ms = c->ms;
  if (!cohort_ok(c->cohort) || (unsigned)v >= VARIANT_COUNT || !metric || !ms->name_index)
    return NULL;
  /* The names an expression reads are the compiled plan's, at fixed addresses: remember where
   * each was found (checked by one strcmp) rather than hashing it at every query. */
  struct mstore_name_hint *h = &ms->name_hints[((uintptr_t)metric >> 3) % MSTORE_NAME_HINTS];
  int id;
  if (h->p == metric && strcmp(ms->names[h->id].name, metric) == 0) {
    id = h->id;
  } else if ((id = name_find(ms, metric)) >= 0) {
    h->p = metric;
    h->id = (int16_t)id;
  } else {
    return NULL;
  }
  int16_t k = *series_ref(ms, id, c->cohort, v);
  struct mstore_series *s = k < 0 ? NULL : &ms->series[k];
  return s && s->w.kind == kind ? &s->w : NULL;
}

static void src_counter_sum(void *ctx, enum variant v, const char *metric, int64_t span,
                            double *out, int64_t *n) {
  struct mstore_ctx *c = ctx;
  struct window *w = series_window(c, v, metric, WINDOW_COUNTER);
  struct window_stats st = {0};
  if (w)
    window_read(w, c->now, span, &st);
  *out = st.sum;
  *n = (int64_t)st.n;
}

enum gauge_op { G_AVG, G_MAX, G_MIN };

static void gauge(struct mstore_ctx *c, enum variant v, const char *metric, int64_t span,
                  enum gauge_op op, double *out, int64_t *n) {
  struct window *w = series_window(c, v, metric, WINDOW_GAUGE);
  struct window_stats st = {0};
  if (w)
    window_read(w, c->now, span, &st);
  *n = (int64_t)st.n;
  *out = !st.n ? NAN : op == G_AVG ? st.sum / (double)st.n : op == G_MAX ? st.max : st.min;
}

static void src_gauge_avg(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                          int64_t *n) {
  gauge(ctx, v, m, span, G_AVG, out, n);
}
static void src_gauge_max(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                          int64_t *n) {
  gauge(ctx, v, m, span, G_MAX, out, n);
}
static void src_gauge_min(void *ctx, enum variant v, const char *m, int64_t span, double *out,
                          int64_t *n) {
  gauge(ctx, v, m, span, G_MIN, out, n);
}

static void src_quantile(void *ctx, enum variant v, const char *metric, double q, int64_t span,
                         double *out, int64_t *n) {
  struct mstore_ctx *c = ctx;
  struct window *w = series_window(c, v, metric, WINDOW_DISTRIBUTION);
  *out = NAN;
  *n = 0;
  uint64_t count;
  if (!w || window_quantile_n(w, c->now, span, q, out, &count) != CANARY_OK)
    return; /* no values; ENOMEM too: insufficient rather than a wrong value */
  *n = (int64_t)count;
}

/* The exact counter of tolerance tol, or -1. */
static int tolerance_slot(const struct mstore *ms, double tol) {
  for (int k = 0; k < ms->cfg.n_tolerances; k++)
    if (ms->cfg.tolerances[k] == tol)
      return k;
  return -1;
}

static void src_diff_ratio(void *ctx, double tol, int64_t span, double *out, int64_t *n) {
  struct mstore_ctx *c = ctx;
  struct mstore_diff *d = &c->ms->diff[c->cohort];
  *out = NAN;
  *n = 0;
  if (!d->used || isnan(tol))
    return;
  struct window_stats st;
  window_read(&d->total, c->now, span, &st);
  double total = st.sum;
  if (total <= 0)
    return;
  double above;
  int k = tolerance_slot(c->ms, tol);
  if (k >= 0) {
    window_read(&d->over[k], c->now, span, &st);
    above = st.sum;
  } else {
    uint64_t a = 0, finite = 0;
    if (window_count_above(&d->rel, c->now, span, tol, &a, &finite))
      return;
    above = (double)a + (total - (double)finite); /* the infinite ones exceed any tolerance */
  }
  *out = above / total;
  *n = (int64_t)total;
}

static struct mstore_zhist *zhist_get(struct mstore *ms, uint64_t key, int cohort,
                                      enum variant v) {
  for (int i = 0; i < ms->n_z; i++)
    if (ms->z[i].key == key && ms->z[i].cohort == cohort && ms->z[i].variant == v)
      return &ms->z[i];
  if (ms->n_z >= ms->cfg.max_zscores)
    return NULL;
  if (!ms->z) {
    ms->z = calloc((size_t)ms->cfg.max_zscores, sizeof *ms->z);
    ms->zscratch = malloc((size_t)ms->cfg.zscore_points * sizeof *ms->zscratch);
    if (!ms->z || !ms->zscratch) {
      free(ms->z);
      free(ms->zscratch);
      ms->z = NULL;
      ms->zscratch = NULL;
      return NULL;
    }
  }
  struct mstore_zhist *z = &ms->z[ms->n_z];
  *z = (struct mstore_zhist){.key = key, .cohort = cohort, .variant = v};
  z->t = malloc((size_t)ms->cfg.zscore_points * sizeof *z->t);
  z->x = malloc((size_t)ms->cfg.zscore_points * sizeof *z->x);
  if (!z->t || !z->x) {
    free(z->t);
    free(z->x);
    return NULL;
  }
  ms->n_z++;
  return z;
}

static void src_zscore(void *ctx, enum variant v, const struct expr *e, int node, double current,
                       int64_t history_ms, double *out, int64_t *n) {
  (void)e;
  struct mstore_ctx *c = ctx;
  struct mstore *ms = c->ms;
  *out = NAN;
  *n = 0;
  uint64_t key = fnv1a(c->key, &node, sizeof node);
  struct mstore_zhist *z = zhist_get(ms, key, c->cohort, v);
  if (!z)
    return; /* too many histories (or no memory): insufficient, not a spike */
  int cap = ms->cfg.zscore_points;
  /* the points of [now - h, now): strictly older than now, so a second evaluation at the same
   * time does not compare the value with itself */
  size_t k = 0;
  int64_t newest = INT64_MIN;
  for (int i = 0; i < z->n; i++) {
    int slot = ((z->head - 1 - i) % cap + cap) % cap;
    if (z->t[slot] > newest)
      newest = z->t[slot];
    if (z->t[slot] >= c->now - history_ms && z->t[slot] < c->now)
      ms->zscratch[k++] = z->x[slot];
  }
  if (k && expr_robust_z(ms->zscratch, k, current, ms->cfg.zscore_min_scale, out))
    *n = (int64_t)k;
  /* record at most one point per step, at the cadence of evaluations */
  if (!z->n || c->now - newest >= ms->cfg.zscore_step_ms) {
    z->t[z->head] = c->now;
    z->x[z->head] = current;
    z->head = (z->head + 1) % cap;
    if (z->n < cap)
      z->n++;
  }
}

static enum expr_truth src_slos_met(void *ctx, enum variant v) {
  struct mstore_ctx *c = ctx;
  const struct mstore_plan *mp = c->mp;
  if (!mp || mp->n_slos == 0)
    return EXPR_INSUFFICIENT;
  struct expr_source src = mstore_source(c->ms);
  uint64_t key = c->key;
  enum expr_truth t = EXPR_TRUE;
  for (int i = 0; i < mp->n_slos; i++) {
    const struct mstore_expr *x = &mp->x[mp->slo_first + i];
    struct expr_result r;
    c->key = x->key;
    if (expr_eval(&x->e, &src, c, v, &r))
      r.truth = EXPR_INSUFFICIENT;
    t = expr_truth_and(t, r.truth);
  }
  c->key = key;
  return t;
}

struct expr_source mstore_source(const struct mstore *ms) {
  return (struct expr_source){
      .counter_sum = src_counter_sum,
      .gauge_avg = src_gauge_avg,
      .gauge_max = src_gauge_max,
      .gauge_min = src_gauge_min,
      .quantile = src_quantile,
      .diff_ratio = src_diff_ratio,
      .zscore = src_zscore,
      .slos_met = src_slos_met,
      .evidence = mstore_evidence,
      .limits = &ms->cfg.limits,
  };
}

/* --- the plan -------------------------------------------------------------------------------- */

/* Walks every metric expression of the plan: fn(plan, owner, stage, index, k, text, for, name). */
typedef int (*each_fn)(void *arg, enum mstore_owner o, int stage, int index, int k,
                       const char *text, int64_t window_ms, int64_t for_ms, const char *name);

static int each_expr(const struct plan *p, each_fn fn, void *arg) {
  int rc;
  for (int i = 0; i < p->n_rules; i++)
    for (int k = 0; k < p->rules[i].n_exprs; k++)
      if ((rc = fn(arg, MSTORE_RULE, -1, i, k, p->rules[i].exprs[k], 0, p->rules[i].for_ms,
                   p->rules[i].name)))
        return rc;
  for (int i = 0; i < p->n_alerts; i++)
    for (int k = 0; k < p->alerts[i].n_exprs; k++)
      if ((rc = fn(arg, MSTORE_ALERT, -1, i, k, p->alerts[i].exprs[k], 0, p->alerts[i].for_ms,
                   p->alerts[i].name)))
        return rc;
  for (int s = 0; s < p->n_stages; s++)
    for (int g = 0; g < 2; g++) {
      const struct criterion *cs = g ? p->stages[s].exit : p->stages[s].entry;
      int n = g ? p->stages[s].n_exit : p->stages[s].n_entry;
      for (int i = 0; i < n; i++)
        if (cs[i].check == CHECK_METRIC &&
            (rc = fn(arg, g ? MSTORE_EXIT : MSTORE_ENTRY, s, i, 0, cs[i].expr, cs[i].window_ms,
                     cs[i].for_ms, cs[i].name)))
          return rc;
    }
  for (int i = 0; i < p->n_slos; i++)
    if ((rc = fn(arg, MSTORE_SLO, -1, i, 0, p->slos[i].expr, 0, 0, p->slos[i].name)))
      return rc;
  return CANARY_OK;
}

static int count_one(void *arg, enum mstore_owner o, int stage, int index, int k,
                     const char *text, int64_t window_ms, int64_t for_ms, const char *name) {
  (*(int *)arg)++;
  return CANARY_OK;
}

struct compile {
  struct mstore_plan *mp;
  const struct plan *plan;
  char *why;
  size_t why_len;
};

/* "halt_rules error_rate" / "friendly_gp exit canary_diff" / "slos availability" (+ #k). */
static void owner_label(const struct plan *p, enum mstore_owner o, int stage, int k, int n_exprs,
                        const char *name, char *buf, size_t len) {
  if (o == MSTORE_ENTRY || o == MSTORE_EXIT)
    snprintf(buf, len, "%s %s %s", p->stages[stage].name, mstore_owner_name(o), name);
  else if (n_exprs > 1)
    snprintf(buf, len, "%s %s expr %d", mstore_owner_name(o), name, k + 1);
  else
    snprintf(buf, len, "%s %s", mstore_owner_name(o), name);
}

static bool same_num(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* A quantile form's line: counted at ingest (struct mstore_linecount). */
static void add_line(struct mstore_plan *mp, const struct expr_evq *q) {
  for (int k = 0; k < mp->n_lines; k++) {
    const struct mstore_line *l = &mp->lines[k];
    if (!strcmp(l->dist, q->dist) && l->q == q->q && same_num(l->limit, q->limit) &&
        same_num(l->k, q->k))
      return;
  }
  if (mp->n_lines == MSTORE_MAX_LINES)
    return; /* more lines than counted: those forms read no data (insufficient) */
  struct mstore_line *l = &mp->lines[mp->n_lines++];
  snprintf(l->dist, sizeof l->dist, "%s", q->dist);
  l->q = q->q;
  l->limit = q->versus_baseline ? NAN : q->limit;
  l->k = q->versus_baseline ? q->k : NAN;
}

int mstore_line_index(const struct mstore *ms, const struct expr_evq *q) {
  double limit = q->versus_baseline ? NAN : q->limit, k = q->versus_baseline ? q->k : NAN;
  for (int i = 0; i < ms->cfg.n_lines; i++) {
    const struct mstore_line *l = &ms->cfg.lines[i];
    if (!strcmp(l->dist, q->dist) && l->q == q->q && same_num(l->limit, limit) &&
        same_num(l->k, k))
      return i;
  }
  return -1;
}

/* The ratios of counters the plan's evidence tests: their numerators keep dispersion sums. */
static void add_pairs(struct mstore_plan *mp, const struct expr *e) {
  struct expr_evq q;
  for (int i = 0; i < e->n_nodes; i++) {
    if (!expr_evidence_form(e, i, &q))
      continue;
    if (q.quantile) {
      add_line(mp, &q);
      continue;
    }
    int k = 0;
    while (k < mp->n_pairs && (strcmp(mp->pairs[k].num, q.num) || strcmp(mp->pairs[k].den, q.den)))
      k++;
    if (k == mp->n_pairs && k < MSTORE_MAX_PAIRS) {
      snprintf(mp->pairs[k].num, sizeof mp->pairs[k].num, "%s", q.num);
      snprintf(mp->pairs[k].den, sizeof mp->pairs[k].den, "%s", q.den);
      mp->n_pairs++;
    }
  }
}

static int add_tolerance(struct mstore_plan *mp, double tol) {
  for (int i = 0; i < mp->n_tolerances; i++)
    if (mp->tolerances[i] == tol)
      return CANARY_OK;
  if (mp->n_tolerances == MSTORE_MAX_TOLERANCES)
    return CANARY_EFULL;
  mp->tolerances[mp->n_tolerances++] = tol;
  return CANARY_OK;
}

static int compile_one(void *arg, enum mstore_owner o, int stage, int index, int k,
                       const char *text, int64_t window_ms, int64_t for_ms, const char *name) {
  struct compile *c = arg;
  struct mstore_plan *mp = c->mp;
  struct mstore_expr *x = &mp->x[mp->n];
  char label[2 * PLAN_NAME_MAX + 32];
  int n_exprs = o == MSTORE_RULE ? c->plan->rules[index].n_exprs
                : o == MSTORE_ALERT ? c->plan->alerts[index].n_exprs
                                    : 1;
  owner_label(c->plan, o, stage, k, n_exprs, name, label, sizeof label);
  struct expr_error err;
  int rc = expr_parse(text, &x->e, &err);
  if (!rc)
    rc = expr_bind(&x->e, c->plan->params, c->plan->n_params,
                   expr_default_window(window_ms, for_ms), &err);
  if (rc) {
    char caret[2 * PLAN_EXPR_MAX + 200];
    expr_error_render(text, &err, caret, sizeof caret);
    return canary_why(c->why, c->why_len, rc, "%s:\n%s", label, caret);
  }
  if (!expr_is_condition(&x->e))
    return canary_why(c->why, c->why_len, CANARY_EINVALID,
                      "%s: '%s' is a number, not a condition (compare it, as in x > 1)", label,
                      text);
  if (expr_uses(&x->e, EXPR_SLOS_MET) && o == MSTORE_SLO)
    return canary_why(c->why, c->why_len, CANARY_EINVALID, "%s: an SLO cannot use slos_met()",
                      label);
  if (expr_uses(&x->e, EXPR_SLOS_MET) && c->plan->n_slos == 0)
    return canary_why(c->why, c->why_len, CANARY_EINVALID,
                      "%s: slos_met() but the plan defines no slos", label);
  for (int i = 0; i < x->e.n_nodes; i++) {
    const struct expr_node *nd = &x->e.nodes[i];
    if (nd->kind == EXPR_DIFF_RATIO && nd->a >= 0 &&
        (x->e.nodes[nd->a].kind == EXPR_NUM || x->e.nodes[nd->a].kind == EXPR_PARAM) &&
        add_tolerance(mp, x->e.nodes[nd->a].num))
      return canary_why(c->why, c->why_len, CANARY_EINVALID,
                        "%s: more than %d distinct canary_diff_ratio tolerances", label,
                        MSTORE_MAX_TOLERANCES);
  }
  int64_t longest = expr_longest_window(&x->e);
  if (longest > mp->longest_ms)
    mp->longest_ms = longest;
  x->longest_ms = longest;
  x->owner = o;
  x->stage = stage;
  x->index = index;
  x->k = k;
  x->for_ms = for_ms;
  snprintf(x->name, sizeof x->name, "%s", name);
  /* the zscore key: where the expression is and what it says, so a restart with the same plan
   * finds its history and an edited expression starts a new one */
  uint64_t h = fnv1a(FNV_SEED, label, strlen(label));
  h = fnv1a(h, text, strlen(text));
  x->key = h;
  if (o == MSTORE_SLO && mp->n_slos++ == 0)
    mp->slo_first = mp->n;
  if (o == MSTORE_RULE && index < PLAN_MAX_RULES && mp->rule_count[index]++ == 0)
    mp->rule_first[index] = mp->n;
  if ((o == MSTORE_ENTRY || o == MSTORE_EXIT) && stage >= 0 && stage < PLAN_MAX_STAGES &&
      index >= 0 && index < PLAN_MAX_CRITERIA)
    mp->gate_first[stage][o == MSTORE_EXIT][index] = (int16_t)(mp->n + 1);
  mp->n++;
  return CANARY_OK;
}

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/*
 * Add what node i of e reads, evaluated for variant v, to x's memo inputs: metric names with the
 * variants they are read for (baseline() and error_excess_p() switch variant, as expr_eval
 * does), the diff windows, the windows' common divisor. False: it reads something the memo
 * cannot watch (a zscore history, too many names).
 */
static bool add_reads(struct mstore_expr *x, const struct mstore_plan *mp, const struct expr *e,
                      int i, enum variant v) {
  if (i < 0)
    return true;
  const struct expr_node *nd = &e->nodes[i];
  switch (nd->kind) {
  case EXPR_ZSCORE:
    return false;
  case EXPR_BASELINE:
    return add_reads(x, mp, e, nd->a, VARIANT_BASELINE);
  case EXPR_ERROR_EXCESS:
    return add_reads(x, mp, e, nd->a, VARIANT_CANARY) && add_reads(x, mp, e, nd->b, VARIANT_CANARY) &&
           add_reads(x, mp, e, nd->a, VARIANT_BASELINE) &&
           add_reads(x, mp, e, nd->b, VARIANT_BASELINE);
  case EXPR_SLOS_MET:
    for (int k = 0; k < mp->n_slos; k++) {
      const struct expr *slo = &mp->x[mp->slo_first + k].e;
      if (!add_reads(x, mp, slo, slo->root, v))
        return false;
    }
    return true;
  case EXPR_DIFF_RATIO:
    x->reads_diff = true;
    break;
  default:
    break;
  }
  if (nd->window_ms > 0)
    x->window_gcd_ms = gcd64(x->window_gcd_ms, nd->window_ms);
  const char *m = nd->metric >= 0 ? expr_metric(e, i) : NULL;
  if (m) {
    int k = 0;
    while (k < x->n_reads && strcmp(x->reads[k], m) != 0)
      k++;
    if (k == MSTORE_MEMO_READS)
      return false;
    if (k == x->n_reads)
      x->reads[x->n_reads++] = m;
    x->read_variants[k] |= (uint8_t)(1u << v);
  }
  return add_reads(x, mp, e, nd->a, v) && add_reads(x, mp, e, nd->b, v);
}

/* How expression x decides: on evidence, or on the estimate as written. */
static bool decides_on_evidence(const struct plan *p, const struct mstore_expr *x) {
  enum plan_decide d = PLAN_DECIDE_DEFAULT;
  if (x->owner == MSTORE_RULE)
    d = p->rules[x->index].decide;
  else if (x->owner == MSTORE_ALERT)
    d = p->alerts[x->index].decide;
  if (d == PLAN_DECIDE_DEFAULT)
    d = p->decide;
  return d == PLAN_DECIDE_EVIDENCE;
}

static bool same_name(const char *a, const char *b) {
  return a == b || (a && b && !strcmp(a, b));
}

static bool same_number(double a, double b) {
  return a == b || (isnan(a) && isnan(b));
}

/* Two comparisons that are one test: the same counts against the same limit, the same way
 * (their e-values are the same function of the same data, whatever rule makes them). */
static bool same_test(const struct expr_evq *a, const struct expr_evq *b) {
  return a->above == b->above && a->quantile == b->quantile &&
         a->versus_baseline == b->versus_baseline && same_name(a->num, b->num) &&
         same_name(a->den, b->den) && same_name(a->dist, b->dist) && same_number(a->q, b->q) &&
         same_number(a->limit, b->limit) && same_number(a->k, b->k);
}

static double rule_weight(const struct plan *p, const struct mstore_expr *x) {
  const struct rule *r = x->owner == MSTORE_RULE ? &p->rules[x->index] : &p->alerts[x->index];
  return r->budget_weight > 0 ? r->budget_weight : 1;
}

/* Adds expression i's comparisons to the budget's distinct tests. One that does not fit is
 * paid for again (a smaller share for everyone: still within the budget). */
static void add_tests(struct mstore_evidence_plan *ev, const struct mstore_plan *mp, int i,
                      double w) {
  const struct expr *e = &mp->x[i].e;
  struct expr_evq q;
  for (int n = 0; n < e->n_nodes; n++) {
    if (!expr_evidence_form(e, n, &q))
      continue;
    int k = 0;
    while (k < ev->n_distinct && !same_test(&ev->tests[k].q, &q))
      k++;
    if (k < ev->n_distinct) {
      if (w > ev->tests[k].weight)
        ev->units += w - ev->tests[k].weight, ev->tests[k].weight = w;
      continue;
    }
    if (k < MSTORE_MAX_TESTS)
      ev->tests[ev->n_distinct++] = (struct mstore_test){.q = q, .weight = w, .x = i};
    ev->units += w;
  }
}

int mstore_test_index(const struct mstore_plan *mp, const struct expr_evq *q) {
  for (int k = 0; k < mp->ev.n_distinct; k++)
    if (same_test(&mp->ev.tests[k].q, q))
      return k;
  return -1;
}

/*
 * The evidence's levels and weights. The false-halt budget is split across the distinct
 * comparisons over counts that the halt rules and the alerts make, and the split check, in
 * proportion to their rules' budget_weight (1 unless the plan says): a union bound — a healthy
 * release is halted, or on-call paged, by any of them with probability at most the budget. A
 * comparison made by several rules is one event and paid for once. Each test's e-value mixes
 * start points: half the weight on the release's start (evidence carried across every stage),
 * a quarter over the later stages' starts, a quarter over the hours of the stages (a regression
 * that begins mid-stage is tested from the next hour on).
 */
static void plan_evidence(struct mstore_plan *mp, const struct plan *p) {
  struct mstore_evidence_plan *ev = &mp->ev;
  for (int i = 0; i < mp->n; i++) {
    struct mstore_expr *x = &mp->x[i];
    if (!decides_on_evidence(p, x))
      continue;
    x->e.alpha = 1; /* a placeholder, so expr_evidence_count sees the forms */
    x->n_evidence = expr_evidence_count(&x->e);
    if (!x->n_evidence) {
      x->e.alpha = 0;
      continue;
    }
    add_pairs(mp, &x->e);
    ev->on = true;
    if (x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT)
      add_tests(ev, mp, i, rule_weight(p, x));
  }
  bool split = p->srm_enabled && p->decide == PLAN_DECIDE_EVIDENCE;
  ev->on |= split;
  ev->units += split;
  ev->n_tests = ev->n_distinct + split;
  double budget = p->false_halt_budget > 0 ? p->false_halt_budget : 0.01;
  ev->rule_alpha = ev->units > 0 ? budget / ev->units : budget;
  ev->gate_alpha = p->gate_alpha > 0 ? p->gate_alpha : 0.01;
  for (int i = 0; i < mp->n; i++) {
    struct mstore_expr *x = &mp->x[i];
    if (x->e.alpha > 0)
      x->e.alpha = x->owner == MSTORE_RULE || x->owner == MSTORE_ALERT
                       ? ev->rule_alpha * rule_weight(p, x)
                       : ev->gate_alpha;
  }
  for (int k = 0; k < ev->n_distinct; k++)
    ev->tests[k].q.alpha = ev->rule_alpha * ev->tests[k].weight;
  int slices = 0;
  for (int s = 0; s < p->n_stages; s++) {
    const struct stage *st = &p->stages[s];
    bool last = s == p->n_stages - 1;
    /* (the last stage is exposed during the watch after GA: a change there begins mid-watch) */
    int64_t span = st->max_duration_ms ? st->max_duration_ms : last ? p->watch_ms : 72 * 3600000LL;
    ev->slices[s] = span ? (int)((span + MSTORE_SLICE_MS - 1) / MSTORE_SLICE_MS) + 1 : 0;
    slices += ev->slices[s];
    ev->margin[s] = st->traffic_percent >= p->margin_from_percent && p->margin_from_percent > 0
                        ? p->excess_margin
                        : 0;
    ev->share[s] = p->srm_control ? 0.5 : st->traffic_percent / 100.0;
  }
  ev->split_margin = p->srm_margin;
  ev->last_cohort = p->n_stages - 1;
  double w_release = 0.5, w_stages = 0.25, w_slices = 0.25;
  if (p->n_stages < 2)
    w_release += w_stages, w_stages = 0;
  if (!slices)
    w_release += w_slices, w_slices = 0;
  ev->log_w_release = log(w_release);
  ev->log_w_stage = w_stages > 0 ? log(w_stages / (p->n_stages - 1)) : -INFINITY;
  ev->log_w_slice = w_slices > 0 ? log(w_slices / slices) : -INFINITY;
  /* slos_met() reads the SLOs' evidence: its memo must watch what theirs would (after the
   * budget was counted, which is the halt rules' own comparisons) */
  int slo_evidence = 0;
  for (int i = 0; i < mp->n_slos; i++)
    slo_evidence += mp->x[mp->slo_first + i].n_evidence;
  for (int i = 0; slo_evidence && i < mp->n; i++)
    if (expr_uses(&mp->x[i].e, EXPR_SLOS_MET))
      mp->x[i].n_evidence += slo_evidence;
  /* the evidence counts from the release's start: a restarted worker replays that much (every
   * stage's maximum; a stage held longer is counted from the replay's start after a restart) */
  int64_t whole = ev->on ? p->watch_ms : 0; /* and the watch after GA */
  for (int s = 0; ev->on && s < p->n_stages; s++)
    whole += p->stages[s].max_duration_ms;
  if (whole > mp->replay_ms)
    mp->replay_ms = whole;
}

/* The memo inputs of every expression (after all are compiled: slos_met() reads the SLOs). */
static void plan_reads(struct mstore_plan *mp) {
  for (int i = 0; i < mp->n; i++) {
    struct mstore_expr *x = &mp->x[i];
    x->memo_ok = add_reads(x, mp, &x->e, x->e.root, VARIANT_CANARY) && x->window_gcd_ms > 0;
  }
}

int mstore_plan_init(struct mstore_plan *mp, const struct plan *plan, char *why,
                     size_t why_len) {
  memset(mp, 0, sizeof *mp);
  int n = 0;
  (void)each_expr(plan, count_one, &n);
  if (n) {
    mp->x = calloc((size_t)n, sizeof *mp->x);
    if (!mp->x)
      return canary_why(why, why_len, CANARY_ENOMEM, "out of memory compiling the plan");
  }
  struct compile c = {mp, plan, why, why_len};
  int rc = each_expr(plan, compile_one, &c);
  if (rc) {
    mstore_plan_free(mp);
  } else {
    mp->replay_ms = mp->longest_ms;
    plan_evidence(mp, plan);
    plan_reads(mp);
  }
  return rc;
}

void mstore_plan_free(struct mstore_plan *mp) {
  free(mp->x);
  memset(mp, 0, sizeof *mp);
}

int mstore_plan_find(const struct mstore_plan *mp, enum mstore_owner owner, int stage, int index,
                     int *first) {
  int n = 0;
  *first = -1;
  if (owner == MSTORE_RULE && index >= 0 && index < PLAN_MAX_RULES) {
    if (mp->rule_count[index])
      *first = mp->rule_first[index];
    return mp->rule_count[index];
  }
  if ((owner == MSTORE_ENTRY || owner == MSTORE_EXIT) && stage >= 0 && stage < PLAN_MAX_STAGES &&
      index >= 0 && index < PLAN_MAX_CRITERIA) { /* a criterion has one expression */
    int k = mp->gate_first[stage][owner == MSTORE_EXIT][index];
    *first = k - 1;
    return k > 0;
  }
  for (int i = 0; i < mp->n; i++) {
    const struct mstore_expr *x = &mp->x[i];
    if (x->owner != owner || x->index != index ||
        ((owner == MSTORE_ENTRY || owner == MSTORE_EXIT) && x->stage != stage))
      continue;
    if (!n++)
      *first = i;
  }
  return n;
}

void mstore_config_for_plan(struct mstore_config *cfg, const struct mstore_plan *mp) {
  cfg->n_tolerances = mp->n_tolerances;
  memcpy(cfg->tolerances, mp->tolerances, sizeof cfg->tolerances);
  cfg->n_pairs = mp->n_pairs;
  memcpy(cfg->pairs, mp->pairs, sizeof cfg->pairs);
  cfg->n_lines = mp->n_lines;
  memcpy(cfg->lines, mp->lines, sizeof cfg->lines);
  if (mp->longest_ms + cfg->bucket_ms > cfg->retention_ms)
    cfg->retention_ms = mp->longest_ms + cfg->bucket_ms;
  int64_t points = mp->longest_ms / cfg->zscore_step_ms + 1;
  if (points > cfg->zscore_points && points <= 1 << 20)
    cfg->zscore_points = (int)points;
}

/* --- evaluation ------------------------------------------------------------------------------ */

/* lazy: the truth and the values a reading shows are wanted, not every operand's evidence */
/* bounds: the evidence's confidence bounds are wanted (a bisection each: only for the text) */
static int eval_expr(struct mstore *ms, const struct mstore_plan *mp, const struct mstore_expr *x,
                     int cohort, int64_t now, enum variant v, bool lazy, bool bounds,
                     struct expr_result *out) {
  struct mstore_ctx ctx = {.ms = ms, .mp = mp, .cohort = cohort, .now = now, .key = x->key,
                           .explain = bounds};
  struct expr_source src = mstore_source(ms);
  src.short_circuit = lazy;
  if (!cohort_ok(cohort)) {
    memset(out, 0, sizeof *out);
    out->truth = EXPR_INSUFFICIENT;
    out->value = NAN;
    out->why_node = -1;
    return CANARY_EINVALID;
  }
  return expr_eval(&x->e, &src, &ctx, v, out);
}

int mstore_eval_expr(struct mstore *ms, const struct mstore_plan *mp, const struct mstore_expr *x,
                     int cohort, int64_t now, enum variant v, struct expr_result *out) {
  return eval_expr(ms, mp, x, cohort, now, v, false, true, out);
}

/* The plain evidence of one evaluation: the root comparison (else the first), the weakest
 * canary query. The explanation is left to the caller (finding_explain): formatting numbers
 * costs more than the evaluation itself, and only the deciding finding is read. */
static void finding_fill(const struct mstore_expr *x, const struct expr_result *r,
                         struct mstore_finding *f) {
  f->truth = r->truth;
  f->why = r->why;
  f->canary = f->baseline = f->threshold = NAN;
  f->window_ms = x->longest_ms;
  const struct expr_compare *cmp = r->n_compares ? &r->compares[0] : NULL;
  for (int i = 0; i < r->n_compares; i++)
    if (r->compares[i].node == x->e.root)
      cmp = &r->compares[i];
  f->evidence = cmp && cmp->evidence;
  f->log_e = f->log_needed = NAN;
  if (f->evidence) {
    f->log_e = cmp->log_e;
    f->log_needed = cmp->log_needed;
    f->ev = cmp->ev;
  }
  if (cmp) {
    f->canary = cmp->lhs;
    f->baseline = cmp->baseline;
    f->threshold = cmp->rhs;
  } else if (r->truth != EXPR_INSUFFICIENT) {
    f->canary = r->value; /* slos_met(): 1 or 0 */
  }
  f->n = f->min_n = 0;
  bool any = false;
  for (int i = 0; i < r->n_measures; i++) {
    const struct expr_measure *m = &r->measures[i];
    if (m->query == EXPR_Q_SLOS)
      continue;
    /* the weakest: the first insufficient one, else the one with the fewest observations */
    bool weaker = !any || (!m->sufficient && f->n >= f->min_n) ||
                  (m->sufficient == (f->n >= f->min_n) && m->n < f->n);
    if (weaker) {
      f->n = m->n;
      f->min_n = m->min_n;
      any = true;
    }
  }
}

/* The evidence of a result evaluated again for its text: the bound it computed that time. */
static void finding_evidence(const struct mstore_expr *x, const struct expr_result *r,
                             struct mstore_finding *f) {
  for (int i = 0; i < r->n_compares; i++)
    if (r->compares[i].evidence && (r->compares[i].node == x->e.root || i == 0))
      f->ev = r->compares[i].ev;
}

/* --- the memo (struct mstore_memo) ---------------------------------------------------------- */


/* Whether a series of (name, cohort) of the variants in mask changed after tick. */
static bool series_since(const struct mstore *ms, int name, int cohort, unsigned mask,
                         uint64_t tick) {
  for (int v = 0; v < VARIANT_COUNT; v++) {
    if (!(mask & (1u << v)))
      continue;
    int16_t s = *series_ref(ms, name, cohort, (enum variant)v);
    if (s >= 0 && ms->series[s].changed > tick)
      return true;
  }
  return false;
}

/* The memo of expression i when it is still what an evaluation at (cohort, now) would give. */
static const struct mstore_memo *memo_get(struct mstore *ms, const struct mstore_plan *mp, int i,
                                          int cohort, int64_t now) {
  const struct mstore_expr *x = &mp->x[i];
  if (!ms->memo || i >= ms->n_memo || !x->memo_ok || x->window_gcd_ms % ms->cfg.bucket_ms)
    return NULL;
  struct mstore_memo *m = &ms->memo[i];
  if (!m->tick || m->cohort != cohort || m->bucket != floor_div(now, ms->cfg.bucket_ms))
    return NULL;
  if (x->reads_diff && ms->diff[cohort].changed > m->tick)
    return NULL;
  if (m->n_names != ms->n_names) { /* names came since: resolve again (new ones are newer) */
    for (int k = 0; k < x->n_reads; k++)
      m->ids[k] = (int16_t)name_find(ms, x->reads[k]);
    m->n_names = ms->n_names;
  }
  /* the evidence also counts the cohorts before this one (a late report still lands there),
   * and the baseline's reports tell the dispersion of the canary's counts */
  for (int c = x->n_evidence ? 0 : cohort; c <= cohort; c++)
    for (int k = 0; k < x->n_reads; k++)
      if (m->ids[k] >= 0 &&
          series_since(ms, m->ids[k], c, x->n_evidence ? ~0u : x->read_variants[k], m->tick))
        return NULL;
  ms->memo_hits++;
  return m;
}

static void memo_put(struct mstore *ms, const struct mstore_plan *mp, int i, int cohort,
                     int64_t now, const struct mstore_finding *f) {
  const struct mstore_expr *x = &mp->x[i];
  if (!ms->cfg.memo || !x->memo_ok || x->window_gcd_ms % ms->cfg.bucket_ms)
    return;
  if (!ms->memo) {
    ms->memo = calloc((size_t)mp->n, sizeof *ms->memo);
    ms->n_memo = ms->memo ? mp->n : 0;
  }
  if (i >= ms->n_memo)
    return;
  struct mstore_memo *m = &ms->memo[i];
  if (!m->tick || m->n_names != ms->n_names) { /* else memo_get resolved them: names stay */
    for (int k = 0; k < x->n_reads; k++)
      m->ids[k] = (int16_t)name_find(ms, x->reads[k]);
    m->n_names = ms->n_names;
  }
  m->tick = ++ms->tick; /* every change from here on is newer */
  m->bucket = floor_div(now, ms->cfg.bucket_ms);
  m->cohort = cohort;
  m->truth = f->truth;
  m->why = f->why;
  m->canary = f->canary;
  m->baseline = f->baseline;
  m->threshold = f->threshold;
  m->n = f->n;
  m->min_n = f->min_n;
  m->evidence = f->evidence;
  m->log_e = f->log_e;
  m->log_needed = f->log_needed;
  if (f->evidence)
    m->ev = f->ev;
}

static int eval_rule(struct mstore *ms, const struct mstore_plan *mp, enum mstore_owner owner,
                     int stage, int index, int cohort, int64_t now, struct expr_for *st,
                     struct mstore_verdict *out, bool explain) {
  /* Not memset: the findings are 2 KiB of explanation buffers, and each one used is filled
   * below (finding_fill, and an empty explanation unless it is written). */
  out->n = 0;
  out->fired = out->holds = false;
  out->truth = EXPR_INSUFFICIENT;
  out->which = -1;
  out->deadline = INT64_MAX;
  int first;
  int n = mstore_plan_find(mp, owner, stage, index, &first);
  if (!n)
    return CANARY_ENOTFOUND;
  if (n > PLAN_MAX_EXPRS)
    return CANARY_EINVALID;
  out->n = n;
  int rc = CANARY_OK;
  struct expr_result r[PLAN_MAX_EXPRS];
  bool have_r[PLAN_MAX_EXPRS];
  for (int i = 0; i < n; i++) {
    const struct mstore_expr *x = &mp->x[first + i];
    struct mstore_finding *f = &out->f[i];
    const struct mstore_memo *m = memo_get(ms, mp, first + i, cohort, now);
    have_r[i] = !m;
    if (m) {
      f->truth = m->truth;
      f->why = m->why;
      f->canary = m->canary;
      f->baseline = m->baseline;
      f->threshold = m->threshold;
      f->window_ms = x->longest_ms;
      f->n = m->n;
      f->min_n = m->min_n;
      f->evidence = m->evidence;
      f->log_e = m->log_e;
      f->log_needed = m->log_needed;
      if (m->evidence)
        f->ev = m->ev;
    } else {
      /* Without the text (a gate asked whether it passes, a criterion's reading), `and` and
       * `or` stop at an operand that decides them: a held gate's small-cohort test need not
       * compute its Clopper-Pearson bound once the error rate alone fails it (16% of the
       * engine replaying a long backlog). What skipped an operand is not memoized, so an
       * explained evaluation never gets its shorter evidence. */
      int e = eval_expr(ms, mp, x, cohort, now, VARIANT_CANARY, !explain, false, &r[i]);
      if (e && !rc)
        rc = e;
      finding_fill(x, &r[i], f);
      if (!e && !r[i].skipped)
        memo_put(ms, mp, first + i, cohort, now, f);
    }
    f->explain[0] = '\0';
    f->fired = expr_for_step(&st[i], now, f->truth, x->for_ms);
    f->state = st[i].state;
    out->truth = i ? expr_truth_or(out->truth, f->truth) : f->truth;
    int64_t at;
    if (expr_for_deadline(&st[i], x->for_ms, &at) && at < out->deadline)
      out->deadline = at;
    if (f->fired && !out->fired) {
      out->fired = true;
      out->which = i;
    }
    if (f->state == EXPR_FOR_FIRING && !out->holds) {
      out->holds = true;
      if (!out->fired)
        out->which = i;
    }
  }
  for (int i = 0; i < n && out->which < 0; i++)
    if (out->f[i].truth == out->truth)
      out->which = i; /* the first expression with the rule's truth decided it */
  /* What callers show: a criterion's result in its gate's evidence, a rule's when it acts. A
   * rule that does not fire is evaluated up to four times a second and its text is read by no
   * one, and formatting it costs more than evaluating it. */
  bool rule = owner == MSTORE_RULE || owner == MSTORE_ALERT;
  int shown = out->which >= 0 ? out->which : 0;
  if (explain && (!rule || out->fired)) {
    /* the memo keeps values, not the evidence the text is made of, and the evidence's bounds
     * are only computed for the text: evaluate it again (the same inputs give the same
     * result) */
    if ((!have_r[shown] || out->f[shown].evidence) &&
        mstore_eval_expr(ms, mp, &mp->x[first + shown], cohort, now, VARIANT_CANARY,
                         &r[shown]) != CANARY_OK)
      return rc;
    if (out->f[shown].evidence)
      finding_evidence(&mp->x[first + shown], &r[shown], &out->f[shown]);
    expr_explain(&mp->x[first + shown].e, &r[shown], out->f[shown].explain,
                 sizeof out->f[shown].explain);
  }
  return rc;
}

int mstore_eval_rule(struct mstore *ms, const struct mstore_plan *mp, enum mstore_owner owner,
                     int stage, int index, int cohort, int64_t now, struct expr_for *st,
                     struct mstore_verdict *out) {
  return eval_rule(ms, mp, owner, stage, index, cohort, now, st, out, true);
}

int mstore_eval_rule_values(struct mstore *ms, const struct mstore_plan *mp,
                            enum mstore_owner owner, int stage, int index, int cohort,
                            int64_t now, struct expr_for *st, struct mstore_verdict *out) {
  return eval_rule(ms, mp, owner, stage, index, cohort, now, st, out, false);
}

int mstore_zhist_restore(struct mstore *ms, uint64_t key, int cohort, enum variant v,
                         const int64_t *t, const double *x, int n) {
  if (n < 0 || n > ms->cfg.zscore_points)
    return CANARY_EINVALID;
  struct mstore_zhist *z = zhist_get(ms, key, cohort, v);
  if (!z)
    return ms->n_z >= ms->cfg.max_zscores ? CANARY_EINVALID : CANARY_ENOMEM;
  for (int i = 0; i < n; i++) {
    z->t[i] = t[i];
    z->x[i] = x[i];
  }
  z->n = n;
  z->head = n % ms->cfg.zscore_points;
  return CANARY_OK;
}
