# Chave: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
DEMO_PORT ?= 8001
DEMO_SAML_PORT ?= 8002
PYTEST_ARGS ?=
# Hashed lock files (make lock): what `make run` (LOCK), `make test` and CI (TEST_LOCK) install.
LOCK       := requirements.lock
TEST_LOCK  := requirements-test.lock
BENCH_LOCK := requirements-bench.lock
TOOLS_LOCK := requirements-tools.lock
TOOLS      := .tools
UV_COMPILE := $(TOOLS)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
# The PostgreSQL pass runs only what the database can change (README, "Tests"): no browser tests and
# nothing marked `once`. PG_MARKERS= runs everything there.
PG_MARKERS ?= not browser and not once

.PHONY: run test test-pg install install-test install-bench system-deps demo-deps clients bench bench-scale \
	bench-population load messages clean lock audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Exactly the locked versions, each checked against its hash; then Chave itself (no dependency
# resolution, no build isolation: its build backend is locked too). check-lock.py stops with
# "run make lock" when pyproject.toml asks for something the lock does not have.
$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	@$(BIN)/python scripts/check-lock.py $(LOCK)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	@# setuptools warns that an editable install's folder may shadow the package: that folder is the package.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(TEST_LOCK) $(VENV)/.installed
	@$(BIN)/python scripts/check-lock.py $(TEST_LOCK) test
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(TEST_LOCK)
	touch $@

# The benchmarks' own tools (Locust, matplotlib), on top of the test lock (the stack is the tests').
$(VENV)/.installed-bench: pyproject.toml $(BENCH_LOCK) $(VENV)/.installed-test
	@$(BIN)/python scripts/check-lock.py $(BENCH_LOCK) test bench
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(BENCH_LOCK)
	touch $@

$(TOOLS)/.installed: $(TOOLS_LOCK)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes --no-deps -r $(TOOLS_LOCK)
	touch $@

## make lock: regenerate the lock files from pyproject.toml after adding or changing a dependency, and
## commit them. Versions already locked are kept; `make lock UPGRADE=1` moves everything to the newest.
lock: $(TOOLS)/.installed
	$(UV_COMPILE) pyproject.toml scripts/lock-build.in -o $(LOCK)
	$(UV_COMPILE) pyproject.toml scripts/lock-build.in --extra test -c $(LOCK) -o $(TEST_LOCK)
	$(UV_COMPILE) pyproject.toml scripts/lock-build.in --extra test --extra bench -c $(TEST_LOCK) -o $(BENCH_LOCK)
	$(UV_COMPILE) scripts/tools.in -o $(TOOLS_LOCK)

## make audit: known vulnerabilities of the locked dependencies (pip-audit); fails when one has a fix
audit: $(TOOLS)/.installed
	$(TOOLS)/bin/python scripts/audit-deps.py $(LOCK) $(TEST_LOCK)

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-deps clients

install-bench: $(VENV)/.installed-bench system-deps

# Third-party client libraries that play portals in the tests: openid-client (npm, from its lockfile).
CLIENTS := clients/openid-client
$(CLIENTS)/node_modules/.installed: $(CLIENTS)/package.json $(CLIENTS)/package-lock.json | system-deps
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clients: $(CLIENTS)/node_modules/.installed

# Debian packages the tests drive for real: SoftHSM2, Chromium, Kannel (+ fakesmsc), poppler, qpdf.
system-deps:
	@scripts/system-deps.sh

# What the demo of `make run` needs (SoftHSM2 for the demo card and signing, fonts, poppler): installed
# when possible, else named, each with what stops working without it.
demo-deps:
	@scripts/system-deps.sh demo

## make run: install, migrate the embedded database, seed the demo citizen and demo portals, start web + worker
## on :$(PORT), the demo portal on :$(DEMO_PORT) and the SAML demo portal on :$(DEMO_SAML_PORT)
## (CHAVE_ENV=dev unless set: development defaults and Django's debug pages)
run: export CHAVE_ENV := $(or $(CHAVE_ENV),dev)
run: install demo-deps
	$(BIN)/chave migrate --noinput -v0
	CHAVE_PUBLIC_URL=$${CHAVE_PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(BIN)/chave seed_demo \
		--demo-portal-url http://127.0.0.1:$(DEMO_PORT) --demo-saml-portal-url http://127.0.0.1:$(DEMO_SAML_PORT)
	CHAVE_PUBLIC_URL=$${CHAVE_PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(BIN)/chave serve --port $(PORT) --with-worker \
		--with-demo-portal --demo-portal-port $(DEMO_PORT) --with-demo-saml-portal \
		--demo-saml-portal-port $(DEMO_SAML_PORT) --with-card-agent

## make test: install what tests need (Debian packages included) and run the whole suite
test: install-test
	@scripts/pytest.sh $(PYTEST_ARGS)

## the suite again on PostgreSQL, less what the database cannot change (PG_MARKERS; started by .ci/run)
test-pg: install-test
	CHAVE_DATABASE_URL=$${CHAVE_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
		scripts/pytest.sh $(if $(PG_MARKERS),-m "$(PG_MARKERS)") $(PYTEST_ARGS)

## make bench: login and OIDC throughput against bare PIN hashing (in process, then over HTTP against
## chave serve on every core; BENCH_POSTGRES=URL adds the PostgreSQL run); signing against raw HSM and hashing
BENCH_POSTGRES ?=
bench: install system-deps
	$(BIN)/python bench/login.py
	$(BIN)/python bench/login.py --argon2-before-after
	$(BIN)/python bench/login.py --http
	$(if $(BENCH_POSTGRES),$(BIN)/python bench/login.py --http --postgres $(BENCH_POSTGRES))
	$(BIN)/python bench/signing.py

## make bench-scale: 1 instance on 1 core against 2 on 2 cores behind nginx (deploy/), PostgreSQL + Redis
## (BENCH_ARGS: e.g. --logins 200; the database is CHAVE_BENCH_DATABASE_URL, emptied first)
bench-scale: install-bench
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

## make bench-population: logins and counter searches with CITIZENS citizens (default 1 million) against
## 10 thousand, each population seeded with COPY in a database of its own; PostgreSQL size per citizen
CITIZENS ?= 1000000
bench-population: install-bench
	$(BIN)/python bench/population.py --citizens $(CITIZENS) $(BENCH_ARGS)

## make load: the Locust scenarios (bench/load/) against a stack it starts (or LOAD_URL, running):
## p50/p95/p99 printed and plotted to bench/load/results/*.png
load: install-bench
	$(BIN)/python bench/load/run.py $(LOAD_ARGS)

messages: install
	cd chave && ../$(BIN)/chave makemessages -l pt_PT --no-obsolete --no-location && ../$(BIN)/chave compilemessages -l pt_PT

clean:
	rm -rf $(VENV) $(TOOLS) var
