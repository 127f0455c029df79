# shellcheck shell=bash
# Shared shell functions for scripts/run-local.sh and scripts/test.sh. Source it, do not run it:
#   source "$(dirname "$0")/lib.sh"
# It moves to the repository root, exports the local AWS settings and installs a cleanup trap that
# stops every background process started through `start_bg` (each in its own process group).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

LOCAL_DIR="$ROOT/.local"
LOG_DIR="$LOCAL_DIR/logs"
mkdir -p "$LOG_DIR"

# Local AWS: fake credentials, one region, and no probing of the EC2 metadata service.
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0
# .venv/bin first: moto_server, sam, cfn-lint and cargo-lambda (`cargo lambda ...`) live there.
export PATH="$ROOT/.venv/bin:$ROOT/node_modules/.bin:$PATH"

# Process-group ids of everything started in the background, for cleanup.
BG_PGIDS=()

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# step TITLE: a visible header for each stage of a script.
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_tools: create .venv and install requirements.txt when it changed since the last install
# (a copy of it is kept as a stamp in .venv); run `npm ci` when node_modules is missing or older than
# package-lock.json.
ensure_tools() {
    command -v python3 >/dev/null || die "python3 is required"
    command -v npm >/dev/null || die "npm (Node.js) is required"
    command -v cargo >/dev/null || die "cargo (Rust) is required"
    command -v curl >/dev/null || die "curl is required"

    if [[ ! -x .venv/bin/python ]]; then
        log "creating .venv"
        python3 -m venv .venv
    fi
    local stamp=.venv/.requirements.stamp
    if [[ ! -f "$stamp" ]] || ! cmp -s requirements.txt "$stamp"; then
        log "installing Python tools from requirements.txt into .venv"
        .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
        cp requirements.txt "$stamp"
    fi

    if [[ ! -x .venv-fuzz/bin/python ]]; then
        log "creating .venv-fuzz"
        python3 -m venv .venv-fuzz
    fi
    local fuzz_stamp=.venv-fuzz/.requirements.stamp
    if [[ ! -f "$fuzz_stamp" ]] || ! cmp -s requirements-fuzz.txt "$fuzz_stamp"; then
        log "installing the fuzzer from requirements-fuzz.txt into .venv-fuzz"
        .venv-fuzz/bin/pip install --disable-pip-version-check -q -r requirements-fuzz.txt
        cp requirements-fuzz.txt "$fuzz_stamp"
    fi

    local marker=node_modules/.package-lock.json
    if [[ ! -d node_modules ]] || [[ ! -f "$marker" ]] || [[ package-lock.json -nt "$marker" ]]; then
        log "installing Node tools (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
        touch "$marker"
    fi
}

# start_bg NAME CMD...: runs CMD in the background in its own process group, output to
# .local/logs/NAME.log, and records it for cleanup. Sets LAST_PID.
start_bg() {
    local name=$1
    shift
    local logfile="$LOG_DIR/$name.log"
    : >"$logfile"
    # setsid gives the command its own process group, so cleanup also reaches its children
    # (cargo lambda watch spawns the functions; cargo spawns rustc).
    setsid "$@" >>"$logfile" 2>&1 </dev/null &
    LAST_PID=$!
    BG_PGIDS+=("$LAST_PID")
    log "started $name (pid $LAST_PID), log: ${logfile#"$ROOT"/}"
}

# port_in_use PORT: true when something already listens on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port HOST PORT [SECONDS]: waits until HOST:PORT accepts connections (default 30 s).
wait_port() {
    local host=$1 port=$2 timeout=${3:-30}
    local deadline=$((SECONDS + timeout))
    until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            die "nothing answers on $host:$port after ${timeout}s"
        fi
        sleep 0.2
    done
}

# start_dynalite PORT: in-memory DynamoDB emulator on 127.0.0.1:PORT.
start_dynalite() {
    local port=$1
    port_in_use "$port" && die "port $port is taken; is another run still going?"
    start_bg "dynalite-$port" node_modules/.bin/dynalite --host 127.0.0.1 --port "$port" \
        --createTableMs 0 --deleteTableMs 0 --updateTableMs 0
    wait_port 127.0.0.1 "$port" 30
}

# start_moto PORT: SQS emulator (moto server) on 127.0.0.1:PORT.
start_moto() {
    local port=$1
    port_in_use "$port" && die "port $port is taken; is another run still going?"
    start_bg "moto-$port" .venv/bin/moto_server -H 127.0.0.1 -p "$port"
    wait_port 127.0.0.1 "$port" 60
}

# write_lambda_env FILE DYNAMODB_PORT SQS_PORT: the env file `cargo lambda watch` (and the
# bridge) give the functions: the local AWS settings, the emulators' endpoints on 127.0.0.1 and a
# fresh export token key, followed by the KEY=VALUE lines read from standard input.
write_lambda_env() {
    local file=$1 dynamodb_port=$2 sqs_port=$3
    {
        printf '%s\n' \
            "AWS_REGION=$AWS_REGION" \
            "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
            "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" \
            "AWS_EC2_METADATA_DISABLED=$AWS_EC2_METADATA_DISABLED" \
            "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$dynamodb_port" \
            "AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$sqs_port" \
            "EXPORT_TOKEN_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        cat
    } >"$file"
}

# warm_functions BASE_URL [SECONDS]: `cargo lambda watch` builds a function on its first call; call
# both so that they are built before anyone needs them. Any HTTP answer counts as ready (the api
# answers 404 to the warm-up path); no answer is retried for up to SECONDS (default 180).
warm_functions() {
    local base=$1 timeout=${2:-180}
    local deadline=$((SECONDS + timeout))
    local api_code=000 worker_code=000
    while [[ $api_code == 000 || $worker_code == 000 ]]; do
        if [[ $api_code == 000 ]]; then
            api_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 150 \
                "$base/lambda-url/api/warmup" || true)
            [[ $api_code == 000 ]] || log "api answered: HTTP $api_code"
        fi
        if [[ $worker_code == 000 ]]; then
            worker_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 150 \
                -H 'content-type: application/json' -d '{"Records":[]}' \
                "$base/2015-03-31/functions/worker/invocations" || true)
            [[ $worker_code == 000 ]] || log "worker answered: HTTP $worker_code"
        fi
        [[ $api_code != 000 && $worker_code != 000 ]] && break
        if ((SECONDS >= deadline)); then
            die "functions not ready after ${timeout}s (api: $api_code, worker: $worker_code); see ${LOG_DIR#"$ROOT"/}"
        fi
        sleep 2
    done
}

# wait_for_line FILE TEXT PID [SECONDS]: waits until FILE holds TEXT; fails if PID exits first or
# SECONDS (default 120) pass.
wait_for_line() {
    local file=$1 text=$2 pid=$3 timeout=${4:-120}
    local deadline=$((SECONDS + timeout))
    until grep -qF -- "$text" "$file" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 30 "$file" >&2 || true
            die "no '$text' in ${file#"$ROOT"/}"
        fi
        sleep 0.5
    done
}

# stop_bg PID: stops a process group started by start_bg and waits until it is gone, so that a
# script that cleans up after itself (run-local.sh) has the time to.
stop_bg() {
    local pgid=$1
    kill -TERM -- "-$pgid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
}

# cleanup: stops every process group started by start_bg (TERM, then KILL after a grace period).
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#BG_PGIDS[@]})); then
        local pgid
        for pgid in "${BG_PGIDS[@]}"; do
            kill -TERM -- "-$pgid" 2>/dev/null || true
        done
        local deadline=$((SECONDS + 5))
        for pgid in "${BG_PGIDS[@]}"; do
            while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do
                sleep 0.1
            done
            kill -KILL -- "-$pgid" 2>/dev/null || true
        done
        BG_PGIDS=()
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
