-- version: 5
-- grain: one row per fold x feature x level x target with data, plus one per feature x level x
--        target over all folds (fold -1)
-- purpose: FITTED STATE. Weight sum and weighted sum of standardised targets of each level's
--          items, per fold and over all items, for fit_target_stats
--
-- Wide, then long, for speed: the one view besides target_values that names the targets. Each
-- item's 16 targets stay columns of its one target_rows row, so the join with the item x feature
-- rows has one row per item and feature, not one per target as well (16 times fewer rows), and
-- one GROUPING SETS pass sums all targets per fold and over all folds. z is never formed per row:
-- sum(w z) = (sum(w y) - mean sum(w)) / std, with the target's mean and std from
-- fit_target_scale. The result then turns long against fit_target_scale's 16 rows. A target
-- added to item_targets needs its lines in s and l; trainer stops naming this file if they are
-- missing.
WITH s AS (
    SELECT
        CASE WHEN grouping(t.fold) = 1 THEN CAST(-1 AS BIGINT) ELSE CAST(t.fold AS BIGINT) END AS fold,
        i.feature,
        i.level,
        sum(CASE WHEN t.t_std_minutes IS NOT NULL THEN t.w END) AS sw_std_minutes, sum(t.w * t.t_std_minutes) AS swy_std_minutes,
        sum(CASE WHEN t.t_op_count IS NOT NULL THEN t.w END) AS sw_op_count, sum(t.w * t.t_op_count) AS swy_op_count,
        sum(CASE WHEN t.t_outsourced IS NOT NULL THEN t.w END) AS sw_outsourced, sum(t.w * t.t_outsourced) AS swy_outsourced,
        sum(CASE WHEN t.t_actual_hours IS NOT NULL THEN t.w END) AS sw_actual_hours, sum(t.w * t.t_actual_hours) AS swy_actual_hours,
        sum(CASE WHEN t.t_route_1 IS NOT NULL THEN t.w END) AS sw_route_1, sum(t.w * t.t_route_1) AS swy_route_1,
        sum(CASE WHEN t.t_route_2 IS NOT NULL THEN t.w END) AS sw_route_2, sum(t.w * t.t_route_2) AS swy_route_2,
        sum(CASE WHEN t.t_route_3 IS NOT NULL THEN t.w END) AS sw_route_3, sum(t.w * t.t_route_3) AS swy_route_3,
        sum(CASE WHEN t.t_route_4 IS NOT NULL THEN t.w END) AS sw_route_4, sum(t.w * t.t_route_4) AS swy_route_4,
        sum(CASE WHEN t.t_route_5 IS NOT NULL THEN t.w END) AS sw_route_5, sum(t.w * t.t_route_5) AS swy_route_5,
        sum(CASE WHEN t.t_route_6 IS NOT NULL THEN t.w END) AS sw_route_6, sum(t.w * t.t_route_6) AS swy_route_6,
        sum(CASE WHEN t.t_route_7 IS NOT NULL THEN t.w END) AS sw_route_7, sum(t.w * t.t_route_7) AS swy_route_7,
        sum(CASE WHEN t.t_route_8 IS NOT NULL THEN t.w END) AS sw_route_8, sum(t.w * t.t_route_8) AS swy_route_8,
        sum(CASE WHEN t.t_route_9 IS NOT NULL THEN t.w END) AS sw_route_9, sum(t.w * t.t_route_9) AS swy_route_9,
        sum(CASE WHEN t.t_route_10 IS NOT NULL THEN t.w END) AS sw_route_10, sum(t.w * t.t_route_10) AS swy_route_10,
        sum(CASE WHEN t.t_route_11 IS NOT NULL THEN t.w END) AS sw_route_11, sum(t.w * t.t_route_11) AS swy_route_11,
        sum(CASE WHEN t.t_route_12 IS NOT NULL THEN t.w END) AS sw_route_12, sum(t.w * t.t_route_12) AS swy_route_12,
    FROM enc_target_input i
    JOIN target_rows t ON t.item_key = i.item_key
    WHERE i.level IS NOT NULL
    GROUP BY GROUPING SETS ((i.feature, i.level), (t.fold, i.feature, i.level))
),
l AS (
    SELECT
        s.fold,
        s.feature,
        s.level,
        c.target,
        c.mean,
        c.std,
        CASE c.target
            WHEN 'std_minutes' THEN s.sw_std_minutes
            WHEN 'op_count' THEN s.sw_op_count
            WHEN 'outsourced' THEN s.sw_outsourced
            WHEN 'actual_hours' THEN s.sw_actual_hours
            WHEN 'route_1' THEN s.sw_route_1
            WHEN 'route_2' THEN s.sw_route_2
            WHEN 'route_3' THEN s.sw_route_3
            WHEN 'route_4' THEN s.sw_route_4
            WHEN 'route_5' THEN s.sw_route_5
            WHEN 'route_6' THEN s.sw_route_6
            WHEN 'route_7' THEN s.sw_route_7
            WHEN 'route_8' THEN s.sw_route_8
            WHEN 'route_9' THEN s.sw_route_9
            WHEN 'route_10' THEN s.sw_route_10
            WHEN 'route_11' THEN s.sw_route_11
            WHEN 'route_12' THEN s.sw_route_12
        END AS sw,
        CASE c.target
            WHEN 'std_minutes' THEN s.swy_std_minutes
            WHEN 'op_count' THEN s.swy_op_count
            WHEN 'outsourced' THEN s.swy_outsourced
            WHEN 'actual_hours' THEN s.swy_actual_hours
            WHEN 'route_1' THEN s.swy_route_1
            WHEN 'route_2' THEN s.swy_route_2
            WHEN 'route_3' THEN s.swy_route_3
            WHEN 'route_4' THEN s.swy_route_4
            WHEN 'route_5' THEN s.swy_route_5
            WHEN 'route_6' THEN s.swy_route_6
            WHEN 'route_7' THEN s.swy_route_7
            WHEN 'route_8' THEN s.swy_route_8
            WHEN 'route_9' THEN s.swy_route_9
            WHEN 'route_10' THEN s.swy_route_10
            WHEN 'route_11' THEN s.swy_route_11
            WHEN 'route_12' THEN s.swy_route_12
        END AS swy
    FROM fit_target_scale c
    CROSS JOIN s
)
SELECT fold, feature, level, target, sw, (swy - mean * sw) / std AS swz
FROM l
WHERE sw IS NOT NULL
