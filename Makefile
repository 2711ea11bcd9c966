# The targets .ci/run uses. PYTHON may point at a virtual environment's interpreter.
PYTHON ?= python

.PHONY: test lint typecheck check fuzz fuzz-atheris bench

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

fuzz-atheris:
	$(PYTHON) -m pip install atheris
	$(PYTHON) benchmarks/fuzz_atheris.py -max_total_time=600 -rss_limit_mb=3000
