-- version: 1
-- grain: one row per item_key x target-encoded feature
-- purpose: the high-cardinality columns to target-encode, long format; a NULL level is encoded
--          with the prior
SELECT item_key, 'part_type' AS feature, part_type AS level FROM clean_items
UNION ALL SELECT item_key, 'item_material', item_material FROM clean_items
UNION ALL SELECT item_key, 'seal_type_grup', seal_type_grup FROM clean_items
UNION ALL SELECT item_key, 'in_seal_type_cd', in_seal_type_cd FROM clean_items
UNION ALL SELECT item_key, 'mid_seal_type_cd', mid_seal_type_cd FROM clean_items
UNION ALL SELECT item_key, 'out_seal_type_cd', out_seal_type_cd FROM clean_items
UNION ALL SELECT item_key, 'group1', group1 FROM clean_items
UNION ALL SELECT item_key, 'item_spec', item_spec FROM clean_items
UNION ALL SELECT item_key, 'additional_spec', additional_spec FROM clean_items
UNION ALL SELECT item_key, 'draw_no', draw_no FROM clean_items
