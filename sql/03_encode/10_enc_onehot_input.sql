-- version: 2
-- grain: one row per item_key x one-hot feature
-- purpose: the low-cardinality columns to one-hot encode, long format; a missing value is the
--          level '(missing)' so that "unknown" is a category of its own. Not here: draw_rev and
--          draw_sheet_no (drawing bookkeeping; `trainer eval` showed no routing signal in them)
SELECT item_key, 'part_type' AS feature, coalesce(part_type, '(missing)') AS level FROM clean_items
UNION ALL SELECT item_key, 'part_nm', coalesce(part_nm, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'item_suffix', coalesce(item_suffix, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'material_desc', coalesce(material_desc, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'item_acct', coalesce(item_acct, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'item_type', coalesce(item_type, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'item_unit', coalesce(item_unit, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'item_grp1', coalesce(item_grp1, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'item_grp1_nm', coalesce(item_grp1_nm, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'standard_yn', coalesce(standard_yn, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'group2', coalesce(group2, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'group3', coalesce(group3, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'dim_unit', coalesce(dim_unit, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'seal_type_grup', coalesce(seal_type_grup, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'in_seal_size_uom', coalesce(in_seal_size_uom, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'mid_seal_size_uom', coalesce(mid_seal_size_uom, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'out_seal_size_uom', coalesce(out_seal_size_uom, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'raw_matl_kind', coalesce(raw_matl_kind, '(missing)') FROM clean_items
UNION ALL SELECT item_key, 'raw_matl_kind_nm', coalesce(raw_matl_kind_nm, '(missing)') FROM clean_items
