-- version: 1
-- grain: one row per item_key x numeric feature
-- purpose: the numeric columns (already in mm and log1p where skewed), long format
SELECT item_key, 'out_diameter' AS feature, out_diameter AS x FROM clean_items
UNION ALL SELECT item_key, 'in_diameter', in_diameter FROM clean_items
UNION ALL SELECT item_key, 'out_thickness', out_thickness FROM clean_items
UNION ALL SELECT item_key, 'in_seal_size', in_seal_size FROM clean_items
UNION ALL SELECT item_key, 'mid_seal_size', mid_seal_size FROM clean_items
UNION ALL SELECT item_key, 'out_seal_size', out_seal_size FROM clean_items
UNION ALL SELECT item_key, 'rotate_cw', rotate_cw FROM clean_items
UNION ALL SELECT item_key, 'rotate_ccw', rotate_ccw FROM clean_items
