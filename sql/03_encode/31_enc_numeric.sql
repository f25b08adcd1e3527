-- version: 1
-- grain: two rows per item_key x numeric feature (the value, and its missing indicator)
-- purpose: standardisation: (clip(x) - mean) / std with the fitted bounds and moments; a missing
--          value is 0 (the mean) and its indicator dimension `<feature>#missing` is 1
SELECT
    n.item_key,
    n.feature,
    n.feature AS dim,
    CASE WHEN n.x IS NULL THEN 0.0
         ELSE (least(greatest(n.x, s.lo), s.hi) - s.mean) / s.std END AS value
FROM enc_numeric_input n
JOIN fit_numeric_stats s ON s.feature = n.feature
UNION ALL
SELECT
    n.item_key,
    n.feature,
    n.feature || '#missing' AS dim,
    CASE WHEN n.x IS NULL THEN 1.0 ELSE 0.0 END AS value
FROM enc_numeric_input n
