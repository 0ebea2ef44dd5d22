# The two commands of the README: `make run` and `make test`. Nothing else is needed but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run demo test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing yibao and its dependencies into $(VENV) (first run only, about a minute)..."
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m yibao.serve

# The four journeys against the running `make run` (YB=http://host:port to point elsewhere).
demo: $(STAMP)
	$(BIN)/python -m yibao_client.demo

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass (make would report it as 2).
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache
