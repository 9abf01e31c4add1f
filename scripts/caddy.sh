#!/usr/bin/env bash
# Run the project's own Caddy (the API gateway) in the background.
#
#   scripts/caddy.sh start|stop|status
#
# Env: GATEWAY_PORT (8080), RUN_DIR (.run, relative paths are taken from the
# project root), CADDY_BIN (caddy), CADDY_START_TIMEOUT (seconds, 15), and where
# the admin API listens, read the same way as the orchestrator's settings:
# CADDY_ADMIN_URL (unix:///path.sock, or http://127.0.0.1:PORT), else the
# deprecated CADDY_ADMIN_PORT (loopback TCP), else the unix socket
# $RUN_DIR/caddy-home/admin.sock.
#
# Why a socket: the admin API rewrites every route and reads the whole config,
# and any local user (a department agent included) can connect to a loopback
# port. The socket sits in a 0700 directory and is created under umask 077, so
# only this script's OS user reaches it.
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
CADDY_HOME="$RUN_DIR/caddy-home"
ADMIN_SOCKET=""     # set by resolve_admin when the admin API is a unix socket
ADMIN_PORT=""       # set by resolve_admin when it is loopback TCP
ADMIN_LISTEN=""     # Caddy's form of either
ADMIN_ORIGINS=""    # Host headers Caddy's admin accepts (it refuses others: DNS rebinding)

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

resolve_admin() {
    local url="${CADDY_ADMIN_URL:-}"
    if [[ -z "$url" && -n "${CADDY_ADMIN_PORT:-}" ]]; then
        check_port CADDY_ADMIN_PORT "$CADDY_ADMIN_PORT"
        echo "caddy.sh: CADDY_ADMIN_PORT is deprecated: any local user can reach a TCP" \
            "admin API; leave it unset for the socket in $CADDY_HOME" >&2
        url="http://127.0.0.1:$CADDY_ADMIN_PORT"
    fi
    [[ -n "$url" ]] || url="unix://$CADDY_HOME/admin.sock"
    case "$url" in
        unix:///*)
            ADMIN_SOCKET="${url#unix://}"
            ((${#ADMIN_SOCKET} < 108)) || die "admin socket path too long for a unix socket: $ADMIN_SOCKET"
            [[ "$ADMIN_SOCKET" != *'"'* ]] || die "admin socket path may not contain quotes"
            ADMIN_LISTEN="unix/$ADMIN_SOCKET"
            ADMIN_ORIGINS='["localhost"]'
            ;;
        http://127.0.0.1:* | http://localhost:*)
            ADMIN_PORT="${url##*:}"
            ADMIN_PORT="${ADMIN_PORT%/}"
            check_port "the port of CADDY_ADMIN_URL" "$ADMIN_PORT"
            ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
            ADMIN_ORIGINS="[\"127.0.0.1:$ADMIN_PORT\", \"localhost:$ADMIN_PORT\"]"
            ;;
        *) die "CADDY_ADMIN_URL must be unix:///path or http://127.0.0.1:PORT for a local caddy, got '$url'" ;;
    esac
}

admin_where() {
    if [[ -n "$ADMIN_SOCKET" ]]; then echo "unix://$ADMIN_SOCKET"; else echo "http://127.0.0.1:$ADMIN_PORT"; fi
}

# True when something answers the Caddy admin API at our address. TCP uses
# bash's /dev/tcp; the socket needs curl (part of every Debian base install).
admin_answers() {
    local status
    if [[ -n "$ADMIN_SOCKET" ]]; then
        [[ -S "$ADMIN_SOCKET" ]] || return 1
        status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            --unix-socket "$ADMIN_SOCKET" http://localhost/config/ 2>/dev/null)" || return 1
        [[ "$status" == 200 ]]
        return
    fi
    status="$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /config/ HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n" "$1" >&3
        head -n 1 <&3
    ' _ "$ADMIN_PORT" 2>/dev/null)" || return 1
    [[ "$status" == HTTP/*" 200 "* ]]
}

render_config() {
    [[ -f "$BASE_CONFIG" ]] || die "missing $BASE_CONFIG"
    sed -e "s|__CADDY_ADMIN_LISTEN__|$ADMIN_LISTEN|g" \
        -e "s|__CADDY_ADMIN_ORIGINS__|$ADMIN_ORIGINS|g" \
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
    die "caddy (pid $pid) did not answer on $(admin_where) within ${START_TIMEOUT}s; see $LOG"
}

cmd_start() {
    command -v "$CADDY_BIN" >/dev/null \
        || die "'$CADDY_BIN' not found; install it with: apt-get install -y caddy"
    local pid
    if pid="$(running_pid)"; then
        wait_for_admin "$pid"
        echo "caddy already running (pid $pid, admin $(admin_where))"
        return 0
    fi
    # Someone else's caddy (e.g. the system service apt starts on 2019) would
    # accept our routes and then serve them on the wrong port: refuse instead.
    if admin_answers; then
        die "$(admin_where) already answers as a Caddy admin API but is not ours" \
            "(no live pid in $PIDFILE). If it is the system service: systemctl disable --now caddy;" \
            "or choose another CADDY_ADMIN_URL."
    fi
    mkdir -p "$CADDY_HOME"
    # A directory made before umask 077 was added keeps its old mode otherwise.
    chmod 700 "$CADDY_HOME"
    [[ -z "$ADMIN_SOCKET" ]] || rm -f "$ADMIN_SOCKET"  # a stale one from a killed caddy
    render_config
    touch "$LOG" && chmod 600 "$LOG"
    XDG_CONFIG_HOME="$CADDY_HOME" XDG_DATA_HOME="$CADDY_HOME" HOME="$CADDY_HOME" \
        nohup "$CADDY_BIN" run --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"
    wait_for_admin "$pid"
    echo "caddy started (pid $pid, admin $(admin_where)," \
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
        echo "caddy running (pid $pid, admin $(admin_where))"
        return 0
    fi
    echo "caddy process $pid is alive but its admin API does not answer at $(admin_where)"
    return 1
}

main() {
    check_port GATEWAY_PORT "$GATEWAY_PORT"
    resolve_admin
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
