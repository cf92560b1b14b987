-- canaryd schema, version 9: what `canaryd notify` delivered, and every attempt it made.
-- (008 is taken by another branch.)
--
-- A notification is delivered at most once per sink: the delivery row is keyed by the
-- notification's id and the sink. Every attempt is recorded, and committed, BEFORE its request
-- leaves (state 'sending', an attempt row without an outcome), so a relay that finds a row still
-- 'sending' after a crash knows the outcome is unknown: it dead-letters the notification
-- ("outcome unknown") rather than send it a second time.
CREATE TABLE notify_deliveries (
  notification_id text NOT NULL,
  sink            text NOT NULL,   -- slack, pagerduty, statuspage, smtp
  rollout         text NOT NULL,
  state           text NOT NULL CHECK (state IN ('new', 'sending', 'retry', 'delivered',
                                                 'skipped', 'dead')),
  attempts        integer NOT NULL DEFAULT 0,
  detail          text,            -- the last outcome; for 'dead', the dead letter's reason
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (notification_id, sink)
);
CREATE INDEX notify_deliveries_open ON notify_deliveries (state) WHERE state IN ('sending', 'retry');

CREATE TABLE notify_attempts (
  notification_id text NOT NULL,
  sink            text NOT NULL,
  attempt         integer NOT NULL,
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,     -- NULL: in flight, or the relay died during it
  outcome         text,            -- delivered, retry, refused, failed, unknown (a crash)
  status          integer,         -- HTTP status or SMTP reply code, 0 when there was none
  detail          text,
  PRIMARY KEY (notification_id, sink, attempt),
  FOREIGN KEY (notification_id, sink) REFERENCES notify_deliveries ON DELETE CASCADE
);

-- What a pager or status page has open for a rollout: the page a resolve closes (PagerDuty,
-- dedup_key = the rollout), the incident an all-clear resolves (Statuspage: its incident id).
CREATE TABLE notify_alerts (
  sink        text NOT NULL,
  alert_key   text NOT NULL,
  remote_id   text,
  open        boolean NOT NULL,
  opened_by   text NOT NULL,       -- the notification that opened it
  closed_by   text,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sink, alert_key)
);
