# One command each: `make demo` runs the main job, `make test` runs the checks and the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# The lowest-versions check: its own venv, the floors of pyproject.toml, the fast unit tests.
LOWEST_VENV ?= .venv-lowest
LOWEST_TESTS ?= tests/transform tests/storage tests/clients tests/gold

.PHONY: venv demo test lint typecheck pytest test-lowest lock bench bench-quick clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo needs the package and its `demo` extra only (no test tools).
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/crypto-pipeline demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

# Install the LOWEST versions pyproject.toml allows for its direct dependencies (uv's
# lowest-direct resolution) into $(LOWEST_VENV) and run the unit tests there: a floor that is
# not true fails here.
test-lowest: $(STAMP)
	rm -rf $(LOWEST_VENV)
	$(BIN)/uv venv --quiet --python $(PYTHON) $(LOWEST_VENV)
	$(BIN)/uv pip install --quiet --python $(LOWEST_VENV)/bin/python \
		--resolution lowest-direct -e '.[test]'
	$(BIN)/uv pip list --python $(LOWEST_VENV)/bin/python | grep -iE \
		'^(prefect|polars|pyarrow|pydantic|pydantic-settings|aiohttp|tenacity|huggingface-hub|httpx2|orjson|rich|numpy|redis|pyyaml) '
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(LOWEST_VENV)/bin/python -m pytest -q \
		-p no:cacheprovider -m 'not slow' $(LOWEST_TESTS)

# The runtime lock the container installs from (Linux, CPython 3.11, with hashes).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --extra demo pyproject.toml -o requirements.lock

# Both print one JSON line last. The full run adds the archive's memory check (3 and 12 months
# alone), a year of 1m through the pipeline, the Hub publish and the scale point: 100 symbols x
# 7 days x 1m x 3 exchanges of the sandbox's realistic universe beside 10 (benchmarks/scale.py).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --full

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) $(LOWEST_VENV) data .pytest_cache .mypy_cache .ruff_cache
