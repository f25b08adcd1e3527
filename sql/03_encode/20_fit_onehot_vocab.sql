-- version: 2
-- grain: one row per one-hot feature x kept level
-- purpose: FITTED STATE. The vocabulary of each one-hot column: levels with a weighted share of at
--          least params.onehot_min_share, at most params.onehot_max_levels per column (most
--          frequent first, ties by level); every other level is encoded as OTHER
--
-- The column total is a window over c, not a second GROUP BY: DataFusion inlines a CTE wherever
-- it is read, so reading c twice ran its join (19 rows per item) twice (version 1). Both
-- windows share one order, which also fixes the order the total is summed in.
WITH c AS (
    SELECT i.feature, i.level, sum(s.sample_weight) AS w
    FROM enc_onehot_input i
    JOIN item_sample s ON s.item_key = i.item_key
    GROUP BY i.feature, i.level
),
r AS (
    SELECT
        feature,
        level,
        w / sum(w) OVER (
            PARTITION BY feature ORDER BY w DESC, level
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        ) AS share,
        ROW_NUMBER() OVER (PARTITION BY feature ORDER BY w DESC, level) AS rk
    FROM c
)
SELECT r.feature, r.level, r.share
FROM r CROSS JOIN params p
WHERE r.share >= p.onehot_min_share AND r.rk <= p.onehot_max_levels
