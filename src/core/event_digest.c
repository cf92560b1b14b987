/*
 * The content digest of an event: what it says, not how it was written. A repeated id with the
 * same digest is a redelivery (silent); with another digest, a conflict (dead-lettered).
 *
 * Why the decoded event and not the message's bytes: one event has many spellings. The same
 * event sent once as JSON (canaryctl emit) and once as Avro, its time as milliseconds or as an
 * RFC 3339 string, its counters' keys in another order, re-serialised by another producer
 * library, is the same event: a digest of the bytes would call each of those a conflict and
 * dead-letter every harmless redelivery. The decoded event is what canaryd applies, so it is
 * what two copies must agree on.
 *
 * What is in it: every field but the id (the digest is kept under the id): the type, the
 * rollout, the time — the same id at another time claims another moment, and canaryd decides
 * by event time — and every field of the type. Each field goes in by its contract name, enums
 * by their wire names, never by a number of this build: digests are stored and compared across
 * versions. A field at its zero value (absent, false, 0, empty) adds nothing, so a field added
 * to the contract later leaves the digest of every event without it as it was (a stored digest
 * that changed under an upgrade would be a false conflict). Enums have no "absent" value, so
 * each goes in only for the types that carry it. The fields and their order are the digest column
 * of EVENT_FIELD_MAP (core/event_fields.h): a new field takes the next place at the end.
 *
 * Counters, gauges and distributions are maps: neither a JSON object nor an Avro map fixes the
 * order of its entries, so each entry is digested alone and the entries are added up. Arrays —
 * a distribution's values, diff samples — keep their order. -0.0 counts as 0.0 (the same value).
 *
 * Not cryptographic: a producer could make two contents share a digest, and its conflict would
 * then pass for a redelivery — dropped, as every repeated id was before digests existed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/event.h"
#include "core/event_fields.h"

/* The digest's first state. Part of the stored format: a new seed is a new digest. */
#define DIGEST_SEED 0x63616e6172796431ULL /* "canaryd1" */

/* MurmurHash3's 64-bit finaliser: a bijection in which every input bit moves every output bit. */
static uint64_t fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/*
 * Fold one word in. Each word is mixed on its own (independent words mix in parallel), then
 * joined by a step that is a bijection of the running value and of the mixed word: two inputs
 * that differ in one word always differ after it.
 */
static void put(uint64_t *h, uint64_t v) {
  *h = (((*h << 23) | (*h >> 41)) ^ fmix64(v)) * 0x9e3779b97f4a7c15ULL;
}

/* The n <= 8 bytes at p as a little-endian word, zero-padded, whatever the machine (the value
 * is stored). */
static uint64_t load_le(const char *p, size_t n) {
  uint64_t w = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(&w, p, n); /* the loop below, in one move */
#else
  for (size_t k = 0; k < n; k++)
    w |= (uint64_t)(unsigned char)p[k] << (8 * k);
#endif
  return w;
}

/* Length, then 8 bytes a word. */
static void put_str(uint64_t *h, const char *s) {
  size_t n = s ? strlen(s) : 0;
  put(h, n);
  for (size_t i = 0; i < n; i += 8)
    put(h, load_le(s + i, n - i < 8 ? n - i : 8));
}

static uint64_t bits(double x) {
  uint64_t b = 0;
  if (x != 0) /* -0.0 == 0.0 */
    memcpy(&b, &x, sizeof b);
  return b;
}

static void field_str(uint64_t *h, const char *name, const char *v) {
  if (v[0]) {
    put_str(h, name);
    put_str(h, v);
  }
}

static void field_int(uint64_t *h, const char *name, int64_t v) {
  if (v) {
    put_str(h, name);
    put(h, (uint64_t)v);
  }
}

static void field_enum(uint64_t *h, const char *name, const char *wire) {
  put_str(h, name);
  put_str(h, wire);
}

/* A map of name -> value: the sum of its entries' digests, whatever their order. */
static void field_values(uint64_t *h, const char *name, const struct metric_value *v, size_t n) {
  if (!n)
    return;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t e = DIGEST_SEED;
    put_str(&e, v[i].name);
    put(&e, bits(v[i].value));
    sum += e;
  }
  put_str(h, name);
  put(h, n);
  put(h, sum);
}

/* A map of name -> values: as field_values, each entry's values in their order. */
static void field_dists(uint64_t *h, const char *name, const struct metric_dist *d, size_t n) {
  if (!n)
    return;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t e = DIGEST_SEED;
    put_str(&e, d[i].name);
    put(&e, d[i].n);
    for (size_t j = 0; j < d[i].n; j++)
      put(&e, bits(d[i].values[j]));
    sum += e;
  }
  put_str(h, name);
  put(h, n);
  put(h, sum);
}

static void field_samples(uint64_t *h, const char *name, const struct diff_sample *s, size_t n) {
  if (!n)
    return;
  put_str(h, name);
  put(h, n);
  for (size_t i = 0; i < n; i++) {
    put(h, bits(s[i].input));
    put(h, bits(s[i].stable));
    put(h, bits(s[i].canary));
  }
}

/*
 * One field of the table. Every field goes in when it is not at its zero value, whatever the
 * type (a decoded event has only its type's); an enum, which has no zero, only for the types
 * that carry it (each type carries at most one).
 */
static void field(uint64_t *h, const struct event *ev, const struct event_field *f) {
  const char *at = (const char *)ev + f->off;
  int64_t i;
  switch (f->kind) {
  case EVENT_FIELD_STR:
    return field_str(h, f->name, at);
  case EVENT_FIELD_BOOL:
    return field_int(h, f->name, *(const bool *)at);
  case EVENT_FIELD_I64:
    memcpy(&i, at, sizeof i);
    return field_int(h, f->name, i);
  case EVENT_FIELD_INT:
    return field_int(h, f->name, *(const int *)at);
  case EVENT_FIELD_ENUM:
    if ((unsigned)ev->type < EVENT_TYPE_COUNT && (f->types & 1u << ev->type))
      field_enum(h, f->name, f->wire(event_field_enum_get(ev, f)));
    return;
  case EVENT_FIELD_COUNTERS:
    return field_values(h, f->name, ev->metrics.counters, ev->metrics.n_counters);
  case EVENT_FIELD_GAUGES:
    return field_values(h, f->name, ev->metrics.gauges, ev->metrics.n_gauges);
  case EVENT_FIELD_DISTS:
    return field_dists(h, f->name, ev->metrics.dists, ev->metrics.n_dists);
  case EVENT_FIELD_SAMPLES:
    return field_samples(h, f->name, ev->diff.samples, ev->diff.n);
  }
}

/* The fields in the digest's order: ORDER[place] is the row at that place (see the map). */
static const unsigned char ORDER[EVENT_FIELD_COUNT] = {
#define XX(id, name, kind, member, types, req, lo, hi, etype, digest) [digest] = EVENT_F_##id,
    EVENT_FIELD_MAP(XX)
#undef XX
};

uint64_t event_digest(const struct event *ev) {
  uint64_t h = DIGEST_SEED;
  field_enum(&h, "type", event_type_name(ev->type));
  field_str(&h, "rollout", ev->rollout);
  field_int(&h, "time", ev->time_ms);
  for (int k = 0; k < EVENT_FIELD_COUNT; k++)
    field(&h, ev, &event_fields[ORDER[k]]);
  h = fmix64(h);
  return h != EVENT_DIGEST_UNKNOWN ? h : 1;
}

void event_digest_hex(uint64_t digest, char out[EVENT_DIGEST_HEX_LEN]) {
  snprintf(out, EVENT_DIGEST_HEX_LEN, "%016" PRIx64, digest);
}

/* ---- the signed bytes ------------------------------------------------------------------------ */

/*
 * Why not sign the digest: it is 64 bits of a non-cryptographic mix (see above), so a second
 * command with the same digest could be made and would carry the first one's signature. The
 * signed bytes are the same walk written out (Ed25519 hashes them with SHA-512 itself).
 * Each item is its name, a NUL, its length in decimal, ':' and its value: no value can pass for
 * another's boundary. Numbers are decimal text, enums their wire names, booleans 0/1.
 */
struct sink {
  unsigned char *p;
  size_t cap, n;
  bool full;
};

static void out_item(struct sink *s, const char *name, const char *v, size_t len) {
  char head[96];
  int h = snprintf(head, sizeof head, "%s%c%zu:", name, '\0', len);
  if (h < 0 || s->n + (size_t)h + len > s->cap) {
    s->full = true;
    return;
  }
  memcpy(s->p + s->n, head, (size_t)h);
  memcpy(s->p + s->n + (size_t)h, v, len);
  s->n += (size_t)h + len;
}

static void out_str(struct sink *s, const char *name, const char *v) {
  if (v[0])
    out_item(s, name, v, strlen(v));
}

static void out_int(struct sink *s, const char *name, int64_t v) {
  char num[24];
  if (v)
    out_item(s, name, num, (size_t)snprintf(num, sizeof num, "%" PRId64, v));
}

size_t event_signed_bytes(const struct event *ev, unsigned char *buf, size_t cap) {
  if ((unsigned)ev->type >= EVENT_TYPE_COUNT || !(EVENT_T_ACTOR & 1u << ev->type))
    return 0;
  struct sink s = {buf, cap, 0, false};
  static const char domain[] = "canaryd signed event v1"; /* never a signature of anything else */
  out_item(&s, "domain", domain, sizeof domain - 1);
  out_str(&s, "id", ev->id);
  const char *type = event_type_name(ev->type);
  out_item(&s, "type", type, strlen(type));
  out_str(&s, "rollout", ev->rollout);
  out_int(&s, "time", ev->time_ms);
  for (int k = 0; k < EVENT_FIELD_COUNT; k++) {
    const struct event_field *f = &event_fields[ORDER[k]];
    const char *at = (const char *)ev + f->off;
    int64_t i;
    if (ORDER[k] == EVENT_F_SIGNATURE)
      continue;
    switch (f->kind) {
    case EVENT_FIELD_STR:
      out_str(&s, f->name, at);
      break;
    case EVENT_FIELD_BOOL:
      out_int(&s, f->name, *(const bool *)at);
      break;
    case EVENT_FIELD_I64:
      memcpy(&i, at, sizeof i);
      out_int(&s, f->name, i);
      break;
    case EVENT_FIELD_INT:
      out_int(&s, f->name, *(const int *)at);
      break;
    case EVENT_FIELD_ENUM:
      if (f->types & 1u << ev->type) {
        const char *w = f->wire(event_field_enum_get(ev, f));
        out_item(&s, f->name, w, strlen(w));
      }
      break;
    default: /* the metric payloads: no type that is signed carries one */
      break;
    }
  }
  return s.full ? 0 : s.n;
}
