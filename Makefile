# sklearn_mf developer commands.  Everything installs into a local virtual
# environment (.venv) so that a fresh machine needs only Python, gcc and pip.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# MovieLens (or other) data for `make demo DATA=path/to/ml-100k`; empty = built-in data
DATA ?=
PYTEST_ARGS ?=
# Where `make dist` writes the sdist and the wheel
DIST_DIR ?= dist
# Real data for the tests of `make distcheck` (they skip the ml-100k tests without it)
SKLEARN_MF_DATA ?= $(abspath $(CURDIR)/../shared/data)

.PHONY: help venv install install-test install-doc install-bench demo lint test bench doc dist distcheck annotate clean

help:
	@echo "make demo     install and run the main job (GridSearchCV-tuned MatrixFactorization)"
	@echo "make lint     ruff check and ruff format --check (installs ruff into .venv if absent)"
	@echo "make test     install with test extras and run the whole test suite"
	@echo "make bench    run the benchmarks against peer libraries (installs them into .venv)"
	@echo "make doc      build the HTML documentation into doc/_build/html"
	@echo "make dist     build the sdist and the wheel into $(DIST_DIR)/ (python -m build)"
	@echo "make distcheck  dist, check their contents, install the wheel in a fresh venv, run the tests against it"
	@echo "make clean    remove build products"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(PY)

install: $(PY)
	$(PIP) install --quiet -e .

install-test: $(PY)
	$(PIP) install --quiet -e ".[test]"

install-doc: $(PY)
	$(PIP) install --quiet -e ".[test,doc]"

install-bench: $(PY)
	$(PIP) install --quiet -e ".[bench]"

demo: install
	$(PY) -m sklearn_mf.demo $(DATA)

# ruff is in the test extra; installed alone here so that lint needs no build.
lint: $(PY)
	@$(PY) -m ruff --version >/dev/null 2>&1 || $(PIP) install --quiet "ruff>=0.6"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-bench
	$(PY) benchmarks/run_all.py

doc: install-doc
	$(MAKE) -C doc html SPHINXBUILD=$(abspath $(VENV))/bin/sphinx-build

dist: $(PY)
	$(PIP) install --quiet build
	rm -rf $(DIST_DIR)
	$(PY) -m build --outdir $(DIST_DIR) .

# The tests of the unpacked sdist run against the wheel installed in a fresh
# venv, from outside the source tree and with --import-mode=importlib, so that
# the in-tree (uncompiled) package is never what gets imported.
distcheck: dist
	$(PY) build_tools/check_dist.py $(DIST_DIR)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	wheel=$$(ls $(abspath $(DIST_DIR))/*.whl); \
	$(PY) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install --quiet "$$wheel[test]"; \
	mkdir "$$tmp/src"; tar -xzf $(DIST_DIR)/*.tar.gz -C "$$tmp/src" --strip-components=1; \
	cd "$$tmp"; \
	"$$tmp/venv/bin/python" -c "import sklearn_mf, sys; \
	where = sklearn_mf.__file__; print('testing', where); \
	sys.exit(0 if '/site-packages/' in where else 'not the installed package')"; \
	SKLEARN_MF_DATA="$(SKLEARN_MF_DATA)" "$$tmp/venv/bin/python" -m pytest \
	  --import-mode=importlib -p no:cacheprovider -q src/tests $(PYTEST_ARGS)

annotate: $(PY)
	$(PY) -m cython -a -3 sklearn_mf/*.pyx

clean:
	rm -rf build dist $(DIST_DIR) *.egg-info doc/_build doc/auto_examples doc/generated
	find sklearn_mf -name "*.so" -delete -o -name "*.c" -delete -o -name "*.html" -delete
	find . -name __pycache__ -prune -exec rm -rf {} +
