-- version: 2
-- grain: one row per numeric feature
-- purpose: FITTED STATE. Clip bounds of each numeric feature: its weighted quantiles
--          params.clip_lower_q and params.clip_upper_q over the training items
--
-- A file of its own (not a CTE of fit_numeric_stats) because DataFusion inlines a CTE wherever
-- it is read: as a CTE read three times, this sort and window over every numeric value ran
-- three times.
WITH cum AS (
    SELECT
        feature,
        x,
        sum(w) OVER (PARTITION BY feature ORDER BY x ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cw,
        sum(w) OVER (PARTITION BY feature) AS tw
    FROM numeric_rows
)
SELECT
    c.feature,
    min(CASE WHEN c.cw >= p.clip_lower_q * c.tw THEN c.x END) AS lo,
    min(CASE WHEN c.cw >= p.clip_upper_q * c.tw THEN c.x END) AS hi
FROM cum c CROSS JOIN params p
GROUP BY c.feature
