"""`make bench-gpu`'s script, run tiny on the CPU: its table and files (the GPU figures come from a GPU)."""

from __future__ import annotations

import json

import pytest


def test_the_gpu_benchmark_runs_its_table_on_the_cpu(tmp_path):
    from benchmarks.gpu import main

    results = main(["--device", "cpu", "--quick", "--out", str(tmp_path)])
    shapes = {r["shape"] for r in results["training"]}
    assert shapes == {"micrograph 16²", "spectrum 1024"}
    assert all(r["ms_per_step"] > 0 and r["samples_per_s"] > 0 for r in results["training"])
    assert [r["device"] for r in results["oracle"]] == ["cpu"]
    assert json.loads((tmp_path / "gpu.json").read_text())["quick"] is True
    text = (tmp_path / "gpu.md").read_text()
    assert "| micrograph 16² | fp32 | off |" in text and "Cahn–Hilliard micrographs/s" in text


def test_without_cuda_it_says_so():
    import torch

    from benchmarks.gpu import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="no CUDA device here; `--device cpu`"):
        main(["--out", "unused"])
