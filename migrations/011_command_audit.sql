-- canaryd schema, version 11: who did what (issue 12). (010 and 012 are taken by other branches.)
--
-- Every person's event canaryd took off its input — command, flag.set, approval.granted —
-- accepted or not, with the actor it names, whether its signature verified under the policy,
-- what it asked, and what came of it. Written in the batch's transaction, with the state the
-- event changed (or did not), keyed by the message it came in (topic/partition/offset) so a
-- batch applied twice never doubles a row. Append-only, like transitions.
CREATE TABLE command_audit (
  source      text PRIMARY KEY,      -- <topic>/<partition>/<offset> of the message
  event_id    text NOT NULL,
  shard       integer NOT NULL,
  rollout     text NOT NULL,         -- '' for a global kill switch
  time        timestamptz NOT NULL,  -- the event's time
  recorded_at timestamptz NOT NULL DEFAULT now(),
  type        text NOT NULL,         -- command, flag.set, approval.granted
  action      text NOT NULL,         -- pause, promote --force, kill switch ..., approve support
  actor       text NOT NULL,
  signature   text NOT NULL CHECK (signature IN ('unchecked', 'unsigned', 'verified', 'bad')),
  verified    boolean NOT NULL,      -- signature = 'verified'
  outcome     text NOT NULL CHECK (outcome IN ('accepted', 'refused', 'rejected', 'invalid')),
  reason      text NOT NULL,         -- the person's own reason (commands), or ''
  detail      text NOT NULL          -- canaryd's answer: who was allowed as what, or why not
);
CREATE INDEX command_audit_rollout_time ON command_audit (rollout, time);
CREATE INDEX command_audit_actor_time ON command_audit (actor, time);

CREATE FUNCTION command_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'command_audit is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER command_audit_no_update_delete BEFORE UPDATE OR DELETE ON command_audit
  FOR EACH ROW EXECUTE FUNCTION command_audit_append_only();
CREATE TRIGGER command_audit_no_truncate BEFORE TRUNCATE ON command_audit
  FOR EACH STATEMENT EXECUTE FUNCTION command_audit_append_only();
