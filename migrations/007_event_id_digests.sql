-- canaryd schema, version 7: each applied event id keeps the digest of its content.
--
-- A repeated event id was dropped as a duplicate whatever it carried, so an id reused for other
-- content was lost without a word (issue 10). The engine now keeps with each id the
-- event_digest() of the event applied under it (src/core/event_digest.c: 64 bits of the decoded
-- event, not of its bytes), and a repeat with another digest is dead-lettered as a conflict; a
-- restarted worker needs the digests back to tell the two apart. digests holds them as hashes
-- holds the ids: 8 bytes each, big-endian, in the same order (digests[k] is hashes[k]'s).
--
-- Backward compatible: rows written before this migration (or by a worker of an older version)
-- have no digests, nor have event_ids rows; their ids come back with an unknown digest, and a
-- repeat of one is a plain duplicate, never a false conflict. The check is NOT VALID: it holds
-- for every new row, without scanning the old ones (all NULL) under the table's lock.
ALTER TABLE event_id_batches ADD COLUMN digests bytea;
-- Random bytes, like the hashes: compressing them is wasted work.
ALTER TABLE event_id_batches ALTER COLUMN digests SET STORAGE EXTERNAL;
ALTER TABLE event_id_batches ADD CONSTRAINT event_id_batches_digests_length
  CHECK (digests IS NULL OR length(digests) = length(hashes)) NOT VALID;
