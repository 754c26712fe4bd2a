"""Train tiny generators on fixed random data; run by the tests in-process or under torchrun.

    python ddp_worker.py STEPS METHOD=CHECKPOINT [METHOD=CHECKPOINT ...]

A checkpoint that exists is resumed (as after an interrupted run).
"""

import sys

import torch

from genmat.conditions import ConditionSchema, Field
from genmat.generate import Generator, GeneratorConfig
from genmat.nn import UNetConfig
from genmat.train import TrainConfig


class Interrupted(Exception):
    pass


def main(method: str, steps: int, checkpoint: str, stop_after: int | None = None) -> None:
    g = torch.Generator().manual_seed(123)
    x = torch.rand(32, 1, 8, 8, generator=g) * 2 - 1
    values = torch.rand(32, 2, generator=g) * 2 - 1
    mask = (torch.rand(32, 2, generator=g) > 0.2).float()
    schema = ConditionSchema(fields=(Field("a", "", -1.0, 1.0, "processing"), Field("b", "", -1.0, 1.0, "property")))
    config = GeneratorConfig(method=method, unet=UNetConfig(base_channels=8, channel_mults=(1, 2), embed_dim=16,
                                                            groups=4))
    gen = Generator(config, schema, (1, 8, 8), device="cpu", seed=0)

    def stop(step, metrics):
        if stop_after is not None and step > stop_after:  # step stop_after is checkpointed by then
            raise Interrupted(step)

    cfg = TrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, log_every=1, checkpoint_every=1,
                      device="cpu", seed=5)
    try:
        gen.fit((x, values, mask), cfg, checkpoint_path=checkpoint, callbacks=[stop], progress=False)
    except Interrupted:
        pass


if __name__ == "__main__":
    for job in sys.argv[2:]:
        method, checkpoint = job.split("=", 1)
        main(method, int(sys.argv[1]), checkpoint)
