# The README's two commands. Both are complete on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: test demo install lint bench clean browser gui system

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first: the pinned CPU wheel lies on disk; any other torch pulls multi-GB CUDA builds.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install --upgrade pip >/dev/null
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[dl,dev,hpc,bioimageio,napari]"
	# bioimageio.core validates exported packages in the tests; it pins bioimageio.spec 0.5.12,
	# which fails under pydantic 2.14 (fixed in spec 0.5.14): installed without that pin
	$(PIP) install --no-deps "bioimageio.core==0.11.0"
	$(PIP) install "xarray>=2023.01"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# System packages, installed when missing (one apt-get update for all of them):
# - the report is tested in a real browser: Debian's chromium;
# - the napari plugin is tested in a real viewer on a virtual display (pytest-xvfb starts
#   Xvfb; Qt's offscreen platform has no OpenGL context): Xvfb and the libraries that Qt 5's
#   xcb platform plugin loads (ldd of libqxcb.so).
SYSTEM_PKGS := chromium xvfb xauth libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
	libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 \
	libxcb-shape0 libgl1 libegl1 libdbus-1-3 libfontconfig1
system:
	@missing=$$(for p in $(SYSTEM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

browser gui: system

test: $(STAMP) lint system
	$(VENV)/bin/python -m pytest -n 2 -q

demo: $(STAMP)
	$(VENV)/bin/ect demo

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
