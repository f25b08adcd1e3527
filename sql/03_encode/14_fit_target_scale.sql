-- version: 4
-- grain: one row per target
-- purpose: FITTED STATE. Weighted mean and standard deviation of each routing target over the
--          training items, so that target encodings come out in standard units
WITH y AS (
    SELECT w, 'std_minutes' AS target, t_std_minutes AS y FROM target_rows
    UNION ALL SELECT w, 'op_count', t_op_count FROM target_rows
    UNION ALL SELECT w, 'outsourced', t_outsourced FROM target_rows
    UNION ALL SELECT w, 'actual_hours', t_actual_hours FROM target_rows
    UNION ALL SELECT w, 'route_1', t_route_1 FROM target_rows
    UNION ALL SELECT w, 'route_2', t_route_2 FROM target_rows
    UNION ALL SELECT w, 'route_3', t_route_3 FROM target_rows
    UNION ALL SELECT w, 'route_4', t_route_4 FROM target_rows
    UNION ALL SELECT w, 'route_5', t_route_5 FROM target_rows
    UNION ALL SELECT w, 'route_6', t_route_6 FROM target_rows
    UNION ALL SELECT w, 'route_7', t_route_7 FROM target_rows
    UNION ALL SELECT w, 'route_8', t_route_8 FROM target_rows
    UNION ALL SELECT w, 'route_9', t_route_9 FROM target_rows
    UNION ALL SELECT w, 'route_10', t_route_10 FROM target_rows
    UNION ALL SELECT w, 'route_11', t_route_11 FROM target_rows
    UNION ALL SELECT w, 'route_12', t_route_12 FROM target_rows
),
m AS (
    SELECT target, sum(w * y) / sum(w) AS mean
    FROM y WHERE y IS NOT NULL
    GROUP BY target
)
SELECT
    m.target,
    m.mean,
    CASE WHEN sqrt(sum(y.w * (y.y - m.mean) * (y.y - m.mean)) / sum(y.w)) > 0
         THEN sqrt(sum(y.w * (y.y - m.mean) * (y.y - m.mean)) / sum(y.w))
         ELSE 1.0 END AS std
FROM y JOIN m ON m.target = y.target
WHERE y.y IS NOT NULL
GROUP BY m.target, m.mean
