-- canaryd schema, version 1: shard ownership, rollout state, the transition log, Kafka offsets,
-- the outbox and the applied event ids. store_migrate() runs this file in one transaction and
-- records it in schema_migrations; never edit it once released (its checksum is checked): add
-- migrations/NNN_*.sql instead.

-- A shard is one partition number across the co-partitioned input topics, and the unit of
-- ownership. owner_epoch is bumped by every claim; a batch commits only under the epoch it was
-- read with (canary_fence below), so a worker that lost the shard cannot write any more.
CREATE TABLE shards (
  shard        integer PRIMARY KEY CHECK (shard >= 0),
  owner        text NOT NULL,
  owner_epoch  bigint NOT NULL CHECK (owner_epoch > 0),
  global_flags jsonb CHECK (global_flags IS NULL OR jsonb_typeof(global_flags) = 'object'),
  claimed_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN shards.global_flags IS
  'the shard''s global kill switches (flags_json v1); NULL = the plan''s defaults';

-- Next offset to consume per input topic; advances in the same transaction as the state.
CREATE TABLE offsets (
  shard       integer NOT NULL REFERENCES shards,
  topic       text NOT NULL,
  next_offset bigint NOT NULL CHECK (next_offset >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (shard, topic)
);

-- One row per rollout: the columns are for people and SQL; body (rollout_json v1) is the whole
-- struct rollout and the only thing the worker reads back. body is json, not jsonb: json keeps
-- the text the codec wrote, so a restored rollout is the same value bit for bit (jsonb would
-- turn -0 into 0); ->> works on both.
CREATE TABLE rollouts (
  id               text PRIMARY KEY,
  ord              bigint GENERATED ALWAYS AS IDENTITY UNIQUE, -- creation order: engine order
  shard            integer NOT NULL REFERENCES shards,
  service          text NOT NULL,
  version          text NOT NULL,
  state            text NOT NULL
                   CHECK (state IN ('pending', 'running', 'paused', 'rolled_back', 'completed')),
  stage            integer NOT NULL CHECK (stage >= 0),
  exposure_percent double precision NOT NULL,
  seq              bigint NOT NULL CHECK (seq >= 0),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  body             json NOT NULL CHECK (json_typeof(body) = 'object')
);
CREATE INDEX rollouts_shard_ord ON rollouts (shard, ord);
CREATE INDEX rollouts_service ON rollouts (service, ord);

-- Every decision, append-only: the audit trail behind "why did it halt?".
-- evidence is the object that canary.decisions carries (the first value of a repeated key);
-- evidence_items is the complete, ordered list [[key, kind, value], ...] the decision is rebuilt
-- from (a gate decision can name one criterion twice: exit gate and next entry gate).
CREATE TABLE transitions (
  rollout        text NOT NULL REFERENCES rollouts (id),
  seq            bigint NOT NULL CHECK (seq > 0),
  id             text NOT NULL UNIQUE,
  time           timestamptz NOT NULL,
  action         text NOT NULL
                 CHECK (action IN ('start', 'advance', 'hold', 'pause', 'resume', 'halt',
                                   'rollback', 'promote', 'complete', 'flag')),
  from_stage     text,
  to_stage       text,
  state          text NOT NULL
                 CHECK (state IN ('pending', 'running', 'paused', 'rolled_back', 'completed')),
  reason         text NOT NULL,
  rule           text,
  actor          text NOT NULL,
  evidence       jsonb NOT NULL CHECK (jsonb_typeof(evidence) = 'object'),
  evidence_items json NOT NULL CHECK (json_typeof(evidence_items) = 'array'),
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rollout, seq)
);
CREATE INDEX transitions_time ON transitions (time);

CREATE FUNCTION transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'transitions is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER transitions_no_update_delete BEFORE UPDATE OR DELETE ON transitions
  FOR EACH ROW EXECUTE FUNCTION transitions_append_only();
CREATE TRIGGER transitions_no_truncate BEFORE TRUNCATE ON transitions
  FOR EACH STATEMENT EXECUTE FUNCTION transitions_append_only();

-- Messages for Kafka, written with the state that caused them and published by the relay.
-- message_id is deterministic (decision id, notification id, ...): a batch applied twice
-- inserts nothing the second time. seq orders a shard's rows in commit order (the shard's rows
-- are written under its row lock, see canary_fence).
CREATE TABLE outbox (
  seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  shard        integer NOT NULL,
  topic        text NOT NULL,
  key          text,
  message_id   text NOT NULL UNIQUE,
  payload      bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
-- The relay's query: unpublished rows in seq order. Small, because published rows leave it.
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Ids of the events applied, as idset_hash() (64-bit FNV-1a, stored as its two's complement).
CREATE TABLE event_ids (
  shard      integer NOT NULL,
  hash       bigint NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (shard, hash)
);

-- The fence of every batch: the first statement of the transaction. Takes the shard's row lock
-- (so a concurrent claim waits for the batch, and the batch sees a claim that committed first)
-- and fails with SQLSTATE CF001 when the shard was claimed under a newer epoch. Raising, not
-- returning 0 rows, is what makes the rest of the pipelined batch skip.
CREATE FUNCTION canary_fence(p_shard integer, p_epoch bigint, p_global_flags jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE shards
     SET global_flags = COALESCE(p_global_flags, global_flags), updated_at = now()
   WHERE shard = p_shard AND owner_epoch = p_epoch;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'shard %: epoch % is fenced (another worker claimed the shard)',
      p_shard, p_epoch USING ERRCODE = 'CF001';
  END IF;
END
$$;
