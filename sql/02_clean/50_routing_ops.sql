-- version: 1
-- grain: one row per operation of each item's current routing (item_key x proc_seq)
-- purpose: what `trainer recommend` proposes: each operation of the current routing with its
--          standard times, and the actuals reported against it in the work orders (reports,
--          median hours per unit and the median absolute deviation around it, robust to the
--          odd report booked against the wrong quantity). Saved as models/routings.parquet; only
--          the routings of items in clean_items (a routing of an unknown item is never proposed).
WITH wo AS (
    SELECT
        upper(norm_text(item_cd)) AS item_key,
        norm_text(rout_no)        AS rout_no,
        proc_seq,
        (greatest(coalesce(mach_worked_hours, 0.0), 0.0) + greatest(coalesce(setup_hours, 0.0), 0.0))
            / order_qty AS hours_per_unit
    FROM map_work_orders
    WHERE norm_text(item_cd) IS NOT NULL AND norm_text(rout_no) IS NOT NULL
      AND proc_seq IS NOT NULL AND order_qty > 0
),
typical AS (
    SELECT item_key, rout_no, proc_seq, count(*) AS reports, median(hours_per_unit) AS hpu_median
    FROM wo
    GROUP BY item_key, rout_no, proc_seq
),
spread AS (
    SELECT w.item_key, w.rout_no, w.proc_seq, median(abs(w.hours_per_unit - t.hpu_median)) AS hpu_mad
    FROM wo w
    JOIN typical t ON t.item_key = w.item_key AND t.rout_no = w.rout_no AND t.proc_seq = w.proc_seq
    GROUP BY w.item_key, w.rout_no, w.proc_seq
)
SELECT
    r.item_key,
    r.rout_no,
    r.proc_seq,
    r.job_cd,
    r.res_cd,
    r.setup_minutes,
    r.run_minutes,
    r.run_time_qty,
    r.std_minutes,
    r.outsourced = 1.0 AS outsourced,
    coalesce(t.reports, 0) AS reports,
    t.hpu_median AS actual_hours_per_unit,
    s.hpu_mad AS actual_hours_per_unit_mad
FROM clean_routings r
LEFT JOIN typical t ON t.item_key = r.item_key AND t.rout_no = r.rout_no AND t.proc_seq = r.proc_seq
LEFT JOIN spread s ON s.item_key = r.item_key AND s.rout_no = r.rout_no AND s.proc_seq = r.proc_seq
WHERE r.item_key IN (SELECT item_key FROM clean_items)
ORDER BY r.item_key, r.proc_seq
