/*
 * Tests for the fast path of avro_codec_decode_event (canary.metrics read straight from the
 * bytes): on every message — generated valid ones, hand-made odd ones, and corrupted copies of
 * both — it must give what the generic avro-c path gives: the same return code, the same why,
 * the same event, value for value.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"

/* ---- a raw Avro writer: bodies the encoder would never write ------------------------------- */

struct out {
  unsigned char b[1 << 16];
  size_t n;
};

static void put_byte(struct out *o, unsigned char c) {
  if (o->n < sizeof o->b)
    o->b[o->n++] = c;
}

static void put_long(struct out *o, int64_t v) {
  uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  do {
    unsigned char c = u & 0x7f;
    u >>= 7;
    put_byte(o, (unsigned char)(c | (u ? 0x80 : 0)));
  } while (u);
}

static void put_bytes(struct out *o, const void *p, size_t n) {
  put_long(o, (int64_t)n);
  for (size_t i = 0; i < n; i++)
    put_byte(o, ((const unsigned char *)p)[i]);
}

static void put_str(struct out *o, const char *s) { put_bytes(o, s, strlen(s)); }

static void put_double(struct out *o, double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  for (int i = 0; i < 8; i++)
    put_byte(o, (unsigned char)(u >> (8 * i)));
}

/* ---- random messages ------------------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int pick(int n) { return (int)(next() % (uint64_t)n); }
static bool chance(int percent) { return pick(100) < percent; }

static double any_double(void) {
  switch (pick(12)) {
  case 0:
    return NAN;
  case 1:
    return INFINITY;
  case 2:
    return -INFINITY;
  case 3:
    return -1.5;
  case 4:
    return 0.0;
  case 5:
    return -0.0;
  case 6:
    return 1e300;
  default:
    return (double)pick(100000) / 7.0;
  }
}

/* Mostly good names from a small pool (so names repeat now and then), sometimes odd ones. */
static void any_name(char *buf, size_t size) {
  static const char *const pool[] = {"requests",   "errors", "cpu_ratio",       "memory_ratio",
                                     "latency_ms", "x",      "webvitals_lcp_ms"};
  switch (pick(20)) {
  case 0:
    snprintf(buf, size, "%s", "");
    return;
  case 1:
    snprintf(buf, size, "caf\xc3\xa9_%d", pick(3));
    return; /* UTF-8 */
  case 2: { /* long */
    size_t n = (size_t)pick((int)size - 1);
    memset(buf, 'n', n);
    buf[n] = '\0';
    return;
  }
  default:
    snprintf(buf, size, "%s", pool[pick(7)]);
    return;
  }
}

/* A string field: usually fitting its event field, sometimes one byte too long, or odd. */
static void put_text(struct out *o, const char *good, size_t limit) {
  char buf[300];
  switch (pick(25)) {
  case 0:
    memset(buf, 'a', limit - 1);
    put_bytes(o, buf, limit - 1);
    return; /* just fits */
  case 1:
    memset(buf, 'a', limit);
    put_bytes(o, buf, limit);
    return; /* one too long */
  case 2:
    put_bytes(o, "a\0b", 3);
    return; /* NUL inside */
  case 3:
    put_bytes(o, "\xff\xfe", 2);
    return; /* not UTF-8 */
  case 4:
    put_str(o, "");
    return;
  default:
    put_str(o, good);
    return;
  }
}

/* A map or array's items in random blocks: count, or -count and the block's size in bytes. */
struct blocks {
  struct out *o;
  struct out item; /* the current block's items */
  int64_t in_block;
  int64_t left_in_block;
};

static void block_start(struct blocks *b, struct out *o) {
  b->o = o;
  b->item.n = 0;
  b->in_block = 0;
  b->left_in_block = 1 + pick(4);
}

static void block_flush(struct blocks *b) {
  if (!b->in_block)
    return;
  if (chance(30)) {
    put_long(b->o, -b->in_block);
    put_long(b->o, (int64_t)b->item.n + (chance(5) ? 1 : 0)); /* sometimes the wrong size */
  } else {
    put_long(b->o, b->in_block);
  }
  for (size_t i = 0; i < b->item.n; i++)
    put_byte(b->o, b->item.b[i]);
  b->item.n = 0;
  b->in_block = 0;
  b->left_in_block = 1 + pick(4);
}

/* The next item goes to b->item; call after writing it. */
static void block_item(struct blocks *b) {
  b->in_block++;
  if (--b->left_in_block == 0)
    block_flush(b);
}

static void block_end(struct blocks *b) {
  block_flush(b);
  put_long(b->o, 0);
}

static void put_value_map(struct out *o, int max) {
  struct blocks b;
  block_start(&b, o);
  int n = chance(3) ? 70 : pick(max + 1);
  for (int i = 0; i < n; i++) {
    char name[80];
    any_name(name, sizeof name);
    if (n == 70)
      snprintf(name, sizeof name, "m%d", i);
    put_str(&b.item, name);
    put_double(&b.item, chance(85) ? (double)pick(5000) : any_double());
    block_item(&b);
  }
  block_end(&b);
}

static void put_dist_map(struct out *o) {
  struct blocks b;
  block_start(&b, o);
  int n = pick(4);
  for (int i = 0; i < n; i++) {
    char name[80];
    any_name(name, sizeof name);
    put_str(&b.item, name);
    struct blocks v;
    block_start(&v, &b.item);
    int m = pick(13);
    for (int j = 0; j < m; j++) {
      put_double(&v.item, chance(95) ? (double)pick(900) / 3.0 : any_double());
      block_item(&v);
    }
    block_end(&v);
    block_item(&b);
  }
  block_end(&b);
}

static void put_samples(struct out *o) {
  struct blocks b;
  block_start(&b, o);
  int n = pick(5);
  for (int i = 0; i < n; i++) {
    for (int f = 0; f < 3; f++)
      put_double(&b.item, chance(95) ? (double)pick(100) : any_double());
    block_item(&b);
  }
  block_end(&b);
}

static void put_empty_or_not(struct out *o, void (*fill)(struct out *)) {
  if (chance(90))
    put_long(o, 0);
  else
    fill(o);
}
static void fill_values(struct out *o) { put_value_map(o, 3); }

static int32_t metrics_id(void) {
  for (int32_t id = 0; id < 64; id++)
    if (avro_codec_schema_topic(id) && strcmp(avro_codec_schema_topic(id), "canary.metrics") == 0)
      return id;
  return -1;
}

/* One MetricEvent message (framed). */
static void gen_message(struct out *o) {
  int32_t id = metrics_id();
  o->n = 0;
  put_byte(o, 0);
  for (int i = 3; i >= 0; i--)
    put_byte(o, (unsigned char)(id >> (8 * i)));
  static const char *const types[] = {"metrics",      "metrics",          "metrics", "diff.samples",
                                      "diff.samples", "deploy.completed", "metric",  ""};
  const char *type = types[pick(8)];
  bool metrics = strcmp(type, "metrics") == 0 || (chance(5) && strcmp(type, "diff.samples"));
  char id_text[40];
  snprintf(id_text, sizeof id_text, "ev-%d", pick(1000000));
  put_text(o, id_text, EVENT_ID_MAX);
  put_text(o, "r1", EVENT_NAME_MAX);
  put_long(o, chance(95) ? 1767225600000LL + pick(1000000) : (int64_t)next());
  put_str(o, type);
  static const char *const cohorts[] = {"internal_test", "friendly_gp", "beta", "ga"};
  put_text(o, cohorts[pick(4)], EVENT_NAME_MAX);
  /* variant, interval_ms: present for metrics (mostly) */
  if (metrics ? chance(95) : chance(5)) {
    put_long(o, 1);
    static const char *const variants[] = {"canary",   "baseline", "canary",
                                           "baseline", "stable",   "Canary"};
    put_str(o, variants[pick(6)]);
  } else {
    put_long(o, 0);
  }
  if (metrics ? chance(95) : chance(5)) {
    put_long(o, 1);
    put_long(o, chance(90) ? 10000 : pick(3) - 1);
  } else {
    put_long(o, 0);
  }
  if (metrics) {
    put_value_map(o, 4);
    put_value_map(o, 3);
    put_dist_map(o);
    put_empty_or_not(o, put_samples);
  } else {
    put_empty_or_not(o, fill_values);
    put_empty_or_not(o, fill_values);
    put_empty_or_not(o, put_dist_map);
    put_samples(o);
  }
}

/* A corrupted copy: a byte changed, the message cut or lengthened. */
static void corrupt(struct out *o) {
  if (!o->n)
    return;
  switch (pick(5)) {
  case 0:
    o->b[pick((int)o->n)] ^= (unsigned char)(1 << pick(8));
    break;
  case 1:
    o->b[pick((int)o->n)] = (unsigned char)next();
    break;
  case 2:
    o->n = (size_t)pick((int)o->n);
    break;
  case 3:
    put_byte(o, (unsigned char)next());
    break;
  default: /* a varint that goes on */
    if (o->n > AVRO_CODEC_HEADER)
      o->b[AVRO_CODEC_HEADER + pick((int)(o->n - AVRO_CODEC_HEADER))] = 0x80;
    break;
  }
}

/* ---- comparing ------------------------------------------------------------------------------ */

static bool same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void assert_same_event(const struct event *a, const struct event *b) {
  const struct event_metrics *x = &a->metrics, *y = &b->metrics;
  assert_int_equal(x->n_counters, y->n_counters);
  assert_int_equal(x->n_gauges, y->n_gauges);
  assert_int_equal(x->n_dists, y->n_dists);
  assert_int_equal(a->diff.n, b->diff.n);
  for (size_t i = 0; i < x->n_counters; i++) {
    assert_string_equal(x->counters[i].name, y->counters[i].name);
    assert_true(same_double(x->counters[i].value, y->counters[i].value));
  }
  for (size_t i = 0; i < x->n_gauges; i++) {
    assert_string_equal(x->gauges[i].name, y->gauges[i].name);
    assert_true(same_double(x->gauges[i].value, y->gauges[i].value));
  }
  for (size_t i = 0; i < x->n_dists; i++) {
    assert_string_equal(x->dists[i].name, y->dists[i].name);
    assert_int_equal(x->dists[i].n, y->dists[i].n);
    for (size_t j = 0; j < x->dists[i].n; j++)
      assert_true(same_double(x->dists[i].values[j], y->dists[i].values[j]));
  }
  for (size_t i = 0; i < a->diff.n; i++)
    assert_memory_equal(&a->diff.samples[i], &b->diff.samples[i], sizeof *a->diff.samples);
  /* everything else, byte for byte, with the borrowed pointers taken out */
  struct event ca = *a, cb = *b;
  ca.metrics.counters = cb.metrics.counters = NULL;
  ca.metrics.gauges = cb.metrics.gauges = NULL;
  ca.metrics.dists = cb.metrics.dists = NULL;
  ca.diff.samples = cb.diff.samples = NULL;
  assert_memory_equal(&ca, &cb, sizeof ca);
}

struct tally {
  long ok, rejected, total;
  long ids; /* of the ok ones, how many had their id read in place */
};

/* Decode buf both ways (each codec its own, so neither overwrites the other's arrays). */
static void both_ways(avro_codec_t *fast, avro_codec_t *slow, const unsigned char *buf, size_t len,
                      struct tally *t) {
  static struct event a, b;
  char why_a[512], why_b[512];
  memset(why_a, 'x', sizeof why_a);
  memset(why_b, 'y', sizeof why_b);
  int ra = avro_codec_decode_event(fast, buf, len, &a, why_a, sizeof why_a);
  int rb = avro_codec_decode_event_generic(slow, buf, len, &b, why_b, sizeof why_b);
  if (ra != rb)
    fail_msg("fast %d, generic %d (%s) on a %zu-byte message", ra, rb, why_b, len);
  assert_string_equal(why_a, why_b);
  t->total++;
  if (ra == CANARY_OK) {
    int64_t time_ms = 0; /* what the worker orders messages by, read without decoding */
    assert_int_equal(avro_codec_event_time(slow, buf, len, &time_ms), CANARY_OK);
    assert_true(time_ms == a.time_ms);
    const char *id; /* and the id it looks up ahead */
    size_t id_len;
    assert_int_equal(avro_codec_event_head(slow, buf, len, &time_ms, &id, &id_len), CANARY_OK);
    assert_true(time_ms == a.time_ms);
    if (id) { /* read in place: the same bytes as the decoded id */
      assert_int_equal(id_len, strlen(a.id));
      assert_memory_equal(id, a.id, id_len);
      t->ids++;
    }
    assert_same_event(&a, &b);
    t->ok++;
  } else {
    t->rejected++;
  }
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_generated_and_corrupted(void **state) {
  (void)state;
  avro_codec_t *fast, *slow;
  assert_int_equal(avro_codec_new(&fast), CANARY_OK);
  assert_int_equal(avro_codec_new(&slow), CANARY_OK);
  static struct out o, bad;
  struct tally valid = {0}, broken = {0};
  for (int i = 0; i < 20000; i++) {
    gen_message(&o);
    both_ways(fast, slow, o.b, o.n, &valid);
    for (int k = 0; k < 3; k++) {
      bad = o;
      corrupt(&bad);
      if (chance(30))
        corrupt(&bad);
      both_ways(fast, slow, bad.b, bad.n, &broken);
    }
  }
  printf("generated: %ld decoded, %ld rejected; corrupted: %ld decoded, %ld rejected\n", valid.ok,
         valid.rejected, broken.ok, broken.rejected);
  /* both halves were exercised */
  assert_true(valid.ok > 2000 && valid.rejected > 2000);
  assert_true(valid.ids > valid.ok / 2); /* the fast path reads the id of most */
  assert_true(broken.ok > 500 && broken.rejected > 10000);
  avro_codec_destroy(fast);
  avro_codec_destroy(slow);
}

/* Messages of the encoder, as canaryd's producers write them; and other schemas' frames. */
static void test_encoded(void **state) {
  (void)state;
  avro_codec_t *fast, *slow, *enc;
  assert_int_equal(avro_codec_new(&fast), CANARY_OK);
  assert_int_equal(avro_codec_new(&slow), CANARY_OK);
  assert_int_equal(avro_codec_new(&enc), CANARY_OK);
  struct avro_buf buf = AVRO_BUF_INIT;
  struct tally t = {0};
  double lat[50];
  for (int i = 0; i < 2000; i++) {
    struct metric_value counters[] = {{"requests", 1000 + i}, {"errors", i % 7}};
    struct metric_value gauges[] = {{"cpu_ratio", 0.4}, {"memory_ratio", i / 3000.0}};
    int m = pick(50);
    for (int k = 0; k < m; k++)
      lat[k] = (double)pick(100000) / 10.0;
    struct metric_dist dists[] = {{"latency_ms", lat, (size_t)m}, {"webvitals_cls", lat, 1}};
    struct diff_sample samples[] = {{1, 2, 3}, {4, 5, 6.5}};
    struct event ev = {.type = i % 5 ? EVENT_METRICS : EVENT_DIFF_SAMPLES,
                       .time_ms = 1767225600000LL + i};
    snprintf(ev.id, sizeof ev.id, "enc-%d", i);
    snprintf(ev.rollout, sizeof ev.rollout, "r%d", i % 3);
    snprintf(ev.cohort, sizeof ev.cohort, "beta");
    if (ev.type == EVENT_METRICS)
      ev.metrics = (struct event_metrics){.variant = i % 2 ? VARIANT_BASELINE : VARIANT_CANARY,
                                          .interval_ms = 10000,
                                          .counters = counters,
                                          .n_counters = (size_t)(i % 3),
                                          .gauges = gauges,
                                          .n_gauges = 2,
                                          .dists = dists,
                                          .n_dists = (size_t)(i % 3 ? 1 : 2)};
    else
      ev.diff = (struct event_diff){samples, (size_t)(i % 3)};
    assert_int_equal(avro_codec_encode_event(enc, &ev, &buf), CANARY_OK);
    both_ways(fast, slow, buf.data, buf.len, &t);
  }
  assert_int_equal(t.ok, 2000);
  /* a deploy event and a command go the generic way, and agree with it */
  struct event d = {.type = EVENT_DEPLOY_COMPLETED, .ok = true, .time_ms = 1767225600000LL};
  snprintf(d.id, sizeof d.id, "d1");
  snprintf(d.rollout, sizeof d.rollout, "r1");
  assert_int_equal(avro_codec_encode_event(enc, &d, &buf), CANARY_OK);
  both_ways(fast, slow, buf.data, buf.len, &t);
  assert_int_equal(t.ok, 2001);
  /* commands: rollout is a union, null for a flag.set that applies to all rollouts */
  struct event f = {.type = EVENT_FLAG_SET, .time_ms = 1767225600001LL, .value = false};
  snprintf(f.id, sizeof f.id, "f1");
  snprintf(f.flag, sizeof f.flag, "system.canary.enabled");
  snprintf(f.actor, sizeof f.actor, "alice");
  assert_int_equal(avro_codec_encode_event(enc, &f, &buf), CANARY_OK);
  both_ways(fast, slow, buf.data, buf.len, &t);
  snprintf(f.rollout, sizeof f.rollout, "r1");
  f.time_ms++;
  assert_int_equal(avro_codec_encode_event(enc, &f, &buf), CANARY_OK);
  both_ways(fast, slow, buf.data, buf.len, &t);
  assert_int_equal(t.ok, 2003);
  /* no frame, or truncated before the time: no time */
  int64_t time_ms;
  assert_int_equal(avro_codec_event_time(fast, "x", 1, &time_ms), CANARY_EPARSE);
  assert_int_equal(avro_codec_event_time(fast, buf.data, 8, &time_ms), CANARY_EPARSE);
  avro_buf_free(&buf);
  avro_codec_destroy(enc);
  avro_codec_destroy(fast);
  avro_codec_destroy(slow);
}

/* What avro-c does with a name given twice (it merges the entries) is left to avro-c. */
static void test_repeated_names(void **state) {
  (void)state;
  avro_codec_t *fast, *slow;
  assert_int_equal(avro_codec_new(&fast), CANARY_OK);
  assert_int_equal(avro_codec_new(&slow), CANARY_OK);
  static struct out o;
  struct tally t = {0};
  for (int twice = 0; twice < 3; twice++) {
    o.n = 0;
    put_byte(&o, 0);
    int32_t id = metrics_id();
    for (int i = 3; i >= 0; i--)
      put_byte(&o, (unsigned char)(id >> (8 * i)));
    put_str(&o, "id-1");
    put_str(&o, "r1");
    put_long(&o, 1767225600000LL);
    put_str(&o, "metrics");
    put_str(&o, "beta");
    put_long(&o, 1);
    put_str(&o, "canary");
    put_long(&o, 1);
    put_long(&o, 10000);
    put_long(&o, 2); /* counters */
    put_str(&o, "requests");
    put_double(&o, 10);
    put_str(&o, twice == 0 ? "requests" : "errors");
    put_double(&o, 20);
    put_long(&o, 0);
    put_long(&o, 0); /* gauges */
    put_long(&o, 2); /* distributions */
    put_str(&o, "latency_ms");
    put_long(&o, 1);
    put_double(&o, 5);
    put_long(&o, 0);
    put_str(&o, twice == 1 ? "latency_ms" : "other");
    put_long(&o, 2);
    put_double(&o, 6);
    put_double(&o, 7);
    put_long(&o, 0);
    put_long(&o, 0);
    put_long(&o, 0); /* samples */
    both_ways(fast, slow, o.b, o.n, &t);
  }
  assert_int_equal(t.ok, 3);
  avro_codec_destroy(fast);
  avro_codec_destroy(slow);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_generated_and_corrupted),
      cmocka_unit_test(test_encoded),
      cmocka_unit_test(test_repeated_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
