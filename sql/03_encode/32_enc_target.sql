-- version: 1
-- grain: one row per item_key x target-encoded feature x target
-- purpose: smoothed target encoding (sw*mean + m*prior) / (sw + m) = (swz + m*prior) / (sw + m).
--          Training items use the out-of-fold statistics of their own fold (item_sample.fold);
--          items not in the training sample use the full-data statistics (fold -1)
SELECT
    i.item_key,
    i.feature,
    i.feature || '~' || p.target AS dim,
    CASE WHEN st.sw IS NULL THEN p.prior
         ELSE (st.swz + prm.target_smoothing * p.prior) / (st.sw + prm.target_smoothing) END AS value
FROM enc_target_input i
LEFT JOIN item_sample s ON s.item_key = i.item_key
JOIN fit_target_prior p ON p.fold = coalesce(CAST(s.fold AS BIGINT), CAST(-1 AS BIGINT))
LEFT JOIN fit_target_stats st
    ON st.fold = p.fold AND st.feature = i.feature AND st.level = i.level AND st.target = p.target
CROSS JOIN params prm
