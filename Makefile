# Two commands: `make run` opens the viewer, `make test` runs the suite.
# Both create the local virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test sysdeps proto caffe bench

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

sysdeps:
	sh scripts/system-deps.sh

run: sysdeps $(STAMP)
	$(BIN)/python main.py

test: sysdeps $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# Every engine, the per-window baseline, the GEMM bound, growth and end to end: bench/README.md.
bench: sysdeps $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m bench

# Regenerate viewer/proto/caffe_pb2.py from viewer/proto/caffe.proto (needs grpcio-tools).
proto: $(STAMP)
	$(BIN)/pip install --quiet 'grpcio-tools==1.85.1'
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. viewer/proto/caffe.proto

# Real Caffe (pycaffe, CPU only) built from Debian's source package; cached, see docs/real-caffe.md.
caffe: $(STAMP)
	bash scripts/install-pycaffe.sh $(BIN)/python
