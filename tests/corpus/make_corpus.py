"""Writes the Parquet writer corpus: the same kind of table written by pyarrow, DuckDB,
polars and fastparquet with the options real lakes use, plus a manifest.

Usage: make_corpus.py OUT_DIR

Each file has an int64 `id` column (0..N, unique) and other columns of many types. The
manifest (OUT_DIR/manifest.json) lists per file: the writer and its version, the options,
the match column, the ids to erase and how many rows pyarrow says match them, so the Rust
corpus test can check find and forget, and verify_corpus.py can check the outputs.
"""

import datetime as dt
import decimal
import json
import os
import sys
import uuid

import duckdb
import fastparquet
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

N = 3000
ROWS_PER_GROUP = 1000
# Ids in the middle row group only: the first and last are copied, the middle rewritten.
ERASE = [1234, 1500]


def base_table(n=N):
    ids = list(range(n))
    day = dt.datetime(2024, 3, 1, 12, 30, 0)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "email": pa.array([None if i % 11 == 0 else f"user{i}@example.com" for i in ids]),
            "country": pa.array([["fr", "de", "it", "es"][i % 4] for i in ids]).dictionary_encode(),
            "amount": pa.array(
                [decimal.Decimal(i * 7 - 300).scaleb(-2) for i in ids], pa.decimal128(12, 2)
            ),
            "score": pa.array([None if i % 13 == 0 else i / 3.0 for i in ids], pa.float64()),
            "ratio": pa.array([float(i % 17) / 4 for i in ids], pa.float32()),
            "small": pa.array([i % 100 for i in ids], pa.int16()),
            "big_unsigned": pa.array([2**64 - 1 - i for i in ids], pa.uint64()),
            "flag": pa.array([i % 3 == 0 for i in ids]),
            "seen_at": pa.array(
                [day + dt.timedelta(seconds=i * 37) for i in ids], pa.timestamp("us", tz="UTC")
            ),
            "born": pa.array([dt.date(1990, 1, 1) + dt.timedelta(days=i) for i in ids]),
            "tags": pa.array(
                [None if i % 7 == 0 else [f"t{i % 5}", f"t{i % 3}"][: i % 3] for i in ids],
                pa.list_(pa.string()),
            ),
            "contact": pa.array(
                [{"phone": f"+33{i:09d}", "zip": i % 1000} for i in ids],
                pa.struct([("phone", pa.string()), ("zip", pa.int32())]),
            ),
            "attrs": pa.array(
                [[("k", f"v{i}")] if i % 2 else [] for i in ids],
                pa.map_(pa.string(), pa.string()),
            ),
            "blob": pa.array([bytes([i % 256, (i * 7) % 256]) for i in ids], pa.binary()),
        }
    )


def expected_matches(path, column, ids):
    table = pq.read_table(path, columns=[column.split(".")[0]])
    values = table.column(column.split(".")[0])
    for part in column.split(".")[1:]:
        values = pc.struct_field(values, part)
    if pa.types.is_decimal(values.type):
        ids = [decimal.Decimal(repr(x)) for x in ids]
    return int(pc.sum(pc.is_in(values, pa.array(ids, values.type))).as_py() or 0)


entries = []


def add(out, name, writer, version, options, column="id", ids=ERASE):
    path = os.path.join(out, name)
    entries.append(
        {
            "file": name,
            "writer": writer,
            "version": version,
            "options": options,
            "column": column,
            "ids": ids,
            "expected_matches": expected_matches(path, column, ids),
        }
    )


def pyarrow_files(out):
    t = base_table()
    v = pa.__version__
    w = lambda name, **kw: pq.write_table(t, os.path.join(out, name), row_group_size=ROWS_PER_GROUP, **kw)
    for codec in ["snappy", "gzip", "brotli", "zstd", "lz4", "none"]:
        w(f"pyarrow-{codec}.parquet", compression=codec)
        add(out, f"pyarrow-{codec}.parquet", "pyarrow", v, f"compression={codec}")
    w("pyarrow-int96.parquet", use_deprecated_int96_timestamps=True)
    add(out, "pyarrow-int96.parquet", "pyarrow", v, "use_deprecated_int96_timestamps=True")
    w("pyarrow-page-v2.parquet", data_page_version="2.0")
    add(out, "pyarrow-page-v2.parquet", "pyarrow", v, 'data_page_version="2.0"')
    w("pyarrow-format-1.0.parquet", version="1.0")
    add(out, "pyarrow-format-1.0.parquet", "pyarrow", v, 'version="1.0"')
    w("pyarrow-legacy-nested.parquet", use_compliant_nested_type=False)
    add(out, "pyarrow-legacy-nested.parquet", "pyarrow", v, "use_compliant_nested_type=False")
    w("pyarrow-no-stats.parquet", write_statistics=False)
    add(out, "pyarrow-no-stats.parquet", "pyarrow", v, "write_statistics=False")
    w("pyarrow-tiny-pages.parquet", write_page_index=True, data_page_size=256)
    add(out, "pyarrow-tiny-pages.parquet", "pyarrow", v, "write_page_index=True, data_page_size=256")
    w(
        "pyarrow-encodings.parquet",
        use_dictionary=["country"],
        column_encoding={
            "id": "DELTA_BINARY_PACKED",
            "email": "DELTA_BYTE_ARRAY",
            "blob": "DELTA_LENGTH_BYTE_ARRAY",
            "score": "BYTE_STREAM_SPLIT",
            "ratio": "BYTE_STREAM_SPLIT",
        },
    )
    add(out, "pyarrow-encodings.parquet", "pyarrow", v, "DELTA_*, BYTE_STREAM_SPLIT column encodings")
    w("pyarrow-decimal-as-int.parquet", store_decimal_as_integer=True)
    add(out, "pyarrow-decimal-as-int.parquet", "pyarrow", v, "store_decimal_as_integer=True", "amount", [decimal_id(1234)])
    w("pyarrow-email.parquet", compression="zstd")
    add(out, "pyarrow-email.parquet", "pyarrow", v, "match on a string column", "email", ["user1234@example.com"])
    w("pyarrow-nested-match.parquet")
    add(out, "pyarrow-nested-match.parquet", "pyarrow", v, "match on a struct field", "contact.phone", ["+33000001234"])


def decimal_id(i):
    # The amount of row i as a JSON number (decimal(12,2)).
    return float(decimal.Decimal(i * 7 - 300).scaleb(-2))


def duckdb_files(out):
    v = duckdb.__version__
    con = duckdb.connect()
    con.execute(
        f"""
        create table t as select
            i::bigint as id,
            'user' || i || '@example.com' as email,
            ((i % 900) - 450)::decimal(4, 1) as d4,
            (i * 7 - 300)::decimal(9, 2) as d9,
            (i * 7 - 300)::decimal(18, 3) as d18,
            (i * 7 - 300)::decimal(20, 2) as d20,
            (i * 7 - 300)::decimal(38, 10) as d38,
            i::hugeint * 1000000000000 as huge,
            uuid() as u,
            timestamp '2024-03-01 12:30:00' + to_seconds(i * 37) as ts,
            (timestamp '2024-03-01 12:30:00' + to_seconds(i * 37))::timestamptz as tstz,
            (timestamp '2024-03-01 12:30:00' + to_seconds(i * 37))::timestamp_ns as ts_ns,
            [i, i + 1] as ints,
            {{'a': i, 'b': 'x' || i}} as s,
            map(['k'], ['v' || i]) as m
        from range({N}) r(i)
        """
    )
    for codec in ["snappy", "zstd"]:
        name = f"duckdb-{codec}.parquet"
        con.execute(
            f"copy t to '{os.path.join(out, name)}' (format parquet, compression {codec}, row_group_size {ROWS_PER_GROUP})"
        )
        add(out, name, "duckdb", v, f"compression {codec}, decimals 4/9/18/20/38, uuid, hugeint, timestamps")
    name = "duckdb-d20-match.parquet"
    con.execute(f"copy t to '{os.path.join(out, name)}' (format parquet, row_group_size {ROWS_PER_GROUP})")
    add(out, name, "duckdb", v, "match on a DECIMAL(20,2) column", "d20", [float(1234 * 7 - 300)])


def polars_files(out):
    v = pl.__version__
    df = pl.from_arrow(base_table().drop(["attrs", "big_unsigned"]))
    for codec in ["zstd", "snappy"]:
        name = f"polars-{codec}.parquet"
        df.write_parquet(os.path.join(out, name), compression=codec, row_group_size=ROWS_PER_GROUP, statistics=True)
        add(out, name, "polars", v, f"compression={codec}, statistics=True")
    name = "polars-email.parquet"
    df.write_parquet(os.path.join(out, name), row_group_size=ROWS_PER_GROUP)
    add(out, name, "polars", v, "match on a string column", "email", ["user1234@example.com"])


def fastparquet_files(out):
    v = fastparquet.__version__
    ids = list(range(N))
    df = pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="int64"),
            "email": [None if i % 11 == 0 else f"user{i}@example.com" for i in ids],
            "score": [i / 3.0 for i in ids],
            "small": pd.Series([i % 100 for i in ids], dtype="int8"),
            "ts": pd.to_datetime([dt.datetime(2024, 3, 1) + dt.timedelta(seconds=i * 37) for i in ids]),
            "flag": [i % 3 == 0 for i in ids],
            "raw": [bytes([i % 256]) for i in ids],
        }
    )
    opts = dict(row_group_offsets=ROWS_PER_GROUP, object_encoding={"email": "utf8", "raw": "bytes"})
    for times, codec in [("int96", "GZIP"), ("int64", "SNAPPY"), ("int96", None)]:
        name = f"fastparquet-{times}-{codec or 'none'}.parquet"
        fastparquet.write(os.path.join(out, name), df, times=times, compression=codec, **opts)
        add(out, name, "fastparquet", v, f"times={times}, compression={codec}")
    name = "fastparquet-email.parquet"
    fastparquet.write(os.path.join(out, name), df, times="int96", **opts)
    add(out, name, "fastparquet", v, "match on a string column, times=int96", "email", ["user1234@example.com"])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pyarrow_files(out)
    duckdb_files(out)
    polars_files(out)
    fastparquet_files(out)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(entries, f, indent=1)
    print(f"corpus: {len(entries)} files in {out}")


if __name__ == "__main__":
    main()
