-- version: 2
-- grain: one row per item_key with reported work results
-- purpose: actual hours per produced unit from the work-order results (machine + setup hours)
SELECT
    item_key(item_cd) AS item_key,
    count(*) AS reports,
    sum(greatest(coalesce(mach_worked_hours, 0.0), 0.0) + greatest(coalesce(setup_hours, 0.0), 0.0))
        / greatest(sum(greatest(coalesce(order_qty, 0.0), 0.0)), 1.0) AS actual_hours_per_unit
FROM map_work_orders
WHERE norm_text(item_cd) IS NOT NULL
GROUP BY item_key(item_cd)
