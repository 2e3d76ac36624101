"""DuckDB answering find's question on the same files, one thread:
which files hold these ids, and how many rows.
Usage: python benches/duckdb_find.py IDS_FILE COLUMN FILE...
"""
import sys
import time

import duckdb

ids_file, column, files = sys.argv[1], sys.argv[2], sys.argv[3:]
ids = [line.strip() for line in open(ids_file) if line.strip()]
values = ", ".join(ids if all(i.lstrip("-").isdigit() for i in ids) else [f"'{i}'" for i in ids])
con = duckdb.connect()
con.execute("SET threads TO 1")
files_sql = ", ".join(f"'{f}'" for f in files)
query = (f"SELECT filename, count(*) FROM read_parquet([{files_sql}], filename=true) "
         f"WHERE {column} IN ({values}) GROUP BY filename")
start = time.perf_counter()
rows = con.execute(query).fetchall()
elapsed = time.perf_counter() - start
print(f"duckdb: {len(rows)} files with matches, {sum(r[1] for r in rows)} rows matched, {elapsed:.3f} s")
