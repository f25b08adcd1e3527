-- version: 5
-- grain: one row per item_key that has a current routing
-- purpose: what target encoding learns from: log total standard time, log operation count,
--          outsourced share of the current routing, log actual hours (where reported); and the
--          current JOB_CD sequence (for evaluation and review); and the routing fingerprint.
--          The targets are the t_ columns; target_values (long) and fit_target_sums (wide) list
--          them, and trainer stops naming the file if either leaves one out.
--
-- Routing fingerprint t_route_1..12: component r is sum over the operations of s_r(JOB_CD), a
-- fixed pseudo-random sign (the parity of the first hex digit of md5(JOB_CD || '#r')), divided by
-- sqrt(operation count). Items with the same set of operations have the same fingerprint;
-- target-encoding it tells apart levels whose routings differ by one operation (a sibling
-- operation code, an extra finishing step) even when time, count and outsourcing are alike.
-- Twelve components: fewer lose routing matches in `trainer eval`, more gain little for their
-- dimensions, time and memory (the comparison is in BENCHMARKS.md, commit 016507c).
WITH sig AS (
    -- one row per distinct operation code: its 12 signs (md5 once per code, not per row)
    SELECT
        job_cd,
        CASE WHEN ascii(md5(job_cd || '#1')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s1,
        CASE WHEN ascii(md5(job_cd || '#2')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s2,
        CASE WHEN ascii(md5(job_cd || '#3')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s3,
        CASE WHEN ascii(md5(job_cd || '#4')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s4,
        CASE WHEN ascii(md5(job_cd || '#5')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s5,
        CASE WHEN ascii(md5(job_cd || '#6')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s6,
        CASE WHEN ascii(md5(job_cd || '#7')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s7,
        CASE WHEN ascii(md5(job_cd || '#8')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s8,
        CASE WHEN ascii(md5(job_cd || '#9')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s9,
        CASE WHEN ascii(md5(job_cd || '#10')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s10,
        CASE WHEN ascii(md5(job_cd || '#11')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s11,
        CASE WHEN ascii(md5(job_cd || '#12')) % 2 = 0 THEN 1.0 ELSE -1.0 END AS s12
    FROM (SELECT DISTINCT coalesce(job_cd, '') AS job_cd FROM clean_routings) d
),
cur AS (
    SELECT
        r.item_key,
        count(*)              AS op_count,
        sum(r.std_minutes)    AS std_minutes,
        avg(r.outsourced)     AS outsourced_share,
        -- seq_join (a house aggregate, see sql/README): the JOB_CDs in proc_seq order, joined
        -- by spaces. The same as array_to_string(array_agg(job_cd ORDER BY proc_seq), ' '),
        -- which DataFusion runs row by row and which was most of this file's time.
        seq_join(r.job_cd, r.proc_seq) AS job_seq,
        sum(g.s1) AS r1,
        sum(g.s2) AS r2,
        sum(g.s3) AS r3,
        sum(g.s4) AS r4,
        sum(g.s5) AS r5,
        sum(g.s6) AS r6,
        sum(g.s7) AS r7,
        sum(g.s8) AS r8,
        sum(g.s9) AS r9,
        sum(g.s10) AS r10,
        sum(g.s11) AS r11,
        sum(g.s12) AS r12
    FROM clean_routings r
    JOIN sig g ON g.job_cd = coalesce(r.job_cd, '')
    GROUP BY r.item_key
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
    ln(1.0 + w.actual_hours_per_unit) AS t_actual_hours,
    c.r1 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_1,
    c.r2 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_2,
    c.r3 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_3,
    c.r4 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_4,
    c.r5 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_5,
    c.r6 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_6,
    c.r7 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_7,
    c.r8 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_8,
    c.r9 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_9,
    c.r10 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_10,
    c.r11 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_11,
    c.r12 / sqrt(CAST(c.op_count AS DOUBLE)) AS t_route_12
FROM cur c
LEFT JOIN clean_work_orders w ON w.item_key = c.item_key
