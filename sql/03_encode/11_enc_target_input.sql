-- version: 3
-- grain: one row per item_key x target-encoded feature
-- purpose: the high-cardinality columns to target-encode, long format; a NULL level is encoded
--          with the prior. Not here: the near-unique free text and drawing numbers (item_spec,
--          additional_spec, draw_no): `trainer eval` showed they carry no routing signal and
--          they cost dimensions. Nor seal_type_grup (one-hot encoded already) and
--          mid_seal_type_cd (almost always empty; mid_seal_size and its unit tell whether there
--          is a middle seal): without their target encodings, fewer dimensions and the same
--          routing matches (BENCHMARKS.md, commit 016507c)
SELECT item_key, 'part_type' AS feature, part_type AS level FROM clean_items
UNION ALL SELECT item_key, 'item_material', item_material FROM clean_items
UNION ALL SELECT item_key, 'in_seal_type_cd', in_seal_type_cd FROM clean_items
UNION ALL SELECT item_key, 'out_seal_type_cd', out_seal_type_cd FROM clean_items
UNION ALL SELECT item_key, 'group1', group1 FROM clean_items
