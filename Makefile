# Two commands: `make run` opens the viewer, `make test` runs the suite.
# Both create the local virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test sysdeps proto caffe bench model mutation

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

sysdeps:
	sh scripts/system-deps.sh

run: sysdeps $(STAMP)
	$(BIN)/python main.py

# The import contract first (setup.cfg's [importlinter]: the layers of docs/architecture.md).
test: sysdeps $(STAMP)
	$(BIN)/lint-imports --no-cache
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# Every engine, the per-window baseline, the GEMM bound, growth and end to end: bench/README.md.
bench: sysdeps $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m bench

# Mutation testing of the core with mutmut (docs/mutation.md): slow, not part of CI. Writes
# out/mutation/report.md; `make mutation MODULES="netgraph surgery"` runs some modules only.
mutation: $(STAMP)
	$(BIN)/python -c "import mutmut" 2>/dev/null || $(BIN)/pip install --quiet 'mutmut==3.8.1'
	$(BIN)/python scripts/mutation.py $(MODULES)

# Regenerate viewer/caffe/proto/caffe_pb2.py from viewer/caffe/proto/caffe.proto (needs grpcio-tools).
proto: $(STAMP)
	$(BIN)/pip install --quiet 'grpcio-tools==1.85.1'
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. viewer/caffe/proto/caffe.proto

# Real Caffe (pycaffe, CPU only) built from Debian's source package; cached, see docs/real-caffe.md.
caffe: $(STAMP)
	bash scripts/install-pycaffe.sh $(BIN)/python

# The two shipped plate nets from scratch (models/README.md): synthetic data, training with the
# `train` extra (PyTorch CPU), surgery, the letter calibration. About 40 minutes on 2 cores;
# rewrites models/lenet_plates* and models/bnnet_plates*.
model: sysdeps $(STAMP)
	$(BIN)/pip install --quiet -e '.[train]'
	$(BIN)/python main.py dataset make --out out/plates --count 600000 --seed 0 --force
	$(BIN)/python main.py train --data out/plates --out models --seed 0 --threads 2
	$(BIN)/python main.py surgery --prototxt models/lenet_plates.prototxt \
		--weights models/lenet_plates.caffemodel --out models
	$(BIN)/python main.py dataset make --out out/plates-din --count 600000 --seed 0 \
		--faces debian+dinish --force
	$(BIN)/python main.py train --arch bnnet --data out/plates-din --out models --seed 0 \
		--threads 2
	$(BIN)/python main.py surgery --prototxt models/bnnet_plates.prototxt \
		--weights models/bnnet_plates.caffemodel --out models
	$(BIN)/python -m bench.calibration --model lenet --fit --count 400
	$(BIN)/python -m bench.calibration --model bnnet --fit --count 400