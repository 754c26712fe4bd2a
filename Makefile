# genmat — the two commands: `make demo` and `make test` (both set up .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MPLBACKEND := Agg
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: install demo demo-xrd demo-raman demo-grains demo-eels test test-shuffled test-fast bench bench-design bench-guidance bench-spectra-guidance bench-masks bench-oracle bench-lab bench-gpu up down ui clean

$(BIN)/genmat: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build (docs/running.md)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

install: $(BIN)/genmat

demo: install  ## the closed loop on the embedded defaults (local Prefect, MLflow on SQLite, CPU), then verified recipes for the tight task beside the baselines
	$(BIN)/genmat loop --workdir runs/demo
	$(BIN)/genmat recipes --task spinodal-tight --out runs/demo/recipes

demo-xrd: install  ## the closed loop on XRD spectra (phase fractions, size, strain, temperature)
	$(BIN)/genmat loop --modality xrd --workdir runs/xrd

demo-raman: install  ## the closed loop on Raman spectra
	$(BIN)/genmat loop --modality raman --workdir runs/raman

demo-grains: install  ## the closed loop on grain maps from cooling rate and hold (≈ 22 min on 2 cores; docs/grains.md)
	$(BIN)/genmat loop --modality grains --workdir runs/grains --iterations 3

demo-eels: install  ## the closed loop on core-loss EELS spectra with their low loss (composition and t/λ; ≈ 20 min on 2 cores; docs/eels.md)
	$(BIN)/genmat loop --modality eels --workdir runs/eels

test: install  ## the whole test suite
	$(BIN)/pytest -q --durations=15

test-shuffled: install  ## the suite in a shuffled order (GENMAT_TEST_ORDER=shuffle:SEED; SEED defaults to 1): no test may depend on what ran before it
	GENMAT_TEST_ORDER=shuffle:$${SEED:-1} $(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

bench: install  ## benchmarks: writes bench_results/ (JSON, Markdown, PNG); the methods part trains 13 models once (≈ 45 min on 2 cores, cached in runs/methods)
	$(BIN)/python -m benchmarks.run --workdir runs/demo --spectra-workdir runs/xrd
	$(BIN)/python -m benchmarks.methods --workdir runs/methods

bench-design: install  ## the design benchmark: genmat (recipe loop, and the guided micrograph loop on tight32) against lookup, a random library and per-target BO (JSON, Markdown, PNG in bench_results/; ≈ 35 min on 2 cores)
	$(BIN)/python -m benchmarks.design --out bench_results

bench-guidance: install  ## physics guidance vs classifier-free guidance alone at one oracle call per target, and the physics-penalised training ablation (bench_results/guidance.*; trains the demo generator first, ≈ 11 min on 2 cores)
	$(BIN)/python -m benchmarks.guidance --out bench_results --seeds 0 1 2 --scales 0 30

bench-spectra-guidance: install  ## physics guidance of XRD and Raman spectra through the differentiable line-spectrum model vs classifier-free guidance alone (bench_results/spectra_guidance.*; trains both demo generators first, ≈ 12 min on 2 cores)
	$(BIN)/python -m benchmarks.spectra_guidance --out bench_results

bench-masks: install  ## any-subset conditioning: one generator asked with each subset of the condition fields (bench_results/masks.*; reuses bench-guidance's trained generator, else trains it, ≈ 8 min on 2 cores)
	$(BIN)/python -m benchmarks.masks --out bench_results --seeds 0 1 2

bench-oracle: install  ## oracle throughput (256 grain maps) with 1 and 2 Dask worker processes, and the task runner's overhead per chunk (bench_results/oracle_scaling.*; ≈ 2 min on 2 cores)
	$(BIN)/python -m benchmarks.oracle_scaling --out bench_results

bench-gpu: install  ## on a CUDA machine: the CUDA smoke test, then training step time (32², 64², 128² micrographs, 1024-point spectra; fp32/bf16; torch.compile) and the oracle on GPU vs CPU (bench_results/gpu.*; < 8 min on one GPU)
	$(BIN)/pytest -q -p no:cacheprovider tests/test_cuda_smoke.py
	$(BIN)/python -m benchmarks.gpu --out bench_results

bench-lab: install  ## the lab's own data: simulated micrographs imported as PNG + CSV, trained on, designed for, checked by the learned surrogate — and then by the real oracle (bench_results/lab_data.*; ≈ 5 min on 2 cores)
	$(BIN)/python -m benchmarks.lab_data --out bench_results

up: install  ## a local Prefect server and an MLflow tracking server on loopback, stores in runs/services (genmat up)
	$(BIN)/genmat up

down: install  ## stop them (genmat down)
	$(BIN)/genmat down

ui: install  ## the MLflow UI on the local SQLite store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf runs bench_results mlflow.db mlartifacts mlruns
