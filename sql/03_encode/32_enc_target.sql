-- version: 2
-- grain: one row per item_key x target-encoded feature x target
-- purpose: smoothed target encoding (sw*mean + m*prior) / (sw + m) = (swz + m*prior) / (sw + m).
--          Training items use the out-of-fold statistics of their own fold (item_sample.fold);
--          items not in the training sample use the full-data statistics (fold -1)
--
-- Join shape: the fitted tables come first (`small RIGHT JOIN big`, `params CROSS JOIN big`), so
-- the engine builds its hash tables on them and streams the items; the other way round it would
-- hold every item x feature x target row in memory (GBs at 325k items). params rides along with
-- fit_target_stats: where no statistics match (sw IS NULL) the prior is used and m is not needed.
SELECT
    x.item_key,
    x.feature,
    x.feature || '~' || x.target AS dim,
    CASE WHEN st.sw IS NULL THEN x.prior
         ELSE (st.swz + prm.target_smoothing * x.prior) / (st.sw + prm.target_smoothing) END AS value
FROM params prm
CROSS JOIN fit_target_stats st
RIGHT JOIN (
    SELECT i.item_key, i.feature, i.level, p.fold, p.target, p.prior
    FROM fit_target_prior p
    JOIN (
        SELECT i.item_key, i.feature, i.level, coalesce(CAST(s.fold AS BIGINT), CAST(-1 AS BIGINT)) AS fold
        FROM item_sample s
        RIGHT JOIN enc_target_input i ON s.item_key = i.item_key
    ) i ON p.fold = i.fold
) x ON st.fold = x.fold AND st.feature = x.feature AND st.level = x.level AND st.target = x.target
