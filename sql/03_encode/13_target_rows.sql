-- version: 3
-- grain: one row per training item_key with a current routing
-- purpose: each training item's routing targets (the t_ columns of item_targets) with its sample
--          weight and fold: the one join of item_targets and item_sample that target_values
--          (the targets long) and fit_target_sums (wide) read. A file of its own, and held,
--          because DataFusion inlines a CTE or view wherever it is read: as a join inside each
--          branch of target_values it would run once per target.
-- held: yes
SELECT
    t.* EXCLUDE (op_count, std_minutes, outsourced_share, job_seq),
    s.fold,
    s.sample_weight AS w
FROM item_targets t
JOIN item_sample s ON s.item_key = t.item_key
