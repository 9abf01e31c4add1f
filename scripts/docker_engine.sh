#!/usr/bin/env bash
# A Docker engine for the `docker` container runtime, started only if none answers.
#
#   scripts/docker_engine.sh start|stop|status|host
#
# start: if DOCKER_HOST (or the project's own socket) already answers, use it
#        and start nothing. Otherwise start a private dockerd: overlay2 storage
#        where the kernel has overlayfs (vfs otherwise, or if overlay2 fails
#        to start; DOCKER_STORAGE_DRIVER chooses), --iptables=false (the host's firewall is never touched), --bridge=none
#        (containers use the host network), with its data root, exec root and
#        socket under DOCKER_ENGINE_DIR. The data root is a cache: the agent
#        image built into it survives `make down` and later runs.
# stop:  stops the engine only if this script started it (its pidfile names a
#        live dockerd whose socket is ours) and no container of ours is left.
#        An engine we did not start is never stopped.
# host:  prints the DOCKER_HOST to use (ours, or the one that answers).
#
# Why overlay2 first: vfs copies the whole image (about 210 MB for the agent)
# for every container, which cost 2.2-2.8 s and most of a department's CPU per
# create here, against 0.1 s with overlay2 (issue 16).
#
# Env: DOCKER_ENGINE_DIR (~/.cache/provisioning-orchestrator/docker),
#      DOCKER_STORAGE_DRIVER (overlay2 or vfs; default: overlay2 if the kernel
#      has overlayfs), DOCKERD_START_TIMEOUT (seconds, 60). Starting an engine
#      needs root.
set -euo pipefail

ENGINE_DIR="${DOCKER_ENGINE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/provisioning-orchestrator/docker}"
SOCKET="$ENGINE_DIR/docker.sock"
OWN_HOST="unix://$SOCKET"
PIDFILE="$ENGINE_DIR/dockerd.pid"
LOG="$ENGINE_DIR/dockerd.log"
START_TIMEOUT="${DOCKERD_START_TIMEOUT:-60}"

die() {
    echo "docker_engine.sh: $*" >&2
    exit 1
}

answers() {  # $1: a DOCKER_HOST value
    DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

own_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/comm" ]] || return 1
    [[ "$(cat "/proc/$pid/comm")" == dockerd ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$SOCKET" || return 1
    echo "$pid"
}

cmd_host() {
    if [[ -n "${DOCKER_HOST:-}" ]] && answers "$DOCKER_HOST"; then
        echo "$DOCKER_HOST"
    elif answers "$OWN_HOST"; then
        echo "$OWN_HOST"
    elif [[ -z "${DOCKER_HOST:-}" ]] && answers "unix:///var/run/docker.sock"; then
        echo "unix:///var/run/docker.sock"
    else
        return 1
    fi
}

cmd_start() {
    local host
    if host="$(cmd_host)"; then
        echo "docker engine answers at $host"
        return 0
    fi
    command -v dockerd >/dev/null \
        || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
    [[ "$(id -u)" == 0 ]] || die "no Docker engine answers; starting one needs root" \
        "(or set DOCKER_HOST, or CONTAINER_RUNTIME=local)"
    mkdir -p "$ENGINE_DIR"
    chmod 0700 "$ENGINE_DIR"
    # Two callers starting at once (make up and a test session) must not both launch one.
    exec 9>"$ENGINE_DIR/start.lock"
    flock 9
    if answers "$OWN_HOST"; then
        echo "docker engine answers at $OWN_HOST"
        return 0
    fi
    local driver
    for driver in $(storage_drivers); do
        launch "$driver" && return 0
    done
    die "dockerd did not start with any storage driver ($(storage_drivers)); see $LOG"
}

storage_drivers() {  # in the order to try them
    if [[ -n "${DOCKER_STORAGE_DRIVER:-}" ]]; then
        echo "$DOCKER_STORAGE_DRIVER"
    elif grep -qw overlay /proc/filesystems 2>/dev/null; then
        echo "overlay2 vfs"
    else
        echo vfs
    fi
}

launch() {  # $1: storage driver; returns 1 if dockerd exits during start
    rm -f "$SOCKET"
    nohup dockerd --storage-driver="$1" --iptables=false --ip-masq=false --bridge=none \
        --data-root "$ENGINE_DIR/root" --exec-root "$ENGINE_DIR/exec" \
        --pidfile "$ENGINE_DIR/dockerd.real.pid" -H "$OWN_HOST" \
        >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if answers "$OWN_HOST"; then
            # Root and the `docker` group only (the usual rule; the Compose worker joins it).
            if getent group docker >/dev/null; then chgrp docker "$SOCKET"; chmod 0660 "$SOCKET";
            else chmod 0600 "$SOCKET"; fi
            echo "docker engine started (pid $pid, $OWN_HOST, storage $1, log $LOG)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 5 "$LOG" >&2
            echo "docker_engine.sh: dockerd exited during start with storage driver $1" >&2
            return 1
        fi
        sleep 0.5
    done
    die "dockerd (pid $pid) did not answer within ${START_TIMEOUT}s; see $LOG"
}

cmd_stop() {
    local pid
    if ! pid="$(own_pid)"; then
        rm -f "$PIDFILE"
        echo "docker engine: none of ours running (an engine we did not start is left alone)"
        return 0
    fi
    local left
    left="$(DOCKER_HOST="$OWN_HOST" docker ps -q --filter label=managed-by=provisioning-orchestrator 2>/dev/null | wc -l)"
    if [[ "$left" != 0 && "${FORCE:-}" != 1 ]]; then
        echo "docker engine (pid $pid) still runs $left department container(s); leaving it up"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "docker engine stopped (pid $pid)"
}

cmd_status() {
    local host
    if host="$(cmd_host)"; then
        echo "docker engine answers at $host$(own_pid >/dev/null && echo ' (started by this project)')"
        return 0
    fi
    echo "docker engine: none answers"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    host) cmd_host ;;
    *)
        echo "usage: $0 start|stop|status|host" >&2
        exit 2
        ;;
esac
