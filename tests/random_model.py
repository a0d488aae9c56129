"""A random LightweightOpenPose whose outputs span about +-50, like the published random-weight checkpoint."""

import numpy as np
import torch
from torch import nn

from lightpose.model import LightweightOpenPose


def random_model(seed: int = 0) -> LightweightOpenPose:
    """Kaiming-initialised convolutions and non-trivial BatchNorm statistics (so BN folding changes weights)."""
    generator = torch.Generator().manual_seed(seed)
    model = LightweightOpenPose().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_((torch.rand(n, generator=generator) - 0.5) * 0.4)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_((torch.rand(n, generator=generator) - 0.5) * 0.4)
    return model


def random_input(batch: int = 1, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """float32 (batch, 3, height, width) in the network's input range [-0.5, 0.5)."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (batch, 3, height, width)).astype(np.float32)
