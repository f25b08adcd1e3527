-- version: 5
-- grain: one row per target
-- purpose: FITTED STATE. Weighted mean and standard deviation of each routing target over the
--          training items, so that target encodings come out in standard units
WITH m AS (
    SELECT target, sum(w * y) / sum(w) AS mean
    FROM target_values
    GROUP BY target
)
SELECT
    m.target,
    m.mean,
    CASE WHEN sqrt(sum(y.w * (y.y - m.mean) * (y.y - m.mean)) / sum(y.w)) > 0
         THEN sqrt(sum(y.w * (y.y - m.mean) * (y.y - m.mean)) / sum(y.w))
         ELSE 1.0 END AS std
FROM target_values y JOIN m ON m.target = y.target
GROUP BY m.target, m.mean
