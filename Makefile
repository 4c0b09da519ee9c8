# DynamicSparse — build, test and run experiments.
#   make deps          install system packages (OpenBLAS, zlib, Fashion-MNIST) when missing
#   make build         release build of the `dst` tool
#   make test          run the test suite (debug build)
#   make experiment    train CONFIG (default configs/quickstart.yaml); ARGS="--force" etc.
#   make bench-train   training throughput, side by side with PyTorch, REPEATS=3 interleaved runs
#   make bench-train-sparse  sparse training steps (masked and sparse kernels) vs the dense step and PyTorch's,
#                      the per-layer sparse/dense kernel crossover, and ResNet-20 on Fashion-MNIST-sized images
#   make bench-masks   cost of mask updates and masking as a share of training time
#   make bench         sparse inference kernels vs dense, CSR, scipy and PyTorch
#   make test-slurm    one-node SLURM cluster on this machine; submits a 3-task sweep array
#   make plot RESULTS=results/sweeps [PLOTS=results/plots]   figures from run folders
#   make clean         remove build products

SWIFT ?= swift
CONFIG ?= configs/quickstart.yaml
ARGS ?=
THREADS ?= 2
# make bench-train runs each framework this many times, interleaved.
REPEATS ?= 3
# make bench-train-sparse models.
SPARSE_MODELS ?= mlp,resnet20,resnet18
APT_PACKAGES := libopenblas-dev zlib1g-dev dataset-fashion-mnist
# Release builds of numeric code need the CPU's vector units (FMA/AVX); the default
# x86-64 target has neither.
ARCH := $(shell uname -m)
NATIVE := $(if $(filter x86_64,$(ARCH)),-Xswiftc -target-cpu -Xswiftc native,)
RELEASE := -c release $(NATIVE)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .build-venv/bench
PLOT_VENV := .build-venv/plot
RESULTS ?= results
PLOTS ?= results/plots

.PHONY: deps build test test-slurm experiment bench bench-train bench-train-sparse bench-masks plot clean

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all present"; else \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  ( $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing ) || \
	  ( sleep 5; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing ); \
	fi

build: deps
	$(SWIFT) build $(RELEASE) --product dst

test: deps
	$(SWIFT) build --product dst
	$$($(SWIFT) build --show-bin-path)/dst info
	$(SWIFT) test

experiment: build
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/dst run $(CONFIG) $(ARGS)

$(VENV)/.ready:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q torch scipy
	touch $@

bench-train: deps $(VENV)/.ready
	$(SWIFT) build $(RELEASE) --product dst-bench
	mkdir -p results/bench
	rm -f results/bench/train_dynamicsparse.r*.csv results/bench/train_torch.r*.csv
	for r in $$(seq 1 $(REPEATS)); do \
	  $$($(SWIFT) build $(RELEASE) --show-bin-path)/dst-bench train --threads $(THREADS) \
	    --models mlp,resnet20,resnet18 --csv results/bench/train_dynamicsparse.r$$r.csv && \
	  $(VENV)/bin/python experiments/bench_train_torch.py --threads $(THREADS) \
	    --csv results/bench/train_torch.r$$r.csv || exit 1; \
	done
	python3 experiments/bench_table.py results/bench/train_dynamicsparse.r*.csv results/bench/train_torch.r*.csv \
	  > results/bench/train.md
	@cat results/bench/train.md

bench-train-sparse: deps $(VENV)/.ready
	$(SWIFT) build $(RELEASE) --product dst-bench
	mkdir -p results/bench
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/dst-bench train-sparse --threads $(THREADS) \
	  --models $(SPARSE_MODELS) --csv results/bench/train_sparse_ours.csv
	$(VENV)/bin/python experiments/bench_train_torch.py --threads $(THREADS) --models $(SPARSE_MODELS) \
	  --csv results/bench/train_sparse_torch.csv
	python3 experiments/bench_train_sparse_table.py results/bench/train_sparse_ours.csv \
	  results/bench/train_sparse_torch.csv results/bench/train_sparse.csv > results/bench/train_sparse.md
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/dst-bench kernel-crossover --threads $(THREADS) \
	  --csv results/bench/kernel_crossover.csv | tee results/bench/kernel_crossover.txt
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/dst-bench train-sparse --threads $(THREADS) --models resnet20 \
	  --images fmnist --csv results/bench/train_sparse_fmnist.csv | tee results/bench/train_sparse_fmnist.txt
	@cat results/bench/train_sparse.md

bench: deps $(VENV)/.ready
	$(SWIFT) build $(RELEASE) --product dst-bench
	mkdir -p results/bench
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/dst-bench inference --csv results/bench/inference.csv
	$(VENV)/bin/python experiments/bench_inference_py.py --csv results/bench/inference.csv
	python3 experiments/bench_inference_table.py results/bench/inference.csv > results/bench/inference.md
	@cat results/bench/inference.md

bench-masks: deps
	$(SWIFT) build $(RELEASE) --product dst-bench
	mkdir -p results/bench
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/dst-bench mask-update --threads $(THREADS) \
	  --models resnet20,resnet18 --csv results/bench/mask_update.csv

$(PLOT_VENV)/.ready:
	python3 -m venv $(PLOT_VENV)
	$(PLOT_VENV)/bin/pip install -q pandas matplotlib
	touch $@

plot: $(PLOT_VENV)/.ready
	$(PLOT_VENV)/bin/python experiments/plot.py $(RESULTS) --out $(PLOTS)

test-slurm: deps
	bash experiments/test_slurm.sh

clean:
	rm -rf .build
