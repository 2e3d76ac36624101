"""Generates a benchmark Parquet object: ~120 MB, 16 row groups, snappy.

customer_id is sorted (statistics can prune), email is random (only bloom filters can
prune), payload pads rows to a realistic width. Usage:
    python benches/gen_lake.py OUT.parquet [--rows N] [--bloom]
Writes OUT.ids-one-rg (ids that live in one row group) and OUT.ids-all-rg (ids spread
over every row group), one id per line, next to OUT.
"""
import argparse
import random

import pyarrow as pa
import pyarrow.parquet as pq

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--rows", type=int, default=3_200_000)
parser.add_argument("--bloom", action="store_true")
args = parser.parse_args()

rng = random.Random(42)
n = args.rows
group = n // 16
ids = list(range(n))
emails = [f"user{rng.randrange(10**9)}@example.com" for _ in range(n)]
countries = [rng.choice(["fr", "de", "it", "es", "nl"]) for _ in range(n)]
payload = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=20)) for _ in range(n)]
table = pa.table({
    "customer_id": pa.array(ids, pa.int64()),
    "email": pa.array(emails, pa.string()),
    "country": pa.array(countries, pa.string()),
    "amount": pa.array([rng.random() * 1000 for _ in range(n)], pa.float64()),
    "payload": pa.array(payload, pa.string()),
})
kwargs = {}
if args.bloom:
    kwargs["bloom_filter_options"] = {"email": {"ndv": group, "fpp": 0.01}}
try:
    pq.write_table(table, args.out, row_group_size=group, compression="snappy", **kwargs)
except TypeError:
    pq.write_table(table, args.out, row_group_size=group, compression="snappy")
with open(args.out + ".ids-one-rg", "w") as f:
    for i in range(5):
        f.write(f"{5 * group + 1000 + i}\n")
with open(args.out + ".ids-all-rg", "w") as f:
    for rg in range(16):
        f.write(f"{rg * group + 7}\n")
print(f"wrote {args.out}: {n} rows, 16 row groups")
