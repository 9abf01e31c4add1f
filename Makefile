# The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
RUN_DIR ?= $(CURDIR)/.run
export RUN_DIR

.PHONY: engine demo up down test test-unit lint venv env services components migrate status bench fuzz openapi deps-demo deps-test lock

venv: .venv/.installed
.venv/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@command -v python3.11 >/dev/null || { echo "Python 3.11 is required (python3.11 not found)"; exit 1; }
	@[ -x $(PY) ] || python3.11 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel  # editable installs need both
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt  # the lock (make lock)
	$(PY) -m pip install --quiet --no-deps -e .  # the `provisioning` command
	@touch $@

# Recompile the locks (pip-tools) after editing requirements.in or requirements-dev.in:
# every package pinned, with hashes; development gets the runtime versions plus its tools.
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links
lock: venv
	.venv/bin/pip-compile $(LOCK_FLAGS) --output-file requirements.txt requirements.in
	.venv/bin/pip-compile $(LOCK_FLAGS) --output-file requirements-dev.txt requirements-dev.in

env: venv
	@$(PY) scripts/make_env.py

# System packages (apt-get, only what is missing): PostgreSQL, Redis, Caddy, npm;
# `deps-test` adds Chromium for the dashboard tests.
deps-demo:
	@scripts/system_deps.sh demo
deps-test:
	@scripts/system_deps.sh test

services: deps-demo
	@scripts/services.sh

# Caddy (gateway) and n8n (workflows): the components the saga drives.
components: services
	@scripts/caddy.sh start
	@scripts/n8n.sh install start setup

migrate: env services
	@$(PY) scripts/ensure_databases.py
	@.venv/bin/alembic upgrade head

# The `docker` runtime: an engine (ours only if none answers) and the agent image,
# built from the sources on first use and reused while they are unchanged.
# Without an engine the settings fall back to CONTAINER_RUNTIME=local.
engine: venv
	@if [ "$${CONTAINER_RUNTIME:-docker}" = docker ]; then \
		if scripts/docker_engine.sh start; then \
			DOCKER_HOST=$$(scripts/docker_engine.sh host) $(PY) -m app.providers.agent_image >/dev/null; \
		else echo "no Docker engine: department agents will run as local processes"; fi; \
	fi

up: env components migrate engine
	@scripts/stack.sh start
	@# Routes live in Caddy's memory and agents stop with `make down`: bring back
	@# whatever ACTIVE departments lost (a no-op on a fresh start).
	@.venv/bin/flask provisioning drift --repair --wait || echo "some repairs failed: see flask provisioning list"
	@$(MAKE) --no-print-directory status

demo: up
	@.venv/bin/flask provisioning provision examples/hr.json --wait || true
	@$(MAKE) --no-print-directory status
	@echo "Admin token (12h):"
	@.venv/bin/flask token create --email admin@example.com --role admin --ttl 12h

status:
	@eval "$$($(PY) -m app.config_doc --shell PORT FLOWER_PORT GATEWAY_PORT 2>/dev/null)"; \
	PORT=$${PORT:-3000}; echo; \
	echo "API:        http://127.0.0.1:$$PORT/api"; \
	echo "Swagger UI: http://127.0.0.1:$$PORT/api-docs"; \
	echo "ReDoc:      http://127.0.0.1:$$PORT/redoc"; \
	echo "Flower:     http://127.0.0.1:$${FLOWER_PORT:-5555} (log in with FLOWER_BASIC_AUTH, user:password, from .env)"; \
	echo "Gateway:    http://127.0.0.1:$${GATEWAY_PORT:-8080}/departments/<departmentId>/"; \
	scripts/stack.sh status

down:
	@scripts/stack.sh stop
	@$(PY) -m app.providers.container_local stop-all "$(RUN_DIR)" 2>/dev/null || true
	@$(PY) -m app.providers.container_docker stop-instance "$(RUN_DIR)" || true
	@scripts/docker_engine.sh stop || true
	@scripts/caddy.sh stop || true
	@scripts/n8n.sh stop || true

# The fast tier: the domain's decisions (transitions, planning per kind, what to
# compensate, the sweeper's choice) as plain functions; no PostgreSQL, Redis or worker.
UNIT_TESTS := tests/unit tests/test_state_machine.py tests/test_properties.py
test-unit: venv
	.venv/bin/pytest -q -p no:cacheprovider $(UNIT_TESTS)

test: venv test-unit deps-test services
	@scripts/n8n.sh install
	@if command -v docker-compose >/dev/null; then docker-compose config -q && echo "docker-compose.yml: valid"; fi
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports
	.venv/bin/pytest -q $(foreach t,$(UNIT_TESTS),--ignore=$(t))

# openapi.yaml (committed) is the document the API serves; regenerate after API changes.
openapi: venv
	$(PY) -m app.openapi_doc --write

# lint-imports checks the layer contracts in .importlinter.
lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports

# Benchmarks on a stack of their own (po_bench databases, Redis db 15, ports 24xxx);
# results are appended to benchmarks/RESULTS.md. SCALE: growth target (departments);
# BENCH_BUDGET: seconds of measuring; BENCH_CAPACITY_BURST: departments at once with the
# default deadline, last (300; 0 skips it); the timeout is a backstop (SIGINT still tears down).
SCALE ?= 200
BENCH_BUDGET ?= 900
bench: venv services
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null || echo "wrk not installed: using the Python load generator"
	@scripts/n8n.sh install
	SCALE=$(SCALE) BENCH_BUDGET=$(BENCH_BUDGET) timeout -s INT -k 120 3000 $(PY) -m benchmarks.run

# Deeper fuzzing than `make test`: schemathesis over every API operation and the
# hypothesis properties, with many more examples (override either knob).
fuzz: venv services
	@scripts/n8n.sh install
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} PROPERTY_EXAMPLES=$${PROPERTY_EXAMPLES:-5000} \
		.venv/bin/pytest -q tests/test_properties.py tests/e2e/test_api_fuzz.py
