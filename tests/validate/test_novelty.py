from __future__ import annotations

import math

import pytest
import torch

from genmat.sim import CahnHilliardConfig, simulate_spinodal
from genmat.validate import novelty
from genmat.validate import NoveltyConfig, ValidateInputError, nearest_training_distance, novelty_check

CFG = CahnHilliardConfig(grid=32)


@pytest.fixture(scope="module")
def micrographs() -> torch.Tensor:
    """17 simulator samples of one condition (τ ≈ 82): 16 for training, 1 held out."""
    return simulate_spinodal(torch.full((17,), 0.5), 775.0, 1800.0, CFG, seed=5)


def brute_force(a: torch.Tensor, b: torch.Tensor, shifts: bool) -> torch.Tensor:
    """min over training samples (and all periodic shifts) of the RMS distance / training std."""
    s = (b - b.mean()).square().mean().sqrt()
    dims = tuple(range(2, a.dim()))
    offsets = [()]
    for d in dims:
        offsets = [o + (k,) for o in offsets for k in (range(a.shape[d]) if shifts else [0])]
    best = torch.full((a.shape[0],), math.inf, dtype=torch.float64)
    for o in offsets:
        rolled = torch.roll(b, shifts=o, dims=dims) if o else b
        d = (a[:, None] - rolled[None]).double().square().flatten(2).mean(dim=2).sqrt().amin(dim=1)
        best = torch.minimum(best, d)
    return best / s


def test_rolled_copy_is_found_only_with_translation_invariance(micrographs):
    train = micrographs[:16]
    copy = torch.roll(train[[7, 13]], shifts=(5, -11), dims=(-2, -1))
    d, idx = nearest_training_distance(copy, train)
    assert d.tolist() == pytest.approx([0.0, 0.0], abs=2e-3)
    assert idx.tolist() == [7, 13]
    d_plain, _ = nearest_training_distance(copy, train, translation_invariant=False)
    assert (d_plain > 0.5).all()
    # an unshifted copy is ≈ 0 either way
    d0, i0 = nearest_training_distance(train[[3]], train, translation_invariant=False)
    assert float(d0) == pytest.approx(0.0, abs=2e-3) and int(i0) == 3


def test_fresh_simulator_sample_is_far_from_training(micrographs):
    train, fresh = micrographs[:16], micrographs[16:]
    d, _ = nearest_training_distance(fresh, train)
    assert float(d) > NoveltyConfig().copy_threshold
    assert float(d) > 0.5


def smooth_fields(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Low-pass filtered noise ``(n, C, *S)``: structured, so the spectral lower bound prunes."""
    dims = tuple(range(2, len(shape)))
    spec = torch.fft.rfftn(torch.randn(shape, generator=generator), dim=dims)
    spec[..., 3:] = 0  # keep the lowest frequencies along the last dim
    return torch.fft.irfftn(spec, s=shape[2:], dim=dims)


@pytest.mark.parametrize("n_seed_pairs", [1, 4])
@pytest.mark.parametrize("shape", [(40, 2, 12), (40, 1, 6, 6)])
def test_matches_brute_force_over_all_shifts_in_1d_and_2d(shape, n_seed_pairs, monkeypatch):
    # with one seed pair per candidate, most nearest pairs are found in the pruned stage
    monkeypatch.setattr(novelty, "_N_SEED_PAIRS", n_seed_pairs)
    g = torch.Generator().manual_seed(0)
    a = smooth_fields((5,) + shape[1:], g)
    # training: unrelated fields, shifted noisy near-copies of two candidates, and mirror
    # images of them as decoys: a mirror image has the same amplitude spectrum (lower
    # bound 0, the lowest) but is far away, so the near-copy must survive the pruning
    near = torch.roll(a[:2], shifts=1, dims=-1) + 0.05 * torch.randn((2,) + shape[1:], generator=g)
    mirror = torch.flip(a[:2], dims=tuple(range(2, a.dim())))
    b = torch.cat([smooth_fields(shape, g), near, mirror])
    for shifts in (True, False):
        d, idx = nearest_training_distance(a, b, translation_invariant=shifts)
        ref = brute_force(a, b, shifts)
        assert d.double().tolist() == pytest.approx(ref.tolist(), rel=1e-4)
    d, idx = nearest_training_distance(a[:2], b)
    assert idx.tolist() == [40, 41]


def test_one_dimensional_spectra_through_the_same_function():
    x = torch.linspace(0, 1, 200)
    peaks = torch.stack([torch.exp(-(((x - m) / 0.02) ** 2)) for m in (0.2, 0.35, 0.5, 0.65, 0.8)])[:, None]
    copy = torch.roll(peaks[[2]], shifts=9, dims=-1)
    d, idx = nearest_training_distance(copy, peaks)
    assert float(d) == pytest.approx(0.0, abs=2e-3)
    # a shifted peak is also (cyclically) any other single-peak spectrum: the shift is free
    d_plain, idx_plain = nearest_training_distance(copy, peaks, translation_invariant=False)
    assert float(d_plain) > 1.0 and int(idx_plain) == 2


def test_independent_noise_is_sqrt2_apart_without_shifts():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 1, 64, 64, generator=g)
    b = torch.randn(1, 1, 64, 64, generator=g)
    d, _ = nearest_training_distance(a, b, translation_invariant=False)
    assert d.tolist() == pytest.approx([math.sqrt(2)] * 3, rel=0.03)


def test_chunking_does_not_change_the_result(micrographs):
    cand = micrographs[12:] + 0.05
    ref_d, ref_i = nearest_training_distance(cand, micrographs[:12])
    for chunk in (1, 5, 100):
        d, i = nearest_training_distance(cand, micrographs[:12], chunk=chunk)
        assert torch.equal(i, ref_i)
        assert torch.allclose(d, ref_d, atol=1e-6)


def test_novelty_check_frame(micrographs):
    train = micrographs[:16]
    cand = torch.cat([torch.roll(train[[4]], 3, dims=-1), micrographs[16:]])
    ids = [f"s{i:03d}" for i in range(16)]
    frame = novelty_check(cand, train, training_ids=ids)
    assert list(frame.columns) == ["novelty", "nearest_id", "novel_pass"]
    assert frame.nearest_id[0] == "s004"
    assert frame.novel_pass.tolist() == [False, True]
    assert frame.attrs["novelty_config"] == NoveltyConfig()
    strict = novelty_check(cand, train, NoveltyConfig(copy_threshold=10.0))
    assert not strict.novel_pass.any()


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(ValidateInputError) as err:
        nearest_training_distance(torch.zeros(2, 1, 8, 8), torch.zeros(3, 1, 8, 9))
    assert err.value.field == "training"
    with pytest.raises(ValidateInputError) as err:
        nearest_training_distance(torch.ones(2, 1, 8), torch.ones(3, 1, 8))
    assert err.value.field == "scale"
    with pytest.raises(ValidateInputError):
        nearest_training_distance(torch.zeros(2, 8), torch.zeros(3, 8))
    with pytest.raises(ValidateInputError):
        NoveltyConfig(copy_threshold=-1.0)
