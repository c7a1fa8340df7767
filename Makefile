# make run: the product on embedded defaults.  make test: the suite (needs PostgreSQL and Redis);
# make test-unit: the tests that need neither.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The docs' tools live apart: MkDocs brings click, and with click importable Daphne's
# autobahn formats a debug string for every frame (docs/performance.md), so not in .venv.
DOCS_VENV := .venv-docs
DOCS_BIN := $(DOCS_VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DOCS_PORT ?= 8001
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# make test's pytest-xdist workers, each with a test database of its own (test_postgres_gw0 ...)
# and a Redis database of its own (15, 14 ... of TEST_REDIS_URL's); 0: the suite in one process.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: install local-env run demo test test-unit lint messages screenshots docs schema psql clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# .env (config/local_env.py): DJANGO_DEBUG=1, a local run over plain http (no secure cookies,
# a development secret key), and the DATABASE_URL and REDIS_URL make run was given, so that
# commands in another terminal (.venv/bin/python manage.py ...) reach the same database.
local-env: install
	@$(BIN)/python -m config.local_env

run: local-env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py dev_login
	@echo "Open http://$(HOST):$(PORT)/  (Ctrl-C stops the server; 'make demo' adds simulated violations)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) config.asgi:application

# The server, plus a simulated detector writing RATE violations a second into it.
RATE ?= 0.5
demo: local-env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py dev_login
	@echo "Open http://$(HOST):$(PORT)/  (Ctrl-C stops the server and the simulator)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) config.asgi:application & \
	server=$$!; trap 'kill $$server 2>/dev/null' EXIT INT TERM; sleep 3; \
	$(BIN)/python manage.py simulate_violations --rate $(RATE)

test: lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The tests that need no service (tests/unit/): no PostgreSQL, Redis or Chromium, in seconds.
test-unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# ruff, ruff-format and mypy (django-stubs) on config/, realtime/, tests/ and bench/; Biome
# on the page's script (static/realtime/); then the docs (README.md included) built with
# every link and anchor checked. .pre-commit-config.yaml runs the same tools, same versions.
lint: install $(DOCS_VENV)/.installed node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	node_modules/.bin/biome ci --colors=off --error-on-warnings
	$(BIN)/python scripts/messages.py check
	NO_MKDOCS_2_WARNING=1 $(DOCS_BIN)/mkdocs build --strict --quiet

# The translations (locale/): every marked string extracted into the .po files (new ones
# untranslated: translate them, then run it again) and the .mo files compiled. Needs GNU
# gettext; make lint fails while a string has no translation in a shipped language.
messages: install
	$(BIN)/python scripts/messages.py update

# The docs' pictures (docs/*.png), taken by the browser tests (scripts/screenshots.py).
screenshots: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python scripts/screenshots.py

# Biome, exactly as package-lock.json pins it (npm ci), into node_modules/ (git-ignored).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(DOCS_VENV)/.installed: requirements-docs.txt
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_BIN)/pip install --quiet --upgrade pip
	$(DOCS_BIN)/pip install --quiet -r requirements-docs.txt
	touch $@

# The docs as a site at http://$(HOST):$(DOCS_PORT)/, rebuilt on every save.
docs: $(DOCS_VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(DOCS_BIN)/mkdocs serve --strict --dev-addr $(HOST):$(DOCS_PORT)

# sql/schema.sql, the product's schema as the migrations leave it (tests/test_schema.py).
SCHEMA_DB ?= postgresql://postgres@127.0.0.1:5432/postgres
schema: install
	$(BIN)/python -c 'import psycopg; c = psycopg.connect("$(SCHEMA_DB)", autocommit=True); c.execute("DROP DATABASE IF EXISTS realtime_schema_make WITH (FORCE)"); c.execute("CREATE DATABASE realtime_schema_make")'
	DATABASE_URL=$(dir $(SCHEMA_DB))realtime_schema_make DJANGO_SECRET_KEY=make-schema-0123456789abcdefghijklmnop $(BIN)/python manage.py migrate --noinput -v0
	DATABASE_URL=$(dir $(SCHEMA_DB))realtime_schema_make DJANGO_SECRET_KEY=make-schema-0123456789abcdefghijklmnop $(BIN)/python manage.py schema_sql > sql/schema.sql
	$(BIN)/python -c 'import psycopg; c = psycopg.connect("$(SCHEMA_DB)", autocommit=True); c.execute("DROP DATABASE realtime_schema_make WITH (FORCE)")'

# A psql shell on the embedded database of `make run` (its own psql binary), in the plant's
# time (DJANGO_TIME_ZONE), as the detectors write it: `localtime` is what the page shows.
psql: install
	PGTZ="$$($(BIN)/python -c 'from config import local_env; local_env.load(); import os; print(os.environ.get("DJANGO_TIME_ZONE") or "UTC")')" \
	"$$($(BIN)/python -W ignore -c 'import pgserver, pathlib; print(pathlib.Path(pgserver.__file__).parent / "pginstall/bin/psql")')" \
		"postgresql://postgres:@/violations?host=$(CURDIR)/.data/postgres"

clean:
	rm -rf $(VENV) $(DOCS_VENV) node_modules site .pytest_cache artifacts
