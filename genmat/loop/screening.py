"""A cheap learned property predictor that screens candidates before the simulator.

The surrogate is a least-squares fit of each target property on polynomial
features of cheap micrograph descriptors (the modality's ``screening_features``,
e.g. volume fraction and interface density). It is refitted on the whole dataset
at every loop iteration, so relabelled failures near the targets sharpen it where
it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genmat.errors import InputError


def _basis(features: np.ndarray, degree: int) -> np.ndarray:
    """1, f_i^p (p ≤ degree) and pairwise products f_i f_j: (n, d) -> (n, m)."""
    cols = [np.ones(len(features))]
    for p in range(1, degree + 1):
        cols += [features[:, i] ** p for i in range(features.shape[1])]
    for i in range(features.shape[1]):
        for j in range(i + 1, features.shape[1]):
            cols += [features[:, i] * features[:, j], features[:, i] ** 2 * features[:, j]]
    return np.stack(cols, axis=1)


@dataclass
class PropertySurrogate:
    names: tuple[str, ...]
    coef: np.ndarray  # (m, P)
    rmse: np.ndarray  # (P,) in-sample root-mean-square error, physical units
    degree: int = 3

    @classmethod
    def fit(cls, features: np.ndarray, properties: np.ndarray, names, degree: int = 3, ridge: float = 1e-8):
        """Ridge least squares; ``features`` (n, d), ``properties`` (n, P)."""
        ok = np.isfinite(features).all(1) & np.isfinite(properties).all(1)
        if ok.sum() < 10:
            raise InputError(f"surrogate needs at least 10 labelled samples, got {int(ok.sum())}")
        A, Y = _basis(features[ok], degree), properties[ok]
        coef = np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1]), A.T @ Y)
        rmse = np.sqrt(((A @ coef - Y) ** 2).mean(0))
        return cls(tuple(names), coef, rmse, degree)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return _basis(features, self.degree) @ self.coef

    def score(self, features: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Predicted relative error to the targets (n, P) → (n,): the largest over
        targeted properties (NaN targets ignored). Lower is better."""
        pred = self.predict(features)
        rel = np.abs(pred - targets) / np.abs(targets)
        rel = np.where(np.isfinite(targets), rel, 0.0)
        return rel.max(axis=1)


@dataclass
class RecipeHead:
    """An inverse head: the processing that should make a given sample (a generated design's
    recipe). A :class:`PropertySurrogate` regresses the modality's ``recipe_coordinates`` of
    the training processing (what the product determines, e.g. composition and
    dimensionless anneal time) on the samples' ``screening_features``; the modality turns
    predicted coordinates back into one processing row in its ranges. Its in-sample error
    is ``fit.rmse``, in coordinate units. A recipe is only a claim until the process simulator
    has made it again (``genmat.loop.recipes.verify_recipes``)."""

    fit: PropertySurrogate

    @classmethod
    def train(cls, modality, samples, processing) -> "RecipeHead | None":
        """None when the modality has no recipe coordinates or no screening features."""
        features = modality.screening_features(samples)
        if features is None or modality.recipe_coordinates(processing.iloc[:1]) is None:
            return None
        coords = modality.recipe_coordinates(processing)
        return cls(PropertySurrogate.fit(features, coords, [f"coord{i}" for i in range(coords.shape[1])], degree=2))

    def recipes(self, modality, samples):
        """One processing row per sample."""
        return modality.processing_from_coordinates(self.fit.predict(modality.screening_features(samples)))


class GPSurrogate:
    """Gaussian-process model of properties (F outputs) over unit-cube inputs (D), shared by
    every target: the screen for proposed recipes (botorch ``SingleTaskGP``, independent
    outputs, Matérn-5/2 ARD kernel, learned noise — the process's own scatter).

    Hyperparameters are fitted on at most ``fit_points`` rows; the posterior then
    conditions on all rows (exact GP), so refitting on a grown table stays cheap.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, fit_points: int = 512, seed: int = 0, hyper=None) -> None:
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        ok = np.isfinite(x).all(1) & np.isfinite(y).all(1)
        x, y = x[ok], y[ok]
        if len(x) < 4:
            raise InputError(f"the GP screen needs at least 4 finite rows, got {len(x)}")
        self.mean, self.std = y.mean(0), np.where(y.std(0) > 0, y.std(0), 1.0)
        X = torch.as_tensor(x, dtype=torch.float64)
        Y = torch.as_tensor((y - self.mean) / self.std, dtype=torch.float64)
        if hyper is None:
            rng = np.random.default_rng(seed)
            sub = rng.choice(len(X), size=min(fit_points, len(X)), replace=False)
            small = SingleTaskGP(X[sub], Y[sub], outcome_transform=None)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                fit_gpytorch_mll(ExactMarginalLogLikelihood(small.likelihood, small))
            hyper = {k: v for k, v in small.state_dict().items() if "train" not in k}
        self.hyper = hyper
        self.model = SingleTaskGP(X, Y, outcome_transform=None)
        self.model.load_state_dict(hyper, strict=False)
        self.model.eval()

    def refit(self, x: np.ndarray, y: np.ndarray, *, refit_hyper: bool = False, seed: int = 0) -> "GPSurrogate":
        """The same kernel conditioned on a new table (hyperparameters kept unless asked)."""
        return GPSurrogate(x, y, seed=seed, hyper=None if refit_hyper else self.hyper)

    def predict(self, x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) (n, F) in physical units; std includes the observation noise."""
        import torch

        means, stds = [], []
        with torch.no_grad():
            for start in range(0, len(x), chunk):
                post = self.model.posterior(torch.as_tensor(x[start:start + chunk], dtype=torch.float64),
                                            observation_noise=True)
                means.append(post.mean.numpy())
                stds.append(post.variance.clamp_min(1e-12).sqrt().numpy())
        return np.concatenate(means) * self.std + self.mean, np.concatenate(stds) * self.std

    def hit_probability(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """P(every asked output in [lo, hi]) under independent Gaussian predictions; lo/hi (n, F),
        NaN in both = not asked."""
        from scipy.special import ndtr

        mu, sd = self.predict(x)
        asked = ~(np.isnan(lo) & np.isnan(hi))
        lo_ = np.where(np.isnan(lo), -np.inf, lo)
        hi_ = np.where(np.isnan(hi), np.inf, hi)
        p = ndtr((hi_ - mu) / sd) - ndtr((lo_ - mu) / sd)
        return np.where(asked, p, 1.0).prod(axis=1)
