# keyscope: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test lint bench clean help

help:
	@echo "make run    create .venv, install, migrate, seed the demo and serve on 127.0.0.1:\$${PORT:-8000}"
	@echo "make test   create .venv, install, run make lint, run the suite on throwaway PostgreSQL + Redis, then on SQLite without Redis"
	@echo "make lint   ruff (with isort) and mypy (django-stubs, djangorestframework-stubs), as configured in pyproject.toml"
	@echo "make bench  measure the cost of key verification (see bench/README.md)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	scripts/run.sh

# The whole suite lints first and runs again on SQLite without Redis (make run's defaults,
# where queries and caches behave differently); a run narrowed with PYTEST_ARGS does neither.
test: $(VENV)/.test-installed
ifeq ($(strip $(PYTEST_ARGS)),)
	@$(MAKE) --no-print-directory lint
endif
	scripts/with-services.sh $(PY) -m pytest $(PYTEST_ARGS)
ifeq ($(strip $(PYTEST_ARGS)),)
	@echo "The suite again on what make run uses without DATABASE_URL and REDIS_URL: SQLite, no Redis."
	KEYSCOPE_TEST_PASS=sqlite DATABASE_URL=sqlite:///$(CURDIR)/var/test-sqlite.db REDIS_URL= $(PY) -m pytest -q -m "not slow and not browser"
endif

# mypy loads the settings (django-stubs): DEBUG=true lets them load without a SECRET_KEY.
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	DEBUG=true $(VENV)/bin/mypy

# BENCH_SIZE=tiny for a quick run; other knobs in bench/README.md.
bench: $(VENV)/.run-installed
	$(PY) -m pip install --quiet -r bench/requirements.txt
	scripts/with-services.sh $(PY) -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
