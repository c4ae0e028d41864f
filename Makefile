# The README's two commands. Both are complete on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: test demo install lint bench clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first: the pinned CPU wheel lies on disk; any other torch pulls multi-GB CUDA builds.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install --upgrade pip >/dev/null
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[dl,dev,hpc,bioimageio]"
	# bioimageio.core validates exported packages in the tests; it pins bioimageio.spec 0.5.12,
	# which fails under pydantic 2.14 (fixed in spec 0.5.14): installed without that pin
	$(PIP) install --no-deps "bioimageio.core==0.11.0"
	$(PIP) install "xarray>=2023.01"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# the report is tested in a real browser: Debian's chromium, installed when missing
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: $(STAMP) lint browser
	$(VENV)/bin/python -m pytest -n 2 -q

demo: $(STAMP)
	$(VENV)/bin/ect demo

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
