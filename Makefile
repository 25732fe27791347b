# Every target works on a fresh machine with only Python 3.11+ and gcc: it creates and
# uses a local virtual environment (.venv) and installs what it needs there.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

.PHONY: install demo test test-unit soak bench bench-setup clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard native/*.c native/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# one resolver run: aiobotocore pins botocore, and moto/boto3 must not move it
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(PY) examples/demo.py

test: install
	$(PY) -m pytest

# The fast inner loop: pure units and the checksum conformance suite, no servers.
test-unit: install
	$(PY) -m pytest tests/unit tests/checksum

# Many-trial runs: at least BIGUPLOAD_SOAK_KILLS (default 50) SIGKILLs of the CLI at random
# moments, with 5% of requests faulted, each upload checked byte for byte.
soak: install
	$(PY) -m pytest tests/faults -m soak -s

# The peers live outside bigupload's environment: awscrt installed next to botocore
# changes how botocore signs, so it must not touch the environment bigupload is measured in.
# Debian's awscli and rclone come from apt when this runs as root; otherwise the harness
# reports them as unable to run.
bench-setup: install $(PEERS_STAMP) $(VENV)/.bench-installed
	@if ! command -v rclone >/dev/null || ! test -x /usr/bin/aws; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli rclone >/dev/null; \
	  else echo "bench-setup: not root, skipping apt install of awscli and rclone"; fi; \
	fi

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

$(PEERS_STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -e . boto3 awscrt obstore google-crc32c crc32c xxhash
	touch $(PEERS_STAMP)

bench: bench-setup
	$(PEERS_VENV)/bin/python bench/checksums.py
	$(PY) bench/run.py --size-mib 2048 --rounds 3

clean:
	rm -rf $(VENV) $(PEERS_VENV) build engine/*.egg-info engine/bigupload/*.so .pytest_cache .hypothesis
