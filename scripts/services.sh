#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis the orchestrator needs are running.
# Starts them when installed but stopped; says what to install when absent.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

redis_ping() {
    # bash's /dev/tcp: works without redis-cli
    exec 3<>/dev/tcp/127.0.0.1/6379 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    local reply
    read -r -t 2 reply <&3 || true
    exec 3>&-
    [[ "$reply" == "+PONG"* ]]
}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null || [ ! -d /etc/postgresql ]; then
        die "PostgreSQL is not installed. Install it with: apt-get install -y postgresql (trust auth on 127.0.0.1 for user postgres, or set DATABASE_URL)"
    fi
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return
        sleep 1
    done
    die "PostgreSQL did not come up on 127.0.0.1:5432"
}

ensure_redis() {
    if redis_ping; then
        return
    fi
    command -v redis-server >/dev/null \
        || die "Redis is not installed. Install it with: apt-get install -y redis-server"
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 20); do
        redis_ping && return
        sleep 0.5
    done
    die "Redis did not come up on 127.0.0.1:6379"
}

ensure_postgres
ensure_redis
log "PostgreSQL and Redis are up"
