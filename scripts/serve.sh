#!/usr/bin/env sh
# One process of the orchestrator in the foreground, configured by the
# environment only: what a platform (Railway, a Procfile runner, a container)
# starts. `scripts/stack.sh` is the local, backgrounded equivalent.
#
#   scripts/serve.sh api|worker|beat|migrate
#
# api: gunicorn on 0.0.0.0:$PORT (API_WORKERS processes); worker: Celery
# (WORKER_CONCURRENCY); beat: the schedule (sweeper, drift, ...); migrate:
# create the state and tenant databases if missing, then `alembic upgrade head`.
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-$(pwd)}"
# Prometheus multiprocess files: one directory shared by the processes of this
# container, emptied at start (stale files would be added in forever).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/po-prometheus}"

case "${1:-}" in
    api)
        rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
        exec gunicorn wsgi:app -c config/gunicorn.conf.py --bind "0.0.0.0:${PORT:-3000}" \
            --workers "${API_WORKERS:-2}" --threads 4 --timeout 60 --name po-api ;;
    worker)
        rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
        exec celery -A celery_worker worker --loglevel INFO \
            --concurrency "${WORKER_CONCURRENCY:-8}" ;;
    beat)
        exec celery -A celery_worker beat --loglevel INFO \
            --schedule "${BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}" ;;
    migrate)
        python scripts/ensure_databases.py
        exec alembic upgrade head ;;
    *)
        echo "usage: $0 api|worker|beat|migrate" >&2
        exit 2 ;;
esac
