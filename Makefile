# The targets .ci/run uses. PYTHON may point at a virtual environment's interpreter.
PYTHON ?= python

.PHONY: test lint typecheck check fuzz bench

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check evtrack tests $(wildcard benchmarks)

typecheck:
	$(PYTHON) -m mypy

check: lint typecheck test

bench:
	$(PYTHON) benchmarks/run.py --quick

fuzz:
	$(PYTHON) benchmarks/fuzz.py --runs 100000
