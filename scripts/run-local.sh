#!/usr/bin/env bash
# `make run`: the whole service on this machine. dynalite stands in for DynamoDB, moto for SQS,
# `cargo lambda watch` for Lambda, and `erasure bridge` for the SQS event source mappings (the
# worker's and the notifier's); a local receiver prints the webhook events that arrive.
# Everything listens on 127.0.0.1 only. Ctrl-C stops everything this script started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# `make test` runs this script on other ports to try the README's commands against it.
DYNAMODB_PORT=${ERASURE_RUN_DYNAMODB_PORT:-8000}
SQS_PORT=${ERASURE_RUN_SQS_PORT:-9324}
LAMBDA_PORT=${ERASURE_RUN_LAMBDA_PORT:-9000}
LAMBDA_URL="http://127.0.0.1:$LAMBDA_PORT"
WEBHOOK_PORT=${ERASURE_RUN_WEBHOOK_PORT:-$((LAMBDA_PORT + 50))}
WEBHOOK_URL="http://127.0.0.1:$WEBHOOK_PORT/hook"
# Only the local stack may call loopback receivers (plain http); deployed, https to public hosts.
export WEBHOOK_ALLOW_LOOPBACK=true
API_KEY=local-api-key
AUTH_TOKEN=local-auth-token

step "Tools"
ensure_tools

step "Emulators: DynamoDB (dynalite) on 127.0.0.1:$DYNAMODB_PORT, SQS (moto) on 127.0.0.1:$SQS_PORT"
start_dynalite "$DYNAMODB_PORT"
start_moto "$SQS_PORT"

step "Build"
cargo build --bins

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$SQS_PORT"
export DATA_TABLE=erasure-data
export CONTROL_TABLE=erasure-control

step "Tables and queues"
# The last line on stdout is the task queue URL. A short visibility timeout shows retries in
# seconds; the bridge runs one batch at a time, so it never sees a batch still at work again.
infra_out=$(target/debug/erasure infra create --queue erasure-tasks --visibility-timeout 30)
TASK_QUEUE_URL=${infra_out##*$'\n'}
[[ $TASK_QUEUE_URL == http* ]] || die "infra create did not print a queue URL (got: $TASK_QUEUE_URL)"
log "task queue: $TASK_QUEUE_URL"
webhook_out=$(target/debug/erasure infra create --queue erasure-webhooks --visibility-timeout 30)
WEBHOOK_QUEUE_URL=${webhook_out##*$'\n'}
[[ $WEBHOOK_QUEUE_URL == http* ]] || die "infra create did not print a queue URL (got: $WEBHOOK_QUEUE_URL)"
log "webhook queue: $WEBHOOK_QUEUE_URL"

step "Tenant and demo data"
tenant_out=$(target/debug/erasure tenant create --api-key "$API_KEY" --auth-token "$AUTH_TOKEN" \
    --webhook-url "$WEBHOOK_URL")
echo "$tenant_out" | grep -v 'webhook secret'
WEBHOOK_SECRET=${tenant_out##*: }
[[ $WEBHOOK_SECRET == whsec_* ]] || die "tenant create did not print a webhook secret"
target/debug/erasure seed fixtures/demo.json --api-key "$API_KEY"

step "Lambda emulator (cargo lambda watch) on $LAMBDA_URL"
ENV_FILE=.local/local.env
write_lambda_env "$ENV_FILE" "$DYNAMODB_PORT" "$SQS_PORT" <<EOF
DATA_TABLE=$DATA_TABLE
CONTROL_TABLE=$CONTROL_TABLE
TASK_QUEUE_URL=$TASK_QUEUE_URL
MAX_RECEIVE_COUNT=5
WEBHOOK_QUEUE_URL=$WEBHOOK_QUEUE_URL
WEBHOOK_ALLOW_LOOPBACK=true
WEBHOOK_BACKOFF_BASE_SECONDS=2
RUST_LOG=info
EOF
start_bg lambda-watch cargo lambda watch -A 127.0.0.1 -P "$LAMBDA_PORT" --env-file "$ENV_FILE"
wait_port 127.0.0.1 "$LAMBDA_PORT" 60
log "building the api and worker functions on first call (up to a few minutes when cold)..."
warm_functions "$LAMBDA_URL" 300

step "SQS -> worker bridge (Lambda's event source mapping, and the worker with its 120 s timeout)"
# The bridge runs the worker itself, as Lambda would: real deadlines, a process killed at its
# timeout or dead of a crash is replaced and its batch comes back after the visibility timeout.
start_bg bridge target/debug/erasure bridge --queue-url "$TASK_QUEUE_URL" --env-file "$ENV_FILE"

step "Webhook: receiver on $WEBHOOK_URL, and the notifier behind its own bridge"
# The receiver refuses its first request with 503, so the first job shows a retry.
WEBHOOK_SECRET=$WEBHOOK_SECRET start_bg webhook-receiver \
    python3 -u scripts/webhook-receiver.py --port "$WEBHOOK_PORT" --refuse 1
wait_port 127.0.0.1 "$WEBHOOK_PORT" 10
start_bg notifier-bridge target/debug/erasure bridge --queue-url "$WEBHOOK_QUEUE_URL" \
    --worker-binary target/debug/notifier --env-file "$ENV_FILE" --timeout-seconds 30

step "Ready"
cat <<EOF
Demo users: ada, grace, alan, edsger, and the users of Velt's example request, yourUserId1 and
yourUserId2 in yourOrganizationId1 and yourOrganizationId2 (fixtures/demo.json).
Logs: .local/logs/ (function output: tail -f .local/logs/lambda-watch.log .local/logs/bridge.log)
Each job that ends is announced, signed, to $WEBHOOK_URL: tail -f .local/logs/webhook-receiver.log
(the notifier's own log: .local/logs/notifier-bridge.log)

Start a deletion job:

  curl -s -X POST $LAMBDA_URL/lambda-url/api/v2/users/data/delete \\
    -H 'x-velt-api-key: $API_KEY' \\
    -H 'x-velt-auth-token: $AUTH_TOKEN' \\
    -H 'content-type: application/json' \\
    -d '{"data":{"userIds":["ada"]}}'

Velt's example request, verbatim:

  curl -s -X POST $LAMBDA_URL/lambda-url/api/v2/users/data/delete \
    -H 'x-velt-api-key: $API_KEY' \
    -H 'x-velt-auth-token: $AUTH_TOKEN' \
    -H 'content-type: application/json' \
    -d @fixtures/velt-example-request.json

Ask where it stands (put the jobId from the answer above):

  curl -s -X POST $LAMBDA_URL/lambda-url/api/v2/users/data/delete/status \\
    -H 'x-velt-api-key: $API_KEY' \\
    -H 'x-velt-auth-token: $AUTH_TOKEN' \\
    -H 'content-type: application/json' \\
    -d '{"data":{"jobId":"<jobId>"}}'

Press Ctrl-C to stop.
EOF

# Wait for Ctrl-C; if a component dies on its own, say so and stop the rest.
while true; do
    for pgid in "${BG_PGIDS[@]}"; do
        if ! kill -0 "$pgid" 2>/dev/null; then
            log "a background process (pid $pgid) exited; last lines of the logs:"
            tail -n 20 "$LOG_DIR"/*.log >&2 || true
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
