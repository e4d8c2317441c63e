# One command each: `make run` (set up, then run the pipeline on the bundled
# sample) and `make test` (set up, then run the test suite). Setting up needs
# only Python 3.10 and a package registry: uv installs the locked set.
UV_VERSION := 0.13.9
PY := python3
UV := $(PY) -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup run test clean
setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --locked
	touch $@

run: setup
	.venv/bin/flowers run $(ARGS)

test: setup
	.venv/bin/pytest $(ARGS)

clean:
	rm -rf outputs .pytest_cache
