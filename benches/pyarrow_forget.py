"""The naive rewrite Lethe's forget is compared with: read the whole table with pyarrow,
filter out the rows whose COLUMN is in the ids, write it back (same codec, row-group size).

    python benches/pyarrow_forget.py IN.parquet COLUMN IDS_FILE OUT.parquet
"""
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

src, column, ids_file, out = sys.argv[1:5]
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
ids = [int(line) for line in open(ids_file) if line.strip()]
start = time.perf_counter()
meta = pq.ParquetFile(src).metadata
table = pq.read_table(src, use_threads=False)
kept = table.filter(pc.invert(pc.is_in(table[column], value_set=pa.array(ids, table[column].type))))
pq.write_table(kept, out, row_group_size=meta.row_group(0).num_rows,
               compression=meta.row_group(0).column(0).compression.lower())
secs = time.perf_counter() - start
size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
import os
print(f"pyarrow full rewrite: {secs:.3f} s, {os.path.getsize(src) / 1e6 / secs:.1f} MB/s, "
      f"rows removed {table.num_rows - kept.num_rows}")
