-- version: 2
-- grain: one row per training item_key with a current routing
-- purpose: each training item's routing targets with its sample weight and fold: the one join of
--          item_targets and item_sample that fit_target_scale and enc_target_y read. A file of its
--          own (held, as an input of a fit_ file) because DataFusion inlines a CTE wherever it is
--          read: as a join inside each of the 12 UNION ALL branches (now 16) of those two files it
--          ran 36 times, and the hash tables of the branches' joins were the run's memory peak.
SELECT
    t.item_key,
    s.fold,
    s.sample_weight AS w,
    t.t_std_minutes,
    t.t_op_count,
    t.t_outsourced,
    t.t_actual_hours,
    t.t_route_1,
    t.t_route_2,
    t.t_route_3,
    t.t_route_4,
    t.t_route_5,
    t.t_route_6,
    t.t_route_7,
    t.t_route_8,
    t.t_route_9,
    t.t_route_10,
    t.t_route_11,
    t.t_route_12
FROM item_targets t
JOIN item_sample s ON s.item_key = t.item_key
