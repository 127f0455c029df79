#!/usr/bin/env bash
# `make test`: formatting, lints, unit/integration/end-to-end tests against local emulators, and
# the SAM template checks. Uses its own ports (8100, 9424, 9100), so a running `make run` is not
# disturbed. Stops at the first failure and always stops what it started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Several checkouts can test at once on one machine by moving these.
DYNAMODB_PORT=${ERASURE_TEST_DYNAMODB_PORT:-8100}
SQS_PORT=${ERASURE_TEST_SQS_PORT:-9424}
LAMBDA_PORT=${ERASURE_TEST_LAMBDA_PORT:-9100}
LAMBDA_URL="http://127.0.0.1:$LAMBDA_PORT"

step "Tools"
ensure_tools

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "Emulators: DynamoDB (dynalite) on 127.0.0.1:$DYNAMODB_PORT, SQS (moto) on 127.0.0.1:$SQS_PORT"
start_dynalite "$DYNAMODB_PORT"
start_moto "$SQS_PORT"

step "cargo build --bins"
cargo build --bins

step "Lambda emulator (cargo lambda watch) on $LAMBDA_URL"
ENV_FILE=.local/e2e.env
write_lambda_env "$ENV_FILE" "$DYNAMODB_PORT" "$SQS_PORT" <<EOF
DATA_TABLE=e2e-data
CONTROL_TABLE=e2e-control
TASK_QUEUE_URL=http://127.0.0.1:$SQS_PORT/123456789012/e2e-tasks
WEBHOOK_QUEUE_URL=http://127.0.0.1:$SQS_PORT/123456789012/e2e-webhooks
MAX_RECEIVE_COUNT=5
RUST_LOG=info
# The fuzzing below sends about a thousand requests a minute.
RATE_LIMIT_PER_MINUTE=100000
EOF
# --ignore-changes: an edit made while the tests run must not rebuild the functions under them.
start_bg lambda-watch-e2e cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$LAMBDA_PORT" \
    --env-file "$ENV_FILE"
wait_port 127.0.0.1 "$LAMBDA_PORT" 60

step "Warm up the api and worker functions (watch builds them on first call)"
warm_functions "$LAMBDA_URL" 180

step "cargo test --lib --bins --tests (benchmarks run with make bench)"
ERASURE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMODB_PORT" \
    ERASURE_TEST_SQS_ENDPOINT="http://127.0.0.1:$SQS_PORT" \
    ERASURE_E2E_LAMBDA_ENDPOINT="$LAMBDA_URL" \
    ERASURE_E2E_ENV_FILE="$ROOT/$ENV_FILE" \
    cargo test --lib --bins --tests

step "The README's commands, as written, against the stack of make run (on ports +1)"
# scripts/run-local.sh is what `make run` runs; the README's "Try it" commands run against it.
RUN_LAMBDA_PORT=$((LAMBDA_PORT + 1))
ERASURE_RUN_DYNAMODB_PORT=$((DYNAMODB_PORT + 1)) ERASURE_RUN_SQS_PORT=$((SQS_PORT + 1)) \
    ERASURE_RUN_LAMBDA_PORT=$RUN_LAMBDA_PORT start_bg make-run scripts/run-local.sh
MAKE_RUN_PID=$LAST_PID
wait_for_line "$LOG_DIR/make-run.log" "Press Ctrl-C to stop." "$MAKE_RUN_PID" 300
python3 scripts/readme_check.py README.md "$RUN_LAMBDA_PORT"
stop_bg "$MAKE_RUN_PID"

step "Fuzzing docs/openapi.yaml (schemathesis) against the api behind erasure gateway"
# erasure gateway stands in for API Gateway: unlike cargo lambda watch, it lets bytes that are
# not UTF-8 reach the function, as deployed. Every answer must be documented, in its schema,
# never a 5xx; invalid input must be refused.
GATEWAY_PORT=$((LAMBDA_PORT + 2))
AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT" \
    target/debug/erasure tenant create --api-key fuzz-api-key --auth-token fuzz-auth-token \
    --control-table e2e-control
start_bg gateway target/debug/erasure gateway --port "$GATEWAY_PORT" --env-file "$ENV_FILE"
wait_port 127.0.0.1 "$GATEWAY_PORT" 30
.venv-fuzz/bin/st run docs/openapi.yaml --url "http://127.0.0.1:$GATEWAY_PORT" \
    -H "x-velt-api-key: fuzz-api-key" -H "x-velt-auth-token: fuzz-auth-token" \
    --checks all --exclude-checks positive_data_acceptance \
    `# valid but unknown job ids rightly get 404, which that check counts as a refusal` \
    --max-examples 500 --workers 2 --seed 1

step "sam validate --lint"
sam validate --lint -t template.yaml

step "cfn-lint"
cfn-lint template.yaml

step "All checks passed"
