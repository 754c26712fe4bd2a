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
            raise ValueError(f"surrogate needs at least 10 labelled samples, got {int(ok.sum())}")
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
