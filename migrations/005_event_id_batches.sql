-- canaryd schema, version 5: a batch's event ids in one row.
--
-- event_ids took one row (and two index entries) per applied event: with a batch of 5,000
-- metric events, 5,000 index insertions per commit, the biggest part of the commit's work on the
-- server. event_id_batches holds a batch's ids of one id epoch as one value: hashes is the
-- idset_hash() of every id, 8 bytes each, big-endian, one after the other. Loading and pruning go
-- by epoch as before (migrations/004_event_id_epochs.sql); a batch re-applied after a commit of
-- unknown outcome reloads the shard first, so a row never repeats ids of an earlier row of its
-- epoch.
--
-- event_ids stays: its rows (written before this migration, or by a worker of an older version)
-- are loaded with these and pruned by the same epochs, so it empties itself within two epochs.
CREATE TABLE event_id_batches (
  shard  integer NOT NULL,
  epoch  bigint NOT NULL,
  seq    bigint GENERATED ALWAYS AS IDENTITY,
  hashes bytea NOT NULL CHECK (length(hashes) % 8 = 0),
  PRIMARY KEY (shard, epoch, seq)
);
-- The hashes are random bytes: compressing them is wasted work.
ALTER TABLE event_id_batches ALTER COLUMN hashes SET STORAGE EXTERNAL;
