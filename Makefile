# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000


.PHONY: run test test-tools lint format install clean

# honcho SIGKILLs whatever still runs 5 s after Ctrl-C; Celery's warm shutdown lets a
# running task (a probe cycle, a broker cancel) finish and needs longer than that.
define HONCHO
import sys, honcho.command, honcho.manager
honcho.manager.KILL_WAIT = 30
sys.argv = ["honcho", "start", "-f", "Procfile"]
honcho.command.main()
endef
export HONCHO

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Embedded default: SQLite, file-system broker, demo data; web + worker + beat.
run: export DEBUG ?= true
run: export GUNICORN_BIND ?= 127.0.0.1:$(PORT)
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "InvestIQ Ops Console: http://127.0.0.1:$(PORT)/   admin: http://127.0.0.1:$(PORT)/admin/"
	@echo "Log in with a demo login printed above (first run only): alice operator, bob and carol supervisors, vera viewer."
	@echo "Stop with Ctrl-C."
	@echo ""
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -c "$$HONCHO"

# Uses Postgres/Redis when DATABASE_URL / REDIS_URL point at them, else SQLite with the
# service tests skipped (INVESTIQ_REQUIRE_SERVICES=1 turns those skips into failures).
test: export SECRET_KEY ?= insecure-test-only-key
test: install test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest $(PYTEST_ARGS)

# promtool, amtool, prometheus, alertmanager for monitoring/'s tests and Chromium for the
# console's browser tests: Debian packages, installed when missing (as root with apt-get;
# elsewhere those tests skip).
test-tools:
	monitoring/ensure-tools.sh
	monitoring/ensure-chromium.sh

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
