#!/usr/bin/env bash
# Forget vs a naive pyarrow rewrite, side by side on one core, in one run; prints the
# ratio. Usage: benches/forget_compare.sh FILE.parquet COLUMN IDS_FILE [runs]
# Needs target/release/lethe (cargo build --release) and a python with pyarrow
# ($PYTHON, default /var/tmp/lethe/bench-venv/bin/python). Output goes to /dev/shm.
set -euo pipefail
file=$1 column=$2 ids=$3 runs=${4:-5}
lethe=${LETHE_BIN:-${CARGO_TARGET_DIR:-target}/release/lethe}
python=${PYTHON:-/var/tmp/lethe/bench-venv/bin/python}
here=$(dirname "$0")
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
l=$(for _ in $(seq "$runs"); do
  taskset -c 0 "$lethe" bench forget --input "$file" --column "$column" --match-ids "$ids" \
    --output /dev/shm/lethe-forget.parquet | awk '/^elapsed/ {print $2}'
done | median)
p=$(for _ in $(seq "$runs"); do
  taskset -c 0 "$python" "$here/pyarrow_forget.py" "$file" "$column" "$ids" /dev/shm/pyarrow-forget.parquet \
    | sed -E 's/^pyarrow full rewrite: ([0-9.]+) s.*/\1/'
done | median)
rm -f /dev/shm/lethe-forget.parquet /dev/shm/pyarrow-forget.parquet
awk -v l="$l" -v p="$p" 'BEGIN {printf "lethe %.3f s, pyarrow %.3f s (medians of runs): %.2fx\n", l, p, p / l}'
