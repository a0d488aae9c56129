"""Image -> network input (resize, normalise, pad), and network-input pixels -> image pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from lightpose.skeleton import STRIDE

MAX_ASPECT_RATIO = 20.0  # longer image side / shorter side
MAX_INPUT_PIXELS = 4096 * 4096  # network input area (about 0.6 GB of activations in the first layer)
PIXEL_MEAN = np.float32(128.0)
PIXEL_SCALE = np.float32(1.0 / 256.0)


@dataclass(frozen=True)
class InputTransform:
    """How an image became a network input: `input = pad(resize(image, scale))`.

    scale: resize factor; pad: (top, left, bottom, right) in input pixels; image_size: (h, w) of the original
    image; input_size: (H, W) of the network input.
    """

    scale: float
    pad: tuple[int, int, int, int]
    image_size: tuple[int, int]
    input_size: tuple[int, int]

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) x, y in network-input pixels to original-image pixels (float64)."""
        xy = np.asarray(xy, dtype=np.float64)
        offset = np.array([self.pad[1], self.pad[0]], dtype=np.float64)
        return (xy - offset) / self.scale


def check_image(image: object) -> np.ndarray:
    """A BGR uint8 (H, W, 3) image from a BGR, grey (H, W) or (H, W, 1), or BGRA (H, W, 4) uint8 array.

    Anything else raises TypeError/ValueError saying what was received and what is expected.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a BGR uint8 image as a numpy array of shape (H, W, 3), got {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = " with values 0-255 (for a float image in [0, 1]: (img * 255).round().astype(np.uint8))"
        raise ValueError(f"expected a uint8 image{hint}, got dtype {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"expected an image of shape (H, W, 3) (BGR), (H, W) (grey) or (H, W, 4) (BGRA), got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty: shape {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def check_height(height: object, stride: int = STRIDE) -> int:
    """`height` as an int: a positive multiple of `stride` whose square input fits MAX_INPUT_PIXELS."""
    if isinstance(height, bool) or not isinstance(height, (int, np.integer)):
        raise TypeError(f"height must be an int (network input height in pixels, e.g. 256), got {height!r}")
    height = int(height)
    if height < stride or height % stride:
        raise ValueError(f"height must be a positive multiple of {stride} (e.g. 256 or 368), got {height}")
    if height * height > MAX_INPUT_PIXELS:
        raise ValueError(
            f"height {height} gives a network input over {MAX_INPUT_PIXELS} pixels, too large to run: "
            f"use at most {int(MAX_INPUT_PIXELS**0.5) // stride * stride}"
        )
    return height


def check_input_size(image_size: tuple[int, int], height: int, scale: float, stride: int = STRIDE) -> None:
    """Refuse, before any allocation, an image whose network input would be degenerate or too large.

    The rule: the longer image side is at most MAX_ASPECT_RATIO times the shorter one, the resized image is at
    least 1 pixel on each side, and the padded network input has at most MAX_INPUT_PIXELS pixels.
    """
    h, w = image_size
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        raise ValueError(
            f"image of {w}x{h} pixels (width x height) is too elongated: the longer side may be at most "
            f"{MAX_ASPECT_RATIO:g} times the shorter; crop or pad it first"
        )
    resized_h, resized_w = round(h * scale), round(w * scale)
    input_h = math.ceil(max(resized_h, height) / stride) * stride
    input_w = math.ceil(max(resized_w, height) / stride) * stride
    if min(resized_h, resized_w) < 1 or input_h * input_w > MAX_INPUT_PIXELS:
        raise ValueError(
            f"image of {w}x{h} pixels at scale {scale:g} gives a {input_w}x{input_h} network input, outside 1 to "
            f"{MAX_INPUT_PIXELS} pixels: use a smaller height or resize the image"
        )


def normalize(image: np.ndarray) -> np.ndarray:
    """(pixel - 128) / 256 as float32, channel order unchanged."""
    return (image.astype(np.float32) - PIXEL_MEAN) * PIXEL_SCALE


def pad_to_stride(
    image: np.ndarray, min_height: int, min_width: int, stride: int = STRIDE, pad_value: float = 0.0
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Centre-pad an (h, w, C) image as the reference's `pad_width` does; returns (padded, (top, left, bottom, right)).

    Target height = ceil(min_height / stride) * stride (an image taller than min_height is not padded vertically),
    target width = ceil(max(min_width, w) / stride) * stride.
    """
    h, w = image.shape[:2]
    h = min(min_height, h)
    target_h = math.ceil(min_height / stride) * stride
    target_w = math.ceil(max(min_width, w) / stride) * stride
    top = (target_h - h) // 2
    left = (target_w - w) // 2
    bottom = target_h - h - top
    right = target_w - w - left
    value = (pad_value,) * (image.shape[2] if image.ndim == 3 else 1)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    return padded, (top, left, bottom, right)


def prepare_input(
    image: np.ndarray,
    height: int = 256,
    *,
    interpolation: int = cv2.INTER_LINEAR,
    scale: float | None = None,
    normalize_first: bool = False,
    stride: int = STRIDE,
) -> tuple[np.ndarray, InputTransform]:
    """Resize, normalise and pad a BGR uint8 (h, w, 3) image for the network.

    Default = the reference demo: scale = height / h, resize the uint8 image (INTER_LINEAR), normalise, pad to
    a multiple of `stride` with width >= height. The reference val.py instead normalises first (in float64) and
    resizes the float image with INTER_CUBIC (`normalize_first=True, interpolation=cv2.INTER_CUBIC`,
    `scale` = s * 368 / h for multi-scale). Returns the (3, H, W) float32 input and its InputTransform.
    """
    image = check_image(image)
    height = check_height(height, stride)
    h, w = image.shape[:2]
    if scale is None:
        scale = height / h
    check_input_size((h, w), height, scale, stride)
    if normalize_first:
        # val.py's normalisation promotes to float64 and the resize runs in float64; float32 would change last bits.
        as_float64 = (image.astype(np.float64) - 128.0) / 256.0
        resized = cv2.resize(as_float64, (0, 0), fx=scale, fy=scale, interpolation=interpolation)
    else:
        resized = normalize(cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=interpolation))
    padded, pad = pad_to_stride(resized, height, max(resized.shape[1], height), stride)
    transform = InputTransform(float(scale), pad, (h, w), (padded.shape[0], padded.shape[1]))
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), transform
