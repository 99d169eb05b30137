# auto_heal developer commands. The two that matter: `make run` and `make test`.
#   make test [ODOO=0] [PYTEST_ARGS="-k expr"] [ODOO_TAGS=/auto_heal:TestX]
#                                                 pytest + the addon's tests in a real Odoo 18
#   make run [PORT=8069]                          Odoo 18 with auto_heal + the watchdog
#   make accuracy [ACCURACY_ARGS=--misses]        detection measured on tests/corpus
#   make screenshots                              the browser tests' screenshots into static/description/
#   make venv | lint | bench [BENCH_ARGS=...] | clean

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements.stamp
PORT   ?= 8069
ODOO   ?= 1
PYTEST_ARGS ?=
ODOO_TAGS   ?=
BENCH_ARGS  ?=
ACCURACY_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv test run screenshots lint bench accuracy clean

help:
	@sed -n '1,7p' Makefile | sed 's/^# \{0,1\}//'

venv: $(STAMP)

# Re-install only when a requirements file changed (or the venv is missing).
$(STAMP): requirements.txt requirements-dev.txt requirements-odoo-tests.txt
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "error: $(PYTHON) cannot create a venv: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	@test -x $(PY) || { echo "creating $(VENV) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "installing requirements-dev.txt into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@echo "installing requirements-odoo-tests.txt into $(VENV)/odoo-test-site (for Odoo's test browser) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade \
	  --target $(VENV)/odoo-test-site -r requirements-odoo-tests.txt
	@touch $@

test: $(STAMP)
	@$(PY) -m tools.testrun $(if $(filter 0 no false,$(ODOO)),--no-odoo) $(if $(ODOO_TAGS),--odoo-tags=$(ODOO_TAGS)) -- $(PYTEST_ARGS)

run: $(STAMP)
	@$(PY) -m tools.run --port $(PORT)

# The tours take the README's screenshots on their way (tests/test_tours.py).
screenshots: $(STAMP)
	@AUTO_HEAL_SCREENSHOT_DIR=$(CURDIR)/static/description $(PY) -m tools.testrun \
	  --odoo-tags=/auto_heal:TestAdminTours -- -k no_such_test_xyz

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pylint --rcfile=.pylintrc __init__.py __manifest__.py models controllers wizards

# Scan speed and memory on ../shared/bench's yardstick, and the watchdog at rest
# (bench/scan_bench.py). Needs GNU time, grep and ripgrep.
bench: $(STAMP)
	@test -x /usr/bin/time || { echo "error: /usr/bin/time is missing: apt-get install time" >&2; exit 1; }
	@command -v rg >/dev/null || { echo "error: ripgrep is missing: apt-get install ripgrep" >&2; exit 1; }
	$(PY) bench/scan_bench.py $(BENCH_ARGS)

# Precision, recall, confusion pairs, false positives and fingerprints on tests/corpus.
accuracy: $(STAMP)
	@$(PY) -m tools.accuracy $(ACCURACY_ARGS)

clean:
	@if [ -f .run/pg/data/postmaster.pid ] && kill -0 "$$(head -n1 .run/pg/data/postmaster.pid)" 2>/dev/null; then \
	  echo "error: the make run cluster in .run/pg is still running; stop make run first" >&2; exit 1; fi
	rm -rf $(VENV) .run .tmp .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
