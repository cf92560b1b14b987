-- canaryd schema, version 10: what a dashboard charts of each rollout (issue 13).
--
-- The worker records, with each batch, one point per series per step of event time (the plan's
-- dashboard.step, a minute) — a metric of a cohort and variant (counter sum, gauge avg/max,
-- distribution p50/p75/p95/p99), a halt rule's reading (value, baseline, threshold, progress of
-- its evidence, firing), the rollout's exposure and stage — computed by the core
-- (src/core/history.c) from the windows the rules read. A step recorded again (a worker that
-- restarted) replaces its row. Bounded: a rollout keeps at most 8 days of steps (its longest
-- life under the seed's plan: 122 h of stages and a day of watch), and the rows of a rollout
-- finished (completed or rolled back) for more than 7 days are deleted by the batches of its
-- shard. Readers (canaryctl dashboard) query it; nobody reads a worker's memory.
CREATE TABLE rollout_history (
  rollout  text     NOT NULL,
  kind     text     NOT NULL CHECK (kind IN ('metric', 'business', 'rule', 'split')),
  name     text     NOT NULL,   -- metric, rule, or 'rollout'
  stat     text     NOT NULL,   -- sum, avg, max, p50, p75, p95, p99, n, value, baseline, ...
  cohort   smallint NOT NULL,   -- stage index, -1 none
  variant  text     NOT NULL,   -- canary, baseline, '' none
  step_ms  bigint   NOT NULL,   -- start of the step, ms since the epoch (event time)
  value    double precision NOT NULL,
  PRIMARY KEY (rollout, step_ms, kind, name, stat, cohort, variant)
);
