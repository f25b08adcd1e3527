-- version: 1
-- grain: one row per source row of dbo_BI_ROUTING_VIEW (item x routing x operation)
-- purpose: cast the mapped routing columns to their contract types; no cleaning here
SELECT
    CAST(item_cd AS VARCHAR)      AS item_cd,
    CAST(rout_no AS VARCHAR)      AS rout_no,
    CAST(proc_seq AS INT)         AS proc_seq,
    CAST(insrt_dt AS TIMESTAMP)   AS insrt_dt,
    CAST(inside_flag AS VARCHAR)  AS inside_flag,
    CAST(job_cd AS VARCHAR)       AS job_cd,
    CAST(res_cd AS VARCHAR)       AS res_cd,
    CAST(time_unit AS VARCHAR)    AS time_unit,
    CAST(setup_time AS DOUBLE)    AS setup_time,
    CAST(run_time AS DOUBLE)      AS run_time,
    CAST(run_time_qty AS DOUBLE)  AS run_time_qty
FROM erp_routings
