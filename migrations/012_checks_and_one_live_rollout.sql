-- canaryd schema, version 12 (issue 12; 010 and 011 are taken by other branches): the checklist's
-- check decisions, and one service, one live rollout.
--
-- A person's tick of a checklist item is a decision of its own (action 'check'): the audit trail
-- keeps who ticked what, when and why.
ALTER TABLE transitions DROP CONSTRAINT transitions_action_check;
ALTER TABLE transitions ADD CONSTRAINT transitions_action_check
  CHECK (action IN ('start', 'advance', 'hold', 'pause', 'resume', 'halt', 'rollback', 'promote',
                    'complete', 'flag', 'check'));

-- One service, one live rollout.
-- Two live rollouts of one service publish two traffic splits under the service's key on the
-- compacted canary.flags, and whichever is written last wins: an older paused rollout replaced a
-- newer one's split. canaryd refuses a rollout.requested for a service that has a live rollout
-- (the engine for its own shard, the worker against this table for the others), but two
-- requests on two shards can pass those checks at the same moment, before either is committed.
-- This index is the guarantee: the second commit fails, its shard is rewound to what the store
-- holds, and applied again its request now sees the first rollout here and is dead-lettered.
--
-- A database that already has two live rollouts of one service cannot take the index: say
-- which, rather than pick one to end (that is a person's decision: canaryctl rollback ID).
DO $$
DECLARE
  dup text;
BEGIN
  SELECT string_agg(service || ' (' || ids || ')', '; ') INTO dup
  FROM (SELECT service, string_agg(id, ', ' ORDER BY ord) AS ids FROM rollouts
        WHERE state IN ('pending', 'running', 'paused')
        GROUP BY service HAVING count(*) > 1) AS d;
  IF dup IS NOT NULL THEN
    RAISE EXCEPTION 'services with more than one live rollout: %; roll back all but one of each '
                    '(canaryctl rollback ID) with the previous canaryd, then upgrade', dup;
  END IF;
END $$;

CREATE UNIQUE INDEX rollouts_one_live_per_service ON rollouts (service)
  WHERE state IN ('pending', 'running', 'paused');
