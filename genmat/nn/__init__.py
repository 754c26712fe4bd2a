"""Networks only: they know nothing of noise schedules, losses or data."""

from genmat.nn.embeddings import ConditionEmbedding, TimeEmbedding
from genmat.nn.unet import UNet, UNetConfig

__all__ = ["ConditionEmbedding", "TimeEmbedding", "UNet", "UNetConfig"]
