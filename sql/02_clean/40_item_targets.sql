-- version: 1
-- grain: one row per item_key that has a current routing
-- purpose: what target encoding learns from: log total standard time, log operation count,
--          outsourced share of the current routing, log actual hours (where reported); and the
--          current JOB_CD sequence (for evaluation and review)
WITH cur AS (
    SELECT
        item_key,
        count(*)            AS op_count,
        sum(std_minutes)    AS std_minutes,
        avg(outsourced)     AS outsourced_share,
        array_to_string(array_agg(job_cd ORDER BY proc_seq), ' ') AS job_seq
    FROM clean_routings
    GROUP BY item_key
)
SELECT
    c.item_key,
    c.op_count,
    c.std_minutes,
    c.outsourced_share,
    c.job_seq,
    ln(1.0 + c.std_minutes)          AS t_std_minutes,
    ln(CAST(c.op_count AS DOUBLE))   AS t_op_count,
    c.outsourced_share               AS t_outsourced,
    ln(1.0 + w.actual_hours_per_unit) AS t_actual_hours
FROM cur c
LEFT JOIN clean_work_orders w ON w.item_key = c.item_key
