/* The Avro codec object: embedded schemas, the Confluent frame, and field helpers for the coders. */
#include "codec/avro_codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/avro_codec_internal.h"
#include "codec/avro_codec_schemas.h"
#include "core/topic.h"

/*
 * What the code reads and writes, field by field. avro_codec_new() compares each embedded schema
 * with these specs (names and type signatures), so an .avsc edited without the code fails at
 * start-up and in the unit tests instead of on the first message.
 */
#define S "s"
#define OS "<n|s>"
static const struct avro_field_spec deploy_spec[DF_COUNT_] = {
    [DF_ID] = {"id", S},
    [DF_ROLLOUT] = {"rollout", S},
    [DF_TIME] = {"time", "l"},
    [DF_TYPE] = {"type", S},
    [DF_SERVICE] = {"service", OS},
    [DF_VERSION] = {"version", OS},
    [DF_BASELINE_VERSION] = {"baseline_version", OS},
    [DF_OK] = {"ok", "<n|b>"},
    [DF_PASSED] = {"passed", "<n|l>"},
    [DF_FAILED] = {"failed", "<n|l>"},
    [DF_COUNT] = {"count", "<n|l>"},
    [DF_COHORT] = {"cohort", OS},
    [DF_INCIDENT] = {"incident", OS},
    [DF_SEVERITY] = {"severity", "<n|i>"},
    [DF_KIND] = {"kind", OS},
    [DF_SENTIMENT] = {"sentiment", OS},
    [DF_ROLE] = {"role", OS},
    [DF_ACTOR] = {"actor", OS},
    [DF_DETAIL] = {"detail", OS},
    [DF_SIGNATURE] = {"signature", OS},
};
static const struct avro_field_spec command_spec[CF_COUNT_] = {
    [CF_ID] = {"id", S},          [CF_ROLLOUT] = {"rollout", OS},
    [CF_TIME] = {"time", "l"},    [CF_TYPE] = {"type", S},
    [CF_ACTION] = {"action", OS}, [CF_FORCE] = {"force", "<n|b>"},
    [CF_ACTOR] = {"actor", OS},   [CF_REASON] = {"reason", OS},
    [CF_FLAG] = {"flag", OS},     [CF_VALUE] = {"value", "<n|b>"},
    [CF_ITEM] = {"item", OS},     [CF_SIGNATURE] = {"signature", OS},
};
static const struct avro_field_spec metric_spec[MF_COUNT_] = {
    [MF_ID] = {"id", S},
    [MF_ROLLOUT] = {"rollout", S},
    [MF_TIME] = {"time", "l"},
    [MF_TYPE] = {"type", S},
    [MF_COHORT] = {"cohort", S},
    [MF_VARIANT] = {"variant", OS},
    [MF_INTERVAL_MS] = {"interval_ms", "<n|l>"},
    [MF_COUNTERS] = {"counters", "{d}"},
    [MF_GAUGES] = {"gauges", "{d}"},
    [MF_DISTRIBUTIONS] = {"distributions", "{[d]}"},
    [MF_SAMPLES] = {"samples", "[(input:d,stable:d,canary:d)]"},
};
static const struct avro_field_spec decision_spec[XF_COUNT_] = {
    [XF_ID] = {"id", S},
    [XF_ROLLOUT] = {"rollout", S},
    [XF_SEQ] = {"seq", "l"},
    [XF_TIME] = {"time", "l"},
    [XF_ACTION] = {"action", S},
    [XF_FROM_STAGE] = {"from_stage", OS},
    [XF_TO_STAGE] = {"to_stage", OS},
    [XF_STATE] = {"state", S},
    [XF_REASON] = {"reason", S},
    [XF_RULE] = {"rule", OS},
    [XF_EVIDENCE] = {"evidence", "{<n|b|l|d|s>}"},
    [XF_ACTOR] = {"actor", S},
};
static const struct avro_field_spec notification_spec[NF_COUNT_] = {
    [NF_ID] = {"id", S},
    [NF_ROLLOUT] = {"rollout", S},
    [NF_TIME] = {"time", "l"},
    [NF_CHANNEL] = {"channel", S},
    [NF_CHANNEL_KIND] = {"channel_kind", S},
    [NF_SEVERITY] = {"severity", S},
    [NF_TITLE] = {"title", S},
    [NF_TEXT] = {"text", S},
    [NF_DECISION_ID] = {"decision_id", OS},
    [NF_SLACK] = {"slack", S},
};
/* The split's versions differ only inside the Cohort record: schema id 12 ended it at kill. */
#define TRAFFIC_SPEC(cohorts)                                                                      \
  {                                                                                                \
    [TF_ID] = {"id", S}, [TF_ROLLOUT] = {"rollout", S}, [TF_SERVICE] = {"service", S},             \
    [TF_VERSION] = {"version", S}, [TF_BASELINE_VERSION] = {"baseline_version", S},                \
    [TF_TIME] = {"time", "l"}, [TF_EXPOSURE_PERCENT] = {"exposure_percent", "d"},                  \
    [TF_CANARY_ENABLED] = {"canary_enabled", "b"}, [TF_BREAKER_OPEN] = {"breaker_open", "b"},      \
    [TF_COHORTS] = {"cohorts", cohorts}, [TF_SALT] = {"salt", S}, [TF_BUCKETS] = {"buckets", "i"}, \
  }
static const struct avro_field_spec traffic_spec[TF_COUNT_] =
    TRAFFIC_SPEC("[(name:s,percent:d,enabled:b,kill:b,segments:<n|[s]>,features:<n|[s]>)]");
static const struct avro_field_spec traffic_v1_spec[TF_COUNT_] =
    TRAFFIC_SPEC("[(name:s,percent:d,enabled:b,kill:b)]");
#undef TRAFFIC_SPEC
static const struct avro_field_spec dlq_spec[LF_COUNT_] = {
    [LF_ORIGINAL] = {"original", "y"},   [LF_TOPIC] = {"topic", S},
    [LF_PARTITION] = {"partition", "i"}, [LF_OFFSET] = {"offset", "l"},
    [LF_KEY] = {"key", "<n|y>"},         [LF_REASON] = {"reason", S},
    [LF_TIME] = {"time", "l"},
};
#undef S
#undef OS

/* Slot by topic: the topic in schemas/ids.txt says which code handles a schema id. */
static const struct {
  enum topic topic;
  const char *record;
  const struct avro_field_spec *spec;
  size_t n_spec;
} SLOTS[SLOT_COUNT] = {
    [SLOT_DEPLOY] = {TOPIC_DEPLOY, "DeployEvent", deploy_spec, DF_COUNT_},
    [SLOT_COMMANDS] = {TOPIC_COMMANDS, "CommandEvent", command_spec, CF_COUNT_},
    [SLOT_METRICS] = {TOPIC_METRICS, "MetricEvent", metric_spec, MF_COUNT_},
    [SLOT_DECISION] = {TOPIC_DECISIONS, "Decision", decision_spec, XF_COUNT_},
    [SLOT_NOTIFICATION] = {TOPIC_NOTIFICATIONS, "Notification", notification_spec, NF_COUNT_},
    [SLOT_TRAFFIC] = {TOPIC_FLAGS, "TrafficSplit", traffic_spec, TF_COUNT_},
    [SLOT_DLQ] = {TOPIC_DLQ, "DeadLetter", dlq_spec, LF_COUNT_},
    /* the first versions: the same fields but the ones added last (deploy: the signature;
     * command: the checklist item and the signature) */
    [SLOT_DEPLOY_V1] = {TOPIC_DEPLOY, "DeployEvent", deploy_spec, DF_SIGNATURE},
    [SLOT_COMMANDS_V1] = {TOPIC_COMMANDS, "CommandEvent", command_spec, CF_ITEM},
    /* the split: its top-level fields are the same, its Cohort record lacks the last two */
    [SLOT_TRAFFIC_V1] = {TOPIC_FLAGS, "TrafficSplit", traffic_v1_spec, TF_COUNT_},
};
_Static_assert(DF_SIGNATURE == DF_COUNT_ - 1 && CF_ITEM == CF_COUNT_ - 2 &&
                   CF_SIGNATURE == CF_COUNT_ - 1,
               "a V1 slot is its spec without the fields added last");

/* The older version's slot of a topic's current slot, or -1 when it has none. */
static int older_slot(int s) {
  return s == SLOT_DEPLOY     ? SLOT_DEPLOY_V1
         : s == SLOT_COMMANDS ? SLOT_COMMANDS_V1
         : s == SLOT_TRAFFIC  ? SLOT_TRAFFIC_V1
                              : -1;
}

_Static_assert(DF_COUNT_ <= AVRO_SLOT_MAX_FIELDS, "deploy fields");
_Static_assert(SLOT_COUNT <= 8 * sizeof(unsigned), "allowed is a bit mask");

/* ---- messages and errors -------------------------------------------------------------------- */

int avro_codec_err(int avro_rc) { return avro_rc == ENOMEM ? CANARY_ENOMEM : CANARY_EINVALID; }

const char *avro_codec_excerpt(const char *s, size_t n, char *dst, size_t size) {
  if (!size)
    return dst;
  size_t keep = n;
  bool cut = false;
  if (keep + 1 > size) {
    keep = size > 4 ? size - 4 : 0;
    cut = true;
    while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
      keep--; /* never split a UTF-8 sequence */
  }
  for (size_t i = 0; i < keep; i++) {
    unsigned char ch = (unsigned char)s[i];
    dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
  }
  dst[keep] = '\0';
  if (cut && size > 4)
    memcpy(dst + keep, "...", 4);
  return dst;
}

/* ---- the codec object ----------------------------------------------------------------------- */

static int setup_slot(struct avro_codec_slot *sl, enum avro_slot which,
                      const struct avro_codec_schema_src *src) {
  char why[160];
  sl->id = src->id;
  sl->topic = src->topic;
  sl->record = SLOTS[which].record;
  sl->spec = SLOTS[which].spec;
  sl->n_spec = SLOTS[which].n_spec;

  if (avro_schema_from_json_length(src->json, src->json_len, &sl->schema)) {
    sl->schema = NULL;
    fprintf(stderr, "canaryd: schemas/%s: %s\n", src->file, avro_strerror());
    return CANARY_EINVALID;
  }
  if (!is_avro_record(sl->schema) || strcmp(avro_schema_name(sl->schema), sl->record) != 0) {
    fprintf(stderr, "canaryd: schemas/%s: expected record %s for %s\n", src->file, sl->record,
            src->topic);
    return CANARY_EINVALID;
  }
  /* Exactly the fields of the spec, each with its signature: the coders rely on both. */
  if (avro_schema_record_size(sl->schema) != sl->n_spec) {
    fprintf(stderr, "canaryd: schemas/%s: %zu fields, the code knows %zu\n", src->file,
            avro_schema_record_size(sl->schema), sl->n_spec);
    return CANARY_EINVALID;
  }
  for (size_t k = 0; k < sl->n_spec; k++) {
    const struct avro_field_spec *f = &sl->spec[k];
    int i = avro_schema_record_field_get_index(sl->schema, f->name);
    char got[128];
    if (i < 0) {
      fprintf(stderr, "canaryd: schemas/%s: no field %s\n", src->file, f->name);
      return CANARY_EINVALID;
    }
    if (!avro_codec_shape_signature(avro_schema_record_field_get_by_index(sl->schema, i), got,
                                    sizeof got) ||
        strcmp(got, f->sig) != 0) {
      fprintf(stderr, "canaryd: schemas/%s: field %s has type %s, the code expects %s\n", src->file,
              f->name, got, f->sig);
      return CANARY_EINVALID;
    }
    sl->idx[k] = i;
  }
  if (!(sl->shape = avro_codec_shape_compile(sl->schema, why, sizeof why))) {
    fprintf(stderr, "canaryd: schemas/%s: %s\n", src->file, why);
    return CANARY_ENOMEM;
  }
  if (!(sl->iface = avro_generic_class_from_schema(sl->schema)))
    return CANARY_ENOMEM;
  if (avro_generic_value_new(sl->iface, &sl->enc))
    return CANARY_ENOMEM;
  sl->have_enc = true;
  if (avro_generic_value_new(sl->iface, &sl->dec))
    return CANARY_ENOMEM;
  sl->have_dec = true;
  return CANARY_OK;
}

static void done_slot(struct avro_codec_slot *sl) {
  if (sl->have_enc)
    avro_value_decref(&sl->enc);
  if (sl->have_dec)
    avro_value_decref(&sl->dec);
  if (sl->iface)
    avro_value_iface_decref(sl->iface);
  if (sl->schema)
    avro_schema_decref(sl->schema);
  avro_codec_shape_free(sl->shape);
  memset(sl, 0, sizeof *sl);
}

int avro_codec_new(avro_codec_t **out) {
  *out = NULL;
  avro_codec_t *c = calloc(1, sizeof *c);
  if (!c)
    return CANARY_ENOMEM;
  int rc = CANARY_OK;
  for (size_t i = 0; i < avro_codec_schema_src_count && !rc; i++) {
    const struct avro_codec_schema_src *src = &avro_codec_schema_srcs[i];
    int which = -1;
    for (int s = 0; s < SLOT_COUNT && which < 0; s++)
      if (strcmp(topic_name(SLOTS[s].topic), src->topic) == 0)
        which = s;
    /* A topic with two schemas: the higher id is the current version (the encoders'), the
     * lower one its older version, still decoded. */
    for (size_t j = 0; which >= 0 && j < avro_codec_schema_src_count; j++) {
      const struct avro_codec_schema_src *o = &avro_codec_schema_srcs[j];
      if (o->id > src->id && strcmp(o->topic, src->topic) == 0)
        which = older_slot(which);
    }
    if (which < 0 || c->slot[which].topic) {
      fprintf(stderr, "canaryd: schemas/ids.txt: %s topic %s for schema id %d\n",
              which < 0 ? "unknown" : "repeated", src->topic, (int)src->id);
      rc = CANARY_EINVALID;
      break;
    }
    rc = setup_slot(&c->slot[which], (enum avro_slot)which, src);
    char why[256];
    if (!rc &&
        (rc = avro_codec_event_bind(&c->slot[which], (enum avro_slot)which, why, sizeof why)))
      fprintf(stderr, "canaryd: schemas/%s: %s\n", src->file, why);
  }
  for (int s = 0; s < SLOT_COUNT && !rc; s++) {
    if (!c->slot[s].topic) {
      fprintf(stderr, "canaryd: schemas/ids.txt: no schema for %s\n", topic_name(SLOTS[s].topic));
      rc = CANARY_EINVALID;
    }
  }
  /* One reader and one writer for every message: set_source / set_dest point them anew. */
  static const char none[1];
  if (!rc &&
      (!(c->reader = avro_reader_memory(none, 0)) || !(c->writer = avro_writer_memory(none, 0))))
    rc = CANARY_ENOMEM;
  if (rc) {
    avro_codec_destroy(c);
    return rc;
  }
  *out = c;
  return CANARY_OK;
}

void avro_codec_destroy(avro_codec_t *c) {
  if (!c)
    return;
  for (int s = 0; s < SLOT_COUNT; s++)
    done_slot(&c->slot[s]);
  if (c->reader)
    avro_reader_free(c->reader);
  if (c->writer)
    avro_writer_free(c->writer);
  free(c->counters);
  free(c->gauges);
  free(c->dists);
  free(c->values);
  free(c->samples);
  free(c);
}

void avro_buf_free(struct avro_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- schemas and frames --------------------------------------------------------------------- */

static const struct avro_codec_schema_src *src_of(int32_t id) {
  for (size_t i = 0; i < avro_codec_schema_src_count; i++)
    if (avro_codec_schema_srcs[i].id == id)
      return &avro_codec_schema_srcs[i];
  return NULL;
}

const char *avro_codec_schema_json(int32_t id) {
  const struct avro_codec_schema_src *s = src_of(id);
  return s ? s->json : NULL;
}

const char *avro_codec_schema_topic(int32_t id) {
  const struct avro_codec_schema_src *s = src_of(id);
  return s ? s->topic : NULL;
}

int32_t avro_codec_schema_id(const void *buf, size_t len) {
  const unsigned char *p = buf;
  if (!p || len < AVRO_CODEC_HEADER || p[0] != AVRO_CODEC_MAGIC)
    return -1;
  uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
  return (int32_t)id;
}

static const char *expected(unsigned allowed) {
  if (allowed == SLOTS_INPUT)
    return "an input event (canary.deploy, canary.commands or canary.metrics)";
  /* One topic, any of its versions (canary.flags: ids 14 and 12). */
  const char *topic = NULL;
  for (int s = 0; s < SLOT_COUNT; s++) {
    if (!(allowed & 1u << s))
      continue;
    if (topic && strcmp(topic, topic_name(SLOTS[s].topic)) != 0)
      return "another schema";
    topic = topic_name(SLOTS[s].topic);
  }
  return topic ? topic : "another schema";
}

int avro_codec_read(avro_codec_t *c, const void *buf, size_t len, unsigned allowed,
                    struct avro_codec_slot **slot, char *why, size_t why_len) {
  const unsigned char *p = buf;
  if (why && why_len)
    why[0] = '\0';
  if (!p || len < AVRO_CODEC_HEADER)
    return canary_why(why, why_len, CANARY_EPARSE,
                      "frame: %zu bytes, shorter than the 5-byte header (magic byte 0x00, "
                      "4-byte schema id)",
                      p ? len : 0);
  if (p[0] != AVRO_CODEC_MAGIC)
    return canary_why(why, why_len, CANARY_EPARSE,
                      "frame: magic byte 0x%02x, expected 0x00 (Confluent wire format)%s", p[0],
                      p[0] == '{' ? "; this looks like JSON" : "");
  int32_t id = avro_codec_schema_id(buf, len);
  struct avro_codec_slot *sl = NULL;
  for (int s = 0; s < SLOT_COUNT; s++)
    if (c->slot[s].id == id)
      sl = &c->slot[s];
  if (!sl)
    return canary_why(why, why_len, CANARY_EPARSE, "frame: unknown schema id %ld (schemas/ids.txt)",
                      (long)id);
  if (!(allowed & 1u << (sl - c->slot)))
    return canary_why(why, why_len, CANARY_EPARSE, "frame: schema id %ld is %s, not %s", (long)id,
                      sl->topic, expected(allowed));

  const unsigned char *body = p + AVRO_CODEC_HEADER;
  size_t n = len - AVRO_CODEC_HEADER;
  int rc = avro_codec_shape_check(sl->shape, body, n, why, why_len);
  if (rc)
    return rc;
  avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)n);
  if ((rc = avro_value_read(c->reader, &sl->dec)) != 0) {
    /* After the check only memory can run out; report anything else as what avro-c says. */
    canary_why(why, why_len, CANARY_EPARSE, "body: %s (schema id %ld)", avro_strerror(), (long)id);
    return rc == ENOMEM ? CANARY_ENOMEM : CANARY_EPARSE;
  }
  *slot = sl;
  return CANARY_OK;
}

/* ---- encoding ------------------------------------------------------------------------------- */

avro_value_t *avro_codec_begin(avro_codec_t *c, enum avro_slot s) {
  avro_value_t *v = &c->slot[s].enc;
  /* Reset empties maps and arrays; every other field is set by the encoder. */
  return avro_value_reset(v) ? NULL : v;
}

static int reserve(struct avro_buf *b, size_t n) {
  if (b->cap >= n)
    return CANARY_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < n)
    cap *= 2;
  unsigned char *p = realloc(b->data, cap);
  if (!p)
    return CANARY_ENOMEM;
  b->data = p;
  b->cap = cap;
  return CANARY_OK;
}

int avro_codec_finish(avro_codec_t *c, enum avro_slot s, struct avro_buf *out) {
  struct avro_codec_slot *sl = &c->slot[s];
  size_t size;
  int rc = avro_value_sizeof(&sl->enc, &size);
  if (rc)
    return avro_codec_err(rc);
  out->len = 0;
  if ((rc = reserve(out, AVRO_CODEC_HEADER + size)))
    return rc;
  uint32_t id = (uint32_t)sl->id;
  out->data[0] = AVRO_CODEC_MAGIC;
  out->data[1] = (unsigned char)(id >> 24);
  out->data[2] = (unsigned char)(id >> 16);
  out->data[3] = (unsigned char)(id >> 8);
  out->data[4] = (unsigned char)id;
  avro_writer_memory_set_dest(c->writer, (const char *)out->data + AVRO_CODEC_HEADER,
                              (int64_t)size);
  if ((rc = avro_value_write(c->writer, &sl->enc)))
    return avro_codec_err(rc);
  out->len = AVRO_CODEC_HEADER + size;
  return CANARY_OK;
}

int avro_codec_field(struct avro_codec_slot *sl, avro_value_t *rec, int k, avro_value_t *out) {
  return avro_value_get_by_index(rec, (size_t)sl->idx[k], out, NULL);
}

/* s must end within size bytes: a struct's char array that is not terminated is a bug upstream. */
static bool terminated(const char *s, size_t size) { return s && memchr(s, '\0', size) != NULL; }

int avro_codec_put_str(struct avro_codec_slot *sl, avro_value_t *rec, int k, const char *s,
                       size_t size) {
  avro_value_t f;
  if (!terminated(s, size))
    return CANARY_EINVALID;
  int rc = avro_codec_field(sl, rec, k, &f);
  if (!rc)
    rc = avro_value_set_string(&f, s);
  return rc ? avro_codec_err(rc) : CANARY_OK;
}

int avro_codec_put_branch(struct avro_codec_slot *sl, avro_value_t *rec, int k, bool present,
                          avro_value_t *v) {
  avro_value_t f;
  int rc = avro_codec_field(sl, rec, k, &f);
  if (!rc)
    rc = avro_value_set_branch(&f, present ? 1 : 0, v);
  if (!rc && !present)
    rc = avro_value_set_null(v);
  return rc ? avro_codec_err(rc) : CANARY_OK;
}

int avro_codec_put_ostr(struct avro_codec_slot *sl, avro_value_t *rec, int k, const char *s,
                        size_t size) {
  avro_value_t v;
  bool present = s && s[0];
  if (present && !terminated(s, size))
    return CANARY_EINVALID;
  int rc = avro_codec_put_branch(sl, rec, k, present, &v);
  if (rc || !present)
    return rc;
  return avro_value_set_string(&v, s) ? CANARY_ENOMEM : CANARY_OK;
}

int avro_codec_put_long(struct avro_codec_slot *sl, avro_value_t *rec, int k, int64_t v) {
  avro_value_t f;
  int rc = avro_codec_field(sl, rec, k, &f);
  if (!rc)
    rc = avro_value_set_long(&f, v);
  return rc ? avro_codec_err(rc) : CANARY_OK;
}

int avro_codec_put_int(struct avro_codec_slot *sl, avro_value_t *rec, int k, int32_t v) {
  avro_value_t f;
  int rc = avro_codec_field(sl, rec, k, &f);
  if (!rc)
    rc = avro_value_set_int(&f, v);
  return rc ? avro_codec_err(rc) : CANARY_OK;
}

int avro_codec_put_bool(struct avro_codec_slot *sl, avro_value_t *rec, int k, bool v) {
  avro_value_t f;
  int rc = avro_codec_field(sl, rec, k, &f);
  if (!rc)
    rc = avro_value_set_boolean(&f, v);
  return rc ? avro_codec_err(rc) : CANARY_OK;
}

int avro_codec_put_double(struct avro_codec_slot *sl, avro_value_t *rec, int k, double v) {
  avro_value_t f;
  int rc = avro_codec_field(sl, rec, k, &f);
  if (!rc)
    rc = avro_value_set_double(&f, v);
  return rc ? avro_codec_err(rc) : CANARY_OK;
}

/* ---- decoding helpers ----------------------------------------------------------------------- */

int avro_codec_opt(avro_value_t *field, avro_value_t *v) {
  if (avro_value_get_type(field) != AVRO_UNION) {
    *v = *field;
    return 1;
  }
  if (avro_value_get_current_branch(field, v))
    return -1;
  return avro_value_get_type(v) == AVRO_NULL ? 0 : 1;
}

int avro_codec_get_str(avro_value_t *v, const char *field, const char **s, size_t *n, char *why,
                       size_t why_len) {
  const char *p = NULL;
  size_t size = 0;
  if (avro_value_get_string(v, &p, &size))
    return canary_why(why, why_len, CANARY_EINVALID, "%s: not a string", field);
  /* avro-c counts the terminating NUL in size; an empty value may have no buffer at all. */
  size_t len = size ? size - 1 : 0;
  if (!p)
    p = "";
  if (memchr(p, '\0', len))
    return canary_why(why, why_len, CANARY_EINVALID, "%s: contains a NUL byte", field);
  *s = p;
  *n = len;
  return CANARY_OK;
}

int avro_codec_copy_str(avro_value_t *v, const char *field, char *dst, size_t size, char *why,
                        size_t why_len) {
  const char *s = "";
  size_t n = 0;
  int rc = avro_codec_get_str(v, field, &s, &n, why, why_len);
  if (rc)
    return rc;
  if (n >= size)
    return canary_why(why, why_len, CANARY_EINVALID, "%s: %zu bytes, longer than the %zu allowed",
                      field, n, size - 1);
  memcpy(dst, s, n);
  dst[n] = '\0';
  return CANARY_OK;
}
