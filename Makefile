# The README's commands. Both create and use the virtual environment at .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test setup graphviz clean

demo: setup
	$(VENV)/bin/simplecnn demo

# The whole suite on the default backend (TensorFlow), then the backend-sensitive tests
# again on JAX and on PyTorch.
test: setup
	$(PY) -m pytest
	KERAS_BACKEND=jax $(PY) -m pytest -m multibackend -q
	KERAS_BACKEND=torch $(PY) -m pytest -m multibackend -q

setup: $(STAMP) graphviz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# keras.utils.plot_model needs graphviz's `dot` program, which is not on PyPI.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing graphviz (for plot_model) with apt-get"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends graphviz >/dev/null; \
	  else \
	    echo "warning: graphviz's 'dot' is not installed; 'simplecnn compare' will report plot_model as failing. Install it with your package manager (e.g. apt-get install graphviz)."; \
	  fi; }

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
