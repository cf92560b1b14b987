/*
 * One batch, one transaction, one round trip: BEGIN, the epoch fence, offsets, rollouts,
 * transitions, outbox rows and event ids, COMMIT — pipelined. Each table gets one statement
 * whatever the batch size: every column travels as one array parameter in PostgreSQL's binary
 * format, unnest()ed on the server. Binary arrays cost the server no parsing but for the JSON
 * columns (a JSON array of rows via json_to_recordset spent more time parsing than inserting).
 * Over 800 lines and one file on purpose: the statements, their binary array parameters and the
 * pipeline that sends and reads them back are one transaction's code, read top to bottom.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/metrics_json.h"
#include "codec/rollout_json.h"
#include "core/idset.h"
#include "store/store.h"
#include "store/store_internal.h"

/* Type OIDs of the array elements (pg_type.h: fixed since PostgreSQL 9.4). */
#define OID_INT8 20
#define OID_INT4 23
#define OID_TEXT 25
#define OID_JSON 114
#define OID_FLOAT8 701
#define OID_BYTEA 17
#define OID_JSONB 3802

static const char SQL_FENCE[] = "SELECT canary_fence($1::int, $2::bigint, $3::jsonb)";

static const char SQL_OFFSETS[] = "INSERT INTO offsets (shard, topic, next_offset) "
                                  "SELECT $1::int, u.topic, u.next_offset "
                                  "FROM unnest($2::text[], $3::int8[]) AS u(topic, next_offset) "
                                  "ON CONFLICT (shard, topic) DO UPDATE "
                                  "SET next_offset = EXCLUDED.next_offset, updated_at = now()";

/* WITH ORDINALITY ... ORDER BY: new rollouts take their creation rank (ord) in batch order. */
static const char SQL_ROLLOUTS[] =
    "INSERT INTO rollouts (id, shard, service, version, state, stage, exposure_percent, seq, "
    "body, metrics, zscores, dispersion) "
    "SELECT u.id, $1::int, u.service, u.version, u.state, u.stage, u.exposure_percent, u.seq, "
    "u.body, u.metrics, u.zscores, u.dispersion "
    "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::float8[], "
    "$8::int8[], $9::json[], $10::json[], $11::json[], $12::json[]) WITH ORDINALITY "
    "AS u(id, service, version, state, stage, exposure_percent, seq, body, metrics, zscores, "
    "dispersion, n) "
    "ORDER BY u.n "
    "ON CONFLICT (id) DO UPDATE SET shard = EXCLUDED.shard, service = EXCLUDED.service, "
    "version = EXCLUDED.version, state = EXCLUDED.state, stage = EXCLUDED.stage, "
    "exposure_percent = EXCLUDED.exposure_percent, seq = EXCLUDED.seq, body = EXCLUDED.body, "
    "metrics = coalesce(EXCLUDED.metrics, rollouts.metrics), "
    "zscores = coalesce(EXCLUDED.zscores, rollouts.zscores), "
    "dispersion = coalesce(EXCLUDED.dispersion, rollouts.dispersion), updated_at = now()";

static const char SQL_WINDOW_FROM[] =
    "UPDATE shards SET window_from = $2::int8 WHERE shard = $1::int";

static const char SQL_TRANSITIONS[] =
    "INSERT INTO transitions (rollout, seq, id, time, action, from_stage, to_stage, state, "
    "reason, rule, actor, evidence, evidence_items) "
    "SELECT u.rollout, u.seq, u.id, timestamptz 'epoch' + u.time_ms * interval '1 millisecond', "
    "u.action, u.from_stage, u.to_stage, u.state, u.reason, u.rule, u.actor, u.evidence, "
    "u.evidence_items "
    "FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::json[]) "
    "AS u(rollout, seq, id, time_ms, action, from_stage, to_stage, state, reason, rule, actor, "
    "evidence, evidence_items)";

/* ON CONFLICT DO NOTHING: a batch applied twice never doubles an output. */
static const char SQL_OUTBOX[] =
    "INSERT INTO outbox (shard, topic, key, message_id, payload) "
    "SELECT $1::int, u.topic, u.key, u.message_id, u.payload "
    "FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[]) WITH ORDINALITY "
    "AS u(topic, key, message_id, payload, n) "
    "ORDER BY u.n "
    "ON CONFLICT (message_id) DO NOTHING";

/* Every person's event of the batch (migrations/011_command_audit.sql). */
static const char SQL_AUDIT[] =
    "INSERT INTO command_audit (source, event_id, shard, rollout, time, type, action, actor, "
    "signature, verified, outcome, reason, detail) "
    "SELECT u.source, u.event_id, $1::int, u.rollout, "
    "timestamptz 'epoch' + u.time_ms * interval '1 millisecond', u.type, u.action, u.actor, "
    "u.signature, u.signature = 'verified', u.outcome, u.reason, u.detail "
    "FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], "
    "$8::text[], $9::text[], $10::text[], $11::text[], $12::text[]) "
    "AS u(source, event_id, rollout, time_ms, type, action, actor, signature, outcome, reason, "
    "detail) "
    "ON CONFLICT (source) DO NOTHING";

/* The batch's ids, one row per id epoch (migrations/005_event_id_batches.sql), with their
 * digests (migrations/007_event_id_digests.sql). */
static const char SQL_EVENT_IDS[] =
    "INSERT INTO event_id_batches (shard, epoch, hashes, digests) "
    "SELECT $1::int, u.epoch, u.hashes, u.digests "
    "FROM unnest($2::int8[], $3::bytea[], $4::bytea[]) AS u(epoch, hashes, digests)";

/* Ids of epochs the engine no longer holds (see migrations/004_event_id_epochs.sql), in both
 * tables: event_ids holds what older versions wrote. */
static const char SQL_PRUNE_IDS[] =
    "WITH old AS (DELETE FROM event_ids WHERE shard = $1::int AND epoch < $2::int8) "
    "DELETE FROM event_id_batches WHERE shard = $1::int AND epoch < $2::int8";

/* The dashboard's points (migrations/010_rollout_history.sql). A step recorded again replaces
 * its row; DISTINCT ON keeps the batch's last point of a row (ON CONFLICT may not touch a row
 * twice in one statement). */
static const char SQL_HISTORY[] =
    "INSERT INTO rollout_history (rollout, kind, name, stat, cohort, variant, step_ms, value) "
    "SELECT DISTINCT ON (u.rollout, u.step_ms, u.kind, u.name, u.stat, u.cohort, u.variant) "
    "u.rollout, u.kind, u.name, u.stat, u.cohort, u.variant, u.step_ms, u.value "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], "
    "$7::int8[], $8::float8[]) WITH ORDINALITY "
    "AS u(rollout, kind, name, stat, cohort, variant, step_ms, value, n) "
    "ORDER BY u.rollout, u.step_ms, u.kind, u.name, u.stat, u.cohort, u.variant, u.n DESC "
    "ON CONFLICT (rollout, step_ms, kind, name, stat, cohort, variant) "
    "DO UPDATE SET value = EXCLUDED.value";

/* The history's bounds: the batch's rollouts keep STORE_HISTORY_SPAN_MS behind their newest
 * step, and the shard's rollouts finished longer than STORE_HISTORY_RETENTION ago keep none. */
static const char SQL_PRUNE_HISTORY[] =
    "WITH newest AS (SELECT u.rollout, max(u.step_ms) AS step_ms "
    "FROM unnest($1::text[], $2::int8[]) AS u(rollout, step_ms) GROUP BY u.rollout), "
    "old AS (DELETE FROM rollout_history h USING newest "
    "WHERE h.rollout = newest.rollout AND h.step_ms < newest.step_ms - $3::int8) "
    "DELETE FROM rollout_history WHERE rollout IN (SELECT id FROM rollouts WHERE shard = $4::int "
    "AND state IN ('completed', 'rolled_back') AND updated_at < now() - $5::interval)";

/* ---- binary arrays (the format of array_recv) ------------------------------------------------ */

/*
 * A one-dimensional array: ndim 1, has-null flag, element type, length (patched by arr_end),
 * lower bound 1; then per element its length (-1 = NULL) and bytes, all integers big-endian.
 */
struct arr {
  struct jbuf *b;
  int32_t n;
};

static void put_u32(struct jbuf *b, uint32_t v) {
  v = htonl(v);
  jbuf_write(b, &v, 4);
}

static void put_u64(struct jbuf *b, uint64_t v) {
  put_u32(b, (uint32_t)(v >> 32));
  put_u32(b, (uint32_t)v);
}

static struct arr arr_begin(struct jbuf *b, uint32_t elem_oid) {
  jbuf_reset(b);
  put_u32(b, 1); /* ndim */
  put_u32(b, 0); /* has nulls: informational, array_recv sees the -1 lengths */
  put_u32(b, elem_oid);
  put_u32(b, 0); /* dimension: patched by arr_end */
  put_u32(b, 1); /* lower bound */
  return (struct arr){b, 0};
}

static void arr_end(struct arr *a) {
  if (a->b->oom)
    return;
  uint32_t n = htonl((uint32_t)a->n);
  memcpy(a->b->data + 12, &n, 4);
}

static void arr_bytes(struct arr *a, const void *p, size_t len) {
  put_u32(a->b, (uint32_t)len);
  jbuf_write(a->b, p, len);
  a->n++;
}

static void arr_null(struct arr *a) {
  put_u32(a->b, UINT32_MAX); /* -1 */
  a->n++;
}

static void arr_text(struct arr *a, const char *s) { arr_bytes(a, s, strlen(s)); }

/* Empty strings are NULL: "no stage", "no rule". */
static void arr_text_or_null(struct arr *a, const char *s) {
  if (s && *s)
    arr_text(a, s);
  else
    arr_null(a);
}

static void arr_int8(struct arr *a, int64_t v) {
  put_u32(a->b, 8);
  put_u64(a->b, (uint64_t)v);
  a->n++;
}

static void arr_int4(struct arr *a, int32_t v) {
  put_u32(a->b, 4);
  put_u32(a->b, (uint32_t)v);
  a->n++;
}

static void arr_float8(struct arr *a, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  put_u32(a->b, 8);
  put_u64(a->b, bits);
  a->n++;
}

/*
 * An element written in place (JSON from the codec): arr_open reserves the length, arr_close
 * patches it. jsonb elements start with the format version byte 1, then the text.
 */
static size_t arr_open(struct arr *a, bool jsonb) {
  put_u32(a->b, 0);
  size_t at = a->b->len;
  if (jsonb)
    jbuf_putc(a->b, 1);
  return at;
}

static void arr_close(struct arr *a, size_t at) {
  a->n++;
  if (a->b->oom)
    return;
  uint32_t len = htonl((uint32_t)(a->b->len - at));
  memcpy(a->b->data + at - 4, &len, 4);
}

/* ---- columns --------------------------------------------------------------------------------- */

enum {
  C_OFF_TOPIC,
  C_OFF_NEXT,
  C_R_ID,
  C_R_SERVICE,
  C_R_VERSION,
  C_R_STATE,
  C_R_STAGE,
  C_R_EXPOSURE,
  C_R_SEQ,
  C_R_BODY,
  C_R_METRICS,
  C_R_ZSCORES,
  C_R_DISPERSION,
  C_T_ROLLOUT,
  C_T_SEQ,
  C_T_ID,
  C_T_TIME,
  C_T_ACTION,
  C_T_FROM,
  C_T_TO,
  C_T_STATE,
  C_T_REASON,
  C_T_RULE,
  C_T_ACTOR,
  C_T_EVIDENCE,
  C_T_ITEMS,
  C_O_TOPIC,
  C_O_KEY,
  C_O_MESSAGE_ID,
  C_O_PAYLOAD,
  C_EVENT_ID_EPOCHS,
  C_EVENT_IDS,
  C_EVENT_ID_DIGESTS,
  C_FLAGS,
  C_H_ROLLOUT,
  C_H_KIND,
  C_H_NAME,
  C_H_STAT,
  C_H_COHORT,
  C_H_VARIANT,
  C_H_STEP,
  C_H_VALUE,
  C_A_SOURCE,
  C_A_EVENT_ID,
  C_A_ROLLOUT,
  C_A_TIME,
  C_A_TYPE,
  C_A_ACTION,
  C_A_ACTOR,
  C_A_SIGNATURE,
  C_A_OUTCOME,
  C_A_REASON,
  C_A_DETAIL,
  C_COUNT
};
_Static_assert(C_COUNT <= STORE_PARAM_BUFS, "store_internal.h: raise STORE_PARAM_BUFS");

static size_t write_offsets(const struct store_offsets *o, struct jbuf *cols) {
  struct arr topic = arr_begin(&cols[C_OFF_TOPIC], OID_TEXT);
  struct arr next = arr_begin(&cols[C_OFF_NEXT], OID_INT8);
  for (int t = 0; t < STORE_INPUT_TOPICS; t++) {
    if (o->next[t] < 0)
      continue;
    arr_text(&topic, store_input_topics[t]);
    arr_int8(&next, o->next[t]);
  }
  arr_end(&topic);
  arr_end(&next);
  return (size_t)topic.n;
}

/* True when a later rollout of the batch has the same id: the last state is the one to keep. */
static bool superseded(struct rollout *const *rs, const uint64_t *h, size_t i, size_t n) {
  for (size_t j = i + 1; j < n; j++)
    if (h[j] == h[i] && strcmp(rs[j]->id, rs[i]->id) == 0)
      return true;
  return false;
}

/* m's document written by write, or NULL: the column keeps what is stored (coalesce). */
static void arr_metrics(struct arr *a, const struct rollout_metrics *m,
                        void (*write)(const struct rollout_metrics *, struct jbuf *)) {
  if (!m) {
    arr_null(a);
    return;
  }
  size_t at = arr_open(a, false);
  write(m, a->b);
  arr_close(a, at);
}

static int write_rollouts(const struct store_batch *b, struct jbuf *cols, size_t *n) {
  uint64_t *h = malloc((b->n_rollouts ? b->n_rollouts : 1) * sizeof *h);
  if (!h)
    return CANARY_ENOMEM;
  for (size_t i = 0; i < b->n_rollouts; i++)
    h[i] = idset_hash(b->rollouts[i]->id);
  struct arr id = arr_begin(&cols[C_R_ID], OID_TEXT);
  struct arr service = arr_begin(&cols[C_R_SERVICE], OID_TEXT);
  struct arr version = arr_begin(&cols[C_R_VERSION], OID_TEXT);
  struct arr state = arr_begin(&cols[C_R_STATE], OID_TEXT);
  struct arr stage = arr_begin(&cols[C_R_STAGE], OID_INT4);
  struct arr exposure = arr_begin(&cols[C_R_EXPOSURE], OID_FLOAT8);
  struct arr seq = arr_begin(&cols[C_R_SEQ], OID_INT8);
  struct arr body = arr_begin(&cols[C_R_BODY], OID_JSON);
  struct arr metrics = arr_begin(&cols[C_R_METRICS], OID_JSON);
  struct arr zscores = arr_begin(&cols[C_R_ZSCORES], OID_JSON);
  struct arr dispersion = arr_begin(&cols[C_R_DISPERSION], OID_JSON);
  for (size_t i = 0; i < b->n_rollouts; i++) {
    const struct rollout *r = b->rollouts[i];
    if (superseded(b->rollouts, h, i, b->n_rollouts))
      continue;
    arr_text(&id, r->id);
    arr_text(&service, r->service);
    arr_text(&version, r->version);
    arr_text(&state, rollout_state_name(r->state));
    arr_int4(&stage, r->stage);
    arr_float8(&exposure, r->exposure_percent);
    arr_int8(&seq, r->seq);
    size_t at = arr_open(&body, false);
    rollout_json_write(r, body.b);
    arr_close(&body, at);
    arr_metrics(&metrics, b->metrics ? b->metrics[i] : NULL, metrics_json_write);
    arr_metrics(&zscores, b->zscores ? b->zscores[i] : NULL, metrics_json_write_zscores);
    /* with the metric state (rewritten at every evaluation that moves it): the steps so far */
    arr_metrics(&dispersion, b->metrics ? b->metrics[i] : NULL, metrics_json_write_dispersion);
  }
  struct arr *all[] = {&id,  &service, &version, &state,   &stage,     &exposure,
                       &seq, &body,    &metrics, &zscores, &dispersion};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
    arr_end(all[k]);
  *n = (size_t)id.n;
  free(h);
  return CANARY_OK;
}

static void write_evidence_value(const struct evidence_item *it, struct jbuf *b) {
  switch (it->kind) {
  case EVIDENCE_NUM:
    jbuf_number(b, it->num);
    break;
  case EVIDENCE_INT:
    jbuf_int(b, it->i);
    break;
  case EVIDENCE_STR:
    jbuf_string(b, it->str);
    break;
  case EVIDENCE_BOOL:
    jbuf_bool(b, it->b);
    break;
  default:
    jbuf_null(b);
  }
}

static const char *const evidence_kind_names[] = {"num", "int", "str", "bool"};

/* evidence: the object canary.decisions carries (a repeated key keeps its first value). */
static void write_evidence_object(const struct decision *d, int n, struct jbuf *b) {
  jbuf_putc(b, '{');
  bool first = true;
  for (int k = 0; k < n; k++) {
    const struct evidence_item *it = &d->evidence[k];
    bool repeated = false;
    for (int j = 0; j < k && !repeated; j++)
      repeated = strcmp(d->evidence[j].key, it->key) == 0;
    if (repeated)
      continue;
    if (!first)
      jbuf_putc(b, ',');
    first = false;
    jbuf_string(b, it->key);
    jbuf_putc(b, ':');
    write_evidence_value(it, b);
  }
  jbuf_putc(b, '}');
}

/* evidence_items: every item in order with its kind, so that store_history rebuilds d exactly. */
static void write_evidence_items(const struct decision *d, int n, struct jbuf *b) {
  jbuf_putc(b, '[');
  for (int k = 0; k < n; k++) {
    const struct evidence_item *it = &d->evidence[k];
    jbuf_puts(b, k ? ",[" : "[");
    jbuf_string(b, it->key);
    jbuf_putc(b, ',');
    jbuf_string(b, (unsigned)it->kind < 4 ? evidence_kind_names[it->kind] : "?");
    jbuf_putc(b, ',');
    write_evidence_value(it, b);
    jbuf_putc(b, ']');
  }
  jbuf_putc(b, ']');
}

static void write_transitions(const struct store_batch *b, struct jbuf *cols) {
  struct arr rollout = arr_begin(&cols[C_T_ROLLOUT], OID_TEXT);
  struct arr seq = arr_begin(&cols[C_T_SEQ], OID_INT8);
  struct arr id = arr_begin(&cols[C_T_ID], OID_TEXT);
  struct arr time = arr_begin(&cols[C_T_TIME], OID_INT8);
  struct arr action = arr_begin(&cols[C_T_ACTION], OID_TEXT);
  struct arr from = arr_begin(&cols[C_T_FROM], OID_TEXT);
  struct arr to = arr_begin(&cols[C_T_TO], OID_TEXT);
  struct arr state = arr_begin(&cols[C_T_STATE], OID_TEXT);
  struct arr reason = arr_begin(&cols[C_T_REASON], OID_TEXT);
  struct arr rule = arr_begin(&cols[C_T_RULE], OID_TEXT);
  struct arr actor = arr_begin(&cols[C_T_ACTOR], OID_TEXT);
  struct arr evidence = arr_begin(&cols[C_T_EVIDENCE], OID_JSONB);
  struct arr items = arr_begin(&cols[C_T_ITEMS], OID_JSON);
  for (size_t i = 0; i < b->n_decisions; i++) {
    const struct decision *d = b->decisions[i];
    int n = d->n_evidence < 0 ? 0 : d->n_evidence > EVIDENCE_MAX ? EVIDENCE_MAX : d->n_evidence;
    arr_text(&rollout, d->rollout);
    arr_int8(&seq, d->seq);
    arr_text(&id, d->id);
    arr_int8(&time, d->time_ms);
    arr_text(&action, decision_action_name(d->action));
    arr_text_or_null(&from, d->from_stage);
    arr_text_or_null(&to, d->to_stage);
    arr_text(&state, rollout_state_name(d->state));
    arr_text(&reason, d->reason);
    arr_text_or_null(&rule, d->rule);
    arr_text(&actor, d->actor);
    size_t at = arr_open(&evidence, true);
    write_evidence_object(d, n, evidence.b);
    arr_close(&evidence, at);
    at = arr_open(&items, false);
    write_evidence_items(d, n, items.b);
    arr_close(&items, at);
  }
  struct arr *all[] = {&rollout, &seq,    &id,   &time,  &action,   &from, &to,
                       &state,   &reason, &rule, &actor, &evidence, &items};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
    arr_end(all[k]);
}

static int write_outbox(store_t *s, const struct store_batch *b, struct jbuf *cols) {
  struct arr topic = arr_begin(&cols[C_O_TOPIC], OID_TEXT);
  struct arr key = arr_begin(&cols[C_O_KEY], OID_TEXT);
  struct arr mid = arr_begin(&cols[C_O_MESSAGE_ID], OID_TEXT);
  struct arr payload = arr_begin(&cols[C_O_PAYLOAD], OID_BYTEA);
  for (size_t i = 0; i < b->n_outbox; i++) {
    const struct store_outbox_row *o = &b->outbox[i];
    if (!o->topic || !o->message_id || (!o->payload && o->len)) {
      store_set_error(s, "commit shard %d: outbox row %zu has no topic, message id or payload",
                      b->shard, i);
      return CANARY_EINVALID;
    }
    arr_text(&topic, o->topic);
    if (o->key)
      arr_text(&key, o->key);
    else
      arr_null(&key);
    arr_text(&mid, o->message_id);
    arr_bytes(&payload, o->payload, o->len);
  }
  arr_end(&topic);
  arr_end(&key);
  arr_end(&mid);
  arr_end(&payload);
  return CANARY_OK;
}

static void write_audit(const struct store_batch *b, struct jbuf *cols) {
  struct arr a[C_A_DETAIL - C_A_SOURCE + 1];
  for (int k = C_A_SOURCE; k <= C_A_DETAIL; k++)
    a[k - C_A_SOURCE] = arr_begin(&cols[k], k == C_A_TIME ? OID_INT8 : OID_TEXT);
  for (size_t i = 0; i < b->n_audit; i++) {
    const struct store_audit_row *r = &b->audit[i];
    const char *text[] = {r->source, r->event_id,  r->rollout, NULL,      r->type,  r->action,
                          r->actor,  r->signature, r->outcome, r->reason, r->detail};
    for (int k = 0; k <= C_A_DETAIL - C_A_SOURCE; k++) {
      if (k == C_A_TIME - C_A_SOURCE)
        arr_int8(&a[k], r->time_ms);
      else
        arr_text(&a[k], text[k] ? text[k] : "");
    }
  }
  for (int k = 0; k <= C_A_DETAIL - C_A_SOURCE; k++)
    arr_end(&a[k]);
}

/*
 * The ids as event_id_batches rows: one per run of ids of the same epoch (a batch usually has
 * one epoch, two when it crosses into the next), each a bytea of 8-byte big-endian hashes and
 * one of their digests in the same order (NULL when the batch has none).
 */
static size_t write_event_ids(const struct store_batch *b, struct jbuf *cols) {
  struct arr epochs = arr_begin(&cols[C_EVENT_ID_EPOCHS], OID_INT8);
  struct arr hashes = arr_begin(&cols[C_EVENT_IDS], OID_BYTEA);
  struct arr digests = arr_begin(&cols[C_EVENT_ID_DIGESTS], OID_BYTEA);
  const uint64_t *d = b->event_id_digests;
  size_t at = 0, at_d = 0;
  for (size_t i = 0; i < b->n_event_ids; i++) {
    int64_t epoch = b->event_id_epochs ? b->event_id_epochs[i] : 0;
    if (i == 0 || epoch != (b->event_id_epochs ? b->event_id_epochs[i - 1] : 0)) {
      if (i)
        arr_close(&hashes, at);
      if (i && d)
        arr_close(&digests, at_d);
      arr_int8(&epochs, epoch);
      at = arr_open(&hashes, false);
      if (d)
        at_d = arr_open(&digests, false);
      else
        arr_null(&digests);
    }
    put_u64(hashes.b, b->event_ids[i]);
    if (d)
      put_u64(digests.b, d[i]);
  }
  if (b->n_event_ids)
    arr_close(&hashes, at);
  if (b->n_event_ids && d)
    arr_close(&digests, at_d);
  arr_end(&epochs);
  arr_end(&hashes);
  arr_end(&digests);
  return (size_t)epochs.n;
}

static void write_history(const struct store_batch *b, struct jbuf *cols) {
  struct arr rollout = arr_begin(&cols[C_H_ROLLOUT], OID_TEXT);
  struct arr kind = arr_begin(&cols[C_H_KIND], OID_TEXT);
  struct arr name = arr_begin(&cols[C_H_NAME], OID_TEXT);
  struct arr stat = arr_begin(&cols[C_H_STAT], OID_TEXT);
  struct arr cohort = arr_begin(&cols[C_H_COHORT], OID_INT4);
  struct arr variant = arr_begin(&cols[C_H_VARIANT], OID_TEXT);
  struct arr step = arr_begin(&cols[C_H_STEP], OID_INT8);
  struct arr value = arr_begin(&cols[C_H_VALUE], OID_FLOAT8);
  for (size_t i = 0; i < b->n_history; i++) {
    const struct history_point *p = &b->history[i];
    arr_text(&rollout, p->rollout);
    arr_text(&kind, history_kind_name((enum history_kind)p->kind));
    arr_text(&name, p->name);
    arr_text(&stat, p->stat);
    arr_int4(&cohort, p->cohort);
    arr_text(&variant, p->variant < 0 ? "" : variant_name((enum variant)p->variant));
    arr_int8(&step, p->step_ms);
    arr_float8(&value, p->value);
  }
  struct arr *all[] = {&rollout, &kind, &name, &stat, &cohort, &variant, &step, &value};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
    arr_end(all[k]);
}

/* ---- the pipeline ---------------------------------------------------------------------------- */

#define MAX_PARAMS 16

/* One statement's parameters: text (NUL-terminated) or binary (a column buffer). */
struct params {
  const char *values[MAX_PARAMS];
  int lengths[MAX_PARAMS];
  int formats[MAX_PARAMS];
  int n;
};

static void param_text(struct params *p, const char *s) {
  p->values[p->n] = s;
  p->lengths[p->n] = 0;
  p->formats[p->n++] = 0;
}

static void param_binary(struct params *p, const struct jbuf *b) {
  p->values[p->n] = b->data;
  p->lengths[p->n] = (int)b->len;
  p->formats[p->n++] = 1;
}

/* The statements of one batch as they are queued: s->commit names them for collect(). */
struct pipeline {
  store_t *s;
  bool send_failed;
};

/* libpq copies the parameters into its output buffer here: nothing is read from them later. */
static void pipe_send(struct pipeline *p, const char *what, const char *sql,
                      const struct params *pr) {
  struct store_in_flight *f = &p->s->commit;
  if (p->send_failed)
    return;
  if (f->n == STORE_MAX_STATEMENTS ||
      !PQsendQueryParams(p->s->conn, sql, pr ? pr->n : 0, NULL, pr ? pr->values : NULL,
                         pr ? pr->lengths : NULL, pr ? pr->formats : NULL, 0)) {
    p->send_failed = true;
    return;
  }
  f->what[f->n++] = what;
}

/*
 * Read every statement's result and the sync. The first error wins: the server skips the rest
 * of the pipeline after it (PGRES_PIPELINE_ABORTED). Returns CANARY_OK, CANARY_EFENCED,
 * CANARY_EIO or CANARY_EUNAVAILABLE.
 */
static int collect(store_t *s) {
  const struct store_in_flight *f = &s->commit;
  const int shard = f->shard;
  int rc = CANARY_OK;
  char what[96];
  for (int q = 0; q < f->n; q++) {
    PGresult *res;
    bool any = false;
    while ((res = PQgetResult(s->conn)) != NULL) {
      any = true;
      ExecStatusType st = PQresultStatus(res);
      if (rc == CANARY_OK && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(what, sizeof what, "commit shard %d: %s", shard, f->what[q]);
        rc = store_fail(s, what, res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, STORE_SQLSTATE_FENCED) == 0)
          rc = CANARY_EFENCED;
      }
      PQclear(res);
      if (PQstatus(s->conn) != CONNECTION_OK)
        break;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
      /* Lost, perhaps during COMMIT: whether the batch committed is unknown (see store.h). */
      snprintf(what, sizeof what, "commit shard %d: %s: connection lost", shard, f->what[q]);
      if (rc == CANARY_OK || rc == CANARY_EIO)
        (void)store_fail(s, what, NULL);
      return CANARY_EUNAVAILABLE;
    }
    if (!any) { /* a statement without a result: libpq and we disagree on the pipeline */
      snprintf(what, sizeof what, "commit shard %d: %s: no result", shard, f->what[q]);
      return rc ? rc : store_fail(s, what, NULL);
    }
  }
  PGresult *sync = PQgetResult(s->conn);
  bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!synced && rc == CANARY_OK) {
    snprintf(what, sizeof what, "commit shard %d: pipeline sync", shard);
    rc = store_fail(s, what, NULL);
  }
  return rc;
}

static int build_columns(store_t *s, const struct store_batch *b, size_t *n_offsets,
                         size_t *n_rollouts) {
  struct jbuf *cols = s->params;
  *n_offsets = write_offsets(&b->offsets, cols);
  int rc = write_rollouts(b, cols, n_rollouts);
  if (rc)
    return rc;
  write_transitions(b, cols);
  if ((rc = write_outbox(s, b, cols)))
    return rc;
  write_event_ids(b, cols);
  write_history(b, cols);
  write_audit(b, cols);
  jbuf_reset(&cols[C_FLAGS]);
  if (b->global)
    flags_json_write(b->global, &cols[C_FLAGS]);
  for (size_t i = 0; i < C_COUNT; i++)
    if (cols[i].oom || cols[i].len > INT32_MAX)
      return CANARY_ENOMEM;
  return CANARY_OK;
}

/* The statements of b, in order; tables without rows in the batch are left out. */
static void send_batch(struct pipeline *p, const struct store_batch *b, size_t n_offsets,
                       size_t n_rollouts, const char *shard, const char *epoch) {
  const struct jbuf *c = p->s->params;
  struct params pr;
  pipe_send(p, "BEGIN", "BEGIN", NULL);
  pr = (struct params){0};
  param_text(&pr, shard);
  param_text(&pr, epoch);
  param_text(&pr, b->global ? c[C_FLAGS].data : NULL);
  pipe_send(p, "fence", SQL_FENCE, &pr);
  if (n_offsets) {
    pr = (struct params){0};
    param_text(&pr, shard);
    for (int k = C_OFF_TOPIC; k <= C_OFF_NEXT; k++)
      param_binary(&pr, &c[k]);
    pipe_send(p, "offsets", SQL_OFFSETS, &pr);
  }
  if (n_rollouts) {
    pr = (struct params){0};
    param_text(&pr, shard);
    for (int k = C_R_ID; k <= C_R_DISPERSION; k++)
      param_binary(&pr, &c[k]);
    pipe_send(p, "rollouts", SQL_ROLLOUTS, &pr);
  }
  char window_from[24];
  if (b->window_from > 0) {
    snprintf(window_from, sizeof window_from, "%" PRId64, b->window_from);
    pr = (struct params){0};
    param_text(&pr, shard);
    param_text(&pr, window_from);
    pipe_send(p, "window_from", SQL_WINDOW_FROM, &pr);
  }
  char history_span[24], history_retention[24];
  if (b->n_history) {
    pr = (struct params){0};
    for (int k = C_H_ROLLOUT; k <= C_H_VALUE; k++)
      param_binary(&pr, &c[k]);
    pipe_send(p, "history", SQL_HISTORY, &pr);
    snprintf(history_span, sizeof history_span, "%lld", (long long)STORE_HISTORY_SPAN_MS);
    snprintf(history_retention, sizeof history_retention, "%s", STORE_HISTORY_RETENTION);
    pr = (struct params){0};
    param_binary(&pr, &c[C_H_ROLLOUT]);
    param_binary(&pr, &c[C_H_STEP]);
    param_text(&pr, history_span);
    param_text(&pr, shard);
    param_text(&pr, history_retention);
    pipe_send(p, "prune history", SQL_PRUNE_HISTORY, &pr);
  }
  if (b->n_decisions) {
    pr = (struct params){0};
    for (int k = C_T_ROLLOUT; k <= C_T_ITEMS; k++)
      param_binary(&pr, &c[k]);
    pipe_send(p, "transitions", SQL_TRANSITIONS, &pr);
  }
  if (b->n_outbox) {
    pr = (struct params){0};
    param_text(&pr, shard);
    for (int k = C_O_TOPIC; k <= C_O_PAYLOAD; k++)
      param_binary(&pr, &c[k]);
    pipe_send(p, "outbox", SQL_OUTBOX, &pr);
  }
  if (b->n_event_ids) {
    pr = (struct params){0};
    param_text(&pr, shard);
    param_binary(&pr, &c[C_EVENT_ID_EPOCHS]);
    param_binary(&pr, &c[C_EVENT_IDS]);
    param_binary(&pr, &c[C_EVENT_ID_DIGESTS]);
    pipe_send(p, "event ids", SQL_EVENT_IDS, &pr);
  }
  if (b->n_audit) {
    pr = (struct params){0};
    param_text(&pr, shard);
    for (int k = C_A_SOURCE; k <= C_A_DETAIL; k++)
      param_binary(&pr, &c[k]);
    pipe_send(p, "command audit", SQL_AUDIT, &pr);
  }
  char prune[24];
  if (b->prune_ids_below != 0) {
    snprintf(prune, sizeof prune, "%" PRId64, b->prune_ids_below);
    pr = (struct params){0};
    param_text(&pr, shard);
    param_text(&pr, prune);
    pipe_send(p, "prune event ids", SQL_PRUNE_IDS, &pr);
  }
  pipe_send(p, "COMMIT", "COMMIT", NULL);
}

/*
 * Leave pipeline mode after the batch's results (or a failure); the first error wins. A
 * failure must leave the connection as a plain statement finds it: out of pipeline mode, no
 * transaction open. When the server ends the session during the pipeline (pg_terminate_backend,
 * a restart), libpq may report the FATAL as an ordinary error with the socket still open: the
 * connection stayed in pipeline mode, and every later statement failed with an I/O error
 * ("cannot exit pipeline mode", "not allowed in pipeline mode") that no caller reconnects on.
 * Such a connection is closed and the commit's outcome is "unavailable" (unknown: reconnect
 * and reload); fenced stays fenced (the server refused the batch: nothing was written).
 */
static int finish(store_t *s, int rc) {
  s->commit.active = false;
  if (PQstatus(s->conn) == CONNECTION_OK && PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF &&
      !PQexitPipelineMode(s->conn) && rc == CANARY_OK)
    rc = store_fail(s, "commit: leaving pipeline mode", NULL);
  if (rc == CANARY_OK)
    return rc;
  store_abort(s); /* an error inside BEGIN...COMMIT leaves the transaction open and aborted */
  if (PQstatus(s->conn) != CONNECTION_OK || PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF ||
      PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
    store_disconnect(s);
    if (rc != CANARY_EFENCED)
      rc = CANARY_EUNAVAILABLE;
  }
  return rc;
}

int store_commit_send(store_t *s, const struct store_batch *b) {
  if (s->commit.active) {
    store_set_error(s, "commit shard %d: shard %d's commit is still in flight", b->shard,
                    s->commit.shard);
    return CANARY_EINVALID;
  }
  if (PQstatus(s->conn) != CONNECTION_OK)
    return store_fail(s, "commit", NULL);
  size_t n_offsets = 0, n_rollouts = 0;
  int rc = build_columns(s, b, &n_offsets, &n_rollouts);
  if (rc) {
    if (rc == CANARY_ENOMEM)
      store_set_error(s, "commit shard %d: out of memory", b->shard);
    return rc;
  }
  char shard[16], epoch[24];
  snprintf(shard, sizeof shard, "%d", b->shard);
  snprintf(epoch, sizeof epoch, "%" PRId64, b->epoch);

  if (!PQenterPipelineMode(s->conn))
    return store_fail(s, "commit: pipeline mode", NULL);
  s->commit = (struct store_in_flight){.active = true, .shard = b->shard};
  struct pipeline p = {.s = s};
  send_batch(&p, b, n_offsets, n_rollouts, shard, epoch);
  /* PQpipelineSync flushes: the whole batch is on its way when this returns. */
  if (!p.send_failed && PQpipelineSync(s->conn))
    return CANARY_OK;
  rc = store_fail(s, "commit: send", NULL);
  /* Drain what was queued so that the connection can leave pipeline mode. */
  if (PQstatus(s->conn) == CONNECTION_OK && PQpipelineSync(s->conn))
    (void)collect(s);
  return finish(s, rc);
}

int store_commit_wait(store_t *s) {
  if (!s->commit.active) {
    store_set_error(s, "commit: no commit in flight");
    return CANARY_EINVALID;
  }
  return finish(s, collect(s));
}

bool store_commit_in_flight(const store_t *s) { return s->commit.active; }

int store_commit(store_t *s, const struct store_batch *b) {
  int rc = store_commit_send(s, b);
  return rc == CANARY_OK ? store_commit_wait(s) : rc;
}
