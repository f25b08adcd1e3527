-- version: 1
-- grain: one row per spelling of a length unit (house spelling, upper-cased)
-- purpose: what each spelling of a length unit means in mm: the one place to add a spelling.
--          clean_items reads it for the dimension unit and the three seal-size units; a spelling
--          not listed here makes its lengths unknown (NULL), an empty unit follows each column's
--          own default there.
SELECT spelling, mm_per_unit
FROM (VALUES
    ('MM', 1.0),
    ('MMMM', 1.0),
    ('INCH', 25.4),
    ('INC', 25.4),
    ('IN', 25.4)
) AS t(spelling, mm_per_unit)
