-- version: 2
-- grain: one row per item_key x one-hot feature
-- purpose: one-hot encoding against the fitted vocabulary; unseen and rare levels are OTHER.
--          The vocabulary comes first (`vocab RIGHT JOIN items`) so the engine builds its hash
--          table on it and streams the items
SELECT
    i.item_key,
    i.feature,
    i.feature || '=' || coalesce(v.level, 'OTHER') AS dim,
    1.0 AS value
FROM fit_onehot_vocab v
RIGHT JOIN enc_onehot_input i ON v.feature = i.feature AND v.level = i.level
