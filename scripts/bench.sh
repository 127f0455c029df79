#!/usr/bin/env bash
# `make bench`: the size and init duration of each Lambda function's release build
# (benches/cold_start.rs; ERASURE_BENCH_COLD_STARTS starts each, default 20), then the erasure
# benchmark (benches/erasure.rs) against local emulators, printing P1-P4 and the growth table side
# by side (docs/PERFORMANCE.md). Uses its own ports (8200, 9524 unless
# ERASURE_BENCH_DYNAMODB_PORT / ERASURE_BENCH_SQS_PORT say otherwise) and always stops what it
# started. ERASURE_BENCH_SCALE (default 1) multiplies the data sizes; ERASE_PAGES_IN_FLIGHT tunes
# the engine as it tunes the worker.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DYNAMODB_PORT="${ERASURE_BENCH_DYNAMODB_PORT:-8200}"
SQS_PORT="${ERASURE_BENCH_SQS_PORT:-9524}"

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
start_moto "$SQS_PORT"

step "cargo bench --bench erasure (scale ${ERASURE_BENCH_SCALE:-1})"
ERASURE_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMODB_PORT" \
    ERASURE_BENCH_SQS_ENDPOINT="http://127.0.0.1:$SQS_PORT" \
    cargo bench --bench erasure

step "cargo bench --bench export (scale ${ERASURE_BENCH_SCALE:-1})"
ERASURE_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMODB_PORT" \
    ERASURE_BENCH_SQS_ENDPOINT="http://127.0.0.1:$SQS_PORT" \
    cargo bench --bench export

step "Benchmark done"
