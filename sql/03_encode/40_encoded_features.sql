-- version: 1
-- grain: one row per item_key x dimension
-- purpose: the final long-format feature table the Rust tail turns into weighted vectors:
--          feature (the weight key in config weights.features), dim (vector column), value
SELECT item_key, feature, dim, value FROM enc_onehot
UNION ALL
SELECT item_key, feature, dim, value FROM enc_numeric
UNION ALL
SELECT item_key, feature, dim, value FROM enc_target
