-- version: 1
-- grain: one row per fold x feature x level x target with data, plus one per feature x level x
--        target over all folds (fold -1)
-- purpose: FITTED STATE. Weight sum and weighted sum of standardised targets of each level's
--          items, per fold and over all items, for fit_target_stats
--
-- One pass over the item x feature x target join (~22M rows at 325k items) for both groupings.
-- As CTEs of fit_target_stats the join ran three times: DataFusion inlines a CTE wherever it is
-- read.
SELECT
    CASE WHEN grouping(y.fold) = 1 THEN CAST(-1 AS BIGINT) ELSE CAST(y.fold AS BIGINT) END AS fold,
    i.feature,
    i.level,
    y.target,
    sum(y.w) AS sw,
    sum(y.w * y.z) AS swz
FROM enc_target_input i
JOIN enc_target_y y ON y.item_key = i.item_key
WHERE i.level IS NOT NULL
GROUP BY GROUPING SETS ((y.fold, i.feature, i.level, y.target), (i.feature, i.level, y.target))
