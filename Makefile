# The two commands of README.md. Everything installs into ./.venv; the pins in constraints.txt make a
# fresh install reproducible (and offline-friendly on machines that keep torch wheels on disk).
VENV   := .venv
BIN    := $(VENV)/bin
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export NO_MKDOCS_2_WARNING ?= true

.PHONY: demo test setup browser clean

demo: setup                 ## render the demo atlas and build its gallery into out/site
	$(BIN)/featvis run demo
	@echo "Open the gallery: $(BIN)/featvis site serve --no-build   then http://127.0.0.1:8000/"

test: setup browser         ## lint, then the test suite (CPU, embedded model, real Prefect/MkDocs/Chromium)
	$(BIN)/ruff check featvis_core pipeline site tests bench
	$(BIN)/python -m pytest

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,dask]'
	touch $@

browser:                    ## Debian's chromium for the browser tests (Playwright drives it)
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

clean:
	rm -rf out .prefect store
