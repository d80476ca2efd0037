# Two commands do all the set-up on a fresh machine:
#   make demo   the demo on the built-in data
#   make test   the test suite
# Both create (or reuse) .venv and install the package; on a machine without an NVIDIA GPU the
# CPU build of torch is installed first, so nothing pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU ?= torch==2.13.0

.PHONY: demo test lint clean browser

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "GPU found: torch comes from the package index"; \
	elif ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  $(BIN)/python -m pip install -q "$(TORCH_CPU)" || \
	  $(BIN)/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/tmi-nlp demo

# The report test renders report.html in headless Chromium; where we are root on Debian/Ubuntu
# (CI, Docker) it is installed here, elsewhere that test is skipped with a message.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || \
	  echo "no chromium: the report rendering test will be skipped"

test: $(BIN)/.installed browser
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest tests

lint: $(BIN)/.installed
	$(BIN)/ruff check tmi_nlp tests benchmarks

clean:
	rm -rf $(VENV) runs
