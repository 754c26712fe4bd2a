"""Memorisation check: distance of each candidate to its nearest training sample.

A copy of a training sample (or a shifted copy of one, on a periodic grid) is not
a design (PHYSICS.md §7). One code path serves 1-D spectra ``(B, C, L)`` and 2-D
micrographs ``(B, C, N, N)``: every operation runs over the trailing spatial dims.

Distance. For a candidate a and a training sample b (both ``(C, *S)``, D = C·ΠS
values), the translation-invariant squared distance is

    min_τ ‖a − shift_τ b‖² = ‖a‖² + ‖b‖² − 2 max_τ corr(a, b)(τ),
    corr(a, b)(τ) = Σ_x a(x) b(x − τ) = IRFFT( RFFT(a) · conj(RFFT(b)) )(τ),

with periodic shifts τ over the spatial grid (channels share one shift). Without
translation invariance only τ = 0 is used (a plain dot product). The reported
*novelty* is the normalised RMS distance

    novelty = sqrt( d² / D ) / s,   s = RMS deviation of the training set about its
    global mean (the training standard deviation over all samples and values).

So novelty 0 is an exact (possibly shifted) copy, and two independent samples of a
stationary random field with the training statistics are about √2 apart
(≈ 1.41) before the minimum over shifts pulls that down somewhat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from genmat.validate.micrograph import ValidateInputError

__all__ = ["NoveltyConfig", "nearest_training_distance", "training_scale", "novelty_check"]

# Largest number of values of one correlation block (b × m × C × ΠS): 2**19 float32
# values = 2 MiB, small enough to stay in cache (larger blocks measured slower on CPU).
_BLOCK_VALUES = 2**19
# Training samples whose spectra are held at once: about 2**23 real values (≈ 32 MiB).
_SPECTRUM_VALUES = 2**23


@dataclass(frozen=True)
class NoveltyConfig:
    """Threshold of the copy check.

    ``copy_threshold``: a candidate with novelty ≤ this is called a copy. Default 0.30,
    calibrated on simulated spinodal micrographs (32×32, 64×64, across
    PROCESSING_RANGES): exact and rolled copies score < 1e-3, copies with 5 %
    additive noise ≈ 0.05, while fresh simulator samples sit at ≥ 0.7 from a
    training set of 1000 samples of the same conditions.
    """

    copy_threshold: float = 0.30  # novelty ≤ this → "copy" (see calibration above)
    translation_invariant: bool = True  # minimise over periodic shifts (micrographs)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.copy_threshold) and self.copy_threshold >= 0):
            raise ValidateInputError("copy_threshold", self.copy_threshold, "a finite number >= 0")


def _as_batch(x: Tensor | np.ndarray, name: str) -> Tensor:
    t = torch.as_tensor(x)
    if t.dim() < 3:
        raise ValidateInputError(name, tuple(t.shape), "shape (B, C, *spatial) with at least one spatial dim")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValidateInputError(name, "non-finite values", "finite values only")
    return t


def training_scale(training: Tensor) -> float:
    """RMS deviation of ``training`` ``(M, C, *S)`` about its global mean (the normaliser s)."""
    t = training.to(torch.float64)
    return float((t - t.mean()).square().mean().sqrt())


def _spectrum(x: Tensor) -> Tensor:
    """RFFT over the spatial dims: ``(n, C, *S)`` -> ``(n, C, *F)`` complex."""
    return torch.fft.rfftn(x, dim=tuple(range(2, x.dim())))


def _max_correlation(fa: Tensor, fb: Tensor, spatial: torch.Size) -> Tensor:
    """max_τ Σ_x a(x) b(x − τ) from spectra: fa ``(b, C, *F)``, fb ``(m, C, *F)`` -> ``(b, m)``."""
    cross = (fa.unsqueeze(1) * fb.conj().unsqueeze(0)).sum(dim=2)  # (b, m, *F)
    corr = torch.fft.irfftn(cross, s=spatial, dim=tuple(range(2, cross.dim())))  # (b, m, *S)
    return corr.flatten(2).amax(dim=2)


def nearest_training_distance(
    candidates: Tensor,
    training: Tensor,
    *,
    translation_invariant: bool = True,
    chunk: int | None = None,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Normalised RMS distance of each candidate to its nearest training sample.

    ``candidates``: ``(B, C, *S)``; ``training``: ``(M, C, *S)`` with the same C and S
    (1-D spectra and 2-D micrographs alike). ``translation_invariant``: minimise over
    periodic shifts (FFT cross-correlation), else compare pixel to pixel.
    ``chunk``: training samples per block (default: chosen so one block holds at most
    2**19 values). ``scale``: the normaliser s (default: :func:`training_scale`).

    Returns ``(novelty (B,) float32, index (B,) int64)``, index into ``training``;
    novelty is dimensionless (see the module docstring). Runs on the candidates' device.
    """
    a = _as_batch(candidates, "candidates")
    b = _as_batch(training, "training").to(device=a.device)
    if a.shape[1:] != b.shape[1:]:
        raise ValidateInputError(
            "training", tuple(b.shape), f"shape (M, {', '.join(str(s) for s in a.shape[1:])}) like candidates"
        )
    if b.shape[0] == 0:
        raise ValidateInputError("training", tuple(b.shape), "at least one training sample")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValidateInputError("chunk", chunk, "an integer >= 1 or None")
    s = training_scale(b) if scale is None else float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ValidateInputError("scale", s, "a finite number > 0 (the training set must not be constant)")

    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = a.to(dtype), b.to(dtype)
    n_values = math.prod(a.shape[1:])
    a_sq = a.reshape(a.shape[0], -1).to(torch.float64).square().sum(dim=1)
    b_sq = b.reshape(b.shape[0], -1).to(torch.float64).square().sum(dim=1)

    # Blocks: candidates in groups of ``cb``, training in groups of ``mb``, such that one
    # (cb, mb, C, *S) correlation block holds at most _BLOCK_VALUES values (small blocks
    # stay in cache: measured fastest on CPU). Spectra are computed once per group of
    # ``sb`` training samples and once per candidate group.
    cb = max(1, min(a.shape[0], _BLOCK_VALUES // n_values))
    if chunk is not None:
        mb = chunk
    elif translation_invariant:
        mb = max(1, _BLOCK_VALUES // (cb * n_values))
    else:  # a plain matmul: the block is (mb, C·ΠS) training values
        mb = max(1, _SPECTRUM_VALUES // n_values)
    sb = mb * max(1, _SPECTRUM_VALUES // (mb * n_values))
    best_d2 = torch.full((a.shape[0],), math.inf, dtype=torch.float64, device=a.device)
    best_i = torch.zeros(a.shape[0], dtype=torch.long, device=a.device)
    flat_a = a.reshape(a.shape[0], -1)
    with torch.no_grad():
        for i0 in range(0, a.shape[0], cb):
            rows = slice(i0, i0 + cb)
            fa = _spectrum(a[rows]) if translation_invariant else None
            for s0 in range(0, b.shape[0], sb):
                bs = b[s0 : s0 + sb]
                fbs = _spectrum(bs) if translation_invariant else None
                for j0 in range(0, bs.shape[0], mb):
                    if translation_invariant:
                        corr = _max_correlation(fa, fbs[j0 : j0 + mb], a.shape[2:])
                    else:
                        corr = flat_a[rows] @ bs[j0 : j0 + mb].reshape(-1, n_values).T
                    cols = slice(s0 + j0, s0 + j0 + corr.shape[1])
                    d2 = a_sq[rows, None] + b_sq[None, cols] - 2 * corr.to(torch.float64)  # (cb, mb)
                    val, idx = d2.min(dim=1)
                    better = val < best_d2[rows]
                    best_d2[rows] = torch.where(better, val, best_d2[rows])
                    best_i[rows] = torch.where(better, idx + cols.start, best_i[rows])
    novelty = (best_d2.clamp_min(0) / n_values).sqrt() / s
    return novelty.to(torch.float32), best_i


def novelty_check(
    candidates: Tensor,
    training: Tensor,
    config: NoveltyConfig = NoveltyConfig(),
    *,
    training_ids: Sequence | None = None,
    chunk: int | None = None,
) -> pd.DataFrame:
    """Copy check, one row per candidate.

    ``candidates`` ``(B, C, *S)``, ``training`` ``(M, C, *S)``; ``training_ids``: M
    labels (e.g. dataset sample ids) reported as ``nearest_id`` (default: the row index
    into ``training``). Columns: ``novelty`` (float, see module docstring),
    ``nearest_id``, ``novel_pass`` (novelty > ``config.copy_threshold``). The frame's
    ``attrs["novelty_config"]`` keeps the config for the report's reasons.
    """
    dist, idx = nearest_training_distance(
        candidates, training, translation_invariant=config.translation_invariant, chunk=chunk
    )
    idx_np = idx.cpu().numpy()
    if training_ids is not None:
        ids = np.asarray(list(training_ids), dtype=object)
        if len(ids) != torch.as_tensor(training).shape[0]:
            raise ValidateInputError("training_ids", f"{len(ids)} ids", f"{torch.as_tensor(training).shape[0]} ids")
        nearest = pd.Series(ids[idx_np], dtype=object)
    else:
        nearest = pd.Series(idx_np, dtype="int64")
    novelty = dist.double().cpu().numpy()
    frame = pd.DataFrame(
        {"novelty": novelty, "nearest_id": nearest, "novel_pass": novelty > config.copy_threshold}
    )
    frame.attrs["novelty_config"] = config
    return frame
