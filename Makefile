# The two commands of the README. Each does all set-up itself, idempotently.
VENV := .venv
PY := $(VENV)/bin/python
HOST_PACKAGES := klupa edge_gateway portal provisioning boards testkit

.PHONY: demo test setup lint typecheck firmware-check pytest bench clean

demo: setup
	$(VENV)/bin/klupa demo

test: setup lint typecheck firmware-check pytest

setup:
	@bash scripts/setup.sh

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck:
	$(VENV)/bin/mypy $(HOST_PACKAGES)

firmware-check:
	$(PY) -m klupa.firmware_checks firmware

# The unit and integration tests on two workers (each test file stays on one); the system
# tests, whose virtual benches run on accelerated time, one at a time.
pytest:
	$(VENV)/bin/pytest -q -n 2 --dist loadfile tests
	$(VENV)/bin/pytest -q hil_tests

bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
