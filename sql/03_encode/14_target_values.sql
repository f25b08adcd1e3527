-- version: 1
-- grain: one row per training item_key x target with a value (items with a current routing only)
-- purpose: the routing targets long, with each item's sample weight and fold: the one list of
--          the targets (a line each) that fit_target_scale and enc_target_y read without naming
--          them. A target added to item_targets is added here and to fit_target_sums (which
--          reads them wide, for speed); trainer stops naming the file if either leaves it out.
SELECT item_key, fold, w, target, y
FROM (
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
) v
WHERE y IS NOT NULL
