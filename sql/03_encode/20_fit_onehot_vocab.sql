-- version: 1
-- grain: one row per one-hot feature x kept level
-- purpose: FITTED STATE. The vocabulary of each one-hot column: levels with a weighted share of at
--          least params.onehot_min_share, at most params.onehot_max_levels per column (most
--          frequent first, ties by level); every other level is encoded as OTHER
WITH c AS (
    SELECT i.feature, i.level, sum(s.sample_weight) AS w
    FROM enc_onehot_input i
    JOIN item_sample s ON s.item_key = i.item_key
    GROUP BY i.feature, i.level
),
t AS (
    SELECT feature, sum(w) AS tw FROM c GROUP BY feature
),
r AS (
    SELECT
        c.feature,
        c.level,
        c.w / t.tw AS share,
        ROW_NUMBER() OVER (PARTITION BY c.feature ORDER BY c.w DESC, c.level) AS rk
    FROM c JOIN t ON t.feature = c.feature
)
SELECT r.feature, r.level, r.share
FROM r CROSS JOIN params p
WHERE r.share >= p.onehot_min_share AND r.rk <= p.onehot_max_levels
