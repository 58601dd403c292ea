#!/usr/bin/env bash
# Schema-driven fuzzing: schemathesis, from PyPI in a venv, against a real
# daemon with tokens, every operation of GET /v1/openapi.json, every check.
#
#   bash scripts/schemathesis.sh [path/to/jobq]      (default target/debug/jobq)
#
# Bounded: JOBQ_ST_EXAMPLES examples per operation (default 40) and a
# request timeout for the streams (followed output, events, long polls).
# The jobs it submits run as `nobody` (the token's run_as, when run as
# root) under tight limits, in a throw-away data dir. Exits non-zero when
# schemathesis finds a failure; its report names the operation and gives a
# curl line that reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "${1:-target/debug/jobq}")
examples=${JOBQ_ST_EXAMPLES:-40}
version=4.32.5
venv=${JOBQ_ST_VENV:-target/schemathesis-venv}

if [ ! -x "$venv/bin/st" ] || ! "$venv/bin/st" --version | grep -q "$version"; then
    echo "schemathesis: installing $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    # Kept for a look after a failure.
    mkdir -p target
    cp "$work/daemon.log" target/schemathesis-daemon.log 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

token=st-admin-0123456789abcdef0123456789
run_as=
if [ "$(id -u)" = 0 ]; then
    run_as='run_as = "nobody"'
fi
cat >"$work/jobq.toml" <<EOF
listen = "127.0.0.1:0"
log = "${JOBQ_ST_LOG:-info}"
data_dir = "$work/data"
workers = 2
max_queued = 2000
# A cancelled job that ignores SIGTERM is killed within the request timeout.
kill_grace = "1s"

[jobs]
limits = { memory = "256MiB", cpu_time = "5s", processes = 64, open_files = 256 }

[[auth.tokens]]
name = "fuzz"
role = "admin"
token = "$token"
$run_as
EOF

"$bin" serve --config "$work/jobq.toml" >"$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    [ -s "$work/data/jobq.addr" ] && break
    sleep 0.1
done
addr=$(head -n1 "$work/data/jobq.addr")
base="http://$addr"
curl -fsS "$base/readyz" >/dev/null

status=0
PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks \
    "$venv/bin/st" run "$base/v1/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --max-examples "$examples" \
    --request-timeout 5 \
    --seed "${JOBQ_ST_SEED:-1}" \
    --workers 1 \
    --no-color \
    ${JOBQ_ST_ARGS:-} \
    || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
    echo "schemathesis: the daemon died; its log:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi
if grep -q "panicked" "$work/daemon.log"; then
    echo "schemathesis: the daemon panicked; its log:" >&2
    grep -B2 -A10 "panicked" "$work/daemon.log" >&2
    exit 1
fi
exit "$status"
