#!/usr/bin/env bash
# `make bench`: the size and init duration of each Lambda function's release build
# (benches/cold_start.rs; ERASURE_BENCH_COLD_STARTS starts each, default 20), then the erasure
# benchmark (benches/erasure.rs) against local emulators, printing P1-P4 and the growth table side
# by side (docs/PERFORMANCE.md). P3 is measured in process and through `cargo lambda watch`
# (the api's release build behind watch's HTTP front, over the same emulators). Uses its own
# ports (8200, 9524, 9700 unless ERASURE_BENCH_DYNAMODB_PORT / ERASURE_BENCH_SQS_PORT /
# ERASURE_BENCH_LAMBDA_PORT say otherwise) and always stops what it started.
# ERASURE_BENCH_SCALE (default 1) multiplies the data sizes; ERASE_PAGES_IN_FLIGHT tunes the
# engine as it tunes the worker.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DYNAMODB_PORT="${ERASURE_BENCH_DYNAMODB_PORT:-8200}"
SQS_PORT="${ERASURE_BENCH_SQS_PORT:-9524}"
LAMBDA_PORT="${ERASURE_BENCH_LAMBDA_PORT:-9700}"

step "Tools"
ensure_tools

step "Build the Lambda functions as deployed (cargo lambda build --release --x86-64)"
# The zips Lambda gets, then the bare bootstraps beside them to start (this copies, it does not
# compile again).
cargo lambda build --release --x86-64 --output-format zip
cargo lambda build --release --x86-64

step "Build the benchmarks (release profile)"
cargo bench --bench cold_start --bench erasure --bench export --no-run

step "cargo bench --bench cold_start (${ERASURE_BENCH_COLD_STARTS:-20} starts per function)"
cargo bench --bench cold_start

step "Emulators: DynamoDB (dynalite) on 127.0.0.1:$DYNAMODB_PORT, SQS (moto) on 127.0.0.1:$SQS_PORT"
# P2 holds a million background items in dynalite's memory: more heap than node's default.
NODE_OPTIONS="--max-old-space-size=6144" start_dynalite "$DYNAMODB_PORT"
# The bench empties its task queue after every request it times (moto's sends slow down as a
# queue grows); moto refuses a second purge within a minute unless told not to.
MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false start_moto "$SQS_PORT"

step "The api behind cargo lambda watch (release build) on 127.0.0.1:$LAMBDA_PORT, for P3"
# The erasure bench makes these tables and this queue (moto's queue URLs are predictable) and
# registers its tenant in them; the api behind watch reads the names from this file.
WATCH_RUN="bench-watch-$$"
WATCH_ENV="$LOCAL_DIR/bench-watch.env"
write_lambda_env "$WATCH_ENV" "$DYNAMODB_PORT" "$SQS_PORT" <<EOF
AWS_LAMBDA_LOG_FORMAT=JSON
AWS_LAMBDA_LOG_LEVEL=INFO
DATA_TABLE=$WATCH_RUN-data
CONTROL_TABLE=$WATCH_RUN-control
TASK_QUEUE_URL=http://127.0.0.1:$SQS_PORT/123456789012/$WATCH_RUN-tasks
RATE_LIMIT_PER_MINUTE=10000000
MAX_RECEIVE_COUNT=5
EOF
start_bg lambda-watch-bench cargo lambda watch --release --ignore-changes -A 127.0.0.1 \
    -P "$LAMBDA_PORT" --env-file "$WATCH_ENV"
wait_port 127.0.0.1 "$LAMBDA_PORT" 60
log "building the functions in release mode on their first call (a few minutes when cold)..."
warm_functions "http://127.0.0.1:$LAMBDA_PORT" 900

step "cargo bench --bench erasure (scale ${ERASURE_BENCH_SCALE:-1})"
ERASURE_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMODB_PORT" \
    ERASURE_BENCH_SQS_ENDPOINT="http://127.0.0.1:$SQS_PORT" \
    ERASURE_BENCH_WATCH_URL="http://127.0.0.1:$LAMBDA_PORT" \
    ERASURE_BENCH_WATCH_ENV="$WATCH_ENV" \
    cargo bench --bench erasure

step "cargo bench --bench export (scale ${ERASURE_BENCH_SCALE:-1})"
ERASURE_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMODB_PORT" \
    ERASURE_BENCH_SQS_ENDPOINT="http://127.0.0.1:$SQS_PORT" \
    cargo bench --bench export

step "Benchmark done"
