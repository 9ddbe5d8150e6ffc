# Two entry points: `make run` starts the daemon on port 5002, `make test`
# installs what the tests need and runs them.  Both use a local venv.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 5002
WEB_PORT ?= 8080
BIN = $(VENV)/bin

.PHONY: run test install clean bench

# `make bench` runs the benchmarks (bench/README.md); BENCH_ARGS=--quick for a
# two-minute version.
BENCH_ARGS ?=

# $(call apt_need,COMMANDS,DEBIAN PACKAGES,TESTS): install the packages when a
# command is missing (CI runs `make test` on a clean Debian machine).
apt_need = @for c in $(1); do command -v $$c >/dev/null || missing=1; done; \
	[ -z "$$missing" ] || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) || \
	  { $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2); } || \
	  echo "could not install $(2): $(3) will fail"; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat

run: install
	$(BIN)/twistd -n chatd --port $(PORT) --web-port $(WEB_PORT)

test: install
	@# tests/test_client_tty.py and test_client_noposix.py drive chatd-client in tmux,
	@# tests/test_web_browser.py the web client in Debian's headless Chromium,
	@# tests/cluster/ start their own redis-server (never a system one).
	$(call apt_need,tmux,tmux,tests/test_client_tty.py)
	$(call apt_need,chromium chromedriver,chromium chromium-driver,tests/test_web_browser.py)
	$(call apt_need,redis-server,redis-server,tests/cluster/)
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install -q -r bench/requirements.txt || echo "no uvloop: the generator uses asyncio"
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.web $(BENCH_ARGS)
	$(BIN)/python -m bench.cluster $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
