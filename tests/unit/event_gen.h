/*
 * A seeded generator of valid contract events of every type, and the hash of what canaryd
 * writes for them (Avro bytes, JSON bytes, content digest): the byte-identity check of
 * test_event_fields. Header-only, and written against the API as it stood before the field map
 * (struct event, avro_codec_encode_event, event_to_json, event_digest), so the same file built
 * against an older tree gives that tree's figure (how GOLDEN in test_event_fields.c was made).
 */
#ifndef CANARY_TEST_EVENT_GEN_H
#define CANARY_TEST_EVENT_GEN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "core/event.h"

#define GEN_MAX_ENTRIES 6
#define GEN_MAX_VALUES 8

/* The generator's state, and the storage the metric payloads of its last event borrow. */
struct gen {
  uint64_t s;
  char names[3 * GEN_MAX_ENTRIES][24];
  struct metric_value counters[GEN_MAX_ENTRIES], gauges[GEN_MAX_ENTRIES];
  struct metric_dist dists[GEN_MAX_ENTRIES];
  double values[GEN_MAX_ENTRIES][GEN_MAX_VALUES];
  struct diff_sample samples[GEN_MAX_VALUES];
};

static uint64_t gen_next(struct gen *g) { /* xorshift64* */
  g->s ^= g->s >> 12;
  g->s ^= g->s << 25;
  g->s ^= g->s >> 27;
  return g->s * 0x2545f4914f6cdd1dULL;
}

static int gen_below(struct gen *g, int n) { return (int)(gen_next(g) % (uint64_t)n); }

/* A printable string of 1..max bytes (0.. when optional), now and then with a UTF-8 letter. */
static void gen_str(struct gen *g, char *dst, size_t size, bool optional) {
  static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/ ";
  size_t max = size - 1 < 40 ? size - 1 : 40;
  size_t n = (size_t)gen_below(g, (int)max) + (optional ? 0 : 1);
  if (optional && gen_below(g, 3) == 0)
    n = 0;
  size_t i = 0;
  while (i < n) {
    if (i + 2 <= n && gen_below(g, 10) == 0) {
      dst[i++] = (char)0xc3; /* é */
      dst[i++] = (char)0xa9;
    } else {
      dst[i++] = abc[gen_below(g, (int)sizeof abc - 1)];
    }
  }
  dst[i] = '\0';
}

/* A finite double: an integer, a fraction of eighths, or anything of 53 bits. */
static double gen_double(struct gen *g, bool non_negative) {
  double x;
  switch (gen_below(g, 3)) {
  case 0:
    x = (double)gen_below(g, 100000);
    break;
  case 1:
    x = gen_below(g, 10000) / 8.0;
    break;
  default:
    x = (double)(gen_next(g) >> 11) / 9007199254740992.0 * 1e6;
    break;
  }
  return non_negative || gen_below(g, 2) ? x : -x;
}

static void gen_metrics(struct gen *g, struct event *ev) {
  ev->metrics.variant = (enum variant)gen_below(g, VARIANT_COUNT);
  ev->metrics.interval_ms = 1 + gen_below(g, 60000);
  int nn = 0;
  size_t nc = (size_t)gen_below(g, GEN_MAX_ENTRIES + 1), ng = (size_t)gen_below(g, 3),
         nd = (size_t)gen_below(g, 4);
  for (size_t i = 0; i < nc; i++, nn++) {
    snprintf(g->names[nn], sizeof g->names[nn], "c%zu_%d", i, gen_below(g, 1000));
    g->counters[i] = (struct metric_value){g->names[nn], gen_double(g, true)};
  }
  for (size_t i = 0; i < ng; i++, nn++) {
    snprintf(g->names[nn], sizeof g->names[nn], "g%zu_%d", i, gen_below(g, 1000));
    g->gauges[i] = (struct metric_value){g->names[nn], gen_double(g, false)};
  }
  for (size_t i = 0; i < nd; i++, nn++) {
    snprintf(g->names[nn], sizeof g->names[nn], "d%zu_%d", i, gen_below(g, 1000));
    size_t n = (size_t)gen_below(g, GEN_MAX_VALUES + 1);
    for (size_t j = 0; j < n; j++)
      g->values[i][j] = gen_double(g, true);
    g->dists[i] = (struct metric_dist){g->names[nn], g->values[i], n};
  }
  ev->metrics.counters = g->counters;
  ev->metrics.n_counters = nc;
  ev->metrics.gauges = g->gauges;
  ev->metrics.n_gauges = ng;
  ev->metrics.dists = g->dists;
  ev->metrics.n_dists = nd;
}

/* The next event: of type, every field its type carries set at random within the contract. */
static void gen_event(struct gen *g, enum event_type type, struct event *ev) {
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  snprintf(ev->id, sizeof ev->id, "ev-%016llx", (unsigned long long)gen_next(g));
  gen_str(g, ev->rollout, sizeof ev->rollout, type == EVENT_FLAG_SET);
  ev->time_ms = (int64_t)(gen_next(g) % (uint64_t)EVENT_TIME_MAX_MS);
  switch (type) {
  case EVENT_ROLLOUT_REQUESTED:
    gen_str(g, ev->service, sizeof ev->service, false);
    gen_str(g, ev->version, sizeof ev->version, false);
    gen_str(g, ev->baseline_version, sizeof ev->baseline_version, false);
    break;
  case EVENT_SMOKE_COMPLETED:
    ev->passed = gen_below(g, 3) ? gen_below(g, 1000) : 0;
    ev->failed = gen_below(g, 3) ? gen_below(g, 1000) : 0;
    /* fall through: smoke has ok too */
    __attribute__((fallthrough));
  case EVENT_CI_COMPLETED:
  case EVENT_DEPLOY_COMPLETED:
  case EVENT_HEALTH_CHECKED:
    ev->ok = gen_below(g, 2);
    break;
  case EVENT_CRASH_REPORTED:
    gen_str(g, ev->cohort, sizeof ev->cohort, false);
    ev->count = 1 + gen_below(g, 500);
    break;
  case EVENT_INCIDENT_OPENED:
    ev->severity = 1 + gen_below(g, 4);
    ev->incident_kind = (enum incident_kind)gen_below(g, INCIDENT_KIND_COUNT);
    __attribute__((fallthrough));
  case EVENT_INCIDENT_RESOLVED:
    gen_str(g, ev->incident, sizeof ev->incident, false);
    break;
  case EVENT_FEEDBACK_RECEIVED:
    gen_str(g, ev->cohort, sizeof ev->cohort, false);
    ev->sentiment = (enum sentiment)gen_below(g, SENTIMENT_COUNT);
    break;
  case EVENT_APPROVAL_GRANTED:
    ev->role = (enum approval_role)gen_below(g, APPROVAL_ROLE_COUNT);
    gen_str(g, ev->actor, sizeof ev->actor, true);
    break;
  case EVENT_ALERT_RAISED:
    ev->alert_kind = (enum alert_kind)gen_below(g, ALERT_KIND_COUNT);
    gen_str(g, ev->detail, sizeof ev->detail, true);
    break;
  case EVENT_COMMAND:
    ev->action = (enum command_action)gen_below(g, COMMAND_ACTION_COUNT);
    ev->force = gen_below(g, 2);
    gen_str(g, ev->actor, sizeof ev->actor, true);
    gen_str(g, ev->reason, sizeof ev->reason, true);
    break;
  case EVENT_FLAG_SET:
    if (gen_below(g, 4) == 0) {
      snprintf(ev->flag, sizeof ev->flag, "system.canary.enabled");
    } else {
      char cohort[24];
      gen_str(g, cohort, sizeof cohort, false);
      snprintf(ev->flag, sizeof ev->flag, "canary.cohort.%s.enabled", cohort);
    }
    ev->value = gen_below(g, 2);
    gen_str(g, ev->actor, sizeof ev->actor, true);
    break;
  case EVENT_METRICS:
    gen_str(g, ev->cohort, sizeof ev->cohort, false);
    gen_metrics(g, ev);
    break;
  case EVENT_DIFF_SAMPLES: {
    gen_str(g, ev->cohort, sizeof ev->cohort, false);
    size_t n = (size_t)gen_below(g, GEN_MAX_VALUES + 1);
    for (size_t i = 0; i < n; i++)
      g->samples[i] =
          (struct diff_sample){gen_double(g, false), gen_double(g, false), gen_double(g, false)};
    ev->diff.samples = g->samples;
    ev->diff.n = n;
    break;
  }
  case EVENT_TYPE_COUNT:
    break;
  }
}

static uint64_t gen_fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

/*
 * Hash of the Avro bytes, the JSON bytes and the digest of n events from seed, every type in
 * turn; 0 when an event fails to encode (a generator or codec bug).
 */
static uint64_t gen_outputs_hash(uint64_t seed, int n) {
  struct gen g = {.s = seed ? seed : 1};
  avro_codec_t *c = NULL;
  if (avro_codec_new(&c) != CANARY_OK)
    return 0;
  struct avro_buf avro = AVRO_BUF_INIT;
  struct jbuf json;
  jbuf_init(&json);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < n; i++) {
    struct event ev;
    gen_event(&g, (enum event_type)(i % EVENT_TYPE_COUNT), &ev);
    if (avro_codec_encode_event(c, &ev, &avro) != CANARY_OK) {
      h = 0;
      break;
    }
    jbuf_reset(&json);
    event_to_json(&ev, &json);
    uint64_t d = event_digest(&ev);
    /* Deploy and command records gained a last field, signature (schema ids 4 and 5; 1 and 2
     * before): an unsigned event is main's bytes under the new id plus the null branch's one
     * byte. Hashed as main wrote them, so the golden proves exactly that. */
    int32_t id = avro_codec_schema_id(avro.data, avro.len);
    size_t len = avro.len;
    if ((id == 4 || id == 5) && !ev.signature[0] && len > 5 && avro.data[len - 1] == 0) {
      avro.data[4] = (unsigned char)(id - 3);
      len--;
    }
    h = gen_fnv(h, avro.data, len);
    h = gen_fnv(h, json.data, json.len);
    unsigned char le[8];
    for (int k = 0; k < 8; k++)
      le[k] = (unsigned char)(d >> (8 * k));
    h = gen_fnv(h, le, sizeof le);
  }
  jbuf_free(&json);
  avro_buf_free(&avro);
  avro_codec_destroy(c);
  return h;
}

#endif
