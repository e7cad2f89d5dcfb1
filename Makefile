# Two commands do all the set-up on a machine with Python 3.11 and make:
#   make demo   installs, imports and processes the sample books, and shows what was found
#   make test   installs and runs the whole test suite (CI runs exactly this)
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_HOME ?= demo-home
export OMP_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: install demo test test-deps clean

install: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build that lies on this disk; any other spec pulls a multi-GB CUDA build
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[nlp,celery,dev,train]'
	touch $@

demo: install
	BOOKREADER_HOME=$(DEMO_HOME) $(BIN)/bookreader books import sample_books/*.epub sample_books/*.fb2 sample_books/*.txt
	BOOKREADER_HOME=$(DEMO_HOME) $(BIN)/bookreader models
	BOOKREADER_HOME=$(DEMO_HOME) $(BIN)/bookreader process sample_books/ru_sample.epub
	BOOKREADER_HOME=$(DEMO_HOME) $(BIN)/bookreader descriptions sample_books/ru_sample.epub --top 10
	BOOKREADER_HOME=$(DEMO_HOME) $(BIN)/bookreader books list

# Tools some tests compare against or run beside; each test skips cleanly when its tool cannot be had.
test-deps:
	@bash tests/js/install.sh || echo "epub.js reference not installed: CFI comparison tests will skip"
	@command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) ; } \
	  || echo "redis-server not installed: Celery integration tests will skip"
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } \
	  || echo "chromium not installed: the HTML reader view browser tests will skip"

test: install test-deps
	$(BIN)/ruff check bookreader_cli tests bench scripts
	$(BIN)/ruff format --check bookreader_cli tests bench scripts sample_books
	$(BIN)/mypy bookreader_cli
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache
