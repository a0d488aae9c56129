"""The Lightweight OpenPose network (loading its checkpoints: `lightpose._checkpoint`).

Module and parameter names follow the published implementation exactly, so its checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from lightpose._checkpoint import extract_state_dict, load_reference_state  # loading lives there; kept importable
from lightpose.errors import CheckpointError
from lightpose.skeleton import OPENPOSE_COCO, STRIDE, Skeleton

__all__ = ["STRIDE", "CheckpointError", "LightweightOpenPose", "extract_state_dict", "load_reference_state"]


def _conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    padding: int = 1,
    bn: bool = True,
    dilation: int = 1,
    stride: int = 1,
    relu: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU (sub-indices 0, 1, 3, 4 hold parameters)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, dilation, dilation=dilation, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _conv_dw_no_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels, bias=False),
        nn.ELU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
        nn.ELU(inplace=True),
    )


def _mobilenet_backbone() -> nn.Sequential:
    """MobileNet v1 truncated after conv5_5, conv4_2 without stride and conv5_1 dilated: output stride 8."""
    return nn.Sequential(
        _conv(3, 32, stride=2, bias=False),
        _conv_dw(32, 64),
        _conv_dw(64, 128, stride=2),
        _conv_dw(128, 128),
        _conv_dw(128, 256, stride=2),
        _conv_dw(256, 256),
        _conv_dw(256, 512),
        _conv_dw(512, 512, dilation=2),
        _conv_dw(512, 512),
        _conv_dw(512, 512),
        _conv_dw(512, 512),
        _conv_dw(512, 512),
    )


class Cpm(nn.Module):
    """Feature adaptation: 1x1 align, residual depthwise trunk, 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.align = _conv(in_channels, out_channels, kernel_size=1, padding=0, bn=False)
        self.trunk = nn.Sequential(*(_conv_dw_no_bn(out_channels, out_channels) for _ in range(3)))
        self.conv = _conv(out_channels, out_channels, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.align(x)
        return self.conv(x + self.trunk(x))


def _head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(in_channels, hidden, kernel_size=1, padding=0, bn=False),
        _conv(hidden, out_channels, kernel_size=1, padding=0, bn=False, relu=False),
    )


class InitialStage(nn.Module):
    def __init__(self, num_channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(_conv(num_channels, num_channels, bn=False) for _ in range(3)))
        self.heatmaps = _head(num_channels, 512, num_heatmaps)
        self.pafs = _head(num_channels, 512, num_pafs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.trunk(x)
        return [self.heatmaps(x), self.pafs(x)]


class RefinementStageBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.initial = _conv(in_channels, out_channels, kernel_size=1, padding=0, bn=False)
        self.trunk = nn.Sequential(
            _conv(out_channels, out_channels),
            _conv(out_channels, out_channels, dilation=2, padding=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        return x + self.trunk(x)


class RefinementStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            RefinementStageBlock(in_channels, out_channels),
            *(RefinementStageBlock(out_channels, out_channels) for _ in range(4)),
        )
        self.heatmaps = _head(out_channels, out_channels, num_heatmaps)
        self.pafs = _head(out_channels, out_channels, num_pafs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.trunk(x)
        return [self.heatmaps(x), self.pafs(x)]


class LightweightOpenPose(nn.Module):
    """Lightweight OpenPose (Osokin 2018): MobileNet v1 backbone, Cpm, initial stage, refinement stages.

    Input: (N, 3, H, W) float32, BGR, (pixel - 128) / 256, H and W multiples of 8.
    `forward` returns the list [heatmaps_0, pafs_0, heatmaps_1, pafs_1, ...] (two per stage), heatmaps
    (N, K + 1, H/8, W/8) and PAFs (N, 2 L, H/8, W/8), raw linear outputs, for the `skeleton`'s K keypoints and L
    limbs (19 and 38 channels for the published layout). Inference uses the last two.
    """

    def __init__(
        self, num_refinement_stages: int = 1, num_channels: int = 128, *, skeleton: Skeleton = OPENPOSE_COCO
    ) -> None:
        super().__init__()
        if num_refinement_stages < 0:
            raise ValueError(f"num_refinement_stages must be >= 0, got {num_refinement_stages}")
        self.num_refinement_stages = num_refinement_stages
        self.skeleton = skeleton
        heatmaps, pafs = skeleton.num_heatmaps, skeleton.num_pafs
        self.model = _mobilenet_backbone()
        self.cpm = Cpm(512, num_channels)
        self.initial_stage = InitialStage(num_channels, heatmaps, pafs)
        self.refinement_stages = nn.ModuleList(
            RefinementStage(num_channels + heatmaps + pafs, num_channels, heatmaps, pafs)
            for _ in range(num_refinement_stages)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone + Cpm features: (N, 128, H/8, W/8)."""
        return self.cpm(self.model(x))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.forward_features(x)
        outputs = self.initial_stage(features)
        for stage in self.refinement_stages:
            outputs.extend(stage(torch.cat([features, outputs[-2], outputs[-1]], dim=1)))
        return outputs


def fold_batchnorm(model: LightweightOpenPose) -> LightweightOpenPose:
    """Fold every BatchNorm into the preceding convolution, in place, for inference (eval mode only).

    Outputs stay within float32 rounding of the unfolded model.
    """
    if model.training:
        raise RuntimeError("fold_batchnorm needs a model in eval mode")
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                _fold_into(conv, bn)
                module._modules[bn_name] = nn.Identity()
    return model


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)
