# One command each: `make run` (set up, then run the pipeline on the bundled
# sample) and `make test` (set up, then run the whole test suite, what CI
# runs). `make test-fast` is the inner loop: no pipeline runs.
UV_VERSION := 0.13.9
PY := python3
UV := $(PY) -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup run test test-fast lint format clean
setup: .venv/.synced

# --compile-bytecode: uv writes no .pyc files by default, and where
# PYTHONDONTWRITEBYTECODE is set (as on this machine) Python never
# caches them either, so every process (each component, Beam worker, test
# run) compiled TensorFlow's, Beam's and TFX's sources again: 15-20 s to
# import TensorFlow instead of 6-8 (docs/performance.md, session 19).
.venv/.synced: pyproject.toml uv.lock
	$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --locked --compile-bytecode
	touch $@

run: setup
	.venv/bin/flowers run $(ARGS)

# `make test` on two pytest workers: a pipeline run spends much of its time
# in one core (imports, Beam in-process, export), so two runs side by side
# use the machine better than one. Tests that read one shared run keep to one
# worker (tests/conftest.py `_xdist_group`). TEST_JOBS=0 runs in one process.
# `make test-fast` stays in one: there, starting a second worker (TensorFlow
# imported again) costs more than it saves (docs/testing.md).
TEST_JOBS ?= 2

test: setup lint
	.venv/bin/pytest -n $(TEST_JOBS) --dist loadgroup --no-loadscope-reorder $(ARGS)

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
