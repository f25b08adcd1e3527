-- version: 4
-- grain: one row per item_key (ITEM_CD upper-cased and trimmed)
-- purpose: one spelling of text and of missing, codes upper-cased, sentinels to NULL, units to mm,
--          log1p of the skewed dimensions, duplicate item rows removed
--
-- norm_text(s) trims all Unicode white space (incl. U+3000), folds inner runs to one space and
-- returns NULL for '', 'nan', 'null', 'none' (any case). See sql/README.md.
-- Not carried on: draw_use and item_nm_eng (100 % empty in the field), item_nm (display only).
WITH keyed AS (
    SELECT
        m.*,
        item_key(m.item_cd) AS item_key,
        -- Duplicate rows of one item (codes differing by case or spaces): keep the first by the
        -- raw code, which is deterministic. One window over all rows in that order, comparing
        -- each row's key with the previous one: a window partitioned by item_key did the same
        -- but handled its partitions (one per item) one by one. It reads map_items as it
        -- comes, before any join: rows equal in the ORDER BY keep their order.
        item_key(m.item_cd) IS DISTINCT FROM LAG(item_key(m.item_cd)) OVER (
            ORDER BY item_key(m.item_cd), m.item_cd, m.part_type, m.item_material
        ) AS first_of_key
    FROM map_items m
),
src AS (
    SELECT
        k.*,
        -- Unit of out_diameter / in_diameter / out_thickness (spellings: length_units). An empty
        -- unit or 'NA' means the plant default (mm); 'MM/IN' and 'D' are ambiguous, so those
        -- dimensions become unknown.
        CASE
            WHEN norm_text(k.dim_unit) IS NULL OR upper(norm_text(k.dim_unit)) = 'NA' THEN 1.0
            ELSE du.mm_per_unit
        END AS dim_mm_per_unit,
        -- Seal sizes are nominal: an empty unit means inch below 20 and mm from 20 up
        -- (no mechanical seal is 20 inch); KZ, GROUP and numbers are not length units.
        CASE
            WHEN norm_text(k.in_seal_size_uom) IS NULL
            THEN CASE WHEN k.in_seal_size < 20 THEN 25.4 ELSE 1.0 END
            ELSE iu.mm_per_unit
        END AS in_seal_mm_per_unit,
        CASE
            WHEN norm_text(k.mid_seal_size_uom) IS NULL
            THEN CASE WHEN k.mid_seal_size < 20 THEN 25.4 ELSE 1.0 END
            ELSE mu.mm_per_unit
        END AS mid_seal_mm_per_unit,
        CASE
            WHEN norm_text(k.out_seal_size_uom) IS NULL
            THEN CASE WHEN k.out_seal_size < 20 THEN 25.4 ELSE 1.0 END
            ELSE ou.mm_per_unit
        END AS out_seal_mm_per_unit
    FROM keyed k
    LEFT JOIN length_units du ON du.spelling = upper(norm_text(k.dim_unit))
    LEFT JOIN length_units iu ON iu.spelling = upper(norm_text(k.in_seal_size_uom))
    LEFT JOIN length_units mu ON mu.spelling = upper(norm_text(k.mid_seal_size_uom))
    LEFT JOIN length_units ou ON ou.spelling = upper(norm_text(k.out_seal_size_uom))
    WHERE k.first_of_key AND k.item_key IS NOT NULL
)
SELECT
    item_key,
    norm_text(item_cd)                             AS item_cd,
    norm_text(item_nm)                             AS item_nm,
    upper(norm_text(part_type))                    AS part_type,
    upper(norm_text(part_nm))                      AS part_nm,
    upper(norm_text(item_suffix))                  AS item_suffix,
    -- '0' in the free-text specs means "no spec".
    CASE WHEN norm_text(item_spec) = '0' THEN NULL ELSE upper(norm_text(item_spec)) END AS item_spec,
    CASE WHEN norm_text(additional_spec) = '0' THEN NULL ELSE upper(norm_text(additional_spec)) END AS additional_spec,
    upper(norm_text(item_material))                AS item_material,
    upper(norm_text(material_desc))                AS material_desc,
    norm_text(item_acct)                           AS item_acct,
    upper(norm_text(item_type))                    AS item_type,
    upper(norm_text(item_unit))                    AS item_unit,
    upper(norm_text(item_grp1))                    AS item_grp1,
    -- 'ddd' is a known junk value of the group name.
    CASE WHEN lower(norm_text(item_grp1_nm)) = 'ddd' THEN NULL ELSE upper(norm_text(item_grp1_nm)) END AS item_grp1_nm,
    upper(norm_text(standard_yn))                  AS standard_yn,
    -- Custom classifications carry trailing spaces and hyphens ('P11-MS-Gld -').
    norm_text(rtrim(upper(norm_text(group1)), ' -')) AS group1,
    norm_text(rtrim(upper(norm_text(group2)), ' -')) AS group2,
    lower(norm_text(group3))                       AS group3,
    upper(norm_text(draw_no))                      AS draw_no,
    upper(norm_text(draw_rev))                     AS draw_rev,
    norm_text(draw_sheet_no)                       AS draw_sheet_no,
    -- Dimensions: 0 and 9999 mean unknown; everything in mm, then log1p (right-skewed).
    CASE WHEN out_diameter > 0 AND out_diameter < 9999
         THEN ln(1.0 + out_diameter * dim_mm_per_unit) END AS out_diameter,
    CASE WHEN in_diameter > 0 AND in_diameter < 9999
         THEN ln(1.0 + in_diameter * dim_mm_per_unit) END AS in_diameter,
    CASE WHEN out_thickness > 0 AND out_thickness < 9999
         THEN ln(1.0 + out_thickness * dim_mm_per_unit) END AS out_thickness,
    CASE
        WHEN dim_mm_per_unit IS NULL THEN 'UNKNOWN'
        WHEN dim_mm_per_unit = 25.4 THEN 'INCH'
        ELSE 'MM'
    END                                            AS dim_unit,
    -- Rotation codes are 1..2; anything else is unknown.
    CASE WHEN rotate_cw IN (1.0, 2.0) THEN rotate_cw END   AS rotate_cw,
    CASE WHEN rotate_ccw IN (1.0, 2.0) THEN rotate_ccw END AS rotate_ccw,
    upper(norm_text(seal_type_grup))               AS seal_type_grup,
    upper(norm_text(in_seal_type_cd))              AS in_seal_type_cd,
    CASE WHEN in_seal_size > 0 AND in_seal_size < 9999
         THEN ln(1.0 + in_seal_size * in_seal_mm_per_unit) END AS in_seal_size,
    CASE
        WHEN in_seal_size IS NULL OR in_seal_size <= 0 OR in_seal_size >= 9999 THEN NULL
        WHEN in_seal_mm_per_unit IS NULL THEN 'UNKNOWN'
        WHEN in_seal_mm_per_unit = 25.4 THEN 'INCH'
        ELSE 'MM'
    END                                            AS in_seal_size_uom,
    upper(norm_text(mid_seal_type_cd))             AS mid_seal_type_cd,
    CASE WHEN mid_seal_size > 0 AND mid_seal_size < 9999
         THEN ln(1.0 + mid_seal_size * mid_seal_mm_per_unit) END AS mid_seal_size,
    CASE
        WHEN mid_seal_size IS NULL OR mid_seal_size <= 0 OR mid_seal_size >= 9999 THEN NULL
        WHEN mid_seal_mm_per_unit IS NULL THEN 'UNKNOWN'
        WHEN mid_seal_mm_per_unit = 25.4 THEN 'INCH'
        ELSE 'MM'
    END                                            AS mid_seal_size_uom,
    upper(norm_text(out_seal_type_cd))             AS out_seal_type_cd,
    CASE WHEN out_seal_size > 0 AND out_seal_size < 9999
         THEN ln(1.0 + out_seal_size * out_seal_mm_per_unit) END AS out_seal_size,
    CASE
        WHEN out_seal_size IS NULL OR out_seal_size <= 0 OR out_seal_size >= 9999 THEN NULL
        WHEN out_seal_mm_per_unit IS NULL THEN 'UNKNOWN'
        WHEN out_seal_mm_per_unit = 25.4 THEN 'INCH'
        ELSE 'MM'
    END                                            AS out_seal_size_uom,
    upper(norm_text(raw_matl_kind))                AS raw_matl_kind,
    norm_text(raw_matl_kind_nm)                    AS raw_matl_kind_nm
FROM src
-- The joins with length_units may reorder rows; the window left them sorted by item_key (one row
-- per key by now), and sums over clean_items depend on that order down to the last bit.
ORDER BY item_key
