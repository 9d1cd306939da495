# Chave: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
DEMO_PORT ?= 8001
PYTEST_ARGS ?=

.PHONY: run test test-pg install install-test system-deps clients bench messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-deps clients

# Third-party client libraries that play portals in the tests: openid-client (npm, from its lockfile).
CLIENTS := clients/openid-client
$(CLIENTS)/node_modules/.installed: $(CLIENTS)/package.json $(CLIENTS)/package-lock.json | system-deps
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clients: $(CLIENTS)/node_modules/.installed

# Debian packages the tests drive for real: SoftHSM2, Chromium, Kannel (+ fakesmsc), poppler, qpdf.
system-deps:
	@scripts/system-deps.sh

## make run: install, migrate the embedded database, seed the demo citizen and demo portal, start web + worker
## on :$(PORT) and the demo portal on :$(DEMO_PORT)
run: install
	$(BIN)/chave migrate --noinput -v0
	CHAVE_PUBLIC_URL=$${CHAVE_PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(BIN)/chave seed_demo \
		--demo-portal-url http://127.0.0.1:$(DEMO_PORT)
	CHAVE_PUBLIC_URL=$${CHAVE_PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(BIN)/chave serve --port $(PORT) --with-worker \
		--with-demo-portal --demo-portal-port $(DEMO_PORT) --with-card-agent

## make test: install what tests need (Debian packages included) and run the whole suite
test: install-test
	@scripts/pytest.sh $(PYTEST_ARGS)

## the same suite on PostgreSQL (started by .ci/run when not running)
test-pg: install-test
	CHAVE_DATABASE_URL=$${CHAVE_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} scripts/pytest.sh $(PYTEST_ARGS)

## make bench: login and OIDC throughput against bare PIN hashing; signing against raw HSM and hashing
bench: install system-deps
	$(BIN)/python bench/login.py
	$(BIN)/python bench/signing.py

messages: install
	cd chave && ../$(BIN)/chave makemessages -l pt_PT --no-obsolete --no-location && ../$(BIN)/chave compilemessages -l pt_PT

clean:
	rm -rf $(VENV) var
