# Sourced by scripts/test and scripts/fuzz-api: starts what the tests need and stops, on
# exit, only what it started.
#   - Postgres on 127.0.0.1:5432 (trust auth) unless one already answers there;
#   - moto server (S3, Glue, Lake Formation emulator) on a free loopback port, from a
#     virtualenv under /var/tmp (outside the clone, reused between runs).
set -euo pipefail

LETHE_VAR=${LETHE_VAR:-/var/tmp/lethe}
mkdir -p "$LETHE_VAR"
STARTED_PG_DIR=""
MOTO_PID=""

stop_services() {
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
  if [ -n "$STARTED_PG_DIR" ]; then
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D '$STARTED_PG_DIR' -m fast stop" >/dev/null 2>&1 || true
  fi
}
trap stop_services EXIT

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

ensure_postgres() {
  if pg_answers; then return 0; fi
  # The machine's own cluster, if it has one that is merely stopped.
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_answers && return 0; sleep 1; done
  fi
  # Otherwise a throwaway cluster of our own, trust auth on loopback only.
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$PG_BIN" ]; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$LETHE_VAR" postgres
  STARTED_PG_DIR="$LETHE_VAR/pgdata"
  rm -rf "$STARTED_PG_DIR"; mkdir -p "$STARTED_PG_DIR"; chown postgres "$STARTED_PG_DIR"
  # initdb refuses to run as root.
  su postgres -s /bin/sh -c "$PG_BIN/initdb -D '$STARTED_PG_DIR' -A trust -U postgres >/dev/null"
  su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D '$STARTED_PG_DIR' -l '$STARTED_PG_DIR/log' -o '-c listen_addresses=127.0.0.1 -p 5432 -k /tmp' -w start >/dev/null"
  pg_answers
}

start_moto() {
  local venv="$LETHE_VAR/venv"
  if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]>=5.2,<5.3"
  fi
  MOTO_PORT=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$LETHE_VAR/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 60); do
    if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/')" 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  # moto's virtualenv holds `cryptography` (a moto dependency): the independent ES256
  # verifier of the receipts test (tests/api/receipts.rs).
  export LETHE_MOTO_VENV="$venv"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/lethe-target}
export DATABASE_URL=${LETHE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# The writer corpus (tests/corpus.rs; pandas and fastavro for the CSV and Avro tests;
# pyiceberg, with pyiceberg-core for its day()/bucket() transforms, for the Iceberg tables
# of tests/api/iceberg.rs, written through its Glue catalog against moto):
# real writers from PyPI, pinned, in a
# virtualenv under /var/tmp; files are written to a fresh directory named by
# LETHE_CORPUS_DIR, which the Rust corpus test reads and verify_corpus checks afterwards.
CORPUS_PACKAGES="pyarrow==26.0.1 duckdb==2.0.1 polars==2.1.0 fastparquet==2026.9.0 pandas==3.1.1 fastavro==1.13.1 cramjam==2.14.0 zstandard==0.25.0 pyiceberg[glue,pyarrow,pyiceberg-core,sql-sqlite]==0.12.0 sqlalchemy==2.1.9 pyiceberg-core==0.10.1"
CORPUS_VENV="$LETHE_VAR/corpus-venv"

# make_venv DIR PACKAGES: a virtualenv at DIR holding exactly PACKAGES (pinned, from
# PyPI), made again whenever the list changes.
make_venv() {
  local venv=$1 packages=$2
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/packages" 2>/dev/null)" != "$packages" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # Split on spaces, no globbing (the extras' brackets).
    # shellcheck disable=SC2086
    (set -f; "$venv/bin/pip" install -q --disable-pip-version-check $packages)
    echo "$packages" >"$venv/packages"
  fi
}

make_corpus() {
  make_venv "$CORPUS_VENV" "$CORPUS_PACKAGES"
  export LETHE_CORPUS_VENV="$CORPUS_VENV"
  export LETHE_CORPUS_DIR="$LETHE_VAR/corpus"
  rm -rf "$LETHE_CORPUS_DIR"
  "$CORPUS_VENV/bin/python" tests/corpus/make_corpus.py "$LETHE_CORPUS_DIR/in"
}

# DuckDB's iceberg extension, the second reader of Lethe's Iceberg snapshots
# (lakefile::iceberg::interop): `INSTALL iceberg` would download it, so the extension (and
# the avro extension it reads manifests with) comes from PyPI's packages, which pin the
# DuckDB of their release line; hence a virtualenv of its own, apart from the corpus's.
DUCKDB_ICEBERG_PACKAGES="duckdb==1.5.5 duckdb-extension-iceberg==1.5.5 duckdb-extension-avro==1.5.5"
DUCKDB_ICEBERG_VENV="$LETHE_VAR/duckdb-iceberg-venv"

make_duckdb_iceberg() {
  make_venv "$DUCKDB_ICEBERG_VENV" "$DUCKDB_ICEBERG_PACKAGES"
  export LETHE_DUCKDB_ICEBERG_VENV="$DUCKDB_ICEBERG_VENV"
}

verify_corpus() {
  "$CORPUS_VENV/bin/python" tests/corpus/verify_corpus.py "$LETHE_CORPUS_DIR"
}
