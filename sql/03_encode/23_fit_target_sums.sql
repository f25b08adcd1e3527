-- version: 2
-- grain: one row per fold x feature x level x target with data, plus one per feature x level x
--        target over all folds (fold -1)
-- purpose: FITTED STATE. Weight sum and weighted sum of standardised targets of each level's
--          items, per fold and over all items, for fit_target_stats
--
-- A file of its own because DataFusion inlines a CTE wherever it is read: as CTEs of
-- fit_target_stats, the item x feature x target join (~22M rows at 325k items) ran three times.
-- Here it runs once per grouping, and the two branches of the UNION ALL run on both cores. (One
-- GROUPING SETS pass gives the same sums: 4.5 s against 4.4 s at 325k items, but 22.3 s against
-- 10.1 s at 1M, in one run each on a noisy machine.)
WITH j AS (
    SELECT i.feature, i.level, y.fold, y.target, y.w, y.z
    FROM enc_target_input i
    JOIN enc_target_y y ON y.item_key = i.item_key
    WHERE i.level IS NOT NULL
)
SELECT CAST(-1 AS BIGINT) AS fold, feature, level, target, sum(w) AS sw, sum(w * z) AS swz
FROM j GROUP BY feature, level, target
UNION ALL
SELECT CAST(fold AS BIGINT) AS fold, feature, level, target, sum(w) AS sw, sum(w * z) AS swz
FROM j GROUP BY fold, feature, level, target
