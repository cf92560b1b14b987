-- canaryd schema, version 14: `canaryd notify` prunes its record (issue 12).
--
-- notify_deliveries and notify_attempts kept every notification ever delivered. The relay now
-- deletes, every few minutes, the deliveries settled for good — delivered, or skipped (an
-- all-clear with nothing open) — whose last change is older than --retention-hours (15 days),
-- their attempts with them (ON DELETE CASCADE), and the pager's and status page's alerts closed
-- as long. Dead-lettered deliveries stay: a person has to look at them. The retention must be
-- longer than a message can stay on canary.notifications (retention.ms plus segment.ms: 14 days
-- with Kafka's defaults): a row is what tells a redelivered notification from a new one.
--
-- This index finds the prunable rows without reading the open ones.
CREATE INDEX notify_deliveries_settled ON notify_deliveries (updated_at)
  WHERE state IN ('delivered', 'skipped');
