-- version: 1
-- grain: one row per reported work result (item x routing x operation x report)
-- purpose: cast the mapped work-order columns to their contract types; no cleaning here
SELECT
    CAST(item_cd AS VARCHAR)            AS item_cd,
    CAST(rout_no AS VARCHAR)            AS rout_no,
    CAST(proc_seq AS INT)               AS proc_seq,
    CAST(job_cd AS VARCHAR)             AS job_cd,
    CAST(report_dt AS TIMESTAMP)        AS report_dt,
    CAST(mach_worked_hours AS DOUBLE)   AS mach_worked_hours,
    CAST(setup_hours AS DOUBLE)         AS setup_hours,
    CAST(order_qty AS DOUBLE)           AS order_qty
FROM erp_work_orders
