-- version: 1
-- grain: one row per training item_key x numeric feature with a value
-- purpose: each training item's numeric values with its sample weight: the one join of
--          enc_numeric_input and item_sample that fit_numeric_bounds and fit_numeric_stats read
--          (held, as an input of two fit_ files, so it is computed once)
SELECT n.feature, n.x, s.sample_weight AS w
FROM enc_numeric_input n
JOIN item_sample s ON s.item_key = n.item_key
WHERE n.x IS NOT NULL
