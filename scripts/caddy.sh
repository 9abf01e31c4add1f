#!/usr/bin/env bash
# Run the project's own Caddy (the API gateway) in the background.
#
#   scripts/caddy.sh start|stop|status
#
# Env: CADDY_ADMIN_PORT (2019), GATEWAY_PORT (8080), RUN_DIR (.run, relative
# paths are taken from the project root), CADDY_BIN (caddy),
# CADDY_START_TIMEOUT (seconds, 15).
#
# The config is config/caddy/base.json with the ports filled in, written to
# $RUN_DIR/caddy.json. Caddy's own state (autosave, certificate storage) is
# kept under $RUN_DIR/caddy-home so we never touch a system caddy's files.
# Routes live only in memory (admin.config.persist=false): after a restart the
# orchestrator re-creates them, which its idempotent create() allows.
set -euo pipefail
# Files this script writes (config, log) are its owner's alone.
umask 077

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CADDY_ADMIN_PORT="${CADDY_ADMIN_PORT:-2019}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
RUN_DIR="${RUN_DIR:-.run}"
CADDY_BIN="${CADDY_BIN:-caddy}"
START_TIMEOUT="${CADDY_START_TIMEOUT:-15}"

case "$RUN_DIR" in
    /*) ;;
    *) RUN_DIR="$ROOT/$RUN_DIR" ;;
esac
BASE_CONFIG="$ROOT/config/caddy/base.json"
CONFIG="$RUN_DIR/caddy.json"
PIDFILE="$RUN_DIR/caddy.pid"
LOG="$RUN_DIR/caddy.log"

die() {
    echo "caddy.sh: $*" >&2
    exit 1
}

check_port() {
    local name="$1" value="$2"
    [[ "$value" =~ ^[0-9]+$ ]] && ((value >= 1 && value <= 65535)) \
        || die "$name must be a TCP port number, got '$value'"
}

# Prints our caddy's pid if the pidfile names a live caddy process. A stale
# pidfile whose pid was reused by another program does not count.
running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/comm" && "$(cat "/proc/$pid/comm")" != caddy* ]]; then
        return 1
    fi
    echo "$pid"
}

# True when something answers the Caddy admin API on our port. Uses bash's
# /dev/tcp so a fresh Debian box needs neither curl nor wget.
admin_answers() {
    local status
    status="$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /config/ HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n" "$1" >&3
        head -n 1 <&3
    ' _ "$CADDY_ADMIN_PORT" 2>/dev/null)" || return 1
    [[ "$status" == HTTP/*" 200 "* ]]
}

render_config() {
    [[ -f "$BASE_CONFIG" ]] || die "missing $BASE_CONFIG"
    sed -e "s/__CADDY_ADMIN_PORT__/$CADDY_ADMIN_PORT/g" \
        -e "s/__GATEWAY_PORT__/$GATEWAY_PORT/g" \
        "$BASE_CONFIG" >"$CONFIG.tmp"
    mv "$CONFIG.tmp" "$CONFIG"
}

# Waits (bounded) for the admin API; fails early if caddy already died.
wait_for_admin() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        admin_answers && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "caddy.sh: caddy exited during startup; last log lines:" >&2
            tail -n 20 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.2
    done
    die "caddy (pid $pid) did not answer on 127.0.0.1:$CADDY_ADMIN_PORT within ${START_TIMEOUT}s; see $LOG"
}

cmd_start() {
    command -v "$CADDY_BIN" >/dev/null \
        || die "'$CADDY_BIN' not found; install it with: apt-get install -y caddy"
    local pid
    if pid="$(running_pid)"; then
        wait_for_admin "$pid"
        echo "caddy already running (pid $pid, admin http://127.0.0.1:$CADDY_ADMIN_PORT)"
        return 0
    fi
    # Someone else's caddy (e.g. the system service apt starts on 2019) would
    # accept our routes and then serve them on the wrong port: refuse instead.
    if admin_answers; then
        die "port $CADDY_ADMIN_PORT already answers as a Caddy admin API but is not ours" \
            "(no live pid in $PIDFILE). If it is the system service: systemctl disable --now caddy;" \
            "or choose another CADDY_ADMIN_PORT."
    fi
    mkdir -p "$RUN_DIR/caddy-home"
    render_config
    XDG_CONFIG_HOME="$RUN_DIR/caddy-home" XDG_DATA_HOME="$RUN_DIR/caddy-home" \
        HOME="$RUN_DIR/caddy-home" \
        touch "$LOG" && chmod 600 "$LOG"  # one written before umask 077 too
        nohup "$CADDY_BIN" run --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"
    wait_for_admin "$pid"
    echo "caddy started (pid $pid, admin http://127.0.0.1:$CADDY_ADMIN_PORT," \
        "gateway http://127.0.0.1:$GATEWAY_PORT, log $LOG)"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        echo "caddy not running"
        return 0
    fi
    # SIGTERM makes caddy drain connections and exit; KILL only if it hangs.
    kill -TERM "$pid"
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "caddy.sh: caddy (pid $pid) ignored SIGTERM for 10s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    echo "caddy stopped (pid $pid)"
}

# Exit codes follow LSB: 0 running, 1 running but not answering, 3 stopped.
cmd_status() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "caddy stopped"
        return 3
    fi
    if admin_answers; then
        echo "caddy running (pid $pid, admin http://127.0.0.1:$CADDY_ADMIN_PORT)"
        return 0
    fi
    echo "caddy process $pid is alive but its admin API does not answer on port $CADDY_ADMIN_PORT"
    return 1
}

main() {
    check_port CADDY_ADMIN_PORT "$CADDY_ADMIN_PORT"
    check_port GATEWAY_PORT "$GATEWAY_PORT"
    [[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "CADDY_START_TIMEOUT must be whole seconds"
    mkdir -p "$RUN_DIR"
    case "${1:-}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *)
            echo "usage: $0 start|stop|status" >&2
            exit 2
            ;;
    esac
}

main "$@"
