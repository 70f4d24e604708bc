# Every target creates .venv when it is missing. torch is pinned and installed first so that pip
# takes the CPU build on this machine instead of pulling a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.handssca-installed
TORCH := torch==2.13.0

.PHONY: test test-all test-triton lint format demo bench gpu-check clean mediapipe-reference

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,onnx,demo,serve,video]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/ruff check src tests benchmarks scripts

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks scripts
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts

# the Triton scan kernels under Triton's CPU interpreter (~40 s; the variable must be set before triton is imported)
test-triton: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[triton]"
	TRITON_INTERPRET=1 $(PY) -m pytest -q -m triton tests/ops/test_triton_scan.py

test-all: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/handssca demo

bench: $(STAMP)
	$(PY) benchmarks/scan.py
	$(PY) benchmarks/model.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/synthetic.py
	$(PY) benchmarks/fit.py

# the one-command GPU check (issue #27): GPU tests, scan kernels, a bf16 training step at batch 32 and batch-1
# inference, in under 8 minutes; writes runs/gpu_check.json and .md (a CPU dry run without CUDA). Installs
# nothing beyond the environment (a lent GPU machine may have no network): add `.[triton]` / mamba-ssm first.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu.py $(GPU_CHECK_ARGS)

# MediaPipe itself, in its own environment (mediapipe 0.10.21 pins numpy < 2): the detector's optional
# whole-pipeline reference. `HANDSSCA_MEDIAPIPE_PYTHON=.venv-mediapipe/bin/python make test` uses it.
mediapipe-reference:
	test -x .venv-mediapipe/bin/python || $(PYTHON) -m venv .venv-mediapipe
	.venv-mediapipe/bin/python -m pip install --quiet --disable-pip-version-check mediapipe==0.10.21 pillow

clean:
	rm -rf $(VENV) .venv-mediapipe build dist src/*.egg-info
