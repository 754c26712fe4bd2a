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

Search. The exact shifted distance needs one inverse FFT per (candidate, training)
pair. A cheap lower bound prunes most pairs first: since corr(τ) = (1/ΠS) Σ_k A_k
conj(B_k) e^{ikτ} ≤ (1/ΠS) Σ_k |A_k| |B_k|, the squared distance is at least
‖a‖² + ‖b‖² − (2/ΠS) Σ_k |A_k||B_k| (the distance between amplitude spectra), a
matrix product for all pairs at once. Each candidate's exact distance to its few
lowest-bound training samples gives an upper bound; only pairs whose lower bound is
below it are correlated exactly (≈ 4 % of pairs for spinodal micrographs).
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

# Largest number of values of one correlation block (pairs × C × ΠS): 2**19 float32
# values = 2 MiB, small enough to stay in cache (larger blocks measured slower on CPU).
_BLOCK_VALUES = 2**19
# Training samples handled at once in the lower-bound pass: about 2**23 values (≈ 32 MiB).
_SPECTRUM_VALUES = 2**23
# Lower-bound matrix entries (candidates × training) held at once: 2**22 float64 = 32 MiB.
_BOUND_VALUES = 2**22
# Exact distances computed per candidate before pruning (gives the first upper bound).
_N_SEED_PAIRS = 4
# Relative slack on the pruning test, far above float32 round-off of the correlations.
_PRUNE_SLACK = 1e-4


@dataclass(frozen=True)
class NoveltyConfig:
    """Threshold of the copy check.

    ``copy_threshold``: a candidate with novelty ≤ this is called a copy. Calibrated on
    32×32 simulator micrographs (conditions drawn uniformly from PROCESSING_RANGES),
    training set M = 5000: rolled copies score ≤ 0.001, copies with additive noise of
    std 0.02 / 0.05 ≤ 0.026 / 0.066, while fresh simulator samples score ≥ 0.085
    (0.5 % quantile 0.14, median 0.39). So 0.10 flags near-exact copies and ≈ 0.4 % of
    fresh samples (the simulator itself repeats the simplest morphologies at 32×32).
    """

    copy_threshold: float = 0.10  # novelty ≤ this → "copy" (calibration above)
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


def _amplitude(spec: Tensor, last: int) -> Tensor:
    """|RFFT| weighted so that a dot product sums over the full spectrum: ``(n, C·ΠF)``.

    The half spectrum along the last spatial dim (length ``last``) stands for its
    mirror image too: bins 1..⌈last/2⌉−1 count twice, bin 0 (and bin last/2 for even
    ``last``) once; the square root of that weight goes on each factor.
    """
    w = torch.full((spec.shape[-1],), 2.0, dtype=torch.float64, device=spec.device)
    w[0] = 1.0
    if last % 2 == 0:
        w[-1] = 1.0
    return (spec.abs().to(torch.float64) * w.sqrt()).flatten(1)


def _pair_d2(fa: Tensor, b: Tensor, rows: Tensor, cols: Tensor, a_sq: Tensor, b_sq: Tensor) -> Tensor:
    """Exact shifted squared distances of pairs (rows[p], cols[p]), ``(P,)`` float64.

    ``fa``: candidate spectra ``(cb, C, *F)`` (rows index into it); ``b``: training
    samples ``(M, C, *S)`` (cols index into it); ``a_sq``/``b_sq``: squared norms.
    """
    spatial = b.shape[2:]
    fb = _spectrum(b[cols])  # (P, C, *F)
    cross = (fa[rows] * fb.conj()).sum(dim=1)  # (P, *F)
    corr = torch.fft.irfftn(cross, s=spatial, dim=tuple(range(1, cross.dim())))  # (P, *S)
    return a_sq[rows] + b_sq[cols] - 2 * corr.flatten(1).amax(dim=1).to(torch.float64)


def _update_best(best: Tensor, best_i: Tensor, rows: Tensor, cols: Tensor, d2: Tensor) -> None:
    """In place: best[r] = min(best[r], d2 over pairs of row r), best_i the matching col."""
    row_min = torch.full_like(best, math.inf).scatter_reduce(0, rows, d2, "amin")
    arg = torch.zeros_like(best_i)
    at_min = d2 == row_min[rows]
    arg[rows[at_min]] = cols[at_min]
    better = row_min < best
    best.copy_(torch.where(better, row_min, best))
    best_i.copy_(torch.where(better, arg, best_i))


def _nearest_shifted(a: Tensor, b: Tensor, a_sq: Tensor, b_sq: Tensor, chunk: int | None):
    """Translation-invariant nearest neighbours by bound-and-prune (module docstring)."""
    n_spatial = math.prod(a.shape[2:])
    n_values = a.shape[1] * n_spatial
    n_b = b.shape[0]
    pairs_per_block = chunk if chunk is not None else max(1, _BLOCK_VALUES // n_values)
    group = max(1, _SPECTRUM_VALUES // n_values)  # training samples per lower-bound group
    cb = max(1, min(a.shape[0], _BOUND_VALUES // n_b))  # candidates per bound matrix
    best_d2 = torch.full((a.shape[0],), math.inf, dtype=torch.float64, device=a.device)
    best_i = torch.zeros(a.shape[0], dtype=torch.long, device=a.device)
    for i0 in range(0, a.shape[0], cb):
        fa = _spectrum(a[i0 : i0 + cb])
        amp_a = _amplitude(fa, a.shape[-1])
        sq = a_sq[i0 : i0 + cb]
        # 1. lower bounds for every pair, (cb, M)
        bound = torch.cat(
            [
                sq[:, None] + b_sq[None, j0 : j0 + group]
                - (2 / n_spatial) * amp_a @ _amplitude(_spectrum(b[j0 : j0 + group]), a.shape[-1]).T
                for j0 in range(0, n_b, group)
            ],
            dim=1,
        )
        # 2. exact distances to the lowest-bound training samples: a first upper bound
        seed_cols = bound.topk(min(_N_SEED_PAIRS, n_b), dim=1, largest=False).indices  # (cb, k)
        best = torch.full((fa.shape[0],), math.inf, dtype=torch.float64, device=a.device)
        idx = torch.zeros(fa.shape[0], dtype=torch.long, device=a.device)
        todo = torch.ones_like(bound, dtype=torch.bool)
        todo.scatter_(1, seed_cols, False)
        seed_rows = torch.arange(fa.shape[0], device=a.device)[:, None].expand_as(seed_cols)
        stages = [(seed_rows.reshape(-1), seed_cols.reshape(-1))]
        # 3. then every pair whose lower bound is below that upper bound (slack for round-off)
        for stage, (rows, cols) in enumerate(stages):
            for p0 in range(0, rows.numel(), pairs_per_block):
                r, c = rows[p0 : p0 + pairs_per_block], cols[p0 : p0 + pairs_per_block]
                _update_best(best, idx, r, c, _pair_d2(fa, b, r, c, sq, b_sq))
            if stage == 0:
                slack = _PRUNE_SLACK * (sq[:, None] + b_sq[None, :])
                stages.append(torch.nonzero(todo & (bound <= best[:, None] + slack), as_tuple=True))
        best_d2[i0 : i0 + cb], best_i[i0 : i0 + cb] = best, idx
    return best_d2, best_i


def _nearest_plain(a: Tensor, b: Tensor, a_sq: Tensor, b_sq: Tensor, chunk: int | None):
    """Nearest neighbours without shifts: ‖a‖² + ‖b‖² − 2 a·b by matrix products."""
    n_values = math.prod(a.shape[1:])
    mb = chunk if chunk is not None else max(1, _SPECTRUM_VALUES // n_values)
    flat_a = a.reshape(a.shape[0], -1)
    best_d2 = torch.full((a.shape[0],), math.inf, dtype=torch.float64, device=a.device)
    best_i = torch.zeros(a.shape[0], dtype=torch.long, device=a.device)
    for j0 in range(0, b.shape[0], mb):
        dots = (flat_a @ b[j0 : j0 + mb].reshape(-1, n_values).T).to(torch.float64)  # (B, mb)
        val, arg = (a_sq[:, None] + b_sq[None, j0 : j0 + mb] - 2 * dots).min(dim=1)
        better = val < best_d2
        best_d2 = torch.where(better, val, best_d2)
        best_i = torch.where(better, arg + j0, best_i)
    return best_d2, best_i


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
    ``chunk``: (candidate, training) pairs correlated per block with shifts, training
    samples per matrix product without (default: blocks of ≤ 2**19 and ≤ 2**23
    values). ``scale``: the normaliser s (default: :func:`training_scale`).

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

    with torch.no_grad():
        search = _nearest_shifted if translation_invariant else _nearest_plain
        best_d2, best_i = search(a, b, a_sq, b_sq, chunk)
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
