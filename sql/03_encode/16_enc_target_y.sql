-- version: 5
-- grain: one row per training item_key x target (items with a current routing only)
-- purpose: standardised targets with the item's sample weight and fold, the input of the
--          target-encoding statistics
SELECT
    y.item_key,
    y.fold,
    y.w,
    y.target,
    (y.y - c.mean) / c.std AS z
FROM target_values y
JOIN fit_target_scale c ON c.target = y.target
