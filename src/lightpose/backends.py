"""Network runners behind one interface: (N, 3, H, W) float32 input -> last-stage heatmaps and PAFs."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn


class Backend(Protocol):
    """Runs the network: batch float32 (N, 3, H, W) -> (heatmaps (N, 19, H/8, W/8), PAFs (N, 38, H/8, W/8))."""

    name: str

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` -> CUDA when available, else CPU; otherwise the named device (checked to exist)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {str(device)!r}: use 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available; use device='cpu'")
    return resolved


class TorchBackend:
    """PyTorch eager fp32 runner of a LightweightOpenPose-style model (eval mode, no autograd)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        outputs = self.model(inputs)
        return outputs[-2].float().cpu().numpy(), outputs[-1].float().cpu().numpy()
