"""Generates an object whose match column dominates it: 16 row groups, 3.2M rows, a unique
random `email` per row (no dictionary: ~150 MB of the ~156 MB), a small `id`. Writes
OUT.ids-every-rg with one email from each row group, so find must read every row group's
match column: the case that shows whether find's memory is bounded by a row group.
Usage: python benches/gen_wide.py OUT.parquet
"""

import hashlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
groups, per_group = 16, 200_000
writer = None
picked = []
for g in range(groups):
    ids = range(g * per_group, (g + 1) * per_group)
    emails = [hashlib.sha256(str(i).encode()).hexdigest()[:40] + "@example.com" for i in ids]
    picked.append(emails[per_group // 2])
    table = pa.table({"id": pa.array(list(ids), pa.int64()), "email": pa.array(emails)})
    if writer is None:
        writer = pq.ParquetWriter(out, table.schema, compression="snappy", use_dictionary=False)
    writer.write_table(table, row_group_size=per_group)
writer.close()
with open(out + ".ids-every-rg", "w") as f:
    f.write("\n".join(picked) + "\n")
print(f"wrote {out}: {groups * per_group} rows, {groups} row groups")
