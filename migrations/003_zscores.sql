-- canaryd schema, version 3: a rollout's zscore histories in a column of their own.
--
-- rollouts.zscores: the zscore histories, recorded at evaluations (metrics_json v1 zscores
-- document; NULL: none saved yet). Up to a day of points a minute per history: too large to
-- rewrite with every batch as part of rollouts.metrics, so it is written only when a history
-- gained a point. rollouts.metrics keeps the for: states and the evaluation schedule.
ALTER TABLE rollouts ADD COLUMN zscores json CHECK (zscores IS NULL OR json_typeof(zscores) = 'object');
