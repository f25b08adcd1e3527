-- version: 4
-- grain: one row per operation of each item's current routing (item_key x proc_seq)
-- purpose: pick the current routing (latest INSRT_DT, tie: ROUT_NO descending), times in minutes,
--          the outsourcing flag split out of the operation rows; setup and run minutes kept apart
--          for the routings `trainer recommend` proposes (routing_ops)
WITH r AS (
    SELECT
        item_key(item_cd)         AS item_key,
        norm_text(rout_no)        AS rout_no,
        proc_seq,
        insrt_dt,
        upper(norm_text(job_cd))  AS job_cd,
        upper(norm_text(res_cd))  AS res_cd,
        norm_text(inside_flag)    AS inside_flag,
        -- Routing times are minutes ('M', '분(Min.)'); hours and seconds are converted.
        CASE
            WHEN upper(norm_text(time_unit)) IN ('H', 'HR', 'HOUR', '시간') THEN 60.0
            WHEN upper(norm_text(time_unit)) IN ('S', 'SEC', '초') THEN 1.0 / 60.0
            ELSE 1.0
        END AS minutes_per_unit,
        setup_time,
        run_time,
        run_time_qty
    FROM map_routings
    WHERE norm_text(item_cd) IS NOT NULL AND norm_text(rout_no) IS NOT NULL AND proc_seq IS NOT NULL
),
heads AS (
    SELECT item_key, rout_no, max(insrt_dt) AS rout_dt
    FROM r
    GROUP BY item_key, rout_no
),
ranked AS (
    SELECT
        item_key,
        rout_no,
        -- The first row of each item_key in this order (one window over all rows: see
        -- clean_items).
        item_key IS DISTINCT FROM LAG(item_key) OVER (
            ORDER BY item_key, rout_dt DESC NULLS LAST, rout_no DESC
        ) AS is_current
    FROM heads
)
SELECT
    r.item_key,
    r.rout_no,
    r.proc_seq,
    r.job_cd,
    r.res_cd,
    -- Outsourced: INSIDE_FLAG '외주', or the operation code marks it (외주8 / 외주02 / 외주2).
    -- 'Y' and '사내' are in-house.
    CASE
        WHEN r.inside_flag = '외주'
          OR strpos(coalesce(r.job_cd, ''), '외주8') > 0
          OR strpos(coalesce(r.job_cd, ''), '외주02') > 0
          OR strpos(coalesce(r.job_cd, ''), '외주2') > 0
        THEN 1.0 ELSE 0.0
    END AS outsourced,
    (greatest(coalesce(r.setup_time, 0.0), 0.0) + greatest(coalesce(r.run_time, 0.0), 0.0))
        * r.minutes_per_unit AS std_minutes,
    greatest(r.setup_time, 0.0) * r.minutes_per_unit AS setup_minutes,
    greatest(r.run_time, 0.0) * r.minutes_per_unit AS run_minutes,
    -- RUN_TIME is per RUN_TIME_QTY units; 0 and missing mean one unit.
    CASE WHEN r.run_time_qty > 0 THEN r.run_time_qty ELSE 1.0 END AS run_time_qty
FROM r
JOIN ranked k ON k.item_key = r.item_key AND k.rout_no = r.rout_no
WHERE k.is_current
