#!/usr/bin/env bash
# The orchestrator's own processes: API (gunicorn), Celery worker, beat, Flower.
#
#   scripts/stack.sh start|stop|status
#
# Each runs in the background with a pidfile and log under $RUN_DIR. Settings
# come from the environment and .env (read by the app itself).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
[[ "$RUN_DIR" = /* ]] || RUN_DIR="$ROOT/$RUN_DIR"
VENV="${VENV:-$ROOT/.venv}"
PORT="${PORT:-3000}"
FLOWER_PORT="${FLOWER_PORT:-5555}"
WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-8}"
API_WORKERS="${API_WORKERS:-2}"
METRICS_DIR="$RUN_DIR/prometheus"
mkdir -p "$RUN_DIR"

log() { printf '[stack] %s\n' "$*" >&2; }

# Logs and pidfiles are readable by their owner only: logs may quote secrets.
umask 077
chmod 600 "$RUN_DIR"/*.log 2>/dev/null || true

env_file_value() {
    if [ -f "$ROOT/.env" ]; then sed -n "s/^$1=//p" "$ROOT/.env" | tail -n 1; fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_one() {
    local name="$1"; shift
    if alive "$RUN_DIR/$name.pid"; then
        log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
        return
    fi
    setsid nohup "$@" >>"$RUN_DIR/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN_DIR/$name.pid"
    log "$name started (pid $!, log $RUN_DIR/$name.log)"
}

wait_http() {
    local url="$1" name="$2"
    for _ in $(seq 1 60); do
        if "$VENV/bin/python" - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
PY
        sleep 0.5
    done
    log "ERROR: $name did not answer at $url; see its log in $RUN_DIR"
    return 1
}

# Prometheus multiprocess mode: every API and worker process writes its samples
# under this directory and a scrape adds them up. It must be in the environment
# before the processes fork, and is emptied only when none of them is running
# (stale files of a previous run would be added in forever).
prepare_metrics_dir() {
    if ! alive "$RUN_DIR/api.pid" && ! alive "$RUN_DIR/worker.pid"; then
        rm -rf "$METRICS_DIR"
    fi
    mkdir -p "$METRICS_DIR"
}

# PORT, FLOWER_PORT, WORKER_CONCURRENCY and API_WORKERS as the app reads them
# (environment, then .env, then default), so a PORT written in .env, as the
# original service's users write it, is where gunicorn listens. Invalid
# settings stop here, with one message naming each, before anything starts.
load_settings() {
    local assignments
    assignments="$("$VENV/bin/python" -m app.config_doc --shell \
        PORT FLOWER_PORT WORKER_CONCURRENCY API_WORKERS)" || exit 3
    eval "$assignments"
}

start() {
    load_settings
    prepare_metrics_dir
    # The app logs each request itself (JSON, with its request id): no gunicorn access log.
    start_one api env PROMETHEUS_MULTIPROC_DIR="$METRICS_DIR" "$VENV/bin/gunicorn" wsgi:app \
        -c "$ROOT/config/gunicorn.conf.py" --bind "127.0.0.1:$PORT" \
        --workers "$API_WORKERS" --threads 4 --timeout 60 --name po-api
    start_one worker env PROMETHEUS_MULTIPROC_DIR="$METRICS_DIR" "$VENV/bin/celery" \
        -A celery_worker worker --loglevel INFO \
        --concurrency "$WORKER_CONCURRENCY" --hostname "worker1@%h"
    start_one beat "$VENV/bin/celery" -A celery_worker beat --loglevel INFO \
        --schedule "$RUN_DIR/celerybeat-schedule"
    # Flower asks for FLOWER_BASIC_AUTH everywhere (flower_app.py); it comes from
    # the environment or .env, never the command line, where any user could read it.
    # Without it Flower stays off (it would be open to anyone); the rest runs.
    local flower_auth="${FLOWER_BASIC_AUTH:-$(env_file_value FLOWER_BASIC_AUTH)}"
    if [ -n "$flower_auth" ]; then
        FLOWER_BASIC_AUTH="$flower_auth" start_one flower "$VENV/bin/celery" -A flower_app \
            flower --address=127.0.0.1 --port="$FLOWER_PORT"
    else
        log "Flower not started: FLOWER_BASIC_AUTH (user:password) is unset; \`make env\` writes one"
    fi
    wait_http "http://127.0.0.1:$PORT/openapi.json" api
    [ -z "$flower_auth" ] || wait_http "http://127.0.0.1:$FLOWER_PORT/healthcheck" flower
}

stop_one() {
    local name="$1" pidfile="$RUN_DIR/$1.pid"
    if alive "$pidfile"; then
        local pid; pid="$(cat "$pidfile")"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        log "$name stopped"
    fi
    rm -f "$pidfile"
}

stop() {
    for name in flower beat worker api; do stop_one "$name"; done
}

status() {
    for name in api worker beat flower; do
        if alive "$RUN_DIR/$name.pid"; then echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"))"
        else echo "$name: stopped"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
