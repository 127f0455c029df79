#!/usr/bin/env bash
# `make bench`: the erasure benchmark (benches/erasure.rs) against local emulators: cost follows
# the user (erase time next to a small and a large background), erasure throughput, and API
# latency. Uses its own ports (8200, 9524) and always stops what it started.
# ERASURE_BENCH_SCALE (default 1) multiplies the data sizes.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DYNAMODB_PORT=8200
SQS_PORT=9524

step "Tools"
ensure_tools

step "Build the benchmark (release profile)"
cargo bench --bench erasure --bench export --no-run

step "Emulators: DynamoDB (dynalite) on 127.0.0.1:$DYNAMODB_PORT, SQS (moto) on 127.0.0.1:$SQS_PORT"
start_dynalite "$DYNAMODB_PORT"
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
