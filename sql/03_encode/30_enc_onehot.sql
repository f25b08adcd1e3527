-- version: 1
-- grain: one row per item_key x one-hot feature
-- purpose: one-hot encoding against the fitted vocabulary; unseen and rare levels are OTHER
SELECT
    i.item_key,
    i.feature,
    i.feature || '=' || coalesce(v.level, 'OTHER') AS dim,
    1.0 AS value
FROM enc_onehot_input i
LEFT JOIN fit_onehot_vocab v ON v.feature = i.feature AND v.level = i.level
