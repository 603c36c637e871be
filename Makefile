# sklearn_mf developer commands.  Everything installs into a local virtual
# environment (.venv) so that a fresh machine needs only Python, gcc and pip.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# MovieLens (or other) data for `make demo DATA=path/to/ml-100k`; empty = built-in data
DATA ?=
PYTEST_ARGS ?=

.PHONY: help venv install install-test install-doc install-bench demo test bench doc annotate clean

help:
	@echo "make demo     install and run the main job (GridSearchCV-tuned MatrixFactorization)"
	@echo "make test     install with test extras and run the whole test suite"
	@echo "make bench    run the benchmarks against peer libraries (installs them into .venv)"
	@echo "make doc      build the HTML documentation into doc/_build/html"
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

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-bench
	$(PY) benchmarks/run_all.py

doc: install-doc
	$(MAKE) -C doc html SPHINXBUILD=$(abspath $(VENV))/bin/sphinx-build

annotate: $(PY)
	$(PY) -m cython -a -3 sklearn_mf/*.pyx

clean:
	rm -rf build dist *.egg-info doc/_build doc/auto_examples doc/generated
	find sklearn_mf -name "*.so" -delete -o -name "*.c" -delete -o -name "*.html" -delete
	find . -name __pycache__ -prune -exec rm -rf {} +
