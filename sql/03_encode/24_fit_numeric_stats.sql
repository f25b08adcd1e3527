-- version: 3
-- grain: one row per numeric feature
-- purpose: FITTED STATE. Clip bounds (from fit_numeric_bounds) and the weighted mean and
--          standard deviation of the clipped values, for standardisation
WITH clipped AS (
    SELECT x.feature, x.w, least(greatest(x.x, b.lo), b.hi) AS v
    FROM numeric_rows x JOIN fit_numeric_bounds b ON b.feature = x.feature
),
mean AS (
    SELECT feature, sum(w * v) / sum(w) AS mean FROM clipped GROUP BY feature
)
SELECT
    b.feature,
    b.lo,
    b.hi,
    m.mean,
    CASE WHEN sqrt(sum(c.w * (c.v - m.mean) * (c.v - m.mean)) / sum(c.w)) > 0
         THEN sqrt(sum(c.w * (c.v - m.mean) * (c.v - m.mean)) / sum(c.w))
         ELSE 1.0 END AS std
FROM fit_numeric_bounds b
JOIN mean m ON m.feature = b.feature
JOIN clipped c ON c.feature = b.feature
GROUP BY b.feature, b.lo, b.hi, m.mean
