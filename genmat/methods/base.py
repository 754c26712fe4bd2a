"""What every generative family provides to :class:`genmat.generate.Generator`."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from genmat.methods.config import GeneratorConfig, SamplerConfig
from genmat.train import TrainConfig, TrainResult, train


class Method:
    """One family: builds its network, trains it through the one training loop
    (:func:`genmat.train.train`) and samples it for normalised conditions.

    Subclasses set ``name`` and implement :meth:`build`, :meth:`loss` (or override
    :meth:`fit` for several stages) and :meth:`sample`; :meth:`diagnostics` is optional.
    """

    name = ""
    physics_guidance = False  # whether sample() takes a physics misfit (physics guidance)

    def __init__(self, config: GeneratorConfig, sample_shape: Sequence[int]) -> None:
        self.config, self.sample_shape = config, tuple(int(s) for s in sample_shape)

    def build(self) -> nn.Module:
        raise NotImplementedError

    def loss(self):
        raise NotImplementedError

    def fit(self, model: nn.Module, data: Sequence[torch.Tensor], config: TrainConfig, *, penalty=None,
            **train_kwargs) -> tuple[nn.Module, TrainResult]:
        """One stage: the family's loss on the whole model; returns (EMA model, result).
        ``penalty``: the modality's physics_penalty, for families whose loss takes one."""
        model.requires_grad_(True)  # a second fit() continues from the frozen EMA copy
        loss = self.loss() if penalty is None else self.loss(penalty=penalty)
        return train(model, loss, data, config, **train_kwargs)

    def diagnostics(self, model: nn.Module, data: Sequence[torch.Tensor]) -> dict[str, float]:
        """Numbers worth logging after a fit (e.g. a VAE's posterior collapse)."""
        return {}

    def sample(self, model: nn.Module, values: torch.Tensor, mask: torch.Tensor, sampler: SamplerConfig,
               gen: torch.Generator, *, regressor=None, progress: bool = False) -> torch.Tensor:
        """Samples (B, *sample_shape) on the model's device; noise drawn from ``gen`` (CPU)."""
        raise NotImplementedError
