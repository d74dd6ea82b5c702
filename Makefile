# The two commands: `make run` starts the whole system, `make test` runs the whole suite.
# Both work on a fresh machine: they create the virtualenv and fetch/start what they need.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DB     ?= sqlite
KAFKA  := bash deploy/local/kafka/kafka.sh
PG     := bash deploy/local/postgres/postgres.sh
PYTEST_ARGS ?=

.PHONY: help venv lock run test test-unit test-integration test-e2e fuzz lint bench load migrate \
        infra-up infra-down kafka-up postgres-up topics clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Every dependency (runtime, dev, bench; pip and setuptools too) comes from requirements.lock,
# checked by hash; the project itself is then installed without resolving anything.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# a dependency added to pyproject.toml but not to the lock fails here, by name
	$(PY) -m pip check || { echo "requirements.lock misses what pyproject.toml needs:" \
	  "regenerate it (make lock)"; exit 1; }
	@touch $@

venv: $(VENV)/.installed ## create the virtualenv and install the project from the lock

lock: venv ## regenerate requirements.lock from pyproject.toml's ranges (newest versions in them)
	$(VENV)/bin/pip-compile --quiet --upgrade --generate-hashes --strip-extras --allow-unsafe \
	  --no-emit-find-links --no-emit-index-url --extra dev --extra bench \
	  --output-file requirements.lock pyproject.toml

run: venv ## start Kafka and the five services (DB=postgres for PostgreSQL; SPLIT=1: API and worker processes apart); Ctrl-C stops all
	ENVIRONMENT=development $(PY) -m libs.runtime.supervisor --db $(DB)

kafka-up: venv
	$(KAFKA) start
	$(KAFKA) wait

postgres-up:
	$(PG) start

infra-up: kafka-up postgres-up ## start the local Kafka broker and PostgreSQL cluster

infra-down: ## stop them
	-$(KAFKA) stop
	-$(PG) stop

topics: venv ## create the services' topics on the running broker
	$(PY) -c 'import asyncio; from libs.events.topics import *; print(asyncio.run(ensure_topics("127.0.0.1:9092", [events_topic(s) for s in SERVICES])))'

migrate: venv ## apply every service's migrations to its database
	ENVIRONMENT=development $(PY) -m libs.runtime.migrate_cli

lint: venv ## import contracts and ruff
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check libs services tests bench ops

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
define pytest
	$(PY) -m pytest $(PYTEST_ARGS) $(1); code=$$?; \
	  if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$code
endef

test: venv infra-up lint ## install, start PostgreSQL and Kafka, run unit, integration, e2e and fault tests
	$(call pytest,tests)

test-unit: venv ## unit tests only (no infrastructure)
	$(call pytest,tests/unit)

test-integration: venv infra-up ## integration and operations-tool tests (real PostgreSQL and Kafka)
	$(call pytest,tests/integration tests/ops)

test-e2e: venv infra-up ## the five services started as `make run` starts them, and the fault tests
	$(call pytest,tests/e2e tests/fault)

# make test fuzzes too, bounded (25 examples per operation); this is the long run.
FUZZ_EXAMPLES ?= 500
fuzz: venv infra-up ## Schemathesis on every service's OpenAPI, FUZZ_EXAMPLES (500) per operation
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(call pytest,tests/fuzz)

bench: venv infra-up ## run the benchmarks and record them in bench/RESULTS.md
	$(PY) -m bench

RATE     ?= 300
DURATION ?= 60
load: venv infra-up ## registrations end to end through the five services at RATE/s for DURATION s (PROCESSES=split: API and workers apart)
	ENVIRONMENT=development $(PY) -m bench.load --rate $(RATE) --duration $(DURATION)

clean: ## remove local state (databases, broker data); keeps the virtualenv
	-$(KAFKA) stop
	rm -rf var
