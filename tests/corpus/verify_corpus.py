"""Checks the corpus test's outputs with pyarrow, a reader independent of Lethe: each
output equals its source minus exactly the rows whose match column holds an erased id,
value for value, and has the source's Parquet schema leaf for leaf.

Usage: verify_corpus.py CORPUS_DIR   (reads CORPUS_DIR/out/manifest.json)
"""

import decimal
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def match_mask(table, column, ids):
    values = table.column(column.split(".")[0])
    for part in column.split(".")[1:]:
        values = pc.struct_field(values, part)
    if pa.types.is_decimal(values.type):
        ids = [decimal.Decimal(repr(x)) for x in ids]
    return pc.fill_null(pc.is_in(values, pa.array(ids, values.type)), False)


def read(path, columns=None):
    return pq.read_table(path, columns=columns)


def readable_columns(path):
    """The top-level columns pyarrow can read (it cannot read some legacy shapes, such as
    a MAP without values): the rest is compared, and the note says what was left out."""
    fields = sorted({c.split(".")[0] for c in pq.ParquetFile(path).schema.names})
    ok, skipped = [], []
    for name in fields:
        try:
            pq.read_table(path, columns=[name])
            ok.append(name)
        except Exception:  # noqa: BLE001
            skipped.append(name)
    return ok, skipped


def main():
    root = sys.argv[1]
    entries = json.load(open(os.path.join(root, "out", "manifest.json")))
    failures = skipped = 0
    for e in entries:
        src = os.path.join(root, "in", e["file"])
        out = os.path.join(root, "out", e["output"])
        name = f'{e["writer"]} {e["version"]} [{e["options"]}] {e["file"]} on {e["column"]}'
        try:
            pq.ParquetFile(src)
        except Exception as err:  # noqa: BLE001 - a shape pyarrow cannot open at all
            skipped += 1
            print(f"pyarrow skip {name}: pyarrow cannot open the source ({err}); Lethe's full check only")
            continue
        try:
            if not pq.ParquetFile(src).schema.equals(pq.ParquetFile(out).schema):
                raise AssertionError("Parquet schema differs")
            note = ""
            try:
                source, columns = read(src), None
            except pa.ArrowException:
                columns, skipped = readable_columns(src)
                source = read(src, columns)
                note = f" (pyarrow cannot read {', '.join(skipped)}: other columns compared)"
            expected = source.filter(pc.invert(match_mask(source, e["column"], e["ids"])))
            got = read(out, columns)
            if not got.equals(expected):
                raise AssertionError("rows differ from the source minus the erased rows")
            removed = source.num_rows - got.num_rows
            print(f"pyarrow ok  {name}: {removed} removed, {got.num_rows} kept{note}")
        except Exception as err:  # noqa: BLE001 - report every file, then fail
            failures += 1
            print(f"pyarrow FAIL {name}: {err}")
    print(f"{len(entries) - failures - skipped} passed, {failures} failed, {skipped} skipped")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
