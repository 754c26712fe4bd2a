"""A conditional GAN, trained by the one training loop (a comparison family).

Non-saturating loss, a projection discriminator with spectral norm, an R1 penalty on real
samples (Mescheder et al. 2018) and a matching-aware term (Reed et al. 2016): real samples
paired with *another* sample's condition count as fake, so D judges (x, c) pairs, not x
alone — without it the generator learnt to ignore its condition. One optimiser step updates
both players from one scalar (simultaneous gradient descent, each player with its own
learning rate: ``ConditionalGAN.param_groups``):

    L_D = E softplus(−D(x, c)) + E softplus(D(G(z, c)⁻, c)) + λ_m E softplus(D(x_π, c))
          + γ/2 E ‖∇ₓ D(x, c)‖²
    L_G = E softplus(−D⁻(G(z, c), c))

G(z, c)⁻ is detached (D's terms reach only D); D⁻ is D called with detached parameters
(G's term reaches only G); x_π is the batch shuffled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from genmat import parallel
from genmat.methods.base import Method
from genmat.methods.vae import decode_prior
from genmat.nn.embeddings import drop_fields
from genmat.nn.gan_nets import ConditionalGAN


class GANLoss:
    def __init__(self, sample_shape, cond_dropout: float = 0.1, r1_gamma: float = 1.0, mismatch: float = 1.0,
                 cond_masks: str = "independent") -> None:
        self.sample_shape, self.cond_dropout, self.cond_masks = tuple(sample_shape), cond_dropout, cond_masks
        self.r1_gamma, self.mismatch = r1_gamma, mismatch

    def __call__(self, model: ConditionalGAN, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x, values, mask = batch[:3]
        mask = drop_fields(mask, self.cond_dropout, generator, self.cond_masks)
        z = parallel.randn((x.shape[0], *model.latent_shape(self.sample_shape)), generator, x.device)
        fake = model.generator(z, values, mask)
        d = model.discriminator
        real = x.detach().requires_grad_(self.r1_gamma > 0)
        d_real = d(real, values, mask)
        loss_d = F.softplus(-d_real).mean() + F.softplus(d(fake.detach(), values, mask)).mean()
        if self.mismatch:
            perm = parallel.randperm(x.shape[0], generator, x.device)
            loss_d = loss_d + self.mismatch * F.softplus(d(x[perm], values, mask)).mean()
        if self.r1_gamma:
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            loss_d = loss_d + 0.5 * self.r1_gamma * grad.pow(2).flatten(1).sum(1).mean()
        frozen = {k: p.detach() for k, p in d.named_parameters()}
        loss_g = F.softplus(-functional_call(d, frozen, (fake, values, mask))).mean()
        return loss_d + loss_g


class GANMethod(Method):
    name = "gan"

    def build(self) -> ConditionalGAN:
        s = self.config.gan
        return ConditionalGAN(self.config.unet, s.latent_channels, d_lr_scale=s.d_lr_scale, betas=s.betas)

    def loss(self) -> GANLoss:
        s = self.config.gan
        return GANLoss(self.sample_shape, self.config.cond_dropout, r1_gamma=s.r1_gamma, mismatch=s.mismatch,
                       cond_masks=self.config.cond_masks)

    def sample(self, model, values, mask, sampler, gen, *, regressor=None, progress=False):
        return decode_prior(model, self.sample_shape, values, mask, sampler.guidance, gen)
