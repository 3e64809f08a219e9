# gammaxds — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all test test-fast lint unit golden demo bench bench-quick image screenshot clean

all: test

$(STAMP): pyproject.toml
	@# The e2e mesh needs iproute2 and iptables; install them where missing and we may (root, apt).
	@# Under GAMMAXDS_REQUIRE_ALL=1 (CI) a missing tool is an error: those suites must run.
	@command -v iptables >/dev/null && command -v ip >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get update -qq && apt-get install -y -qq iptables iproute2 >/dev/null) || \
	    { [ "$${GAMMAXDS_REQUIRE_ALL:-}" = 1 ] && \
	      { echo "error: iptables/iproute2 missing and cannot be installed; the network-namespace suites need them" >&2; exit 1; }; } || \
	    echo "note: iptables/iproute2 missing; network-namespace tests will be skipped"; }
	@# The dashboard's browser test (tests/e2e/test_ui.py) and `make screenshot` need Debian's chromium; likewise.
	@command -v chromium >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    { [ "$${GAMMAXDS_REQUIRE_ALL:-}" = 1 ] && \
	      { echo "error: chromium missing and cannot be installed; the dashboard's browser test needs it" >&2; exit 1; }; } || \
	    echo "note: chromium missing; the dashboard's browser test will be skipped"; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check gammaxds tests bench
	$(BIN)/ruff format --check gammaxds tests bench
	$(BIN)/mypy gammaxds
	$(BIN)/hadolint Dockerfile

test: lint
	$(BIN)/python -m pytest

# The fast part alone: no real Envoy processes, no network namespaces (no root needed).
test-fast: lint
	$(BIN)/python -m pytest -m "not e2e and not netns"

# Regenerate every golden file (removes orphaned outputs). Review the diff before committing.
golden: $(STAMP)
	$(BIN)/python -m pytest tests/golden --update-goldens -q

demo: $(STAMP)
	$(BIN)/gammaxds demo

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# The README's picture of the dashboard: examples/ with two sidecars, on the code path of tests/e2e/test_ui.py.
screenshot: $(STAMP)
	$(BIN)/python -m gammaxds.testing.dashboard --screenshot docs/ui.png

# The image of deploy/kubernetes/ (the control plane, and the capture init step). Needs a Docker engine.
IMAGE ?= gammaxds:0.1.0
image:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
