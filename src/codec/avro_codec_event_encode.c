/* Input events -> DeployEvent, CommandEvent and MetricEvent records (emit, the tests, the demo). */
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/avro_codec_internal.h"
#include "core/event_fields.h"
#include "core/topic.h"

/* ---- encoding ------------------------------------------------------------------------------- */

/* Every char array of ev ends within its size. */
static bool strings_terminated(const struct event *ev) {
#define TERM(m) (memchr(ev->m, '\0', sizeof ev->m) != NULL)
  return TERM(id) && TERM(rollout) && TERM(service) && TERM(version) && TERM(baseline_version) &&
         TERM(cohort) && TERM(incident) && TERM(actor) && TERM(detail) && TERM(reason) &&
         TERM(flag) && TERM(item);
#undef TERM
}

static int encode_field(struct avro_codec_slot *sl, avro_value_t *rec, int k, const efield_t *f,
                        const struct event *ev) {
  const char *p = (const char *)ev + f->off;
  avro_value_t v;
  int rc;
  switch (f->kind) {
  case EVENT_FIELD_STR:
    /* Optional strings travel as null when empty, required ones as they are. */
    if (!f->required)
      return avro_codec_put_ostr(sl, rec, k, p, f->size);
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_string(&v, p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_BOOL:
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_boolean(&v, *(const bool *)p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_I64:
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_long(&v, *(const int64_t *)p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_INT:
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_int(&v, *(const int *)p) ? CANARY_ENOMEM : CANARY_OK;
  case EVENT_FIELD_ENUM: {
    int e = event_field_enum_get(ev, f);
    if (e < 0 || e >= f->count)
      return CANARY_EINVALID;
    if ((rc = avro_codec_put_branch(sl, rec, k, true, &v)))
      return rc;
    return avro_value_set_string(&v, f->wire(e)) ? CANARY_ENOMEM : CANARY_OK;
  }
  default:
    break;
  }
  return CANARY_EINVALID;
}

/* The nullable fields of a deploy or command record: the type's own, the rest null. */
static int encode_fields(struct avro_codec_slot *sl, avro_value_t *rec, int first, int count,
                         const struct event *ev) {
  for (int k = first; k < count; k++) {
    const efield_t *f = avro_codec_row_of(sl, k, ev->type);
    avro_value_t v;
    int rc = f ? encode_field(sl, rec, k, f, ev) : avro_codec_put_branch(sl, rec, k, false, &v);
    if (rc)
      return rc;
  }
  return CANARY_OK;
}

/* counters or gauges: names must be set and unique. */
static int encode_values(struct avro_codec_slot *sl, avro_value_t *rec, int k,
                         const struct metric_value *vals, size_t n) {
  avro_value_t map, v;
  if (n && !vals)
    return CANARY_EINVALID;
  if (avro_codec_field(sl, rec, k, &map))
    return CANARY_EINVALID;
  for (size_t i = 0; i < n; i++) {
    int is_new = 0;
    if (!vals[i].name || !vals[i].name[0])
      return CANARY_EINVALID;
    if (avro_value_add(&map, vals[i].name, &v, NULL, &is_new))
      return CANARY_ENOMEM;
    if (!is_new)
      return CANARY_EINVALID; /* a name given twice */
    if (avro_value_set_double(&v, vals[i].value))
      return CANARY_ENOMEM;
  }
  return CANARY_OK;
}

static int encode_metrics(struct avro_codec_slot *sl, avro_value_t *rec, const struct event *ev) {
  avro_value_t v, map, arr, item, x;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, MF_COHORT, ev->cohort, sizeof ev->cohort)))
    return rc;
  const bool metrics = ev->type == EVENT_METRICS;
  if (metrics && (unsigned)ev->metrics.variant >= VARIANT_COUNT)
    return CANARY_EINVALID;
  if ((rc = avro_codec_put_branch(sl, rec, MF_VARIANT, metrics, &v)))
    return rc;
  if (metrics && avro_value_set_string(&v, variant_name(ev->metrics.variant)))
    return CANARY_ENOMEM;
  if ((rc = avro_codec_put_branch(sl, rec, MF_INTERVAL_MS, metrics, &v)))
    return rc;
  if (metrics && avro_value_set_long(&v, ev->metrics.interval_ms))
    return CANARY_ENOMEM;
  /* Maps and arrays were emptied by the reset in avro_codec_begin(). */
  if (metrics) {
    const struct event_metrics *m = &ev->metrics;
    if ((rc = encode_values(sl, rec, MF_COUNTERS, m->counters, m->n_counters)) ||
        (rc = encode_values(sl, rec, MF_GAUGES, m->gauges, m->n_gauges)))
      return rc;
    if (m->n_dists && !m->dists)
      return CANARY_EINVALID;
    if (avro_codec_field(sl, rec, MF_DISTRIBUTIONS, &map))
      return CANARY_EINVALID;
    for (size_t i = 0; i < m->n_dists; i++) {
      const struct metric_dist *dd = &m->dists[i];
      int is_new = 0;
      if (!dd->name || !dd->name[0] || (dd->n && !dd->values))
        return CANARY_EINVALID;
      if (avro_value_add(&map, dd->name, &arr, NULL, &is_new))
        return CANARY_ENOMEM;
      if (!is_new)
        return CANARY_EINVALID;
      for (size_t j = 0; j < dd->n; j++)
        if (avro_value_append(&arr, &x, NULL) || avro_value_set_double(&x, dd->values[j]))
          return CANARY_ENOMEM;
    }
    return CANARY_OK;
  }
  if (ev->diff.n && !ev->diff.samples)
    return CANARY_EINVALID;
  if (avro_codec_field(sl, rec, MF_SAMPLES, &arr))
    return CANARY_EINVALID;
  for (size_t i = 0; i < ev->diff.n; i++) {
    const struct diff_sample *s = &ev->diff.samples[i];
    const double xs[3] = {s->input, s->stable, s->canary};
    if (avro_value_append(&arr, &item, NULL))
      return CANARY_ENOMEM;
    for (int f = 0; f < 3; f++)
      if (avro_value_get_by_index(&item, (size_t)f, &x, NULL) || avro_value_set_double(&x, xs[f]))
        return CANARY_ENOMEM;
  }
  return CANARY_OK;
}

int avro_codec_encode_event(avro_codec_t *c, const struct event *ev, struct avro_buf *out) {
  if ((unsigned)ev->type >= EVENT_TYPE_COUNT || !strings_terminated(ev) ||
      !event_validate(ev, NULL, 0))
    return CANARY_EINVALID;
  const uint32_t bit = 1u << ev->type;
  enum avro_slot which = bit & T_DEPLOY     ? SLOT_DEPLOY
                         : bit & T_COMMANDS ? SLOT_COMMANDS
                                            : SLOT_METRICS;
  struct avro_codec_slot *sl = &c->slot[which];
  avro_value_t *rec = avro_codec_begin(c, which);
  if (!rec)
    return CANARY_ENOMEM;
  int rc;
  if ((rc = avro_codec_put_str(sl, rec, DF_ID, ev->id, sizeof ev->id)) ||
      (rc = avro_codec_put_long(sl, rec, DF_TIME, ev->time_ms)))
    return rc;
  avro_value_t type;
  if (avro_codec_field(sl, rec, DF_TYPE, &type) ||
      avro_value_set_string(&type, event_type_name(ev->type)))
    return CANARY_ENOMEM;
  if (which == SLOT_COMMANDS)
    rc = avro_codec_put_ostr(sl, rec, CF_ROLLOUT, ev->rollout, sizeof ev->rollout);
  else
    rc = avro_codec_put_str(sl, rec, DF_ROLLOUT, ev->rollout, sizeof ev->rollout);
  if (rc)
    return rc;
  switch (which) {
  case SLOT_DEPLOY:
    rc = encode_fields(sl, rec, DF_SERVICE, DF_COUNT_, ev);
    break;
  case SLOT_COMMANDS:
    rc = encode_fields(sl, rec, CF_ACTION, CF_COUNT_, ev);
    break;
  default:
    rc = encode_metrics(sl, rec, ev);
    break;
  }
  if (rc)
    return rc;
  return avro_codec_finish(c, which, out);
}
