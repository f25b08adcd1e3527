-- version: 4
-- grain: one row per training item_key x target (items with a current routing only)
-- purpose: standardised targets with the item's sample weight and fold, the input of the
--          target-encoding statistics
WITH y AS (
    SELECT item_key, fold, w, 'std_minutes' AS target, t_std_minutes AS y FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'op_count', t_op_count FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'outsourced', t_outsourced FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'actual_hours', t_actual_hours FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_1', t_route_1 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_2', t_route_2 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_3', t_route_3 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_4', t_route_4 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_5', t_route_5 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_6', t_route_6 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_7', t_route_7 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_8', t_route_8 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_9', t_route_9 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_10', t_route_10 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_11', t_route_11 FROM target_rows
    UNION ALL SELECT item_key, fold, w, 'route_12', t_route_12 FROM target_rows
)
SELECT
    y.item_key,
    y.fold,
    y.w,
    y.target,
    (y.y - c.mean) / c.std AS z
FROM y
JOIN fit_target_scale c ON c.target = y.target
WHERE y.y IS NOT NULL
