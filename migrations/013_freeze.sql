-- canaryd schema, version 13: the freeze, and the verified rollback (issue 12, item 6;
-- docs/operations.md).
--
-- One row: while `frozen`, every worker stops applying input events (they stay in Kafka, the
-- consumer stops fetching) and firing deadlines; `canaryctl unfreeze` lets them go on where they
-- stopped. A flag in the store rather than an event on canary.commands: every worker polls it
-- between passes whatever partitions it owns, and the unfreeze cannot be stuck behind the
-- events it is meant to release (docs/ARCHITECTURE.md). Who froze and thawed, and why, is in
-- command_audit (type 'freeze'); this row holds only the current state.
CREATE TABLE input_freeze (  -- (FREEZE is a keyword of PostgreSQL)
  id      boolean PRIMARY KEY DEFAULT true CHECK (id),  -- a single row
  frozen  boolean NOT NULL,
  actor   text NOT NULL,
  reason  text NOT NULL,
  since   timestamptz NOT NULL
);
INSERT INTO input_freeze (frozen, actor, reason, since) VALUES (false, '', '', now());

-- After a rollback canaryd verifies it against the plan's limit (rollback.verify_within): a
-- decision of its own, action 'verify' (rule rollback_verified or rollback_not_verified).
ALTER TABLE transitions DROP CONSTRAINT transitions_action_check;
ALTER TABLE transitions ADD CONSTRAINT transitions_action_check
  CHECK (action IN ('start', 'advance', 'hold', 'pause', 'resume', 'halt', 'rollback', 'promote',
                    'complete', 'flag', 'check', 'verify'));
