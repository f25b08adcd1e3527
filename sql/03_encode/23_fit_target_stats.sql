-- version: 1
-- grain: one row per fold x feature x level x target with out-of-fold data (fold -1 = all items)
-- purpose: FITTED STATE. K-fold cross-fitted target statistics: for fold k the weight sum and
--          weighted sum of standardised targets of the level's items OUTSIDE fold k, so no item's
--          encoding contains its own target; fold -1 holds the full-data statistics for new items
WITH j AS (
    SELECT i.feature, i.level, y.fold, y.target, y.w, y.z
    FROM enc_target_input i
    JOIN enc_target_y y ON y.item_key = i.item_key
    WHERE i.level IS NOT NULL
),
full_ AS (
    SELECT feature, level, target, sum(w) AS sw, sum(w * z) AS swz
    FROM j GROUP BY feature, level, target
),
infold AS (
    SELECT fold, feature, level, target, sum(w) AS sw, sum(w * z) AS swz
    FROM j GROUP BY fold, feature, level, target
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
-- A level whose items all sit in fold k has no out-of-fold data: it gets the prior.
SELECT fold, feature, level, target, sw, swz FROM oof WHERE sw > 1e-9
