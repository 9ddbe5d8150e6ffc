# Two entry points: `make run` starts the daemon on port 5002, `make test`
# installs what the tests need and runs them.  Both use a local venv.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 5002
BIN = $(VENV)/bin

.PHONY: run test install clean bench

# `make bench` runs the benchmarks (bench/README.md); BENCH_ARGS=--quick for a
# two-minute version.
BENCH_ARGS ?=

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat

run: install
	$(BIN)/twistd -n chatd --port $(PORT)

test: install
	@# tests/test_client_tty.py drives chatd-client in tmux, and tests/cluster/
	@# start their own redis-server (never a system one): install them if missing.
	@for pkg in tmux redis-server; do command -v $$pkg >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkg || \
	  { $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkg; } || \
	  echo "could not install $$pkg: the tests that use it will fail"; }; done
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install -q -r bench/requirements.txt || echo "no uvloop: the generator uses asyncio"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
