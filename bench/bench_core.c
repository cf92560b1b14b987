/*
 * The ingest benchmark's stream without Kafka or PostgreSQL: what canaryd's worker does per
 * metric event in memory (decode, fire deadlines, engine_apply), timed phase by phase, so a
 * profiler (valgrind --tool=callgrind) sees only the core and the codec.
 *
 *   bench_core [PLAN=config/rollout.yaml] [EVENTS=100000] [ROLLOUTS=20] [SPIKE=0]
 *
 * The events are bench_ingest's (bench/stream.h: 14 observations each, 10 ms of event time
 * apart, or REPORTERS pods per rollout reporting every 10 s); SPIKE=k makes every k-th event of
 * a rollout carry a burst of errors and slow values, so that rules fire and decisions are made. It prints the rates and a digest (FNV-1a) of every
 * effect as JSON: the digest must not change when the code gets faster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rollout_json.h"
#include "config/config.h"
#include "core/engine.h"
#include "stream.h"

/*
 * The worker's cache of the earliest deadline (src/app/worker.c, fire_until): the tick's own
 * walk finds the next one (engine_tick_walk); after an apply, a walk only when the rollout it
 * changed held the earliest deadline.
 * DUE_CHECK=1 in the environment compares it with engine_next_deadline at every event.
 */
struct due {
  bool known;
  int64_t ms;
  size_t index;
};

static void due_recompute(struct due *c, const struct engine *e) {
  c->ms = ROLLOUT_NO_DEADLINE;
  c->index = 0;
  for (size_t i = 0; i < e->n_rollouts; i++) {
    int64_t d = engine_rollout_deadline(e, i);
    if (d < c->ms)
      c->ms = d, c->index = i;
  }
  c->known = true;
}

static void due_after_apply(struct due *c, const struct engine *e, const struct event *ev,
                            enum apply_outcome outcome, size_t rollouts_before) {
  size_t i = e->n_rollouts;
  if (c->known && outcome == APPLY_APPLIED && ev->type != EVENT_FLAG_SET &&
      ev->type != EVENT_ROLLOUT_REQUESTED && e->n_rollouts == rollouts_before)
    for (i = 0; i < e->n_rollouts; i++)
      if (strcmp(e->rollouts[i]->id, ev->rollout) == 0)
        break;
  if (i == e->n_rollouts) {
    c->known = false;
    return;
  }
  int64_t d = engine_rollout_deadline(e, i);
  if (i == c->index)
    due_recompute(c, e);
  else if (d < c->ms)
    c->ms = d, c->index = i;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct msg {
  unsigned char *data;
  size_t len;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static int push(struct msg **ms, size_t *n, size_t *cap, const struct avro_buf *b) {
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 1024;
    struct msg *m = realloc(*ms, *cap * sizeof *m);
    if (!m)
      return 1;
    *ms = m;
  }
  (*ms)[*n].data = malloc(b->len);
  if (!(*ms)[*n].data)
    return 1;
  memcpy((*ms)[*n].data, b->data, b->len);
  (*ms)[(*n)++].len = b->len;
  return 0;
}

/* bench_stream's events, encoded, kept in memory. */
struct collect {
  avro_codec_t *codec;
  struct avro_buf buf;
  struct msg **out;
  size_t *n_out, cap;
};

static int collect_one(void *ctx, const struct event *ev, long id) {
  (void)id;
  struct collect *c = ctx;
  return avro_codec_encode_event(c->codec, ev, &c->buf) || push(c->out, c->n_out, &c->cap, &c->buf);
}

static int make_stream(avro_codec_t *codec, long n, int rollouts, long spike, struct msg **out,
                       size_t *n_out) {
  struct collect c = {.codec = codec, .buf = AVRO_BUF_INIT, .out = out, .n_out = n_out};
  *out = NULL;
  *n_out = 0;
  int rc = bench_stream(n, rollouts, spike, collect_one, &c);
  avro_buf_free(&c.buf);
  return rc;
}

static uint64_t digest_effects(uint64_t h, const struct effects *fx) {
  struct jbuf j = {0};
  for (size_t i = 0; i < fx->n; i++) {
    const struct effect *e = &fx->items[i];
    jbuf_reset(&j);
    if (e->kind == EFFECT_DECISION)
      decision_to_json(&e->u.decision, &j);
    else if (e->kind == EFFECT_NOTIFICATION)
      notification_to_json(&e->u.notification, &j);
    else
      traffic_to_json(&e->u.traffic, &j);
    h = fnv(h, j.data, j.len);
    if (getenv("DUMP")) /* DUMP=1: every effect as a JSON line on stderr, to diff two builds */
      fprintf(stderr, "%.*s\n", (int)j.len, j.data);
  }
  jbuf_free(&j);
  return h;
}

int main(int argc, char **argv) {
  const char *plan_path = argc > 1 ? argv[1] : "config/rollout.yaml";
  long n = argc > 2 ? atol(argv[2]) : 100000;
  int rollouts = argc > 3 ? atoi(argv[3]) : 20;
  long spike = argc > 4 ? atol(argv[4]) : 0;
  static struct plan plan;
  struct config_error cerr;
  if (config_load_file(plan_path, &plan, &cerr) != CANARY_OK) {
    char msg[512];
    config_error_format(&cerr, msg, sizeof msg);
    fprintf(stderr, "%s\n", msg);
    return 1;
  }
  avro_codec_t *codec;
  if (avro_codec_new(&codec) != CANARY_OK)
    return 1;
  struct msg *ms;
  size_t n_ms;
  if (make_stream(codec, n, rollouts, spike, &ms, &n_ms))
    return 1;

  /* decode only */
  struct event ev;
  char why[512];
  double t0 = now_s();
  for (size_t i = 0; i < n_ms; i++)
    if (avro_codec_decode_event(codec, ms[i].data, ms[i].len, &ev, why, sizeof why)) {
      fprintf(stderr, "decode: %s\n", why);
      return 1;
    }
  double t_decode = now_s() - t0;

  /* the worker's path: decode, deadlines up to the event's time, apply */
  struct engine *e = calloc(1, sizeof *e);
  if (!e || engine_init(e, &plan) != CANARY_OK) {
    fprintf(stderr, "engine: %s\n", e ? e->error : "no memory");
    return 1;
  }
  e->no_memo = getenv("NO_MEMO") && atoi(getenv("NO_MEMO")); /* the digest must not change */
  struct effects fx = EFFECTS_INIT;
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t effects = 0, rejected = 0;
  struct due due = {0};
  bool check = getenv("DUE_CHECK") && atoi(getenv("DUE_CHECK"));
  t0 = now_s();
  for (size_t i = 0; i < n_ms; i++) {
    if (avro_codec_decode_event(codec, ms[i].data, ms[i].len, &ev, why, sizeof why))
      return 1;
    for (;;) {
      if (!due.known)
        due_recompute(&due, e);
      if (check && due.ms != engine_next_deadline(e)) {
        fprintf(stderr, "event %zu: cached deadline %lld, engine %lld\n", i, (long long)due.ms,
                (long long)engine_next_deadline(e));
        return 1;
      }
      if (due.ms > ev.time_ms)
        break;
      if (engine_tick_walk(e, due.ms, &fx, NULL, NULL, &due.ms, &due.index) != CANARY_OK)
        return 1;
    }
    enum apply_outcome outcome;
    size_t rollouts_before = e->n_rollouts;
    if (engine_apply(e, &ev, ev.time_ms, &fx, &outcome, why, sizeof why) != CANARY_OK)
      return 1;
    due_after_apply(&due, e, &ev, outcome, rollouts_before);
    rejected += outcome != APPLY_APPLIED;
    effects += fx.n;
    h = digest_effects(h, &fx);
    effects_clear(&fx);
  }
  double t_all = now_s() - t0;
  printf("decode only:      %9.0f events/s (%.3f us each)\n", (double)n_ms / t_decode,
         1e6 * t_decode / (double)n_ms);
  printf("decode + engine:  %9.0f events/s (%.3f us each)\n", (double)n_ms / t_all,
         1e6 * t_all / (double)n_ms);
  if (getenv("DUMP")) { /* and every rollout as it ends, readings included */
    struct jbuf j = {0};
    for (size_t k = 0; k < e->n_rollouts; k++) {
      jbuf_reset(&j);
      rollout_json_write(e->rollouts[k], &j);
      fprintf(stderr, "%.*s\n", (int)j.len, j.data);
    }
    jbuf_free(&j);
  }
  printf("effects %zu, rejected %zu, digest %016llx\n", effects, rejected, (unsigned long long)h);
  effects_free(&fx);
  engine_destroy(e);
  free(e);
  for (size_t i = 0; i < n_ms; i++)
    free(ms[i].data);
  free(ms);
  avro_codec_destroy(codec);
  return 0;
}
