"""The one random-model recipe of the tests: a LightweightOpenPose whose outputs span about +-50, like the
published random-weight checkpoint, the same for the same seed in every process."""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightpose.model import LightweightOpenPose


def random_model(seed: int = 0) -> LightweightOpenPose:
    """Kaiming-initialised convolutions, small biases and non-trivial BatchNorm statistics (so BN folding changes
    weights); every parameter and buffer comes from `seed` (none from torch's global generator)."""
    generator = torch.Generator().manual_seed(seed)
    model = LightweightOpenPose().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_((torch.rand(module.bias.shape, generator=generator) - 0.5) * 0.2)
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_((torch.rand(n, generator=generator) - 0.5) * 0.4)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_((torch.rand(n, generator=generator) - 0.5) * 0.4)
    return model


def random_checkpoint(path: Path, seed: int = 0) -> Path:
    """`random_model(seed)` saved as a checkpoint file ({"state_dict": ...}, the published format) at `path`."""
    torch.save({"state_dict": random_model(seed).state_dict()}, path)
    return path


def random_input(batch: int = 1, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """float32 (batch, 3, height, width) in the network's input range [-0.5, 0.5)."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (batch, 3, height, width)).astype(np.float32)
