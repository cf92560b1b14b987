-- canaryd schema, version 6: an outbox row that can never be published is set aside.
--
-- The relay publishes the outbox in seq order and stops at the first row Kafka does not take,
-- so that a shard's outputs keep their order through an outage. A row Kafka refuses for good
-- (larger than the producer may send) stopped it for ever, with every later decision of the
-- shard behind it (issue 10). Such a row is now marked published with the reason in failure
-- (so it leaves the relay's index), logged and counted, and the relay moves on.
ALTER TABLE outbox ADD COLUMN failure text;
