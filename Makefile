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

pytest:
	$(VENV)/bin/pytest -q

bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
