-- canaryd schema, version 2: what a restarted worker needs to give a rollout its metric state
-- back (docs/ARCHITECTURE.md, "Metric windows after a restart").
--
-- rollouts.metrics: the part of the metric state its events do not give back — the for: states
-- of halt rules and metric criteria, the evaluation schedule and the zscore histories
-- (metrics_json v1; NULL: none saved yet).
-- shards.window_from: the offset of the shard's canary.metrics partition from which a restart
-- replays metric events into the windows; everything before it is older than any window the
-- plan reads (NULL: from the partition's start).
ALTER TABLE rollouts ADD COLUMN metrics json CHECK (metrics IS NULL OR json_typeof(metrics) = 'object');
ALTER TABLE shards ADD COLUMN window_from bigint CHECK (window_from >= 0);
