-- version: 2
-- grain: one row per fold x feature x level x target with out-of-fold data (fold -1 = all items)
-- purpose: FITTED STATE. K-fold cross-fitted target statistics: for fold k the weight sum and
--          weighted sum of standardised targets of the level's items OUTSIDE fold k, so no item's
--          encoding contains its own target; fold -1 holds the full-data statistics for new items
WITH full_ AS (
    SELECT feature, level, target, sw, swz FROM fit_target_sums WHERE fold = -1
),
infold AS (
    SELECT fold, feature, level, target, sw, swz FROM fit_target_sums WHERE fold <> -1
),
folds AS (
    SELECT DISTINCT fold FROM item_sample
),
oof AS (
    SELECT
        CAST(f.fold AS BIGINT) AS fold,
        a.feature,
        a.level,
        a.target,
        a.sw - coalesce(i.sw, 0.0) AS sw,
        a.swz - coalesce(i.swz, 0.0) AS swz
    FROM full_ a
    CROSS JOIN folds f
    LEFT JOIN infold i
        ON i.fold = f.fold AND i.feature = a.feature AND i.level = a.level AND i.target = a.target
)
SELECT CAST(-1 AS BIGINT) AS fold, feature, level, target, sw, swz FROM full_
UNION ALL
SELECT fold, feature, level, target, sw, swz FROM oof WHERE sw > 1e-9
