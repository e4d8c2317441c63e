# One command each: `make run` (set up, then run the pipeline on the bundled
# sample) and `make test` (set up, then run the whole test suite, what CI
# runs). `make test-fast` is the inner loop: no pipeline runs.
UV_VERSION := 0.13.9
PY := python3
UV := $(PY) -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup run test test-fast lint format clean
setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --locked
	touch $@

run: setup
	.venv/bin/flowers run $(ARGS)

test: setup lint
	.venv/bin/pytest $(ARGS)

test-fast: setup lint
	.venv/bin/pytest -m "not slow" $(ARGS)

# The formatter and linter (pyproject.toml, [tool.ruff]): `make format` fixes.
lint: setup
	.venv/bin/ruff format --check --quiet .
	.venv/bin/ruff check --quiet .

format: setup
	.venv/bin/ruff format --quiet .
	.venv/bin/ruff check --fix --quiet .

clean:
	rm -rf outputs .pytest_cache
