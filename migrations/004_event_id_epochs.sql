-- canaryd schema, version 4: event ids are kept for a bounded time.
--
-- event_ids.epoch: the id epoch (engine.h, ENGINE_ID_EPOCH_MS: a day of event time) the engine
-- kept the id in. A shard loads the ids of its newest epoch and the one before, and a batch that
-- starts a new epoch deletes the older ones: repeats are recognised for at least a day of event
-- time, and neither memory nor the table grows with every event ever applied. Rows from before
-- this migration get epoch 0: forgotten with the first epoch change.
ALTER TABLE event_ids ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
CREATE INDEX event_ids_epoch ON event_ids (shard, epoch);
