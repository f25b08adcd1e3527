-- version: 2
-- grain: one row per target
-- purpose: FITTED STATE. Weighted mean and standard deviation of each routing target over the
--          training items, so that target encodings come out in standard units
WITH y AS (
    SELECT s.sample_weight AS w, 'std_minutes' AS target, t.t_std_minutes AS y
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'op_count', t.t_op_count
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'outsourced', t.t_outsourced
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'actual_hours', t.t_actual_hours
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_1', t.t_route_1
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_2', t.t_route_2
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_3', t.t_route_3
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_4', t.t_route_4
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_5', t.t_route_5
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_6', t.t_route_6
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_7', t.t_route_7
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
    UNION ALL
    SELECT s.sample_weight, 'route_8', t.t_route_8
    FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key
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
