/* A rollout's metric state beyond its windows, to JSON and back (see metrics_json.h). */
#include "codec/metrics_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------------------------- */

static void write_for(struct jbuf *out, const struct expr_for *st) {
  jbuf_putc(out, ',');
  jbuf_string(out, expr_for_state_name(st->state));
  jbuf_putc(out, ',');
  jbuf_int(out, st->since);
  jbuf_putc(out, ']');
}

void metrics_json_write(const struct rollout_metrics *m, struct jbuf *out) {
  jbuf_printf(out,
              "{\"v\":%d,\"rules_cohort\":%d,\"next_eval_ms\":%" PRId64 ",\"deadline\":%" PRId64
              ",\"rules\":[",
              METRICS_JSON_VERSION, m->rules_cohort, m->next_eval_ms, m->deadline);
  bool first = true;
  for (int i = 0; i < ROLLOUT_FOR_ROWS; i++)
    for (int j = 0; j < PLAN_MAX_EXPRS; j++) {
      const struct expr_for *st = &m->rules[i][j];
      if (st->state == EXPR_FOR_INACTIVE)
        continue;
      jbuf_printf(out, "%s[%d,%d", first ? "" : ",", i, j);
      write_for(out, st);
      first = false;
    }
  jbuf_puts(out, "],\"gates\":[");
  first = true;
  for (int s = 0; s < PLAN_MAX_STAGES; s++)
    for (int x = 0; x < 2; x++)
      for (int c = 0; c < PLAN_MAX_CRITERIA; c++) {
        const struct expr_for *st = &m->gates[s][x][c];
        if (st->state == EXPR_FOR_INACTIVE)
          continue;
        jbuf_printf(out, "%s[%d,%d,%d", first ? "" : ",", s, x, c);
        write_for(out, st);
        first = false;
      }
  jbuf_puts(out, "]}");
}

void metrics_json_write_dispersion(const struct rollout_metrics *m, struct jbuf *out) {
  jbuf_putc(out, '{');
  bool first = true;
  for (int i = 0; i < m->ms.cfg.n_pairs; i++) {
    double sum, k;
    mstore_dispersion_steps(&m->ms, m->ms.cfg.pairs[i].num, &sum, &k);
    if (!(k > 0))
      continue;
    if (!first)
      jbuf_putc(out, ',');
    first = false;
    jbuf_string(out, m->ms.cfg.pairs[i].num);
    jbuf_puts(out, ":[");
    jbuf_number(out, sum);
    jbuf_putc(out, ',');
    jbuf_number(out, k);
    jbuf_putc(out, ']');
  }
  jbuf_putc(out, '}');
}

void metrics_json_write_zscores(const struct rollout_metrics *m, struct jbuf *out) {
  jbuf_printf(out, "{\"v\":%d,\"zscores\":[", METRICS_JSON_VERSION);
  const struct mstore *ms = &m->ms;
  int cap = ms->cfg.zscore_points;
  for (int i = 0; i < ms->n_z; i++) {
    const struct mstore_zhist *z = &ms->z[i];
    jbuf_printf(out, "%s{\"key\":\"%016" PRIx64 "\",\"cohort\":%d,\"variant\":", i ? "," : "",
                z->key, z->cohort);
    jbuf_string(out, variant_name(z->variant));
    /* oldest first: slots head - n .. head - 1 of the ring */
    jbuf_puts(out, ",\"t\":[");
    for (int k = 0; k < z->n; k++) {
      int slot = ((z->head - z->n + k) % cap + cap) % cap;
      if (k)
        jbuf_putc(out, ',');
      jbuf_int(out, z->t[slot]);
    }
    jbuf_puts(out, "],\"x\":[");
    for (int k = 0; k < z->n; k++) {
      int slot = ((z->head - z->n + k) % cap + cap) % cap;
      if (k)
        jbuf_putc(out, ',');
      jbuf_number(out, z->x[slot]);
    }
    jbuf_puts(out, "]}");
  }
  jbuf_puts(out, "]}");
}

/* ---- reading ------------------------------------------------------------------------------- */

static bool int_in(const struct json_value *v, int64_t lo, int64_t hi, int64_t *out) {
  if (!v || v->type != JSON_NUMBER || !v->is_int || v->i < lo || v->i > hi)
    return false;
  *out = v->i;
  return true;
}

/* [i0, .., i(n-1), state, since] with each index below its limit -> idx[], *st */
static int read_for(const struct json_value *v, int n, const int *limits, int *idx,
                    struct expr_for *st, char *why, size_t len) {
  if (v->type != JSON_ARRAY || v->n_items != (size_t)n + 2)
    return json_why_at(why, len, v, NULL, "a for: state is [index.., state, since]");
  for (int k = 0; k < n; k++) {
    int64_t i;
    if (!int_in(&v->items[k], 0, limits[k] - 1, &i))
      return json_why_at(why, len, &v->items[k], NULL, "index out of range (0..%d)", limits[k] - 1);
    idx[k] = (int)i;
  }
  const struct json_value *name = &v->items[n];
  enum expr_for_state s;
  if (name->type != JSON_STRING || !expr_for_state_parse(name->str, &s))
    return json_why_at(why, len, name, NULL, "expected inactive, pending or firing");
  int64_t since;
  if (!int_in(&v->items[n + 1], INT64_MIN, INT64_MAX, &since))
    return json_why_at(why, len, &v->items[n + 1], NULL, "since: expected an integer");
  st->state = s;
  st->since = since;
  return CANARY_OK;
}

static int read_zscore(const struct json_value *v, struct mstore *ms, char *why, size_t len) {
  const struct json_value *key = json_get(v, "key"), *cohort = json_get(v, "cohort"),
                          *variant = json_get(v, "variant"), *t = json_get(v, "t"),
                          *x = json_get(v, "x");
  if (v->type != JSON_OBJECT || v->n_members != 5 || !key || !cohort || !variant || !t || !x)
    return json_why_at(why, len, v, NULL, "a zscore history is {key, cohort, variant, t, x}");
  char *end = NULL;
  uint64_t k = key->type == JSON_STRING ? strtoull(key->str, &end, 16) : 0;
  if (key->type != JSON_STRING || key->len != 16 || !end || *end)
    return json_why_at(why, len, key, NULL, "key: expected 16 hex digits");
  int64_t c;
  if (!int_in(cohort, 0, PLAN_MAX_STAGES - 1, &c))
    return json_why_at(why, len, cohort, NULL, "cohort out of range");
  enum variant var;
  if (variant->type != JSON_STRING || !variant_parse(variant->str, &var))
    return json_why_at(why, len, variant, NULL, "unknown variant");
  if (t->type != JSON_ARRAY || x->type != JSON_ARRAY || t->n_items != x->n_items ||
      t->n_items > (size_t)ms->cfg.zscore_points)
    return json_why_at(why, len, t, NULL, "t and x: arrays of the same length, at most %d",
                       ms->cfg.zscore_points);
  int n = (int)t->n_items;
  int64_t *ts = malloc((size_t)(n ? n : 1) * sizeof *ts);
  double *xs = malloc((size_t)(n ? n : 1) * sizeof *xs);
  int rc = ts && xs ? CANARY_OK : CANARY_ENOMEM;
  for (int i = 0; i < n && rc == CANARY_OK; i++) {
    if (!int_in(&t->items[i], INT64_MIN, INT64_MAX, &ts[i]))
      rc = json_why_at(why, len, &t->items[i], NULL, "t: expected integers");
    else if (x->items[i].type == JSON_NULL)
      xs[i] = NAN;
    else if (x->items[i].type == JSON_NUMBER)
      xs[i] = x->items[i].num;
    else
      rc = json_why_at(why, len, &x->items[i], NULL, "x: expected numbers");
  }
  if (rc == CANARY_OK) {
    rc = mstore_zhist_restore(ms, k, (int)c, var, ts, xs, n);
    if (rc == CANARY_EINVALID)
      json_why_at(why, len, v, NULL, "no room for the zscore history");
  }
  free(ts);
  free(xs);
  return rc;
}

static int read_doc(const struct json_value *root, struct rollout_metrics *m, char *why,
                    size_t len) {
  if (root->type != JSON_OBJECT)
    return json_why_at(why, len, root, NULL, "a metrics document is an object");
  const struct json_value *v = json_get(root, "v"), *cohort = json_get(root, "rules_cohort"),
                          *next = json_get(root, "next_eval_ms"),
                          *deadline = json_get(root, "deadline"), *rules = json_get(root, "rules"),
                          *gates = json_get(root, "gates"), *zs = json_get(root, "zscores");
  int64_t i64;
  if (!int_in(v, METRICS_JSON_VERSION, METRICS_JSON_VERSION, &i64))
    return json_why_at(why, len, v ? v : root, NULL, "v: this build reads version %d",
                       METRICS_JSON_VERSION);
  /* documents written before the zscore histories had a column of their own hold them here */
  if (root->n_members != (zs ? 7u : 6u) || !cohort || !next || !deadline || !rules || !gates ||
      rules->type != JSON_ARRAY || gates->type != JSON_ARRAY || (zs && zs->type != JSON_ARRAY))
    return json_why_at(why, len, root, NULL,
                       "expected v, rules_cohort, next_eval_ms, deadline, rules and gates");
  if (!int_in(cohort, -1, PLAN_MAX_STAGES - 1, &i64))
    return json_why_at(why, len, cohort, NULL, "rules_cohort out of range");
  m->rules_cohort = (int)i64;
  if (!int_in(next, INT64_MIN, INT64_MAX, &m->next_eval_ms) ||
      !int_in(deadline, INT64_MIN, INT64_MAX, &m->deadline))
    return json_why_at(why, len, next, NULL, "next_eval_ms and deadline: expected integers");
  static const int rule_limits[] = {ROLLOUT_FOR_ROWS, PLAN_MAX_EXPRS}; /* rules, then alerts */
  static const int gate_limits[] = {PLAN_MAX_STAGES, 2, PLAN_MAX_CRITERIA};
  int idx[3] = {0, 0, 0}, rc; /* (read_for sets them when it succeeds; -O3 cannot tell) */
  for (size_t k = 0; k < rules->n_items; k++) {
    struct expr_for st;
    if ((rc = read_for(&rules->items[k], 2, rule_limits, idx, &st, why, len)))
      return rc;
    m->rules[idx[0]][idx[1]] = st;
  }
  for (size_t k = 0; k < gates->n_items; k++) {
    struct expr_for st;
    if ((rc = read_for(&gates->items[k], 3, gate_limits, idx, &st, why, len)))
      return rc;
    m->gates[idx[0]][idx[1]][idx[2]] = st;
  }
  for (size_t k = 0; zs && k < zs->n_items; k++)
    if ((rc = read_zscore(&zs->items[k], &m->ms, why, len)))
      return rc;
  return CANARY_OK;
}

static int read_zscores_doc(const struct json_value *root, struct rollout_metrics *m, char *why,
                            size_t len) {
  const struct json_value *v = json_get(root, "v"), *zs = json_get(root, "zscores");
  int64_t i64;
  if (root->type != JSON_OBJECT || !int_in(v, METRICS_JSON_VERSION, METRICS_JSON_VERSION, &i64))
    return json_why_at(why, len, v ? v : root, NULL, "v: this build reads version %d",
                       METRICS_JSON_VERSION);
  if (root->n_members != 2 || !zs || zs->type != JSON_ARRAY)
    return json_why_at(why, len, root, NULL, "expected v and zscores");
  int rc;
  for (size_t k = 0; k < zs->n_items; k++)
    if ((rc = read_zscore(&zs->items[k], &m->ms, why, len)))
      return rc;
  return CANARY_OK;
}

static int
parse_and(const char *text, size_t len, struct rollout_metrics *m, char *why, size_t why_len,
          int (*read)(const struct json_value *, struct rollout_metrics *, char *, size_t)) {
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root;
  struct json_error err;
  int rc = json_parse(&doc, text, len, &root, &err);
  if (rc == CANARY_EPARSE && why && why_len)
    snprintf(why, why_len, "%d:%d: %s", err.line, err.column, err.message);
  else if (rc == CANARY_OK)
    rc = read(root, m, why, why_len);
  json_doc_free(&doc);
  return rc;
}

int metrics_json_read(const char *text, size_t len, struct rollout_metrics *m, char *why,
                      size_t why_len) {
  return parse_and(text, len, m, why, why_len, read_doc);
}

int metrics_json_read_zscores(const char *text, size_t len, struct rollout_metrics *m, char *why,
                              size_t why_len) {
  return parse_and(text, len, m, why, why_len, read_zscores_doc);
}

/* ---- fingerprints ---------------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v) {
  /* FNV-1a over the 8 bytes of v */
  for (int i = 0; i < 8; i++, v >>= 8) {
    h ^= v & 0xff;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t metrics_json_state_sig(const struct rollout_metrics *m) {
  uint64_t h = 14695981039346656037ULL;
  h = mix(h, (uint64_t)(int64_t)m->rules_cohort);
  h = mix(h, (uint64_t)m->next_eval_ms);
  h = mix(h, (uint64_t)m->deadline);
  for (int i = 0; i < ROLLOUT_FOR_ROWS; i++)
    for (int j = 0; j < PLAN_MAX_EXPRS; j++)
      if (m->rules[i][j].state != EXPR_FOR_INACTIVE)
        h = mix(mix(mix(h, (uint64_t)(i * PLAN_MAX_EXPRS + j)), m->rules[i][j].state),
                (uint64_t)m->rules[i][j].since);
  for (int s = 0; s < PLAN_MAX_STAGES; s++)
    for (int x = 0; x < 2; x++)
      for (int c = 0; c < PLAN_MAX_CRITERIA; c++)
        if (m->gates[s][x][c].state != EXPR_FOR_INACTIVE)
          h = mix(mix(mix(h, (uint64_t)(1000 + (s * 2 + x) * PLAN_MAX_CRITERIA + c)),
                      m->gates[s][x][c].state),
                  (uint64_t)m->gates[s][x][c].since);
  return h ? h : 1;
}

/* A history only grows at its head: its size, head and newest point say whether it changed. */
uint64_t metrics_json_zscores_sig(const struct rollout_metrics *m) {
  const struct mstore *ms = &m->ms;
  uint64_t h = mix(14695981039346656037ULL, (uint64_t)ms->n_z);
  int cap = ms->cfg.zscore_points;
  for (int i = 0; i < ms->n_z; i++) {
    const struct mstore_zhist *z = &ms->z[i];
    h = mix(mix(mix(h, z->key), (uint64_t)z->n), (uint64_t)z->head);
    if (z->n) {
      int newest = ((z->head - 1) % cap + cap) % cap;
      uint64_t xb;
      memcpy(&xb, &z->x[newest], sizeof xb);
      h = mix(mix(h, (uint64_t)z->t[newest]), xb);
    }
  }
  return h ? h : 1;
}
