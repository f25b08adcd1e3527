-- version: 2
-- grain: one row per training item_key x target (items with a current routing only)
-- purpose: standardised targets with the item's sample weight and fold, the input of the
--          target-encoding statistics
WITH y AS (
    SELECT item_key, 'std_minutes' AS target, t_std_minutes AS y FROM item_targets
    UNION ALL SELECT item_key, 'op_count', t_op_count FROM item_targets
    UNION ALL SELECT item_key, 'outsourced', t_outsourced FROM item_targets
    UNION ALL SELECT item_key, 'actual_hours', t_actual_hours FROM item_targets
    UNION ALL SELECT item_key, 'route_1', t_route_1 FROM item_targets
    UNION ALL SELECT item_key, 'route_2', t_route_2 FROM item_targets
    UNION ALL SELECT item_key, 'route_3', t_route_3 FROM item_targets
    UNION ALL SELECT item_key, 'route_4', t_route_4 FROM item_targets
    UNION ALL SELECT item_key, 'route_5', t_route_5 FROM item_targets
    UNION ALL SELECT item_key, 'route_6', t_route_6 FROM item_targets
    UNION ALL SELECT item_key, 'route_7', t_route_7 FROM item_targets
    UNION ALL SELECT item_key, 'route_8', t_route_8 FROM item_targets
)
SELECT
    y.item_key,
    s.fold,
    s.sample_weight AS w,
    y.target,
    (y.y - c.mean) / c.std AS z
FROM y
JOIN item_sample s ON s.item_key = y.item_key
JOIN fit_target_scale c ON c.target = y.target
WHERE y.y IS NOT NULL
