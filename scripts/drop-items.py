"""Writes a copy of an ERP extract without some of its items (the bench's "before they existed").

Usage: python drop-items.py FROM_DIR TO_DIR EVERY OUT_LIST
Leaves out every EVERY-th item (by sorted cleaned key: trimmed, upper-cased ITEM_CD) from all
three views, copies item_metadata.json, and writes the left-out ITEM_CDs to OUT_LIST, one per line.
"""
import os
import shutil
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

src, dst, every, out_list = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
views = ["dbo_BI_ITEM_INFO_VIEW", "dbo_BI_ROUTING_VIEW", "dbo_BI_WORK_ORDER_RESULTS"]


def keys(t):
    return pc.utf8_upper(pc.utf8_trim_whitespace(pc.cast(t["ITEM_CD"], pa.string())))


items = pq.read_table(os.path.join(src, views[0] + ".parquet"))
all_keys = sorted(set(k for k in keys(items).to_pylist() if k))
drop = all_keys[7::every]
os.makedirs(dst, exist_ok=True)
value_set = pa.array(drop)
for v in views:
    t = pq.read_table(os.path.join(src, v + ".parquet"))
    keep = pc.fill_null(pc.invert(pc.is_in(keys(t), value_set=value_set)), True)
    pq.write_table(t.filter(keep), os.path.join(dst, v + ".parquet"), compression="zstd")
shutil.copy(os.path.join(src, "item_metadata.json"), dst)
with open(out_list, "w") as f:
    f.write("\n".join(drop) + "\n")
print(f"left out {len(drop)} of {len(all_keys)} items")
