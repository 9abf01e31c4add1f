#!/usr/bin/env bash
# Installs the system packages the stack (and, with `test`, the test suite)
# needs, with apt-get, when they are missing; does nothing when all are there.
#
#   scripts/system_deps.sh demo    # PostgreSQL, Redis, Caddy, npm (for n8n), iptables,
#                                  # Docker's engine and debootstrap (not with the
#                                  # `local` runtime)
#   scripts/system_deps.sh test    # the same plus Chromium and docker-compose
#
# Why here and not only in CI: the README promises that `make demo` and
# `make test` set a fresh machine up by themselves, so CI must need nothing more.
set -euo pipefail

log() { printf '[system-deps] %s\n' "$*" >&2; }

profile="${1:-demo}"
missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v caddy >/dev/null || missing+=(caddy)
command -v npm >/dev/null || missing+=(npm)
# The kernel keeps department agents off Redis with iptables rules
# (app/providers/agent_network.py).
command -v iptables >/dev/null || missing+=(iptables)
# Agents run as Docker containers unless the runtime is set to `local`
# (CONTAINER_RUNTIME for the stack, TEST_CONTAINER_RUNTIME for the suite): the
# engine is Debian's docker.io, and the agent image's base is made with
# debootstrap (app/providers/agent_image.py), so no registry is needed.
# An engine already installed (Docker CE's own packages) is used as it is.
runtime="${CONTAINER_RUNTIME:-docker}"
[ "$profile" = test ] && runtime="${TEST_CONTAINER_RUNTIME:-docker}"
if [ "$runtime" = docker ]; then
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
fi
if [ "$profile" = test ]; then
    # Playwright drives Debian's Chromium (tests/e2e/test_dashboard.py).
    [ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || missing+=(chromium chromium-driver)
    # The suite validates docker-compose.yml with it (tests/e2e/test_compose.py).
    command -v docker-compose >/dev/null || missing+=(docker-compose)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    log "missing: ${missing[*]} (no apt-get here: install them with your package manager)"
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { log "missing: ${missing[*]}; run as root or install them"; exit 1; }
    sudo="sudo"
fi
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }

# A PostgreSQL installed just now: the stack connects as `postgres` over
# loopback without a password (DATABASE_URL's default), so trust loopback.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        log "trusting loopback connections in $hba (development machine)"
        $sudo sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/; s/^(local\s+all\s+(postgres|all)\s+)\S+/\1trust/' "$hba"
        version="$(basename "$(dirname "$(dirname "$hba")")")"
        # Reload if the package started it (systemd hosts); scripts/services.sh starts it otherwise.
        $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
    done
fi
