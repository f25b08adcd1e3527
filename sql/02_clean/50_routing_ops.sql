-- version: 2
-- grain: one row per operation of each item's current routing (item_key x proc_seq)
-- purpose: what `trainer recommend` proposes: each operation of the current routing with its
--          standard times, and the actuals reported against it in the work orders (reports,
--          median hours per unit and the median absolute deviation around it, robust to the
--          odd report booked against the wrong quantity). Saved as models/routings.parquet; only
--          the routings of items in clean_items (a routing of an unknown item is never proposed).
--
-- Join shape: the small tables come first (`actuals RIGHT JOIN ...`, `item keys JOIN
-- clean_routings`), so the hash tables are built on them and the routing rows stream through in
-- their order (item_key, rout_no, proc_seq), which routings.parquet keeps.
WITH wo AS (
    SELECT
        item_key(item_cd) AS item_key,
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
actuals AS (
    SELECT
        t.item_key, t.rout_no, t.proc_seq, t.reports, t.hpu_median,
        median(abs(w.hours_per_unit - t.hpu_median)) AS hpu_mad
    FROM typical t
    JOIN wo w ON w.item_key = t.item_key AND w.rout_no = t.rout_no AND w.proc_seq = t.proc_seq
    GROUP BY t.item_key, t.rout_no, t.proc_seq, t.reports, t.hpu_median
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
    coalesce(a.reports, 0) AS reports,
    a.hpu_median AS actual_hours_per_unit,
    a.hpu_mad AS actual_hours_per_unit_mad
FROM actuals a
RIGHT JOIN (
    SELECT r.*
    FROM (SELECT item_key FROM clean_items) k
    JOIN clean_routings r ON r.item_key = k.item_key
) r ON a.item_key = r.item_key AND a.rout_no = r.rout_no AND a.proc_seq = r.proc_seq
