-- version: 1
-- grain: one row per fold x target (fold -1 = all training items)
-- purpose: FITTED STATE. The prior of each target encoding: the weighted mean standardised target
--          over the items outside the fold (fold -1: over all items, used for new items)
WITH full_ AS (
    SELECT target, sum(w) AS sw, sum(w * z) AS swz FROM enc_target_y GROUP BY target
),
infold AS (
    SELECT fold, target, sum(w) AS sw, sum(w * z) AS swz FROM enc_target_y GROUP BY fold, target
),
folds AS (
    SELECT DISTINCT fold FROM item_sample
)
SELECT CAST(-1 AS BIGINT) AS fold, target, swz / sw AS prior FROM full_
UNION ALL
SELECT
    CAST(f.fold AS BIGINT) AS fold,
    a.target,
    CASE WHEN a.sw - coalesce(i.sw, 0.0) > 0
         THEN (a.swz - coalesce(i.swz, 0.0)) / (a.sw - coalesce(i.sw, 0.0))
         ELSE 0.0 END AS prior
FROM full_ a
CROSS JOIN folds f
LEFT JOIN infold i ON i.fold = f.fold AND i.target = a.target
