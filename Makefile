# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ENV := NEWSLETTER_CONFIG=config/demo.toml NEWSLETTER_SECRET_KEY=demo-only-secret-key

.PHONY: install demo run-demo test test-e2e lint bench faults lock messages clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: install
	$(DEMO_ENV) $(BIN)/newsletter demo

# The scheduled job on the demo settings (after `make demo`); Ctrl-C stops it cleanly.
run-demo: install
	$(DEMO_ENV) $(BIN)/newsletter run

# Two workers, a test file each at a time (each PostgreSQL session gets its own database).
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not e2e" $(PYTEST_ARGS)

# The proofs that need real processes: kill -9, SIGTERM, two schedulers.
test-e2e: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check newsletter tests
	$(BIN)/ruff format --check newsletter tests
	$(BIN)/mypy newsletter

# Every case, or those whose name has a word given: make bench BENCH_ARGS=unsubscribe
bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# Fault injection (kill -9, the store stopped, a burst of one-clicks, two senders) against real
# processes, as a table (also test-artifacts/faults.md); every scenario, or those whose name has
# a word given: make faults FAULTS_ARGS=smtp-kill. The PostgreSQL ones need NEWSLETTER_TEST_POSTGRES_URL.
faults: install
	$(BIN)/python -m tests.faults $(FAULTS_ARGS)

# Regenerate the lock after changing dependencies in pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

# The translators' template (newsletter/locale/messages.pot) from the templates and the code,
# merged into every catalog; a new language: pybabel init -i newsletter/locale/messages.pot
# -d newsletter/locale -l LANG, then translate its messages.po.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -c Translators: --sort-by-file --project newsletter \
		-o newsletter/locale/messages.pot .
	$(BIN)/pybabel update -i newsletter/locale/messages.pot -d newsletter/locale --ignore-obsolete

clean:
	rm -rf $(VENV) demo-output
