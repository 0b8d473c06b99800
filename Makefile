# Two commands do all set-up on a fresh Linux machine with Python 3.11 and Java:
#   make demo   — the whole DeepMedix-R1 system on the tiny model and bundled data
#   make test   — the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The field's reference scorers (f1chexbert, radgraph) need transformers < 5, so they get an environment of their
# own: the tests check deepmedix's F1-CheXbert and F1-RadGraph against them on the same weights, and
# benchmarks/chexbert_throughput.py times f1chexbert.
REF_VENV := .venv-reference
REF_STAMP := $(REF_VENV)/.installed
# A real Label Studio (Django app, no torch) for the test that proves the Label Studio interchange against it; its
# pinned Django stack stays out of deepmedix's environment.
LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed

.PHONY: demo test lint venv labelstudio clean

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned to the CPU build: anything that depends on torch then finds it satisfied.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	bash scripts/install-browser.sh
	touch $(TEST_STAMP)

$(REF_STAMP):
	$(PYTHON) -m venv $(REF_VENV) || python3 -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q torch==2.13.0
	# f1chexbert 0.0.2 unpacks a private scikit-learn function that returns one more value from 1.8 on
	$(REF_VENV)/bin/pip install -q transformers==4.57.6 scikit-learn==1.7.2 f1chexbert==0.0.2 radgraph==0.1.18
	touch $(REF_STAMP)

$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV) || python3 -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==1.23.2 label-studio-sdk==2.1.2
	touch $(LS_STAMP)

venv: $(STAMP)

labelstudio: $(LS_STAMP)

demo: $(STAMP)
	$(VENV)/bin/deepmedix demo --out runs/demo

test: $(TEST_STAMP) $(REF_STAMP) $(LS_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(PY) -m pytest -n 2 --dist loadgroup --timeout 900 tests

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

clean:
	rm -rf runs .pytest_cache
