# Every target works on a fresh machine with only Python 3.11+ and gcc: it creates and
# uses a local virtual environment (.venv) and installs what it needs there.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

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

bench: install
	$(PY) bench/checksums.py
	$(PY) bench/upload.py --size-mib 2048 --rounds 3

clean:
	rm -rf $(VENV) build engine/*.egg-info engine/bigupload/*.so .pytest_cache .hypothesis
