# The orchestrator's image: API (default command), Celery worker, beat and
# Flower (see docker-compose.yml). Runtime dependencies only, from the hashed lock
# (requirements.txt, compiled from requirements.in by `make lock`), as an unprivileged user.
#
# BASE defaults to Docker Hub's python:3.11-slim. Where no registry is
# reachable, `python scripts/app_image.py` builds FROM the project's own
# Debian image (debootstrap + docker import, as for the agent image).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
COPY requirements.txt /tmp/requirements.txt
# docker/build-ca/ca.crt, if present, is a CA bundle for pip (a TLS-inspecting
# proxy); only this stage sees it.
COPY docker/build-ca/ /tmp/build-ca/
RUN python3 -m venv /opt/venv \
 && if [ -s /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /tmp/requirements.txt

FROM ${BASE}
RUN (getent group app || groupadd --system --gid 10002 app) \
 && useradd --system --uid 10002 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . /app
RUN rm -rf /app/docker/build-ca \
 && mkdir -p /run/orchestrator/prometheus /run/orchestrator/caddy-admin \
 && chown -R 10002:10002 /run/orchestrator && chmod 700 /run/orchestrator/caddy-admin
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUN_DIR=/run/orchestrator \
    PROMETHEUS_MULTIPROC_DIR=/run/orchestrator/prometheus
USER 10002:10002
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/openapi.json' % os.environ.get('PORT', '3000'), timeout=4)"]
# The API on $PORT (default 3000); `sh scripts/serve.sh worker|beat|migrate` for
# the other roles (Procfile, railway.json).
CMD ["sh", "scripts/serve.sh", "api"]
